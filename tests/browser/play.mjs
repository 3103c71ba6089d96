// Plays an HLS URL in headless Chromium with hls.js and prints what happened as JSON:
// how far currentTime advanced, hls.js errors, the video size, and how far behind live it
// played (from EXT-X-PROGRAM-DATE-TIME). Usage: node play.mjs <hls_url> <page_port> [seconds]
import fs from 'node:fs';
import http from 'node:http';
import { chromium } from 'playwright-core';

const [url, pagePort, seconds = '8'] = process.argv.slice(2);
const hlsJs = fs.readFileSync(new URL('./node_modules/hls.js/dist/hls.min.js', import.meta.url));
const html = `<!doctype html><meta charset=utf-8><video id=v muted autoplay playsinline></video>
<script src="/hls.js"></script><script>
window.result = { errors: [], fatal: null };
const v = document.getElementById('v');
const hls = new Hls({ lowLatencyMode: true });
hls.on(Hls.Events.ERROR, (_e, d) => {
  window.result.errors.push(d.details + (d.fatal ? ' (fatal)' : ''));
  if (d.fatal) window.result.fatal = d.details;
});
hls.loadSource(${JSON.stringify(url)});
hls.attachMedia(v);
v.play().catch(() => {});
window.hls = hls;
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
const out = { started: false, advanced: 0, latencies: [], errors: [], fatal: null, width: 0, height: 0 };
try {
  const page = await browser.newPage();
  await page.goto(`http://127.0.0.1:${pagePort}/`);
  const state = () => page.evaluate(() => ({
    t: document.getElementById('v').currentTime,
    w: document.getElementById('v').videoWidth,
    h: document.getElementById('v').videoHeight,
    pdt: window.hls.playingDate ? window.hls.playingDate.getTime() : null,
    now: Date.now(),
    r: window.result,
  }));
  const deadline = Date.now() + 30000;
  let s = await state();
  while (s.t <= 0.2 && !s.r.fatal && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 250));
    s = await state();
  }
  out.started = s.t > 0.2;
  const t0 = s.t;
  const end = Date.now() + Number(seconds) * 1000;
  while (out.started && Date.now() < end && !s.r.fatal) {
    await new Promise((r) => setTimeout(r, 500));
    s = await state();
    if (s.pdt) out.latencies.push((s.now - s.pdt) / 1000);
  }
  out.advanced = s.t - t0;
  out.errors = s.r.errors;
  out.fatal = s.r.fatal;
  out.width = s.w;
  out.height = s.h;
} finally {
  await browser.close();
  server.close();
}
console.log(JSON.stringify(out));
