//! The seam between a manager and where its contexts live: in memory only,
//! or written through to a [`Storage`](crate::Storage) the manager owns.
//!
//! Both keep the committed contexts in the shards' maps; what a storage adds
//! (writes in flight, writes whose outcome is unknown, creates not yet
//! landed) is the owned backend's alone, in `owned.rs`.

pub(crate) mod owned;

use crate::ContextManager;
use owned::Owned;

/// Where a manager's contexts live.
#[derive(Debug)]
pub(crate) enum Backend {
    /// Only in the shards' maps: each write is decided and applied in one
    /// critical section.
    Memory,
    /// Written through to a storage before a write is acknowledged.
    Owned(Owned),
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
}

impl Backend {
    /// The owned storage, if there is one.
    pub(crate) fn owned(&self) -> Option<&Owned> {
        match self {
            Self::Owned(owned) => Some(owned),
            Self::Memory => None,
        }
    }

    /// Whether a write that meets an expired context removes it on the spot
    /// (in memory), rather than leaving it for a storage delete to remove,
    /// so that every removal a subscriber sees is durable.
    pub(crate) fn removes_expired_in_place(&self) -> bool {
        matches!(self, Self::Memory)
    }
}
