//! The opt-in read cache of a [`RedisBackend`](super::RedisBackend): states
//! read within the last `max_stale` are served from memory.
//!
//! Staleness is bounded by construction: an entry records when the read that
//! filled it was *sent*, and the state it got was current at some moment
//! after that, so serving it for less than `max_stale` from then serves a
//! state at most `max_stale` old, whatever the invalidations do. Redis's
//! client tracking (RESP3 pushes on the reading connection) invalidates an
//! entry as soon as its key changes, so in practice reads are fresher; when
//! that connection drops, every entry is invalidated (it may have missed
//! pushes) and reads go to Redis until it is back.
//!
//! A manager sees its own writes: a write puts its result in the cache, and
//! an entry is only ever replaced by one of a newer revision, or by a read
//! sent later of the same revision. An invalidated entry keeps its revision
//! and time as a floor, so a read that was already under way when the
//! manager wrote cannot bring back what the write replaced.

use contextkit_core::ContextState;
use redis::aio::MultiplexedConnection;
use redis::{PushInfo, PushKind, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedReceiver;

#[derive(Debug)]
struct Slot {
    state: Option<Arc<ContextState>>,
    /// The revision the entry stands for (0: a miss with no known revision).
    revision: u64,
    /// When the read or write that filled it was sent (for an invalidated
    /// entry: when it was invalidated).
    since: Instant,
    valid: bool,
}

#[derive(Debug, Default)]
struct Slots {
    map: HashMap<String, Slot>,
    /// Entries added since the last purge of those too old to serve.
    added: usize,
}

#[derive(Debug)]
pub(crate) struct Cache {
    max_stale: Duration,
    /// `ck:{namespace}:c:`: an invalidated key names an id after it.
    key_prefix: String,
    slots: Mutex<Slots>,
    /// The tracking connection, once made; `None` after it dropped.
    conn: Mutex<Option<MultiplexedConnection>>,
}

impl Cache {
    pub(crate) fn new(max_stale: Duration, key_prefix: String) -> Self {
        Self {
            max_stale,
            key_prefix,
            slots: Mutex::default(),
            conn: Mutex::new(None),
        }
    }

    fn slots(&self) -> MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The cached state of `id` if one may be served now (`Some(None)`: a
    /// cached miss).
    pub(crate) fn get(&self, id: &str) -> Option<Option<Arc<ContextState>>> {
        let slots = self.slots();
        let slot = slots.map.get(id)?;
        (slot.valid && slot.since.elapsed() < self.max_stale).then(|| slot.state.clone())
    }

    /// Offers what a read or write sent at `since` found for `id`.
    pub(crate) fn offer(
        &self,
        id: &str,
        state: Option<Arc<ContextState>>,
        revision: u64,
        since: Instant,
    ) {
        let mut slots = self.slots();
        if let Some(old) = slots.map.get(id)
            && (revision < old.revision || (revision == old.revision && since < old.since))
        {
            return;
        }
        let slot = Slot {
            state,
            revision,
            since,
            valid: true,
        };
        slots.map.insert(id.to_owned(), slot);
        slots.added += 1;
        if slots.added > 1_024 && slots.added > slots.map.len() / 2 {
            // Entries too old to serve go: a read still under way that
            // started before them is too old to be served as well.
            let max_stale = self.max_stale;
            slots.map.retain(|_, s| s.since.elapsed() < max_stale);
            slots.added = 0;
        }
    }

    /// An invalidated entry keeps its revision and takes the time of the
    /// invalidation: a read sent before it (which may have found the value
    /// the change replaced) cannot make it valid again; one that found a
    /// newer revision can.
    fn invalidate(&self, keys: &[Value]) {
        let now = Instant::now();
        let mut slots = self.slots();
        for key in keys {
            let Some(id) = super::record::bytes(key)
                .and_then(|k| std::str::from_utf8(k).ok())
                .and_then(|k| k.strip_prefix(&self.key_prefix))
            else {
                continue;
            };
            if let Some(slot) = slots.map.get_mut(id) {
                slot.valid = false;
                slot.since = now;
            }
        }
    }

    fn invalidate_all(&self) {
        let now = Instant::now();
        for slot in self.slots().map.values_mut() {
            slot.valid = false;
            slot.since = now;
        }
    }

    /// The tracking connection, made (with `CLIENT TRACKING ON`) if there is none.
    pub(crate) async fn connection(
        self: &Arc<Self>,
        client: &redis::Client,
        timeout: Duration,
    ) -> Option<MultiplexedConnection> {
        if let Some(c) = self.tracking().as_ref() {
            return Some(c.clone());
        }
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_push_sender(tx);
        let mut c = resp3(client)?
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .ok()?;
        let mut on = redis::cmd("CLIENT");
        on.arg("TRACKING").arg("ON");
        on.query_async::<()>(&mut c).await.ok()?;
        // Entries filled before this connection tracked anything may have
        // missed their invalidations.
        self.invalidate_all();
        tokio::spawn(listen(Arc::downgrade(self), rx));
        // Two reads may have connected at once: the first one kept wins.
        Some(self.tracking().get_or_insert(c).clone())
    }

    fn tracking(&self) -> MutexGuard<'_, Option<MultiplexedConnection>> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets the tracking connection (it dropped, or a read on it failed):
    /// it may have missed invalidations.
    pub(crate) fn dropped(&self) {
        *self.tracking() = None;
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
                // A flush of everything the connection tracked.
                _ => cache.invalidate_all(),
            },
            PushKind::Disconnection => {
                cache.dropped();
                return;
            }
            _ => {}
        }
    }
}
