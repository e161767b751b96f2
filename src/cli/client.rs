//! The CLI as a client of a running `hoptrace serve`: `watch`, `health`, and `resolve`,
//! `export`, `campaigns`, `compare` with `--server` (or `HOPTRACE_SERVER`), the token from
//! `HOPTRACE_TOKEN`. Also what a command says when a running server holds the store.

use crate::client::ApiClient;
use crate::config::Config;
use crate::store::{Store, StoreError};

use super::*;

pub(super) async fn health(args: HealthArgs) -> Result<(), Failure> {
    let server = args.server.to_string();
    let ask = call_server(&server, None, http::Method::GET, "/healthz", None);
    match tokio::time::timeout(std::time::Duration::from_secs(5), ask).await {
        Ok(Ok((200, _))) => Ok(()),
        Ok(Ok((status, _))) => Err(anyhow::anyhow!("{server} answered {status}").into()),
        Ok(Err(e)) => Err(anyhow::anyhow!("{e:#}").into()),
        Err(_) => Err(anyhow::anyhow!("{server} did not answer within 5 s").into()),
    }
}

/// One call to a running server's API: status and JSON answer (through the library's
/// [`crate::client::ApiClient`], which the tests use too).
pub(super) async fn call_server(
    server: &str,
    token: Option<&str>,
    method: http::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> anyhow::Result<(u16, serde_json::Value)> {
    let client = crate::client::ApiClient::new(server)?.with_token(token);
    let body = body.map(|b| b.to_string().into_bytes());
    let answer = client.call(method, path, body).await?;
    Ok((answer.status, answer.body))
}

/// A 2xx answer's status, else the server's own message as the error.
pub(super) fn answered(status: u16, answer: &serde_json::Value) -> Result<u16, Failure> {
    if (200..300).contains(&status) {
        return Ok(status);
    }
    let message = answer["error"]["message"]
        .as_str()
        .map_or(answer.to_string(), str::to_string);
    Err(anyhow::anyhow!("the server answered {status}: {message}").into())
}

/// The server a command works through (`--server`), when one is named.
pub(super) struct Remote(ApiClient);

impl Remote {
    /// `None` without `--server` / `HOPTRACE_SERVER`. Calls may take as long as the server's
    /// own request limit (a batch of resolutions).
    pub(super) fn new(arg: &ServerArg) -> Result<Option<Remote>, Failure> {
        let Some(addr) = arg.addr.as_deref().filter(|a| !a.is_empty()) else {
            return Ok(None);
        };
        let client = ApiClient::new(addr)
            .map_err(|e| usage(e.into()))?
            .with_token(arg.token.as_deref())
            .with_timeout(std::time::Duration::from_secs(600));
        Ok(Some(Remote(client)))
    }

    /// A call answered with JSON.
    pub(super) async fn json(
        &self,
        method: http::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<serde_json::Value, Failure> {
        let body = body.map(|b| b.to_string().into_bytes());
        let answer = self.0.call(method, path, body).await?;
        answered(answer.status, &answer.body)?;
        Ok(answer.body)
    }

    /// A GET answered with a document of any type (an export), as sent.
    pub(super) async fn document(&self, path: &str) -> Result<bytes::Bytes, Failure> {
        let (status, _, bytes) = self.0.call_bytes(http::Method::GET, path, None).await?;
        if !(200..300).contains(&status) {
            let answer = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
            answered(status, &answer)?;
        }
        Ok(bytes)
    }
}

/// `path?name=value&...` with the values percent-encoded; absent ones left out.
pub(super) fn with_query(path: &str, params: &[(&str, Option<&str>)]) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in params {
        if let Some(value) = value {
            query.append_pair(name, value);
        }
    }
    match query.finish() {
        q if q.is_empty() => path.to_string(),
        q => format!("{path}?{q}"),
    }
}

/// The file in a sled store's folder where `hoptrace serve` writes the address it listens on,
/// so a command that finds the store held can say where the server is.
pub(super) const SERVE_ADDR_FILE: &str = "hoptrace-serve.addr";

/// Opens the store. When another process holds it, the error says how to go on: through the
/// running server with `--server` when the command takes it (`through_server`).
pub(super) async fn open_store(config: &Config, through_server: bool) -> Result<Store, Failure> {
    Store::open(&config.storage).await.map_err(|e| match e {
        StoreError::Locked { .. } => {
            let running = config
                .storage
                .sled_path()
                .and_then(|path| std::fs::read_to_string(path.join(SERVE_ADDR_FILE)).ok())
                .map(|a| a.trim().to_string())
                .filter(|a| !a.is_empty() && a.len() < 100);
            let how = match (running, through_server) {
                (Some(a), true) => format!(
                    "hoptrace serve is running: use --server http://{a} or HOPTRACE_SERVER=http://{a} (the token, if any, in HOPTRACE_TOKEN), or stop it"
                ),
                (Some(a), false) => {
                    format!("hoptrace serve is running at http://{a}: stop it first, or use its API")
                }
                (None, true) => "if it is hoptrace serve, use --server http://HOST:PORT or HOPTRACE_SERVER; otherwise wait for the other process to finish".to_string(),
                (None, false) => "wait for the other process to finish, or stop it".to_string(),
            };
            anyhow::anyhow!("{e}: {how}").into()
        }
        e => e.into(),
    })
}
