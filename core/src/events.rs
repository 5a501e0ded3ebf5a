//! Change events: a bounded broadcast log that never blocks writers.

use crate::sync::{AtomicBool, AtomicUsize, Mutex, MutexGuard, Ordering};
use event_listener::{Event, EventListener};
use futures_core::Stream;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// A committed change, as seen by [`ContextManager::subscribe`](crate::ContextManager::subscribe).
///
/// Every change carries the store-wide `revision` of its commit (see
/// [`ContextState::revision`](crate::ContextState::revision)); a subscriber
/// of an in-memory manager sees revisions strictly increasing.
///
/// Serialized with a `type` tag: `{"type":"updated","id":"a","version":2,"revision":7}`.
///
/// ```
/// # use contextkit_core::*;
/// # futures::executor::block_on(async {
/// let e = ContextEvent::Updated { id: "a".into(), version: 2, revision: 7 };
/// assert_eq!(
///     serde_json::to_value(&e).unwrap(),
///     json!({ "type": "updated", "id": "a", "version": 2, "revision": 7 })
/// );
/// # Ok::<(), ContextError>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ContextEvent {
    /// A context was created (version 1).
    Created {
        /// Context id.
        id: String,
        /// New version.
        version: u64,
        /// Revision of the commit (the new state's).
        revision: u64,
    },
    /// A context's data was replaced.
    Updated {
        /// Context id.
        id: String,
        /// New version.
        version: u64,
        /// Revision of the commit (the new state's).
        revision: u64,
    },
    /// A context was deleted.
    Deleted {
        /// Context id.
        id: String,
        /// The last version it had.
        version: u64,
        /// Revision of the deletion itself (a new one, not the last state's).
        revision: u64,
    },
    /// A context's data was restored from a recovery point.
    Restored {
        /// Context id.
        id: String,
        /// New version.
        version: u64,
        /// Revision of the commit (the new state's).
        revision: u64,
    },
    /// A context was removed because it expired.
    Expired {
        /// Context id.
        id: String,
        /// The last version it had.
        version: u64,
        /// Revision of the removal itself (a new one, not the last state's).
        revision: u64,
    },
    /// A context was removed to honour a lowered capacity.
    Evicted {
        /// Context id.
        id: String,
        /// The last version it had.
        version: u64,
        /// Revision of the removal itself (a new one, not the last state's).
        revision: u64,
    },
    /// This subscriber fell behind and `missed` events were dropped for it.
    Lagged {
        /// How many events it missed.
        missed: u64,
    },
}

impl ContextEvent {
    /// The context id, or `None` for `Lagged`.
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let e = ContextEvent::Updated { id: "a".into(), version: 2, revision: 7 };
    /// assert_eq!((e.id(), e.version()), (Some("a"), Some(2)));
    /// assert_eq!(ContextEvent::Lagged { missed: 3 }.id(), None);
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    pub fn id(&self) -> Option<&str> {
        match self {
            Self::Created { id, .. }
            | Self::Updated { id, .. }
            | Self::Deleted { id, .. }
            | Self::Restored { id, .. }
            | Self::Expired { id, .. }
            | Self::Evicted { id, .. } => Some(id),
            Self::Lagged { .. } => None,
        }
    }

    /// The version carried by the event, or `None` for `Lagged`.
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// assert_eq!(ContextEvent::Deleted { id: "a".into(), version: 7, revision: 9 }.version(), Some(7));
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    pub fn version(&self) -> Option<u64> {
        match self {
            Self::Created { version, .. }
            | Self::Updated { version, .. }
            | Self::Deleted { version, .. }
            | Self::Restored { version, .. }
            | Self::Expired { version, .. }
            | Self::Evicted { version, .. } => Some(*version),
            Self::Lagged { .. } => None,
        }
    }

