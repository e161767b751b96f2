//! Client profiles: who hoptrace presents itself as on one resolution. Cloaking pages show
//! the payload to a Windows desktop browser and something harmless to a crawler, a phone or a
//! script; resolving one link as several visitors shows every branch. A profile is used by the
//! HTTP client (User-Agent, Accept-Language, Referer) and the browser alike (the same, plus
//! `navigator.platform`, the window, mobile emulation and the time zone).

use std::collections::BTreeMap;

pub use crate::config::Profile;
use crate::config::{Config, Http};

/// The profile used when none is named.
pub const DEFAULT: &str = "windows-chrome";

const DESKTOP: [u32; 2] = [1366, 657];

/// The built-in profiles; `windows-chrome` is `[http]`'s User-Agent and Accept-Language.
fn builtin(http: &Http) -> Vec<(&'static str, Profile)> {
    let p = |ua: &str, lang: &str, viewport: [u32; 2], mobile: bool| Profile {
        user_agent: ua.to_string(),
        accept_language: Some(lang.to_string()).filter(|l| !l.is_empty()),
        platform: None,
        viewport,
        mobile,
        timezone: None,
        referer: None,
    };
    vec![
        (DEFAULT, p(&http.user_agent, &http.accept_language, DESKTOP, false)),
        (
            "macos-safari",
            p(
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
                "en-US,en;q=0.9",
                [1440, 789],
                false,
            ),
        ),
        (
            "iphone-safari",
            p(
                "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
                "en-US,en;q=0.9",
                [390, 664],
                true,
            ),
        ),
        (
            "android-chrome",
            p(
                "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
                "en-US,en;q=0.9",
                [412, 783],
                true,
            ),
        ),
        (
            "crawler",
            p(
                "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
                "",
                DESKTOP,
                false,
            ),
        ),
        // What a naive script sends: its library's name, no Accept-Language.
        ("bare", p("python-requests/2.32.3", "", DESKTOP, false)),
    ]
}

/// Every profile by name: the built-in ones, then `[profiles.NAME]` (which may redefine one).
#[derive(Debug, Clone)]
pub struct Profiles {
    by_name: BTreeMap<String, Profile>,
    /// Names of the built-in profiles, in their order (what `compare` uses by default).
    builtin: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("no profile `{name}` (known: {known})")]
pub struct UnknownProfile {
    pub name: String,
    pub known: String,
}

impl Profiles {
    pub fn from_config(config: &Config) -> Profiles {
        let builtin = builtin(&config.http);
        let names = builtin.iter().map(|(n, _)| n.to_string()).collect();
        let mut by_name: BTreeMap<String, Profile> = builtin
            .into_iter()
            .map(|(n, p)| (n.to_string(), p))
            .collect();
        by_name.extend(config.profiles.clone());
        Profiles {
            by_name,
            builtin: names,
        }
    }

    pub fn get(&self, name: &str) -> Result<&Profile, UnknownProfile> {
        self.by_name.get(name).ok_or_else(|| UnknownProfile {
            name: name.to_string(),
            known: self.by_name.keys().cloned().collect::<Vec<_>>().join(", "),
        })
    }

    pub fn default_profile(&self) -> &Profile {
        &self.by_name[DEFAULT]
    }

    /// The built-in profiles' names, default first.
    pub fn builtin_names(&self) -> &[String] {
        &self.builtin
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_and_overrides() {
        let mut c = Config::default();
        c.profiles.insert(
            "bare".into(),
            Profile {
                user_agent: "curl/8.0".into(),
                accept_language: None,
                platform: None,
                viewport: DESKTOP,
                mobile: false,
                timezone: None,
                referer: None,
            },
        );
        let p = Profiles::from_config(&c);
        assert_eq!(p.default_profile().user_agent, c.http.user_agent);
        assert_eq!(p.get("bare").unwrap().user_agent, "curl/8.0");
        assert!(p.get("iphone-safari").unwrap().mobile);
        assert!(p.get("crawler").unwrap().accept_language.is_none());
        let e = p.get("nope").unwrap_err().to_string();
        assert!(e.contains("nope") && e.contains("windows-chrome"), "{e}");
        assert_eq!(p.builtin_names()[0], DEFAULT);
        assert_eq!(p.builtin_names().len(), 6);
    }
}
