//! [`FileStorage`]: one JSON file per context, replaced atomically.

use contextkit_core::{ContextError, Loaded, Meta, Record, Result, Storage, StorageFuture};
use sha2::{Digest, Sha256};
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;

/// Worker threads; each id always goes to the same one.
const WORKERS: usize = 4;

type Job = Box<dyn FnOnce() + Send>;

/// A [`Storage`] in a directory: one file per context, plus `meta.json`.
///
/// - A write goes to a temporary file, is fsynced, renamed over the old file,
///   and the directory is fsynced: after a crash a context file holds either
///   the old or the new record, never a torn one.
/// - File names are `ctx-<sha256 of the id>.json`: safe for any id (no path
///   traversal, no clash between ids that differ only in case or in characters
///   a file system rejects); the id itself is inside the file.
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
/// drop(opened);
/// let again = ContextManager::builder(ManagerConfig::default()).open(FileStorage::new(&dir)?).await?;
/// assert_eq!(again.manager.get_context("a").await?.data["x"], 1);
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok(()) }
/// ```
pub struct FileStorage {
    dir: Arc<PathBuf>,
    workers: Vec<mpsc::Sender<Job>>,
    /// The largest `next_snapshot_id` in `meta.json`. Meta writes run on one
    /// worker in issue order, but two deletes may issue theirs in the other
    /// order than they took their ids: a smaller one never overwrites a larger.
    meta_high: Arc<AtomicU64>,
}

impl fmt::Debug for FileStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileStorage")
            .field("dir", &self.dir)
            .finish()
    }
}

fn storage_error(what: &str, path: &Path, e: impl fmt::Display) -> ContextError {
    ContextError::Storage(format!("{what} {}: {e}", path.display()))
}

/// The file name of `id`.
fn file_name(id: &str) -> String {
    let digest = Sha256::digest(id.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("ctx-{hex}.json")
}

/// Writes `bytes` to `path` atomically and durably.
fn replace(dir: &Path, path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    let write = || -> io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    };
    write().map_err(|e| storage_error("cannot write", path, e))
}

/// The deepest nesting a record file can hold: data at the limit the core
/// accepts, inside a recovery point inside the record (four levels).
const RECORD_DEPTH: usize = contextkit_core::MAX_DEPTH + 4;

/// A record from its file's bytes. Data as deep as the core accepts is more
/// than serde_json's default recursion limit allows, so the depth is checked
/// first and the parser then runs without that limit.
fn parse_record(bytes: &[u8]) -> std::result::Result<Record, String> {
    if contextkit_core::json_depth(bytes) > RECORD_DEPTH {
        return Err(format!("nested deeper than {RECORD_DEPTH} levels"));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    de.disable_recursion_limit();
    let record = <Record as serde::Deserialize>::deserialize(&mut de).map_err(|e| e.to_string())?;
    de.end().map_err(|e| e.to_string())?;
    Ok(record)
}

fn read_record(path: &Path) -> Result<Record> {
    let bytes = fs::read(path).map_err(|e| storage_error("cannot read", path, e))?;
    let record =
        parse_record(&bytes).map_err(|e| storage_error("corrupt context file", path, e))?;
    let expected = file_name(&record.state.id);
    if path.file_name().and_then(|n| n.to_str()) != Some(expected.as_str()) {
        return Err(storage_error(
            "misplaced context file",
            path,
            format!("it holds '{}', whose file is {expected}", record.state.id),
        ));
    }
    Ok(record)
}

impl FileStorage {
    /// A storage in `dir`, created if missing.
    pub fn new(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir).map_err(|e| storage_error("cannot create", &dir, e))?;
        let workers = (0..WORKERS)
            .map(|i| {
                let (tx, rx) = mpsc::channel::<Job>();
                thread::Builder::new()
                    .name(format!("contextkit-files-{i}"))
                    .spawn(move || {
                        for job in rx {
                            job();
                        }
                    })
                    .map(|_| tx)
                    .map_err(|e| storage_error("cannot start a worker for", &dir, e))
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            dir: Arc::new(dir),
            workers,
            meta_high: Arc::new(AtomicU64::new(0)),
        })
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
        let queued = self.workers[worker].send(Box::new(move || {
            let _ = tx.send(job(&dir));
        }));
        Box::pin(async move {
            queued.map_err(|_| ContextError::Storage("file storage worker stopped".into()))?;
            rx.await
                .map_err(|_| ContextError::Storage("file storage worker stopped".into()))?
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
                if name.ends_with(".tmp") {
                    // A write that never reached its rename: not acknowledged.
                    let _ = fs::remove_file(&path);
                } else if name == "meta.json" {
                    match fs::read(&path).map(|b| serde_json::from_slice::<Meta>(&b)) {
                        Ok(Ok(meta)) => {
                            meta_high.fetch_max(meta.next_snapshot_id, Ordering::SeqCst);
                            loaded.meta = Some(meta);
                        }
                        Ok(Err(e)) => {
                            loaded
                                .problems
                                .push(storage_error("corrupt meta file", &path, e))
                        }
                        Err(e) => loaded.problems.push(storage_error("cannot read", &path, e)),
                    }
                } else if name.starts_with("ctx-") && name.ends_with(".json") {
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
            let bytes = serde_json::to_vec(&*record)
                .map_err(|e| storage_error("cannot encode", &path, e))?;
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
            if meta.next_snapshot_id <= meta_high.load(Ordering::SeqCst) {
                return Ok(());
            }
            let path = dir.join("meta.json");
            let bytes =
                serde_json::to_vec(&meta).map_err(|e| storage_error("cannot encode", &path, e))?;
            replace(dir, &path, &bytes)?;
            meta_high.store(meta.next_snapshot_id, Ordering::SeqCst);
            Ok(())
        })
    }
}
