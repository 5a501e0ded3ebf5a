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
  console.log(JSON.stringify({ data: (await m.getContext('a')).data, code, events, active: await t.activeContextId(), cfg: (await a.getConfig()).ttlMs }));
`;
const expected = { data: { x: 2 }, code: 'VERSION_CONFLICT', events: ['created:a@1', 'updated:a@2'], active: 'a', cfg: 1000 };

test('the tarball holds exactly the package files', async () => {
  const root = path.join(dir, 'node_modules/contextkit');
  const files = [...(await readdir(root)), ...(await readdir(path.join(root, 'node'))).map((f) => `node/${f}`), ...(await readdir(path.join(root, 'web'))).map((f) => `web/${f}`)];
  assert.deepEqual(files.filter((f) => !['node', 'web'].includes(f)).sort(), [
    'README.md', 'browser.mjs', 'index.cjs', 'index.d.mts', 'index.d.ts', 'index.mjs',
    'node/contextkit_wasm.js', 'node/contextkit_wasm_bg.wasm', 'package.json', 'support.cjs', 'support.mjs',
    'web/contextkit_wasm.js', 'web/contextkit_wasm_bg.wasm', 'web/package.json',
  ]);
  const manifest = JSON.parse(await readFile(path.join(root, 'package.json'), 'utf8'));
  assert.equal(manifest.name, 'contextkit');
});

test('require() works in the installed project', async () => {
  const file = path.join(dir, 'use.cjs');
  await writeFile(file, `const { ContextManager, ContextTracker, ContextAdapter, ContextError } = require('contextkit');\n(async () => {${scenario}})();`);
  const { stdout } = await sh(process.execPath, [file], { cwd: dir });
  assert.deepEqual(JSON.parse(stdout), expected);
});

test('import works in the installed project', async () => {
  const file = path.join(dir, 'use.mjs');
  await writeFile(file, `import { ContextManager, ContextTracker, ContextAdapter, ContextError } from 'contextkit';\n${scenario}`);
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

test('tsc --strict --noEmit accepts typed usage and rejects misuse (require and import)', async () => {
  await writeFile(path.join(dir, 'tsconfig.json'), JSON.stringify({
    compilerOptions: { strict: true, noEmit: true, module: 'node16', moduleResolution: 'node16', target: 'es2022', types: [], skipLibCheck: false },
    files: ['usage.mts', 'usage.cts'],
  }));
  const usage = await readFile(path.join(jsTests, 'packaging/usage.ts'), 'utf8');
  await writeFile(path.join(dir, 'usage.mts'), `import { ContextManager, ContextTracker, ContextAdapter, ContextError } from 'contextkit';\nimport type { ContextEvent, ContextState, Snapshot, Stats, ResolvedAdapterConfig } from 'contextkit';\n${usage}`);
  await writeFile(path.join(dir, 'usage.cts'), `import { ContextManager, ContextTracker, ContextAdapter, ContextError } from 'contextkit';\nimport type { ContextEvent, ContextState, Snapshot, Stats, ResolvedAdapterConfig } from 'contextkit';\n${usage}`);
  await sh(path.join(jsTests, 'node_modules/.bin/tsc'), ['-p', dir], { cwd: dir });
});
