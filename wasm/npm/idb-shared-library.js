// contextkit's Redis library (native/redis/contextkit.lua, format 2, library
// version 4) in JavaScript, for IndexedDBShared (idb-shared.js): one function
// here per function of the Lua file, in the same order, with the same names
// (camelCase), doing the same Redis commands in the same order, through the
// keys of one IndexedDB transaction (`k`, a `Keys` of idb-shared-keys.js).
// Keep the two files in step: js-tests/idb-shared/differential.test.mjs runs
// random call sequences against both and compares every reply.
//
// Lua values are mirrored as: string -> string, number -> number, nil and
// false -> null (undefined for a missing argument). Lua's own number rules
// (tonumber, string.format('%d')) are in luaNumber / num below, because the
// library's replies and checks depend on them.

import { LuaError, ReplyError } from './idb-shared-keys.js';

export const LIBRARY_VERSION = '7';
// The most time a TTL or a reply's lifetime may be (about 142,000 years).
const MAX_MS = 4503599627370496;
// Versions and recovery-point ids stop below 2^52 (exact in every client).
const MAX_COUNTER = 4503599627370496;

// ---- Lua 5.1 semantics the library relies on ----

const SPACE = '[ \\t\\n\\v\\f\\r]*';
const HEX = '0x(?:[0-9a-f]+\\.?[0-9a-f]*|\\.[0-9a-f]+)(?:p[+-]?[0-9]+)?';
const DEC = '(?:[0-9]+\\.?[0-9]*|\\.[0-9]+)(?:e[+-]?[0-9]+)?';
const NUMBER = new RegExp(`^${SPACE}([+-]?)(?:(${HEX})|(${DEC})|(inf(?:inity)?|nan(?:\\([0-9a-z_]*\\))?))${SPACE}$`, 'i');

/** Lua 5.1's tonumber(s) of a string (C's strtod, then only spaces): a number or null. */
export function luaNumber(s) {
  if (s === undefined || s === null) return null;
  if (typeof s === 'number') return s;
  // Lua reads a string as C does: up to its first NUL.
  const m = NUMBER.exec(s.split('\0', 1)[0]);
  if (!m) return null;
  const sign = m[1] === '-' ? -1 : 1;
  if (m[3] !== undefined) return sign * Number(m[3]);
  if (m[4] !== undefined) return m[4][0].toLowerCase() === 'i' ? sign * Infinity : NaN;
  const [, mantissa, exp = '0'] = /^0x([^p]*)(?:p(.*))?$/i.exec(m[2]);
  const [whole, fraction = ''] = mantissa.split('.');
  const digits = BigInt(`0x${whole}${fraction}` === '0x' ? '0' : `0x${whole}${fraction}`);
  return sign * Number(digits) * 2 ** (Number(exp) - 4 * fraction.length);
}

/** string.format('%d', n): n truncated to a 64-bit integer, as C casts it. */
export function num(n) {
  if (n === null || n === undefined) throw new LuaError("bad argument #2 to 'format' (number expected, got nil)");
  if (!Number.isFinite(n) || Math.abs(n) >= 2 ** 63) return '-9223372036854775808';
  const t = Math.trunc(n);
  return Number.isSafeInteger(t) ? String(t === 0 ? 0 : t) : BigInt(t).toString();
}

const luaType = (v) => (v === null || v === undefined ? 'nil' : typeof v);

/** Lua's a <= b, which raises an error for a nil operand. */
function le(a, b) {
  if (typeof a !== 'number' || typeof b !== 'number') {
    const [x, y] = [luaType(a), luaType(b)];
    throw new LuaError(x === y ? `attempt to compare two ${x} values` : `attempt to compare ${x} with ${y}`);
  }
  return a <= b;
}

/** Lua's a + b on numbers. */
function add(a, b) {
  if (typeof a !== 'number' || typeof b !== 'number') throw new LuaError('attempt to perform arithmetic on a nil value');
  return a + b;
}

/** Lua's s1 .. s2 .. ... on strings. */
function concat(...parts) {
  if (parts.some((p) => typeof p !== 'string')) throw new LuaError('attempt to concatenate a nil value');
  return parts.join('');
}

