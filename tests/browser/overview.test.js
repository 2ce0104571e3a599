// The overview page (#/overview) in a real headless Chromium: the counts per state, the
// per-hour chart and the per-firmware chart match the sessions created through the API,
// follow a new session live, switch to 7 days, and show a scoped token only its sessions.
// Also the notifications: they sit above the page in its flow, never over a table, and go
// away by themselves. Screenshots at 1280x800 and 400 px wide go to artifacts/.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { launch, Server, shot, signIn, sleep } from './lib.js';

const T = 10000; // bound of every wait on the page

// A session of model for a device at version 1.0.0, started and waited for until created;
// then confirmed as outcome says (true, false, or left created).
async function session(server, outcome, extra = {}) {
  const s = await server.create('firmware-update/request', { model: 'CAFEBABE', device_id: `d-${Math.random()}`,
    delivery_procedure_tid: 'dp-handle', current_channel: 'stable', current_firmware_version: '1.0.0', ...extra });
  if (outcome === 'ready') return s;
  await server.api('POST', `firmware-update/${s.id}/start`);
  const deadline = Date.now() + T;
  for (;;) {
    const r = await server.api('GET', `firmware-update/${s.id}/`);
    if (r.body.state === 'created') break;
    if (Date.now() > deadline) throw new Error(`session stuck in ${r.body.state}`);
    await sleep(20);
  }
  if (outcome !== undefined && outcome !== 'created') {
    await server.api('POST', `firmware-update/${s.id}/confirm`, outcome ? { success: true } : { success: false, message: 'flash error' });
  }
  return s;
}

async function upload(server, model, version) {
  const form = new FormData();
  form.append('model', model);
  form.append('version', version);
  form.append('channels', 'stable');
  form.append('file', new Blob([Buffer.alloc(4096, version.length)]), 'fw.bin');
  const r = await server.api('POST', 'firmware/', form);
  assert.equal(r.status, 201, JSON.stringify(r.body));
}

async function count(page, state) {
  return Number(await page.textContent(`#state-counts [data-state=${state}] .n`));
}

function overlap(a, b) {
  return a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height;
}

