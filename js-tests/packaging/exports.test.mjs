// The built package's runtime exports against its hand-written declarations,
// for require (index.cjs against index.d.ts), for import (index.mjs against
// index.d.mts) and for browsers (browser.mjs against browser.d.mts): the
// same exported values, and for each exported class the same methods, static
// methods, static properties and prototype accessors, with a runtime arity
// (`fn.length`) that the declared parameters allow. The declarations are read
// with the TypeScript compiler API; an entry file's `export * from` is
// followed to the declaration file it names (common.d.cts, node-only.d.cts).
//
// Arity, where it can be checked: a declaration allows `length` from its
// required parameters to all of them (a JavaScript parameter with a default
// does not count in `length`). The three wasm-bindgen classes are wrapped
// by support.js's guardFreed, whose wrappers all have `length` 3, so their
// methods' arity comes from a fresh load of the wasm-bindgen glue
// (node/contextkit_wasm.js), whose methods take exactly the Rust
// parameters: there `length` must equal the declared parameter count.
// Instance properties other than prototype accessors exist only on
// instances and are not checked.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import ts from 'typescript';

const here = path.dirname(fileURLToPath(import.meta.url));
/** The package directory under test (as in js-tests/test/helpers.mjs). */
const pkgDir = path.resolve(process.env.CONTEXTKIT_PKG ?? path.join(here, '../../wasm/pkg'));
const require = createRequire(import.meta.url);

/**
 * Disagreements known when this test was written, each still reported by
 * it (one that disappears must leave this list too).
 */
const KNOWN = [
  // wasm-bindgen sets `[Symbol.dispose]` (= free) on its classes where the
  // symbol exists (Node 20); index.d.ts does not declare it, so TypeScript
  // users cannot write `using m = new ContextManager()`.
  'ContextManager: method [Symbol.dispose] exists at runtime but is not declared',
  'ContextTracker: method [Symbol.dispose] exists at runtime but is not declared',
  'ContextAdapter: method [Symbol.dispose] exists at runtime but is not declared',
  // The methods ContextManager.connect drives, public on RedisBackend
  // (redis-backend.cjs documents them) and left out of its declaration,
  // which shows only the SharedBackend interface's properties.
  'RedisBackend: method open exists at runtime but is not declared',
  'RedisBackend: method call exists at runtime but is not declared',
  'RedisBackend: method get exists at runtime but is not declared',
  'RedisBackend: method head exists at runtime but is not declared',
  'RedisBackend: method events exists at runtime but is not declared',
  'RedisBackend: method close exists at runtime but is not declared',
];

// ---- declarations ----------------------------------------------------------

/** `{ min, max }` parameters of one signature (`max` Infinity with a rest parameter). */
function arity(parameters) {
  const params = parameters.filter((p) => !(ts.isIdentifier(p.name) && p.name.text === 'this'));
  const required = params.filter((p) => !p.questionToken && !p.initializer && !p.dotDotDotToken).length;
  return { min: required, max: params.some((p) => p.dotDotDotToken) ? Infinity : params.length };
}

/** Overloads allow the union of their arities. */
function merge(a, b) {
  return a === undefined ? b : { min: Math.min(a.min, b.min), max: Math.max(a.max, b.max) };
}

function memberName(name, source) {
  if (ts.isComputedPropertyName(name)) return `[${name.expression.getText(source)}]`;
  return name.text;
}

const isStatic = (node) => (ts.getCombinedModifierFlags(node) & ts.ModifierFlags.Static) !== 0;
const isExported = (node) => (ts.getCombinedModifierFlags(node) & ts.ModifierFlags.Export) !== 0;

/** Declaration files by the specifier TypeScript resolves to each. */
const DECLARATION_OF = [
  ['.cjs', '.d.cts'],
  ['.mjs', '.d.mts'],
  ['.js', '.d.ts'],
];

/** The declaration file that `export * from 'specifier'` in `file` re-exports. */
function declarationFile(file, specifier) {
  const [ext, dts] = DECLARATION_OF.find(([ext]) => specifier.endsWith(ext)) ?? [];
  if (!specifier.startsWith('./') || !ext) throw new Error(`${file}: re-export of '${specifier}': only './name.js', './name.cjs' and './name.mjs' are followed`);
  return path.join(path.dirname(file), specifier.slice(0, -ext.length) + dts);
}

