//! A context's data: a JSON value, held either as a tree or as its text.

use crate::validate::{MAX_DEPTH, ParseJson};
use crate::{ContextError, Result};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use std::borrow::Cow;
use std::fmt;
use std::ops::Deref;
use std::sync::OnceLock;

/// A context's data: a JSON value, held as a [`Value`] tree or as checked
/// JSON text.
///
/// It dereferences to a [`Value`] and compares equal to one, so
/// `state.data["x"]`, `state.data.as_object()` and
/// `assert_eq!(state.data, json!(…))` read as they would on a `Value`.
/// [`Data::from_json`] keeps text as it came (one allocation, no tree): the
/// npm package's writes take this form, and a server that receives JSON text
/// can store it without building a tree. Its tree is built the first time a
/// caller dereferences it, and kept.
///
/// ```
/// use contextkit_core::{ContextManager, Data, ManagerConfig, json, parse_json};
/// # futures::executor::block_on(async {
/// let m = ContextManager::new(ManagerConfig::default());
/// let body = Data::from_json(r#"{"title":"draft","n":1}"#, parse_json)?;
/// let s = m.create_context("doc", body).await?;
/// assert_eq!(s.data.json_text(), r#"{"title":"draft","n":1}"#);
/// assert_eq!(s.data["n"], 1);
/// assert_eq!(s.data, json!({ "n": 1, "title": "draft" }));
/// # Ok::<(), contextkit_core::ContextError>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct Data(Repr);

#[derive(Clone)]
enum Repr {
    Tree(Value),
    /// In place rather than behind an `Arc`: one allocation per text (a
    /// clone, for a recovery point, copies the text).
    Text {
        /// Checked JSON text, nested at most [`MAX_DEPTH`] levels.
        json: Box<str>,
        /// Reads `json` into `tree`.
        parse: ParseJson,
        /// Boxed: 4 bytes in wasm for a tree that is rarely built there.
        tree: OnceLock<Box<Value>>,
    },
}

impl Data {
    /// Data held as `json`, one JSON value, checked now (RFC 8259, strictly:
    /// no control characters in strings, no lone surrogates, no number out
    /// of a double's range) but not read into a tree. `parse` reads it into
    /// one when a caller needs it: it must read every text this check
    /// accepts, numbers exactly (see [`ParseJson`]). Whitespace around the
    /// value is dropped. Text that is not JSON, or nests deeper than
    /// [`MAX_DEPTH`] levels (no manager takes it), is `INVALID_ARGUMENT`.
    ///
    /// Whether the value is an object within the manager's limits is checked
    /// where it is written, as for a `Value`: the byte limit applies to the
    /// text as given.
    ///
    /// ```
    /// # use contextkit_core::*;
    /// assert!(Data::from_json("[1, 2]", parse_json).is_ok());
    /// let err = Data::from_json(r#"{"a":}"#, parse_json).unwrap_err();
    /// assert_eq!(err.to_string(), "invalid argument: context data is not valid JSON: expected value at line 1 column 6");
    /// ```
    pub fn from_json(json: impl Into<String>, parse: ParseJson) -> Result<Self> {
        Self::read_json(json.into(), parse)
            .map_err(|why| ContextError::invalid(format!("context data {why}")))
    }

    /// [`from_json`](Self::from_json) whose refusal continues a sentence
    /// naming the text, as a [`ParseJson`]'s does (`is not valid JSON:
    /// expected value at line 1 column 6`).
    pub fn read_json(json: String, parse: ParseJson) -> std::result::Result<Self, String> {
        match contextkit_json::check(json.as_bytes()) {
            Ok(shape) => Self::checked(json, shape, parse),
            Err(refused) => Err(refused.describe(&json)),
        }
    }

    /// [`read_json`](Self::read_json) of text whose strings may hold
    /// control characters raw (the npm package's argument text): they are
    /// escaped as `JSON.stringify` writes them (see
    /// [`contextkit_json::escape_controls`]), found by the check itself.
    pub fn read_json_escaping_controls(
        json: String,
        parse: ParseJson,
    ) -> std::result::Result<Self, String> {
        match contextkit_json::check_allowing_controls(json.as_bytes()) {
            Ok(Some(shape)) => Self::checked(json, shape, parse),
            Ok(None) => Self::read_json(contextkit_json::escape_controls(json), parse),
            Err(refused) => Err(refused.describe(&json)),
        }
    }

