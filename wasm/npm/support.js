// The JavaScript half of contextkit, registered with the wasm module by the
// entry points: the error class, and the conversion of arguments to JSON text.

/**
 * The error every contextkit operation fails with. `code` says which failure
 * it is; a version conflict also carries `expected` and `actual`.
 */
export class ContextError extends Error {
  /**
   * @param {string} code one of ContextError.CODES
   * @param {string} message
   */
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

Object.defineProperty(ContextError.prototype, 'name', {
  value: 'ContextError',
  writable: true,
  configurable: true,
});

/** Every code a ContextError can carry. */
ContextError.CODES = Object.freeze([
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'CAPACITY_EXCEEDED',
  'VERSION_CONFLICT',
  'INVALID_ARGUMENT',
  'NOT_ACTIVE',
  'UNSYNCED_CHANGES',
  'STORAGE',
]);

/** Deepest nesting of objects and arrays (contextkit_core::MAX_DEPTH). */
const MAX_DEPTH = 128;
const objectPrototype = Object.prototype;
const wellFormed = typeof ''.isWellFormed === 'function' ? (s) => s.isWellFormed() : () => true;

/** Why a value was refused, and where (keys collected while unwinding). */
class Refusal {
  /** `cycleTo`: for a cycle, how many levels below the top its target is. */
  constructor(problem, located = true, cycleTo = -1) {
    this.problem = problem;
    this.located = located;
    this.cycleTo = cycleTo;
    /** The path from the top, one segment per level ('.key', '[i]'). */
    this.segments = [];
  }

  /** What is wrong, e.g. " at .a[2] is NaN, not a finite number". */
  describe() {
    const at = this.segments.length > 0 ? ` at ${this.segments.join('')}` : '';
    if (this.cycleTo < 0) return `${at} ${this.problem}`;
    const target = this.cycleTo === 0 ? 'the top-level object' : `its ancestor at ${this.segments.slice(0, this.cycleTo).join('')}`;
    return `${at} refers back to ${target} (a cycle, which JSON cannot hold)`;
  }
}

function describe(v) {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  switch (typeof v) {
    case 'undefined':
      return 'undefined';
    case 'number':
      return Number.isFinite(v) ? 'a number' : String(v);
    case 'object':
      return 'an object';
    default:
      return `a ${typeof v}`;
  }
}

/** Another realm's Object.prototype (a `vm` context, an iframe). */
function isForeignObjectPrototype(p) {
  return Object.getPrototypeOf(p) === null && typeof p.constructor === 'function' && p.constructor.name === 'Object';
}

/** Strings at least this long count toward `LONG_TEXT`. */
const LONG_STRING = 64;
/**
 * Data with at least this many characters in long strings gets its JSON text
 * from `jsonText`; other data from `JSON.stringify`, which is faster for
 * short strings but looks at every character to escape it.
 */
const LONG_TEXT = 1024;

/**
 * `s` as a JSON string for the wasm side. A string without '"' and '\\' goes in
 * as it is (indexOf finds those two fast); control characters may therefore
 * stand unescaped inside strings, which the wasm side escapes there before
 * keeping the text (eight bytes at a time).
 * Escaping them here would mean looking at every character: writes of 10 KB
 * measured a quarter slower, and about 3 times slower with line breaks in the
 * strings (the repository's benchmark notes, "Raw control characters in
 * argument text").
 */
function quote(s) {
  return s.indexOf('"') < 0 && s.indexOf('\\') < 0 ? `"${s}"` : JSON.stringify(s);
}

/** JSON text of `v`, a copy made by the Copier, for the wasm side (see `quote`). */
function jsonText(v) {
  switch (typeof v) {
    case 'string':
      return quote(v);
    case 'object': {
      if (v === null) return 'null';
      if (Array.isArray(v)) {
        let s = '[';
        for (let i = 0; i < v.length; i++) s += i === 0 ? jsonText(v[i]) : `,${jsonText(v[i])}`;
        return `${s}]`;
      }
      let s = '{';
      let first = true;
      for (const key of Object.keys(v)) {
        s += `${first ? '' : ','}${quote(key)}:${jsonText(v[key])}`;
        first = false;
      }
      return `${s}}`;
    }
    default:
      // Finite numbers (the copy has no -0) and booleans.
      return String(v);
  }
}

/** Walks a value once, checking it and making a plain copy. */
class Copier {
  constructor() {
    this.max = 0;
    /** A lower bound of the JSON text's length so far. */
    this.used = 0;
    /** Characters in long strings so far (see `toJson`). */
    this.long = 0;
    this.ancestors = [];
  }

