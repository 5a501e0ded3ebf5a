//! How a write takes effect: decided and applied in one critical section in
//! memory, or decided, made durable, then applied when a storage is attached.

use crate::storage::{MaybeSend, Meta, PointRecord, Record};
use crate::store::{Entry, Inner, Map, Point, Removal, Shard};
use crate::{ContextError, ContextEvent, ContextManager, ContextState, Result};
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The change a write decided on, applied by [`install`].
#[derive(Debug)]
pub(crate) enum Patch {
    /// A new context; its capacity slot is already reserved.
    Insert(Entry),
    /// A new version of an existing context.
    SetState {
        state: Arc<ContextState>,
        ttl_ms: Option<u64>,
        restored: bool,
    },
    /// A new recovery point.
    PushPoint(Point),
    /// The context leaves the store.
    Remove(Removal),
}

/// A storage write in flight for one id. Writers of that id wait until it
/// settles; one abandoned by a dropped future is repaired from storage.
#[derive(Debug, Default)]
pub(crate) struct Flight {
    abandoned: AtomicBool,
    /// The write is a create holding a reserved capacity slot.
    reserved_slot: bool,
}

/// Marks its flight abandoned if dropped before the write settled.
struct FlightGuard<'a> {
    flight: Arc<Flight>,
    shard: &'a Shard,
    settled: bool,
}

impl Drop for FlightGuard<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.flight.abandoned.store(true, Ordering::SeqCst);
        }
        self.shard.settled.notify(usize::MAX);
    }
}

