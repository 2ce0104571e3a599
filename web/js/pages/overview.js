// Overview (#/overview): the sessions created in the last 24 hours (or 7 days) that the
// signed-in token may see, from GET /api/v1/firmware-update/stats: a count per state, a
// stacked bar per hour of creation, and per target firmware version its successes and
// failures. Charts are plain SVG, each with a table of the same numbers below it; the page
// follows live events (coalesced) and polling.

import * as api from '../api.js';
import * as catalog from '../catalog.js';
import { live } from '../live.js';
import { clear, el, STATES, tableWrap } from '../ui.js';

const SVG = 'http://www.w3.org/2000/svg';
// Bar colours per state, as the badges: blues waiting, amber working, green done, red failed.
const COLOURS = {
  ready: '#3b6fd8',
  up_to_date: '#8fcf9f',
  queued: '#f0b44c',
  processing: '#d98a1c',
  created: '#38a3d6',
  success: '#2e9a4f',
  fail: '#d64545',
  unconfirmed: '#e89090',
};
const WINDOWS = { 24: 'last 24 hours', 168: 'last 7 days' };
// Events are coalesced into one reload at most this often: counts per hour need no more,
// and a busy fleet sends events all the time (each reload is one GROUP BY over the window).
const RELOAD_MS = 3000;

function svg(tag, attrs = {}, ...children) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  for (const c of children.flat()) if (c !== null && c !== undefined) e.append(c);
  return e;
}

function label(state) {
  return state.replace('_', ' ');
}

function hourLabel(iso, hours) {
  const d = new Date(iso);
  const hh = String(d.getHours()).padStart(2, '0');
  return hours > 48 ? `${d.getMonth() + 1}/${d.getDate()} ${hh}h` : `${hh}:00`;
}

// Which hour buckets get a label under the axis: about one per 60 px, at round hours.
function labelled(b, i, n, W, hours) {
  if (hours > 48) return new Date(b.start).getHours() === 0; // midnights: one a day
  const every = Math.max(1, Math.ceil(n / Math.max(2, Math.floor(W / 60))));
  return i % every === 0;
}

// The drawing width: the box's own, so that text keeps its size on a phone.
function widthOf(box) {
  return Math.max(300, Math.min(1200, (box.clientWidth || 760) - 36));
}

// Stacked bars: one per hour bucket, one segment per state with sessions.
function timelineChart(stats, W) {
  const H = 200;
  const pad = { l: 34, r: 8, t: 10, b: 26 };
  const n = stats.timeline.length;
  const totals = stats.timeline.map((b) => STATES.reduce((s, k) => s + (b.states[k] || 0), 0));
  const max = Math.max(1, ...totals);
  const bw = (W - pad.l - pad.r) / n;
  const y = (v) => pad.t + (H - pad.t - pad.b) * (1 - v / max);
  const g = svg('g');
  for (const t of [0, max / 2, max]) {
    const v = Math.round(t);
    g.append(svg('line', { x1: pad.l, x2: W - pad.r, y1: y(v), y2: y(v), class: 'grid-line' }),
      svg('text', { x: pad.l - 6, y: y(v) + 4, 'text-anchor': 'end', class: 'axis' }, String(v)));
  }
  stats.timeline.forEach((b, i) => {
    let acc = 0;
    const x = pad.l + i * bw + bw * 0.12;
    for (const s of STATES) {
      const v = b.states[s] || 0;
      if (!v) continue;
      const rect = svg('rect', { x, width: Math.max(1, bw * 0.76), y: y(acc + v), height: y(acc) - y(acc + v),
        fill: COLOURS[s], 'data-state': s, 'data-count': v, class: 'seg' },
      svg('title', {}, `${hourLabel(b.start, stats.hours)}: ${v} ${label(s)}`));
      g.append(rect);
      acc += v;
    }
    if (labelled(b, i, n, W, stats.hours)) {
      const d = new Date(b.start);
      const text = stats.hours > 48 ? `${d.getMonth() + 1}/${d.getDate()}` : hourLabel(b.start, stats.hours);
      g.append(svg('text', { x: pad.l + i * bw + bw / 2, y: H - 8, 'text-anchor': 'middle', class: 'axis' }, text));
    }
  });
  const total = totals.reduce((a, b) => a + b, 0);
  return svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', id: 'chart-hours', role: 'img',
    'aria-label': `Sessions created per hour, ${total} in all` }, g);
}

// Horizontal bars per firmware version: successes, then failures (fail and unconfirmed).
function firmwareChart(rows, W) {
  const rowH = 26;
  const labelW = Math.min(220, Math.round(W * 0.35));
  const H = Math.max(1, rows.length) * rowH + 8;
  const max = Math.max(1, ...rows.map((f) => f.success + f.failed));
  const scale = (v) => ((W - labelW - 60) * v) / max;
  const g = svg('g');
  rows.forEach((f, i) => {
    const yy = 4 + i * rowH;
    const ok = scale(f.success);
    const bad = scale(f.failed);
    g.append(svg('text', { x: labelW - 8, y: yy + 16, 'text-anchor': 'end', class: 'axis' }, f.label),
      svg('rect', { x: labelW, y: yy + 3, width: Math.max(f.success ? 2 : 0, ok), height: rowH - 8,
        fill: COLOURS.success, class: 'seg', 'data-kind': 'success', 'data-count': f.success },
      svg('title', {}, `${f.label}: ${f.success} succeeded`)),
      svg('rect', { x: labelW + ok, y: yy + 3, width: Math.max(f.failed ? 2 : 0, bad), height: rowH - 8,
        fill: COLOURS.fail, class: 'seg', 'data-kind': 'fail', 'data-count': f.failed },
      svg('title', {}, `${f.label}: ${f.failed} failed`)),
      svg('text', { x: labelW + ok + bad + 6, y: yy + 16, class: 'axis' }, `${f.success} ✓  ${f.failed} ✗`));
  });
  return svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', id: 'chart-firmware', role: 'img',
    'aria-label': 'Successes and failures per firmware version' }, g);
}

