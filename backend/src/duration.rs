//! Durations as the configuration files and the command lines write them (`"10ms"`,
//! `"250us"`, `"1.5s"`, `"2m"`, or integer milliseconds): parsing, formatting, and the serde
//! functions every config section uses (`#[serde(with = "crate::duration")]`).

use crate::Error;
use serde::{de, Deserializer, Serializer};
use std::time::Duration;

pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_duration(*d))
}

pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    struct V;
    impl de::Visitor<'_> for V {
        type Value = Duration;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a duration such as \"10ms\" or integer milliseconds")
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
            Ok(Duration::from_millis(v))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
            u64::try_from(v)
                .map(Duration::from_millis)
                .map_err(|_| E::custom("negative duration"))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
            parse_text(v).ok_or_else(|| E::custom(format!("invalid duration `{v}`")))
        }
    }
    d.deserialize_any(V)
}

/// Parses `"10ms"`, `"250us"`, `"1.5s"`, `"2m"`, `"100ns"`.
pub(crate) fn parse_text(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (num, unit) = text.split_at(split);
    let value: f64 = num.parse().ok()?;
    let secs = match unit.trim() {
        "ns" => value / 1e9,
        "us" | "µs" => value / 1e6,
        "ms" => value / 1e3,
        "s" => value,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        _ => return None,
    };
    Duration::try_from_secs_f64(secs).ok()
}

pub(crate) fn format_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos.is_multiple_of(1_000_000_000) {
        format!("{}s", d.as_secs())
    } else if nanos.is_multiple_of(1_000_000) {
        format!("{}ms", d.as_millis())
    } else if nanos.is_multiple_of(1_000) {
        format!("{}us", d.as_micros())
    } else {
        format!("{nanos}ns")
    }
}

/// Parses a duration such as `"500ms"`, `"250us"`, `"1.5s"`, `"2m"` or `"1h"` (the unit is
/// required), as the configuration file and the command lines take them.
///
/// # Errors
///
/// [`Error::Config`] when the text is not a decimal number followed by a unit (`ns`, `us`
/// or `µs`, `ms`, `s`, `m` or `min`, `h`), or the duration does not fit a `Duration`.
///
/// ```
/// use std::time::Duration;
/// assert_eq!(swarmbus::config::parse_duration("10ms").unwrap(), Duration::from_millis(10));
/// assert!(swarmbus::config::parse_duration("soon").is_err());
/// ```
pub fn parse_duration(text: &str) -> crate::Result<Duration> {
    parse_text(text).ok_or_else(|| {
        Error::Config(format!(
            "invalid duration `{text}`: expected e.g. 500ms, 10s, 2m"
        ))
    })
}
