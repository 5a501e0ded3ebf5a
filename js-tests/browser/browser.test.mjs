// The packed package in headless Chromium: a page served from localhost imports
// `contextkit` (through an import map, as a browser app would) and runs a
// create / update / subscribe / expiry scenario; a second page keeps contexts
// in IndexedDB (an IndexedDBStorage, shared mode) and reads them back from a
// second manager and after a reload, runs owned mode over a plain object
// wrapping an IndexedDBStorage, and copies what owned mode left into the
// shared store as wasm/npm/README.md shows. Tabs of one origin racing on one
// IndexedDBStorage are tabs.test.mjs.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { installPacked } from '../packaging/consumer.mjs';
import { watchPage, withChromium } from '../lib/chromium.mjs';
import { serveStatic } from '../lib/static-server.mjs';

const page = `<!doctype html>
<meta charset="utf-8">
<title>contextkit in a browser</title>
<link rel="icon" href="data:,">
<script type="importmap">{ "imports": { "contextkit": "/node_modules/contextkit/browser.mjs" } }</script>
<script type="module">
  import { ContextManager, ContextAdapter, ContextError } from 'contextkit';
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  async function scenario() {
    const m = new ContextManager({ maxContexts: 100 });
    const events = [];
    let inCall = false;
    let deliveredInCall = false;
    const off = m.subscribe((ev) => { deliveredInCall ||= inCall; events.push(ev); });
    inCall = true;
    const created = m.createContext('a', { x: 1, list: ['é', 2] });
    inCall = false;
    const s1 = await created;
    const s2 = await m.updateContext('a', { x: 2 }, { expectedVersion: s1.version });
    const conflict = await m.updateContext('a', { x: 3 }, { expectedVersion: 1 }).catch((e) => e);
    const bad = await m.createContext('b', { n: NaN }).catch((e) => e);
    const t = await m.createContext('t', {}, { ttlMs: 30 });
    while (Date.now() <= t.expiresAtMs) await sleep(5);
    const expired = await m.getContext('t').catch((e) => e);
    const swept = await m.cleanupExpired();
    const adapter = new ContextAdapter(m, { ttlMs: 20, autoCleanup: false, cleanupIntervalMs: 10 });
    await adapter.createContext('u', {});
    adapter.startAutoCleanup();
    while (!events.some((e) => e.type === 'expired' && e.id === 'u')) await sleep(5);
    adapter.stopAutoCleanup();
    off();
    return {
      s1: { id: s1.id, version: s1.version, data: s1.data, expiresAtMs: s1.expiresAtMs },
      s2: { version: s2.version, data: s2.data },
      conflict: { isContextError: conflict instanceof ContextError, isError: conflict instanceof Error, code: conflict.code, expected: conflict.expected, actual: conflict.actual, hasStack: typeof conflict.stack === 'string' },
      bad: bad.code,
      expired: expired.code,
      swept,
      deliveredInCall,
      events: events.map((e) => [e.type, e.id, e.version]),
      stats: m.stats(),
    };
  }
  scenario().then((r) => { window.result = r; }, (e) => { window.result = { failed: String(e && e.stack || e) }; });
</script>`;

