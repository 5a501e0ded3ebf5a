//! Shared mode: one store for many managers, in many processes or machines.
//!
//! A [`SharedBackend`] decides every write atomically against what it holds
//! (Redis by one server-side function per write), never against a manager's
//! local view, so create-if-absent, compare-and-set, capacity and recovery
//! point ids hold across every manager of a namespace. Each commit gets a
//! namespace-wide revision and one entry in the backend's event log; every
//! manager delivers that log to its subscribers in revision order.
//!
//! The core stays executor-free: a backend does its own I/O and, once
//! started, pushes the namespace's events into an [`EventFeed`].
//! [`client::SharedClient`] is such a backend for any host that can move
//! the calls of contextkit's Redis library (a [`client::Transport`]).
//!
//! `ManagerBuilder::connect` exists with the `shared` feature; without it
//! nothing can make a shared manager and these paths compile away.

#![cfg_attr(not(feature = "shared"), allow(dead_code, unused_imports))]

#[cfg(feature = "shared")]
pub mod client;
pub(crate) mod sequencer;
pub mod wire;

pub use sequencer::EventFeed;

use crate::storage::{MaybeSend, MaybeSync, StorageFuture};
use crate::{Clock, ContextState, Data, ManagerConfig, Result, Snapshot};
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;

/// What a manager learns when it joins a namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    /// The namespace's last revision: the manager delivers the events after it.
    pub revision: u64,
}

/// One write, decided by the backend in one atomic step.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Write {
    /// Create `id` at version 1 unless a live context has it or `capacity`
    /// live contexts exist (expired ones are swept first and do not count).
    Create {
        /// Context id.
        id: String,
        /// Its data.
        data: Data,
        /// Its TTL.
        ttl_ms: Option<u64>,
        /// Its metadata.
        metadata: BTreeMap<String, String>,
        /// The capacity in force.
        capacity: usize,
    },
    /// Replace the data of live `id`, version + 1, expiry restarted.
    Update {
        /// Context id.
        id: String,
        /// The new data.
        data: Data,
        /// Commit only if the stored version is this one.
        expected_version: Option<u64>,
        /// Commit only if the stored state is the one committed at this
        /// revision: no write since (a version repeats after a delete and a
        /// create; a revision never does).
        expected_revision: Option<u64>,
        /// A new TTL; `None` keeps the current one.
        ttl_ms: Option<u64>,
    },
    /// Remove live `id` with its recovery points.
    Delete {
        /// Context id.
        id: String,
    },
    /// Snapshot live `id`, keeping its newest `keep` recovery points.
    RecoveryPoint {
        /// Context id.
        id: String,
        /// Recovery points to keep (at least 1).
        keep: usize,
    },
    /// Restore live `id` from its recovery point `snapshot_id`.
    Restore {
        /// Context id.
        id: String,
        /// The recovery point.
        snapshot_id: u64,
    },
    /// Restart the TTL of live `id` from now: no new version, revision or
    /// event (a context without a TTL is left as it is).
    Touch {
        /// Context id.
        id: String,
    },
    /// Remove up to `max` expired contexts.
    Sweep {
        /// The most to remove in one step.
        max: usize,
    },
    /// Sweep expired contexts, then evict the least recently written until at
    /// most `capacity` remain.
    Evict {
        /// The capacity to shrink to.
        capacity: usize,
    },
}

/// What a write committed, besides its events.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Committed {
    /// The context's new state (create, update, restore).
    State(Arc<ContextState>),
    /// A new recovery point.
    Snapshot(Snapshot),
    /// How many contexts a sweep or an eviction removed.
    Removed(usize),
    /// A delete.
    Done,
}

/// A backend's answer to a [`Write`]: its outcome and the events it committed
/// (a write that fails may still have committed some: a create that sweeps
/// expired contexts before it finds the store full).
#[derive(Debug, Clone, PartialEq)]
pub struct WriteReply {
    /// The write's result.
    pub outcome: Result<Committed>,
    /// Every event the write committed, in revision order.
    pub events: Vec<crate::ContextEvent>,
    /// Contexts the backend holds after the write (expired but unswept ones
    /// included), if it says; [`Stats::contexts`](crate::Stats::contexts).
    pub contexts: Option<usize>,
}

