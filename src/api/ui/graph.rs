//! Pictures drawn on the server as inline SVG (no script, no style attribute: the view's CSP
//! holds): a chain's hops as nodes with how each was reached on the edges, and a campaign's
//! accounts -> repositories -> links -> landing hosts, each column bounded, and its
//! repositories per day. Every name in a picture is text (escaped by maud) and defanged.

use maud::{html, Markup};

use crate::campaigns::timeline::Timeline;
use crate::defang::defang;
use crate::trace::{Engine, Hop, Outcome, Trace, Via};

const WIDTH: usize = 760;
const BOX_H: usize = 46;
const GAP: usize = 38;
/// Longest name drawn in a box (characters); the page's tables show it whole.
const TEXT_CHARS: usize = 78;

/// `s` cut to `n` characters, marked when cut.
fn cut(s: &str, n: usize) -> String {
    match s.char_indices().nth(n) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_string(),
    }
}

/// How `hop` was reached from the one before, as an edge says it.
fn edge_label(hop: &Hop, before: Option<&Hop>) -> String {
    let code = before.and_then(|b| b.status);
    match hop.via {
        Via::Input => String::new(),
        Via::HttpRedirect => match code {
            Some(c) => format!("HTTP {c} redirect"),
            None => "HTTP redirect".into(),
        },
        Via::MetaRefresh => "meta refresh".into(),
        Via::Javascript => match before.and_then(|b| b.engine) {
            Some(Engine::Emulated) => "script (emulated engine)".into(),
            Some(Engine::Chromium) => "script (Chromium)".into(),
            None => "script".into(),
        },
        Via::GoogleUrl => "google /url (decoded offline)".into(),
        Via::Wrapper => "link wrapper (decoded offline)".into(),
    }
}

/// The chain as a column of boxes, top to bottom, an arrow between each two. The last box
/// says how the chain ended; a blocked hop or an error end is drawn red.
pub fn chain(t: &Trace) -> Markup {
    let n = t.hops.len().max(1);
    let height = n * BOX_H + (n - 1) * GAP + 40;
    let ending = match t.outcome {
        Outcome::Landed => "landed".to_string(),
        Outcome::Download => "download (not fetched)".to_string(),
        Outcome::Blocked => "blocked: never connected".to_string(),
        other => match &t.error {
            Some(e) => format!("{}: {}", other.as_str(), e.kind.as_str()),
            None => other.as_str().to_string(),
        },
    };
    let bad_end = !matches!(t.outcome, Outcome::Landed | Outcome::Download);
    html! {
        svg.graph xmlns="http://www.w3.org/2000/svg" role="img" aria-label="The chain as a graph"
            width=(WIDTH) height=(height) viewBox=(format!("0 0 {WIDTH} {height}")) {
            defs {
                marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto" {
                    path d="M0,0 L10,5 L0,10 z" fill="#5b6570" {}
                }
            }
            @for (i, h) in t.hops.iter().enumerate() {
                @let y = 10 + i * (BOX_H + GAP);
                @let last = i + 1 == t.hops.len();
                @let red = h.blocked || (last && bad_end);
                @if i > 0 {
                    @let y0 = y - GAP;
                    line x1="40" y1=(y0) x2="40" y2=(y - 2) stroke="#5b6570" stroke-width="1.6" marker-end="url(#arrow)" {}
                    text.edge x="52" y=(y0 + GAP / 2 + 5) font-size="13" fill="#34495e" { (edge_label(h, t.hops.get(i - 1))) }
                }
                rect.hop x="10" y=(y) width=(WIDTH - 20) height=(BOX_H) rx="6"
                    fill=(if red { "#fde2e1" } else if last { "#e6f4ea" } else { "#ffffff" })
                    stroke=(if red { "#c0392b" } else { "#8795a1" }) stroke-width="1.4" {}
                text x="22" y=(y + 19) font-size="13" font-family="monospace" fill="#1b1f24" {
                    (i) ". " (cut(&defang(&h.url), TEXT_CHARS))
                }
                text x="22" y=(y + 37) font-size="12" fill="#5b6570" {
                    @if let Some(s) = h.status { "HTTP " (s) " " }
                    @if let Some(ip) = &h.ip { "at " (ip) " " }
                    @if !h.labels.is_empty() { "[" (h.labels.iter().map(|l| l.as_str()).collect::<Vec<_>>().join(", ")) "] " }
                    @if h.blocked { "BLOCKED " (h.reason.to_string()) " " }
                    @if last { "— " (ending) }
                }
            }
        }
    }
}

/// One column of a campaign's picture: its title, its entries (the first `max`) and how
/// many were left out.
pub struct Column<'a> {
    pub title: &'a str,
    pub items: Vec<String>,
    pub more: usize,
}

impl<'a> Column<'a> {
    /// The first `max` of `all` (defanged when they are names or URLs).
    pub fn of(title: &'a str, all: &[String], max: usize, names: bool) -> Column<'a> {
        Column {
            title,
            items: all
                .iter()
                .take(max)
                .map(|s| match names {
                    true => defang(s),
                    false => s.clone(),
                })
                .collect(),
            more: all.len().saturating_sub(max),
        }
    }

    /// The column of a list that holds a sample: `total` is how many there are in all.
    pub fn out_of(mut self, total: usize) -> Column<'a> {
        self.more = self.more.max(total.saturating_sub(self.items.len()));
        self
    }
}

