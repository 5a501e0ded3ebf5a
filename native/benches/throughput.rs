//! Throughput of contextkit against what its users would otherwise use, in one run.
//!
//! Every store runs the same workloads on one tokio multi-thread runtime with
//! two workers, at 1, 4, 16 and 64 concurrent tasks:
//!
//! - **contextkit**: `ContextManager` (sharded, `get_context` shares an `Arc`);
//! - **old pattern**: `tokio::sync::RwLock<HashMap<String, State>>` whose state
//!   holds `HashMap<String, String>` data that every read deep-clones, checking
//!   under a read lock and writing under a separate write lock;
//! - **moka**: `moka::future::Cache<String, Arc<Value>>` (get / insert / invalidate);
//! - **dashmap**: `DashMap<String, Entry>`, a synchronous ceiling.
//!
//! Workloads: read-only (100% get), read-heavy (90% get / 10% update),
//! write-heavy (50/50), create/delete churn and recovery-point creation, over
//! 1,000 and 100,000 contexts with payloads of 10 small fields and of 10 KB
//! (100,000 × 10 KB: 1 GB per store, about 10 GB at the peak). Each task
//! yields to the scheduler every [`YIELD_EVERY`] operations, as a task serving
//! requests would between them, so tasks interleave and contend. For each
//! workload and task count the four stores are measured back to back, so the
//! figures a table row compares are taken seconds apart.
//!
//! After criterion's own report, the harness prints one Markdown table of
//! operations per second per workload and store, with contextkit's ratios.
//!
//! ```text
//! cargo bench -p contextkit --bench throughput                  # full run
//! cargo bench -p contextkit --bench throughput -- --test        # each benchmark once
//! CONTEXTKIT_BENCH_SMOKE=1 cargo bench -p contextkit --bench throughput -- --test
//! ```
//! `CONTEXTKIT_BENCH_SMOKE=1` also shrinks the stores (smoke mode).

use contextkit::{ContextManager, ManagerConfig, Value};
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, Throughput};
use dashmap::DashMap;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Write as _;
use std::future::Future;
use std::hint::black_box;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;

/// Operations in one criterion iteration, split evenly across the tasks.
const OPS_PER_ITER: u64 = 64;
/// Each task yields to the scheduler after this many operations.
const YIELD_EVERY: u64 = 16;
/// Concurrent task counts measured.
const TASKS: [usize; 4] = [1, 4, 16, 64];
/// Recovery points kept per context (contextkit's default).
const MAX_SNAPSHOTS: usize = 10;

/// The payload of every context: 10 string fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Payload {
    /// 10 fields of 8 characters.
    Small,
    /// 10 fields of 1,000 characters: 10 KB.
    Large,
}

impl Payload {
    fn name(self) -> &'static str {
        match self {
            Self::Small => "10 fields",
            Self::Large => "10 KB",
        }
    }

    fn field_len(self) -> usize {
        match self {
            Self::Small => 8,
            Self::Large => 1_000,
        }
    }

    fn fields(self) -> Vec<(String, String)> {
        (0..10)
            .map(|i| {
                let c = char::from(b'a' + i as u8);
                (format!("field{i}"), c.to_string().repeat(self.field_len()))
            })
            .collect()
    }

    fn json(self) -> Value {
        Value::Object(
            self.fields()
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect(),
        )
    }

    fn map(self) -> HashMap<String, String> {
        self.fields().into_iter().collect()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Workload {
    ReadOnly,
    ReadHeavy,
    WriteHeavy,
    Churn,
    RecoveryPoints,
}

impl Workload {
    const ALL: [Self; 5] = [
        Self::ReadOnly,
        Self::ReadHeavy,
        Self::WriteHeavy,
        Self::Churn,
        Self::RecoveryPoints,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::ReadOnly => "read-only (100% get)",
            Self::ReadHeavy => "read-heavy (90% get / 10% update)",
            Self::WriteHeavy => "write-heavy (50% get / 50% update)",
            Self::Churn => "create/delete churn",
            Self::RecoveryPoints => "recovery-point creation",
        }
    }

    fn slug(self) -> &'static str {
        match self {
            Self::ReadOnly => "read_only",
            Self::ReadHeavy => "read_heavy",
            Self::WriteHeavy => "write_heavy",
            Self::Churn => "churn",
            Self::RecoveryPoints => "recovery",
        }
    }

    /// Percentage of operations that are updates (the rest are gets).
    fn update_percent(self) -> u64 {
        match self {
            Self::ReadOnly => 0,
            Self::ReadHeavy => 10,
            _ => 50,
        }
    }
}

