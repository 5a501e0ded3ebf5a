//! The lock that keeps a storage directory to one `FileStorage` at a time,
//! Rust's or Node's: both implement the protocol below (the npm package in
//! wasm/npm/file-lock.cjs, step for step), so each refuses the other.
//!
//! # Protocol
//!
//! `contextkit.lock` exists in the directory while a storage holds it. It is
//! one line of JSON naming the holder,
//! `{"pid":…,"hostname":…,"processStart":…,"started":…,"nonce":…,"by":…}`:
//! the process id, the host's name (`os.hostname()` in Node), on Linux the
//! process's start time in clock ticks after boot (field 22 of
//! `/proc/<pid>/stat`; `null` elsewhere), when the lock was taken (ms since
//! the epoch), 32 random hex digits (so that no two lock files have the same
//! bytes), and which implementation wrote it.
//!
//! Taking the lock:
//! 1. Write the line to `contextkit.lock.<nonce>.tmp` and hard-link that file
//!    to `contextkit.lock`. link(2) fails if the name exists, atomically: at
//!    most one process creates the lock, and nobody ever sees it half written.
//! 2. If the lock exists, read it. Its holder is alive if it is on another
//!    host (which no process here can check: such a lock is never taken
//!    over), if it is this process and holds or is taking the lock (its nonce
//!    is registered here), or if its pid runs: on Linux `/proc/<pid>/stat`
//!    exists, is no zombie and shows the recorded start time (so a reused pid
//!    does not count); elsewhere the pid exists. Alive: `STORAGE`, naming the
//!    directory and the holder. A lock that does not parse (an empty file left
//!    by a contextkit before this protocol, which only flocked it, or a line
//!    lost in a machine crash) has no live holder.
//! 3. A lock without a live holder is stale: take it over (below) and go to 1.
//!
//! Releasing: remove `contextkit.lock` if it still holds this storage's line.
//! A storage releases it once closed (or dropped) and done with the file
//! work queued before; a killed process leaves it stale. An opener in this
//! process that finds the lock of a storage of this process that is closing
//! waits for it to be released and goes back to step 1, rather than failing.
//!
//! # Taking over a stale lock
//!
//! Removing the stale file is the delicate step: two processes that both saw
//! it stale must not both remove "the lock", since by the time the slower one
//! unlinks the name, the faster one may have put its own live lock there.
//! POSIX has no "unlink if unchanged", so the right to remove given lock bytes
//! is a claim: `contextkit.lock.claim-<16 hex digits of the SHA-256 of those
//! bytes>-<k>`, created by hard link as in step 1 (holding the claimer's line):
//! - Whoever creates claim `k` re-reads the lock, removes it only if it still
//!   has exactly the stale bytes, deletes its claim and goes back to step 1.
//! - If claim `k` exists and its claimer is alive (judged as in step 2), a
//!   takeover is under way: wait a moment and go back to step 1. If the
//!   claimer died (mid-takeover), try claim `k + 1`.
//!
//! Why this removes a stale lock `S` at most once, and never a live lock:
//! - Only two kinds of process unlink `contextkit.lock`: its holder, which
//!   for `S` is dead, and a process holding a claim on `S`'s bytes, which
//!   unlinks only after re-reading `S` there.
//! - While `S` is the lock, no claim on it is deleted: a claimer deletes its
//!   claim only after `S` is gone (it removed it, or found something else),
//!   and the clean-up below never touches claims on the current lock. So the
//!   claims on `S` form a chain `1, 2, …`, each created by one process
//!   (link is exclusive), `k + 1` only after the creator of `k` was seen dead,
//!   and death is final: at most one live process holds a claim on `S`.
//! - That process re-reads `S` and unlinks it; in between nobody else can
//!   unlink `S` (no other live claimer, a dead holder) and nobody can put a
//!   new lock in its place (the name is taken). So it removes exactly `S`.
//!   Then the name is free and step 1's link picks one winner among all.
//! - Lock bytes are unique (the nonce), so once `S` is gone it never comes
//!   back: a claimer that arrives late re-reads something else and leaves it.
//!
//! Clean-up, by a process that has just taken the lock: claims whose digits
//! are not those of its own lock concern locks that are gone for good and are
//! deleted; so are `contextkit.lock.*.tmp` files older than a minute (those of
//! processes killed mid-step; a live process uses its own for milliseconds).
//!
//! Limits: processes on different hosts (or containers) that share a
//! directory must have different host names; a lock of another host is
//! never taken over (the error names the file to remove once its process is
//! gone). The directory's file system must support hard links.

