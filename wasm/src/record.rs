//! States, stored records and metadata read back from JSON values.
//!
//! Decoded by hand from a `serde_json::Value` rather than with serde's derived
//! `Deserialize`: the derived visitors' error messages format every kind of
//! unexpected value (floats included), which would add tens of kilobytes to
//! the module. The layout is the one `serde_json` writes for these types.

// Records and metadata are read by storage.rs, which exists only in wasm.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

use crate::options::string_map;
use contextkit_core::{ContextState, Meta, Record, SnapshotRecord};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The field that is missing or has the wrong type, e.g. `state.version`.
pub(crate) type Decoded<T> = Result<T, &'static str>;

fn object(v: Value, what: &'static str) -> Decoded<Map<String, Value>> {
    match v {
        Value::Object(fields) => Ok(fields),
        _ => Err(what),
    }
}

fn take(fields: &mut Map<String, Value>, key: &str) -> Value {
    fields.remove(key).unwrap_or(Value::Null)
}

fn uint(v: Value, what: &'static str) -> Decoded<u64> {
    v.as_u64().ok_or(what)
}

/// `null` (or absent) is `None`.
fn opt_uint(v: Value, what: &'static str) -> Decoded<Option<u64>> {
    match v {
        Value::Null => Ok(None),
        v => uint(v, what).map(Some),
    }
}

/// A context state: `{ id, version, revision, createdAtMs, updatedAtMs,
/// expiresAtMs, data, metadata }`; `expiresAtMs` and `metadata` may be absent
/// or null, `revision` absent or null (0: stored before revisions existed).
/// `what` names the state in the error (`state`, `points[].state`).
pub(crate) fn state(v: Value, what: &'static str) -> Decoded<ContextState> {
    let mut f = object(v, what)?;
    let Value::String(id) = take(&mut f, "id") else {
        return Err("id");
    };
    let version = uint(take(&mut f, "version"), "version")?;
    let revision = opt_uint(take(&mut f, "revision"), "revision")?.unwrap_or(0);
    let created_at_ms = uint(take(&mut f, "createdAtMs"), "createdAtMs")?;
    let updated_at_ms = uint(take(&mut f, "updatedAtMs"), "updatedAtMs")?;
    let expires_at_ms = opt_uint(take(&mut f, "expiresAtMs"), "expiresAtMs")?;
    let data = take(&mut f, "data");
    if !data.is_object() {
        return Err("data");
    }
    let metadata = match take(&mut f, "metadata") {
        Value::Null => BTreeMap::new(),
        v => string_map(v).ok_or("metadata")?,
    };
    Ok(ContextState {
        id,
        version,
        revision,
        created_at_ms,
        updated_at_ms,
        expires_at_ms,
        data,
        metadata,
    })
}

fn point(v: Value) -> Decoded<SnapshotRecord> {
    let mut f = object(v, "points[]")?;
    Ok(SnapshotRecord {
        id: uint(take(&mut f, "id"), "points[].id")?,
        created_at_ms: uint(take(&mut f, "createdAtMs"), "points[].createdAtMs")?,
        state: Arc::new(state(take(&mut f, "state"), "points[].state")?),
    })
}

/// A stored [`Record`]: `{ state, ttlMs, points, nextSnapshotId }`.
pub(crate) fn record(v: Value) -> Decoded<Record> {
    let mut f = object(v, "record")?;
    let state = Arc::new(state(take(&mut f, "state"), "state")?);
    let ttl_ms = opt_uint(take(&mut f, "ttlMs"), "ttlMs")?;
    let Value::Array(points) = take(&mut f, "points") else {
        return Err("points");
    };
    let points = points.into_iter().map(point).collect::<Decoded<_>>()?;
    let next_snapshot_id = uint(take(&mut f, "nextSnapshotId"), "nextSnapshotId")?;
    Ok(Record {
        state,
        ttl_ms,
        snapshots: points,
        next_snapshot_id,
    })
}

/// The stored [`Meta`]: `{ nextSnapshotId, nextRevision }`; `nextRevision`
/// may be absent or null (stored before revisions existed).
pub(crate) fn meta(v: Value) -> Decoded<Meta> {
    let mut f = object(v, "meta")?;
    Ok(Meta {
        next_snapshot_id: uint(take(&mut f, "nextSnapshotId"), "nextSnapshotId")?,
        next_revision: opt_uint(take(&mut f, "nextRevision"), "nextRevision")?.unwrap_or(0),
    })
}
