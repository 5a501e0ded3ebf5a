//! Cases for the store itself.

use super::{code, drain, ev, manual};
use contextkit_core::{
    ContextError, ContextEvent, ContextManager, CreateOptions, MAX_DEPTH, ManagerConfig,
    MemoryStorage, Stats, json,
};
use futures::StreamExt;
use std::collections::BTreeMap;
use std::sync::Arc;

fn small(max_contexts: usize) -> ManagerConfig {
    ManagerConfig {
        max_contexts,
        ..ManagerConfig::default()
    }
}

fn ttl(ms: u64) -> CreateOptions {
    CreateOptions {
        ttl_ms: Some(ms),
        ..CreateOptions::default()
    }
}

pub async fn create_starts_at_version_one() {
    let (m, _) = manual(ManagerConfig::default());
    let s = m.create_context("a", json!({ "x": 1 })).await.unwrap();
    assert_eq!((s.id.as_str(), s.version), ("a", 1));
    assert_eq!(
        (s.created_at_ms, s.updated_at_ms, s.expires_at_ms),
        (1_000, 1_000, None)
    );
    assert_eq!(s.data, json!({ "x": 1 }));
}

pub async fn get_shares_state_without_copying() {
    let (m, _) = manual(ManagerConfig::default());
    let created = m
        .create_context("a", json!({ "big": "x".repeat(1000) }))
        .await
        .unwrap();
    let a = m.get_context("a").await.unwrap();
    let b = m.get_context("a").await.unwrap();
    assert!(Arc::ptr_eq(&a, &b) && Arc::ptr_eq(&a, &created));
}

pub async fn create_never_overwrites() {
    let (m, _) = manual(ManagerConfig::default());
    m.create_context("a", json!({ "first": true }))
        .await
        .unwrap();
    let err = m
        .create_context("a", json!({ "second": true }))
        .await
        .unwrap_err();
    assert_eq!(err, ContextError::AlreadyExists { id: "a".into() });
    let s = m.get_context("a").await.unwrap();
    assert_eq!(
        (s.version, s.data.value().clone()),
        (1, json!({ "first": true }))
    );
}

pub async fn create_respects_capacity() {
    let (m, _) = manual(small(2));
    m.create_context("a", json!({})).await.unwrap();
    m.create_context("b", json!({})).await.unwrap();
    assert_eq!(
        code(m.create_context("c", json!({})).await),
        "CAPACITY_EXCEEDED"
    );
    m.delete_context("a").await.unwrap();
    m.create_context("c", json!({})).await.unwrap();
    assert_eq!(m.list_context_ids().await, ["b", "c"]);
}

pub async fn expired_contexts_do_not_count_against_capacity() {
    let (m, clock) = manual(small(2));
    let mut events = m.subscribe();
    m.create_context_with("a", json!({}), ttl(10))
        .await
        .unwrap();
    m.create_context("b", json!({})).await.unwrap();
    clock.advance(10);
    // "a" is expired: the full store drops it to make room.
    m.create_context("c", json!({})).await.unwrap();
    assert_eq!(m.list_context_ids().await, ["b", "c"]);
    assert_eq!(m.stats().contexts, 2);
    assert!(drain(&mut events).contains(&ev("expired", "a", 1, 3)));
}

pub async fn create_over_an_expired_id_starts_fresh() {
    let (m, clock) = manual(ManagerConfig::default());
    m.create_context_with("a", json!({ "old": 1 }), ttl(5))
        .await
        .unwrap();
    m.update_context("a", json!({ "old": 2 }), None)
        .await
        .unwrap();
    clock.advance(5);
    let s = m.create_context("a", json!({ "new": 1 })).await.unwrap();
    assert_eq!((s.version, s.expires_at_ms), (1, None));
    assert_eq!(m.get_context("a").await.unwrap().data, json!({ "new": 1 }));
}