describe('overview', () => {
  let server;
  let browser;
  let page;

  before(async () => {
    server = await new Server().start();
    browser = await launch();
    page = await browser.ctx.newPage();
    page.on('pageerror', (e) => console.error('page error:', e.message));
    await server.create('products/', { tid: 'sensor', name: 'Sensor' });
    await server.create('models/', { tid: 'CAFEBABE', name: 'Sensor rev B', product: 'sensor' });
    await server.create('channels/', { tid: 'stable', name: 'stable' });
    await server.create('delivery-methods/', { tid: 'http', name: 'HTTP download', kind: 'http' });
    await server.create('delivery-procedures/', { tid: 'dp-handle', name: 'Link', delivery_method: 'http',
      steps: [{ plugin: 'link' }], confirm: true });
    await upload(server, 'CAFEBABE', '1.1.0');
    await upload(server, 'CAFEBABE', '1.2.0');
    await session(server, true);
    await session(server, true);
    await session(server, false);
    await session(server, false, { target_firmware_version: '1.1.0' });
    await session(server, 'created');
    await session(server, 'ready');
  });

  after(async () => {
    if (browser) await browser.close();
    if (server) await server.stop();
  });

  test('counts and charts match the sessions', async () => {
    await signIn(page, server);
    await page.click('#nav a[data-page=overview]');
    await page.waitForSelector('#state-counts [data-state=success]', { timeout: T });
    assert.equal(await count(page, 'success'), 2);
    assert.equal(await count(page, 'fail'), 2);
    assert.equal(await count(page, 'created'), 1);
    assert.equal(await count(page, 'ready'), 1);
    assert.equal(await count(page, 'queued'), 0);
    // the hour chart: its segments add up to the counts
    const segs = await page.$$eval('#chart-hours rect.seg', (rs) => rs.map((r) => [r.dataset.state, Number(r.dataset.count)]));
    const sums = {};
    for (const [s, n] of segs) sums[s] = (sums[s] || 0) + n;
    assert.deepEqual(sums, { success: 2, fail: 2, created: 1, ready: 1 });
    // per firmware: 1.1.0 one failure; 1.2.0 two successes and one failure
    const rows = await page.$$eval('#firmware-table tbody tr', (trs) => trs.map((tr) => [...tr.cells].map((c) => c.textContent)));
    assert.deepEqual(rows, [['CAFEBABE 1.1.0', '0', '1', '0'], ['CAFEBABE 1.2.0', '2', '1', '2']]);
    const bars = await page.$$eval('#chart-firmware rect.seg', (rs) => rs.map((r) => `${r.dataset.kind}:${r.dataset.count}`));
    assert.deepEqual(bars, ['success:0', 'fail:1', 'success:2', 'fail:1']);
    assert.match(await page.textContent('#overview-window'), /^6 sessions created since /);
    await shot(page, 'overview');
  });

  test('a new session shows up without a reload', async () => {
    await session(server, 'ready');
    await page.waitForFunction(() => document.querySelector('#state-counts [data-state=ready] .n')?.textContent === '2',
      null, { timeout: T });
    assert.match(await page.textContent('#overview-window'), /^7 sessions/);
  });

  test('seven days, and a narrow screen', async () => {
    // the 24-hour view already shows 7 sessions: wait for the window's start to move back
    const day = await page.textContent('#overview-window');
    await page.selectOption('#overview-hours', '168');
    await page.waitForFunction((was) => document.querySelectorAll('#chart-hours rect.seg').length > 0
      && document.querySelector('#overview-window').textContent !== was
      && document.querySelector('#overview-window').textContent.startsWith('7 sessions'), day, { timeout: T });
    await page.setViewportSize({ width: 400, height: 800 });
    // redrawn for the narrow box: the chart is drawn at about its shown size, text readable
    await page.waitForFunction(() => {
      const svg = document.querySelector('#chart-hours');
      return svg && Math.abs(svg.viewBox.baseVal.width - svg.getBoundingClientRect().width) < 40;
    }, null, { timeout: T });
    const width = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(width <= 400, `the page is ${width} px wide at 400`);
    await shot(page, 'overview-narrow');
    await page.setViewportSize({ width: 1280, height: 800 });
  });

  test('a scoped token counts only its sessions', async () => {
    await server.create('products/', { tid: 'lamp', name: 'Lamp' });
    await server.create('models/', { tid: 'LAMP1', name: 'Lamp', product: 'lamp' });
    await upload(server, 'LAMP1', '2.0.0');
    await session(server, 'ready', { model: 'LAMP1' });
    const u = await server.create('users/', { tid: 'lamp-ops', name: 'Lamp ops' });
    await server.create('access-rights/', { user: u.id, action: 'update', product: 'lamp' });
    const tok = await server.create('tokens/', { user: u.id, name: 'browser' });
    await page.click('#signout');
    await signIn(page, server, tok.secret);
    try {
      await page.goto(`${server.url}/#/overview`);
      await page.waitForFunction(() => document.querySelector('#state-counts [data-state=ready] .n')?.textContent === '1',
        null, { timeout: T });
      assert.equal(await count(page, 'success'), 0);
      // the model is named though this token may not read models
      const rows = await page.$$eval('#firmware-table tbody tr td:first-child', (tds) => tds.map((td) => td.textContent));
      assert.deepEqual(rows, ['LAMP1 2.0.0']);
    } finally {
      await page.click('#signout');
      await signIn(page, server);
    }
  });

  test('notifications never cover a table and go away by themselves', async () => {
    await page.goto(`${server.url}/#/config/channels`);
    await page.waitForSelector('#channels-table tbody tr', { timeout: T });
    await page.click('#new-object');
    await page.fill('#object-form [name=tid]', 'beta');
    await page.fill('#object-form [name=name]', 'beta');
    await page.click('#save');
    const toast = page.locator('#toasts .toast');
    await toast.first().waitFor({ state: 'visible', timeout: T });
    await page.waitForSelector('#channels-table tr[data-tid=beta]', { timeout: T });
    const tb = await toast.first().boundingBox();
    for (const table of await page.$$('table')) {
      const box = await table.boundingBox();
      if (box) assert.ok(!overlap(tb, box), `the notification ${JSON.stringify(tb)} covers a table ${JSON.stringify(box)}`);
    }
    // nothing else sits on top of the table either: the table's own cell is what is hit
    const cell = await page.locator('#channels-table tr[data-tid=beta] td').first().boundingBox();
    const hit = await page.evaluate(([x, y]) => document.elementFromPoint(x, y)?.closest('table')?.id, [cell.x + 2, cell.y + 2]);
    assert.equal(hit, 'channels-table');
    await shot(page, 'notification');
    await toast.first().waitFor({ state: 'detached', timeout: T });
    assert.equal(await page.locator('#toasts .toast').count(), 0);
  });
});
