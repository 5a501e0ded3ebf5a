//! Redis replies as the core's [`Wire`] format reads them.

use contextkit_core::wire::Wire;
use contextkit_core::{ContextError, Result};
use redis::Value;

fn bad(what: impl std::fmt::Display) -> ContextError {
    ContextError::storage(format!("unexpected reply from Redis: {what}"))
}

pub(crate) fn bytes(v: &Value) -> Option<&[u8]> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        Value::VerbatimString { text, .. } => Some(text.as_bytes()),
        _ => None,
    }
}

pub(crate) fn text(v: &Value) -> Result<&str> {
    bytes(v)
        .and_then(|b| std::str::from_utf8(b).ok())
        .ok_or_else(|| bad(format!("{v:?} is not text")))
}

fn array(v: &Value) -> Result<&[Value]> {
    match v {
        Value::Array(items) | Value::Set(items) => Ok(items),
        Value::Nil => Ok(&[]),
        Value::Map(m) if m.is_empty() => Ok(&[]),
        other => Err(bad(format!("{other:?} is not an array"))),
    }
}

/// A reply as the library's call format reads it ([`Wire`]); strings are
/// moved, not copied.
pub(crate) fn into_wire(v: Value) -> Wire {
    match v {
        Value::Nil => Wire::Nil,
        Value::Int(n) => Wire::Int(n),
        Value::Array(items) | Value::Set(items) => {
            Wire::List(items.into_iter().map(into_wire).collect())
        }
        // An empty table that went through cjson (a replayed reply) comes
        // back as an empty map.
        Value::Map(m) if m.is_empty() => Wire::List(Vec::new()),
        Value::BulkString(b) => Wire::Text(
            String::from_utf8(b)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
        ),
        Value::SimpleString(s) => Wire::Text(s),
        Value::VerbatimString { text, .. } => Wire::Text(text),
        other => Wire::Text(format!("{other:?}")),
    }
}

/// The entries of an `XREAD` reply for one stream, each as the core's
/// reader takes it: `[revision, type, id, version]`. An entry without
/// those fields (written by something else than the library) keeps its
/// revision with empty fields, so that the reader counts it missed.
pub(crate) fn stream_entries(reply: &Value) -> Result<Vec<Wire>> {
    let streams: Vec<&Value> = match reply {
        Value::Nil => return Ok(Vec::new()),
        // RESP3
        Value::Map(m) => m.iter().map(|(_, v)| v).collect(),
        // RESP2: [[stream, entries]]
        Value::Array(items) => items
            .iter()
            .map(|s| {
                array(s)
                    .ok()
                    .and_then(|kv| kv.get(1))
                    .ok_or_else(|| bad("a stream"))
            })
            .collect::<Result<_>>()?,
        other => return Err(bad(format!("{other:?}"))),
    };
    let mut out = Vec::new();
    for entries in streams {
        for entry in array(entries)? {
            let [entry_id, fields] = array(entry)? else {
                return Err(bad("a stream entry"));
            };
            let entry_id = text(entry_id)?;
            let revision: i64 = entry_id
                .split_once('-')
                .and_then(|(ms, _)| ms.parse().ok())
                .ok_or_else(|| bad(format!("stream entry id {entry_id}")))?;
            let (mut kind, mut id, mut version) = (Wire::Nil, Wire::Nil, Wire::Nil);
            for kv in array(fields)?.chunks(2) {
                if let [k, v] = kv
                    && let (Ok(k), Ok(v)) = (text(k), text(v))
                {
                    let v = Wire::Text(v.to_owned());
                    match k {
                        "t" => kind = v,
                        "i" => id = v,
                        "v" => version = v,
                        _ => {}
                    }
                }
            }
            out.push(Wire::List(vec![Wire::Int(revision), kind, id, version]));
        }
    }
    Ok(out)
}