pub async fn update_bumps_version_and_keeps_metadata() {
    let (m, clock) = manual(ManagerConfig::default());
    let meta = BTreeMap::from([("owner".to_string(), "ada".to_string())]);
    let opts = CreateOptions {
        metadata: meta.clone(),
        ..CreateOptions::default()
    };
    m.create_context_with("a", json!({ "n": 1 }), opts)
        .await
        .unwrap();
    clock.advance(7);
    let s = m
        .update_context("a", json!({ "n": 2 }), Some(1))
        .await
        .unwrap();
    assert_eq!(
        (s.version, s.created_at_ms, s.updated_at_ms),
        (2, 1_000, 1_007)
    );
    assert_eq!(
        (s.data.value().clone(), s.metadata.clone()),
        (json!({ "n": 2 }), meta)
    );
    let s = m
        .update_context("a", json!({ "n": 3 }), None)
        .await
        .unwrap();
    assert_eq!(s.version, 3);
}

pub async fn update_with_stale_version_conflicts() {
    let (m, _) = manual(ManagerConfig::default());
    m.create_context("a", json!({ "n": 1 })).await.unwrap();
    m.update_context("a", json!({ "n": 2 }), Some(1))
        .await
        .unwrap();
    let err = m
        .update_context("a", json!({ "n": 3 }), Some(1))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        ContextError::VersionConflict {
            id: "a".into(),
            expected: 1,
            actual: 2
        }
    );
    assert_eq!(
        err.to_string(),
        "version conflict on 'a': expected 1, found 2"
    );
    assert_eq!(m.get_context("a").await.unwrap().data, json!({ "n": 2 }));
}

/// An expected version no context can have (0, past 2^52, `u64::MAX`) is
/// a conflict like any other, not an error of the store.
pub async fn update_with_an_impossible_version_conflicts() {
    let (m, _) = manual(ManagerConfig::default());
    m.create_context("a", json!({ "n": 1 })).await.unwrap();
    for expected in [0, (1 << 52) + 1, u64::MAX] {
        let err = m
            .update_context("a", json!({ "n": 2 }), Some(expected))
            .await
            .unwrap_err();
        assert_eq!(
            err,
            ContextError::VersionConflict {
                id: "a".into(),
                expected,
                actual: 1
            }
        );
    }
    assert_eq!(m.get_context("a").await.unwrap().version, 1);
}

/// A compare-and-set on the revision (an ETag): a context deleted and
/// created again is at version 1 again, but at a new revision.
pub async fn update_if_revision_sees_through_a_re_create() {
    let (m, _) = manual(ManagerConfig::default());
    let seen = m.create_context("a", json!({ "n": 1 })).await.unwrap();
    m.delete_context("a").await.unwrap();
    let again = m.create_context("a", json!({ "n": 2 })).await.unwrap();
    assert_eq!(again.version, seen.version);
    let err = m
        .update_context_if_revision("a", json!({ "n": 3 }), seen.revision)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        ContextError::VersionConflict {
            id: "a".into(),
            expected: seen.revision,
            actual: again.revision
        }
    );
    let s = m
        .update_context_if_revision("a", json!({ "n": 3 }), again.revision)
        .await
        .unwrap();
    assert_eq!(s.version, 2);
    assert_eq!(s.data, json!({ "n": 3 }));
    assert!(s.revision > again.revision);
    assert_eq!(
        code(m.update_context_if_revision("b", json!({}), 1).await),
        "NOT_FOUND"
    );
}

pub async fn update_of_missing_is_not_found() {
    let (m, _) = manual(ManagerConfig::default());
    assert_eq!(
        code(m.update_context("nope", json!({}), None).await),
        "NOT_FOUND"
    );
    assert_eq!(code(m.get_context("nope").await), "NOT_FOUND");
    assert!(m.is_empty().await);
}

pub async fn deleted_context_is_not_resurrected_by_update() {
    let (m, _) = manual(ManagerConfig::default());
    m.create_context("a", json!({})).await.unwrap();
    m.delete_context("a").await.unwrap();
    assert_eq!(
        code(m.update_context("a", json!({ "x": 1 }), None).await),
        "NOT_FOUND"
    );
    assert_eq!(code(m.delete_context("a").await), "NOT_FOUND");
    assert_eq!(code(m.get_context("a").await), "NOT_FOUND");
    assert_eq!(m.len().await, 0);
}

