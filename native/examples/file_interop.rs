//! The Rust half of the FileStorage interop test (js-tests/interop/): one
//! directory format and one lock for Rust and Node. Prints one JSON line per
//! result.
//!
//! Usage: `file_interop <command> <dir>`, with `<command>`:
//! - `write`: writes the Rust scenario (odd ids, exact big numbers, metadata,
//!   a TTL, recovery points, a restore, a deleted context) into a fresh
//!   directory; prints `{"view":…,"lastRevision":…}`.
//! - `write-and-hold`: the same, then holds the directory until stdin closes.
//! - `append`: creates the context `from-rust`; prints `{"state":…}`.
//! - `view`: prints `{"view":…}`: every live context with its recovery points,
//!   the next recovery-point id and the number of contexts.
//! - `check-bytes`: every context file and `meta.json` re-encoded from what
//!   it holds is byte for byte the file (the header's checksum included):
//!   prints `{"checked":<files>}`, or fails naming the first that differs.
//! - `open`: waits for a line on stdin, then opens the directory; prints
//!   `{"ok":true,"pid":…}` and holds it until stdin closes, or prints
//!   `{"ok":false,"code":…,"message":…}`.
//!
//! Run by `node --test js-tests/interop/file-interop.test.mjs`, which builds it.

use contextkit::{ContextManager, CreateOptions, FileStorage, ManagerConfig, Meta, Record, json};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::io::{BufRead, Read};
use std::path::Path;

fn config() -> ManagerConfig {
    ManagerConfig {
        max_recovery_points: 3,
        ..ManagerConfig::default()
    }
}

async fn open(dir: &Path) -> contextkit::Result<ContextManager> {
    let opened = ContextManager::builder(config())
        .open(FileStorage::new(dir)?)
        .await?;
    if let Some(problem) = opened.problems.first() {
        return Err(problem.clone());
    }
    Ok(opened.manager)
}

/// What a manager shows, as the Node side computes it too.
async fn view(m: &ContextManager) -> contextkit::Result<Value> {
    let mut contexts = Vec::new();
    for id in m.list_context_ids().await {
        let state = m.get_context(&id).await?;
        let snapshots = m.recovery_points(&id).await?;
        contexts.push(json!({ "state": *state, "points": snapshots }));
    }
    Ok(json!({
        "contexts": contexts,
        "nextRecoveryPointId": m.next_recovery_point_id(),
        "len": m.len().await,
    }))
}

/// The Rust scenario; returns the revision of its last commit.
async fn write(m: &ContextManager) -> contextkit::Result<u64> {
    let mut events = m.subscribe();
    let ids = [
        "a/b",
        "..",
        "../../etc/passwd",
        "ünï/cødé 🎉",
        "A",
        "a",
        "e\u{301}",
        "\u{e9}",
        "con",
        "C:\\x*?\"<>|",
    ];
    for (n, id) in ids.iter().enumerate() {
        m.create_context(id, json!({ "n": n, "id": id })).await?;
    }
    let metadata = [("owner", "ünï"), ("key/with/slash", "v"), ("", "empty key")]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .into();
    let numbers = json!({
        "big": 12345678901234567890_u64,
        "negative": -1234567890123456789_i64,
        "small": 0.1,
        "third": 1.0 / 3.0,
        "huge": 1.5e300,
        "tiny": 5e-324,
        "zero": 0,
        "float": 2.0,
        "text": "línea\n\"quoted\" \\ \u{1F389} \u{0}",
        "nested": { "list": [1, "two", null, true, { "x": 1e21 }], "empty": {} },
    });
    let opts = CreateOptions {
        ttl_ms: Some(3_600_000),
        metadata,
    };
    m.create_context_with("numbers", numbers.clone(), opts)
        .await?;
    let first = m.create_recovery_point("numbers").await?;
    let mut second = numbers.clone();
    second["big"] = json!(18446744073709551615_u64);
    m.update_context("numbers", second, None).await?;
    m.create_recovery_point("numbers").await?;
    m.update_context("numbers", json!({ "replaced": true }), None)
        .await?;
    m.restore_recovery_point("numbers", first.id).await?;
    m.create_context("gone", json!({ "soon": "deleted" }))
        .await?;
    m.create_recovery_point("gone").await?;
    m.delete_context("gone").await?;
    let mut last = 0;
    while let Some(event) = events.try_next() {
        last = last.max(event.revision().unwrap_or(0));
    }
    Ok(last)
}

