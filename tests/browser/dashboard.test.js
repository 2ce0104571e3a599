// The dashboard in a real headless Chromium against a real devicehubd: sign-in (and a bad
// token), the configuration forms with a server error shown by its field, a procedure
// built with the steps editor, an upload by drag and drop, a session followed live to
// `created` in the table and the detail view, devices, the API page, a narrow screen,
// and the polling fallback when the event stream is off. Screenshots go to artifacts/.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { launch, mcubootImage, Server, shot, signIn } from './lib.js';

const T = 10000; // bound of every wait on the page

describe('dashboard', () => {
  let server;
  let browser;
  let page;
  const ids = {};

  before(async () => {
    server = await new Server().start();
    browser = await launch();
    page = await browser.ctx.newPage();
    page.on('pageerror', (e) => console.error('page error:', e.message));
    ids.product = await server.create('products/', { tid: 'sensor', name: 'Sensor' });
    ids.model = await server.create('models/', { tid: 'CAFEBABE', name: 'Sensor rev B', product: 'sensor' });
    ids.channel = await server.create('channels/', { tid: 'stable', name: 'stable' });
    ids.method = await server.create('delivery-methods/', { tid: 'http', name: 'HTTP download', kind: 'http' });
  });

  after(async () => {
    if (browser) await browser.close();
    if (server) await server.stop();
  });

  test('a bad token is refused with a clear message', async () => {
    await page.goto(`${server.url}/`);
    await page.fill('#token', 'not-a-valid-token-at-all');
    await page.click('#signin-form button[type=submit]');
    const err = page.locator('#signin-form .form-error');
    await err.waitFor({ state: 'visible', timeout: T });
    assert.match(await err.textContent(), /not valid/);
    assert.equal(await page.isHidden('#nav'), true);
    await shot(page, 'signin-bad-token');
  });

  test('sign in, then sign out', async () => {
    await signIn(page, server);
    assert.equal(await page.evaluate(() => sessionStorage.getItem('devicehub.token')), 'browser-admin-token-0123456789');
    await page.click('#signout');
    await page.waitForSelector('#signin-form', { timeout: T });
    assert.equal(await page.evaluate(() => sessionStorage.getItem('devicehub.token')), null);
    await signIn(page, server);
    await page.waitForSelector('#sessions-table', { timeout: T });
  });

  test('bad input shows the server detail and the field', async () => {
    await page.goto(`${server.url}/#/config/products`);
    await page.click('#new-object');
    await page.fill('#object-form [name=tid]', 'not a tid!');
    await page.click('#save');
    const fieldErr = page.locator('#object-form [data-field=tid] .field-error');
    await fieldErr.waitFor({ state: 'visible', timeout: T });
    assert.match(await fieldErr.textContent(), /tid: must match/);
    assert.match(await page.textContent('#object-form [data-field=name] .field-error'), /name: required/);
    assert.match(await page.textContent('#object-form .form-error'), /Invalid field/);
    await shot(page, 'config-error');
    // nothing was created
    const r = await server.api('GET', 'products/');
    assert.equal(r.body.count, 1);
  });

  test('create, edit and delete a product', async () => {
    await page.fill('#object-form [name=tid]', 'lamp');
    await page.fill('#object-form [name=name]', 'Lamp');
    await page.click('#save');
    await page.waitForSelector('#products-table tr[data-tid=lamp]', { timeout: T });
    await page.click('#products-table tr[data-tid=lamp] >> text=Edit');
    await page.fill('#object-form [name=name]', 'Desk lamp');
    await page.click('#save');
    await page.waitForSelector('#products-table tr[data-tid=lamp] >> text=Desk lamp', { timeout: T });
    await page.click('#products-table tr[data-tid=lamp] >> text=Delete');
    await page.click('#products-table tr[data-tid=lamp] >> text=Yes');
    await page.waitForSelector('#products-table tr[data-tid=lamp]', { state: 'detached', timeout: T });
    assert.equal((await server.api('GET', 'products/lamp')).status, 404);
  });

  test('configure a procedure with the steps editor', async () => {
    await page.goto(`${server.url}/#/config/delivery-procedures`);
    await page.click('#new-object');
    await page.fill('#object-form [name=tid]', 'dp-link');
    await page.fill('#object-form [name=name]', 'Link, confirmed');
    await page.selectOption('#object-form [name=delivery_method]', ids.method.id);
    await page.check('#object-form [name=confirm]');
    // the editor starts with one link step; add two more, fill, reorder, remove one
    await page.click('#add-step');
    await page.fill('[name=step-plugin-1]', 'exec');
    await page.click('#add-step');
    await page.fill('[name=step-plugin-2]', 'link');
    await page.fill('[name=step-params-2]', '{"note": not json}');
    await page.click('#save');
    const bad = page.locator('[data-field="steps[2].params"] .field-error');
    await bad.waitFor({ state: 'visible', timeout: T });
    assert.match(await bad.textContent(), /JSON object/);
    await page.fill('[name=step-params-2]', '{"note": "second"}');
    await page.click('[aria-label="move step 3 up"]');
    assert.equal(await page.inputValue('[name=step-plugin-1]'), 'link');
    assert.equal(await page.inputValue('[name=step-params-1]'), '{"note": "second"}');
    await page.click('[aria-label="remove step 3"]'); // the exec step, now last
    assert.equal(await page.locator('#steps li.step').count(), 2);
    await shot(page, 'config-steps-editor');
    await page.click('#save');
    await page.waitForSelector('#delivery-procedures-table tr[data-tid=dp-link]', { timeout: T });
    const dp = (await server.api('GET', 'delivery-procedures/dp-link')).body;
    assert.deepEqual(dp.steps, [{ plugin: 'link' }, { plugin: 'link', params: { note: 'second' } }]);
    assert.equal(dp.confirm, true);
    ids.procedure = dp;
    await shot(page, 'config');
  });

  test('a token secret is shown once with a copy button', async () => {
    await page.goto(`${server.url}/#/config/tokens`);
    await page.click('#new-object');
    await page.fill('#object-form [name=name]', 'ci');
    await page.click('#save');
    const secret = await page.locator('#token-secret').textContent({ timeout: T });
    assert.match(secret, /^dh_/);
    await page.click('#copy-secret');
    await page.waitForSelector('#copy-secret >> text=/Copied|Copy failed/', { timeout: T });
    // the secret works, and the list does not show it
    assert.equal((await server.api('GET', 'tokens/', undefined, secret)).status, 200);
    await page.click('text=Done');
    assert.equal(await page.locator(`text=${secret}`).count(), 0);
  });

  test('upload an image by drag and drop, with its size, SHA-256 and MCUboot version', async () => {
    await page.goto(`${server.url}/#/firmware`);
    await page.waitForSelector('#fw-model option[value]:not([value=""])', { state: 'attached', timeout: T });
    const image = mcubootImage(200000, [1, 2, 3, 4]);
    const dt = await page.evaluateHandle((bytes) => {
      const d = new DataTransfer();
      d.items.add(new File([new Uint8Array(bytes)], 'app-1.2.3.bin', { type: 'application/octet-stream' }));
      return d;
    }, [...image]);
    await page.dispatchEvent('#drop', 'drop', { dataTransfer: dt });
    assert.match(await page.textContent('#drop-text'), /app-1\.2\.3\.bin/);
    await page.selectOption('#fw-model', ids.model.id);
    await page.fill('#fw-version', '1.2.3');
    await page.check(`#fw-channels input[value="${ids.channel.id}"]`);
    await page.click('#fw-submit');
    const row = page.locator('#firmware-table tr[data-version="1.2.3"]');
    await row.waitFor({ timeout: T });
    assert.equal(await page.getAttribute('#upload-progress [role=progressbar]', 'aria-valuenow'), '100');
    const text = await row.textContent();
    assert.match(text, /195\.3 KiB/);
    assert.match(text, /1\.2\.3\+4/);
    const fw = (await server.api('GET', 'firmware/?version=1.2.3')).body.results[0];
    assert.equal(await row.locator('code.sha').getAttribute('title'), fw.sha256);
    assert.equal(fw.size, image.length);
    await shot(page, 'firmware');
    // a duplicate version: the server's 409 names the field
    await page.setInputFiles('#fw-file', { name: 'again.bin', mimeType: 'application/octet-stream', buffer: image });
    await page.selectOption('#fw-model', ids.model.id);
    await page.fill('#fw-version', '1.2.3');
    await page.click('#fw-submit');
    await page.locator('#upload-form [data-field=version] .field-error').waitFor({ timeout: T });
  });

  test('a session reaches created live, in the table and the detail view', async () => {
    const request = (device) => server.create('firmware-update/request', {
      model: 'CAFEBABE', device_id: device, delivery_method: 'http', delivery_procedure_tid: 'dp-link',
      current_channel: 'stable', current_firmware_version: '1.0.0' });
    await page.goto(`${server.url}/#/sessions`);
    await page.waitForSelector('#live.live', { timeout: T });
    await page.evaluate(() => { window.noReloadMarker = 42; });
    const a = await request('dev-a');
    const rowA = page.locator(`#sessions-table tr[data-id="${a.id}"]`);
    await rowA.waitFor({ timeout: T });
    assert.equal(await rowA.getAttribute('data-state'), 'ready');
    assert.equal((await server.api('POST', `firmware-update/${a.id}/start`)).status, 200);
    await page.waitForSelector(`#sessions-table tr[data-id="${a.id}"][data-state=created]`, { timeout: T });
    assert.match(await rowA.textContent(), /1\.0\.0 → 1\.2\.3/);
    await shot(page, 'sessions');

    const b = await request('dev-b');
    await page.click(`#sessions-table tr[data-id="${b.id}"] a`);
    await page.waitForSelector('#timeline li[data-state=ready]', { timeout: T });
    assert.equal((await server.api('POST', `firmware-update/${b.id}/start`)).status, 200);
    await page.waitForSelector('#timeline li[data-state=created]', { timeout: T });
    const states = await page.$$eval('#timeline li', (lis) => lis.map((li) => li.dataset.state));
    assert.deepEqual(states, ['ready', 'queued', 'processing', 'created']);
    const link = await page.textContent('#download-link');
    assert.match(link, new RegExp(`/api/v1/firmware-update/${b.id}/image$`));
    assert.match(await page.textContent('#payload'), /"sha256"/);
    await shot(page, 'session-detail');

    // the device confirms failure: the error appears without a reload
    assert.equal((await server.api('POST', `firmware-update/${b.id}/confirm`, { success: false, message: 'flash write failed' })).status, 200);
    await page.waitForSelector('#session-error', { timeout: T });
    assert.match(await page.textContent('#session-error'), /flash write failed/);
    assert.equal(await page.evaluate(() => window.noReloadMarker), 42);
  });

  test('the table and the page show how much of the image was downloaded', async () => {
    const list = (await server.api('GET', 'firmware-update/?device=dev-a')).body.results;
    const a = list.find((x) => x.state === 'created');
    assert.ok(a, 'dev-a has a created session');
    const size = a.payload.size;
    await page.goto(`${server.url}/#/sessions`);
    await page.waitForSelector('#live.live', { timeout: T });
    const bar = `#sessions-table tr[data-id="${a.id}"] td.downloaded [role=progressbar]`;
    assert.equal(await page.getAttribute(bar, 'aria-valuenow'), '0');
    // the device fetches the first half through its short link (no token), then the rest
    const half = Math.floor(size / 2);
    const r = await fetch(a.payload.short_link, { headers: { Range: `bytes=0-${half - 1}` } });
    assert.equal(r.status, 206);
    await r.arrayBuffer();
    const pct = String(Math.round((half / size) * 100));
    await page.waitForFunction(([sel, want]) => document.querySelector(sel)?.getAttribute('aria-valuenow') === want,
      [bar, pct], { timeout: T });
    await page.goto(`${server.url}/#/sessions/${a.id}`);
    await page.waitForSelector('#downloaded-bar', { timeout: T });
    assert.equal(await page.getAttribute('#downloaded-bar', 'aria-valuenow'), pct);
    assert.match(await page.textContent('#short-link'), /\/d\/[A-Za-z0-9_-]{22}$/);
    const rest = await fetch(a.payload.short_link, { headers: { Range: `bytes=${half}-` } });
    await rest.arrayBuffer();
    await page.waitForFunction(() => document.querySelector('#downloaded-bar')?.getAttribute('aria-valuenow') === '100',
      null, { timeout: T });
    assert.match(await page.textContent('#delivered'), /100 % of the image/);
    await shot(page, 'session-downloaded');
  });

  test('filters of the session table', async () => {
    await page.goto(`${server.url}/#/sessions`);
    await page.waitForSelector('#sessions-table tbody tr[data-id]', { timeout: T });
    await page.selectOption('#f-state', 'fail');
    await page.waitForFunction(() => {
      const rows = [...document.querySelectorAll('#sessions-table tbody tr[data-id]')];
      return rows.length > 0 && rows.every((tr) => tr.dataset.state === 'fail');
    }, null, { timeout: T });
    assert.equal(await page.locator('#sessions-table tbody tr[data-id]').count(), 1);
    await page.selectOption('#f-state', '');
    await page.fill('#f-device', 'dev-a');
    // the fail filter already left one row (dev-b's): wait for the one row to be dev-a's
    await page.waitForFunction(() => {
      const rows = [...document.querySelectorAll('#sessions-table tbody tr[data-id]')];
      return rows.length === 1 && rows[0].cells[1].textContent === 'dev-a';
    }, null, { timeout: T });
    assert.match(await page.textContent('#sessions-table tbody'), /dev-a/);
    assert.doesNotMatch(await page.textContent('#sessions-table tbody'), /dev-b/);
  });

  test('an operator starts and confirms a session from its page', async () => {
    const c = await server.create('firmware-update/request', {
      model: 'CAFEBABE', device_id: 'dev-c', delivery_method: 'http', delivery_procedure_tid: 'dp-link',
      current_channel: 'stable', current_firmware_version: '1.0.0' });
    await page.goto(`${server.url}/#/sessions/${c.id}`);
    await page.click('#start-session', { timeout: T });
    await page.waitForSelector('#timeline li[data-state=created]', { timeout: T });
    await shot(page, 'session-actions');
    await page.click('#confirm-success', { timeout: T });
    await page.waitForSelector('#timeline li[data-state=success]', { timeout: T });
    assert.equal(await page.locator('#actions').count(), 0); // nothing more to do by hand
    const after = (await server.api('GET', `firmware-update/${c.id}`)).body;
    assert.equal(after.state, 'success');
  });

  test('devices and one device\'s history', async () => {
    await page.goto(`${server.url}/#/devices`);
    const row = page.locator('#devices-table tr', { hasText: 'dev-a' });
    await row.waitFor({ timeout: T });
    assert.match(await row.textContent(), /created/);
    await shot(page, 'devices');
    await row.locator('a').click();
    await page.waitForSelector('#device-sessions tbody tr[data-id]', { timeout: T });
    assert.match(await page.textContent('#device-title'), /dev-a/);
    await shot(page, 'device-detail');
  });

  test('the API page renders the OpenAPI document', async () => {
    await page.goto(`${server.url}/#/api`);
    await page.waitForSelector('#op-events', { timeout: T });
    const n = await page.locator('details.op[id^=op-]').count();
    const doc = await (await fetch(`${server.url}/api/v1/openapi.json`)).json();
    const ops = Object.values(doc.paths).reduce((k, item) => k + Object.keys(item).length, 0);
    assert.equal(n, ops);
    await page.click('#op-sessions_request summary');
    assert.match(await page.textContent('#op-sessions_request'), /SessionRequest/);
    await shot(page, 'api');
  });

  test('a narrow screen (400 px) stays readable', async () => {
    await page.setViewportSize({ width: 400, height: 800 });
    for (const [hash, name] of [['#/sessions', 'sessions-400'], ['#/firmware', 'firmware-400'],
      ['#/config/delivery-procedures', 'config-400']]) {
      await page.goto(`${server.url}/${hash}`);
      await page.waitForSelector('table.grid tbody tr', { timeout: T });
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `${hash} is ${overflow}px wider than the screen`);
      await shot(page, name);
    }
    await page.setViewportSize({ width: 1280, height: 800 });
  });
});

describe('without the event stream', () => {
  let server;
  let browser;

  before(async () => {
    server = await new Server(['--max-events', '0']).start();
    browser = await launch();
  });

  after(async () => {
    if (browser) await browser.close();
    if (server) await server.stop();
  });

  test('the session table falls back to polling', async () => {
    await server.create('products/', { tid: 'p', name: 'P' });
    await server.create('models/', { tid: 'm', name: 'M', product: 'p' });
    await server.create('channels/', { tid: 'stable', name: 'stable' });
    await server.create('delivery-methods/', { tid: 'http', name: 'HTTP', kind: 'http' });
    await server.create('delivery-procedures/', { tid: 'dp', name: 'DP', delivery_method: 'http' });
    const page = await browser.ctx.newPage();
    await signIn(page, server);
    await page.waitForSelector('#live.polling', { timeout: T });
    const s = await server.create('firmware-update/request', { model: 'm', device_id: 'd1',
      delivery_method: 'http', delivery_procedure_tid: 'dp', current_channel: 'stable',
      current_firmware_version: '1.0.0' });
    await page.waitForSelector(`#sessions-table tr[data-id="${s.id}"][data-state=up_to_date]`, { timeout: T });
    await shot(page, 'sessions-polling');
    await page.close();
  });
});
