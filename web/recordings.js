// recordings.js — one camera's recordings of one day: a 24-hour timeline and a list; play in
// the page (the recording's download URL carries its own one-recording token), download,
// delete where allowed; start and stop recording (fixed duration or continuous) with the
// camera's live status.

import { h, fill, bytes, duration, values } from './dom.js';
import { api, can, enc } from './api.js';
import { t, locale } from './i18n.js';

const DAY_MS = 86400000;

export async function render(main) {
  const cameras = (await api('GET', '/api/cameras/list')).cameras;
  const params = new URLSearchParams(location.hash.split('?')[1] || '');
  let camera = params.get('camera') || localStorage.getItem('vigia.rec.camera') || cameras[0]?.id;
  if (!cameras.some((c) => c.id === camera)) camera = cameras[0]?.id;
  const today = new Date();
  const iso = (d) => `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
  let day = params.get('day') || iso(today);

  const pick = h('select', { name: 'camera', id: 'rec-camera', onchange: (e) => { camera = e.target.value; localStorage.setItem('vigia.rec.camera', camera); load(); showStatus(); } },
    cameras.map((c) => h('option', { value: c.id, selected: c.id === camera }, c.name || c.id)));
  const date = h('input', { type: 'date', id: 'rec-day', value: day, onchange: (e) => { day = e.target.value || iso(today); load(); } });
  const status = h('div', { class: 'recstatus', id: 'rec-status' });
  const timeline = h('div', { class: 'timeline', id: 'timeline' });
  const player = h('video', { controls: true, id: 'rec-player', hidden: true, preload: 'metadata' });
  const list = h('div', { id: 'rec-list' });
  const note = h('p', { class: 'error', hidden: true });

  fill(main,
    h('div', { class: 'toolbar' }, h('h1', null, t('nav.recordings')),
      h('label', null, t('rec.camera'), ' ', pick), h('label', null, t('rec.day'), ' ', date)),
    cameras.length ? null : h('p', { class: 'empty' }, t('live.none')),
    can('record') && status, note, timeline, player, list);

  function fail(e) {
    fill(note, e.message);
    note.hidden = false;
  }

  let shown = null; // the status on screen: a form being typed in is left alone
  async function showStatus() {
    if (!can('record') || !camera) return;
    try {
      const s = await api('GET', `/api/nvr/status/${enc(camera)}`);
      if (!s.is_recording && shown === `${camera}:false`) return;
      if (shown === `${camera}:true` && !s.is_recording) load(); // a recording just ended
      shown = `${camera}:${s.is_recording}`;
      const form = h('form', {
        class: 'inline',
        onsubmit: async (e) => {
          e.preventDefault();
          const v = values(e.target);
          const body = e.submitter && e.submitter.name === 'continuous' ? {} : { duration: Number(v.duration) };
          try { await api('POST', `/api/nvr/record/${enc(camera)}`, body); note.hidden = true; } catch (err) { fail(err); }
          shown = null;
          showStatus();
          load();
        },
      },
      h('label', null, t('rec.for'), ' ', h('input', { name: 'duration', type: 'number', min: 1, value: 300, required: true }), ' ', t('rec.seconds')),
      h('button', { type: 'submit', name: 'fixed', id: 'rec-fixed' }, t('rec.start')),
      h('button', { type: 'submit', name: 'continuous', id: 'rec-continuous', formnovalidate: true }, t('rec.continuous')));
      fill(status, s.is_recording
        ? [h('span', { class: 'rec' }, t('rec.recording', { time: duration(s.elapsed_sec) })),
          h('button', { id: 'rec-stop', onclick: async () => {
            try { await api('DELETE', `/api/nvr/record/${enc(camera)}`); } catch (err) { fail(err); }
            shown = null;
            showStatus();
            load();
          } }, t('rec.stop'))]
        : form);
    } catch (e) {
      fail(e);
    }
  }

  async function load() {
    fill(list);
    fill(timeline);
    if (!camera) return;
    const start = new Date(`${day}T00:00:00`);
    const end = new Date(start.getTime() + DAY_MS);
    let rows = [];
    try {
      const q = `camera_ip=${enc(camera)}&start_date=${enc(start.toISOString())}&end_date=${enc(end.toISOString())}&limit=500`;
      rows = (await api('GET', `/api/nvr/recordings?${q}`)).recordings;
      note.hidden = true;
    } catch (e) {
      fail(e);
      return;
    }
    const time = (s) => new Date(s).toLocaleTimeString(locale());
    // the day: one bar per recording, placed by its local start and end
    fill(timeline, [0, 6, 12, 18].map((hr) => h('span', { class: 'hour', 'data-hour': hr }, `${hr}:00`)),
      rows.map((r) => {
        const a = Math.max(0, new Date(r.start_time) - start);
        const b = Math.min(DAY_MS, (r.end_time ? new Date(r.end_time) : new Date()) - start);
        const bar = h('button', { class: `bar ${r.status}`, title: `${time(r.start_time)} · ${duration(r.duration_sec)}`, onclick: () => play(r) });
        bar.style.left = `${(a / DAY_MS) * 100}%`;
        bar.style.width = `max(3px, ${((b - a) / DAY_MS) * 100}%)`;
        return bar;
      }));
    fill(list, rows.length === 0 ? h('p', { class: 'empty' }, t('rec.none')) : h('table', { class: 'list' },
      h('thead', null, h('tr', null, [t('rec.start_time'), t('rec.length'), t('rec.size'), t('rec.status'), ''].map((x) => h('th', null, x)))),
      h('tbody', null, rows.map((r) => h('tr', { 'data-recording': r.id },
        h('td', null, time(r.start_time)),
        h('td', null, duration(r.duration_sec)),
        h('td', null, bytes(r.file_size)),
        h('td', null, t(`rec.status_${r.status}`), r.note ? h('small', null, ` (${r.note})`) : null),
        h('td', { class: 'actions' },
          h('button', { class: 'play', onclick: () => play(r) }, t('rec.play')),
          h('a', { class: 'button', href: r.download_url, download: `${r.camera_ip}-${r.start_time}.mp4` }, t('rec.download')),
          can('deleteRecordings') && r.status !== 'recording' && h('button', {
            class: 'danger',
            onclick: async () => {
              if (!confirm(t('rec.confirm_delete'))) return;
              try { await api('DELETE', `/api/nvr/recordings/${r.id}`); } catch (e) { fail(e); }
              load();
            },
          }, t('delete'))))))));
  }

  function play(r) {
    player.hidden = false;
    player.src = r.download_url;
    player.dataset.recording = r.id;
    player.play().catch(() => {});
  }

  await Promise.all([showStatus(), load()]);
  const timer = setInterval(showStatus, 2000);
  return () => { clearInterval(timer); player.removeAttribute('src'); player.load(); };
}
