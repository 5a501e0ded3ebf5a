// The packed tarball installed into a fresh project: require, import and TypeScript.
import assert from 'node:assert/strict';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { before, test } from 'node:test';
import { installPacked, jsTests, sh } from './consumer.mjs';

let dir;
before(async () => {
  dir = await installPacked('packaging');
});

const scenario = `
  const m = new ContextManager({ maxContexts: 10 });
  const events = [];
  const off = m.subscribe((ev) => events.push(ev.type + ':' + ev.id + '@' + ev.version));
  const s = await m.createContext('a', { x: 1 });
  await m.updateContext('a', { x: 2 }, { expectedVersion: s.version });
  let code;
  try { await m.updateContext('a', { x: 3 }, { expectedVersion: 1 }); } catch (e) { code = e instanceof ContextError && e.code; }
  await new Promise((r) => setTimeout(r, 0));
  off();
  const t = new ContextTracker(m);
  await t.activateContext('a');
  const a = new ContextAdapter(m, { ttlMs: 1000 });
  const dir = require('node:path').join(process.cwd(), 'contexts-' + process.pid);
  const opened = await ContextManager.open(new FileStorage(dir));
  await opened.manager.createContext('f', { on: 'disk' });
  opened.manager.free();
  const reopened = await ContextManager.open(new FileStorage(dir));
  const memory = await ContextManager.open(new MemoryStorage());
  let idb;
  try { new IndexedDBStorage('db'); } catch (e) { idb = e instanceof Error; }
  require('node:fs').rmSync(dir, { recursive: true });
  console.log(JSON.stringify({
    data: (await m.getContext('a')).data, code, events, active: await t.activeContextId(), cfg: (await a.getConfig()).ttlMs,
    file: (await reopened.manager.getContext('f')).data, problems: reopened.problems.length + memory.problems.length, idb,
  }));
`;
const expected = {
  data: { x: 2 }, code: 'VERSION_CONFLICT', events: ['created:a@1', 'updated:a@2'], active: 'a', cfg: 1000,
  file: { on: 'disk' }, problems: 0, idb: true,
};

test('the tarball holds exactly the package files', async () => {
  const root = path.join(dir, 'node_modules/contextkit');
  const files = [...(await readdir(root)), ...(await readdir(path.join(root, 'node'))).map((f) => `node/${f}`), ...(await readdir(path.join(root, 'web'))).map((f) => `web/${f}`)];
  assert.deepEqual(files.filter((f) => !['node', 'web'].includes(f)).sort(), [
    'README.md', 'browser.d.mts', 'browser.mjs', 'common.d.cts', 'contextkit.lua', 'file-lock.cjs', 'file-storage.cjs', 'idb-tabs.cjs', 'idb-tabs.mjs', 'index.cjs', 'index.d.mts', 'index.d.ts', 'index.mjs',
    'node-only.d.cts', 'node/contextkit_wasm.js', 'node/contextkit_wasm_bg.wasm', 'package.json', 'redis-backend.cjs', 'storage.cjs', 'storage.mjs', 'support.cjs', 'support.mjs',
    'web/contextkit_wasm.js', 'web/package.json',
  ]);
  // One .wasm, and no entry point names a file the package lacks.
  assert.equal(files.filter((f) => f.endsWith('.wasm')).length, 1);
  for (const f of files.filter((f) => /\.(c|m)?js$/.test(f))) {
    const text = await readFile(path.join(root, f), 'utf8');
    for (const [name] of text.matchAll(/\b[A-Z]+\.md\b/g)) assert.ok(files.includes(name), `${f} names ${name}, which the package lacks`);
  }
  const manifest = JSON.parse(await readFile(path.join(root, 'package.json'), 'utf8'));
  assert.equal(manifest.name, 'contextkit');
});

test('require() works in the installed project', async () => {
  const file = path.join(dir, 'use.cjs');
  await writeFile(file, `const { ContextManager, ContextTracker, ContextAdapter, ContextError, MemoryStorage, FileStorage, IndexedDBStorage } = require('contextkit');\n(async () => {${scenario}})();`);
  const { stdout } = await sh(process.execPath, [file], { cwd: dir });
  assert.deepEqual(JSON.parse(stdout), expected);
});

test('import works in the installed project', async () => {
  const file = path.join(dir, 'use.mjs');
  await writeFile(file, `import { createRequire } from 'node:module';\nimport { ContextManager, ContextTracker, ContextAdapter, ContextError, MemoryStorage, FileStorage, IndexedDBStorage } from 'contextkit';\nconst require = createRequire(import.meta.url);\n${scenario}`);
  const { stdout } = await sh(process.execPath, [file], { cwd: dir });
  assert.deepEqual(JSON.parse(stdout), expected);
});

test('require and import in one program share one module and one ContextError', async () => {
  const file = path.join(dir, 'mixed.mjs');
  await writeFile(file, `
    import { createRequire } from 'node:module';
    import * as esm from 'contextkit';
    const cjs = createRequire(import.meta.url)('contextkit');
    const m = new esm.ContextManager();
    const err = await m.getContext('missing').catch((e) => e);
    console.log(JSON.stringify({
      sameClass: esm.ContextManager === cjs.ContextManager,
      sameError: err instanceof cjs.ContextError && err instanceof esm.ContextError,
      tracker: new cjs.ContextTracker(m) instanceof esm.ContextTracker,
    }));
  `);
  const { stdout } = await sh(process.execPath, [file], { cwd: dir });
  assert.deepEqual(JSON.parse(stdout), { sameClass: true, sameError: true, tracker: true });
});

