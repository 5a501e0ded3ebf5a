// Bytes per context in the npm package contextkit: growth of the module's
// WebAssembly memory while 100,000 contexts with a 200-byte JSON payload are
// created. For scale, the same objects in keyv's memory store and in a Map
// (growth of the JavaScript heap after a full GC; run with --expose-gc).
//
//   node --expose-gc memory.mjs            100,000 contexts
//   node --expose-gc memory.mjs --smoke    2,000
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Keyv from 'keyv';

const here = path.dirname(fileURLToPath(import.meta.url));
const smoke = process.argv.includes('--smoke') || !!process.env.CONTEXTKIT_BENCH_SMOKE;
const pkgDir = process.env.CONTEXTKIT_PKG ?? path.resolve(here, '../wasm/pkg');
const require = createRequire(import.meta.url);
const { ContextManager } = require(pkgDir);
// The module instance the package entry point loaded (same resolved file).
const glue = require(path.join(pkgDir, 'node/contextkit_wasm.js'));

const N = smoke ? 2_000 : 100_000;
const PAYLOAD_BYTES = 200;

/** Six fields whose JSON text is exactly 200 bytes; `i` varies the values. */
function payload(i) {
  const o = {
    user: `user-${String(i).padStart(8, '0')}`,
    step: i % 97,
    active: i % 2 === 0,
    locale: 'en-GB',
    cart: `items-${String(i).padStart(6, '0')}`,
    note: '',
  };
  o.note = 'n'.repeat(PAYLOAD_BYTES - JSON.stringify(o).length);
  return o;
}

const id = (i) => `context-${String(i).padStart(6, '0')}`;

function wasmBytes() {
  if (typeof glue.__memoryBytes === 'function') return glue.__memoryBytes();
  throw new Error('the package does not expose its memory size (__memoryBytes)');
}

function heapBytes() {
  if (typeof globalThis.gc !== 'function') throw new Error('run with node --expose-gc');
  globalThis.gc();
  globalThis.gc();
  return process.memoryUsage().heapUsed;
}

async function main() {
  for (const i of [0, 1, N - 1]) {
    if (JSON.stringify(payload(i)).length !== PAYLOAD_BYTES) throw new Error('payload size');
  }
  const rows = [];

  const m = new ContextManager({ maxContexts: N, maxRecoveryPoints: 10 });
  // One context first, so one-off allocations do not count.
  await m.createContext('warm-up', payload(0));
  await m.deleteContext('warm-up');
  const before = wasmBytes();
  for (let i = 0; i < N; i++) await m.createContext(id(i), payload(i));
  const after = wasmBytes();
  const held = (await m.listContextIds()).length;
  if (held !== N) throw new Error(`expected ${N} contexts, found ${held}`);
  const wasmPer = (after - before) / N;
  rows.push(['contextkit (WebAssembly memory growth)', wasmPer]);

  // Reads keep states in the manager's read cache (readCacheBytes, 16 MiB by
  // default, each entry charged its JSON size plus 128 bytes): what one get
  // of every context adds, in the JavaScript heap and in WebAssembly memory.
  let h0 = heapBytes();
  for (let i = 0; i < N; i++) await m.getContext(id(i));
  rows.push(['contextkit read cache after one get of each (JS heap)', (heapBytes() - h0) / N]);
  rows.push(['contextkit read cache after one get of each (WebAssembly memory growth)', (wasmBytes() - after) / N]);

  const kv = new Keyv();
  h0 = heapBytes();
  for (let i = 0; i < N; i++) await kv.set(id(i), payload(i));
  rows.push(['keyv memory store (JS heap)', (heapBytes() - h0) / N]);
  await kv.clear();

  const map = new Map();
  h0 = heapBytes();
  for (let i = 0; i < N; i++) map.set(id(i), payload(i));
  rows.push(['Map of objects (JS heap)', (heapBytes() - h0) / N]);
  if (map.size !== N) throw new Error('map size');

  const out = [];
  out.push(`\n## Memory per context in Node (${N} contexts, ${PAYLOAD_BYTES}-byte JSON payload${smoke ? ', SMOKE MODE' : ''})\n`);
  out.push('| what | bytes per context | × payload size |');
  out.push('|---|---:|---:|');
  for (const [what, b] of rows) {
    out.push(`| ${what} | ${b.toFixed(0)} | ${(b / PAYLOAD_BYTES).toFixed(2)}× |`);
  }
  out.push(`\nWebAssembly memory: ${before} bytes before, ${after} after (it grows in 64 KiB pages).`);
  console.log(out.join('\n'));
  m.free?.();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
