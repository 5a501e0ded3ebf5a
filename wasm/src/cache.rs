//! States already read, kept as JavaScript objects for the next read.
//!
//! A state never changes once committed (an update makes a new one), so the
//! JavaScript object of a state read once can serve every later read of that
//! very state: a get that finds it here costs a copy made in JavaScript
//! (support.js `copyState`; strings are immutable and shared, objects and
//! arrays are new) instead of serializing the data in wasm, moving the text
//! across and parsing it. The objects kept here are never handed out: every
//! read, the first one included, returns a copy of its own, so a caller
//! changing a returned state changes nothing another caller sees.
//!
//! An entry is keyed by the address of the state it was made from and holds a
//! `Weak` to it, which keeps that address from being reused while the entry
//! exists: an entry can only ever match the state it was made for. Entries of
//! states that were replaced or deleted are never matched again and go first.
//! Each entry is charged the length of its data's JSON text plus
//! [`ENTRY_BYTES`]; when the total passes the manager's budget
//! (`readCacheBytes`, [`DEFAULT_BUDGET`] unless configured, 0 for none),
//! entries go in insertion order, except that one read since the last pass
//! earns an entry one more round (the "clock" policy).

use contextkit_core::ContextState;
use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::sync::{Arc, Weak};
use wasm_bindgen::prelude::*;

/// Default budget of a manager's cache: 16 MiB.
pub(crate) const DEFAULT_BUDGET: usize = 16 << 20;

/// What an entry costs besides its data's JSON text (the JavaScript object's
/// own fields, the `Weak`'s allocation, the map slot).
pub(crate) const ENTRY_BYTES: usize = 128;

struct Entry {
    /// Keeps the key's address from being reused (never upgraded).
    _state: Weak<ContextState>,
    object: JsValue,
    bytes: usize,
    read: bool,
}

#[derive(Default)]
struct Entries {
    /// Keyed by address: ahash (already in the module for the core's maps)
    /// rather than the standard library's SipHash.
    map: HashMap<usize, Entry, std::hash::BuildHasherDefault<ahash::AHasher>>,
    /// Every key of `map` once, oldest first.
    order: VecDeque<usize>,
    bytes: usize,
}

/// One manager's cache of read states (cheap to clone; clones share it).
#[derive(Clone)]
pub(crate) struct ReadCache {
    budget: usize,
    entries: Rc<RefCell<Entries>>,
}

fn key(state: &Arc<ContextState>) -> usize {
    Arc::as_ptr(state) as usize
}

impl ReadCache {
    /// An empty cache holding at most `budget` bytes (0: holds nothing).
    pub(crate) fn new(budget: usize) -> Self {
        Self {
            budget,
            entries: Rc::default(),
        }
    }

    /// The kept object of `state`, if there is one.
    pub(crate) fn get(&self, state: &Arc<ContextState>) -> Option<JsValue> {
        let mut entries = self.entries.try_borrow_mut().ok()?;
        let entry = entries.map.get_mut(&key(state))?;
        entry.read = true;
        Some(entry.object.clone())
    }

    /// Keeps `object`, made from `state` whose data's JSON text takes `len`
    /// bytes, evicting as needed. No JavaScript runs while the entries are
    /// borrowed (dropping an object only frees its slot in wasm-bindgen's table).
    pub(crate) fn put(&self, state: &Arc<ContextState>, object: JsValue, len: usize) {
        let bytes = len.saturating_add(ENTRY_BYTES);
        if bytes > self.budget {
            return;
        }
        let Ok(mut entries) = self.entries.try_borrow_mut() else {
            return;
        };
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
            object,
            bytes,
            read: false,
        };
        match entries.map.insert(k, entry) {
            Some(old) => entries.bytes -= old.bytes,
            None => entries.order.push_back(k),
        }
        entries.bytes += bytes;
    }

    /// Whether the cache keeps anything at all.
    pub(crate) fn enabled(&self) -> bool {
        self.budget > 0
    }
}
