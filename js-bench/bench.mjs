// Microseconds per operation: the built npm package contextkit against keyv's
// default in-memory store, a plain Map, and a Map that structuredClones on
// write and on read, in one run of one Node process.
//
//   node bench.mjs            full run
//   node bench.mjs --smoke    a few iterations of everything (no timing claims)
//
// The package is loaded from ../wasm/pkg (what scripts/build-npm.sh builds), or
// from the directory in CONTEXTKIT_PKG. Every operation is awaited before the
// next one starts, as a request handler would; the Map is called synchronously.
// The stores take turns within each round, so drift in the machine's speed
// during the run is shared by all of them.
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Keyv from 'keyv';
import { PAYLOADS } from './payloads.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const smoke = process.argv.includes('--smoke') || !!process.env.CONTEXTKIT_BENCH_SMOKE;
const pkgDir = process.env.CONTEXTKIT_PKG ?? path.resolve(here, '../wasm/pkg');
const require = createRequire(import.meta.url);
const { ContextManager } = require(pkgDir);

/** Contexts present before get and update are measured. */
const CONTEXTS = smoke ? 50 : 1_000;
/** Operations per timed round, per payload size. */
const ITERS = smoke ? { small: 20, large: 5 } : { small: 50_000, large: 5_000 };
/** Timed rounds after one warm-up round; the median round is reported. */
const ROUNDS = smoke ? 1 : 7;

/** contextkit behind the bench's interface; `readCacheBytes` 0 turns its read cache off. */
function contextkit(name, readCacheBytes) {
  const ck = new ContextManager({ maxContexts: 10_000_000, maxRecoveryPoints: 10, readCacheBytes });
  return {
    name,
    get: (id) => ck.getContext(id),
    create: (id, data) => ck.createContext(id, data),
    update: (id, data) => ck.updateContext(id, data),
    delete: (id) => ck.deleteContext(id),
    free: () => ck.free?.(),
  };
}

