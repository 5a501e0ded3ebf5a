//! Every argument the classes take from JavaScript, read and checked in one
//! place: ids, data, functions, configurations and option objects.
//!
//! An options argument may be `undefined` or `null` (all defaults) or a plain
//! object whose keys are all known; each value must have the documented type.
//! Anything else is `INVALID_ARGUMENT` naming the option, so a typo such as
//! `maxContext` is reported instead of silently ignored.

use crate::convert::{JsonArg, object_from_js};
use crate::error::{invalid, kind};
use crate::host;
use contextkit_core::{
    AdapterConfig, ConflictPolicy, ContextError, ContextState, CreateOptions, ManagerConfig,
    TrackerConfig, UpdateOptions,
};
use js_sys::{Function, JsString};
use std::sync::Arc;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

/// Largest integer a JavaScript number holds exactly.
const MAX_SAFE: u64 = 9_007_199_254_740_991;

/// One option of a configuration `C`: its JavaScript name, what it takes, and
/// where it goes. A table of these is all a configuration's reader says.
pub(crate) enum Field<C> {
    /// A whole number from `min` to [`MAX_SAFE`].
    Int(&'static str, u64, fn(&mut C, u64)),
    /// `Int`, or `null` for none.
    IntOrNull(&'static str, u64, fn(&mut C, Option<u64>)),
    Bool(&'static str, fn(&mut C, bool)),
    /// One of the strings given, by its index.
    OneOf(&'static str, &'static [&'static str], fn(&mut C, usize)),
    /// Read by the caller with [`Options::get`].
    Other(&'static str),
}

impl<C> Field<C> {
    fn name(&self) -> &'static str {
        match self {
            Field::Int(n, ..) | Field::IntOrNull(n, ..) | Field::Bool(n, _) => n,
            Field::OneOf(n, ..) | Field::Other(n) => n,
        }
    }
}

/// A validated options object.
pub(crate) struct Options<'a> {
    obj: Option<&'a JsValue>,
    what: &'static str,
}

impl<'a> Options<'a> {
    /// Checks that `v` is absent or a plain object with only the keys of
    /// `fields`, and applies those given to `cfg`. (Only this loop is
    /// generic: the checks it calls exist once in the module.)
    pub(crate) fn read<C>(
        v: &'a JsValue,
        what: &'static str,
        cfg: &mut C,
        fields: &[Field<C>],
    ) -> Result<Self, ContextError> {
        // No options object: every field keeps its default.
        if v.is_undefined() || v.is_null() {
            return Ok(Self { obj: None, what });
        }
        let names: Vec<&str> = fields.iter().map(Field::name).collect();
        let o = Self::open(v, what, &names)?;
        for f in fields {
            match f {
                Field::Int(name, min, set) => o.int(name, *min)?.map(|n| set(cfg, n)),
                Field::IntOrNull(name, min, set) => o.int_or_null(name, *min)?.map(|n| set(cfg, n)),
                Field::Bool(name, set) => o.bool(name)?.map(|b| set(cfg, b)),
                Field::OneOf(name, all, set) => o.one_of(name, all)?.map(|i| set(cfg, i)),
                Field::Other(_) => None,
            };
        }
        Ok(o)
    }

    /// `v`, which is neither undefined nor null, as an object of options
    /// with only the keys `known`.
    fn open(v: &'a JsValue, what: &'static str, known: &[&str]) -> Result<Self, ContextError> {
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

    pub(crate) fn get(&self, key: &str) -> Result<JsValue, ContextError> {
        match self.obj {
            None => Ok(JsValue::UNDEFINED),
            Some(obj) => host::get_str(obj, key)
                .map_err(|_| invalid(format!("{}.{key} could not be read", self.what))),
        }
    }

    /// The value of `key` if given, read by `read`, else `INVALID_ARGUMENT`
    /// "<what>.<key> must be <expected>, got <what `shown` says of it>".
    fn given<T>(
        &self,
        key: &str,
        expected: impl FnOnce() -> String,
        shown: fn(&JsValue) -> String,
        read: impl FnOnce(&JsValue) -> Option<T>,
    ) -> Result<Option<T>, ContextError> {
        let v = self.get(key)?;
        if v.is_undefined() {
            return Ok(None);
        }
        match read(&v) {
            Some(t) => Ok(Some(t)),
            None => Err(invalid(format!(
                "{}.{key} must be {}, got {}",
                self.what,
                expected(),
                shown(&v)
            ))),
        }
    }

    fn int(&self, key: &str, min: u64) -> Result<Option<u64>, ContextError> {
        let expected = || format!("an integer from {min} to {MAX_SAFE}");
        self.given(key, expected, describe, |v| int_value(v, min))
    }

    /// `Some(None)` for `null`.
    fn int_or_null(&self, key: &str, min: u64) -> Result<Option<Option<u64>>, ContextError> {
        let expected = || format!("an integer from {min} to {MAX_SAFE}");
        self.given(key, expected, describe, |v| match v.is_null() {
            true => Some(None),
            false => int_value(v, min).map(Some),
        })
    }

    fn bool(&self, key: &str) -> Result<Option<bool>, ContextError> {
        self.given(key, || "a boolean".into(), kind, JsValue::as_bool)
    }

    /// "must be 'a', 'b' or 'c'".
    fn one_of(&self, key: &str, all: &[&str]) -> Result<Option<usize>, ContextError> {
        let expected = || match all.split_last() {
            Some((last, [])) => format!("'{last}'"),
            Some((last, rest)) => format!("'{}' or '{last}'", rest.join("', '")),
            None => "nothing".into(),
        };
        self.given(key, expected, kind, |v| {
            let s = v.as_string()?;
            all.iter().position(|n| *n == s)
        })
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

/// `new ContextManager(config)`: the configuration and the read cache's budget.
pub(crate) fn manager_config(v: &JsValue) -> Result<(ManagerConfig, usize), ContextError> {
    use Field::*;
    let mut cfg = (ManagerConfig::default(), crate::cache::DEFAULT_BUDGET);
    Options::read(
        v,
        "ContextManager config",
        &mut cfg,
        &[
            Int("maxContexts", 1, |c, n| c.0.max_contexts = usize_of(n)),
            Int("maxRecoveryPoints", 0, |c, n| {
                c.0.max_recovery_points = usize_of(n)
            }),
            IntOrNull("defaultTtlMs", 1, |c, ttl| c.0.default_ttl_ms = ttl),
            Int("maxIdBytes", 1, |c, n| c.0.max_id_bytes = usize_of(n)),
            Int("maxDataBytes", 2, |c, n| c.0.max_data_bytes = usize_of(n)),
            Bool("slidingTtl", |c, b| c.0.sliding_ttl = b),
            Int("readCacheBytes", 0, |c, n| c.1 = usize_of(n)),
        ],
    )?;
    Ok(cfg)
}

/// `new ContextTracker(manager, config)`.
pub(crate) fn tracker_config(v: &JsValue) -> Result<TrackerConfig, ContextError> {
    use Field::*;
    const POLICIES: [ConflictPolicy; 3] = [
        ConflictPolicy::Reject,
        ConflictPolicy::Overwrite,
        ConflictPolicy::KeepRemote,
    ];
    let mut cfg = TrackerConfig::default();
    Options::read(
        v,
        "ContextTracker config",
        &mut cfg,
        &[
            Int("syncIntervalMs", 1, |c, n| c.sync_interval_ms = n),
            Bool("autoRecovery", |c, b| c.auto_recovery = b),
            OneOf(
                "conflict",
                &["reject", "overwrite", "keepRemote"],
                |c, i| c.conflict = POLICIES[i],
            ),
        ],
    )?;
    Ok(cfg)
}

/// `new ContextAdapter(manager, config)` and `updateConfig(changes)`: the
/// fields given replace those of `base`.
pub(crate) fn adapter_config(
    v: &JsValue,
    what: &'static str,
    base: AdapterConfig,
) -> Result<AdapterConfig, ContextError> {
    use Field::*;
    let mut cfg = base;
    Options::read(
        v,
        what,
        &mut cfg,
        &[
            Int("maxContexts", 1, |c, n| c.max_contexts = usize_of(n)),
            IntOrNull("ttlMs", 1, |c, ttl| c.ttl_ms = ttl),
            Bool("autoCleanup", |c, b| c.auto_cleanup = b),
            Int("cleanupIntervalMs", 1, |c, n| c.cleanup_interval_ms = n),
            Int("maxActiveContexts", 1, |c, n| {
                c.max_active_contexts = usize_of(n)
            }),
        ],
    )?;
    Ok(cfg)
}

/// `createContext(id, data, { ttlMs, metadata })`.
pub(crate) fn create_options(v: &JsValue, max_bytes: usize) -> Result<CreateOptions, ContextError> {
    let mut opts = CreateOptions::default();
    let fields = [
        Field::IntOrNull("ttlMs", 1, |c: &mut CreateOptions, ttl| c.ttl_ms = ttl),
        Field::Other("metadata"),
    ];
    let o = Options::read(v, "createContext options", &mut opts, &fields)?;
    let meta = o.get("metadata")?;
    if !meta.is_undefined() {
        let value = object_from_js(&meta, "metadata", max_bytes)?.value;
        opts.metadata = contextkit_core::metadata_from_value(value.into_value())
            .ok_or_else(|| invalid("metadata values must be strings"))?;
    }
    Ok(opts)
}

/// `updateContext` options: the core's, and the revision expected.
#[derive(Default)]
pub(crate) struct Update {
    pub(crate) opts: UpdateOptions,
    pub(crate) revision: Option<u64>,
}

/// `updateContext(id, data, { expectedVersion, expectedRevision, ttlMs })`:
/// `ttlMs` absent or null keeps (and restarts) the context's TTL. An
/// adapter's update (`manager` false) takes no `ttlMs`: the adapter's TTL
/// applies.
pub(crate) fn update_options(v: &JsValue, manager: bool) -> Result<Update, ContextError> {
    let mut u = Update::default();
    let fields = [
        Field::IntOrNull("expectedVersion", 0, |c: &mut Update, n| {
            c.opts.expected_version = n
        }),
        Field::IntOrNull("expectedRevision", 0, |c, n| c.revision = n),
        Field::IntOrNull("ttlMs", 1, |c, ttl| c.opts.ttl_ms = ttl),
    ];
    // An adapter's own TTL applies to every update.
    let fields = if manager { &fields[..] } else { &fields[..2] };
    Options::read(v, "updateContext options", &mut u, fields)?;
    Ok(u)
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
pub(crate) fn subscribe_options(v: &JsValue) -> Result<Option<Function>, ContextError> {
    let o = Options::read(v, "subscribe options", &mut (), &[Field::Other("onError")])?;
    optional_function(
        &o.get("onError")?,
        "subscribe options.onError must be a function",
    )
}

/// `v` as a function; else `INVALID_ARGUMENT` "<what>, got <kind>".
pub(crate) fn function(v: &JsValue, what: &str) -> Result<Function, ContextError> {
    v.dyn_ref::<Function>()
        .cloned()
        .ok_or_else(|| invalid(format!("{what}, got {}", kind(v))))
}

/// `function`, where `undefined` and `null` mean none.
pub(crate) fn optional_function(v: &JsValue, what: &str) -> Result<Option<Function>, ContextError> {
    if v.is_undefined() || v.is_null() {
        return Ok(None);
    }
    function(v, what).map(Some)
}

/// A context id.
pub(crate) fn id(v: &JsValue, cfg: &ManagerConfig) -> Result<String, ContextError> {
    string(v, "context id", cfg.max_id_bytes)
}

/// Context data: a plain object within the manager's size limit.
pub(crate) fn data(v: &JsValue, cfg: &ManagerConfig) -> Result<JsonArg, ContextError> {
    object_from_js(v, "context data", cfg.max_data_bytes)
}

/// A recovery point id.
pub(crate) fn snapshot_id(v: &JsValue) -> Result<u64, ContextError> {
    int_value(v, 0).ok_or_else(|| {
        invalid(format!(
            "recovery point id must be a non-negative integer, got {}",
            kind(v)
        ))
    })
}

/// A `ContextState` passed back from JavaScript (to a tracker's `applyRemote`).
pub(crate) fn state(v: &JsValue, max_data_bytes: usize) -> Result<Arc<ContextState>, ContextError> {
    let budget = max_data_bytes.saturating_mul(2).saturating_add(4096);
    let value = object_from_js(v, "state", budget)?.value;
    ContextState::from_value(value.into_value())
        .map(Arc::new)
        .map_err(|_| {
            invalid(
                "state must be a context state: { id, version, revision, createdAtMs, updatedAtMs, \
             expiresAtMs, data, metadata } as returned by contextkit",
            )
        })
}

/// A string argument, rejected before copying when longer than `max_bytes`.
pub(crate) fn string(v: &JsValue, what: &str, max_bytes: usize) -> Result<String, ContextError> {
    if !v.is_string() {
        return Err(invalid(format!("{what} must be a string, got {}", kind(v))));
    }
    // UTF-8 never takes fewer bytes than UTF-16 code units.
    if v.unchecked_ref::<JsString>().length() as usize > max_bytes {
        return Err(invalid(format!("{what} is longer than {max_bytes} bytes")));
    }
    let s = v.as_string().unwrap_or_default();
    // The crossing turns a lone surrogate into U+FFFD, which would make
    // two different ids one; a real U+FFFD is left as it is.
    let replaced = s.as_bytes().windows(3).any(|w| w == "\u{FFFD}".as_bytes());
    if replaced && !well_formed(v.unchecked_ref()) {
        return Err(invalid(format!(
            "{what} contains a lone surrogate, which is not valid Unicode"
        )));
    }
    Ok(s)
}

/// Whether every surrogate in `s` is half of a pair.
fn well_formed(s: &JsString) -> bool {
    let unit = |i| s.char_code_at(i) as u32;
    let (n, mut i) = (s.length(), 0);
    while i < n {
        match unit(i) {
            0xD800..=0xDBFF if i + 1 < n && (0xDC00..=0xDFFF).contains(&unit(i + 1)) => i += 2,
            0xD800..=0xDFFF => return false,
            _ => i += 1,
        }
    }
    true
}

#[cfg(target_arch = "wasm32")]
/// `ContextManager.connect(backend, config)`: the namespace and settings of
/// `backend` (a `RedisBackend`, or any object with the same properties).
pub(crate) fn shared_backend(
    backend: &JsValue,
    parse_json: contextkit_core::ParseJson,
) -> Result<contextkit_core::client::ClientConfig, ContextError> {
    let namespace = match host::get_str(backend, "namespace")
        .ok()
        .and_then(|n| n.as_string())
    {
        Some(n) if backend.is_object() => n,
        _ => {
            return Err(invalid(
                "backend must be a shared backend such as a RedisBackend, with a namespace",
            ));
        }
    };
    // A whole number property from 1 to `max`, else `default`.
    let option = |name: &str, default: u64, max: u64| {
        let v = host::get_str(backend, name).unwrap_or(JsValue::UNDEFINED);
        if v.is_undefined() {
            return Ok(default);
        }
        match v.as_f64() {
            Some(n) if n.fract() == 0.0 && n >= 1.0 && n <= max as f64 => Ok(n as u64),
            _ => Err(invalid(format!(
                "backend.{name} must be a whole number from 1 to {max}"
            ))),
        }
    };
    let mut cfg = contextkit_core::client::ClientConfig::new(namespace, parse_json);
    cfg.timeout_ms = option("timeoutMs", cfg.timeout_ms, 86_400_000)?;
    cfg.operation_ttl_ms = option("operationTtlMs", cfg.operation_ttl_ms, 1 << 45)?;
    cfg.event_retention = option("eventRetention", cfg.event_retention, 1 << 40)?;
    // Unset: the client's own choice (see ClientConfig::event_wait_ms).
    cfg.event_wait_ms = Some(option("eventWaitMs", 0, 3_600_000)?).filter(|&ms| ms > 0);
    // 0 or unset: every read asks the store. A fraction of a ms is dropped
    // (the bound only tightens).
    let stale = host::get_str(backend, "maxStaleMs").unwrap_or(JsValue::NULL);
    cfg.max_stale_ms = match stale.as_f64() {
        _ if stale.is_undefined() => 0,
        Some(n) if (0.0..=86_400_000.0).contains(&n) => n as u64,
        _ => {
            return Err(invalid(
                "backend.maxStaleMs must be a number of milliseconds from 0 to 86400000",
            ));
        }
    };
    Ok(cfg)
}
