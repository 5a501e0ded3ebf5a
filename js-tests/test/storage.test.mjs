// ContextManager.open(storage): "ok" means durable, failed writes change
// nothing, a reopened manager sees exactly the acknowledged state; the
// shipped MemoryStorage and FileStorage, hand-written storage objects, and
// hostile ones.
import assert from 'node:assert/strict';
import { cpSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  ContextAdapter,
  ContextError,
  ContextManager,
  ContextTracker,
  FileStorage,
  IndexedDBStorage,
  MemoryStorage,
  collect,
  rejectsWith,
  sleep,
} from './helpers.mjs';

const tmpBase = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../.tmp');
await mkdir(tmpBase, { recursive: true });
const tmp = await mkdtemp(path.join(tmpBase, 'storage-'));
after(() => rm(tmp, { recursive: true, force: true }));
let dirs = 0;
const freshDir = () => path.join(tmp, `d${++dirs}`);

/**
 * A hand-written storage over a Map, the way an application would adapt its
 * own store: each change is applied when called (so operations on a key take
 * effect in call order) and acknowledged after a random delay, so calls
 * overlap. `history` records every put and delete in call order.
 */
function objectStorage({ maxDelayMs = 3 } = {}) {
  const map = new Map();
  const history = [];
  const later = (v) => new Promise((resolve) => setTimeout(() => resolve(v), Math.random() * maxDelayMs));
  return {
    map,
    history,
    get: (key) => later(map.get(key)),
    put(key, value) {
      map.set(key, value);
      history.push(['put', key, value]);
      return later();
    },
    delete(key) {
      map.delete(key);
      history.push(['delete', key]);
      return later();
    },
    list: () => later([...map.keys()]),
  };
}

/**
 * A copy of a storage directory as it is now, without its lock: what a new
 * process would find there if this one died at this moment (the directory
 * itself stays locked while its manager is open).
 */
function copyOfDir(dir) {
  const copy = freshDir();
  cpSync(dir, copy, { recursive: true, filter: (src) => !path.basename(src).startsWith('contextkit.lock') });
  return copy;
}

/** The kinds of storage every scenario runs on; `reopen` gives what a new process would get. */
const kinds = [
  { name: 'a plain object', make: () => objectStorage(), reopen: (s) => s },
  { name: 'MemoryStorage', make: () => new MemoryStorage(), reopen: (s) => s },
  { name: 'FileStorage', make: () => new FileStorage(freshDir()), reopen: (s) => new FileStorage(copyOfDir(s.dir)) },
];

/** Everything a manager shows: live contexts with their recovery points, and the next recovery point id. */
async function view(m) {
  const contexts = {};
  for (const id of await m.listContextIds()) {
    contexts[id] = { state: await m.getContext(id), points: await m.recoveryPoints(id) };
  }
  return { contexts, nextRecoveryPointId: m.nextRecoveryPointId(), len: await m.len() };
}

/** Opens a second manager on `storage` and checks it shows exactly what `m` shows. */
async function assertReopens(kind, storage, m, config, step) {
  const { manager, problems } = await ContextManager.open(kind.reopen(storage), config);
  try {
    assert.deepEqual(problems, [], `problems after ${step}`);
    assert.deepEqual(await view(manager), await view(m), `reopened after ${step}`);
  } finally {
    manager.free();
  }
}

/** Wraps `inner` so that chosen calls fail: `fail(method, key, how)` arms one failure. */
function faulty(inner) {
  const armed = [];
  const wrap =
    (method) =>
    (...args) => {
      const i = armed.findIndex((a) => a.method === method && (a.key === undefined || a.key === args[0]));
      if (i >= 0) {
        const [{ how }] = armed.splice(i, 1);
        if (how === 'throw') throw new Error(`injected ${method} failure`);
        return Promise.reject(new Error(`injected ${method} failure`));
      }
      return inner[method](...args);
    };
  return {
    storage: { get: wrap('get'), put: wrap('put'), delete: wrap('delete'), list: wrap('list') },
    fail(method, key, how = 'reject') {
      armed.push({ method, key, how });
    },
    get pending() {
      return armed.length;
    },
  };
}