/// A store shared by many managers, in many processes or machines (shared
/// mode). It decides every write atomically against what it holds, never
/// against a manager's local view, so create-if-absent, compare-and-set,
/// capacity and recovery-point ids hold across every manager of a
/// namespace; each commit gets a namespace-wide revision and one entry in
/// the backend's event log, which every manager delivers to its subscribers
/// in revision order. The backend does its own I/O; once started it pushes
/// the namespace's events into an [`EventFeed`].
///
/// "Ok" means committed at the durability the backend is configured for. A
/// write whose outcome the backend cannot learn (its connection dropped and
/// it could not ask again in time) is a `STORAGE` error saying so.
pub trait SharedBackend: MaybeSend + MaybeSync + Debug + 'static {
    /// Joins the namespace: makes it with `config` if it does not exist,
    /// else checks that its configuration is `config` (`INVALID_ARGUMENT`
    /// naming the difference when not). `clock` is the manager's, for a
    /// backend configured to take its times from the client.
    fn join<'a>(
        &'a self,
        config: &'a ManagerConfig,
        clock: Arc<dyn Clock>,
    ) -> StorageFuture<'a, Joined>;
    /// Decides and commits one write.
    fn write(&self, write: Write) -> StorageFuture<'_, WriteReply>;
    /// The live context `id`, as the backend holds it now.
    fn get<'a>(&'a self, id: &'a str) -> StorageFuture<'a, Option<Arc<ContextState>>>;
    /// What [`get`](Self::get) would answer, if the backend can answer it
    /// at once from memory (a read cache); `None` to call `get`. The
    /// default has no such memory.
    fn get_now(&self, id: &str) -> Option<Option<Arc<ContextState>>> {
        let _ = id;
        None
    }
    /// The recovery points of live `id`, oldest first; `None` if it is not live.
    fn recovery_points<'a>(&'a self, id: &'a str) -> StorageFuture<'a, Option<Vec<Snapshot>>>;
    /// Every live context (any order).
    fn list(&self) -> StorageFuture<'_, Vec<Arc<ContextState>>>;
    /// The ids of the live contexts (any order).
    fn list_ids(&self) -> StorageFuture<'_, Vec<String>>;
    /// How many contexts are live.
    fn count(&self) -> StorageFuture<'_, usize>;
    /// Starts delivering the namespace's events after the revision
    /// [`join`](Self::join) returned into `feed`, until the feed says the
    /// manager is gone.
    fn start(&self, feed: EventFeed);
    /// Waits before try `attempt` (1, 2, ...) of a read-modify-write that
    /// lost a compare-and-set to another writer, so that writers racing on
    /// one context spread out. The default does not wait; a backend on an
    /// executor with timers waits a random, growing time.
    fn backoff(&self, attempt: u32) -> StorageFuture<'_, ()> {
        let _ = attempt;
        Box::pin(std::future::ready(Ok(())))
    }
}

#[cfg(feature = "shared")]
use crate::backend::{Backend, shared::Shared};

#[cfg(feature = "shared")]
impl crate::ManagerBuilder {
    /// A manager in shared mode: joins `backend`'s namespace (making it with
    /// this configuration if it does not exist; `INVALID_ARGUMENT` naming the
    /// difference if it was made with another) and delivers every manager's
    /// events of that namespace to this one's subscribers.
    ///
    /// The manager has the same contract as one in memory, across every
    /// manager of the namespace: the backend decides each write atomically.
    pub async fn connect(self, backend: impl SharedBackend) -> Result<crate::ContextManager> {
        self.config.validate()?;
        // A default TTL no create could take, refused now rather than by each.
        wire::check_ttl(self.config.default_ttl_ms)?;
        let mut manager = self.build_with(None);
        let backend: Arc<dyn SharedBackend> = Arc::new(backend);
        let clock = Arc::clone(&manager.inner.clock);
        let joined = backend.join(&manager.inner.cfg, clock).await?;
        let shared = Shared::new(backend, &joined, Arc::clone(&manager.inner.events));
        let inner = Arc::get_mut(&mut manager.inner).expect("a new manager has one handle");
        inner.backend = Backend::Shared(shared);
        if let Backend::Shared(shared) = &manager.inner.backend {
            shared.start();
        }
        Ok(manager)
    }
}
