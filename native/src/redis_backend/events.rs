//! Reads a namespace's stream into a manager's [`EventFeed`], on its own
//! connection (a blocking read must not hold up the calls of the others).

use super::Settings;
use super::conn::Conn;
use super::record::{stream_events, text};
use contextkit_core::EventFeed;
use redis::Value;
use std::sync::Arc;
use std::time::Duration;

/// Entries read at most per call.
const BATCH: usize = 1_000;

pub(super) async fn read(settings: Arc<Settings>, epoch: String, feed: EventFeed) {
    let stream = format!("{}ev", settings.prefix);
    // A blocking read waits at most this long, then the namespace is checked.
    let block = (settings.timeout / 2).clamp(Duration::from_millis(10), Duration::from_secs(1));
    let mut conn: Option<Conn> = None;
    let mut pause = Duration::from_millis(10);
    while feed.is_open() {
        let c = match &mut conn {
            Some(c) => c,
            None => match settings.target.connect(settings.timeout + block).await {
                Ok(c) => conn.insert(c),
                Err(_) => {
                    feed.stalled(true);
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(500));
                    continue;
                }
            },
        };
        let Some(next) = feed.next_revision() else {
            return;
        };
        let mut cmd = redis::cmd("XREAD");
        cmd.arg("COUNT")
            .arg(BATCH)
            .arg("BLOCK")
            .arg(u64::try_from(block.as_millis()).unwrap_or(1000))
            .arg("STREAMS")
            .arg(&stream)
            .arg(format!("{}-0", next - 1));
        let read = tokio::time::timeout(settings.timeout + block, c.query(&cmd)).await;
        let events = match read {
            Ok(Ok(reply)) => stream_events(&reply),
            _ => {
                feed.stalled(true);
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(500));
                continue;
            }
        };
        pause = Duration::from_millis(10);
        match events {
            Ok(events) if !events.is_empty() => {
                if !feed.deliver(events) {
                    return;
                }
            }
            Ok(_) => {
                // Nothing new: make sure the namespace is still the one joined.
                feed.stalled(false);
                let mut head = redis::cmd("HGET");
                head.arg(&settings.meta).arg("epoch");
                if let Ok(Ok(reply)) = tokio::time::timeout(settings.timeout, c.query(&head)).await
                    && let Some(now) = current_epoch(&reply)
                    && now != epoch
                {
                    feed.lost(format!(
                        "namespace {:?} is not the one this manager joined: Redis lost its data (restarted without persistence, flushed or failed over to an empty replica)",
                        settings.namespace
                    ));
                    return;
                }
            }
            Err(_) => {
                feed.stalled(true);
                tokio::time::sleep(pause).await;
            }
        }
    }
}

/// The epoch of the namespace; an empty string when it is gone.
fn current_epoch(reply: &Value) -> Option<String> {
    match reply {
        Value::Nil => Some(String::new()),
        v => text(v).ok().map(str::to_owned),
    }
}
