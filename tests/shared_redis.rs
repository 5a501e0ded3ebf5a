//! Shared mode over Redis: the conformance suite on shared managers, and
//! what many managers and processes on one namespace must show. Every test
//! starts its own `redis-server` on a free port of 127.0.0.1.

mod cases;
mod redis_server;

use contextkit::{ContextEvent, ContextManager, ManagerConfig, ManualClock, RedisBackend, json};
use futures::StreamExt;
use redis_server::{Durability, RedisServer};
use std::future::Future;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// One server for the conformance cases of this process; each case has a
/// namespace of its own.
fn server() -> &'static Mutex<RedisServer> {
    static SERVER: OnceLock<Mutex<RedisServer>> = OnceLock::new();
    SERVER.get_or_init(|| Mutex::new(RedisServer::start(Durability::None)))
}

fn fresh_namespace(tag: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{tag}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    )
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A shared manager on a manual clock (the namespace takes its times from
/// it), for the conformance cases.
fn shared_manager(config: ManagerConfig, clock: ManualClock) -> ContextManager {
    let url = server().lock().unwrap().url();
    let handle = tokio::runtime::Handle::current();
    // The cases build managers synchronously; connect on another thread.
    std::thread::spawn(move || {
        handle.block_on(async move {
            let backend = RedisBackend::new(&url, &fresh_namespace("case"))
                .unwrap()
                .client_clock();
            ContextManager::builder(config)
                .clock(clock)
                .connect(backend)
                .await
                .unwrap()
        })
    })
    .join()
    .unwrap()
}

fn on_redis(case: impl Future<Output = ()>) {
    cases::with_factory(Rc::new(shared_manager), || runtime().block_on(case));
}

macro_rules! cases_on_redis {
    ($executor:ident; $($module:ident :: $case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                if !crate::cases::SHARED_EXCEPTIONS.contains(&stringify!($case)) {
                    super::$executor(crate::cases::$module::$case());
                }
            }
        )*
    };
}

mod conformance_on_redis {
    crate::for_each_case!(cases_on_redis, on_redis);
}

async fn connect(url: &str, namespace: &str, config: ManagerConfig) -> ContextManager {
    connect_with(url, namespace, config, Duration::from_secs(5)).await
}

async fn connect_with(
    url: &str,
    namespace: &str,
    config: ManagerConfig,
    timeout: Duration,
) -> ContextManager {
    let backend = RedisBackend::new(url, namespace).unwrap().timeout(timeout);
    ContextManager::builder(config)
        .connect(backend)
        .await
        .unwrap()
}

fn capacity(n: usize) -> ManagerConfig {
    ManagerConfig {
        max_contexts: n,
        ..ManagerConfig::default()
    }
}

/// Events until one with revision `last` (or a timeout).
async fn events_until(sub: &mut contextkit::Subscription, last: u64) -> Vec<ContextEvent> {
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_millis(200), sub.next()).await {
            Ok(Some(e)) => {
                let done = e.revision() >= Some(last);
                seen.push(e);
                if done {
                    break;
                }
            }
            Ok(None) => break,
            Err(_) => {}
        }
    }
    seen
}

// ---- many processes ----------------------------------------------------

/// Runs this test binary again as `n` child processes, each running the
/// test `entry` with `CK_ROLE` set, and returns their standard outputs.
fn children(entry: &str, n: usize, env: &[(&str, String)]) -> Vec<String> {
    let exe = std::env::current_exe().unwrap();
    let procs: Vec<_> = (0..n)
        .map(|i| {
            let mut cmd = std::process::Command::new(&exe);
            cmd.args([entry, "--exact", "--nocapture", "--test-threads", "1"])
                .env("CK_ROLE", i.to_string())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::inherit());
            for (k, v) in env {
                cmd.env(k, v);
            }
            cmd.spawn().unwrap()
        })
        .collect();
    procs
        .into_iter()
        .map(|p| {
            let out = p.wait_with_output().unwrap();
            assert!(out.status.success(), "a child process failed");
            String::from_utf8(out.stdout).unwrap()
        })
        .collect()
}

fn child_value(out: &str, key: &str) -> String {
    out.lines()
        .find_map(|l| l.split_once(&format!("{key}=")).map(|(_, v)| v))
        .unwrap_or_else(|| panic!("no {key} in child output:\n{out}"))
        .to_owned()
}

const PROCESSES: usize = 8;
const CREATES: usize = 1_000;
const LIMIT: usize = 100;
const INCREMENTS: u64 = 50;
/// Tasks per process that increment by `modify_context`.
const MODIFIERS: u64 = 2;

/// The work of one child process of `processes_race_on_one_namespace`.
#[test]
fn child_racer() {
    let Ok(role) = std::env::var("CK_ROLE") else {
        return; // only meaningful as a child process
    };
    let url = std::env::var("CK_URL").unwrap();
    let ns = std::env::var("CK_NS").unwrap();
    let final_rev: u64 = std::env::var("CK_FINAL_REV").unwrap().parse().unwrap();
    runtime().block_on(async move {
        let backend = RedisBackend::new(&url, &ns)
            .unwrap()
            .timeout(Duration::from_secs(5));
        let m = ContextManager::builder(capacity(LIMIT))
            .event_capacity(1 << 14) // read after the work: keep every event
            .connect(backend)
            .await
            .unwrap();
        let mut sub = m.subscribe();
        // Every process subscribes before any writes.
        let barrier = std::path::PathBuf::from(std::env::var("CK_BARRIER").unwrap());
        std::fs::write(barrier.join(&role), b"").unwrap();
        while std::fs::read_dir(&barrier).unwrap().count() < PROCESSES {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Creates at capacity, from 8 tasks.
        let won = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..8)
            .map(|t| {
                let (m, won, role) = (m.clone(), Arc::clone(&won), role.clone());
                tokio::spawn(async move {
                    for n in (t..CREATES).step_by(8) {
                        match m.create_context(&format!("p{role}-{n}"), json!({})).await {
                            Ok(_) => {
                                won.fetch_add(1, Ordering::SeqCst);
                            }
                            Err(e) => assert_eq!(e.code(), "CAPACITY_EXCEEDED", "{e}"),
                        }
                    }
                })
            })
            .collect();
        // Compare-and-set increments of one counter, from 4 tasks.
        let incs: Vec<_> = (0..4)
            .map(|_| {
                let m = m.clone();
                tokio::spawn(async move {
                    for _ in 0..INCREMENTS {
                        loop {
                            let s = m.get_context("counter").await.unwrap();
                            let n = s.data["n"].as_u64().unwrap();
                            match m
                                .update_context("counter", json!({ "n": n + 1 }), Some(s.version))
                                .await
                            {
                                Ok(_) => break,
                                Err(e) => assert_eq!(e.code(), "VERSION_CONFLICT", "{e}"),
                            }
                        }
                    }
                })
            })
            .collect();
        // Read-modify-write increments of a second counter, from 2 tasks:
        // no retry loop here, modify_context retries with a backoff.
        let modifies: Vec<_> = (0..MODIFIERS)
            .map(|_| {
                let m = m.clone();
                tokio::spawn(async move {
                    for _ in 0..INCREMENTS {
                        m.modify_context(
                            "modified",
                            |d| json!({ "n": d["n"].as_u64().unwrap() + 1 }),
                        )
                        .await
                        .unwrap();
                    }
                })
            })
            .collect();
        for t in tasks.into_iter().chain(incs).chain(modifies) {
            t.await.unwrap();
        }
        println!("won={}", won.load(Ordering::SeqCst));
        let events = events_until(&mut sub, final_rev).await;
        // The sequence, compactly: its length, ends and a hash of it all.
        let text: Vec<String> = events
            .iter()
            .map(|e| serde_json::to_string(e).unwrap())
            .collect();
        let revs: Vec<u64> = events.iter().filter_map(ContextEvent::revision).collect();
        let contiguous = revs.len() == events.len() && revs.windows(2).all(|w| w[1] == w[0] + 1);
        println!("contiguous={contiguous}");
        println!("count={}", events.len());
        println!("last={}", revs.last().copied().unwrap_or(0));
        println!("digest={:016x}", fnv(text.join("\n").as_bytes()));
    });
}

