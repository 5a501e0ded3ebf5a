// Counts the code lines of the wasm binding (wasm/src) against the core's
// (core/src) and fails if the binding reaches 35% of the core: the binding
// maps JavaScript onto core calls, and logic that is not about JavaScript
// belongs in the core, where both front-ends share it.
//
// A code line is a line that is not blank, not a comment (`//`, `///`,
// `//!`) and not inside a `#[cfg(test)]` module. The JSON parser (its own
// crate, json/) is neither.
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

/** Code lines of one file's text. */
export function codeLines(text) {
  const lines = text.split('\n');
  let count = 0;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === '#[cfg(test)]' && /^(pub(\(crate\))? )?mod \w+ \{$/.test(lines[i + 1]?.trim() ?? '')) {
      // Skip the test module up to its closing brace.
      let depth = 0;
      for (i += 1; i < lines.length; i++) {
        for (const c of lines[i]) depth += c === '{' ? 1 : c === '}' ? -1 : 0;
        if (depth === 0) break;
      }
      continue;
    }
    if (line !== '' && !line.startsWith('//')) count++;
  }
  return count;
}

function count(dir) {
  return rustFiles(path.join(root, dir)).reduce((n, f) => n + codeLines(readFileSync(f, 'utf8')), 0);
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
