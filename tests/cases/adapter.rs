//! Cases for the adapter: TTL, capacity, eviction and active trackers.

use super::{code, drain, ev, manual};
use contextkit_core::{
    AdapterConfig, ContextAdapter, ContextError, CreateOptions, ManagerConfig, json,
};
use std::collections::BTreeMap;

fn config(max_contexts: usize, ttl_ms: Option<u64>) -> AdapterConfig {
    AdapterConfig {
        max_contexts,
        ttl_ms,
        auto_cleanup: false,
        cleanup_interval_ms: 1_000,
        max_active_contexts: 2,
    }
}

pub async fn adapter_ttl_applies_and_updates_refresh_it() {
    let (m, clock) = manual(ManagerConfig::default());
    let a = ContextAdapter::new(m.clone(), config(10, Some(100)));
    let s = a.create_context("s", json!({ "n": 1 })).await.unwrap();
    assert_eq!(s.expires_at_ms, Some(1_100));
    clock.advance(80);
    let s = a
        .update_context("s", json!({ "n": 2 }), Some(1))
        .await
        .unwrap();
    assert_eq!((s.version, s.expires_at_ms), (2, Some(1_180)));
    clock.advance(80);
    assert_eq!(a.get_context("s").await.unwrap().version, 2);
    clock.advance(20);
    // Invisible everywhere once expired.
    assert_eq!(code(a.get_context("s").await), "NOT_FOUND");
    assert_eq!(code(m.get_context("s").await), "NOT_FOUND");
    assert!(a.list_contexts().await.is_empty());
    assert_eq!(a.cleanup_expired_contexts().await, 1);
}

pub async fn adapter_creates_carry_metadata_and_their_own_ttl() {
    let (m, _) = manual(ManagerConfig::default());
    let a = ContextAdapter::new(m.clone(), config(10, Some(100)));
    let metadata: BTreeMap<String, String> = [("owner".to_string(), "ada".to_string())].into();
    let opts = CreateOptions {
        metadata: metadata.clone(),
        ..CreateOptions::default()
    };
    let s = a.create_context_with("s", json!({}), opts).await.unwrap();
    assert_eq!((&s.metadata, s.expires_at_ms), (&metadata, Some(1_100)));
    assert_eq!(m.get_context("s").await.unwrap().metadata, metadata);
    let own = CreateOptions {
        ttl_ms: Some(5),
        ..CreateOptions::default()
    };
    let t = a.create_context_with("t", json!({}), own).await.unwrap();
    assert_eq!(t.expires_at_ms, Some(1_005));
}

/// What the manager offers besides create, get, update and delete, through
/// the adapter: modify, touch, recovery points and events.
pub async fn adapter_offers_modify_touch_recovery_points_and_events() {
    let (m, clock) = manual(ManagerConfig::default());
    let a = ContextAdapter::new(m.clone(), config(10, Some(100)));
    let mut events = a.subscribe();
    let s = a.create_context("s", json!({ "n": 1 })).await.unwrap();
    let p = a.create_recovery_point("s").await.unwrap();
    let s2 = a
        .modify_context("s", |d| json!({ "n": d["n"].as_u64().unwrap() + 1 }))
        .await
        .unwrap();
    assert_eq!((s2.version, &*s2.data), (2, &json!({ "n": 2 })));
    let refused = a
        .try_modify_context("s", |_| Err(ContextError::InvalidArgument("no".into())))
        .await;
    assert_eq!(code(refused), "INVALID_ARGUMENT");
    clock.advance(50);
    let t = a.touch_context("s").await.unwrap();
    assert_eq!((t.version, t.expires_at_ms), (2, Some(1_150)));
    assert_eq!(a.recovery_points("s").await.unwrap(), vec![p.clone()]);
    let r = a.restore_recovery_point("s", p.id).await.unwrap();
    assert_eq!((r.version, &*r.data), (3, &json!({ "n": 1 })));
    assert_eq!(
        drain(&mut events),
        vec![
            ev("created", "s", 1, s.revision),
            ev("updated", "s", 2, s2.revision),
            ev("restored", "s", 3, r.revision),
        ]
    );
}

pub async fn adapter_capacity_smaller_limit_wins() {
    let (m, _) = manual(ManagerConfig {
        max_contexts: 3,
        ..ManagerConfig::default()
    });
    let a = ContextAdapter::new(m.clone(), config(2, None));
    assert_eq!(m.max_contexts(), 2);
    a.create_context("a", json!({})).await.unwrap();
    m.create_context("b", json!({})).await.unwrap();
    assert_eq!(
        code(a.create_context("c", json!({})).await),
        "CAPACITY_EXCEEDED"
    );
    assert_eq!(
        code(m.create_context("c", json!({})).await),
        "CAPACITY_EXCEEDED"
    );
    // A larger adapter limit cannot lift the manager's own.
    a.update_config(config(50, None)).await.unwrap();
    assert_eq!(m.max_contexts(), 3);
    a.create_context("c", json!({})).await.unwrap();
    assert_eq!(
        code(a.create_context("d", json!({})).await),
        "CAPACITY_EXCEEDED"
    );
}

