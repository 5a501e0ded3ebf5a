//! States, stored records and metadata read back from JSON values.
//!
//! Decoded by hand rather than with serde's derived `Deserialize`: the
//! derived visitors' error messages format every kind of unexpected value
//! (floats included), which would add tens of kilobytes to the npm package's
//! module. The layout is the one `serde_json` writes for these types. An
//! error names the field that is missing or has the wrong type, as the JSON
//! spells it (`version`, `points[].createdAtMs`).

use super::{Meta, Record, SnapshotRecord};
use crate::ContextState;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A decoded value, or the field that is missing or has the wrong type.
type Decoded<T> = std::result::Result<T, &'static str>;

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

/// Metadata given as JSON (an object whose values are all strings) as a
/// map; `None` if it is anything else.
pub fn metadata_from_value(v: Value) -> Option<BTreeMap<String, String>> {
    let Value::Object(map) = v else {
        return None;
    };
    let mut out = BTreeMap::new();
    for (k, v) in map {
        let Value::String(s) = v else {
            return None;
        };
        out.insert(k, s);
    }
    Some(out)
}

/// A context state; `what` names it in the error (`state`, `points[].state`).
fn state(v: Value, what: &'static str) -> Decoded<ContextState> {
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
        v => metadata_from_value(v).ok_or("metadata")?,
    };
    Ok(ContextState {
        id,
        version,
        revision,
        created_at_ms,
        updated_at_ms,
        expires_at_ms,
        data: data.into(),
        metadata,
    })
}

fn snapshot(v: Value) -> Decoded<SnapshotRecord> {
    let mut f = object(v, "points[]")?;
    Ok(SnapshotRecord {
        id: uint(take(&mut f, "id"), "points[].id")?,
        created_at_ms: uint(take(&mut f, "createdAtMs"), "points[].createdAtMs")?,
        state: Arc::new(state(take(&mut f, "state"), "points[].state")?),
    })
}

impl ContextState {
    /// A state from the JSON value of one: `{ id, version, revision,
    /// createdAtMs, updatedAtMs, expiresAtMs, data, metadata }`. `expiresAtMs`
    /// and `metadata` may be absent or null, `revision` too (0: stored before
    /// revisions existed); `data` must be an object. `Err` names the field
    /// that is missing or has the wrong type (`state` if it is no object).
    ///
    /// ```
    /// # use contextkit_core::*;
    /// let s = ContextState::from_value(json!({
    ///     "id": "a", "version": 2, "createdAtMs": 1, "updatedAtMs": 5, "data": { "x": 1 },
    /// })).unwrap();
    /// assert_eq!((s.version, s.revision, s.expires_at_ms), (2, 0, None));
    /// assert_eq!(ContextState::from_value(json!({ "id": "a", "version": "2" })), Err("version"));
    /// ```
    pub fn from_value(v: Value) -> std::result::Result<Self, &'static str> {
        state(v, "state")
    }
}

impl Record {
    /// A record from its JSON value, as `serde_json` writes it: `{ state,
    /// ttlMs, points, nextSnapshotId }`, each point `{ id, createdAtMs, state }`
    /// and each state as [`ContextState::from_value`] reads it. `Err` names the
    /// field that is missing or has the wrong type (`record` if it is no
    /// object, `points[].id` for a point's).
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # use std::sync::Arc;
    /// let state = ContextState::from_value(json!({
    ///     "id": "a", "version": 1, "createdAtMs": 0, "updatedAtMs": 0, "data": {},
    /// })).unwrap();
    /// let record = Record { state: Arc::new(state), ttl_ms: None, snapshots: vec![], next_snapshot_id: 1 };
    /// let value = serde_json::to_value(&record).unwrap();
    /// assert_eq!(Record::from_value(value), Ok(record));
    /// assert_eq!(Record::from_value(json!([])), Err("record"));
    /// ```
    pub fn from_value(v: Value) -> std::result::Result<Self, &'static str> {
        let mut f = object(v, "record")?;
        let state = Arc::new(state(take(&mut f, "state"), "state")?);
        let ttl_ms = opt_uint(take(&mut f, "ttlMs"), "ttlMs")?;
        let Value::Array(snapshots) = take(&mut f, "points") else {
            return Err("points");
        };
        let snapshots = snapshots
            .into_iter()
            .map(snapshot)
            .collect::<Decoded<_>>()?;
        let next_snapshot_id = uint(take(&mut f, "nextSnapshotId"), "nextSnapshotId")?;
        Ok(Self {
            state,
            ttl_ms,
            snapshots,
            next_snapshot_id,
        })
    }
}

