//! Repeating JavaScript timers owned by Rust values.

use crate::host;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

/// Longest delay `setInterval` honours; larger ones fire immediately.
const MAX_DELAY_MS: u64 = 2_147_483_647;

/// A `setInterval` that is cleared when this value is dropped (by a `stop…()`
/// call, or when its JavaScript object is freed or garbage collected). In
/// Node it is unref'd: it never keeps the process alive on its own.
pub(crate) struct Interval {
    id: JsValue,
    _tick: Closure<dyn FnMut()>,
}

impl Interval {
    /// Calls `tick` every `every_ms` milliseconds.
    pub(crate) fn start(every_ms: u64, tick: impl FnMut() + 'static) -> Self {
        let tick = Closure::<dyn FnMut()>::new(tick);
        let ms = every_ms.clamp(1, MAX_DELAY_MS) as f64;
        let id = host::set_interval(tick.as_ref().unchecked_ref(), ms);
        // Node's timers have `unref()`; browsers' ids are numbers, where the
        // lookup fails and there is nothing to do.
        if let Ok(unref) = host::get_str(&id, "unref")
            && let Some(unref) = unref.dyn_ref::<js_sys::Function>()
        {
            let _ = unref.call0(&id);
        }
        Self { id, _tick: tick }
    }
}

impl Drop for Interval {
    fn drop(&mut self) {
        // Cleared before the closure is freed, so it is never called afterwards.
        host::clear_interval(&self.id);
    }
}
