// Types of the npm package `contextkit` that every entry point exports (the
// browser's too): index.d.ts, index.d.mts and browser.d.mts re-export them.
// A .d.cts file is CommonJS typings whatever the package's "type", so both
// require (index.d.ts) and import (index.d.mts, browser.d.mts) typings can
// re-export it under TypeScript's node16, nodenext and bundler resolution.

/** A JSON value. */
export type JsonValue = string | number | boolean | null | JsonValue[] | JsonObject;

/** A JSON object; properties that are `undefined` are left out, as in `JSON.stringify`. */
export interface JsonObject {
  [key: string]: JsonValue | undefined;
}

/**
 * `T` as JSON data (methods take `data: T & JsonData<T>`): each property a JSON value, checked field by field, so
 * interfaces, readonly arrays and `as const` objects qualify (an index
 * signature is not needed). A function, bigint, symbol or class instance
 * (a Date, a Map) anywhere inside makes a property `never`, so `T` fails.
 */
export type JsonData<T> = T extends readonly unknown[] ? never : T extends object ? { [K in keyof T]: JsonField<T[K]> } : never;

/**
 * A property value of `JsonData`: `undefined` is allowed and left out, as by
 * `JSON.stringify`. An `unknown` (or `any`) value, such as the fields of a
 * parsed request body typed `Record<string, unknown>`, cannot be checked
 * here: it is accepted, and checked when the call runs (INVALID_ARGUMENT).
 */
export type JsonField<V> = unknown extends V
  ? V
  : V extends string | number | boolean | null | undefined
  ? V
  : V extends ((...args: never[]) => unknown) | bigint | symbol
    ? never
    : V extends readonly unknown[]
      ? { [I in keyof V]: JsonField<V[I]> }
      : V extends object
        ? { [K in keyof V]: JsonField<V[K]> }
        : never;

/** One version of one context. Times are milliseconds since the Unix epoch. */
export interface ContextState<T extends object = JsonObject> {
  id: string;
  /** Starts at 1 and grows by one with every committed change. */
  version: number;
  /**
   * Store-wide commit number: strictly increasing, never reused, also across
   * delete + re-create and reopen. Use it for ETags: a version repeats after
   * delete + re-create, a revision does not. 0 for a state stored before
   * revisions existed, until its next write.
   */
  revision: number;
  createdAtMs: number;
  updatedAtMs: number;
  /** When the context expires, or null without a TTL. */
  expiresAtMs: number | null;
  data: T;
  metadata: Record<string, string>;
}

/** A recovery point: a copy of a context's data at one version. */
export interface Snapshot<T extends object = JsonObject> {
  /** Per-manager sequence number, strictly increasing. */
  id: number;
  contextId: string;
  version: number;
  createdAtMs: number;
  data: T;
}

/** A committed change, or notice that this subscriber fell behind and missed events. */
export type ContextEvent =
  | {
      type: 'created' | 'updated' | 'deleted' | 'restored' | 'expired' | 'evicted';
      id: string;
      /** The new version, or for deleted/expired/evicted the last version it had. */
      version: number;
      /**
       * The revision of this commit: the new state's, or for
       * deleted/expired/evicted the removal's own (a new one). Subscribers of
       * an in-memory manager see revisions strictly increasing.
       */
      revision: number;
    }
  | { type: 'lagged'; missed: number };

export type ContextEventType = ContextEvent['type'];

export interface SubscribeOptions {
  /**
   * Receives what a subscriber callback threw, with the event it was given;
   * delivery continues either way. Default: `console.error` with the event.
   * If `onError` throws too, that goes to `console.error`.
   */
  onError?: ((error: unknown, event: ContextEvent) => void) | null;
}

/** Limits of a ContextManager; every field is optional and has a default. */
export interface ManagerConfig {
  /** Most live contexts at once (default 10,000). */
  maxContexts?: number;
  /** Recovery points kept per context (default 10; 0 disables them). */
  maxRecoveryPoints?: number;
  /** TTL of contexts created without one (default none). */
  defaultTtlMs?: number | null;
  /** Longest id in UTF-8 bytes (default 256). */
  maxIdBytes?: number;
  /** Largest data as JSON text in bytes (default 1 MiB). */
  maxDataBytes?: number;
  /**
   * Sliding expiry (default false): every `getContext` of a context with a
   * TTL restarts it from now, as `touchContext` does (same version and
   * revision, no event), and resolves with the touched state. Contexts
   * without a TTL come back as they are; an adapter's `listContexts` touches
   * nothing. Such a get is a write: on a manager opened over a storage each
   * one is a durable `put`, and none is served from `readCacheBytes`' cache
   * of earlier reads (each returns a new state).
   */
  slidingTtl?: boolean;
  /**
   * Memory for states already read, kept for the next read of the same
   * version: their data's JSON size plus 128 bytes each (default 16 MiB; 0
   * keeps none). Every read still returns an object of its own. A shared
   * manager whose backend has `maxStaleMs` keeps up to as much again of
   * the states it read for that.
   */
  readCacheBytes?: number;
}

