//! The directory lock of `FileStorage` (the protocol in native/src/file/lock.rs,
//! shared with the npm package): a second opener is refused naming the
//! directory and the holder; the lock goes with the storage; a lock whose
//! holder died is taken over, exactly once when many try at the same moment;
//! a lock of another host or of a live process never is.
#![cfg(unix)]

use contextkit::{ContextManager, FileStorage, ManagerConfig, json};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::fs;
use std::path::Path;
use std::process::{Child, Command};
use std::sync::{Arc, Barrier};
use std::thread;

const LOCK: &str = "contextkit.lock";

/// The lock line of a storage this process holds in `dir`.
fn lock_of(dir: &Path) -> Value {
    serde_json::from_slice(&fs::read(dir.join(LOCK)).unwrap()).unwrap()
}

/// The lock line of a storage of this process, in a directory of its own.
fn own_line() -> Value {
    let scratch = tempfile::tempdir().unwrap();
    let _ours = FileStorage::new(scratch.path()).unwrap();
    lock_of(scratch.path())
}

/// This host's name as the protocol sees it.
fn host() -> String {
    own_line()["hostname"].as_str().unwrap().to_owned()
}

/// A lock line as the protocol writes it; `host` None: this host.
fn line(pid: u32, host: Option<&str>, process_start: Value) -> String {
    let hostname = host.map_or_else(self::host, str::to_owned);
    let holder = json!({
        "pid": pid, "hostname": hostname, "processStart": process_start,
        "started": 1, "nonce": format!("{pid:032x}"), "by": "test",
    });
    format!("{holder}\n")
}

/// The pid of a process that has exited (and was waited for).
fn dead_pid() -> u32 {
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

fn sleeper() -> Child {
    Command::new("sleep").arg("60").spawn().unwrap()
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

fn claim(stale: &str, k: u32) -> String {
    let digest: String = Sha256::digest(stale.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{LOCK}.claim-{}-{k}", &digest[..16])
}

#[test]
fn a_second_opener_is_refused_naming_the_directory_and_the_holder() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let first = FileStorage::new(&dir).unwrap();
    let holder = lock_of(&dir);
    assert_eq!(holder["pid"], std::process::id());
    assert_eq!(holder["by"], "contextkit (Rust)");
    assert_eq!(holder["nonce"].as_str().unwrap().len(), 32);
    let e = FileStorage::new(&dir).unwrap_err();
    assert_eq!(e.code(), "STORAGE");
    assert_eq!(
        e.to_string(),
        format!(
            "storage error: cannot open {}: in use by another FileStorage (pid {} on {}, this process)",
            dir.display(),
            std::process::id(),
            holder["hostname"].as_str().unwrap()
        )
    );
    drop(first);
    assert_eq!(
        names(&dir),
        Vec::<String>::new(),
        "the lock goes with the storage"
    );
    drop(FileStorage::new(&dir).unwrap());
}

#[test]
fn a_lock_whose_process_died_is_taken_over() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    fs::write(dir.join(LOCK), line(dead_pid(), None, Value::Null)).unwrap();
    let storage = FileStorage::new(dir).unwrap();
    assert_eq!(lock_of(dir)["pid"], std::process::id());
    drop(storage);
}

#[test]
fn a_lock_of_a_live_process_is_refused_until_it_is_killed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut holder = sleeper();
    fs::write(dir.join(LOCK), line(holder.id(), None, Value::Null)).unwrap();
    let e = FileStorage::new(dir).unwrap_err();
    assert_eq!(e.code(), "STORAGE");
    let expected = format!(
        "cannot open {}: in use by another FileStorage (pid {} on {})",
        dir.display(),
        holder.id(),
        host()
    );
    assert!(e.to_string().ends_with(&expected), "{e}");
    holder.kill().unwrap();
    holder.wait().unwrap();
    drop(FileStorage::new(dir).unwrap());
}

/// Our own pid with another start time: a former process that had our pid
/// (a restarted container's pid 1). Linux only: elsewhere the start time is
/// not known.
#[cfg(target_os = "linux")]
#[test]
fn a_lock_of_a_former_process_with_this_pid_is_taken_over() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let start = own_line()["processStart"].as_u64().unwrap();
    fs::write(
        dir.join(LOCK),
        line(std::process::id(), None, json!(start - 1)),
    )
    .unwrap();
    drop(FileStorage::new(dir).unwrap());
}

