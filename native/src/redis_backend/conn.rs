//! Connections to Redis (one server or a cluster) and the one way a call is
//! made: bounded by the backend's timeout, retried over a new connection
//! after a drop, with the library loaded on demand.

use contextkit_core::ContextError;
use redis::aio::ConnectionManager;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisError, Value};
use std::time::Duration;
use tokio::time::Instant;

/// The Redis Functions library every front-end loads (one source).
pub(crate) const LIBRARY: &str = include_str!("../../redis/contextkit.lua");
/// The version the library reports through `ck2_version` (its
/// `LIBRARY_VERSION` line).
fn library_version() -> &'static str {
    LIBRARY
        .lines()
        .find_map(|l| l.strip_prefix("local LIBRARY_VERSION = '"))
        .and_then(|rest| rest.strip_suffix('\''))
        .expect("the library declares its version")
}

/// A multiplexed connection: cheap to clone, many calls in flight at once.
#[derive(Clone)]
pub(crate) enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

/// Where a backend connects.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    Single(redis::Client),
    /// The initial nodes of a cluster (the client is made with the
    /// timeout, when connecting).
    Cluster(Vec<String>),
}

impl Target {
    /// A connection for calls; its requests time out after `timeout`.
    pub(crate) async fn connect(&self, timeout: Duration) -> std::result::Result<Conn, RedisError> {
        match self {
            Target::Single(client) => {
                let config = redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(timeout))
                    .set_number_of_retries(1)
                    .set_max_delay(Duration::from_millis(200));
                Ok(Conn::Single(
                    ConnectionManager::new_with_config(client.clone(), config).await?,
                ))
            }
            Target::Cluster(urls) => {
                // A slot on the move answers TRYAGAIN for a few milliseconds:
                // retries wait 10 ms and up, never more than a quarter of the
                // call's time (the client's own default starts at 1.28 s).
                let max_wait = (timeout.as_millis() as u64 / 4).max(20);
                let client = redis::cluster::ClusterClientBuilder::new(urls.clone())
                    .connection_timeout(timeout)
                    .response_timeout(timeout)
                    .min_retry_wait(10)
                    .max_retry_wait(max_wait)
                    .build()?;
                Ok(Conn::Cluster(client.get_async_connection().await?))
            }
        }
    }
}

impl Conn {
    pub(crate) async fn query(&mut self, cmd: &Cmd) -> std::result::Result<Value, RedisError> {
        match self {
            Conn::Single(c) => cmd.query_async(c).await,
            Conn::Cluster(c) => cmd.query_async(c).await,
        }
    }
}

/// What [`call`] sends: a command, or a pipeline of them (its replies as
/// one list).
pub(crate) trait Request {
    fn run(&self, conn: &mut Conn) -> impl Future<Output = redis::RedisResult<Value>> + Send;
}

impl Request for Cmd {
    fn run(&self, conn: &mut Conn) -> impl Future<Output = redis::RedisResult<Value>> + Send {
        conn.query(self)
    }
}

impl Request for Pipeline {
    async fn run(&self, conn: &mut Conn) -> redis::RedisResult<Value> {
        match conn {
            Conn::Single(c) => self.query_async(c).await,
            Conn::Cluster(c) => self.query_async(c).await,
        }
    }
}

/// Whether a failed call may be tried again: the connection dropped or timed
/// out (the call may or may not have run), or the server is not ready yet.
pub(crate) fn retriable(e: &RedisError) -> bool {
    const NOT_READY: [&str; 5] = ["LOADING", "TRYAGAIN", "CLUSTERDOWN", "MASTERDOWN", "BUSY"];
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_cluster_error()
        || e.code().is_some_and(|code| NOT_READY.contains(&code))
        // A pipeline's error has a code only where redis-rs has a kind for it
        // (not `BUSY`): look at the replies that failed.
        || e.clone()
            .into_server_errors()
            .is_some_and(|failed| failed.iter().any(|(_, s)| NOT_READY.contains(&s.code())))
        || slot_moving(e)
}

/// Whether a function was refused because its namespace's slot is being
/// migrated: on the source node, Redis stops a function at its first key
/// that is not there (as it would ASK a plain command); every write reads
/// its new operation key before its first change, so it stopped before
/// changing anything there. Tried again, it runs once the slot has moved.
fn slot_moving(e: &RedisError) -> bool {
    e.to_string()
        .contains("Script attempted to access a non local key")
}

/// Whether Redis lacks the library (a new server, or one that lost it).
pub(crate) fn missing_library(e: &RedisError) -> bool {
    e.to_string().contains("Function not found")
}

/// `STORAGE` "redis <what>: <e>", with `e` as the error's source.
pub(crate) fn storage(what: &str, e: RedisError) -> ContextError {
    ContextError::storage_from(format!("redis {what}: {e}"), e)
}

/// `STORAGE` with `message`, whose source is `last` (the last error a call
/// without an answer saw), if there was one.
pub(crate) fn caused_by(message: String, last: Option<RedisError>) -> ContextError {
    match last {
        Some(e) => ContextError::storage_from(message, e),
        None => ContextError::storage(message),
    }
}

