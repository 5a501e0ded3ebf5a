//! States already read, kept as JavaScript objects for the next read.
//!
//! A state never changes once committed (an update makes a new one), so the
//! JavaScript object of a state read once can serve every later read of that
//! very state ([`StateCache`], by state identity): a get that finds it here
//! costs a copy made in JavaScript (support.js `copyState`; strings are
//! immutable and shared, objects and arrays are new) instead of serializing
//! the data in wasm, moving the text across and parsing it. The objects kept
//! here are never handed out: every read, the first one included, returns a
//! copy of its own, so a caller changing a returned state changes nothing
//! another caller sees. An entry is charged the length of its data's JSON
//! text; a manager's budget is `readCacheBytes` ([`DEFAULT_BUDGET`] unless
//! configured, 0 for none).

use contextkit_core::StateCache;
use wasm_bindgen::JsValue;

/// One manager's cache of read states (cheap to clone; clones share it).
pub(crate) type ReadCache = StateCache<JsValue>;

/// Default budget of a manager's cache: 16 MiB.
pub(crate) const DEFAULT_BUDGET: usize = 16 << 20;
