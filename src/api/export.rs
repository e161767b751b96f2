//! `/v1/export`: the store's chains as MISP, STIX 2.1, CSV or text (see [`crate::export`]),
//! streamed: the store is walked and sorted on disk first (a bad filter is still a 400), then
//! the document is written chunk by chunk as the client takes it, in bounded memory.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use http::{header, HeaderValue, StatusCode};
use tokio::sync::mpsc;

use super::extract::Params;
use super::{Api, ApiError};
use crate::export::{parse_since, prepare, ExportError, Filter, Format, Prepared};

impl From<ExportError> for ApiError {
    fn from(e: ExportError) -> ApiError {
        match e {
            ExportError::Store(e) => e.into(),
            e => ApiError::bad_request(e.to_string()),
        }
    }
}

pub async fn export(State(api): State<Arc<Api>>, q: Params) -> Result<Response, ApiError> {
    // Held until the document is sent, not just until it is made: a slow reader holds it.
    let turn = api.exports.clone().try_acquire_owned().map_err(|_| {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "busy",
            format!(
                "{} export(s) already running (server.max_exports); retry when it is done",
                api.max_exports
            ),
        )
        .retry_after(5)
    })?;
    let now = crate::now_ms();
    let format: Format = q.required("format")?.parse().map_err(ExportError::from)?;
    let filter = Filter {
        since_ms: q.get("since").map(|s| parse_since(&s, now)).transpose()?,
        label: q.get("label"),
        campaign: q.get("campaign"),
        defang: matches!(q.get("defang").as_deref(), Some("1" | "true")),
    };
    let prepared = prepare(&api.store, &filter, format, now).await?;
    let mut resp = Response::new(streamed(prepared, turn));
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    Ok(resp)
}

/// Bytes gathered before a chunk is handed to the connection.
const CHUNK: usize = 64 * 1024;

/// Chunks waiting to be sent at most: the writer waits for the client beyond that.
const QUEUED: usize = 4;

/// `prepared` written on a blocking thread into a body of chunks, a few queued at most, so a
/// client that reads slowly slows the writer instead of growing a buffer. The export's turn
/// is given back when the writer is done (or the client went away); a failure midway ends
/// the body with an error, which cuts the connection short.
fn streamed(prepared: Prepared, turn: tokio::sync::OwnedSemaphorePermit) -> axum::body::Body {
    let (tx, rx) = mpsc::channel::<std::io::Result<bytes::Bytes>>(QUEUED);
    tokio::task::spawn_blocking(move || {
        let _turn = turn;
        let mut out = Chunks {
            tx: tx.clone(),
            buf: Vec::with_capacity(CHUNK),
        };
        let done = prepared
            .write(&mut out)
            .map_err(std::io::Error::other)
            .and_then(|_| std::io::Write::flush(&mut out));
        if let Err(e) = done {
            tracing::warn!("export stopped: {e}");
            let _ = tx.blocking_send(Err(e));
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    axum::body::Body::from_stream(stream)
}

/// A writer that hands its bytes to the body in chunks of [`CHUNK`].
struct Chunks {
    tx: mpsc::Sender<std::io::Result<bytes::Bytes>>,
    buf: Vec<u8>,
}

impl std::io::Write for Chunks {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = bytes::Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client left"))
    }
}
