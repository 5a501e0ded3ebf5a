//! Persistence through the `Storage` trait: "Ok" means durable, a failed write
//! changes nothing, writes of one id reach storage in version order, and a
//! reopened manager sees exactly the acknowledged state.

use contextkit::{
    AdapterConfig, ContextAdapter, ContextError, ContextManager, ContextState, CreateOptions,
    Loaded, ManagerConfig, ManualClock, MemoryStorage, Meta, Record, Snapshot, Storage,
    StorageFuture, json,
};
use futures::FutureExt;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

type Dump = (Vec<(ContextState, Vec<Snapshot>)>, u64);

/// Everything a user can observe of a manager.
async fn dump(m: &ContextManager) -> Dump {
    let mut out = Vec::new();
    for s in m.list_contexts().await {
        let snapshots = m.recovery_points(&s.id).await.unwrap();
        out.push((ContextState::clone(&s), snapshots));
    }
    (out, m.next_recovery_point_id())
}

fn config() -> ManagerConfig {
    ManagerConfig {
        max_contexts: 5,
        max_recovery_points: 2,
        ..ManagerConfig::default()
    }
}

async fn open(storage: impl Storage, clock: &ManualClock) -> ContextManager {
    let opened = ContextManager::builder(config())
        .clock(clock.clone())
        .open(storage)
        .await
        .unwrap();
    assert!(opened.problems.is_empty(), "{:?}", opened.problems);
    opened.manager
}

/// Reopens on a copy of `storage` and checks it shows what `m` shows.
async fn assert_reopen_matches(
    m: &ContextManager,
    storage: &MemoryStorage,
    clock: &ManualClock,
    step: &str,
) {
    let reopened = open(storage.duplicate(), clock).await;
    assert_eq!(dump(&reopened).await, dump(m).await, "after {step}");
}

#[test]
fn every_acknowledged_operation_survives_a_reopen() {
    futures::executor::block_on(async {
        let clock = ManualClock::new(1_000);
        let storage = MemoryStorage::default();
        let m = open(storage.clone(), &clock).await;
        let check = |step: &'static str| {
            let (m, storage, clock) = (m.clone(), storage.clone(), clock.clone());
            async move { assert_reopen_matches(&m, &storage, &clock, step).await }
        };
        let opts = CreateOptions {
            ttl_ms: Some(10_000),
            metadata: [("owner".to_string(), "ada".to_string())].into(),
        };
        m.create_context_with("a", json!({ "n": 1 }), opts)
            .await
            .unwrap();
        check("create with ttl and metadata").await;
        m.create_context("b", json!({ "list": [1, 2, { "deep": null }] }))
            .await
            .unwrap();
        clock.advance(5);
        m.update_context("a", json!({ "n": 2 }), Some(1))
            .await
            .unwrap();
        check("update").await;
        // The TTL each write restarts survives too: the same update on both.
        let reopened = open(storage.duplicate(), &clock).await;
        clock.advance(7);
        check("time passing").await;
        let live = m
            .update_context("a", json!({ "n": 3 }), None)
            .await
            .unwrap();
        let again = reopened
            .update_context("a", json!({ "n": 3 }), None)
            .await
            .unwrap();
        assert_eq!(live, again);
        assert_eq!(live.expires_at_ms, Some(live.updated_at_ms + 10_000));
        clock.advance(3);
        let touched = m.touch_context("a").await.unwrap();
        assert_eq!(touched.expires_at_ms, Some(m.clock().now_ms() + 10_000));
        check("touch").await;
        let modified = m
            .modify_context("a", |d| json!({ "n": d["n"].as_u64().unwrap() * 10 }))
            .await
            .unwrap();
        assert_eq!(modified.data, json!({ "n": 30 }));
        check("modify").await;
        for _ in 0..3 {
            m.create_recovery_point("a").await.unwrap();
            check("recovery point (rotating)").await;
        }
        let first = m.recovery_points("a").await.unwrap()[0].id;
        m.restore_recovery_point("a", first).await.unwrap();
        check("restore").await;
        m.create_recovery_point("b").await.unwrap();
        m.delete_context("b").await.unwrap();
        check("delete of a context with recovery points").await;
        assert_eq!(storage.ids(), ["a"]);
        m.create_context_with(
            "t",
            json!({}),
            CreateOptions {
                ttl_ms: Some(1),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        clock.advance(1);
        assert_eq!(m.cleanup_expired().await, 1);
        check("cleanup").await;
        assert_eq!(storage.ids(), ["a"], "expired contexts leave storage too");
        for id in ["c", "d", "e", "f"] {
            m.create_context(id, json!({})).await.unwrap();
        }
        let adapter = ContextAdapter::new(m.clone(), AdapterConfig::default());
        let cfg = AdapterConfig {
            max_contexts: 2,
            ..adapter.get_config().await
        };
        assert_eq!(adapter.update_config(cfg).await.unwrap(), 3);
        check("eviction").await;
        assert_eq!(storage.ids().len(), 2);
    });
}

/// A yield point that works on any executor.
struct YieldNow(bool);

impl Future for YieldNow {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// Wraps a storage: fails the writes it is told to, delays every write, and
/// logs the versions that reach storage.
#[derive(Debug, Clone, Default)]
struct Faulty {
    inner: MemoryStorage,
    fail_next: Arc<AtomicUsize>,
    delay: usize,
    log: Arc<Mutex<BTreeMap<String, Vec<u64>>>>,
}

impl Faulty {
    fn fail(&self, writes: usize) {
        self.fail_next.store(writes, Ordering::SeqCst);
    }

    fn should_fail(&self) -> bool {
        self.fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }

    async fn pause(&self) {
        for _ in 0..self.delay {
            YieldNow(false).await;
        }
    }
}

impl Storage for Faulty {
    fn load(&self) -> StorageFuture<'_, Loaded> {
        self.inner.load()
    }

    fn get<'a>(&'a self, id: &'a str) -> StorageFuture<'a, Option<Record>> {
        self.inner.get(id)
    }

    fn put(&self, record: Arc<Record>) -> StorageFuture<'_, ()> {
        Box::pin(async move {
            self.pause().await;
            if self.should_fail() {
                return Err(ContextError::storage("injected write failure"));
            }
            let (id, version) = (record.state.id.clone(), record.state.version);
            self.inner.put(record).await?;
            self.log
                .lock()
                .unwrap()
                .entry(id)
                .or_default()
                .push(version);
            Ok(())
        })
    }

    fn delete<'a>(&'a self, id: &'a str) -> StorageFuture<'a, ()> {
        Box::pin(async move {
            self.pause().await;
            if self.should_fail() {
                return Err(ContextError::storage("injected delete failure"));
            }
            self.inner.delete(id).await
        })
    }

    fn put_meta(&self, meta: Meta) -> StorageFuture<'_, ()> {
        Box::pin(async move {
            self.pause().await;
            if self.should_fail() {
                return Err(ContextError::storage("injected meta failure"));
            }
            self.inner.put_meta(meta).await
        })
    }
}