for (const kind of kinds) {
  describe(`on ${kind.name}`, () => {
    test('a reopened manager sees exactly the acknowledged state after every kind of operation', async (ctx) => {
      const config = { maxRecoveryPoints: 2 };
      const storage = kind.make();
      const { manager: m, problems } = await ContextManager.open(storage, config);
      assert.deepEqual(problems, []);
      const check = (step) => assertReopens(kind, storage, m, config, step);
      await check('open');

      await m.createContext('a', { x: 1, list: ['é', null, true, 1.5] });
      await check('create');
      await m.createContext('b', { y: 1 }, { ttlMs: 60_000, metadata: { owner: 'ada' } });
      await check('create with TTL and metadata');
      await m.updateContext('a', { x: 2 });
      await check('update');
      const b1 = await m.getContext('b');
      await sleep(2);
      const b2 = await m.updateContext('b', { y: 2 }, { expectedVersion: b1.version });
      assert.ok(b2.expiresAtMs > b1.expiresAtMs);
      await check('update with TTL (expiry restarted)');
      const p1 = await m.createRecoveryPoint('a');
      await check('recovery point');
      await m.updateContext('a', { x: 3 });
      await m.createRecoveryPoint('a');
      await m.createRecoveryPoint('a');
      assert.equal((await m.recoveryPoints('a')).some((p) => p.id === p1.id), false);
      await check('recovery points with rotation');
      const points = await m.recoveryPoints('a');
      await m.restoreRecoveryPoint('a', points[0].id);
      await check('restore');
      await m.createRecoveryPoint('b');
      const next = m.nextRecoveryPointId();
      await m.deleteContext('b');
      assert.equal(m.nextRecoveryPointId(), next);
      await check('delete of a context with recovery points');
      await m.deleteContext('a');
      await check('delete of the last context');

      // The reopen must compare before `t` expires: with two views taken
      // moments apart, an expiry between them would make them differ. A
      // machine too slow to finish the check within the TTL leaves this step
      // unproven (the steps after it check the expired state).
      const gone = await m.createContext('t', {}, { ttlMs: 500 });
      await m.createContext('u', {});
      try {
        await check('create of a short-lived context');
      } catch (e) {
        if (Date.now() < gone.expiresAtMs) throw e;
        // Only `t`, which expired meanwhile, may differ.
        const { manager, problems } = await ContextManager.open(kind.reopen(storage), config);
        try {
          assert.deepEqual(problems, []);
          const withoutT = ({ contexts: { t: _, ...contexts }, nextRecoveryPointId }) => ({ contexts, nextRecoveryPointId });
          assert.deepEqual(withoutT(await view(manager)), withoutT(await view(m)), 'reopened after create (without t)');
        } finally {
          manager.free();
        }
        ctx.diagnostic(`the check outlived the 500 ms TTL; only its part without t was proven: ${e.message}`);
      }
      while (Date.now() <= gone.expiresAtMs) await sleep(5);
      await check('expiry (not yet swept)');
      assert.equal(await m.cleanupExpired(), 1);
      await check('cleanup');

      const adapter = new ContextAdapter(m, { maxContexts: 10, autoCleanup: false });
      for (const id of ['e1', 'e2', 'e3']) await adapter.createContext(id, { id });
      await adapter.updateContext('e1', { id: 'e1', touched: true });
      // Least recently written first: u, then e2.
      assert.equal(await adapter.updateConfig({ maxContexts: 2 }), 2);
      assert.deepEqual(await m.listContextIds(), ['e1', 'e3']);
      await check('adapter eviction');

      const t = new ContextTracker(m);
      await t.activateContext('e1');
      await t.updateState({ edited: 1 });
      await t.syncState();
      await check('tracker sync');

      // Recovery point ids are never handed out twice, also across a reopen.
      const reopened = (await ContextManager.open(kind.reopen(storage), config)).manager;
      assert.equal((await reopened.createRecoveryPoint('e3')).id, m.nextRecoveryPointId());
      reopened.free();
      t.free();
      adapter.free();
      m.free();
    });

    test('a failed write rejects with STORAGE, changes nothing, and a reopen shows the same', async () => {
      const config = { maxRecoveryPoints: 3 };
      const base = kind.make();
      const f = faulty(base);
      const { manager: m } = await ContextManager.open(f.storage, config);
      const same = async (step) => {
        const { manager, problems } = await ContextManager.open(kind.reopen(base), config);
        assert.deepEqual(problems, []);
        assert.deepEqual(await view(manager), await view(m), step);
        manager.free();
      };
      const failing = async (step, method, key, call, how) => {
        const before = await view(m);
        f.fail(method, key, how);
        const e = await rejectsWith(call(), 'STORAGE');
        assert.match(e.message, new RegExp(`storage\\.${method}\\('${key.replace('/', '\\/')}'\\)`), e.message);
        assert.match(e.message, /injected/);
        assert.equal(f.pending, 0);
        assert.deepEqual(await view(m), before, `${step} changed the manager`);
        await same(step);
      };

      await failing('create', 'put', 'c/a', () => m.createContext('a', { v: 1 }));
      await failing('create (throwing)', 'put', 'c/a', () => m.createContext('a', { v: 1 }), 'throw');
      assert.equal(m.stats().contexts, 0);
      await m.createContext('a', { v: 1 }, { ttlMs: 60_000 });
      await failing('update', 'put', 'c/a', () => m.updateContext('a', { v: 2 }));
      await failing('recovery point', 'put', 'c/a', () => m.createRecoveryPoint('a'));
      const p = await m.createRecoveryPoint('a');
      assert.equal(p.id, 1, 'a failed recovery point gives its id back');
      await m.updateContext('a', { v: 2 });
      await failing('restore', 'put', 'c/a', () => m.restoreRecoveryPoint('a', p.id));
      await failing('delete (meta)', 'put', 'meta', () => m.deleteContext('a'));
      await failing('delete (record)', 'delete', 'c/a', () => m.deleteContext('a'));
      await m.deleteContext('a');
      await same('delete after the failures');

      const t = await m.createContext('t', {}, { ttlMs: 10 });
      while (Date.now() <= t.expiresAtMs) await sleep(5);
      f.fail('delete', 'c/t');
      assert.equal(await m.cleanupExpired(), 0, 'a sweep whose delete fails removes nothing');
      await same('failed cleanup');
      assert.equal(await m.cleanupExpired(), 1);
      await same('cleanup');

      const adapter = new ContextAdapter(m, { autoCleanup: false });
      await m.createContext('x', {});
      await m.createContext('y', {});
      f.fail('delete', 'c/x');
      assert.equal(await adapter.updateConfig({ maxContexts: 1 }), 0, 'an eviction whose delete fails evicts nothing');
      await same('failed eviction');
      assert.deepEqual(await m.listContextIds(), ['x', 'y']);
      assert.equal(await adapter.updateConfig({ maxContexts: 1 }), 1);
      await same('eviction');
      adapter.free();
      m.free();
    });

    test('many overlapping updates of one id: storage ends at the last acknowledged version, never going back', async () => {
      const storage = kind.make();
      const { manager: m } = await ContextManager.open(storage);
      await m.createContext('hot', { n: 0 });
      const results = await Promise.all(Array.from({ length: 60 }, (_, i) => m.updateContext('hot', { n: i + 1 })));
      const versions = results.map((s) => s.version).sort((a, b) => a - b);
      assert.deepEqual(versions, Array.from({ length: 60 }, (_, i) => i + 2));
      const stored = JSON.parse(await storage.get('c/hot'));
      assert.equal(stored.state.version, 61);
      assert.deepEqual(stored.state.data, results.find((s) => s.version === 61).data);
      if (storage.history) {
        const puts = storage.history.filter(([op, key]) => op === 'put' && key === 'c/hot').map(([, , v]) => JSON.parse(v).state.version);
        assert.deepEqual(puts, Array.from({ length: 61 }, (_, i) => i + 1), 'puts reach storage in version order');
      }
      const { manager } = await ContextManager.open(kind.reopen(storage));
      assert.equal((await manager.getContext('hot')).version, 61);
      manager.free();
      m.free();
    });
  });
}

