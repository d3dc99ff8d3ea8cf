//! A Redis key prefix per test, its keys deleted afterwards.

use std::collections::BTreeMap;

use crate::{env, unique};

/// A prefix's keys and their memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Footprint {
    pub keys: usize,
    pub bytes: u64,
}

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
    /// A connection of the test's own, patient with a busy machine (the
    /// default answer deadline is short for reads over many keys).
    pub async fn connection(&self) -> redis::aio::MultiplexedConnection {
        let config = redis::AsyncConnectionConfig::new().set_response_timeout(Some(std::time::Duration::from_secs(30)));
        redis::Client::open(self.url.as_str())
            .unwrap()
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .unwrap()
    }

    async fn keys(&self, conn: &mut redis::aio::MultiplexedConnection) -> Vec<String> {
        // `{prefix}:…`, and `{prefix:k}:…` of a partitioned queue.
        let pattern = format!("{{{}[}}:]*", self.prefix);
        let mut keys: Vec<String> = redis::cmd("KEYS").arg(pattern).query_async(conn).await.unwrap();
        keys.sort();
        keys
    }

    /// How many keys this prefix has, and the bytes Redis says they take
    /// (`MEMORY USAGE`, summed): this prefix's share of a shared server.
    pub async fn footprint(&self) -> Footprint {
        let mut conn = self.connection().await;
        let keys = self.keys(&mut conn).await;
        let mut bytes = 0;
        for chunk in keys.chunks(1000) {
            let mut pipe = redis::pipe();
            for key in chunk {
                pipe.cmd("MEMORY").arg("USAGE").arg(key);
            }
            let sizes: Vec<Option<u64>> = pipe.query_async(&mut conn).await.unwrap();
            bytes += sizes.into_iter().flatten().sum::<u64>();
        }
        Footprint {
            keys: keys.len(),
            bytes,
        }
    }

    /// Jobs per state under this prefix, as the help desk counts them.
    pub async fn queue_depth(&self) -> helpdesk::store::QueueDepth {
        let limits = helpdesk::store::EndpointLimits::default();
        let store = helpdesk::store::Store::connect(&self.url, &self.prefix, limits)
            .await
            .unwrap();
        store.depth().await.unwrap()
    }

    /// Every key of this prefix with its content, to prove a request changed nothing.
    pub async fn snapshot(&self) -> BTreeMap<String, Vec<String>> {
        let mut conn = self.connection().await;
        let mut snapshot = BTreeMap::new();
        // The queue's layout (its partition count, each partition's anchor)
        // is written when a help desk starts: it is not anything stored.
        let layout = |key: &str| key.ends_with("}:partition") || key.ends_with("}:partition-count");
        for key in self.keys(&mut conn).await.into_iter().filter(|key| !layout(key)) {
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
