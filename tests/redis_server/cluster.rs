//! A 3-primary Redis Cluster of a test's own: three `redis-server
//! --cluster-enabled yes` on free ports of 127.0.0.1, each in a directory of
//! its own, joined by `redis-cli --cluster create`; killed when dropped.
//! Nothing but these three addresses is talked to.

use super::free_port;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A reply of Redis (RESP2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Status(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Vec<Reply>),
}

impl Reply {
    fn read(r: &mut impl BufRead) -> std::io::Result<Self> {
        let mut line = String::new();
        r.read_line(&mut line)?;
        let line = line.trim_end_matches("\r\n");
        let (kind, rest) = line.split_at(1.min(line.len()));
        let bad = || std::io::Error::other(format!("a RESP line {line:?}"));
        let n = || rest.parse::<i64>().map_err(|_| bad());
        Ok(match kind {
            "+" => Reply::Status(rest.to_owned()),
            "-" => Reply::Error(rest.to_owned()),
            ":" => Reply::Int(n()?),
            "$" if n()? < 0 => Reply::Bulk(None),
            "$" => {
                let mut data = vec![0; usize::try_from(n()?).map_err(|_| bad())? + 2];
                r.read_exact(&mut data)?;
                data.truncate(data.len() - 2);
                Reply::Bulk(Some(data))
            }
            "*" if n()? < 0 => Reply::Bulk(None),
            "*" => Reply::Array(
                (0..n()?)
                    .map(|_| Reply::read(r))
                    .collect::<std::io::Result<_>>()?,
            ),
            _ => return Err(bad()),
        })
    }

    /// The elements of an array reply.
    pub fn items(&self) -> &[Reply] {
        match self {
            Reply::Array(items) => items,
            _ => &[],
        }
    }

    /// A bulk or status reply as text.
    pub fn text(&self) -> String {
        match self {
            Reply::Bulk(Some(b)) => String::from_utf8_lossy(b).into_owned(),
            Reply::Status(s) | Reply::Error(s) => s.clone(),
            Reply::Int(n) => n.to_string(),
            _ => String::new(),
        }
    }
}

/// One node of the cluster.
#[derive(Debug)]
pub struct Node {
    child: Option<Child>,
    pub port: u16,
    dir: PathBuf,
    /// Its cluster node id.
    pub id: String,
}

impl Node {
    /// A node on free ports (client and cluster bus); tried again on other
    /// ports if it could not bind them (another process took them first).
    fn start() -> Self {
        for _ in 0..5 {
            if let Some(node) = Self::try_start() {
                return node;
            }
        }
        panic!("redis-server --cluster-enabled yes did not start in 5 tries");
    }

    fn try_start() -> Option<Self> {
        let (port, bus) = (free_port(), free_port());
        let dir = std::env::temp_dir().join(format!(
            "contextkit-redis-cluster-{}-{port}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--cluster-enabled", "yes"])
            // The bus port explicitly: port + 10,000 may be taken or over 65,535.
            .args(["--cluster-port", &bus.to_string()])
            .args(["--cluster-config-file", "nodes.conf"])
            .args(["--save", "", "--appendonly", "no"])
            .args(["--protected-mode", "no"])
            .arg("--dir")
            .arg(&dir)
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (apt-get install redis-server; scripts/test.sh installs it)");
        let mut node = Self {
            child: Some(child),
            port,
            dir,
            id: String::new(),
        };
        if !node.wait_ready() {
            return None; // dropped: killed, directory removed
        }
        node.id = node.command_ok(&["CLUSTER", "MYID"]).text();
        assert_eq!(node.id.len(), 40, "a node id from port {port}");
        Some(node)
    }