export interface CreateOptions {
  /** Time to live in ms; each update restarts it. */
  ttlMs?: number | null;
  /** String metadata stored with the context. */
  metadata?: Record<string, string>;
}

export interface UpdateOptions {
  /** Commit only if the stored version equals this one (else VERSION_CONFLICT). */
  expectedVersion?: number | null;
  /**
   * Replaces the context's TTL (ms, at least 1) from this update on; absent
   * or null keeps its TTL, which the update restarts.
   */
  ttlMs?: number | null;
  /**
   * Commit only if the stored state is the one committed at this revision
   * (an ETag's value): unlike a version, a revision never repeats, also
   * after a delete and a create of the id. Else VERSION_CONFLICT, whose
   * `expected` and `actual` are revisions (versions if `expectedVersion` is
   * given too and differs: it is compared first).
   */
  expectedRevision?: number | null;
}

/** Options of `ContextAdapter.updateContext`: the adapter's TTL applies. */
export type AdapterUpdateOptions = Omit<UpdateOptions, 'ttlMs'>;

/** Counters of a manager since it was created. */
export interface Stats {
  /** Contexts held now; in shared mode as the store counted them at this manager's last write (`len()` asks the store). */
  contexts: number;
  reads: number;
  hits: number;
  misses: number;
  creates: number;
  updates: number;
  conflicts: number;
  deletes: number;
  expirations: number;
  evictions: number;
}

export type ConflictPolicy = 'reject' | 'overwrite' | 'keepRemote';

export interface TrackerConfig {
  /** Least time between automatic syncs (default 1,000 ms). */
  syncIntervalMs?: number;
  /** Make a recovery point after each successful sync (default false). */
  autoRecovery?: boolean;
  /** What a sync does on a version conflict (default 'reject'). */
  conflict?: ConflictPolicy;
}

export interface AdapterConfig {
  /** Most live contexts in the wrapped manager; the smaller limit wins (default 10,000). */
  maxContexts?: number;
  /** TTL of contexts created or updated through the adapter (default none). */
  ttlMs?: number | null;
  /** Sweep expired contexts during adapter calls (default true). */
  autoCleanup?: boolean;
  /** Least time between sweeps, and the period of startAutoCleanup() (default 60,000 ms). */
  cleanupIntervalMs?: number;
  /** Most trackers active at once (default 100). */
  maxActiveContexts?: number;
}

export type ResolvedAdapterConfig = Required<Omit<AdapterConfig, 'ttlMs'>> & {
  ttlMs: number | null;
};

export type ContextErrorCode =
  | 'NOT_FOUND'
  | 'ALREADY_EXISTS'
  | 'CAPACITY_EXCEEDED'
  | 'VERSION_CONFLICT'
  | 'INVALID_ARGUMENT'
  | 'NOT_ACTIVE'
  | 'UNSYNCED_CHANGES'
  | 'STORAGE';

/** The error every contextkit operation fails with. */
export declare class ContextError extends Error {
  constructor(code: ContextErrorCode, message: string);
  readonly name: 'ContextError';
  code: ContextErrorCode;
  /**
   * The context id the error is about: set for NOT_FOUND, ALREADY_EXISTS,
   * VERSION_CONFLICT, UNSYNCED_CHANGES, and NOT_ACTIVE of an adapter's call
   * naming an id.
   */
  id?: string;
  /** NOT_FOUND of a recovery point only: the recovery point's id. */
  recoveryPoint?: number;
  /**
   * VERSION_CONFLICT only: the version the caller expected. Revisions instead
   * (here and in `actual`) when the conflict is on a revision: an
   * `expectedRevision` with no `expectedVersion` or a matching one, or a
   * tracker's sync whose version matched but whose context was deleted and
   * created again since (it checks both).
   */
  expected?: number;
  /** VERSION_CONFLICT only: the version that is stored (or its revision, see `expected`). */
  actual?: number;
  static readonly CODES: readonly ContextErrorCode[];
}

