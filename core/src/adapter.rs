//! [`ContextAdapter`]: a facade for protocol layers, with TTL, capacity and active trackers.

use crate::storage::MaybeSend;
use crate::sync::{AtomicU64, AtomicUsize, Ordering};
use crate::{
    ContextError, ContextManager, ContextState, ContextTracker, CreateOptions, Data, Result,
    Scoped, Snapshot, Subscription, TrackerConfig, UpdateOptions,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

/// Settings of a [`ContextAdapter`].
///
/// ```
/// # use contextkit_core::*;
/// # futures::executor::block_on(async {
/// let cfg = AdapterConfig { ttl_ms: Some(30_000), max_active_contexts: 8, ..AdapterConfig::default() };
/// assert_eq!(cfg.max_contexts, 10_000);
/// # Ok::<(), ContextError>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AdapterConfig {
    /// Most live contexts in the wrapped manager (the smaller of this and its own limit wins).
    ///
    /// On a shared manager it is this manager's limit on the namespace: the
    /// store checks each of its creates against every manager's contexts,
    /// but the creates of other managers against their own limits. Give
    /// every process the same adapter settings for one limit everywhere.
    /// Lowering it evicts from the whole namespace.
    pub max_contexts: usize,
    /// TTL of contexts created or updated through the adapter (`None`: the manager's default).
    pub ttl_ms: Option<u64>,
    /// Sweep expired contexts during adapter calls, at most every `cleanup_interval_ms`.
    pub auto_cleanup: bool,
    /// Least time between automatic sweeps (also the JS timer's period).
    pub cleanup_interval_ms: u64,
    /// Most trackers active at once.
    pub max_active_contexts: usize,
}

impl Default for AdapterConfig {
    fn default() -> Self {
        Self {
            max_contexts: 10_000,
            ttl_ms: None,
            auto_cleanup: true,
            cleanup_interval_ms: 60_000,
            max_active_contexts: 100,
        }
    }
}

impl AdapterConfig {
    fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(ContextError::invalid(m));
        if self.max_contexts == 0 {
            return bad("max_contexts must be at least 1");
        }
        if self.max_active_contexts == 0 {
            return bad("max_active_contexts must be at least 1");
        }
        if self.cleanup_interval_ms == 0 {
            return bad("cleanup_interval_ms must be at least 1");
        }
        crate::validate::ttl(self.ttl_ms)
    }
}

struct Shared {
    manager: ContextManager,
    config: Scoped<AdapterConfig>,
    /// Mirror of `config.max_active_contexts`, readable inside the registry's section.
    max_active: AtomicUsize,
    trackers: Scoped<HashMap<String, ContextTracker, ahash::RandomState>>,
    tracker_config: TrackerConfig,
    last_cleanup_ms: AtomicU64,
}

/// A facade over a [`ContextManager`] with a TTL, a capacity and a registry of
/// active [`ContextTracker`]s. Cheap to clone; clones share everything.
///
/// ```
/// use contextkit_core::{AdapterConfig, ContextAdapter, ContextManager, ManagerConfig};
/// use serde_json::json;
/// # futures::executor::block_on(async {
/// let m = ContextManager::new(ManagerConfig::default());
/// let a = ContextAdapter::new(m, AdapterConfig { ttl_ms: Some(60_000), ..Default::default() });
/// a.create_context("s1", json!({ "user": "ada" })).await?;
/// let t = a.activate_context("s1").await?;
/// assert!(t.same_as(&a.activate_context("s1").await?));
/// assert_eq!(a.list_active_context_ids().await, vec!["s1".to_string()]);
/// # Ok::<(), contextkit_core::ContextError>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct ContextAdapter {
    shared: Arc<Shared>,
}

impl ContextAdapter {
    /// Wraps `manager`; the adapter's `max_contexts` caps the manager from now on.
    /// The config is taken as given; [`try_new`](Self::try_new) checks it first.
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let m = ContextManager::new(ManagerConfig::default());
    /// let a = ContextAdapter::new(m, AdapterConfig { ttl_ms: Some(30_000), ..AdapterConfig::default() });
    /// assert_eq!(a.get_config().await.ttl_ms, Some(30_000));
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    pub fn new(manager: ContextManager, config: AdapterConfig) -> Self {
        Self::with_trackers(manager, config, TrackerConfig::default())
    }

