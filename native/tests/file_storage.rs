//! File storage: safe names for any id, durable reopen, checksummed files
//! whose damage is reported by name while the rest still loads, one storage
//! per directory, and a directory shared with other files.

use contextkit::{
    ContextError, ContextManager, ContextState, CreateOptions, FileStorage, ManagerConfig,
    ManualClock, Meta, Snapshot, Storage, UpdateOptions, json,
};
use sha2::{Digest, Sha256};
use std::error::Error;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

async fn open(dir: &Path) -> contextkit::Opened {
    ContextManager::builder(ManagerConfig::default())
        .open(FileStorage::new(dir).unwrap())
        .await
        .unwrap()
}

/// The names in `dir`, sorted.
fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// The context files in `dir`, sorted.
fn context_files(dir: &Path) -> Vec<PathBuf> {
    files(dir)
        .into_iter()
        .filter(|n| n.starts_with("ctx-"))
        .map(|n| dir.join(n))
        .collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The file format: `contextkit <sha256 hex of the rest>\n` and the JSON.
fn seal(json: &[u8]) -> Vec<u8> {
    let mut bytes = format!("contextkit {}\n", sha256_hex(json)).into_bytes();
    bytes.extend_from_slice(json);
    bytes
}

/// The JSON of a stored file, after checking its header.
fn unseal(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap();
    let (header, json) = text.split_once('\n').unwrap();
    assert_eq!(
        header,
        format!("contextkit {}", sha256_hex(json.as_bytes()))
    );
    json.to_owned()
}

/// The context file holding `id`.
fn file_of(dir: &Path, id: &str) -> PathBuf {
    let name = format!("ctx-{}.json", sha256_hex(id.as_bytes()));
    let path = dir.join(name);
    assert!(unseal(&path).contains(&format!("\"id\":\"{id}\"")));
    path
}

/// The line of `dir`'s lock file, naming its holder.
fn lock_holder(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&fs::read(dir.join("contextkit.lock")).unwrap()).unwrap()
}

/// Replaces the first `from` in `path` by `to`, leaving the header as it was.
fn edit(path: &Path, from: &str, to: &str) {
    let text = fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{from} not in {text}");
    fs::write(path, text.replacen(from, to, 1)).unwrap();
}

/// A manager over `dir` keeping two recovery points, on `clock`; nothing damaged.
async fn open_clean(dir: &Path, clock: &ManualClock) -> ContextManager {
    let config = ManagerConfig {
        max_recovery_points: 2,
        ..ManagerConfig::default()
    };
    let opened = ContextManager::builder(config)
        .clock(clock.clone())
        .open(FileStorage::new(dir).unwrap())
        .await
        .unwrap();
    assert!(opened.problems.is_empty(), "{:?}", opened.problems);
    opened.manager
}

/// Everything a user can observe of a manager.
async fn dump(m: &ContextManager) -> (Vec<(ContextState, Vec<Snapshot>)>, u64) {
    let mut out = Vec::new();
    for s in m.list_contexts().await {
        let snapshots = m.recovery_points(&s.id).await.unwrap();
        out.push((ContextState::clone(&s), snapshots));
    }
    (out, m.next_recovery_point_id())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_id_gets_a_safe_distinct_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let ids = [
        "../../escape",
        "a/b",
        "a\\b",
        "A",
        "a",
        "con",
        "NUL",
        "x".repeat(256).as_str().to_owned().leak(),
        "é",
        "e\u{301}",
        "dots...",
        " ",
        "🎉 party",
        "C:",
        "tab-free:*?\"<>|",
    ];
    let m = open(&dir).await.manager;
    for (n, id) in ids.iter().enumerate() {
        m.create_context(id, json!({ "n": n })).await.unwrap();
    }
    let names = files(&dir);
    assert_eq!(names.len(), ids.len() + 1, "{names:?}");
    assert!(
        names
            .iter()
            .all(|n| n == "contextkit.lock" || (n.starts_with("ctx-") && n.len() == 73)),
        "{names:?}"
    );
    assert!(!tmp.path().join("escape").exists());
    drop(m);
    let reopened = open(&dir).await;
    assert!(reopened.problems.is_empty());
    for (n, id) in ids.iter().enumerate() {
        assert_eq!(
            reopened.manager.get_context(id).await.unwrap().data,
            json!({ "n": n }),
            "{id:?}"
        );
    }
}

