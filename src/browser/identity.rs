//! Who the browser says it is. A cloaking page compares what it can see — the User-Agent
//! header, `navigator.userAgent`, `navigator.platform`, the client hints, the languages, the
//! window size — and serves a bot something harmless; so the browser presents exactly the
//! HTTP client's identity, with nothing that says "headless" or "automated".

/// What the browser presents to every page it opens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user_agent: String,
    pub accept_language: String,
    /// `navigator.platform` (`Win32`, `MacIntel`, ...), derived from the User-Agent.
    pub platform: String,
    /// The screen, a common desktop one.
    pub screen: (u32, u32),
    /// The window's inner size on that screen (a maximised window less its tabs, toolbar
    /// and the task bar).
    pub viewport: (u32, u32),
    /// A phone or tablet: mobile layout, touch events.
    pub mobile: bool,
    /// IANA time zone the page sees; empty: the machine's.
    pub timezone: String,
}

/// What client hints (`Sec-CH-UA*`, `navigator.userAgentData`) say, matching the User-Agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientHints {
    /// `(brand, major version)`, in the order Chrome sends them.
    pub brands: Vec<(String, String)>,
    pub full_version: String,
    /// `Windows`, `macOS`, `Linux`, `Android`.
    pub platform: String,
    pub platform_version: String,
    pub architecture: String,
    pub mobile: bool,
}

impl Identity {
    pub fn from_config(http: &crate::config::Http) -> Identity {
        Identity::new(&http.user_agent, &http.accept_language)
    }

    pub fn new(user_agent: &str, accept_language: &str) -> Identity {
        Identity {
            user_agent: user_agent.to_string(),
            accept_language: accept_language.to_string(),
            platform: platform_of(user_agent).to_string(),
            screen: (1366, 768),
            viewport: (1366, 657),
            mobile: false,
            timezone: String::new(),
        }
    }

    /// The browser side of a client profile: the same User-Agent and languages, its window
    /// (a phone's screen is its window plus the browser's bars), mobile emulation, time zone.
    pub fn of(profile: &crate::profile::Profile) -> Identity {
        let languages = profile.accept_language.as_deref().unwrap_or_default();
        let mut id = Identity::new(&profile.user_agent, languages);
        if let Some(platform) = &profile.platform {
            id.platform = platform.clone();
        }
        let [w, h] = profile.viewport;
        id.viewport = (w, h);
        id.screen = match profile.mobile {
            true => (w, h + 180),
            false => (w.max(1366), (h + 111).max(768)),
        };
        id.mobile = profile.mobile;
        id.timezone = profile.timezone.clone().unwrap_or_default();
        id
    }

    /// The languages of `accept_language` without their weights (`en-US,en`): Chromium
    /// weighs them itself in its Accept-Language header (`en-US,en;q=0.9`) and lists them in
    /// `navigator.languages`.
    pub fn languages(&self) -> String {
        self.accept_language
            .split(',')
            .filter_map(|l| l.split(';').next())
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The client hints a real Chrome with this User-Agent sends; `None` for a User-Agent
    /// that is not Chrome's (Safari and Firefox send none, so neither does the browser).
    pub fn client_hints(&self) -> Option<ClientHints> {
        let ua = &self.user_agent;
        let version = ua
            .split_whitespace()
            .find_map(|t| t.strip_prefix("Chrome/"))?
            .to_string();
        let major = version.split('.').next().unwrap_or("0").to_string();
        let (platform, platform_version) = if ua.contains("Windows") {
            ("Windows", "10.0.0")
        } else if ua.contains("Android") {
            ("Android", "14.0.0")
        } else if ua.contains("Mac OS X") {
            ("macOS", "14.0.0")
        } else if ua.contains("CrOS") {
            ("Chrome OS", "")
        } else {
            ("Linux", "")
        };
        Some(ClientHints {
            brands: vec![
                ("Google Chrome".into(), major.clone()),
                ("Chromium".into(), major),
                ("Not_A Brand".into(), "24".into()),
            ],
            full_version: version,
            platform: platform.into(),
            platform_version: platform_version.into(),
            architecture: if ua.contains("Android") { "" } else { "x86" }.into(),
            mobile: ua.contains("Mobile"),
        })
    }
}

/// `navigator.platform` for a User-Agent, as the browsers it names report it.
fn platform_of(user_agent: &str) -> &'static str {
    if user_agent.contains("Windows") {
        "Win32"
    } else if user_agent.contains("iPhone") {
        "iPhone"
    } else if user_agent.contains("iPad") {
        "iPad"
    } else if user_agent.contains("Macintosh") {
        "MacIntel"
    } else if user_agent.contains("Android") {
        "Linux armv81"
    } else {
        "Linux x86_64"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_identity_is_a_windows_chrome() {
        let id = Identity::from_config(&crate::config::Http::default());
        assert_eq!(id.platform, "Win32");
        let hints = id.client_hints().expect("a Chrome User-Agent");
        assert_eq!(hints.platform, "Windows");
        assert_eq!(
            hints.brands[0].1,
            hints.full_version.split('.').next().unwrap()
        );
        assert!(!hints.mobile);
        assert!(!id.user_agent.contains("Headless"));
        assert_eq!(id.languages(), "en-US,en");
    }

    #[test]
    fn other_browsers_send_no_client_hints() {
        let safari = Identity::new(
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
            "en-US",
        );
        assert_eq!(safari.platform, "iPhone");
        assert!(safari.client_hints().is_none());
    }
}
