// subscribe(): order, asynchronous delivery, unsubscribe, lag.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { ContextAdapter, ContextManager, collect, pkgDir, rejectsWith, settle, sleep } from './helpers.mjs';

const run = promisify(execFile);

test('every kind of change arrives in commit order with id, version and revision', async () => {
  const m = new ContextManager();
  const events = collect(m);
  await m.createContext('a', { n: 1 });
  await m.updateContext('a', { n: 2 });
  const p = await m.createRecoveryPoint('a');
  await m.restoreRecoveryPoint('a', p.id);
  await m.deleteContext('a');
  const s = await m.createContext('t', {}, { ttlMs: 5 });
  while (Date.now() <= s.expiresAtMs) await sleep(2);
  await m.cleanupExpired();
  const a = new ContextAdapter(m, { maxContexts: 3 });
  await m.createContext('e1', {});
  await m.createContext('e2', {});
  await a.updateConfig({ maxContexts: 1 });
  assert.deepEqual(await events.until(9), [
    { type: 'created', id: 'a', version: 1, revision: 1 },
    { type: 'updated', id: 'a', version: 2, revision: 2 },
    { type: 'restored', id: 'a', version: 3, revision: 3 },
    { type: 'deleted', id: 'a', version: 3, revision: 4 },
    { type: 'created', id: 't', version: 1, revision: 5 },
    { type: 'expired', id: 't', version: 1, revision: 6 },
    { type: 'created', id: 'e1', version: 1, revision: 7 },
    { type: 'created', id: 'e2', version: 1, revision: 8 },
    { type: 'evicted', id: 'e1', version: 1, revision: 9 },
  ]);
  events.off();
});

test('events are never delivered inside the call that caused them', async () => {
  const m = new ContextManager();
  let inCall = false;
  const seen = [];
  const off = m.subscribe((ev) => seen.push({ ev, inCall }));
  inCall = true;
  const pending = m.createContext('a', {});
  inCall = false;
  assert.equal(seen.length, 0);
  await pending;
  await settle();
  assert.deepEqual(seen, [{ ev: { type: 'created', id: 'a', version: 1, revision: 1 }, inCall: false }]);
  off();
});

test('several subscribers each see every event; unsubscribe stops delivery', async () => {
  const m = new ContextManager();
  const one = collect(m);
  const two = collect(m);
  await m.createContext('a', {});
  await one.until(1);
  await two.until(1);
  one.off();
  one.off(); // idempotent
  await m.updateContext('a', { x: 1 });
  await two.until(2);
  await settle();
  assert.equal(one.events.length, 1);
  assert.deepEqual(two.events.map((e) => e.type), ['created', 'updated']);
  two.off();
});

test('a callback may unsubscribe itself; nothing after off() is delivered', async () => {
  const m = new ContextManager();
  const seen = [];
  const off = m.subscribe((ev) => {
    seen.push(ev.id);
    off();
  });
  await m.createContext('a', {});
  await m.createContext('b', {});
  await settle();
  await settle();
  assert.deepEqual(seen, ['a']);
});

test('a subscriber that falls behind gets one lagged event, then the rest in order', async () => {
  const m = new ContextManager();
  await m.createContext('a', { n: 0 });
  const events = collect(m);
  // 1,100 commits without yielding: the subscriber buffers 1,024.
  const writes = [];
  for (let n = 1; n <= 1100; n++) writes.push(m.updateContext('a', { n }));
  await Promise.all(writes);
  const seen = await events.until(1025);
  assert.equal(seen[0].type, 'lagged');
  assert.equal(seen[0].missed, 1100 - 1024);
  assert.deepEqual(seen.slice(1).map((e) => e.version), Array.from({ length: 1024 }, (_, i) => 1100 - 1024 + 2 + i));
  events.off();
});

test('a throwing subscriber does not end the process: delivery goes on and console.error gets the error with its event', async () => {
  // In a child process with Node's defaults, where an unhandled rejection ends the process.
  const script = `
    const { ContextManager } = await import(${JSON.stringify(pathToFileURL(path.join(pkgDir, 'index.mjs')).href)});
    const m = new ContextManager();
    const seen = [];
    const logged = [];
    console.error = (...args) => logged.push(args);
    m.subscribe((ev) => { seen.push(ev.id); throw new Error('listener failed on ' + ev.id); });
    await m.createContext('a', {});
    await m.createContext('b', {});
    while (logged.length < 2) await new Promise((r) => setTimeout(r, 1));
    await new Promise((r) => setTimeout(r, 20));
    console.log(JSON.stringify({ seen, logged: logged.map(([what, ev, e]) => [what, ev, e.message]) }));
  `;
  const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script]);
  const what = 'contextkit: a subscriber threw on';
  assert.deepEqual(JSON.parse(stdout), {
    seen: ['a', 'b'],
    logged: [
      [what, { type: 'created', id: 'a', version: 1, revision: 1 }, 'listener failed on a'],
      [what, { type: 'created', id: 'b', version: 1, revision: 2 }, 'listener failed on b'],
    ],
  });
});

test('subscribe(callback, { onError }): onError gets what the callback threw and its event; delivery goes on', async () => {
  const m = new ContextManager();
  const seen = [];
  const errors = [];
  const off = m.subscribe(
    (ev) => {
      seen.push(ev.id);
      if (ev.id !== 'b') throw new Error(`failed on ${ev.id}`);
    },
    { onError: (error, event) => errors.push([error.message, event.id]) },
  );
  await m.createContext('a', {});
  await m.createContext('b', {});
  await m.createContext('c', {});
  while (seen.length < 3) await settle();
  off();
  assert.deepEqual(seen, ['a', 'b', 'c']);
  assert.deepEqual(errors, [['failed on a', 'a'], ['failed on c', 'c']]);
});

test('an onError that throws is logged with console.error, never an unhandled rejection', async () => {
  const script = `
    const { ContextManager } = await import(${JSON.stringify(pathToFileURL(path.join(pkgDir, 'index.mjs')).href)});
    const m = new ContextManager();
    const logged = [];
    console.error = (...args) => logged.push(args);
    let delivered = 0;
    m.subscribe(() => { delivered++; throw new Error('listener'); }, { onError: () => { throw new Error('handler'); } });
    await m.createContext('a', {});
    await m.createContext('b', {});
    while (logged.length < 2) await new Promise((r) => setTimeout(r, 1));
    console.log(JSON.stringify({ delivered, logged: logged.map(([what, ev, e]) => [what, ev.id, e.message]) }));
  `;
  const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script]);
  const what = "contextkit: a subscriber's onError threw on";
  assert.deepEqual(JSON.parse(stdout), { delivered: 2, logged: [[what, 'a', 'handler'], [what, 'b', 'handler']] });
});

test('subscribe options are checked', async () => {
  const m = new ContextManager();
  for (const bad of [1, 'f', [], { onError: 1 }, { onErr: () => {} }]) {
    await rejectsWith(() => m.subscribe(() => {}, bad), 'INVALID_ARGUMENT');
  }
  m.subscribe(() => {}, { onError: undefined })();
  m.subscribe(() => {}, null)();
});

test('subscribe needs a function', async () => {
  const m = new ContextManager();
  for (const bad of [undefined, null, 1, 'f', {}]) await rejectsWith(() => m.subscribe(bad), 'INVALID_ARGUMENT');
});
