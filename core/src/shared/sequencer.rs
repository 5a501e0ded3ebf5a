//! Delivers a namespace's events to a manager's subscribers in revision
//! order, whether they arrive from the backend's log or with the manager's
//! own writes, and turns a gap in the log into one exact `Lagged`.

use crate::ContextEvent;
use crate::events::EventLog;
use event_listener::Event;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

#[derive(Debug)]
struct Order {
    /// The next revision to deliver.
    next: u64,
    /// Events of later revisions, known from this manager's own writes.
    early: BTreeMap<u64, ContextEvent>,
    /// Set while the backend cannot read its log: writers stop waiting.
    stalled: bool,
}

/// The order of one manager's events.
#[derive(Debug)]
pub(crate) struct Sequencer {
    order: Mutex<Order>,
    /// Set when the backend found the namespace is no longer the one joined
    /// (read by every call, so not behind the lock).
    lost: OnceLock<String>,
    moved: Event,
    log: Arc<EventLog>,
    /// Notified when the manager is gone (see [`EventFeed::closed`]).
    closing: Arc<Event>,
}

impl Drop for Sequencer {
    fn drop(&mut self) {
        self.closing.notify(usize::MAX);
    }
}

impl Sequencer {
    pub(crate) fn new(after: u64, log: Arc<EventLog>) -> Self {
        Self {
            order: Mutex::new(Order {
                next: after + 1,
                early: BTreeMap::new(),
                stalled: false,
            }),
            lost: OnceLock::new(),
            moved: Event::new(),
            log,
            closing: Arc::new(Event::new()),
        }
    }

    fn order(&self) -> MutexGuard<'_, Order> {
        // Consistent after every statement; a poisoned lock is still usable.
        self.order.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Events of this manager's own write: delivered at once when they are
    /// next, else kept until the log catches up.
    pub(crate) fn own(&self, events: Vec<ContextEvent>) {
        let mut order = self.order();
        for event in events {
            if let Some(rev) = event.revision()
                && rev >= order.next
            {
                order.early.insert(rev, event);
            }
        }
        // While the log cannot be read (or lags far behind), no more of this
        // manager's own events wait here than a subscriber could hold: the
        // log brings the others when it reads again, or counts them missed.
        while order.early.len() > self.log.capacity() {
            order.early.pop_first();
        }
        self.drain(&mut order);
        drop(order);
        self.moved.notify(usize::MAX);
    }

    /// Events read from the backend's log, in its order, the read covering
    /// every revision up to `through`. A revision the read did not bring
    /// (trimmed from the log, or an entry that could not be read) becomes
    /// `Lagged`, unless this manager's own write told it the event.
    fn logged(&self, events: Vec<ContextEvent>, through: u64) {
        let mut order = self.order();
        order.stalled = false;
        for event in events {
            let Some(rev) = event.revision() else {
                continue;
            };
            if rev < order.next {
                continue;
            }
            self.skip_to(&mut order, rev);
            order.early.remove(&rev);
            self.log.publish(event);
            order.next = rev + 1;
            self.drain(&mut order);
        }
        if through >= order.next {
            self.skip_to(&mut order, through + 1);
            self.drain(&mut order);
        }
        drop(order);
        self.moved.notify(usize::MAX);
    }

    /// Moves `next` up to `rev`, publishing the events known from own writes
    /// on the way and one `Lagged` for each run of the others.
    fn skip_to(&self, order: &mut Order, rev: u64) {
        let mut missed = 0;
        while order.next < rev {
            let next = order.next;
            match order.early.remove(&next) {
                Some(known) => {
                    self.lagged(&mut missed);
                    self.log.publish(known);
                }
                None => missed += 1,
            }
            order.next += 1;
        }
        self.lagged(&mut missed);
    }

    fn lagged(&self, missed: &mut u64) {
        if *missed > 0 {
            self.log.publish(ContextEvent::Lagged { missed: *missed });
            *missed = 0;
        }
    }

    fn drain(&self, order: &mut Order) {
        while let Some(event) = order.early.remove(&order.next) {
            self.log.publish(event);
            order.next += 1;
        }
    }

    fn set_stalled(&self, stalled: bool) {
        self.order().stalled = stalled;
        self.moved.notify(usize::MAX);
    }

    fn set_lost(&self, why: String) {
        let _ = self.lost.set(why);
        self.moved.notify(usize::MAX);
    }

    /// Why the namespace is gone, if the backend found it was.
    pub(crate) fn lost(&self) -> Option<&str> {
        self.lost.get().map(String::as_str)
    }

