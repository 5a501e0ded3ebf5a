// Hostile and mistaken input: always a ContextError INVALID_ARGUMENT (or a
// TypeError from the binding layer), never a panic, and the object keeps working.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { execFileSync } from 'node:child_process';
import { ContextAdapter, ContextError, ContextManager, ContextTracker, MemoryStorage, pkgDir, rejectsWith } from './helpers.mjs';

const big = 'x'.repeat(10 * 1024 * 1024);

function deep(levels, makeContainer = (inner) => ({ a: inner })) {
  let v = {};
  for (let i = 0; i < levels; i++) v = makeContainer(v);
  return v;
}

function cyclic() {
  const o = { name: 'loop', child: { list: [] } };
  o.child.list.push(o);
  return o;
}

/** Values that are not a JSON object, as data. */
const badData = {
  undefined: undefined,
  null: null,
  number: 42,
  string: 'text',
  boolean: true,
  array: [1, 2],
  bigint: 10n,
  symbol: Symbol('s'),
  function: () => ({}),
  'NaN inside': { x: NaN },
  'Infinity inside': { x: Infinity },
  '-Infinity inside': { x: [-Infinity] },
  'BigInt inside': { x: { y: 1n } },
  'function inside': { f() {} },
  'symbol inside': { s: Symbol('s') },
  'undefined in an array': { list: [1, undefined] },
  'array hole': { list: [1, , 3] }, // eslint-disable-line no-sparse-arrays
  cyclic: cyclic(),
  'self-cycle': (() => { const o = {}; o.self = o; return o; })(),
  '10,000-deep objects': deep(10_000),
  '10,000-deep arrays': deep(10_000, (inner) => ({ a: [inner] })),
  '129-deep': deep(128),
  '10 MB string': { s: big },
  '10 MB key': { [big]: 1 },
  '2^20 small elements': { list: new Array(1 << 20).fill(0) },
  Date: { when: new Date(0) },
  Map: { m: new Map([['a', 1]]) },
  'class instance': { p: new (class Point { constructor() { this.x = 1; } })() },
  'typed array': { bytes: new Uint8Array(4) },
  'boxed number': { n: new Number(1) },
  'throwing getter': { get boom() { throw new Error('getter exploded'); } },
  'throwing proxy': new Proxy({}, { ownKeys() { throw new Error('trap exploded'); } }),
  'revoked proxy': (() => { const p = Proxy.revocable({}, {}); p.revoke(); return p.proxy; })(),
  'nested revoked proxy': (() => { const p = Proxy.revocable([], {}); p.revoke(); return { inner: p.proxy }; })(),
  'huge array length': (() => { const a = []; a.length = 2 ** 32 - 1; return { a }; })(),
};

/** A wide graph of shared references: 2^60 paths, 60 distinct objects. */
function wideDag() {
  let v = { leaf: 1 };
  for (let i = 0; i < 60; i++) v = { l: v, r: v };
  return v;
}
badData['shared-reference explosion'] = wideDag();

const badIds = {
  undefined: undefined,
  null: null,
  number: 1,
  object: {},
  array: ['a'],
  symbol: Symbol('id'),
  bigint: 1n,
  function: () => 'a',
  empty: '',
  'control character': 'a\u0000b',
  '10 MB': big,
};

async function stillWorks(m, id) {
  await m.createContext(id, { ok: true });
  assert.deepEqual((await m.getContext(id)).data, { ok: true });
  await m.deleteContext(id);
}

for (const [name, data] of Object.entries(badData)) {
  test(`data: ${name} is INVALID_ARGUMENT and the manager keeps working`, async () => {
    const m = new ContextManager();
    await m.createContext('exists', { v: 1 });
    const err = await rejectsWith(m.createContext('a', data), 'INVALID_ARGUMENT');
    assert.ok(err.message.length > 0);
    await rejectsWith(m.updateContext('exists', data), 'INVALID_ARGUMENT');
    assert.deepEqual((await m.getContext('exists')).data, { v: 1 });
    await stillWorks(m, 'a');
    const t = new ContextTracker(m);
    await t.activateContext('exists');
    await rejectsWith(t.updateState(data), 'INVALID_ARGUMENT');
    assert.equal(await t.isDirty(), false);
    const ad = new ContextAdapter(m);
    await rejectsWith(ad.createContext('b', data), 'INVALID_ARGUMENT');
    await rejectsWith(ad.updateContext('exists', data), 'INVALID_ARGUMENT');
  });
}

