import { api, query, state } from '../api.js';
import { h, append, clear, duration, when } from '../dom.js';

const STAGES = ['Connected', 'Ended', 'Encoding', 'Done-Encoded', 'Uploading', 'Done-Uploaded', 'Failed'];

export async function sessionsPage(main, params) {
  const f = {
    state: params.get('state') || '',
    stage: params.get('stage') || '',
    user: params.get('user') || '',
    target: params.get('target') || '',
    protocol: params.get('protocol') || '',
  };
  const select = (id, options, value) => h('select', { id, name: id },
    options.map(([v, label]) => h('option', { value: v, selected: v === value }, label)));
  const stateSel = select('f-state', [['', 'All'], ['live', 'Live'], ['ended', 'Ended']], f.state);
  const stageSel = select('f-stage', [['', 'Any stage'], ...STAGES.map((s) => [s, s])], f.stage);
  const userIn = h('input', { id: 'f-user', name: 'user', placeholder: 'user', value: f.user });
  const targetIn = h('input', { id: 'f-target', name: 'target', placeholder: 'target', value: f.target });
  const protoSel = select('f-protocol', [['', 'Any protocol'], ['ssh', 'SSH'], ['rdp', 'RDP']], f.protocol);
  const auto = h('input', { type: 'checkbox', id: 'auto-refresh', checked: true });
  const status = h('span', { class: 'muted', id: 'refresh-status' });
  const body = h('tbody', { id: 'sessions-body' });
  const table = h('table', { class: 'sessions', id: 'sessions' },
    h('thead', {}, h('tr', {}, ['', 'Stage', 'User', 'Target', 'Protocol', 'Start', 'Duration', ''].map((c) => h('th', {}, c)))),
    body);

  const current = () => ({
    state: stateSel.value, stage: stageSel.value, user: userIn.value.trim(),
    target: targetIn.value.trim(), protocol: protoSel.value,
  });

  // Paging: one page at a time (the server reads only what the page needs); `pages` holds
  // where each page before this one started, so Newer goes back. Auto-refresh reloads the
  // page shown.
  let pages = [];
  let after = params.get('after') || '';
  let next = null;
  const newer = h('button', { type: 'button', id: 'page-newer', class: 'small', on: { click: () => { after = pages.pop() || ''; load(); } } }, '← Newer');
  const older = h('button', { type: 'button', id: 'page-older', class: 'small', on: { click: () => { if (next) { pages.push(after); after = next; load(); } } } }, 'Older →');
  const pager = h('div', { class: 'pager', id: 'pager' }, newer, older);

  async function load() {
    const q = current();
    history.replaceState(null, '', `/ui/sessions${query({ ...q, after })}`);
    let data;
    try {
      data = await api.get(`/sessions${query({ ...q, after })}`);
    } catch (e) {
      status.textContent = `Could not refresh: ${e.message}`;
      return;
    }
    next = data.next || null;
    newer.disabled = after === '';
    older.disabled = !next;
    clear(body);
    if (data.sessions.length === 0) {
      append(body, h('tr', {}, h('td', { colspan: 8, class: 'muted' }, 'No sessions match.')));
    }
    for (const s of data.sessions) {
      const flags = [];
      if (s.paused) flags.push(h('span', { class: 'badge paused' }, 'paused'));
      if (s.locked) flags.push(h('span', { class: 'badge locked' }, 'locked'));
      if (s.terminateRequested && s.live) flags.push(h('span', { class: 'badge ending' }, 'terminating'));
      if (s.viewers && s.viewers.length) flags.push(h('span', { class: 'badge' }, `${s.viewers.length} watching`));
      const open = `/ui/session?id=${encodeURIComponent(s.id)}`;
      append(body, h('tr', { class: s.live ? 'live' : 'ended', dataset: { session: s.id } },
        h('td', {}, h('span', { class: s.live ? 'dot live' : 'dot', title: s.live ? 'live' : 'ended' }), s.live ? 'live' : 'ended'),
        h('td', {}, s.stage, ' ', flags),
        h('td', {}, s.user),
        h('td', {}, s.target),
        h('td', {}, s.protocol),
        h('td', {}, when(s.start)),
        h('td', { class: 'num' }, duration(s.durationSeconds)),
        h('td', { class: 'actions' },
          s.live && state.me.capabilities.control ? h('a', { class: 'button small', href: `${open}&watch=1` }, 'Watch') : null,
          h('a', { class: 'button small', href: open }, 'Details'),
          h('a', { class: 'button small', href: `/ui/replay?id=${encodeURIComponent(s.id)}` }, 'Replay'))));
    }
    const where = after === '' ? '' : ` (page ${pages.length + 1})`;
    status.textContent = `${data.sessions.length} session(s)${where}${data.truncated ? ', more on older pages' : ''}, updated ${new Date().toLocaleTimeString()}`;
    window.psm.sessions = data.sessions;
  }

  const form = h('form', {
    class: 'filters', id: 'filters',
    on: {
      // A new filter starts again from the newest page.
      submit: (ev) => { ev.preventDefault(); pages = []; after = ''; load(); },
      change: () => { pages = []; after = ''; load(); },
    },
  }, stateSel, stageSel, userIn, targetIn, protoSel, h('button', { type: 'submit' }, 'Filter'),
  h('label', { class: 'inline' }, auto, 'auto-refresh'), status);

  append(main, h('h1', {}, 'Sessions'), form, table, pager);
  await load();
  const every = Math.max(1, state.me.refreshSeconds) * 1000;
  const timer = setInterval(() => { if (auto.checked && document.visibilityState === 'visible') load(); }, every);
  window.addEventListener('pagehide', () => clearInterval(timer));
}