pub async fn lowering_capacity_evicts_least_recently_updated() {
    let (m, _) = manual(ManagerConfig::default());
    let a = ContextAdapter::new(m.clone(), config(10, None));
    for id in ["a", "b", "c", "d", "e"] {
        a.create_context(id, json!({})).await.unwrap();
    }
    // Writes make "a" and "c" the most recently updated (same clock time throughout).
    a.update_context("a", json!({ "n": 1 }), None)
        .await
        .unwrap();
    a.update_context("c", json!({ "n": 1 }), None)
        .await
        .unwrap();
    let mut events = m.subscribe();
    assert_eq!(a.update_config(config(2, None)).await.unwrap(), 3);
    assert_eq!(m.list_context_ids().await, ["a", "c"]);
    assert_eq!(
        drain(&mut events),
        [
            ev("evicted", "b", 1, 8),
            ev("evicted", "d", 1, 9),
            ev("evicted", "e", 1, 10)
        ]
    );
    assert_eq!(m.stats().evictions, 3);
    assert_eq!(
        code(a.create_context("f", json!({})).await),
        "CAPACITY_EXCEEDED"
    );
    assert_eq!(a.get_config().await.max_contexts, 2);
}

pub async fn activating_twice_returns_the_same_tracker() {
    let (m, _) = manual(ManagerConfig::default());
    let a = ContextAdapter::new(m.clone(), config(10, None));
    a.create_context("s", json!({ "n": 1 })).await.unwrap();
    let t1 = a.activate_context("s").await.unwrap();
    let t2 = a.activate_context("s").await.unwrap();
    assert!(t1.same_as(&t2));
    assert_eq!(t1.get_state().await.unwrap().data, json!({ "n": 1 }));
    t1.update_state(json!({ "n": 2 })).await.unwrap();
    assert!(t2.is_dirty().await);
    t2.sync_state().await.unwrap();
    assert_eq!(a.get_context("s").await.unwrap().version, 2);
    assert_eq!(a.list_active_context_ids().await, ["s"]);
    // An adapter's tracker stays bound to its id.
    assert_eq!(code(t1.activate_context("other").await), "INVALID_ARGUMENT");
    assert_eq!(code(a.activate_context("missing").await), "NOT_FOUND");
}

pub async fn active_trackers_are_limited() {
    let (m, _) = manual(ManagerConfig::default());
    let a = ContextAdapter::new(m.clone(), config(10, None));
    for id in ["x", "y", "z"] {
        a.create_context(id, json!({})).await.unwrap();
    }
    a.activate_context("x").await.unwrap();
    a.activate_context("y").await.unwrap();
    let err = a.activate_context("z").await.unwrap_err();
    assert_eq!(
        err,
        ContextError::CapacityExceeded {
            what: "active contexts".into(),
            limit: 2
        }
    );
    a.deactivate_context("x").await.unwrap();
    a.activate_context("z").await.unwrap();
    assert_eq!(a.list_active_context_ids().await, ["y", "z"]);
}

pub async fn deactivation_rules() {
    let (m, _) = manual(ManagerConfig::default());
    let a = ContextAdapter::new(m.clone(), config(10, None));
    a.create_context("s", json!({})).await.unwrap();
    assert_eq!(code(a.deactivate_context("s").await), "NOT_ACTIVE");
    assert_eq!(code(a.deactivate_context("").await), "INVALID_ARGUMENT");
    let t = a.activate_context("s").await.unwrap();
    t.update_state(json!({ "n": 1 })).await.unwrap();
    assert_eq!(code(a.deactivate_context("s").await), "UNSYNCED_CHANGES");
    assert_eq!(a.list_active_context_ids().await, ["s"]);
    t.sync_state().await.unwrap();
    a.deactivate_context("s").await.unwrap();
    assert!(a.list_active_context_ids().await.is_empty());
    assert_eq!(code(t.update_state(json!({})).await), "NOT_ACTIVE");
    // Deactivating through the tracker frees the slot as well.
    let t = a.activate_context("s").await.unwrap();
    t.deactivate_context().await.unwrap();
    assert!(a.list_active_context_ids().await.is_empty());
    let again = a.activate_context("s").await.unwrap();
    assert!(!again.same_as(&t));
}

pub async fn auto_cleanup_sweeps_on_interval() {
    let (m, clock) = manual(ManagerConfig::default());
    let cfg = AdapterConfig {
        auto_cleanup: true,
        cleanup_interval_ms: 500,
        ..config(10, Some(100))
    };
    let a = ContextAdapter::new(m.clone(), cfg);
    a.create_context("old", json!({})).await.unwrap();
    clock.advance(200);
    a.get_context("old").await.unwrap_err();
    assert_eq!(m.stats().expirations, 0, "interval not yet passed");
    clock.advance(300);
    a.get_context("old").await.unwrap_err();
    assert_eq!(m.stats().expirations, 1);
    assert_eq!(m.stats().contexts, 0);
}

pub async fn bad_adapter_config_is_rejected() {
    let (m, _) = manual(ManagerConfig::default());
    let a = ContextAdapter::new(m.clone(), config(10, None));
    for bad in [config(0, None), config(10, Some(0))] {
        assert_eq!(code(a.update_config(bad).await), "INVALID_ARGUMENT");
        assert_eq!(
            code(ContextAdapter::try_new(m.clone(), bad).map(|_| ())),
            "INVALID_ARGUMENT"
        );
    }
    let no_trackers = AdapterConfig {
        max_active_contexts: 0,
        ..config(10, None)
    };
    assert_eq!(code(a.update_config(no_trackers).await), "INVALID_ARGUMENT");
    assert_eq!(a.get_config().await, config(10, None));
}
