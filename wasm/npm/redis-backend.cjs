'use strict';
// RedisBackend: shared mode over Redis for Node (see node-only.d.cts), on the
// `redis` npm package (node-redis), an optional peer dependency.
//
// It runs the same Redis library as the Rust crate (contextkit.lua, shipped
// in this package) with the same arguments and record format, so Rust and
// Node managers on one namespace are one store. This object only moves the
// library's calls; the wasm module decides what to call and reads the
// replies (the core's SharedClient, core/src/shared/client.rs, with the
// format of core/src/shared/wire.rs). Its interface towards the module, the
// shared transport (the core's Transport trait, made of these methods by
// wasm/src/shared.rs), is:
//
//   open()                      connect, check the server, load the library
//   call(fn, keys, args)        FCALL/FCALL_RO of a library function; `keys`
//                               are relative to the namespace ('meta',
//                               'c:<id>', ...); resolves to the raw reply,
//                               rejects with an Error whose `outcomeUnknown`
//                               is true when no answer came in time; a read
//                               (FCALL_RO) answers ['EPOCH', null] if the
//                               namespace is not the one joined
//   get(id)                     the record text of live `id`, or null; ['EPOCH', null] if the
//                               namespace is not the one joined
//   head()                      [epoch or null, last revision]
//   events(after, count, block) the stream entries after revision `after`
//                               as [revision, type, id, version], waiting up
//                               to `block` ms when there are none
//   close()                     disconnects
//
// and the properties namespace, timeoutMs, operationTtlMs, eventRetention,
// maxStaleMs (reads the wasm side may serve from memory, see ClientConfig).

const fs = require('node:fs');
const path = require('node:path');

const LIBRARY_FILE = path.join(__dirname, 'contextkit.lua');
/**
 * What a read answers when the namespace is not the one joined (its epoch is
 * another, or none): the store lost its data. No read of the library answers
 * it (the core's wire::lost_reply); the wasm side then reports the manager lost.
 */
const LOST = Object.freeze(['EPOCH', null]);
/** Entries read at most per XREAD. */
const BATCH = 1000;

let library = null;
function loadLibrary() {
  if (library === null) {
    const source = fs.readFileSync(LIBRARY_FILE, 'utf8');
    const m = /^local LIBRARY_VERSION = '(\d+)'$/m.exec(source);
    if (!m) throw new Error(`${LIBRARY_FILE} declares no LIBRARY_VERSION`);
    library = { source, version: Number(m[1]) };
  }
  return library;
}

/** Whether `e` is Redis refusing a call because the library is not loaded (answered: nothing ran). */
const missingLibrary = (e) => !e?.outcomeUnknown && /Function not found/i.test(e?.message);

function namespaceProblem(ns) {
  if (typeof ns !== 'string') return `namespace must be a string, got ${ns === null ? 'null' : typeof ns}`;
  const bytes = Buffer.byteLength(ns);
  if (bytes < 1 || bytes > 128) return `namespace is ${bytes} bytes; it must be 1 to 128`;
  // Braces would change the hash tag; control characters have no place in a key.
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it looks for
  if (/[{}\u0000-\u001f\u007f-\u009f]/.test(ns)) return `namespace ${JSON.stringify(ns)} contains a brace or a control character`;
  return null;
}

/** `f()`, or undefined if it throws (closing what may be closed already). */
function quietly(f) {
  try {
    return f();
  } catch {
    return undefined;
  }
}

/** Closes a node-redis client, whatever state it is in; never throws. */
function end(client) {
  return Promise.resolve(quietly(() => (client.destroy ? client.destroy() : client.quit()))).catch(() => {});
}

/** `url` for messages: its password, if any, as ***. */
function withoutPassword(url) {
  try {
    const u = new URL(url);
    if (u.password === '') return url;
    u.password = '***';
    return u.href;
  } catch {
    return url.replace(/\/\/[^/]*@/, '//***@');
  }
}

/** The options a RedisBackend takes. */
const OPTIONS = ['url', 'namespace', 'timeoutMs', 'operationTtlMs', 'eventRetention', 'maxStaleMs', 'createClient'];

/** A TypeError or RangeError of the constructor, with the code of a ContextError for bad input. */
function refused(Kind, message) {
  const err = new Kind(`RedisBackend: ${message}`);
  err.code = 'INVALID_ARGUMENT';
  return err;
}

