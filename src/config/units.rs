//! `Duration` and byte-size values as written in the YAML (`500ms`, `64MiB`).
