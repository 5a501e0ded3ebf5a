//! `ContextManager.connect(backend, config)`: shared mode over a JavaScript
//! transport of contextkit's Redis library (`RedisBackend` in Node runs it on
//! Redis; see wasm/npm/redis-backend.cjs for the transport's interface).
//!
//! The core's [`SharedClient`] decides what to call and reads the replies,
//! exactly as for any other host; this file only makes the transport's
//! calls and turns what they resolve to into [`Wire`] replies.

use crate::convert::{NOT_INITIALISED, Support, with_support};
use crate::host::hash_seed;
use crate::manager::Manager;
use crate::promise::{reject, run_with};
use contextkit_core::client::{Outcome, SharedClient, Transport};
use contextkit_core::wire::Wire;
use contextkit_core::{ContextError, ContextManager, Result, StorageFuture};
use js_sys::{Array, JsString, Promise};
use std::time::Duration;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

#[wasm_bindgen]
extern "C" {
    /// `transport[method](...args)` as a Promise of `[0, reply]`, `[1,
    /// message]` (refused), `[2, message]` (no answer: outcome unknown) or
    /// `[3, message]` (refused as an invalid argument); never rejects.
    #[wasm_bindgen(method, js_name = sharedCall)]
    fn shared_call(this: &Support, transport: &JsValue, method: &str, args: &Array) -> Promise;

    /// A Promise that resolves after `ms` milliseconds (an unref'd timer).
    #[wasm_bindgen(method)]
    fn sleep(this: &Support, ms: f64) -> Promise;
}

/// The JavaScript object that moves the library's calls (its methods
/// `open`, `call`, `get`, `head`, `events` and `close`).
struct JsTransport(JsValue);

impl JsTransport {
    async fn request(&self, method: &str, args: &Array) -> Result<Outcome> {
        let Some(promise) = with_support(|s| s.shared_call(&self.0, method, args)) else {
            return Err(ContextError::storage(NOT_INITIALISED));
        };
        let got: Array = match JsFuture::from(promise).await {
            Ok(v) => v.into(),
            Err(_) => return Err(ContextError::storage(format!("{method} failed"))),
        };
        let value = got.get(1);
        let message = || value.as_string().unwrap_or_default();
        match got.get(0).as_f64() {
            Some(0.0) => Ok(Outcome::Replied(to_wire(&value))),
            Some(2.0) => Ok(Outcome::Unknown(ContextError::storage(message()))),
            Some(3.0) => Err(ContextError::InvalidArgument(message())),
            _ => Err(ContextError::storage(message())),
        }
    }

    fn reply<'a>(&'a self, method: &'a str, args: Array) -> StorageFuture<'a, Wire> {
        Box::pin(async move { self.request(method, &args).await?.reply() })
    }
}

/// A reply as support.js `sharedCall` hands it over: null, strings, numbers
/// and arrays of them.
fn to_wire(v: &JsValue) -> Wire {
    if let Some(s) = v.dyn_ref::<JsString>() {
        // A record is written straight into this module's memory; short
        // strings (statuses, numbers) cost less through wasm-bindgen.
        let text = if s.length() > 64 {
            crate::convert::text_from_js(s.clone())
        } else {
            None
        };
        Wire::Text(text.or_else(|| s.as_string()).unwrap_or_default())
    } else if let Some(n) = v.as_f64() {
        Wire::Int(n as i64)
    } else if v.is_array() {
        Wire::List(Array::from(v).iter().map(|v| to_wire(&v)).collect())
    } else {
        Wire::Nil
    }
}

fn strings(items: &[String]) -> Array {
    items.iter().map(|s| JsValue::from_str(s)).collect()
}

impl Transport for JsTransport {
    fn open(&self) -> StorageFuture<'_, ()> {
        Box::pin(async move { self.reply("open", Array::new()).await.map(drop) })
    }

    fn call<'a>(
        &'a self,
        function: &'a str,
        keys: &'a [String],
        args: &'a [String],
    ) -> StorageFuture<'a, Outcome> {
        Box::pin(async move {
            let a = Array::of3(&function.into(), &strings(keys), &strings(args));
            self.request("call", &a).await
        })
    }

    fn get<'a>(&'a self, id: &'a str) -> StorageFuture<'a, Wire> {
        self.reply("get", Array::of1(&id.into()))
    }

    fn head(&self) -> StorageFuture<'_, Wire> {
        self.reply("head", Array::new())
    }

    fn events(&self, after: u64, count: usize, wait_ms: u64) -> StorageFuture<'_, Wire> {
        let args = Array::of3(
            &(after as f64).into(),
            &(count as f64).into(),
            &(wait_ms as f64).into(),
        );
        self.reply("events", args)
    }

    fn sleep(&self, duration: Duration) -> StorageFuture<'_, ()> {
        Box::pin(async move {
            if let Some(p) = with_support(|s| s.sleep(duration.as_secs_f64() * 1000.0)) {
                let _ = JsFuture::from(p).await;
            }
            Ok(())
        })
    }

    fn fill_random(&self, bytes: &mut [u8]) {
        crate::host::random_bytes(bytes);
    }

    fn spawn(&self, task: StorageFuture<'static, ()>) {
        wasm_bindgen_futures::spawn_local(async move {
            let _ = task.await;
        });
    }

    fn close(&self) {
        let _ = with_support(|s| s.shared_call(&self.0, "close", &Array::new()));
    }
}

#[wasm_bindgen(js_class = ContextManager)]
impl Manager {
    /// `ContextManager.connect(backend, config)`: a manager in shared mode on
    /// `backend`'s namespace (a `RedisBackend`).
    pub fn connect(backend: JsValue, config: JsValue) -> Promise {
        let (cfg, cache_bytes) = match crate::args::manager_config(&config) {
            Ok(c) => c,
            Err(e) => return reject(e),
        };
        let settings = crate::args::shared_backend(&backend, crate::convert::parse_stored);
        run_with(
            "ContextManager.connect",
            settings,
            move |mut settings| async move {
                // readCacheBytes bounds the reads kept for maxStaleMs too; and
                // only those give the same state twice, for its cache to hold.
                settings.max_stale_bytes = cache_bytes;
                let read_cache = if settings.max_stale_ms > 0 {
                    cache_bytes
                } else {
                    0
                };
                let shared = SharedClient::new(JsTransport(backend), settings);
                let manager = ContextManager::builder(cfg)
                    .hash_seed(hash_seed())
                    .connect(shared)
                    .await?;
                Ok(Manager::wrap(manager, read_cache).into())
            },
        )
    }
}
