//! Cases for the tracker: a working copy that syncs back.

use super::{code, manual};
use contextkit_core::{
    ConflictPolicy, ContextError, ContextManager, ContextTracker, ManagerConfig, TrackerConfig,
    json,
};

fn tracker(m: &ContextManager, conflict: ConflictPolicy) -> ContextTracker {
    let cfg = TrackerConfig {
        conflict,
        ..TrackerConfig::default()
    };
    ContextTracker::new(m.clone(), cfg)
}

pub async fn tracker_edits_locally_and_syncs_back() {
    let (m, _) = manual(ManagerConfig::default());
    m.create_context("doc", json!({ "title": "draft" }))
        .await
        .unwrap();
    let t = tracker(&m, ConflictPolicy::Reject);
    let s = t.activate_context("doc").await.unwrap();
    assert_eq!(
        (t.active_context_id().await.as_deref(), s.version),
        (Some("doc"), 1)
    );
    assert!(!t.is_dirty().await);
    let local = t.update_state(json!({ "title": "final" })).await.unwrap();
    assert_eq!(
        (local.version, local.data.value().clone()),
        (1, json!({ "title": "final" }))
    );
    assert!(t.is_dirty().await);
    // The store does not see local edits before a sync.
    assert_eq!(
        m.get_context("doc").await.unwrap().data,
        json!({ "title": "draft" })
    );
    let synced = t.sync_state().await.unwrap();
    assert_eq!(synced.version, 2);
    assert!(!t.is_dirty().await);
    assert_eq!(
        m.get_context("doc").await.unwrap().data,
        json!({ "title": "final" })
    );
    // A clean sync writes nothing.
    assert_eq!(t.sync_state().await.unwrap().version, 2);
    assert_eq!(m.get_context("doc").await.unwrap().version, 2);
    t.deactivate_context().await.unwrap();
    assert_eq!(t.active_context_id().await, None);
}

pub async fn tracker_without_active_context() {
    let (m, _) = manual(ManagerConfig::default());
    let t = tracker(&m, ConflictPolicy::Reject);
    assert_eq!(code(t.get_state().await), "NOT_ACTIVE");
    assert_eq!(code(t.update_state(json!({})).await), "NOT_ACTIVE");
    assert_eq!(code(t.sync_state().await), "NOT_ACTIVE");
    assert_eq!(code(t.discard_changes().await), "NOT_ACTIVE");
    assert_eq!(code(t.deactivate_context().await), "NOT_ACTIVE");
    assert_eq!(code(t.create_recovery_point().await), "NOT_ACTIVE");
    assert!(!t.is_dirty().await);
    assert!(!t.is_sync_needed().await);
    assert_eq!(t.sync_if_needed().await.unwrap(), None);
    assert_eq!(code(t.activate_context("missing").await), "NOT_FOUND");
    assert_eq!(t.active_context_id().await, None);
}

pub async fn tracker_refuses_to_drop_unsynced_changes() {
    let (m, _) = manual(ManagerConfig::default());
    m.create_context("a", json!({ "n": 1 })).await.unwrap();
    m.create_context("b", json!({})).await.unwrap();
    let t = tracker(&m, ConflictPolicy::Reject);
    t.activate_context("a").await.unwrap();
    t.update_state(json!({ "n": 2 })).await.unwrap();
    let err = t.activate_context("b").await.unwrap_err();
    assert_eq!(err, ContextError::UnsyncedChanges { id: "a".into() });
    assert_eq!(code(t.deactivate_context().await), "UNSYNCED_CHANGES");
    assert_eq!(t.active_context_id().await.as_deref(), Some("a"));
    assert_eq!(t.get_state().await.unwrap().data, json!({ "n": 2 }));
    let base = t.discard_changes().await.unwrap();
    assert_eq!(
        (base.version, base.data.value().clone()),
        (1, json!({ "n": 1 }))
    );
    assert!(!t.is_dirty().await);
    assert_eq!(t.activate_context("b").await.unwrap().id, "b");
}

pub async fn tracker_conflict_reject_keeps_local_edits() {
    let (m, _) = manual(ManagerConfig::default());
    m.create_context("a", json!({ "n": 1 })).await.unwrap();
    let t = tracker(&m, ConflictPolicy::Reject);
    t.activate_context("a").await.unwrap();
    m.update_context("a", json!({ "n": "remote" }), None)
        .await
        .unwrap();
    t.update_state(json!({ "n": "local" })).await.unwrap();
    let err = t.sync_state().await.unwrap_err();
    assert_eq!(
        err,
        ContextError::VersionConflict {
            id: "a".into(),
            expected: 1,
            actual: 2
        }
    );
    assert!(t.is_dirty().await);
    assert_eq!(t.get_state().await.unwrap().data, json!({ "n": "local" }));
    assert_eq!(
        m.get_context("a").await.unwrap().data,
        json!({ "n": "remote" })
    );
}

