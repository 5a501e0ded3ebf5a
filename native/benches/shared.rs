//! Shared mode over Redis, against what users of Redis would otherwise do,
//! in one run on one local `redis-server` that the harness starts itself.
//!
//! At 1, 16 and 64 concurrent tasks on a tokio multi-thread runtime (two
//! workers), each workload runs for a fixed time and every operation's
//! latency is recorded:
//!
//! - **raw GET / raw SET**: redis-rs on one multiplexed connection, a 10-field
//!   JSON payload as bytes (no parsing): the floor;
//! - **GET then SET**: the lost-update pattern of key-value stores (read,
//!   change, write back with no check);
//! - **Lua CAS**: the least an atomic compare-and-set on Redis costs: one
//!   script call that reads a version, compares it and writes the new one
//!   with the data (no event, no revision, no retry safety);
//! - **contextkit get**: `get_context` (linearizable: read from Redis, parsed);
//! - **contextkit cached get**: `get_context` of a manager with
//!   `cached_reads(100 ms)` (client tracking drops changed entries);
//! - **contextkit CAS update**: `update_context` with the expected version
//!   (one Redis function call: checks, writes, appends the event);
//! - **contextkit create**: `create_context` of fresh ids.
//!
//! ```text
//! cargo bench -p contextkit --features redis --bench shared
//! CONTEXTKIT_BENCH_SMOKE=1 cargo bench -p contextkit --features redis --bench shared
//! ```

use contextkit::{ContextManager, ManagerConfig, RedisBackend, Value, json};
use redis::aio::MultiplexedConnection;
use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const TASKS: [usize; 3] = [1, 16, 64];
const KEYS: usize = 1_000;

fn smoke() -> bool {
    std::env::var_os("CONTEXTKIT_BENCH_SMOKE").is_some()
}

fn payload(n: u64) -> Value {
    let mut map = serde_json::Map::new();
    for i in 0..10_u8 {
        map.insert(
            format!("field{i}"),
            json!(format!("{}{n:07}", char::from(b'a' + i))),
        );
    }
    Value::Object(map)
}

struct Server(Child, u16);

impl Server {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let dir = std::env::temp_dir().join(format!("contextkit-bench-{port}"));
        std::fs::create_dir_all(&dir).unwrap();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server");
        for _ in 0..500 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Server(child, port)
    }
    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.1)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What every task of a workload holds: its own handles, so that an
/// operation touches no reference count or counter that another task does.
#[derive(Clone)]
struct Ctx {
    conn: MultiplexedConnection,
    manager: ContextManager,
    cached: ContextManager,
    memory: ContextManager,
    /// `k0`…: the contexts' ids; `raw:0`…: the raw keys.
    ids: Arc<Vec<String>>,
    raw: Arc<Vec<String>>,
    text: Arc<String>,
    /// The last version each context was seen at (contextkit, Lua CAS).
    versions: Arc<Vec<AtomicU64>>,
    cas_versions: Arc<Vec<AtomicU64>>,
    cas: Arc<redis::Script>,
    created: Arc<AtomicU64>,
}

type Fut<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;
/// One operation: `op(ctx, task, n)` for the `n`-th call of task `task`.
type Op = for<'a> fn(&'a mut Ctx, usize, u64) -> Fut<'a>;

/// Runs `op` from `tasks` tasks for `time`; ops/s and latencies (µs).
async fn measure(ctx: &Ctx, tasks: usize, time: Duration, op: Op) -> (f64, f64, f64) {
    let start = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let mut ctx = ctx.clone();
            tokio::spawn(async move {
                let mut lat = Vec::with_capacity(1 << 16);
                let mut t0 = Instant::now();
                for n in 0.. {
                    op(&mut ctx, t, n * tasks as u64 + t as u64).await;
                    // One clock read per call: its end is the next one's start.
                    let t1 = Instant::now();
                    lat.push((t1 - t0).as_nanos() as u32);
                    if t1 - start >= time {
                        break;
                    }
                    t0 = t1;
                }
                lat
            })
        })
        .collect();
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.unwrap());
    }
    let secs = start.elapsed().as_secs_f64();
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 - 1.0) * p) as usize)
            .map_or(0.0, |&ns| f64::from(ns) / 1e3)
    };
    (all.len() as f64 / secs, pct(0.5), pct(0.99))
}

fn raw_get(c: &mut Ctx, _: usize, n: u64) -> Fut<'_> {
    Box::pin(async move {
        let v: Option<Vec<u8>> = redis::cmd("GET")
            .arg(&c.raw[n as usize % KEYS])
            .query_async(&mut c.conn)
            .await
            .unwrap();
        std::hint::black_box(v);
    })
}

