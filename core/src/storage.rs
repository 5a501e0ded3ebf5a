//! [`Storage`]: where a manager's contexts live durably.

use crate::sync::Mutex;
use crate::{ContextError, ContextState, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

mod decode;
mod text;

pub use decode::metadata_from_value;
pub use text::{LoadedText, TextStorage, TextStore};

/// `Send` natively; nothing in single-threaded wasm, where JavaScript-backed
/// storages cannot be `Send`.
#[cfg(not(target_arch = "wasm32"))]
pub trait MaybeSend: Send {}
#[cfg(not(target_arch = "wasm32"))]
impl<T: Send + ?Sized> MaybeSend for T {}
/// `Send` natively; nothing in single-threaded wasm.
#[cfg(target_arch = "wasm32")]
pub trait MaybeSend {}
#[cfg(target_arch = "wasm32")]
impl<T: ?Sized> MaybeSend for T {}

/// `Sync` natively; nothing in single-threaded wasm.
#[cfg(not(target_arch = "wasm32"))]
pub trait MaybeSync: Sync {}
#[cfg(not(target_arch = "wasm32"))]
impl<T: Sync + ?Sized> MaybeSync for T {}
/// `Sync` natively; nothing in single-threaded wasm.
#[cfg(target_arch = "wasm32")]
pub trait MaybeSync {}
#[cfg(target_arch = "wasm32")]
impl<T: ?Sized> MaybeSync for T {}

/// The future a [`Storage`] method returns (`Send` natively).
#[cfg(not(target_arch = "wasm32"))]
pub type StorageFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;
/// The future a [`Storage`] method returns.
#[cfg(target_arch = "wasm32")]
pub type StorageFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + 'a>>;

/// One context as stored: its state, its TTL and its recovery points.
///
/// A record is written whole, so a context and its recovery points change
/// (and disappear) together.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    /// The current state.
    pub state: Arc<ContextState>,
    /// The TTL each write restarts.
    pub ttl_ms: Option<u64>,
    /// Recovery points, oldest first.
    #[serde(rename = "points")]
    pub snapshots: Vec<SnapshotRecord>,
    /// The manager's next recovery-point id when this record was written.
    pub next_snapshot_id: u64,
}

/// The earlier name of [`SnapshotRecord`].
#[deprecated(note = "renamed to SnapshotRecord")]
pub type PointRecord = SnapshotRecord;

/// A recovery point, as stored and as a manager keeps it in memory: it
/// shares the state it was taken from (a [`Snapshot`](crate::Snapshot)
/// carries a copy of its data).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotRecord {
    /// The recovery point's id.
    pub id: u64,
    /// When it was taken.
    pub created_at_ms: u64,
    /// The state it captured.
    pub state: Arc<ContextState>,
}

/// Manager-wide facts that outlive any one context. The manager stores one
/// with every removal (delete, expiry, eviction), before the record goes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    /// Recovery-point ids below this were handed out.
    pub next_snapshot_id: u64,
    /// Revisions below this were handed out (a removal's included, which no
    /// record keeps). 0 in metas stored before revisions existed.
    #[serde(default)]
    pub next_revision: u64,
}

impl Meta {
    /// Each field the larger of the two: what a storage keeps when metas
    /// arrive out of order (two removals may store theirs concurrently, and
    /// the one decided first may arrive last).
    ///
    /// ```
    /// # use contextkit_core::*;
    /// let a = Meta { next_snapshot_id: 5, next_revision: 2 };
    /// let b = Meta { next_snapshot_id: 3, next_revision: 9 };
    /// assert_eq!(a.max(b), Meta { next_snapshot_id: 5, next_revision: 9 });
    /// ```
    #[must_use]
    pub fn max(self, other: Self) -> Self {
        Self {
            next_snapshot_id: self.next_snapshot_id.max(other.next_snapshot_id),
            next_revision: self.next_revision.max(other.next_revision),
        }
    }
}

