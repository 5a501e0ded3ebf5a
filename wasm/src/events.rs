//! `manager.subscribe(callback)`: events delivered from a task on the microtask queue.

use crate::convert::event_to_js;
use contextkit_core::Subscription;
use futures_core::Stream;
use js_sys::Function;
use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Poll, Waker};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

#[derive(Default)]
struct Control {
    stopped: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

/// Calls `callback` with each event of `events` from a spawned task, so never
/// inside the call that caused the event. A callback that throws does not stop
/// delivery: what it threw goes to `on_error(error, event)`, or without one to
/// `console.error`. Returns the unsubscribe function: after it is called no
/// further event is delivered and the subscription is dropped.
pub(crate) fn deliver(
    mut events: Subscription,
    callback: Function,
    on_error: Option<Function>,
) -> JsValue {
    let control = Rc::new(Control::default());
    let task = Rc::clone(&control);
    wasm_bindgen_futures::spawn_local(async move {
        loop {
            let next = poll_fn(|cx| {
                if task.stopped.get() {
                    return Poll::Ready(None);
                }
                *task.waker.borrow_mut() = Some(cx.waker().clone());
                Pin::new(&mut events).poll_next(cx)
            })
            .await;
            let Some(event) = next else { break };
            if task.stopped.get() {
                break;
            }
            let event = event_to_js(event);
            if let Err(thrown) = callback.call1(&JsValue::UNDEFINED, &event) {
                report(on_error.as_ref(), &thrown, &event);
            }
        }
        // Dropping `events` here unregisters the subscriber.
    });
    let off = Closure::<dyn FnMut()>::new(move || {
        if !control.stopped.replace(true)
            && let Some(waker) = control.waker.borrow_mut().take()
        {
            waker.wake();
        }
    });
    off.into_js_value()
}

/// Hands what a subscriber threw to `on_error`; without one, or if it throws
/// too, logs it. Never an unhandled rejection: in Node that ends the process.
fn report(on_error: Option<&Function>, thrown: &JsValue, event: &JsValue) {
    let (what, thrown) = match on_error.map(|f| f.call2(&JsValue::UNDEFINED, thrown, event)) {
        Some(Ok(_)) => return,
        Some(Err(again)) => ("contextkit: a subscriber's onError threw on", again),
        None => ("contextkit: a subscriber threw on", thrown.clone()),
    };
    let _ = crate::host::console_error(what, event, &thrown);
}

/// `subscribe(callback, { onError })` of a manager or an adapter.
pub(crate) fn subscribe(
    manager: &contextkit_core::ContextManager,
    callback: &JsValue,
    options: &JsValue,
) -> Result<Function, JsValue> {
    let callback = crate::args::function(callback, "subscribe expects a function")
        .map_err(crate::error::js)?;
    let on_error = crate::args::subscribe_options(options).map_err(crate::error::js)?;
    let off = deliver(manager.subscribe(), callback, on_error);
    Ok(off.unchecked_into())
}