/// Every kind of acknowledged write, TTLs and expiry included, reads back
/// the same after a reopen; expired and deleted contexts leave no file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopen_sees_exactly_the_acknowledged_state() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_000);
    let reopen = || open_clean(tmp.path(), &clock);
    let m = reopen().await;
    let opts = CreateOptions {
        ttl_ms: Some(3_600_000),
        metadata: [("k".into(), "v".into())].into(),
    };
    m.create_context_with("a", json!({ "v": 1 }), opts)
        .await
        .unwrap();
    clock.advance(5);
    m.update_context("a", json!({ "v": 2 }), Some(1))
        .await
        .unwrap();
    let with_ttl = UpdateOptions {
        expected_version: Some(2),
        ttl_ms: Some(60_000),
    };
    m.update_context_with("a", json!({ "v": 3 }), with_ttl)
        .await
        .unwrap();
    // Three snapshots, two kept; restore the oldest kept.
    for _ in 0..3 {
        m.create_recovery_point("a").await.unwrap();
        clock.advance(1);
    }
    let first = m.recovery_points("a").await.unwrap()[0].id;
    m.restore_recovery_point("a", first).await.unwrap();
    m.create_context("b", json!({})).await.unwrap();
    m.create_recovery_point("b").await.unwrap();
    m.delete_context("b").await.unwrap();
    let short = CreateOptions {
        ttl_ms: Some(10),
        ..CreateOptions::default()
    };
    m.create_context_with("t", json!({ "gone": "soon" }), short)
        .await
        .unwrap();
    clock.advance(10);
    assert_eq!(m.cleanup_expired().await, 1);
    let before = dump(&m).await;
    assert_eq!(before.0.len(), 1);
    assert_eq!(before.0[0].0.version, 4);
    assert_eq!(before.0[0].1.len(), 2);
    drop(m);

    let m = reopen().await;
    assert_eq!(dump(&m).await, before);
    assert_eq!(m.get_context("b").await.unwrap_err().code(), "NOT_FOUND");
    assert_eq!(m.get_context("t").await.unwrap_err().code(), "NOT_FOUND");
    assert_eq!(context_files(tmp.path()), [file_of(tmp.path(), "a")]);
    // The TTL set by the last update still runs after the reopen.
    clock.advance(60_000);
    assert_eq!(m.cleanup_expired().await, 1);
    drop(m);
    assert!(context_files(tmp.path()).is_empty());
    let m = reopen().await;
    assert!(m.is_empty().await);
    assert_eq!(m.next_recovery_point_id(), before.1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_files_are_named_and_the_rest_still_loads() {
    let tmp = tempfile::tempdir().unwrap();
    let m = open(tmp.path()).await.manager;
    for id in ["ok", "truncated", "garbled"] {
        m.create_context(id, json!({ "id": id, "pad": "x".repeat(100) }))
            .await
            .unwrap();
    }
    drop(m);
    let truncated = file_of(tmp.path(), "truncated");
    let garbled = file_of(tmp.path(), "garbled");
    let bytes = fs::read(&truncated).unwrap();
    fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    fs::write(&garbled, b"{ this is not json").unwrap();

    let opened = open(tmp.path()).await;
    assert_eq!(opened.problems.len(), 2, "{:?}", opened.problems);
    for path in [&truncated, &garbled] {
        let name = path.display().to_string();
        let named = opened
            .problems
            .iter()
            .find(|e| e.to_string().contains(&name));
        let e = named.unwrap_or_else(|| panic!("no problem names {name}: {:?}", opened.problems));
        assert_eq!(e.code(), "STORAGE");
        assert!(e.to_string().contains("corrupt context file"), "{e}");
    }
    let m = opened.manager;
    assert_eq!(m.list_context_ids().await, ["ok"]);
    // The damaged ids can be written again and then load cleanly.
    m.create_context("garbled", json!({ "fresh": true }))
        .await
        .unwrap();
    drop(m);
    let opened = open(tmp.path()).await;
    assert_eq!(opened.problems.len(), 1);
    assert_eq!(opened.manager.list_context_ids().await, ["garbled", "ok"]);
}

/// Two removals may issue their meta writes in the other order than they
/// took their ids and revisions: neither stored field ever goes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stored_meta_never_goes_back() {
    let meta = |next_snapshot_id, next_revision| Meta {
        next_snapshot_id,
        next_revision,
    };
    let dir = tempfile::tempdir().unwrap();
    let storage = FileStorage::new(dir.path()).unwrap();
    storage.put_meta(meta(6, 2)).await.unwrap();
    storage.put_meta(meta(5, 7)).await.unwrap();
    storage.put_meta(meta(4, 3)).await.unwrap();
    assert_eq!(storage.load().await.unwrap().meta, Some(meta(6, 7)));
    // Also across a reopen of the directory.
    drop(storage);
    let again = FileStorage::new(dir.path()).unwrap();
    assert_eq!(again.load().await.unwrap().meta, Some(meta(6, 7)));
    again.put_meta(meta(3, 9)).await.unwrap();
    again.put_meta(meta(9, 1)).await.unwrap();
    drop(again);
    let third = FileStorage::new(dir.path()).unwrap();
    assert_eq!(third.load().await.unwrap().meta, Some(meta(9, 9)));
}

