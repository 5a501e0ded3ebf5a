// Shared mode of the npm package over Redis: ContextManager.connect(new
// RedisBackend(...)) against a redis-server of this test's own. Managers in
// one process, several Node processes, and Node and Rust processes on one
// namespace act as one store.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { startRedis } from '../lib/redis-server.mjs';
import { createClient } from 'redis';
import { ContextAdapter, ContextManager, ContextError, pkgDir } from '../test/helpers.mjs';
import { createRequire } from 'node:module';

// The package finds `redis` where it is installed; here it lives in js-tests.
const { RedisBackend: Backend } = createRequire(import.meta.url)(`${pkgDir}/index.cjs`);
class RedisBackend extends Backend {
  constructor(options) {
    super(options && typeof options === 'object' ? { createClient, ...options } : options);
  }
}
const root = fileURLToPath(new URL('../..', import.meta.url));

let redis;
let nsCounter = 0;
const fresh = () => `t${process.pid}-${++nsCounter}`;
const backend = (namespace, extra = {}) => new RedisBackend({ url: redis.url, namespace, ...extra });
const settle = () => new Promise((r) => setTimeout(r, 50));

before(async () => {
  redis = await startRedis();
});
after(async () => {
  await redis?.stop();
});

async function heardThrough(events, revision) {
  const deadline = Date.now() + 5000;
  while ((events.at(-1)?.revision ?? 0) < revision && Date.now() < deadline) await settle();
}

test('two managers on one namespace are one store', async () => {
  const ns = fresh();
  const a = await ContextManager.connect(backend(ns), { maxContexts: 10 });
  const b = await ContextManager.connect(backend(ns), { maxContexts: 10 });
  const heardA = [];
  const heardB = [];
  a.subscribe((e) => heardA.push(e));
  b.subscribe((e) => heardB.push(e));
  try {
    const s = await a.createContext('cart', { items: [1, 2], note: 'é' }, { metadata: { owner: 'x' } });
    assert.equal(s.version, 1);
    assert.deepEqual((await b.getContext('cart')).data, { items: [1, 2], note: 'é' });
    assert.deepEqual((await b.getContext('cart')).metadata, { owner: 'x' });
    await assert.rejects(b.createContext('cart', {}), { code: 'ALREADY_EXISTS' });
    const u = await b.updateContext('cart', { items: [] }, { expectedVersion: 1 });
    assert.equal(u.version, 2);
    assert.ok(u.revision > s.revision);
    await assert.rejects(a.updateContext('cart', { items: [9] }, { expectedVersion: 1 }), (e) => {
      assert.ok(e instanceof ContextError);
      assert.equal(e.code, 'VERSION_CONFLICT');
      return true;
    });
    const p = await a.createRecoveryPoint('cart');
    await b.updateContext('cart', { items: [3] });
    const r = await b.restoreRecoveryPoint('cart', p.id);
    assert.deepEqual(r.data, { items: [] });
    assert.deepEqual((await a.recoveryPoints('cart')).map((x) => x.id), [p.id]);
    await a.deleteContext('cart');
    await assert.rejects(b.getContext('cart'), { code: 'NOT_FOUND' });
    const again = await b.createContext('cart', { items: [] });
    assert.equal(again.version, 1);
    assert.ok(again.revision > r.revision, 'a revision is never reused');
    assert.deepEqual(await a.recoveryPoints('cart'), [], 'delete removed the points');
    const last = (await a.getContext('cart')).revision;
    await heardThrough(heardA, last);
    await heardThrough(heardB, last);
    assert.deepEqual(heardA, heardB, 'every manager hears every change, in one order');
    assert.deepEqual(
      heardA.map((e) => e.type),
      ['created', 'updated', 'updated', 'restored', 'deleted', 'created'],
    );
  } finally {
    a.free();
    b.free();
  }
});

