//! Reading configuration and option objects passed from JavaScript.
//!
//! An options argument may be `undefined` or `null` (all defaults) or a plain
//! object whose keys are all known; each value must have the documented type.
//! Anything else is `INVALID_ARGUMENT` naming the option, so a typo such as
//! `maxContext` is reported instead of silently ignored.

use crate::error::{invalid, kind};
use crate::host;
use contextkit_core::{
    AdapterConfig, ConflictPolicy, ContextError, CreateOptions, ManagerConfig, TrackerConfig,
    UpdateOptions,
};
use std::collections::BTreeMap;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

/// Largest integer a JavaScript number holds exactly.
const MAX_SAFE: u64 = 9_007_199_254_740_991;

/// A validated options object.
pub(crate) struct Options<'a> {
    obj: Option<&'a JsValue>,
    what: &'static str,
}

impl<'a> Options<'a> {
    /// Checks that `v` is absent or a plain object with only `known` keys.
    pub(crate) fn read(
        v: &'a JsValue,
        what: &'static str,
        known: &[&str],
    ) -> Result<Self, ContextError> {
        if v.is_undefined() || v.is_null() {
            return Ok(Self { obj: None, what });
        }
        if !v.is_object() || host::is_array(v).unwrap_or(true) {
            return Err(invalid(format!(
                "{what} must be an object, got {}",
                kind(v)
            )));
        }
        let keys =
            host::object_keys(v).map_err(|_| invalid(format!("{what} could not be read")))?;
        for k in keys.iter() {
            let k = k.as_string().unwrap_or_default();
            if !known.contains(&k.as_str()) {
                let mut msg = String::from("unknown option '");
                msg.extend(k.chars().take(64));
                msg.push_str("' in ");
                msg.push_str(what);
                msg.push_str("; expected one of:");
                for name in known {
                    msg.push(' ');
                    msg.push_str(name);
                }
                return Err(invalid(msg));
            }
        }
        Ok(Self { obj: Some(v), what })
    }

    fn get(&self, key: &str) -> Result<JsValue, ContextError> {
        match self.obj {
            None => Ok(JsValue::UNDEFINED),
            Some(obj) => host::get_str(obj, key)
                .map_err(|_| invalid(format!("{}.{key} could not be read", self.what))),
        }
    }

    /// A non-negative safe integer at least `min`, if given.
    pub(crate) fn int(&self, key: &str, min: u64) -> Result<Option<u64>, ContextError> {
        let v = self.get(key)?;
        if v.is_undefined() {
            return Ok(None);
        }
        int_value(&v, min).map(Some).ok_or_else(|| {
            invalid(format!(
                "{}.{key} must be an integer from {min} to {MAX_SAFE}, got {}",
                self.what,
                describe(&v)
            ))
        })
    }

    /// `int`, where `null` means "none": `Some(None)` for null, `None` if absent.
    pub(crate) fn nullable_int(
        &self,
        key: &str,
        min: u64,
    ) -> Result<Option<Option<u64>>, ContextError> {
        if self.get(key)?.is_null() {
            return Ok(Some(None));
        }
        Ok(self.int(key, min)?.map(Some))
    }

    /// A boolean, if given.
    pub(crate) fn bool(&self, key: &str) -> Result<Option<bool>, ContextError> {
        let v = self.get(key)?;
        if v.is_undefined() {
            return Ok(None);
        }
        v.as_bool().map(Some).ok_or_else(|| {
            invalid(format!(
                "{}.{key} must be a boolean, got {}",
                self.what,
                kind(&v)
            ))
        })
    }

    /// Whether `key` is present (not undefined).
    fn has(&self, key: &str) -> Result<bool, ContextError> {
        Ok(!self.get(key)?.is_undefined())
    }
}

/// `kind`, but integers in range are shown as themselves.
fn describe(v: &JsValue) -> String {
    match v.as_f64() {
        Some(n) if n.fract() == 0.0 && n.abs() <= MAX_SAFE as f64 => (n as i64).to_string(),
        _ => kind(v),
    }
}

/// `v` as an integer in `min..=MAX_SAFE`.
pub(crate) fn int_value(v: &JsValue, min: u64) -> Option<u64> {
    let n = v.as_f64()?;
    (n.fract() == 0.0 && n >= min as f64 && n <= MAX_SAFE as f64).then_some(n as u64)
}

