//! The call and reply format of contextkit's Redis library
//! (`native/redis/contextkit.lua`), shared by every front-end that runs it:
//! the Rust crate over Redis, the npm package over Redis and over IndexedDB
//! (which runs the same functions in a transaction). A front-end only moves
//! the calls: it turns a [`Write`] into the library's arguments with
//! [`write_args`], and what its client received into a [`Wire`] for
//! [`write_reply`]. Records (`c:<id>`) and recovery points (`p:<id>`) are
//! read from their text with [`state`] and [`snapshot`].
//!
//! Data and metadata travel as JSON text that the library never decodes, so
//! numbers round-trip exactly; the front-end's [`ParseJson`] reads them.

use super::{Committed, Write, WriteReply};
use crate::{
    ContextError, ContextEvent, ContextState, Data, MAX_DEPTH, ManagerConfig, Result, Snapshot,
};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

/// One reply of the library, as a client delivered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wire {
    /// Nil (a missing key, Lua's `false`).
    Nil,
    /// An integer.
    Int(i64),
    /// A string.
    Text(String),
    /// An array (an empty map, which a replayed empty table can become, too).
    List(Vec<Wire>),
}

/// How data and metadata text is read (see [`crate::ParseJson`]); the wire
/// functions read values at most [`MAX_DEPTH`](crate::MAX_DEPTH) deep.
pub use crate::ParseJson;

/// Counts sent to the library stay below this (exact as a double in Lua).
pub const MAX_COUNT: u64 = 1 << 40;

/// TTLs beyond 2^52 ms (142,000 years) are refused: Redis could not store
/// their expiry.
pub const MAX_TTL_MS: u64 = 1 << 52;

pub(crate) fn bad(what: impl std::fmt::Display) -> ContextError {
    ContextError::storage(format!("unexpected reply from the shared store: {what}"))
}

impl Wire {
    /// What the reply is, for messages.
    fn kind(&self) -> &'static str {
        match self {
            Self::Nil => "nil",
            Self::Int(_) => "an integer",
            Self::Text(_) => "text",
            Self::List(_) => "an array",
        }
    }

    /// The text of a string reply.
    pub fn text(&self) -> Result<&str> {
        match self {
            Self::Text(s) => Ok(s),
            other => Err(bad(format!("{} where text belongs", other.kind()))),
        }
    }

    /// An integer, or a string of one (integers travel as decimal text).
    pub fn int(&self) -> Result<u64> {
        match self {
            Self::Int(n) => u64::try_from(*n).map_err(|_| bad(n)),
            Self::Text(s) => s.parse().map_err(|_| bad(format!("'{s}' is not a number"))),
            other => Err(bad(format!("{} where a number belongs", other.kind()))),
        }
    }

    /// `''` for none.
    fn opt_int(&self) -> Result<Option<u64>> {
        match self {
            Self::Text(s) if s.is_empty() => Ok(None),
            other => other.int().map(Some),
        }
    }

    /// The items of an array; nil is empty.
    pub fn items(&self) -> Result<&[Wire]> {
        match self {
            Self::List(items) => Ok(items),
            Self::Nil => Ok(&[]),
            other => Err(bad(format!("{} where an array belongs", other.kind()))),
        }
    }
}

/// The operation name of a write in the library (`ARGV[1]` of `ck2_write`).
pub fn op_name(write: &Write) -> &'static str {
    match write {
        Write::Create { .. } => "create",
        Write::Update { .. } => "update",
        Write::Delete { .. } => "delete",
        Write::Touch { .. } => "touch",
        Write::RecoveryPoint { .. } => "point",
        Write::Restore { .. } => "restore",
        Write::Sweep { .. } => "sweep",
        Write::Evict { .. } => "evict",
    }
}

/// The context a write is about, if one.
pub fn write_id(write: &Write) -> Option<&str> {
    match write {
        Write::Create { id, .. }
        | Write::Update { id, .. }
        | Write::Delete { id }
        | Write::Touch { id }
        | Write::RecoveryPoint { id, .. }
        | Write::Restore { id, .. } => Some(id),
        Write::Sweep { .. } | Write::Evict { .. } => None,
    }
}

