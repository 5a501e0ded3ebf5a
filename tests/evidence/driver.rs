//! Runs one operation on the real objects and on the reference model, and
//! checks a whole sequence step by step.

use super::ops::{self, Change, Op, Setup};
use super::refmodel::{Adapter, Out, Store, Tracker};
use contextkit::{
    ContextAdapter, ContextError, ContextEvent, ContextManager, ContextState, ContextTracker,
    CreateOptions, ManualClock, Subscription, UpdateOptions,
};
use futures::executor::block_on;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// The real objects under test.
pub struct Real {
    clock: ManualClock,
    m: ContextManager,
    t: ContextTracker,
    a: ContextAdapter,
    handles: HashMap<String, ContextTracker>,
    events: Subscription,
}

/// The reference model of the same objects.
pub struct Model {
    store: Store,
    t: Tracker,
    a: Adapter,
}

const START_MS: u64 = 1_000;

fn out_state(r: Result<Arc<ContextState>, ContextError>) -> Out {
    match r {
        Ok(s) => Out::State(ContextState::clone(&s)),
        Err(e) => out_err(e),
    }
}

fn out_err(e: ContextError) -> Out {
    match e {
        ContextError::VersionConflict { actual, .. } => Out::Conflict(actual),
        e => Out::Err(e.code()),
    }
}

fn from<T>(r: Result<T, ContextError>, f: impl FnOnce(T) -> Out) -> Out {
    r.map_or_else(out_err, f)
}

fn model<T>(r: Result<T, Out>, f: impl FnOnce(T) -> Out) -> Out {
    r.map_or_else(|e| e, f)
}

pub fn build(setup: &Setup) -> (Real, Model) {
    let clock = ManualClock::new(START_MS);
    let m = ContextManager::builder(setup.manager.clone())
        .clock(clock.clone())
        .shards(setup.shards)
        .build();
    let events = m.subscribe();
    let t = ContextTracker::new(m.clone(), setup.tracker);
    let a = match setup.adapter_trackers() {
        Some(trackers) => ContextAdapter::with_trackers(m.clone(), setup.adapter, trackers),
        None => ContextAdapter::new(m.clone(), setup.adapter),
    };
    let mut store = Store::new(setup.manager.clone(), START_MS);
    let handed = setup.adapter_trackers().unwrap_or_default();
    let a_model = Adapter::new(&mut store, setup.adapter, handed);
    let real = Real {
        clock,
        m,
        t,
        a,
        handles: HashMap::new(),
        events,
    };
    let model = Model {
        store,
        t: Tracker::new(setup.tracker),
        a: a_model,
    };
    (real, model)
}

/// `modify_context`, or `try_modify_context` when `fallible`, on the
/// manager or through the adapter.
async fn modify_real(r: &Real, adapter: bool, id: &str, change: Change, fallible: bool) -> Out {
    let fallible = fallible || change.fallible();
    let f = move |d: &serde_json::Value| change.apply(d);
    let infallible = move |d: &serde_json::Value| f(d).expect("only a fallible change refuses");
    out_state(match (adapter, fallible) {
        (false, false) => r.m.modify_context(id, infallible).await,
        (false, true) => r.m.try_modify_context(id, f).await,
        (true, false) => r.a.modify_context(id, infallible).await,
        (true, true) => r.a.try_modify_context(id, f).await,
    })
}

fn modify_model(s: &mut Store, id: &str, change: Change) -> Out {
    state(s.modify(id, |d| change.apply(d).map_err(|e| Out::Err(e.code()))))
}