pub async fn list_and_len_show_live_contexts_sorted() {
    let (m, clock) = manual(ManagerConfig::default());
    for id in ["delta", "alpha", "charlie"] {
        m.create_context(id, json!({})).await.unwrap();
    }
    m.create_context_with("bravo", json!({}), ttl(50))
        .await
        .unwrap();
    assert_eq!(
        m.list_context_ids().await,
        ["alpha", "bravo", "charlie", "delta"]
    );
    assert_eq!(m.len().await, 4);
    clock.advance(50);
    assert_eq!(m.list_context_ids().await, ["alpha", "charlie", "delta"]);
    assert_eq!(m.len().await, 3);
    let states = m.list_contexts().await;
    assert_eq!(
        states.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        ["alpha", "charlie", "delta"]
    );
}

pub async fn expiry_hides_contexts_at_the_deadline() {
    let (m, clock) = manual(ManagerConfig::default());
    let s = m
        .create_context_with("a", json!({}), ttl(100))
        .await
        .unwrap();
    assert_eq!(s.expires_at_ms, Some(1_100));
    clock.advance(99);
    assert!(m.get_context("a").await.is_ok());
    clock.advance(1);
    assert_eq!(code(m.get_context("a").await), "NOT_FOUND");
    assert_eq!(
        code(m.update_context("a", json!({}), None).await),
        "NOT_FOUND"
    );
    assert_eq!(code(m.delete_context("a").await), "NOT_FOUND");
    assert_eq!(code(m.recovery_points("a").await), "NOT_FOUND");
    assert!(m.list_context_ids().await.is_empty());
}

pub async fn default_ttl_applies() {
    let cfg = ManagerConfig {
        default_ttl_ms: Some(30),
        ..ManagerConfig::default()
    };
    let (m, clock) = manual(cfg);
    assert_eq!(
        m.create_context("a", json!({}))
            .await
            .unwrap()
            .expires_at_ms,
        Some(1_030)
    );
    let own = m
        .create_context_with("b", json!({}), ttl(60))
        .await
        .unwrap();
    assert_eq!(own.expires_at_ms, Some(1_060));
    clock.advance(30);
    assert_eq!(m.list_context_ids().await, ["b"]);
}

pub async fn updates_restart_the_ttl() {
    let (m, clock) = manual(ManagerConfig::default());
    m.create_context_with("a", json!({}), ttl(100))
        .await
        .unwrap();
    clock.advance(90);
    let s = m
        .update_context("a", json!({ "n": 1 }), None)
        .await
        .unwrap();
    assert_eq!(s.expires_at_ms, Some(1_190));
    clock.advance(90);
    assert!(m.get_context("a").await.is_ok());
    assert_eq!(m.cleanup_expired().await, 0);
    clock.advance(10);
    assert_eq!(m.cleanup_expired().await, 1);
}

pub async fn touch_restarts_the_ttl_without_a_write() {
    let (m, clock) = manual(ManagerConfig::default());
    let s = m
        .create_context_with("a", json!({ "n": 1 }), ttl(100))
        .await
        .unwrap();
    let forever = m.create_context("b", json!({})).await.unwrap();
    let mut events = m.subscribe();
    clock.advance(60);
    let t = m.touch_context("a").await.unwrap();
    assert_eq!(
        (t.version, t.revision, t.updated_at_ms, t.expires_at_ms),
        (s.version, s.revision, s.updated_at_ms, Some(1_160))
    );
    assert_eq!(t.data, json!({ "n": 1 }));
    assert_eq!(m.get_context("a").await.unwrap().expires_at_ms, Some(1_160));
    // Without a TTL there is nothing to restart.
    assert_eq!(*m.touch_context("b").await.unwrap(), *forever);
    // No event: the next one is the update's.
    let u = m
        .update_context("b", json!({ "x": 1 }), None)
        .await
        .unwrap();
    assert_eq!(drain(&mut events), vec![ev("updated", "b", 2, u.revision)]);
    clock.advance(99); // 1,159: a millisecond before the deadline the touch set
    assert!(m.get_context("a").await.is_ok());
    clock.advance(1);
    assert_eq!(code(m.get_context("a").await), "NOT_FOUND");
    assert_eq!(code(m.touch_context("a").await), "NOT_FOUND");
    assert_eq!(code(m.touch_context("missing").await), "NOT_FOUND");
    assert_eq!(code(m.touch_context("").await), "INVALID_ARGUMENT");
}