#[test]
fn processes_race_on_one_namespace() {
    let server = RedisServer::start(Durability::None);
    let ns = fresh_namespace("race");
    let rt = runtime();
    let m = rt.block_on(async {
        let m = connect(&server.url(), &ns, capacity(LIMIT)).await;
        // The counters take two slots: 98 more creates win.
        m.create_context("counter", json!({ "n": 0 }))
            .await
            .unwrap();
        m.create_context("modified", json!({ "n": 0 }))
            .await
            .unwrap();
        m
    });
    let base = rt.block_on(m.get_context("modified")).unwrap().revision;
    let increments = PROCESSES as u64 * 4 * INCREMENTS;
    let modifies = PROCESSES as u64 * MODIFIERS * INCREMENTS;
    // Every commit after the counters' creates: 98 creates and the increments.
    let final_rev = base + (LIMIT as u64 - 2) + increments + modifies;
    let barrier = std::env::temp_dir().join(fresh_namespace("barrier"));
    std::fs::create_dir_all(&barrier).unwrap();
    let outs = children(
        "child_racer",
        PROCESSES,
        &[
            ("CK_BARRIER", barrier.display().to_string()),
            ("CK_URL", server.url()),
            ("CK_NS", ns.clone()),
            ("CK_FINAL_REV", final_rev.to_string()),
        ],
    );
    let won: usize = outs
        .iter()
        .map(|o| child_value(o, "won").parse::<usize>().unwrap())
        .sum();
    assert_eq!(won, LIMIT - 2, "exactly the free slots were won");
    rt.block_on(async {
        assert_eq!(m.len().await, LIMIT);
        let counter = m.get_context("counter").await.unwrap();
        assert_eq!(counter.data["n"], json!(increments), "no lost update");
        assert_eq!(counter.version, 1 + increments);
        let modified = m.get_context("modified").await.unwrap();
        assert_eq!(modified.data["n"], json!(modifies), "no lost modify");
        assert_eq!(modified.version, 1 + modifies);
        assert_eq!(counter.revision.max(modified.revision), final_rev);
    });
    let _ = std::fs::remove_dir_all(&barrier);
    // Every process saw the same sequence: every commit after the counter's
    // create, in revision order, none missing.
    for out in &outs {
        assert_eq!(child_value(out, "contiguous"), "true");
        assert_eq!(child_value(out, "count"), (final_rev - base).to_string());
        assert_eq!(child_value(out, "last"), final_rev.to_string());
    }
    let digests: Vec<String> = outs.iter().map(|o| child_value(o, "digest")).collect();
    assert!(
        digests.windows(2).all(|w| w[0] == w[1]),
        "one sequence everywhere: {digests:?}"
    );
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    })
}

// ---- events --------------------------------------------------------------

/// A manager whose reader could not keep up while the stream was trimmed
/// is told exactly how many events it missed.
#[test]
fn a_gap_in_the_stream_is_lagged_with_the_exact_count() {
    let server = RedisServer::start(Durability::None);
    let (url, ns) = (server.url(), fresh_namespace("lag"));
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<u64>();
    let reader = {
        let (url, ns) = (url.clone(), ns.clone());
        std::thread::spawn(move || {
            // A current-thread runtime: while this thread blocks below,
            // the manager's reader does not run.
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let backend = RedisBackend::new(&url, &ns).unwrap().event_retention(10);
                let m = ContextManager::builder(ManagerConfig::default())
                    .connect(backend)
                    .await
                    .unwrap();
                let mut sub = m.subscribe();
                ready_tx.send(()).unwrap();
                let last = go_rx.recv().unwrap(); // blocks the runtime
                events_until(&mut sub, last).await
            })
        })
    };
    ready_rx.recv().unwrap();
    let rt = runtime();
    let last = rt.block_on(async {
        let backend = RedisBackend::new(&url, &ns).unwrap().event_retention(10);
        let m = ContextManager::builder(ManagerConfig::default())
            .connect(backend)
            .await
            .unwrap();
        m.create_context("a", json!({ "n": 0 })).await.unwrap();
        let mut last = 0;
        for n in 1..=500 {
            last = m
                .update_context("a", json!({ "n": n }), None)
                .await
                .unwrap()
                .revision;
        }
        last
    });
    go_tx.send(last).unwrap();
    let seen = reader.join().unwrap();
    let lags: Vec<u64> = seen
        .iter()
        .filter_map(|e| match e {
            ContextEvent::Lagged { missed } => Some(*missed),
            _ => None,
        })
        .collect();
    assert_eq!(lags.len(), 1, "one gap: {lags:?}");
    let delivered: Vec<u64> = seen.iter().filter_map(ContextEvent::revision).collect();
    assert_eq!(delivered.last(), Some(&last));
    // Revisions 1..=last: each one delivered or counted as missed, once.
    assert_eq!(delivered.len() as u64 + lags[0], last);
    let gap = delivered
        .windows(2)
        .find(|w| w[1] != w[0] + 1)
        .map(|w| w[1] - w[0] - 1);
    let lead = delivered.first().map(|f| f - 1).unwrap_or(0);
    assert_eq!(gap.unwrap_or(lead), lags[0], "the lag is the gap");
}

/// Three managers sweep at once: each expiry is one `Expired` event.
#[test]
fn each_expiry_is_swept_once_whoever_sweeps() {
    let server = RedisServer::start(Durability::None);
    let ns = fresh_namespace("expiry");
    runtime().block_on(async {
        let managers = [
            connect(&server.url(), &ns, ManagerConfig::default()).await,
            connect(&server.url(), &ns, ManagerConfig::default()).await,
            connect(&server.url(), &ns, ManagerConfig::default()).await,
        ];
        let mut sub = managers[0].subscribe();
        let opts = contextkit::CreateOptions {
            ttl_ms: Some(100),
            ..Default::default()
        };
        let mut last = 0;
        for n in 0..60 {
            let s = managers[n % 3]
                .create_context_with(&format!("t{n}"), json!({}), opts.clone())
                .await
                .unwrap();
            last = last.max(s.revision);
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(
            managers[0].len().await,
            0,
            "expired contexts are invisible at once"
        );
        let sweeps: Vec<_> = managers
            .iter()
            .flat_map(|m| [m.clone(), m.clone()])
            .map(|m| tokio::spawn(async move { m.cleanup_expired().await }))
            .collect();
        let mut removed = 0;
        for s in sweeps {
            removed += s.await.unwrap();
        }
        assert_eq!(removed, 60);
        let events = events_until(&mut sub, last + 60).await;
        let expired: Vec<_> = events
            .iter()
            .filter(|e| matches!(e, ContextEvent::Expired { .. }))
            .collect();
        assert_eq!(expired.len(), 60);
        let mut ids: Vec<_> = expired.iter().map(|e| e.id().unwrap().to_owned()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 60, "one Expired per context");
    });
}

// ---- faults --------------------------------------------------------------

/// Connections killed mid-write: every call ends Ok or with a code, and
/// each acknowledged unconditional update bumped the version exactly once.
#[test]
fn killed_connections_never_apply_a_write_twice() {
    let server = RedisServer::start(Durability::None);
    let ns = fresh_namespace("kill");
    let port = server.port;
    runtime().block_on(async {
        let m = connect(&server.url(), &ns, ManagerConfig::default()).await;
        m.create_context("c", json!({ "n": 0 })).await.unwrap();
        // The killer kills every client connection 30 times, 15 ms apart;
        // the writers keep writing until it is done.
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let killer = {
            let done = Arc::clone(&done);
            std::thread::spawn(move || {
                for _ in 0..30 {
                    std::thread::sleep(Duration::from_millis(15));
                    let _ = std::process::Command::new("redis-cli")
                        .args([
                            "-p",
                            &port.to_string(),
                            "CLIENT",
                            "KILL",
                            "TYPE",
                            "normal",
                            "SKIPME",
                            "yes",
                        ])
                        .output();
                }
                done.store(true, Ordering::SeqCst);
            })
        };
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (m, done) = (m.clone(), Arc::clone(&done));
                tokio::spawn(async move {
                    let (mut ok, mut failed) = (0_u64, Vec::new());
                    let mut n = 0;
                    while !done.load(Ordering::SeqCst) {
                        n += 1;
                        match m.update_context("c", json!({ "n": n }), None).await {
                            Ok(_) => ok += 1,
                            Err(e) => failed.push((e.code(), e.to_string())),
                        }
                    }
                    (ok, failed)
                })
            })
            .collect();
        let mut ok = 0;
        let mut failed = Vec::new();
        for t in tasks {
            let (o, f) = t.await.unwrap();
            ok += o;
            failed.extend(f);
        }
        killer.join().unwrap();
        assert!(
            ok > 100,
            "writes went on while connections were killed: {ok}"
        );
        // Retries resolve a write whose reply a kill took. One that found
        // no answer within the timeout (seen on a loaded machine) ends
        // STORAGE resolved as not applied, which the version below checks.
        assert!(
            failed
                .iter()
                .all(|(c, m)| *c == "STORAGE" && m.ends_with("the write was not applied")),
            "{failed:?}"
        );
        let s = m.get_context("c").await.unwrap();
        assert_eq!(s.version, 1 + ok, "each acknowledged update applied once");
        // Writes did run and lose their reply to a kill: their retries got
        // the stored reply instead of applying again (about 50 per run).
        let replays: u64 = server
            .cli(&["HGET", &format!("ck:{{{ns}}}:meta"), "replays"])
            .trim()
            .parse()
            .unwrap_or(0);
        assert!(replays > 0, "no write lost its reply to a kill");
    });
}