test('data as deep as a manager accepts reads back, from another manager and from a recovery point', async () => {
  const ns = fresh();
  const a = await ContextManager.connect(backend(ns));
  const b = await ContextManager.connect(backend(ns));
  try {
    // The deepest object createContext accepts: one level more is refused.
    let deep = {};
    for (let i = 1; i < 128; i++) deep = { d: deep };
    await assert.rejects(a.createContext('over', { d: deep }), { code: 'INVALID_ARGUMENT' });
    await a.createContext('deep', deep);
    await a.createRecoveryPoint('deep');
    for (const m of [a, b]) {
      assert.deepEqual((await m.getContext('deep')).data, deep);
      assert.deepEqual((await m.recoveryPoints('deep'))[0].data, deep);
    }
  } finally {
    a.free();
    b.free();
  }
});

test('expectedRevision across managers: a revision read before a delete and create elsewhere conflicts', async () => {
  const ns = fresh();
  const a = await ContextManager.connect(backend(ns), {});
  const b = await ContextManager.connect(backend(ns), {});
  try {
    const seen = await a.createContext('doc', { by: 'a' });
    await b.deleteContext('doc');
    const again = await b.createContext('doc', { by: 'b' });
    assert.equal(again.version, seen.version);
    const err = await a.updateContext('doc', { by: 'stale' }, { expectedRevision: seen.revision }).catch((e) => e);
    assert.equal(err.code, 'VERSION_CONFLICT');
    assert.equal(err.expected, seen.revision);
    assert.equal(err.actual, again.revision);
    assert.equal((await a.updateContext('doc', { by: 'a' }, { expectedRevision: again.revision })).version, 2);
    assert.equal((await b.getContext('doc')).data.by, 'a');
  } finally {
    a.free();
    b.free();
  }
});

test('modify, touch and the capacity hold across managers', async () => {
  const ns = fresh();
  const managers = await Promise.all([0, 1, 2, 3].map(() => ContextManager.connect(backend(ns), { maxContexts: 5 })));
  try {
    await managers[0].createContext('n', { n: 0 }, { ttlMs: 60_000 });
    await Promise.all(
      managers.flatMap((m) => Array.from({ length: 10 }, () => m.modifyContext('n', (d) => ({ n: d.n + 1 })))),
    );
    assert.equal((await managers[1].getContext('n')).data.n, 40);
    const before = await managers[2].getContext('n');
    const touched = await managers[3].touchContext('n');
    assert.equal(touched.version, before.version);
    const ids = Array.from({ length: 12 }, (_, i) => `c${i}`);
    const results = await Promise.allSettled(ids.map((id, i) => managers[i % 4].createContext(id, {})));
    assert.equal(results.filter((r) => r.status === 'fulfilled').length, 4, 'exactly the room left');
    for (const r of results) if (r.status === 'rejected') assert.equal(r.reason.code, 'CAPACITY_EXCEEDED');
    assert.equal((await managers[0].listContextIds()).length, 5);
  } finally {
    for (const m of managers) m.free();
  }
});

test('a namespace has one configuration', async () => {
  const ns = fresh();
  const a = await ContextManager.connect(backend(ns), { maxContexts: 10 });
  try {
    await assert.rejects(ContextManager.connect(backend(ns), { maxContexts: 11 }), (e) => {
      assert.equal(e.code, 'INVALID_ARGUMENT');
      assert.match(e.message, /maxContexts is 10 there, 11 here/);
      return true;
    });
  } finally {
    a.free();
  }
});

test('a RedisBackend serves one manager at a time', async () => {
  const ns = fresh();
  const shared = backend(ns);
  // A connect refused before it reached Redis (bad configuration) leaves it free.
  await assert.rejects(ContextManager.connect(shared, { maxContexts: -1 }), { code: 'INVALID_ARGUMENT' });
  shared.maxStaleMs = 'soon';
  await assert.rejects(ContextManager.connect(shared, {}), { code: 'INVALID_ARGUMENT' });
  shared.maxStaleMs = 0.5;
  const a = await ContextManager.connect(shared, {});
  await assert.rejects(ContextManager.connect(shared, {}), {
    code: 'INVALID_ARGUMENT',
    message: /serves a manager already: make a new RedisBackend for each ContextManager\.connect/,
  });
  // The refusal took nothing from the first.
  await a.createContext('x', { n: 1 });
  assert.deepEqual(await a.listContextIds(), ['x']);
  a.free();
  // Once that manager is gone, the object can serve another.
  const deadline = Date.now() + 5000;
  let b;
  while (!b) {
    b = await ContextManager.connect(shared, {}).catch((e) => {
      assert.ok(Date.now() < deadline, `still refused: ${e.message}`);
      return settle();
    });
  }
  assert.equal((await b.getContext('x')).data.n, 1);
  b.free();
});

