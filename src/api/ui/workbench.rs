//! The analyst's pages: search over everything resolved, pivots from a value to every chain
//! that shares it, a campaign drilled down to its repositories and infrastructure, many links
//! resolved at once and one link compared across visitors. Values from chains are text,
//! defanged where they are names or URLs; the only links are into the view itself.

use maud::{html, Markup};

use super::graph::{self, chart, Column};
use super::pages::{exports, labels, layout, link, pivot, url_text, Ctx};
use crate::campaigns::timeline::Timeline;
use crate::campaigns::Campaign;
use crate::compare::Comparison;
use crate::defang::defang;
use crate::store::model::RepositoryRecord;
use crate::store::{SearchKey, SearchPage};
use crate::trace::Trace;

/// How many entries a campaign column draws before "and K more".
const CAMPAIGN_COLUMN: usize = 8;

/// The search form (filled with what was asked) and a page of hits.
pub fn search(
    ctx: &Ctx,
    asked: &[(String, String)],
    page: Option<&SearchPage>,
    error: Option<&str>,
) -> Markup {
    let value = |name: &str| {
        asked
            .iter()
            .find(|(k, _)| k == name)
            .map_or(String::new(), |(_, v)| v.clone())
    };
    let next = page.and_then(|p| p.next.as_ref()).map(|next| {
        let mut keep: Vec<(&str, &str)> = asked
            .iter()
            .filter(|(k, _)| k != "after")
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        keep.push(("after", next.as_str()));
        link("/ui/search", &keep)
    });
    let fields: Vec<&str> = SearchKey::ALL
        .iter()
        .map(|k| k.as_str())
        .chain(["url", "since", "until"])
        .collect();
    layout(
        "Search",
        ctx,
        html! {
            h1 { "Search everything resolved" }
            form.search method="get" action="/ui/search" {
                @for f in &fields {
                    label { (f) " " input type="text" name=(f) value=(value(f)); }
                    " "
                }
                button type="submit" { "Search" }
            }
            p.muted { "Every field given must match. host, domain, ip, label, title (whole title), body and screenshot (SHA-256) and favicon (SHA-256 or Shodan mmh3) are exact values; url is a substring of any hop's URL; since and until take 2026-12-07 or 2026-12-07T10:00:00Z." }
            @if let Some(e) = error { p.error { (e) } }
            @if let Some(p) = page {
                (hits(&p.hits))
                p.muted {
                    (p.hits.len()) " shown, " (p.scanned) " chains read. "
                    @if let Some(next) = &next { a rel="next" href=(next) { "next page" } }
                }
            }
        },
    )
}

/// Chains as a table: input, where it landed, outcome, labels, title.
pub fn hits(hits: &[(String, Trace, u64)]) -> Markup {
    html! {
        table.hits {
            tr { th { "Input" } th { "Lands on" } th { "Outcome" } th { "Labels" } th { "Title" } th { "Stored" } }
            @for (key, t, at) in hits {
                tr {
                    td { a href=(link("/ui/trace", &[("url", key)])) { span.url { (defang(&t.input)) } } }
                    td { span.url { (defang(&t.final_url)) } }
                    td { (t.outcome.as_str()) }
                    td { (labels(&t.labels)) }
                    td { (t.evidence.as_ref().and_then(|e| e.title.as_deref()).unwrap_or("")) }
                    td { (crate::trace::rfc3339(*at)) }
                }
            }
        }
    }
}

/// Many links resolved at once: one row each, with its chain, a comparison and the exports.
pub fn bulk(ctx: &Ctx, traces: &[Trace], left_out: usize) -> Markup {
    layout(
        "Resolved together",
        ctx,
        html! {
            h1 { (traces.len()) " links resolved" }
            @if left_out > 0 { p.error { (left_out) " more links were found and left out: at most " (traces.len()) " at once." } }
            table.hits {
                tr { th { "Input" } th { "Lands on" } th { "Outcome" } th { "Labels" } th { "" } }
                @for t in traces {
                    tr {
                        td { (url_text(&t.input)) }
                        td { (url_text(&t.final_url)) }
                        td { (t.outcome.as_str()) @if let Some(e) = &t.error { " - " (e.message) } }
                        td { (labels(&t.labels)) }
                        td {
                            @if t.error.as_ref().is_none_or(|e| e.kind != crate::trace::ErrorKind::Input) {
                                a href=(link("/ui/trace", &[("url", &t.input)])) { "chain" }
                                form.inline method="post" action="/ui/compare" {
                                    input type="hidden" name="csrf" value=(ctx.csrf);
                                    input type="hidden" name="url" value=(t.input);
                                    button type="submit" { "compare" }
                                }
                            }
                        }
                    }
                }
            }
            (exports())
        },
    )
}

