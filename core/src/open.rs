//! Opening a manager over a [`Storage`]: everything stored is loaded back.

use crate::expiry::ascending;
use crate::store::Inner;
use crate::sync::Ordering;
use crate::write::entry_of;
use crate::{ContextError, ContextManager, ManagerBuilder, Record, Result, Storage, validate};
use std::sync::Arc;

/// A manager opened over a storage, with what could not be loaded.
#[derive(Debug)]
pub struct Opened {
    /// The manager, holding every record that could be read.
    pub manager: ContextManager,
    /// One `STORAGE` error per record that could not be read, naming it;
    /// the other records loaded normally.
    pub problems: Vec<ContextError>,
}

impl ManagerBuilder {
    /// Builds a manager over `storage` and loads everything it holds. From
    /// then on a write is acknowledged only once `storage` made it durable, and
    /// a failed write changes nothing (`STORAGE`).
    ///
    /// ```
    /// use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let storage = MemoryStorage::default();
    /// let opened = ContextManager::builder(ManagerConfig::default()).open(storage.clone()).await?;
    /// opened.manager.create_context("a", json!({})).await?;
    /// assert_eq!(storage.ids(), ["a"]);
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    pub async fn open(self, storage: impl Storage) -> Result<Opened> {
        self.config.validate()?;
        let storage: Arc<dyn Storage> = Arc::new(storage);
        let loaded = storage.load().await?;
        let manager = self.build_with(Some(storage));
        let inner: &Inner = &manager.inner;
        let mut problems = loaded.problems;
        // Least recently updated first, so eviction order survives a reopen.
        let order = ascending(loaded.records.iter().map(|r| r.state.updated_at_ms));
        let mut records: Vec<Option<Record>> = loaded.records.into_iter().map(Some).collect();
        let mut next = 1;
        // Never a revision handed out before: above every stored one, and at
        // least what the meta kept of removals (whose records are gone).
        let mut next_revision = 1;
        if let Some(m) = loaded.meta {
            if m.next_snapshot_id > validate::MAX_SAFE {
                problems.push(ContextError::storage(format!(
                    "stored meta: next recovery point id {} is out of range",
                    m.next_snapshot_id
                )));
            } else {
                next = m.next_snapshot_id.max(1);
            }
            if m.next_revision > validate::MAX_SAFE {
                problems.push(ContextError::storage(format!(
                    "stored meta: next revision {} is out of range",
                    m.next_revision
                )));
            } else {
                next_revision = m.next_revision.max(1);
            }
        }
        for record in order.into_iter().filter_map(|(_, i)| records[i].take()) {
            let id = record.state.id.clone();
            if let Err(e) = validate::stored(&inner.cfg, &record) {
                problems.push(ContextError::storage(format!("stored record '{id}': {e}")));
                continue;
            }
            let after_snapshots = record.snapshots.iter().map(|s| s.id + 1).max();
            next = next
                .max(record.next_snapshot_id)
                .max(after_snapshots.unwrap_or(0));
            let newest_revision = record.snapshots.iter().map(|s| s.state.revision);
            let newest_revision = newest_revision.fold(record.state.revision, u64::max);
            next_revision = next_revision.max(newest_revision + 1);
            let shard = inner.shard(&id);
            let entry = entry_of(inner, record);
            let added = shard
                .map
                .write(|map| {
                    shard.note_expiry(entry.state.expires_at_ms);
                    map.insert(entry).is_none()
                })
                .await;
            if added {
                inner.count.fetch_add(1, Ordering::SeqCst);
            }
        }
        inner.next_snapshot.set(next);
        inner.raise_next_revision(next_revision);
        Ok(Opened { manager, problems })
    }
}