test('a reader connection still connecting when its manager is freed is let go', async () => {
  // The reader's connection (a duplicate of the first) takes 200 ms to connect.
  const slowReader = (options) => {
    const client = createClient(options);
    const duplicate = client.duplicate.bind(client);
    client.duplicate = (...args) => {
      const copy = duplicate(...args);
      const connect = copy.connect.bind(copy);
      copy.connect = () => new Promise((r) => setTimeout(r, 200)).then(connect);
      return copy;
    };
    return client;
  };
  const raw = createClient({ url: redis.url });
  await raw.connect();
  const connections = async () => (await raw.sendCommand(['CLIENT', 'LIST'])).trim().split('\n').length - 1;
  const before = await connections();
  const reused = new RedisBackend({ url: redis.url, namespace: fresh(), createClient: slowReader });
  try {
    const first = await ContextManager.connect(reused, {});
    first.free();
    let second;
    while (!second) second = await ContextManager.connect(reused, {}).catch(() => settle());
    await new Promise((r) => setTimeout(r, 600));
    assert.equal(await connections(), before + 2, 'the second manager\'s two, nothing of the first');
    second.free();
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(await connections(), before);
  } finally {
    await raw.quit();
  }
});

test('a read of the events that fails for anything but an outage is reported once, and tried again', async () => {
  // XREAD answers something that is not a stream: as a client of another
  // protocol, or a key overwritten by hand, could.
  let broken = true;
  const garbled = (options) => {
    const client = createClient(options);
    const duplicate = client.duplicate.bind(client);
    client.duplicate = (...args) => {
      const copy = duplicate(...args);
      const send = copy.sendCommand.bind(copy);
      copy.sendCommand = (cmd, o) => (broken && cmd[0] === 'XREAD' ? Promise.resolve([['ev', 5]]) : send(cmd, o));
      return copy;
    };
    return client;
  };
  const said = [];
  const consoleError = console.error;
  console.error = (...args) => said.push(args.join(' '));
  const ns = fresh();
  const m = await ContextManager.connect(new RedisBackend({ url: redis.url, namespace: ns, createClient: garbled }), {});
  const heard = [];
  m.subscribe((e) => heard.push(e.type));
  try {
    await m.createContext('a', {});
    const deadline = Date.now() + 5000;
    while (said.length === 0 && Date.now() < deadline) await settle();
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(said.length, 1, said.join('\n'));
    assert.match(said[0], new RegExp(`reading the events of namespace '${ns}' failed, and is tried again; until it works, this manager hears no changes: .*not iterable`));
    // Once it reads again, the events come, in order.
    broken = false;
    await m.updateContext('a', { n: 1 });
    while (heard.length < 2 && Date.now() < deadline + 5000) await settle();
    assert.deepEqual(heard, ['created', 'updated']);
  } finally {
    console.error = consoleError;
    m.free();
  }
});

test('bad backend options are refused at once', () => {
  assert.throws(() => new RedisBackend({ url: 'http://x', namespace: 'a' }), TypeError);
  assert.throws(() => new RedisBackend({ url: redis.url, namespace: 'a{b}' }), TypeError);
  assert.throws(() => new RedisBackend({ url: redis.url, namespace: '' }), TypeError);
  assert.throws(() => new RedisBackend({ url: redis.url, namespace: 'a', timeoutMs: 0 }), RangeError);
  assert.throws(() => new RedisBackend({ url: redis.url, namespace: 'a', maxStaleMs: -1 }), RangeError);
  assert.throws(() => new RedisBackend({ url: redis.url, namespace: 'a', maxStaleMs: '5' }), RangeError);
  assert.throws(() => new RedisBackend(null), TypeError);
  // A misspelt option is named, with the ones there are; every refusal has the code of bad input.
  assert.throws(() => new RedisBackend({ url: redis.url, namespace: 'a', timeout: 5 }), {
    name: 'TypeError',
    code: 'INVALID_ARGUMENT',
    message: /unknown option "timeout"; the options are url, namespace, timeoutMs, /,
  });
  assert.throws(() => new RedisBackend({ url: redis.url, namespace: 'a', timeoutMs: 0 }), { code: 'INVALID_ARGUMENT' });
});

