//! How a write takes effect: a plan decides a [`Patch`] inside the context's
//! shard section and [`install`] applies it, in the same section in memory,
//! or once storage holds it through an owned storage (`backend/owned.rs`).

use crate::backend::{Backend, memory};
use crate::storage::SnapshotRecord;
use crate::storage::{MaybeSend, Record};
use crate::store::{Entry, Inner, Map, Removal, Shard};
use crate::sync::Ordering;
use crate::{ContextEvent, ContextManager, ContextState, Result};
use std::collections::VecDeque;
use std::sync::Arc;

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
    PushSnapshot(SnapshotRecord),
    /// The same version with its expiry restarted.
    Touch(Arc<ContextState>),
    /// The context leaves the store.
    Remove(Removal),
}

impl Patch {
    /// Whether applying it is a commit, which takes a revision: all but a
    /// recovery point or a touch, which leave the version as it is.
    pub(crate) fn is_commit(&self) -> bool {
        !matches!(self, Self::PushSnapshot(_) | Self::Touch(_))
    }

    /// Writes `revision` into the state the patch commits.
    pub(crate) fn stamp(&mut self, revision: u64) {
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

/// How a write decides its patch (`Send` where futures must be).
#[cfg(not(target_arch = "wasm32"))]
pub(crate) type Plan<'a> = dyn FnMut(&Inner, &Shard, &mut Map) -> Result<Patch> + Send + 'a;
#[cfg(target_arch = "wasm32")]
pub(crate) type Plan<'a> = dyn FnMut(&Inner, &Shard, &mut Map) -> Result<Patch> + 'a;

/// What a write replaced or removed. It is dropped after the write's section
/// has ended, so freeing a large context never holds a shard's lock.
#[derive(Debug)]
pub(crate) enum Replaced {
    Nothing,
    State(#[allow(dead_code)] Arc<ContextState>),
    Entry(#[allow(dead_code)] Entry),
    Snapshot(#[allow(dead_code)] SnapshotRecord),
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
        // (A shared manager hands every write to its backend before this.)
        if let Backend::Owned(owned) = self.backend().await {
            return owned.persist(inner, id, Some(plan)).await;
        }
        memory::write(inner, id, plan).await
    }

    /// Reads `id`'s shard, at `at` ([`Inner::shard_index`]), with `f`.
    /// Through a storage, a write of `id` in progress is waited for first, so
    /// no read sees the old state after another call saw the new one.
    pub(crate) async fn read_id<R>(&self, at: usize, id: &str, f: impl FnMut(&Map) -> R) -> R {
        let inner = &*self.inner;
        if let Backend::Owned(owned) = &inner.backend {
            owned.enter(inner).await;
            return owned.read_id(inner, at, id, f).await;
        }
        inner.shards[at].map.read(f).await
    }

    /// Reads every shard in turn with `f`, each atomically (as of some
    /// moment per shard).
    pub(crate) async fn scan(&self, f: impl FnMut(&Map)) {
        // Over an owned storage, writes with an unknown outcome are read back first.
        self.backend().await;
        self.scan_shards(f).await;
    }

    /// [`scan`](Self::scan) for a caller that went through
    /// [`backend`](Self::backend) already.
    pub(crate) async fn scan_shards(&self, mut f: impl FnMut(&Map)) {
        for shard in self.inner.shards.iter() {
            shard.map.read(&mut f).await;
        }
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
            map.insert(entry);
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
        Patch::Touch(state) => {
            let Some(entry) = map.get_mut(id) else {
                return (Replaced::Nothing, None);
            };
            shard.note_expiry(state.expires_at_ms);
            let old = std::mem::replace(&mut entry.state, Arc::clone(&state));
            (Replaced::State(old), Some(state))
        }
        Patch::PushSnapshot(snapshot) => {
            let Some(entry) = map.get_mut(id) else {
                return (Replaced::Nothing, None);
            };
            let snapshots = entry.snapshots_mut();
            snapshots.push_back(snapshot);
            let mut oldest = None;
            while snapshots.len() > inner.cfg.max_recovery_points {
                oldest = snapshots.pop_front();
            }
            (oldest.map_or(Replaced::Nothing, Replaced::Snapshot), None)
        }
        Patch::Remove(why) => {
            let removed = inner.remove(map, id, why, decided);
            (removed.map_or(Replaced::Nothing, Replaced::Entry), None)
        }
    }
}

/// The recovery points of a stored record.
pub(crate) fn snapshots_of(record: &Record) -> VecDeque<SnapshotRecord> {
    record.snapshots.iter().cloned().collect()
}

/// The in-memory entry of a stored record.
pub(crate) fn entry_of(inner: &Inner, record: Record) -> Entry {
    let snapshots = snapshots_of(&record);
    Entry::new(record.state, record.ttl_ms, inner.next_touch(), snapshots)
}
