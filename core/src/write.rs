//! How a write takes effect: decided and applied in one critical section in
//! memory, or decided, made durable, then applied when a storage is attached.

use crate::storage::{MaybeSend, Meta, PointRecord, Record, Storage};
use crate::store::{Entry, Inner, Map, Point, Removal, Shard};
use crate::{ContextError, ContextEvent, ContextManager, ContextState, Result, validate};
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

impl Patch {
    /// Whether applying it is a commit, which takes a revision: all but a
    /// recovery point, which leaves the context as it is.
    fn is_commit(&self) -> bool {
        !matches!(self, Self::PushPoint(_))
    }

    /// Writes `revision` into the state the patch commits.
    fn stamp(&mut self, revision: u64) {
        if let Self::Insert(Entry { state, .. }) | Self::SetState { state, .. } = self {
            stamp(state, revision);
        }
    }
}

/// Writes `revision` into `state`. Plans hand their new state over without
/// keeping a handle on it, so this never copies the data.
fn stamp(state: &mut Arc<ContextState>, revision: u64) {
    if state.revision != revision {
        Arc::make_mut(state).revision = revision;
    }
}

/// A storage write in flight for one id. Writers of that id wait until it
/// settles; one whose outcome is unknown (its future was dropped, or storage
/// failed and could not be read back) is marked abandoned, and the next call
/// reads that id back from storage.
#[derive(Debug, Default)]
pub(crate) struct Flight {
    abandoned: AtomicBool,
    reserved: Reserved,
}

impl Flight {
    /// Whether the write is still going (not abandoned).
    pub(crate) fn in_progress(&self) -> bool {
        !self.abandoned.load(Ordering::SeqCst)
    }
}

/// Waits for `flight` to settle through `settled`, a listener of its shard
/// made while the flight was seen in progress. A flight is abandoned (by a
/// dropped future) without the shard's lock: it is marked first and notified
/// after, so looking at the mark once the listener exists misses nothing.
async fn wait_for(flight: Arc<Flight>, settled: event_listener::EventListener) {
    if flight.in_progress() {
        settled.await;
    }
}

/// What deciding a write took in advance: given back unless storage holds it.
#[derive(Debug, Default, Clone, Copy)]
struct Reserved {
    /// A capacity slot (a create).
    slot: bool,
    /// A recovery-point id.
    point: Option<u64>,
    /// The revision of the commit (never published before the write lands;
    /// a read-back that publishes the change uses it).
    revision: Option<u64>,
}

/// Marks its flight abandoned if dropped before the write settled.
struct FlightGuard<'a> {
    flight: Arc<Flight>,
    inner: &'a Inner,
    shard: &'a Shard,
    settled: bool,
}

impl Drop for FlightGuard<'_> {
    fn drop(&mut self) {
        if !self.settled {
            // Counted before it is marked: whoever sees the mark sees the count.
            self.inner.abandoned.fetch_add(1, Ordering::SeqCst);
            self.flight.abandoned.store(true, Ordering::SeqCst);
        }
        if self.flight.reserved.slot {
            self.inner.creating.fetch_sub(1, Ordering::SeqCst);
            self.inner.landed.notify(usize::MAX);
        }
        self.shard.settled.notify(usize::MAX);
    }
}

/// Inside `shard`'s section: `id` is in flight until the returned guard settles.
fn take_off<'a>(
    inner: &'a Inner,
    shard: &'a Shard,
    map: &mut Map,
    id: &str,
    reserved: Reserved,
) -> FlightGuard<'a> {
    if reserved.slot {
        inner.creating.fetch_add(1, Ordering::SeqCst);
    }
    let flight = Arc::new(Flight {
        abandoned: AtomicBool::new(false),
        reserved,
    });
    map.flights.insert(id.to_owned(), Arc::clone(&flight));
    FlightGuard {
        flight,
        inner,
        shard,
        settled: false,
    }
}

