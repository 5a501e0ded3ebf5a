//! [`ContextTracker`]: a working copy of one active context that syncs back.

use crate::sync::{AtomicBool, AtomicU64, Ordering};
use crate::{ContextError, ContextManager, ContextState, Data, Result, Scoped, validate};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// What [`ContextTracker::sync_state`] does when the stored version moved on.
///
/// ```
/// # use contextkit_core::*;
/// # futures::executor::block_on(async {
/// let m = ContextManager::new(ManagerConfig::default());
/// m.create_context("a", json!({ "n": 0 })).await?;
/// let cfg = TrackerConfig { conflict: ConflictPolicy::Overwrite, ..TrackerConfig::default() };
/// let t = ContextTracker::new(m.clone(), cfg);
/// t.activate_context("a").await?;
/// m.update_context("a", json!({ "n": "remote" }), None).await?;
/// t.update_state(json!({ "n": "local" })).await?;
/// assert_eq!(t.sync_state().await?.data["n"], "local");
/// # Ok::<(), ContextError>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ConflictPolicy {
    /// Fail with `VERSION_CONFLICT` and keep the local edits, still based on
    /// the old state (each later sync fails the same way). To go on, take
    /// what is stored: [`discard_changes`](ContextTracker::discard_changes),
    /// then [`apply_remote`](ContextTracker::apply_remote) of a fresh
    /// `get_context` (or activate the context again), and redo the edits.
    #[default]
    Reject,
    /// Write the local data over the newer stored version.
    Overwrite,
    /// Drop the local edits and adopt the stored version.
    KeepRemote,
}

/// Settings of a [`ContextTracker`].
///
/// ```
/// # use contextkit_core::*;
/// # futures::executor::block_on(async {
/// let cfg = TrackerConfig { sync_interval_ms: 250, auto_recovery: true, ..TrackerConfig::default() };
/// assert_eq!(cfg.conflict, ConflictPolicy::Reject);
/// # Ok::<(), ContextError>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TrackerConfig {
    /// Least time between automatic syncs (default 1,000 ms).
    pub sync_interval_ms: u64,
    /// Make a recovery point after each successful sync (default off). A sync
    /// that committed but could not take its recovery point still succeeds; see
    /// [`ContextTracker::missed_recovery_points`].
    pub auto_recovery: bool,
    /// What a sync does on a version conflict (default `Reject`).
    pub conflict: ConflictPolicy,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        Self {
            sync_interval_ms: 1_000,
            auto_recovery: false,
            conflict: ConflictPolicy::Reject,
        }
    }
}

#[derive(Debug)]
struct Active {
    /// The stored version the copy is based on.
    base: Arc<ContextState>,
    /// Local data over `base`, while dirty.
    local: Option<Arc<ContextState>>,
    /// Local edits so far; tells a finished sync whether more came meanwhile.
    edits: u64,
    last_sync_ms: u64,
    /// Which activation this is, so late results never touch a newer one.
    generation: u64,
}

impl Active {
    fn copy(&self) -> &Arc<ContextState> {
        self.local.as_ref().unwrap_or(&self.base)
    }
}

#[derive(Debug, Default)]
struct Working {
    active: Option<Active>,
    generations: u64,
}

impl Working {
    fn active(&mut self) -> Result<&mut Active> {
        self.active
            .as_mut()
            .ok_or_else(|| ContextError::NotActive { id: None })
    }

    fn activate(&mut self, state: Arc<ContextState>, now: u64) {
        self.generations += 1;
        self.active = Some(Active {
            base: state,
            local: None,
            edits: 0,
            last_sync_ms: now,
            generation: self.generations,
        });
    }
}

struct Shared {
    manager: ContextManager,
    config: TrackerConfig,
    work: Scoped<Working>,
    /// Bound to one id for life by a [`ContextAdapter`](crate::ContextAdapter).
    pinned: bool,
    /// A pinned tracker that was deactivated; it never becomes active again.
    released: AtomicBool,
    /// Syncs that committed without their automatic recovery point.
    missed_recovery_points: AtomicU64,
}

/// A working copy of one active context: edit locally, then sync back.
///
/// Cheap to clone; clones share the working copy.
///
/// ```
/// use contextkit_core::{ContextManager, ContextTracker, ManagerConfig, TrackerConfig};
/// use serde_json::json;
/// # futures::executor::block_on(async {
/// let m = ContextManager::new(ManagerConfig::default());
/// m.create_context("doc", json!({ "title": "draft" })).await?;
/// let t = ContextTracker::new(m.clone(), TrackerConfig::default());
/// t.activate_context("doc").await?;
/// t.update_state(json!({ "title": "final" })).await?;
/// assert!(t.is_dirty().await);
/// let s = t.sync_state().await?;
/// assert_eq!((s.version, m.get_context("doc").await?.data.value().clone()), (2, json!({ "title": "final" })));
/// # Ok::<(), contextkit_core::ContextError>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct ContextTracker {
    shared: Arc<Shared>,
}