/// Redis stopped: `STORAGE` within the timeout; once it is back, the
/// manager works again.
#[test]
fn a_stopped_server_gives_storage_quickly_and_recovery_after() {
    let mut server = RedisServer::start(Durability::Always);
    let ns = fresh_namespace("down");
    runtime().block_on(async {
        // A long timeout: nobody is there, so no call waits for it.
        let backend = RedisBackend::new(&server.url(), &ns)
            .unwrap()
            .timeout(Duration::from_secs(20))
            .cached_reads(Duration::from_millis(100));
        let m = ContextManager::builder(ManagerConfig::default())
            .connect(backend)
            .await
            .unwrap();
        m.create_context("a", json!({})).await.unwrap();
        server.kill();
        let t = Instant::now();
        let err = m
            .update_context("a", json!({ "n": 1 }), None)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "STORAGE");
        // A write that never reached a server was not applied, and says so.
        let t2 = Instant::now();
        let err = m
            .update_context("a", json!({ "n": 1 }), None)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "STORAGE");
        assert!(!err.to_string().contains("outcome unknown"), "{err}");
        assert!(err.to_string().contains("refused"), "{err}");
        println!("refused: {:?}, then {:?}: {err}", t2 - t, t2.elapsed());
        assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(m.get_context("a").await.unwrap_err().code(), "STORAGE");
        assert_eq!(m.try_len().await.unwrap_err().code(), "STORAGE");
        assert_eq!(
            m.try_list_context_ids().await.unwrap_err().code(),
            "STORAGE"
        );
        assert_eq!(m.try_cleanup_expired().await.unwrap_err().code(), "STORAGE");
        assert_eq!(m.len().await, 0, "the infallible count shows nothing");
        server.restart();
        // The update's outcome was unknown: it did not reach the server.
        let s = m.get_context("a").await.unwrap();
        assert_eq!(s.version, 1);
        assert_eq!(
            m.update_context("a", json!({ "n": 2 }), Some(1))
                .await
                .unwrap()
                .version,
            2
        );
    });
}

/// A call of a cached manager is bounded like any other when Redis does not
/// answer: making a tracking connection again never holds it up.
#[test]
fn a_frozen_server_holds_cached_calls_no_longer_than_the_timeout() {
    let server = RedisServer::start(Durability::None);
    let ns = fresh_namespace("frozen");
    runtime().block_on(async {
        let timeout = Duration::from_secs(2);
        let backend = RedisBackend::new(&server.url(), &ns)
            .unwrap()
            .timeout(timeout)
            .cached_reads(Duration::from_millis(200));
        let m = ContextManager::builder(ManagerConfig::default())
            .connect(backend)
            .await
            .unwrap();
        m.create_context("a", json!({})).await.unwrap();
        m.get_context("a").await.unwrap();
        assert_eq!(server.cli(&["CLIENT", "PAUSE", "9000", "ALL"]).trim(), "OK");
        // Reads go on (from memory while they may), so the heartbeat asks,
        // times out and drops the tracking connection.
        let reads = tokio::spawn({
            let m = m.clone();
            async move {
                let t = Instant::now();
                while t.elapsed() < timeout + Duration::from_millis(700) {
                    let _ =
                        tokio::time::timeout(Duration::from_millis(20), m.get_context("a")).await;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        });
        reads.await.unwrap();
        let t = Instant::now();
        let err = m
            .update_context("a", json!({ "n": 1 }), None)
            .await
            .unwrap_err();
        let took = t.elapsed();
        assert_eq!(err.code(), "STORAGE");
        println!("frozen: the update ended in {took:?}: {err}");
        // The timeout, then at most 500 ms to settle; not one more timeout
        // for a tracking connection.
        assert!(took < timeout * 2, "{took:?}");
        let _ = server.cli(&["CLIENT", "UNPAUSE"]);
    });
}

/// Recovery-point ids are one sequence for the namespace: no manager can say
/// which is next, and says 0.
#[test]
fn recovery_point_ids_are_the_namespaces() {
    let server = RedisServer::start(Durability::None);
    let ns = fresh_namespace("points");
    runtime().block_on(async {
        let a = connect(&server.url(), &ns, ManagerConfig::default()).await;
        let b = connect(&server.url(), &ns, ManagerConfig::default()).await;
        a.create_context("x", json!({})).await.unwrap();
        let first = a.create_recovery_point("x").await.unwrap();
        let second = b.create_recovery_point("x").await.unwrap();
        assert_eq!(second.id, first.id + 1);
        assert_eq!(a.next_recovery_point_id(), 0);
        assert_eq!(b.next_recovery_point_id(), 0);
    });
}

/// A newer release's library (the same functions, a higher version) stays;
/// an older one is replaced.
#[test]
fn the_newest_library_stays() {
    let server = RedisServer::start(Durability::None);
    let library = include_str!("../native/redis/contextkit.lua");
    let line = library
        .lines()
        .find(|l| l.starts_with("local LIBRARY_VERSION = '"))
        .unwrap();
    let ours = line.split('\'').nth(1).unwrap();
    for (loaded, kept) in [("1000000", "1000000"), ("1", ours)] {
        let other = library.replace(line, &format!("local LIBRARY_VERSION = '{loaded}'"));
        let out = std::process::Command::new("redis-cli")
            .args(["-p", server.url().rsplit(':').next().unwrap()])
            .args(["-x", "FUNCTION", "LOAD", "REPLACE"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write as _;
                child.stdin.take().unwrap().write_all(other.as_bytes())?;
                child.wait_with_output()
            })
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "contextkit_2");
        runtime().block_on(async {
            let m = connect(
                &server.url(),
                &fresh_namespace("library"),
                ManagerConfig::default(),
            )
            .await;
            m.create_context("a", json!({})).await.unwrap();
        });
        let version = server.cli(&["FCALL_RO", "ck2_version", "0"]);
        assert_eq!(version.trim(), kept, "after {loaded} was loaded");
    }
}

/// A default TTL past what a shared namespace takes is refused at connect,
/// not by every create after it.
#[test]
fn a_default_ttl_no_create_could_take_is_refused_at_connect() {
    let server = RedisServer::start(Durability::None);
    runtime().block_on(async {
        let config = ManagerConfig {
            default_ttl_ms: Some((1 << 52) + 1),
            ..ManagerConfig::default()
        };
        let backend = RedisBackend::new(&server.url(), &fresh_namespace("ttl")).unwrap();
        let err = ContextManager::builder(config)
            .connect(backend)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "INVALID_ARGUMENT");
        assert!(err.to_string().contains("a TTL of"), "{err}");
    });
}

/// A server restarted without persistence lost the namespace: the manager
/// says so instead of carrying on with an empty store.
#[test]
fn lost_data_is_detected_and_reported() {
    let mut server = RedisServer::start(Durability::None);
    let ns = fresh_namespace("lost");
    runtime().block_on(async {
        let m = connect(&server.url(), &ns, ManagerConfig::default()).await;
        m.create_context("a", json!({})).await.unwrap();
        server.restart();
        let err = m.create_context("b", json!({})).await.unwrap_err();
        assert_eq!(err.code(), "STORAGE");
        assert!(err.to_string().contains("lost its data"), "{err}");
        // And from then on every call says so.
        let err = m.get_context("a").await.unwrap_err();
        assert!(err.to_string().contains("lost its data"), "{err}");
    });
}

/// A store flushed under a manager (no restart, so no dropped connection
/// tells it) is reported by its very next read, also once another manager
/// joined the empty store and made a context of the same id: a read never
/// answers from a store other than the one its manager's writes went to.
#[test]
fn a_read_reports_a_flushed_store_at_once() {
    let server = RedisServer::start(Durability::None);
    let ns = fresh_namespace("flushed");
    runtime().block_on(async {
        let m = connect(&server.url(), &ns, ManagerConfig::default()).await;
        let cached = ContextManager::builder(ManagerConfig::default())
            .connect(cached(&server.url(), &ns, Duration::from_secs(60)))
            .await
            .unwrap();
        m.create_context("a", json!({ "by": "m" })).await.unwrap();
        assert_eq!(cached.get_context("a").await.unwrap().data["by"], "m");
        assert_eq!(server.cli(&["FLUSHALL"]).trim(), "OK");
        for who in [&m, &cached] {
            let err = who.get_context("a").await.unwrap_err();
            assert_eq!(err.code(), "STORAGE");
            assert!(err.to_string().contains("lost its data"), "{err}");
            // And from then on every call of that manager says so: a list
            // too, which does not read the epoch itself.
            let err = who.try_list_context_ids().await.unwrap_err();
            assert!(err.to_string().contains("lost its data"), "{err}");
        }
        let other = connect(&server.url(), &ns, ManagerConfig::default()).await;
        other
            .create_context("a", json!({ "by": "other" }))
            .await
            .unwrap();
        for who in [&m, &cached] {
            let reads = futures::future::join_all((0..8).map(|_| who.get_context("a"))).await;
            for read in reads {
                let err = read.unwrap_err();
                assert!(err.to_string().contains("lost its data"), "{err}");
            }
        }
        assert_eq!(other.get_context("a").await.unwrap().data["by"], "other");
    });
}