/// What every measured store can do. Each operation must succeed: a failure
/// panics, so a broken benchmark never reports a number.
trait Store: Send + Sync + 'static {
    const NAME: &'static str;
    /// Whether it has recovery points.
    const SNAPSHOTS: bool = true;
    fn get(&self, id: &str) -> impl Future<Output = ()> + Send;
    fn update(&self, id: &str, p: &Data) -> impl Future<Output = ()> + Send;
    fn create(&self, id: &str, p: &Data) -> impl Future<Output = ()> + Send;
    fn delete(&self, id: &str) -> impl Future<Output = ()> + Send;
    fn snapshot(&self, id: &str) -> impl Future<Output = ()> + Send;
}

/// The payload in each store's own form, built once; writes clone it.
struct Data {
    json: Value,
    map: HashMap<String, String>,
}

// ---------------------------------------------------------------- contextkit

struct Kit(ContextManager);

impl Store for Kit {
    const NAME: &'static str = "contextkit";

    async fn get(&self, id: &str) {
        black_box(self.0.get_context(id).await.expect("get"));
    }
    async fn update(&self, id: &str, p: &Data) {
        let data = p.json.clone();
        black_box(self.0.update_context(id, data, None).await.expect("update"));
    }
    async fn create(&self, id: &str, p: &Data) {
        let data = p.json.clone();
        black_box(self.0.create_context(id, data).await.expect("create"));
    }
    async fn delete(&self, id: &str) {
        self.0.delete_context(id).await.expect("delete");
    }
    async fn snapshot(&self, id: &str) {
        black_box(self.0.create_recovery_point(id).await.expect("snapshot"));
    }
}

// ------------------------------------------------------------- old pattern

/// A context as the old pattern keeps it. Reads copy every field.
#[derive(Clone)]
#[allow(dead_code)]
struct OldState {
    id: String,
    version: u64,
    created_at_ms: u64,
    updated_at_ms: u64,
    data: HashMap<String, String>,
    metadata: BTreeMap<String, String>,
}

/// One lock around every context, another around every recovery point.
#[derive(Default)]
struct Old {
    contexts: tokio::sync::RwLock<HashMap<String, OldState>>,
    snapshots: tokio::sync::RwLock<HashMap<String, VecDeque<OldState>>>,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Store for Old {
    const NAME: &'static str = "old pattern";

    async fn get(&self, id: &str) {
        let state = self.contexts.read().await.get(id).cloned();
        black_box(state.expect("get"));
    }
    async fn update(&self, id: &str, p: &Data) {
        // Check under the read lock ...
        let (version, created_at_ms) = {
            let map = self.contexts.read().await;
            let s = map.get(id).expect("update");
            (s.version, s.created_at_ms)
        };
        let state = OldState {
            id: id.to_owned(),
            version: version + 1,
            created_at_ms,
            updated_at_ms: now_ms(),
            data: p.map.clone(),
            metadata: BTreeMap::new(),
        };
        // ... write under a separate write lock.
        self.contexts.write().await.insert(id.to_owned(), state);
    }
    async fn create(&self, id: &str, p: &Data) {
        assert!(!self.contexts.read().await.contains_key(id), "create");
        let now = now_ms();
        let state = OldState {
            id: id.to_owned(),
            version: 1,
            created_at_ms: now,
            updated_at_ms: now,
            data: p.map.clone(),
            metadata: BTreeMap::new(),
        };
        self.contexts.write().await.insert(id.to_owned(), state);
    }
    async fn delete(&self, id: &str) {
        assert!(self.contexts.read().await.contains_key(id), "delete");
        self.contexts.write().await.remove(id);
        self.snapshots.write().await.remove(id);
    }
    async fn snapshot(&self, id: &str) {
        let state = self
            .contexts
            .read()
            .await
            .get(id)
            .cloned()
            .expect("snapshot");
        let mut snapshots = self.snapshots.write().await;
        let list = snapshots.entry(id.to_owned()).or_default();
        list.push_back(state);
        while list.len() > MAX_SNAPSHOTS {
            list.pop_front();
        }
    }
}

// -------------------------------------------------------------------- moka

struct Moka(moka::future::Cache<String, Arc<Value>>);

impl Store for Moka {
    const NAME: &'static str = "moka";
    const SNAPSHOTS: bool = false;

