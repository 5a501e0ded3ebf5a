//! [`SharedClient`]: a [`SharedBackend`] over any host's [`Transport`] to
//! contextkit's Redis library (`native/redis/contextkit.lua`).
//!
//! The host only moves the library's calls and replies (the Rust crate's
//! `RedisBackend` over redis-rs, the npm package over Redis in Node or over
//! IndexedDB in browser tabs); this side decides what
//! to call and reads the replies with the [`wire`] format: the epoch joined,
//! an operation id per write, settling a write that got no answer (its reply
//! if it ran, else a mark that makes a late copy of it a no-op), and the
//! reader that delivers the namespace's events to the manager.

use super::wire::{self, Wire};
use super::{EventFeed, Joined, SharedBackend, Write, WriteReply};
use crate::ParseJson;
use crate::storage::{MaybeSend, MaybeSync, StorageFuture};
use crate::sync::{AtomicU64, Ordering};
use crate::{Clock, ContextError, ContextState, ManagerConfig, Result, Snapshot};
use std::fmt;
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::task::Poll;
use std::time::Duration;

mod reader;
mod recent;
#[cfg(test)]
mod tests;

/// How a call of the library ended when the store did not refuse it.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The library's reply.
    Replied(Wire),
    /// No answer in time: the call may have run, may still run, or never
    /// will. The `STORAGE` error says so as a read's error would ("redis
    /// ck2_write: no answer within 2000 ms (...)"), with the transport's last
    /// error as its source, if any.
    Unknown(ContextError),
}

impl Outcome {
    /// The reply; no answer is its `STORAGE` error.
    ///
    /// ```
    /// use contextkit_core::client::Outcome;
    /// use contextkit_core::wire::Wire;
    /// use contextkit_core::ContextError;
    /// assert_eq!(Outcome::Replied(Wire::Int(3)).reply().unwrap(), Wire::Int(3));
    /// let unknown = Outcome::Unknown(ContextError::storage("timed out")).reply().unwrap_err();
    /// assert_eq!(unknown.to_string(), "storage error: timed out");
    /// ```
    pub fn reply(self) -> Result<Wire> {
        match self {
            Self::Replied(w) => Ok(w),
            Self::Unknown(e) => Err(e),
        }
    }
}

