//! Crash safety: a child process writing through file storage (creates,
//! updates, recovery points, restores, deletes) is killed with SIGKILL at
//! random moments, mid-write and mid-fsync included. After each kill the
//! directory reopens without problems and every id holds exactly what the
//! child acknowledged, except the id of the one operation in progress, which
//! holds either its acknowledged state or the state that operation makes.
#![cfg(unix)]

use contextkit::{ContextManager, FileStorage, ManagerConfig, json};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

const TEST_NAME: &str = "every_id_holds_exactly_its_acknowledged_state_after_sigkill";
const CHILD_ENV: &str = "CONTEXTKIT_CRASH_CHILD_DIR";
const SEED_ENV: &str = "CONTEXTKIT_CRASH_SEED";
const BASE_ENV: &str = "CONTEXTKIT_CRASH_BASE";
const ROUNDS: u64 = 80;
/// The child writes ids `k0` to `k5`.
const IDS: u64 = 6;
const SNAPSHOTS: usize = 3;

fn config() -> ManagerConfig {
    ManagerConfig {
        max_recovery_points: SNAPSHOTS,
        ..ManagerConfig::default()
    }
}

/// xorshift64: the same rounds every run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// The child: one operation at a time, forever. Before each it prints
/// `BEGIN <op> <id> <n> [<snapshot id>]`, after it `ACK <id> <version> <data n>`,
/// `ACK-SNAPSHOT <id> <snapshot id>` or `ACK-DEL <id> <n>`.
fn child(dir: &Path, seed: u64, base: u64) -> ! {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let opened = ContextManager::builder(config())
            .open(FileStorage::new(dir).unwrap())
            .await
            .unwrap();
        assert!(opened.problems.is_empty(), "{:?}", opened.problems);
        let m = opened.manager;
        let mut out = std::io::stdout().lock();
        let mut say = |line: String| {
            writeln!(out, "{line}").unwrap();
            out.flush().unwrap();
        };
        // The test harness's "test <name> ... " has no newline yet.
        say(String::new());
        let mut rng = Rng(seed | 1);
        for n in base.. {
            let id = format!("k{}", rng.below(IDS));
            let current = m.get_context(&id).await.ok();
            let snapshots = match current {
                Some(_) => m.recovery_points(&id).await.unwrap(),
                None => Vec::new(),
            };
            let roll = rng.below(100);
            let ack = match current {
                Some(_) if roll < 15 => {
                    say(format!("BEGIN snapshot {id} {n}"));
                    let p = m.create_recovery_point(&id).await.unwrap();
                    format!("ACK-SNAPSHOT {id} {}", p.id)
                }
                Some(_) if roll < 25 && !snapshots.is_empty() => {
                    let p = snapshots[rng.below(snapshots.len() as u64) as usize].id;
                    say(format!("BEGIN restore {id} {n} {p}"));
                    let s = m.restore_recovery_point(&id, p).await.unwrap();
                    format!("ACK {id} {} {}", s.version, s.data["n"])
                }
                Some(_) if roll < 35 => {
                    say(format!("BEGIN delete {id} {n}"));
                    m.delete_context(&id).await.unwrap();
                    format!("ACK-DEL {id} {n}")
                }
                _ => {
                    say(format!("BEGIN put {id} {n}"));
                    let data = json!({ "n": n, "pad": "p".repeat(rng.below(2000) as usize) });
                    let s = match current {
                        Some(s) => m.update_context(&id, data, Some(s.version)).await,
                        None => m.create_context(&id, data).await,
                    }
                    .unwrap();
                    format!("ACK {id} {} {n}", s.version)
                }
            };
            say(ack);
        }
        unreachable!("the parent kills this process")
    })
}

/// A recovery point as the parent models it: its id, and the version and
/// data `n` it captured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Snapshot {
    id: u64,
    version: u64,
    n: u64,
}

/// A context as the parent models it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Ctx {
    version: u64,
    n: u64,
    snapshots: Vec<Snapshot>,
}

/// Each id's state; an absent id is not in the map.
type Model = BTreeMap<String, Ctx>;

#[derive(Debug, Clone)]
enum Op {
    Put { n: u64 },
    Snapshot,
    Restore { snapshot_id: u64 },
    Delete,
}