/// One link as several visitors: who went where, and whether that makes it cloaked.
pub fn compare(ctx: &Ctx, c: &Comparison) -> Markup {
    layout(
        "Compare",
        ctx,
        html! {
            h1 { "Compare " (url_text(&c.input)) }
            @if c.cloaked {
                p.error { strong { "Cloaked: " } "visitors are sent to different places"
                    @if let Some(at) = c.diverges_at { " (the chains part at hop " (at) ")" } "." }
            } @else {
                p { "Not cloaked: every visitor went the same way." }
            }
            table.hits {
                tr { th { "Visitor" } th { "Via" } th { "Lands on" } th { "Outcome" } th { "Hops" } }
                @for cell in &c.cells {
                    tr {
                        td { (cell.profile) } td { (cell.via) }
                        td { (url_text(&cell.trace.final_url)) }
                        td { (cell.trace.outcome.as_str()) }
                        td { (cell.trace.hops.len()) }
                    }
                }
            }
        },
    )
}

/// A campaign drilled down: its picture, then its repositories with their links and where
/// they landed, each a way into the chain or a search.
pub fn campaign(ctx: &Ctx, c: &Campaign, t: &Timeline, repos: &[RepositoryRecord]) -> Markup {
    let links: Vec<String> = {
        let mut all: Vec<String> = Vec::new();
        for r in repos {
            for l in &r.links {
                if !all.contains(&l.url) {
                    all.push(l.url.clone());
                }
            }
        }
        all
    };
    let cols = [
        Column::of("Accounts", &c.users, CAMPAIGN_COLUMN, false).out_of(c.user_count),
        Column::of("Repositories", &c.repositories, CAMPAIGN_COLUMN, false)
            .out_of(c.repository_count),
        Column::of("Links", &links, CAMPAIGN_COLUMN, true),
        Column::of("Landing hosts", &c.landing_hosts, CAMPAIGN_COLUMN, true),
    ];
    layout(
        "Campaign",
        ctx,
        html! {
            h1 { "Campaign " code { (c.id) } }
            p { (c.repository_count) " repositories (" (c.malicious) " malicious, "
                (c.publisher_repositories) " by their publisher alone) by " (c.user_count) " accounts, "
                (c.first_seen) " to " (c.last_seen) " " (labels(&c.labels)) }
            (graph::columns(&cols))
            h2 { "Repositories per day" }
            (chart(t))
            p { "Red: a day at " (t.factor) "x the median of the " (t.window_days) " days before, or more." }
            h2 { "Shared infrastructure" }
            ul { @for i in &c.infrastructure { li { code { (defang(&i.to_string())) } } } }
            h2 { "Landing hosts" }
            ul { @for h in &c.landing_hosts { li { (pivot(SearchKey::Host, h)) } } }
            h2 { "Repositories" }
            table.hits {
                tr { th { "Repository" } th { "Verdict" } th { "Links" } th { "Landed on" } }
                @for r in repos.iter().take(200) {
                    tr {
                        td { (r.repository) }
                        td { (format!("{:?}", r.verdict).to_lowercase()) }
                        td { @for l in &r.links { a href=(link("/ui/trace", &[("url", &l.url)])) { span.url { (defang(&l.url)) } } br; } }
                        td { @for h in &r.landing_hosts { (defang(h)) br; } }
                    }
                }
            }
            @if repos.len() > 200 { p.muted { "and " (repos.len() - 200) " more repositories" } }
        },
    )
}
