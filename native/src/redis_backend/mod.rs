//! [`RedisBackend`]: many managers, in many processes or machines, on one
//! store in Redis (one server or a cluster).

mod cache;
mod conn;
mod events;
mod record;

use conn::{Conn, Failure, Target, call};
use contextkit_core::wire;
use contextkit_core::{
    Clock, Committed, ContextError, ContextState, EventFeed, Joined, ManagerConfig, Result,
    SharedBackend, Snapshot, StorageFuture, Write, WriteReply,
};
use record::int;
use redis::Value;
use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// A shared backend on Redis 7+: every write is one call of a function of
/// the library in `native/redis/contextkit.lua`, which decides it against
/// what Redis holds and appends its event to the namespace's stream.
///
/// Keys of a namespace share one hash tag (`ck:{namespace}:…`), so a
/// namespace lives in one slot and works on Redis Cluster.
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
    shared: Arc<Settings>,
    conn: OnceLock<Conn>,
    epoch: OnceLock<String>,
    feed: OnceLock<EventFeed>,
    runtime: OnceLock<tokio::runtime::Handle>,
    clock: OnceLock<Arc<dyn Clock>>,
    cache: Option<Arc<cache::Cache>>,
}

/// What the backend and its event reader share.
#[derive(Debug)]
struct Settings {
    target: Target,
    namespace: String,
    /// `ck:{namespace}:`
    prefix: String,
    meta: String,
    timeout: Duration,
    operation_ttl: Duration,
    event_retention: u64,
    /// Times come from the manager's clock instead of Redis's `TIME`.
    client_clock: bool,
}

