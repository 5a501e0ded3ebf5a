// One namespace twice: in a redis-server running native/redis/contextkit.lua
// (through node-redis, with the KEYS the Rust client passes) and in an
// IndexedDBShared over fake-indexeddb. `call` runs a library function on both
// and returns both outcomes; `dump` reads everything each one holds, in the
// same shape, to compare whole states.
import { readFileSync } from 'node:fs';
import { IDBFactory, IDBKeyRange } from 'fake-indexeddb';
import { createClient } from 'redis';
import { IndexedDBShared } from '../../wasm/npm/idb-shared.js';

export const LUA = readFileSync(new URL('../../native/redis/contextkit.lua', import.meta.url), 'utf8');

/** A node-redis client on `url` with the library loaded. */
export async function connect(url) {
  const client = createClient({ url });
  await client.connect();
  await client.sendCommand(['FUNCTION', 'LOAD', 'REPLACE', LUA]);
  return client;
}

/** `{ reply }` or `{ error }` (the message) of a promise. */
async function outcome(promise) {
  try {
    return { reply: await promise };
  } catch (e) {
    return { error: e.message };
  }
}

const OPS_WITH_ID = new Set(['create', 'update', 'delete', 'touch', 'point', 'restore']);

export class Pair {
  /** @param client node-redis client, @param ns namespace (also the database name) */
  static async open(client, ns) {
    const factory = new IDBFactory();
    const shared = await IndexedDBShared.open(ns, { indexedDB: factory, IDBKeyRange, BroadcastChannel: null });
    return new Pair(client, ns, shared, factory);
  }

  constructor(client, ns, shared, factory) {
    Object.assign(this, { client, ns, shared, factory });
    this.prefix = `ck:{${ns}}:`;
    this.meta = `${this.prefix}meta`;
  }

  /** FCALL / FCALL_RO as native/src/redis_backend/mod.rs sends it. */
  redisCall(fn, id, args) {
    const P = this.prefix;
    let keys = [this.meta];
    if (fn === 'ck2_write') {
      keys = [this.meta, `${P}ev`, `${P}ids`, `${P}exp`, `${P}op:${args[2]}`];
      const cid = OPS_WITH_ID.has(args[0]) ? args[6] : undefined;
      if (cid) keys.push(`${P}c:${cid}`, `${P}p:${cid}`);
    } else if (fn === 'ck2_settle') {
      keys = [this.meta, `${P}op:${id}`];
    } else if ((fn === 'ck2_get' || fn === 'ck2_points') && args[0] !== undefined) {
      keys = [this.meta, `${P}c:${args[0]}`];
    }
    const cmd = ['ck2_write', 'ck2_settle', 'ck2_join'].includes(fn) ? 'FCALL' : 'FCALL_RO';
    return this.client.sendCommand([cmd, fn, String(keys.length), ...keys, ...args]);
  }

  /** Runs `fn` on both: `{ redis, idb }`, each `{ reply }` or `{ error }`. */
  async call(fn, id, args) {
    const redis = await outcome(this.redisCall(fn, id, args));
    const idb = await outcome(this.shared.call(fn, id, args));
    return { redis, idb };
  }

  /** The stream as events() gives it: [[revision, type, id, version], ...]. */
  async stream() {
    const entries = await this.client.sendCommand(['XRANGE', `${this.prefix}ev`, '-', '+']);
    return entries.map(([entry, fields]) => {
      const f = Object.fromEntries(fields.flatMap((x, i) => (i % 2 ? [] : [[x, fields[i + 1]]])));
      return [Number(entry.split('-')[0]), f.t, f.i, Number(f.v)];
    });
  }

  /** Everything Redis holds for the namespace. */
  async redisDump() {
    const P = this.prefix;
    const send = (...c) => this.client.sendCommand(c);
    const pairs = (flat) => Object.fromEntries(flat.flatMap((x, i) => (i % 2 ? [] : [[x, flat[i + 1]]])));
    const [contexts, points, ops] = [{}, {}, {}];
    for (const key of await send('KEYS', `${P}c:*`)) contexts[key.slice(P.length + 2)] = await send('GET', key);
    for (const key of await send('KEYS', `${P}p:*`)) points[key.slice(P.length + 2)] = await send('LRANGE', key, '0', '-1');
    for (const key of await send('KEYS', `${P}op:*`)) ops[key.slice(P.length + 3)] = await send('GET', key);
    const exp = await send('ZRANGE', `${P}exp`, '0', '-1', 'WITHSCORES');
    return {
      meta: pairs(await send('HGETALL', this.meta)),
      ids: sorted(pairs(await send('HGETALL', `${P}ids`))),
      exp: exp.flatMap((x, i) => (i % 2 ? [] : [[x, Number(exp[i + 1])]])),
      contexts: sorted(contexts),
      points: sorted(points),
      ops: normalizeOps(ops),
    };
  }

  /** Everything the IndexedDB database holds, in redisDump's shape (expired keys left out as Redis would). */
  async idbDump() {
    const req = this.factory.open(IndexedDBShared.databaseName(this.ns));
    const db = await new Promise((resolve, reject) => {
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
    const tx = db.transaction(['meta', 'contexts', 'points', 'ids', 'exp', 'ops'], 'readonly');
    // (An index's getAllKeys gives the primary keys, in the index's order.)
    const all = (store, index) => {
      const s = index ? tx.objectStore(store).index(index) : tx.objectStore(store);
      const keys = s.getAllKeys();
      const values = s.getAll();
      return new Promise((resolve, reject) => {
        values.onsuccess = () => resolve(values.result.map((v, i) => [keys.result[i], v]));
        values.onerror = () => reject(values.error);
      });
    };
    const now = Date.now();
    const live = (entries) => Object.fromEntries(entries.filter(([, e]) => e.pxat === null || now <= e.pxat).map(([k, e]) => [k, e.value]));
    const [meta, ids, exp, contexts, points, ops] = await Promise.all([
      all('meta'), all('ids'), all('exp', 'due'), all('contexts'), all('points'), all('ops'),
    ]);
    db.close();
    return {
      meta: Object.fromEntries(meta).hash ?? {},
      ids: sorted(Object.fromEntries(ids)),
      exp: exp.map(([id, e]) => [id, e.score]),
      contexts: sorted(live(contexts)),
      points: sorted(live(points)),
      ops: normalizeOps(live(ops)),
    };
  }

  close() {
    this.shared.close();
  }
}

function sorted(obj) {
  return Object.fromEntries(Object.entries(obj).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** Stored replies as values: cjson writes an empty table as {}, JSON.stringify an empty array as []. */
function normalizeOps(ops) {
  const fix = (v) => (Array.isArray(v) ? v.map(fix) : v && typeof v === 'object' && Object.keys(v).length === 0 ? [] : v);
  return sorted(Object.fromEntries(Object.entries(ops).map(([k, v]) => [k, v === 'aborted' ? v : fix(JSON.parse(v))])));
}

/**
 * Whether two outcomes agree: equal replies; or both errors with the same
 * text, except that where Redis reports a run-time error of the function
 * ("ERR user_function:<line>: <cause> script: ...", or a command's "ERR ...")
 * IndexedDBShared's message is the cause alone.
 */
export function agree({ redis, idb }) {
  if ('reply' in redis || 'reply' in idb) return 'reply' in redis && 'reply' in idb && equal(redis.reply, idb.reply);
  if (redis.error.startsWith('ERR ')) return redis.error.includes(idb.error);
  return redis.error === idb.error;
}

function equal(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}
