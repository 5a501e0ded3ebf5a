// ContextManager: every method and the error codes it can give.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ContextAdapter, ContextManager, ContextError, ContextTracker, rejectsWith, sleep } from './helpers.mjs';

test('createContext returns version 1 with data, times and metadata', async () => {
  const m = new ContextManager();
  const before = Date.now();
  const s = await m.createContext('a', { x: 1, nested: { list: [1, 'two', null, true] } }, {
    metadata: { owner: 'ada' },
  });
  assert.equal(s.id, 'a');
  assert.equal(s.version, 1);
  assert.deepEqual(s.data, { x: 1, nested: { list: [1, 'two', null, true] } });
  assert.deepEqual(s.metadata, { owner: 'ada' });
  assert.equal(s.expiresAtMs, null);
  assert.ok(s.createdAtMs >= before && s.createdAtMs <= Date.now());
  assert.equal(s.updatedAtMs, s.createdAtMs);
  assert.deepEqual(Object.keys(s).sort(), ['createdAtMs', 'data', 'expiresAtMs', 'id', 'metadata', 'revision', 'updatedAtMs', 'version']);
});

test('revision: store-wide, strictly increasing, never reused after delete and re-create', async () => {
  const m = new ContextManager();
  const a1 = await m.createContext('a', {});
  const b1 = await m.createContext('b', {});
  const a2 = await m.updateContext('a', { n: 1 });
  await m.createRecoveryPoint('a'); // changes nothing: no revision
  assert.equal((await m.getContext('a')).revision, a2.revision);
  await m.deleteContext('a');
  const again = await m.createContext('a', {});
  assert.deepEqual([a1.revision, b1.revision, a2.revision, again.revision], [1, 2, 3, 5]);
  assert.equal(again.version, a1.version);
  assert.equal((await m.getContext('b')).revision, b1.revision);
});

test('createContext never overwrites: ALREADY_EXISTS', async () => {
  const m = new ContextManager();
  await m.createContext('a', { v: 1 });
  await rejectsWith(m.createContext('a', { v: 2 }), 'ALREADY_EXISTS');
  assert.deepEqual((await m.getContext('a')).data, { v: 1 });
});

test('createContext at maxContexts: CAPACITY_EXCEEDED', async () => {
  const m = new ContextManager({ maxContexts: 2 });
  await m.createContext('a', {});
  await m.createContext('b', {});
  await rejectsWith(m.createContext('c', {}), 'CAPACITY_EXCEEDED');
  await m.deleteContext('a');
  await m.createContext('c', {});
  assert.deepEqual(await m.listContextIds(), ['b', 'c']);
});

test('getContext of a missing id: NOT_FOUND', async () => {
  const m = new ContextManager();
  await rejectsWith(m.getContext('nope'), 'NOT_FOUND');
});

test('getContext returns a fresh copy each time', async () => {
  const m = new ContextManager();
  await m.createContext('a', { list: [1] });
  const one = await m.getContext('a');
  one.data.list.push(2);
  assert.deepEqual((await m.getContext('a')).data, { list: [1] });
});

test('updateContext bumps the version; expectedVersion is a compare-and-set', async () => {
  const m = new ContextManager();
  const s1 = await m.createContext('a', { x: 1 });
  const s2 = await m.updateContext('a', { x: 2 }, { expectedVersion: s1.version });
  assert.equal(s2.version, 2);
  assert.deepEqual(s2.data, { x: 2 });
  assert.ok(s2.updatedAtMs >= s1.updatedAtMs);
  assert.equal(s2.createdAtMs, s1.createdAtMs);
  const err = await rejectsWith(m.updateContext('a', { x: 3 }, { expectedVersion: 1 }), 'VERSION_CONFLICT');
  assert.equal(err.expected, 1);
  assert.equal(err.actual, 2);
  assert.match(err.message, /expected 1, found 2/);
  const s3 = await m.updateContext('a', { x: 3 });
  assert.equal(s3.version, 3);
  assert.equal(m.stats().conflicts, 1);
});

