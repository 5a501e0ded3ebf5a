//! The owned-storage backend: a write is decided in its shard's critical
//! section, made durable in the storage, then applied. Everything a storage
//! adds to the in-memory store lives here: the pending writes per id (reads
//! of an id wait for its write), the writes whose outcome is unknown (read
//! back by the next call) and the creates whose slot is taken but whose
//! context is not in memory yet. The path of one write is in `owned/persist.rs`.

mod persist;

use crate::Storage;
use crate::store::{Inner, Map, Removal, Shard};
use crate::sync::{AtomicUsize, Mutex, MutexGuard, Ordering};
use crate::{ContextError, ContextManager, ContextState, Result};
use event_listener::Event;
use persist::{PendingWrite, wait_for};
use std::collections::HashMap;
use std::sync::{Arc, PoisonError};

/// A manager's storage and the bookkeeping of its writes.
#[derive(Debug)]
pub(crate) struct Owned {
    pub(crate) storage: Arc<dyn Storage>,
    /// One per shard, at the shard's index.
    lanes: Box<[Lane]>,
    /// Storage writes whose outcome is unknown (a dropped future, a failed
    /// write that could not be read back) and not yet read back.
    abandoned: AtomicUsize,
    /// Creates whose storage write is in progress (their slots are taken,
    /// their contexts not yet in a map, so no sweep can reach them).
    pub(crate) creating: AtomicUsize,
    /// Notified whenever the storage write of one of those ends.
    pub(crate) create_ended: Event,
}

/// The pending writes of one shard.
#[derive(Debug)]
struct Lane {
    /// Ids with a pending storage write (in progress, or abandoned and not
    /// yet read back). Changed only inside the shard's write section, read
    /// inside its sections: the mutex only lets readers look while they
    /// share the shard's lock.
    pending: Mutex<HashMap<String, Arc<PendingWrite>, ahash::RandomState>>,
    /// Notified whenever a storage write of this shard ends (resolved or
    /// abandoned).
    write_ended: Event,
}

impl Lane {
    fn pending(&self) -> MutexGuard<'_, HashMap<String, Arc<PendingWrite>, ahash::RandomState>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The storage write of `id` in progress, if any. Reads of `id` wait for
    /// it, so none sees the old state after a call that saw the new one.
    fn writing(&self, id: &str) -> Option<Arc<PendingWrite>> {
        let pending = self.pending();
        if pending.is_empty() {
            return None;
        }
        pending.get(id).filter(|w| w.in_progress()).cloned()
    }
}

impl Owned {
    pub(crate) fn new(
        storage: Arc<dyn Storage>,
        shards: usize,
        hasher: &ahash::RandomState,
    ) -> Self {
        Self {
            storage,
            lanes: (0..shards)
                .map(|_| Lane {
                    pending: Mutex::new(HashMap::with_hasher(hasher.clone())),
                    write_ended: Event::new(),
                })
                .collect(),
            abandoned: AtomicUsize::new(0),
            creating: AtomicUsize::new(0),
            create_ended: Event::new(),
        }
    }

    /// The shard and the lane of `id` (hashed once).
    fn place<'a>(&'a self, inner: &'a Inner, id: &str) -> (&'a Shard, &'a Lane) {
        self.place_at(inner, inner.shard_index(id))
    }

    /// The shard and the lane at `at`.
    fn place_at<'a>(&'a self, inner: &'a Inner, at: usize) -> (&'a Shard, &'a Lane) {
        (&inner.shards[at], &self.lanes[at])
    }
}

impl Owned {
    /// The entry point of every call through the storage (see
    /// [`ContextManager::backend`]): each write whose outcome is unknown is
    /// read back first, so memory shows what storage holds.
    pub(crate) async fn enter(&self, inner: &Inner) {
        if self.abandoned.load(Ordering::SeqCst) != 0 {
            Box::pin(self.read_back_abandoned(inner)).await;
        }
    }