/// What [`Storage::load`] found.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Every record that could be read.
    pub records: Vec<Record>,
    /// The stored meta, if any.
    pub meta: Option<Meta>,
    /// Records that could not be read, each naming where it was (a file, a key).
    pub problems: Vec<ContextError>,
}

/// A durable home for a manager's contexts.
///
/// "Ok" means durable. For each id the manager issues one operation at a time,
/// in version order. An implementation must make every operation on an id
/// take effect before any later operation on the same id starts — also when
/// the future of the earlier one was dropped (a write that goes on in the
/// background must finish first), so that [`get`](Self::get) after a dropped
/// write reports what the store really holds.
///
/// An error from a write need not mean that nothing changed (a directory
/// sync can fail after a rename): the manager then reads the id back with
/// [`get`](Self::get) and shows what it returns. When the future of a write
/// is dropped, or that read fails too, the id is read back by the manager's
/// next call.
pub trait Storage: MaybeSend + MaybeSync + Debug + 'static {
    /// Everything stored.
    fn load(&self) -> StorageFuture<'_, Loaded>;
    /// The record of `id`, if stored.
    fn get<'a>(&'a self, id: &'a str) -> StorageFuture<'a, Option<Record>>;
    /// Stores `record`, replacing the record of its id atomically.
    fn put(&self, record: Arc<Record>) -> StorageFuture<'_, ()>;
    /// Removes the record of `id`; removing an absent id is not an error.
    fn delete<'a>(&'a self, id: &'a str) -> StorageFuture<'a, ()>;
    /// Stores `meta`, replacing the previous one atomically. Metas may arrive
    /// out of order: keep the larger value of each field ([`Meta::max`]).
    fn put_meta(&self, meta: Meta) -> StorageFuture<'_, ()>;
}

/// A storage in memory that outlives the managers using it: reopen a manager
/// on a clone and it sees exactly what was acknowledged. Useful in tests.
///
/// ```
/// use contextkit_core::*;
/// # futures::executor::block_on(async {
/// let storage = MemoryStorage::default();
/// let m = ContextManager::builder(ManagerConfig::default()).open(storage.clone()).await?.manager;
/// m.create_context("a", json!({ "x": 1 })).await?;
/// drop(m);
/// let reopened = ContextManager::builder(ManagerConfig::default()).open(storage).await?.manager;
/// assert_eq!(reopened.get_context("a").await?.data["x"], 1);
/// # Ok::<(), ContextError>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone, Default)]
pub struct MemoryStorage {
    inner: Arc<Mutex<Stored>>,
}

type Stored = (BTreeMap<String, Arc<Record>>, Option<Meta>);

impl MemoryStorage {
    fn with<R>(
        &self,
        f: impl FnOnce(&mut (BTreeMap<String, Arc<Record>>, Option<Meta>)) -> R,
    ) -> R {
        f(&mut self.inner.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Ids stored now, sorted.
    ///
    /// ```
    /// # use contextkit_core::*;
    /// assert!(MemoryStorage::default().ids().is_empty());
    /// ```
    pub fn ids(&self) -> Vec<String> {
        self.with(|s| s.0.keys().cloned().collect())
    }

    /// An independent copy of what is stored now.
    ///
    /// ```
    /// # use contextkit_core::*;
    /// let a = MemoryStorage::default();
    /// let b = a.duplicate();
    /// assert!(b.ids().is_empty());
    /// ```
    pub fn duplicate(&self) -> Self {
        let copy = self.with(|s| s.clone());
        Self {
            inner: Arc::new(Mutex::new(copy)),
        }
    }
}

impl Storage for MemoryStorage {
    fn load(&self) -> StorageFuture<'_, Loaded> {
        let loaded = self.with(|s| Loaded {
            records: s.0.values().map(|r| Record::clone(r)).collect(),
            meta: s.1,
            problems: Vec::new(),
        });
        Box::pin(async move { Ok(loaded) })
    }

    fn get<'a>(&'a self, id: &'a str) -> StorageFuture<'a, Option<Record>> {
        let got = self.with(|s| s.0.get(id).map(|r| Record::clone(r)));
        Box::pin(async move { Ok(got) })
    }

    fn put(&self, record: Arc<Record>) -> StorageFuture<'_, ()> {
        self.with(|s| s.0.insert(record.state.id.clone(), record));
        Box::pin(async { Ok(()) })
    }