// ---- the library ----

// The time of a call: the client's when it passes one, else the server's.
function nowMs(k, given) {
  if (given !== undefined && given !== '') return luaNumber(given);
  return k.clock;
}

// A record's fields; its data only when `withData`.
function parse(raw, withData) {
  const m = /^([0-9]+) ([0-9]+) ([0-9]+) ([0-9]+) ([0-9]*) ([0-9]*)\n/.exec(raw);
  if (!m) throw new LuaError('contextkit: a damaged record');
  const stop = m[0].length;
  const mEnd = raw.indexOf('\n', stop);
  if (mEnd < 0) throw new LuaError("attempt to perform arithmetic on local 'm_end' (a nil value)");
  const [, v, r, c, u, e, t] = m;
  const rec = { v, r, c, u, e, t, m: raw.slice(stop, mEnd) };
  if (withData) rec.d = raw.slice(mEnd + 1);
  return rec;
}

function format(v, r, c, u, e, t, m, d) {
  return concat(v, ' ', r, ' ', c, ' ', u, ' ', e, ' ', t, '\n', m, '\n', d);
}

// One commit: the next revision, an entry in the stream, an event in the reply.
async function commit(w, kind, id, version) {
  const rev = num(await w.k.hincrby('meta', 'rev', 1));
  await w.k.xadd(w.maxlen, rev, kind, id, version);
  w.events.push(kind, id, version, rev);
  return rev;
}

// Removes id (version v) with its recovery points; one event of `why`.
async function remove(w, id, v, why) {
  await w.k.del('c', id);
  await w.k.del('p', id);
  await w.k.hdel('ids', id);
  await w.k.zrem('exp', id);
  w.counted = true;
  await commit(w, why, id, v);
}

// The record of id when it is live now; an expired one is removed first
// (its one Expired event) and null returned.
async function load(w, id, withData) {
  const raw = await w.k.get('c', id);
  if (raw !== null) {
    const rec = parse(raw, withData);
    if (rec.e !== '' && le(luaNumber(rec.e), w.now)) {
      await remove(w, id, rec.v, 'expired');
      return null;
    }
    return rec;
  }
  // Redis deleted it at its expiry, or it never was.
  const v = await w.k.hget('ids', id);
  if (v !== null) await remove(w, id, v, 'expired');
  return null;
}

// Removes up to `max` expired contexts (all when max is 0); how many.
async function sweep(w, max) {
  const due = await w.k.zrangebyscore('exp', num(w.now), max > 0 ? num(max) : null);
  for (const id of due) await remove(w, id, await w.k.hget('ids', id), 'expired');
  return due.length;
}

function expires(now, ttl) {
  if (ttl === '') return '';
  return num(add(now, luaNumber(ttl)));
}

// Stores the record of id, with its expiry: Redis deletes a key once now >
// at, a context is expired once now >= expires, hence at = expires - 1.
// `hadTtl`: the record it replaces had one.
async function store(w, id, text, exp, version, hadTtl) {
  if (exp !== '') {
    await w.k.set('c', id, text, w.clientClock ? null : num(luaNumber(exp) - 1));
    await w.k.zadd('exp', exp, id);
    await w.k.hset('ids', id, version);
  } else {
    await w.k.set('c', id, text, null);
    if (hadTtl) await w.k.zrem('exp', id);
  }
}

// A new version of live id (record rec) with `data`: update or restore.
async function setData(w, id, rec, data, ttlArg, kind) {
  if (luaNumber(rec.v) >= MAX_COUNTER) return ['CAPACITY_EXCEEDED', ['versions of a context', num(MAX_COUNTER)]];
  let ttl = ttlArg;
  if (ttl === '') ttl = rec.t;
  const nv = num(luaNumber(rec.v) + 1);
  const u = num(Math.max(w.now, luaNumber(rec.u)));
  const exp = expires(w.now, ttl);
  const r = await commit(w, kind, id, nv);
  await store(w, id, format(nv, r, rec.c, u, exp, ttl, rec.m, data), exp, nv, rec.t !== '');
  if (exp !== '' && !w.clientClock) {
    await w.k.pexpireat('p', id, num(luaNumber(exp) - 1));
  } else if (exp === '' && rec.t !== '') {
    await w.k.persist('p', id);
  }
  return ['OK', [nv, r, rec.c, u, exp, ttl, rec.m]];
}

