//! The `security_events` table: failed authentications per client
//! address, refused origins, webhook signature failures and hostile OAuth
//! requests. Never the secret itself: at most a short hash prefix of a
//! presented credential, so repeated tries of one key can be told apart
//! from a spray of many.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;

use super::{SqlExecutor, Statement, StorageError, query_all};
use crate::crypto::hash_credential;

/// What happened. Each maps onto one of the table's `event_type`s (its
/// CHECK predates most of them), the precise reason going into `details`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityEvent {
    /// A bad, unknown or revoked API key at the MCP server.
    InvalidApiKey,
    /// A bad, expired or foreign OAuth access token at the MCP server.
    InvalidOAuthToken,
    /// A session cookie that names no live session (forged or expired).
    InvalidSession,
    /// A state-changing form without a valid CSRF token or from elsewhere.
    CsrfFailure,
    /// A browser origin the MCP server does not allow.
    RefusedOrigin,
    /// A Stripe webhook whose signature did not verify.
    WebhookSignature,
    /// An OAuth request whose redirect URI the client did not register.
    OAuthRedirectMismatch,
    /// An authorization code or refresh token refused at the token
    /// endpoint (`invalid_grant`): replayed, expired, or presented with a
    /// wrong PKCE verifier.
    OAuthInvalidGrant,
}

impl SecurityEvent {
    /// The stored `event_type`.
    pub const fn event_type(self) -> &'static str {
        match self {
            SecurityEvent::InvalidApiKey => "invalid_api_key",
            SecurityEvent::InvalidOAuthToken => "invalid_oauth_token",
            SecurityEvent::InvalidSession | SecurityEvent::WebhookSignature => "auth_failure",
            SecurityEvent::CsrfFailure => "csrf_failure",
            SecurityEvent::RefusedOrigin
            | SecurityEvent::OAuthRedirectMismatch
            | SecurityEvent::OAuthInvalidGrant => "suspicious_activity",
        }
    }

    /// The precise reason, stored as `details.reason`.
    pub const fn reason(self) -> &'static str {
        match self {
            SecurityEvent::InvalidApiKey => "invalid_api_key",
            SecurityEvent::InvalidOAuthToken => "invalid_oauth_token",
            SecurityEvent::InvalidSession => "invalid_session",
            SecurityEvent::CsrfFailure => "csrf_failure",
            SecurityEvent::RefusedOrigin => "refused_origin",
            SecurityEvent::WebhookSignature => "webhook_signature",
            SecurityEvent::OAuthRedirectMismatch => "oauth_redirect_mismatch",
            SecurityEvent::OAuthInvalidGrant => "oauth_invalid_grant",
        }
    }
}

/// How many hex characters of a credential's SHA-256 a row may keep:
/// enough to group tries of one key, far too few to find it.
pub const CREDENTIAL_HINT_CHARS: usize = 8;

/// The short hash prefix of a presented credential.
pub fn credential_hint(credential: &str) -> String {
    hash_credential(credential)
        .chars()
        .take(CREDENTIAL_HINT_CHARS)
        .collect()
}

/// Longest user agent kept (clients may send anything).
const MAX_USER_AGENT: usize = 200;
/// Longest free-text detail kept (an origin, a path).
const MAX_DETAIL: usize = 200;

fn capped(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// One security event.
#[derive(Debug, Clone, PartialEq)]
pub struct SecurityRecord<'a> {
    pub event: SecurityEvent,
    /// The user, when the request named one that exists.
    pub user_id: Option<&'a str>,
    /// `CF-Connecting-IP`.
    pub client_ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    /// [`credential_hint`] of the presented credential, if any.
    pub credential_hint: Option<String>,
    /// A secret-free detail: the refused origin, the route.
    pub detail: Option<&'a str>,
}

impl<'a> SecurityRecord<'a> {
    pub fn new(event: SecurityEvent, client_ip: Option<&'a str>) -> Self {
        SecurityRecord {
            event,
            user_id: None,
            client_ip,
            user_agent: None,
            credential_hint: None,
            detail: None,
        }
    }

    pub fn user_agent(mut self, user_agent: Option<&'a str>) -> Self {
        self.user_agent = user_agent;
        self
    }

    pub fn detail(mut self, detail: &'a str) -> Self {
        self.detail = Some(detail);
        self
    }

    pub fn user(mut self, user_id: Option<&'a str>) -> Self {
        self.user_id = user_id;
        self
    }

    /// Keeps only the hash prefix of `credential`, never the credential.
    pub fn presented(mut self, credential: Option<&str>) -> Self {
        self.credential_hint = credential.filter(|c| !c.is_empty()).map(credential_hint);
        self
    }
}

/// The insert of one event.
pub fn insert_statement(record: &SecurityRecord<'_>, now: DateTime<Utc>) -> Statement {
    let mut details = json!({ "reason": record.event.reason() });
    if let Some(hint) = &record.credential_hint {
        details["credential_sha256_prefix"] = json!(hint);
    }
    if let Some(detail) = record.detail {
        details["detail"] = json!(capped(detail, MAX_DETAIL));
    }
    Statement::new(
        "INSERT INTO security_events (event_type, user_id, client_ip, user_agent, details, at)
         VALUES (?, ?, ?, ?, ?, ?)",
        vec![
            record.event.event_type().into(),
            record.user_id.into(),
            record.client_ip.map(|ip| capped(ip, 64)).into(),
            record
                .user_agent
                .map(|ua| capped(ua, MAX_USER_AGENT))
                .into(),
            details.to_string().into(),
            now.into(),
        ],
    )
}

/// A deleted user's rows keep what happened but not from where (part of
/// deleting an account, before the user row goes).
pub fn forget_addresses_statement(user_id: &str) -> Statement {
    Statement::new(
        "UPDATE security_events SET client_ip = NULL, user_agent = NULL WHERE user_id = ?",
        vec![user_id.into()],
    )
}

/// Events older than `before`.
pub fn purge_statement(before: DateTime<Utc>) -> Statement {
    Statement::new(
        "DELETE FROM security_events WHERE at < ?",
        vec![before.into()],
    )
}

/// A stored event.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct StoredEvent {
    pub event_type: String,
    pub user_id: Option<String>,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
    pub details: Option<String>,
    pub at: i64,
}

/// The newest events first, for operators and tests.
pub async fn recent(db: &impl SqlExecutor, limit: u32) -> Result<Vec<StoredEvent>, StorageError> {
    query_all(
        db,
        Statement::new(
            "SELECT event_type, user_id, client_ip, user_agent, details, at
               FROM security_events ORDER BY id DESC LIMIT ?",
            vec![limit.into()],
        ),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_presented_key_is_kept_as_a_short_hash_prefix_only() {
        let key = "pmjb_0123456789abcdef0123456789abcdef0123456789abcdef";
        let stmt = insert_statement(
            &SecurityRecord::new(SecurityEvent::InvalidApiKey, Some("203.0.113.9"))
                .presented(Some(key)),
            DateTime::<Utc>::MIN_UTC,
        );
        let text = format!("{stmt:?}");
        assert!(!text.contains(key), "{text}");
        assert!(text.contains(&credential_hint(key)), "{text}");
        assert_eq!(credential_hint(key).len(), CREDENTIAL_HINT_CHARS);
    }
}
