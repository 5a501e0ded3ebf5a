// IndexedDBShared: one shared namespace in an IndexedDB database, which any
// number of tabs (and workers) of one origin use as one store, driven by the
// same calls as a namespace in Redis. Every call runs the function of
// contextkit's Redis library (native/redis/contextkit.lua) of that name, as
// ported in idb-shared-library.js, in ONE IndexedDB transaction, and
// resolves to the reply the Lua function gives as node-redis delivers it.
// It is a shared transport as the wasm side expects one (the interface
// described at the top of redis-backend.cjs: open(), call(fn, keys, args),
// get, head, events, close, the property namespace), so
// `ContextManager.connect(new IndexedDBShared(name), config)` can drive it
// as it drives a RedisBackend.
//
// Database: `${name}${IndexedDBShared.SUFFIX}` (IndexedDBShared.databaseName):
// never the database of an IndexedDBStorage (owned mode) of the same name,
// whose object store 'contexts' holds another format. The database is
// created at version 1 with the stores below and the record 'format' =
// FORMAT in 'meta'; open() refuses a database of that name without them.
//
// Redis key (namespace NS)  object store   what it holds
// ck:{NS}:meta   hash       meta           'hash' -> { epoch, cfg, rev, pid, replays } (strings),
//                                          'format' -> FORMAT (the schema marker)
// ck:{NS}:c:<id> string     contexts       id -> { value: record text "V R C U E T\n" + metadata + "\n" + data,
//                                                  pxat: ms | null }
// ck:{NS}:p:<id> list       points         id -> { value: [point text, ...] oldest first, pxat }
// ck:{NS}:ids    hash       ids            id -> version
// ck:{NS}:exp    zset       exp            id -> { score: expires at, order }, index 'due' on
//                                          [score, order]; order is the id's UTF-8 bytes as
//                                          char codes, so ties sort as Redis sorts members
// ck:{NS}:ev     stream     log            revision -> { t, i, v } (entry id "<revision>-0")
// ck:{NS}:op:<op> string    ops            op -> { value: reply JSON | 'aborted', pxat }, index 'pxat'
//
// The server's clock (Redis's TIME) is Date.now() of the tab that makes the
// call, read once per call, unless the call passes its time (client clock).
// `pxat` is Redis's own key expiry (SET ... PXAT/PX, PEXPIREAT, PERSIST): a
// key whose pxat is before the call's time reads as missing, as Redis
// deletes it then. So with the server's clock a context with a TTL
// disappears from every read at its expiry, and its Expired event comes
// from a sweep or a write that meets it, as with Redis. Expired replies are
// dropped a few per write; expired contexts and points by the library's
// sweeps, as with Redis. The event log keeps exactly the last `maxlen`
// entries (Redis keeps about that many); readers detect gaps by revision.
//
// Atomicity. A Lua function runs alone on the Redis server: nothing else
// reads or writes between its first command and its reply. Here each call
// is one transaction whose scope is every object store: IndexedDB runs
// readwrite transactions with overlapping scopes one at a time, in order of
// creation, across all connections of the origin, and a readonly one sees
// the state between two readwrite ones, never half of one. The library code
// awaits nothing but the requests of its own transaction, so the
// transaction stays active from its first request to its last and commits
// as one (an error or a thrown exception aborts it: nothing is written).
// (Awaiting a request's promise resumes the code in a microtask of the
// request's success event, while the transaction is still active: current
// browsers and fake-indexeddb do this, and libraries such as idb rely on
// it; the Chromium and Node tests in js-tests/idb-shared run every call
// this way.) Writes are
// acknowledged when the transaction completes, with durability 'strict'.
//
// Where replies may differ from Redis's: ck2_live lists ids in key order
// (Redis in its hash's order, which callers must not rely on). A run-time
// error of the library (Redis: "ERR user_function:<line>: <cause> script:
// ...") rejects with a LuaError whose message is the cause. And on purpose:
// Redis does not roll back a function that fails half-way (an argument
// that passes the library's checks but that a Redis command then refuses,
// such as a reply ttl of "1e3"); here such a call changes nothing.
//
// Events. After a transaction that committed revisions completes, a nudge
// (the last revision) is posted on the BroadcastChannel named after the
// database; waiters in this object are woken directly (a channel does not
// deliver to its sender). events() registers its waiter before it reads, so
// a nudge is not missed; if one were, the wait would time out and the next
// read would find the entries.

