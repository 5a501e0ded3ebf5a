//! Fuzz target: arbitrary ids and JSON bytes through every entry point that
//! takes them. Nothing may panic; an id or data is accepted exactly when the
//! rules in the README's "Semantics worth knowing" allow it (1..=max bytes
//! without control characters; a JSON object within the size and depth
//! limits), and what is stored is what was given, through reads, updates,
//! recovery points and a JSON round trip. The same bytes as JSON text
//! (`Data::from_json`) are held as given, under the same rules.
#![no_main]

use contextkit_core::{
    AdapterConfig, ContextAdapter, ContextError, ContextEvent, ContextManager, ContextState,
    ContextTracker, CreateOptions, Data, ManagerConfig, ManualClock, TrackerConfig, MAX_DEPTH,
};
use futures::executor::block_on;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const MAX_ID: usize = 16;
const MAX_DATA: usize = 512;

fn depth(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        Value::Object(o) => 1 + o.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_ID && !id.chars().any(char::is_control)
}

fn valid_data(v: &Value) -> bool {
    v.is_object() && depth(v) <= MAX_DEPTH && serde_json::to_vec(v).unwrap().len() <= MAX_DATA
}

/// The same bytes given as JSON text (`Data::from_json`): accepted exactly
/// when the rules allow it, the text measured as given, and kept as it is
/// through a read, an update and a restore.
fn held_as_text(cfg: ManagerConfig, id: &str, text: &str, value: &Value, id_ok: bool) {
    let parse = |t: &str, d| contextkit_json::parse(t, d, false).map_err(|e| e.to_string());
    let trimmed = text.trim_matches([' ', '\n', '\r', '\t']);
    let Ok(data) = Data::from_json(text, parse) else {
        // serde_json read it, so only depth can refuse it here.
        assert!(depth(value) > MAX_DEPTH, "{text:?}");
        return;
    };
    assert_eq!(data, *value);
    let ok = id_ok && value.is_object() && trimmed.len() <= cfg.max_data_bytes;
    let m = ContextManager::builder(cfg)
        .clock(ManualClock::new(0))
        .build();
    block_on(async {
        let created = m.create_context(id, data.clone()).await;
        if !ok {
            expect_invalid(created);
            return;
        }
        let s = created.unwrap();
        assert_eq!(s.data.as_json(), Some(trimmed));
        let p = m.create_recovery_point(id).await.unwrap();
        m.update_context(id, serde_json::json!({}), None)
            .await
            .unwrap();
        let back = m.restore_recovery_point(id, p.id).await.unwrap();
        assert_eq!(back.data.as_json(), Some(trimmed));
        assert_eq!(m.get_context(id).await.unwrap().data, *value);
    });
}

fn expect_invalid<T: std::fmt::Debug>(r: Result<T, ContextError>) {
    assert_eq!(r.unwrap_err().code(), "INVALID_ARGUMENT");
}

fuzz_target!(|input: (&str, &[u8])| {
    let (id, bytes) = input;
    // Whatever the bytes are, parsing them as any public type must not panic.
    let _ = serde_json::from_slice::<ManagerConfig>(bytes);
    let _ = serde_json::from_slice::<AdapterConfig>(bytes);
    let _ = serde_json::from_slice::<TrackerConfig>(bytes);
    let _ = serde_json::from_slice::<CreateOptions>(bytes);
    let _ = serde_json::from_slice::<ContextEvent>(bytes);
    let _ = serde_json::from_slice::<ContextState>(bytes);
    let Ok(value) = serde_json::from_slice::<Value>(bytes) else {
        return;
    };

    let cfg = ManagerConfig {
        max_id_bytes: MAX_ID,
        max_data_bytes: MAX_DATA,
        max_contexts: 4,
        ..ManagerConfig::default()
    };
    let (id_ok, data_ok) = (valid_id(id), valid_data(&value));
    if let Ok(text) = std::str::from_utf8(bytes) {
        held_as_text(cfg.clone(), id, text, &value, id_ok);
    }
    let m = ContextManager::builder(cfg)
        .clock(ManualClock::new(0))
        .build();
    block_on(async {
        let created = m.create_context(id, value.clone()).await;
        if !(id_ok && data_ok) {
            expect_invalid(created);
            if !id_ok {
                expect_invalid(m.get_context(id).await);
                expect_invalid(m.delete_context(id).await);
                expect_invalid(m.create_recovery_point(id).await);
                expect_invalid(m.recovery_points(id).await);
                expect_invalid(m.restore_recovery_point(id, 1).await);
                expect_invalid(m.update_context(id, serde_json::json!({}), None).await);
            }
            if id_ok && !data_ok {
                m.create_context(id, serde_json::json!({})).await.unwrap();
                expect_invalid(m.update_context(id, value.clone(), Some(1)).await);
                let t = ContextTracker::new(m.clone(), TrackerConfig::default());
                t.activate_context(id).await.unwrap();
                expect_invalid(t.update_state(value.clone()).await);
                assert!(!t.is_dirty().await);
            }
            return;
        }
        let s = created.unwrap();
        assert_eq!((s.version, &*s.data, s.id.as_str()), (1, &value, id));
        assert_eq!(m.get_context(id).await.unwrap().data, value);
        let json = serde_json::to_string(&*s).unwrap();
        assert_eq!(serde_json::from_str::<ContextState>(&json).unwrap(), *s);
        let snapshot = m.create_recovery_point(id).await.unwrap();
        let s2 = m
            .update_context(id, serde_json::json!({ "other": true }), Some(1))
            .await
            .unwrap();
        assert_eq!(s2.version, 2);
        let restored = m.restore_recovery_point(id, snapshot.id).await.unwrap();
        assert_eq!((restored.version, &*restored.data), (3, &value));
        assert_eq!(m.list_context_ids().await, vec![id.to_owned()]);
        let t = ContextTracker::new(m.clone(), TrackerConfig::default());
        t.activate_context(id).await.unwrap();
        t.update_state(value.clone()).await.unwrap();
        assert_eq!(t.sync_state().await.unwrap().version, 4);
        let a = ContextAdapter::new(m.clone(), AdapterConfig::default());
        assert_eq!(
            a.activate_context(id)
                .await
                .unwrap()
                .get_state()
                .await
                .unwrap()
                .data,
            value
        );
        m.delete_context(id).await.unwrap();
        assert_eq!(m.get_context(id).await.unwrap_err().code(), "NOT_FOUND");
    });
});