/**
 * The exported values of declaration file `file` (its text read by `read`):
 * name → `{ kind: 'class', ctor, methods, statics, staticProps, props, base }`,
 * `{ kind: 'function', arity }` or `{ kind: 'value' }`. `export * from` of a
 * relative path adds the values of the file it names (recursively), as
 * TypeScript and JavaScript do: a local declaration wins, and a name that two
 * re-exports give, other than one declaration reached twice, fails.
 * Type-only exports are left out; an export form this reader does not know
 * fails loudly rather than being skipped. `files` holds each file's values
 * once read, so one declaration reached twice is one object.
 */
function declaredValues(file, read = (f) => readFileSync(f, 'utf8'), files = new Map()) {
  if (files.has(file)) return files.get(file);
  const fileName = path.basename(file);
  const source = ts.createSourceFile(fileName, read(file), ts.ScriptTarget.Latest, true);
  const values = new Map();
  files.set(file, values);
  const reexported = new Map();
  for (const statement of source.statements) {
    if (ts.isExportDeclaration(statement) && !statement.exportClause && statement.moduleSpecifier) {
      if (statement.isTypeOnly) continue;
      const target = declarationFile(file, statement.moduleSpecifier.text);
      for (const [name, value] of declaredValues(target, read, files)) {
        if (reexported.has(name) && reexported.get(name) !== value) throw new Error(`${fileName}: ${name} is re-exported from two files`);
        reexported.set(name, value);
      }
      continue;
    }
    if (ts.isInterfaceDeclaration(statement) || ts.isTypeAliasDeclaration(statement)) continue;
    if (ts.isClassDeclaration(statement) && isExported(statement)) {
      const cls = { kind: 'class', ctor: undefined, methods: new Map(), statics: new Map(), staticProps: new Set(), props: new Set(), base: null };
      for (const clause of statement.heritageClauses ?? []) {
        if (clause.token === ts.SyntaxKind.ExtendsKeyword) cls.base = clause.types[0].expression.getText(source);
      }
      for (const member of statement.members) {
        if (ts.isConstructorDeclaration(member)) {
          cls.ctor = merge(cls.ctor, arity(member.parameters));
        } else if (ts.isMethodDeclaration(member)) {
          const table = isStatic(member) ? cls.statics : cls.methods;
          const name = memberName(member.name, source);
          table.set(name, merge(table.get(name), arity(member.parameters)));
        } else if (ts.isPropertyDeclaration(member) || ts.isGetAccessorDeclaration(member) || ts.isSetAccessorDeclaration(member)) {
          (isStatic(member) ? cls.staticProps : cls.props).add(memberName(member.name, source));
        } else if (!ts.isIndexSignatureDeclaration(member)) {
          throw new Error(`${fileName}: unhandled member ${ts.SyntaxKind[member.kind]} of ${statement.name.text}`);
        }
      }
      values.set(statement.name.text, cls);
    } else if (ts.isFunctionDeclaration(statement) && isExported(statement)) {
      const previous = values.get(statement.name.text);
      values.set(statement.name.text, { kind: 'function', arity: merge(previous?.arity, arity(statement.parameters)) });
    } else if (ts.isVariableStatement(statement) && isExported(statement)) {
      for (const d of statement.declarationList.declarations) values.set(d.name.getText(source), { kind: 'value' });
    } else if (ts.isExportDeclaration(statement) || ts.isExportAssignment(statement) || isExported(statement)) {
      throw new Error(`${fileName}: unhandled export ${ts.SyntaxKind[statement.kind]}: ${statement.getText(source).slice(0, 80)}`);
    }
  }
  for (const [name, value] of reexported) if (!values.has(name)) values.set(name, value);
  return values;
}

/** A declared class's members with those of the declared classes it extends. */
function withBases(values, name) {
  const cls = values.get(name);
  const base = cls.base && values.get(cls.base);
  if (!base || base.kind !== 'class') return cls;
  const inherited = withBases(values, cls.base);
  return {
    ...cls,
    methods: new Map([...inherited.methods, ...cls.methods]),
    props: new Set([...inherited.props, ...cls.props]),
  };
}

// ---- runtime ---------------------------------------------------------------

const BUILTIN_PROTOTYPES = new Set([Object.prototype, Function.prototype, Error.prototype]);
const WELL_KNOWN = new Map(
  Object.getOwnPropertyNames(Symbol)
    .filter((n) => typeof Symbol[n] === 'symbol')
    .map((n) => [Symbol[n], `[Symbol.${n}]`]),
);

