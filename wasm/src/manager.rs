//! `ContextManager` for JavaScript.

use crate::cache::ReadCache;
use crate::convert::{
    JsonArg, object_from_js, read_state_to_js, snapshot_to_js, state_to_js, string_arg, to_js,
};
use crate::error::invalid;
use crate::options;
use crate::promise::{Failure, run, run_with};
use crate::timer::Interval;
use contextkit_core::{ContextError, ContextManager, ManagerConfig};
use js_sys::{Function, Promise};
use std::cell::RefCell;
use wasm_bindgen::prelude::*;

/// The context store. Every method except `subscribe` and `stats` returns a Promise.
#[wasm_bindgen(js_name = ContextManager)]
pub struct Manager {
    pub(crate) inner: ContextManager,
    /// States already read, for the next read (see `cache.rs`).
    pub(crate) cache: ReadCache,
    /// The timer of `startAutoCleanup()`, if running.
    pub(crate) auto_cleanup: RefCell<Option<Interval>>,
}

impl Manager {
    pub(crate) fn wrap(inner: ContextManager, cache_bytes: usize) -> Self {
        Self {
            inner,
            cache: ReadCache::new(cache_bytes),
            auto_cleanup: RefCell::new(None),
        }
    }
}

/// Random keys for the id hash from `crypto.getRandomValues`.
pub(crate) fn hash_seed() -> [u64; 4] {
    let mut bytes = [0_u8; 32];
    if crate::host::get_random_values(&mut bytes).is_err() {
        // No Web Crypto: fall back to Math.random, still unknown to callers.
        for b in &mut bytes {
            *b = (js_sys::Math::random() * 256.0) as u8;
        }
    }
    let mut seed = [0_u64; 4];
    for (word, chunk) in seed.iter_mut().zip(bytes.chunks_exact(8)) {
        let mut b = [0_u8; 8];
        b.copy_from_slice(chunk);
        *word = u64::from_le_bytes(b);
    }
    seed
}

pub(crate) fn id_arg(id: &JsValue, cfg: &ManagerConfig) -> Result<String, ContextError> {
    string_arg(id, "context id", cfg.max_id_bytes)
}

pub(crate) fn data_arg(data: &JsValue, cfg: &ManagerConfig) -> Result<JsonArg, ContextError> {
    object_from_js(data, "context data", cfg.max_data_bytes)
}

fn snapshot_arg(v: &JsValue) -> Result<u64, ContextError> {
    options::int_value(v, 0).ok_or_else(|| {
        invalid(format!(
            "recovery point id must be a non-negative integer, got {}",
            crate::error::kind(v)
        ))
    })
}

#[wasm_bindgen(js_class = ContextManager)]
impl Manager {
    /// `new ContextManager({ maxContexts, maxRecoveryPoints, defaultTtlMs, maxIdBytes, maxDataBytes, slidingTtl, readCacheBytes })`.
    #[wasm_bindgen(constructor)]
    pub fn new(config: JsValue) -> Result<Manager, JsValue> {
        let (cfg, cache_bytes) = options::manager_config(&config).map_err(crate::error::js)?;
        let inner = ContextManager::builder(cfg)
            .hash_seed(hash_seed())
            .try_build()
            .map_err(crate::error::js)?;
        Ok(Manager::wrap(inner, cache_bytes))
    }

    /// Creates `id` at version 1 with `data` and optional `{ ttlMs, metadata }`.
    #[wasm_bindgen(js_name = createContext)]
    pub fn create_context(&self, id: JsValue, data: JsValue, options: JsValue) -> Promise {
        let m = self.inner.clone();
        let cfg = m.config();
        let args = (|| {
            Ok::<_, ContextError>((
                id_arg(&id, cfg)?,
                data_arg(&data, cfg)?,
                options::create_options(&options, cfg.max_data_bytes)?,
            ))
        })();
        run_with("createContext", args, move |(key, data, opts)| async move {
            let s = m.create_context_with(&key, data.value, opts).await?;
            Ok(state_to_js(&s, Some(&id), Some(data.copy)))
        })
    }

