//! The shared backend: every call goes to a [`SharedBackend`], and the events
//! its writes committed join the namespace's log order before it returns.
//! The shards' maps stay empty.

use crate::events::EventLog;
use crate::shared::sequencer::{EventFeed, Sequencer};
use crate::shared::{Committed, Joined, SharedBackend, Write};
use crate::store::Inner;
use crate::sync::{AtomicUsize, Ordering};
use crate::{ContextError, ContextEvent, ContextState, Data, Result, Snapshot};
use std::fmt;
use std::sync::Arc;

/// The function of a modify: `Send` natively, where the manager's futures are.
#[cfg(not(target_arch = "wasm32"))]
type ModifyFn<'a> = dyn FnMut(&Data) -> Result<Data> + Send + 'a;
#[cfg(target_arch = "wasm32")]
type ModifyFn<'a> = dyn FnMut(&Data) -> Result<Data> + 'a;

/// How many expired contexts one sweep step removes.
const SWEEP_STEP: usize = 1_000;

pub(crate) struct Shared {
    backend: Arc<dyn SharedBackend>,
    seq: Arc<Sequencer>,
    /// Contexts held as the last write of this manager found them (`stats`).
    pub(crate) contexts: AtomicUsize,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

impl Shared {
    pub(crate) fn new(
        backend: Arc<dyn SharedBackend>,
        joined: &Joined,
        log: Arc<EventLog>,
    ) -> Self {
        Self {
            backend,
            seq: Arc::new(Sequencer::new(joined.revision, log)),
            contexts: AtomicUsize::new(0),
        }
    }

    /// Starts the backend's delivery of the namespace's events.
    pub(crate) fn start(&self) {
        self.backend.start(EventFeed::new(&self.seq));
    }

    fn check(&self) -> Result<()> {
        match self.seq.lost() {
            Some(why) => Err(ContextError::storage(why)),
            None => Ok(()),
        }
    }

