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
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let s = Scoped::new(vec![1, 2]);
    /// assert_eq!(s.read(|v| v.len()).await, 2);
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    #[cfg(not(loom))]
    pub const fn new(value: T) -> Self {
        Self {
            lock: async_lock::RwLock::new(value),
        }
    }

    /// Wraps `value` (under loom, whose lock constructor is not `const`).
    #[cfg(loom)]
    pub fn new(value: T) -> Self {
        Self {
            lock: async_lock::RwLock::new(value),
        }
    }

    /// Unwraps the value.
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let s = Scoped::new(5);
    /// s.write(|n| *n += 1).await;
    /// assert_eq!(s.into_inner(), 6);
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    pub fn into_inner(self) -> T {
        self.lock.into_inner()
    }
}

impl<T: ?Sized> Scoped<T> {
    /// Runs `f` with shared access; many readers may run at once.
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let s = Scoped::new(String::from("hi"));
    /// assert_eq!(s.read(|v| v.to_uppercase()).await, "HI");
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    pub async fn read<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        let guard = self.lock.read().await;
        f(&guard)
    }

    /// Runs `f` with exclusive access.
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let s = Scoped::new(Vec::new());
    /// let len = s.write(|v| { v.push(1); v.len() }).await;
    /// assert_eq!(len, 1);
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    pub async fn write<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let mut guard = self.lock.write().await;
        f(&mut guard)
    }

    /// Runs `f` with shared access if no writer holds or waits for the lock.
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let s = Scoped::new(3);
    /// assert_eq!(s.try_read(|n| *n), Some(3));
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    pub fn try_read<R>(&self, f: impl FnOnce(&T) -> R) -> Option<R> {
        self.lock.try_read().map(|guard| f(&guard))
    }

    /// Exclusive access without waiting, through `&mut self`.
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let mut s = Scoped::new(1);
    /// *s.get_mut() = 2;
    /// assert_eq!(s.read(|n| *n).await, 2);
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
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
