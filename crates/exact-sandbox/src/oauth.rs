//! Exact's OAuth 2.0 endpoints: the login and consent page
//! (`GET/POST /api/oauth2/auth`) and the token endpoint
//! (`POST /api/oauth2/token`), with Exact's rules and error bodies.

use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use crate::Shared;
use crate::http::{Reply, Req, esc};
use crate::state::{AccessGrant, CodeGrant, RefreshGrant};

const ACCESS_LIFETIME: i64 = 600;
const REFRESH_LIFETIME_DAYS: i64 = 30;
const CODE_LIFETIME: i64 = 180;
const REFRESH_WINDOW: i64 = 30;

fn redirect_allowed(shared: &Shared, uri: &str) -> bool {
    if shared.config.redirect_uris.is_empty() {
        return uri.starts_with("http://127.0.0.1:") || uri.starts_with("http://localhost:");
    }
    shared.config.redirect_uris.iter().any(|u| u == uri)
}

fn oauth_error(status: u16, error: &str, description: &str) -> Reply {
    Reply::json(
        status,
        &json!({"error": error, "error_description": description}),
    )
}

fn login_page(req: &Req, message: Option<&str>) -> Reply {
    let field = |k: &str| esc(req.query.get(k).map(String::as_str).unwrap_or(""));
    let msg = message
        .map(|m| format!("<p class=\"error\" role=\"alert\">{}</p>", esc(m)))
        .unwrap_or_default();
    Reply::html(
        200,
        format!(
            "<!doctype html><html lang=\"nl\"><head><meta charset=\"utf-8\"><title>Exact Online (sandbox) – Inloggen</title></head>\
<body><main><h1>Exact Online</h1><p>Sandbox: log in and allow access to your administrations.</p>{msg}\
<form method=\"post\" action=\"/api/oauth2/auth\">\
<input type=\"hidden\" name=\"client_id\" value=\"{}\"><input type=\"hidden\" name=\"redirect_uri\" value=\"{}\">\
<input type=\"hidden\" name=\"state\" value=\"{}\"><input type=\"hidden\" name=\"response_type\" value=\"{}\">\
<label>Gebruikersnaam <input name=\"username\" id=\"username\" autocomplete=\"username\"></label>\
<label>Wachtwoord <input name=\"password\" id=\"password\" type=\"password\" autocomplete=\"current-password\"></label>\
<button type=\"submit\" name=\"consent\" value=\"allow\" id=\"allow\">Toestaan</button>\
<button type=\"submit\" name=\"consent\" value=\"deny\" id=\"deny\">Weigeren</button>\
</form></main></body></html>",
            field("client_id"),
            field("redirect_uri"),
            field("state"),
            field("response_type"),
        ),
    )
}

fn with_query(uri: &str, pairs: &[(&str, &str)]) -> String {
    let sep = if uri.contains('?') { '&' } else { '?' };
    let q: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", boekhouding_core::exact::query::encode(v)))
        .collect();
    format!("{uri}{sep}{}", q.join("&"))
}

/// `GET /api/oauth2/auth`: validates the app and shows the login page.
pub fn authorize_page(shared: &Shared, req: &Req) -> Reply {
    let client_id = req.query.get("client_id").map(String::as_str).unwrap_or("");
    let redirect = req
        .query
        .get("redirect_uri")
        .map(String::as_str)
        .unwrap_or("");
    if client_id.trim_matches(|c| c == '{' || c == '}') != shared.config.client_id {
        return Reply::html(400, "<h1>Unknown client_id</h1>".into());
    }
    if !redirect_allowed(shared, redirect) {
        return Reply::html(
            400,
            "<h1>The redirect_uri does not match the registered one</h1>".into(),
        );
    }
    if req.query.get("response_type").map(String::as_str) != Some("code") {
        return Reply::html(400, "<h1>Unsupported response_type</h1>".into());
    }
    login_page(req, None)
}

/// `POST /api/oauth2/auth`: the login form; on success a redirect with a
/// single-use code (containing `!`, like Exact's).
pub fn authorize_submit(shared: &Shared, req: &Req) -> Reply {
    let form = req.form();
    let get = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    let as_query = Req {
        query: form.clone(),
        ..req.clone()
    };
    if get("client_id").trim_matches(|c| c == '{' || c == '}') != shared.config.client_id
        || !redirect_allowed(shared, get("redirect_uri"))
    {
        return Reply::html(400, "<h1>Invalid authorization request</h1>".into());
    }
    let redirect = get("redirect_uri");
    let state = get("state");
    if get("consent") == "deny" {
        return Reply::redirect(&with_query(
            redirect,
            &[("error", "access_denied"), ("state", state)],
        ));
    }
    let Some(user) = shared
        .data
        .users
        .iter()
        .find(|u| u.username == get("username") && u.password == get("password"))
    else {
        return login_page(&as_query, Some("Onjuiste gebruikersnaam of wachtwoord."));
    };
    let Ok(mut st) = shared.state.lock() else {
        return Reply::empty(500);
    };
    let now = st.now();
    let code = format!("XTzM!{}", st.token("", shared.config.data.seed));
    st.revoked
        .remove(&(user.user_id.clone(), shared.config.client_id.clone()));
    st.codes.insert(
        code.clone(),
        CodeGrant {
            user_id: user.user_id.clone(),
            client_id: shared.config.client_id.clone(),
            redirect_uri: redirect.to_owned(),
            expires_at: now + Duration::seconds(CODE_LIFETIME),
            used: false,
        },
    );
    Reply::redirect(&with_query(redirect, &[("code", &code), ("state", state)]))
}

