//! The few host functions the package calls, each declared so that a throwing
//! callee (a proxy trap, a getter) comes back as an `Err` instead of unwinding
//! through wasm.

use js_sys::{Array, Function};
use wasm_bindgen::prelude::*;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(catch, js_namespace = Object, js_name = keys)]
    pub(crate) fn object_keys(obj: &JsValue) -> Result<Array, JsValue>;

    #[wasm_bindgen(catch, js_namespace = Array, js_name = isArray)]
    pub(crate) fn is_array(v: &JsValue) -> Result<bool, JsValue>;

    /// A copy of an array (or array-like) as a plain array.
    #[wasm_bindgen(catch, js_namespace = Array, js_name = from)]
    pub(crate) fn array_from(v: &JsValue) -> Result<Array, JsValue>;

    /// `Promise.resolve(v)`: a thenable is adopted, anything else resolved to.
    #[wasm_bindgen(catch, js_namespace = Promise, js_name = resolve)]
    pub(crate) fn promise_resolve(v: &JsValue) -> Result<js_sys::Promise, JsValue>;

    #[wasm_bindgen(catch, js_namespace = Reflect, js_name = get)]
    pub(crate) fn get_str(obj: &JsValue, key: &str) -> Result<JsValue, JsValue>;

    #[wasm_bindgen(catch, js_namespace = crypto, js_name = getRandomValues)]
    pub(crate) fn get_random_values(buf: &mut [u8]) -> Result<JsValue, JsValue>;

    /// `console.error(what, event, error)`; a throwing console is ignored.
    #[wasm_bindgen(catch, js_namespace = console, js_name = error)]
    pub(crate) fn console_error(
        what: &str,
        event: &JsValue,
        error: &JsValue,
    ) -> Result<(), JsValue>;

    #[wasm_bindgen(js_name = setInterval)]
    pub(crate) fn set_interval(callback: &Function, ms: f64) -> JsValue;

    #[wasm_bindgen(js_name = clearInterval)]
    pub(crate) fn clear_interval(id: &JsValue);
}
