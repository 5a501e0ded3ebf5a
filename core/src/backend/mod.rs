//! The seam between a manager and where its contexts live: in memory only
//! (`memory.rs`), written through to a [`Storage`](crate::Storage) the
//! manager owns (`owned.rs`), or in a shared backend (`shared.rs`, with the
//! `shared` feature).
//!
//! Memory and owned storage keep the committed contexts in the shards' maps;
//! what a storage adds (writes in progress, writes whose outcome is unknown,
//! creates not yet in memory) is the owned backend's alone. A shared backend
//! decides every call itself and leaves the maps empty: a public method
//! hands it the call first (`in_shared_mode!`), or it is one arm of the
//! dispatch here.

pub(crate) mod memory;
pub(crate) mod owned;
#[cfg(feature = "shared")]
pub(crate) mod shared;

use crate::store::{Entry, Inner, Map, Shard};
use crate::write::Patch;
use crate::{ContextError, ContextManager, ContextState, Result};
use owned::Owned;
use std::collections::VecDeque;
use std::sync::Arc;

/// Where a manager's contexts live.
#[derive(Debug)]
pub(crate) enum Backend {
    /// Only in the shards' maps: each write is decided and applied in one
    /// critical section.
    Memory,
    /// Written through to a storage before a write is acknowledged.
    Owned(Owned),
    /// Every call decided by a backend shared with other managers.
    #[cfg(feature = "shared")]
    Shared(shared::Shared),
}

impl ContextManager {
    /// The manager's backend, ready for a call: every call that reads or
    /// writes the maps comes through here, and over an owned storage this is
    /// where writes whose outcome is unknown are read back first.
    pub(crate) async fn backend(&self) -> &Backend {
        let backend = &self.inner.backend;
        if let Backend::Owned(owned) = backend {
            owned.enter(&self.inner).await;
        }
        backend
    }

    /// Creates `id` with `state` (version 1, timestamps set as it takes
    /// effect), retrying as the backend's rules for a full store say. Each
    /// attempt's write goes through [`backend`](Self::backend). A shared
    /// backend gets the state's data and metadata in one write.
    pub(crate) async fn create(
        &self,
        id: &str,
        state: ContextState,
        ttl_ms: Option<u64>,
    ) -> Result<Arc<ContextState>> {
        match &self.inner.backend {
            Backend::Owned(owned) => owned.create(self, id, state, ttl_ms).await,
            Backend::Memory => memory::create(self, id, state, ttl_ms).await,
            #[cfg(feature = "shared")]
            Backend::Shared(shared) => {
                let write = crate::Write::Create {
                    id: id.to_owned(),
                    data: state.data,
                    ttl_ms,
                    metadata: state.metadata,
                    capacity: self.inner.limit(),
                };
                shared.create(&self.inner, write).await
            }
        }
    }
}

/// A create's decision, inside `id`'s shard section: `ALREADY_EXISTS` if
/// `id` is there, else a capacity slot and the new entry, timestamped with
/// the clock read as the slot was taken (where the create takes effect).
/// `initial` is the new context's first state, taken when the entry is made.
/// When the store is full, `full_at` gets the count as this attempt found it.
///
/// In memory an expired context with the id is dropped first, and a full
/// store drops this shard's expired contexts before it answers (the caller
/// sweeps the others and retries). Through a storage expired contexts leave
/// by a storage delete: one with the id makes this fail, and the write
/// machinery deletes it and decides the create again.
pub(crate) fn decide_create(
    inner: &Inner,
    shard: &Shard,
    map: &mut Map,
    id: &str,
    initial: &mut Option<ContextState>,
    ttl_ms: Option<u64>,
    full_at: &mut Option<u64>,
) -> Result<Patch> {
    let now = inner.now();
    if inner.live_mut(map, id, now).is_some() || map.contains_key(id) {
        return Err(ContextError::AlreadyExists { id: id.to_owned() });
    }
    let mut taken = inner.take_slot(shard, ttl_ms);
    if let Err((at, _)) = taken
        && inner.backend.removes_expired_in_place()
        && shard.may_have_expired(at)
        && memory::sweep_shard(inner, shard, map, at) > 0
    {
        taken = inner.take_slot(shard, ttl_ms);
    }
    // The clock read as the slot was taken: where the create takes effect.
    let now = match taken {
        Ok(now) => now,
        Err((_, word)) => {
            *full_at = Some(word);
            return Err(ContextError::capacity("contexts", inner.limit()));
        }
    };
    let mut state = initial.take().expect("a create inserts at most once");
    state.created_at_ms = now;
    state.updated_at_ms = now;
    state.expires_at_ms = Inner::expires_at(now, ttl_ms);
    let entry = Entry::new(Arc::new(state), ttl_ms, inner.next_touch(), VecDeque::new());
    Ok(Patch::Insert(entry))
}

impl Backend {
    /// Whether a write that meets an expired context removes it on the spot
    /// (in memory), rather than leaving it for a storage delete to remove,
    /// so that every removal a subscriber sees is durable.
    pub(crate) fn removes_expired_in_place(&self) -> bool {
        matches!(self, Self::Memory)
    }
}
