'use strict';
// The lock that keeps a storage directory to one FileStorage at a time, this
// package's or the Rust crate's. The protocol, and the argument that a stale
// lock is taken over once and a live one never, are at the top of
// native/src/file/lock.rs; this file implements the same steps, with the same
// file names, lock line and messages, and must stay in step with it.

const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

/** The lock file, in the storage directory. */
const LOCK = 'contextkit.lock';
/** How often taking the lock goes back to step 1 before it gives up. */
const ROUNDS = 200;
/** How long to wait for a takeover under way. */
const WAIT_MS = 5;
/** Claims on one stale lock whose claimers all died: beyond this, give up. */
const MAX_CLAIMS = 64;
/** Temporary files of the protocol older than this are left by dead processes. */
const TEMP_AGE_MS = 60_000;

const linux = process.platform === 'linux';

/**
 * Locks this process holds or is taking, by nonce: `{ closing }`, a function
 * that returns a Promise while the storage holding the lock is letting it go
 * (else null). Shared by every copy of the package loaded in the process, so
 * that two copies exclude each other too.
 */
globalThis[Symbol.for('contextkit.FileStorage.locks')] ??= new Map();
const held = globalThis[Symbol.for('contextkit.FileStorage.locks')];
/** Locks taken through this copy of the module and not yet released (released at exit). */
const live = new Set();
let exitHook = false;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const digest16 = (bytes) => crypto.createHash('sha256').update(bytes).digest('hex').slice(0, 16);

/** The state letter and start time (clock ticks after boot) of process `pid` (or 'self'), from /proc/<pid>/stat. */
function procStat(pid) {
  const text = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
  // `pid (name) state ppid …`: the name may hold spaces and parentheses.
  const fields = text
    .slice(text.lastIndexOf(')') + 1)
    .trim()
    .split(/\s+/);
  const start = fields.length > 19 && /^\d+$/.test(fields[19]) ? Number(fields[19]) : NaN;
  if (!Number.isSafeInteger(start)) throw new Error(`unexpected /proc/${pid}/stat`);
  return [fields[0], start];
}

/** This process's start time in clock ticks after boot (Linux), or null. */
const processStart = (() => {
  if (!linux) return null;
  try {
    return procStat('self')[1];
  } catch {
    return null;
  }
})();

/**
 * Whether process `pid` runs, and started at `start` if that is known. When
 * it cannot tell, it says yes: a lock is never taken from a process that may
 * be alive.
 */
function running(pid, start) {
  if (linux) {
    try {
      const [state, started] = procStat(pid);
      return state !== 'Z' && state !== 'X' && (start === null || start === started);
    } catch (e) {
      return !(e.code === 'ENOENT' && fs.existsSync('/proc/self/stat'));
    }
  }
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return e.code !== 'ESRCH';
  }
}

const isU64 = (v) => Number.isInteger(v) && v >= 0;

/** The holder a lock (or claim) line names, or null if it does not parse as the Rust side would parse it. */
function parseHolder(bytes) {
  let h;
  try {
    h = JSON.parse(bytes.toString('utf8'));
  } catch {
    return null;
  }
  if (typeof h !== 'object' || h === null || Array.isArray(h)) return null;
  const ok =
    Number.isInteger(h.pid) &&
    h.pid >= 0 &&
    h.pid <= 0xffffffff &&
    typeof h.hostname === 'string' &&
    typeof h.nonce === 'string' &&
    (h.processStart === undefined || h.processStart === null || isU64(h.processStart)) &&
    (h.started === undefined || isU64(h.started)) &&
    (h.by === undefined || typeof h.by === 'string');
  return ok ? { pid: h.pid, hostname: h.hostname, processStart: h.processStart ?? null, nonce: h.nonce } : null;
}

/**
 * Who holds a lock (or claim) with these bytes, if that process is alive:
 * `{ who, closing }` (`closing`: a Promise when a storage of this process is
 * letting it go), or null (step 2 of the protocol).
 */
function liveHolder(bytes, file) {
  const h = parseHolder(bytes);
  if (h === null) return null;
  const who = `pid ${h.pid} on ${h.hostname}`;
  if (h.hostname !== os.hostname()) {
    return { who: `${who}, another host: remove ${file} once that process is gone`, closing: null };
  }
  if (h.pid === process.pid && h.processStart === processStart) {
    const mine = held.get(h.nonce);
    return mine === undefined ? null : { who: `${who}, this process`, closing: mine.closing() };
  }
  return running(h.pid, h.processStart) ? { who, closing: null } : null;
}

const inUse = (dir, holder) => new Error(`cannot open ${dir}: in use by another FileStorage (${holder})`);

/** Reads `file`, or null if it does not exist. */
function readIfThere(file) {
  try {
    return fs.readFileSync(file);
  } catch (e) {
    if (e.code === 'ENOENT') return null;
    throw new Error(`cannot read ${file}: ${e.message}`);
  }
}

