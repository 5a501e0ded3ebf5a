//! Reads a namespace's stream into a manager's [`EventFeed`], on its own
//! connection (a blocking read must not hold up the calls of the others).

use super::Settings;
use super::conn::Conn;
use super::record::{array, int, stream_events, text};
use contextkit_core::EventFeed;
use redis::Value;
use std::sync::Arc;
use std::time::Duration;

/// Entries read at most per call.
const BATCH: usize = 1_000;

/// What the reader learned of the namespace before a read.
enum Head {
    /// Its last revision.
    At(u64),
    /// Not the namespace this manager joined: why.
    Lost(String),
}

pub(super) async fn read(settings: Arc<Settings>, epoch: String, feed: EventFeed) {
    let stream = format!("{}ev", settings.prefix);
    // A blocking read waits at most this long.
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
        // The namespace first: still the one joined, never behind what this
        // manager saw (a Redis restored from an older copy hands revisions
        // out again), and how far it is, so that what the read below does
        // not bring is known to be missing.
        let head = match head(c, &settings, &epoch).await {
            Some(Head::Lost(why)) => {
                feed.lost(why);
                return;
            }
            Some(Head::At(rev)) if rev + 1 < next => {
                feed.lost(format!(
                    "namespace {:?} went back to revision {rev} after this manager saw {}: Redis lost acknowledged writes (restored from an older copy, or failed over to a replica that was behind)",
                    settings.namespace,
                    next - 1
                ));
                return;
            }
            Some(Head::At(rev)) => rev,
            None => {
                feed.stalled(true);
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(500));
                continue;
            }
        };
        let mut cmd = redis::cmd("XREAD");
        cmd.arg("COUNT").arg(BATCH);
        // Nothing to wait for if some of it is known to be there already.
        if head < next {
            cmd.arg("BLOCK")
                .arg(u64::try_from(block.as_millis()).unwrap_or(1000));
        }
        cmd.arg("STREAMS")
            .arg(&stream)
            .arg(format!("{}-0", next - 1));
        let read = tokio::time::timeout(settings.timeout + block, c.query(&cmd)).await;
        let Ok(Ok(reply)) = read else {
            feed.stalled(true);
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(500));
            continue;
        };
        pause = Duration::from_millis(10);
        match stream_events(&reply) {
            Ok(read) => {
                // A read that reached the end of the stream (less than a
                // full batch) covers everything committed before it: what
                // did not come with it is gone from the stream.
                let through = if read.entries < BATCH {
                    read.through.max(head)
                } else {
                    read.through
                };
                if !feed.deliver(read.events, through) {
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

/// The namespace's epoch and last revision; `None` when Redis cannot say.
async fn head(conn: &mut Conn, settings: &Settings, epoch: &str) -> Option<Head> {
    let mut cmd = redis::cmd("HMGET");
    cmd.arg(&settings.meta).arg("epoch").arg("rev");
    let reply = tokio::time::timeout(settings.timeout, conn.query(&cmd))
        .await
        .ok()?
        .ok()?;
    let [now, rev] = array(&reply).ok()? else {
        return None;
    };
    let now = match now {
        Value::Nil => "",
        v => text(v).ok()?,
    };
    if now != epoch {
        return Some(Head::Lost(format!(
            "namespace {:?} is not the one this manager joined: Redis lost its data (restarted without persistence, flushed or failed over to an empty replica)",
            settings.namespace
        )));
    }
    int(rev).ok().map(Head::At)
}