function legend() {
  return el('ul', { class: 'legend' }, STATES.map((s) => el('li', {},
    el('span', { class: 'swatch', style: `background:${COLOURS[s]}` }), label(s))));
}

export function render(main) {
  let hours = 24;
  const err = el('p', { class: 'form-error', role: 'alert', hidden: true });
  const counts = el('div', { class: 'counts', id: 'state-counts' });
  const hoursBox = el('div', { class: 'chart-box' });
  const fwBox = el('div', { class: 'chart-box' });
  const sub = el('p', { class: 'muted', id: 'overview-window' });
  const pick = el('select', { id: 'overview-hours', 'aria-label': 'Window' },
    Object.entries(WINDOWS).map(([h, t]) => el('option', { value: h }, t)));

  let last = null;

  // The window changed while an earlier answer was on its way: only the newest reload draws.
  let reloads = 0;
  async function reload() {
    const mine = ++reloads;
    try {
      const [stats] = await Promise.all([api.get(`firmware-update/stats${api.qs({ hours })}`), catalog.load('models')]);
      if (mine !== reloads) return;
      last = stats;
      err.hidden = true;
    } catch (e) {
      if (mine !== reloads) return;
      err.textContent = e.detail;
      err.hidden = false;
      return;
    }
    draw(last);
  }

  function draw(stats) {
    const total = STATES.reduce((s, k) => s + stats.states[k], 0);
    sub.textContent = `${total} session${total === 1 ? '' : 's'} created since ${new Date(stats.since).toLocaleString()}`;
    clear(counts, STATES.map((s) => el('div', { class: `count st-${s}`, dataset: { state: s } },
      el('span', { class: 'n' }, String(stats.states[s])), el('span', { class: 'what' }, label(s)))));
    clear(hoursBox, el('h2', {}, 'Sessions per hour of creation, by current state'), legend(),
      timelineChart(stats, widthOf(hoursBox)),
      el('details', {}, el('summary', {}, 'Numbers'), tableWrap(el('table', { class: 'grid', id: 'hours-table' },
        el('thead', {}, el('tr', {}, el('th', {}, 'Hour'), STATES.map((s) => el('th', {}, label(s))))),
        el('tbody', {}, stats.timeline.filter((b) => STATES.some((s) => b.states[s])).map((b) =>
          el('tr', {}, el('td', { class: 'nowrap' }, hourLabel(b.start, 168)),
            STATES.map((s) => el('td', {}, String(b.states[s]))))))))));
    const rows = stats.firmware.map((f) => ({
      id: f.firmware,
      label: `${f.model_tid || catalog.tid(f.model)} ${f.version}`,
      success: f.states.success,
      failed: f.states.fail + f.states.unconfirmed,
      other: f.total - f.states.success - f.states.fail - f.states.unconfirmed,
    }));
    clear(fwBox, el('h2', {}, 'Per firmware version: succeeded and failed'),
      rows.length ? firmwareChart(rows, widthOf(fwBox)) : el('p', { class: 'muted', id: 'no-firmware' }, 'No session targeted a firmware in this window.'),
      tableWrap(el('table', { class: 'grid', id: 'firmware-table' },
        el('thead', {}, el('tr', {}, el('th', {}, 'Firmware'), el('th', {}, 'Succeeded'), el('th', {}, 'Failed'),
          el('th', {}, 'Other'))),
        el('tbody', {}, rows.map((f) => el('tr', { dataset: { id: f.id } }, el('td', {}, f.label),
          el('td', {}, String(f.success)), el('td', {}, String(f.failed)), el('td', {}, String(f.other))))))));
  }

  pick.addEventListener('change', () => {
    hours = Number(pick.value);
    reload();
  });
  clear(main, el('div', { class: 'page-head' }, el('h1', {}, 'Overview'), pick), sub, err, counts,
    el('div', { class: 'cols overview' }, hoursBox, fwBox));
  let pending = null;
  const off = live.on((ev) => {
    if (ev.type === 'poll' || ev.type === 'session.created' || ev.type === 'session.state') {
      clearTimeout(pending);
      pending = setTimeout(reload, RELOAD_MS);
    }
  });
  // the charts are drawn for the box's width: again when it changes
  let resizing = null;
  const onResize = () => {
    clearTimeout(resizing);
    resizing = setTimeout(() => last && draw(last), 150);
  };
  window.addEventListener('resize', onResize);
  reload();
  return () => {
    off();
    clearTimeout(pending);
    clearTimeout(resizing);
    window.removeEventListener('resize', onResize);
  };
}
