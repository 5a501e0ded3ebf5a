//! The reader of a [`SharedClient`](super::super::SharedClient) over the
//! scripted transport of the client's tests.

use super::super::tests::{
    Fake, connect, connect_recent, connect_with, int, not_kept, read_under_way, record, settings, t,
};
use crate::shared::wire::{self, Wire};
use crate::{ContextError, ContextEvent, ContextManager, Result, Subscription};
use futures::FutureExt;
use futures::executor::{LocalPool, block_on};
use futures::future::RemoteHandle;
use futures::task::LocalSpawnExt;
use std::time::Duration;

/// A manager on `fake` joined at `joined_at`, a subscriber, and its reader
/// running on `pool` (until the transport stops answering).
fn reading(
    fake: &Fake,
    joined_at: u64,
    pool: &LocalPool,
) -> (ContextManager, Subscription, RemoteHandle<Result<()>>) {
    fake.script().joined_at = joined_at;
    let m = connect(fake);
    let events = m.subscribe();
    let task = fake.script().tasks.pop().expect("a reader");
    let handle = pool.spawner().spawn_local_with_handle(task).unwrap();
    (m, events, handle)
}

fn head(epoch: &str, rev: u64) -> Result<Wire> {
    Ok(Wire::List(vec![t(epoch), t(&rev.to_string())]))
}

/// A read of the log: `(revision, type)` entries of context 'a'.
fn batch(entries: &[(u64, &str)]) -> Result<Wire> {
    let entry = |&(rev, kind): &(u64, &str)| Wire::List(vec![int(rev), t(kind), t("a"), int(rev)]);
    Ok(Wire::List(entries.iter().map(entry).collect()))
}

fn updated(rev: u64) -> ContextEvent {
    ContextEvent::Updated {
        id: "a".into(),
        version: rev,
        revision: rev,
    }
}

fn received(events: &mut Subscription) -> Vec<ContextEvent> {
    std::iter::from_fn(|| events.try_next()).collect()
}

#[test]
fn the_reader_delivers_batches_in_order() {
    let fake = Fake::new(0);
    let mut pool = LocalPool::new();
    // Two revisions are there; then nothing new until the second read,
    // which waits (half the timeout) and gets the third.
    fake.script().heads.extend([head("e1", 2), head("e1", 2)]);
    let batches = [
        batch(&[(1, "updated"), (2, "updated")]),
        batch(&[(3, "updated")]),
    ];
    fake.script().batches.extend(batches);
    let (_m, mut events, _reader) = reading(&fake, 0, &pool);
    pool.run_until_stalled();
    assert_eq!(
        received(&mut events),
        (1..=3).map(updated).collect::<Vec<_>>()
    );
    assert_eq!(fake.script().reads, [(0, 0), (2, 50)]);
}

#[test]
fn a_short_read_covers_the_head_revision() {
    let fake = Fake::new(0);
    let mut pool = LocalPool::new();
    // The log kept 1 and 2 of 5: 3 to 5 were trimmed before this read.
    fake.script().heads.push_back(head("e1", 5));
    fake.script()
        .batches
        .push_back(batch(&[(1, "updated"), (2, "updated")]));
    let (_m, mut events, _reader) = reading(&fake, 0, &pool);
    pool.run_until_stalled();
    let lagged = ContextEvent::Lagged { missed: 3 };
    assert_eq!(received(&mut events), [updated(1), updated(2), lagged]);
}

/// A manager joined at `joined_at` whose reader found `head` and ended.
fn ended_at(head: Result<Wire>, joined_at: u64) -> (Fake, ContextManager) {
    let fake = Fake::new(0);
    let mut pool = LocalPool::new();
    fake.script().heads.push_back(head);
    let (m, _events, reader) = reading(&fake, joined_at, &pool);
    pool.run_until_stalled();
    assert!(
        matches!(reader.now_or_never(), Some(Ok(()))),
        "the reader ended"
    );
    (fake, m)
}

