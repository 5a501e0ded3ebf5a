//! The executor-agnostic conformance suite: one `pub async fn` per promise of
//! the API contract. `tests/conformance.rs` runs every case on four executors and
//! `core/tests/wasm.rs` runs them again as wasm.

#![allow(dead_code)]

pub mod adapter;
pub mod manager;
pub mod recovery;
pub mod tracker;

use std::cell::RefCell;
use std::rc::Rc;

use contextkit_core::{
    ContextError, ContextEvent, ContextManager, ManagerConfig, ManualClock, Subscription,
};

/// Builds the managers of the cases on another backend (a shared one).
pub type Factory = Rc<dyn Fn(ManagerConfig, ManualClock) -> ContextManager>;

thread_local! {
    static FACTORY: RefCell<Option<Factory>> = const { RefCell::new(None) };
}

/// Runs `f` with the cases' managers built by `factory`.
pub fn with_factory<R>(factory: Factory, f: impl FnOnce() -> R) -> R {
    FACTORY.with(|slot| *slot.borrow_mut() = Some(factory));
    let out = f();
    FACTORY.with(|slot| *slot.borrow_mut() = None);
    out
}

/// Cases that describe one process's memory, not a shared store:
/// a shared manager reads each state from the backend, so two reads
/// return equal states, not one shared `Arc`.
pub const SHARED_EXCEPTIONS: &[&str] = &["get_shares_state_without_copying"];

/// A manager on a manual clock starting at 1,000 ms.
pub fn manual(config: ManagerConfig) -> (ContextManager, ManualClock) {
    let clock = ManualClock::new(1_000);
    if let Some(factory) = FACTORY.with(|slot| slot.borrow().clone()) {
        return (factory(config, clock.clone()), clock);
    }
    let m = ContextManager::builder(config).clock(clock.clone()).build();
    (m, clock)
}

pub fn code<T: std::fmt::Debug>(r: Result<T, ContextError>) -> &'static str {
    r.expect_err("expected an error").code()
}

/// Every event already published to `sub`, without waiting.
pub fn drain(sub: &mut Subscription) -> Vec<ContextEvent> {
    std::iter::from_fn(|| sub.try_next()).collect()
}

/// The event of one commit: its kind, context id, version and revision.
pub fn ev(kind: &str, id: &str, version: u64, revision: u64) -> ContextEvent {
    contextkit_core::wire::event(kind, id, version, revision)
        .unwrap_or_else(|e| panic!("unknown event kind {kind}: {e}"))
}

/// Expands to the list of every case, for the runners.
#[macro_export]
macro_rules! for_each_case {
    ($m:ident, $arg:ident) => {
        $m! {
            $arg;
            manager::create_starts_at_version_one,
            manager::get_shares_state_without_copying,
            manager::create_never_overwrites,
            manager::create_respects_capacity,
            manager::expired_contexts_do_not_count_against_capacity,
            manager::create_over_an_expired_id_starts_fresh,
            manager::update_bumps_version_and_keeps_metadata,
            manager::update_with_stale_version_conflicts,
            manager::update_with_an_impossible_version_conflicts,
            manager::update_if_revision_sees_through_a_re_create,
            manager::update_of_missing_is_not_found,
            manager::deleted_context_is_not_resurrected_by_update,
            manager::list_and_len_show_live_contexts_sorted,
            manager::expiry_hides_contexts_at_the_deadline,
            manager::default_ttl_applies,
            manager::updates_restart_the_ttl,
            manager::touch_restarts_the_ttl_without_a_write,
            manager::sliding_ttl_restarts_the_ttl_on_each_get,
            manager::modify_applies_to_the_current_data,
            manager::concurrent_modifies_lose_no_update,
            manager::cleanup_removes_expired_and_reports_them,
            manager::events_follow_commit_order,
            manager::revision_is_store_wide_and_never_reused,
            manager::slow_subscriber_is_told_it_lagged,
            manager::subscription_ends_when_manager_is_dropped,
            manager::stats_count_every_kind_of_call,
            manager::invalid_ids_are_rejected_everywhere,
            manager::data_must_be_a_bounded_json_object,
            manager::every_error_code_is_reachable,
            manager::unusable_configs_are_rejected,
            recovery::recovery_points_rotate_keeping_the_newest,
            recovery::restore_bumps_version_with_snapshot_data,
            recovery::delete_removes_recovery_points_too,
            recovery::zero_recovery_points_means_disabled,
            recovery::recovery_points_of_missing_context_is_not_found,
            recovery::restore_of_unknown_snapshot_is_not_found,
            tracker::tracker_edits_locally_and_syncs_back,
            tracker::tracker_without_active_context,
            tracker::tracker_refuses_to_drop_unsynced_changes,
            tracker::tracker_conflict_reject_keeps_local_edits,
            tracker::tracker_conflict_after_delete_and_create,
            tracker::tracker_conflict_overwrite_wins,
            tracker::tracker_conflict_keep_remote_adopts_stored,
            tracker::tracker_apply_remote_only_moves_forward,
            tracker::tracker_sync_interval_follows_the_clock,
            tracker::tracker_auto_recovery_snapshots_each_sync,
            tracker::tracker_sync_that_committed_is_ok_without_its_recovery_point,
            adapter::adapter_ttl_applies_and_updates_refresh_it,
            adapter::adapter_creates_carry_metadata_and_their_own_ttl,
            adapter::adapter_offers_modify_touch_recovery_points_and_events,
            adapter::adapter_capacity_smaller_limit_wins,
            adapter::lowering_capacity_evicts_least_recently_updated,
            adapter::activating_twice_returns_the_same_tracker,
            adapter::active_trackers_are_limited,
            adapter::deactivation_rules,
            adapter::auto_cleanup_sweeps_on_interval,
            adapter::bad_adapter_config_is_rejected,
        }
    };
}
