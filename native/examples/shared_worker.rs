//! One process of the cross-language shared-mode race: the Rust twin of
//! js-tests/shared/worker.mjs, speaking the same protocol on stdin/stdout
//! (see that file). js-tests/shared/redis.test.mjs runs Node and Rust
//! processes of it against one namespace.
//!
//! `cargo run -p contextkit --features redis --example shared_worker -- URL NAMESPACE MAX_CONTEXTS INCREMENTS SLOTS`

use contextkit::{ContextError, ContextManager, ManagerConfig, RedisBackend, json};
use std::io::{BufRead, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type Events = Arc<Mutex<Vec<(String, String, u64, u64)>>>;

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

#[tokio::main]
async fn main() -> contextkit::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, namespace, max_contexts, increments, slots] = &args[..] else {
        eprintln!("usage: shared_worker URL NAMESPACE MAX_CONTEXTS INCREMENTS SLOTS");
        std::process::exit(2);
    };
    let number = |s: &str| s.parse::<usize>().expect("a number argument");
    let config = ManagerConfig {
        max_contexts: number(max_contexts),
        ..ManagerConfig::default()
    };
    let m = ContextManager::builder(config)
        .connect(RedisBackend::new(url, namespace)?)
        .await?;
    let events: Events = Arc::default();
    let mut sub = m.subscribe();
    let heard = Arc::clone(&events);
    tokio::spawn(async move {
        while let Some(e) = sub.recv().await {
            let kind = format!("{e:?}");
            let kind = kind.split([' ', '{']).next().unwrap_or("").to_lowercase();
            let n = e
                .version()
                .or(match e {
                    contextkit::ContextEvent::Lagged { missed } => Some(missed),
                    _ => None,
                })
                .unwrap_or(0);
            let id = e.id().unwrap_or("").to_owned();
            heard
                .lock()
                .unwrap()
                .push((kind, id, n, e.revision().unwrap_or(0)));
        }
    });
    say("ready");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    while let Some(line) = rx.recv().await {
        if line == "go" {
            let mut conflicts = 0;
            for _ in 0..number(increments) {
                loop {
                    let s = m.get_context("counter").await?;
                    let n = s.data["n"].as_u64().unwrap_or(0);
                    match m
                        .update_context("counter", json!({ "n": n + 1 }), Some(s.version))
                        .await
                    {
                        Ok(_) => break,
                        Err(ContextError::VersionConflict { .. }) => conflicts += 1,
                        Err(e) => return Err(e),
                    }
                }
            }
            let (mut created, mut exists, mut full) = (0, 0, 0);
            for k in 0..number(slots) {
                match m
                    .create_context(&format!("slot-{k}"), json!({ "by": std::process::id() }))
                    .await
                {
                    Ok(_) => created += 1,
                    Err(ContextError::AlreadyExists { .. }) => exists += 1,
                    Err(ContextError::CapacityExceeded { .. }) => full += 1,
                    Err(e) => return Err(e),
                }
            }
            say(&json!({ "done": { "created": created, "exists": exists, "full": full, "conflicts": conflicts } }).to_string());
        } else if let Ok(through) = line.parse::<u64>() {
            let deadline = Instant::now() + Duration::from_secs(10);
            while events.lock().unwrap().last().map_or(0, |e| e.3) < through
                && Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let list: Vec<_> = events
                .lock()
                .unwrap()
                .iter()
                .map(|(t, i, v, r)| json!([t, i, v, r]))
                .collect();
            say(&json!({ "events": list }).to_string());
            break;
        }
    }
    Ok(())
}
