//! The context methods `ContextManager` and `ContextAdapter` share, once:
//! each reads its arguments, calls the core and converts the result. The
//! class files only map their JavaScript names onto these.

use crate::args;
use crate::cache::ReadCache;
use crate::convert::{read_state_to_js, snapshot_to_js, state_to_js, to_js};
use crate::error::invalid;
use crate::promise::{Failure, run_with};
use contextkit_core::{
    ContextAdapter, ContextManager, ContextState, CreateOptions, Result, UpdateOptions, Value,
};
use js_sys::Promise;
use std::sync::Arc;
use wasm_bindgen::prelude::*;

/// What a method runs on: a manager, or an adapter (whose creates, reads and
/// updates apply its TTL and sweep first; everything else is its manager's).
#[derive(Clone)]
pub(crate) enum Target {
    Manager(ContextManager),
    Adapter(ContextAdapter),
}

impl Target {
    fn manager(&self) -> &ContextManager {
        match self {
            Target::Manager(m) => m,
            Target::Adapter(a) => a.manager(),
        }
    }

    async fn create(&self, id: &str, data: Value, o: CreateOptions) -> Result<Arc<ContextState>> {
        match self {
            Target::Manager(m) => m.create_context_with(id, data, o).await,
            Target::Adapter(a) => a.create_context_with(id, data, o).await,
        }
    }

    async fn get(&self, id: &str) -> Result<Arc<ContextState>> {
        match self {
            Target::Manager(m) => m.get_context(id).await,
            Target::Adapter(a) => a.get_context(id).await,
        }
    }

    /// An adapter's update takes no `ttl_ms` (its own TTL applies).
    async fn update(&self, id: &str, data: Value, o: UpdateOptions) -> Result<Arc<ContextState>> {
        match self {
            Target::Manager(m) => m.update_context_with(id, data, o).await,
            Target::Adapter(a) => a.update_context(id, data, o.expected_version).await,
        }
    }
}

/// `createContext(id, data, { ttlMs, metadata })`.
pub(crate) fn create(t: Target, id: JsValue, data: &JsValue, options: &JsValue) -> Promise {
    let cfg = t.manager().config();
    let parsed = (|| {
        let key = args::id(&id, cfg)?;
        let data = args::data(data, cfg)?;
        Ok((
            key,
            data,
            args::create_options(options, cfg.max_data_bytes)?,
        ))
    })();
    run_with("createContext", parsed, move |(key, data, o)| async move {
        let s = t.create(&key, data.value, o).await?;
        Ok(state_to_js(&s, Some(&id), Some(data.copy)))
    })
}

/// `getContext(id)`.
pub(crate) fn get(t: Target, id: JsValue, cache: &ReadCache) -> Promise {
    let cache = cache.clone();
    let key = args::id(&id, t.manager().config());
    run_with("getContext", key, move |key| async move {
        let s = t.get(&key).await?;
        Ok(read_state_to_js(&s, Some(&id), &cache))
    })
}

/// `updateContext(id, data, { expectedVersion, ttlMs })`; an adapter's
/// takes no `ttlMs`.
pub(crate) fn update(t: Target, id: JsValue, data: &JsValue, options: &JsValue) -> Promise {
    let cfg = t.manager().config();
    let with_ttl = matches!(t, Target::Manager(_));
    let parsed = (|| {
        let key = args::id(&id, cfg)?;
        let data = args::data(data, cfg)?;
        Ok((key, data, args::update_options(options, with_ttl)?))
    })();
    run_with("updateContext", parsed, move |(key, data, o)| async move {
        let s = t.update(&key, data.value, o).await?;
        Ok(state_to_js(&s, Some(&id), Some(data.copy)))
    })
}

/// `deleteContext(id)`: the context and its recovery points.
pub(crate) fn delete(m: ContextManager, id: &JsValue) -> Promise {
    let key = args::id(id, m.config());
    run_with("deleteContext", key, move |key| async move {
        m.delete_context(&key).await?;
        Ok(JsValue::UNDEFINED)
    })
}

/// `modifyContext(id, fn)`: `fn(copy of the data)` becomes the data in one
/// step. What `fn` throws rejects the call as it was thrown.
pub(crate) fn modify(m: ContextManager, id: JsValue, f: &JsValue) -> Promise {
    let max_bytes = m.config().max_data_bytes;
    let parsed = args::id(&id, m.config()).and_then(|key| {
        let f = args::function(f, "modifyContext expects a function")?;
        Ok((key, f))
    });
    run_with("modifyContext", parsed, move |(key, f)| async move {
        let (mut copy, mut thrown) = (None, None);
        let modified = m
            .try_modify_context(&key, |data| {
                let out = f.call1(&JsValue::UNDEFINED, &to_js(data)).map_err(|e| {
                    thrown = Some(e);
                    invalid("modifyContext's function threw")
                })?;
                let what = "the data modifyContext's function returned";
                let arg = crate::convert::object_from_js(&out, what, max_bytes)?;
                copy = Some(arg.copy);
                Ok(arg.value)
            })
            .await;
        match (modified, thrown) {
            (Ok(s), _) => Ok(state_to_js(&s, Some(&id), copy)),
            (Err(_), Some(thrown)) => Err(Failure::Thrown(thrown)),
            (Err(e), None) => Err(e.into()),
        }
    })
}

/// `touchContext(id)`: restarts the TTL, same version, no event.
pub(crate) fn touch(m: ContextManager, id: JsValue, cache: &ReadCache) -> Promise {
    let cache = cache.clone();
    let key = args::id(&id, m.config());
    run_with("touchContext", key, move |key| async move {
        let s = m.touch_context(&key).await?;
        Ok(read_state_to_js(&s, Some(&id), &cache))
    })
}

/// `createRecoveryPoint(id)`.
pub(crate) fn create_recovery_point(m: ContextManager, id: &JsValue) -> Promise {
    let key = args::id(id, m.config());
    run_with("createRecoveryPoint", key, move |key| async move {
        Ok(snapshot_to_js(&m.create_recovery_point(&key).await?))
    })
}

/// `recoveryPoints(id)`, oldest first.
pub(crate) fn recovery_points(m: ContextManager, id: &JsValue) -> Promise {
    let key = args::id(id, m.config());
    run_with("recoveryPoints", key, move |key| async move {
        let points = m.recovery_points(&key).await?;
        Ok(points
            .iter()
            .map(snapshot_to_js)
            .collect::<js_sys::Array>()
            .into())
    })
}

/// `restoreRecoveryPoint(id, snapshotId)`.
pub(crate) fn restore_recovery_point(m: ContextManager, id: JsValue, point: &JsValue) -> Promise {
    let parsed = args::id(&id, m.config()).and_then(|key| Ok((key, args::snapshot_id(point)?)));
    run_with(
        "restoreRecoveryPoint",
        parsed,
        move |(key, point)| async move {
            let s = m.restore_recovery_point(&key, point).await?;
            Ok(state_to_js(&s, Some(&id), None))
        },
    )
}
