// slidingTtl: every getContext of a context with a TTL restarts it, as touchContext does.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ContextAdapter, ContextManager, MemoryStorage, rejectsWith } from './helpers.mjs';

const pause = (ms) => new Promise((r) => setTimeout(r, ms));

test('slidingTtl must be a boolean', async () => {
  for (const bad of ['yes', 1, 0, null, {}]) {
    const e = await rejectsWith(() => new ContextManager({ slidingTtl: bad }), 'INVALID_ARGUMENT');
    assert.match(e.message, /slidingTtl must be a boolean/);
    await rejectsWith(ContextManager.open(new MemoryStorage(), { slidingTtl: bad }), 'INVALID_ARGUMENT');
  }
  for (const ok of [true, false, undefined]) new ContextManager({ slidingTtl: ok }).free();
});

test('slidingTtl: getContext moves expiresAtMs like touchContext; list and contexts without a TTL stay', async () => {
  const m = new ContextManager({ slidingTtl: true });
  const created = await m.createContext('a', { n: 1 }, { ttlMs: 60_000 });
  const forever = await m.createContext('b', {});
  const events = [];
  m.subscribe((e) => events.push(e));
  await pause(5);
  const before = Date.now();
  const got = await m.getContext('a');
  assert.equal(got.version, created.version);
  assert.equal(got.revision, created.revision);
  assert.equal(got.updatedAtMs, created.updatedAtMs);
  assert.deepEqual(got.data, { n: 1 });
  assert.ok(got.expiresAtMs >= before + 60_000, `${got.expiresAtMs} >= ${before} + 60000`);
  assert.ok(got.expiresAtMs > created.expiresAtMs);
  assert.deepEqual(await m.getContext('b'), forever);
  await pause(5);
  // Listing touches nothing; an adapter's reads go through the manager and slide.
  const adapter = new ContextAdapter(m, { autoCleanup: false });
  const listed = await adapter.listContexts();
  assert.deepEqual(listed.map((s) => s.expiresAtMs), [got.expiresAtMs, null]);
  assert.ok((await adapter.getContext('a')).expiresAtMs > got.expiresAtMs);
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(events, []);
  await rejectsWith(m.getContext('missing'), 'NOT_FOUND');
  assert.deepEqual([m.stats().reads, m.stats().hits, m.stats().misses], [4, 3, 1]);
});

test('without slidingTtl, getContext leaves expiresAtMs as it is', async () => {
  const m = new ContextManager();
  const created = await m.createContext('a', {}, { ttlMs: 60_000 });
  await pause(5);
  assert.equal((await m.getContext('a')).expiresAtMs, created.expiresAtMs);
});

test('slidingTtl over a storage: the slid expiry survives a reopen', async () => {
  const storage = new MemoryStorage();
  const { manager: m } = await ContextManager.open(storage, { slidingTtl: true });
  const created = await m.createContext('a', { n: 1 }, { ttlMs: 60_000 });
  await pause(5);
  const got = await m.getContext('a');
  assert.ok(got.expiresAtMs > created.expiresAtMs);
  m.free();
  const { manager: again } = await ContextManager.open(storage);
  assert.equal((await again.getContext('a')).expiresAtMs, got.expiresAtMs);
});
