//! Linearizability across OS processes: each history is recorded by
//! `PROCESSES` copies of this test binary, each running `TASKS` tasks on one
//! shared manager over Redis, all on one fresh namespace of a private
//! `redis-server`. The tasks call create, get, update (mostly
//! compare-and-set), modify, touch, delete, recovery points and restore on
//! the few ids of
//! `evidence/lin.rs` with its small capacity; the parent merges the
//! processes' records into one history and the same checker must find a
//! legal sequential order of it.
//!
//! Time: processes cannot share a manual clock, so every manager runs on a
//! `ManualClock` fixed at `START_MS` and takes its times from it
//! (`RedisBackend::client_clock`); there are no TTLs, no clock advances and
//! no sweeps. Real-time order comes from the system clock (`SystemTime`, one
//! clock for every process of the machine): a call's invocation is read
//! before it starts and its response after it returns, and a tie counts as
//! an overlap, so the recorded intervals contain the real ones. (A step of
//! the system clock during a run would break that; nothing here steps it.)
//!
//! A deliberately broken shared backend ([`GetThenSet`]: create and update
//! decided on a prior read, then written unconditionally, so a modify's
//! compare-and-set is one too) runs the same workload and must be caught.
//!
//! `SHARED_LIN_SEEDS` sets the number of histories on the real backend
//! (default 50), `SHARED_LIN_BROKEN_SEEDS` the number on the broken one
//! (default 15: the checker needs its whole search to reject a history).
//!
//! `SHARED_LIN_MODIFY=0` leaves `modify_context` out of the workload (it is
//! in by default: its compare-and-set is on the revision it read, see
//! `modify_is_not_fooled_by_a_context_deleted_and_created_again`).

// Cleanup and clock advances are not in this workload.
#[allow(dead_code)]
#[path = "evidence/lin.rs"]
mod lin;
mod redis_server;

use contextkit::{
    Clock, ContextError, ContextManager, ContextState, CreateOptions, EventFeed, Joined,
    ManagerConfig, ManualClock, RedisBackend, SharedBackend, Snapshot, StorageFuture, Write,
    WriteReply,
};
use lin::{CAPACITY, IDS, MODIFY_STEP, Op, Out, Rec, SNAPSHOTS, Verdict};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use redis_server::{Durability, RedisServer};
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const START_MS: u64 = 1_000;
/// OS processes per history.
const PROCESSES: usize = 4;
/// Tasks per process.
const TASKS: usize = 3;
/// Calls per task: 4 × 3 × 10 = 120 calls, within the checker's 128.
const CALLS_PER_TASK: usize = 10;
/// The least average number of overlapping pairs of calls made by different
/// processes per history (see [`cross_process_overlaps`]). Measured on 2
/// cores: about 850 per history in debug and 770 in release, of the 5,400
/// pairs from different processes a history has.
const MIN_CROSS_OVERLAPS_PER_HISTORY: usize = 200;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn key(id: u8) -> String {
    format!("k{id}")
}

