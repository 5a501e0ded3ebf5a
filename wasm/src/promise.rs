//! Turning the core's futures into JavaScript Promises.

use contextkit_core::ContextError;
use js_sys::Promise;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use wasm_bindgen::prelude::*;

/// A Promise of `fut`'s result; errors become `ContextError`s. `op` is the
/// method the caller called (`deleteContext`): a storage failure names it
/// first, then the storage call that failed inside it.
///
/// The future owns everything it uses (callers clone the core handle into it),
/// so the JavaScript object it came from is not borrowed while the Promise is
/// pending. Most operations finish without waiting for a lock, so the future
/// is polled once right away and an already settled Promise is returned;
/// otherwise it continues on the microtask queue.
pub(crate) fn run<F>(op: &'static str, fut: F) -> Promise
where
    F: Future<Output = Result<JsValue, Failure>> + 'static,
{
    settle(op, Box::pin(fut))
}

/// A Promise of `body(args)`, or one rejected at once with the error of the
/// argument step `args` (checked before any work starts).
pub(crate) fn run_with<A, F, Fut>(
    op: &'static str,
    args: Result<A, ContextError>,
    body: F,
) -> Promise
where
    F: FnOnce(A) -> Fut,
    Fut: Future<Output = Result<JsValue, Failure>> + 'static,
{
    match args {
        Ok(a) => run(op, body(a)),
        Err(e) => reject(e),
    }
}

/// Why an operation failed: an error of contextkit, or what a callback of
/// the caller threw, passed on as it was thrown.
pub(crate) enum Failure {
    Error(ContextError),
    Thrown(JsValue),
}

impl From<ContextError> for Failure {
    fn from(e: ContextError) -> Self {
        Self::Error(e)
    }
}

/// One operation, type-erased so that the Promise machinery below exists
/// once in the module rather than once per method.
type Operation = Pin<Box<dyn Future<Output = Result<JsValue, Failure>>>>;

fn settle(op: &'static str, mut fut: Operation) -> Promise {
    let mut cx = Context::from_waker(Waker::noop());
    match fut.as_mut().poll(&mut cx) {
        Poll::Ready(Ok(v)) => Promise::resolve(&v),
        Poll::Ready(Err(e)) => Promise::reject(&failed(op, e)),
        Poll::Pending => {
            wasm_bindgen_futures::future_to_promise(
                async move { fut.await.map_err(|e| failed(op, e)) },
            )
        }
    }
}

/// The JavaScript error of `op` failing with `err`.
fn failed(op: &'static str, err: Failure) -> JsValue {
    match err {
        Failure::Thrown(thrown) => thrown,
        Failure::Error(ContextError::Storage { message, .. }) => {
            crate::error::to_js(&ContextError::storage(format!("{op}: {message}")))
        }
        Failure::Error(other) => crate::error::to_js(&other),
    }
}

/// A Promise rejected with `err`, for arguments refused before any work.
pub(crate) fn reject(err: ContextError) -> Promise {
    Promise::reject(&crate::error::to_js(&err))
}
