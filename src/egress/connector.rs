//! The HTTP client's side of the gate: a hyper-util connector that only ever dials an
//! address [`Egress`] has vetted, and tells the response which address that was.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::{Egress, EgressError};

/// The address a response came from, set on every response's extensions.
#[derive(Debug, Clone, Copy)]
pub struct VettedPeer(pub SocketAddr);

/// A TCP stream to a vetted address.
pub struct VettedStream {
    io: TokioIo<TcpStream>,
    peer: SocketAddr,
}

impl Connection for VettedStream {
    fn connected(&self) -> Connected {
        Connected::new().extra(VettedPeer(self.peer))
    }
}

impl hyper::rt::Read for VettedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for VettedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// `tower::Service<Uri>` over [`Egress`]; wrapped by hyper-rustls for TLS.
#[derive(Clone)]
pub struct EgressConnector {
    egress: Arc<Egress>,
}

impl EgressConnector {
    pub fn new(egress: Arc<Egress>) -> Self {
        EgressConnector { egress }
    }
}

impl tower_service::Service<Uri> for EgressConnector {
    type Response = VettedStream;
    type Error = EgressError;
    type Future = Pin<Box<dyn Future<Output = Result<VettedStream, EgressError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let egress = self.egress.clone();
        Box::pin(async move {
            let scheme = uri.scheme_str().unwrap_or("");
            let default_port = match scheme {
                "http" => 80,
                "https" => 443,
                other => return Err(EgressError::Scheme(other.to_string())),
            };
            let host = uri.host().ok_or(EgressError::NoHost)?;
            let port = uri.port_u16().unwrap_or(default_port);
            let (stream, peer) = egress.connect(host, port).await?;
            Ok(VettedStream {
                io: TokioIo::new(stream),
                peer,
            })
        })
    }
}
