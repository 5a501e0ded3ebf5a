//! [`RedisBackend`]: many managers, in many processes or machines, on one
//! store in Redis (one server or a cluster).

mod cache;
mod conn;
mod events;
mod record;

use conn::{Conn, Failure, Target, call};
use contextkit_core::{
    Clock, Committed, ContextError, ContextState, EventFeed, Joined, ManagerConfig, Result,
    SharedBackend, Snapshot, StorageFuture, Write, WriteReply,
};
use record::{array, int, text};
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

fn check_namespace(namespace: &str) -> Result<()> {
    if namespace.is_empty() || namespace.len() > 128 {
        return Err(ContextError::InvalidArgument(format!(
            "namespace is {} bytes; it must be 1 to 128",
            namespace.len()
        )));
    }
    if let Some(c) = namespace
        .chars()
        .find(|c| c.is_control() || *c == '{' || *c == '}')
    {
        return Err(ContextError::InvalidArgument(format!(
            "namespace {namespace:?} contains {c:?} (no braces or control characters)"
        )));
    }
    Ok(())
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
        check_namespace(namespace)?;
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
            .ok_or_else(|| ContextError::Storage("the redis backend is not connected".into()))
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
            .map_err(|e| conn::storage("connect", &e))?;
        tokio::time::timeout(s.timeout, conn::load_library(&mut conn))
            .await
            .map_err(|_| Failure::NoAnswer(None).into_error("FUNCTION LOAD", s.timeout))?
            .map_err(|e| conn::storage("FUNCTION LOAD", &e))?;
        check_eviction(&mut conn, s.timeout).await?;
        let cfg = namespace_config(config, s.client_clock);
        let mut cmd = redis::cmd("FCALL");
        cmd.arg("ck2_join")
            .arg(1)
            .arg(&s.meta)
            .arg(random_id())
            .arg(cfg.to_string());
        let reply = call(&mut conn, &cmd, s.timeout)
            .await
            .map_err(|f| f.into_error("ck2_join", s.timeout))?;
        let [epoch, stored, revision] = array(&reply)? else {
            return Err(record::bad("ck2_join"));
        };
        let stored: serde_json::Value = serde_json::from_str(text(stored)?).map_err(|e| {
            ContextError::Storage(format!(
                "namespace {:?} has an unreadable configuration: {e}",
                s.namespace
            ))
        })?;
        if let Some(diff) = difference(&stored, &cfg) {
            return Err(ContextError::InvalidArgument(format!(
                "namespace {:?} was made with another configuration: {diff}",
                s.namespace
            )));
        }
        let _ = self.epoch.set(text(epoch)?.to_owned());
        let _ = self.conn.set(conn);
        let _ = self.runtime.set(tokio::runtime::Handle::current());
        if let Some(cache) = &self.cache {
            self.track(cache).await;
        }
        Ok(Joined {
            revision: int(revision)?,
        })
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
        // The keys the write touches, declared so that a cluster moving the
        // namespace's slot answers ASK or TRYAGAIN (retried) instead of
        // running the write against a namespace that is half here, half
        // there. (KEYS[1] is the one the library reads its names from.)
        let mut keys = vec![
            s.meta.clone(),
            format!("{}ev", s.prefix),
            format!("{}ids", s.prefix),
            format!("{}exp", s.prefix),
            format!("{}op:{op}", s.prefix),
        ];
        if let Some(id) = write_id(&write).filter(|id| !id.is_empty()) {
            keys.push(self.key("c", id));
            keys.push(self.key("p", id));
        }
        let mut cmd = redis::cmd("FCALL");
        cmd.arg("ck2_write")
            .arg(keys.len())
            .arg(&keys)
            .arg(op_name(&write))
            .arg(epoch)
            .arg(&op)
            .arg(self.reply_ttl_ms())
            .arg(s.event_retention)
            .arg(self.now_arg());
        let json = |v: &serde_json::Value| {
            serde_json::to_string(v).map_err(|e| ContextError::Storage(e.to_string()))
        };
        let opt = |v: Option<u64>| v.map(|n| n.to_string()).unwrap_or_default();
        match &write {
            Write::Create {
                id,
                data,
                ttl_ms,
                metadata,
                capacity,
            } => {
                let metadata = serde_json::to_string(metadata)
                    .map_err(|e| ContextError::Storage(e.to_string()))?;
                cmd.arg(id)
                    .arg(json(data)?)
                    .arg(opt(check_ttl(*ttl_ms)?))
                    .arg(metadata)
                    .arg((*capacity).min(MAX_COUNT));
            }
            Write::Update {
                id,
                data,
                expected_version,
                expected_revision,
                ttl_ms,
            } => {
                cmd.arg(id)
                    .arg(json(data)?)
                    .arg(opt(*expected_version))
                    .arg(opt(check_ttl(*ttl_ms)?))
                    .arg(opt(*expected_revision));
            }
            Write::Delete { id } | Write::Touch { id } => {
                cmd.arg(id);
            }
            Write::RecoveryPoint { id, keep } => {
                // No list holds more: keeping "all" is keeping this many.
                cmd.arg(id).arg((*keep).clamp(1, MAX_COUNT));
            }
            Write::Restore { id, point_id } => {
                cmd.arg(id).arg(*point_id);
            }
            Write::Sweep { max } => {
                cmd.arg((*max).clamp(1, MAX_COUNT));
            }
            Write::Evict { capacity } => {
                cmd.arg((*capacity).min(MAX_COUNT));
            }
            _ => {
                return Err(ContextError::Storage(
                    "a write this backend does not know".into(),
                ));
            }
        }
        let mut conn = self.conn()?;
        let reply = match call(&mut conn, &cmd, s.timeout).await {
            Ok(reply) => reply,
            Err(Failure::NoAnswer(last)) => self.settle(&mut conn, &op, last).await?,
            Err(failure) => return Err(failure.into_error("ck2_write", s.timeout)),
        };
        let [status, details, events, rest @ ..] = array(&reply)? else {
            return Err(record::bad("ck2_write"));
        };
        let events = record::events(array(events)?)?;
        let contexts = rest.first().map(int).transpose()?;
        let contexts = contexts.map(|n| usize::try_from(n).unwrap_or(usize::MAX));
        let outcome = self.outcome(write, text(status)?, array(details)?);
        Ok(WriteReply {
            outcome,
            events,
            contexts,
        })
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
            Err(_) => Err(ContextError::Storage(format!(
                "redis ck2_write: no answer within {} ms, outcome unknown (the write may have been applied){}",
                s.timeout.as_millis(),
                last.map(|e| format!("; last error: {e}"))
                    .unwrap_or_default()
            ))),
        }
    }

    fn outcome(&self, write: Write, status: &str, d: &[Value]) -> Result<Committed> {
        let id = write_id(&write).unwrap_or_default().to_owned();
        match status {
            "OK" => {}
            "NOT_FOUND" => {
                let what = match (&write, d.first()) {
                    (Write::Restore { point_id, .. }, Some(_)) => {
                        format!("recovery point {point_id} of context '{id}'")
                    }
                    _ => format!("context '{id}'"),
                };
                return Err(ContextError::NotFound { what });
            }
            "ALREADY_EXISTS" => return Err(ContextError::AlreadyExists { id }),
            "CAPACITY_EXCEEDED" => {
                let (what, limit) = match d {
                    [w, l, ..] => (text(w)?.to_owned(), int(l)?),
                    _ => ("contexts".to_owned(), 0),
                };
                return Err(ContextError::CapacityExceeded {
                    what,
                    limit: usize::try_from(limit).unwrap_or(usize::MAX),
                });
            }
            "VERSION_CONFLICT" => {
                let expected = match &write {
                    Write::Update {
                        expected_version, ..
                    } => expected_version.unwrap_or(0),
                    _ => 0,
                };
                let actual = d.first().map(int).transpose()?.unwrap_or(0);
                return Err(ContextError::VersionConflict {
                    id,
                    expected,
                    actual,
                });
            }
            "ABORTED" => {
                return Err(ContextError::Storage(format!(
                    "redis: no answer within {} ms; the write was not applied",
                    self.shared.timeout.as_millis()
                )));
            }
            "EPOCH" => {
                let why = format!(
                    "namespace {:?} is not the one this manager joined: Redis lost its data (restarted without persistence, flushed or failed over to an empty replica)",
                    self.shared.namespace
                );
                if let Some(feed) = self.feed.get() {
                    feed.lost(why.clone());
                }
                return Err(ContextError::Storage(why));
            }
            other => return Err(record::bad(format!("status {other:?}"))),
        }
        Ok(match write {
            Write::Create { data, .. } | Write::Update { data, .. } => {
                Committed::State(record::written(&id, d, data)?)
            }
            Write::Restore { .. } | Write::Touch { .. } => {
                let raw = d
                    .get(7)
                    .and_then(record::bytes)
                    .ok_or_else(|| record::bad("a state with its data"))?;
                let data = serde_json::from_slice(raw).map_err(record::bad)?;
                Committed::State(record::written(&id, d, data)?)
            }
            Write::RecoveryPoint { .. } => {
                let [pid, v, at, data, ..] = d else {
                    return Err(record::bad("a recovery point reply"));
                };
                Committed::Point(Snapshot {
                    id: int(pid)?,
                    context_id: id,
                    version: int(v)?,
                    created_at_ms: int(at)?,
                    data: serde_json::from_slice(record::bytes(data).unwrap_or(b"null"))
                        .map_err(record::bad)?,
                })
            }
            Write::Sweep { .. } | Write::Evict { .. } => {
                let n = d.first().map(int).transpose()?.unwrap_or(0);
                Committed::Removed(usize::try_from(n).unwrap_or(usize::MAX))
            }
            _ => Committed::Done,
        })
    }
}

