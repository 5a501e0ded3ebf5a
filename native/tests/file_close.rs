//! Closing a file storage: `close()` waits for the writes already queued and
//! then frees the directory; dropping the last manager inside a tokio task
//! never blocks the runtime's thread.

use contextkit::{ContextManager, ContextState, FileStorage, ManagerConfig, Storage, json};
use sha2::{Digest, Sha256};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The context file of `id` in `dir`.
fn file_of(dir: &Path, id: &str) -> PathBuf {
    let digest: String = Sha256::digest(id.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    dir.join(format!("ctx-{digest}.json"))
}

/// A write queued on a storage, its future dropped unpolled (nobody awaits
/// it), setting `id` to version 2 with `{ "v": 2 }`.
async fn queue_unawaited_write(storage: &FileStorage, id: &str) {
    let mut record = storage.get(id).await.unwrap().unwrap();
    let mut state = ContextState::clone(&record.state);
    state.version = 2;
    state.data = json!({ "v": 2 }).into();
    record.state = Arc::new(state);
    drop(storage.put(Arc::new(record)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_waits_for_queued_writes_then_frees_the_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let storage = Arc::new(FileStorage::new(&dir).unwrap());
    let opened = ContextManager::builder(ManagerConfig::default())
        .open(Arc::clone(&storage))
        .await
        .unwrap();
    let ids: Vec<String> = (0..32).map(|i| format!("c{i}")).collect();
    for id in &ids {
        opened
            .manager
            .create_context(id, json!({ "v": 1 }))
            .await
            .unwrap();
    }
    drop(opened);
    for id in &ids {
        queue_unawaited_write(&storage, id).await;
    }
    storage.close().await;

    // Every queued write is on disk, and the lock is gone, when close returns.
    for id in &ids {
        let text = fs::read_to_string(file_of(&dir, id)).unwrap();
        assert!(text.contains(r#""version":2"#), "{id}: {text}");
    }
    assert!(!dir.join("contextkit.lock").exists());
    let again = ContextManager::builder(ManagerConfig::default())
        .open(FileStorage::new(&dir).unwrap())
        .await
        .unwrap();
    assert!(again.problems.is_empty(), "{:?}", again.problems);
    for id in &ids {
        let s = again.manager.get_context(id).await.unwrap();
        assert_eq!((s.version, &*s.data), (2, &json!({ "v": 2 })));
    }

    // A closed storage refuses work; closing again returns at once.
    assert_eq!(storage.get("c0").await.unwrap_err().code(), "STORAGE");
    storage.close().await;
}

/// A storage with nothing queued lets the directory go as it is dropped,
/// inside a runtime too: another process may open it right away.
#[tokio::test(flavor = "current_thread")]
async fn dropping_an_idle_storage_frees_the_directory_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let m = ContextManager::builder(ManagerConfig::default())
        .open(FileStorage::new(&dir).unwrap())
        .await
        .unwrap()
        .manager;
    m.create_context("a", json!({ "v": 1 })).await.unwrap();
    m.update_context("a", json!({ "v": 2 }), None)
        .await
        .unwrap();
    assert!(dir.join("contextkit.lock").exists());
    drop(m);
    assert!(!dir.join("contextkit.lock").exists());
}

/// The storage's last manager is dropped inside a task of a current-thread
/// runtime while a worker is stuck on queued work (reading a FIFO that only
/// another thread writes to, once told to). The runtime's other task still
/// runs before that work ends: the drop did not wait for it. If the drop
/// blocked, that task could not run, and the writer would give up waiting
/// after a minute and unblock the worker, so the test fails instead of hanging.
#[cfg(unix)]
#[test]
fn dropping_the_last_manager_in_a_task_does_not_block_the_runtime() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let fifo = file_of(&dir, "stuck");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let (told, tell) = std::sync::mpsc::channel::<()>();
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            let told_in_time = tell.recv_timeout(Duration::from_secs(60)).is_ok();
            // Opening a FIFO to write waits for its reader: the stuck worker.
            fs::write(&fifo, b"not a record").unwrap();
            told_in_time
        })
    };
    runtime.block_on(async {
        let storage = Arc::new(FileStorage::new(&dir).unwrap());
        let manager = ContextManager::builder(ManagerConfig::default())
            .open(Arc::clone(&storage))
            .await
            .unwrap()
            .manager;
        manager
            .create_context("a", json!({ "v": 1 }))
            .await
            .unwrap();
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        // Queued now; its worker waits for the FIFO's writer.
        drop(storage.get("stuck"));
        drop(storage);

        let dropped = Arc::new(AtomicBool::new(false));
        let dropper = tokio::spawn({
            let dropped = Arc::clone(&dropped);
            async move {
                drop(manager); // the last holder of the storage
                dropped.store(true, Ordering::SeqCst);
            }
        });
        let other = tokio::spawn(async move {
            while !dropped.load(Ordering::SeqCst) {
                tokio::task::yield_now().await;
            }
            // Still stuck: only this message lets the writer unblock it.
            let _ = told.send(());
        });
        dropper.await.unwrap();
        other.await.unwrap();

        // A new storage on the directory waits for the dropped one to finish
        // its queued work and release the lock, rather than failing.
        let next = FileStorage::new(&dir).unwrap();
        drop(next);
    });
    assert!(
        writer.join().unwrap(),
        "the runtime's other task ran only after the queued work ended"
    );
    fs::remove_file(&fifo).unwrap();
    runtime.block_on(async {
        let again = ContextManager::builder(ManagerConfig::default())
            .open(FileStorage::new(&dir).unwrap())
            .await
            .unwrap();
        assert!(again.problems.is_empty(), "{:?}", again.problems);
        assert_eq!(again.manager.list_context_ids().await, ["a"]);
    });
}