/** The three stores behind one interface; each call returns a Promise except Map's. */
function stores() {
  const kv = new Keyv();
  const map = new Map();
  const clones = new Map();
  return [
    contextkit('contextkit'),
    {
      name: 'keyv (memory)',
      get: (id) => kv.get(id),
      create: (id, data) => kv.set(id, data),
      update: (id, data) => kv.set(id, data),
      delete: (id) => kv.delete(id),
      free: () => kv.clear(),
    },
    {
      name: 'Map',
      sync: true,
      get: (id) => map.get(id),
      create: (id, data) => map.set(id, data),
      update: (id, data) => map.set(id, data),
      delete: (id) => map.delete(id),
      free: () => map.clear(),
    },
    {
      // The floor for a store that hands out copies: a copy in, a copy out.
      name: 'Map + structuredClone',
      sync: true,
      get: (id) => structuredClone(clones.get(id)),
      create: (id, data) => clones.set(id, structuredClone(data)),
      update: (id, data) => clones.set(id, structuredClone(data)),
      delete: (id) => clones.delete(id),
      free: () => clones.clear(),
    },
  ];
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function check(ok, what) {
  if (!ok) throw new Error(`benchmark operation failed: ${what}`);
}

/** Runs `n` operations `op(i)` and returns µs per operation. */
async function timed(store, n, op) {
  const start = process.hrtime.bigint();
  if (store.sync) {
    for (let i = 0; i < n; i++) op(i);
  } else {
    for (let i = 0; i < n; i++) await op(i);
  }
  return Number(process.hrtime.bigint() - start) / 1e3 / n;
}

/** Fills `store` with the contexts of `size`; returns what its rounds need. */
async function prepare(store, size) {
  const { make } = PAYLOADS[size];
  const ids = Array.from({ length: CONTEXTS }, (_, i) => `context-${String(i).padStart(6, '0')}`);
  const data = make(0);
  const other = make(1);
  for (const id of ids) await store.create(id, data);
  const got = await store.get(ids[0]);
  check(got && (got.data ?? got).field0 === data.field0, `${store.name} get`);
  return { store, size, ids, data, other, fresh: 0, results: { get: [], create: [], update: [] } };
}

/** One round of get, update and create (then delete) on a prepared store. */
async function round(run, r) {
  const { store, size, ids, data, other } = run;
  const n = ITERS[size];
  let x = r * 7919;
  const pick = () => {
    x = (x * 1103515245 + 12345) >>> 0;
    return ids[x % ids.length];
  };
  const get = await timed(store, n, () => store.get(pick()));
  const update = await timed(store, n, (i) => store.update(pick(), i % 2 ? data : other));
  const base = run.fresh;
  const create = await timed(store, n, (i) => store.create(`new-${base + i}`, data));
  for (let i = 0; i < n; i++) await store.delete(`new-${base + i}`);
  run.fresh += n;
  if (r > 0) {
    run.results.get.push(get);
    run.results.create.push(create);
    run.results.update.push(update);
  }
}

/**
 * Measures every store on one payload size. The stores take turns within
 * each round (in an order that rotates from round to round), so a change in
 * the machine's speed during the run falls on all of them alike.
 */
async function measureAll(list, size) {
  const runs = [];
  for (const store of list) runs.push(await prepare(store, size));
  for (let r = 0; r <= ROUNDS; r++) {
    for (let k = 0; k < runs.length; k++) await round(runs[(k + r) % runs.length], r);
  }
  const out = {};
  for (const run of runs) {
    const last = await run.store.get(run.ids[1]);
    check(last && (last.data ?? last).field0 !== undefined, `${run.store.name} get after updates`);
    out[run.store.name] = {
      ...Object.fromEntries(Object.entries(run.results).map(([k, v]) => [k, median(v)])),
      rounds: run.results,
    };
    await run.store.free();
  }
  return out;
}

/** The lowest and highest per-round ratio keyv / contextkit (rounds paired by number). */
function spread(r, op) {
  const ck = r.contextkit.rounds[op];
  const kv = r['keyv (memory)'].rounds[op];
  const ratios = ck.map((t, i) => kv[i] / t);
  return `${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)}×`;
}

const fmt = (us) => (us < 10 ? us.toFixed(2) : us.toFixed(1));

async function main() {
  const rows = [];
  for (const size of ['small', 'large']) {
    // Reads without the read cache: what every read costs when the state
    // read is not in the cache (the first read of each version).
    const r = await measureAll([...stores(), contextkit('contextkit, no read cache', 0)], size);
    for (const op of ['get', 'create', 'update']) rows.push({ size, op, r });
  }
  const names = ['contextkit', 'keyv (memory)', 'Map', 'Map + structuredClone'];
  const opName = { get: 'get', create: 'set / create', update: 'update' };
  const out = [];
  out.push(`\n## Node: µs per operation (lower is better; ${smoke ? 'SMOKE MODE, not a measurement' : `median of ${ROUNDS} rounds`})\n`);
  out.push(`Node ${process.version}, ${CONTEXTS} contexts present; rounds of ${ITERS.small} (10 fields) / ${ITERS.large} (10 KB) operations.\n`);
  out.push(`| operation | payload | ${names.join(' | ')} | keyv / contextkit | per round | contextkit / clone Map |`);
  out.push('|---|---|---:|---:|---:|---:|---:|---:|---:|');
  const targets = [];
  // The targets: keyv time / contextkit time at least this, per operation.
  const wanted = { get: 2.5, create: 1.5, update: 1.2 };
  for (const { size, op, r } of rows) {
    const ck = r.contextkit[op];
    const kv = r['keyv (memory)'][op];
    const clone = r['Map + structuredClone'][op];
    const cells = names.map((n) => fmt(r[n][op]));
    out.push(`| ${opName[op]} | ${PAYLOADS[size].name} | ${cells.join(' | ')} | ${(kv / ck).toFixed(2)}× | ${spread(r, op)} | ${(ck / clone).toFixed(2)}× |`);
    const met = (ok) => (ok ? 'yes' : '**no**');
    targets.push(
      `| keyv / contextkit ≥ ${wanted[op]}× on ${opName[op]} (${PAYLOADS[size].name}) | ${(kv / ck).toFixed(2)}× | ${met(kv / ck >= wanted[op])} |`,
      `| contextkit within 2.5× of the clone Map on ${opName[op]} (${PAYLOADS[size].name}) | ${(ck / clone).toFixed(2)}× | ${met(ck / clone <= 2.5)} |`,
    );
  }
  out.push('\n### Targets (keyv time / contextkit time; contextkit time / clone-Map time)\n');
  out.push('| target | ratio | met |');
  out.push('|---|---:|:---:|');
  out.push(...targets);
  out.push('\n### contextkit get without its read cache (`readCacheBytes: 0`; the cost of a read the cache cannot answer)\n');
  out.push('| operation | payload | contextkit, no read cache | keyv (memory) | keyv / contextkit |');
  out.push('|---|---|---:|---:|---:|');
  for (const { size, op, r } of rows) {
    if (op !== 'get') continue;
    const ck = r['contextkit, no read cache'].get;
    const kv = r['keyv (memory)'].get;
    out.push(`| get | ${PAYLOADS[size].name} | ${fmt(ck)} | ${fmt(kv)} | ${(kv / ck).toFixed(2)}× |`);
  }
  console.log(out.join('\n'));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
