//! Loom models: every interleaving (up to a preemption bound) of the scoped
//! lock and of the critical sections of create, update with compare-and-set
//! and delete, on async-lock built with its `loom` feature.
//!
//! Run with:
//! `RUSTFLAGS="--cfg loom" cargo test -p contextkit-core --test loom --release`
//! (`LOOM_MAX_PREEMPTIONS` overrides the bound of 3 used here.)
//!
//! Under `cfg(loom)` async-lock's `RwLock::new` is not `const`, so
//! `Scoped::new` has a `#[cfg(loom)]` twin without `const`.
//!
//! Most manager models drive the real `ContextManager` with one shard, so both
//! threads contend for the same `Scoped` map; two run on many shards, where
//! creates of different ids meet only in the compare-and-set on the context
//! count. Loom explores async-lock's atomics and event listeners, and under
//! `cfg(loom)` the core's own atomics and mutexes are loom's too (they all
//! come from `core/src/sync.rs`).
#![cfg(loom)]

use contextkit_core::{ContextManager, ManagerConfig, ManualClock, Scoped};
use loom::future::block_on;
use loom::sync::Arc;
use loom::thread;
use serde_json::json;

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(3);
    }
    builder.check(f);
}

fn manager(max_contexts: usize) -> ContextManager {
    let cfg = ManagerConfig {
        max_contexts,
        ..ManagerConfig::default()
    };
    ContextManager::builder(cfg)
        .clock(ManualClock::new(0))
        .shards(1)
        .build()
}

/// A manager on eight shards, on `clock`.
fn sharded(max_contexts: usize, clock: &ManualClock) -> ContextManager {
    let cfg = ManagerConfig {
        max_contexts,
        ..ManagerConfig::default()
    };
    ContextManager::builder(cfg)
        .clock(clock.clone())
        .shards(8)
        // A fixed seed: loom replays each interleaving, so the ids must land
        // on the same shards every time ("a", "b" and "gone" on three
        // different ones, checked by a unit test in store.rs).
        .hash_seed([1, 2, 3, 4])
        .build()
}

fn code<T>(r: contextkit_core::Result<T>) -> Result<T, &'static str> {
    r.map_err(|e| e.code())
}

/// A write closure is exclusive: two read-modify-write sections never lose
/// an update, and a reader never sees a half-done write.
#[test]
fn scoped_writes_are_exclusive_and_reads_never_see_half_a_write() {
    model(|| {
        let cell = Arc::new(Scoped::new((0_u32, 0_u32)));
        let writers: Vec<_> = (0..2)
            .map(|_| {
                let cell = Arc::clone(&cell);
                thread::spawn(move || {
                    block_on(cell.write(|(a, b)| {
                        let seen = *a;
                        *a = seen + 1;
                        *b = seen + 1;
                    }));
                })
            })
            .collect();
        let (a, b) = block_on(cell.read(|v| *v));
        assert_eq!(a, b, "a reader saw half of a write");
        for w in writers {
            w.join().unwrap();
        }
        assert_eq!(block_on(cell.read(|v| *v)), (2, 2));
    });
}

/// `try_read` never runs its closure while a write closure is running.
#[test]
fn scoped_try_read_never_overlaps_a_write() {
    model(|| {
        let cell = Arc::new(Scoped::new((0_u32, 0_u32)));
        let writer = {
            let cell = Arc::clone(&cell);
            thread::spawn(move || {
                block_on(cell.write(|(a, b)| {
                    *a = 1;
                    *b = 1;
                }))
            })
        };
        if let Some((a, b)) = cell.try_read(|v| *v) {
            assert_eq!(a, b);
        }
        writer.join().unwrap();
    });
}

/// Two creates of one id: exactly one wins, the other is ALREADY_EXISTS,
/// and the stored data is the winner's.
#[test]
fn concurrent_creates_of_one_id_have_exactly_one_winner() {
    model(|| {
        let m = manager(10);
        let threads: Vec<_> = (0..2_u32)
            .map(|n| {
                let m = m.clone();
                thread::spawn(move || code(block_on(m.create_context("a", json!({ "n": n })))))
            })
            .collect();
        let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        let winners: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert_eq!(winners.len(), 1, "{results:?}");
        assert!(
            results
                .iter()
                .any(|r| r.as_ref().err() == Some(&"ALREADY_EXISTS"))
        );
        let stored = block_on(m.get_context("a")).unwrap();
        assert_eq!(stored.data, winners[0].data);
        assert_eq!(m.stats().contexts, 1);
    });
}

/// At capacity 1, creates of two different ids: exactly one fits.
#[test]
fn concurrent_creates_never_exceed_capacity() {
    model(|| {
        let results = exactly_one_of_two_creates_wins(&manager(1));
        assert!(
            results
                .iter()
                .any(|r| r.as_ref().err() == Some(&"CAPACITY_EXCEEDED"))
        );
    });
}

