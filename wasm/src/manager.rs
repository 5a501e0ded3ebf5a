//! `ContextManager` for JavaScript.

use crate::args;
use crate::cache::ReadCache;
use crate::contexts::{self, Target};
use crate::convert::to_js;
use crate::promise::run;
use crate::timer::Interval;
use contextkit_core::ContextManager;
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

    fn target(&self) -> Target {
        Target::Manager(self.inner.clone())
    }
}

#[wasm_bindgen(js_class = ContextManager)]
impl Manager {
    /// `new ContextManager({ maxContexts, maxRecoveryPoints, defaultTtlMs, maxIdBytes, maxDataBytes, slidingTtl, readCacheBytes })`.
    #[wasm_bindgen(constructor)]
    pub fn new(config: JsValue) -> Result<Manager, JsValue> {
        let (cfg, cache_bytes) = args::manager_config(&config).map_err(crate::error::js)?;
        let inner = ContextManager::builder(cfg)
            .hash_seed(crate::host::hash_seed())
            .try_build()
            .map_err(crate::error::js)?;
        Ok(Manager::wrap(inner, cache_bytes))
    }

    /// Creates `id` at version 1 with `data` and optional `{ ttlMs, metadata }`.
    #[wasm_bindgen(js_name = createContext)]
    pub fn create_context(&self, id: JsValue, data: JsValue, options: JsValue) -> Promise {
        contexts::create(self.target(), id, &data, &options)
    }

    /// The live context `id`.
    #[wasm_bindgen(js_name = getContext)]
    pub fn get_context(&self, id: JsValue) -> Promise {
        contexts::get(self.target(), id, &self.cache)
    }

    /// Replaces the data of `id`; `{ expectedVersion }` makes it a
    /// compare-and-set, `{ ttlMs }` replaces its TTL.
    #[wasm_bindgen(js_name = updateContext)]
    pub fn update_context(&self, id: JsValue, data: JsValue, options: JsValue) -> Promise {
        contexts::update(self.target(), id, &data, &options)
    }

    /// Replaces the data of `id` with `fn(data)` in one step: `fn` gets a
    /// copy of the current data and runs inside the context's critical
    /// section, so no other write comes between. What `fn` throws rejects
    /// the call as it was thrown, and nothing changes.
    #[wasm_bindgen(js_name = modifyContext)]
    pub fn modify_context(&self, id: JsValue, f: JsValue) -> Promise {
        contexts::modify(self.inner.clone(), id, &f)
    }

    /// Restarts the TTL of `id` from now: the same version, no event.
    #[wasm_bindgen(js_name = touchContext)]
    pub fn touch_context(&self, id: JsValue) -> Promise {
        contexts::touch(self.inner.clone(), id, &self.cache)
    }

    /// Deletes `id` and its recovery points.
    #[wasm_bindgen(js_name = deleteContext)]
    pub fn delete_context(&self, id: JsValue) -> Promise {
        contexts::delete(self.inner.clone(), &id)
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
        contexts::create_recovery_point(self.inner.clone(), &id)
    }

    /// The recovery points of `id`, oldest first.
    #[wasm_bindgen(js_name = recoveryPoints)]
    pub fn recovery_points(&self, id: JsValue) -> Promise {
        contexts::recovery_points(self.inner.clone(), &id)
    }

    /// Makes recovery point `snapshotId`'s data the next version of `id`.
    #[wasm_bindgen(js_name = restoreRecoveryPoint)]
    pub fn restore_recovery_point(&self, id: JsValue, snapshot_id: JsValue) -> Promise {
        contexts::restore_recovery_point(self.inner.clone(), id, &snapshot_id)
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
        let every = args::cleanup_interval(&interval_ms).map_err(crate::error::js)?;
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