/// Data as deep as the core accepts (inside a recovery point too) loads
/// again; a file nested deeper than any record can be is named as damaged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deepest_data_accepted_survives_a_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let mut deep = json!({ "leaf": true });
    for _ in 1..contextkit::MAX_DEPTH {
        deep = json!({ "d": deep });
    }
    {
        let opened = open(tmp.path()).await;
        let m = &opened.manager;
        m.create_context("deep", deep.clone()).await.unwrap();
        m.create_recovery_point("deep").await.unwrap();
        m.update_context("deep", deep.clone(), None).await.unwrap();
    }
    let again = open(tmp.path()).await;
    assert!(again.problems.is_empty(), "{:?}", again.problems);
    let state = again.manager.get_context("deep").await.unwrap();
    assert_eq!(state.data, deep);
    assert_eq!(
        again.manager.recovery_points("deep").await.unwrap().len(),
        1
    );

    drop(again);
    // Deeper than any record, with a valid checksum: reported, not parsed.
    let path = file_of(tmp.path(), "deep");
    fs::write(&path, seal("[".repeat(100_000).as_bytes())).unwrap();
    let damaged = open(tmp.path()).await;
    assert_eq!(damaged.problems.len(), 1);
    let message = damaged.problems[0].to_string();
    assert!(message.contains("nested deeper"), "{message}");
    assert!(message.contains(path.to_str().unwrap()), "{message}");
}

