//! What CGI and FastCGI share: the RFC 3875 variables, the parser for the
//! program's response head, and spooling of bodies without a length.

pub mod body;
pub mod env;
pub mod response;
pub mod spool;

#[cfg(test)]
pub(crate) mod testutil {
    //! Configuration and request context for unit tests.

    use std::net::SocketAddr;
    use std::path::PathBuf;
    use std::sync::Arc;
    use std::time::Duration;

    use crate::config::{Config, Limits, LogTarget, Workers};
    use crate::context::{ConnInfo, RequestCtx, RequestId};

    pub fn config() -> Config {
        Config {
            listen: Vec::new(),
            server_name: "configured.example".to_owned(),
            document_root: Some(PathBuf::from("/srv/htdocs")),
            index: vec!["index.html".to_owned()],
            serve_dotfiles: false,
            directory_listing: false,
            access_log: LogTarget::Off,
            error_log: LogTarget::Off,
            log_level: "info".to_owned(),
            shutdown_grace: Duration::from_secs(1),
            workers: Workers::Auto,
            limits: Limits {
                max_request_body: 64 << 20,
                max_header_bytes: 64 << 10,
                max_uri_bytes: 8 << 10,
                header_read_timeout: Duration::from_secs(10),
                keepalive_timeout: Duration::from_secs(75),
            },
            tls: None,
            compression: Default::default(),
            cache_control: Vec::new(),
            cgi: Vec::new(),
            fastcgi: Vec::new(),
            run_as: Default::default(),
        }
    }

    pub fn ctx_with(config: Config, peer: &str, local: &str, secure: bool) -> RequestCtx {
        let peer: SocketAddr = peer.parse().unwrap();
        let local: SocketAddr = local.parse().unwrap();
        RequestCtx {
            id: RequestId(7),
            conn: Arc::new(ConnInfo {
                peer,
                local,
                secure,
                file_lane: None,
                addr_text: Default::default(),
            }),
            config: Arc::new(config),
        }
    }

    pub fn ctx() -> RequestCtx {
        ctx_with(config(), "192.0.2.10:54321", "127.0.0.1:8080", false)
    }
}