import { FUNCTIONS } from './idb-shared-library.js';
import { Keys, ReplyError, STORES, request } from './idb-shared-keys.js';

export { LuaError, ReplyError } from './idb-shared-keys.js';

const SUFFIX = ':contextkit-shared-2';

/**
 * What a read answers when the namespace is not the one joined (its epoch is
 * another, or none): as RedisBackend answers (see redis-backend.cjs), and no
 * read of the library does; the wasm side then reports the manager lost.
 */
const LOST = Object.freeze(['EPOCH', null]);

/** The namespace's epoch in transaction `tx` (null for none). */
async function epochIn(tx) {
  const hash = await request(tx.objectStore('meta').get('hash'));
  return typeof hash?.epoch === 'string' ? hash.epoch : null;
}
/**
 * How long a read of the log waits for a commit when a BroadcastChannel
 * tells of every commit (eventWaitMs): what a lost nudge (a tab that closed
 * between its commit and its message) can delay a change's event by.
 */
const IDLE_WAIT_MS = 30_000;
// (Every IndexedDBShared of an origin has the BroadcastChannel, or none has:
// the package makes them all with the global one.)
const FORMAT = 'contextkit shared namespace, Redis library format 2';

/** Creates the stores of a new database (version 1). */
function create(db) {
  const meta = db.createObjectStore('meta');
  meta.put(FORMAT, 'format');
  for (const name of ['contexts', 'points', 'ids', 'log']) db.createObjectStore(name);
  db.createObjectStore('exp').createIndex('due', ['score', 'order']);
  db.createObjectStore('ops').createIndex('pxat', 'pxat');
}

export class IndexedDBShared {
  static SUFFIX = SUFFIX;
  static FORMAT = FORMAT;

  #name;
  #idb;
  #keyRange;
  #channelClass;
  #channel = null;
  /** A Promise of the open connection, or null (opened again on the next call). */
  #db = null;
  #waiters = new Set();
  /**
   * Set when the database was deleted, upgraded or closed under this object:
   * the next read of the log does not wait, so that the reader looks at the
   * namespace again at once (a wake with no read waiting would be lost).
   */
  #moved = false;
  /** Gets waiting to be read together: { id, resolve, reject } each. */
  #gets = [];
  #closed = false;
  /**
   * The namespace's epoch as ck2_join answered it, or null. A database can
   * only be deleted (or its site data cleared) once every connection to it
   * closed, which this object's does at once (see #open): so the store can
   * only be another one when this object opens it again, and that is where
   * its epoch is compared. `#lost` is set when it is not this one; every
   * read answers LOST from then on (writes learn it from the library).
   */
  #epoch = null;
  #lost = false;

  /** The database that holds namespace `name`. */
  static databaseName(name) {
    return `${name}${SUFFIX}`;
  }

  /** `new IndexedDBShared(name, options)` then `open()`: resolves to the opened namespace. */
  static async open(name, options) {
    const shared = new IndexedDBShared(name, options);
    await shared.open();
    return shared;
  }

