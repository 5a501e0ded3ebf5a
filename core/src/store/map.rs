//! One shard's contexts, keyed by the id their state already holds.

use super::Entry;
use hashbrown::HashTable;
use std::fmt;

/// The entries of one shard, found by their state's id. The id is not
/// stored a second time as a key: a slot holds only the entry, and an
/// insert allocates nothing for the key. An entry's state may be replaced
/// through [`get_mut`](Self::get_mut), by a state with the same id only.
pub(crate) struct Map {
    table: HashTable<Entry>,
    hasher: ahash::RandomState,
}

impl Map {
    pub fn with_hasher(hasher: ahash::RandomState) -> Self {
        Self {
            table: HashTable::new(),
            hasher,
        }
    }

    fn hash(&self, id: &str) -> u64 {
        self.hasher.hash_one(id)
    }

    pub fn get(&self, id: &str) -> Option<&Entry> {
        self.table.find(self.hash(id), |e| e.state.id == id)
    }

    pub fn get_mut(&mut self, id: &str) -> Option<&mut Entry> {
        let hash = self.hash(id);
        self.table.find_mut(hash, |e| e.state.id == id)
    }

    pub fn contains_key(&self, id: &str) -> bool {
        self.get(id).is_some()
    }

    /// Puts `entry` under its state's id; returns the entry it replaces.
    pub fn insert(&mut self, entry: Entry) -> Option<Entry> {
        let hash = self.hash(&entry.state.id);
        let hasher = &self.hasher;
        match self.table.entry(
            hash,
            |e| e.state.id == entry.state.id,
            |e| hasher.hash_one(e.state.id.as_str()),
        ) {
            hashbrown::hash_table::Entry::Occupied(mut slot) => {
                Some(std::mem::replace(slot.get_mut(), entry))
            }
            hashbrown::hash_table::Entry::Vacant(slot) => {
                slot.insert(entry);
                None
            }
        }
    }

    pub fn remove(&mut self, id: &str) -> Option<Entry> {
        let hash = self.hash(id);
        match self.table.find_entry(hash, |e| e.state.id == id) {
            Ok(slot) => Some(slot.remove().0),
            Err(_) => None,
        }
    }

    /// Each entry with its id.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Entry)> {
        self.table.iter().map(|e| (&e.state.id, e))
    }

    pub fn values(&self) -> impl Iterator<Item = &Entry> {
        self.table.iter()
    }
}

impl fmt::Debug for Map {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ContextState;
    use std::collections::VecDeque;
    use std::sync::Arc;

    fn entry(id: &str, version: u64) -> Entry {
        let state = ContextState {
            id: id.into(),
            version,
            revision: version,
            created_at_ms: 0,
            updated_at_ms: 0,
            expires_at_ms: None,
            data: crate::Data::default(),
            metadata: Default::default(),
        };
        Entry::new(Arc::new(state), None, 0, VecDeque::new())
    }

    #[test]
    fn entries_are_found_by_the_id_of_their_state() {
        let mut map = Map::with_hasher(ahash::RandomState::with_seeds(1, 2, 3, 4));
        for i in 0..1_000 {
            assert!(map.insert(entry(&format!("id-{i}"), 1)).is_none());
        }
        let replaced = map.insert(entry("id-7", 2)).map(|e| e.state.version);
        assert_eq!(replaced, Some(1));
        assert_eq!(map.get("id-7").map(|e| e.state.version), Some(2));
        map.get_mut("id-8").unwrap().touched = 99;
        assert_eq!(map.get("id-8").map(|e| e.touched), Some(99));
        assert!(map.contains_key("id-999") && !map.contains_key("id-1000"));
        assert_eq!(
            map.remove("id-5").map(|e| e.state.id.clone()).as_deref(),
            Some("id-5")
        );
        assert!(map.remove("id-5").is_none() && map.get("id-5").is_none());
        assert_eq!(map.values().count(), 999);
        assert!(map.iter().all(|(id, e)| *id == e.state.id));
    }
}