  start(maxBytes) {
    this.max = maxBytes;
    this.used = 0;
    this.long = 0;
    return this;
  }

  spend(n) {
    this.used += n;
    if (this.used > this.max) throw new Refusal(`is larger than ${this.max} bytes`, false);
  }

  string(s) {
    // A UTF-16 code unit never takes fewer bytes in UTF-8.
    this.spend(s.length + 2);
    if (!wellFormed(s)) throw new Refusal('contains a lone surrogate, which is not valid Unicode');
    if (s.length >= LONG_STRING) this.long += s.length;
    return s;
  }

  value(v) {
    switch (typeof v) {
      case 'string':
        return this.string(v);
      case 'number':
        if (!Number.isFinite(v)) throw new Refusal(`is ${v}, not a finite number`);
        this.spend(1);
        return v === 0 ? 0 : v; // -0 is 0 in JSON
      case 'boolean':
        this.spend(4);
        return v;
      case 'object':
        if (v === null) {
          this.spend(4);
          return null;
        }
        return this.container(v);
      default:
        throw new Refusal(`is ${describe(v)}, which is not a JSON value`);
    }
  }

  container(v) {
    const back = this.ancestors.indexOf(v);
    if (back >= 0) throw new Refusal('', true, back);
    if (this.ancestors.length >= MAX_DEPTH) {
      throw new Refusal(`is nested too deeply (the limit is ${MAX_DEPTH} levels)`);
    }
    // The opening bracket; each child then adds its comma or the closing one.
    this.spend(1);
    this.ancestors.push(v);
    const before = this.used;
    const out = Array.isArray(v) ? this.array(v) : this.object(v);
    if (this.used === before) this.spend(1);
    this.ancestors.pop();
    return out;
  }

  array(v) {
    const n = v.length;
    if (n > this.max - this.used) throw new Refusal(`is larger than ${this.max} bytes`, false);
    const out = [];
    for (let i = 0; i < n; i++) {
      try {
        const item = v[i];
        if (item === undefined) throw new Refusal('is undefined, which is not a JSON value');
        this.spend(1);
        out.push(this.value(item));
      } catch (e) {
        throw locate(e, `[${i}]`);
      }
    }
    return out;
  }

  object(v) {
    const proto = Object.getPrototypeOf(v);
    if (proto !== objectPrototype && proto !== null && !isForeignObjectPrototype(proto)) {
      throw new Refusal('is not a plain object or array (class instances, Dates, Maps and the like are not JSON)');
    }
    const out = {};
    for (const key of Object.keys(v)) {
      try {
        const item = v[key];
        if (item === undefined) continue;
        // The key, its colon, and the comma or closing brace after the value.
        this.string(key);
        this.spend(2);
        const copy = this.value(item);
        if (key === '__proto__') {
          Object.defineProperty(out, key, { value: copy, enumerable: true, writable: true, configurable: true });
        } else {
          out[key] = copy;
        }
      } catch (e) {
        throw locate(e, `.${key}`);
      }
    }
    return out;
  }
}

let idle = new Copier();

/** Turns anything thrown below `segment` into a Refusal located there. */
function locate(e, segment) {
  const refusal = e instanceof Refusal ? e : new Refusal(`could not be read: ${e instanceof Error ? e.message : String(e)}`);
  if (refusal.located && segment !== '') refusal.segments.unshift(segment);
  return refusal;
}

/**
 * `[jsonText, copy]` of `value`, which must be a plain object of JSON values
 * taking at most `maxBytes` bytes as JSON; `copy` is a fresh plain object with
 * the same content, `jsonText` its JSON text for the wasm side (control
 * characters may stand unescaped inside its strings: see `quote`). Each
 * property is read once; the text is made from the copy. On refusal it throws an Error
 * whose message continues the phrase "<what>…", e.g.
 * " at .a[2] is NaN, not a finite number".
 */
export function toJson(value, maxBytes) {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new Error(` must be a JSON object, got ${describe(value)}`);
  }
  // One copier serves every call; a getter that re-enters contextkit gets its own.
  const copier = idle ?? new Copier();
  idle = null;
  let copy;
  let long;
  try {
    copy = copier.start(maxBytes).container(value);
  } catch (e) {
    throw new Error(locate(e, '').describe());
  } finally {
    copier.ancestors.length = 0;
    long = copier.long;
    idle = copier;
  }
  return [long >= LONG_TEXT ? jsonText(copy) : JSON.stringify(copy), copy];
}