const ops = Object.create(null);

// ARGV: id, data, ttl ('' none), metadata, capacity
ops.create = async (w, [id, data, ttl, metadata, limitArg]) => {
  const limit = luaNumber(limitArg);
  if (await load(w, id, false)) return ['ALREADY_EXISTS', []];
  const held = await w.k.hlen('ids');
  if (held >= limit) {
    // Expired contexts do not count: sweep as many as the create needs.
    await sweep(w, held - limit + 1);
    if ((await w.k.hlen('ids')) >= limit) return ['CAPACITY_EXCEEDED', ['contexts', num(limit)]];
  }
  const now = num(w.now);
  const exp = expires(w.now, ttl);
  const r = await commit(w, 'created', id, '1');
  if (exp === '') await w.k.hset('ids', id, '1');
  await store(w, id, format('1', r, now, now, exp, ttl, metadata, data), exp, '1', false);
  w.counted = true;
  return ['OK', ['1', r, now, now, exp, ttl, metadata]];
};

// ARGV: id, data, expected version ('' any), ttl ('' keep), expected revision ('' any)
ops.update = async (w, [id, data, expected, ttl, revision = '']) => {
  const rec = await load(w, id, false);
  if (!rec) return ['NOT_FOUND', []];
  if ((expected !== '' && luaNumber(expected) !== luaNumber(rec.v)) || (revision !== '' && luaNumber(revision) !== luaNumber(rec.r))) {
    return ['VERSION_CONFLICT', [rec.v, rec.r]];
  }
  return setData(w, id, rec, data, ttl, 'updated');
};

// ARGV: id. Restarts the TTL of live id from now: the same version and
// revision, no event. Replies with the whole state, data included.
ops.touch = async (w, [id]) => {
  const rec = await load(w, id, true);
  if (!rec) return ['NOT_FOUND', []];
  if (rec.t !== '') {
    rec.e = expires(w.now, rec.t);
    await store(w, id, format(rec.v, rec.r, rec.c, rec.u, rec.e, rec.t, rec.m, rec.d), rec.e, rec.v, true);
    if (!w.clientClock) await w.k.pexpireat('p', id, num(luaNumber(rec.e) - 1));
  }
  return ['OK', [rec.v, rec.r, rec.c, rec.u, rec.e, rec.t, rec.m, rec.d]];
};

// ARGV: id
ops.delete = async (w, [id]) => {
  const rec = await load(w, id, false);
  if (!rec) return ['NOT_FOUND', []];
  await remove(w, id, rec.v, 'deleted');
  return ['OK', []];
};

// ARGV: id, recovery points to keep (at least 1)
ops.point = async (w, [id, keepArg]) => {
  const keep = luaNumber(keepArg);
  const rec = await load(w, id, true);
  if (!rec) return ['NOT_FOUND', []];
  const last = luaNumber((await w.k.hget('meta', 'pid')) ?? '0');
  if (add(last, 1) >= MAX_COUNTER) return ['CAPACITY_EXCEEDED', ['recovery point ids', num(MAX_COUNTER)]];
  const pid = num(await w.k.hincrby('meta', 'pid', 1));
  const now = num(w.now);
  await w.k.rpush('p', id, concat(pid, '\n', rec.v, '\n', now, '\n', rec.d));
  await w.k.ltrim('p', id, -keep, -1);
  // The points go when their context expires.
  if (rec.e !== '' && !w.clientClock) await w.k.pexpireat('p', id, num(luaNumber(rec.e) - 1));
  return ['OK', [pid, rec.v, now, rec.d]];
};