    async fn get(&self, id: &str) {
        black_box(self.0.get(id).await.expect("get"));
    }
    async fn update(&self, id: &str, p: &Data) {
        self.0.insert(id.to_owned(), Arc::new(p.json.clone())).await;
    }
    async fn create(&self, id: &str, p: &Data) {
        self.0.insert(id.to_owned(), Arc::new(p.json.clone())).await;
    }
    async fn delete(&self, id: &str) {
        self.0.invalidate(id).await;
    }
    async fn snapshot(&self, _id: &str) {
        unreachable!("moka has no recovery points")
    }
}

// ----------------------------------------------------------------- dashmap

struct DashEntry {
    version: u64,
    state: Arc<Value>,
    snapshots: VecDeque<Arc<Value>>,
}

struct Dash(DashMap<String, DashEntry>);

impl Store for Dash {
    const NAME: &'static str = "dashmap";

    async fn get(&self, id: &str) {
        black_box(Arc::clone(&self.0.get(id).expect("get").state));
    }
    async fn update(&self, id: &str, p: &Data) {
        let state = Arc::new(p.json.clone());
        let mut e = self.0.get_mut(id).expect("update");
        e.version += 1;
        e.state = state;
    }
    async fn create(&self, id: &str, p: &Data) {
        let state = Arc::new(p.json.clone());
        match self.0.entry(id.to_owned()) {
            dashmap::Entry::Vacant(v) => {
                v.insert(DashEntry {
                    version: 1,
                    state,
                    snapshots: VecDeque::new(),
                });
            }
            dashmap::Entry::Occupied(_) => panic!("create"),
        }
    }
    async fn delete(&self, id: &str) {
        self.0.remove(id).expect("delete");
    }
    async fn snapshot(&self, id: &str) {
        let mut e = self.0.get_mut(id).expect("snapshot");
        let state = Arc::clone(&e.state);
        e.snapshots.push_back(state);
        while e.snapshots.len() > MAX_SNAPSHOTS {
            e.snapshots.pop_front();
        }
    }
}

// ----------------------------------------------------------------- harness

/// A small, fast generator; each task has its own.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

fn ids(n: usize) -> Arc<[String]> {
    (0..n).map(|i| format!("context-{i:06}")).collect()
}

/// One task's share of a sample: `ops` operations of `workload`.
async fn worker<S: Store>(
    store: Arc<S>,
    ids: Arc<[String]>,
    data: Arc<Data>,
    workload: Workload,
    task: usize,
    run: u64,
    ops: u64,
) {
    let mut rng = Rng((task as u64 + 1).wrapping_mul(0x1234_5678_9ABC_DEF1) ^ run);
    let mut churn_id = String::new();
    let mut i = 0;
    while i < ops {
        match workload {
            Workload::Churn => {
                churn_id.clear();
                let _ = write!(churn_id, "churn-{run}-{task}-{i}");
                store.create(&churn_id, &data).await;
                store.delete(&churn_id).await;
                i += 2;
            }
            Workload::RecoveryPoints => {
                let id = &ids[(rng.next() % ids.len() as u64) as usize];
                store.snapshot(id).await;
                i += 1;
            }
            _ => {
                let r = rng.next();
                let id = &ids[((r >> 8) % ids.len() as u64) as usize];
                if r % 100 < workload.update_percent() {
                    store.update(id, &data).await;
                } else {
                    store.get(id).await;
                }
                i += 1;
            }
        }
        if i % YIELD_EVERY == 0 {
            tokio::task::yield_now().await;
        }
    }
}

/// A filled store with its ids and payload.
struct Fixture<S> {
    store: Arc<S>,
    ids: Arc<[String]>,
    data: Arc<Data>,
}

/// Samples recorded by criterion's routine, per benchmark: (operations, time).
type Samples = Mutex<BTreeMap<String, Vec<(u64, Duration)>>>;

struct Harness {
    rt: Runtime,
    samples: Samples,
    runs: Mutex<u64>,
    sample_size: usize,
}

impl Harness {
    /// Runs `iters` criterion iterations with `tasks` tasks; returns the wall time.
    fn sample<S: Store>(
        &self,
        key: &str,
        fx: &Fixture<S>,
        workload: Workload,
        tasks: usize,
        iters: u64,
    ) -> Duration {
        let run = {
            let mut r = self.runs.lock().expect("runs");
            *r += 1;
            *r
        };
        let per_task = (iters * OPS_PER_ITER)
            .div_ceil(tasks as u64)
            .next_multiple_of(2);
        let elapsed = self.rt.block_on(async {
            let start = Instant::now();
            let handles: Vec<_> = (0..tasks)
                .map(|t| {
                    tokio::spawn(worker(
                        Arc::clone(&fx.store),
                        Arc::clone(&fx.ids),
                        Arc::clone(&fx.data),
                        workload,
                        t,
                        run,
                        per_task,
                    ))
                })
                .collect();
            for h in handles {
                h.await.expect("benchmark task failed");
            }
            start.elapsed()
        });
        self.samples
            .lock()
            .expect("samples")
            .entry(key.to_owned())
            .or_default()
            .push((per_task * tasks as u64, elapsed));
        // Criterion sees the time per OPS_PER_ITER operations.
        elapsed.mul_f64((iters * OPS_PER_ITER) as f64 / (per_task * tasks as u64) as f64)
    }

