//! Background tasks on tokio, driven deterministically: a manual clock for the
//! store and tokio's paused clock for the timers.

use contextkit::{
    AdapterConfig, ContextAdapter, ContextManager, ContextTracker, CreateOptions, ManagerConfig,
    ManualClock, TrackerConfig, json, spawn_auto_sync, spawn_auto_sync_with, spawn_cleanup,
};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn manager() -> (ContextManager, ManualClock) {
    let clock = ManualClock::new(0);
    let m = ContextManager::builder(ManagerConfig::default())
        .clock(clock.clone())
        .build();
    (m, clock)
}

fn expiring(ms: u64) -> CreateOptions {
    CreateOptions {
        ttl_ms: Some(ms),
        ..CreateOptions::default()
    }
}

/// Lets spawned tasks run until they wait on a timer again.
async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn cleanup_task_sweeps_each_period_and_stops_when_dropped() {
    let (m, clock) = manager();
    let sweeper = spawn_cleanup(&m, Duration::from_secs(10));
    settle().await; // the first tick fires at once
    m.create_context_with("a", json!({}), expiring(5_000))
        .await
        .unwrap();
    m.create_context("keep", json!({})).await.unwrap();
    clock.advance(5_000);
    assert_eq!(m.stats().expirations, 0);
    tokio::time::advance(Duration::from_secs(10)).await;
    settle().await;
    assert_eq!(m.stats().expirations, 1);
    assert_eq!(m.stats().contexts, 1);

    drop(sweeper);
    m.create_context_with("b", json!({}), expiring(1))
        .await
        .unwrap();
    clock.advance(1);
    tokio::time::advance(Duration::from_secs(60)).await;
    settle().await;
    assert_eq!(m.stats().expirations, 1, "a dropped handle stops the task");
}

#[tokio::test(start_paused = true)]
async fn cleanup_task_works_on_an_adapter() {
    let (m, clock) = manager();
    let adapter = ContextAdapter::new(
        m.clone(),
        AdapterConfig {
            ttl_ms: Some(100),
            auto_cleanup: false,
            ..AdapterConfig::default()
        },
    );
    adapter.create_context("s", json!({})).await.unwrap();
    let sweeper = spawn_cleanup(&adapter, Duration::from_millis(50));
    clock.advance(100);
    tokio::time::advance(Duration::from_millis(50)).await;
    settle().await;
    assert_eq!(m.stats().expirations, 1);
    sweeper.stop().await;
}

#[tokio::test(start_paused = true)]
async fn auto_sync_pushes_dirty_copies_after_the_interval() {
    let (m, clock) = manager();
    m.create_context("doc", json!({ "v": 0 })).await.unwrap();
    let t = ContextTracker::new(
        m.clone(),
        TrackerConfig {
            sync_interval_ms: 1_000,
            ..TrackerConfig::default()
        },
    );
    t.activate_context("doc").await.unwrap();
    let syncer = spawn_auto_sync(&t, Duration::from_millis(100));
    t.update_state(json!({ "v": 1 })).await.unwrap();
    clock.advance(500);
    tokio::time::advance(Duration::from_millis(100)).await;
    settle().await;
    assert!(t.is_dirty().await, "interval not yet passed");
    clock.advance(500);
    tokio::time::advance(Duration::from_millis(100)).await;
    settle().await;
    assert!(!t.is_dirty().await);
    assert_eq!(m.get_context("doc").await.unwrap().data, json!({ "v": 1 }));
    assert!(!syncer.is_finished());
    syncer.stop().await;

    t.update_state(json!({ "v": 2 })).await.unwrap();
    clock.advance(5_000);
    tokio::time::advance(Duration::from_secs(5)).await;
    settle().await;
    assert!(t.is_dirty().await, "a stopped task does not sync");
}

#[tokio::test(start_paused = true)]
async fn auto_sync_reports_failures() {
    let (m, clock) = manager();
    m.create_context("doc", json!({})).await.unwrap();
    let t = ContextTracker::new(
        m.clone(),
        TrackerConfig {
            sync_interval_ms: 10,
            ..TrackerConfig::default()
        },
    );
    t.activate_context("doc").await.unwrap();
    m.update_context("doc", json!({ "remote": true }), None)
        .await
        .unwrap();
    t.update_state(json!({ "local": true })).await.unwrap();
    let errors = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&errors);
    let _syncer = spawn_auto_sync_with(&t, Duration::from_millis(10), move |e| {
        sink.lock().unwrap().push(e.code())
    });
    clock.advance(10);
    tokio::time::advance(Duration::from_millis(10)).await;
    settle().await;
    assert_eq!(errors.lock().unwrap().first(), Some(&"VERSION_CONFLICT"));
    assert!(t.is_dirty().await);
}

#[test]
fn public_types_are_send_and_sync() {
    fn check<T: Send + Sync + Clone + std::fmt::Debug>() {}
    check::<ContextManager>();
    check::<ContextTracker>();
    check::<ContextAdapter>();
    fn send<T: Send>(_: &T) {}
    let m = ContextManager::new(ManagerConfig::default());
    send(&m.create_context("a", json!({})));
    send(&m.subscribe());
    let t = ContextTracker::new(m.clone(), TrackerConfig::default());
    send(&t.sync_state());
}
