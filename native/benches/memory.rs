//! Bytes per context: heap growth of a `ContextManager` holding 100,000
//! contexts with a 200-byte JSON payload each, counted by a global allocator.
//!
//! Besides contextkit it prints, for scale, the payload alone (the
//! `serde_json::Value` tree every store of JSON pays for) and the same
//! contexts in a plain `HashMap<String, Arc<Value>>`.
//!
//! ```text
//! cargo bench -p contextkit --bench memory             # 100,000 contexts
//! CONTEXTKIT_BENCH_SMOKE=1 cargo bench -p contextkit --bench memory   # 2,000
//! ```

use contextkit::{ContextManager, ManagerConfig, Value};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use std::alloc::System;
use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Serialized size of every payload.
const PAYLOAD_BYTES: usize = 200;

/// A JSON object of six fields (strings, numbers, a boolean) whose compact
/// serialization is exactly [`PAYLOAD_BYTES`] bytes; `i` varies the values.
fn payload(i: usize) -> Value {
    let mut v = contextkit::json!({
        "user": format!("user-{i:08}"),
        "step": i % 97,
        "active": i.is_multiple_of(2),
        "locale": "en-GB",
        "cart": format!("items-{i:06}"),
        "note": "",
    });
    let len = serde_json::to_vec(&v).map(|b| b.len()).unwrap_or(0);
    v["note"] = Value::String("n".repeat(PAYLOAD_BYTES - len));
    debug_assert_eq!(
        serde_json::to_vec(&v).map(|b| b.len()).ok(),
        Some(PAYLOAD_BYTES)
    );
    v
}

fn id(i: usize) -> String {
    format!("context-{i:06}")
}

/// Net heap bytes allocated while `f` runs, and what it returns (kept alive).
fn measure<T>(f: impl FnOnce() -> T) -> (isize, T) {
    let region = Region::new(GLOBAL);
    let kept = f();
    let stats = region.change();
    (
        stats.bytes_allocated as isize - stats.bytes_deallocated as isize,
        kept,
    )
}

fn main() {
    let smoke = std::env::var_os("CONTEXTKIT_BENCH_SMOKE").is_some_and(|v| v != "0");
    let n = if smoke { 2_000 } else { 100_000 };
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio runtime");

    // Built outside the measurement, the same for every store.
    for i in [0, 1, n - 1] {
        let len = serde_json::to_vec(&payload(i))
            .map(|b| b.len())
            .unwrap_or(0);
        assert_eq!(len, PAYLOAD_BYTES, "payload size");
    }

    let (payload_only, values) = measure(|| (0..n).map(payload).collect::<Vec<_>>());
    let vec_itself = (n * std::mem::size_of::<Value>()) as isize;
    drop(values);

    let (plain, map) = measure(|| {
        let mut m: HashMap<String, Arc<Value>> = HashMap::new();
        for i in 0..n {
            m.insert(id(i), Arc::new(payload(i)));
        }
        m
    });
    drop(map);

    let (kit, manager) = measure(|| {
        let m = ContextManager::new(ManagerConfig {
            max_contexts: n,
            ..ManagerConfig::default()
        });
        rt.block_on(async {
            for i in 0..n {
                m.create_context(&id(i), payload(i)).await.expect("create");
            }
        });
        m
    });
    let held = rt.block_on(manager.len());
    assert_eq!(held, n, "every context stored");
    black_box(&manager);

    let per = |bytes: isize| bytes as f64 / n as f64;
    let payload_tree = per(payload_only - vec_itself);
    let mode = if smoke { ", SMOKE MODE" } else { "" };
    println!(
        "\n## Memory per context ({n} contexts, {PAYLOAD_BYTES}-byte JSON payload, native{mode})\n"
    );
    println!("| what | bytes per context | × payload size |");
    println!("|---|---:|---:|");
    let row = |what: &str, b: f64| {
        println!("| {what} | {b:.0} | {:.2}× |", b / PAYLOAD_BYTES as f64);
    };
    row("payload as a serde_json::Value (heap only)", payload_tree);
    row("HashMap<String, Arc<Value>> (id + Arc + Value)", per(plain));
    row("contextkit ContextManager", per(kit));
    let kit_per = per(kit);
    let met = if kit_per <= 3.0 * PAYLOAD_BYTES as f64 {
        "yes"
    } else {
        "**no**"
    };
    println!(
        "\ntarget: contextkit at most 3× the payload size per context: {:.2}×, met: {met}",
        kit_per / PAYLOAD_BYTES as f64
    );
}
