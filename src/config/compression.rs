//! The `compression:` block and the `cache_control:` list.

use serde_saphyr::Spanned;

use super::raw::{RawCacheControl, RawCompression};
use super::units::UnitScalar;
use super::validate::{place, Validator};
use super::{CacheControlRule, Compression};

/// Named levels: (gzip level, brotli quality). Brotli's qualities 10 and 11
/// are far too slow for compressing on the fly (precompress with
/// `brotli -q 11` and let the `.br` file be served instead).
const LEVELS: [(&str, u32, u32); 3] = [("fastest", 1, 1), ("default", 6, 4), ("best", 9, 9)];

impl Validator {
    pub(super) fn compression(&mut self, raw: Option<&Spanned<RawCompression>>) -> Compression {
        let defaults = Compression::default();
        let Some(raw) = raw else {
            return defaults;
        };
        let raw = &raw.value;
        let (gzip_level, brotli_level) = match &raw.level {
            None => (defaults.gzip_level, defaults.brotli_level),
            Some(level) => self
                .level(level)
                .unwrap_or((defaults.gzip_level, defaults.brotli_level)),
        };
        Compression {
            enabled: raw.enabled.unwrap_or(defaults.enabled),
            gzip: raw.gzip.unwrap_or(defaults.gzip),
            brotli: raw.brotli.unwrap_or(defaults.brotli),
            min_size: self.size(
                "compression.min_size",
                raw.min_size.as_ref(),
                defaults.min_size,
                true,
            ),
            gzip_level,
            brotli_level,
        }
    }

    fn level(&mut self, level: &Spanned<UnitScalar>) -> Option<(u32, u32)> {
        match &level.value {
            UnitScalar::Int(n @ 1..=9) => Some((*n as u32, *n as u32)),
            UnitScalar::Text(name) => {
                let found = LEVELS.iter().find(|(n, _, _)| n == name);
                if found.is_none() {
                    self.error(place(level), level_message(name));
                }
                found.map(|&(_, gzip, brotli)| (gzip, brotli))
            }
            UnitScalar::Int(n) => {
                self.error(place(level), level_message(&n.to_string()));
                None
            }
        }
    }

    pub(super) fn cache_control(
        &mut self,
        raw: Option<&[Spanned<RawCacheControl>]>,
    ) -> Vec<CacheControlRule> {
        let mut rules: Vec<CacheControlRule> = Vec::new();
        for (i, rule) in raw.unwrap_or_default().iter().enumerate() {
            let key = format!("cache_control[{i}]");
            let (Some(prefix), Some(value)) = (&rule.value.prefix, &rule.value.value) else {
                self.error(
                    place(rule),
                    format!("{key}: give `prefix` and `value`, like {{ prefix: /static/, value: \"public, max-age=86400\" }}"),
                );
                continue;
            };
            if !prefix.value.starts_with('/') {
                self.error(
                    place(prefix),
                    format!("{key}.prefix: `{}` must start with /", prefix.value),
                );
                continue;
            }
            if rules.iter().any(|r| r.prefix == prefix.value) {
                self.error(
                    place(prefix),
                    format!("{key}.prefix: `{}` is already listed", prefix.value),
                );
                continue;
            }
            match http::HeaderValue::from_str(value.value.trim()) {
                Ok(header) if !header.is_empty() => rules.push(CacheControlRule {
                    prefix: prefix.value.clone(),
                    value: header,
                }),
                _ => self.error(
                    place(value),
                    format!("{key}.value: not a header value (empty, or control characters)"),
                ),
            }
        }
        rules.sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
        rules
    }
}

fn level_message(found: &str) -> String {
    format!("compression.level: `{found}` is not fastest, default, best or a number from 1 to 9")
}
