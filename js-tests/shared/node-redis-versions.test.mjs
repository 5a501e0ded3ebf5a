// RedisBackend on each major version of node-redis the package accepts
// (package.json: "redis": ">=5"): 5, which speaks RESP2 unless told
// otherwise, and 6, which speaks RESP3 by default and then gives other
// shapes for some replies (XREAD as a map, for one). Managers on either,
// together on one namespace, are one store: the same replies, the same
// events in every manager, reads from memory forgotten at others' events.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { startRedis } from '../lib/redis-server.mjs';
import { ContextManager, pkgDir } from '../test/helpers.mjs';

const require = createRequire(import.meta.url);
const { RedisBackend } = require(`${pkgDir}/index.cjs`);
const clients = {
  5: require('redis').createClient,
  6: require('redis6').createClient,
  // A createClient of the caller's that insists on RESP3.
  '6 on RESP3': (options) => require('redis6').createClient({ ...options, RESP: 3 }),
};

let redis;
before(async () => {
  redis = await startRedis();
});
after(async () => {
  await redis?.stop();
});

const connect = (major, namespace, extra = {}) =>
  ContextManager.connect(new RedisBackend({ url: redis.url, namespace, createClient: clients[major], ...extra }), { maxContexts: 5 });

async function until(what, ok) {
  const deadline = Date.now() + 5000;
  while (!ok()) {
    assert.ok(Date.now() < deadline, `${what}: not within 5 s`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

for (const [major, other] of [
  [6, 5],
  [5, 6],
  ['6 on RESP3', 5],
]) {
  test(`node-redis ${major} next to node-redis ${other}: one store, one sequence of events`, async () => {
    const ns = `versions-${major}`.replaceAll(' ', '-');
    const a = await connect(major, ns, { maxStaleMs: 60_000 });
    const b = await connect(other, ns);
    const heard = { a: [], b: [] };
    a.subscribe((e) => heard.a.push(`${e.type} ${e.id} ${e.version} ${e.revision}`));
    b.subscribe((e) => heard.b.push(`${e.type} ${e.id} ${e.version} ${e.revision}`));
    try {
      // Another manager's writes reach this one's subscribers and its reads.
      await b.createContext('x', { n: 1, big: 2 ** 60, text: 'é\u2028' });
      await until('the create heard', () => heard.a.length === 1);
      assert.deepEqual((await a.getContext('x')).data, { n: 1, big: 2 ** 60, text: 'é\u2028' });
      await b.updateContext('x', { n: 2 }, { expectedVersion: 1 });
      await until('the update read', () => heard.a.length === 2);
      assert.equal((await a.getContext('x')).data.n, 2, 'the event forgot the read kept from memory');
      // This manager's own writes, compare-and-set and recovery points.
      await assert.rejects(a.updateContext('x', { n: 9 }, { expectedVersion: 1 }), { code: 'VERSION_CONFLICT' });
      const point = await a.createRecoveryPoint('x');
      await a.updateContext('x', { n: 3 });
      assert.equal((await a.restoreRecoveryPoint('x', point.id)).data.n, 2);
      assert.deepEqual((await a.recoveryPoints('x')).map((p) => p.id), [point.id]);
      await assert.rejects(a.createContext('x', {}), { code: 'ALREADY_EXISTS' });
      for (const id of ['y', 'z', 'w', 'v']) await a.createContext(id, {});
      await assert.rejects(b.createContext('u', {}), { code: 'CAPACITY_EXCEEDED' });
      assert.deepEqual((await b.listContextIds()).sort(), ['v', 'w', 'x', 'y', 'z']);
      assert.equal(await a.len(), 5);
      await a.deleteContext('x');
      await assert.rejects(b.getContext('x'), { code: 'NOT_FOUND' });
      await until('every event in both', () => heard.a.length === 9 && heard.b.length === 9);
      assert.deepEqual(heard.a, heard.b);
      assert.match(heard.a.at(-1), /^deleted x 4 /);
    } finally {
      a.free();
      b.free();
    }
  });
}