    /// Text `check` accepted as `shape`, kept.
    fn checked(
        json: String,
        shape: contextkit_json::Shape,
        parse: ParseJson,
    ) -> std::result::Result<Self, String> {
        // No manager takes deeper data, and a tree is read as deep as this.
        if shape.depth > MAX_DEPTH {
            return Err(format!("is nested deeper than {MAX_DEPTH} levels"));
        }
        let json = match json.trim_matches([' ', '\n', '\r', '\t']) {
            trimmed if trimmed.len() == json.len() => json.into_boxed_str(),
            trimmed => trimmed.into(),
        };
        // A number with a positive exponent or hundreds of digits may be
        // past a double's range, and a surrogate escape may be lone: only
        // reading the text tells, so such text (rare: JSON.stringify writes
        // positive exponents from 1e21 only, and escapes only lone
        // surrogates) is read now, and the tree dropped. So is text as deep
        // as data may be, which a parser with a lower limit than it
        // promised would refuse: it fails here, not when the tree is needed.
        if shape.read_now || shape.depth == MAX_DEPTH {
            parse(&json, MAX_DEPTH)?;
        }
        Ok(Self(Repr::Text {
            json,
            parse,
            tree: OnceLock::new(),
        }))
    }

    /// The value as a tree: built the first time for data held as text.
    pub fn value(&self) -> &Value {
        match &self.0 {
            Repr::Tree(v) => v,
            Repr::Text { json, parse, tree } => tree.get_or_init(|| Box::new(read(json, *parse))),
        }
    }

    /// The value, as a tree of its own.
    pub fn into_value(self) -> Value {
        match self.0 {
            Repr::Tree(v) => v,
            Repr::Text { json, parse, tree } => match tree.into_inner() {
                Some(v) => *v,
                None => read(&json, parse),
            },
        }
    }

    /// Its JSON text if held as text (as given to [`from_json`](Self::from_json)).
    pub fn as_json(&self) -> Option<&str> {
        match &self.0 {
            Repr::Tree(_) => None,
            Repr::Text { json, .. } => Some(json),
        }
    }

    /// Its JSON text: the text held (as given, bar whitespace around it), or
    /// the tree serialized compactly.
    pub fn json_text(&self) -> Cow<'_, str> {
        match &self.0 {
            Repr::Tree(v) => Cow::Owned(v.to_string()),
            Repr::Text { json, .. } => Cow::Borrowed(json),
        }
    }

    /// Whether it is a JSON object, without building a tree.
    pub fn is_object(&self) -> bool {
        match &self.0 {
            Repr::Tree(v) => v.is_object(),
            Repr::Text { json, .. } => json.starts_with('{'),
        }
    }

    /// The length of text-held data (`None` for a tree), which nests at
    /// most [`MAX_DEPTH`] levels.
    pub(crate) fn text_len(&self) -> Option<usize> {
        match &self.0 {
            Repr::Tree(_) => None,
            Repr::Text { json, .. } => Some(json.len()),
        }
    }
}

/// Checked text as a tree. It was checked as JSON and to nest at most
/// [`MAX_DEPTH`] levels, and read when made wherever only reading could
/// refuse it (text as deep as the limit included), so a parser keeping its
/// promise reads it; one that does not gets `null` (a debug build stops).
fn read(json: &str, parse: ParseJson) -> Value {
    parse(json, MAX_DEPTH).unwrap_or_else(|why| {
        debug_assert!(false, "checked JSON text did not read: {why}");
        Value::Null
    })
}

impl Default for Data {
    /// An empty object.
    fn default() -> Self {
        Self(Repr::Tree(Value::Object(serde_json::Map::new())))
    }
}

impl Deref for Data {
    type Target = Value;

    fn deref(&self) -> &Value {
        self.value()
    }
}

impl AsRef<Value> for Data {
    fn as_ref(&self) -> &Value {
        self.value()
    }
}

impl From<Value> for Data {
    fn from(v: Value) -> Self {
        Self(Repr::Tree(v))
    }
}

impl From<Data> for Value {
    fn from(d: Data) -> Self {
        d.into_value()
    }
}

impl PartialEq for Data {
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (Repr::Text { json: a, .. }, Repr::Text { json: b, .. }) if a == b => true,
            _ => self.value() == other.value(),
        }
    }
}

impl PartialEq<Value> for Data {
    fn eq(&self, other: &Value) -> bool {
        self.value() == other
    }
}

impl PartialEq<Data> for Value {
    fn eq(&self, other: &Data) -> bool {
        self == other.value()
    }
}

impl fmt::Debug for Data {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Repr::Tree(v) => v.fmt(f),
            Repr::Text { json, .. } => f.debug_tuple("Json").field(json).finish(),
        }
    }
}

impl fmt::Display for Data {
    /// Its JSON text ([`json_text`](Self::json_text)).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.json_text())
    }
}

impl Serialize for Data {
    /// As its value: text not yet read is read for this, and the tree
    /// dropped after. (A storage's record is written so, which keeps its
    /// JSON what serde_json writes for the value; the shared-mode wire
    /// takes [`json_text`](Self::json_text) instead.)
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match &self.0 {
            Repr::Tree(v) => v.serialize(s),
            Repr::Text { json, parse, tree } => match tree.get() {
                Some(v) => v.serialize(s),
                None => read(json, *parse).serialize(s),
            },
        }
    }
}

impl<'de> Deserialize<'de> for Data {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Value::deserialize(d).map(Self::from)
    }
}

#[cfg(test)]
mod tests;
