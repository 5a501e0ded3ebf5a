// Operations per second over Redis: the built npm package contextkit in shared
// mode (ContextManager.connect(new RedisBackend(...))) against keyv with
// @keyv/redis and against raw node-redis commands (the floor), all three on
// one redis-server that this script starts on a free port and stops.
//
//   node redis.mjs            full run (about 25 s)
//   node redis.mjs --smoke    a few operations of each (no timing claims)
//
// The package is loaded from ../wasm/pkg (what scripts/build-npm.sh builds), or
// from the directory in CONTEXTKIT_PKG. Each cell runs `inFlight` loops that
// await one operation after another for a fixed time; ops/s counts what
// completed. The stores take turns within each round (in an order that
// rotates from round to round), so drift in the machine's speed during the
// run falls on all of them alike. Needs redis-server on the PATH.
//
// Where taskset exists, this process runs on one CPU and redis-server on
// another. Unpinned, the scheduler sometimes puts both on one CPU, where a
// round trip takes a fifth of the time or less than across CPUs (measured on
// a 2-core VM), and one call in flight would measure where they landed.
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createClient } from 'redis';
import { createKeyv } from '@keyv/redis';
import { startRedis } from '../js-tests/lib/redis-server.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const smoke = process.argv.includes('--smoke') || !!process.env.CONTEXTKIT_BENCH_SMOKE;
const pkgDir = process.env.CONTEXTKIT_PKG ?? path.resolve(here, '../wasm/pkg');
const require = createRequire(import.meta.url);
const { ContextManager, RedisBackend } = require(pkgDir);

/** Keys present before get and update are measured, per store. */
const KEYS = smoke ? 128 : 1_000;
/** Calls in flight: one loop, then 64 loops on one connection per store. */
const IN_FLIGHT = [1, 64];
/** Length of a timed cell; in smoke mode each loop makes SMOKE_OPS calls instead. */
const CELL_MS = smoke ? 0 : 200;
const SMOKE_OPS = 3;
/** Timed rounds after one warm-up round; the median round is reported. */
const ROUNDS = smoke ? 1 : 5;
const WARMUP = smoke ? 0 : 1;
/** A compare-and-set loop owns the keys `loop + 64 j`, so no two loops race on a key. */
const OWNED = Math.floor(KEYS / 64);

/** 10 string fields of 8 characters (the "10 fields" payload of bench.mjs). */
function payload(n) {
  const o = {};
  for (let i = 0; i < 10; i++) o[`field${i}`] = String.fromCharCode(97 + i) + String(n % 1e7).padStart(7, '0');
  return o;
}

/**
 * The least an atomic compare-and-set on Redis costs (the native shared bench's
 * script): reads the version in front of the data, compares, writes both.
 */
const LUA_CAS = `local cur = redis.call('GET', KEYS[1])
local v = cur and tonumber(string.match(cur, '^%d+')) or 0
if v ~= tonumber(ARGV[1]) then return -1 end
redis.call('SET', KEYS[1], (v + 1) .. '\\n' .. ARGV[2])
return v + 1`;

/** The CPUs `pid` may run on, from `taskset -c -p` ("... current affinity list: 0-2,5"). */
function affinity(pid) {
  const list = execFileSync('taskset', ['-c', '-p', String(pid)], { encoding: 'utf8' })
    .split(':')
    .at(-1)
    .trim();
  return list.split(',').flatMap((part) => {
    const [a, b = a] = part.split('-').map(Number);
    return Array.from({ length: b - a + 1 }, (_, i) => a + i);
  });
}

/** Puts this process (every thread) and redis-server on two different CPUs; says what it did. */
function pin(redisPid) {
  try {
    const cpus = affinity(process.pid);
    if (cpus.length < 2) return `not pinned: this process may use CPU ${cpus.join(',')} only`;
    execFileSync('taskset', ['-a', '-c', '-p', String(cpus[1]), String(redisPid)], { stdio: 'ignore' });
    execFileSync('taskset', ['-a', '-c', '-p', String(cpus[0]), String(process.pid)], { stdio: 'ignore' });
    return `Node on CPU ${cpus[0]}, redis-server on CPU ${cpus[1]} (taskset)`;
  } catch (e) {
    return `not pinned: ${e.code === 'ENOENT' ? 'no taskset' : e.message.split('\n')[0]}`;
  }
}

