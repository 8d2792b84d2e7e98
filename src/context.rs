//! What a handler needs to know about the request beyond its head: the
//! connection it came on, its id, and the configuration in force.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, OnceLock};

use crate::config::Config;

/// The connection a request arrived on.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// The client's address; `0.0.0.0:0` for Unix-socket listeners.
    pub peer: SocketAddr,
    /// The address the client connected to (SERVER_ADDR, SERVER_PORT).
    pub local: SocketAddr,
    /// True for TLS listeners.
    pub secure: bool,
    /// Plain TCP: file bodies of HTTP/1 responses may be read as the socket
    /// takes them, through this lane ([`crate::late_file`]).
    pub file_lane: Option<Arc<crate::late_file::Lane>>,
    /// The addresses as text, made for the first program or backend request
    /// and shared by the connection's later ones.
    pub addr_text: OnceLock<AddrText>,
}

/// A connection's addresses as the CGI variables spell them (IPv4-mapped
/// IPv6 addresses as IPv4).
#[derive(Debug, Clone)]
pub struct AddrText {
    pub peer_ip: String,
    pub peer_port: String,
    pub local_ip: String,
    pub local_port: String,
}

impl ConnInfo {
    /// Connection info for a Unix-socket listener, where there is no IP peer.
    pub fn unix() -> Self {
        let unspecified = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);
        ConnInfo {
            peer: unspecified,
            local: unspecified,
            secure: false,
            file_lane: None,
            addr_text: OnceLock::new(),
        }
    }

    pub fn addr_text(&self) -> &AddrText {
        self.addr_text.get_or_init(|| AddrText {
            peer_ip: self.peer.ip().to_canonical().to_string(),
            peer_port: self.peer.port().to_string(),
            local_ip: self.local.ip().to_canonical().to_string(),
            local_port: self.local.port().to_string(),
        })
    }

    pub fn scheme(&self) -> &'static str {
        if self.secure {
            "https"
        } else {
            "http"
        }
    }
}

/// A request's id, shown in the access log and every error-log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestId(pub u64);

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

/// Everything about one request that is not its head or body.
#[derive(Debug, Clone)]
pub struct RequestCtx {
    pub id: RequestId,
    pub conn: Arc<ConnInfo>,
    pub config: Arc<Config>,
}
