//! The opt-in read cache of a [`RedisBackend`](super::RedisBackend): states
//! known current within the last `max_stale` are served from memory.
//!
//! Redis's client tracking, in broadcast mode for the namespace's context
//! keys, pushes an invalidation for every change on a connection of its
//! own, and an entry is dropped as soon as one arrives. When that connection
//! drops, every entry is invalidated (it may have missed pushes) until a new
//! one tracks again.
//!
//! Staleness is bounded by construction, whatever happens to pushes: an
//! entry is served for less than `max_stale` from the last moment it is
//! known current, which is the later of
//! - when the read that filled it was *sent* (the state it got was current at
//!   some moment after that), and
//! - when the last answered heartbeat was sent. While the cache is read, a
//!   heartbeat asks the tracking connection for Redis's `TIME` every quarter
//!   of `max_stale`. Redis pushes the invalidations of the changes committed
//!   in a round of its event loop at the end of that round, so the reply to
//!   that command comes after those of every change committed before the
//!   command arrived (a change of the same round came after it arrived).
//!   Pushes are applied as the connection reads them, before the reply that
//!   follows them is: when the reply arrives, every entry still valid is
//!   known current as of when the command was sent.
//!
//! So an entry that nothing changes stays in memory while tracking works;
//! when pushes stop arriving (a stalled connection), so do the heartbeats,
//! and entries run out within `max_stale`. The same reply bounds Redis's
//! clock from above, so no state is served past its expiry.
//!
//! A manager sees its own writes, and no read answers older than one sent
//! after an invalidation: an entry is only replaced by one of a newer
//! revision, or by a read sent later of the same revision, and never by a
//! read sent before the last invalidation of its id (or of everything), so
//! a read that was already under way when a write committed cannot bring back
//! what the write replaced.

use contextkit_core::ContextState;
use redis::aio::{AsyncPushSender, MultiplexedConnection, SendError};
use redis::{PushInfo, PushKind, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, Weak};
use std::time::{Duration, Instant};

/// Shards of the cache: readers of different ids rarely meet on a lock, and
/// readers of one id share a read lock.
const SHARDS: usize = 16;

/// How often a failed tracking connection is tried again.
const RECONNECT_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug)]
struct Slot {
    state: Option<Arc<ContextState>>,
    /// The revision the entry stands for (0: a miss, or only a mark).
    revision: u64,
    /// When the read or write that filled it was sent.
    since: Instant,
    /// When it was last invalidated: reads sent before then are refused.
    invalidated: Option<Instant>,
}

impl Slot {
    fn valid(&self) -> bool {
        self.invalidated.is_none()
    }
}

#[derive(Debug)]
struct Slots {
    map: HashMap<String, Slot, ahash::RandomState>,
    /// Entries added since the last purge of those too old to matter.
    added: usize,
}

/// A shard on cache lines of its own: readers on other cores take the
/// locks of other shards without moving this one's line.
#[derive(Debug)]
#[repr(align(128))]
struct Shard(RwLock<Slots>);

#[derive(Debug)]
struct Tracking {
    conn: Option<MultiplexedConnection>,
    /// Counts the tracking connections made: a heartbeat ends with its own.
    generation: u64,
    last_try: Option<Instant>,
    /// When everything was last invalidated (tracking began or ended).
    flushed: Instant,
}

#[derive(Debug)]
pub(crate) struct Cache {
    max_stale: Duration,
    /// `ck:{namespace}:c:`: the tracked prefix; an invalidated key names an id after it.
    key_prefix: String,
    shards: Box<[Shard]>,
    hasher: ahash::RandomState,
    tracking: Mutex<Tracking>,
    /// Whether entries are only kept while a tracking connection is up (set
    /// by the first [`track`](Self::track); never set where Redis cannot push
    /// invalidations for the backend: then `max_stale` alone bounds
    /// staleness).
    tracked: AtomicBool,
    /// The origin of the instants kept in atomics.
    base: Instant,
    /// When the last answered heartbeat was sent (ns after `base`; 0: none
    /// yet): every valid entry is current as of then.
    verified: AtomicU64,
    /// Redis's clock minus ours, at most (µs; `i64::MIN`: not known yet),
    /// from the last heartbeat: Redis's time now is at most ours plus it.
    server_ahead_us: AtomicI64,
    /// Whether the cache was read since the last heartbeat.
    used: AtomicBool,
}

