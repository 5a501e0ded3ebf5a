// Packs the built package with `npm pack` and installs the tarball into a
// fresh project, the way users get it.
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { pkgDir } from '../test/helpers.mjs';

const run = promisify(execFile);
const here = path.dirname(fileURLToPath(import.meta.url));
export const jsTests = path.resolve(here, '..');

/** Runs a command, failing with its output if it fails. */
export async function sh(cmd, args, options = {}) {
  try {
    return await run(cmd, args, { maxBuffer: 64 << 20, ...options });
  } catch (e) {
    throw new Error(`${cmd} ${args.join(' ')} failed:\n${e.stdout ?? ''}\n${e.stderr ?? ''}`);
  }
}

/** A new project directory with the packed `contextkit` installed; resolves to its path. */
export async function installPacked(name) {
  const base = path.join(jsTests, '.tmp');
  await mkdir(base, { recursive: true });
  const dir = await mkdtemp(path.join(base, `${name}-`));
  const { stdout } = await sh('npm', ['pack', '--json', '--pack-destination', dir], { cwd: pkgDir });
  const [{ filename }] = JSON.parse(stdout);
  await writeFile(path.join(dir, 'package.json'), JSON.stringify({ name: `contextkit-${name}`, private: true }));
  await sh('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error', path.join(dir, filename)], { cwd: dir });
  return dir;
}
