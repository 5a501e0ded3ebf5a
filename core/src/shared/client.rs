//! [`SharedClient`]: a [`SharedBackend`] over any host's [`Transport`] to
//! contextkit's Redis library (`native/redis/contextkit.lua`).
//!
//! The host only moves the library's calls and replies (the npm package over
//! Redis in Node, or over IndexedDB in browser tabs); this side decides what
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
use std::sync::{Arc, OnceLock};
use std::time::Duration;

mod reader;
#[cfg(test)]
mod tests;

/// How a call of the library ended when the store did not refuse it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The library's reply.
    Replied(Wire),
    /// No answer in time (the message says why): the call may have run, may
    /// still run, or never will.
    Unknown(String),
}

impl Outcome {
    /// The reply; no answer is a `STORAGE` error with its message.
    ///
    /// ```
    /// use contextkit_core::client::Outcome;
    /// use contextkit_core::wire::Wire;
    /// assert_eq!(Outcome::Replied(Wire::Int(3)).reply().unwrap(), Wire::Int(3));
    /// let unknown = Outcome::Unknown("timed out".into()).reply().unwrap_err();
    /// assert_eq!((unknown.code(), unknown.to_string().contains("timed out")), ("STORAGE", true));
    /// ```
    pub fn reply(self) -> Result<Wire> {
        match self {
            Self::Replied(w) => Ok(w),
            Self::Unknown(why) => Err(ContextError::storage(why)),
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
    /// The record text of `c:<id>` as stored now, or nil.
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
        }
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
    /// The epoch of the namespace joined.
    epoch: OnceLock<String>,
    /// Operation ids: 64 random bits of this client, then a count.
    op_prefix: String,
    ops: AtomicU64,
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

/// The most time a write may spend settling an unknown outcome, after its timeout.
const SETTLE_MS: u64 = 500;

/// `count` random bytes as hex.
fn random_hex(transport: &impl Transport, count: usize) -> String {
    let mut bytes = vec![0_u8; count];
    transport.fill_random(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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
                config,
                epoch: OnceLock::new(),
                op_prefix,
                ops: AtomicU64::new(0),
            }),
        }
    }
}

impl<T: Transport> Inner<T> {
    fn epoch(&self) -> &str {
        self.epoch.get().map_or("", String::as_str)
    }

    /// A call that must be answered.
    async fn read(&self, function: &str, keys: &[String], args: &[String]) -> Result<Wire> {
        self.transport.call(function, keys, args).await?.reply()
    }

    /// How long the store keeps a write's reply for a retry: the configured
    /// time, and at least twice the call's timeout plus the settling time.
    fn reply_ttl_ms(&self) -> u64 {
        let c = &self.config;
        c.operation_ttl_ms
            .max(c.timeout_ms.saturating_mul(2).saturating_add(SETTLE_MS))
    }

    async fn join(&self, config: &ManagerConfig) -> Result<Joined> {
        self.transport.open().await?;
        let c = &self.config;
        let cfg = wire::namespace_config(config, false);
        let args = [random_hex(&self.transport, 16), cfg.to_string()];
        let reply = self.read("ck2_join", &owned(["meta"]), &args).await?;
        let (epoch, revision) = wire::joined(&reply, &cfg, &c.namespace, c.parse_json)?;
        let _ = self.epoch.set(epoch);
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
            String::new(),
        ];
        args.extend(wire::write_args(&write)?);
        let reply = match self.transport.call("ck2_write", &keys, &args).await? {
            Outcome::Replied(w) => w,
            Outcome::Unknown(last) => self.settle(&op, &last).await?,
        };
        let decoded = wire::write_reply(write, &reply, &c.namespace, c.timeout_ms, c.parse_json)?;
        Ok(decoded.reply)
    }

    /// A write got no answer: ask once more for its reply, or mark it so
    /// that a late copy never applies (then it was not applied).
    async fn settle(&self, op: &str, last: &str) -> Result<Wire> {
        let keys = ["meta".to_owned(), format!("op:{op}")];
        let args = [self.reply_ttl_ms().to_string()];
        match self.transport.call("ck2_settle", &keys, &args).await {
            Ok(Outcome::Replied(w)) => Ok(w),
            _ => Err(ContextError::storage(format!(
                "no answer within {} ms, outcome unknown (the write may have been applied); {last}",
                self.config.timeout_ms
            ))),
        }
    }
}

impl<T: Transport> SharedBackend for SharedClient<T> {
    fn join<'a>(
        &'a self,
        config: &'a ManagerConfig,
        _clock: Arc<dyn Clock>,
    ) -> StorageFuture<'a, Joined> {
        Box::pin(self.inner.join(config))
    }

    fn write(&self, write: Write) -> StorageFuture<'_, WriteReply> {
        Box::pin(self.inner.write(write))
    }

    fn get<'a>(&'a self, id: &'a str) -> StorageFuture<'a, Option<Arc<ContextState>>> {
        Box::pin(async move {
            match self.inner.transport.get(id).await? {
                Wire::Text(record) => {
                    wire::state(id, &record, self.inner.config.parse_json).map(Some)
                }
                _ => Ok(None),
            }
        })
    }

    fn recovery_points<'a>(&'a self, id: &'a str) -> StorageFuture<'a, Option<Vec<Snapshot>>> {
        Box::pin(async move {
            let keys = ["meta".to_owned(), format!("c:{id}")];
            let reply = self
                .inner
                .read("ck2_points", &keys, &owned([id, ""]))
                .await?;
            wire::snapshots(id, &reply, self.inner.config.parse_json)
        })
    }

    fn list(&self) -> StorageFuture<'_, Vec<Arc<ContextState>>> {
        Box::pin(async move {
            let args = owned(["states", ""]);
            let reply = self.inner.read("ck2_live", &owned(["meta"]), &args).await?;
            wire::live_states(&reply, self.inner.config.parse_json)
        })
    }

    fn list_ids(&self) -> StorageFuture<'_, Vec<String>> {
        Box::pin(async move {
            let args = owned(["ids", ""]);
            let reply = self.inner.read("ck2_live", &owned(["meta"]), &args).await?;
            wire::live_ids(&reply)
        })
    }

    fn count(&self) -> StorageFuture<'_, usize> {
        Box::pin(async move {
            let args = owned([""]);
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
        let inner = Arc::clone(&self.inner);
        self.inner.transport.spawn(Box::pin(async move {
            reader::read_events(&inner, &feed).await;
            Ok(())
        }));
    }
}
