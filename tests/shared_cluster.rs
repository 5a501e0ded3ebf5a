//! Shared mode on a 3-primary Redis Cluster started by the test (three
//! `redis-server --cluster-enabled yes` on free ports of 127.0.0.1 joined by
//! `redis-cli --cluster create`): the conformance suite on a namespace there,
//! namespaces spread over the three primaries, and a namespace whose slot
//! is resharded to another primary, twice, under a workload.

mod cases;
mod redis_server;

use contextkit::{ContextEvent, ContextManager, ManagerConfig, ManualClock, RedisBackend, json};
use futures::StreamExt;
use redis_server::cluster::{RedisCluster, Reply, Resharding};
use std::collections::BTreeSet;
use std::future::Future;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// One cluster for the tests of this process that do not move slots; each
/// of them works in namespaces of its own.
fn cluster() -> &'static RedisCluster {
    static CLUSTER: OnceLock<RedisCluster> = OnceLock::new();
    CLUSTER.get_or_init(RedisCluster::start)
}

fn fresh_namespace(tag: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{tag}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    )
}

/// The key every function of the library declares: where Redis routes a
/// call of the namespace.
fn meta_key(namespace: &str) -> String {
    format!("ck:{{{namespace}}}:meta")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn backend(urls: &[String], namespace: &str) -> RedisBackend {
    let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
    RedisBackend::cluster(&urls, namespace).unwrap()
}

// ---- the conformance suite ---------------------------------------------

/// A shared manager on the cluster, on a manual clock (the namespace takes
/// its times from it), in a namespace of its own.
fn cluster_manager(config: ManagerConfig, clock: ManualClock) -> ContextManager {
    let urls = cluster().urls();
    let handle = tokio::runtime::Handle::current();
    // The cases build managers synchronously; connect on another thread.
    std::thread::spawn(move || {
        handle.block_on(async move {
            let backend = backend(&urls, &fresh_namespace("case")).client_clock();
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

fn on_cluster(case: impl Future<Output = ()>) {
    cases::with_factory(Rc::new(cluster_manager), || runtime().block_on(case));
}

macro_rules! cases_on_cluster {
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

mod conformance_on_cluster {
    crate::for_each_case!(cases_on_cluster, on_cluster);
}

// ---- namespaces over the slots -----------------------------------------

/// A newer release's library (the same functions, a higher version) stays
/// on every primary: a manager of this release loads its own only where a
/// node has none or an older one.
#[test]
fn a_newer_library_stays_on_every_primary() {
    let cluster = cluster();
    let library = include_str!("../native/redis/contextkit.lua");
    let line = library
        .lines()
        .find(|l| l.starts_with("local LIBRARY_VERSION = '"))
        .unwrap();
    let newer = library.replace(line, "local LIBRARY_VERSION = '1000000'");
    for node in &cluster.nodes {
        let loaded = node.command(&["FUNCTION", "LOAD", "REPLACE", &newer]);
        assert_eq!(loaded.text(), "contextkit_2");
    }
    let urls = cluster.urls();
    runtime().block_on(async {
        let m = ContextManager::builder(ManagerConfig::default())
            .connect(backend(&urls, &fresh_namespace("newer")))
            .await
            .unwrap();
        m.create_context("a", json!({})).await.unwrap();
    });
    for node in &cluster.nodes {
        let version = node.command(&["FCALL_RO", "ck2_version", "0"]);
        assert_eq!(version.text(), "1000000", "port {}", node.port);
    }
}

/// Twelve namespaces, four on each primary: each is served by the node of
/// its slot and sees only its own contexts.
#[test]
fn namespaces_spread_over_the_primaries_and_stay_apart() {
    let cluster = cluster();
    // Pick names until every primary holds four of them.
    let mut chosen: Vec<(String, usize)> = Vec::new();
    let mut per_node = [0_usize; 3];
    while chosen.len() < 12 {
        let ns = fresh_namespace("spread");
        let node = cluster.owner_of(&meta_key(&ns));
        if per_node[node] < 4 {
            per_node[node] += 1;
            chosen.push((ns, node));
        }
    }
    let urls = cluster.urls();
    runtime().block_on(async {
        let mut managers = Vec::new();
        for (ns, _) in &chosen {
            let m = ContextManager::builder(ManagerConfig::default())
                .connect(backend(&urls, ns))
                .await
                .unwrap();
            managers.push(m);
        }
        // The same ids in every namespace, plus one of its own.
        for (i, m) in managers.iter().enumerate() {
            for id in ["a", "b", &format!("only-{i}")] {
                let s = m.create_context(id, json!({ "ns": i })).await.unwrap();
                assert_eq!(s.version, 1);
            }
        }
        for (i, m) in managers.iter().enumerate() {
            let mut want = vec!["a".to_owned(), "b".to_owned(), format!("only-{i}")];
            want.sort();
            assert_eq!(m.list_context_ids().await, want, "namespace {i}");
            for s in m.list_contexts().await {
                assert_eq!(s.data["ns"], json!(i), "{} of namespace {i}", s.id);
            }
            assert_eq!(
                m.get_context("only-0").await.map(|s| s.id.clone()).ok(),
                (i == 0).then(|| "only-0".to_owned())
            );
        }
    });
    // Each namespace's keys live on the node that serves its slot, and only there.
    for (ns, node) in &chosen {
        let meta = meta_key(ns);
        for (n, server) in cluster.nodes.iter().enumerate() {
            let held = server.command(&["EXISTS", &meta]) == Reply::Int(1);
            assert_eq!(held, n == *node, "{meta} on node {n}");
        }
    }
}

// ---- resharding ----------------------------------------------------------

/// How a workload call ended.
#[derive(Default, Debug)]
struct Tally {
    increments: u64,
    conflicts: u64,
    creates: Vec<String>,
    /// Calls that ended with another error: (code, message).
    errors: Vec<(&'static str, String)>,
    /// When each call ended, and how long it took.
    calls: Vec<(Instant, Duration)>,
}

impl Tally {
    fn slowest(&self) -> Duration {
        self.calls.iter().map(|c| c.1).max().unwrap_or_default()
    }

    /// How many calls ended between `from` and `to`.
    fn ended(&self, from: Instant, to: Instant) -> usize {
        self.calls
            .iter()
            .filter(|c| from <= c.0 && c.0 < to)
            .count()
    }
}

/// One move of a slot, as the test saw it.
#[derive(Debug)]
#[allow(dead_code)] // printed
struct Move {
    to: usize,
    keys: usize,
    took: Duration,
    /// Workload calls that ended while it ran.
    calls: usize,
    /// `ASK` redirections the source answered, and `TRYAGAIN` the target
    /// answered (a write whose declared keys were not all there yet).
    asked: u64,
    /// Errors the source answered (functions refused during the migration).
    refused: u64,
}

/// How many error replies starting with `prefix` `node` gave since its
/// statistics were last reset.
fn error_count(node: &redis_server::cluster::Node, prefix: &str) -> u64 {
    let stats = node.command(&["INFO", "errorstats"]).text();
    stats
        .lines()
        .find_map(|l| l.strip_prefix(&format!("errorstat_{prefix}:count=")))
        .map_or(0, |n| n.trim().parse().unwrap())
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

/// A namespace's slot moves to another primary and on to the third while
/// four tasks increment one counter by compare-and-set and two create
/// contexts: every call ends Ok (or in a version conflict that the
/// incrementer retries), the counter is exact, the writer and a manager
/// that only reads the stream see every revision once, in order, and a
/// manager that connects afterwards sees it all.
#[test]
fn a_namespace_keeps_working_while_its_slot_moves() {
    // A cluster of its own: moving slots must not disturb the other tests.
    let cluster = RedisCluster::start();
    let ns = fresh_namespace("moving");
    let meta = meta_key(&ns);
    let slot = cluster.keyslot(&meta);
    let home = cluster.owner(slot);
    let urls = cluster.urls();
    let rt = runtime();
    // The creators run unbounded: a capacity no run comes near (the
    // default, 10,000, a fast machine could reach).
    let config = || ManagerConfig {
        max_contexts: 10_000_000,
        ..ManagerConfig::default()
    };
    // A call of the namespace may wait while its slot migrates (see below;
    // a move takes about 0.4 s here, and a call Redis answered TRYAGAIN is
    // tried again after 10 ms and up: the slowest call, printed, takes 1.3
    // to 5.4 s on a 2-core machine): the timeout leaves room for a machine
    // many times slower.
    let timeout = Duration::from_secs(30);
    let connect = || async {
        ContextManager::builder(config())
            .event_capacity(1 << 16)
            .connect(backend(&urls, &ns).timeout(timeout))
            .await
            .unwrap()
    };
    let (m, watcher) = rt.block_on(async {
        let m = connect().await;
        m.create_context("counter", json!({ "n": 0 }))
            .await
            .unwrap();
        (m, connect().await)
    });
    // The writer's subscriber, and one of a manager that only reads the
    // namespace's stream.
    let mut subs = [m.subscribe(), watcher.subscribe()];
    let first = rt.block_on(m.get_context("counter")).unwrap().revision;
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let incrementers = (0..4).map(|_| {
        let (m, stop, tally) = (m.clone(), Arc::clone(&stop), Arc::clone(&tally));
        rt.spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let t = Instant::now();
                let read = m.get_context("counter").await;
                let s = {
                    let mut tl = tally.lock().unwrap();
                    tl.calls.push((Instant::now(), t.elapsed()));
                    match read {
                        Ok(s) => s,
                        Err(e) => {
                            tl.errors.push((e.code(), e.to_string()));
                            continue;
                        }
                    }
                };
                let n = s.data["n"].as_u64().unwrap();
                let t = Instant::now();
                let result = m
                    .update_context("counter", json!({ "n": n + 1 }), Some(s.version))
                    .await;
                let mut tl = tally.lock().unwrap();
                tl.calls.push((Instant::now(), t.elapsed()));
                match result {
                    Ok(_) => tl.increments += 1,
                    Err(e) if e.code() == "VERSION_CONFLICT" => tl.conflicts += 1,
                    Err(e) => tl.errors.push((e.code(), e.to_string())),
                }
            }
        })
    });
    let creators = (0..2).map(|c| {
        let (m, stop, tally) = (m.clone(), Arc::clone(&stop), Arc::clone(&tally));
        rt.spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                let id = format!("c{c}-{n}");
                let t = Instant::now();
                let result = m.create_context(&id, json!({ "n": n })).await;
                let mut tl = tally.lock().unwrap();
                tl.calls.push((Instant::now(), t.elapsed()));
                match result {
                    Ok(_) => tl.creates.push(id),
                    Err(e) => tl.errors.push((e.code(), e.to_string())),
                }
            }
        })
    });
    // Readers of several contexts at once, one of them never made: on a
    // cluster each get goes alone (an MGET with a key that is not there
    // would be answered TRYAGAIN until the move ends).
    let readers = (0..2).map(|_| {
        let (m, stop, tally) = (m.clone(), Arc::clone(&stop), Arc::clone(&tally));
        rt.spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let mut ids: Vec<String> = tally
                    .lock()
                    .unwrap()
                    .creates
                    .iter()
                    .rev()
                    .take(3)
                    .cloned()
                    .collect();
                ids.push("counter".to_owned());
                ids.push("never-made".to_owned());
                let t = Instant::now();
                let reads = futures::future::join_all(ids.iter().map(|id| m.get_context(id))).await;
                let mut tl = tally.lock().unwrap();
                tl.calls.push((Instant::now(), t.elapsed()));
                for (id, read) in ids.iter().zip(reads) {
                    match read {
                        Ok(s) => assert_eq!(&s.id, id),
                        Err(e) if id == "never-made" && e.code() == "NOT_FOUND" => {}
                        Err(e) => tl.errors.push((e.code(), e.to_string())),
                    }
                }
            }
        })
    });
    let tasks: Vec<_> = incrementers.chain(creators).chain(readers).collect();
    // Away to another primary and on to the third, under the workload, in
    // batches of 10 keys, the namespace's meta key first (the key every
    // function of the library is routed by). A write declares the keys it
    // touches, so while they are split between two nodes Redis answers ASK
    // or TRYAGAIN (tried again) rather than running it against half a
    // namespace.
    let how = Resharding {
        first: vec![meta.clone()],
        // Longer than the longest pause between two tries of a refused
        // call (200 ms): every task calls during it, and is sent on by ASK.
        pause: Duration::from_millis(300),
        ..Resharding::default()
    };
    // Each move starts, and the test ends, with the workload running: at
    // least `between` after the last move, and once calls have ended since
    // then (a call Redis answered TRYAGAIN waits before it is tried again:
    // without this, the second move could run while every task waits).
    let between = Duration::from_millis(300);
    let resumed = |since: Instant| {
        std::thread::sleep(between);
        let deadline = Instant::now() + timeout;
        let ended = || {
            tally
                .lock()
                .unwrap()
                .calls
                .iter()
                .filter(|c| c.0 > since)
                .count()
        };
        while ended() < 20 {
            assert!(Instant::now() < deadline, "the workload stalled");
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    let mut moves = Vec::new();
    let mut windows = Vec::new();
    let mut since = Instant::now();
    for step in 1..=2 {
        resumed(since);
        let to = (home + step) % 3;
        let source = &cluster.nodes[cluster.owner(slot)];
        let target = &cluster.nodes[to];
        source.command(&["CONFIG", "RESETSTAT"]);
        target.command(&["CONFIG", "RESETSTAT"]);
        let t = Instant::now();
        let keys = cluster.move_slot_with(slot, to, &how);
        since = Instant::now();
        windows.push((t, since));
        moves.push(Move {
            to,
            keys,
            took: t.elapsed(),
            calls: 0,
            asked: [source, target]
                .iter()
                .map(|n| error_count(n, "ASK") + error_count(n, "TRYAGAIN"))
                .sum(),
            refused: error_count(source, "ERR"),
        });
    }
    resumed(since);
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        rt.block_on(t).unwrap();
    }
    let tally = std::mem::take(&mut *tally.lock().unwrap());
    for (m, (from, to)) in moves.iter_mut().zip(&windows) {
        m.calls = tally.ended(*from, *to);
    }
    eprintln!(
        "{moves:#?}\nincrements {}, conflicts {}, creates {}, errors {}, slowest call {:?} (timeout {timeout:?})",
        tally.increments,
        tally.conflicts,
        tally.creates.len(),
        tally.errors.len(),
        tally.slowest(),
    );
    assert_eq!(cluster.owner(slot), (home + 2) % 3);
    let mgets: u64 = cluster
        .nodes
        .iter()
        .map(|n| {
            let stats = n.command(&["INFO", "commandstats"]).text();
            stats
                .lines()
                .find_map(|l| l.strip_prefix("cmdstat_mget:calls="))
                .map_or(0, |c| c.split(',').next().unwrap().parse().unwrap())
        })
        .sum();
    assert_eq!(mgets, 0, "gets on a cluster go alone");
    // The workload met each migration: the source redirected calls (ASK)
    // or the target had writes retried (TRYAGAIN: a write declares its
    // keys, and some were not there yet).
    assert!(moves.iter().all(|m| m.asked > 0), "{moves:?}");
    let mut kinds: Vec<(&str, &str)> = tally
        .errors
        .iter()
        .map(|(code, message)| (*code, message.as_str()))
        .collect();
    kinds.sort_unstable();
    kinds.dedup();
    assert!(
        tally.errors.is_empty(),
        "every call ended Ok; {} did not, with: {kinds:#?}",
        tally.errors.len()
    );
    assert!(tally.increments > 20, "the workload ran");
    rt.block_on(async {
        let counter = m.get_context("counter").await.unwrap();
        assert_eq!(counter.data["n"], json!(tally.increments), "no lost update");
        assert_eq!(counter.version, 1 + tally.increments);
        // Every commit after the counter's create: increments and creates.
        let last = first + tally.increments + tally.creates.len() as u64;
        for (who, sub) in ["writer", "watcher"].iter().zip(&mut subs) {
            let events = events_until(sub, last).await;
            let revs: Vec<u64> = events.iter().filter_map(ContextEvent::revision).collect();
            let lagged: Vec<_> = events.iter().filter(|e| e.revision().is_none()).collect();
            assert!(lagged.is_empty(), "{who}: {lagged:?}");
            assert!(
                revs.iter().copied().eq(first + 1..=last),
                "{who}: revisions {first}+1..={last} one by one, got {} from {:?} to {:?}",
                revs.len(),
                revs.first(),
                revs.last()
            );
        }
        // A manager that connects after the moves sees everything.
        let late = ContextManager::builder(config())
            .connect(backend(&urls, &ns))
            .await
            .unwrap();
        let mut want: BTreeSet<String> = tally.creates.iter().cloned().collect();
        want.insert("counter".to_owned());
        let ids: BTreeSet<String> = late.list_context_ids().await.into_iter().collect();
        assert_eq!(ids, want);
        assert_eq!(late.len().await, want.len());
        let seen = late.get_context("counter").await.unwrap();
        assert_eq!(seen.version, counter.version);
        assert_eq!(seen.revision, counter.revision);
        // And it writes there.
        let s = late
            .update_context(
                "counter",
                json!({ "n": tally.increments + 1 }),
                Some(seen.version),
            )
            .await
            .unwrap();
        assert_eq!(s.revision, last + 1);
    });
    // The namespace lives on its new node only.
    let now = cluster.owner(slot);
    for (n, server) in cluster.nodes.iter().enumerate() {
        let held = server.command(&["EXISTS", &meta]) == Reply::Int(1);
        assert_eq!(held, n == now, "{meta} on node {n}");
    }
}
