//! Reads served from memory, at most [`ClientConfig::max_stale_ms`] old
//! (see there for what a client promises with it).
//!
//! An entry is what a read of the store found (a state, or none) and when
//! that read was sent: what it found was current at some moment after that,
//! so serving it until `sent + max_stale_ms` serves a state at most
//! `max_stale_ms` old. What empties entries before then:
//!
//! - every write of this client, once it has run (so a manager sees its own
//!   writes);
//! - the event reader, for each context it reads a change of, and for all
//!   of them when it finds revisions it cannot account for (a trimmed gap);
//!
//! and a read is kept only if nothing was emptied while it was on its way
//! (it may have found what a write or an event just replaced).
//!
//! [`ClientConfig::max_stale_ms`]: super::ClientConfig::max_stale_ms

use crate::ContextState;
use crate::sync::Mutex;
use std::collections::HashMap;
use std::sync::Arc;

/// Entries kept at most; past it the cache starts again.
const MAX_ENTRIES: usize = 10_000;

/// What a read found: the state, or `None` when the context is not there.
pub(super) type Found = Option<Arc<ContextState>>;

struct Entries {
    /// id -> what a read found, and when it was sent (ms).
    map: HashMap<String, (Found, u64), ahash::RandomState>,
    /// Counts what emptied entries: a read that saw one meanwhile is not kept.
    generation: u64,
}

/// The reads of one client.
pub(super) struct Recent {
    max_stale_ms: u64,
    entries: Mutex<Entries>,
}

impl Recent {
    /// Reads kept up to `max_stale_ms` (more than 0); ids hashed with `seeds`.
    pub(super) fn new(max_stale_ms: u64, seeds: [u64; 4]) -> Self {
        let [a, b, c, d] = seeds;
        let map = HashMap::with_hasher(ahash::RandomState::with_seeds(a, b, c, d));
        Self {
            max_stale_ms,
            entries: Mutex::new(Entries { map, generation: 0 }),
        }
    }

    fn entries(&self) -> crate::sync::MutexGuard<'_, Entries> {
        // An entry is whole or absent; a panic elsewhere leaves none half-made.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// What a read of `id` sent before `now` found, if it may be served at
    /// `now`: `Some(None)` when the context was not there, or has expired
    /// since.
    pub(super) fn get(&self, id: &str, now: u64) -> Option<Found> {
        let entries = self.entries();
        let (found, sent) = entries.map.get(id)?;
        if now.saturating_sub(*sent) >= self.max_stale_ms || now < *sent {
            return None;
        }
        Some(found.clone().filter(|s| !s.is_expired_at(now)))
    }

    /// What [`keep`](Self::keep) needs from before a read: the generation.
    pub(super) fn generation(&self) -> u64 {
        self.entries().generation
    }

    /// Keeps what a read of `id`, sent at `sent`, found, unless something
    /// was emptied since `generation`.
    pub(super) fn keep(&self, id: &str, found: &Found, sent: u64, generation: u64) {
        let mut entries = self.entries();
        if entries.generation != generation {
            return;
        }
        if entries.map.len() >= MAX_ENTRIES {
            entries.map.clear();
        }
        entries.map.insert(id.to_owned(), (found.clone(), sent));
    }

    /// Empties every entry.
    pub(super) fn forget_all(&self) {
        let mut entries = self.entries();
        entries.generation += 1;
        entries.map.clear();
    }

    /// Empties the entries of `ids`.
    pub(super) fn forget<'a>(&self, ids: impl IntoIterator<Item = &'a str>) {
        let mut entries = self.entries();
        entries.generation += 1;
        for id in ids {
            entries.map.remove(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(version: u64) -> Found {
        Some(Arc::new(ContextState {
            id: "a".into(),
            version,
            revision: version,
            created_at_ms: 0,
            updated_at_ms: 0,
            expires_at_ms: None,
            data: serde_json::json!({}).into(),
            metadata: Default::default(),
        }))
    }

    #[test]
    fn a_read_that_saw_something_forgotten_on_its_way_is_not_kept() {
        let recent = Recent::new(100, [1, 2, 3, 4]);
        let before = recent.generation();
        recent.forget(["other"]);
        recent.keep("a", &state(1), 10, before);
        assert_eq!(recent.get("a", 20), None);
        let before = recent.generation();
        recent.keep("a", &state(2), 10, before);
        assert_eq!(recent.get("a", 20).flatten().map(|s| s.version), Some(2));
        // An entry is served only from its read until max_stale_ms after it.
        assert_eq!(recent.get("a", 9), None);
        assert_eq!(recent.get("a", 110), None);
    }

    #[test]
    fn the_entries_start_again_past_their_limit() {
        let recent = Recent::new(100, [1, 2, 3, 4]);
        for i in 0..MAX_ENTRIES {
            recent.keep(&i.to_string(), &None, 0, 0);
        }
        assert_eq!(recent.get("0", 1), Some(None));
        recent.keep("new", &None, 0, 0);
        assert_eq!(recent.get("0", 1), None);
        assert_eq!(recent.get("new", 1), Some(None));
    }
}
