//! The executor-agnostic core of contextkit: keyed, versioned JSON contexts
//! with recovery points, expiry and change events.
//!
//! Three objects: [`ContextManager`] (the store), [`ContextTracker`] (a working
//! copy of one active context that syncs back) and [`ContextAdapter`] (a facade
//! with TTL, capacity and active trackers).
//!
//! The core names no executor, spawns nothing and reads time only through a
//! [`Clock`]. All shared state sits behind [`Scoped`] locks whose guards live only
//! inside synchronous closures, so no guard is held across an `.await` and every
//! check-then-act is one critical section.
//!
//! ```
//! use contextkit_core::{ContextManager, ManagerConfig};
//! use serde_json::json;
//! # futures::executor::block_on(async {
//! let m = ContextManager::new(ManagerConfig::default());
//! m.create_context("a", json!({ "x": 1 })).await?;
//! assert_eq!(m.create_context("a", json!({})).await.unwrap_err().code(), "ALREADY_EXISTS");
//! assert_eq!(m.get_context("a").await?.data["x"], 1);
//! # Ok::<(), contextkit_core::ContextError>(())
//! # }).unwrap();
//! ```

// In single-threaded wasm a storage need not be `Send`, so neither are the
// objects holding one; natively everything is `Send + Sync`.
#![cfg_attr(target_arch = "wasm32", allow(clippy::arc_with_non_send_sync))]

/// Runs `$body` with the shared backend when the manager `$inner` is in
/// shared mode. Without the `shared` feature it expands to nothing, so a
/// build that cannot connect carries no shared-mode path.
macro_rules! in_shared_mode {
    ($inner:expr, $shared:ident => $body:block) => {
        #[cfg(feature = "shared")]
        if let crate::backend::Backend::Shared($shared) = &$inner.backend $body
    };
}

mod adapter;
mod backend;
mod clock;
mod data;
mod error;
mod events;
mod expiry;
mod manager;
mod open;
mod recovery;
mod scoped;
mod shared;
mod state;
mod state_cache;
mod storage;
mod store;
mod sync;
mod tracker;
mod validate;
mod write;

pub use adapter::{AdapterConfig, ContextAdapter};
pub use clock::{Clock, ManualClock, SystemClock};
pub use data::Data;
pub use error::{ContextError, Result};
pub use events::{ContextEvent, DEFAULT_EVENT_CAPACITY, Subscription};
pub use manager::{ContextManager, ManagerBuilder};
pub use open::Opened;
pub use scoped::Scoped;
#[cfg(feature = "shared")]
pub use shared::client;
pub use shared::{Committed, EventFeed, Joined, SharedBackend, Write, WriteReply, wire};
pub use state::{ContextState, CreateOptions, ManagerConfig, Snapshot, Stats, UpdateOptions};
pub use state_cache::StateCache;
#[allow(deprecated)]
pub use storage::PointRecord;
pub use storage::{
    Loaded, LoadedText, MaybeSend, MaybeSync, MemoryStorage, Meta, Record, SnapshotRecord, Storage,
    StorageFuture, TextStorage, TextStore, metadata_from_value,
};
pub use tracker::{ConflictPolicy, ContextTracker, TrackerConfig};
pub use validate::{MAX_DEPTH, ParseJson, json_depth, parse_json};

pub use serde_json::{Value, json};
