// Counts the code lines of the wasm binding (wasm/src) against the core's
// (core/src) and fails if the binding reaches 35% of the core: the binding
// maps JavaScript onto core calls, and logic that is not about JavaScript
// belongs in the core, where both front-ends share it.
//
// A code line is a line that is not blank, not a comment (`//`, `///`,
// `//!`) and not in a `#[cfg(test)]` module, inline or in a file of its
// own. The JSON parser (its own crate, json/) is neither.
//
// Usage: node scripts/binding-lines.mjs
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const LIMIT = 0.35;

function rustFiles(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return rustFiles(p);
    return e.name.endsWith('.rs') ? [p] : [];
  });
}

const TEST_ATTR = '#[cfg(test)]';
const MOD = /^(?:pub(?:\(crate\))? )?mod (\w+)\s*([{;])$/;

/** Code lines of one file's text, and the names of its test modules kept in files of their own. */
export function codeLines(text) {
  const lines = text.split('\n');
  let count = 0;
  const testFiles = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    const mod = line === TEST_ATTR ? MOD.exec(lines[i + 1]?.trim() ?? '') : null;
    if (mod?.[2] === ';') {
      testFiles.push(mod[1]);
      i += 1;
      continue;
    }
    if (mod) {
      // Skip the inline test module up to its closing brace.
      let depth = 0;
      for (i += 1; i < lines.length; i++) {
        for (const c of lines[i]) depth += c === '{' ? 1 : c === '}' ? -1 : 0;
        if (depth === 0) break;
      }
      continue;
    }
    if (line !== '' && !line.startsWith('//')) count++;
  }
  return { count, testFiles };
}

function count(dir) {
  const files = rustFiles(path.join(root, dir));
  const tests = new Set();
  let n = 0;
  for (const f of files) {
    const { count, testFiles } = codeLines(readFileSync(f, 'utf8'));
    n += count;
    // `mod tests;` in a.rs (or mod.rs) is a/tests.rs (or tests.rs beside it), or tests/mod.rs.
    const base = path.basename(f) === 'mod.rs' || f.endsWith('lib.rs') ? path.dirname(f) : f.slice(0, -3);
    for (const t of testFiles) {
      tests.add(path.join(base, `${t}.rs`));
      tests.add(path.join(base, t, 'mod.rs'));
    }
  }
  for (const f of files) {
    if (tests.has(f)) n -= codeLines(readFileSync(f, 'utf8')).count;
  }
  return n;
}

const binding = count('wasm/src');
const core = count('core/src');
const share = binding / core;
console.log(`| code lines | wasm/src | core/src | wasm/src / core/src |`);
console.log(`|---|---:|---:|---:|`);
console.log(`| | ${binding} | ${core} | ${(share * 100).toFixed(1)}% |`);
if (share >= LIMIT) {
  console.error(`the wasm binding is ${(share * 100).toFixed(1)}% of the core, over ${LIMIT * 100}%`);
  process.exit(1);
}