function check(ok, what) {
  if (!ok) throw new Error(`benchmark operation failed: ${what}`);
}

const keyOf = (loop, i) => loop + 64 * (i % OWNED);

/**
 * Each store: `get(k)`, `create(n)` of a fresh key, `cas(k, expected, n)`
 * resolving to the new version, `version(k)` to read one back, and `close()`.
 * Every key starts at version 1.
 */
async function contextkit(url, { namespace = 'bench', maxStaleMs = 0, name = 'contextkit' } = {}) {
  // node-redis from js-bench/node_modules: wasm/pkg has no node_modules of its own.
  const backend = new RedisBackend({ url, namespace, maxStaleMs, createClient });
  const m = await ContextManager.connect(backend, { maxContexts: 10_000_000 });
  for (let k = 0; k < KEYS; k++) await m.createContext(`k${k}`, payload(0));
  return {
    name,
    get: async (k) => {
      const s = await m.getContext(`k${k}`);
      check(s && typeof s.data.field0 === 'string', `contextkit get k${k}`);
    },
    create: (n) => m.createContext(`new${n}`, payload(n)),
    cas: async (k, expected, n) => (await m.updateContext(`k${k}`, payload(n), { expectedVersion: expected })).version,
    version: async (k) => (await m.getContext(`k${k}`)).version,
    close: async () => m.free(),
  };
}

/** keyv stores `{ version, data }`; its compare-and-set is a get, a comparison and a set: not atomic. */
async function keyv(url) {
  const kv = createKeyv(url, { namespace: 'bench' });
  for (let k = 0; k < KEYS; k++) await kv.set(`k${k}`, { version: 1, data: payload(0) });
  return {
    name: 'keyv (@keyv/redis)',
    get: async (k) => {
      const v = await kv.get(`k${k}`);
      check(v && typeof v.data.field0 === 'string', `keyv get k${k}`);
    },
    create: (n) => kv.set(`new${n}`, { version: 1, data: payload(n) }),
    cas: async (k, expected, n) => {
      const cur = await kv.get(`k${k}`);
      check(cur && cur.version === expected, `keyv compare of k${k}: expected ${expected}, found ${cur?.version}`);
      await kv.set(`k${k}`, { version: expected + 1, data: payload(n) });
      return expected + 1;
    },
    version: async (k) => (await kv.get(`k${k}`)).version,
    close: () => kv.disconnect(),
  };
}

/** node-redis on one connection: GET + JSON.parse, SET of JSON text, one EVALSHA of LUA_CAS. */
async function raw(url) {
  const c = createClient({ url });
  c.on('error', () => {});
  await c.connect();
  const sha = await c.scriptLoad(LUA_CAS);
  const text = JSON.stringify(payload(0));
  for (let k = 0; k < KEYS; k++) {
    await c.set(`raw:k${k}`, text);
    await c.set(`raw:cas:k${k}`, `1\n${text}`);
  }
  return {
    name: 'raw node-redis',
    client: c,
    get: async (k) => {
      const v = JSON.parse(await c.get(`raw:k${k}`));
      check(typeof v.field0 === 'string', `raw GET k${k}`);
    },
    create: (n) => c.set(`raw:new${n}`, JSON.stringify(payload(n))),
    cas: async (k, expected, n) => {
      const v = await c.evalSha(sha, { keys: [`raw:cas:k${k}`], arguments: [String(expected), JSON.stringify(payload(n))] });
      check(v === expected + 1, `Lua compare-and-set of raw:cas:k${k} at version ${expected}: ${v}`);
      return v;
    },
    version: async (k) => Number((await c.get(`raw:cas:k${k}`)).split('\n')[0]),
    close: () => c.quit(),
  };
}

