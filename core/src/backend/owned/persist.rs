//! One write through the owned storage: decided in its shard's section,
//! made durable, then installed; or, when its outcome is unknown, read back
//! so that memory shows what storage holds.

use super::{Lane, Owned};
use crate::storage::{Meta, Record, SnapshotRecord};
use crate::store::{Entry, Inner, Map, Removal, Shard};
use crate::sync::{AtomicBool, Ordering};
use crate::write::{Patch, Plan, Replaced, entry_of, install, snapshots_of};
use crate::{ContextError, ContextEvent, ContextState, Result, validate};
use event_listener::EventListener;
use std::sync::Arc;

/// A storage write of one id that has begun and is not yet resolved (made
/// durable and installed, or read back). Writers of that id wait until it
/// ends; one whose outcome is unknown (its future was dropped, or storage
/// failed and could not be read back) is marked abandoned, and the next call
/// reads that id back from storage.
#[derive(Debug, Default)]
pub(crate) struct PendingWrite {
    pub(super) abandoned: AtomicBool,
    reserved: Reserved,
}

impl PendingWrite {
    /// Whether the write is still going (not abandoned).
    pub(super) fn in_progress(&self) -> bool {
        !self.abandoned.load(Ordering::SeqCst)
    }
}

/// Waits for `pending` to end through `ended`, a listener of its shard made
/// while the write was seen in progress. A write is abandoned (by a dropped
/// future) without the shard's lock: it is marked first and notified after,
/// so looking at the mark once the listener exists misses nothing.
pub(super) async fn wait_for(pending: Arc<PendingWrite>, ended: EventListener) {
    if pending.in_progress() {
        ended.await;
    }
}

/// What deciding a write took in advance: given back unless storage holds it.
#[derive(Debug, Default, Clone, Copy)]
struct Reserved {
    /// A capacity slot (a create).
    slot: bool,
    /// A recovery-point id.
    snapshot_id: Option<u64>,
    /// The revision of the commit (never published before storage holds the
    /// write; a read-back that publishes the change uses it).
    revision: Option<u64>,
}

/// Ends its pending write; marks it abandoned if dropped before the write
/// was resolved.
struct PendingWriteGuard<'a> {
    pending: Arc<PendingWrite>,
    owned: &'a Owned,
    lane: &'a Lane,
    shard: &'a Shard,
    resolved: bool,
}

impl Drop for PendingWriteGuard<'_> {
    fn drop(&mut self) {
        if !self.resolved {
            // Counted before it is marked: whoever sees the mark sees the count.
            self.owned.abandoned.fetch_add(1, Ordering::SeqCst);
            self.pending.abandoned.store(true, Ordering::SeqCst);
        }
        if self.pending.reserved.slot {
            self.owned.creating.fetch_sub(1, Ordering::SeqCst);
            self.owned.create_ended.notify(usize::MAX);
        }
        self.lane.write_ended.notify(usize::MAX);
    }
}

/// Inside `shard`'s section: `id` has a pending write until the returned
/// guard is resolved.
fn begin<'a>(
    owned: &'a Owned,
    lane: &'a Lane,
    shard: &'a Shard,
    id: &str,
    reserved: Reserved,
) -> PendingWriteGuard<'a> {
    if reserved.slot {
        owned.creating.fetch_add(1, Ordering::SeqCst);
    }
    let pending = Arc::new(PendingWrite {
        abandoned: AtomicBool::new(false),
        reserved,
    });
    lane.pending().insert(id.to_owned(), Arc::clone(&pending));
    PendingWriteGuard {
        pending,
        owned,
        lane,
        shard,
        resolved: false,
    }
}

enum Step<'a> {
    Done(Result<Option<Arc<ContextState>>>),
    Wait(Arc<PendingWrite>, EventListener),
    Persist(Box<Persist<'a>>),
    ReadBack(PendingWriteGuard<'a>),
}

/// A write decided through a storage: made durable, then installed.
struct Persist<'a> {
    guard: PendingWriteGuard<'a>,
    patch: Patch,
    durable: Durable,
    /// The commit's revision (`None` for a recovery point).
    revision: Option<u64>,
    /// The removal of an expired context the write met: decide the write
    /// again once it is done.
    expiry: bool,
}

/// What storage must hold before a patch is applied.
enum Durable {
    Put(Arc<Record>),
    Delete { meta: Option<Meta> },
}