pub async fn run_real(r: &mut Real, op: &Op) -> Out {
    let (m, t, a) = (&r.m, &r.t, &r.a);
    match op {
        Op::Advance(ms) => {
            r.clock.advance(*ms);
            Out::Unit
        }
        Op::Create {
            id,
            data,
            ttl,
            meta,
        } => {
            let opts = CreateOptions {
                ttl_ms: *ttl,
                metadata: ops::metadata(*meta),
            };
            out_state(m.create_context_with(id, data.json(), opts).await)
        }
        Op::Get(id) => out_state(m.get_context(id).await),
        Op::Update {
            id,
            data,
            expected,
            ttl,
        } => {
            let opts = UpdateOptions {
                expected_version: *expected,
                ttl_ms: *ttl,
            };
            out_state(m.update_context_with(id, data.json(), opts).await)
        }
        Op::Delete(id) => from(m.delete_context(id).await, |()| Out::Unit),
        Op::ListIds => Out::Ids(m.list_context_ids().await),
        Op::List => Out::States(
            m.list_contexts()
                .await
                .iter()
                .map(|s| ContextState::clone(s))
                .collect(),
        ),
        Op::Len => Out::Count(m.len().await),
        Op::IsEmpty => Out::Bool(m.is_empty().await),
        Op::CreateRecoveryPoint(id) => from(m.create_recovery_point(id).await, Out::Snapshot),
        Op::RecoveryPoints(id) => from(m.recovery_points(id).await, Out::Snapshots),
        Op::Restore(id, p) => out_state(m.restore_recovery_point(id, *p).await),
        Op::Modify {
            id,
            change,
            fallible,
        } => modify_real(r, false, id, *change, *fallible).await,
        Op::Touch(id) => out_state(m.touch_context(id).await),
        Op::Cleanup => Out::Count(m.cleanup_expired().await),
        Op::TActivate(id) => out_state(t.activate_context(id).await),
        Op::TDeactivate => from(t.deactivate_context().await, |()| Out::Unit),
        Op::TDiscard => out_state(t.discard_changes().await),
        Op::TActiveId => Out::OptId(t.active_context_id().await),
        Op::TGetState => out_state(t.get_state().await),
        Op::TIsDirty => Out::Bool(t.is_dirty().await),
        Op::TUpdate(data) => out_state(t.update_state(data.json()).await),
        Op::TApplyRemote(id) => match m.get_context(id).await {
            Ok(s) => Out::Bool(t.apply_remote(s).await),
            Err(e) => out_err(e),
        },
        Op::TSync => out_state(t.sync_state().await),
        Op::TSyncIfNeeded => from(t.sync_if_needed().await, |s| {
            Out::OptState(s.map(|s| ContextState::clone(&s)))
        }),
        Op::TIsSyncNeeded => Out::Bool(t.is_sync_needed().await),
        Op::TRecoveryPoint => from(t.create_recovery_point().await, Out::Snapshot),
        Op::ACreate(id, data) => out_state(a.create_context(id, data.json()).await),
        Op::AGet(id) => out_state(a.get_context(id).await),
        Op::AUpdate(id, data, expected) => {
            out_state(a.update_context(id, data.json(), *expected).await)
        }
        Op::ADelete(id) => from(a.delete_context(id).await, |()| Out::Unit),
        Op::AList => Out::States(
            a.list_contexts()
                .await
                .iter()
                .map(|s| ContextState::clone(s))
                .collect(),
        ),
        Op::ACleanup => Out::Count(a.cleanup_expired_contexts().await),
        Op::AGetConfig => Out::Config(a.get_config().await),
        Op::AUpdateConfig(cfg) => from(a.update_config(*cfg).await, Out::Count),
        Op::AActivate(id) => match a.activate_context(id).await {
            Ok(tr) => {
                let same = r.handles.get(id.as_str()).is_some_and(|h| h.same_as(&tr));
                r.handles.insert(id.clone(), tr);
                Out::Bool(same)
            }
            Err(e) => out_err(e),
        },
        Op::ADeactivate(id) => from(a.deactivate_context(id).await, |()| Out::Unit),
        Op::AListActive => Out::Ids(a.list_active_context_ids().await),
        Op::AModify {
            id,
            change,
            fallible,
        } => modify_real(r, true, id, *change, *fallible).await,
        Op::ATouch(id) => out_state(a.touch_context(id).await),
        Op::AtUpdate(id, data) => match r.handles.get(id.as_str()) {
            Some(h) => out_state(h.update_state(data.json()).await),
            None => Out::Skip,
        },
        Op::AtSync(id) => match r.handles.get(id.as_str()) {
            Some(h) => out_state(h.sync_state().await),
            None => Out::Skip,
        },
        Op::AtGetState(id) => match r.handles.get(id.as_str()) {
            Some(h) => out_state(h.get_state().await),
            None => Out::Skip,
        },
        Op::AtActivate(id) => match r.handles.get(id.as_str()) {
            // A tracker that belongs to an adapter refuses direct activation.
            Some(h) => out_state(h.activate_context(id).await),
            None => Out::Skip,
        },
        Op::AtDeactivate(id) => match r.handles.get(id.as_str()) {
            Some(h) => from(h.deactivate_context().await, |()| Out::Unit),
            None => Out::Skip,
        },
        Op::AtDiscard(id) => match r.handles.get(id.as_str()) {
            Some(h) => out_state(h.discard_changes().await),
            None => Out::Skip,
        },
        Op::AtActiveId(id) => match r.handles.get(id.as_str()) {
            Some(h) => Out::OptId(h.active_context_id().await),
            None => Out::Skip,
        },
        Op::AtIsDirty(id) => match r.handles.get(id.as_str()) {
            Some(h) => Out::Bool(h.is_dirty().await),
            None => Out::Skip,
        },
        Op::AtApplyRemote(id, from_id) => match r.handles.get(id.as_str()) {
            Some(h) => match m.get_context(from_id).await {
                Ok(s) => Out::Bool(h.apply_remote(s).await),
                Err(e) => out_err(e),
            },
            None => Out::Skip,
        },
        Op::AtSyncIfNeeded(id) => match r.handles.get(id.as_str()) {
            Some(h) => from(h.sync_if_needed().await, |s| {
                Out::OptState(s.map(|s| ContextState::clone(&s)))
            }),
            None => Out::Skip,
        },
        Op::AtIsSyncNeeded(id) => match r.handles.get(id.as_str()) {
            Some(h) => Out::Bool(h.is_sync_needed().await),
            None => Out::Skip,
        },
        Op::AtRecoveryPoint(id) => match r.handles.get(id.as_str()) {
            Some(h) => from(h.create_recovery_point().await, Out::Snapshot),
            None => Out::Skip,
        },
    }
}

