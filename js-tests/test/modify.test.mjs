// modifyContext (read-modify-write in one step) and touchContext (restart a TTL without a write).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { ContextAdapter, ContextError, ContextManager, FileStorage, MemoryStorage, rejectsWith } from './helpers.mjs';

const freshDir = () => fs.mkdtempSync(path.join(os.tmpdir(), 'contextkit-modify-'));

test('modifyContext applies the function to the current data and commits the result', async () => {
  const m = new ContextManager();
  await m.createContext('a', { n: 1, tags: ['x'] }, { ttlMs: 60_000 });
  const events = [];
  m.subscribe((e) => events.push(e));
  const s = await m.modifyContext('a', (data) => {
    data.n += 1; // a copy: changing it changes nothing stored
    data.tags.push('y');
    return data;
  });
  assert.equal(s.version, 2);
  assert.deepEqual(s.data, { n: 2, tags: ['x', 'y'] });
  assert.equal(s.expiresAtMs, s.updatedAtMs + 60_000);
  assert.deepEqual((await m.getContext('a')).data, { n: 2, tags: ['x', 'y'] });
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(events, [{ type: 'updated', id: 'a', version: 2, revision: s.revision }]);
});

test('modifyContext: what the function throws rejects the call as thrown, and nothing changes', async () => {
  const m = new ContextManager();
  await m.createContext('a', { n: 1 });
  class Refused extends Error {}
  const refusal = new Refused('sold out');
  await assert.rejects(
    m.modifyContext('a', () => {
      throw refusal;
    }),
    (e) => e === refusal,
  );
  await assert.rejects(
    m.modifyContext('a', () => {
      throw 'a string';
    }),
    (e) => e === 'a string',
  );
  const s = await m.getContext('a');
  assert.equal(s.version, 1);
  assert.deepEqual(s.data, { n: 1 });
});

test('modifyContext refuses what updateContext refuses, and a missing id or function', async () => {
  const m = new ContextManager({ maxDataBytes: 32 });
  await m.createContext('a', { n: 1 });
  for (const bad of [() => [1], () => 5, () => undefined, () => ({ big: 'x'.repeat(64) })]) {
    await rejectsWith(m.modifyContext('a', bad), 'INVALID_ARGUMENT');
  }
  await rejectsWith(m.modifyContext('a', 'not a function'), 'INVALID_ARGUMENT');
  await rejectsWith(m.modifyContext('a'), 'INVALID_ARGUMENT');
  await rejectsWith(m.modifyContext('missing', (d) => d), 'NOT_FOUND');
  await rejectsWith(m.modifyContext('', (d) => d), 'INVALID_ARGUMENT');
  // An async function is named as one (its rejection is not left unhandled).
  await assert.rejects(m.modifyContext('a', async (d) => d), { code: 'INVALID_ARGUMENT', message: /fn returned a Promise/ });
  await assert.rejects(
    m.modifyContext('a', async () => {
      throw new Error('later');
    }),
    { code: 'INVALID_ARGUMENT', message: /fn returned a Promise/ },
  );
  assert.equal((await m.getContext('a')).version, 1);
});

// The case that made a retry loop fail: concurrent PATCHes of one session,
// each awaiting FileStorage's fsyncs, with no compare-and-set retries at all.
for (const [name, make] of [
  ['memory', () => new ContextManager()],
  ['MemoryStorage', async () => (await ContextManager.open(new MemoryStorage())).manager],
  ['FileStorage', async () => (await ContextManager.open(new FileStorage(freshDir()))).manager],
]) {
  test(`${name}: 64 concurrent modifyContext calls lose no update and need no retry`, async () => {
    const m = await make();
    await m.createContext('session', { hits: 0 });
    const calls = 64;
    const states = await Promise.all(
      Array.from({ length: calls }, () => m.modifyContext('session', (d) => ({ hits: d.hits + 1 }))),
    );
    assert.deepEqual(
      states.map((s) => s.version).sort((a, b) => a - b),
      Array.from({ length: calls }, (_, i) => i + 2),
    );
    const s = await m.getContext('session');
    assert.equal(s.version, calls + 1);
    assert.deepEqual(s.data, { hits: calls });
    assert.equal(m.stats().conflicts, 0);
  });
}

test('touchContext restarts the TTL: same version, revision and data, no event', async () => {
  const m = new ContextManager();
  const created = await m.createContext('a', { n: 1 }, { ttlMs: 60_000 });
  const forever = await m.createContext('b', {});
  const events = [];
  m.subscribe((e) => events.push(e));
  await new Promise((r) => setTimeout(r, 5));
  const before = Date.now();
  const t = await m.touchContext('a');
  assert.equal(t.version, created.version);
  assert.equal(t.revision, created.revision);
  assert.equal(t.updatedAtMs, created.updatedAtMs);
  assert.deepEqual(t.data, { n: 1 });
  assert.ok(t.expiresAtMs >= before + 60_000, `${t.expiresAtMs} >= ${before} + 60000`);
  assert.ok(t.expiresAtMs > created.expiresAtMs);
  assert.equal((await m.getContext('a')).expiresAtMs, t.expiresAtMs);
  assert.deepEqual(await m.touchContext('b'), forever);
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(events, []);
  await rejectsWith(m.touchContext('missing'), 'NOT_FOUND');
  await rejectsWith(m.touchContext(''), 'INVALID_ARGUMENT');
});

test('touchContext over FileStorage: the new expiry survives a reopen', async () => {
  const dir = freshDir();
  const { manager: m } = await ContextManager.open(new FileStorage(dir));
  await m.createContext('a', { n: 1 }, { ttlMs: 60_000 });
  await new Promise((r) => setTimeout(r, 5));
  const t = await m.touchContext('a');
  m.free();
  const { manager: again } = await ContextManager.open(new FileStorage(dir));
  assert.equal((await again.getContext('a')).expiresAtMs, t.expiresAtMs);
});

test('modifyContext: free() from inside the function is refused with a ContextError, and nothing is lost', async () => {
  const m = new ContextManager({});
  await m.createContext('a', { n: 1 });
  let refused;
  const s = await m.modifyContext('a', (data) => {
    try {
      m.free();
    } catch (e) {
      refused = e;
    }
    return { n: data.n + 1 };
  });
  assert.ok(refused instanceof ContextError, `got ${refused}`);
  assert.equal(refused.code, 'INVALID_ARGUMENT');
  assert.match(refused.message, /free\(\) of this ContextManager was called from its own modifyContext function/);
  assert.equal(s.data.n, 2);
  assert.equal((await m.getContext('a')).data.n, 2);
  m.free();
});

test('modifyContext of an adapter: its own free() and dispose from the function are refused too', async () => {
  const m = new ContextManager({});
  const a = new ContextAdapter(m, {});
  await a.createContext('a', { n: 1 });
  const refusals = [];
  await a.modifyContext('a', (data) => {
    for (const free of [() => a.free(), () => a[Symbol.dispose]()]) {
      try {
        free();
      } catch (e) {
        refusals.push(e.code);
      }
    }
    return { n: data.n + 1 };
  });
  assert.deepEqual(refusals, ['INVALID_ARGUMENT', 'INVALID_ARGUMENT']);
  assert.equal((await a.getContext('a')).data.n, 2);
  a.free();
  m.free();
});
