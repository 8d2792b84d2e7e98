//! serde structs that mirror the YAML exactly (`deny_unknown_fields`).
//!
//! Nothing here is checked beyond YAML types: every value that `load`
//! validates afterwards is `Spanned`, so its errors carry a line and column,
//! and all of them are collected instead of stopping at the first. Keys are
//! `Option` so a missing required key is one of those collected errors too.
//! No `#[serde(flatten)]`: it silently disables `deny_unknown_fields`.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::units::UnitScalar;

/// A list of strings, each with its place.
pub type SpannedStrings = Spanned<Vec<Spanned<String>>>;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub listen: Option<SpannedStrings>,
    pub server_name: Option<Spanned<String>>,
    /// Outer `None`: absent (default `htdocs`); `Some(None)`: `null`, no static files.
    #[serde(default, deserialize_with = "present")]
    pub document_root: Option<Option<Spanned<String>>>,
    pub index: Option<Vec<Spanned<String>>>,
    pub serve_dotfiles: Option<bool>,
    pub directory_listing: Option<bool>,
    pub access_log: Option<Spanned<String>>,
    pub error_log: Option<Spanned<String>>,
    pub log_level: Option<Spanned<String>>,
    pub shutdown_grace: Option<Spanned<UnitScalar>>,
    /// `auto` or a number of event-loop threads.
    pub workers: Option<Spanned<UnitScalar>>,
    pub limits: Option<RawLimits>,
    pub tls: Option<Spanned<RawTls>>,
    pub compression: Option<Spanned<RawCompression>>,
    pub cache_control: Option<Vec<Spanned<RawCacheControl>>>,
    /// Outer `None`: absent (default route if `cgi-bin/` exists); `Some(None)`: `null`, none.
    #[serde(default, deserialize_with = "present")]
    pub cgi: Option<Option<Vec<Spanned<RawCgi>>>>,
    pub fastcgi: Option<Vec<Spanned<RawFastCgi>>>,
    pub user: Option<Spanned<String>>,
    pub group: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub max_request_body: Option<Spanned<UnitScalar>>,
    pub max_header_bytes: Option<Spanned<UnitScalar>>,
    pub max_uri_bytes: Option<Spanned<UnitScalar>>,
    pub header_read_timeout: Option<Spanned<UnitScalar>>,
    pub keepalive_timeout: Option<Spanned<UnitScalar>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub listen: Option<SpannedStrings>,
    pub cert: Option<Spanned<String>>,
    pub key: Option<Spanned<String>>,
    pub self_signed: Option<bool>,
    pub redirect_http: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCompression {
    pub enabled: Option<bool>,
    pub gzip: Option<bool>,
    pub brotli: Option<bool>,
    pub min_size: Option<Spanned<UnitScalar>>,
    /// `fastest`, `default`, `best`, or a number 1 to 9.
    pub level: Option<Spanned<UnitScalar>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCacheControl {
    pub prefix: Option<Spanned<String>>,
    pub value: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCgi {
    pub prefix: Option<Spanned<String>>,
    pub dir: Option<Spanned<String>>,
    pub interpreters: Option<Pairs<Spanned<String>, Spanned<Command>>>,
    pub timeout: Option<Spanned<UnitScalar>>,
    pub max_processes: Option<Spanned<u64>>,
    pub queue_timeout: Option<Spanned<UnitScalar>>,
    pub env: Option<Pairs<Spanned<String>, String>>,
    pub pass_env: Option<Vec<Spanned<String>>>,
    pub pass_authorization: Option<bool>,
    pub compress: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFastCgi {
    pub prefix: Option<Spanned<String>>,
    #[serde(rename = "match")]
    pub matches: Option<Spanned<String>>,
    pub backends: Option<SpannedStrings>,
    pub spawn: Option<Spanned<RawSpawn>>,
    pub root: Option<Spanned<String>>,
    pub index: Option<Spanned<String>>,
    pub split_path_info: Option<Spanned<String>>,
    pub params: Option<Pairs<Spanned<String>, String>>,
    pub pass_authorization: Option<bool>,
    pub connect_timeout: Option<Spanned<UnitScalar>>,
    pub read_timeout: Option<Spanned<UnitScalar>>,
    pub keepalive: Option<u64>,
    pub max_conns: Option<Spanned<u64>>,
    pub compress: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSpawn {
    pub command: Option<SpannedStrings>,
    pub processes: Option<Spanned<u64>>,
}

/// Tells a key written as `null` (`Some(None)`) from an absent one (`None`,
/// through `#[serde(default)]`).
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// A command line: `python3 -u` (split on whitespace) or `[python3, -u]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command(pub Vec<String>);

impl<'de> Deserialize<'de> for Command {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(CommandVisitor)
    }
}

struct CommandVisitor;

impl<'de> Visitor<'de> for CommandVisitor {
    type Value = Command;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a command: a string like `python3 -u` or a list like [python3, -u]")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Command, E> {
        Ok(Command(v.split_whitespace().map(str::to_owned).collect()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Command, A::Error> {
        let mut words = Vec::new();
        while let Some(word) = seq.next_element::<String>()? {
            words.push(word);
        }
        Ok(Command(words))
    }
}

/// A YAML mapping kept in the order it was written (duplicate keys are
/// already refused by the parser).
#[derive(Debug, Clone)]
pub struct Pairs<K, V>(pub Vec<(K, V)>);

impl<'de, K: Deserialize<'de>, V: Deserialize<'de>> Deserialize<'de> for Pairs<K, V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(PairsVisitor(PhantomData))
    }
}

struct PairsVisitor<K, V>(PhantomData<(K, V)>);

impl<'de, K: Deserialize<'de>, V: Deserialize<'de>> Visitor<'de> for PairsVisitor<K, V> {
    type Value = Pairs<K, V>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut pairs = Vec::new();
        while let Some(pair) = map.next_entry()? {
            pairs.push(pair);
        }
        Ok(Pairs(pairs))
    }
}