// ARGV: id, recovery-point id
ops.restore = async (w, [id, pid]) => {
  const rec = await load(w, id, false);
  if (!rec) return ['NOT_FOUND', []];
  const prefix = concat(pid, '\n');
  for (const p of await w.k.lrange('p', id)) {
    if (p.startsWith(prefix)) {
      // After the third line break: string.find(p, '\n[^\n]*\n[^\n]*\n').
      let stop = -1;
      for (let i = 0; i < 3; i++) stop = p.indexOf('\n', stop + 1);
      const data = p.slice(stop + 1);
      const [status, detail] = await setData(w, id, rec, data, '', 'restored');
      if (status === 'OK') detail.push(data);
      return [status, detail];
    }
  }
  return ['NOT_FOUND', [pid]];
};

// ARGV: most to remove in this call
ops.sweep = async (w, [max]) => {
  w.counted = true;
  return ['OK', [num(await sweep(w, luaNumber(max)))]];
};

// ARGV: capacity. Sweeps expired contexts, then evicts the least recently
// written ones (lowest revision) until at most `capacity` remain.
ops.evict = async (w, [limitArg]) => {
  const limit = luaNumber(limitArg);
  w.counted = true;
  await sweep(w, 0);
  const over = (await w.k.hlen('ids')) - limit;
  if (over <= 0) return ['OK', ['0']];
  const order = [];
  for (const id of await w.k.hkeys('ids')) {
    const raw = await w.k.get('c', id);
    if (raw !== null) {
      const rec = parse(raw, false);
      order.push([luaNumber(rec.r), id, rec.v]);
    }
  }
  order.sort((x, y) => x[0] - y[0]);
  const n = Math.min(over, order.length);
  for (let i = 0; i < n; i++) await remove(w, order[i][1], order[i][2], 'evicted');
  return ['OK', [num(n)]];
};

// Whether s is a whole number in `least`..MAX_MS, or '' when `kind` is
// 'optional'. Kinds: 'optional' (1.. or ''), 'positive' (1..), 'count' (0..),
// 'expected' (any, or ''; only compared: one out of range matches nothing),
// 'compared' (the same, not '').
function whole(s, kind) {
  // An optional number may be left out (a client of an earlier release of
  // this format passes fewer arguments).
  if (s === undefined || s === '') return kind === 'optional' || kind === 'expected';
  // Plain decimal digits, as every client writes them (see contextkit.lua).
  if (s !== '0' && !/^[1-9][0-9]*$/.test(s)) return false;
  if (kind === 'expected' || kind === 'compared') return s.length <= 20;
  const n = luaNumber(s);
  const least = kind === 'count' ? 0 : 1;
  return n !== null && n >= least && n <= MAX_MS && n === Math.floor(n);
}

// The arguments each operation takes as numbers, by position after the
// common ones.
const NUMBERS = {
  create: { 3: 'optional', 5: 'count' },
  update: { 3: 'expected', 4: 'optional', 5: 'expected' },
  delete: {},
  touch: {},
  point: { 2: 'positive' },
  restore: { 2: 'compared' },
  sweep: { 1: 'positive' },
  evict: { 1: 'count' },
};

// The reply of finished operation `op`, if any (and one counted replay).
async function replay(k, op) {
  const done = await k.get('op', op);
  if (done === null) return null;
  await k.hincrby('meta', 'replays', 1);
  if (done === 'aborted') return ['ABORTED', [], []];
  return JSON.parse(done);
}

// ck2_write(ARGV: op name, epoch, operation id, reply ttl ms, stream max
// length, time ('' for the server's), the op's own arguments...).
async function write(k, args) {
  const op = typeof args[0] === 'string' ? ops[args[0]] : undefined;
  if (!op) throw new ReplyError(`unknown contextkit operation ${args[0] ?? 'nil'}`);
  // Every number checked before the first write: a bad one is an error
  // reply and changes nothing.
  let ok = whole(args[3], 'positive') && whole(args[4], 'positive') && whole(args[5], 'optional') && args[6] !== undefined;
  for (const [i, kind] of Object.entries(NUMBERS[args[0]])) ok = ok && whole(args[5 + Number(i)], kind);
  if (!ok) throw new ReplyError(`contextkit: a malformed ${args[0]}`);
  const epoch = await k.hget('meta', 'epoch');
  if (epoch !== args[1]) return ['EPOCH', [epoch ?? ''], []];
  const done = await replay(k, args[2]);
  if (done) return done;
  const w = { k, now: nowMs(k, args[5]), clientClock: args[5] !== '', events: [], maxlen: args[4], counted: false };
  const [status, details] = await op(w, args.slice(6));
  const reply = [status, details, w.events];
  if (w.counted) reply.push(await k.hlen('ids'));
  await k.set('op', args[2], JSON.stringify(reply), k.px(args[3]));
  return reply;
}

