//! Reads of single contexts sent together. A get that finds no other
//! waiting starts a sender task and waits, as every get does, for its
//! answer. The sender yields once, to the back of its worker's queue, so
//! that the tasks ready before it run first and add their gets; then it
//! takes what gathered and sends it as one `MGET` (one `GET` when alone;
//! chunks of [`MAX_KEYS`] at once when many), and answers each get.
//!
//! Linearizable as each `GET` is: the one command runs after every get in it
//! began and before any of them returns. Under load this trades one
//! command, one timer and one reply frame per get for one per batch (the
//! keys of a namespace share its hash tag, so an `MGET` stays in one slot).
//! A lone get pays a task and a yield. Nothing a caller does with its own
//! get (drop it, or hold it without polling) holds up another's, and a
//! runtime that shuts down before its sender took the gets ends them with
//! `STORAGE` at once; a sender's runtime must run for its gets to end
//! within the backend's timeout (the sender runs on the runtime of the
//! get that started it, which other runtimes' gets may join).
//!
//! On a cluster every get goes alone, and without the epoch (below):
//! while a slot moves, Redis answers a command of several keys `TRYAGAIN`
//! until all of them are on one node, which a key that does not exist never
//! is, and a pipeline sent on by `ASK` is `ASK`ed or `MOVED` again at its
//! second command; either would wait for the whole move.

use super::conn::{Conn, call};
use super::record::into_wire;
use contextkit_core::wire::Wire;
use contextkit_core::{ContextError, Result};
use redis::Value;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// Keys per `MGET` at most: a larger batch goes as several, at once.
const MAX_KEYS: usize = 128;

type Reply = oneshot::Sender<Result<Wire>>;
type Batch = Vec<(String, Reply)>;

/// The gets waiting for their sender.
#[derive(Default)]
pub(super) struct Gets {
    waiting: Mutex<Batch>,
    joined: OnceLock<Joined>,
}

/// The namespace a read must find: the epoch the manager joined, in the
/// meta key's hash. A store that lost its data has none, or another one
/// (made by a manager that joined after the loss); a read of it would
/// answer from a store other than the one the manager's writes went to.
pub(super) struct Joined {
    meta: String,
    epoch: String,
}

impl Joined {
    /// `cmd`, then a read of the namespace's epoch: one pipeline.
    pub(super) fn with_epoch(&self, cmd: redis::Cmd) -> redis::Pipeline {
        let mut pipe = redis::pipe();
        pipe.add_command(cmd)
            .cmd("HGET")
            .arg(&self.meta)
            .arg("epoch");
        pipe
    }

    /// The command's reply from the reply of [`with_epoch`](Self::with_epoch)'s
    /// pipeline, or `None` if the epoch is not the one joined.
    pub(super) fn reply(&self, both: Value, what: &str) -> Result<Option<Value>> {
        match both {
            Value::Array(mut both) if both.len() == 2 => {
                let epoch = both.pop();
                if !matches!(epoch, Some(Value::BulkString(e)) if e == self.epoch.as_bytes()) {
                    return Ok(None);
                }
                Ok(both.pop())
            }
            other => Err(ContextError::storage(format!(
                "redis {what} and HGET: a reply that is not two: {other:?}"
            ))),
        }
    }
}

impl Gets {
    /// From now on every read also reads the namespace's epoch, in the same
    /// pipeline and after its keys, and answers `["EPOCH", nil]` unless it is
    /// `epoch`: the client then reports the manager lost. (A store that
    /// lost its data could only hold `epoch` again if a manager drew the
    /// same 64 random bits.)
    pub(super) fn joined(&self, meta: String, epoch: String) {
        let _ = self.joined.set(Joined { meta, epoch });
    }

    /// The epoch a read on `conn` checks: none before the manager joined,
    /// and none on a cluster (see the module's doc).
    pub(super) fn checked_on(&self, conn: &Conn) -> Option<&Joined> {
        match conn {
            Conn::Cluster(_) => None,
            _ => self.joined.get(),
        }
    }