const encoder = new TextEncoder();
// The host's own encoder, whatever is done to TextEncoder.prototype later:
// the wasm side keeps what it writes as UTF-8 without looking again (as
// wasm-bindgen keeps every string it passes in).
const utf8Into = TextEncoder.prototype.encodeInto.bind(encoder);

/** The wasm module's memory (see `useMemory`), and a view of all of it. */
let memory = null;
let memoryBytes = new Uint8Array(0);

/** Registers the wasm module's memory, which `encodeInto` writes into. */
export function useMemory(m) {
  memory = m;
  memoryBytes = new Uint8Array(0);
}

/**
 * Writes `text` as UTF-8 into the wasm module's memory, at most `room` bytes
 * from address `at` (room the wasm side reserved and has not filled, so that
 * it need not zero it first); returns how many bytes it wrote, or -1 if
 * `room` could not hold it all.
 */
export function encodeInto(text, at, room) {
  // Memory that grew has a new buffer, and the old one reads as empty.
  if (memoryBytes.byteLength === 0) memoryBytes = new Uint8Array(memory.buffer);
  const { read, written } = utf8Into(text, memoryBytes.subarray(at, at + room));
  return read < text.length ? -1 : written;
}

/**
 * A context state from its fields. `data` is JSON text, or an object made by
 * toJson for this very call; `metadata` is JSON text or undefined for none.
 */
export function makeState(id, version, revision, createdAtMs, updatedAtMs, expiresAtMs, metadata, data) {
  return {
    id,
    version,
    revision,
    createdAtMs,
    updatedAtMs,
    expiresAtMs: expiresAtMs ?? null,
    data: typeof data === 'string' ? JSON.parse(data) : data,
    metadata: metadata === undefined ? {} : JSON.parse(metadata),
  };
}

/** A copy of JSON data made here (plain objects and arrays): new objects and arrays, the same strings. */
function copyData(v) {
  if (typeof v !== 'object' || v === null) return v;
  if (Array.isArray(v)) {
    const out = [];
    for (let i = 0; i < v.length; i++) out.push(copyData(v[i]));
    return out;
  }
  const out = {};
  for (const key of Object.keys(v)) {
    if (key === '__proto__') {
      Object.defineProperty(out, key, { value: copyData(v[key]), enumerable: true, writable: true, configurable: true });
    } else {
      out[key] = copyData(v[key]);
    }
  }
  return out;
}

/**
 * A copy of a state made by makeState, sharing nothing a caller could change
 * (the wasm side keeps states already read and hands out copies).
 */
export function copyState(s) {
  return {
    id: s.id,
    version: s.version,
    revision: s.revision,
    createdAtMs: s.createdAtMs,
    updatedAtMs: s.updatedAtMs,
    expiresAtMs: s.expiresAtMs,
    data: copyData(s.data),
    metadata: copyData(s.metadata),
  };
}

const EVENT_TYPES = ['created', 'updated', 'deleted', 'restored', 'expired', 'evicted'];

/**
 * A change event: `kind` indexes EVENT_TYPES, with version `n` and the
 * commit's `revision`; -1 is 'lagged' with `n` missed events.
 */
export function makeEvent(kind, id, n, revision) {
  return kind < 0 ? { type: 'lagged', missed: n } : { type: EVENT_TYPES[kind], id, version: n, revision };
}

