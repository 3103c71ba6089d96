// Drives vigia's own web page in headless Chromium as its users would, from a fresh box:
// create the first admin; find a DVR's channels with a discovery scan and add them; watch
// the 4-tile grid and the 9-tile one (every tile's currentTime must advance ≥ 5 s in 8 s); record 5 s from the
// page and play the recording in the page; create a viewer with one camera and log in as
// them (one tile, no record or delete control); change a password and log in with the new
// one; switch to Spanish. Screenshots go to <shots>. Prints one JSON object: every step with
// its result, the page's console errors and Content-Security-Policy violations.
// Usage: node page.mjs <base_url> <shots_dir> <dvr_range> <dvr_channels>
import fs from 'node:fs';
import { chromium } from 'playwright-core';

const [base, shots, dvrRange, channels] = process.argv.slice(2);
fs.mkdirSync(shots, { recursive: true });
const ADMIN = ['admin', 'admin-pass-1'];
const VIEWER = ['guard', 'guard-pass-1'];
const out = { steps: [], console: [], csp: [], ok: false };
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--autoplay-policy=no-user-gesture-required'],
});
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function step(name, f) {
  const t0 = Date.now();
  try {
    const detail = await f();
    out.steps.push({ name, ok: true, ms: Date.now() - t0, detail: detail ?? null });
  } catch (e) {
    out.steps.push({ name, ok: false, ms: Date.now() - t0, error: String(e && e.stack || e) });
    throw e;
  }
}

function check(cond, what) {
  if (!cond) throw new Error(what);
}