fn raw_set(c: &mut Ctx, _: usize, n: u64) -> Fut<'_> {
    Box::pin(async move {
        let () = redis::cmd("SET")
            .arg(&c.raw[n as usize % KEYS])
            .arg(&*c.text)
            .query_async(&mut c.conn)
            .await
            .unwrap();
    })
}

fn get_then_set(c: &mut Ctx, _: usize, n: u64) -> Fut<'_> {
    Box::pin(async move {
        let key = &c.raw[n as usize % KEYS];
        let v: Vec<u8> = redis::cmd("GET")
            .arg(key)
            .query_async(&mut c.conn)
            .await
            .unwrap();
        let mut data: Value = serde_json::from_slice(&v).unwrap();
        data["field0"] = json!(n.to_string());
        let () = redis::cmd("SET")
            .arg(key)
            .arg(serde_json::to_string(&data).unwrap())
            .query_async(&mut c.conn)
            .await
            .unwrap();
    })
}

/// The context a writing task `task` updates at its `n`-th call: each task
/// has its own, so that every compare-and-set succeeds.
fn own_key(task: usize, n: u64) -> usize {
    (task + 64 * (n as usize % (KEYS / 64))) % KEYS
}

fn lua_cas(c: &mut Ctx, task: usize, n: u64) -> Fut<'_> {
    Box::pin(async move {
        let k = own_key(task, n);
        let expected = c.cas_versions[k].load(Ordering::Relaxed);
        let data = serde_json::to_string(&payload(n)).unwrap();
        let v: i64 = c
            .cas
            .key(format!("cas:{k}"))
            .arg(expected)
            .arg(data)
            .invoke_async(&mut c.conn)
            .await
            .unwrap();
        assert!(v > 0, "the compare-and-set of cas:{k} failed");
        c.cas_versions[k].store(v as u64, Ordering::Relaxed);
    })
}

/// A get of the `n`-th id from the manager `pick` chooses.
fn get_from(c: &mut Ctx, n: u64, pick: fn(&Ctx) -> &ContextManager) -> Fut<'_> {
    Box::pin(async move {
        let id = &c.ids[n as usize % KEYS];
        std::hint::black_box(pick(c).get_context(id).await.unwrap());
    })
}

fn ck_get(c: &mut Ctx, _: usize, n: u64) -> Fut<'_> {
    get_from(c, n, |c| &c.manager)
}

fn ck_cached_get(c: &mut Ctx, _: usize, n: u64) -> Fut<'_> {
    get_from(c, n, |c| &c.cached)
}

fn memory_get(c: &mut Ctx, _: usize, n: u64) -> Fut<'_> {
    get_from(c, n, |c| &c.memory)
}

fn ck_update(c: &mut Ctx, task: usize, n: u64) -> Fut<'_> {
    Box::pin(async move {
        let k = own_key(task, n);
        let expected = c.versions[k].load(Ordering::Relaxed);
        let s = c
            .manager
            .update_context(&c.ids[k], payload(n), Some(expected))
            .await
            .unwrap();
        c.versions[k].store(s.version, Ordering::Relaxed);
    })
}