/**
 * Where a manager opened with `ContextManager.open` keeps its contexts: any
 * object with these async methods. Keys and values are strings; values are
 * JSON text. contextkit uses the keys `"c/" + contextId` (a context with its
 * TTL and recovery points) and `"meta"` (manager-wide facts) and ignores all
 * others, so one storage may hold other data too.
 *
 * For implementers:
 * - A Promise that resolves means the operation is durable; a rejection (or a
 *   throw) fails the manager call with a `STORAGE` ContextError naming the
 *   call, then the storage method and the key ("deleteContext:
 *   storage.put('meta') failed: …"), and the manager does not change.
 * - Operations on one key must take effect in call order, also when they
 *   overlap (contextkit may start a `put` of a key before an earlier one
 *   resolved, for instance of `"meta"`).
 * - `get` resolves to the value, or `undefined`/`null` for none; `list` to
 *   every key.
 */
export interface ContextStorage {
  get(key: string): Promise<string | undefined | null>;
  put(key: string, value: string): Promise<void>;
  delete(key: string): Promise<void>;
  list(): Promise<string[]>;
  /** Optional bulk read used by open(); problems name what could not be read (e.g. a file path). */
  entries?(): Promise<StorageEntries>;
}

/** What `ContextStorage.entries()` resolves to. */
export interface StorageEntries {
  /** Every key with its value. */
  entries: Array<[string, string]>;
  /** What could not be read, each naming where (reported by open(), which loads the rest). */
  problems?: string[];
}

/** A manager opened on a storage, with what could not be loaded. */
export interface OpenedManager {
  /** The manager, holding every context the storage held and could read. */
  manager: ContextManager;
  /**
   * One STORAGE error per stored value that could not be read, naming it;
   * for an IndexedDBStorage, one naming the contexts owned mode left in its
   * own database, if any.
   */
  problems: ContextError[];
}