fn state(r: Result<ContextState, Out>) -> Out {
    model(r, Out::State)
}

pub fn run_model(md: &mut Model, op: &Op) -> Out {
    let Model { store: s, t, a } = md;
    match op {
        Op::Advance(ms) => {
            s.now += ms;
            Out::Unit
        }
        Op::Create {
            id,
            data,
            ttl,
            meta,
        } => state(s.create(id, data.json(), *ttl, ops::metadata(*meta))),
        Op::Get(id) => state(s.get(id)),
        Op::Update {
            id,
            data,
            expected,
            ttl,
        } => state(s.update(id, data.json(), *expected, *ttl)),
        Op::Delete(id) => model(s.delete(id), |()| Out::Unit),
        Op::ListIds => Out::Ids(s.live_states().into_iter().map(|s| s.id).collect()),
        Op::List => Out::States(s.live_states()),
        Op::Len => Out::Count(s.live_states().len()),
        Op::IsEmpty => Out::Bool(s.live_states().is_empty()),
        Op::CreateRecoveryPoint(id) => model(s.create_recovery_point(id), Out::Snapshot),
        Op::RecoveryPoints(id) => model(s.recovery_points(id), Out::Snapshots),
        Op::Restore(id, p) => state(s.restore(id, *p)),
        Op::Modify { id, change, .. } => modify_model(s, id, *change),
        Op::Touch(id) => state(s.touch(id)),
        Op::Cleanup => Out::Count(s.sweep()),
        Op::TActivate(id) => state(t.activate(s, id)),
        Op::TDeactivate => model(t.deactivate(), |()| Out::Unit),
        Op::TDiscard => state(t.discard()),
        Op::TActiveId => Out::OptId(t.active.as_ref().map(|a| a.base.id.clone())),
        Op::TGetState => t.copy().map_or(Out::Err("NOT_ACTIVE"), Out::State),
        Op::TIsDirty => Out::Bool(t.dirty()),
        Op::TUpdate(data) => state(t.update_state(s, data.json())),
        Op::TApplyRemote(id) => model(s.get(id), |st| Out::Bool(t.apply_remote(st))),
        Op::TSync => state(t.sync(s)),
        Op::TSyncIfNeeded => {
            if t.sync_needed(s.now) {
                model(t.sync(s), |st| Out::OptState(Some(st)))
            } else {
                Out::OptState(None)
            }
        }
        Op::TIsSyncNeeded => Out::Bool(t.sync_needed(s.now)),
        Op::TRecoveryPoint => match t.active.as_ref().map(|a| a.base.id.clone()) {
            Some(id) => model(s.create_recovery_point(&id), Out::Snapshot),
            None => Out::Err("NOT_ACTIVE"),
        },
        Op::ACreate(id, data) => {
            a.maybe_cleanup(s);
            state(s.create(id, data.json(), a.cfg.ttl_ms, BTreeMap::new()))
        }
        Op::AGet(id) => {
            a.maybe_cleanup(s);
            state(s.get(id))
        }
        Op::AUpdate(id, data, expected) => {
            a.maybe_cleanup(s);
            state(s.update(id, data.json(), *expected, a.cfg.ttl_ms))
        }
        Op::ADelete(id) => model(s.delete(id), |()| Out::Unit),
        Op::AList => {
            a.maybe_cleanup(s);
            Out::States(s.live_states())
        }
        Op::ACleanup => Out::Count(a.cleanup(s)),
        Op::AGetConfig => Out::Config(a.cfg),
        Op::AUpdateConfig(cfg) => model(a.update_config(s, *cfg), Out::Count),
        Op::AActivate(id) => model(a.activate(s, id), Out::Bool),
        Op::ADeactivate(id) => model(s.check_id(id).and_then(|()| a.deactivate(id)), |()| {
            Out::Unit
        }),
        Op::AListActive => Out::Ids(a.active_ids()),
        // The adapter's modify and touch are the manager's: no auto-cleanup.
        Op::AModify { id, change, .. } => modify_model(s, id, *change),
        Op::ATouch(id) => state(s.touch(id)),
        Op::AtUpdate(id, data) => match a.trackers.get_mut(id.as_str()) {
            Some((tr, _)) => state(tr.update_state(s, data.json())),
            None => Out::Skip,
        },
        Op::AtSync(id) => match a.trackers.get_mut(id.as_str()) {
            Some((tr, _)) => state(tr.sync(s)),
            None => Out::Skip,
        },
        Op::AtGetState(id) => match a.trackers.get(id.as_str()) {
            Some((tr, _)) => tr.copy().map_or(Out::Err("NOT_ACTIVE"), Out::State),
            None => Out::Skip,
        },
        Op::AtActivate(id) => match a.trackers.get(id.as_str()) {
            Some(_) => Out::Err("INVALID_ARGUMENT"),
            None => Out::Skip,
        },
        Op::AtDeactivate(id) => a
            .tracker_deactivate(id)
            .map_or(Out::Skip, |r| model(r, |()| Out::Unit)),
        Op::AtDiscard(id) => match a.trackers.get_mut(id.as_str()) {
            Some((tr, _)) => state(tr.discard()),
            None => Out::Skip,
        },
        Op::AtActiveId(id) => match a.trackers.get(id.as_str()) {
            Some((tr, _)) => Out::OptId(tr.active.as_ref().map(|a| a.base.id.clone())),
            None => Out::Skip,
        },
        Op::AtIsDirty(id) => match a.trackers.get(id.as_str()) {
            Some((tr, _)) => Out::Bool(tr.dirty()),
            None => Out::Skip,
        },
        Op::AtApplyRemote(id, from_id) => match a.trackers.get_mut(id.as_str()) {
            Some((tr, _)) => model(s.get(from_id), |st| Out::Bool(tr.apply_remote(st))),
            None => Out::Skip,
        },
        Op::AtSyncIfNeeded(id) => match a.trackers.get_mut(id.as_str()) {
            Some((tr, _)) if tr.sync_needed(s.now) => {
                model(tr.sync(s), |st| Out::OptState(Some(st)))
            }
            Some(_) => Out::OptState(None),
            None => Out::Skip,
        },
        Op::AtIsSyncNeeded(id) => match a.trackers.get(id.as_str()) {
            Some((tr, _)) => Out::Bool(tr.sync_needed(s.now)),
            None => Out::Skip,
        },
        Op::AtRecoveryPoint(id) => match a.trackers.get(id.as_str()) {
            Some((tr, _)) => match tr.active.as_ref().map(|a| a.base.id.clone()) {
                Some(id) => model(s.create_recovery_point(&id), Out::Snapshot),
                None => Out::Err("NOT_ACTIVE"),
            },
            None => Out::Skip,
        },
    }
}