test('maxStaleMs: reads from memory; own writes seen at once, other managers\' once their events arrive, and never later than the bound', async () => {
  const ns = fresh();
  let gets = 0;
  const counting = (options) => {
    const client = createClient(options);
    const send = client.sendCommand.bind(client);
    client.sendCommand = (args, o) => {
      if (args[0] === 'GET') gets++;
      return send(args, o);
    };
    return client;
  };
  const a = await ContextManager.connect(backend(ns, { maxStaleMs: 60_000, createClient: counting }), {});
  const b = await ContextManager.connect(backend(ns), {});
  const seen = async (m, id, n) => {
    const t0 = Date.now();
    for (;;) {
      const s = await m.getContext(id).catch((e) => e);
      if (n === null ? s.code === 'NOT_FOUND' : s.data?.n === n) return Date.now() - t0;
      // Far below the 60 s bound: the event of the change drops the record.
      assert.ok(Date.now() - t0 < 5000, `still ${JSON.stringify(s.data ?? s.code)} after 5 s`);
      await settle();
    }
  };
  try {
    // Once this manager has heard of the create: an event read while a read
    // is on its way keeps that read from being served again.
    const heard = new Promise((resolve) => a.subscribe((e) => e.type === 'created' && resolve()));
    await b.createContext('x', { n: 0 });
    await heard;
    const first = await a.getContext('x');
    first.data.n = 99;
    const again = await a.getContext('x');
    assert.equal(gets, 1, 'the second read came from memory');
    assert.equal(again.data.n, 0, 'a state from memory is a fresh copy');
    assert.notEqual(again, first);
    // This manager's own write: the next read is of the store.
    await a.updateContext('x', { n: 1 });
    assert.equal((await a.getContext('x')).data.n, 1);
    // Another manager's write, and its delete.
    await b.updateContext('x', { n: 2 });
    await seen(a, 'x', 2);
    await b.deleteContext('x');
    await seen(a, 'x', null);
  } finally {
    a.free();
    b.free();
  }
  // A change that brings no event (written around the library): served from
  // memory at most maxStaleMs after the read that found the old record.
  const c = await ContextManager.connect(backend(ns, { maxStaleMs: 300 }), {});
  const raw = createClient({ url: redis.url });
  await raw.connect();
  try {
    await c.createContext('y', { n: 1 });
    await c.getContext('y');
    const key = `ck:{${ns}}:c:y`;
    const record = await raw.get(key);
    await raw.set(key, record.replace('{"n":1}', '{"n":9}'), { KEEPTTL: true });
    await new Promise((r) => setTimeout(r, 350));
    assert.equal((await c.getContext('y')).data.n, 9, 'read again once maxStaleMs passed');
  } finally {
    c.free();
    await raw.quit();
  }
});