#[test]
fn failed_writes_change_nothing_in_memory_or_storage() {
    futures::executor::block_on(async {
        let clock = ManualClock::new(0);
        let storage = Faulty::default();
        let m = open(storage.clone(), &clock).await;
        let same = |step: &'static str| {
            let (m, storage, clock) = (m.clone(), storage.inner.clone(), clock.clone());
            async move { assert_reopen_matches(&m, &storage, &clock, step).await }
        };
        storage.fail(1);
        let err = m.create_context("a", json!({})).await.unwrap_err();
        assert_eq!(err.code(), "STORAGE");
        assert_eq!(m.get_context("a").await.unwrap_err().code(), "NOT_FOUND");
        same("failed create").await;
        // The failed create gave its capacity slot back.
        for id in ["a", "b", "c", "d", "e"] {
            m.create_context(id, json!({ "v": 1 })).await.unwrap();
        }
        assert_eq!(
            m.create_context("f", json!({})).await.unwrap_err().code(),
            "CAPACITY_EXCEEDED"
        );

        storage.fail(1);
        assert_eq!(
            m.update_context("a", json!({ "v": 2 }), Some(1))
                .await
                .unwrap_err()
                .code(),
            "STORAGE"
        );
        assert_eq!(m.get_context("a").await.unwrap().version, 1);
        same("failed update").await;
        m.update_context("a", json!({ "v": 2 }), Some(1))
            .await
            .unwrap();

        m.create_recovery_point("a").await.unwrap();
        storage.fail(1);
        assert_eq!(
            m.create_recovery_point("a").await.unwrap_err().code(),
            "STORAGE"
        );
        assert_eq!(m.recovery_points("a").await.unwrap().len(), 1);
        same("failed recovery point").await;

        let snapshot_id = m.recovery_points("a").await.unwrap()[0].id;
        m.update_context("a", json!({ "v": 3 }), None)
            .await
            .unwrap();
        storage.fail(1);
        assert_eq!(
            m.restore_recovery_point("a", snapshot_id)
                .await
                .unwrap_err()
                .code(),
            "STORAGE"
        );
        assert_eq!(m.get_context("a").await.unwrap().data, json!({ "v": 3 }));
        same("failed restore").await;

        storage.fail(1);
        assert_eq!(m.delete_context("a").await.unwrap_err().code(), "STORAGE");
        assert!(m.get_context("a").await.is_ok());
        same("failed delete (meta write)").await;
        storage.fail(0);
        m.delete_context("a").await.unwrap();
        same("delete").await;
        let s = m.stats();
        assert_eq!((s.contexts, s.creates, s.deletes), (4, 5, 1));
    });
}

