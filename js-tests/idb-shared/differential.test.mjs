// IndexedDBShared (wasm/npm/idb-shared.js, over fake-indexeddb) against the
// real Lua library (native/redis/contextkit.lua in a redis-server of this
// test's own): the same calls on both must get the same replies, leave the
// same event stream and the same keys. Random sequences use the client
// clock (each call passes the time of a fake clock that moves between
// calls, so TTLs run out, sweeps and evictions happen); a failure prints the
// shrunk sequence of calls. In a call, '@now' stands for the clock, '@op'
// for a fresh operation id, '@maxlen' for the sequence's event retention.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import { startRedis } from '../lib/redis-server.mjs';
import { Pair, agree, connect } from './pair.mjs';

const IDS = ['a', 'b', 'ab', '', 'é', '😀', '\uFFFD'];
const CONFIG = '{"clock":"client","maxContexts":4}';

let server;
let client;
let namespaces = 0;
before(async () => {
  server = await startRedis();
  client = await connect(server.url);
});
after(async () => {
  await client?.quit();
  await server?.stop();
});

// ---- random calls ----

// Mostly two ids, so that calls meet; the others test ordering and odd keys.
const id = fc.oneof({ weight: 5, arbitrary: fc.constantFrom('a', 'b') }, { weight: 2, arbitrary: fc.constantFrom(...IDS) });
const ttl = fc.oneof(fc.constant(''), fc.integer({ min: 1, max: 60 }).map(String));
const data = fc.constantFrom('{}', '{"x":1}', '{"s":"é\\n😀"}', '{"n":1e400}');
const metadata = fc.constantFrom('{}', '{"owner":"ada"}');
const small = (min, max) => fc.integer({ min, max }).map(String);
const optional = (arb) => fc.oneof(fc.constant(''), arb);
const op = fc.oneof({ weight: 6, arbitrary: fc.constant('@op') }, { weight: 1, arbitrary: fc.constantFrom('op1', 'op2') });
const epoch = fc.oneof({ weight: 20, arbitrary: fc.constant('E') }, { weight: 1, arbitrary: fc.constant('X') });

const write = (name, rest) =>
  fc.tuple(epoch, op, rest).map(([e, o, r]) => ({ fn: 'ck2_write', args: [name, e, o, '60000', '@maxlen', '@now', ...r] }));

// Refused by the library's own checks (error replies, nothing changed).
const MALFORMED = [
  [],
  ['nope', 'E', '@op', '60000', '@maxlen', '@now', 'a'],
  ['delete', 'E', '@op', '60000', '@maxlen', '@now'],
  ['delete', 'E', '@op', '0', '@maxlen', '@now', 'a'],
  ['delete', 'E', '@op', '60000', '0', '@now', 'a'],
  ['delete', 'E', '@op', '60000', '@maxlen', '0', 'a'],
  ['delete', 'E', '@op', '60000', '@maxlen', 'soon', 'a'],
  ['create', 'E', '@op', '60000', '@maxlen', '@now', 'a', '{}', '-5', '{}', '3'],
  ['create', 'E', '@op', '60000', '@maxlen', '@now', 'a', '{}', '1.5', '{}', '3'],
  ['create', 'E', '@op', '60000', '@maxlen', '@now', 'a', '{}', '4503599627370497', '{}', '3'],
  ['create', 'E', '@op', '60000', '@maxlen', '@now', 'a', '{}', '', '{}', ''],
  ['create', 'E', '@op', '60000', '@maxlen', '@now', 'a', '{}', '', '{}'],
  ['update', 'E', '@op', '60000', '@maxlen', '@now', 'a', '{}', 'x', '', ''],
  ['update', 'E', '@op', '60000', '@maxlen', '@now', 'a', '{}', '', '0', ''],
  ['point', 'E', '@op', '60000', '@maxlen', '@now', 'a', '0'],
  ['point', 'E', '@op', '60000', '@maxlen', '@now', 'a'],
  ['restore', 'E', '@op', '60000', '@maxlen', '@now', 'a', 'nan'],
  ['sweep', 'E', '@op', '60000', '@maxlen', '@now', '0'],
  ['evict', 'E', '@op', '60000', '@maxlen', '@now', '-1'],
  ['evict', 'E', '@op', '60000', '@maxlen', '@now', 'inf'],
];