    /// The revision of the commit, or `None` for `Lagged`.
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let m = ContextManager::new(ManagerConfig::default());
    /// let mut events = m.subscribe();
    /// let s = m.create_context("a", json!({})).await?;
    /// assert_eq!(events.try_next().unwrap().revision(), Some(s.revision));
    /// assert_eq!(ContextEvent::Lagged { missed: 3 }.revision(), None);
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    pub fn revision(&self) -> Option<u64> {
        match self {
            Self::Created { revision, .. }
            | Self::Updated { revision, .. }
            | Self::Deleted { revision, .. }
            | Self::Restored { revision, .. }
            | Self::Expired { revision, .. }
            | Self::Evicted { revision, .. } => Some(*revision),
            Self::Lagged { .. } => None,
        }
    }
}

/// Events each subscriber may fall behind by before it sees `Lagged`.
///
/// ```
/// # use contextkit_core::*;
/// # futures::executor::block_on(async {
/// let m = ContextManager::builder(ManagerConfig::default()).event_capacity(DEFAULT_EVENT_CAPACITY * 4).build();
/// let _events = m.subscribe();
/// # Ok::<(), ContextError>(())
/// # }).unwrap();
/// ```
pub const DEFAULT_EVENT_CAPACITY: usize = 1024;

#[derive(Debug)]
struct Ring {
    /// Sequence number of `buf[0]`.
    head: u64,
    buf: VecDeque<ContextEvent>,
}

impl Ring {
    fn tail(&self) -> u64 {
        self.head + self.buf.len() as u64
    }

    /// Appends `event`, dropping the oldest one when `capacity` are kept.
    fn push(&mut self, event: ContextEvent, capacity: usize) {
        if self.buf.len() == capacity {
            self.buf.pop_front();
            self.head += 1;
        }
        self.buf.push_back(event);
    }
}

/// The shared log. Publishing happens inside the writer's critical section, so
/// the log order is the commit order; in memory the revision of a commit is
/// taken together with its publication ([`EventLog::sequence`]), so the log
/// is also in revision order.
#[derive(Debug)]
pub(crate) struct EventLog {
    ring: Mutex<Ring>,
    capacity: usize,
    subscribers: AtomicUsize,
    closed: AtomicBool,
    ready: Event,
}

impl EventLog {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            ring: Mutex::new(Ring {
                head: 0,
                buf: VecDeque::new(),
            }),
            capacity: capacity.max(1),
            subscribers: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            ready: Event::new(),
        }
    }

    /// How many events a subscriber can fall behind before it lags.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    fn ring(&self) -> MutexGuard<'_, Ring> {
        // The ring is consistent after every statement; a poisoned lock is still usable.
        self.ring.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether anyone listens; writers skip building events when not.
    pub(crate) fn has_subscribers(&self) -> bool {
        self.subscribers.load(Ordering::SeqCst) > 0
    }

    pub(crate) fn publish(&self, event: ContextEvent) {
        if !self.has_subscribers() {
            return;
        }
        self.ring().push(event, self.capacity);
        self.ready.notify(usize::MAX);
    }

    /// Takes the revision of one commit with `take` and publishes the event
    /// `make` builds for it. With subscribers both happen under the ring's
    /// lock, so events enter the log in revision order whichever shards
    /// commit them; without, it is `take` alone (the event is never built).
    ///
    /// The revision is published only if it was taken under the lock: a
    /// subscriber arriving between the check and `take` misses a commit that
    /// raced with its subscription, and never sees it after a later one.
    pub(crate) fn sequence(
        &self,
        take: impl FnOnce() -> u64,
        make: impl FnOnce(u64) -> ContextEvent,
    ) -> u64 {
        if !self.has_subscribers() {
            return take();
        }
        let revision = {
            let mut ring = self.ring();
            let revision = take();
            ring.push(make(revision), self.capacity);
            revision
        };
        self.ready.notify(usize::MAX);
        revision
    }

    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.ready.notify(usize::MAX);
    }

    pub(crate) fn subscribe(self: &Arc<Self>) -> Subscription {
        self.subscribers.fetch_add(1, Ordering::SeqCst);
        let next = self.ring().tail();
        Subscription {
            log: Arc::clone(self),
            next,
            listener: None,
        }
    }
}

