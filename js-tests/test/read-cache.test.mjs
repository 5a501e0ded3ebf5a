// Reads served from the manager's cache of states already read, and data
// crossing into wasm as the JSON text toJson writes (strings unescaped where
// they can be): results are objects of the caller's own, never stale, and
// every string arrives exactly as given.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ContextAdapter, ContextManager, rejectsWith } from './helpers.mjs';

const nested = () => ({ list: [1, { deep: ['x'] }], obj: { a: { b: 'c' } }, s: 'text', n: 1.5, t: true, z: null });

/** Every object and array of `a` is a different object from its counterpart in `b`. */
function assertDisjoint(a, b, path = 'data') {
  if (typeof a !== 'object' || a === null) return;
  assert.notEqual(a, b, `${path} is shared`);
  for (const k of Object.keys(a)) assertDisjoint(a[k], b[k], `${path}.${k}`);
}

/** Changes every object and array inside `v`. */
function scribble(v) {
  if (typeof v !== 'object' || v === null) return;
  for (const k of Object.keys(v)) scribble(v[k]);
  if (Array.isArray(v)) v.push('scribbled');
  else v.scribbled = true;
}

for (const readCacheBytes of [undefined, 0]) {
  const what = readCacheBytes === 0 ? ' (cache off)' : '';

  test(`every get returns a state of its own; changing it changes nothing others see${what}`, async () => {
    const m = new ContextManager({ readCacheBytes });
    await m.createContext('a', nested(), { metadata: { owner: 'ada' } });
    const reads = [];
    for (let i = 0; i < 4; i++) reads.push(await m.getContext('a'));
    for (let i = 1; i < reads.length; i++) {
      assert.notEqual(reads[i], reads[0]);
      assertDisjoint(reads[i].data, reads[0].data);
      assert.notEqual(reads[i].metadata, reads[0].metadata);
    }
    for (const s of reads) {
      scribble(s.data);
      s.metadata.owner = 'mallory';
      s.version = 99;
      s.id = 'b';
    }
    const again = await m.getContext('a');
    assert.deepEqual(again.data, nested());
    assert.deepEqual(again.metadata, { owner: 'ada' });
    assert.equal(again.version, 1);
    assert.equal(again.id, 'a');
    const a = new ContextAdapter(m);
    const viaAdapter = await a.getContext('a');
    scribble(viaAdapter.data);
    assert.deepEqual((await a.getContext('a')).data, nested());
    assert.deepEqual((await m.getContext('a')).data, nested());
  });

  test(`a get after an update, a restore or a delete and re-create sees the new state${what}`, async () => {
    const m = new ContextManager({ readCacheBytes });
    await m.createContext('a', { v: 1 });
    assert.deepEqual((await m.getContext('a')).data, { v: 1 });
    await m.createRecoveryPoint('a');
    await m.updateContext('a', { v: 2 });
    assert.deepEqual((await m.getContext('a')).data, { v: 2 });
    const [point] = await m.recoveryPoints('a');
    await m.restoreRecoveryPoint('a', point.id);
    const restored = await m.getContext('a');
    assert.deepEqual([restored.version, restored.data], [3, { v: 1 }]);
    // The same id, version 1 again, in the same millisecond: only the data tells them apart.
    for (let round = 0; round < 50; round++) {
      await m.deleteContext('a');
      await m.createContext('a', { round });
      assert.deepEqual((await m.getContext('a')).data, { round });
      assert.deepEqual((await m.getContext('a')).data, { round });
    }
    await m.deleteContext('a');
    await rejectsWith(m.getContext('a'), 'NOT_FOUND');
  });
}

test('a state returned by create or update is the caller\'s own, as is every later get', async () => {
  const m = new ContextManager();
  const input = nested();
  const created = await m.createContext('a', input);
  assertDisjoint(created.data, input);
  scribble(created.data);
  scribble(input);
  const first = await m.getContext('a');
  assert.deepEqual(first.data, nested());
  scribble(first.data);
  assert.deepEqual((await m.getContext('a')).data, nested());
  const updated = await m.updateContext('a', { v: [1] });
  updated.data.v.push(2);
  assert.deepEqual((await m.getContext('a')).data, { v: [1] });
});

