// cameras.js — (admins) the cameras: add, edit, delete; a discovery scan of a range with
// credentials, and adding what it found (each DVR channel is a camera: the server fills in
// brand, port, stream URL and credentials from the scan).

import { h, fill, values } from './dom.js';
import { api, enc } from './api.js';
import { t } from './i18n.js';

const BRANDS = ['generic', 'hikvision', 'dahua', 'xmeye', 'onvif'];

export async function render(main) {
  const table = h('div', { id: 'camera-list' });
  const editor = h('div', { id: 'camera-editor' });
  const scan = h('div', { id: 'discovery' });
  const note = h('p', { class: 'error', hidden: true });
  const say = (e) => { fill(note, e ? e.message : ''); note.hidden = !e; };
  fill(main,
    h('div', { class: 'toolbar' }, h('h1', null, t('nav.cameras')),
      h('button', { id: 'camera-add', onclick: () => edit(null) }, t('cam.add'))),
    note, editor, table,
    h('h2', null, t('disc.title')), scan);

  async function load() {
    let cams;
    try { cams = (await api('GET', '/api/cameras/list')).cameras; } catch (e) { say(e); return; }
    fill(table, cams.length === 0 ? h('p', { class: 'empty' }, t('cam.none')) : h('table', { class: 'list' },
      h('thead', null, h('tr', null, [t('cam.name'), t('cam.id'), t('cam.brand'), t('cam.url'), t('cam.state'), ''].map((x) => h('th', null, x)))),
      h('tbody', null, cams.map((c) => h('tr', { 'data-camera': c.id },
        h('td', null, c.name || '–'),
        h('td', null, c.id),
        h('td', null, c.brand),
        h('td', { class: 'mono' }, c.rtsp_url),
        h('td', null, c.is_active ? t(`state.${(c.stream || {}).state || 'idle'}`) : t('state.disabled'),
          c.is_recording ? h('span', { class: 'rec' }, ` ${t('live.rec')}`) : null),
        h('td', { class: 'actions' },
          h('button', { onclick: () => edit(c) }, t('edit')),
          h('button', {
            class: 'danger',
            onclick: async () => {
              if (!confirm(t('cam.confirm_delete', { name: c.name || c.id }))) return;
              try { await api('DELETE', `/api/cameras/${enc(c.id)}`); say(null); } catch (e) { say(e); }
              load();
            },
          }, t('delete'))))))));
  }

  function edit(cam) {
    const field = (name, label, attrs = {}) => h('label', null, label,
      h('input', { name, value: cam ? cam[name] ?? '' : '', ...attrs }));
    const form = h('form', {
      class: 'card',
      onsubmit: async (e) => {
        e.preventDefault();
        const v = values(e.target);
        const body = {};
        for (const [k, x] of Object.entries(v)) if (x !== '') body[k] = x;
        if (body.channel) body.channel = Number(body.channel);
        if (body.port) body.port = Number(body.port);
        body.is_active = e.target.elements.is_active.checked;
        if (cam) { delete body.ip; delete body.channel; }
        // an unchanged masked URL is not a new URL
        if (cam && body.rtsp_url === cam.rtsp_url) delete body.rtsp_url;
        try {
          if (cam) await api('PUT', `/api/cameras/${enc(cam.id)}`, body);
          else await api('POST', '/api/cameras', body);
          say(null);
          fill(editor);
          load();
        } catch (err) { say(err); }
      },
    },
    h('h2', null, cam ? t('cam.edit', { name: cam.name || cam.id }) : t('cam.add')),
    h('div', { class: 'fields' },
      field('name', t('cam.name')),
      field('ip', t('cam.ip'), { required: !cam, disabled: !!cam, placeholder: '192.168.1.64' }),
      field('channel', t('cam.channel'), { type: 'number', min: 1, max: 128, disabled: !!cam, placeholder: '1' }),
      h('label', null, t('cam.brand'), h('select', { name: 'brand' },
        BRANDS.map((b) => h('option', { value: b, selected: cam ? cam.brand === b : b === 'generic' }, b)))),
      field('port', t('cam.port'), { type: 'number', min: 1, max: 65535, placeholder: '554' }),
      field('username', t('cam.username'), { autocomplete: 'off' }),
      field('password', t('cam.password'), { type: 'password', autocomplete: 'new-password', value: '', placeholder: cam ? t('cam.unchanged') : '' }),
      field('rtsp_url', t('cam.url'), { placeholder: t('cam.url_hint') }),
      h('label', null, t('cam.transport'), h('select', { name: 'transport' },
        ['tcp', 'udp'].map((x) => h('option', { value: x, selected: cam ? cam.transport === x : x === 'tcp' }, x)))),
      h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'is_active', checked: cam ? cam.is_active : true }), t('cam.active'))),
    h('div', { class: 'buttons' },
      h('button', { type: 'submit', class: 'primary' }, t('save')),
      h('button', { type: 'button', onclick: () => fill(editor) }, t('cancel'))));
    if (cam) form.elements.username.value = '';
    fill(editor, form);
  }

  const results = h('div', { id: 'discovery-results' });
  const scanForm = h('form', {
    class: 'card',
    onsubmit: async (e) => {
      e.preventDefault();
      const v = values(e.target);
      const body = {};
      if (v.network_range) body.network_range = v.network_range;
      if (v.username || v.password) body.credentials = { username: v.username, password: v.password };
      body.refresh = true;
      const button = e.target.querySelector('button');
      button.disabled = true;
      fill(results, h('p', null, t('disc.scanning')));
      try {
        show(await api('POST', '/api/cameras/discover', body));
      } catch (err) {
        fill(results, h('p', { class: 'error' }, err.message));
      } finally {
        button.disabled = false;
      }
    },
  },
  h('div', { class: 'fields' },
    h('label', null, t('disc.range'), h('input', { name: 'network_range', id: 'disc-range', placeholder: '192.168.1.0/24' })),
    h('label', null, t('cam.username'), h('input', { name: 'username', id: 'disc-user', autocomplete: 'off' })),
    h('label', null, t('cam.password'), h('input', { name: 'password', id: 'disc-pass', type: 'password', autocomplete: 'off' }))),
  h('div', { class: 'buttons' }, h('button', { type: 'submit', class: 'primary', id: 'disc-run' }, t('disc.run'))));
  fill(scan, scanForm, results);

  function show(d) {
    const rows = [];
    for (const dev of d.devices) {
      const chans = dev.channels.length ? dev.channels : [{ channel: 1, rtsp_path: '' }];
      for (const ch of chans) {
        rows.push(h('tr', { 'data-device': dev.ip, 'data-channel': ch.channel },
          h('td', null, `${dev.ip}:${dev.port}`),
          h('td', null, [dev.brand, dev.model].filter(Boolean).join(' · ')),
          h('td', null, dev.name || '–'),
          h('td', null, ch.channel),
          h('td', { class: 'mono' }, ch.rtsp_path),
          h('td', null, t(`disc.status_${dev.status}`)),
          h('td', { class: 'actions' }, h('button', {
            onclick: async (e) => {
              const b = e.target;
              try {
                await api('POST', '/api/cameras', { ip: dev.ip, channel: ch.channel, name: dev.name ? `${dev.name} ${ch.channel}` : undefined });
                b.disabled = true;
                fill(b, t('disc.added'));
                load();
              } catch (err) { say(err); }
            },
          }, t('disc.add')))));
      }
    }
    fill(results,
      h('p', null, t('disc.summary', { n: d.devices.length, hosts: d.hosts, range: d.network_range, ms: d.elapsed_ms })),
      rows.length ? h('table', { class: 'list' },
        h('thead', null, h('tr', null, [t('disc.address'), t('cam.brand'), t('cam.name'), t('cam.channel'), t('disc.path'), t('disc.status'), ''].map((x) => h('th', null, x)))),
        h('tbody', null, rows)) : null);
  }

  await load();
  return null;
}
