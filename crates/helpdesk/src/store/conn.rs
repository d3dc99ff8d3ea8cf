//! The store's connection to Redis: one server (`redis://host:port`), or a
//! Redis Cluster when `REDIS_URL` lists several nodes, comma-separated
//! (`redis://10.0.0.1:6379,redis://10.0.0.2:6379`): the cluster client
//! learns the slot map from any of them, follows `MOVED` and `ASK`
//! redirections, and refreshes its map through failovers and resharding.
//!
//! Every key of the store carries one hash tag (`{prefix}`), so every script
//! and pipeline touches a single slot: the cluster routes each to the
//! master that owns it, and the scripts stay atomic as on one server.

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, RedisResult, Value};

/// How long connecting, and waiting for one answer, may take.
const TIMEOUT: Duration = Duration::from_secs(5);

/// A connection to one Redis server or to a Redis Cluster; cheap to clone
/// (every clone shares the same multiplexed connections).
#[derive(Clone)]
pub enum RedisConnection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl std::fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Single(_) => "RedisConnection::Single",
            Self::Cluster(_) => "RedisConnection::Cluster",
        })
    }
}

impl RedisConnection {
    /// Connects to `redis_url`: a cluster when it lists several nodes.
    pub async fn connect(redis_url: &str) -> RedisResult<Self> {
        let nodes: Vec<&str> = redis_url.split(',').map(str::trim).filter(|n| !n.is_empty()).collect();
        if nodes.len() > 1 {
            let client = ClusterClientBuilder::new(nodes)
                .connection_timeout(TIMEOUT)
                .response_timeout(TIMEOUT)
                .retries(6)
                .build()?;
            return Ok(Self::Cluster(client.get_async_connection().await?));
        }
        let client = redis::Client::open(redis_url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(2));
        Ok(Self::Single(ConnectionManager::new_with_config(client, config).await?))
    }
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(conn) => conn.req_packed_command(cmd),
            Self::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(conn) => conn.req_packed_commands(pipeline, offset, count),
            Self::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(conn) => conn.get_db(),
            Self::Cluster(conn) => conn.get_db(),
        }
    }
}
