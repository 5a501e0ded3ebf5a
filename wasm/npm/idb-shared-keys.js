// The keys of one shared namespace inside one IndexedDB transaction, with the
// Redis commands that contextkit's Lua library uses on them (GET, SET with
// PXAT/PX, DEL, RPUSH, LTRIM, LRANGE, PEXPIREAT, PERSIST, HGET, HMGET, HSET,
// HDEL, HLEN, HKEYS, HINCRBY, ZADD, ZREM, ZRANGEBYSCORE, ZCOUNT, XADD), so
// that idb-shared-library.js reads like the Lua file. Key kinds are the
// suffixes of the Redis keys ('c' for c:<id>, 'p', 'op', 'ids', 'exp',
// 'meta'); the object store each maps to is described in idb-shared.js.

/** An error reply of the library (redis.error_reply): the message is its text. */
export class ReplyError extends Error {
  constructor(message) {
    super(message);
    this.name = 'ReplyError';
  }
}

/**
 * A run-time error of the library: where Redis answers
 * "ERR user_function:<line>: <message> script: ...", the message is the
 * part that names the cause (a Redis command's own error keeps its "ERR").
 */
export class LuaError extends Error {
  constructor(message) {
    super(message);
    this.name = 'LuaError';
  }
}

/** The object store of each key kind. */
const STORE = { c: 'contexts', p: 'points', op: 'ops', ids: 'ids', exp: 'exp', meta: 'meta', ev: 'log' };
/** Every object store: each call's transaction covers them all. */
export const STORES = ['meta', 'contexts', 'points', 'ids', 'exp', 'ops', 'log'];

