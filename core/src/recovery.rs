//! Recovery points: snapshots of a context that can be restored.

use crate::storage::SnapshotRecord;
use crate::write::Patch;
use crate::{ContextError, ContextManager, ContextState, Result, Snapshot, validate};
use std::sync::Arc;

fn snapshot(snapshot_id: u64, created_at_ms: u64, state: &ContextState) -> Snapshot {
    Snapshot {
        id: snapshot_id,
        context_id: state.id.clone(),
        version: state.version,
        created_at_ms,
        data: state.data.clone(),
    }
}

impl ContextManager {
    /// Snapshots the current version of `id`. Only the newest
    /// `max_recovery_points` are kept; `CAPACITY_EXCEEDED` when that is 0.
    /// The context does not change, so this takes no revision and publishes
    /// no event.
    ///
    /// ```
    /// use contextkit_core::{ContextManager, ManagerConfig};
    /// use serde_json::json;
    /// # futures::executor::block_on(async {
    /// let m = ContextManager::new(ManagerConfig::default());
    /// m.create_context("a", json!({ "step": 1 })).await?;
    /// let snapshot = m.create_recovery_point("a").await?;
    /// m.update_context("a", json!({ "step": 2 }), None).await?;
    /// let s = m.restore_recovery_point("a", snapshot.id).await?;
    /// assert_eq!((s.version, s.data.value().clone()), (3, json!({ "step": 1 })));
    /// # Ok::<(), contextkit_core::ContextError>(())
    /// # }).unwrap();
    /// ```
    pub async fn create_recovery_point(&self, id: &str) -> Result<Snapshot> {
        in_shared_mode!(self.inner, shared => {
            self.check_recovery_point(id)?;
            return shared.recovery_point(&self.inner, id).await;
        });
        let (snapshot_id, now, state) = self.take_recovery_point(id).await?;
        Ok(snapshot(snapshot_id, now, &state))
    }

    /// A recovery point of `id` whose copy of the data nobody needs (a tracker's).
    pub(crate) async fn add_recovery_point(&self, id: &str) -> Result<()> {
        in_shared_mode!(self.inner, _shared => {
            return self.create_recovery_point(id).await.map(drop);
        });
        self.take_recovery_point(id).await.map(drop)
    }

    #[cfg(feature = "shared")]
    fn check_recovery_point(&self, id: &str) -> Result<()> {
        validate::id(&self.inner.cfg, id)?;
        if self.inner.cfg.max_recovery_points == 0 {
            return Err(ContextError::capacity("recovery points per context", 0));
        }
        Ok(())
    }

    /// [`create_recovery_point`](Self::create_recovery_point) without the copy
    /// of the data a `Snapshot` carries: the snapshot's id, its time and the
    /// state it shares.
    pub(crate) async fn take_recovery_point(
        &self,
        id: &str,
    ) -> Result<(u64, u64, Arc<ContextState>)> {
        let inner = &*self.inner;
        validate::id(&inner.cfg, id)?;
        let max = inner.cfg.max_recovery_points;
        if max == 0 {
            return Err(ContextError::capacity("recovery points per context", 0));
        }
        self.write_through(id, |inner, _, map| {
            // The id is taken with a compare-and-set after reading the
            // clock: ids grow in the order the snapshots take effect, each
            // with the clock of that moment. Taken inside the section: ids
            // grow in commit order per context.
            if inner.next_snapshot.peek() >= validate::MAX_COUNTER {
                return Err(ContextError::capacity(
                    "recovery point ids",
                    usize::try_from(validate::MAX_COUNTER).unwrap_or(usize::MAX),
                ));
            }
            let taken = inner.next_snapshot.take(|_| {
                let now = inner.now();
                let live = map.get(id).is_some_and(|e| !e.state.is_expired_at(now));
                live.then_some(now)
            });
            let Some((snapshot_id, now)) = taken else {
                // Absent or expired (an expired one is dropped here).
                inner.live_mut(map, id, inner.now());
                return Err(ContextError::not_found(id));
            };
            let entry = inner
                .live_mut(map, id, now)
                .ok_or_else(|| ContextError::not_found(id))?;
            let state = Arc::clone(&entry.state);
            let snapshot = SnapshotRecord {
                id: snapshot_id,
                created_at_ms: now,
                state: Arc::clone(&state),
            };
            Ok((Patch::PushSnapshot(snapshot), (snapshot_id, now, state)))
        })
        .await
    }

