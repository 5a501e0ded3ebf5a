// Typed usage of contextkit, checked with tsc --strict. Each @ts-expect-error
// line must be an error, so the types are checked to be precise, not `any`.
export async function usage(): Promise<void> {
  const m = new ContextManager({ maxContexts: 100, defaultTtlMs: null });
  const s: ContextState<{ title: string; tags: string[] }> = await m.createContext('doc', { title: 't', tags: ['a'] }, { ttlMs: 1000, metadata: { owner: 'ada' } });
  const title: string = s.data.title;
  const version: number = s.version;
  const stateRevision: number = s.revision;
  void stateRevision;
  const expires: number | null = s.expiresAtMs;
  await m.updateContext('doc', { title: title + '!', tags: [] }, { expectedVersion: version });
  const got = await m.getContext<{ title: string }>('doc');
  got.data.title.toUpperCase();
  const ids: string[] = await m.listContextIds();
  const n: number = await m.len();
  const p: Snapshot = await m.createRecoveryPoint('doc');
  const points: Snapshot[] = await m.recoveryPoints('doc');
  await m.restoreRecoveryPoint('doc', p.id);
  const removed: number = await m.cleanupExpired();
  const stats: Stats = m.stats();
  const off: () => void = m.subscribe((ev: ContextEvent) => {
    if (ev.type === 'lagged') {
      const missed: number = ev.missed;
      void missed;
    } else {
      const id: string = ev.id;
      const revision: number = ev.revision;
      void id;
      void revision;
    }
  });
  off();
  m.subscribe(() => {}, { onError: (error: unknown, event: ContextEvent) => console.log(error, event.type) })();
  // @ts-expect-error onError is a function
  m.subscribe(() => {}, { onError: 'log' });

  const t = new ContextTracker(m, { syncIntervalMs: 500, autoRecovery: true, conflict: 'keepRemote' });
  await t.activateContext('doc');
  await t.updateState({ title: 'local' });
  const dirty: boolean = await t.isDirty();
  const synced: ContextState | null = await t.syncIfNeeded();
  await t.syncState();
  const active: string | null = await t.activeContextId();
  await t.applyRemote(await m.getContext('doc'));
  t.startAutoSync((e: ContextError) => e.code);
  t.stopAutoSync();

  const a = new ContextAdapter(m, { ttlMs: 60_000, maxActiveContexts: 5 });
  const cfg: ResolvedAdapterConfig = await a.getConfig();
  const evicted: number = await a.updateConfig({ maxContexts: 50 });
  const tracker: ContextTracker = await a.activateContext('doc');
  const all: ContextState[] = await a.listContexts();
  a.startAutoCleanup();
  a.stopAutoCleanup();
  const ap: Snapshot = await a.createRecoveryPoint('doc');
  const aps: Snapshot[] = await a.recoveryPoints('doc');
  const ar: ContextState = await a.restoreRecoveryPoint('doc', ap.id);
  a.subscribe((ev: ContextEvent) => ev.type)();
  // @ts-expect-error the adapter's TTL applies to its updates
  await a.updateContext('doc', {}, { ttlMs: 5 });
  await a.updateContext('doc', {}, { expectedVersion: 1, expectedRevision: ar.revision });
  await m.updateContext('doc', { title: 't', tags: [] }, { ttlMs: 60_000, expectedVersion: null });
  m.startAutoCleanup(30_000);
  m.startAutoCleanup();
  m.stopAutoCleanup();
  void [aps, ar];

  // Persistence: ContextManager.open over the shipped storages or any object with the four methods.
  const memory: ContextStorage = new MemoryStorage();
  const opened: OpenedManager = await ContextManager.open(memory, { maxContexts: 10 });
  const pm: ContextManager = opened.manager;
  const problems: ContextError[] = opened.problems;
  const files = new FileStorage('./contexts');
  const dirPath: string = files.dir;
  const filePath: string = files.pathOf('c/doc');
  const bulk: StorageEntries = await files.entries();
  const pairs: Array<[string, string]> = bulk.entries;
  const closed: Promise<void> = files.close();
  const browser: ContextStorage = new IndexedDBStorage('app', 'contexts');
  const idb = new IndexedDBStorage('app');
  const idbNames: [string, string] = [idb.databaseName, idb.storeName];
  // @ts-expect-error the names are read-only
  idb.storeName = 'other';
  const map = new Map<string, string>();
  const own: ContextStorage = {
    get: async (key) => map.get(key),
    put: async (key, value) => {
      map.set(key, value);
    },
    delete: async (key) => {
      map.delete(key);
    },
    list: async () => [...map.keys()],
  };
  await ContextManager.open(own);
  const nextPoint: number = pm.nextRecoveryPointId();

  try {
    await m.getContext('missing');
  } catch (e) {
    if (e instanceof ContextError && e.code === 'VERSION_CONFLICT') {
      const expected: number | undefined = e.expected;
      void expected;
    }
    if (e instanceof ContextError && e.code === 'NOT_FOUND') {
      const id: string | undefined = e.id;
      const point: number | undefined = e.recoveryPoint;
      void [id, point];
    }
  }

  // Interfaces (no index signature), `as const` data and readonly arrays are JSON data too.
  interface Plain {
    title: string;
    tags: readonly string[];
    nested: { at: number | null; note?: string };
  }
  const plain: Plain = { title: 'p', tags: ['x'], nested: { at: null } };
  const ps: ContextState<Plain> = await m.createContext<Plain>('plain', plain);
  const readTags: readonly string[] = ps.data.tags;
  const got2: ContextState<Plain> = await m.getContext<Plain>('plain');
  await m.updateContext('plain', { title: 'q', tags: ['a', 'b'], nested: { at: 1 } } as const);
  const frozen = { list: ['a', 'b'] as readonly string[], deep: [[1, 2], [3]] } as const;
  await m.createContext('frozen', frozen);
  await t.updateState<Plain>(plain);
  // A parsed body whose fields are not known yet: checked when the call runs.
  const body: Record<string, unknown> = JSON.parse('{"a":1}');
  await m.createContext('body', body);
  await m.updateContext('body', { nested: body, list: [body.a] });
  interface WithDate {
    when: Date;
  }
  // @ts-expect-error a Date is not JSON
  await m.createContext<WithDate>('d', { when: new Date() });
  // @ts-expect-error data is an object, not an array
  await m.createContext('x', ['a']);
  void [readTags, got2];

  // @ts-expect-error ids are strings
  await m.getContext(1);
  // @ts-expect-error data must be a JSON object
  await m.createContext('x', 'text');
  // @ts-expect-error functions are not JSON
  await m.createContext('x', { f: () => 1 });
  // @ts-expect-error bigint is not JSON
  await m.createContext('x', { n: 1n });
  // @ts-expect-error unknown config key
  new ContextManager({ maxContext: 1 });
  // @ts-expect-error conflict policies are a closed set
  new ContextTracker(m, { conflict: 'merge' });
  // @ts-expect-error states are not any
  const wrong: string = s.version;
  // @ts-expect-error events are a discriminated union
  m.subscribe((ev) => ev.missed.toFixed());
  // @ts-expect-error error codes are a closed set
  const code: ContextError['code'] = 'OOPS';
  // @ts-expect-error a recovery point is a number
  const point: ContextError['recoveryPoint'] = '3';
  // @ts-expect-error a storage needs put
  await ContextManager.open({ get: async () => undefined, delete: async () => {}, list: async () => [] });
  // @ts-expect-error stored values are JSON text
  await ContextManager.open({ ...own, get: async () => 42 });
  // @ts-expect-error open resolves to { manager, problems }, not a manager
  (await ContextManager.open(own)).createContext('x', {});

  void [s, expires, ids, n, points, removed, stats, dirty, synced, active, cfg, evicted, tracker, all, wrong, code];
  void [problems, dirPath, filePath, pairs, closed, browser, idbNames, nextPoint];
}

// Shared mode over Redis (Node): connect() resolves to a manager.
const backend = new RedisBackend({ url: 'redis://127.0.0.1:6379', namespace: 'app', timeoutMs: 500 });
const ns: string = backend.namespace;
const sharedManager: Promise<ContextManager> = ContextManager.connect(backend, { maxContexts: 10 });
void ns;
void sharedManager;
// Reads from memory, at most a second old.
new RedisBackend({ url: 'redis://127.0.0.1:6379', namespace: 'app', maxStaleMs: 1000 });
// @ts-expect-error maxStaleMs is a number of milliseconds
new RedisBackend({ url: 'redis://127.0.0.1:6379', namespace: 'app', maxStaleMs: '1s' });
// @ts-expect-error a RedisBackend needs a namespace
new RedisBackend({ url: 'redis://127.0.0.1:6379' });
// @ts-expect-error connect takes a shared backend, not a storage
ContextManager.connect(new MemoryStorage());
