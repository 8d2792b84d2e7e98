//! `Duration` and byte-size values as written in the YAML (`500ms`, `64MiB`).
//!
//! Durations are an integer followed by a unit: `ms`, `s`, `m` (minutes) or
//! `h` (`500ms`, `10s`, `0s`, `5m`, `1h`). A bare number is refused because
//! `timeout: 60` is ambiguous (seconds? milliseconds?).
//!
//! Sizes are an integer with an optional unit; a bare integer is bytes.
//! `B` is bytes. `K`, `KiB`, `M`, `MiB`, `G`, `GiB`, `T`, `TiB` are 1024-based
//! (`64K` = `64KiB` = 65536 bytes); `KB`, `MB`, `GB`, `TB` are 1000-based
//! (`64KB` = 64000 bytes). Units are case-sensitive and may be separated from
//! the number by spaces (`64 MiB`).

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

/// Why a duration or size was refused; the text is meant for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitError(String);

impl fmt::Display for UnitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UnitError {}

/// A span of time written `500ms`, `10s`, `5m` or `1h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(pub std::time::Duration);

impl Duration {
    /// The standard library value.
    pub fn get(self) -> std::time::Duration {
        self.0
    }

    /// Convert a YAML scalar (a string, or a number the user forgot to give a unit).
    pub fn from_scalar(scalar: &UnitScalar) -> Result<Self, UnitError> {
        match scalar {
            UnitScalar::Text(text) => text.parse(),
            UnitScalar::Int(n) => Err(UnitError(format!(
                "duration `{n}` has no unit: write it like `{n}s` or `{n}ms` (units: ms, s, m, h)"
            ))),
        }
    }
}

impl From<Duration> for std::time::Duration {
    fn from(d: Duration) -> Self {
        d.0
    }
}

impl FromStr for Duration {
    type Err = UnitError;

    fn from_str(text: &str) -> Result<Self, UnitError> {
        let (number, unit) = split_number(text).ok_or_else(|| {
            UnitError(format!(
                "`{text}` is not a duration like `500ms`, `10s`, `5m` or `1h`"
            ))
        })?;
        let per_unit_ms: u64 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "" => {
                return Err(UnitError(format!(
                    "duration `{text}` has no unit: write it like `{number}s` or `{number}ms` (units: ms, s, m, h)"
                )))
            }
            other => {
                return Err(UnitError(format!(
                    "duration `{text}` has an unknown unit `{other}` (units: ms, s, m, h)"
                )))
            }
        };
        number
            .checked_mul(per_unit_ms)
            .map(|ms| Duration(std::time::Duration::from_millis(ms)))
            .ok_or_else(|| UnitError(format!("duration `{text}` is too large")))
    }
}

impl fmt::Display for Duration {
    /// The largest unit that represents the value exactly (`90s`, `5m`, `1500ms`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms == 0 {
            return f.write_str("0s");
        }
        for (unit, size) in [("h", 3_600_000), ("m", 60_000), ("s", 1_000)] {
            if ms % size == 0 {
                return write!(f, "{}{unit}", ms / size);
            }
        }
        write!(f, "{ms}ms")
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let scalar = UnitScalar::deserialize(deserializer)?;
        Duration::from_scalar(&scalar).map_err(de::Error::custom)
    }
}

/// A number of bytes written `512B`, `512KiB`, `64MiB`, `1GiB`, `64KB` or `4096`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// The number of bytes.
    pub fn get(self) -> u64 {
        self.0
    }

    /// Convert a YAML scalar: a string with a unit, or an integer number of bytes.
    pub fn from_scalar(scalar: &UnitScalar) -> Result<Self, UnitError> {
        match scalar {
            UnitScalar::Text(text) => text.parse(),
            UnitScalar::Int(n) => u64::try_from(*n)
                .map(ByteSize)
                .map_err(|_| UnitError(format!("size `{n}` is negative"))),
        }
    }
}

impl FromStr for ByteSize {
    type Err = UnitError;

