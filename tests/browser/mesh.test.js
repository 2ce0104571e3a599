// A mesh_smp session in the dashboard: the distribution through the simulator of
// tests/sim (dfd_sim.py) shows its phase and one progress bar per receiver, updated live
// while the transfer runs, until the session reaches `created`.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { launch, makeImage, MeshSim, Server, shot, signIn } from './lib.js';

const T = 10000;
const RUN_MS = 60000; // the whole distribution at the simulator's speed takes a few seconds

let server;
let sim;
let browser;

before(async () => {
  server = await new Server().start();
  sim = await new MeshSim(['--speed', '40000']).start();
  browser = await launch();
});

after(async () => {
  if (browser) await browser.close();
  if (sim) await sim.stop();
  if (server) await server.stop();
});

test('per-receiver progress of a mesh distribution, live', async () => {
  await server.create('products/', { tid: 'p', name: 'P' });
  await server.create('models/', { tid: 'm', name: 'M', product: 'p' });
  await server.create('channels/', { tid: 'stable', name: 'stable' });
  await server.create('delivery-methods/', { tid: 'mesh', name: 'Mesh', kind: 'mesh-smp' });
  await server.create('delivery-procedures/', { tid: 'dp-mesh', name: 'Mesh', delivery_method: 'mesh',
    confirm: true, steps: [
      { plugin: 'mesh_smp', params: { udp: `127.0.0.1:${sim.port}`, receivers: [{ addr: 2 }, { addr: 3 }],
        poll_ms: 50, fast_poll_ms: 50 } },
      { plugin: 'link' }] });
  const fd = new FormData();
  fd.append('model', 'm');
  fd.append('version', '1.2.0');
  fd.append('channels', 'stable');
  fd.append('file', new Blob([makeImage('1.2.0', 64 * 1024)]), 'fw.img');
  const up = await server.api('POST', 'firmware/', fd);
  assert.equal(up.status, 201, JSON.stringify(up.body));
  const s = await server.create('firmware-update/request', { model: 'm', device_id: 'gw-1',
    delivery_method: 'mesh', delivery_procedure_tid: 'dp-mesh', current_channel: 'stable',
    current_firmware_version: '1.0.0' });

  const page = await browser.ctx.newPage();
  await signIn(page, server);
  await page.goto(`${server.url}/#/sessions/${s.id}`);
  await page.waitForSelector('#timeline li[data-state=ready]', { timeout: T });
  await page.waitForSelector('#live.live', { timeout: T });
  assert.equal((await server.api('POST', `firmware-update/${s.id}/start`)).status, 200);
  // while the transfer runs: both receivers listed, some bar between 0 and 100 %
  await page.waitForFunction(() => {
    const bars = [...document.querySelectorAll('#receivers [role=progressbar]')];
    return bars.length === 2 && bars.some((b) => +b.getAttribute('aria-valuenow') > 0 && +b.getAttribute('aria-valuenow') < 100);
  }, null, { timeout: RUN_MS, polling: 20 });
  await shot(page, 'session-mesh-running');
  await page.waitForSelector('#timeline li[data-state=created]', { timeout: RUN_MS });
  const rows = await page.$$eval('#receivers tbody tr', (trs) => trs.map((tr) => ({
    addr: tr.dataset.addr, text: tr.textContent,
    pct: tr.querySelector('[role=progressbar]').getAttribute('aria-valuenow') })));
  assert.deepEqual(rows.map((r) => [r.addr, r.pct]), [['2', '100'], ['3', '100']]);
  assert.match(rows[0].text, /apply success/);
  assert.match(await page.textContent('#mesh-phase'), /completed/);
  await shot(page, 'session-mesh');
  await page.close();
});
