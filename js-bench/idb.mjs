// Operations per second on IndexedDB in headless Chromium, one page: the built
// npm package's IndexedDBStorage in shared mode (what
// `ContextManager.open(new IndexedDBStorage(name))` is: one IndexedDB
// transaction per call, tabs of the origin as one store) against owned mode
// (what that call was before shared mode: the contexts in the manager's
// memory, each write a put to IndexedDB; measured here by opening a plain
// object over an IndexedDBStorage's methods, which still gives owned mode),
// with two references: a manager without storage, and raw IndexedDB (one
// transaction per operation, values as JSON text, the floor of shared mode).
//
//   node js-bench/idb.mjs            full run (about a minute)
//   node js-bench/idb.mjs --smoke    a few operations of each (no timing claims)
//
// The package is served from ../wasm/pkg (what scripts/build-npm.sh builds),
// or from the directory in CONTEXTKIT_PKG, on 127.0.0.1; Chromium is
// /usr/bin/chromium (or CHROMIUM), driven by playwright-core from
// js-tests/node_modules. Each cell runs `inFlight` loops in the page that
// await one operation after another for a fixed time; ops/s counts what
// completed. The stores take turns within each round (in an order that
// rotates from round to round); the median round is reported, with the
// range of the shared / owned ratio over the rounds.
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CHROMIUM, packagePage, withChromium } from '../js-tests/lib/chromium.mjs';
import { serveStatic } from '../js-tests/lib/static-server.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const smoke = process.argv.includes('--smoke') || !!process.env.CONTEXTKIT_BENCH_SMOKE;
const pkgDir = path.resolve(process.env.CONTEXTKIT_PKG ?? path.join(here, '../wasm/pkg'));
/** Contexts present before get and update are measured, per store. */
const KEYS = smoke ? 64 : 1_000;
/** Calls in flight: one loop, then 16. */
const IN_FLIGHT = [1, 16];
/** Length of a timed cell; in smoke mode each loop makes SMOKE_OPS calls instead. */
const CELL_MS = smoke ? 0 : 300;
const SMOKE_OPS = 3;
/** Timed rounds after one warm-up round; the median round is reported. */
const ROUNDS = smoke ? 1 : 5;
const WARMUP = smoke ? 0 : 1;
const OPS = ['get', 'create', 'update'];
const STORES = ['shared', 'cached', 'owned', 'memory', 'raw'];
const NAMES = {
  shared: 'IndexedDBStorage, shared mode',
  cached: 'shared mode, maxStaleMs 1000',
  owned: 'IndexedDB, owned mode',
  memory: 'no storage (memory)',
  raw: 'raw IndexedDB',
};

const page = packagePage('contextkit IndexedDB benchmark', '/pkg/browser.mjs');