const writes = fc.oneof(
  { weight: 4, arbitrary: write('create', fc.tuple(id, data, ttl, metadata, fc.oneof(small(0, 4), fc.constant('100')))) },
  { weight: 4, arbitrary: write('update', fc.tuple(id, data, optional(small(0, 5)), ttl, optional(small(1, 30)))) },
  write('delete', fc.tuple(id)),
  write('touch', fc.tuple(id)),
  { weight: 2, arbitrary: write('point', fc.tuple(id, small(1, 3))) },
  { weight: 2, arbitrary: write('restore', fc.tuple(id, small(1, 5))) },
  write('sweep', fc.tuple(small(1, 3))),
  write('evict', fc.tuple(small(0, 4))),
);
const reads = fc.oneof(
  id.map((i) => ({ fn: 'ck2_get', args: [i, '@now'] })),
  id.map((i) => ({ fn: 'ck2_points', args: [i, '@now'] })),
  fc.constantFrom('ids', 'states').map((what) => ({ fn: 'ck2_live', args: [what, '@now'] })),
  fc.constant({ fn: 'ck2_count', args: ['@now'] }),
);
const others = fc.oneof(
  fc.tuple(fc.constantFrom('op1', 'op2', '@op'), fc.constantFrom('60000', '60000', '0', 'x'))
    .map(([o, t]) => ({ fn: 'ck2_settle', id: o, args: [t] })),
  fc.constant({ fn: 'ck2_join', args: ['E2', '{"clock":"client","maxContexts":9}'] }),
  fc.constantFrom(...MALFORMED).map((args) => ({ fn: 'ck2_write', args })),
);
const call = fc
  .tuple(
    fc.oneof({ weight: 6, arbitrary: writes }, { weight: 3, arbitrary: reads }, { weight: 1, arbitrary: others }),
    fc.oneof(fc.constant(0), fc.nat({ max: 20 })),
  )
  .map(([c, dt]) => ({ ...c, dt }));
const sequence = fc.record({
  join: fc.oneof({ weight: 12, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
  maxlen: fc.constantFrom('1000', '3'),
  calls: fc.array(call, { maxLength: 60, size: 'large' }),
});

/** ck2_live's order is Redis's hash order: compared as a set of ids (with their records). */
function normalize(fn, args, o) {
  if (fn !== 'ck2_live' || !Array.isArray(o.reply)) return o;
  const step = args[0] === 'states' ? 2 : 1;
  const items = [];
  for (let i = 0; i < o.reply.length; i += step) items.push(o.reply.slice(i, i + step));
  return { reply: items.sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0)).flat() };
}

/** What a call got, for the coverage checks: "op status" (ck2_write), "fn status" or "fn error". */
function kind(fn, args, { reply, error }) {
  const name = fn === 'ck2_write' ? args[0] ?? 'nil' : fn;
  if (error !== undefined) return `${name} error`;
  if (['ck2_write', 'ck2_settle', 'ck2_points'].includes(fn)) return `${name} ${reply[0]}`;
  return `${name} ${reply === null ? 'null' : 'reply'}`;
}

/**
 * Runs `calls` on a fresh namespace on both sides, checking each reply, then
 * the stream and the keys. Returns what each call got (see kind()).
 */
async function run({ join, maxlen, calls }) {
  const seen = [];
  // The server is this test's own: a clean one per run keeps KEYS cheap.
  await client.sendCommand(['FLUSHALL']);
  const pair = await Pair.open(client, `d${++namespaces}`);
  let clock = 1_000_000;
  let fresh = 0;
  try {
    if (join) assert.ok(agree(await pair.call('ck2_join', null, ['E', CONFIG])));
    for (const [i, c] of calls.entries()) {
      clock += c.dt;
      const opId = `f${++fresh}`;
      const sub = (a) => (a === '@now' ? String(clock) : a === '@op' ? opId : a === '@maxlen' ? maxlen : a);
      const args = c.args.map(sub);
      const o = await pair.call(c.fn, c.id === undefined ? null : sub(c.id), args);
      const both = { redis: normalize(c.fn, args, o.redis), idb: normalize(c.fn, args, o.idb) };
      assert.ok(agree(both), `call ${i}, ${c.fn} ${JSON.stringify(args)} at ${clock}:\n  redis ${JSON.stringify(both.redis)}\n  idb   ${JSON.stringify(both.idb)}`);
      seen.push(kind(c.fn, args, o.redis));
      if (c.fn === 'ck2_write' && o.redis.reply?.[2]?.length) seen.push(...o.redis.reply[2].filter((_, j) => j % 4 === 0).map((t) => `event ${t}`));
    }
    // Redis trims to about maxlen (never below it); IndexedDBShared to exactly maxlen.
    const stream = await pair.stream();
    assert.deepEqual(await pair.shared.events(0, 1_000_000), stream.slice(-Number(maxlen)), 'event streams differ');
    assert.deepEqual(await pair.idbDump(), await pair.redisDump(), 'stored keys differ');
    for (const i of IDS) assert.equal(await pair.shared.get(i), await client.sendCommand(['GET', `${pair.prefix}c:${i}`]), `get('${i}')`);
    const [e, rev] = await client.sendCommand(['HMGET', pair.meta, 'epoch', 'rev']);
    assert.deepEqual(await pair.shared.head(), [e, Number(rev ?? 0)]);
  } finally {
    pair.close();
  }
  return seen;
}