pub async fn sliding_ttl_restarts_the_ttl_on_each_get() {
    let sliding = ManagerConfig {
        sliding_ttl: true,
        ..ManagerConfig::default()
    };
    let (m, clock) = manual(sliding);
    let s = m
        .create_context_with("a", json!({ "n": 1 }), ttl(100))
        .await
        .unwrap();
    let forever = m.create_context("b", json!({})).await.unwrap();
    let mut events = m.subscribe();
    clock.advance(60);
    // A get restarts the TTL from now, as a touch does: same version and
    // revision, no event.
    let g = m.get_context("a").await.unwrap();
    assert_eq!(
        (g.version, g.revision, g.updated_at_ms, g.expires_at_ms),
        (s.version, s.revision, s.updated_at_ms, Some(1_160))
    );
    assert_eq!(g.data, json!({ "n": 1 }));
    // Without a TTL there is nothing to restart.
    assert_eq!(*m.get_context("b").await.unwrap(), *forever);
    clock.advance(60); // 1,120: past the created deadline, 60 ms after the get
    // Listing shows the slid expiry and touches nothing.
    let listed: Vec<_> = m
        .list_contexts()
        .await
        .iter()
        .map(|s| (s.id.clone(), s.expires_at_ms))
        .collect();
    assert_eq!(
        listed,
        [("a".to_owned(), Some(1_160)), ("b".to_owned(), None)]
    );
    let g = m.get_context("a").await.unwrap();
    assert_eq!((g.version, g.expires_at_ms), (1, Some(1_220)));
    // No event: the next one is the update's.
    let u = m
        .update_context("b", json!({ "x": 1 }), None)
        .await
        .unwrap();
    assert_eq!(drain(&mut events), vec![ev("updated", "b", 2, u.revision)]);
    clock.advance(100); // 1,220: the deadline the last get set
    assert_eq!(code(m.get_context("a").await), "NOT_FOUND");
    assert_eq!(code(m.get_context("missing").await), "NOT_FOUND");
    assert_eq!(code(m.get_context("").await), "INVALID_ARGUMENT");
    // Sliding gets count as reads, not as updates.
    let stats = m.stats();
    assert_eq!(
        (stats.reads, stats.hits, stats.misses, stats.updates),
        (5, 3, 2, 1)
    );

    // Off (the default), a get leaves the expiry as it is.
    let (m, clock) = manual(ManagerConfig::default());
    m.create_context_with("a", json!({}), ttl(100))
        .await
        .unwrap();
    clock.advance(60);
    assert_eq!(m.get_context("a").await.unwrap().expires_at_ms, Some(1_100));
    clock.advance(40);
    assert_eq!(code(m.get_context("a").await), "NOT_FOUND");
}

pub async fn modify_applies_to_the_current_data() {
    let (m, _) = manual(ManagerConfig {
        max_data_bytes: 64,
        ..ManagerConfig::default()
    });
    m.create_context_with("a", json!({ "n": 1 }), ttl(100))
        .await
        .unwrap();
    let mut events = m.subscribe();
    let s = m
        .modify_context("a", |data| json!({ "n": data["n"].as_u64().unwrap() + 1 }))
        .await
        .unwrap();
    assert_eq!((s.version, &*s.data), (2, &json!({ "n": 2 })));
    assert_eq!(s.expires_at_ms, Some(s.updated_at_ms + 100));
    assert_eq!(drain(&mut events), vec![ev("updated", "a", 2, s.revision)]);
    // What the function returns is checked like any update's data, and a
    // refused result changes nothing.
    for bad in [json!([1]), json!({ "big": "x".repeat(64) })] {
        let r = m.modify_context("a", move |_| bad.clone()).await;
        assert_eq!(code(r), "INVALID_ARGUMENT");
    }
    assert_eq!(m.get_context("a").await.unwrap().version, 2);
    assert_eq!(
        code(m.modify_context("missing", |d| d.clone()).await),
        "NOT_FOUND"
    );
    assert_eq!(
        code(m.modify_context("", |d| d.clone()).await),
        "INVALID_ARGUMENT"
    );
}