impl fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBackend")
            .field("namespace", &self.shared.namespace)
            .field("timeout", &self.shared.timeout)
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
        let prefix = format!("ck:{{{namespace}}}:");
        Ok(Self {
            shared: Arc::new(Settings {
                target,
                namespace: namespace.to_owned(),
                meta: format!("{prefix}meta"),
                prefix,
                timeout: Duration::from_secs(2),
                operation_ttl: Duration::from_secs(60),
                event_retention: 100_000,
                client_clock: false,
            }),
            conn: OnceLock::new(),
            epoch: OnceLock::new(),
            feed: OnceLock::new(),
            runtime: OnceLock::new(),
            clock: OnceLock::new(),
            cache: None,
        })
    }

    fn settings(&mut self) -> &mut Settings {
        Arc::get_mut(&mut self.shared).expect("options are set before the backend is shared")
    }

    /// How long one call may take, retries over new connections included,
    /// before it fails with `STORAGE` (default 2 s). A write that got no
    /// answer in that time reports that its outcome is unknown.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.settings().timeout =
            timeout.clamp(Duration::from_millis(1), Duration::from_secs(86_400));
        self
    }

    /// How long Redis remembers a write's reply for a retry of it (default
    /// 60 s, and never less than twice the [`timeout`](Self::timeout) plus
    /// 500 ms: a call retries, then settles, within that).
    pub fn operation_ttl(mut self, ttl: Duration) -> Self {
        self.settings().operation_ttl = ttl.min(Duration::from_secs(86_400 * 365));
        self
    }

    /// About how many events the namespace's stream keeps (default 100,000).
    /// A manager further behind gets one `Lagged { missed }` with the exact count.
    pub fn event_retention(mut self, events: u64) -> Self {
        self.settings().event_retention = events.max(1);
        self
    }

    /// Take every time (creation, updates, expiry) from the manager's
    /// [`Clock`] instead of the Redis server's, and check expiry in the
    /// library instead of with Redis's own key expiry. Every manager of the
    /// namespace must then agree on the time: this is for tests that drive a
    /// [`ManualClock`](contextkit_core::ManualClock). A namespace is made for
    /// one kind of clock; joining it with the other is `INVALID_ARGUMENT`.
    pub fn client_clock(mut self) -> Self {
        self.settings().client_clock = true;
        self
    }

    /// The time argument of a call: the manager's clock, or `''` for Redis's.
    fn now_arg(&self) -> String {
        match (self.shared.client_clock, self.clock.get()) {
            (true, Some(clock)) => clock.now_ms().to_string(),
            _ => String::new(),
        }
    }

    /// Serve reads from a local cache, at most `max_stale` behind Redis.
    ///
    /// Off by default: every read then goes to Redis (linearizable). With
    /// the cache, a state read or written by this manager within the last
    /// `max_stale` is served from memory, so a read may miss a change made
    /// elsewhere up to `max_stale` ago, never more; this manager always sees
    /// its own writes. Redis's client tracking (RESP3) drops an entry as soon
    /// as its key changes anywhere, so reads are usually fresher still. On a
    /// Redis Cluster, or with [`client_clock`](Self::client_clock), entries
    /// are not tracked: they are served until `max_stale` runs out.
    pub fn cached_reads(mut self, max_stale: Duration) -> Self {
        let prefix = format!("{}c:", self.shared.prefix);
        self.cache = Some(Arc::new(cache::Cache::new(max_stale, prefix)));
        self
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.shared.namespace
    }

    fn conn(&self) -> Result<Conn> {
        self.conn
            .get()
            .cloned()
            .ok_or_else(|| ContextError::storage("the redis backend is not connected"))
    }

    fn key(&self, kind: &str, id: &str) -> String {
        format!("{}{kind}:{id}", self.shared.prefix)
    }

    async fn query(&self, what: &str, cmd: &redis::Cmd) -> Result<Value> {
        let mut conn = self.conn()?;
        call(&mut conn, cmd, self.shared.timeout)
            .await
            .map_err(|f| f.into_error(what, self.shared.timeout))
    }

    /// `FCALL_RO name 1 meta args…`
    async fn read_fn(&self, name: &str, arg: &str) -> Result<Value> {
        let mut cmd = redis::cmd("FCALL_RO");
        cmd.arg(name).arg(1).arg(&self.shared.meta);
        cmd.arg(arg).arg(self.now_arg());
        self.query(name, &cmd).await
    }

    /// `FCALL_RO name 2 meta c:<id> id time`: a read of one context.
    async fn read_fn_id(&self, name: &str, id: &str) -> Result<Value> {
        let mut cmd = redis::cmd("FCALL_RO");
        cmd.arg(name)
            .arg(2)
            .arg(&self.shared.meta)
            .arg(self.key("c", id));
        cmd.arg(id).arg(self.now_arg());
        self.query(name, &cmd).await
    }

    async fn join_namespace(
        &self,
        config: &ManagerConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Joined> {
        let s = &self.shared;
        let _ = self.clock.set(clock);
        let mut conn = tokio::time::timeout(s.timeout, s.target.connect(s.timeout))
            .await
            .map_err(|_| Failure::NoAnswer(None).into_error("connect", s.timeout))?
            .map_err(|e| conn::storage("connect", e))?;
        tokio::time::timeout(s.timeout, conn::load_library(&mut conn))
            .await
            .map_err(|_| Failure::NoAnswer(None).into_error("FUNCTION LOAD", s.timeout))?
            .map_err(|e| conn::storage("FUNCTION LOAD", e))?;
        check_eviction(&mut conn, s.timeout).await?;
        let cfg = wire::namespace_config(config, s.client_clock);
        let mut cmd = redis::cmd("FCALL");
        cmd.arg("ck2_join")
            .arg(1)
            .arg(&s.meta)
            .arg(random_id())
            .arg(cfg.to_string());
        let reply = call(&mut conn, &cmd, s.timeout)
            .await
            .map_err(|f| f.into_error("ck2_join", s.timeout))?;
        let (epoch, revision) = wire::joined(
            &record::to_wire(&reply),
            &cfg,
            &s.namespace,
            crate::parse_json,
        )?;
        let _ = self.epoch.set(epoch);
        let _ = self.conn.set(conn);
        let _ = self.runtime.set(tokio::runtime::Handle::current());
        if let Some(cache) = &self.cache {
            self.track(cache).await;
        }
        Ok(Joined { revision })
    }

    /// Makes sure the cache hears of every change in the namespace, where
    /// Redis can push them (one server, Redis's clock).
    async fn track(&self, cache: &Arc<cache::Cache>) {
        if let (Target::Single(client), false) = (&self.shared.target, self.shared.client_clock) {
            cache.track(client, self.shared.timeout).await;
        }
    }

    /// A read of `id` through the cache: served from it when it may be,
    /// else read on the tracking connection and offered to it.
    async fn cached_get(
        &self,
        cache: &Arc<cache::Cache>,
        id: &str,
    ) -> Result<Option<Arc<ContextState>>> {
        if let Some(hit) = cache.get(id) {
            return Ok(hit);
        }
        self.track(cache).await;
        let since = std::time::Instant::now();
        let reply = self.read_state(id).await?;
        let state = record::state(id, &reply)?;
        let revision = state.as_ref().map_or(0, |s| s.revision);
        cache.offer(id, state.clone(), revision, since);
        Ok(state)
    }

    /// The record of `id` as Redis holds it now (nil when not live).
    async fn read_state(&self, id: &str) -> Result<Value> {
        if self.shared.client_clock {
            self.read_fn_id("ck2_get", id).await
        } else {
            // Redis deletes an expired context itself: one plain read.
            let mut cmd = redis::cmd("GET");
            cmd.arg(self.key("c", id));
            self.query("GET", &cmd).await
        }
    }

    /// What a write of this manager committed, for the cache.
    fn remember(&self, reply: &WriteReply, since: std::time::Instant) {
        let Some(cache) = &self.cache else {
            return;
        };
        for event in &reply.events {
            if let contextkit_core::ContextEvent::Deleted { id, revision, .. }
            | contextkit_core::ContextEvent::Expired { id, revision, .. }
            | contextkit_core::ContextEvent::Evicted { id, revision, .. } = event
            {
                cache.offer(id, None, *revision, since);
            }
        }
        if let Ok(Committed::State(state)) = &reply.outcome {
            cache.offer(&state.id, Some(Arc::clone(state)), state.revision, since);
        }
    }

    async fn write_once(&self, write: Write) -> Result<WriteReply> {
        if let Some(cache) = &self.cache {
            // What the write commits is kept only while changes of others
            // can drop it.
            self.track(cache).await;
        }
        let since = std::time::Instant::now();
        let reply = self.write_call(write).await?;
        self.remember(&reply, since);
        Ok(reply)
    }

    async fn write_call(&self, write: Write) -> Result<WriteReply> {
        let s = &self.shared;
        let epoch = self.epoch.get().map(String::as_str).unwrap_or("");
        let op = random_id();
        let keys: Vec<String> = wire::write_keys(&write, &op)
            .iter()
            .map(|k| format!("{}{k}", s.prefix))
            .collect();
        let mut cmd = redis::cmd("FCALL");
        cmd.arg("ck2_write")
            .arg(keys.len())
            .arg(&keys)
            .arg(wire::op_name(&write))
            .arg(epoch)
            .arg(&op)
            .arg(self.reply_ttl_ms())
            .arg(s.event_retention)
            .arg(self.now_arg())
            .arg(wire::write_args(&write)?);
        let mut conn = self.conn()?;
        let reply = match call(&mut conn, &cmd, s.timeout).await {
            Ok(reply) => reply,
            Err(Failure::NoAnswer(last)) => self.settle(&mut conn, &op, last).await?,
            Err(failure) => return Err(failure.into_error("ck2_write", s.timeout)),
        };
        let timeout_ms = u64::try_from(s.timeout.as_millis()).unwrap_or(u64::MAX);
        let decoded = wire::write_reply(
            write,
            &record::to_wire(&reply),
            &s.namespace,
            timeout_ms,
            crate::parse_json,
        )?;
        if decoded.lost
            && let Some(feed) = self.feed.get()
        {
            feed.lost(wire::lost_message(&s.namespace));
        }
        Ok(decoded.reply)
    }

    /// How long Redis keeps a write's reply for a retry: the configured
    /// time, and at least twice the call's timeout plus the settling time
    /// (a retry or a settle never comes later than that).
    fn reply_ttl_ms(&self) -> u64 {
        let s = &self.shared;
        let floor = s.timeout * 2 + SETTLE_TIME;
        u64::try_from(s.operation_ttl.max(floor).as_millis()).unwrap_or(u64::MAX)
    }

    /// A write got no answer within the timeout: it may have run, may run
    /// later (still queued on a connection) or never. Ask Redis once more,
    /// for at most [`SETTLE_TIME`]: the write's own reply if it ran, else a
    /// mark that makes any late copy of it a no-op, so the call can say
    /// "not applied". Only if that gets no answer either is the outcome
    /// unknown.
    async fn settle(
        &self,
        conn: &mut Conn,
        op: &str,
        last: Option<redis::RedisError>,
    ) -> Result<Value> {
        let s = &self.shared;
        let mut cmd = redis::cmd("FCALL");
        cmd.arg("ck2_settle")
            .arg(2)
            .arg(&s.meta)
            .arg(format!("{}op:{op}", s.prefix))
            .arg(self.reply_ttl_ms());
        match call(conn, &cmd, SETTLE_TIME.min(s.timeout)).await {
            Ok(reply) => Ok(reply),
            Err(_) => {
                let message = format!(
                    "redis ck2_write: no answer within {} ms, outcome unknown (the write may have been applied){}",
                    s.timeout.as_millis(),
                    last.as_ref()
                        .map(|e| format!("; last error: {e}"))
                        .unwrap_or_default()
                );
                Err(conn::caused_by(message, last))
            }
        }
    }
}

