//! `ContextManager` for JavaScript.

use crate::args;
use crate::cache::ReadCache;
use crate::contexts::{Target, context_methods};
use crate::convert::to_js;
use crate::promise::run;
use crate::timer::Interval;
use contextkit_core::ContextManager;
use js_sys::Promise;
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

    fn manager(&self) -> ContextManager {
        self.inner.clone()
    }
}

context_methods!(Manager, "ContextManager");

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

    /// Ids of the live contexts, sorted.
    #[wasm_bindgen(js_name = listContextIds)]
    pub fn list_context_ids(&self) -> Promise {
        let m = self.inner.clone();
        run("listContextIds", async move {
            Ok(to_js(&m.try_list_context_ids().await?))
        })
    }

    /// Number of live contexts.
    pub fn len(&self) -> Promise {
        let m = self.inner.clone();
        run("len", async move {
            Ok(JsValue::from(m.try_len().await? as f64))
        })
    }

    /// Removes expired contexts; resolves to how many.
    #[wasm_bindgen(js_name = cleanupExpired)]
    pub fn cleanup_expired(&self) -> Promise {
        let m = self.inner.clone();
        run("cleanupExpired", async move {
            Ok(JsValue::from(m.try_cleanup_expired().await? as f64))
        })
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