pub(crate) fn check_ttl(ttl_ms: Option<u64>) -> Result<String> {
    match ttl_ms {
        Some(ttl) if ttl > MAX_TTL_MS => Err(ContextError::InvalidArgument(format!(
            "a TTL of {ttl} ms; a shared namespace takes at most {MAX_TTL_MS}"
        ))),
        other => Ok(opt(other)),
    }
}

/// A count as the library takes it.
fn count(n: usize) -> String {
    u64::try_from(n)
        .unwrap_or(u64::MAX)
        .min(MAX_COUNT)
        .to_string()
}

fn opt(n: Option<u64>) -> String {
    n.map(|n| n.to_string()).unwrap_or_default()
}

/// The JSON text of `v`. (It cannot fail: every map sent has string keys.
/// Its error is not formatted, which keeps serde_json's and std::io's
/// message tables out of the npm package's module.)
fn to_json(v: &impl serde::Serialize) -> Result<String> {
    serde_json::to_string(v).map_err(|_| ContextError::storage("cannot encode a write's arguments"))
}

/// The keys a `ck2_write` of operation `op` touches, relative to the
/// namespace's prefix (`ck:{namespace}:`): declared so that a cluster moving
/// the namespace's slot answers ASK or TRYAGAIN instead of running the write
/// against a namespace that is half here, half there. The first is the one
/// the library reads its names from.
pub fn write_keys(write: &Write, op: &str) -> Vec<String> {
    let mut keys = vec![
        "meta".to_owned(),
        "ev".to_owned(),
        "ids".to_owned(),
        "exp".to_owned(),
        format!("op:{op}"),
    ];
    if let Some(id) = write_id(write).filter(|id| !id.is_empty()) {
        keys.push(format!("c:{id}"));
        keys.push(format!("p:{id}"));
    }
    keys
}

/// The arguments of `ck2_write` that follow the common ones (operation,
/// epoch, operation id, reply lifetime, event retention, time).
pub fn write_args(write: &Write) -> Result<Vec<String>> {
    Ok(match write {
        Write::Create {
            id,
            data,
            ttl_ms,
            metadata,
            capacity,
        } => vec![
            id.clone(),
            data.json_text().into_owned(),
            check_ttl(*ttl_ms)?,
            to_json(metadata)?,
            count(*capacity),
        ],
        Write::Update {
            id,
            data,
            expected_version,
            expected_revision,
            ttl_ms,
        } => vec![
            id.clone(),
            data.json_text().into_owned(),
            opt(*expected_version),
            check_ttl(*ttl_ms)?,
            opt(*expected_revision),
        ],
        Write::Delete { id } | Write::Touch { id } => vec![id.clone()],
        // No list holds more: keeping "all" is keeping this many.
        Write::RecoveryPoint { id, keep } => {
            vec![id.clone(), count((*keep).max(1))]
        }
        Write::Restore { id, snapshot_id } => vec![id.clone(), snapshot_id.to_string()],
        Write::Sweep { max } => vec![count((*max).max(1))],
        Write::Evict { capacity } => vec![count(*capacity)],
    })
}

/// Why a write was refused with `EPOCH`: the store is not the namespace the
/// manager joined.
pub fn lost_message(namespace: &str) -> String {
    format!(
        "namespace '{namespace}' is not the one this manager joined: the store lost its data (restarted without persistence, flushed or failed over to an empty replica)"
    )
}

/// What a transport answers for a read that found the namespace is not the
/// one the manager joined (its epoch is another, or there is none):
/// `["EPOCH", nil]`, which no read of the library answers. The client then
/// reports the manager lost ([`lost_message`]).
pub fn lost_reply() -> Wire {
    Wire::List(vec![Wire::Text("EPOCH".into()), Wire::Nil])
}

/// Whether `reply` is [`lost_reply`].
pub fn is_lost_reply(reply: &Wire) -> bool {
    matches!(reply, Wire::List(l) if matches!(l.as_slice(), [Wire::Text(t), Wire::Nil] if t == "EPOCH"))
}

