//! A chat-session server on contextkit and tokio, the Rust twin of
//! `examples/session-server.mjs`: one context per session, kept in a
//! directory by `FileStorage`, served over a minimal HTTP/1.1 handler written
//! here on `tokio::net::TcpListener` (one request per connection).
//!
//! ```text
//! POST   /sessions                      create (body: the first data, optional)  201 + ETag
//! GET    /sessions/:id                  read; counts as activity (idle TTL)      200 + ETag
//! PATCH  /sessions/:id                  JSON merge patch (RFC 7396) of the data  200 + ETag
//!                                       with If-Match: 412 unless it is current
//! POST   /sessions/:id/checkpoints      a recovery point                         201
//! POST   /sessions/:id/restore/:point   back to a recovery point's data          200 + ETag
//! DELETE /sessions/:id                  the session and its recovery points      204
//! ```
//!
//! The ETag is the state's revision (store-wide, never reused). Errors are
//! JSON `{ "error": { "code", "message" } }` with the status of their code
//! (`status_of`). Every committed change is logged as one line on stdout:
//! `event {"type":"updated","id":"…","version":3,"revision":7}`.
//!
//! Run it with `cargo run -p contextkit --example session_server -- ./sessions`
//! (or `SESSIONS_DIR`; `SESSION_TTL_MS` sets the idle TTL, default 30
//! minutes; `PORT` the port, default 0: any free one). It listens on
//! 127.0.0.1 and prints `listening on http://127.0.0.1:<port>`.
//! `native/tests/session_server.rs` drives it with a scripted client.

use contextkit::{
    ContextError, ContextManager, ContextState, FileStorage, ManagerConfig, Value, json,
};
use std::hash::{BuildHasher, RandomState};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

const MAX_BODY_BYTES: usize = 1024 * 1024;
const MAX_HEADER_LINES: usize = 100;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("SESSIONS_DIR").ok())
        .unwrap_or_else(|| "./sessions".into());
    let ttl_ms = std::env::var("SESSION_TTL_MS").map_or(Ok(30 * 60 * 1000), |v| v.parse())?;
    let port: u16 = std::env::var("PORT").map_or(Ok(0), |v| v.parse())?;
    let manager = open(Path::new(&dir), ttl_ms).await?;
    let _logger = log_events(&manager, std::io::stdout());
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening on http://{}", listener.local_addr()?);
    serve(listener, manager).await?;
    Ok(())
}

/// Opens the sessions kept in `dir`, each with an idle TTL of `ttl_ms`.
/// Every write is durable when its call returns; records that could not be
/// read (a damaged file) are named on stderr and the rest are served.
pub async fn open(dir: &Path, ttl_ms: u64) -> contextkit::Result<ContextManager> {
    let config = ManagerConfig {
        default_ttl_ms: Some(ttl_ms),
        ..ManagerConfig::default()
    };
    let opened = ContextManager::builder(config)
        .open(FileStorage::new(dir)?)
        .await?;
    for problem in &opened.problems {
        eprintln!("not loaded: {problem}");
    }
    Ok(opened.manager)
}

/// The event logger: one line per committed change, in commit order, on `out`.
/// Ends when the last clone of the manager is dropped.
pub fn log_events(
    manager: &ContextManager,
    mut out: impl Write + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    let mut events = manager.subscribe();
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            let line = serde_json::to_string(&event).expect("events serialize");
            // A logger that cannot write has nowhere to say so.
            let _ = writeln!(out, "event {line}").and_then(|()| out.flush());
        }
    })
}

/// Serves HTTP on `listener` until the task is dropped, one task per connection.
pub async fn serve(listener: TcpListener, manager: ContextManager) -> std::io::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        let manager = manager.clone();
        tokio::spawn(async move {
            // A client that hangs up mid-request or mid-response is its problem.
            let _ = handle(stream, &manager).await;
        });
    }
}

/// A request as the handler sees it.
struct Request {
    method: String,
    path: String,
    if_match: Option<String>,
    body: Vec<u8>,
}

/// A response: status, JSON body, and the state whose revision is the ETag.
struct Response {
    status: u16,
    body: Option<Value>,
    etag_of: Option<u64>,
    location: Option<String>,
}

