// Devices: the twin list (current version, last seen, last session's state) and one
// device's session history (#/devices/<id>).

import * as api from '../api.js';
import * as catalog from '../catalog.js';
import { live } from '../live.js';
import { age, clear, el, emptyRow, short, stateBadge, tableWrap, when } from '../ui.js';

export function render(main, args) {
  if (args[0]) return renderDevice(main, args[0]);
  const tbody = el('tbody');
  const err = el('p', { class: 'form-error', role: 'alert', hidden: true });
  const search = el('input', { type: 'search', id: 'dev-search', placeholder: 'device id' });
  let all = [];

  function draw() {
    const q = search.value.trim().toLowerCase();
    const list = all.filter((d) => !q || d.device_id.toLowerCase().includes(q));
    clear(tbody, list.length ? list.map((d) => el('tr', { class: 'link', dataset: { id: d.id },
      onclick: () => { location.hash = `#/devices/${d.id}`; } },
    el('td', {}, el('a', { href: `#/devices/${d.id}` }, d.device_id)),
    el('td', { class: 'hide-sm' }, catalog.tid(d.model)),
    el('td', { class: 'hide-sm' }, catalog.tid(d.channel)),
    el('td', {}, d.current_firmware_version || '—'),
    el('td', { class: 'nowrap', title: when(d.last_seen) }, d.last_seen ? `${age(d.last_seen)} ago` : '—'),
    el('td', {}, d.last_state ? stateBadge(d.last_state) : '—'))) : emptyRow(6, 'No devices yet.'));
  }

  async function reload() {
    try {
      all = await api.listAll('devices', {}, 5000);
      all.sort((a, b) => ((a.last_seen || '') < (b.last_seen || '') ? 1 : -1));
      err.hidden = true;
      draw();
    } catch (e) {
      err.textContent = e.detail;
      err.hidden = false;
    }
  }
  search.addEventListener('input', draw);
  clear(main, el('div', { class: 'page-head' }, el('h1', {}, 'Devices')),
    el('form', { class: 'filters', onsubmit: (e) => e.preventDefault() }, el('label', {}, 'Search', search)),
    err,
    tableWrap(el('table', { class: 'grid', id: 'devices-table' },
      el('thead', {}, el('tr', {}, el('th', {}, 'Device'), el('th', { class: 'hide-sm' }, 'Model'),
        el('th', { class: 'hide-sm' }, 'Channel'), el('th', {}, 'Version'), el('th', {}, 'Last seen'),
        el('th', {}, 'Last session'))),
      tbody)));
  let pending = null;
  const off = live.on((ev) => {
    if (ev.type === 'poll' || ev.type === 'session.created' || ev.type === 'session.state') {
      clearTimeout(pending);
      pending = setTimeout(reload, 300); // coalesce bursts
    }
  });
  catalog.load('models', 'channels').then(reload);
  return () => {
    off();
    clearTimeout(pending);
  };
}

function renderDevice(main, id) {
  const head = el('div', { class: 'card', id: 'device-facts' }, el('p', { class: 'muted' }, 'Loading…'));
  const tbody = el('tbody');
  clear(main, el('div', { class: 'page-head' }, el('a', { href: '#/devices', class: 'back' }, '← Devices'),
    el('h1', { id: 'device-title' }, 'Device')),
  head,
  el('h2', {}, 'Sessions'),
  tableWrap(el('table', { class: 'grid', id: 'device-sessions' },
    el('thead', {}, el('tr', {}, el('th', {}, 'State'), el('th', {}, 'Version'), el('th', {}, 'Created'),
      el('th', { class: 'hide-sm' }, 'Session'))),
    tbody)));

  async function load() {
    try {
      const d = await api.get(`devices/${encodeURIComponent(id)}`);
      document.getElementById('device-title').textContent = `Device ${d.device_id}`;
      clear(head, el('dl', { class: 'facts' },
        el('dt', {}, 'Model'), el('dd', {}, catalog.name(d.model)),
        el('dt', {}, 'Channel'), el('dd', {}, catalog.name(d.channel)),
        el('dt', {}, 'Current version'), el('dd', {}, d.current_firmware_version || '—'),
        el('dt', {}, 'Last seen'), el('dd', {}, when(d.last_seen)),
        el('dt', {}, 'Last session'), el('dd', {}, d.last_session
          ? el('a', { href: `#/sessions/${d.last_session}` }, short(d.last_session), ' ', stateBadge(d.last_state)) : '—')));
      const page = await api.get(`firmware-update/${api.qs({ device: d.id, limit: 200 })}`);
      const list = page.results.sort((a, b) => (a.create_time < b.create_time ? 1 : -1));
      clear(tbody, list.length ? list.map((s) => el('tr', { class: 'link', dataset: { id: s.id },
        onclick: () => { location.hash = `#/sessions/${s.id}`; } },
      el('td', {}, stateBadge(s.state, s.finished)),
      el('td', { class: 'nowrap' }, `${s.current_firmware_version || '—'} → ${s.target_firmware_version || '—'}`),
      el('td', { class: 'nowrap' }, when(s.create_time)),
      el('td', { class: 'hide-sm' }, el('a', { href: `#/sessions/${s.id}` }, el('code', {}, short(s.id)))))) : emptyRow(4, 'No sessions.'));
    } catch (e) {
      clear(head, el('p', { class: 'form-error', role: 'alert' }, e.detail));
    }
  }
  const off = live.on((ev) => {
    if (ev.type === 'poll' || (ev.data && (ev.data.device === id))) load();
  });
  catalog.load('models', 'channels').then(load);
  return off;
}
