//! `ContextManager.connect(backend, config)`: shared mode over a JavaScript
//! transport of contextkit's Redis library (`RedisBackend` in Node runs it on
//! Redis; see wasm/npm/redis-backend.cjs for the transport's interface).
//!
//! This side decides what to call and reads the replies with the core's
//! [`wire`] format, exactly as the Rust `RedisBackend` does: the epoch, an
//! operation id per write, settling a write that got no answer (its reply
//! if it ran, else a mark that makes a late copy of it a no-op), and the
//! reader that delivers the namespace's events to the manager.

use crate::convert::{NOT_INITIALISED, Support, with_support};
use crate::error::invalid;
use crate::json;
use crate::manager::{Manager, hash_seed};
use crate::promise::{reject, run_with};
use contextkit_core::wire::{self, Wire};
use contextkit_core::{
    Clock, ContextError, ContextManager, ContextState, EventFeed, Joined, MAX_DEPTH, ManagerConfig,
    Result, SharedBackend, Snapshot, StorageFuture, Write, WriteReply,
};
use js_sys::{Array, Promise};
use serde_json::Value;
use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;
use std::sync::Arc;
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

/// How a transport call ended.
enum Called {
    Reply(Wire),
    Refused(ContextError),
    /// No answer in time: what was asked may or may not have happened.
    NoAnswer(String),
}

async fn call(transport: &JsValue, method: &str, args: &Array) -> Called {
    let Some(promise) = with_support(|s| s.shared_call(transport, method, args)) else {
        return Called::Refused(ContextError::Storage(NOT_INITIALISED.into()));
    };
    let got: Array = match JsFuture::from(promise).await {
        Ok(v) => v.into(),
        Err(_) => return Called::Refused(ContextError::Storage(format!("{method} failed"))),
    };
    let value = got.get(1);
    let message = || value.as_string().unwrap_or_default();
    match got.get(0).as_f64() {
        Some(0.0) => Called::Reply(to_wire(&value)),
        Some(2.0) => Called::NoAnswer(message()),
        Some(3.0) => Called::Refused(ContextError::InvalidArgument(message())),
        _ => Called::Refused(ContextError::Storage(message())),
    }
}

impl Called {
    fn reply(self) -> Result<Wire> {
        match self {
            Called::Reply(w) => Ok(w),
            Called::Refused(e) => Err(e),
            Called::NoAnswer(m) => Err(ContextError::Storage(m)),
        }
    }
}

/// A reply as support.js `sharedCall` hands it over: null, strings, numbers
/// and arrays of them.
fn to_wire(v: &JsValue) -> Wire {
    if let Some(s) = v.as_string() {
        Wire::Text(s)
    } else if let Some(n) = v.as_f64() {
        Wire::Int(n as i64)
    } else if v.is_array() {
        Wire::List(Array::from(v).iter().map(|v| to_wire(&v)).collect())
    } else {
        Wire::Nil
    }
}

fn strings<I: IntoIterator<Item = S>, S: AsRef<str>>(items: I) -> Array {
    items
        .into_iter()
        .map(|s| JsValue::from_str(s.as_ref()))
        .collect()
}

/// Data and metadata text from the store, read as the package reads JSON.
fn parse_json(text: &str) -> std::result::Result<Value, String> {
    json::parse(text, MAX_DEPTH + 1, false).map_err(|e| e.to_string())
}

