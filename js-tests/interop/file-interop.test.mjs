// One FileStorage for Rust and Node: a directory written by the Rust crate
// opens in the npm package with exactly the same contexts, versions,
// revisions, recovery points, TTLs and metadata, and the reverse; the files
// Node writes are byte for byte what Rust writes for the same records; a Rust
// process holding a directory refuses Node and the reverse; a SIGKILLed
// holder of either language is taken over by the other; Rust and Node
// processes racing to take over one stale lock: exactly one wins.
//
// The Rust half is native/examples/file_interop.rs, built here with cargo.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { CONFIG, agent, child, stopChildren, view, writeScenario } from '../lib/file-storage.mjs';
import { ContextManager, FileStorage, pkgDir, rejectsWith } from '../test/helpers.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'contextkit-interop-'));
let dirs = 0;
const freshDir = () => path.join(tmp, `d${++dirs}`);
const host = os.hostname();
const inUse = (dir, holder) => `cannot open ${dir}: in use by another FileStorage (${holder})`;
const lockOf = (dir) => JSON.parse(readFileSync(path.join(dir, 'contextkit.lock'), 'utf8'));

let bin;
before(() => {
  const built = spawnSync('cargo', ['build', '-q', '-p', 'contextkit', '--example', 'file_interop', '--message-format=json-render-diagnostics'], {
    cwd: root,
    encoding: 'utf8',
    maxBuffer: 64 << 20,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  assert.equal(built.status, 0, 'cargo build --example file_interop failed');
  for (const line of built.stdout.split('\n')) {
    if (!line.startsWith('{')) continue;
    const msg = JSON.parse(line);
    if (msg.reason === 'compiler-artifact' && msg.target?.name === 'file_interop' && msg.executable) bin = msg.executable;
  }
  assert.ok(bin, 'cargo named no file_interop executable');
});
after(async () => {
  await stopChildren();
  rmSync(tmp, { recursive: true, force: true });
});

/** Runs `file_interop <command> <dir>`: `[answer, raw text]`. */
function rust(command, dir) {
  const run = spawnSync(bin, [command, dir], { encoding: 'utf8', maxBuffer: 64 << 20 });
  assert.equal(run.status, 0, `file_interop ${command}: ${run.stderr}`);
  return [JSON.parse(run.stdout), run.stdout];
}

async function openNode(dir) {
  const { manager, problems } = await ContextManager.open(new FileStorage(dir), CONFIG);
  assert.deepEqual(problems, []);
  return manager;
}

const contextFiles = (dir) => readdirSync(dir).filter((n) => /^ctx-[0-9a-f]{64}\.json$/.test(n) || n === 'meta.json');

test('a directory Rust wrote opens in Node with exactly its contexts; what Node adds opens in Rust', async () => {
  const dir = freshDir();
  const [{ view: written, lastRevision }, raw] = rust('write', dir);
  // Rust wrote integers no double holds; Node reads the nearest doubles.
  assert.ok(raw.includes('"big":12345678901234567890'), raw);
  assert.ok(raw.includes('"big":18446744073709551615'), raw);
  assert.equal(written.contexts.length, 11);

  const m = await openNode(dir);
  assert.deepEqual(await view(m), written);
  const numbers = await m.getContext('numbers');
  assert.equal(numbers.data.big, 12345678901234567890);
  assert.equal(numbers.data.small, 0.1);
  assert.equal(numbers.data.text, 'línea\n"quoted" \\ \u{1F389} \u0000');
  assert.deepEqual(numbers.metadata, { owner: 'ünï', 'key/with/slash': 'v', '': 'empty key' });
  assert.ok(numbers.expiresAtMs > Date.now());
  // Revisions go on from Rust's, past its deletion's; recovery point ids too.
  const added = await m.createContext('from-node', { n: 1.5 });
  assert.equal(added.revision, lastRevision + 1);
  const point = await m.createRecoveryPoint('a/b');
  assert.equal(point.id, written.nextRecoveryPointId);
  await m.updateContext('a/b', { changed: 'by node' });
  await m.deleteContext('..');
  const shown = await view(m);
  m.free();

  const [{ view: reread }, rawAgain] = rust('view', dir);
  assert.deepEqual(reread, shown);
  // Contexts Node did not write keep their exact numbers.
  assert.ok(rawAgain.includes('"big":12345678901234567890'), rawAgain);
  const [{ checked }] = rust('check-bytes', dir);
  assert.equal(checked, contextFiles(dir).length);
});

test('a directory Node wrote opens in Rust with exactly its contexts, byte for byte as Rust writes them', async () => {
  const dir = freshDir();
  const m = await openNode(dir);
  const lastRevision = await writeScenario(m);
  const written = await view(m);
  m.free();

  const [{ checked }] = rust('check-bytes', dir);
  assert.equal(checked, contextFiles(dir).length);
  assert.equal(checked, written.contexts.length + 1);
  const [{ view: seen }] = rust('view', dir);
  assert.deepEqual(seen, written);
  const [{ state }] = rust('append', dir);
  assert.equal(state.revision, lastRevision + 1);

  const again = await openNode(dir);
  const shown = await view(again);
  assert.equal((await again.getContext('from-rust')).data.big, 12345678901234567890);
  again.free();
  assert.deepEqual(rust('view', dir)[0].view, shown);
});

test('Rust holding a directory refuses Node, and Node holding one refuses Rust', async () => {
  const dir = freshDir();
  const holder = child(bin, ['open', dir]);
  holder.send('go');
  const { ok, pid } = await holder.next();
  assert.equal(ok, true);
  assert.equal(lockOf(dir).by, 'contextkit (Rust)');
  const e = await rejectsWith(ContextManager.open(new FileStorage(dir)), 'STORAGE');
  assert.ok(e.message.endsWith(inUse(dir, `pid ${pid} on ${host}`)), e.message);
  holder.end();
  assert.deepEqual(await holder.exited, { code: 0, signal: null });
  assert.equal(existsSync(path.join(dir, 'contextkit.lock')), false, 'a Rust storage dropped lets the directory go');

  const m = await openNode(dir);
  const refused = child(bin, ['open', dir]);
  refused.send('go');
  const answer = await refused.next();
  assert.equal(answer.code, 'STORAGE');
  assert.equal(answer.message, `storage error: ${inUse(dir, `pid ${process.pid} on ${host}`)}`);
  await refused.exited;
  m.free();
  const now = child(bin, ['open', dir]);
  now.send('go');
  assert.equal((await now.next()).ok, true);
  now.end();
  await now.exited;
});

test('a SIGKILLed holder of either language is taken over by the other, which sees exactly the acknowledged state', async () => {
  const rustDir = freshDir();
  const rustHolder = child(bin, ['write-and-hold', rustDir]);
  const { view: rustWrote } = await rustHolder.next();
  await rustHolder.kill();
  assert.equal(lockOf(rustDir).pid, rustHolder.proc.pid, 'the killed holder left its lock');
  const m = await openNode(rustDir);
  assert.equal(lockOf(rustDir).pid, process.pid);
  assert.deepEqual(await view(m), rustWrote);
  m.free();

  const nodeDir = freshDir();
  const nodeHolder = await agent(pkgDir, nodeDir);
  nodeHolder.send('open');
  assert.equal((await nodeHolder.next()).ok, true);
  nodeHolder.send('write');
  const { view: nodeWrote } = await nodeHolder.next();
  await nodeHolder.kill();
  assert.equal(lockOf(nodeDir).pid, nodeHolder.pid);
  assert.deepEqual(rust('view', nodeDir)[0].view, nodeWrote);
});

test('Rust and Node processes racing to take over one stale lock: exactly one wins, every time', { timeout: 300_000 }, async () => {
  const OFFSETS_MS = Array.from({ length: 17 }, (_, i) => i / 2);
  const ROUNDS = OFFSETS_MS.length;
  const dir = freshDir();
  const wins = { rust: 0, node: 0 };
  for (let round = 0; round < ROUNDS; round++) {
    // The stale lock of a SIGKILLed holder, of each language in turn.
    const holder = round % 2 === 0 ? child(bin, ['open', dir]) : await agent(pkgDir, dir);
    holder.send(round % 2 === 0 ? 'go' : 'open');
    assert.equal((await holder.next()).ok, true, `round ${round}`);
    await holder.kill();
    const nodes = await Promise.all([0, 1, 2].map(() => agent(pkgDir, dir)));
    const rusts = [0, 1, 2].map(() => child(bin, ['open', dir]));
    // The Rust racers are waiting for their line by now (they start in milliseconds).
    await new Promise((resolve) => setTimeout(resolve, 100));
    // A Rust process opens faster than Node's async path does: the Node racers
    // start first, the Rust ones a little later, by a delay that grows over
    // the rounds, so that both kinds meet in the takeover.
    for (const n of nodes) n.send('open');
    const until = performance.now() + OFFSETS_MS[round];
    while (performance.now() < until);
    for (const r of rusts) r.send('go');
    const results = await Promise.all([...rusts, ...nodes].map((r) => r.next()));
    const winners = results.filter((r) => r.ok);
    assert.equal(winners.length, 1, `round ${round}: ${JSON.stringify(results)}`);
    const [winner] = winners;
    wins[rusts.some((r) => r.proc.pid === winner.pid) ? 'rust' : 'node'] += 1;
    for (const r of results.filter((x) => !x.ok)) {
      assert.equal(r.code, 'STORAGE');
      assert.ok(r.message.endsWith(inUse(dir, `pid ${winner.pid} on ${host}`)), `round ${round}: ${r.message}`);
    }
    for (const r of [...rusts, ...nodes]) r.end();
    await Promise.all([...rusts, ...nodes].map((r) => r.exited));
    assert.equal(existsSync(path.join(dir, 'contextkit.lock')), false);
  }
  console.log(`winners over ${ROUNDS} rounds (Rust starting 0 to 8 ms after Node): ${wins.rust} Rust, ${wins.node} Node`);
});
