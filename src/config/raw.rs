//! serde structs that mirror the YAML exactly (`deny_unknown_fields`).
