//! The wasm-bindgen front-end of contextkit, built into the npm package `contextkit`.
//!
//! A thin layer over [`contextkit_core`]: `ContextManager`, `ContextTracker` and
//! `ContextAdapter` with camelCase methods returning Promises, and errors that
//! are instances of the package's `ContextError` class. Every method clones the
//! core handle into its future, so calls may overlap freely on one object.
//! Values cross as JSON (see [`convert`]), events are delivered from a task
//! (see [`events`]), and background work runs on JavaScript timers.

pub use contextkit_core as core;

mod adapter;
pub mod convert;
mod error;
pub mod events;
mod host;
mod manager;
mod options;
mod promise;
mod timer;
mod tracker;

pub use adapter::Adapter;
pub use manager::Manager;
pub use tracker::Tracker;

use wasm_bindgen::prelude::*;

/// Registers the `ContextError` class of the package's entry point; errors are
/// created with `new ContextError(code, message)` from then on.
#[wasm_bindgen(js_name = "__setErrorClass", skip_typescript)]
pub fn set_error_class(class: js_sys::Function) {
    error::set_class(class);
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
