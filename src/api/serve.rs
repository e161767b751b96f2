//! The accept loop: every connection under [`super::conn`]'s limits, a graceful stop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::{conn, Api, Peer};

/// Serves `api` on `listener` until `shutdown` resolves; then stops accepting, lets the
/// requests in flight finish (up to `grace`), and returns.
pub async fn serve(
    api: Arc<Api>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()>,
    grace: Duration,
) {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto;
    let limits = api.conn_limits;
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.http2_max_streams)
        .max_header_list_size(64 * 1024)
        .max_pending_accept_reset_streams(20);
    let conns = Arc::new(conn::Conns::default());
    let router = api.router();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (mut stream, peer): (tokio::net::TcpStream, SocketAddr) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: wait a little, keep serving.
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let Some((id, state)) = conns.admit(limits.max_connections) else {
                    api.metrics.connections_refused.inc();
                    tokio::spawn(async move {
                        use tokio::io::AsyncWriteExt;
                        let _ = tokio::time::timeout(
                            Duration::from_secs(1),
                            stream.write_all(&conn::over_capacity()),
                        )
                        .await;
                    });
                    continue;
                };
                let router = router.clone();
                let in_conn = state.clone();
                let service = hyper::service::service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
                    use tower::ServiceExt;
                    req.extensions_mut().insert(Peer(peer.ip()));
                    let busy = conn::InFlight::enter(&in_conn);
                    let answer = router.clone().oneshot(req);
                    async move {
                        let answer = answer.await;
                        drop(busy);
                        answer
                    }
                });
                let io = TokioIo::new(conn::Stamped::new(stream, state.clone()));
                let conn = builder.serve_connection(io, service).into_owned();
                let conn = graceful.watch(conn);
                let conns = conns.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        r = conn => if let Err(e) = r {
                            tracing::debug!("connection from {peer}: {e}");
                        },
                        _ = state.close.notified() => {
                            tracing::debug!("connection from {peer} closed to make room");
                        }
                        _ = state.idle(limits.idle) => {
                            tracing::debug!("connection from {peer} idle; closed");
                        }
                    }
                    conns.remove(id);
                });
            }
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    let _ = api.closing.send(true);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            "requests still running after {} s; stopping anyway",
            grace.as_secs()
        );
    }
}
