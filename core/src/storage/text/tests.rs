//! Tests of [`TextStorage`] over text in memory, read with the npm
//! package's JSON parser.

use super::*;
use crate::{ContextManager, ContextState, ManagerConfig, SnapshotRecord};
use futures::executor::block_on;
use serde_json::json;
use std::collections::BTreeMap;

/// Text in memory, and the problems its `load` reports.
#[derive(Debug, Default)]
struct Texts {
    map: Mutex<BTreeMap<String, String>>,
    load_problems: Vec<String>,
}

impl Texts {
    fn with<R>(&self, f: impl FnOnce(&mut BTreeMap<String, String>) -> R) -> R {
        f(&mut self.map.lock().unwrap())
    }
}

impl TextStore for Texts {
    fn load(&self) -> StorageFuture<'_, LoadedText> {
        let entries = self.with(|m| m.clone().into_iter().collect());
        let problems = (self.load_problems.iter())
            .map(|p| ContextError::storage(p.clone()))
            .collect();
        Box::pin(async move { Ok(LoadedText { entries, problems }) })
    }

    fn get(&self, key: &str) -> StorageFuture<'_, Option<String>> {
        let text = self.with(|m| m.get(key).cloned());
        Box::pin(async move { Ok(text) })
    }

    fn put(&self, key: &str, text: String) -> StorageFuture<'_, ()> {
        self.with(|m| m.insert(key.to_owned(), text));
        Box::pin(async { Ok(()) })
    }

    fn delete(&self, key: &str) -> StorageFuture<'_, ()> {
        self.with(|m| m.remove(key));
        Box::pin(async { Ok(()) })
    }
}

/// The npm package's parser.
fn parse(text: &str, max_depth: usize) -> std::result::Result<Value, String> {
    contextkit_json::parse(text, max_depth, false).map_err(|e| e.to_string())
}

fn storage(entries: &[(&str, &str)]) -> TextStorage<Texts> {
    let texts = Texts::default();
    texts.with(|m| m.extend(entries.iter().map(|&(k, v)| (k.into(), v.into()))));
    TextStorage::new(texts, parse)
}

fn record(id: &str, data: Value) -> Record {
    let state = Arc::new(ContextState {
        id: id.into(),
        version: 3,
        revision: 12,
        created_at_ms: 1_000,
        updated_at_ms: 2_000,
        expires_at_ms: Some(9_000),
        data: data.into(),
        metadata: BTreeMap::from([("k".into(), "v".into())]),
    });
    Record {
        snapshots: vec![SnapshotRecord {
            id: 4,
            created_at_ms: 1_500,
            state: Arc::clone(&state),
        }],
        state,
        ttl_ms: Some(7_000),
        next_snapshot_id: 5,
    }
}

fn messages(problems: &[ContextError]) -> Vec<String> {
    problems.iter().map(ToString::to_string).collect()
}

#[test]
fn records_and_meta_round_trip_through_their_keys() {
    block_on(async {
        let s = storage(&[]);
        let a = record("a", json!({ "x": 1.5, "big": 18446744073709551615u64 }));
        s.put(Arc::new(a.clone())).await.unwrap();
        s.put(Arc::new(record("b", json!({})))).await.unwrap();
        let meta = Meta {
            next_snapshot_id: 5,
            next_revision: 13,
        };
        s.put_meta(meta).await.unwrap();
        s.delete("b").await.unwrap();
        s.delete("never").await.unwrap();
        let keys: Vec<String> = s.store().with(|m| m.keys().cloned().collect());
        assert_eq!(keys, ["c/a", "meta"]);
        assert_eq!(
            s.store().with(|m| m["c/a"].clone()),
            serde_json::to_string(&a).unwrap()
        );
        assert_eq!(s.get("a").await.unwrap(), Some(a.clone()));
        assert_eq!(s.get("b").await.unwrap(), None);
        let loaded = s.load().await.unwrap();
        assert_eq!(loaded.records, [a]);
        assert_eq!(loaded.meta, Some(meta));
        assert!(loaded.problems.is_empty());
    });
}