impl Meta {
    /// The meta from its JSON value: `{ nextSnapshotId, nextRevision }`;
    /// `nextRevision` may be absent or null (stored before revisions
    /// existed). `Err` names the field that is missing or has the wrong type
    /// (`meta` if it is no object).
    ///
    /// ```
    /// # use contextkit_core::*;
    /// let meta = Meta::from_value(json!({ "nextSnapshotId": 3 })).unwrap();
    /// assert_eq!(meta, Meta { next_snapshot_id: 3, next_revision: 0 });
    /// assert_eq!(Meta::from_value(json!({ "nextSnapshotId": -1 })), Err("nextSnapshotId"));
    /// ```
    pub fn from_value(v: Value) -> std::result::Result<Self, &'static str> {
        let mut f = object(v, "meta")?;
        Ok(Self {
            next_snapshot_id: uint(take(&mut f, "nextSnapshotId"), "nextSnapshotId")?,
            next_revision: opt_uint(take(&mut f, "nextRevision"), "nextRevision")?.unwrap_or(0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn a_record() -> Record {
        let state = |version, data: Value| {
            Arc::new(ContextState {
                id: "a".into(),
                version,
                revision: version + 10,
                created_at_ms: 100,
                updated_at_ms: 100 + version,
                expires_at_ms: Some(9_000),
                data: data.into(),
                metadata: BTreeMap::from([("owner".into(), "me".into())]),
            })
        };
        Record {
            state: state(2, json!({ "x": [1, 2.5, { "y": null }] })),
            ttl_ms: Some(8_000),
            snapshots: vec![SnapshotRecord {
                id: 7,
                created_at_ms: 101,
                state: state(1, json!({ "x": 1 })),
            }],
            next_snapshot_id: 8,
        }
    }

    /// The value at a `/`-separated path of object keys and array indexes.
    fn at<'v>(v: &'v mut Value, path: &str) -> &'v mut Value {
        path.split('/')
            .fold(v, |v, step| match step.parse::<usize>() {
                Ok(i) => &mut v[i],
                Err(_) => &mut v[step],
            })
    }

    /// `path`'s parent and its last key.
    fn parent<'v>(v: &'v mut Value, path: &str) -> (&'v mut Map<String, Value>, String) {
        let (up, key) = path.rsplit_once('/').unwrap_or(("", path));
        let up = if up.is_empty() { v } else { at(v, up) };
        (up.as_object_mut().unwrap(), key.to_owned())
    }

    #[test]
    fn a_record_decodes_to_the_one_serde_json_wrote() {
        let record = a_record();
        let value = serde_json::to_value(&record).unwrap();
        assert_eq!(Record::from_value(value), Ok(record));
        let meta = Meta {
            next_snapshot_id: 4,
            next_revision: 9,
        };
        assert_eq!(
            Meta::from_value(serde_json::to_value(meta).unwrap()),
            Ok(meta)
        );
    }

