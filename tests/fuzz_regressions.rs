//! Every input a fuzzer found (`fuzz/regressions/TARGET/*`), replayed through
//! the same property checks the fuzz targets run (`fuzz/checks.rs`), so a
//! fixed bug stays fixed without a nightly toolchain or libFuzzer.

#[path = "../fuzz/checks.rs"]
mod checks;

use std::path::PathBuf;

fn replay(target: &str, check: fn(&[u8])) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/regressions")
        .join(target);
    let mut replayed = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| check(&data));
        assert!(outcome.is_ok(), "{} fails again", path.display());
        replayed += 1;
    }
    assert!(replayed > 0, "no inputs in {}", dir.display());
}

#[test]
fn paths_regressions() {
    replay("paths", checks::path);
}

#[test]
fn gateway_head_regressions() {
    replay("gateway_head", checks::gateway_head);
}

#[test]
fn fastcgi_records_regressions() {
    replay("fastcgi_records", checks::fastcgi_records);
}

#[test]
fn config_yaml_regressions() {
    replay("config_yaml", checks::config_yaml);
}