// ck2_settle(op key; ARGV: reply ttl ms): for a write whose client got no
// answer. Its own reply if it ran, else { 'ABORTED' } after marking the
// operation so that the write, if it is still on its way, never applies.
async function settle(k, op, args) {
  const done = await replay(k, op);
  if (done) return done;
  if (!whole(args[0], 'positive')) throw new ReplyError('contextkit: a malformed settle');
  await k.set('op', op, 'aborted', k.px(args[0]));
  return ['ABORTED', [], []];
}

// ck2_join(ARGV: new epoch, configuration text). Makes the namespace if it
// does not exist; replies { epoch, configuration, revision }.
async function join(k, args) {
  const m = await k.hmget('meta', 'epoch', 'cfg', 'rev');
  if (m[0] === null) {
    await k.hset('meta', 'epoch', args[0], 'cfg', args[1], 'rev', '0', 'pid', '0');
    return [args[0], args[1], '0'];
  }
  return m;
}

// The record of id if it is live at `now`, without changing anything.
async function liveRecord(k, id, now) {
  if (typeof id !== 'string') throw new LuaError("attempt to concatenate local 'id' (a nil value)");
  const raw = await k.get('c', id);
  if (raw === null) return null;
  const e = /^[0-9]+ [0-9]+ [0-9]+ [0-9]+ ([0-9]*) /.exec(raw)?.[1];
  if (e !== '' && le(luaNumber(e), now)) return null;
  return raw;
}

// ck2_live(ARGV: 'ids' | 'states', time): the live contexts ('states': id,
// record, id, record...).
async function liveAll(k, args) {
  const now = nowMs(k, args[1]);
  const out = [];
  for (const id of await k.hkeys('ids')) {
    const raw = await liveRecord(k, id, now);
    if (raw !== null) {
      out.push(id);
      if (args[0] === 'states') out.push(raw);
    }
  }
  return out;
}

// ck2_count(ARGV: time): how many contexts are live.
async function count(k, args) {
  const now = nowMs(k, args[0]);
  return (await k.hlen('ids')) - (await k.zcount('exp', num(now)));
}

// ck2_get(ARGV: id, time): the record of a live context, else null.
async function get(k, args) {
  return liveRecord(k, args[0], nowMs(k, args[1]));
}

// ck2_points(ARGV: id, time): { 'OK', points } or { 'NOT_FOUND' }.
async function points(k, args) {
  if ((await liveRecord(k, args[0], nowMs(k, args[1]))) === null) return ['NOT_FOUND'];
  return ['OK', await k.lrange('p', args[0])];
}

/**
 * The library's functions by name: whether each writes, and its body
 * `(keys, id, args)`; `id` is the operation id for ck2_settle (its second
 * key), unused by the others (their KEYS are implied by the database).
 */
export const FUNCTIONS = Object.assign(Object.create(null), {
  ck2_write: { writes: true, run: (k, _id, args) => write(k, args) },
  ck2_settle: { writes: true, run: (k, id, args) => settle(k, id, args) },
  ck2_join: { writes: true, run: (k, _id, args) => join(k, args) },
  ck2_live: { writes: false, run: (k, _id, args) => liveAll(k, args) },
  ck2_count: { writes: false, run: (k, _id, args) => count(k, args) },
  ck2_get: { writes: false, run: (k, _id, args) => get(k, args) },
  ck2_points: { writes: false, run: (k, _id, args) => points(k, args) },
  ck2_version: { writes: false, run: async () => LIBRARY_VERSION },
});
