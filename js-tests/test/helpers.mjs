// Loads the built package and offers small helpers shared by the tests.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
/** The package directory under test (scripts/build-npm.sh output unless CONTEXTKIT_PKG says otherwise). */
export const pkgDir = path.resolve(process.env.CONTEXTKIT_PKG ?? path.join(here, '../../wasm/pkg'));

const ck = await import(pathToFileURL(path.join(pkgDir, 'index.mjs')).href);
export const { ContextManager, ContextTracker, ContextAdapter, ContextError, MemoryStorage, FileStorage, IndexedDBStorage } = ck;

/** The wasm-bindgen module instance the package uses (same file, so same instance). */
export const wasmModule = createRequire(import.meta.url)(path.join(pkgDir, 'node/contextkit_wasm.js'));

/** Asserts that `promiseOrFn` rejects (or throws) a ContextError with `code`; returns it. */
export async function rejectsWith(promiseOrFn, code) {
  let error;
  try {
    await (typeof promiseOrFn === 'function' ? promiseOrFn() : promiseOrFn);
  } catch (e) {
    error = e;
  }
  assert.ok(error !== undefined, `expected ${code}, but it succeeded`);
  assert.ok(error instanceof ContextError, `expected a ContextError, got ${error}`);
  assert.ok(error instanceof Error);
  assert.equal(error.code, code, error.message);
  assert.equal(error.name, 'ContextError');
  assert.equal(typeof error.stack, 'string');
  return error;
}

/** Collects events of `manager` until `count` arrived; resolves to them. */
export function collect(manager) {
  const events = [];
  const waiters = [];
  const off = manager.subscribe((ev) => {
    events.push(ev);
    for (const w of waiters.splice(0)) w();
  });
  return {
    events,
    off,
    /** Resolves once at least `n` events arrived. */
    async until(n) {
      while (events.length < n) await new Promise((resolve) => waiters.push(resolve));
      return events.slice();
    },
  };
}

/** Resolves after `ms` milliseconds. */
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Lets every pending microtask and task run. */
export const settle = () => new Promise((resolve) => setImmediate(resolve));
