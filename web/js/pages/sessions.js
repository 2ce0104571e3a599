// Sessions: a live table of firmware-update sessions with filters by state, model and
// device, and a detail view (#/sessions/<id>) with the state history as a timeline, the
// payload, the error, the download links with how much of the image was downloaded and,
// for mesh_smp steps, one bar per receiver.
// Both update from live events without a reload.

import * as api from '../api.js';
import * as catalog from '../catalog.js';
import { live } from '../live.js';
import {
  age, bytes, clear, el, emptyRow, progressBar, short, stateBadge, STATES, tableWrap, toast, when,
} from '../ui.js';

const LIST_LIMIT = 200;
const DONE = { created: 100, success: 100, up_to_date: 100, unconfirmed: 100, fail: 100 };

// Percent to show for a session: the mesh distribution's own figure, else by state.
export function progressOf(s) {
  const mesh = s.payload && s.payload.mesh;
  if (mesh && typeof mesh.progress === 'number') return mesh.progress;
  if (s.state in DONE) return DONE[s.state];
  return { ready: 0, queued: 5, processing: 50 }[s.state] ?? 0;
}

// Percent of the session's image sent at least once (delivered.coverage, 0..1).
export function downloadedOf(s) {
  const c = s.delivered && s.delivered.coverage;
  return typeof c === 'number' ? c * 100 : 0;
}

function downloadedBar(s, label, id) {
  const d = s.delivered || {};
  const bar = progressBar(downloadedOf(s), label);
  bar.title = `${bytes(d.bytes_sent ?? 0)} sent`;
  if (id) bar.id = id;
  return bar;
}

function matches(s, f) {
  if (f.state && s.state !== f.state) return false;
  if (f.model && s.model !== f.model) return false;
  if (f.device && s.device !== f.device && s.device_id !== f.device) return false;
  return true;
}

export function render(main, args) {
  if (args[0]) return renderDetail(main, args[0]);
  return renderList(main);
}