test('with an IndexedDB polyfill in Node, IndexedDBStorage is shared mode, with require and with import', async () => {
  const polyfill = JSON.stringify(path.join(jsTests, 'node_modules/fake-indexeddb/auto/index.js'));
  const body = `
    const a = await ContextManager.open(new IndexedDBStorage('app'));
    const b = await ContextManager.open(new IndexedDBStorage('app'));
    await a.manager.createContext('x', { n: 1 });
    const got = (await b.manager.getContext('x')).data;
    const code = await b.manager.createContext('x', {}).catch((e) => e instanceof ContextError && e.code);
    a.manager.free();
    b.manager.free();
    console.log(JSON.stringify({ got, code, problems: [...a.problems, ...b.problems] }));
  `;
  await writeFile(path.join(dir, 'idb.cjs'), `require(${polyfill});\nconst { ContextManager, ContextError, IndexedDBStorage } = require('contextkit');\n(async () => {${body}})();`);
  await writeFile(path.join(dir, 'idb.mjs'), `import { createRequire } from 'node:module';\ncreateRequire(import.meta.url)(${polyfill});\nconst { ContextManager, ContextError, IndexedDBStorage } = await import('contextkit');\n${body}`);
  for (const file of ['idb.cjs', 'idb.mjs']) {
    const { stdout } = await sh(process.execPath, [path.join(dir, file)], { cwd: dir });
    assert.deepEqual(JSON.parse(stdout), { got: { n: 1 }, code: 'ALREADY_EXISTS', problems: [] }, file);
  }
});

const imports = `import { ContextManager, ContextTracker, ContextAdapter, ContextError, MemoryStorage, FileStorage, IndexedDBStorage, RedisBackend } from 'contextkit';
import type { ContextEvent, ContextState, ContextStorage, OpenedManager, Snapshot, Stats, StorageEntries, ResolvedAdapterConfig } from 'contextkit';
`;

const browserUsage = `
  import { ContextManager, IndexedDBStorage, MemoryStorage } from 'contextkit';
  // @ts-expect-error FileStorage is for Node only
  import { FileStorage } from 'contextkit';
  // @ts-expect-error RedisBackend is for Node only
  import { RedisBackend } from 'contextkit';
  // @ts-expect-error so are its options
  import type { RedisBackendOptions } from 'contextkit';
  const { manager, problems } = await ContextManager.open(new IndexedDBStorage('db', 'store'));
  await manager.createContext('a', { x: 1 });
  const n: number = problems.length;
  await ContextManager.open(new MemoryStorage());
  const options: RedisBackendOptions | undefined = undefined;
  void [n, FileStorage, RedisBackend, options];
`;

/** The package's declaration files in a program, by the entry that the consumer resolves. */
const REQUIRE_TYPES = ['common.d.cts', 'index.d.ts', 'node-only.d.cts'];
const IMPORT_TYPES = ['common.d.cts', 'index.d.mts', 'node-only.d.cts'];
const BROWSER_TYPES = ['browser.d.mts', 'common.d.cts'];

/**
 * Runs tsc --strict --noEmit on one consumer file with the given module
 * options (tsconfig.NAME.json), and checks which of the package's
 * declaration files the program read: `types`.
 */
async function tsc(name, file, options, types) {
  const config = `tsconfig.${name}.json`;
  await writeFile(path.join(dir, config), JSON.stringify({
    compilerOptions: { strict: true, noEmit: true, target: 'es2022', types: [], skipLibCheck: false, ...options },
    files: [file],
  }));
  const { stdout } = await sh(path.join(jsTests, 'node_modules/.bin/tsc'), ['-p', config, '--listFiles'], { cwd: dir });
  const pkg = `${path.join(dir, 'node_modules/contextkit')}${path.sep}`;
  const read = stdout.split('\n').filter((f) => f.startsWith(pkg)).map((f) => f.slice(pkg.length));
  assert.deepEqual(read.sort(), types, `${name}: ${file} read the package's declarations`);
}

// One consumer file per program: TypeScript 5.9 leaves unreported an error
// in the require typings (such as index.d.ts re-exporting an ES module
// typing) when the same program also has an import consumer.
test('tsc --strict --noEmit accepts typed usage and rejects misuse: require and import, node16, nodenext and bundler', async () => {
  const usage = await readFile(path.join(jsTests, 'packaging/usage.ts'), 'utf8');
  await writeFile(path.join(dir, 'usage.mts'), `${imports}${usage}`);
  await writeFile(path.join(dir, 'usage.cts'), `${imports}${usage}`);
  // moduleResolution bundler sets neither `node` nor `browser`: a Node project compiled that way gets FileStorage too.
  const modes = { node16: { module: 'node16' }, nodenext: { module: 'nodenext' }, bundler: { module: 'preserve', moduleResolution: 'bundler' } };
  await Promise.all(
    Object.entries(modes).flatMap(([mode, options]) => [
      tsc(`${mode}-require`, 'usage.cts', options, REQUIRE_TYPES),
      tsc(`${mode}-import`, 'usage.mts', options, IMPORT_TYPES),
    ]),
  );
});

test('tsc with the browser condition (bundler and node16): the same API without FileStorage and RedisBackend', async () => {
  await writeFile(path.join(dir, 'browser-usage.mts'), browserUsage);
  await Promise.all([
    tsc('browser-bundler', 'browser-usage.mts', { module: 'preserve', moduleResolution: 'bundler', customConditions: ['browser'] }, BROWSER_TYPES),
    tsc('browser-node16', 'browser-usage.mts', { module: 'node16', customConditions: ['browser'] }, BROWSER_TYPES),
  ]);
});