test('reads made together go as one MGET, and each answers its own id', async () => {
  const ns = fresh();
  const sent = [];
  const counting = (options) => {
    const client = createClient(options);
    const send = client.sendCommand.bind(client);
    client.sendCommand = (args, o) => {
      if (args[0] === 'GET' || args[0] === 'MGET') sent.push(args.length - 1);
      return send(args, o);
    };
    return client;
  };
  const m = await ContextManager.connect(backend(ns, { createClient: counting }), {});
  const w = await ContextManager.connect(backend(ns), {});
  try {
    for (let i = 0; i < 50; i++) await w.createContext(`k${i}`, { i });
    // 60 reads at once, 10 of ids that are not there, while another manager updates.
    const ids = Array.from({ length: 60 }, (_, i) => `k${(i * 7) % 60}`);
    const writes = Array.from({ length: 20 }, (_, i) => w.updateContext(`k${i}`, { i, n: 1 }));
    const got = await Promise.all(ids.map((id) => m.getContext(id).catch((e) => e)));
    await Promise.all(writes);
    got.forEach((s, k) => {
      const i = Number(ids[k].slice(1));
      if (i >= 50) return assert.equal(s.code, 'NOT_FOUND', ids[k]);
      assert.equal(s.id, ids[k]);
      assert.equal(s.data.i, i, `${ids[k]} answered another id's data`);
    });
    assert.equal(sent.reduce((a, b) => a + b, 0), 60, 'each read sent once');
    assert.ok(sent.length < 60 && Math.max(...sent) > 1, `keys per command: ${sent.join(' ')}`);
    // A read alone is one GET of one key.
    sent.length = 0;
    assert.equal((await m.getContext('k1')).data.i, 1);
    assert.deepEqual(sent, [1]);
  } finally {
    m.free();
    w.free();
  }
});

test('a read reports a flushed store at once, also once another manager made the same id there', async () => {
  const ns = fresh();
  const m = await ContextManager.connect(backend(ns), {});
  const raw = createClient({ url: redis.url });
  await raw.connect();
  let other = null;
  try {
    await m.createContext('a', { by: 'm' });
    await raw.sendCommand(['FLUSHALL']);
    await assert.rejects(m.getContext('a'), (e) => e.code === 'STORAGE' && /lost its data/.test(e.message));
    // From then on every call says so: a list too, which does not read the epoch itself.
    await assert.rejects(m.listContextIds(), (e) => e.code === 'STORAGE' && /lost its data/.test(e.message));
    other = await ContextManager.connect(backend(ns), {});
    await other.createContext('a', { by: 'other' });
    const reads = await Promise.all(Array.from({ length: 8 }, () => m.getContext('a').catch((e) => e)));
    for (const e of reads) assert.match(String(e.message), /lost its data/);
    assert.equal((await other.getContext('a')).data.by, 'other');
  } finally {
    m.free();
    other?.free();
    await raw.quit();
  }
});

// Every read of the library checks the namespace's epoch too: a list, a
// count or the recovery points read first after a FLUSHALL report the loss,
// and a context whose id is the word the backend answers then is listed as
// any other.
test('a list, count or recovery points read first reports a flushed store', async () => {
  const ns = fresh();
  const raw = createClient({ url: redis.url });
  await raw.connect();
  const made = [];
  const make = async () => {
    const m = await ContextManager.connect(backend(ns), {});
    made.push(m);
    await m.createContext('EPOCH', {});
    await m.createRecoveryPoint('EPOCH');
    return m;
  };
  try {
    const first = await make();
    assert.deepEqual(await first.listContextIds(), ['EPOCH']);
    assert.equal((await first.recoveryPoints('EPOCH')).length, 1);
    const reads = [(m) => m.listContextIds(), (m) => m.len(), (m) => m.recoveryPoints('EPOCH')];
    for (const read of reads) {
      const m = await ContextManager.connect(backend(ns), {});
      made.push(m);
      assert.equal(await m.len(), 1);
      await raw.sendCommand(['FLUSHALL']);
      await assert.rejects(read(m), (e) => e.code === 'STORAGE' && /lost its data/.test(e.message), String(read));
      await assert.rejects(m.getContext('EPOCH'), (e) => e.code === 'STORAGE' && /lost its data/.test(e.message));
      await make();
    }
  } finally {
    for (const m of made) m.free();
    await raw.quit();
  }
});

// A library that Redis lost while the data stayed (FUNCTION DELETE, or a
// FUNCTION FLUSH) is loaded again by the next call: a read that checks the
// epoch too, and a write.
test('reads and writes load a lost library again, and answer from the data that stayed', async () => {
  const ns = fresh();
  const m = await ContextManager.connect(backend(ns), {});
  const raw = createClient({ url: redis.url });
  await raw.connect();
  try {
    await m.createContext('a', { n: 1 });
    for (const read of [() => m.listContextIds(), () => m.len(), () => m.recoveryPoints('a')]) {
      await raw.sendCommand(['FUNCTION', 'DELETE', 'contextkit_2']);
      await read();
    }
    assert.deepEqual(await m.listContextIds(), ['a']);
    await raw.sendCommand(['FUNCTION', 'DELETE', 'contextkit_2']);
    assert.equal((await m.updateContext('a', { n: 2 })).version, 2);
    assert.equal(await m.len(), 1);
  } finally {
    m.free();
    await raw.quit();
  }
});