/// Checks that `path` holds exactly `contextkit <sha256>\n` + the JSON that
/// serde_json writes for what it holds.
fn check_file<T: serde::de::DeserializeOwned + serde::Serialize>(
    path: &Path,
) -> Result<(), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let json = bytes
        .get(76..)
        .ok_or_else(|| format!("{}: too short", path.display()))?;
    let value: T = serde_json::from_slice(json).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut expected = serde_json::to_vec(&value).map_err(|e| e.to_string())?;
    let digest: String = Sha256::digest(&expected)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut file = format!("contextkit {digest}\n").into_bytes();
    file.append(&mut expected);
    if file == bytes {
        Ok(())
    } else {
        Err(format!(
            "{} is not what Rust writes for what it holds:\n{}\n{}",
            path.display(),
            String::from_utf8_lossy(&bytes),
            String::from_utf8_lossy(&file)
        ))
    }
}

fn check_bytes(dir: &Path) -> Result<usize, String> {
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).map_err(|e| e.to_string())? {
        let path = entry.map_err(|e| e.to_string())?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name == "meta.json" {
            check_file::<Meta>(&path)?;
        } else if name.starts_with("ctx-") && name.ends_with(".json") {
            check_file::<Record>(&path)?;
        } else {
            continue;
        }
        checked += 1;
    }
    Ok(checked)
}

fn print(value: Value) {
    println!("{value}");
}

/// Blocks until stdin closes.
fn hold() {
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [command, dir] = args.as_slice() else {
        eprintln!("usage: file_interop <write|write-and-hold|append|view|check-bytes|open> <dir>");
        std::process::exit(2);
    };
    let dir = Path::new(dir);
    let outcome: Result<(), String> = async {
        match command.as_str() {
            "write" | "write-and-hold" => {
                let m = open(dir).await.map_err(|e| e.to_string())?;
                let last = write(&m).await.map_err(|e| e.to_string())?;
                let view = view(&m).await.map_err(|e| e.to_string())?;
                print(json!({ "view": view, "lastRevision": last }));
                if command == "write-and-hold" {
                    hold();
                }
            }
            "append" => {
                let m = open(dir).await.map_err(|e| e.to_string())?;
                let s = m
                    .create_context("from-rust", json!({ "big": 12345678901234567890_u64 }))
                    .await
                    .map_err(|e| e.to_string())?;
                print(json!({ "state": *s }));
            }
            "view" => {
                let m = open(dir).await.map_err(|e| e.to_string())?;
                print(json!({ "view": view(&m).await.map_err(|e| e.to_string())? }));
            }
            "check-bytes" => print(json!({ "checked": check_bytes(dir)? })),
            "open" => {
                let mut line = String::new();
                let _ = std::io::stdin().lock().read_line(&mut line);
                match FileStorage::new(dir) {
                    Ok(storage) => {
                        print(json!({ "ok": true, "pid": std::process::id() }));
                        hold();
                        drop(storage);
                    }
                    Err(e) => {
                        print(json!({ "ok": false, "code": e.code(), "message": e.to_string() }))
                    }
                }
            }
            other => return Err(format!("unknown command {other}")),
        }
        Ok(())
    }
    .await;
    if let Err(e) = outcome {
        eprintln!("file_interop {command}: {e}");
        std::process::exit(1);
    }
}