test('concurrent deletes never store a smaller next recovery point id', async () => {
  const storage = objectStorage({ maxDelayMs: 5 });
  const { manager: m } = await ContextManager.open(storage);
  for (let round = 0; round < 5; round++) {
    const ids = Array.from({ length: 8 }, (_, i) => `r${round}-${i}`);
    for (const id of ids) {
      await m.createContext(id, {});
      await m.createRecoveryPoint(id);
    }
    await Promise.all(ids.map((id) => m.deleteContext(id)));
  }
  const stored = storage.history.filter(([op, key]) => op === 'put' && key === 'meta').map(([, , v]) => JSON.parse(v));
  const metas = stored.map((meta) => meta.nextSnapshotId);
  assert.equal(metas.length, 40);
  assert.deepEqual(metas, [...metas].sort((a, b) => a - b), 'meta never goes back');
  assert.equal(metas.at(-1), m.nextRecoveryPointId());
  const revisions = stored.map((meta) => meta.nextRevision);
  assert.deepEqual(revisions, [...revisions].sort((a, b) => a - b), 'nor does its next revision');
  assert.equal(revisions.at(-1), 5 * 8 * 2 + 1, 'past every create and delete');
  const { manager } = await ContextManager.open(storage);
  assert.equal(manager.nextRecoveryPointId(), m.nextRecoveryPointId());
  manager.free();
  m.free();
});

