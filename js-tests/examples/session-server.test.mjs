// The session-server example (examples/session-server.mjs), run as a child
// process against the built package (installed as node_modules/contextkit
// next to a copy of it) and driven by a scripted client over HTTP: create,
// read with ETag and idle TTL, 16 concurrent PATCHes, If-Match, input errors,
// checkpoint, restore, delete, a restart on the same directory, and the
// event log it printed, line by line.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { pkgDir, sleep } from '../test/helpers.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const work = mkdtempSync(path.join(os.tmpdir(), 'contextkit-session-server-'));
const app = path.join(work, 'app');
const sessions = path.join(work, 'sessions');
mkdirSync(path.join(app, 'node_modules'), { recursive: true });
symlinkSync(pkgDir, path.join(app, 'node_modules', 'contextkit'), 'dir');
copyFileSync(path.join(root, 'examples/session-server.mjs'), path.join(app, 'session-server.mjs'));

const running = new Set();
after(() => {
  for (const child of running) child.kill('SIGKILL');
  rmSync(work, { recursive: true, force: true });
});

/** Starts the server on `sessions`; resolves to { url, lines, stderr, stop } once it prints its port. */
function start() {
  const child = spawn(process.execPath, ['session-server.mjs', sessions], {
    cwd: app,
    env: { ...process.env, SESSION_TTL_MS: '60000' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  const server = { lines: [], stderr: '' };
  let partial = '';
  const exited = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      running.delete(child);
      resolve({ code, signal });
    });
  });
  return new Promise((resolve, reject) => {
    child.stderr.on('data', (d) => {
      server.stderr += d;
    });
    child.stdout.on('data', (d) => {
      const lines = (partial + d).split('\n');
      partial = lines.pop();
      for (const line of lines) {
        server.lines.push(line);
        const m = /^listening on (http:\/\/127\.0\.0\.1:\d+)$/.exec(line);
        if (m) resolve(Object.assign(server, { url: m[1] }));
      }
    });
    exited.then(({ code, signal }) => reject(new Error(`the server exited (${code ?? signal}) before listening: ${server.stderr}`)));
    server.stop = async () => {
      child.kill('SIGTERM');
      return exited;
    };
  });
}

/** One request; resolves to { status, etag, body } (body parsed, or null when empty). */
async function call(server, method, url, { body, headers = {}, raw } = {}) {
  const res = await fetch(server.url + url, {
    method,
    headers: { 'content-type': 'application/json', ...headers },
    body: raw ?? (body === undefined ? undefined : JSON.stringify(body)),
  });
  const text = await res.text();
  return { status: res.status, etag: res.headers.get('etag'), location: res.headers.get('location'), body: text === '' ? null : JSON.parse(text) };
}

/** The event lines the server printed so far, parsed. */
const events = (server) => server.lines.filter((l) => l.startsWith('event ')).map((l) => JSON.parse(l.slice(6)));

