// The directory lock of the Node FileStorage (the protocol of
// native/src/file/lock.rs, in wasm/npm/file-lock.cjs): a second opener, in
// another process or in this one, is refused with STORAGE naming the
// directory and the holder; the lock goes with free(), close() and the end of
// the process; a SIGKILLed holder's lock is taken over by a new process,
// which sees exactly the acknowledged state; processes racing to take over
// one stale lock: exactly one wins.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { CONFIG, agent, stopChildren, view } from '../lib/file-storage.mjs';
import { ContextManager, FileStorage, pkgDir, rejectsWith } from '../test/helpers.mjs';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'contextkit-lock-'));
after(async () => {
  await stopChildren();
  rmSync(tmp, { recursive: true, force: true });
});
let dirs = 0;
const freshDir = () => path.join(tmp, `d${++dirs}`);
const lockOf = (dir) => JSON.parse(readFileSync(path.join(dir, 'contextkit.lock'), 'utf8'));
const host = os.hostname();
const inUse = (dir, holder) => `cannot open ${dir}: in use by another FileStorage (${holder})`;

test('a second process opening the directory is refused with STORAGE naming the directory and the holder', async () => {
  const dir = freshDir();
  const holder = await agent(pkgDir, dir);
  holder.send('open');
  assert.deepEqual(await holder.next(), { ok: true, pid: holder.pid });
  const line = lockOf(dir);
  assert.equal(line.pid, holder.pid);
  assert.equal(line.hostname, host);
  assert.equal(line.by, 'contextkit (Node)');
  assert.match(line.nonce, /^[0-9a-f]{32}$/);

  const e = await rejectsWith(ContextManager.open(new FileStorage(dir)), 'STORAGE');
  assert.equal(e.message, `ContextManager.open: storage.entries() failed: ${inUse(dir, `pid ${holder.pid} on ${host}`)}`);
  const second = await agent(pkgDir, dir);
  second.send('open');
  const refused = await second.next();
  assert.equal(refused.code, 'STORAGE');
  assert.ok(refused.message.endsWith(inUse(dir, `pid ${holder.pid} on ${host}`)), refused.message);
  second.end();
  await second.exited;

  // A normal exit lets the directory go: no lock file is left.
  holder.end();
  assert.deepEqual(await holder.exited, { code: 0, signal: null });
  assert.equal(existsSync(path.join(dir, 'contextkit.lock')), false);
  const { manager } = await ContextManager.open(new FileStorage(dir));
  manager.free();
});

test('a second FileStorage in this process is refused likewise, and so is a second manager on the same one', async () => {
  const dir = freshDir();
  const storage = new FileStorage(dir);
  const { manager } = await ContextManager.open(storage);
  await manager.createContext('a', { n: 1 });
  const e = await rejectsWith(ContextManager.open(new FileStorage(dir)), 'STORAGE');
  assert.ok(e.message.endsWith(inUse(dir, `pid ${process.pid} on ${host}, this process`)), e.message);
  // Used directly, without a manager, too.
  await assert.rejects(new FileStorage(dir).get('c/a'), { message: inUse(dir, `pid ${process.pid} on ${host}, this process`) });
  const same = await rejectsWith(ContextManager.open(storage), 'STORAGE');
  assert.equal(same.message, `ContextManager.open: cannot open ${dir}: this FileStorage is in use by another ContextManager; free() that one first`);
  // free() lets the directory go at once, to a new FileStorage or the same one.
  manager.free();
  assert.equal(existsSync(path.join(dir, 'contextkit.lock')), false);
  const again = await ContextManager.open(new FileStorage(dir));
  assert.deepEqual((await again.manager.getContext('a')).data, { n: 1 });
  again.manager[Symbol.dispose]();
  const reused = await ContextManager.open(storage);
  assert.deepEqual(await reused.manager.listContextIds(), ['a']);
  reused.manager.free();
});

test('free() with writes in flight: an opener in this process waits for them, then sees them', async () => {
  const dir = freshDir();
  const { manager } = await ContextManager.open(new FileStorage(dir));
  const writes = Array.from({ length: 20 }, (_, i) => manager.createContext(`k${i}`, { i }));
  manager.free();
  const { manager: next, problems } = await ContextManager.open(new FileStorage(dir));
  assert.deepEqual(problems, []);
  const settled = await Promise.allSettled(writes);
  const acknowledged = settled.flatMap((s, i) => (s.status === 'fulfilled' ? [`k${i}`] : []));
  assert.deepEqual(await next.listContextIds(), acknowledged.sort());
  next.free();
});