#[test]
fn the_reader_reports_a_changed_epoch() {
    let (fake, m) = ended_at(head("e2", 0), 0);
    let err = block_on(m.get_context("a")).unwrap_err();
    assert_eq!(
        err.to_string(),
        ContextError::storage(wire::lost_message("ns")).to_string()
    );
    assert!(fake.script().reads.is_empty());
}

#[test]
fn the_reader_reports_a_revision_that_went_back() {
    let (_fake, m) = ended_at(head("e1", 3), 5);
    let err = block_on(m.try_list_context_ids()).unwrap_err();
    assert_eq!(err.code(), "STORAGE");
    assert!(
        err.to_string()
            .contains("namespace 'ns' went back to revision 3 after this manager saw 5"),
        "{err}"
    );
}

#[test]
fn an_unreachable_store_stalls_the_reader_with_growing_pauses() {
    let fake = Fake::new(0);
    let mut pool = LocalPool::new();
    let down = || Err(ContextError::storage("down"));
    fake.script().heads.extend((0..8).map(|_| down()));
    // Reachable again: the pause starts over.
    fake.script().heads.extend([head("e1", 0), down()]);
    fake.script().batches.push_back(batch(&[]));
    let (_m, _events, _reader) = reading(&fake, 0, &pool);
    pool.run_until_stalled();
    let ms: Vec<u128> = fake
        .script()
        .sleeps
        .iter()
        .map(Duration::as_millis)
        .collect();
    assert_eq!(ms, [10, 20, 40, 80, 160, 320, 500, 500, 10]);
}

#[test]
fn a_reader_waiting_for_events_ends_when_the_manager_is_gone() {
    let fake = Fake::new(0);
    let mut pool = LocalPool::new();
    // Nothing new: the read waits, and its answer never comes.
    fake.script().heads.push_back(head("e1", 0));
    let (m, events, reader) = reading(&fake, 0, &pool);
    pool.run_until_stalled();
    assert_eq!(fake.script().reads, [(0, 50)]);
    drop((m, events));
    pool.run_until_stalled();
    assert!(reader.now_or_never().is_some(), "the reader ended");
    assert_eq!(fake.script().closed, 1, "and the transport closed");
}

#[test]
fn the_event_wait_is_the_configured_one() {
    let fake = Fake::new(0);
    let mut pool = LocalPool::new();
    fake.script().heads.push_back(head("e1", 0));
    let mut config = settings();
    config.event_wait_ms = Some(30_000);
    let _m = connect_with(
        &fake,
        config,
        ContextManager::builder(crate::ManagerConfig::default()),
    );
    let task = fake.script().tasks.pop().expect("a reader");
    let _reader = pool.spawner().spawn_local_with_handle(task).unwrap();
    pool.run_until_stalled();
    assert_eq!(fake.script().reads, [(0, 30_000)]);
}

#[test]
fn a_reader_on_an_unreachable_store_ends_when_the_manager_is_gone() {
    let fake = Fake::new(0);
    let mut pool = LocalPool::new();
    // The store was down, and its next answer never comes.
    fake.script()
        .heads
        .push_back(Err(ContextError::storage("down")));
    let (m, events, reader) = reading(&fake, 0, &pool);
    pool.run_until_stalled();
    assert_eq!(fake.script().sleeps.len(), 1, "a pause after the failure");
    drop((m, events));
    pool.run_until_stalled();
    assert!(reader.now_or_never().is_some(), "the reader ended");
    assert_eq!(fake.script().closed, 1, "and the transport closed");
}

/// A manager that serves reads up to 100 ms old, with "a" and "b" read
/// once (at revision 1), and its reader on `pool` (which reads `batches`,
/// the namespace at revision `last`, then waits).
fn reading_recent(
    pool: &mut LocalPool,
    last: u64,
    batches: Vec<Result<Wire>>,
) -> (Fake, ContextManager) {
    let (fake, _clock, m) = connect_recent();
    let fake = &fake;
    for id in ["a", "b"] {
        fake.script().records.insert(id.into(), record(1, None));
        block_on(m.get_context(id)).unwrap();
    }
    fake.script()
        .heads
        .extend(batches.iter().map(|_| head("e1", last)));
    fake.script().batches.extend(batches);
    start_reader(fake, pool);
    (fake.clone(), m)
}