    /// One write: decided by the backend; returns once its events are in
    /// this manager's order (when anyone listens).
    async fn write(&self, inner: &Inner, write: Write) -> Result<Committed> {
        self.check()?;
        let reply = self.backend.write(write).await?;
        let c = &inner.counters;
        for event in &reply.events {
            let counter = match event {
                ContextEvent::Created { .. } => &c.creates,
                ContextEvent::Updated { .. } | ContextEvent::Restored { .. } => &c.updates,
                ContextEvent::Deleted { .. } => &c.deletes,
                ContextEvent::Expired { .. } => &c.expirations,
                ContextEvent::Evicted { .. } => &c.evictions,
                _ => continue,
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
        if let Err(ContextError::VersionConflict { .. }) = &reply.outcome {
            c.conflicts.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(n) = reply.contexts {
            self.contexts.store(n, Ordering::Relaxed);
        }
        let last = reply.events.last().and_then(ContextEvent::revision);
        self.seq.own(reply.events);
        if let Some(rev) = last
            && self.seq.has_subscribers()
        {
            self.seq.delivered(rev).await;
        }
        reply.outcome
    }

    async fn state(&self, inner: &Inner, write: Write) -> Result<Arc<ContextState>> {
        match self.write(inner, write).await? {
            Committed::State(state) => Ok(state),
            other => Err(unexpected(&other)),
        }
    }

    pub(crate) async fn create(&self, inner: &Inner, write: Write) -> Result<Arc<ContextState>> {
        self.state(inner, write).await
    }

    pub(crate) async fn update(&self, inner: &Inner, write: Write) -> Result<Arc<ContextState>> {
        self.state(inner, write).await
    }

    pub(crate) async fn touch(&self, inner: &Inner, id: &str) -> Result<Arc<ContextState>> {
        self.state(inner, Write::Touch { id: id.to_owned() }).await
    }

    /// Read, apply `f`, compare-and-set; tried again after a backoff when
    /// another writer changed the context in between, up to `attempts` times.
    pub(crate) async fn modify(
        &self,
        inner: &Inner,
        id: &str,
        f: &mut ModifyFn<'_>,
        attempts: u32,
    ) -> Result<Arc<ContextState>> {
        let mut attempt = 0;
        loop {
            // Not counted as a read: a modify in memory reads nothing either.
            self.check()?;
            let current = self
                .backend
                .get(id)
                .await?
                .ok_or_else(|| ContextError::not_found(id))?;
            let data = f(&current.data)?;
            crate::validate::data(&inner.cfg, &data)?;
            let write = Write::Update {
                id: id.to_owned(),
                data,
                expected_version: Some(current.version),
                // The version alone could match a context deleted and
                // created again since the read.
                expected_revision: Some(current.revision),
                ttl_ms: None,
            };
            match self.state(inner, write).await {
                Err(ContextError::VersionConflict { .. }) if attempt + 1 < attempts => {
                    attempt += 1;
                    self.backend.backoff(attempt).await?;
                }
                other => return other,
            }
        }
    }

    pub(crate) async fn restore(
        &self,
        inner: &Inner,
        id: &str,
        snapshot_id: u64,
    ) -> Result<Arc<ContextState>> {
        let write = Write::Restore {
            id: id.to_owned(),
            snapshot_id,
        };
        self.state(inner, write).await
    }

    pub(crate) async fn delete(&self, inner: &Inner, id: &str) -> Result<()> {
        self.write(inner, Write::Delete { id: id.to_owned() })
            .await?;
        Ok(())
    }

    pub(crate) async fn recovery_point(&self, inner: &Inner, id: &str) -> Result<Snapshot> {
        let write = Write::RecoveryPoint {
            id: id.to_owned(),
            keep: inner.cfg.max_recovery_points,
        };
        match self.write(inner, write).await? {
            Committed::Snapshot(snapshot) => Ok(snapshot),
            other => Err(unexpected(&other)),
        }
    }

    pub(crate) async fn get(&self, inner: &Inner, id: &str) -> Result<Arc<ContextState>> {
        self.check()?;
        // (The WebAssembly build's backends keep no such memory: a read
        // from memory there is the JavaScript read cache's.)
        #[cfg(not(target_family = "wasm"))]
        let now = self.backend.get_now(id);
        #[cfg(target_family = "wasm")]
        let now = None;
        let found = match now {
            Some(found) => found,
            None => self.backend.get(id).await?,
        };
        inner.count_read(id, found.is_some());
        found.ok_or_else(|| ContextError::not_found(id))
    }

    pub(crate) async fn recovery_points(&self, id: &str) -> Result<Vec<Snapshot>> {
        self.check()?;
        self.backend
            .recovery_points(id)
            .await?
            .ok_or_else(|| ContextError::not_found(id))
    }

    pub(crate) async fn list_ids(&self) -> Result<Vec<String>> {
        self.check()?;
        let mut ids = self.backend.list_ids().await?;
        ids.sort_unstable();
        Ok(ids)
    }

    pub(crate) async fn list(&self) -> Result<Vec<Arc<ContextState>>> {
        self.check()?;
        let mut states = self.backend.list().await?;
        states.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        Ok(states)
    }

    pub(crate) async fn count(&self) -> Result<usize> {
        self.check()?;
        self.backend.count().await
    }

    /// Removes every expired context, a step at a time.
    pub(crate) async fn sweep(&self, inner: &Inner) -> Result<usize> {
        let mut removed = 0;
        loop {
            match self.write(inner, Write::Sweep { max: SWEEP_STEP }).await? {
                Committed::Removed(n) => {
                    removed += n;
                    if n < SWEEP_STEP {
                        return Ok(removed);
                    }
                }
                other => return Err(unexpected(&other)),
            }
        }
    }

    pub(crate) async fn evict(&self, inner: &Inner, capacity: usize) -> Result<usize> {
        match self.write(inner, Write::Evict { capacity }).await? {
            Committed::Removed(n) => Ok(n),
            other => Err(unexpected(&other)),
        }
    }
}

fn unexpected(committed: &Committed) -> ContextError {
    let what = match committed {
        Committed::State(_) => "a state",
        Committed::Snapshot(_) => "a recovery point",
        Committed::Removed(_) => "a count",
        Committed::Done => "done",
    };
    ContextError::storage(format!(
        "the shared backend answered {what} to another kind of write"
    ))
}
