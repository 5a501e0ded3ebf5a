// The built package's runtime exports against its hand-written declarations,
// for require (index.cjs against index.d.ts) and for import (index.mjs
// against index.d.mts): the same exported values, and for each exported
// class the same methods, static methods, static properties and prototype
// accessors, with a runtime arity (`fn.length`) that the declared parameters
// allow. The declarations are read with the TypeScript compiler API.
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

/**
 * The exported values of declaration text: name → `{ kind: 'class', ctor,
 * methods, statics, staticProps, props, base }`, `{ kind: 'function', arity }`
 * or `{ kind: 'value' }`. Type-only exports are left out; an export form this
 * reader does not know fails loudly rather than being skipped.
 */
function declaredValues(text, fileName = 'index.d.ts') {
  const source = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, true);
  const values = new Map();
  for (const statement of source.statements) {
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

function assertAgree(found) {
  const unexpected = found.filter((d) => !KNOWN.includes(d));
  const gone = KNOWN.filter((d) => !found.includes(d));
  assert.deepEqual(unexpected, [], `the runtime and the declarations disagree:\n${unexpected.join('\n')}`);
  assert.deepEqual(gone, [], `no longer true, remove from KNOWN in exports.test.mjs:\n${gone.join('\n')}`);
}

test('require: index.cjs exports what index.d.ts declares, with matching methods and arity', () => {
  const runtime = require(path.join(pkgDir, 'index.cjs'));
  const declared = declaredValues(readFileSync(path.join(pkgDir, 'index.d.ts'), 'utf8'), 'index.d.ts');
  const unwrapped = unwrappedClasses(freshGlue());
  assert.deepEqual(Object.keys(unwrapped).sort(), ['ContextAdapter', 'ContextManager', 'ContextTracker']);
  assertAgree(disagreements(runtime, declared, unwrapped));
});

test('import: index.mjs exports what index.d.mts declares, with matching methods and arity', async () => {
  const runtime = { ...(await import(pathToFileURL(path.join(pkgDir, 'index.mjs')).href)) };
  const declared = declaredValues(readFileSync(path.join(pkgDir, 'index.d.mts'), 'utf8'), 'index.d.mts');
  assertAgree(disagreements(runtime, declared, unwrappedClasses(freshGlue())));
});

test('the check itself reports each kind of disagreement', () => {
  const declared = declaredValues(`
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
    export declare function helper(a: number, b?: number): void;
    export declare const VERSION: string;
    export declare function missing(): void;
  `);
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
  const runtime = { Base, Thing, helper: (a, b, c) => {}, VERSION: '1', Undeclared: 1 };
  // Exact arity for Thing, as for the glue's classes: constructor(x) takes 1, declared 2.
  assert.deepEqual(disagreements(runtime, declared, { Thing }).sort(), [
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