    /// With a storage, each expired context is deleted from it before it leaves memory.
    pub(crate) async fn sweep_expired(&self, m: &ContextManager) -> usize {
        let inner = &*m.inner;
        let start = inner.now();
        let mut removed = 0;
        for shard in inner.shards.iter().filter(|s| s.may_have_expired(start)) {
            let due: Vec<String> = shard
                .map
                .write(|map| {
                    let now = inner.now();
                    // Exact again (an update may have moved the earliest expiry
                    // later): what is due stays in it until it is removed.
                    inner.refresh_earliest(shard, map);
                    map.iter()
                        .filter(|(_, e)| e.state.is_expired_at(now))
                        .map(|(id, _)| id.clone())
                        .collect()
                })
                .await;
            for id in due {
                let expired = m.remove_picked(&id, Removal::Expired, 0).await;
                removed += usize::from(expired);
            }
        }
        removed
    }

    /// Creates `id` with `state`. Full means full once expired contexts are
    /// gone: they leave by a storage delete, in a sweep, and the create
    /// tries again.
    pub(crate) async fn create(
        &self,
        m: &ContextManager,
        id: &str,
        state: ContextState,
        ttl_ms: Option<u64>,
    ) -> Result<Arc<ContextState>> {
        let inner = &*m.inner;
        let mut initial = Some(state);
        let creating = || self.creating.load(Ordering::SeqCst) > 0;
        let mut swept_nothing = false;
        loop {
            let mut full_at = None;
            let attempt = m
                .write_state(id, &mut |inner, shard, map| {
                    super::decide_create(inner, shard, map, id, &mut initial, ttl_ms, &mut full_at)
                })
                .await;
            let Err(ContextError::CapacityExceeded { .. }) = attempt else {
                return attempt;
            };
            // The answer stands only if, at one instant after the attempt,
            // nothing counted may have expired and no context came or went
            // since the attempt: then every one it counted was live at that
            // instant. Otherwise try again.
            //
            // A create still being written holds its slot, but its context
            // is in no map: a sweep of its shard in the meantime makes the
            // shard's earliest expiry exact for the contexts in the map,
            // forgetting the create's. So whenever creates are being
            // written, wait for their writes to end (their expiries are noted
            // again) and look again. Checking for expiry before and after
            // reading `creating` covers a create that took its slot and is
            // still in its section.
            let t0 = inner.now();
            if m.may_have_expired(t0) {
                let ended = self.create_ended.listen();
                if creating() {
                    ended.await;
                    swept_nothing = false;
                    continue;
                }
                // A sweep that removed nothing while nothing came or went,
                // and left behind what was due when it began, met a storage
                // failing to delete: it is not repeated.
                if !swept_nothing {
                    let before = inner.count.word();
                    let removed = m.sweep_expired().await;
                    swept_nothing =
                        removed == 0 && inner.count.word() == before && m.may_have_expired(t0);
                    continue;
                }
            } else {
                if creating() {
                    let ended = self.create_ended.listen();
                    if creating() {
                        ended.await;
                    }
                    continue;
                }
                if m.may_have_expired(inner.now()) {
                    continue;
                }
            }
            if full_at.is_none_or(|word| word == inner.count.word()) {
                return attempt;
            }
        }
    }

    /// Reads back every id whose storage write has an unknown outcome, so
    /// that memory (contexts, capacity, recovery-point ids) shows what storage
    /// holds. Best effort: an id storage cannot answer for stays marked.
    async fn read_back_abandoned(&self, inner: &Inner) {
        for (shard, lane) in inner.shards.iter().zip(self.lanes.iter()) {
            let ids: Vec<String> = shard
                .map
                .read(|_| {
                    lane.pending()
                        .iter()
                        .filter(|(_, w)| w.abandoned.load(Ordering::SeqCst))
                        .map(|(id, _)| id.clone())
                        .collect()
                })
                .await;
            for id in ids {
                let _ = self.persist(inner, &id, None).await;
            }
        }
    }

    /// Reads `id`'s shard (at `at`) with `f`, once a write of `id` in
    /// progress has ended, so no read sees the old state after another call
    /// saw the new one.
    pub(crate) async fn read_id<R>(
        &self,
        inner: &Inner,
        at: usize,
        id: &str,
        mut f: impl FnMut(&Map) -> R,
    ) -> R {
        let (shard, lane) = self.place_at(inner, at);
        loop {
            let read = shard
                .map
                .read(|map| {
                    if let Some(pending) = lane.writing(id) {
                        return Err((pending, lane.write_ended.listen()));
                    }
                    Ok(f(map))
                })
                .await;
            match read {
                Ok(r) => return r,
                Err((pending, ended)) => wait_for(pending, ended).await,
            }
        }
    }
}
