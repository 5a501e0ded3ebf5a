// Prints the exact size of the release .wasm of the npm package, raw and
// gzipped, and fails if it is over budget: 400 KB raw, 160 KB gzipped
// (KB = 1,000 bytes; 300/110 before shared mode joined the package: see
// BENCHMARKS.md, "What shared mode costs the .wasm"). With --write, also replaces the "## wasm size" section
// of BENCHMARKS.md with the figures.
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const pkg = path.resolve(process.env.CONTEXTKIT_PKG ?? path.join(root, 'wasm/pkg'));
const LIMITS = { raw: 400_000, gzip: 160_000 };

const rows = [];
// One .wasm serves both builds (node/ and web/ glue).
for (const file of ['node/contextkit_wasm_bg.wasm']) {
  const bytes = await readFile(path.join(pkg, file));
  rows.push({ file, raw: bytes.length, gzip: gzipSync(bytes, { level: 9 }).length });
}

const kb = (n) => `${(n / 1000).toFixed(1)} KB`;
const table = [
  '| file | raw bytes | gzip -9 bytes |',
  '|---|---:|---:|',
  ...rows.map((r) => `| \`${r.file}\` | ${r.raw.toLocaleString('en')} (${kb(r.raw)}) | ${r.gzip.toLocaleString('en')} (${kb(r.gzip)}) |`),
].join('\n');
console.log(table);

if (process.argv.includes('--write')) {
  const file = path.join(root, 'BENCHMARKS.md');
  const old = await readFile(file, 'utf8').catch(() => '# Benchmarks\n');
  const section = [
    '## wasm size',
    '',
    'The release `.wasm` of the npm package `contextkit` (profile `wasm-release`,',
    'then `wasm-opt -Oz`), as built by `scripts/build-npm.sh` and measured by',
    '`node js-tests/size/size.mjs` (budget: 400 KB raw, 160 KB gzipped; KB = 1,000 bytes).',
    '',
    table,
    '',
    '',
  ].join('\n');
  const start = old.indexOf('## wasm size');
  let next;
  if (start >= 0) {
    const rest = old.indexOf('\n## ', start + 1);
    next = rest >= 0 ? old.slice(0, start) + section + old.slice(rest + 1) : old.slice(0, start) + section;
  } else {
    next = `${old.trimEnd()}\n\n${section}`;
  }
  await writeFile(file, next);
}

const over = rows.filter((r) => r.raw > LIMITS.raw || r.gzip > LIMITS.gzip);
if (over.length > 0) {
  console.error(`over budget (${kb(LIMITS.raw)} raw, ${kb(LIMITS.gzip)} gzipped): ${over.map((r) => r.file).join(', ')}`);
  process.exit(1);
}
