// IndexedDBShared's own promises, in Node over fake-indexeddb: events()
// waits for commits of this object and of others (BroadcastChannel), a
// missed nudge loses nothing, close() ends waits, the log keeps `maxlen`
// entries, the database is never an IndexedDBStorage's, and racing
// compare-and-set writers on two connections end exact.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { IDBDatabase, IDBFactory, IDBKeyRange } from 'fake-indexeddb';
import { IndexedDBShared } from '../../wasm/npm/idb-shared.js';

let n = 0;
/** `count` objects on one new database of one factory. */
async function openMany(count, options = {}) {
  const indexedDB = new IDBFactory();
  const name = `t${++n}`;
  const all = [];
  for (let i = 0; i < count; i++) all.push(await IndexedDBShared.open(name, { indexedDB, IDBKeyRange, ...options }));
  await all[0].call('ck2_join', null, ['E', '{"clock":"server"}']);
  return all;
}

const write = (s, name, ...rest) => s.call('ck2_write', null, [name, 'E', `${Math.random()}`, '60000', '1000', '', ...rest]);
const create = (s, id, maxlen = '1000') => s.call('ck2_write', null, ['create', 'E', `${Math.random()}`, '60000', maxlen, '', id, '{}', '', '{}', '1000']);

test("events() waits for a commit of this object or another one, and returns as soon as it comes", async () => {
  const [a, b] = await openMany(2);
  try {
    for (const [writer, who] of [[a, 'itself'], [b, 'another connection']]) {
      const [, rev] = await a.head();
      const t0 = Date.now();
      const waiting = a.events(rev, 10, 5000);
      setTimeout(() => create(writer, `x${rev}`), 50);
      const got = await waiting;
      assert.deepEqual(got, [[rev + 1, 'created', `x${rev}`, 1]], who);
      assert.ok(Date.now() - t0 < 2000, `woken by a commit of ${who} after ${Date.now() - t0} ms`);
    }
  } finally {
    a.close();
    b.close();
  }
});

test('without a nudge (no BroadcastChannel), a wait times out and the next read finds the entries', async () => {
  const [a, b] = await openMany(2, { BroadcastChannel: null });
  try {
    const t0 = Date.now();
    const waiting = a.events(0, 10, 300);
    setTimeout(() => create(b, 'x'), 20);
    assert.deepEqual(await waiting, [[1, 'created', 'x', 1]]);
    assert.ok(Date.now() - t0 >= 290, 'woken without a nudge');
  } finally {
    a.close();
    b.close();
  }
});

test('close() ends a waiting events() with []', async () => {
  const [a] = await openMany(1);
  const waiting = a.events(0, 10, 10_000);
  const t0 = Date.now();
  setTimeout(() => a.close(), 20);
  assert.deepEqual(await waiting, []);
  assert.ok(Date.now() - t0 < 1000);
  await assert.rejects(a.call('ck2_count', null, ['']), /closed/);
});

test('a deleted database ends a waiting events(), and makes the next one not wait', async () => {
  const indexedDB = new IDBFactory();
  const name = `t${++n}`;
  const a = await IndexedDBShared.open(name, { indexedDB, IDBKeyRange });
  await a.call('ck2_join', null, ['E', '{"clock":"server"}']);
  const deleted = () =>
    new Promise((resolve, reject) => {
      const req = indexedDB.deleteDatabase(IndexedDBShared.databaseName(name));
      req.onsuccess = resolve;
      req.onerror = () => reject(req.error);
    });
  try {
    // Deleted while a read waits: the read ends now.
    let t0 = Date.now();
    const waiting = a.events(0, 10, 10_000);
    setTimeout(deleted, 20);
    await waiting;
    assert.ok(Date.now() - t0 < 5000, `a waiting read ended after ${Date.now() - t0} ms`);
    // Deleted while no read waits (the reader was looking at the head): the
    // next read does not wait either, so the reader looks again at once and
    // finds the namespace's epoch gone.
    await a.call('ck2_join', null, ['E2', '{"clock":"server"}']);
    await a.head();
    await deleted();
    t0 = Date.now();
    await a.events(0, 10, 10_000);
    assert.ok(Date.now() - t0 < 5000, `the next read returned after ${Date.now() - t0} ms`);
    assert.deepEqual(await a.head(), [null, 0]);
  } finally {
    a.close();
  }
});