// Every one of these occurs in the random runs (else the generators drifted).
const COVERED = [
  'create OK', 'create ALREADY_EXISTS', 'create CAPACITY_EXCEEDED', 'create EPOCH', 'create ABORTED',
  'update OK', 'update NOT_FOUND', 'update VERSION_CONFLICT', 'delete OK', 'delete NOT_FOUND', 'touch OK', 'touch NOT_FOUND',
  'point OK', 'point NOT_FOUND', 'restore OK', 'restore NOT_FOUND', 'sweep OK', 'evict OK',
  'ck2_settle ABORTED', 'ck2_settle OK', 'ck2_settle error', 'ck2_join reply', 'nil error', 'nope error', 'delete error',
  'ck2_get reply', 'ck2_get null', 'ck2_points OK', 'ck2_points NOT_FOUND', 'ck2_live reply', 'ck2_count reply',
  'event created', 'event updated', 'event deleted', 'event restored', 'event expired', 'event evicted',
];

test('random call sequences get the same replies, events and keys from IndexedDBShared as from the Lua library', { timeout: 600_000 }, async () => {
  const runs = Number(process.env.IDB_DIFF_RUNS ?? 400);
  const seen = new Map();
  await fc.assert(
    fc.asyncProperty(sequence, async (s) => {
      for (const k of await run(s)) seen.set(k, (seen.get(k) ?? 0) + 1);
    }),
    { numRuns: runs, includeErrorInReport: true },
  );
  console.log(`# outcomes: ${[...seen].sort().map(([k, n]) => `${k} ${n}`).join(', ')}`);
  if (runs >= 400) assert.deepEqual(COVERED.filter((k) => !seen.has(k)), [], 'outcomes the random runs never produced');
});

