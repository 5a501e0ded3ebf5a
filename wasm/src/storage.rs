//! `ContextManager.open(storage)`: a manager whose contexts live in a
//! JavaScript storage object.
//!
//! The object has async `get(key)`, `put(key, value)`, `delete(key)` and
//! `list()`, and optionally `entries()` for a bulk read at open (see
//! `ContextStorage` in wasm/npm/index.d.ts). Values are JSON text: key
//! `"c/" + id` holds the serde_json form of a context's [`Record`], key
//! `"meta"` the [`Meta`]; other keys are left alone, so a storage may be shared.
//!
//! The package's JavaScript half (`storageCall`, `storageLoad` in
//! wasm/npm/support.js) makes the calls and checks what comes back: whatever
//! the object does (a method missing, throwing, rejecting, resolving to
//! something else than documented), the wasm side gets a Promise that
//! resolves to checked values or rejects with a message naming the method and
//! the key, which becomes a `STORAGE` error. Each storage method is called when
//! the core issues the operation (not when its future is first polled), so the
//! storage sees operations in the order the core issued them. A stored value
//! that does not parse is a problem of `open` naming its key.

use crate::convert::{NOT_INITIALISED, Support, with_support};
use crate::error::kind;
use crate::host::hash_seed;
use crate::json;
use crate::manager::Manager;
use crate::promise::{reject, run};
use crate::record::{self, Decoded};
use contextkit_core::{
    ContextError, ContextManager, Loaded, MAX_DEPTH, Meta, Record, Result, Storage, StorageFuture,
};
use js_sys::{Array, Object, Promise, Reflect};
use serde_json::Value;
use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

/// Key of the manager-wide [`Meta`].
const META_KEY: &str = "meta";
/// Prefix of the key of a context's record.
const RECORD_PREFIX: &str = "c/";
/// Levels a record adds above a context's data: the record, its list of
/// recovery points, a point, and the point's state.
const RECORD_NESTING: usize = 4;

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

/// A [`Storage`] over a JavaScript object.
pub(crate) struct JsStorage {
    object: JsValue,
    /// The largest `nextSnapshotId` and `nextRevision` handed to the storage
    /// so far. Two removals may store their meta concurrently, and the one
    /// decided first may be issued last: the meta written never goes back.
    meta_high: Cell<Meta>,
}

impl fmt::Debug for JsStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JsStorage")
    }
}

fn storage_error(msg: String) -> ContextError {
    ContextError::Storage(msg)
}

/// Parses the stored value at `key`: JSON text, then `decode`.
fn parse<T>(key: &str, text: &str, decode: fn(Value) -> Decoded<T>, what: &str) -> Result<T> {
    // Data may be MAX_DEPTH levels deep inside a record.
    let value = json::parse(text, MAX_DEPTH + RECORD_NESTING, false)
        .map_err(|why| storage_error(format!("stored value of '{key}' {why}")))?;
    decode(value).map_err(|field| {
        storage_error(format!(
            "stored value of '{key}' is not {what}: its {field} is missing or invalid"
        ))
    })
}

/// Parses a stored record of `id` found at `key`.
fn parse_record(key: &str, id: &str, text: &str) -> Result<Record> {
    let record = parse(key, text, record::record, "a context record")?;
    if record.state.id != id {
        return Err(storage_error(format!(
            "stored value of '{key}' holds context '{}'",
            record.state.id
        )));
    }
    Ok(record)
}

/// Adds what `text` at `key` holds to `loaded` (the JavaScript half passes
/// on only contextkit's keys).
fn take(loaded: &mut Loaded, key: &str, text: &str) {
    match key.strip_prefix(RECORD_PREFIX) {
        Some(id) => match parse_record(key, id, text) {
            Ok(record) => loaded.records.push(record),
            Err(e) => loaded.problems.push(e),
        },
        None => match parse(key, text, record::meta, "contextkit metadata") {
            Ok(meta) => loaded.meta = Some(meta),
            Err(e) => loaded.problems.push(e),
        },
    }
}

impl JsStorage {
    pub(crate) fn new(object: JsValue) -> Self {
        Self {
            object,
            meta_high: Cell::new(Meta::default()),
        }
    }

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

fn record_key(id: &str) -> String {
    format!("{RECORD_PREFIX}{id}")
}

impl Storage for JsStorage {
    fn load(&self) -> StorageFuture<'_, Loaded> {
        let started = with_support(|s| s.storage_load(&self.object));
        Box::pin(async move {
            // [pairs, problems]: keys alternating with their JSON text, and messages.
            let got: Array = settle(started).await?.unchecked_into();
            let pairs: Array = got.get(0).unchecked_into();
            let mut loaded = Loaded::default();
            for i in (0..pairs.length()).step_by(2) {
                let key = pairs.get(i).as_string().unwrap_or_default();
                let text = pairs.get(i + 1).as_string().unwrap_or_default();
                take(&mut loaded, &key, &text);
            }
            let problems: Array = got.get(1).unchecked_into();
            for p in problems.iter() {
                loaded
                    .problems
                    .push(storage_error(p.as_string().unwrap_or_default()));
            }
            self.meta_high.set(loaded.meta.unwrap_or_default());
            Ok(loaded)
        })
    }

    fn get<'a>(&'a self, id: &'a str) -> StorageFuture<'a, Option<Record>> {
        let key = record_key(id);
        let read = self.call("get", &key, "");
        Box::pin(async move {
            // A string, or undefined for none (checked by the JavaScript half).
            match read.await?.as_string() {
                Some(text) => parse_record(&key, id, &text).map(Some),
                None => Ok(None),
            }
        })
    }

    fn put(&self, record: Arc<Record>) -> StorageFuture<'_, ()> {
        let key = record_key(&record.state.id);
        let write = serde_json::to_string(&*record)
            .map(|text| self.call("put", &key, &text))
            // (It cannot fail: every map of a record has string keys. Its
            // error is not formatted, which keeps serde_json's and std::io's
            // message tables out of the module.)
            .map_err(|_| storage_error(format!("cannot encode '{key}'")));
        Box::pin(async move { write?.await.map(drop) })
    }

    fn delete<'a>(&'a self, id: &'a str) -> StorageFuture<'a, ()> {
        let write = self.call("delete", &record_key(id), "");
        Box::pin(async move { write.await.map(drop) })
    }

    fn put_meta(&self, meta: Meta) -> StorageFuture<'_, ()> {
        let meta = meta.max(self.meta_high.get());
        self.meta_high.set(meta);
        let write = serde_json::to_string(&meta)
            .map(|text| self.call("put", META_KEY, &text))
            .map_err(|_| storage_error(format!("cannot encode '{META_KEY}'")));
        Box::pin(async move { write?.await.map(drop) })
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
        let storage = JsStorage::new(storage);
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
