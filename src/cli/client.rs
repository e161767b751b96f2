//! The CLI as a client of a running `hoptrace serve` (`watch`, `health`).

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