/// Runs of `Expired` events from one sweep come in shard order; sort each
/// run by id. The run's revisions stay where they were, in increasing order:
/// which context of a sweep takes which of them depends on the id hash.
pub fn normalise(mut events: Vec<ContextEvent>) -> Vec<ContextEvent> {
    let is_expired = |e: &ContextEvent| matches!(e, ContextEvent::Expired { .. });
    let mut i = 0;
    while i < events.len() {
        let run = events[i..].iter().take_while(|e| is_expired(e)).count();
        let mut revisions: Vec<u64> = events[i..i + run]
            .iter()
            .filter_map(ContextEvent::revision)
            .collect();
        revisions.sort_unstable();
        events[i..i + run].sort_by(|a, b| a.id().cmp(&b.id()));
        for (e, r) in events[i..i + run].iter_mut().zip(revisions) {
            if let ContextEvent::Expired { revision, .. } = e {
                *revision = r;
            }
        }
        i += run.max(1);
    }
    events
}

/// Fails unless the revisions of `events` strictly increase, from above `last`
/// (the last one seen before), which it moves to the last of these.
fn increasing(events: &[ContextEvent], last: &mut u64, what: &str) -> Result<(), String> {
    for e in events {
        let r = e
            .revision()
            .ok_or_else(|| format!("{what}: {e:?} has no revision"))?;
        if r <= *last {
            return Err(format!("{what}: revision {r} after {last}: {events:?}"));
        }
        *last = r;
    }
    Ok(())
}

