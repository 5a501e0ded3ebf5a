//! A [`SharedClient`] over a scripted in-memory transport: what it asks the
//! store, and what it makes of the answers (the reader's tests, in
//! `reader/tests.rs`, use the same transport).

use super::*;
use crate::ContextManager;
use futures::executor::{LocalPool, block_on};
use futures::task::LocalSpawnExt;
use serde_json::json;
use std::collections::VecDeque;
use std::sync::Mutex;

/// One call of the library: function, keys, args.
type Call = (String, Vec<String>, Vec<String>);

/// What the fake transport was asked, and what it answers.
#[derive(Default)]
pub(super) struct Script {
    /// The revision `ck2_join` reports.
    pub(super) joined_at: u64,
    /// Every call of the library (`open` included), in order.
    calls: Vec<Call>,
    /// Answers to the calls after `ck2_join`, in order.
    answers: VecDeque<Result<Outcome>>,
    /// Answers to `head` and `events`: once they run out, the transport
    /// never answers again.
    pub(super) heads: VecDeque<Result<Wire>>,
    pub(super) batches: VecDeque<Result<Wire>>,
    /// `(after, wait_ms)` of every `events` read.
    pub(super) reads: Vec<(u64, u64)>,
    pub(super) sleeps: Vec<Duration>,
    pub(super) tasks: Vec<StorageFuture<'static, ()>>,
    /// Functions whose calls never get an answer.
    hang: Vec<&'static str>,
    /// The next random byte.
    random: u8,
    /// The records `get` finds (none: nil), and the ids it was asked for.
    pub(super) records: std::collections::HashMap<String, String>,
    pub(super) gets: Vec<String>,
    /// Hold every `get` until [`Fake::release`] answers it.
    pub(super) hold_gets: bool,
    held: Vec<futures::channel::oneshot::Sender<Result<Wire>>>,
    pub(super) closed: usize,
}

#[derive(Clone)]
pub(super) struct Fake(Arc<Mutex<Script>>);

impl Fake {
    pub(super) fn new(seed: u8) -> Self {
        Self(Arc::new(Mutex::new(Script {
            random: seed,
            ..Script::default()
        })))
    }

    pub(super) fn script(&self) -> std::sync::MutexGuard<'_, Script> {
        // A failed assertion that held it must not abort the test run.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Answers the first held `get` with `record`.
    pub(super) fn release(&self, record: &str) {
        let answer = self.script().held.remove(0);
        let _ = answer.send(Ok(t(record)));
    }

    fn answer(&self, answers: impl IntoIterator<Item = Result<Outcome>>) {
        self.script().answers.extend(answers);
    }

    fn calls(&self, function: &str) -> Vec<Call> {
        let calls = self.script().calls.clone();
        calls.into_iter().filter(|c| c.0 == function).collect()
    }
}

fn ready<'a, T: Send + 'a>(value: Result<T>) -> StorageFuture<'a, T> {
    Box::pin(std::future::ready(value))
}

/// The next scripted answer, or one that never comes.
fn next_or_never<'a>(queue: &mut VecDeque<Result<Wire>>) -> StorageFuture<'a, Wire> {
    match queue.pop_front() {
        Some(answer) => ready(answer),
        None => Box::pin(std::future::pending()),
    }
}

