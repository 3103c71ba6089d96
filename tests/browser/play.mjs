// Plays a camera in headless Chromium with hls.js and prints what happened as JSON: how long
// from asking for the stream to the first `playing` event (what a person clicking a camera
// waits), how far currentTime advanced, hls.js errors, the video size, and how far behind
// live it played (from EXT-X-PROGRAM-DATE-TIME).
// Usage: node play.mjs <hls_url | stream API URL> <page_port> [seconds] [token] [joins]
// With a token, the page asks the stream API (GET /api/cameras/stream/<camera>) for the
// hls_url itself, as a web page would on a click. `joins` (milliseconds, comma-separated,
// default "0") starts one more player per entry that long after the first one asked: players
// joining a camera that has just started. The top-level fields describe the first player;
// `players` has each one's first `playing`, advance, errors and media events.
// HLS_DEBUG=<file> appends one player's hls.js debug log to that file: the first one's, or
// HLS_DEBUG_PLAYER=<index>'s.
import fs from 'node:fs';
import http from 'node:http';
import { chromium } from 'playwright-core';

const [url, pagePort, seconds = '8', token = '', joins = '0'] = process.argv.slice(2);
const delays = joins.split(',').map(Number);
const hlsJs = fs.readFileSync(new URL('./node_modules/hls.js/dist/hls.min.js', import.meta.url));
const html = `<!doctype html><meta charset=utf-8><body></body>
<script src="/hls.js"></script><script>
window.players = [];
function join(src) {
  const v = document.createElement('video');
  v.muted = true; v.autoplay = true; v.playsInline = true; v.width = 320;
  document.body.appendChild(v);
  const p = { v, errors: [], fatal: null, firstPlayingMs: null, t0: performance.now() };
  const hls = new Hls({ lowLatencyMode: true, debug: String(window.players.length) === (location.hash.slice(6) || '0') && location.hash.startsWith('#debug') });
  p.hls = hls;
  hls.on(Hls.Events.ERROR, (_e, d) => {
    p.errors.push(d.details + (d.fatal ? ' (fatal)' : ''));
    if (d.fatal) p.fatal = d.details;
  });
  p.log = [];
  const ev = (n, x) => p.log.push([Math.round(performance.now() - p.t0), n, x]);
  hls.on(Hls.Events.LEVEL_LOADED, (_e, d) => ev('level', d.details.fragments.length + ' frags edge ' + d.details.edge.toFixed(2)));
  hls.on(Hls.Events.FRAG_BUFFERED, (_e, d) => ev('buffered', d.frag.sn + '.' + (d.part ? d.part.index : '-') + ' ' + d.frag.start.toFixed(2)));
  hls.on(Hls.Events.ERROR, (_e, d) => ev('error', d.details));
  v.addEventListener('waiting', () => ev('waiting', v.currentTime));
  v.addEventListener('playing', () => ev('playing', v.currentTime));
  v.addEventListener('playing', () => {
    if (p.firstPlayingMs === null) p.firstPlayingMs = performance.now() - p.t0;
  });
  window.players.push(p);
  return p;
}
(async () => {
  const delays = ${JSON.stringify(delays)};
  const first = join(null);
  let src = ${JSON.stringify(url)};
  const token = ${JSON.stringify(token)};
  if (token) {
    const r = await fetch(src, { headers: { authorization: 'Bearer ' + token } });
    src = (await r.json()).hls_url;
  }
  const start = (p) => { p.hls.loadSource(src); p.hls.attachMedia(p.v); p.v.play().catch(() => {}); };
  start(first);
  for (const d of delays.slice(1)) {
    setTimeout(() => start(join()), Math.max(0, d - (performance.now() - first.t0)));
  }
})();
</script>`;

const server = http
  .createServer((req, res) => {
    if (req.url === '/hls.js') {
      res.writeHead(200, { 'content-type': 'text/javascript' });
      res.end(hlsJs);
    } else {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end(html);
    }
  })
  .listen(Number(pagePort), '127.0.0.1');

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--autoplay-policy=no-user-gesture-required'],
});
const out = { started: false, advanced: 0, latencies: [], errors: [], fatal: null, width: 0, height: 0, firstPlayingMs: null, players: [] };
try {
  const page = await browser.newPage();
  if (process.env.HLS_DEBUG) page.on('console', (m) => fs.appendFileSync(process.env.HLS_DEBUG, m.text() + '\n'));
  await page.goto(`http://127.0.0.1:${pagePort}/${process.env.HLS_DEBUG ? "#debug" + (process.env.HLS_DEBUG_PLAYER || "") : ""}`);
  const state = () => page.evaluate(() => ({
    now: Date.now(),
    players: window.players.map((p) => ({
      t: p.v.currentTime,
      w: p.v.videoWidth,
      h: p.v.videoHeight,
      pdt: p.hls.playingDate ? p.hls.playingDate.getTime() : null,
      errors: p.errors,
      fatal: p.fatal,
      firstPlayingMs: p.firstPlayingMs,
      log: p.log,
    })),
  }));
  const all = (s) => s.players.length === delays.length;
  const fatal = (s) => s.players.some((p) => p.fatal);
  // every player has joined and started (or one failed, or 30 s passed)
  const deadline = Date.now() + 30000;
  let s = await state();
  while (!(all(s) && s.players.every((p) => p.t > 0.2)) && !fatal(s) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 250));
    s = await state();
  }
  out.started = all(s) && s.players.every((p) => p.t > 0.2);
  const t0 = s.players.map((p) => p.t);
  const end = Date.now() + Number(seconds) * 1000;
  while (out.started && Date.now() < end && !fatal(s)) {
    await new Promise((r) => setTimeout(r, 500));
    s = await state();
    const first = s.players[0];
    if (first.pdt) out.latencies.push((s.now - first.pdt) / 1000);
  }
  out.players = s.players.map((p, i) => ({
    joinedMs: delays[i],
    firstPlayingMs: p.firstPlayingMs,
    advanced: p.t - (t0[i] ?? 0),
    errors: p.errors,
    fatal: p.fatal,
    log: p.log,
  }));
  const first = s.players[0] || {};
  out.advanced = first.t - (t0[0] ?? 0);
  out.errors = first.errors || [];
  out.fatal = s.players.map((p) => p.fatal).find((f) => f) || null;
  out.firstPlayingMs = first.firstPlayingMs;
  out.width = first.w;
  out.height = first.h;
} finally {
  await browser.close();
  server.close();
}
console.log(JSON.stringify(out));