fn config() -> ManagerConfig {
    ManagerConfig {
        max_contexts: CAPACITY,
        max_recovery_points: SNAPSHOTS,
        ..ManagerConfig::default()
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Nanoseconds since the Unix epoch: one clock for every process here.
fn now_ns() -> u64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    u64::try_from(since.as_nanos()).unwrap()
}

/// Nanoseconds since `t0` (read by the parent before it started the children).
fn since_ns(t0: u64) -> u64 {
    now_ns()
        .checked_sub(t0)
        .expect("the system clock went back during the run")
}

// ---- a broken shared backend --------------------------------------------

/// A shared backend with the classic check-then-act bug: create and update
/// read the state first, decide on what they read, then write without any
/// condition (a create deletes whatever is there and creates with no
/// capacity limit; an update writes without an expected version). Another
/// process can write between the read and the write. Every other call goes
/// to the real backend it wraps.
#[derive(Debug)]
struct GetThenSet(RedisBackend);

fn refused(e: ContextError) -> WriteReply {
    WriteReply {
        outcome: Err(e),
        events: Vec::new(),
        contexts: None,
    }
}

impl GetThenSet {
    async fn decide(&self, write: Write) -> contextkit::Result<WriteReply> {
        let inner = &self.0;
        match write {
            Write::Create {
                id,
                data,
                ttl_ms,
                metadata,
                capacity,
            } => {
                // GET: is it there, is there room?
                if inner.get(&id).await?.is_some() {
                    return Ok(refused(ContextError::AlreadyExists { id }));
                }
                if inner.count().await? >= capacity {
                    return Ok(refused(ContextError::CapacityExceeded {
                        what: "contexts".into(),
                        limit: capacity,
                    }));
                }
                // SET: whatever is there now is overwritten, whatever the count.
                let removed = inner.write(Write::Delete { id: id.clone() }).await?;
                let create = Write::Create {
                    id,
                    data,
                    ttl_ms,
                    metadata,
                    capacity: usize::MAX,
                };
                let mut reply = inner.write(create).await?;
                let mut events = removed.events;
                events.append(&mut reply.events);
                reply.events = events;
                Ok(reply)
            }
            Write::Update {
                id,
                data,
                expected_version,
                expected_revision,
                ttl_ms,
            } => {
                // GET: the version to compare with.
                let Some(state) = inner.get(&id).await? else {
                    return Ok(refused(ContextError::not_found(id)));
                };
                let stale_version = expected_version.is_some_and(|v| v != state.version);
                let stale_revision = expected_revision.is_some_and(|r| r != state.revision);
                if stale_version || stale_revision {
                    return Ok(refused(ContextError::VersionConflict {
                        id,
                        expected: expected_version.unwrap_or(0),
                        actual: state.version,
                    }));
                }
                // SET: whatever version is there now.
                let update = Write::Update {
                    id,
                    data,
                    expected_version: None,
                    expected_revision: None,
                    ttl_ms,
                };
                inner.write(update).await
            }
            other => inner.write(other).await,
        }
    }
}

impl SharedBackend for GetThenSet {
    fn join<'a>(
        &'a self,
        config: &'a ManagerConfig,
        clock: Arc<dyn Clock>,
    ) -> StorageFuture<'a, Joined> {
        self.0.join(config, clock)
    }

    fn write(&self, write: Write) -> StorageFuture<'_, WriteReply> {
        Box::pin(self.decide(write))
    }

    fn get<'a>(&'a self, id: &'a str) -> StorageFuture<'a, Option<Arc<ContextState>>> {
        self.0.get(id)
    }

    fn recovery_points<'a>(&'a self, id: &'a str) -> StorageFuture<'a, Option<Vec<Snapshot>>> {
        self.0.recovery_points(id)
    }

    fn list(&self) -> StorageFuture<'_, Vec<Arc<ContextState>>> {
        self.0.list()
    }

    fn list_ids(&self) -> StorageFuture<'_, Vec<String>> {
        self.0.list_ids()
    }

    fn count(&self) -> StorageFuture<'_, usize> {
        self.0.count()
    }

    fn start(&self, feed: EventFeed) {
        self.0.start(feed);
    }
}

// ---- one process's calls --------------------------------------------------

fn tag_of(data: &serde_json::Value) -> u32 {
    data["w"]
        .as_u64()
        .and_then(|w| u32::try_from(w).ok())
        .unwrap_or(u32::MAX)
}

/// The outcome of an error; an error the workload cannot cause (a `STORAGE`
/// error, whose outcome the specification cannot know) fails the process.
fn out_err(e: &ContextError) -> Out {
    match e {
        ContextError::VersionConflict { actual, .. } => Out::Conflict(*actual),
        ContextError::NotFound { .. }
        | ContextError::AlreadyExists { .. }
        | ContextError::CapacityExceeded { .. } => Out::Err(e.code()),
        e => panic!("a call failed in a way the workload cannot cause: {e}"),
    }
}

fn out_state(r: contextkit::Result<Arc<ContextState>>) -> Out {
    match r {
        Ok(s) => Out::State {
            version: s.version,
            tag: tag_of(&s.data),
            expires: s.expires_at_ms,
        },
        Err(e) => out_err(&e),
    }
}

