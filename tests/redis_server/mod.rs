//! A `redis-server` of a test's own, on a free port of 127.0.0.1, in a
//! directory of its own; killed when dropped. Nothing else is talked to.

#![allow(dead_code)]

pub mod cluster;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How a server keeps its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Nothing on disk: a restart loses everything.
    None,
    /// An append-only file synced on every write.
    Always,
}

#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    /// Kills the server when this process ends in any way (a server kept in
    /// a `static` is never dropped): it waits on a pipe only this process
    /// writes to.
    watchdog: Option<Child>,
    pub port: u16,
    dir: PathBuf,
    durability: Durability,
    extra: Vec<String>,
}

/// A port of 127.0.0.1 nobody listens on, below the range the system hands
/// out to outgoing connections: a server killed and restarted on it cannot
/// find it taken meanwhile by one of the tests' own client sockets (a port
/// that `bind(0)` gave could be).
fn free_port() -> u16 {
    use std::hash::BuildHasher;
    let ephemeral = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    let (low, span) = (10_000_u16, ephemeral.saturating_sub(10_000).max(1));
    // Never the same port twice in this process (tests run in parallel).
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    let random = std::collections::hash_map::RandomState::new();
    for attempt in 0..10_000_u32 {
        let port = low + (random.hash_one(attempt) % u64::from(span)) as u16;
        if !given.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.push(port);
            return port;
        }
    }
    panic!("no free port on 127.0.0.1 from {low} to {ephemeral}");
}

impl RedisServer {
    pub fn start(durability: Durability) -> Self {
        Self::start_with(durability, &[])
    }

    pub fn start_with(durability: Durability, extra: &[&str]) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "contextkit-redis-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let mut server = Self {
            child: None,
            watchdog: None,
            port: free_port(),
            dir,
            durability,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--dir"])
            .arg(&self.dir)
            .args(["--protected-mode", "no"])
            // Its log, for the message of a server that does not start.
            .arg("--logfile")
            .arg(self.dir.join("redis.log"));
        match self.durability {
            Durability::None => cmd.args(["--appendonly", "no"]),
            Durability::Always => cmd.args(["--appendonly", "yes", "--appendfsync", "always"]),
        };
        cmd.args(&self.extra);
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (apt-get install redis-server; scripts/test.sh installs it)");
        let watchdog = Command::new("sh")
            .arg("-c")
            .arg(format!("read _; kill -9 {}", child.id()))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sh");
        self.child = Some(child);
        self.watchdog = Some(watchdog);
        self.wait_ready();
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.ping() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let log = std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(12).collect();
        panic!(
            "redis-server on port {} did not start; the end of its log:\n{}",
            self.port,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }

    fn ping(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        let mut buf = [0; 64];
        s.write_all(b"PING\r\n").is_ok()
            && s.read(&mut buf)
                .is_ok_and(|n| buf[..n].starts_with(b"+PONG"))
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// SIGKILL: no shutdown, no final save.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(mut watchdog) = self.watchdog.take() {
            drop(watchdog.stdin.take());
            let _ = watchdog.wait();
        }
    }

    /// Starts it again on the same port and directory.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Runs one command through `redis-cli` and returns its output.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
