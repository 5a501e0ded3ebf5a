//! [`ContextManager`]: the store.

use crate::Storage;
use crate::backend::Backend;
use crate::events::{DEFAULT_EVENT_CAPACITY, Subscription};
use crate::storage::MaybeSend;
use crate::store::{Entry, Inner, Removal};
use crate::sync::Ordering;
use crate::write::Patch;
use crate::{
    Clock, ContextError, ContextState, CreateOptions, Data, ManagerConfig, Result, Stats,
    SystemClock, UpdateOptions, validate,
};
use serde_json::Value;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

/// The context store: keyed, versioned JSON contexts.
///
/// Cloning is cheap and every clone shares one store. Every check-then-act
/// (exists? full? version matches? expired?) runs in one critical section of
/// the context's shard, so concurrent calls behave as if they ran one at a time.
///
/// ```
/// use contextkit_core::{ContextManager, ManagerConfig};
/// use serde_json::json;
/// # futures::executor::block_on(async {
/// let m = ContextManager::new(ManagerConfig::default());
/// let s = m.create_context("a", json!({ "x": 1 })).await?;
/// assert_eq!(s.version, 1);
/// let s = m.update_context("a", json!({ "x": 2 }), Some(1)).await?;
/// assert_eq!(s.version, 2);
/// let err = m.update_context("a", json!({ "x": 3 }), Some(1)).await.unwrap_err();
/// assert_eq!(err.code(), "VERSION_CONFLICT");
/// # Ok::<(), contextkit_core::ContextError>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct ContextManager {
    pub(crate) inner: Arc<Inner>,
}

/// Builds a [`ContextManager`] with a chosen clock, hash seed, shard count or
/// event capacity.
///
/// ```
/// use contextkit_core::{ContextManager, ManagerConfig, ManualClock};
/// let clock = ManualClock::new(0);
/// let m = ContextManager::builder(ManagerConfig::default()).clock(clock.clone()).build();
/// # let _ = m;
/// ```
#[derive(Debug)]
pub struct ManagerBuilder {
    pub(crate) config: ManagerConfig,
    clock: Arc<dyn Clock>,
    seed: Option<[u64; 4]>,
    shards: usize,
    event_capacity: usize,
}

impl ManagerBuilder {
    /// The time source (default: [`SystemClock`]).
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let clock = ManualClock::new(5_000);
    /// let m = ContextManager::builder(ManagerConfig::default()).clock(clock.clone()).build();
    /// assert_eq!(m.create_context("a", json!({})).await?.created_at_ms, 5_000);
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Keys of the id hash. Natively the default comes from the operating
    /// system's randomness; hosts without it (wasm) pass random keys here.
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let m = ContextManager::builder(ManagerConfig::default()).hash_seed([1, 2, 3, 4]).build();
    /// m.create_context("a", json!({})).await?;
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    pub fn hash_seed(mut self, seed: [u64; 4]) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Number of independently locked shards, rounded up to a power of two (default 32).
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let m = ContextManager::builder(ManagerConfig::default()).shards(4).build();
    /// m.create_context("a", json!({})).await?;
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = shards;
        self
    }

    /// Events a subscriber may fall behind by before it lags (default and minimum 1,024).
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let m = ContextManager::builder(ManagerConfig::default()).event_capacity(4096).build();
    /// let _events = m.subscribe();
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    pub fn event_capacity(mut self, capacity: usize) -> Self {
        self.event_capacity = capacity.max(DEFAULT_EVENT_CAPACITY);
        self
    }

    /// The manager, in memory only; [`open`](Self::open) builds one over a storage.
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let m = ContextManager::builder(ManagerConfig::default()).build();
    /// assert!(m.is_empty().await);
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Panics
    ///
    /// If the config is invalid ([`ManagerConfig::validate`] says why);
    /// [`try_build`](Self::try_build) returns that error instead.
    pub fn build(self) -> ContextManager {
        self.try_build()
            .unwrap_or_else(|e| panic!("invalid ManagerConfig: {e}"))
    }

    /// [`build`](Self::build), or `INVALID_ARGUMENT` for an invalid config.
    ///
    /// ```
    /// # use contextkit_core::*;
    /// let bad = ManagerConfig { default_ttl_ms: Some(0), ..ManagerConfig::default() };
    /// let e = ContextManager::builder(bad).try_build().unwrap_err();
    /// assert_eq!(e.code(), "INVALID_ARGUMENT");
    /// ```
    pub fn try_build(self) -> Result<ContextManager> {
        self.config.validate()?;
        Ok(self.build_with(None))
    }

    pub(crate) fn build_with(self, storage: Option<Arc<dyn Storage>>) -> ContextManager {
        let seed = self.seed.unwrap_or_else(random_seed);
        let inner = Inner::new(
            self.config,
            self.clock,
            seed,
            self.shards,
            self.event_capacity,
            storage,
        );
        let inner = Arc::new(inner);
        ContextManager { inner }
    }
}

