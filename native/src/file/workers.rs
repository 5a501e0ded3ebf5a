//! The threads of a [`FileStorage`](super::FileStorage): its file work runs
//! there, never on the executor, and its directory's lock is released once
//! the work queued before it closed is done.
//!
//! Closing (an explicit `close`, or a drop) shuts the queues; the lock goes
//! at once if nothing is queued, else when the worker that finishes the last
//! queued job sees the queues shut. Nobody waits for the threads to end, except
//! a drop outside a tokio runtime, which waits for them (so for the queued work).

use super::{lock::DirLock, storage_error, storage_fault};
use contextkit_core::{ContextError, Result};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, mpsc};
use std::thread::{self, JoinHandle};
use tokio::sync::watch;

/// A piece of file work. It drops the [`Done`] it gets once its file work is
/// done, before it hands its result over: whoever gets the result and then
/// closes the storage finds nothing pending.
pub(super) type Job = Box<dyn FnOnce(Done) + Send>;

/// Counts its job as finished when dropped (also if the job panics).
pub(super) struct Done(Arc<Shared>);

impl Drop for Done {
    fn drop(&mut self) {
        self.0.finished_one();
    }
}

/// Worker threads, each with its queue.
pub(super) struct Workers {
    /// One queue per thread; `None` once closed.
    queues: RwLock<Option<Vec<mpsc::Sender<Job>>>>,
    threads: Vec<JoinHandle<()>>,
    shared: Arc<Shared>,
    /// Turns true when the lock is released.
    released: watch::Receiver<bool>,
}

/// What the threads share with the storage.
struct Shared {
    /// Jobs queued and not finished yet.
    pending: AtomicUsize,
    /// The queues are shut: no job comes any more.
    closed: AtomicBool,
    /// The directory's lock, until released.
    lock: Mutex<Option<DirLock>>,
    released: watch::Sender<bool>,
}

impl Shared {
    fn release(&self) {
        let lock = self.lock.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(lock) = lock {
            drop(lock);
            self.released.send_replace(true);
        }
    }

    /// One job fewer; the last one after closing releases the lock.
    fn finished_one(&self) {
        // With `close`'s store and load (both SeqCst), one of the two sees
        // both "closed" and "nothing pending" and releases the lock.
        if self.pending.fetch_sub(1, Ordering::SeqCst) == 1 && self.closed.load(Ordering::SeqCst) {
            self.release();
        }
    }
}

/// If nothing released the lock (the storage failed to start, a worker died
/// mid-job), it goes with the last holder of this.
impl Drop for Shared {
    fn drop(&mut self) {
        self.release();
    }
}

impl Workers {
    /// Starts `count` threads for the storage of `dir`, which holds `lock`.
    pub(super) fn start(dir: &Path, count: usize, lock: DirLock) -> Result<Self> {
        let (released_tx, released) = watch::channel(false);
        let shared = Arc::new(Shared {
            pending: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            lock: Mutex::new(Some(lock)),
            released: released_tx,
        });
        let mut queues = Vec::with_capacity(count);
        let mut threads = Vec::with_capacity(count);
        for i in 0..count {
            let (tx, rx) = mpsc::channel::<Job>();
            let shared = Arc::clone(&shared);
            let thread = thread::Builder::new()
                .name(format!("contextkit-files-{i}"))
                .spawn(move || {
                    for job in rx {
                        job(Done(Arc::clone(&shared)));
                    }
                })
                .map_err(|e| storage_error("cannot start a worker for", dir, e))?;
            queues.push(tx);
            threads.push(thread);
        }
        Ok(Self {
            queues: RwLock::new(Some(queues)),
            threads,
            shared,
            released,
        })
    }

    /// Queues `job` on thread `worker`; `STORAGE` naming `dir` once closed.
    pub(super) fn send(&self, worker: usize, job: Job, dir: &Path) -> Result<()> {
        let queues = self.queues.read().unwrap_or_else(|e| e.into_inner());
        let Some(queues) = queues.as_ref() else {
            return Err(storage_fault(
                "cannot use",
                dir,
                "the file storage is closed",
            ));
        };
        self.shared.pending.fetch_add(1, Ordering::SeqCst);
        queues[worker].send(job).map_err(|_| {
            self.shared.finished_one();
            ContextError::storage("file storage worker stopped")
        })
    }

    /// Shuts the queues: no job comes any more, the lock goes once the
    /// queued ones are done (now, if none is), and an opener of the directory
    /// in this process waits for that instead of failing.
    pub(super) fn close(&self) {
        let Some(queues) = self
            .queues
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        else {
            return;
        };
        if let Some(lock) = &*self.shared.lock.lock().unwrap_or_else(|e| e.into_inner()) {
            lock.mark_closing();
        }
        self.shared.closed.store(true, Ordering::SeqCst);
        if self.shared.pending.load(Ordering::SeqCst) == 0 {
            self.shared.release();
        }
        // Each thread ends once its queue is empty.
        drop(queues);
    }

    /// Waits until the lock is released.
    pub(super) async fn released(&self) {
        let mut released = self.released.clone();
        // Its sender lives as long as `self`.
        let _ = released.wait_for(|done| *done).await;
    }
}

/// Closes; outside a tokio runtime it also waits for the threads (and so
/// for the queued work and the lock's release). Inside one it never blocks
/// the runtime's thread: the threads finish on their own.
impl Drop for Workers {
    fn drop(&mut self) {
        self.close();
        if tokio::runtime::Handle::try_current().is_ok() {
            return;
        }
        for thread in self.threads.drain(..) {
            if thread.thread().id() != thread::current().id() {
                let _ = thread.join();
            }
        }
    }
}