/// Loads the library unless the server has this version (or a newer one)
/// already; on a cluster, on every primary that lacks it.
pub(crate) async fn load_library(conn: &mut Conn) -> std::result::Result<(), RedisError> {
    let mut load = redis::cmd("FUNCTION");
    load.arg("LOAD").arg("REPLACE").arg(LIBRARY);
    let mut version = redis::cmd("FCALL_RO");
    version.arg("ck2_version").arg(0);
    if let Conn::Cluster(c) = conn {
        return load_on_primaries(c, &version, &load).await;
    }
    match conn.query(&version).await {
        Ok(v) if up_to_date(&v) => Ok(()),
        Ok(_) => conn.query(&load).await.map(drop),
        Err(e) if missing_library(&e) => conn.query(&load).await.map(drop),
        Err(e) => Err(e),
    }
}

/// Every primary needs the library (a namespace may live on any of them),
/// and one node's version says nothing of the others': each is asked, and
/// each whose version is older, or that has none, gets it.
async fn load_on_primaries(
    c: &mut ClusterConnection,
    version: &Cmd,
    load: &Cmd,
) -> std::result::Result<(), RedisError> {
    use redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo, SingleNodeRoutingInfo};
    let bad = |what| RedisError::from((redis::ErrorKind::Client, what));
    // (No response policy: a map of each node's address to its reply or error.)
    let everywhere = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None));
    let Value::Map(nodes) = c.route_command(version.clone(), everywhere).await? else {
        return Err(bad("a reply of every primary that is not a map"));
    };
    for (address, reply) in nodes {
        if up_to_date(&reply) {
            continue;
        }
        let (host, port) = crate::redis_backend::record::text(&address)
            .ok()
            .and_then(|a| a.rsplit_once(':'))
            .and_then(|(h, p)| Some((h.to_owned(), p.parse().ok()?)))
            .ok_or_else(|| bad("a node address that is not host:port"))?;
        let node = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress { host, port });
        c.route_command(load.clone(), node).await?;
    }
    Ok(())
}

/// Whether `reply` to `ck2_version` names this library's version or a newer
/// one: a newer release's library (more operations, the same format) stays,
/// since replacing it would take operations from the processes that use them.
fn up_to_date(reply: &Value) -> bool {
    let number = |v: &str| v.parse::<u64>().unwrap_or(0);
    crate::redis_backend::record::text(reply).is_ok_and(|v| number(v) >= number(library_version()))
}

/// Why [`call`] failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Redis answered with an error.
    Refused(RedisError),
    /// No answer within the timeout (the outcome of a write is unknown); the
    /// last error seen, if any.
    NoAnswer(Option<RedisError>),
}

impl Failure {
    pub(crate) fn into_error(self, what: &str, timeout: Duration) -> ContextError {
        match self {
            Failure::Refused(e) => storage(what, e),
            Failure::NoAnswer(last) => {
                let message = format!(
                    "redis {what}: no answer within {} ms{}",
                    timeout.as_millis(),
                    last.as_ref()
                        .map(|e| format!(" (last error: {e})"))
                        .unwrap_or_default()
                );
                caused_by(message, last)
            }
        }
    }
}

/// Runs `cmd` until it answers, for at most `timeout`: a dropped connection
/// or a timeout is tried again (callers make that safe: reads, or writes
/// carrying an operation id), a missing library is loaded. A refused
/// connection (no server there) is tried once more at once (the refusal
/// may be that of a reconnection made while the server was down, which the
/// connection hands to the first call after it came back), then ends the
/// call: `Refused` if no try may have reached a server (nothing was
/// applied: one server's tries, all refused), else `NoAnswer`.
pub(crate) async fn call(
    conn: &mut Conn,
    cmd: &impl Request,
    timeout: Duration,
) -> std::result::Result<Value, Failure> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(5);
    let mut last = None;
    let mut refused_once = false;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Failure::NoAnswer(last));
        }
        match tokio::time::timeout(left, cmd.run(conn)).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(e)) if missing_library(&e) => {
                let left = deadline.saturating_duration_since(Instant::now());
                match tokio::time::timeout(left, load_library(conn)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) if !retriable(&e) => return Err(Failure::Refused(e)),
                    Ok(Err(e)) => last = Some(e),
                    Err(_) => return Err(Failure::NoAnswer(Some(e))),
                }
                continue;
            }
            Ok(Err(e)) if e.is_connection_refusal() => {
                // One server's connection never retries by itself: nothing
                // was sent. A cluster's may have sent it to a node before.
                let single = matches!(conn, Conn::Single(_));
                if single && !std::mem::replace(&mut refused_once, true) {
                    continue;
                }
                return Err(if single && last.is_none() {
                    Failure::Refused(e)
                } else {
                    Failure::NoAnswer(Some(e))
                });
            }
            Ok(Err(e)) if !retriable(&e) => return Err(Failure::Refused(e)),
            Ok(Err(e)) => last = Some(e),
            Err(_) => return Err(Failure::NoAnswer(last)),
        }
        let left = deadline.saturating_duration_since(Instant::now());
        tokio::time::sleep(pause.min(left)).await;
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}