    /// The fewest samples recorded for any benchmark.
    fn sample_size_seen(&self) -> usize {
        let samples = self.samples.lock().expect("samples");
        samples.values().map(Vec::len).min().unwrap_or(0)
    }

    /// Operations per second over the measurement samples (criterion's last
    /// `sample_size` calls; its warm-up calls come before them).
    fn ops_per_sec(&self, key: &str) -> Option<f64> {
        let samples = self.samples.lock().expect("samples");
        let s = samples.get(key)?;
        let tail = &s[s.len().saturating_sub(self.sample_size)..];
        let ops: u64 = tail.iter().map(|(o, _)| o).sum();
        let time: Duration = tail.iter().map(|(_, d)| *d).sum();
        Some(ops as f64 / time.as_secs_f64())
    }
}

fn key(workload: Workload, n: usize, payload: Payload, store: &str, tasks: usize) -> String {
    format!("{}/{n}/{}/{store}/{tasks}", workload.slug(), payload.name())
}

/// A store built and filled on first use, outside any measurement, so
/// benchmarks left out by a command-line filter cost nothing.
struct Lazy<S> {
    make: Option<Box<dyn FnOnce() -> S>>,
    store: Option<Arc<S>>,
}

impl<S: Store> Lazy<S> {
    fn new(make: impl FnOnce() -> S + 'static) -> Self {
        Self {
            make: Some(Box::new(make)),
            store: None,
        }
    }

    fn filled(&mut self, h: &Harness, ids: &[String], data: &Data) -> Arc<S> {
        if let Some(s) = &self.store {
            return Arc::clone(s);
        }
        let s = Arc::new(self.make.take().expect("store made once")());
        h.rt.block_on(async {
            for id in ids {
                s.create(id, data).await;
            }
        });
        self.store = Some(Arc::clone(&s));
        s
    }
}

/// What the four stores share for one store size and payload.
struct Cell<'a> {
    h: &'a Harness,
    ids: &'a Arc<[String]>,
    data: &'a Arc<Data>,
    n: usize,
    payload: Payload,
    workload: Workload,
    tasks: usize,
}