test('close() lets the directory go once its operations are done; the next operation takes it again', async () => {
  const dir = freshDir();
  const storage = new FileStorage(dir);
  await storage.put('app/k', 'v0');
  const put = storage.put('app/k', 'v');
  const closed = storage.close();
  // Another storage of this process waits for the closing one instead of being refused.
  const other = new FileStorage(dir);
  const read = other.get('app/k');
  await put;
  await closed;
  assert.equal(await read, 'v');
  await other.close();
  assert.equal(existsSync(path.join(dir, 'contextkit.lock')), false);
  assert.equal(await storage.get('app/k'), 'v', 'the next operation takes it again');
  assert.equal(lockOf(dir).pid, process.pid);
  await storage.close();
  assert.equal(existsSync(path.join(dir, 'contextkit.lock')), false);
});

test('after the holder is SIGKILLed, a new process takes over and sees exactly the acknowledged state', async () => {
  const dir = freshDir();
  const holder = await agent(pkgDir, dir);
  holder.send('open');
  assert.equal((await holder.next()).ok, true);
  holder.send('write');
  const { view: acknowledged } = await holder.next();
  assert.deepEqual(await holder.kill(), { code: null, signal: 'SIGKILL' });
  assert.equal(lockOf(dir).pid, holder.pid, 'the killed holder left its lock');

  const next = await agent(pkgDir, dir);
  next.send('open');
  assert.deepEqual(await next.next(), { ok: true, pid: next.pid });
  assert.equal(lockOf(dir).pid, next.pid);
  next.send('view');
  assert.deepEqual((await next.next()).view, acknowledged);
  next.end();
  await next.exited;
  // And in this process too.
  const { manager } = await ContextManager.open(new FileStorage(dir), CONFIG);
  assert.deepEqual(await view(manager), acknowledged);
  manager.free();
});

test('a lock that does not parse is stale; one of another host is never taken over', async () => {
  const dir = freshDir();
  const storage = new FileStorage(dir);
  await storage.put('app/k', 'v');
  await storage.close();
  writeFileSync(path.join(dir, 'contextkit.lock'), '');
  assert.equal(await storage.get('app/k'), 'v');
  assert.equal(lockOf(dir).pid, process.pid);
  await storage.close();
  const foreign = { pid: process.pid, hostname: 'elsewhere.example', processStart: null, started: 1, nonce: 'f'.repeat(32), by: 'test' };
  writeFileSync(path.join(dir, 'contextkit.lock'), `${JSON.stringify(foreign)}\n`);
  const e = await rejectsWith(ContextManager.open(new FileStorage(dir)), 'STORAGE');
  const lock = path.join(dir, 'contextkit.lock');
  assert.ok(e.message.endsWith(inUse(dir, `pid ${process.pid} on elsewhere.example, another host: remove ${lock} once that process is gone`)), e.message);
});

test('processes racing to take over one stale lock: exactly one wins, every time', { timeout: 300_000 }, async () => {
  const ROUNDS = 10;
  const RACERS = 6;
  const dir = freshDir();
  for (let round = 0; round < ROUNDS; round++) {
    // The stale lock of a SIGKILLed holder.
    const holder = await agent(pkgDir, dir);
    holder.send('open');
    assert.equal((await holder.next()).ok, true, `round ${round}`);
    await holder.kill();
    const racers = await Promise.all(Array.from({ length: RACERS }, () => agent(pkgDir, dir)));
    for (const r of racers) r.send('open');
    const results = await Promise.all(racers.map((r) => r.next()));
    const winners = results.filter((r) => r.ok);
    assert.equal(winners.length, 1, `round ${round}: ${JSON.stringify(results)}`);
    const [winner] = winners;
    assert.equal(lockOf(dir).pid, winner.pid);
    for (const r of results.filter((x) => !x.ok)) {
      assert.equal(r.code, 'STORAGE');
      assert.ok(r.message.endsWith(inUse(dir, `pid ${winner.pid} on ${host}`)), `round ${round}: ${r.message}`);
    }
    for (const r of racers) r.end();
    await Promise.all(racers.map((r) => r.exited));
    assert.equal(existsSync(path.join(dir, 'contextkit.lock')), false);
  }
});
