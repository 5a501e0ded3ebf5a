// IndexedDBStorage in shared mode: `ContextManager.open(new
// IndexedDBStorage(name), config)` connects the manager, through
// ContextManager.connect, to the shared namespace that the storage names
// (IndexedDBShared, idb-shared.js), so any number of tabs (and workers) of
// one origin that open it are one store, each seeing the others' events.
// It resolves to `{ manager, problems }` as open does for other storages.
//
// - The namespace: the storage's database name, followed by '/' and its
//   object store's name when that is not 'contexts', with '%' and '/'
//   escaped (%25, %2F), so no two pairs of names share one. Its database is
//   IndexedDBShared.databaseName(namespace) ('<name>:contextkit-shared-2'),
//   never the storage's own.
// - Contexts that an earlier release kept in owned mode, in the storage's
//   own database and object store, are not part of that store: open reports
//   how many there are as a STORAGE problem (wasm/npm/README.md says how to
//   copy them over) instead of leaving them behind without a word.
// - Sweeper election: the timers of startAutoCleanup on such a manager, and
//   on an adapter over one, sweep only while they hold the Web Lock
//   'contextkit sweeper <database>'. Each timer asks for it when it starts
//   and keeps it until it stops (stopAutoCleanup, free, the tab closing), so
//   one timer of the origin sweeps and the next in line takes over when it
//   stops. Without Web Locks (Node) every timer sweeps, which is correct too:
//   each sweep is one transaction, and an expired context is swept once.
//   Explicit cleanupExpired() calls, and the sweeps an adapter with
//   autoCleanup makes inside its calls, are not elected.

import { IndexedDBShared } from './idb-shared.js';

const DEFAULT_STORE = 'contexts';
/** startAutoCleanup's default period (as the wasm side's). */
const DEFAULT_INTERVAL_MS = 60_000;
/** Longest delay setTimeout honours (larger ones fire at once). */
const MAX_DELAY_MS = 2_147_483_647;

const escapeName = (s) => s.replaceAll('%', '%25').replaceAll('/', '%2F');

/** The shared namespace of IndexedDBStorage(dbName, storeName). */
export function sharedNamespace(dbName, storeName) {
  return storeName === DEFAULT_STORE ? escapeName(dbName) : `${escapeName(dbName)}/${escapeName(storeName)}`;
}

/** The Web Lock that elects the sweeper of shared namespace `namespace`. */
export function sweeperLock(namespace) {
  return `contextkit sweeper ${IndexedDBShared.databaseName(namespace)}`;
}

