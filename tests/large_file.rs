//! A file much larger than any buffer is streamed: the bytes arrive intact
//! and the server's peak memory stays flat.

mod support;

use std::io::{Read, Seek, SeekFrom, Write};

use sha2::Digest;
use support::{client, rss_kib, TestServer};

const SIZE: u64 = 1 << 30; // 1 GiB

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[test]
fn one_gibibyte_download_is_intact_and_memory_stays_flat() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("htdocs")).unwrap();
    let path = dir.path().join("htdocs/big.bin");
    // Sparse, with distinct marks spread through it so misplaced chunks show.
    let mut file = std::fs::File::create(&path).unwrap();
    file.set_len(SIZE).unwrap();
    let mut expected = sha2::Sha256::new();
    let mut offset = 0u64;
    let step = 7 * 1024 * 1024 + 13;
    while offset < SIZE {
        file.seek(SeekFrom::Start(offset)).unwrap();
        file.write_all(format!("mark-{offset}").as_bytes()).unwrap();
        offset += step;
    }
    drop(file);
    let mut reader = std::fs::File::open(&path).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = reader.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        expected.update(&buf[..n]);
    }

    let srv = TestServer::start_in(dir, "document_root: htdocs\ncgi: []\naccess_log: \"off\"\n");
    // Warm up, then take the baseline.
    client().get(srv.url("/")).send().unwrap();
    let before = rss_kib(srv.pid());

    let mut resp = client().get(srv.url("/big.bin")).send().unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.content_length(), Some(SIZE));
    let mut got = sha2::Sha256::new();
    let mut total = 0u64;
    loop {
        let n = resp.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        total += n as u64;
        got.update(&buf[..n]);
    }
    assert_eq!(total, SIZE);
    assert_eq!(got.finalize(), expected.finalize());

    let peak = peak_rss_kib(srv.pid());
    assert!(
        peak < before + 64 * 1024,
        "peak RSS {peak} KiB vs {before} KiB before the download"
    );
}