/// What a host provides to run contextkit's Redis library for a
/// [`SharedClient`]: its calls, a few reads of the namespace, a timer,
/// randomness and a way to run the event reader. Keys are relative to the
/// namespace's prefix (`meta`, `c:<id>`, `op:<op>`, ...).
///
/// A method's `Err` means the store refused the request or could not be
/// asked; only [`call`](Self::call) tells that apart from no answer.
///
/// A transport to a store that is down: connecting fails with its error,
/// and the transport is closed.
///
/// ```
/// use contextkit_core::client::{ClientConfig, Outcome, SharedClient, Transport};
/// use contextkit_core::wire::Wire;
/// use contextkit_core::{ContextError, ContextManager, ManagerConfig, StorageFuture};
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use std::time::Duration;
///
/// static CLOSED: AtomicBool = AtomicBool::new(false);
/// struct Down;
/// fn down<'a, T: 'a>() -> StorageFuture<'a, T> {
///     Box::pin(async { Err(ContextError::storage("connection refused")) })
/// }
/// impl Transport for Down {
///     fn open(&self) -> StorageFuture<'_, ()> { down() }
///     fn call<'a>(&'a self, _: &'a str, _: &'a [String], _: &'a [String]) -> StorageFuture<'a, Outcome> { down() }
///     fn get<'a>(&'a self, _: &'a str) -> StorageFuture<'a, Wire> { down() }
///     fn head(&self) -> StorageFuture<'_, Wire> { down() }
///     fn events(&self, _: u64, _: usize, _: u64) -> StorageFuture<'_, Wire> { down() }
///     fn sleep(&self, _: Duration) -> StorageFuture<'_, ()> { Box::pin(async { Ok(()) }) }
///     fn fill_random(&self, bytes: &mut [u8]) { bytes.fill(4) }
///     fn spawn(&self, _: StorageFuture<'static, ()>) {}
///     fn close(&self) { CLOSED.store(true, Ordering::SeqCst) }
/// }
///
/// // Data and metadata as the front-end reads JSON: exactly, and as deep as
/// // the core asks (serde_json's default stops at 128 levels).
/// let parse = |text: &str, depth| contextkit_json::parse(text, depth, false).map_err(|e| e.to_string());
/// let settings = ClientConfig::new("app", parse);
/// let client = SharedClient::new(Down, settings);
/// let builder = ContextManager::builder(ManagerConfig::default());
/// let err = futures::executor::block_on(builder.connect(client)).unwrap_err();
/// assert_eq!(err.to_string(), "storage error: connection refused");
/// assert!(CLOSED.load(Ordering::SeqCst));
/// ```
pub trait Transport: MaybeSend + MaybeSync + 'static {
    /// Connects to the store (and loads the library where it is not yet);
    /// called once, when a manager joins, before any other call to the
    /// store ([`fill_random`](Self::fill_random) may come first).
    fn open(&self) -> StorageFuture<'_, ()>;
    /// Calls the library's function `function` with `keys` and `args`:
    /// [`Outcome::Replied`] with its reply, [`Outcome::Unknown`] when no
    /// answer came in time, `Err` when it was refused (nothing happened).
    fn call<'a>(
        &'a self,
        function: &'a str,
        keys: &'a [String],
        args: &'a [String],
    ) -> StorageFuture<'a, Outcome>;
    /// The record text of `c:<id>` as stored now, or nil; or
    /// [`wire::lost_reply`] where the transport checks the namespace's epoch
    /// (the one `ck2_join` answered) and finds another or none: the manager
    /// is then lost. A transport may check the epoch of the read-only calls
    /// (all but `ck2_write`, `ck2_settle` and `ck2_join`) so too.
    fn get<'a>(&'a self, id: &'a str) -> StorageFuture<'a, Wire>;
    /// The namespace's `[epoch, last revision]` (nil where it has none).
    fn head(&self) -> StorageFuture<'_, Wire>;
    /// Up to `count` events after revision `after`, each as `[revision,
    /// type, id, version]`, waiting up to `wait_ms` when there is none yet.
    fn events(&self, after: u64, count: usize, wait_ms: u64) -> StorageFuture<'_, Wire>;
    /// Resolves after `duration` (an error is taken as the end of the wait).
    fn sleep(&self, duration: Duration) -> StorageFuture<'_, ()>;
    /// Fills `bytes` with random bytes.
    fn fill_random(&self, bytes: &mut [u8]);
    /// Runs `task` on its own until it ends (the event reader).
    fn spawn(&self, task: StorageFuture<'static, ()>);
    /// Disconnects: called once, when the client and its reader are gone,
    /// also if [`open`](Self::open) was never called or failed.
    fn close(&self);
}