/// 128 random bits as hex: an epoch or an operation id.
fn random_id() -> String {
    let mut bytes = [0_u8; 16];
    if crate::host::get_random_values(&mut bytes).is_err() {
        for b in &mut bytes {
            *b = (js_sys::Math::random() * 256.0) as u8;
        }
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What the backend and its event reader share.
struct Settings {
    transport: JsValue,
    namespace: String,
    timeout_ms: u64,
    operation_ttl_ms: u64,
    event_retention: u64,
    epoch: RefCell<String>,
    /// Operation ids: 64 random bits of this manager, then a count.
    op_prefix: String,
    ops: std::cell::Cell<u64>,
}

impl Drop for Settings {
    fn drop(&mut self) {
        // The connections close with the last user: the manager and its reader.
        let _ = with_support(|s| s.shared_call(&self.transport, "close", &Array::new()));
    }
}

/// A [`SharedBackend`] over a JavaScript transport.
pub(crate) struct JsShared {
    settings: Rc<Settings>,
}

impl fmt::Debug for JsShared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsShared")
            .field("namespace", &self.settings.namespace)
            .finish_non_exhaustive()
    }
}

/// The most time a write may spend settling an unknown outcome, after its timeout.
const SETTLE_MS: u64 = 500;
/// Events read at most per call.
const BATCH: u32 = 1_000;

impl JsShared {
    fn key(kind: &str, id: &str) -> String {
        format!("{kind}:{id}")
    }

    async fn read(&self, name: &str, keys: Array, args: Array) -> Result<Wire> {
        let a = Array::of3(&name.into(), &keys, &args);
        call(&self.settings.transport, "call", &a).await.reply()
    }

    /// How long the store keeps a write's reply for a retry: the configured
    /// time, and at least twice the call's timeout plus the settling time.
    fn reply_ttl_ms(&self) -> u64 {
        let s = &self.settings;
        s.operation_ttl_ms.max(s.timeout_ms * 2 + SETTLE_MS)
    }

    async fn write_call(&self, write: Write) -> Result<WriteReply> {
        let s = &self.settings;
        let n = s.ops.get() + 1;
        s.ops.set(n);
        let op = format!("{}{n:x}", s.op_prefix);
        let keys = wire::write_keys(&write, &op);
        let epoch = s.epoch.borrow().clone();
        let head = [
            wire::op_name(&write).to_owned(),
            epoch,
            op.clone(),
            self.reply_ttl_ms().to_string(),
            s.event_retention.to_string(),
            String::new(),
        ];
        let args = strings(head.into_iter().chain(wire::write_args(&write)?));
        let a = Array::of3(&"ck2_write".into(), &strings(&keys), &args);
        let reply = match call(&s.transport, "call", &a).await {
            Called::Reply(w) => w,
            Called::Refused(e) => return Err(e),
            Called::NoAnswer(last) => self.settle(&op, &last).await?,
        };
        let decoded = wire::write_reply(write, &reply, &s.namespace, s.timeout_ms, parse_json)?;
        Ok(decoded.reply)
    }

    /// A write got no answer: ask once more for its reply, or mark it so
    /// that a late copy never applies (then it was not applied).
    async fn settle(&self, op: &str, last: &str) -> Result<Wire> {
        let s = &self.settings;
        let keys = strings(["meta".to_owned(), Self::key("op", op)]);
        let args = strings([self.reply_ttl_ms().to_string()]);
        let a = Array::of3(&"ck2_settle".into(), &keys, &args);
        match call(&s.transport, "call", &a).await {
            Called::Reply(w) => Ok(w),
            _ => Err(ContextError::Storage(format!(
                "no answer within {} ms, outcome unknown (the write may have been applied); {last}",
                s.timeout_ms
            ))),
        }
    }

    async fn join_namespace(&self, config: &ManagerConfig) -> Result<Joined> {
        let s = &self.settings;
        let cfg = wire::namespace_config(config, false);
        let keys = strings(["meta"]);
        let args = strings([random_id(), cfg.to_string()]);
        let reply = self.read("ck2_join", keys, args).await?;
        let (epoch, revision) = wire::joined(&reply, &cfg, &s.namespace, parse_json)?;
        *s.epoch.borrow_mut() = epoch;
        Ok(Joined { revision })
    }
}