/** The context store. */
export declare class ContextManager {
  constructor(config?: ManagerConfig);
  /**
   * A manager whose contexts live in `storage`: everything stored is loaded,
   * and from then on a call resolves only once its change is durable there.
   * A storage failure rejects that call with STORAGE and changes nothing.
   * Rejects with STORAGE if the storage cannot be read at all.
   *
   * An `IndexedDBStorage` opens shared mode instead: the manager is one of
   * any number on that store, in this tab and others (see IndexedDBStorage).
   */
  static open(storage: ContextStorage, config?: ManagerConfig): Promise<OpenedManager>;
  /**
   * A manager in shared mode on `backend`'s namespace (a `RedisBackend` in
   * Node): every manager of the namespace, in any process (Rust's included),
   * acts as one store with this manager's contract. The backend decides each
   * write atomically, each state and event carries the namespace-wide
   * revision, and subscribers hear every manager's changes in one order.
   * Makes the namespace with `config` if it does not exist; INVALID_ARGUMENT
   * naming the difference if it was made with another configuration; STORAGE
   * if the backend cannot be reached within its timeout. `free()` closes the
   * backend's connections.
   */
  static connect(backend: SharedBackend, config?: ManagerConfig): Promise<ContextManager>;
  /** Creates `id` at version 1. ALREADY_EXISTS if present; CAPACITY_EXCEEDED when full. */
  createContext<T extends object>(id: string, data: T & JsonData<T>, options?: CreateOptions): Promise<ContextState<T>>;
  /**
   * The live context `id`. NOT_FOUND if absent or expired. Each call returns
   * a new object, which the caller may change freely. With `slidingTtl` it
   * restarts the context's TTL, as `touchContext` does.
   */
  getContext<T extends object = JsonObject>(id: string): Promise<ContextState<T>>;
  /** Replaces the data: version + 1, expiry restarted (or set by `ttlMs`). NOT_FOUND, VERSION_CONFLICT. */
  updateContext<T extends object>(id: string, data: T & JsonData<T>, options?: UpdateOptions): Promise<ContextState<T>>;
  /**
   * Replaces the data with `fn(data)` in one step, with no retry loop of
   * yours: `fn` gets a copy of the current data and runs inside the context's
   * critical section, so concurrent modifies never lose an update. In shared
   * mode `fn` runs on a fresh read and its result is committed by
   * compare-and-set: when another process wrote in between, `fn` runs again
   * on the newer data (keep it free of side effects). Version + 1,
   * expiry restarted. What `fn` throws rejects the call as thrown, and
   * nothing changes; `fn` must be synchronous and must not call the manager.
   * NOT_FOUND; INVALID_ARGUMENT if `fn` returns what `updateContext` refuses.
   */
  modifyContext<T extends object = JsonObject>(id: string, fn: (data: T) => T & JsonData<T>): Promise<ContextState<T>>;
  /**
   * Restarts the TTL of `id` from now without a write of its data: the same
   * version and revision, no event (idle expiry where a read counts as
   * activity). A context without a TTL is returned as it is. NOT_FOUND.
   */
  touchContext<T extends object = JsonObject>(id: string): Promise<ContextState<T>>;
  /** Deletes `id` and its recovery points. NOT_FOUND. */
  deleteContext(id: string): Promise<void>;
  /** Ids of the live contexts, sorted. */
  listContextIds(): Promise<string[]>;
  /** Number of live contexts. */
  len(): Promise<number>;
  /** Snapshots the current version of `id`; keeps the newest maxRecoveryPoints. */
  createRecoveryPoint<T extends object = JsonObject>(id: string): Promise<Snapshot<T>>;
  /** The recovery points of `id`, oldest first. */
  recoveryPoints<T extends object = JsonObject>(id: string): Promise<Snapshot<T>[]>;
  /** Makes a recovery point's data the next version of `id`. */
  restoreRecoveryPoint<T extends object = JsonObject>(id: string, snapshotId: number): Promise<ContextState<T>>;
  /** Removes expired contexts; resolves to how many. */
  cleanupExpired(): Promise<number>;
  /**
   * Calls `callback` for every committed change, in commit order, always
   * asynchronously. Returns a function that unsubscribes. A callback that
   * throws does not stop delivery: what it threw goes to `options.onError`,
   * by default `console.error` with the event (never an unhandled rejection,
   * which would end a Node process). INVALID_ARGUMENT (thrown) if `callback`
   * is not a function or the options are not `SubscribeOptions`.
   */
  subscribe(callback: (event: ContextEvent) => void, options?: SubscribeOptions | null): () => void;
  /** Counters since the manager was created. */
  stats(): Stats;
  /**
   * Removes expired contexts every `intervalMs` (default 60,000) until
   * stopAutoCleanup() or free(); calling it again restarts it with the new
   * interval. In Node the timer is unref'd: it does not keep the process
   * alive on its own.
   */
  startAutoCleanup(intervalMs?: number): void;
  stopAutoCleanup(): void;
  /**
   * The id the next recovery point will get (ids are never reused, also across a reopen).
   * 0 in shared mode: the namespace hands out the ids to every manager, and none can say which is next.
   */
  nextRecoveryPointId(): number;
  /**
   * Releases the manager's memory now instead of at garbage collection.
   * Afterwards every method (free() included) fails with INVALID_ARGUMENT,
   * "this ContextManager was freed": those that return a Promise reject, the
   * others throw. Trackers and adapters made from it keep working, and keep
   * the manager open: its connections (shared mode) close when the last of
   * them is freed too.
   */
  free(): void;
}

/** A working copy of one active context that syncs back to its manager. */
export declare class ContextTracker {
  constructor(manager: ContextManager, config?: TrackerConfig);
  /** Loads `id` and makes it active. NOT_FOUND first; then UNSYNCED_CHANGES if the current copy is dirty. */
  activateContext<T extends object = JsonObject>(id: string): Promise<ContextState<T>>;
  /** UNSYNCED_CHANGES if dirty, NOT_ACTIVE if nothing is active. */
  deactivateContext(): Promise<void>;
  /** Drops local edits; resolves to the stored version they were based on. */
  discardChanges<T extends object = JsonObject>(): Promise<ContextState<T>>;
  activeContextId(): Promise<string | null>;
  /** The working copy: local data with the version it was based on. NOT_ACTIVE. */
  getState<T extends object = JsonObject>(): Promise<ContextState<T>>;
  isDirty(): Promise<boolean>;
  /** Replaces the local data and marks the copy dirty. */
  updateState<T extends object>(data: T & JsonData<T>): Promise<ContextState<T>>;
  /** Adopts a strictly newer version of the active context when clean; resolves to whether it did. */
  applyRemote(state: ContextState): Promise<boolean>;
  /** Pushes local edits with expectedVersion = their base version, applying the conflict policy. */
  syncState<T extends object = JsonObject>(): Promise<ContextState<T>>;
  /** Dirty and syncIntervalMs elapsed since the last sync. */
  isSyncNeeded(): Promise<boolean>;
  /** Syncs if needed; resolves to the new state, or null if it did not sync. */
  syncIfNeeded<T extends object = JsonObject>(): Promise<ContextState<T> | null>;
  /** A recovery point of the active context as stored. */
  createRecoveryPoint<T extends object = JsonObject>(): Promise<Snapshot<T>>;
  /**
   * Calls syncIfNeeded() every syncIntervalMs until stopAutoSync() or free();
   * failures go to onError. In Node the timer is unref'd: it does not keep
   * the process alive on its own (a process with nothing else to do exits,
   * and edits not synced yet stay unsynced: call syncState() before exiting).
   */
  startAutoSync(onError?: (error: ContextError) => void): void;
  stopAutoSync(): void;
  /** Releases the tracker now; afterwards its methods fail with INVALID_ARGUMENT, "this ContextTracker was freed". */
  free(): void;
}