  /**
   * The shared namespace `name` (opened by open()). Options: `indexedDB`,
   * `IDBKeyRange`, `BroadcastChannel` (default: the globals; without a
   * BroadcastChannel other tabs' commits are seen when a wait times out),
   * and `timeoutMs`, `operationTtlMs`, `eventRetention`, kept as properties
   * for the wasm side, which reads them from a shared transport as from a
   * RedisBackend (see redis-backend.cjs; unset, it uses its defaults).
   * With a BroadcastChannel, `eventWaitMs` is IDLE_WAIT_MS: every commit in
   * any tab wakes a waiting read (see #wake), so an idle manager reads the
   * database 6 times a minute instead of 3 times a second.
   * `maxStaleMs` (default 0: off), a property too, lets the manager serve a
   * state it read at most that long ago from memory: the wasm side keeps
   * those reads (the core's ClientConfig::max_stale_ms), forgets a context
   * when the manager writes it, and when the reader, woken by another tab's
   * nudge, reads its change.
   */
  constructor(
    name,
    {
      indexedDB = globalThis.indexedDB,
      IDBKeyRange = globalThis.IDBKeyRange,
      BroadcastChannel = globalThis.BroadcastChannel,
      timeoutMs,
      operationTtlMs,
      eventRetention,
      maxStaleMs = 0,
    } = {},
  ) {
    if (typeof name !== 'string' || name === '') throw new TypeError('IndexedDBShared expects a namespace name (a non-empty string)');
    if (!indexedDB || !IDBKeyRange) throw new Error('IndexedDBShared needs IndexedDB, which this environment does not have');
    this.namespace = name;
    Object.assign(this, { timeoutMs, operationTtlMs, eventRetention });
    this.#name = IndexedDBShared.databaseName(name);
    this.#idb = indexedDB;
    this.#keyRange = IDBKeyRange;
    this.#channelClass = BroadcastChannel ?? null;
    if (this.#channelClass) this.eventWaitMs = IDLE_WAIT_MS;
    if (typeof maxStaleMs !== 'number' || !(maxStaleMs >= 0) || maxStaleMs > 86_400_000) {
      throw new RangeError(`maxStaleMs must be a number of milliseconds from 0 to 86400000, got ${String(maxStaleMs)}`);
    }
    this.maxStaleMs = maxStaleMs;
  }

  /** Opens (or creates) the database, and the channel of nudges; again: nothing more. */
  async open() {
    await this.#open();
    if (this.#channelClass && !this.#channel && !this.#closed) {
      this.#channel = new this.#channelClass(this.#name);
      this.#channel.onmessage = () => this.#wake();
      // In Node, a channel would keep the process alive.
      this.#channel.unref?.();
    }
  }

  #open() {
    if (this.#closed) return Promise.reject(new Error(`IndexedDBShared '${this.#name}' is closed`));
    this.#db ??= (async () => {
      const req = this.#idb.open(this.#name, 1);
      req.onupgradeneeded = () => create(req.result);
      const db = await request(req);
      const stores = [...db.objectStoreNames];
      const marked = stores.includes('meta') && (await request(db.transaction('meta').objectStore('meta').get('format'))) === FORMAT;
      if (!marked || !STORES.every((s) => stores.includes(s))) {
        db.close();
        throw new Error(`IndexedDB database '${this.#name}' is not a contextkit shared namespace (no '${FORMAT}' marker)`);
      }
      // Someone deletes or upgrades the database: let them; the next call
      // opens it again (a deleted namespace then answers EPOCH to writes).
      // A waiting read of the log wakes, so that the reader looks at the
      // namespace again now (deleted: its epoch is gone).
      db.onversionchange = () => {
        db.close();
        this.#db = null;
        this.#moved = true;
        this.#wake();
      };
      // The browser closed it (the site's data cleared): likewise.
      db.onclose = () => {
        this.#db = null;
        this.#moved = true;
        this.#wake();
      };
      // Opened again after the one joined was deleted: another store.
      if (this.#epoch !== null && (await epochIn(db.transaction('meta'))) !== this.#epoch) this.#lost = true;
      return db;
    })().catch((e) => {
      this.#db = null;
      throw e;
    });
    return this.#db;
  }