enum Step<'a> {
    Done(Result<()>),
    Wait(event_listener::EventListener),
    Persist(FlightGuard<'a>, Patch, Durable),
    Repair(FlightGuard<'a>),
}

/// How a write decides its patch (`Send` where futures must be).
#[cfg(not(target_arch = "wasm32"))]
type Plan<'a> = dyn FnMut(&Inner, &Shard, &mut Map) -> Result<Patch> + Send + 'a;
#[cfg(target_arch = "wasm32")]
type Plan<'a> = dyn FnMut(&Inner, &Shard, &mut Map) -> Result<Patch> + 'a;

/// What a write replaced or removed. It is dropped after the write's section
/// has ended, so freeing a large context never holds a shard's lock.
#[derive(Debug)]
pub(crate) enum Replaced {
    Nothing,
    State(#[allow(dead_code)] Arc<ContextState>),
    Entry(#[allow(dead_code)] Entry),
    Point(#[allow(dead_code)] Point),
}

/// What storage must hold before a patch is applied.
enum Durable {
    Put(Arc<Record>),
    Delete { meta: Option<Meta> },
}

impl ContextManager {
    /// Runs one write of `id`. `plan` sees the committed entries (expired ones
    /// already removed by [`Inner::live_mut`] when it asks) and decides the
    /// patch and the caller's result.
    ///
    /// A thin generic shell over [`write_patch`](Self::write_patch), so that the
    /// write machinery exists once in the binary, not once per caller.
    pub(crate) async fn write_through<T: MaybeSend>(
        &self,
        id: &str,
        mut plan: impl FnMut(&Inner, &Shard, &mut Map) -> Result<(Patch, T)> + MaybeSend,
    ) -> Result<T> {
        let mut out = None;
        self.write_patch(id, &mut |inner, shard, map| {
            let (patch, value) = plan(inner, shard, map)?;
            out = Some(value);
            Ok(patch)
        })
        .await?;
        // A write that succeeded ran its last plan successfully.
        Ok(out.expect("a successful write decided its result"))
    }

    async fn write_patch(&self, id: &str, plan: &mut Plan<'_>) -> Result<()> {
        let inner = &*self.inner;
        let shard = inner.shard(id);
        let Some(storage) = inner.storage.clone() else {
            let (result, replaced) = shard
                .map
                .write(|map| match plan(inner, shard, map) {
                    Ok(patch) => (Ok(()), install(inner, shard, map, id, patch)),
                    Err(e) => (Err(e), Replaced::Nothing),
                })
                .await;
            drop(replaced);
            return result;
        };
        loop {
            let step = shard
                .map
                .write(|map| {
                    if let Some(flight) = map.flights.get(id) {
                        if !flight.abandoned.load(Ordering::SeqCst) {
                            return Step::Wait(shard.settled.listen());
                        }
                        let repair = Arc::new(Flight {
                            abandoned: AtomicBool::new(false),
                            reserved_slot: flight.reserved_slot,
                        });
                        map.flights.insert(id.to_owned(), Arc::clone(&repair));
                        return Step::Repair(FlightGuard {
                            flight: repair,
                            shard,
                            settled: false,
                        });
                    }
                    let patch = match plan(inner, shard, map) {
                        Ok(p) => p,
                        Err(e) => return Step::Done(Err(e)),
                    };
                    let durable = durable_form(inner, map.get(id), &patch);
                    let flight = Arc::new(Flight {
                        abandoned: AtomicBool::new(false),
                        reserved_slot: matches!(patch, Patch::Insert(_)),
                    });
                    map.flights.insert(id.to_owned(), Arc::clone(&flight));
                    Step::Persist(
                        FlightGuard {
                            flight,
                            shard,
                            settled: false,
                        },
                        patch,
                        durable,
                    )
                })
                .await;
            match step {
                Step::Done(result) => return result,
                Step::Wait(listener) => listener.await,
                Step::Persist(mut guard, patch, durable) => {
                    let stored = match durable {
                        Durable::Put(record) => storage.put(record).await,
                        Durable::Delete { meta } => match meta {
                            Some(meta) => match storage.put_meta(meta).await {
                                Ok(()) => storage.delete(id).await,
                                Err(e) => Err(e),
                            },
                            None => storage.delete(id).await,
                        },
                    };
                    let stored = stored.map_err(as_storage_error);
                    let ok = stored.is_ok();
                    let replaced = shard
                        .map
                        .write(|map| {
                            map.flights.remove(id);
                            if ok {
                                install(inner, shard, map, id, patch)
                            } else {
                                roll_back(inner, &patch);
                                Replaced::Nothing
                            }
                        })
                        .await;
                    guard.settled = true;
                    drop(replaced);
                    return stored;
                }
                Step::Repair(mut guard) => {
                    let found = storage.get(id).await.map_err(as_storage_error)?;
                    shard
                        .map
                        .write(|map| {
                            map.flights.remove(id);
                            reconcile(inner, shard, map, id, found, guard.flight.reserved_slot);
                        })
                        .await;
                    guard.settled = true;
                }
            }
        }
    }
}

fn as_storage_error(e: ContextError) -> ContextError {
    match e {
        ContextError::Storage(_) => e,
        other => ContextError::Storage(other.to_string()),
    }
}

/// The record (or deletion) storage must hold for `patch` to be applied.
fn durable_form(inner: &Inner, before: Option<&Entry>, patch: &Patch) -> Durable {
    let next_snapshot_id = inner.next_snapshot.load(Ordering::SeqCst);
    let record = |state: &Arc<ContextState>, ttl_ms, points: &mut dyn Iterator<Item = &Point>| {
        Durable::Put(Arc::new(Record {
            state: Arc::clone(state),
            ttl_ms,
            points: points
                .map(|p| PointRecord {
                    id: p.id,
                    created_at_ms: p.created_at_ms,
                    state: Arc::clone(&p.state),
                })
                .collect(),
            next_snapshot_id,
        }))
    };
    match (patch, before) {
        (Patch::Insert(e), _) => record(&e.state, e.ttl_ms(), &mut e.points().iter()),
        (Patch::SetState { state, ttl_ms, .. }, Some(e)) => {
            record(state, *ttl_ms, &mut e.points().iter())
        }
        (Patch::PushPoint(p), Some(e)) => {
            let keep = inner.cfg.max_recovery_points;
            let all: Vec<&Point> = e.points().iter().chain(std::iter::once(p)).collect();
            let skip = all.len().saturating_sub(keep);
            record(&e.state, e.ttl_ms(), &mut all.into_iter().skip(skip))
        }
        // Deleting the record loses its hint of handed-out snapshot ids: keep it in the meta.
        (Patch::Remove(_), Some(e)) if !e.points().is_empty() => Durable::Delete {
            meta: Some(Meta { next_snapshot_id }),
        },
        _ => Durable::Delete { meta: None },
    }
}

/// Applies `patch` to `id`, keeping counts, counters and events in step, and
/// returns what it replaced for the caller to drop outside the section.
#[must_use]
pub(crate) fn install(
    inner: &Inner,
    shard: &Shard,
    map: &mut Map,
    id: &str,
    patch: Patch,
) -> Replaced {
    match patch {
        Patch::Insert(entry) => {
            shard.note_expiry(entry.state.expires_at_ms);
            let version = entry.state.version;
            map.insert(id.to_owned(), entry);
            inner.counters.creates.fetch_add(1, Ordering::Relaxed);
            inner.publish(|| ContextEvent::Created {
                id: id.to_owned(),
                version,
            });
            Replaced::Nothing
        }
        Patch::SetState {
            state,
            ttl_ms,
            restored,
        } => {
            let Some(entry) = map.get_mut(id) else {
                return Replaced::Nothing;
            };
            shard.note_expiry(state.expires_at_ms);
            let version = state.version;
            let old = std::mem::replace(&mut entry.state, state);
            entry.set_ttl_ms(ttl_ms);
            entry.touched = inner.next_touch();
            inner.counters.updates.fetch_add(1, Ordering::Relaxed);
            inner.publish(|| {
                let id = id.to_owned();
                if restored {
                    ContextEvent::Restored { id, version }
                } else {
                    ContextEvent::Updated { id, version }
                }
            });
            Replaced::State(old)
        }
        Patch::PushPoint(point) => {
            let Some(entry) = map.get_mut(id) else {
                return Replaced::Nothing;
            };
            let points = entry.points_mut();
            points.push_back(point);
            let mut oldest = None;
            while points.len() > inner.cfg.max_recovery_points {
                oldest = points.pop_front();
            }
            oldest.map_or(Replaced::Nothing, Replaced::Point)
        }
        Patch::Remove(why) => inner
            .remove(map, id, why)
            .map_or(Replaced::Nothing, Replaced::Entry),
    }
}

/// Undoes what deciding `patch` took in advance, for a write storage refused.
fn roll_back(inner: &Inner, patch: &Patch) {
    match patch {
        Patch::Insert(_) => inner.release_slot(),
        // Give the id back unless a later point took the next one meanwhile.
        Patch::PushPoint(point) => {
            let _ = inner.next_snapshot.compare_exchange(
                point.id + 1,
                point.id,
                Ordering::SeqCst,
                Ordering::SeqCst,
            );
        }
        Patch::SetState { .. } | Patch::Remove(_) => {}
    }
}

/// Makes memory agree with what storage holds for `id` after a write whose
/// outcome is unknown (its future was dropped while storage worked).
fn reconcile(
    inner: &Inner,
    shard: &Shard,
    map: &mut Map,
    id: &str,
    found: Option<Record>,
    reserved_slot: bool,
) {
    if reserved_slot {
        inner.release_slot();
    }
    let before = map.get(id).map(|e| e.state.version);
    match found {
        Some(record) => {
            let version = record.state.version;
            if before == Some(version) {
                if let Some(e) = map.get_mut(id) {
                    e.set_points(points_of(&record));
                }
                return;
            }
            let entry = entry_of(inner, record);
            shard.note_expiry(entry.state.expires_at_ms);
            if before.is_none() {
                inner.count.fetch_add(1, Ordering::SeqCst);
            }
            map.insert(id.to_owned(), entry);
            inner.publish(|| match before {
                None => ContextEvent::Created {
                    id: id.to_owned(),
                    version,
                },
                Some(_) => ContextEvent::Updated {
                    id: id.to_owned(),
                    version,
                },
            });
        }
        None => {
            inner.remove(map, id, Removal::Deleted);
        }
    }
}

fn points_of(record: &Record) -> VecDeque<Point> {
    record
        .points
        .iter()
        .map(|p| Point {
            id: p.id,
            created_at_ms: p.created_at_ms,
            state: Arc::clone(&p.state),
        })
        .collect()
}

/// The in-memory entry of a stored record.
pub(crate) fn entry_of(inner: &Inner, record: Record) -> Entry {
    let points = points_of(&record);
    Entry::new(record.state, record.ttl_ms, inner.next_touch(), points)
}
