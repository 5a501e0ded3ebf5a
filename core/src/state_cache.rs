//! [`StateCache`]: values made from states, kept for the next read of the
//! very same state.
//!
//! A state never changes once committed (an update makes a new one), so what
//! a front-end makes of a state it read (its JSON text for an HTTP response,
//! a host-language object) can serve every later read of that state: the
//! cache turns "convert every read" into "convert each state once".
//!
//! An entry is keyed by the address of the `Arc` it was made from and holds a
//! `Weak` to it, which keeps that address from being reused while the entry
//! exists: an entry can only ever match the state it was made for. Entries of
//! states that were replaced or deleted are never matched again and go first.
//! Each entry is charged the bytes its maker says it takes plus a fixed 128
//! (about what an entry itself takes in wasm32: the map and queue slots and
//! the state's allocation its `Weak` keeps; natively that allocation alone
//! is larger, so count it in what you charge); when the total passes the
//! budget, entries go in insertion order, except that one read since the
//! last pass earns an entry one more round (the "clock" policy).
//!
//! `T`'s `clone` (on a hit) and `drop` (on eviction) run under the cache's
//! lock: they must not use the cache.

use crate::ContextState;
use crate::sync::{Mutex, MutexGuard};
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::hash::BuildHasherDefault;
use std::sync::{Arc, Weak};

/// What an entry is charged besides the bytes given to `put`.
const ENTRY_BYTES: usize = 128;

struct Entry<T> {
    /// Keeps the key's address from being reused (never upgraded).
    _state: Weak<ContextState>,
    value: T,
    bytes: usize,
    read: bool,
}

struct Entries<T> {
    map: HashMap<usize, Entry<T>, BuildHasherDefault<ahash::AHasher>>,
    /// Every key of `map` once, oldest first.
    order: VecDeque<usize>,
    bytes: usize,
}

/// A bounded cache of values made from states, by state identity (cheap to
/// clone; clones share it).
///
/// ```
/// # use contextkit_core::*;
/// # futures::executor::block_on(async {
/// let m = ContextManager::new(ManagerConfig::default());
/// let cache = StateCache::new(1 << 20);
/// m.create_context("a", json!({ "n": 1 })).await?;
/// let state = m.get_context("a").await?;
/// assert_eq!(cache.get(&state), None);
/// let text = serde_json::to_string(&*state).unwrap();
/// cache.put(&state, text.clone(), text.len());
/// // The next read of the same state finds it; a new version does not.
/// assert_eq!(cache.get(&m.get_context("a").await?), Some(text));
/// let next = m.update_context("a", json!({ "n": 2 }), None).await?;
/// assert_eq!(cache.get(&next), None);
/// # Ok::<(), ContextError>(())
/// # }).unwrap();
/// ```
pub struct StateCache<T> {
    budget: usize,
    entries: Arc<Mutex<Entries<T>>>,
}

impl<T> fmt::Debug for StateCache<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StateCache")
            .field("budget", &self.budget)
            .field("bytes", &self.bytes())
            .finish_non_exhaustive()
    }
}

impl<T> Clone for StateCache<T> {
    fn clone(&self) -> Self {
        Self {
            budget: self.budget,
            entries: Arc::clone(&self.entries),
        }
    }
}

fn key(state: &Arc<ContextState>) -> usize {
    Arc::as_ptr(state) as usize
}

impl<T> StateCache<T> {
    /// An empty cache holding at most `budget` bytes (0: holds nothing).
    pub fn new(budget: usize) -> Self {
        Self {
            budget,
            entries: Arc::new(Mutex::new(Entries {
                map: HashMap::default(),
                order: VecDeque::new(),
                bytes: 0,
            })),
        }
    }

    /// Whether the cache keeps anything at all.
    pub fn enabled(&self) -> bool {
        self.budget > 0
    }

    /// The bytes charged for the entries kept.
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    fn lock(&self) -> MutexGuard<'_, Entries<T>> {
        // What a panic interrupted is at worst a charge off by one entry.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<T: Clone> StateCache<T> {
    /// The value kept for `state`, if there is one.
    pub fn get(&self, state: &Arc<ContextState>) -> Option<T> {
        let mut entries = self.lock();
        let entry = entries.map.get_mut(&key(state))?;
        entry.read = true;
        Some(entry.value.clone())
    }

