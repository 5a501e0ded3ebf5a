//! The wasm-bindgen front-end of contextkit (the npm package `contextkit`).

pub use contextkit_core as core;
