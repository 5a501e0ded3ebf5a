'use strict';
// Node, require(): the wasm-bindgen build for Node loads the module synchronously.
const wasm = require('./node/contextkit_wasm.js');
// Own data properties (the CommonJS build exports getters): the module reads
// them on every call.
const support = { ...require('./support.cjs') };
const { MemoryStorage, IndexedDBStorage, isIndexedDBStorage } = require('./storage.cjs');
const { FileStorage, closeWithManager } = require('./file-storage.cjs');
const { RedisBackend, oneManagerEach } = require('./redis-backend.cjs');
const { openInTabs } = require('./idb-tabs.cjs');

wasm.__init(support);
// Use after free() is a ContextError (see support.js).
const guarded = support.guardFreed({
  ContextManager: wasm.ContextManager,
  ContextTracker: wasm.ContextTracker,
  ContextAdapter: wasm.ContextAdapter,
});
const { ContextManager, ContextTracker } = guarded;
// A FileStorage serves one open manager, and free() lets its directory go.
closeWithManager(ContextManager, support.ContextError);
// A RedisBackend serves one connected manager at a time.
oneManagerEach(ContextManager, support.ContextError);
// ContextManager.open(new IndexedDBStorage(name)) is shared mode, as in
// browsers, where an IndexedDB polyfill (fake-indexeddb) provides indexedDB.
const ContextAdapter = openInTabs({ ContextManager, ContextAdapter: guarded.ContextAdapter, ContextError: support.ContextError, isIndexedDBStorage });

module.exports = {
  ContextManager,
  ContextTracker,
  ContextAdapter,
  ContextError: support.ContextError,
  MemoryStorage,
  FileStorage,
  IndexedDBStorage,
  RedisBackend,
};
