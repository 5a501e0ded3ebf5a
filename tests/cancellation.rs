//! Cancellation: futures dropped after their first poll leave the store
//! consistent, with no stuck lock and no half-applied change.

use contextkit::{
    AdapterConfig, ContextAdapter, ContextEvent, ContextManager, ContextTracker, ManagerConfig,
    Scoped, TrackerConfig, json,
};
use futures::FutureExt;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_time()
        .build()
        .unwrap()
}

/// A writer queued behind a held lock, then dropped, must not wedge the lock
/// nor apply its change.
#[test]
fn dropped_waiting_write_applies_nothing_and_frees_the_lock() {
    let scoped = Arc::new(Scoped::new(Vec::<&str>::new()));
    let (entered_tx, entered_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let holder = {
        let scoped = Arc::clone(&scoped);
        std::thread::spawn(move || {
            futures::executor::block_on(scoped.write(|v| {
                entered_tx.send(()).unwrap();
                release_rx.recv().unwrap();
                v.push("holder");
            }));
        })
    };
    entered_rx.recv().unwrap();
    // The lock is held: both first polls are pending, and both futures are dropped.
    assert!(
        scoped
            .write(|v| v.push("cancelled writer"))
            .now_or_never()
            .is_none()
    );
    assert!(scoped.read(|v| v.len()).now_or_never().is_none());
    release_tx.send(()).unwrap();
    holder.join().unwrap();
    futures::executor::block_on(async {
        scoped.write(|v| v.push("after")).await;
        assert_eq!(scoped.read(|v| v.clone()).await, ["holder", "after"]);
    });
}

#[test]
fn operations_dropped_midway_leave_the_store_consistent() {
    runtime().block_on(async {
        let m = ContextManager::builder(ManagerConfig {
            max_contexts: 6,
            max_recovery_points: 3,
            ..ManagerConfig::default()
        })
        .event_capacity(1 << 20)
        .build();
        let adapter = ContextAdapter::new(
            m.clone(),
            AdapterConfig {
                max_active_contexts: 3,
                ..AdapterConfig::default()
            },
        );
        let mut events = m.subscribe();
        let dropped = Arc::new(AtomicUsize::new(0));
        let workers: Vec<_> = (0..8)
            .map(|w| {
                let (m, adapter, dropped) = (m.clone(), adapter.clone(), Arc::clone(&dropped));
                tokio::spawn(async move {
                    let tracker = ContextTracker::new(m.clone(), TrackerConfig::default());
                    let mut rng = 0x51_7cc1_b727_220a_u64 ^ ((w as u64 + 1) * 0x9e37_79b9);
                    for _ in 0..4_000 {
                        rng ^= rng << 13;
                        rng ^= rng >> 7;
                        rng ^= rng << 17;
                        let id = format!("c{}", rng % 8);
                        let n = rng % 1_000;
                        let op = rng % 11;
                        let fut: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> =
                            match op {
                                0 => Box::pin(m.create_context(&id, json!({ "n": n })).map(drop)),
                                1 => Box::pin(
                                    m.update_context(&id, json!({ "n": n }), Some(n % 4 + 1))
                                        .map(drop),
                                ),
                                2 => Box::pin(
                                    m.update_context(&id, json!({ "n": n }), None).map(drop),
                                ),
                                3 => Box::pin(m.delete_context(&id).map(drop)),
                                4 => Box::pin(m.create_recovery_point(&id).map(drop)),
                                5 => Box::pin({
                                    let m = m.clone();
                                    let id = id.clone();
                                    async move {
                                        if let Ok(snapshots) = m.recovery_points(&id).await
                                            && let Some(p) = snapshots.first()
                                        {
                                            let _ = m.restore_recovery_point(&id, p.id).await;
                                        }
                                    }
                                }),
                                6 => Box::pin(m.cleanup_expired().map(drop)),
                                7 => Box::pin({
                                    let tracker = tracker.clone();
                                    let id = id.clone();
                                    async move {
                                        let _ = tracker.discard_changes().await;
                                        let _ = tracker.activate_context(&id).await;
                                        let _ = tracker.update_state(json!({ "tracked": n })).await;
                                        let _ = tracker.sync_state().await;
                                    }
                                }),
                                8 => Box::pin(adapter.activate_context(&id).map(drop)),
                                9 => Box::pin(adapter.deactivate_context(&id).map(drop)),
                                _ => Box::pin(m.get_context(&id).map(drop)),
                            };
                        // Poll once; if it is not done, drop it right there.
                        if fut.now_or_never().is_none() {
                            dropped.fetch_add(1, Ordering::Relaxed);
                        }
                        if (rng >> 7) & 3 == 0 {
                            tokio::task::yield_now().await;
                        }
                    }
                })
            })
            .collect();
        for w in workers {
            w.await.unwrap();
        }
        assert!(
            dropped.load(Ordering::Relaxed) > 0,
            "no future was cancelled while pending"
        );

        // No stuck lock: every operation on every id still completes.
        let settle = async {
            for i in 0..8 {
                let id = format!("c{i}");
                let _ = m.update_context(&id, json!({ "final": true }), None).await;
                let _ = m.create_recovery_point(&id).await;
                let _ = adapter.activate_context(&id).await;
            }
            m.cleanup_expired().await;
        };
        tokio::time::timeout(Duration::from_secs(30), settle)
            .await
            .expect("a lock is stuck");

        // No half-applied change: the store, its counters and its event log agree.
        let ids = m.list_context_ids().await;
        let s = m.stats();
        assert_eq!(s.contexts, ids.len());
        assert!(ids.len() <= 6);
        assert_eq!(
            s.creates - s.deletes - s.expirations - s.evictions,
            s.contexts
        );
        let mut last: BTreeMap<String, u64> = BTreeMap::new();
        while let Some(e) = events.try_next() {
            let id = e.id().expect("no lag").to_owned();
            let prev = last.get(&id).copied().unwrap_or(0);
            match e {
                ContextEvent::Created { version, .. } => assert_eq!((prev, version), (0, 1)),
                ContextEvent::Updated { version, .. } | ContextEvent::Restored { version, .. } => {
                    assert_eq!(version, prev + 1, "{id}")
                }
                ContextEvent::Deleted { version, .. } => assert_eq!(version, prev, "{id}"),
                other => panic!("unexpected {other:?}"),
            }
            let now = if matches!(e, ContextEvent::Deleted { .. }) {
                0
            } else {
                e.version().unwrap()
            };
            last.insert(id, now);
        }
        for (id, version) in &last {
            match m.get_context(id).await {
                Ok(state) => {
                    assert_eq!(state.version, *version, "{id}");
                    for p in m.recovery_points(id).await.unwrap() {
                        assert!(p.version <= state.version);
                        assert_eq!(p.context_id, *id);
                    }
                }
                Err(e) => assert_eq!((e.code(), *version), ("NOT_FOUND", 0), "{id}"),
            }
        }
        assert!(adapter.list_active_context_ids().await.len() <= 3);
    });
}