test('a fixed sequence with every operation and outcome gets the same replies, events and keys', async () => {
  const w = (name, ...rest) => ({ fn: 'ck2_write', args: [name, 'E', '@op', '60000', '@maxlen', '@now', ...rest], dt: 1 });
  const calls = [
    w('create', 'a', '{"x":1}', '', '{"owner":"ada"}', '2'),
    w('create', 'a', '{}', '', '{}', '2'),
    w('create', 'b', '{}', '5', '{}', '2'),
    w('create', 'c', '{}', '', '{}', '2'),
    w('update', 'a', '{"x":2}', '1', '', ''),
    w('update', 'a', '{"x":3}', '1', '', ''),
    w('update', 'a', '{"x":3}', '', '', '1'),
    w('update', 'a', '{"x":3}', '2', '30', ''),
    w('point', 'a', '2'), w('point', 'a', '2'), w('point', 'a', '2'),
    { fn: 'ck2_points', args: ['a', '@now'], dt: 0 },
    w('restore', 'a', '2'), w('restore', 'a', '1'),
    w('touch', 'a'),
    { ...w('create', 'c', '{}', '', '{}', '2'), dt: 10 },
    { fn: 'ck2_count', args: ['@now'], dt: 0 },
    w('update', 'a', '{"x":4}', '', '', ''),
    { ...w('touch', 'a'), dt: 40 },
    w('create', 'd', '{}', '3', '{}', '5'),
    { ...w('sweep', '5'), dt: 5 },
    w('create', 'e', '{}', '', '{}', '5'), w('create', 'f', '{}', '', '{}', '5'),
    w('evict', '1'),
    w('delete', 'c'),
    { fn: 'ck2_write', args: ['delete', 'E', 'same', '60000', '@maxlen', '@now', 'f'], dt: 1 },
    { fn: 'ck2_write', args: ['delete', 'E', 'same', '60000', '@maxlen', '@now', 'f'], dt: 1 },
    { fn: 'ck2_settle', id: 'same', args: ['60000'], dt: 1 },
    { fn: 'ck2_settle', id: 'early', args: ['60000'], dt: 1 },
    { fn: 'ck2_write', args: ['create', 'E', 'early', '60000', '@maxlen', '@now', 'g', '{}', '', '{}', '9'], dt: 1 },
    { fn: 'ck2_write', args: ['delete', 'X', '@op', '60000', '@maxlen', '@now', 'a'], dt: 1 },
    { fn: 'ck2_join', args: ['E2', '{}'], dt: 0 },
    { fn: 'ck2_live', args: ['states', '@now'], dt: 0 },
    { fn: 'ck2_version', args: [], dt: 0 },
  ];
  const expected = [
    'create OK', 'event created', 'create ALREADY_EXISTS', 'create OK', 'event created', 'create CAPACITY_EXCEEDED',
    'update OK', 'event updated', 'update VERSION_CONFLICT', 'update VERSION_CONFLICT', 'update OK', 'event updated',
    'point OK', 'point OK', 'point OK', 'ck2_points OK', 'restore OK', 'event restored', 'restore NOT_FOUND', 'touch OK',
    // b expired: the create sweeps it to make room
    'create OK', 'event expired', 'event created', 'ck2_count reply',
    // the update keeps the TTL; the touch meets the expiry
    'update OK', 'event updated', 'touch NOT_FOUND', 'event expired',
    'create OK', 'event created', 'sweep OK', 'event expired', 'create OK', 'event created', 'create OK', 'event created',
    'evict OK', 'event evicted', 'event evicted', 'delete NOT_FOUND',
    // the same operation id twice: replayed, and settled after the fact
    'delete OK', 'event deleted', 'delete OK', 'event deleted', 'ck2_settle OK',
    // settled before it ran: the write never applies
    'ck2_settle ABORTED', 'create ABORTED',
    'delete EPOCH', 'ck2_join reply', 'ck2_live reply', 'ck2_version reply',
  ];
  assert.deepEqual(await run({ join: true, maxlen: '1000', calls }), expected);
  // A short event retention: the log keeps the last 4 entries.
  await run({ join: true, maxlen: '4', calls });
  // Writes before a ck2_join: EPOCH with no epoch.
  assert.deepEqual(await run({ join: false, maxlen: '1000', calls: calls.slice(0, 2) }), ['create EPOCH', 'create EPOCH']);
});