    fn from_str(text: &str) -> Result<Self, UnitError> {
        let (number, unit) = split_number(text).ok_or_else(|| {
            UnitError(format!(
                "`{text}` is not a size like `4096`, `512KiB` or `64MiB`"
            ))
        })?;
        let multiplier: u64 = match unit {
            "" | "B" => 1,
            "K" | "KiB" => 1 << 10,
            "M" | "MiB" => 1 << 20,
            "G" | "GiB" => 1 << 30,
            "T" | "TiB" => 1 << 40,
            "KB" => 1_000,
            "MB" => 1_000_000,
            "GB" => 1_000_000_000,
            "TB" => 1_000_000_000_000,
            other => {
                return Err(UnitError(format!(
                    "size `{text}` has an unknown unit `{other}` \
                     (units: B, K/KiB, M/MiB, G/GiB, T/TiB = 1024-based; KB, MB, GB, TB = 1000-based)"
                )))
            }
        };
        number
            .checked_mul(multiplier)
            .map(ByteSize)
            .ok_or_else(|| UnitError(format!("size `{text}` is too large")))
    }
}

impl fmt::Display for ByteSize {
    /// The largest binary unit that represents the value exactly (`64MiB`, `1500B`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        for (unit, shift) in [("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)] {
            let size = 1u64 << shift;
            if n != 0 && n % size == 0 {
                return write!(f, "{}{unit}", n / size);
            }
        }
        write!(f, "{n}B")
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let scalar = UnitScalar::deserialize(deserializer)?;
        ByteSize::from_scalar(&scalar).map_err(de::Error::custom)
    }
}

/// Split `"64 MiB"` into `(64, "MiB")`. `None` when there are no leading digits.
fn split_number(text: &str) -> Option<(u64, &str)> {
    let text = text.trim();
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let number = text[..digits_end].parse().ok()?;
    Some((number, text[digits_end..].trim_start()))
}

/// A YAML scalar as it was written, before it is read as a duration or a size.
///
/// The configuration keeps these (wrapped in `Spanned`) so that a bad value is
/// reported with its line and column together with every other problem,
/// instead of stopping the YAML parser at the first one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnitScalar {
    /// A string, or any other scalar shown as text (`1.5`, `true`).
    Text(String),
    /// A plain integer.
    Int(i128),
}

impl<'de> Deserialize<'de> for UnitScalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(UnitScalarVisitor)
    }
}

struct UnitScalarVisitor;

