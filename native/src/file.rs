//! [`FileStorage`]: one checksummed JSON file per context, replaced atomically.
//!
//! # The on-disk format
//!
//! One format for the storage directories of this crate's `FileStorage` and
//! of the npm package's (wasm/npm/file-storage.cjs, which refers here): a
//! directory written by either opens in the other with the same contexts,
//! versions, revisions, recovery points, TTLs and metadata.
//!
//! | name | what it holds |
//! |---|---|
//! | `ctx-<h>.json` | one context's [`Record`]; `<h>` is the SHA-256 of the id's UTF-8 bytes in lowercase hex, so any id gets a safe name of its own |
//! | `meta.json` | the manager-wide [`Meta`] |
//! | `ctx-<h>.json.tmp`, `meta.json.tmp` | a write that has not reached its rename: never acknowledged, removed at open |
//! | `contextkit.lock`, `contextkit.lock.*` | the directory lock and its claims (see `file/lock.rs`) |
//! | `key-<h>.json` (and `.tmp`) | the npm package only: a value stored under a key that is not contextkit's (anything but `c/<id>` and `meta`) through its storage interface; `<h>` is the SHA-256 of the key's UTF-16 code units; the value is stored as JSON `{"key":…,"value":…}` |
//! | anything else | left alone |
//!
//! - Every `.json` file is the header line `contextkit <64 lowercase hex
//!   digits>\n`, the SHA-256 of the rest, then JSON: serde_json's compact
//!   text of the core's [`Record`] or [`Meta`] (camelCase field names), e.g.
//!   `{"state":{"id":"a","version":1,"revision":1,"createdAtMs":…,"updatedAtMs":…,
//!   "expiresAtMs":null,"data":{…},"metadata":{}},"ttlMs":null,"points":[{"id":1,
//!   "createdAtMs":…,"state":{…}}],"nextSnapshotId":2}` and
//!   `{"nextSnapshotId":2,"nextRevision":5}`. The npm package stores the text
//!   its wasm module makes with the same serde_json code from the same types,
//!   so both write the same bytes for the same record. The id is the record's
//!   `state.id`; a file whose id does not hash to its name is reported as
//!   misplaced, one whose header does not match what follows as damaged.
//! - A write goes to `<name>.tmp`, which is fsynced, renamed over `<name>`,
//!   and the directory is fsynced; a delete unlinks and fsyncs the directory;
//!   a directory is created with its missing parents, each parent fsynced.

use crate::json::JsonError;
use contextkit_core::{ContextError, Loaded, Meta, Record, Result, Storage, StorageFuture};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Worker threads; each id always goes to the same one.
const WORKERS: usize = 4;

mod lock;
mod workers;

/// The manager-wide facts.
const META: &str = "meta.json";
/// What a write appends to the name of the file it replaces.
const TMP: &str = ".tmp";
/// How every file this storage writes begins, before the checksum.
const MAGIC: &str = "contextkit ";
/// `contextkit <64 hex digits>\n`.
const HEADER_LEN: usize = MAGIC.len() + 64 + 1;

