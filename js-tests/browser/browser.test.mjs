// The packed package in headless Chromium: a page served from localhost imports
// `contextkit` (through an import map, as a browser app would) and runs a
// create / update / subscribe / expiry scenario.
import assert from 'node:assert/strict';
import { createReadStream } from 'node:fs';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { chromium } from 'playwright-core';
import { installPacked } from '../packaging/consumer.mjs';

const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const ARGS = [
  '--no-sandbox', '--headless=new', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run',
];
const TYPES = { '.html': 'text/html', '.mjs': 'text/javascript', '.js': 'text/javascript', '.json': 'application/json', '.wasm': 'application/wasm' };

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

let dir;
let server;
let base;
before(async () => {
  dir = await installPacked('browser');
  await writeFile(path.join(dir, 'index.html'), page);
  server = http.createServer(async (req, res) => {
    const url = new URL(req.url, 'http://localhost');
    const file = path.join(dir, path.normalize(decodeURIComponent(url.pathname === '/' ? '/index.html' : url.pathname)));
    if (!file.startsWith(dir) || !(await stat(file).then((s) => s.isFile(), () => false))) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream' });
    createReadStream(file).pipe(res);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${server.address().port}/`;
});

after(async () => {
  await new Promise((resolve) => server?.close(resolve));
});

test('create / update / subscribe / expiry in headless Chromium', { timeout: 120_000 }, async () => {
  const profile = await mkdtemp(path.join(os.tmpdir(), 'contextkit-chromium-'));
  const context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, args: ARGS, headless: true });
  try {
    const tab = context.pages()[0] ?? (await context.newPage());
    const problems = [];
    tab.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    tab.on('console', (msg) => msg.type() === 'error' && problems.push(`console error: ${msg.text()}`));
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
  } finally {
    await context.close();
    await rm(profile, { recursive: true, force: true });
  }
});