/// The settings of a [`SharedClient`]: [`new`](Self::new), then change the
/// fields you need.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientConfig {
    /// The namespace the transport reaches (for messages).
    pub namespace: String,
    /// How long the transport waits for an answer to one call, in ms.
    pub timeout_ms: u64,
    /// How long the store keeps a write's reply for a retry, in ms (never
    /// less than twice the timeout plus the settling time).
    pub operation_ttl_ms: u64,
    /// About how many events the namespace keeps.
    pub event_retention: u64,
    /// How the front-end reads the JSON text of data and metadata.
    pub parse_json: ParseJson,
    /// Take every time (creation, updates, expiry) from the manager's
    /// [`Clock`] instead of the store's, and check expiry in the library
    /// instead of with the store's own key expiry. Every manager of the
    /// namespace must then agree on the time: this is for tests that drive
    /// a [`ManualClock`](crate::ManualClock). A namespace is made for one
    /// kind of clock; joining it with the other is `INVALID_ARGUMENT`.
    pub client_clock: bool,
    /// How long a read of the namespace's event log waits for a new event
    /// before the reader checks the namespace and asks again, in ms. `None`:
    /// half the timeout, from 10 ms to 1 s. A transport that every commit
    /// wakes (IndexedDB's, over a `BroadcastChannel`) can wait far longer;
    /// a wait ends at once when the manager is gone.
    pub event_wait_ms: Option<u64>,
    /// Serve a read of a context from memory when this client read it at
    /// most this long ago, in ms (0, the default: every read asks the
    /// store; a context a read did not find is asked for again). The client
    /// forgets what it read of a context when one of its own writes of it
    /// ends (of every context, for a sweep or an eviction), so a manager
    /// always sees its own writes (one whose outcome stayed unknown may
    /// apply later: it shows once its event comes), and forgets a context
    /// when the event reader brings a change of it that what it read does
    /// not hold, usually within a round trip of the commit. A read may miss
    /// a change made elsewhere less than `max_stale_ms` ago, never an older
    /// one (time by the manager's clock). Reads of a context are served so: `get_context`, and the
    /// read a modify starts from (a stale one costs a version conflict and
    /// another try); a get that restarts a sliding TTL is a write, and
    /// lists, counts and writes always go to the store.
    pub max_stale_ms: u64,
    /// The most record text kept for [`max_stale_ms`](Self::max_stale_ms),
    /// in bytes (each read charged its record's length plus 128; past it
    /// the reads kept start again). Default 16 MiB.
    pub max_stale_bytes: usize,
}

impl ClientConfig {
    /// `namespace` with the defaults of the Redis backends: a 2 s timeout,
    /// replies kept 60 s, about 100,000 events.
    pub fn new(namespace: impl Into<String>, parse_json: ParseJson) -> Self {
        Self {
            namespace: namespace.into(),
            timeout_ms: 2_000,
            operation_ttl_ms: 60_000,
            event_retention: 100_000,
            parse_json,
            client_clock: false,
            event_wait_ms: None,
            max_stale_ms: 0,
            max_stale_bytes: 16 << 20,
        }
    }

    /// The wait of one read of the event log, in ms (see [`event_wait_ms`](Self::event_wait_ms)).
    fn event_wait(&self) -> u64 {
        self.event_wait_ms
            .unwrap_or((self.timeout_ms / 2).clamp(10, 1_000))
    }
}

/// A [`SharedBackend`] over a [`Transport`]; connect a manager with it:
/// `ContextManager::builder(config).connect(SharedClient::new(transport, settings))`.
pub struct SharedClient<T: Transport> {
    inner: Arc<Inner<T>>,
}

/// What the client and its event reader share.
struct Inner<T: Transport> {
    transport: T,
    config: ClientConfig,
    /// The epoch of the namespace joined, and the manager's clock (for
    /// [`ClientConfig::client_clock`]).
    joined: OnceLock<(String, Arc<dyn Clock>)>,
    /// The manager's events, once the reader started: a write that finds the
    /// namespace lost says so there too.
    feed: OnceLock<EventFeed>,
    /// Operation ids: 64 random bits of this client, then a count.
    op_prefix: String,
    ops: AtomicU64,
    /// Reads served from memory, made at the join when
    /// [`ClientConfig::max_stale_ms`] is above 0.
    recent: OnceLock<recent::Recent>,
}

impl<T: Transport> Drop for Inner<T> {
    fn drop(&mut self) {
        // The connections close with the last user: the manager and its reader.
        self.transport.close();
    }
}

impl<T: Transport> fmt::Debug for SharedClient<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedClient")
            .field("namespace", &self.inner.config.namespace)
            .finish_non_exhaustive()
    }
}

/// Forgets, when dropped, what the client read of what a write changes:
/// its context, or every context for a sweep or an eviction (`id` `None`).
/// A write holds one until it ends, however it ends (see [`Inner::write`]).
struct ForgetReads<'a, T: Transport> {
    inner: &'a Inner<T>,
    id: Option<String>,
}