/// Process-random keys from the standard library's hasher seeding.
#[cfg(not(target_arch = "wasm32"))]
fn random_seed() -> [u64; 4] {
    use std::hash::BuildHasher;
    let s = std::collections::hash_map::RandomState::new();
    [0_u8, 1, 2, 3].map(|i| s.hash_one(i))
}

/// Fixed keys: wasm32-unknown-unknown has no randomness of its own (the
/// standard library's would be fixed too), and the npm package always sets a
/// seed from `crypto.getRandomValues`. Leaves SipHash out of the module.
#[cfg(target_arch = "wasm32")]
fn random_seed() -> [u64; 4] {
    [
        0x243f_6a88_85a3_08d3,
        0x1319_8a2e_0370_7344,
        0xa409_3822_299f_31d0,
        0x082e_fa98_ec4e_6c89,
    ]
}

impl ContextManager {
    /// An in-memory manager on the system clock.
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let m = ContextManager::new(ManagerConfig { max_contexts: 100, ..ManagerConfig::default() });
    /// assert_eq!(m.max_contexts(), 100);
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Panics
    ///
    /// If the config is invalid (a `max_contexts`, `max_id_bytes` or
    /// `default_ttl_ms` of 0, a `max_data_bytes` under 2: see
    /// [`ManagerConfig::validate`]); [`try_new`](Self::try_new) returns that
    /// error instead.
    pub fn new(config: ManagerConfig) -> Self {
        Self::builder(config).build()
    }

    /// [`new`](Self::new), or `INVALID_ARGUMENT` for an invalid config.
    ///
    /// ```
    /// # use contextkit_core::*;
    /// let bad = ManagerConfig { max_id_bytes: 0, ..ManagerConfig::default() };
    /// assert_eq!(ContextManager::try_new(bad).unwrap_err().code(), "INVALID_ARGUMENT");
    /// ```
    pub fn try_new(config: ManagerConfig) -> Result<Self> {
        Self::builder(config).try_build()
    }

    /// A builder for a manager with another clock, seed or shard count.
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let m = ContextManager::builder(ManagerConfig::default()).clock(ManualClock::new(0)).build();
    /// assert_eq!(m.clock().now_ms(), 0);
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    pub fn builder(config: ManagerConfig) -> ManagerBuilder {
        ManagerBuilder {
            config,
            clock: Arc::new(SystemClock),
            seed: None,
            shards: 32,
            event_capacity: DEFAULT_EVENT_CAPACITY,
        }
    }

    /// The configuration it was built with.
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let m = ContextManager::new(ManagerConfig::default());
    /// assert_eq!(m.config().max_recovery_points, 10);
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    pub fn config(&self) -> &ManagerConfig {
        &self.inner.cfg
    }

    /// The manager's clock.
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let clock = ManualClock::new(42);
    /// let m = ContextManager::builder(ManagerConfig::default()).clock(clock).build();
    /// assert_eq!(m.clock().now_ms(), 42);
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// The capacity in force: the config's `max_contexts`, or an adapter's if smaller.
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let m = ContextManager::new(ManagerConfig { max_contexts: 50, ..ManagerConfig::default() });
    /// let _adapter = ContextAdapter::new(m.clone(), AdapterConfig { max_contexts: 20, ..AdapterConfig::default() });
    /// assert_eq!(m.max_contexts(), 20);
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    pub fn max_contexts(&self) -> usize {
        self.inner.limit.load(Ordering::SeqCst)
    }