async fn call(m: &ContextManager, op: Op) -> Out {
    match op {
        Op::Create { id, ttl, tag } => {
            let opts = CreateOptions {
                ttl_ms: ttl,
                ..CreateOptions::default()
            };
            out_state(
                m.create_context_with(&key(id), json!({ "w": tag }), opts)
                    .await,
            )
        }
        Op::Get(id) => out_state(m.get_context(&key(id)).await),
        Op::Update { id, tag, expected } => out_state(
            m.update_context(&key(id), json!({ "w": tag }), expected)
                .await,
        ),
        Op::Modify(id) => {
            let add_step = |d: &serde_json::Value| json!({ "w": d["w"].as_u64().unwrap_or(u64::from(u32::MAX)) + u64::from(MODIFY_STEP) });
            match m.modify_context(&key(id), add_step).await {
                Err(ContextError::VersionConflict { .. }) => panic!(
                    "modify gave up after {} attempts",
                    ContextManager::MODIFY_ATTEMPTS
                ),
                r => out_state(r),
            }
        }
        Op::Touch(id) => out_state(m.touch_context(&key(id)).await),
        Op::Delete(id) => m
            .delete_context(&key(id))
            .await
            .map_or_else(|e| out_err(&e), |()| Out::Unit),
        Op::Snapshot(id) => match m.create_recovery_point(&key(id)).await {
            Ok(p) => Out::Snapshot {
                id: p.id,
                version: p.version,
            },
            Err(e) => out_err(&e),
        },
        Op::Restore(id, snapshot_id) => {
            out_state(m.restore_recovery_point(&key(id), snapshot_id).await)
        }
        Op::Cleanup | Op::Advance(_) => unreachable!("not in this workload"),
    }
}

/// The next call of a task: mostly compare-and-set updates, often with the
/// version the task last saw of that id (so that some succeed).
fn pick(
    rng: &mut SmallRng,
    tag: u32,
    seen_snapshot: u64,
    seen_version: &[u64; IDS],
    with_modify: bool,
) -> Op {
    let id = rng.gen_range(0..IDS as u8);
    match rng.gen_range(0..110) {
        0..=19 => Op::Create { id, ttl: None, tag },
        20..=34 => Op::Get(id),
        35..=54 => {
            let expected = match rng.gen_range(0..10) {
                0..=4 => Some(seen_version[usize::from(id)].max(1)),
                5..=7 => Some(rng.gen_range(1..4)),
                _ => None,
            };
            Op::Update { id, tag, expected }
        }
        55..=64 => Op::Delete(id),
        65..=79 => Op::Snapshot(id),
        80..=94 => Op::Restore(id, rng.gen_range(1..=seen_snapshot + 1)),
        95..=104 if with_modify => Op::Modify(id),
        105..=109 => Op::Touch(id),
        _ => Op::Get(id),
    }
}

// ---- the record format between processes ----------------------------------

