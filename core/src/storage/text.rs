//! [`TextStorage`]: a [`Storage`] over a store of JSON text by key.
//!
//! The store only moves text ([`TextStore`]); the rules of contextkit's
//! stored format are here: key `"c/" + id` holds the serde_json text of a
//! context's [`Record`], key `"meta"` the [`Meta`]; other keys are left
//! alone, so a store may be shared. A stored value that does not parse, or a
//! record under another id's key, is a problem of [`Storage::load`] naming
//! its key (an error of [`Storage::get`]).

use super::{Loaded, MaybeSend, MaybeSync, Meta, Record, Storage, StorageFuture};
use crate::sync::Mutex;
use crate::{ContextError, MAX_DEPTH, ParseJson, Result};
use serde_json::Value;
use std::fmt;
use std::sync::Arc;

/// Key of the manager-wide [`Meta`].
const META_KEY: &str = "meta";
/// Prefix of the key of a context's record.
const RECORD_PREFIX: &str = "c/";
/// Levels a record adds above a context's data: the record, its list of
/// recovery points, a point, and the point's state.
const RECORD_NESTING: usize = 4;

/// What [`TextStore::load`] found.
#[derive(Debug, Default)]
pub struct LoadedText {
    /// Keys with the text stored under them.
    pub entries: Vec<(String, String)>,
    /// Values that could not be read, each naming its key.
    pub problems: Vec<ContextError>,
}

/// Text by key: all a [`TextStorage`] needs of a store.
///
/// Each method issues its operation when it is called, not when its future
/// is first polled, and operations take effect in the order they were
/// issued, also when a future is dropped: so the store sees the operations
/// on an id in the order the manager issued them. "Ok" means durable.
pub trait TextStore: MaybeSend + MaybeSync + fmt::Debug + 'static {
    /// Every key with its text (keys that are not contextkit's may be left
    /// out), and what could not be read.
    fn load(&self) -> StorageFuture<'_, LoadedText>;
    /// The text stored under `key`, if any.
    fn get(&self, key: &str) -> StorageFuture<'_, Option<String>>;
    /// Stores `text` under `key`, replacing what it held atomically. (The
    /// meta's `put` is issued under a lock of the `TextStorage`, so that
    /// metas reach the store in order: issuing must not wait for, or call
    /// back into, the storage.)
    fn put(&self, key: &str, text: String) -> StorageFuture<'_, ()>;
    /// Removes `key`; removing an absent key is not an error.
    fn delete(&self, key: &str) -> StorageFuture<'_, ()>;
}

/// A [`Storage`] over a [`TextStore`], in contextkit's stored format (see
/// the module's documentation), reading text with the front-end's parser.
///
/// ```
/// use contextkit_core::*;
/// use std::collections::BTreeMap;
/// use std::sync::{Arc, Mutex};
///
/// #[derive(Debug, Default)]
/// struct Texts(Mutex<BTreeMap<String, String>>);
///
/// impl TextStore for Texts {
///     fn load(&self) -> StorageFuture<'_, LoadedText> {
///         let entries = self.0.lock().unwrap().clone().into_iter().collect();
///         Box::pin(async move { Ok(LoadedText { entries, problems: Vec::new() }) })
///     }
///     fn get(&self, key: &str) -> StorageFuture<'_, Option<String>> {
///         let text = self.0.lock().unwrap().get(key).cloned();
///         Box::pin(async move { Ok(text) })
///     }
///     fn put(&self, key: &str, text: String) -> StorageFuture<'_, ()> {
///         self.0.lock().unwrap().insert(key.to_owned(), text);
///         Box::pin(async { Ok(()) })
///     }
///     fn delete(&self, key: &str) -> StorageFuture<'_, ()> {
///         self.0.lock().unwrap().remove(key);
///         Box::pin(async { Ok(()) })
///     }
/// }
///
/// fn parse(text: &str, max_depth: usize) -> Result<Value, String> {
///     contextkit_json::parse(text, max_depth, false).map_err(|e| e.to_string())
/// }
///
/// # futures::executor::block_on(async {
/// let texts = Arc::new(Texts::default());
/// let storage = TextStorage::new(Arc::clone(&texts), parse);
/// let m = ContextManager::builder(ManagerConfig::default()).open(storage).await?.manager;
/// m.create_context("a", json!({ "x": 1 })).await?;
/// assert!(texts.0.lock().unwrap()["c/a"].starts_with(r#"{"state":{"id":"a","version":1,"#));
/// # Ok::<(), ContextError>(())
/// # }).unwrap();
/// ```
pub struct TextStorage<S> {
    store: S,
    parse_text: ParseJson,
    /// The largest `nextSnapshotId` and `nextRevision` handed to the store
    /// so far. Two removals may store their meta concurrently, and the one
    /// decided first may be issued last: the meta written never goes back.
    meta_high: Mutex<Meta>,
}