    /// The id the next recovery point will get. In shared mode the
    /// namespace hands out the ids, to every manager from one sequence, and
    /// no manager can say which is next: 0 there (read a point's id from
    /// [`create_recovery_point`](Self::create_recovery_point)).
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let m = ContextManager::new(ManagerConfig::default());
    /// m.create_context("a", json!({})).await?;
    /// let next = m.next_recovery_point_id();
    /// assert_eq!(m.create_recovery_point("a").await?.id, next);
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    pub fn next_recovery_point_id(&self) -> u64 {
        in_shared_mode!(self.inner, _shared => {
            return 0;
        });
        self.inner.next_snapshot.peek()
    }

    /// Whether two handles share one store.
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let m = ContextManager::new(ManagerConfig::default());
    /// assert!(m.same_store(&m.clone()));
    /// assert!(!m.same_store(&ContextManager::new(ManagerConfig::default())));
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    pub fn same_store(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Creates `id` at version 1. `ALREADY_EXISTS` if a live context has the id
    /// (never overwrites); `CAPACITY_EXCEEDED` when `max_contexts` live contexts exist.
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let m = ContextManager::new(ManagerConfig::default());
    /// let s = m.create_context("a", json!({ "x": 1 })).await?;
    /// assert_eq!(s.version, 1);
    /// let err = m.create_context("a", json!({ "x": 2 })).await.unwrap_err();
    /// assert_eq!(err.code(), "ALREADY_EXISTS");
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

    /// [`create_context`](Self::create_context) with a TTL and metadata.
    ///
    /// ```
    /// use contextkit_core::{ContextManager, CreateOptions, ManagerConfig};
    /// # futures::executor::block_on(async {
    /// let m = ContextManager::new(ManagerConfig::default());
    /// let opts = CreateOptions { ttl_ms: Some(60_000), ..Default::default() };
    /// let s = m.create_context_with("a", serde_json::json!({}), opts).await.unwrap();
    /// assert_eq!(s.expires_at_ms, Some(s.created_at_ms + 60_000));
    /// # });
    /// ```
    pub async fn create_context_with(
        &self,
        id: &str,
        data: impl Into<Data>,
        opts: CreateOptions,
    ) -> Result<Arc<ContextState>> {
        let data = data.into();
        let inner = &*self.inner;
        validate::id(&inner.cfg, id)?;
        validate::data(&inner.cfg, &data)?;
        validate::metadata(&inner.cfg, &opts.metadata)?;
        let ttl_ms = opts.ttl_ms.or(inner.cfg.default_ttl_ms);
        validate::ttl(ttl_ms)?;
        // Timestamps are set inside the critical section, where the call takes effect.
        let state = ContextState {
            id: id.to_owned(),
            version: 1,
            // Taken as the create commits.
            revision: 0,
            created_at_ms: 0,
            updated_at_ms: 0,
            expires_at_ms: None,
            data,
            metadata: opts.metadata,
        };
        self.create(id, state, ttl_ms).await
    }

    /// The live context `id`, shared (never copied), with the revision of the
    /// commit that made it. `NOT_FOUND` if absent or expired. With
    /// [`sliding_ttl`](ManagerConfig::sliding_ttl) it is a
    /// [`touch_context`](Self::touch_context) instead: a context with a TTL
    /// comes back (copied) with its expiry restarted.
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let m = ContextManager::new(ManagerConfig::default());
    /// let s = m.create_context("a", json!({ "x": 1 })).await?;
    /// assert_eq!(m.get_context("a").await?.data["x"], 1);
    /// assert_eq!(m.get_context("a").await?.revision, s.revision);
    /// assert_eq!(m.get_context("b").await.unwrap_err().code(), "NOT_FOUND");
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    pub async fn get_context(&self, id: &str) -> Result<Arc<ContextState>> {
        let inner = &*self.inner;
        if inner.cfg.sliding_ttl {
            // Boxed: a plain get's future stays small (a write's is large).
            return Box::pin(self.touch_counted(id, true)).await;
        }
        validate::id(&inner.cfg, id)?;
        in_shared_mode!(inner, shared => {
            return shared.get(inner, id).await;
        });
        // The shard is found once, for the read and its count.
        let at = inner.shard_index(id);
        let found = self
            .read_id(at, id, |map| {
                // The clock is read only for contexts that can expire.
                map.get(id)
                    .filter(|e| e.state.expires_at_ms.is_none_or(|t| t > inner.now()))
                    .map(|e| Arc::clone(&e.state))
            })
            .await;
        inner.shards[at].count_read(found.is_some());
        found.ok_or_else(|| ContextError::not_found(id))
    }

    /// A touch of `id`, counted as a read (a hit or a miss) with `read`: the
    /// one path of `touch_context` and sliding gets, so that the touch
    /// exists once in the binary.
    async fn touch_counted(&self, id: &str, read: bool) -> Result<Arc<ContextState>> {
        let inner = &*self.inner;
        validate::id(&inner.cfg, id)?;
        let found = match self.touch(id).await {
            Err(ContextError::NotFound { .. }) => None,
            touched => Some(touched?),
        };
        if read {
            inner.count_read(id, found.is_some());
        }
        found.ok_or_else(|| ContextError::not_found(id))
    }

    /// Replaces the data of `id`: version + 1, expiry restarted.
    /// `VERSION_CONFLICT` if `expected_version` is given and differs;
    /// `NOT_FOUND` if absent or expired (an update never creates).
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let m = ContextManager::new(ManagerConfig::default());
    /// m.create_context("a", json!({ "n": 1 })).await?;
    /// assert_eq!(m.update_context("a", json!({ "n": 2 }), Some(1)).await?.version, 2);
    /// let err = m.update_context("a", json!({ "n": 3 }), Some(1)).await.unwrap_err();
    /// assert_eq!(err.code(), "VERSION_CONFLICT");
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    pub async fn update_context(
        &self,
        id: &str,
        data: impl Into<Data>,
        expected_version: Option<u64>,
    ) -> Result<Arc<ContextState>> {
        let opts = UpdateOptions {
            expected_version,
            ttl_ms: None,
        };
        self.update_context_with(id, data, opts).await
    }

    /// [`update_context`](Self::update_context) that can also replace the TTL.
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let m = ContextManager::new(ManagerConfig::default());
    /// m.create_context("a", json!({})).await?;
    /// let opts = UpdateOptions { expected_version: Some(1), ttl_ms: Some(60_000) };
    /// let s = m.update_context_with("a", json!({ "n": 1 }), opts).await?;
    /// assert_eq!(s.expires_at_ms, Some(s.updated_at_ms + 60_000));
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    // (Not an `async fn`: its future is `update_expecting`'s own, with no
    // wrapper around it in the binary.)
    pub fn update_context_with<'a>(
        &'a self,
        id: &'a str,
        data: impl Into<Data>,
        opts: UpdateOptions,
    ) -> impl Future<Output = Result<Arc<ContextState>>> + 'a {
        self.update_expecting(id, data.into(), opts, None)
    }

    /// Replaces the data of `id` only if its stored state is the one
    /// committed at `revision` (an ETag's value, say): unlike a version, a
    /// revision never repeats, also after a delete and a create of the same
    /// id. Otherwise `VERSION_CONFLICT`, whose `expected` and `actual` are
    /// then revisions; `NOT_FOUND` if absent or expired. (Revision 0 is only
    /// that of a state an owned storage kept from before revisions existed.)
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let m = ContextManager::new(ManagerConfig::default());
    /// let seen = m.create_context("a", json!({ "owner": "ann" })).await?;
    /// m.delete_context("a").await?;
    /// m.create_context("a", json!({ "owner": "bob" })).await?; // version 1 again
    /// let err = m.update_context_if_revision("a", json!({}), seen.revision).await.unwrap_err();
    /// assert_eq!(err.code(), "VERSION_CONFLICT");
    /// let now = m.get_context("a").await?;
    /// assert_eq!(m.update_context_if_revision("a", json!({}), now.revision).await?.version, 2);
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    pub async fn update_context_if_revision(
        &self,
        id: &str,
        data: impl Into<Data>,
        revision: u64,
    ) -> Result<Arc<ContextState>> {
        let opts = UpdateOptions {
            expected_version: None,
            ttl_ms: None,
        };
        self.update_expecting(id, data.into(), opts, Some(revision))
            .await
    }

    /// [`update_context_with`](Self::update_context_with) that may also
    /// expect the state committed at `expected_revision`, as
    /// [`update_context_if_revision`](Self::update_context_if_revision) does
    /// (a conflict reports versions when the version differs, else
    /// revisions).
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let m = ContextManager::new(ManagerConfig::default());
    /// let s = m.create_context("a", json!({})).await?;
    /// let opts = UpdateOptions { ttl_ms: Some(60_000), ..UpdateOptions::default() };
    /// let u = m.update_context_expecting("a", json!({ "n": 1 }), opts, Some(s.revision)).await?;
    /// assert_eq!(u.expires_at_ms, Some(u.updated_at_ms + 60_000));
    /// let stale = m.update_context_expecting("a", json!({}), opts, Some(s.revision)).await;
    /// assert_eq!(stale.unwrap_err().code(), "VERSION_CONFLICT");
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    // (Not an `async fn`, as `update_context_with`.)
    pub fn update_context_expecting<'a>(
        &'a self,
        id: &'a str,
        data: impl Into<Data>,
        opts: UpdateOptions,
        expected_revision: Option<u64>,
    ) -> impl Future<Output = Result<Arc<ContextState>>> + 'a {
        self.update_expecting(id, data.into(), opts, expected_revision)
    }

    /// An update that may also expect the state committed at
    /// `expected_revision` (a conflict reports versions when the version
    /// differs, else revisions).
    pub(crate) async fn update_expecting(
        &self,
        id: &str,
        data: Data,
        opts: UpdateOptions,
        expected_revision: Option<u64>,
    ) -> Result<Arc<ContextState>> {
        let inner = &*self.inner;
        validate::id(&inner.cfg, id)?;
        validate::data(&inner.cfg, &data)?;
        validate::ttl(opts.ttl_ms)?;
        in_shared_mode!(inner, shared => {
            let write = crate::Write::Update {
                id: id.to_owned(),
                data,
                expected_version: opts.expected_version,
                expected_revision,
                ttl_ms: opts.ttl_ms,
            };
            return shared.update(inner, write).await;
        });
        let mut data = Some(data);
        self.write_state(id, &mut |inner, _, map| {
            let now = inner.now();
            let entry = inner
                .live_mut(map, id, now)
                .ok_or_else(|| ContextError::not_found(id))?;
            inner.check_version(entry, id, opts.expected_version, expected_revision)?;
            let ttl_ms = opts.ttl_ms.or(entry.ttl_ms());
            let data = data.take().expect("an update commits at most once");
            let state = inner.next_state(entry, data, now, ttl_ms)?;
            Ok(Patch::SetState {
                state,
                ttl_ms,
                restored: false,
            })
        })
        .await
    }

    /// Replaces `id`'s data with `f` of its current data, atomically: no
    /// write of anyone else comes between the read `f` sees and the commit,
    /// so concurrent modifies of one context never lose an update and need
    /// no retry loop of the caller. Returns the new state (version + 1, TTL
    /// restarted as by an update). `NOT_FOUND` if absent or expired.
    ///
    /// In memory and over an owned storage `f` runs inside the context's
    /// critical section, once per attempt to decide the write (more than
    /// once only when a write of the same id was in progress): keep it quick
    /// and free of side effects, and do not call the manager from it. In
    /// shared mode it runs on a fresh read and the result is committed by
    /// compare-and-set; when another process wrote in between, `f` runs
    /// again on the newer data after a short random wait, up to
    /// [`MODIFY_ATTEMPTS`](Self::MODIFY_ATTEMPTS) times, after which the
    /// call ends with `VERSION_CONFLICT`.
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let m = ContextManager::new(ManagerConfig::default());
    /// m.create_context("cart", json!({ "items": 0 })).await?;
    /// let s = m
    ///     .modify_context("cart", |data| {
    ///         let mut data = data.clone();
    ///         data["items"] = json!(data["items"].as_u64().unwrap_or(0) + 1);
    ///         data
    ///     })
    ///     .await?;
    /// assert_eq!((s.version, &*s.data), (2, &json!({ "items": 1 })));
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    pub async fn modify_context<F>(&self, id: &str, mut f: F) -> Result<Arc<ContextState>>
    where
        F: FnMut(&Value) -> Value + MaybeSend,
    {
        self.try_modify_context(id, move |data| Ok(f(data))).await
    }

    /// [`modify_context`](Self::modify_context) with a function that may
    /// refuse: its error ends the call and nothing changes.
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let m = ContextManager::new(ManagerConfig::default());
    /// m.create_context("stock", json!({ "left": 0 })).await?;
    /// let sold = m
    ///     .try_modify_context("stock", |data| match data["left"].as_u64() {
    ///         Some(left) if left > 0 => Ok(json!({ "left": left - 1 })),
    ///         _ => Err(ContextError::InvalidArgument("sold out".into())),
    ///     })
    ///     .await;
    /// assert_eq!(sold.unwrap_err().code(), "INVALID_ARGUMENT");
    /// assert_eq!(m.get_context("stock").await?.version, 1);
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    pub async fn try_modify_context<F>(&self, id: &str, mut f: F) -> Result<Arc<ContextState>>
    where
        F: FnMut(&Value) -> Result<Value> + MaybeSend,
    {
        self.try_modify_data(id, move |data| f(data).map(Data::from))
            .await
    }

    /// [`try_modify_context`](Self::try_modify_context) on [`Data`] as it is
    /// held: text-held data reaches `f` without a tree being built, and `f`
    /// may return data held as text.
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let m = ContextManager::new(ManagerConfig::default());
    /// m.create_context("a", Data::from_json(r#"{"n":1}"#, parse_json)?).await?;
    /// let s = m
    ///     .try_modify_data("a", |data| {
    ///         let text = data.json_text().replace("1", "2");
    ///         Data::from_json(text, parse_json)
    ///     })
    ///     .await?;
    /// assert_eq!(s.data.as_json(), Some(r#"{"n":2}"#));
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    pub async fn try_modify_data<F>(&self, id: &str, mut f: F) -> Result<Arc<ContextState>>
    where
        F: FnMut(&Data) -> Result<Data> + MaybeSend,
    {
        let inner = &*self.inner;
        validate::id(&inner.cfg, id)?;
        in_shared_mode!(inner, shared => {
            return shared.modify(inner, id, &mut f, Self::MODIFY_ATTEMPTS).await;
        });
        self.write_state(id, &mut |inner, _, map| {
            let now = inner.now();
            let entry = inner
                .live_mut(map, id, now)
                .ok_or_else(|| ContextError::not_found(id))?;
            let data = f(&entry.state.data)?;
            validate::data(&inner.cfg, &data)?;
            let ttl_ms = entry.ttl_ms();
            let state = inner.next_state(entry, data, now, ttl_ms)?;
            Ok(Patch::SetState {
                state,
                ttl_ms,
                restored: false,
            })
        })
        .await
    }

    /// How many times [`modify_context`](Self::modify_context) tries in
    /// shared mode before it gives up with `VERSION_CONFLICT`. A bound on a
    /// pathological race, not a tuning knob: with 16 writers of one context
    /// each try loses with a probability near 15/16, so a bound of 32 was
    /// reached in tests (about one modify in ten); at 256 the chance is
    /// below one in ten million. The waits between tries stop growing at
    /// 51 ms.
    pub const MODIFY_ATTEMPTS: u32 = 256;

    /// Restarts `id`'s TTL from now without a write of its data: the same
    /// version and revision, no event (for idle expiry, where a read counts
    /// as activity: touch on each request). A context without a TTL is
    /// returned as it is. `NOT_FOUND` if absent or expired.
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let clock = ManualClock::new(1_000);
    /// let m = ContextManager::builder(ManagerConfig::default()).clock(clock.clone()).build();
    /// let opts = CreateOptions { ttl_ms: Some(100), ..CreateOptions::default() };
    /// let s = m.create_context_with("a", json!({}), opts).await?;
    /// clock.advance(60);
    /// let t = m.touch_context("a").await?;
    /// assert_eq!((t.version, t.revision, t.expires_at_ms), (s.version, s.revision, Some(1_160)));
    /// clock.advance(60); // 120 ms after the create, 60 after the touch
    /// assert!(m.get_context("a").await.is_ok());
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    pub async fn touch_context(&self, id: &str) -> Result<Arc<ContextState>> {
        self.touch_counted(id, false).await
    }

    /// Deletes `id` and its recovery points together. `NOT_FOUND` if absent or expired.
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let m = ContextManager::new(ManagerConfig::default());
    /// m.create_context("a", json!({})).await?;
    /// m.delete_context("a").await?;
    /// assert_eq!(m.delete_context("a").await.unwrap_err().code(), "NOT_FOUND");
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    pub async fn delete_context(&self, id: &str) -> Result<()> {
        let inner = &*self.inner;
        validate::id(&inner.cfg, id)?;
        in_shared_mode!(inner, shared => {
            return shared.delete(inner, id).await;
        });
        self.write_through(id, |inner, _, map| {
            let now = inner.now();
            inner
                .live_mut(map, id, now)
                .ok_or_else(|| ContextError::not_found(id))?;
            Ok((Patch::Remove(Removal::Deleted), ()))
        })
        .await
    }

    /// Ids of the live contexts, sorted. Each shard is read atomically; under
    /// concurrent writes the list is as of some moment per shard.
    ///
    /// A shared backend that fails shows as no contexts here: [`try_list_context_ids`](Self::try_list_context_ids)
    /// reports the failure.
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let m = ContextManager::new(ManagerConfig::default());
    /// for id in ["b", "a"] {
    ///     m.create_context(id, json!({})).await?;
    /// }
    /// assert_eq!(m.list_context_ids().await, ["a", "b"]);
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    pub async fn list_context_ids(&self) -> Vec<String> {
        in_shared_mode!(self.inner, shared => {
            return shared.list_ids().await.unwrap_or_default();
        });
        let mut ids = Vec::new();
        self.scan(|map| {
            let now = self.inner.now();
            ids.extend(
                map.iter()
                    .filter(|(_, e)| !e.state.is_expired_at(now))
                    .map(|(id, _)| id.clone()),
            );
        })
        .await;
        ids.sort_unstable();
        ids
    }

    /// The live contexts, sorted by id (shared, not copied).
    ///
    /// A shared backend that fails shows as no contexts here: [`try_list_contexts`](Self::try_list_contexts)
    /// reports the failure.
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let m = ContextManager::new(ManagerConfig::default());
    /// m.create_context("a", json!({ "x": 1 })).await?;
    /// assert_eq!(m.list_contexts().await[0].data["x"], 1);
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    pub async fn list_contexts(&self) -> Vec<Arc<ContextState>> {
        in_shared_mode!(self.inner, shared => {
            return shared.list().await.unwrap_or_default();
        });
        let mut states = Vec::new();
        self.scan(|map| {
            let now = self.inner.now();
            states.extend(
                map.values()
                    .filter(|e| !e.state.is_expired_at(now))
                    .map(|e| Arc::clone(&e.state)),
            );
        })
        .await;
        states.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        states
    }

    /// Number of live contexts.
    ///
    /// A shared backend that fails shows as no contexts here: [`try_len`](Self::try_len)
    /// reports the failure.
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let m = ContextManager::new(ManagerConfig::default());
    /// m.create_context("a", json!({})).await?;
    /// assert_eq!(m.len().await, 1);
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    pub async fn len(&self) -> usize {
        in_shared_mode!(self.inner, shared => {
            return shared.count().await.unwrap_or_default();
        });
        // Through a storage the count also holds the slots of creates still
        // being written, which no read shows yet: count what the maps hold.
        if matches!(self.backend().await, Backend::Memory)
            && !self.may_have_expired(self.inner.now())
        {
            return self.inner.count.load(Ordering::SeqCst);
        }
        let mut n = 0;
        self.scan_shards(|map| {
            let now = self.inner.now();
            n += map.values().filter(|e| !e.state.is_expired_at(now)).count();
        })
        .await;
        n
    }

    /// Whether there are no live contexts.
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let m = ContextManager::new(ManagerConfig::default());
    /// assert!(m.is_empty().await);
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    pub async fn is_empty(&self) -> bool {
        self.len().await == 0
    }

    /// [`list_context_ids`](Self::list_context_ids) that reports a failure
    /// of a shared backend (`STORAGE`) instead of showing no contexts. In
    /// memory and over an owned storage it never fails.
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let m = ContextManager::new(ManagerConfig::default());
    /// m.create_context("a", json!({})).await?;
    /// assert_eq!(m.try_list_context_ids().await?, ["a"]);
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    pub async fn try_list_context_ids(&self) -> Result<Vec<String>> {
        in_shared_mode!(self.inner, shared => {
            return shared.list_ids().await;
        });
        Ok(self.list_context_ids().await)
    }

    /// [`list_contexts`](Self::list_contexts) that reports a failure of a
    /// shared backend (`STORAGE`) instead of showing no contexts.
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let m = ContextManager::new(ManagerConfig::default());
    /// assert!(m.try_list_contexts().await?.is_empty());
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    pub async fn try_list_contexts(&self) -> Result<Vec<Arc<ContextState>>> {
        in_shared_mode!(self.inner, shared => {
            return shared.list().await;
        });
        Ok(self.list_contexts().await)
    }

    /// [`len`](Self::len) that reports a failure of a shared backend
    /// (`STORAGE`) instead of counting 0.
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let m = ContextManager::new(ManagerConfig::default());
    /// assert_eq!(m.try_len().await?, 0);
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    pub async fn try_len(&self) -> Result<usize> {
        in_shared_mode!(self.inner, shared => {
            return shared.count().await;
        });
        Ok(self.len().await)
    }

    /// A stream of every committed change, in commit order, starting now.
    /// A slow subscriber never blocks writers; see [`Subscription`].
    ///
    /// ```
    /// use contextkit_core::{ContextEvent, ContextManager, ManagerConfig};
    /// use futures::StreamExt;
    /// # futures::executor::block_on(async {
    /// let m = ContextManager::new(ManagerConfig::default());
    /// let mut events = m.subscribe();
    /// let s = m.create_context("a", serde_json::json!({})).await.unwrap();
    /// let created = ContextEvent::Created { id: "a".into(), version: 1, revision: s.revision };
    /// assert_eq!(events.next().await, Some(created));
    /// # });
    /// ```
    pub fn subscribe(&self) -> Subscription {
        self.inner.events.subscribe()
    }

    /// Counters since the manager was built.
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let m = ContextManager::new(ManagerConfig::default());
    /// m.create_context("a", json!({})).await?;
    /// let _ = m.get_context("missing").await;
    /// let stats = m.stats();
    /// assert_eq!((stats.contexts, stats.creates, stats.misses), (1, 1, 1));
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    pub fn stats(&self) -> Stats {
        self.inner.stats()
    }
}