test('ContextManager.connect refuses what is not a backend', async () => {
  await assert.rejects(ContextManager.connect({}, {}), { code: 'INVALID_ARGUMENT' });
  await assert.rejects(ContextManager.connect(null, {}), { code: 'INVALID_ARGUMENT' });
  // A default TTL no create in a shared namespace could take.
  await assert.rejects(ContextManager.connect(backend(fresh()), { defaultTtlMs: 2 ** 53 - 1 }), {
    code: 'INVALID_ARGUMENT',
    message: /a TTL of 9007199254740991 ms; a shared namespace takes at most 4503599627370496/,
  });
  // A plain object: the method it lacks is named.
  await assert.rejects(ContextManager.connect({ namespace: 'x' }, {}), {
    code: 'INVALID_ARGUMENT',
    message: /the backend has no open\(\) method/,
  });
  // A transport whose calls resolve to nonsense: STORAGE, no panic.
  const odd = { namespace: 'x', open: async () => {}, call: async () => ({ x: 1 }) };
  await assert.rejects(ContextManager.connect(odd, {}), { code: 'STORAGE' });
  for (const maxStaleMs of ['5', -1, Number.NaN, 86_400_001, null]) {
    await assert.rejects(ContextManager.connect({ namespace: 'x', maxStaleMs }, {}), {
      code: 'INVALID_ARGUMENT',
      message: /backend\.maxStaleMs must be a number of milliseconds from 0 to 86400000/,
    });
  }
});

test('a refused first connection fails at once, and its message shows no password', async () => {
  const gone = await startRedis();
  await gone.stop();
  const url = gone.url.replace('redis://', 'redis://user:secret@');
  const t0 = Date.now();
  const err = await ContextManager.connect(new RedisBackend({ url, namespace: 'refused', timeoutMs: 10_000 }), {}).catch((e) => e);
  assert.equal(err.code, 'STORAGE');
  assert.match(err.message, /could not connect to redis:\/\/user:\*\*\*@127\.0\.0\.1:\d+: .*ECONNREFUSED/);
  assert.doesNotMatch(err.message, /secret/);
  assert.ok(Date.now() - t0 < 5000, `took ${Date.now() - t0} ms of a 10 s timeout`);
});

test('a RedisBackend used again, after its manager was freed, fails at once too when refused', async () => {
  const own = await startRedis();
  const reused = new RedisBackend({ url: own.url, namespace: 'reused', timeoutMs: 10_000 });
  const m = await ContextManager.connect(reused, {});
  m.free();
  await own.stop();
  const t0 = Date.now();
  let err;
  while (!err || /serves a manager already/.test(err.message)) {
    err = await ContextManager.connect(reused, {}).then(
      (other) => other.free(),
      (e) => e,
    );
    if (/serves a manager already/.test(err?.message)) await settle();
  }
  assert.equal(err.code, 'STORAGE');
  assert.match(err.message, /ECONNREFUSED/);
  assert.ok(Date.now() - t0 < 5000, `took ${Date.now() - t0} ms of a 10 s timeout`);
});

