//! A Redis key prefix per test, its keys deleted afterwards.

use std::collections::BTreeMap;

use crate::{env, unique};

/// A Redis key prefix of its own, whose keys are deleted when this goes out of scope.
pub struct TestRedis {
    pub url: String,
    pub prefix: String,
}

impl Default for TestRedis {
    fn default() -> Self {
        Self {
            url: env("REDIS_URL"),
            prefix: unique("test"),
        }
    }
}

impl TestRedis {
    pub async fn connection(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    async fn keys(&self, conn: &mut redis::aio::MultiplexedConnection) -> Vec<String> {
        let pattern = format!("{{{}}}:*", self.prefix);
        let mut keys: Vec<String> = redis::cmd("KEYS").arg(pattern).query_async(conn).await.unwrap();
        keys.sort();
        keys
    }

    /// Jobs per state under this prefix, as the help desk counts them.
    pub async fn queue_depth(&self) -> helpdesk::queue::QueueDepth {
        let limits = helpdesk::queue::EndpointLimits::default();
        let queue = helpdesk::queue::Queue::connect(&self.url, &self.prefix, limits)
            .await
            .unwrap();
        queue.depth().await.unwrap()
    }

    /// Every key of this prefix with its content, to prove a request changed nothing.
    pub async fn snapshot(&self) -> BTreeMap<String, Vec<String>> {
        let mut conn = self.connection().await;
        let mut snapshot = BTreeMap::new();
        for key in self.keys(&mut conn).await {
            let kind: String = redis::cmd("TYPE").arg(&key).query_async(&mut conn).await.unwrap();
            let mut content: Vec<String> = match kind.as_str() {
                "hash" => redis::cmd("HGETALL").arg(&key).query_async(&mut conn).await.unwrap(),
                "zset" => redis::cmd("ZRANGE")
                    .arg(&key)
                    .arg(0)
                    .arg(-1)
                    .arg("WITHSCORES")
                    .query_async(&mut conn)
                    .await
                    .unwrap(),
                other => vec![other.to_owned()],
            };
            content.insert(0, kind);
            snapshot.insert(key, content);
        }
        snapshot
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        let (url, pattern) = (self.url.clone(), format!("{{{}}}:*", self.prefix));
        let _ = std::thread::spawn(move || {
            let Ok(client) = redis::Client::open(url.as_str()) else {
                return;
            };
            let Ok(mut conn) = client.get_connection() else {
                return;
            };
            let keys: Vec<String> = redis::cmd("KEYS").arg(pattern).query(&mut conn).unwrap_or_default();
            if !keys.is_empty() {
                let _: Result<(), _> = redis::cmd("DEL").arg(keys).query(&mut conn);
            }
        })
        .join();
    }
}