#[test]
fn writes_of_one_id_reach_storage_in_version_order() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .build()
        .unwrap();
    rt.block_on(async {
        let storage = Faulty {
            delay: 3,
            ..Faulty::default()
        };
        let clock = ManualClock::new(0);
        let m = open(storage.clone(), &clock).await;
        m.create_context("n", json!({ "n": 0 })).await.unwrap();
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let m = m.clone();
                tokio::spawn(async move {
                    for _ in 0..20 {
                        loop {
                            let s = m.get_context("n").await.unwrap();
                            let n = s.data["n"].as_u64().unwrap();
                            match m
                                .update_context("n", json!({ "n": n + 1 }), Some(s.version))
                                .await
                            {
                                Ok(_) => break,
                                Err(e) => assert_eq!(e.code(), "VERSION_CONFLICT"),
                            }
                        }
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let log = storage.log.lock().unwrap().get("n").cloned().unwrap();
        assert_eq!(
            log,
            (1..=321).collect::<Vec<u64>>(),
            "storage saw every version, in order"
        );
        assert_eq!(m.get_context("n").await.unwrap().data, json!({ "n": 320 }));
        assert_reopen_matches(&m, &storage.inner, &clock, "contention").await;
    });
}

#[test]
fn writes_dropped_midway_are_repaired_from_storage() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .build()
        .unwrap();
    rt.block_on(async {
        let storage = Faulty {
            delay: 2,
            ..Faulty::default()
        };
        let clock = ManualClock::new(0);
        let m = open(storage.clone(), &clock).await;
        let dropped = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..8u64)
            .map(|t| {
                let (m, dropped) = (m.clone(), Arc::clone(&dropped));
                tokio::spawn(async move {
                    let mut rng = 0x9e37_79b9_7f4a_7c15_u64 ^ (t + 1);
                    for _ in 0..500 {
                        rng ^= rng << 13;
                        rng ^= rng >> 7;
                        rng ^= rng << 17;
                        let id = format!("k{}", rng % 4);
                        let fut: Pin<Box<dyn Future<Output = ()> + Send>> = match rng % 5 {
                            0 => Box::pin(m.create_context(&id, json!({ "t": t })).map(drop)),
                            1 => Box::pin(m.delete_context(&id).map(drop)),
                            2 => Box::pin(m.create_recovery_point(&id).map(drop)),
                            _ => Box::pin(
                                m.update_context(&id, json!({ "t": t, "r": rng % 100 }), None)
                                    .map(drop),
                            ),
                        };
                        if (rng >> 9) & 3 == 0 {
                            // Poll a few times, then drop it wherever it is.
                            let mut fut = fut;
                            let mut done = false;
                            for _ in 0..(rng >> 20) % 4 {
                                if futures::poll!(fut.as_mut()).is_ready() {
                                    done = true;
                                    break;
                                }
                            }
                            if !done {
                                dropped.fetch_add(1, Ordering::Relaxed);
                            }
                        } else {
                            fut.await;
                        }
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert!(dropped.load(Ordering::Relaxed) > 0);
        // Every call first reads back the ids whose writes were dropped.
        assert_eq!(m.len().await, m.list_context_ids().await.len());
        assert_eq!(m.stats().contexts, m.list_context_ids().await.len());
        assert_reopen_matches(&m, &storage.inner, &clock, "dropped writes").await;
    });
}

/// With a storage, a full store whose only context had its expiry moved later
/// by an update answers a create with CAPACITY_EXCEEDED. (The shard's earliest
/// expiry still said the old time; sweeping through the storage never made it
/// exact again, so the create swept and retried forever.)
#[test]
fn a_create_at_capacity_ends_after_an_update_moved_an_expiry_later() {
    for other in ["b", "c", "d", "e", "f", "g", "h", "i"] {
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            futures::executor::block_on(async {
                let clock = ManualClock::new(0);
                let cfg = ManagerConfig {
                    max_contexts: 1,
                    ..ManagerConfig::default()
                };
                let m = ContextManager::builder(cfg)
                    .clock(clock.clone())
                    .open(MemoryStorage::default())
                    .await
                    .unwrap()
                    .manager;
                let ttl = CreateOptions {
                    ttl_ms: Some(10),
                    ..CreateOptions::default()
                };
                m.create_context_with("a", json!({}), ttl).await.unwrap();
                clock.advance(5);
                m.update_context("a", json!({ "n": 1 }), None)
                    .await
                    .unwrap();
                clock.advance(7);
                let full = m.create_context(other, json!({})).await.unwrap_err();
                done.send(full.code()).unwrap();
            });
        });
        let code = finished
            .recv_timeout(std::time::Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("create of {other:?} at capacity never returned"));
        assert_eq!(code, "CAPACITY_EXCEEDED");
    }
}

/// A create that finds the store full of expired contexts removes them from
/// the storage too: a reopen does not bring them back.
#[test]
fn expired_contexts_a_full_store_drops_for_a_create_stay_gone_after_a_reopen() {
    futures::executor::block_on(async {
        let storage = MemoryStorage::default();
        let clock = ManualClock::new(0);
        let cfg = ManagerConfig {
            max_contexts: 2,
            ..ManagerConfig::default()
        };
        let open = || {
            // One shard: the create meets the expired contexts in its own section.
            ContextManager::builder(cfg.clone())
                .clock(clock.clone())
                .shards(1)
                .open(storage.clone())
        };
        let m = open().await.unwrap().manager;
        let ttl = CreateOptions {
            ttl_ms: Some(10),
            ..CreateOptions::default()
        };
        m.create_context_with("a", json!({}), ttl.clone())
            .await
            .unwrap();
        m.create_context_with("b", json!({}), ttl).await.unwrap();
        clock.advance(10);
        m.create_context("c", json!({})).await.unwrap();
        assert_eq!(storage.ids(), ["c"]);
        drop(m);
        let again = open().await.unwrap();
        assert!(again.problems.is_empty());
        assert_eq!(again.manager.list_context_ids().await, ["c"]);
        assert_eq!(again.manager.len().await, 1);
    });
}

#[test]
fn a_stored_ttl_of_zero_is_a_problem_and_the_others_load() {
    futures::executor::block_on(async {
        let storage = MemoryStorage::default();
        let clock = ManualClock::new(0);
        let m = open(storage.clone(), &clock).await;
        let ttl = CreateOptions {
            ttl_ms: Some(60_000),
            ..CreateOptions::default()
        };
        let bad = m.create_context_with("bad", json!({}), ttl).await.unwrap();
        m.create_context("good", json!({ "n": 1 })).await.unwrap();
        drop(m);
        // What no write of contextkit produces: a TTL of 0, read back as
        // "never expires" it would make the context immortal.
        let record = Record {
            state: bad,
            ttl_ms: Some(0),
            snapshots: Vec::new(),
            next_snapshot_id: 1,
        };
        storage.put(Arc::new(record)).await.unwrap();
        let opened = ContextManager::builder(config())
            .clock(clock.clone())
            .open(storage.clone())
            .await
            .unwrap();
        assert_eq!(opened.problems.len(), 1, "{:?}", opened.problems);
        let problem = opened.problems[0].to_string();
        assert!(
            problem.contains("'bad'") && problem.contains("ttl"),
            "{problem}"
        );
        assert_eq!(opened.problems[0].code(), "STORAGE");
        assert_eq!(opened.manager.list_context_ids().await, ["good"]);
    });
}

/// What a [`Scripted`] storage does with a write (put, delete or meta).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Act {
    /// Applies it and says so.
    Normal,
    /// Never finishes and never applies it (a lazy storage whose future is dropped).
    Hang,
    /// Applies it at once, then never finishes (an eager storage whose future is dropped).
    ApplyThenHang,
    /// Applies it, then reports a failure (the directory sync after a rename failed).
    ApplyThenFail,
    /// Fails without applying it.
    Fail,
    /// Waits until the gate opens, then fails without applying it.
    GateThenFail,
}

/// A storage over a [`MemoryStorage`] whose writes follow a script (one
/// [`Act`] each, then `Normal`) and whose reads can be made to fail.
#[derive(Debug, Clone, Default)]
struct Scripted {
    inner: MemoryStorage,
    script: Arc<Mutex<std::collections::VecDeque<Act>>>,
    fail_gets: Arc<std::sync::atomic::AtomicBool>,
    gate: Arc<std::sync::atomic::AtomicBool>,
}

impl Scripted {
    fn then(&self, acts: &[Act]) {
        self.script.lock().unwrap().extend(acts.iter().copied());
    }

    fn fail_gets(&self, fail: bool) {
        self.fail_gets.store(fail, Ordering::SeqCst);
    }

    fn open_gate(&self) {
        self.gate.store(true, Ordering::SeqCst);
    }

    /// `apply` makes the change (a MemoryStorage applies it when called).
    fn write<'a>(
        &'a self,
        apply: impl FnOnce() -> StorageFuture<'a, ()> + Send + 'a,
    ) -> StorageFuture<'a, ()> {
        let act = self
            .script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(Act::Normal);
        Box::pin(async move {
            match act {
                Act::Normal => apply().await,
                Act::Hang => std::future::pending().await,
                Act::ApplyThenHang => {
                    apply().await?;
                    std::future::pending().await
                }
                Act::ApplyThenFail => {
                    apply().await?;
                    Err(ContextError::storage("injected failure after the write"))
                }
                Act::Fail => Err(ContextError::storage("injected write failure")),
                Act::GateThenFail => {
                    while !self.gate.load(Ordering::SeqCst) {
                        YieldNow(false).await;
                    }
                    Err(ContextError::storage("injected write failure"))
                }
            }
        })
    }
}