    /// The recovery points of `id`, oldest first. `NOT_FOUND` if `id` is absent or expired.
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let m = ContextManager::new(ManagerConfig::default());
    /// m.create_context("a", json!({})).await?;
    /// let snapshot = m.create_recovery_point("a").await?;
    /// assert_eq!(m.recovery_points("a").await?, vec![snapshot]);
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    pub async fn recovery_points(&self, id: &str) -> Result<Vec<Snapshot>> {
        let inner = &*self.inner;
        validate::id(&inner.cfg, id)?;
        in_shared_mode!(inner, shared => {
            return shared.recovery_points(id).await;
        });
        let snapshots = self
            .read_id(inner.shard_index(id), id, |map| {
                let now = inner.now();
                map.get(id)
                    .filter(|e| !e.state.is_expired_at(now))
                    .map(|entry| {
                        entry
                            .snapshots()
                            .iter()
                            .map(|s| (s.id, s.created_at_ms, Arc::clone(&s.state)))
                            .collect::<Vec<_>>()
                    })
            })
            .await
            .ok_or_else(|| ContextError::not_found(id))?;
        Ok(snapshots
            .iter()
            .map(|(sid, at, state)| snapshot(*sid, *at, state))
            .collect())
    }

    /// Makes the data of recovery point `snapshot_id` the next version of `id`
    /// (version = current + 1, a `Restored` event). `NOT_FOUND` if either is gone.
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let m = ContextManager::new(ManagerConfig::default());
    /// m.create_context("a", json!({ "v": "good" })).await?;
    /// let snapshot = m.create_recovery_point("a").await?;
    /// m.update_context("a", json!({ "v": "bad" }), None).await?;
    /// let s = m.restore_recovery_point("a", snapshot.id).await?;
    /// assert_eq!((s.version, &s.data["v"]), (3, &json!("good")));
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    pub async fn restore_recovery_point(
        &self,
        id: &str,
        snapshot_id: u64,
    ) -> Result<Arc<ContextState>> {
        let inner = &*self.inner;
        validate::id(&inner.cfg, id)?;
        in_shared_mode!(inner, shared => {
            return shared.restore(inner, id, snapshot_id).await;
        });
        let source = self
            .read_id(inner.shard_index(id), id, |map| {
                let now = inner.now();
                map.get(id)
                    .filter(|e| !e.state.is_expired_at(now))
                    .ok_or_else(|| ContextError::not_found(id))?
                    .snapshots()
                    .iter()
                    .find(|s| s.id == snapshot_id)
                    .map(|s| Arc::clone(&s.state))
                    .ok_or_else(|| ContextError::recovery_point_not_found(id, snapshot_id))
            })
            .await?;
        // Copy outside the lock; the write below re-checks that the snapshot is still there.
        let mut data = Some(source.data.clone());
        self.write_state(id, &mut |inner, _, map| {
            let now = inner.now();
            let entry = inner
                .live_mut(map, id, now)
                .ok_or_else(|| ContextError::not_found(id))?;
            if !entry.snapshots().iter().any(|s| s.id == snapshot_id) {
                return Err(ContextError::recovery_point_not_found(id, snapshot_id));
            }
            let data = data.take().expect("a restore commits at most once");
            let state = inner.next_state(entry, data, now, entry.ttl_ms())?;
            Ok(Patch::SetState {
                state,
                ttl_ms: entry.ttl_ms(),
                restored: true,
            })
        })
        .await
    }
}