/// Modifies of one context all in flight at once: each applies to the data
/// the one before it committed.
pub async fn concurrent_modifies_lose_no_update() {
    let (m, _) = manual(ManagerConfig::default());
    m.create_context("counter", json!({ "n": 0 }))
        .await
        .unwrap();
    let n = 24;
    let all = (0..n).map(|_| {
        m.modify_context(
            "counter",
            |data| json!({ "n": data["n"].as_u64().unwrap() + 1 }),
        )
    });
    let mut versions: Vec<u64> = futures::future::join_all(all)
        .await
        .into_iter()
        .map(|r| r.unwrap().version)
        .collect();
    versions.sort_unstable();
    assert_eq!(versions, (2..=n + 1).collect::<Vec<_>>());
    let s = m.get_context("counter").await.unwrap();
    assert_eq!((s.version, &*s.data), (n + 1, &json!({ "n": n })));
}

pub async fn cleanup_removes_expired_and_reports_them() {
    let (m, clock) = manual(ManagerConfig::default());
    let mut events = m.subscribe();
    for i in 0..10 {
        m.create_context_with(&format!("t{i}"), json!({}), ttl(10 + i))
            .await
            .unwrap();
    }
    m.create_context("keep", json!({})).await.unwrap();
    assert_eq!(m.cleanup_expired().await, 0);
    clock.advance(15); // t0..=t5 are due
    assert_eq!(m.cleanup_expired().await, 6);
    assert_eq!(m.cleanup_expired().await, 0);
    assert_eq!(m.stats().contexts, 5);
    assert_eq!(m.stats().expirations, 6);
    let expired: Vec<_> = drain(&mut events)
        .into_iter()
        .filter(|e| matches!(e, ContextEvent::Expired { .. }))
        .collect();
    assert_eq!(expired.len(), 6);
}

pub async fn events_follow_commit_order() {
    let (m, clock) = manual(ManagerConfig::default());
    let mut events = m.subscribe();
    m.create_context("a", json!({ "n": 1 })).await.unwrap();
    let p = m.create_recovery_point("a").await.unwrap();
    m.update_context("a", json!({ "n": 2 }), None)
        .await
        .unwrap();
    m.restore_recovery_point("a", p.id).await.unwrap();
    m.create_context_with("b", json!({}), ttl(1)).await.unwrap();
    m.delete_context("a").await.unwrap();
    clock.advance(1);
    m.cleanup_expired().await;
    let expected = vec![
        ev("created", "a", 1, 1),
        ev("updated", "a", 2, 2),
        ev("restored", "a", 3, 3),
        ev("created", "b", 1, 4),
        ev("deleted", "a", 3, 5),
        ev("expired", "b", 1, 6),
    ];
    let mut seen = Vec::new();
    for _ in 0..expected.len() {
        seen.push(events.next().await.unwrap());
    }
    assert_eq!(seen, expected);
    assert_eq!(events.try_next(), None);
}

/// Versions are per context and start over after delete + re-create;
/// revisions are store-wide, strictly increasing and never reused, and each
/// event carries the revision of the state its commit made (a removal one of
/// its own).
pub async fn revision_is_store_wide_and_never_reused() {
    let (m, _) = manual(ManagerConfig::default());
    let mut events = m.subscribe();
    let a1 = m.create_context("a", json!({ "n": 1 })).await.unwrap();
    let b1 = m.create_context("b", json!({})).await.unwrap();
    let a2 = m
        .update_context("a", json!({ "n": 2 }), Some(1))
        .await
        .unwrap();
    let snapshot = m.create_recovery_point("b").await.unwrap();
    assert_eq!(
        m.get_context("b").await.unwrap().revision,
        b1.revision,
        "a recovery point changes nothing: it takes no revision"
    );
    m.delete_context("a").await.unwrap();
    let again = m.create_context("a", json!({ "n": 1 })).await.unwrap();
    assert_eq!((a1.version, again.version), (1, 1), "the version repeats");
    assert_ne!(a1.revision, again.revision, "the revision does not");
    let seen = drain(&mut events);
    let deleted = seen[3].revision().unwrap();
    assert_eq!(
        seen,
        [
            ev("created", "a", 1, a1.revision),
            ev("created", "b", 1, b1.revision),
            ev("updated", "a", 2, a2.revision),
            ev("deleted", "a", 2, deleted),
            ev("created", "a", 1, again.revision),
        ]
    );
    let revisions = [
        a1.revision,
        b1.revision,
        a2.revision,
        deleted,
        again.revision,
    ];
    assert!(revisions.windows(2).all(|w| w[0] < w[1]), "{revisions:?}");
    assert_eq!(m.get_context("a").await.unwrap().revision, again.revision);
    assert_eq!(m.get_context("b").await.unwrap().revision, b1.revision);
    // A restore is a commit too, with a revision of its own.
    let restored = m.restore_recovery_point("b", snapshot.id).await.unwrap();
    assert!(restored.revision > again.revision);
    assert_eq!(
        drain(&mut events),
        [ev("restored", "b", 2, restored.revision)]
    );
}