/** Links `temp` to `name`: true, or false if `name` exists. */
function link(temp, name) {
  try {
    fs.linkSync(temp, name);
    return true;
  } catch (e) {
    if (e.code === 'EEXIST') return false;
    throw new Error(`cannot lock ${name}: ${e.message}`);
  }
}

/**
 * Removes the stale lock `stale` if this process gets the claim on it;
 * returns the live holder of the claim if a takeover is under way, else
 * null. Synchronous: nothing of this process runs in between.
 */
function takeOver(dir, file, temp, stale) {
  const key = digest16(stale);
  let k = 1;
  for (let i = 0; i < ROUNDS; i++) {
    const claim = path.join(dir, `${LOCK}.claim-${key}-${k}`);
    if (link(temp, claim)) {
      // The one live claimer of these bytes (see the argument in lock.rs).
      try {
        const now = readIfThere(file);
        if (now?.equals(stale)) fs.rmSync(file, { force: true });
      } finally {
        fs.rmSync(claim, { force: true });
      }
      return null;
    }
    const bytes = readIfThere(claim);
    // null: its claimer is done; try the same claim again.
    if (bytes !== null) {
      const claimer = liveHolder(bytes, claim);
      if (claimer !== null) return claimer;
      if (k >= MAX_CLAIMS) break;
      k += 1;
    }
  }
  throw new Error(`cannot take over ${file}: the claims on it (up to ${LOCK}.claim-${key}-${k}) keep failing`);
}

/** Steps 1 to 3: `temp` holds this process's line. */
async function take(dir, file, temp) {
  let busy = '';
  for (let round = 0; round < ROUNDS; round++) {
    if (link(temp, file)) return;
    const stale = readIfThere(file);
    if (stale === null) continue; // released meanwhile
    const holder = liveHolder(stale, file);
    if (holder !== null) {
      if (holder.closing === null) throw inUse(dir, holder.who);
      // A storage of this process is letting it go once its writes are done.
      await holder.closing.catch(() => {});
      continue;
    }
    const claimer = takeOver(dir, file, temp, stale);
    if (claimer !== null) {
      busy = claimer.who;
      await sleep(WAIT_MS);
    }
  }
  throw inUse(dir, `${busy}, taking it over`);
}

/** Deletes what dead processes left of the protocol; `own` is the lock just taken. */
function cleanUp(dir, own) {
  const ownClaims = `claim-${digest16(own)}-`;
  let names;
  try {
    names = fs.readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) {
    if (!name.startsWith(`${LOCK}.`)) continue;
    const rest = name.slice(LOCK.length + 1);
    const file = path.join(dir, name);
    try {
      const garbage = rest.startsWith('claim-') ? !rest.startsWith(ownClaims) : rest.endsWith('.tmp') && Date.now() - fs.statSync(file).mtimeMs > TEMP_AGE_MS;
      if (garbage) fs.rmSync(file, { force: true });
    } catch {
      // Gone meanwhile.
    }
  }
}

/** A held directory lock. */
class DirLock {
  #file;
  #bytes;
  #nonce;

  constructor(file, bytes, nonce) {
    this.#file = file;
    this.#bytes = bytes;
    this.#nonce = nonce;
  }

  /** Removes the lock file if it still is this lock's. */
  release() {
    if (!live.delete(this)) return;
    try {
      if (fs.readFileSync(this.#file).equals(this.#bytes)) fs.rmSync(this.#file, { force: true });
    } catch {
      // Gone already.
    }
    held.delete(this.#nonce);
  }
}

/**
 * Takes the lock of `dir` (which exists): resolves to a DirLock, or rejects
 * with an Error naming the directory and the holder. `closing()` returns a
 * Promise while the storage taking the lock is closing (an opener in this
 * process then waits for it instead of being refused), else null.
 */
async function acquire(dir, closing) {
  const nonce = crypto.randomBytes(16).toString('hex');
  const me = { pid: process.pid, hostname: os.hostname(), processStart, started: Date.now(), nonce, by: 'contextkit (Node)' };
  const bytes = Buffer.from(`${JSON.stringify(me)}\n`, 'utf8');
  const file = path.join(dir, LOCK);
  const temp = path.join(dir, `${LOCK}.${nonce}.tmp`);
  held.set(nonce, { closing });
  try {
    try {
      fs.writeFileSync(temp, bytes, { flag: 'wx' });
    } catch (e) {
      throw new Error(`cannot write in the storage directory ${dir}: ${e.message}`);
    }
    await take(dir, file, temp);
  } catch (e) {
    held.delete(nonce);
    throw e;
  } finally {
    fs.rmSync(temp, { force: true });
  }
  cleanUp(dir, bytes);
  const lock = new DirLock(file, bytes, nonce);
  live.add(lock);
  if (!exitHook) {
    exitHook = true;
    process.on('exit', () => {
      for (const l of [...live]) l.release();
    });
  }
  return lock;
}

module.exports = { acquire, LOCK };