impl Storage for Scripted {
    fn load(&self) -> StorageFuture<'_, Loaded> {
        self.inner.load()
    }

    fn get<'a>(&'a self, id: &'a str) -> StorageFuture<'a, Option<Record>> {
        if self.fail_gets.load(Ordering::SeqCst) {
            return Box::pin(async { Err(ContextError::storage("injected read failure")) });
        }
        self.inner.get(id)
    }

    fn put(&self, record: Arc<Record>) -> StorageFuture<'_, ()> {
        self.write(move || self.inner.put(record))
    }

    fn delete<'a>(&'a self, id: &'a str) -> StorageFuture<'a, ()> {
        self.write(move || self.inner.delete(id))
    }

    fn put_meta(&self, meta: Meta) -> StorageFuture<'_, ()> {
        self.write(move || self.inner.put_meta(meta))
    }
}

/// Polls `fut` once (it must not finish) and drops it, as a timeout would.
async fn poll_once_and_drop<T>(fut: impl Future<Output = T>) {
    let mut fut = std::pin::pin!(fut);
    assert!(futures::poll!(fut.as_mut()).is_pending());
}

async fn open_with(storage: &Scripted, cfg: ManagerConfig, clock: &ManualClock) -> ContextManager {
    let opened = ContextManager::builder(cfg)
        .clock(clock.clone())
        .open(storage.clone())
        .await
        .unwrap();
    assert!(opened.problems.is_empty(), "{:?}", opened.problems);
    opened.manager
}

fn one_slot() -> ManagerConfig {
    ManagerConfig {
        max_contexts: 1,
        ..config()
    }
}

/// A create dropped while storage works, which storage never applied, holds
/// no capacity: the next call reads the id back and gives the slot back.
#[test]
fn a_create_dropped_before_storage_applied_it_holds_no_capacity() {
    futures::executor::block_on(async {
        let clock = ManualClock::new(0);
        let storage = Scripted::default();
        let m = open_with(&storage, one_slot(), &clock).await;
        storage.then(&[Act::Hang]);
        poll_once_and_drop(m.create_context("a", json!({}))).await;
        assert_eq!(m.len().await, 0);
        assert_eq!(m.stats().contexts, 0);
        m.create_context("b", json!({})).await.unwrap();
        assert_eq!(m.list_context_ids().await, ["b"]);
        assert_reopen_matches(&m, &storage.inner, &clock, "dropped create").await;
    });
}

/// Writes dropped after storage applied them: the next call of any kind
/// shows what storage holds (no write to the same id needed).
#[test]
fn writes_dropped_after_storage_applied_them_are_what_memory_shows() {
    futures::executor::block_on(async {
        let clock = ManualClock::new(0);
        let storage = Scripted::default();
        let m = open_with(&storage, one_slot(), &clock).await;
        let mut events = m.subscribe();

        storage.then(&[Act::ApplyThenHang]);
        poll_once_and_drop(m.create_context("a", json!({ "n": 1 }))).await;
        assert_eq!(m.get_context("a").await.unwrap().version, 1);
        assert_eq!(
            m.create_context("b", json!({})).await.unwrap_err().code(),
            "CAPACITY_EXCEEDED",
            "the create that storage holds takes the only slot"
        );
        assert_eq!(m.len().await, 1);

        storage.then(&[Act::ApplyThenHang]);
        poll_once_and_drop(m.update_context("a", json!({ "n": 2 }), Some(1))).await;
        assert_eq!(m.list_contexts().await[0].data, json!({ "n": 2 }));
        assert_reopen_matches(&m, &storage.inner, &clock, "dropped update").await;

        // A removal stores the meta first, then deletes the record.
        storage.then(&[Act::Normal, Act::ApplyThenHang]);
        poll_once_and_drop(m.delete_context("a")).await;
        assert_eq!(m.len().await, 0);
        assert_eq!(m.get_context("a").await.unwrap_err().code(), "NOT_FOUND");
        assert_reopen_matches(&m, &storage.inner, &clock, "dropped delete").await;

        use futures::StreamExt;
        let mut seen = Vec::new();
        while let Some(Some(e)) = events.next().now_or_never() {
            seen.push(e);
        }
        assert_eq!(
            seen,
            [
                contextkit::ContextEvent::Created {
                    id: "a".into(),
                    version: 1,
                    revision: 1,
                },
                contextkit::ContextEvent::Updated {
                    id: "a".into(),
                    version: 2,
                    revision: 2,
                },
                contextkit::ContextEvent::Deleted {
                    id: "a".into(),
                    version: 2,
                    revision: 3,
                },
            ]
        );
    });
}

