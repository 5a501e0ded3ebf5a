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
use wasm_bindgen::prelude::*;

#[derive(Default)]
struct Control {
    stopped: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

/// Calls `callback` with each event of `events` from a spawned task, so never
/// inside the call that caused the event. Returns the unsubscribe function:
/// after it is called no further event is delivered and the subscription is
/// dropped.
pub(crate) fn deliver(mut events: Subscription, callback: Function) -> JsValue {
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
            if let Err(thrown) = callback.call1(&JsValue::UNDEFINED, &event_to_js(event)) {
                // Like an exception in an event listener: reported as an
                // unhandled rejection, and delivery goes on.
                let _ = js_sys::Promise::reject(&thrown);
            }
        }
        // Dropping `events` here unregisters the subscriber.
    });
    let off = Closure::<dyn FnMut()>::new(move || {
        if !control.stopped.replace(true) {
            if let Some(waker) = control.waker.borrow_mut().take() {
                waker.wake();
            }
        }
    });
    off.into_js_value()
}
