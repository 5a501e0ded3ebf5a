'use strict';
// FileStorage: a ContextStorage in a directory, for Node (see node-only.d.cts).
// The directory's format is the Rust crate's FileStorage's, documented at the
// top of native/src/file.rs: a directory written by either opens in the
// other. Its lock is file-lock.cjs (the protocol of native/src/file/lock.rs).

const crypto = require('node:crypto');
const fs = require('node:fs/promises');
const path = require('node:path');
const { acquire } = require('./file-lock.cjs');

/** File operations at once, across keys (each key runs one at a time anyway). */
const MAX_CONCURRENT = 64;
/** How every file begins, before the checksum: `contextkit <64 hex digits>\n`. */
const MAGIC = 'contextkit ';
const HEADER_LEN = MAGIC.length + 64 + 1;
const HEX64 = /^[0-9a-f]{64}$/;
/** The manager-wide facts (key 'meta'). */
const META = 'meta.json';
/** A context's record (key 'c/<id>'): the SHA-256 of the id's UTF-8. */
const CONTEXT = /^ctx-[0-9a-f]{64}\.json$/;
/** A value under any other key: the SHA-256 of the key's UTF-16 code units. */
const OTHER = /^key-[0-9a-f]{64}\.json$/;
/** A write that never reached its rename. */
const OWN_TEMP = /^(?:meta|(?:ctx|key)-[0-9a-f]{64})\.json\.tmp$/;
/** serde_json writes a record's id first: `{"state":{"id":"…"`. */
/**
 * A file of the npm package's format before it took the Rust crate's: the
 * SHA-256 of the key's UTF-16 code units, a header line `{"key","sha256"}`,
 * then the value. Opening a directory moves such files to the current format.
 */