fn usize_of(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// `new ContextManager(config)`.
pub(crate) fn manager_config(v: &JsValue) -> Result<(ManagerConfig, usize), ContextError> {
    let o = Options::read(
        v,
        "ContextManager config",
        &[
            "maxContexts",
            "maxRecoveryPoints",
            "defaultTtlMs",
            "maxIdBytes",
            "maxDataBytes",
            "slidingTtl",
            "readCacheBytes",
        ],
    )?;
    let mut cfg = ManagerConfig::default();
    if let Some(n) = o.int("maxContexts", 1)? {
        cfg.max_contexts = usize_of(n);
    }
    if let Some(n) = o.int("maxRecoveryPoints", 0)? {
        cfg.max_recovery_points = usize_of(n);
    }
    if let Some(ttl) = o.nullable_int("defaultTtlMs", 1)? {
        cfg.default_ttl_ms = ttl;
    }
    if let Some(n) = o.int("maxIdBytes", 1)? {
        cfg.max_id_bytes = usize_of(n);
    }
    if let Some(n) = o.int("maxDataBytes", 2)? {
        cfg.max_data_bytes = usize_of(n);
    }
    if let Some(b) = o.bool("slidingTtl")? {
        cfg.sliding_ttl = b;
    }
    let cache = o
        .int("readCacheBytes", 0)?
        .map_or(crate::cache::DEFAULT_BUDGET, usize_of);
    Ok((cfg, cache))
}

/// `new ContextTracker(manager, config)`.
pub(crate) fn tracker_config(v: &JsValue) -> Result<TrackerConfig, ContextError> {
    let o = Options::read(
        v,
        "ContextTracker config",
        &["syncIntervalMs", "autoRecovery", "conflict"],
    )?;
    let mut cfg = TrackerConfig::default();
    if let Some(n) = o.int("syncIntervalMs", 1)? {
        cfg.sync_interval_ms = n;
    }
    if let Some(b) = o.bool("autoRecovery")? {
        cfg.auto_recovery = b;
    }
    let conflict = o.get("conflict")?;
    if !conflict.is_undefined() {
        cfg.conflict = match conflict.as_string().as_deref() {
            Some("reject") => ConflictPolicy::Reject,
            Some("overwrite") => ConflictPolicy::Overwrite,
            Some("keepRemote") => ConflictPolicy::KeepRemote,
            _ => {
                return Err(invalid(format!(
                    "ContextTracker config.conflict must be 'reject', 'overwrite' or 'keepRemote', got {}",
                    kind(&conflict)
                )));
            }
        };
    }
    Ok(cfg)
}

const ADAPTER_KEYS: [&str; 5] = [
    "maxContexts",
    "ttlMs",
    "autoCleanup",
    "cleanupIntervalMs",
    "maxActiveContexts",
];

/// `new ContextAdapter(manager, config)` and `updateConfig(changes)`: the
/// fields given replace those of `base`.
pub(crate) fn adapter_config(
    v: &JsValue,
    what: &'static str,
    base: AdapterConfig,
) -> Result<AdapterConfig, ContextError> {
    let o = Options::read(v, what, &ADAPTER_KEYS)?;
    let mut cfg = base;
    if let Some(n) = o.int("maxContexts", 1)? {
        cfg.max_contexts = usize_of(n);
    }
    if let Some(ttl) = o.nullable_int("ttlMs", 1)? {
        cfg.ttl_ms = ttl;
    }
    if let Some(b) = o.bool("autoCleanup")? {
        cfg.auto_cleanup = b;
    }
    if let Some(n) = o.int("cleanupIntervalMs", 1)? {
        cfg.cleanup_interval_ms = n;
    }
    if let Some(n) = o.int("maxActiveContexts", 1)? {
        cfg.max_active_contexts = usize_of(n);
    }
    Ok(cfg)
}

/// `createContext(id, data, { ttlMs, metadata })`.
pub(crate) fn create_options(v: &JsValue, max_bytes: usize) -> Result<CreateOptions, ContextError> {
    let o = Options::read(v, "createContext options", &["ttlMs", "metadata"])?;
    let mut opts = CreateOptions {
        ttl_ms: o.nullable_int("ttlMs", 1)?.flatten(),
        ..CreateOptions::default()
    };
    if o.has("metadata")? {
        let meta = o.get("metadata")?;
        let value = crate::convert::object_from_js(&meta, "metadata", max_bytes)?.value;
        opts.metadata =
            string_map(value).ok_or_else(|| invalid("metadata values must be strings"))?;
    }
    Ok(opts)
}

/// A JSON object whose values are all strings, as a map.
pub(crate) fn string_map(v: serde_json::Value) -> Option<BTreeMap<String, String>> {
    let serde_json::Value::Object(map) = v else {
        return None;
    };
    let mut out = BTreeMap::new();
    for (k, v) in map {
        let serde_json::Value::String(s) = v else {
            return None;
        };
        out.insert(k, s);
    }
    Some(out)
}

/// `updateContext(id, data, { expectedVersion })` of an adapter (whose TTL
/// is its own).
pub(crate) fn expected_version(v: &JsValue) -> Result<Option<u64>, ContextError> {
    let o = Options::read(v, "updateContext options", &["expectedVersion"])?;
    Ok(o.nullable_int("expectedVersion", 0)?.flatten())
}

/// `updateContext(id, data, { expectedVersion, ttlMs })` of a manager;
/// `ttlMs` absent or null keeps (and restarts) the context's TTL.
pub(crate) fn update_options(v: &JsValue) -> Result<UpdateOptions, ContextError> {
    let o = Options::read(v, "updateContext options", &["expectedVersion", "ttlMs"])?;
    Ok(UpdateOptions {
        expected_version: o.nullable_int("expectedVersion", 0)?.flatten(),
        ttl_ms: o.nullable_int("ttlMs", 1)?.flatten(),
    })
}

/// `startAutoCleanup(intervalMs)` of a manager: default one minute.
pub(crate) fn cleanup_interval(v: &JsValue) -> Result<u64, ContextError> {
    if v.is_undefined() {
        return Ok(60_000);
    }
    int_value(v, 1).ok_or_else(|| {
        invalid(format!(
            "startAutoCleanup interval must be an integer from 1 to {MAX_SAFE} ms, got {}",
            describe(v)
        ))
    })
}

/// `subscribe(callback, { onError })`: the error handler, if given.
pub(crate) fn subscribe_options(v: &JsValue) -> Result<Option<js_sys::Function>, ContextError> {
    let o = Options::read(v, "subscribe options", &["onError"])?;
    let f = o.get("onError")?;
    if f.is_undefined() || f.is_null() {
        return Ok(None);
    }
    f.dyn_into().map(Some).map_err(|f| {
        invalid(format!(
            "subscribe options.onError must be a function, got {}",
            kind(&f)
        ))
    })
}