enum Step<'a> {
    Done(Result<Option<Arc<ContextState>>>),
    Wait(Arc<Flight>, event_listener::EventListener),
    Persist(Box<Persist<'a>>),
    ReadBack(FlightGuard<'a>),
}

/// A write decided through a storage: made durable, then installed.
struct Persist<'a> {
    guard: FlightGuard<'a>,
    patch: Patch,
    durable: Durable,
    /// The commit's revision (`None` for a recovery point).
    revision: Option<u64>,
    /// The removal of an expired context the write met: decide the write
    /// again once it is done.
    expiry: bool,
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
    /// Runs one write of `id`. `plan` sees the committed entries (in memory,
    /// expired ones already removed by [`Inner::live_mut`] when it asks) and
    /// decides the patch and the caller's result.
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

    /// A write whose patch commits a new state (an insert or a new version):
    /// returns that state as committed, its revision included. The plan
    /// hands the state over in the patch and keeps no handle on it.
    pub(crate) async fn write_state(
        &self,
        id: &str,
        plan: &mut Plan<'_>,
    ) -> Result<Arc<ContextState>> {
        let state = self.write_patch(id, plan).await?;
        Ok(state.expect("a state write commits a state"))
    }

    async fn write_patch(
        &self,
        id: &str,
        plan: &mut Plan<'_>,
    ) -> Result<Option<Arc<ContextState>>> {
        let inner = &*self.inner;
        let Some(storage) = &inner.storage else {
            let shard = inner.shard(id);
            let (result, replaced) = shard
                .map
                .write(|map| match plan(inner, shard, map) {
                    Ok(patch) => {
                        let (replaced, state) = install(inner, shard, map, id, patch, None);
                        (Ok(state), replaced)
                    }
                    Err(e) => (Err(e), Replaced::Nothing),
                })
                .await;
            drop(replaced);
            return result;
        };
        self.settle_abandoned().await;
        self.persist(storage, id, Some(plan)).await
    }

    /// Reads back every id whose storage write has an unknown outcome, so
    /// that memory (contexts, capacity, recovery-point ids) shows what storage
    /// holds. Best effort: an id storage cannot answer for stays marked.
    pub(crate) async fn settle_abandoned(&self) {
        let inner = &*self.inner;
        let Some(storage) = &inner.storage else {
            return;
        };
        if inner.abandoned.load(Ordering::SeqCst) == 0 {
            return;
        }
        for shard in inner.shards.iter() {
            let ids: Vec<String> = shard
                .map
                .read(|map| {
                    map.flights
                        .iter()
                        .filter(|(_, f)| f.abandoned.load(Ordering::SeqCst))
                        .map(|(id, _)| id.clone())
                        .collect()
                })
                .await;
            for id in ids {
                let _ = self.persist(storage, &id, None).await;
            }
        }
    }

    /// Reads `id`'s shard with `f`. Through a storage, a write of `id` in
    /// progress is waited for first, so no read sees the old state after
    /// another call saw the new one.
    pub(crate) async fn read_id<R>(
        &self,
        shard: &Shard,
        id: &str,
        mut f: impl FnMut(&Map) -> R,
    ) -> R {
        let has_storage = self.inner.storage.is_some();
        loop {
            let read = shard
                .map
                .read(|map| {
                    if has_storage && let Some(flight) = map.writing(id) {
                        return Err((Arc::clone(flight), shard.settled.listen()));
                    }
                    Ok(f(map))
                })
                .await;
            match read {
                Ok(r) => return r,
                Err((flight, settled)) => wait_for(flight, settled).await,
            }
        }
    }

    /// Whether some storage write has an unknown outcome (cheap: one load).
    pub(crate) fn unsettled(&self) -> bool {
        self.inner.abandoned.load(Ordering::Relaxed) != 0
    }

    /// One write of `id` through `storage`: waits for a write of `id` in
    /// flight, reads back one abandoned, then decides with `plan` (nothing to
    /// decide without one), makes the change durable and applies it.
    ///
    /// An expired context stays in memory until storage no longer holds it:
    /// a write that fails on one (it is absent to every plan) removes it
    /// through storage first, with its `Expired` event, and is decided again.
    async fn persist(
        &self,
        storage: &Arc<dyn Storage>,
        id: &str,
        mut plan: Option<&mut Plan<'_>>,
    ) -> Result<Option<Arc<ContextState>>> {
        let inner = &*self.inner;
        let shard = inner.shard(id);
        loop {
            let step = shard
                .map
                .write(|map| {
                    if let Some(flight) = map.flights.get(id) {
                        if flight.in_progress() {
                            return Step::Wait(Arc::clone(flight), shard.settled.listen());
                        }
                        let reserved = flight.reserved;
                        inner.abandoned.fetch_sub(1, Ordering::SeqCst);
                        return Step::ReadBack(take_off(inner, shard, map, id, reserved));
                    }
                    let Some(plan) = plan.as_mut() else {
                        return Step::Done(Ok(None));
                    };
                    let (mut patch, expiry) = match plan(inner, shard, map) {
                        Ok(p) => (p, false),
                        Err(_)
                            if map
                                .get(id)
                                .is_some_and(|e| e.state.is_expired_at(inner.now())) =>
                        {
                            (Patch::Remove(Removal::Expired), true)
                        }
                        Err(e) => return Step::Done(Err(e)),
                    };
                    // The revision is decided with the write: its record carries it.
                    let revision = patch.is_commit().then(|| inner.take_revision());
                    if let Some(revision) = revision {
                        patch.stamp(revision);
                    }
                    let durable = durable_form(inner, map.get(id), &patch, revision);
                    let reserved = Reserved {
                        slot: matches!(patch, Patch::Insert(_)),
                        point: match &patch {
                            Patch::PushPoint(p) => Some(p.id),
                            _ => None,
                        },
                        revision,
                    };
                    let guard = take_off(inner, shard, map, id, reserved);
                    Step::Persist(Box::new(Persist {
                        guard,
                        patch,
                        durable,
                        revision,
                        expiry,
                    }))
                })
                .await;
            match step {
                Step::Done(result) => return result,
                Step::Wait(flight, listener) => wait_for(flight, listener).await,
                Step::Persist(decided) => {
                    let Persist {
                        mut guard,
                        patch,
                        durable,
                        revision,
                        expiry,
                    } = *decided;
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
                    if let Err(e) = stored {
                        // Storage may have applied some or all of it: memory
                        // takes what it holds now. If it cannot say, the next
                        // call asks again.
                        let _ = self.read_back(storage, id, guard).await;
                        return Err(as_storage_error(e));
                    }
                    let (replaced, state) = shard
                        .map
                        .write(|map| {
                            map.flights.remove(id);
                            install(inner, shard, map, id, patch, revision)
                        })
                        .await;
                    guard.settled = true;
                    drop(replaced);
                    if !expiry {
                        return Ok(state);
                    }
                }
                Step::ReadBack(guard) => self.read_back(storage, id, guard).await?,
            }
        }
    }

    /// Makes memory hold what storage holds for `id` after a write whose
    /// outcome is unknown, and lands its flight. Dropping the future or
    /// failing leaves the flight abandoned.
    async fn read_back(
        &self,
        storage: &Arc<dyn Storage>,
        id: &str,
        mut guard: FlightGuard<'_>,
    ) -> Result<()> {
        let inner = &*self.inner;
        let found = storage.get(id).await.map_err(as_storage_error)?;
        if let Some(record) = &found {
            validate::stored(&inner.cfg, record)
                .and_then(|()| match record.state.id == id {
                    true => Ok(()),
                    false => Err(ContextError::Storage(format!(
                        "get('{id}') returned the record of '{}'",
                        record.state.id
                    ))),
                })
                .map_err(|e| ContextError::Storage(format!("stored record '{id}': {e}")))?;
        }
        let shard = guard.shard;
        let reserved = guard.flight.reserved;
        shard
            .map
            .write(|map| {
                map.flights.remove(id);
                reconcile(inner, shard, map, id, found, reserved);
            })
            .await;
        guard.settled = true;
        Ok(())
    }
}

