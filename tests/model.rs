//! Model-based test: random sequences of every public operation of the
//! manager, a tracker, an adapter and the adapter's trackers, applied both to
//! the real objects (on a manual clock) and to the sequential reference model
//! in `evidence/refmodel.rs`. Every result (error codes included), the stats,
//! the event stream after each step and the final state must agree.
//!
//! `PROPTEST_CASES` sets the number of cases (default 400). Shrunk failures
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
        .unwrap_or(400)
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
            },
            shards: 4,
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
            Op::Points("a".into()),
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
    fn restore_uses_the_point_data_at_the_next_version() {
        let ops = vec![
            Op::Create {
                id: "a".into(),
                data: Data::Small(1),
                ttl: None,
                meta: false,
            },
            Op::CreatePoint("a".into()),
            Op::Update {
                id: "a".into(),
                data: Data::Small(2),
                expected: Some(1),
                ttl: Some(5),
            },
            Op::CreatePoint("a".into()),
            Op::Restore("a".into(), 1),
            Op::Restore("a".into(), 2),
            Op::Advance(5),
            Op::Restore("a".into(), 2),
        ];
        check(&setup(), &ops).unwrap();
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
}