    /// Every required field, missing or of the wrong type, is named.
    #[test]
    fn a_missing_or_mistyped_field_is_named() {
        let cases = [
            ("state", "state"),
            ("state/id", "id"),
            ("state/version", "version"),
            ("state/createdAtMs", "createdAtMs"),
            ("state/updatedAtMs", "updatedAtMs"),
            ("state/data", "data"),
            ("points", "points"),
            ("points/0/id", "points[].id"),
            ("points/0/createdAtMs", "points[].createdAtMs"),
            ("points/0/state", "points[].state"),
            ("points/0/state/version", "version"),
            ("points/0/state/data", "data"),
            ("nextSnapshotId", "nextSnapshotId"),
        ];
        let good = serde_json::to_value(a_record()).unwrap();
        for (path, field) in cases {
            let mut missing = good.clone();
            let (up, key) = parent(&mut missing, path);
            up.remove(&key);
            assert_eq!(Record::from_value(missing), Err(field), "{path} missing");
            let mut mistyped = good.clone();
            *at(&mut mistyped, path) = json!(true);
            assert_eq!(Record::from_value(mistyped), Err(field), "{path} mistyped");
        }
    }

    /// Optional fields may be absent or null, but not of the wrong type.
    #[test]
    fn an_optional_field_may_be_absent_but_not_mistyped() {
        let cases = [
            ("state/revision", "revision"),
            ("state/expiresAtMs", "expiresAtMs"),
            ("state/metadata", "metadata"),
            ("ttlMs", "ttlMs"),
            ("points/0/state/expiresAtMs", "expiresAtMs"),
        ];
        let good = serde_json::to_value(a_record()).unwrap();
        for (path, field) in cases {
            for absent in [None, Some(Value::Null)] {
                let mut v = good.clone();
                let (up, key) = parent(&mut v, path);
                match absent {
                    None => up.remove(&key),
                    Some(null) => up.insert(key, null),
                };
                assert!(Record::from_value(v).is_ok(), "{path} absent or null");
            }
            for wrong in [json!("1"), json!(-1), json!(1.5), json!([1])] {
                let mut v = good.clone();
                *at(&mut v, path) = wrong.clone();
                assert_eq!(Record::from_value(v), Err(field), "{path} = {wrong}");
            }
        }
        let mut v = good;
        *at(&mut v, "state/metadata") = json!({ "owner": 1 });
        assert_eq!(
            Record::from_value(v),
            Err("metadata"),
            "a number in metadata"
        );
    }

    #[test]
    fn the_defaults_of_older_records_and_metas() {
        let mut v = serde_json::to_value(a_record()).unwrap();
        for path in ["state/revision", "state/metadata", "state/expiresAtMs"] {
            let (up, key) = parent(&mut v, path);
            up.remove(&key);
        }
        let state = Record::from_value(v).unwrap().state;
        assert_eq!(state.revision, 0);
        assert_eq!(state.expires_at_ms, None);
        assert!(state.metadata.is_empty());
        assert_eq!(
            Meta::from_value(json!({ "nextSnapshotId": 3, "nextRevision": null })),
            Ok(Meta {
                next_snapshot_id: 3,
                next_revision: 0,
            })
        );
    }

    #[test]
    fn a_meta_names_its_fields() {
        assert_eq!(Meta::from_value(json!([])), Err("meta"));
        assert_eq!(Meta::from_value(json!({})), Err("nextSnapshotId"));
        assert_eq!(
            Meta::from_value(json!({ "nextSnapshotId": 1.5 })),
            Err("nextSnapshotId")
        );
        assert_eq!(
            Meta::from_value(json!({ "nextSnapshotId": 1, "nextRevision": "2" })),
            Err("nextRevision")
        );
    }

    #[test]
    fn a_state_alone_decodes_as_the_tracker_passes_it() {
        let record = a_record();
        let value = serde_json::to_value(&*record.state).unwrap();
        assert_eq!(
            ContextState::from_value(value),
            Ok(ContextState::clone(&record.state))
        );
        assert_eq!(ContextState::from_value(json!("a")), Err("state"));
    }
}