    /// [`new`](Self::new), but `INVALID_ARGUMENT` for zero limits, a zero TTL
    /// or a zero cleanup interval.
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let m = ContextManager::new(ManagerConfig::default());
    /// let bad = AdapterConfig { max_contexts: 0, ..AdapterConfig::default() };
    /// assert_eq!(ContextAdapter::try_new(m, bad).unwrap_err().code(), "INVALID_ARGUMENT");
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    pub fn try_new(manager: ContextManager, config: AdapterConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self::new(manager, config))
    }

    /// [`new`](Self::new) with the settings of the trackers it hands out.
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let m = ContextManager::new(ManagerConfig::default());
    /// let trackers = TrackerConfig { auto_recovery: true, ..TrackerConfig::default() };
    /// let a = ContextAdapter::with_trackers(m, AdapterConfig::default(), trackers);
    /// a.create_context("a", json!({})).await?;
    /// assert!(a.activate_context("a").await?.config().auto_recovery);
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    pub fn with_trackers(
        manager: ContextManager,
        config: AdapterConfig,
        tracker_config: TrackerConfig,
    ) -> Self {
        manager.set_capacity_limit(config.max_contexts);
        let now = manager.inner.now();
        let trackers = HashMap::with_hasher(manager.inner.id_hasher());
        let shared = Shared {
            manager,
            max_active: AtomicUsize::new(config.max_active_contexts),
            config: Scoped::new(config),
            trackers: Scoped::new(trackers),
            tracker_config,
            last_cleanup_ms: AtomicU64::new(now),
        };
        let shared = Arc::new(shared);
        Self { shared }
    }

    /// The wrapped manager.
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let m = ContextManager::new(ManagerConfig::default());
    /// let a = ContextAdapter::new(m.clone(), AdapterConfig::default());
    /// assert!(a.manager().same_store(&m));
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    pub fn manager(&self) -> &ContextManager {
        &self.shared.manager
    }

    async fn config(&self) -> AdapterConfig {
        self.shared.config.read(|c| *c).await
    }

    /// Sweeps if `auto_cleanup` is on and the interval has passed; one caller wins the sweep.
    async fn maybe_cleanup(&self, cfg: &AdapterConfig) {
        if !cfg.auto_cleanup {
            return;
        }
        let now = self.shared.manager.inner.now();
        let last = self.shared.last_cleanup_ms.load(Ordering::SeqCst);
        if now.saturating_sub(last) >= cfg.cleanup_interval_ms
            && self
                .shared
                .last_cleanup_ms
                .compare_exchange(last, now, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        {
            self.shared.manager.cleanup_expired().await;
        }
    }

    /// Creates `id` with the adapter's TTL.
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let m = ContextManager::new(ManagerConfig::default());
    /// let a = ContextAdapter::new(m, AdapterConfig { ttl_ms: Some(1_000), ..AdapterConfig::default() });
    /// let s = a.create_context("a", json!({})).await?;
    /// assert_eq!(s.expires_at_ms, Some(s.created_at_ms + 1_000));
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    pub async fn create_context(
        &self,
        id: &str,
        data: impl Into<Data>,
    ) -> Result<Arc<ContextState>> {
        self.create_context_with(id, data, CreateOptions::default())
            .await
    }

    /// [`create_context`](Self::create_context) with metadata, and a TTL of
    /// its own if `opts.ttl_ms` is set (else the adapter's).
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let m = ContextManager::new(ManagerConfig::default());
    /// let a = ContextAdapter::new(m, AdapterConfig { ttl_ms: Some(1_000), ..AdapterConfig::default() });
    /// let metadata = [("owner".to_string(), "ada".to_string())].into();
    /// let opts = CreateOptions { metadata, ..CreateOptions::default() };
    /// let s = a.create_context_with("a", json!({}), opts).await?;
    /// assert_eq!((s.metadata["owner"].as_str(), s.expires_at_ms), ("ada", Some(s.created_at_ms + 1_000)));
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    pub async fn create_context_with(
        &self,
        id: &str,
        data: impl Into<Data>,
        opts: CreateOptions,
    ) -> Result<Arc<ContextState>> {
        let cfg = self.config().await;
        self.maybe_cleanup(&cfg).await;
        let opts = CreateOptions {
            ttl_ms: opts.ttl_ms.or(cfg.ttl_ms),
            ..opts
        };
        self.shared
            .manager
            .create_context_with(id, data, opts)
            .await
    }

    /// The live context `id`.
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let m = ContextManager::new(ManagerConfig::default());
    /// let a = ContextAdapter::new(m, AdapterConfig::default());
    /// a.create_context("a", json!({ "n": 1 })).await?;
    /// assert_eq!(a.get_context("a").await?.data["n"], 1);
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    pub async fn get_context(&self, id: &str) -> Result<Arc<ContextState>> {
        let cfg = self.config().await;
        self.maybe_cleanup(&cfg).await;
        self.shared.manager.get_context(id).await
    }

    /// Replaces the data of `id` and restarts its expiry with the adapter's TTL.
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let clock = ManualClock::new(0);
    /// let m = ContextManager::builder(ManagerConfig::default()).clock(clock.clone()).build();
    /// let a = ContextAdapter::new(m, AdapterConfig { ttl_ms: Some(100), ..AdapterConfig::default() });
    /// a.create_context("a", json!({})).await?;
    /// clock.advance(60);
    /// assert_eq!(a.update_context("a", json!({ "n": 1 }), None).await?.expires_at_ms, Some(160));
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    pub async fn update_context(
        &self,
        id: &str,
        data: impl Into<Data>,
        expected_version: Option<u64>,
    ) -> Result<Arc<ContextState>> {
        self.update_context_expecting(id, data, expected_version, None)
            .await
    }

    /// [`update_context`](Self::update_context) that may also expect the
    /// state committed at `expected_revision`, as the manager's
    /// [`update_context_if_revision`](ContextManager::update_context_if_revision)
    /// does: a version repeats after a delete and a create of the id, a
    /// revision never, so a revision read earlier (an HTTP ETag) cannot
    /// overwrite a context made since. A conflict reports versions when the
    /// version differs, else revisions.
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let a = ContextAdapter::new(ContextManager::new(ManagerConfig::default()), AdapterConfig::default());
    /// let old = a.create_context("a", json!({ "n": 1 })).await?;
    /// a.delete_context("a").await?;
    /// a.create_context("a", json!({ "n": 2 })).await?;
    /// // The same version, another context: refused.
    /// let stale = a.update_context_expecting("a", json!({}), Some(old.version), Some(old.revision)).await;
    /// assert_eq!(stale.unwrap_err().code(), "VERSION_CONFLICT");
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    pub async fn update_context_expecting(
        &self,
        id: &str,
        data: impl Into<Data>,
        expected_version: Option<u64>,
        expected_revision: Option<u64>,
    ) -> Result<Arc<ContextState>> {
        let cfg = self.config().await;
        self.maybe_cleanup(&cfg).await;
        let opts = UpdateOptions {
            expected_version,
            ttl_ms: cfg.ttl_ms,
        };
        self.shared
            .manager
            .update_expecting(id, data.into(), opts, expected_revision)
            .await
    }

    /// Deletes `id` and its recovery points.
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let m = ContextManager::new(ManagerConfig::default());
    /// let a = ContextAdapter::new(m, AdapterConfig::default());
    /// a.create_context("a", json!({})).await?;
    /// a.delete_context("a").await?;
    /// assert!(a.list_contexts().await.is_empty());
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    pub async fn delete_context(&self, id: &str) -> Result<()> {
        self.shared.manager.delete_context(id).await
    }

    /// The manager's [`modify_context`](ContextManager::modify_context):
    /// `f` of the current data becomes the data in one step.
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let a = ContextAdapter::new(ContextManager::new(ManagerConfig::default()), AdapterConfig::default());
    /// a.create_context("a", json!({ "n": 1 })).await?;
    /// let s = a.modify_context("a", |d| json!({ "n": d["n"].as_u64().unwrap() + 1 })).await?;
    /// assert_eq!(s.data, json!({ "n": 2 }));
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    pub async fn modify_context<F>(&self, id: &str, f: F) -> Result<Arc<ContextState>>
    where
        F: FnMut(&Value) -> Value + MaybeSend,
    {
        self.shared.manager.modify_context(id, f).await
    }

    /// The manager's [`try_modify_context`](ContextManager::try_modify_context).
    pub async fn try_modify_context<F>(&self, id: &str, f: F) -> Result<Arc<ContextState>>
    where
        F: FnMut(&Value) -> Result<Value> + MaybeSend,
    {
        self.shared.manager.try_modify_context(id, f).await
    }

    /// The manager's [`touch_context`](ContextManager::touch_context):
    /// restarts the TTL of `id` from now, without a new version.
    pub async fn touch_context(&self, id: &str) -> Result<Arc<ContextState>> {
        self.shared.manager.touch_context(id).await
    }

    /// The manager's [`create_recovery_point`](ContextManager::create_recovery_point).
    pub async fn create_recovery_point(&self, id: &str) -> Result<Snapshot> {
        self.shared.manager.create_recovery_point(id).await
    }

    /// The manager's [`recovery_points`](ContextManager::recovery_points).
    pub async fn recovery_points(&self, id: &str) -> Result<Vec<Snapshot>> {
        self.shared.manager.recovery_points(id).await
    }

    /// The manager's [`restore_recovery_point`](ContextManager::restore_recovery_point).
    pub async fn restore_recovery_point(
        &self,
        id: &str,
        snapshot_id: u64,
    ) -> Result<Arc<ContextState>> {
        self.shared
            .manager
            .restore_recovery_point(id, snapshot_id)
            .await
    }

    /// The manager's [`subscribe`](ContextManager::subscribe): every
    /// committed change of the manager, whoever made it.
    pub fn subscribe(&self) -> Subscription {
        self.shared.manager.subscribe()
    }

    /// The live contexts, sorted by id.
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let m = ContextManager::new(ManagerConfig::default());
    /// let a = ContextAdapter::new(m, AdapterConfig::default());
    /// a.create_context("b", json!({})).await?;
    /// a.create_context("a", json!({})).await?;
    /// let ids: Vec<_> = a.list_contexts().await.iter().map(|s| s.id.clone()).collect();
    /// assert_eq!(ids, ["a", "b"]);
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    pub async fn list_contexts(&self) -> Vec<Arc<ContextState>> {
        let cfg = self.config().await;
        self.maybe_cleanup(&cfg).await;
        self.shared.manager.list_contexts().await
    }

    /// [`list_contexts`](Self::list_contexts) that reports a failure of a
    /// shared backend (`STORAGE`) instead of showing no contexts.
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let a = ContextAdapter::new(ContextManager::new(ManagerConfig::default()), AdapterConfig::default());
    /// assert!(a.try_list_contexts().await?.is_empty());
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    pub async fn try_list_contexts(&self) -> Result<Vec<Arc<ContextState>>> {
        let cfg = self.config().await;
        self.maybe_cleanup(&cfg).await;
        self.shared.manager.try_list_contexts().await
    }

    /// Removes expired contexts now; returns how many.
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let clock = ManualClock::new(0);
    /// let m = ContextManager::builder(ManagerConfig::default()).clock(clock.clone()).build();
    /// let a = ContextAdapter::new(m, AdapterConfig { ttl_ms: Some(10), ..AdapterConfig::default() });
    /// a.create_context("a", json!({})).await?;
    /// clock.advance(10);
    /// assert_eq!(a.cleanup_expired_contexts().await, 1);
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    pub async fn cleanup_expired_contexts(&self) -> usize {
        self.try_cleanup_expired_contexts().await.unwrap_or(0)
    }

    /// [`cleanup_expired_contexts`](Self::cleanup_expired_contexts) that
    /// reports a failure of the sweep (`STORAGE`) instead of counting 0.
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let a = ContextAdapter::new(ContextManager::new(ManagerConfig::default()), AdapterConfig::default());
    /// assert_eq!(a.try_cleanup_expired_contexts().await?, 0);
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    pub async fn try_cleanup_expired_contexts(&self) -> Result<usize> {
        let now = self.shared.manager.inner.now();
        self.shared.last_cleanup_ms.store(now, Ordering::SeqCst);
        self.shared.manager.try_cleanup_expired().await
    }

    /// The current settings.
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let m = ContextManager::new(ManagerConfig::default());
    /// let a = ContextAdapter::new(m, AdapterConfig::default());
    /// assert_eq!(a.get_config().await, AdapterConfig::default());
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    pub async fn get_config(&self) -> AdapterConfig {
        self.config().await
    }

    /// Replaces the settings and returns how many contexts were evicted.
    /// Lowering `max_contexts` evicts the least recently updated contexts
    /// (an `Evicted` event each) until the new limit holds; creates are refused
    /// from the moment it is set. Lowering `max_active_contexts` keeps active
    /// trackers but refuses new ones until fewer are active. On a shared
    /// manager the evicted contexts may be any manager's (see
    /// [`AdapterConfig::max_contexts`]).
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let m = ContextManager::new(ManagerConfig::default());
    /// let a = ContextAdapter::new(m.clone(), AdapterConfig::default());
    /// for id in ["old", "new"] {
    ///     a.create_context(id, json!({})).await?;
    /// }
    /// let cfg = AdapterConfig { max_contexts: 1, ..a.get_config().await };
    /// assert_eq!(a.update_config(cfg).await?, 1);
    /// assert_eq!(m.list_context_ids().await, ["new"]);
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    pub async fn update_config(&self, config: AdapterConfig) -> Result<usize> {
        config.validate()?;
        let shared = &*self.shared;
        shared
            .config
            .write(|c| {
                *c = config;
                shared.manager.set_capacity_limit(config.max_contexts);
                shared
                    .max_active
                    .store(config.max_active_contexts, Ordering::SeqCst);
            })
            .await;
        Ok(shared.manager.evict_to_capacity().await)
    }

    /// The tracker of `id`, activating it if needed: activating an active id
    /// returns the same tracker. `CAPACITY_EXCEEDED` past `max_active_contexts`.
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let m = ContextManager::new(ManagerConfig::default());
    /// let a = ContextAdapter::new(m, AdapterConfig { max_active_contexts: 1, ..AdapterConfig::default() });
    /// a.create_context("a", json!({})).await?;
    /// a.create_context("b", json!({})).await?;
    /// let t = a.activate_context("a").await?;
    /// assert!(t.same_as(&a.activate_context("a").await?));
    /// assert_eq!(a.activate_context("b").await.unwrap_err().code(), "CAPACITY_EXCEEDED");
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    pub async fn activate_context(&self, id: &str) -> Result<ContextTracker> {
        let shared = &*self.shared;
        let existing = shared
            .trackers
            .read(|m| m.get(id).filter(|t| !t.is_released()).cloned())
            .await;
        if let Some(t) = existing {
            return Ok(t);
        }
        let state = shared.manager.get_context(id).await?;
        let fresh = ContextTracker::pinned(shared.manager.clone(), shared.tracker_config, state);
        shared
            .trackers
            .write(|m| {
                m.retain(|_, t| !t.is_released());
                if let Some(t) = m.get(id) {
                    return Ok(t.clone());
                }
                let max = shared.max_active.load(Ordering::SeqCst);
                if m.len() >= max {
                    return Err(ContextError::capacity("active contexts", max));
                }
                m.insert(id.to_owned(), fresh.clone());
                Ok(fresh)
            })
            .await
    }

    /// Deactivates the tracker of `id`. `NOT_ACTIVE` if there is none,
    /// `UNSYNCED_CHANGES` if it is dirty (it then stays active).
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let m = ContextManager::new(ManagerConfig::default());
    /// let a = ContextAdapter::new(m, AdapterConfig::default());
    /// a.create_context("a", json!({})).await?;
    /// a.activate_context("a").await?;
    /// a.deactivate_context("a").await?;
    /// assert_eq!(a.deactivate_context("a").await.unwrap_err().code(), "NOT_ACTIVE");
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    pub async fn deactivate_context(&self, id: &str) -> Result<()> {
        let shared = &*self.shared;
        crate::validate::id(shared.manager.config(), id)?;
        let tracker = shared
            .trackers
            .read(|m| m.get(id).filter(|t| !t.is_released()).cloned())
            .await
            .ok_or_else(|| ContextError::NotActive {
                id: Some(id.to_owned()),
            })?;
        tracker.deactivate_context().await?;
        // Released trackers are ignored everywhere, so this only frees memory early.
        shared
            .trackers
            .write(|m| {
                if m.get(id).is_some_and(|t| t.same_as(&tracker)) {
                    m.remove(id);
                }
            })
            .await;
        Ok(())
    }

    /// Ids with an active tracker, sorted.
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let m = ContextManager::new(ManagerConfig::default());
    /// let a = ContextAdapter::new(m, AdapterConfig::default());
    /// a.create_context("a", json!({})).await?;
    /// a.activate_context("a").await?;
    /// assert_eq!(a.list_active_context_ids().await, ["a"]);
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    pub async fn list_active_context_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .shared
            .trackers
            .read(|m| {
                m.iter()
                    .filter(|(_, t)| !t.is_released())
                    .map(|(id, _)| id.clone())
                    .collect()
            })
            .await;
        ids.sort_unstable();
        ids
    }
}

impl fmt::Debug for ContextAdapter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContextAdapter")
            .field("manager", &self.shared.manager)
            .field("config", &self.shared.config)
            .field("tracker_config", &self.shared.tracker_config)
            .finish_non_exhaustive()
    }
}
