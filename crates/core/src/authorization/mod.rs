//! The OAuth 2.1 authorization server for MCP clients, as pure rules.
//!
//! The auth-portal Worker is the authorization server and the mcp-server
//! its resource server; both stay thin: route → parse → call a function
//! here → render. Layout:
//!
//! - [`metadata`]: the canonical issuer and MCP resource, RFC 8414 and
//!   RFC 9728 metadata documents, the `WWW-Authenticate` challenge.
//! - [`clients`]: redirect URI rules (RFC 8252 loopback matching), Dynamic
//!   Client Registration (RFC 7591), Client ID Metadata Documents (fetch,
//!   validation, cache lifetime) and [`clients::resolve`], which finds a
//!   client by id either way.
//! - [`authorize`]: the authorization request, and the redirect URLs of
//!   its answers (RFC 9207 `iss` included).
//! - [`tokens`]: the decisions of the token endpoint as pure functions
//!   ([`tokens::exchange_code`], [`tokens::decide_refresh`]) and the flows
//!   that run them over storage (consent, code exchange, refresh with
//!   rotation, revocation, the resource server's token lookup).
//!
//! Everything takes `now` and randomness as arguments; SQL lives in
//! `storage::oauth_*`.

pub mod authorize;
pub mod clients;
pub mod metadata;
pub mod tokens;

use chrono::Duration;
use sha2::{Digest, Sha256};

/// The one scope: reading the books through tools, resources and prompts.
/// Kept to one because every tool reads and none writes; a second scope
/// only earns its place with a write tool.
pub const SCOPE_BOOKS_READ: &str = "books:read";
/// Every scope the server grants.
pub const SCOPES_SUPPORTED: &[&str] = &[SCOPE_BOOKS_READ];

/// An authorization code lives this long (RFC 9700 recommends short).
pub const CODE_LIFETIME: Duration = Duration::seconds(60);
/// An access token lives this long.
pub const ACCESS_TOKEN_LIFETIME: Duration = Duration::hours(1);
/// A refresh token lapses after this long unused (each rotation issues a
/// new one with a fresh lifetime, so an active client never lapses).
pub const REFRESH_TOKEN_IDLE: Duration = Duration::days(30);
/// After a refresh token has been rotated, it may be presented once more
/// within this window and still yields a valid token pair: claude.ai
/// refreshes from two addresses at once. Any other reuse revokes the grant.
pub const REFRESH_GRACE: Duration = Duration::seconds(60);
/// A client without grants that nobody has used for this long is deleted
/// (Claude Code registers a new client on every sign-in).
pub const UNUSED_CLIENT_RETENTION: Duration = Duration::days(7);
/// A revoked grant's row is kept this long (for support questions), then
/// purged; its codes and tokens are deleted at once.
pub const REVOKED_GRANT_RETENTION: Duration = Duration::days(7);
/// Registrations one client address may make per hour; the auth-portal
/// enforces it with the existing rate limiter.
pub const REGISTRATIONS_PER_HOUR: u32 = 20;

/// The scope a client gets: the known scopes it asked for, or all of them
/// when it asked for none it knows. Unknown scopes (claude.ai once sent
/// `scope=claudeai`) are dropped rather than refused, and so is
/// `offline_access`: refresh tokens are issued anyway, and the 2026-07-28
/// revision asks servers not to name it.
pub fn grantable_scope(requested: Option<&str>) -> String {
    let known: Vec<&str> = SCOPES_SUPPORTED
        .iter()
        .copied()
        .filter(|s| requested.is_some_and(|r| r.split(' ').any(|w| w == *s)))
        .collect();
    if known.is_empty() {
        SCOPES_SUPPORTED.join(" ")
    } else {
        known.join(" ")
    }
}

/// Whether a granted scope string includes `needed`.
pub fn scope_includes(granted: &str, needed: &str) -> bool {
    granted.split(' ').any(|s| s == needed)
}

