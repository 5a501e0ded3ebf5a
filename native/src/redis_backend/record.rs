//! The record format of a shared namespace in Redis, read and written as the
//! library `native/redis/contextkit.lua` lays it out.

use contextkit_core::wire::{self, Wire};
use contextkit_core::{ContextError, ContextEvent, ContextState, Result};
use redis::Value;
use std::sync::Arc;

pub(crate) fn bad(what: impl std::fmt::Display) -> ContextError {
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

pub(crate) fn int(v: &Value) -> Result<u64> {
    match v {
        Value::Int(n) => u64::try_from(*n).map_err(|_| bad(n)),
        other => text(other)?
            .parse()
            .map_err(|_| bad(format!("{other:?} is not a number"))),
    }
}

pub(crate) fn array(v: &Value) -> Result<&[Value]> {
    match v {
        Value::Array(items) | Value::Set(items) => Ok(items),
        Value::Nil => Ok(&[]),
        // An empty table that went through cjson (a replayed reply) comes
        // back as an empty map.
        Value::Map(m) if m.is_empty() => Ok(&[]),
        other => Err(bad(format!("{other:?} is not an array"))),
    }
}

/// A reply as the library's call format reads it ([`wire`]).
pub(crate) fn to_wire(v: &Value) -> Wire {
    match v {
        Value::Nil => Wire::Nil,
        Value::Int(n) => Wire::Int(*n),
        Value::Array(items) | Value::Set(items) => Wire::List(items.iter().map(to_wire).collect()),
        // An empty table that went through cjson (a replayed reply) comes
        // back as an empty map.
        Value::Map(m) if m.is_empty() => Wire::List(Vec::new()),
        other => match bytes(other) {
            Some(b) => Wire::Text(String::from_utf8_lossy(b).into_owned()),
            None => Wire::Text(format!("{other:?}")),
        },
    }
}

/// A context from its record (see [`wire::state`]); `None` for no record.
pub(crate) fn state(id: &str, record: &Value) -> Result<Option<Arc<ContextState>>> {
    match record {
        Value::Nil => Ok(None),
        other => wire::state(id, text(other)?, crate::parse_json).map(Some),
    }
}

/// What an `XREAD` of one stream brought.
pub(crate) struct StreamRead {
    pub events: Vec<ContextEvent>,
    /// The last revision among its entries (0 for none).
    pub through: u64,
    /// How many entries it had (readable or not).
    pub entries: usize,
}

/// The events of an `XREAD` reply for one stream. An entry that cannot be
/// read (written by something else than the library) is left out: its
/// revision is then missed, not fatal.
pub(crate) fn stream_events(reply: &Value) -> Result<StreamRead> {
    let mut out = Vec::new();
    let mut through = 0;
    let mut entries_seen = 0;
    let streams: Vec<&Value> = match reply {
        Value::Nil => {
            return Ok(StreamRead {
                events: out,
                through,
                entries: 0,
            });
        }
        Value::Map(m) => m.iter().map(|(_, v)| v).collect(),
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
    for entries in streams {
        for entry in array(entries)? {
            let [entry_id, fields] = array(entry)? else {
                return Err(bad("a stream entry"));
            };
            let entry_id = text(entry_id)?;
            let revision: u64 = entry_id
                .split_once('-')
                .and_then(|(ms, _)| ms.parse().ok())
                .ok_or_else(|| bad(format!("stream entry id {entry_id}")))?;
            through = through.max(revision);
            entries_seen += 1;
            let (mut kind, mut id, mut version) = (None, None, None);
            for kv in array(fields)?.chunks(2) {
                if let [k, v] = kv {
                    match text(k)? {
                        "t" => kind = Some(text(v)?),
                        "i" => id = Some(text(v)?),
                        "v" => version = Some(int(v)?),
                        _ => {}
                    }
                }
            }
            if let (Some(k), Some(i), Some(v)) = (kind, id, version)
                && let Ok(event) = wire::event(k, i, v, revision)
            {
                out.push(event);
            }
        }
    }
    Ok(StreamRead {
        events: out,
        through,
        entries: entries_seen,
    })
}