for (const [name, make] of [['MemoryStorage', () => new MemoryStorage()], ['FileStorage', () => new FileStorage(freshDir())]]) {
  test(`${name}: a reopened manager never reuses a revision, also one only a delete had`, async () => {
    const storage = make();
    const { manager: m } = await ContextManager.open(storage);
    const events = collect(m);
    const a = await m.createContext('a', {});
    const a2 = await m.updateContext('a', { n: 1 });
    await m.deleteContext('a');
    assert.deepEqual([a.revision, a2.revision], [1, 2]);
    assert.deepEqual((await events.until(3)).map((ev) => ev.revision), [1, 2, 3]);
    events.off();
    m.free();
    const { manager: again } = await ContextManager.open(storage);
    const b = await again.createContext('a', {});
    assert.deepEqual([b.version, b.revision], [1, 4], 'the version repeats, the revision does not');
    again.free();
  });
}

test('a storage with other keys is shared: they are left alone and ignored', async () => {
  const storage = new MemoryStorage();
  await storage.put('app/settings', 'not json at all');
  const { manager: m, problems } = await ContextManager.open(storage);
  assert.deepEqual(problems, []);
  await m.createContext('a', {});
  await m.deleteContext('a');
  assert.equal(await storage.get('app/settings'), 'not json at all');
  m.free();
});

test('data nested as deep as allowed survives a reopen', async () => {
  const storage = new MemoryStorage();
  const { manager: m } = await ContextManager.open(storage, { maxRecoveryPoints: 1 });
  let deep = {};
  for (let i = 1; i < 128; i++) deep = { d: deep };
  await m.createContext('deep', deep);
  await m.createRecoveryPoint('deep');
  const { manager, problems } = await ContextManager.open(storage);
  assert.deepEqual(problems, []);
  assert.deepEqual((await manager.getContext('deep')).data, deep);
  assert.deepEqual((await manager.recoveryPoints('deep'))[0].data, deep);
  manager.free();
  m.free();
});