pub async fn slow_subscriber_is_told_it_lagged() {
    let m = ContextManager::builder(ManagerConfig::default())
        .event_capacity(1024)
        .build();
    let mut slow = m.subscribe();
    m.create_context("a", json!({ "n": 0 })).await.unwrap();
    for n in 1..1034 {
        m.update_context("a", json!({ "n": n }), None)
            .await
            .unwrap();
    }
    // 1,034 events, 1,024 kept: the subscriber missed the oldest 10.
    assert_eq!(slow.next().await, Some(ContextEvent::Lagged { missed: 10 }));
    assert_eq!(slow.next().await, Some(ev("updated", "a", 11, 11)));
    let rest = drain(&mut slow);
    assert_eq!(rest.len(), 1023);
    assert_eq!(rest.last(), Some(&ev("updated", "a", 1034, 1034)));
}

pub async fn subscription_ends_when_manager_is_dropped() {
    let m = ContextManager::new(ManagerConfig::default());
    let mut events = m.subscribe();
    m.create_context("a", json!({})).await.unwrap();
    drop(m);
    assert_eq!(events.next().await, Some(ev("created", "a", 1, 1)));
    assert_eq!(events.next().await, None);
}

pub async fn stats_count_every_kind_of_call() {
    let (m, clock) = manual(small(3));
    m.create_context("a", json!({})).await.unwrap();
    m.create_context_with("b", json!({}), ttl(5)).await.unwrap();
    m.get_context("a").await.unwrap();
    m.get_context("zz").await.unwrap_err();
    m.update_context("a", json!({ "n": 1 }), Some(1))
        .await
        .unwrap();
    m.update_context("a", json!({ "n": 1 }), Some(1))
        .await
        .unwrap_err();
    m.delete_context("a").await.unwrap();
    clock.advance(5);
    m.cleanup_expired().await;
    let expected = Stats {
        contexts: 0,
        reads: 2,
        hits: 1,
        misses: 1,
        creates: 2,
        updates: 1,
        conflicts: 1,
        deletes: 1,
        expirations: 1,
        evictions: 0,
    };
    assert_eq!(m.stats(), expected);
}

pub async fn invalid_ids_are_rejected_everywhere() {
    let cfg = ManagerConfig {
        max_id_bytes: 8,
        ..ManagerConfig::default()
    };
    let (m, _) = manual(cfg);
    for bad in ["", "123456789", "a\u{0}b", "tab\there", "\u{85}"] {
        assert_eq!(
            code(m.create_context(bad, json!({})).await),
            "INVALID_ARGUMENT",
            "{bad:?}"
        );
        assert_eq!(code(m.get_context(bad).await), "INVALID_ARGUMENT");
        assert_eq!(
            code(m.update_context(bad, json!({}), None).await),
            "INVALID_ARGUMENT"
        );
        assert_eq!(code(m.delete_context(bad).await), "INVALID_ARGUMENT");
        assert_eq!(code(m.create_recovery_point(bad).await), "INVALID_ARGUMENT");
        assert_eq!(code(m.recovery_points(bad).await), "INVALID_ARGUMENT");
    }
    // Exactly at the limit, multi-byte characters counted in bytes.
    m.create_context("12345678", json!({})).await.unwrap();
    m.create_context("ééé", json!({})).await.unwrap();
    assert_eq!(
        code(m.create_context("éééé_", json!({})).await),
        "INVALID_ARGUMENT"
    );
    assert_eq!(m.len().await, 2);
}

