// Run with `node --expose-gc --test`: managers created and dropped, with
// free() and without it (left to the garbage collector and wasm-bindgen's
// FinalizationRegistry), must not make the wasm memory grow without bound.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ContextAdapter, ContextManager, ContextTracker, wasmModule } from '../test/helpers.mjs';

assert.equal(typeof globalThis.gc, 'function', 'run with node --expose-gc');

const ROUNDS = 6;
const PER_ROUND = 2_000; // 10,000 managers per test

const memory = () => wasmModule.__memoryBytes();

/** Collects garbage and lets FinalizationRegistry callbacks run. */
async function collectGarbage() {
  for (let i = 0; i < 10; i++) {
    globalThis.gc();
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** Runs `round` ROUNDS times; resolves to the wasm memory size before and after each. */
async function sizes(round) {
  await collectGarbage();
  const after = [memory()];
  for (let r = 0; r < ROUNDS; r++) {
    await round();
    await collectGarbage();
    after.push(memory());
  }
  return after;
}

/**
 * A leak grows the memory by about one round's worth every round. The heap
 * may grow while it reaches its working size (allocator, garbage collection
 * timing), so the last three rounds together must grow it by less than a
 * quarter of what the first round took.
 */
function assertStopsGrowing(after) {
  const firstRound = after[1] - after[0];
  const lastThree = after[after.length - 1] - after[after.length - 4];
  const trail = after.map((b) => (b / 1048576).toFixed(2)).join(' → ');
  assert.ok(firstRound > 0, `a round allocates wasm memory (${trail} MiB)`);
  assert.ok(lastThree < firstRound / 4, `wasm memory kept growing: ${trail} MiB`);
}

test('10,000 managers created, used and freed with free()', async () => {
  const after = await sizes(async () => {
    for (let i = 0; i < PER_ROUND; i++) {
      const m = new ContextManager();
      await m.createContext(`c${i}`, { i, text: 'some data to store' });
      const off = m.subscribe(() => {});
      await m.updateContext(`c${i}`, { i: i + 1 });
      off();
      const t = new ContextTracker(m);
      await t.activateContext(`c${i}`);
      const a = new ContextAdapter(m);
      await a.activateContext(`c${i}`);
      t.free();
      a.free();
      m.free();
    }
  });
  assertStopsGrowing(after);
});

test('10,000 managers dropped without free(), reclaimed by the garbage collector', async () => {
  const after = await sizes(async () => {
    for (let i = 0; i < PER_ROUND; i++) {
      const m = new ContextManager();
      await m.createContext(`c${i}`, { i, text: 'some data to store' });
      m.subscribe(() => {});
      const t = new ContextTracker(m, { syncIntervalMs: 60_000 });
      await t.activateContext(`c${i}`);
      t.startAutoSync();
      const a = new ContextAdapter(m, { cleanupIntervalMs: 60_000 });
      await a.activateContext(`c${i}`);
      a.startAutoCleanup();
    }
  });
  assertStopsGrowing(after);
});
