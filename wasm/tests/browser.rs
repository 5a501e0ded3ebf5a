//! The wasm layer in a real browser (`wasm-pack test --headless --chrome`),
//! with the package's JavaScript half loaded as the entry points load it.
#![cfg(target_arch = "wasm32")]

use contextkit_wasm::{Adapter, Manager};
use js_sys::{Array, Function, Object, Promise, Reflect};
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen(module = "/npm/support.js")]
extern "C" {
    #[wasm_bindgen(thread_local_v2, js_name = ContextError)]
    static CONTEXT_ERROR: Function;
    #[wasm_bindgen(thread_local_v2, js_name = toJson)]
    static TO_JSON: Function;
    #[wasm_bindgen(thread_local_v2, js_name = encodeInto)]
    static ENCODE_INTO: Function;
    #[wasm_bindgen(thread_local_v2, js_name = useMemory)]
    static USE_MEMORY: Function;
    #[wasm_bindgen(thread_local_v2, js_name = makeState)]
    static MAKE_STATE: Function;
    #[wasm_bindgen(thread_local_v2, js_name = copyState)]
    static COPY_STATE: Function;
    #[wasm_bindgen(thread_local_v2, js_name = makeEvent)]
    static MAKE_EVENT: Function;
    #[wasm_bindgen(thread_local_v2, js_name = makeSnapshot)]
    static MAKE_SNAPSHOT: Function;
    #[wasm_bindgen(thread_local_v2, js_name = storageCall)]
    static STORAGE_CALL: Function;
    #[wasm_bindgen(thread_local_v2, js_name = storageLoad)]
    static STORAGE_LOAD: Function;
    #[wasm_bindgen(thread_local_v2, js_name = kindOf)]
    static KIND_OF: Function;
}

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = setTimeout)]
    fn set_timeout(f: &Function, ms: i32);
}

/// What the entry points do: hand the module its JavaScript half.
fn setup() {
    let support = obj(&[
        ("ContextError", CONTEXT_ERROR.with(Clone::clone).into()),
        ("toJson", TO_JSON.with(Clone::clone).into()),
        ("encodeInto", ENCODE_INTO.with(Clone::clone).into()),
        ("useMemory", USE_MEMORY.with(Clone::clone).into()),
        ("makeState", MAKE_STATE.with(Clone::clone).into()),
        ("copyState", COPY_STATE.with(Clone::clone).into()),
        ("makeEvent", MAKE_EVENT.with(Clone::clone).into()),
        ("makeSnapshot", MAKE_SNAPSHOT.with(Clone::clone).into()),
        ("storageCall", STORAGE_CALL.with(Clone::clone).into()),
        ("storageLoad", STORAGE_LOAD.with(Clone::clone).into()),
        ("kindOf", KIND_OF.with(Clone::clone).into()),
    ]);
    contextkit_wasm::init(support.unchecked_into());
}

fn obj(pairs: &[(&str, JsValue)]) -> JsValue {
    let o = Object::new();
    for (k, v) in pairs {
        Reflect::set(&o, &(*k).into(), v).unwrap();
    }
    o.into()
}

fn get(v: &JsValue, key: &str) -> JsValue {
    Reflect::get(v, &key.into()).unwrap()
}

async fn ok(p: Promise) -> JsValue {
    JsFuture::from(p).await.expect("resolved")
}

/// The rejection of `p`, checked to be a ContextError with `code`.
async fn err(p: Promise, code: &str) -> JsValue {
    let e = JsFuture::from(p).await.expect_err("rejected");
    let class = CONTEXT_ERROR.with(Clone::clone);
    assert!(e.is_instance_of::<js_sys::Error>());
    assert!(Reflect::get(&e, &"constructor".into()).unwrap() == JsValue::from(class));
    assert_eq!(get(&e, "code").as_string().as_deref(), Some(code));
    e
}

async fn sleep(ms: i32) {
    let p = Promise::new(&mut |resolve, _| set_timeout(&resolve, ms));
    JsFuture::from(p).await.unwrap();
}

