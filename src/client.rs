//! A client of a running `hoptrace serve`: one request per connection, a time limit, the
//! answer's status, headers and JSON body. The CLI (`watch`, `health`) and the tests use it.

use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderMap, Method};
use http_body_util::{BodyExt, Full};

/// Why a call got no answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("--server: `host:port` or `http://host:port`, not {0}")]
    BadServer(String),
    #[error("asking the server at {server}: {message}")]
    Failed { server: String, message: String },
    #[error("the server at {server} did not answer within {seconds} s")]
    Timeout { server: String, seconds: u64 },
}

/// An answer: status, headers, and the body as JSON (a JSON string when it is not JSON,
/// `null` when empty).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: serde_json::Value,
}

/// Where the server is, with an optional API token.
#[derive(Debug, Clone)]
pub struct ApiClient {
    authority: String,
    token: Option<String>,
    timeout: Duration,
}

impl ApiClient {
    /// `server` is `host:port` or `http://host:port`.
    pub fn new(server: &str) -> Result<ApiClient, ClientError> {
        let authority = server
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        if authority.is_empty() || authority.contains("://") || authority.contains('/') {
            return Err(ClientError::BadServer(server.to_string()));
        }
        Ok(ApiClient {
            authority,
            token: None,
            timeout: Duration::from_secs(30),
        })
    }

    /// Sends `Authorization: Bearer <token>` with every call.
    pub fn with_token(mut self, token: Option<&str>) -> ApiClient {
        self.token = token.map(str::to_string);
        self
    }

    pub fn with_timeout(mut self, timeout: Duration) -> ApiClient {
        self.timeout = timeout;
        self
    }

    /// One call; `body` is sent as JSON. The answer's body is parsed as JSON.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Answer, ClientError> {
        let (status, headers, bytes) = self.call_bytes(method, path, body).await?;
        let body = if bytes.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                serde_json::Value::String(String::from_utf8_lossy(&bytes).into_owned())
            })
        };
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    /// One call; `body` is sent as JSON. The answer's body as sent (an export, say).
    pub async fn call_bytes(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(u16, HeaderMap, Bytes), ClientError> {
        let failed = |e: &dyn std::fmt::Display| ClientError::Failed {
            server: self.authority.clone(),
            message: e.to_string(),
        };
        let ask = async {
            let stream = tokio::net::TcpStream::connect(&self.authority)
                .await
                .map_err(|e| failed(&e))?;
            let (mut send, conn) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                    .await
                    .map_err(|e| failed(&e))?;
            tokio::spawn(conn);
            let mut req = http::Request::builder()
                .method(method)
                .uri(path)
                .header(header::HOST, &self.authority);
            if let Some(t) = &self.token {
                req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
            }
            if body.is_some() {
                req = req.header(header::CONTENT_TYPE, "application/json");
            }
            let req = req
                .body(Full::new(Bytes::from(body.unwrap_or_default())))
                .map_err(|e| failed(&e))?;
            let resp = send.send_request(req).await.map_err(|e| failed(&e))?;
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| failed(&e))?
                .to_bytes();
            Ok((status, headers, bytes))
        };
        tokio::time::timeout(self.timeout, ask)
            .await
            .unwrap_or_else(|_| {
                Err(ClientError::Timeout {
                    server: self.authority.clone(),
                    seconds: self.timeout.as_secs(),
                })
            })
    }
}