/// Each file starts with `contextkit <sha256 of the rest>`: an edit that
/// leaves valid JSON (a data value, a version, the meta) is reported naming
/// the file, and the other files still load.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_json_garbling_is_reported_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let m = open(tmp.path()).await.manager;
    m.create_context("pay", json!({ "amount": 100 }))
        .await
        .unwrap();
    m.create_context("counter", json!({ "n": 1 }))
        .await
        .unwrap();
    m.update_context("counter", json!({ "n": 2 }), Some(1))
        .await
        .unwrap();
    m.create_context("ok", json!({ "amount": 100 }))
        .await
        .unwrap();
    // A delete of a context with recovery points stores the meta.
    m.create_context("gone", json!({})).await.unwrap();
    let snapshot = m.create_recovery_point("gone").await.unwrap();
    m.delete_context("gone").await.unwrap();
    drop(m);
    let meta = tmp.path().join("meta.json");
    for path in context_files(tmp.path()).iter().chain([&meta]) {
        unseal(path);
    }
    let (pay, counter) = (file_of(tmp.path(), "pay"), file_of(tmp.path(), "counter"));
    edit(&pay, "\"amount\":100", "\"amount\":900");
    edit(&counter, "\"version\":2", "\"version\":3");
    let next = format!("\"nextSnapshotId\":{}", snapshot.id + 1);
    edit(&meta, &next, "\"nextSnapshotId\":1");

    let opened = open(tmp.path()).await;
    assert_eq!(opened.problems.len(), 3, "{:?}", opened.problems);
    for (path, what) in [
        (&pay, "corrupt context file"),
        (&counter, "corrupt context file"),
        (&meta, "corrupt meta file"),
    ] {
        let e = opened
            .problems
            .iter()
            .find(|e| e.to_string().contains(path.to_str().unwrap()))
            .unwrap_or_else(|| panic!("no problem names {path:?}: {:?}", opened.problems));
        assert_eq!(e.code(), "STORAGE");
        assert_eq!(
            e.to_string(),
            format!(
                "storage error: {what} {}: checksum mismatch",
                path.display()
            )
        );
    }
    let m = opened.manager;
    assert_eq!(m.list_context_ids().await, ["ok"]);
    assert_eq!(m.get_context("ok").await.unwrap().data["amount"], 100);
    drop(m);

    // A header that is missing, cut short or not hex is reported too.
    for (bytes, why) in [
        (b"{\"state\":{}}".as_slice(), "missing header"),
        (b"contextkit 12ab\n{}".as_slice(), "bad header"),
        (b"contextkit".as_slice(), "missing header"),
        (b"".as_slice(), "missing header"),
    ] {
        fs::write(&pay, bytes).unwrap();
        let opened = open(tmp.path()).await;
        let named = opened
            .problems
            .iter()
            .find(|e| e.to_string().contains(pay.to_str().unwrap()))
            .unwrap_or_else(|| panic!("{why}: {:?}", opened.problems));
        assert_eq!(
            named.to_string(),
            format!(
                "storage error: corrupt context file {}: {why}",
                pay.display()
            )
        );
    }
    let mut header = seal(b"{}");
    header[11..15].copy_from_slice(b"WXYZ");
    fs::write(&pay, &header).unwrap();
    let opened = open(tmp.path()).await;
    assert!(
        opened.problems.iter().any(|e| e.to_string()
            == format!(
                "storage error: corrupt context file {}: bad header",
                pay.display()
            )),
        "{:?}",
        opened.problems
    );
}

/// Opening removes the temporary files of this storage's unfinished writes
/// and nothing else: other files in the directory are neither removed nor
/// read as records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_its_own_leftover_temporary_files_are_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let m = open(dir).await.manager;
    m.create_context("a", json!({ "v": 1 })).await.unwrap();
    drop(m);
    let a = file_of(dir, "a");
    // An unfinished write of "a" and of the meta, as `replace` names them.
    let leftover = dir.join(format!("{}.tmp", a.file_name().unwrap().to_str().unwrap()));
    fs::write(&leftover, seal(b"{\"half\":")).unwrap();
    fs::write(dir.join("meta.json.tmp"), b"").unwrap();
    let foreign = [
        "notes.tmp",
        "meta.tmp",
        "ctx-notes.json.tmp",
        "ctx-notes.json",
        &format!("ctx-{}.json.tmp", "A".repeat(64)),
        &format!("ctx-{}.json.tmp.tmp", "a".repeat(64)),
        "notes.json",
    ];
    for name in foreign {
        fs::write(dir.join(name), b"user data").unwrap();
    }
    let opened = open(dir).await;
    assert!(opened.problems.is_empty(), "{:?}", opened.problems);
    assert_eq!(opened.manager.list_context_ids().await, ["a"]);
    assert!(!leftover.exists());
    assert!(!dir.join("meta.json.tmp").exists());
    for name in foreign {
        assert_eq!(fs::read(dir.join(name)).unwrap(), b"user data", "{name}");
    }
    let mut expected: Vec<String> = foreign.iter().map(|n| n.to_string()).collect();
    expected.extend([
        a.file_name().unwrap().to_str().unwrap().to_owned(),
        "contextkit.lock".to_owned(),
    ]);
    expected.sort();
    assert_eq!(files(dir), expected);
}