test('a scripted client against the session server', { timeout: 60_000 }, async () => {
  let server = await start();

  // Create: 201, the ETag is the revision, Location names the session.
  const created = await call(server, 'POST', '/sessions', { body: { user: 'ada' } });
  assert.equal(created.status, 201);
  const id = created.body.id;
  assert.equal(created.location, `/sessions/${id}`);
  assert.equal(created.etag, `"${created.body.revision}"`);
  assert.equal(created.body.version, 1);
  assert.deepEqual(created.body.data, { user: 'ada' });
  assert.ok(created.body.expiresAtMs > Date.now() + 50_000, 'the idle TTL applies');

  // Read: same ETag; a later read pushes the expiry on (a touch: no new version, revision or event).
  const read = await call(server, 'GET', `/sessions/${id}`);
  assert.equal(read.status, 200);
  assert.equal(read.etag, created.etag);
  assert.deepEqual(read.body.data, { user: 'ada' });
  await sleep(20);
  const reread = await call(server, 'GET', `/sessions/${id}`);
  assert.equal(reread.etag, created.etag);
  assert.equal(reread.body.version, 1);
  assert.ok(reread.body.expiresAtMs > read.body.expiresAtMs, 'a read restarts the idle TTL');

  // 16 PATCHes at once, each adding one turn: all land, none is refused.
  const patches = await Promise.all(
    Array.from({ length: 16 }, (_, i) => call(server, 'PATCH', `/sessions/${id}`, { body: { turns: { [i]: `message ${i}` } } })),
  );
  assert.deepEqual(patches.map((p) => p.status), Array(16).fill(200));
  assert.deepEqual(patches.map((p) => p.body.version).sort((a, b) => a - b), Array.from({ length: 16 }, (_, i) => i + 2));
  const counted = await call(server, 'GET', `/sessions/${id}`);
  assert.equal(counted.body.version, 17);
  assert.deepEqual(counted.body.data.turns, Object.fromEntries(Array.from({ length: 16 }, (_, i) => [String(i), `message ${i}`])));
  assert.equal(counted.body.data.user, 'ada');

  // If-Match: a stale ETag is refused with 412 and changes nothing; the current one merges (null removes a key).
  const stale = await call(server, 'PATCH', `/sessions/${id}`, { body: { user: 'eve' }, headers: { 'if-match': created.etag } });
  assert.equal(stale.status, 412);
  assert.equal(stale.body.error.code, 'VERSION_CONFLICT');
  const matched = await call(server, 'PATCH', `/sessions/${id}`, { body: { user: null, title: 'chat' }, headers: { 'if-match': counted.etag } });
  assert.equal(matched.status, 200);
  assert.equal(matched.body.version, 18);
  assert.notEqual(matched.etag, counted.etag);
  assert.equal(matched.body.data.user, undefined);
  assert.equal(matched.body.data.title, 'chat');

  // Input errors map to 400 and change nothing.
  const notObject = await call(server, 'PATCH', `/sessions/${id}`, { body: [1, 2] });
  assert.equal(notObject.status, 400);
  assert.equal(notObject.body.error.code, 'INVALID_ARGUMENT');
  const notJson = await call(server, 'PATCH', `/sessions/${id}`, { raw: '{"turns":' });
  assert.equal(notJson.status, 400);
  assert.equal(notJson.body.error.code, 'INVALID_JSON');
  const badPoint = await call(server, 'POST', `/sessions/${id}/restore/first`);
  assert.equal(badPoint.status, 400);
  assert.equal((await call(server, 'GET', `/sessions/${id}`)).body.version, 18);

  // Checkpoint, a bad edit, restore: the checkpoint's data as a new version.
  const point = await call(server, 'POST', `/sessions/${id}/checkpoints`);
  assert.equal(point.status, 201);
  assert.equal(point.body.version, 18);
  const oops = await call(server, 'PATCH', `/sessions/${id}`, { body: { turns: null, title: 'oops' } });
  assert.equal(oops.status, 200);
  const restored = await call(server, 'POST', `/sessions/${id}/restore/${point.body.id}`);
  assert.equal(restored.status, 200);
  assert.equal(restored.body.version, 20);
  assert.deepEqual(restored.body.data, matched.body.data);
  assert.equal(restored.etag, `"${restored.body.revision}"`);
  assert.equal((await call(server, 'POST', `/sessions/${id}/restore/999999`)).status, 404);

  // Delete: 204, then 404 for everything on it.
  assert.equal((await call(server, 'DELETE', `/sessions/${id}`)).status, 204);
  for (const [method, url] of [['GET', ''], ['PATCH', ''], ['DELETE', ''], ['POST', '/checkpoints']]) {
    const r = await call(server, method, `/sessions/${id}${url}`, method === 'PATCH' ? { body: { a: 1 } } : {});
    assert.equal(r.status, 404, `${method} after delete`);
    assert.equal(r.body.error.code, 'NOT_FOUND');
  }
  assert.equal((await call(server, 'GET', '/nowhere')).status, 404);
  assert.equal((await call(server, 'PUT', `/sessions/${id}`)).status, 405);

  // A session outlives the process: FileStorage keeps it in the directory.
  const kept = await call(server, 'POST', '/sessions', { body: { user: 'grace' } });
  assert.equal(kept.status, 201);

  // The event log: one line per commit, in commit order, with the revisions the client saw.
  await sleep(50);
  const log = events(server);
  const expected = [
    ['created', id, 1],
    ...Array.from({ length: 16 }, (_, i) => ['updated', id, i + 2]),
    ['updated', id, 18],
    ['updated', id, 19],
    ['restored', id, 20],
    ['deleted', id, 20],
    ['created', kept.body.id, 1],
  ];
  assert.deepEqual(log.map((e) => [e.type, e.id, e.version]), expected);
  for (let i = 1; i < log.length; i += 1) assert.ok(log[i].revision > log[i - 1].revision, 'revisions increase');
  assert.equal(log[0].revision, created.body.revision);
  assert.equal(log[17].revision, matched.body.revision);
  assert.equal(log[19].revision, restored.body.revision);
  assert.equal(log.at(-1).revision, kept.body.revision);

  assert.deepEqual(await server.stop(), { code: 0, signal: null });
  assert.equal(server.stderr, '');

  server = await start();
  const reopened = await call(server, 'GET', `/sessions/${kept.body.id}`);
  assert.equal(reopened.status, 200);
  assert.equal(reopened.etag, kept.etag);
  assert.deepEqual(reopened.body.data, { user: 'grace' });
  assert.equal((await call(server, 'GET', `/sessions/${id}`)).status, 404);
  assert.deepEqual(await server.stop(), { code: 0, signal: null });
  assert.equal(server.stderr, '');
});
