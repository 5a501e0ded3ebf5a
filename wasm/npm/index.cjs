'use strict';
// Node, require(): the wasm-bindgen build for Node loads the module synchronously.
const wasm = require('./node/contextkit_wasm.js');
const support = require('./support.cjs');
const { MemoryStorage, IndexedDBStorage } = require('./storage.cjs');
const { FileStorage, closeWithManager } = require('./file-storage.cjs');
const { RedisBackend } = require('./redis-backend.cjs');

wasm.__init(support);
// Use after free() is a ContextError (see support.js).
const { ContextManager, ContextTracker, ContextAdapter } = support.guardFreed({
  ContextManager: wasm.ContextManager,
  ContextTracker: wasm.ContextTracker,
  ContextAdapter: wasm.ContextAdapter,
});
// A FileStorage serves one open manager, and free() lets its directory go.
closeWithManager(ContextManager, support.ContextError);

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
