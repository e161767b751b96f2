//! The TOML configuration: every key optional, unknown keys and bad values refused at
//! start-up with the key named, relative paths resolved against the file's folder.

mod duration;
#[cfg(test)]
mod reference;
mod sections;
mod storage;
mod validate;
pub use sections::*;
pub use storage::{Backend, Postgres, Sled, Storage};

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Where `hoptrace` looks for its config when `--config` is not given.
pub const DEFAULT_PATH: &str = "resolver-config/hoptrace.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The OS error is in the message, not a `source` too (printed once, not twice).
    #[error("cannot read config {path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("config {path}: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("config {path}: key `{key}`: {message}")]
    Key {
        path: PathBuf,
        key: String,
        message: String,
    },
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub dns: Dns,
    pub policy: Policy,
    pub limits: Limits,
    pub http: Http,
    pub browser: Browser,
    pub storage: Storage,
    pub server: Server,
    pub tls: Tls,
    pub labels: Labels,
    pub watch: Watch,
    pub hub: Hub,
    pub output: Output,
    /// Client profiles by name (`[profiles.NAME]`), on top of the built-in ones.
    #[serde(deserialize_with = "validate::named")]
    pub profiles: std::collections::BTreeMap<String, Profile>,
    pub egress: EgressPoints,
}

impl Config {
    /// Loads the config named on the command line, or the default file when it exists
    /// (defaults otherwise: a fresh checkout and an installed binary both just work).
    pub fn load(explicit: Option<&Path>) -> Result<Config, ConfigError> {
        match explicit {
            Some(path) => Config::from_file(path),
            None if Path::new(DEFAULT_PATH).exists() => Config::from_file(Path::new(DEFAULT_PATH)),
            None => {
                let c = Config::default();
                c.validate(Path::new("<defaults>"))?;
                Ok(c)
            }
        }
    }

    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        let mut config = Config::parse(&text, path)?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.resolve_paths(base);
        Ok(config)
    }

    /// Parses and validates TOML text; `origin` names it in errors. Paths stay as written.
    pub fn parse(text: &str, origin: &Path) -> Result<Config, ConfigError> {
        let de = toml::Deserializer::parse(text).map_err(|e| ConfigError::Syntax {
            path: origin.to_path_buf(),
            message: e.to_string(),
        })?;
        let config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            // toml's own message carries a source snippet; the first line is the reason.
            let message = e.inner().message().to_string();
            ConfigError::Key {
                path: origin.to_path_buf(),
                key,
                message,
            }
        })?;
        config.validate(origin)?;
        Ok(config)
    }

    fn resolve_paths(&mut self, base: &Path) {
        let join = |p: &mut PathBuf| {
            if !p.as_os_str().is_empty() && p.is_relative() {
                *p = base.join(&*p);
            }
        };
        if let Backend::Sled(sled) = &mut self.storage.backend {
            join(&mut sled.path);
        }
        if let Some(path) = &mut self.browser.chrome_path {
            join(path);
        }
        self.tls.extra_ca_files.iter_mut().for_each(join);
        self.labels.extra_files.iter_mut().for_each(join);
    }

    /// The rules across two keys (each key's own was checked as it was read).
    fn validate(&self, origin: &Path) -> Result<(), ConfigError> {
        self.server
            .validate()
            .and_then(|_| self.watch.validate())
            .map_err(|e| e.at(origin))
    }

    /// `serve --listen ADDR`: `server.listen` replaced, and held to the same rules.
    pub fn set_listen(&mut self, listen: SocketAddr) -> Result<(), ConfigError> {
        self.server.listen = listen;
        self.server
            .validate()
            .map_err(|e| e.at(Path::new("--listen")))
    }

    /// Time for one DNS lookup: `dns.timeout_ms`, or (unset) the hop's whole budget.
    pub fn dns_timeout(&self) -> Duration {
        self.dns.timeout.unwrap_or(self.limits.hop_timeout)
    }

    /// Nameservers as IP addresses and ports, for the DNS client.
    pub fn nameservers(&self) -> impl Iterator<Item = (IpAddr, u16)> + '_ {
        self.dns.nameservers.iter().map(|s| (s.ip(), s.port()))
    }
}
