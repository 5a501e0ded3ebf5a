//! The context methods `ContextManager` and `ContextAdapter` share, once:
//! each reads its arguments, calls the core and converts the result, and
//! [`context_methods!`] gives both classes the same JavaScript methods for
//! them.

use crate::args;
use crate::cache::ReadCache;
use crate::convert::{json_to_js, read_state_to_js, snapshot_to_js, state_to_js};
use crate::error::invalid;
use crate::promise::{Failure, run_with};
use contextkit_core::{ContextAdapter, ContextManager, ContextState, CreateOptions, Data, Result};
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

    async fn create(&self, id: &str, data: Data, o: CreateOptions) -> Result<Arc<ContextState>> {
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
    async fn update(&self, id: &str, data: Data, o: args::Update) -> Result<Arc<ContextState>> {
        match self {
            Target::Manager(m) => {
                m.update_context_expecting(id, data, o.opts, o.revision)
                    .await
            }
            Target::Adapter(a) => {
                a.update_context_expecting(id, data, o.opts.expected_version, o.revision)
                    .await
            }
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

/// `updateContext(id, data, { expectedVersion, ttlMs, expectedRevision })`;
/// an adapter's takes `expectedVersion` only.
pub(crate) fn update(t: Target, id: JsValue, data: &JsValue, options: &JsValue) -> Promise {
    let cfg = t.manager().config();
    let manager = matches!(t, Target::Manager(_));
    let parsed = (|| {
        let key = args::id(&id, cfg)?;
        let data = args::data(data, cfg)?;
        Ok((key, data, args::update_options(options, manager)?))
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
            .try_modify_data(&key, |data| {
                let out = f
                    .call1(&JsValue::UNDEFINED, &json_to_js(data))
                    .map_err(|e| {
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

/// The methods of both classes above, for a class with `target()`, `cache`
/// and `manager()` (an adapter's recovery points, modify, touch, delete and
/// events are its manager's).
macro_rules! context_methods {
    ($class:ident, $js_class:literal) => {
        #[wasm_bindgen::prelude::wasm_bindgen(js_class = $js_class)]
        impl $class {
            /// Creates `id` at version 1 with `data` and optional `{ ttlMs, metadata }`
            /// (an adapter's TTL unless `ttlMs` is given).
            #[wasm_bindgen(js_name = createContext)]
            pub fn create_context(&self, id: JsValue, data: JsValue, options: JsValue) -> Promise {
                crate::contexts::create(self.target(), id, &data, &options)
            }

            /// The live context `id`.
            #[wasm_bindgen(js_name = getContext)]
            pub fn get_context(&self, id: JsValue) -> Promise {
                crate::contexts::get(self.target(), id, &self.cache)
            }

            /// Replaces the data of `id`; `{ expectedVersion }` makes it a
            /// compare-and-set, a manager's `{ ttlMs }` replaces its TTL.
            #[wasm_bindgen(js_name = updateContext)]
            pub fn update_context(&self, id: JsValue, data: JsValue, options: JsValue) -> Promise {
                crate::contexts::update(self.target(), id, &data, &options)
            }

            /// Replaces the data of `id` with `fn(data)` in one step: `fn` gets a
            /// copy of the current data and runs inside the context's critical
            /// section, so no other write comes between. What `fn` throws rejects
            /// the call as it was thrown, and nothing changes.
            #[wasm_bindgen(js_name = modifyContext)]
            pub fn modify_context(&self, id: JsValue, f: JsValue) -> Promise {
                crate::contexts::modify(self.manager(), id, &f)
            }

            /// Restarts the TTL of `id` from now: the same version, no event.
            #[wasm_bindgen(js_name = touchContext)]
            pub fn touch_context(&self, id: JsValue) -> Promise {
                crate::contexts::touch(self.manager(), id, &self.cache)
            }

            /// Deletes `id` and its recovery points.
            #[wasm_bindgen(js_name = deleteContext)]
            pub fn delete_context(&self, id: JsValue) -> Promise {
                crate::contexts::delete(self.manager(), &id)
            }

            /// Snapshots the current version of `id`.
            #[wasm_bindgen(js_name = createRecoveryPoint)]
            pub fn create_recovery_point(&self, id: JsValue) -> Promise {
                crate::contexts::create_recovery_point(self.manager(), &id)
            }

            /// The recovery points of `id`, oldest first.
            #[wasm_bindgen(js_name = recoveryPoints)]
            pub fn recovery_points(&self, id: JsValue) -> Promise {
                crate::contexts::recovery_points(self.manager(), &id)
            }

            /// Makes recovery point `snapshotId`'s data the next version of `id`.
            #[wasm_bindgen(js_name = restoreRecoveryPoint)]
            pub fn restore_recovery_point(&self, id: JsValue, snapshot_id: JsValue) -> Promise {
                crate::contexts::restore_recovery_point(self.manager(), id, &snapshot_id)
            }

            /// Calls `callback(event)` for every committed change of the manager,
            /// whoever made it, asynchronously and in commit order;
            /// `{ onError }` receives what a callback throws. Returns a function
            /// that unsubscribes.
            pub fn subscribe(
                &self,
                callback: JsValue,
                options: JsValue,
            ) -> Result<js_sys::Function, JsValue> {
                crate::events::subscribe(&self.manager(), &callback, &options)
            }
        }
    };
}

pub(crate) use context_methods;
