//! Pushing a tracker's working copy back to the store.

use super::ContextTracker;
use crate::sync::Ordering;
use crate::{ConflictPolicy, ContextError, ContextState, Result, Snapshot, UpdateOptions};
use std::sync::Arc;

/// What a sync read from the working copy before pushing it.
struct Pending {
    id: String,
    /// The stored state the pushed copy was based on.
    base: Arc<ContextState>,
    base_version: u64,
    local: Arc<ContextState>,
    edits: u64,
    generation: u64,
}

impl ContextTracker {
    /// Pushes local edits with `expected_version` = the version they were based
    /// on, and only onto the very state they were based on (its revision: a
    /// context deleted and created again since, at the same version, is a
    /// conflict too). On a conflict it applies the [`ConflictPolicy`]; with `auto_recovery`
    /// it makes a recovery point after each successful push. A clean copy
    /// returns its state without writing. Edits made while a sync is in flight
    /// stay dirty, rebased on the pushed version.
    ///
    /// A push that committed returns `Ok` even when its automatic recovery
    /// point cannot be taken (`max_recovery_points` is 0, the context was
    /// deleted meanwhile, the storage failed): the tracker counts it in
    /// [`missed_recovery_points`](Self::missed_recovery_points) instead.
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let m = ContextManager::new(ManagerConfig::default());
    /// m.create_context("a", json!({ "n": 1 })).await?;
    /// let t = ContextTracker::new(m.clone(), TrackerConfig::default());
    /// t.activate_context("a").await?;
    /// t.update_state(json!({ "n": 2 })).await?;
    /// assert_eq!(t.sync_state().await?.version, 2);
    /// assert_eq!(m.get_context("a").await?.data["n"], 2);
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    pub async fn sync_state(&self) -> Result<Arc<ContextState>> {
        let manager = &self.shared.manager;
        let mut expected_from_base = true;
        loop {
            let pending = self
                .shared
                .work
                .read(|w| {
                    let a = w
                        .active
                        .as_ref()
                        .ok_or_else(|| ContextError::NotActive { id: None })?;
                    Ok::<_, ContextError>(match &a.local {
                        None => Err(Arc::clone(&a.base)),
                        Some(local) => Ok(Pending {
                            id: a.base.id.clone(),
                            base: Arc::clone(&a.base),
                            base_version: a.base.version,
                            local: Arc::clone(local),
                            edits: a.edits,
                            generation: a.generation,
                        }),
                    })
                })
                .await?;
            let p = match pending {
                Ok(p) => p,
                Err(clean) => return Ok(clean),
            };
            // The base's revision too: its version repeats if the context was
            // deleted and created again since (0: a state stored before revisions).
            let opts = UpdateOptions {
                expected_version: expected_from_base.then_some(p.base_version),
                ttl_ms: None,
            };
            let revision = Some(p.base.revision).filter(|&r| expected_from_base && r != 0);
            match manager
                .update_expecting(&p.id, p.local.data.clone(), opts, revision)
                .await
            {
                Ok(state) => {
                    self.settle(&p, &state).await;
                    // The push committed: the sync is Ok whatever happens to
                    // its recovery point; a missed one is counted instead.
                    if self.shared.config.auto_recovery
                        && manager.add_recovery_point(&p.id).await.is_err()
                    {
                        self.shared
                            .missed_recovery_points
                            .fetch_add(1, Ordering::Relaxed);
                    }
                    return Ok(state);
                }
                Err(conflict @ ContextError::VersionConflict { .. }) => {
                    if self.base_moved(&p).await {
                        // A concurrent sync of this tracker pushed first: retry on its result.
                        continue;
                    }
                    match self.shared.config.conflict {
                        ConflictPolicy::Reject => return Err(conflict),
                        ConflictPolicy::Overwrite => expected_from_base = false,
                        ConflictPolicy::KeepRemote => return self.adopt_remote(&p).await,
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Records a successful push of `p` that produced `state`.
    async fn settle(&self, p: &Pending, state: &Arc<ContextState>) {
        self.shared
            .work
            .write(|w| {
                let now = self.now();
                let Some(a) = w.active.as_mut().filter(|a| a.generation == p.generation) else {
                    return;
                };
                // A base moved on by a concurrent sync of this tracker is only
                // replaced by a newer state; an untouched base always is.
                if !Arc::ptr_eq(&a.base, &p.base) && !super::newer(state, &a.base) {
                    return;
                }
                a.base = Arc::clone(state);
                a.last_sync_ms = now;
                if a.edits == p.edits {
                    a.local = None;
                } else if let Some(local) = a.local.as_mut() {
                    // Newer edits stay dirty, now based on the pushed version.
                    let mut rebased = ContextState::clone(local);
                    rebased.version = state.version;
                    *local = Arc::new(rebased);
                }
            })
            .await;
    }

    async fn base_moved(&self, p: &Pending) -> bool {
        self.shared
            .work
            .read(|w| {
                w.active
                    .as_ref()
                    .is_some_and(|a| a.generation == p.generation && !Arc::ptr_eq(&a.base, &p.base))
            })
            .await
    }

    async fn adopt_remote(&self, p: &Pending) -> Result<Arc<ContextState>> {
        let remote = self.shared.manager.get_context(&p.id).await?;
        self.shared
            .work
            .write(|w| {
                let now = self.now();
                if let Some(a) = w.active.as_mut().filter(|a| a.generation == p.generation)
                    && (Arc::ptr_eq(&a.base, &p.base) || !super::newer(&a.base, &remote))
                {
                    a.base = Arc::clone(&remote);
                    a.local = None;
                    a.last_sync_ms = now;
                }
            })
            .await;
        Ok(remote)
    }

    /// How many syncs of this tracker (and its clones) committed their push
    /// but could not take the recovery point `auto_recovery` asks for; such a
    /// sync still returns `Ok` (see [`sync_state`](Self::sync_state)).
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let m = ContextManager::new(ManagerConfig { max_recovery_points: 0, ..ManagerConfig::default() });
    /// m.create_context("a", json!({})).await?;
    /// let t = ContextTracker::new(m.clone(), TrackerConfig { auto_recovery: true, ..TrackerConfig::default() });
    /// t.activate_context("a").await?;
    /// t.update_state(json!({ "n": 1 })).await?;
    /// assert_eq!(t.sync_state().await?.version, 2); // committed, without a recovery point
    /// assert_eq!(t.missed_recovery_points(), 1);
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    pub fn missed_recovery_points(&self) -> u64 {
        self.shared.missed_recovery_points.load(Ordering::Relaxed)
    }

    /// Whether the copy is dirty and `sync_interval_ms` passed since the last sync.
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let clock = ManualClock::new(0);
    /// let m = ContextManager::builder(ManagerConfig::default()).clock(clock.clone()).build();
    /// m.create_context("a", json!({})).await?;
    /// let t = ContextTracker::new(m, TrackerConfig { sync_interval_ms: 100, ..TrackerConfig::default() });
    /// t.activate_context("a").await?;
    /// t.update_state(json!({ "n": 1 })).await?;
    /// assert!(!t.is_sync_needed().await);
    /// clock.advance(100);
    /// assert!(t.is_sync_needed().await);
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    pub async fn is_sync_needed(&self) -> bool {
        let interval = self.shared.config.sync_interval_ms;
        self.shared
            .work
            .read(|w| {
                let now = self.now();
                w.active.as_ref().is_some_and(|a| {
                    a.local.is_some() && now.saturating_sub(a.last_sync_ms) >= interval
                })
            })
            .await
    }

    /// Syncs if [`is_sync_needed`](Self::is_sync_needed); returns the new state if it synced.
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let m = ContextManager::new(ManagerConfig::default());
    /// m.create_context("a", json!({})).await?;
    /// let t = ContextTracker::new(m, TrackerConfig { sync_interval_ms: 0, ..TrackerConfig::default() });
    /// t.activate_context("a").await?;
    /// assert_eq!(t.sync_if_needed().await?, None); // clean
    /// t.update_state(json!({ "n": 1 })).await?;
    /// assert_eq!(t.sync_if_needed().await?.map(|s| s.version), Some(2));
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    pub async fn sync_if_needed(&self) -> Result<Option<Arc<ContextState>>> {
        if self.is_sync_needed().await {
            self.sync_state().await.map(Some)
        } else {
            Ok(None)
        }
    }

    /// A recovery point of the active context as stored (local edits are not in it).
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let m = ContextManager::new(ManagerConfig::default());
    /// m.create_context("a", json!({})).await?;
    /// let t = ContextTracker::new(m.clone(), TrackerConfig::default());
    /// t.activate_context("a").await?;
    /// let p = t.create_recovery_point().await?;
    /// assert_eq!(m.recovery_points("a").await?, vec![p]);
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    pub async fn create_recovery_point(&self) -> Result<Snapshot> {
        let id = self
            .active_context_id()
            .await
            .ok_or_else(|| ContextError::NotActive { id: None })?;
        self.shared.manager.create_recovery_point(&id).await
    }
}