function keyName(key) {
  return typeof key === 'symbol' ? (WELL_KNOWN.get(key) ?? `[${String(key)}]`) : key;
}

/** wasm-bindgen's and JavaScript's own helpers, not API. */
const internal = (key) => typeof key === 'string' && key.startsWith('__');

/** Methods and accessors along a prototype chain, nearest first. */
function prototypeMembers(proto) {
  const methods = new Map();
  const accessors = new Set();
  for (let p = proto; p && !BUILTIN_PROTOTYPES.has(p); p = Object.getPrototypeOf(p)) {
    for (const key of Reflect.ownKeys(p)) {
      const name = keyName(key);
      if (key === 'constructor' || internal(key) || methods.has(name) || accessors.has(name)) continue;
      const d = Object.getOwnPropertyDescriptor(p, key);
      if (typeof d.value === 'function') methods.set(name, d.value);
      else if (d.get || d.set) accessors.add(name);
    }
  }
  return { methods, accessors };
}

function staticMembers(cls) {
  const methods = new Map();
  const props = new Set();
  for (const key of Reflect.ownKeys(cls)) {
    if (['length', 'name', 'prototype'].includes(key) || internal(key)) continue;
    const d = Object.getOwnPropertyDescriptor(cls, key);
    if (typeof d.value === 'function') methods.set(keyName(key), d.value);
    else props.add(keyName(key));
  }
  return { methods, props };
}

function checkArity(what, fn, allowed, exact, out) {
  if (!allowed) return;
  const n = fn.length;
  if (exact && allowed.max !== Infinity ? n !== allowed.max : n < allowed.min || n > allowed.max) {
    const range = allowed.min === allowed.max ? `${allowed.max}` : `${allowed.min} to ${allowed.max}`;
    out.push(`${what}: takes ${n} parameter(s) at runtime, declared ${range}`);
  }
}

/**
 * Every disagreement between the runtime exports `runtime` and the declared
 * values `declared`, as sentences. `unwrapped` maps a class name to a class
 * whose methods' `length` is exact (the wasm-bindgen glue's).
 */
function disagreements(runtime, declared, unwrapped = {}) {
  const out = [];
  const names = new Set([...Object.keys(runtime), ...declared.keys()]);
  for (const name of [...names].sort()) {
    const value = runtime[name];
    const decl = declared.get(name);
    if (!decl) {
      out.push(`${name}: exported at runtime but not declared`);
      continue;
    }
    if (!(name in runtime)) {
      out.push(`${name}: declared but not exported at runtime`);
      continue;
    }
    if (decl.kind === 'value') continue;
    if (typeof value !== 'function') {
      out.push(`${name}: declared as a ${decl.kind}, but is ${typeof value} at runtime`);
      continue;
    }
    if (decl.kind === 'function') {
      checkArity(name, value, decl.arity, false, out);
      continue;
    }
    const cls = withBases(declared, name);
    const exact = unwrapped[name];
    checkArity(`${name}: constructor`, exact ?? value, cls.ctor, Boolean(exact), out);

    const { methods, accessors } = prototypeMembers(value.prototype);
    const exactMethods = exact ? prototypeMembers(exact.prototype).methods : new Map();
    for (const [m, fn] of methods) {
      if (!cls.methods.has(m)) {
        out.push(`${name}: method ${m} exists at runtime but is not declared`);
        continue;
      }
      const bare = exactMethods.get(m);
      checkArity(`${name}.prototype.${m}`, bare ?? fn, cls.methods.get(m), Boolean(bare), out);
    }
    for (const m of cls.methods.keys()) {
      if (!methods.has(m)) out.push(`${name}: method ${m} is declared but missing at runtime`);
    }
    for (const a of accessors) {
      if (!cls.props.has(a)) out.push(`${name}: accessor ${a} exists at runtime but is not declared`);
    }

    const statics = staticMembers(value);
    const exactStatics = exact ? staticMembers(exact).methods : new Map();
    for (const [m, fn] of statics.methods) {
      if (!cls.statics.has(m)) {
        out.push(`${name}: static method ${m} exists at runtime but is not declared`);
        continue;
      }
      const bare = exactStatics.get(m);
      checkArity(`${name}.${m}`, bare ?? fn, cls.statics.get(m), Boolean(bare), out);
    }
    for (const m of cls.statics.keys()) {
      if (!statics.methods.has(m)) out.push(`${name}: static method ${m} is declared but missing at runtime`);
    }
    for (const p of statics.props) {
      if (!cls.staticProps.has(p)) out.push(`${name}: static property ${p} exists at runtime but is not declared`);
    }
    for (const p of cls.staticProps) {
      if (!statics.props.has(p) && !statics.methods.has(p)) out.push(`${name}: static property ${p} is declared but missing at runtime`);
    }
  }
  return out;
}

