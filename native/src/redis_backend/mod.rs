//! [`RedisBackend`]: many managers, in many processes or machines, on one
//! store in Redis (one server or a cluster).

mod cache;
mod conn;
mod gets;
mod record;
mod transport;

use conn::Target;
use contextkit_core::client::{ClientConfig, SharedClient};
use contextkit_core::{
    Clock, Committed, ContextError, ContextEvent, ContextState, EventFeed, Joined, ManagerConfig,
    Result, SharedBackend, Snapshot, StorageFuture, Write, WriteReply, wire,
};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};
use transport::RedisTransport;

/// A shared backend on Redis 7+: every write is one call of a function of
/// the library in `native/redis/contextkit.lua`, which decides it against
/// what Redis holds and appends its event to the namespace's stream.
///
/// Keys of a namespace share one hash tag (`ck:{namespace}:…`), so a
/// namespace lives in one slot and works on Redis Cluster.
///
/// It is the core's [`SharedClient`] (what to call, the replies, settling
/// writes that got no answer, the event reader: the same code as the npm
/// package's) over a redis-rs transport, with an optional read cache.
///
/// ```no_run
/// use contextkit::{ContextManager, ManagerConfig, RedisBackend, json};
/// # #[tokio::main] async fn main() -> contextkit::Result<()> {
/// let backend = RedisBackend::new("redis://127.0.0.1:6379", "sessions")?;
/// let m = ContextManager::builder(ManagerConfig::default()).connect(backend).await?;
/// m.create_context("a", json!({ "x": 1 })).await?; // every process sees it now
/// # Ok(()) }
/// ```
pub struct RedisBackend {
    client: SharedClient<RedisTransport>,
    cache: Option<Arc<cache::Cache>>,
}

impl fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBackend")
            .field("namespace", &self.client.config().namespace)
            .field("timeout", &self.client.transport().timeout)
            .finish_non_exhaustive()
    }
}

impl RedisBackend {
    /// A backend for `namespace` on the Redis server at `url`
    /// (`redis://[user:password@]host[:port][/db]`, `rediss://` with TLS
    /// support compiled in). The URL is checked now; the connection is made
    /// when a manager [connects](contextkit_core::ManagerBuilder::connect).
    ///
    /// ```
    /// # use contextkit::RedisBackend;
    /// assert!(RedisBackend::new("redis://127.0.0.1:6379", "app").is_ok());
    /// assert_eq!(RedisBackend::new("http://x", "app").unwrap_err().code(), "INVALID_ARGUMENT");
    /// assert_eq!(RedisBackend::new("redis://127.0.0.1", "a{b}").unwrap_err().code(), "INVALID_ARGUMENT");
    /// ```
    pub fn new(url: &str, namespace: &str) -> Result<Self> {
        let client = redis::Client::open(url)
            .map_err(|e| ContextError::InvalidArgument(format!("redis url {url:?}: {e}")))?;
        Self::with_target(Target::Single(client), namespace)
    }

    /// A backend for `namespace` on a Redis Cluster, reached through any of
    /// `urls`. Redirections (`MOVED`, `ASK`) while slots move are followed.
    pub fn cluster(urls: &[&str], namespace: &str) -> Result<Self> {
        redis::cluster::ClusterClientBuilder::new(urls.to_vec())
            .build()
            .map_err(|e| {
                ContextError::InvalidArgument(format!("redis cluster urls {urls:?}: {e}"))
            })?;
        // (Built once to check the URLs; the connection is made with the timeout.)
        let urls = urls.iter().map(|u| (*u).to_owned()).collect();
        Self::with_target(Target::Cluster(urls), namespace)
    }

    fn with_target(target: Target, namespace: &str) -> Result<Self> {
        wire::check_namespace(namespace)?;
        let config = ClientConfig::new(namespace, crate::parse_json);
        let transport = RedisTransport::new(target, namespace);
        Ok(Self {
            client: SharedClient::new(transport, config),
            cache: None,
        })
    }

