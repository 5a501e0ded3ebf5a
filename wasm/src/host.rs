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

/// `buf` filled from `crypto.getRandomValues`, or from `Math.random` where
/// there is no Web Crypto (still unknown to callers).
pub(crate) fn random_bytes(buf: &mut [u8]) {
    if get_random_values(buf).is_err() {
        for b in buf {
            *b = (js_sys::Math::random() * 256.0) as u8;
        }
    }
}

/// Random keys for a manager's id hash.
pub(crate) fn hash_seed() -> [u64; 4] {
    let mut bytes = [0_u8; 32];
    random_bytes(&mut bytes);
    let mut seed = [0_u64; 4];
    for (word, chunk) in seed.iter_mut().zip(bytes.chunks_exact(8)) {
        let mut b = [0_u8; 8];
        b.copy_from_slice(chunk);
        *word = u64::from_le_bytes(b);
    }
    seed
}
