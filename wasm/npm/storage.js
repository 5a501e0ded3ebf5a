// Storages for ContextManager.open that work everywhere: MemoryStorage, and
// IndexedDBStorage where the host has IndexedDB (browsers). The Node-only
// FileStorage is in file-storage.cjs. Each implements ContextStorage (see
// common.d.cts): async get/put/delete/list of string keys and JSON-text values,
// operations on one key taking effect in call order, plus entries() for the
// bulk read at open.
//
// ContextManager.open does not use the methods of an IndexedDBStorage: it
// opens the shared namespace the storage names (idb-tabs.js), so that tabs
// of one origin are one store. Its methods serve as a ContextStorage where
// one is passed on its own (a plain object calling them opens the database's
// object store in owned mode, as open did before shared mode).

/**
 * A storage in memory (a Map from key to JSON text) that outlives the
 * managers opened on it: open another manager on the same object and it sees
 * exactly what was acknowledged. Handy in tests.
 */
export class MemoryStorage {
  #map = new Map();

  /** The value of `key`, or undefined. */
  async get(key) {
    return this.#map.get(key);
  }

  async put(key, value) {
    if (typeof key !== 'string' || typeof value !== 'string') {
      throw new TypeError('MemoryStorage.put expects a string key and a string value');
    }
    this.#map.set(key, value);
  }

  async delete(key) {
    this.#map.delete(key);
  }

  /** Every key, in insertion order. */
  async list() {
    return [...this.#map.keys()];
  }

  /** Every key with its value. */
  async entries() {
    return { entries: [...this.#map.entries()] };
  }

  /** How many keys are stored. */
  get size() {
    return this.#map.size;
  }
}

/** `#name in value`, from inside IndexedDBStorage. */
let brand;

/**
 * Whether `value` is an IndexedDBStorage (or of a subclass): a brand check,
 * which runs no code of `value` (a Proxy's traps, a getter), unlike instanceof.
 */
export function isIndexedDBStorage(value) {
  return value !== null && typeof value === 'object' && brand(value);
}

/** A Promise of an IndexedDB request's result. */
function requested(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

/** Opens `name` (at `version`, if given), creating object store `store` in an upgrade. */
function openDatabase(name, version, store) {
  const req = version === undefined ? indexedDB.open(name) : indexedDB.open(name, version);
  req.onupgradeneeded = () => {
    const db = req.result;
    if (!db.objectStoreNames.contains(store)) db.createObjectStore(store);
  };
  // onblocked: the upgrade waits until other connections close, which they do
  // on versionchange (see IndexedDBStorage#open).
  return requested(req);
}

/**
 * A storage in an IndexedDB object store (browsers): one record per key, in
 * database `dbName`, object store `storeName` (created if missing). Writes
 * run in readwrite transactions with `durability: 'strict'` and are
 * acknowledged when their transaction completes. All operations of one
 * storage run in transactions over the same store, which IndexedDB runs in
 * the order they were created: operations take effect in call order.
 */
export class IndexedDBStorage {
  #name;
  #store;
  #maxStaleMs;
  /** A Promise of the open connection, or null. */
  #db = null;

  static {
    brand = (value) => #name in value;
  }

  /**
   * @param {string} dbName the database
   * @param {string | { storeName?: string, maxStaleMs?: number }} [storeName] the object store
   *   (default 'contexts'), or the options
   * @param {{ maxStaleMs?: number }} [options] `maxStaleMs`: in shared mode, a
   *   get may be served from memory, at most this many ms behind (default 0: never)
   */
  constructor(dbName, storeName = 'contexts', options = {}) {
    if (storeName !== null && typeof storeName === 'object') {
      options = storeName;
      storeName = options.storeName ?? 'contexts';
    }
    const maxStaleMs = options?.maxStaleMs ?? 0;
    if (typeof maxStaleMs !== 'number' || !(maxStaleMs >= 0) || maxStaleMs > 86_400_000) {
      throw new RangeError(`IndexedDBStorage: maxStaleMs must be a number of milliseconds from 0 to 86400000, got ${String(maxStaleMs)}`);
    }
    this.#maxStaleMs = maxStaleMs;
    if (typeof indexedDB === 'undefined') {
      throw new Error('IndexedDBStorage needs IndexedDB, which this environment does not have (in Node, use FileStorage)');
    }
    if (typeof dbName !== 'string' || dbName === '' || typeof storeName !== 'string' || storeName === '') {
      throw new TypeError('IndexedDBStorage expects a database name and an object store name (non-empty strings)');
    }
    this.#name = dbName;
    this.#store = storeName;
  }

  /** The database name given to the constructor. */
  get databaseName() {
    return this.#name;
  }

  /** How far behind a get of a shared manager may be, in ms (0: never served from memory). */
  get maxStaleMs() {
    return this.#maxStaleMs;
  }

  /** The object store name given to the constructor ('contexts' by default). */
  get storeName() {
    return this.#store;
  }

  #open() {
    this.#db ??= (async () => {
      let db = await openDatabase(this.#name, undefined, this.#store);
      if (!db.objectStoreNames.contains(this.#store)) {
        // The database exists without this store: add it in a version change.
        const version = db.version + 1;
        db.close();
        db = await openDatabase(this.#name, version, this.#store);
      }
      // Another connection wants to upgrade the database: let it, and open
      // again on the next operation.
      db.onversionchange = () => {
        db.close();
        this.#db = null;
      };
      return db;
    })().catch((e) => {
      this.#db = null;
      throw e;
    });
    return this.#db;
  }

  /** Runs `use(objectStore)` in one transaction; resolves to the result of the request it returns once the transaction completes. */
  #transaction(mode, use) {
    return this.#open().then(
      (db) =>
        new Promise((resolve, reject) => {
          const tx = db.transaction(this.#store, mode, mode === 'readwrite' ? { durability: 'strict' } : undefined);
          const req = use(tx.objectStore(this.#store));
          tx.oncomplete = () => resolve(req.result);
          tx.onabort = () => reject(tx.error ?? new Error(`IndexedDB transaction on '${this.#name}' was aborted`));
        }),
    );
  }

  /** The value of `key`, or undefined. */
  get(key) {
    return this.#transaction('readonly', (s) => s.get(key));
  }

  /** Resolves once the write is durable (its transaction completed). */
  put(key, value) {
    return this.#transaction('readwrite', (s) => s.put(value, key)).then(() => undefined);
  }

  delete(key) {
    return this.#transaction('readwrite', (s) => s.delete(key)).then(() => undefined);
  }

  /** Every key, sorted. */
  async list() {
    const keys = await this.#transaction('readonly', (s) => s.getAllKeys());
    return keys.filter((k) => typeof k === 'string');
  }

  /** Every key with its value, read in one transaction. */
  async entries() {
    let keys;
    const values = await this.#transaction('readonly', (s) => {
      keys = s.getAllKeys();
      return s.getAll();
    });
    const entries = [];
    keys.result.forEach((key, i) => {
      if (typeof key === 'string') entries.push([key, values[i]]);
    });
    return { entries };
  }

  /** Closes the connection (the next operation opens it again). */
  async close() {
    const db = this.#db;
    this.#db = null;
    (await db?.catch(() => null))?.close();
  }
}