/// A context deleted and created again under a tracker is at version 1
/// again, but it is not the state the tracker's edits were based on.
pub async fn tracker_conflict_after_delete_and_create() {
    let (m, _) = manual(ManagerConfig::default());
    m.create_context("a", json!({ "owner": "ann" }))
        .await
        .unwrap();
    let t = tracker(&m, ConflictPolicy::Reject);
    t.activate_context("a").await.unwrap();
    m.delete_context("a").await.unwrap();
    m.create_context("a", json!({ "owner": "bob" }))
        .await
        .unwrap();
    t.update_state(json!({ "owner": "ann", "edit": 1 }))
        .await
        .unwrap();
    let err = t.sync_state().await.unwrap_err();
    // The versions match (1 and 1): the conflict names the revisions.
    let bob = m.get_context("a").await.unwrap();
    let ContextError::VersionConflict {
        expected, actual, ..
    } = err
    else {
        panic!("{err}");
    };
    assert_eq!(actual, bob.revision);
    assert!(expected < actual, "{expected} / {actual}");
    assert_eq!(bob.data, json!({ "owner": "bob" }));
    // Keeping the remote state adopts the new context.
    let t = tracker(&m, ConflictPolicy::KeepRemote);
    t.activate_context("a").await.unwrap();
    m.delete_context("a").await.unwrap();
    let bob = m
        .create_context("a", json!({ "owner": "bob", "n": 2 }))
        .await
        .unwrap();
    t.update_state(json!({ "owner": "ann" })).await.unwrap();
    assert_eq!(t.sync_state().await.unwrap().revision, bob.revision);
    assert_eq!(m.get_context("a").await.unwrap().revision, bob.revision);
}

pub async fn tracker_conflict_overwrite_wins() {
    let (m, _) = manual(ManagerConfig::default());
    m.create_context("a", json!({ "n": 1 })).await.unwrap();
    let t = tracker(&m, ConflictPolicy::Overwrite);
    t.activate_context("a").await.unwrap();
    m.update_context("a", json!({ "n": "remote" }), None)
        .await
        .unwrap();
    t.update_state(json!({ "n": "local" })).await.unwrap();
    let s = t.sync_state().await.unwrap();
    assert_eq!(
        (s.version, s.data.value().clone()),
        (3, json!({ "n": "local" }))
    );
    assert!(!t.is_dirty().await);
    assert_eq!(t.get_state().await.unwrap().version, 3);
}

pub async fn tracker_conflict_keep_remote_adopts_stored() {
    let (m, _) = manual(ManagerConfig::default());
    m.create_context("a", json!({ "n": 1 })).await.unwrap();
    let t = tracker(&m, ConflictPolicy::KeepRemote);
    t.activate_context("a").await.unwrap();
    m.update_context("a", json!({ "n": "remote" }), None)
        .await
        .unwrap();
    t.update_state(json!({ "n": "local" })).await.unwrap();
    let s = t.sync_state().await.unwrap();
    assert_eq!(
        (s.version, s.data.value().clone()),
        (2, json!({ "n": "remote" }))
    );
    assert!(!t.is_dirty().await);
    assert_eq!(t.get_state().await.unwrap().data, json!({ "n": "remote" }));
    assert_eq!(m.get_context("a").await.unwrap().version, 2);
}