/// A stream of [`ContextEvent`]s, from [`ContextManager::subscribe`](crate::ContextManager::subscribe).
///
/// It starts at the first change committed after it was created, yields every
/// change in commit order, and ends once the manager (all its clones) is dropped
/// and the remaining events are read. A subscriber more than the log capacity
/// behind gets one `Lagged { missed }` and continues with the oldest event kept.
///
/// ```
/// # use contextkit_core::*;
/// # futures::executor::block_on(async {
/// use futures::StreamExt;
/// let m = ContextManager::new(ManagerConfig::default());
/// let mut events = m.subscribe();
/// m.create_context("a", json!({})).await?;
/// m.delete_context("a").await?;
/// let seen: Vec<_> = events.by_ref().take(2).collect().await;
/// assert_eq!(seen[1], ContextEvent::Deleted { id: "a".into(), version: 1, revision: 2 });
/// # Ok::<(), ContextError>(())
/// # }).unwrap();
/// ```
#[derive(Debug)]
pub struct Subscription {
    log: Arc<EventLog>,
    next: u64,
    listener: Option<EventListener>,
}

impl Subscription {
    /// The next event if one is ready, without waiting.
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let m = ContextManager::new(ManagerConfig::default());
    /// let mut events = m.subscribe();
    /// assert_eq!(events.try_next(), None);
    /// m.create_context("a", json!({})).await?;
    /// let created = ContextEvent::Created { id: "a".into(), version: 1, revision: 1 };
    /// assert_eq!(events.try_next(), Some(created));
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    pub fn try_next(&mut self) -> Option<ContextEvent> {
        let ring = self.log.ring();
        if self.next < ring.head {
            let missed = ring.head - self.next;
            self.next = ring.head;
            return Some(ContextEvent::Lagged { missed });
        }
        let idx = usize::try_from(self.next - ring.head).ok()?;
        let event = ring.buf.get(idx)?.clone();
        self.next += 1;
        Some(event)
    }

    /// Waits for the next event: `None` once the manager is dropped and every
    /// event before that was received. The same as
    /// [`StreamExt::next`](https://docs.rs/futures/latest/futures/stream/trait.StreamExt.html#method.next),
    /// without importing a trait.
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let m = ContextManager::new(ManagerConfig::default());
    /// let mut events = m.subscribe();
    /// m.create_context("a", json!({})).await?;
    /// m.delete_context("a").await?;
    /// drop(m);
    /// let mut seen = Vec::new();
    /// while let Some(event) = events.recv().await {
    ///     seen.push(event);
    /// }
    /// assert!(matches!(seen[..], [ContextEvent::Created { .. }, ContextEvent::Deleted { .. }]));
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    pub async fn recv(&mut self) -> Option<ContextEvent> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }
}

impl Stream for Subscription {
    type Item = ContextEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<ContextEvent>> {
        loop {
            if let Some(event) = self.try_next() {
                self.listener = None;
                return Poll::Ready(Some(event));
            }
            if self.log.closed.load(Ordering::SeqCst) {
                return Poll::Ready(None);
            }
            match self.listener.as_mut() {
                // Register first, then re-check: no notification can slip between.
                None => self.listener = Some(self.log.ready.listen()),
                Some(listener) => {
                    if Pin::new(listener).poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    self.listener = None;
                }
            }
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if self.log.subscribers.fetch_sub(1, Ordering::SeqCst) == 1 {
            let mut ring = self.log.ring();
            if !self.log.has_subscribers() {
                // Nobody reads these; keep the sequence numbers, free the memory.
                ring.head += ring.buf.len() as u64;
                ring.buf.clear();
            }
        }
    }
}
