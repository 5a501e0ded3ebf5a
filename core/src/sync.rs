//! The core's atomics and locks, from one place: loom's under `cfg(loom)`,
//! so that the models in `core/tests/loom.rs` explore every interleaving of
//! them, and std's otherwise. Every atomic and `Mutex` of the core comes
//! from here (the `Scoped` locks are async-lock's, which has its own `loom`
//! feature).
//!
//! `Arc` stays std's: it is in the public API (`Arc<ContextState>`), and
//! loom's cannot hold a `dyn Storage` or `dyn Clock`.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
#[cfg(loom)]
pub(crate) use loom::sync::{Mutex, MutexGuard};

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
#[cfg(not(loom))]
pub(crate) use std::sync::{Mutex, MutexGuard};

pub(crate) use std::sync::atomic::Ordering;