// In the page: opens the four stores, fills each with `keys` contexts;
// window.stores[name] = { seed(k), get(k), create(n), update(k, expected, n) → version }.
async function setUp({ keys, names }) {
  const { ContextManager, IndexedDBStorage } = window.ck;
  // Counts of what every store asks of IndexedDB (the event reader of shared mode included).
  window.idbCounts = { readonly: 0, readwrite: 0, requests: 0 };
  const counts = window.idbCounts;
  const transaction = IDBDatabase.prototype.transaction;
  IDBDatabase.prototype.transaction = function (stores, mode, ...rest) {
    counts[mode === 'readwrite' ? 'readwrite' : 'readonly']++;
    return transaction.call(this, stores, mode, ...rest);
  };
  for (const proto of [IDBObjectStore.prototype, IDBIndex.prototype]) {
    for (const method of ['get', 'getKey', 'getAll', 'getAllKeys', 'count', 'openCursor', 'openKeyCursor', 'put', 'add', 'delete', 'clear']) {
      const f = proto[method];
      if (typeof f !== 'function') continue;
      proto[method] = function (...args) {
        counts.requests++;
        return f.apply(this, args);
      };
    }
  }
  // 10 string fields of 8 characters (the payload of js-bench/bench.mjs).
  const payload = (n) => {
    const o = {};
    for (let i = 0; i < 10; i++) o[`field${i}`] = String.fromCharCode(97 + i) + String(n % 1e7).padStart(7, '0');
    return o;
  };
  window.payload = payload;
  const config = { maxContexts: 10_000_000 };
  const check = (ok, what) => {
    if (!ok) throw new Error(`benchmark operation failed: ${what}`);
  };
  const managed = (m, name) => ({
    seed: (k) => m.createContext(`k${k}`, payload(0)),
    get: async (k) => check(typeof (await m.getContext(`k${k}`)).data.field0 === 'string', `${name} get k${k}`),
    create: (n) => m.createContext(`new${n}`, payload(n)),
    update: async (k, expected, n) => (await m.updateContext(`k${k}`, payload(n), { expectedVersion: expected })).version,
  });
  const stores = {};
  for (const name of names) {
    if (name === 'shared') {
      const { manager, problems } = await ContextManager.open(new IndexedDBStorage('bench-shared'), config);
      check(problems.length === 0, 'open shared');
      stores.shared = managed(manager, name);
    } else if (name === 'cached') {
      const { manager, problems } = await ContextManager.open(new IndexedDBStorage('bench-cached', { maxStaleMs: 1000 }), config);
      check(problems.length === 0, 'open cached');
      stores.cached = managed(manager, name);
    } else if (name === 'owned') {
      const s = new IndexedDBStorage('bench-owned');
      const owned = { get: (k) => s.get(k), put: (k, v) => s.put(k, v), delete: (k) => s.delete(k), list: () => s.list(), entries: () => s.entries() };
      stores.owned = managed((await ContextManager.open(owned, config)).manager, name);
    } else if (name === 'memory') {
      stores.memory = managed(new ContextManager(config), name);
    } else {
      stores.raw = await rawIndexedDB(check);
    }
    for (let k = 0; k < keys; k++) await stores[name].seed(k);
  }
  window.stores = stores;

  /** Raw IndexedDB: one object store, values `{ version, text }`; a transaction per operation, writes with strict durability. */
  async function rawIndexedDB(check) {
    const db = await new Promise((resolve, reject) => {
      const req = indexedDB.open('bench-raw', 1);
      req.onupgradeneeded = () => req.result.createObjectStore('kv');
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
    const tx = (mode, use) =>
      new Promise((resolve, reject) => {
        const t = db.transaction('kv', mode, mode === 'readwrite' ? { durability: 'strict' } : undefined);
        let result;
        use(t.objectStore('kv'), (r) => (result = r));
        t.oncomplete = () => resolve(result);
        t.onabort = () => reject(t.error);
      });
    return {
      seed: (k) => tx('readwrite', (s) => s.put({ version: 1, text: JSON.stringify(payload(0)) }, `k${k}`)),
      get: async (k) => {
        const v = await tx('readonly', (s, done) => {
          s.get(`k${k}`).onsuccess = (e) => done(e.target.result);
        });
        check(typeof JSON.parse(v.text).field0 === 'string', `raw get k${k}`);
      },
      create: (n) =>
        tx('readwrite', (s, done) => {
          // add() fails on an existing key, as create does.
          s.add({ version: 1, text: JSON.stringify(payload(n)) }, `new${n}`);
          done(1);
        }),
      // Compare-and-set in one transaction: read, compare the version, write.
      update: (k, expected, n) =>
        tx('readwrite', (s, done) => {
          s.get(`k${k}`).onsuccess = (e) => {
            const cur = e.target.result;
            check(cur.version === expected, `raw compare of k${k}: expected ${expected}, found ${cur.version}`);
            s.put({ version: expected + 1, text: JSON.stringify(payload(n)) }, `k${k}`);
            done(expected + 1);
          };
        }),
    };
  }
}

// In the page: one cell. `inFlight` loops each run `op` on store `name` for
// `ms` (or `smokeOps` calls); loop l owns the keys l + inFlight j, so every
// update's compare succeeds. Resolves to { ops, ms }.
async function cell({ name, op, inFlight, ms, smokeOps, keys }) {
  const store = window.stores[name];
  window.fresh ??= {};
  window.versions ??= {};
  window.fresh[name] ??= 0;
  window.versions[name] ??= new Array(keys).fill(1);
  const versions = window.versions[name];
  const owned = Math.floor(keys / inFlight);
  let ops = 0;
  const before = { ...window.idbCounts };
  const start = performance.now();
  const end = start + ms;
  const loop = async (l) => {
    for (let i = 0; smokeOps ? i < smokeOps : performance.now() < end; i++) {
      if (op === 'get') await store.get((l + inFlight * i) % keys);
      else if (op === 'create') await store.create(window.fresh[name]++);
      else {
        const k = l + inFlight * (i % owned);
        versions[k] = await store.update(k, versions[k], i);
      }
      ops++;
    }
  };
  await Promise.all(Array.from({ length: inFlight }, (_, l) => loop(l)));
  const elapsed = performance.now() - start;
  const per = (k) => (window.idbCounts[k] - before[k]) / ops;
  return { ops, ms: elapsed, readonly: per('readonly'), readwrite: per('readwrite'), requests: per('requests') };
}

/** The list `table[op][inFlight][name]`, made where it is missing. */
function cellOf(table, op, inFlight, name) {
  table[op] ??= {};
  table[op][inFlight] ??= {};
  table[op][inFlight][name] ??= [];
  return table[op][inFlight][name];
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function main() {
  const server = await serveStatic({ root: pkgDir, prefix: '/pkg/', pages: { '/': page } });
  const load = () => os.loadavg()[0].toFixed(2);
  const loadBefore = load();
  try {
    await withChromium((context) => run(context, server.base, load, loadBefore));
  } finally {
    await server.close();
  }
}

/** The benchmark in `context` (a browser ready to use) on the page at `base`. */
async function run(context, base, load, loadBefore) {
  const tab = context.pages()[0] ?? (await context.newPage());
  const errors = [];
  tab.on('pageerror', (e) => errors.push(e.message));
  await tab.goto(base);
  await tab.waitForFunction(() => window.ready === true, null, { timeout: 60_000 });
  await tab.evaluate(setUp, { keys: KEYS, names: STORES });
  const version = (await context.browser()?.version()) ?? execFileSync(CHROMIUM, ['--version'], { encoding: 'utf8' }).trim();

  /** results[op][inFlight][store] = ops/s of each timed round; usage: the cells' IndexedDB counts per operation. */
  const results = {};
  const usage = {};
  for (let round = 0; round < WARMUP + ROUNDS; round++) {
    for (const op of OPS) {
      for (const inFlight of IN_FLIGHT) {
        for (let s = 0; s < STORES.length; s++) {
          const name = STORES[(s + round) % STORES.length];
          const r = await tab.evaluate(cell, { name, op, inFlight, ms: CELL_MS, smokeOps: smoke ? SMOKE_OPS : 0, keys: KEYS });
          if (round >= WARMUP) {
            cellOf(results, op, inFlight, name).push((r.ops / r.ms) * 1000);
            cellOf(usage, op, inFlight, name).push(r);
          }
        }
      }
    }
  }
  if (errors.length > 0) throw new Error(`page errors: ${errors.join('; ')}`);
  console.log(
    `Chromium ${version} (headless, playwright-core), Node ${process.version}, ${os.cpus().length} CPUs; ` +
      `load average ${loadBefore} at the start, ${load()} at the end; ${KEYS} contexts per store, 10-field JSON payload; ` +
      `median of ${ROUNDS} rounds of ${CELL_MS} ms cells after ${WARMUP} warm-up round.\n`,
  );
  console.log(`| operation | in flight | ${STORES.map((s) => NAMES[s]).join(' | ')} | shared / owned | shared / owned per round | shared / raw |`);
  console.log(`|---|---:|${STORES.map(() => '---:|').join('')}---:|---:|---:|`);
  const label = { get: 'get (existing context)', create: 'create (new context)', update: 'compare-and-set update' };
  for (const op of OPS) {
    for (const inFlight of IN_FLIGHT) {
      const r = results[op][inFlight];
      const m = Object.fromEntries(STORES.map((s) => [s, median(r[s])]));
      const perRound = r.shared.map((x, i) => x / r.owned[i]);
      const ratio = (x) => `${x < 0.1 ? x.toFixed(3) : x.toFixed(2)}×`;
      console.log(
        `| ${label[op]} | ${inFlight} | ${STORES.map((s) => Math.round(m[s])).join(' | ')} | ${ratio(m.shared / m.owned)} | ` +
          `${ratio(Math.min(...perRound))}–${ratio(Math.max(...perRound))} | ${ratio(m.shared / m.raw)} |`,
      );
    }
  }
  const idbStores = STORES.filter((s) => s !== 'memory');
  console.log('\n#### IndexedDB transactions (readonly + readwrite) and requests per operation (medians of the same rounds)\n');
  console.log(`| operation | in flight | ${idbStores.map((s) => NAMES[s]).join(' | ')} |`);
  console.log(`|---|---:|${idbStores.map(() => '---|').join('')}`);
  const n = (x) => (x >= 10 ? x.toFixed(1) : x.toFixed(2));
  for (const op of OPS) {
    for (const inFlight of IN_FLIGHT) {
      const u = usage[op][inFlight];
      const cells = idbStores.map((s) => {
        const med = (k) => median(u[s].map((r) => r[k]));
        return `${n(med('readonly'))} + ${n(med('readwrite'))}, ${n(med('requests'))}`;
      });
      console.log(`| ${label[op]} | ${inFlight} | ${cells.join(' | ')} |`);
    }
  }
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
