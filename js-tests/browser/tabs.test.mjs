// Tabs of one origin on one IndexedDBStorage, through the public API of the
// packed package in headless Chromium (playwright-core): every page does
// `ContextManager.open(new IndexedDBStorage(sameName))`, which is shared mode.
// - 2, then 4 pages race one create (exactly one wins) and 200
//   compare-and-set increments each of one counter (getContext, then
//   updateContext with expectedVersion, again on VERSION_CONFLICT): the
//   count ends exact, and every page's subscriber saw the same events.
// - A page is reloaded while it and the others write, then opens the store
//   again: it sees every increment it had acknowledged before the reload,
//   and the final count is the number of acknowledged increments (plus the
//   one that was in flight at the reload, if its transaction committed: the
//   counter's per-page tally tells which).
// - The auto-cleanup timers of the pages elect one sweeper with a Web Lock;
//   when its page closes, the next one sweeps.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { installPacked } from '../packaging/consumer.mjs';
import { packagePage, watchPage, withChromium } from '../lib/chromium.mjs';
import { serveStatic } from '../lib/static-server.mjs';

const PER_PAGE = 200;

// The page only loads the package; the tests drive it with evaluate().
const page = packagePage('contextkit in tabs', '/node_modules/contextkit/browser.mjs');

let dir;
let server;
let base;
before(async () => {
  dir = await installPacked('tabs');
  await writeFile(path.join(dir, 'index.html'), page);
  server = await serveStatic({ root: dir });
  base = server.base;
});

after(async () => {
  await server?.close();
});

/** A Chromium with a profile of its own; `use(context, addPage, problems)`, then closes it. */
function withBrowser(use) {
  return withChromium(async (context) => {
    const problems = [];
    let first = true;
    const addPage = async () => {
      const tab = first && context.pages()[0] ? context.pages()[0] : await context.newPage();
      first = false;
      watchPage(tab, problems);
      await tab.goto(base);
      await tab.waitForFunction(() => window.ready === true);
      return tab;
    };
    await use(context, addPage, problems);
  });
}

// In a page: opens the store (window.m) and logs its events (window.log);
// resolves to how many problems open reported.
async function openStore(name) {
  const { manager, problems } = await window.ck.ContextManager.open(new window.ck.IndexedDBStorage(name));
  window.m = manager;
  window.log = [];
  manager.subscribe((e) => window.log.push([e.type, e.id, e.version, e.revision]));
  return problems.length;
}

// In a page: creates the counter; resolves to 'OK' or the error's code.
async function createCounter() {
  try {
    await window.m.createContext('counter', { n: 0, by: {} });
    return 'OK';
  } catch (e) {
    return e.code;
  }
}

// In a page: `per` compare-and-set increments of the counter as page `me`,
// each counted in the data's tally `by[me]` too. The page's sessionStorage
// (which outlives a reload) holds how many it acknowledged ('acked', set as
// soon as an update's Promise resolves) and whether one is in flight
// ('inflight'). Resolves to how many tries it took.
async function increment([me, per]) {
  const { m } = window;
  let tries = 0;
  for (let done = 0; done < per; ) {
    tries++;
    const s = await m.getContext('counter');
    const data = { n: s.data.n + 1, by: { ...s.data.by, [me]: (s.data.by[me] ?? 0) + 1 } };
    sessionStorage.setItem('inflight', '1');
    try {
      await m.updateContext('counter', data, { expectedVersion: s.version });
      done++;
      sessionStorage.setItem('acked', String(Number(sessionStorage.getItem('acked') ?? 0) + 1));
    } catch (e) {
      if (e.code !== 'VERSION_CONFLICT') throw e;
    }
    sessionStorage.setItem('inflight', '0');
  }
  return tries;
}

// In a page: the counter once this page's subscriber has seen its revision.
async function settled() {
  const s = await window.m.getContext('counter');
  const t0 = Date.now();
  while (!(window.log.length > 0 && window.log.at(-1)[3] >= s.revision)) {
    if (Date.now() - t0 > 10_000) throw new Error(`events stop at ${JSON.stringify(window.log.at(-1))}, the counter is at revision ${s.revision}`);
    await new Promise((r) => setTimeout(r, 10));
  }
  return { state: { version: s.version, revision: s.revision, data: s.data }, log: window.log };
}

/** The events of a counter created and then incremented `total` times, at consecutive revisions. */
function assertCounterLog(log, total) {
  assert.deepEqual(log[0].slice(0, 3), ['created', 'counter', 1]);
  assert.equal(log.length, 1 + total);
  log.forEach((e, i) => {
    if (i > 0) assert.deepEqual(e, ['updated', 'counter', i + 1, log[0][3] + i]);
  });
}