test('the log keeps exactly the last maxlen entries; events() pages by count', async () => {
  const [a] = await openMany(1);
  try {
    for (let i = 1; i <= 7; i++) await create(a, `c${i}`, '3');
    assert.deepEqual((await a.events(0, 100)).map((e) => e[0]), [5, 6, 7]);
    assert.deepEqual((await a.events(5, 1)).map((e) => e[0]), [6]);
    assert.deepEqual(await a.head(), ['E', 7]);
  } finally {
    a.close();
  }
});

test("a shared namespace never opens an IndexedDBStorage's database, nor a database without its marker", async () => {
  const indexedDB = new IDBFactory();
  // An IndexedDBStorage('app') holds database 'app' with store 'contexts'.
  await new Promise((resolve, reject) => {
    const req = indexedDB.open('app');
    req.onupgradeneeded = () => req.result.createObjectStore('contexts');
    req.onsuccess = () => {
      req.result.close();
      resolve();
    };
    req.onerror = () => reject(req.error);
  });
  const s = await IndexedDBShared.open('app', { indexedDB, IDBKeyRange });
  assert.equal(IndexedDBShared.databaseName('app'), 'app:contextkit-shared-2');
  assert.deepEqual(await s.head(), [null, 0]);
  s.close();
  const names = (await indexedDB.databases()).map((d) => d.name).sort();
  assert.deepEqual(names, ['app', 'app:contextkit-shared-2']);
  // Someone else's database under the shared name: refused, not used.
  await new Promise((resolve, reject) => {
    const req = indexedDB.open(IndexedDBShared.databaseName('other'), 1);
    req.onupgradeneeded = () => req.result.createObjectStore('meta');
    req.onsuccess = () => {
      req.result.close();
      resolve();
    };
    req.onerror = () => reject(req.error);
  });
  await assert.rejects(IndexedDBShared.open('other', { indexedDB, IDBKeyRange }), /not a contextkit shared namespace/);
});

test('arguments that are not strings, and unknown functions, are refused before any transaction', async () => {
  const [a] = await openMany(1);
  try {
    await assert.rejects(a.call('ck2_count', null, [1]), TypeError);
    await assert.rejects(a.call('ck2_count', null, 'x'), TypeError);
    await assert.rejects(a.call('ck2_settle', null, ['1000']), TypeError);
    await assert.rejects(a.call('FLUSHALL', null, []), /ERR Function not found/);
    await assert.rejects(a.call('ck2_write', null, ['create']), { name: 'ReplyError', message: 'contextkit: a malformed create' });
  } finally {
    a.close();
  }
});

test('gets made together are read in one transaction, each answering its own id', async () => {
  const [a] = await openMany(1);
  const transaction = IDBDatabase.prototype.transaction;
  let transactions = 0;
  try {
    for (let i = 0; i < 10; i++) await create(a, `k${i}`);
    IDBDatabase.prototype.transaction = function (...args) {
      transactions++;
      return transaction.apply(this, args);
    };
    const ids = Array.from({ length: 12 }, (_, i) => `k${11 - i}`);
    const got = await Promise.all(ids.map((id) => a.get(id)));
    assert.equal(transactions, 1, 'one transaction for the twelve');
    got.forEach((record, k) => {
      const i = 11 - k;
      if (i >= 10) return assert.equal(record, null, ids[k]);
      assert.equal(typeof record, 'string');
    });
    // Each its own record: the same as read alone.
    for (const [k, id] of ids.entries()) assert.equal(got[k], await a.get(id), id);
  } finally {
    IDBDatabase.prototype.transaction = transaction;
    a.close();
  }
});