test('stored values that do not parse are problems naming their key; the rest loads', async () => {
  const storage = new MemoryStorage();
  const { manager: m } = await ContextManager.open(storage);
  await m.createContext('good', { ok: true });
  await m.createContext('moved', {});
  m.free();
  const record = await storage.get('c/moved');
  await storage.put('c/moved', record.replace('"id":"moved"', '"id":"elsewhere"'));
  await storage.put('c/cut', record.slice(0, 40));
  await storage.put('c/shape', JSON.stringify({ state: { id: 'shape', version: 'one' } }));
  await storage.put('c/deep', `${'['.repeat(200)}${']'.repeat(200)}`);
  await storage.put('meta', '{"nextSnapshotId":-1}');
  const { manager, problems } = await ContextManager.open(storage);
  assert.deepEqual(await manager.listContextIds(), ['good']);
  assert.ok(problems.every((e) => e instanceof ContextError && e.code === 'STORAGE'));
  const messages = problems.map((e) => e.message).sort();
  assert.equal(messages.length, 5, messages.join('\n'));
  for (const key of ['c/cut', 'c/deep', 'c/moved', 'c/shape', 'meta']) {
    assert.ok(messages.some((msg) => msg.includes(`'${key}'`)), `${key} in ${messages}`);
  }
  assert.ok(messages.some((msg) => msg.includes("holds context 'elsewhere'")));
  assert.ok(messages.some((msg) => msg.includes('its version is missing or invalid')));
  manager.free();
});

