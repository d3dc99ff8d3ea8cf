//! A real Redis Cluster on loopback for tests: three masters, each with a
//! replica (six `redis-server --cluster-enabled yes`, joined by `redis-cli
//! --cluster create`), in a temp dir, SIGKILLed and removed on drop.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::process::{Process, free_port};
use crate::wait_for;

/// Three masters and three replicas.
pub struct RedisCluster {
    pub nodes: Vec<ClusterNode>,
    dir: PathBuf,
}

pub struct ClusterNode {
    pub port: u16,
    args: Vec<String>,
    process: Option<Process>,
}

impl ClusterNode {
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// SIGKILL: the node is gone, as a crashed machine is.
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    /// Starts it again on its port and directory (its `nodes.conf`): it
    /// rejoins the cluster, as a replica if another took its place.
    pub fn restart(&mut self) {
        self.kill();
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        self.process = Some(Process::spawn(PathBuf::from("redis-server"), &args, &[], self.port));
    }
}

/// `redis-cli -p port args...`, its output.
pub fn cli(port: u16, args: &[&str]) -> String {
    let output = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .expect("cannot run redis-cli");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

impl RedisCluster {
    pub async fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("hookline-cluster-{}", uuid::Uuid::new_v4().simple()));
        let mut nodes = Vec::new();
        for _ in 0..6 {
            // The cluster bus listens on port + 10000: both must be free.
            let port = loop {
                let port = free_port();
                if std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
                    break port;
                }
            };
            let node_dir = dir.join(port.to_string());
            std::fs::create_dir_all(&node_dir).unwrap();
            let args: Vec<String> = [
                "--bind",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--dir",
                &node_dir.to_string_lossy(),
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "1000",
                "--save",
                "",
                "--appendonly",
                "no",
            ]
            .map(str::to_owned)
            .to_vec();
            let mut node = ClusterNode {
                port,
                args,
                process: None,
            };
            node.restart();
            nodes.push(node);
        }
        for node in &nodes {
            wait_for(Duration::from_secs(20), "a cluster node to answer", || async {
                (cli(node.port, &["ping"]).trim() == "PONG").then_some(())
            })
            .await;
        }
        let addresses: Vec<String> = nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect();
        let created = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .expect("cannot run redis-cli --cluster create");
        assert!(
            created.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&created.stdout)
        );
        let cluster = Self { nodes, dir };
        for node in &cluster.nodes {
            wait_for(
                Duration::from_secs(30),
                "the cluster to be ok on every node",
                || async {
                    cli(node.port, &["cluster", "info"])
                        .contains("cluster_state:ok")
                        .then_some(())
                },
            )
            .await;
        }
        cluster
    }

    /// `REDIS_URL` for the cluster: every node, comma-separated.
    pub fn url(&self) -> String {
        self.nodes.iter().map(ClusterNode::url).collect::<Vec<_>>().join(",")
    }

    /// The port of the master that serves `key` now.
    pub fn master_of(&self, key: &str) -> u16 {
        let alive = self.nodes.iter().find(|n| n.process.is_some()).expect("a node alive");
        let slot: u16 = cli(alive.port, &["cluster", "keyslot", key]).trim().parse().unwrap();
        for line in cli(alive.port, &["cluster", "nodes"]).lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 9 || !fields[2].contains("master") || fields[2].contains("fail") {
                continue;
            }
            let owns = fields[8..].iter().any(|range| match range.split_once('-') {
                Some((low, high)) => (low.parse::<u16>().unwrap()..=high.parse::<u16>().unwrap()).contains(&slot),
                None => range.parse::<u16>().ok() == Some(slot),
            });
            if owns {
                let port = fields[1].split(['@', ':']).nth(1).unwrap();
                return port.parse().unwrap();
            }
        }
        panic!("no master serves slot {slot}");
    }

    /// The keys each master holds (`DBSIZE`), by port.
    pub fn keys_per_master(&self) -> Vec<(u16, u64)> {
        self.nodes
            .iter()
            .filter(|n| n.process.is_some() && cli(n.port, &["role"]).starts_with("master"))
            .map(|n| (n.port, cli(n.port, &["dbsize"]).trim().parse().unwrap_or(0)))
            .collect()
    }

    /// Moves the slot of `key` from its master to the master on `to`, the
    /// way `redis-cli --cluster reshard` does (IMPORTING on the target,
    /// MIGRATING on the source, MIGRATE, then the new owner announced to
    /// every master), holding each state for `pause` so clients meet it.
    /// The keys go in one MIGRATE (all or none: see "Redis Cluster and
    /// partitions" in docs/operations.md). Returns how many keys moved.
    pub async fn move_slot(&self, key: &str, to: u16, pause: Duration) -> usize {
        let from = self.master_of(key);
        assert_ne!(from, to, "the slot is on {to} already");
        let slot = cli(from, &["cluster", "keyslot", key]).trim().to_owned();
        let id = |port: u16| cli(port, &["cluster", "myid"]).trim().to_owned();
        let (from_id, to_id) = (id(from), id(to));
        let ok = |port: u16, args: &[&str]| {
            let out = cli(port, args);
            assert!(out.trim() == "OK", "{args:?} on {port}: {out}");
        };
        ok(to, &["cluster", "setslot", &slot, "importing", &from_id]);
        ok(from, &["cluster", "setslot", &slot, "migrating", &to_id]);
        tokio::time::sleep(pause).await;
        let listed = cli(from, &["cluster", "getkeysinslot", &slot, "1000000"]);
        let keys: Vec<&str> = listed.lines().filter(|k| !k.is_empty()).collect();
        if !keys.is_empty() {
            let to_port = to.to_string();
            let mut args = vec!["migrate", "127.0.0.1", &to_port, "", "0", "30000", "KEYS"];
            args.extend(&keys);
            ok(from, &args);
        }
        tokio::time::sleep(pause).await;
        ok(to, &["cluster", "setslot", &slot, "node", &to_id]);
        ok(from, &["cluster", "setslot", &slot, "node", &to_id]);
        for node in self.nodes.iter().filter(|n| n.process.is_some()) {
            if ![from, to].contains(&node.port) && cli(node.port, &["role"]).starts_with("master") {
                ok(node.port, &["cluster", "setslot", &slot, "node", &to_id]);
            }
        }
        keys.len()
    }

    /// The ports of the masters now.
    pub fn masters(&self) -> Vec<u16> {
        self.keys_per_master().into_iter().map(|(port, _)| port).collect()
    }

    pub fn node(&mut self, port: u16) -> &mut ClusterNode {
        self.nodes
            .iter_mut()
            .find(|n| n.port == port)
            .expect("a node on that port")
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
