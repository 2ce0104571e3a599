// The dashboard's shell: sign-in with a token kept in sessionStorage, the hash router
// (#/page/arg) that hands the main area to one page module at a time, the live-update
// indicator, and sign-out.

import * as api from './api.js';
import { live } from './live.js';
import { clear, el, showError } from './ui.js';
import * as overview from './pages/overview.js';
import * as sessions from './pages/sessions.js';
import * as firmware from './pages/firmware.js';
import * as devices from './pages/devices.js';
import * as config from './pages/config.js';
import * as openapi from './pages/openapi.js';
import * as webhooks from './pages/webhooks.js';

// Route table: first hash segment -> page module.
const PAGES = {
  overview,
  sessions,
  firmware,
  devices,
  config,
  webhooks,
  api: openapi,
};

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const who = document.getElementById('who');
let cleanup = null;

function signedIn(yes) {
  nav.hidden = !yes;
  who.hidden = !yes;
  document.body.classList.toggle('signed-in', yes);
}

function signInPage(message) {
  signedIn(false);
  live.stop();
  const input = el('input', { id: 'token', name: 'token', type: 'password', autocomplete: 'off',
    required: true, placeholder: 'dh_…', 'aria-describedby': 'signin-help' });
  const form = el('form', { class: 'card signin', id: 'signin-form', novalidate: true },
    el('h1', {}, 'Sign in'),
    el('p', { id: 'signin-help', class: 'muted' },
      'Paste an API token. It stays in this browser tab only and is sent as Authorization: Token …'),
    el('div', { class: 'form-error', role: 'alert', hidden: !message }, message || ''),
    el('label', { for: 'token', 'data-field': 'token' }, 'Token', input),
    el('div', { class: 'actions' }, el('button', { type: 'submit', class: 'btn primary' }, 'Sign in')));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const t = input.value.trim();
    if (!t) {
      showError(form, { detail: 'Enter a token.', fields: { token: 'required' } });
      return;
    }
    let err = null;
    try {
      await api.get('tokens/?limit=1', { tok: t, quiet401: true });
    } catch (e) {
      // 403 is a valid token whose user holds no grant yet; only 401 means a bad token
      if (e.status !== 403) err = e;
    }
    if (err) {
      const text = err.status === 401
        ? 'This token is not valid: it is unknown, expired or revoked.'
        : err.detail;
      showError(form, { detail: text });
      input.select();
      return;
    }
    api.setToken(t);
    start();
  });
  clear(main, form);
  input.focus();
}

function route() {
  if (!api.token()) {
    signInPage();
    return;
  }
  const parts = (location.hash.replace(/^#\/?/, '') || 'sessions').split('/').map(decodeURIComponent);
  const page = PAGES[parts[0]] || sessions;
  nav.querySelectorAll('a').forEach((a) => a.classList.toggle('active', a.dataset.page === parts[0]));
  if (cleanup) cleanup();
  cleanup = null;
  clear(main);
  main.scrollTop = 0;
  const r = page.render(main, parts.slice(1));
  if (typeof r === 'function') cleanup = r;
}

function start() {
  signedIn(true);
  live.start();
  if (!location.hash || location.hash === '#/' || location.hash === '#') location.hash = '#/sessions';
  else route();
}

function signOut(message) {
  api.setToken(null);
  if (cleanup) cleanup();
  cleanup = null;
  live.stop();
  history.replaceState(null, '', '#/');
  signInPage(message);
}

document.getElementById('signout').addEventListener('click', () => signOut());
api.onUnauthorized(() => signOut('Your token is no longer accepted (revoked or expired). Sign in again.'));
live.onMode((m) => {
  const b = document.getElementById('live');
  b.textContent = m === 'live' ? 'live' : m === 'polling' ? 'polling' : 'offline';
  b.className = `live ${m}`;
  b.title = m === 'live' ? 'Updates arrive as they happen (Server-Sent Events)'
    : m === 'polling' ? 'The event stream is unavailable: the page reloads every few seconds' : '';
});
window.addEventListener('hashchange', () => api.token() && route());

if (api.token()) start();
else signInPage();