describe('FileStorage', () => {
  test('a truncated and a garbled file are problems naming the file; the other contexts load', async () => {
    const storage = new FileStorage(freshDir());
    const { manager: m } = await ContextManager.open(storage);
    for (const id of ['a', 'b', 'c', 'd']) await m.createContext(id, { id, text: 'x'.repeat(200) });
    m.free();
    const truncated = storage.pathOf('c/b');
    const garbled = storage.pathOf('c/c');
    const headless = storage.pathOf('c/d');
    await truncate(truncated, (await readFile(truncated)).length - 30);
    const bytes = await readFile(garbled);
    bytes[bytes.length - 50] ^= 0x20;
    await writeFile(garbled, bytes);
    await truncate(headless, 10);

    const { manager, problems } = await ContextManager.open(new FileStorage(storage.dir));
    assert.deepEqual(await manager.listContextIds(), ['a']);
    assert.deepEqual((await manager.getContext('a')).data, { id: 'a', text: 'x'.repeat(200) });
    const messages = problems.map((e) => e.message);
    assert.equal(messages.length, 3, messages.join('\n'));
    for (const file of [truncated, garbled, headless]) {
      assert.ok(messages.some((msg) => msg.includes(file)), `${file} in ${messages}`);
    }
    assert.ok(problems.every((e) => e.code === 'STORAGE'));
    // The damaged ids can be written again, and then everything loads.
    await manager.createContext('b', { again: true });
    manager.free();
    const again = await ContextManager.open(new FileStorage(storage.dir));
    assert.deepEqual(await again.manager.listContextIds(), ['a', 'b']);
    assert.equal(again.problems.length, 2);
    again.manager.free();
  });

  test('file names are safe for any key, and keys that differ only in case or normalisation get their own files', async () => {
    const storage = new FileStorage(freshDir());
    const ids = ['a', 'A', '../../etc/passwd', 'con', 'a:b*?"<>|', '\u00e9', 'e\u0301', '\ufffd'];
    // Context keys hold records; a record's id is inside it (the format of native/src/file.rs).
    const record = (id) => JSON.stringify({ state: { id, version: 1 }, points: [] });
    for (const id of ids) await storage.put(`c/${id}`, record(id));
    await storage.put('meta', '{"nextSnapshotId":1,"nextRevision":1}');
    // Other keys, lone surrogates included, get files of their own.
    const others = ['app/a', 'App/a', 'c/\ud800', '\ud800', '', 'meta2'];
    for (const [i, key] of others.entries()) await storage.put(key, `value ${i} \ud800`);
    const names = (await readdir(storage.dir)).filter((n) => n !== 'contextkit.lock');
    assert.equal(names.length, ids.length + 1 + others.length);
    assert.equal(names.filter((n) => /^ctx-[0-9a-f]{64}\.json$/.test(n)).length, ids.length, names.join(' '));
    assert.equal(names.filter((n) => /^key-[0-9a-f]{64}\.json$/.test(n)).length, others.length, names.join(' '));
    assert.ok(names.includes('meta.json'));
    for (const id of ids) assert.equal(await storage.get(`c/${id}`), record(id));
    for (const [i, key] of others.entries()) assert.equal(await storage.get(key), `value ${i} \ud800`);
    const keys = [...ids.map((id) => `c/${id}`), 'meta', ...others];
    assert.deepEqual((await storage.list()).sort(), [...keys].sort());
    assert.equal(path.dirname(storage.pathOf('c/../../x')), storage.dir);
    await assert.rejects(storage.put('c/a', 'lone \ud800'), TypeError);
    await storage.close();
  });

  test('operations on one key take effect in call order, and writes leave no temporary files', async () => {
    const storage = new FileStorage(freshDir());
    const calls = [storage.put('k', '1'), storage.put('k', '2'), storage.delete('k'), storage.get('k'), storage.put('k', '3'), storage.get('k')];
    const results = await Promise.all(calls);
    assert.equal(results[3], undefined);
    assert.equal(results[5], '3');
    await Promise.all(Array.from({ length: 200 }, (_, i) => storage.put(`k${i % 20}`, String(i))));
    for (let k = 0; k < 20; k++) assert.equal(await storage.get(`k${k}`), String(180 + k));
    assert.deepEqual((await readdir(storage.dir)).filter((n) => n.endsWith('.tmp')), []);
    await storage.close();
  });

  test('a temporary file left by a crash is removed at open, and files of other programs are ignored', async () => {
    const storage = new FileStorage(freshDir());
    await storage.put('app/x', 'not a record');
    await storage.close();
    const stale = `${storage.pathOf('c/a')}.tmp`;
    await writeFile(stale, 'half a wri');
    await writeFile(`${storage.dir}/meta.json.tmp`, 'half a wri');
    await writeFile(path.join(storage.dir, 'README.txt'), 'hello');
    await writeFile(path.join(storage.dir, 'ctx-1.json.tmp'), 'not ours');
    const again = new FileStorage(storage.dir);
    const { entries, problems } = await again.entries();
    assert.deepEqual(entries, [['app/x', 'not a record']]);
    assert.deepEqual(problems, []);
    await again.close();
    assert.deepEqual((await readdir(storage.dir)).sort(), [path.basename(storage.pathOf('app/x')), 'README.txt', 'ctx-1.json.tmp'].sort());
  });

  test('open refuses a storage path that is a file, naming it, with STORAGE', async () => {
    const file = path.join(freshDir());
    await writeFile(file, 'not a directory');
    const e = await rejectsWith(ContextManager.open(new FileStorage(file)), 'STORAGE');
    assert.ok(e.message.startsWith('ContextManager.open: '), e.message);
    assert.ok(e.message.includes(`the storage directory ${file} is not a directory`), e.message);
    assert.ok(e.message.length < 200, e.message);
    const below = path.join(file, 'sub');
    const e2 = await rejectsWith(ContextManager.open(new FileStorage(below)), 'STORAGE');
    assert.ok(e2.message.includes(below), e2.message);
  });

  test('open refuses a directory it cannot write in, naming it, with STORAGE', async (t) => {
    let dir = freshDir();
    await mkdir(dir);
    await chmod(dir, 0o555);
    // root writes anyway: use a directory of sysfs, which nobody may write in.
    if (process.getuid?.() === 0) dir = '/sys/kernel';
    try {
      await writeFile(path.join(dir, 'probe.tmp'), '');
      await rm(path.join(dir, 'probe.tmp'));
      t.skip(`no read-only directory at hand (${dir} is writable)`);
      return;
    } catch {
      // Read-only, as wanted.
    }
    const e = await rejectsWith(ContextManager.open(new FileStorage(dir)), 'STORAGE');
    assert.ok(e.message.includes(`cannot write in the storage directory ${dir}`), e.message);
    assert.match(e.message, /EACCES|EROFS|EPERM/);
  });

  test('a failed write names the operation the caller called first, then the storage call', async () => {
    class FailingMeta extends MemoryStorage {
      put(key, value) {
        return key === 'meta' && this.fail ? Promise.reject(new Error('EACCES: permission denied')) : super.put(key, value);
      }
    }
    const storage = new FailingMeta();
    const { manager } = await ContextManager.open(storage);
    await manager.createContext('a', {});
    storage.fail = true;
    const e = await rejectsWith(manager.deleteContext('a'), 'STORAGE');
    assert.equal(e.message, "deleteContext: storage.put('meta') failed: EACCES: permission denied");
    const adapter = new ContextAdapter(manager);
    const e2 = await rejectsWith(adapter.deleteContext('a'), 'STORAGE');
    assert.ok(e2.message.startsWith('deleteContext: '), e2.message);
  });

  test('a damaged file fails get with a message naming it', async () => {
    const storage = new FileStorage(freshDir());
    await storage.put('k', 'value');
    await writeFile(storage.pathOf('k'), 'garbage');
    await assert.rejects(storage.get('k'), (e) => e.message.includes(storage.pathOf('k')));
  });
});