impl Transport for Fake {
    fn open(&self) -> StorageFuture<'_, ()> {
        self.script().calls.push(("open".into(), vec![], vec![]));
        ready(Ok(()))
    }

    fn call<'a>(
        &'a self,
        function: &'a str,
        keys: &'a [String],
        args: &'a [String],
    ) -> StorageFuture<'a, Outcome> {
        let mut s = self.script();
        s.calls
            .push((function.into(), keys.to_vec(), args.to_vec()));
        if s.hang.contains(&function) {
            return Box::pin(std::future::pending());
        }
        if function == "ck2_join" {
            // A new namespace, made with the configuration asked for.
            let reply = Wire::List(vec![t("e1"), t(&args[1]), Wire::Int(s.joined_at as i64)]);
            return ready(Ok(Outcome::Replied(reply)));
        }
        let answer = s.answers.pop_front();
        ready(answer.unwrap_or_else(|| Err(ContextError::storage(format!("{function}?")))))
    }

    fn get<'a>(&'a self, id: &'a str) -> StorageFuture<'a, Wire> {
        let mut s = self.script();
        s.gets.push(id.to_owned());
        if s.hold_gets {
            let (answer, answered) = futures::channel::oneshot::channel();
            s.held.push(answer);
            return Box::pin(async move { answered.await.unwrap_or(Ok(Wire::Nil)) });
        }
        ready(Ok(s.records.get(id).map_or(Wire::Nil, |r| t(r))))
    }

    fn head(&self) -> StorageFuture<'_, Wire> {
        next_or_never(&mut self.script().heads)
    }

    fn events(&self, after: u64, count: usize, wait_ms: u64) -> StorageFuture<'_, Wire> {
        assert_eq!(count, reader::BATCH);
        let mut s = self.script();
        s.reads.push((after, wait_ms));
        next_or_never(&mut s.batches)
    }

    fn sleep(&self, duration: Duration) -> StorageFuture<'_, ()> {
        self.script().sleeps.push(duration);
        ready(Ok(()))
    }

    fn fill_random(&self, bytes: &mut [u8]) {
        let mut s = self.script();
        for b in bytes {
            *b = s.random;
            s.random = s.random.wrapping_add(1);
        }
    }

    fn spawn(&self, task: StorageFuture<'static, ()>) {
        self.script().tasks.push(task);
    }

    fn close(&self) {
        self.script().closed += 1;
    }
}

pub(super) fn t(s: &str) -> Wire {
    Wire::Text(s.into())
}

pub(super) fn int(n: u64) -> Wire {
    Wire::Int(n as i64)
}

fn parse(text: &str, _max_depth: usize) -> std::result::Result<serde_json::Value, String> {
    serde_json::from_str(text).map_err(|e| e.to_string())
}

/// Timeout 100 ms, so a write's reply is kept 2 × 100 + 500 ms.
pub(super) fn settings() -> ClientConfig {
    let mut cfg = ClientConfig::new("ns", parse);
    cfg.timeout_ms = 100;
    cfg.operation_ttl_ms = 100;
    cfg.event_retention = 10;
    cfg
}

/// A manager on `fake` (its reader is not running).
pub(super) fn connect(fake: &Fake) -> ContextManager {
    connect_with(
        fake,
        settings(),
        ContextManager::builder(ManagerConfig::default()),
    )
}

pub(super) fn connect_with(
    fake: &Fake,
    config: ClientConfig,
    builder: crate::ManagerBuilder,
) -> ContextManager {
    block_on(builder.connect(SharedClient::new(fake.clone(), config))).unwrap()
}

/// The `ck2_write` reply of the create of `id` at revision `rev`.
fn created(id: &str, rev: u64) -> Outcome {
    let state = [int(1), int(rev), t("5"), t("5"), t(""), t(""), t("{}")];
    let events = [t("created"), t(id), int(1), int(rev)];
    Outcome::Replied(Wire::List(vec![
        t("OK"),
        Wire::List(state.to_vec()),
        Wire::List(events.to_vec()),
        int(1),
    ]))
}

fn unknown(why: &str) -> Result<Outcome> {
    Ok(Outcome::Unknown(ContextError::storage(why)))
}

