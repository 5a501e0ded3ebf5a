//! Exact outcomes under contention: many tasks on a multi-threaded tokio
//! runtime race on one store, and each test asserts precisely what must result.

use contextkit::{
    ContextError, ContextEvent, ContextManager, ContextTracker, CreateOptions, ManagerConfig,
    ManualClock, TrackerConfig, json,
};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .build()
        .unwrap()
}

/// Every event carries a revision, each larger than the one before.
fn assert_revisions_increase(seen: &[ContextEvent]) {
    let revisions: Vec<u64> = seen.iter().map(|e| e.revision().unwrap()).collect();
    assert!(
        revisions.windows(2).all(|w| w[0] < w[1]),
        "revisions out of order: {revisions:?}"
    );
}

/// Runs `n` copies of `task(i)` at once, returning their results in index order.
async fn race<F, Fut, T>(n: usize, task: F) -> Vec<T>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let handles: Vec<_> = (0..n).map(|i| tokio::spawn(task(i))).collect();
    let mut out = Vec::with_capacity(n);
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[test]
fn create_never_overwrites_under_contention() {
    runtime().block_on(async {
        for round in 0..50 {
            let m = ContextManager::new(ManagerConfig::default());
            let id = format!("same-{round}");
            let results = race(64, |i| {
                let (m, id) = (m.clone(), id.clone());
                async move { m.create_context(&id, json!({ "task": i })).await }
            })
            .await;
            let winners: Vec<usize> = (0..64).filter(|&i| results[i].is_ok()).collect();
            assert_eq!(winners.len(), 1, "round {round}: {winners:?}");
            for r in results.iter().filter(|r| r.is_err()) {
                let e = r.as_ref().unwrap_err();
                assert_eq!(e, &ContextError::AlreadyExists { id: id.clone() });
            }
            let stored = m.get_context(&id).await.unwrap();
            assert_eq!(stored.data, json!({ "task": winners[0] }));
            assert_eq!(stored.version, 1);
            assert_eq!(m.stats().creates, 1);
        }
    });
}

#[test]
fn capacity_is_never_exceeded_under_contention() {
    runtime().block_on(async {
        for _ in 0..10 {
            let m = ContextManager::new(ManagerConfig {
                max_contexts: 100,
                ..ManagerConfig::default()
            });
            let per_task = race(32, |t| {
                let m = m.clone();
                async move {
                    let mut ok = 0;
                    let mut full = 0;
                    // 32 tasks share ids 0..1000 round-robin.
                    for i in (t..1000).step_by(32) {
                        match m
                            .create_context(&format!("ctx-{i}"), json!({ "i": i }))
                            .await
                        {
                            Ok(_) => ok += 1,
                            Err(e) => {
                                assert_eq!(e.code(), "CAPACITY_EXCEEDED");
                                full += 1;
                            }
                        }
                    }
                    (ok, full)
                }
            })
            .await;
            let ok: usize = per_task.iter().map(|r| r.0).sum();
            let full: usize = per_task.iter().map(|r| r.1).sum();
            assert_eq!((ok, full), (100, 900));
            assert_eq!(m.list_context_ids().await.len(), 100);
            assert_eq!(m.len().await, 100);
            assert_eq!(m.stats().contexts, 100);
        }
    });
}

#[test]
fn compare_and_set_increments_are_exact() {
    runtime().block_on(async {
        let m = ContextManager::new(ManagerConfig::default());
        m.create_context("counter", json!({ "n": 0 }))
            .await
            .unwrap();
        let retries = race(16, |_| {
            let m = m.clone();
            async move {
                let mut retries = 0;
                for _ in 0..100 {
                    loop {
                        let s = m.get_context("counter").await.unwrap();
                        let n = s.data["n"].as_u64().unwrap();
                        match m
                            .update_context("counter", json!({ "n": n + 1 }), Some(s.version))
                            .await
                        {
                            Ok(_) => break,
                            Err(ContextError::VersionConflict { .. }) => retries += 1,
                            Err(e) => panic!("unexpected {e}"),
                        }
                    }
                }
                retries
            }
        })
        .await;
        let s = m.get_context("counter").await.unwrap();
        assert_eq!(s.data, json!({ "n": 1600 }));
        assert_eq!(s.version, 1601);
        assert_eq!(m.stats().updates, 1600);
        assert_eq!(m.stats().conflicts, retries.iter().sum::<usize>());
    });
}

