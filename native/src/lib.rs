//! contextkit for tokio programs: keyed, versioned JSON contexts with recovery
//! points, expiry and change events.
//!
//! This crate re-exports the executor-agnostic [`contextkit_core`] and adds
//! background tasks on tokio: [`spawn_cleanup`] sweeps expired contexts and
//! [`spawn_auto_sync`] pushes a tracker's edits, each stopping when its
//! [`TaskHandle`] is dropped.
//!
//! ```
//! use contextkit::{ContextManager, ManagerConfig, json};
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> contextkit::Result<()> {
//! let m = ContextManager::new(ManagerConfig::default());
//! let s = m.create_context("a", json!({ "x": 1 })).await?;
//! m.update_context("a", json!({ "x": 2 }), Some(s.version)).await?;
//! assert_eq!(m.get_context("a").await?.version, 2);
//! # Ok(()) }
//! ```

mod file;
mod json;
#[cfg(feature = "redis")]
mod redis_backend;
mod tasks;

pub use contextkit_core::*;
pub use file::FileStorage;
#[cfg(feature = "redis")]
pub use redis_backend::RedisBackend;
pub use tasks::{Cleanup, TaskHandle, spawn_auto_sync, spawn_auto_sync_with, spawn_cleanup};

/// The Rust snippets of the README, compiled and run as doctests.
#[cfg(all(doctest, feature = "redis"))]
#[doc = include_str!("../../README.md")]
struct ReadmeSnippets;
