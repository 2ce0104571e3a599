// Configuration: create, edit and delete products, models, channels, delivery methods,
// delivery procedures (with a steps editor), users, tokens (secret shown once) and access
// rights. One table below describes each resource's fields; one generic list and form
// render them. Server errors show their detail and each field's problem by its input.

import * as api from '../api.js';
import * as catalog from '../catalog.js';
import {
  clear, clearErrors, copyText, el, emptyRow, showError, tableWrap, toast, when,
} from '../ui.js';

const PLUGINS = ['link', 'mesh_smp', 'exec', 'http'];
const ACTIONS = ['update', 'draft', 'upload', 'manage', 'admin'];

// Field kinds: text, textarea, int, bool, ref (another resource), enum, steps, time.
const RESOURCES = [
  { key: 'products', title: 'Products', one: 'product', fields: [
    { name: 'tid', kind: 'text', required: true, hint: 'a short handle, e.g. sensor' },
    { name: 'name', kind: 'text', required: true },
    { name: 'description', kind: 'textarea' }] },
  { key: 'models', title: 'Models', one: 'model', fields: [
    { name: 'tid', kind: 'text', required: true, hint: 'e.g. CAFEBABE' },
    { name: 'name', kind: 'text', required: true },
    { name: 'product', kind: 'ref', ref: 'products', required: true },
    { name: 'description', kind: 'textarea' }] },
  { key: 'channels', title: 'Channels', one: 'channel', fields: [
    { name: 'tid', kind: 'text', required: true, hint: 'e.g. stable' },
    { name: 'name', kind: 'text', required: true }] },
  { key: 'delivery-methods', title: 'Delivery methods', one: 'delivery method', fields: [
    { name: 'tid', kind: 'text', required: true },
    { name: 'name', kind: 'text', required: true },
    { name: 'kind', kind: 'text', required: true, list: ['http', 'coap', 'mesh-smp'] }] },
  { key: 'delivery-procedures', title: 'Delivery procedures', one: 'delivery procedure', fields: [
    { name: 'tid', kind: 'text', required: true },
    { name: 'name', kind: 'text', required: true },
    { name: 'delivery_method', kind: 'ref', ref: 'delivery-methods', required: true },
    { name: 'confirm', kind: 'bool', hint: 'the session waits in created for the device' },
    { name: 'ready_timeout', kind: 'int', unit: 's' },
    { name: 'processing_timeout', kind: 'int', unit: 's' },
    { name: 'confirm_timeout', kind: 'int', unit: 's' },
    { name: 'retention', kind: 'int', unit: 's' },
    { name: 'steps', kind: 'steps' }] },
  { key: 'users', title: 'Users', one: 'user', fields: [
    { name: 'tid', kind: 'text', required: true, hint: 'the login name' },
    { name: 'name', kind: 'text', required: true },
    { name: 'email', kind: 'text' },
    { name: 'is_active', kind: 'bool', initial: true }] },
  { key: 'tokens', title: 'Tokens', one: 'token', fields: [
    { name: 'user', kind: 'ref', ref: 'users', hint: 'empty: your own user', createOnly: true },
    { name: 'name', kind: 'text', required: true },
    { name: 'expire_time', kind: 'time', hint: 'RFC 3339; empty: never' },
    { name: 'revoked', kind: 'bool', editOnly: true }] },
  { key: 'access-rights', title: 'Access rights', one: 'access right', fields: [
    { name: 'user', kind: 'ref', ref: 'users', required: true },
    { name: 'action', kind: 'enum', values: ACTIONS, required: true },
    { name: 'product', kind: 'ref', ref: 'products', hint: 'empty: any' },
    { name: 'model', kind: 'ref', ref: 'models', hint: 'empty: any' },
    { name: 'channel', kind: 'ref', ref: 'channels', hint: 'empty: any' }] },
];

const label = (n) => n.replace(/_/g, ' ').replace(/^./, (c) => c.toUpperCase());