const OLD_FILE = /^[0-9a-f]{64}\.json$/;
const RECORD_ID = /^\{"state":\{"id":("(?:[^"\\]|\\.)*")/;

const sha256 = (data, encoding) => crypto.createHash('sha256').update(data, encoding).digest('hex');
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** The id of a context key `c/<id>` (as every id contextkit writes, valid Unicode), or null. */
const contextId = (key) => (key.startsWith('c/') && key.isWellFormed() ? key.slice(2) : null);

/** Whether `key` is stored as its value's text alone (contextkit's keys) rather than as a key-value pair. */
const isOwnKey = (key) => key === 'meta' || contextId(key) !== null;

/**
 * The file name of `key`: `meta.json`, `ctx-<SHA-256 of the id>.json` for
 * `c/<id>`, and for every other key `key-<SHA-256 of its UTF-16 code
 * units>.json` (lone surrogates included), so every key has its own name
 * and names differ in no way a file system could fold together.
 */
function fileName(key) {
  if (key === 'meta') return META;
  const id = contextId(key);
  return id !== null ? `ctx-${sha256(id, 'utf8')}.json` : `key-${sha256(key, 'utf16le')}.json`;
}

/** A file's bytes: the header line with the checksum of the JSON, then the JSON. */
function encode(key, value) {
  const body = Buffer.from(isOwnKey(key) ? value : JSON.stringify({ key, value }), 'utf8');
  return Buffer.concat([Buffer.from(`${MAGIC}${sha256(body)}\n`, 'latin1'), body]);
}

class Corrupt extends Error {}

/** The JSON text of a file's bytes once its header matches it; `corrupt(why)` makes the error. */
function decode(bytes, corrupt) {
  if (bytes.length < MAGIC.length || bytes.toString('latin1', 0, MAGIC.length) !== MAGIC) throw corrupt('missing header');
  if (bytes.length < HEADER_LEN) throw corrupt('bad header');
  const digest = bytes.toString('latin1', MAGIC.length, HEADER_LEN - 1);
  if (bytes[HEADER_LEN - 1] !== 0x0a || !HEX64.test(digest)) throw corrupt('bad header');
  const json = bytes.subarray(HEADER_LEN);
  if (sha256(json) !== digest) throw corrupt('checksum mismatch');
  try {
    return utf8.decode(json);
  } catch {
    throw corrupt('not valid UTF-8');
  }
}

/** The id of a record's JSON text, or null. */
function recordId(text) {
  const m = RECORD_ID.exec(text);
  if (m !== null) return JSON.parse(m[1]);
  try {
    const id = JSON.parse(text)?.state?.id;
    return typeof id === 'string' ? id : null;
  } catch {
    return null;
  }
}

/**
 * A storage in a directory, in the format of the Rust crate's FileStorage
 * (one checksummed file per context, named by the SHA-256 of its id, plus
 * `meta.json`): a directory written by either opens in the other.
 *
 * - A write goes to a temporary file, which is flushed to disk
 *   (`filehandle.sync()`), renamed over the old file, and the directory is
 *   flushed too: after a crash a key holds its old or its new value, never a
 *   torn one. `put` and `delete` resolve once the change is durable.
 * - Operations on one key run one at a time, in call order.
 * - The first operation creates the directory if missing and takes its lock
 *   (`contextkit.lock`, shared with the Rust crate): while this storage holds
 *   it, any other FileStorage, in this process or another, Node's or Rust's,
 *   is refused. `close()` lets it go (as does `free()` of the manager opened
 *   on it, and the end of the process); a lock left by a process that died is
 *   taken over.
 */
class FileStorage {
  #dir;
  /** A Promise of the lock while it is being taken. */
  #taking = null;
  /** The lock, once taken. */
  #lock = null;
  /** Operations called and not yet settled (close() waits for them). */
  #pending = 0;
  #idle = [];
  #closing = null;
  /** Per key: a Promise that settles when the key's last queued operation has. */
  #queues = new Map();
  /** Temporary files of writes in progress, which a bulk read must leave alone. */
  #temps = new Set();
  #active = 0;
  #waiting = [];

  /** @param {string} dir the directory (created if missing) */
  constructor(dir) {
    if (typeof dir !== 'string' || dir === '') throw new TypeError('FileStorage expects a directory path');
    this.#dir = path.resolve(dir);
  }

  /** The directory, as an absolute path. */
  get dir() {
    return this.#dir;
  }

  /** The path of the file that holds `key`. */
  pathOf(key) {
    return path.join(this.#dir, fileName(key));
  }

  /**
   * The value of `key`, or undefined; rejects naming the file if it is
   * damaged. (The id inside a context's record is the manager's to check.)
   */
  get(key) {
    return this.#queued(key, async () => {
      const file = this.pathOf(key);
      let bytes;
      try {
        bytes = await this.#slot(() => fs.readFile(file));
      } catch (e) {
        if (e.code === 'ENOENT') return undefined;
        throw e;
      }
      const text = decode(bytes, corrupter(file));
      return isOwnKey(key) ? text : pairOf(text, file).value;
    });
  }

  /** Resolves once `value` is durably stored under `key`. */
  put(key, value) {
    if (typeof key !== 'string' || typeof value !== 'string') {
      return Promise.reject(new TypeError('FileStorage.put expects a string key and a string value'));
    }
    if (isOwnKey(key) && !value.isWellFormed()) {
      return Promise.reject(new TypeError(`FileStorage.put: the value of ${JSON.stringify(key)} is not valid Unicode (it has a lone surrogate)`));
    }
    return this.#queued(key, () => this.#replace(this.pathOf(key), encode(key, value)));
  }

  /** Resolves once `key` is durably gone; deleting an absent key is not an error. */
  delete(key) {
    return this.#queued(key, async () => {
      try {
        await fs.unlink(this.pathOf(key));
      } catch (e) {
        if (e.code === 'ENOENT') return;
        throw e;
      }
      await this.#syncDir();
    });
  }

  /** Every key whose file reads back intact. */
  async list() {
    return (await this.entries()).entries.map(([key]) => key);
  }

  /**
   * Every key with its value. A file that cannot be read, or fails its check,
   * is left out and named in `problems`. Temporary files of writes that never
   * reached their rename (a crash) are removed.
   */
  async entries() {
    this.#pending++;
    try {
      await this.#open();
      return await this.#entries();
    } finally {
      this.#settled();
    }
  }

  /**
   * Waits for the operations called so far, then lets the directory go
   * (removes its lock). The next operation takes it again. `free()` of a
   * manager opened on this storage calls it.
   */
  close() {
    if (this.#pending === 0) {
      const lock = this.#lock;
      this.#lock = null;
      this.#taking = null;
      lock?.release();
      return Promise.resolve();
    }
    if (this.#closing === null) {
      // An opener in this process waits for this (see file-lock.cjs).
      this.#closing = new Promise((resolve) => this.#idle.push(resolve)).then(() => {
        this.#closing = null;
        return this.close();
      });
    }
    return this.#closing;
  }

  async #entries() {
    const names = await fs.readdir(this.#dir);
    const entries = [];
    const problems = [];
    const old = [];
    await Promise.all(
      names.map(async (name) => {
        const file = path.join(this.#dir, name);
        if (OWN_TEMP.test(name)) {
          if (!this.#temps.has(file)) await fs.rm(file, { force: true });
          return;
        }
        if (OLD_FILE.test(name)) {
          old.push(file);
          return;
        }
        if (name !== META && !CONTEXT.test(name) && !OTHER.test(name)) return;
        try {
          entries.push(await this.#read(file, name));
        } catch (e) {
          if (e.code === 'ENOENT') return; // deleted meanwhile
          problems.push(e instanceof Corrupt ? e.message : `cannot read ${file}: ${e.message}`);
        }
      }),
    );
    if (old.length > 0) await this.#migrate(old, entries, problems);
    return { entries, problems };
  }

  /**
   * Moves files of the package's earlier format (OLD_FILE) to the current
   * one: each is checked (header, checksum, name), written in the current
   * format (durably, unless a file of the current format has its key
   * already: that one was written later, or by an earlier move), then
   * removed. A file that fails its check stays where it is and is reported.
   */
  async #migrate(files, entries, problems) {
    const present = new Set(entries.map(([key]) => key));
    for (const file of files) {
      let key;
      let value;
      try {
        const bytes = await this.#slot(() => fs.readFile(file));
        const newline = bytes.indexOf(10);
        const header = newline < 0 ? null : JSON.parse(bytes.subarray(0, newline).toString('utf8'));
        const body = newline < 0 ? null : bytes.subarray(newline + 1);
        if (typeof header?.key !== 'string' || typeof header.sha256 !== 'string' || sha256(body) !== header.sha256) {
          throw new Corrupt(`corrupt file ${file} of the earlier format: its header or checksum does not match (left in place)`);
        }
        if (`${sha256(header.key, 'utf16le')}.json` !== path.basename(file)) {
          throw new Corrupt(`misplaced file ${file} of the earlier format: it holds key ${JSON.stringify(header.key)} (left in place)`);
        }
        key = header.key;
        value = utf8.decode(body);
      } catch (e) {
        if (e.code === 'ENOENT') continue;
        problems.push(e instanceof Corrupt ? e.message : `cannot move ${file} of the earlier format: ${e.message}`);
        continue;
      }
      if (!present.has(key)) {
        await this.#queued(key, () => this.#replace(this.pathOf(key), encode(key, value)));
        entries.push([key, value]);
        present.add(key);
      }
      await fs.rm(file, { force: true });
    }
    await this.#syncDir();
  }

  /** Reads and checks the file `name`: `[key, value]`, or throws a Corrupt naming it. */
  async #read(file, name) {
    const text = decode(await this.#slot(() => fs.readFile(file)), corrupter(file));
    if (name === META) return ['meta', text];
    if (CONTEXT.test(name)) {
      const id = recordId(text);
      if (id === null) throw new Corrupt(`corrupt context file ${file}: not a context record (no state.id)`);
      const expected = fileName(`c/${id}`);
      if (expected !== name) throw new Corrupt(`misplaced context file ${file}: it holds '${id}', whose file is ${expected}`);
      return [`c/${id}`, text];
    }
    const { key, value } = pairOf(text, file);
    if (fileName(key) !== name) throw new Corrupt(`misplaced file ${file}: it holds key ${JSON.stringify(key)}, whose file is ${fileName(key)}`);
    return [key, value];
  }

  /** Replaces `file` with `bytes` atomically and durably. */
  async #replace(file, bytes) {
    const temp = `${file}.tmp`;
    this.#temps.add(temp);
    try {
      await this.#slot(async () => {
        const handle = await fs.open(temp, 'w');
        try {
          await handle.writeFile(bytes);
          await handle.sync();
        } finally {
          await handle.close();
        }
        await fs.rename(temp, file);
      });
    } catch (e) {
      await fs.rm(temp, { force: true }).catch(() => {});
      throw e;
    } finally {
      this.#temps.delete(temp);
    }
    await this.#syncDir();
  }

  /** Flushes a directory (by default the storage's), so a rename or unlink in it is durable. */
  async #syncDir(dir = this.#dir) {
    // Windows cannot open a directory for flushing; its renames are durable on their own.
    if (process.platform === 'win32') return;
    await this.#slot(async () => {
      const handle = await fs.open(dir, 'r');
      try {
        await handle.sync();
      } finally {
        await handle.close();
      }
    });
  }

  /**
   * Creates the directory if missing (durably: its parent is flushed too)
   * and takes its lock, unless this storage holds it. Taking the lock makes
   * a file in the directory, so a path that is a file, or a directory this
   * process may not write in, fails here, naming the directory.
   */
  #open() {
    if (this.#lock !== null) return Promise.resolve();
    this.#taking ??= (async () => {
      let created;
      try {
        created = await fs.mkdir(this.#dir, { recursive: true });
      } catch (e) {
        if (e.code === 'EEXIST' || e.code === 'ENOTDIR') {
          throw new Error(`the storage directory ${this.#dir} is not a directory (${e.code}: a file is in its place)`);
        }
        throw new Error(`cannot create the storage directory ${this.#dir}: ${e.message}`);
      }
      if (created !== undefined) await this.#syncDir(path.dirname(created));
      this.#lock = await acquire(this.#dir, () => this.#closing);
    })().catch((e) => {
      this.#taking = null;
      throw e;
    });
    return this.#taking;
  }

  /** One operation fewer pending; wakes close() when none is left. */
  #settled() {
    this.#pending--;
    if (this.#pending === 0) for (const wake of this.#idle.splice(0)) wake();
  }

  /** Runs `op` after every operation on `key` called before it has settled, with the directory held. */
  #queued(key, op) {
    this.#pending++;
    const run = (this.#queues.get(key) ?? Promise.resolve()).then(async () => {
      await this.#open();
      return op();
    });
    const settled = run.then(
      () => {},
      () => {},
    );
    this.#queues.set(key, settled);
    settled.then(() => {
      if (this.#queues.get(key) === settled) this.#queues.delete(key);
      this.#settled();
    });
    return run;
  }

  /** Runs `op` when fewer than MAX_CONCURRENT file operations are running (never nested). */
  async #slot(op) {
    if (this.#active < MAX_CONCURRENT) this.#active++;
    else await new Promise((resolve) => this.#waiting.push(resolve)); // the slot is handed over
    try {
      return await op();
    } finally {
      const next = this.#waiting.shift();
      if (next) next();
      else this.#active--;
    }
  }
}

