//! The session-server example (`examples/session_server.rs`, compiled here as
//! a module) driven by a scripted client over `TcpStream`: create, read with
//! ETag and idle TTL, 16 concurrent PATCHes, If-Match, input errors,
//! checkpoint, restore, delete, a restart on the same directory, and the
//! event log it wrote, line by line. The same flow as
//! `js-tests/examples/session-server.test.mjs` runs against the JS example.

#[allow(dead_code)]
#[path = "../examples/session_server.rs"]
mod session_server;

use contextkit::Value;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// The event log, in memory.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Log {
    /// The `event` lines written so far, parsed.
    fn events(&self) -> Vec<Value> {
        let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|line| serde_json::from_str(line.strip_prefix("event ").expect(line)).unwrap())
            .collect()
    }
}

struct Server {
    addr: SocketAddr,
    log: Log,
    serving: JoinHandle<std::io::Result<()>>,
    logging: JoinHandle<()>,
}

impl Server {
    async fn start(dir: &Path) -> Server {
        let manager = session_server::open(dir, 60_000).await.unwrap();
        let log = Log::default();
        let logging = session_server::log_events(&manager, log.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let serving = tokio::spawn(session_server::serve(listener, manager));
        Server {
            addr,
            log,
            serving,
            logging,
        }
    }

    /// Stops serving and waits until the manager is gone (its logger ends
    /// with the last clone), so the directory can be opened again.
    async fn stop(self) -> Log {
        self.serving.abort();
        assert!(self.serving.await.unwrap_err().is_cancelled());
        tokio::time::timeout(Duration::from_secs(10), self.logging)
            .await
            .expect("the manager outlived the server")
            .unwrap();
        self.log
    }

    /// One request; the reply's status, ETag, Location and JSON body (Null when empty).
    async fn call(&self, method: &str, path: &str, if_match: Option<&str>, body: &str) -> Reply {
        let mut stream = TcpStream::connect(self.addr).await.unwrap();
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
            body.len()
        );
        if let Some(tag) = if_match {
            request.push_str(&format!("if-match: {tag}\r\n"));
        }
        request.push_str("\r\n");
        request.push_str(body);
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.unwrap();
        let raw = String::from_utf8(raw).unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").expect("a header section");
        let mut lines = head.lines();
        let status = lines
            .next()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let header = |name: &str| {
            head.lines()
                .skip(1)
                .filter_map(|l| l.split_once(": "))
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.to_string())
        };
        let length: usize = header("content-length").unwrap().parse().unwrap();
        assert_eq!(body.len(), length, "content-length");
        Reply {
            status,
            etag: header("etag"),
            location: header("location"),
            body: if body.is_empty() {
                Value::Null
            } else {
                serde_json::from_str(body).unwrap()
            },
        }
    }
}

struct Reply {
    status: u16,
    etag: Option<String>,
    location: Option<String>,
    body: Value,
}

impl Reply {
    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_scripted_client_against_the_session_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = Arc::new(Server::start(dir.path()).await);