export function render(main, args) {
  const res = RESOURCES.find((r) => r.key === args[0]) || RESOURCES[0];
  const refs = {};
  const tabs = el('nav', { class: 'tabs', 'aria-label': 'configuration objects' },
    RESOURCES.map((r) => el('a', { href: `#/config/${r.key}`, class: r === res ? 'active' : null,
      'aria-current': r === res ? 'page' : null }, r.title)));
  const editor = el('div', { id: 'editor' });
  const listErr = el('p', { class: 'form-error', role: 'alert', hidden: true });
  const tbody = el('tbody');
  const cols = res.fields.filter((f) => !['textarea', 'steps'].includes(f.kind) && !f.name.endsWith('timeout') && f.name !== 'retention');
  const table = el('table', { class: 'grid', id: `${res.key}-table` },
    el('thead', {}, el('tr', {}, cols.map((f, i) => el('th', { class: i >= 2 ? 'hide-sm' : null }, label(f.name))),
      res.key === 'delivery-procedures' ? el('th', { class: 'hide-sm' }, 'Steps') : null, el('th', {}, ''))),
    tbody);
  let items = [];

  clear(main,
    el('div', { class: 'page-head' }, el('h1', {}, 'Configuration'),
      el('button', { class: 'btn primary', type: 'button', id: 'new-object', onclick: () => openForm(null) }, `New ${res.one}`)),
    tabs, editor, listErr, tableWrap(table));

  function refLabel(f, id) {
    if (!id) return f.kind === 'ref' ? 'any' : '—';
    const o = (refs[f.ref] || []).find((x) => x.id === id);
    return o ? (o.tid || o.name) : id.slice(0, 8);
  }

  function cell(f, o) {
    const v = o[f.name];
    if (f.kind === 'ref') return refLabel(f, v);
    if (f.kind === 'bool') return v ? 'yes' : 'no';
    if (f.kind === 'time') return v ? when(v) : '—';
    return v ?? '—';
  }

  function draw() {
    clear(tbody, items.length ? items.map((o) => el('tr', { dataset: { id: o.id, tid: o.tid || '' } },
      cols.map((f, i) => el('td', { class: i >= 2 ? 'hide-sm' : null }, cell(f, o))),
      res.key === 'delivery-procedures' ? el('td', { class: 'hide-sm' }, (o.steps || []).map((s) => s.plugin).join(' → ') || 'link') : null,
      el('td', { class: 'row-actions' },
        el('button', { class: 'btn small', type: 'button', onclick: () => openForm(o) }, 'Edit'),
        deleteButton(o)))) : emptyRow(cols.length + 2, `No ${res.title.toLowerCase()} yet.`));
  }

  function deleteButton(o) {
    const wrap = el('span', { class: 'confirm-wrap' });
    const ask = el('button', { class: 'btn small danger', type: 'button', onclick: () => {
      clear(wrap, el('span', { class: 'muted' }, 'Delete? '),
        el('button', { class: 'btn small danger', type: 'button', onclick: async () => {
          try {
            await api.del(`${res.key}/${o.id}`);
            toast(`Deleted ${res.one} ${o.tid || o.name || ''}.`, 'ok');
            reload();
          } catch (e) {
            listErr.textContent = e.detail;
            listErr.hidden = false;
            clear(wrap, ask);
          }
        } }, 'Yes'),
        el('button', { class: 'btn small ghost', type: 'button', onclick: () => clear(wrap, ask) }, 'No'));
    } }, 'Delete');
    wrap.append(ask);
    return wrap;
  }

  async function reload() {
    try {
      items = await api.listAll(res.key, {}, 5000);
      listErr.hidden = true;
      draw();
    } catch (e) {
      listErr.textContent = e.detail;
      listErr.hidden = false;
    }
  }

  function input(f, o) {
    const v = o ? o[f.name] : f.initial;
    const id = `f-${f.name}`;
    switch (f.kind) {
      case 'textarea':
        return el('textarea', { id, name: f.name, rows: 2 }, v ?? '');
      case 'int':
        return el('input', { id, name: f.name, inputmode: 'numeric', value: v ?? '', placeholder: 'default' });
      case 'bool':
        return el('input', { id, name: f.name, type: 'checkbox', checked: !!v });
      case 'enum':
        return el('select', { id, name: f.name }, f.values.map((x) => el('option', { value: x, selected: x === v }, x)));
      case 'ref':
        return el('select', { id, name: f.name },
          el('option', { value: '' }, f.required ? 'choose…' : (f.hint || '—')),
          (refs[f.ref] || []).map((x) => el('option', { value: x.id, selected: x.id === v }, x.tid ? `${x.name} (${x.tid})` : x.name)));
      default: {
        const attrs = { id, name: f.name, value: v ?? '', autocomplete: 'off' };
        if (f.list) attrs.list = `${id}-list`;
        if (f.hint && f.kind !== 'ref') attrs.placeholder = f.hint;
        const i = el('input', attrs);
        return f.list ? [i, el('datalist', { id: `${id}-list` }, f.list.map((x) => el('option', { value: x })))] : i;
      }
    }
  }

  function openForm(o) {
    const fields = res.fields.filter((f) => (o ? !f.createOnly : !f.editOnly));
    const steps = fields.some((f) => f.kind === 'steps') ? stepsEditor(o ? o.steps : [{ plugin: 'link' }]) : null;
    const form = el('form', { class: 'card', id: 'object-form', novalidate: true },
      el('h2', {}, o ? `Edit ${res.one} ${o.tid || o.name || ''}` : `New ${res.one}`),
      el('div', { class: 'form-error', role: 'alert', hidden: true }),
      el('div', { class: 'form-grid' }, fields.map((f) => {
        if (f.kind === 'steps') return el('div', { class: 'span2', 'data-field': 'steps' }, steps.node);
        if (f.kind === 'bool') {
          return el('label', { class: 'check', 'data-field': f.name }, input(f, o), ` ${label(f.name)}`,
            f.hint ? el('span', { class: 'muted' }, ` — ${f.hint}`) : null);
        }
        return el('label', { 'data-field': f.name, class: f.kind === 'textarea' ? 'span2' : null },
          `${label(f.name)}${f.unit ? ` (${f.unit})` : ''}`, input(f, o));
      })),
      el('div', { class: 'actions' },
        el('button', { type: 'submit', class: 'btn primary', id: 'save' }, o ? 'Save' : 'Create'),
        el('button', { type: 'button', class: 'btn ghost', onclick: () => clear(editor) }, 'Cancel')));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      clearErrors(form);
      const body = {};
      const bad = {};
      for (const f of fields) {
        if (f.kind === 'steps') {
          const s = steps.collect(bad);
          if (s) body.steps = s;
          continue;
        }
        const node = form.elements[f.name];
        let v = f.kind === 'bool' ? node.checked : node.value.trim();
        if (f.kind === 'int' && v !== '') v = /^\d+$/.test(v) ? Number(v) : v;
        const before = o ? o[f.name] ?? (f.kind === 'bool' ? false : '') : undefined;
        if (o) {
          if (v === before || (v === '' && before === null)) continue;
          if (v === '' && (f.kind === 'ref' || f.kind === 'time' || f.kind === 'int')) v = null;
          body[f.name] = v;
        } else if (v !== '' && !(f.kind === 'bool' && v === false && f.name !== 'confirm')) {
          body[f.name] = v;
        }
      }
      if (Object.keys(bad).length) {
        showError(form, { detail: 'Some steps need fixing.', fields: bad });
        return;
      }
      try {
        const saved = o ? await api.patch(`${res.key}/${o.id}`, body) : await api.post(`${res.key}/`, body);
        catalog.remember(saved);
        if (!o && saved.secret) {
          showSecret(saved);
        } else {
          clear(editor);
          toast(`${o ? 'Saved' : 'Created'} ${res.one} ${saved.tid || saved.name || ''}.`, 'ok');
        }
        reload();
      } catch (err) {
        showError(form, err);
      }
    });
    clear(editor, form);
    form.querySelector('input, select, textarea')?.focus();
  }

  function showSecret(t) {
    const secret = el('code', { id: 'token-secret', class: 'secret' }, t.secret);
    clear(editor, el('div', { class: 'card secret-box', role: 'status' },
      el('h2', {}, `Token ${t.name} created`),
      el('p', {}, 'Copy the secret now: it is shown only once and the server keeps only its hash.'),
      el('div', { class: 'secret-line' }, secret,
        el('button', { class: 'btn', type: 'button', id: 'copy-secret', onclick: async (e) => {
          e.target.textContent = (await copyText(t.secret)) ? 'Copied' : 'Copy failed: select it';
        } }, 'Copy')),
      el('div', { class: 'actions' }, el('button', { class: 'btn ghost', type: 'button', onclick: () => clear(editor) }, 'Done'))));
  }

  const needs = [...new Set(res.fields.filter((f) => f.kind === 'ref').map((f) => f.ref))];
  Promise.all(needs.map(async (r) => {
    try {
      refs[r] = await api.listAll(r, {}, 5000);
    } catch {
      refs[r] = [];
    }
  })).then(reload);
}