impl ContextTracker {
    /// A tracker over `manager` with nothing active.
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let m = ContextManager::new(ManagerConfig::default());
    /// let t = ContextTracker::new(m, TrackerConfig { conflict: ConflictPolicy::KeepRemote, ..TrackerConfig::default() });
    /// assert_eq!(t.active_context_id().await, None);
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    pub fn new(manager: ContextManager, config: TrackerConfig) -> Self {
        Self::build(manager, config, false, Working::default())
    }

    /// A tracker bound to `state`'s id for life, as handed out by an adapter.
    pub(crate) fn pinned(
        manager: ContextManager,
        config: TrackerConfig,
        state: Arc<ContextState>,
    ) -> Self {
        let mut work = Working::default();
        work.activate(state, manager.inner.now());
        Self::build(manager, config, true, work)
    }

    fn build(manager: ContextManager, config: TrackerConfig, pinned: bool, work: Working) -> Self {
        Self {
            shared: Arc::new(Shared {
                manager,
                config,
                work: Scoped::new(work),
                pinned,
                released: AtomicBool::new(false),
                missed_recovery_points: AtomicU64::new(0),
            }),
        }
    }

    /// Its settings.
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let m = ContextManager::new(ManagerConfig::default());
    /// let t = ContextTracker::new(m, TrackerConfig::default());
    /// assert_eq!(t.config().conflict, ConflictPolicy::Reject);
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    pub fn config(&self) -> &TrackerConfig {
        &self.shared.config
    }

    /// The manager it syncs to.
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let m = ContextManager::new(ManagerConfig::default());
    /// let t = ContextTracker::new(m.clone(), TrackerConfig::default());
    /// assert!(t.manager().same_store(&m));
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    pub fn manager(&self) -> &ContextManager {
        &self.shared.manager
    }

