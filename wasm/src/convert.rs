//! JavaScript values in and out.
//!
//! In: the package's `toJson` (wasm/npm/support.js, registered at load time)
//! checks that an argument is plain JSON data (plain objects, arrays, strings,
//! finite numbers, booleans, null; object properties that are `undefined` are
//! left out as in `JSON.stringify`), within [`MAX_DEPTH`](contextkit_core::MAX_DEPTH)
//! levels and the byte limit, reading each property once, and returns its JSON
//! text with a plain copy. Anything else (functions, symbols, BigInt, NaN, ±Infinity, class
//! instances, cycles, throwing getters and proxies) is `INVALID_ARGUMENT`
//! naming the offending path. The text is written into wasm memory by the
//! host's `TextEncoder` and kept as it is, as [`Data`] held as text: one
//! check of its grammar and nesting, no tree (contextkit-json's exact parser
//! reads it only where a tree is needed: a storage writing its record, a
//! refused non-object naming its kind, a Rust caller dereferencing it; a
//! manager's writes and reads in memory and in shared mode build none). Strings in that text may hold control characters
//! unescaped (for data with long strings, `toJson` leaves strings without
//! `"` and `\` as they are): the check finds the first, and they are
//! escaped and the text checked again.
//!
//! Out: states are assembled by the package's `makeState` from their fields,
//! with the caller's own id string and, after a create or update, the plain
//! copy `toJson` made of the caller's data (nothing is serialized twice);
//! reads go through the manager's [`ReadCache`]; data is its JSON text (as
//! kept, or `serde_json`'s) and other values `serde_json` text, parsed by
//! the host's `JSON.parse`: one crossing per value instead of one per
//! property.

use crate::cache::ReadCache;
use crate::error::invalid;
use crate::json;
use contextkit_core::{ContextError, ContextEvent, ContextState, Data, Snapshot};
use js_sys::{Array, Function, JsString};
use serde::Serialize;
use serde_json::Value;
use std::cell::RefCell;
use std::sync::Arc;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

#[wasm_bindgen]
extern "C" {
    /// The JavaScript half of the package (wasm/npm/support.js).
    #[derive(Clone)]
    pub type Support;

    /// `[jsonText, plainCopy]` of a plain object, or throws an Error whose
    /// message continues "<what>…".
    #[wasm_bindgen(method, catch, js_name = toJson)]
    fn to_json(this: &Support, value: &JsValue, max_bytes: f64) -> Result<JsValue, JsValue>;

    /// Writes `text` as UTF-8 into this module's memory, at most `room`
    /// bytes from address `at`; returns the bytes written, or -1 if `room`
    /// did not hold all of it.
    #[wasm_bindgen(method, js_name = encodeInto)]
    fn encode_into(this: &Support, text: &JsString, at: usize, room: usize) -> f64;

    /// Registers this module's memory, which `encodeInto` writes into.
    #[wasm_bindgen(method, js_name = useMemory)]
    fn use_memory(this: &Support, memory: &JsValue);

    /// A state object from its fields; `data` is a ready object, or JSON text.
    #[wasm_bindgen(method, js_name = makeState)]
    #[allow(clippy::too_many_arguments)]
    fn make_state(
        this: &Support,
        id: &JsValue,
        version: f64,
        revision: f64,
        created_at_ms: f64,
        updated_at_ms: f64,
        expires_at_ms: Option<f64>,
        metadata: Option<String>,
        data: &JsValue,
    ) -> JsValue;

    /// A copy of a state object made by `make_state`: new objects and arrays
    /// throughout, sharing only strings.
    #[wasm_bindgen(method, js_name = copyState)]
    fn copy_state(this: &Support, state: &JsValue) -> JsValue;

    /// A recovery point object; `data` is JSON text.
    #[wasm_bindgen(method, js_name = makeSnapshot)]
    fn make_snapshot(
        this: &Support,
        id: f64,
        context_id: &str,
        version: f64,
        created_at_ms: f64,
        data: &str,
    ) -> JsValue;

    /// An event object: `kind` indexes the event types, -1 for lagged (`n`
    /// is the version, or the events missed; `revision` is unused for lagged).
    #[wasm_bindgen(method, js_name = makeEvent)]
    fn make_event(this: &Support, kind: i32, id: Option<String>, n: f64, revision: f64) -> JsValue;

    /// What kind of value `v` is, for messages: "an array", "a string", "NaN".
    #[wasm_bindgen(method, js_name = kindOf)]
    pub(crate) fn kind_of(this: &Support, v: &JsValue) -> String;

    #[wasm_bindgen(method, getter, js_name = ContextError)]
    pub(crate) fn context_error(this: &Support) -> Function;
}

