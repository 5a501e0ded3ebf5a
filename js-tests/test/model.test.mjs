// Property-based: random operation sequences against a small JavaScript model
// of the manager's semantics, including the events it must publish.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { ContextManager, MemoryStorage, collect } from './helpers.mjs';

const MAX_CONTEXTS = 3;
const MAX_POINTS = 2;
const ids = fc.constantFrom('a', 'b', 'c', 'd');
const data = fc.dictionary(fc.constantFrom('x', 'y', 'z'), fc.oneof(fc.integer(), fc.string(), fc.boolean(), fc.constant(null)), { maxKeys: 3, noNullPrototype: true });

class Model {
  contexts = new Map(); // id -> { version, data, points: [{ id, version, data }] }
  events = [];
  lastPointId = -1;
  nextRevision = 1; // every create, update, restore and delete takes one
}

/** Runs `op` on the real manager and checks the outcome against `expect` (a value or an error code). */
async function check(op, expect) {
  let outcome;
  try {
    outcome = { ok: await op() };
  } catch (e) {
    outcome = { code: e.code };
  }
  if (typeof expect === 'string') {
    assert.deepEqual(outcome, { code: expect });
    return undefined;
  }
  assert.ok('ok' in outcome, `expected success, got ${outcome.code}`);
  expect(outcome.ok);
  return outcome.ok;
}

class Create {
  constructor(id, data) { Object.assign(this, { id, data }); }
  check() { return true; }
  async run(model, m) {
    const exists = model.contexts.has(this.id);
    const full = model.contexts.size >= MAX_CONTEXTS;
    await check(() => m.createContext(this.id, this.data), exists ? 'ALREADY_EXISTS' : full ? 'CAPACITY_EXCEEDED' : (s) => {
      assert.equal(s.version, 1);
      assert.equal(s.revision, model.nextRevision);
      assert.deepEqual(s.data, this.data);
    });
    if (!exists && !full) {
      const revision = model.nextRevision++;
      model.contexts.set(this.id, { version: 1, revision, data: this.data, points: [] });
      model.events.push({ type: 'created', id: this.id, version: 1, revision });
    }
  }
  toString() { return `create(${this.id}, ${JSON.stringify(this.data)})`; }
}

class Get {
  constructor(id) { this.id = id; }
  check() { return true; }
  async run(model, m) {
    const c = model.contexts.get(this.id);
    await check(() => m.getContext(this.id), c ? (s) => {
      assert.equal(s.version, c.version);
      assert.equal(s.revision, c.revision);
      assert.deepEqual(s.data, c.data);
    } : 'NOT_FOUND');
  }
  toString() { return `get(${this.id})`; }
}

class Update {
  constructor(id, data, stale) { Object.assign(this, { id, data, stale }); }
  check() { return true; }
  async run(model, m) {
    const c = model.contexts.get(this.id);
    const expectedVersion = this.stale === null ? undefined : (c?.version ?? 1) - this.stale;
    const conflict = c && expectedVersion !== undefined && expectedVersion !== c.version;
    await check(() => m.updateContext(this.id, this.data, { expectedVersion }), !c ? 'NOT_FOUND' : conflict ? 'VERSION_CONFLICT' : (s) => {
      assert.equal(s.version, c.version + 1);
      assert.equal(s.revision, model.nextRevision);
    });
    if (c && !conflict) {
      c.version += 1;
      c.revision = model.nextRevision++;
      c.data = this.data;
      model.events.push({ type: 'updated', id: this.id, version: c.version, revision: c.revision });
    }
  }
  toString() { return `update(${this.id}, ${JSON.stringify(this.data)}, stale=${this.stale})`; }
}

class Delete {
  constructor(id) { this.id = id; }
  check() { return true; }
  async run(model, m) {
    const c = model.contexts.get(this.id);
    await check(() => m.deleteContext(this.id), c ? () => {} : 'NOT_FOUND');
    if (c) {
      model.contexts.delete(this.id);
      model.events.push({ type: 'deleted', id: this.id, version: c.version, revision: model.nextRevision++ });
    }
  }
  toString() { return `delete(${this.id})`; }
}

