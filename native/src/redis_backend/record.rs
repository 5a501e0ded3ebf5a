//! The record format of a shared namespace in Redis, read and written as the
//! library `native/redis/contextkit.lua` lays it out.

use contextkit_core::{ContextError, ContextEvent, ContextState, Result, Snapshot};
use redis::Value;
use std::sync::Arc;

pub(crate) fn bad(what: impl std::fmt::Display) -> ContextError {
    ContextError::Storage(format!("unexpected reply from Redis: {what}"))
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

/// `''` for none.
fn opt_int(v: &Value) -> Result<Option<u64>> {
    match text(v)? {
        "" => Ok(None),
        s => s
            .parse()
            .map(Some)
            .map_err(|_| bad(format!("{s:?} is not a number"))),
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

fn json<T: serde::de::DeserializeOwned>(what: &str, id: &str, raw: &[u8]) -> Result<T> {
    serde_json::from_slice(raw).map_err(|e| {
        ContextError::Storage(format!(
            "the {what} of '{id}' in Redis is not valid JSON: {e}"
        ))
    })
}

/// A context from its record, `"V R C U E T\n" + metadata + "\n" + data`
/// (E and T empty for none); `None` for no record.
pub(crate) fn state(id: &str, record: &Value) -> Result<Option<Arc<ContextState>>> {
    let Some(raw) = bytes(record) else {
        return match record {
            Value::Nil => Ok(None),
            other => Err(bad(format!("the record of '{id}' is {other:?}"))),
        };
    };
    let damaged = || ContextError::Storage(format!("the record of '{id}' in Redis is damaged"));
    let mut lines = raw.splitn(3, |b| *b == b'\n');
    let (Some(head), Some(metadata), Some(data)) = (lines.next(), lines.next(), lines.next())
    else {
        return Err(damaged());
    };
    let head = std::str::from_utf8(head).map_err(|_| damaged())?;
    let mut fields = head.split(' ');
    let mut next = || fields.next().ok_or_else(damaged);
    let number = |s: &str| s.parse::<u64>().map_err(|_| damaged());
    let optional = |s: &str| {
        if s.is_empty() {
            Ok(None)
        } else {
            number(s).map(Some)
        }
    };
    let (v, r, c, u, e) = (next()?, next()?, next()?, next()?, next()?);
    Ok(Some(Arc::new(ContextState {
        id: id.to_owned(),
        version: number(v)?,
        revision: number(r)?,
        created_at_ms: number(c)?,
        updated_at_ms: number(u)?,
        expires_at_ms: optional(e)?,
        data: json("data", id, data)?,
        metadata: json("metadata", id, metadata)?,
    })))
}

/// The state a write replied with: `[version, revision, created, updated,
/// expires, ttl, metadata]`, its data being `data`.
pub(crate) fn written(id: &str, d: &[Value], data: serde_json::Value) -> Result<Arc<ContextState>> {
    let [v, r, c, u, e, _ttl, m, ..] = d else {
        return Err(bad(format!("a state of {} fields", d.len())));
    };
    Ok(Arc::new(ContextState {
        id: id.to_owned(),
        version: int(v)?,
        revision: int(r)?,
        created_at_ms: int(c)?,
        updated_at_ms: int(u)?,
        expires_at_ms: opt_int(e)?,
        data,
        metadata: json("metadata", id, bytes(m).ok_or_else(|| bad("no metadata"))?)?,
    }))
}

/// A recovery point as the list of `p:<id>` holds it: `pid\nversion\ncreated\ndata`.
pub(crate) fn point(id: &str, raw: &[u8]) -> Result<Snapshot> {
    let mut parts = raw.splitn(4, |b| *b == b'\n');
    let mut num = || -> Result<u64> {
        let part = parts.next().ok_or_else(|| bad("a short recovery point"))?;
        std::str::from_utf8(part)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("a recovery point's number"))
    };
    let (pid, version, created) = (num()?, num()?, num()?);
    let data = parts
        .next()
        .ok_or_else(|| bad("a recovery point without data"))?;
    Ok(Snapshot {
        id: pid,
        context_id: id.to_owned(),
        version,
        created_at_ms: created,
        data: json("recovery point", id, data)?,
    })
}

/// An event from its type, id, version and revision.
pub(crate) fn event(kind: &str, id: &str, version: u64, revision: u64) -> Result<ContextEvent> {
    let id = id.to_owned();
    Ok(match kind {
        "created" => ContextEvent::Created {
            id,
            version,
            revision,
        },
        "updated" => ContextEvent::Updated {
            id,
            version,
            revision,
        },
        "deleted" => ContextEvent::Deleted {
            id,
            version,
            revision,
        },
        "restored" => ContextEvent::Restored {
            id,
            version,
            revision,
        },
        "expired" => ContextEvent::Expired {
            id,
            version,
            revision,
        },
        "evicted" => ContextEvent::Evicted {
            id,
            version,
            revision,
        },
        other => return Err(bad(format!("an event of type {other:?}"))),
    })
}

/// The events of a write reply: flat (type, id, version, revision) quadruples.
pub(crate) fn events(flat: &[Value]) -> Result<Vec<ContextEvent>> {
    flat.chunks(4)
        .map(|q| match q {
            [t, i, v, r] => event(text(t)?, text(i)?, int(v)?, int(r)?),
            _ => Err(bad("a short event")),
        })
        .collect()
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
                && let Ok(event) = event(k, i, v, revision)
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