    // Create: 201, the ETag is the revision, Location names the session.
    let created = server
        .call("POST", "/sessions", None, r#"{"user":"ada"}"#)
        .await;
    assert_eq!(created.status, 201);
    let id = created.body["id"].as_str().unwrap().to_string();
    let session = format!("/sessions/{id}");
    assert_eq!(created.location.as_deref(), Some(session.as_str()));
    let etag = created.etag.clone().unwrap();
    assert_eq!(etag, format!("\"{}\"", created.body["revision"]));
    assert_eq!(created.body["version"], 1);
    assert_eq!(created.body["data"], serde_json::json!({ "user": "ada" }));

    // Read: same ETag; a later read pushes the expiry on (a touch: no new version, revision or event).
    let read = server.call("GET", &session, None, "").await;
    assert_eq!(
        (read.status, read.etag.as_deref()),
        (200, Some(etag.as_str()))
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    let reread = server.call("GET", &session, None, "").await;
    assert_eq!(reread.etag.as_deref(), Some(etag.as_str()));
    assert_eq!(reread.body["version"], 1);
    let expiry = |r: &Reply| r.body["expiresAtMs"].as_u64().unwrap();
    assert!(
        expiry(&reread) > expiry(&read),
        "a read restarts the idle TTL"
    );

    // 16 PATCHes at once, each adding one turn: all land, none is refused.
    let patches: Vec<_> = (0..16)
        .map(|i| {
            let (server, session) = (server.clone(), session.clone());
            tokio::spawn(async move {
                let body = format!(r#"{{"turns":{{"{i}":"message {i}"}}}}"#);
                server.call("PATCH", &session, None, &body).await
            })
        })
        .collect();
    let mut versions = Vec::new();
    for patch in patches {
        let reply = patch.await.unwrap();
        assert_eq!(reply.status, 200, "{}", reply.body);
        versions.push(reply.body["version"].as_u64().unwrap());
    }
    versions.sort_unstable();
    assert_eq!(versions, (2..=17).collect::<Vec<u64>>());
    let counted = server.call("GET", &session, None, "").await;
    assert_eq!(counted.body["version"], 17);
    let turns = counted.body["data"]["turns"].as_object().unwrap();
    assert_eq!(turns.len(), 16);
    for i in 0..16 {
        assert_eq!(turns[&i.to_string()], format!("message {i}"));
    }
    assert_eq!(counted.body["data"]["user"], "ada");

    // If-Match: a stale ETag is refused with 412 and changes nothing; the current one merges (null removes a key).
    let stale = server
        .call("PATCH", &session, Some(&etag), r#"{"user":"eve"}"#)
        .await;
    assert_eq!((stale.status, stale.code()), (412, "VERSION_CONFLICT"));
    let current = counted.etag.clone().unwrap();
    let matched = server
        .call(
            "PATCH",
            &session,
            Some(&current),
            r#"{"user":null,"title":"chat"}"#,
        )
        .await;
    assert_eq!(matched.status, 200);
    assert_eq!(matched.body["version"], 18);
    assert_ne!(matched.etag.as_deref(), Some(current.as_str()));
    assert!(matched.body["data"].get("user").is_none());
    assert_eq!(matched.body["data"]["title"], "chat");

    // Input errors map to 400 and change nothing.
    let not_object = server.call("PATCH", &session, None, "[1,2]").await;
    assert_eq!(
        (not_object.status, not_object.code()),
        (400, "INVALID_ARGUMENT")
    );
    let not_json = server.call("PATCH", &session, None, r#"{"turns":"#).await;
    assert_eq!((not_json.status, not_json.code()), (400, "INVALID_JSON"));
    let bad_point = server
        .call("POST", &format!("{session}/restore/first"), None, "")
        .await;
    assert_eq!(bad_point.status, 400);
    assert_eq!(
        server.call("GET", &session, None, "").await.body["version"],
        18
    );

    // Checkpoint, a bad edit, restore: the checkpoint's data as a new version.
    let snapshot = server
        .call("POST", &format!("{session}/checkpoints"), None, "")
        .await;
    assert_eq!(snapshot.status, 201);
    assert_eq!(snapshot.body["version"], 18);
    let oops = server
        .call("PATCH", &session, None, r#"{"turns":null,"title":"oops"}"#)
        .await;
    assert_eq!(oops.status, 200);
    let restore = format!("{session}/restore/{}", snapshot.body["id"]);
    let restored = server.call("POST", &restore, None, "").await;
    assert_eq!(restored.status, 200);
    assert_eq!(restored.body["version"], 20);
    assert_eq!(restored.body["data"], matched.body["data"]);
    assert_eq!(
        restored.etag.unwrap(),
        format!("\"{}\"", restored.body["revision"])
    );
    let unknown = server
        .call("POST", &format!("{session}/restore/999999"), None, "")
        .await;
    assert_eq!(unknown.status, 404);

    // Delete: 204, then 404 for everything on it.
    assert_eq!(server.call("DELETE", &session, None, "").await.status, 204);
    for (method, path, body) in [
        ("GET", session.clone(), ""),
        ("PATCH", session.clone(), r#"{"a":1}"#),
        ("DELETE", session.clone(), ""),
        ("POST", format!("{session}/checkpoints"), ""),
    ] {
        let reply = server.call(method, &path, None, body).await;
        assert_eq!(
            (reply.status, reply.code()),
            (404, "NOT_FOUND"),
            "{method} after delete"
        );
    }
    assert_eq!(server.call("GET", "/nowhere", None, "").await.status, 404);
    assert_eq!(server.call("PUT", &session, None, "").await.status, 405);

    // A session outlives the server: FileStorage keeps it in the directory.
    let kept = server
        .call("POST", "/sessions", None, r#"{"user":"grace"}"#)
        .await;
    assert_eq!(kept.status, 201);
    let kept_id = kept.body["id"].as_str().unwrap().to_string();

    // The event log: one line per commit, in commit order, with the revisions the client saw.
    let log = Arc::into_inner(server)
        .expect("no request in flight")
        .stop()
        .await;
    let events = log.events();
    let mut expected = vec![("created", id.as_str(), 1)];
    expected.extend((2..=19).map(|v| ("updated", id.as_str(), v)));
    expected.extend([("restored", id.as_str(), 20), ("deleted", id.as_str(), 20)]);
    expected.push(("created", kept_id.as_str(), 1));
    let seen: Vec<(&str, &str, u64)> = events
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap(),
                e["id"].as_str().unwrap(),
                e["version"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(seen, expected);
    let revisions: Vec<u64> = events
        .iter()
        .map(|e| e["revision"].as_u64().unwrap())
        .collect();
    assert!(
        revisions.windows(2).all(|w| w[0] < w[1]),
        "revisions increase: {revisions:?}"
    );
    assert_eq!(events[0]["revision"], created.body["revision"]);
    assert_eq!(events[17]["revision"], matched.body["revision"]);
    assert_eq!(events[19]["revision"], restored.body["revision"]);
    assert_eq!(events[21]["revision"], kept.body["revision"]);

    let server = Server::start(dir.path()).await;
    let reopened = server
        .call("GET", &format!("/sessions/{kept_id}"), None, "")
        .await;
    assert_eq!(reopened.status, 200);
    assert_eq!(reopened.etag, kept.etag);
    assert_eq!(
        reopened.body["data"],
        serde_json::json!({ "user": "grace" })
    );
    assert_eq!(server.call("GET", &session, None, "").await.status, 404);
    assert!(server.stop().await.events().is_empty(), "reads log nothing");
}