/// What ends a request early: a store error (its code decides the status)
/// or one of the HTTP layer's own.
enum Failure {
    Context(ContextError),
    Http(u16, &'static str, String),
}

impl From<ContextError> for Failure {
    fn from(e: ContextError) -> Self {
        Failure::Context(e)
    }
}

/// The HTTP status of each code the manager can give.
fn status_of(e: &ContextError) -> u16 {
    match e.code() {
        "NOT_FOUND" => 404,
        "ALREADY_EXISTS" => 409,
        "VERSION_CONFLICT" => 412,
        "INVALID_ARGUMENT" => 400,
        "CAPACITY_EXCEEDED" => 507,
        "STORAGE" => 503,
        _ => 500,
    }
}

async fn handle(stream: TcpStream, manager: &ContextManager) -> std::io::Result<()> {
    let mut stream = BufReader::new(stream);
    let response = match read_request(&mut stream).await? {
        Ok(request) => match route(manager, request).await {
            Ok(response) => response,
            Err(failure) => error_response(failure),
        },
        Err(failure) => error_response(failure),
    };
    let body = response.body.map(|b| b.to_string()).unwrap_or_default();
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nconnection: close\r\ncontent-length: {}\r\n",
        response.status,
        reason(response.status),
        body.len()
    );
    if !body.is_empty() {
        head.push_str("content-type: application/json\r\n");
    }
    if let Some(revision) = response.etag_of {
        head.push_str(&format!("etag: \"{revision}\"\r\n"));
    }
    if let Some(location) = response.location {
        head.push_str(&format!("location: {location}\r\n"));
    }
    head.push_str("\r\n");
    let stream = stream.get_mut();
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

/// Reads the request line, the headers and a body of `content-length` bytes.
/// The outer error is the connection's; the inner one a bad request.
async fn read_request(
    stream: &mut BufReader<TcpStream>,
) -> std::io::Result<Result<Request, Failure>> {
    let bad = |message: &str| Ok(Err(Failure::Http(400, "BAD_REQUEST", message.into())));
    let mut line = String::new();
    stream.read_line(&mut line).await?;
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target), Some(_version)) = (parts.next(), parts.next(), parts.next())
    else {
        return bad("malformed request line");
    };
    let (method, path) = (
        method.to_string(),
        target.split('?').next().unwrap_or("").to_string(),
    );
    let (mut length, mut if_match) = (0, None);
    for _ in 0..MAX_HEADER_LINES {
        line.clear();
        stream.read_line(&mut line).await?;
        let header = line.trim_end();
        if header.is_empty() {
            if length > MAX_BODY_BYTES {
                let message = format!("the body is over {MAX_BODY_BYTES} bytes");
                return Ok(Err(Failure::Http(413, "TOO_LARGE", message)));
            }
            let mut body = vec![0; length];
            stream.read_exact(&mut body).await?;
            return Ok(Ok(Request {
                method,
                path,
                if_match,
                body,
            }));
        }
        let Some((name, value)) = header.split_once(':') else {
            return bad("malformed header");
        };
        let value = value.trim();
        match name.to_ascii_lowercase().as_str() {
            "content-length" => match value.parse() {
                Ok(n) => length = n,
                Err(_) => return bad("bad content-length"),
            },
            "transfer-encoding" => {
                let message = "send a content-length, not a transfer-encoding".into();
                return Ok(Err(Failure::Http(411, "LENGTH_REQUIRED", message)));
            }
            "if-match" => if_match = Some(value.to_string()),
            _ => {}
        }
    }
    bad("too many headers")
}

async fn route(m: &ContextManager, req: Request) -> Result<Response, Failure> {
    let parts: Vec<&str> = req.path.split('/').skip(1).collect();
    let no_route = || {
        Failure::Http(
            404,
            "NO_ROUTE",
            format!("no route {} {}", req.method, req.path),
        )
    };
    let allow = |methods: &[&str]| {
        if methods.contains(&req.method.as_str()) {
            return Ok(());
        }
        let message = format!("{} {}: use {}", req.method, req.path, methods.join(", "));
        Err(Failure::Http(405, "METHOD_NOT_ALLOWED", message))
    };
    match parts.as_slice() {
        ["sessions"] => {
            allow(&["POST"])?;
            let data = if req.body.iter().all(u8::is_ascii_whitespace) {
                json!({})
            } else {
                parse_json(&req.body)?
            };
            let s = m.create_context(&new_session_id(), data).await?;
            let location = format!("/sessions/{}", s.id);
            Ok(Response {
                location: Some(location),
                ..state(201, &s)
            })
        }
        ["sessions", id] => {
            allow(&["GET", "PATCH", "DELETE"])?;
            match req.method.as_str() {
                // A read is activity: touch_context restarts the idle TTL (no
                // new version, revision or event) and returns the state.
                "GET" => Ok(state(200, &m.touch_context(id).await?)),
                "PATCH" => {
                    let patch = parse_json(&req.body)?;
                    Ok(state(
                        200,
                        &patch_session(m, id, &patch, req.if_match.as_deref()).await?,
                    ))
                }
                _ => {
                    m.delete_context(id).await?;
                    Ok(Response {
                        status: 204,
                        body: None,
                        etag_of: None,
                        location: None,
                    })
                }
            }
        }
        ["sessions", id, "checkpoints"] => {
            allow(&["POST"])?;
            let p = m.create_recovery_point(id).await?;
            let body = json!({ "id": p.id, "version": p.version, "createdAtMs": p.created_at_ms });
            Ok(Response {
                status: 201,
                body: Some(body),
                etag_of: None,
                location: None,
            })
        }
        ["sessions", id, "restore", snapshot_id] => {
            allow(&["POST"])?;
            let snapshot_id = snapshot_id.parse().map_err(|_| {
                let message = format!("recovery point '{snapshot_id}' is not a number");
                Failure::Http(400, "INVALID_ARGUMENT", message)
            })?;
            Ok(state(
                200,
                &m.restore_recovery_point(id, snapshot_id).await?,
            ))
        }
        _ => Err(no_route()),
    }
}