for (const [name, id] of Object.entries(badIds)) {
  test(`id: ${name} is INVALID_ARGUMENT and the manager keeps working`, async () => {
    const m = new ContextManager();
    const calls = [
      () => m.createContext(id, {}),
      () => m.getContext(id),
      () => m.updateContext(id, {}),
      () => m.deleteContext(id),
      () => m.createRecoveryPoint(id),
      () => m.recoveryPoints(id),
      () => m.restoreRecoveryPoint(id, 0),
      () => new ContextTracker(m).activateContext(id),
      () => new ContextAdapter(m).activateContext(id),
    ];
    if (typeof id !== 'string') calls.push(() => new ContextAdapter(m).deactivateContext(id));
    for (const call of calls) await rejectsWith(call, 'INVALID_ARGUMENT');
    await stillWorks(m, 'fine');
  });
}

test('messages name the offending path', async () => {
  const m = new ContextManager();
  const e1 = await rejectsWith(m.createContext('a', { a: { b: [1, 2, NaN] } }), 'INVALID_ARGUMENT');
  assert.match(e1.message, /context data at \.a\.b\[2\] is NaN/);
  const e2 = await rejectsWith(m.createContext('a', cyclic()), 'INVALID_ARGUMENT');
  assert.match(e2.message, /cycle/);
  const e3 = await rejectsWith(m.createContext('a', deep(10_000)), 'INVALID_ARGUMENT');
  assert.match(e3.message, /nested too deeply/);
  const e4 = await rejectsWith(m.createContext('a', { s: big }), 'INVALID_ARGUMENT');
  assert.match(e4.message, /larger than 1048576 bytes/);
});

test('a cycle is one short line saying where it is and what it refers back to', async () => {
  const m = new ContextManager();
  const e1 = await rejectsWith(m.createContext('a', cyclic()), 'INVALID_ARGUMENT');
  assert.equal(e1.message, 'context data at .child.list[0] refers back to the top-level object (a cycle, which JSON cannot hold)');
  const inner = { b: {} };
  inner.b.c = inner;
  const e2 = await rejectsWith(m.updateContext('a', { a: inner }), 'INVALID_ARGUMENT');
  assert.equal(e2.message, 'context data at .a.b.c refers back to its ancestor at .a (a cycle, which JSON cannot hold)');
  const self = {};
  self.self = self;
  const e3 = await rejectsWith(m.createContext('a', {}, { metadata: self }), 'INVALID_ARGUMENT');
  assert.equal(e3.message, 'metadata at .self refers back to the top-level object (a cycle, which JSON cannot hold)');
  // The same object twice, side by side, is no cycle.
  const shared = { n: 1 };
  assert.deepEqual((await m.createContext('b', { x: shared, y: [shared, shared] })).data, { x: { n: 1 }, y: [{ n: 1 }, { n: 1 }] });
});

test('messages do not repeat their code: it is a field of its own', async () => {
  const m = new ContextManager({ maxContexts: 1 });
  const cases = [
    [() => m.getContext(1), 'INVALID_ARGUMENT', 'context id must be a string, got a number'],
    [() => new ContextManager({ maxContext: 1 }), 'INVALID_ARGUMENT', /^unknown option 'maxContext' in ContextManager config/],
    [async () => { await m.createContext('a', {}); await m.createContext('b', {}); }, 'CAPACITY_EXCEEDED', 'too many contexts: the limit is 1'],
  ];
  const failing = { get: async () => undefined, put: async () => { throw new Error('disk full'); }, delete: async () => {}, list: async () => [] };
  const { manager } = await ContextManager.open(failing);
  cases.push([() => manager.createContext('a', {}), 'STORAGE', "createContext: storage.put('c/a') failed: disk full"]);
  for (const [call, code, message] of cases) {
    const e = await rejectsWith(call, code);
    if (typeof message === 'string') assert.equal(e.message, message);
    else assert.match(e.message, message);
    assert.doesNotMatch(e.message, /^(invalid argument|storage error|capacity exceeded):/);
  }
});

