//! Reads served from memory, at most [`ClientConfig::max_stale_ms`] old
//! (see there for what a client promises with it).
//!
//! An entry is the state a read of the store found and when that read was
//! sent (a read that found no context keeps nothing): what it found was
//! current at some moment after that, so serving it until `sent +
//! max_stale_ms` serves a state at most `max_stale_ms` old. What empties
//! entries before then:
//!
//! - each write of this client, when it ends however it ends, for its
//!   context (so a manager sees its own writes), and for all of them a
//!   sweep or an eviction;
//! - the event reader, for each context it reads a change of (unless what
//!   is kept holds that change already), and for all of them when it finds
//!   revisions it cannot account for (a trimmed gap);
//!
//! and a read is kept only if its context (or everything) was not emptied
//! while it was on its way (it may have found what a write or an event just
//! replaced), bar one event of its share whose change the state it found
//! holds, and never over a newer state of its context, or a later read of
//! the same state. The records' text
//! kept since the cache last started again is bounded: past the budget (or
//! [`MAX_ENTRIES`]), it starts again.
//!
//! [`ClientConfig::max_stale_ms`]: super::ClientConfig::max_stale_ms

use crate::ContextState;
use crate::store::{Entry, Map};
use crate::sync::Mutex;
use std::sync::Arc;

/// Entries kept at most since the cache last started again; past it, it
/// starts again.
const MAX_ENTRIES: usize = 10_000;

/// What an entry is charged besides its record's text.
const ENTRY_BYTES: usize = 128;

/// Ids share this many counts of what emptied them (by their hash): a read
/// is refused only for a forget of its own id, or of one that shares its
/// count, or of everything.
const COUNTS: usize = 64;

struct Entries {
    /// The states reads found, each entry's `touched` being when its read
    /// was sent (ms). A read that found no context keeps nothing.
    map: Map,
    /// Entries kept, and their bytes, since the cache last started again
    /// (what was emptied in between still counts: a bound, not a size).
    added: usize,
    bytes: usize,
    /// Counts of what emptied entries: everything, and the ids of each
    /// share, with the revision of the share's last change (`u64::MAX`
    /// when not known). A read that saw one of its own meanwhile is not
    /// kept, unless that was one change its state is as new as.
    all: u64,
    counts: [u64; COUNTS],
    last: [u64; COUNTS],
}

/// Where the counts of [`Recent`] stood when a read was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Generation {
    all: u64,
    share: u64,
}

/// The reads of one client.
pub(super) struct Recent {
    max_stale_ms: u64,
    max_bytes: usize,
    hasher: ahash::RandomState,
    entries: Mutex<Entries>,
}

