//! `consumer healthcheck` / `helpdesk healthcheck`: the binary asks its own
//! running server for `GET /readyz`, so a container image needs no curl.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(3);

/// The path the healthcheck asks: ready means "alive, and its storage answers".
pub const PATH: &str = "/readyz";

/// Exit code 0 when the server listening on `listen` answers [`PATH`] with 200.
pub fn check(listen: SocketAddr) -> ExitCode {
    match probe(listen) {
        Ok(()) => ExitCode::SUCCESS,
        Err(reason) => {
            eprintln!("unhealthy: {reason}");
            ExitCode::FAILURE
        }
    }
}

/// Why the server did not look healthy.
#[derive(Debug, thiserror::Error)]
enum ProbeError {
    #[error("{addr}: {source}")]
    Io {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("no answer from {addr}: {source}")]
    NoAnswer {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("{addr} answered {head:?}")]
    Unhealthy { addr: SocketAddr, head: String },
}

fn probe(listen: SocketAddr) -> Result<(), ProbeError> {
    // A server bound to 0.0.0.0 / [::] is reached through loopback.
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let addr = SocketAddr::new(ip, listen.port());
    let io = |source| ProbeError::Io { addr, source };
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT).map_err(io)?;
    stream.set_read_timeout(Some(TIMEOUT)).map_err(io)?;
    stream.set_write_timeout(Some(TIMEOUT)).map_err(io)?;
    write!(
        stream,
        "GET {PATH} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(io)?;
    let mut head = [0_u8; 12];
    stream
        .read_exact(&mut head)
        .map_err(|source| ProbeError::NoAnswer { addr, source })?;
    match &head {
        b"HTTP/1.1 200" | b"HTTP/1.0 200" => Ok(()),
        other => Err(ProbeError::Unhealthy {
            addr,
            head: String::from_utf8_lossy(other).into_owned(),
        }),
    }
}