function positive(name, v, fallback, max) {
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > max) {
    throw refused(RangeError, `${name} must be an integer from 1 to ${max}, got ${String(v)}`);
  }
  return v;
}

/** What the timer of a call that got no answer in time rejects with. */
const LATE = Symbol('no answer in time');

/** Whether `e` is an error reply of the server (it answered), as node-redis's ErrorReply and its subclasses. */
function isErrorReply(e) {
  for (let p = e; p !== null && typeof p === 'object'; p = Object.getPrototypeOf(p)) {
    if (p.constructor?.name === 'ErrorReply') return true;
  }
  return false;
}

class RedisBackend {
  #url;
  #shownUrl;
  #prefix;
  #client = null;
  #reader = null;
  #lastError = null;
  #createClient;
  /** Set once open() connected, until close(). */
  #connected = false;
  /**
   * The current open(), until close(): a connection made for an earlier one
   * (a manager freed meanwhile) is let go, not kept.
   */
  #session = null;
  /** The reader's connection while it connects (concurrent callers share it). */
  #readerPending = null;
  /** Whether a failed read of the events was reported (once per object). */
  #saidEventsFail = false;
  /** Reads waiting to be sent together: { key, resolve, reject } each. */
  #gets = [];
  /** The epoch of the namespace joined (from ck2_join's reply), which every read checks. */
  #epoch = null;

  /**
   * @param {object} options
   * @param {string} options.url redis://[user:password@]host[:port][/db] (rediss:// for TLS)
   * @param {string} options.namespace 1 to 128 bytes, no braces or control characters
   * @param {number} [options.timeoutMs] how long one call may take before it fails with STORAGE (default 2000)
   * @param {number} [options.operationTtlMs] how long Redis remembers a write's reply for a retry (default 60000)
   * @param {number} [options.eventRetention] about how many events the namespace's stream keeps (default 100000)
   * @param {number} [options.maxStaleMs] serve a record read at most this long ago from memory (default 0: off; the wasm module keeps those reads, see the core's ClientConfig::max_stale_ms)
   * @param {Function} [options.createClient] node-redis's createClient (default: require('redis').createClient)
   */
  constructor(options) {
    if (options === null || typeof options !== 'object') {
      throw refused(TypeError, 'expects { url, namespace }');
    }
    const unknown = Object.keys(options).filter((k) => !OPTIONS.includes(k));
    if (unknown.length > 0) {
      throw refused(TypeError, `unknown option ${unknown.map((k) => JSON.stringify(k)).join(', ')}; the options are ${OPTIONS.join(', ')}`);
    }
    const { url, namespace } = options;
    if (typeof url !== 'string' || !/^rediss?:\/\//.test(url)) {
      throw refused(TypeError, `url must be a redis:// or rediss:// URL, got ${JSON.stringify(url)}`);
    }
    const problem = namespaceProblem(namespace);
    if (problem) throw refused(TypeError, problem);
    this.#url = url;
    // For messages: the URL without its password.
    this.#shownUrl = withoutPassword(url);
    this.namespace = namespace;
    this.#prefix = `ck:{${namespace}}:`;
    this.timeoutMs = positive('timeoutMs', options.timeoutMs, 2000, 86_400_000);
    this.operationTtlMs = positive('operationTtlMs', options.operationTtlMs, 60_000, 86_400_000 * 365);
    this.eventRetention = positive('eventRetention', options.eventRetention, 100_000, 2 ** 40);
    const { maxStaleMs = 0 } = options;
    if (typeof maxStaleMs !== 'number' || !(maxStaleMs >= 0) || maxStaleMs > 86_400_000) {
      throw refused(RangeError, `maxStaleMs must be a number of milliseconds from 0 to 86400000, got ${String(maxStaleMs)}`);
    }
    this.maxStaleMs = maxStaleMs;
    if (options.createClient !== undefined && typeof options.createClient !== 'function') {
      throw refused(TypeError, 'createClient must be a function');
    }
    this.#createClient = options.createClient ?? null;
  }

  #clientFactory() {
    if (this.#createClient) return this.#createClient;
    try {
      return require('redis').createClient;
    } catch (e) {
      throw new Error(
        `RedisBackend needs the npm package "redis" (npm install redis), which it could not load from ${__dirname}; where it is installed but not found from there (contextkit installed from a file: path or linked), pass it: new RedisBackend({ url, namespace, createClient: require('redis').createClient }). ${e.message}`,
      );
    }
  }