    fn delete<'a>(&'a self, id: &'a str) -> StorageFuture<'a, ()> {
        self.with(|s| s.0.remove(id));
        Box::pin(async { Ok(()) })
    }

    /// Keeps the larger value of each field: two removals may store their
    /// meta concurrently, and the one decided first may arrive last.
    fn put_meta(&self, meta: Meta) -> StorageFuture<'_, ()> {
        self.with(|s| s.1 = Some(s.1.map_or(meta, |kept| kept.max(meta))));
        Box::pin(async { Ok(()) })
    }
}

/// A storage behind an [`Arc`] is one too: keep a clone to reach the
/// storage's own methods (a file storage's `close`, say) while a manager uses it.
///
/// ```
/// use contextkit_core::*;
/// use std::sync::Arc;
/// # futures::executor::block_on(async {
/// let storage = Arc::new(MemoryStorage::default());
/// let m = ContextManager::builder(ManagerConfig::default()).open(Arc::clone(&storage)).await?.manager;
/// m.create_context("a", json!({})).await?;
/// assert_eq!(storage.ids(), ["a"]);
/// # Ok::<(), ContextError>(())
/// # }).unwrap();
/// ```
impl<S: Storage + ?Sized> Storage for Arc<S> {
    fn load(&self) -> StorageFuture<'_, Loaded> {
        (**self).load()
    }

    fn get<'a>(&'a self, id: &'a str) -> StorageFuture<'a, Option<Record>> {
        (**self).get(id)
    }

    fn put(&self, record: Arc<Record>) -> StorageFuture<'_, ()> {
        (**self).put(record)
    }

    fn delete<'a>(&'a self, id: &'a str) -> StorageFuture<'a, ()> {
        (**self).delete(id)
    }

    fn put_meta(&self, meta: Meta) -> StorageFuture<'_, ()> {
        (**self).put_meta(meta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_storage_meta_never_goes_back() {
        futures::executor::block_on(async {
            let storage = MemoryStorage::default();
            for (n, r) in [(5, 4), (3, 9), (7, 2), (6, 8)] {
                storage
                    .put_meta(Meta {
                        next_snapshot_id: n,
                        next_revision: r,
                    })
                    .await
                    .unwrap();
            }
            let loaded = storage.load().await.unwrap();
            assert_eq!(
                loaded.meta,
                Some(Meta {
                    next_snapshot_id: 7,
                    next_revision: 9,
                })
            );
        });
    }

    /// A file storage keeps records as JSON text: every number must read back
    /// as the very one written (serde_json's default float parser can be one
    /// bit off, as for each number below).
    #[test]
    fn a_record_reads_back_exactly_from_its_json_text() {
        let hard = [
            2.001484629778296e-19,
            3.3928531589008594e-121,
            3.5528090905110406e-245,
            9.111190022525008e20,
        ];
        let mut data = serde_json::Map::new();
        for (i, x) in hard.iter().enumerate() {
            data.insert(format!("x{i}"), serde_json::json!(x));
        }
        data.insert(
            "big".into(),
            serde_json::from_str("911119002252500900021").unwrap(),
        );
        let state = ContextState {
            id: "a".into(),
            version: 1,
            revision: 1,
            created_at_ms: 0,
            updated_at_ms: 0,
            expires_at_ms: None,
            data: serde_json::Value::Object(data).into(),
            metadata: BTreeMap::new(),
        };
        let record = Record {
            state: Arc::new(state),
            ttl_ms: None,
            snapshots: Vec::new(),
            next_snapshot_id: 1,
        };
        let text = serde_json::to_string(&record).unwrap();
        let back: Record = serde_json::from_str(&text).unwrap();
        assert_eq!(back, record);
        for (i, x) in hard.iter().enumerate() {
            assert_eq!(back.state.data[format!("x{i}")].as_f64(), Some(*x));
        }
    }
}
