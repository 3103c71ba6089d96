// live.js — the live grid: 1/4/9/16 tiles of the cameras the user may watch, each with its
// name and its session's state. A click enlarges a tile; Escape or the button goes back.
//
// Only what can be seen plays: a tile scrolled out of view, or every tile of a hidden tab,
// stops its player (the camera's session ends by itself STREAM_TIMEOUT later if nobody else
// watches). Up to four tiles, and an enlarged one, play in low-latency mode (hls.js blocking
// playlist reloads and parts, ~1 s behind); larger grids play whole segments (a few seconds
// behind), because a
// browser opens at most six HTTP/1.1 connections to one host and each low-latency player holds
// one open: nine or sixteen of them would starve each other. (Four of different cameras fit.)
// A whole-segment tile starts playing once it holds 2.5 s: a session that has just started
// sends a short first GOP, and a player started on it would freeze until the next segment.

import Hls from './hls-1.7.4.light.min.mjs';
import { h, fill } from './dom.js';
import { api, can, enc } from './api.js';
import { t } from './i18n.js';

const LAYOUTS = [1, 4, 9, 16];
const POLL_MS = 3000;

export async function render(main) {
  let layout = Number(localStorage.getItem('vigia.layout')) || 4;
  if (!LAYOUTS.includes(layout)) layout = 4;
  let page = 0;
  let focus = null; // the enlarged camera's id
  let cameras = [];
  const tiles = new Map(); // camera id → Tile

  const seen = new IntersectionObserver((entries) => {
    for (const e of entries) {
      const tile = e.target.tile;
      if (tile) { tile.visible = e.isIntersecting; tile.sync(); }
    }
  });
  const onVisibility = () => tiles.forEach((tile) => tile.sync());
  const onKey = (e) => { if (e.key === 'Escape' && focus) { focus = null; draw(); } };
  document.addEventListener('visibilitychange', onVisibility);
  document.addEventListener('keydown', onKey);

  const layoutBar = h('div', { class: 'seg', role: 'group', 'aria-label': t('live.layout') });
  const pager = h('div', { class: 'pager' });
  const grid = h('div', { class: 'grid', id: 'grid' });
  const empty = h('p', { class: 'empty', hidden: true });
  fill(main, h('div', { class: 'toolbar' }, h('h1', null, t('nav.live')), layoutBar, pager), empty, grid);

  function shown() {
    if (focus) return cameras.filter((c) => c.id === focus);
    return cameras.slice(page * layout, page * layout + layout);
  }

  function draw() {
    fill(layoutBar, LAYOUTS.map((n) => h('button', {
      class: n === layout && !focus ? 'on' : '',
      title: t('live.tiles', { n }),
      'data-layout': n,
      onclick: () => { layout = n; focus = null; page = 0; localStorage.setItem('vigia.layout', n); draw(); },
    }, n === 1 ? '1' : `${Math.sqrt(n)}×${Math.sqrt(n)}`)));
    const pages = Math.max(1, Math.ceil(cameras.length / layout));
    page = Math.min(page, pages - 1);
    fill(pager, focus
      ? h('button', { onclick: () => { focus = null; draw(); } }, t('live.back'))
      : pages > 1 && [
        h('button', { disabled: page === 0, onclick: () => { page--; draw(); } }, '‹'),
        h('span', null, t('live.page', { n: page + 1, of: pages })),
        h('button', { disabled: page >= pages - 1, onclick: () => { page++; draw(); } }, '›'),
      ]);
    const want = shown();
    const ll = focus !== null || layout <= 4;
    for (const [id, tile] of tiles) {
      if (!want.some((c) => c.id === id) || tile.ll !== ll) {
        seen.unobserve(tile.el);
        tile.destroy();
        tiles.delete(id);
      }
    }
    const side = focus ? 1 : Math.sqrt(layout);
    grid.className = `grid g${side}`;
    fill(grid, want.map((cam) => {
      let tile = tiles.get(cam.id);
      if (!tile) {
        tile = new Tile(cam, ll, () => { focus = focus ? null : cam.id; draw(); });
        tiles.set(cam.id, tile);
        seen.observe(tile.el);
      }
      tile.update(cam);
      return tile.el;
    }));
    empty.hidden = cameras.length > 0;
    fill(empty, cameras.length ? '' : t(can('manageCameras') ? 'live.none_admin' : 'live.none'));
  }

  async function refresh() {
    try {
      const list = (await api('GET', '/api/cameras/list')).cameras;
      const changed = list.map((c) => c.id).join() !== cameras.map((c) => c.id).join();
      cameras = list;
      if (changed) draw();
      else for (const cam of cameras) tiles.get(cam.id)?.update(cam);
    } catch (e) {
      fill(empty, e.message);
      empty.hidden = false;
    }
  }

  await refresh();
  draw();
  const timer = setInterval(refresh, POLL_MS);
  return () => {
    clearInterval(timer);
    seen.disconnect();
    document.removeEventListener('visibilitychange', onVisibility);
    document.removeEventListener('keydown', onKey);
    tiles.forEach((tile) => tile.destroy());
  };
}