test('updateContext with expectedRevision: a compare-and-set that a delete and a create of the id cannot fool', async () => {
  const m = new ContextManager();
  const seen = await m.createContext('a', { owner: 'ann' });
  await m.deleteContext('a');
  const again = await m.createContext('a', { owner: 'bob' });
  assert.equal(again.version, seen.version, 'the version repeats');
  // expectedVersion would take the stale read for the new context; the revision does not.
  const err = await rejectsWith(m.updateContext('a', { owner: 'eve' }, { expectedRevision: seen.revision }), 'VERSION_CONFLICT');
  assert.equal(err.expected, seen.revision);
  assert.equal(err.actual, again.revision);
  assert.equal((await m.getContext('a')).data.owner, 'bob');
  const u = await m.updateContext('a', { owner: 'bob', n: 1 }, { expectedRevision: again.revision, ttlMs: 60_000 });
  assert.equal(u.version, 2);
  assert.equal(u.expiresAtMs, u.updatedAtMs + 60_000);
  // Both expectations: the version is compared first.
  const both = await rejectsWith(m.updateContext('a', {}, { expectedVersion: 1, expectedRevision: u.revision }), 'VERSION_CONFLICT');
  assert.equal(both.expected, 1);
  assert.equal(both.actual, 2);
  assert.equal((await m.updateContext('a', {}, { expectedVersion: 2, expectedRevision: u.revision })).version, 3);
  for (const bad of [-1, 1.5, '3', 2 ** 53]) {
    await rejectsWith(m.updateContext('a', {}, { expectedRevision: bad }), 'INVALID_ARGUMENT');
  }
  await rejectsWith(m.updateContext('gone', {}, { expectedRevision: u.revision }), 'NOT_FOUND');
  // An adapter takes it too, with its own TTL (and no ttlMs of the caller's).
  const a = new ContextAdapter(m, { ttlMs: 5_000 });
  const current = await m.getContext('a');
  const stale = await rejectsWith(a.updateContext('a', {}, { expectedRevision: u.revision }), 'VERSION_CONFLICT');
  assert.equal(stale.expected, u.revision);
  assert.equal(stale.actual, current.revision);
  const viaAdapter = await a.updateContext('a', { by: 'adapter' }, { expectedRevision: current.revision });
  assert.equal(viaAdapter.version, current.version + 1);
  assert.equal(viaAdapter.expiresAtMs, viaAdapter.updatedAtMs + 5_000);
  await rejectsWith(a.updateContext('a', {}, { expectedRevision: current.revision, ttlMs: 10 }), 'INVALID_ARGUMENT');
});

test('updateContext never creates and never resurrects: NOT_FOUND', async () => {
  const m = new ContextManager();
  await rejectsWith(m.updateContext('a', {}), 'NOT_FOUND');
  await m.createContext('a', {});
  await m.deleteContext('a');
  await rejectsWith(m.updateContext('a', {}), 'NOT_FOUND');
  await rejectsWith(m.getContext('a'), 'NOT_FOUND');
});

test('deleteContext removes the context and its recovery points', async () => {
  const m = new ContextManager();
  await m.createContext('a', { x: 1 });
  await m.createRecoveryPoint('a');
  assert.equal(await m.deleteContext('a'), undefined);
  await rejectsWith(m.deleteContext('a'), 'NOT_FOUND');
  await m.createContext('a', { x: 2 });
  assert.deepEqual(await m.recoveryPoints('a'), []);
});

test('listContextIds is sorted and len counts live contexts', async () => {
  const m = new ContextManager();
  for (const id of ['c', 'a', 'b']) await m.createContext(id, {});
  assert.deepEqual(await m.listContextIds(), ['a', 'b', 'c']);
  assert.equal(await m.len(), 3);
});

test('recovery points: create, list oldest first, restore as a new version', async () => {
  const m = new ContextManager({ maxRecoveryPoints: 2 });
  await m.createContext('a', { step: 1 });
  const p1 = await m.createRecoveryPoint('a');
  assert.deepEqual(Object.keys(p1).sort(), ['contextId', 'createdAtMs', 'data', 'id', 'version']);
  assert.equal(p1.contextId, 'a');
  assert.equal(p1.version, 1);
  assert.deepEqual(p1.data, { step: 1 });
  await m.updateContext('a', { step: 2 });
  const p2 = await m.createRecoveryPoint('a');
  await m.updateContext('a', { step: 3 });
  const p3 = await m.createRecoveryPoint('a');
  assert.ok(p1.id < p2.id && p2.id < p3.id);
  assert.deepEqual((await m.recoveryPoints('a')).map((p) => p.id), [p2.id, p3.id]);
  const restored = await m.restoreRecoveryPoint('a', p2.id);
  assert.equal(restored.version, 4);
  assert.deepEqual(restored.data, { step: 2 });
  await rejectsWith(m.restoreRecoveryPoint('a', p1.id), 'NOT_FOUND');
  await rejectsWith(m.recoveryPoints('missing'), 'NOT_FOUND');
  await rejectsWith(m.createRecoveryPoint('missing'), 'NOT_FOUND');
});

