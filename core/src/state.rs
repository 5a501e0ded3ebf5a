//! The plain data types: states, snapshots, options, configuration and statistics.

use crate::Data;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One version of one context. Shared as `Arc<ContextState>`: reads never copy data.
///
/// ```
/// # use contextkit_core::*;
/// # futures::executor::block_on(async {
/// let m = ContextManager::new(ManagerConfig::default());
/// let s = m.create_context("a", json!({ "x": 1 })).await?;
/// assert_eq!(serde_json::to_value(&*s).unwrap()["createdAtMs"], json!(s.created_at_ms));
/// m.delete_context("a").await?;
/// let again = m.create_context("a", json!({ "x": 1 })).await?;
/// assert_eq!(again.version, s.version); // versions repeat after a re-create,
/// assert!(again.revision > s.revision); // revisions never do
/// # Ok::<(), ContextError>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContextState {
    /// The context id.
    pub id: String,
    /// Starts at 1 and grows by one with every committed change.
    pub version: u64,
    /// Store-wide commit number: strictly increasing, never reused, also
    /// across delete + re-create and reopen. Use it for ETags: a version
    /// repeats after delete + re-create, a revision does not. States stored
    /// before revisions existed read back with 0 until their next write.
    #[serde(default)]
    pub revision: u64,
    /// When the context was created (ms since the epoch).
    pub created_at_ms: u64,
    /// When this version was committed.
    pub updated_at_ms: u64,
    /// When the context expires, if it has a TTL.
    pub expires_at_ms: Option<u64>,
    /// The context's JSON object.
    pub data: Data,
    /// Free-form string metadata set at creation.
    pub metadata: BTreeMap<String, String>,
}

impl ContextState {
    /// Whether this state has expired at `now_ms`.
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let m = ContextManager::builder(ManagerConfig::default()).clock(ManualClock::new(0)).build();
    /// let opts = CreateOptions { ttl_ms: Some(10), ..CreateOptions::default() };
    /// let s = m.create_context_with("a", json!({}), opts).await?;
    /// assert!(!s.is_expired_at(9) && s.is_expired_at(10));
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    pub fn is_expired_at(&self, now_ms: u64) -> bool {
        self.expires_at_ms.is_some_and(|at| at <= now_ms)
    }
}

/// A recovery point: a copy of a context's data at one version.
///
/// ```
/// # use contextkit_core::*;
/// # futures::executor::block_on(async {
/// let m = ContextManager::new(ManagerConfig::default());
/// m.create_context("a", json!({ "x": 1 })).await?;
/// let p = m.create_recovery_point("a").await?;
/// assert_eq!((p.context_id.as_str(), p.version, &*p.data), ("a", 1, &json!({ "x": 1 })));
/// # Ok::<(), ContextError>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    /// Per-manager sequence number, strictly increasing.
    pub id: u64,
    /// The context it belongs to.
    pub context_id: String,
    /// The context's version when the snapshot was taken.
    pub version: u64,
    /// When the snapshot was taken.
    pub created_at_ms: u64,
    /// The data at that version.
    pub data: Data,
}

/// Options of [`ContextManager::create_context_with`](crate::ContextManager::create_context_with).
///
/// ```
/// # use contextkit_core::*;
/// # futures::executor::block_on(async {
/// let opts = CreateOptions {
///     ttl_ms: Some(60_000),
///     metadata: [("owner".to_string(), "ada".to_string())].into(),
/// };
/// let m = ContextManager::new(ManagerConfig::default());
/// assert_eq!(m.create_context_with("a", json!({}), opts).await?.metadata["owner"], "ada");
/// # Ok::<(), ContextError>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CreateOptions {
    /// Time to live in ms; each update restarts it. `None` uses the manager's default.
    pub ttl_ms: Option<u64>,
    /// String metadata stored with the context.
    pub metadata: BTreeMap<String, String>,
}

/// Options of [`ContextManager::update_context_with`](crate::ContextManager::update_context_with).
///
/// ```
/// # use contextkit_core::*;
/// # futures::executor::block_on(async {
/// let m = ContextManager::new(ManagerConfig::default());
/// m.create_context("a", json!({})).await?;
/// let opts = UpdateOptions { expected_version: Some(1), ..UpdateOptions::default() };
/// assert_eq!(m.update_context_with("a", json!({ "n": 1 }), opts).await?.version, 2);
/// # Ok::<(), ContextError>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct UpdateOptions {
    /// Commit only if the stored version equals this one.
    pub expected_version: Option<u64>,
    /// Replace the context's TTL; `None` keeps (and restarts) the current one.
    pub ttl_ms: Option<u64>,
}