function renderList(main) {
  const filters = { state: '', model: '', device: '' };
  const rows = new Map();
  const stateSel = el('select', { id: 'f-state', name: 'state' }, el('option', { value: '' }, 'any state'),
    STATES.map((s) => el('option', { value: s }, s.replace('_', ' '))));
  const modelSel = el('select', { id: 'f-model', name: 'model' }, el('option', { value: '' }, 'any model'));
  const deviceIn = el('input', { id: 'f-device', name: 'device', type: 'search', placeholder: 'device id' });
  const count = el('span', { class: 'muted', id: 'session-count' });
  const tbody = el('tbody');
  const table = el('table', { class: 'grid', id: 'sessions-table' },
    el('thead', {}, el('tr', {},
      el('th', {}, 'State'), el('th', {}, 'Device'), el('th', { class: 'hide-sm' }, 'Model'),
      el('th', {}, 'Version'), el('th', { class: 'hide-sm' }, 'Age'), el('th', {}, 'Progress'),
      el('th', { class: 'hide-sm' }, 'Downloaded'))),
    tbody);
  const status = el('p', { class: 'form-error', role: 'alert', hidden: true });

  clear(main,
    el('div', { class: 'page-head' }, el('h1', {}, 'Sessions'), count),
    el('form', { class: 'filters', onsubmit: (e) => e.preventDefault() },
      el('label', {}, 'State', stateSel), el('label', {}, 'Model', modelSel),
      el('label', {}, 'Device', deviceIn)),
    status, tableWrap(table));

  function row(s) {
    return el('tr', { dataset: { id: s.id, state: s.state }, class: 'link',
      onclick: () => { location.hash = `#/sessions/${s.id}`; } },
    el('td', {}, stateBadge(s.state, s.finished)),
    el('td', {}, el('a', { href: `#/sessions/${s.id}` }, s.device_id || short(s.device) || short(s.id))),
    el('td', { class: 'hide-sm' }, catalog.tid(s.model)),
    el('td', { class: 'nowrap' }, s.current_firmware_version || '—', ' → ',
      s.target_firmware_version || (s.state === 'up_to_date' ? 'up to date' : '—')),
    el('td', { class: 'hide-sm nowrap', title: when(s.create_time) }, age(s.create_time)),
    el('td', { class: `prog st-${s.state}` }, progressBar(progressOf(s), `progress of ${s.device_id || s.id}`)),
    el('td', { class: 'prog downloaded hide-sm' }, downloadedBar(s, `image downloaded by ${s.device_id || s.id}`)));
  }

  function draw() {
    const list = [...rows.values()].filter((s) => matches(s, filters))
      .sort((a, b) => (a.create_time < b.create_time ? 1 : -1));
    clear(tbody, list.length ? list.map(row) : emptyRow(7, 'No sessions match.'));
    count.textContent = `${list.length} shown`;
  }

  // The device filter takes a device's own name: ask for its twin's id (the same name may
  // exist under several models; then the table filters by name itself).
  async function deviceParam() {
    const d = filters.device;
    if (!d || /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(d)) return d;
    const twins = await api.get(`devices/${api.qs({ device_id: d, limit: 2 })}`).catch(() => null);
    return twins && twins.results.length === 1 ? twins.results[0].id : twins && !twins.count ? d : '';
  }

  // A filter changed while an earlier answer was on its way: only the newest reload draws.
  let reloads = 0;
  async function reload() {
    const mine = ++reloads;
    try {
      const device = await deviceParam();
      const page = await api.get(`firmware-update/${api.qs({ ...filters, device, limit: LIST_LIMIT })}`);
      if (mine !== reloads) return;
      rows.clear();
      for (const s of page.results) rows.set(s.id, s);
      status.hidden = true;
      draw();
    } catch (e) {
      if (mine !== reloads) return;
      status.textContent = e.detail;
      status.hidden = false;
    }
  }

  for (const [input, key] of [[stateSel, 'state'], [modelSel, 'model']]) {
    input.addEventListener('change', () => {
      filters[key] = input.value;
      reload();
    });
  }
  let t = null;
  deviceIn.addEventListener('input', () => {
    clearTimeout(t);
    t = setTimeout(() => {
      filters.device = deviceIn.value.trim();
      reload();
    }, 250);
  });

  const off = live.on(async (ev) => {
    if (ev.type === 'poll') return reload();
    const d = ev.data;
    if (!d || !d.id) return;
    if (ev.type === 'session.created') {
      rows.set(d.id, d);
      // keep the table bounded on a busy fleet: drop the oldest beyond the list's size
      while (rows.size > LIST_LIMIT) {
        const oldest = [...rows.values()].reduce((a, b) => (a.create_time < b.create_time ? a : b));
        rows.delete(oldest.id);
      }
    } else if (rows.has(d.id)) {
      const s = rows.get(d.id);
      if (ev.type === 'session.state') Object.assign(s, { state: d.state, finished: d.finished, error: d.error });
      if (ev.type === 'session.progress') Object.assign(s, { state: d.state || s.state, payload: d.payload });
      if (ev.type === 'session.delivered' || ev.type === 'session.downloaded') Object.assign(s, { delivered: d.delivered });
    } else {
      try {
        rows.set(d.id, await api.get(`firmware-update/${d.id}`));
      } catch {
        return;
      }
    }
    draw();
  });
  const ticker = setInterval(() => {
    tbody.querySelectorAll('td[title]').forEach((td) => {
      const s = rows.get(td.parentElement.dataset.id);
      if (s) td.textContent = age(s.create_time);
    });
  }, 10000);

  catalog.load('models').then(() => {
    for (const m of catalog.cat.models) modelSel.append(el('option', { value: m.id }, catalog.name(m.id)));
    draw();
  });
  reload();
  return () => {
    off();
    clearInterval(ticker);
  };
}

