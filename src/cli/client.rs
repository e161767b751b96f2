//! The CLI as a client of a running `hoptrace serve` (`watch`, `health`).

use anyhow::Context;

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

/// One call to a running server's API: status and JSON answer.
pub(super) async fn call_server(
    server: &str,
    token: Option<&str>,
    method: http::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> anyhow::Result<(u16, serde_json::Value)> {
    use http_body_util::{BodyExt, Full};
    let authority = server
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    if authority.contains("://") || authority.contains('/') {
        anyhow::bail!("--server: `host:port` or `http://host:port`, not {server}");
    }
    let ask = async {
        let stream = tokio::net::TcpStream::connect(&authority).await?;
        let (mut send, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        let mut req = http::Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, &authority);
        if let Some(t) = token {
            req = req.header(http::header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let bytes = match body {
            Some(b) => {
                req = req.header(http::header::CONTENT_TYPE, "application/json");
                b.to_string().into_bytes()
            }
            None => Vec::new(),
        };
        let resp = send
            .send_request(req.body(Full::new(bytes::Bytes::from(bytes)))?)
            .await?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await?.to_bytes();
        let value = if body.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&body).unwrap_or_else(|_| {
                serde_json::Value::String(String::from_utf8_lossy(&body).into_owned())
            })
        };
        Ok::<_, anyhow::Error>((status, value))
    };
    match tokio::time::timeout(std::time::Duration::from_secs(30), ask).await {
        Ok(r) => r.with_context(|| format!("asking the server at {authority}")),
        Err(_) => anyhow::bail!("the server at {authority} did not answer within 30 s"),
    }
}
