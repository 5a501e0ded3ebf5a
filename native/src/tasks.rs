//! Background tasks on tokio: periodic expiry sweeps and tracker auto-sync.

use contextkit_core::{ContextAdapter, ContextError, ContextManager, ContextTracker};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::{MissedTickBehavior, interval};

/// A running background task; dropping the handle stops it.
#[derive(Debug)]
#[must_use = "the task stops when its handle is dropped"]
pub struct TaskHandle {
    task: Option<JoinHandle<()>>,
}

impl TaskHandle {
    fn new(task: JoinHandle<()>) -> Self {
        Self { task: Some(task) }
    }

    /// Stops the task and waits until it has stopped.
    pub async fn stop(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            // Cancelled is the expected outcome.
            let _ = task.await;
        }
    }

    /// Whether the task has stopped.
    pub fn is_finished(&self) -> bool {
        self.task.as_ref().is_none_or(JoinHandle::is_finished)
    }
}

impl Drop for TaskHandle {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// What [`spawn_cleanup`] can sweep: a [`ContextManager`] or a [`ContextAdapter`].
pub trait Cleanup: Clone + Send + Sync + 'static {
    /// Removes expired contexts; returns how many.
    fn cleanup(&self) -> Pin<Box<dyn Future<Output = usize> + Send + '_>>;
}

impl Cleanup for ContextManager {
    fn cleanup(&self) -> Pin<Box<dyn Future<Output = usize> + Send + '_>> {
        Box::pin(self.cleanup_expired())
    }
}

impl Cleanup for ContextAdapter {
    fn cleanup(&self) -> Pin<Box<dyn Future<Output = usize> + Send + '_>> {
        Box::pin(self.cleanup_expired_contexts())
    }
}

/// Sweeps expired contexts from `target` every `every` until the handle drops.
///
/// ```
/// use contextkit::{spawn_cleanup, ContextManager, ManagerConfig};
/// use std::time::Duration;
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let m = ContextManager::new(ManagerConfig::default());
/// let sweeper = spawn_cleanup(&m, Duration::from_secs(30));
/// drop(sweeper); // stops it
/// # }
/// ```
pub fn spawn_cleanup<T: Cleanup>(target: &T, every: Duration) -> TaskHandle {
    let target = target.clone();
    let task = tokio::spawn(async move {
        let mut ticks = ticker(every);
        loop {
            ticks.tick().await;
            target.cleanup().await;
        }
    });
    TaskHandle::new(task)
}

/// Calls `tracker.sync_if_needed()` every `every` until the handle drops;
/// errors (a conflict under `Reject`, say) are retried on the next tick.
pub fn spawn_auto_sync(tracker: &ContextTracker, every: Duration) -> TaskHandle {
    spawn_auto_sync_with(tracker, every, |_| {})
}

/// [`spawn_auto_sync`] that reports each failed sync to `on_error`.
pub fn spawn_auto_sync_with(
    tracker: &ContextTracker,
    every: Duration,
    on_error: impl Fn(ContextError) + Send + 'static,
) -> TaskHandle {
    let tracker = tracker.clone();
    let task = tokio::spawn(async move {
        let mut ticks = ticker(every);
        loop {
            ticks.tick().await;
            if let Err(e) = tracker.sync_if_needed().await {
                on_error(e);
            }
        }
    });
    TaskHandle::new(task)
}

fn ticker(every: Duration) -> tokio::time::Interval {
    let mut ticks = interval(every.max(Duration::from_millis(1)));
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    ticks
}
