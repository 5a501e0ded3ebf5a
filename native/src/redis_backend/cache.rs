//! The opt-in read cache of a [`RedisBackend`](super::RedisBackend): states
//! read within the last `max_stale` are served from memory.
//!
//! Staleness is bounded by construction: an entry records when the read that
//! filled it was *sent*, and the state it got was current at some moment
//! after that, so serving it for less than `max_stale` from then serves a
//! state at most `max_stale` old, whatever happens to invalidations. Redis's
//! client tracking, in broadcast mode for the namespace's context keys,
//! pushes an invalidation for every change on a connection of its own, and
//! an entry is dropped as soon as one arrives, so in practice reads are much
//! fresher. When that connection drops, every entry is invalidated (it may
//! have missed pushes) until a new one tracks again.
//!
//! A manager sees its own writes, and no read answers older than one sent
//! after an invalidation: an entry is only replaced by one of a newer
//! revision, or by a read sent later of the same revision, and never by a
//! read sent before the last invalidation of its id (or of everything), so
//! a read that was already under way when a write committed cannot bring back
//! what the write replaced.

use contextkit_core::ContextState;
use redis::aio::MultiplexedConnection;
use redis::{PushInfo, PushKind, Value};
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedReceiver;

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

#[derive(Debug, Default)]
struct Slots {
    map: HashMap<String, Slot>,
    /// Entries added since the last purge of those too old to matter.
    added: usize,
}

#[derive(Debug)]
struct Tracking {
    conn: Option<MultiplexedConnection>,
    last_try: Option<Instant>,
    /// When everything was last invalidated (tracking began or ended).
    flushed: Instant,
}

#[derive(Debug)]
pub(crate) struct Cache {
    max_stale: Duration,
    /// `ck:{namespace}:c:`: the tracked prefix; an invalidated key names an id after it.
    key_prefix: String,
    shards: Box<[RwLock<Slots>]>,
    hasher: RandomState,
    tracking: Mutex<Tracking>,
    /// Whether entries are only kept while a tracking connection is up (set
    /// by the first [`track`](Self::track); never set where Redis cannot push
    /// invalidations for the backend: then `max_stale` alone bounds
    /// staleness).
    tracked: AtomicBool,
}

impl Cache {
    pub(crate) fn new(max_stale: Duration, key_prefix: String) -> Self {
        Self {
            tracked: AtomicBool::new(false),
            max_stale,
            key_prefix,
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
            hasher: RandomState::new(),
            tracking: Mutex::new(Tracking {
                conn: None,
                last_try: None,
                flushed: Instant::now(),
            }),
        }
    }

    fn shard(&self, id: &str) -> &RwLock<Slots> {
        &self.shards[self.hasher.hash_one(id) as usize % SHARDS]
    }

    fn tracking(&self) -> MutexGuard<'_, Tracking> {
        self.tracking.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The cached state of `id` if one may be served now (`Some(None)`: a
    /// cached miss).
    pub(crate) fn get(&self, id: &str) -> Option<Option<Arc<ContextState>>> {
        let slots = self.shard(id).read().unwrap_or_else(|e| e.into_inner());
        let slot = slots.map.get(id)?;
        (slot.valid() && slot.since.elapsed() < self.max_stale).then(|| slot.state.clone())
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
            // old to be served anyway.
            let max_stale = self.max_stale;
            slots.map.retain(|_, s| {
                s.since.elapsed() < max_stale
                    || s.invalidated.is_some_and(|at| at.elapsed() < max_stale)
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
            let mut slots = shard.write().unwrap_or_else(|e| e.into_inner());
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
        self.tracking().conn = Some(conn);
    }

    async fn connect(
        self: &Arc<Self>,
        client: &redis::Client,
        timeout: Duration,
    ) -> Option<MultiplexedConnection> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_push_sender(tx);
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
        tokio::spawn(listen(Arc::downgrade(self), rx));
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

/// Applies the pushes of the tracking connection until it drops or the
/// cache is gone.
async fn listen(cache: std::sync::Weak<Cache>, mut rx: UnboundedReceiver<PushInfo>) {
    while let Some(push) = rx.recv().await {
        let Some(cache) = cache.upgrade() else {
            return;
        };
        match push.kind {
            PushKind::Invalidate => match push.data.first() {
                Some(Value::Array(keys)) => cache.invalidate(keys),
                // A flush of everything tracked.
                _ => cache.invalidate_all(),
            },
            PushKind::Disconnection => {
                cache.dropped();
                return;
            }
            _ => {}
        }
    }
    // The sender is gone with its connection.
    if let Some(cache) = cache.upgrade() {
        cache.dropped();
    }
}