    /// The live context `id`.
    #[wasm_bindgen(js_name = getContext)]
    pub fn get_context(&self, id: JsValue) -> Promise {
        let m = self.inner.clone();
        let cache = self.cache.clone();
        run_with(
            "getContext",
            id_arg(&id, m.config()),
            move |key| async move {
                let s = m.get_context(&key).await?;
                Ok(read_state_to_js(&s, Some(&id), &cache))
            },
        )
    }

    /// Replaces the data of `id`; `{ expectedVersion }` makes it a
    /// compare-and-set, `{ ttlMs }` replaces its TTL.
    #[wasm_bindgen(js_name = updateContext)]
    pub fn update_context(&self, id: JsValue, data: JsValue, options: JsValue) -> Promise {
        let m = self.inner.clone();
        let cfg = m.config();
        let args = (|| {
            Ok::<_, ContextError>((
                id_arg(&id, cfg)?,
                data_arg(&data, cfg)?,
                options::update_options(&options)?,
            ))
        })();
        run_with("updateContext", args, move |(key, data, opts)| async move {
            let s = m.update_context_with(&key, data.value, opts).await?;
            Ok(state_to_js(&s, Some(&id), Some(data.copy)))
        })
    }

    /// Replaces the data of `id` with `fn(data)` in one step: `fn` gets a
    /// copy of the current data and runs inside the context's critical
    /// section, so no other write comes between. What `fn` throws rejects
    /// the call as it was thrown, and nothing changes.
    #[wasm_bindgen(js_name = modifyContext)]
    pub fn modify_context(&self, id: JsValue, f: JsValue) -> Promise {
        modify_context(self.inner.clone(), id, &f)
    }

    /// Restarts the TTL of `id` from now: the same version, no event.
    #[wasm_bindgen(js_name = touchContext)]
    pub fn touch_context(&self, id: JsValue) -> Promise {
        touch_context(self.inner.clone(), id, &self.cache)
    }

    /// Deletes `id` and its recovery points.
    #[wasm_bindgen(js_name = deleteContext)]
    pub fn delete_context(&self, id: JsValue) -> Promise {
        let m = self.inner.clone();
        run_with(
            "deleteContext",
            id_arg(&id, m.config()),
            move |id| async move {
                m.delete_context(&id).await?;
                Ok(JsValue::UNDEFINED)
            },
        )
    }

    /// Ids of the live contexts, sorted.
    #[wasm_bindgen(js_name = listContextIds)]
    pub fn list_context_ids(&self) -> Promise {
        let m = self.inner.clone();
        run("listContextIds", async move {
            Ok(to_js(&m.list_context_ids().await))
        })
    }

    /// Number of live contexts.
    pub fn len(&self) -> Promise {
        let m = self.inner.clone();
        run(
            "len",
            async move { Ok(JsValue::from(m.len().await as f64)) },
        )
    }

    /// Snapshots the current version of `id`.
    #[wasm_bindgen(js_name = createRecoveryPoint)]
    pub fn create_recovery_point(&self, id: JsValue) -> Promise {
        create_recovery_point(self.inner.clone(), &id)
    }

    /// The recovery points of `id`, oldest first.
    #[wasm_bindgen(js_name = recoveryPoints)]
    pub fn recovery_points(&self, id: JsValue) -> Promise {
        recovery_points(self.inner.clone(), &id)
    }

    /// Makes recovery point `snapshotId`'s data the next version of `id`.
    #[wasm_bindgen(js_name = restoreRecoveryPoint)]
    pub fn restore_recovery_point(&self, id: JsValue, snapshot_id: JsValue) -> Promise {
        restore_recovery_point(self.inner.clone(), id, &snapshot_id)
    }

    /// Removes expired contexts; resolves to how many.
    #[wasm_bindgen(js_name = cleanupExpired)]
    pub fn cleanup_expired(&self) -> Promise {
        let m = self.inner.clone();
        run("cleanupExpired", async move {
            Ok(JsValue::from(m.cleanup_expired().await as f64))
        })
    }

    /// Calls `callback(event)` for every committed change, asynchronously and
    /// in commit order; `{ onError }` receives what a callback throws.
    /// Returns a function that unsubscribes.
    pub fn subscribe(&self, callback: JsValue, options: JsValue) -> Result<Function, JsValue> {
        crate::events::subscribe(&self.inner, &callback, &options)
    }

