// Browsers and bundlers: the wasm-bindgen web build, fetched and instantiated
// before this module finishes loading (top-level await). FileStorage needs
// Node's file system and is not exported here.
import init, { ContextManager as Manager, ContextTracker as Tracker, ContextAdapter as Adapter, __init } from './web/contextkit_wasm.js';
import * as support from './support.mjs';

// The package ships the .wasm once, next to the Node glue.
await init({ module_or_path: new URL('./node/contextkit_wasm_bg.wasm', import.meta.url) });
__init(support);
// Use after free() is a ContextError (see support.mjs).
const { ContextManager, ContextTracker, ContextAdapter } = support.guardFreed({
  ContextManager: Manager,
  ContextTracker: Tracker,
  ContextAdapter: Adapter,
});

export const { ContextError } = support;
export { ContextManager, ContextTracker, ContextAdapter };
export { MemoryStorage, IndexedDBStorage } from './storage.mjs';
