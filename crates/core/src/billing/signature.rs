//! Stripe's webhook signature: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=…]`,
//! HMAC-SHA256 with the endpoint secret over `"{t}.{raw body}"`, any `v1`
//! accepted in constant time, within a tolerance of the timestamp. Several
//! endpoint secrets may be live while one is rotated.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How old (or how far ahead) a signed timestamp may be: Stripe's
/// libraries' default.
pub const TOLERANCE_SECONDS: i64 = 300;

/// Why a delivery is not Stripe's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no Stripe-Signature header")]
    Missing,
    #[error("the Stripe-Signature header has no timestamp or no v1 signature")]
    Malformed,
    #[error("the signed timestamp is outside the tolerance")]
    Stale,
    #[error("no signature matches")]
    Mismatch,
    #[error("no webhook secret is configured")]
    NoSecret,
}

/// Checks a delivery: the header, the raw body as received, the endpoint
/// secrets (any may match), and the time now.
pub fn verify(
    header: Option<&str>,
    body: &[u8],
    secrets: &[String],
    now: DateTime<Utc>,
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    if secrets.is_empty() {
        return Err(SignatureError::NoSecret);
    }
    let mut timestamp: Option<i64> = None;
    let mut signatures: Vec<Vec<u8>> = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse().ok(),
            Some(("v1", sig)) => {
                if let Ok(bytes) = hex::decode(sig) {
                    signatures.push(bytes);
                }
            }
            // v0 (test mode, SHA-1 era) and unknown schemes are ignored,
            // as Stripe's libraries do.
            _ => {}
        }
    }
    let t = timestamp.ok_or(SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    if (now.timestamp() - t).abs() > TOLERANCE_SECONDS {
        return Err(SignatureError::Stale);
    }
    for secret in secrets {
        for sig in &signatures {
            let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
                continue;
            };
            mac.update(t.to_string().as_bytes());
            mac.update(b".");
            mac.update(body);
            // `verify_slice` compares in constant time.
            if mac.verify_slice(sig).is_ok() {
                return Ok(());
            }
        }
    }
    Err(SignatureError::Mismatch)
}

/// The header Stripe would send (for tests and the local imitation's
/// counterpart checks).
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap()
    }

    const BODY: &[u8] = br#"{"id":"evt_1","type":"invoice.paid"}"#;

    #[test]
    fn a_signature_over_the_raw_body_with_a_live_secret_is_accepted() {
        let t = now().timestamp();
        let header = sign("whsec_new", t, BODY);
        let secrets = vec!["whsec_old".to_owned(), "whsec_new".to_owned()];
        assert_eq!(verify(Some(&header), BODY, &secrets, now()), Ok(()));
        // Several v1 entries: any one may match (Stripe sends one per
        // secret while a secret is rolled).
        let two = format!("{header},v1={}", "00".repeat(32));
        assert_eq!(verify(Some(&two), BODY, &secrets, now()), Ok(()));
    }

    #[test]
    fn anything_else_is_refused_with_its_reason() {
        let t = now().timestamp();
        let secrets = vec!["whsec_s".to_owned()];
        let good = sign("whsec_s", t, BODY);
        assert_eq!(
            verify(None, BODY, &secrets, now()),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify(Some("v1=abcd"), BODY, &secrets, now()),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify(Some(&format!("t={t}")), BODY, &secrets, now()),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify(Some(&good), b"{\"id\":\"evt_2\"}", &secrets, now()),
            Err(SignatureError::Mismatch),
            "another body"
        );
        assert_eq!(
            verify(Some(&sign("whsec_other", t, BODY)), BODY, &secrets, now()),
            Err(SignatureError::Mismatch)
        );
        let old = sign("whsec_s", t - TOLERANCE_SECONDS - 1, BODY);
        assert_eq!(
            verify(Some(&old), BODY, &secrets, now()),
            Err(SignatureError::Stale)
        );
        let edge = sign("whsec_s", t - TOLERANCE_SECONDS, BODY);
        assert_eq!(verify(Some(&edge), BODY, &secrets, now()), Ok(()));
        assert_eq!(
            verify(Some(&good), BODY, &[], now()),
            Err(SignatureError::NoSecret)
        );
    }
}
