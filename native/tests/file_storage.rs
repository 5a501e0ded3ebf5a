//! File storage: safe names for any id, durable reopen, and clear errors for
//! damaged files while the rest still loads.

use contextkit::{ContextManager, CreateOptions, FileStorage, ManagerConfig, json};
use std::fs;
use std::path::Path;

async fn open(dir: &Path) -> contextkit::Opened {
    ContextManager::builder(ManagerConfig::default())
        .open(FileStorage::new(dir).unwrap())
        .await
        .unwrap()
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
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
    assert_eq!(names.len(), ids.len(), "{names:?}");
    assert!(
        names.iter().all(|n| n.starts_with("ctx-") && n.len() == 73),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopen_sees_exactly_the_acknowledged_state() {
    let tmp = tempfile::tempdir().unwrap();
    let m = open(tmp.path()).await.manager;
    let opts = CreateOptions {
        ttl_ms: Some(3_600_000),
        metadata: [("k".into(), "v".into())].into(),
    };
    m.create_context_with("a", json!({ "v": 1 }), opts)
        .await
        .unwrap();
    m.update_context("a", json!({ "v": 2 }), Some(1))
        .await
        .unwrap();
    let p = m.create_recovery_point("a").await.unwrap();
    m.create_context("b", json!({})).await.unwrap();
    m.create_recovery_point("b").await.unwrap();
    m.delete_context("b").await.unwrap();
    let next = m.next_recovery_point_id();
    let before = m.get_context("a").await.unwrap();
    drop(m);
    let m = open(tmp.path()).await.manager;
    assert_eq!(*m.get_context("a").await.unwrap(), *before);
    assert_eq!(m.recovery_points("a").await.unwrap(), vec![p]);
    assert_eq!(m.get_context("b").await.unwrap_err().code(), "NOT_FOUND");
    assert_eq!(m.next_recovery_point_id(), next);
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
    let path_of = |id: &str| {
        let before = files(tmp.path());
        before
            .into_iter()
            .map(|n| tmp.path().join(n))
            .find(|p| {
                fs::read_to_string(p)
                    .unwrap()
                    .contains(&format!("\"id\":\"{id}\""))
            })
            .unwrap()
    };
    let truncated = path_of("truncated");
    let garbled = path_of("garbled");
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

/// Two deletes may issue their meta writes in the other order than they took
/// their ids: the stored next recovery point id never goes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stored_next_recovery_point_id_never_goes_back() {
    use contextkit::{Meta, Storage};
    let dir = tempfile::tempdir().unwrap();
    let storage = FileStorage::new(dir.path()).unwrap();
    storage
        .put_meta(Meta {
            next_snapshot_id: 6,
        })
        .await
        .unwrap();
    storage
        .put_meta(Meta {
            next_snapshot_id: 5,
        })
        .await
        .unwrap();
    assert_eq!(
        storage.load().await.unwrap().meta.unwrap().next_snapshot_id,
        6
    );
    // Also across a reopen of the directory.
    let again = FileStorage::new(dir.path()).unwrap();
    assert_eq!(
        again.load().await.unwrap().meta.unwrap().next_snapshot_id,
        6
    );
    again
        .put_meta(Meta {
            next_snapshot_id: 3,
        })
        .await
        .unwrap();
    again
        .put_meta(Meta {
            next_snapshot_id: 9,
        })
        .await
        .unwrap();
    let third = FileStorage::new(dir.path()).unwrap();
    assert_eq!(
        third.load().await.unwrap().meta.unwrap().next_snapshot_id,
        9
    );
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

    // Deeper than any record: reported, not parsed.
    let path = tmp.path().join(
        files(tmp.path())
            .into_iter()
            .find(|n| n.starts_with("ctx-"))
            .unwrap(),
    );
    fs::write(&path, "[".repeat(100_000)).unwrap();
    let damaged = open(tmp.path()).await;
    assert_eq!(damaged.problems.len(), 1);
    let message = damaged.problems[0].to_string();
    assert!(message.contains("nested deeper"), "{message}");
    assert!(message.contains(path.to_str().unwrap()), "{message}");
}