impl Cache {
    pub(crate) fn new(max_stale: Duration, key_prefix: String) -> Self {
        let mut seeds = [0_u8; 32];
        getrandom::getrandom(&mut seeds).expect("the operating system's randomness");
        let [a, b, c, d] = [0, 8, 16, 24]
            .map(|i| u64::from_le_bytes(seeds[i..i + 8].try_into().expect("8 bytes")));
        let hasher = ahash::RandomState::with_seeds(a, b, c, d);
        let shard = || {
            Shard(RwLock::new(Slots {
                map: HashMap::with_hasher(hasher.clone()),
                added: 0,
            }))
        };
        Self {
            tracked: AtomicBool::new(false),
            max_stale,
            key_prefix,
            shards: (0..SHARDS).map(|_| shard()).collect(),
            hasher,
            tracking: Mutex::new(Tracking {
                conn: None,
                generation: 0,
                last_try: None,
                flushed: Instant::now(),
            }),
            base: Instant::now(),
            verified: AtomicU64::new(0),
            server_ahead_us: AtomicI64::new(i64::MIN),
            used: AtomicBool::new(false),
        }
    }

    fn shard(&self, id: &str) -> &RwLock<Slots> {
        &self.shards[self.hasher.hash_one(id) as usize % SHARDS].0
    }

