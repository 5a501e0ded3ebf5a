//! The in-memory backend: every write is decided and applied in one critical
//! section of its shard, and an expired context is removed wherever a
//! section meets it (a sweep, a write, a create that finds the store full).

use crate::store::{Inner, Map, Removal, Shard};
use crate::write::{Plan, Replaced, install};
use crate::{ContextError, ContextManager, ContextState, Result};
use std::sync::Arc;

/// One write of `id`: `plan` decides and the patch is applied in the same
/// section. What it replaced is dropped after the section.
pub(crate) async fn write(
    inner: &Inner,
    id: &str,
    plan: &mut Plan<'_>,
) -> Result<Option<Arc<ContextState>>> {
    let shard = inner.shard(id);
    let (result, replaced) = shard
        .map
        .write(|map| match plan(inner, shard, map) {
            Ok(patch) => {
                let (replaced, state) = install(inner, shard, map, id, patch, None);
                (Ok(state), replaced)
            }
            Err(e) => (Err(e), Replaced::Nothing),
        })
        .await;
    drop(replaced);
    result
}

/// Creates `id` with `state`. A create that finds the store full has
/// already swept its own shard; the others may hold expired contexts too,
/// which do not count, so it sweeps them and tries again.
pub(crate) async fn create(
    m: &ContextManager,
    id: &str,
    state: ContextState,
    ttl_ms: Option<u64>,
) -> Result<Arc<ContextState>> {
    let inner = &*m.inner;
    let mut initial = Some(state);
    loop {
        let mut full_at = None;
        let attempt = m
            .write_state(id, &mut |inner, shard, map| {
                super::decide_create(inner, shard, map, id, &mut initial, ttl_ms, &mut full_at)
            })
            .await;
        let Err(ContextError::CapacityExceeded { .. }) = attempt else {
            return attempt;
        };
        // The answer stands only if, at one instant after the attempt,
        // nothing counted may have expired and no context came or went since
        // the attempt: then every one it counted was live at that instant. A
        // sweep leaves every shard's earliest expiry exact, so sweeping again
        // means something new expired.
        if m.may_have_expired(inner.now()) {
            sweep_expired(inner).await;
            continue;
        }
        if m.may_have_expired(inner.now()) {
            continue;
        }
        if full_at.is_none_or(|word| word == inner.count.word()) {
            return attempt;
        }
    }
}

/// Removes every expired context. Each shard is swept at the time it is
/// locked; shards with nothing due when the sweep starts are skipped.
pub(crate) async fn sweep_expired(inner: &Inner) -> usize {
    let start = inner.now();
    let mut removed = 0;
    for shard in inner.shards.iter().filter(|s| s.may_have_expired(start)) {
        removed += shard
            .map
            .write(|map| sweep_shard(inner, shard, map, inner.now()))
            .await;
    }
    removed
}

/// Removes the expired contexts of one shard, inside its write section.
pub(crate) fn sweep_shard(inner: &Inner, shard: &Shard, map: &mut Map, now: u64) -> usize {
    let expired: Vec<String> = map
        .iter()
        .filter(|(_, e)| e.state.is_expired_at(now))
        .map(|(id, _)| id.clone())
        .collect();
    for id in &expired {
        inner.remove(map, id, Removal::Expired, None);
    }
    inner.refresh_earliest(shard, map);
    expired.len()
}
