//! `ContextManager.open(storage)`: a manager whose contexts live in a
//! JavaScript storage object.
//!
//! The object has async `get(key)`, `put(key, value)`, `delete(key)` and
//! `list()`, and optionally `entries()` for a bulk read at open (see
//! `ContextStorage` in wasm/npm/common.d.cts). Values are JSON text in the
//! core's layout ([`TextStorage`]: key `"c/" + id` holds a context's record,
//! key `"meta"` the manager's meta; other keys are left alone, so a storage
//! may be shared); this file only moves the text.
//!
//! The package's JavaScript half (`storageCall`, `storageLoad` in
//! wasm/npm/support.js) makes the calls and checks what comes back: whatever
//! the object does (a method missing, throwing, rejecting, resolving to
//! something else than documented), the wasm side gets a Promise that
//! resolves to checked values or rejects with a message naming the method and
//! the key, which becomes a `STORAGE` error. Each storage method is called when
//! the core issues the operation (not when its future is first polled), so the
//! storage sees operations in the order the core issued them.

use crate::convert::{NOT_INITIALISED, Support, with_support};
use crate::error::kind;
use crate::host::hash_seed;
use crate::manager::Manager;
use crate::promise::{reject, run};
use contextkit_core::{
    ContextError, ContextManager, LoadedText, Result, StorageFuture, TextStorage, TextStore,
};
use js_sys::{Array, Object, Promise, Reflect};
use std::fmt;
use std::future::Future;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

#[wasm_bindgen]
extern "C" {
    /// `storage[method](key[, value])` as a checked Promise (`value` is for `put`).
    #[wasm_bindgen(method, catch, js_name = storageCall)]
    fn storage_call(
        this: &Support,
        storage: &JsValue,
        method: &str,
        key: &str,
        value: &str,
    ) -> Result<Promise, JsValue>;

    /// Everything contextkit keeps in `storage`: a Promise of `[pairs, problems]`.
    #[wasm_bindgen(method, catch, js_name = storageLoad)]
    fn storage_load(this: &Support, storage: &JsValue) -> Result<Promise, JsValue>;
}

/// The text of a JavaScript storage object.
struct JsStore {
    object: JsValue,
}

impl fmt::Debug for JsStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JsStore")
    }
}

fn storage_error(msg: String) -> ContextError {
    ContextError::storage(msg)
}

impl JsStore {
    /// Calls `storage[method]` now (`value` is used by `put` only) and returns
    /// a future of what it resolved to.
    fn call(
        &self,
        method: &str,
        key: &str,
        value: &str,
    ) -> impl Future<Output = Result<JsValue>> + use<> {
        settle(with_support(|s| {
            s.storage_call(&self.object, method, key, value)
        }))
    }
}

/// The outcome of a Promise the JavaScript half returned; its rejections are
/// messages.
async fn settle(started: Option<Result<Promise, JsValue>>) -> Result<JsValue> {
    let failed = |e: JsValue| {
        storage_error(
            e.as_string()
                .unwrap_or_else(|| format!("the storage call failed with {}", kind(&e))),
        )
    };
    let promise = started
        .ok_or_else(|| storage_error(NOT_INITIALISED.into()))?
        .map_err(failed)?;
    JsFuture::from(promise).await.map_err(failed)
}

impl TextStore for JsStore {
    fn load(&self) -> StorageFuture<'_, LoadedText> {
        let started = with_support(|s| s.storage_load(&self.object));
        Box::pin(async move {
            // [pairs, problems]: keys alternating with their JSON text (only
            // contextkit's keys), and messages.
            let got: Array = settle(started).await?.unchecked_into();
            let pairs: Array = got.get(0).unchecked_into();
            let text = |i| pairs.get(i).as_string().unwrap_or_default();
            let problems: Array = got.get(1).unchecked_into();
            Ok(LoadedText {
                entries: (0..pairs.length())
                    .step_by(2)
                    .map(|i| (text(i), text(i + 1)))
                    .collect(),
                problems: (problems.iter())
                    .map(|p| storage_error(p.as_string().unwrap_or_default()))
                    .collect(),
            })
        })
    }

    fn get(&self, key: &str) -> StorageFuture<'_, Option<String>> {
        let read = self.call("get", key, "");
        // A string, or undefined for none (checked by the JavaScript half).
        Box::pin(async move { Ok(read.await?.as_string()) })
    }

    fn put(&self, key: &str, text: String) -> StorageFuture<'_, ()> {
        let write = self.call("put", key, &text);
        Box::pin(async move { write.await.map(drop) })
    }

    fn delete(&self, key: &str) -> StorageFuture<'_, ()> {
        let write = self.call("delete", key, "");
        Box::pin(async move { write.await.map(drop) })
    }
}

#[wasm_bindgen(js_class = ContextManager)]
impl Manager {
    /// `ContextManager.open(storage, config)`: a manager over `storage`,
    /// holding everything it could load; resolves to `{ manager, problems }`.
    pub fn open(storage: JsValue, config: JsValue) -> Promise {
        let (cfg, cache_bytes) = match crate::args::manager_config(&config) {
            Ok(c) => c,
            Err(e) => return reject(e),
        };
        if !storage.is_object() {
            return reject(crate::error::invalid(format!(
                "storage must be an object with get, put, delete and list methods, got {}",
                kind(&storage)
            )));
        }
        let storage = TextStorage::new(JsStore { object: storage }, crate::convert::parse_stored);
        run("ContextManager.open", async move {
            let opened = ContextManager::builder(cfg)
                .hash_seed(hash_seed())
                .open(storage)
                .await?;
            let problems: Array = opened.problems.iter().map(crate::error::to_js).collect();
            let manager = JsValue::from(Manager::wrap(opened.manager, cache_bytes));
            let out = Object::new();
            // Setting plain data properties on a fresh object cannot fail.
            let _ = Reflect::set(&out, &"manager".into(), &manager);
            let _ = Reflect::set(&out, &"problems".into(), &problems);
            Ok(out.into())
        })
    }
}
