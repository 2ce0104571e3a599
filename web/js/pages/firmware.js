// Firmware: the catalogue per model and channel with each image's size, SHA-256 and
// MCUboot version, and an upload form with drag and drop and a progress bar.

import * as api from '../api.js';
import * as catalog from '../catalog.js';
import {
  bytes, clear, clearErrors, el, emptyRow, progressBar, showError, tableWrap, toast, when,
} from '../ui.js';

function mcubootVersion(info) {
  if (!info) return '—';
  return info.version || (info.mcuboot ? 'MCUboot' : '—');
}

export function render(main) {
  const filters = { model: '', channel: '' };
  const modelF = el('select', { id: 'fw-filter-model' }, el('option', { value: '' }, 'all models'));
  const chanF = el('select', { id: 'fw-filter-channel' }, el('option', { value: '' }, 'all channels'));
  const tbody = el('tbody');
  const listErr = el('p', { class: 'form-error', role: 'alert', hidden: true });

  // upload form
  const file = el('input', { type: 'file', id: 'fw-file', name: 'file', class: 'offscreen' });
  const dropText = el('span', { id: 'drop-text' }, 'Drop an image here, or click to choose a file');
  const drop = el('div', { class: 'drop', id: 'drop', tabindex: 0, role: 'button', 'data-field': 'file',
    'aria-label': 'firmware image file' }, dropText);
  const model = el('select', { name: 'model', id: 'fw-model', required: true });
  const version = el('input', { name: 'version', id: 'fw-version', placeholder: '1.2.0', required: true, autocomplete: 'off' });
  const chans = el('div', { class: 'checks', id: 'fw-channels' });
  const draft = el('input', { type: 'checkbox', name: 'draft', id: 'fw-draft' });
  const desc = el('input', { name: 'description', id: 'fw-description', autocomplete: 'off' });
  const bar = el('div', { id: 'upload-progress', hidden: true });
  const submit = el('button', { type: 'submit', class: 'btn primary', id: 'fw-submit' }, 'Upload');
  let chosen = null;
  const form = el('form', { class: 'card', id: 'upload-form', novalidate: true },
    el('h2', {}, 'Upload an image'),
    el('div', { class: 'form-error', role: 'alert', hidden: true }),
    el('div', { class: 'form-grid' },
      el('div', { class: 'span2' }, drop, file),
      el('label', { 'data-field': 'model' }, 'Model', model),
      el('label', { 'data-field': 'version' }, 'Version (SemVer)', version),
      el('fieldset', { 'data-field': 'channels', class: 'span2' }, el('legend', {}, 'Channels'), chans),
      el('label', { 'data-field': 'description', class: 'span2' }, 'Description', desc),
      el('label', { 'data-field': 'draft', class: 'check' }, draft, ' Draft (only sessions that allow drafts get it)')),
    bar,
    el('div', { class: 'actions' }, submit));

  function choose(f) {
    chosen = f;
    dropText.textContent = f ? `${f.name} — ${bytes(f.size)}` : 'Drop an image here, or click to choose a file';
    drop.classList.toggle('has-file', !!f);
  }
  drop.addEventListener('click', () => file.click());
  drop.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' || e.key === ' ') {
      e.preventDefault();
      file.click();
    }
  });
  file.addEventListener('change', () => choose(file.files[0] || null));
  drop.addEventListener('dragover', (e) => {
    e.preventDefault();
    drop.classList.add('over');
  });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    if (e.dataTransfer.files.length) choose(e.dataTransfer.files[0]);
  });

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearErrors(form);
    const fields = {};
    if (!chosen) fields.file = 'choose an image';
    if (!model.value) fields.model = 'required';
    if (!version.value.trim()) fields.version = 'required';
    if (Object.keys(fields).length) {
      showError(form, { detail: 'Some fields need a value.', fields });
      return;
    }
    const fd = new FormData();
    fd.append('model', model.value);
    fd.append('version', version.value.trim());
    chans.querySelectorAll('input:checked').forEach((c) => fd.append('channels', c.value));
    fd.append('draft', draft.checked ? 'true' : 'false');
    if (desc.value) fd.append('description', desc.value);
    fd.append('file', chosen, chosen.name);
    submit.disabled = true;
    bar.hidden = false;
    clear(bar, progressBar(0, 'upload progress'));
    try {
      const fw = await api.upload('firmware/', fd, (done, total) => {
        clear(bar, progressBar((done / total) * 100, 'upload progress'));
      });
      clear(bar, progressBar(100, 'upload progress'));
      toast(`Uploaded ${fw.version} (${bytes(fw.size)}).`, 'ok');
      form.reset();
      choose(null);
      reload();
    } catch (err) {
      bar.hidden = true;
      showError(form, err);
    } finally {
      submit.disabled = false;
    }
  });

  function row(f) {
    return el('tr', { dataset: { id: f.id, version: f.version } },
      el('td', {}, el('b', {}, f.version), f.draft ? el('span', { class: 'badge draft' }, 'draft') : null),
      el('td', {}, catalog.tid(f.model)),
      el('td', {}, (f.channels || []).map((c) => catalog.tid(c)).join(', ') || '—'),
      el('td', { class: 'nowrap' }, bytes(f.size)),
      el('td', { class: 'hide-sm' }, el('code', { title: f.sha256, class: 'sha' }, f.sha256 ? `${f.sha256.slice(0, 12)}…` : '—')),
      el('td', { class: 'mcuboot' }, mcubootVersion(f.image_info)),
      el('td', { class: 'hide-sm' }, f.filename || '—'),
      el('td', { class: 'hide-sm nowrap' }, when(f.create_time)),
      el('td', {}, el('button', { class: 'btn small ghost', type: 'button',
        onclick: () => api.download(`/api/v1/firmware/${f.id}/image`, f.filename || `${f.version}.bin`).catch((e) => toast(e.detail, 'error')) },
      'Download')));
  }

  async function reload() {
    try {
      const list = await api.listAll('firmware', filters, 2000);
      list.sort((a, b) => (a.create_time < b.create_time ? 1 : -1));
      clear(tbody, list.length ? list.map(row) : emptyRow(9, 'No firmware yet.'));
      listErr.hidden = true;
    } catch (e) {
      listErr.textContent = e.detail;
      listErr.hidden = false;
    }
  }
  modelF.addEventListener('change', () => { filters.model = modelF.value; reload(); });
  chanF.addEventListener('change', () => { filters.channel = chanF.value; reload(); });

  clear(main,
    el('div', { class: 'page-head' }, el('h1', {}, 'Firmware')),
    form,
    el('form', { class: 'filters', onsubmit: (e) => e.preventDefault() },
      el('label', {}, 'Model', modelF), el('label', {}, 'Channel', chanF)),
    listErr,
    tableWrap(el('table', { class: 'grid', id: 'firmware-table' },
      el('thead', {}, el('tr', {}, el('th', {}, 'Version'), el('th', {}, 'Model'), el('th', {}, 'Channels'),
        el('th', {}, 'Size'), el('th', { class: 'hide-sm' }, 'SHA-256'), el('th', {}, 'MCUboot'),
        el('th', { class: 'hide-sm' }, 'File'), el('th', { class: 'hide-sm' }, 'Uploaded'), el('th', {}, ''))),
      tbody)));

  catalog.load('models', 'channels').then(() => {
    model.append(el('option', { value: '' }, 'choose…'));
    for (const m of catalog.cat.models) {
      model.append(el('option', { value: m.id }, catalog.name(m.id)));
      modelF.append(el('option', { value: m.id }, catalog.name(m.id)));
    }
    for (const c of catalog.cat.channels) {
      chans.append(el('label', { class: 'check' }, el('input', { type: 'checkbox', value: c.id, name: 'channels' }), ` ${c.tid}`));
      chanF.append(el('option', { value: c.id }, catalog.name(c.id)));
    }
    if (!catalog.cat.channels.length) chans.append(el('span', { class: 'muted' }, 'No channels yet.'));
    reload();
  });
}