test('2, then 4 tabs on one IndexedDBStorage: exactly one create wins, compare-and-set increments end exact, every tab sees the same events', { timeout: 180_000 }, async () => {
  await withBrowser(async (_context, addPage, problems) => {
    const pages = [];
    for (const count of [2, 4]) {
      while (pages.length < count) pages.push(await addPage());
      const name = `tabs-${count}`;
      const opened = await Promise.all(pages.map((tab) => tab.evaluate(openStore, name)));
      assert.deepEqual(opened, Array(count).fill(0));

      const creates = await Promise.all(pages.map((tab) => tab.evaluate(createCounter)));
      assert.deepEqual(creates.sort(), [...Array(count - 1).fill('ALREADY_EXISTS'), 'OK']);

      const t0 = Date.now();
      const tries = await Promise.all(pages.map((tab, i) => tab.evaluate(increment, [`p${i}`, PER_PAGE])));
      const ms = Date.now() - t0;
      const total = count * PER_PAGE;
      const acked = await Promise.all(pages.map((tab) => tab.evaluate(() => Number(sessionStorage.getItem('acked')))));
      assert.deepEqual(acked, Array(count).fill(PER_PAGE));
      const seen = await Promise.all(pages.map((tab) => tab.evaluate(settled)));
      for (const { state } of seen) {
        assert.equal(state.data.n, total);
        assert.equal(state.version, 1 + total);
        assert.deepEqual(state.data.by, Object.fromEntries(pages.map((_, i) => [`p${i}`, PER_PAGE])));
      }
      for (const { log } of seen) assert.deepEqual(log, seen[0].log);
      assertCounterLog(seen[0].log, total);
      const sum = tries.reduce((a, b) => a + b, 0);
      console.log(`# ${count} tabs: ${total} increments in ${ms} ms (${(ms / total).toFixed(2)} ms each), ${sum - total} version conflicts`);
      // The next round counts its own acknowledgements.
      await Promise.all(pages.map((tab) => tab.evaluate(() => {
        window.m.free();
        sessionStorage.clear();
      })));
    }
    assert.deepEqual(problems, []);
  });
});

test('a tab reloaded while the others write opens the store again and sees exactly the acknowledged state', { timeout: 180_000 }, async () => {
  await withBrowser(async (_context, addPage, problems) => {
    const pages = [await addPage(), await addPage(), await addPage()];
    const name = 'tabs-reload';
    for (const tab of pages) await tab.evaluate(openStore, name);
    assert.deepEqual((await Promise.all(pages.map((tab) => tab.evaluate(createCounter)))).sort(), ['ALREADY_EXISTS', 'ALREADY_EXISTS', 'OK']);

    const [reloaded, ...others] = pages;
    const othersDone = Promise.all(others.map((tab, i) => tab.evaluate(increment, [`p${i + 1}`, PER_PAGE])));
    // Reloaded mid-run: the page's loop dies with its document.
    const dying = reloaded.evaluate(increment, ['p0', PER_PAGE]).then(
      () => assert.fail('page p0 finished before its reload'),
      () => undefined,
    );
    await reloaded.waitForFunction(() => Number(sessionStorage.getItem('acked') ?? 0) >= 40, null, { polling: 5 });
    // At some point of the page's cycle (a read, a write in flight, between two).
    const delay = Math.random() * 10;
    await new Promise((r) => setTimeout(r, delay));
    await reloaded.reload();
    await dying;
    await reloaded.waitForFunction(() => window.ready === true);
    const before = await reloaded.evaluate(() => ({ acked: Number(sessionStorage.getItem('acked')), inflight: sessionStorage.getItem('inflight') === '1' }));
    assert.ok(before.acked >= 40 && before.acked < PER_PAGE, JSON.stringify(before));
    await reloaded.evaluate(openStore, name);
    // Right after the reopen, with the others still writing: every
    // increment acknowledged before the reload is there.
    const reopened = await reloaded.evaluate(() => window.m.getContext('counter').then((s) => s.data.by.p0));
    assert.ok(reopened === before.acked || (before.inflight && reopened === before.acked + 1), `p0: ${reopened} in the store, ${JSON.stringify(before)} before the reload`);
    const more = 50;
    await reloaded.evaluate(increment, ['p0', more]);
    await othersDone;

    const seen = await Promise.all(pages.map((tab) => tab.evaluate(settled)));
    const acked = await Promise.all(pages.map((tab) => tab.evaluate(() => Number(sessionStorage.getItem('acked')))));
    assert.deepEqual(acked, [before.acked + more, PER_PAGE, PER_PAGE]);
    const { by, n } = seen[0].state.data;
    // The write in flight at the reload, if its transaction committed, is
    // in the count without an acknowledgement.
    const unacknowledged = reopened - before.acked;
    assert.deepEqual(by, { p0: acked[0] + unacknowledged, p1: PER_PAGE, p2: PER_PAGE });
    assert.equal(n, acked.reduce((a, b) => a + b, 0) + unacknowledged);
    assert.equal(seen[0].state.version, 1 + n);
    for (const s of seen) assert.deepEqual(s.state, seen[0].state);
    // The tabs that stayed saw every event, the same sequence; the reloaded
    // one, the same events from its reopen on.
    assert.deepEqual(seen[1].log, seen[2].log);
    assertCounterLog(seen[1].log, n);
    const from = seen[1].log.findIndex((e) => e[3] === seen[0].log[0][3]);
    assert.ok(from > 0);
    assert.deepEqual(seen[0].log, seen[1].log.slice(from));
    console.log(`# reloaded ${delay.toFixed(1)} ms after the 40th acknowledged increment, after ${before.acked}${before.inflight ? `, one in flight, which ${unacknowledged ? 'committed' : 'did not commit'}` : ''}; final count ${n}`);
    assert.deepEqual(problems, []);
  });
});