/// A storage that applied a write and then failed (a directory sync after the
/// rename): the call fails with STORAGE, and memory shows what storage holds,
/// so a retry from the old version is a conflict, not a second version 2.
#[test]
fn a_write_storage_applied_but_reported_failed_shows_what_storage_holds() {
    futures::executor::block_on(async {
        let clock = ManualClock::new(0);
        let storage = Scripted::default();
        let m = open_with(&storage, one_slot(), &clock).await;
        m.create_context("a", json!({ "n": 1 })).await.unwrap();

        storage.then(&[Act::ApplyThenFail]);
        let err = m.update_context("a", json!({ "n": 2 }), Some(1)).await;
        assert_eq!(err.unwrap_err().code(), "STORAGE");
        assert_eq!(m.get_context("a").await.unwrap().data, json!({ "n": 2 }));
        assert_reopen_matches(&m, &storage.inner, &clock, "update applied, then failed").await;
        let retry = m.update_context("a", json!({ "n": 2 }), Some(1)).await;
        assert_eq!(retry.unwrap_err().code(), "VERSION_CONFLICT");

        // The meta, then the record.
        storage.then(&[Act::Normal, Act::ApplyThenFail]);
        assert_eq!(m.delete_context("a").await.unwrap_err().code(), "STORAGE");
        assert_eq!(m.get_context("a").await.unwrap_err().code(), "NOT_FOUND");
        assert_reopen_matches(&m, &storage.inner, &clock, "delete applied, then failed").await;

        storage.then(&[Act::ApplyThenFail]);
        assert_eq!(
            m.create_context("c", json!({})).await.unwrap_err().code(),
            "STORAGE"
        );
        assert_eq!(m.list_context_ids().await, ["c"]);
        assert_eq!(m.len().await, 1);
        assert_eq!(
            m.create_context("d", json!({})).await.unwrap_err().code(),
            "CAPACITY_EXCEEDED"
        );

        // A failure storage never applied leaves everything as it was.
        storage.then(&[Act::Fail]);
        let err = m.update_context("c", json!({ "n": 9 }), Some(1)).await;
        assert_eq!(err.unwrap_err().code(), "STORAGE");
        assert_eq!(m.get_context("c").await.unwrap().version, 1);
        assert_reopen_matches(&m, &storage.inner, &clock, "update failed").await;
    });
}

/// When a failed write cannot be read back either, the state of its id is
/// unknown: memory keeps what it had (its capacity slot stays taken), and the
/// first call after storage recovers reads it back.
#[test]
fn a_failed_write_that_cannot_be_read_back_is_read_back_by_the_next_call() {
    futures::executor::block_on(async {
        let clock = ManualClock::new(0);
        let storage = Scripted::default();
        let m = open_with(&storage, one_slot(), &clock).await;

        storage.fail_gets(true);
        storage.then(&[Act::Fail]);
        let err = m.create_context("a", json!({})).await.unwrap_err();
        assert_eq!(err.code(), "STORAGE");
        assert!(err.to_string().contains("injected write failure"), "{err}");
        assert_eq!(
            m.create_context("b", json!({})).await.unwrap_err().code(),
            "CAPACITY_EXCEEDED",
            "while 'a' may be stored, its slot stays taken"
        );
        storage.fail_gets(false);
        assert_eq!(m.len().await, 0);
        m.create_context("b", json!({ "n": 1 })).await.unwrap();

        storage.fail_gets(true);
        storage.then(&[Act::ApplyThenFail]);
        let err = m.update_context("b", json!({ "n": 2 }), None).await;
        assert_eq!(err.unwrap_err().code(), "STORAGE");
        storage.fail_gets(false);
        assert_eq!(m.get_context("b").await.unwrap().data, json!({ "n": 2 }));
        assert_reopen_matches(&m, &storage.inner, &clock, "read back later").await;
    });
}

/// A recovery point whose write failed gives its id back only while no stored
/// record carries the id after it: a reopen then sees the same next id.
#[test]
fn a_failed_recovery_point_keeps_its_id_once_a_stored_record_carries_the_next() {
    futures::executor::block_on(async {
        let clock = ManualClock::new(0);
        let storage = Scripted::default();
        let m = open_with(&storage, config(), &clock).await;
        m.create_context("a", json!({})).await.unwrap();
        m.create_context("b", json!({})).await.unwrap();

        // Nothing stored the next id meanwhile: it is given back.
        storage.then(&[Act::Fail]);
        let err = m.create_recovery_point("a").await.unwrap_err();
        assert_eq!(err.code(), "STORAGE");
        assert_eq!(m.next_recovery_point_id(), 1);
        assert_reopen_matches(&m, &storage.inner, &clock, "failed recovery point").await;

        // A write of "b" stores next id 2 while the snapshot of "a" (id 1) is
        // still being written; then that write fails.
        storage.then(&[Act::GateThenFail]);
        let snapshot = m.create_recovery_point("a");
        let other = async {
            m.update_context("b", json!({ "n": 1 }), None)
                .await
                .unwrap();
            storage.open_gate();
        };
        let (snapshot, ()) = futures::join!(snapshot, other);
        assert_eq!(snapshot.unwrap_err().code(), "STORAGE");
        assert_eq!(m.next_recovery_point_id(), 2);
        assert_reopen_matches(
            &m,
            &storage.inner,
            &clock,
            "failed recovery point, id stored",
        )
        .await;
        assert_eq!(m.create_recovery_point("a").await.unwrap().id, 2);
    });
}

