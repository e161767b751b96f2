//! What a page's CDP events say about its chain: navigations committed and asked for (a
//! form POST with its body), responses held at their headers and refused when they are
//! downloads, the main document failing, the virtual-time budget running out — forwarded to
//! the channel the watch loop reads.

use chromiumoxide::cdp::browser_protocol::browser::EventDownloadWillBegin;
use chromiumoxide::cdp::browser_protocol::emulation::EventVirtualTimeBudgetExpired;
use chromiumoxide::cdp::browser_protocol::fetch::{
    ContinueRequestParams, EventRequestPaused, FailRequestParams,
};
use chromiumoxide::cdp::browser_protocol::network::{
    ErrorReason, EventLoadingFailed, EventRequestWillBeSent, RequestId, ResourceType,
};
use chromiumoxide::cdp::browser_protocol::page::{
    ClientNavigationReason, EventFrameNavigated, EventFrameRequestedNavigation,
};
use chromiumoxide::{Browser, Page};
use futures_util::StreamExt;
use tokio::runtime::Handle;
use tokio::sync::mpsc;

use super::cdp::{Seen, CALL_TIMEOUT};
use crate::trace::Via;

/// Why a held response must not go on: a download known from its headers (the HTTP
/// fetcher's own rule), or nothing.
fn refuse_reason(e: &EventRequestPaused) -> Option<String> {
    let headers = e.response_headers.as_ref()?;
    let mut map = http::HeaderMap::new();
    for h in headers {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(h.name.as_bytes()),
            http::HeaderValue::from_str(&h.value),
        ) {
            map.append(name, value);
        }
    }
    crate::download::download_reason(&map)
}

fn without_fragment(url: &str) -> &str {
    url.split('#').next().unwrap_or(url)
}

/// A POST request's body as the page sent it (a form's, form-encoded); what Chromium left
/// out of the event (a body too long for it) is missing.
fn form_body(request: &chromiumoxide::cdp::browser_protocol::network::Request) -> String {
    use base64::Engine as _;
    let mut body = Vec::new();
    for entry in request.post_data_entries.iter().flatten() {
        if let Some(bytes) = &entry.bytes {
            let raw: &str = bytes.as_ref();
            if let Ok(b) = base64::engine::general_purpose::STANDARD.decode(raw) {
                body.extend_from_slice(&b);
            }
        }
    }
    String::from_utf8_lossy(&body).into_owned()
}

/// Forwards the page's events that carry the chain to a channel the watch loop reads.
pub(super) async fn listen(
    browser: &Browser,
    rt: &Handle,
    page: &Page,
) -> Result<mpsc::UnboundedReceiver<Seen>, chromiumoxide::error::CdpError> {
    let (tx, events) = mpsc::unbounded_channel();
    // The main frame's id is its target's id.
    let main = page.target_id().as_ref().to_string();
    let mut committed = page.event_listener::<EventFrameNavigated>().await?;
    let mut requested = page
        .event_listener::<EventFrameRequestedNavigation>()
        .await?;
    let mut budget = page
        .event_listener::<EventVirtualTimeBudgetExpired>()
        .await?;
    let mut downloads = browser.event_listener::<EventDownloadWillBegin>().await?;
    let mut paused = page.event_listener::<EventRequestPaused>().await?;
    let mut sent = page.event_listener::<EventRequestWillBeSent>().await?;
    let mut failed = page.event_listener::<EventLoadingFailed>().await?;
    let fetcher = page.clone();
    // On the connection's runtime, which outlives any caller's.
    rt.spawn(async move {
        // The main frame's document requests, so that their failure is told from others'.
        let mut documents: Vec<RequestId> = Vec::new();
        // A form POST of the main frame, asked for but its request (with the body) not yet
        // seen; or the request seen first.
        let mut posting: Option<String> = None;
        let mut posted: Option<(String, String)> = None;
        loop {
            // Biased: a commit queued with the request it led to is seen first.
            let seen = tokio::select! {
                biased;
                Some(e) = committed.next() => match e.frame.parent_id {
                    None => Seen::Committed(e.frame.url.clone()),
                    Some(_) => continue,
                },
                Some(e) = requested.next() => {
                    if e.frame_id.as_ref() != main {
                        continue;
                    }
                    let via = match e.reason {
                        ClientNavigationReason::MetaTagRefresh
                        | ClientNavigationReason::HttpHeaderRefresh => Via::MetaRefresh,
                        _ => Via::Javascript,
                    };
                    // A POST's body comes with its request, told apart from this.
                    if e.reason == ClientNavigationReason::FormSubmissionPost {
                        match posted.take() {
                            Some((url, body)) if url == without_fragment(&e.url) => Seen::Requested(url, via, Some(body)),
                            _ => {
                                posting = Some(without_fragment(&e.url).to_string());
                                continue;
                            }
                        }
                    } else {
                        Seen::Requested(e.url.clone(), via, None)
                    }
                }
                Some(e) = paused.next() => {
                    let refuse = refuse_reason(&e);
                    let id = e.request_id.clone();
                    let p = fetcher.clone();
                    // Answered off this loop, so a slow answer holds up no event.
                    let answer = refuse.is_some();
                    tokio::spawn(async move {
                        let _ = if answer {
                            tokio::time::timeout(CALL_TIMEOUT, p.execute(FailRequestParams::new(id, ErrorReason::BlockedByClient))).await.map(|r| r.map(|_| ()))
                        } else {
                            tokio::time::timeout(CALL_TIMEOUT, p.execute(ContinueRequestParams::new(id))).await.map(|r| r.map(|_| ()))
                        };
                    });
                    match refuse {
                        None => continue,
                        // The main frame going to a file: that is the chain's next (and last) hop.
                        Some(_) if e.resource_type == ResourceType::Document && e.frame_id.as_ref() == main => {
                            Seen::Download(e.request.url.clone())
                        }
                        Some(why) => Seen::Refused(super::RefusedDownload { url: e.request.url.clone(), why }),
                    }
                }
                Some(e) = sent.next() => {
                    let main_document = e.r#type == Some(ResourceType::Document)
                        && e.frame_id.as_ref().is_some_and(|f| f.as_ref() == main);
                    // A page makes few of these without navigating away; keep the last ones.
                    if main_document {
                        if documents.len() == 16 {
                            documents.remove(0);
                        }
                        documents.push(e.request_id.clone());
                    }
                    if !(main_document && e.request.method == "POST") {
                        continue;
                    }
                    let url = e.request.url.clone();
                    let body = form_body(&e.request);
                    match posting.take() {
                        Some(asked) if asked == url => Seen::Requested(url, Via::Javascript, Some(body)),
                        _ => {
                            posted = Some((url, body));
                            continue;
                        }
                    }
                }
                Some(e) = failed.next() => {
                    // A navigation cut short by another (the page moving on) is no failure.
                    if !documents.contains(&e.request_id) || e.canceled == Some(true) {
                        continue;
                    }
                    Seen::Failed(e.error_text.clone())
                }
                Some(_) = budget.next() => Seen::BudgetExpired,
                Some(e) = downloads.next() => {
                    if e.frame_id.as_ref() != main {
                        continue;
                    }
                    Seen::Download(e.url.clone())
                }
                else => break,
            };
            if tx.send(seen).is_err() {
                break; // the visit is over
            }
        }
    });
    Ok(events)
}