// ---- the package -------------------------------------------------------------

/** The wasm-bindgen classes before support.js wraps their methods: a second, untouched load of the glue. */
function freshGlue() {
  const glue = require.resolve(path.join(pkgDir, 'node/contextkit_wasm.js'));
  const loaded = require.cache[glue];
  delete require.cache[glue];
  try {
    return require(glue);
  } finally {
    if (loaded) require.cache[glue] = loaded;
    else delete require.cache[glue];
  }
}

function unwrappedClasses(glue) {
  return Object.fromEntries(
    Object.entries(glue).filter(([, v]) => typeof v === 'function' && /^[A-Z]/.test(v.name) && v.prototype && typeof v.prototype.free === 'function'),
  );
}

/**
 * browser.mjs's exports, loaded in Node: its wasm-bindgen init fetches the
 * .wasm by a file: URL, which Node's fetch refuses, so while it loads, fetch
 * answers file: URLs from the disk.
 */
async function browserExports() {
  const fetch = globalThis.fetch;
  globalThis.fetch = async (url, ...rest) =>
    url instanceof URL && url.protocol === 'file:' ? new Response(readFileSync(url), { headers: { 'content-type': 'application/wasm' } }) : fetch(url, ...rest);
  try {
    return { ...(await import(pathToFileURL(path.join(pkgDir, 'browser.mjs')).href)) };
  } finally {
    globalThis.fetch = fetch;
  }
}

/** No disagreement but those of `KNOWN` about the exports in `runtime`, and each of those still found. */
function assertAgree(runtime, found) {
  const known = KNOWN.filter((d) => d.slice(0, d.indexOf(':')) in runtime);
  const unexpected = found.filter((d) => !known.includes(d));
  const gone = known.filter((d) => !found.includes(d));
  assert.deepEqual(unexpected, [], `the runtime and the declarations disagree:\n${unexpected.join('\n')}`);
  assert.deepEqual(gone, [], `no longer true, remove from KNOWN in exports.test.mjs:\n${gone.join('\n')}`);
}

test('require: index.cjs exports what index.d.ts declares, with matching methods and arity', () => {
  const runtime = require(path.join(pkgDir, 'index.cjs'));
  const declared = declaredValues(path.join(pkgDir, 'index.d.ts'));
  const unwrapped = unwrappedClasses(freshGlue());
  assert.deepEqual(Object.keys(unwrapped).sort(), ['ContextAdapter', 'ContextManager', 'ContextTracker']);
  assertAgree(runtime, disagreements(runtime, declared, unwrapped));
});

test('import: index.mjs exports what index.d.mts declares, with matching methods and arity', async () => {
  const runtime = { ...(await import(pathToFileURL(path.join(pkgDir, 'index.mjs')).href)) };
  const declared = declaredValues(path.join(pkgDir, 'index.d.mts'));
  assertAgree(runtime, disagreements(runtime, declared, unwrappedClasses(freshGlue())));
});

test('browsers: browser.mjs exports what browser.d.mts declares (no FileStorage, no RedisBackend)', async () => {
  const runtime = await browserExports();
  const declared = declaredValues(path.join(pkgDir, 'browser.d.mts'));
  for (const name of ['FileStorage', 'RedisBackend']) assert.ok(!(name in runtime) && !declared.has(name), name);
  // The web glue's classes are the Node glue's, made from the same Rust: their exact arity is the Node glue's.
  assertAgree(runtime, disagreements(runtime, declared, unwrappedClasses(freshGlue())));
});

/** A `read` for declaredValues over the files of `texts` (path → text). */
function inMemory(texts) {
  return (file) => {
    if (!(file in texts)) throw new Error(`no file ${file}`);
    return texts[file];
  };
}

