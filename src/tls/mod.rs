//! TLS for the HTTPS listeners: rustls with the ring provider, TLS 1.2 and
//! 1.3 only, ALPN `h2` then `http/1.1`.
//!
//! The certificate comes from PEM files (`tls.cert`, `tls.key`), read through
//! `rustls-pki-types`, or is made at start-up (`tls.self_signed`) with rcgen.
//! [`load_key_pair`] is the one place that reads and matches a pair: the
//! configuration check (`--check`) and start-up both call it, so a pair that
//! passes the check is a pair the server can use.

pub mod redirect;

use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::ResolvesServerCert;
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::ServerConfig;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;

use crate::config::TlsConfig;

/// PEM files larger than this are refused before parsing (a chain with its
/// intermediates is a few KiB), so `cert: /dev/zero` fails instead of hanging.
const MAX_PEM_BYTES: u64 = 1 << 20;

/// ALPN protocols offered, in the server's order of preference (RFC 7301).
pub const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// What the HTTPS listeners need: the acceptor, and for a self-signed
/// certificate its SHA-256 fingerprint (to be shown at start-up).
pub struct Tls {
    pub acceptor: TlsAcceptor,
    pub self_signed_fingerprint: Option<String>,
}

impl Tls {
    /// Load (or make) the certificate and build the server configuration.
    pub fn new(config: &TlsConfig, server_name: &str) -> Result<Tls, String> {
        let (certified, fingerprint) = match (&config.cert, &config.key, config.self_signed) {
            (Some(cert), Some(key), _) => (load_key_pair(cert, key)?, None),
            _ => {
                let certified = self_signed(server_name)?;
                let fingerprint = certified.cert.first().map(fingerprint);
                (certified, fingerprint)
            }
        };
        let resolver = Arc::new(SingleCertAndKey::from(certified));
        Ok(Tls {
            acceptor: TlsAcceptor::from(Arc::new(server_config(resolver)?)),
            self_signed_fingerprint: fingerprint,
        })
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// TLS 1.3 and 1.2 (nothing older: rustls has no SSL 3.0, TLS 1.0 or 1.1),
/// no client certificates, ALPN `h2` and `http/1.1`.
fn server_config(resolver: Arc<dyn ResolvesServerCert>) -> Result<ServerConfig, String> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("tls: {e}"))?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// Read a PEM certificate chain and private key and check that they belong
/// together. Every message names the file and what is wrong with it.
pub fn load_key_pair(cert_path: &Path, key_path: &Path) -> Result<CertifiedKey, String> {
    let cert_pem = read_pem_file("tls.cert", cert_path)?;
    let key_pem = read_pem_file("tls.key", key_path)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("tls.cert: {}: not valid PEM: {e}", cert_path.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "tls.cert: {}: no certificate found (expected a PEM block \
             \"-----BEGIN CERTIFICATE-----\")",
            cert_path.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| match e {
        pem::Error::NoItemsFound => format!(
            "tls.key: {}: no private key found (expected a PEM block \
             \"-----BEGIN PRIVATE KEY-----\", RSA or EC)",
            key_path.display()
        ),
        e => format!("tls.key: {}: not valid PEM: {e}", key_path.display()),
    })?;
    certified_key(chain, key).map_err(|e| match e {
        PairError::Key(e) => format!("tls.key: {}: unusable private key: {e}", key_path.display()),
        PairError::Cert(e) => format!(
            "tls.cert: {}: unusable certificate: {e}",
            cert_path.display()
        ),
        PairError::Mismatch => format!(
            "tls: the private key {} does not belong to the certificate {} \
             (their public keys differ)",
            key_path.display(),
            cert_path.display()
        ),
    })
}

enum PairError {
    Key(rustls::Error),
    Cert(rustls::Error),
    Mismatch,
}

/// The chain and key as rustls uses them, after comparing the key's public
/// half with the end-entity certificate's.
fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<CertifiedKey, PairError> {
    let signing_key = provider()
        .key_provider
        .load_private_key(key)
        .map_err(PairError::Key)?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        // A key type that cannot tell its public half is not a mismatch.
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            Ok(certified)
        }
        Err(rustls::Error::InconsistentKeys(_)) => Err(PairError::Mismatch),
        Err(e) => Err(PairError::Cert(e)),
    }
}

fn read_pem_file(key: &str, path: &Path) -> Result<Vec<u8>, String> {
    let file = std::fs::File::open(path)
        .map_err(|e| format!("{key}: {}: cannot read: {e}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(MAX_PEM_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{key}: {}: cannot read: {e}", path.display()))?;
    if bytes.len() as u64 > MAX_PEM_BYTES {
        return Err(format!(
            "{key}: {}: larger than {MAX_PEM_BYTES} bytes, not a PEM file",
            path.display()
        ));
    }
    Ok(bytes)
}

/// The names a self-signed certificate is made for: `server_name`, then
/// `localhost`, `127.0.0.1` and `::1` (IP addresses become IP SANs).
pub fn self_signed_names(server_name: &str) -> Vec<String> {
    let mut names = vec![server_name.to_owned()];
    for name in ["localhost", "127.0.0.1", "::1"] {
        if !names.iter().any(|n| n == name) {
            names.push(name.to_owned());
        }
    }
    names
}

/// A fresh ECDSA P-256 key and a certificate for [`self_signed_names`].
pub fn self_signed(server_name: &str) -> Result<CertifiedKey, String> {
    let made = rcgen::generate_simple_self_signed(self_signed_names(server_name))
        .map_err(|e| format!("tls: cannot make a self-signed certificate: {e}"))?;
    let chain = vec![made.cert.der().clone()];
    let key = PrivateKeyDer::from(PrivatePkcs8KeyDer::from(made.key_pair.serialize_der()));
    certified_key(chain, key).map_err(|_| "tls: the self-signed certificate is unusable".into())
}

/// SHA-256 of a certificate's DER bytes, upper-case hex pairs joined by
/// colons (as `openssl x509 -noout -fingerprint -sha256` prints it).
pub fn fingerprint(cert: &CertificateDer<'_>) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, cert.as_ref());
    let hex: Vec<String> = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
    hex.join(":")
}

#[cfg(test)]
mod tests;