class Snapshot {
  constructor(id) { this.id = id; }
  check() { return true; }
  async run(model, m) {
    const c = model.contexts.get(this.id);
    const p = await check(() => m.createRecoveryPoint(this.id), c ? (p) => {
      assert.equal(p.version, c.version);
      assert.deepEqual(p.data, c.data);
      assert.ok(p.id > model.lastPointId, 'recovery point ids strictly increase');
    } : 'NOT_FOUND');
    if (c) {
      model.lastPointId = p.id;
      c.points.push({ id: p.id, version: c.version, data: c.data });
      if (c.points.length > MAX_POINTS) c.points.shift();
    }
  }
  toString() { return `createRecoveryPoint(${this.id})`; }
}

class Restore {
  constructor(id, pick) { Object.assign(this, { id, pick }); }
  check() { return true; }
  async run(model, m) {
    const c = model.contexts.get(this.id);
    // Pick one of its points, or an id that is not one of them.
    const point = c?.points[this.pick];
    const pointId = point ? point.id : model.lastPointId + 1000;
    await check(() => m.restoreRecoveryPoint(this.id, pointId), c && point ? (s) => {
      assert.equal(s.version, c.version + 1);
      assert.equal(s.revision, model.nextRevision);
      assert.deepEqual(s.data, point.data);
    } : 'NOT_FOUND');
    if (c && point) {
      c.version += 1;
      c.revision = model.nextRevision++;
      c.data = point.data;
      model.events.push({ type: 'restored', id: this.id, version: c.version, revision: c.revision });
    }
  }
  toString() { return `restore(${this.id}, #${this.pick})`; }
}

class List {
  check() { return true; }
  async run(model, m) {
    const want = [...model.contexts.keys()].sort();
    assert.deepEqual(await m.listContextIds(), want);
    assert.equal(await m.len(), want.length);
    for (const id of want) {
      assert.deepEqual((await m.recoveryPoints(id)).map((p) => p.id), model.contexts.get(id).points.map((p) => p.id));
    }
  }
  toString() { return 'list()'; }
}

const commands = [
  fc.tuple(ids, data).map(([id, d]) => new Create(id, d)),
  ids.map((id) => new Get(id)),
  fc.tuple(ids, data, fc.option(fc.integer({ min: 0, max: 1 }), { nil: null })).map(([id, d, stale]) => new Update(id, d, stale)),
  ids.map((id) => new Delete(id)),
  ids.map((id) => new Snapshot(id)),
  fc.tuple(ids, fc.integer({ min: 0, max: 2 })).map(([id, pick]) => new Restore(id, pick)),
  fc.constant(new List()),
];

test('random operation sequences match the model, events included', async () => {
  await fc.assert(
    fc.asyncProperty(fc.commands(commands, { maxCommands: 60 }), async (cmds) => {
      const m = new ContextManager({ maxContexts: MAX_CONTEXTS, maxRecoveryPoints: MAX_POINTS });
      const events = collect(m);
      const model = new Model();
      await fc.asyncModelRun(() => ({ model, real: m }), cmds);
      assert.deepEqual(await events.until(model.events.length), model.events);
      events.off();
      m.free();
    }),
    { numRuns: 150 },
  );
});

/** What a manager shows: live contexts with their recovery points, and the next recovery point id. */
async function view(m) {
  const shown = [];
  for (const id of await m.listContextIds()) shown.push([await m.getContext(id), await m.recoveryPoints(id)]);
  return { shown, next: m.nextRecoveryPointId() };
}

test('the same sequences on a manager opened on a storage; a reopen shows exactly the same', async () => {
  const config = { maxContexts: MAX_CONTEXTS, maxRecoveryPoints: MAX_POINTS };
  await fc.assert(
    fc.asyncProperty(fc.commands(commands, { maxCommands: 60 }), async (cmds) => {
      const storage = new MemoryStorage();
      const { manager: m } = await ContextManager.open(storage, config);
      const events = collect(m);
      const model = new Model();
      await fc.asyncModelRun(() => ({ model, real: m }), cmds);
      assert.deepEqual(await events.until(model.events.length), model.events);
      events.off();
      const { manager: reopened, problems } = await ContextManager.open(storage, config);
      assert.deepEqual(problems, []);
      assert.deepEqual(await view(reopened), await view(m));
      reopened.free();
      m.free();
    }),
    { numRuns: 100 },
  );
});
