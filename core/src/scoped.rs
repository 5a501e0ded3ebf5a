//! [`Scoped`]: an async read-write lock whose guards never leave a synchronous closure.

use std::fmt;

/// An [`async_lock::RwLock`] that can only be used through synchronous closures.
///
/// Waiting for the lock is asynchronous, but the guard exists only while the
/// closure runs, and the closure cannot `.await`. So no guard is ever held
/// across an await point, every check-then-act written inside one closure is
/// atomic, and a future dropped while waiting (or after) leaves nothing
/// half-done: the closure either ran to completion or never started.
///
/// ```
/// use contextkit_core::Scoped;
/// # futures::executor::block_on(async {
/// let counter = Scoped::new(0_u32);
/// // check-then-act in one critical section
/// let won = counter.write(|n| if *n == 0 { *n = 1; true } else { false }).await;
/// assert!(won);
/// assert_eq!(counter.read(|n| *n).await, 1);
/// # });
/// ```
pub struct Scoped<T: ?Sized> {
    lock: async_lock::RwLock<T>,
}

impl<T> Scoped<T> {
    /// Wraps `value`.
    pub const fn new(value: T) -> Self {
        Self {
            lock: async_lock::RwLock::new(value),
        }
    }

    /// Unwraps the value.
    pub fn into_inner(self) -> T {
        self.lock.into_inner()
    }
}

impl<T: ?Sized> Scoped<T> {
    /// Runs `f` with shared access; many readers may run at once.
    pub async fn read<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        let guard = self.lock.read().await;
        f(&guard)
    }

    /// Runs `f` with exclusive access.
    pub async fn write<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let mut guard = self.lock.write().await;
        f(&mut guard)
    }

    /// Runs `f` with shared access if no writer holds or waits for the lock.
    pub fn try_read<R>(&self, f: impl FnOnce(&T) -> R) -> Option<R> {
        self.lock.try_read().map(|guard| f(&guard))
    }

    /// Exclusive access without waiting, through `&mut self`.
    pub fn get_mut(&mut self) -> &mut T {
        self.lock.get_mut()
    }
}

impl<T: Default> Default for Scoped<T> {
    fn default() -> Self {
        Self::new(T::default())
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Scoped<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.lock.try_read() {
            Some(v) => f.debug_tuple("Scoped").field(&&*v).finish(),
            None => f.write_str("Scoped(<locked>)"),
        }
    }
}
