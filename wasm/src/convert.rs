//! JavaScript values in and out.
//!
//! In: an iterative walk over the JavaScript value with an explicit stack, so
//! no input can overflow the wasm stack. It accepts exactly the JSON values
//! (plain objects, arrays, strings, finite numbers, booleans, null), omits
//! object properties that are `undefined` (as `JSON.stringify` does), and
//! rejects everything else (functions, symbols, BigInt, NaN, ±Infinity,
//! class instances, cycles, nesting past [`MAX_DEPTH`]) with `INVALID_ARGUMENT`
//! naming the offending path. It stops as soon as the JSON text would exceed
//! the byte limit, before copying an oversized string into wasm memory.
//!
//! Out: `serde_json` text parsed by the host's `JSON.parse`: one crossing per
//! value instead of one per property.

use crate::error::{invalid, kind};
use crate::host;
use contextkit_core::{ContextError, MAX_DEPTH};
use js_sys::JsString;
use serde::Serialize;
use serde_json::{Map, Number, Value};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

/// Converts `v` (which must be a plain object) to JSON for `what` ("context data"),
/// allowing at most `max_bytes` of JSON text.
pub(crate) fn object_from_js(
    v: &JsValue,
    what: &str,
    max_bytes: usize,
) -> Result<Value, ContextError> {
    if !v.is_object() || host::is_array(v).unwrap_or(true) {
        return Err(invalid(format!(
            "{what} must be a JSON object, got {}",
            kind(v)
        )));
    }
    Walk::new(what, max_bytes).run(v)
}

/// `value` as a fresh JavaScript value.
pub(crate) fn to_js<T: Serialize + ?Sized>(value: &T) -> JsValue {
    match serde_json::to_string(value) {
        // Text serde_json wrote is always valid JSON.
        Ok(text) => js_sys::JSON::parse(&text).unwrap_or(JsValue::UNDEFINED),
        Err(_) => JsValue::UNDEFINED,
    }
}

/// A string argument, rejected before copying when longer than `max_bytes`.
pub(crate) fn string_arg(
    v: &JsValue,
    what: &str,
    max_bytes: usize,
) -> Result<String, ContextError> {
    if !v.is_string() {
        return Err(invalid(format!("{what} must be a string, got {}", kind(v))));
    }
    // UTF-8 never takes fewer bytes than UTF-16 code units.
    if v.unchecked_ref::<JsString>().length() as usize > max_bytes {
        return Err(invalid(format!("{what} is longer than {max_bytes} bytes")));
    }
    Ok(v.as_string().unwrap_or_default())
}

enum Frame {
    Object {
        obj: JsValue,
        keys: js_sys::Array,
        next: u32,
        len: u32,
        map: Map<String, Value>,
        key: String,
    },
    Array {
        arr: JsValue,
        next: u32,
        len: u32,
        items: Vec<Value>,
    },
}

impl Frame {
    fn push(&mut self, v: Value) {
        match self {
            Frame::Object { map, key, .. } => {
                map.insert(std::mem::take(key), v);
            }
            Frame::Array { items, .. } => items.push(v),
        }
    }

    fn finish(self) -> Value {
        match self {
            Frame::Object { map, .. } => Value::Object(map),
            Frame::Array { items, .. } => Value::Array(items),
        }
    }
}

enum Next {
    Child(JsValue),
    Skip,
    Done,
}

struct Walk<'a> {
    what: &'a str,
    max: usize,
    /// A lower bound of the JSON text's length so far.
    used: usize,
    stack: Vec<Frame>,
}

impl<'a> Walk<'a> {
    fn new(what: &'a str, max: usize) -> Self {
        Self {
            what,
            max,
            used: 0,
            stack: Vec::new(),
        }
    }

    fn run(mut self, root: &JsValue) -> Result<Value, ContextError> {
        let frame = self.open(root)?;
        self.stack.push(frame);
        loop {
            let next = self.next_child()?;
            match next {
                Next::Skip => {}
                Next::Done => {
                    let Some(done) = self.stack.pop() else {
                        return Err(self.fail("is malformed"));
                    };
                    let value = done.finish();
                    match self.stack.last_mut() {
                        None => return Ok(value),
                        Some(parent) => parent.push(value),
                    }
                }
                Next::Child(child) => {
                    // Every child is followed by a comma or the closing bracket.
                    self.spend(1)?;
                    if let Some(leaf) = self.leaf(&child)? {
                        if let Some(top) = self.stack.last_mut() {
                            top.push(leaf);
                        }
                    } else {
                        if self.stack.len() >= MAX_DEPTH {
                            let cyclic = self.is_ancestor(&child);
                            return Err(self.fail(if cyclic {
                                "contains a cycle"
                            } else {
                                "is nested too deeply (the limit is 128 levels)"
                            }));
                        }
                        let frame = self.open(&child)?;
                        self.stack.push(frame);
                    }
                }
            }
        }
    }

    fn next_child(&mut self) -> Result<Next, ContextError> {
        let room = self.max.saturating_sub(self.used);
        let (read, key_len) = match self.stack.last_mut() {
            None => return Ok(Next::Done),
            Some(Frame::Object {
                obj,
                keys,
                next,
                len,
                key,
                ..
            }) => {
                if *next >= *len {
                    return Ok(Next::Done);
                }
                let k = keys.get(*next);
                *next += 1;
                // The key, its quotes and the colon; checked before copying the key.
                let units = k.dyn_ref::<JsString>().map_or(0, |s| s.length() as usize);
                if units + 3 > room {
                    return Err(invalid(format!(
                        "{} is larger than {} bytes",
                        self.what, self.max
                    )));
                }
                *key = k.as_string().unwrap_or_default();
                (host::get(obj, &k), Some(key.len() + 3))
            }
            Some(Frame::Array { arr, next, len, .. }) => {
                if *next >= *len {
                    return Ok(Next::Done);
                }
                *next += 1;
                (host::get_index(arr, *next - 1), None)
            }
        };
        let value = read.map_err(|e| self.fail_js("could not be read", &e))?;
        if let Some(n) = key_len {
            if value.is_undefined() {
                return Ok(Next::Skip);
            }
            self.spend(n)?;
        }
        Ok(Next::Child(value))
    }

