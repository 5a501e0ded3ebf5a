// Node, import: the same instance as require() (see HACKING.md), re-exported as ES module names.
import contextkit from './index.cjs';

export const { ContextManager, ContextTracker, ContextAdapter, ContextError, MemoryStorage, FileStorage, IndexedDBStorage } =
  contextkit;