/** A recovery point from its fields; `data` is JSON text. */
export function makeSnapshot(id, contextId, version, createdAtMs, data) {
  return { id, contextId, version, createdAtMs, data: JSON.parse(data) };
}

// Calls into a storage object given to ContextManager.open (see ContextStorage
// in common.d.cts). Whatever the object does, these return a Promise that
// resolves to a checked value or rejects with a message string naming the
// call: the wasm side turns the message into a STORAGE ContextError.

/** Keys contextkit reads: context records and the manager's metadata. */
const isOwnKey = (key) => key === 'meta' || key.startsWith('c/');

/** `describe`, also for values that cannot be inspected (a revoked proxy); the wasm side's messages use it too. */
export function kindOf(v) {
  try {
    return describe(v);
  } catch {
    return 'an unreadable value';
  }
}

/** What a thrown or rejected value says. */
function reason(e) {
  if (typeof e === 'string') return e;
  try {
    if (typeof e === 'object' && e !== null && typeof e.message === 'string') return e.message;
  } catch {
    // A throwing getter says nothing.
  }
  return kindOf(e);
}

/** `storage[method](...args)` as a Promise; `name` is how messages name the call. */
function invoke(storage, method, args, name) {
  let f;
  try {
    f = storage[method];
  } catch (e) {
    return Promise.reject(`${name} could not be read: ${reason(e)}`);
  }
  if (typeof f !== 'function') return Promise.reject(`${name} is not possible: the storage's ${method} is ${kindOf(f)}, not a function`);
  let returned;
  try {
    returned = Reflect.apply(f, storage, args);
  } catch (e) {
    return Promise.reject(`${name} threw: ${reason(e)}`);
  }
  // A fresh promise adopts whatever came back (a thenable is followed through
  // its then, read once), so no method of the returned object is called here.
  return new Promise((resolve) => resolve(returned)).then(undefined, (e) => Promise.reject(`${name} failed: ${reason(e)}`));
}

/** A stored value as JSON text, or a problem naming its key. */
function storedText(key, value, problems) {
  if (typeof value === 'string') return true;
  problems.push(`stored value of '${key}' is ${kindOf(value)}, not JSON text`);
  return false;
}

/** Copies an array (plain, subclass or proxy) so that reading the copy runs no user code; null if it is none. */
function arrayCopy(v) {
  try {
    return Array.isArray(v) ? Array.from(v) : null;
  } catch {
    return null;
  }
}

/**
 * One storage operation: `get` resolves to a string or undefined, `put` and
 * `delete` to undefined.
 */
export function storageCall(storage, method, key, value) {
  const name = `storage.${method}('${key}')`;
  const args = method === 'put' ? [key, value] : [key];
  return invoke(storage, method, args, name).then((v) => {
    if (method !== 'get' || v === undefined || v === null) return undefined;
    if (typeof v === 'string') return v;
    return Promise.reject(`${name} resolved to ${kindOf(v)}, expected a string, undefined or null`);
  });
}

/**
 * Everything contextkit keeps in `storage`, through `entries()` if it has one,
 * else `list()` and a `get()` of each key: resolves to `[pairs, problems]`,
 * `pairs` alternating keys and JSON text, `problems` messages of what could
 * not be read. Rejects if the storage cannot be read at all.
 */
