// Live updates: GET /api/v1/events read as a stream with fetch (EventSource cannot send
// the Authorization header), parsed as Server-Sent Events and handed to listeners. When
// the stream is unavailable (503, a proxy that buffers, the network) the page falls back
// to polling: listeners get {type: 'poll'} every few seconds and reload what they show,
// while the stream is tried again in the background.

import { authHeader } from './api.js';

const POLL_MS = 3000;
const RETRY_MS = 3000;
const RETRY_AFTER_503_MS = 30000;

export class Live {
  constructor() {
    this.listeners = new Set();
    this.modeListeners = new Set();
    this.lastId = null;
    this.mode = 'offline';
    this.ctl = null;
    this.pollTimer = null;
    this.retryTimer = null;
    this.running = false;
  }

  on(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  onMode(fn) {
    this.modeListeners.add(fn);
    fn(this.mode);
  }

  setMode(m) {
    if (m === this.mode) return;
    this.mode = m;
    this.modeListeners.forEach((fn) => fn(m));
    if (m === 'polling' && !this.pollTimer) {
      this.pollTimer = setInterval(() => this.emit({ type: 'poll' }), POLL_MS);
    } else if (m !== 'polling' && this.pollTimer) {
      clearInterval(this.pollTimer);
      this.pollTimer = null;
    }
  }

  emit(ev) {
    for (const fn of this.listeners) {
      try {
        fn(ev);
      } catch (e) {
        console.error(e);
      }
    }
  }

  start() {
    if (this.running) return;
    this.running = true;
    this.connect();
  }

  stop() {
    this.running = false;
    if (this.ctl) this.ctl.abort();
    clearTimeout(this.retryTimer);
    this.ctl = null;
    this.setMode('offline');
  }

  retry(ms) {
    clearTimeout(this.retryTimer);
    if (this.running) this.retryTimer = setTimeout(() => this.connect(), ms);
  }

  async connect() {
    if (!this.running) return;
    const ctl = new AbortController();
    this.ctl = ctl;
    const headers = { Accept: 'text/event-stream', ...authHeader() };
    if (this.lastId) headers['Last-Event-ID'] = this.lastId;
    let r;
    try {
      r = await fetch('/api/v1/events', { headers, signal: ctl.signal, cache: 'no-store' });
    } catch {
      if (!ctl.signal.aborted) {
        this.setMode('polling');
        this.retry(RETRY_MS);
      }
      return;
    }
    if (!r.ok || !r.body || !(r.headers.get('Content-Type') || '').startsWith('text/event-stream')) {
      this.setMode('polling');
      this.retry(r.status === 503 ? RETRY_AFTER_503_MS : RETRY_MS * 3);
      return;
    }
    const wasPolling = this.mode === 'polling';
    this.setMode('live');
    if (wasPolling) this.emit({ type: 'poll' }); // catch up with what polling missed
    const reader = r.body.getReader();
    const dec = new TextDecoder();
    let buf = '';
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true }).replace(/\r\n?/g, '\n');
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          this.dispatch(buf.slice(0, i));
          buf = buf.slice(i + 2);
        }
      }
    } catch {
      /* aborted or cut: reconnect below */
    }
    if (this.running && this.ctl === ctl) {
      this.setMode('polling');
      this.retry(RETRY_MS);
    }
  }

  dispatch(block) {
    let type = 'message';
    let id = null;
    const data = [];
    for (const line of block.split('\n')) {
      if (!line || line.startsWith(':')) continue;
      const c = line.indexOf(':');
      const k = c < 0 ? line : line.slice(0, c);
      const v = c < 0 ? '' : line.slice(c + 1).replace(/^ /, '');
      if (k === 'event') type = v;
      else if (k === 'data') data.push(v);
      else if (k === 'id') id = v;
    }
    if (id) this.lastId = id;
    if (!data.length) return;
    let parsed = null;
    try {
      parsed = JSON.parse(data.join('\n'));
    } catch {
      return;
    }
    if (type === 'events.missed') this.emit({ type: 'poll' });
    else this.emit({ type, id, data: parsed });
  }
}

export const live = new Live();