use super::{hex, storage_error, storage_fault};
use contextkit_core::{ContextError, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The lock file, in the storage directory.
pub(super) const LOCK: &str = "contextkit.lock";
/// How often taking the lock goes back to step 1 before it gives up.
const ROUNDS: u32 = 200;
/// How long to wait for a takeover under way.
const WAIT: Duration = Duration::from_millis(5);
/// Claims on one stale lock whose claimers all died: beyond this, give up.
const MAX_CLAIMS: u32 = 64;
/// Temporary files of the protocol older than this are left by dead processes.
const TEMP_AGE: Duration = Duration::from_secs(60);

/// Nonces of the locks this process holds or is taking, each with whether
/// its storage is closing.
static HELD: Mutex<BTreeMap<String, bool>> = Mutex::new(BTreeMap::new());
/// Notified whenever a lock leaves [`HELD`].
static RELEASED: Condvar = Condvar::new();

fn held() -> std::sync::MutexGuard<'static, BTreeMap<String, bool>> {
    HELD.lock().unwrap_or_else(|e| e.into_inner())
}

/// The line a lock file (or a claim) holds.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Holder {
    pid: u32,
    hostname: String,
    #[serde(default)]
    process_start: Option<u64>,
    #[serde(default)]
    started: u64,
    nonce: String,
    #[serde(default)]
    by: String,
}

impl Holder {
    fn me() -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        // Unique rather than secret: what no other lock file can have.
        let seed = format!(
            "{} {} {} {:?} {}",
            std::process::id(),
            now.as_nanos(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            thread::current().id(),
            hostname()
        );
        Self {
            pid: std::process::id(),
            hostname: hostname(),
            process_start: process_start(),
            started: u64::try_from(now.as_millis()).unwrap_or(u64::MAX),
            nonce: hex(&Sha256::digest(seed.as_bytes())[..16]),
            by: "contextkit (Rust)".into(),
        }
    }
}

/// A held directory lock; dropping it releases the directory.
pub(super) struct DirLock {
    path: PathBuf,
    bytes: Vec<u8>,
    nonce: String,
}

impl DirLock {
    /// Takes the lock of `dir` (which exists), or fails with `STORAGE`
    /// naming the directory and the holder.
    pub(super) fn acquire(dir: &Path) -> Result<Self> {
        let me = Holder::me();
        let mut bytes =
            serde_json::to_vec(&me).map_err(|e| storage_error("cannot lock", dir, e))?;
        bytes.push(b'\n');
        let path = dir.join(LOCK);
        let temp = dir.join(format!("{LOCK}.{}.tmp", me.nonce));
        held().insert(me.nonce.clone(), false);
        let taken = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
            .and_then(|mut f| f.write_all(&bytes))
            .map_err(|e| storage_error("cannot write in", dir, e))
            .and_then(|()| take(dir, &path, &temp));
        let _ = fs::remove_file(&temp);
        if let Err(e) = taken {
            held().remove(&me.nonce);
            return Err(e);
        }
        clean_up(dir, &bytes);
        Ok(Self {
            path,
            bytes,
            nonce: me.nonce,
        })
    }

    /// Its storage is closing: the lock goes once the storage's queued work
    /// is done, and an opener in this process waits for that instead of failing.
    pub(super) fn mark_closing(&self) {
        if let Some(closing) = held().get_mut(&self.nonce) {
            *closing = true;
        }
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        if fs::read(&self.path).is_ok_and(|b| b == self.bytes) {
            let _ = fs::remove_file(&self.path);
        }
        held().remove(&self.nonce);
        RELEASED.notify_all();
    }
}

fn in_use(dir: &Path, holder: &str) -> ContextError {
    storage_fault(
        "cannot open",
        dir,
        format!("in use by another FileStorage ({holder})"),
    )
}

/// Steps 1 to 3: `temp` holds this process's line.
fn take(dir: &Path, path: &Path, temp: &Path) -> Result<()> {
    let mut busy = String::new();
    for _ in 0..ROUNDS {
        match fs::hard_link(temp, path) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(storage_error("cannot lock", path, e)),
        }
        let stale = match fs::read(path) {
            Ok(bytes) => bytes,
            // Released meanwhile.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(storage_error("cannot read", path, e)),
        };
        if waited_for_closing(&stale) {
            continue;
        }
        if let Some(holder) = live(&stale, path) {
            return Err(in_use(dir, &holder));
        }
        if let Some(claimer) = take_over(dir, path, temp, &stale)? {
            busy = claimer;
            thread::sleep(WAIT);
        }
    }
    Err(in_use(dir, &format!("{busy}, taking it over")))
}

