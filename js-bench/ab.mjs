// Two builds of the npm package contextkit in one Node process, taking turns
// in short blocks: µs per create and per update of each, and their ratio. For
// changes whose effect is smaller than what separate runs of bench.mjs move
// on a shared machine (the blocks of the two builds are milliseconds apart,
// so a change in the machine's speed falls on both alike).
//
//   node ab.mjs <package dir A> <package dir B>   e.g. two copies of wasm/pkg
//   node ab.mjs <package dir>                     a build against itself: the noise floor
//   node ab.mjs ... --smoke                       a few operations (no timing claims)
//
// Payloads are those of bench.mjs (10 fields of 8 characters, 10 fields of
// 1,000), 10 fields of 1,000 characters of prose with line breaks, and 10
// fields of 100 doubles.
import { createRequire } from 'node:module';
import path from 'node:path';
import { PAYLOADS } from './payloads.mjs';

const args = process.argv.slice(2);
const smoke = args.includes('--smoke') || !!process.env.CONTEXTKIT_BENCH_SMOKE;
const dirs = args.filter((a) => !a.startsWith('--')).map((d) => path.resolve(d));
if (dirs.length < 1 || dirs.length > 2) {
  console.error('usage: node ab.mjs <package dir A> [<package dir B>] [--smoke]');
  process.exit(2);
}
if (dirs.length === 1) dirs.push(dirs[0]);
const require = createRequire(import.meta.url);

/** Contexts present before updates are measured. */
const CONTEXTS = smoke ? 20 : 1_000;
/** Operations per block, per payload. */
const BLOCK = smoke ? { small: 10, large: 2, lines: 2, doubles: 2 } : { small: 2_000, large: 300, lines: 300, doubles: 100 };
/** Blocks per build and operation after one warm-up block. */
const ROUNDS = smoke ? 2 : 41;

/** A build's ContextManager class. The same directory twice gives two module instances. */
function load(dir, copy) {
  if (copy) {
    for (const key of Object.keys(require.cache)) if (key.startsWith(dir + path.sep)) delete require.cache[key];
  }
  return require(dir).ContextManager;
}

const builds = dirs.map((dir, i) => ({ name: i === 0 ? 'A' : 'B', ContextManager: load(dir, i === 1) }));

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function quantile(xs, q) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}

/** µs per operation of `n` awaited calls `op(i)`. */
async function timed(n, op) {
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i++) await op(i);
  return Number(process.hrtime.bigint() - start) / 1e3 / n;
}

async function measure(size) {
  const { make } = PAYLOADS[size];
  const data = make(0);
  const other = make(1);
  const n = BLOCK[size];
  const runs = [];
  for (const build of builds) {
    const m = new build.ContextManager({ maxContexts: 10_000_000 });
    const ids = Array.from({ length: CONTEXTS }, (_, i) => `context-${String(i).padStart(6, '0')}`);
    for (const id of ids) await m.createContext(id, data);
    runs.push({ build, m, ids, fresh: 0, create: [], update: [] });
  }
  for (let r = 0; r <= ROUNDS; r++) {
    // Which build goes first alternates from block to block.
    for (let k = 0; k < runs.length; k++) {
      const run = runs[(k + r) % runs.length];
      const { m, ids } = run;
      const update = await timed(n, (i) => m.updateContext(ids[(r * n + i) % ids.length], i % 2 ? data : other));
      const base = run.fresh;
      const create = await timed(n, (i) => m.createContext(`new-${base + i}`, data));
      for (let i = 0; i < n; i++) await m.deleteContext(`new-${base + i}`);
      run.fresh += n;
      if (r > 0) {
        run.create.push(create);
        run.update.push(update);
      }
    }
  }
  const [a, b] = runs;
  for (const run of runs) {
    const got = JSON.stringify((await run.m.getContext(run.ids[0])).data);
    if (got !== JSON.stringify(data) && got !== JSON.stringify(other)) throw new Error(`${run.build.name} read back other data`);
  }
  for (const run of runs) run.m.free();
  return ['create', 'update'].map((op) => {
    const ratios = a[op].map((t, i) => b[op][i] / t);
    return { op, size, a: median(a[op]), b: median(b[op]), ratio: median(ratios), lo: quantile(ratios, 0.25), hi: quantile(ratios, 0.75) };
  });
}

const fmt = (us) => (us < 10 ? us.toFixed(2) : us.toFixed(1));

async function main() {
  const rows = [];
  for (const size of Object.keys(PAYLOADS)) rows.push(...(await measure(size)));
  const out = [];
  out.push(`\nA: ${dirs[0]}\nB: ${dirs[1]}${dirs[0] === dirs[1] ? ' (a second instance)' : ''}\n`);
  out.push(
    `Node ${process.version}, ${CONTEXTS} contexts present; ${smoke ? 'SMOKE MODE, not a measurement' : `${ROUNDS} blocks per build of ${BLOCK.small} (10 fields) / ${BLOCK.large} (10 KB) operations, medians`}.\n`,
  );
  out.push('| operation | payload | A µs | B µs | B / A | B / A, middle half of blocks |');
  out.push('|---|---|---:|---:|---:|---:|');
  for (const r of rows) {
    out.push(`| ${r.op} | ${PAYLOADS[r.size].name} | ${fmt(r.a)} | ${fmt(r.b)} | ${r.ratio.toFixed(3)} | ${r.lo.toFixed(3)}–${r.hi.toFixed(3)} |`);
  }
  console.log(out.join('\n'));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