test('maxRecoveryPoints 0 disables recovery points: CAPACITY_EXCEEDED', async () => {
  const m = new ContextManager({ maxRecoveryPoints: 0 });
  await m.createContext('a', {});
  await rejectsWith(m.createRecoveryPoint('a'), 'CAPACITY_EXCEEDED');
});

test('expiry: ttlMs and defaultTtlMs hide contexts, cleanupExpired removes them', async () => {
  const m = new ContextManager({ defaultTtlMs: 30 });
  const a = await m.createContext('a', {});
  assert.equal(a.expiresAtMs, a.createdAtMs + 30);
  const b = await m.createContext('b', {}, { ttlMs: 60_000 });
  assert.equal(b.expiresAtMs, b.createdAtMs + 60_000);
  const c = await m.createContext('c', {}, { ttlMs: null });
  // null means "no TTL of my own": the manager's default applies.
  assert.equal(c.expiresAtMs, c.createdAtMs + 30);
  while (Date.now() <= Math.max(a.expiresAtMs, c.expiresAtMs)) await sleep(5);
  await rejectsWith(m.getContext('a'), 'NOT_FOUND');
  await rejectsWith(m.updateContext('a', {}), 'NOT_FOUND');
  await rejectsWith(m.deleteContext('a'), 'NOT_FOUND');
  assert.deepEqual(await m.listContextIds(), ['b']);
  assert.equal(await m.len(), 1);
  // Touching 'a' already removed it; the sweep finds 'c'.
  assert.equal(await m.cleanupExpired(), 1);
  assert.equal(m.stats().expirations, 2);
  // Expired contexts never count against capacity.
  await m.createContext('a', { again: true });
});

test('expired contexts do not block a create at capacity', async () => {
  const m = new ContextManager({ maxContexts: 1 });
  const s = await m.createContext('old', {}, { ttlMs: 10 });
  while (Date.now() <= s.expiresAtMs) await sleep(5);
  await m.createContext('new', {});
  assert.deepEqual(await m.listContextIds(), ['new']);
});

test('stats counts every kind of operation', async () => {
  const m = new ContextManager();
  await m.createContext('a', {});
  await m.getContext('a');
  await m.getContext('a').catch(() => {});
  await m.getContext('b').catch(() => {});
  await m.updateContext('a', { x: 1 });
  await m.updateContext('a', {}, { expectedVersion: 9 }).catch(() => {});
  await m.deleteContext('a');
  assert.deepEqual(m.stats(), {
    contexts: 0,
    reads: 3,
    hits: 2,
    misses: 1,
    creates: 1,
    updates: 1,
    conflicts: 1,
    deletes: 1,
    expirations: 0,
    evictions: 0,
  });
});

test('id and data limits: INVALID_ARGUMENT, the limits themselves allowed', async () => {
  const m = new ContextManager({ maxIdBytes: 4, maxDataBytes: 20 });
  await m.createContext('abcd', {});
  await m.createContext('é', {});
  await rejectsWith(m.createContext('abcde', {}), 'INVALID_ARGUMENT');
  await rejectsWith(m.createContext('', {}), 'INVALID_ARGUMENT');
  await rejectsWith(m.createContext('a\nb', {}), 'INVALID_ARGUMENT');
  const exact = { s: 'x'.repeat(20 - '{"s":""}'.length) };
  assert.equal(JSON.stringify(exact).length, 20);
  await m.createContext('x', exact);
  await rejectsWith(m.createContext('y', { s: 'x'.repeat(13) }), 'INVALID_ARGUMENT');
  await rejectsWith(m.updateContext('x', { s: 'é'.repeat(12) }), 'INVALID_ARGUMENT');
});

test('ContextError is a real Error subclass with every code listed', () => {
  assert.deepEqual([...ContextError.CODES], [
    'NOT_FOUND', 'ALREADY_EXISTS', 'CAPACITY_EXCEEDED', 'VERSION_CONFLICT',
    'INVALID_ARGUMENT', 'NOT_ACTIVE', 'UNSYNCED_CHANGES', 'STORAGE',
  ]);
  const e = new ContextError('STORAGE', 'disk on fire');
  assert.ok(e instanceof Error);
  assert.equal(e.code, 'STORAGE');
  assert.equal(e.name, 'ContextError');
  assert.match(e.stack, /disk on fire/);
  assert.equal(String(e), 'ContextError: disk on fire');
});

/** Every method of `obj`'s class, called after free(): [name, how it failed]. */
async function afterFree(obj) {
  const out = [];
  const proto = Object.getPrototypeOf(obj);
  for (const key of Reflect.ownKeys(proto)) {
    if (key === 'constructor' || typeof proto[key] !== 'function' || String(key).startsWith('__')) continue;
    let how;
    try {
      const r = proto[key].call(obj, 'a', { x: 1 }, undefined);
      how = r instanceof Promise ? await r.then(() => 'resolved', (e) => ['rejects', e]) : 'returned';
    } catch (e) {
      how = ['throws', e];
    }
    out.push([String(key), how]);
  }
  return out;
}