/// Limits of a [`ContextManager`](crate::ContextManager).
///
/// ```
/// use contextkit_core::ManagerConfig;
/// let cfg = ManagerConfig { max_contexts: 100, ..ManagerConfig::default() };
/// assert_eq!(cfg.max_recovery_points, 10);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ManagerConfig {
    /// Most live contexts at once (default 10,000).
    pub max_contexts: usize,
    /// Recovery points kept per context, newest first (default 10; 0 disables them).
    pub max_recovery_points: usize,
    /// TTL of contexts created without one (default none).
    pub default_ttl_ms: Option<u64>,
    /// Longest id in UTF-8 bytes (default 256).
    pub max_id_bytes: usize,
    /// Largest serialized JSON data in bytes (default 1 MiB).
    pub max_data_bytes: usize,
    /// Sliding expiry (default off): every successful
    /// [`get_context`](crate::ContextManager::get_context) of a context with
    /// a TTL restarts it from now, as
    /// [`touch_context`](crate::ContextManager::touch_context) does (same
    /// version and revision, no event), and returns the touched state.
    /// Contexts without a TTL come back as they are, and listing touches
    /// nothing. Such a get is a write: it takes its shard's write lock and
    /// returns a copy (not the shared state), over a storage each one is
    /// stored durably before it returns, and in shared mode it is the
    /// backend's touch. In shared mode it is this manager's choice, not the
    /// namespace's: a manager that reads without sliding (an admin tool)
    /// keeps nothing alive.
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let clock = ManualClock::new(0);
    /// let cfg = ManagerConfig { sliding_ttl: true, ..ManagerConfig::default() };
    /// let m = ContextManager::builder(cfg).clock(clock.clone()).build();
    /// let opts = CreateOptions { ttl_ms: Some(100), ..CreateOptions::default() };
    /// m.create_context_with("a", json!({}), opts).await?;
    /// clock.advance(60);
    /// assert_eq!(m.get_context("a").await?.expires_at_ms, Some(160));
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    pub sliding_ttl: bool,
}

impl ManagerConfig {
    /// `INVALID_ARGUMENT` for settings no context could satisfy: a zero id
    /// length, a data limit below 2 bytes (`{}`), a zero default TTL, or a
    /// zero `max_contexts`.
    ///
    /// ```
    /// # use contextkit_core::*;
    /// assert!(ManagerConfig::default().validate().is_ok());
    /// let bad = ManagerConfig { default_ttl_ms: Some(0), ..ManagerConfig::default() };
    /// assert_eq!(bad.validate().unwrap_err().code(), "INVALID_ARGUMENT");
    /// ```
    pub fn validate(&self) -> crate::Result<()> {
        crate::validate::config(self)
    }
}

impl Default for ManagerConfig {
    fn default() -> Self {
        Self {
            max_contexts: 10_000,
            max_recovery_points: 10,
            default_ttl_ms: None,
            max_id_bytes: 256,
            max_data_bytes: 1 << 20,
            sliding_ttl: false,
        }
    }
}

/// Counters of a manager since it was built. See [`ContextManager::stats`](crate::ContextManager::stats).
///
/// ```
/// # use contextkit_core::*;
/// # futures::executor::block_on(async {
/// let m = ContextManager::new(ManagerConfig::default());
/// m.create_context("a", json!({})).await?;
/// m.get_context("a").await?;
/// assert_eq!((m.stats().reads, m.stats().hits), (1, 1));
/// # Ok::<(), ContextError>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    /// Contexts held now (expired ones not yet swept included). In shared
    /// mode, as the store counted them at this manager's last write:
    /// [`try_len`](crate::ContextManager::try_len) asks the store now.
    pub contexts: usize,
    /// `get_context` calls.
    pub reads: usize,
    /// Reads that found a live context.
    pub hits: usize,
    /// Reads that did not.
    pub misses: usize,
    /// Successful creates.
    pub creates: usize,
    /// Successful updates and restores.
    pub updates: usize,
    /// Updates refused with `VERSION_CONFLICT`.
    pub conflicts: usize,
    /// Successful deletes.
    pub deletes: usize,
    /// Contexts removed because they expired.
    pub expirations: usize,
    /// Contexts evicted to honour a lowered capacity.
    pub evictions: usize,
}