impl Inner {
    pub(crate) fn check_version(
        &self,
        entry: &Entry,
        id: &str,
        version: Option<u64>,
        revision: Option<u64>,
    ) -> Result<()> {
        let s = &entry.state;
        let revision_differs = revision.is_some_and(|r| r != s.revision);
        // Versions, unless they match and only the revision differs (the
        // context was deleted and created again): then revisions.
        let conflict = match version {
            Some(v) if v != s.version => Some((v, s.version)),
            _ if revision_differs => revision.map(|r| (r, s.revision)),
            _ => None,
        };
        match conflict {
            Some((expected, actual)) => {
                self.counters.conflicts.fetch_add(1, Ordering::Relaxed);
                Err(ContextError::VersionConflict {
                    id: id.to_owned(),
                    expected,
                    actual,
                })
            }
            None => Ok(()),
        }
    }

    /// The next version of `entry` with `data`, its expiry restarted.
    pub(crate) fn next_state(
        &self,
        entry: &Entry,
        data: Data,
        now: u64,
        ttl_ms: Option<u64>,
    ) -> Result<Arc<ContextState>> {
        let prev = &entry.state;
        if prev.version >= validate::MAX_COUNTER {
            return Err(ContextError::capacity(
                "versions of a context",
                usize::try_from(validate::MAX_COUNTER).unwrap_or(usize::MAX),
            ));
        }
        Ok(Arc::new(ContextState {
            id: prev.id.clone(),
            version: prev.version + 1,
            // Taken as the write commits.
            revision: 0,
            created_at_ms: prev.created_at_ms,
            updated_at_ms: now.max(prev.updated_at_ms),
            expires_at_ms: Self::expires_at(now, ttl_ms),
            data,
            metadata: prev.metadata.clone(),
        }))
    }

    pub(crate) fn limit(&self) -> usize {
        self.limit.load(Ordering::SeqCst)
    }
}

impl fmt::Debug for ContextManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContextManager")
            .field("config", &self.inner.cfg)
            .field("contexts", &self.inner.count.load(Ordering::Relaxed))
            .field("shards", &self.inner.shards.len())
            .finish_non_exhaustive()
    }
}
