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
//! So an entry that nothing changes stays in memory while tracking works,
//! up to [`EXTEND`] times `max_stale` after its read (a backstop should Redis
//! ever fail to push a change: the library changes keys only with function
//! calls, which Redis pushes as above); when pushes stop arriving (a stalled
//! connection), so do the answers, and entries run out within `max_stale`.
//! A heartbeat that fails drops the connection, to track again on a new
//! one. Its answer also bounds Redis's clock from above: once one came, no
//! entry is served past its state's expiry, and before, none is kept past
//! `max_stale` if its state expires.
//!
//! A manager sees its own writes, and no read answers older than one sent
//! after an invalidation: an entry is only replaced by one of a newer
//! revision, or by a read sent later of the same revision, and never by a
//! read sent before the last invalidation of its id (or of everything), so
//! a read that was already under way when a write committed cannot bring back
//! what the write replaced. An offer refused for its age takes out an entry
//! of an older revision.

use contextkit_core::ContextState;
use redis::aio::{AsyncPushSender, MultiplexedConnection, SendError};
use redis::{PushInfo, PushKind, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, Weak};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Shards of the cache: readers of different ids rarely meet on a lock, and
/// readers of one id share a read lock.
const SHARDS: usize = 16;

/// Entries (and marks) a shard holds at most: past it, the shard starts
/// again empty.
const SHARD_ENTRIES: usize = 1 << 14;

/// How many times `max_stale` after its read an entry is served at most,
/// however many heartbeats confirm it.
pub(crate) const EXTEND: u32 = 16;

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
    /// Reads sent before it are refused (the shard was emptied then).
    floor: Instant,
}

/// A shard on cache lines of its own: readers on other cores take the
/// locks of other shards without moving this one's line.
#[derive(Debug)]
#[repr(align(128))]
struct Shard(RwLock<Slots>);

#[derive(Debug)]
struct Tracking {
    conn: Option<MultiplexedConnection>,
    /// The tracking connection being made or in use; a drop of another
    /// (older) one changes nothing.
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
    /// Wakes an idle heartbeat: at the first read, and when the cache goes.
    wake: Arc<Notify>,
}

impl Drop for Cache {
    fn drop(&mut self) {
        self.wake.notify_waiters();
    }
}