impl Visitor<'_> for UnitScalarVisitor {
    type Value = UnitScalar;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration like `10s` or a size like `64MiB`")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<UnitScalar, E> {
        Ok(UnitScalar::Text(v.to_owned()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<UnitScalar, E> {
        Ok(UnitScalar::Int(v.into()))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<UnitScalar, E> {
        Ok(UnitScalar::Int(v.into()))
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<UnitScalar, E> {
        Ok(i128::try_from(v).map_or_else(|_| UnitScalar::Text(v.to_string()), UnitScalar::Int))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<UnitScalar, E> {
        Ok(UnitScalar::Int(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<UnitScalar, E> {
        Ok(UnitScalar::Text(v.to_string()))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<UnitScalar, E> {
        Ok(UnitScalar::Text(v.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration as Std;

    fn dur(s: &str) -> Result<Std, UnitError> {
        s.parse::<Duration>().map(Duration::get)
    }

    fn size(s: &str) -> Result<u64, UnitError> {
        s.parse::<ByteSize>().map(ByteSize::get)
    }

    #[test]
    fn durations() {
        assert_eq!(dur("500ms"), Ok(Std::from_millis(500)));
        assert_eq!(dur("10s"), Ok(Std::from_secs(10)));
        assert_eq!(dur("0s"), Ok(Std::ZERO));
        assert_eq!(dur("5m"), Ok(Std::from_secs(300)));
        assert_eq!(dur("1h"), Ok(Std::from_secs(3600)));
        assert_eq!(dur(" 10 s "), Ok(Std::from_secs(10)));
    }

    #[test]
    fn bad_durations() {
        let e = dur("10").unwrap_err().to_string();
        assert!(e.contains("no unit") && e.contains("10s"), "{e}");
        let e = dur("10x").unwrap_err().to_string();
        assert!(e.contains("unknown unit `x`"), "{e}");
        assert!(dur("").is_err());
        assert!(dur("s").is_err());
        assert!(dur("-1s").is_err());
        assert!(dur("1.5s").is_err());
        assert!(dur("10S").is_err());
        assert!(dur("99999999999999999999s").is_err());
        assert!(dur("18446744073709551615h")
            .unwrap_err()
            .to_string()
            .contains("too large"));
        let e = Duration::from_scalar(&UnitScalar::Int(30))
            .unwrap_err()
            .to_string();
        assert!(e.contains("`30s`"), "{e}");
    }

    #[test]
    fn sizes() {
        assert_eq!(size("512B"), Ok(512));
        assert_eq!(size("4096"), Ok(4096));
        assert_eq!(size("512KiB"), Ok(512 * 1024));
        assert_eq!(size("512K"), Ok(512 * 1024));
        assert_eq!(size("512KB"), Ok(512_000));
        assert_eq!(size("64MiB"), Ok(64 << 20));
        assert_eq!(size("64M"), Ok(64 << 20));
        assert_eq!(size("64MB"), Ok(64_000_000));
        assert_eq!(size("1GiB"), Ok(1 << 30));
        assert_eq!(size("1G"), Ok(1 << 30));
        assert_eq!(size("1GB"), Ok(1_000_000_000));
        assert_eq!(size("64 MiB"), Ok(64 << 20));
        assert_eq!(size("0"), Ok(0));
        assert_eq!(
            ByteSize::from_scalar(&UnitScalar::Int(77)),
            Ok(ByteSize(77))
        );
    }

    #[test]
    fn bad_sizes() {
        let e = size("12XB").unwrap_err().to_string();
        assert!(
            e.contains("unknown unit `XB`") && e.contains("1000-based"),
            "{e}"
        );
        assert!(size("mib").is_err());
        assert!(size("1.5MiB").is_err());
        assert!(size("64mib").is_err());
        assert!(size("-1").is_err());
        assert!(size("99999999999T")
            .unwrap_err()
            .to_string()
            .contains("too large"));
        assert!(ByteSize::from_scalar(&UnitScalar::Int(-1)).is_err());
    }

    #[test]
    fn display_round_trips() {
        for s in ["0s", "500ms", "1500ms", "10s", "90s", "5m", "2h"] {
            assert_eq!(s.parse::<Duration>().unwrap().to_string(), s);
        }
        for s in ["0B", "1500B", "512KiB", "64MiB", "1GiB"] {
            assert_eq!(s.parse::<ByteSize>().unwrap().to_string(), s);
        }
    }

    #[derive(Debug, Deserialize)]
    struct Doc {
        d: Duration,
        s: ByteSize,
    }

    #[test]
    fn deserialize_from_yaml_strings_and_integers() {
        let doc: Doc = serde_saphyr::from_str("d: 250ms\ns: 8KiB\n").unwrap();
        assert_eq!(doc.d.get(), Std::from_millis(250));
        assert_eq!(doc.s.get(), 8192);
        let doc: Doc = serde_saphyr::from_str("d: '1h'\ns: 100\n").unwrap();
        assert_eq!(doc.d.get(), Std::from_secs(3600));
        assert_eq!(doc.s.get(), 100);
    }

    #[test]
    fn deserialize_refuses_bare_duration_with_location() {
        let err = serde_saphyr::from_str::<Doc>("s: 1\nd: 10\n").unwrap_err();
        assert!(err.to_string().contains("no unit"), "{err}");
        let loc = err.location().expect("location");
        assert_eq!((loc.line(), loc.column()), (2, 4));
    }
}