#[wasm_bindgen_test]
async fn create_update_and_conflict() {
    setup();
    let m = Manager::new(JsValue::UNDEFINED).unwrap();
    let data = obj(&[("x", 1.into())]);
    let s = ok(m.create_context("a".into(), data.clone(), JsValue::UNDEFINED)).await;
    assert_eq!(get(&s, "version").as_f64(), Some(1.0));
    assert_eq!(get(&get(&s, "data"), "x").as_f64(), Some(1.0));
    err(
        m.create_context("a".into(), data, JsValue::UNDEFINED),
        "ALREADY_EXISTS",
    )
    .await;
    let opts = obj(&[("expectedVersion", 1.into())]);
    let s = ok(m.update_context("a".into(), obj(&[("x", 2.into())]), opts.clone())).await;
    assert_eq!(get(&s, "version").as_f64(), Some(2.0));
    let e = err(
        m.update_context("a".into(), obj(&[]), opts),
        "VERSION_CONFLICT",
    )
    .await;
    assert_eq!(get(&e, "actual").as_f64(), Some(2.0));
    err(m.get_context("missing".into()), "NOT_FOUND").await;
}

#[wasm_bindgen_test]
async fn hostile_input_is_refused_and_the_manager_keeps_working() {
    setup();
    let m = Manager::new(JsValue::UNDEFINED).unwrap();
    let mut deep = obj(&[]);
    for _ in 0..10_000 {
        deep = obj(&[("a", deep)]);
    }
    let cyclic = obj(&[]);
    Reflect::set(&cyclic, &"me".into(), &cyclic).unwrap();
    let huge = JsValue::from("x".repeat(10 << 20));
    let bad = [
        deep,
        cyclic,
        obj(&[("n", f64::NAN.into())]),
        obj(&[("n", js_sys::BigInt::from(1).into())]),
        obj(&[("s", huge.clone())]),
        Array::of1(&1.into()).into(),
        JsValue::UNDEFINED,
        JsValue::NULL,
    ];
    for data in bad {
        err(
            m.create_context("a".into(), data, JsValue::UNDEFINED),
            "INVALID_ARGUMENT",
        )
        .await;
    }
    for id in [JsValue::from(1), JsValue::NULL, huge, "".into()] {
        err(m.get_context(id), "INVALID_ARGUMENT").await;
    }
    assert!(Manager::new(obj(&[("maxContexts", "ten".into())])).is_err());
    let s = ok(m.create_context("a".into(), obj(&[]), JsValue::UNDEFINED)).await;
    assert_eq!(get(&s, "id").as_string().as_deref(), Some("a"));
}

#[wasm_bindgen_test]
async fn events_arrive_asynchronously_and_stop_after_unsubscribe() {
    setup();
    let m = Manager::new(JsValue::UNDEFINED).unwrap();
    let seen = Rc::new(RefCell::new(Vec::<String>::new()));
    let sink = Rc::clone(&seen);
    let cb = Closure::<dyn FnMut(JsValue)>::new(move |ev: JsValue| {
        let kind = get(&ev, "type").as_string().unwrap_or_default();
        let id = get(&ev, "id").as_string().unwrap_or_default();
        sink.borrow_mut().push(format!("{kind}:{id}"));
    });
    let off = m
        .subscribe(cb.as_ref().clone(), JsValue::UNDEFINED)
        .unwrap();
    let pending = m.create_context("a".into(), obj(&[]), JsValue::UNDEFINED);
    assert!(seen.borrow().is_empty(), "delivered inside the call");
    ok(pending).await;
    ok(m.delete_context("a".into())).await;
    sleep(0).await;
    assert_eq!(*seen.borrow(), ["created:a", "deleted:a"]);
    off.call0(&JsValue::UNDEFINED).unwrap();
    ok(m.create_context("b".into(), obj(&[]), JsValue::UNDEFINED)).await;
    sleep(0).await;
    assert_eq!(seen.borrow().len(), 2);
}

