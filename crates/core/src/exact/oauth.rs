//! Exact Online's OAuth 2.0 authorization-code flow: the authorize URL,
//! the code exchange and the refresh, with Exact's rules: form-encoded
//! token requests, `expires_in` as a string, refresh tokens that rotate on
//! every use, and no refresh before 570 s after issue.

use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;

use super::error::ExactError;
use super::query::encode;
use crate::crypto::Secret;
use crate::ports::{HttpMethod, HttpRequest, HttpTransport};

/// Exact access tokens live 600 s.
pub const ACCESS_TOKEN_LIFETIME: Duration = Duration::seconds(600);
/// Exact refuses a refresh until the last 30 s of the access token.
pub const REFRESH_WINDOW: Duration = Duration::seconds(30);
/// A refresh token lapses after 30 days without use.
pub const REFRESH_TOKEN_LIFETIME: Duration = Duration::days(30);

/// One app registration at one Exact site.
#[derive(Debug, Clone)]
pub struct ExactApp {
    pub base_url: String,
    pub client_id: String,
    pub client_secret: Secret,
    pub redirect_uri: String,
}

/// Tokens from a code exchange or refresh, with their deadlines.
#[derive(Debug, Clone)]
pub struct TokenSet {
    pub access_token: Secret,
    pub refresh_token: Secret,
    pub access_expires_at: DateTime<Utc>,
    pub refresh_expires_at: DateTime<Utc>,
}

impl TokenSet {
    pub fn into_exact_tokens(self) -> crate::storage::connections::ExactTokens {
        crate::storage::connections::ExactTokens {
            access_token: self.access_token,
            refresh_token: self.refresh_token,
            access_expires_at: self.access_expires_at,
            refresh_expires_at: self.refresh_expires_at,
        }
    }
}

/// The earliest moment Exact accepts a refresh of a token expiring then.
pub fn earliest_refresh(access_expires_at: DateTime<Utc>) -> DateTime<Utc> {
    access_expires_at - REFRESH_WINDOW
}

/// Whether an access token should be refreshed now: it is in its last
/// 30 s (the only time Exact allows it) or already expired.
pub fn refresh_due(access_expires_at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    now >= earliest_refresh(access_expires_at)
}

/// The browser URL that starts the flow.
pub fn authorize_url(app: &ExactApp, state: &str) -> String {
    format!(
        "{}/api/oauth2/auth?client_id={}&redirect_uri={}&response_type=code&force_login=0&state={}",
        app.base_url.trim_end_matches('/'),
        encode(&app.client_id),
        encode(&app.redirect_uri),
        encode(state)
    )
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    refresh_token: String,
    expires_in: serde_json::Value,
}

#[derive(Deserialize)]
struct OAuthError {
    error: Option<String>,
    error_description: Option<String>,
}

async fn token_request(
    transport: &impl HttpTransport,
    app: &ExactApp,
    form: &[(&str, &str)],
    now: DateTime<Utc>,
) -> Result<TokenSet, ExactError> {
    let body = form
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    let resp = transport
        .send(HttpRequest {
            method: HttpMethod::Post,
            url: format!("{}/api/oauth2/token", app.base_url.trim_end_matches('/')),
            headers: vec![
                (
                    "Content-Type".into(),
                    "application/x-www-form-urlencoded".into(),
                ),
                ("Accept".into(), "application/json".into()),
            ],
            body: Some(body),
        })
        .await?;
    match resp.status {
        200 => {
            let t: TokenResponse = serde_json::from_str(&resp.body)
                .map_err(|_| ExactError::Malformed("token response".into()))?;
            let secs = match &t.expires_in {
                serde_json::Value::String(s) => s.trim().parse::<i64>().ok(),
                serde_json::Value::Number(n) => n.as_i64(),
                _ => None,
            }
            .ok_or_else(|| ExactError::Malformed("expires_in".into()))?;
            // A token that is (nearly) dead on arrival is a broken grant.
            if secs < 60 || t.access_token.is_empty() || t.refresh_token.is_empty() {
                return Err(ExactError::Malformed(
                    "token response without usable tokens".into(),
                ));
            }
            Ok(TokenSet {
                access_token: Secret::new(t.access_token),
                refresh_token: Secret::new(t.refresh_token),
                access_expires_at: now + Duration::seconds(secs),
                refresh_expires_at: now + REFRESH_TOKEN_LIFETIME,
            })
        }
        400 | 401 => {
            let e: OAuthError = serde_json::from_str(&resp.body).unwrap_or(OAuthError {
                error: None,
                error_description: None,
            });
            let description = e.error_description.unwrap_or_default();
            let too_early = resp
                .header("reason")
                .is_some_and(|r| r.contains("TooEarlyToRefreshTokens"))
                || description.contains("access_token not expired");
            if too_early {
                return Err(ExactError::TooEarlyToRefresh {
                    not_before: now + REFRESH_WINDOW,
                });
            }
            let code = e.error.unwrap_or_else(|| "invalid_grant".into());
            Err(ExactError::InvalidGrant(format!("{code}: {description}")))
        }
        429 => Err(ExactError::RateLimited {
            window: super::error::RateWindow::Daily,
            reset_at: now + Duration::hours(1),
        }),
        status => Err(ExactError::Upstream { status }),
    }
}

/// Exchanges an authorization code (decoded, as it arrived on the
/// callback) for tokens.
pub async fn exchange_code(
    transport: &impl HttpTransport,
    app: &ExactApp,
    code: &str,
    now: DateTime<Utc>,
) -> Result<TokenSet, ExactError> {
    token_request(
        transport,
        app,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &app.redirect_uri),
            ("client_id", &app.client_id),
            ("client_secret", app.client_secret.expose()),
        ],
        now,
    )
    .await
}

/// Refreshes with the current refresh token. Refuses (without calling
/// Exact) before the refresh window; the old refresh token is dead after a
/// success, so the caller must store the new one before anything else.
pub async fn refresh(
    transport: &impl HttpTransport,
    app: &ExactApp,
    refresh_token: &Secret,
    access_expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<TokenSet, ExactError> {
    if !refresh_due(access_expires_at, now) {
        return Err(ExactError::TooEarlyToRefresh {
            not_before: earliest_refresh(access_expires_at),
        });
    }
    token_request(
        transport,
        app,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.expose()),
            ("client_id", &app.client_id),
            ("client_secret", app.client_secret.expose()),
        ],
        now,
    )
    .await
}