// Each step runs on a fresh load of the page (`?step=...`) and leaves its
// outcome in window.result; IndexedDB persists across loads in the profile.
const idbPage = `<!doctype html>
<meta charset="utf-8">
<title>contextkit on IndexedDB</title>
<link rel="icon" href="data:,">
<script type="importmap">{ "imports": { "contextkit": "/node_modules/contextkit/browser.mjs" } }</script>
<script type="module">
  import { ContextManager, ContextAdapter, ContextError, IndexedDBStorage, MemoryStorage } from 'contextkit';
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const DB = 'contextkit-test';
  const OWNED = 'contextkit-owned';
  // A plain object over an IndexedDBStorage's methods: ContextManager.open
  // uses it in owned mode, as it used an IndexedDBStorage before shared mode.
  const owned = (storage) => ({
    get: (k) => storage.get(k),
    put: (k, v) => storage.put(k, v),
    delete: (k) => storage.delete(k),
    list: () => storage.list(),
    entries: () => storage.entries(),
  });
  async function view(m) {
    const contexts = {};
    for (const id of await m.listContextIds()) {
      contexts[id] = { state: await m.getContext(id), points: await m.recoveryPoints(id) };
    }
    return { contexts, nextRecoveryPointId: m.nextRecoveryPointId() };
  }
  async function reopened(config, name = DB, wrap = (s) => s) {
    const storage = new IndexedDBStorage(name);
    const { manager, problems } = await ContextManager.open(wrap(storage), config);
    const v = await view(manager);
    manager.free();
    await storage.close();
    return { view: v, problems: problems.map((e) => e.message) };
  }
  const steps = {
    async write() {
      const config = { maxRecoveryPoints: 2 };
      const storage = new IndexedDBStorage(DB);
      const { manager: m, problems } = await ContextManager.open(storage, config);
      const checks = [];
      const check = async (step) => {
        const again = await reopened(config);
        checks.push({ step, same: JSON.stringify(again.view) === JSON.stringify(await view(m)), problems: again.problems });
      };
      await m.createContext('a', { x: 1, text: 'é' }, { metadata: { owner: 'ada' } });
      await check('create');
      await m.updateContext('a', { x: 2 });
      await check('update');
      await m.createContext('b', { y: 1 }, { ttlMs: 60000 });
      await m.updateContext('b', { y: 2 }, { expectedVersion: 1 });
      await check('update with TTL');
      const p = await m.createRecoveryPoint('a');
      await m.createRecoveryPoint('a');
      await m.createRecoveryPoint('a');
      await check('recovery points with rotation');
      await m.restoreRecoveryPoint('a', p.id + 1);
      await check('restore');
      await m.createContext('c', {});
      await m.createRecoveryPoint('c');
      await m.deleteContext('c');
      await check('delete');
      const t = await m.createContext('t', {}, { ttlMs: 10 });
      while (Date.now() <= t.expiresAtMs) await sleep(5);
      const swept = await m.cleanupExpired();
      await check('cleanup');
      const adapter = new ContextAdapter(m, { autoCleanup: false });
      await m.createContext('old', {});
      await m.updateContext('a', { x: 3 });
      await m.updateContext('b', { y: 3 });
      const evicted = await adapter.updateConfig({ maxContexts: 2 });
      await check('eviction');
      adapter.free();
      const result = { problems: problems.length, checks, swept, evicted, view: await view(m) };
      m.free();
      await storage.close();
      return result;
    },
    async read() {
      return reopened({ maxRecoveryPoints: 2 });
    },
    async failing() {
      // Owned mode, over a wrapper that refuses one chosen write.
      const storage = new IndexedDBStorage(OWNED);
      let failNext = null;
      const wrapper = {
        ...owned(storage),
        put: (k, v) => (failNext === k ? ((failNext = null), Promise.reject(new Error('quota exceeded'))) : storage.put(k, v)),
      };
      const config = { maxRecoveryPoints: 2 };
      const { manager: m } = await ContextManager.open(wrapper, config);
      await m.createContext('a', { x: 1 }, { metadata: { owner: 'ada' } });
      await m.updateContext('a', { x: 2 });
      await m.createRecoveryPoint('a');
      await m.createContext('b', { y: 1 }, { ttlMs: 600000 });
      const before = await view(m);
      failNext = 'c/a';
      const e = await m.updateContext('a', { x: 99 }).catch((err) => err);
      const after = await view(m);
      const again = await reopened(config, OWNED, owned);
      // A value that does not parse is a problem naming its key; the rest loads.
      await storage.put('c/zz', '{"state":');
      const damaged = await reopened(config, OWNED, owned);
      await storage.delete('c/zz');
      m.free();
      await storage.close();
      return {
        error: { isContextError: e instanceof ContextError, code: e.code, message: e.message },
        unchanged: JSON.stringify(after) === JSON.stringify(before),
        reopenedSame: JSON.stringify(again.view) === JSON.stringify(after),
        damaged: { problems: damaged.problems, ids: Object.keys(damaged.view.contexts) },
      };
    },
    async legacy() {
      // What owned mode left (the step above) is reported, and copied over
      // as wasm/npm/README.md shows; then nothing is reported.
      const storage = new IndexedDBStorage(OWNED);
      const { manager, problems } = await ContextManager.open(storage);
      const reported = problems.map((e) => ({ isContextError: e instanceof ContextError, code: e.code, message: e.message }));
      const { manager: old } = await ContextManager.open(owned(storage));
      const copied = [];
      for (const id of await old.listContextIds()) {
        const s = await old.getContext(id);
        const ttlMs = s.expiresAtMs === null ? undefined : s.expiresAtMs - Date.now();
        if (ttlMs === undefined || ttlMs > 0) {
          await manager.createContext(id, s.data, { ttlMs, metadata: s.metadata }).catch((e) => {
            if (e.code !== 'ALREADY_EXISTS') throw e;
          });
        }
        await old.deleteContext(id);
        copied.push(id);
      }
      old.free();
      const v = await view(manager);
      manager.free();
      const again = await reopened(undefined, OWNED);
      await storage.close();
      return { reported, copied, view: v, again };
    },
  };
  const step = new URLSearchParams(location.search).get('step');
  steps[step]().then((r) => { window.result = r; }, (e) => { window.result = { failed: String(e && e.stack || e) }; });
</script>`;

let dir;
let server;
let base;
before(async () => {
  dir = await installPacked('browser');
  await writeFile(path.join(dir, 'index.html'), page);
  await writeFile(path.join(dir, 'idb.html'), idbPage);
  server = await serveStatic({ root: dir });
  base = server.base;
});

after(async () => {
  await server?.close();
});

