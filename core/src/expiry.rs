//! Expiry and eviction: lazy invisibility, sweeps, and shrinking to a lowered capacity.

use crate::ContextError;
use crate::ContextManager;
use crate::store::{Inner, Map, Removal, Shard};
use crate::write::Patch;
use std::sync::atomic::Ordering;

impl ContextManager {
    /// Removes every expired context (with an `Expired` event each) and returns
    /// how many. Each context is re-checked inside its shard's write section, so
    /// a context refreshed by a concurrent update survives. Shards with nothing
    /// due are skipped without locking.
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

    pub(crate) fn may_have_expired(&self, now: u64) -> bool {
        self.inner.shards.iter().any(|s| s.may_have_expired(now))
    }

    /// Each shard is swept at the time it is locked; shards with nothing due
    /// when the sweep starts are skipped.
    pub(crate) async fn sweep_expired(&self) -> usize {
        if self.inner.storage.is_some() {
            return self.sweep_expired_through_storage().await;
        }
        let inner = &*self.inner;
        let start = inner.now();
        let mut removed = 0;
        for shard in inner.shards.iter().filter(|s| s.may_have_expired(start)) {
            removed += shard
                .map
                .write(|map| inner.sweep_shard(shard, map, inner.now()))
                .await;
        }
        removed
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
            if excess < candidates.len() {
                candidates.select_nth_unstable(excess - 1);
                candidates.truncate(excess);
            }
            candidates.sort_unstable();
            let before = evicted;
            for (touched, id) in candidates {
                if over(inner.count.load(Ordering::SeqCst)) == 0 {
                    break;
                }
                // Evict only if nobody wrote it since it was picked.
                let gone = self
                    .write_through(&id, |_, _, map| match map.get(&id) {
                        Some(e) if e.touched == touched => {
                            Ok((Patch::Remove(Removal::Evicted), ()))
                        }
                        _ => Err(ContextError::context_not_found(&id)),
                    })
                    .await
                    .is_ok();
                evicted += usize::from(gone);
            }
            if evicted == before && over(inner.count.load(Ordering::SeqCst)) > 0 {
                // Nothing could be evicted this round (storage failing): stop here.
                return evicted;
            }
        }
    }

    /// With a storage, each expired context is deleted from it before it leaves memory.
    async fn sweep_expired_through_storage(&self) -> usize {
        let inner = &*self.inner;
        let start = inner.now();
        let mut removed = 0;
        for shard in inner.shards.iter().filter(|s| s.may_have_expired(start)) {
            let due: Vec<String> = shard
                .map
                .read(|map| {
                    let now = inner.now();
                    map.iter()
                        .filter(|(_, e)| e.state.is_expired_at(now))
                        .map(|(id, _)| id.clone())
                        .collect()
                })
                .await;
            for id in due {
                let expired = self
                    .write_through(&id, |inner, _, map| match map.get(&id) {
                        Some(e) if e.state.is_expired_at(inner.now()) => {
                            Ok((Patch::Remove(Removal::Expired), ()))
                        }
                        _ => Err(ContextError::context_not_found(&id)),
                    })
                    .await
                    .is_ok();
                removed += usize::from(expired);
            }
        }
        removed
    }
}

impl Inner {
    /// Removes the expired contexts of one shard, inside its write section.
    pub(crate) fn sweep_shard(&self, shard: &Shard, map: &mut Map, now: u64) -> usize {
        let expired: Vec<String> = map
            .iter()
            .filter(|(_, e)| e.state.is_expired_at(now))
            .map(|(id, _)| id.clone())
            .collect();
        for id in &expired {
            self.remove(map, id, Removal::Expired);
        }
        // Exact again: every write to this shard happens under this lock.
        let earliest = map.values().filter_map(|e| e.state.expires_at_ms).min();
        shard
            .earliest_expiry
            .store(earliest.unwrap_or(u64::MAX), Ordering::SeqCst);
        expired.len()
    }
}
