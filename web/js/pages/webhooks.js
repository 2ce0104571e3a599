// Webhooks: the subscriptions (#/webhooks) with a form to add one (its secret is shown once),
// and one webhook's page (#/webhooks/<id>): its settings, rotate the secret, pause or
// resume, delete, and its recent deliveries with their attempts, last answer and errors,
// each of which can be sent again. The event types come from the server's OpenAPI document
// (schema EventType), so that the page never keeps a list of its own.

import * as api from '../api.js';
import * as catalog from '../catalog.js';
import { live } from '../live.js';
import {
  age, clear, clearErrors, copyText, el, emptyRow, short, showError, tableWrap, toast, when,
} from '../ui.js';

// Deliveries shown on a webhook's page, newest first.
const DELIVERIES = 100;
// Deliveries change without events on the stream: the page looks again this often.
const REFRESH_MS = 3000;

let eventTypes = null;

async function loadEventTypes() {
  if (eventTypes) return eventTypes;
  try {
    const r = await fetch('/api/v1/openapi.json', { cache: 'no-store' });
    eventTypes = (await r.json()).components.schemas.EventType.enum;
  } catch {
    eventTypes = [];
  }
  return eventTypes;
}

function statusBadge(status) {
  const cls = status === 'delivered' ? 'st-success' : status === 'failed' ? 'st-fail' : 'st-queued';
  return el('span', { class: `badge ${cls}` }, status);
}

function scope(w) {
  if (w.model) return `model ${catalog.tid(w.model)}`;
  if (w.product) return `product ${catalog.tid(w.product)}`;
  return 'everything';
}

function secretBox(holder, title, secret, onDone) {
  clear(holder, el('div', { class: 'card secret-box', role: 'status', id: 'webhook-secret-box' },
    el('h2', {}, title),
    el('p', {}, 'Copy the signing secret now: it is shown only once. Receivers check each delivery\'s '
      + 'webhook-signature with it (see the README, "Webhooks").'),
    el('div', { class: 'secret-line' }, el('code', { id: 'webhook-secret', class: 'secret' }, secret),
      el('button', { class: 'btn', type: 'button', id: 'copy-webhook-secret', onclick: async (e) => {
        e.target.textContent = (await copyText(secret)) ? 'Copied' : 'Copy failed: select it';
      } }, 'Copy')),
    el('div', { class: 'actions' }, el('button', { class: 'btn ghost', type: 'button',
      onclick: () => { clear(holder); if (onDone) onDone(); } }, 'Done'))));
}

