import { api, state } from '../api.js';
import { h, append } from '../dom.js';

export function loginPage(main, params) {
  const error = h('p', { class: 'error', id: 'login-error', role: 'alert' });
  const user = h('input', { id: 'user', name: 'user', autocomplete: 'username', required: true, autofocus: true });
  const password = h('input', { id: 'password', name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const totp = h('input', { id: 'totp', name: 'totp', inputmode: 'numeric', autocomplete: 'one-time-code', pattern: '[0-9]{6}', maxlength: 6 });
  const totpRow = h('label', { id: 'totp-row', hidden: true }, 'Code from your authenticator app', totp);
  const button = h('button', { type: 'submit', id: 'login' }, 'Log in');
  const form = h('form', {
    class: 'card login',
    on: {
      submit: async (ev) => {
        ev.preventDefault();
        error.textContent = '';
        button.disabled = true;
        try {
          state.me = await api.post('/login', {
            user: user.value, password: password.value, totp: totp.value || undefined,
          });
          const next = params.get('next') || '/ui/';
          location.assign(next.startsWith('/ui/') && !next.startsWith('//') ? next : '/ui/');
        } catch (e) {
          if (e.code === 'totp-required') {
            totpRow.hidden = false;
            totp.focus();
          }
          error.textContent = e.message;
        } finally {
          button.disabled = false;
        }
      },
    },
  },
  h('h1', {}, 'PSM'),
  h('p', { class: 'muted' }, 'Privileged Session Manager: log in with your PSM account.'),
  h('label', {}, 'User', user),
  h('label', {}, 'Password', password),
  totpRow,
  button,
  error);
  append(main, form);
}