/// A [`Storage`] in a directory: one file per context, plus `meta.json`.
///
/// - Every file is a header line `contextkit <sha256 of the rest, 64 lowercase
///   hex digits>` followed by the JSON. A file whose header is missing or does
///   not match what follows (truncated, garbled, edited into other valid JSON)
///   is reported as damaged, naming it, and the other files still load.
/// - A write goes to a temporary file (the name plus `.tmp`), is fsynced,
///   renamed over the old file, and the directory is fsynced: after a crash a
///   context file holds either the old or the new record, never a torn one.
///   Opening removes such leftovers of this storage's own writes
///   (`ctx-<64 hex>.json.tmp`, `meta.json.tmp`) and leaves every other file alone.
/// - File names are `ctx-<sha256 of the id>.json`: safe for any id (no path
///   traversal, no clash between ids that differ only in case or in characters
///   a file system rejects); the id itself is inside the file.
/// - One `FileStorage` per directory, Rust's or the npm package's:
///   [`new`](Self::new) takes the directory's lock (`contextkit.lock`, naming
///   the holding process), held until the storage is closed (or dropped) and
///   done with the file work queued before. A lock left by a process that
///   died (killed, crashed) is taken over, safely also when several processes
///   try at once (the protocol is in `file/lock.rs`).
/// - [`close`](Self::close) waits for the file work already queued, then
///   releases the lock. Dropping the storage (with the last manager holding
///   it) closes it too. With nothing queued the lock goes at once. Work still
///   queued (writes whose futures were dropped: acknowledged writes are
///   durable already) is never waited for on a tokio runtime's thread: inside
///   a runtime the drop returns at once, and the storage's threads finish that
///   work and then release the lock; outside a runtime the drop waits for it,
///   as `close` does. A `FileStorage::new` of the directory in this process
///   meanwhile waits for the release instead of failing; another process
///   sees the directory in use until then (`close` first if that matters).
/// - The format is the npm package's `FileStorage`'s too (see the module's
///   documentation): a directory written by one opens in the other.
/// - File work runs on its own threads, never on the executor. Operations on
///   one id run in the order they were issued, even when the future of an
///   earlier one was dropped.
///
/// ```
/// use contextkit::{ContextManager, FileStorage, ManagerConfig, json};
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> contextkit::Result<()> {
/// let dir = std::env::temp_dir().join(format!("contextkit-doc-{}", std::process::id()));
/// let opened = ContextManager::builder(ManagerConfig::default()).open(FileStorage::new(&dir)?).await?;
/// opened.manager.create_context("a", json!({ "x": 1 })).await?;
/// // The directory is in use until the storage (here: its manager) is dropped.
/// assert_eq!(FileStorage::new(&dir).unwrap_err().code(), "STORAGE");
/// drop(opened);
/// let again = ContextManager::builder(ManagerConfig::default()).open(FileStorage::new(&dir)?).await?;
/// assert_eq!(again.manager.get_context("a").await?.data["x"], 1);
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok(()) }
/// ```
pub struct FileStorage {
    dir: Arc<PathBuf>,
    /// Its threads and queues; they hold the directory's lock.
    workers: workers::Workers,
    /// The largest value of each field of `meta.json`. Meta writes run on
    /// one worker in issue order, but two removals may issue theirs in the
    /// other order than they took their ids and revisions: a smaller value
    /// never overwrites a larger one.
    meta_high: Arc<Mutex<Meta>>,
}

impl fmt::Debug for FileStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileStorage")
            .field("dir", &self.dir)
            .finish()
    }
}

/// `STORAGE` "<what> <path>: <cause>", with `cause` as the error's source.
fn storage_error<E>(what: &str, path: &Path, cause: E) -> ContextError
where
    E: std::error::Error + Send + Sync + 'static,
{
    ContextError::storage_from(format!("{what} {}: {cause}", path.display()), cause)
}

