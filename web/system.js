// system.js — the box: health, the /stats figures (streams, recordings, disk, memory) and, in
// a fleet, the boxes that share its database. Refreshed every 5 s.

import { h, fill, bytes, duration } from './dom.js';
import { api, can } from './api.js';
import { t } from './i18n.js';

export async function render(main) {
  const body = h('div', { id: 'system' });
  fill(main, h('div', { class: 'toolbar' }, h('h1', null, t('nav.system'))), body);

  async function load() {
    const [health, stats, nodes] = await Promise.all([
      api('GET', '/health').catch((e) => ({ status: e.message })),
      api('GET', '/stats'),
      can('manageCameras') ? api('GET', '/api/nodes').catch(() => null) : null,
    ]);
    const disk = stats.disk && stats.disk.data_dir;
    const row = (k, v) => h('tr', null, h('th', null, k), h('td', null, v));
    fill(body,
      h('table', { class: 'facts' },
        row(t('sys.health'), health.status === 'ok' ? t('sys.ok') : health.status),
        row(t('sys.version'), stats.version),
        row(t('sys.uptime'), duration(stats.uptime_sec)),
        row(t('sys.cameras'), t('sys.cameras_value', stats.cameras)),
        row(t('sys.streams'), `${stats.streams.active} / ${stats.streams.max}`),
        row(t('sys.recordings'), stats.recordings.running),
        row(t('sys.memory'), bytes(stats.memory.rss_bytes)),
        row(t('sys.disk'), disk ? t('sys.disk_value', { free: bytes(disk.free_bytes), total: bytes(disk.total_bytes) }) : '–')),
      nodes && nodes.nodes.length > 1 ? [h('h2', null, t('sys.nodes')), h('table', { class: 'list' },
        h('thead', null, h('tr', null, [t('sys.node'), t('sys.online'), t('sys.cameras'), t('sys.version')].map((x) => h('th', null, x)))),
        h('tbody', null, nodes.nodes.map((n) => h('tr', null,
          h('td', null, n.name, n.this_node ? h('small', null, ` (${t('sys.this_box')})`) : null),
          h('td', null, n.online ? t('sys.ok') : t('sys.down', { s: n.heartbeat_age_sec })),
          h('td', null, n.cameras),
          h('td', null, n.version)))))] : null);
  }

  await load();
  const timer = setInterval(() => load().catch(() => {}), 5000);
  return () => clearInterval(timer);
}