fn op_name(write: &Write) -> &'static str {
    match write {
        Write::Create { .. } => "create",
        Write::Update { .. } => "update",
        Write::Delete { .. } => "delete",
        Write::Touch { .. } => "touch",
        Write::RecoveryPoint { .. } => "point",
        Write::Restore { .. } => "restore",
        Write::Sweep { .. } => "sweep",
        Write::Evict { .. } => "evict",
        _ => "unknown",
    }
}

fn write_id(write: &Write) -> Option<&str> {
    match write {
        Write::Create { id, .. }
        | Write::Update { id, .. }
        | Write::Delete { id }
        | Write::Touch { id }
        | Write::RecoveryPoint { id, .. }
        | Write::Restore { id, .. } => Some(id),
        _ => None,
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

/// Counts sent to Redis stay below this (exact as a double in Lua).
const MAX_COUNT: usize = 1 << 40;

/// TTLs beyond 2^52 ms (142,000 years) are refused: Redis could not store
/// their expiry.
fn check_ttl(ttl_ms: Option<u64>) -> Result<Option<u64>> {
    const MAX_TTL_MS: u64 = 1 << 52;
    match ttl_ms {
        Some(ttl) if ttl > MAX_TTL_MS => Err(ContextError::InvalidArgument(format!(
            "ttl_ms is {ttl}; a shared namespace takes at most {MAX_TTL_MS}"
        ))),
        other => Ok(other),
    }
}

/// 128 random bits as hex: an epoch or an operation id.
fn random_id() -> String {
    let mut bytes = [0_u8; 16];
    getrandom::getrandom(&mut bytes).expect("the operating system's randomness");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The configuration a namespace is made with: the manager's (camelCase
/// JSON, as the npm package writes it too) and the kind of clock.
fn namespace_config(config: &ManagerConfig, client_clock: bool) -> serde_json::Value {
    let mut cfg = serde_json::to_value(config).unwrap_or_default();
    if let Some(map) = cfg.as_object_mut() {
        let clock = if client_clock { "client" } else { "server" };
        map.insert("clock".into(), clock.into());
        // Sliding expiry is how this manager reads, not what the namespace
        // holds: every touch is decided by Redis against its own state, so
        // managers that differ here still act as one store, and a manager
        // that only inspects (an admin tool) can read without keeping
        // sessions alive. Namespaces made before the setting existed join too.
        map.remove("slidingTtl");
    }
    cfg
}

/// The first setting in which two namespace configurations differ.
fn difference(stored: &serde_json::Value, wanted: &serde_json::Value) -> Option<String> {
    let (a, b) = (stored.as_object()?, wanted.as_object()?);
    let missing = serde_json::Value::Null;
    a.keys()
        .chain(b.keys())
        .find(|k| a.get(*k) != b.get(*k))
        .map(|k| {
            format!(
                "{k} is {} there, {} here",
                a.get(k).unwrap_or(&missing),
                b.get(k).unwrap_or(&missing)
            )
        })
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
            match array(&reply)? {
                [status, points] if text(status)? == "OK" => array(points)?
                    .iter()
                    .map(|p| record::point(id, record::bytes(p).unwrap_or_default()))
                    .collect::<Result<Vec<_>>>()
                    .map(Some),
                _ => Ok(None),
            }
        })
    }

    fn list(&self) -> StorageFuture<'_, Vec<Arc<ContextState>>> {
        Box::pin(async move {
            let reply = self.read_fn("ck2_live", "states").await?;
            let mut out = Vec::new();
            for pair in array(&reply)?.chunks(2) {
                if let [id, raw] = pair
                    && let Some(state) = record::state(text(id)?, raw)?
                {
                    out.push(state);
                }
            }
            Ok(out)
        })
    }

    fn list_ids(&self) -> StorageFuture<'_, Vec<String>> {
        Box::pin(async move {
            let reply = self.read_fn("ck2_live", "ids").await?;
            array(&reply)?
                .iter()
                .map(|v| text(v).map(str::to_owned))
                .collect()
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