impl Cell<'_> {
    /// Measures one store on this cell's workload and task count.
    fn bench<S: Store>(&self, g: &mut BenchmarkGroup<'_, WallTime>, lazy: &mut Lazy<S>) {
        let w = self.workload;
        if w == Workload::RecoveryPoints && !S::SNAPSHOTS {
            return;
        }
        let k = key(w, self.n, self.payload, S::NAME, self.tasks);
        g.bench_function(BenchmarkId::new(S::NAME, self.tasks), |b| {
            let fx = Fixture {
                store: lazy.filled(self.h, self.ids, self.data),
                ids: Arc::clone(self.ids),
                data: Arc::clone(self.data),
            };
            b.iter_custom(|iters| self.h.sample(&k, &fx, w, self.tasks, iters));
        });
    }
}

/// Every workload and task count of one store size and payload. The four
/// stores are measured one after the other for each task count (in an order
/// that rotates), so the figures compared in a row of the tables are taken
/// seconds apart and a change in the machine's speed during the run falls
/// on all of them alike.
fn bench_config(c: &mut Criterion, h: &Harness, cfg: &Config) {
    let (n, payload) = (cfg.n, cfg.payload);
    let ids = ids(n);
    let data = Arc::new(Data {
        json: payload.json(),
        map: payload.map(),
    });
    let mut kit = Lazy::new(move || Kit(manager(n)));
    let mut old = Lazy::new(Old::default);
    let mut moka = Lazy::new(move || Moka(moka::future::Cache::new((n + 100_000) as u64)));
    let mut dash = Lazy::new(|| Dash(DashMap::new()));
    for &workload in cfg.workloads {
        let mut g = c.benchmark_group(format!("{}/{n}/{}", workload.slug(), payload.name()));
        g.throughput(Throughput::Elements(OPS_PER_ITER));
        for (i, tasks) in TASKS.into_iter().enumerate() {
            let cell = Cell {
                h,
                ids: &ids,
                data: &data,
                n,
                payload,
                workload,
                tasks,
            };
            for store in 0..STORES.len() {
                match (store + i) % STORES.len() {
                    0 => cell.bench(&mut g, &mut kit),
                    1 => cell.bench(&mut g, &mut old),
                    2 => cell.bench(&mut g, &mut moka),
                    _ => cell.bench(&mut g, &mut dash),
                }
            }
        }
        g.finish();
    }
    // Dropping a large store takes a moment; this is outside any measurement.
}

/// One store size and payload, and the workloads measured on it.
struct Config {
    n: usize,
    payload: Payload,
    workloads: &'static [Workload],
}

fn manager(n: usize) -> ContextManager {
    ContextManager::new(ManagerConfig {
        // Room for the churn workload's transient contexts.
        max_contexts: n + 100_000,
        max_recovery_points: MAX_SNAPSHOTS,
        ..ManagerConfig::default()
    })
}

fn fmt_ops(v: Option<f64>) -> String {
    match v {
        None => "—".into(),
        Some(v) if v >= 1e6 => format!("{:.2} M", v / 1e6),
        Some(v) => format!("{:.0} k", v / 1e3),
    }
}

fn fmt_ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) => format!("{:.2}×", a / b),
        _ => "—".into(),
    }
}

const STORES: [&str; 4] = [Kit::NAME, Old::NAME, Moka::NAME, Dash::NAME];

