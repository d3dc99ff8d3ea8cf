//! Peers that misbehave on purpose, as raw TCP servers on loopback: what a
//! webhook provider meets when it is pointed at endpoints it does not
//! control (and what a client meets at a slow provider). Each counts its
//! connections and how many it held open at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How a [`Hostile`] peer misbehaves.
#[derive(Debug, Clone)]
pub enum Hostility {
    /// Accepts the connection, then neither reads nor answers.
    BlackHole,
    /// Reads the request, answers `200` with `Content-Length: 10`, and never
    /// sends the body (the slow loris of the issue that found this).
    HeadThenSilence,
    /// Reads the request and sends its status line and headers one byte every
    /// 200 ms, forever.
    TrickledHead,
    /// Answers every request at once with this status and `Retry-After`
    /// (seconds), keeping the connection alive.
    Refuses { status: u16, retry_after_secs: u32 },
    /// Answers with this status line, headers and the start of a body, then
    /// trickles the rest of the body one byte every 200 ms, forever.
    TrickledBody { head: String },
}

#[derive(Debug, Default)]
pub struct Stats {
    /// Connections accepted.
    pub connections: AtomicUsize,
    /// Requests read in full.
    pub requests: AtomicUsize,
    open: AtomicUsize,
    /// The most connections held open at once.
    pub max_open: AtomicUsize,
}

impl Stats {
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    pub fn max_open(&self) -> usize {
        self.max_open.load(Ordering::SeqCst)
    }
}

/// A misbehaving peer on `127.0.0.1`; stops with the test's runtime.
pub struct Hostile {
    /// `http://127.0.0.1:<port>/hook`.
    pub url: String,
    pub port: u16,
    pub stats: Arc<Stats>,
}

impl Hostile {
    pub async fn start(hostility: Hostility) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let stats = Arc::new(Stats::default());
        let shared = stats.clone();
        actix_web::rt::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (stats, hostility) = (shared.clone(), hostility.clone());
                actix_web::rt::spawn(async move {
                    stats.connections.fetch_add(1, Ordering::SeqCst);
                    let open = stats.open.fetch_add(1, Ordering::SeqCst) + 1;
                    stats.max_open.fetch_max(open, Ordering::SeqCst);
                    serve(stream, &hostility, &stats).await;
                    stats.open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Self {
            url: format!("http://127.0.0.1:{port}/hook"),
            port,
            stats,
        }
    }
}

async fn serve(mut stream: TcpStream, hostility: &Hostility, stats: &Stats) {
    if let Hostility::BlackHole = hostility {
        hold(&mut stream).await;
        return;
    }
    loop {
        if !read_request(&mut stream).await {
            return;
        }
        stats.requests.fetch_add(1, Ordering::SeqCst);
        match hostility {
            Hostility::BlackHole => unreachable!("handled above"),
            Hostility::HeadThenSilence => {
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n\r\n")
                    .await;
                hold(&mut stream).await;
                return;
            }
            Hostility::TrickledHead => {
                trickle(&mut stream, b"HTTP/1.1 200 OK\r\nX-Slow: ").await;
                return;
            }
            Hostility::TrickledBody { head } => {
                if stream.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                trickle(&mut stream, b"").await;
                return;
            }
            Hostility::Refuses {
                status,
                retry_after_secs,
            } => {
                let answer = format!(
                    "HTTP/1.1 {status} Refused\r\nRetry-After: {retry_after_secs}\r\nContent-Length: 0\r\n\r\n"
                );
                if stream.write_all(answer.as_bytes()).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Keeps the connection open, reading and dropping whatever comes, until
/// the other side closes it.
async fn hold(stream: &mut TcpStream) {
    let mut sink = [0_u8; 4096];
    while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
}

/// Sends `start`, then one more byte every 200 ms until the other side goes
/// (noticed at once: the read side watches for it meanwhile).
async fn trickle(stream: &mut TcpStream, start: &[u8]) {
    let (mut reader, mut writer) = stream.split();
    let mut sink = [0_u8; 4096];
    for byte in start.iter().copied().chain(std::iter::repeat(b'a')) {
        if writer.write_all(&[byte]).await.is_err() {
            return;
        }
        tokio::select! {
            read = reader.read(&mut sink) => if !matches!(read, Ok(n) if n > 0) { return },
            () = actix_web::rt::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}

/// Reads one request (head and a `Content-Length` body); false when the
/// connection ends first.
async fn read_request(stream: &mut TcpStream) -> bool {
    let mut buffer = Vec::new();
    let mut chunk = [0_u8; 4096];
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        match stream.read(&mut chunk).await {
            Ok(n) if n > 0 => buffer.extend_from_slice(&chunk[..n]),
            _ => return false,
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0);
    while buffer.len() < head_end + length {
        match stream.read(&mut chunk).await {
            Ok(n) if n > 0 => buffer.extend_from_slice(&chunk[..n]),
            _ => return false,
        }
    }
    true
}
