//! Reads of single contexts sent together. A get that reaches the transport
//! while no other is waiting leads: it lets its worker run the tasks that are
//! ready before it (it yields once, to the back of the worker's queue), then
//! sends what gathered meanwhile as one `MGET` (one `GET` when it is alone)
//! and hands each waiting get its reply.
//!
//! Linearizable as each `GET` is: the one command runs after every get in it
//! began and before any of them returns. Under load this trades one
//! command, one timer and one reply frame per get for one per batch (the
//! keys of a namespace share its hash tag, so an `MGET` stays in one slot
//! of a cluster). A lone get only pays the yield.
//!
//! Nothing waits on a leader that is gone: a leader dropped before it sent
//! drops the batch, and a leader dropped while its command is on its way
//! drops its waiters' senders with it; a get whose reply sender is dropped
//! sends its own `GET`.

use super::conn::{Conn, call};
use super::record::into_wire;
use contextkit_core::wire::Wire;
use contextkit_core::{ContextError, Result};
use redis::Value;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::oneshot;

type Reply = oneshot::Sender<Result<Wire>>;

/// The gets waiting for their leader to send them.
#[derive(Default)]
pub(super) struct Gets {
    waiting: Mutex<Vec<(String, Reply)>>,
}

impl Gets {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(String, Reply)>> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The value of the key `prefix` + `id`, read by `conn` with its batch
    /// within `timeout`.
    pub(super) async fn get(
        &self,
        conn: &Conn,
        (prefix, id): (&str, &str),
        timeout: Duration,
    ) -> Result<Wire> {
        let key = || format!("{prefix}c:{id}");
        let (reply, answer) = oneshot::channel();
        let leads = {
            let mut waiting = self.lock();
            waiting.push((key(), reply));
            waiting.len() == 1
        };
        if leads {
            let lead = Lead(Some(self));
            YieldOnce(false).await;
            let batch = lead.take();
            send(conn, batch, timeout).await;
        }
        match answer.await {
            Ok(result) => result,
            // Its leader was dropped (the caller of that get gave up): on
            // its own.
            Err(_) => {
                let (reply, answer) = oneshot::channel();
                send(conn, vec![(key(), reply)], timeout).await;
                answer
                    .await
                    .unwrap_or_else(|_| unreachable!("send answers every get"))
            }
        }
    }
}

/// The leader until it takes its batch; dropped before, it drops the batch,
/// so that the gets in it read on their own.
struct Lead<'a>(Option<&'a Gets>);

impl Lead<'_> {
    fn take(mut self) -> Vec<(String, Reply)> {
        self.0
            .take()
            .map(|g| std::mem::take(&mut *g.lock()))
            .unwrap_or_default()
    }
}

impl Drop for Lead<'_> {
    fn drop(&mut self) {
        if let Some(gets) = self.0 {
            drop(std::mem::take(&mut *gets.lock()));
        }
    }
}

/// Reads `batch` (one command, however many: no more than the gets under way)
/// and answers each of its gets.
async fn send(conn: &Conn, batch: Vec<(String, Reply)>, timeout: Duration) {
    let what = if batch.len() == 1 { "GET" } else { "MGET" };
    let mut cmd = redis::cmd(what);
    for (key, _) in &batch {
        cmd.arg(key);
    }
    let answer = call(&mut conn.clone(), &cmd, timeout).await;
    let replies: Vec<Result<Wire>> = match answer {
        Ok(Value::Array(items)) if what == "MGET" && items.len() == batch.len() => {
            items.into_iter().map(|v| Ok(into_wire(v))).collect()
        }
        Ok(value) if what == "GET" => vec![Ok(into_wire(value))],
        Ok(other) => {
            let e = ContextError::storage(format!(
                "redis MGET: a reply of {} keys that is not a list of {}: {other:?}",
                batch.len(),
                batch.len()
            ));
            vec![Err(e); batch.len()]
        }
        Err(f) => vec![Err(f.into_error(what, timeout)); batch.len()],
    };
    for ((_, reply), result) in batch.into_iter().zip(replies) {
        // A get that gave up no longer listens.
        let _ = reply.send(result);
    }
}

/// Pending once, woken at once: the task goes to the back of its worker's
/// queue. (`tokio::task::yield_now` waits for the worker's next look at
/// its I/O as well: a read of the socket and later, which measured slower.)
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
