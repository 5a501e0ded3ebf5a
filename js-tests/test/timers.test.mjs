// startAutoSync / startAutoCleanup run on JavaScript timers and stop on stop…() or free().
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { after, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { ContextAdapter, ContextManager, ContextTracker, collect, pkgDir, rejectsWith, sleep } from './helpers.mjs';

const run = promisify(execFile);

test('running auto-sync and auto-cleanup timers do not keep a Node process alive', async () => {
  const script = `
    const { ContextManager, ContextTracker, ContextAdapter } = await import(${JSON.stringify(pathToFileURL(path.join(pkgDir, 'index.mjs')).href)});
    const m = new ContextManager();
    await m.createContext('doc', { v: 0 });
    const t = new ContextTracker(m, { syncIntervalMs: 5 });
    await t.activateContext('doc');
    await t.updateState({ v: 1 });
    t.startAutoSync();
    const a = new ContextAdapter(m, { cleanupIntervalMs: 5 });
    a.startAutoCleanup();
    // Kept reachable, so that no garbage collection frees them (which stops their timers).
    globalThis.kept = [m, t, a];
    // The timers still run while something else keeps the process alive.
    await new Promise((r) => setTimeout(r, 50));
    console.log(JSON.stringify({ synced: (await m.getContext('doc')).version }));
  `;
  const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], { timeout: 5_000 });
  assert.deepEqual(JSON.parse(stdout), { synced: 2 });
});

// The timers are unref'd, so the tests below keep the process alive themselves
// while they wait for what only a timer does.
const alive = setInterval(() => {}, 1_000);
after(() => clearInterval(alive));

test('auto-sync pushes local edits on its own, until stopAutoSync()', async () => {
  const m = new ContextManager();
  await m.createContext('doc', { v: 0 });
  const t = new ContextTracker(m, { syncIntervalMs: 5 });
  await t.activateContext('doc');
  const events = collect(m);
  t.startAutoSync();
  await t.updateState({ v: 1 });
  const [ev] = await events.until(1);
  assert.deepEqual(ev, { type: 'updated', id: 'doc', version: 2, revision: 2 });
  assert.deepEqual((await m.getContext('doc')).data, { v: 1 });
  assert.equal(await t.isDirty(), false);

  t.stopAutoSync();
  await t.updateState({ v: 2 });
  await sleep(60); // many intervals
  assert.equal(await t.isDirty(), true);
  assert.equal((await m.getContext('doc')).version, 2);
  events.off();
  await t.syncState();
});

test('a failing auto-sync goes to onError and the edits stay', async () => {
  const m = new ContextManager();
  await m.createContext('doc', { v: 0 });
  const t = new ContextTracker(m, { syncIntervalMs: 5, conflict: 'reject' });
  await t.activateContext('doc');
  await t.updateState({ v: 'mine' });
  await m.updateContext('doc', { v: 'theirs' });
  const error = await new Promise((resolve) => t.startAutoSync(resolve));
  t.stopAutoSync();
  assert.equal(error.code, 'VERSION_CONFLICT');
  assert.equal(await t.isDirty(), true);
  await rejectsWith(() => t.startAutoSync('not a function'), 'INVALID_ARGUMENT');
});

test('free() stops auto-sync', async () => {
  const m = new ContextManager();
  await m.createContext('doc', { v: 0 });
  const t = new ContextTracker(m, { syncIntervalMs: 5 });
  await t.activateContext('doc');
  await t.updateState({ v: 1 });
  t.startAutoSync();
  t.free();
  await sleep(60);
  assert.equal((await m.getContext('doc')).version, 1);
});

test('auto-cleanup sweeps expired contexts on its own, until stopAutoCleanup()', async () => {
  const m = new ContextManager();
  const a = new ContextAdapter(m, { ttlMs: 10, autoCleanup: false, cleanupIntervalMs: 5 });
  const events = collect(m);
  await a.createContext('old', {});
  a.startAutoCleanup();
  const seen = await events.until(2);
  assert.deepEqual(seen[1], { type: 'expired', id: 'old', version: 1, revision: 2 });
  assert.equal(m.stats().expirations, 1);

  a.stopAutoCleanup();
  const s = await a.createContext('later', {});
  while (Date.now() <= s.expiresAtMs) await sleep(5);
  await sleep(60);
  assert.equal(m.stats().expirations, 1);
  assert.equal(await a.cleanupExpiredContexts(), 1);
  events.off();
});

test('updateConfig with a new cleanupIntervalMs keeps auto-cleanup running', async () => {
  const m = new ContextManager();
  const a = new ContextAdapter(m, { ttlMs: 10, autoCleanup: false, cleanupIntervalMs: 3_600_000 });
  a.startAutoCleanup();
  await a.updateConfig({ cleanupIntervalMs: 5 });
  const events = collect(m);
  await a.createContext('old', {});
  const seen = await events.until(2);
  assert.equal(seen[1].type, 'expired');
  a.free();
  events.off();
});

test('free() stops auto-cleanup', async () => {
  const m = new ContextManager();
  const a = new ContextAdapter(m, { ttlMs: 5, autoCleanup: false, cleanupIntervalMs: 5 });
  const s = await a.createContext('old', {});
  a.startAutoCleanup();
  a.free();
  while (Date.now() <= s.expiresAtMs) await sleep(5);
  await sleep(60);
  assert.equal(m.stats().expirations, 0);
  assert.equal(await m.cleanupExpired(), 1);
});
