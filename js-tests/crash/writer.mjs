// A child process for crash.test.mjs: writes through FileStorage in a loop
// and prints every write as soon as it is acknowledged, until it is killed.
//
// Usage: node writer.mjs <package dir> <storage dir> <seed>
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const [pkgDir, dir, seedText] = process.argv.slice(2);
const { ContextManager, FileStorage } = await import(pathToFileURL(path.join(pkgDir, 'index.mjs')).href);

let seed = Number(seedText) >>> 0;
const random = (n) => {
  seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
  return seed % n;
};

const { manager, problems } = await ContextManager.open(new FileStorage(dir), { maxContexts: 64 });
if (problems.length > 0) {
  console.error(`problems on open: ${problems.map((p) => p.message).join('; ')}`);
  process.exit(2);
}
const write = (line) => process.stdout.write(`${line}\n`);
write('ready');

// Several writers at once, so writes of different ids overlap in the storage.
async function writer(w) {
  for (let n = 0; ; n += 1) {
    const id = `w${w}-${random(6)}`;
    const data = { writer: w, n, pad: 'x'.repeat(random(2000)) };
    let state;
    try {
      state = await manager.updateContext(id, data);
    } catch (e) {
      if (e.code !== 'NOT_FOUND') throw e;
      state = await manager.createContext(id, data);
    }
    write(`ack ${JSON.stringify({ id, version: state.version, n })}`);
    if (random(10) === 0) {
      const point = await manager.createRecoveryPoint(id);
      write(`point ${JSON.stringify({ id, point: point.id })}`);
    }
  }
}
await Promise.all([0, 1, 2, 3].map(writer));
