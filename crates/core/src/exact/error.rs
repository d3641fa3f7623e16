//! What can go wrong talking to Exact Online, as a caller can act on it.

use chrono::{DateTime, Utc};

use crate::lifecycle::RefreshFailure;
use crate::ports::TransportError;

/// Which of Exact's two windows ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateWindow {
    Minutely,
    Daily,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ExactError {
    /// The access token is missing, expired or revoked (HTTP 401 on REST).
    /// Refresh once and retry; if that fails too, the user must reconnect.
    #[error("Exact rejected the access token")]
    Unauthorized,
    /// A rate limit is exhausted until `reset_at`. Not retried before then.
    #[error("Exact rate limit ({window:?}) reached until {reset_at}")]
    RateLimited {
        window: RateWindow,
        reset_at: DateTime<Utc>,
    },
    /// The user or app may not read this (HTTP 403), e.g. a division
    /// outside the grant (`Reason: NoDivisionAccess`) or a missing module.
    #[error("Exact refused access{}", reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default())]
    Forbidden { reason: Option<String> },
    #[error("Exact has no such resource")]
    NotFound,
    /// Exact rejected the query (HTTP 400) with this message.
    #[error("Exact rejected the request: {0}")]
    BadRequest(String),
    /// Exact failed (5xx) or answered an unexpected status.
    #[error("Exact Online is unavailable (HTTP {status})")]
    Upstream { status: u16 },
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The response was not what Exact documents.
    #[error("unexpected response from Exact: {0}")]
    Malformed(String),
    /// Refreshing before Exact allows it (570 s after issue) is refused by
    /// Exact and counts as an error there, so we never try.
    #[error("too early to refresh the Exact token; allowed from {not_before}")]
    TooEarlyToRefresh { not_before: DateTime<Utc> },
    /// The refresh token is dead (used before, expired, consent revoked).
    /// Only a new sign-in with Exact helps.
    #[error("Exact refused the refresh token: {0}")]
    InvalidGrant(String),
    /// A `__next` link pointed somewhere other than the configured host; we
    /// never send the token there.
    #[error("Exact paging link left the configured host")]
    ForeignNextLink,
}

impl ExactError {
    /// Whether trying again later (backoff) may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ExactError::RateLimited { .. }
                | ExactError::Upstream { .. }
                | ExactError::Transport(_)
                | ExactError::TooEarlyToRefresh { .. }
        )
    }

    /// How a failed token refresh feeds the token lifecycle.
    pub fn refresh_failure(&self) -> RefreshFailure {
        match self {
            ExactError::InvalidGrant(reason) => {
                RefreshFailure::Permanent(format!("invalid_grant: {reason}"))
            }
            ExactError::Forbidden { .. } | ExactError::Unauthorized => {
                RefreshFailure::Permanent("consent revoked or client not authorised".into())
            }
            other => RefreshFailure::Transient(other.short_reason()),
        }
    }

    /// A short, secret-free description for logs and `last_error`.
    pub fn short_reason(&self) -> String {
        match self {
            ExactError::Unauthorized => "unauthorized".into(),
            ExactError::RateLimited { window, .. } => format!("rate limited ({window:?})"),
            ExactError::Forbidden { reason } => {
                format!("forbidden {}", reason.clone().unwrap_or_default())
            }
            ExactError::NotFound => "not found".into(),
            ExactError::BadRequest(_) => "bad request".into(),
            ExactError::Upstream { status } => format!("upstream {status}"),
            ExactError::Transport(TransportError::Timeout) => "timeout".into(),
            ExactError::Transport(TransportError::Network(_)) => "network".into(),
            ExactError::Malformed(_) => "malformed response".into(),
            ExactError::TooEarlyToRefresh { .. } => "too early to refresh".into(),
            ExactError::InvalidGrant(_) => "invalid_grant".into(),
            ExactError::ForeignNextLink => "foreign paging link".into(),
        }
    }
}
