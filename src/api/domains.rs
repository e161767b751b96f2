//! `/v1/domains` and `/v1/campaigns`: the landing-domain index and campaigns, paged.

use super::*;

impl Api {
    /// Campaigns over every scanned repository in the store (computed per call).
    pub(super) async fn campaigns(&self, query: &str) -> Result<Response<Body>, ApiError> {
        let number = |name: &str, default: usize, max: usize| match query_param(query, name) {
            None => Ok(default),
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| *n <= max)
                .ok_or_else(|| ApiError::bad_request(format!("{name}: a number up to {max}"))),
        };
        let min = number("min_repositories", 2, usize::MAX)?;
        let limit = number("limit", 100, 1000)?;
        let offset = number("offset", 0, usize::MAX)?;
        let records = self.store.repositories().await?;
        let all = crate::campaigns::cluster(records, min);
        Ok(page("campaigns", all, offset, limit))
    }

    pub(super) async fn domains(&self, query: &str) -> Result<Response<Body>, ApiError> {
        let mut all: Vec<DomainRecord> = self.store.domains().await?;
        let sort = query_param(query, "sort").unwrap_or_else(|| "inputs".into());
        let order = query_param(query, "order");
        let limit: usize = parse_param(query, "limit", 100)?;
        let offset: usize = parse_param(query, "offset", 0)?;
        if limit == 0 || limit > 1000 {
            return Err(ApiError::bad_request("limit must be between 1 and 1000"));
        }
        // Ties are broken by domain name so pages are stable.
        match sort.as_str() {
            "inputs" => all.sort_by(|a, b| b.inputs.cmp(&a.inputs).then(a.domain.cmp(&b.domain))),
            "last_seen" => {
                all.sort_by(|a, b| b.last_seen.cmp(&a.last_seen).then(a.domain.cmp(&b.domain)))
            }
            "first_seen" => all.sort_by(|a, b| {
                b.first_seen
                    .cmp(&a.first_seen)
                    .then(a.domain.cmp(&b.domain))
            }),
            "domain" => all.sort_by(|a, b| b.domain.cmp(&a.domain)),
            other => {
                return Err(ApiError::bad_request(format!(
                    "sort must be inputs, last_seen, first_seen or domain, not {other:?}"
                )))
            }
        }
        // Counts and times sort largest/newest first by default, names A to Z.
        let descending_default = sort != "domain";
        let descending = match order.as_deref() {
            None => descending_default,
            Some("desc") => true,
            Some("asc") => false,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "order must be asc or desc, not {other:?}"
                )))
            }
        };
        if !descending {
            all.reverse();
        }
        Ok(page("domains", all, offset, limit))
    }
}

/// One page of `all` as `{name: [...], "total", "next_offset"}` (`next_offset` null on the
/// last page).
pub(super) fn page<T: Serialize>(
    name: &str,
    all: Vec<T>,
    offset: usize,
    limit: usize,
) -> Response<Body> {
    let total = all.len();
    let items: Vec<T> = all.into_iter().skip(offset).take(limit).collect();
    let next = (offset + items.len() < total).then_some(offset + items.len());
    let mut body = json!({"total": total, "next_offset": next});
    body[name] = json!(items);
    json_response(StatusCode::OK, &body)
}