    fn tracking(&self) -> MutexGuard<'_, Tracking> {
        self.tracking.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The cached state of `id` if one may be served now (`Some(None)`: a
    /// cached miss).
    pub(crate) fn get(&self, id: &str) -> Option<Option<Arc<ContextState>>> {
        // Read first: a store on every read would bounce the line between cores.
        if !self.used.load(Ordering::Relaxed) {
            self.used.store(true, Ordering::Relaxed);
        }
        let slots = self.shard(id).read().unwrap_or_else(|e| e.into_inner());
        let slot = slots.map.get(id)?;
        let now = Instant::now();
        (self.servable(slot, now) && !self.expired(slot, now)).then(|| slot.state.clone())
    }

    /// When the last answered heartbeat was sent (`base` if none was).
    fn verified(&self) -> Instant {
        self.base + Duration::from_nanos(self.verified.load(Ordering::Acquire))
    }

    /// Whether `slot` is valid and current as of less than `max_stale` ago.
    fn servable(&self, slot: &Slot, now: Instant) -> bool {
        let current_as_of = slot.since.max(self.verified());
        slot.valid() && now.saturating_duration_since(current_as_of) < self.max_stale
    }

    /// Whether the state of `slot` may have expired by Redis's clock, which
    /// is at most ours plus what the last heartbeat measured.
    fn expired(&self, slot: &Slot, now: Instant) -> bool {
        let ahead = self.server_ahead_us.load(Ordering::Relaxed);
        let (Some(state), false) = (&slot.state, ahead == i64::MIN) else {
            return false;
        };
        let local_us = now.duration_since(self.base).as_micros() as i64;
        let server_ms = local_us.saturating_add(ahead).div_euclid(1_000);
        state.is_expired_at(u64::try_from(server_ms).unwrap_or(0))
    }

    /// Records a heartbeat sent at `sent` that Redis answered with its
    /// clock at `server_us` (µs since the Unix epoch).
    fn verify(&self, sent: Instant, server_us: i64) {
        let sent_ns = sent.duration_since(self.base).as_nanos() as u64;
        self.verified.fetch_max(sent_ns, Ordering::AcqRel);
        // Redis read its clock after `sent`: now it reads at most this much ahead.
        let sent_us = sent.duration_since(self.base).as_micros() as i64;
        self.server_ahead_us
            .store(server_us.saturating_sub(sent_us), Ordering::Relaxed);
    }

    /// Offers what a read or write sent at `since` found for `id`.
    pub(crate) fn offer(
        &self,
        id: &str,
        state: Option<Arc<ContextState>>,
        revision: u64,
        since: Instant,
    ) {
        {
            let t = self.tracking();
            // Nothing is kept that no invalidation could drop, nor what a
            // read or write sent before the last flush found.
            if since < t.flushed || (self.tracked.load(Ordering::Relaxed) && t.conn.is_none()) {
                return;
            }
        }
        let mut slots = self.shard(id).write().unwrap_or_else(|e| e.into_inner());
        // Nor what was sent `max_stale` ago: the marks of invalidations since
        // may be gone (below), and nothing else would refuse it.
        if since.elapsed() >= self.max_stale {
            return;
        }
        if let Some(old) = slots.map.get(id)
            && (revision < old.revision
                || (revision == old.revision && since < old.since)
                || old.invalidated.is_some_and(|at| since < at))
        {
            return;
        }
        let slot = Slot {
            state,
            revision,
            since,
            invalidated: None,
        };
        slots.map.insert(id.to_owned(), slot);
        slots.added += 1;
        if slots.added > 1_024 / SHARDS && slots.added > slots.map.len() / 2 {
            // Entries and marks too old to serve or to refuse anything go: a
            // read still under way that started before them would be too
            // old to be kept anyway.
            let (now, max_stale) = (Instant::now(), self.max_stale);
            slots.map.retain(|_, s| {
                self.servable(s, now) || s.invalidated.is_some_and(|at| at.elapsed() < max_stale)
            });
            slots.added = 0;
        }
    }

    /// Marks the entries of `keys` invalid, as of now (a key with no entry
    /// gets a mark, so that a read sent before now cannot fill it).
    fn invalidate(&self, keys: &[Value]) {
        let now = Instant::now();
        for key in keys {
            let Some(id) = super::record::bytes(key)
                .and_then(|k| std::str::from_utf8(k).ok())
                .and_then(|k| k.strip_prefix(&self.key_prefix))
            else {
                continue;
            };
            let mut slots = self.shard(id).write().unwrap_or_else(|e| e.into_inner());
            match slots.map.get_mut(id) {
                Some(slot) => slot.invalidated = Some(now),
                None => {
                    let mark = Slot {
                        state: None,
                        revision: 0,
                        since: now,
                        invalidated: Some(now),
                    };
                    slots.map.insert(id.to_owned(), mark);
                    slots.added += 1;
                }
            }
        }
    }

    /// Invalidates everything, as of now.
    fn invalidate_all(&self) {
        let now = Instant::now();
        self.tracking().flushed = now;
        for shard in self.shards.iter() {
            let mut slots = shard.0.write().unwrap_or_else(|e| e.into_inner());
            for slot in slots.map.values_mut() {
                slot.invalidated = Some(now);
            }
        }
    }

    /// Makes sure a connection receives the namespace's invalidations
    /// (`CLIENT TRACKING ON BCAST PREFIX ck:{namespace}:c:`), trying at most
    /// once a second while Redis refuses.
    pub(crate) async fn track(self: &Arc<Self>, client: &redis::Client, timeout: Duration) {
        {
            let mut t = self.tracking();
            self.tracked.store(true, Ordering::Relaxed);
            if t.conn.is_some() || t.last_try.is_some_and(|at| at.elapsed() < RECONNECT_EVERY) {
                return;
            }
            t.last_try = Some(Instant::now());
        }
        let Some(conn) = self.connect(client, timeout).await else {
            return;
        };
        // Entries filled before this connection tracked anything may have
        // missed their invalidations.
        self.invalidate_all();
        let generation = {
            let mut t = self.tracking();
            t.conn = Some(conn.clone());
            t.generation += 1;
            t.generation
        };
        tokio::spawn(heartbeat(Arc::downgrade(self), conn, generation));
    }

    async fn connect(
        self: &Arc<Self>,
        client: &redis::Client,
        timeout: Duration,
    ) -> Option<MultiplexedConnection> {
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_push_sender(Invalidations(Arc::downgrade(self)));
        let mut conn = resp3(client)?
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .ok()?;
        let mut on = redis::cmd("CLIENT");
        on.arg("TRACKING")
            .arg("ON")
            .arg("BCAST")
            .arg("PREFIX")
            .arg(&self.key_prefix);
        on.query_async::<()>(&mut conn).await.ok()?;
        Some(conn)
    }

    /// Forgets the tracking connection (it dropped): it may have missed
    /// invalidations.
    fn dropped(&self) {
        self.tracking().conn = None;
        self.invalidate_all();
    }
}

fn resp3(client: &redis::Client) -> Option<redis::Client> {
    let info = client.get_connection_info().clone();
    let settings = info
        .redis_settings()
        .clone()
        .set_protocol(redis::ProtocolVersion::RESP3);
    redis::Client::open(info.set_redis_settings(settings)).ok()
}

/// Applies the pushes of the tracking connection as they are read, before
/// any reply that follows them on the connection is.
struct Invalidations(Weak<Cache>);

impl AsyncPushSender for Invalidations {
    fn send(&self, push: PushInfo) -> Result<(), SendError> {
        let cache = self.0.upgrade().ok_or(SendError)?;
        match push.kind {
            PushKind::Invalidate => match push.data.first() {
                Some(Value::Array(keys)) => cache.invalidate(keys),
                // A flush of everything tracked.
                _ => cache.invalidate_all(),
            },
            PushKind::Disconnection => cache.dropped(),
            _ => {}
        }
        Ok(())
    }
}

/// While the cache is read, asks Redis's `TIME` on the tracking connection
/// of `generation` every quarter of `max_stale` (see the module's doc),
/// until that connection is replaced or the cache is gone.
async fn heartbeat(cache: Weak<Cache>, mut conn: MultiplexedConnection, generation: u64) {
    let every = match cache.upgrade() {
        Some(cache) => (cache.max_stale / 4).max(Duration::from_millis(1)),
        None => return,
    };
    loop {
        tokio::time::sleep(every).await;
        {
            let Some(cache) = cache.upgrade() else { return };
            let t = cache.tracking();
            if t.generation != generation || t.conn.is_none() {
                return;
            }
            drop(t);
            if !cache.used.swap(false, Ordering::Relaxed) {
                continue;
            }
        }
        let sent = Instant::now();
        let time: redis::RedisResult<(i64, i64)> = redis::cmd("TIME").query_async(&mut conn).await;
        // An error (a timeout, a drop) verifies nothing; a drop is reported
        // by the connection's own push.
        if let (Ok((secs, micros)), Some(cache)) = (time, cache.upgrade()) {
            cache.verify(sent, secs.saturating_mul(1_000_000).saturating_add(micros));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use contextkit_core::json;

    const MAX_STALE: Duration = Duration::from_secs(1);

    fn state(revision: u64, expires_at_ms: Option<u64>) -> Arc<ContextState> {
        Arc::new(ContextState {
            id: "a".into(),
            version: revision,
            revision,
            created_at_ms: 0,
            updated_at_ms: 0,
            expires_at_ms,
            data: json!({}).into(),
            metadata: Default::default(),
        })
    }

    fn ago(ms: u64) -> Instant {
        Instant::now() - Duration::from_millis(ms)
    }

    /// The revision served for `a`, if any.
    fn served(cache: &Cache) -> Option<u64> {
        Some(cache.get("a")??.revision)
    }

    fn invalidate_a(cache: &Cache) {
        cache.invalidate(&[Value::BulkString(b"ck:{n}:c:a".to_vec())]);
    }

    /// A cache that takes reads sent up to 10 s before it was made.
    fn cache() -> Cache {
        let mut c = Cache::new(MAX_STALE, "ck:{n}:c:".into());
        c.base = ago(10_000);
        c.tracking().flushed = c.base;
        c
    }

    #[test]
    fn an_entry_is_served_for_max_stale_from_its_read() {
        let c = cache();
        c.offer("a", Some(state(3, None)), 3, ago(900));
        assert_eq!(served(&c), Some(3));
        std::thread::sleep(Duration::from_millis(150));
        assert_eq!(served(&c), None, "served past max_stale");
        // A read sent max_stale ago is not kept at all: the marks of changes
        // since may be gone, and a heartbeat would make it current.
        c.verify(Instant::now(), 0);
        c.offer("b", Some(state(4, None)), 4, ago(1_000));
        assert!(c.get("b").is_none());
    }

    #[test]
    fn a_heartbeat_keeps_valid_entries_current() {
        let c = cache();
        c.offer("a", Some(state(3, None)), 3, ago(900));
        c.verify(ago(10), 0);
        std::thread::sleep(Duration::from_millis(150));
        // 1,050 ms after its read, 160 ms after the heartbeat was sent.
        assert_eq!(served(&c), Some(3));
        // A heartbeat is only as good as when it was sent, and an older one
        // changes nothing.
        c.verify(ago(5_000), 0);
        assert_eq!(served(&c), Some(3));
        // An invalidated entry is not served, whatever the heartbeats say.
        invalidate_a(&c);
        c.verify(Instant::now(), 0);
        assert_eq!(served(&c), None);
        // Nor is a read sent before the invalidation kept.
        c.offer("a", Some(state(3, None)), 3, ago(20));
        assert_eq!(served(&c), None);
        c.offer("a", Some(state(4, None)), 4, Instant::now());
        assert_eq!(served(&c), Some(4));
        // A dropped tracking connection invalidates everything.
        c.dropped();
        c.verify(Instant::now(), 0);
        assert_eq!(served(&c), None);
    }

    #[test]
    fn no_state_is_served_past_its_expiry_by_the_servers_clock() {
        let c = cache();
        let server_now_ms = 1_800_000_000_000_u64;
        c.offer("a", Some(state(3, Some(server_now_ms + 500))), 3, ago(0));
        c.offer("b", Some(state(4, None)), 4, ago(0));
        // Redis read its clock at least 1 ms after we sent: at most that ahead.
        c.verify(ago(1), (server_now_ms * 1_000) as i64);
        assert_eq!(served(&c), Some(3));
        c.verify(ago(1), ((server_now_ms + 499) * 1_000) as i64);
        assert_eq!(served(&c), None, "served at its expiry");
        assert!(c.get("b").is_some(), "a state with no expiry expired");
    }
}
