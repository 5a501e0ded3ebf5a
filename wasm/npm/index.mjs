// Node, import: the same instance as require(), re-exported as ES module names. Loading
// the CommonJS build from both sides gives one wasm instance and one ContextError class
// per process, so instanceof works across require and import.
import contextkit from './index.cjs';

export const { ContextManager, ContextTracker, ContextAdapter, ContextError, MemoryStorage, FileStorage, IndexedDBStorage, RedisBackend } = contextkit;