/// The state `op` makes from `before`; `snapshot_id` is the id a new recovery point gets.
fn apply(before: Option<&Ctx>, op: &Op, snapshot_id: Option<u64>) -> Option<Ctx> {
    let existing = || {
        before
            .expect("the child only changes live contexts")
            .clone()
    };
    match op {
        Op::Put { n } => Some(match before {
            Some(b) => Ctx {
                version: b.version + 1,
                n: *n,
                snapshots: b.snapshots.clone(),
            },
            None => Ctx {
                version: 1,
                n: *n,
                snapshots: Vec::new(),
            },
        }),
        Op::Snapshot => {
            let mut c = existing();
            c.snapshots.push(Snapshot {
                id: snapshot_id.expect("a new snapshot has an id"),
                version: c.version,
                n: c.n,
            });
            let excess = c.snapshots.len().saturating_sub(SNAPSHOTS);
            c.snapshots.drain(..excess);
            Some(c)
        }
        Op::Restore { snapshot_id } => {
            let mut c = existing();
            let p = *c
                .snapshots
                .iter()
                .find(|p| p.id == *snapshot_id)
                .unwrap_or_else(|| panic!("restore of snapshot {snapshot_id}, not in {c:?}"));
            c.version += 1;
            c.n = p.n;
            Some(c)
        }
        Op::Delete => None,
    }
}

/// Applies the child's acknowledged operations to `model`; returns the one
/// begun and not acknowledged, if any. Snapshot ids must grow: `max_snapshot_id` is
/// the largest one seen so far.
fn replay(lines: &[String], model: &mut Model, max_snapshot_id: &mut u64) -> Option<(String, Op)> {
    let mut pending: Option<(String, Op)> = None;
    for line in lines {
        let parts: Vec<&str> = line.split_whitespace().collect();
        let num = |i: usize| -> u64 { parts[i].parse().unwrap() };
        match parts.first().copied() {
            Some("BEGIN") => {
                assert!(pending.is_none(), "two operations at once: {line}");
                let op = match parts[1] {
                    "put" => Op::Put { n: num(3) },
                    "snapshot" => Op::Snapshot,
                    "restore" => Op::Restore {
                        snapshot_id: num(4),
                    },
                    "delete" => Op::Delete,
                    other => panic!("unknown operation {other}"),
                };
                pending = Some((parts[2].to_owned(), op));
            }
            Some(kind @ ("ACK" | "ACK-SNAPSHOT" | "ACK-DEL")) => {
                let (id, op) = pending.take().expect("an ACK follows its BEGIN");
                assert_eq!(parts[1], id, "{line}");
                let snapshot_id = (kind == "ACK-SNAPSHOT").then(|| num(2));
                if let Some(p) = snapshot_id {
                    assert!(
                        p > *max_snapshot_id,
                        "snapshot id {p} reused (seen {max_snapshot_id})"
                    );
                    *max_snapshot_id = p;
                }
                let after = apply(model.get(&id), &op, snapshot_id);
                match (kind, &after) {
                    ("ACK", Some(c)) => assert_eq!((c.version, c.n), (num(2), num(3)), "{line}"),
                    ("ACK-SNAPSHOT", Some(_)) | ("ACK-DEL", None) => {}
                    _ => panic!("{line} does not fit {op:?}"),
                }
                match after {
                    Some(c) => model.insert(id, c),
                    None => model.remove(&id),
                };
            }
            _ => {} // the test harness's own output
        }
    }
    pending
}

/// What the reopened directory holds.
async fn observe(m: &ContextManager) -> Model {
    let mut seen = Model::new();
    for id in m.list_context_ids().await {
        let s = m.get_context(&id).await.unwrap();
        let snapshots = m.recovery_points(&id).await.unwrap();
        let ctx = Ctx {
            version: s.version,
            n: s.data["n"].as_u64().unwrap(),
            snapshots: snapshots
                .iter()
                .map(|p| Snapshot {
                    id: p.id,
                    version: p.version,
                    n: p.data["n"].as_u64().unwrap(),
                })
                .collect(),
        };
        seen.insert(id, ctx);
    }
    seen
}

/// Reads `stream` to its end on a thread, sending each line.
fn read_lines(
    stream: impl Read + Send + 'static,
) -> (mpsc::Receiver<String>, thread::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel();
    let reader = thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    (rx, reader)
}

