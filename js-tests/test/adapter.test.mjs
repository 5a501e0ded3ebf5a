// ContextAdapter: TTL, capacity and the registry of active trackers.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ContextAdapter, ContextManager, ContextTracker, collect, rejectsWith, sleep } from './helpers.mjs';

test('contexts through the adapter carry its TTL, and updates refresh it', async () => {
  const m = new ContextManager();
  const a = new ContextAdapter(m, { ttlMs: 60_000, autoCleanup: false });
  const s = await a.createContext('s1', { user: 'ada' });
  assert.equal(s.expiresAtMs, s.createdAtMs + 60_000);
  const u = await a.updateContext('s1', { user: 'grace' }, { expectedVersion: 1 });
  assert.equal(u.version, 2);
  assert.equal(u.expiresAtMs, u.updatedAtMs + 60_000);
  await rejectsWith(a.updateContext('s1', {}, { expectedVersion: 1 }), 'VERSION_CONFLICT');
  assert.deepEqual((await a.getContext('s1')).data, { user: 'grace' });
  assert.deepEqual((await a.listContexts()).map((c) => c.id), ['s1']);
  await a.deleteContext('s1');
  await rejectsWith(a.getContext('s1'), 'NOT_FOUND');
  await rejectsWith(a.deleteContext('s1'), 'NOT_FOUND');
  await rejectsWith(a.updateContext('s1', {}), 'NOT_FOUND');
});

test('expired contexts are invisible and swept by cleanupExpiredContexts', async () => {
  const a = new ContextAdapter(new ContextManager(), { ttlMs: 20, autoCleanup: false });
  const s = await a.createContext('gone', {});
  await a.createContext('also', {});
  while (Date.now() <= s.expiresAtMs + 1) await sleep(5);
  await rejectsWith(a.getContext('gone'), 'NOT_FOUND');
  assert.deepEqual(await a.listContexts(), []);
  assert.equal(await a.cleanupExpiredContexts(), 2);
  assert.equal(await a.cleanupExpiredContexts(), 0);
});

test("the adapter's maxContexts caps the manager; the smaller limit wins", async () => {
  const m = new ContextManager({ maxContexts: 10 });
  const a = new ContextAdapter(m, { maxContexts: 2 });
  await a.createContext('a', {});
  await m.createContext('b', {});
  await rejectsWith(a.createContext('c', {}), 'CAPACITY_EXCEEDED');
  await rejectsWith(m.createContext('c', {}), 'CAPACITY_EXCEEDED');
});

test('getConfig and updateConfig; lowering maxContexts evicts the least recently updated', async () => {
  const m = new ContextManager();
  const a = new ContextAdapter(m, { maxContexts: 5, cleanupIntervalMs: 1000 });
  assert.deepEqual(await a.getConfig(), {
    maxContexts: 5,
    ttlMs: null,
    autoCleanup: true,
    cleanupIntervalMs: 1000,
    maxActiveContexts: 100,
  });
  const events = collect(m);
  for (const id of ['a', 'b', 'c', 'd']) await a.createContext(id, {});
  await a.updateContext('a', { touched: true });
  assert.equal(await a.updateConfig({ maxContexts: 2 }), 2);
  assert.deepEqual(await m.listContextIds(), ['a', 'd']);
  const cfg = await a.getConfig();
  assert.equal(cfg.maxContexts, 2);
  assert.equal(cfg.cleanupIntervalMs, 1000);
  const seen = await events.until(7);
  assert.deepEqual(seen.slice(5).map((e) => [e.type, e.id]), [['evicted', 'b'], ['evicted', 'c']]);
  assert.equal(m.stats().evictions, 2);
  events.off();
  await rejectsWith(a.updateConfig({ maxContexts: 0 }), 'INVALID_ARGUMENT');
  await rejectsWith(a.updateConfig({ ttlMs: 0 }), 'INVALID_ARGUMENT');
  await rejectsWith(a.updateConfig({ bogus: 1 }), 'INVALID_ARGUMENT');
  assert.equal((await a.getConfig()).maxContexts, 2);
});

test('a bad config throws INVALID_ARGUMENT from the constructor', async () => {
  const m = new ContextManager();
  for (const bad of [{ maxContexts: 0 }, { maxActiveContexts: 0 }, { cleanupIntervalMs: 0 }, { ttlMs: 0 }, { ttlMs: '5' }, 'x']) {
    await rejectsWith(() => new ContextAdapter(m, bad), 'INVALID_ARGUMENT');
  }
});

