//! Signing a user in on the sandbox's login page the way a browser would
//! (the form post with username, password and consent), for tests, the
//! demo set-up and benchmarks: one implementation for all of them.

use boekhouding_core::exact::oauth::ExactApp;
use boekhouding_core::exact::query::{decode, encode};
use boekhouding_core::ports::{HttpMethod, HttpRequest, HttpTransport};
use futures::executor::block_on;

/// Why a sign-in did not produce an authorization code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoginError {
    #[error("the login request failed: {0}")]
    Transport(String),
    #[error("the login answered {status} instead of redirecting: {body}")]
    NoRedirect { status: u16, body: String },
    #[error("the redirect went to {0}, not the app's redirect URI")]
    WrongRedirect(String),
    #[error("the redirect carried another state than the one sent")]
    StateMismatch,
    #[error("the redirect carried no code")]
    NoCode,
}

/// Posts the login form of an Exact-compatible server with a login page
/// like the sandbox's and returns the authorization code from the
/// redirect, after checking it goes to the app's redirect URI with `state`.
pub fn sign_in(
    http: &impl HttpTransport,
    app: &ExactApp,
    username: &str,
    password: &str,
    state: &str,
) -> Result<String, LoginError> {
    let form = format!(
        "client_id={}&redirect_uri={}&state={}&response_type=code&username={}&password={}&consent=allow",
        encode(&app.client_id),
        encode(&app.redirect_uri),
        encode(state),
        encode(username),
        encode(password)
    );
    let r = block_on(http.send(HttpRequest {
        method: HttpMethod::Post,
        url: format!("{}/api/oauth2/auth", app.base_url.trim_end_matches('/')),
        headers: vec![(
            "Content-Type".into(),
            "application/x-www-form-urlencoded".into(),
        )],
        body: Some(form),
    }))
    .map_err(|e| LoginError::Transport(e.to_string()))?;
    let location = r
        .header("location")
        .filter(|_| r.status == 302)
        .ok_or_else(|| LoginError::NoRedirect {
            status: r.status,
            body: r.body.chars().take(200).collect(),
        })?;
    if !location.starts_with(&app.redirect_uri) {
        return Err(LoginError::WrongRedirect(location.to_owned()));
    }
    let query = location.split_once('?').map_or("", |(_, q)| q);
    let param = |name: &str| {
        query
            .split('&')
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| decode(v))
    };
    if param("state").as_deref() != Some(state) {
        return Err(LoginError::StateMismatch);
    }
    param("code")
        .filter(|c| !c.is_empty())
        .ok_or(LoginError::NoCode)
}