/// Stored versions and ids no manager could have written (0, or beyond what a
/// JavaScript number holds exactly) are problems naming the record; the
/// others load and keep working.
#[test]
fn stored_versions_and_ids_out_of_range_are_problems() {
    futures::executor::block_on(async {
        let storage = MemoryStorage::default();
        let clock = ManualClock::new(0);
        let m = open(storage.clone(), &clock).await;
        for id in ["v0", "vmax", "pmax", "nmax", "good"] {
            m.create_context(id, json!({})).await.unwrap();
        }
        m.create_recovery_point("pmax").await.unwrap();
        drop(m);
        async fn damage(storage: &MemoryStorage, id: &str, f: impl Fn(&mut Record)) {
            let mut record = storage.get(id).await.unwrap().unwrap();
            f(&mut record);
            storage.put(Arc::new(record)).await.unwrap();
        }
        let with_version = |v: u64| {
            move |r: &mut Record| {
                let mut s = ContextState::clone(&r.state);
                s.version = v;
                r.state = Arc::new(s);
            }
        };
        damage(&storage, "v0", with_version(0)).await;
        damage(&storage, "vmax", with_version(u64::MAX)).await;
        damage(&storage, "pmax", |r: &mut Record| {
            r.snapshots[0].id = u64::MAX
        })
        .await;
        damage(&storage, "nmax", |r: &mut Record| {
            r.next_snapshot_id = 1 << 53
        })
        .await;
        storage
            .put_meta(Meta {
                next_snapshot_id: u64::MAX,
                next_revision: u64::MAX,
            })
            .await
            .unwrap();
        let opened = ContextManager::builder(config())
            .clock(clock.clone())
            .open(storage.clone())
            .await
            .unwrap();
        let mut problems: Vec<String> = opened.problems.iter().map(|p| p.to_string()).collect();
        problems.sort();
        assert_eq!(problems.len(), 6, "{problems:?}");
        assert!(problems[0].contains("meta"), "{}", problems[0]);
        assert!(problems[1].contains("meta"), "{}", problems[1]);
        for (problem, id) in problems[2..]
            .iter()
            .zip(["'nmax'", "'pmax'", "'v0'", "'vmax'"])
        {
            assert!(
                problem.contains(id) && problem.contains("out of range"),
                "{problem}"
            );
        }
        assert!(opened.problems.iter().all(|p| p.code() == "STORAGE"));
        let m = opened.manager;
        assert_eq!(m.list_context_ids().await, ["good"]);
        assert_eq!(
            m.next_recovery_point_id(),
            1,
            "damaged records vouch for nothing"
        );
        assert_eq!(
            m.update_context("good", json!({}), Some(1))
                .await
                .unwrap()
                .version,
            2
        );
    });
}

/// A full store whose only context has expired, while storage fails to
/// delete it: a create answers CAPACITY_EXCEEDED (the expired context still
/// counts, since storage still holds it) after one sweep, without looping;
/// once storage deletes again, the create succeeds.
#[test]
fn a_create_at_capacity_while_storage_fails_to_delete_an_expired_context() {
    futures::executor::block_on(async {
        let clock = ManualClock::new(0);
        let storage = Scripted::default();
        let m = open_with(&storage, one_slot(), &clock).await;
        let ttl = CreateOptions {
            ttl_ms: Some(10),
            ..CreateOptions::default()
        };
        m.create_context_with("a", json!({}), ttl).await.unwrap();
        clock.advance(10);
        // The sweep stores the meta, then fails to delete the record.
        storage.then(&[Act::Normal, Act::Fail]);
        let err = m.create_context("b", json!({})).await.unwrap_err();
        assert_eq!(err.code(), "CAPACITY_EXCEEDED");
        assert_eq!(storage.inner.ids(), ["a"]);
        assert_reopen_matches(&m, &storage.inner, &clock, "failed sweep").await;
        m.create_context("b", json!({})).await.unwrap();
        assert_eq!(storage.inner.ids(), ["b"]);
        assert_eq!(m.list_context_ids().await, ["b"]);
    });
}

/// Through a storage a create holds its capacity slot while it is being
/// written, before anyone can read it: `len` counts what reads show, so it
/// never reports a create that may still fail.
#[test]
fn len_does_not_count_a_create_still_being_written() {
    futures::executor::block_on(async {
        let clock = ManualClock::new(0);
        let storage = Scripted::default();
        let m = open_with(&storage, config(), &clock).await;
        m.create_context("a", json!({})).await.unwrap();
        storage.then(&[Act::Hang]);
        let mut create = std::pin::pin!(m.create_context("b", json!({})));
        assert!(futures::poll!(create.as_mut()).is_pending());
        assert_eq!(m.len().await, 1);
        assert_eq!(m.list_context_ids().await, ["a"]);
        assert!(!m.is_empty().await);
    });
}