async fn patch_session(
    m: &ContextManager,
    id: &str,
    patch: &Value,
    if_match: Option<&str>,
) -> Result<Arc<ContextState>, Failure> {
    let Some(if_match) = if_match.filter(|v| v.trim() != "*") else {
        // No condition: merge into whatever is current, in one step. The
        // closure runs inside the session's critical section, so 16 PATCHes
        // at once all land (no lost update, no retry loop, no 412).
        return Ok(m
            .modify_context(id, |data| merge_patch(data, patch))
            .await?);
    };
    // With If-Match, the write is a compare-and-set on the revision the
    // ETag names: a write that came in between, or a delete and create of
    // the id, moves the revision on and the update fails with
    // VERSION_CONFLICT (412). (A version would not do: it restarts at 1.)
    let current = m.get_context(id).await?;
    let etag = format!("\"{}\"", current.revision);
    if !if_match.split(',').any(|tag| tag.trim() == etag) {
        let message = format!("If-Match {if_match} is not the current revision {etag}");
        return Err(Failure::Http(412, "VERSION_CONFLICT", message));
    }
    let merged = merge_patch(&current.data, patch);
    Ok(m.update_context_if_revision(id, merged, current.revision)
        .await?)
}

/// RFC 7396: objects merge key by key, null removes a key, anything else replaces.
fn merge_patch(target: &Value, patch: &Value) -> Value {
    let Value::Object(patch) = patch else {
        return patch.clone();
    };
    let mut out = match target {
        Value::Object(target) => target.clone(),
        _ => serde_json::Map::new(),
    };
    for (key, value) in patch {
        if value.is_null() {
            out.remove(key);
        } else {
            let merged = merge_patch(out.get(key).unwrap_or(&Value::Null), value);
            out.insert(key.clone(), merged);
        }
    }
    Value::Object(out)
}

fn parse_json(body: &[u8]) -> Result<Value, Failure> {
    serde_json::from_slice(body)
        .map_err(|e| Failure::Http(400, "INVALID_JSON", format!("the body is not JSON: {e}")))
}

/// 128 random bits as hex. std's `RandomState` is seeded from the OS once
/// per thread and keyed anew on each `new()`; a real server would take the
/// bits from `getrandom` or `uuid`.
fn new_session_id() -> String {
    let (a, b) = (
        RandomState::new().hash_one(1u8),
        RandomState::new().hash_one(2u8),
    );
    format!("{a:016x}{b:016x}")
}

fn state(status: u16, s: &Arc<ContextState>) -> Response {
    let body = json!({
        "id": s.id,
        "version": s.version,
        "revision": s.revision,
        "expiresAtMs": s.expires_at_ms,
        "data": s.data,
    });
    Response {
        status,
        body: Some(body),
        etag_of: Some(s.revision),
        location: None,
    }
}

fn error_response(failure: Failure) -> Response {
    let (status, code, message) = match failure {
        Failure::Context(e) => (status_of(&e), e.code(), e.to_string()),
        Failure::Http(status, code, message) => (status, code, message),
    };
    let body = json!({ "error": { "code": code, "message": message } });
    Response {
        status,
        body: Some(body),
        etag_of: None,
        location: None,
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        503 => "Service Unavailable",
        507 => "Insufficient Storage",
        _ => "Internal Server Error",
    }
}
