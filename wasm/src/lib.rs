//! The wasm-bindgen front-end of contextkit, built into the npm package `contextkit`.
//!
//! A thin layer over [`contextkit_core`]: `ContextManager`, `ContextTracker` and
//! `ContextAdapter` with camelCase methods returning Promises, and errors that
//! are instances of the package's `ContextError` class. Every method clones the
//! core handle into its future, so calls may overlap freely on one object.
//! Values cross as JSON text (see `convert.rs`), events are delivered from a task
//! (see `events.rs`), and background work runs on JavaScript timers.

pub use contextkit_core as core;

mod adapter;
mod args;

/// TLSF: constant-time allocation and free, and a small fraction of the
/// code of the standard library's dlmalloc (see BENCHMARKS.md, "wasm size").
#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOCATOR: rlsf::SmallGlobalTlsf = rlsf::SmallGlobalTlsf::new();

mod cache;
mod contexts;
mod convert;
mod error;
mod events;
mod host;
// The JSON parser, in its own crate with its own tests and fuzz target.
use contextkit_json as json;
mod manager;
mod promise;
#[cfg(target_arch = "wasm32")]
mod shared;
#[cfg(target_arch = "wasm32")]
mod storage;
mod timer;
mod tracker;

pub use adapter::Adapter;
pub use convert::Support;
pub use manager::Manager;
pub use tracker::Tracker;

use wasm_bindgen::prelude::*;

/// Called once by the package's entry point with the JavaScript half of
/// contextkit (wasm/npm/support.js): its `ContextError` class, which every
/// error is an instance of, and the converters `toJson` and `makeState`.
#[wasm_bindgen(js_name = "__init", skip_typescript)]
pub fn init(support: convert::Support) {
    error::set_class(support.context_error());
    convert::set_support(support);
}

/// Current size of the module's linear memory in bytes (for leak tests).
#[wasm_bindgen(js_name = "__memoryBytes", skip_typescript)]
pub fn memory_bytes() -> f64 {
    use wasm_bindgen::JsCast;
    wasm_bindgen::memory()
        .unchecked_into::<js_sys::WebAssembly::Memory>()
        .buffer()
        .unchecked_into::<js_sys::ArrayBuffer>()
        .byte_length() as f64
}