test('Redis down gives STORAGE within the timeout, and the manager works again when it is back', async () => {
  const own = await startRedis();
  const said = [];
  const consoleError = console.error;
  try {
    const m = await ContextManager.connect(new RedisBackend({ url: own.url, namespace: 'down', timeoutMs: 300 }), {});
    try {
      await m.createContext('a', { n: 1 });
      await own.kill();
      // An outage is not reported on the console: every call says it.
      console.error = (...args) => said.push(args.join(' '));
      const t0 = Date.now();
      await assert.rejects(m.getContext('a'), { code: 'STORAGE' });
      assert.ok(Date.now() - t0 < 5000, 'a dead server fails fast');
      // Lists, counts and sweeps too: an empty store and a dead one differ.
      const adapter = new ContextAdapter(m, {});
      for (const call of [
        () => m.listContextIds(),
        () => m.len(),
        () => m.cleanupExpired(),
        () => adapter.listContexts(),
        () => adapter.cleanupExpiredContexts(),
      ]) {
        await assert.rejects(call(), { code: 'STORAGE' });
      }
      adapter.free();
      await own.restart();
      // Without persistence the namespace is gone: detected, not papered over.
      let last;
      for (let i = 0; i < 50; i++) {
        try {
          await m.createContext('b', {});
          last = null;
          break;
        } catch (e) {
          last = e;
          await settle();
        }
      }
      assert.deepEqual(said, [], 'nothing on the console during the outage');
      assert.ok(last, 'a write to a namespace that lost its data must fail');
      assert.equal(last.code, 'STORAGE');
      assert.match(last.message, /lost its data/);
    } finally {
      m.free();
    }
  } finally {
    console.error = consoleError;
    await own.stop();
  }
});

test('a server that stops answering holds no call longer than the timeout (and the settle bound for a write)', async () => {
  const own = await startRedis();
  const raw = createClient({ url: own.url });
  await raw.connect();
  try {
    const m = await ContextManager.connect(new RedisBackend({ url: own.url, namespace: 'stalled', timeoutMs: 500 }), {});
    try {
      await m.createContext('a', { n: 1 });
      // Commands already sent get no answer for 4 s.
      await raw.sendCommand(['CLIENT', 'PAUSE', '4000', 'ALL']);
      let t0 = Date.now();
      await assert.rejects(m.getContext('a'), { code: 'STORAGE', message: /no answer within 500 ms/ });
      const read = Date.now() - t0;
      t0 = Date.now();
      await assert.rejects(m.updateContext('a', { n: 2 }), { code: 'STORAGE', message: /outcome unknown/ });
      const write = Date.now() - t0;
      assert.ok(read < 2000, `a read waited ${read} ms (timeout 500 ms)`);
      assert.ok(write < 3000, `a write waited ${write} ms (timeout 500 ms, then at most 500 ms to settle)`);
      // Once the server answers again, so does the manager (the write above
      // may have applied: either version).
      await new Promise((r) => setTimeout(r, 4000 - read - write));
      let s;
      for (let i = 0; i < 100 && !s; i++) {
        s = await m.getContext('a').catch(() => settle());
      }
      assert.ok(s && [1, 2].includes(s.version), `after the pause: ${s?.version}`);
    } finally {
      m.free();
    }
  } finally {
    await raw.quit().catch(() => {});
    await own.stop();
  }
});

/** A RedisBackend whose next write's answer is lost: `ran` says whether the write reached Redis first. */
class LosingBackend extends RedisBackend {
  lose = null;
  async call(fn, keys, args) {
    const lose = fn === 'ck2_write' ? this.lose : null;
    if (!lose) return super.call(fn, keys, args);
    this.lose = null;
    if (lose.ran) await super.call(fn, keys, args);
    const e = new Error('the connection dropped before the answer');
    e.outcomeUnknown = true;
    throw e;
  }
}

test('a write whose answer is lost is settled exactly: applied once, or not at all', async () => {
  const ns = fresh();
  const b = new LosingBackend({ url: redis.url, namespace: ns });
  const m = await ContextManager.connect(b, {});
  const other = await ContextManager.connect(backend(ns), {});
  try {
    await m.createContext('n', { n: 0 });
    // It ran, its answer was lost: the settle replays its own reply.
    b.lose = { ran: true };
    const s = await m.updateContext('n', { n: 1 }, { expectedVersion: 1 });
    assert.equal(s.version, 2);
    assert.equal((await other.getContext('n')).version, 2, 'applied once');
    // It never reached Redis: the settle marks it, and the call says so.
    b.lose = { ran: false };
    await assert.rejects(m.updateContext('n', { n: 2 }, { expectedVersion: 2 }), (e) => {
      assert.equal(e.code, 'STORAGE');
      assert.match(e.message, /not applied/);
      return true;
    });
    const now = await other.getContext('n');
    assert.equal(now.version, 2);
    assert.deepEqual(now.data, { n: 1 });
    // The manager goes on.
    assert.equal((await m.updateContext('n', { n: 2 }, { expectedVersion: 2 })).version, 3);
  } finally {
    m.free();
    other.free();
  }
});