test('IndexedDBStorage throws a clear error where there is no indexedDB', () => {
  assert.throws(() => new IndexedDBStorage('db'), /IndexedDB/);
});

describe('hostile storages: STORAGE errors, never a panic, and the manager keeps working', () => {
  /** A working storage whose methods can be swapped out. */
  const repairable = () => {
    const good = new MemoryStorage();
    return {
      good,
      storage: {
        get: (k) => good.get(k),
        put: (k, v) => good.put(k, v),
        delete: (k) => good.delete(k),
        list: () => good.list(),
      },
    };
  };

  test('a storage that cannot be listed fails open with STORAGE', async () => {
    const revoked = Proxy.revocable({}, {});
    revoked.revoke();
    const cases = [
      {},
      { list: 'not a function' },
      { list: () => 42 },
      { list: async () => 'keys' },
      { list: async () => [1, 2] },
      { list: () => { throw new Error('no list'); } },
      { list: () => Promise.reject(Symbol('why')) },
      { list: () => ({ then() { throw new Error('bad then'); } }) },
      { get list() { throw new Error('getter'); } },
      { entries: async () => 42 },
      { entries: async () => ({ entries: 'nope' }) },
      { entries: async () => ({ entries: [], problems: 'nope' }) },
      { entries: async () => ({ get entries() { throw new Error('getter'); } }) },
      { entries: () => { throw null; } },
      revoked.proxy,
      new Proxy({}, { get() { throw new Error('trap'); } }),
    ];
    for (const storage of cases) {
      const e = await rejectsWith(ContextManager.open(storage), 'STORAGE');
      assert.match(e.message, /storage\.(list|entries)\(\)/, e.message);
    }
    for (const notAnObject of [null, undefined, 42, 'storage']) {
      await rejectsWith(ContextManager.open(notAnObject), 'INVALID_ARGUMENT');
    }
  });

  test('entries() with bad items: problems for those, the rest loads', async () => {
    const source = new MemoryStorage();
    const { manager: m } = await ContextManager.open(source);
    await m.createContext('a', {});
    m.free();
    const good = await source.get('c/a');
    const { manager, problems } = await ContextManager.open({
      entries: async () => ({ entries: [['c/a', good], 'x', [1, 2], ['c/b', 5], ['c/c', { x: 1 }], ['c/d']], problems: ['disk trouble', 7] }),
    });
    assert.deepEqual(await manager.listContextIds(), ['a']);
    const messages = problems.map((e) => e.message);
    assert.equal(messages.length, 7, messages.join('\n'));
    assert.ok(messages.some((msg) => msg.includes('disk trouble')));
    assert.ok(messages.some((msg) => msg.includes("'c/b' is a number")));
    manager.free();
  });

  test('get() resolving garbage at open: a problem naming the key', async () => {
    const { manager, problems } = await ContextManager.open({ list: async () => ['c/a', 'c/b', 'other'], get: async (k) => (k === 'c/a' ? 42 : { v: 1 }) });
    assert.deepEqual(await manager.listContextIds(), []);
    assert.equal(problems.length, 2);
    assert.match(problems[0].message, /storage\.get\('c\/a'\) resolved to a number/);
    manager.free();
  });

  test('methods missing, throwing or rejecting with anything: STORAGE naming the call; fixed, it works again', async () => {
    const { good, storage } = repairable();
    const { manager: m } = await ContextManager.open(storage);
    await m.createContext('keep', { v: 1 });
    const breakages = [
      ['put', undefined],
      ['put', 'a string'],
      ['put', () => { throw new Error('disk full'); }],
      ['put', () => { throw 42; }],
      ['put', () => { throw undefined; }],
      ['put', () => Promise.reject(null)],
      ['put', () => Promise.reject({ message: 7 })],
      ['put', () => ({ then: (_ok, fail) => fail(new Error('thenable says no')) })],
      ['put', () => ({ get then() { throw new Error('then getter'); } })],
      ['put', () => new Proxy({}, { get() { throw new Error('proxy'); } })],
    ];
    for (const [method, impl] of breakages) {
      const saved = storage[method];
      storage[method] = impl;
      const e = await rejectsWith(m.createContext('new', { v: 1 }), 'STORAGE');
      assert.match(e.message, /storage\.put\('c\/new'\)/, e.message);
      storage[method] = saved;
    }
    const saved = storage.delete;
    storage.delete = () => { throw new Error('cannot delete'); };
    const e = await rejectsWith(m.deleteContext('keep'), 'STORAGE');
    assert.match(e.message, /storage\.delete\('c\/keep'\) threw: cannot delete/);
    storage.delete = saved;
    // Garbage from put and delete is ignored: they resolve.
    storage.put = async (k, v) => {
      await good.put(k, v);
      return { unexpected: true };
    };
    await m.createContext('new', { v: 1 });
    await m.updateContext('keep', { v: 2 });
    assert.deepEqual(await m.listContextIds(), ['keep', 'new']);
    const { manager, problems } = await ContextManager.open(good);
    assert.deepEqual(problems, []);
    assert.deepEqual(await view(manager), await view(m));
    manager.free();
    m.free();
  });

  test('a storage method that frees its manager re-entrantly: the call fails cleanly, the module keeps working', async () => {
    const { storage } = repairable();
    const { manager: m } = await ContextManager.open(storage);
    const put = storage.put;
    let read;
    storage.put = (k, v) => {
      read = m.getContext('a').then(
        (s) => s.version,
        (err) => err.code,
      );
      m.free(); // refused by the bindings: the manager is in use
      return put(k, v);
    };
    const e = await rejectsWith(m.createContext('a', {}), 'STORAGE');
    assert.match(e.message, /storage\.put\('c\/a'\) threw/);
    assert.equal(await read, 'NOT_FOUND');
    const other = new ContextManager();
    assert.equal((await other.createContext('a', {})).version, 1);
    other.free();
  });
});
