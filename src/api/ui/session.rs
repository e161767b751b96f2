//! Who is looking at the web view, without keeping state: a session cookie is
//! `expiry.token-number.MAC`, signed with a key made from the configured API tokens (so every
//! replica with the same tokens accepts it, and changing the tokens ends every session); a
//! form's CSRF token is a MAC of the session cookie. Nothing secret is in the cookie.

use crate::record::hex;
use ring::hmac;
use subtle::ConstantTimeEq;

pub const COOKIE: &str = "hoptrace_session";
/// How long a session lasts (seconds).
pub const LIFETIME_SECS: u64 = 12 * 3600;

/// The signing key, and the tokens a login is checked against.
pub struct Keys {
    key: hmac::Key,
    tokens: Vec<Vec<u8>>,
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
    /// time, every token), valid until `now + LIFETIME_SECS`.
    pub fn login(&self, token: &str, now_secs: u64) -> Option<String> {
        let mut found = None;
        for (i, t) in self.tokens.iter().enumerate() {
            if bool::from(t.as_slice().ct_eq(token.as_bytes())) {
                found = Some(i);
            }
        }
        let i = found?;
        let expiry = (now_secs + LIFETIME_SECS).to_string();
        let mac = self.mac(&[b"session", expiry.as_bytes(), i.to_string().as_bytes()]);
        Some(format!("{expiry}.{i}.{mac}"))
    }

    /// Whether `cookie` is a session this key signed that has not expired.
    pub fn valid(&self, cookie: &str, now_secs: u64) -> bool {
        let mut parts = cookie.splitn(3, '.');
        let (Some(expiry), Some(i), Some(mac)) = (parts.next(), parts.next(), parts.next()) else {
            return false;
        };
        let live = expiry.parse::<u64>().is_ok_and(|e| e > now_secs);
        let known = i.parse::<usize>().is_ok_and(|i| i < self.tokens.len());
        let expected = self.mac(&[b"session", expiry.as_bytes(), i.as_bytes()]);
        live && known && bool::from(expected.as_bytes().ct_eq(mac.as_bytes()))
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
        let csrf = keys.csrf(Some(&s));
        assert!(keys.csrf_ok(Some(&s), &csrf));
        assert!(!keys.csrf_ok(Some(&s), ""));
        let other = keys.login("alpha", 100).unwrap();
        assert!(!keys.csrf_ok(Some(&other), &csrf), "bound to its session");
        assert_eq!(cookie("a=1; hoptrace_session=x.y.z", COOKIE), Some("x.y.z"));
    }
}