/// A decoded `ck2_write` (or `ck2_settle`) reply.
#[derive(Debug)]
pub struct Decoded {
    /// The write's reply.
    pub reply: WriteReply,
    /// Set when the store is not the namespace joined ([`lost_message`]):
    /// the manager's events are lost too.
    pub lost: bool,
}

/// Reads the reply `[status, details, events, contexts?]` of `write`.
/// `timeout_ms` is the client's, for the message of an aborted write.
pub fn write_reply(
    write: Write,
    reply: &Wire,
    namespace: &str,
    timeout_ms: u64,
    parse: ParseJson,
) -> Result<Decoded> {
    let [status, details, events, rest @ ..] = reply.items()? else {
        return Err(bad("ck2_write"));
    };
    let events = self::events(events.items()?)?;
    let contexts = rest
        .first()
        .map(Wire::int)
        .transpose()?
        .map(|n| usize::try_from(n).unwrap_or(usize::MAX));
    let status = status.text()?;
    let outcome = outcome(
        write,
        status,
        details.items()?,
        namespace,
        timeout_ms,
        parse,
    );
    Ok(Decoded {
        reply: WriteReply {
            outcome,
            events,
            contexts,
        },
        lost: status == "EPOCH",
    })
}

fn outcome(
    write: Write,
    status: &str,
    d: &[Wire],
    namespace: &str,
    timeout_ms: u64,
    parse: ParseJson,
) -> Result<Committed> {
    let id = write_id(&write).unwrap_or_default().to_owned();
    match status {
        "OK" => {}
        "NOT_FOUND" => {
            return Err(match (&write, d.first()) {
                (Write::Restore { snapshot_id, .. }, Some(_)) => {
                    ContextError::recovery_point_not_found(id, *snapshot_id)
                }
                _ => ContextError::not_found(id),
            });
        }
        "ALREADY_EXISTS" => return Err(ContextError::AlreadyExists { id }),
        "CAPACITY_EXCEEDED" => {
            let (what, limit) = match d {
                [w, l, ..] => (w.text()?.to_owned(), l.int()?),
                _ => ("contexts".to_owned(), 0),
            };
            return Err(ContextError::CapacityExceeded {
                what,
                limit: usize::try_from(limit).unwrap_or(usize::MAX),
            });
        }
        "VERSION_CONFLICT" => {
            // The reply holds the stored version, then its revision: versions
            // unless the expected one matched (then the revision differed).
            let version = d.first().map(Wire::int).transpose()?.unwrap_or(0);
            let (expected, actual) = match &write {
                Write::Update {
                    expected_version,
                    expected_revision: Some(r),
                    ..
                } if expected_version.is_none_or(|v| v == version) => {
                    (*r, d.get(1).map(Wire::int).transpose()?.unwrap_or(0))
                }
                Write::Update {
                    expected_version, ..
                } => (expected_version.unwrap_or(0), version),
                _ => (0, version),
            };
            return Err(ContextError::VersionConflict {
                id,
                expected,
                actual,
            });
        }
        "ABORTED" => {
            return Err(ContextError::storage(format!(
                "no answer within {timeout_ms} ms; the write was not applied"
            )));
        }
        "EPOCH" => return Err(ContextError::storage(lost_message(namespace))),
        other => return Err(bad(format!("status '{other}'"))),
    }
    let json =
        |what: &str, w: &Wire| stored_data(|| format!("the {what} of '{id}'"), w.text()?, parse);
    Ok(match write {
        Write::Create { data, .. } | Write::Update { data, .. } => {
            Committed::State(written(&id, d, data, parse)?)
        }
        Write::Restore { .. } | Write::Touch { .. } => {
            let data = json(
                "data",
                d.get(7).ok_or_else(|| bad("a state with its data"))?,
            )?;
            Committed::State(written(&id, d, data, parse)?)
        }
        Write::RecoveryPoint { .. } => {
            let [sid, v, at, data, ..] = d else {
                return Err(bad("a recovery point reply"));
            };
            Committed::Snapshot(Snapshot {
                id: sid.int()?,
                context_id: id.clone(),
                version: v.int()?,
                created_at_ms: at.int()?,
                data: json("recovery point", data)?,
            })
        }
        Write::Sweep { .. } | Write::Evict { .. } => {
            let n = d.first().map(Wire::int).transpose()?.unwrap_or(0);
            Committed::Removed(usize::try_from(n).unwrap_or(usize::MAX))
        }
        Write::Delete { .. } => Committed::Done,
    })
}