test('a connection that cannot be made fails with STORAGE', async () => {
  const t0 = Date.now();
  await assert.rejects(
    ContextManager.connect(new RedisBackend({ url: 'redis://127.0.0.1:1', namespace: 'x', timeoutMs: 300 }), {}),
    { code: 'STORAGE' },
  );
  assert.ok(Date.now() - t0 < 5000);
});

/** A worker process speaking the protocol of js-tests/shared/worker.mjs. */
function worker(cmd, args) {
  const child = spawn(cmd[0], [...cmd.slice(1), ...args], { cwd: root, stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout });
  const queue = [];
  const waiting = [];
  lines.on('line', (l) => (waiting.length ? waiting.shift()(l) : queue.push(l)));
  const exited = new Promise((r) => child.once('exit', r));
  return {
    next: () =>
      queue.length
        ? Promise.resolve(queue.shift())
        : Promise.race([
            new Promise((r) => waiting.push(r)),
            exited.then((code) => Promise.reject(new Error(`worker ${cmd.join(' ')} exited with ${code}`))),
          ]),
    send: (l) => child.stdin.write(`${l}\n`),
    kill: () => child.kill('SIGKILL'),
    exited,
  };
}

const NODE = [process.execPath, 'js-tests/shared/worker.mjs'];
const RUST = ['cargo', 'run', '-q', '-p', 'contextkit', '--features', 'redis', '--example', 'shared_worker', '--'];

async function race(kinds, increments, slots) {
  const ns = fresh();
  const room = 5;
  const setup = await ContextManager.connect(backend(ns), { maxContexts: room + 1 });
  await setup.createContext('counter', { n: 0 });
  const workers = kinds.map((cmd) => worker(cmd, [redis.url, ns, String(room + 1), String(increments), String(slots)]));
  try {
    for (const w of workers) assert.equal(await w.next(), 'ready');
    for (const w of workers) w.send('go');
    const done = [];
    for (const w of workers) done.push(JSON.parse(await w.next()).done);
    const final = await setup.getContext('counter');
    assert.equal(final.data.n, kinds.length * increments, 'no compare-and-set increment is lost');
    assert.equal(done.reduce((s, d) => s + d.created, 0), room, 'exactly the room left is created');
    for (const d of done) assert.equal(d.created + d.exists + d.full, slots);
    const ids = await Promise.all((await setup.listContextIds()).map((id) => setup.getContext(id)));
    assert.equal(ids.length, room + 1);
    const last = Math.max(...ids.map((s) => s.revision));
    for (const w of workers) w.send(String(last));
    const logs = [];
    for (const w of workers) logs.push(JSON.parse(await w.next()).events);
    for (const log of logs.slice(1)) assert.deepEqual(log, logs[0], 'every process hears one sequence');
    const updates = logs[0].filter(([t, id]) => t === 'updated' && id === 'counter').length;
    assert.equal(updates, kinds.length * increments);
    assert.equal(logs[0].filter(([t]) => t === 'created').length, room);
    // Revisions strictly increase, with no gap (one commit, one revision).
    logs[0].forEach(([, , , r], i) => i && assert.equal(r, logs[0][i - 1][3] + 1));
    await Promise.all(workers.map((w) => w.exited));
  } finally {
    for (const w of workers) w.kill();
    setup.free();
  }
}

test('four Node processes race creates at capacity and compare-and-set increments', { timeout: 120_000 }, async () => {
  await race([NODE, NODE, NODE, NODE], 30, 8);
});

test('Rust and Node processes on one namespace are one store', { timeout: 600_000 }, async () => {
  await race([NODE, RUST, NODE, RUST], 30, 8);
});
