// app.js — the page's shell: log in (or, on a fresh box, create the first admin), the menu a
// role may use, the language switch, and the view named by the address (#/live, …). Each view
// is a module with `render(main)`, which may return a function that stops what it started.

import { h, fill, values } from './dom.js';
import { api, can, session } from './api.js';
import { t, lang, setLang, LANGUAGES } from './i18n.js';
import * as live from './live.js';
import * as recordings from './recordings.js';
import * as cameras from './cameras.js';
import * as users from './users.js';
import * as system from './system.js';
import * as account from './account.js';

const VIEWS = {
  live: { view: live, allowed: () => can('watch') },
  recordings: { view: recordings, allowed: () => can('viewRecordings') },
  cameras: { view: cameras, allowed: () => can('manageCameras') },
  users: { view: users, allowed: () => can('manageUsers') },
  system: { view: system, allowed: () => true },
  account: { view: account, allowed: () => true },
};

const root = document.getElementById('app');
let stop = null;
let generation = 0;

function halt() {
  if (stop) { try { stop(); } catch { /* a view that failed to stop cleanly is gone anyway */ } }
  stop = null;
}

async function route() {
  halt();
  const mine = ++generation;
  document.documentElement.lang = lang();
  if (!session.token) { await login(); return; }
  const [name] = location.hash.replace(/^#\/?/, '').split(/[/?]/);
  const current = VIEWS[name] && VIEWS[name].allowed() ? name : 'live';
  const main = h('main', { id: `view-${current}` });
  fill(root, shell(current), main);
  try {
    const done = await VIEWS[current].view.render(main);
    if (mine === generation) stop = done || null;
    else if (done) done();
  } catch (e) {
    if (mine === generation && session.token) fill(main, h('p', { class: 'error' }, e.message));
  }
}

function shell(current) {
  const u = session.user || {};
  return h('header', null,
    h('a', { class: 'brand', href: '#/live' }, h('img', { src: '/ui/icon.svg', alt: '' }), 'vigia'),
    h('nav', null, Object.entries(VIEWS).filter(([, v]) => v.allowed()).map(([name]) =>
      h('a', { href: `#/${name}`, class: name === current ? 'on' : '', id: `nav-${name}` }, t(`nav.${name}`)))),
    h('div', { class: 'who' },
      h('span', { class: 'user', title: t(`role.${u.role}`) }, u.username, ' · ', t(`role.${u.role}`)),
      languageSwitch(),
      h('button', {
        id: 'logout',
        onclick: async () => {
          try { await api('POST', '/api/auth/logout'); } catch { /* the token is dropped anyway */ }
          session.clear();
          location.hash = '';
          route();
        },
      }, t('logout'))));
}

function languageSwitch() {
  return h('select', { class: 'lang', id: 'lang', 'aria-label': 'language / idioma', onchange: (e) => { setLang(e.target.value); route(); } },
    LANGUAGES.map(([code, name]) => h('option', { value: code, selected: code === lang() }, name)));
}

async function login() {
  let health = {};
  try { health = await api('GET', '/health'); } catch { /* shown as a login form anyway */ }
  const first = health.needs_first_admin === true;
  const note = h('p', { class: 'error', hidden: true });
  const form = h('form', {
    class: 'card login',
    id: 'login-form',
    onsubmit: async (e) => {
      e.preventDefault();
      const v = values(e.target);
      note.hidden = true;
      try {
        if (first) {
          if (v.password !== v.repeat) throw new Error(t('account.mismatch'));
          await api('POST', '/api/auth/register', { username: v.username, password: v.password });
        }
        const r = await api('POST', '/api/auth/login', { username: v.username, password: v.password });
        session.set(r.token, r.user);
        location.hash = '#/live';
        route();
      } catch (err) {
        fill(note, err.message);
        note.hidden = false;
      }
    },
  },
  h('h1', null, h('img', { src: '/ui/icon.svg', alt: '' }), 'vigia'),
  h('p', null, first ? t('login.first') : t('login.intro')),
  h('label', null, t('login.username'), h('input', { name: 'username', required: true, autocomplete: 'username', autofocus: true })),
  h('label', null, t('login.password'), h('input', { name: 'password', type: 'password', required: true, autocomplete: first ? 'new-password' : 'current-password', minlength: first ? 8 : null })),
  first && h('label', null, t('account.repeat'), h('input', { name: 'repeat', type: 'password', required: true, autocomplete: 'new-password', minlength: 8 })),
  note,
  h('button', { type: 'submit', class: 'primary', id: 'login-submit' }, first ? t('login.create') : t('login.submit')),
  h('div', { class: 'foot' }, languageSwitch()));
  fill(root, h('main', { class: 'center' }, form));
}

session.onLoggedOut(() => route());
window.addEventListener('hashchange', route);
route();
