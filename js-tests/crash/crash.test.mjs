// Crash safety of the Node FileStorage: a child process writing through it
// is killed with SIGKILL at a random moment, 50 times over one directory.
// After each kill, a reopen must succeed with no problems, and every write
// the child had acknowledged (printed) must be there: the context at that
// version or a later one, with exactly the acknowledged data when the
// version is the same, and every acknowledged recovery point id spent.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ContextManager, FileStorage, pkgDir } from '../test/helpers.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const ROUNDS = 50;
const dir = mkdtempSync(path.join(os.tmpdir(), 'contextkit-crash-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Runs the writer until it has acknowledged at least one write and `ms` more passed; kills it. */
function runAndKill(seed, ms) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(here, 'writer.mjs'), pkgDir, dir, String(seed)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    let timer = null;
    child.stdout.on('data', (d) => {
      out += d;
      if (timer === null && out.includes('\nack ')) {
        timer = setTimeout(() => child.kill('SIGKILL'), ms);
      }
    });
    child.stderr.on('data', (d) => {
      err += d;
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (signal !== 'SIGKILL') {
        reject(new Error(`writer exited by itself (code ${code}): ${err}`));
        return;
      }
      // A line cut by the kill was never fully printed: only whole lines count.
      resolve(out.split('\n').slice(0, -1));
    });
  });
}

test(`acknowledged writes survive ${ROUNDS} SIGKILLs of a writer`, { timeout: 600_000 }, async () => {
  /** id → the last acknowledged { version, n } over all rounds. */
  const acked = new Map();
  let highestPoint = 0;
  let acks = 0;
  for (let round = 0; round < ROUNDS; round += 1) {
    const lines = await runAndKill(round + 1, 5 + ((round * 37) % 120));
    assert.equal(lines[0], 'ready', `round ${round}: ${lines[0]}`);
    for (const line of lines.slice(1)) {
      if (line.startsWith('ack ')) {
        const { id, version, n } = JSON.parse(line.slice(4));
        acked.set(id, { version, n });
        acks += 1;
      } else if (line.startsWith('point ')) {
        highestPoint = Math.max(highestPoint, JSON.parse(line.slice(6)).point);
      }
    }
    const { manager, problems } = await ContextManager.open(new FileStorage(dir), { maxContexts: 64 });
    try {
      assert.deepEqual(problems, [], `round ${round}: reopen reported problems`);
      for (const [id, want] of acked) {
        const state = await manager.getContext(id);
        assert.ok(state.version >= want.version, `round ${round}: ${id} went back to version ${state.version}`);
        if (state.version === want.version) {
          assert.equal(state.data.n, want.n, `round ${round}: ${id} v${want.version} holds other data`);
        }
      }
      assert.ok(
        manager.nextRecoveryPointId() > highestPoint,
        `round ${round}: recovery point id ${highestPoint} would be handed out again`,
      );
    } finally {
      manager.free();
    }
  }
  assert.ok(acks >= ROUNDS, `only ${acks} acknowledged writes over ${ROUNDS} rounds`);
});