/// Data as the store holds it, kept as its text; `what` names it in errors.
/// `what` names the value for the message of a refusal (made only then).
fn stored_data(what: impl FnOnce() -> String, text: &str, parse: ParseJson) -> Result<Data> {
    Data::read_json(text.to_owned(), parse)
        .map_err(|why| ContextError::storage(format!("{} in the store {why}", what())))
}

/// The metadata of `id` from its JSON text (an object of strings).
fn metadata(id: &str, text: &str, parse: ParseJson) -> Result<BTreeMap<String, String>> {
    let damaged =
        || ContextError::storage(format!("the metadata of '{id}' in the store is damaged"));
    let value = parse(text, MAX_DEPTH).map_err(|_| damaged())?;
    crate::storage::metadata_from_value(value).ok_or_else(damaged)
}

/// The state a write replied with: `[version, revision, created, updated,
/// expires, ttl, metadata, ...]`, its data being `data`.
fn written(id: &str, d: &[Wire], data: Data, parse: ParseJson) -> Result<Arc<ContextState>> {
    let [v, r, c, u, e, _ttl, m, ..] = d else {
        return Err(bad(format!("a state of {} fields", d.len())));
    };
    Ok(Arc::new(ContextState {
        id: id.to_owned(),
        version: v.int()?,
        revision: r.int()?,
        created_at_ms: c.int()?,
        updated_at_ms: u.int()?,
        expires_at_ms: e.opt_int()?,
        data,
        metadata: metadata(id, m.text()?, parse)?,
    }))
}

/// A context from its record text, `"V R C U E T\n" + metadata + "\n" +
/// data` (E and T empty for none).
pub fn state(id: &str, record: &str, parse: ParseJson) -> Result<Arc<ContextState>> {
    let damaged = || ContextError::storage(format!("the record of '{id}' in the store is damaged"));
    let mut lines = record.splitn(3, '\n');
    let (Some(head), Some(meta), Some(data)) = (lines.next(), lines.next(), lines.next()) else {
        return Err(damaged());
    };
    let mut fields = head.split(' ');
    let mut next = || fields.next().ok_or_else(damaged);
    let number = |s: &str| s.parse::<u64>().map_err(|_| damaged());
    let (v, r, c, u, e) = (next()?, next()?, next()?, next()?, next()?);
    Ok(Arc::new(ContextState {
        id: id.to_owned(),
        version: number(v)?,
        revision: number(r)?,
        created_at_ms: number(c)?,
        updated_at_ms: number(u)?,
        expires_at_ms: if e.is_empty() { None } else { Some(number(e)?) },
        data: stored_data(|| format!("the data of '{id}'"), data, parse)?,
        metadata: metadata(id, meta, parse)?,
    }))
}

/// A recovery point of `id` as its list holds it: `pid\nversion\ncreated\ndata`.
pub fn snapshot(id: &str, raw: &str, parse: ParseJson) -> Result<Snapshot> {
    let mut parts = raw.splitn(4, '\n');
    let mut num = || -> Result<u64> {
        parts
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("a recovery point's number"))
    };
    let (sid, version, created) = (num()?, num()?, num()?);
    let data = parts
        .next()
        .ok_or_else(|| bad("a recovery point without data"))?;
    Ok(Snapshot {
        id: sid,
        context_id: id.to_owned(),
        version,
        created_at_ms: created,
        data: stored_data(|| format!("a recovery point of '{id}'"), data, parse)?,
    })
}

