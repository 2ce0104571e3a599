// The Webhooks page in a real headless Chromium: a webhook made with the form (its secret
// shown once, and it signs what the receiver gets), its deliveries listed as they happen
// (a failing one with its status and answer, then delivered), one sent again from the page,
// the secret rotated, the webhook paused. A receiver of our own records what arrives.

import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import { launch, Server, shot, signIn, sleep } from './lib.js';

const T = 15000; // bound of every wait on the page (the delivery list refreshes every 3 s)

class Receiver {
  constructor() {
    this.requests = [];
    this.answers = []; // statuses to answer first, then 200
  }

  start() {
    this.srv = http.createServer((req, res) => {
      const chunks = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        this.requests.push({ headers: req.headers, body: Buffer.concat(chunks) });
        const status = this.answers.length ? this.answers.shift() : 200;
        res.writeHead(status, { 'Content-Type': 'application/json' });
        res.end(status === 200 ? '{"ok":true}' : '{"error":"receiver says no"}');
      });
    });
    return new Promise((resolve) => this.srv.listen(0, '127.0.0.1', () => {
      this.url = `http://127.0.0.1:${this.srv.address().port}/hook`;
      resolve(this);
    }));
  }

  stop() {
    return new Promise((resolve) => this.srv.close(resolve));
  }

  async waitFor(pred) {
    const end = Date.now() + T;
    while (Date.now() < end) {
      if (pred(this.requests)) return this.requests;
      await sleep(50);
    }
    throw new Error(`receiver: got ${this.requests.length} requests`);
  }
}

function signed(secret, r) {
  const key = Buffer.from(secret.slice('whsec_'.length), 'base64');
  const mac = createHmac('sha256', key)
    .update(`${r.headers['webhook-id']}.${r.headers['webhook-timestamp']}.`).update(r.body).digest('base64');
  return r.headers['webhook-signature'].split(' ').includes(`v1,${mac}`);
}

describe('webhooks page', () => {
  let server;
  let browser;
  let page;
  let rx;
  let secret;

  before(async () => {
    rx = await new Receiver().start();
    server = await new Server(['--webhook-allow-private', '--webhook-retry-base-ms', '200']).start();
    browser = await launch();
    page = await browser.ctx.newPage();
    page.on('pageerror', (e) => console.error('page error:', e.message));
    page.on('dialog', (d) => d.accept());
    await server.create('products/', { tid: 'sensor', name: 'Sensor' });
    await signIn(page, server);
  });

  after(async () => {
    if (browser) await browser.close();
    if (server) await server.stop();
    if (rx) await rx.stop();
  });

  test('create a webhook: the secret is shown once and signs deliveries', async () => {
    await page.click('#nav a[data-page=webhooks]');
    await page.waitForSelector('#webhooks-table tr.empty', { timeout: T });
    await page.click('#new-webhook');
    await page.fill('#webhook-form [name=url]', 'http://127.0.0.1:1/');
    await page.click('#webhook-save');
    // without --webhook-allow-private this would be refused; here port 1 is just a URL
    await page.waitForSelector('#webhook-secret', { timeout: T });
    await page.click('#webhook-secret-box button.ghost');
    await page.click('#new-webhook');
    await page.fill('#webhook-form [name=url]', 'not a url');
    await page.click('#webhook-save');
    const fieldErr = page.locator('#webhook-form [data-field=url] .field-error');
    await fieldErr.waitFor({ timeout: T });
    assert.match(await fieldErr.textContent(), /http or https/);
    await page.fill('#webhook-form [name=url]', rx.url);
    await page.uncheck('#webhook-form input[value="*"]');
    await page.check('#webhook-form input[value="object.created"]');
    await page.click('#webhook-save');
    secret = (await page.locator('#webhook-secret').textContent()).trim();
    assert.match(secret, /^whsec_[A-Za-z0-9+/]+=*$/);
    await shot(page, 'webhook-created');
    await page.click('#webhook-secret-box button.ghost');
    await page.waitForSelector(`#webhooks-table td >> text=${rx.url}`, { timeout: T });
    const hooks = (await server.api('GET', 'webhooks/')).body.results;
    assert.equal(hooks.length, 2);
    assert.deepEqual(hooks.find((w) => w.url === rx.url).events, ['object.created']);
    await server.create('products/', { tid: 'first', name: 'First' });
    const reqs = await rx.waitFor((q) => q.length >= 1);
    assert.ok(signed(secret, reqs[0]));
    assert.equal(JSON.parse(reqs[0].body).data.object.tid, 'first');
  });

  test('deliveries show as they happen, failures with their answer', async () => {
    await page.click(`#webhooks-table a >> text=${rx.url}`);
    await page.waitForSelector('#deliveries-table tr[data-status=delivered]', { timeout: T });
    rx.answers = [500, 500];
    await server.create('products/', { tid: 'second', name: 'Second' });
    await rx.waitFor((q) => q.length >= 4);
    await page.waitForFunction(() => document.querySelectorAll('#deliveries-table tr[data-status=delivered]').length === 2,
      null, { timeout: T });
    const first = page.locator('#deliveries-table tbody tr').first();
    assert.match(await first.textContent(), /object\.created/);
    assert.match(await first.locator('td.num').textContent(), /^3$/);
    await shot(page, 'webhook-deliveries');
  });

  test('redeliver from the page sends the same webhook-id again', async () => {
    const before = rx.requests.length;
    const row = page.locator('#deliveries-table tbody tr').last();
    const id = await row.getAttribute('data-id');
    await row.locator('button[data-redeliver]').click();
    const reqs = await rx.waitFor((q) => q.length > before);
    assert.equal(reqs[reqs.length - 1].headers['webhook-id'], id);
    assert.ok(signed(secret, reqs[reqs.length - 1]));
  });

  test('rotate the secret, then pause', async () => {
    await page.click('#webhook-rotate');
    await page.waitForSelector('#webhook-secret', { timeout: T });
    const fresh = (await page.locator('#webhook-secret').textContent()).trim();
    assert.notEqual(fresh, secret);
    await server.create('products/', { tid: 'third', name: 'Third' });
    const reqs = await rx.waitFor((q) => q.some((r) => JSON.parse(r.body).data.object.tid === 'third'));
    const last = reqs.find((r) => JSON.parse(r.body).data.object.tid === 'third');
    // both keys sign during the grace period
    assert.ok(signed(fresh, last) && signed(secret, last));
    await page.click('#webhook-toggle');
    await page.waitForFunction(() => document.getElementById('webhook-state').textContent === 'paused',
      null, { timeout: T });
    // a paused webhook gets no deliveries: the outbox writes none in the product's transaction
    const hook = (await server.api('GET', 'webhooks/')).body.results.find((w) => w.url === rx.url);
    const count = async () => (await server.api('GET', `webhooks/${hook.id}/deliveries/`)).body.count;
    const n = await count();
    await server.create('products/', { tid: 'fourth', name: 'Fourth' });
    assert.equal(await count(), n);
    await shot(page, 'webhook-paused');
  });
});