fn as_storage_error(e: ContextError) -> ContextError {
    match e {
        ContextError::Storage(_) => e,
        other => ContextError::Storage(other.to_string()),
    }
}

/// The record (or deletion) storage must hold for `patch`, which commits
/// `revision`, to be applied.
fn durable_form(
    inner: &Inner,
    before: Option<&Entry>,
    patch: &Patch,
    revision: Option<u64>,
) -> Durable {
    // A point's own record carries the id after it without holding it: the
    // id can still be given back if that record never lands.
    let next_snapshot_id = match patch {
        Patch::PushPoint(_) => inner.next_snapshot.peek(),
        _ => inner.next_snapshot.capture(),
    };
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
        // Deleting the record loses its revision and its hint of handed-out
        // snapshot ids: the meta keeps them, the removal's revision included.
        (Patch::Remove(_), Some(_)) => Durable::Delete {
            meta: Some(Meta {
                next_snapshot_id,
                next_revision: revision.map_or_else(|| inner.peek_revision(), |r| r + 1),
            }),
        },
        _ => Durable::Delete { meta: None },
    }
}

/// Applies `patch` to `id`, keeping counts, counters and events in step, and
/// returns what it replaced, for the caller to drop outside the section, and
/// the state it committed. A commit takes its revision here (in memory) or
/// comes with the one it was `decided` with (through a storage).
#[must_use]
pub(crate) fn install(
    inner: &Inner,
    shard: &Shard,
    map: &mut Map,
    id: &str,
    patch: Patch,
    decided: Option<u64>,
) -> (Replaced, Option<Arc<ContextState>>) {
    match patch {
        Patch::Insert(mut entry) => {
            shard.note_expiry(entry.state.expires_at_ms);
            let version = entry.state.version;
            let revision = inner.commit(decided, |revision| ContextEvent::Created {
                id: id.to_owned(),
                version,
                revision,
            });
            stamp(&mut entry.state, revision);
            let state = Arc::clone(&entry.state);
            map.insert(id.to_owned(), entry);
            inner.counters.creates.fetch_add(1, Ordering::Relaxed);
            (Replaced::Nothing, Some(state))
        }
        Patch::SetState {
            mut state,
            ttl_ms,
            restored,
        } => {
            let Some(entry) = map.get_mut(id) else {
                return (Replaced::Nothing, None);
            };
            shard.note_expiry(state.expires_at_ms);
            let version = state.version;
            let revision = inner.commit(decided, |revision| {
                let id = id.to_owned();
                if restored {
                    ContextEvent::Restored {
                        id,
                        version,
                        revision,
                    }
                } else {
                    ContextEvent::Updated {
                        id,
                        version,
                        revision,
                    }
                }
            });
            stamp(&mut state, revision);
            let old = std::mem::replace(&mut entry.state, Arc::clone(&state));
            entry.set_ttl_ms(ttl_ms);
            entry.touched = inner.next_touch();
            inner.counters.updates.fetch_add(1, Ordering::Relaxed);
            (Replaced::State(old), Some(state))
        }
        Patch::PushPoint(point) => {
            let Some(entry) = map.get_mut(id) else {
                return (Replaced::Nothing, None);
            };
            let points = entry.points_mut();
            points.push_back(point);
            let mut oldest = None;
            while points.len() > inner.cfg.max_recovery_points {
                oldest = points.pop_front();
            }
            (oldest.map_or(Replaced::Nothing, Replaced::Point), None)
        }
        Patch::Remove(why) => {
            let removed = inner.remove(map, id, why, decided);
            (removed.map_or(Replaced::Nothing, Replaced::Entry), None)
        }
    }
}

