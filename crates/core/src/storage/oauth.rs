//! The OAuth tables of the MCP authorization server (`oauth_auth_codes`,
//! `oauth_tokens`). The token cron purges what can no longer be used.

use chrono::{DateTime, Utc};

use super::Statement;

/// Authorization codes past their expiry (used or not).
pub fn purge_expired_codes_statement(now: DateTime<Utc>) -> Statement {
    Statement::new(
        "DELETE FROM oauth_auth_codes WHERE expires_at < ?",
        vec![now.into()],
    )
}

/// Tokens whose refresh token has expired.
pub fn purge_expired_refreshable_statement(now: DateTime<Utc>) -> Statement {
    Statement::new(
        "DELETE FROM oauth_tokens WHERE refresh_expires_at < ?",
        vec![now.into()],
    )
}

/// Access-only tokens (no refresh token) past their expiry.
pub fn purge_expired_access_only_statement(now: DateTime<Utc>) -> Statement {
    Statement::new(
        "DELETE FROM oauth_tokens WHERE refresh_expires_at IS NULL AND access_expires_at < ?",
        vec![now.into()],
    )
}
