//! The sharded map behind a manager and the helpers its critical sections share.

use crate::backend::Backend;
use crate::backend::owned::Owned;
use crate::events::EventLog;
use crate::storage::SnapshotRecord;
use crate::sync::{AtomicU64, AtomicUsize, Ordering};
use crate::{Clock, ContextEvent, ContextState, ManagerConfig, Scoped, Stats, Storage};
use std::collections::VecDeque;
use std::num::NonZeroU64;
use std::sync::Arc;

/// One stored context with its recovery points: they live and die together.
/// 32 bytes: the TTL uses its `NonZeroU64` niche (a TTL is at least 1 ms) and
/// the recovery points, which most contexts never have, sit behind a box.
#[derive(Debug)]
pub(crate) struct Entry {
    pub state: Arc<ContextState>,
    /// The TTL that each write restarts.
    ttl_ms: Option<NonZeroU64>,
    /// Global write sequence number of the last write; orders eviction.
    pub touched: u64,
    /// 8 bytes in every map slot instead of a `VecDeque`'s 32.
    #[allow(clippy::box_collection)]
    snapshots: Option<Box<VecDeque<SnapshotRecord>>>,
}

/// The recovery points of an entry that has none.
static NO_SNAPSHOTS: VecDeque<SnapshotRecord> = VecDeque::new();

impl Entry {
    pub fn new(
        state: Arc<ContextState>,
        ttl_ms: Option<u64>,
        touched: u64,
        snapshots: VecDeque<SnapshotRecord>,
    ) -> Self {
        let mut entry = Self {
            state,
            ttl_ms: None,
            touched,
            snapshots: None,
        };
        entry.set_ttl_ms(ttl_ms);
        entry.set_snapshots(snapshots);
        entry
    }

    /// The TTL that each write restarts.
    pub fn ttl_ms(&self) -> Option<u64> {
        self.ttl_ms.map(NonZeroU64::get)
    }

    /// Writes refuse a TTL of 0 (`validate::ttl`) and `open` refuses stored
    /// records with one; any other 0 (a record read back from a storage that
    /// changed it) becomes the shortest TTL rather than none.
    pub fn set_ttl_ms(&mut self, ttl_ms: Option<u64>) {
        self.ttl_ms = ttl_ms.map(|ms| NonZeroU64::new(ms).unwrap_or(NonZeroU64::MIN));
    }

    /// Recovery points, oldest first.
    pub fn snapshots(&self) -> &VecDeque<SnapshotRecord> {
        self.snapshots.as_deref().unwrap_or(&NO_SNAPSHOTS)
    }

    pub fn snapshots_mut(&mut self) -> &mut VecDeque<SnapshotRecord> {
        self.snapshots.get_or_insert_with(Box::default)
    }

    pub fn set_snapshots(&mut self, snapshots: VecDeque<SnapshotRecord>) {
        self.snapshots = (!snapshots.is_empty()).then(|| Box::new(snapshots));
    }
}

mod map;

/// One shard's contexts. Only contexts: a storage's pending writes are the
/// owned backend's (`backend/owned.rs`).
pub(crate) use map::Map;

/// Read counters live per shard, so concurrent readers of different shards
/// never share a cache line.
#[derive(Debug)]
#[repr(align(128))]
pub(crate) struct Shard {
    pub map: Scoped<Map>,
    /// No context in this shard expires before this instant (`u64::MAX`: none).
    /// A lower bound, only ever changed inside the shard's write closures.
    pub earliest_expiry: AtomicU64,
    pub hits: AtomicUsize,
    pub misses: AtomicUsize,
}