/// The recovery points of a `ck2_points` reply: `None` when the context is
/// not live.
pub fn snapshots(id: &str, reply: &Wire, parse: ParseJson) -> Result<Option<Vec<Snapshot>>> {
    match reply.items()? {
        [status, list] if status.text()? == "OK" => list
            .items()?
            .iter()
            .map(|s| snapshot(id, s.text()?, parse))
            .collect::<Result<Vec<_>>>()
            .map(Some),
        _ => Ok(None),
    }
}

/// The states of a `ck2_live … 'states'` reply (id, record, id, record…).
pub fn live_states(reply: &Wire, parse: ParseJson) -> Result<Vec<Arc<ContextState>>> {
    reply
        .items()?
        .chunks(2)
        .filter_map(|pair| match pair {
            [id, raw] => Some((|| state(id.text()?, raw.text()?, parse))()),
            _ => None,
        })
        .collect()
}

/// The ids of a `ck2_live … 'ids'` reply.
pub fn live_ids(reply: &Wire) -> Result<Vec<String>> {
    reply
        .items()?
        .iter()
        .map(|v| v.text().map(str::to_owned))
        .collect()
}

/// An event from its type, id, version and revision.
pub fn event(kind: &str, id: &str, version: u64, revision: u64) -> Result<ContextEvent> {
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
        other => return Err(bad(format!("an event of type '{other}'"))),
    })
}

/// The events of a write reply: flat (type, id, version, revision) quadruples.
pub fn events(flat: &[Wire]) -> Result<Vec<ContextEvent>> {
    flat.chunks(4)
        .map(|q| match q {
            [t, i, v, r] => event(t.text()?, i.text()?, v.int()?, r.int()?),
            _ => Err(bad("a short event")),
        })
        .collect()
}

/// The configuration a namespace is made with: the manager's (camelCase
/// JSON, the same from every front-end) and the kind of clock.
pub fn namespace_config(config: &ManagerConfig, client_clock: bool) -> Value {
    let mut cfg = serde_json::to_value(config).unwrap_or_default();
    if let Some(map) = cfg.as_object_mut() {
        let clock = if client_clock { "client" } else { "server" };
        map.insert("clock".into(), clock.into());
        // Sliding expiry is how this manager reads, not what the namespace
        // holds: every touch is decided by the store against its own state,
        // so managers that differ here still act as one store, and a manager
        // that only inspects (an admin tool) can read without keeping
        // sessions alive. Namespaces made before the setting existed join too.
        map.remove("slidingTtl");
    }
    cfg
}

/// Checks the `ck2_join` reply `[epoch, configuration, revision]` against
/// the configuration this manager wants; the epoch and the revision.
pub fn joined(
    reply: &Wire,
    wanted: &Value,
    namespace: &str,
    parse: ParseJson,
) -> Result<(String, u64)> {
    let [epoch, stored, revision] = reply.items()? else {
        return Err(bad("ck2_join"));
    };
    let stored = parse(stored.text()?, MAX_DEPTH).map_err(|e| {
        ContextError::storage(format!(
            "namespace '{namespace}' has an unreadable configuration: {e}"
        ))
    })?;
    if let Some(diff) = difference(&stored, wanted) {
        return Err(ContextError::InvalidArgument(format!(
            "namespace '{namespace}' was made with another configuration: {diff}"
        )));
    }
    Ok((epoch.text()?.to_owned(), revision.int()?))
}

/// The first setting in which two namespace configurations differ.
fn difference(stored: &Value, wanted: &Value) -> Option<String> {
    let (a, b) = (stored.as_object()?, wanted.as_object()?);
    let missing = Value::Null;
    a.keys()
        .chain(b.keys())
        .find(|k| a.get(*k) != b.get(*k))
        .map(|k| {
            format!(
                "{k} is {} there, {} here",
                a.get(k).unwrap_or(&missing),
                b.get(k).unwrap_or(&missing)
            )
        })
}