    /// Whether `other` is this tracker (or a clone of it).
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let m = ContextManager::new(ManagerConfig::default());
    /// let t = ContextTracker::new(m.clone(), TrackerConfig::default());
    /// assert!(t.same_as(&t.clone()));
    /// assert!(!t.same_as(&ContextTracker::new(m, TrackerConfig::default())));
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    pub fn same_as(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    pub(crate) fn is_released(&self) -> bool {
        self.shared.released.load(Ordering::SeqCst)
    }

    fn now(&self) -> u64 {
        self.shared.manager.inner.now()
    }

    /// Loads `id` and makes it the active context, id and state together.
    /// `UNSYNCED_CHANGES` if the current copy is dirty; `NOT_FOUND` if `id` is absent.
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let m = ContextManager::new(ManagerConfig::default());
    /// m.create_context("a", json!({ "n": 1 })).await?;
    /// let t = ContextTracker::new(m, TrackerConfig::default());
    /// assert_eq!(t.activate_context("a").await?.data["n"], 1);
    /// assert_eq!(t.activate_context("zz").await.unwrap_err().code(), "NOT_FOUND");
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    pub async fn activate_context(&self, id: &str) -> Result<Arc<ContextState>> {
        if self.shared.pinned {
            return Err(ContextError::invalid(
                "this tracker belongs to a ContextAdapter; activate through the adapter",
            ));
        }
        let state = self.shared.manager.get_context(id).await?;
        self.shared
            .work
            .write(|w| {
                let now = self.now();
                if let Some(a) = w.active.as_ref().filter(|a| a.local.is_some()) {
                    return Err(ContextError::UnsyncedChanges {
                        id: a.base.id.clone(),
                    });
                }
                w.activate(Arc::clone(&state), now);
                Ok(state)
            })
            .await
    }

    /// Deactivates the active context. `UNSYNCED_CHANGES` if dirty, `NOT_ACTIVE` if none.
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let m = ContextManager::new(ManagerConfig::default());
    /// m.create_context("a", json!({})).await?;
    /// let t = ContextTracker::new(m, TrackerConfig::default());
    /// t.activate_context("a").await?;
    /// t.update_state(json!({ "n": 1 })).await?;
    /// assert_eq!(t.deactivate_context().await.unwrap_err().code(), "UNSYNCED_CHANGES");
    /// t.sync_state().await?;
    /// t.deactivate_context().await?;
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    pub async fn deactivate_context(&self) -> Result<()> {
        self.shared
            .work
            .write(|w| {
                let a = w.active()?;
                if a.local.is_some() {
                    return Err(ContextError::UnsyncedChanges {
                        id: a.base.id.clone(),
                    });
                }
                w.active = None;
                if self.shared.pinned {
                    self.shared.released.store(true, Ordering::SeqCst);
                }
                Ok(())
            })
            .await
    }

    /// Drops local edits; the copy is the stored version it was based on again.
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let m = ContextManager::new(ManagerConfig::default());
    /// m.create_context("a", json!({ "n": 1 })).await?;
    /// let t = ContextTracker::new(m, TrackerConfig::default());
    /// t.activate_context("a").await?;
    /// t.update_state(json!({ "n": 2 })).await?;
    /// assert_eq!(t.discard_changes().await?.data["n"], 1);
    /// assert!(!t.is_dirty().await);
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    pub async fn discard_changes(&self) -> Result<Arc<ContextState>> {
        self.shared
            .work
            .write(|w| {
                let a = w.active()?;
                a.local = None;
                Ok(Arc::clone(&a.base))
            })
            .await
    }

    /// The active context's id, if any.
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let m = ContextManager::new(ManagerConfig::default());
    /// m.create_context("a", json!({})).await?;
    /// let t = ContextTracker::new(m, TrackerConfig::default());
    /// t.activate_context("a").await?;
    /// assert_eq!(t.active_context_id().await.as_deref(), Some("a"));
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    pub async fn active_context_id(&self) -> Option<String> {
        self.shared
            .work
            .read(|w| w.active.as_ref().map(|a| a.base.id.clone()))
            .await
    }

    /// The working copy: local data with the version it was based on.
    /// `NOT_ACTIVE` when nothing is active.
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let m = ContextManager::new(ManagerConfig::default());
    /// m.create_context("a", json!({ "n": 1 })).await?;
    /// let t = ContextTracker::new(m, TrackerConfig::default());
    /// assert_eq!(t.get_state().await.unwrap_err().code(), "NOT_ACTIVE");
    /// t.activate_context("a").await?;
    /// t.update_state(json!({ "n": 2 })).await?;
    /// let copy = t.get_state().await?;
    /// assert_eq!((copy.version, &copy.data["n"]), (1, &json!(2)));
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    pub async fn get_state(&self) -> Result<Arc<ContextState>> {
        self.shared
            .work
            .read(|w| w.active.as_ref().map(|a| Arc::clone(a.copy())))
            .await
            .ok_or_else(|| ContextError::NotActive { id: None })
    }

    /// Whether the copy has local edits (false when nothing is active).
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let m = ContextManager::new(ManagerConfig::default());
    /// m.create_context("a", json!({})).await?;
    /// let t = ContextTracker::new(m, TrackerConfig::default());
    /// t.activate_context("a").await?;
    /// assert!(!t.is_dirty().await);
    /// t.update_state(json!({ "n": 1 })).await?;
    /// assert!(t.is_dirty().await);
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    pub async fn is_dirty(&self) -> bool {
        self.shared
            .work
            .read(|w| w.active.as_ref().is_some_and(|a| a.local.is_some()))
            .await
    }

    /// Replaces the local data and marks the copy dirty. Data is validated now,
    /// with the manager's limits, so a later sync does not fail on it.
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let m = ContextManager::new(ManagerConfig::default());
    /// m.create_context("a", json!({})).await?;
    /// let t = ContextTracker::new(m.clone(), TrackerConfig::default());
    /// t.activate_context("a").await?;
    /// t.update_state(json!({ "draft": true })).await?;
    /// assert_eq!(m.get_context("a").await?.version, 1); // not synced yet
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    pub async fn update_state(&self, data: impl Into<Data>) -> Result<Arc<ContextState>> {
        let data = data.into();
        validate::data(self.shared.manager.config(), &data)?;
        self.shared
            .work
            .write(|w| {
                let a = w.active()?;
                let b = &a.base;
                let local = Arc::new(ContextState {
                    id: b.id.clone(),
                    version: b.version,
                    // Not committed: the revision of the state it edits.
                    revision: b.revision,
                    created_at_ms: b.created_at_ms,
                    updated_at_ms: b.updated_at_ms,
                    expires_at_ms: b.expires_at_ms,
                    data,
                    metadata: b.metadata.clone(),
                });
                a.local = Some(Arc::clone(&local));
                a.edits += 1;
                Ok(local)
            })
            .await
    }

    /// Adopts `state` if it is a strictly newer state of the active context
    /// (a later revision: also one created again since, at a lower version)
    /// and the copy is clean; returns whether it did. Never goes back.
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let m = ContextManager::new(ManagerConfig::default());
    /// m.create_context("a", json!({ "n": 1 })).await?;
    /// let t = ContextTracker::new(m.clone(), TrackerConfig::default());
    /// t.activate_context("a").await?;
    /// let newer = m.update_context("a", json!({ "n": 2 }), None).await?;
    /// assert!(t.apply_remote(newer.clone()).await);
    /// assert!(!t.apply_remote(newer).await); // not strictly newer any more
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    pub async fn apply_remote(&self, state: Arc<ContextState>) -> bool {
        self.shared
            .work
            .write(|w| match w.active.as_mut() {
                Some(a) if a.local.is_none() && a.base.id == state.id && newer(&state, &a.base) => {
                    a.base = state;
                    true
                }
                _ => false,
            })
            .await
    }
}

/// Whether `state` is newer than `than`, states of one id: by revision,
/// which never repeats (a context deleted and created again is newer at a
/// lower version); by version for states stored before revisions.
pub(crate) fn newer(state: &ContextState, than: &ContextState) -> bool {
    if state.revision == 0 || than.revision == 0 {
        state.version > than.version
    } else {
        state.revision > than.revision
    }
}

impl fmt::Debug for ContextTracker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContextTracker")
            .field("config", &self.shared.config)
            .field("pinned", &self.shared.pinned)
            .field("work", &self.shared.work)
            .finish()
    }
}

mod sync;