test('the auto-cleanup timers of tabs elect one sweeper with a Web Lock; when its tab closes, the next one sweeps', { timeout: 120_000 }, async () => {
  await withBrowser(async (_context, addPage, problems) => {
    const pages = [await addPage(), await addPage()];
    const name = 'tabs-sweep';
    const lock = `contextkit sweeper ${name}:contextkit-shared-2`;
    for (const tab of pages) await tab.evaluate(openStore, name);
    const locks = (tab) => tab.evaluate(async (lockName) => {
      const q = await navigator.locks.query();
      const mine = (list) => list.filter((l) => l.name === lockName).length;
      return { held: mine(q.held), pending: mine(q.pending) };
    }, lock);

    await pages[0].evaluate(() => window.m.startAutoCleanup(20));
    await pages[0].waitForFunction(async (lockName) => (await navigator.locks.query()).held.some((l) => l.name === lockName), lock);
    await pages[1].evaluate(() => window.m.startAutoCleanup(20));
    // An adapter's timer over a shared manager waits in line too.
    await pages[1].evaluate(() => {
      window.adapter = new window.ck.ContextAdapter(window.m, { autoCleanup: false, cleanupIntervalMs: 20 });
      window.adapter.startAutoCleanup();
    });
    await pages[1].waitForFunction(async (lockName) => (await navigator.locks.query()).pending.filter((l) => l.name === lockName).length === 2, lock);
    assert.deepEqual(await locks(pages[1]), { held: 1, pending: 2 });

    const expiredIn = (tab, id) => tab.evaluate(async (id) => {
      const t0 = Date.now();
      while (!window.log.some((e) => e[0] === 'expired' && e[1] === id) && Date.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 5));
      return window.log.filter((e) => e[1] === id).map((e) => e[0]);
    }, id);
    await pages[1].evaluate(() => window.m.createContext('t1', {}, { ttlMs: 50 }));
    for (const tab of pages) assert.deepEqual(await expiredIn(tab, 't1'), ['created', 'expired']);

    // The sweeper's tab closes: the next timer in line takes the lock over.
    await pages[0].close();
    await pages[1].waitForFunction(async (lockName) => {
      const q = await navigator.locks.query();
      return q.held.some((l) => l.name === lockName) && q.pending.filter((l) => l.name === lockName).length === 1;
    }, lock);
    await pages[1].evaluate(() => window.m.createContext('t2', {}, { ttlMs: 50 }));
    assert.deepEqual(await expiredIn(pages[1], 't2'), ['created', 'expired']);

    // stopAutoCleanup and free() let the lock go.
    await pages[1].evaluate(() => {
      window.adapter.stopAutoCleanup();
      window.m.free();
    });
    await pages[1].waitForFunction(async (lockName) => {
      const q = await navigator.locks.query();
      return !q.held.some((l) => l.name === lockName) && !q.pending.some((l) => l.name === lockName);
    }, lock);
    assert.deepEqual(problems, []);
  });
});
