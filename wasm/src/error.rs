//! Errors as JavaScript sees them: instances of the package's `ContextError` class.

use contextkit_core::ContextError;
use js_sys::{Array, Function, Reflect};
use std::cell::RefCell;
use wasm_bindgen::prelude::*;

thread_local! {
    /// The `ContextError` class of the JavaScript entry point, once it registered it.
    static CLASS: RefCell<Option<Function>> = const { RefCell::new(None) };
}

/// Registers the class errors are made of: `new Class(code, message)`.
pub(crate) fn set_class(class: Function) {
    // `try_with`: a thread-local cannot be gone here, and `with` would link
    // the panic message for that case.
    let _ = CLASS.try_with(|c| *c.borrow_mut() = Some(class));
}

/// A JavaScript error for `err`: a `ContextError` with `code`, and the
/// context's `id` where the error names one; for a missing recovery point
/// its `recoveryPoint`, for a version conflict `expected` and `actual`.
pub(crate) fn to_js(err: &ContextError) -> JsValue {
    let js = make(err.code(), &message(err));
    // Setting plain data properties on a fresh error cannot fail.
    let set = |key: &str, value: JsValue| {
        let _ = Reflect::set(&js, &key.into(), &value);
    };
    let number = |n: u64| JsValue::from(n as f64);
    match err {
        ContextError::NotFound { id, recovery_point } => {
            set("id", id.into());
            if let Some(point) = recovery_point {
                set("recoveryPoint", number(*point));
            }
        }
        ContextError::VersionConflict {
            id,
            expected,
            actual,
        } => {
            set("id", id.into());
            set("expected", number(*expected));
            set("actual", number(*actual));
        }
        ContextError::AlreadyExists { id }
        | ContextError::UnsyncedChanges { id }
        | ContextError::NotActive { id: Some(id) } => set("id", id.into()),
        _ => {}
    }
    js
}

/// What `err` says, without repeating its code (which is a field of its own):
/// "context id must be a string, got a number", not "invalid argument: …".
fn message(err: &ContextError) -> String {
    match err {
        ContextError::InvalidArgument(msg) | ContextError::Storage { message: msg, .. } => {
            msg.clone()
        }
        ContextError::CapacityExceeded { what, limit } => {
            format!("too many {what}: the limit is {limit}")
        }
        other => other.to_string(),
    }
}

/// `to_js` for an owned error, handy in `map_err`.
pub(crate) fn js(err: ContextError) -> JsValue {
    to_js(&err)
}

fn make(code: &str, message: &str) -> JsValue {
    let class = CLASS.try_with(|c| c.borrow().clone()).ok().flatten();
    if let Some(class) = class {
        let args = Array::of2(&code.into(), &message.into());
        if let Ok(err) = Reflect::construct(&class, &args) {
            return err;
        }
    }
    // No class registered (the crate's own tests): a plain Error with the same fields.
    let err = js_sys::Error::new(message);
    err.set_name("ContextError");
    let _ = Reflect::set(&err, &"code".into(), &code.into());
    err.into()
}

/// `INVALID_ARGUMENT` with `msg`.
pub(crate) fn invalid(msg: impl Into<String>) -> ContextError {
    ContextError::InvalidArgument(msg.into())
}

/// A short description of a JavaScript value's type for messages ("an
/// array", "a string", "NaN"), by support.js `kindOf`, as its own messages.
pub(crate) fn kind(v: &JsValue) -> String {
    // Before the entry point registered support.js, only `typeof`.
    crate::convert::with_support(|s| s.kind_of(v))
        .unwrap_or_else(|| format!("a {}", v.js_typeof().as_string().unwrap_or_default()))
}
