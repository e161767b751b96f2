//! The web view's pages, server-rendered with maud: every value shown goes through maud's
//! escaping (the pages show attacker-chosen URLs and titles), no URL from a chain is ever a
//! link or an image source, and the only assets are the view's own stylesheet and script.

use maud::{html, Markup, DOCTYPE};

use crate::campaigns::Campaign;
use crate::defang::defang;
use crate::store::{DomainPage, DomainQuery, DomainRecord, SearchKey, WatchRecord};
use crate::trace::{Label, Trace};
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

pub(super) fn layout(title: &str, ctx: &Ctx, body: Markup) -> Markup {
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
                        a href="/ui/search" { "Search" }
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

pub(super) fn labels(list: &[Label]) -> Markup {
    html! {
        @for l in list {
            span.label.bad[l.is_malicious()] { (l) }
        }
    }
}

/// `value` shown (defanged when it is a name) with a link to every chain that shares it.
pub(super) fn pivot(key: SearchKey, value: &str) -> Markup {
    let shown = match key {
        SearchKey::Host | SearchKey::Domain => defang(value),
        _ => value.to_string(),
    };
    let what = match key {
        SearchKey::Host => "other chains through this host",
        SearchKey::Domain => "other chains through this domain",
        SearchKey::Ip => "other chains on this IP",
        SearchKey::Label => "other chains with this label",
        SearchKey::Title => "other chains with this title",
        SearchKey::Body => "other chains with this body",
        SearchKey::Screenshot => "other chains with this screenshot",
        SearchKey::Favicon => "other chains with this icon",
    };
    html! {
        span.value { (shown) }
        " "
        a.pivot href=(link("/ui/search", &[(key.as_str(), value)])) title=(what) { "⇢ " (what) }
    }
}

/// Download links for the store's exports.
pub(super) fn exports() -> Markup {
    html! {
        p {
            "Export everything stored: "
            a href="/ui/export?format=csv&defang=1" download { "CSV" } " · "
            a href="/ui/export?format=txt&defang=1" download { "text" } " · "
            a href="/ui/export?format=stix" download { "STIX" } " · "
            a href="/ui/export?format=misp" download { "MISP" }
        }
    }
}

/// A URL as text an analyst can copy: defanged, with a copy button (script) for it.
pub(super) fn url_text(url: &str) -> Markup {
    let safe = defang(&crate::defang::refang(url));
    html! {
        span.url { (safe) }
        button.copy type="button" data-copy=(safe) { "copy" }
    }
}

/// `text` with every URL in it defanged (messages name the links they are about).
fn defang_urls(text: &str) -> String {
    text.split(' ')
        .map(|word| match word.contains("://") {
            true => defang(word),
            false => word.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn error(ctx: &Ctx, status: u16, message: &str) -> Markup {
    layout(
        "Error",
        ctx,
        html! {
            h1 { "Error " (status) }
            p.error { (defang_urls(message)) }
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
            h2 { "Many links at once" }
            form method="post" action="/ui/bulk" {
                input type="hidden" name="csrf" value=(ctx.csrf);
                p { textarea name="text" rows="6" cols="90" placeholder="One link a line, or paste a whole description: the links in it are found and resolved" {} }
                label { input type="checkbox" name="fresh" value="1"; " resolve again (not from the cache)" }
                " "
                button type="submit" { "Resolve all" }
            }
            (exports())
        },
    )
}

/// How the chain on a page came to be there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Came {
    /// Resolved by the form just now.
    Resolved,
    /// The form's resolution was answered from the cache.
    Cached,
    /// Looked up in the store.
    Stored,
}

/// Labels, each a way to every chain that carries it.
fn label_pivots(list: &[Label]) -> Markup {
    html! {
        @for l in list {
            a.label.bad[l.is_malicious()] href=(link("/ui/search", &[("label", l.as_str())])) { (l) }
        }
    }
}

pub fn trace(ctx: &Ctx, t: &Trace, watched: bool, came: Came) -> Markup {
    let key = t.input.as_str();
    let shot = t
        .evidence
        .as_ref()
        .and_then(|e| e.screenshot_sha256.as_ref());
    let cloaked = t.labels.iter().any(|l| l == "cloaked");
    // Columns no hop fills are left out: the URLs get the room.
    let any = |f: &dyn Fn(&crate::trace::Hop) -> bool| t.hops.iter().any(f);
    let show_ip = any(&|h| h.ip.is_some());
    let show_imitates = any(&|h| h.imitates.is_some());
    let show_reason = any(&|h| !h.reason.is_empty() || !h.blocked_requests.is_empty());
    let show_labels = any(&|h| !h.labels.is_empty());
    let show_ms = any(&|h| h.elapsed_ms.is_some());
    let landing_domain = crate::labels::landing_domain(t);
    layout(
        "Chain",
        ctx,
        html! {
            h1 { "Chain of " (url_text(&t.input)) }
            @if cloaked {
                p.error { strong { "Cloaked: " } "this link sends different visitors to different places; what is shown is what one visitor saw. Compare it across visitors below." }
            }
            table.facts {
                tr { th { "Outcome" } td { (t.outcome.as_str()) @if let Some(e) = &t.error { " - " (e.kind.as_str()) ": " (e.message) } } }
                tr { th { "Lands on" } td { (url_text(&t.final_url)) } }
                @if let Some(d) = &landing_domain { tr { th { "Landing domain" } td { (pivot(SearchKey::Domain, d)) } } }
                tr { th { "Labels" } td { (label_pivots(&t.labels)) } }
                tr { th { "Resolved" } td { (t.resolved_at.as_deref().unwrap_or(""))
                    @match came { Came::Resolved => {}, Came::Cached => { " (answered from the cache: tick \"resolve again\" for a fresh run)" }, Came::Stored => { " (stored)" } } } }
                @if let Some(e) = &t.evidence {
                    @if let Some(title) = &e.title { tr { th { "Page title" } td { (pivot(SearchKey::Title, title)) } } }
                    @if let Some(sha) = &e.body_sha256 { tr { th { "Body SHA-256" } td { code { (pivot(SearchKey::Body, sha)) } " (" (e.body_bytes) " bytes read)" } } }
                    @if let Some(sha) = &e.screenshot_sha256 { tr { th { "Screenshot SHA-256" } td { code { (pivot(SearchKey::Screenshot, sha)) } } } }
                    @if let Some(sha) = &e.favicon_sha256 { tr { th { "Icon SHA-256" } td { code { (pivot(SearchKey::Favicon, sha)) } } } }
                    @if let Some(m) = e.favicon_mmh3 { tr { th { "Icon hash (Shodan mmh3)" } td { code { (pivot(SearchKey::Favicon, &m.to_string())) } } } }
                    @if let Some(u) = &e.favicon_url { tr { th { "Icon" } td { (url_text(u)) } } }
                }
            }
            p {
                a href=(link("/ui/trace.json", &[("url", key)])) { "JSON" } " · "
                a href=(link("/ui/har", &[("url", key)])) { "HAR" }
                @if let Some(n) = t.evidence.as_ref().and_then(|e| e.html_bytes) {
                    " · " a href=(link("/ui/html", &[("url", key)])) download { "landing page HTML (" (n) " bytes, as text)" }
                }
                @if watched { " · " a href=(link("/ui/history", &[("url", key)])) { "history (watched)" } }
            }
            form method="post" action="/ui/compare" {
                input type="hidden" name="csrf" value=(ctx.csrf);
                input type="hidden" name="url" value=(key);
                button type="submit" { "Compare across visitors" }
            }
            h2 { "The chain" }
            (super::graph::chain(t))
            h2 { "Hops" }
            table.hops {
                tr {
                    th { "#" } th.wide { "URL" } th { "Status" } th { "Via" } th { "Host" }
                    @if show_ip { th { "IP" } }
                    @if show_labels { th { "Labels" } }
                    @if show_imitates { th { "Imitates" } }
                    @if show_reason { th { "Reason" } }
                    @if show_ms { th { "ms" } }
                }
                @for (i, h) in t.hops.iter().enumerate() {
                    tr.blocked[h.blocked] {
                        td { (i) }
                        td.wide { (url_text(&h.url)) }
                        td { @if let Some(s) = h.status { (s) } @else if h.blocked { "blocked" } }
                        td { (h.via.as_str()) @if let Some(e) = h.engine { " (" (format!("{e:?}").to_lowercase()) ")" } }
                        td { @if !h.host.is_empty() { (pivot(SearchKey::Host, &h.host)) } }
                        @if show_ip { td { @if let Some(ip) = &h.ip { (pivot(SearchKey::Ip, ip)) } } }
                        @if show_labels { td { (label_pivots(&h.labels)) } }
                        @if show_imitates { td { (h.imitates.as_deref().map(defang).unwrap_or_default()) } }
                        @if show_reason {
                            td {
                                (h.reason.to_string())
                                @for b in &h.blocked_requests { br; span.blocked { "refused: " (defang(&b.to_string())) } }
                            }
                        }
                        @if show_ms { td { (h.elapsed_ms.map(|m| m.to_string()).unwrap_or_default()) } }
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
                        td { (defang(&o.final_host)) }
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
                        td { a href=(link("/ui/campaign", &[("id", &c.id)])) { code { (c.id) } } }
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
        hop.reason = crate::trace::HopNote::Text(evil.into()).into();
        hop.labels = vec![evil.into()];
        let mut t = Trace::from_hops(evil, vec![hop], Outcome::Landed);
        t.evidence = Some(crate::trace::Evidence {
            title: Some(evil.into()),
            ..Default::default()
        });
        let page = trace(&ctx(), &t, false, Came::Stored).into_string();
        assert!(!page.contains("<img src=x"), "{page}");
        assert!(!page.contains("<script>alert"), "{page}");
        assert!(page.contains("&lt;script&gt;alert(2)&lt;/script&gt;"));
        let home = home(&ctx(), Some(evil), evil).into_string();
        assert!(!home.contains("<img src=x"), "{home}");
        assert!(home.contains(r#"value="&quot;&gt;&lt;img src=x"#), "{home}");
    }

    /// An error page names the link it is about defanged.
    #[test]
    fn error_pages_defang_the_links_they_name() {
        let page =
            error(&ctx(), 404, "no trace stored for http://evil.example/x?a=b").into_string();
        assert!(
            page.contains("no trace stored for hxxp://evil[.]example/x?a=b"),
            "{page}"
        );
    }

    /// A cloaked chain says so; columns no hop fills are left out; hosts are defanged.
    #[test]
    fn cloaked_chains_say_so_and_empty_columns_go() {
        let hop = Hop::new("http://a.example/".into(), "a.example".into(), Via::Input);
        let mut t = Trace::from_hops("http://a.example/", vec![hop], Outcome::Landed);
        let plain = trace(&ctx(), &t, false, Came::Stored).into_string();
        assert!(!plain.contains("Cloaked") && !plain.contains("<th>Imitates</th>"));
        assert!(!plain.contains(">a.example<"), "{plain}");
        t.hops[0].labels = vec!["cloaked".into()];
        t.hops[0].imitates = Some("bit.ly".into());
        t.finish();
        let page = trace(&ctx(), &t, false, Came::Stored).into_string();
        assert!(page.contains("<strong>Cloaked: </strong>"), "{page}");
        assert!(page.contains("<th>Imitates</th>") && page.contains("bit[.]ly"));
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
            publisher_repositories: 0,
            truncated: false,
        };
        let all = [c("landing:a"), c("landing:b"), c("landing:c")];
        // A campaign's chart: its days, the anomaly in red, without script.
        let mut days = std::collections::BTreeMap::new();
        for d in 1..=20 {
            days.insert(format!("2023-01-{d:02}"), 2);
        }
        days.insert("2023-01-25".to_string(), 40);
        let t = crate::campaigns::timeline::timeline("landing:a", &days);
        let one = super::super::graph::chart(&t).into_string();
        assert_eq!(one.matches("<rect").count(), 21, "{one}");
        assert_eq!(one.matches("#c0392b").count(), 1, "{one}");
        assert!(one.contains("2023-01-25: 40 (anomaly)"));
        assert!(!one.contains("<script>") && !one.contains(" style="));
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
