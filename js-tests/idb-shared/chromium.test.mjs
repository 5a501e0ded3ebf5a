// IndexedDBShared in headless Chromium (playwright-core): 2, then 4 pages of
// one origin each open the same shared namespace and race. Exactly one
// create of an id wins; compare-and-set increments of one counter (read
// with ck2_get, update with the expected version, again on
// VERSION_CONFLICT), 200 per page, end exact; every page reads the same
// event sequence; a page waiting in events() wakes on another page's commit.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { watchPage, withChromium } from '../lib/chromium.mjs';
import { serveStatic } from '../lib/static-server.mjs';

const MODULES = new URL('../../wasm/npm/', import.meta.url);
const PER_PAGE = 200;

const page = `<!doctype html>
<meta charset="utf-8">
<title>IndexedDBShared</title>
<link rel="icon" href="data:,">
<script type="module">
  import { IndexedDBShared } from '/idb-shared.js';
  window.IndexedDBShared = IndexedDBShared;
  window.ready = true;
</script>`;

let server;
let base;
before(async () => {
  // The page, and the modules under test from wasm/npm/.
  server = await serveStatic({ root: fileURLToPath(MODULES), pages: { '/': page } });
  base = server.base;
});
after(async () => {
  await server?.close();
});

/** In a page: opens namespace `name` and joins it (window.s, window.epoch). */
async function join(name) {
  const s = await window.IndexedDBShared.open(name);
  const [epoch] = await s.call('ck2_join', null, [crypto.randomUUID(), '{"clock":"server"}']);
  Object.assign(window, { s, epoch });
  window.write = (op, ...rest) => s.call('ck2_write', null, [op, epoch, crypto.randomUUID(), '60000', '100000', '', ...rest]);
}

/** In a page: `per` compare-and-set increments of 'counter'; how many tries it took. */
async function increment(per) {
  let tries = 0;
  for (let done = 0; done < per; ) {
    tries++;
    const record = await window.s.call('ck2_get', null, ['counter', '']);
    const [version] = record.split(' ');
    const { n } = JSON.parse(record.slice(record.indexOf('\n', record.indexOf('\n') + 1) + 1));
    const [status] = await window.write('update', 'counter', JSON.stringify({ n: n + 1 }), version, '', '');
    if (status === 'OK') done++;
    else if (status !== 'VERSION_CONFLICT') throw new Error(`update: ${status}`);
  }
  return tries;
}

test('pages of one origin racing on one IndexedDBShared namespace: one create wins, CAS increments end exact, everyone reads the same events', { timeout: 600_000 }, async () => {
  await withChromium(async (context) => {
    const problems = [];
    const pages = [];
    const addPage = async () => {
      const tab = pages.length === 0 && context.pages()[0] ? context.pages()[0] : await context.newPage();
      watchPage(tab, problems);
      await tab.goto(base);
      await tab.waitForFunction(() => window.ready === true);
      pages.push(tab);
    };
    for (const count of [2, 4]) {
      while (pages.length < count) await addPage();
      const name = `race-${count}`;
      for (const tab of pages) await tab.evaluate(join, name);

      const creates = await Promise.all(pages.map((tab) => tab.evaluate(() => window.write('create', 'counter', '{"n":0}', '', '{}', '100'))));
      assert.deepEqual(creates.map((r) => r[0]).sort(), [...Array(count - 1).fill('ALREADY_EXISTS'), 'OK']);

      const t0 = Date.now();
      const tries = await Promise.all(pages.map((tab) => tab.evaluate(increment, PER_PAGE)));
      const ms = Date.now() - t0;
      const total = count * PER_PAGE;
      const record = await pages[0].evaluate(() => window.s.call('ck2_get', null, ['counter', '']));
      assert.ok(record.startsWith(`${1 + total} ${1 + total} `), record);
      assert.ok(record.endsWith(`\n{"n":${total}}`), record);

      const logs = await Promise.all(pages.map((tab) => tab.evaluate(() => window.s.events(0, 100_000))));
      for (const log of logs) assert.deepEqual(log, logs[0]);
      assert.deepEqual(logs[0], [
        [1, 'created', 'counter', 1],
        ...Array.from({ length: total }, (_, i) => [i + 2, 'updated', 'counter', i + 2]),
      ]);

      // A page waiting in events() wakes on another page's commit (BroadcastChannel).
      const waiting = pages[0].evaluate((after) => {
        const t = performance.now();
        return window.s.events(after, 10, 10_000).then((got) => ({ got, ms: performance.now() - t }));
      }, 1 + total);
      await new Promise((r) => setTimeout(r, 100));
      await pages[1].evaluate(() => window.write('delete', 'counter'));
      const woken = await waiting;
      assert.deepEqual(woken.got, [[2 + total, 'deleted', 'counter', 1 + total]]);
      assert.ok(woken.ms < 5000, `woken after ${woken.ms} ms`);

      const sum = tries.reduce((a, b) => a + b, 0);
      console.log(`# ${count} pages: ${total} increments in ${ms} ms (${(ms / total).toFixed(2)} ms each), ${sum} tries (${sum - total} conflicts); a waiting page woke ${Math.round(woken.ms)} ms after it began waiting (the commit came ~100 ms in)`);
    }
    assert.deepEqual(problems, []);
  });
});