/// Versions and recovery-point ids near the top of their range: a manager
/// stops handing them out well before 2^53 - 1 (CAPACITY_EXCEEDED), so
/// everything it stores still reads back; a stored recovery-point id of 2^53 - 1 (its
/// successor out of range) is a problem.
#[test]
fn versions_and_snapshot_ids_stop_before_they_could_not_be_read_back() {
    futures::executor::block_on(async {
        let storage = MemoryStorage::default();
        let clock = ManualClock::new(0);
        let m = open(storage.clone(), &clock).await;
        for id in ["high", "top", "edge"] {
            m.create_context(id, json!({})).await.unwrap();
            m.create_recovery_point(id).await.unwrap();
        }
        drop(m);
        let max_safe = (1_u64 << 53) - 1;
        let mut high = storage.get("high").await.unwrap().unwrap();
        let mut state = ContextState::clone(&high.state);
        state.version = 1 << 52;
        high.state = Arc::new(state);
        storage.put(Arc::new(high)).await.unwrap();
        let mut top = storage.get("top").await.unwrap().unwrap();
        top.snapshots[0].id = max_safe;
        storage.put(Arc::new(top)).await.unwrap();
        let mut edge = storage.get("edge").await.unwrap().unwrap();
        edge.snapshots[0].id = max_safe - 1;
        storage.put(Arc::new(edge)).await.unwrap();

        let opened = ContextManager::builder(config())
            .clock(clock.clone())
            .open(storage.clone())
            .await
            .unwrap();
        assert_eq!(opened.problems.len(), 1, "{:?}", opened.problems);
        assert!(opened.problems[0].to_string().contains("'top'"));
        let m = opened.manager;
        assert_eq!(m.next_recovery_point_id(), max_safe);
        let err = m.update_context("high", json!({}), None).await.unwrap_err();
        assert_eq!(err.code(), "CAPACITY_EXCEEDED");
        let err = m.create_recovery_point("edge").await.unwrap_err();
        assert_eq!(err.code(), "CAPACITY_EXCEEDED");
        m.create_context("new", json!({})).await.unwrap();
        drop(m);
        let again = ContextManager::builder(config())
            .clock(clock.clone())
            .open(storage.clone())
            .await
            .unwrap();
        assert_eq!(again.problems.len(), 1, "{:?}", again.problems);
        assert_eq!(
            again.manager.list_context_ids().await,
            ["edge", "high", "new"]
        );
    });
}

/// A reopened manager never hands out a revision again, not even one that
/// only a deletion had (its record is gone): the meta stored with every
/// removal keeps it.
#[test]
fn reopening_after_delete_never_reuses_a_revision() {
    futures::executor::block_on(async {
        let storage = MemoryStorage::default();
        let clock = ManualClock::new(0);
        let m = open(storage.clone(), &clock).await;
        let mut events = m.subscribe();
        let a = m.create_context("a", json!({})).await.unwrap();
        let b = m.create_context("b", json!({})).await.unwrap();
        m.update_context("a", json!({ "n": 1 }), None)
            .await
            .unwrap();
        m.delete_context("a").await.unwrap();
        m.delete_context("b").await.unwrap();
        let seen: Vec<u64> = std::iter::from_fn(|| events.try_next())
            .map(|e| e.revision().unwrap())
            .collect();
        assert_eq!(seen, [1, 2, 3, 4, 5]);
        assert_eq!((a.revision, b.revision), (1, 2));
        assert!(storage.ids().is_empty());
        assert_eq!(storage.load().await.unwrap().meta.unwrap().next_revision, 6);
        drop(m);

        let m = open(storage.clone(), &clock).await;
        let again = m.create_context("a", json!({})).await.unwrap();
        assert_eq!((again.version, again.revision), (1, 6));
        // Also when a stored record holds the largest revision.
        m.update_context("a", json!({ "n": 1 }), None)
            .await
            .unwrap();
        drop(m);
        let m = open(storage.clone(), &clock).await;
        assert_eq!(m.get_context("a").await.unwrap().revision, 7);
        assert_eq!(m.create_context("b", json!({})).await.unwrap().revision, 8);
    });
}

/// Expiries and evictions are removals too: their revisions survive a reopen.
#[test]
fn reopening_after_expiry_and_eviction_never_reuses_a_revision() {
    futures::executor::block_on(async {
        let storage = MemoryStorage::default();
        let clock = ManualClock::new(0);
        let m = open(storage.clone(), &clock).await;
        let mut events = m.subscribe();
        let ttl = CreateOptions {
            ttl_ms: Some(10),
            ..CreateOptions::default()
        };
        m.create_context_with("gone", json!({}), ttl).await.unwrap();
        clock.advance(10);
        assert_eq!(m.cleanup_expired().await, 1);
        let adapter = ContextAdapter::new(m.clone(), AdapterConfig::default());
        m.create_context("old", json!({})).await.unwrap();
        let cfg = AdapterConfig {
            max_contexts: 1,
            ..AdapterConfig::default()
        };
        m.create_context("new", json!({})).await.unwrap();
        assert_eq!(adapter.update_config(cfg).await.unwrap(), 1);
        let seen: Vec<Seen> = std::iter::from_fn(|| events.try_next())
            .map(|e| (kind(&e), e.revision().unwrap()))
            .collect();
        assert_eq!(
            seen,
            [
                ("created", 1),
                ("expired", 2),
                ("created", 3),
                ("created", 4),
                ("evicted", 5)
            ]
        );
        assert_eq!(storage.ids(), ["new"]);
        drop((m, adapter));
        let m = open(storage.clone(), &clock).await;
        m.delete_context("new").await.unwrap();
        assert_eq!(
            m.create_context("old", json!({})).await.unwrap().revision,
            7
        );
    });
}

