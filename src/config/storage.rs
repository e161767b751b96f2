//! `[storage]`: one backend, named by `type`, with that backend's keys only. The file's
//! form is flat (`type = "postgres"` beside `url`); in memory it is an enum, so a sled store
//! has no URL and a PostgreSQL one no folder. Older files name the backend `backend`, and
//! listed every key of both backends (the shipped file did): they read as they always did.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{duration, validate};

/// `[storage]`: where Traces, watches and repositories are kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(try_from = "StorageFile", into = "StorageFile")]
pub struct Storage {
    pub backend: Backend,
    /// How long a stored Trace answers a new request for the same URL (`cached: true`).
    pub cache_ttl: Duration,
}

/// The storage backends: one module each under `store/`.
#[derive(Debug, Clone, PartialEq)]
pub enum Backend {
    Sled(Sled),
    Postgres(Postgres),
}

/// `type = "sled"`: embedded, one process at a time.
#[derive(Debug, Clone, PartialEq)]
pub struct Sled {
    /// The database folder.
    pub path: PathBuf,
}

/// `type = "postgres"`: shared by every process that names the same database.
#[derive(Debug, Clone, PartialEq)]
pub struct Postgres {
    /// `postgres://user:password@host:port/db`.
    pub url: String,
    /// Connections each process keeps at most.
    pub pool_size: u32,
    /// How long a call waits for a connection (connect included) before it fails.
    pub connect_timeout: Duration,
}

impl Default for Storage {
    fn default() -> Self {
        Storage {
            backend: Backend::Sled(Sled::default()),
            cache_ttl: Duration::from_secs(3600),
        }
    }
}

impl Default for Sled {
    fn default() -> Self {
        Sled::at("hoptrace-data")
    }
}

impl Sled {
    /// A sled store in the folder `path`.
    pub fn at(path: impl Into<PathBuf>) -> Sled {
        Sled { path: path.into() }
    }
}

impl Postgres {
    /// A PostgreSQL store at `url`, the other keys at their defaults.
    pub fn at(url: impl Into<String>) -> Postgres {
        Postgres {
            url: url.into(),
            pool_size: 16,
            connect_timeout: Duration::from_secs(5),
        }
    }
}

impl Storage {
    /// The sled folder, when the store is sled.
    pub fn sled_path(&self) -> Option<&std::path::Path> {
        match &self.backend {
            Backend::Sled(s) => Some(&s.path),
            Backend::Postgres(_) => None,
        }
    }
}

/// The backend names, as `type` (and the older `backend`) spell them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub(super) enum Kind {
    /// Embedded, one process at a time: `path`.
    Sled,
    /// Shared by every process that names the same database: `url`, `pool_size`,
    /// `connect_timeout_ms`.
    Postgres,
}

/// `[storage]`: where Traces, watches and repositories are kept: one backend, named by
/// `type`, with that backend's keys only.
// As the file writes it. Each key's own rule is checked as it is read (the error names the
// key); which keys go with which backend is judged after, in `TryFrom`.
#[derive(Debug, Default, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub(super) struct StorageFile {
    /// Which backend keeps the data.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, schemars(extend("default" = "sled")))]
    kind: Option<Kind>,
    /// The older name of `type`: a file that uses it reads as before (keys of the other
    /// backend ignored, as that file form listed them all).
    #[serde(skip_serializing)]
    backend: Option<Kind>,
    /// The sled database folder (`type = "sled"`).
    #[serde(
        deserialize_with = "validate::some_path",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(test, schemars(extend("default" = "hoptrace-data")))]
    path: Option<PathBuf>,
    /// `postgres://user:password@host:port/db` (`type = "postgres"`).
    #[serde(
        deserialize_with = "validate::postgres_url",
        skip_serializing_if = "Option::is_none"
    )]
    url: Option<String>,
    /// Connections each process keeps to PostgreSQL at most (`type = "postgres"`).
    #[serde(
        deserialize_with = "validate::some_within::<_, _, 1, { u32::MAX as u64 }>",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(test, schemars(extend("default" = 16)))]
    pool_size: Option<u32>,
    /// How long a call waits for a database connection (connect included) before it fails
    /// (the API answers 503) (`type = "postgres"`).
    #[serde(
        deserialize_with = "duration::some_millis::<_, 1, { u64::MAX }>",
        serialize_with = "duration::some_text",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(
        test,
        schemars(with = "Option<duration::Text>", extend("default" = "5s"))
    )]
    connect_timeout_ms: Option<Duration>,
    /// How long a stored Trace answers a new request for the same URL (`cached: true`);
    /// errors and timeouts are never answered from the cache.
    #[serde(
        deserialize_with = "duration::some_seconds::<_, 0, { u64::MAX }>",
        serialize_with = "duration::some_text",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(
        test,
        schemars(with = "Option<duration::Text>", extend("default" = "1h"))
    )]
    cache_ttl_seconds: Option<Duration>,
}

