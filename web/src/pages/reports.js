import { h, append } from '../dom.js';

// Compliance reports (docs/reports.md): the same sealed report as `psm report`, downloaded
// from /ui/api/report. A plain GET form: the browser saves the answer (an attachment).
export async function reportsPage(main) {
  const today = new Date().toISOString().slice(0, 10);
  const monthAgo = new Date(Date.now() - 30 * 86400e3).toISOString().slice(0, 10);
  const field = (label, input) => h('label', {}, label, ' ', input);
  append(main, h('h1', {}, 'Compliance reports'),
    h('p', { class: 'muted' },
      'Who reached which target, when and from where, what they ran, policy events, transfers and ' +
      'the integrity of every recording, sealed with this node\'s report key. Check a report later ' +
      'with: psm report verify FILE'),
    h('form', { class: 'filters', id: 'report-form', method: 'get', action: '/ui/api/report' },
      field('From', h('input', { type: 'date', id: 'r-from', name: 'from', value: monthAgo, required: true })),
      field('To', h('input', { type: 'date', id: 'r-to', name: 'to', value: today, required: true })),
      h('input', { id: 'r-user', name: 'user', placeholder: 'user (all)' }),
      h('input', { id: 'r-target', name: 'target', placeholder: 'target (all)' }),
      h('input', { id: 'r-role', name: 'role', placeholder: 'role (all)' }),
      h('select', { id: 'r-format', name: 'format' },
        [['pdf', 'PDF'], ['html', 'HTML'], ['csv', 'CSV'], ['json', 'JSON']]
          .map(([v, l]) => h('option', { value: v }, l))),
      h('button', { type: 'submit', id: 'r-download' }, 'Download report')));
}