/// Columns side by side, each entry a box, each column's boxes joined to the next column's
/// (the drawing says "these lead to those", not which to which: the tables say that).
pub fn columns(cols: &[Column]) -> Markup {
    let col_w = 250;
    let (box_h, gap) = (30, 10);
    let rows = cols
        .iter()
        .map(|c| c.items.len() + usize::from(c.more > 0))
        .max()
        .unwrap_or(0)
        .max(1);
    let width = cols.len() * (col_w + 40);
    let height = 40 + rows * (box_h + gap);
    html! {
        svg.graph xmlns="http://www.w3.org/2000/svg" role="img" aria-label="The campaign as a graph"
            width=(width) height=(height) viewBox=(format!("0 0 {width} {height}")) {
            @for (c, col) in cols.iter().enumerate() {
                @let x = 10 + c * (col_w + 40);
                text x=(x) y="20" font-size="14" font-weight="bold" fill="#1b1f24" { (col.title) " (" (col.items.len() + col.more) ")" }
                @for (r, item) in col.items.iter().enumerate() {
                    @let y = 34 + r * (box_h + gap);
                    rect x=(x) y=(y) width=(col_w) height=(box_h) rx="5" fill="#ffffff" stroke="#8795a1" {}
                    text x=(x + 8) y=(y + 20) font-size="12" font-family="monospace" fill="#1b1f24" { (cut(item, 32)) }
                    @if let Some(next) = cols.get(c + 1) {
                        @for r2 in 0..next.items.len() {
                            line x1=(x + col_w) y1=(y + box_h / 2) x2=(x + col_w + 40) y2=(34 + r2 * (box_h + gap) + box_h / 2) stroke="#c3ccd5" stroke-width="1" {}
                        }
                    }
                }
                @if col.more > 0 {
                    text x=(x + 8) y=(34 + col.items.len() * (box_h + gap) + 20) font-size="12" fill="#5b6570" { "and " (col.more) " more" }
                }
            }
        }
    }
}

/// Width and height of a timeline chart, in SVG units.
const CHART: (f64, f64) = (800.0, 200.0);

/// Repositories per day as bars over the campaign's span (anomalies in red); the bars are as
/// many as the days with repositories, whatever the span.
pub fn chart(t: &Timeline) -> Markup {
    use crate::campaigns::timeline::day_number;
    let dated: Vec<(i64, &crate::campaigns::timeline::Day)> = t
        .days
        .iter()
        .filter_map(|d| Some((day_number(&d.day)?, d)))
        .collect();
    let (Some(first), Some(last)) = (dated.first(), dated.last()) else {
        return html! { p { "No dated repositories." } };
    };
    let span = (last.0 - first.0 + 1) as f64;
    let top = dated
        .iter()
        .map(|(_, d)| d.repositories)
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let (w, h) = CHART;
    let bar = (w / span).max(1.0);
    html! {
        svg xmlns="http://www.w3.org/2000/svg" viewBox=(format!("0 0 {w} {})", h + 20.0)) width=(w) height=(h + 20.0) role="img" {
            title { "Repositories per day, " (first.1.day) " to " (last.1.day) }
            @for (n, d) in &dated {
                @let height = (d.repositories as f64 / top * h).max(1.0);
                rect x=(format!("{:.1}", (n - first.0) as f64 / span * w)) y=(format!("{:.1}", h - height))
                    width=(format!("{bar:.1}")) height=(format!("{height:.1}"))
                    fill=(if d.anomaly { "#c0392b" } else { "#34495e" }) {
                    title { (d.day) ": " (d.repositories) @if d.anomaly { " (anomaly)" } }
                }
            }
            text x="0" y=(h + 16.0) font-size="12" { (first.1.day) }
            text x=(w) y=(h + 16.0) font-size="12" text-anchor="end" { (last.1.day) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edges_say_how_each_hop_was_reached_and_names_are_defanged() {
        let mut a = Hop::new(
            "http://short.example/x".into(),
            "short.example".into(),
            Via::Input,
        );
        a.status = Some(302);
        let mut b = Hop::new(
            "http://mid.example/<b>".into(),
            "mid.example".into(),
            Via::HttpRedirect,
        );
        b.engine = Some(Engine::Emulated);
        let c = Hop::new(
            "http://end.example/".into(),
            "end.example".into(),
            Via::Javascript,
        );
        let mut t = Trace::from_hops("http://short.example/x", vec![a, b, c], Outcome::Blocked);
        t.hops[2].blocked = true;
        let svg = chain(&t).into_string();
        assert!(svg.contains("HTTP 302 redirect"), "{svg}");
        assert!(svg.contains("script (emulated engine)"));
        assert!(svg.contains("hxxp://mid[.]example/&lt;b&gt;"));
        assert!(svg.contains("blocked: never connected"));
        assert!(!svg.contains("http://end.example"));
        let cols = [Column::of(
            "Hosts",
            &["a.example".into(), "b.example".into()],
            1,
            true,
        )];
        let svg = columns(&cols).into_string();
        assert!(svg.contains("a[.]example") && svg.contains("and 1 more"));
    }
}
