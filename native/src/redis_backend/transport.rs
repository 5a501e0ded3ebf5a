//! [`RedisTransport`]: the core's [`Transport`] over redis-rs. It only moves
//! the library's calls; the core's `SharedClient` decides what to call, reads
//! the replies, settles writes that got no answer and runs the event reader.

use super::conn::{self, Conn, Failure, Target, call};
use super::gets::Gets;
use super::record::{self, into_wire};
use contextkit_core::client::{Outcome, Transport};
use contextkit_core::wire::Wire;
use contextkit_core::{ContextError, Result, StorageFuture};
use redis::Value;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// Entries read at most per `XREAD`, whatever the reader asks.
const BATCH: usize = 1_000;

/// The longest a blocking read of the event reader waits.
const MAX_BLOCK: Duration = Duration::from_secs(1);

pub(crate) struct RedisTransport {
    pub(super) target: Target,
    /// `ck:{namespace}:`
    pub(super) prefix: String,
    /// How long one call may take, retries included.
    pub(super) timeout: Duration,
    conn: OnceLock<Conn>,
    /// Gets waiting to be sent together.
    gets: Arc<Gets>,
    /// The event reader's own connection (a blocking read must not hold up
    /// the calls of others); made again after a failure.
    reader: Mutex<Option<Conn>>,
    runtime: OnceLock<tokio::runtime::Handle>,
}

impl RedisTransport {
    pub(super) fn new(target: Target, namespace: &str) -> Self {
        Self {
            target,
            prefix: format!("ck:{{{namespace}}}:"),
            timeout: Duration::from_secs(2),
            conn: OnceLock::new(),
            gets: Arc::default(),
            reader: Mutex::new(None),
            runtime: OnceLock::new(),
        }
    }

    fn conn(&self) -> Result<Conn> {
        self.conn
            .get()
            .cloned()
            .ok_or_else(|| ContextError::storage("the redis backend is not connected"))
    }

    /// The namespace's epoch from a `ck2_join` reply (`[epoch, …]`): what
    /// every read checks from now on.
    fn joined(&self, reply: &Wire) {
        if let Wire::List(items) = reply
            && let Some(Wire::Text(epoch)) = items.first()
        {
            self.gets
                .joined(format!("{}meta", self.prefix), epoch.clone());
        }
    }

    /// The caller's runtime (a get's batch is sent there, so it waits on
    /// nothing another runtime does), else the one the backend connected on.
    fn runtime(&self) -> Result<tokio::runtime::Handle> {
        tokio::runtime::Handle::try_current()
            .ok()
            .or_else(|| self.runtime.get().cloned())
            .ok_or_else(|| ContextError::storage("the redis backend is not connected"))
    }

    async fn connect(&self) -> Result<Conn> {
        let timeout = self.timeout;
        let mut conn = tokio::time::timeout(timeout, self.target.connect(timeout))
            .await
            .map_err(|_| Failure::NoAnswer(None).into_error("connect", timeout))?
            .map_err(|e| conn::storage("connect", e))?;
        tokio::time::timeout(timeout, conn::load_library(&mut conn))
            .await
            .map_err(|_| Failure::NoAnswer(None).into_error("FUNCTION LOAD", timeout))?
            .map_err(|e| conn::storage("FUNCTION LOAD", e))?;
        check_eviction(&mut conn, timeout).await?;
        Ok(conn)
    }

    /// A query on the reader's connection, made first if there is none; a
    /// failure drops it, so that the next read connects again.
    async fn read_events(&self, cmd: &redis::Cmd, wait: Duration) -> Result<Value> {
        let timeout = self.timeout + wait;
        let held = self
            .reader
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut conn = match held {
            Some(c) => c,
            None => {
                // Its requests may block for up to MAX_BLOCK.
                let c = self
                    .target
                    .connect(self.timeout + MAX_BLOCK)
                    .await
                    .map_err(|e| conn::storage("connect", e))?;
                *self.reader.lock().unwrap_or_else(|e| e.into_inner()) = Some(c.clone());
                c
            }
        };
        match tokio::time::timeout(timeout, conn.query(cmd)).await {
            Ok(Ok(value)) => Ok(value),
            failed => {
                *self.reader.lock().unwrap_or_else(|e| e.into_inner()) = None;
                Err(match failed {
                    Ok(Err(e)) => conn::storage("XREAD", e),
                    _ => Failure::NoAnswer(None).into_error("XREAD", timeout),
                })
            }
        }
    }

    /// How a call that failed ends: refused (nothing happened), or unknown.
    fn failed(&self, function: &str, f: Failure) -> Result<Outcome> {
        match f {
            Failure::Refused(e) => Err(conn::storage(function, e)),
            no_answer => Ok(Outcome::Unknown(
                no_answer.into_error(function, self.timeout),
            )),
        }
    }
}

/// The library's functions that change nothing, called with `FCALL_RO`
/// (served by replicas too, and allowed where writes are not).
fn read_only(function: &str) -> bool {
    !matches!(function, "ck2_write" | "ck2_settle" | "ck2_join")
}

