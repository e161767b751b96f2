//! The WebSocket chromiumoxide connects to, carried over Chromium's control pipe.
//!
//! chromiumoxide speaks CDP only over a WebSocket; Chromium is given a pipe instead of a
//! debugging port ([`super::launch`]). The bridge listens on a loopback port for exactly one
//! connection, whose request path must carry a 128-bit random secret that only this process
//! knows, then closes the listener: another local user can neither find the secret (nothing
//! serves it) nor connect once the driver has.

use std::net::Ipv4Addr;
use std::time::Duration;

use async_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use async_tungstenite::tungstenite::Message;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::net::unix::pipe;
use tokio::net::TcpListener;

use super::launch::Frames;

/// How long a connection may take to say which path it wants.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);

/// A bridge waiting for its one connection.
pub struct Bridge {
    /// The URL to give chromiumoxide (`ws://127.0.0.1:PORT/devtools/browser/SECRET`).
    pub url: String,
    listener: TcpListener,
    path: String,
}

impl Bridge {
    /// Binds a loopback port for the bridge.
    pub async fn bind() -> std::io::Result<Bridge> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let path = format!("/devtools/browser/{}", secret()?);
        let url = format!("ws://{}{path}", listener.local_addr()?);
        Ok(Bridge {
            url,
            listener,
            path,
        })
    }

    /// Serves the one connection that names the secret path (others are refused and
    /// closed), then carries its messages to `commands` and the browser's `answers` back,
    /// until either side closes. Waits at most `within` for that connection.
    pub async fn serve(self, within: Duration, commands: pipe::Sender, answers: Frames) {
        let Bridge { listener, path, .. } = self;
        let accepted = tokio::time::timeout(within, async {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let wanted = path.clone();
                // The error type is tungstenite's own (its `Callback`'s), not ours to shrink.
                #[allow(clippy::result_large_err)]
                let check = move |req: &Request, res: Response| {
                    if req.uri().path() == wanted {
                        Ok(res)
                    } else {
                        Err(refusal())
                    }
                };
                let handshake = async_tungstenite::tokio::accept_hdr_async(stream, check);
                if let Ok(Ok(ws)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
                    return ws;
                }
            }
        })
        .await;
        // Closed before the first message goes either way.
        drop(listener);
        match accepted {
            Ok(ws) => carry(ws, commands, answers).await,
            Err(_) => tracing::warn!("the browser driver did not connect to its bridge"),
        }
    }
}

/// Copies the driver's commands into the pipe (NUL-terminated) and the browser's messages
/// back, until one side ends.
async fn carry<S>(
    ws: async_tungstenite::WebSocketStream<S>,
    mut commands: pipe::Sender,
    mut answers: Frames,
) where
    S: futures_util::AsyncRead + futures_util::AsyncWrite + Unpin,
{
    let (mut to_driver, mut from_driver) = ws.split();
    let up = async {
        while let Some(Ok(message)) = from_driver.next().await {
            let text = match message {
                Message::Text(text) => text,
                Message::Close(_) => break,
                _ => continue,
            };
            let mut framed = Vec::with_capacity(text.len() + 1);
            framed.extend_from_slice(text.as_bytes());
            framed.push(0);
            if commands.write_all(&framed).await.is_err() {
                break;
            }
        }
    };
    let down = async {
        loop {
            let frame = match answers.next().await {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!("the browser's control pipe: {e}");
                    break;
                }
            };
            let Ok(text) = String::from_utf8(frame) else {
                tracing::warn!("the browser sent a message that is not UTF-8");
                break;
            };
            if to_driver.send(Message::text(text)).await.is_err() {
                break;
            }
        }
        let _ = to_driver.close(None).await;
    };
    tokio::select! {
        () = up => {}
        () = down => {}
    }
}

fn refusal() -> ErrorResponse {
    let mut res = ErrorResponse::new(Some("not this path".into()));
    *res.status_mut() = http::StatusCode::FORBIDDEN;
    res
}

/// 128 random bits as hex.
fn secret() -> std::io::Result<String> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| std::io::Error::other("no randomness for the bridge's secret"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_connection_without_the_secret_is_refused_and_the_listener_closes_after_one() {
        let bridge = Bridge::bind().await.unwrap();
        let url = bridge.url.clone();
        let addr = url
            .trim_start_matches("ws://")
            .split('/')
            .next()
            .unwrap()
            .to_string();
        let (commands, _their_commands) = pipe::pipe().unwrap();
        let (_their_answers, answers) = pipe::pipe().unwrap();
        let serving = tokio::spawn(bridge.serve(
            Duration::from_secs(10),
            commands,
            Frames::from_receiver(answers),
        ));
        // A guess at the path is refused.
        let guess = format!("ws://{addr}/devtools/browser/00000000000000000000000000000000");
        let refused = async_tungstenite::tokio::connect_async(guess).await;
        assert!(refused.is_err(), "a wrong path must be refused");
        // The right one is taken...
        let (_ws, _) = async_tungstenite::tokio::connect_async(url.clone())
            .await
            .expect("the secret path connects");
        // ...and then nothing listens any more, not even for the right path.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(tokio::net::TcpStream::connect(&addr).await.is_err());
        serving.abort();
    }
}