/** redis-server's CPU seconds so far (user + system, every thread) and calls per command. */
async function serverStats(c) {
  const info = String(await c.sendCommand(['INFO', 'cpu', 'commandstats']));
  const num = (k) => Number(new RegExp(`^${k}:([\\d.]+)`, 'm').exec(info)?.[1] ?? 0);
  const calls = {};
  for (const [, name, n] of info.matchAll(/^cmdstat_(\S+?):calls=(\d+)/gm)) calls[name] = Number(n);
  return { cpu: num('used_cpu_user') + num('used_cpu_sys'), calls };
}

/**
 * One cell: `inFlight` loops each awaiting `op` for CELL_MS (or SMOKE_OPS calls).
 * Returns ops/s, the CPU µs per operation of this Node process and of
 * redis-server, and the Redis commands per operation (the probe's INFO left out).
 */
async function cell(run, op, inFlight, probe) {
  const { store } = run;
  const cpu0 = process.cpuUsage();
  const srv0 = await serverStats(probe);
  let ops = 0;
  const start = performance.now();
  const end = start + CELL_MS;
  const loop = async (l) => {
    for (let i = 0; smoke ? i < SMOKE_OPS : performance.now() < end; i++) {
      if (op === 'get') {
        await store.get((l + 64 * i) % KEYS);
      } else if (op === 'create') {
        await store.create(run.fresh++);
      } else {
        const k = keyOf(l, i);
        run.versions[k] = await store.cas(k, run.versions[k], i);
      }
      ops++;
    }
  };
  await Promise.all(Array.from({ length: inFlight }, (_, l) => loop(l)));
  const secs = (performance.now() - start) / 1e3;
  const cpu = process.cpuUsage(cpu0);
  const srv = await serverStats(probe);
  const commands = {};
  for (const [name, n] of Object.entries(srv.calls)) {
    if (name !== 'info') commands[name] = (n - (srv0.calls[name] ?? 0)) / ops;
  }
  return {
    opsPerSec: ops / secs,
    nodeUs: (cpu.user + cpu.system) / ops,
    redisUs: ((srv.cpu - srv0.cpu) * 1e6) / ops,
    commands,
  };
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

const OPS = ['get', 'create', 'cas'];
const OP_NAME = {
  get: 'get (existing key)',
  create: 'set / create (new key)',
  cas: 'compare-and-set update',
};

async function main() {
  const server = await startRedis();
  const load0 = os.loadavg()[0];
  const cpus = os.availableParallelism();
  try {
    const cached = { namespace: 'bench-cached', maxStaleMs: 1000, name: 'contextkit, maxStaleMs 1000' };
    const stores = [await contextkit(server.url), await keyv(server.url), await raw(server.url), await contextkit(server.url, cached)];
    const probe = stores[2].client;
    const info = await probe.info('server');
    const version = /^redis_version:(\S+)/m.exec(info)?.[1];
    const pinned = pin(Number(/^process_id:(\d+)/m.exec(info)?.[1]));
    const runs = stores.map((store) => ({ store, fresh: 0, versions: new Array(KEYS).fill(1) }));
    // results[op][inFlight][store] = per-round cells
    const results = {};
    for (const op of OPS) {
      results[op] = {};
      for (const n of IN_FLIGHT) {
        results[op][n] = Object.fromEntries(stores.map((s) => [s.name, []]));
        for (let r = 0; r < WARMUP + ROUNDS; r++) {
          for (let j = 0; j < runs.length; j++) {
            const run = runs[(j + r) % runs.length];
            const c = await cell(run, op, n, probe);
            if (r >= WARMUP) results[op][n][run.store.name].push(c);
          }
        }
      }
    }
    // Every compare-and-set landed exactly once.
    for (const run of runs) {
      for (let k = 0; k < KEYS; k++) {
        const v = await run.store.version(k);
        check(v === run.versions[k], `${run.store.name} k${k} ended at version ${v}, expected ${run.versions[k]}`);
      }
    }
    for (const s of stores) await s.close();
    print(
      results,
      stores.map((s) => s.name),
      { version, pinned, cpus, load0 },
    );
  } finally {
    await server.stop();
  }
}

function print(results, names, { version, pinned, cpus, load0 }) {
  const [ck, kv, rw, ckc] = names;
  const med = (cells, f) => median(cells.map((c) => c[f]));
  const int = (x) => String(Math.round(x));
  const us = (x) => (x < 10 ? x.toFixed(1) : String(Math.round(x)));
  const ratio = (x) => `${x.toFixed(2)}×`;
  const out = [];
  const mode = smoke ? 'SMOKE MODE, not a measurement' : `median of ${ROUNDS} rounds of ${CELL_MS} ms after ${WARMUP} warm-up`;
  out.push(`\n## Node over Redis: operations per second (higher is better; ${mode})\n`);
  out.push(
    `Node ${process.version}, redis-server ${version} on 127.0.0.1 (no persistence), ` +
      `${cpus} CPUs, ${pinned}; load average ${load0.toFixed(2)} at the start, ` +
      `${os.loadavg()[0].toFixed(2)} at the end; ${KEYS} keys per store, 10-field JSON payload.\n`,
  );
  out.push(`| operation | in flight | ${ck} | ${kv} | ${rw} | ${ckc} | contextkit / keyv | contextkit / raw | contextkit / keyv per round | cached / keyv |`);
  out.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const op of OPS) {
    for (const n of IN_FLIGHT) {
      const r = results[op][n];
      const [a, b, c, d] = names.map((s) => med(r[s], 'opsPerSec'));
      const per = r[ck].map((x, i) => x.opsPerSec / r[kv][i].opsPerSec);
      const spread = `${Math.min(...per).toFixed(2)}–${Math.max(...per).toFixed(2)}×`;
      out.push(`| ${OP_NAME[op]} | ${n} | ${int(a)} | ${int(b)} | ${int(c)} | ${int(d)} | ${ratio(a / b)} | ${ratio(a / c)} | ${spread} | ${ratio(d / b)} |`);
    }
  }
  out.push('\n### CPU µs per operation: this Node process / redis-server (medians of the same rounds)\n');
  out.push(`| operation | in flight | ${ck} | ${kv} | ${rw} | ${ckc} |`);
  out.push('|---|---:|---:|---:|---:|---:|');
  for (const op of OPS) {
    for (const n of IN_FLIGHT) {
      const r = results[op][n];
      const cells = names.map((s) => `${us(med(r[s], 'nodeUs'))} / ${us(med(r[s], 'redisUs'))}`);
      out.push(`| ${OP_NAME[op]} | ${n} | ${cells.join(' | ')} |`);
    }
  }
  out.push(
    '\n### Redis commands per operation, as the server counts them (`INFO commandstats`: what a function or script ' +
      'runs counts too; medians of the same rounds; under 0.01 left out)\n',
  );
  out.push(`| operation | in flight | ${ck} | ${kv} | ${rw} | ${ckc} |`);
  out.push('|---|---:|---|---|---|---|');
  for (const op of OPS) {
    for (const n of IN_FLIGHT) {
      const r = results[op][n];
      const cells = names.map((s) => {
        const cmds = new Set(r[s].flatMap((c) => Object.keys(c.commands)));
        const per = [...cmds].map((cmd) => [cmd, median(r[s].map((c) => c.commands[cmd] ?? 0))]);
        return per
          .filter(([, x]) => x >= 0.01)
          .sort((a, b) => b[1] - a[1])
          .map(([cmd, x]) => `${cmd.toUpperCase()} ${x.toFixed(2)}`)
          .join(', ');
      });
      out.push(`| ${OP_NAME[op]} | ${n} | ${cells.join(' | ')} |`);
    }
  }
  out.push(
    '\ncompare-and-set: contextkit `updateContext` with `expectedVersion` (one FCALL); ' +
      'keyv `get`, compare, `set` (two round trips, not atomic: a concurrent writer in between is lost); ' +
      'raw one EVALSHA of a minimal Lua CAS. Each loop owns its keys, so every compare-and-set succeeds. ' +
      'The last store is contextkit with `maxStaleMs: 1000` (a read served from memory when one of the key ' +
      'was made less than 1 s ago, dropped by every write of the manager and by the event of any change).',
  );
  console.log(out.join('\n'));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