/// Makes memory agree with what storage holds for `id` after a write whose
/// outcome is unknown, giving back what the write reserved. A change it
/// publishes is the write's commit and carries the write's revision (a fresh
/// one if it had none); a state installed keeps the revision it was stored with.
fn reconcile(
    inner: &Inner,
    shard: &Shard,
    map: &mut Map,
    id: &str,
    found: Option<Record>,
    reserved: Reserved,
) {
    if reserved.slot {
        inner.release_slot();
    }
    if let Some(point) = reserved.point
        && !found
            .as_ref()
            .is_some_and(|r| r.points.iter().any(|p| p.id == point))
    {
        inner.next_snapshot.give_back(point);
    }
    // The revision tells a state apart from another of the same version (a
    // context deleted and created again).
    let before = map.get(id).map(|e| (e.state.version, e.state.revision));
    match found {
        Some(record) => {
            let version = record.state.version;
            inner.cover_revision(record.state.revision);
            if before == Some((version, record.state.revision)) {
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
            // A state that has expired already is no news: a sweep removes it.
            let live = !entry.state.is_expired_at(inner.now());
            map.insert(id.to_owned(), entry);
            if !live {
                return;
            }
            inner.commit(reserved.revision, |revision| match before {
                None => ContextEvent::Created {
                    id: id.to_owned(),
                    version,
                    revision,
                },
                Some(_) => ContextEvent::Updated {
                    id: id.to_owned(),
                    version,
                    revision,
                },
            });
        }
        None => {
            inner.remove(map, id, Removal::Deleted, reserved.revision);
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
