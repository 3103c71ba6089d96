// account.js — every user: change one's own password (every other session of the user ends;
// this page keeps working with the new token the API returns).

import { h, fill, values } from './dom.js';
import { api, session } from './api.js';
import { t } from './i18n.js';

export async function render(main) {
  const note = h('p', { class: 'error', hidden: true });
  const ok = h('p', { class: 'ok', hidden: true });
  const form = h('form', {
    class: 'card',
    id: 'password-form',
    onsubmit: async (e) => {
      e.preventDefault();
      const v = values(e.target);
      note.hidden = true;
      ok.hidden = true;
      if (v.new_password !== v.repeat) { fill(note, t('account.mismatch')); note.hidden = false; return; }
      try {
        const r = await api('POST', '/api/auth/password', { old_password: v.old_password, new_password: v.new_password });
        session.set(r.token);
        e.target.reset();
        fill(ok, t('account.changed'));
        ok.hidden = false;
      } catch (err) { fill(note, err.message); note.hidden = false; }
    },
  },
  h('h2', null, t('account.password')),
  h('div', { class: 'fields' },
    h('label', null, t('account.old'), h('input', { name: 'old_password', type: 'password', required: true, autocomplete: 'current-password' })),
    h('label', null, t('account.new'), h('input', { name: 'new_password', type: 'password', required: true, minlength: 8, maxlength: 256, autocomplete: 'new-password' })),
    h('label', null, t('account.repeat'), h('input', { name: 'repeat', type: 'password', required: true, minlength: 8, autocomplete: 'new-password' }))),
  h('div', { class: 'buttons' }, h('button', { type: 'submit', class: 'primary' }, t('save'))));
  const u = session.user || {};
  fill(main, h('div', { class: 'toolbar' }, h('h1', null, t('nav.account'))),
    h('p', null, t('account.who', { name: u.username || '?', role: t(`role.${u.role}`) })), note, ok, form);
  return null;
}