/// `STORAGE` "<what> <path>: <why>", where no error of the system or a
/// parser is the cause (a damaged file, a lock another process holds).
fn storage_fault(what: &str, path: &Path, why: impl fmt::Display) -> ContextError {
    ContextError::storage(format!("{what} {}: {why}", path.display()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn is_hex(text: &[u8]) -> bool {
    text.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The file name of `id`.
fn file_name(id: &str) -> String {
    format!("ctx-{}.json", hex(&Sha256::digest(id.as_bytes())))
}

/// Whether `name` is one [`file_name`] gives.
fn is_context_file(name: &str) -> bool {
    name.strip_prefix("ctx-")
        .and_then(|rest| rest.strip_suffix(".json"))
        .is_some_and(|digest| digest.len() == 64 && is_hex(digest.as_bytes()))
}

/// Whether `name` is a temporary file [`replace`] writes.
fn is_own_temporary(name: &str) -> bool {
    name.strip_suffix(TMP)
        .is_some_and(|target| target == META || is_context_file(target))
}

/// `value` as a file's bytes: the header line with the checksum, then the JSON.
fn encode(value: &impl Serialize) -> serde_json::Result<Vec<u8>> {
    let mut bytes = vec![0; HEADER_LEN];
    serde_json::to_writer(&mut bytes, value)?;
    let digest = hex(&Sha256::digest(&bytes[HEADER_LEN..]));
    bytes[..HEADER_LEN].copy_from_slice(format!("{MAGIC}{digest}\n").as_bytes());
    Ok(bytes)
}

/// The JSON of a file's bytes, once the header's checksum matches it.
fn decode(bytes: &[u8]) -> std::result::Result<&[u8], &'static str> {
    if !bytes.starts_with(MAGIC.as_bytes()) {
        return Err("missing header");
    }
    let Some((header, json)) = bytes.split_at_checked(HEADER_LEN) else {
        return Err("bad header");
    };
    let digest = &header[MAGIC.len()..HEADER_LEN - 1];
    if header[HEADER_LEN - 1] != b'\n' || !is_hex(digest) {
        return Err("bad header");
    }
    if digest != hex(&Sha256::digest(json)).as_bytes() {
        return Err("checksum mismatch");
    }
    Ok(json)
}

/// Writes `bytes` to `path` atomically and durably.
fn replace(dir: &Path, path: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(TMP);
    let tmp = PathBuf::from(tmp);
    let write = || -> io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    };
    write().map_err(|e| storage_error("cannot write", path, e))
}

/// Creates `dir` and its missing parents, and then fsyncs the parent of each
/// directory it created (best effort), so that the new entries survive a crash.
fn create_dir(dir: &Path) -> io::Result<()> {
    let missing: Vec<&Path> = dir
        .ancestors()
        .take_while(|d| !d.as_os_str().is_empty() && !d.exists())
        .collect();
    fs::create_dir_all(dir)?;
    for created in missing.into_iter().rev() {
        let parent = created
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let _ = File::open(parent).and_then(|d| d.sync_all());
    }
    Ok(())
}

/// The deepest nesting a record file can hold: data at the limit the core
/// accepts, inside a recovery point inside the record (four levels).
const RECORD_DEPTH: usize = contextkit_core::MAX_DEPTH + 4;

/// A record from the bytes of its file at `path`.
fn parse_record(bytes: &[u8], path: &Path) -> Result<Record> {
    const CORRUPT: &str = "corrupt context file";
    let json = decode(bytes).map_err(|why| storage_fault(CORRUPT, path, why))?;
    crate::json::from_json(json, RECORD_DEPTH).map_err(|e| match e {
        JsonError::Invalid(e) => storage_error(CORRUPT, path, e),
        too_deep => storage_fault(CORRUPT, path, too_deep.to_string()),
    })
}

fn read_record(path: &Path) -> Result<Record> {
    let bytes = fs::read(path).map_err(|e| storage_error("cannot read", path, e))?;
    let record = parse_record(&bytes, path)?;
    let expected = file_name(&record.state.id);
    if path.file_name().and_then(|n| n.to_str()) != Some(expected.as_str()) {
        return Err(storage_fault(
            "misplaced context file",
            path,
            format!("it holds '{}', whose file is {expected}", record.state.id),
        ));
    }
    Ok(record)
}

fn read_meta(path: &Path) -> Result<Meta> {
    let bytes = fs::read(path).map_err(|e| storage_error("cannot read", path, e))?;
    let json = decode(&bytes).map_err(|why| storage_fault("corrupt meta file", path, why))?;
    serde_json::from_slice(json).map_err(|e| storage_error("corrupt meta file", path, e))
}

impl FileStorage {
    /// A storage in `dir`, created if missing. `STORAGE`, naming the
    /// directory and the holding process, if another `FileStorage` (Rust's or
    /// the npm package's), in this process or another, has it open.
    pub fn new(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        create_dir(&dir).map_err(|e| storage_error("cannot create", &dir, e))?;
        let lock = lock::DirLock::acquire(&dir)?;
        let workers = workers::Workers::start(&dir, WORKERS, lock)?;
        Ok(Self {
            dir: Arc::new(dir),
            workers,
            meta_high: Arc::default(),
        })
    }

    /// Waits for the file work already queued, then releases the directory
    /// (its lock) for the next storage. Every later operation fails with
    /// `STORAGE`: close it once no manager uses it any more. To call this
    /// while a manager holds the storage, give the manager an
    /// `Arc<FileStorage>` (a [`Storage`] too) and keep a clone.
    ///
    /// ```
    /// use contextkit::{ContextManager, FileStorage, ManagerConfig, Storage, json};
    /// use std::sync::Arc;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> contextkit::Result<()> {
    /// let dir = std::env::temp_dir().join(format!("contextkit-close-{}", std::process::id()));
    /// let storage = Arc::new(FileStorage::new(&dir)?);
    /// let opened = ContextManager::builder(ManagerConfig::default()).open(Arc::clone(&storage)).await?;
    /// opened.manager.create_context("a", json!({ "x": 1 })).await?;
    /// drop(opened);
    /// storage.close().await;
    /// assert!(!dir.join("contextkit.lock").exists()); // free for any process
    /// assert_eq!(storage.get("a").await.unwrap_err().code(), "STORAGE");
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # Ok(()) }
    /// ```
    pub async fn close(&self) {
        self.workers.close();
        self.workers.released().await;
    }

    /// The directory it writes to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Queues `job` now, on the worker of `key`, and returns its result later.
    /// Queuing at call time keeps the issue order per id, dropped futures included.
    fn run<T: Send + 'static>(
        &self,
        key: &str,
        job: impl FnOnce(&Path) -> Result<T> + Send + 'static,
    ) -> StorageFuture<'static, T> {
        let worker = usize::from(Sha256::digest(key.as_bytes())[0]) % WORKERS;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let dir = Arc::clone(&self.dir);
        let queued = self.workers.send(
            worker,
            Box::new(move |done| {
                let result = job(&dir);
                drop(done);
                let _ = tx.send(result);
            }),
            &self.dir,
        );
        Box::pin(async move {
            queued?;
            rx.await
                .map_err(|_| ContextError::storage("file storage worker stopped"))?
        })
    }
}

