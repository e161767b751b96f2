//! What a person reads: chains, scan reports, campaign tables, watch histories. Every value
//! from a link, a page, a repository or a server is written through [`Shown`], so none of it
//! can drive the terminal; the colours are the only escapes written.

use std::io::Write;

use crate::terminal::Shown;
use crate::trace::{Outcome, Trace};

/// A JSON string field as shown: its text, escaped (empty when absent).
fn text(v: &serde_json::Value) -> Shown<&str> {
    Shown(v.as_str().unwrap_or(""))
}

/// Items joined by ", ", each escaped.
fn joined(items: impl IntoIterator<Item = impl std::fmt::Display>) -> String {
    items
        .into_iter()
        .map(|i| Shown(i).to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A link's history for a person: the summary, then one line per observation.
pub(super) fn write_history(out: &mut impl Write, h: &serde_json::Value) -> std::io::Result<()> {
    let s = &h["summary"];
    let list = |v: &serde_json::Value| {
        joined(
            v.as_array()
                .into_iter()
                .flatten()
                .map(|x| x.as_str().unwrap_or("")),
        )
    };
    writeln!(out, "{}", text(&h["url"]))?;
    writeln!(
        out,
        "  {} observations from {} to {}; {} distinct final URLs{}",
        Shown(&s["observations"]),
        text(&s["first_seen"]),
        text(&s["last_seen"]),
        Shown(&s["distinct_final_urls"]),
        match (s["rotating"] == true, s["cloaked"] == true) {
            (true, true) => " (rotating; cloaked: its visitors land apart)",
            (true, false) => " (rotating)",
            (false, true) => " (cloaked: its visitors land apart)",
            (false, false) => "",
        },
    )?;
    writeln!(out, "  landing hosts: {}", list(&s["distinct_final_hosts"]))?;
    for n in s["new_hosts"].as_array().into_iter().flatten() {
        writeln!(
            out,
            "  new host {} since {}",
            text(&n["host"]),
            text(&n["first_seen"])
        )?;
    }
    for o in h["observations"].as_array().into_iter().flatten() {
        let labels = list(&o["labels"]);
        let cell = match o["cell"].is_object() {
            true => format!(
                "{}@{}  ",
                text(&o["cell"]["profile"]),
                text(&o["cell"]["via"])
            ),
            false => String::new(),
        };
        writeln!(
            out,
            "  {}  {cell}{:<8}  {}{}",
            text(&o["at"]),
            text(&o["outcome"]),
            text(&o["final_url"]),
            if labels.is_empty() {
                String::new()
            } else {
                format!("  [{labels}]")
            },
        )?;
    }
    Ok(())
}

/// A repository for a person: the verdict, then each reason.
pub(super) fn write_scanned(
    out: &mut impl Write,
    s: &crate::scan::Scanned,
    colour: bool,
) -> std::io::Result<()> {
    use crate::scan::Verdict;
    let st = Style { on: colour };
    let (code, word) = match s.verdict {
        Verdict::Malicious => ("31;1", "MALICIOUS"),
        Verdict::Suspicious => ("33", "suspicious"),
        Verdict::Clean => ("32", "clean"),
    };
    let mut line = format!(
        "{}  {}",
        st.paint(code, &format!("{word:<10}")),
        Shown(&s.repository)
    );
    line.push_str(&format!("  ({} links", s.links.len()));
    if s.links_left_out > 0 {
        line.push_str(&format!(", {} more not resolved", s.links_left_out));
    }
    line.push(')');
    if s.resumed {
        line.push_str("  (earlier scan)");
    }
    writeln!(out, "{line}")?;
    for r in &s.reasons {
        match &r.url {
            Some(url) => writeln!(out, "    {}: {}", Shown(url), Shown(&r.why))?,
            None => writeln!(out, "    {}", Shown(&r.why))?,
        }
    }
    Ok(())
}

/// Campaigns as a table, with each one's hosts, users and labels under it.
pub(super) fn write_campaigns(
    out: &mut impl Write,
    found: &[crate::campaigns::Campaign],
) -> std::io::Result<()> {
    // `total`: how many there are (a campaign's lists are samples; see campaigns::SAMPLE).
    fn list<T: std::fmt::Display>(items: &[T], total: usize, max: usize) -> String {
        if items.is_empty() {
            return "-".to_string();
        }
        let mut s = joined(items.iter().take(max));
        let total = total.max(items.len());
        if total > max {
            s.push_str(&format!(" (+{} more)", total - max));
        }
        s
    }
    writeln!(
        out,
        "{:<16} {:>6} {:>6} {:>9}  {:<20} {:<20}",
        "campaign", "repos", "users", "malicious", "first seen", "last seen"
    )?;
    for c in found {
        writeln!(
            out,
            "{:<16} {:>6} {:>6} {:>9}  {:<20} {:<20}",
            Shown(&c.id),
            c.repository_count,
            c.user_count,
            c.malicious,
            Shown(&c.first_seen),
            Shown(&c.last_seen)
        )?;
        writeln!(
            out,
            "    landing hosts:  {}",
            list(&c.landing_hosts, c.landing_hosts.len(), 6)
        )?;
        writeln!(
            out,
            "    infrastructure: {}",
            list(&c.infrastructure, c.infrastructure.len(), 6)
        )?;
        writeln!(
            out,
            "    labels:         {}",
            list(&c.labels, c.labels.len(), 8)
        )?;
        writeln!(
            out,
            "    users:          {}",
            list(&c.users, c.user_count, 6)
        )?;
        writeln!(
            out,
            "    repositories:   {}",
            list(&c.repositories, c.repository_count, 4)
        )?;
        if c.publisher_repositories > 0 {
            writeln!(
                out,
                "    by publisher:   {} repositories joined through their account alone",
                c.publisher_repositories
            )?;
        }
    }
    Ok(())
}

/// A campaign's timeline: one line a day with repositories, anomalies marked.
pub(super) fn write_timeline(
    out: &mut impl Write,
    t: &crate::campaigns::timeline::Timeline,
) -> std::io::Result<()> {
    writeln!(
        out,
        "{} (anomaly: {}x the median of the {} days before)",
        Shown(&t.campaign),
        t.factor,
        t.window_days
    )?;
    for d in &t.days {
        let mark = if d.anomaly { "  ANOMALY" } else { "" };
        writeln!(out, "    {}  {:>8}{mark}", Shown(&d.day), d.repositories)?;
    }
    if t.undated > 0 {
        writeln!(out, "    ({} repositories without a date)", t.undated)?;
    }
    Ok(())
}

pub(super) struct Style {
    on: bool,
}

impl Style {
    fn paint(&self, code: &str, s: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
}

/// `value` with every link in it defanged (`--defang`, `output.defang`): the one
/// [`crate::defang::defang_json`] the API's `?defang=true` uses too.
pub(super) fn defanged<T>(value: &T) -> std::io::Result<T>
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    crate::defang::defanged(value).map_err(std::io::Error::other)
}

/// Says on stderr that resolving `trace` added a watch (`watch.auto_from`): the CLI never
/// leaves a watch behind silently.
pub(super) fn announce_watch(trace: &Trace, defang: bool) {
    if let Some(w) = &trace.watch_added {
        let url = match defang {
            true => crate::defang::defang(&w.url),
            false => w.url.clone(),
        };
        eprintln!(
            "hoptrace: now watching {} every {} s: it passes through a fake shortener (watch.auto_from); `hoptrace watch remove` stops it",
            Shown(&url),
            w.every_seconds
        );
    }
}

/// How a command prints what it found: a JSON line or a form for a person, links defanged
/// or not (`--json`, `--defang`, `output.defang`).
#[derive(Debug, Clone, Copy)]
pub(super) struct Printing {
    pub json: bool,
    pub defang: bool,
    pub colour: bool,
}

impl Printing {
    /// `value` as a JSON line or as `human` writes it, defanged first when asked.
    fn print<T, W: Write>(
        self,
        out: &mut W,
        value: &T,
        human: impl FnOnce(&mut W, &T, bool) -> std::io::Result<()>,
    ) -> std::io::Result<()>
    where
        T: serde::Serialize + serde::de::DeserializeOwned,
    {
        let plain;
        let value = match self.defang {
            true => {
                plain = defanged(value)?;
                &plain
            }
            false => value,
        };
        match self.json {
            true => {
                serde_json::to_writer(&mut *out, value)?;
                out.write_all(b"\n")
            }
            false => human(out, value, self.colour),
        }
    }

    /// A Trace as `resolve` prints it; a watch its resolution added announced on stderr.
    pub(super) fn trace(self, out: &mut impl Write, trace: &Trace) -> std::io::Result<()> {
        announce_watch(trace, self.defang);
        self.print(out, trace, |out, t, colour| write_human(out, t, colour))
    }

    /// A scanned repository as `scan` and `hub --scan` print it; each watch its links added
    /// announced on stderr.
    pub(super) fn scanned(
        self,
        out: &mut impl Write,
        s: &crate::scan::Scanned,
    ) -> std::io::Result<()> {
        for link in &s.links {
            announce_watch(&link.trace, self.defang);
        }
        self.print(out, s, |out, s, colour| write_scanned(out, s, colour))
    }
}

/// A chain for a person: numbered hops with status, how each was reached, labels, and where
/// it all ends.
pub fn write_human(out: &mut impl Write, trace: &Trace, colour: bool) -> std::io::Result<()> {
    let st = Style { on: colour };
    writeln!(out, "{}", st.paint("1", &Shown(&trace.input).to_string()))?;
    for (i, hop) in trace.hops.iter().enumerate() {
        let status = match (hop.blocked, hop.status) {
            (true, _) => st.paint("33", "BLOCKED"),
            (_, Some(s)) => format!("{s:>7}"),
            (_, None) => format!("{:>7}", "-"),
        };
        let mut line = format!(
            "  {i:>2}  {status}  {:<13}  {}",
            hop.via.as_str(),
            Shown(&hop.url)
        );
        if !hop.labels.is_empty() {
            let mut tags = joined(&hop.labels);
            if let Some(imitates) = &hop.imitates {
                tags.push_str(&format!("; imitates {}", Shown(imitates)));
            }
            let bad = crate::labels::Label::any_malicious(&hop.labels);
            line.push_str("  ");
            line.push_str(&st.paint(if bad { "31;1" } else { "36" }, &format!("[{tags}]")));
        }
        writeln!(out, "{line}")?;
        if let Some(reason) = hop.reason.text() {
            writeln!(
                out,
                "{}",
                st.paint("2", &format!("                         {}", Shown(reason)))
            )?;
        }
    }
    // Without a host (`javascript:...`) the URL follows the bare verb: "blocked: javascript:".
    let hostless = trace.final_host.is_empty();
    let at = |what: &str, bare: &str| match hostless {
        true => format!("{bare}:"),
        false => format!("{what} {}", Shown(&trace.final_host)),
    };
    let end = match trace.outcome {
        Outcome::Landed => at("landed on", "landed"),
        Outcome::Download => at("download from", "download"),
        Outcome::Blocked => at("blocked at", "blocked"),
        Outcome::Loop => format!("loop back to {}", Shown(&trace.final_url)),
        Outcome::TooManyHops => "too many hops".to_string(),
        Outcome::Timeout => "timed out".to_string(),
        Outcome::Error => "error".to_string(),
    };
    let mut summary = format!("  => {end}");
    let placed = matches!(
        trace.outcome,
        Outcome::Landed | Outcome::Download | Outcome::Blocked
    );
    if !trace.final_url.is_empty() && !matches!(trace.outcome, Outcome::Loop) {
        let sep = if hostless && placed { " " } else { "  " };
        summary.push_str(&format!("{sep}{}", Shown(&trace.final_url)));
    }
    if let Some(e) = &trace.error {
        summary.push_str(&format!("  ({}: {})", Shown(&e.kind), Shown(&e.message)));
    }
    if trace.cached {
        summary.push_str("  (cached)");
    }
    let code = match trace.outcome {
        Outcome::Landed => "32",
        Outcome::Download | Outcome::Blocked => "33",
        _ => "31",
    };
    writeln!(out, "{}", st.paint(code, &summary))?;
    if !trace.labels.is_empty() {
        writeln!(out, "     labels: {}", joined(&trace.labels))?;
    }
    writeln!(out)
}

/// A comparison as a table: one row per visitor, then the verdict.
pub(super) fn write_comparison(
    out: &mut impl Write,
    c: &crate::compare::Comparison,
) -> std::io::Result<()> {
    writeln!(out, "{}", Shown(&c.input))?;
    let width = c
        .cells
        .iter()
        .map(|x| x.profile.len())
        .max()
        .unwrap_or(7)
        .max(7);
    writeln!(
        out,
        "  {:width$}  {:8}  {:4}  final host, labels",
        "profile", "outcome", "hops"
    )?;
    for cell in &c.cells {
        let t = &cell.trace;
        writeln!(
            out,
            "  {:width$}  {:8}  {:4}  {}{}",
            Shown(&cell.profile),
            t.outcome.as_str(),
            t.hops.len(),
            Shown(&t.final_host),
            match t.labels.is_empty() {
                true => String::new(),
                false => format!("  [{}]", joined(&t.labels)),
            }
        )?;
    }
    match (c.cloaked, c.diverges_at) {
        (true, Some(at)) => writeln!(out, "cloaked: the chains part at hop {at}"),
        (true, None) => writeln!(out, "cloaked: the chains end differently"),
        (false, Some(at)) => writeln!(
            out,
            "not cloaked: the chains pass different hosts from hop {at} but end alike"
        ),
        (false, None) => writeln!(out, "not cloaked: every visitor sees the same chain"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::{Hop, Via};

    fn sample() -> Trace {
        let mut hop = Hop::new(
            "http://bltlly.com/x".into(),
            "bltlly.com".into(),
            Via::Input,
        );
        hop.status = Some(302);
        hop.labels = vec!["fake-shortener".into()];
        hop.imitates = Some("bitly.com".into());
        Trace::from_hops("hxxp://bltlly[.]com/x", vec![hop], Outcome::Landed)
    }

    #[test]
    fn colour_only_when_asked() {
        let mut plain = Vec::new();
        write_human(&mut plain, &sample(), false).unwrap();
        let plain = String::from_utf8(plain).unwrap();
        assert!(!plain.contains('\x1b'));
        assert!(plain.contains("[fake-shortener; imitates bitly.com]"));
        let mut coloured = Vec::new();
        write_human(&mut coloured, &sample(), true).unwrap();
        let coloured = String::from_utf8(coloured).unwrap();
        assert!(
            coloured.contains("\x1b[31;1m[fake-shortener; imitates bitly.com]\x1b[0m"),
            "{coloured}"
        );
    }
}