    /// Waits until every revision up to `rev` is delivered (or the backend
    /// cannot read its log, or the namespace is lost).
    pub(crate) async fn delivered(&self, rev: u64) {
        loop {
            let moved = self.moved.listen();
            {
                let order = self.order();
                if order.next > rev || order.stalled || self.lost.get().is_some() {
                    return;
                }
            }
            moved.await;
        }
    }

    /// Whether anyone subscribed to this manager's events.
    pub(crate) fn has_subscribers(&self) -> bool {
        self.log.has_subscribers()
    }
}

/// Where a [`SharedBackend`](super::SharedBackend) pushes the events of its
/// namespace. It holds the manager weakly: once every handle to the manager
/// is dropped, [`is_open`](Self::is_open) turns false and the backend stops.
#[derive(Debug, Clone)]
pub struct EventFeed {
    seq: Weak<Sequencer>,
    closing: Arc<Event>,
}

impl EventFeed {
    pub(crate) fn new(seq: &Arc<Sequencer>) -> Self {
        Self {
            seq: Arc::downgrade(seq),
            closing: Arc::clone(&seq.closing),
        }
    }

    /// Whether the manager still exists.
    pub fn is_open(&self) -> bool {
        self.seq.strong_count() > 0
    }

    /// Resolves once the manager is gone: a backend's wait for its log can
    /// end then instead of when the wait runs out.
    pub async fn closed(&self) {
        while self.is_open() {
            let listener = self.closing.listen();
            // Dropped between the check and the listen: no notification
            // comes, and none is needed.
            if !self.is_open() {
                return;
            }
            listener.await;
        }
    }

    /// The first revision the manager still waits for (read the log from
    /// there); `None` once the manager is gone.
    pub fn next_revision(&self) -> Option<u64> {
        Some(self.seq.upgrade()?.order().next)
    }

    /// Events read from the log, in log order, the read having covered every
    /// revision up to `through` (revisions it did not bring are missed:
    /// subscribers get one exact `Lagged` for each run of them). Returns
    /// whether the manager still exists. Events already delivered are skipped.
    pub fn deliver(&self, events: Vec<ContextEvent>, through: u64) -> bool {
        match self.seq.upgrade() {
            Some(seq) => {
                seq.logged(events, through);
                true
            }
            None => false,
        }
    }

    /// The log cannot be read for now (`true`) or can again (`false`).
    /// While it cannot, a write returns without waiting for its event to
    /// reach the subscribers in order (they get it once the log is read).
    pub fn stalled(&self, stalled: bool) {
        if let Some(seq) = self.seq.upgrade() {
            seq.set_stalled(stalled);
        }
    }

    /// The namespace is no longer the one the manager joined (its data was
    /// lost): every later call of the manager fails with `STORAGE` naming `why`.
    pub fn lost(&self, why: impl Into<String>) {
        if let Some(seq) = self.seq.upgrade() {
            seq.set_lost(why.into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn updated(rev: u64) -> ContextEvent {
        ContextEvent::Updated {
            id: "a".into(),
            version: rev,
            revision: rev,
        }
    }

    /// Own writes that cannot be delivered (an earlier revision is not read
    /// yet) are kept up to the log's capacity, the newest ones, and the log's
    /// read delivers or counts every revision once.
    #[test]
    fn own_events_waiting_for_the_log_are_bounded() {
        let log = Arc::new(EventLog::new(8));
        let seq = Sequencer::new(0, Arc::clone(&log));
        let mut sub = log.subscribe();
        for rev in 2..=14 {
            seq.own(vec![updated(rev)]);
        }
        let kept: Vec<u64> = seq.order().early.keys().copied().collect();
        assert_eq!(kept, (7..=14).collect::<Vec<_>>());
        assert_eq!(sub.try_next(), None);
        // The log brings 1 and 14 (2..=13 were trimmed): published are 1,
        // Lagged { 5 } for 2..=6, 7..=13 from own writes, 14 once; the
        // subscriber, 8 behind at most, sees the newest 8 after a Lagged.
        seq.logged(vec![updated(1), updated(14)], 14);
        let seen: Vec<ContextEvent> = std::iter::from_fn(|| sub.try_next()).collect();
        let mut expected = vec![ContextEvent::Lagged { missed: 2 }];
        expected.extend((7..=14).map(updated));
        assert_eq!(seen, expected);
        assert!(seq.order().early.is_empty());
        assert_eq!(seq.order().next, 15);
    }
}