test('what JSON allows is accepted: 128 levels, -0, unicode, undefined properties, null prototypes', async () => {
  const m = new ContextManager();
  await m.createContext('deep', deep(127));
  const bare = Object.create(null);
  bare.k = 'v';
  const s = await m.createContext('mix', {
    zero: -0,
    float: 1.5,
    big: 2 ** 60,
    neg: -(2 ** 40),
    text: 'héllo ✓ 𝄞',
    skipped: undefined,
    bare,
    list: [null, true, false, [], {}],
  });
  assert.deepEqual(s.data, {
    zero: 0,
    float: 1.5,
    big: 2 ** 60,
    neg: -(2 ** 40),
    text: 'héllo ✓ 𝄞',
    bare: { k: 'v' },
    list: [null, true, false, [], {}],
  });
});

const badManagerConfigs = [
  'config', 5, [], () => {}, { maxContexts: -1 }, { maxContexts: 0 }, { maxContexts: 1.5 }, { maxContexts: '10' },
  { maxContexts: NaN }, { maxContexts: Infinity }, { maxContexts: 2 ** 60 }, { maxContexts: 10n },
  { maxRecoveryPoints: -1 }, { defaultTtlMs: 0 }, { defaultTtlMs: 'soon' }, { maxIdBytes: 0 },
  { maxDataBytes: 1 }, { maxContext: 10 }, { [Symbol('k')]: 1, bogus: true },
];

test('wrong ContextManager config types throw INVALID_ARGUMENT', async () => {
  for (const cfg of badManagerConfigs) {
    await rejectsWith(() => new ContextManager(cfg), 'INVALID_ARGUMENT');
  }
  assert.ok(new ContextManager(null));
  assert.ok(new ContextManager({}));
  assert.ok(new ContextManager({ maxContexts: undefined, defaultTtlMs: null }));
});

test('wrong option types reject with INVALID_ARGUMENT and the manager keeps working', async () => {
  const m = new ContextManager();
  await m.createContext('a', {});
  const bad = [
    () => m.createContext('b', {}, 'opts'),
    () => m.createContext('b', {}, { ttlMs: -5 }),
    () => m.createContext('b', {}, { ttlMs: 0 }),
    () => m.createContext('b', {}, { ttlMs: '100' }),
    () => m.createContext('b', {}, { ttl: 100 }),
    () => m.createContext('b', {}, { metadata: 'owner' }),
    () => m.createContext('b', {}, { metadata: { n: 1 } }),
    () => m.createContext('b', {}, { metadata: { s: big } }),
    () => m.updateContext('a', {}, { expectedVersion: '1' }),
    () => m.updateContext('a', {}, { expectedVersion: -1 }),
    () => m.updateContext('a', {}, { expectedVersion: 1.5 }),
    () => m.updateContext('a', {}, { expectedVersion: 1n }),
    () => m.updateContext('a', {}, [1]),
    () => m.restoreRecoveryPoint('a', '0'),
    () => m.restoreRecoveryPoint('a', -1),
    () => m.restoreRecoveryPoint('a', undefined),
    () => new ContextTracker(m, { conflict: 'merge' }),
    () => new ContextTracker(m, { autoRecovery: 'yes' }),
    () => new ContextTracker(m, { syncIntervalMs: 0 }),
    () => new ContextTracker(m, 7),
    () => new ContextAdapter(m, { autoCleanup: 1 }),
    () => new ContextAdapter(m).updateConfig('x'),
    () => new ContextAdapter(m).updateConfig({ maxActiveContexts: -1 }),
    () => m.subscribe(42),
  ];
  for (const call of bad) await rejectsWith(call, 'INVALID_ARGUMENT');
  await stillWorks(m, 'b');
  assert.equal((await m.getContext('a')).version, 1);
});

