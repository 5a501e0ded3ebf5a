//! Model-based test: random sequences of every public operation of the
//! manager, a tracker, an adapter and the adapter's trackers, applied both to
//! the real objects (on a manual clock) and to the sequential reference model
//! in `evidence/refmodel.rs`. Every result (error codes included), the stats,
//! the event stream after each step and the final state must agree.
//!
//! `PROPTEST_CASES` sets the number of cases (default 1000). Shrunk failures
//! are kept in `tests/model.proptest-regressions` and replayed first.

mod evidence;

use contextkit::{AdapterConfig, ConflictPolicy, ManagerConfig, TrackerConfig};
use evidence::driver::check;
use evidence::ops::{self, Data, Op, Setup};
use proptest::prelude::*;
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), max_shrink_iters: 20_000, ..ProptestConfig::default() })]

    /// The real manager, tracker and adapter behave exactly like the reference model.
    #[test]
    fn real_objects_match_the_reference_model(setup in ops::setup(), ops in prop::collection::vec(ops::op(), 1..80)) {
        check(&setup, &ops).map_err(TestCaseError::fail)?;
    }
}

/// Named edge-case sequences that random search reaches only rarely, kept
/// readable. Shrunk failures of the random search are saved by proptest in
/// `tests/model.proptest-regressions` and replayed before new cases.
mod regressions {
    use super::*;

    fn setup() -> Setup {
        Setup {
            manager: ManagerConfig {
                max_contexts: 2,
                max_recovery_points: 1,
                default_ttl_ms: None,
                max_id_bytes: 4,
                max_data_bytes: 40,
                sliding_ttl: false,
            },
            shards: 1,
            tracker: TrackerConfig {
                sync_interval_ms: 10,
                auto_recovery: true,
                conflict: ConflictPolicy::KeepRemote,
            },
            adapter: AdapterConfig {
                max_contexts: 2,
                ttl_ms: Some(30),
                auto_cleanup: true,
                cleanup_interval_ms: 20,
                max_active_contexts: 1,
            },
        }
    }

    #[test]
    fn full_store_with_expired_context_accepts_a_create_and_reports_the_expiry() {
        let ops = vec![
            Op::ACreate("a".into(), Data::Small(1)),
            Op::Create {
                id: "b".into(),
                data: Data::Small(2),
                ttl: None,
                meta: false,
            },
            Op::Advance(30),
            Op::Create {
                id: "c".into(),
                data: Data::Small(3),
                ttl: None,
                meta: false,
            },
            Op::Get("a".into()),
        ];
        check(&setup(), &ops).unwrap();
    }

    /// Found by the `ops` fuzz target: a create at capacity when every stored
    /// context has expired reports each one expired (one shard here).
    #[test]
    fn create_at_capacity_when_all_have_expired() {
        let setup = Setup {
            manager: ManagerConfig {
                max_contexts: 3,
                max_recovery_points: 2,
                default_ttl_ms: Some(2),
                max_id_bytes: 4,
                max_data_bytes: 40,
                sliding_ttl: false,
            },
            shards: 1,
            tracker: TrackerConfig {
                sync_interval_ms: 2,
                auto_recovery: false,
                conflict: ConflictPolicy::Overwrite,
            },
            adapter: AdapterConfig {
                max_contexts: 4,
                ttl_ms: None,
                auto_cleanup: false,
                cleanup_interval_ms: 19,
                max_active_contexts: 2,
            },
        };
        let ops = vec![
            Op::Create {
                id: "d".into(),
                data: Data::Small(0),
                ttl: Some(11),
                meta: false,
            },
            Op::Create {
                id: "a".into(),
                data: Data::Small(0),
                ttl: None,
                meta: false,
            },
            Op::ACreate("c".into(), Data::Small(6)),
            Op::Advance(18),
            Op::ACreate("b".into(), Data::Small(5)),
            Op::Advance(23),
            Op::Cleanup,
        ];
        check(&setup, &ops).unwrap();
    }

    #[test]
    fn keep_remote_sync_adopts_the_newer_stored_version() {
        let ops = vec![
            Op::Create {
                id: "a".into(),
                data: Data::Small(1),
                ttl: None,
                meta: true,
            },
            Op::TActivate("a".into()),
            Op::TUpdate(Data::Small(2)),
            Op::Update {
                id: "a".into(),
                data: Data::Small(3),
                expected: Some(1),
                ttl: None,
            },
            Op::TSync,
            Op::TGetState,
            Op::RecoveryPoints("a".into()),
        ];
        check(&setup(), &ops).unwrap();
    }