#[test]
fn a_write_without_an_answer_returns_the_reply_its_settle_finds() {
    let fake = Fake::new(0);
    let m = connect(&fake);
    fake.answer([unknown("timed out"), Ok(created("a", 1))]);
    let state = block_on(m.create_context("a", json!({}))).unwrap();
    assert_eq!((state.version, state.revision), (1, 1));
    let [(_, keys, args)] = &fake.calls("ck2_write")[..] else {
        panic!("one write");
    };
    // [op, epoch, op id, reply TTL, event retention, time, id, ...]
    assert_eq!(
        args[..6],
        ["create", "e1", args[2].as_str(), "700", "10", ""]
    );
    assert_eq!(keys[4], format!("op:{}", args[2]));
    // The settle names the write's operation, and keeps its reply as long.
    let [(_, settle_keys, settle_args)] = &fake.calls("ck2_settle")[..] else {
        panic!("one settle");
    };
    assert_eq!(settle_keys[..], ["meta".to_owned(), keys[4].clone()]);
    assert_eq!(settle_args[..], ["700"]);
}

#[test]
fn a_write_its_settle_aborted_was_not_applied() {
    let fake = Fake::new(0);
    let m = connect(&fake);
    let aborted = Wire::List(vec![t("ABORTED"), Wire::Nil, Wire::Nil]);
    fake.answer([unknown("timed out"), Ok(Outcome::Replied(aborted))]);
    let err = block_on(m.create_context("a", json!({}))).unwrap_err();
    assert_eq!(err.code(), "STORAGE");
    assert!(
        err.to_string()
            .contains("no answer within 100 ms; the write was not applied"),
        "{err}"
    );
}

#[test]
fn a_write_whose_settle_fails_too_has_an_unknown_outcome() {
    let fake = Fake::new(0);
    let m = connect(&fake);
    let refused = Err(ContextError::storage("down"));
    let why = "ck2_write: no answer within 100 ms (socket closed)";
    fake.answer([unknown(why), unknown("again")]);
    fake.answer([unknown(why), refused]);
    for _ in 0..2 {
        let err = block_on(m.create_context("a", json!({}))).unwrap_err();
        assert_eq!(err.code(), "STORAGE");
        assert!(
            err.to_string().ends_with(
                "ck2_write: no answer within 100 ms (socket closed); outcome unknown (the write may have been applied)"
            ),
            "{err}"
        );
    }
    assert_eq!(fake.calls("ck2_settle").len(), 2);
}

#[test]
fn a_refused_write_is_not_settled() {
    let fake = Fake::new(0);
    let m = connect(&fake);
    fake.answer([Err(ContextError::InvalidArgument("bad".into()))]);
    let err = block_on(m.create_context("a", json!({}))).unwrap_err();
    assert_eq!(err.code(), "INVALID_ARGUMENT");
    assert!(fake.calls("ck2_settle").is_empty());
}

#[test]
fn operation_ids_are_unique_per_manager() {
    let ops = |seed| {
        let fake = Fake::new(seed);
        let m = connect(&fake);
        for (rev, id) in (1..).zip(["a", "b", "c"]) {
            fake.answer([Ok(created(id, rev))]);
            block_on(m.create_context(id, json!({}))).unwrap();
        }
        let calls = fake.calls("ck2_write");
        calls
            .into_iter()
            .map(|(_, _, args)| args[2].clone())
            .collect::<Vec<_>>()
    };
    let (one, other) = (ops(0), ops(100));
    let prefix = |op: &String| op[..17].to_owned();
    for ops in [&one, &other] {
        assert_eq!(ops.len(), 3);
        assert!(
            ops[0] != ops[1] && ops[1] != ops[2] && ops[0] != ops[2],
            "{ops:?}"
        );
        assert!(
            ops.iter().all(|op| prefix(op) == prefix(&ops[0])),
            "{ops:?}"
        );
    }
    // 64 random bits tell the managers apart.
    assert_ne!(prefix(&one[0]), prefix(&other[0]));
}

#[test]
fn the_transport_closes_once_the_manager_and_its_reader_are_gone() {
    let fake = Fake::new(0);
    let mut pool = LocalPool::new();
    let m = connect(&fake);
    let reader = fake.script().tasks.pop().expect("a reader");
    drop(m);
    assert_eq!(fake.script().closed, 0, "the reader still holds it");
    pool.spawner()
        .spawn_local(async { reader.await.unwrap() })
        .unwrap();
    pool.run_until_stalled();
    assert_eq!(fake.script().closed, 1);
}