    /// How long one call may take, retries over new connections included,
    /// before it fails with `STORAGE` (default 2 s). A write that got no
    /// answer in that time reports that its outcome is unknown.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        let timeout = timeout.clamp(Duration::from_millis(1), Duration::from_secs(86_400));
        let (config, transport) = self.client.configure();
        config.timeout_ms = timeout.as_millis() as u64;
        transport.timeout = timeout;
        self
    }

    /// How long Redis remembers a write's reply for a retry of it (default
    /// 60 s, and never less than twice the [`timeout`](Self::timeout) plus
    /// 500 ms: a call retries, then settles, within that).
    pub fn operation_ttl(mut self, ttl: Duration) -> Self {
        let ttl = ttl.min(Duration::from_secs(86_400 * 365));
        self.client.configure().0.operation_ttl_ms = ttl.as_millis() as u64;
        self
    }

    /// About how many events the namespace's stream keeps (default 100,000).
    /// A manager further behind gets one `Lagged { missed }` with the exact count.
    pub fn event_retention(mut self, events: u64) -> Self {
        self.client.configure().0.event_retention = events.max(1);
        self
    }

    /// Take every time (creation, updates, expiry) from the manager's
    /// [`Clock`] instead of the Redis server's, and check expiry in the
    /// library instead of with Redis's own key expiry. Every manager of the
    /// namespace must then agree on the time: this is for tests that drive a
    /// [`ManualClock`](contextkit_core::ManualClock). A namespace is made for
    /// one kind of clock; joining it with the other is `INVALID_ARGUMENT`.
    pub fn client_clock(mut self) -> Self {
        self.client.configure().0.client_clock = true;
        self
    }

    /// Serve reads from a local cache, at most `max_stale` behind Redis.
    ///
    /// Off by default: every read then goes to Redis (linearizable). With
    /// the cache, a state read or written by this manager within the last
    /// `max_stale` is served from memory, so a read may miss a change made
    /// elsewhere up to `max_stale` ago, never more; this manager always sees
    /// its own writes. Redis's client tracking (RESP3) drops an entry as soon
    /// as its key changes anywhere, so reads are usually fresher still.
    ///
    /// While the cache is read, it asks Redis for its `TIME` on the tracking
    /// connection every `max_stale / 4`: an answer means every change made
    /// before it was asked has been heard of, so the entries nothing changed
    /// are current as of then and stay in memory (up to 16 × `max_stale`
    /// after their read). If answers stop, entries run out within
    /// `max_stale` of the last one. The answer also bounds Redis's clock: an
    /// entry kept that way is never served past its state's expiry.
    ///
    /// On a Redis Cluster, or with [`client_clock`](Self::client_clock),
    /// entries are not tracked: they are served until `max_stale` runs out.
    pub fn cached_reads(mut self, max_stale: Duration) -> Self {
        let prefix = format!("{}c:", self.client.transport().prefix);
        self.cache = Some(Arc::new(cache::Cache::new(max_stale, prefix)));
        self
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.client.config().namespace
    }

    /// Makes sure the cache hears of every change in the namespace, where
    /// Redis can push them (one server, Redis's clock): at once when the
    /// manager joins, else in the background (a call never waits for it).
    async fn track(&self, cache: &Arc<cache::Cache>, wait: bool) {
        let transport = self.client.transport();
        let (Target::Single(client), false) =
            (&transport.target, self.client.config().client_clock)
        else {
            return;
        };
        let Some(generation) = cache.begin_tracking() else {
            return;
        };
        let track = Arc::clone(cache).track(client.clone(), transport.timeout, generation);
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) if !wait => drop(runtime.spawn(track)),
            _ => track.await,
        }
    }

    /// A read of `id` through the cache: served from it when it may be,
    /// else read from Redis and offered to it.
    async fn cached_get(
        &self,
        cache: &Arc<cache::Cache>,
        id: &str,
    ) -> Result<Option<Arc<ContextState>>> {
        if let Some(hit) = cache.get(id) {
            return Ok(hit);
        }
        self.track(cache, false).await;
        let since = Instant::now();
        let state = self.client.get(id).await?;
        let revision = state.as_ref().map_or(0, |s| s.revision);
        cache.offer(id, state.clone(), revision, since);
        Ok(state)
    }

    /// A write; with the cache, what it committed is offered to it (kept
    /// only while changes of others can drop it).
    async fn cached_write(&self, cache: &Arc<cache::Cache>, write: Write) -> Result<WriteReply> {
        self.track(cache, false).await;
        let since = Instant::now();
        let reply = self.client.write(write).await?;
        for event in &reply.events {
            if let ContextEvent::Deleted { id, revision, .. }
            | ContextEvent::Expired { id, revision, .. }
            | ContextEvent::Evicted { id, revision, .. } = event
            {
                cache.offer(id, None, *revision, since);
            }
        }
        if let Ok(Committed::State(state)) = &reply.outcome {
            cache.offer(&state.id, Some(Arc::clone(state)), state.revision, since);
        }
        Ok(reply)
    }
}

impl SharedBackend for RedisBackend {
    fn join<'a>(
        &'a self,
        config: &'a ManagerConfig,
        clock: Arc<dyn Clock>,
    ) -> StorageFuture<'a, Joined> {
        Box::pin(async move {
            let joined = self.client.join(config, clock).await?;
            if let Some(cache) = &self.cache {
                self.track(cache, true).await;
            }
            Ok(joined)
        })
    }

    fn write(&self, write: Write) -> StorageFuture<'_, WriteReply> {
        match &self.cache {
            Some(cache) => Box::pin(self.cached_write(cache, write)),
            None => self.client.write(write),
        }
    }

    fn get<'a>(&'a self, id: &'a str) -> StorageFuture<'a, Option<Arc<ContextState>>> {
        match &self.cache {
            Some(cache) => Box::pin(self.cached_get(cache, id)),
            None => self.client.get(id),
        }
    }

    fn get_now(&self, id: &str) -> Option<Option<Arc<ContextState>>> {
        self.cache.as_ref()?.get(id)
    }

    fn recovery_points<'a>(&'a self, id: &'a str) -> StorageFuture<'a, Option<Vec<Snapshot>>> {
        self.client.recovery_points(id)
    }

    fn list(&self) -> StorageFuture<'_, Vec<Arc<ContextState>>> {
        self.client.list()
    }

    fn list_ids(&self) -> StorageFuture<'_, Vec<String>> {
        self.client.list_ids()
    }

    fn count(&self) -> StorageFuture<'_, usize> {
        self.client.count()
    }

    fn backoff(&self, attempt: u32) -> StorageFuture<'_, ()> {
        self.client.backoff(attempt)
    }

    fn start(&self, feed: EventFeed) {
        self.client.start(feed);
    }
}
