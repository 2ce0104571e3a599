// Small DOM helpers shared by the pages: element building, formatting of times, sizes
// and states, progress bars, toasts, and showing an API error next to the inputs.

export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'dataset') Object.assign(e.dataset, v);
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'value') e.value = v;
    else if (k === 'checked') e.checked = !!v;
    else if (v === true) e.setAttribute(k, '');
    else e.setAttribute(k, v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

export function clear(node, ...children) {
  node.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

export function age(iso) {
  if (!iso) return '—';
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (s < 60) return `${Math.floor(s)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86400) return `${Math.floor(s / 3600)} h`;
  return `${Math.floor(s / 86400)} d`;
}

export function when(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}

export function bytes(n) {
  if (n === null || n === undefined) return '—';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

export const STATES = ['ready', 'up_to_date', 'queued', 'processing', 'created', 'success', 'fail', 'unconfirmed'];

export function stateBadge(state, finished) {
  return el('span', { class: `badge st-${state}`, title: finished ? 'finished' : null },
    state ? state.replace('_', ' ') : '—', finished ? ' ✓' : '');
}

export function progressBar(pct, label) {
  const p = Math.max(0, Math.min(100, Math.round(pct ?? 0)));
  return el('div', { class: 'progress', role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': 100,
    'aria-valuenow': p, 'aria-label': label || 'progress' },
  el('div', { class: 'bar', style: `width:${p}%` }), el('span', { class: 'pct' }, `${p} %`));
}

// How long a notification stays: long enough to read a sentence, an error twice that.
const TOAST_MS = { info: 4000, ok: 4000, error: 8000 };
const TOASTS_MAX = 3;

// A notification in the strip between the top bar and the page: it takes its own room in
// the page's flow, so it never lies over a table or a form, and it goes away by itself
// (or at its close button). At most TOASTS_MAX at once: the oldest gives way.
export function toast(text, kind = 'info') {
  const box = document.getElementById('toasts');
  const t = el('div', { class: `toast ${kind}`, role: kind === 'error' ? 'alert' : 'status' },
    el('span', { class: 'text' }, text),
    el('button', { type: 'button', class: 'close', 'aria-label': 'Dismiss', onclick: () => t.remove() }, '×'));
  box.append(t);
  while (box.children.length > TOASTS_MAX) box.firstElementChild.remove();
  setTimeout(() => t.remove(), TOAST_MS[kind] || TOAST_MS.info);
}

// Shows err (an ApiError) in form: detail in the form's .form-error, each fields[name] next
// to the input named name (or the nearest [data-field] prefix, e.g. steps[1].params -> steps).
export function showError(form, err) {
  clearErrors(form);
  const box = form.querySelector('.form-error');
  if (box) {
    box.textContent = err.detail || String(err);
    box.hidden = false;
  }
  for (const [name, what] of Object.entries(err.fields || {})) {
    const holder = fieldHolder(form, name);
    const msg = el('div', { class: 'field-error', dataset: { for: name } }, `${name}: ${what}`);
    if (holder) {
      holder.classList.add('invalid');
      holder.append(msg);
    } else if (box) {
      box.append(el('div', {}, msg));
    }
  }
}

// The element marked data-field for name, or for its nearest prefix: steps[1].params.x
// tries steps[1].params.x, steps[1].params, steps[1], steps.
function fieldHolder(form, name) {
  const cands = [name];
  for (let i = name.length - 1; i > 0; i--) {
    if (name[i] === '.' || name[i] === '[') cands.push(name.slice(0, i));
  }
  for (const n of cands) {
    const h = form.querySelector(`[data-field="${CSS.escape(n)}"]`);
    if (h) return h;
  }
  return null;
}

export function clearErrors(form) {
  form.querySelectorAll('.field-error').forEach((e) => e.remove());
  form.querySelectorAll('.invalid').forEach((e) => e.classList.remove('invalid'));
  const box = form.querySelector('.form-error');
  if (box) {
    box.textContent = '';
    box.hidden = true;
  }
}

export function tableWrap(table) {
  return el('div', { class: 'table-wrap' }, table);
}

export function emptyRow(cols, text) {
  return el('tr', { class: 'empty' }, el('td', { colspan: cols }, text));
}

export function short(id) {
  return id ? id.slice(0, 8) : '—';
}

export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    const ta = el('textarea', { class: 'offscreen' }, text);
    document.body.append(ta);
    ta.select();
    const ok = document.execCommand('copy');
    ta.remove();
    return ok;
  }
}