test('use after free(), and a second free(), is a ContextError saying the object was freed, for every method of every class', async () => {
  const m = new ContextManager();
  await m.createContext('a', {});
  const t = new ContextTracker(m);
  const a = new ContextAdapter(m);
  const handed = await a.activateContext('a');
  const sync = ['free', 'subscribe', 'stats', 'nextRecoveryPointId', 'startAutoSync', 'stopAutoSync', 'startAutoCleanup', 'stopAutoCleanup', String(Symbol.dispose)];
  for (const [obj, name] of [[t, 'ContextTracker'], [handed, 'ContextTracker'], [a, 'ContextAdapter'], [m, 'ContextManager']]) {
    obj.free();
    const results = await afterFree(obj);
    assert.ok(results.length >= 8, name);
    for (const [method, how] of results) {
      assert.ok(Array.isArray(how), `${name}.${method} after free(): ${how}`);
      const [kind, e] = how;
      assert.equal(kind, sync.includes(method) ? 'throws' : 'rejects', `${name}.${method}`);
      assert.ok(e instanceof ContextError, `${name}.${method}: ${e}`);
      assert.equal(e.code, 'INVALID_ARGUMENT');
      assert.equal(e.message, `this ${name} was freed`);
    }
  }
  for (const make of [() => new ContextTracker(m), () => new ContextAdapter(m)]) {
    const e = await rejectsWith(make, 'INVALID_ARGUMENT');
    assert.match(e.message, /^the ContextManager passed to new Context(Tracker|Adapter)\(\) was freed$/);
  }
  // Another manager is unaffected, and the classes still work with instanceof.
  const other = new ContextManager();
  assert.ok(other instanceof ContextManager && new ContextTracker(other) instanceof ContextTracker);
  assert.equal(ContextManager.name, 'ContextManager');
});

test('free() while a tracker of the manager is in use: the tracker keeps working', async () => {
  const m = new ContextManager();
  await m.createContext('a', { n: 1 });
  const t = new ContextTracker(m);
  await t.activateContext('a');
  m.free();
  assert.deepEqual((await t.getState()).data, { n: 1 });
});

test('updateContext takes ttlMs, as Rust UpdateOptions.ttl_ms: it replaces the TTL; absent or null keeps it', async () => {
  const m = new ContextManager();
  const s = await m.createContext('a', {}, { ttlMs: 60_000 });
  const longer = await m.updateContext('a', { n: 1 }, { ttlMs: 3_600_000, expectedVersion: s.version });
  assert.equal(longer.expiresAtMs, longer.updatedAtMs + 3_600_000);
  const kept = await m.updateContext('a', { n: 2 }, { ttlMs: null });
  assert.equal(kept.expiresAtMs, kept.updatedAtMs + 3_600_000);
  await m.createContext('b', {});
  const set = await m.updateContext('b', { n: 1 }, { ttlMs: 5 });
  assert.equal(set.expiresAtMs, set.updatedAtMs + 5);
  while (Date.now() <= set.expiresAtMs) await sleep(2);
  await rejectsWith(m.getContext('b'), 'NOT_FOUND');
  for (const bad of [0, -1, 1.5, '10']) await rejectsWith(m.updateContext('a', {}, { ttlMs: bad }), 'INVALID_ARGUMENT');
});

test('ContextManager.startAutoCleanup(intervalMs) sweeps expired contexts until stopAutoCleanup()', async () => {
  const m = new ContextManager();
  const alive = setInterval(() => {}, 1_000); // the cleanup timer is unref'd
  try {
    const s = await m.createContext('t', {}, { ttlMs: 5 });
    const seen = [];
    const off = m.subscribe((ev) => seen.push(ev.type));
    m.startAutoCleanup(5);
    while (!seen.includes('expired')) await sleep(5);
    assert.ok(Date.now() >= s.expiresAtMs); // expired at expiresAtMs itself
    assert.equal(m.stats().expirations, 1);
    m.stopAutoCleanup();
    await m.createContext('u', {}, { ttlMs: 1 });
    await sleep(40);
    assert.equal(m.stats().expirations, 1);
    off();
    for (const bad of [0, -5, 'soon', null]) await rejectsWith(() => m.startAutoCleanup(bad), 'INVALID_ARGUMENT');
  } finally {
    clearInterval(alive);
  }
});