/// Creates "a" and "b" on two threads of a manager with room for one more:
/// exactly one wins, and the store then holds one context. Returns both results.
fn exactly_one_of_two_creates_wins(m: &ContextManager) -> Vec<Result<(), &'static str>> {
    let threads: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|id| {
            let m = m.clone();
            thread::spawn(move || code(block_on(m.create_context(id, json!({})))).map(drop))
        })
        .collect();
    let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    assert_eq!(block_on(m.len()), 1);
    results
}

/// Creates of two ids on different shards at capacity 1: their sections do
/// not exclude each other, and the count's compare-and-set lets one win.
#[test]
fn creates_on_different_shards_never_exceed_capacity() {
    model(|| {
        let m = sharded(1, &ManualClock::new(0));
        exactly_one_of_two_creates_wins(&m);
        assert_eq!(m.stats().contexts, 1);
    });
}

/// A full store whose only context has expired, and two creates of other ids
/// on other shards: the expired one does not count, so exactly one create
/// wins (whichever sweeps first), never both, never neither.
#[test]
fn creates_at_capacity_across_shards_sweep_an_expired_context_once() {
    model(|| {
        let clock = ManualClock::new(0);
        let m = sharded(1, &clock);
        let opts = contextkit_core::CreateOptions {
            ttl_ms: Some(10),
            ..Default::default()
        };
        block_on(m.create_context_with("gone", json!({}), opts)).unwrap();
        clock.advance(10);
        exactly_one_of_two_creates_wins(&m);
        assert_eq!(m.stats().contexts, 1);
    });
}

/// Two compare-and-set updates from version 1: exactly one commits version 2,
/// the other is a VERSION_CONFLICT that reports version 2.
#[test]
fn concurrent_compare_and_set_updates_have_exactly_one_winner() {
    model(|| {
        let m = manager(10);
        block_on(m.create_context("a", json!({ "n": 0 }))).unwrap();
        let threads: Vec<_> = (1..=2_u32)
            .map(|n| {
                let m = m.clone();
                thread::spawn(move || block_on(m.update_context("a", json!({ "n": n }), Some(1))))
            })
            .collect();
        let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        let winners: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert_eq!(winners.len(), 1, "{results:?}");
        assert_eq!(winners[0].version, 2);
        let loser = results.iter().find_map(|r| r.as_ref().err()).unwrap();
        assert!(
            matches!(
                loser,
                contextkit_core::ContextError::VersionConflict {
                    expected: 1,
                    actual: 2,
                    ..
                }
            ),
            "{loser:?}"
        );
        let stored = block_on(m.get_context("a")).unwrap();
        assert_eq!((stored.version, &stored.data), (2, &winners[0].data));
    });
}

/// A delete racing an update: the update either lands before the delete or
/// finds nothing; the context never comes back.
#[test]
fn delete_racing_an_update_is_never_undone() {
    model(|| {
        let m = manager(10);
        block_on(m.create_context("a", json!({ "n": 0 }))).unwrap();
        let deleter = {
            let m = m.clone();
            thread::spawn(move || code(block_on(m.delete_context("a"))))
        };
        let updater = {
            let m = m.clone();
            thread::spawn(move || code(block_on(m.update_context("a", json!({ "n": 1 }), None))))
        };
        let deleted = deleter.join().unwrap();
        let updated = updater.join().unwrap();
        assert_eq!(deleted, Ok(()));
        match updated {
            Ok(s) => assert_eq!(s.version, 2),
            Err(code) => assert_eq!(code, "NOT_FOUND"),
        }
        assert_eq!(code(block_on(m.get_context("a"))).unwrap_err(), "NOT_FOUND");
        assert_eq!(m.stats().contexts, 0);
    });
}

/// The control: the same exploration finds the race when a create checks
/// under a read section and inserts under a later write section.
#[test]
#[should_panic(expected = "both creates won")]
fn loom_finds_a_check_then_act_split_across_two_sections() {
    model(|| {
        let map = Arc::new(Scoped::new(std::collections::HashMap::<&str, u32>::new()));
        let threads: Vec<_> = (0..2_u32)
            .map(|n| {
                let map = Arc::clone(&map);
                thread::spawn(move || {
                    block_on(async {
                        if map.read(|m| m.contains_key("a")).await {
                            return false;
                        }
                        map.write(|m| m.insert("a", n)).await;
                        true
                    })
                })
            })
            .collect();
        let won = threads
            .into_iter()
            .map(|t| t.join().unwrap())
            .filter(|&w| w)
            .count();
        assert!(won <= 1, "both creates won");
    });
}