#[test]
fn deleted_context_never_comes_back() {
    runtime().block_on(async {
        for round in 0..20 {
            // Room for every event of the round, so the check below sees them all.
            let m = ContextManager::builder(ManagerConfig::default())
                .event_capacity(1 << 20)
                .build();
            m.create_context("x", json!({ "n": 0 })).await.unwrap();
            let mut events = m.subscribe();
            let updaters = race(8, |t| {
                let m = m.clone();
                async move {
                    let mut versions = Vec::new();
                    for n in 0.. {
                        match m.update_context("x", json!({ "t": t, "n": n }), None).await {
                            Ok(s) => versions.push(s.version),
                            Err(e) => {
                                assert_eq!(e.code(), "NOT_FOUND");
                                break;
                            }
                        }
                        tokio::task::yield_now().await;
                    }
                    versions
                }
            });
            let deleter = {
                let m = m.clone();
                tokio::spawn(async move {
                    tokio::task::yield_now().await;
                    m.delete_context("x").await
                })
            };
            let updaters = updaters.await;
            deleter.await.unwrap().unwrap();
            // Every update after the delete failed; nothing brought "x" back.
            assert_eq!(
                m.get_context("x").await.unwrap_err().code(),
                "NOT_FOUND",
                "round {round}"
            );
            assert!(m.list_context_ids().await.is_empty());
            let committed: BTreeSet<u64> = updaters.into_iter().flatten().collect();
            let seen: Vec<ContextEvent> = std::iter::from_fn(|| events.try_next()).collect();
            let (last, updates) = seen.split_last().unwrap();
            let last_version = committed.iter().max().copied().unwrap_or(1);
            assert!(
                matches!(last, ContextEvent::Deleted { id, version, .. }
                    if id == "x" && *version == last_version),
                "round {round}: {last:?}"
            );
            assert_revisions_increase(&seen);
            assert_eq!(updates.len(), committed.len());
        }
    });
}

#[test]
fn apply_remote_never_regresses() {
    runtime().block_on(async {
        let m = ContextManager::new(ManagerConfig::default());
        m.create_context("a", json!({ "n": 1 })).await.unwrap();
        let t = ContextTracker::new(m.clone(), TrackerConfig::default());
        t.activate_context("a").await.unwrap();
        let mut states = Vec::new();
        for n in 2..=201 {
            states.push(
                m.update_context("a", json!({ "n": n }), None)
                    .await
                    .unwrap(),
            );
        }
        // Deal the versions out of order to 8 feeders.
        let mut shuffled = states.clone();
        let mut seed = 0x9e37_79b9_u64;
        for i in (1..shuffled.len()).rev() {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            shuffled.swap(i, (seed % (i as u64 + 1)) as usize);
        }
        let shuffled = Arc::new(shuffled);
        let watcher = {
            let t = t.clone();
            tokio::spawn(async move {
                let mut last = 0;
                for _ in 0..2_000 {
                    let v = t.get_state().await.unwrap().version;
                    assert!(v >= last, "went back from {last} to {v}");
                    last = v;
                    tokio::task::yield_now().await;
                }
            })
        };
        let adopted = race(8, |f| {
            let (t, states) = (t.clone(), Arc::clone(&shuffled));
            async move {
                let mut adopted = 0;
                for s in states.iter().skip(f).step_by(8) {
                    adopted += usize::from(t.apply_remote(Arc::clone(s)).await);
                    tokio::task::yield_now().await;
                }
                adopted
            }
        })
        .await;
        watcher.await.unwrap();
        assert_eq!(t.get_state().await.unwrap().version, 201);
        assert_eq!(t.get_state().await.unwrap().data, json!({ "n": 201 }));
        assert!(adopted.iter().sum::<usize>() >= 1);
    });
}