    /// Sweeps expired contexts every `intervalMs` (default 60,000) on a
    /// JavaScript timer until `stopAutoCleanup()` or `free()`; calling it
    /// again restarts it with the new interval.
    #[wasm_bindgen(js_name = startAutoCleanup)]
    pub fn start_auto_cleanup(&self, interval_ms: JsValue) -> Result<(), JsValue> {
        let every = options::cleanup_interval(&interval_ms).map_err(crate::error::js)?;
        let m = self.inner.clone();
        let timer = Interval::start(every, move || {
            let m = m.clone();
            wasm_bindgen_futures::spawn_local(async move {
                m.cleanup_expired().await;
            });
        });
        *self.auto_cleanup.borrow_mut() = Some(timer);
        Ok(())
    }

    /// Stops the automatic sweeps.
    #[wasm_bindgen(js_name = stopAutoCleanup)]
    pub fn stop_auto_cleanup(&self) {
        self.auto_cleanup.borrow_mut().take();
    }

    /// The id the next recovery point will get.
    #[wasm_bindgen(js_name = nextRecoveryPointId)]
    pub fn next_recovery_point_id(&self) -> f64 {
        self.inner.next_recovery_point_id() as f64
    }

    /// Counters since the manager was created.
    pub fn stats(&self) -> JsValue {
        to_js(&self.inner.stats())
    }
}

// Recovery points, shared by `ContextManager` and `ContextAdapter` (whose
// recovery points are its manager's).

/// `createRecoveryPoint(id)` on `m`.
pub(crate) fn create_recovery_point(m: ContextManager, id: &JsValue) -> Promise {
    run_with(
        "createRecoveryPoint",
        id_arg(id, m.config()),
        move |id| async move { Ok(snapshot_to_js(&m.create_recovery_point(&id).await?)) },
    )
}

/// `recoveryPoints(id)` on `m`.
pub(crate) fn recovery_points(m: ContextManager, id: &JsValue) -> Promise {
    run_with(
        "recoveryPoints",
        id_arg(id, m.config()),
        move |id| async move {
            let snapshots = m.recovery_points(&id).await?;
            Ok(snapshots
                .iter()
                .map(snapshot_to_js)
                .collect::<js_sys::Array>()
                .into())
        },
    )
}

/// `restoreRecoveryPoint(id, snapshotId)` on `m`.
pub(crate) fn restore_recovery_point(
    m: ContextManager,
    id: JsValue,
    snapshot_id: &JsValue,
) -> Promise {
    let args = id_arg(&id, m.config()).and_then(|key| Ok((key, snapshot_arg(snapshot_id)?)));
    run_with(
        "restoreRecoveryPoint",
        args,
        move |(key, snapshot_id)| async move {
            let s = m.restore_recovery_point(&key, snapshot_id).await?;
            Ok(state_to_js(&s, Some(&id), None))
        },
    )
}

/// `modifyContext` of a manager or an adapter.
pub(crate) fn modify_context(m: ContextManager, id: JsValue, f: &JsValue) -> Promise {
    let cfg = m.config();
    let max_bytes = cfg.max_data_bytes;
    let args = id_arg(&id, cfg).and_then(|key| match f.dyn_ref::<Function>() {
        Some(f) => Ok((key, f.clone())),
        None => Err(invalid(format!(
            "modifyContext expects a function, got {}",
            crate::error::kind(f)
        ))),
    });
    run_with("modifyContext", args, move |(key, f)| async move {
        let (mut copy, mut thrown) = (None, None);
        let modified = m
            .try_modify_context(&key, |data| {
                let out = f.call1(&JsValue::UNDEFINED, &to_js(data)).map_err(|e| {
                    thrown = Some(e);
                    invalid("modifyContext's function threw")
                })?;
                let what = "the data modifyContext's function returned";
                let arg = object_from_js(&out, what, max_bytes)?;
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

/// `touchContext` of a manager or an adapter.
pub(crate) fn touch_context(m: ContextManager, id: JsValue, cache: &ReadCache) -> Promise {
    let cache = cache.clone();
    run_with(
        "touchContext",
        id_arg(&id, m.config()),
        move |key| async move {
            let s = m.touch_context(&key).await?;
            Ok(read_state_to_js(&s, Some(&id), &cache))
        },
    )
}
