//! `/v1/watch`: add, list and remove watched links.

use super::*;

impl Api {
    pub(super) async fn watch(
        &self,
        method: &Method,
        query: &str,
        body: &[u8],
    ) -> Result<Response<Body>, ApiError> {
        match *method {
            Method::POST => {
                let r: WatchRequest = parse_json(body)?;
                let (entry, new) = self
                    .watcher
                    .add(&r.url, r.every_seconds)
                    .await
                    .map_err(watch_error)?;
                let status = if new {
                    StatusCode::CREATED
                } else {
                    StatusCode::OK
                };
                Ok(json_response(status, &crate::watch::entry_json(&entry)))
            }
            Method::DELETE => {
                let url = query_param(query, "url")
                    .ok_or_else(|| ApiError::bad_request("missing query parameter url"))?;
                if self.watcher.remove(&url).await.map_err(watch_error)? {
                    let mut resp = Response::new(full(Bytes::new()));
                    *resp.status_mut() = StatusCode::NO_CONTENT;
                    Ok(resp)
                } else {
                    Err(ApiError::not_found(format!("{url} is not watched")))
                }
            }
            _ => {
                let list = self.watcher.list().await.map_err(watch_error)?;
                let watches: Vec<_> = list.iter().map(crate::watch::entry_json).collect();
                Ok(json_response(
                    StatusCode::OK,
                    &json!({"watches": watches, "total": watches.len()}),
                ))
            }
        }
    }
}

pub(super) fn watch_error(e: crate::watch::WatchError) -> ApiError {
    use crate::watch::WatchError;
    match e {
        WatchError::Url(_) | WatchError::TooOften { .. } | WatchError::TooRare => {
            ApiError::bad_request(e.to_string())
        }
        WatchError::Store(e) => e.into(),
    }
}
