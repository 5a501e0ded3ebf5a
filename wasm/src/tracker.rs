//! `ContextTracker` for JavaScript.

use crate::convert::{snapshot_to_js, state_to_js};
use crate::error::invalid;
use crate::manager::{Manager, data_arg, id_arg};
use crate::options;
use crate::promise::{run, run_with};
use crate::timer::Interval;
use contextkit_core::{ContextError, ContextState, ContextTracker};
use js_sys::{Function, Promise};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use wasm_bindgen::prelude::*;

/// A working copy of one active context that syncs back to its manager.
#[wasm_bindgen(js_name = ContextTracker)]
pub struct Tracker {
    pub(crate) inner: ContextTracker,
    auto_sync: RefCell<Option<Interval>>,
    /// Cleared when this object is freed, so an adapter never hands it out again.
    pub(crate) alive: Rc<Cell<bool>>,
}

impl Tracker {
    pub(crate) fn wrap(inner: ContextTracker) -> Self {
        Self {
            inner,
            auto_sync: RefCell::new(None),
            alive: Rc::new(Cell::new(true)),
        }
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        self.alive.set(false);
    }
}

/// A `ContextState` passed back from JavaScript (to `applyRemote`).
fn state_arg(v: &JsValue, tracker: &ContextTracker) -> Result<Arc<ContextState>, ContextError> {
    let max = tracker.manager().config().max_data_bytes;
    let budget = max.saturating_mul(2).saturating_add(4096);
    let value = crate::convert::object_from_js(v, "state", budget)?.value;
    let bad = || {
        invalid(
            "state must be a context state: { id, version, revision, createdAtMs, updatedAtMs, \
             expiresAtMs, data, metadata } as returned by contextkit",
        )
    };
    ContextState::from_value(value)
        .map(Arc::new)
        .map_err(|_| bad())
}

#[wasm_bindgen(js_class = ContextTracker)]
impl Tracker {
    /// `new ContextTracker(manager, { syncIntervalMs, autoRecovery, conflict })`.
    #[wasm_bindgen(constructor)]
    pub fn new(manager: &Manager, config: JsValue) -> Result<Tracker, JsValue> {
        let cfg = options::tracker_config(&config).map_err(crate::error::js)?;
        Ok(Self::wrap(ContextTracker::new(manager.inner.clone(), cfg)))
    }

    /// Loads `id` and makes it the active context.
    #[wasm_bindgen(js_name = activateContext)]
    pub fn activate_context(&self, id: JsValue) -> Promise {
        let t = self.inner.clone();
        run_with(
            "activateContext",
            id_arg(&id, t.manager().config()),
            move |key| async move {
                Ok(state_to_js(
                    &*t.activate_context(&key).await?,
                    Some(&id),
                    None,
                ))
            },
        )
    }