export function render(main, args) {
  if (args[0]) return renderOne(main, args[0]);
  const tbody = el('tbody');
  const editor = el('div', { id: 'webhook-editor' });
  const err = el('p', { class: 'form-error', role: 'alert', hidden: true });

  async function reload() {
    try {
      const list = await api.listAll('webhooks', {}, 1000);
      err.hidden = true;
      clear(tbody, list.length ? list.map((w) => el('tr', { class: 'link', dataset: { id: w.id },
        onclick: () => { location.hash = `#/webhooks/${w.id}`; } },
      el('td', {}, el('a', { href: `#/webhooks/${w.id}` }, w.url)),
      el('td', { class: 'hide-sm' }, w.events.join(', ')),
      el('td', { class: 'hide-sm' }, scope(w)),
      el('td', {}, w.active ? 'active' : el('span', { class: 'muted' }, 'paused')),
      el('td', { class: 'nowrap hide-sm', title: when(w.create_time) }, `${age(w.create_time)} ago`)))
        : emptyRow(5, 'No webhooks yet.'));
    } catch (e) {
      err.textContent = e.detail;
      err.hidden = false;
    }
  }

  async function openForm() {
    const types = await loadEventTypes();
    const boxes = ['*', ...types].map((t) => el('label', { class: 'check' },
      el('input', { type: 'checkbox', name: 'events', value: t, checked: t === '*' }),
      ` ${t === '*' ? 'all (but the opt-in session.progress and session.delivered)' : t}`));
    const options = (list, what) => [el('option', { value: '' }, `any ${what}`),
      ...list.map((o) => el('option', { value: o.id }, catalog.name(o.id)))];
    const form = el('form', { class: 'card', id: 'webhook-form', novalidate: true },
      el('h2', {}, 'New webhook'),
      el('div', { class: 'form-error', role: 'alert', hidden: true }),
      el('div', { class: 'form-grid' },
        el('label', { 'data-field': 'url', class: 'span2' }, 'URL',
          el('input', { name: 'url', type: 'url', required: true, placeholder: 'https://ci.example.com/hooks/devicehub' })),
        el('label', { 'data-field': 'product' }, 'Product', el('select', { name: 'product' }, options(catalog.cat.products, 'product'))),
        el('label', { 'data-field': 'model' }, 'Model', el('select', { name: 'model' }, options(catalog.cat.models, 'model'))),
        el('label', { 'data-field': 'description', class: 'span2' }, 'Description', el('input', { name: 'description' })),
        el('fieldset', { 'data-field': 'events', class: 'span2 events' }, el('legend', {}, 'Events'), boxes)),
      el('div', { class: 'actions' },
        el('button', { type: 'submit', class: 'btn primary', id: 'webhook-save' }, 'Create'),
        el('button', { type: 'button', class: 'btn ghost', onclick: () => clear(editor) }, 'Cancel')));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      clearErrors(form);
      const body = { url: form.elements.url.value.trim() };
      const events = [...form.querySelectorAll('input[name=events]:checked')].map((i) => i.value);
      if (events.length) body.events = events;
      for (const k of ['product', 'model', 'description']) {
        const v = form.elements[k].value.trim();
        if (v) body[k] = v;
      }
      try {
        const w = await api.post('webhooks/', body);
        secretBox(editor, 'Webhook created', w.secret);
        reload();
      } catch (ex) {
        showError(form, ex);
      }
    });
    clear(editor, form);
    form.elements.url.focus();
  }

  clear(main, el('div', { class: 'page-head' }, el('h1', {}, 'Webhooks'),
    el('button', { class: 'btn primary', id: 'new-webhook', type: 'button', onclick: openForm }, 'New webhook')),
  el('p', { class: 'muted' }, 'Each event is posted, signed, to every webhook that subscribed to it, in order, '
    + 'and retried until it is answered with 2xx.'),
  err, editor,
  tableWrap(el('table', { class: 'grid', id: 'webhooks-table' },
    el('thead', {}, el('tr', {}, el('th', {}, 'URL'), el('th', { class: 'hide-sm' }, 'Events'),
      el('th', { class: 'hide-sm' }, 'Scope'), el('th', {}, 'State'), el('th', { class: 'hide-sm' }, 'Created'))),
    tbody)));
  const off = live.on((ev) => { if (ev.type === 'poll') reload(); });
  catalog.load('products', 'models').then(reload);
  return off;
}