const corrupter = (file) => {
  const name = path.basename(file);
  const what = name === META ? 'meta file' : CONTEXT.test(name) ? 'context file' : 'file';
  return (why) => new Corrupt(`corrupt ${what} ${file}: ${why}`);
};

/** The `{ key, value }` a file of another key holds. */
function pairOf(text, file) {
  let pair;
  try {
    pair = JSON.parse(text);
  } catch {
    pair = null;
  }
  if (typeof pair?.key !== 'string' || typeof pair.value !== 'string') {
    throw new Corrupt(`corrupt file ${file}: not a {"key", "value"} pair`);
  }
  return pair;
}

/** `v instanceof FileStorage`, false for what cannot be asked (a revoked proxy). */
function isFileStorage(v) {
  try {
    return v instanceof FileStorage;
  } catch {
    return false;
  }
}

/**
 * Ties FileStorages to the managers opened on them (called once by
 * index.cjs with the package's classes): `ContextManager.open` refuses a
 * FileStorage that another open manager uses, with STORAGE, and `free()`
 * (or `[Symbol.dispose]()`, or the manager being garbage-collected) closes
 * it, letting its directory go once its writes are done.
 */
function closeWithManager(ContextManager, ContextError) {
  /** Storages in use by a manager (or being opened). */
  const inUse = new WeakSet();
  /** Manager → its FileStorage. */
  const storageOf = new WeakMap();
  const letGo = (storage) => {
    inUse.delete(storage);
    storage.close().catch(() => {});
  };
  const finalizer = new FinalizationRegistry(letGo);
  const open = ContextManager.open;
  ContextManager.open = function open_(storage, config) {
    if (!isFileStorage(storage)) return open.call(this, storage, config);
    if (inUse.has(storage)) {
      return Promise.reject(
        new ContextError(
          'STORAGE',
          `ContextManager.open: cannot open ${storage.dir}: this FileStorage is in use by another ContextManager; free() that one first`,
        ),
      );
    }
    inUse.add(storage);
    return open.call(this, storage, config).then(
      (opened) => {
        storageOf.set(opened.manager, storage);
        finalizer.register(opened.manager, storage, opened.manager);
        return opened;
      },
      (e) => {
        letGo(storage);
        throw e;
      },
    );
  };
  Object.defineProperty(ContextManager.open, 'name', { value: 'open' });
  const proto = ContextManager.prototype;
  for (const key of ['free', Symbol.dispose]) {
    const method = proto[key];
    if (typeof method !== 'function') continue;
    const wrapped = function () {
      const result = method.call(this);
      const storage = storageOf.get(this);
      if (storage !== undefined) {
        storageOf.delete(this);
        finalizer.unregister(this);
        letGo(storage);
      }
      return result;
    };
    Object.defineProperty(wrapped, 'name', { value: method.name });
    proto[key] = wrapped;
  }
}

module.exports = { FileStorage, closeWithManager };
