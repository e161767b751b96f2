//! Durations in the config, held as `Duration`: a key takes a whole number in its own unit,
//! as ever (`hop_timeout_ms = 5000`, `cache_ttl_seconds = 3600`), or a string with its unit
//! (`"5s"`, `"500ms"`, `"6h"`, `"1h 30m"`). The key keeps its name; written out (a test's
//! config, say) a duration takes the unit form.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::Serializer;

/// A `*_ms` key, from `LO` to `HI` milliseconds.
pub fn millis<'de, D: Deserializer<'de>, const LO: u64, const HI: u64>(
    d: D,
) -> Result<Duration, D::Error> {
    d.deserialize_any(InUnit::new(Unit::Millis, LO, HI))
}

/// A `*_seconds` key, from `LO` to `HI` seconds.
pub fn seconds<'de, D: Deserializer<'de>, const LO: u64, const HI: u64>(
    d: D,
) -> Result<Duration, D::Error> {
    d.deserialize_any(InUnit::new(Unit::Seconds, LO, HI))
}

/// A `*_ms` key that may be left out (and read from a table of optional keys).
pub fn some_millis<'de, D: Deserializer<'de>, const LO: u64, const HI: u64>(
    d: D,
) -> Result<Option<Duration>, D::Error> {
    millis::<D, LO, HI>(d).map(Some)
}

/// A `*_seconds` key that may be left out.
pub fn some_seconds<'de, D: Deserializer<'de>, const LO: u64, const HI: u64>(
    d: D,
) -> Result<Option<Duration>, D::Error> {
    seconds::<D, LO, HI>(d).map(Some)
}

/// A `*_ms` key where 0 means unset.
pub fn millis_or_none<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    millis::<D, 0, { u64::MAX }>(d).map(|t| Some(t).filter(|t| !t.is_zero()))
}

/// A duration written out with its unit: `"5s"`, `"1h 30m"`.
pub fn text<S: Serializer>(t: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_duration(*t))
}

pub fn some_text<S: Serializer>(t: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => text(t, s),
        None => s.serialize_none(),
    }
}

/// The schema of a duration key, for the generated reference page.
#[cfg(test)]
pub struct Text;

#[cfg(test)]
impl schemars::JsonSchema for Text {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": ["integer", "string"], "format": "duration" })
    }
}

#[derive(Debug, Clone, Copy)]
enum Unit {
    Millis,
    Seconds,
}

impl Unit {
    fn of(self, n: u64) -> Duration {
        match self {
            Unit::Millis => Duration::from_millis(n),
            Unit::Seconds => Duration::from_secs(n),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Unit::Millis => "milliseconds",
            Unit::Seconds => "seconds",
        }
    }
}

/// Reads a duration in `unit`, within `lo..=hi` of that unit.
struct InUnit {
    unit: Unit,
    lo: u64,
    hi: u64,
}

impl InUnit {
    fn new(unit: Unit, lo: u64, hi: u64) -> InUnit {
        InUnit { unit, lo, hi }
    }

    fn within<E: de::Error>(&self, t: Duration) -> Result<Duration, E> {
        let (lo, hi) = (self.unit.of(self.lo), self.unit.of(self.hi));
        if (lo..=hi).contains(&t) {
            return Ok(t);
        }
        let show = |t: Duration| humantime::format_duration(t).to_string();
        Err(E::custom(match (self.lo, self.hi) {
            (1, u64::MAX) => "must be greater than 0".to_string(),
            (_, u64::MAX) => format!("must be at least {}", show(lo)),
            _ => format!("must be from {} to {}", show(lo), show(hi)),
        }))
    }
}

impl<'de> Visitor<'de> for InUnit {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "a whole number of {} or a duration such as \"2s\", \"500ms\", \"6h\"",
            self.unit.name()
        )
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Duration, E> {
        let t = match self.unit {
            Unit::Millis => Some(Duration::from_millis(n)),
            Unit::Seconds => n.checked_mul(1000).map(|_| Duration::from_secs(n)),
        };
        self.within(t.ok_or_else(|| E::custom(format!("{n}: too long")))?)
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Duration, E> {
        match u64::try_from(n) {
            Ok(n) => self.visit_u64(n),
            Err(_) => Err(E::invalid_value(de::Unexpected::Signed(n), &self)),
        }
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Duration, E> {
        let t = humantime::parse_duration(text.trim())
            .map_err(|e| E::custom(format!("{text:?}: {e} ({})", Expecting(&self))))?;
        let whole = match self.unit {
            Unit::Millis => t.subsec_nanos() % 1_000_000 == 0,
            Unit::Seconds => t.subsec_nanos() == 0,
        };
        if !whole {
            return Err(E::custom(format!(
                "{text:?}: not a whole number of {}",
                self.unit.name()
            )));
        }
        if u64::try_from(t.as_millis()).is_err() {
            return Err(E::custom(format!("{text:?}: too long")));
        }
        self.within(t)
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
    use std::time::Duration;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, Path::new("t.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn durations_read_as_numbers_in_the_keys_unit_or_as_strings_with_a_unit() {
        let c = parse("[limits]\nhop_timeout_ms = 2500\ntotal_timeout_ms = \"45s\"\n").unwrap();
        assert_eq!(
            (c.limits.hop_timeout, c.limits.total_timeout),
            (Duration::from_millis(2500), Duration::from_secs(45))
        );
        let c = parse("[storage]\ncache_ttl_seconds = \"6h\"\n[browser]\nsettle_ms = \"500ms\"\n")
            .unwrap();
        assert_eq!(
            (c.storage.cache_ttl, c.browser.settle),
            (Duration::from_secs(21_600), Duration::from_millis(500))
        );
        let c = parse("[watch]\ndefault_every_seconds = \"1h 30m\"\n").unwrap();
        assert_eq!(c.watch.default_every, Duration::from_secs(5400));
        let c = parse("[hub.schedule]\nevery_seconds = 7200\n").unwrap();
        assert_eq!(c.hub.schedule.every, Duration::from_secs(7200));

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
            (
                "[browser]\nsettle_ms = \"11m\"\n",
                "browser.settle_ms",
                "from 1ms to 10m",
            ),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains(key) && e.contains(why), "{text}: {e}");
        }
    }

    /// Written out, a duration key keeps its name and takes the unit form, which reads back.
    #[test]
    fn a_written_config_gives_durations_with_their_unit() {
        let mut c = Config::default();
        c.watch.default_every = Duration::from_secs(5400);
        let text = toml::to_string(&c).unwrap();
        for line in [
            "hop_timeout_ms = \"5s\"",
            "cache_ttl_seconds = \"1h\"",
            "default_every_seconds = \"1h 30m\"",
        ] {
            assert!(text.contains(line), "{line} not in\n{text}");
        }
        let back = parse(&text).unwrap();
        assert_eq!(back.watch.default_every, c.watch.default_every);
    }
}