    /// Keeps `value`, made from `state` and taking `bytes`, evicting as
    /// needed; a value over the whole budget is not kept.
    pub fn put(&self, state: &Arc<ContextState>, value: T, bytes: usize) {
        let bytes = bytes.saturating_add(ENTRY_BYTES);
        if bytes > self.budget {
            return;
        }
        let mut entries = self.lock();
        let entries = &mut *entries;
        while entries.bytes + bytes > self.budget {
            let Some(old) = entries.order.pop_front() else {
                break;
            };
            match entries.map.get_mut(&old) {
                Some(e) if e.read => {
                    e.read = false;
                    entries.order.push_back(old);
                }
                Some(_) => {
                    if let Some(e) = entries.map.remove(&old) {
                        entries.bytes -= e.bytes;
                    }
                }
                None => {}
            }
        }
        let k = key(state);
        let entry = Entry {
            _state: Arc::downgrade(state),
            value,
            bytes,
            read: false,
        };
        match entries.map.insert(k, entry) {
            Some(old) => entries.bytes -= old.bytes,
            None => entries.order.push_back(k),
        }
        entries.bytes += bytes;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ContextManager, ManagerConfig, json};
    use futures::executor::block_on;

    fn states(n: usize) -> Vec<Arc<ContextState>> {
        block_on(async {
            let m = ContextManager::new(ManagerConfig::default());
            let mut out = Vec::new();
            for i in 0..n {
                out.push(m.create_context(&i.to_string(), json!({})).await.unwrap());
            }
            out
        })
    }

    const E: usize = ENTRY_BYTES;

    #[test]
    fn a_value_is_found_only_for_the_state_it_was_made_from() {
        let s = states(2);
        let cache = StateCache::new(1000);
        cache.put(&s[0], 7_u32, 10);
        assert_eq!(cache.get(&s[0]), Some(7));
        assert_eq!(cache.get(&s[1]), None);
        assert_eq!(cache.bytes(), 10 + E);
    }

    #[test]
    fn a_zero_budget_keeps_nothing_and_an_entry_over_the_budget_is_not_kept() {
        let s = states(1);
        let none = StateCache::new(0);
        assert!(!none.enabled());
        none.put(&s[0], 1_u32, 0);
        assert_eq!(none.get(&s[0]), None);
        let small = StateCache::new(E + 5);
        small.put(&s[0], 1_u32, 6);
        assert_eq!(small.get(&s[0]), None);
        assert_eq!(small.bytes(), 0);
    }

    #[test]
    fn the_budget_evicts_oldest_first_but_a_read_entry_gets_one_more_round() {
        let s = states(4);
        // Room for three entries of 0 bytes.
        let cache = StateCache::new(3 * E);
        for (i, state) in s[..3].iter().enumerate() {
            cache.put(state, i as u32, 0);
        }
        // Reading 0 saves it once: 1, the oldest unread, goes for 3.
        assert_eq!(cache.get(&s[0]), Some(0));
        cache.put(&s[3], 3, 0);
        assert_eq!(cache.get(&s[1]), None);
        assert_eq!(
            [0, 2, 3].map(|i| cache.get(&s[i])),
            [Some(0), Some(2), Some(3)]
        );
        assert_eq!(cache.bytes(), 3 * E);
    }

    #[test]
    fn putting_a_state_again_replaces_its_value_and_its_charge() {
        let s = states(1);
        let cache = StateCache::new(1000);
        cache.put(&s[0], 1_u32, 100);
        cache.put(&s[0], 2_u32, 50);
        assert_eq!(cache.get(&s[0]), Some(2));
        assert_eq!(cache.bytes(), 50 + E);
    }

    #[test]
    fn clones_share_the_entries() {
        let s = states(1);
        let a = StateCache::new(1000);
        let b = a.clone();
        a.put(&s[0], 5_u32, 0);
        assert_eq!(b.get(&s[0]), Some(5));
    }
}
