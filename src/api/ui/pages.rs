//! The web view's pages, server-rendered with maud: every value shown goes through maud's
//! escaping (the pages show attacker-chosen URLs and titles), no URL from a chain is ever a
//! link or an image source, and the only assets are the view's own stylesheet and script.

use maud::{html, Markup, DOCTYPE};

use crate::campaigns::Campaign;
use crate::defang::defang;
use crate::store::{DomainPage, DomainQuery, DomainRecord, WatchRecord};
use crate::trace::Trace;
use crate::watch::History;

/// What every page needs to know about who is looking.
pub struct Ctx {
    /// The CSRF token for this session's forms (empty without a login).
    pub csrf: String,
    /// A login is in force (the server has tokens): show the log-out button.
    pub logged_in: bool,
    /// Show the view's navigation (not on the login page: it all leads back there).
    pub nav: bool,
}

/// A link inside the web view: `path` with the query `params`, encoded.
pub fn link(path: &str, params: &[(&str, &str)]) -> String {
    if params.is_empty() {
        return path.to_string();
    }
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    format!("{path}?{query}")
}

fn layout(title: &str, ctx: &Ctx, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " - hoptrace" }
                link rel="stylesheet" href="/ui/app.css";
                script src="/ui/app.js" defer {}
            }
            body {
                header {
                    a.brand href="/ui/" { "hoptrace" }
                    @if ctx.nav {
                        a href="/ui/" { "Resolve" }
                        a href="/ui/domains" { "Landing domains" }
                        a href="/ui/campaigns" { "Campaigns" }
                        a href="/ui/watches" { "Watched links" }
                    }
                    @if ctx.logged_in {
                        form method="post" action="/ui/logout" {
                            input type="hidden" name="csrf" value=(ctx.csrf);
                            button type="submit" { "Log out" }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

fn labels(list: &[String]) -> Markup {
    html! {
        @for l in list {
            span.label.bad[crate::labels::is_malicious(l)] { (l) }
        }
    }
}

/// A URL as text an analyst can copy: defanged, with a copy button (script) for it.
fn url_text(url: &str) -> Markup {
    let safe = defang(&crate::defang::refang(url));
    html! {
        span.url { (safe) }
        button.copy type="button" data-copy=(safe) { "copy" }
    }
}

pub fn error(ctx: &Ctx, status: u16, message: &str) -> Markup {
    layout(
        "Error",
        ctx,
        html! {
            h1 { "Error " (status) }
            p.error { (message) }
        },
    )
}

pub fn login(error: Option<&str>) -> Markup {
    let ctx = Ctx {
        csrf: String::new(),
        logged_in: false,
        nav: false,
    };
    layout(
        "Log in",
        &ctx,
        html! {
            h1 { "Log in" }
            @if let Some(e) = error { p.error { (e) } }
            form method="post" action="/ui/login" {
                p { label { "API token " input type="password" name="token" autocomplete="current-password" autofocus; } }
                button type="submit" { "Log in" }
            }
        },
    )
}

pub fn home(ctx: &Ctx, error: Option<&str>, value: &str) -> Markup {
    layout(
        "Resolve",
        ctx,
        html! {
            h1 { "Resolve a link" }
            @if let Some(e) = error { p.error { (e) } }
            form method="post" action="/ui/resolve" {
                input type="hidden" name="csrf" value=(ctx.csrf);
                p {
                    input type="text" name="url" value=(value) placeholder="hxxps://example[.]com/path" autofocus;
                    " "
                    label { input type="checkbox" name="fresh" value="1"; " resolve again (not from the cache)" }
                }
                button type="submit" { "Resolve" }
            }
            p.muted { "Defanged links (hxxp, [.]) are accepted. Resolving follows the link through hoptrace's egress gate; your browser never contacts it." }
        },
    )
}

pub fn trace(ctx: &Ctx, t: &Trace, watched: bool) -> Markup {
    let key = t.input.as_str();
    let shot = t
        .evidence
        .as_ref()
        .and_then(|e| e.screenshot_sha256.as_ref());
    layout(
        "Chain",
        ctx,
        html! {
            h1 { "Chain of " (url_text(&t.input)) }
            table {
                tr { th { "Outcome" } td { (t.outcome.as_str()) @if let Some(e) = &t.error { " - " (e.kind.as_str()) ": " (e.message) } } }
                tr { th { "Lands on" } td { (url_text(&t.final_url)) } }
                tr { th { "Labels" } td { (labels(&t.labels)) } }
                tr { th { "Resolved" } td { (t.resolved_at.as_deref().unwrap_or("")) @if t.cached { " (from the store)" } } }
                @if let Some(e) = &t.evidence {
                    @if let Some(title) = &e.title { tr { th { "Page title" } td { (title) } } }
                    @if let Some(sha) = &e.body_sha256 { tr { th { "Body SHA-256" } td { code { (sha) } " (" (e.body_bytes) " bytes read)" } } }
                }
            }
            p {
                a href=(link("/ui/trace.json", &[("url", key)])) { "JSON" } " · "
                a href=(link("/ui/har", &[("url", key)])) { "HAR" }
                @if watched { " · " a href=(link("/ui/history", &[("url", key)])) { "history (watched)" } }
            }
            h2 { "Hops" }
            table {
                tr { th { "#" } th { "URL" } th { "Status" } th { "Via" } th { "Host" } th { "IP" } th { "Labels" } th { "Imitates" } th { "Reason" } th { "ms" } }
                @for (i, h) in t.hops.iter().enumerate() {
                    tr.blocked[h.blocked] {
                        td { (i) }
                        td { (url_text(&h.url)) }
                        td { @if let Some(s) = h.status { (s) } @else if h.blocked { "blocked" } }
                        td { (h.via.as_str()) }
                        td { (h.host) }
                        td { (h.ip.as_deref().unwrap_or("")) }
                        td { (labels(&h.labels)) }
                        td { (h.imitates.as_deref().unwrap_or("")) }
                        td {
                            (h.reason.as_deref().unwrap_or(""))
                            @for b in &h.blocked_requests { br; span.blocked { "refused: " (b) } }
                        }
                        td { (h.elapsed_ms.map(|m| m.to_string()).unwrap_or_default()) }
                    }
                }
            }
            @if shot.is_some() {
                h2 { "Landing page" }
                img.shot src=(link("/ui/screenshot", &[("url", key)])) alt="Screenshot of the landing page";
            }
        },
    )
}

pub fn history(ctx: &Ctx, h: &History) -> Markup {
    let s = &h.summary;
    let new_at: Vec<(&str, &str)> = s
        .new_hosts
        .iter()
        .map(|n| (n.host.as_str(), n.first_seen.as_str()))
        .collect();
    let mut last_url: std::collections::HashMap<Option<(String, String)>, &str> =
        Default::default();
    layout(
        "History",
        ctx,
        html! {
            h1 { "History of " (url_text(&h.url)) }
            p {
                (s.observations) " observations from " (s.first_seen) " to " (s.last_seen) "; "
                (s.distinct_final_urls) " distinct final URLs"
                @if s.rotating { "; " strong { "rotating" } }
                @if s.cloaked { "; " strong { "cloaked" } }
            }
            p { "Landing hosts: " @for host in &s.distinct_final_hosts { span.label { (host) } } }
            table {
                tr { th { "At" } th { "Visitor" } th { "Outcome" } th { "Final URL" } th { "Host" } th { "Labels" } th { "" } }
                @for o in &h.observations {
                    @let cell = o.cell.as_ref().map(|c| (c.profile.clone(), c.via.clone()));
                    @let rotated = last_url.insert(cell.clone(), &o.final_url).is_some_and(|before| before != o.final_url);
                    @let new_host = new_at.contains(&(o.final_host.as_str(), o.at.as_str()));
                    tr.new[new_host] {
                        td { (o.at) }
                        td { @if let Some((p, v)) = &cell { (p) " via " (v) } }
                        td { (o.outcome.as_str()) }
                        td { (url_text(&o.final_url)) }
                        td { (o.final_host) }
                        td { (labels(&o.landing_labels)) }
                        td { @if new_host { strong { "new host" } " " } @if rotated { "rotated" } }
                    }
                }
            }
        },
    )
}

/// Paging links for `offset` of `total` by `limit`, keeping `keep` (e.g. the sort).
fn pages(path: &str, offset: usize, limit: usize, total: usize, keep: &[(&str, &str)]) -> Markup {
    let at = |o: usize| {
        let (o, l) = (o.to_string(), limit.to_string());
        let mut p: Vec<(&str, &str)> = keep.to_vec();
        p.push(("offset", &o));
        p.push(("limit", &l));
        link(path, &p)
    };
    html! {
        nav.pages {
            @if offset > 0 { a rel="prev" href=(at(offset.saturating_sub(limit))) { "previous" } }
            span.muted {
                @if total > 0 { ((offset + 1).min(total)) "-" ((offset + limit).min(total)) " of " }
                (total) " "
            }
            @if offset + limit < total { a rel="next" href=(at(offset + limit)) { "next" } }
        }
    }
}

pub fn domains(ctx: &Ctx, page: &DomainPage, q: &DomainQuery, sort: &str) -> Markup {
    layout(
        "Landing domains",
        ctx,
        html! {
            h1 { "Landing domains" }
            p.muted {
                "Sort: "
                @for s in ["inputs", "last_seen", "first_seen", "domain"] {
                    a href=(link("/ui/domains", &[("sort", s)])) { (s) } " "
                }
            }
            table {
                tr { th { "Domain" } th { "Inputs" } th { "First seen" } th { "Last seen" } th { "Labels" } }
                @for d in &page.domains {
                    tr { td { a href=(link("/ui/domain", &[("d", &d.domain)])) { (defang(&d.domain)) } } td { (d.inputs) } td { (d.first_seen) } td { (d.last_seen) } td { (labels(&d.labels)) } }
                }
            }
            (pages("/ui/domains", q.offset, q.limit, page.total, &[("sort", sort)]))
        },
    )
}

pub fn domain(ctx: &Ctx, d: &DomainRecord, inputs: &[String]) -> Markup {
    layout(
        "Landing domain",
        ctx,
        html! {
            h1 { "Landing domain " (defang(&d.domain)) }
            p { (d.inputs) " inputs, first " (d.first_seen) ", last " (d.last_seen) " " (labels(&d.labels)) }
            table {
                tr { th { "Input that landed here" } th { "" } }
                @for i in inputs {
                    tr { td { (url_text(i)) } td { a href=(link("/ui/trace", &[("url", i)])) { "chain" } } }
                }
            }
        },
    )
}

pub fn campaigns(ctx: &Ctx, all: &[Campaign], offset: usize, limit: usize) -> Markup {
    layout(
        "Campaigns",
        ctx,
        html! {
            h1 { "Campaigns" }
            table {
                tr { th { "Campaign" } th { "Repositories" } th { "Users" } th { "Landing hosts" } th { "Labels" } th { "Seen" } }
                @for c in all.iter().skip(offset).take(limit) {
                    tr {
                        td { code { (c.id) } }
                        td { (c.repository_count) " (" (c.malicious) " malicious)" }
                        td { (c.user_count) }
                        td { @for h in &c.landing_hosts { (defang(h)) br; } }
                        td { (labels(&c.labels)) }
                        td { (c.first_seen) " to " (c.last_seen) }
                    }
                }
            }
            (pages("/ui/campaigns", offset, limit, all.len(), &[]))
        },
    )
}

pub fn watches(ctx: &Ctx, list: &[WatchRecord]) -> Markup {
    layout(
        "Watched links",
        ctx,
        html! {
            h1 { "Watched links" }
            form method="post" action="/ui/watch" {
                input type="hidden" name="csrf" value=(ctx.csrf);
                input type="text" name="url" placeholder="hxxp://tinurll[.]com/file-7";
                " every " input type="text" name="every" class="short" placeholder="3600"; " s "
                button type="submit" { "Watch" }
            }
            table {
                tr { th { "Link" } th { "Every (s)" } th { "Visitors" } th { "Last run" } th { "" } }
                @for w in list {
                    tr {
                        td { (url_text(&w.url)) @if w.auto { " " span.label { "auto" } } }
                        td { (w.every_seconds) }
                        td { (w.profiles.join(", ")) @if !w.via.is_empty() { " via " (w.via.join(", ")) } }
                        td { (w.last_run_ms.map(crate::trace::rfc3339).unwrap_or_default()) }
                        td { a href=(link("/ui/history", &[("url", &w.url)])) { "history" } }
                    }
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::model::Observation;
    use crate::trace::{Hop, Outcome, Via};

    fn ctx() -> Ctx {
        Ctx {
            csrf: "c".into(),
            logged_in: true,
            nav: true,
        }
    }

    /// Whatever a page or a link chose to be, it is text: no markup of its own survives.
    #[test]
    fn attacker_text_is_escaped() {
        let evil = r#""><img src=x onerror=alert(1)><script>alert(2)</script>"#;
        let mut hop = Hop::new(
            format!("http://a.example/{evil}"),
            "a.example".into(),
            Via::Input,
        );
        hop.reason = Some(evil.into());
        hop.labels = vec![evil.into()];
        let mut t = Trace::from_hops(evil, vec![hop], Outcome::Landed);
        t.evidence = Some(crate::trace::Evidence {
            title: Some(evil.into()),
            ..Default::default()
        });
        let page = trace(&ctx(), &t, false).into_string();
        assert!(!page.contains("<img src=x"), "{page}");
        assert!(!page.contains("<script>alert"), "{page}");
        assert!(page.contains("&lt;script&gt;alert(2)&lt;/script&gt;"));
        let home = home(&ctx(), Some(evil), evil).into_string();
        assert!(!home.contains("<img src=x"), "{home}");
        assert!(home.contains(r#"value="&quot;&gt;&lt;img src=x"#), "{home}");
    }

    /// Campaigns page by page, their hosts defanged.
    #[test]
    fn campaigns_are_paged() {
        let c = |id: &str| Campaign {
            id: id.into(),
            landing_hosts: vec!["cdn.payload.example".into()],
            repositories: vec!["u/r".into()],
            users: vec!["u".into()],
            labels: vec!["payload-host".into()],
            first_seen: "2026-11-01".into(),
            last_seen: "2026-11-02".into(),
            infrastructure: vec![],
            repository_count: 3,
            user_count: 2,
            malicious: 3,
        };
        let all = [c("landing:a"), c("landing:b"), c("landing:c")];
        let page = campaigns(&ctx(), &all, 0, 2).into_string();
        assert!(
            page.contains("landing:a") && page.contains("landing:b") && !page.contains("landing:c")
        );
        assert!(page.contains("cdn[.]payload[.]example"));
        assert!(
            page.contains(r#"rel="next" href="/ui/campaigns?offset=2&amp;limit=2""#),
            "{page}"
        );
        let last = campaigns(&ctx(), &all, 2, 2).into_string();
        assert!(
            last.contains("landing:c")
                && last.contains("3-3 of 3")
                && !last.contains(r#"rel="next""#)
        );
    }

    /// The history marks where a visitor's final URL rotated and when a new host appeared.
    #[test]
    fn history_marks_rotation_and_new_hosts() {
        let o = Observation::sample;
        let obs = vec![
            o("t1", "http://a/1", "a"),
            o("t2", "http://a/2", "a"),
            o("t3", "http://b/3", "b"),
        ];
        let h = History {
            url: "http://short/x".into(),
            summary: crate::watch::summarize(&obs),
            observations: obs,
        };
        let page = history(&ctx(), &h).into_string();
        assert_eq!(page.matches("rotated").count(), 2, "{page}");
        assert_eq!(page.matches("new host").count(), 1);
        assert!(page.contains("<strong>rotating</strong>"));
    }
}