/// Fails with both sides and the context when `real != model`.
fn same<T: PartialEq + std::fmt::Debug>(real: T, model: T, what: &str) -> Result<(), String> {
    if real == model {
        Ok(())
    } else {
        Err(format!("{what}:\n  real:  {real:?}\n  model: {model:?}"))
    }
}

/// Applies `ops` to fresh real objects and a fresh model, comparing each
/// result, the events and stats after each step, and the final state.
pub fn check(setup: &Setup, ops: &[Op]) -> Result<(), String> {
    let (mut real, mut md) = build(setup);
    let mut last_revision = 0;
    for (step, op) in ops.iter().enumerate() {
        let got = block_on(run_real(&mut real, op));
        let want = run_model(&mut md, op);
        same(&got, &want, &format!("result of step {step}: {op:?}"))?;
        let events: Vec<ContextEvent> = std::iter::from_fn(|| real.events.try_next()).collect();
        let expected = std::mem::take(&mut md.store.events);
        let what = format!("events of step {step}: {op:?}");
        increasing(&events, &mut last_revision, &what)?;
        same(normalise(events), normalise(expected), &what)?;
        let what = format!("stats after step {step}: {op:?}");
        same(real.m.stats(), md.store.stats(), &what)?;
    }
    // Final state: every live context with its recovery points, and the trackers.
    let live: Vec<ContextState> = block_on(real.m.list_contexts())
        .iter()
        .map(|s| ContextState::clone(s))
        .collect();
    same(&live, &md.store.live_states(), "final contexts")?;
    for s in &live {
        let snapshots = from(block_on(real.m.recovery_points(&s.id)), Out::Snapshots);
        same(
            snapshots,
            model(md.store.recovery_points(&s.id), Out::Snapshots),
            "final recovery points",
        )?;
    }
    let copy = block_on(real.t.get_state())
        .ok()
        .map(|s| ContextState::clone(&s));
    same(copy, md.t.copy(), "final tracker copy")?;
    for (id, h) in &real.handles {
        let copy = block_on(h.get_state())
            .ok()
            .map(|s| ContextState::clone(&s));
        let want = md.a.trackers.get(id).and_then(|(t, _)| t.copy());
        same(
            copy,
            want,
            &format!("final copy of the adapter's tracker for {id:?}"),
        )?;
    }
    let active = block_on(real.a.list_active_context_ids());
    same(active, md.a.active_ids(), "final active ids")
}
