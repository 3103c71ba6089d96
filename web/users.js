// users.js — (admins) the users: create, change role, reset password, assign cameras, end
// sessions, delete. The last admin cannot be demoted or deleted (the API answers 409).

import { h, fill, values } from './dom.js';
import { api, enc, session } from './api.js';
import { t } from './i18n.js';

const ROLES = ['viewer', 'user', 'admin']; // the least power first

export async function render(main) {
  const note = h('p', { class: 'error', hidden: true });
  const ok = h('p', { class: 'ok', hidden: true });
  const say = (e, msg) => {
    fill(note, e ? e.message : ''); note.hidden = !e;
    fill(ok, msg || ''); ok.hidden = !msg;
  };
  const table = h('div', { id: 'user-list' });
  const detail = h('div', { id: 'user-detail' });
  const roleSelect = (value, attrs = {}) => h('select', { name: 'role', ...attrs },
    ROLES.map((r) => h('option', { value: r, selected: r === value }, t(`role.${r}`))));
  const create = h('form', {
    class: 'card inline',
    id: 'user-create',
    onsubmit: async (e) => {
      e.preventDefault();
      try {
        await api('POST', '/api/auth/register', values(e.target));
        e.target.reset();
        say(null, t('user.created'));
        load();
      } catch (err) { say(err); }
    },
  },
  h('input', { name: 'username', placeholder: t('login.username'), required: true, minlength: 3, maxlength: 32, autocomplete: 'off' }),
  h('input', { name: 'password', type: 'password', placeholder: t('login.password'), required: true, minlength: 8, autocomplete: 'new-password' }),
  roleSelect('viewer'),
  h('button', { type: 'submit', class: 'primary' }, t('user.create')));
  fill(main, h('div', { class: 'toolbar' }, h('h1', null, t('nav.users'))), note, ok, create, table, detail);

  async function load() {
    let users;
    try { users = (await api('GET', '/api/users')).users; } catch (e) { say(e); return; }
    fill(table, h('table', { class: 'list' },
      h('thead', null, h('tr', null, [t('login.username'), t('user.role'), t('user.created_at'), ''].map((x) => h('th', null, x)))),
      h('tbody', null, users.map((u) => h('tr', { 'data-user': u.username },
        h('td', null, u.username, session.user && session.user.id === u.id ? h('small', null, ` (${t('user.you')})`) : null),
        h('td', null, t(`role.${u.role}`)),
        h('td', null, new Date(u.created_at).toLocaleDateString()),
        h('td', { class: 'actions' },
          h('button', { onclick: () => open(u.id) }, t('edit')),
          h('button', {
            class: 'danger',
            onclick: async () => {
              if (!confirm(t('user.confirm_delete', { name: u.username }))) return;
              try { await api('DELETE', `/api/users/${u.id}`); say(null); } catch (e) { say(e); }
              fill(detail);
              load();
            },
          }, t('delete'))))))));
  }

  async function open(id) {
    let u, cams;
    try {
      [u, cams] = await Promise.all([api('GET', `/api/users/${id}`), api('GET', '/api/cameras/list')]);
    } catch (e) { say(e); return; }
    const user = u.user || u;
    const assigned = new Set(user.camera_ips || []);
    fill(detail, h('div', { class: 'card', 'data-editing': user.username },
      h('h2', null, user.username),
      h('form', {
        class: 'inline',
        onsubmit: async (e) => {
          e.preventDefault();
          const v = values(e.target);
          const body = { role: v.role };
          if (v.password) body.password = v.password;
          try { await api('PUT', `/api/users/${id}`, body); say(null, t('user.saved')); load(); } catch (err) { say(err); }
        },
      },
      h('label', null, t('user.role'), ' ', roleSelect(user.role)),
      h('input', { name: 'password', type: 'password', minlength: 8, placeholder: t('user.new_password'), autocomplete: 'new-password' }),
      h('button', { type: 'submit', class: 'primary' }, t('save')),
      h('button', {
        type: 'button',
        onclick: async () => {
          try { await api('POST', `/api/users/${id}/logout-all`); say(null, t('user.sessions_ended')); } catch (err) { say(err); }
        },
      }, t('user.logout_all'))),
      user.role === 'admin' ? h('p', null, t('user.admin_sees_all')) : h('div', null,
        h('h3', null, t('user.cameras')),
        h('ul', { class: 'checks' }, cams.cameras.map((c) => h('li', null, h('label', { class: 'check' },
          h('input', {
            type: 'checkbox',
            'data-assign': c.id,
            checked: assigned.has(c.id),
            onchange: async (e) => {
              try {
                if (e.target.checked) await api('POST', `/api/users/${id}/cameras`, { camera_ips: [c.id] });
                else await api('DELETE', `/api/users/${id}/cameras/${enc(c.id)}`);
                say(null);
              } catch (err) { e.target.checked = !e.target.checked; say(err); }
            },
          }), c.name || c.id)))))));
  }

  await load();
  return null;
}