test('compare-and-set increments racing on 3 connections end exact; one create of an id wins', async () => {
  const all = await openMany(3);
  try {
    const creates = await Promise.all(all.map((s) => create(s, 'counter')));
    assert.equal(creates.filter((r) => r[0] === 'OK').length, 1);
    const PER = 50;
    await Promise.all(
      all.map(async (s) => {
        for (let done = 0; done < PER; ) {
          const record = await s.call('ck2_get', null, ['counter', '']);
          const [version] = record.split(' ');
          const data = JSON.parse(record.slice(record.indexOf('\n', record.indexOf('\n') + 1) + 1));
          const r = await write(s, 'update', 'counter', JSON.stringify({ n: (data.n ?? 0) + 1 }), version, '', '');
          if (r[0] === 'OK') done++;
          else assert.equal(r[0], 'VERSION_CONFLICT', JSON.stringify(r));
        }
      }),
    );
    const record = await all[0].call('ck2_get', null, ['counter', '']);
    assert.ok(record.startsWith(`${1 + 3 * PER} `), record);
    assert.ok(record.endsWith(`{"n":${3 * PER}}`), record);
    const logs = await Promise.all(all.map((s) => s.events(0, 10_000)));
    for (const log of logs) assert.deepEqual(log, logs[0]);
    assert.equal(logs[0].length, 1 + 3 * PER);
  } finally {
    for (const s of all) s.close();
  }
});

test("the shared-transport shape the wasm side expects (redis-backend.cjs): new + open(), namespace and options as properties, KEYS as call's second argument", async () => {
  const indexedDB = new IDBFactory();
  const s = new IndexedDBShared('app', { indexedDB, IDBKeyRange, eventRetention: 50 });
  assert.equal(s.namespace, 'app');
  assert.equal(s.eventRetention, 50);
  assert.equal(s.timeoutMs, undefined);
  await s.open();
  await s.open();
  try {
    const [epoch] = await s.call('ck2_join', ['meta'], ['E', '{"clock":"server"}']);
    const op = 'o1';
    const keys = ['meta', 'ev', 'ids', 'exp', `op:${op}`, 'c:a', 'p:a'];
    const created = await s.call('ck2_write', keys, ['create', epoch, op, '60000', '50', '', 'a', '{}', '', '{}', '9']);
    assert.equal(created[0], 'OK');
    // A settle names its operation by its key.
    assert.deepEqual(await s.call('ck2_settle', ['meta', `op:${op}`], ['60000']), created);
    assert.deepEqual(await s.call('ck2_settle', ['meta', 'op:o2'], ['60000']), ['ABORTED', [], []]);
    assert.equal((await s.call('ck2_write', keys, ['create', epoch, 'o2', '60000', '50', '', 'b', '{}', '', '{}', '9']))[0], 'ABORTED');
    assert.equal(await s.call('ck2_count', ['meta'], ['']), 1);
  } finally {
    s.close();
  }
});

test("a store deleted and made again: every read answers ['EPOCH', null] (the epoch compared when the database opens again)", async () => {
  const indexedDB = new IDBFactory();
  const name = `t${++n}`;
  const a = await IndexedDBShared.open(name, { indexedDB, IDBKeyRange });
  const b = await IndexedDBShared.open(name, { indexedDB, IDBKeyRange });
  try {
    await a.call('ck2_join', null, ['E', '{"clock":"server"}']);
    await create(a, 'EPOCH');
    // A context whose id is the word is read and listed as any other.
    const reads = (s) => Promise.all([s.get('EPOCH'), s.call('ck2_live', null, ['ids', '']), s.call('ck2_count', null, ['']), s.call('ck2_points', null, ['EPOCH', ''])]);
    const [record, ids, count, points] = await reads(a);
    assert.match(record, /^1 1 /);
    assert.deepEqual([ids, count, points], [['EPOCH'], 1, ['OK', []]]);
    // b has not joined: it checks nothing.
    assert.deepEqual((await reads(b)).slice(1), [['EPOCH'], 1, ['OK', []]]);
    await new Promise((resolve, reject) => {
      const req = indexedDB.deleteDatabase(IndexedDBShared.databaseName(name));
      req.onsuccess = resolve;
      req.onerror = () => reject(req.error);
    });
    // Made again by another tab, with the same id in it.
    await b.call('ck2_join', null, ['E2', '{"clock":"server"}']);
    const [made] = await b.call('ck2_write', null, ['create', 'E2', 'op', '60000', '1000', '', 'EPOCH', '{}', '', '{}', '1000']);
    assert.equal(made, 'OK');
    const lost = ['EPOCH', null];
    assert.deepEqual(await reads(a), [lost, lost, lost, lost]);
    assert.deepEqual(await Promise.all([a.get('x'), a.get('EPOCH')]), [lost, lost]);
    assert.deepEqual((await reads(b)).slice(1), [['EPOCH'], 1, ['OK', []]]);
  } finally {
    a.close();
    b.close();
  }
});
