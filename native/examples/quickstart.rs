//! A tour of contextkit: the manager, a tracker and an adapter.
//!
//! Run it with `cargo run -p contextkit --example quickstart`.

use contextkit::{
    AdapterConfig, ConflictPolicy, ContextAdapter, ContextManager, ContextTracker, CreateOptions,
    ManagerConfig, TrackerConfig, json, spawn_cleanup,
};
use std::time::Duration;

#[tokio::main]
async fn main() -> contextkit::Result<()> {
    let manager = ContextManager::new(ManagerConfig::default());
    let mut events = manager.subscribe();

    println!("-- manager");
    let s = manager
        .create_context("session-1", json!({ "user": "ada", "step": 1 }))
        .await?;
    println!("created {} v{} {}", s.id, s.version, s.data);
    match manager.create_context("session-1", json!({})).await {
        Err(e) => println!("second create refused: {} ({e})", e.code()),
        Ok(_) => unreachable!("creates never overwrite"),
    }
    let s = manager
        .update_context(
            "session-1",
            json!({ "user": "ada", "step": 2 }),
            Some(s.version),
        )
        .await?;
    println!("updated to v{}", s.version);
    if let Err(e) = manager
        .update_context("session-1", json!({}), Some(1))
        .await
    {
        println!("stale write refused: {} ({e})", e.code());
    }
    let snapshot = manager.create_recovery_point("session-1").await?;
    manager
        .update_context("session-1", json!({ "user": "ada", "step": 99 }), None)
        .await?;
    let s = manager
        .restore_recovery_point("session-1", snapshot.id)
        .await?;
    println!(
        "restored recovery point {} -> v{} {}",
        snapshot.id, s.version, s.data
    );
    let opts = CreateOptions {
        ttl_ms: Some(50),
        ..CreateOptions::default()
    };
    manager
        .create_context_with("short-lived", json!({}), opts)
        .await?;

    println!("-- tracker");
    let tracker = ContextTracker::new(
        manager.clone(),
        TrackerConfig {
            conflict: ConflictPolicy::Reject,
            ..TrackerConfig::default()
        },
    );
    tracker.activate_context("session-1").await?;
    tracker
        .update_state(json!({ "user": "ada", "step": 3 }))
        .await?;
    println!("dirty after a local edit: {}", tracker.is_dirty().await);
    let s = tracker.sync_state().await?;
    println!(
        "synced to v{}, dirty: {}",
        s.version,
        tracker.is_dirty().await
    );

    println!("-- adapter");
    let adapter = ContextAdapter::new(
        manager.clone(),
        AdapterConfig {
            ttl_ms: Some(60_000),
            max_active_contexts: 8,
            ..AdapterConfig::default()
        },
    );
    adapter
        .create_context("chat-7", json!({ "messages": [] }))
        .await?;
    let active = adapter.activate_context("chat-7").await?;
    println!(
        "active: {:?}, same tracker again: {}",
        adapter.list_active_context_ids().await,
        active.same_as(&adapter.activate_context("chat-7").await?)
    );
    let sweeper = spawn_cleanup(&adapter, Duration::from_millis(20));
    tokio::time::sleep(Duration::from_millis(120)).await;
    sweeper.stop().await;
    println!("contexts now: {:?}", manager.list_context_ids().await);

    println!("-- events, in commit order");
    while let Some(event) = events.try_next() {
        println!("{event:?}");
    }
    println!("-- stats: {:?}", manager.stats());
    Ok(())
}
