//! Who is looking at the web view: a session cookie is `expiry.token-number.nonce.MAC`,
//! signed with a key made from the configured API tokens (so every replica with the same
//! tokens accepts it, and changing the tokens ends every session); a form's CSRF token is a
//! MAC of the session cookie. Nothing secret is in the cookie.
//!
//! The one state kept: sessions ended by a logout, until they would have expired, so a
//! copied cookie is worthless after it. At most [`MAX_REVOKED`] (expired ones dropped first,
//! then the nearest to expiry) in the process that saw the logout; the web view also notes it
//! in Redis for the other replicas when they share one.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::record::hex;
use ring::hmac;
use subtle::ConstantTimeEq;

pub const COOKIE: &str = "hoptrace_session";
/// How long a session lasts (seconds).
pub const LIFETIME_SECS: u64 = 12 * 3600;
/// Sessions remembered as logged out at most (~100 bytes each).
pub const MAX_REVOKED: usize = 65_536;

/// The signing key, the tokens a login is checked against, the sessions logged out.
pub struct Keys {
    key: hmac::Key,
    tokens: Vec<Vec<u8>>,
    /// A logged-out session's MAC -> its expiry.
    revoked: Mutex<HashMap<String, u64>>,
}

impl Keys {
    pub fn new(tokens: &[Vec<u8>]) -> Keys {
        let mut material = b"hoptrace web view\0".to_vec();
        for t in tokens {
            material.extend_from_slice(ring::digest::digest(&ring::digest::SHA256, t).as_ref());
        }
        Keys {
            key: hmac::Key::new(hmac::HMAC_SHA256, &material),
            tokens: tokens.to_vec(),
            revoked: Mutex::default(),
        }
    }

    /// Whether the web view asks for a login (the API has tokens).
    pub fn required(&self) -> bool {
        !self.tokens.is_empty()
    }

    fn mac(&self, parts: &[&[u8]]) -> String {
        let mut ctx = hmac::Context::with_key(&self.key);
        for p in parts {
            ctx.update(p);
            ctx.update(b"\0");
        }
        hex(ctx.sign().as_ref())
    }

    /// A session cookie's value for `token`, if it is one of the tokens (compared in constant
    /// time, every token), valid until `now + LIFETIME_SECS`; a random nonce makes each login's
    /// cookie its own (one logout ends one session).
    pub fn login(&self, token: &str, now_secs: u64) -> Option<String> {
        let mut found = None;
        for (i, t) in self.tokens.iter().enumerate() {
            if bool::from(t.as_slice().ct_eq(token.as_bytes())) {
                found = Some(i);
            }
        }
        let i = found?;
        let mut nonce = [0u8; 16];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut nonce).ok()?;
        let nonce = hex(&nonce);
        let expiry = (now_secs + LIFETIME_SECS).to_string();
        let i = i.to_string();
        let mac = self.session_mac(&expiry, &i, &nonce);
        Some(format!("{expiry}.{i}.{nonce}.{mac}"))
    }

    fn session_mac(&self, expiry: &str, i: &str, nonce: &str) -> String {
        self.mac(&[
            b"session",
            expiry.as_bytes(),
            i.as_bytes(),
            nonce.as_bytes(),
        ])
    }

    /// Whether `cookie` is a session this key signed that has neither expired nor been
    /// logged out.
    pub fn valid(&self, cookie: &str, now_secs: u64) -> bool {
        self.signed(cookie, now_secs)
            .is_some_and(|(_, mac)| !self.revoked().contains_key(mac))
    }

    /// A signed, unexpired session's expiry and MAC.
    fn signed<'a>(&self, cookie: &'a str, now_secs: u64) -> Option<(u64, &'a str)> {
        let mut parts = cookie.splitn(4, '.');
        let (Some(expiry), Some(i), Some(nonce), Some(mac)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let live = expiry.parse::<u64>().ok().filter(|e| *e > now_secs)?;
        let known = i.parse::<usize>().is_ok_and(|i| i < self.tokens.len());
        let expected = self.session_mac(expiry, i, nonce);
        (known && bool::from(expected.as_bytes().ct_eq(mac.as_bytes()))).then_some((live, mac))
    }

    fn revoked(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        self.revoked.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Ends `cookie`'s session (a logout): it is refused from now on.
    pub fn revoke(&self, cookie: &str, now_secs: u64) {
        let Some((expiry, mac)) = self.signed(cookie, now_secs) else {
            return;
        };
        let mut revoked = self.revoked();
        if revoked.len() >= MAX_REVOKED {
            revoked.retain(|_, e| *e > now_secs);
        }
        if revoked.len() >= MAX_REVOKED {
            let nearest = revoked
                .iter()
                .min_by_key(|(_, e)| **e)
                .map(|(m, _)| m.clone());
            if let Some(m) = nearest {
                revoked.remove(&m);
            }
        }
        revoked.insert(mac.to_string(), expiry);
    }

    /// The CSRF token of the forms a session is shown (empty without a login: then the
    /// request's origin is what is checked).
    pub fn csrf(&self, session: Option<&str>) -> String {
        match session {
            Some(s) => self.mac(&[b"csrf", s.as_bytes()])[..32].to_string(),
            None => String::new(),
        }
    }

    pub fn csrf_ok(&self, session: Option<&str>, given: &str) -> bool {
        let expected = self.csrf(session);
        bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
    }
}

/// A session cookie's MAC (what names it when it is revoked).
pub fn mac_of(session: &str) -> &str {
    session.rsplit('.').next().unwrap_or("")
}

/// Seconds a session cookie has left at `now_secs` (`None` when it is malformed or over).
pub fn left(session: &str, now_secs: u64) -> Option<u64> {
    let expiry: u64 = session.split('.').next()?.parse().ok()?;
    expiry.checked_sub(now_secs).filter(|s| *s > 0)
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header
        .split(';')
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_and_csrf() {
        let keys = Keys::new(&[b"alpha".to_vec(), b"beta".to_vec()]);
        assert!(keys.login("gamma", 100).is_none());
        let s = keys.login("beta", 100).unwrap();
        assert!(keys.valid(&s, 100));
        assert!(!keys.valid(&s, 100 + LIFETIME_SECS), "expired");
        let forged = s.replacen("1.", "0.", 1);
        assert!(!keys.valid(&forged, 100), "another token's number");
        let later = format!("9{s}");
        assert!(!keys.valid(&later, 100), "a longer life");
        // Other tokens, other key: the session ends.
        assert!(!Keys::new(&[b"alpha".to_vec()]).valid(&s, 100));
        // Each login its own session; a logout ends that one alone.
        let again = keys.login("beta", 100).unwrap();
        assert_ne!(s, again);
        keys.revoke(&again, 100);
        assert!(!keys.valid(&again, 100), "logged out");
        assert!(keys.valid(&s, 100), "another session of the same token");
        let csrf = keys.csrf(Some(&s));
        assert!(keys.csrf_ok(Some(&s), &csrf));
        assert!(!keys.csrf_ok(Some(&s), ""));
        let other = keys.login("alpha", 100).unwrap();
        assert!(!keys.csrf_ok(Some(&other), &csrf), "bound to its session");
        assert_eq!(cookie("a=1; hoptrace_session=x.y.z", COOKIE), Some("x.y.z"));
    }
}