#[wasm_bindgen_test]
async fn auto_cleanup_runs_on_a_browser_timer() {
    setup();
    let m = Manager::new(JsValue::UNDEFINED).unwrap();
    let cfg = obj(&[
        ("ttlMs", 10.into()),
        ("autoCleanup", false.into()),
        ("cleanupIntervalMs", 5.into()),
    ]);
    let a = Adapter::new(&m, cfg).unwrap();
    ok(a.create_context("old".into(), obj(&[]), JsValue::UNDEFINED)).await;
    a.start_auto_cleanup();
    while get(&m.stats(), "expirations").as_f64() != Some(1.0) {
        sleep(5).await;
    }
    a.stop_auto_cleanup();
    err(m.get_context("old".into()), "NOT_FOUND").await;
}

#[wasm_bindgen_test]
fn a_bad_adapter_config_throws() {
    setup();
    let m = Manager::new(JsValue::UNDEFINED).unwrap();
    let e = Adapter::new(&m, obj(&[("maxActiveContexts", 0.into())]))
        .err()
        .expect("refused");
    assert_eq!(
        get(&e, "code").as_string().as_deref(),
        Some("INVALID_ARGUMENT")
    );
    let _ = e.dyn_into::<js_sys::Error>().expect("an Error");
}

/// `obj.name(...args)`, for objects the module hands out as plain JavaScript.
fn call(obj: &JsValue, name: &str, args: &[JsValue]) -> Promise {
    let f: Function = get(obj, name).unchecked_into();
    let args: Array = args.iter().collect();
    f.apply(obj, &args).unwrap().unchecked_into()
}

/// A storage object over a Map whose `put` fails while `window.failPut` is set.
fn map_storage() -> JsValue {
    Function::new_no_args(
        "const map = new Map();
         return {
           map,
           get: async (k) => map.get(k),
           put: async (k, v) => { if (globalThis.failPut) throw new Error('no space'); map.set(k, v); },
           delete: async (k) => { map.delete(k); },
           list: async () => [...map.keys()],
         };",
    )
    .call0(&JsValue::NULL)
    .unwrap()
}

#[wasm_bindgen_test]
async fn a_manager_opened_on_a_storage_object_keeps_its_contexts_there() {
    setup();
    let storage = map_storage();
    let opened = ok(Manager::open(storage.clone(), JsValue::UNDEFINED)).await;
    assert_eq!(Array::from(&get(&opened, "problems")).length(), 0);
    let m = get(&opened, "manager");
    ok(call(
        &m,
        "createContext",
        &["a".into(), obj(&[("x", 1.into())])],
    ))
    .await;
    ok(call(
        &m,
        "updateContext",
        &["a".into(), obj(&[("x", 2.into())])],
    ))
    .await;

    Reflect::set(&js_sys::global(), &"failPut".into(), &true.into()).unwrap();
    let e = err(
        call(&m, "updateContext", &["a".into(), obj(&[("x", 3.into())])]),
        "STORAGE",
    )
    .await;
    Reflect::set(&js_sys::global(), &"failPut".into(), &false.into()).unwrap();
    let msg = get(&e, "message").as_string().unwrap();
    assert!(
        msg.contains("storage.put('c/a')") && msg.contains("no space"),
        "{msg}"
    );

    let again = ok(Manager::open(storage, JsValue::UNDEFINED)).await;
    let state = ok(call(&get(&again, "manager"), "getContext", &["a".into()])).await;
    assert_eq!(get(&state, "version").as_f64(), Some(2.0));
    assert_eq!(get(&get(&state, "data"), "x").as_f64(), Some(2.0));
}

#[wasm_bindgen_test]
async fn a_storage_that_is_not_one_is_refused_without_a_panic() {
    setup();
    err(
        Manager::open(JsValue::NULL, JsValue::UNDEFINED),
        "INVALID_ARGUMENT",
    )
    .await;
    err(Manager::open(obj(&[]), JsValue::UNDEFINED), "STORAGE").await;
    let list_only = obj(&[(
        "list",
        Function::new_no_args("return Promise.resolve(['c/x'])").into(),
    )]);
    let opened = ok(Manager::open(list_only, JsValue::UNDEFINED)).await;
    assert_eq!(Array::from(&get(&opened, "problems")).length(), 1);
}
