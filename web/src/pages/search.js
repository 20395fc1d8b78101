import { api, query } from '../api.js';
import { h, append, clear, offset, when, highlight } from '../dom.js';

export async function searchPage(main, params) {
  // No maxlength: a browser cuts pasted text to it without a word; the server says when a
  // search is too long instead.
  const q = h('input', { id: 'q', name: 'q', type: 'search', placeholder: 'command or output text', value: params.get('q') || '', required: true });
  const kind = h('select', { id: 'kind', name: 'kind' },
    [['all', 'Commands and output'], ['command', 'Commands'], ['statement', 'Database statements'], ['output', 'Output'], ['event', 'Events']]
      .map(([v, l]) => h('option', { value: v, selected: v === (params.get('kind') || 'all') }, l)));
  const regex = h('input', { type: 'checkbox', id: 'regex', checked: params.get('regex') === 'true' });
  const user = h('input', { id: 's-user', placeholder: 'user', value: params.get('user') || '' });
  const target = h('input', { id: 's-target', placeholder: 'target', value: params.get('target') || '' });
  const session = params.get('session') || '';
  const results = h('div', { id: 'results' });
  const status = h('p', { class: 'muted', id: 'search-status' });

  async function run() {
    const p = { q: q.value.trim(), kind: kind.value, regex: regex.checked ? 'true' : '', user: user.value.trim(), target: target.value.trim(), session };
    if (!p.q) return;
    history.replaceState(null, '', `/ui/search${query(p)}`);
    status.textContent = 'Searching…';
    clear(results);
    let r;
    try {
      r = await api.get(`/search${query(p)}`);
    } catch (e) {
      status.textContent = e.message;
      return;
    }
    const hits = r.sessions.reduce((n, s) => n + s.hits.length, 0);
    status.textContent = `${hits} hit(s) in ${r.sessions.length} of ${r.searched} recording(s) searched${r.truncated ? ` (${r.stopped || 'limit reached: narrow the search'})` : ''}.`;
    for (const s of r.sessions) {
      const list = h('ol', { class: 'hits' });
      for (const hit of s.hits) {
        append(list, h('li', { class: `hit ${hit.kind}` },
          h('a', { class: 'hit-link', href: `/ui/replay?id=${encodeURIComponent(s.id)}&t=${hit.time}` }, offset(hit.time)),
          ' ', h('span', { class: 'badge' }, hit.kind), ' ',
          h('code', {}, regex.checked ? hit.text : highlight(hit.text, p.q))));
      }
      append(results, h('section', { class: 'card result', dataset: { session: s.id } },
        h('h3', {}, h('a', { href: `/ui/session?id=${encodeURIComponent(s.id)}` }, `${s.user}@${s.target}`), ' ',
          h('span', { class: 'muted' }, `${when(s.start)} · ${s.stage}`)),
        list, s.truncated ? h('p', { class: 'muted' }, 'More hits not shown.') : null));
    }
    for (const sk of r.skipped) append(results, h('p', { class: 'muted' }, `Not searched: ${sk.id}: ${sk.reason}`));
    window.psm.search = r;
  }

  append(main, h('h1', {}, 'Search recordings'),
    session ? h('p', { class: 'muted' }, `In session ${session} only.`) : null,
    h('form', { class: 'filters', id: 'search-form', on: { submit: (ev) => { ev.preventDefault(); run(); } } },
      q, kind, h('label', { class: 'inline' }, regex, 'regular expression'), user, target, h('button', { type: 'submit', id: 'search' }, 'Search')),
    status, results);
  if (q.value) await run();
}
