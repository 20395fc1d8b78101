import { api, state } from '../api.js';
import { h, append, clear, duration, when } from '../dom.js';
import { openTerminal } from '../live.js';
import { openDesktop } from '../desktop.js';

export async function sessionPage(main, params) {
  const id = params.get('id') || '';
  const me = state.me;
  let detail = await api.get(`/sessions/${encodeURIComponent(id)}`);
  const info = h('dl', { class: 'info', id: 'session-info' });
  const flags = h('div', { class: 'flags', id: 'live-state' });
  const message = h('p', { class: 'message', id: 'control-message', role: 'status' });
  const liveBox = h('div', { class: 'live-box', id: 'live' });
  const liveStatus = h('p', { class: 'muted', id: 'live-status' });
  const approvals = h('div', { id: 'approvals' });
  const audit = h('tbody', { id: 'audit-body' });
  const files = h('ul', { class: 'files', id: 'files' });
  let viewer = null;
  // The control message is a note about a queued command not confirmed yet.
  let pending = false;
  let controls = null;
  let liveSection = null;

  function renderInfo() {
    const s = detail.session;
    clear(info);
    const row = (k, v) => [h('dt', {}, k), h('dd', {}, v)];
    append(info,
      row('Session', s.id), row('User', s.user), row('Target', s.target), row('Protocol', s.protocol),
      row('Stage', s.stage), row('Started', when(s.start)), row('Ended', s.end ? when(s.end) : (s.live ? 'live' : '')),
      row('Duration', duration(s.durationSeconds)), row('Gateway', s.gateway || ''),
      row('Current owner', s.owner ? `${s.owner} (${s.stage})` : ''),
      s.terminateReason ? row('Terminate reason', s.terminateReason) : null,
      s.failureReason ? row('Failure', s.failureReason) : null);
    // Once the session is not live, its live controls go and notes about commands the
    // gateway has not confirmed yet are dropped: that gateway will never confirm them.
    if (!s.live) {
      if (controls) controls.hidden = true;
      if (pending) { message.textContent = ''; pending = false; }
      if (liveSection && !viewer) liveSection.hidden = true;
    }
    clear(flags);
    append(flags,
      h('span', { class: s.live ? 'badge live' : 'badge' }, s.live ? 'live' : 'ended'),
      s.paused ? h('span', { class: 'badge paused', id: 'flag-paused' }, 'paused') : null,
      s.locked ? h('span', { class: 'badge locked', id: 'flag-locked' }, 'locked') : null,
      s.viewers && s.viewers.length ? h('span', { class: 'badge' }, `watching: ${s.viewers.map((v) => `${v.name} (${v.mode})`).join(', ')}`) : null);
    clear(approvals);
    for (const a of s.live ? s.approvals || [] : []) {
      append(approvals, h('div', { class: 'approval card' },
        h('strong', {}, 'Held for approval: '), h('code', {}, a.command), ' ',
        h('span', { class: 'muted' }, `rule ${a.rule}`), ' ',
        me.capabilities.control ? [
          h('button', { type: 'button', on: { click: () => act('approve', { approvalId: a.id }) } }, 'Approve'),
          h('button', { type: 'button', class: 'danger', on: { click: () => act('deny', { approvalId: a.id, reason: 'denied from the web UI' }) } }, 'Deny'),
        ] : null));
    }
    clear(audit);
    for (const e of detail.audit) {
      append(audit, h('tr', {}, h('td', {}, when(e.at)), h('td', {}, e.actor), h('td', {}, e.action),
        h('td', {}, e.fromStage && e.toStage ? `${e.fromStage} → ${e.toStage}` : ''), h('td', { class: 'detail' }, e.detail)));
    }
    clear(files);
    for (const f of detail.files) {
      append(files, h('li', {}, h('a', {
        href: `/ui/api/recordings/${encodeURIComponent(s.id)}/files/${encodeURIComponent(f.name)}`,
        download: `${s.id}-${f.name}`,
      }, f.name), ' ', h('span', { class: 'muted' }, `${f.size} bytes, ${f.location}`)));
    }
    if (detail.files.length === 0) append(files, h('li', { class: 'muted' }, 'No recording files here yet.'));
    window.psm.session = s;
  }

  async function refresh() {
    try {
      detail = await api.get(`/sessions/${encodeURIComponent(id)}`);
      renderInfo();
    } catch (e) {
      message.textContent = e.message;
    }
  }

  async function act(action, extra = {}) {
    message.textContent = `${action}…`;
    pending = false;
    try {
      const r = await api.post(`/sessions/${encodeURIComponent(id)}/control`, { action, ...extra });
      message.textContent = r.applied ? `${action}: done` : r.message;
      pending = !r.applied;
      window.psm.lastControl = { action, ...r };
    } catch (e) {
      message.textContent = `${action} failed: ${e.message}`;
      window.psm.lastControl = { action, error: e.message };
    }
    await refresh();
  }

  function watch(mode) {
    if (viewer) viewer.close();
    clear(liveBox);
    liveStatus.textContent = 'connecting…';
    return api.post(`/sessions/${encodeURIComponent(id)}/join`, { mode, cols: 120, rows: 40 }).then((t) => {
      // A graphical session shows its desktop; a terminal session its terminal.
      const open = detail.session.protocol === 'rdp' ? openDesktop : openTerminal;
      viewer = open(liveBox, t.url, {
        interactive: mode === 'control',
        onMessage: (msg) => {
          if (msg.type === 'hello') {
            liveStatus.textContent = `watching (${msg.mode}) ${msg.user}@${msg.target} as ${msg.viewer}`;
            window.psm.live = { connected: true, mode: msg.mode };
          } else if (msg.type === 'state' || msg.type === 'viewers' || msg.type === 'approval' || msg.type === 'approval-resolved') {
            refresh();
          } else if (msg.type === 'ended') {
            liveStatus.textContent = `the session ended: ${msg.reason || ''}`;
          } else if (msg.type === 'policy') {
            message.textContent = `policy ${msg.rule}: ${msg.action}${msg.command ? ` on ${msg.command}` : ''}`;
          }
        },
        onClose: (text) => {
          liveStatus.textContent = `live view closed: ${text}`;
          window.psm.live = { ...(window.psm.live || {}), closed: text };
          refresh();
        },
      });
      window.psm.liveText = () => (viewer ? viewer.text() : '');
      if (mode === 'control') viewer.focus();
    }).catch((e) => { liveStatus.textContent = `cannot watch: ${e.message}`; });
  }

  const reason = h('input', { id: 'reason', placeholder: 'reason (shown to the user)', maxlength: 500 });
  const s0 = detail.session;
  controls = s0.live && me.capabilities.control ? h('div', { class: 'controls', id: 'controls' },
    h('button', { type: 'button', id: 'watch', on: { click: () => watch('view') } }, 'Watch'),
    h('button', { type: 'button', id: 'join-control', on: { click: () => watch('control') } }, 'Join with control'),
    h('span', { class: 'sep' }),
    h('button', { type: 'button', id: 'pause', on: { click: () => act('pause', { reason: reason.value || undefined }) } }, 'Pause'),
    h('button', { type: 'button', id: 'resume', on: { click: () => act('resume') } }, 'Resume'),
    h('button', { type: 'button', id: 'lock', on: { click: () => act('lock', { reason: reason.value || undefined }) } }, 'Lock'),
    h('button', { type: 'button', id: 'unlock', on: { click: () => act('unlock') } }, 'Unlock'),
    reason,
    h('button', {
      type: 'button', id: 'terminate', class: 'danger',
      on: {
        click: () => {
          if (!reason.value.trim()) { message.textContent = 'Give a reason to terminate (the user sees it).'; reason.focus(); return; }
          act('terminate', { reason: reason.value.trim() });
        },
      },
    }, 'Terminate')) : null;

  liveSection = s0.live ? h('section', { id: 'live-section' }, h('h2', {}, 'Live'), liveStatus, liveBox) : null;
  append(main,
    h('h1', {}, `Session ${s0.user}@${s0.target}`),
    flags,
    h('div', { class: 'row' },
      h('a', { class: 'button', href: `/ui/replay?id=${encodeURIComponent(id)}`, id: 'open-replay' }, 'Replay'),
      h('a', { class: 'button', href: `/ui/search?session=${encodeURIComponent(id)}` }, 'Search this session')),
    controls, message, approvals,
    liveSection,
    h('section', {}, h('h2', {}, 'Details'), info),
    h('section', {}, h('h2', {}, 'Downloads'), files),
    h('section', {}, h('h2', {}, 'Audit trail'),
      h('table', { class: 'audit' }, h('thead', {}, h('tr', {}, ['When', 'Actor', 'Action', 'Stage', 'Detail'].map((c) => h('th', {}, c)))), audit)));
  renderInfo();
  if (s0.live && me.capabilities.control && params.get('watch')) watch('view');
  const timer = setInterval(() => { if (document.visibilityState === 'visible') refresh(); }, Math.max(1, me.refreshSeconds) * 1000);
  window.addEventListener('pagehide', () => { clearInterval(timer); if (viewer) viewer.close(); });
}
