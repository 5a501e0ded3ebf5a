// ContextTracker: a working copy of one active context.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ContextManager, ContextTracker, rejectsWith } from './helpers.mjs';

async function setup(config) {
  const m = new ContextManager();
  await m.createContext('doc', { title: 'draft' });
  return { m, t: new ContextTracker(m, config) };
}

test('nothing active: NOT_ACTIVE, not dirty, no id', async () => {
  const { t } = await setup();
  assert.equal(await t.activeContextId(), null);
  assert.equal(await t.isDirty(), false);
  await rejectsWith(t.getState(), 'NOT_ACTIVE');
  await rejectsWith(t.deactivateContext(), 'NOT_ACTIVE');
  await rejectsWith(t.discardChanges(), 'NOT_ACTIVE');
  await rejectsWith(t.updateState({}), 'NOT_ACTIVE');
  await rejectsWith(t.syncState(), 'NOT_ACTIVE');
  await rejectsWith(t.createRecoveryPoint(), 'NOT_ACTIVE');
  assert.equal(await t.isSyncNeeded(), false);
  assert.equal(await t.syncIfNeeded(), null);
});

test('activate, edit locally, sync back', async () => {
  const { m, t } = await setup();
  const s = await t.activateContext('doc');
  assert.equal(s.version, 1);
  assert.equal(await t.activeContextId(), 'doc');
  const local = await t.updateState({ title: 'final' });
  assert.equal(local.version, 1);
  assert.deepEqual(local.data, { title: 'final' });
  assert.equal(await t.isDirty(), true);
  assert.deepEqual((await t.getState()).data, { title: 'final' });
  assert.deepEqual((await m.getContext('doc')).data, { title: 'draft' });
  const synced = await t.syncState();
  assert.equal(synced.version, 2);
  assert.equal(await t.isDirty(), false);
  assert.deepEqual((await m.getContext('doc')).data, { title: 'final' });
  // A clean copy syncs without writing.
  assert.equal((await t.syncState()).version, 2);
  assert.equal((await m.getContext('doc')).version, 2);
});

test('activate a missing id: NOT_FOUND; dirty copy blocks activate and deactivate', async () => {
  const { m, t } = await setup();
  await rejectsWith(t.activateContext('missing'), 'NOT_FOUND');
  await m.createContext('other', {});
  await t.activateContext('doc');
  await t.updateState({ title: 'edited' });
  await rejectsWith(t.activateContext('other'), 'UNSYNCED_CHANGES');
  await rejectsWith(t.deactivateContext(), 'UNSYNCED_CHANGES');
  const base = await t.discardChanges();
  assert.deepEqual(base.data, { title: 'draft' });
  assert.equal(await t.isDirty(), false);
  await t.deactivateContext();
  assert.equal(await t.activeContextId(), null);
  await t.activateContext('other');
  assert.equal(await t.activeContextId(), 'other');
});

test('conflict policy reject keeps local edits and fails with VERSION_CONFLICT', async () => {
  const { m, t } = await setup({ conflict: 'reject' });
  await t.activateContext('doc');
  await t.updateState({ title: 'mine' });
  await m.updateContext('doc', { title: 'theirs' });
  const err = await rejectsWith(t.syncState(), 'VERSION_CONFLICT');
  assert.equal(err.expected, 1);
  assert.equal(err.actual, 2);
  assert.equal(await t.isDirty(), true);
  assert.deepEqual((await m.getContext('doc')).data, { title: 'theirs' });
});

test('conflict policy overwrite writes over the newer version', async () => {
  const { m, t } = await setup({ conflict: 'overwrite' });
  await t.activateContext('doc');
  await t.updateState({ title: 'mine' });
  await m.updateContext('doc', { title: 'theirs' });
  const s = await t.syncState();
  assert.equal(s.version, 3);
  assert.deepEqual((await m.getContext('doc')).data, { title: 'mine' });
});

test('conflict policy keepRemote adopts the stored version', async () => {
  const { m, t } = await setup({ conflict: 'keepRemote' });
  await t.activateContext('doc');
  await t.updateState({ title: 'mine' });
  await m.updateContext('doc', { title: 'theirs' });
  const s = await t.syncState();
  assert.equal(s.version, 2);
  assert.deepEqual(s.data, { title: 'theirs' });
  assert.equal(await t.isDirty(), false);
  assert.deepEqual((await t.getState()).data, { title: 'theirs' });
});

test('applyRemote adopts only strictly newer versions of the active context when clean', async () => {
  const { m, t } = await setup();
  await t.activateContext('doc');
  const v2 = await m.updateContext('doc', { title: 'v2' });
  assert.equal(await t.applyRemote(v2), true);
  assert.equal((await t.getState()).version, 2);
  assert.equal(await t.applyRemote(v2), false);
  assert.equal(await t.applyRemote({ ...v2, version: 1 }), false);
  await m.createContext('other', {});
  assert.equal(await t.applyRemote({ ...(await m.getContext('other')), version: 9 }), false);
  await t.updateState({ title: 'dirty' });
  const v3 = await m.updateContext('doc', { title: 'v3' });
  assert.equal(await t.applyRemote(v3), false);
  await rejectsWith(t.applyRemote({ id: 'doc' }), 'INVALID_ARGUMENT');
  await rejectsWith(t.applyRemote('doc'), 'INVALID_ARGUMENT');
});

test('autoRecovery makes a recovery point after each sync; createRecoveryPoint of the active context', async () => {
  const { m, t } = await setup({ autoRecovery: true });
  await t.activateContext('doc');
  await t.updateState({ title: 'one' });
  await t.syncState();
  const points = await m.recoveryPoints('doc');
  assert.equal(points.length, 1);
  assert.equal(points[0].version, 2);
  const p = await t.createRecoveryPoint();
  assert.equal(p.contextId, 'doc');
  assert.equal((await m.recoveryPoints('doc')).length, 2);
});

test('isSyncNeeded / syncIfNeeded respect syncIntervalMs', async () => {
  const { m, t } = await setup({ syncIntervalMs: 1 });
  await t.activateContext('doc');
  assert.equal(await t.isSyncNeeded(), false);
  await t.updateState({ title: 'x' });
  const start = Date.now();
  while (Date.now() - start < 2) await new Promise((r) => setTimeout(r, 1));
  assert.equal(await t.isSyncNeeded(), true);
  const s = await t.syncIfNeeded();
  assert.equal(s.version, 2);
  assert.equal(await t.syncIfNeeded(), null);
  assert.deepEqual((await m.getContext('doc')).data, { title: 'x' });

  const slow = new ContextTracker(m, { syncIntervalMs: 3_600_000 });
  await slow.activateContext('doc');
  await slow.updateState({ title: 'later' });
  assert.equal(await slow.isSyncNeeded(), false);
  assert.equal(await slow.syncIfNeeded(), null);
});

test('a tracker needs a ContextManager', () => {
  assert.throws(() => new ContextTracker({}), TypeError);
});