/** A Promise of an IndexedDB request's result. */
function requested(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

/**
 * How many contexts owned mode left in `storage`'s own database and object
 * store (keys 'c/<id>'); 0 where there is no such database, or it cannot
 * be told without creating one (no indexedDB.databases()).
 */
export async function ownedContexts(storage) {
  const idb = globalThis.indexedDB;
  if (typeof idb?.databases !== 'function') return 0;
  const name = storage.databaseName;
  if (!(await idb.databases()).some((d) => d.name === name)) return 0;
  const req = idb.open(name);
  // Deleted since: create nothing.
  req.onupgradeneeded = () => req.transaction.abort();
  const db = await requested(req).catch(() => null);
  if (db === null) return 0;
  try {
    if (!db.objectStoreNames.contains(storage.storeName)) return 0;
    const store = db.transaction(storage.storeName).objectStore(storage.storeName);
    return await requested(store.count(globalThis.IDBKeyRange.bound('c/', 'c0', false, true)));
  } finally {
    db.close();
  }
}

const isFreed = (obj) => obj.__wbg_ptr === 0;

/**
 * Makes `ContextManager.open` open an IndexedDBStorage in shared mode, and
 * the auto-cleanup timers of such managers (and of adapters over them)
 * elect one sweeper. Changes the classes' statics and prototypes; returns
 * the ContextAdapter class to export (a Proxy that notes which adapters
 * are over such a manager).
 */
export function openInTabs({ ContextManager, ContextAdapter, ContextError, isIndexedDBStorage }) {
  /** A manager opened here, or an adapter over one → the name of its sweeper lock. */
  const lockOf = new WeakMap();
  /** A manager or adapter whose elected timer runs → the function that stops it. */
  const sweepers = new WeakMap();

  const open = ContextManager.open;
  ContextManager.open = function open_(storage, config) {
    if (!isIndexedDBStorage(storage)) return Reflect.apply(open, this, [storage, config]);
    const namespace = sharedNamespace(storage.databaseName, storage.storeName);
    let transport;
    try {
      transport = new IndexedDBShared(namespace, { maxStaleMs: storage.maxStaleMs });
    } catch (e) {
      return Promise.reject(new ContextError('STORAGE', `ContextManager.open: ${e?.message ?? e}`));
    }
    return ContextManager.connect(transport, config).then(
      async (manager) => {
        lockOf.set(manager, sweeperLock(namespace));
        const problems = [];
        const left = await ownedContexts(storage).catch(() => 0);
        if (left > 0) {
          problems.push(
            new ContextError(
              'STORAGE',
              `IndexedDB database '${storage.databaseName}', object store '${storage.storeName}', holds ${left} context${left === 1 ? '' : 's'} ` +
                `in owned mode (as IndexedDBStorage kept them before tabs shared it); they are not part of this store, which the tabs share ` +
                `in database '${IndexedDBShared.databaseName(namespace)}': copy them over, then delete them (the package's README, "Contexts from before shared mode")`,
            ),
          );
        }
        return { manager, problems };
      },
      (e) => {
        // It is open that failed, as the caller sees it.
        if (e?.code === 'STORAGE' && typeof e.message === 'string') e.message = e.message.replace(/^ContextManager\.connect: /, 'ContextManager.open: ');
        throw e;
      },
    );
  };
  Object.defineProperty(ContextManager.open, 'name', { value: 'open' });

  const locks = () => globalThis.navigator?.locks ?? null;

  /** Starts the elected timer of `target`: `sweep(target)` every `period(target)` ms while it holds `lock`. */
  function elect(target, lock, period, sweep) {
    sweepers.get(target)?.();
    // The timer must not keep a manager alive that nothing else refers to.
    const ref = new WeakRef(target);
    const abort = new AbortController();
    let stopped = false;
    let timer;
    let release = () => {};
    const stop = () => {
      stopped = true;
      abort.abort();
      clearTimeout(timer);
      release();
    };
    const live = () => {
      const t = ref.deref();
      return stopped || t === undefined || isFreed(t) ? null : t;
    };
    const next = async () => {
      const t = live();
      if (t === null) return stop();
      let ms;
      try {
        ms = await period(t);
      } catch {
        return stop();
      }
      if (stopped) return undefined;
      timer = setTimeout(tick, Math.min(ms, MAX_DELAY_MS));
      timer?.unref?.();
      return undefined;
    };
    const tick = async () => {
      const t = live();
      if (t === null) return stop();
      await sweep(t).catch(() => {});
      return next();
    };
    locks()
      .request(
        lock,
        { signal: abort.signal },
        () =>
          new Promise((resolve) => {
            release = resolve;
            if (stopped) resolve();
            else next();
          }),
      )
      // Stopped while waiting in line (AbortError).
      .catch(() => {});
    sweepers.set(target, stop);
  }

  const stopElected = (target) => {
    sweepers.get(target)?.();
    sweepers.delete(target);
  };

  /**
   * Replaces `startAutoCleanup` / `stopAutoCleanup` / `free` of `proto` for
   * objects in lockOf when Web Locks exist. The original start still runs
   * first, for its checks (this object freed, a bad interval), and its timer
   * is stopped at once: the elected timer sweeps instead.
   */
  function elected(proto, period, sweep) {
    const start = proto.startAutoCleanup;
    const stopTimer = proto.stopAutoCleanup;
    Object.defineProperty(proto, 'startAutoCleanup', {
      ...Object.getOwnPropertyDescriptor(proto, 'startAutoCleanup'),
      value: function startAutoCleanup(...args) {
        const [intervalMs] = args;
        const lock = lockOf.get(this);
        if (lock === undefined || locks() === null) return Reflect.apply(start, this, args);
        Reflect.apply(start, this, args);
        stopTimer.call(this);
        elect(this, lock, (t) => period(t, intervalMs), sweep);
        return undefined;
      },
    });
    Object.defineProperty(proto, 'stopAutoCleanup', {
      ...Object.getOwnPropertyDescriptor(proto, 'stopAutoCleanup'),
      value: function stopAutoCleanup() {
        stopElected(this);
        return stopTimer.call(this);
      },
    });
    for (const key of ['free', Symbol.dispose]) {
      const method = proto[key];
      if (typeof method !== 'function') continue;
      const value = function () {
        stopElected(this);
        return method.call(this);
      };
      Object.defineProperty(value, 'name', { value: method.name });
      Object.defineProperty(proto, key, { ...Object.getOwnPropertyDescriptor(proto, key), value });
    }
  }

  elected(
    ContextManager.prototype,
    (_m, intervalMs) => (intervalMs === undefined ? DEFAULT_INTERVAL_MS : intervalMs),
    (m) => m.cleanupExpired(),
  );
  elected(
    ContextAdapter.prototype,
    async (a) => (await a.getConfig()).cleanupIntervalMs,
    (a) => a.cleanupExpiredContexts(),
  );

  return new Proxy(ContextAdapter, {
    construct(target, args, newTarget) {
      const adapter = Reflect.construct(target, args, newTarget);
      const lock = args[0] !== null && typeof args[0] === 'object' ? lockOf.get(args[0]) : undefined;
      if (lock !== undefined) lockOf.set(adapter, lock);
      return adapter;
    },
  });
}