/// Mints a token pair for a user whose access token expires at
/// `access_expires_at`, storing the refresh grant; returns (access token,
/// refresh token, refresh expiry).
fn mint(
    shared: &Shared,
    st: &mut crate::state::Inner,
    user_id: &str,
    access_expires_at: DateTime<Utc>,
) -> (String, String, DateTime<Utc>) {
    let refresh_expires_at = st.now() + Duration::days(REFRESH_LIFETIME_DAYS);
    let access = st.token("stampNL001.", shared.config.data.seed);
    let refresh = st.token("", shared.config.data.seed.wrapping_add(1));
    st.refresh.insert(
        refresh.clone(),
        RefreshGrant {
            user_id: user_id.to_owned(),
            client_id: shared.config.client_id.clone(),
            expires_at: refresh_expires_at,
            access_expires_at,
            used: false,
        },
    );
    (access, refresh, refresh_expires_at)
}

fn issue(shared: &Shared, st: &mut crate::state::Inner, user_id: &str) -> Reply {
    let access_expires_at = st.now() + Duration::seconds(ACCESS_LIFETIME);
    let (access, refresh, _) = mint(shared, st, user_id, access_expires_at);
    st.access.insert(
        access.clone(),
        AccessGrant {
            user_id: user_id.to_owned(),
            client_id: shared.config.client_id.clone(),
            expires_at: access_expires_at,
        },
    );
    Reply::json(
        200,
        &json!({
            "access_token": access,
            "token_type": "bearer",
            "expires_in": ACCESS_LIFETIME.to_string(),
            "refresh_token": refresh,
        }),
    )
}

/// A token pair for a user as if signed in long enough ago that its access
/// token has just expired (so a refresh is allowed at once): bulk set-up
/// for benchmarks through the admin API.
pub fn mint_expired_grant(
    shared: &Shared,
    st: &mut crate::state::Inner,
    user_id: &str,
) -> serde_json::Value {
    let now = st.now();
    let (access, refresh, refresh_expires_at) = mint(shared, st, user_id, now);
    json!({
        "access_token": access,
        "refresh_token": refresh,
        "refresh_expires_at": refresh_expires_at.to_rfc3339(),
    })
}

pub fn token(shared: &Shared, req: &Req) -> (Reply, Option<String>) {
    let form = req.form();
    let get = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    let grant = get("grant_type").to_owned();
    if !req
        .header("content-type")
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"))
    {
        return (
            oauth_error(
                400,
                "invalid_request",
                "Content-Type must be application/x-www-form-urlencoded",
            ),
            Some(grant),
        );
    }
    if get("client_id").trim_matches(|c| c == '{' || c == '}') != shared.config.client_id
        || get("client_secret") != shared.config.client_secret
    {
        return (
            oauth_error(400, "invalid_client", "Unknown client or wrong secret"),
            Some(grant),
        );
    }
    let Ok(mut st) = shared.state.lock() else {
        return (Reply::empty(500), Some(grant));
    };
    let now = st.now();
    let reply = match grant.as_str() {
        "authorization_code" => {
            let code = get("code").to_owned();
            match st.codes.get(&code).cloned() {
                None => oauth_error(400, "invalid_grant", "The authorization code is invalid."),
                Some(c) if c.used => oauth_error(
                    400,
                    "invalid_grant",
                    "The authorization code was already used.",
                ),
                Some(c) if c.expires_at <= now => {
                    oauth_error(400, "invalid_grant", "The authorization code has expired.")
                }
                Some(c)
                    if c.client_id
                        != get("client_id").trim_matches(|ch| ch == '{' || ch == '}') =>
                {
                    oauth_error(
                        400,
                        "invalid_grant",
                        "The authorization code was issued to another client.",
                    )
                }
                Some(c) if c.redirect_uri != get("redirect_uri") => {
                    oauth_error(400, "invalid_grant", "The redirect_uri does not match.")
                }
                Some(c) => {
                    if let Some(g) = st.codes.get_mut(&code) {
                        g.used = true;
                    }
                    issue(shared, &mut st, &c.user_id)
                }
            }
        }
        "refresh_token" => {
            let token = get("refresh_token").to_owned();
            match st.refresh.get(&token).cloned() {
                None => oauth_error(400, "invalid_grant", "The refresh token is invalid."),
                Some(g) if g.used => {
                    oauth_error(401, "unauthorized_client", "Old refresh token used.")
                }
                Some(g)
                    if st
                        .revoked
                        .contains(&(g.user_id.clone(), g.client_id.clone())) =>
                {
                    oauth_error(
                        400,
                        "invalid_grant",
                        "The user revoked the consent for this application.",
                    )
                }
                Some(g) if g.expires_at <= now => oauth_error(
                    400,
                    "invalid_request",
                    &format!(
                        "The refresh token expired at {} and it is now {}.",
                        g.expires_at.format("%m/%d/%Y %-I:%M:%S %p"),
                        now.format("%m/%d/%Y %-I:%M:%S %p")
                    ),
                ),
                Some(g) if now < g.access_expires_at - Duration::seconds(REFRESH_WINDOW) => {
                    oauth_error(
                        400,
                        "access_denied",
                        "Rate limit exceeded: access_token not expired",
                    )
                    .with_header(
                        "Reason",
                        "TooEarlyToRefreshTokens: Rate limit exceeded: access_token not expired",
                    )
                }
                Some(g) => {
                    if let Some(old) = st.refresh.get_mut(&token) {
                        old.used = true;
                    }
                    issue(shared, &mut st, &g.user_id)
                }
            }
        }
        _ => oauth_error(
            400,
            "unsupported_grant_type",
            "grant_type must be authorization_code or refresh_token",
        ),
    };
    (reply, Some(grant))
}