impl Shard {
    /// Counts a read of one of its ids that found it or not.
    pub(crate) fn count_read(&self, found: bool) {
        let counter = if found { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn new(hasher: ahash::RandomState) -> Self {
        Self {
            map: Scoped::new(Map::with_hasher(hasher)),
            earliest_expiry: AtomicU64::new(u64::MAX),
            hits: AtomicUsize::new(0),
            misses: AtomicUsize::new(0),
        }
    }

    /// Called inside the critical section that stores `expires_at`.
    pub(crate) fn note_expiry(&self, expires_at: Option<u64>) {
        if let Some(at) = expires_at {
            self.earliest_expiry.fetch_min(at, Ordering::SeqCst);
        }
    }

    pub(crate) fn may_have_expired(&self, now: u64) -> bool {
        self.earliest_expiry.load(Ordering::SeqCst) <= now
    }
}

/// The number of stored contexts, with a change counter beside it in one
/// atomic word: a compare-and-set on it succeeds only if no context was added
/// or removed anywhere since the word was read.
///
/// That is what lets a create take effect at one instant with the clock of
/// that instant: it reads the word, then the clock, then takes its slot with
/// a compare-and-set. When that succeeds, every add and removal it depends on
/// happened before it read the clock, and every call that sees its slot comes
/// after it, however long the thread is held up in between.
#[derive(Debug, Default)]
pub(crate) struct Slots(AtomicU64);

impl Slots {
    /// Low bits: the count; high bits: the change counter (wrapping).
    const COUNT_BITS: u32 = 40;
    const COUNT_MASK: u64 = (1 << Self::COUNT_BITS) - 1;
    const CHANGE: u64 = 1 << Self::COUNT_BITS;

    pub(crate) fn load(&self, order: Ordering) -> usize {
        (self.0.load(order) & Self::COUNT_MASK) as usize
    }

    pub(crate) fn fetch_add(&self, n: usize, order: Ordering) {
        self.0.fetch_add(Self::CHANGE.wrapping_add(n as u64), order);
    }

    /// `n` must not be more than the count.
    pub(crate) fn fetch_sub(&self, n: usize, order: Ordering) {
        self.0.fetch_add(Self::CHANGE.wrapping_sub(n as u64), order);
    }

    /// The count and the change counter together: equal words mean no context
    /// was added or removed in between.
    pub(crate) fn word(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }

    /// One more if fewer than `limit`: `Ok(now())` read between the word and
    /// the compare-and-set that took the slot, else `Err((now(), word))`.
    /// `claim(at)` runs just before each compare-and-set.
    fn take(
        &self,
        limit: usize,
        now: impl Fn() -> u64,
        claim: impl Fn(u64),
    ) -> std::result::Result<u64, (u64, u64)> {
        loop {
            let word = self.0.load(Ordering::SeqCst);
            let at = now();
            if (word & Self::COUNT_MASK) as usize >= limit {
                return Err((at, word));
            }
            claim(at);
            let next = word.wrapping_add(Self::CHANGE + 1);
            if self
                .0
                .compare_exchange(word, next, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
            {
                return Ok(at);
            }
        }
    }
}

/// The next recovery-point id, with a mark set when a storage write captured
/// the current value (every stored record carries it). An id taken for a
/// snapshot whose write failed is given back only if no write captured the
/// value after it: otherwise a reopen would see the larger one.
#[derive(Debug)]
pub(crate) struct SnapshotIds(AtomicU64);

impl SnapshotIds {
    const CAPTURED: u64 = 1 << 63;

    pub(crate) fn new(next: u64) -> Self {
        Self(AtomicU64::new(next))
    }

    /// Sets the next id (when a manager opens).
    pub(crate) fn set(&self, next: u64) {
        self.0.store(next, Ordering::SeqCst);
    }

    /// The next id.
    pub(crate) fn peek(&self) -> u64 {
        self.0.load(Ordering::SeqCst) & !Self::CAPTURED
    }

    /// The next id, for a record about to be stored.
    pub(crate) fn capture(&self) -> u64 {
        self.0.fetch_or(Self::CAPTURED, Ordering::SeqCst) & !Self::CAPTURED
    }

    /// Takes the next id if `take(id)` says so, with a compare-and-set: ids go
    /// out in the order of the calls that took them. `take` runs before each
    /// attempt (it reads the clock); `None` if it declined.
    pub(crate) fn take<T>(&self, mut take: impl FnMut(u64) -> Option<T>) -> Option<(u64, T)> {
        loop {
            let word = self.0.load(Ordering::SeqCst);
            let id = word & !Self::CAPTURED;
            let value = take(id)?;
            if self
                .0
                .compare_exchange(word, id + 1, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
            {
                return Some((id, value));
            }
        }
    }

    /// Gives `id` back for a snapshot that was never stored, unless a later
    /// snapshot took the next one or a stored record carries it.
    pub(crate) fn give_back(&self, id: u64) {
        let _ = self
            .0
            .compare_exchange(id + 1, id, Ordering::SeqCst, Ordering::SeqCst);
    }
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub creates: AtomicUsize,
    pub updates: AtomicUsize,
    pub conflicts: AtomicUsize,
    pub deletes: AtomicUsize,
    pub expirations: AtomicUsize,
    pub evictions: AtomicUsize,
}

/// Why a context left the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Removal {
    Deleted,
    Expired,
    Evicted,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub cfg: ManagerConfig,
    pub clock: Arc<dyn Clock>,
    pub shards: Box<[Shard]>,
    shard_hasher: ahash::RandomState,
    /// Contexts in the maps, expired-but-unswept included.
    pub count: Slots,
    /// Effective capacity: the smaller of the config's and an adapter's.
    pub limit: AtomicUsize,
    pub next_snapshot: SnapshotIds,
    /// The revision the next commit takes (see [`Inner::commit`]).
    next_revision: AtomicU64,
    touch: AtomicU64,
    pub events: Arc<EventLog>,
    pub counters: Counters,
    /// Where the contexts live: in memory only, written through to a
    /// storage, or in a shared backend.
    pub backend: Backend,
}

impl Inner {
    pub(crate) fn new(
        cfg: ManagerConfig,
        clock: Arc<dyn Clock>,
        seed: [u64; 4],
        shards: usize,
        event_capacity: usize,
        storage: Option<Arc<dyn Storage>>,
    ) -> Self {
        let shards = shards.clamp(1, 1024).next_power_of_two();
        let map_hasher = ahash::RandomState::with_seeds(seed[0], seed[1], seed[2], seed[3]);
        let shard_hasher = ahash::RandomState::with_seeds(seed[3], seed[2], seed[1], seed[0]);
        let backend = match storage {
            Some(storage) => Backend::Owned(Owned::new(storage, shards, &map_hasher)),
            None => Backend::Memory,
        };
        Self {
            limit: AtomicUsize::new(cfg.max_contexts),
            cfg,
            clock,
            shards: (0..shards)
                .map(|_| Shard::new(map_hasher.clone()))
                .collect(),
            shard_hasher,
            count: Slots::default(),
            next_snapshot: SnapshotIds::new(1),
            next_revision: AtomicU64::new(1),
            touch: AtomicU64::new(0),
            events: Arc::new(EventLog::new(event_capacity)),
            counters: Counters::default(),
            backend,
        }
    }

    pub(crate) fn now(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Counts a read of `id` that found it or not.
    pub(crate) fn count_read(&self, id: &str, found: bool) {
        self.shard(id).count_read(found);
    }

    /// A hasher for maps of ids beside the shards' (the adapter's trackers),
    /// keyed from this manager's seed.
    pub(crate) fn id_hasher(&self) -> ahash::RandomState {
        let [a, b, c, d] = [1_u8, 2, 3, 4].map(|i| self.shard_hasher.hash_one(i));
        ahash::RandomState::with_seeds(a, b, c, d)
    }

    pub(crate) fn shard(&self, id: &str) -> &Shard {
        &self.shards[self.shard_index(id)]
    }

    /// The position of `id`'s shard in [`shards`](Self::shards).
    pub(crate) fn shard_index(&self, id: &str) -> usize {
        let h = self.shard_hasher.hash_one(id);
        // High bits: the map inside the shard indexes by the low ones of its own hash.
        (h >> 32) as usize & (self.shards.len() - 1)
    }

    pub(crate) fn next_touch(&self) -> u64 {
        self.touch.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub(crate) fn expires_at(now: u64, ttl_ms: Option<u64>) -> Option<u64> {
        ttl_ms.map(|t| now.saturating_add(t))
    }

    /// Takes one slot of capacity and returns the clock at the instant it was
    /// taken, which is where a create takes effect; `Err` with the clock and
    /// the [`Slots::word`] it saw when the store is full. Inside a shard's
    /// critical section, so the count can never pass the limit.
    ///
    /// The create's expiry (`ttl_ms` from then) is noted in `shard` before the
    /// slot is taken: whoever finds the store full because of this slot also
    /// finds that the shard may hold something expired, and waits for the
    /// section to end to sweep it.
    pub(crate) fn take_slot(
        &self,
        shard: &Shard,
        ttl_ms: Option<u64>,
    ) -> std::result::Result<u64, (u64, u64)> {
        self.count.take(
            self.limit.load(Ordering::SeqCst),
            || self.now(),
            |at| shard.note_expiry(Self::expires_at(at, ttl_ms)),
        )
    }

    /// Gives back a slot taken by [`take_slot`](Self::take_slot) for a create that failed.
    pub(crate) fn release_slot(&self) {
        self.count.fetch_sub(1, Ordering::SeqCst);
    }

    /// A fresh revision, for a commit decided before it is published (a
    /// write through a storage: its record carries the revision).
    pub(crate) fn take_revision(&self) -> u64 {
        self.next_revision.fetch_add(1, Ordering::SeqCst)
    }

    /// The revision the next commit takes.
    pub(crate) fn peek_revision(&self) -> u64 {
        self.next_revision.load(Ordering::SeqCst)
    }

    /// Makes the next revision at least `next` (never lowers it).
    pub(crate) fn raise_next_revision(&self, next: u64) {
        self.next_revision.fetch_max(next, Ordering::SeqCst);
    }

    /// Makes every later revision larger than `revision` (one read from a
    /// storage), so none is handed out twice.
    pub(crate) fn cover_revision(&self, revision: u64) {
        self.raise_next_revision(revision.saturating_add(1));
    }

    /// One commit: takes its revision and publishes the event `event` builds
    /// for it, returning the revision. Called inside the shard's critical
    /// section that applies the commit.
    ///
    /// In memory (`decided` is `None`) the revision is taken here, under the
    /// event log's lock when anyone listens, so subscribers see revisions in
    /// increasing order across shards; with nobody listening this is one
    /// `fetch_add`. Through a storage the revision was `decided` with the
    /// write (its record carries it) and is only published here.
    pub(crate) fn commit(
        &self,
        decided: Option<u64>,
        event: impl FnOnce(u64) -> ContextEvent,
    ) -> u64 {
        match decided {
            Some(revision) => {
                if self.events.has_subscribers() {
                    self.events.publish(event(revision));
                }
                revision
            }
            None => self.events.sequence(|| self.take_revision(), event),
        }
    }

    /// Removes `id` from `map` (inside its shard's critical section), keeping
    /// the count, the counters and the event log in step. The removal is a
    /// commit of its own: it takes a revision (or uses the one `decided`).
    pub(crate) fn remove(
        &self,
        map: &mut Map,
        id: &str,
        why: Removal,
        decided: Option<u64>,
    ) -> Option<Entry> {
        let entry = map.remove(id)?;
        self.count.fetch_sub(1, Ordering::SeqCst);
        let version = entry.state.version;
        let (counter, event): (_, fn(String, u64, u64) -> ContextEvent) = match why {
            Removal::Deleted => (&self.counters.deletes, |id, version, revision| {
                ContextEvent::Deleted {
                    id,
                    version,
                    revision,
                }
            }),
            Removal::Expired => (&self.counters.expirations, |id, version, revision| {
                ContextEvent::Expired {
                    id,
                    version,
                    revision,
                }
            }),
            Removal::Evicted => (&self.counters.evictions, |id, version, revision| {
                ContextEvent::Evicted {
                    id,
                    version,
                    revision,
                }
            }),
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.commit(decided, |revision| event(id.to_owned(), version, revision));
        Some(entry)
    }

    /// The live entry for `id`. In memory an expired one is removed first;
    /// through a storage it stays until a storage delete removes it (the
    /// write that met it does that, see `write.rs`), so that every removal
    /// a subscriber sees is durable, its revision included.
    pub(crate) fn live_mut<'m>(
        &self,
        map: &'m mut Map,
        id: &str,
        now: u64,
    ) -> Option<&'m mut Entry> {
        if map.get(id)?.state.is_expired_at(now) {
            if self.backend.removes_expired_in_place() {
                self.remove(map, id, Removal::Expired, None);
            }
            return None;
        }
        map.get_mut(id)
    }

    pub(crate) fn stats(&self) -> Stats {
        let c = &self.counters;
        let load = |a: &AtomicUsize| a.load(Ordering::Relaxed);
        #[allow(unused_mut)] // without shared mode
        let mut contexts = self.count.load(Ordering::Relaxed);
        in_shared_mode!(self, shared => {
            contexts = shared.contexts.load(Ordering::Relaxed);
        });
        let (hits, misses) = self
            .shards
            .iter()
            .fold((0, 0), |(h, m), s| (h + load(&s.hits), m + load(&s.misses)));
        Stats {
            contexts,
            reads: hits + misses,
            hits,
            misses,
            creates: load(&c.creates),
            updates: load(&c.updates),
            conflicts: load(&c.conflicts),
            deletes: load(&c.deletes),
            expirations: load(&c.expirations),
            evictions: load(&c.evictions),
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.events.close();
    }
}

#[cfg(test)]
mod tests {
    use crate::{ContextManager, ManagerConfig};

    /// The loom models on eight shards (`core/tests/loom.rs`) rely on their
    /// ids landing on different shards with the seed they fix.
    #[test]
    fn the_loom_models_ids_are_on_different_shards() {
        let m = ContextManager::builder(ManagerConfig::default())
            .shards(8)
            .hash_seed([1, 2, 3, 4])
            .build();
        let shard = |id: &str| std::ptr::from_ref(m.inner.shard(id)) as usize;
        let (a, b, gone) = (shard("a"), shard("b"), shard("gone"));
        assert!(a != b && b != gone && a != gone, "{a:x} {b:x} {gone:x}");
    }
}