/// `INVALID_ARGUMENT` unless Redis keeps every key until it is deleted
/// (`maxmemory-policy noeviction`): a server that evicts keys under memory
/// pressure would drop contexts, operation replies or the event stream
/// silently. (A Redis that does not say, e.g. with `INFO` renamed, is
/// trusted.)
async fn check_eviction(conn: &mut Conn, timeout: std::time::Duration) -> Result<()> {
    let mut info = redis::cmd("INFO");
    info.arg("memory");
    let Ok(Ok(reply)) = tokio::time::timeout(timeout, conn.query(&info)).await else {
        return Ok(());
    };
    let text = match &reply {
        Value::Map(nodes) => nodes
            .iter()
            .filter_map(|(_, v)| record::bytes(v))
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect::<Vec<_>>()
            .join("\n"),
        other => record::bytes(other)
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default(),
    };
    match text
        .lines()
        .find_map(|l| l.trim().strip_prefix("maxmemory_policy:"))
    {
        Some(policy) if policy != "noeviction" => Err(ContextError::InvalidArgument(format!(
            "redis evicts keys under memory pressure (maxmemory-policy {policy}): a shared namespace needs noeviction, or it could lose contexts and events silently"
        ))),
        _ => Ok(()),
    }
}

/// The most time a write may spend settling an unknown outcome, after its timeout.
const SETTLE_TIME: Duration = Duration::from_millis(500);