impl<S: TextStore> fmt::Debug for TextStorage<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TextStorage")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

/// A text store behind an [`Arc`] is one too.
impl<S: TextStore + ?Sized> TextStore for Arc<S> {
    fn load(&self) -> StorageFuture<'_, LoadedText> {
        (**self).load()
    }

    fn get(&self, key: &str) -> StorageFuture<'_, Option<String>> {
        (**self).get(key)
    }

    fn put(&self, key: &str, text: String) -> StorageFuture<'_, ()> {
        (**self).put(key, text)
    }

    fn delete(&self, key: &str) -> StorageFuture<'_, ()> {
        (**self).delete(key)
    }
}

fn record_key(id: &str) -> String {
    format!("{RECORD_PREFIX}{id}")
}

/// The text of `value` for `key`. (It cannot fail: every map of a record
/// has string keys. Its error is not formatted, which keeps serde_json's and
/// std::io's message tables out of the npm package's module.)
fn encode(key: &str, value: &impl serde::Serialize) -> Result<String> {
    serde_json::to_string(value)
        .map_err(|_| ContextError::storage(format!("cannot encode '{key}'")))
}

/// A write that failed before it was issued.
fn failed<'a>(e: ContextError) -> StorageFuture<'a, ()> {
    Box::pin(async { Err(e) })
}

impl<S: TextStore> TextStorage<S> {
    /// A storage over `store`, reading its text with `parse`.
    pub fn new(store: S, parse: ParseJson) -> Self {
        Self {
            store,
            parse_text: parse,
            meta_high: Mutex::new(Meta::default()),
        }
    }

    /// The store it reads and writes.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The stored value at `key`: its text parsed, then `decode`d.
    fn read<T>(
        &self,
        key: &str,
        text: &str,
        decode: fn(Value) -> std::result::Result<T, &'static str>,
        what: &str,
    ) -> Result<T> {
        let error = |msg| ContextError::storage(format!("stored value of '{key}' {msg}"));
        // Data may be MAX_DEPTH levels deep inside a record.
        let value = (self.parse_text)(text, MAX_DEPTH + RECORD_NESTING).map_err(error)?;
        decode(value)
            .map_err(|field| error(format!("is not {what}: its {field} is missing or invalid")))
    }

    /// The stored record of `id`, whose key is `key`.
    fn read_record(&self, key: &str, id: &str, text: &str) -> Result<Record> {
        let record = self.read(key, text, Record::from_value, "a context record")?;
        if record.state.id != id {
            return Err(ContextError::storage(format!(
                "stored value of '{key}' holds context '{}'",
                record.state.id
            )));
        }
        Ok(record)
    }

    /// Adds what `text` at `key` holds to `loaded`.
    fn take(&self, loaded: &mut Loaded, key: &str, text: &str) {
        let read = match key.strip_prefix(RECORD_PREFIX) {
            Some(id) => self
                .read_record(key, id, text)
                .map(|record| loaded.records.push(record)),
            None if key == META_KEY => self
                .read(key, text, Meta::from_value, "contextkit metadata")
                .map(|meta| loaded.meta = Some(meta)),
            None => Ok(()),
        };
        if let Err(e) = read {
            loaded.problems.push(e);
        }
    }

    fn with_meta_high<R>(&self, f: impl FnOnce(&mut Meta) -> R) -> R {
        f(&mut self.meta_high.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl<S: TextStore> Storage for TextStorage<S> {
    fn load(&self) -> StorageFuture<'_, Loaded> {
        let read = self.store.load();
        Box::pin(async move {
            let LoadedText { entries, problems } = read.await?;
            let mut loaded = Loaded::default();
            for (key, text) in &entries {
                self.take(&mut loaded, key, text);
            }
            loaded.problems.extend(problems);
            self.with_meta_high(|high| *high = loaded.meta.unwrap_or_default());
            Ok(loaded)
        })
    }

    fn get<'a>(&'a self, id: &'a str) -> StorageFuture<'a, Option<Record>> {
        let key = record_key(id);
        let read = self.store.get(&key);
        Box::pin(async move {
            match read.await? {
                Some(text) => self.read_record(&key, id, &text).map(Some),
                None => Ok(None),
            }
        })
    }

    fn put(&self, record: Arc<Record>) -> StorageFuture<'_, ()> {
        let key = record_key(&record.state.id);
        encode(&key, &*record).map_or_else(failed, |text| self.store.put(&key, text))
    }

    fn delete<'a>(&'a self, id: &'a str) -> StorageFuture<'a, ()> {
        self.store.delete(&record_key(id))
    }

    fn put_meta(&self, meta: Meta) -> StorageFuture<'_, ()> {
        // Issued under the lock: metas reach the store in increasing order.
        self.with_meta_high(|high| {
            *high = high.max(meta);
            encode(META_KEY, high).map_or_else(failed, |text| self.store.put(META_KEY, text))
        })
    }
}

#[cfg(test)]
mod tests;