// Arguments the Rust client never sends: numbers in forms Lua's tonumber
// reads (spaces, hex, exponents, leading zeros), missing arguments, odd
// times. Replies must agree, and a call refused changes nothing on either
// side: the library takes numbers in plain decimal digits only, so no Redis
// command inside it can refuse one after its first write.
const ODD = (() => {
  const w = (name, common, ...rest) => ({ fn: 'ck2_write', args: [name, 'E', '@op', ...common, ...rest] });
  const ok = ['60000', '1000', '@now'];
  const r = (fn, ...args) => ({ fn, args });
  return [
    [w('create', ['1e3', '1000', '@now'], 'n', '{}', '', '{}', '9')],
    [w('create', [' 60000', '1000', '@now'], 'n', '{}', '', '{}', '9')],
    [w('create', ['060000', '1000', '@now'], 'n', '{}', '', '{}', '9')],
    [w('create', ['60000', '010', '@now'], 'n', '{}', '', '{}', '9')],
    [w('create', ['60000', '+9', '@now'], 'n', '{}', '', '{}', '9')],
    [w('delete', ['60000', '010', '@now'], 'zz')],
    ...[' 1000100', '0x10', '1e6', '1000100.0', '1000100 ', '0X1P4'].map((t) => [w('create', ['60000', '1000', t], 'n', '{}', '5', '{}', '9')]),
    ...['0x10', ' 5', '5.0', '05', '1e1'].map((ttl) => [w('create', ok, 'n', '{}', ttl, '{}', '9'), w('update', ok, 'n', '{}', '', '', ''), r('ck2_get', 'n', '@now')]),
    ...['1e1', ' 3', '0x0', '2.0'].map((cap) => [w('create', ok, 'n', '{}', '', '{}', cap)]),
    ...[['0x1', '', ''], [' 1', '', ''], ['1.0', '', ''], ['', '', '0x2'], ['', '1e1', ''], ['', '', ' 2']].map((u) => [w('update', ok, 'a', '{}', ...u)]),
    ...['0x2', '2.0', '4503599627370496'].map((keep) => [w('point', ok, 'a', keep), r('ck2_points', 'a', '@now')]),
    ...['01', '1.0', ' 1', '1'].map((pid) => [w('restore', ok, 'a', pid)]),
    [w('sweep', ok, '1e0')], [w('evict', ok, '0x0')], [w('evict', ok, '0.0')],
    [w('update', ok, 'a')], [w('update', ok, 'a', '{}')], [w('update', ok, 'a', '{}', '')], [w('update', ok, 'a', '{}', '', '')],
    [w('update', ok, 'gone')], [w('update', ok, 'gone', '{}', '')],
    [r('ck2_get', 'a', 'abc')], [r('ck2_get', 'a')], [r('ck2_get')], [r('ck2_points')], [r('ck2_points', 'a', 'abc')],
    [r('ck2_count', 'abc')], [r('ck2_count', '1.5')], [r('ck2_count', 'nan')], [r('ck2_count', '-1e300')], [r('ck2_count', '1e300')],
    [r('ck2_live', 'states', 'nan')], [r('ck2_live', 'states', 'abc')], [r('ck2_live')], [r('ck2_live', 'ids', '0x1p60')],
    [r('ck2_join')], [r('ck2_join', 'E3')],
    [{ fn: 'ck2_settle', id: 'z', args: ['1e3'] }], [{ fn: 'ck2_settle', id: 'z', args: [] }],
    [w('create', ok, 'm', '{}', '', '{"a":\n1}', '9'), r('ck2_get', 'm', '@now'), w('update', ok, 'm', '{"b":2}', '', '', ''), r('ck2_live', 'states', '@now')],
    [w('create', ok, 'a\0b', '{"s":"\0"}', '', '{}', '9'), r('ck2_get', 'a\0b', '@now'), r('ck2_live', 'ids', '@now')],
  ];
})();

