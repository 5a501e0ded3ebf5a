//! The event reader of a [`SharedClient`](super::SharedClient): delivers the
//! namespace's events to the manager's [`EventFeed`] in revision order, and
//! tells it when the namespace is no longer the one joined.

use super::{Inner, Transport};
use crate::shared::EventFeed;
use crate::shared::wire::{self, Wire};
use std::time::Duration;

/// Events read at most per call.
pub(super) const BATCH: usize = 1_000;

/// The first wait after a failed read; it doubles up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(10);
const MAX_PAUSE: Duration = Duration::from_millis(500);

/// The reader cannot reach the store: says so, and waits longer each time
/// (less when the manager is gone meanwhile).
async fn stalled<T: Transport>(s: &Inner<T>, pause: &mut Duration, feed: &EventFeed) {
    feed.stalled(true);
    let _ = super::within(s.transport.sleep(*pause), feed.closed()).await;
    *pause = (*pause * 2).min(MAX_PAUSE);
}

/// The namespace's epoch and last revision; `None` when the store cannot say.
async fn head<T: Transport>(s: &Inner<T>) -> Option<(String, u64)> {
    let head = s.transport.head().await.ok()?;
    match head.items() {
        Ok([epoch, rev]) => Some((
            epoch.text().unwrap_or("").to_owned(),
            rev.int().unwrap_or(0),
        )),
        _ => None,
    }
}

/// Delivers the namespace's events to `feed` until the manager is gone.
pub(super) async fn read_events<T: Transport>(s: &Inner<T>, feed: &EventFeed) {
    let block = s.config.event_wait();
    let mut pause = FIRST_PAUSE;
    while feed.is_open() {
        let Some(next) = feed.next_revision() else {
            return;
        };
        // The namespace first: still the one joined, never behind what this
        // manager saw, and how far it is. Every wait of the reader ends when
        // the manager is gone: the reader holds the transport, which closes
        // only after it.
        let Some(head) = super::within(head(s), feed.closed()).await else {
            return;
        };
        let Some((epoch, rev)) = head else {
            stalled(s, &mut pause, feed).await;
            continue;
        };
        if epoch != s.epoch() {
            feed.lost(wire::lost_message(&s.config.namespace));
            return;
        }
        if rev.saturating_add(1) < next {
            feed.lost(format!(
                "namespace '{}' went back to revision {rev} after this manager saw {}: the store lost acknowledged writes",
                s.config.namespace,
                next - 1
            ));
            return;
        }
        // Nothing to wait for if some of it is known to be there already.
        let wait = if rev < next { block } else { 0 };
        let read = super::within(s.transport.events(next - 1, BATCH, wait), feed.closed());
        let Some(read) = read.await else {
            return;
        };
        let Ok(entries) = read else {
            stalled(s, &mut pause, feed).await;
            continue;
        };
        pause = FIRST_PAUSE;
        let Ok(entries) = entries.items() else {
            stalled(s, &mut pause, feed).await;
            continue;
        };
        let (events, mut through) = decode(entries);
        // A read that reached the end of the log (less than a full batch)
        // covers everything committed before it.
        if entries.len() < BATCH {
            through = through.max(rev);
        }
        // Reads served from memory: the changed contexts go (unless what is
        // kept is as new as the change), or all of them when some
        // revisions in between are not accounted for.
        if let Some(recent) = s.recent() {
            match through.saturating_sub(next - 1) {
                0 => {}
                seen if seen == events.len() as u64 => {
                    recent.forget_older(events.iter().filter_map(|e| e.id().zip(e.revision())));
                }
                _ => recent.forget_all(),
            }
        }
        if !feed.deliver(events, through) {
            return;
        }
    }
}

/// The events of `[revision, type, id, version]` entries, and the last
/// revision among them (an entry that cannot be read is left out, so the
/// manager counts it missed).
fn decode(entries: &[Wire]) -> (Vec<crate::ContextEvent>, u64) {
    let mut events = Vec::with_capacity(entries.len());
    let mut through = 0;
    for entry in entries {
        if let Ok([r, t, i, v]) = entry.items() {
            let revision = r.int().unwrap_or(0);
            through = through.max(revision);
            if let (Ok(t), Ok(i), Ok(v)) = (t.text(), i.text(), v.int())
                && let Ok(event) = wire::event(t, i, v, revision)
            {
                events.push(event);
            }
        }
    }
    (events, through)
}

#[cfg(test)]
mod tests;