test('activateContext returns the same tracker for an active id', async () => {
  const m = new ContextManager();
  const a = new ContextAdapter(m, { maxActiveContexts: 2 });
  for (const id of ['x', 'y', 'z']) await a.createContext(id, { id });
  const t1 = await a.activateContext('x');
  assert.ok(t1 instanceof ContextTracker);
  assert.equal(await a.activateContext('x'), t1);
  const [p, q] = await Promise.all([a.activateContext('y'), a.activateContext('y')]);
  assert.equal(p, q);
  assert.deepEqual(await a.listActiveContextIds(), ['x', 'y']);
  await rejectsWith(a.activateContext('z'), 'CAPACITY_EXCEEDED');
  await rejectsWith(a.activateContext('missing'), 'NOT_FOUND');

  assert.equal(await t1.activeContextId(), 'x');
  await t1.updateState({ id: 'x', edited: true });
  await rejectsWith(a.deactivateContext('x'), 'UNSYNCED_CHANGES');
  assert.deepEqual(await a.listActiveContextIds(), ['x', 'y']);
  await t1.syncState();
  assert.deepEqual((await a.getContext('x')).data, { id: 'x', edited: true });
  await a.deactivateContext('x');
  await rejectsWith(a.deactivateContext('x'), 'NOT_ACTIVE');
  assert.deepEqual(await a.listActiveContextIds(), ['y']);
  // An adapter's tracker is bound to its id.
  await rejectsWith(q.activateContext('z'), 'INVALID_ARGUMENT');

  const t2 = await a.activateContext('x');
  assert.notEqual(t2, t1);
  await a.activateContext('z').catch((e) => assert.equal(e.code, 'CAPACITY_EXCEEDED'));
  // Deactivating through the tracker releases the id too.
  await q.deactivateContext();
  assert.deepEqual(await a.listActiveContextIds(), ['x']);
  const z = await a.activateContext('z');
  assert.equal(await z.activeContextId(), 'z');
});

test('a freed tracker is never handed out again', async () => {
  const a = new ContextAdapter(new ContextManager());
  await a.createContext('x', {});
  const t = await a.activateContext('x');
  t.free();
  const again = await a.activateContext('x');
  assert.notEqual(again, t);
  assert.equal(await again.activeContextId(), 'x');
});

test('the adapter has the recovery points and subscribe of its manager', async () => {
  const m = new ContextManager();
  const a = new ContextAdapter(m, { ttlMs: 60_000 });
  const seen = [];
  const off = a.subscribe((ev) => seen.push(`${ev.type}:${ev.id}@${ev.version}`), { onError: () => {} });
  await a.createContext('s', { step: 1 });
  const p = await a.createRecoveryPoint('s');
  assert.deepEqual([p.contextId, p.version, p.data], ['s', 1, { step: 1 }]);
  await a.updateContext('s', { step: 2 });
  assert.deepEqual((await a.recoveryPoints('s')).map((r) => r.id), [p.id]);
  assert.deepEqual((await m.recoveryPoints('s')).map((r) => r.id), [p.id]);
  const restored = await a.restoreRecoveryPoint('s', p.id);
  assert.deepEqual([restored.version, restored.data], [3, { step: 1 }]);
  assert.equal(restored.expiresAtMs, restored.updatedAtMs + 60_000);
  await m.updateContext('s', { step: 4 });
  while (seen.length < 4) await new Promise((r) => setImmediate(r));
  off();
  assert.deepEqual(seen, ['created:s@1', 'updated:s@2', 'restored:s@3', 'updated:s@4']);
  await rejectsWith(a.restoreRecoveryPoint('s', 99), 'NOT_FOUND');
  await rejectsWith(a.createRecoveryPoint(1), 'INVALID_ARGUMENT');
  await rejectsWith(() => a.subscribe('f'), 'INVALID_ARGUMENT');
  await rejectsWith(a.updateContext('s', {}, { ttlMs: 5 }), 'INVALID_ARGUMENT');
});

test("adapter createContext takes metadata, and a TTL of its own over the adapter's", async () => {
  const m = new ContextManager();
  const a = new ContextAdapter(m, { ttlMs: 60_000, autoCleanup: false });
  const s = await a.createContext('s1', { n: 1 }, { metadata: { owner: 'ada' } });
  assert.deepEqual(s.metadata, { owner: 'ada' });
  assert.equal(s.expiresAtMs, s.createdAtMs + 60_000);
  assert.deepEqual((await m.getContext('s1')).metadata, { owner: 'ada' });
  const t = await a.createContext('s2', {}, { ttlMs: 5_000 });
  assert.equal(t.expiresAtMs, t.createdAtMs + 5_000);
  await rejectsWith(a.createContext('s3', {}, { metadata: { n: 1 } }), 'INVALID_ARGUMENT');
  await rejectsWith(a.createContext('s3', {}, { ttlMs: 0 }), 'INVALID_ARGUMENT');
});

test('the adapter has the modifyContext and touchContext of its manager', async () => {
  const m = new ContextManager();
  const a = new ContextAdapter(m, { ttlMs: 60_000, autoCleanup: false });
  const s = await a.createContext('s1', { n: 1 });
  const t = await a.modifyContext('s1', (d) => ({ n: d.n + 1 }));
  assert.equal(t.version, 2);
  assert.deepEqual(t.data, { n: 2 });
  await new Promise((r) => setTimeout(r, 5));
  const u = await a.touchContext('s1');
  assert.equal(u.version, 2);
  assert.ok(u.expiresAtMs > t.expiresAtMs);
  assert.ok(u.expiresAtMs >= s.createdAtMs + 60_000);
  await rejectsWith(a.modifyContext('missing', (d) => d), 'NOT_FOUND');
  await rejectsWith(a.touchContext('missing'), 'NOT_FOUND');
});