impl<T: Transport> Drop for ForgetReads<'_, T> {
    fn drop(&mut self) {
        if let Some(recent) = self.inner.recent() {
            match &self.id {
                Some(id) => recent.forget([id.as_str()]),
                None => recent.forget_all(),
            }
        }
    }
}

/// The most time a write may spend settling an unknown outcome, after its timeout.
const SETTLE_MS: u64 = 500;

/// `count` random bytes as hex.
fn random_hex(transport: &impl Transport, count: usize) -> String {
    let mut bytes = vec![0_u8; count];
    transport.fill_random(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `fut`'s output, or `None` if `timer` ends first.
async fn within<F: Future>(fut: F, timer: impl Future) -> Option<F::Output> {
    let (mut fut, mut timer) = (std::pin::pin!(fut), std::pin::pin!(timer));
    std::future::poll_fn(|cx| {
        if let Poll::Ready(out) = fut.as_mut().poll(cx) {
            Poll::Ready(Some(out))
        } else if timer.as_mut().poll(cx).is_ready() {
            Poll::Ready(None)
        } else {
            Poll::Pending
        }
    })
    .await
}

fn owned<const N: usize>(items: [&str; N]) -> [String; N] {
    items.map(str::to_owned)
}

impl<T: Transport> SharedClient<T> {
    /// A client of the namespace `transport` reaches; it connects when a
    /// manager [connects](crate::ManagerBuilder::connect) with it.
    pub fn new(transport: T, config: ClientConfig) -> Self {
        let op_prefix = random_hex(&transport, 8) + "-";
        Self {
            inner: Arc::new(Inner {
                transport,
                joined: OnceLock::new(),
                feed: OnceLock::new(),
                op_prefix,
                ops: AtomicU64::new(0),
                recent: OnceLock::new(),
                config,
            }),
        }
    }
}

impl<T: Transport> SharedClient<T> {
    /// The settings.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// The transport.
    pub fn transport(&self) -> &T {
        &self.inner.transport
    }

    /// The settings and the transport, to change before the client connects
    /// (a front-end's builder methods).
    ///
    /// # Panics
    /// Once connected (a manager's event reader shares them then); a client
    /// is handed to [`connect`](crate::ManagerBuilder::connect) by value, so
    /// only code that made it can get here first.
    pub fn configure(&mut self) -> (&mut ClientConfig, &mut T) {
        let inner =
            Arc::get_mut(&mut self.inner).expect("a client is configured before it connects");
        (&mut inner.config, &mut inner.transport)
    }
}

impl<T: Transport> Inner<T> {
    fn epoch(&self) -> &str {
        self.joined.get().map_or("", |(epoch, _)| epoch)
    }

    /// The reads served from memory, if any.
    fn recent(&self) -> Option<&recent::Recent> {
        self.recent.get()
    }

    /// The manager's clock now (0 before a manager joined).
    fn now_ms(&self) -> u64 {
        self.joined.get().map_or(0, |(_, clock)| clock.now_ms())
    }

    /// The time argument of a call: the manager's clock, or `''` for the store's.
    fn now_arg(&self) -> String {
        match (self.config.client_clock, self.joined.get()) {
            (true, Some((_, clock))) => clock.now_ms().to_string(),
            _ => String::new(),
        }
    }

    /// The keys `meta` and `c:<id>`: a read of one context.
    fn context_keys(id: &str) -> [String; 2] {
        ["meta".to_owned(), format!("c:{id}")]
    }

    /// A call that must be answered.
    async fn read(&self, function: &str, keys: &[String], args: &[String]) -> Result<Wire> {
        let reply = self.transport.call(function, keys, args).await?.reply()?;
        self.found(reply)
    }

    /// `reply`, unless it is the transport's word that the namespace is not
    /// the one joined: then the manager is lost, from this call on.
    fn found(&self, reply: Wire) -> Result<Wire> {
        if !wire::is_lost_reply(&reply) {
            return Ok(reply);
        }
        let why = wire::lost_message(&self.config.namespace);
        if let Some(feed) = self.feed.get() {
            feed.lost(why.clone());
        }
        Err(ContextError::storage(why))
    }

    /// How long the store keeps a write's reply for a retry: the configured
    /// time, and at least twice the call's timeout plus the settling time.
    fn reply_ttl_ms(&self) -> u64 {
        let c = &self.config;
        c.operation_ttl_ms
            .max(c.timeout_ms.saturating_mul(2).saturating_add(SETTLE_MS))
    }

    async fn join(&self, config: &ManagerConfig, clock: Arc<dyn Clock>) -> Result<Joined> {
        self.transport.open().await?;
        let c = &self.config;
        let cfg = wire::namespace_config(config, c.client_clock);
        let args = [random_hex(&self.transport, 16), cfg.to_string()];
        let reply = self.read("ck2_join", &owned(["meta"]), &args).await?;
        let (epoch, revision) = wire::joined(&reply, &cfg, &c.namespace, c.parse_json)?;
        let _ = self.joined.set((epoch, clock));
        if c.max_stale_ms > 0 {
            let mut seeds = [0_u64; 4];
            for seed in &mut seeds {
                let mut bytes = [0_u8; 8];
                self.transport.fill_random(&mut bytes);
                *seed = u64::from_le_bytes(bytes);
            }
            let recent = recent::Recent::new(c.max_stale_ms, c.max_stale_bytes, seeds);
            let _ = self.recent.set(recent);
        }
        Ok(Joined { revision })
    }

    async fn write(&self, write: Write) -> Result<WriteReply> {
        let c = &self.config;
        let n = self.ops.fetch_add(1, Ordering::Relaxed) + 1;
        let op = format!("{}{n:x}", self.op_prefix);
        let keys = wire::write_keys(&write, &op);
        let mut args = vec![
            wire::op_name(&write).to_owned(),
            self.epoch().to_owned(),
            op.clone(),
            self.reply_ttl_ms().to_string(),
            c.event_retention.to_string(),
            self.now_arg(),
        ];
        args.extend(wire::write_args(&write)?);
        // Whatever becomes of the write, nothing read of its context before
        // it ends is served after it: not even if the caller drops it half-way.
        let _forget = ForgetReads {
            inner: self,
            id: self.recent().and(wire::write_id(&write)).map(str::to_owned),
        };
        let reply = match self.transport.call("ck2_write", &keys, &args).await? {
            Outcome::Replied(w) => w,
            Outcome::Unknown(last) => self.settle(&op, last).await?,
        };
        let decoded = wire::write_reply(write, &reply, &c.namespace, c.timeout_ms, c.parse_json)?;
        if decoded.lost
            && let Some(feed) = self.feed.get()
        {
            feed.lost(wire::lost_message(&c.namespace));
        }
        Ok(decoded.reply)
    }

    /// A write got no answer: ask once more for its reply, or mark it so
    /// that a late copy never applies (then it was not applied), waiting at
    /// most [`SETTLE_MS`] (or the timeout, if shorter) for that answer.
    async fn settle(&self, op: &str, last: ContextError) -> Result<Wire> {
        let keys = ["meta".to_owned(), format!("op:{op}")];
        let args = [self.reply_ttl_ms().to_string()];
        let bound = Duration::from_millis(SETTLE_MS.min(self.config.timeout_ms));
        let call = self.transport.call("ck2_settle", &keys, &args);
        match within(call, self.transport.sleep(bound)).await {
            Some(Ok(Outcome::Replied(w))) => Ok(w),
            _ => {
                let (why, source) = match last {
                    ContextError::Storage { message, source } => (message, source),
                    other => (other.to_string(), None),
                };
                let message = format!("{why}; outcome unknown (the write may have been applied)");
                Err(ContextError::Storage { message, source })
            }
        }
    }
}

impl<T: Transport> SharedBackend for SharedClient<T> {
    fn join<'a>(
        &'a self,
        config: &'a ManagerConfig,
        clock: Arc<dyn Clock>,
    ) -> StorageFuture<'a, Joined> {
        Box::pin(self.inner.join(config, clock))
    }

    fn write(&self, write: Write) -> StorageFuture<'_, WriteReply> {
        Box::pin(self.inner.write(write))
    }

    fn get<'a>(&'a self, id: &'a str) -> StorageFuture<'a, Option<Arc<ContextState>>> {
        Box::pin(async move {
            let s = &self.inner;
            let mut before = None;
            if let Some(recent) = s.recent() {
                let now = s.now_ms();
                if let Some(state) = recent.get(id, now) {
                    return Ok(Some(state));
                }
                before = Some((now, recent.generation(id)));
            }
            let record = if s.config.client_clock {
                // Expiry by the manager's clock: the library decides what is live.
                let args = [id.to_owned(), s.now_arg()];
                s.read("ck2_get", &Inner::<T>::context_keys(id), &args)
                    .await?
            } else {
                // The store deletes an expired context itself: one plain read.
                s.found(s.transport.get(id).await?)?
            };
            let (found, bytes) = match record {
                Wire::Text(record) => (
                    Some(wire::state(id, &record, s.config.parse_json)?),
                    record.len(),
                ),
                _ => (None, 0),
            };
            if let (Some(recent), Some((sent, generation))) = (s.recent(), before) {
                recent.keep(id, found.as_ref(), bytes, sent, generation);
            }
            Ok(found)
        })
    }

    fn recovery_points<'a>(&'a self, id: &'a str) -> StorageFuture<'a, Option<Vec<Snapshot>>> {
        Box::pin(async move {
            let s = &self.inner;
            let args = [id.to_owned(), s.now_arg()];
            let reply = s
                .read("ck2_points", &Inner::<T>::context_keys(id), &args)
                .await?;
            wire::snapshots(id, &reply, self.inner.config.parse_json)
        })
    }

    fn list(&self) -> StorageFuture<'_, Vec<Arc<ContextState>>> {
        Box::pin(async move {
            let args = ["states".to_owned(), self.inner.now_arg()];
            let reply = self.inner.read("ck2_live", &owned(["meta"]), &args).await?;
            wire::live_states(&reply, self.inner.config.parse_json)
        })
    }

    fn list_ids(&self) -> StorageFuture<'_, Vec<String>> {
        Box::pin(async move {
            let args = ["ids".to_owned(), self.inner.now_arg()];
            let reply = self.inner.read("ck2_live", &owned(["meta"]), &args).await?;
            wire::live_ids(&reply)
        })
    }

    fn count(&self) -> StorageFuture<'_, usize> {
        Box::pin(async move {
            let args = [self.inner.now_arg()];
            let reply = self
                .inner
                .read("ck2_count", &owned(["meta"]), &args)
                .await?;
            Ok(usize::try_from(reply.int()?).unwrap_or(usize::MAX))
        })
    }

    /// A random wait below 0.4 ms × 2^(attempt - 1), at most 51 ms.
    fn backoff(&self, attempt: u32) -> StorageFuture<'_, ()> {
        let bound_ns = 400_000_u64 << attempt.saturating_sub(1).min(7);
        let mut bytes = [0_u8; 8];
        self.inner.transport.fill_random(&mut bytes);
        let wait = Duration::from_nanos(u64::from_le_bytes(bytes) % bound_ns);
        Box::pin(async move {
            let _ = self.inner.transport.sleep(wait).await;
            Ok(())
        })
    }

    fn start(&self, feed: EventFeed) {
        let _ = self.inner.feed.set(feed.clone());
        let inner = Arc::clone(&self.inner);
        self.inner.transport.spawn(Box::pin(async move {
            reader::read_events(&inner, &feed).await;
            Ok(())
        }));
    }
}