#[test]
fn every_id_holds_exactly_its_acknowledged_state_after_sigkill() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        let var = |name: &str| std::env::var(name).unwrap().parse().unwrap();
        child(Path::new(&dir), var(SEED_ENV), var(BASE_ENV));
    }
    // On the build's disk, not a tmpfs, so that fsyncs take real time.
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let mut model = Model::new();
    let mut max_snapshot_id = 0;
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let (mut mid_operation, mut took_effect, mut torn, mut acked) = (0, 0, 0, 0);
    for round in 0..ROUNDS {
        let mut proc = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, tmp.path())
            .env(SEED_ENV, rng.below(u64::MAX).to_string())
            .env(BASE_ENV, (round * 1_000_000).to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Both pipes are read to their end, so the child never writes to a
        // closed pipe: it dies of the SIGKILL and nothing else.
        let (lines_rx, stdout) = read_lines(proc.stdout.take().unwrap());
        let (errors_rx, stderr) = read_lines(proc.stderr.take().unwrap());
        let wanted = 1 + rng.below(40);
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut lines = Vec::new();
        let mut acks = 0;
        while acks < wanted {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = lines_rx.recv_timeout(left) else {
                break; // The child ended (or hangs): the status check below says why.
            };
            acks += u64::from(line.starts_with("ACK"));
            lines.push(line);
        }
        // Somewhere in the next operations: its write, its fsyncs or between.
        let delay = rng.below(3_000);
        if delay > 0 {
            thread::sleep(Duration::from_micros(delay));
        }
        proc.kill().unwrap();
        let status = proc.wait().unwrap();
        stdout.join().unwrap();
        stderr.join().unwrap();
        lines.extend(lines_rx.try_iter());
        let errors: Vec<String> = errors_rx.try_iter().collect();
        assert_eq!(
            status.signal(),
            Some(9),
            "round {round}: the child ended with {status} before the kill: {errors:#?}"
        );
        assert!(acks >= wanted, "round {round}: the child stalled");

        let pending = replay(&lines, &mut model, &mut max_snapshot_id);
        // A temporary file left behind: killed between its creation and its
        // rename, so during a write or its fsync.
        let torn_now = std::fs::read_dir(tmp.path())
            .unwrap()
            .any(|e| e.unwrap().file_name().to_str().unwrap().ends_with(".tmp"));
        torn += u64::from(torn_now);
        acked += lines.iter().filter(|l| l.starts_with("ACK")).count();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (seen, next_snapshot_id) = rt.block_on(async {
            let opened = ContextManager::builder(config())
                .open(FileStorage::new(tmp.path()).unwrap())
                .await
                .unwrap();
            assert!(
                opened.problems.is_empty(),
                "round {round}: {:?}",
                opened.problems
            );
            let m = opened.manager;
            (observe(&m).await, m.next_recovery_point_id())
        });
        let ids: Vec<String> = (0..IDS).map(|i| format!("k{i}")).collect();
        assert!(
            seen.keys().all(|id| ids.contains(id)),
            "round {round}: {seen:?}"
        );
        for id in ids {
            let (before, after) = (model.get(&id), seen.get(&id));
            match &pending {
                Some((busy, op)) if *busy == id => {
                    mid_operation += 1;
                    if after == before {
                        continue;
                    }
                    let snapshot_id = match op {
                        Op::Snapshot => after.and_then(|c| c.snapshots.last()).map(|p| p.id),
                        _ => None,
                    };
                    assert_eq!(
                        after,
                        apply(before, op, snapshot_id).as_ref(),
                        "round {round}: {id} in {op:?} holds neither its acknowledged state {before:?} nor the state {op:?} makes"
                    );
                    if let Some(p) = snapshot_id {
                        assert!(p > max_snapshot_id, "round {round}: snapshot id {p} reused");
                        max_snapshot_id = p;
                    }
                    took_effect += 1;
                }
                _ => assert_eq!(after, before, "round {round}: {id} is not as acknowledged"),
            }
        }
        assert!(
            next_snapshot_id > max_snapshot_id,
            "round {round}: snapshot id {max_snapshot_id} would be handed out again"
        );
        model = seen;
        // Reopening removed the temporary files of the interrupted write.
        for entry in std::fs::read_dir(tmp.path()).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            assert!(
                name == "meta.json" || name == "contextkit.lock" || name.ends_with(".json"),
                "round {round}: {name} left behind"
            );
        }
    }
    eprintln!(
        "{ROUNDS} rounds, {acked} acknowledged operations; killed mid-operation {mid_operation} times, \
         {took_effect} of them after it took effect, {torn} between a temporary file's creation \
         and its rename"
    );
    assert!(model.len() >= 2, "the child made progress: {model:?}");
    assert!(
        mid_operation >= ROUNDS / 4,
        "only {mid_operation} of {ROUNDS} kills came mid-operation"
    );
    assert!(torn >= 3, "only {torn} kills came mid-write");
}
