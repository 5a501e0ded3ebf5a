// Numbers come back exactly as given: every finite double survives a write
// and a read through every path (create, update, get, the adapter's list,
// recovery points and restore, a tracker's sync, a stored and reopened
// manager), with the read cache on and off. JSON has no -0: it reads back as 0.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ContextAdapter, ContextManager, ContextTracker, MemoryStorage } from './helpers.mjs';

/** Doubles that a parser that is not correctly rounded gets wrong, and the edges of the range. */
const HARD = [
  2.001484629778296e-19, 3.3928531589008594e-121, 9.111190022525008e20, 911119002252500900021,
  0.1, 0.2, 0.30000000000000004, 1 / 3, Math.PI, 123.456, 1e21, 1e-7, 1.5e-5, 7e-10,
  5e-324, -5e-324, 1e-323, 2.225073858507201e-308, 2.2250738585072014e-308, 4.35679e-317,
  1.7976931348623157e308, -1.7976931348623157e308, 1e308, Number.EPSILON, 1 + Number.EPSILON, 1 - Number.EPSILON / 2,
  Number.MAX_SAFE_INTEGER, -Number.MAX_SAFE_INTEGER, 2 ** 53, 2 ** 53 + 2, 2 ** 60, 2 ** 63, -(2 ** 63), 2 ** 64, -(2 ** 64),
  18446744073709550000, 1.8446744073709552e19, 2 ** 70, 1e300 * 1e8, 0, -0, 1, -1, 0.5, 2 ** -1074, 2 ** -1022, 2 ** 1023,
];

/** Reproducible doubles from their bits: `count` finite ones (mulberry32). */
function randomDoubles(count, seed) {
  let s = seed >>> 0;
  const u32 = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
  const view = new DataView(new ArrayBuffer(8));
  const out = [];
  while (out.length < count) {
    view.setUint32(0, u32());
    view.setUint32(4, u32());
    const x = view.getFloat64(0);
    if (Number.isFinite(x)) out.push(x);
  }
  return out;
}

const NUMBERS = [...HARD, ...randomDoubles(3000, 20261128)];

/**
 * Data holding `numbers` in arrays and as property values, nested. With
 * `long`, a long string makes the package write the JSON text itself
 * instead of JSON.stringify.
 */
function dataOf(numbers, long = false) {
  const byKey = {};
  numbers.slice(0, 500).forEach((x, i) => {
    byKey[`k${i}`] = x;
  });
  return { all: numbers, byKey, nested: { pairs: numbers.slice(0, 200).map((x) => [x, { x }]) }, ...(long ? { text: 'x'.repeat(2000) } : {}) };
}

/** `data` as JSON makes it: -0 is 0. */
const asJson = (data) => JSON.parse(JSON.stringify(data));

/** Asserts that `got` holds exactly the numbers of `want` (Object.is on every number). */
function assertExact(got, want, what) {
  assert.deepStrictEqual(got, asJson(want), what);
  // deepStrictEqual compares numbers with Object.is; this names the first one that differs.
  got.all.forEach((x, i) => assert.ok(Object.is(x, want.all[i] === 0 ? 0 : want.all[i]), `${what}: all[${i}] ${want.all[i]} read back as ${x}`));
}