impl SharedBackend for JsShared {
    fn join<'a>(
        &'a self,
        config: &'a ManagerConfig,
        _clock: Arc<dyn Clock>,
    ) -> StorageFuture<'a, Joined> {
        Box::pin(self.join_namespace(config))
    }

    fn write(&self, write: Write) -> StorageFuture<'_, WriteReply> {
        Box::pin(self.write_call(write))
    }

    fn get<'a>(&'a self, id: &'a str) -> StorageFuture<'a, Option<Arc<ContextState>>> {
        Box::pin(async move {
            let a = Array::of1(&id.into());
            match call(&self.settings.transport, "get", &a).await.reply()? {
                Wire::Text(record) => wire::state(id, &record, parse_json).map(Some),
                _ => Ok(None),
            }
        })
    }

    fn recovery_points<'a>(&'a self, id: &'a str) -> StorageFuture<'a, Option<Vec<Snapshot>>> {
        Box::pin(async move {
            let keys = strings(["meta".to_owned(), Self::key("c", id)]);
            let reply = self.read("ck2_points", keys, strings([id, ""])).await?;
            wire::snapshots(id, &reply, parse_json)
        })
    }

    fn list(&self) -> StorageFuture<'_, Vec<Arc<ContextState>>> {
        Box::pin(async move {
            let reply = self
                .read("ck2_live", strings(["meta"]), strings(["states", ""]))
                .await?;
            wire::live_states(&reply, parse_json)
        })
    }

    fn list_ids(&self) -> StorageFuture<'_, Vec<String>> {
        Box::pin(async move {
            let reply = self
                .read("ck2_live", strings(["meta"]), strings(["ids", ""]))
                .await?;
            wire::live_ids(&reply)
        })
    }

    fn count(&self) -> StorageFuture<'_, usize> {
        Box::pin(async move {
            let reply = self
                .read("ck2_count", strings(["meta"]), strings([""]))
                .await?;
            Ok(usize::try_from(reply.int()?).unwrap_or(usize::MAX))
        })
    }

    /// A random wait below 0.4 ms × 2^(attempt - 1), at most 51 ms.
    fn backoff(&self, attempt: u32) -> StorageFuture<'_, ()> {
        let bound = f64::from(400_u32 << attempt.saturating_sub(1).min(7));
        let wait_ms = js_sys::Math::random() * bound / 1000.0;
        Box::pin(async move {
            sleep(wait_ms).await;
            Ok(())
        })
    }

    fn start(&self, feed: EventFeed) {
        wasm_bindgen_futures::spawn_local(read_events(Rc::clone(&self.settings), feed));
    }
}

/// The reader cannot reach the store: says so, and waits longer each time.
async fn stalled(pause: &mut f64, feed: &EventFeed) {
    feed.stalled(true);
    sleep(*pause).await;
    *pause = (*pause * 2.0).min(500.0);
}

async fn sleep(ms: f64) {
    if let Some(p) = with_support(|s| s.sleep(ms)) {
        let _ = JsFuture::from(p).await;
    }
}

