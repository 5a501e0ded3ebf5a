// Every control character (U+0000 to U+001F) in keys and values, in short
// data (whose JSON text toJson takes from JSON.stringify) and in data with
// long strings (whose text toJson writes itself, leaving control characters
// unescaped for the wasm side's parser): each arrives exactly through every
// call that takes data, every read, recovery points, a tracker, and a
// MemoryStorage reopened (records written and parsed as strict JSON).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ContextManager, ContextTracker, MemoryStorage, wasmModule } from './helpers.mjs';

const CONTROLS = Array.from({ length: 32 }, (_, i) => String.fromCharCode(i));

/**
 * Each control character as a key and inside a value, all of them in one
 * string, next to quotes and backslashes, and in an array. With `long`,
 * strings of 1,000 characters around them: toJson's own text (support.js
 * `jsonText`) is used from 1,024 characters in strings of 64 or more.
 */
function data(long, tag) {
  const pad = long ? 'p'.repeat(1_000) : '';
  const o = {};
  for (const c of CONTROLS) {
    o[`k${c}${pad}`] = `${pad}${c}${tag}`;
  }
  o.all = `${CONTROLS.join('')}${tag}${pad}`;
  o[CONTROLS.join('')] = tag;
  o.escapes = `"\\${CONTROLS.join('"\\')}${pad}`;
  o.list = CONTROLS.map((c) => [`${c}${pad}`, { [c]: c }]);
  return o;
}

for (const long of [false, true]) {
  for (const readCacheBytes of [undefined, 0]) {
    const what = `${long ? 'long strings' : 'short strings'}${readCacheBytes === 0 ? ', read cache off' : ''}`;

    test(`control characters arrive exactly through writes and reads (${what})`, async () => {
      const m = new ContextManager({ readCacheBytes });
      const created = await m.createContext('a', data(long, 'c'));
      assert.deepEqual(created.data, data(long, 'c'));
      for (let i = 0; i < 2; i++) assert.deepEqual((await m.getContext('a')).data, data(long, 'c'));

      const point = await m.createRecoveryPoint('a');
      const updated = await m.updateContext('a', data(long, 'u'), { expectedVersion: 1 });
      assert.deepEqual(updated.data, data(long, 'u'));
      for (let i = 0; i < 2; i++) assert.deepEqual((await m.getContext('a')).data, data(long, 'u'));

      const modified = await m.modifyContext('a', (d) => {
        assert.deepEqual(d, data(long, 'u'));
        return data(long, 'm');
      });
      assert.deepEqual(modified.data, data(long, 'm'));
      assert.deepEqual((await m.getContext('a')).data, data(long, 'm'));

      assert.deepEqual((await m.recoveryPoints('a'))[0].data, data(long, 'c'));
      const restored = await m.restoreRecoveryPoint('a', point.id);
      assert.deepEqual(restored.data, data(long, 'c'));
      assert.deepEqual((await m.getContext('a')).data, data(long, 'c'));
      m.free();
    });
  }

  test(`control characters arrive exactly through a tracker (${long ? 'long' : 'short'} strings)`, async () => {
    const m = new ContextManager();
    await m.createContext('a', { start: true });
    const t = new ContextTracker(m);
    await t.activateContext('a');
    assert.deepEqual((await t.updateState(data(long, 't'))).data, data(long, 't'));
    assert.deepEqual((await t.getState()).data, data(long, 't'));
    await t.syncState();
    assert.deepEqual((await m.getContext('a')).data, data(long, 't'));
    t.free();
    m.free();
  });

  test(`control characters survive a MemoryStorage and a reopen (${long ? 'long' : 'short'} strings)`, async () => {
    const storage = new MemoryStorage();
    const { manager: m } = await ContextManager.open(storage);
    await m.createContext('a', data(long, 'c'));
    await m.createRecoveryPoint('a');
    await m.updateContext('a', data(long, 'u'));
    await m.createContext(`id with key-like data ${long}`, { [CONTROLS.join('')]: CONTROLS });
    m.free();
    // The stored records are strict JSON: no raw control character in them.
    const { entries } = await storage.entries();
    assert.ok(entries.length >= 2, `${entries.length} records`);
    for (const [key, text] of entries) {
      // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it looks for
      assert.doesNotMatch(text, /[\u0000-\u001f]/, key);
    }
    const { manager, problems } = await ContextManager.open(storage);
    assert.deepEqual(problems, []);
    assert.deepEqual((await manager.getContext('a')).data, data(long, 'u'));
    assert.deepEqual((await manager.recoveryPoints('a'))[0].data, data(long, 'c'));
    assert.deepEqual((await manager.getContext(`id with key-like data ${long}`)).data, { [CONTROLS.join('')]: CONTROLS });
    manager.free();
  });
}

// The size limit counts a control character as JSON.stringify writes it
// (`\b` is two bytes), whichever way toJson made the text.
test('control characters count toward maxDataBytes as JSON.stringify writes them', async () => {
  for (const long of [false, true]) {
    const pad = long ? 'x'.repeat(1_100) : 'x';
    const value = { k: `${pad}\b\f\n\r\t\u0001` };
    const size = JSON.stringify(value).length;
    const exact = new ContextManager({ maxDataBytes: size });
    assert.deepEqual((await exact.createContext('a', value)).data, value);
    assert.deepEqual((await exact.getContext('a')).data, value);
    const under = new ContextManager({ maxDataBytes: size - 1 });
    await assert.rejects(under.createContext('a', value), { code: 'INVALID_ARGUMENT' });
  }
});

// Argument text is written by the host's TextEncoder straight into wasm
// memory, at an address the module reserved: text of every width (ASCII, two,
// three and four bytes a character) arrives exactly while the memory grows
// under it many times, and a string only as long as the room reserved for
// ASCII is written again with room for more.
test('text of every width arrives exactly while wasm memory grows', async () => {
  const m = new ContextManager({ maxDataBytes: 8 * 1024 * 1024, maxContexts: 1_000 });
  const widths = ['a', 'é', '€', '😀'];
  const made = [];
  const before = wasmModule.__memoryBytes();
  let grew = 0;
  for (let i = 0; i < 24; i++) {
    const c = widths[i % widths.length];
    // From 512 to a million UTF-16 units (up to 3 MB of UTF-8): the
    // largest outgrow what the module had reserved so far.
    const long = `${i}:${c.repeat((2 ** (i % 12) * 512) / c.length)}`;
    const d = { long, short: `${c}${i}`, [c.repeat(i)]: [c, i, { [c]: long.length }] };
    made.push(d);
    const size = wasmModule.__memoryBytes();
    assert.deepEqual((await m.createContext(`t${i}`, d)).data, d);
    if (wasmModule.__memoryBytes() > size) grew++;
  }
  assert.ok(grew >= 3 && wasmModule.__memoryBytes() > before, `the memory grew ${grew} times`);
  for (let i = 0; i < made.length; i++) {
    assert.deepEqual((await m.getContext(`t${i}`)).data, made[i]);
  }
  m.free();
});
