//! Two managers on one Redis namespace act as one store: what one writes,
//! the other reads and hears, and compare-and-set holds between them. (Two
//! managers in one process here; two processes or machines work the same.)
//!
//! Run it with `cargo run -p contextkit --example shared --features redis`.
//! It uses the server at `CONTEXTKIT_REDIS_URL` if set, else starts a
//! `redis-server` of its own on a free port of 127.0.0.1 (and stops it).

use contextkit::{ContextManager, ManagerConfig, RedisBackend, json};
use futures::StreamExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

#[tokio::main]
async fn main() -> contextkit::Result<()> {
    let (url, _server) = match std::env::var("CONTEXTKIT_REDIS_URL") {
        Ok(url) => (url, None),
        Err(_) => {
            let server = Server::start();
            (server.url(), Some(server))
        }
    };
    let namespace = format!("example-{}", std::process::id());
    let config = ManagerConfig {
        max_contexts: 1_000,
        ..ManagerConfig::default()
    };
    let a = ContextManager::builder(config.clone())
        .connect(RedisBackend::new(&url, &namespace)?)
        .await?;
    let b = ContextManager::builder(config)
        .connect(RedisBackend::new(&url, &namespace)?)
        .await?;
    let mut heard_by_b = b.subscribe();

    let s = a.create_context("cart", json!({ "items": 0 })).await?;
    println!("a created cart v{} (revision {})", s.version, s.revision);
    let err = b
        .create_context("cart", json!({ "items": 99 }))
        .await
        .unwrap_err();
    println!("b's create of the same id: {} ({err})", err.code());

    // Both add items with compare-and-set: no update is lost.
    let add = |m: ContextManager| async move {
        for _ in 0..50 {
            loop {
                let s = m.get_context("cart").await?;
                let items = s.data["items"].as_u64().unwrap_or(0);
                match m
                    .update_context("cart", json!({ "items": items + 1 }), Some(s.version))
                    .await
                {
                    Ok(_) => break,
                    Err(e) if e.code() == "VERSION_CONFLICT" => continue,
                    Err(e) => return Err(e),
                }
            }
        }
        contextkit::Result::Ok(())
    };
    let (ra, rb) = tokio::join!(add(a.clone()), add(b.clone()));
    ra?;
    rb?;
    let s = b.get_context("cart").await?;
    println!(
        "after 50 + 50 increments: items = {}, version {}",
        s.data["items"], s.version
    );

    let first = heard_by_b.next().await;
    println!("b heard a's create: {first:?}");
    a.delete_context("cart").await?;
    println!(
        "deleted; b sees: {}",
        b.get_context("cart").await.unwrap_err().code()
    );
    Ok(())
}

/// A throwaway redis-server on a free port, stopped when dropped.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server on the PATH (or set CONTEXTKIT_REDIS_URL)");
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Self { child, port }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
