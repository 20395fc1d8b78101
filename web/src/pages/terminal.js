import { api, state } from '../api.js';
import { h, append, clear } from '../dom.js';
import { openTerminal } from '../live.js';

export async function terminalPage(main) {
  const list = h('ul', { class: 'targets', id: 'targets' });
  const box = h('div', { class: 'terminal-box', id: 'terminal' });
  const status = h('p', { class: 'muted', id: 'terminal-status' });
  append(main, h('h1', {}, 'Terminal'),
    h('p', { class: 'muted' }, 'Pick a target: PSM logs you in with the vaulted credential (you never see it) and records the session.'),
    list, status, box);
  if (!state.me.terminal) {
    status.textContent = 'The browser terminal is not enabled on this server.';
    return;
  }
  const targets = await api.get('/targets');
  let term = null;
  window.psm.terminal = { connected: false };
  for (const t of targets.filter((x) => x.protocol === 'ssh')) {
    append(list, h('li', {}, h('button', {
      type: 'button', class: 'target', dataset: { target: t.name },
      on: {
        click: async () => {
          if (term) term.close();
          clear(box);
          status.textContent = `connecting to ${t.name}…`;
          try {
            const ticket = await api.post('/terminal', { target: t.name, cols: 120, rows: 36 });
            term = openTerminal(box, ticket.url, {
              interactive: true, fit: true,
              onMessage: (msg) => {
                if (msg.type === 'hello') {
                  status.textContent = `${msg.user}@${msg.target} (as ${msg.account})`;
                  window.psm.terminal = { connected: true, session: msg.session };
                } else if (msg.type === 'notice') {
                  status.textContent = msg.text;
                } else if (msg.type === 'ended') {
                  status.textContent = `session ended: ${msg.reason || ''}`;
                }
              },
              onClose: (text) => {
                status.textContent = `disconnected: ${text}`;
                window.psm.terminal = { ...window.psm.terminal, closed: text };
              },
            });
            window.psm.terminalText = () => term.text();
            term.focus();
          } catch (e) {
            status.textContent = `cannot connect: ${e.message}`;
          }
        },
      },
    }, t.name, ' ', h('span', { class: 'muted' }, `${t.host}:${t.port}`))));
  }
  if (!targets.length) append(list, h('li', { class: 'muted' }, 'No target is granted to you.'));
}