    /// Whether it answers PING; false once it has exited.
    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let exited = self
                .child
                .as_mut()
                .is_none_or(|c| !matches!(c.try_wait(), Ok(None)));
            if exited {
                return false;
            }
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
                let mut buf = [0; 64];
                if s.write_all(b"PING\r\n").is_ok()
                    && s.read(&mut buf)
                        .is_ok_and(|n| buf[..n].starts_with(b"+PONG"))
                {
                    // Ours, not another server that had the port: still running.
                    return self
                        .child
                        .as_mut()
                        .is_some_and(|c| matches!(c.try_wait(), Ok(None)));
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server on port {} did not start", self.port);
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Runs one command on this node (no redirection following) over a
    /// connection of its own.
    pub fn command<A: AsRef<[u8]>>(&self, args: &[A]) -> Reply {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            let a = a.as_ref();
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("a cluster node");
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s.write_all(&out).unwrap();
        Reply::read(&mut BufReader::new(s)).expect("a reply")
    }

    /// Like [`command`](Self::command), but an error reply panics.
    fn command_ok<A: AsRef<[u8]>>(&self, args: &[A]) -> Reply {
        let reply = self.command(args);
        if let Reply::Error(e) = &reply {
            let args: Vec<_> = args
                .iter()
                .map(|a| String::from_utf8_lossy(a.as_ref()).into_owned())
                .collect();
            panic!("port {}: {args:?} answered {e}", self.port);
        }
        reply
    }

    /// The slots this node serves, as it sees itself.
    fn own_slots(&self) -> Vec<(u16, u16)> {
        let nodes = self.command(&["CLUSTER", "NODES"]).text();
        let Some(me) = nodes.lines().find(|l| l.contains("myself")) else {
            return Vec::new();
        };
        me.split_whitespace()
            .skip(8)
            .filter(|r| !r.starts_with('['))
            .filter_map(|r| match r.split_once('-') {
                Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                None => r.parse().ok().map(|s| (s, s)),
            })
            .collect()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// How [`RedisCluster::move_slot_with`] moves a slot.
#[derive(Debug, Clone)]
pub struct Resharding {
    /// Keys per `MIGRATE` (10 by default, as `redis-cli --cluster reshard`).
    pub batch: usize,
    /// Keys held back until the final batch.
    pub last: Vec<String>,
    /// Keys moved on their own before any other.
    pub first: Vec<String>,
    /// How long to wait once every key is at the target, before `SETSLOT
    /// NODE` ends the migration (meanwhile the source answers ASK).
    pub pause: Duration,
}

impl Default for Resharding {
    fn default() -> Self {
        Self {
            batch: 10,
            last: Vec::new(),
            first: Vec::new(),
            pause: Duration::ZERO,
        }
    }
}

/// Three primaries sharing the 16,384 slots, no replicas.
///
/// A cluster kept in a `static` is never dropped: a watchdog shell holds
/// the read end of a pipe this process writes to, and kills the three
/// servers (by process id) and removes their directories when that pipe
/// closes, i.e. when this process ends in any way.
#[derive(Debug)]
pub struct RedisCluster {
    pub nodes: Vec<Node>,
    watchdog: Option<Child>,
}

impl RedisCluster {
    pub fn start() -> Self {
        let nodes: Vec<Node> = (0..3).map(|_| Node::start()).collect();
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli");
        assert!(
            out.status.success(),
            "redis-cli --cluster create: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let pids: Vec<String> = nodes
            .iter()
            .filter_map(|n| n.child.as_ref().map(|c| c.id().to_string()))
            .collect();
        let watchdog = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "read _; kill -9 {}; rm -rf -- \"$@\"",
                pids.join(" ")
            ))
            .arg("sh")
            .args(nodes.iter().map(|n| &n.dir))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sh");
        let cluster = Self {
            nodes,
            watchdog: Some(watchdog),
        };
        cluster.wait_ok();
        cluster
    }

    /// Waits until every node says `cluster_state:ok` and agrees on who
    /// serves every slot.
    fn wait_ok(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ok = self.nodes.iter().all(|n| {
                n.command(&["CLUSTER", "INFO"])
                    .text()
                    .contains("cluster_state:ok")
            });
            let served: usize = self
                .nodes
                .iter()
                .flat_map(Node::own_slots)
                .map(|(a, b)| usize::from(b - a) + 1)
                .sum();
            if ok && served == 16_384 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the cluster did not reach cluster_state:ok"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(Node::url).collect()
    }

    /// The hash slot of `key`.
    pub fn keyslot(&self, key: &str) -> u16 {
        match self.nodes[0].command(&["CLUSTER", "KEYSLOT", key]) {
            Reply::Int(n) => u16::try_from(n).expect("a slot"),
            other => panic!("CLUSTER KEYSLOT {key}: {other:?}"),
        }
    }

    /// The index of the node that serves `slot`, as that node sees itself.
    pub fn owner(&self, slot: u16) -> usize {
        self.nodes
            .iter()
            .position(|n| n.own_slots().iter().any(|&(a, b)| a <= slot && slot <= b))
            .unwrap_or_else(|| panic!("no node serves slot {slot}"))
    }

    /// The index of the node that serves the slot of `key`.
    pub fn owner_of(&self, key: &str) -> usize {
        self.owner(self.keyslot(key))
    }

    /// Moves `slot` to node `to` while clients keep using it: the manual
    /// resharding procedure (`SETSLOT IMPORTING` on the target, `MIGRATING`
    /// on the source, `MIGRATE` of its keys in batches of 10, then `SETSLOT
    /// NODE` on the target, the source and the other node). Returns how many
    /// keys moved.
    pub fn move_slot(&self, slot: u16, to: usize) -> usize {
        self.move_slot_with(slot, to, &Resharding::default())
    }

    /// [`move_slot`](Self::move_slot) with its details chosen.
    pub fn move_slot_with(&self, slot: u16, to: usize, how: &Resharding) -> usize {
        let (batch, last) = (how.batch.max(1), &how.last);
        let from = self.owner(slot);
        if from == to {
            return 0;
        }
        let (src, dst) = (&self.nodes[from], &self.nodes[to]);
        let s = slot.to_string();
        dst.command_ok(&["CLUSTER", "SETSLOT", &s, "IMPORTING", &src.id]);
        src.command_ok(&["CLUSTER", "SETSLOT", &s, "MIGRATING", &dst.id]);
        let port = dst.port.to_string();
        let last: Vec<&[u8]> = last.iter().map(|k| k.as_bytes()).collect();
        let mut moved = 0;
        if !how.first.is_empty() {
            let mut args: Vec<&[u8]> = ["MIGRATE", "127.0.0.1", &port, "", "0", "5000", "KEYS"]
                .iter()
                .map(|a| a.as_bytes())
                .collect();
            args.extend(how.first.iter().map(|k| k.as_bytes()));
            let out = src.command(&args);
            assert!(
                matches!(&out, Reply::Status(s) if s == "OK" || s == "NOKEY"),
                "MIGRATE of the first keys of slot {slot}: {out:?}"
            );
            moved += how.first.len();
        }
        loop {
            // Ask for more than a batch so that the held-back keys do not
            // hide the others.
            let want = (batch + last.len()).to_string();
            let listed = src.command_ok(&["CLUSTER", "GETKEYSINSLOT", &s, &want]);
            let keys: Vec<&[u8]> = listed
                .items()
                .iter()
                .filter_map(|k| match k {
                    Reply::Bulk(Some(k)) => Some(k.as_slice()),
                    _ => None,
                })
                .collect();
            if keys.is_empty() {
                break;
            }
            let others: Vec<&[u8]> = keys
                .iter()
                .copied()
                .filter(|k| !last.contains(k))
                .take(batch)
                .collect();
            let chunk = if others.is_empty() { keys } else { others };
            let mut args: Vec<&[u8]> = ["MIGRATE", "127.0.0.1", &port, "", "0", "5000", "KEYS"]
                .iter()
                .map(|a| a.as_bytes())
                .collect();
            args.extend(chunk.iter().copied());
            let out = src.command(&args);
            assert!(
                matches!(&out, Reply::Status(s) if s == "OK" || s == "NOKEY"),
                "MIGRATE of {} keys of slot {slot}: {out:?}",
                chunk.len()
            );
            moved += chunk.len();
        }
        // Every key is at the target, the slot still migrating: the source
        // answers ASK for all of them.
        std::thread::sleep(how.pause);
        // The target first, so that the source's MOVED never points to a
        // node that does not know it serves the slot yet.
        dst.command_ok(&["CLUSTER", "SETSLOT", &s, "NODE", &dst.id]);
        src.command_ok(&["CLUSTER", "SETSLOT", &s, "NODE", &dst.id]);
        for (i, n) in self.nodes.iter().enumerate() {
            if i != from && i != to {
                n.command_ok(&["CLUSTER", "SETSLOT", &s, "NODE", &dst.id]);
            }
        }
        assert_eq!(self.owner(slot), to, "slot {slot} moved");
        moved
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        // The nodes are killed and reaped by their own drop: the watchdog
        // goes first, so that it never kills a reused process id.
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
    }
}
