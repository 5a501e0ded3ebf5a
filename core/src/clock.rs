//! Time enters the core only through [`Clock`].

use crate::sync::{AtomicU64, Ordering};
use std::fmt::Debug;
use std::sync::Arc;

/// A source of wall-clock time in milliseconds since the Unix epoch.
///
/// The core never reads time any other way: front-ends pass the system clock
/// natively, `Date.now()` in wasm, and tests pass a [`ManualClock`].
///
/// ```
/// # use contextkit_core::*;
/// # futures::executor::block_on(async {
/// #[derive(Debug)]
/// struct Fixed(u64);
/// impl Clock for Fixed {
///     fn now_ms(&self) -> u64 { self.0 }
/// }
/// let m = ContextManager::builder(ManagerConfig::default()).clock(Fixed(9)).build();
/// assert_eq!(m.create_context("a", json!({})).await?.created_at_ms, 9);
/// # Ok::<(), ContextError>(())
/// # }).unwrap();
/// ```
pub trait Clock: Send + Sync + Debug {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
}

/// The platform clock: `SystemTime` natively, `Date.now()` in a JavaScript host.
///
/// ```
/// use contextkit_core::{Clock, SystemClock};
/// assert!(SystemClock.now_ms() > 1_600_000_000_000);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        web_time::SystemTime::now()
            .duration_since(web_time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

/// A clock that only moves when told to; clones share the same time.
///
/// ```
/// use contextkit_core::{Clock, ManualClock};
/// let clock = ManualClock::new(1_000);
/// clock.advance(500);
/// assert_eq!(clock.now_ms(), 1_500);
/// ```
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// A clock showing `start_ms`.
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// assert_eq!(ManualClock::new(7).now_ms(), 7);
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    pub fn new(start_ms: u64) -> Self {
        Self(Arc::new(AtomicU64::new(start_ms)))
    }

    /// Moves the clock forward by `ms`.
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let c = ManualClock::new(0);
    /// let shared = c.clone();
    /// c.advance(10);
    /// assert_eq!(shared.now_ms(), 10);
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    pub fn advance(&self, ms: u64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }

    /// Sets the clock to `ms` (it may go backwards; the store copes).
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let c = ManualClock::new(100);
    /// c.set(50);
    /// assert_eq!(c.now_ms(), 50);
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    pub fn set(&self, ms: u64) {
        self.0.store(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}
