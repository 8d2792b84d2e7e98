use std::path::{Path, PathBuf};

use super::*;

/// A fresh certificate and key for `names`, as PEM text.
fn pem_pair(names: &[&str]) -> (String, String) {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let made = rcgen::generate_simple_self_signed(names).unwrap();
    (made.cert.pem(), made.key_pair.serialize_pem())
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_matching_pair_loads() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = pem_pair(&["example.test"]);
    let c = write(dir.path(), "cert.pem", &cert);
    let k = write(dir.path(), "key.pem", &key);
    let certified = load_key_pair(&c, &k).unwrap();
    assert_eq!(certified.cert.len(), 1);
}

#[test]
fn a_key_from_another_pair_is_a_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, _) = pem_pair(&["a.test"]);
    let (_, other_key) = pem_pair(&["b.test"]);
    let c = write(dir.path(), "cert.pem", &cert);
    let k = write(dir.path(), "key.pem", &other_key);
    let err = load_key_pair(&c, &k).err().unwrap();
    assert!(err.contains("does not belong to the certificate"), "{err}");
    assert!(err.contains("key.pem") && err.contains("cert.pem"), "{err}");
}

#[test]
fn unreadable_or_empty_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = pem_pair(&["a.test"]);
    let c = write(dir.path(), "cert.pem", &cert);
    let k = write(dir.path(), "key.pem", &key);
    let junk = write(dir.path(), "junk.pem", "not a pem file\n");
    let missing = dir.path().join("missing.pem");

    let err = load_key_pair(&missing, &k).err().unwrap();
    assert!(
        err.starts_with("tls.cert: ") && err.contains("cannot read"),
        "{err}"
    );
    let err = load_key_pair(&c, &missing).err().unwrap();
    assert!(
        err.starts_with("tls.key: ") && err.contains("cannot read"),
        "{err}"
    );
    let err = load_key_pair(&junk, &k).err().unwrap();
    assert!(
        err.starts_with("tls.cert: ") && err.contains("no certificate"),
        "{err}"
    );
    let err = load_key_pair(&c, &junk).err().unwrap();
    assert!(
        err.starts_with("tls.key: ") && err.contains("no private key"),
        "{err}"
    );
    // Certificate and key swapped.
    let err = load_key_pair(&k, &c).err().unwrap();
    assert!(err.starts_with("tls.cert: "), "{err}");
}

#[test]
fn a_truncated_pem_block_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = pem_pair(&["a.test"]);
    let cut = &cert[..cert.len() / 2];
    let c = write(dir.path(), "cert.pem", cut);
    let k = write(dir.path(), "key.pem", &key);
    let err = load_key_pair(&c, &k).err().unwrap();
    assert!(err.starts_with("tls.cert: "), "{err}");
}

#[test]
fn self_signed_covers_the_server_name_and_loopback() {
    assert_eq!(
        self_signed_names("www.example.test"),
        ["www.example.test", "localhost", "127.0.0.1", "::1"]
    );
    assert_eq!(
        self_signed_names("localhost"),
        ["localhost", "127.0.0.1", "::1"]
    );
    let certified = self_signed("www.example.test").unwrap();
    assert_eq!(certified.cert.len(), 1);
}

#[test]
fn fingerprints_are_colon_separated_upper_hex_sha256() {
    let cert = CertificateDer::from(b"abc".to_vec());
    // sha256("abc")
    assert_eq!(
        fingerprint(&cert),
        "BA:78:16:BF:8F:01:CF:EA:41:41:40:DE:5D:AE:22:23:B0:03:61:A3:96:17:7A:9C:B4:10:FF:61:F2:00:15:AD"
    );
}

#[test]
fn server_config_offers_h2_then_http11() {
    let tls = Tls::new(
        &crate::config::TlsConfig {
            listen: Vec::new(),
            cert: None,
            key: None,
            self_signed: true,
            redirect_http: false,
        },
        "localhost",
    )
    .unwrap();
    assert!(tls.self_signed_fingerprint.is_some());
    let config = tls.acceptor.config();
    assert_eq!(
        config.alpn_protocols,
        [b"h2".to_vec(), b"http/1.1".to_vec()]
    );
}