/// Every read of the library checks the namespace's epoch too: a list, a
/// count or the recovery points read first after a `FLUSHALL` report the
/// loss (they answered from the empty store until the event reader
/// noticed), and a context whose id is the word the transport answers then
/// is listed as any other.
#[test]
fn a_list_count_or_points_read_first_reports_a_flushed_store() {
    let server = RedisServer::start(Durability::None);
    let ns = fresh_namespace("flushed-reads");
    runtime().block_on(async {
        let first = connect(&server.url(), &ns, ManagerConfig::default()).await;
        first.create_context("EPOCH", json!({})).await.unwrap();
        first.create_recovery_point("EPOCH").await.unwrap();
        assert_eq!(first.try_list_context_ids().await.unwrap(), ["EPOCH"]);
        assert_eq!(first.recovery_points("EPOCH").await.unwrap().len(), 1);
        for read in 0..4 {
            let m = connect(&server.url(), &ns, ManagerConfig::default()).await;
            assert_eq!(m.try_len().await.unwrap(), 1);
            assert_eq!(server.cli(&["FLUSHALL"]).trim(), "OK");
            let err = match read {
                0 => m.try_list_context_ids().await.map(drop).unwrap_err(),
                1 => m.try_list_contexts().await.map(drop).unwrap_err(),
                2 => m.try_len().await.map(drop).unwrap_err(),
                _ => m.recovery_points("EPOCH").await.map(drop).unwrap_err(),
            };
            assert_eq!(err.code(), "STORAGE", "read {read}: {err}");
            assert!(
                err.to_string().contains("lost its data"),
                "read {read}: {err}"
            );
            // The manager is lost from then on.
            let err = m.get_context("EPOCH").await.unwrap_err();
            assert!(
                err.to_string().contains("lost its data"),
                "read {read}: {err}"
            );
            // Made again for the next round.
            let again = connect(&server.url(), &ns, ManagerConfig::default()).await;
            again.create_context("EPOCH", json!({})).await.unwrap();
            again.create_recovery_point("EPOCH").await.unwrap();
        }
    });
}