#[test]
fn backoff_waits_less_than_its_bound() {
    let fake = Fake::new(7);
    let client = SharedClient::new(fake.clone(), settings());
    for attempt in 1..=10 {
        block_on(client.backoff(attempt)).unwrap();
    }
    let sleeps = fake.script().sleeps.clone();
    assert_eq!(sleeps.len(), 10, "every attempt waits");
    let bounds = (1..=10_u32).map(|a| Duration::from_micros(400 << (a - 1).min(7)));
    for (wait, bound) in sleeps.iter().zip(bounds) {
        assert!(*wait < bound, "{wait:?} of {bound:?}");
    }
    // The bound grows: later attempts may wait longer than the first could.
    let first = Duration::from_micros(400);
    assert!(sleeps[7..].iter().any(|w| *w >= first), "{sleeps:?}");
}

#[test]
fn a_settle_without_an_answer_gives_up_after_its_bound() {
    let fake = Fake::new(0);
    let m = connect(&fake);
    fake.script().hang.push("ck2_settle");
    fake.answer([unknown("ck2_write: no answer within 100 ms")]);
    let err = block_on(m.create_context("a", json!({}))).unwrap_err();
    assert!(
        err.to_string().ends_with(
            "ck2_write: no answer within 100 ms; outcome unknown (the write may have been applied)"
        ),
        "{err}"
    );
    // The settle waited as long as the timeout, below the 500 ms it may take.
    assert_eq!(fake.script().sleeps, [Duration::from_millis(100)]);
}

#[test]
fn an_unknown_outcome_keeps_the_transports_error_as_its_source() {
    let fake = Fake::new(0);
    let m = connect(&fake);
    let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
    let cause = ContextError::storage_from("redis ck2_write: no answer", io);
    fake.answer([Ok(Outcome::Unknown(cause)), unknown("again")]);
    let err = block_on(m.create_context("a", json!({}))).unwrap_err();
    let source = std::error::Error::source(&err).expect("a source");
    assert_eq!(source.to_string(), "reset");
}

#[test]
fn a_write_that_finds_the_namespace_lost_fails_every_later_call() {
    let fake = Fake::new(0);
    let m = connect(&fake);
    let lost = Wire::List(vec![t("EPOCH"), Wire::List(vec![t("")]), Wire::Nil]);
    fake.answer([Ok(Outcome::Replied(lost))]);
    let err = block_on(m.create_context("a", json!({}))).unwrap_err();
    assert!(err.to_string().contains("lost its data"), "{err}");
    // The transport would say "not found"; the manager knows better now.
    let err = block_on(m.get_context("a")).unwrap_err();
    assert!(err.to_string().contains("lost its data"), "{err}");
}