function renderOne(main, id) {
  const facts = el('div', { class: 'card', id: 'webhook-facts' }, el('p', { class: 'muted' }, 'Loading…'));
  const secret = el('div', { id: 'webhook-secret-holder' });
  const tbody = el('tbody');
  const filter = el('select', { id: 'delivery-status' },
    ['', 'pending', 'delivered', 'failed'].map((s) => el('option', { value: s }, s || 'any status')));
  const count = el('span', { class: 'muted', id: 'delivery-count' });
  let hook = null;
  let timer = null;
  let gone = false;

  async function act(what, fn) {
    try {
      await fn();
    } catch (e) {
      toast(`${what}: ${e.detail}`, 'error');
    }
  }

  function drawFacts() {
    const w = hook;
    clear(facts, el('dl', { class: 'facts' },
      el('dt', {}, 'URL'), el('dd', {}, el('code', {}, w.url)),
      el('dt', {}, 'Events'), el('dd', {}, w.events.join(', ')),
      el('dt', {}, 'Scope'), el('dd', {}, scope(w)),
      el('dt', {}, 'State'), el('dd', { id: 'webhook-state' }, w.active ? 'active' : 'paused'),
      el('dt', {}, 'Description'), el('dd', {}, w.description || '—'),
      el('dt', {}, 'Created'), el('dd', {}, when(w.create_time))),
    el('div', { class: 'actions' },
      el('button', { class: 'btn', type: 'button', id: 'webhook-toggle', onclick: () => act('Change', async () => {
        hook = await api.patch(`webhooks/${id}`, { active: !hook.active });
        drawFacts();
      }) }, w.active ? 'Pause' : 'Resume'),
      el('button', { class: 'btn', type: 'button', id: 'webhook-rotate', onclick: () => act('Rotate', async () => {
        if (!window.confirm('Make a new signing secret? The old one keeps signing, beside it, for 24 h.')) return;
        const r = await api.patch(`webhooks/${id}`, { rotate_secret: true });
        secretBox(secret, 'New signing secret', r.secret);
      }) }, 'Rotate secret'),
      el('button', { class: 'btn danger', type: 'button', id: 'webhook-delete', onclick: () => act('Delete', async () => {
        if (!window.confirm('Delete this webhook and its delivery log?')) return;
        await api.del(`webhooks/${id}`);
        toast('Webhook deleted.', 'ok');
        location.hash = '#/webhooks';
      }) }, 'Delete')));
  }

  function row(d) {
    return el('tr', { dataset: { id: d.id, status: d.status } },
      el('td', { class: 'nowrap', title: when(d.create_time) }, `${age(d.create_time)} ago`),
      el('td', {}, d.event),
      el('td', {}, statusBadge(d.status)),
      el('td', { class: 'num' }, String(d.attempts)),
      el('td', { class: 'hide-sm' }, d.last_status_code ?? '—'),
      el('td', { class: 'hide-sm' }, d.last_error || '—',
        d.last_response ? el('div', { class: 'muted small' }, el('code', {}, d.last_response)) : null),
      el('td', { class: 'nowrap hide-sm' }, d.next_attempt_time ? when(d.next_attempt_time) : '—'),
      el('td', {}, el('code', { title: d.id }, short(d.id))),
      el('td', {}, el('button', { class: 'btn small', type: 'button', dataset: { redeliver: d.id },
        onclick: () => act('Redeliver', async () => {
          await api.post(`webhooks/${id}/deliveries/${d.id}/redeliver`);
          toast('Delivery queued again.', 'ok');
          loadDeliveries();
        }) }, 'Redeliver')));
  }

  async function loadDeliveries() {
    clearTimeout(timer);
    try {
      const q = { limit: DELIVERIES };
      if (filter.value) q.status = filter.value;
      const page = await api.get(`webhooks/${id}/deliveries/${api.qs(q)}`);
      count.textContent = `${page.results.length} of ${page.count}`;
      clear(tbody, page.results.length ? page.results.map(row) : emptyRow(9, 'No deliveries yet.'));
    } catch (e) {
      clear(tbody, emptyRow(9, e.detail));
    }
    if (!gone) timer = setTimeout(loadDeliveries, REFRESH_MS);
  }

  async function load() {
    try {
      hook = await api.get(`webhooks/${id}`);
      document.getElementById('webhook-title').textContent = `Webhook ${hook.tid || short(hook.id)}`;
      drawFacts();
      loadDeliveries();
    } catch (e) {
      clear(facts, el('p', { class: 'form-error', role: 'alert' }, e.detail));
    }
  }

  filter.addEventListener('change', loadDeliveries);
  clear(main, el('div', { class: 'page-head' }, el('a', { href: '#/webhooks', class: 'back' }, '← Webhooks'),
    el('h1', { id: 'webhook-title' }, 'Webhook')),
  facts, secret,
  el('div', { class: 'page-head' }, el('h2', {}, 'Deliveries'), count),
  el('form', { class: 'filters', onsubmit: (e) => e.preventDefault() }, el('label', {}, 'Status', filter)),
  tableWrap(el('table', { class: 'grid', id: 'deliveries-table' },
    el('thead', {}, el('tr', {}, el('th', {}, 'Created'), el('th', {}, 'Event'), el('th', {}, 'Status'),
      el('th', {}, 'Attempts'), el('th', { class: 'hide-sm' }, 'Last status'), el('th', { class: 'hide-sm' }, 'Last error, answer'),
      el('th', { class: 'hide-sm' }, 'Next attempt'), el('th', {}, 'Id'), el('th', {}, ''))),
    tbody)));
  catalog.load('products', 'models').then(load);
  return () => {
    gone = true;
    clearTimeout(timer);
  };
}