test('a small cache evicts and every read stays right', async () => {
  const m = new ContextManager({ readCacheBytes: 600 });
  const ids = Array.from({ length: 40 }, (_, i) => `c${i}`);
  for (const id of ids) await m.createContext(id, { id, pad: 'p'.repeat(40) });
  for (let round = 0; round < 5; round++) {
    for (const id of ids) {
      const s = await m.getContext(id);
      assert.deepEqual(s.data, { id, pad: 'p'.repeat(40) });
      scribble(s.data);
    }
  }
  // Larger than the whole cache: never kept, still read right.
  await m.createContext('big', { s: 'b'.repeat(1000) });
  assert.equal((await m.getContext('big')).data.s.length, 1000);
  assert.equal((await m.getContext('big')).data.s.length, 1000);
});

test('readCacheBytes must be a non-negative integer', async () => {
  for (const readCacheBytes of [-1, 1.5, '1', null, NaN, 2 ** 60]) {
    await rejectsWith(() => new ContextManager({ readCacheBytes }), 'INVALID_ARGUMENT');
  }
  assert.ok(new ContextManager({ readCacheBytes: 0 }));
  assert.ok(new ContextManager({ readCacheBytes: 2 ** 40 }));
});

test('a __proto__ key stays an own property through the cache', async () => {
  const m = new ContextManager();
  const data = JSON.parse('{"__proto__": {"polluted": true}, "ok": 1}');
  await m.createContext('a', data);
  for (let i = 0; i < 3; i++) {
    const s = await m.getContext('a');
    assert.ok(Object.hasOwn(s.data, '__proto__'));
    assert.deepEqual(s.data.__proto__, { polluted: true });
    assert.equal(Object.getPrototypeOf(s.data), Object.prototype);
    assert.equal({}.polluted, undefined);
  }
});

/** Strings JSON escapes, in values and in keys, short and long. */
function awkward() {
  const controls = Array.from({ length: 32 }, (_, i) => String.fromCharCode(i)).join('');
  return {
    quote: 'say "hi"',
    backslash: 'C:\\path\\to',
    both: '\\"',
    controls,
    newline: 'line one\nline two\r\n\ttabbed',
    nul: 'a\u0000b',
    unicode: 'héllo ✓ 𝄞 \u2028\u2029',
    [`key "quoted"\n\\`]: 'k',
    [controls]: controls,
    list: ['\n', '"', '\\', '\u001f', 'plain'],
    long: `${'x'.repeat(5000)}\n${'y'.repeat(5000)}"`,
    longPlain: 'z'.repeat(10_000),
    longControls: `${'\u0001'.repeat(3000)}é`,
  };
}

test('strings with quotes, backslashes and control characters arrive exactly', async () => {
  const m = new ContextManager();
  const created = await m.createContext('a', awkward());
  assert.deepEqual(created.data, awkward());
  assert.deepEqual((await m.getContext('a')).data, awkward());
  assert.deepEqual((await m.getContext('a')).data, awkward());
  await m.updateContext('a', { only: '\n' });
  assert.deepEqual((await m.getContext('a')).data, { only: '\n' });
  await m.createRecoveryPoint('a');
  assert.deepEqual((await m.recoveryPoints('a'))[0].data, { only: '\n' });
});

test('control characters count toward maxDataBytes as their escapes do', async () => {
  // "\u0001" takes 6 bytes in JSON: {"s":"…"} is 8 bytes plus 6 per character.
  const m = new ContextManager({ maxDataBytes: 8 + 6 * 10 });
  await m.createContext('fits', { s: '\u0001'.repeat(10) });
  await rejectsWith(m.createContext('over', { s: '\u0001'.repeat(11) }), 'INVALID_ARGUMENT');
  assert.deepEqual((await m.getContext('fits')).data, { s: '\u0001'.repeat(10) });
});

test('128 levels with control characters inside are accepted and read back', async () => {
  let deep = { s: 'a\nb' };
  for (let i = 1; i < 128; i++) deep = { d: deep, s: '\t' };
  const m = new ContextManager();
  await m.createContext('deep', deep);
  assert.deepEqual((await m.getContext('deep')).data, deep);
});