#[test]
fn a_client_clock_times_every_call_and_reads_through_the_library() {
    let fake = Fake::new(0);
    let clock = crate::ManualClock::new(5);
    let mut config = settings();
    config.client_clock = true;
    let builder = ContextManager::builder(ManagerConfig::default()).clock(clock.clone());
    let m = connect_with(&fake, config, builder);
    let [(_, _, join)] = &fake.calls("ck2_join")[..] else {
        panic!("one join");
    };
    assert!(join[1].contains(r#""clock":"client""#), "{join:?}");
    clock.advance(20);
    fake.answer([Ok(created("a", 1))]);
    block_on(m.create_context("a", json!({}))).unwrap();
    assert_eq!(fake.calls("ck2_write")[0].2[5], "25");
    // A read asks the library, which decides expiry by that time.
    clock.advance(10);
    fake.answer([Ok(Outcome::Replied(Wire::Nil))]);
    assert_eq!(
        block_on(m.get_context("a")).unwrap_err().code(),
        "NOT_FOUND"
    );
    let [(_, keys, args)] = &fake.calls("ck2_get")[..] else {
        panic!("one read");
    };
    assert_eq!(
        (&keys[..], &args[..]),
        (
            &["meta".to_owned(), "c:a".to_owned()][..],
            &["a".to_owned(), "35".to_owned()][..]
        )
    );
}

/// A stored record of `id`: version `v`, expiring at `expires` when given.
pub(super) fn record(v: u64, expires: Option<u64>) -> String {
    let e = expires.map_or(String::new(), |at| at.to_string());
    let t = if expires.is_some() { "1000" } else { "" };
    format!("{v} {v} 5 5 {e} {t}\n{{}}\n{{\"v\":{v}}}")
}

/// A fake store, a manual clock at 1,000 ms, and a manager on them that
/// serves reads up to 100 ms old.
pub(super) fn connect_recent() -> (Fake, crate::ManualClock, ContextManager) {
    let (fake, clock) = (Fake::new(0), crate::ManualClock::new(1_000));
    let mut config = settings();
    config.max_stale_ms = 100;
    let builder = ContextManager::builder(ManagerConfig::default()).clock(clock.clone());
    let m = connect_with(&fake, config, builder);
    (fake, clock, m)
}

#[test]
fn reads_are_served_from_memory_for_max_stale_ms() {
    let (fake, clock, m) = connect_recent();
    fake.script().records.insert("a".into(), record(1, None));
    let first = block_on(m.get_context("a")).unwrap();
    assert_eq!(first.data, json!({ "v": 1 }));
    // A change the client hears nothing of is missed for 100 ms, not longer.
    fake.script().records.insert("a".into(), record(2, None));
    clock.advance(99);
    let again = block_on(m.get_context("a")).unwrap();
    assert!(Arc::ptr_eq(&first, &again), "the same state, from memory");
    // A context that is not there is asked for every time.
    for _ in 0..2 {
        let err = block_on(m.get_context("b")).unwrap_err();
        assert_eq!(err.code(), "NOT_FOUND");
    }
    assert_eq!(fake.script().gets, ["a", "b", "b"]);
    clock.advance(1);
    assert_eq!(block_on(m.get_context("a")).unwrap().version, 2);
    assert_eq!(fake.script().gets, ["a", "b", "b", "a"]);
}

#[test]
fn a_context_read_from_memory_expires_on_time() {
    let (fake, clock, m) = connect_recent();
    fake.script()
        .records
        .insert("a".into(), record(1, Some(1_050)));
    block_on(m.get_context("a")).unwrap();
    clock.advance(49);
    block_on(m.get_context("a")).unwrap();
    assert_eq!(fake.script().gets, ["a"]);
    // Expired: not served from memory (the store has deleted it by now).
    fake.script().records.remove("a");
    clock.advance(1);
    assert_eq!(
        block_on(m.get_context("a")).unwrap_err().code(),
        "NOT_FOUND"
    );
    assert_eq!(fake.script().gets, ["a", "a"]);
}

#[test]
fn a_write_of_the_client_forgets_the_read_of_its_context_whatever_its_outcome() {
    let (fake, _clock, m) = connect_recent();
    fake.script().records.insert("a".into(), record(1, None));
    let read_a = || block_on(m.get_context("a")).unwrap();
    read_a();
    // Answered, refused, and without an answer (then settled).
    fake.answer([Ok(created("a", 2))]);
    block_on(m.create_context("a", json!({}))).unwrap();
    read_a();
    fake.answer([Err(ContextError::storage("refused"))]);
    block_on(m.create_context("a", json!({}))).unwrap_err();
    read_a();
    fake.answer([unknown("timed out"), Err(ContextError::storage("down"))]);
    block_on(m.create_context("a", json!({}))).unwrap_err();
    read_a();
    read_a();
    assert_eq!(fake.script().gets, ["a", "a", "a", "a"]);
}

#[test]
fn a_write_of_another_context_keeps_the_read_and_a_sweep_forgets_all() {
    let (fake, _clock, m) = connect_recent();
    fake.script().records.insert("a".into(), record(1, None));
    let read_a = || block_on(m.get_context("a")).unwrap();
    read_a();
    fake.answer([Ok(created("b", 2))]);
    block_on(m.create_context("b", json!({}))).unwrap();
    read_a();
    assert_eq!(fake.script().gets, ["a"], "still from memory");
    // A sweep may remove any context.
    let swept = Wire::List(vec![
        t("OK"),
        Wire::List(vec![t("0")]),
        Wire::List(vec![]),
        int(1),
    ]);
    fake.answer([Ok(Outcome::Replied(swept))]);
    block_on(m.try_cleanup_expired()).unwrap();
    read_a();
    assert_eq!(fake.script().gets, ["a", "a"]);
}

#[test]
fn without_max_stale_ms_every_read_asks_the_store() {
    let fake = Fake::new(0);
    let m = connect(&fake);
    fake.script().records.insert("a".into(), record(1, None));
    for _ in 0..3 {
        block_on(m.get_context("a")).unwrap();
    }
    assert_eq!(fake.script().gets, ["a", "a", "a"]);
}

/// A `get_context("a")` of `m` on `pool`, held on its way until
/// [`not_kept`] answers it.
pub(super) fn read_under_way(
    fake: &Fake,
    m: &ContextManager,
    pool: &mut LocalPool,
) -> futures::future::RemoteHandle<Result<Arc<ContextState>>> {
    fake.script().hold_gets = true;
    let m = m.clone();
    let read = pool
        .spawner()
        .spawn_local_with_handle(async move { m.get_context("a").await })
        .unwrap();
    pool.run_until_stalled();
    read
}

/// Answers `read` with version 1 of "a", and checks it was not kept: the
/// next get asks the store again (which holds version 2 by then).
pub(super) fn not_kept(
    fake: &Fake,
    m: &ContextManager,
    pool: &mut LocalPool,
    read: futures::future::RemoteHandle<Result<Arc<ContextState>>>,
) {
    use futures::FutureExt;
    fake.release(&record(1, None));
    pool.run_until_stalled();
    assert_eq!(read.now_or_never().unwrap().unwrap().version, 1);
    fake.script().hold_gets = false;
    fake.script().records.insert("a".into(), record(2, None));
    assert_eq!(block_on(m.get_context("a")).unwrap().version, 2);
    assert_eq!(fake.script().gets, ["a", "a"]);
}

#[test]
fn a_read_under_way_when_a_write_of_the_client_ends_is_not_kept() {
    let (fake, _clock, m) = connect_recent();
    let mut pool = LocalPool::new();
    let read = read_under_way(&fake, &m, &mut pool);
    // The write ends while the read is on its way; the read then brings
    // what the store held before it.
    fake.answer([Ok(created("a", 2))]);
    block_on(m.create_context("a", json!({}))).unwrap();
    not_kept(&fake, &m, &mut pool, read);
}

#[test]
fn a_read_under_way_when_a_write_of_another_context_ends_is_kept() {
    let (fake, _clock, m) = connect_recent();
    let mut pool = LocalPool::new();
    let read = read_under_way(&fake, &m, &mut pool);
    fake.answer([Ok(created("b", 2))]);
    block_on(m.create_context("b", json!({}))).unwrap();
    fake.release(&record(1, None));
    pool.run_until_stalled();
    drop(read);
    fake.script().hold_gets = false;
    block_on(m.get_context("a")).unwrap();
    assert_eq!(fake.script().gets, ["a"], "the second read from memory");
}

#[test]
fn a_write_dropped_half_way_forgets_the_reads_too() {
    use futures::FutureExt;
    let (fake, _clock, m) = connect_recent();
    fake.script().records.insert("a".into(), record(1, None));
    block_on(m.get_context("a")).unwrap();
    // A write that gets no answer, dropped by its caller: it may have been applied.
    fake.script().hang.push("ck2_write");
    let write = m.update_context("a", json!({ "v": 2 }), None);
    assert!(write.boxed().now_or_never().is_none(), "the write waits");
    block_on(m.get_context("a")).unwrap();
    assert_eq!(fake.script().gets, ["a", "a"]);
}