/** A Promise of an IndexedDB request's result. */
export function request(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

/** An argument of redis.call: Lua's nil (and false) are refused. */
function arg(v) {
  if (v === null || v === undefined) throw new LuaError('Lua redis lib command arguments must be strings or integers');
  return String(v);
}

/** A Redis integer argument (string2ll: no spaces, sign '+', leading zeros or exponent). */
function integer(s) {
  if (!/^(0|-?[1-9][0-9]*)$/.test(s) || !Number.isSafeInteger(Number(s))) {
    throw new LuaError('ERR value is not an integer or out of range');
  }
  return Number(s);
}

const utf8 = new TextEncoder();

/** A string whose order (by UTF-16 code unit) is the byte order of s in UTF-8, as Redis sorts members. */
function byteOrder(s) {
  let out = '';
  for (const b of utf8.encode(s)) out += String.fromCharCode(b);
  return out;
}

export class Keys {
  #tx;
  #range;
  /** The meta hash (undefined until read, null when absent) and whether it changed. */
  #meta = undefined;
  #metaChanged = false;

  /**
   * @param {IDBTransaction} tx covering STORES
   * @param {number} clock the call's time in ms: the server's clock of the
   *   library (TIME) and the one key expiry is measured by
   * @param {typeof IDBKeyRange} keyRange
   */
  constructor(tx, clock, keyRange) {
    this.#tx = tx;
    this.#range = keyRange;
    this.clock = clock;
    /** The revision this call committed last, if any. */
    this.revision = null;
  }

  #store(kind) {
    return this.#tx.objectStore(STORE[kind]);
  }

  /** A key with an expiry ({ value, pxat }), or null once Redis would have deleted it (now > pxat). */
  async #entry(kind, id) {
    const e = await request(this.#store(kind).get(arg(id)));
    return e !== undefined && (e.pxat === null || this.clock <= e.pxat) ? e : null;
  }

  async #put(kind, id, value, pxat) {
    await request(this.#store(kind).put({ value, pxat }, id));
  }

  /** The absolute expiry of `SET ... PX ms`. */
  px(ms) {
    return this.clock + integer(ms);
  }

  // ---- strings: c:<id> (record text), op:<op> (a reply) ----

  async get(kind, id) {
    return (await this.#entry(kind, id))?.value ?? null;
  }

  /** SET, with PXAT `pxat` (ms) or none (which clears an expiry, as SET does). */
  async set(kind, id, value, pxat) {
    await this.#put(kind, arg(id), arg(value), pxat === null ? null : integer(String(pxat)));
  }

  async del(kind, id) {
    await request(this.#store(kind).delete(arg(id)));
  }

  // ---- lists: p:<id> ----

  /** LRANGE key 0 -1 */
  async lrange(kind, id) {
    return (await this.#entry(kind, id))?.value ?? [];
  }

  async rpush(kind, id, item) {
    const e = await this.#entry(kind, id);
    await this.#put(kind, id, [...(e?.value ?? []), arg(item)], e?.pxat ?? null);
  }

  async ltrim(kind, id, start, stop) {
    const e = await this.#entry(kind, id);
    if (!e) return;
    const len = e.value.length;
    let [from, to] = [start < 0 ? len + start : start, stop < 0 ? len + stop : stop];
    from = Math.max(from, 0);
    if (from > to || from >= len) {
      await this.del(kind, id);
      return;
    }
    to = Math.min(to, len - 1);
    await this.#put(kind, id, e.value.slice(from, to + 1), e.pxat);
  }

  async pexpireat(kind, id, at) {
    const e = await this.#entry(kind, id);
    if (e) await this.#put(kind, id, e.value, integer(arg(at)));
  }

  async persist(kind, id) {
    const e = await this.#entry(kind, id);
    if (e && e.pxat !== null) await this.#put(kind, id, e.value, null);
  }

  // ---- hashes: meta (one record), ids (a store: id -> version) ----

  async #hash() {
    if (this.#meta === undefined) this.#meta = (await request(this.#store('meta').get('hash'))) ?? null;
    return this.#meta;
  }

  async hget(key, field) {
    if (key === 'meta') return (await this.#hash())?.[field] ?? null;
    return (await request(this.#store(key).get(arg(field)))) ?? null;
  }

  async hmget(_key, ...fields) {
    const hash = await this.#hash();
    return fields.map((f) => hash?.[f] ?? null);
  }

  /** HSET key field value [field value ...] */
  async hset(key, ...pairs) {
    pairs.forEach(arg);
    if (key === 'meta') {
      this.#meta = { ...(await this.#hash()) };
      for (let i = 0; i < pairs.length; i += 2) this.#meta[pairs[i]] = pairs[i + 1];
      this.#metaChanged = true;
      return;
    }
    for (let i = 0; i < pairs.length; i += 2) await request(this.#store(key).put(pairs[i + 1], pairs[i]));
  }

  async hincrby(_key, field, by) {
    const hash = { ...(await this.#hash()) };
    const n = Number(hash[field] ?? '0') + by;
    hash[field] = String(n);
    this.#meta = hash;
    this.#metaChanged = true;
    if (field === 'rev') this.revision = n;
    return n;
  }

  async hdel(key, field) {
    await request(this.#store(key).delete(arg(field)));
  }

  async hlen(key) {
    return request(this.#store(key).count());
  }

  async hkeys(key) {
    return request(this.#store(key).getAllKeys());
  }

  // ---- the sorted set exp: id -> { score, order }, index 'due' on [score, order] ----

  async zadd(key, score, member) {
    await request(this.#store(key).put({ score: Number(score), order: byteOrder(member) }, arg(member)));
  }

  async zrem(key, member) {
    await request(this.#store(key).delete(arg(member)));
  }

  /** ZRANGEBYSCORE key -inf max [LIMIT 0 limit]: members by score, then by their bytes. */
  async zrangebyscore(key, max, limit) {
    const due = this.#range.upperBound([Number(max), []]);
    return request(
      this.#store(key)
        .index('due')
        .getAllKeys(due, limit === null ? undefined : Number(limit)),
    );
  }

  /** ZCOUNT key -inf max */
  async zcount(key, max) {
    return request(
      this.#store(key)
        .index('due')
        .count(this.#range.upperBound([Number(max), []])),
    );
  }

  // ---- the stream ev: revision -> { t, i, v } ----

  /** XADD ev MAXLEN maxlen <rev>-0 t kind i id v version, trimmed exactly (Redis trims about). */
  async xadd(maxlen, rev, t, i, v) {
    const keep = integer(maxlen);
    const log = this.#store('ev');
    await request(log.put({ t: arg(t), i: arg(i), v: arg(v) }, Number(rev)));
    await request(log.delete(this.#range.upperBound(Number(rev) - keep)));
  }

  /** Writes what is kept in memory during the call, and drops a few expired replies. */
  async finish() {
    if (this.#metaChanged) await request(this.#store('meta').put(this.#meta, 'hash'));
    const ops = this.#store('op');
    const expired = await request(ops.index('pxat').getAllKeys(this.#range.upperBound(this.clock, true), 8));
    for (const op of expired) await request(ops.delete(op));
  }
}