/// An event as its kind and revision.
type Seen = (&'static str, u64);

fn kind(e: &contextkit::ContextEvent) -> &'static str {
    use contextkit::ContextEvent as E;
    match e {
        E::Created { .. } => "created",
        E::Updated { .. } => "updated",
        E::Deleted { .. } => "deleted",
        E::Restored { .. } => "restored",
        E::Expired { .. } => "expired",
        E::Evicted { .. } => "evicted",
        E::Lagged { .. } => "lagged",
    }
}

/// Records and metas stored before revisions existed (no `revision`, no
/// `nextRevision`) load, with revision 0; the next write takes a fresh one.
#[test]
fn records_stored_before_revisions_load_with_revision_zero() {
    futures::executor::block_on(async {
        let record: Record = serde_json::from_value(json!({
            "state": {
                "id": "a", "version": 3, "createdAtMs": 0, "updatedAtMs": 0,
                "expiresAtMs": null, "data": { "n": 1 }, "metadata": {}
            },
            "ttlMs": null,
            "points": [{
                "id": 4, "createdAtMs": 0,
                "state": {
                    "id": "a", "version": 2, "createdAtMs": 0, "updatedAtMs": 0,
                    "expiresAtMs": null, "data": {}, "metadata": {}
                }
            }],
            "nextSnapshotId": 5
        }))
        .unwrap();
        let meta: Meta = serde_json::from_value(json!({ "nextSnapshotId": 5 })).unwrap();
        assert_eq!(meta.next_revision, 0);
        let storage = MemoryStorage::default();
        storage.put(Arc::new(record)).await.unwrap();
        storage.put_meta(meta).await.unwrap();
        let clock = ManualClock::new(0);
        let m = open(storage.clone(), &clock).await;
        let a = m.get_context("a").await.unwrap();
        assert_eq!((a.version, a.revision), (3, 0));
        let next = m.update_context("a", json!({}), Some(3)).await.unwrap();
        assert_eq!((next.version, next.revision), (4, 1));
        let restored = m.restore_recovery_point("a", 4).await.unwrap();
        assert_eq!((restored.version, restored.revision), (5, 2));
    });
}

/// Through a storage an expired context stays stored until storage deletes
/// it: a write that meets one deletes it (meta first, with the expiry's
/// revision) and publishes the expiry, then answers as in memory.
#[test]
fn a_write_that_meets_an_expired_context_removes_it_through_storage() {
    futures::executor::block_on(async {
        let storage = MemoryStorage::default();
        let clock = ManualClock::new(0);
        let m = open(storage.clone(), &clock).await;
        let mut events = m.subscribe();
        let ttl = CreateOptions {
            ttl_ms: Some(10),
            ..CreateOptions::default()
        };
        m.create_context_with("a", json!({}), ttl.clone())
            .await
            .unwrap();
        m.create_context_with("b", json!({}), ttl).await.unwrap();
        clock.advance(10);
        let err = m.update_context("a", json!({}), None).await.unwrap_err();
        assert_eq!(err.code(), "NOT_FOUND");
        assert_eq!(storage.ids(), ["b"]);
        let again = m.create_context("b", json!({ "n": 2 })).await.unwrap();
        assert_eq!((again.version, again.revision), (1, 5));
        assert_eq!(storage.ids(), ["b"]);
        let seen: Vec<Seen> = std::iter::from_fn(|| events.try_next())
            .map(|e| (kind(&e), e.revision().unwrap()))
            .collect();
        assert_eq!(
            seen,
            [
                ("created", 1),
                ("created", 2),
                ("expired", 3),
                ("expired", 4),
                ("created", 5)
            ]
        );
        assert_eq!(m.stats().expirations, 2);
        drop(m);
        let m = open(storage.clone(), &clock).await;
        assert_eq!(m.list_context_ids().await, ["b"]);
        assert_eq!(m.create_context("c", json!({})).await.unwrap().revision, 6);
    });
}

#[test]
fn a_sliding_get_is_stored_and_survives_a_reopen() {
    futures::executor::block_on(async {
        let clock = ManualClock::new(1_000);
        let storage = Faulty::default();
        let sliding = ManagerConfig {
            sliding_ttl: true,
            ..config()
        };
        let opened = ContextManager::builder(sliding.clone())
            .clock(clock.clone())
            .open(storage.clone())
            .await
            .unwrap();
        let m = opened.manager;
        let ttl = CreateOptions {
            ttl_ms: Some(100),
            ..CreateOptions::default()
        };
        let s = m.create_context_with("a", json!({}), ttl).await.unwrap();
        let b = m.create_context("b", json!({})).await.unwrap();
        clock.advance(60);
        let slid = m.get_context("a").await.unwrap();
        assert_eq!(
            (slid.version, slid.revision, slid.expires_at_ms),
            (s.version, s.revision, Some(1_160))
        );
        // A sliding get that moves a deadline is a durable write of the same
        // version; one that would move nothing (no TTL, or the same
        // millisecond) writes nothing.
        assert_eq!(*m.get_context("b").await.unwrap(), *b);
        assert_eq!(*m.get_context("a").await.unwrap(), *slid);
        let puts = storage.log.lock().unwrap().clone();
        assert_eq!((&puts["a"][..], &puts["b"][..]), (&[1, 1][..], &[1][..]));
        // A manager reopened on what storage holds sees the slid expiry, on
        // the same deadline (with sliding off, so its reads move nothing).
        let reopened = open(storage.inner.duplicate(), &clock).await;
        assert_eq!(dump(&reopened).await, dump(&m).await);
        clock.advance(60); // 1,120: past the created deadline
        assert_eq!(
            reopened.get_context("a").await.unwrap().expires_at_ms,
            Some(1_160)
        );
        clock.advance(40);
        assert_eq!(
            reopened.get_context("a").await.unwrap_err().code(),
            "NOT_FOUND"
        );
    });
}
