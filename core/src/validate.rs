//! Checks of user input: ids, data, metadata and TTLs.

use crate::{ContextError, Data, ManagerConfig, Record, Result};
use serde_json::Value;
use std::collections::BTreeMap;

/// Deepest nesting of arrays and objects accepted in data: the top-level
/// object is level 1, and data nested deeper is `INVALID_ARGUMENT`.
///
/// ```
/// # use contextkit_core::*;
/// # futures::executor::block_on(async {
/// let m = ContextManager::new(ManagerConfig::default());
/// let mut deep = json!({});
/// for _ in 0..MAX_DEPTH {
///     deep = json!({ "d": deep });
/// }
/// assert_eq!(m.create_context("a", deep).await.unwrap_err().code(), "INVALID_ARGUMENT");
/// # Ok::<(), ContextError>(())
/// # }).unwrap();
/// ```
pub const MAX_DEPTH: usize = 128;

/// The deepest nesting of arrays and objects in JSON `text`, found in one pass
/// without recursion: a bound to check before parsing text with serde_json's
/// recursion limit turned off.
///
/// ```
/// use contextkit_core::json_depth;
/// assert_eq!(json_depth(br#"{"a":[1,{"b":"[[["}]}"#), 3);
/// assert_eq!(json_depth(b"42"), 0);
/// ```
pub fn json_depth(text: &[u8]) -> usize {
    let (mut depth, mut max, mut in_string, mut escaped) = (0_usize, 0, false, false);
    for &b in text {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// JSON text as a value with serde_json, nested at most `max_depth` levels:
/// a [`ParseJson`] for [`Data::from_json`] and the storages. The depth is
/// measured first ([`json_depth`]), then serde_json reads without its own
/// recursion limit (128, lower than data may nest). Natively numbers are
/// exact (serde_json's `float_roundtrip`); a wasm build reads doubles with
/// serde_json's default, which may be one bit off (the npm package uses its
/// own exact parser instead).
///
/// ```
/// use contextkit_core::{MAX_DEPTH, parse_json};
/// let deep = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
/// assert!(parse_json(&deep, MAX_DEPTH).is_ok());
/// assert_eq!(parse_json("[[1]]", 1).unwrap_err(), "is nested deeper than 1 levels");
/// assert_eq!(
///     parse_json("{\"a\":}", MAX_DEPTH).unwrap_err(),
///     "is not valid JSON: expected value at line 1 column 6"
/// );
/// ```
pub fn parse_json(text: &str, max_depth: usize) -> std::result::Result<Value, String> {
    if json_depth(text.as_bytes()) > max_depth {
        return Err(format!("is nested deeper than {max_depth} levels"));
    }
    let mut de = serde_json::Deserializer::from_str(text);
    de.disable_recursion_limit();
    serde::Deserialize::deserialize(&mut de)
        .and_then(|value| de.end().map(|()| value))
        .map_err(|e| format!("is not valid JSON: {e}"))
}

/// Messages name the Rust fields. The npm package refuses these values
/// before the core sees them, naming its own options (`wasm/src/args.rs`),
/// and so does it for [`AdapterConfig`](crate::AdapterConfig)'s.
/// How a front-end reads JSON text into a value: nested at most `max_depth`
/// levels (`[]` is one), numbers exactly. The error continues a sentence
/// naming the value ("stored value of 'meta' …"), e.g. `is not valid JSON:
/// … at line 1 column 9`.
///
/// The core says how deep (data as deep as a manager accepts, plus what a
/// stored record wraps around it), and the parser must read every value up
/// to that depth: a context it could not read back would be lost to its
/// readers. serde_json's default recursion limit (128) is too low; the
/// contextkit-json parser, or serde_json with `unbounded_depth` after a
/// [`json_depth`] check, will do.
pub type ParseJson = fn(text: &str, max_depth: usize) -> std::result::Result<Value, String>;

pub(crate) fn config(cfg: &ManagerConfig) -> Result<()> {
    if cfg.max_contexts == 0 {
        return Err(ContextError::invalid("max_contexts must be at least 1"));
    }
    if cfg.max_id_bytes == 0 {
        return Err(ContextError::invalid("max_id_bytes must be at least 1"));
    }
    if cfg.max_data_bytes < 2 {
        return Err(ContextError::invalid(
            "max_data_bytes must be at least 2 (the size of {})",
        ));
    }
    if cfg.default_ttl_ms == Some(0) {
        return Err(ContextError::invalid(
            "default_ttl_ms must be at least 1 ms",
        ));
    }
    Ok(())
}

pub(crate) fn id(cfg: &ManagerConfig, id: &str) -> Result<()> {
    if id.is_empty() {
        return Err(ContextError::invalid("context id must not be empty"));
    }
    if id.len() > cfg.max_id_bytes {
        return Err(ContextError::invalid(format!(
            "context id is {} bytes, the limit is {}",
            id.len(),
            cfg.max_id_bytes
        )));
    }
    if id.chars().any(char::is_control) {
        return Err(ContextError::invalid(
            "context id must not contain control characters",
        ));
    }
    Ok(())
}

/// Data must be a JSON object of at most `max_data_bytes` serialized bytes and
/// at most [`MAX_DEPTH`] levels deep. Data held as text is measured as that
/// text, whose depth was checked when it was made.
pub(crate) fn data(cfg: &ManagerConfig, data: &Data) -> Result<()> {
    if !data.is_object() {
        // Text names its kind by its first byte, without a tree.
        let kind = match data.as_json().map(str::as_bytes) {
            Some([b'[', ..]) => "an array",
            Some([b'"', ..]) => "a string",
            Some([b't' | b'f', ..]) => "a boolean",
            Some([b'n', ..]) => "null",
            Some(_) => "a number",
            None => kind(data),
        };
        return Err(ContextError::invalid(format!(
            "context data must be a JSON object, got {kind}"
        )));
    }
    let too_deep = || {
        ContextError::invalid(format!(
            "context data is nested deeper than {MAX_DEPTH} levels"
        ))
    };
    let too_large = || {
        ContextError::invalid(format!(
            "context data is larger than {} bytes",
            cfg.max_data_bytes
        ))
    };
    // Text nests at most MAX_DEPTH levels, or it would not be data.
    if let Some(len) = data.text_len() {
        return match len > cfg.max_data_bytes {
            true => Err(too_large()),
            false => Ok(()),
        };
    }
    // Counting the exact length reads every string byte. Almost all data is
    // far under the limit, which a bound from string lengths alone (a byte
    // escapes to at most 6) proves without reading the strings. The same walk
    // checks the depth.
    let Some(bound) = len_bound(data, 1) else {
        return Err(too_deep());
    };
    if bound <= cfg.max_data_bytes {
        return Ok(());
    }
    if serialized_len(data) > cfg.max_data_bytes {
        return Err(too_large());
    }
    Ok(())
}

pub(crate) fn metadata(cfg: &ManagerConfig, meta: &BTreeMap<String, String>) -> Result<()> {
    let bytes: usize = meta.iter().map(|(k, v)| k.len() + v.len()).sum();
    if bytes > cfg.max_data_bytes {
        return Err(ContextError::invalid(format!(
            "metadata is {bytes} bytes, the limit is {}",
            cfg.max_data_bytes
        )));
    }
    Ok(())
}

pub(crate) fn ttl(ttl_ms: Option<u64>) -> Result<()> {
    match ttl_ms {
        Some(0) => Err(ContextError::invalid("ttl must be at least 1 ms")),
        _ => Ok(()),
    }
}

/// The largest integer a JavaScript number holds exactly. Versions and
/// recovery-point ids count up by one from 1, so no store reaches it; a stored
/// record above it is damaged.
pub(crate) const MAX_SAFE: u64 = (1 << 53) - 1;

/// A manager hands out no version or recovery-point id past this: far below
/// [`MAX_SAFE`], so whatever it stores reads back.
pub(crate) const MAX_COUNTER: u64 = 1 << 52;

/// A record read back from a storage: its id, TTL, version, revisions and
/// recovery-point ids must be ones a manager could have written. A
/// recovery-point id and a revision stop below [`MAX_SAFE`], so the next one after it is in
/// range too; a revision of 0 is a state stored before revisions existed.
pub(crate) fn stored(cfg: &ManagerConfig, record: &Record) -> Result<()> {
    id(cfg, &record.state.id)?;
    ttl(record.ttl_ms)?;
    let range = |what: &str, n: u64| match n {
        1..=MAX_SAFE => Ok(()),
        _ => Err(ContextError::invalid(format!(
            "{what} {n} is out of range (1 to {MAX_SAFE})"
        ))),
    };
    let revision = |what: &str, n: u64| match n {
        0..MAX_SAFE => Ok(()),
        _ => Err(ContextError::invalid(format!(
            "{what} {n} is out of range (0 to {})",
            MAX_SAFE - 1
        ))),
    };
    range("version", record.state.version)?;
    revision("revision", record.state.revision)?;
    range("next recovery point id", record.next_snapshot_id)?;
    for s in &record.snapshots {
        if s.id >= MAX_SAFE {
            return Err(ContextError::invalid(format!(
                "recovery point id {} is out of range (1 to {})",
                s.id,
                MAX_SAFE - 1
            )));
        }
        range("recovery point id", s.id)?;
        range("recovery point version", s.state.version)?;
        revision("recovery point revision", s.state.revision)?;
    }
    Ok(())
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// An upper bound of the serialized length that never reads inside a string,
/// or `None` if arrays and objects nest deeper than [`MAX_DEPTH`] (`depth` is
/// the level of `v`). Recursion stops one level past the limit, so hostile
/// nesting cannot overflow the stack, and nothing is allocated.
fn len_bound(v: &Value, depth: usize) -> Option<usize> {
    let nested = |n: usize, c: &Value| Some(n.saturating_add(len_bound(c, depth + 1)?));
    match v {
        Value::Null | Value::Bool(_) => Some(5),
        Value::Number(n) => Some(number_len(n)),
        Value::String(s) => Some(string_bound(s)),
        Value::Array(_) | Value::Object(_) if depth > MAX_DEPTH => None,
        Value::Array(a) => a.iter().try_fold(a.len() + 2, nested),
        Value::Object(o) => o.iter().try_fold(2 * o.len() + 2, |n, (k, c)| {
            nested(n.saturating_add(string_bound(k)), c)
        }),
    }
}

fn string_bound(s: &str) -> usize {
    s.len().saturating_mul(6).saturating_add(2)
}

/// Exact length of a number as written (digits for integers, else its text).
fn number_len(n: &serde_json::Number) -> usize {
    if let Some(u) = n.as_u64() {
        return u.checked_ilog10().map_or(1, |d| d as usize + 1);
    }
    if let Some(i) = n.as_i64() {
        return 1 + i
            .unsigned_abs()
            .checked_ilog10()
            .map_or(1, |d| d as usize + 1);
    }
    struct Count(usize);
    impl std::fmt::Write for Count {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            self.0 += s.len();
            Ok(())
        }
    }
    let mut c = Count(0);
    let _ = std::fmt::Write::write_fmt(&mut c, format_args!("{n}"));
    c.0
}

/// Exact length of `v` as `serde_json` writes it (compact), counted without
/// writing anything (`len_bound` has bounded the recursion).
fn serialized_len(v: &Value) -> usize {
    match v {
        Value::Null | Value::Bool(true) => 4,
        Value::Bool(false) => 5,
        Value::Number(n) => number_len(n),
        Value::String(s) => string_len(s),
        Value::Array(a) => a.iter().fold(a.len().max(1) + 1, |n, c| {
            n.saturating_add(serialized_len(c))
        }),
        Value::Object(o) => o.iter().fold((2 * o.len()).max(1) + 1, |n, (k, c)| {
            n.saturating_add(string_len(k))
                .saturating_add(serialized_len(c))
        }),
    }
}

/// Length of `s` as a JSON string: quotes, and serde_json's escapes (two
/// bytes for `"`, `\\` and the short forms of control characters, six for
/// the other control characters).
fn string_len(s: &str) -> usize {
    s.bytes().fold(2_usize, |n, b| {
        n.saturating_add(match b {
            b'"' | b'\\' | b'\x08' | b'\t' | b'\n' | b'\x0c' | b'\r' => 2,
            0..=0x1f => 6,
            _ => 1,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn data_limit_is_inclusive() {
        let body = Data::from(json!({ "k": "x".repeat(100) }));
        let exact = serde_json::to_vec(&body).unwrap().len();
        let cfg = ManagerConfig {
            max_data_bytes: exact,
            ..ManagerConfig::default()
        };
        assert!(data(&cfg, &body).is_ok());
        let cfg = ManagerConfig {
            max_data_bytes: exact - 1,
            ..ManagerConfig::default()
        };
        assert_eq!(data(&cfg, &body).unwrap_err().code(), "INVALID_ARGUMENT");
    }

    #[test]
    fn depth_limit_counts_levels() {
        let mut v = json!({});
        for _ in 0..MAX_DEPTH - 1 {
            v = json!({ "a": v });
        }
        let parse = |text: &str, depth| {
            contextkit_json::parse(text, depth, false).map_err(|e| e.to_string())
        };
        let text = Data::from_json(v.to_string(), parse).unwrap();
        assert!(data(&ManagerConfig::default(), &text).is_ok());
        assert!(data(&ManagerConfig::default(), &v.clone().into()).is_ok());
        let v = json!({ "a": v });
        // Text that deep is not data at all; a tree is refused here.
        let err = Data::from_json(v.to_string(), parse).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid argument: context data is nested deeper than 128 levels"
        );
        let err = data(&ManagerConfig::default(), &v.into()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid argument: context data is nested deeper than 128 levels"
        );
    }

    #[test]
    fn text_is_measured_as_given() {
        let parse = |text: &str, depth| {
            contextkit_json::parse(text, depth, false).map_err(|e| e.to_string())
        };
        let text = r#"{"a": 1.0}"#;
        let at = |max_data_bytes| ManagerConfig {
            max_data_bytes,
            ..ManagerConfig::default()
        };
        let d = Data::from_json(text, parse).unwrap();
        assert!(data(&at(text.len()), &d).is_ok());
        let err = data(&at(text.len() - 1), &d).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid argument: context data is larger than 9 bytes"
        );
        for (text, kind) in [
            ("\"s\"", "a string"),
            ("-1", "a number"),
            ("false", "a boolean"),
            ("null", "null"),
        ] {
            let err = data(&at(100), &Data::from_json(text, parse).unwrap()).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("invalid argument: context data must be a JSON object, got {kind}")
            );
        }
        let list = Data::from_json("[1]", parse).unwrap();
        let err = data(&at(100), &list).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid argument: context data must be a JSON object, got an array"
        );
    }

    #[test]
    fn bound_is_never_below_the_length() {
        let samples = [
            json!({}),
            json!({ "a": [], "b": {}, "c": [1, -2, 3.5, -0.0, 1e300, 2.5e-10, null, true, false] }),
            json!({ "esc": "q\"b\\n\nt\tc\u{1}\u{1f}\u{7f}é😀", "k\"": "v" }),
            json!({ "n": [u64::MAX, i64::MIN, 0, 9, 10, -1, -10, 0.1, 100.0, 1.5e16] }),
            json!({ "deep": [[[{ "x": [1, { "y": "z" }] }]]], "e": [[], {}] }),
            json!({ "ascii": (0_u8..128).map(char::from).collect::<String>(), "o": { "": "" } }),
        ];
        for v in samples {
            let exact = serde_json::to_vec(&v).unwrap().len();
            assert!(len_bound(&v, 1).unwrap() >= exact, "{v}");
            assert_eq!(serialized_len(&v), exact, "{v}");
            let at = |max_data_bytes| ManagerConfig {
                max_data_bytes,
                ..ManagerConfig::default()
            };
            let d = Data::from(v.clone());
            assert!(data(&at(exact), &d).is_ok(), "{v}");
            assert!(data(&at(exact - 1), &d).is_err(), "{v}");
        }
    }

    #[test]
    fn ids_are_checked() {
        let cfg = ManagerConfig {
            max_id_bytes: 4,
            ..ManagerConfig::default()
        };
        assert!(id(&cfg, "abcd").is_ok());
        assert!(id(&cfg, "é").is_ok());
        assert!(id(&cfg, "").is_err());
        assert!(id(&cfg, "abcde").is_err());
        assert!(id(&cfg, "a\nb").is_err());
        assert!(id(&cfg, "a\u{7f}").is_err());
    }

    /// A config no manager could work with: `new` and `build` refuse it up
    /// front instead of failing every later call with another message.
    #[test]
    #[should_panic(
        expected = "invalid ManagerConfig: invalid argument: max_id_bytes must be at least 1"
    )]
    fn new_refuses_an_unusable_config() {
        crate::ContextManager::new(ManagerConfig {
            max_id_bytes: 0,
            ..ManagerConfig::default()
        });
    }

    #[test]
    #[should_panic(
        expected = "invalid ManagerConfig: invalid argument: default_ttl_ms must be at least 1 ms"
    )]
    fn build_refuses_an_unusable_config() {
        crate::ContextManager::builder(ManagerConfig {
            default_ttl_ms: Some(0),
            ..ManagerConfig::default()
        })
        .build();
    }
}