test('the check itself reports each kind of disagreement', () => {
  // The entry re-exports two files, one of which re-exports the other too
  // (one declaration reached twice), and a type-only file (no values).
  const declared = declaredValues(
    '/pkg/index.d.ts',
    inMemory({
      '/pkg/index.d.ts': `
        export * from './common.cjs';
        export * from './extra.cjs';
        export type * from './hidden.mjs';
        export declare function missing(): void;
      `,
      '/pkg/common.d.cts': `
        export interface Options { a?: number }
        export declare class Base { constructor(x: number); inherited(): void; }
        export declare class Thing extends Base {
          constructor(x: number, y?: string);
          static make(a: string): Thing;
          static readonly KINDS: string[];
          readonly size: number;
          one(a: string): void;
          two(a: string, b?: number): void;
          gone(): void;
          many(...xs: number[]): void;
        }
      `,
      '/pkg/extra.d.cts': `
        import type { Options } from './common.cjs';
        export * from './common.cjs';
        export declare function helper(a: number, b?: Options): void;
        export declare const VERSION: string;
      `,
      '/pkg/hidden.d.mts': 'export declare class Hidden {}',
    }),
  );
  class Base {
    constructor(x) { this.x = x; }
    inherited() {}
  }
  class Thing extends Base {
    constructor(x) { super(x); }
    static make(a, b) { return new Thing(a, b); }
    static extra() {}
    get size() { return 0; }
    get color() { return 'red'; }
    one() {}
    two(a, b) {}
    many(...xs) {}
    surprise() {}
  }
  Thing.KINDS = [];
  const runtime = { Base, Thing, helper: (a, b, c) => {}, VERSION: '1', Undeclared: 1, Hidden: class {} };
  // Exact arity for Thing, as for the glue's classes: constructor(x) takes 1, declared 2.
  assert.deepEqual(disagreements(runtime, declared, { Thing }).sort(), [
    'Hidden: exported at runtime but not declared',
    'Thing.make: takes 2 parameter(s) at runtime, declared 1',
    'Thing.prototype.one: takes 0 parameter(s) at runtime, declared 1',
    'Thing: accessor color exists at runtime but is not declared',
    'Thing: constructor: takes 1 parameter(s) at runtime, declared 1 to 2',
    'Thing: method gone is declared but missing at runtime',
    'Thing: method surprise exists at runtime but is not declared',
    'Thing: static method extra exists at runtime but is not declared',
    'Undeclared: exported at runtime but not declared',
    'helper: takes 3 parameter(s) at runtime, declared 1 to 2',
    'missing: declared but not exported at runtime',
  ]);
  // Without exact arity, a length within the declared range is accepted.
  assert.deepEqual(disagreements({ Base, Thing }, new Map([['Base', declared.get('Base')], ['Thing', declared.get('Thing')]])).sort(), [
    'Thing.make: takes 2 parameter(s) at runtime, declared 1',
    'Thing.prototype.one: takes 0 parameter(s) at runtime, declared 1',
    'Thing: accessor color exists at runtime but is not declared',
    'Thing: method gone is declared but missing at runtime',
    'Thing: method surprise exists at runtime but is not declared',
    'Thing: static method extra exists at runtime but is not declared',
  ]);
});

test('re-exports: a local declaration wins, a name two files give fails, and only ./ paths to .js, .cjs and .mjs files are followed', () => {
  const local = declaredValues(
    '/pkg/a.d.ts',
    inMemory({ '/pkg/a.d.ts': "export * from './b.js';\nexport declare function X(a: number): void;", '/pkg/b.d.ts': 'export declare const X: 1;' }),
  );
  assert.deepEqual(local.get('X'), { kind: 'function', arity: { min: 1, max: 1 } });
  const twice = inMemory({ '/pkg/a.d.mts': "export * from './b.mjs';\nexport * from './c.cjs';", '/pkg/b.d.mts': 'export declare const X: 1;', '/pkg/c.d.cts': 'export declare const X: 2;' });
  assert.throws(() => declaredValues('/pkg/a.d.mts', twice), /a\.d\.mts: X is re-exported from two files/);
  for (const specifier of ['contextkit', './b', '../b.js', './b.d.ts']) {
    assert.throws(() => declaredValues('/pkg/a.d.ts', inMemory({ '/pkg/a.d.ts': `export * from '${specifier}';` })), /only '\.\/name\.js', '\.\/name\.cjs' and '\.\/name\.mjs' are followed/, specifier);
  }
  assert.throws(() => declaredValues('/pkg/a.d.ts', inMemory({ '/pkg/a.d.ts': "export { X } from './b.js';" })), /unhandled export/);
});
