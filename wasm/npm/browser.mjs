// Browsers and bundlers: the wasm-bindgen web build, fetched and instantiated
// before this module finishes loading (top-level await). FileStorage needs
// Node's file system and is not exported here.
import init, { ContextManager as Manager, ContextTracker as Tracker, ContextAdapter as Adapter, __init } from './web/contextkit_wasm.js';
import * as support from './support.mjs';
import { MemoryStorage, IndexedDBStorage, isIndexedDBStorage } from './storage.mjs';
import { openInTabs } from './idb-tabs.mjs';

// The package ships the .wasm once, next to the Node glue.
await init({ module_or_path: new URL('./node/contextkit_wasm_bg.wasm', import.meta.url) });
__init(support);
// Use after free() is a ContextError (see support.mjs).
const {
  ContextManager,
  ContextTracker,
  ContextAdapter: Guarded,
} = support.guardFreed({
  ContextManager: Manager,
  ContextTracker: Tracker,
  ContextAdapter: Adapter,
});
// ContextManager.open(new IndexedDBStorage(name)) is shared mode: any number
// of tabs of the origin are one store (see idb-tabs.mjs).
const ContextAdapter = openInTabs({ ContextManager, ContextAdapter: Guarded, ContextError: support.ContextError, isIndexedDBStorage });

export const { ContextError } = support;
export { ContextManager, ContextTracker, ContextAdapter, MemoryStorage, IndexedDBStorage };