    /// A scalar as JSON, or `None` for an object or array to descend into.
    fn leaf(&mut self, v: &JsValue) -> Result<Option<Value>, ContextError> {
        if v.is_string() {
            let units = v.unchecked_ref::<JsString>().length() as usize;
            self.spend(units + 2)?;
            let s = v.as_string().unwrap_or_default();
            // Non-ASCII text takes more bytes than code units: count the difference.
            self.spend(s.len() - units.min(s.len()))?;
            return Ok(Some(Value::String(s)));
        }
        if let Some(n) = v.as_f64() {
            self.spend(1)?;
            return number(n)
                .map(Some)
                .ok_or_else(|| self.fail(&format!("is {n}, not a finite number")));
        }
        if v.is_object() {
            return Ok(None);
        }
        if let Some(b) = v.as_bool() {
            self.spend(4)?;
            return Ok(Some(Value::Bool(b)));
        }
        if v.is_null() {
            self.spend(4)?;
            return Ok(Some(Value::Null));
        }
        Err(self.fail(&format!("is {}, which is not a JSON value", kind(v))))
    }

    fn open(&mut self, v: &JsValue) -> Result<Frame, ContextError> {
        self.spend(1)?;
        match host::is_array(v) {
            Ok(true) => {
                let len = host::get_str(v, "length")
                    .ok()
                    .and_then(|l| l.as_f64())
                    .filter(|l| *l >= 0.0 && *l <= f64::from(u32::MAX))
                    .ok_or_else(|| self.fail("has an unreadable length"))?;
                let len = len as u32;
                // A lower bound of the text: one byte per element.
                if len as usize > self.max.saturating_sub(self.used) {
                    return Err(self.too_large());
                }
                let items = Vec::with_capacity(len as usize);
                return Ok(Frame::Array {
                    arr: v.clone(),
                    next: 0,
                    len,
                    items,
                });
            }
            Ok(false) => {}
            Err(e) => return Err(self.fail_js("could not be inspected", &e)),
        }
        if v.is_function() {
            return Err(self.fail("is a function, which is not a JSON value"));
        }
        let proto =
            host::prototype_of(v).map_err(|e| self.fail_js("could not be inspected", &e))?;
        if !proto.is_null()
            && proto != host::object_prototype()
            && !is_foreign_object_prototype(&proto)
        {
            return Err(self.fail("is not a plain object or array (class instances, Dates, Maps and the like are not JSON)"));
        }
        let keys = host::object_keys(v).map_err(|e| self.fail_js("could not be inspected", &e))?;
        Ok(Frame::Object {
            obj: v.clone(),
            len: keys.length(),
            keys,
            next: 0,
            map: Map::new(),
            key: String::new(),
        })
    }

    fn is_ancestor(&self, v: &JsValue) -> bool {
        self.stack.iter().any(|f| match f {
            Frame::Object { obj, .. } => obj == v,
            Frame::Array { arr, .. } => arr == v,
        })
    }

    fn spend(&mut self, n: usize) -> Result<(), ContextError> {
        self.used = self.used.saturating_add(n);
        if self.used > self.max {
            return Err(self.too_large());
        }
        Ok(())
    }

    fn too_large(&self) -> ContextError {
        invalid(format!("{} is larger than {} bytes", self.what, self.max))
    }

    fn fail(&self, problem: &str) -> ContextError {
        invalid(format!("{} {}", self.location(), problem))
    }

    fn fail_js(&self, problem: &str, e: &JsValue) -> ContextError {
        let detail = js_sys::Reflect::get(e, &"message".into())
            .ok()
            .and_then(|m| m.as_string())
            .unwrap_or_else(|| "it threw".into());
        self.fail(&format!("{problem}: {detail}"))
    }

    /// `context data`, or `context data at .a.b[2]` inside it.
    fn location(&self) -> String {
        let mut path = String::new();
        for frame in &self.stack {
            match frame {
                Frame::Object { key, next, .. } if *next > 0 => {
                    path.push('.');
                    path.push_str(key);
                }
                Frame::Array { next, .. } if *next > 0 => {
                    path.push_str(&format!("[{}]", next - 1));
                }
                _ => {}
            }
        }
        if path.is_empty() {
            self.what.to_owned()
        } else {
            format!("{} at {path}", self.what)
        }
    }
}

/// `Object.prototype` of another realm (a `vm` context, an iframe): an object
/// whose own prototype is null and whose constructor is named `Object`.
fn is_foreign_object_prototype(proto: &JsValue) -> bool {
    host::prototype_of(proto).is_ok_and(|p| p.is_null())
        && host::get_str(proto, "constructor")
            .ok()
            .and_then(|c| host::get_str(&c, "name").ok())
            .and_then(|n| n.as_string())
            .is_some_and(|n| n == "Object")
}

/// A finite number as JSON; integers stay integers.
fn number(n: f64) -> Option<Value> {
    if !n.is_finite() {
        return None;
    }
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    if n.fract() == 0.0 && n.abs() < TWO_63 {
        return Some(if n >= 0.0 {
            Value::from(n as u64)
        } else {
            Value::from(n as i64)
        });
    }
    Number::from_f64(n).map(Value::Number)
}
