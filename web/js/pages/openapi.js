// API: the OpenAPI document served at /api/v1/openapi.json, rendered as a readable list
// of operations grouped by tag, with parameters, request body, responses and schemas.

import { get } from '../api.js';
import { clear, el } from '../ui.js';

function refName(s) {
  return s && s.$ref ? s.$ref.split('/').pop() : null;
}

function schemaText(s) {
  if (!s) return '';
  const r = refName(s);
  if (r) return r;
  if (s.oneOf) return s.oneOf.map(schemaText).join(' | ');
  if (s.type === 'array') return `${schemaText(s.items)}[]`;
  return s.format ? `${s.type} (${s.format})` : s.type || 'object';
}

// Text with `code` spans, as the document's descriptions write them.
function prose(text) {
  return String(text || '').split('`').map((part, i) => (i % 2 ? el('code', {}, part) : part));
}

function schemaLink(s) {
  const r = refName(s);
  return r ? el('a', { href: `#/api/${r}`, class: 'schema-link' }, r) : el('code', {}, schemaText(s));
}

function operation(doc, method, path, op) {
  const params = op.parameters || [];
  const body = op.requestBody && op.requestBody.content;
  return el('details', { class: 'op', id: `op-${op.operationId}` },
    el('summary', {}, el('span', { class: `method m-${method}` }, method.toUpperCase()),
      el('code', { class: 'path' }, path), el('span', { class: 'op-sum' }, op.summary || '')),
    op.description ? el('p', { class: 'op-desc' }, prose(op.description)) : null,
    params.length ? el('div', { class: 'table-wrap' }, el('table', { class: 'grid small' },
      el('thead', {}, el('tr', {}, el('th', {}, 'Parameter'), el('th', {}, 'In'), el('th', {}, 'Type'), el('th', {}, 'About'))),
      el('tbody', {}, params.map((p) => el('tr', {}, el('td', {}, el('code', {}, p.name), p.required ? ' *' : ''),
        el('td', {}, p.in), el('td', {}, schemaText(p.schema)), el('td', {}, prose(p.description))))))) : null,
    body ? el('p', {}, 'Body: ', Object.entries(body).map(([ct, c]) => [el('code', {}, ct), ' ', schemaLink(c.schema), ' '])) : null,
    el('ul', { class: 'responses' }, Object.entries(op.responses || {}).map(([code, r0]) => {
      const r = refName(r0) ? doc.components.responses[refName(r0)] : r0;
      const content = r.content ? Object.entries(r.content)[0] : null;
      return el('li', {}, el('b', { class: `code c${code[0]}` }, code), ' ', prose(r.description),
        content ? [' — ', el('code', {}, content[0]), ' ', schemaLink(content[1].schema)] : null);
    })));
}

function schemaCard(name, s) {
  const props = s.properties || {};
  const req = new Set(s.required || []);
  return el('details', { class: 'op', id: `schema-${name}` },
    el('summary', {}, el('code', {}, name), s.description ? el('span', { class: 'op-sum' }, s.description) : null),
    el('div', { class: 'table-wrap' }, el('table', { class: 'grid small' },
      el('thead', {}, el('tr', {}, el('th', {}, 'Field'), el('th', {}, 'Type'), el('th', {}, 'About'))),
      el('tbody', {}, Object.entries(props).map(([k, v]) => el('tr', {},
        el('td', {}, el('code', {}, k), req.has(k) ? ' *' : ''), el('td', {}, schemaLink(v)),
        el('td', {}, v.description ? prose(v.description) : (v.enum ? `one of ${v.enum.join(', ')}` : ''))))))));
}

export function render(main, args) {
  const box = el('div', { id: 'openapi' }, el('p', { class: 'muted' }, 'Loading…'));
  clear(main, el('div', { class: 'page-head' }, el('h1', {}, 'API'),
    el('a', { href: '/api/v1/openapi.json', class: 'btn small ghost', target: '_blank' }, 'openapi.json')), box);
  get('/api/v1/openapi.json').then((doc) => {
    const byTag = new Map();
    for (const [path, item] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(item)) {
        const tag = (op.tags && op.tags[0]) || 'other';
        if (!byTag.has(tag)) byTag.set(tag, []);
        byTag.get(tag).push(operation(doc, method, path, op));
      }
    }
    clear(box,
      el('section', { class: 'card' }, el('h2', {}, `${doc.info.title} ${doc.info.version}`),
        el('p', {}, prose(doc.info.description)),
        el('p', { class: 'muted' }, `OpenAPI ${doc.openapi} · ${Object.keys(doc.paths).length} paths`)),
      [...byTag.entries()].map(([tag, ops]) => el('section', { class: 'api-group' }, el('h2', {}, tag), ops)),
      el('section', { class: 'api-group', id: 'schemas' }, el('h2', {}, 'Schemas'),
        Object.entries(doc.components.schemas).map(([n, s]) => schemaCard(n, s))));
    if (args[0]) {
      const d = document.getElementById(`schema-${args[0]}`);
      if (d) {
        d.open = true;
        d.scrollIntoView();
      }
    }
  }).catch((e) => clear(box, el('p', { class: 'form-error', role: 'alert' }, e.detail)));
}
