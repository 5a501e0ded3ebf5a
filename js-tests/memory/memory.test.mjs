// Run with `node --expose-gc --test`: managers created and dropped, with
// free() and without it (left to the garbage collector and wasm-bindgen's
// FinalizationRegistry), must not make the wasm memory grow without bound.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ContextAdapter, ContextManager, ContextTracker, wasmModule } from '../test/helpers.mjs';

assert.equal(typeof globalThis.gc, 'function', 'run with node --expose-gc');

const ROUNDS = 5;
const PER_ROUND = 2_000; // 10,000 managers per test

const memory = () => wasmModule.__memoryBytes();

/** Collects garbage and lets FinalizationRegistry callbacks run. */
async function collectGarbage() {
  for (let i = 0; i < 4; i++) {
    globalThis.gc();
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** Runs `round` ROUNDS times; resolves to the wasm memory size after each. */
async function sizes(round) {
  const after = [];
  for (let r = 0; r < ROUNDS; r++) {
    await round();
    await collectGarbage();
    after.push(memory());
  }
  return after;
}

function assertStopsGrowing(after) {
  // The first two rounds may grow the heap to its working size; after that it is reused.
  const plateau = after[1];
  for (const size of after.slice(2)) {
    assert.ok(size <= plateau, `wasm memory kept growing: ${after.join(' → ')} bytes`);
  }
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