/** A facade over a ContextManager with a TTL, a capacity and active trackers. */
export declare class ContextAdapter {
  /** INVALID_ARGUMENT for zero limits, a zero TTL or a zero cleanup interval. */
  constructor(manager: ContextManager, config?: AdapterConfig);
  /** Creates `id` with the adapter's TTL, or `options.ttlMs` if given, and `options.metadata`. */
  createContext<T extends object>(id: string, data: T & JsonData<T>, options?: CreateOptions): Promise<ContextState<T>>;
  getContext<T extends object = JsonObject>(id: string): Promise<ContextState<T>>;
  /** Replaces the data and restarts the expiry with the adapter's TTL. */
  updateContext<T extends object>(id: string, data: T & JsonData<T>, options?: AdapterUpdateOptions): Promise<ContextState<T>>;
  /** The manager's modifyContext: `fn(data)` becomes the data in one step (see ContextManager.modifyContext). */
  modifyContext<T extends object = JsonObject>(id: string, fn: (data: T) => T & JsonData<T>): Promise<ContextState<T>>;
  /** The manager's touchContext: restarts the TTL of `id` from now, without a new version. */
  touchContext<T extends object = JsonObject>(id: string): Promise<ContextState<T>>;
  deleteContext(id: string): Promise<void>;
  /** The manager's createRecoveryPoint: snapshots the current version of `id`. */
  createRecoveryPoint<T extends object = JsonObject>(id: string): Promise<Snapshot<T>>;
  /** The recovery points of `id`, oldest first. */
  recoveryPoints<T extends object = JsonObject>(id: string): Promise<Snapshot<T>[]>;
  /** Makes a recovery point's data the next version of `id`. */
  restoreRecoveryPoint<T extends object = JsonObject>(id: string, snapshotId: number): Promise<ContextState<T>>;
  /** The manager's subscribe: every committed change of the manager, whoever made it. */
  subscribe(callback: (event: ContextEvent) => void, options?: SubscribeOptions | null): () => void;
  /** The live contexts, sorted by id. */
  listContexts(): Promise<ContextState[]>;
  /** Removes expired contexts now; resolves to how many. */
  cleanupExpiredContexts(): Promise<number>;
  getConfig(): Promise<ResolvedAdapterConfig>;
  /**
   * Changes the settings given; the others keep their values. Resolves to how
   * many contexts a lowered maxContexts evicted (least recently updated first).
   */
  updateConfig(changes: AdapterConfig): Promise<number>;
  /** The tracker of `id`, activating it if needed; the same object while it stays active. */
  activateContext(id: string): Promise<ContextTracker>;
  /** NOT_ACTIVE if `id` has no tracker, UNSYNCED_CHANGES if it is dirty. */
  deactivateContext(id: string): Promise<void>;
  listActiveContextIds(): Promise<string[]>;
  /**
   * Sweeps expired contexts every cleanupIntervalMs until stopAutoCleanup()
   * or free(). In Node the timer is unref'd: it does not keep the process
   * alive on its own.
   */
  startAutoCleanup(): void;
  stopAutoCleanup(): void;
  /** Releases the adapter now; afterwards its methods fail with INVALID_ARGUMENT, "this ContextAdapter was freed". */
  free(): void;
}

/**
 * A storage in memory (a Map from key to JSON text), everywhere. It outlives
 * the managers opened on it: open another manager on the same object and it
 * sees exactly what was acknowledged. Handy in tests.
 */
export declare class MemoryStorage implements ContextStorage {
  constructor();
  get(key: string): Promise<string | undefined>;
  put(key: string, value: string): Promise<void>;
  delete(key: string): Promise<void>;
  list(): Promise<string[]>;
  entries(): Promise<StorageEntries>;
  /** How many keys are stored. */
  readonly size: number;
}