#[test]
fn cleanup_racing_refresh_keeps_refreshed_contexts() {
    runtime().block_on(async {
        for _ in 0..10 {
            let clock = ManualClock::new(0);
            let m = ContextManager::builder(ManagerConfig::default())
                .clock(clock.clone())
                .build();
            let ids: Vec<String> = (0..500).map(|i| format!("s{i}")).collect();
            let ttl = CreateOptions {
                ttl_ms: Some(100),
                ..CreateOptions::default()
            };
            for id in &ids {
                m.create_context_with(id, json!({}), ttl.clone())
                    .await
                    .unwrap();
            }
            clock.set(99);
            let refreshers = race(4, |t| {
                let (m, ids) = (m.clone(), ids.clone());
                async move {
                    let mut refreshed = Vec::new();
                    for id in ids.iter().skip(t).step_by(4) {
                        match m.update_context(id, json!({ "fresh": true }), None).await {
                            Ok(s) => refreshed.push((id.clone(), s.expires_at_ms.unwrap())),
                            Err(e) => assert_eq!(e.code(), "NOT_FOUND"),
                        }
                    }
                    refreshed
                }
            });
            let sweeper = {
                let (m, clock) = (m.clone(), clock.clone());
                tokio::spawn(async move {
                    tokio::task::yield_now().await;
                    clock.set(150);
                    let mut swept = 0;
                    for _ in 0..4 {
                        swept += m.cleanup_expired().await;
                        tokio::task::yield_now().await;
                    }
                    swept
                })
            };
            let refreshed: Vec<(String, u64)> = refreshers.await.into_iter().flatten().collect();
            let swept = sweeper.await.unwrap() + m.cleanup_expired().await;
            // Refreshed at 99 (expiring at 199) survive; the rest expired at 100 and went.
            for (id, expires) in &refreshed {
                assert_eq!(*expires, 199);
                assert!(
                    m.get_context(id).await.is_ok(),
                    "{id} was refreshed but removed"
                );
            }
            // Writers that met an expired context removed it themselves.
            let expired = m.stats().expirations;
            assert!(swept <= expired);
            assert_eq!(refreshed.len() + expired, ids.len());
            assert_eq!(m.len().await, refreshed.len());
            assert_eq!(m.stats().contexts, refreshed.len());
        }
    });
}

#[test]
fn concurrent_recovery_points_keep_exactly_the_newest() {
    runtime().block_on(async {
        let m = ContextManager::new(ManagerConfig {
            max_recovery_points: 5,
            ..ManagerConfig::default()
        });
        m.create_context("a", json!({})).await.unwrap();
        let ids = race(16, |_| {
            let m = m.clone();
            async move {
                let mut ids = Vec::new();
                for _ in 0..20 {
                    ids.push(m.create_recovery_point("a").await.unwrap().id);
                    tokio::task::yield_now().await;
                }
                ids
            }
        })
        .await;
        let mut all: Vec<u64> = ids.into_iter().flatten().collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 320, "snapshot ids are unique");
        let kept: Vec<u64> = m
            .recovery_points("a")
            .await
            .unwrap()
            .iter()
            .map(|p| p.id)
            .collect();
        assert_eq!(kept, all[all.len() - 5..]);
    });
}

