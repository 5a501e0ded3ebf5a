// One process of the shared-mode race (js-tests/shared/redis.test.mjs); the
// Rust twin is native/examples/shared_worker.rs and speaks the same protocol.
//
// argv: url namespace maxContexts increments slots
// Connects, subscribes, prints "ready"; on the line "go" on stdin it adds 1 to
// the counter `increments` times by compare-and-set (get, update with
// expectedVersion, again on VERSION_CONFLICT) and tries to create slot-0 ...
// slot-<slots - 1>, then prints `{"done":{created,exists,full,conflicts}}`.
// On a line with a revision it waits until it heard that revision and prints
// `{"events":[[type,id,version,revision],...]}`, then exits.
import { createInterface } from 'node:readline';
import { createRequire } from 'node:module';
import { createClient } from 'redis';

const require = createRequire(import.meta.url);
const { ContextManager, RedisBackend } = require(process.env.CONTEXTKIT_PKG ?? '../../wasm/pkg/index.cjs');

const [url, namespace, maxContexts, increments, slots] = process.argv.slice(2);
const m = await ContextManager.connect(new RedisBackend({ url, namespace, createClient }), { maxContexts: Number(maxContexts) });
const events = [];
m.subscribe((e) => events.push([e.type, e.id ?? '', e.version ?? e.missed ?? 0, e.revision ?? 0]));
const say = (v) => process.stdout.write(`${typeof v === 'string' ? v : JSON.stringify(v)}\n`);
say('ready');

async function work() {
  let conflicts = 0;
  for (let i = 0; i < Number(increments); i++) {
    for (;;) {
      const s = await m.getContext('counter');
      try {
        await m.updateContext('counter', { n: s.data.n + 1 }, { expectedVersion: s.version });
        break;
      } catch (e) {
        if (e.code !== 'VERSION_CONFLICT') throw e;
        conflicts++;
      }
    }
  }
  const out = { created: 0, exists: 0, full: 0, conflicts };
  for (let k = 0; k < Number(slots); k++) {
    try {
      await m.createContext(`slot-${k}`, { by: process.pid });
      out.created++;
    } catch (e) {
      if (e.code === 'ALREADY_EXISTS') out.exists++;
      else if (e.code === 'CAPACITY_EXCEEDED') out.full++;
      else throw e;
    }
  }
  return out;
}

for await (const line of createInterface({ input: process.stdin })) {
  if (line === 'go') {
    say({ done: await work() });
  } else if (/^\d+$/.test(line)) {
    const through = Number(line);
    const deadline = Date.now() + 10_000;
    while ((events.at(-1)?.[3] ?? 0) < through && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    say({ events });
    break;
  }
}
m.free();
// An open stdin would keep the process alive.
process.exit(0);