/// Why a `[storage]` table does not name one backend (serde reports it at the table).
#[derive(Debug, thiserror::Error)]
pub(super) enum StorageError {
    #[error("`type` and `backend` both name the backend: keep `type`")]
    TypeAndBackend,
    #[error("`url` (a postgres:// URL) is needed when the backend is \"postgres\"")]
    NoPostgresUrl,
    /// `key` belongs to the backend `of`, not to the one `type` names.
    #[error(
        "`{key}` is a key of type = \"{}\", not of this type = \"{}\"",
        of.name(),
        named.name()
    )]
    ForeignKey {
        key: &'static str,
        of: Kind,
        named: Kind,
    },
}

impl TryFrom<StorageFile> for Storage {
    type Error = StorageError;

    fn try_from(f: StorageFile) -> Result<Storage, StorageError> {
        let cache_ttl = f.cache_ttl_seconds.unwrap_or(Storage::default().cache_ttl);
        let kind = match (f.kind, f.backend) {
            (Some(_), Some(_)) => return Err(StorageError::TypeAndBackend),
            (Some(kind), None) => {
                f.foreign_key(kind)?;
                kind
            }
            (None, old) => old.unwrap_or(Kind::Sled),
        };
        let backend = match kind {
            Kind::Sled => Backend::Sled(Sled {
                path: f.path.unwrap_or_else(|| Sled::default().path),
            }),
            Kind::Postgres => {
                let defaults = Postgres::at("");
                Backend::Postgres(Postgres {
                    url: f.url.ok_or(StorageError::NoPostgresUrl)?,
                    pool_size: f.pool_size.unwrap_or(defaults.pool_size),
                    connect_timeout: f.connect_timeout_ms.unwrap_or(defaults.connect_timeout),
                })
            }
        };
        Ok(Storage { backend, cache_ttl })
    }
}

impl StorageFile {
    /// With `type` given, a key of the other backend is a mistake: named, not ignored.
    fn foreign_key(&self, kind: Kind) -> Result<(), StorageError> {
        let (keys, other) = match kind {
            Kind::Sled => (
                vec![
                    ("url", self.url.is_some()),
                    ("pool_size", self.pool_size.is_some()),
                    ("connect_timeout_ms", self.connect_timeout_ms.is_some()),
                ],
                Kind::Postgres,
            ),
            Kind::Postgres => (vec![("path", self.path.is_some())], Kind::Sled),
        };
        match keys.into_iter().find(|(_, set)| *set) {
            Some((key, _)) => Err(StorageError::ForeignKey {
                key,
                of: other,
                named: kind,
            }),
            None => Ok(()),
        }
    }
}

impl Kind {
    /// The name `type` takes (serde's `snake_case` of a one-word variant).
    fn name(self) -> String {
        format!("{self:?}").to_lowercase()
    }
}

impl From<Storage> for StorageFile {
    fn from(s: Storage) -> StorageFile {
        let mut f = StorageFile {
            cache_ttl_seconds: Some(s.cache_ttl),
            ..StorageFile::default()
        };
        match s.backend {
            Backend::Sled(sled) => {
                f.kind = Some(Kind::Sled);
                f.path = Some(sled.path);
            }
            Backend::Postgres(pg) => {
                f.kind = Some(Kind::Postgres);
                f.url = Some(pg.url);
                f.pool_size = Some(pg.pool_size);
                f.connect_timeout_ms = Some(pg.connect_timeout);
            }
        }
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, ConfigError};
    use std::path::Path;

    fn storage(text: &str) -> Result<Storage, ConfigError> {
        Config::parse(text, Path::new("t.toml")).map(|c| c.storage)
    }