impl Storage for FileStorage {
    fn load(&self) -> StorageFuture<'_, Loaded> {
        let meta_high = Arc::clone(&self.meta_high);
        self.run("", move |dir| {
            let mut loaded = Loaded::default();
            let entries = fs::read_dir(dir).map_err(|e| storage_error("cannot list", dir, e))?;
            for entry in entries {
                let path = entry
                    .map_err(|e| storage_error("cannot list", dir, e))?
                    .path();
                let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                    continue;
                };
                if is_own_temporary(name) {
                    // A write that never reached its rename: not acknowledged.
                    let _ = fs::remove_file(&path);
                } else if name == META {
                    match read_meta(&path) {
                        Ok(meta) => {
                            let mut high = meta_high.lock().unwrap_or_else(|e| e.into_inner());
                            *high = high.max(meta);
                            loaded.meta = Some(meta);
                        }
                        Err(e) => loaded.problems.push(e),
                    }
                } else if is_context_file(name) {
                    match read_record(&path) {
                        Ok(record) => loaded.records.push(record),
                        Err(e) => loaded.problems.push(e),
                    }
                }
            }
            Ok(loaded)
        })
    }

    fn get<'a>(&'a self, id: &'a str) -> StorageFuture<'a, Option<Record>> {
        let name = file_name(id);
        self.run(id, move |dir| {
            let path = dir.join(name);
            match path.try_exists() {
                Ok(false) => Ok(None),
                Ok(true) => read_record(&path).map(Some),
                Err(e) => Err(storage_error("cannot read", &path, e)),
            }
        })
    }

    fn put(&self, record: Arc<Record>) -> StorageFuture<'_, ()> {
        let name = file_name(&record.state.id);
        self.run(&record.state.id.clone(), move |dir| {
            let path = dir.join(name);
            let bytes = encode(&*record).map_err(|e| storage_error("cannot encode", &path, e))?;
            replace(dir, &path, &bytes)
        })
    }

    fn delete<'a>(&'a self, id: &'a str) -> StorageFuture<'a, ()> {
        let name = file_name(id);
        self.run(id, move |dir| {
            let path = dir.join(name);
            match fs::remove_file(&path) {
                Ok(()) => File::open(dir)
                    .and_then(|d| d.sync_all())
                    .map_err(|e| storage_error("cannot sync", dir, e)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(storage_error("cannot delete", &path, e)),
            }
        })
    }

    fn put_meta(&self, meta: Meta) -> StorageFuture<'_, ()> {
        let meta_high = Arc::clone(&self.meta_high);
        self.run("", move |dir| {
            let high = *meta_high.lock().unwrap_or_else(|e| e.into_inner());
            let meta = high.max(meta);
            if meta == high {
                return Ok(());
            }
            let path = dir.join(META);
            let bytes = encode(&meta).map_err(|e| storage_error("cannot encode", &path, e))?;
            replace(dir, &path, &bytes)?;
            // Only this worker writes the meta: nothing changed it meanwhile.
            *meta_high.lock().unwrap_or_else(|e| e.into_inner()) = meta;
            Ok(())
        })
    }
}