/// One `FileStorage` per directory: a second one fails with `STORAGE` naming
/// the directory while the first lives, and opens once the first (and the
/// manager holding it) is dropped. The lock file is not a record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_has_one_file_storage_at_a_time() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let first = open(&dir).await;
    first
        .manager
        .create_context("a", json!({ "v": 1 }))
        .await
        .unwrap();
    let e = FileStorage::new(&dir).unwrap_err();
    assert_eq!(e.code(), "STORAGE");
    assert_eq!(
        e.to_string(),
        format!(
            "storage error: cannot open {}: in use by another FileStorage (pid {} on {}, this process)",
            dir.display(),
            std::process::id(),
            lock_holder(&dir)["hostname"].as_str().unwrap()
        )
    );
    // Also through a clone of the manager, which shares the storage.
    let clone = first.manager.clone();
    drop(first);
    assert_eq!(FileStorage::new(&dir).unwrap_err().code(), "STORAGE");
    drop(clone);

    let second = open(&dir).await;
    assert!(second.problems.is_empty(), "{:?}", second.problems);
    assert_eq!(second.manager.list_context_ids().await, ["a"]);
    drop(second);

    // A storage dropped with a write still queued (its future dropped unpolled)
    // finishes that write before it lets the directory go.
    let storage = FileStorage::new(&dir).unwrap();
    let mut record = storage.get("a").await.unwrap().unwrap();
    let mut state = ContextState::clone(&record.state);
    state.version = 2;
    state.data = json!({ "v": 2 }).into();
    record.state = Arc::new(state);
    drop(storage.put(Arc::new(record)));
    drop(storage);
    let third = open(&dir).await;
    assert!(third.problems.is_empty(), "{:?}", third.problems);
    let a = third.manager.get_context("a").await.unwrap();
    assert_eq!((a.version, &*a.data), (2, &json!({ "v": 2 })));
}

/// A directory created by `new`, parents included, is usable at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_creates_missing_parent_directories() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("x").join("y").join("store");
    let m = open(&dir).await.manager;
    m.create_context("a", json!({})).await.unwrap();
    drop(m);
    assert_eq!(open(&dir).await.manager.list_context_ids().await, ["a"]);
}

/// The `io::Error` a `STORAGE` error of the file storage has as its source.
fn io_source(e: &ContextError) -> &io::Error {
    assert_eq!(e.code(), "STORAGE");
    e.source()
        .and_then(|s| s.downcast_ref::<io::Error>())
        .unwrap_or_else(|| panic!("no io::Error as the source of {e:?}"))
}

/// A file operation that fails is a `STORAGE` error whose source is the
/// `io::Error`, and whose message names the path and says the same: a
/// directory below a file cannot be made; a context whose file became a
/// directory cannot be written (both fail for root too, unlike permissions).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_io_failure_is_the_source_of_its_storage_error() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("file");
    fs::write(&file, b"not a directory").unwrap();
    let below = file.join("store");
    let e = FileStorage::new(&below).unwrap_err();
    let io = io_source(&e);
    assert_eq!(io.kind(), io::ErrorKind::NotADirectory, "{io:?}");
    assert_eq!(
        e.to_string(),
        format!("storage error: cannot create {}: {io}", below.display())
    );

    let dir = tmp.path().join("store");
    let m = open(&dir).await.manager;
    m.create_context("a", json!({ "v": 1 })).await.unwrap();
    let path = file_of(&dir, "a");
    fs::remove_file(&path).unwrap();
    fs::create_dir(&path).unwrap();
    fs::write(path.join("inside"), b"").unwrap();
    let e = m
        .update_context("a", json!({ "v": 2 }), None)
        .await
        .unwrap_err();
    let io = io_source(&e);
    assert_eq!(io.kind(), io::ErrorKind::IsADirectory, "{io:?}");
    assert_eq!(
        e.to_string(),
        format!("storage error: cannot write {}: {io}", path.display())
    );
}
