//! Crash safety: a child process writing through file storage is killed with
//! SIGKILL at random moments; after each kill the store reopens without damage
//! and every write the child acknowledged (printed) is there.

use contextkit::{ContextManager, FileStorage, ManagerConfig, json};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const CHILD_ENV: &str = "CONTEXTKIT_CRASH_CHILD_DIR";
const ROUNDS: u64 = 50;

fn config() -> ManagerConfig {
    ManagerConfig {
        max_recovery_points: 3,
        ..ManagerConfig::default()
    }
}

/// The child: writes forever, printing `ACK id version n` after each acknowledged write.
fn child(dir: &Path, seed: u64) -> ! {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let m = ContextManager::builder(config())
            .open(FileStorage::new(dir).unwrap())
            .await
            .unwrap()
            .manager;
        let mut out = std::io::stdout().lock();
        let mut rng = seed | 1;
        for n in 0u64.. {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let id = format!("k{}", rng % 6);
            let data = json!({ "n": n, "pad": "p".repeat((rng % 2000) as usize) });
            let state = match m.update_context(&id, data.clone(), None).await {
                Ok(s) => s,
                Err(_) => m.create_context(&id, data).await.unwrap(),
            };
            if rng % 4 == 0 {
                m.create_recovery_point(&id).await.unwrap();
            }
            writeln!(out, "ACK {id} {} {n}", state.version).unwrap();
            out.flush().unwrap();
        }
        unreachable!("the parent kills this process")
    })
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        let seed = std::env::var("CONTEXTKIT_CRASH_SEED")
            .unwrap()
            .parse()
            .unwrap();
        child(Path::new(&dir), seed);
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut acked: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut rng = 0x2545_f491_4f6c_dd1d_u64;
    for round in 0..ROUNDS {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let mut proc = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "acknowledged_writes_survive_sigkill",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, tmp.path())
            .env("CONTEXTKIT_CRASH_SEED", (rng ^ round).to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = proc.stdout.take().unwrap();
        let wanted = 1 + rng % 40;
        let mut seen = 0;
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            let mut parts = line.split_whitespace();
            if parts.next() != Some("ACK") {
                continue;
            }
            let id = parts.next().unwrap().to_owned();
            let version: u64 = parts.next().unwrap().parse().unwrap();
            let n: u64 = parts.next().unwrap().parse().unwrap();
            acked.insert(id, (version, n));
            seen += 1;
            if seen == wanted {
                break;
            }
        }
        // Kill it mid-write: somewhere in the next few writes.
        std::thread::sleep(Duration::from_micros(rng % 3_000));
        proc.kill().unwrap(); // SIGKILL
        proc.wait().unwrap();

        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let opened = ContextManager::builder(config())
                .open(FileStorage::new(tmp.path()).unwrap())
                .await
                .unwrap();
            assert!(
                opened.problems.is_empty(),
                "round {round}: {:?}",
                opened.problems
            );
            for (id, (version, n)) in &acked {
                let s = opened
                    .manager
                    .get_context(id)
                    .await
                    .unwrap_or_else(|e| panic!("round {round}: acknowledged {id} lost: {e}"));
                assert!(
                    s.version >= *version,
                    "round {round}: {id} went back from {version} to {}",
                    s.version
                );
                if s.version == *version {
                    assert_eq!(s.data["n"], json!(n), "round {round}: {id} v{version}");
                }
                opened.manager.recovery_points(id).await.unwrap();
            }
        });
    }
    assert!(acked.len() >= 3, "the child made progress: {acked:?}");
}
