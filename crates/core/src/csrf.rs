//! Cross-site request forgery tokens for the portal's forms: an
//! HMAC-SHA256 of the session's hash under the portal's secret, so a token
//! is valid for exactly the session it was rendered for (a token from
//! another browser, or from before a sign-in, fails) and needs no storage.
//! The portal checks `Origin`/`Sec-Fetch-Site` as well; this is the second
//! line.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Why a portal secret cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("PORTAL_SECRET must be 64 hex characters (32 random bytes)")]
pub struct BadSecret;

/// The portal's HMAC secret (`PORTAL_SECRET`, 32 bytes as hex).
#[derive(Clone)]
pub struct PortalSecret(Vec<u8>);

impl std::fmt::Debug for PortalSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PortalSecret(..)")
    }
}

impl PortalSecret {
    pub fn from_hex(hex_secret: &str) -> Result<Self, BadSecret> {
        let raw = hex::decode(hex_secret.trim()).map_err(|_| BadSecret)?;
        if raw.len() != 32 {
            return Err(BadSecret);
        }
        Ok(PortalSecret(raw))
    }

    /// The MAC of `subject` for one `purpose` (domain separation, so a
    /// CSRF token can never serve as anything else). `None` cannot happen
    /// (HMAC takes keys of any length) but keeps the code panic-free.
    fn mac(&self, purpose: &str, subject: &str) -> Option<HmacSha256> {
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&self.0).ok()?;
        mac.update(purpose.as_bytes());
        mac.update(&[0]);
        mac.update(subject.as_bytes());
        Some(mac)
    }

    /// The CSRF token of forms rendered for the session with this hash.
    pub fn csrf_token(&self, session_hash: &str) -> String {
        self.mac("csrf", session_hash)
            .map(|m| hex::encode(m.finalize().into_bytes()))
            .unwrap_or_default()
    }

    /// Whether `presented` is the CSRF token of this session (compared in
    /// constant time).
    pub fn verify_csrf(&self, session_hash: &str, presented: &str) -> bool {
        let Ok(raw) = hex::decode(presented) else {
            return false;
        };
        self.mac("csrf", session_hash)
            .is_some_and(|m| m.verify_slice(&raw).is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    const B: &str = "1f1e1d1c1b1a191817161514131211100f0e0d0c0b0a09080706050403020100";

    #[test]
    fn a_token_is_valid_for_its_session_and_secret_only() {
        let (Ok(a), Ok(b)) = (PortalSecret::from_hex(A), PortalSecret::from_hex(B)) else {
            panic!("test keys are valid");
        };
        let t = a.csrf_token("session-1");
        assert_eq!(t.len(), 64);
        assert!(a.verify_csrf("session-1", &t));
        assert!(!a.verify_csrf("session-2", &t), "another session");
        assert!(!b.verify_csrf("session-1", &t), "another secret");
        assert!(!a.verify_csrf("session-1", ""));
        assert!(!a.verify_csrf("session-1", "zz"));
        assert!(!a.verify_csrf("session-1", &t[..62]));
        assert!(PortalSecret::from_hex("abcd").is_err());
        assert!(!format!("{a:?}").contains("0001"));
    }
}