// Names of the numbers in payload.mesh (SMP.md: DFD phase; Firmware Update target phase).
const DFD_PHASES = ['idle', 'transfer active', 'transfer success', 'applying', 'completed',
  'failed', 'cancelling', 'suspended'];
const RX_PHASES = ['idle', 'transfer error', 'transfer active', 'verify', 'verify OK',
  'verify failed', 'applying', 'transfer cancelled', 'apply success', 'apply failed', 'unknown'];

function named(names, n) {
  if (typeof n !== 'number') return n ?? '—';
  return n >= 0 && n < names.length ? `${names[n]} (${n})` : String(n);
}

function status(n) {
  if (typeof n !== 'number') return n ?? '—';
  return n === 0 ? 'ok' : `error ${n}`;
}

function renderDetail(main, id) {
  let s = null;
  const body = el('div', { id: 'session-detail', class: 'detail' }, el('p', { class: 'muted' }, 'Loading…'));
  clear(main,
    el('div', { class: 'page-head' },
      el('a', { href: '#/sessions', class: 'back' }, '← Sessions'), el('h1', {}, 'Session ', el('code', {}, short(id)))),
    body);

  function facts() {
    const rows = [
      ['State', stateBadge(s.state, s.finished)],
      ['Device', s.device ? el('a', { href: `#/devices/${s.device}` }, s.device_id || short(s.device)) : '—'],
      ['Model', catalog.name(s.model)],
      ['Channel', catalog.name(s.channel)],
      ['Version', `${s.current_firmware_version || '—'} → ${s.target_firmware_version || '—'}`],
      ['Procedure', catalog.name(s.delivery_procedure)],
      ['Created', `${when(s.create_time)} by ${s.creator}`],
      ['Expires', s.finished ? 'finished' : when(s.expiration_time)],
      ['Attempts', s.attempts ?? '—'],
      ['Id', el('code', {}, s.id)],
    ];
    return el('dl', { class: 'facts' }, rows.map(([k, v]) => [el('dt', {}, k), el('dd', { dataset: { fact: k.toLowerCase() } }, v)]));
  }

  function timeline() {
    const h = s.history || [];
    return el('ol', { class: 'timeline', id: 'timeline' }, h.map((x, i) => {
      const next = h[i + 1];
      const dur = next ? ((Date.parse(next.time) - Date.parse(x.time)) / 1000).toFixed(1) : null;
      return el('li', { class: `st-${x.state}`, dataset: { state: x.state } },
        el('span', { class: 'dot', 'aria-hidden': 'true' }), stateBadge(x.state),
        el('time', { datetime: x.time }, when(x.time)), dur !== null ? el('span', { class: 'muted' }, ` ${dur} s`) : null);
    }));
  }

  function mesh() {
    const m = s.payload && s.payload.mesh;
    if (!m) return null;
    const recv = m.receivers || [];
    return el('section', { class: 'card', id: 'mesh' },
      el('h2', {}, 'Mesh distribution'),
      el('p', { id: 'mesh-phase' }, 'Phase ', el('b', {}, named(DFD_PHASES, m.phase)),
        m.stage ? [', step ', el('b', {}, m.stage)] : null, ', status ', el('b', {}, status(m.status))),
      progressBar(m.progress, 'distribution progress'),
      el('div', { class: 'table-wrap' }, el('table', { class: 'grid', id: 'receivers' },
        el('thead', {}, el('tr', {}, el('th', {}, 'Receiver'), el('th', {}, 'Phase'), el('th', {}, 'Status'), el('th', {}, 'Progress'))),
        el('tbody', {}, recv.length ? recv.map((r) => el('tr', { dataset: { addr: r.addr } },
          el('td', {}, el('code', {}, `0x${Number(r.addr).toString(16).padStart(4, '0')}`)),
          el('td', {}, named(RX_PHASES, r.phase)), el('td', {}, status(r.status)),
          el('td', {}, progressBar(r.progress, `receiver ${r.addr}`)))) : emptyRow(4, 'No receivers reported yet.')))));
  }

  // What an operator may do by hand: start a ready session, confirm a created one.
  async function act(path, body) {
    try {
      await api.post(`firmware-update/${encodeURIComponent(id)}/${path}`, body);
      await load();
    } catch (e) {
      toast(e.detail, 'error');
    }
  }

  function actions() {
    if (s.finished || (s.state !== 'ready' && s.state !== 'created')) return null;
    if (s.state === 'ready') {
      return el('section', { class: 'card', id: 'actions' }, el('h2', {}, 'Actions'),
        el('button', { class: 'btn primary', type: 'button', id: 'start-session', onclick: () => act('start') }, 'Start'));
    }
    const message = el('input', { type: 'text', id: 'confirm-message', placeholder: 'why it failed (optional)' });
    return el('section', { class: 'card', id: 'actions' }, el('h2', {}, 'Actions'),
      el('p', { class: 'muted' }, 'Confirm on behalf of the device:'),
      el('div', { class: 'actions' },
        el('button', { class: 'btn primary', type: 'button', id: 'confirm-success', onclick: () => act('confirm', { success: true }) }, 'Confirm success'),
        message,
        el('button', { class: 'btn danger', type: 'button', id: 'confirm-failure',
          onclick: () => act('confirm', message.value ? { success: false, message: message.value } : { success: false }) },
        'Confirm failure')));
  }

  function draw() {
    const p = s.payload || {};
    const link = p.download_link;
    clear(body,
      el('div', { class: 'cols' },
        el('section', { class: 'card' }, el('h2', {}, 'Facts'), facts(),
          el('div', { class: `prog-line st-${s.state}` }, progressBar(progressOf(s), 'session progress'))),
        el('section', { class: 'card' }, el('h2', {}, 'History'), timeline())),
      actions(),
      s.error ? el('section', { class: 'card error-box', id: 'session-error', role: 'alert' },
        el('h2', {}, 'Error'), el('p', {}, el('code', {}, s.error.code), ' ', s.error.detail)) : null,
      link ? el('section', { class: 'card', id: 'download' }, el('h2', {}, 'Download'),
        el('p', { class: 'break' }, el('a', { href: link, id: 'download-link' }, link)),
        p.short_link ? el('p', { class: 'break' }, 'Short link (no token needed): ', el('code', { id: 'short-link' }, p.short_link)) : null,
        p.coap_link ? el('p', { class: 'break' }, 'CoAP: ', el('code', { id: 'coap-link' }, p.coap_link)) : null,
        el('p', { class: 'muted' }, `${bytes(p.size)} · SHA-256 `, el('code', { class: 'break' }, p.sha256 || '—')),
        el('p', { id: 'delivered' }, `Downloaded: ${Math.round(downloadedOf(s))} % of the image, `,
          `${bytes((s.delivered || {}).bytes_sent ?? 0)} sent`),
        downloadedBar(s, 'image downloaded', 'downloaded-bar'),
        el('button', { class: 'btn', type: 'button', onclick: () => api.download(link, `${s.id}.bin`).catch((e) => toast(e.detail, 'error')) },
          'Download with my token')) : null,
      mesh(),
      el('section', { class: 'card' }, el('h2', {}, 'Payload'),
        el('pre', { class: 'json', id: 'payload' }, JSON.stringify(p, null, 2))));
  }

  async function load() {
    try {
      s = await api.get(`firmware-update/${encodeURIComponent(id)}`);
      draw();
    } catch (e) {
      clear(body, el('p', { class: 'form-error', role: 'alert' }, e.detail));
    }
  }

  const off = live.on((ev) => {
    if (ev.type === 'poll') return load();
    if (!s || !ev.data || ev.data.id !== id) return;
    if (ev.type === 'session.progress') {
      s.payload = ev.data.payload;
      if (ev.data.state) s.state = ev.data.state;
      draw();
    } else {
      load(); // state changes: fetch the whole history
    }
  });
  catalog.load('models', 'channels', 'procedures').then(() => s && draw());
  load();
  return off;
}
