//! A Trace as HAR 1.2 (the HTTP Archive format browsers' developer tools and urlscan-like
//! services exchange): one page for the input, one entry per fetched hop, in order. Hops that
//! were decoded without a request (Google `/url` and other wrappers) or blocked before any
//! connection have no entry; they are listed in the page's comment so the chain reads whole.

use serde_json::{json, Value};

use crate::record::{Header, HttpRecord};
use crate::trace::{Hop, Trace};

/// The HAR of `traces`: a page per Trace (`page_1`, ...), its hops' entries under it.
pub fn har(traces: &[&Trace]) -> Value {
    let mut pages = Vec::new();
    let mut entries = Vec::new();
    for (n, t) in traces.iter().enumerate() {
        let (page, mut more) = page(t, &format!("page_{}", n + 1));
        pages.push(page);
        entries.append(&mut more);
    }
    json!({
        "log": {
            "version": "1.2",
            "creator": {"name": "hoptrace", "version": env!("CARGO_PKG_VERSION")},
            "pages": pages,
            "entries": entries,
        }
    })
}

/// One Trace's page and entries.
fn page(trace: &Trace, id: &str) -> (Value, Vec<Value>) {
    let started = trace
        .hops
        .iter()
        .find_map(|h| h.http.as_ref().map(|r| r.started.clone()))
        .or_else(|| trace.resolved_at.clone())
        .unwrap_or_else(|| crate::trace::rfc3339_ms(crate::now_ms()));
    let entries: Vec<Value> = trace
        .hops
        .iter()
        .enumerate()
        .filter_map(|(i, hop)| {
            let r = hop.http.as_deref()?;
            Some(entry(id, i, hop, r, next_url(trace, i)))
        })
        .collect();
    let unfetched: Vec<String> = trace
        .hops
        .iter()
        .enumerate()
        .filter(|(_, h)| h.http.is_none())
        .map(|(i, h)| {
            let why = h.reason.text().unwrap_or_else(|| h.via.to_string());
            format!("hop {i} {} not fetched: {why}", h.url)
        })
        .collect();
    let title = trace
        .evidence
        .as_ref()
        .and_then(|e| e.title.clone())
        .unwrap_or_else(|| trace.input.clone());
    let page = json!({
        "startedDateTime": started,
        "id": id,
        "title": title,
        "pageTimings": {
            "onContentLoad": -1,
            "onLoad": trace.elapsed_ms.map_or(-1, |m| m as i64),
        },
        "comment": format!(
            "hoptrace chain of {}: outcome {}, {} hops{}{}",
            trace.input,
            trace.outcome.as_str(),
            trace.hops.len(),
            if unfetched.is_empty() { "" } else { "; " },
            unfetched.join("; ")
        ),
    });
    (page, entries)
}

/// Where hop `i` led (its response's redirect target, as the chain followed it).
fn next_url(trace: &Trace, i: usize) -> &str {
    trace.hops.get(i + 1).map_or("", |h| h.url.as_str())
}

fn entry(page: &str, i: usize, hop: &Hop, r: &HttpRecord, next: &str) -> Value {
    let url = hop.url.as_str();
    let status = hop.status.unwrap_or(0);
    let headers = |hs: &[Header]| -> Vec<Value> {
        hs.iter()
            .map(|h| json!({"name": h.name, "value": h.value}))
            .collect()
    };
    let query: Vec<Value> = url::Url::parse(url)
        .map(|u| {
            u.query_pairs()
                .map(|(k, v)| json!({"name": k, "value": v}))
                .collect()
        })
        .unwrap_or_default();
    let reason = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    let mut content = json!({
        "size": r.body_bytes,
        "mimeType": hop.content_type.as_deref().unwrap_or(""),
    });
    if r.body_sha256.is_none() {
        content["comment"] = json!("body not read");
    }
    let mut e = json!({
        "pageref": page,
        "startedDateTime": r.started,
        "time": r.wait_ms + r.receive_ms,
        "request": {
            "method": r.method,
            "url": url,
            "httpVersion": r.http_version,
            "cookies": [],
            "headers": headers(&r.request_headers),
            "queryString": query,
            "headersSize": -1,
            "bodySize": 0,
        },
        "response": {
            "status": status,
            "statusText": reason,
            "httpVersion": r.http_version,
            "cookies": [],
            "headers": headers(&r.response_headers),
            "content": content,
            "redirectURL": if (300..400).contains(&status) { next } else { "" },
            "headersSize": -1,
            "bodySize": if r.body_sha256.is_some() { r.body_bytes as i64 } else { -1 },
        },
        "cache": {},
        "timings": {"send": 0, "wait": r.wait_ms, "receive": r.receive_ms},
        "comment": format!("hop {i}"),
    });
    if let Some(ip) = &hop.ip {
        e["serverIPAddress"] = json!(ip);
    }
    if let Some(sha) = &r.body_sha256 {
        e["_bodySha256"] = json!(sha);
    }
    if let Some(tls) = &r.tls {
        e["_tls"] = json!(tls);
    }
    e
}