test('odd arguments get the same replies or errors, and a refused call changes nothing on either side', async () => {
  const w = (name, ...rest) => ({ fn: 'ck2_write', args: [name, 'E', '@op', '60000', '1000', '@now', ...rest] });
  const setup = [w('create', 'a', '{"x":1}', '50', '{}', '9'), w('point', 'a', '3'), w('create', 'b', '{}', '', '{}', '9')];
  for (const calls of ODD) {
    await client.sendCommand(['FLUSHALL']);
    const pair = await Pair.open(client, `o${++namespaces}`);
    let clock = 1_000_000;
    let fresh = 0;
    const sub = (a) => (a === '@now' ? String(clock) : a === '@op' ? `f${++fresh}` : a);
    try {
      assert.ok(agree(await pair.call('ck2_join', null, ['E', CONFIG])));
      for (const c of setup) assert.ok(agree(await pair.call(c.fn, null, c.args.map(sub))));
      clock += 10;
      for (const c of calls) {
        const [redisBefore, idbBefore] = [await pair.redisDump(), await pair.idbDump()];
        const args = c.args.map(sub);
        const raw = await pair.call(c.fn, c.id ?? null, args);
        const o = { redis: normalize(c.fn, args, raw.redis), idb: normalize(c.fn, args, raw.idb) };
        const what = `${c.fn} ${JSON.stringify(args)}:\n  redis ${JSON.stringify(o.redis)}\n  idb   ${JSON.stringify(o.idb)}`;
        assert.ok(agree(o), what);
        if (o.redis.error?.startsWith('ERR ')) {
          assert.deepEqual(await pair.idbDump(), idbBefore, `a failed call changed the database: ${what}`);
          // The library checks every argument before its first write.
          assert.deepEqual(await pair.redisDump(), redisBefore, `a failed call changed Redis: ${what}`);
          // The namespaces differ from here on.
          break;
        }
        assert.deepEqual(await pair.idbDump(), await pair.redisDump(), `stored keys differ after ${what}`);
        assert.deepEqual(await pair.shared.events(0, 1000), await pair.stream(), `streams differ after ${what}`);
      }
    } finally {
      pair.close();
    }
  }
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

test("a write's reply is replayed until its reply ttl runs out (real time), then the operation id is new again", async () => {
  await client.sendCommand(['FLUSHALL']);
  const pair = await Pair.open(client, `r${++namespaces}`);
  try {
    const w = (op, ttl, ...rest) => ['delete', 'E', op, ttl, '1000', '1000000', ...rest];
    const check = async (fn, id, args, status) => {
      const o = await pair.call(fn, id, args);
      assert.ok(agree(o), `${fn} ${JSON.stringify(args)}: ${JSON.stringify(o)}`);
      assert.equal(o.redis.reply[0], status);
    };
    assert.ok(agree(await pair.call('ck2_join', null, ['E', CONFIG])));
    await check('ck2_write', null, ['create', 'E', 'c1', '60000', '1000', '1000000', 'a', '{}', '', '{}', '9'], 'OK');
    await check('ck2_write', null, w('d1', '150', 'a'), 'OK');
    await check('ck2_write', null, w('d1', '150', 'a'), 'OK'); // replayed
    await check('ck2_settle', 'd2', ['150'], 'ABORTED');
    await check('ck2_write', null, ['create', 'E', 'd2', '60000', '1000', '1000000', 'a', '{}', '', '{}', '9'], 'ABORTED');
    await sleep(400);
    await check('ck2_write', null, w('d1', '150', 'a'), 'NOT_FOUND'); // runs again
    await check('ck2_write', null, ['create', 'E', 'd2', '60000', '1000', '1000000', 'a', '{}', '', '{}', '9'], 'OK');
    await check('ck2_settle', 'd3', ['150'], 'ABORTED');
    assert.deepEqual(await pair.idbDump(), await pair.redisDump());
    assert.deepEqual(await pair.shared.events(0, 100), await pair.stream());
  } finally {
    pair.close();
  }
});

/** Times of the real clock (13 digits) as 'T': the two servers' clocks differ by milliseconds. */
function untimed(v) {
  return JSON.parse(JSON.stringify(v).replace(/1[6-9][0-9]{11}/g, 'T'));
}

test("with the server's clock, reads stop seeing a context at its expiry, and its Expired event comes from a sweep", async () => {
  await client.sendCommand(['FLUSHALL']);
  const pair = await Pair.open(client, `s${++namespaces}`);
  try {
    const both = async (fn, id, args) => {
      const o = await pair.call(fn, id, args);
      const u = { redis: untimed(normalize(fn, args, o.redis)), idb: untimed(normalize(fn, args, o.idb)) };
      assert.ok(agree(u), `${fn} ${JSON.stringify(args)}: ${JSON.stringify(o)}`);
      return o.idb.reply;
    };
    const w = (name, ...rest) => ['ck2_write', null, [name, 'E', `${name}-${rest[0]}-${Math.random()}`, '60000', '1000', '', ...rest]];
    const get = async (id) => {
      const [r, i] = [await client.sendCommand(['GET', `${pair.prefix}c:${id}`]), await pair.shared.get(id)];
      assert.equal(untimed(i), untimed(r), `get('${id}')`);
      return i;
    };
    await both('ck2_join', null, ['E', '{"clock":"server"}']);
    for (const id of ['a', 'b', 'é']) await both(...w('create', id, `{"id":"${id}"}`, '', '{}', '9'));
    await both(...w('update', 'a', '{"v":2}', '1', '', ''));
    await both(...w('point', 'b', '2'));
    await both(...w('create', 't', '{}', '150', '{}', '9'));
    await both(...w('point', 't', '2'));
    for (const id of ['a', 'b', 'é', 't', 'none']) assert.equal((await get(id)) === null, id === 'none');
    await sleep(400);
    assert.equal(await get('t'), null);
    assert.equal(await get('a') === null, false);
    assert.equal(await both('ck2_get', null, ['t', '']), null);
    assert.deepEqual(await both('ck2_points', null, ['t', '']), ['NOT_FOUND']);
    assert.equal(await both('ck2_count', null, ['']), 3);
    assert.equal((await both('ck2_live', null, ['ids', ''])).length, 3);
    // Nothing has swept it yet: no Expired event.
    assert.deepEqual(await pair.shared.events(0, 100), await pair.stream());
    assert.equal((await pair.shared.events(0, 100)).some((e) => e[1] === 'expired'), false);
    const swept = await both(...w('sweep', '10'));
    assert.deepEqual(swept.slice(0, 3), ['OK', ['1'], ['expired', 't', '1', '6']]);
    assert.deepEqual(await pair.shared.events(0, 100), await pair.stream());
    assert.deepEqual(untimed(await pair.idbDump()), untimed(await pair.redisDump()));
  } finally {
    pair.close();
  }
});