export async function storageLoad(storage) {
  const pairs = [];
  const problems = [];
  let bulk;
  try {
    bulk = typeof storage.entries === 'function';
  } catch {
    bulk = false;
  }
  if (bulk) {
    const got = await invoke(storage, 'entries', [], 'storage.entries()');
    const shape = 'expected { entries: [key, value][], problems?: string[] }';
    let entries;
    let reported;
    try {
      entries = arrayCopy(got.entries);
      reported = got.problems;
      reported = reported === undefined || reported === null ? [] : arrayCopy(reported);
    } catch (e) {
      throw `storage.entries() resolved to ${kindOf(got)} that could not be read (${reason(e)}), ${shape}`;
    }
    if (entries === null || reported === null) throw `storage.entries() resolved to ${kindOf(got)}, ${shape}`;
    entries.forEach((pair, i) => {
      const kv = arrayCopy(pair);
      if (kv === null || kv.length !== 2 || typeof kv[0] !== 'string') {
        problems.push(`storage.entries(): entry ${i} is not a [key, value] pair`);
      } else if (isOwnKey(kv[0]) && storedText(kv[0], kv[1], problems)) {
        pairs.push(kv[0], kv[1]);
      }
    });
    for (const p of reported) problems.push(typeof p === 'string' ? p : `storage.entries() reported ${kindOf(p)}`);
    return [pairs, problems];
  }
  const listed = await invoke(storage, 'list', [], 'storage.list()');
  const keys = arrayCopy(listed);
  if (keys === null) throw `storage.list() resolved to ${kindOf(listed)}, expected an array of keys`;
  for (const key of keys) {
    if (typeof key !== 'string') throw `storage.list() returned a key that is ${kindOf(key)}`;
  }
  // The gets are issued together and awaited in order.
  const reads = keys.filter(isOwnKey).map((key) => [
    key,
    storageCall(storage, 'get', key).then(
      (v) => ({ v }),
      (e) => ({ e }),
    ),
  ]);
  for (const [key, read] of reads) {
    const { v, e } = await read;
    if (e !== undefined) problems.push(e);
    // undefined: deleted since it was listed.
    else if (v !== undefined) pairs.push(key, v);
  }
  return [pairs, problems];
}

/** A copy of a shared transport's reply: null, strings, integers and arrays of them, at most 8 levels deep. */
function plainReply(v, depth = 0) {
  if (v === null || v === undefined) return null;
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return Number.isInteger(v) ? v : String(v);
  if (typeof v === 'bigint') return String(v);
  if (typeof v === 'object' && typeof v.toString === 'function' && ArrayBuffer.isView(v)) return new TextDecoder().decode(v);
  const items = arrayCopy(v);
  if (items === null || depth >= 8) throw new TypeError(`a reply holds ${kindOf(v)}`);
  return items.map((item) => plainReply(item, depth + 1));
}

/**
 * `transport[method](...args)` of a shared backend (see redis-backend.cjs) as
 * a Promise that never rejects: `[0, reply]`, `[1, message]` (refused), `[2,
 * message]` (no answer in time: the outcome is unknown) or `[3, message]`
 * (refused as an invalid argument).
 */
export function sharedCall(transport, method, args) {
  const name = `backend.${method}()`;
  if (typeof transport?.[method] !== 'function') {
    // Not a backend (a plain object, say): say what it lacks.
    return Promise.resolve([3, `the backend has no ${method}() method: pass a RedisBackend (or IndexedDBStorage in a browser)`]);
  }
  let started;
  try {
    started = Promise.resolve(Reflect.apply(transport[method], transport, args));
  } catch (e) {
    started = Promise.reject(e);
  }
  return started.then(
    (reply) => {
      try {
        return [0, plainReply(reply)];
      } catch (e) {
        return [1, `${name} resolved to something else than a reply: ${reason(e)}`];
      }
    },
    (e) => {
      let unknown = false;
      let code;
      try {
        unknown = e?.outcomeUnknown === true;
        code = e?.code;
      } catch {
        // A throwing getter says nothing more.
      }
      return [unknown ? 2 : code === 'INVALID_ARGUMENT' ? 3 : 1, reason(e)];
    },
  );
}

/** modifyContext's `fn`, refusing a Promise by name (an async function) rather than as data. */
function synchronous(fn) {
  return function (data) {
    const out = Reflect.apply(fn, this, [data]);
    if (out !== null && typeof out === 'object' && typeof out.then === 'function') {
      // What it settles to is not used: a rejection of it is not unhandled.
      Promise.resolve(out).catch(() => {});
      throw new ContextError('INVALID_ARGUMENT', 'modifyContext: fn returned a Promise: it must be synchronous (no async function)');
    }
    return out;
  };
}

/** A Promise that resolves after `ms` milliseconds, on a timer that keeps no process alive. */
export function sleep(ms) {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    t?.unref?.();
  });
}

