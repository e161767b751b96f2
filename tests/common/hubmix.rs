//! A synthetic Docker Hub in the report's proportions, scaled to any number of repositories:
//! the downloader campaign (1.45 M repositories from 9,309 users), eBook phishing (1.07 M from
//! 1,042 users), website SEO (215 k, one user each) and ordinary repositories for the rest of
//! the report's 4.6 M. Every link path is unique (no repository is answered from another's
//! cache); about 3 % of a campaign account's repositories carry no link; a few links point at
//! the cloud metadata address, which the egress policy refuses. The hosts are those of
//! [`super::HubInternet`], which serves them all on loopback (plain HTTP).
//!
//! Deterministic: the same size gives the same lines, and each line comes with its truth.

/// The report's totals: a generated hub of `n` repositories keeps these proportions.
const REPORT_TOTAL: u64 = 4_600_000;
const DOWNLOADER: (u64, u64) = (1_450_000, 9_309);
const EBOOK: (u64, u64) = (1_070_000, 1_042);
const SEO: u64 = 215_000;

/// One in this many repositories of a campaign account has no link (~3 %).
const LINKLESS_EVERY: usize = 33;
/// One in this many ordinary and downloader repositories also links to the metadata address.
const BLOCKED_EVERY: usize = 500;
pub const BLOCKED_HOST: &str = "169.254.169.254";

/// The fake shorteners [`super::HubInternet`] serves (the first of its hosts).
const FAKES: &[&str] = super::HUB_HOSTS.split_at(6).0;
const SOFTWARE: &[&str] = &["photoshop", "ida-pro", "fl-studio", "autocad", "vegas-pro"];
const BOOKS: &[&str] = &[
    "silent-patient",
    "atomic-habits",
    "dune",
    "sapiens",
    "hobbit",
];

/// Which group the generator put a repository in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Group {
    Downloader,
    Ebook,
    WebsiteSeo,
    Ordinary,
}

impl Group {
    /// Whether the report counts this group as a campaign.
    pub fn campaign(self) -> bool {
        self != Group::Ordinary
    }
}

/// One generated repository: its JSON line and what is true of it.
pub struct Generated {
    pub repository: String,
    pub group: Group,
    /// A campaign account's repository whose text has no link.
    pub linkless: bool,
    /// One of its links points at [`BLOCKED_HOST`].
    pub blocked: bool,
    /// The line `hoptrace scan` reads.
    pub line: String,
}

/// How many repositories of `n` each group gets (downloader, eBook, SEO, ordinary), and how
/// many users publish the downloader's and the eBook's.
pub struct Mix {
    pub n: usize,
    pub counts: [usize; 4],
    pub users: [usize; 2],
}

impl Mix {
    pub fn new(n: usize) -> Mix {
        let share = |part: u64| (n as u64 * part / REPORT_TOTAL) as usize;
        let (dl, eb, seo) = (share(DOWNLOADER.0), share(EBOOK.0), share(SEO));
        let users = |(repos, users): (u64, u64), got: usize| {
            ((got as u64 * users).div_ceil(repos) as usize).max(1)
        };
        Mix {
            n,
            counts: [dl, eb, seo, n - dl - eb - seo],
            users: [users(DOWNLOADER, dl), users(EBOOK, eb)],
        }
    }

    /// Every repository, links on `port`, in group order.
    pub fn repositories(&self, port: u16) -> impl Iterator<Item = Generated> + '_ {
        let groups = [
            Group::Downloader,
            Group::Ebook,
            Group::WebsiteSeo,
            Group::Ordinary,
        ];
        let mut start = 0;
        groups
            .into_iter()
            .zip(self.counts)
            .flat_map(move |(g, count)| {
                let from = start;
                start += count;
                (0..count).map(move |j| self.one(g, j, from + j, port))
            })
    }

    /// Repository `j` of group `g` (`i` overall: what makes its link path unique).
    fn one(&self, g: Group, j: usize, i: usize, port: u16) -> Generated {
        let url = |host: &str, path: String| format!("http://{host}:{port}{path}");
        let day = |base: &str, spread: usize| format!("{base}-{:02}T00:00:00Z", 1 + j % spread);
        let linkless = g.campaign() && g != Group::WebsiteSeo && j % LINKLESS_EVERY == 1;
        let blocked = matches!(g, Group::Downloader | Group::Ordinary) && j % BLOCKED_EVERY == 7;
        let (namespace, name, text, registered) = match g {
            Group::Downloader => {
                let sw = SOFTWARE[j % SOFTWARE.len()];
                let link = url(FAKES[j % FAKES.len()], format!("/d{i}"));
                (
                    format!("dl{:05}", j % self.users[0]),
                    format!("{sw}-crack-{i}"),
                    format!("# {sw} crack full version free download\n[Download here]({link})"),
                    day("2021-03", 28),
                )
            }
            Group::Ebook => {
                let book = BOOKS[j % BOOKS.len()];
                let link = url("bookreader-blog.com", format!("/p/read.html?el=b{i}"));
                (
                    format!("ebk{:04}", j % self.users[1]),
                    format!("{book}-pdf-{i}"),
                    format!("Download {book} ebook PDF EPUB free.\n\n{link}\n"),
                    day("2023-05", 28),
                )
            }
            Group::WebsiteSeo => {
                let ns = seo_namespace(j);
                let link = url("twitter.com", format!("/{ns}"));
                (
                    ns,
                    "website".to_string(),
                    format!("cheap flights deals today, buy followers fast.\nFollow us: {link}"),
                    day("2022-08", 28),
                )
            }
            Group::Ordinary => {
                let ns = format!("team{:05}", j / 4);
                let name = ["api", "worker", "db-tools", "website"][j % 4];
                let gh = url("github.com", format!("/{ns}/{name}/{i}"));
                let docs = url("docs.docker.com", "/engine/".into());
                (
                    ns,
                    name.to_string(),
                    format!("Source: [{name}]({gh})\nDocs: {docs}"),
                    format!("2024-{:02}-10T00:00:00Z", 1 + j % 12),
                )
            }
        };
        let mut text = match linkless {
            true => "Mirror of our tools, ask in the comments for the newest version".to_string(),
            false => text,
        };
        if blocked {
            text.push_str(&format!(
                "\nstatus: http://{BLOCKED_HOST}/latest/meta-data/{i}"
            ));
        }
        let line = serde_json::json!({
            "namespace": namespace,
            "name": name,
            "description": name,
            "full_description": text,
            "date_registered": registered,
            "last_updated": registered,
        })
        .to_string();
        Generated {
            repository: format!("{namespace}/{name}"),
            group: g,
            linkless,
            blocked,
            line,
        }
    }
}

/// A website-SEO user name, `axaaaaaxxx` as the campaign's (letter, digit, five letters,
/// three digits), unique per `j`.
fn seo_namespace(j: usize) -> String {
    let letter = |k: usize| (b'a' + (k % 26) as u8) as char;
    let mut rest = j / 260;
    let mut five = String::new();
    for _ in 0..5 {
        five.push(letter(rest));
        rest /= 26;
    }
    format!("{}{}{five}{:03}", letter(j), (j / 26) % 10, j % 1000)
}