/// SIGKILL of a server with `appendfsync always`, 20 rounds, under writes:
/// nothing acknowledged is lost, no recovery-point id is handed out twice,
/// the stream's revisions have no duplicate and no hole.
#[test]
fn killed_server_loses_nothing_acknowledged() {
    let mut server = RedisServer::start(Durability::Always);
    let ns = fresh_namespace("crash");
    let rt = runtime();
    let m = rt.block_on(connect_with(
        &server.url(),
        &ns,
        ManagerConfig::default(),
        Duration::from_millis(300),
    ));
    let acked: Arc<Mutex<std::collections::BTreeMap<String, u64>>> = Arc::default();
    let mut snapshot_ids = Vec::new();
    for round in 0..20 {
        let writers: Vec<_> = (0..4)
            .map(|t| {
                let (m, acked) = (m.clone(), Arc::clone(&acked));
                rt.spawn(async move {
                    let id = format!("r{round}-t{t}");
                    let mut snapshot_ids = Vec::new();
                    if m.create_context(&id, json!({ "n": 0 })).await.is_ok() {
                        acked.lock().unwrap().insert(id.clone(), 1);
                    }
                    for n in 1..1_000 {
                        match m.update_context(&id, json!({ "n": n }), None).await {
                            Ok(s) => {
                                acked.lock().unwrap().insert(id.clone(), s.version);
                            }
                            Err(_) => break,
                        }
                        if n % 5 == 0 {
                            match m.create_recovery_point(&id).await {
                                Ok(p) => snapshot_ids.push(p.id),
                                Err(_) => break,
                            }
                        }
                    }
                    snapshot_ids
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(60));
        server.kill();
        for w in writers {
            snapshot_ids.extend(rt.block_on(w).unwrap());
        }
        server.restart();
    }
    rt.block_on(async {
        let acked = acked.lock().unwrap().clone();
        for (id, version) in &acked {
            let s = m.get_context(id).await.unwrap();
            assert!(
                s.version >= *version,
                "{id}: acknowledged {version}, found {}",
                s.version
            );
        }
    });
    let n = snapshot_ids.len();
    snapshot_ids.sort_unstable();
    snapshot_ids.dedup();
    assert_eq!(
        snapshot_ids.len(),
        n,
        "no recovery-point id handed out twice"
    );
    // The stream: revisions 1..=rev, each once.
    let meta = format!("ck:{{{ns}}}:meta");
    let rev: u64 = server.cli(&["HGET", &meta, "rev"]).trim().parse().unwrap();
    let ids = server.cli(&["XRANGE", &format!("ck:{{{ns}}}:ev"), "-", "+"]);
    let revs: Vec<u64> = ids
        .lines()
        .filter_map(|l| l.strip_suffix("-0").and_then(|r| r.parse().ok()))
        .collect();
    if revs != (1..=rev).collect::<Vec<_>>() {
        let missing: Vec<u64> = (1..=rev).filter(|r| !revs.contains(r)).collect();
        let around = missing.first().map(|m| {
            server.cli(&[
                "XRANGE",
                &format!("ck:{{{ns}}}:ev"),
                &format!("{}", m - 1),
                &format!("{}", m + 1),
            ])
        });
        panic!(
            "stream revisions: missing {missing:?}, {} entries for rev {rev}; around: {around:?}",
            revs.len()
        );
    }
}

// ---- cached reads ----------------------------------------------------------

fn cached(url: &str, ns: &str, max_stale: Duration) -> RedisBackend {
    RedisBackend::new(url, ns).unwrap().cached_reads(max_stale)
}

/// How many reads of a context `server` served since its statistics were
/// last reset (`GET`, or `FCALL_RO` with a client clock), from `INFO
/// commandstats`.
fn reads_served(server: &RedisServer) -> u64 {
    let stats = server.cli(&["INFO", "commandstats"]);
    ["get", "fcall_ro"]
        .iter()
        .filter_map(|cmd| {
            let calls = stats
                .lines()
                .find_map(|l| l.strip_prefix(&format!("cmdstat_{cmd}:calls=")))?;
            Some(calls.split(',').next()?.trim().parse::<u64>().unwrap())
        })
        .sum()
}

#[test]
fn cached_reads_see_this_managers_own_writes() {
    let server = RedisServer::start(Durability::None);
    let ns = fresh_namespace("own");
    runtime().block_on(async {
        let backend = cached(&server.url(), &ns, Duration::from_secs(60));
        let m = ContextManager::builder(ManagerConfig::default())
            .connect(backend)
            .await
            .unwrap();
        assert_eq!(m.get_context("a").await.unwrap_err().code(), "NOT_FOUND");
        m.create_context("a", json!({ "n": 0 })).await.unwrap();
        // Readers race the writer; after each write, a read shows it.
        for n in 1..=200 {
            let readers: Vec<_> = (0..4)
                .map(|_| {
                    let m = m.clone();
                    tokio::spawn(async move { m.get_context("a").await.map(|s| s.version) })
                })
                .collect();
            let s = m
                .update_context("a", json!({ "n": n }), None)
                .await
                .unwrap();
            assert_eq!(m.get_context("a").await.unwrap().version, s.version);
            for r in readers {
                r.await.unwrap().unwrap();
            }
        }
        // With no write in between, reads are served from memory: Redis
        // serves at most a handful of 1,000 (without the cache, all).
        let last = m.get_context("a").await.unwrap().version;
        assert_eq!(server.cli(&["CONFIG", "RESETSTAT"]).trim(), "OK");
        for _ in 0..1_000 {
            assert_eq!(m.get_context("a").await.unwrap().version, last);
        }
        let served = reads_served(&server);
        println!("cached reads: Redis served {served} of 1000 reads");
        assert!(served <= 5, "Redis served {served} of 1000 cached reads");
        // The count is Redis's: a manager without the cache has all its
        // reads served there.
        let plain = connect(&server.url(), &ns, ManagerConfig::default()).await;
        assert_eq!(server.cli(&["CONFIG", "RESETSTAT"]).trim(), "OK");
        for _ in 0..100 {
            assert_eq!(plain.get_context("a").await.unwrap().version, last);
        }
        assert_eq!(reads_served(&server), 100, "uncached reads served by Redis");
        m.delete_context("a").await.unwrap();
        assert_eq!(m.get_context("a").await.unwrap_err().code(), "NOT_FOUND");
    });
}

#[test]
fn cached_reads_drop_what_another_manager_changed() {
    let server = RedisServer::start(Durability::None);
    let ns = fresh_namespace("track");
    runtime().block_on(async {
        let reader = ContextManager::builder(ManagerConfig::default())
            .connect(cached(&server.url(), &ns, Duration::from_secs(60)))
            .await
            .unwrap();
        let writer = connect(&server.url(), &ns, ManagerConfig::default()).await;
        writer.create_context("a", json!({ "n": 0 })).await.unwrap();
        for n in 1..=20_u64 {
            assert_eq!(reader.get_context("a").await.unwrap().version, n);
            writer
                .update_context("a", json!({ "n": n }), None)
                .await
                .unwrap();
            // Well before max_stale (60 s): the invalidation arrives.
            let t = Instant::now();
            while reader.get_context("a").await.unwrap().version == n {
                assert!(t.elapsed() < Duration::from_secs(5), "no invalidation");
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    });
}

/// How many times `server` ran `cmd` since its statistics were last reset.
fn calls(server: &RedisServer, cmd: &str) -> u64 {
    server
        .cli(&["INFO", "commandstats"])
        .lines()
        .find_map(|l| l.strip_prefix(&format!("cmdstat_{cmd}:calls=")))
        .and_then(|calls| calls.split(',').next()?.trim().parse().ok())
        .unwrap_or(0)
}

/// 2 s of reads of "a" at `version` by `m` (cached, `max_stale` 200 ms):
/// Redis serves 10 or more of them without the heartbeat, 3 at most with it,
/// and sees 8 heartbeats or more.
async fn read_from_memory(server: &RedisServer, m: &ContextManager, version: u64, what: &str) {
    assert_eq!(server.cli(&["CONFIG", "RESETSTAT"]).trim(), "OK");
    let t = Instant::now();
    let mut reads = 0;
    while t.elapsed() < Duration::from_secs(2) {
        assert_eq!(m.get_context("a").await.unwrap().version, version);
        reads += 1;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let (served, beats) = (reads_served(server), calls(server, "time"));
    println!("{what}: Redis served {served} of {reads} reads, {beats} heartbeats");
    assert!(served <= 3, "Redis served {served} of {reads} reads");
    assert!(beats >= 8, "{beats} heartbeats in 2 s (max_stale 200 ms)");
}

/// While tracking works, a heartbeat keeps an entry nothing changes in
/// memory past `max_stale`; a change elsewhere still shows within it, and a
/// cache nobody reads sends no heartbeats.
#[test]
fn cached_reads_stay_in_memory_while_redis_confirms_them() {
    let server = RedisServer::start(Durability::None);
    let ns = fresh_namespace("beat");
    runtime().block_on(async {
        let max_stale = Duration::from_millis(200);
        let reader = ContextManager::builder(ManagerConfig::default())
            .connect(cached(&server.url(), &ns, max_stale))
            .await
            .unwrap();
        let writer = connect(&server.url(), &ns, ManagerConfig::default()).await;
        writer.create_context("a", json!({ "n": 0 })).await.unwrap();
        assert_eq!(reader.get_context("a").await.unwrap().version, 1);
        read_from_memory(&server, &reader, 1, "heartbeats").await;
        // A change elsewhere shows at once (its push), and no read that
        // starts max_stale after it returned misses it.
        writer
            .update_context("a", json!({ "n": 1 }), None)
            .await
            .unwrap();
        let updated = Instant::now();
        loop {
            let started = Instant::now();
            if reader.get_context("a").await.unwrap().version == 2 {
                break;
            }
            assert!(
                started - updated < max_stale,
                "a read {:?} after the update missed it",
                started - updated
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // Nobody reads: after a last one, no heartbeats.
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(server.cli(&["CONFIG", "RESETSTAT"]).trim(), "OK");
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(calls(&server, "time"), 0, "heartbeats of an idle cache");
    });
}

/// A tracking connection that drops while its heartbeat waits for reads,
/// and a new one made by a write: the new one's heartbeat serves the reads
/// that follow (the old one's ends instead of taking their wake-up).
#[test]
fn cached_reads_heartbeat_again_after_tracking_is_made_again() {
    let server = RedisServer::start(Durability::None);
    let ns = fresh_namespace("again");
    runtime().block_on(async {
        let max_stale = Duration::from_millis(200);
        let m = ContextManager::builder(ManagerConfig::default())
            .connect(cached(&server.url(), &ns, max_stale))
            .await
            .unwrap();
        m.create_context("a", json!({ "n": 0 })).await.unwrap();
        m.get_context("a").await.unwrap();
        // No reads: the heartbeat waits.
        tokio::time::sleep(Duration::from_millis(400)).await;
        let list = server.cli(&["CLIENT", "LIST"]);
        let tracking: Vec<&str> = list
            .lines()
            .filter(|l| {
                l.split(' ')
                    .any(|f| f.starts_with("flags=") && f.contains('t'))
            })
            .filter_map(|l| l.split(' ').find_map(|f| f.strip_prefix("id=")))
            .collect();
        assert_eq!(tracking.len(), 1, "{list}");
        server.cli(&["CLIENT", "KILL", "ID", tracking[0]]);
        // (A tracking connection is made at most once a second.)
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        // A write makes the tracking connection again.
        m.update_context("a", json!({ "n": 1 }), None)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(m.get_context("a").await.unwrap().version, 2);
        read_from_memory(&server, &m, 2, "again").await;
    });
}

/// A state the heartbeat keeps in memory is still not served past its
/// expiry, even where Redis has not deleted the key yet (its active expiry
/// off here): the heartbeat's answer bounds Redis's clock.
#[test]
fn cached_reads_end_at_expiry() {
    let server = RedisServer::start_with(Durability::None, &["--enable-debug-command", "yes"]);
    assert_eq!(
        server.cli(&["DEBUG", "SET-ACTIVE-EXPIRE", "0"]).trim(),
        "OK"
    );
    let ns = fresh_namespace("expiry");
    let wall_ms = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
    };
    runtime().block_on(async {
        let config = ManagerConfig {
            default_ttl_ms: Some(1_000),
            ..ManagerConfig::default()
        };
        let reader = ContextManager::builder(config.clone())
            .connect(cached(&server.url(), &ns, Duration::from_millis(200)))
            .await
            .unwrap();
        let writer = connect(&server.url(), &ns, config).await;
        let created = writer.create_context("a", json!({})).await.unwrap();
        let expires_at = created.expires_at_ms.unwrap();
        assert_eq!(reader.get_context("a").await.unwrap().version, 1);
        assert_eq!(server.cli(&["CONFIG", "RESETSTAT"]).trim(), "OK");
        let t = Instant::now();
        loop {
            let started = wall_ms();
            match reader.get_context("a").await {
                // Redis's own clock (the same machine's) may lag a little.
                Ok(_) => assert!(
                    started < expires_at + 20,
                    "served {} ms after its expiry",
                    started - expires_at
                ),
                Err(e) => {
                    assert_eq!(e.code(), "NOT_FOUND");
                    break;
                }
            }
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "served 5 s after a TTL of 1 s"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        // Kept in memory until it expired: Redis served the read that found
        // it gone (5 or more without the heartbeat).
        let served = reads_served(&server);
        println!("expiry: Redis served {served} reads after the first");
        assert!(served <= 3, "Redis served {served} reads");
    });
}

/// The reader writes `id` (creates it; with `update`, updates it too), so
/// that its cache entry comes from its own write, then `writer` updates it:
/// how long until the reader sees that update (it fails at 5 s; `max_stale`
/// is 60 s).
async fn own_write_then_theirs(
    reader: &ContextManager,
    writer: &ContextManager,
    id: &str,
    update: bool,
) -> Duration {
    let mut mine = reader.create_context(id, json!({ "n": 0 })).await.unwrap();
    if update {
        mine = reader
            .update_context(id, json!({ "n": 1 }), None)
            .await
            .unwrap();
    }
    let theirs = writer
        .update_context(id, json!({ "n": "theirs" }), None)
        .await
        .unwrap();
    assert_eq!(theirs.version, mine.version + 1);
    let t = Instant::now();
    loop {
        let seen = reader.get_context(id).await.unwrap().version;
        if seen == theirs.version {
            return t.elapsed();
        }
        assert_eq!(seen, mine.version);
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "the reader still serves its own write of {id} (version {}) {:?} after another manager's update (max_stale 60 s)",
            mine.version,
            t.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// A cached reader and a plain writer on one namespace (max_stale 60 s).
async fn reader_and_writer(server: &RedisServer, tag: &str) -> (ContextManager, ContextManager) {
    let ns = fresh_namespace(tag);
    let reader = ContextManager::builder(ManagerConfig::default())
        .connect(cached(&server.url(), &ns, Duration::from_secs(60)))
        .await
        .unwrap();
    (
        reader,
        connect(&server.url(), &ns, ManagerConfig::default()).await,
    )
}

/// An entry the manager's own write filled (a create, an update of an id
/// it never read) is dropped when another manager changes the context,
/// well before `max_stale`: invalidations come for every change in the
/// namespace, not only for the keys read.
#[test]
fn cached_own_writes_drop_what_another_manager_changed() {
    let server = RedisServer::start(Durability::None);
    runtime().block_on(async {
        let (reader, writer) = reader_and_writer(&server, "own-track").await;
        // A first read of some other id.
        assert!(reader.get_context("other").await.is_err());
        let mut waits = Vec::new();
        for n in 0..20 {
            let id = format!("a{n}");
            waits.push(own_write_then_theirs(&reader, &writer, &id, n % 2 == 1).await);
        }
        println!(
            "own writes, then another manager's update: seen after at most {:?}",
            waits.iter().max().unwrap()
        );
    });
}

/// The same for a manager whose first use of the cache is a write: it has
/// never read anything.
#[test]
fn cached_own_writes_before_any_read_drop_what_another_manager_changed() {
    let server = RedisServer::start(Durability::None);
    runtime().block_on(async {
        for update in [false, true] {
            let (reader, writer) = reader_and_writer(&server, "first-write").await;
            let wait = own_write_then_theirs(&reader, &writer, "a", update).await;
            println!(
                "a first write (update: {update}), then another manager's: seen after {wait:?}"
            );
        }
    });
}

fn now_ns() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// The writer process of `cached_staleness_stays_within_max_stale`.
#[test]
fn child_writer() {
    if std::env::var("CK_ROLE").is_err() || std::env::var("CK_WRITER").is_err() {
        return; // only meaningful as a child process
    }
    let url = std::env::var("CK_URL").unwrap();
    let ns = std::env::var("CK_NS").unwrap();
    let client_clock = std::env::var("CK_CLIENT_CLOCK").is_ok();
    runtime().block_on(async move {
        let m = stale_test_manager(&url, &ns, None, client_clock).await;
        let start = Instant::now();
        let mut lines = String::new();
        while start.elapsed() < Duration::from_millis(1_500) {
            let invoked = now_ns();
            let s = m
                .update_context("a", json!({ "t": invoked.to_string() }), None)
                .await
                .unwrap();
            lines.push_str(&format!("w {} {invoked} {}\n", s.revision, now_ns()));
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        print!("{lines}");
    });
}

/// A manager of the staleness test: cached when `max_stale` is given; with
/// a client clock (then the cache is not tracked, only `max_stale` bounds it).
async fn stale_test_manager(
    url: &str,
    ns: &str,
    max_stale: Option<Duration>,
    client_clock: bool,
) -> ContextManager {
    let mut backend = RedisBackend::new(url, ns).unwrap();
    if let Some(max_stale) = max_stale {
        backend = backend.cached_reads(max_stale);
    }
    if client_clock {
        backend = backend.client_clock();
    }
    ContextManager::builder(ManagerConfig::default())
        .clock(ManualClock::new(1_000))
        .connect(backend)
        .await
        .unwrap()
}

/// Staleness of cached reads under a writer in another process, tracked
/// (server clock) and untracked (client clock: only `max_stale` bounds it).
#[test]
fn cached_staleness_stays_within_max_stale() {
    let server = RedisServer::start(Durability::None);
    for tracked in [true, false] {
        let ns = fresh_namespace("stale");
        let max_stale = Duration::from_millis(50);
        let rt = runtime();
        let reader = rt.block_on(async {
            let m = stale_test_manager(&server.url(), &ns, Some(max_stale), !tracked).await;
            m.create_context("a", json!({})).await.unwrap();
            m
        });
        // Reads until the writer process has ended, however long it takes
        // to start.
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reads = rt.spawn({
            let (m, done) = (reader.clone(), Arc::clone(&done));
            async move {
                let mut out = Vec::new();
                while !done.load(Ordering::SeqCst) {
                    let invoked = now_ns();
                    let s = m.get_context("a").await.unwrap();
                    out.push((invoked, s.revision));
                    tokio::task::yield_now().await;
                }
                out
            }
        });
        let mut env = vec![
            ("CK_URL", server.url()),
            ("CK_NS", ns.clone()),
            ("CK_WRITER", "1".into()),
        ];
        if !tracked {
            env.push(("CK_CLIENT_CLOCK", "1".into()));
        }
        let outs = children("child_writer", 1, &env);
        done.store(true, Ordering::SeqCst);
        let reads = rt.block_on(reads).unwrap();
        // revision -> (invoked, returned) of each write, in ns.
        let writes: std::collections::HashMap<u64, (u128, u128)> = outs[0]
            .lines()
            .filter_map(|l| {
                let mut p = l.strip_prefix("w ")?.split(' ');
                let rev = p.next()?.parse().ok()?;
                let invoked = p.next()?.parse().ok()?;
                Some((rev, (invoked, p.next()?.parse().ok()?)))
            })
            .collect();
        assert!(writes.len() > 100, "the writer wrote: {}", writes.len());
        // The writer's active window: from its first write's invocation to
        // its last write's return.
        let first = writes.values().map(|w| w.0).min().unwrap();
        let last = writes.values().map(|w| w.1).max().unwrap();
        // A read returning revision r is stale by at least (its start - the
        // return of the write of r + 1), if that write had returned.
        let staleness = |&(invoked, rev): &(u128, u64)| match writes.get(&(rev + 1)) {
            Some(&(_, returned)) if returned < invoked => (invoked - returned) as f64 / 1e6,
            _ => 0.0,
        };
        let mut all: Vec<f64> = reads.iter().map(staleness).collect();
        all.sort_by(f64::total_cmp);
        let mut active: Vec<f64> = reads
            .iter()
            .filter(|(invoked, _)| (first..=last).contains(invoked))
            .map(staleness)
            .collect();
        active.sort_by(f64::total_cmp);
        let pct = |v: &[f64], p: f64| v[((v.len() - 1) as f64 * p) as usize];
        let kind = if tracked { "tracked" } else { "untracked" };
        println!(
            "cached reads ({kind}): {} reads, {} while the writer wrote ({} writes in {:.0} ms); staleness ms then p50 {:.3} p99 {:.3} max {:.3}; max over all reads {:.3} (max_stale {} ms)",
            all.len(),
            active.len(),
            writes.len(),
            (last - first) as f64 / 1e6,
            pct(&active, 0.5),
            pct(&active, 0.99),
            pct(&active, 1.0),
            pct(&all, 1.0),
            max_stale.as_millis()
        );
        assert!(
            pct(&all, 1.0) <= max_stale.as_secs_f64() * 1e3,
            "a read was staler than max_stale"
        );
        assert!(
            active.len() >= 200,
            "only {} reads while the writer wrote",
            active.len()
        );
        if !tracked {
            // Untracked, staleness is real: the bound is what holds it.
            assert!(
                pct(&active, 0.99) > 0.0,
                "the untracked cache served cached states"
            );
        }
    }
}

// ---- background tasks ------------------------------------------------------

/// `spawn_cleanup` and `spawn_auto_sync` work unchanged on shared managers.
#[test]
fn background_tasks_work_on_a_shared_manager() {
    let server = RedisServer::start(Durability::None);
    let ns = fresh_namespace("tasks");
    runtime().block_on(async {
        let a = connect(&server.url(), &ns, ManagerConfig::default()).await;
        let b = connect(&server.url(), &ns, ManagerConfig::default()).await;
        let mut heard = b.subscribe();
        let opts = contextkit::CreateOptions {
            ttl_ms: Some(30),
            ..Default::default()
        };
        a.create_context_with("short", json!({}), opts)
            .await
            .unwrap();
        let _cleanup = contextkit::spawn_cleanup(&a, Duration::from_millis(10));
        // b hears the expiry that a's background sweep committed.
        let expired = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                if let Some(ContextEvent::Expired { id, .. }) = heard.next().await {
                    return id;
                }
            }
        })
        .await
        .expect("the sweep ran");
        assert_eq!(expired, "short");

        a.create_context("doc", json!({ "n": 0 })).await.unwrap();
        let tracker =
            contextkit::ContextTracker::new(a.clone(), contextkit::TrackerConfig::default());
        tracker.activate_context("doc").await.unwrap();
        tracker.update_state(json!({ "n": 1 })).await.unwrap();
        let _sync = contextkit::spawn_auto_sync(&tracker, Duration::from_millis(10));
        let t = Instant::now();
        while b.get_context("doc").await.unwrap().version < 2 {
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "auto-sync pushed the edit"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(b.get_context("doc").await.unwrap().data, json!({ "n": 1 }));
    });
}

// ---- edges of the backend --------------------------------------------------

/// A write that got no answer within its timeout settles: here Redis was
/// busy past the timeout and ran it afterwards, and the call says so (Ok,
/// applied once) instead of "outcome unknown".
#[test]
fn a_write_without_an_answer_settles_to_its_real_outcome() {
    let server = RedisServer::start_with(Durability::None, &["--enable-debug-command", "yes"]);
    let ns = fresh_namespace("settle");
    runtime().block_on(async {
        let m = connect_with(
            &server.url(),
            &ns,
            ManagerConfig::default(),
            Duration::from_millis(400),
        )
        .await;
        m.create_context("a", json!({ "n": 0 })).await.unwrap();
        let port = server.port;
        let sleeper = std::thread::spawn(move || {
            std::process::Command::new("redis-cli")
                .args(["-p", &port.to_string(), "DEBUG", "SLEEP", "0.6"])
                .output()
                .unwrap()
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let t = Instant::now();
        let s = m
            .update_context("a", json!({ "n": 1 }), None)
            .await
            .unwrap();
        assert!(
            t.elapsed() >= Duration::from_millis(400),
            "it waited past its timeout"
        );
        assert_eq!(s.version, 2);
        sleeper.join().unwrap();
        assert_eq!(m.get_context("a").await.unwrap().version, 2, "applied once");
    });
}

/// While a script keeps Redis busy (it answers `BUSY` to everything else),
/// reads wait for it within their timeout: also those sent as a pipeline
/// with the namespace's epoch, whose `BUSY` redis-rs reports without a code
/// (they failed at once with `STORAGE`).
#[test]
fn reads_wait_out_a_busy_script() {
    const SCRIPT: &str = "local s = redis.call('TIME') \
        local start = s[1] * 1000000 + s[2] \
        while true do \
          local n = redis.call('TIME') \
          if n[1] * 1000000 + n[2] - start > 800000 then return 1 end \
        end";
    let server = RedisServer::start_with(Durability::None, &["--busy-reply-threshold", "20"]);
    let ns = fresh_namespace("busy");
    runtime().block_on(async {
        let m = connect(&server.url(), &ns, ManagerConfig::default()).await;
        m.create_context("a", json!({})).await.unwrap();
        m.create_recovery_point("a").await.unwrap();
        let port = server.port.to_string();
        let script = std::thread::spawn(move || {
            std::process::Command::new("redis-cli")
                .args(["-p", &port, "EVAL", SCRIPT, "0"])
                .output()
                .unwrap()
        });
        // Until Redis answers BUSY: the script runs.
        let t = Instant::now();
        while !server.cli(&["PING"]).contains("BUSY") {
            assert!(t.elapsed() < Duration::from_secs(5), "the script never ran");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let (len, ids, points, got) = tokio::join!(
            m.try_len(),
            m.try_list_context_ids(),
            m.recovery_points("a"),
            m.get_context("a"),
        );
        assert_eq!(len.unwrap(), 1);
        assert_eq!(ids.unwrap(), ["a"]);
        assert_eq!(points.unwrap().len(), 1);
        assert_eq!(got.unwrap().version, 1);
        let out = script.join().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1");
    });
}

/// An operation given up by ck2_settle never applies, even if its write
/// arrives afterwards.
#[test]
fn a_settled_operation_never_applies_late() {
    let server = RedisServer::start(Durability::None);
    let ns = fresh_namespace("abort");
    runtime().block_on(async {
        let m = connect(&server.url(), &ns, ManagerConfig::default()).await;
        m.create_context("a", json!({ "n": 0 })).await.unwrap();
    });
    let meta = format!("ck:{{{ns}}}:meta");
    let epoch = server.cli(&["HGET", &meta, "epoch"]).trim().to_owned();
    let op = format!("ck:{{{ns}}}:op:late");
    assert!(
        server
            .cli(&["FCALL", "ck2_settle", "2", &meta, &op, "60000"])
            .contains("ABORTED")
    );
    let late = server.cli(&[
        "FCALL",
        "ck2_write",
        "1",
        &meta,
        "update",
        &epoch,
        "late",
        "60000",
        "100",
        "",
        "a",
        "{\"n\":9}",
        "",
        "",
    ]);
    assert!(late.contains("ABORTED"), "{late}");
    runtime().block_on(async {
        let m = connect(&server.url(), &ns, ManagerConfig::default()).await;
        assert_eq!(
            m.get_context("a").await.unwrap().version,
            1,
            "the late write did not apply"
        );
    });
}

/// A namespace whose revision went back (Redis restored from an older copy)
/// is reported, not silently reused.
#[test]
fn a_namespace_that_went_back_is_reported() {
    let server = RedisServer::start(Durability::None);
    let ns = fresh_namespace("back");
    runtime().block_on(async {
        let m = connect(&server.url(), &ns, ManagerConfig::default()).await;
        let _events = m.subscribe();
        for n in 0..5 {
            m.create_context(&format!("c{n}"), json!({})).await.unwrap();
        }
        server.cli(&["HSET", &format!("ck:{{{ns}}}:meta"), "rev", "1"]);
        let t = Instant::now();
        loop {
            match m.get_context("c0").await {
                Err(e) => {
                    assert!(e.to_string().contains("went back"), "{e}");
                    break;
                }
                Ok(_) => assert!(t.elapsed() < Duration::from_secs(10), "not detected"),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
}

/// A stream entry the library did not write is one missed event, and the
/// events after it still arrive.
#[test]
fn an_unreadable_stream_entry_is_one_lagged_event() {
    let server = RedisServer::start(Durability::None);
    let ns = fresh_namespace("junk");
    runtime().block_on(async {
        let m = connect(&server.url(), &ns, ManagerConfig::default()).await;
        let mut events = m.subscribe();
        let s = m.create_context("a", json!({})).await.unwrap();
        let junk = s.revision + 1;
        server.cli(&[
            "HSET",
            &format!("ck:{{{ns}}}:meta"),
            "rev",
            &junk.to_string(),
        ]);
        server.cli(&[
            "XADD",
            &format!("ck:{{{ns}}}:ev"),
            &format!("{junk}-0"),
            "t",
            "renamed",
            "i",
            "a",
            "v",
            "2",
        ]);
        let u = m
            .update_context("a", json!({ "n": 1 }), None)
            .await
            .unwrap();
        let seen = events_until(&mut events, u.revision).await;
        assert_eq!(
            seen.iter()
                .map(|e| serde_json::to_string(e).unwrap())
                .collect::<Vec<_>>(),
            [
                serde_json::to_string(&ContextEvent::Created {
                    id: "a".into(),
                    version: 1,
                    revision: s.revision
                })
                .unwrap(),
                serde_json::to_string(&ContextEvent::Lagged { missed: 1 }).unwrap(),
                serde_json::to_string(&ContextEvent::Updated {
                    id: "a".into(),
                    version: 2,
                    revision: u.revision
                })
                .unwrap(),
            ]
        );
    });
}

/// Numbers Redis could not store are refused before anything changes;
/// large but storable ones work.
#[test]
fn out_of_range_numbers_are_refused_before_any_change() {
    let server = RedisServer::start(Durability::None);
    let ns = fresh_namespace("range");
    runtime().block_on(async {
        let config = ManagerConfig {
            max_recovery_points: usize::MAX,
            ..ManagerConfig::default()
        };
        let m = connect(&server.url(), &ns, config).await;
        let huge = contextkit::CreateOptions {
            ttl_ms: Some(u64::MAX),
            ..Default::default()
        };
        let err = m
            .create_context_with("a", json!({}), huge)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "INVALID_ARGUMENT", "{err}");
        let s = m.create_context("b", json!({})).await.unwrap();
        assert_eq!(s.revision, 1, "the refused create used no revision");
        m.create_recovery_point("b").await.unwrap();
        assert_eq!(m.recovery_points("b").await.unwrap().len(), 1);
        let long = contextkit::CreateOptions {
            ttl_ms: Some(1 << 52),
            ..Default::default()
        };
        assert!(
            m.create_context_with("c", json!({}), long)
                .await
                .unwrap()
                .expires_at_ms
                .is_some()
        );
    });
}

/// A Redis that evicts keys under memory pressure is refused at connect.
#[test]
fn a_redis_that_evicts_keys_is_refused() {
    let server = RedisServer::start_with(Durability::None, &["--maxmemory-policy", "allkeys-lru"]);
    runtime().block_on(async {
        let backend = RedisBackend::new(&server.url(), "evicting").unwrap();
        let err = ContextManager::builder(ManagerConfig::default())
            .connect(backend)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "INVALID_ARGUMENT");
        assert!(err.to_string().contains("noeviction"), "{err}");
    });
}

/// No server on the port: `STORAGE` at connect, whose source is the Redis
/// client's error (a refused connection) and whose message says it.
#[test]
fn a_refused_connection_is_the_source_of_its_storage_error() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("redis://{}", free.local_addr().unwrap());
    drop(free);
    runtime().block_on(async {
        let backend = RedisBackend::new(&url, "nobody")
            .unwrap()
            .timeout(Duration::from_secs(2));
        let err = ContextManager::builder(ManagerConfig::default())
            .connect(backend)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "STORAGE");
        let source = std::error::Error::source(&err)
            .and_then(|s| s.downcast_ref::<redis::RedisError>())
            .unwrap_or_else(|| panic!("no RedisError as the source of {err:?}"));
        assert!(source.is_connection_refusal(), "{source:?}");
        assert_eq!(
            err.to_string(),
            format!("storage error: redis connect: {source}")
        );
    });
}

/// Ids and metadata of any text (braces, colons, newlines, emoji) and exact
/// numbers round-trip through Redis.
#[test]
fn any_text_and_exact_numbers_round_trip() {
    let server = RedisServer::start(Durability::None);
    let ns = fresh_namespace("text");
    runtime().block_on(async {
        let a = connect(&server.url(), &ns, ManagerConfig::default()).await;
        let b = connect(&server.url(), &ns, ManagerConfig::default()).await;
        let metadata: std::collections::BTreeMap<String, String> = [
            ("line\nbreak".to_owned(), "two\nlines\r\n".to_owned()),
            ("emoji 🎉".to_owned(), "ünïcödé {x}:y".to_owned()),
        ]
        .into();
        let data: serde_json::Value = serde_json::from_str(
            r#"{"f":2.001484629778296e-19,"big":911119002252500900021,"s":"a\nb","n":null}"#,
        )
        .unwrap();
        for id in ["{ns}:c:x", "a:b}", "tab-free 🎉", "ck:{other}:meta"] {
            let opts = contextkit::CreateOptions {
                metadata: metadata.clone(),
                ..Default::default()
            };
            a.create_context_with(id, data.clone(), opts).await.unwrap();
            let s = b.get_context(id).await.unwrap();
            assert_eq!(
                (s.data.value().clone(), s.metadata.clone()),
                (data.clone(), metadata.clone()),
                "{id}"
            );
        }
        assert_eq!(b.len().await, 4);
    });
}

/// Sliding expiry is each manager's choice, not the namespace's: managers
/// that differ in it join one namespace (other settings must match), and
/// only the sliding one's reads restart a TTL.
#[test]
fn sliding_expiry_is_each_managers_choice_on_one_namespace() {
    let server = RedisServer::start(Durability::None);
    let ns = fresh_namespace("sliding");
    runtime().block_on(async {
        let clock = ManualClock::new(1_000);
        let join = |config: ManagerConfig| {
            let backend = RedisBackend::new(&server.url(), &ns)
                .unwrap()
                .client_clock();
            ContextManager::builder(config)
                .clock(clock.clone())
                .connect(backend)
        };
        let plain = join(ManagerConfig::default()).await.unwrap();
        let sliding = ManagerConfig {
            sliding_ttl: true,
            ..ManagerConfig::default()
        };
        let slider = join(sliding.clone()).await.unwrap();
        let other = ManagerConfig {
            max_contexts: 5,
            ..sliding
        };
        let err = join(other).await.unwrap_err();
        assert_eq!(err.code(), "INVALID_ARGUMENT");
        assert!(err.to_string().contains("maxContexts"), "{err}");

        let opts = contextkit::CreateOptions {
            ttl_ms: Some(100),
            ..Default::default()
        };
        let s = plain
            .create_context_with("s", json!({}), opts)
            .await
            .unwrap();
        clock.advance(60);
        assert_eq!(
            plain.get_context("s").await.unwrap().expires_at_ms,
            Some(1_100)
        );
        let slid = slider.get_context("s").await.unwrap();
        assert_eq!(
            (slid.version, slid.revision, slid.expires_at_ms),
            (s.version, s.revision, Some(1_160))
        );
        clock.advance(60);
        assert_eq!(
            plain.get_context("s").await.unwrap().expires_at_ms,
            Some(1_160)
        );
    });
}

/// Data as deep as a manager accepts is read back as it was written, by the
/// manager that wrote it and by another one (every read comes from Redis).
#[test]
fn the_deepest_data_accepted_reads_back() {
    let url = server().lock().unwrap().url();
    runtime().block_on(async {
        let ns = fresh_namespace("deep");
        let a = connect(&url, &ns, ManagerConfig::default()).await;
        let b = connect(&url, &ns, ManagerConfig::default()).await;
        // The deepest nesting a create accepts (one more level is refused).
        let mut deep = json!({});
        let mut levels = 1;
        loop {
            let deeper = json!({ "d": deep.clone() });
            if contextkit::json_depth(deeper.to_string().as_bytes()) > contextkit::MAX_DEPTH {
                break;
            }
            deep = deeper;
            levels += 1;
        }
        assert_eq!(levels, contextkit::MAX_DEPTH);
        a.create_context("deep", deep.clone()).await.unwrap();
        a.create_recovery_point("deep").await.unwrap();
        for m in [&a, &b] {
            assert_eq!(m.get_context("deep").await.unwrap().data, deep);
            assert_eq!(m.recovery_points("deep").await.unwrap()[0].data, deep);
            assert_eq!(m.list_contexts().await.len(), 1);
        }
    });
}

// ---- reads sent together ---------------------------------------------------

/// 64 tasks read 120 ids (100 there, 20 not) while another task updates
/// them: every read answers its own id at a version no older than what it
/// saw of that id before, and concurrent reads went to Redis together
/// (fewer commands than reads, some of them `MGET`).
#[test]
fn concurrent_gets_go_together_and_each_answers_its_own_id() {
    let server = RedisServer::start(Durability::None);
    let ns = fresh_namespace("mget");
    runtime().block_on(async {
        let m = connect(&server.url(), &ns, ManagerConfig::default()).await;
        for i in 0..100 {
            m.create_context(&format!("k{i}"), json!({ "i": i }))
                .await
                .unwrap();
        }
        assert_eq!(server.cli(&["CONFIG", "RESETSTAT"]).trim(), "OK");
        let writer = {
            let m = m.clone();
            tokio::spawn(async move {
                for n in 0..300u64 {
                    let i = n % 100;
                    m.update_context(&format!("k{i}"), json!({ "i": i, "n": n }), None)
                        .await
                        .unwrap();
                }
            })
        };
        let readers: Vec<_> = (0..64u64)
            .map(|t| {
                let m = m.clone();
                tokio::spawn(async move {
                    let mut seen = [0u64; 100];
                    for r in 0..100u64 {
                        let i = (t * 7 + r * 13) % 120;
                        let got = m.get_context(&format!("k{i}")).await;
                        if i >= 100 {
                            assert_eq!(got.unwrap_err().code(), "NOT_FOUND", "k{i}");
                            continue;
                        }
                        let state = got.unwrap();
                        assert_eq!(state.id, format!("k{i}"));
                        assert_eq!(state.data["i"], json!(i), "k{i} answered another id's data");
                        let at = state.version;
                        assert!(
                            at >= seen[i as usize],
                            "k{i} went back from {} to {at}",
                            seen[i as usize]
                        );
                        seen[i as usize] = at;
                    }
                })
            })
            .collect();
        let all = async {
            for r in readers {
                r.await.unwrap();
            }
            writer.await.unwrap();
        };
        tokio::time::timeout(Duration::from_secs(60), all)
            .await
            .expect("every read answered");
        let (gets, mgets) = (calls(&server, "get"), calls(&server, "mget"));
        println!("6,400 reads: {gets} GET and {mgets} MGET");
        assert!(mgets > 0, "no reads went together");
        assert!(
            gets + mgets < 6_400,
            "{gets} GET and {mgets} MGET for 6,400 reads"
        );
    });
}

/// A get is not held up by another made at the same time that its caller
/// dropped, or holds without polling: the task that sends them answers
/// both. (Polled by hand on one thread: the two go as one `MGET`.)
#[test]
fn a_get_is_not_held_up_by_another_dropped_or_not_polled() {
    let server = RedisServer::start(Durability::None);
    let ns = fresh_namespace("lead");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let m = connect(&server.url(), &ns, ManagerConfig::default()).await;
        m.create_context("a", json!({ "n": "a" })).await.unwrap();
        m.create_context("b", json!({ "n": "b" })).await.unwrap();
        for hold in [false, true] {
            assert_eq!(server.cli(&["CONFIG", "RESETSTAT"]).trim(), "OK");
            let mut first = Box::pin(m.get_context("a"));
            assert!(futures::poll!(&mut first).is_pending());
            let mut second = Box::pin(m.get_context("b"));
            assert!(futures::poll!(&mut second).is_pending());
            let first = hold.then_some(first);
            let b = tokio::time::timeout(Duration::from_secs(5), second)
                .await
                .expect("a get answers whatever became of the other")
                .unwrap();
            assert_eq!(b.data, json!({ "n": "b" }));
            assert_eq!(
                (calls(&server, "get"), calls(&server, "mget")),
                (0, 1),
                "hold: {hold}"
            );
            if let Some(first) = first {
                assert_eq!(first.await.unwrap().data, json!({ "n": "a" }));
            }
        }
    });
}

/// A get made from a runtime that then shuts down (its caller gave up at
/// once; the task that would send it was dropped before it ran) holds up
/// no later get of the manager.
#[test]
fn a_get_from_a_runtime_that_shuts_down_holds_up_no_other() {
    let server = RedisServer::start(Durability::None);
    let ns = fresh_namespace("runtimes");
    let rt = runtime();
    let m = rt.block_on(async {
        let m = connect(&server.url(), &ns, ManagerConfig::default()).await;
        m.create_context("y", json!({ "n": 1 })).await.unwrap();
        m
    });
    let other = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    other.block_on(async {
        let mut get = Box::pin(m.get_context("x"));
        assert!(futures::poll!(&mut get).is_pending());
    });
    drop(other);
    rt.block_on(async {
        let y = tokio::time::timeout(Duration::from_secs(5), m.get_context("y"))
            .await
            .expect("a later get answers")
            .unwrap();
        assert_eq!(y.data, json!({ "n": 1 }));
    });
}

/// Gets sent together that get no answer each end with `STORAGE`, within
/// the timeout.
#[test]
fn gets_sent_together_fail_together_within_the_timeout() {
    let mut server = RedisServer::start(Durability::None);
    let ns = fresh_namespace("down");
    runtime().block_on(async {
        let timeout = Duration::from_millis(500);
        let m = connect_with(&server.url(), &ns, ManagerConfig::default(), timeout).await;
        m.create_context("a", json!({})).await.unwrap();
        server.kill();
        let t = Instant::now();
        let reads = (0..32).map(|i| {
            let m = m.clone();
            tokio::spawn(async move { m.get_context(&format!("k{i}")).await.map(|_| ()) })
        });
        for read in reads.collect::<Vec<_>>() {
            let e = read.await.unwrap().unwrap_err();
            assert_eq!(e.code(), "STORAGE", "{e}");
        }
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    });
}