/**
 * What `ContextManager.connect` drives: an object that runs the calls of
 * contextkit's Redis library (see redis-backend.cjs for the interface).
 * `RedisBackend` is one.
 */
export interface SharedBackend {
  readonly namespace: string;
  readonly timeoutMs?: number;
  readonly operationTtlMs?: number;
  readonly eventRetention?: number;
  /**
   * How long one read of the event log may wait for a new event, in ms
   * (default: half of `timeoutMs`, from 10 ms to 1 s). A backend whose
   * waits every commit ends early can ask for far longer ones.
   */
  readonly eventWaitMs?: number;
  /**
   * Serve a state read at most this long ago from memory, in ms (default 0:
   * every get asks the store; so does a get of a context not found, and a
   * get with `slidingTtl`, which is a write). `modifyContext` starts from
   * such a read too: a stale one costs a conflict and another try. The
   * manager forgets what it read of a context when its own write of it
   * ends (of every context, for a sweep or an eviction) and when its event
   * reader brings a change of it, so it always sees its own writes and
   * others' about a round trip after their commit; a change with no event
   * is seen at most `maxStaleMs` late. What it keeps for this is bounded by
   * the manager's `readCacheBytes` (0 keeps nothing: every get asks the
   * store).
   */
  readonly maxStaleMs?: number;
}

/**
 * IndexedDB, for browsers, shared by tabs: `ContextManager.open(new
 * IndexedDBStorage(name), config)` is shared mode. Every manager of the
 * origin opened on the same names, in any tab or worker, is one store with
 * the contract of a single manager: each call is one IndexedDB transaction
 * (writes with `durability: 'strict'`, acknowledged when they complete) that
 * decides against what the database holds, so creates never overwrite,
 * `expectedVersion` is a compare-and-set across tabs and the capacity is
 * exact; every tab's subscribers get every tab's changes, in revision order
 * (through a `BroadcastChannel`). The store lives in database
 * `<dbName>:contextkit-shared-2` (`<dbName>/<storeName>:…` for an object
 * store other than 'contexts'; `%` and `/` in the names escaped as `%25` and
 * `%2F`), never in `dbName` itself. Its configuration is the first
 * manager's: another is `INVALID_ARGUMENT`. The auto-cleanup timers
 * (`startAutoCleanup`) of managers opened this way, and of adapters over
 * them, sweep only while they hold the Web Lock `contextkit sweeper
 * <database>`, so one timer of the origin sweeps at a time.
 *
 * `open` reports contexts that earlier releases kept in `dbName`'s object
 * store `storeName` (owned mode) as one STORAGE problem, and does not load
 * them; the package's README shows how to copy them over.
 *
 * The methods below are those of a ContextStorage over that object store
 * (`open` does not use them): a plain object calling them opens it in owned
 * mode, one manager holding the contexts, as `open` did before shared mode.
 * The constructor throws where there is no `indexedDB` (Node without a
 * polyfill such as fake-indexeddb).
 */
/** Options of an `IndexedDBStorage`. */
export interface IndexedDBStorageOptions {
  /** See `IndexedDBStorage.maxStaleMs` (default 0). */
  maxStaleMs?: number;
}

export declare class IndexedDBStorage implements ContextStorage {
  /** Names database `dbName` and object store `storeName` (default 'contexts'); nothing is opened yet. */
  constructor(dbName: string, storeName?: string, options?: IndexedDBStorageOptions);
  /** The same, with the object store among the options. */
  constructor(dbName: string, options: IndexedDBStorageOptions & { storeName?: string });
  /**
   * In shared mode, a get may be served from memory, at most this many ms
   * behind what the tabs committed (0, the default: every get reads
   * IndexedDB). Every commit of this manager empties that memory, and
   * another tab's commit takes its context out as soon as this tab reads its
   * event (its notice wakes the reader), so a manager always sees its own
   * writes and usually others' at once; only a notice lost or late makes a
   * read stale, by at most `maxStaleMs`.
   */
  readonly maxStaleMs: number;
  /** The database name given to the constructor. */
  readonly databaseName: string;
  /** The object store name given to the constructor. */
  readonly storeName: string;
  get(key: string): Promise<string | undefined>;
  put(key: string, value: string): Promise<void>;
  delete(key: string): Promise<void>;
  list(): Promise<string[]>;
  entries(): Promise<StorageEntries>;
  /** Closes the database connection; the next operation opens it again. */
  close(): Promise<void>;
}