/// Removes the stale lock `stale` if this process gets the claim on it;
/// `Some(claimer)` if a live process is taking it over.
fn take_over(dir: &Path, path: &Path, temp: &Path, stale: &[u8]) -> Result<Option<String>> {
    let key = &hex(&Sha256::digest(stale))[..16];
    let mut k = 1;
    for _ in 0..ROUNDS {
        let claim = dir.join(format!("{LOCK}.claim-{key}-{k}"));
        match fs::hard_link(temp, &claim) {
            Ok(()) => {
                // The one live claimer of these bytes (see the module's argument).
                let removed = match fs::read(path) {
                    Ok(now) if now == stale => fs::remove_file(path),
                    _ => Ok(()),
                };
                let _ = fs::remove_file(&claim);
                return match removed {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => {
                        Err(storage_error("cannot remove the stale lock", path, e))
                    }
                    _ => Ok(None),
                };
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => match fs::read(&claim) {
                Ok(bytes) => match live(&bytes, &claim) {
                    Some(claimer) => return Ok(Some(claimer)),
                    None if k < MAX_CLAIMS => k += 1,
                    None => break,
                },
                // Its claimer is done: try the same claim again.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(storage_error("cannot read", &claim, e)),
            },
            Err(e) => return Err(storage_error("cannot lock", &claim, e)),
        }
    }
    Err(storage_fault(
        "cannot take over",
        path,
        format!("the claims on it (up to {LOCK}.claim-{key}-{k}) keep failing"),
    ))
}

/// Who holds a lock (or claim) with these bytes, if that process is alive
/// (step 2).
fn live(bytes: &[u8], path: &Path) -> Option<String> {
    let holder: Holder = serde_json::from_slice(bytes).ok()?;
    let who = format!("pid {} on {}", holder.pid, holder.hostname);
    if holder.hostname != hostname() {
        return Some(format!(
            "{who}, another host: remove {} once that process is gone",
            path.display()
        ));
    }
    if holder.pid == std::process::id() && holder.process_start == process_start() {
        return held()
            .contains_key(&holder.nonce)
            .then(|| format!("{who}, this process"));
    }
    running(holder.pid, holder.process_start).then_some(who)
}

/// If these lock bytes are those of a storage of this process that is
/// closing, waits until it released the lock and says so. Its workers finish
/// the work queued before on their own threads, so this ends.
fn waited_for_closing(bytes: &[u8]) -> bool {
    let Ok(holder) = serde_json::from_slice::<Holder>(bytes) else {
        return false;
    };
    if holder.pid != std::process::id()
        || holder.process_start != process_start()
        || holder.hostname != hostname()
    {
        return false;
    }
    let mut held = held();
    if held.get(&holder.nonce) != Some(&true) {
        return false;
    }
    while held.contains_key(&holder.nonce) {
        held = RELEASED.wait(held).unwrap_or_else(|e| e.into_inner());
    }
    true
}

/// Deletes what dead processes left of the protocol (see the module's docs);
/// `own` is the lock just taken.
fn clean_up(dir: &Path, own: &[u8]) {
    let own_claims = format!("claim-{}-", &hex(&Sha256::digest(own))[..16]);
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name
            .to_str()
            .and_then(|n| n.strip_prefix(LOCK)?.strip_prefix('.'))
        else {
            continue;
        };
        let garbage = if rest.starts_with("claim-") {
            !rest.starts_with(&own_claims)
        } else {
            rest.ends_with(".tmp")
                && entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > TEMP_AGE))
        };
        if garbage {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// This host's name, as Node's `os.hostname()` gives it.
#[cfg(target_os = "linux")]
fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim_end().to_owned())
        .unwrap_or_default()
}

/// This host's name, as Node's `os.hostname()` gives it.
#[cfg(not(target_os = "linux"))]
fn hostname() -> String {
    std::process::Command::new("uname")
        .arg("-n")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map(|s| s.trim_end().to_owned())
        .unwrap_or_default()
}

/// The state letter and the start time (clock ticks after boot) of process
/// `pid` (or `self`), from `/proc/<pid>/stat`.
#[cfg(target_os = "linux")]
fn proc_stat(pid: &str) -> io::Result<(String, u64)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // `pid (name) state ppid …`: the name may hold spaces and parentheses.
    let rest = text.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    match (fields.first(), fields.get(19).and_then(|s| s.parse().ok())) {
        (Some(state), Some(start)) => Ok(((*state).to_owned(), start)),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unexpected /proc/{pid}/stat"),
        )),
    }
}

/// This process's start time in clock ticks after boot.
#[cfg(target_os = "linux")]
fn process_start() -> Option<u64> {
    proc_stat("self").ok().map(|(_, start)| start)
}

/// Not known outside Linux.
#[cfg(not(target_os = "linux"))]
fn process_start() -> Option<u64> {
    None
}

/// Whether process `pid` runs, and started at `start` if that is known.
/// When it cannot tell, it says yes: a lock is never taken from a process
/// that may be alive.
#[cfg(target_os = "linux")]
fn running(pid: u32, start: Option<u64>) -> bool {
    match proc_stat(&pid.to_string()) {
        Ok((state, started)) => state != "Z" && state != "X" && start.is_none_or(|s| s == started),
        Err(e) => !(e.kind() == io::ErrorKind::NotFound && Path::new("/proc/self/stat").exists()),
    }
}

/// Whether process `pid` exists (`ps -p`).
#[cfg(all(unix, not(target_os = "linux")))]
fn running(pid: u32, _start: Option<u64>) -> bool {
    std::process::Command::new("ps")
        .args(["-p", &pid.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map_or(true, |s| s.success())
}

/// Not known here: every holder counts as alive.
#[cfg(not(unix))]
fn running(_pid: u32, _start: Option<u64>) -> bool {
    true
}