  #newClient(session) {
    const client = this.#clientFactory()({
      url: this.#url,
      socket: {
        connectTimeout: this.timeoutMs,
        // A server that refuses the first connection is reported at once
        // (not retried until timeoutMs); once connected, node-redis's usual
        // retries, from 50 ms up to 500 ms apart.
        reconnectStrategy: (retries, cause) => (this.#connected && this.#session === session ? Math.min(50 * (retries + 1), 500) : cause),
      },
      // The replies read below are RESP2's (node-redis 6 speaks RESP3 unless told).
      RESP: 2,
    });
    // node-redis reconnects by itself; an error without a listener would end the process.
    client.on('error', (e) => {
      this.#lastError = e;
    });
    return client;
  }

  /**
   * Runs `args` with the call's timeout; no answer (a timeout, a lost connection) is an unknown outcome.
   * node-redis's own `timeout` ends a command only while it waits to be sent: a timer of ours bounds
   * the wait for its reply too (a stalled server, a partition).
   */
  async #send(client, args, timeoutMs = this.timeoutMs) {
    let timer;
    // Not an Error made up front: capturing its stack cost more than the rest of the call.
    const noAnswer = new Promise((_, reject) => {
      timer = setTimeout(() => reject(LATE), timeoutMs);
    });
    try {
      return await Promise.race([client.sendCommand(args, { timeout: timeoutMs }), noAnswer]);
    } catch (e) {
      const what = args[0] === 'MGET' ? `redis MGET of ${args.length - 1} keys` : `redis ${args[0]} ${args[1] ?? ''}`;
      if (isErrorReply(e)) throw new Error(`${what}: ${e.message}`);
      const last = this.#lastError ? `; last error: ${this.#lastError.message}` : '';
      // Our timer, or the client's own failure (a lost connection) as it says it.
      const why = e === LATE ? `no answer within ${timeoutMs} ms` : `no answer: ${e instanceof Error && e.message ? e.message : String(e)}`;
      const err = new Error(`${what}: ${why}${last}`);
      err.outcomeUnknown = true;
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  async open() {
    const session = {};
    this.#session = session;
    const client = this.#newClient(session);
    const connect = client.connect();
    const timeout = new Promise((_, reject) => {
      const t = setTimeout(
        () =>
          reject(
            new Error(`redis: could not connect to ${this.#shownUrl} within ${this.timeoutMs} ms${this.#lastError ? `: ${this.#lastError.message}` : ''}`),
          ),
        this.timeoutMs,
      );
      t.unref?.();
      connect.finally(() => clearTimeout(t)).catch(() => {});
    });
    try {
      await Promise.race([connect.catch((e) => Promise.reject(new Error(`redis: could not connect to ${this.#shownUrl}: ${e?.message ?? e}`))), timeout]);
    } catch (e) {
      end(client);
      throw e;
    }
    if (this.#session !== session) {
      end(client);
      throw new Error('the redis backend was closed while it connected');
    }
    this.#connected = true;
    this.#client = client;
    const info = String(await this.#send(client, ['INFO', 'memory']).catch(() => ''));
    const policy = /^maxmemory_policy:(\S+)/m.exec(info);
    if (policy && policy[1] !== 'noeviction') {
      const err = new Error(
        `redis evicts keys under memory pressure (maxmemory-policy ${policy[1]}): a shared namespace needs noeviction, or it could lose contexts and events silently`,
      );
      err.code = 'INVALID_ARGUMENT';
      throw err;
    }
    const lib = loadLibrary();
    let loaded = 0;
    try {
      loaded = Number(await this.#send(client, ['FCALL_RO', 'ck2_version', '0']));
    } catch (e) {
      if (!missingLibrary(e)) throw e;
    }
    // A newer release's library (more operations, the same format) stays.
    if (!(loaded >= lib.version)) {
      await this.#send(client, ['FUNCTION', 'LOAD', 'REPLACE', lib.source]);
    }
  }

  async call(fn, keys, args) {
    if (this.#client === null) throw new Error('the redis backend is not connected');
    const writes = fn === 'ck2_write' || fn === 'ck2_settle' || fn === 'ck2_join';
    const joined = writes ? null : this.#epoch;
    if (joined !== null) return this.#checkedRead(fn, keys, args, joined);
    const reply = await this.#run(writes ? 'FCALL' : 'FCALL_RO', fn, keys, args);
    // The namespace's epoch ([epoch, …]): what every read checks from now on.
    if (fn === 'ck2_join' && Array.isArray(reply) && reply[0] != null) this.#epoch = String(reply[0]);
    return reply;
  }

  /**
   * A read of the library followed by the namespace's epoch on the same connection, as get does:
   * LOST unless the epoch is `joined`. A library that is missing (a server that restarted without
   * persistence lost it too, and then surely the epoch) is loaded again, and both are sent again.
   */
  async #checkedRead(fn, keys, args, joined) {
    for (let attempt = 0; ; attempt++) {
      const running = this.#send(this.#client, this.#fcall('FCALL_RO', fn, keys, args));
      const epoch = this.#epochNow();
      running.catch(() => {});
      epoch.catch(() => {});
      let reply;
      let failure = null;
      try {
        reply = await running;
      } catch (e) {
        failure = e;
      }
      if ((await epoch) !== joined) return LOST;
      if (failure === null) return reply;
      if (attempt > 0 || !missingLibrary(failure)) throw failure;
      await this.#reloadLibrary();
    }
  }

  #fcall(cmd, fn, keys, args) {
    return [cmd, fn, String(keys.length), ...keys.map((k) => this.#prefix + k), ...args];
  }

  /** The namespace's epoch as Redis holds it now (null for none), read on the calls' connection. */
  async #epochNow() {
    const epoch = await this.#send(this.#client, ['HGET', `${this.#prefix}meta`, 'epoch']);
    return epoch === null || epoch === undefined ? null : String(epoch);
  }

  async #run(cmd, fn, keys, args) {
    const full = this.#fcall(cmd, fn, keys, args);
    try {
      return await this.#send(this.#client, full);
    } catch (e) {
      // A server that restarted without persistence lost the library too:
      // load it again, so that the call reaches the library and learns what
      // else was lost (the namespace's epoch), instead of failing on this.
      if (!missingLibrary(e)) throw e;
      await this.#reloadLibrary();
      return this.#send(this.#client, full);
    }
  }

  #reloadLibrary() {
    return this.#send(this.#client, ['FUNCTION', 'LOAD', 'REPLACE', loadLibrary().source]);
  }

  /**
   * Reads made before the microtask that the first of them queues go as one MGET (one GET when
   * alone), followed by the namespace's epoch: two commands and two timers for them all, the MGET
   * answering each read as of one instant inside the call. (Reads made in one loop, or woken by one
   * reply, are among them.)
   */
  get(id) {
    if (this.#client === null) return Promise.reject(new Error('the redis backend is not connected'));
    return new Promise((resolve, reject) => {
      if (this.#gets.push({ key: `${this.#prefix}c:${id}`, resolve, reject }) === 1) {
        queueMicrotask(() => this.#sendGets());
      }
    });
  }

  async #sendGets() {
    const batch = this.#gets;
    this.#gets = [];
    const text = (raw) => (raw === null || raw === undefined ? null : String(raw));
    try {
      if (this.#client === null) throw new Error('the redis backend is not connected');
      const one = batch.length === 1;
      const read = this.#send(this.#client, one ? ['GET', batch[0].key] : ['MGET', ...batch.map((g) => g.key)]);
      // The epoch after the keys, on the same connection: a store that lost its data (restarted
      // without persistence, flushed) has none, or another manager's; a read of it would answer
      // from a store other than the one this manager's writes went to.
      const joined = this.#epoch;
      const epoch = joined === null ? null : this.#epochNow();
      read.catch(() => {});
      epoch?.catch(() => {});
      const raws = await read;
      if (epoch !== null && (await epoch) !== joined) {
        // Not the namespace joined: the wasm side reports the manager lost.
        for (const g of batch) g.resolve(LOST);
        return;
      }
      if (one) {
        batch[0].resolve(text(raws));
        return;
      }
      if (!Array.isArray(raws) || raws.length !== batch.length) {
        throw new Error(`redis MGET: a reply of ${batch.length} keys that is not a list of ${batch.length}`);
      }
      for (let i = 0; i < batch.length; i++) batch[i].resolve(text(raws[i]));
    } catch (e) {
      for (const g of batch) g.reject(e);
    }
  }

  /** The reader's own connection: a blocking read must not hold up the calls of others. */
  async #readerClient() {
    if (this.#reader !== null) return this.#reader;
    if (this.#readerPending === null) {
      if (this.#client === null) throw new Error('the redis backend is not connected');
      const session = this.#session;
      const reader = this.#client.duplicate();
      reader.on('error', (e) => {
        this.#lastError = e;
      });
      this.#readerPending = reader.connect().then(
        () => {
          // Closed while it connected: nobody would close it later.
          if (this.#session !== session) {
            end(reader);
            throw new Error('the redis backend is closed');
          }
          this.#readerPending = null;
          this.#reader = reader;
          return reader;
        },
        (e) => {
          end(reader);
          if (this.#session === session) this.#readerPending = null;
          throw e;
        },
      );
    }
    return this.#readerPending;
  }

  async head() {
    const reader = await this.#readerClient();
    const [epoch, rev] = await this.#send(reader, ['HMGET', `${this.#prefix}meta`, 'epoch', 'rev']);
    return [epoch === null ? null : String(epoch), Number(rev ?? 0)];
  }

  async events(after, count, blockMs) {
    try {
      return await this.#readEvents(after, count, blockMs);
    } catch (e) {
      // The manager's reader tries again, and stays quiet about an outage
      // (no answer); anything else is a fault it would hide: say so, once.
      if (!e?.outcomeUnknown && !this.#saidEventsFail) {
        this.#saidEventsFail = true;
        console.error(
          `contextkit: reading the events of namespace '${this.namespace}' failed, and is tried again; until it works, this manager hears no changes: ${e?.message ?? e}`,
        );
      }
      throw e;
    }
  }

  async #readEvents(after, count, blockMs) {
    const reader = await this.#readerClient();
    const args = ['XREAD', 'COUNT', String(Math.min(count, BATCH))];
    if (blockMs > 0) args.push('BLOCK', String(blockMs));
    args.push('STREAMS', `${this.#prefix}ev`, `${after}-0`);
    const reply = await this.#send(reader, args, this.timeoutMs + blockMs);
    const out = [];
    if (reply === null) return out;
    // RESP2: [[stream, [[id, [field, value, ...]], ...]]]; a client that
    // speaks RESP3 anyway (a createClient of the caller's) gives { stream: [...] }.
    const streams = Array.isArray(reply) ? reply : Object.entries(reply instanceof Map ? Object.fromEntries(reply) : reply);
    for (const [, entries] of streams) {
      for (const [entryId, fields] of entries) {
        const revision = Number(String(entryId).split('-')[0]);
        const e = {};
        for (let i = 0; i + 1 < fields.length; i += 2) e[String(fields[i])] = String(fields[i + 1]);
        out.push([revision, e.t ?? '', e.i ?? '', Number(e.v ?? 0)]);
      }
    }
    return out;
  }

  async close() {
    const clients = [this.#client, this.#reader].filter(Boolean);
    this.#client = null;
    this.#reader = null;
    // A reader still connecting lets itself go (its session ended).
    this.#readerPending = null;
    this.#session = null;
    this.#connected = false;
    this.#epoch = null;
    claimed.delete(this);
    await Promise.all(clients.map(end));
  }
}

/** RedisBackends a manager is connected with, or connecting with. */
const claimed = new WeakSet();

/**
 * Makes `ContextManager.connect` (called once by index.cjs) refuse a
 * RedisBackend that another manager uses: the two would share its
 * connections, and the first one freed would close them under the other.
 * The object serves again once its manager is gone (close() runs then).
 */
function oneManagerEach(ContextManager, ContextError) {
  const connect = ContextManager.connect;
  ContextManager.connect = function connect_(backend, config) {
    if (!(backend instanceof RedisBackend)) return connect.call(this, backend, config);
    if (claimed.has(backend)) {
      return Promise.reject(
        new ContextError(
          'INVALID_ARGUMENT',
          `ContextManager.connect: this RedisBackend (namespace '${backend.namespace}') serves a manager already: make a new RedisBackend for each ContextManager.connect`,
        ),
      );
    }
    claimed.add(backend);
    // Refused before its transport was made (bad settings): close() never runs.
    return connect.call(this, backend, config).catch((e) => {
      claimed.delete(backend);
      throw e;
    });
  };
  Object.defineProperty(ContextManager.connect, 'name', { value: 'connect' });
}

module.exports = { RedisBackend, oneManagerEach };