    #[test]
    fn lowering_capacity_evicts_least_recently_written() {
        let ops = vec![
            Op::Create {
                id: "a".into(),
                data: Data::Small(1),
                ttl: None,
                meta: false,
            },
            Op::Create {
                id: "b".into(),
                data: Data::Small(2),
                ttl: None,
                meta: false,
            },
            Op::Update {
                id: "a".into(),
                data: Data::Small(3),
                expected: None,
                ttl: None,
            },
            Op::AUpdateConfig(AdapterConfig {
                max_contexts: 1,
                ..setup().adapter
            }),
            Op::ListIds,
        ];
        check(&setup(), &ops).unwrap();
    }

    #[test]
    fn restore_uses_the_snapshot_data_at_the_next_version() {
        let ops = vec![
            Op::Create {
                id: "a".into(),
                data: Data::Small(1),
                ttl: None,
                meta: false,
            },
            Op::CreateRecoveryPoint("a".into()),
            Op::Update {
                id: "a".into(),
                data: Data::Small(2),
                expected: Some(1),
                ttl: Some(5),
            },
            Op::CreateRecoveryPoint("a".into()),
            Op::Restore("a".into(), 1),
            Op::Restore("a".into(), 2),
            Op::Advance(5),
            Op::Restore("a".into(), 2),
        ];
        check(&setup(), &ops).unwrap();
    }

    /// A tracker with a local edit whose context is deleted and created again
    /// (versions start over at 1), then synced: `Overwrite` pushes version 2
    /// of the new context and is based on it (clean), `KeepRemote` adopts
    /// version 1 and drops the edit, `Reject` reports the conflict. Once
    /// proptest's saved case (before the op strategies changed in c65a2d1);
    /// `recreated_context` below checks the same on the real objects alone.
    #[test]
    fn tracker_sync_into_a_recreated_context_under_each_policy() {
        for conflict in [
            ConflictPolicy::Overwrite,
            ConflictPolicy::KeepRemote,
            ConflictPolicy::Reject,
        ] {
            let mut setup = setup();
            setup.tracker = TrackerConfig {
                sync_interval_ms: 0,
                auto_recovery: false,
                conflict,
            };
            let ops = vec![
                Op::Create {
                    id: "b".into(),
                    data: Data::Small(0),
                    ttl: None,
                    meta: true,
                },
                Op::TActivate("b".into()),
                Op::TUpdate(Data::Small(1)),
                Op::TSync,
                Op::Delete("b".into()),
                Op::TUpdate(Data::Small(2)),
                Op::ACreate("b".into(), Data::Small(3)),
                Op::TSync,
                Op::TIsDirty,
                Op::TGetState,
                Op::TSync,
                Op::Get("b".into()),
            ];
            check(&setup, &ops).unwrap_or_else(|e| panic!("{conflict:?}: {e}"));
        }
    }

    /// The adapter built with `with_trackers` hands out trackers with those
    /// settings: this one's `Overwrite` pushes over a newer stored version,
    /// and its `auto_recovery` takes a recovery point on sync.
    #[test]
    fn trackers_handed_out_by_the_adapter_use_its_tracker_settings() {
        let mut setup = setup();
        setup.tracker = TrackerConfig {
            sync_interval_ms: 1,
            auto_recovery: true,
            conflict: ConflictPolicy::Overwrite,
        };
        assert!(setup.adapter_trackers().is_some());
        let ops = vec![
            Op::ACreate("a".into(), Data::Small(1)),
            Op::AActivate("a".into()),
            Op::AtUpdate("a".into(), Data::Small(2)),
            Op::AUpdate("a".into(), Data::Small(3), Some(1)),
            Op::AtIsSyncNeeded("a".into()),
            Op::Advance(1),
            Op::AtSyncIfNeeded("a".into()),
            Op::RecoveryPoints("a".into()),
            Op::AtIsDirty("a".into()),
            Op::AtDeactivate("a".into()),
            Op::AListActive,
            Op::AtRecoveryPoint("a".into()),
        ];
        check(&setup, &ops).unwrap();
    }

