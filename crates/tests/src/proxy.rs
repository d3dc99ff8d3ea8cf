//! A TCP proxy that loses answers: each request reaches the server behind
//! it whole, and the server's answer to the first few is read and thrown
//! away, the client's connection closed — the request was taken, the
//! client never hears so (a network cut, a crash between storing and
//! answering, a load balancer's timeout).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub struct AnswerCutter {
    /// `http://127.0.0.1:<port>`, in front of the upstream.
    pub url: String,
    /// Answers still to throw away.
    left: Arc<AtomicUsize>,
    /// Answers thrown away so far.
    cut: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl AnswerCutter {
    /// In front of `upstream` (`host:port`), losing the answers of the first
    /// `cut` connections.
    pub async fn start(upstream: String, cut: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let left = Arc::new(AtomicUsize::new(cut));
        let counted = Arc::new(AtomicUsize::new(0));
        let (left_task, counted_task) = (left.clone(), counted.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(&upstream).await else {
                    continue;
                };
                let lose = left_task
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok();
                let counted = counted_task.clone();
                tokio::spawn(async move {
                    if lose {
                        lose_answer(client, server).await;
                        counted.fetch_add(1, Ordering::SeqCst);
                    } else {
                        let (mut client, mut server) = (client, server);
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        Self {
            url: format!("http://127.0.0.1:{port}"),
            left,
            cut: counted,
            task,
        }
    }

    /// Answers thrown away so far.
    pub fn cut(&self) -> usize {
        self.cut.load(Ordering::SeqCst)
    }

    /// Answers still to throw away.
    pub fn left(&self) -> usize {
        self.left.load(Ordering::SeqCst)
    }
}

impl Drop for AnswerCutter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Passes the client's request on, waits for the server's answer to begin
/// (so the server has done its work), and closes both sides without
/// passing a byte of it back.
async fn lose_answer(mut client: TcpStream, server: TcpStream) {
    let (mut from_server, mut to_server) = server.into_split();
    let forward = async {
        let mut buffer = [0u8; 8192];
        loop {
            match client.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if to_server.write_all(&buffer[..n]).await.is_err() {
                        return;
                    }
                }
            }
        }
    };
    let answered = async {
        let mut first = [0u8; 1];
        let _ = tokio::time::timeout(Duration::from_secs(30), from_server.read(&mut first)).await;
    };
    tokio::select! {
        () = forward => {}
        () = answered => {}
    }
}