  /**
   * Runs library function `fn` with ARGV `args` (strings, as the Rust client
   * passes them) in one transaction; resolves to its reply (numbers,
   * strings, arrays, null) or rejects with a ReplyError (an error reply) or
   * a LuaError. `id`: for ck2_settle the operation id (its op:<op> key),
   * otherwise unused (the context's id is in `args`). It may also be the
   * call's KEYS relative to the namespace (['meta', 'op:<op>'], as the wasm
   * side passes them to a RedisBackend): ck2_settle's operation id is then
   * taken from its second key.
   */
  async call(fn, id, args) {
    if (Array.isArray(id)) id = fn === 'ck2_settle' && typeof id[1] === 'string' && id[1].startsWith('op:') ? id[1].slice(3) : null;
    const f = typeof fn === 'string' ? FUNCTIONS[fn] : undefined;
    if (!f) throw new ReplyError('ERR Function not found');
    if (!Array.isArray(args) || !args.every((a) => typeof a === 'string')) {
      throw new TypeError(`IndexedDBShared.call('${fn}'): args must be an array of strings`);
    }
    if (fn === 'ck2_settle' && typeof id !== 'string') throw new TypeError('ck2_settle needs the operation id');
    const db = await this.#open();
    if (this.#lost && !f.writes) return LOST;
    const { reply, revision } = await new Promise((resolve, reject) => {
      const tx = db.transaction(STORES, f.writes ? 'readwrite' : 'readonly', f.writes ? { durability: 'strict' } : undefined);
      const keys = new Keys(tx, Date.now(), this.#keyRange);
      let done;
      let failure;
      f.run(keys, id, args)
        .then(async (r) => {
          if (f.writes) await keys.finish();
          done = { reply: r, revision: keys.revision };
        })
        .catch((e) => {
          failure = e;
          try {
            tx.abort();
          } catch {
            // Already finished: oncomplete or onabort reports it.
          }
        });
      tx.oncomplete = () => (done ? resolve(done) : reject(failure ?? new Error(`IndexedDB transaction on '${this.#name}' ended early`)));
      tx.onabort = () => reject(failure ?? tx.error ?? new Error(`IndexedDB transaction on '${this.#name}' was aborted`));
    });
    if (revision !== null) {
      this.#channel?.postMessage(revision);
      this.#wake();
    }
    // The namespace's epoch ([epoch, …]): what every read checks from now on.
    if (fn === 'ck2_join' && Array.isArray(reply) && typeof reply[0] === 'string') {
      this.#epoch = reply[0];
      this.#lost = false;
    }
    return reply;
  }

  /**
   * The record text of `id` as stored, or null: `GET ck:{NS}:c:<id>` (null from its expiry with the
   * server's clock). The gets made before the microtask that the first of them queues are read in one
   * readonly transaction (one snapshot, one transaction's cost for them all).
   */
  get(id) {
    return new Promise((resolve, reject) => {
      if (this.#gets.push({ id: String(id), resolve, reject }) === 1) queueMicrotask(() => this.#readGets());
    });
  }

  async #readGets() {
    const batch = this.#gets;
    this.#gets = [];
    try {
      const db = await this.#open();
      if (this.#lost) {
        for (const g of batch) g.resolve(LOST);
        return;
      }
      const store = db.transaction('contexts').objectStore('contexts');
      const entries = await Promise.all(batch.map((g) => request(store.get(g.id))));
      const now = Date.now();
      for (let i = 0; i < batch.length; i++) {
        const entry = entries[i];
        batch[i].resolve(entry !== undefined && (entry.pxat === null || now <= entry.pxat) ? entry.value : null);
      }
    } catch (e) {
      for (const g of batch) g.reject(e);
    }
  }

  /** `[epoch | null, revision]` of the namespace (revision 0 before ck2_join made it). */
  async head() {
    const db = await this.#open();
    const hash = await request(db.transaction('meta').objectStore('meta').get('hash'));
    return [hash?.epoch ?? null, Number(hash?.rev ?? 0)];
  }

  /**
   * The log entries after revision `after`, oldest first, at most `count`:
   * `[[revision, type, id, version], ...]`. When there are none, waits up
   * to `blockMs` for a commit (here or in another tab) and reads once more.
   */
  async events(after, count, blockMs = 0) {
    const wait = blockMs > 0 && !this.#moved ? this.#wait(blockMs) : null;
    this.#moved = false;
    const first = await this.#read(after, count).catch((e) => {
      wait?.cancel();
      throw e;
    });
    if (first.length > 0 || !wait) {
      wait?.cancel();
      return first;
    }
    await wait.promise;
    return this.#closed ? [] : this.#read(after, count);
  }

  async #read(after, count) {
    const db = await this.#open();
    const log = db.transaction('log').objectStore('log');
    const range = this.#keyRange.lowerBound(Number(after), true);
    const n = count > 0 ? Number(count) : undefined;
    const [revisions, entries] = await Promise.all([request(log.getAllKeys(range, n)), request(log.getAll(range, n))]);
    return entries.map((e, i) => [revisions[i], e.t, e.i, Number(e.v)]);
  }

  /** A wait for the next nudge, at most `ms`: { promise, cancel }. */
  #wait(ms) {
    let wake;
    const promise = new Promise((resolve) => {
      const timer = setTimeout(() => wake(), ms);
      wake = () => {
        clearTimeout(timer);
        this.#waiters.delete(wake);
        resolve();
      };
      this.#waiters.add(wake);
    });
    return { promise, cancel: wake };
  }

  #wake() {
    for (const wake of [...this.#waiters]) wake();
  }

  /** Closes the connection and the channel; waiting events() calls resolve to []. */
  close() {
    this.#closed = true;
    this.#epoch = null;
    this.#channel?.close();
    this.#channel = null;
    this.#wake();
    const db = this.#db;
    this.#db = null;
    db?.then(
      (d) => d.close(),
      () => {},
    );
  }
}