fn opt(v: Option<u64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

fn encode_op(op: Op) -> String {
    match op {
        Op::Create { id, ttl, tag } => format!("create {id} {} {tag}", opt(ttl)),
        Op::Get(id) => format!("get {id}"),
        Op::Update { id, tag, expected } => format!("update {id} {tag} {}", opt(expected)),
        Op::Delete(id) => format!("delete {id}"),
        Op::Snapshot(id) => format!("snapshot {id}"),
        Op::Restore(id, p) => format!("restore {id} {p}"),
        Op::Modify(id) => format!("modify {id}"),
        Op::Touch(id) => format!("touch {id}"),
        Op::Cleanup | Op::Advance(_) => unreachable!("not in this workload"),
    }
}

fn encode_out(out: Out) -> String {
    match out {
        Out::State {
            version,
            tag,
            expires,
        } => format!("state {version} {tag} {}", opt(expires)),
        Out::Snapshot { id, version } => format!("snapshot {id} {version}"),
        Out::Unit => "unit".to_owned(),
        Out::Count(n) => format!("count {n}"),
        Out::Conflict(v) => format!("conflict {v}"),
        Out::Err(code) => format!("err {code}"),
    }
}

/// Marks a record line (libtest may print its own text before the first).
const MARK: &str = "@lin ";

/// One record line: `@lin <process> <inv> <resp> | <op> | <out>`.
fn encode(process: usize, r: &Rec) -> String {
    format!(
        "{MARK}{process} {} {} | {} | {}",
        r.inv,
        r.resp,
        encode_op(r.op),
        encode_out(r.out)
    )
}

fn unreadable<T>(line: &str) -> T {
    panic!("unreadable record: {line:?}")
}

fn decode(line: &str) -> (usize, Rec) {
    let n = |s: Option<&str>| -> u64 {
        s.and_then(|s| s.parse().ok())
            .unwrap_or_else(|| unreadable(line))
    };
    let o = |s: Option<&str>| -> Option<u64> {
        match s {
            Some("-") => None,
            s => Some(n(s)),
        }
    };
    let id = |s: Option<&str>| u8::try_from(n(s)).unwrap_or_else(|_| unreadable(line));
    let parts: Vec<&str> = line.splitn(3, " | ").collect();
    let [head, op, out] = parts[..] else {
        unreadable(line)
    };
    let mut h = head.split(' ');
    let process = usize::try_from(n(h.next())).unwrap();
    let (inv, resp) = (n(h.next()), n(h.next()));
    let mut w = op.split(' ');
    let op = match w.next() {
        Some("create") => Op::Create {
            id: id(w.next()),
            ttl: o(w.next()),
            tag: u32::try_from(n(w.next())).unwrap(),
        },
        Some("get") => Op::Get(id(w.next())),
        Some("update") => Op::Update {
            id: id(w.next()),
            tag: u32::try_from(n(w.next())).unwrap(),
            expected: o(w.next()),
        },
        Some("delete") => Op::Delete(id(w.next())),
        Some("snapshot") => Op::Snapshot(id(w.next())),
        Some("restore") => Op::Restore(id(w.next()), n(w.next())),
        Some("modify") => Op::Modify(id(w.next())),
        Some("touch") => Op::Touch(id(w.next())),
        _ => unreadable(line),
    };
    let mut w = out.split(' ');
    let out = match w.next() {
        Some("state") => Out::State {
            version: n(w.next()),
            tag: u32::try_from(n(w.next())).unwrap(),
            expires: o(w.next()),
        },
        Some("snapshot") => Out::Snapshot {
            id: n(w.next()),
            version: n(w.next()),
        },
        Some("unit") => Out::Unit,
        Some("count") => Out::Count(usize::try_from(n(w.next())).unwrap()),
        Some("conflict") => Out::Conflict(n(w.next())),
        Some("err") => {
            let code = w.next().unwrap_or_else(|| unreadable(line));
            let known = ContextError::CODES.iter().find(|c| **c == code);
            Out::Err(known.copied().unwrap_or_else(|| unreadable(line)))
        }
        _ => unreadable(line),
    };
    let rec = Rec {
        op,
        out,
        inv,
        resp,
        clock_inv: START_MS,
        clock_resp: START_MS,
    };
    (process, rec)
}

// ---- the child process ----------------------------------------------------

/// The work of one child process: connects, waits for the others, runs
/// `TASKS` tasks of `CALLS_PER_TASK` calls and prints one record per call.
#[test]
fn child_history() {
    let Ok(role) = std::env::var("CK_ROLE") else {
        return; // only meaningful as a child process
    };
    let env = |k: &str| std::env::var(k).unwrap();
    let process: usize = role.parse().unwrap();
    let (url, ns) = (env("CK_URL"), env("CK_NS"));
    let seed: u64 = env("CK_SEED").parse().unwrap();
    let t0: u64 = env("CK_T0").parse().unwrap();
    let broken = env("CK_BROKEN") == "1";
    let with_modify = env_or("SHARED_LIN_MODIFY", 1) == 1;
    let barrier = PathBuf::from(env("CK_BARRIER"));
    let lines = runtime().block_on(async move {
        let backend = RedisBackend::new(&url, &ns)
            .unwrap()
            .client_clock()
            .timeout(Duration::from_secs(10));
        let builder = ContextManager::builder(config()).clock(ManualClock::new(START_MS));
        let m = if broken {
            builder.connect(GetThenSet(backend)).await
        } else {
            builder.connect(backend).await
        }
        .unwrap();
        // Every process is connected before any calls.
        std::fs::write(barrier.join(&role), b"").unwrap();
        while std::fs::read_dir(&barrier).unwrap().count() < PROCESSES {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let seen_snapshot = Arc::new(AtomicU64::new(0));
        let tasks: Vec<_> = (0..TASKS)
            .map(|task| {
                let (m, seen_snapshot) = (m.clone(), Arc::clone(&seen_snapshot));
                tokio::spawn(async move {
                    let me = process * TASKS + task;
                    let mut rng = SmallRng::seed_from_u64(seed * 1009 + me as u64);
                    let mut seen_version = [0; IDS];
                    let mut lines = Vec::new();
                    for n in 0..CALLS_PER_TASK {
                        let tag = u32::try_from(me * 1000 + n).unwrap();
                        let op = pick(
                            &mut rng,
                            tag,
                            seen_snapshot.load(Ordering::SeqCst),
                            &seen_version,
                            with_modify,
                        );
                        // Times at twice the nanosecond, the response one
                        // more: a tie between processes is an overlap.
                        let inv = 2 * since_ns(t0);
                        let out = call(&m, op).await;
                        let resp = 2 * since_ns(t0) + 1;
                        match (op, out) {
                            (_, Out::Snapshot { id, .. }) => {
                                seen_snapshot.fetch_max(id, Ordering::SeqCst);
                            }
                            (
                                Op::Create { id, .. }
                                | Op::Get(id)
                                | Op::Update { id, .. }
                                | Op::Modify(id)
                                | Op::Touch(id)
                                | Op::Restore(id, _),
                                Out::State { version, .. } | Out::Conflict(version),
                            ) => seen_version[usize::from(id)] = version,
                            _ => {}
                        }
                        let rec = Rec {
                            op,
                            out,
                            inv,
                            resp,
                            clock_inv: START_MS,
                            clock_resp: START_MS,
                        };
                        lines.push(encode(process, &rec));
                    }
                    lines
                })
            })
            .collect();
        let mut lines = Vec::new();
        for t in tasks {
            lines.extend(t.await.unwrap());
        }
        lines
    });
    for line in lines {
        println!("{line}");
    }
}

// ---- the parent -----------------------------------------------------------

/// Runs this test binary again as `PROCESSES` child processes running
/// [`child_history`], and returns their standard outputs.
fn children(env: &[(&str, String)]) -> Vec<String> {
    let exe = std::env::current_exe().unwrap();
    let procs: Vec<_> = (0..PROCESSES)
        .map(|i| {
            let mut cmd = std::process::Command::new(&exe);
            cmd.args([
                "child_history",
                "--exact",
                "--nocapture",
                "--test-threads",
                "1",
            ])
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

/// One history: `PROCESSES` processes on a fresh namespace; each call with
/// the process that made it.
fn record(server: &RedisServer, label: &str, seed: u64, broken: bool) -> Vec<(usize, Rec)> {
    let ns = format!("lin-{label}-{}-{seed}", std::process::id());
    let barrier = std::env::temp_dir().join(format!("contextkit-{ns}"));
    std::fs::create_dir_all(&barrier).unwrap();
    let outs = children(&[
        ("CK_URL", server.url()),
        ("CK_NS", ns),
        ("CK_SEED", seed.to_string()),
        ("CK_T0", now_ns().to_string()),
        ("CK_BROKEN", if broken { "1" } else { "0" }.to_owned()),
        ("CK_BARRIER", barrier.display().to_string()),
    ]);
    let _ = std::fs::remove_dir_all(&barrier);
    let calls: Vec<(usize, Rec)> = outs
        .iter()
        .flat_map(|out| out.lines())
        .filter_map(|l| l.find(MARK).map(|at| decode(&l[at + MARK.len()..])))
        .collect();
    assert_eq!(calls.len(), PROCESSES * TASKS * CALLS_PER_TASK);
    calls
}

/// Pairs of calls from different processes whose intervals intersect: the
/// checker may order them either way.
fn cross_process_overlaps(calls: &[(usize, Rec)]) -> usize {
    let mut n = 0;
    for (i, (pa, a)) in calls.iter().enumerate() {
        for (pb, b) in &calls[i + 1..] {
            if pa != pb && a.inv < b.resp && b.inv < a.resp {
                n += 1;
            }
        }
    }
    n
}

/// Records `seeds` histories; the number the checker rejected, with the
/// first rejection, and the cross-process overlaps of them all.
fn run(label: &str, seeds: u64, broken: bool) -> (u64, Option<String>, usize) {
    let server = RedisServer::start(Durability::None);
    let (mut rejected, mut first, mut overlaps) = (0, None, 0);
    for seed in 0..seeds {
        let calls = record(&server, label, seed, broken);
        overlaps += cross_process_overlaps(&calls);
        let history: Vec<Rec> = calls.into_iter().map(|(_, r)| r).collect();
        match lin::check(&history, START_MS) {
            Verdict::Linearizable => {}
            Verdict::Violation(why) => {
                rejected += 1;
                first.get_or_insert(format!("seed {seed}: {why}"));
            }
            Verdict::TooHard(n) => panic!("seed {seed}: search gave up after {n} states"),
        }
    }
    (rejected, first, overlaps)
}

#[test]
fn histories_across_processes_are_linearizable() {
    let seeds = env_or("SHARED_LIN_SEEDS", 50);
    let (rejected, first, overlaps) = run("real", seeds, false);
    if let Some(why) = first {
        panic!("{rejected} of {seeds} histories are not linearizable; the first, {why}");
    }
    println!(
        "{seeds} histories of {PROCESSES} processes × {TASKS} tasks: linearizable; \
         {overlaps} overlapping pairs of calls from different processes"
    );
    // The floor is for the run: a handful of histories is not judged.
    if seeds >= 10 {
        let floor = MIN_CROSS_OVERLAPS_PER_HISTORY * usize::try_from(seeds).unwrap();
        assert!(
            overlaps >= floor,
            "too little concurrency between processes: {overlaps} overlapping pairs in \
             {seeds} histories (want {floor})"
        );
    }
}

#[test]
fn a_get_then_set_backend_across_processes_is_caught() {
    let seeds = env_or("SHARED_LIN_BROKEN_SEEDS", 15);
    let (rejected, first, overlaps) = run("broken", seeds, true);
    let first = first.expect("the checker accepted every history of the get-then-set backend");
    println!(
        "get-then-set backend: {rejected} of {seeds} histories rejected \
         ({overlaps} overlapping pairs from different processes); the first, {first}"
    );
}

/// Shared mode's modify reads, runs `f`, then commits by compare-and-set.
/// Here another manager deletes the context and creates it again up to the
/// same version while `f` runs. A compare-and-set on the version would
/// match a context `f` never saw: the commit would build on data that is
/// gone (`{"w": 102}`) and the other manager's `{"w": 20}` would be lost
/// (found by the workload above). On the revision it read, the
/// compare-and-set fails and `f` runs again on `{"w": 20}`. (In memory and
/// over a storage `f` runs inside the critical section.)
#[test]
fn modify_is_not_fooled_by_a_context_deleted_and_created_again() {
    let server = RedisServer::start(Durability::None);
    runtime().block_on(async {
        let ns = format!("aba-{}", std::process::id());
        let connect = || async {
            let backend = RedisBackend::new(&server.url(), &ns)
                .unwrap()
                .client_clock();
            let builder = ContextManager::builder(config()).clock(ManualClock::new(START_MS));
            builder.connect(backend).await.unwrap()
        };
        let (m, other) = (connect().await, connect().await);
        m.create_context("k0", json!({ "w": 1 })).await.unwrap();
        m.update_context("k0", json!({ "w": 2 }), None)
            .await
            .unwrap();
        let rt = tokio::runtime::Handle::current();
        let mut first = true;
        let modified = m
            .modify_context("k0", move |data| {
                if std::mem::take(&mut first) {
                    let (other, rt) = (other.clone(), rt.clone());
                    // Another process: delete, create, update: version 2 again.
                    std::thread::spawn(move || {
                        rt.block_on(async {
                            other.delete_context("k0").await.unwrap();
                            other
                                .create_context("k0", json!({ "w": 10 }))
                                .await
                                .unwrap();
                            other
                                .update_context("k0", json!({ "w": 20 }), None)
                                .await
                                .unwrap();
                        });
                    })
                    .join()
                    .unwrap();
                }
                json!({ "w": data["w"].as_u64().unwrap() + 100 })
            })
            .await
            .unwrap();
        assert_eq!(
            (modified.version, &*modified.data),
            (3, &json!({ "w": 120 })),
            "the modify built on the deleted context's data"
        );
    });
}