/// An empty lock file, as contextkit left before this protocol (it only
/// flocked it), and a garbled one have no live holder.
#[test]
fn an_unreadable_lock_file_is_stale() {
    for junk in ["", "{\"pid\":", "not json"] {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join(LOCK), junk).unwrap();
        let storage = FileStorage::new(tmp.path()).unwrap();
        assert_eq!(lock_of(tmp.path())["pid"], std::process::id(), "{junk:?}");
        drop(storage);
    }
}

#[test]
fn a_lock_of_another_host_is_never_taken_over() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    fs::write(
        dir.join(LOCK),
        line(dead_pid(), Some("elsewhere.example"), Value::Null),
    )
    .unwrap();
    let e = FileStorage::new(dir).unwrap_err();
    assert!(
        e.to_string().ends_with(&format!(
            "on elsewhere.example, another host: remove {} once that process is gone)",
            dir.join(LOCK).display()
        )),
        "{e}"
    );
}

/// Claims (see the protocol): one whose claimer died is passed by (claim 2
/// is taken) and cleaned up; one whose claimer lives means a takeover under
/// way, which is waited for and then reported.
#[test]
fn claims_of_dead_claimers_are_passed_and_live_ones_respected() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let stale = line(dead_pid(), None, Value::Null);
    fs::write(dir.join(LOCK), &stale).unwrap();
    fs::write(
        dir.join(claim(&stale, 1)),
        line(dead_pid(), None, Value::Null),
    )
    .unwrap();
    let storage = FileStorage::new(dir).unwrap();
    assert_eq!(names(dir), [LOCK], "the dead claim is cleaned up");
    drop(storage);

    fs::write(dir.join(LOCK), &stale).unwrap();
    let mut claimer = sleeper();
    fs::write(
        dir.join(claim(&stale, 1)),
        line(claimer.id(), None, Value::Null),
    )
    .unwrap();
    let e = FileStorage::new(dir).unwrap_err();
    let expected = format!(
        "in use by another FileStorage (pid {} on {}, taking it over)",
        claimer.id(),
        host()
    );
    assert!(e.to_string().ends_with(&expected), "{e}");
    claimer.kill().unwrap();
    claimer.wait().unwrap();
    drop(FileStorage::new(dir).unwrap());
}

/// Many threads take over one stale lock at the same moment, 100 times:
/// exactly one wins each time, and nothing of the protocol is left over.
#[test]
fn racing_takeovers_of_one_stale_lock_have_exactly_one_winner() {
    const THREADS: usize = 8;
    let tmp = tempfile::tempdir().unwrap();
    let dir = Arc::new(tmp.path().to_path_buf());
    let stale = line(dead_pid(), None, Value::Null);
    for round in 0..100 {
        fs::write(dir.join(LOCK), &stale).unwrap();
        let barrier = Arc::new(Barrier::new(THREADS));
        let racers: Vec<_> = (0..THREADS)
            .map(|_| {
                let (dir, barrier) = (Arc::clone(&dir), Arc::clone(&barrier));
                thread::spawn(move || {
                    barrier.wait();
                    FileStorage::new(&*dir)
                })
            })
            .collect();
        let results: Vec<_> = racers.into_iter().map(|t| t.join().unwrap()).collect();
        let winners = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(winners, 1, "round {round}: {results:?}");
        for e in results.iter().filter_map(|r| r.as_ref().err()) {
            assert!(e.to_string().contains("this process"), "round {round}: {e}");
        }
        assert_eq!(names(&dir), [LOCK], "round {round}");
        drop(results);
        assert_eq!(names(&dir), Vec::<String>::new(), "round {round}");
    }
}

/// A manager keeps its directory; dropping it lets the next one in, which
/// sees what the first wrote.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lock_is_held_by_the_manager_and_released_with_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let open = || async {
        ContextManager::builder(ManagerConfig::default())
            .open(FileStorage::new(dir)?)
            .await
    };
    let first = open().await.unwrap();
    first
        .manager
        .create_context("a", json!({ "n": 1 }))
        .await
        .unwrap();
    assert_eq!(open().await.unwrap_err().code(), "STORAGE");
    drop(first);
    let second = open().await.unwrap();
    assert_eq!(
        second.manager.get_context("a").await.unwrap().data,
        json!({ "n": 1 })
    );
}
