// Types of the npm package `contextkit` for Node only: index.cjs and
// index.mjs export these classes, browser.mjs does not (see common.d.cts for
// the rest, and for why these are .d.cts files).

import type { ContextStorage, SharedBackend, StorageEntries } from './common.cjs';

/**
 * A storage in a directory, for Node (not exported in browsers), in the
 * on-disk format of the Rust crate's `FileStorage`: a directory written by
 * either opens in the other with the same contexts. One file per context,
 * named by the SHA-256 of its id (safe for any id), replaced atomically
 * (temporary file, fsync, rename, fsync of the directory). A file that is
 * truncated or garbled fails its checksum: open() reports it by path and
 * loads the rest.
 *
 * The first operation takes the directory's lock (`contextkit.lock`, which
 * names the holding process), shared with the Rust crate: while it is held,
 * another FileStorage on the directory (in this process or another, Node's or
 * Rust's) is refused, and `ContextManager.open` rejects with STORAGE naming
 * the directory and the holder (`pid 123 on host`). The lock goes with
 * `close()`, with `free()` of the manager opened on this storage, and with
 * the end of the process; a lock left by a process that died (killed,
 * crashed) is taken over. A FileStorage serves one open manager at a time.
 */
export declare class FileStorage implements ContextStorage {
  /**
   * The directory is created on first use. `ContextManager.open` rejects
   * with STORAGE naming the directory if it is a file, or one it cannot
   * create files in (read-only), or if another FileStorage holds it.
   */
  constructor(dir: string);
  /** The directory, as an absolute path. */
  readonly dir: string;
  /** The path of the file that holds `key`. */
  pathOf(key: string): string;
  get(key: string): Promise<string | undefined>;
  put(key: string, value: string): Promise<void>;
  delete(key: string): Promise<void>;
  list(): Promise<string[]>;
  entries(): Promise<StorageEntries & { problems: string[] }>;
  /**
   * Waits for the operations called so far, then lets the directory go
   * (removes its lock); the next operation takes it again. `free()` of the
   * manager opened on this storage calls it.
   */
  close(): Promise<void>;
}
/** Options of a `RedisBackend`. */
export interface RedisBackendOptions {
  /** `redis://[user:password@]host[:port][/db]`, or `rediss://` for TLS. */
  url: string;
  /** The namespace: 1 to 128 bytes, no braces or control characters. */
  namespace: string;
  /** How long one call may take before it fails with STORAGE (default 2000). */
  timeoutMs?: number;
  /** How long Redis keeps a write's reply for a retry of it (default 60000). */
  operationTtlMs?: number;
  /** About how many events the namespace's stream keeps (default 100000). */
  eventRetention?: number;
  /**
   * Serve a record read at most this long ago from memory (default 0: every
   * read goes to Redis). A manager sees its own writes at once, and another
   * manager's change as soon as its event reaches this one (usually a round
   * trip after the commit); a change whose event does not come (an expiry
   * Redis applies itself, an entry trimmed from the stream) at most
   * `maxStaleMs` late.
   */
  maxStaleMs?: number;
  /** node-redis's `createClient` (default: the one of the `redis` package this package finds). */
  createClient?: (options: { url: string; socket?: object }) => unknown;
}

/**
 * Shared mode over Redis 7+ for Node, on the npm package `redis`
 * (node-redis, an optional peer dependency: `npm install redis`). It runs
 * the same Redis library (`contextkit.lua`, shipped in this package) and
 * record format as the Rust crate's `RedisBackend`, so Rust and Node
 * managers on one namespace are one store. Keys of a namespace share one
 * hash tag (`ck:{namespace}:...`). A write whose answer is lost is settled
 * exactly (an operation id makes a retry or a late copy a no-op); a Redis
 * that lost the namespace (restarted without persistence) is reported as
 * STORAGE, not papered over. The server must keep every key
 * (`maxmemory-policy noeviction`): connect refuses one that evicts. A read
 * of the event stream that fails for anything but an outage is written
 * once to `console.error` (the reader tries again).
 */
export declare class RedisBackend implements SharedBackend {
  /**
   * Checks the options (a TypeError or RangeError with `code`
   * 'INVALID_ARGUMENT'; an unknown option too); connects when a manager
   * connects. One manager at a time: `ContextManager.connect` refuses a
   * RedisBackend whose manager was not freed yet.
   */
  constructor(options: RedisBackendOptions);
  readonly namespace: string;
  readonly timeoutMs: number;
  readonly operationTtlMs: number;
  readonly eventRetention: number;
  readonly maxStaleMs: number;
}
