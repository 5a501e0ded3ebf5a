// ContextManager.open(new IndexedDBStorage(name)) in Node over an IndexedDB
// polyfill (fake-indexeddb): shared mode, as in browsers (js-tests/browser/
// tabs.test.mjs races tabs in Chromium). Managers of one name are one store;
// names map to namespaces one to one; what owned mode left is reported;
// without Web Locks (Node 20) every auto-cleanup timer sweeps.
import 'fake-indexeddb/auto';
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ContextAdapter, ContextManager, IndexedDBStorage, MemoryStorage, rejectsWith } from './helpers.mjs';

const open = async (...args) => {
  const opened = await ContextManager.open(new IndexedDBStorage(...args));
  assert.deepEqual(Object.keys(opened).sort(), ['manager', 'problems']);
  assert.deepEqual(opened.problems, []);
  return opened.manager;
};

const until = async (what, ms = 5000) => {
  const t0 = Date.now();
  while (!what()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
};

test('managers opened on one IndexedDBStorage name are one store, with each other\'s events', async () => {
  const a = await open('one');
  const b = await open('one');
  const events = [];
  b.subscribe((e) => events.push([e.type, e.id, e.version, e.revision]));
  const s = await a.createContext('x', { n: 1 });
  await rejectsWith(b.createContext('x', { n: 2 }), 'ALREADY_EXISTS');
  assert.deepEqual((await b.getContext('x')).data, { n: 1 });
  await b.updateContext('x', { n: 2 }, { expectedVersion: s.version });
  await rejectsWith(a.updateContext('x', { n: 3 }, { expectedVersion: s.version }), 'VERSION_CONFLICT');
  await a.deleteContext('x');
  await until(() => events.length === 3);
  assert.deepEqual(events, [['created', 'x', 1, 1], ['updated', 'x', 2, 2], ['deleted', 'x', 2, 3]]);
  a.free();
  b.free();
});

test('each database and object store name pair is a namespace of its own', async () => {
  const pairs = [['ns'], ['ns', 's'], ['ns/s'], ['ns', 'contexts'], ['ns%2Fs'], ['n', 's/s']];
  const managers = [];
  for (const [i, pair] of pairs.entries()) {
    const m = await open(...pair);
    managers.push(m);
    // ['ns'] and ['ns', 'contexts'] are one store: the default object store.
    if (i === 3) await rejectsWith(m.createContext('x', { i }), 'ALREADY_EXISTS');
    else await m.createContext('x', { i });
  }
  assert.deepEqual(await Promise.all(managers.map(async (m) => (await m.getContext('x')).data.i)), [0, 1, 2, 0, 4, 5]);
  const names = (await indexedDB.databases()).map((d) => d.name).filter((n) => n.startsWith('n')).sort();
  assert.deepEqual(names, ['n/s%2Fs', 'ns', 'ns%252Fs', 'ns%2Fs', 'ns/s'].map((n) => `${n}:contextkit-shared-2`).sort());
  for (const m of managers) m.free();
});

test('a namespace keeps its configuration: another is INVALID_ARGUMENT; a bad config too', async () => {
  const m = (await ContextManager.open(new IndexedDBStorage('configured'), { maxContexts: 2 })).manager;
  await rejectsWith(ContextManager.open(new IndexedDBStorage('configured'), { maxContexts: 3 }), 'INVALID_ARGUMENT');
  await rejectsWith(ContextManager.open(new IndexedDBStorage('configured'), { maxContexts: 'many' }), 'INVALID_ARGUMENT');
  const again = (await ContextManager.open(new IndexedDBStorage('configured'), { maxContexts: 2 })).manager;
  await m.createContext('a', {});
  await again.createContext('b', {});
  await rejectsWith(m.createContext('c', {}), 'CAPACITY_EXCEEDED');
  m.free();
  again.free();
});

test('a database of the shared name that is not a shared namespace fails open with STORAGE naming it', async () => {
  await new Promise((resolve, reject) => {
    const req = indexedDB.open('taken:contextkit-shared-2', 1);
    req.onupgradeneeded = () => req.result.createObjectStore('other');
    req.onsuccess = () => {
      req.result.close();
      resolve();
    };
    req.onerror = () => reject(req.error);
  });
  const e = await rejectsWith(ContextManager.open(new IndexedDBStorage('taken')), 'STORAGE');
  assert.match(e.message, /^ContextManager\.open: IndexedDB database 'taken:contextkit-shared-2' is not a contextkit shared namespace/);
});

test('contexts owned mode left in the storage\'s own database are reported, not loaded', async () => {
  const storage = new IndexedDBStorage('left', 'kept');
  // Owned mode, as open used an IndexedDBStorage before: a plain object over its methods.
  const owned = { get: (k) => storage.get(k), put: (k, v) => storage.put(k, v), delete: (k) => storage.delete(k), list: () => storage.list() };
  const old = (await ContextManager.open(owned)).manager;
  await old.createContext('a', {});
  await old.createContext('b', {});
  old.free();
  const { manager, problems } = await ContextManager.open(storage);
  assert.equal(problems.length, 1);
  assert.equal(problems[0].code, 'STORAGE');
  assert.match(problems[0].message, /^IndexedDB database 'left', object store 'kept', holds 2 contexts in owned mode .* in database 'left\/kept:contextkit-shared-2'/);
  assert.deepEqual(await manager.listContextIds(), []);
  // Another object store of that database left nothing.
  const other = await ContextManager.open(new IndexedDBStorage('left'));
  assert.deepEqual(other.problems, []);
  other.manager.free();
  manager.free();
});

test('without Web Locks every auto-cleanup timer sweeps (each expiry once); other storages stay owned', async () => {
  assert.equal(globalThis.navigator?.locks, undefined);
  const a = await open('sweep');
  const b = await open('sweep');
  const events = [];
  a.subscribe((e) => events.push([e.type, e.id]));
  a.startAutoCleanup(10);
  const adapter = new ContextAdapter(b, { autoCleanup: false, cleanupIntervalMs: 10 });
  adapter.startAutoCleanup();
  await b.createContext('t', {}, { ttlMs: 30 });
  await until(() => events.length === 2);
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(events, [['created', 't'], ['expired', 't']]);
  assert.throws(() => a.startAutoCleanup(0), /interval/);
  a.stopAutoCleanup();
  adapter.free();
  a.free();
  b.free();
  // Any other storage object is owned mode, as before.
  const memory = new MemoryStorage();
  const owned = (await ContextManager.open(memory)).manager;
  await owned.createContext('m', {});
  assert.ok(memory.size > 0);
  owned.free();
});

test('maxStaleMs: gets served from memory, forgotten at every commit here or elsewhere, never older than the bound', async () => {
  // Counts the transactions that read a record (what a get costs without the cache).
  const proto = globalThis.IDBDatabase.prototype;
  const transaction = proto.transaction;
  let reads = 0;
  proto.transaction = function (stores, ...rest) {
    if (stores === 'contexts') reads++;
    return transaction.call(this, stores, ...rest);
  };
  const a = (await ContextManager.open(new IndexedDBStorage('cached', { maxStaleMs: 60_000 }))).manager;
  const b = await open('cached');
  const c = (await ContextManager.open(new IndexedDBStorage('cached', 'contexts', { maxStaleMs: 50 }))).manager;
  try {
    assert.throws(() => new IndexedDBStorage('x', { maxStaleMs: -1 }), RangeError);
    await a.createContext('x', { n: 1 });
    await a.getContext('x');
    const before = reads;
    for (let i = 0; i < 20; i++) assert.equal((await a.getContext('x')).data.n, 1);
    assert.equal(reads, before, 'served from memory');
    // Its own write: seen at once.
    await a.updateContext('x', { n: 2 });
    assert.equal((await a.getContext('x')).data.n, 2);
    // Another manager's write: seen once its notice arrives.
    await b.updateContext('x', { n: 3 });
    let seen;
    for (let i = 0; i < 200 && seen !== 3; i++) {
      seen = (await a.getContext('x')).data.n;
      if (seen !== 3) await new Promise((r) => setTimeout(r, 5));
    }
    assert.equal(seen, 3, "another manager's commit empties the memory");
    // Never older than the bound: after 50 ms the record is read again.
    await c.getContext('x');
    const t = reads;
    await c.getContext('x');
    assert.equal(reads, t);
    await new Promise((r) => setTimeout(r, 80));
    await c.getContext('x');
    assert.equal(reads, t + 1, 'read again past maxStaleMs');
    // A delete is seen too.
    await a.deleteContext('x');
    await rejectsWith(a.getContext('x'), 'NOT_FOUND');
  } finally {
    proto.transaction = transaction;
    a.free();
    b.free();
    c.free();
  }
});

test('an idle shared manager waits for commits instead of polling, and free() ends its wait at once', async () => {
  const { IndexedDBShared } = await import('../../wasm/npm/idb-shared.js');
  const transport = await IndexedDBShared.open('idle');
  assert.equal(transport.eventWaitMs, 30_000, 'every commit wakes a waiting read: it may wait long');
  const calls = { head: 0, events: 0 };
  let closed;
  const close = new Promise((resolve) => {
    closed = resolve;
  });
  // The transport, with its calls counted.
  const counted = new Proxy(transport, {
    get(target, key) {
      const v = Reflect.get(target, key);
      if (typeof v !== 'function') return v;
      return (...args) => {
        if (key in calls) calls[key]++;
        if (key === 'close') closed();
        return v.apply(target, args);
      };
    },
  });
  const m = await ContextManager.connect(counted, {});
  const other = await ContextManager.connect(await IndexedDBShared.open('idle'), {});
  const events = [];
  m.subscribe((e) => events.push([e.type, e.id]));
  await new Promise((r) => setTimeout(r, 1500));
  // One look at the namespace, then one read that waits (it was one every second).
  assert.deepEqual(calls, { head: 1, events: 1 });
  // A commit elsewhere ends the wait.
  await other.createContext('x', {});
  await until(() => events.length === 1);
  assert.deepEqual(events, [['created', 'x']]);
  // free() ends the read's wait: the transport closes now, not when it runs out.
  m.free();
  other.free();
  let timer;
  const late = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error('the transport closed only when its wait ran out')), 5000);
  });
  await Promise.race([close, late]);
  clearTimeout(timer);
});

test('a store deleted under a manager is reported as lost by its next read, and on every call after', async () => {
  const m = await open('wiped');
  await m.createContext('x', { n: 1 });
  await new Promise((resolve, reject) => {
    const req = indexedDB.deleteDatabase('wiped:contextkit-shared-2');
    req.onsuccess = resolve;
    req.onerror = () => reject(req.error);
  });
  // Another tab made the store again, with the same id in it.
  const other = await open('wiped');
  await other.createContext('x', { n: 2 });
  for (const read of [() => m.listContextIds(), () => m.getContext('x'), () => m.len()]) {
    await assert.rejects(read(), (e) => e.code === 'STORAGE' && /lost its data/.test(e.message));
  }
  assert.deepEqual((await other.getContext('x')).data, { n: 2 });
  m.free();
  other.free();
});