impl Transport for RedisTransport {
    fn open(&self) -> StorageFuture<'_, ()> {
        Box::pin(async move {
            let conn = self.connect().await?;
            let _ = self.conn.set(conn);
            let _ = self.runtime.set(tokio::runtime::Handle::current());
            Ok(())
        })
    }

    fn call<'a>(
        &'a self,
        function: &'a str,
        keys: &'a [String],
        args: &'a [String],
    ) -> StorageFuture<'a, Outcome> {
        Box::pin(async move {
            let read = read_only(function);
            let mut cmd = redis::cmd(if read { "FCALL_RO" } else { "FCALL" });
            cmd.arg(function).arg(keys.len());
            for key in keys {
                cmd.arg(format!("{}{key}", self.prefix));
            }
            cmd.arg(args);
            let mut conn = self.conn()?;
            // A read checks the namespace's epoch as a get does (gets.rs).
            let replied = match self.gets.checked_on(&conn) {
                Some(j) if read => match call(&mut conn, &j.with_epoch(cmd), self.timeout).await {
                    Ok(both) => j.reply(both, function)?,
                    Err(f) => return self.failed(function, f),
                },
                _ => match call(&mut conn, &cmd, self.timeout).await {
                    Ok(reply) => Some(reply),
                    Err(f) => return self.failed(function, f),
                },
            };
            let Some(reply) = replied else {
                return Ok(Outcome::Replied(contextkit_core::wire::lost_reply()));
            };
            let reply = into_wire(reply);
            if function == "ck2_join" {
                self.joined(&reply);
            }
            Ok(Outcome::Replied(reply))
        })
    }

    fn get<'a>(&'a self, id: &'a str) -> StorageFuture<'a, Wire> {
        Box::pin(async move {
            let (conn, runtime) = (self.conn()?, self.runtime()?);
            let key = format!("{}c:{id}", self.prefix);
            self.gets.get(&conn, &runtime, key, self.timeout).await
        })
    }

    fn head(&self) -> StorageFuture<'_, Wire> {
        Box::pin(async move {
            let mut cmd = redis::cmd("HMGET");
            cmd.arg(format!("{}meta", self.prefix))
                .arg("epoch")
                .arg("rev");
            Ok(into_wire(self.read_events(&cmd, Duration::ZERO).await?))
        })
    }

    fn events(&self, after: u64, count: usize, wait_ms: u64) -> StorageFuture<'_, Wire> {
        Box::pin(async move {
            let wait = Duration::from_millis(wait_ms).min(MAX_BLOCK);
            let mut cmd = redis::cmd("XREAD");
            cmd.arg("COUNT").arg(count.min(BATCH));
            if !wait.is_zero() {
                cmd.arg("BLOCK").arg(wait.as_millis() as u64);
            }
            cmd.arg("STREAMS")
                .arg(format!("{}ev", self.prefix))
                .arg(format!("{after}-0"));
            record::stream_entries(&self.read_events(&cmd, wait).await?).map(Wire::List)
        })
    }

    fn sleep(&self, duration: Duration) -> StorageFuture<'_, ()> {
        Box::pin(async move {
            tokio::time::sleep(duration).await;
            Ok(())
        })
    }

    fn fill_random(&self, bytes: &mut [u8]) {
        getrandom::getrandom(bytes).expect("the operating system's randomness");
    }

    fn spawn(&self, task: StorageFuture<'static, ()>) {
        let runtime = self
            .runtime
            .get()
            .cloned()
            .or_else(|| tokio::runtime::Handle::try_current().ok());
        if let Some(runtime) = runtime {
            runtime.spawn(task);
        }
    }

    fn close(&self) {
        // The connections close as the transport drops; the reader's now.
        self.reader.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

/// `INVALID_ARGUMENT` unless Redis keeps every key until it is deleted
/// (`maxmemory-policy noeviction`): a server that evicts keys under memory
/// pressure would drop contexts, operation replies or the event stream
/// silently. (A Redis that does not say, e.g. with `INFO` renamed, is
/// trusted.)
async fn check_eviction(conn: &mut Conn, timeout: Duration) -> Result<()> {
    let mut info = redis::cmd("INFO");
    info.arg("memory");
    let Ok(Ok(reply)) = tokio::time::timeout(timeout, conn.query(&info)).await else {
        return Ok(());
    };
    let text = match &reply {
        Value::Map(nodes) => nodes
            .iter()
            .filter_map(|(_, v)| record::bytes(v))
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect::<Vec<_>>()
            .join("\n"),
        other => record::bytes(other)
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default(),
    };
    match text
        .lines()
        .find_map(|l| l.trim().strip_prefix("maxmemory_policy:"))
    {
        Some(policy) if policy != "noeviction" => Err(ContextError::InvalidArgument(format!(
            "redis evicts keys under memory pressure (maxmemory-policy {policy}): a shared namespace needs noeviction, or it could lose contexts and events silently"
        ))),
        _ => Ok(()),
    }
}
