'use strict';
// FileStorage: a ContextStorage in a directory, for Node (see index.d.ts).

const crypto = require('node:crypto');
const fs = require('node:fs/promises');
const path = require('node:path');

/** File operations at once, across keys (each key runs one at a time anyway). */
const MAX_CONCURRENT = 64;
/** A stored file: the SHA-256 of its key, in hex. */
const FILE = /^[0-9a-f]{64}\.json$/;
/** A temporary file of a write: the stored file's name, the process and a random part. */
const TEMP = /^[0-9a-f]{64}\.json\.\d+\.[0-9a-f]+\.tmp$/;

const sha256 = (data, encoding) => crypto.createHash('sha256').update(data, encoding).digest('hex');

/**
 * The file name of `key`: the SHA-256 of its UTF-16 code units, so every
 * string (lone surrogates included) has its own name, and names differ in no
 * way a file system could fold together (case, Unicode normalisation).
 */
const fileName = (key) => `${sha256(key, 'utf16le')}.json`;

class Corrupt extends Error {}

/**
 * A storage in a directory: one file per key, named by the SHA-256 of the key
 * (no path traversal, no collisions between keys that differ in case or in
 * characters a file system rejects). A file holds a header line with its key
 * and the SHA-256 of the value, then the value; a truncated or garbled file
 * fails the check and is reported by name.
 *
 * - A write goes to a temporary file, which is flushed to disk
 *   (`filehandle.sync()`), renamed over the old file, and the directory is
 *   flushed too: after a crash a key holds its old or its new value, never a
 *   torn one. `put` and `delete` resolve once the change is durable.
 * - Operations on one key run one at a time, in call order.
 * - The directory is created on first use.
 * - Use one FileStorage per directory at a time (one process, one object):
 *   opening a directory removes the temporary files other writers left.
 */
class FileStorage {
  #dir;
  #ready = null;
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

  /** The value of `key`, or undefined; rejects naming the file if it is damaged. */
  get(key) {
    return this.#queued(key, async () => {
      try {
        return (await this.#read(this.pathOf(key))).value;
      } catch (e) {
        if (e.code === 'ENOENT') return undefined;
        throw e;
      }
    });
  }

  /** Resolves once `value` is durably stored under `key`. */
  put(key, value) {
    if (typeof key !== 'string' || typeof value !== 'string') {
      return Promise.reject(new TypeError('FileStorage.put expects a string key and a string value'));
    }
    const body = Buffer.from(value, 'utf8');
    const header = `${JSON.stringify({ key, sha256: sha256(body) })}\n`;
    return this.#queued(key, () => this.#replace(this.pathOf(key), Buffer.concat([Buffer.from(header, 'utf8'), body])));
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
    await this.#usable();
    const names = await fs.readdir(this.#dir);
    const entries = [];
    const problems = [];
    await Promise.all(
      names.map(async (name) => {
        const file = path.join(this.#dir, name);
        if (TEMP.test(name)) {
          if (!this.#temps.has(file)) await fs.rm(file, { force: true });
          return;
        }
        if (!FILE.test(name)) return;
        try {
          const { key, value } = await this.#read(file);
          entries.push([key, value]);
        } catch (e) {
          if (e.code === 'ENOENT') return; // deleted meanwhile
          problems.push(e instanceof Corrupt ? e.message : `cannot read ${file}: ${e.message}`);
        }
      }),
    );
    return { entries, problems };
  }

  /** Reads and checks one file: `{ key, value }`, or throws a Corrupt naming it. */
  async #read(file) {
    const bytes = await this.#slot(() => fs.readFile(file));
    const corrupt = (why) => new Corrupt(`corrupt file ${file}: ${why}`);
    const newline = bytes.indexOf(0x0a);
    if (newline < 0) throw corrupt('no header line (truncated)');
    let header;
    try {
      header = JSON.parse(bytes.subarray(0, newline).toString('utf8'));
    } catch {
      throw corrupt('the header line is not JSON (garbled)');
    }
    if (typeof header?.key !== 'string' || typeof header.sha256 !== 'string') throw corrupt('the header line lacks its key or checksum');
    const body = bytes.subarray(newline + 1);
    if (sha256(body) !== header.sha256) throw corrupt('the value does not match its checksum (truncated or garbled)');
    if (fileName(header.key) !== path.basename(file)) throw corrupt(`it holds key ${JSON.stringify(header.key)}, whose file is ${fileName(header.key)}`);
    return { key: header.key, value: body.toString('utf8') };
  }

  /** Replaces `file` with `bytes` atomically and durably. */
  async #replace(file, bytes) {
    await this.#mkdir();
    const temp = `${file}.${process.pid}.${crypto.randomBytes(6).toString('hex')}.tmp`;
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
   * Creates the directory if missing and checks that files can be made in
   * it (by making and removing one), so that a manager opened on a path that
   * is a file, or on a directory it may not write to, fails at open naming
   * the directory instead of at each write.
   */
  async #usable() {
    await this.#mkdir();
    const probe = path.join(this.#dir, `${'0'.repeat(64)}.json.${process.pid}.${crypto.randomBytes(6).toString('hex')}.tmp`);
    this.#temps.add(probe);
    try {
      await (await fs.open(probe, 'wx')).close();
      await fs.rm(probe, { force: true });
    } catch (e) {
      throw new Error(`cannot write in the storage directory ${this.#dir}: ${e.message}`);
    } finally {
      this.#temps.delete(probe);
    }
  }

  /** Creates the directory if missing, durably (its parent is flushed too). */
  #mkdir() {
    this.#ready ??= (async () => {
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
    })().catch((e) => {
      this.#ready = null;
      throw e;
    });
    return this.#ready;
  }

  /** Runs `op` after every operation on `key` called before it has settled. */
  #queued(key, op) {
    const run = (this.#queues.get(key) ?? Promise.resolve()).then(op);
    const settled = run.then(
      () => {},
      () => {},
    );
    this.#queues.set(key, settled);
    settled.then(() => {
      if (this.#queues.get(key) === settled) this.#queues.delete(key);
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

module.exports = { FileStorage };