    /// Deactivates the active context (`UNSYNCED_CHANGES` if dirty).
    #[wasm_bindgen(js_name = deactivateContext)]
    pub fn deactivate_context(&self) -> Promise {
        let t = self.inner.clone();
        run("deactivateContext", async move {
            t.deactivate_context().await?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Drops local edits; resolves to the stored version they were based on.
    #[wasm_bindgen(js_name = discardChanges)]
    pub fn discard_changes(&self) -> Promise {
        let t = self.inner.clone();
        run("discardChanges", async move {
            Ok(state_to_js(&*t.discard_changes().await?, None, None))
        })
    }

    /// The active context's id, or null.
    #[wasm_bindgen(js_name = activeContextId)]
    pub fn active_context_id(&self) -> Promise {
        let t = self.inner.clone();
        run("activeContextId", async move {
            Ok(match t.active_context_id().await {
                Some(id) => JsValue::from_str(&id),
                None => JsValue::NULL,
            })
        })
    }

    /// The working copy (`NOT_ACTIVE` when nothing is active).
    #[wasm_bindgen(js_name = getState)]
    pub fn get_state(&self) -> Promise {
        let t = self.inner.clone();
        run("getState", async move {
            Ok(state_to_js(&*t.get_state().await?, None, None))
        })
    }

    /// Whether the working copy has local edits.
    #[wasm_bindgen(js_name = isDirty)]
    pub fn is_dirty(&self) -> Promise {
        let t = self.inner.clone();
        run(
            "isDirty",
            async move { Ok(JsValue::from(t.is_dirty().await)) },
        )
    }

    /// Replaces the local data and marks the copy dirty.
    #[wasm_bindgen(js_name = updateState)]
    pub fn update_state(&self, data: JsValue) -> Promise {
        let t = self.inner.clone();
        run_with(
            "updateState",
            data_arg(&data, t.manager().config()),
            move |data| async move {
                let s = t.update_state(data.value).await?;
                Ok(state_to_js(&s, None, Some(data.copy)))
            },
        )
    }

    /// Adopts `state` if it is a newer version of the active context and the copy is clean.
    #[wasm_bindgen(js_name = applyRemote)]
    pub fn apply_remote(&self, state: JsValue) -> Promise {
        let t = self.inner.clone();
        run_with(
            "applyRemote",
            state_arg(&state, &t),
            move |state| async move { Ok(JsValue::from(t.apply_remote(state).await)) },
        )
    }

    /// Pushes local edits to the manager, applying the conflict policy.
    #[wasm_bindgen(js_name = syncState)]
    pub fn sync_state(&self) -> Promise {
        let t = self.inner.clone();
        run("syncState", async move {
            Ok(state_to_js(&*t.sync_state().await?, None, None))
        })
    }

    /// Whether the copy is dirty and `syncIntervalMs` passed since the last sync.
    #[wasm_bindgen(js_name = isSyncNeeded)]
    pub fn is_sync_needed(&self) -> Promise {
        let t = self.inner.clone();
        run("isSyncNeeded", async move {
            Ok(JsValue::from(t.is_sync_needed().await))
        })
    }

    /// Syncs if needed; resolves to the new state, or null if it did not sync.
    #[wasm_bindgen(js_name = syncIfNeeded)]
    pub fn sync_if_needed(&self) -> Promise {
        let t = self.inner.clone();
        run("syncIfNeeded", async move {
            Ok(match t.sync_if_needed().await? {
                Some(s) => state_to_js(&s, None, None),
                None => JsValue::NULL,
            })
        })
    }

    /// A recovery point of the active context as stored.
    #[wasm_bindgen(js_name = createRecoveryPoint)]
    pub fn create_recovery_point(&self) -> Promise {
        let t = self.inner.clone();
        run("createRecoveryPoint", async move {
            Ok(snapshot_to_js(&t.create_recovery_point().await?))
        })
    }

    /// Syncs when needed every `syncIntervalMs` on a JavaScript timer until
    /// `stopAutoSync()` or `free()`. A failed background sync is passed to
    /// `onError` if given (the local edits stay, so the next tick retries).
    #[wasm_bindgen(js_name = startAutoSync)]
    pub fn start_auto_sync(&self, on_error: JsValue) -> Result<(), JsValue> {
        let on_error = crate::adapter::optional_callback(&on_error, "startAutoSync")?;
        let t = self.inner.clone();
        let timer = Interval::start(t.config().sync_interval_ms, move || {
            let t = t.clone();
            let on_error = on_error.clone();
            wasm_bindgen_futures::spawn_local(async move {
                if let Err(e) = t.sync_if_needed().await {
                    report(on_error.as_ref(), &e);
                }
            });
        });
        *self.auto_sync.borrow_mut() = Some(timer);
        Ok(())
    }

    /// Stops automatic syncing.
    #[wasm_bindgen(js_name = stopAutoSync)]
    pub fn stop_auto_sync(&self) {
        self.auto_sync.borrow_mut().take();
    }
}

/// Hands a background failure to `on_error`; without one it is dropped (the
/// state it concerns stays observable: a tracker stays dirty).
pub(crate) fn report(on_error: Option<&Function>, e: &ContextError) {
    if let Some(f) = on_error
        && let Err(thrown) = f.call1(&JsValue::UNDEFINED, &crate::error::to_js(e))
    {
        let _ = js_sys::Promise::reject(&thrown);
    }
}