#[test]
fn a_reopened_manager_sees_what_was_acknowledged() {
    block_on(async {
        let texts = Arc::new(Texts::default());
        let config = ManagerConfig::default;
        let open =
            || ContextManager::builder(config()).open(TextStorage::new(Arc::clone(&texts), parse));
        let m = open().await.unwrap().manager;
        m.create_context("a", json!({ "n": 1 })).await.unwrap();
        m.create_recovery_point("a").await.unwrap();
        let before = m
            .update_context("a", json!({ "n": 2 }), None)
            .await
            .unwrap();
        m.create_context("b", json!({})).await.unwrap();
        m.delete_context("b").await.unwrap();
        drop(m);
        let opened = open().await.unwrap();
        assert!(opened.problems.is_empty());
        let m = opened.manager;
        assert_eq!(m.list_context_ids().await, ["a"]);
        assert_eq!(*m.get_context("a").await.unwrap(), *before);
        assert_eq!(
            m.recovery_points("a").await.unwrap()[0].data,
            json!({ "n": 1 })
        );
        let again = m.create_context("b", json!({})).await.unwrap();
        assert!(
            again.revision > before.revision + 1,
            "b's removal kept its revision"
        );
    });
}

/// Data held as text (as the npm package writes it) through every
/// operation of a manager over a storage of text, and a reopen: the text
/// stays text in memory (the record's JSON is written from a tree, read
/// for the write and dropped), and what is stored
/// reads back as the same value.
#[test]
fn data_held_as_text_goes_through_a_manager_and_its_storage() {
    block_on(async {
        let texts = Arc::new(Texts::default());
        let open = || {
            ContextManager::builder(ManagerConfig::default())
                .open(TextStorage::new(Arc::clone(&texts), parse))
        };
        let text = |t: &str| crate::Data::from_json(t, parse).unwrap();
        let m = open().await.unwrap().manager;
        let first = r#"{"b":[1.5,"\u00e9\n"],"a":{"deep":[[[]]]}}"#;
        let s = m.create_context("a", text(first)).await.unwrap();
        assert_eq!(s.data.as_json(), Some(first));
        let point = m.create_recovery_point("a").await.unwrap();
        assert_eq!(point.data.as_json(), Some(first));
        let s = m
            .update_context("a", text(r#"{"n":2}"#), Some(1))
            .await
            .unwrap();
        assert_eq!((s.version, s.data.as_json()), (2, Some(r#"{"n":2}"#)));
        let s = m
            .try_modify_data("a", |d| Ok(text(&d.json_text().replace('2', "3"))))
            .await
            .unwrap();
        assert_eq!((s.version, s.data.as_json()), (3, Some(r#"{"n":3}"#)));
        let s = m.restore_recovery_point("a", point.id).await.unwrap();
        assert_eq!((s.version, s.data.as_json()), (4, Some(first)));
        let s = m
            .modify_context("a", |v| json!({ "was": v }))
            .await
            .unwrap();
        assert_eq!(s.data["was"]["b"][1], "é\n");
        let big = crate::ManagerConfig {
            max_data_bytes: 10,
            ..ManagerConfig::default()
        };
        let small = ContextManager::new(big);
        let err = small
            .create_context("x", text(r#"{"ab":"cdef"}"#))
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid argument: context data is larger than 10 bytes"
        );
        let err = small.create_context("x", text("[]")).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid argument: context data must be a JSON object, got an array"
        );
        drop(m);
        let m = open().await.unwrap().manager;
        let back = m.get_context("a").await.unwrap();
        assert_eq!(back.version, 5);
        assert_eq!(
            back.data,
            json!({ "was": { "a": { "deep": [[[]]] }, "b": [1.5, "é\n"] } })
        );
        assert_eq!(m.recovery_points("a").await.unwrap()[0].data.json_text(), {
            let v: Value = serde_json::from_str(first).unwrap();
            v.to_string()
        });
    });
}

#[test]
fn a_value_that_does_not_read_is_a_problem_naming_its_key() {
    block_on(async {
        let good = serde_json::to_string(&record("good", json!({}))).unwrap();
        let mut s = storage(&[
            ("c/good", &good),
            ("c/cut", &good[..40]),
            ("c/shape", r#"{"state":{"id":"shape","version":"one"}}"#),
            ("c/deep", &format!("{}{}", "[".repeat(200), "]".repeat(200))),
            ("meta", r#"{"nextSnapshotId":-1}"#),
            ("app/settings", "not json at all"),
        ]);
        s.store
            .load_problems
            .push("storage.get('c/gone') failed".into());
        let loaded = s.load().await.unwrap();
        assert_eq!(loaded.records.len(), 1);
        assert_eq!(loaded.records[0].state.id, "good");
        assert_eq!(loaded.meta, None);
        assert!(loaded.problems.iter().all(|e| e.code() == "STORAGE"));
        // In the order of the keys, then what the store reported.
        assert_eq!(
            messages(&loaded.problems),
            [
                "storage error: stored value of 'c/cut' is not valid JSON: \
                 EOF while parsing a string at line 1 column 40",
                "storage error: stored value of 'c/deep' is nested too deeply \
                 (the limit is 132 levels)",
                "storage error: stored value of 'c/shape' is not a context record: \
                 its version is missing or invalid",
                "storage error: stored value of 'meta' is not contextkit metadata: \
                 its nextSnapshotId is missing or invalid",
                "storage error: storage.get('c/gone') failed",
            ]
        );
        let err = s.get("shape").await.unwrap_err();
        assert!(
            err.to_string()
                .contains("'c/shape' is not a context record")
        );
    });
}

#[test]
fn a_record_must_hold_the_id_of_its_key() {
    block_on(async {
        let a = serde_json::to_string(&record("a", json!({}))).unwrap();
        let s = storage(&[("c/b", &a)]);
        let loaded = s.load().await.unwrap();
        assert!(loaded.records.is_empty());
        let expected = ["storage error: stored value of 'c/b' holds context 'a'"];
        assert_eq!(messages(&loaded.problems), expected);
        assert_eq!(s.get("b").await.unwrap_err().to_string(), expected[0]);
    });
}

#[test]
fn data_nested_as_deep_as_allowed_reads_back() {
    block_on(async {
        let nested = |levels: usize| (1..levels).fold(json!({}), |d, _| json!({ "d": d }));
        let s = storage(&[]);
        let deepest = record("a", nested(MAX_DEPTH));
        s.put(Arc::new(deepest.clone())).await.unwrap();
        assert_eq!(s.get("a").await.unwrap(), Some(deepest));
        s.put(Arc::new(record("b", nested(MAX_DEPTH + 1))))
            .await
            .unwrap();
        let loaded = s.load().await.unwrap();
        assert_eq!(loaded.records.len(), 1);
        assert!(
            loaded.problems[0]
                .to_string()
                .contains("'c/b' is nested too deeply")
        );
    });
}

#[test]
fn the_stored_meta_never_goes_back() {
    block_on(async {
        let stored = |s: &TextStorage<Texts>| s.store().with(|m| m["meta"].clone());
        let s = storage(&[("meta", r#"{"nextSnapshotId":6,"nextRevision":3}"#)]);
        s.load().await.unwrap();
        let metas = [(5, 4), (3, 9), (7, 2), (6, 8)];
        let mut written = Vec::new();
        for (n, r) in metas {
            s.put_meta(Meta {
                next_snapshot_id: n,
                next_revision: r,
            })
            .await
            .unwrap();
            written.push(stored(&s));
        }
        assert_eq!(
            written,
            [
                r#"{"nextSnapshotId":6,"nextRevision":4}"#,
                r#"{"nextSnapshotId":6,"nextRevision":9}"#,
                r#"{"nextSnapshotId":7,"nextRevision":9}"#,
                r#"{"nextSnapshotId":7,"nextRevision":9}"#,
            ]
        );
    });
}
