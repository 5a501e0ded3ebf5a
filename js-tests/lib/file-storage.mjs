// Helpers of the FileStorage lock and interop tests: what a manager shows,
// the Node scenario (the counterpart of native/examples/file_interop.rs),
// and child processes that speak one JSON line per answer.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
/** The agent script: a Node process holding or opening a FileStorage on command. */
export const agentScript = path.join(here, 'file-agent.mjs');

/** The manager configuration both sides use. */
export const CONFIG = { maxRecoveryPoints: 3 };

/** Every live context with its recovery points, the next recovery point id and the count (as file_interop.rs prints it). */
export async function view(m) {
  const contexts = [];
  for (const id of await m.listContextIds()) {
    contexts.push({ state: await m.getContext(id), points: await m.recoveryPoints(id) });
  }
  return { contexts, nextRecoveryPointId: m.nextRecoveryPointId(), len: await m.len() };
}

/** Ids no file system could take as they are. */
export const ODD_IDS = ['a/b', '..', '../../etc/passwd', 'ünï/cødé 🎉', 'A', 'a', 'e\u0301', '\u00e9', 'con', 'C:\\x*?"<>|'];

/**
 * The Node scenario (file_interop.rs writes the same with Rust's numbers):
 * odd ids, numbers at the edges of doubles, metadata, a TTL, recovery points,
 * a restore and a deleted context. Resolves to the revision of the last commit.
 */
export async function writeScenario(m) {
  let last = 0;
  const off = m.subscribe((ev) => {
    last = Math.max(last, ev.revision ?? 0);
  });
  for (const [n, id] of ODD_IDS.entries()) await m.createContext(id, { n, id });
  const numbers = {
    big: 12345678901234567890,
    negative: -1234567890123456789,
    small: 0.1,
    third: 1 / 3,
    huge: 1.5e300,
    tiny: 5e-324,
    zero: 0,
    float: 2,
    text: 'línea\n"quoted" \\ \u{1F389} \u0000',
    nested: { list: [1, 'two', null, true, { x: 1e21 }], empty: {} },
  };
  const metadata = { owner: 'ünï', 'key/with/slash': 'v', '': 'empty key' };
  await m.createContext('numbers', numbers, { ttlMs: 3_600_000, metadata });
  const first = await m.createRecoveryPoint('numbers');
  await m.updateContext('numbers', { ...numbers, big: 2 ** 64 });
  await m.createRecoveryPoint('numbers');
  await m.updateContext('numbers', { replaced: true });
  await m.restoreRecoveryPoint('numbers', first.id);
  await m.createContext('gone', { soon: 'deleted' });
  await m.createRecoveryPoint('gone');
  await m.deleteContext('gone');
  await new Promise((resolve) => setImmediate(resolve));
  off();
  return last;
}

/** Child processes still running. */
const running = new Set();

/** SIGKILLs every child still running (an after() hook: a failed test must not leave any). */
export async function stopChildren() {
  await Promise.all([...running].map((c) => c.kill()));
}

/**
 * A child process answering one JSON line at a time: `next()` resolves to
 * the next line parsed, `send(line)` writes a line to its stdin, `end()`
 * closes its stdin, `exited` resolves to `{ code, signal }`.
 */
export function child(command, args) {
  const proc = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  const lines = [];
  const waiters = [];
  let partial = '';
  let stderr = '';
  // 'close', not 'exit': by then everything the child printed has been read.
  const exited = new Promise((resolve) => proc.on('close', (code, signal) => resolve({ code, signal })));
  const handle = {};
  running.add(handle);
  exited.then(() => running.delete(handle));
  proc.stdout.on('data', (d) => {
    const parts = (partial + d).split('\n');
    partial = parts.pop();
    for (const line of parts) {
      lines.push(line);
      waiters.shift()?.();
    }
  });
  proc.stderr.on('data', (d) => {
    stderr += d;
  });
  proc.stdin.on('error', () => {}); // a child that exited first
  return Object.assign(handle, {
    proc,
    exited,
    get stderr() {
      return stderr;
    },
    async next() {
      while (lines.length === 0) {
        const more = new Promise((resolve) => waiters.push(resolve));
        const gone = exited.then(({ code, signal }) => {
          if (lines.length === 0) throw new Error(`${path.basename(command)} ${args.join(' ')} exited (${code ?? signal}) without an answer: ${stderr}`);
        });
        await Promise.race([more, gone]);
      }
      return JSON.parse(lines.shift());
    },
    send(line) {
      proc.stdin.write(`${line}\n`);
    },
    end() {
      proc.stdin.end();
    },
    /** SIGKILL, and wait until the process is gone (reaped). */
    async kill() {
      proc.kill('SIGKILL');
      return exited;
    },
  });
}

/** A Node agent on `dir` (see file-agent.mjs), once it is ready. */
export async function agent(pkgDir, dir) {
  const c = child(process.execPath, [agentScript, pkgDir, dir]);
  const ready = await c.next();
  c.pid = ready.pid;
  return c;
}