pub async fn data_must_be_a_bounded_json_object() {
    let body = json!({ "k": "v".repeat(50) });
    let exact = serde_json::to_vec(&body).unwrap().len();
    let cfg = ManagerConfig {
        max_data_bytes: exact,
        ..ManagerConfig::default()
    };
    let (m, _) = manual(cfg);
    m.create_context("a", body).await.unwrap();
    let over = json!({ "k": "v".repeat(51) });
    assert_eq!(
        code(m.create_context("b", over.clone()).await),
        "INVALID_ARGUMENT"
    );
    assert_eq!(
        code(m.update_context("a", over, None).await),
        "INVALID_ARGUMENT"
    );
    for not_object in [json!(null), json!(1), json!("s"), json!([1]), json!(true)] {
        assert_eq!(
            code(m.create_context("c", not_object).await),
            "INVALID_ARGUMENT"
        );
    }
    let mut deep = json!({});
    for _ in 0..MAX_DEPTH {
        deep = json!({ "d": deep });
    }
    assert_eq!(code(m.create_context("d", deep).await), "INVALID_ARGUMENT");
    assert_eq!(
        code(m.create_context_with("e", json!({}), ttl(0)).await),
        "INVALID_ARGUMENT"
    );
    // Nothing half-stored.
    assert_eq!(m.list_context_ids().await, ["a"]);
    assert_eq!(m.get_context("a").await.unwrap().version, 1);
}

pub async fn every_error_code_is_reachable() {
    use std::collections::BTreeSet;
    let cfg = ManagerConfig {
        max_contexts: 1,
        ..ManagerConfig::default()
    };
    let (m, _) = manual(cfg);
    let tracker = contextkit_core::ContextTracker::new(m.clone(), Default::default());
    let mut seen = BTreeSet::new();
    seen.insert(code(m.get_context("x").await));
    m.create_context("x", json!({})).await.unwrap();
    seen.insert(code(m.create_context("x", json!({})).await));
    seen.insert(code(m.create_context("y", json!({})).await));
    seen.insert(code(m.update_context("x", json!({}), Some(9)).await));
    seen.insert(code(m.create_context("", json!({})).await));
    seen.insert(code(tracker.get_state().await));
    tracker.activate_context("x").await.unwrap();
    tracker
        .update_state(json!({ "dirty": true }))
        .await
        .unwrap();
    seen.insert(code(tracker.deactivate_context().await));
    seen.insert(ContextError::storage("disk full").code());
    let all: BTreeSet<_> = ContextError::CODES.into_iter().collect();
    assert_eq!(seen, all);
}

pub async fn unusable_configs_are_rejected() {
    assert!(ContextManager::try_new(ManagerConfig::default()).is_ok());
    let bad = [
        ManagerConfig {
            max_contexts: 0,
            ..ManagerConfig::default()
        },
        ManagerConfig {
            max_id_bytes: 0,
            ..ManagerConfig::default()
        },
        ManagerConfig {
            max_data_bytes: 1,
            ..ManagerConfig::default()
        },
        ManagerConfig {
            default_ttl_ms: Some(0),
            ..ManagerConfig::default()
        },
    ];
    for cfg in bad {
        assert_eq!(
            code(ContextManager::try_new(cfg.clone()).map(drop)),
            "INVALID_ARGUMENT",
            "{cfg:?}"
        );
        assert_eq!(
            code(ContextManager::builder(cfg.clone()).try_build().map(drop)),
            "INVALID_ARGUMENT",
            "{cfg:?}"
        );
        // Refused before the storage is touched: nothing loaded, nothing written.
        let opened = ContextManager::builder(cfg.clone())
            .open(MemoryStorage::default())
            .await;
        assert_eq!(code(opened.map(drop)), "INVALID_ARGUMENT", "{cfg:?}");
    }
    // The smallest data limit that fits `{}` works.
    let tiny = ContextManager::try_new(ManagerConfig {
        max_data_bytes: 2,
        ..ManagerConfig::default()
    })
    .unwrap();
    tiny.create_context("a", json!({})).await.unwrap();
    assert_eq!(
        code(tiny.create_context("b", json!({ "k": 1 })).await),
        "INVALID_ARGUMENT"
    );
}
