// Harness of the browser tests: a devicehubd of our own (fresh data dir, free port read
// from its http.listening log line, admin token from the environment), Debian's Chromium
// through playwright-core with a fresh profile and no network beyond 127.0.0.1, a small
// API client, and screenshots into artifacts/.

import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.resolve(HERE, '..', '..');
export const ARTIFACTS = path.join(HERE, 'artifacts');
export const ADMIN_TOKEN = 'browser-admin-token-0123456789';
const BIN = process.env.DEVICEHUB_BIN || path.join(ROOT, 'build', 'server', 'devicehubd');
const START_MS = 20000;
const STOP_MS = 15000;

export class Server {
  constructor(extraArgs = []) {
    this.dir = mkdtempSync(path.join(tmpdir(), 'dh-browser-'));
    this.extraArgs = extraArgs;
    this.log = '';
  }

  start() {
    return new Promise((resolve, reject) => {
      const args = ['--listen', '127.0.0.1', '--port', '0', '--data-dir', path.join(this.dir, 'var'),
        '--web-dir', path.join(ROOT, 'web'), ...this.extraArgs];
      this.proc = spawn(BIN, args, { env: { ...process.env, DEVICEHUB_ADMIN_TOKEN: ADMIN_TOKEN },
        stdio: ['ignore', 'ignore', 'pipe'] });
      const timer = setTimeout(() => reject(new Error(`devicehubd did not start:\n${this.log}`)), START_MS);
      this.proc.stderr.on('data', (d) => {
        this.log += d.toString();
        const m = /http\.listening .*port=(\d+)/.exec(this.log);
        if (m && !this.port) {
          this.port = Number(m[1]);
          this.url = `http://127.0.0.1:${this.port}`;
          clearTimeout(timer);
          resolve(this);
        }
      });
      this.proc.on('exit', (code) => {
        this.exitCode = code;
        if (!this.port) {
          clearTimeout(timer);
          reject(new Error(`devicehubd exited with ${code}:\n${this.log}`));
        }
      });
    });
  }

  // Stops the server; throws when it hangs or its sanitizers complained.
  async stop() {
    if (this.proc && this.exitCode === undefined) {
      const done = new Promise((r) => this.proc.once('exit', r));
      this.proc.kill('SIGTERM');
      const hung = await Promise.race([done.then(() => false), sleep(STOP_MS).then(() => true)]);
      if (hung) {
        this.proc.kill('SIGKILL');
        await done;
        throw new Error('devicehubd did not stop within 15 s of SIGTERM');
      }
    }
    rmSync(this.dir, { recursive: true, force: true });
    for (const bad of ['ERROR: AddressSanitizer', 'ERROR: LeakSanitizer', 'runtime error:']) {
      if (this.log.includes(bad)) throw new Error(`sanitizer report from devicehubd:\n${this.log.slice(-6000)}`);
    }
  }

  // JSON call as the admin (or token); returns { status, body }.
  async api(method, p, body, token = ADMIN_TOKEN) {
    const init = { method, headers: { Authorization: `Token ${token}` } };
    if (body instanceof FormData) init.body = body;
    else if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const r = await fetch(`${this.url}/api/v1/${p}`, init);
    const text = await r.text();
    return { status: r.status, body: text ? JSON.parse(text) : null };
  }

  async create(p, body) {
    const r = await this.api('POST', p, body);
    if (r.status !== 201) throw new Error(`POST ${p}: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  }
}

export function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

export async function launch() {
  const profile = mkdtempSync(path.join(tmpdir(), 'dh-chromium-'));
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1280, height: 800 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    timeout: 30000,
  });
  ctx.setDefaultTimeout(10000);
  ctx.setDefaultNavigationTimeout(15000);
  // the machine's network is closed: anything but our server is a test bug
  await ctx.route((url) => !/^(http:\/\/127\.0\.0\.1[:/]|data:|blob:)/.test(url.toString()), (r) => r.abort());
  return {
    ctx,
    async close() {
      await ctx.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

export async function shot(page, name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: false });
}

// Signs in through the form.
export async function signIn(page, server, token = ADMIN_TOKEN) {
  await page.goto(`${server.url}/`);
  await page.fill('#token', token);
  await page.click('#signin-form button[type=submit]');
  await page.waitForSelector('#nav:not([hidden])');
}

// A minimal MCUboot image: header with the version, body, SHA-256 TLV (as firmware.c reads).
export function mcubootImage(bodyLen, [maj, min, rev, build]) {
  const hdr = Buffer.alloc(32);
  hdr.writeUInt32LE(0x96f3b83d, 0);
  hdr.writeUInt16LE(32, 8);
  hdr.writeUInt32LE(bodyLen, 12);
  hdr.writeUInt8(maj, 20);
  hdr.writeUInt8(min, 21);
  hdr.writeUInt16LE(rev, 22);
  hdr.writeUInt32LE(build, 24);
  return Buffer.concat([hdr, Buffer.alloc(bodyLen, 0x5a)]);
}

export function readText(p) {
  return readFileSync(p, 'utf8');
}

// tests/sim/dfd_sim.py as a child process on a free UDP port (its first line says which).
export class MeshSim {
  constructor(args = []) {
    this.args = args;
  }

  start() {
    return new Promise((resolve, reject) => {
      this.proc = spawn('/usr/bin/python3', [path.join(ROOT, 'tests', 'sim', 'dfd_sim.py'),
        '--udp-port', '0', '--step-delay', '0.02', ...this.args], { stdio: ['pipe', 'pipe', 'inherit'] });
      let out = '';
      const timer = setTimeout(() => reject(new Error('simulator did not start')), START_MS);
      this.proc.stdout.on('data', (d) => {
        out += d.toString();
        const line = out.split('\n')[0];
        if (!this.port && out.includes('\n')) {
          clearTimeout(timer);
          const ready = JSON.parse(line);
          if (ready.event !== 'ready') reject(new Error(line));
          this.port = ready.udp_port;
          resolve(this);
        }
      });
      this.proc.on('exit', (code) => {
        if (!this.port) {
          clearTimeout(timer);
          reject(new Error(`simulator exited with ${code}`));
        }
      });
    });
  }

  async stop() {
    if (this.proc && this.proc.exitCode === null) {
      const done = new Promise((r) => this.proc.once('exit', r));
      this.proc.kill('SIGTERM');
      await Promise.race([done, sleep(10000)]);
      if (this.proc.exitCode === null) this.proc.kill('SIGKILL');
    }
  }
}

// An MCUboot image of size bytes made by scripts/mkimage.
export function makeImage(version, size) {
  const dir = mkdtempSync(path.join(tmpdir(), 'dh-img-'));
  const out = path.join(dir, 'fw.img');
  const r = spawnSync('/usr/bin/python3', [path.join(ROOT, 'scripts', 'mkimage'), '--version', version,
    '--random-body', String(size), '--seed', '7', out], { timeout: 30000 });
  if (r.status !== 0) throw new Error(`mkimage: ${r.stderr}`);
  const data = readFileSync(out);
  rmSync(dir, { recursive: true, force: true });
  return data;
}
