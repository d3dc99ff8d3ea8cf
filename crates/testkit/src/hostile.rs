//! Peers that misbehave on purpose, as raw TCP servers on loopback: what a
//! webhook sender meets when it is pointed at endpoints it does not control,
//! and what a client meets at a slow server. A well-behaved HTTP server
//! cannot be made to hang halfway through an answer, so these speak HTTP by
//! hand.
//!
//! They exist to prove that deadlines and per-endpoint limits hold: the
//! tests point the help desk at them (every attempt must end at
//! `DELIVERY_TIMEOUT`, one endpoint must never take every slot) and the
//! consumer at them (its calls end at `HELPDESK_TIMEOUT`); the bench runs
//! its delivery batch beside them (noisy neighbours). Each peer counts its
//! connections and requests, how many connections it held open at once, and
//! when each connection ended, i.e. when the other side gave up.
//!
//! A peer's accept loop and connections are tasks it owns: dropping the
//! [`Hostile`] ends them all.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// How often a trickling peer sends its next byte.
const TRICKLE: Duration = Duration::from_millis(200);

/// How a [`Hostile`] peer misbehaves.
#[derive(Debug, Clone)]
pub enum Hostility {
    /// Accepts the connection, then neither reads nor answers: a sender
    /// without a deadline on the answer waits forever.
    BlackHole,
    /// Reads the request, answers `200` with `Content-Length: 10`, and never
    /// sends the body (a slow loris): a sender whose deadline covers only
    /// the head waits forever for the body.
    HeadThenSilence,
    /// Reads the request and sends its status line and headers one byte at
    /// a time, forever: a sender whose deadline restarts with every byte
    /// read never gives up.
    TrickledHead,
    /// Answers every request at once with this status and `Retry-After`
    /// (seconds), keeping the connection alive: a busy endpoint asking for
    /// a pause, which a sender must honour without counting it as broken.
    Refuses { status: u16, retry_after_secs: u32 },
    /// Answers with this status line, headers and the start of a body, then
    /// trickles the rest of the body one byte at a time, forever: a server
    /// slow in the middle of its answer (the consumer facing a help desk).
    TrickledBody { head: String },
}

/// What a [`Hostile`] peer has seen so far.
#[derive(Debug, Default)]
pub struct Stats {
    connections: AtomicUsize,
    requests: AtomicUsize,
    open: AtomicUsize,
    max_open: AtomicUsize,
    ended: Mutex<Vec<Instant>>,
}

impl Stats {
    /// Connections accepted.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Requests read in full.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// The most connections held open at once.
    pub fn max_open(&self) -> usize {
        self.max_open.load(Ordering::SeqCst)
    }

    /// When each connection ended so far, in that order.
    pub fn ended(&self) -> Vec<Instant> {
        self.ended.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn opened(&self) {
        self.connections.fetch_add(1, Ordering::SeqCst);
        let open = self.open.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_open.fetch_max(open, Ordering::SeqCst);
    }

    fn closed(&self) {
        self.ended
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Instant::now());
        self.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A misbehaving peer on `127.0.0.1`; stops when dropped.
pub struct Hostile {
    /// `http://127.0.0.1:<port>/hook`.
    pub url: String,
    pub port: u16,
    pub stats: Arc<Stats>,
    task: JoinHandle<()>,
}

impl Hostile {
    /// Listens on a free loopback port, on the current runtime.
    pub async fn start(hostility: Hostility) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let stats = Arc::new(Stats::default());
        let task = tokio::spawn(accept(listener, hostility, stats.clone()));
        Ok(Self {
            url: format!("http://127.0.0.1:{port}/hook"),
            port,
            stats,
            task,
        })
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Accepts connections until the listener fails, each one served by a task
/// of its own in a set that goes (aborting them) when this task does.
async fn accept(listener: TcpListener, hostility: Hostility, stats: Arc<Stats>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { return };
                let (stats, hostility) = (stats.clone(), hostility.clone());
                connections.spawn(async move {
                    stats.opened();
                    serve(stream, &hostility, &stats).await;
                    stats.closed();
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
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
            Hostility::BlackHole => return,
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

/// Sends `start`, then one more byte every [`TRICKLE`] until the other side
/// goes (noticed at once: the read side watches for it meanwhile).
async fn trickle(stream: &mut TcpStream, start: &[u8]) {
    let (mut reader, mut writer) = stream.split();
    let mut sink = [0_u8; 4096];
    for byte in start.iter().copied().chain(std::iter::repeat(b'a')) {
        if writer.write_all(&[byte]).await.is_err() {
            return;
        }
        tokio::select! {
            read = reader.read(&mut sink) => if !matches!(read, Ok(n) if n > 0) { return },
            () = tokio::time::sleep(TRICKLE) => {}
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