test('create / update / subscribe / expiry in headless Chromium', { timeout: 120_000 }, async () => {
  await withChromium(async (context) => {
    const tab = context.pages()[0] ?? (await context.newPage());
    const problems = [];
    watchPage(tab, problems);
    await tab.goto(base);
    await tab.waitForFunction(() => window.result !== undefined, null, { timeout: 60_000 });
    const r = await tab.evaluate(() => window.result);
    assert.deepEqual(problems, []);
    assert.equal(r.failed, undefined, r.failed);
    assert.deepEqual(r.s1, { id: 'a', version: 1, data: { x: 1, list: ['é', 2] }, expiresAtMs: null });
    assert.deepEqual(r.s2, { version: 2, data: { x: 2 } });
    assert.deepEqual(r.conflict, { isContextError: true, isError: true, code: 'VERSION_CONFLICT', expected: 1, actual: 2, hasStack: true });
    assert.equal(r.bad, 'INVALID_ARGUMENT');
    assert.equal(r.expired, 'NOT_FOUND');
    assert.equal(r.swept, 1);
    assert.equal(r.deliveredInCall, false);
    assert.deepEqual(r.events, [
      ['created', 'a', 1],
      ['updated', 'a', 2],
      ['created', 't', 1],
      ['expired', 't', 1],
      ['created', 'u', 1],
      ['expired', 'u', 1],
    ]);
    assert.equal(r.stats.expirations, 2);
    assert.equal(r.stats.conflicts, 1);
  });
});

/** Loads `url` in `tab` and resolves to the window.result it leaves, failing on page errors. */
async function resultOf(tab, url) {
  const problems = [];
  const onError = (e) => problems.push(`page error: ${e.message}`);
  const onConsole = (msg) => msg.type() === 'error' && problems.push(`console error: ${msg.text()}`);
  tab.on('pageerror', onError);
  tab.on('console', onConsole);
  try {
    await tab.goto(url);
    await tab.waitForFunction(() => window.result !== undefined, null, { timeout: 60_000 });
    const r = await tab.evaluate(() => window.result);
    assert.deepEqual(problems, []);
    assert.equal(r.failed, undefined, r.failed);
    return r;
  } finally {
    tab.off('pageerror', onError);
    tab.off('console', onConsole);
  }
}

test('IndexedDBStorage: a second manager and a reloaded page see exactly the acknowledged state; owned mode over a plain object: a failed write changes nothing; what owned mode left is reported and copied over', { timeout: 120_000 }, async () => {
  await withChromium(async (context) => {
    const tab = context.pages()[0] ?? (await context.newPage());
    const written = await resultOf(tab, `${base}idb.html?step=write`);
    assert.equal(written.problems, 0);
    for (const c of written.checks) {
      assert.ok(c.same, `a second manager differs after ${c.step}`);
      assert.deepEqual(c.problems, [], c.step);
    }
    assert.equal(written.swept, 1);
    assert.equal(written.evicted, 1);
    assert.deepEqual(Object.keys(written.view.contexts).sort(), ['a', 'b']);
    assert.equal(written.view.contexts.a.state.version, 4);
    assert.deepEqual(written.view.contexts.a.state.metadata, { owner: 'ada' });
    assert.equal(written.view.contexts.a.points.length, 2);
    assert.notEqual(written.view.contexts.b.state.expiresAtMs, null);

    // A reload (a new page, a new wasm instance) reads the same state back.
    const read = await resultOf(tab, `${base}idb.html?step=read`);
    assert.deepEqual(read.problems, []);
    assert.deepEqual(read.view, written.view);

    const failing = await resultOf(tab, `${base}idb.html?step=failing`);
    assert.deepEqual(failing.error.isContextError, true);
    assert.equal(failing.error.code, 'STORAGE');
    assert.match(failing.error.message, /storage\.put\('c\/a'\) failed: quota exceeded/);
    assert.ok(failing.unchanged, 'the failed update changed the manager');
    assert.ok(failing.reopenedSame, 'a reopen differs from the manager after a failed write');
    assert.deepEqual(failing.damaged.ids.sort(), ['a', 'b']);
    assert.equal(failing.damaged.problems.length, 1);
    assert.match(failing.damaged.problems[0], /'c\/zz'/);

    const legacy = await resultOf(tab, `${base}idb.html?step=legacy`);
    assert.equal(legacy.reported.length, 1);
    assert.equal(legacy.reported[0].isContextError, true);
    assert.equal(legacy.reported[0].code, 'STORAGE');
    assert.match(legacy.reported[0].message, /database 'contextkit-owned', object store 'contexts', holds 2 contexts in owned mode/);
    assert.match(legacy.reported[0].message, /database 'contextkit-owned:contextkit-shared-2'/);
    assert.deepEqual(legacy.copied, ['a', 'b']);
    assert.deepEqual(legacy.view.contexts.a.state.data, { x: 2 });
    assert.deepEqual(legacy.view.contexts.a.state.metadata, { owner: 'ada' });
    assert.equal(legacy.view.contexts.a.state.version, 1);
    assert.notEqual(legacy.view.contexts.b.state.expiresAtMs, null);
    assert.deepEqual(legacy.again.problems, []);
    assert.deepEqual(legacy.again.view, legacy.view);
  });
});