impl Recent {
    /// Reads kept up to `max_stale_ms` (more than 0), their records' text
    /// up to about `max_bytes`; ids hashed with `seeds`.
    pub(super) fn new(max_stale_ms: u64, max_bytes: usize, seeds: [u64; 4]) -> Self {
        let [a, b, c, d] = seeds;
        let hasher = ahash::RandomState::with_seeds(a, b, c, d);
        let entries = Entries {
            map: Map::with_hasher(hasher.clone()),
            added: 0,
            bytes: 0,
            all: 0,
            counts: [0; COUNTS],
            last: [0; COUNTS],
        };
        Self {
            max_stale_ms,
            max_bytes,
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
    /// served at `now` (and has not expired since). One that may not is
    /// dropped: also one read "after" `now`, whose clock went back since.
    pub(super) fn get(&self, id: &str, now: u64) -> Option<Arc<ContextState>> {
        let mut entries = self.entries();
        let entry = entries.map.get(id)?;
        let fresh = now >= entry.touched && now - entry.touched < self.max_stale_ms;
        if fresh && !entry.state.is_expired_at(now) {
            return Some(Arc::clone(&entry.state));
        }
        entries.map.remove(id);
        None
    }

    fn share(&self, id: &str) -> usize {
        (self.hasher.hash_one(id) % COUNTS as u64) as usize
    }

    /// What [`keep`](Self::keep) needs from before a read of `id`: a count
    /// that grows with every forget of `id` (or of everything).
    pub(super) fn generation(&self, id: &str) -> Generation {
        let share = self.share(id);
        let entries = self.entries();
        Generation {
            all: entries.all,
            share: entries.counts[share],
        }
    }

    /// Keeps what a read of `id`, sent at `sent`, found (its record
    /// `bytes` long), unless something was emptied since `generation`, or
    /// a later read or a newer state is kept already.
    pub(super) fn keep(
        &self,
        id: &str,
        found: Option<&Arc<ContextState>>,
        bytes: usize,
        sent: u64,
        generation: Generation,
    ) {
        let share = self.share(id);
        let mut entries = self.entries();
        let changes = entries.counts[share] - generation.share;
        // One change on its way (the reader's event of the commit a read
        // found, typically) that the state found is as new as is no reason
        // to drop it; more, or a change of unknown revision, are.
        let newer = |last| found.is_none_or(|s| s.revision < last);
        if entries.all != generation.all
            || changes > 1
            || (changes == 1 && newer(entries.last[share]))
        {
            return;
        }
        let charged = bytes.saturating_add(ENTRY_BYTES);
        let Some(state) = found.filter(|_| charged <= self.max_bytes) else {
            entries.map.remove(id);
            return;
        };
        // The newer state wins; of one state, the later read.
        if let Some(kept) = entries.map.get(id)
            && (kept.state.revision > state.revision
                || (kept.state.revision == state.revision && kept.touched >= sent))
        {
            return;
        }
        if entries.added >= MAX_ENTRIES || entries.bytes.saturating_add(charged) > self.max_bytes {
            self.clear(&mut entries);
        }
        entries.added += 1;
        entries.bytes += charged;
        let entry = Entry::new(Arc::clone(state), None, sent, Default::default());
        entries.map.insert(entry);
    }

    fn clear(&self, entries: &mut Entries) {
        entries.map = Map::with_hasher(self.hasher.clone());
        entries.added = 0;
        entries.bytes = 0;
    }

    /// Empties every entry.
    pub(super) fn forget_all(&self) {
        let mut entries = self.entries();
        entries.all += 1;
        self.clear(&mut entries);
    }

    /// Empties the entries of `ids`.
    pub(super) fn forget<'a>(&self, ids: impl IntoIterator<Item = &'a str>) {
        self.forget_older(ids.into_iter().map(|id| (id, u64::MAX)));
    }

    /// Empties the entry of each id changed at a revision, unless it holds
    /// that revision's state or a newer one (the reader's events: a read
    /// kept after the commit it reports is as new as that already). A read
    /// of the share on its way is kept only if this was the one change it
    /// crossed and the state it found is as new (see [`keep`](Self::keep)).
    pub(super) fn forget_older<'a>(&self, changes: impl IntoIterator<Item = (&'a str, u64)>) {
        let mut entries = self.entries();
        for (id, revision) in changes {
            let share = self.share(id);
            entries.counts[share] += 1;
            entries.last[share] = revision;
            if entries
                .map
                .get(id)
                .is_some_and(|kept| kept.state.revision < revision)
            {
                entries.map.remove(id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(id: &str, revision: u64) -> Arc<ContextState> {
        Arc::new(ContextState {
            id: id.into(),
            version: revision,
            revision,
            created_at_ms: 0,
            updated_at_ms: 0,
            expires_at_ms: None,
            data: serde_json::json!({}).into(),
            metadata: Default::default(),
        })
    }

    /// Where the counts stand before any forget.
    const START: Generation = Generation { all: 0, share: 0 };

    fn recent() -> Recent {
        Recent::new(100, 1 << 30, [1, 2, 3, 4])
    }

    fn revision(recent: &Recent, id: &str, now: u64) -> Option<u64> {
        recent.get(id, now).map(|s| s.revision)
    }

    #[test]
    fn a_read_that_found_nothing_drops_what_was_kept() {
        let recent = recent();
        let start = recent.generation("a");
        recent.keep("a", Some(&state("a", 1)), 0, 0, start);
        recent.keep("a", None, 0, 0, start);
        assert_eq!(recent.get("a", 1), None);
    }

    /// An event of a commit the kept state already holds (the reader
    /// reading the manager's own create after a get kept it) leaves it; a
    /// later one takes it out; either way a read on its way is not kept.
    #[test]
    fn an_event_no_newer_than_the_kept_state_leaves_it() {
        let recent = recent();
        recent.keep("a", Some(&state("a", 5)), 0, 0, recent.generation("a"));
        recent.forget_older([("a", 4), ("a", 5)]);
        assert_eq!(revision(&recent, "a", 1), Some(5));
        recent.forget_older([("b", 9), ("a", 6)]);
        assert_eq!(recent.get("a", 2), None);
    }

    /// A read on its way when the event of the very commit it found comes
    /// is kept; one that an event of a newer commit, two events, an
    /// unknown change (a write of this manager) or a forget of everything
    /// came across is not.
    #[test]
    fn a_read_is_kept_across_one_event_it_is_as_new_as() {
        let recent = recent();
        let kept = |changes: &dyn Fn(&Recent), found: u64| {
            let before = recent.generation("a");
            changes(&recent);
            recent.keep("a", Some(&state("a", found)), 0, 1, before);
            let got = revision(&recent, "a", 2);
            recent.forget(["a"]);
            got
        };
        assert_eq!(kept(&|r| r.forget_older([("a", 7)]), 7), Some(7));
        assert_eq!(kept(&|r| r.forget_older([("a", 7)]), 8), Some(8));
        assert_eq!(kept(&|r| r.forget_older([("a", 8)]), 7), None);
        assert_eq!(kept(&|r| r.forget_older([("a", 6), ("a", 7)]), 7), None);
        assert_eq!(kept(&|r| r.forget(["a"]), 7), None);
        assert_eq!(kept(&|r| r.forget_all(), 7), None);
        assert_eq!(kept(&|_| {}, 7), Some(7));
    }

    #[test]
    fn a_read_that_saw_something_forgotten_on_its_way_is_not_kept() {
        let recent = recent();
        let before = recent.generation("a");
        recent.forget(["a"]);
        recent.keep("a", Some(&state("a", 1)), 0, 10, before);
        assert_eq!(recent.get("a", 20), None);
        let before = recent.generation("a");
        recent.forget_all();
        recent.keep("a", Some(&state("a", 1)), 0, 10, before);
        assert_eq!(recent.get("a", 20), None);
        let before = recent.generation("a");
        recent.keep("a", Some(&state("a", 2)), 0, 10, before);
        assert_eq!(revision(&recent, "a", 20), Some(2));
        // Served only from its read until max_stale_ms after it.
        assert_eq!(recent.get("a", 110), None);
    }

    #[test]
    fn an_older_read_answered_late_does_not_replace_a_newer_one() {
        let recent = recent();
        recent.keep("a", Some(&state("a", 2)), 0, 20, START);
        // Sent earlier, or of an older state: kept is what is there.
        recent.keep("a", Some(&state("a", 1)), 0, 10, START);
        recent.keep("a", Some(&state("a", 1)), 0, 30, START);
        assert_eq!(revision(&recent, "a", 40), Some(2));
        recent.keep("a", Some(&state("a", 3)), 0, 30, START);
        assert_eq!(revision(&recent, "a", 40), Some(3));
    }

    #[test]
    fn a_newer_state_wins_even_when_read_before_by_the_clock() {
        let recent = recent();
        recent.keep("a", Some(&state("a", 1)), 0, 50, START);
        recent.keep("a", Some(&state("a", 2)), 0, 40, START);
        assert_eq!(revision(&recent, "a", 60), Some(2));
    }

    #[test]
    fn a_forget_of_another_context_keeps_a_read_under_way() {
        let recent = recent();
        let other = (0..100)
            .map(|i| i.to_string())
            .find(|id| recent.share(id) != recent.share("a"))
            .unwrap();
        let before = recent.generation("a");
        recent.forget([other.as_str()]);
        recent.keep("a", Some(&state("a", 1)), 0, 10, before);
        assert_eq!(revision(&recent, "a", 20), Some(1));
    }

    #[test]
    fn a_clock_that_went_back_drops_the_entry() {
        let recent = recent();
        recent.keep("a", Some(&state("a", 1)), 0, 50, START);
        assert_eq!(recent.get("a", 40), None);
        // Not served later either, when the clock has caught up.
        assert_eq!(recent.get("a", 60), None);
    }

    #[test]
    fn the_entries_start_again_past_their_limit() {
        let recent = recent();
        for i in 0..MAX_ENTRIES {
            let id = i.to_string();
            recent.keep(&id, Some(&state(&id, 1)), 0, 0, START);
        }
        assert_eq!(revision(&recent, "0", 1), Some(1));
        recent.keep("new", Some(&state("new", 1)), 0, 0, START);
        assert_eq!(recent.get("0", 1), None);
        assert_eq!(revision(&recent, "new", 1), Some(1));
    }

    #[test]
    fn the_entries_start_again_past_their_bytes() {
        let recent = Recent::new(100, 1_000, [1, 2, 3, 4]);
        recent.keep("a", Some(&state("a", 1)), 400, 0, START);
        recent.keep("b", Some(&state("b", 1)), 300, 0, START);
        assert!(recent.get("a", 1).is_some() && recent.get("b", 1).is_some());
        // 528 + 428 + 228 > 1,000: the cache starts again with "c".
        recent.keep("c", Some(&state("c", 1)), 100, 0, START);
        assert!(recent.get("a", 1).is_none() && recent.get("b", 1).is_none());
        assert!(recent.get("c", 1).is_some());
        // A record larger than the budget is not kept at all, and takes
        // nothing else with it.
        recent.keep("d", Some(&state("d", 1)), 5_000, 0, START);
        assert!(recent.get("d", 1).is_none());
        assert!(recent.get("c", 1).is_some());
    }
}