fn print_tables(h: &Harness, configs: &[Config], smoke: bool) {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n## Throughput (operations per second; tokio multi-thread runtime, 2 workers)\n"
    );
    if smoke || h.sample_size_seen() < h.sample_size {
        let _ = writeln!(
            out,
            "SMOKE OR TEST MODE: one sample each, not a measurement.\n"
        );
    }
    let mut checks = Vec::new();
    for cfg in configs {
        for &w in cfg.workloads {
            let get = |store: &str, tasks: usize| {
                h.ops_per_sec(&key(w, cfg.n, cfg.payload, store, tasks))
            };
            let _ = writeln!(
                out,
                "### {}, {} contexts, payload {}\n",
                w.name(),
                cfg.n,
                cfg.payload.name()
            );
            let _ = writeln!(
                out,
                "| tasks | contextkit | old pattern | moka | dashmap | ck / old | ck / moka | ck / dashmap |"
            );
            let _ = writeln!(out, "|---:|---:|---:|---:|---:|---:|---:|---:|");
            for tasks in TASKS {
                let v: Vec<_> = STORES.iter().map(|s| get(s, tasks)).collect();
                let _ = writeln!(
                    out,
                    "| {tasks} | {} | {} | {} | {} | {} | {} | {} |",
                    fmt_ops(v[0]),
                    fmt_ops(v[1]),
                    fmt_ops(v[2]),
                    fmt_ops(v[3]),
                    fmt_ratio(v[0], v[1]),
                    fmt_ratio(v[0], v[2]),
                    fmt_ratio(v[0], v[3]),
                );
                if matches!(w, Workload::ReadHeavy) {
                    checks.push(check(
                        format!(
                            "read-heavy ck/old ≥ 5, {} ctx {}, {tasks} tasks",
                            cfg.n,
                            cfg.payload.name()
                        ),
                        v[0],
                        v[1],
                        5.0,
                    ));
                    checks.push(check(
                        format!(
                            "read-heavy ck/moka ≥ 0.5, {} ctx {}, {tasks} tasks",
                            cfg.n,
                            cfg.payload.name()
                        ),
                        v[0],
                        v[2],
                        0.5,
                    ));
                }
                if matches!(w, Workload::ReadOnly) {
                    checks.push(check(
                        format!(
                            "get ck/moka ≥ 0.5, {} ctx {}, {tasks} tasks",
                            cfg.n,
                            cfg.payload.name()
                        ),
                        v[0],
                        v[2],
                        0.5,
                    ));
                }
            }
            let scale: Vec<_> = STORES
                .iter()
                .map(|s| fmt_ratio(get(s, 64), get(s, 1)))
                .collect();
            let _ = writeln!(
                out,
                "| 64 / 1 | {} | {} | {} | {} | | | |\n",
                scale[0], scale[1], scale[2], scale[3]
            );
            checks.push(check(
                format!(
                    "{} 64/1 tasks ≥ 0.8, {} ctx {}",
                    w.slug(),
                    cfg.n,
                    cfg.payload.name()
                ),
                get(Kit::NAME, 64),
                get(Kit::NAME, 1),
                0.8,
            ));
        }
    }
    let _ = writeln!(out, "### Targets (ratios from this run)\n");
    let _ = writeln!(out, "| target | ratio | met |");
    let _ = writeln!(out, "|---|---:|:---:|");
    for c in checks {
        let _ = writeln!(out, "{c}");
    }
    println!("{out}");
}

fn check(what: String, a: Option<f64>, b: Option<f64>, min: f64) -> String {
    match (a, b) {
        (Some(a), Some(b)) => {
            let r = a / b;
            let met = if r >= min { "yes" } else { "**no**" };
            format!("| {what} | {r:.2}× | {met} |")
        }
        _ => format!("| {what} | — | — |"),
    }
}

fn main() {
    let smoke = std::env::var_os("CONTEXTKIT_BENCH_SMOKE").is_some_and(|v| v != "0");
    let (small, large) = if smoke {
        (200, 2_000)
    } else {
        (1_000, 100_000)
    };
    let configs = [
        Config {
            n: small,
            payload: Payload::Small,
            workloads: &Workload::ALL,
        },
        Config {
            n: small,
            payload: Payload::Large,
            workloads: &Workload::ALL,
        },
        Config {
            n: large,
            payload: Payload::Small,
            workloads: &Workload::ALL,
        },
        Config {
            n: large,
            payload: Payload::Large,
            workloads: &Workload::ALL,
        },
    ];
    let sample_size = 20;
    let mut c = Criterion::default()
        .sample_size(sample_size)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_millis(1_000))
        .configure_from_args();
    let h = Harness {
        rt: tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime"),
        samples: Mutex::new(BTreeMap::new()),
        runs: Mutex::new(0),
        sample_size,
    };
    for cfg in &configs {
        bench_config(&mut c, &h, cfg);
    }
    c.final_summary();
    print_tables(&h, &configs, smoke);
}
