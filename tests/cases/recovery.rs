//! Cases for recovery points.

use super::{code, manual};
use contextkit_core::{ManagerConfig, json};

fn keep(n: usize) -> ManagerConfig {
    ManagerConfig {
        max_recovery_points: n,
        ..ManagerConfig::default()
    }
}

pub async fn recovery_points_rotate_keeping_the_newest() {
    let (m, clock) = manual(keep(3));
    m.create_context("a", json!({ "n": 0 })).await.unwrap();
    let mut ids = Vec::new();
    for n in 1..=5 {
        m.update_context("a", json!({ "n": n }), None)
            .await
            .unwrap();
        clock.advance(1);
        let p = m.create_recovery_point("a").await.unwrap();
        assert_eq!(
            (p.context_id.as_str(), p.version, p.data.value().clone()),
            ("a", n + 1, json!({ "n": n }))
        );
        ids.push(p.id);
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids grow: {ids:?}");
    let kept = m.recovery_points("a").await.unwrap();
    assert_eq!(kept.iter().map(|p| p.id).collect::<Vec<_>>(), ids[2..]);
    assert_eq!(
        kept.iter().map(|p| p.version).collect::<Vec<_>>(),
        [4, 5, 6]
    );
    assert_eq!(kept[0].created_at_ms, 1_003);
}

pub async fn restore_bumps_version_with_snapshot_data() {
    let (m, clock) = manual(keep(10));
    m.create_context("a", json!({ "step": 1 })).await.unwrap();
    let p = m.create_recovery_point("a").await.unwrap();
    m.update_context("a", json!({ "step": 2 }), None)
        .await
        .unwrap();
    clock.advance(3);
    let s = m.restore_recovery_point("a", p.id).await.unwrap();
    assert_eq!((s.version, s.updated_at_ms), (3, 1_003));
    assert_eq!(s.data, json!({ "step": 1 }));
    assert_eq!(m.get_context("a").await.unwrap().data, json!({ "step": 1 }));
    // The snapshot is still there and can be restored again.
    assert_eq!(
        m.restore_recovery_point("a", p.id).await.unwrap().version,
        4
    );
    assert_eq!(m.stats().updates, 3);
}

pub async fn delete_removes_recovery_points_too() {
    let (m, _) = manual(keep(10));
    m.create_context("a", json!({ "gen": 1 })).await.unwrap();
    let old = m.create_recovery_point("a").await.unwrap();
    m.delete_context("a").await.unwrap();
    m.create_context("a", json!({ "gen": 2 })).await.unwrap();
    assert!(m.recovery_points("a").await.unwrap().is_empty());
    assert_eq!(
        code(m.restore_recovery_point("a", old.id).await),
        "NOT_FOUND"
    );
    assert_eq!(m.get_context("a").await.unwrap().data, json!({ "gen": 2 }));
}

pub async fn zero_recovery_points_means_disabled() {
    let (m, _) = manual(keep(0));
    m.create_context("a", json!({})).await.unwrap();
    assert_eq!(
        code(m.create_recovery_point("a").await),
        "CAPACITY_EXCEEDED"
    );
    assert!(m.recovery_points("a").await.unwrap().is_empty());
}

pub async fn recovery_points_of_missing_context_is_not_found() {
    let (m, _) = manual(keep(2));
    assert_eq!(code(m.recovery_points("nope").await), "NOT_FOUND");
    assert_eq!(code(m.create_recovery_point("nope").await), "NOT_FOUND");
    assert_eq!(code(m.restore_recovery_point("nope", 1).await), "NOT_FOUND");
}

pub async fn restore_of_unknown_snapshot_is_not_found() {
    let (m, _) = manual(keep(1));
    m.create_context("a", json!({})).await.unwrap();
    m.create_context("b", json!({})).await.unwrap();
    let first = m.create_recovery_point("a").await.unwrap();
    let of_b = m.create_recovery_point("b").await.unwrap();
    m.create_recovery_point("a").await.unwrap(); // rotates `first` out
    let err = m.restore_recovery_point("a", first.id).await.unwrap_err();
    assert_eq!(err.code(), "NOT_FOUND");
    assert!(
        err.to_string()
            .contains(&format!("recovery point {}", first.id)),
        "{err}"
    );
    // A snapshot of another context is not a snapshot of this one.
    assert_eq!(
        code(m.restore_recovery_point("a", of_b.id).await),
        "NOT_FOUND"
    );
    // Nor is an id no recovery point can have.
    for id in [0, (1 << 52) + 1, u64::MAX] {
        assert_eq!(code(m.restore_recovery_point("a", id).await), "NOT_FOUND");
    }
    assert_eq!(m.get_context("a").await.unwrap().version, 1);
}