/// The errors of RFC 6749, 7591, 8707 and 7009 that this server answers
/// with. Each carries a fixed description: never a token, code, verifier
/// or anything the client sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OAuthError {
    #[error("invalid_request: {0}")]
    InvalidRequest(&'static str),
    #[error("invalid_client: {0}")]
    InvalidClient(&'static str),
    #[error("invalid_grant: {0}")]
    InvalidGrant(&'static str),
    #[error("unauthorized_client: {0}")]
    UnauthorizedClient(&'static str),
    #[error("unsupported_grant_type: {0}")]
    UnsupportedGrantType(&'static str),
    #[error("unsupported_response_type: {0}")]
    UnsupportedResponseType(&'static str),
    #[error("invalid_scope: {0}")]
    InvalidScope(&'static str),
    #[error("access_denied: {0}")]
    AccessDenied(&'static str),
    #[error("invalid_target: {0}")]
    InvalidTarget(&'static str),
    #[error("invalid_client_metadata: {0}")]
    InvalidClientMetadata(&'static str),
    #[error("invalid_redirect_uri: {0}")]
    InvalidRedirectUri(&'static str),
    /// The server could not do its part (storage, randomness): 500/503 at
    /// the token endpoint, `server_error` in a redirect.
    #[error("server_error: {0}")]
    ServerError(&'static str),
    /// `temporarily_unavailable` in a redirect, 503 elsewhere.
    #[error("temporarily_unavailable: {0}")]
    TemporarilyUnavailable(&'static str),
}

impl OAuthError {
    /// The `error` code on the wire.
    pub fn code(&self) -> &'static str {
        match self {
            OAuthError::InvalidRequest(_) => "invalid_request",
            OAuthError::InvalidClient(_) => "invalid_client",
            OAuthError::InvalidGrant(_) => "invalid_grant",
            OAuthError::UnauthorizedClient(_) => "unauthorized_client",
            OAuthError::UnsupportedGrantType(_) => "unsupported_grant_type",
            OAuthError::UnsupportedResponseType(_) => "unsupported_response_type",
            OAuthError::InvalidScope(_) => "invalid_scope",
            OAuthError::AccessDenied(_) => "access_denied",
            OAuthError::InvalidTarget(_) => "invalid_target",
            OAuthError::InvalidClientMetadata(_) => "invalid_client_metadata",
            OAuthError::InvalidRedirectUri(_) => "invalid_redirect_uri",
            OAuthError::ServerError(_) => "server_error",
            OAuthError::TemporarilyUnavailable(_) => "temporarily_unavailable",
        }
    }

    /// The `error_description`: a fixed sentence, safe to show.
    pub fn description(&self) -> &'static str {
        match self {
            OAuthError::InvalidRequest(d)
            | OAuthError::InvalidClient(d)
            | OAuthError::InvalidGrant(d)
            | OAuthError::UnauthorizedClient(d)
            | OAuthError::UnsupportedGrantType(d)
            | OAuthError::UnsupportedResponseType(d)
            | OAuthError::InvalidScope(d)
            | OAuthError::AccessDenied(d)
            | OAuthError::InvalidTarget(d)
            | OAuthError::InvalidClientMetadata(d)
            | OAuthError::InvalidRedirectUri(d)
            | OAuthError::ServerError(d)
            | OAuthError::TemporarilyUnavailable(d) => d,
        }
    }

    /// The HTTP status of a JSON error answer (token, registration and
    /// revocation endpoints). `invalid_client` is 401 so that claude.ai
    /// registers again (it does so on a 401 `invalid_client`).
    pub fn http_status(&self) -> u16 {
        match self {
            OAuthError::InvalidClient(_) => 401,
            OAuthError::ServerError(_) => 500,
            OAuthError::TemporarilyUnavailable(_) => 503,
            _ => 400,
        }
    }

    /// The JSON error body (RFC 6749 §5.2).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({ "error": self.code(), "error_description": self.description() })
    }
}

impl From<crate::storage::StorageError> for OAuthError {
    fn from(e: crate::storage::StorageError) -> Self {
        if e.is_retryable() {
            OAuthError::TemporarilyUnavailable("try again shortly")
        } else {
            OAuthError::ServerError("the server could not complete the request")
        }
    }
}

/// Whether a PKCE `code_verifier` has RFC 7636 §4.1's syntax: 43 to 128
/// characters of `[A-Za-z0-9-._~]`.
pub fn is_valid_code_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// Whether a `code_challenge` has the shape of an S256 challenge: the
/// unpadded base64url of a SHA-256 digest (43 characters).
pub fn is_valid_code_challenge(challenge: &str) -> bool {
    challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
}

/// The S256 challenge of a verifier: `BASE64URL(SHA256(verifier))`.
pub fn s256_challenge(verifier: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Whether `verifier` answers `challenge` (S256), compared in constant
/// time so the comparison leaks nothing about the stored challenge.
pub fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    is_valid_code_verifier(verifier) && constant_time_eq(&s256_challenge(verifier), challenge)
}

fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_scopes_and_offline_access_are_dropped_not_refused() {
        assert_eq!(grantable_scope(None), "books:read");
        assert_eq!(grantable_scope(Some("claudeai")), "books:read");
        assert_eq!(
            grantable_scope(Some("offline_access books:read")),
            "books:read"
        );
        assert_eq!(grantable_scope(Some("")), "books:read");
        assert!(scope_includes("books:read", SCOPE_BOOKS_READ));
        assert!(!scope_includes("books:reader", SCOPE_BOOKS_READ));
    }

    #[test]
    fn pkce_follows_rfc_7636() {
        // The example of RFC 7636 Appendix B.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert_eq!(s256_challenge(verifier), challenge);
        assert!(pkce_matches(verifier, challenge));
        assert!(is_valid_code_challenge(challenge));
        assert!(!pkce_matches(
            verifier,
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cN"
        ));
        // The plain method (verifier == challenge) never matches.
        assert!(!pkce_matches(challenge, challenge));
        assert!(!is_valid_code_verifier("short"));
        assert!(!is_valid_code_verifier(&"a".repeat(129)));
        assert!(!is_valid_code_verifier(&format!("{}+", "a".repeat(50))));
        assert!(!is_valid_code_challenge("plain-challenge"));
    }

    #[test]
    fn error_answers_carry_the_rfc_codes_and_fixed_descriptions() {
        let e = OAuthError::InvalidClient("unknown client");
        assert_eq!(e.code(), "invalid_client");
        assert_eq!(e.http_status(), 401);
        assert_eq!(
            e.to_json(),
            serde_json::json!({"error": "invalid_client", "error_description": "unknown client"})
        );
        assert_eq!(OAuthError::InvalidTarget("x").code(), "invalid_target");
        assert_eq!(OAuthError::InvalidGrant("x").http_status(), 400);
    }
}