pub async fn tracker_apply_remote_only_moves_forward() {
    let (m, _) = manual(ManagerConfig::default());
    m.create_context("a", json!({ "n": 1 })).await.unwrap();
    let other = m.create_context("b", json!({})).await.unwrap();
    let t = tracker(&m, ConflictPolicy::Reject);
    t.activate_context("a").await.unwrap();
    let v2 = m
        .update_context("a", json!({ "n": 2 }), None)
        .await
        .unwrap();
    let v3 = m
        .update_context("a", json!({ "n": 3 }), None)
        .await
        .unwrap();
    assert!(t.apply_remote(v3.clone()).await);
    assert!(!t.apply_remote(v2).await, "older version adopted");
    assert!(!t.apply_remote(v3).await, "same version adopted twice");
    assert!(!t.apply_remote(other).await, "another context adopted");
    assert_eq!(t.get_state().await.unwrap().version, 3);
    t.update_state(json!({ "n": "local" })).await.unwrap();
    let v4 = m
        .update_context("a", json!({ "n": 4 }), None)
        .await
        .unwrap();
    assert!(!t.apply_remote(v4).await, "dirty copy overwritten");
    assert_eq!(t.get_state().await.unwrap().data, json!({ "n": "local" }));
    // A context created again is newer at a lower version: after a rejected
    // sync, the copy goes on from it.
    m.delete_context("a").await.unwrap();
    let again = m.create_context("a", json!({ "n": "new" })).await.unwrap();
    assert_eq!(code(t.sync_state().await), "VERSION_CONFLICT");
    t.discard_changes().await.unwrap();
    assert!(t.apply_remote(again).await, "the new context not adopted");
    t.update_state(json!({ "n": "redone" })).await.unwrap();
    assert_eq!(t.sync_state().await.unwrap().version, 2);
}

pub async fn tracker_sync_interval_follows_the_clock() {
    let (m, clock) = manual(ManagerConfig::default());
    m.create_context("a", json!({})).await.unwrap();
    let cfg = TrackerConfig {
        sync_interval_ms: 100,
        ..TrackerConfig::default()
    };
    let t = ContextTracker::new(m.clone(), cfg);
    t.activate_context("a").await.unwrap();
    assert!(!t.is_sync_needed().await, "clean copies never need a sync");
    t.update_state(json!({ "n": 1 })).await.unwrap();
    clock.advance(99);
    assert!(!t.is_sync_needed().await);
    assert_eq!(t.sync_if_needed().await.unwrap(), None);
    clock.advance(1);
    assert!(t.is_sync_needed().await);
    assert_eq!(
        t.sync_if_needed().await.unwrap().map(|s| s.version),
        Some(2)
    );
    assert!(!t.is_sync_needed().await);
    t.update_state(json!({ "n": 2 })).await.unwrap();
    clock.advance(50);
    assert!(
        !t.is_sync_needed().await,
        "interval counts from the last sync"
    );
    clock.advance(50);
    assert!(t.is_sync_needed().await);
}

pub async fn tracker_auto_recovery_snapshots_each_sync() {
    let (m, _) = manual(ManagerConfig::default());
    m.create_context("a", json!({ "n": 0 })).await.unwrap();
    let cfg = TrackerConfig {
        auto_recovery: true,
        ..TrackerConfig::default()
    };
    let t = ContextTracker::new(m.clone(), cfg);
    t.activate_context("a").await.unwrap();
    for n in 1..=2 {
        t.update_state(json!({ "n": n })).await.unwrap();
        t.sync_state().await.unwrap();
    }
    let snapshots = m.recovery_points("a").await.unwrap();
    assert_eq!(
        snapshots.iter().map(|p| p.version).collect::<Vec<_>>(),
        [2, 3]
    );
    assert_eq!(snapshots[1].data, json!({ "n": 2 }));
    let manual_point = t.create_recovery_point().await.unwrap();
    assert_eq!(manual_point.version, 3);
}

/// A sync whose push committed returns Ok even when its automatic recovery
/// point cannot be taken; the tracker counts the missed recovery point instead.
pub async fn tracker_sync_that_committed_is_ok_without_its_recovery_point() {
    let config = ManagerConfig {
        max_recovery_points: 0,
        ..ManagerConfig::default()
    };
    let (m, _) = manual(config);
    m.create_context("a", json!({ "n": 0 })).await.unwrap();
    let cfg = TrackerConfig {
        auto_recovery: true,
        ..TrackerConfig::default()
    };
    let t = ContextTracker::new(m.clone(), cfg);
    t.activate_context("a").await.unwrap();
    assert_eq!(t.missed_recovery_points(), 0);
    for n in 1..=2 {
        t.update_state(json!({ "n": n })).await.unwrap();
        let synced = t.sync_state().await.unwrap();
        assert_eq!(synced.version, n + 1);
        assert!(!t.is_dirty().await);
        assert_eq!(t.missed_recovery_points(), n);
    }
    assert_eq!(m.get_context("a").await.unwrap().data, json!({ "n": 2 }));
    assert!(m.recovery_points("a").await.unwrap().is_empty());
    // Clones share the count; a clean sync writes nothing and misses nothing.
    t.clone().sync_state().await.unwrap();
    assert_eq!(t.clone().missed_recovery_points(), 2);
}