for (const readCacheBytes of [undefined, 0]) {
  const cache = readCacheBytes === 0 ? ' (read cache off)' : '';

  for (const long of [false, true]) {
    const how = long ? ', beside a long string' : '';

    test(`doubles survive create, get and update exactly${how}${cache}`, async () => {
      const m = new ContextManager({ readCacheBytes });
      const first = dataOf(NUMBERS, long);
      await m.createContext('n', first);
      assertExact((await m.getContext('n')).data, first, 'get after create');
      assertExact((await m.getContext('n')).data, first, 'second get');
      const second = dataOf(NUMBERS.map((x) => -x / 3), long);
      await m.updateContext('n', second);
      assertExact((await m.getContext('n')).data, second, 'get after update');
      m.free();
    });
  }

  test(`doubles survive the adapter's listContexts exactly${cache}`, async () => {
    const m = new ContextManager({ readCacheBytes });
    const a = new ContextAdapter(m);
    const data = dataOf(NUMBERS);
    await a.createContext('n', data);
    await a.createContext('o', dataOf(HARD));
    const listed = await a.listContexts();
    assert.deepEqual(listed.map((s) => s.id), ['n', 'o']);
    assertExact(listed[0].data, data, 'listed n');
    assertExact(listed[1].data, dataOf(HARD), 'listed o');
    assertExact((await a.getContext('n')).data, data, 'adapter get');
    m.free();
  });

  test(`doubles survive recovery points and a restore exactly${cache}`, async () => {
    const m = new ContextManager({ readCacheBytes });
    const data = dataOf(NUMBERS);
    await m.createContext('n', data);
    const point = await m.createRecoveryPoint('n');
    assertExact(point.data, data, 'recovery point');
    await m.updateContext('n', { all: [] });
    assertExact((await m.recoveryPoints('n'))[0].data, data, 'listed recovery point');
    const restored = await m.restoreRecoveryPoint('n', point.id);
    assertExact(restored.data, data, 'restored state');
    assertExact((await m.getContext('n')).data, data, 'get after restore');
    m.free();
  });

  test(`doubles survive a tracker's sync exactly${cache}`, async () => {
    const m = new ContextManager({ readCacheBytes });
    await m.createContext('n', { all: [] });
    const t = new ContextTracker(m);
    await t.activateContext('n');
    const data = dataOf(NUMBERS);
    await t.updateState(data);
    assertExact((await t.getState()).data, data, 'working copy');
    const synced = await t.syncState();
    assertExact(synced.data, data, 'synced state');
    assertExact((await m.getContext('n')).data, data, 'manager after sync');
    const other = new ContextTracker(m);
    assertExact((await other.activateContext('n')).data, data, 'activated by another tracker');
    t.free();
    other.free();
    m.free();
  });

  test(`doubles survive storage and a reopen exactly${cache}`, async () => {
    const storage = new MemoryStorage();
    const { manager: m } = await ContextManager.open(storage, { readCacheBytes });
    const data = dataOf(NUMBERS);
    await m.createContext('n', data);
    await m.createRecoveryPoint('n');
    const later = dataOf(NUMBERS.map((x) => x / 7));
    await m.updateContext('n', later);
    m.free();
    const { manager, problems } = await ContextManager.open(storage, { readCacheBytes });
    assert.deepEqual(problems, []);
    assertExact((await manager.getContext('n')).data, later, 'reopened state');
    assertExact((await manager.recoveryPoints('n'))[0].data, data, 'reopened recovery point');
    // What is stored is read back as written: a second reopen sees the same.
    manager.free();
    const { manager: again } = await ContextManager.open(storage, { readCacheBytes });
    assertExact((await again.getContext('n')).data, later, 'reopened twice');
    again.free();
  });
}

test('stored numbers in every notation read back as the nearest double', async () => {
  const storage = new MemoryStorage();
  const { manager: m } = await ContextManager.open(storage);
  await m.createContext('n', { all: [0] });
  m.free();
  const record = await storage.get('c/n');
  const texts = [
    '2.001484629778296e-19', '2001484629778296e-34', '0.0000000000000000002001484629778296', '9007199254740993',
    '9007199254740993.0000000000000000000001', '1E5', '1e+5', '-0.0', '-0', '4.9406564584124654e-324',
    '2.4703282292062328e-324', '2.4703282292062327e-324', '1.7976931348623158e308', '18446744073709551615',
    '18446744073709551616', '-9223372036854775809', `0.${'0'.repeat(400)}1e401`,
  ];
  const stored = record.replace('"all":[0]', `"all":[${texts.join(',')}]`);
  assert.notEqual(stored, record);
  await storage.put('c/n', stored);
  const { manager, problems } = await ContextManager.open(storage);
  assert.deepEqual(problems, []);
  const got = (await manager.getContext('n')).data.all;
  // JSON.parse rounds correctly; -0 in stored text stays -0.
  assert.deepStrictEqual(got, texts.map((t) => JSON.parse(t)));
  manager.free();
});

test('stored numbers past the largest double are a problem naming their key', async () => {
  const storage = new MemoryStorage();
  const { manager: m } = await ContextManager.open(storage);
  await m.createContext('n', { all: [0] });
  await m.createContext('ok', { all: [1] });
  m.free();
  const record = await storage.get('c/n');
  await storage.put('c/n', record.replace('"all":[0]', '"all":[1e309]'));
  const { manager, problems } = await ContextManager.open(storage);
  assert.deepEqual(await manager.listContextIds(), ['ok']);
  assert.equal(problems.length, 1);
  assert.match(problems[0].message, /'c\/n' is not valid JSON: number out of range/);
  manager.free();
});