thread_local! {
    static SUPPORT: RefCell<Option<Support>> = const { RefCell::new(None) };
}

/// Registers the package's JavaScript half.
pub(crate) fn set_support(support: Support) {
    support.use_memory(&wasm_bindgen::memory());
    // `try_with`, as for the error class (error.rs).
    let _ = SUPPORT.try_with(|s| *s.borrow_mut() = Some(support));
}

/// What calls made before the entry point registered the JavaScript half say.
pub(crate) const NOT_INITIALISED: &str =
    "contextkit is not initialised: load it through the package's entry point";

/// Runs `f` with the registered JavaScript half, borrowed in place (no
/// reference-table traffic per call); `None` before registration.
pub(crate) fn with_support<R>(f: impl FnOnce(&Support) -> R) -> Option<R> {
    SUPPORT
        .try_with(|s| s.borrow().as_ref().map(f))
        .ok()
        .flatten()
}

/// A JSON argument: the data for the core, held as its text, and a fresh
/// plain copy of it that can be handed back to JavaScript as the data of the
/// resulting state.
pub(crate) struct JsonArg {
    pub(crate) value: Data,
    pub(crate) copy: JsValue,
}

/// Converts `v`, which must be a plain object, to JSON for `what` ("context
/// data"), allowing at most `max_bytes` of JSON text.
pub(crate) fn object_from_js(
    v: &JsValue,
    what: &str,
    max_bytes: usize,
) -> Result<JsonArg, ContextError> {
    let converted = with_support(|support| support.to_json(v, max_bytes as f64))
        .ok_or_else(|| invalid(NOT_INITIALISED))?;
    let pair: Array = converted
        .map_err(|thrown| {
            let detail = js_sys::Reflect::get(&thrown, &"message".into())
                .ok()
                .and_then(|m| m.as_string())
                .unwrap_or_else(|| " could not be converted".into());
            invalid(format!("{what}{detail}"))
        })?
        .unchecked_into();
    let text = pair
        .get(0)
        .dyn_into::<JsString>()
        .ok()
        .and_then(text_from_js)
        .ok_or_else(|| invalid(format!("{what} could not be converted")))?;
    // Strings in `toJson`'s text may hold control characters unescaped,
    // which the text kept as data may not.
    let value = Data::read_json_escaping_controls(text, parse_stored);
    let value = value.map_err(|why| invalid(format!("{what} {why}")))?;
    Ok(JsonArg {
        value,
        copy: pair.get(1),
    })
}

/// Text from a store (data, records) as a value, with the package's exact
/// parser, as deep as the core asks; also what reads argument text kept as
/// data if the core needs a tree of it.
pub(crate) fn parse_stored(text: &str, max_depth: usize) -> Result<Value, String> {
    json::parse(text, max_depth, false).map_err(|why| why.to_string())
}

/// `text` as a Rust string. The host's `TextEncoder` writes it straight into
/// this module's memory: wasm-bindgen's own conversion copies ASCII one
/// character at a time in JavaScript, which costs more than the rest of a
/// write for 10 KB of data.
#[allow(unsafe_code)]
pub(crate) fn text_from_js(text: JsString) -> Option<String> {
    let units = text.length() as usize;
    // Room for ASCII first (a byte per UTF-16 unit, no copy when kept);
    // text that does not fit is written again with room for any text (a
    // UTF-16 unit takes at most three bytes in UTF-8).
    let bytes = match utf8(&text, units)? {
        Some(bytes) => bytes,
        None => utf8(&text, units.saturating_mul(3))??,
    };
    // SAFETY: the bytes are what the host's `TextEncoder.encodeInto` (taken
    // by support.js when it loads) wrote of the whole string (it answers -1
    // for less), which is UTF-8: a lone surrogate becomes U+FFFD. This
    // trusts the realm's built-ins (typed arrays, the memory's buffer) as
    // wasm-bindgen's own glue does for every string it passes in, which it
    // keeps with `String::from_utf8_unchecked` too.
    Some(unsafe { String::from_utf8_unchecked(bytes) })
}

/// `text` as UTF-8 in a vector of `room` bytes' capacity, or `Some(None)` if
/// it needs more room. The host writes into the vector's spare capacity,
/// which is therefore not zeroed first (as `vec![0; room]` would).
#[allow(unsafe_code)]
fn utf8(text: &JsString, room: usize) -> Option<Option<Vec<u8>>> {
    let mut bytes = Vec::<u8>::with_capacity(room);
    let at = bytes.as_mut_ptr() as usize;
    let written = with_support(|support| support.encode_into(text, at, room))?;
    if written < 0.0 {
        return Some(None);
    }
    // `as` saturates, and NaN is 0.
    let written = written as usize;
    if written > room {
        return None;
    }
    // SAFETY: the host wrote `written` bytes, at most `room` (checked), at
    // the start of the vector's spare capacity.
    unsafe { bytes.set_len(written) };
    Some(Some(bytes))
}