    fn take(&self) -> Batch {
        std::mem::take(&mut *self.waiting.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The value of `key`, read by `conn` (with the gets made meanwhile,
    /// sent by a task on `runtime`: the caller's) within `timeout`.
    pub(super) async fn get(
        self: &Arc<Self>,
        conn: &Conn,
        runtime: &Handle,
        key: String,
        timeout: Duration,
    ) -> Result<Wire> {
        if let Conn::Cluster(_) = conn {
            // Alone, and without the epoch: see the module's doc.
            return read(conn, None, vec![key], timeout).await.remove(0);
        }
        let (reply, answer) = oneshot::channel();
        let first = {
            let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
            waiting.push((key, reply));
            waiting.len() == 1
        };
        if first {
            // Dropped before it takes the list (its runtime shut down before
            // it ran, or while it yielded), the sender empties it: nothing
            // waits for it, and the next get starts a sender again.
            let (sender, conn) = (Sender(Some(Arc::clone(self))), conn.clone());
            runtime.spawn(async move {
                YieldOnce(false).await;
                let (gets, batch) = sender.take();
                send(conn, &gets, batch, timeout).await;
            });
        }
        answer.await.unwrap_or_else(|_| {
            Err(ContextError::storage(
                "redis GET: no answer (the runtime that sends it shut down)",
            ))
        })
    }
}

/// A sender that has not taken the list yet.
struct Sender(Option<Arc<Gets>>);

impl Sender {
    fn take(mut self) -> (Arc<Gets>, Batch) {
        let gets = self.0.take().expect("taken once");
        let batch = gets.take();
        (gets, batch)
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        if let Some(gets) = self.0.take() {
            drop(gets.take());
        }
    }
}

/// Reads `batch` and answers each of its gets: one command per
/// [`MAX_KEYS`], the first here and the others on tasks of their own.
async fn send(conn: Conn, gets: &Arc<Gets>, mut batch: Batch, timeout: Duration) {
    while batch.len() > MAX_KEYS {
        let rest = batch.split_off(MAX_KEYS);
        let chunk = std::mem::replace(&mut batch, rest);
        let (conn, gets) = (conn.clone(), Arc::clone(gets));
        tokio::spawn(async move { answer(&conn, &gets, chunk, timeout).await });
    }
    answer(&conn, gets, batch, timeout).await;
}

async fn answer(conn: &Conn, gets: &Gets, batch: Batch, timeout: Duration) {
    let (keys, replies): (Vec<String>, Vec<Reply>) = batch.into_iter().unzip();
    let results = read(conn, gets.checked_on(conn), keys, timeout).await;
    for (reply, result) in replies.into_iter().zip(results) {
        // A get that gave up no longer listens.
        let _ = reply.send(result);
    }
}

/// The values of `keys` (one command: `GET` for one, else `MGET`, then
/// the namespace's epoch where it is `joined`), one result per key.
async fn read(
    conn: &Conn,
    joined: Option<&Joined>,
    keys: Vec<String>,
    timeout: Duration,
) -> Vec<Result<Wire>> {
    let n = keys.len();
    let what = if n == 1 { "GET" } else { "MGET" };
    let mut cmd = redis::cmd(what);
    for key in keys {
        cmd.arg(key);
    }
    let reply = match joined {
        None => call(&mut conn.clone(), &cmd, timeout).await,
        Some(j) => match call(&mut conn.clone(), &j.with_epoch(cmd), timeout).await {
            Ok(both) => match j.reply(both, what) {
                Ok(Some(reply)) => Ok(reply),
                Ok(None) => return vec![Ok(contextkit_core::wire::lost_reply()); n],
                Err(e) => return vec![Err(e); n],
            },
            Err(f) => Err(f),
        },
    };
    match reply {
        Ok(Value::Array(items)) if n > 1 && items.len() == n => {
            items.into_iter().map(|v| Ok(into_wire(v))).collect()
        }
        Ok(value) if n == 1 => vec![Ok(into_wire(value))],
        Ok(other) => {
            let e = ContextError::storage(format!(
                "redis {what}: a reply of {n} keys that is not {n} values: {other:?}"
            ));
            vec![Err(e); n]
        }
        Err(f) => vec![Err(f.into_error(what, timeout)); n],
    }
}

/// Pending once, woken at once: the task goes to the back of its worker's
/// queue. (`tokio::task::yield_now` waits for the worker's next look at
/// its sockets as well, which measured slower.)
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