/// Checks a namespace name: 1 to 128 bytes, no braces (the hash tag) or
/// control characters.
pub fn check_namespace(namespace: &str) -> Result<()> {
    if namespace.is_empty() || namespace.len() > 128 {
        return Err(ContextError::InvalidArgument(format!(
            "namespace is {} bytes; it must be 1 to 128",
            namespace.len()
        )));
    }
    if let Some(c) = namespace
        .chars()
        .find(|c| c.is_control() || *c == '{' || *c == '}')
    {
        // Escaped: a control character would not show.
        return Err(ContextError::InvalidArgument(format!(
            "namespace '{}' contains U+{:04X}: no braces or control characters",
            namespace.escape_default(),
            c as u32
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str, _max_depth: usize) -> std::result::Result<Value, String> {
        serde_json::from_str(s).map_err(|e| e.to_string())
    }

    fn t(s: &str) -> Wire {
        Wire::Text(s.into())
    }

    #[test]
    fn a_record_reads_back_exactly() {
        let s = state(
            "a",
            "3 9 100 200 300 50\n{\"k\":\"v\"}\n{\"n\":12345678901234567890}",
            parse,
        )
        .unwrap();
        assert_eq!((s.version, s.revision, s.expires_at_ms), (3, 9, Some(300)));
        assert_eq!(s.metadata["k"], "v");
        assert_eq!(s.data["n"].to_string(), "12345678901234567890");
        let damaged = state("a", "3 9 x 200  \n{}\n{}", parse).unwrap_err();
        assert_eq!(damaged.code(), "STORAGE");
    }

    #[test]
    fn write_replies_decode_to_outcomes() {
        let update = || Write::Update {
            id: "a".into(),
            data: serde_json::json!({"x": 1}).into(),
            expected_version: Some(2),
            expected_revision: None,
            ttl_ms: None,
        };
        let ok = Wire::List(vec![
            t("OK"),
            Wire::List(vec![
                Wire::Int(3),
                Wire::Int(7),
                t("1"),
                t("2"),
                t(""),
                t(""),
                t("{}"),
            ]),
            Wire::List(vec![t("updated"), t("a"), Wire::Int(3), Wire::Int(7)]),
            Wire::Int(1),
        ]);
        let d = write_reply(update(), &ok, "ns", 1, parse).unwrap();
        let Ok(Committed::State(s)) = &d.reply.outcome else {
            panic!("{d:?}")
        };
        assert_eq!(
            (s.version, s.revision, s.data["x"].as_u64()),
            (3, 7, Some(1))
        );
        assert_eq!(d.reply.events.len(), 1);
        assert_eq!(d.reply.contexts, Some(1));
        let conflict = Wire::List(vec![
            t("VERSION_CONFLICT"),
            Wire::List(vec![t("5")]),
            Wire::Nil,
        ]);
        let d = write_reply(update(), &conflict, "ns", 1, parse).unwrap();
        assert!(matches!(
            d.reply.outcome,
            Err(ContextError::VersionConflict {
                expected: 2,
                actual: 5,
                ..
            })
        ));
        let lost = Wire::List(vec![t("EPOCH"), Wire::List(vec![t("")]), Wire::Nil]);
        assert!(write_reply(update(), &lost, "ns", 1, parse).unwrap().lost);
        assert_eq!(
            write_reply(update(), &t("x"), "ns", 1, parse)
                .unwrap_err()
                .code(),
            "STORAGE"
        );
    }

    #[test]
    fn configurations_name_their_difference() {
        let cfg = ManagerConfig::default();
        let wanted = namespace_config(&cfg, false);
        let other = ManagerConfig {
            max_contexts: 3,
            ..cfg
        };
        let stored = namespace_config(&other, false).to_string();
        let reply = Wire::List(vec![t("e"), t(&stored), t("4")]);
        let err = joined(&reply, &wanted, "ns", parse).unwrap_err();
        assert!(err.to_string().contains("maxContexts is 3 there"), "{err}");
        let same = Wire::List(vec![t("e"), t(&wanted.to_string()), t("4")]);
        assert_eq!(
            joined(&same, &wanted, "ns", parse).unwrap(),
            ("e".into(), 4)
        );
    }
}
