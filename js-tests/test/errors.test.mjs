// ContextError fields: the context's `id` wherever the error is about one,
// a missing recovery point's `recoveryPoint`, a version conflict's `expected`
// and `actual`, and nothing else; messages as before. In memory and in
// shared mode (IndexedDBStorage over fake-indexeddb), whose errors come back
// from the store's replies.
import 'fake-indexeddb/auto';
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ContextAdapter, ContextManager, ContextTracker, IndexedDBStorage, rejectsWith } from './helpers.mjs';

/** Asserts the call fails with exactly these enumerable fields and this message. */
async function failsWith(call, fields, message) {
  const e = await rejectsWith(call, fields.code);
  assert.deepEqual({ ...e }, fields);
  assert.equal(e.message, message);
}

/** The codes of a manager's contexts: NOT_FOUND (of a context or a recovery point), ALREADY_EXISTS, VERSION_CONFLICT. */
async function managerErrors(m) {
  await m.createContext('a', { n: 1 });
  await failsWith(m.getContext('gone'), { code: 'NOT_FOUND', id: 'gone' }, "context 'gone' not found");
  await failsWith(
    m.restoreRecoveryPoint('a', 99),
    { code: 'NOT_FOUND', id: 'a', recoveryPoint: 99 },
    "recovery point 99 of context 'a' not found",
  );
  // A missing context is that, whichever recovery point was asked for.
  await failsWith(m.restoreRecoveryPoint('gone', 1), { code: 'NOT_FOUND', id: 'gone' }, "context 'gone' not found");
  await failsWith(m.createContext('a', {}), { code: 'ALREADY_EXISTS', id: 'a' }, "context 'a' already exists");
  await failsWith(
    m.updateContext('a', { n: 2 }, { expectedVersion: 5 }),
    { code: 'VERSION_CONFLICT', id: 'a', expected: 5, actual: 1 },
    "version conflict on 'a': expected 5, found 1",
  );
}

test('errors of a manager carry the id and the recovery point', async () => {
  const m = new ContextManager({ maxContexts: 1 });
  await managerErrors(m);
  // Codes about no one context carry no id.
  await failsWith(m.createContext('b', {}), { code: 'CAPACITY_EXCEEDED' }, 'too many contexts: the limit is 1');
  await failsWith(m.getContext(''), { code: 'INVALID_ARGUMENT' }, 'context id must not be empty');
  m.free();
});

test('errors of shared mode carry the same fields', async () => {
  const { manager } = await ContextManager.open(new IndexedDBStorage('errors'));
  await managerErrors(manager);
  manager.free();
});

test('NOT_ACTIVE carries the id an adapter call named; UNSYNCED_CHANGES the active id', async () => {
  const m = new ContextManager();
  await m.createContext('a', {});
  await m.createContext('b', {});
  const t = new ContextTracker(m);
  await failsWith(t.getState(), { code: 'NOT_ACTIVE' }, 'no active context');
  await t.activateContext('a');
  await t.updateState({ edited: true });
  await failsWith(t.activateContext('b'), { code: 'UNSYNCED_CHANGES', id: 'a' }, "context 'a' has unsynced changes");
  await failsWith(t.deactivateContext(), { code: 'UNSYNCED_CHANGES', id: 'a' }, "context 'a' has unsynced changes");

  const adapter = new ContextAdapter(m);
  await failsWith(adapter.deactivateContext('b'), { code: 'NOT_ACTIVE', id: 'b' }, "no active context for 'b'");
  const tb = await adapter.activateContext('b');
  await tb.updateState({ edited: true });
  await failsWith(adapter.deactivateContext('b'), { code: 'UNSYNCED_CHANGES', id: 'b' }, "context 'b' has unsynced changes");
  m.free();
});

test('a config the core would refuse is refused naming the JavaScript option', async () => {
  const m = new ContextManager();
  const bad = [
    [() => new ContextManager({ maxContexts: 0 }), 'maxContexts'],
    [() => new ContextManager({ maxIdBytes: 0 }), 'maxIdBytes'],
    [() => new ContextManager({ maxDataBytes: 1 }), 'maxDataBytes'],
    [() => new ContextManager({ defaultTtlMs: 0 }), 'defaultTtlMs'],
    [() => new ContextAdapter(m, { maxContexts: 0 }), 'maxContexts'],
    [() => new ContextAdapter(m, { maxActiveContexts: 0 }), 'maxActiveContexts'],
    [() => new ContextAdapter(m, { cleanupIntervalMs: 0 }), 'cleanupIntervalMs'],
    [() => new ContextAdapter(m, { ttlMs: 0 }), 'ttlMs'],
    [() => new ContextAdapter(m).updateConfig({ maxActiveContexts: 0 }), 'maxActiveContexts'],
  ];
  for (const [call, option] of bad) {
    const e = await rejectsWith(call, 'INVALID_ARGUMENT');
    assert.ok(e.message.includes(`.${option} `), e.message);
    assert.doesNotMatch(e.message, /[a-z]_[a-z]/, 'a Rust field name');
  }
  m.free();
});