#[test]
fn an_event_forgets_the_read_of_its_context() {
    let mut pool = LocalPool::new();
    let batches = vec![batch(&[(1, "created"), (2, "updated")])];
    let (fake, m) = reading_recent(&mut pool, 2, batches);
    for id in ["a", "b", "a"] {
        block_on(m.get_context(id)).unwrap();
    }
    assert_eq!(fake.script().gets, ["a", "b", "a"]);
}

/// The event of the very commit a kept read found (the manager's own
/// create, read back by its reader) leaves it: no read more.
#[test]
fn an_event_of_the_commit_a_read_found_leaves_it() {
    let mut pool = LocalPool::new();
    let (fake, m) = reading_recent(&mut pool, 1, vec![batch(&[(1, "created")])]);
    for id in ["a", "b", "a"] {
        block_on(m.get_context(id)).unwrap();
    }
    assert_eq!(fake.script().gets, ["a", "b"]);
}

#[test]
fn revisions_not_accounted_for_forget_every_read() {
    let mut pool = LocalPool::new();
    // The head says 1, the log has nothing: revision 1 was trimmed.
    let (fake, m) = reading_recent(&mut pool, 1, vec![batch(&[])]);
    for id in ["a", "b"] {
        block_on(m.get_context(id)).unwrap();
    }
    assert_eq!(fake.script().gets, ["a", "b", "a", "b"]);
}

#[test]
fn an_empty_read_of_the_log_forgets_nothing() {
    let mut pool = LocalPool::new();
    let (fake, _clock, m) = connect_recent();
    fake.script().records.insert("a".into(), record(1, None));
    block_on(m.get_context("a")).unwrap();
    fake.script().heads.push_back(head("e1", 0));
    fake.script().batches.push_back(batch(&[]));
    start_reader(&fake, &mut pool);
    block_on(m.get_context("a")).unwrap();
    assert_eq!(fake.script().gets, ["a"]);
}

/// Starts the reader of `fake`'s manager on `pool`.
fn start_reader(fake: &Fake, pool: &mut LocalPool) {
    let task = fake.script().tasks.pop().expect("a reader");
    pool.spawner()
        .spawn_local(async move { drop(task.await) })
        .unwrap();
    pool.run_until_stalled();
}

#[test]
fn a_read_under_way_when_an_event_of_its_context_arrives_is_not_kept() {
    let mut pool = LocalPool::new();
    let (fake, _clock, m) = connect_recent();
    let read = read_under_way(&fake, &m, &mut pool);
    // The event reader reads the create of "a" and an update the read did
    // not see, while the read is on its way.
    fake.script().heads.push_back(head("e1", 2));
    fake.script()
        .batches
        .push_back(batch(&[(1, "created"), (2, "updated")]));
    start_reader(&fake, &mut pool);
    not_kept(&fake, &m, &mut pool, read);
}

/// A read on its way when the event of the very commit it finds comes is
/// kept: the next get is served from memory.
#[test]
fn a_read_under_way_when_the_event_of_what_it_finds_arrives_is_kept() {
    let mut pool = LocalPool::new();
    let (fake, _clock, m) = connect_recent();
    let read = read_under_way(&fake, &m, &mut pool);
    fake.script().heads.push_back(head("e1", 1));
    fake.script().batches.push_back(batch(&[(1, "created")]));
    start_reader(&fake, &mut pool);
    fake.release(&record(1, None));
    pool.run_until_stalled();
    assert_eq!(read.now_or_never().unwrap().unwrap().version, 1);
    fake.script().hold_gets = false;
    assert_eq!(block_on(m.get_context("a")).unwrap().version, 1);
    assert_eq!(fake.script().gets, ["a"]);
}
