// A block-wise GET with node-coap (the CoAP library of iot-ota-server), for tests/api/test_coap.py.
// Usage: node fetch.mjs URL SZX START_BLOCK OUT_FILE   (NON=1 in the environment: non-confirmable)
// Asks for block START_BLOCK of 16 << SZX bytes and lets node-coap fetch the blocks after it;
// writes the payload to OUT_FILE and one JSON line {code, etag, size2, format, blocks} to stdout.
// Exits 0 on 2.05, 1 on another code, 2 on an error, 3 when nothing came within 30 s.
import coap from 'coap';
import { writeFileSync } from 'node:fs';

const [url, szxArg = '6', startArg = '0', out] = process.argv.slice(2);
const szx = Number(szxArg);
const start = Number(startArg);
if (!url || !out || !(szx >= 0 && szx <= 6) || !(start >= 0 && start < 2 ** 20)) {
  console.error('usage: node fetch.mjs URL SZX START_BLOCK OUT_FILE');
  process.exit(2);
}

// Block2 option value (RFC 7959 2.2): NUM << 4 | M << 3 | SZX, in as few bytes as it needs.
function block2(num, size) {
  const v = num * 16 + size;
  if (v < 0x100) return Buffer.of(v);
  if (v < 0x10000) return Buffer.of(v >> 8, v & 0xff);
  return Buffer.of(v >> 16, (v >> 8) & 0xff, v & 0xff);
}

const timer = setTimeout(() => {
  console.error('no answer within 30 s');
  process.exit(3);
}, 30000);

// node-coap decodes an ETag as UTF-8 text by default, which loses bytes: keep them as they are
coap.registerOption('ETag', (v) => Buffer.from(v), (b) => b);

const u = new URL(url);
const agent = new coap.Agent({ type: u.hostname.includes(':') ? 'udp6' : 'udp4' });
let blocks = 0;
agent.on('error', (e) => {
  console.error(String(e));
  process.exit(2);
});
const req = coap.request({
  agent,
  hostname: u.hostname.replace(/^\[|\]$/g, ''),
  port: Number(u.port) || 5683,
  pathname: u.pathname,
  method: 'GET',
  confirmable: !process.env.NON,
});
req.setOption('Block2', block2(start, szx));
req.on('response', (res) => {
  clearTimeout(timer);
  const opt = (name) => {
    const o = res.options.find((x) => x.name === name);
    return o ? o.value : null;
  };
  const size2 = opt('Size2');
  const etag = opt('ETag');
  const format = opt('Content-Format');
  blocks = Math.ceil(res.payload.length / (16 << szx));
  writeFileSync(out, res.payload);
  // node-coap hands known options over decoded (numbers, strings) and others as Buffers
  const num = (v) => (Buffer.isBuffer(v) ? (v.length ? v.readUIntBE(0, v.length) : 0) : v);
  console.log(JSON.stringify({
    code: res.code,
    etag: Buffer.isBuffer(etag) ? etag.toString('hex') : etag,
    size2: size2 == null ? null : num(size2),
    format: format == null ? null : String(format),
    blocks,
  }));
  process.exit(res.code === '2.05' ? 0 : 1);
});
req.on('error', (e) => {
  clearTimeout(timer);
  console.error(String(e));
  process.exit(2);
});
req.end();