impl Cache {
    pub(crate) fn new(max_stale: Duration, key_prefix: String) -> Self {
        let mut seeds = [0_u8; 32];
        getrandom::getrandom(&mut seeds).expect("the operating system's randomness");
        let [a, b, c, d] = [0, 8, 16, 24]
            .map(|i| u64::from_le_bytes(seeds[i..i + 8].try_into().expect("8 bytes")));
        let hasher = ahash::RandomState::with_seeds(a, b, c, d);
        let now = Instant::now();
        let shard = || {
            Shard(RwLock::new(Slots {
                map: HashMap::with_hasher(hasher.clone()),
                added: 0,
                floor: now,
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
                flushed: now,
            }),
            base: now,
            verified: AtomicU64::new(0),
            server_ahead_us: AtomicI64::new(i64::MIN),
            used: AtomicBool::new(false),
            wake: Arc::new(Notify::new()),
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
            self.wake.notify_waiters();
        }
        let slots = self.shard(id).read().unwrap_or_else(|e| e.into_inner());
        let slot = slots.map.get(id)?;
        let now = Instant::now();
        self.servable(slot, now).then(|| slot.state.clone())
    }

    /// When the last answered heartbeat was sent (`base` if none was).
    fn verified(&self) -> Instant {
        self.base + Duration::from_nanos(self.verified.load(Ordering::Acquire))
    }

    /// Whether `slot` may be served at `now`: valid, not expired by Redis's
    /// clock as far as it is known, and current as of less than
    /// `max_stale` ago (see the module's doc).
    fn servable(&self, slot: &Slot, now: Instant) -> bool {
        let read = now.saturating_duration_since(slot.since);
        if !slot.valid() || read >= self.max_stale.saturating_mul(EXTEND) {
            return false;
        }
        let expired = self.expired(slot, now);
        if expired == Some(true) {
            return false;
        }
        // Kept past its read only with a known clock (or no expiry).
        read < self.max_stale
            || (now.saturating_duration_since(self.verified()) < self.max_stale
                && expired.is_some())
    }

    /// Whether the state of `slot` may have expired by Redis's clock, which
    /// is at most ours plus what the last heartbeat measured: `None` for a
    /// state that expires when no heartbeat has measured that clock yet.
    fn expired(&self, slot: &Slot, now: Instant) -> Option<bool> {
        let Some(expires_at) = slot.state.as_ref().and_then(|s| s.expires_at_ms) else {
            return Some(false);
        };
        let ahead = self.server_ahead_us.load(Ordering::Relaxed);
        if ahead == i64::MIN {
            return None;
        }
        let local_us = now.duration_since(self.base).as_micros() as i64;
        let server_ms = local_us.saturating_add(ahead).div_euclid(1_000);
        Some(u64::try_from(server_ms).is_ok_and(|now_ms| expires_at <= now_ms))
    }

    /// Records a heartbeat sent at `sent` that Redis answered with its
    /// clock at `server_us` (µs since the Unix epoch).
    fn verify(&self, sent: Instant, server_us: i64) {
        let sent = sent.duration_since(self.base);
        // Redis read its clock after `sent`: it reads at most this much ahead.
        let ahead = server_us.saturating_sub(sent.as_micros() as i64);
        self.server_ahead_us.store(ahead, Ordering::Relaxed);
        self.verified
            .fetch_max(sent.as_nanos() as u64, Ordering::AcqRel);
    }

    /// Offers what a read or write sent at `since` found for `id`.
    pub(crate) fn offer(
        &self,
        id: &str,
        state: Option<Arc<ContextState>>,
        revision: u64,
        since: Instant,
    ) {
        let mut slots = self.shard(id).write().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        // Nothing is kept that no invalidation could drop, nor what a read
        // or write sent before the last flush (checked under the shard's
        // lock: a flush marks the shard after it), before the shard was
        // emptied, or `max_stale` ago (the marks of later invalidations may
        // be gone) found.
        let refused =
            since < slots.floor || now.saturating_duration_since(since) >= self.max_stale || {
                let t = self.tracking();
                since < t.flushed || (self.tracked.load(Ordering::Relaxed) && t.conn.is_none())
            };
        if let Some(old) = slots.map.get_mut(id) {
            if refused {
                // An older state must not outlive what replaced it.
                if old.revision < revision {
                    old.invalidated = Some(now);
                }
                return;
            }
            if revision < old.revision
                || (revision == old.revision && since < old.since)
                || old.invalidated.is_some_and(|at| since < at)
            {
                return;
            }
        } else if refused {
            return;
        }
        let slot = Slot {
            state,
            revision,
            since,
            invalidated: None,
        };
        slots.map.insert(id.to_owned(), slot);
        self.added(&mut slots, now);
    }

    /// Counts an entry added to `slots`; now and then, drops the entries
    /// and marks too old to serve or to refuse anything (a read sent
    /// before them is refused for its age), and empties a full shard.
    fn added(&self, slots: &mut Slots, now: Instant) {
        slots.added += 1;
        if slots.added <= 1_024 / SHARDS || slots.added <= slots.map.len() / 2 {
            return;
        }
        let max_stale = self.max_stale;
        slots.map.retain(|_, s| {
            self.servable(s, now)
                || s.invalidated
                    .is_some_and(|at| now.saturating_duration_since(at) < max_stale)
        });
        slots.added = 0;
        if slots.map.len() >= SHARD_ENTRIES {
            slots.map.clear();
            slots.floor = now;
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
                    self.added(&mut slots, now);
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

    /// Whether a tracking connection is to be made now: none is up, and
    /// none was tried within the last second. Then the generation of the
    /// one to make with [`track`](Self::track).
    pub(crate) fn begin_tracking(&self) -> Option<u64> {
        let mut t = self.tracking();
        self.tracked.store(true, Ordering::Relaxed);
        if t.conn.is_some() || t.last_try.is_some_and(|at| at.elapsed() < RECONNECT_EVERY) {
            return None;
        }
        t.last_try = Some(Instant::now());
        t.generation += 1;
        Some(t.generation)
    }

    /// Makes tracking connection `generation`, which receives the
    /// namespace's invalidations (`CLIENT TRACKING ON BCAST PREFIX
    /// ck:{namespace}:c:`), and starts its heartbeat.
    pub(crate) async fn track(
        self: Arc<Self>,
        client: redis::Client,
        timeout: Duration,
        generation: u64,
    ) {
        let Some(conn) = self.connect(&client, timeout, generation).await else {
            return;
        };
        // Entries filled before this connection tracked anything may have
        // missed their invalidations.
        self.invalidate_all();
        {
            let mut t = self.tracking();
            // It dropped already, or a newer one is being made.
            if t.generation != generation {
                return;
            }
            t.conn = Some(conn.clone());
        }
        tokio::spawn(heartbeat(Arc::downgrade(&self), conn, generation));
    }

    async fn connect(
        self: &Arc<Self>,
        client: &redis::Client,
        timeout: Duration,
        generation: u64,
    ) -> Option<MultiplexedConnection> {
        let invalidations = Invalidations {
            cache: Arc::downgrade(self),
            generation,
        };
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_push_sender(invalidations);
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

    /// Forgets tracking connection `generation` (it dropped, or its
    /// heartbeat failed): it may have missed invalidations.
    fn dropped(&self, generation: u64) {
        {
            let mut t = self.tracking();
            if t.generation != generation {
                return;
            }
            t.conn = None;
            t.generation += 1;
        }
        self.invalidate_all();
        // Its heartbeat, if waiting, ends.
        self.wake.notify_waiters();
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

/// Applies the pushes of tracking connection `generation` as they are read,
/// before any reply that follows them on the connection is.
struct Invalidations {
    cache: Weak<Cache>,
    generation: u64,
}

impl AsyncPushSender for Invalidations {
    fn send(&self, push: PushInfo) -> Result<(), SendError> {
        let cache = self.cache.upgrade().ok_or(SendError)?;
        match push.kind {
            PushKind::Invalidate => match push.data.first() {
                Some(Value::Array(keys)) => cache.invalidate(keys),
                // A flush of everything tracked.
                _ => cache.invalidate_all(),
            },
            PushKind::Disconnection => cache.dropped(self.generation),
            _ => {}
        }
        Ok(())
    }
}

impl Drop for Invalidations {
    /// The connection is gone (with or without a disconnection push).
    fn drop(&mut self) {
        if let Some(cache) = self.cache.upgrade() {
            cache.dropped(self.generation);
        }
    }
}

/// Asks Redis's `TIME` on tracking connection `generation` at once, then
/// every quarter of `max_stale` while the cache is read (see the module's
/// doc), until that connection is replaced, a heartbeat fails (then it is
/// dropped) or the cache is gone.
async fn heartbeat(cache: Weak<Cache>, mut conn: MultiplexedConnection, generation: u64) {
    let every = match cache.upgrade() {
        Some(cache) => (cache.max_stale / 4).max(Duration::from_millis(1)),
        None => return,
    };
    let Some(wake) = cache.upgrade().map(|c| Arc::clone(&c.wake)) else {
        return;
    };
    let mut first = true;
    loop {
        if !first {
            tokio::time::sleep(every).await;
        }
        // Listening before the checks: a read, a drop of the connection or
        // the cache's end that comes after them wakes it (they wake every
        // heartbeat waiting, also one of an older connection on its way out).
        let woken = wake.notified();
        let mut woken = std::pin::pin!(woken);
        woken.as_mut().enable();
        {
            let Some(cache) = cache.upgrade() else { return };
            if cache.tracking().generation != generation {
                return;
            }
            let used = std::mem::take(&mut first) || cache.used.swap(false, Ordering::Relaxed);
            if !used {
                drop(cache);
                // Until the next read.
                woken.await;
                continue;
            }
        }
        let sent = Instant::now();
        let time: redis::RedisResult<(i64, i64)> = redis::cmd("TIME").query_async(&mut conn).await;
        let Some(cache) = cache.upgrade() else { return };
        match time {
            Ok((secs, micros)) => {
                cache.verify(sent, secs.saturating_mul(1_000_000).saturating_add(micros));
            }
            Err(_) => {
                cache.dropped(generation);
                return;
            }
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

    /// The revision served for `id`, if any.
    fn served(cache: &Cache, id: &str) -> Option<u64> {
        Some(cache.get(id)??.revision)
    }

    fn key(id: &str) -> Value {
        Value::BulkString(format!("ck:{{n}}:c:{id}").into_bytes())
    }

    /// A cache that takes reads sent up to 100 s before it was made.
    fn cache(max_stale: Duration) -> Cache {
        let mut c = Cache::new(max_stale, "ck:{n}:c:".into());
        c.base = ago(100_000);
        c.tracking().flushed = c.base;
        for shard in c.shards.iter_mut() {
            shard.0.get_mut().unwrap().floor = c.base;
        }
        c
    }

    #[test]
    fn an_entry_is_served_for_max_stale_from_its_read() {
        let c = cache(MAX_STALE);
        c.offer("a", Some(state(3, None)), 3, ago(600));
        assert_eq!(served(&c, "a"), Some(3));
        std::thread::sleep(Duration::from_millis(450));
        assert_eq!(served(&c, "a"), None, "served past max_stale");
    }

    #[test]
    fn a_heartbeat_keeps_valid_entries_current() {
        let c = cache(MAX_STALE);
        c.offer("a", Some(state(3, None)), 3, ago(600));
        std::thread::sleep(Duration::from_millis(450));
        c.verify(Instant::now(), 0);
        // 1,050 ms after its read, just after the heartbeat was sent.
        assert_eq!(served(&c, "a"), Some(3));
        // A heartbeat is only as good as when it was sent: an older one
        // changes nothing.
        c.verify(ago(50_000), 0);
        assert_eq!(served(&c, "a"), Some(3));
        // An invalidated entry is not served, whatever the heartbeats say,
        // and the connection applies a push before it hands on anything
        // read after it.
        let c = Arc::new(c);
        let push = Invalidations {
            cache: Arc::downgrade(&c),
            generation: 0,
        };
        let invalidate = PushInfo {
            kind: PushKind::Invalidate,
            data: vec![Value::Array(vec![key("a")])],
        };
        push.send(invalidate).unwrap();
        c.verify(Instant::now(), 0);
        assert_eq!(served(&c, "a"), None);
        // Nor is a read sent before the invalidation kept; one sent after is.
        c.offer("a", Some(state(3, None)), 3, ago(20));
        assert_eq!(served(&c, "a"), None);
        c.offer("a", Some(state(4, None)), 4, Instant::now());
        assert_eq!(served(&c, "a"), Some(4));
        // The drop of an older connection changes nothing; of this one, all.
        c.tracking().generation = 1;
        c.dropped(0);
        assert_eq!(served(&c, "a"), Some(4));
        drop(push);
        assert_eq!(served(&c, "a"), Some(4), "a drop of generation 0");
        c.dropped(1);
        c.verify(Instant::now(), 0);
        assert_eq!(served(&c, "a"), None);
    }

    #[test]
    fn an_offer_refused_for_its_age_takes_out_an_older_revision() {
        let c = cache(MAX_STALE);
        // A read, then a write of this manager that took max_stale to answer.
        c.offer("a", Some(state(5, None)), 5, ago(50));
        c.offer("a", Some(state(6, None)), 6, ago(1_100));
        assert_eq!(served(&c, "a"), None, "the read from before the write");
        // A heartbeat cannot bring back a read sent max_stale ago.
        c.verify(Instant::now(), 0);
        c.offer("b", Some(state(4, None)), 4, ago(1_000));
        assert!(c.get("b").is_none());
        // An older answer refused for its age leaves a newer entry.
        c.offer("c", Some(state(7, None)), 7, ago(10));
        c.offer("c", Some(state(2, None)), 2, ago(2_000));
        assert_eq!(served(&c, "c"), Some(7));
    }

    #[test]
    fn heartbeats_keep_an_entry_for_extend_times_max_stale_at_most() {
        let max_stale = Duration::from_millis(100);
        let c = cache(max_stale);
        c.offer("a", Some(state(3, None)), 3, Instant::now());
        std::thread::sleep(Duration::from_millis(300));
        c.verify(Instant::now(), 0);
        assert_eq!(served(&c, "a"), Some(3));
        std::thread::sleep(
            max_stale * EXTEND - Duration::from_millis(300) + Duration::from_millis(50),
        );
        c.verify(Instant::now(), 0);
        assert_eq!(
            served(&c, "a"),
            None,
            "served {EXTEND} × max_stale after its read"
        );
    }

    #[test]
    fn no_kept_state_is_served_past_its_expiry_by_the_servers_clock() {
        let c = cache(MAX_STALE);
        let server_now_ms = 1_800_000_000_000_u64;
        c.offer("a", Some(state(3, Some(server_now_ms + 500))), 3, ago(900));
        c.offer("b", Some(state(4, None)), 4, ago(900));
        std::thread::sleep(Duration::from_millis(120));
        // Kept past max_stale by a heartbeat, but Redis's clock is unknown:
        // only the state that cannot expire is served.
        c.verified.store(
            Instant::now().duration_since(c.base).as_nanos() as u64,
            Ordering::Release,
        );
        assert_eq!(served(&c, "a"), None);
        assert_eq!(served(&c, "b"), Some(4));
        // Redis read its clock at least 1 ms after we sent: at most that ahead.
        c.verify(ago(1), (server_now_ms * 1_000) as i64);
        assert_eq!(served(&c, "a"), Some(3));
        c.verify(ago(1), ((server_now_ms + 499) * 1_000) as i64);
        assert_eq!(served(&c, "a"), None, "served at its expiry");
        assert_eq!(served(&c, "b"), Some(4), "a state with no expiry expired");
        // Once the clock is known, not even a fresh read is served past it.
        c.offer(
            "c",
            Some(state(5, Some(server_now_ms + 300))),
            5,
            Instant::now(),
        );
        assert_eq!(served(&c, "c"), None, "a fresh read served past its expiry");
    }

    #[test]
    fn a_full_shard_starts_again_and_refuses_older_reads() {
        let c = cache(Duration::from_secs(100));
        let sent = Instant::now();
        let ids: Vec<String> = (0..SHARDS * SHARD_ENTRIES * 2)
            .map(|n| format!("k{n}"))
            .collect();
        for id in &ids {
            c.offer(id, Some(state(1, None)), 1, sent);
        }
        let kept = c
            .shards
            .iter()
            .map(|s| s.0.read().unwrap().map.len())
            .sum::<usize>();
        assert!(kept < SHARDS * SHARD_ENTRIES, "{kept} entries kept");
        // A read sent before a shard started again is not kept there.
        let emptied = ids.iter().find(|id| c.get(id).is_none()).unwrap();
        c.offer(emptied, Some(state(2, None)), 2, sent);
        assert_eq!(served(&c, emptied), None);
    }
}
