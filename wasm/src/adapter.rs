//! `ContextAdapter` for JavaScript.

use crate::args;
use crate::cache::ReadCache;
use crate::contexts::{Target, context_methods};
use crate::convert::{state_to_js, to_js};
use crate::manager::Manager;
use crate::promise::{run, run_with};
use crate::timer::Interval;
use crate::tracker::Tracker;
use contextkit_core::{AdapterConfig, ContextAdapter, ContextManager, ContextTracker};
use js_sys::Promise;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use wasm_bindgen::prelude::*;

/// The JavaScript object handed out for an active id, so that activating it
/// again returns the very same object. Few are active at once: a list will do.
struct Handed {
    id: String,
    tracker: ContextTracker,
    alive: Rc<Cell<bool>>,
    object: JsValue,
}

#[derive(Default)]
struct AutoCleanup {
    timer: Option<Interval>,
    every_ms: u64,
}

impl AutoCleanup {
    fn start(&mut self, adapter: &ContextAdapter) {
        let adapter = adapter.clone();
        self.timer = Some(Interval::start(self.every_ms, move || {
            let adapter = adapter.clone();
            wasm_bindgen_futures::spawn_local(async move {
                adapter.cleanup_expired_contexts().await;
            });
        }));
    }
}

/// A facade over a `ContextManager` with a TTL, a capacity and active trackers.
#[wasm_bindgen(js_name = ContextAdapter)]
pub struct Adapter {
    inner: ContextAdapter,
    /// The manager's cache of read states.
    cache: ReadCache,
    handed: Rc<RefCell<Vec<Handed>>>,
    auto: Rc<RefCell<AutoCleanup>>,
}

impl Adapter {
    fn target(&self) -> Target {
        Target::Adapter(self.inner.clone())
    }

    fn manager(&self) -> ContextManager {
        self.inner.manager().clone()
    }
}

context_methods!(Adapter, "ContextAdapter");

#[wasm_bindgen(js_class = ContextAdapter)]
impl Adapter {
    /// `new ContextAdapter(manager, { maxContexts, ttlMs, autoCleanup, cleanupIntervalMs, maxActiveContexts })`.
    #[wasm_bindgen(constructor)]
    pub fn new(manager: &Manager, config: JsValue) -> Result<Adapter, JsValue> {
        let cfg = args::adapter_config(&config, "ContextAdapter config", AdapterConfig::default())
            .map_err(crate::error::js)?;
        let inner =
            ContextAdapter::try_new(manager.inner.clone(), cfg).map_err(crate::error::js)?;
        Ok(Adapter {
            inner,
            cache: manager.cache.clone(),
            handed: Rc::default(),
            auto: Rc::new(RefCell::new(AutoCleanup {
                timer: None,
                every_ms: cfg.cleanup_interval_ms,
            })),
        })
    }

    /// The live contexts, sorted by id.
    #[wasm_bindgen(js_name = listContexts)]
    pub fn list_contexts(&self) -> Promise {
        let a = self.inner.clone();
        run("listContexts", async move {
            let states = a.try_list_contexts().await?;
            let out = js_sys::Array::new_with_length(states.len() as u32);
            for (i, s) in states.iter().enumerate() {
                out.set(i as u32, state_to_js(s, None, None));
            }
            Ok(out.into())
        })
    }

    /// Removes expired contexts now; resolves to how many.
    #[wasm_bindgen(js_name = cleanupExpiredContexts)]
    pub fn cleanup_expired_contexts(&self) -> Promise {
        let a = self.inner.clone();
        run("cleanupExpiredContexts", async move {
            Ok(JsValue::from(
                a.try_cleanup_expired_contexts().await? as f64,
            ))
        })
    }

    /// The current settings.
    #[wasm_bindgen(js_name = getConfig)]
    pub fn get_config(&self) -> Promise {
        let a = self.inner.clone();
        run("getConfig", async move { Ok(to_js(&a.get_config().await)) })
    }

    /// Changes the settings given (the others keep their values); resolves to
    /// how many contexts a lowered `maxContexts` evicted.
    #[wasm_bindgen(js_name = updateConfig)]
    pub fn update_config(&self, changes: JsValue) -> Promise {
        let a = self.inner.clone();
        let auto = Rc::clone(&self.auto);
        run("updateConfig", async move {
            let current = a.get_config().await;
            let cfg = args::adapter_config(&changes, "updateConfig changes", current)?;
            let evicted = a.update_config(cfg).await?;
            let mut auto = auto.borrow_mut();
            if auto.every_ms != cfg.cleanup_interval_ms {
                auto.every_ms = cfg.cleanup_interval_ms;
                if auto.timer.is_some() {
                    auto.start(&a);
                }
            }
            Ok(JsValue::from(evicted as f64))
        })
    }

    /// The `ContextTracker` of `id`, activating it if needed; an active id
    /// resolves to the same object every time.
    #[wasm_bindgen(js_name = activateContext)]
    pub fn activate_context(&self, id: JsValue) -> Promise {
        let a = self.inner.clone();
        let handed = Rc::clone(&self.handed);
        run_with(
            "activateContext",
            args::id(&id, a.manager().config()),
            move |id| async move {
                let tracker = a.activate_context(&id).await?;
                let active = a.list_active_context_ids().await;
                let mut handed = handed.borrow_mut();
                handed.retain(|h| h.alive.get() && active.binary_search(&h.id).is_ok());
                if let Some(h) = handed
                    .iter()
                    .find(|h| h.id == id && h.tracker.same_as(&tracker))
                {
                    return Ok(h.object.clone());
                }
                let wrapper = Tracker::wrap(tracker.clone());
                let alive = Rc::clone(&wrapper.alive);
                let object = JsValue::from(wrapper);
                handed.retain(|h| h.id != id);
                handed.push(Handed {
                    id,
                    tracker,
                    alive,
                    object: object.clone(),
                });
                Ok(object)
            },
        )
    }

    /// Deactivates the tracker of `id` (`NOT_ACTIVE`, `UNSYNCED_CHANGES`).
    #[wasm_bindgen(js_name = deactivateContext)]
    pub fn deactivate_context(&self, id: JsValue) -> Promise {
        let a = self.inner.clone();
        let handed = Rc::clone(&self.handed);
        run_with(
            "deactivateContext",
            args::id(&id, a.manager().config()),
            move |id| async move {
                a.deactivate_context(&id).await?;
                handed.borrow_mut().retain(|h| h.id != id);
                Ok(JsValue::UNDEFINED)
            },
        )
    }

    /// Ids with an active tracker, sorted.
    #[wasm_bindgen(js_name = listActiveContextIds)]
    pub fn list_active_context_ids(&self) -> Promise {
        let a = self.inner.clone();
        run("listActiveContextIds", async move {
            Ok(to_js(&a.list_active_context_ids().await))
        })
    }

    /// Sweeps expired contexts every `cleanupIntervalMs` on a JavaScript timer
    /// until `stopAutoCleanup()` or `free()`.
    #[wasm_bindgen(js_name = startAutoCleanup)]
    pub fn start_auto_cleanup(&self) {
        self.auto.borrow_mut().start(&self.inner);
    }

    /// Stops the automatic sweeps.
    #[wasm_bindgen(js_name = stopAutoCleanup)]
    pub fn stop_auto_cleanup(&self) {
        self.auto.borrow_mut().timer = None;
    }
}