#[test]
fn subscriber_sees_exactly_the_committed_history() {
    runtime().block_on(async {
        let m = ContextManager::builder(ManagerConfig::default())
            .event_capacity(1 << 16)
            .build();
        let mut events = m.subscribe();
        let committed = race(8, |t| {
            let m = m.clone();
            async move {
                let mut log = Vec::new();
                let mut deletes = 0;
                let mut rng = 0x2545_f491_u64 + t as u64;
                for _ in 0..300 {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    let id = format!("k{}", rng % 4);
                    let event = match rng % 5 {
                        0 => m.create_context(&id, json!({})).await.ok().map(|s| {
                            ContextEvent::Created {
                                id: id.clone(),
                                version: s.version,
                                revision: s.revision,
                            }
                        }),
                        1 => {
                            deletes += usize::from(m.delete_context(&id).await.is_ok());
                            None
                        }
                        2 => match m.create_recovery_point(&id).await {
                            Ok(p) => m.restore_recovery_point(&id, p.id).await.ok().map(|s| {
                                ContextEvent::Restored {
                                    id: id.clone(),
                                    version: s.version,
                                    revision: s.revision,
                                }
                            }),
                            Err(_) => None,
                        },
                        _ => m
                            .update_context(&id, json!({ "t": t }), None)
                            .await
                            .ok()
                            .map(|s| ContextEvent::Updated {
                                id: id.clone(),
                                version: s.version,
                                revision: s.revision,
                            }),
                    };
                    log.extend(event);
                    tokio::task::yield_now().await;
                }
                (log, deletes)
            }
        })
        .await;
        let seen: Vec<ContextEvent> = std::iter::from_fn(|| events.try_next()).collect();
        assert_revisions_increase(&seen);
        let deletes: usize = committed.iter().map(|c| c.1).sum();
        // Deletes report the version they removed, known only to the store: take them from the stream.
        let mut expected: BTreeMap<String, Vec<ContextEvent>> = BTreeMap::new();
        for e in committed.into_iter().flat_map(|c| c.0) {
            expected
                .entry(e.id().unwrap().to_owned())
                .or_default()
                .push(e);
        }
        let mut per_id: BTreeMap<String, Vec<ContextEvent>> = BTreeMap::new();
        for e in &seen {
            assert!(!matches!(e, ContextEvent::Lagged { .. }));
            per_id
                .entry(e.id().unwrap().to_owned())
                .or_default()
                .push(e.clone());
        }
        for (id, stream) in &per_id {
            // Per id, the stream is a valid life: created at 1, +1 per change, deleted at the last version.
            let mut version = 0;
            for e in stream {
                match e {
                    ContextEvent::Created { version: v, .. } => {
                        assert_eq!((version, *v), (0, 1), "{id}: {stream:?}");
                        version = 1;
                    }
                    ContextEvent::Updated { version: v, .. }
                    | ContextEvent::Restored { version: v, .. } => {
                        assert_eq!(*v, version + 1, "{id}");
                        version = *v;
                    }
                    ContextEvent::Deleted { version: v, .. } => {
                        assert_eq!(*v, version, "{id}");
                        version = 0;
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
            let mut non_delete: Vec<_> = stream
                .iter()
                .filter(|e| !matches!(e, ContextEvent::Deleted { .. }))
                .cloned()
                .collect();
            let mut want = expected.remove(id).unwrap_or_default();
            non_delete.sort_by_key(|e| format!("{e:?}"));
            want.sort_by_key(|e| format!("{e:?}"));
            assert_eq!(non_delete, want, "{id}");
        }
        assert!(expected.values().all(Vec::is_empty));
        let deleted = seen
            .iter()
            .filter(|e| matches!(e, ContextEvent::Deleted { .. }))
            .count();
        assert_eq!((deleted, m.stats().deletes), (deletes, deletes));
    });
}

/// Many tasks write different ids (on different shards) at once while a
/// subscriber reads: it sees every commit, in strictly increasing revision
/// order, with the revisions the calls returned; the removals bring their own,
/// and together they are exactly 1..=commits (every commit took one, in memory).
#[test]
fn events_arrive_in_revision_order_under_contention() {
    runtime().block_on(async {
        const TASKS: usize = 8;
        const ROUNDS: usize = 60;
        let m = ContextManager::builder(ManagerConfig::default())
            .event_capacity(1 << 16)
            .build();
        let mut events = m.subscribe();
        let reader = tokio::spawn(async move {
            use futures::StreamExt;
            let mut seen = Vec::new();
            // Ends once every handle on the manager is dropped.
            while let Some(e) = events.next().await {
                seen.push(e);
            }
            seen
        });
        let results = race(TASKS, |t| {
            let m = m.clone();
            async move {
                let mut returned = Vec::new();
                let mut deletes = 0;
                for round in 0..ROUNDS {
                    let id = format!("t{t}-{}", round % 3);
                    let s = match m.create_context(&id, json!({ "round": round })).await {
                        Ok(s) => s,
                        Err(_) => m
                            .update_context(&id, json!({ "round": round }), None)
                            .await
                            .unwrap(),
                    };
                    returned.push(s.revision);
                    if round % 4 == 1 {
                        let p = m.create_recovery_point(&id).await.unwrap();
                        returned.push(m.restore_recovery_point(&id, p.id).await.unwrap().revision);
                    }
                    if round % 5 == 2 {
                        m.delete_context(&id).await.unwrap();
                        deletes += 1;
                    }
                    tokio::task::yield_now().await;
                }
                (returned, deletes)
            }
        })
        .await;
        drop(m);
        let seen = reader.await.unwrap();
        assert!(
            seen.iter()
                .all(|e| !matches!(e, ContextEvent::Lagged { .. }))
        );
        assert_revisions_increase(&seen);
        let mut returned: Vec<u64> = results.iter().flat_map(|r| r.0.iter().copied()).collect();
        returned.sort_unstable();
        let deletes: usize = results.iter().map(|r| r.1).sum();
        let (removals, commits): (Vec<&ContextEvent>, Vec<&ContextEvent>) = seen
            .iter()
            .partition(|e| matches!(e, ContextEvent::Deleted { .. }));
        let committed: Vec<u64> = commits.iter().map(|e| e.revision().unwrap()).collect();
        let mut sorted = committed.clone();
        sorted.sort_unstable();
        assert_eq!(
            sorted, returned,
            "the events carry the revisions the calls returned"
        );
        assert_eq!(removals.len(), deletes);
        let all: Vec<u64> = seen.iter().map(|e| e.revision().unwrap()).collect();
        let total = u64::try_from(all.len()).unwrap();
        assert_eq!(
            all,
            (1..=total).collect::<Vec<_>>(),
            "no revision skipped or repeated"
        );
    });
}