try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 820 }, locale: 'en-GB' });
  const page = await context.newPage();
  page.on('console', (m) => { if (m.type() === 'error') out.console.push(m.text()); });
  page.on('pageerror', (e) => out.console.push(`pageerror: ${e.message}`));
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      (window.__csp = window.__csp || []).push(`${e.violatedDirective} ${e.blockedURI}`);
    });
  });
  const shot = (name) => page.screenshot({ path: `${shots}/${name}.png` });
  const login = async ([user, pass]) => {
    await page.waitForSelector('#login-form');
    await page.fill('#login-form input[name=username]', user);
    await page.fill('#login-form input[name=password]', pass);
    await page.click('#login-submit');
  };
  const logout = async () => {
    await page.click('#logout');
    await page.waitForSelector('#login-form');
  };
  const videoTimes = () => page.$$eval('#grid video', (vs) => vs.map((v) => v.currentTime));

  await step('a fresh box asks for its first admin', async () => {
    await page.goto(base);
    await page.waitForSelector('#login-form input[name=repeat]');
    await shot('first-admin');
    await page.fill('#login-form input[name=username]', ADMIN[0]);
    await page.fill('#login-form input[name=password]', ADMIN[1]);
    await page.fill('#login-form input[name=repeat]', ADMIN[1]);
    await page.click('#login-submit');
    await page.waitForSelector('#view-live');
    check(await page.isVisible('#nav-cameras') && await page.isVisible('#nav-users'), 'an admin sees Cameras and Users');
  });

  await step('a discovery scan lists the DVR channels and adds them', async () => {
    await page.click('#nav-cameras');
    await page.waitForSelector('#disc-range');
    await page.fill('#disc-range', dvrRange);
    await page.click('#disc-run');
    await page.waitForSelector('#discovery-results tbody tr', { timeout: 30000 });
    const rows = await page.$$eval('#discovery-results tbody tr', (trs) => trs.map((tr) => tr.dataset.channel));
    check(rows.length === Number(channels), `the scan listed ${rows.length} channels, not ${channels}: ${rows}`);
    for (const b of await page.$$('#discovery-results tbody tr button')) {
      await b.click();
      await page.waitForFunction((el) => el.disabled, b);
    }
    await page.waitForFunction((n) => document.querySelectorAll('#camera-list tbody tr').length === n, Number(channels));
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: `${shots}/cameras.png`, fullPage: true });
    return { channels: rows };
  });

  let cams = [];
  await step('the 4-tile grid plays every tile', async () => {
    await page.click('#nav-live');
    await page.click('[data-layout="4"]');
    await page.waitForFunction(() => document.querySelectorAll('#grid video').length === 4);
    cams = await page.$$eval('#grid .tile', (ts) => ts.map((t) => t.dataset.camera));
    await page.waitForFunction(() => [...document.querySelectorAll('#grid video')].every((v) => v.currentTime > 0.2), null, { timeout: 30000 });
    const t0 = await videoTimes();
    await sleep(8000);
    const t1 = await videoTimes();
    const advanced = t1.map((t, i) => +(t - t0[i]).toFixed(2));
    await page.waitForFunction(() => [...document.querySelectorAll('#grid .badge')].every((b) => b.classList.contains('live')), null, { timeout: 5000 });
    await shot('grid');
    check(advanced.every((a) => a >= 5), `every tile advances ≥ 5 s in 8 s: ${advanced}`);
    check(await page.$$eval('#grid .record', (b) => b.length) === 4, 'an admin has a record control on every tile');
    return { cameras: cams, advanced };
  });

  await step('the 9-tile grid plays every tile', async () => {
    await page.click('[data-layout="9"]');
    await page.waitForFunction(() => document.querySelectorAll('#grid video').length === 9);
    await page.waitForFunction(() => [...document.querySelectorAll('#grid video')].every((v) => v.currentTime > 0.2), null, { timeout: 30000 });
    const t0 = await videoTimes();
    await sleep(8000);
    const t1 = await videoTimes();
    const advanced = t1.map((t, i) => +(t - t0[i]).toFixed(2));
    await shot('grid-9');
    check(advanced.every((a) => a >= 5), `every tile advances ≥ 5 s in 8 s: ${advanced}`);
    await page.click('[data-layout="4"]');
    await page.waitForFunction(() => document.querySelectorAll('#grid video').length === 4);
    return { advanced };
  });

  await step('only what can be seen fetches: tiles off screen, a hidden tab', async () => {
    const fetched = new Set();
    const listen = (r) => {
      const m = r.url().match(/\/api\/cameras\/streams\/([^/]+)\//);
      if (m) fetched.add(decodeURIComponent(m[1]));
    };
    // a short window: the lower row of the 2×2 grid is off screen
    await page.setViewportSize({ width: 1280, height: 420 });
    await sleep(1500);
    page.on('request', listen);
    await sleep(3000);
    page.off('request', listen);
    const visible = await page.$$eval('#grid .tile', (ts) => ts.filter((t) => t.getBoundingClientRect().top < innerHeight).map((t) => t.dataset.camera));
    check(visible.length === 2 && [...fetched].every((c) => visible.includes(c)) && fetched.size === 2,
      `only the two visible tiles fetch: fetched ${[...fetched]}, visible ${visible}`);
    await page.setViewportSize({ width: 1280, height: 820 });
    // a hidden tab: nothing at all
    await page.evaluate(() => {
      Object.defineProperty(document, 'hidden', { value: true, configurable: true });
      document.dispatchEvent(new Event('visibilitychange'));
    });
    await sleep(1000);
    fetched.clear();
    page.on('request', listen);
    await sleep(3000);
    page.off('request', listen);
    check(fetched.size === 0, `a hidden tab fetches nothing: ${[...fetched]}`);
    await page.evaluate(() => {
      Object.defineProperty(document, 'hidden', { value: false, configurable: true });
      document.dispatchEvent(new Event('visibilitychange'));
    });
    await page.waitForFunction(() => [...document.querySelectorAll('#grid video')].every((v) => !v.paused && v.readyState >= 2), null, { timeout: 20000 });
    return { visible };
  });

  await step('a tile enlarges on a click and plays in low-latency mode', async () => {
    await page.click(`#grid .tile[data-camera="${cams[0]}"] video`);
    await page.waitForFunction(() => document.querySelectorAll('#grid video').length === 1 && document.querySelector('#grid').classList.contains('g1'));
    await page.waitForFunction(() => document.querySelector('#grid video').currentTime > 1, null, { timeout: 20000 });
    await page.keyboard.press('Escape');
    await page.waitForFunction(() => document.querySelectorAll('#grid video').length === 4);
  });

  await step('record 5 s from the page and play it in the page', async () => {
    await page.goto(`${base}/#/recordings?camera=${encodeURIComponent(cams[0])}`);
    await page.waitForSelector('#rec-fixed');
    await page.fill('#rec-status input[name=duration]', '5');
    await page.click('#rec-fixed');
    await page.waitForSelector('#rec-stop');
    await page.waitForSelector('#rec-list tbody tr', { timeout: 15000 });
    // the recording ends by itself; the list shows it complete
    await page.waitForFunction(() => [...document.querySelectorAll('#rec-list tbody tr')].some((tr) => /complete/.test(tr.textContent)), null, { timeout: 30000 });
    await page.click('#rec-list tbody tr .play');
    await page.waitForFunction(() => {
      const v = document.querySelector('#rec-player');
      return v && v.currentTime > 1.5;
    }, null, { timeout: 15000 });
    const duration = await page.$eval('#rec-player', (v) => v.duration);
    check(duration > 4 && duration < 7, `the recording lasts ~5 s: ${duration}`);
    const href = await page.$eval('#rec-list tbody tr a.button', (a) => a.href);
    const dl = await page.evaluate(async (u) => {
      const r = await fetch(u);
      return { status: r.status, type: r.headers.get('content-type'), size: (await r.arrayBuffer()).byteLength };
    }, href);
    check(dl.status === 200 && dl.type === 'video/mp4' && dl.size > 10000, `the download link works: ${JSON.stringify(dl)}`);
    check(await page.$$eval('#timeline .bar', (b) => b.length) >= 1, 'the day timeline shows the recording');
    await shot('recordings');
    return { duration, download: dl };
  });

  await step('an admin creates a viewer and assigns one camera', async () => {
    await page.click('#nav-users');
    await page.fill('#user-create input[name=username]', VIEWER[0]);
    await page.fill('#user-create input[name=password]', VIEWER[1]);
    await page.selectOption('#user-create select[name=role]', 'viewer');
    await page.click('#user-create button[type=submit]');
    await page.waitForSelector(`tr[data-user="${VIEWER[0]}"]`);
    check(await page.$eval('#user-create select[name=role]', (x) => x.value) === 'viewer', 'the form returns to the least role');
    await page.click(`tr[data-user="${VIEWER[0]}"] button:not(.danger)`);
    await page.waitForSelector(`[data-editing="${VIEWER[0]}"] input[data-assign="${cams[1]}"]`);
    await page.check(`input[data-assign="${cams[1]}"]`);
    await sleep(300);
    check(!(await page.isVisible('#view-users .error')), 'the assignment is accepted');
    await shot('users');
  });

  await step('the viewer sees exactly one tile and no record or delete control', async () => {
    await logout();
    await login(VIEWER);
    await page.waitForSelector('#view-live');
    await page.waitForFunction(() => document.querySelectorAll('#grid .tile').length >= 1);
    await sleep(500);
    const tiles = await page.$$eval('#grid .tile', (ts) => ts.map((t) => t.dataset.camera));
    check(tiles.length === 1 && tiles[0] === cams[1], `one tile, the assigned camera: ${tiles}`);
    check(await page.$$eval('.record', (b) => b.length) === 0, 'no record control');
    check(!(await page.isVisible('#nav-cameras')) && !(await page.isVisible('#nav-users')), 'no admin menus');
    await page.waitForFunction(() => document.querySelector('#grid video').currentTime > 0.5, null, { timeout: 20000 });
    await shot('viewer');
    await page.click('#nav-recordings');
    await page.waitForSelector('#rec-list');
    await sleep(300);
    check(await page.$$eval('#rec-status, #rec-fixed, #rec-list .danger', (b) => b.length) === 0, 'no record or delete control among recordings');
    return { tiles };
  });

  await step('a password change, then a login with the new one', async () => {
    await page.click('#nav-account');
    await page.fill('#password-form input[name=old_password]', VIEWER[1]);
    await page.fill('#password-form input[name=new_password]', 'guard-pass-2');
    await page.fill('#password-form input[name=repeat]', 'guard-pass-2');
    await page.click('#password-form button[type=submit]');
    await page.waitForSelector('#view-account .ok:not([hidden])');
    await logout();
    await login(VIEWER);
    await page.waitForSelector('#login-form .error:not([hidden])');
    const refused = await page.textContent('#login-form .error');
    await login([VIEWER[0], 'guard-pass-2']);
    await page.waitForSelector('#view-live');
    return { old_password: refused };
  });

  await step('the page speaks Spanish', async () => {
    await page.selectOption('#lang', 'es');
    await page.waitForFunction(() => document.querySelector('#nav-live').textContent === 'En vivo');
    check(await page.getAttribute('html', 'lang') === 'es', 'html lang follows');
    await page.selectOption('#lang', 'en');
    await page.waitForFunction(() => document.querySelector('#nav-live').textContent === 'Live');
  });

  out.csp = await page.evaluate(() => window.__csp || []);
  out.ok = true;
} catch {
  // the failed step is in out.steps
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
