// Calls overlapping on one object while earlier Promises are pending.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ContextAdapter, ContextManager, ContextTracker } from './helpers.mjs';

test('many overlapping creates of one id: exactly one wins', async () => {
  const m = new ContextManager();
  const results = await Promise.allSettled(Array.from({ length: 50 }, (_, i) => m.createContext('a', { i })));
  const won = results.filter((r) => r.status === 'fulfilled');
  assert.equal(won.length, 1);
  assert.ok(results.filter((r) => r.status === 'rejected').every((r) => r.reason.code === 'ALREADY_EXISTS'));
  assert.deepEqual((await m.getContext('a')).data, won[0].value.data);
});

test('overlapping compare-and-set increments end exact', async () => {
  const m = new ContextManager();
  await m.createContext('counter', { n: 0 });
  async function increment() {
    for (;;) {
      const s = await m.getContext('counter');
      try {
        await m.updateContext('counter', { n: s.data.n + 1 }, { expectedVersion: s.version });
        return;
      } catch (e) {
        if (e.code !== 'VERSION_CONFLICT') throw e;
      }
    }
  }
  await Promise.all(Array.from({ length: 40 }, increment));
  const s = await m.getContext('counter');
  assert.equal(s.data.n, 40);
  assert.equal(s.version, 41);
});

test('every method overlapping on one manager, tracker and adapter', async () => {
  const m = new ContextManager();
  const a = new ContextAdapter(m);
  const t = new ContextTracker(m);
  await m.createContext('doc', { v: 0 });
  await t.activateContext('doc');
  const ops = [];
  for (let i = 0; i < 20; i++) {
    ops.push(
      m.createContext(`c${i}`, { i }),
      m.getContext('doc'),
      m.listContextIds(),
      m.len(),
      m.createRecoveryPoint('doc'),
      m.recoveryPoints('doc'),
      a.listContexts(),
      a.getConfig(),
      a.listActiveContextIds(),
      t.updateState({ v: i }),
      t.getState(),
      t.isDirty(),
      t.syncState(),
      a.activateContext('doc'),
    );
  }
  await Promise.all(ops);
  assert.equal(await m.len(), 21);
  assert.equal(await t.isDirty(), false);
  assert.deepEqual((await m.getContext('doc')).data, (await t.getState()).data);
});

test('free() while Promises of the same object are pending', async () => {
  const m = new ContextManager();
  const pending = [m.createContext('a', {}), m.getContext('a'), m.listContextIds()];
  m.free();
  const settled = await Promise.allSettled(pending);
  assert.deepEqual(settled.map((r) => r.status), ['fulfilled', 'fulfilled', 'fulfilled']);
});
