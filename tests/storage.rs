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
        let points = m.recovery_points(&s.id).await.unwrap();
        out.push((ContextState::clone(&s), points));
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
                return Err(ContextError::Storage("injected write failure".into()));
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
                return Err(ContextError::Storage("injected delete failure".into()));
            }
            self.inner.delete(id).await
        })
    }

    fn put_meta(&self, meta: Meta) -> StorageFuture<'_, ()> {
        Box::pin(async move {
            self.pause().await;
            if self.should_fail() {
                return Err(ContextError::Storage("injected meta failure".into()));
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

        let point = m.recovery_points("a").await.unwrap()[0].id;
        m.update_context("a", json!({ "v": 3 }), None)
            .await
            .unwrap();
        storage.fail(1);
        assert_eq!(
            m.restore_recovery_point("a", point)
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
fn writes_dropped_in_flight_are_repaired_from_storage() {
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
        // A write to each id settles any abandoned flight first.
        for i in 0..4 {
            let _ = m
                .update_context(&format!("k{i}"), json!({ "final": true }), None)
                .await;
        }
        assert_reopen_matches(&m, &storage.inner, &clock, "dropped writes").await;
        assert_eq!(m.stats().contexts, m.list_context_ids().await.len());
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
            points: Vec::new(),
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