/** One camera's tile: a player that runs while it can be seen, its name and its state. */
class Tile {
  constructor(cam, ll, onEnlarge) {
    this.cam = cam;
    this.ll = ll;
    this.visible = false;
    this.hls = null;
    this.native = false;
    this.starting = false;
    this.retry = null;
    this.problem = null;
    this.video = h('video', { muted: true, playsinline: true, autoplay: true });
    this.video.muted = true;
    this.name = h('span', { class: 'name' });
    this.badge = h('span', { class: 'badge' });
    this.rec = h('span', { class: 'rec', hidden: true }, t('live.rec'));
    this.recButton = can('record') ? h('button', {
      class: 'record',
      onclick: (e) => { e.stopPropagation(); this.toggleRecording(); },
    }) : null;
    this.el = h('figure', { class: 'tile', 'data-camera': cam.id, onclick: onEnlarge },
      this.video,
      h('figcaption', null, this.name, this.rec, this.badge, this.recButton));
    this.el.tile = this;
  }

  update(cam) {
    this.cam = cam;
    fill(this.name, cam.name || cam.id);
    const s = cam.stream || { state: 'idle' };
    let state = cam.is_active ? s.state : 'disabled';
    let detail = '';
    if (state === 'retrying') detail = t('state.next_try', { n: s.retry_in_sec ?? '?' });
    if (this.problem && state !== 'live') detail = this.problem;
    this.badge.className = `badge ${state}`;
    this.badge.title = s.last_error || s.reason || s.note || '';
    fill(this.badge, t(`state.${state}`), detail && ` · ${detail}`);
    this.rec.hidden = !cam.is_recording;
    if (this.recButton) {
      this.recButton.className = cam.is_recording ? 'record on' : 'record';
      fill(this.recButton, cam.is_recording ? t('rec.stop') : t('rec.start'));
    }
    this.sync();
  }

  wanted() {
    return this.visible && !document.hidden && this.cam.is_active;
  }

  sync() {
    if (this.wanted()) this.start();
    else this.stop();
  }

  async start() {
    if (this.hls || this.native || this.starting || this.retry) return;
    this.starting = true;
    try {
      const s = await api('GET', `/api/cameras/stream/${enc(this.cam.id)}`);
      this.problem = null;
      if (this.wanted() && !this.hls && !this.native) this.play(s.hls_url);
    } catch (e) {
      this.problem = e.message;
      this.later();
    } finally {
      this.starting = false;
    }
  }

  play(url) {
    if (Hls.isSupported()) {
      const hls = new Hls({
        lowLatencyMode: this.ll,
        enableWorker: false,
        backBufferLength: 4,
        maxBufferLength: 8,
      });
      hls.on(Hls.Events.ERROR, (_, d) => {
        if (!d.fatal) return;
        this.problem = d.details;
        this.stop();
        this.later();
      });
      if (!this.ll) {
        const v = this.video;
        v.autoplay = false;
        const ready = () => {
          const b = v.buffered;
          if (v.paused && b.length && b.end(b.length - 1) - v.currentTime >= 2.5) {
            hls.off(Hls.Events.FRAG_BUFFERED, ready);
            v.play().catch(() => {});
          }
        };
        hls.on(Hls.Events.FRAG_BUFFERED, ready);
      }
      hls.loadSource(url);
      hls.attachMedia(this.video);
      this.hls = hls;
      if (!this.ll) return;
    } else if (this.video.canPlayType('application/vnd.apple.mpegurl')) {
      this.video.src = url; // Safari: native HLS, low latency included
      this.native = true;
    } else {
      this.problem = t('live.no_player');
      return;
    }
    this.video.play().catch(() => {});
  }

  /** Tries again in 3 s (a camera that restarts, a session that ended). */
  later() {
    clearTimeout(this.retry);
    this.retry = setTimeout(() => { this.retry = null; this.sync(); }, 3000);
  }

  stop() {
    if (this.hls) { this.hls.destroy(); this.hls = null; }
    if (this.native) {
      this.video.removeAttribute('src');
      this.video.load();
      this.native = false;
    }
  }

  destroy() {
    clearTimeout(this.retry);
    this.retry = null;
    this.visible = false;
    this.stop();
  }

  async toggleRecording() {
    const path = `/api/nvr/record/${enc(this.cam.id)}`;
    try {
      if (this.cam.is_recording) await api('DELETE', path);
      else await api('POST', path, {});
      this.update({ ...this.cam, is_recording: !this.cam.is_recording });
    } catch (e) {
      this.problem = e.message;
      this.update(this.cam);
    }
  }
}