/// 128 random bits as hex: an epoch or an operation id.
fn random_id() -> String {
    let mut bytes = [0_u8; 16];
    getrandom::getrandom(&mut bytes).expect("the operating system's randomness");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl SharedBackend for RedisBackend {
    fn join<'a>(
        &'a self,
        config: &'a ManagerConfig,
        clock: Arc<dyn Clock>,
    ) -> StorageFuture<'a, Joined> {
        Box::pin(self.join_namespace(config, clock))
    }

    fn write(&self, write: Write) -> StorageFuture<'_, WriteReply> {
        Box::pin(self.write_once(write))
    }

    fn get<'a>(&'a self, id: &'a str) -> StorageFuture<'a, Option<Arc<ContextState>>> {
        Box::pin(async move {
            if let Some(cache) = &self.cache {
                return self.cached_get(cache, id).await;
            }
            record::state(id, &self.read_state(id).await?)
        })
    }

    fn recovery_points<'a>(&'a self, id: &'a str) -> StorageFuture<'a, Option<Vec<Snapshot>>> {
        Box::pin(async move {
            let reply = self.read_fn_id("ck2_points", id).await?;
            wire::snapshots(id, &record::to_wire(&reply), crate::parse_json)
        })
    }

    fn list(&self) -> StorageFuture<'_, Vec<Arc<ContextState>>> {
        Box::pin(async move {
            let reply = self.read_fn("ck2_live", "states").await?;
            wire::live_states(&record::to_wire(&reply), crate::parse_json)
        })
    }

    fn list_ids(&self) -> StorageFuture<'_, Vec<String>> {
        Box::pin(async move {
            let reply = self.read_fn("ck2_live", "ids").await?;
            wire::live_ids(&record::to_wire(&reply))
        })
    }

    fn count(&self) -> StorageFuture<'_, usize> {
        Box::pin(async move {
            let mut cmd = redis::cmd("FCALL_RO");
            cmd.arg("ck2_count").arg(1).arg(&self.shared.meta);
            cmd.arg(self.now_arg());
            let reply = self.query("ck2_count", &cmd).await?;
            Ok(usize::try_from(int(&reply)?).unwrap_or(usize::MAX))
        })
    }

    /// A random wait below 0.4 ms × 2^(attempt - 1), at most 51 ms: racing
    /// writers of one context spread out, and one that lost a few times
    /// waits longer.
    fn backoff(&self, attempt: u32) -> StorageFuture<'_, ()> {
        let bound = 400_u64 << attempt.saturating_sub(1).min(7);
        let mut bytes = [0_u8; 8];
        getrandom::getrandom(&mut bytes).expect("the operating system's randomness");
        let wait = Duration::from_micros(u64::from_le_bytes(bytes) % bound);
        Box::pin(async move {
            tokio::time::sleep(wait).await;
            Ok(())
        })
    }

    fn start(&self, feed: EventFeed) {
        let _ = self.feed.set(feed.clone());
        let (Some(runtime), Some(epoch)) = (self.runtime.get(), self.epoch.get()) else {
            return;
        };
        runtime.spawn(events::read(Arc::clone(&self.shared), epoch.clone(), feed));
    }
}
