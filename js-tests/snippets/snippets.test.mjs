// Every JavaScript snippet of the READMEs runs as a user would run it: the
// fenced blocks marked js, mjs or cjs in README.md and wasm/npm/README.md,
// each in a fresh Node process, in a temporary directory of its own (so a
// FileStorage snippet writes there) where node_modules/contextkit links to
// the built package, so `require('contextkit')` and `import ... from
// 'contextkit'` resolve through the package's `exports` as after an install.
//
// A mjs block runs as an ES module and a cjs block as CommonJS; a js block
// runs as an ES module if it has an import or export statement, else as
// CommonJS (what Node does with a .js file it has to detect). A snippet
// passes if its process exits with 0 and writes nothing to stderr.
//
// A block that cannot run here (it needs Redis or a browser) carries the
// line `<!-- snippet: skip (reason) -->` right before its fence. TypeScript
// blocks are not run, so each must carry that line too.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, symlinkSync, mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { pkgDir } from '../test/helpers.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const READMES = ['README.md', 'wasm/npm/README.md'];
const RUN = new Set(['js', 'javascript', 'mjs', 'cjs']);
const TYPESCRIPT = new Set(['ts', 'typescript', 'tsx', 'mts', 'cts']);
const SKIP = /^<!--\s*snippet:\s*skip\s*\((.*)\)\s*-->$/;

/**
 * The fenced blocks of a Markdown text: { line, lang, body, skip } with the
 * 1-based line of the opening fence and the reason of a skip marker (or
 * null). Throws on a `<!-- snippet: ... -->` line that is malformed, has no
 * reason or is not right before a fence.
 */
function fencedBlocks(markdown, file) {
  const lines = markdown.split('\n');
  const blocks = [];
  for (let i = 0; i < lines.length; i += 1) {
    const marker = lines[i].trim();
    if (marker.startsWith('<!-- snippet')) {
      const m = SKIP.exec(marker);
      if (m === null || m[1].trim() === '') {
        throw new Error(`${file}:${i + 1}: write a marker as <!-- snippet: skip (reason) -->`);
      }
      if (!/^\s*(`{3,}|~{3,})/.test(lines[i + 1] ?? '')) {
        throw new Error(`${file}:${i + 1}: a skip marker must be the line right before a fence`);
      }
      continue;
    }
    const open = /^(\s*)(`{3,}|~{3,})\s*([^\s`]*)/.exec(lines[i]);
    if (open === null) continue;
    const [, indent, fence, lang] = open;
    let end = i + 1;
    while (end < lines.length && !new RegExp(`^\\s*${fence[0]}{${fence.length},}\\s*$`).test(lines[end])) end += 1;
    if (end === lines.length) throw new Error(`${file}:${i + 1}: the fence is never closed`);
    const body = lines
      .slice(i + 1, end)
      .map((l) => (l.startsWith(indent) ? l.slice(indent.length) : l))
      .join('\n');
    const skip = i > 0 ? SKIP.exec(lines[i - 1].trim()) : null;
    blocks.push({ line: i + 1, lang: lang.toLowerCase(), body, skip: skip === null ? null : skip[1].trim() });
    i = end;
  }
  return blocks;
}

/** 'mjs' or 'cjs': how Node is to run a block (see the top of this file). */
function moduleKind({ lang, body }) {
  if (lang === 'mjs' || lang === 'cjs') return lang;
  return /^\s*(import\s*[\w{*'"]|export\s)/m.test(body) ? 'mjs' : 'cjs';
}

const work = mkdtempSync(path.join(os.tmpdir(), 'contextkit-snippets-'));
after(() => rmSync(work, { recursive: true, force: true }));

/** Runs `source` as `snippet.<kind>` in a new directory; resolves to { code, signal, stdout, stderr }. */
function runSnippet(name, kind, source) {
  const dir = path.join(work, name.replace(/[^\w.-]+/g, '_'));
  mkdirSync(path.join(dir, 'node_modules'), { recursive: true });
  symlinkSync(pkgDir, path.join(dir, 'node_modules', 'contextkit'), 'dir');
  const file = `snippet.${kind}`;
  writeFileSync(path.join(dir, file), source);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [file], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

for (const readme of READMES) {
  const blocks = fencedBlocks(readFileSync(path.join(root, readme), 'utf8'), readme);

  describe(readme, () => {
    test('has JavaScript snippets that run', () => {
      assert.ok(
        blocks.some((b) => RUN.has(b.lang) && b.skip === null),
        `${readme} has no JavaScript snippet left to run`,
      );
    });

    for (const block of blocks) {
      const name = `${readme}:${block.line} (${block.lang})`;
      if (TYPESCRIPT.has(block.lang)) {
        test(name, { skip: block.skip ?? false }, () => {
          assert.fail(`${name}: TypeScript snippets are not run; mark it <!-- snippet: skip (reason) -->`);
        });
        continue;
      }
      if (!RUN.has(block.lang)) continue;
      if (block.skip !== null) {
        test(name, { skip: block.skip }, () => {});
        continue;
      }
      test(name, async () => {
        const kind = moduleKind(block);
        const r = await runSnippet(name, kind, block.body);
        const output = `\n--- snippet (run as ${kind}) ---\n${block.body}\n--- stdout ---\n${r.stdout}--- stderr ---\n${r.stderr}`;
        assert.equal(r.signal, null, `${name} was killed by ${r.signal} (30 s timeout?)${output}`);
        assert.equal(r.code, 0, `${name} exited with ${r.code}${output}`);
        assert.equal(r.stderr, '', `${name} wrote to stderr${output}`);
      });
    }
  });
}
