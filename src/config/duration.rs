//! Durations in the config: a whole number in the key's own unit, as ever
//! (`hop_timeout_ms = 5000`, `cache_ttl_seconds = 3600`), or a string with its unit
//! (`"5s"`, `"500ms"`, `"6h"`, `"1h 30m"`). The key keeps its name and its unit in memory.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};

/// A `*_ms` key.
pub fn millis<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    d.deserialize_any(InUnit(Unit::Millis))
}

/// A `*_seconds` key.
pub fn seconds<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    d.deserialize_any(InUnit(Unit::Seconds))
}

#[derive(Debug, Clone, Copy)]
enum Unit {
    Millis,
    Seconds,
}

impl Unit {
    fn ms(self) -> u128 {
        match self {
            Unit::Millis => 1,
            Unit::Seconds => 1000,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Unit::Millis => "milliseconds",
            Unit::Seconds => "seconds",
        }
    }
}

struct InUnit(Unit);

impl<'de> Visitor<'de> for InUnit {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "a whole number of {} or a duration such as \"2s\", \"500ms\", \"6h\"",
            self.0.name()
        )
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<u64, E> {
        Ok(n)
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<u64, E> {
        u64::try_from(n).map_err(|_| E::invalid_value(de::Unexpected::Signed(n), &self))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<u64, E> {
        let unit = self.0;
        let d = humantime::parse_duration(text.trim())
            .map_err(|e| E::custom(format!("{text:?}: {e} ({})", Expecting(&self))))?;
        let ms = d.as_millis();
        if d.subsec_nanos() % 1_000_000 != 0 || ms % unit.ms() != 0 {
            return Err(E::custom(format!(
                "{text:?}: not a whole number of {}",
                unit.name()
            )));
        }
        u64::try_from(ms / unit.ms()).map_err(|_| E::custom(format!("{text:?}: too long")))
    }
}

/// A visitor's `expecting` as text.
struct Expecting<'a>(&'a InUnit);

impl fmt::Display for Expecting<'_> {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        self.0.expecting(f)
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use std::path::Path;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, Path::new("t.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn durations_read_as_numbers_in_the_keys_unit_or_as_strings_with_a_unit() {
        let c = parse("[limits]\nhop_timeout_ms = 2500\ntotal_timeout_ms = \"45s\"\n").unwrap();
        assert_eq!(
            (c.limits.hop_timeout_ms, c.limits.total_timeout_ms),
            (2500, 45_000)
        );
        let c = parse("[storage]\ncache_ttl_seconds = \"6h\"\n[browser]\nsettle_ms = \"500ms\"\n")
            .unwrap();
        assert_eq!(
            (c.storage.cache_ttl_seconds, c.browser.settle_ms),
            (21_600, 500)
        );
        let c = parse("[watch]\ndefault_every_seconds = \"1h 30m\"\n").unwrap();
        assert_eq!(c.watch.default_every_seconds, 5400);
        let c = parse("[hub.schedule]\nevery_seconds = \"6h\"\n").unwrap();
        assert_eq!(c.hub.schedule.every_seconds, 21_600);

        for (text, key, why) in [
            (
                "[limits]\nhop_timeout_ms = \"soon\"\n",
                "limits.hop_timeout_ms",
                "soon",
            ),
            (
                "[storage]\ncache_ttl_seconds = \"1500ms\"\n",
                "storage.cache_ttl_seconds",
                "whole number of seconds",
            ),
            (
                "[limits]\nhop_timeout_ms = -1\n",
                "limits.hop_timeout_ms",
                "milliseconds",
            ),
            (
                "[limits]\nhop_timeout_ms = true\n",
                "limits.hop_timeout_ms",
                "\"500ms\"",
            ),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains(key) && e.contains(why), "{text}: {e}");
        }
    }
}