/// Delivers the namespace's events to `feed` until the manager is gone.
async fn read_events(s: Rc<Settings>, feed: EventFeed) {
    let block = (s.timeout_ms / 2).clamp(10, 1_000);
    let mut pause = 10.0;
    while feed.is_open() {
        let Some(next) = feed.next_revision() else {
            return;
        };
        // The namespace first: still the one joined, never behind what this
        // manager saw, and how far it is.
        let head = match call(&s.transport, "head", &Array::new()).await {
            Called::Reply(w) => w,
            _ => {
                stalled(&mut pause, &feed).await;
                continue;
            }
        };
        let (epoch, rev) = match head.items() {
            Ok([epoch, rev]) => (
                epoch.text().unwrap_or("").to_owned(),
                rev.int().unwrap_or(0),
            ),
            _ => {
                stalled(&mut pause, &feed).await;
                continue;
            }
        };
        if epoch != *s.epoch.borrow() {
            feed.lost(wire::lost_message(&s.namespace));
            return;
        }
        if rev + 1 < next {
            feed.lost(format!(
                "namespace '{}' went back to revision {rev} after this manager saw {}: the store lost acknowledged writes",
                s.namespace,
                next - 1
            ));
            return;
        }
        // Nothing to wait for if some of it is known to be there already.
        let wait = if rev < next { block } else { 0 };
        let args = Array::of3(
            &((next - 1) as f64).into(),
            &BATCH.into(),
            &(wait as f64).into(),
        );
        let entries = match call(&s.transport, "events", &args).await {
            Called::Reply(w) => w,
            _ => {
                stalled(&mut pause, &feed).await;
                continue;
            }
        };
        pause = 10.0;
        let Ok(entries) = entries.items() else {
            stalled(&mut pause, &feed).await;
            continue;
        };
        let mut events = Vec::with_capacity(entries.len());
        let mut through = 0;
        for entry in entries {
            if let Ok([r, t, i, v]) = entry.items() {
                let revision = r.int().unwrap_or(0);
                through = through.max(revision);
                if let (Ok(t), Ok(i), Ok(v)) = (t.text(), i.text(), v.int())
                    && let Ok(event) = wire::event(t, i, v, revision)
                {
                    events.push(event);
                }
            }
        }
        // A read that reached the end of the stream (less than a full batch)
        // covers everything committed before it.
        if entries.len() < BATCH as usize {
            through = through.max(rev);
        }
        if !feed.deliver(events, through) {
            return;
        }
    }
}

/// A whole number option of `backend` from 1 to `max`, else `default`.
fn option(backend: &JsValue, name: &str, default: u64, max: u64) -> Result<u64> {
    let v = crate::host::get_str(backend, name).unwrap_or(JsValue::UNDEFINED);
    if v.is_undefined() {
        return Ok(default);
    }
    match v.as_f64() {
        Some(n) if n.fract() == 0.0 && n >= 1.0 && n <= max as f64 => Ok(n as u64),
        _ => Err(invalid(format!(
            "backend.{name} must be a whole number from 1 to {max}"
        ))),
    }
}

#[wasm_bindgen(js_class = ContextManager)]
impl Manager {
    /// `ContextManager.connect(backend, config)`: a manager in shared mode on
    /// `backend`'s namespace (a `RedisBackend`).
    pub fn connect(backend: JsValue, config: JsValue) -> Promise {
        let (cfg, _) = match crate::options::manager_config(&config) {
            Ok(c) => c,
            Err(e) => return reject(e),
        };
        let namespace = match crate::host::get_str(&backend, "namespace")
            .ok()
            .and_then(|n| n.as_string())
        {
            Some(n) if backend.is_object() => n,
            _ => {
                return reject(invalid(String::from(
                    "backend must be a shared backend such as a RedisBackend, with a namespace",
                )));
            }
        };
        let settings = (|| {
            Ok(Settings {
                namespace,
                timeout_ms: option(&backend, "timeoutMs", 2_000, 86_400_000)?,
                operation_ttl_ms: option(&backend, "operationTtlMs", 60_000, 1 << 45)?,
                event_retention: option(&backend, "eventRetention", 100_000, 1 << 40)?,
                transport: backend,
                epoch: RefCell::new(String::new()),
                op_prefix: random_id()[..16].to_owned() + "-",
                ops: std::cell::Cell::new(0),
            })
        })();
        run_with(
            "ContextManager.connect",
            settings,
            move |settings| async move {
                let opened = call(&settings.transport, "open", &Array::new()).await;
                let shared = JsShared {
                    settings: Rc::new(settings),
                };
                opened.reply()?;
                let manager = ContextManager::builder(cfg)
                    .hash_seed(hash_seed())
                    .connect(shared)
                    .await?;
                // Every read comes from the store: states are never read twice.
                Ok(Manager::wrap(manager, 0).into())
            },
        )
    }
}