fn ck_create(c: &mut Ctx, _: usize, _: u64) -> Fut<'_> {
    Box::pin(async move {
        let n = c.created.fetch_add(1, Ordering::Relaxed);
        c.manager
            .create_context(&format!("new{n}"), payload(n))
            .await
            .unwrap();
    })
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = Server::start();
    let time = if smoke() {
        Duration::from_millis(100)
    } else {
        Duration::from_secs(3)
    };
    // `CONTEXTKIT_BENCH_ONLY="raw GET,contextkit get"`: only these rows.
    let only = std::env::var("CONTEXTKIT_BENCH_ONLY").ok();
    let mut table = String::new();
    rt.block_on(async {
        let client = redis::Client::open(server.url()).unwrap();
        let conn = client.get_multiplexed_async_connection().await.unwrap();
        let config = ManagerConfig {
            max_contexts: 10_000_000,
            ..ManagerConfig::default()
        };
        let manager = ContextManager::builder(config.clone())
            .connect(RedisBackend::new(&server.url(), "bench").unwrap())
            .await
            .unwrap();
        let memory = ContextManager::new(config.clone());
        let text = serde_json::to_string(&payload(0)).unwrap();
        let ids: Vec<String> = (0..KEYS).map(|k| format!("k{k}")).collect();
        let raw: Vec<String> = (0..KEYS).map(|k| format!("raw:{k}")).collect();
        for k in 0..KEYS {
            let () = redis::cmd("SET")
                .arg(&raw[k])
                .arg(&text)
                .query_async(&mut conn.clone())
                .await
                .unwrap();
            manager.create_context(&ids[k], payload(0)).await.unwrap();
            memory.create_context(&ids[k], payload(0)).await.unwrap();
        }
        let cached = ContextManager::builder(config)
            .connect(
                RedisBackend::new(&server.url(), "bench")
                    .unwrap()
                    .cached_reads(Duration::from_millis(100)),
            )
            .await
            .unwrap();
        let ctx = Ctx {
            conn: conn.clone(),
            manager,
            cached,
            memory,
            ids: Arc::new(ids),
            raw: Arc::new(raw),
            text: Arc::new(text),
            versions: Arc::new((0..KEYS).map(|_| AtomicU64::new(1)).collect()),
            cas_versions: Arc::new((0..KEYS).map(|_| AtomicU64::new(0)).collect()),
            cas: Arc::new(redis::Script::new(
                r"local cur = redis.call('GET', KEYS[1])
                local v = cur and tonumber(string.match(cur, '^%d+')) or 0
                if v ~= tonumber(ARGV[1]) then return -1 end
                redis.call('SET', KEYS[1], (v + 1) .. '\n' .. ARGV[2])
                return v + 1",
            )),
            created: Arc::new(AtomicU64::new(0)),
        };

        let rows: [(&str, Op); 9] = [
            ("raw GET", raw_get),
            ("contextkit get", ck_get),
            ("contextkit cached get", ck_cached_get),
            ("in-memory get", memory_get),
            ("raw SET", raw_set),
            ("GET then SET", get_then_set),
            ("Lua CAS", lua_cas),
            ("contextkit CAS update", ck_update),
            ("contextkit create", ck_create),
        ];
        let _ = writeln!(table, "| operation | tasks | ops/s | p50 µs | p99 µs |");
        let _ = writeln!(table, "|---|---:|---:|---:|---:|");
        let mut results = std::collections::BTreeMap::new();
        for tasks in TASKS {
            for (name, op) in rows {
                if only
                    .as_ref()
                    .is_some_and(|o| !o.split(',').any(|o| o == name))
                {
                    continue;
                }
                let (ops, p50, p99) = measure(&ctx, tasks, time, op).await;
                results.insert((name, tasks), ops);
                let _ = writeln!(
                    table,
                    "| {name} | {tasks} | {ops:.0} | {p50:.1} | {p99:.1} |"
                );
            }
        }
        let _ = writeln!(table, "\n| ratio | 1 task | 16 tasks | 64 tasks | target |");
        let _ = writeln!(table, "|---|---:|---:|---:|---:|");
        for (name, a, b, target) in [
            (
                "contextkit get / raw GET",
                "contextkit get",
                "raw GET",
                "≥ 0.8",
            ),
            (
                "contextkit cached get / raw GET",
                "contextkit cached get",
                "raw GET",
                "≥ 20",
            ),
            (
                "contextkit CAS update / raw SET",
                "contextkit CAS update",
                "raw SET",
                "≥ 0.5",
            ),
            (
                "contextkit CAS update / GET then SET",
                "contextkit CAS update",
                "GET then SET",
                "",
            ),
            (
                "contextkit CAS update / Lua CAS",
                "contextkit CAS update",
                "Lua CAS",
                "",
            ),
            (
                "contextkit create / raw SET",
                "contextkit create",
                "raw SET",
                "",
            ),
        ] {
            let Some(r) = TASKS
                .iter()
                .map(|t| {
                    Some(format!(
                        "{:.2}",
                        results.get(&(a, *t))? / results.get(&(b, *t))?
                    ))
                })
                .collect::<Option<Vec<String>>>()
            else {
                continue;
            };
            let _ = writeln!(table, "| {name} | {} | {target} |", r.join(" | "));
        }
        // What each kind of call cost the server itself, over the whole run.
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut ctx.conn.clone())
            .await
            .unwrap();
        let _ = writeln!(
            table,
            "\n| Redis command (INFO commandstats) | calls | server µs per call |"
        );
        let _ = writeln!(table, "|---|---:|---:|");
        for line in info.lines() {
            let Some((name, stats)) = line
                .strip_prefix("cmdstat_")
                .and_then(|l| l.split_once(':'))
            else {
                continue;
            };
            if ![
                "get", "mget", "set", "evalsha", "fcall", "fcall_ro", "xread",
            ]
            .contains(&name)
            {
                continue;
            }
            let field = |key: &str| {
                stats
                    .split(',')
                    .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
                    .unwrap_or("?")
                    .to_owned()
            };
            let _ = writeln!(
                table,
                "| {} | {} | {} |",
                name.to_uppercase(),
                field("calls"),
                field("usec_per_call")
            );
        }
    });
    println!("\n{table}");
}