    #[test]
    fn invalid_input_is_rejected_before_anything_else() {
        let ops = vec![
            Op::Create {
                id: "toolong".into(),
                data: Data::Small(1),
                ttl: None,
                meta: false,
            },
            Op::Create {
                id: "a".into(),
                data: Data::Big,
                ttl: None,
                meta: false,
            },
            Op::Create {
                id: "a".into(),
                data: Data::NotObject(3),
                ttl: Some(0),
                meta: false,
            },
            Op::Update {
                id: "".into(),
                data: Data::Small(1),
                expected: None,
                ttl: None,
            },
            Op::TUpdate(Data::Big),
        ];
        check(&setup(), &ops).unwrap();
    }

    /// Found by the random search: a tracker's context expired and was
    /// created again at version 1; the sync of an edit based on the old one
    /// is a conflict (it wrote over the new context before revisions were
    /// checked), as the model says.
    #[test]
    fn sync_after_the_context_expired_and_was_created_again() {
        let base = setup();
        let setup = Setup {
            manager: ManagerConfig {
                max_contexts: 1,
                max_recovery_points: 0,
                ..base.manager
            },
            tracker: TrackerConfig {
                sync_interval_ms: 0,
                auto_recovery: false,
                conflict: ConflictPolicy::Reject,
            },
            adapter: AdapterConfig {
                ttl_ms: None,
                auto_cleanup: false,
                cleanup_interval_ms: 1,
                ..base.adapter
            },
            ..base
        };
        let create = |ttl| Op::Create {
            id: "b".into(),
            data: Data::Small(0),
            ttl,
            meta: false,
        };
        let ops = vec![
            create(Some(1)),
            Op::TActivate("b".into()),
            Op::Advance(1),
            create(None),
            Op::TUpdate(Data::Small(0)),
            Op::TSync,
        ];
        check(&setup, &ops).unwrap();
    }
}

/// Regression tests, on the real objects, for a tracker whose context was
/// deleted and created again while it held local edits (versions start over).
mod recreated_context {
    use contextkit::{
        AdapterConfig, ConflictPolicy, ContextAdapter, ContextManager, ContextTracker,
        ManagerConfig, TrackerConfig,
    };
    use futures::executor::block_on;
    use serde_json::json;

    /// A tracker based on version 2 of "b", with a local edit, after "b" was
    /// deleted and created again (version 1 of a new context).
    fn tracker_on_recreated(conflict: ConflictPolicy) -> (ContextManager, ContextTracker) {
        let m = ContextManager::new(ManagerConfig::default());
        let cfg = TrackerConfig {
            conflict,
            ..TrackerConfig::default()
        };
        let t = ContextTracker::new(m.clone(), cfg);
        let a = ContextAdapter::new(m.clone(), AdapterConfig::default());
        block_on(async {
            m.create_context("b", json!({ "v": 0 })).await.unwrap();
            t.activate_context("b").await.unwrap();
            t.update_state(json!({ "v": 1 })).await.unwrap();
            assert_eq!(t.sync_state().await.unwrap().version, 2);
            m.delete_context("b").await.unwrap();
            t.update_state(json!({ "v": 2 })).await.unwrap();
            a.create_context("b", json!({ "v": 3 })).await.unwrap();
        });
        (m, t)
    }

    /// `Overwrite` pushes version 2 of the new "b": the copy must then be clean
    /// and based on what it pushed, or the next sync pushes the edit again.
    #[test]
    fn overwrite_sync_into_a_recreated_context_leaves_the_copy_clean() {
        let (m, t) = tracker_on_recreated(ConflictPolicy::Overwrite);
        block_on(async {
            let pushed = t.sync_state().await.unwrap();
            assert_eq!((pushed.version, &*pushed.data), (2, &json!({ "v": 2 })));
            assert!(!t.is_dirty().await, "the pushed edit is still pending");
            assert_eq!(*t.get_state().await.unwrap(), *pushed);
            t.sync_state().await.unwrap();
            assert_eq!(
                m.get_context("b").await.unwrap().version,
                2,
                "the edit was pushed twice"
            );
        });
    }

    /// `KeepRemote` returns version 1 of the new "b": the copy must adopt it
    /// and drop the local edit, as the policy says.
    #[test]
    fn keep_remote_sync_of_a_recreated_context_adopts_it() {
        let (_m, t) = tracker_on_recreated(ConflictPolicy::KeepRemote);
        block_on(async {
            let remote = t.sync_state().await.unwrap();
            assert_eq!((remote.version, &*remote.data), (1, &json!({ "v": 3 })));
            assert!(!t.is_dirty().await, "the local edit was kept");
            assert_eq!(*t.get_state().await.unwrap(), *remote);
        });
    }
}