/** Methods that return no Promise: after free() they throw instead of rejecting. */
const SYNC_METHODS = new Set([
  'free',
  'subscribe',
  'stats',
  'nextRecoveryPointId',
  'startAutoSync',
  'stopAutoSync',
  'startAutoCleanup',
  'stopAutoCleanup',
  Symbol.dispose,
]);

/** Whether `obj` is a wasm-bindgen object whose Rust value was freed. */
const isFreed = (obj) => obj !== null && typeof obj === 'object' && obj.__wbg_ptr === 0;

const freedError = (what) => new ContextError('INVALID_ARGUMENT', `${what} was freed`);

/**
 * wasm-bindgen's check of an argument's class throws a plain Error ("expected
 * instance of ContextManager"); the package documents a TypeError.
 */
function classError(e) {
  const m = e instanceof Error && e.constructor === Error ? /^expected instance of (\w+)$/.exec(e.message) : null;
  return m ? new TypeError(`expected an instance of ${m[1]}`) : e;
}

/**
 * How many calls of an object that run the caller's function before they
 * return (modifyContext) are under way: the object is borrowed by the wasm
 * side meanwhile, and wasm-bindgen's free() of a borrowed object throws
 * from inside the module, which leaves it unusable.
 */
const RUNNING = Symbol('contextkit running calls');

const runningError = (name) =>
  new ContextError('INVALID_ARGUMENT', `free() of this ${name} was called from its own modifyContext function: call it once that call has returned`);

/**
 * Makes use after free() of the wasm-bindgen classes in `classes` ({ name:
 * class }) a ContextError (INVALID_ARGUMENT, "this ContextManager was freed")
 * instead of wasm-bindgen's bare "null pointer passed to rust": every method
 * of their prototypes checks its object first (methods that return a Promise
 * reject, the others throw), and the returned classes, to be exported in
 * their place, check that a manager passed to a constructor is not freed.
 * wasm-bindgen sets `__wbg_ptr` to 0 when an object is freed. Their class
 * checks throw TypeErrors (see classError).
 */
export function guardFreed(classes) {
  const guarded = {};
  for (const [name, cls] of Object.entries(classes)) {
    const proto = cls.prototype;
    for (const key of Reflect.ownKeys(proto)) {
      const descriptor = Object.getOwnPropertyDescriptor(proto, key);
      // wasm-bindgen's own helpers (`__destroy_into_raw`) are left alone.
      if (key === 'constructor' || typeof descriptor.value !== 'function' || String(key).startsWith('__')) continue;
      const method = descriptor.value;
      const frees = key === 'free' || key === Symbol.dispose;
      const checked = SYNC_METHODS.has(key)
        ? function (a, b, c) {
            if (isFreed(this)) throw freedError(`this ${name}`);
            if (frees && this[RUNNING] > 0) throw runningError(name);
            try {
              return method.call(this, a, b, c);
            } catch (e) {
              throw classError(e);
            }
          }
        : function (a, b, c) {
            if (isFreed(this)) return Promise.reject(freedError(`this ${name}`));
            try {
              return method.call(this, a, b, c);
            } catch (e) {
              throw classError(e);
            }
          };
      // modifyContext's function runs inside the call itself (see RUNNING).
      descriptor.value =
        key === 'modifyContext'
          ? function (a, b, c) {
              this[RUNNING] = (this[RUNNING] ?? 0) + 1;
              try {
                return checked.call(this, a, typeof b === 'function' ? synchronous(b) : b, c);
              } finally {
                this[RUNNING]--;
              }
            }
          : checked;
      Object.defineProperty(descriptor.value, 'name', { value: method.name });
      Object.defineProperty(proto, key, descriptor);
    }
    guarded[name] = new Proxy(cls, {
      construct(target, args, newTarget) {
        const arg = args[0];
        if (isFreed(arg) && Object.values(classes).some((c) => arg instanceof c)) {
          throw freedError(`the ${arg.constructor.name} passed to new ${name}()`);
        }
        try {
          return Reflect.construct(target, args, newTarget);
        } catch (e) {
          throw classError(e);
        }
      },
    });
  }
  return guarded;
}
