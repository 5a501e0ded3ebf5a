//! Reads served from memory, at most [`ClientConfig::max_stale_ms`] old
//! (see there for what a client promises with it).
//!
//! An entry is the state a read of the store found and when that read was
//! sent (a read that found no context keeps nothing): what it found was current at some moment after that,
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
use crate::store::{Entry, Map};
use crate::sync::Mutex;
use std::sync::Arc;

/// Entries kept at most; past it the cache starts again.
const MAX_ENTRIES: usize = 10_000;

struct Entries {
    /// The states reads found, each entry's `touched` being when its read
    /// was sent (ms). A read that found no context keeps nothing.
    map: Map,
    len: usize,
    /// Counts what emptied entries: a read that saw one meanwhile is not kept.
    generation: u64,
}

/// The reads of one client.
pub(super) struct Recent {
    max_stale_ms: u64,
    hasher: ahash::RandomState,
    entries: Mutex<Entries>,
}

impl Recent {
    /// Reads kept up to `max_stale_ms` (more than 0); ids hashed with `seeds`.
    pub(super) fn new(max_stale_ms: u64, seeds: [u64; 4]) -> Self {
        let [a, b, c, d] = seeds;
        let hasher = ahash::RandomState::with_seeds(a, b, c, d);
        let entries = Entries {
            map: Map::with_hasher(hasher.clone()),
            len: 0,
            generation: 0,
        };
        Self {
            max_stale_ms,
            hasher,
            entries: Mutex::new(entries),
        }
    }

    fn entries(&self) -> crate::sync::MutexGuard<'_, Entries> {
        // An entry is whole or absent; a panic elsewhere leaves none half-made.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The state a read of `id` sent before `now` found, if it may be
    /// served at `now` (and has not expired since).
    pub(super) fn get(&self, id: &str, now: u64) -> Option<Arc<ContextState>> {
        let entries = self.entries();
        let entry = entries.map.get(id)?;
        let fresh = now >= entry.touched && now - entry.touched < self.max_stale_ms;
        (fresh && !entry.state.is_expired_at(now)).then(|| Arc::clone(&entry.state))
    }

    /// What [`keep`](Self::keep) needs from before a read: the generation.
    pub(super) fn generation(&self) -> u64 {
        self.entries().generation
    }

    /// Keeps what a read of `id`, sent at `sent`, found, unless something
    /// was emptied since `generation`.
    pub(super) fn keep(
        &self,
        id: &str,
        found: Option<&Arc<ContextState>>,
        sent: u64,
        generation: u64,
    ) {
        let mut entries = self.entries();
        if entries.generation != generation {
            return;
        }
        let Some(state) = found else {
            if entries.map.remove(id).is_some() {
                entries.len -= 1;
            }
            return;
        };
        if entries.len >= MAX_ENTRIES {
            self.clear(&mut entries);
        }
        let entry = Entry::new(Arc::clone(state), None, sent, Default::default());
        if entries.map.insert(entry).is_none() {
            entries.len += 1;
        }
    }

    fn clear(&self, entries: &mut Entries) {
        entries.map = Map::with_hasher(self.hasher.clone());
        entries.len = 0;
    }

    /// Empties every entry.
    pub(super) fn forget_all(&self) {
        let mut entries = self.entries();
        entries.generation += 1;
        self.clear(&mut entries);
    }

    /// Empties the entries of `ids`.
    pub(super) fn forget<'a>(&self, ids: impl IntoIterator<Item = &'a str>) {
        let mut entries = self.entries();
        entries.generation += 1;
        for id in ids {
            if entries.map.remove(id).is_some() {
                entries.len -= 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(id: &str, version: u64) -> Arc<ContextState> {
        Arc::new(ContextState {
            id: id.into(),
            version,
            revision: version,
            created_at_ms: 0,
            updated_at_ms: 0,
            expires_at_ms: None,
            data: serde_json::json!({}).into(),
            metadata: Default::default(),
        })
    }

    #[test]
    fn a_read_that_found_nothing_drops_what_was_kept() {
        let recent = Recent::new(100, [1, 2, 3, 4]);
        recent.keep("a", Some(&state("a", 1)), 0, 0);
        recent.keep("a", None, 0, 0);
        assert_eq!(recent.get("a", 1), None);
    }

    #[test]
    fn a_read_that_saw_something_forgotten_on_its_way_is_not_kept() {
        let recent = Recent::new(100, [1, 2, 3, 4]);
        let before = recent.generation();
        recent.forget(["other"]);
        recent.keep("a", Some(&state("a", 1)), 10, before);
        assert_eq!(recent.get("a", 20), None);
        let before = recent.generation();
        recent.keep("a", Some(&state("a", 2)), 10, before);
        assert_eq!(recent.get("a", 20).map(|s| s.version), Some(2));
        // An entry is served only from its read until max_stale_ms after it.
        assert_eq!(recent.get("a", 9), None);
        assert_eq!(recent.get("a", 110), None);
    }

    #[test]
    fn the_entries_start_again_past_their_limit() {
        let recent = Recent::new(100, [1, 2, 3, 4]);
        for i in 0..MAX_ENTRIES - 1 {
            let id = i.to_string();
            recent.keep(&id, Some(&state(&id, 1)), 0, 0);
        }
        // Keeping one again, or reading none, changes the count as it should.
        recent.keep("0", Some(&state("0", 2)), 0, 0);
        recent.keep("1", None, 0, 0);
        recent.keep("1", Some(&state("1", 2)), 0, 0);
        recent.keep("x", Some(&state("x", 1)), 0, 0);
        assert_eq!(recent.get("0", 1).map(|s| s.version), Some(2));
        // The limit is reached: the next one starts again.
        recent.keep("new", Some(&state("new", 1)), 0, 0);
        assert_eq!(recent.get("0", 1), None);
        assert!(recent.get("new", 1).is_some());
    }
}
