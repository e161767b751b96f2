//! How bad a link or a repository is: the verdict rules, their reasons, and the campaign
//! infrastructure a chain passed through.

use super::*;

/// The verdict of a repository from its links' Traces and what it shows itself.
pub fn judge_repository(doc: &Document, links: Vec<ScannedLink>, left_out: usize) -> Scanned {
    let mut reasons: Vec<Reason> = links
        .iter()
        .flat_map(|l| judge_link(&l.trace))
        .filter(|r| r.verdict > Verdict::Clean)
        .collect();
    if let Some(sig) = signature(doc) {
        reasons.push(Reason {
            verdict: Verdict::Suspicious,
            url: None,
            why: format!("{sig}: a repository named `website` from a user named like `axaaaaaxxx` (letter, digit, five letters, three digits), as the website-SEO campaign publishes"),
            kind: ReasonKind::Repository,
            account: None,
        });
    }
    reasons.sort_by_key(|r| std::cmp::Reverse(r.verdict));
    Scanned {
        repository: doc.repository.clone(),
        verdict: reasons.first().map_or(Verdict::Clean, |r| r.verdict),
        reasons,
        links,
        links_left_out: left_out,
        resumed: false,
    }
}

/// A campaign publishing pattern the repository itself matches, by name.
pub(super) fn signature(doc: &Document) -> Option<&'static str> {
    let ns = doc.namespace.as_bytes();
    let shaped = ns.len() == 10
        && ns.iter().enumerate().all(|(i, c)| match i {
            1 | 7..=9 => c.is_ascii_digit(),
            _ => c.is_ascii_lowercase(),
        });
    (shaped && doc.name.eq_ignore_ascii_case("website")).then_some("website-seo")
}

/// File names of executables and archives (their content types are `download::DOWNLOAD_TYPES`).
pub(super) const RISKY_EXTENSIONS: &[&str] = &[
    "exe", "msi", "scr", "bat", "cmd", "com", "ps1", "vbs", "js", "jar", "apk", "dmg", "pkg",
    "deb", "rpm", "appimage", "bin", "sh", "zip", "rar", "7z", "tar", "gz", "tgz", "bz2", "xz",
    "iso", "img", "cab",
];

/// The reasons one link gives (none when it is clean).
pub fn judge_link(t: &Trace) -> Vec<Reason> {
    let mut out = Vec::new();
    let mut say = |verdict, why: String| {
        out.push(Reason {
            verdict,
            url: Some(t.input.clone()),
            why,
            kind: ReasonKind::Link,
            account: None,
        })
    };
    for hop in &t.hops {
        for label in hop.labels.iter().filter(|l| l.is_malicious()) {
            let imitating = match &hop.imitates {
                Some(real)
                    if *label == Builtin::FakeShortener
                        || *label == Builtin::LookalikeShortener =>
                {
                    format!(" imitating {real}")
                }
                _ => String::new(),
            };
            say(
                Verdict::Malicious,
                format!("passes through {} ({label}{imitating})", hop.host),
            );
        }
    }
    for hop in &t.hops {
        if hop.labels.iter().any(|l| *l == Builtin::OversizedHead) {
            say(
                Verdict::Suspicious,
                format!("{} answered with a response head too large to read (a server hiding what it sends)", hop.host),
            );
        }
    }
    if t.outcome == Outcome::Download {
        if let Some(what) = risky_download(t) {
            say(
                Verdict::Suspicious,
                format!("downloads {what} from {}", t.final_host),
            );
        }
    }
    if t.outcome == Outcome::Blocked {
        let why = t
            .hops
            .iter()
            .find(|h| h.blocked)
            .map(|h| h.reason.to_string())
            .unwrap_or_default();
        say(
            Verdict::Suspicious,
            format!("leads to an address policy refuses ({why})"),
        );
    }
    let through_shortener = t
        .hops
        .iter()
        .any(|h| h.labels.iter().any(|l| *l == Builtin::Shortener));
    let ended = matches!(t.outcome, Outcome::Landed | Outcome::Download);
    if through_shortener && !ended {
        say(
            Verdict::Suspicious,
            format!(
                "a shortener whose target could not be seen ({})",
                t.outcome.as_str()
            ),
        );
    }
    if let Some(host) = unknown_shortener(t) {
        say(
            Verdict::Suspicious,
            format!("{host} acts as a URL shortener no list names (a short path redirecting to another site)"),
        );
    }
    out
}

/// What makes a download risky: an executable or archive by content type or file name.
pub(super) fn risky_download(t: &Trace) -> Option<String> {
    let last = t.hops.last()?;
    let ct = last
        .content_type
        .as_deref()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if crate::download::DOWNLOAD_TYPES.contains(&ct.as_str()) {
        return Some(format!("a file of type {ct}"));
    }
    let path = url::Url::parse(&t.final_url)
        .ok()?
        .path()
        .to_ascii_lowercase();
    let ext = path.rsplit('/').next()?.rsplit_once('.')?.1.to_string();
    RISKY_EXTENSIONS
        .contains(&ext.as_str())
        .then(|| format!("a .{ext} file"))
}

/// The first hop when it behaves like a shortener nobody has listed: a short one-segment
/// path answered with a redirect to another site, on a host no list labels.
pub(super) fn unknown_shortener(t: &Trace) -> Option<String> {
    let (first, next) = (t.hops.first()?, t.hops.get(1)?);
    if !first.labels.is_empty()
        || !matches!(
            next.via,
            Via::HttpRedirect | Via::MetaRefresh | Via::Javascript
        )
    {
        return None;
    }
    let url = url::Url::parse(&first.url).ok()?;
    let path = url.path().trim_start_matches('/');
    let short = (3..=12).contains(&path.len())
        && path
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && url.query().is_none();
    let elsewhere = labels::registrable(&first.host) != labels::registrable(&next.host);
    (short && elsewhere).then(|| first.host.clone())
}

/// The campaign infrastructure a judged link passed through, as `kind:name` keys shared
/// between repositories: `landing:` the registrable domain it ended on, `fake-shortener:`
/// a fake or lookalike shortener's domain, and `redirector:` hosts in between that a list
/// labels, or that no list calls a real shortener or open redirect. (Not the brand a fake
/// shortener imitates: unrelated campaigns imitate the same few brands.)
pub fn infrastructure(t: &Trace) -> Vec<InfraKey> {
    let mut keys = Vec::new();
    let last = t.hops.len().saturating_sub(1);
    for (i, hop) in t.hops.iter().enumerate() {
        if hop.host.is_empty() || hop.blocked {
            continue;
        }
        let domain = labels::registrable(&hop.host);
        let has = |l: Builtin| hop.labels.iter().any(|x| *x == l);
        if has(Builtin::FakeShortener) || has(Builtin::LookalikeShortener) {
            keys.push(InfraKey::new(InfraKind::FakeShortener, domain));
        } else if i == last {
            if matches!(t.outcome, Outcome::Landed | Outcome::Download) {
                keys.push(InfraKey::new(InfraKind::Landing, domain));
            }
        } else {
            let listed_bad = Label::any_malicious(&hop.labels);
            let common = has(Builtin::Shortener) || has(Builtin::OpenRedirect);
            if listed_bad || (i > 0 && !common) {
                keys.push(InfraKey::new(InfraKind::Redirector, domain));
            }
        }
    }
    keys.dedup();
    keys
}
