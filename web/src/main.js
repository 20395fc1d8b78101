// The PSM admin UI: one page shell, routed here by path. Pages build their DOM with dom.js
// (text only, never HTML from data).
import './app.css';
import { api, state } from './api.js';
import { h, append, clear } from './dom.js';
import { loginPage } from './pages/login.js';
import { sessionsPage } from './pages/sessions.js';
import { sessionPage } from './pages/session.js';
import { replayPage } from './pages/replay.js';
import { searchPage } from './pages/search.js';
import { terminalPage } from './pages/terminal.js';
import { reportsPage } from './pages/reports.js';

// Test hooks (read-only state the browser tests look at).
window.psm = window.psm || {};

const pages = {
  '': sessionsPage,
  sessions: sessionsPage,
  session: sessionPage,
  replay: replayPage,
  search: searchPage,
  terminal: terminalPage,
  reports: reportsPage,
};

function nav(me) {
  const links = [];
  if (me.capabilities.view) {
    links.push(['Sessions', '/ui/sessions'], ['Search', '/ui/search'], ['Reports', '/ui/reports']);
  }
  if (me.capabilities.terminal && me.terminal) links.push(['Terminal', '/ui/terminal']);
  const here = location.pathname.replace(/\/$/, '') || '/ui';
  append(clear(document.getElementById('nav')), links.map(([label, href]) =>
    h('a', { href, class: here === href || (href === '/ui/sessions' && here === '/ui') ? 'active' : '' }, label)));
  const logout = h('button', {
    type: 'button', id: 'logout', class: 'link',
    on: {
      click: async () => {
        try { await api.post('/logout'); } finally { location.assign('/ui/login'); }
      },
    },
  }, 'Log out');
  append(clear(document.getElementById('who')), [h('span', { class: 'muted' }, me.user), ' ', logout]);
}

async function start() {
  const main = document.getElementById('main');
  const name = location.pathname.replace(/^\/ui\/?/, '').replace(/\/$/, '');
  const params = new URLSearchParams(location.search);
  if (name === 'login') {
    loginPage(clear(main), params);
    return;
  }
  try {
    state.me = await api.get('/me');
  } catch {
    return; // redirected to the login page
  }
  nav(state.me);
  let page = pages[name];
  if (!page) {
    append(clear(main), h('p', { class: 'error' }, 'No such page.'));
    return;
  }
  if ((name === '' || name === 'sessions') && !state.me.capabilities.view) page = terminalPage;
  try {
    await page(clear(main), params);
  } catch (e) {
    append(main, h('p', { class: 'error' }, e.message || String(e)));
  }
}

document.addEventListener('DOMContentLoaded', start);
