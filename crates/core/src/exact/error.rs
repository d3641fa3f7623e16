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
    /// The refresh token is dead (`invalid_grant`: unknown, consent
    /// revoked; `invalid_request` "The refresh token expired…"). Only a new
    /// sign-in with Exact helps.
    #[error("Exact refused the refresh token: {0}")]
    InvalidGrant(String),
    /// Exact answered 401 `unauthorized_client` "Old refresh token used.":
    /// the refresh token was rotated away. Permanent for that token, but
    /// no failure at all when someone else stored the tokens that replaced
    /// it (the caller checks the token generation).
    #[error("Exact refused an old refresh token")]
    RefreshTokenReused,
    /// Exact's token endpoint refused our app (`invalid_client`): a wrong
    /// or rotated client id or secret. The operator must act; no
    /// connection is at fault, so none is charged with it.
    #[error("Exact refused the app's client credentials")]
    ClientRejected,
    /// The token endpoint answered 400/401 with an error code we do not
    /// know, or with a body that is not Exact's OAuth JSON (a proxy's HTML
    /// page, a truncated body). Transient: the refresh token is not known
    /// to be dead.
    #[error("unexpected token endpoint answer (HTTP {status}, {code})")]
    TokenEndpoint { status: u16, code: String },
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
                | ExactError::TokenEndpoint { .. }
        )
    }

    /// Whether this failure means the refresh token is dead for good, so
    /// only a new sign-in helps. Nothing else may cost a customer their
    /// connection.
    pub fn is_dead_grant(&self) -> bool {
        matches!(
            self,
            ExactError::InvalidGrant(_) | ExactError::RefreshTokenReused
        )
    }

    /// Whether an operator must hear of this failure: it is about our side
    /// (app registration, a proxy in between, an answer Exact does not
    /// document), not about one customer's connection.
    pub fn needs_operator(&self) -> bool {
        matches!(
            self,
            ExactError::ClientRejected
                | ExactError::TokenEndpoint { .. }
                | ExactError::Malformed(_)
        )
    }

    /// How a failed token refresh feeds the token lifecycle.
    pub fn refresh_failure(&self) -> RefreshFailure {
        match self {
            ExactError::InvalidGrant(reason) => {
                RefreshFailure::Permanent(format!("invalid_grant: {reason}"))
            }
            ExactError::RefreshTokenReused => {
                RefreshFailure::Permanent("refresh token already used".into())
            }
            // Everything else, including a refused client and answers we
            // cannot read, leaves the refresh token's fate unknown: retry.
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
            ExactError::RefreshTokenReused => "refresh token reused".into(),
            ExactError::ClientRejected => "invalid_client".into(),
            ExactError::TokenEndpoint { status, code } => {
                format!("token endpoint {status} {code}")
            }
            ExactError::ForeignNextLink => "foreign paging link".into(),
        }
    }
}