/// `state` as a JavaScript object. `id` is the caller's own id string when at
/// hand (saves decoding it), `copy` the caller's data as converted.
pub(crate) fn state_to_js(
    state: &ContextState,
    id: Option<&JsValue>,
    copy: Option<JsValue>,
) -> JsValue {
    make_state(state, id, copy).0
}

/// `state_to_js` for a read: the object comes from `cache` if it holds one
/// for this very state, else it is made and a copy is kept. Either way the
/// caller gets an object of its own.
pub(crate) fn read_state_to_js(
    state: &Arc<ContextState>,
    id: Option<&JsValue>,
    cache: &ReadCache,
) -> JsValue {
    if let Some(kept) = cache.get(state) {
        return with_support(|support| support.copy_state(&kept)).unwrap_or(JsValue::UNDEFINED);
    }
    let (fresh, len) = make_state(state, id, None);
    if cache.enabled()
        && let Some(kept) = with_support(|support| support.copy_state(&fresh))
    {
        cache.put(state, kept, len);
    }
    fresh
}

/// `state_to_js`, and the length of the JSON text of the data it serialized (0 if none).
fn make_state(
    state: &ContextState,
    id: Option<&JsValue>,
    copy: Option<JsValue>,
) -> (JsValue, usize) {
    let owned;
    let id = match id {
        Some(id) => id,
        None => {
            owned = JsValue::from_str(&state.id);
            &owned
        }
    };
    let metadata = (!state.metadata.is_empty())
        .then(|| serde_json::to_string(&state.metadata).unwrap_or_default());
    let (data, len) = match copy {
        Some(data) => (data, 0),
        None => {
            let text = state.data.json_text();
            (JsValue::from_str(&text), text.len())
        }
    };
    // The entry points register the JavaScript half before anything else runs.
    let js = with_support(|support| {
        support.make_state(
            id,
            state.version as f64,
            state.revision as f64,
            state.created_at_ms as f64,
            state.updated_at_ms as f64,
            state.expires_at_ms.map(|t| t as f64),
            metadata,
            &data,
        )
    })
    .unwrap_or(JsValue::UNDEFINED);
    (js, len)
}

/// `snapshot` as a JavaScript object.
pub(crate) fn snapshot_to_js(snapshot: &Snapshot) -> JsValue {
    let data = snapshot.data.json_text();
    with_support(|support| {
        support.make_snapshot(
            snapshot.id as f64,
            &snapshot.context_id,
            snapshot.version as f64,
            snapshot.created_at_ms as f64,
            &data,
        )
    })
    .unwrap_or(JsValue::UNDEFINED)
}

/// `event` as a JavaScript object.
pub(crate) fn event_to_js(event: ContextEvent) -> JsValue {
    let revision = event.revision().unwrap_or(0) as f64;
    let (kind, id, n) = match event {
        ContextEvent::Created { id, version, .. } => (0, Some(id), version),
        ContextEvent::Updated { id, version, .. } => (1, Some(id), version),
        ContextEvent::Deleted { id, version, .. } => (2, Some(id), version),
        ContextEvent::Restored { id, version, .. } => (3, Some(id), version),
        ContextEvent::Expired { id, version, .. } => (4, Some(id), version),
        ContextEvent::Evicted { id, version, .. } => (5, Some(id), version),
        ContextEvent::Lagged { missed } => (-1, None, missed),
    };
    with_support(|support| support.make_event(kind, id, n as f64, revision))
        .unwrap_or(JsValue::UNDEFINED)
}

/// `value` as a fresh JavaScript value.
pub(crate) fn to_js<T: Serialize + ?Sized>(value: &T) -> JsValue {
    match serde_json::to_string(value) {
        // Text serde_json wrote is always valid JSON.
        Ok(text) => js_sys::JSON::parse(&text).unwrap_or(JsValue::UNDEFINED),
        Err(_) => JsValue::UNDEFINED,
    }
}

/// `data` as a fresh JavaScript value, read from its JSON text by the host.
pub(crate) fn json_to_js(data: &Data) -> JsValue {
    // Data's text is always valid JSON.
    js_sys::JSON::parse(&data.json_text()).unwrap_or(JsValue::UNDEFINED)
}