// The steps editor: ordered rows of plugin + params (JSON); add, remove, move up/down.
function stepsEditor(initial) {
  let steps = (initial || []).map((s) => ({ plugin: s.plugin || '', params: s.params ? JSON.stringify(s.params, null, 2) : '' }));
  const list = el('ol', { class: 'steps', id: 'steps' });
  const node = el('fieldset', { class: 'steps-editor' }, el('legend', {}, 'Steps (run in order)'), list,
    el('datalist', { id: 'plugins' }, PLUGINS.map((p) => el('option', { value: p }))),
    el('button', { type: 'button', class: 'btn small', id: 'add-step', onclick: () => {
      sync();
      steps.push({ plugin: '', params: '' });
      draw();
      list.querySelector('li:last-child input')?.focus();
    } }, '+ Add step'));

  function sync() {
    list.querySelectorAll('li').forEach((li, i) => {
      steps[i].plugin = li.querySelector('input').value;
      steps[i].params = li.querySelector('textarea').value;
    });
  }
  function move(i, d) {
    sync();
    const j = i + d;
    if (j < 0 || j >= steps.length) return;
    [steps[i], steps[j]] = [steps[j], steps[i]];
    draw();
  }
  function draw() {
    clear(list, steps.length ? steps.map((s, i) => el('li', { class: 'step', 'data-field': `steps[${i}]`, dataset: { index: i } },
      el('div', { class: 'step-head' },
        el('span', { class: 'step-no' }, `${i + 1}`),
        el('label', { 'data-field': `steps[${i}].plugin` }, 'Plugin',
          el('input', { value: s.plugin, list: 'plugins', name: `step-plugin-${i}`, class: 'step-plugin', autocomplete: 'off', placeholder: 'link' })),
        el('span', { class: 'step-buttons' },
          el('button', { type: 'button', class: 'btn small ghost', title: 'move up', 'aria-label': `move step ${i + 1} up`, disabled: i === 0, onclick: () => move(i, -1) }, '↑'),
          el('button', { type: 'button', class: 'btn small ghost', title: 'move down', 'aria-label': `move step ${i + 1} down`, disabled: i === steps.length - 1, onclick: () => move(i, 1) }, '↓'),
          el('button', { type: 'button', class: 'btn small danger', title: 'remove', 'aria-label': `remove step ${i + 1}`, onclick: () => {
            sync();
            steps.splice(i, 1);
            draw();
          } }, '✕'))),
      el('label', { 'data-field': `steps[${i}].params` }, 'Params (JSON object)',
        el('textarea', { name: `step-params-${i}`, class: 'step-params', rows: 3, placeholder: '{}' }, s.params)))) : el('li', { class: 'muted' }, 'No steps: the procedure runs the link step.'));
  }
  // The steps as the API wants them, or null with bad[...] filled when a params is not JSON.
  function collect(bad) {
    sync();
    const out = [];
    steps.forEach((s, i) => {
      const step = { plugin: s.plugin.trim() };
      if (!step.plugin) bad[`steps[${i}].plugin`] = 'name a plugin, e.g. link';
      if (s.params.trim()) {
        try {
          const p = JSON.parse(s.params);
          if (typeof p !== 'object' || Array.isArray(p) || p === null) throw new Error('not an object');
          step.params = p;
        } catch {
          bad[`steps[${i}].params`] = 'must be a JSON object';
        }
      }
      out.push(step);
    });
    return out;
  }
  draw();
  return { node, collect };
}
