//! Exact Online's OAuth 2.0 authorization-code flow: the authorize URL,
//! the code exchange and the refresh, with Exact's rules: form-encoded
//! token requests, `expires_in` as a string, refresh tokens that rotate on
//! every use, and no refresh before 570 s after issue.

use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;

use super::error::ExactError;
use super::query::encode;
use crate::crypto::Secret;
use crate::ports::{HttpMethod, HttpRequest, HttpResponse, HttpTransport};

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

/// What a 400/401 from the token endpoint means, by what Exact actually
/// sends (reference: exact-online.md §2). Only answers that say the grant
/// itself is dead are permanent; a refused client, an unknown code or a
/// body that is not Exact's OAuth JSON leave the refresh token's fate
/// unknown and must never cost a customer their connection.
pub fn classify_refusal(resp: &HttpResponse, now: DateTime<Utc>) -> ExactError {
    let too_early_header = resp
        .header("reason")
        .is_some_and(|r| r.contains("TooEarlyToRefreshTokens"));
    let parsed = serde_json::from_str::<OAuthError>(&resp.body).ok();
    let description = parsed
        .as_ref()
        .and_then(|e| e.error_description.clone())
        .unwrap_or_default();
    if too_early_header || description.contains("access_token not expired") {
        return ExactError::TooEarlyToRefresh {
            not_before: now + REFRESH_WINDOW,
        };
    }
    let Some(code) = parsed.and_then(|e| e.error) else {
        return ExactError::TokenEndpoint {
            status: resp.status,
            code: "unreadable body".into(),
        };
    };
    match code.as_str() {
        // Revoked consent, an unknown or used code, an unknown refresh
        // token.
        "invalid_grant" => ExactError::InvalidGrant(format!("{code}: {description}")),
        // 401 "Old refresh token used.": the token was rotated away.
        "unauthorized_client" => ExactError::RefreshTokenReused,
        // 400 "The refresh token expired at … and it is now …".
        "invalid_request" if description.to_ascii_lowercase().contains("expired") => {
            ExactError::InvalidGrant(format!("{code}: {description}"))
        }
        "invalid_client" => ExactError::ClientRejected,
        _ => ExactError::TokenEndpoint {
            status: resp.status,
            code: code.chars().take(40).collect(),
        },
    }
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
        400 | 401 => Err(classify_refusal(&resp, now)),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str, reason: Option<&str>) -> ExactError {
        let now = DateTime::<Utc>::UNIX_EPOCH;
        let headers = reason
            .map(|r| vec![("reason".to_owned(), r.to_owned())])
            .unwrap_or_default();
        classify_refusal(
            &HttpResponse {
                status,
                headers,
                body: body.into(),
            },
            now,
        )
    }

    #[test]
    fn only_answers_that_kill_the_grant_are_permanent() {
        let dead = [
            answer(
                401,
                r#"{"error":"unauthorized_client","error_description":"Old refresh token used."}"#,
                None,
            ),
            answer(
                400,
                r#"{"error":"invalid_request","error_description":"The refresh token expired at 10/11/2022 9:18:20 PM and it is now 10/28/2022 4:15:50 PM."}"#,
                None,
            ),
            answer(
                400,
                r#"{"error":"invalid_grant","error_description":"The user revoked the consent for this application."}"#,
                None,
            ),
            answer(400, r#"{"error":"invalid_grant"}"#, None),
        ];
        for e in &dead {
            assert!(e.is_dead_grant(), "{e:?} must be permanent");
            assert!(matches!(
                e.refresh_failure(),
                crate::lifecycle::RefreshFailure::Permanent(_)
            ));
        }
        assert_eq!(dead[0], ExactError::RefreshTokenReused);
    }

    #[test]
    fn our_own_faults_and_unreadable_answers_are_transient_and_reach_the_operator() {
        let alive = [
            answer(
                400,
                r#"{"error":"invalid_client","error_description":"Unknown client or wrong secret"}"#,
                None,
            ),
            answer(400, "<html><body>Bad Gateway</body></html>", None),
            answer(401, "", None),
            answer(400, r#"{"error":"server_busy"}"#, None),
            answer(
                400,
                r#"{"error":"invalid_request","error_description":"Content-Type must be form"}"#,
                None,
            ),
        ];
        for e in &alive {
            assert!(!e.is_dead_grant(), "{e:?} must not kill the connection");
            assert!(
                matches!(
                    e.refresh_failure(),
                    crate::lifecycle::RefreshFailure::Transient(_)
                ),
                "{e:?}"
            );
            assert!(e.needs_operator(), "{e:?} is the operator's to fix");
        }
        assert_eq!(alive[0], ExactError::ClientRejected);
    }

    #[test]
    fn too_early_is_recognised_by_header_or_description() {
        let by_header = answer(
            400,
            r#"{"error":"access_denied"}"#,
            Some("TooEarlyToRefreshTokens: Rate limit exceeded: access_token not expired"),
        );
        let by_text = answer(
            400,
            r#"{"error":"access_denied","error_description":"Rate limit exceeded: access_token not expired"}"#,
            None,
        );
        for e in [by_header, by_text] {
            assert!(matches!(e, ExactError::TooEarlyToRefresh { .. }), "{e:?}");
        }
    }
}