impl Owned {
    /// One write of `id`: waits for a write of `id` in progress, reads back one
    /// abandoned, then decides with `plan` (nothing to decide without one),
    /// makes the change durable and applies it.
    ///
    /// An expired context stays in memory until storage no longer holds it:
    /// a write that fails on one (it is absent to every plan) removes it
    /// through storage first, with its `Expired` event, and is decided again.
    pub(crate) async fn persist(
        &self,
        inner: &Inner,
        id: &str,
        mut plan: Option<&mut Plan<'_>>,
    ) -> Result<Option<Arc<ContextState>>> {
        let (shard, lane) = self.place(inner, id);
        loop {
            let step = shard
                .map
                .write(|map| {
                    let pending = lane.pending().get(id).cloned();
                    if let Some(pending) = pending {
                        if pending.in_progress() {
                            return Step::Wait(pending, lane.write_ended.listen());
                        }
                        let reserved = pending.reserved;
                        self.abandoned.fetch_sub(1, Ordering::SeqCst);
                        return Step::ReadBack(begin(self, lane, shard, id, reserved));
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
                        snapshot_id: match &patch {
                            Patch::PushSnapshot(s) => Some(s.id),
                            _ => None,
                        },
                        revision,
                    };
                    let guard = begin(self, lane, shard, id, reserved);
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
                Step::Wait(pending, ended) => wait_for(pending, ended).await,
                Step::Persist(decided) => {
                    let Persist {
                        mut guard,
                        patch,
                        durable,
                        revision,
                        expiry,
                    } = *decided;
                    let storage = &self.storage;
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
                        let _ = self.read_back(inner, id, guard).await;
                        return Err(as_storage_error(e));
                    }
                    let (replaced, state) = shard
                        .map
                        .write(|map| {
                            lane.pending().remove(id);
                            install(inner, shard, map, id, patch, revision)
                        })
                        .await;
                    guard.resolved = true;
                    drop::<Replaced>(replaced);
                    if !expiry {
                        return Ok(state);
                    }
                }
                Step::ReadBack(guard) => self.read_back(inner, id, guard).await?,
            }
        }
    }

    /// Makes memory hold what storage holds for `id` after a write whose
    /// outcome is unknown, and resolves its pending write. Dropping the
    /// future or failing leaves the write abandoned.
    async fn read_back(
        &self,
        inner: &Inner,
        id: &str,
        mut guard: PendingWriteGuard<'_>,
    ) -> Result<()> {
        let found = self.storage.get(id).await.map_err(as_storage_error)?;
        if let Some(record) = &found {
            validate::stored(&inner.cfg, record)
                .and_then(|()| match record.state.id == id {
                    true => Ok(()),
                    false => Err(ContextError::storage(format!(
                        "get('{id}') returned the record of '{}'",
                        record.state.id
                    ))),
                })
                .map_err(|e| ContextError::storage(format!("stored record '{id}': {e}")))?;
        }
        let (shard, lane) = (guard.shard, guard.lane);
        let reserved = guard.pending.reserved;
        shard
            .map
            .write(|map| {
                lane.pending().remove(id);
                reconcile(inner, shard, map, id, found, reserved);
            })
            .await;
        guard.resolved = true;
        Ok(())
    }
}

fn as_storage_error(e: ContextError) -> ContextError {
    match e {
        ContextError::Storage { .. } => e,
        other => ContextError::storage(other.to_string()),
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
    // A snapshot's own record carries the id after it without holding it:
    // the id can still be given back if storage never holds that record.
    let next_snapshot_id = match patch {
        Patch::PushSnapshot(_) => inner.next_snapshot.peek(),
        _ => inner.next_snapshot.capture(),
    };
    let record = |state: &Arc<ContextState>,
                  ttl_ms,
                  snapshots: &mut dyn Iterator<Item = &SnapshotRecord>| {
        Durable::Put(Arc::new(Record {
            state: Arc::clone(state),
            ttl_ms,
            snapshots: snapshots.cloned().collect(),
            next_snapshot_id,
        }))
    };
    match (patch, before) {
        (Patch::Insert(e), _) => record(&e.state, e.ttl_ms(), &mut e.snapshots().iter()),
        (Patch::SetState { state, ttl_ms, .. }, Some(e)) => {
            record(state, *ttl_ms, &mut e.snapshots().iter())
        }
        (Patch::Touch(state), Some(e)) => record(state, e.ttl_ms(), &mut e.snapshots().iter()),
        (Patch::PushSnapshot(s), Some(e)) => {
            let keep = inner.cfg.max_recovery_points;
            let all: Vec<&SnapshotRecord> =
                e.snapshots().iter().chain(std::iter::once(s)).collect();
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
    if let Some(snapshot_id) = reserved.snapshot_id
        && !found
            .as_ref()
            .is_some_and(|r| r.snapshots.iter().any(|s| s.id == snapshot_id))
    {
        inner.next_snapshot.give_back(snapshot_id);
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
                    e.set_snapshots(snapshots_of(&record));
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
            map.insert(entry);
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