test('a tracker or adapter needs a real ContextManager: TypeError', () => {
  for (const bad of [undefined, null, {}, 'm', new ContextTracker(new ContextManager())]) {
    assert.throws(() => new ContextTracker(bad), TypeError);
    assert.throws(() => new ContextAdapter(bad), TypeError);
  }
});

test('errors are ContextError instances, never strings', async () => {
  const m = new ContextManager();
  const reasons = await Promise.allSettled([
    m.createContext(1, {}),
    m.createContext('a', 1),
    m.getContext('missing'),
  ]);
  for (const r of reasons) {
    assert.equal(r.status, 'rejected');
    assert.ok(r.reason instanceof ContextError);
  }
});

test('an id with a lone surrogate is refused, not made another id', async () => {
  const m = new ContextManager({});
  try {
    for (const id of ['a\ud800b', 'a\udc00b', '\udbff', 'x\ud800\ud800']) {
      for (const call of [() => m.createContext(id, {}), () => m.getContext(id), () => m.deleteContext(id)]) {
        const err = await rejectsWith(call, 'INVALID_ARGUMENT');
        assert.match(err.message, /context id contains a lone surrogate/);
      }
    }
    // U+FFFD itself and well-formed pairs are ids like any other.
    await m.createContext('a\ufffdb', { n: 1 });
    await m.createContext('a\ud83d\ude00b', { n: 2 });
    assert.deepEqual(await m.listContextIds(), ['a\ufffdb', 'a\ud83d\ude00b']);
    assert.equal((await m.getContext('a\ufffdb')).data.n, 1);
  } finally {
    m.free();
  }
});

// A toJSON on the prototypes of the copy's objects and arrays stands in for
// them when JSON.stringify writes the argument's text: what it writes (here
// a lone surrogate) is checked like any argument text and refused, and
// nothing unchecked reaches a storage.
test('a toJSON on Object.prototype or Array.prototype slips no unchecked text in', async () => {
  for (const proto of [Object.prototype, Array.prototype]) {
    const storage = new MemoryStorage();
    const { manager: m } = await ContextManager.open(storage);
    Object.defineProperty(proto, 'toJSON', {
      value: () => ({ lone: '\ud800' }),
      configurable: true,
      writable: true,
    });
    try {
      await assert.rejects(m.createContext('a', { list: [1] }), { code: 'INVALID_ARGUMENT' });
    } finally {
      delete proto.toJSON;
    }
    assert.deepEqual((await m.createContext('a', { list: [1] })).data, { list: [1] });
    m.free();
    const { manager, problems } = await ContextManager.open(storage);
    assert.deepEqual(problems, []);
    assert.deepEqual((await manager.getContext('a')).data, { list: [1] });
    manager.free();
  }
});

// An engine without String.prototype.isWellFormed (Safari before 16.4,
// Chrome before 111) lets the argument walk pass a lone surrogate; the text
// JSON.stringify writes of short data then holds it as an escape, which the
// wasm side's check refuses: nothing that reads back as null is stored.
test('without String.prototype.isWellFormed, a lone surrogate in short data is still refused', () => {
  const script = `
    delete String.prototype.isWellFormed;
    const { ContextManager, MemoryStorage } = require(${JSON.stringify(pkgDir)});
    (async () => {
      const storage = new MemoryStorage();
      const { manager } = await ContextManager.open(storage);
      const refused = await manager.createContext('a', { s: '\\ud800' }).then(() => 'stored', (e) => e.code);
      await manager.createContext('b', { s: 'ok' });
      manager.free();
      const { manager: again, problems } = await ContextManager.open(storage);
      console.log(JSON.stringify({ refused, problems: problems.length, ids: await again.listContextIds() }));
      again.free();
    })();
  `;
  const out = JSON.parse(execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' }));
  assert.deepEqual(out, { refused: 'INVALID_ARGUMENT', problems: 0, ids: ['b'] });
});
