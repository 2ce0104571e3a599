// The dashboard's only door to the server: JSON calls with the signed-in token, the
// error shape of the API as ApiError, paged lists, and uploads with progress.

const KEY = 'devicehub.token';
const BASE = '/api/v1';

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.detail) || `HTTP ${status}`);
    this.status = status;
    this.code = (body && body.code) || 'error';
    this.detail = this.message;
    this.fields = (body && body.fields) || {};
  }
}

export function token() {
  return sessionStorage.getItem(KEY);
}

export function setToken(t) {
  if (t) sessionStorage.setItem(KEY, t);
  else sessionStorage.removeItem(KEY);
}

export function authHeader(t = token()) {
  return t ? { Authorization: `Token ${t}` } : {};
}

// Listeners told when any call answers 401 (the token was revoked or expired).
const unauthorized = new Set();
export function onUnauthorized(fn) {
  unauthorized.add(fn);
}

async function parse(r) {
  const text = await r.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return { code: 'bad_response', detail: `The server answered ${r.status} with something that is not JSON.` };
  }
}

// One call; path is below /api/v1 unless it starts with '/'. Throws ApiError on non-2xx.
export async function call(method, path, body, { tok, quiet401 } = {}) {
  const url = path.startsWith('/') ? path : `${BASE}/${path}`;
  const headers = { Accept: 'application/json', ...authHeader(tok ?? token()) };
  const init = { method, headers };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let r;
  try {
    r = await fetch(url, init);
  } catch (e) {
    throw new ApiError(0, { code: 'network', detail: 'The server cannot be reached.' });
  }
  const data = await parse(r);
  if (!r.ok) {
    if (r.status === 401 && !quiet401) unauthorized.forEach((fn) => fn());
    throw new ApiError(r.status, data);
  }
  return data;
}

export const get = (p, opts) => call('GET', p, undefined, opts);
export const post = (p, b = {}) => call('POST', p, b);
export const patch = (p, b) => call('PATCH', p, b);
export const del = (p) => call('DELETE', p);

export function qs(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== '') q.set(k, v);
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

// Every item of a list, following pages up to max items.
export async function listAll(resource, params = {}, max = 5000) {
  const out = [];
  let offset = 0;
  for (;;) {
    const page = await get(`${resource}/${qs({ ...params, limit: 1000, offset })}`);
    out.push(...page.results);
    offset += page.results.length;
    if (!page.next || page.results.length === 0 || out.length >= max) return out;
  }
}

// Multipart upload with progress (fetch cannot report upload progress; XHR can).
export function upload(path, form, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', `${BASE}/${path}`);
    const t = token();
    if (t) xhr.setRequestHeader('Authorization', `Token ${t}`);
    xhr.setRequestHeader('Accept', 'application/json');
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) onProgress(e.loaded, e.total);
    };
    xhr.onload = () => {
      let body = null;
      try {
        body = xhr.responseText ? JSON.parse(xhr.responseText) : null;
      } catch {
        body = { code: 'bad_response', detail: `The server answered ${xhr.status}.` };
      }
      if (xhr.status >= 200 && xhr.status < 300) resolve(body);
      else {
        if (xhr.status === 401) unauthorized.forEach((fn) => fn());
        reject(new ApiError(xhr.status, body));
      }
    };
    xhr.onerror = () => reject(new ApiError(0, { code: 'network', detail: 'The upload was interrupted.' }));
    xhr.send(form);
  });
}

// Downloads an authenticated URL and hands it to the browser as a file.
export async function download(url, filename) {
  const r = await fetch(url, { headers: authHeader() });
  if (!r.ok) throw new ApiError(r.status, await parse(r));
  const blob = await r.blob();
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob);
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
}
