// A directory written by the npm package's FileStorage before it took the
// Rust crate's on-disk format opens with every context, and is moved to the
// current format on the way.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ContextManager, FileStorage, MemoryStorage } from '../test/helpers.mjs';

const sha256 = (data, encoding) => createHash('sha256').update(data, encoding).digest('hex');

/** Writes `key` = `value` as the earlier format did: a header line, then the value. */
async function writeEarlier(dir, key, value) {
  const body = Buffer.from(value, 'utf8');
  const header = `${JSON.stringify({ key, sha256: sha256(body) })}\n`;
  await writeFile(path.join(dir, `${sha256(key, 'utf16le')}.json`), Buffer.concat([Buffer.from(header), body]));
}

test('a directory of the earlier format opens exactly and is moved to the current one', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'contextkit-earlier-'));
  try {
    // The values the earlier FileStorage held: what a manager stores.
    const mem = new MemoryStorage();
    const { manager: m } = await ContextManager.open(mem);
    await m.createContext('a/b', { n: 1 }, { metadata: { k: 'v' } });
    await m.createContext('é', { list: [1, 2, 3] });
    const p = await m.createRecoveryPoint('é');
    await m.updateContext('é', { list: [] });
    const expected = await Promise.all(['a/b', 'é'].map((id) => m.getContext(id)));
    for (const key of await mem.list()) await writeEarlier(dir, key, await mem.get(key));
    m.free();
    // One damaged file is reported, not lost silently, and left in place.
    await writeFile(path.join(dir, `${sha256('c/x', 'utf16le')}.json`), '{"key":"c/x","sha256":"00"}\n{}');

    const { manager, problems } = await ContextManager.open(new FileStorage(dir));
    try {
      assert.equal(problems.length, 1);
      assert.match(problems[0].message, /earlier format/);
      for (const s of expected) assert.deepEqual(await manager.getContext(s.id), s);
      assert.deepEqual((await manager.recoveryPoints('é')).map((x) => x.id), [p.id]);
      const names = await readdir(dir);
      assert.ok(names.some((n) => /^ctx-[0-9a-f]{64}\.json$/.test(n)), names.join(' '));
      assert.equal(names.filter((n) => /^[0-9a-f]{64}\.json$/.test(n)).length, 1, 'only the damaged file is left');
      await manager.updateContext('a/b', { n: 2 });
    } finally {
      manager.free();
    }
    // Reopened: the current format alone, nothing moved twice.
    const again = await ContextManager.open(new FileStorage(dir));
    try {
      assert.equal(again.problems.length, 1);
      assert.deepEqual((await again.manager.getContext('a/b')).data, { n: 2 });
    } finally {
      again.manager.free();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