    /// The flat form of older files, as the shipped file wrote it (every key of both
    /// backends, `url = ""` for sled), reads into the backend it names.
    #[test]
    fn the_older_flat_form_reads_into_the_backend_it_names() {
        let shipped = "[storage]\nbackend = \"sled\"\npath = \"../hoptrace-data\"\nurl = \"\"\n\
                       pool_size = 16\nconnect_timeout_ms = 5000\ncache_ttl_seconds = 60\n";
        let s = storage(shipped).unwrap();
        assert_eq!(s.backend, Backend::Sled(Sled::at("../hoptrace-data")));
        assert_eq!(s.cache_ttl, Duration::from_secs(60));
        let pg = "[storage]\nbackend = \"postgres\"\npath = \"data\"\n\
                  url = \"postgres://h/d\"\nconnect_timeout_ms = 1500\n";
        let want = Postgres {
            connect_timeout: Duration::from_millis(1500),
            ..Postgres::at("postgres://h/d")
        };
        assert_eq!(storage(pg).unwrap().backend, Backend::Postgres(want));
        assert_eq!(storage("").unwrap(), Storage::default());
    }

    #[test]
    fn the_typed_form_reads_and_is_what_a_config_writes() {
        let text = "[storage]\ntype = \"postgres\"\nurl = \"postgresql://h/d\"\npool_size = 4\n\
                    connect_timeout_ms = \"2s\"\ncache_ttl_seconds = \"10m\"\n";
        let s = storage(text).unwrap();
        let want = Postgres {
            pool_size: 4,
            connect_timeout: Duration::from_secs(2),
            ..Postgres::at("postgresql://h/d")
        };
        assert_eq!(s.backend, Backend::Postgres(want));
        assert_eq!(s.cache_ttl, Duration::from_secs(600));
        let written = toml::to_string(&Config {
            storage: s.clone(),
            ..Config::default()
        })
        .unwrap();
        assert!(
            written.contains("[storage]\ntype = \"postgres\"\n"),
            "{written}"
        );
        assert_eq!(storage(&written).unwrap(), s);
        let sled = storage("[storage]\ntype = \"sled\"\npath = \"db\"\n").unwrap();
        assert_eq!(sled.sled_path(), Some(Path::new("db")));
    }

    /// Each refusal is its own kind, named as before.
    #[test]
    fn refusals_are_kinds_with_their_messages() {
        let sled_with_url = StorageFile {
            kind: Some(Kind::Sled),
            url: Some("postgres://h/d".into()),
            ..StorageFile::default()
        };
        let err = Storage::try_from(sled_with_url).unwrap_err();
        assert!(
            matches!(
                err,
                StorageError::ForeignKey {
                    key: "url",
                    of: Kind::Postgres,
                    named: Kind::Sled
                }
            ),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "`url` is a key of type = \"postgres\", not of this type = \"sled\""
        );
        let bare = StorageFile {
            kind: Some(Kind::Postgres),
            ..StorageFile::default()
        };
        let err = Storage::try_from(bare).unwrap_err();
        assert!(matches!(err, StorageError::NoPostgresUrl), "{err:?}");
        assert_eq!(
            err.to_string(),
            "`url` (a postgres:// URL) is needed when the backend is \"postgres\""
        );
    }

    /// In the typed form a key of the other backend is refused, naming it; so is naming the
    /// backend twice or leaving out PostgreSQL's URL.
    #[test]
    fn keys_of_the_other_backend_are_named() {
        for (text, named) in [
            ("type = \"sled\"\nurl = \"postgres://h/d\"", "`url`"),
            ("type = \"sled\"\npool_size = 4", "`pool_size`"),
            (
                "type = \"postgres\"\nurl = \"postgres://h/d\"\npath = \"x\"",
                "`path`",
            ),
            ("type = \"sled\"\nbackend = \"sled\"", "`backend`"),
            ("type = \"postgres\"", "`url`"),
        ] {
            match storage(&format!("[storage]\n{text}\n")) {
                Err(ConfigError::Key { key, message, .. }) => {
                    assert_eq!(key, "storage", "{text}");
                    assert!(message.contains(named), "{text}: {message}");
                }
                other => panic!("{text}: {other:?}"),
            }
        }
    }
}
