//! Expiry and eviction: lazy invisibility, touches and sliding reads,
//! sweeps, and shrinking to a lowered capacity.

use crate::backend::{Backend, memory};
use crate::store::{Inner, Map, Removal, Shard};
use crate::sync::Ordering;
use crate::write::Patch;
use crate::{ContextError, ContextManager, ContextState, Result};
use std::sync::Arc;

impl ContextManager {
    /// Restarts `id`'s TTL from now (the same version and revision, no
    /// event), decided and applied in one section of its shard: the touch of
    /// `touch_context` and of sliding gets.
    pub(crate) async fn touch(&self, id: &str) -> Result<Arc<ContextState>> {
        in_shared_mode!(self.inner, shared => {
            return shared.touch(&self.inner, id).await;
        });
        // A touch that would change nothing (no TTL, or the deadline it would
        // set is the one there) is a read: no copy, no storage write. Its
        // plan ends the write with the state as it is.
        let mut unchanged = None;
        let touched = self
            .write_state(id, &mut |inner, _, map| {
                // (Decided again if the write machinery asks: only the last
                // decision counts.)
                unchanged = None;
                let now = inner.now();
                let entry = inner
                    .live_mut(map, id, now)
                    .ok_or_else(|| ContextError::not_found(id))?;
                let deadline = Inner::expires_at(now, entry.ttl_ms());
                if deadline == entry.state.expires_at_ms {
                    unchanged = Some(Arc::clone(&entry.state));
                    return Err(ContextError::not_found(id));
                }
                let mut state = ContextState::clone(&entry.state);
                state.expires_at_ms = deadline;
                Ok(Patch::Touch(Arc::new(state)))
            })
            .await;
        match unchanged {
            Some(state) => Ok(state),
            None => touched,
        }
    }

    /// Removes every expired context (with an `Expired` event each) and returns
    /// how many. Each context is re-checked inside its shard's write section, so
    /// a context refreshed by a concurrent update survives. Shards with nothing
    /// due are skipped without locking.
    ///
    /// A shared backend that fails counts 0 here:
    /// [`try_cleanup_expired`](Self::try_cleanup_expired) reports the failure.
    ///
    /// ```
    /// use contextkit_core::{ContextManager, CreateOptions, ManagerConfig, ManualClock};
    /// # futures::executor::block_on(async {
    /// let clock = ManualClock::new(0);
    /// let m = ContextManager::builder(ManagerConfig::default()).clock(clock.clone()).build();
    /// let opts = CreateOptions { ttl_ms: Some(10), ..Default::default() };
    /// m.create_context_with("a", serde_json::json!({}), opts).await.unwrap();
    /// clock.advance(10);
    /// assert_eq!(m.get_context("a").await.unwrap_err().code(), "NOT_FOUND");
    /// assert_eq!(m.cleanup_expired().await, 1);
    /// # });
    /// ```
    pub async fn cleanup_expired(&self) -> usize {
        self.sweep_expired().await
    }

    /// [`cleanup_expired`](Self::cleanup_expired) that reports a failure of
    /// a shared backend (`STORAGE`) instead of counting 0.
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let m = ContextManager::new(ManagerConfig::default());
    /// assert_eq!(m.try_cleanup_expired().await?, 0);
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    pub async fn try_cleanup_expired(&self) -> Result<usize> {
        in_shared_mode!(self.inner, shared => {
            return shared.sweep(&self.inner).await;
        });
        Ok(self.sweep_expired().await)
    }

    pub(crate) fn may_have_expired(&self, now: u64) -> bool {
        self.inner.shards.iter().any(|s| s.may_have_expired(now))
    }

    /// Removes every expired context, the way the backend does.
    pub(crate) async fn sweep_expired(&self) -> usize {
        match self.backend().await {
            Backend::Owned(owned) => owned.sweep_expired(self).await,
            Backend::Memory => memory::sweep_expired(&self.inner).await,
            #[cfg(feature = "shared")]
            Backend::Shared(shared) => shared.sweep(&self.inner).await.unwrap_or_default(),
        }
    }

    /// Sets the capacity an adapter imposes (the smaller of it and the config wins).
    pub(crate) fn set_capacity_limit(&self, limit: usize) {
        let limit = limit.min(self.inner.cfg.max_contexts);
        self.inner.limit.store(limit, Ordering::SeqCst);
    }

    /// Evicts least recently written contexts until at most the capacity in
    /// force remain; expired ones are swept first and do not count.
    pub(crate) async fn evict_to_capacity(&self) -> usize {
        let inner = &*self.inner;
        in_shared_mode!(inner, shared => {
            let capacity = inner.limit.load(Ordering::SeqCst);
            return shared.evict(inner, capacity).await.unwrap_or_default();
        });
        let mut evicted = 0;
        loop {
            self.sweep_expired().await;
            let over = |c: usize| c.saturating_sub(inner.limit.load(Ordering::SeqCst));
            let excess = over(inner.count.load(Ordering::SeqCst));
            if excess == 0 {
                return evicted;
            }
            let mut candidates: Vec<(u64, String)> = Vec::new();
            for shard in inner.shards.iter() {
                shard
                    .map
                    .read(|map| {
                        candidates.extend(map.iter().map(|(id, e)| (e.touched, id.clone())));
                    })
                    .await;
            }
            let order = ascending(candidates.iter().map(|c| c.0));
            let before = evicted;
            for (touched, i) in order.into_iter().take(excess) {
                if over(inner.count.load(Ordering::SeqCst)) == 0 {
                    break;
                }
                // Evict only if nobody wrote it since it was picked.
                let gone = self
                    .remove_picked(&candidates[i].1, Removal::Evicted, touched)
                    .await;
                evicted += usize::from(gone);
            }
            if evicted == before && over(inner.count.load(Ordering::SeqCst)) > 0 {
                // Nothing could be evicted this round (storage failing): stop here.
                return evicted;
            }
        }
    }

    /// Removes `id` through the storage if it is still what the caller picked
    /// it for: expired now, or for an eviction not written since it was picked
    /// (`touched`). One write path serves both, so it exists once in the binary.
    pub(crate) async fn remove_picked(&self, id: &str, why: Removal, touched: u64) -> bool {
        self.write_through(id, |inner, _, map| match map.get(id) {
            Some(e)
                if match why {
                    Removal::Evicted => e.touched == touched,
                    _ => e.state.is_expired_at(inner.now()),
                } =>
            {
                Ok((Patch::Remove(why), ()))
            }
            _ => Err(ContextError::not_found(id)),
        })
        .await
        .is_ok()
    }
}

/// The positions of `keys` in ascending order of key, each with its key
/// (ties keep their order). A heap sort: the few places that order things by
/// a number share this one small routine instead of a quicksort each.
pub(crate) fn ascending(keys: impl Iterator<Item = u64>) -> Vec<(u64, usize)> {
    let pairs: Vec<(u64, usize)> = keys.enumerate().map(|(i, k)| (k, i)).collect();
    std::collections::BinaryHeap::from(pairs).into_sorted_vec()
}

impl Inner {
    /// Makes the shard's earliest expiry exact, inside its write section
    /// (every write to the shard happens under that lock).
    pub(crate) fn refresh_earliest(&self, shard: &Shard, map: &Map) {
        let earliest = map.values().filter_map(|e| e.state.expires_at_ms).min();
        shard
            .earliest_expiry
            .store(earliest.unwrap_or(u64::MAX), Ordering::SeqCst);
    }
}
