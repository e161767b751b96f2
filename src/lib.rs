//! hoptrace follows a suspicious link to where it really goes: through HTTP redirects,
//! meta refresh, literal script redirects and well-known wrapper URLs, without ever letting
//! the link reach inside the network it runs in.
//!
//! Data flows one way: input -> [`chain`] -> hops ([`fetch`], [`decode`], [`discover`]) ->
//! [`trace::Trace`] -> [`store`]. Every outbound connection goes through [`egress`]; [`api`]
//! serves it all over HTTP.

pub mod api;
pub mod browser;
pub mod campaigns;
pub mod certs;
pub mod chain;
pub mod cli;
pub mod client;
pub mod compare;
pub mod config;
pub mod decode;
pub mod defang;
pub mod discover;
pub mod download;
pub mod egress;
pub mod export;
pub mod extract;
pub mod favicon;
pub mod fetch;
pub mod har;
pub mod hub;
pub mod input;
pub mod labels;
pub mod profile;
pub mod record;
pub mod scan;
pub mod script;
pub mod server;
pub mod shared;
pub mod store;
pub mod terminal;
pub mod trace;
pub mod watch;
pub(crate) mod wire;

/// Current wall-clock time as milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
