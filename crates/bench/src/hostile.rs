//! Receivers that hold a help desk's attempts as long as they can, for the
//! noisy-neighbours scenario: a black hole (accepts, never answers) and a
//! slow loris (answers `200` with `Content-Length: 10` and never sends the
//! body). Each listens on 127.0.0.1:0 in the bench's runtime.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::BoxError;

#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    BlackHole,
    SlowLoris,
}

/// Starts one; returns its callback URL.
pub(crate) async fn start(kind: Kind) -> Result<String, BoxError> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    actix_web::rt::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            actix_web::rt::spawn(hold(stream, kind));
        }
    });
    Ok(format!("http://127.0.0.1:{port}/hook"))
}

async fn hold(mut stream: TcpStream, kind: Kind) {
    let mut buffer = [0_u8; 8192];
    if let Kind::SlowLoris = kind {
        // The request head (and the small body after it) first.
        let mut seen = Vec::new();
        while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buffer).await {
                Ok(n) if n > 0 => seen.extend_from_slice(&buffer[..n]),
                _ => return,
            }
        }
        if stream
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")
            .await
            .is_err()
        {
            return;
        }
    }
    // Then nothing more, until the help desk gives up and closes.
    while matches!(stream.read(&mut buffer).await, Ok(n) if n > 0) {}
}
