//! The authorization request (RFC 6749 §4.1.1 with OAuth 2.1's PKCE and
//! RFC 8707's `resource`) and the redirect URLs of its answers, each with
//! RFC 9207's `iss`.
//!
//! Errors come in two kinds, as RFC 6749 §4.1.2.1 demands: while the
//! client or its redirect URI is in doubt the user sees an error page and
//! nothing is redirected ([`AuthorizeError::Page`]); after that, errors go
//! back to the client's redirect URI ([`AuthorizeError::Redirect`]).

use std::collections::BTreeMap;

use super::clients::Client;
use super::metadata::{Issuer, McpResource};
use super::{OAuthError, grantable_scope, is_valid_code_challenge};

/// Longest `state` echoed back (it travels in a URL).
pub const MAX_STATE_LEN: usize = 1024;

/// The query parameters of an authorization request, as sent. A parameter
/// sent twice is remembered as such (RFC 6749 §3.1 forbids it), except
/// `resource`, which RFC 8707 allows more than once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthorizeParams {
    values: BTreeMap<String, String>,
    duplicated: Vec<String>,
    resources: Vec<String>,
}

impl AuthorizeParams {
    /// From a raw query string (`a=b&c=d`, percent-encoded).
    pub fn from_query(query: &str) -> Self {
        let mut params = AuthorizeParams::default();
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            if name == "resource" {
                params.resources.push(value.into_owned());
            } else if params.values.contains_key(name.as_ref()) {
                params.duplicated.push(name.into_owned());
            } else {
                params.values.insert(name.into_owned(), value.into_owned());
            }
        }
        params
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// The `client_id`, unless it is missing or sent twice (then only an
    /// error page is possible).
    pub fn client_id(&self) -> Result<&str, OAuthError> {
        if self.duplicated.iter().any(|d| d == "client_id") {
            return Err(OAuthError::InvalidRequest(
                "client_id was sent more than once",
            ));
        }
        self.get("client_id")
            .filter(|c| !c.is_empty())
            .ok_or(OAuthError::InvalidRequest("client_id is required"))
    }
}

/// The description of a redirect URI the client never registered: the
/// request a hostile page forges to send a code elsewhere (the portal
/// records it as a security event).
pub const UNREGISTERED_REDIRECT_URI: &str = "redirect_uri is not registered for this client";

/// A validated authorization request: what the consent page shows and
/// what a granted code is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationRequest {
    pub client_id: String,
    /// Untrusted; escape when shown.
    pub client_name: String,
    /// Where the answer goes: the redirect URI as the client sent it (a
    /// loopback URI keeps the port it asked for), or the single
    /// registered one when it sent none.
    pub redirect_uri: String,
    /// Whether the request carried `redirect_uri` (the token request must
    /// then repeat it exactly).
    pub redirect_uri_given: bool,
    pub code_challenge: String,
    pub state: Option<String>,
    /// The granted scope (unknown scopes dropped).
    pub scope: String,
    /// This server's canonical resource (the client may have sent it with
    /// a trailing slash).
    pub resource: String,
}

impl AuthorizationRequest {
    /// The host the consent page shows beside the client's name (for a
    /// private-use scheme, the scheme): the part the user can check.
    pub fn redirect_host(&self) -> String {
        url::Url::parse(&self.redirect_uri)
            .ok()
            .map(|u| match u.host_str() {
                Some(h) => h.to_owned(),
                None => format!("{}:", u.scheme()),
            })
            .unwrap_or_default()
    }
}

/// A refused authorization request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthorizeError {
    /// Show an error page; never redirect (unknown client, bad or missing
    /// redirect URI).
    #[error("{0}")]
    Page(OAuthError),
    /// Redirect back to the client with `error`, `state` and `iss`.
    #[error("{error}")]
    Redirect {
        redirect_uri: String,
        state: Option<String>,
        error: OAuthError,
    },
}

impl AuthorizeError {
    /// Where to send the browser: `Some(url)` for a redirect, `None` for
    /// an error page.
    pub fn redirect_url(&self, issuer: &Issuer) -> Option<String> {
        match self {
            AuthorizeError::Page(_) => None,
            AuthorizeError::Redirect {
                redirect_uri,
                state,
                error,
            } => Some(error_redirect_url(
                redirect_uri,
                *error,
                state.as_deref(),
                issuer,
            )),
        }
    }
}

/// Validates an authorization request for a resolved client.
pub fn validate(
    params: &AuthorizeParams,
    client: &Client,
    resource: &McpResource,
) -> Result<AuthorizationRequest, AuthorizeError> {
    if params.client_id().map_err(AuthorizeError::Page)? != client.client_id {
        return Err(AuthorizeError::Page(OAuthError::InvalidClient(
            "client_id does not match the client",
        )));
    }
    if params.duplicated.iter().any(|d| d == "redirect_uri") {
        return Err(AuthorizeError::Page(OAuthError::InvalidRequest(
            "redirect_uri was sent more than once",
        )));
    }
    let (redirect_uri, redirect_uri_given) = match params.get("redirect_uri") {
        Some(presented) => {
            if client.matching_redirect_uri(presented).is_none() {
                return Err(AuthorizeError::Page(OAuthError::InvalidRequest(
                    UNREGISTERED_REDIRECT_URI,
                )));
            }
            (presented.to_owned(), true)
        }
        None => match client.redirect_uris.as_slice() {
            [only] => (only.clone(), false),
            _ => {
                return Err(AuthorizeError::Page(OAuthError::InvalidRequest(
                    "redirect_uri is required when a client has several",
                )));
            }
        },
    };
    let state = params.get("state").map(str::to_owned);
    let refuse = |error: OAuthError| AuthorizeError::Redirect {
        redirect_uri: redirect_uri.clone(),
        state: state.clone().filter(|s| s.len() <= MAX_STATE_LEN),
        error,
    };
    if state.as_ref().is_some_and(|s| s.len() > MAX_STATE_LEN) {
        return Err(refuse(OAuthError::InvalidRequest("state is too long")));
    }
    if !params.duplicated.is_empty() {
        return Err(refuse(OAuthError::InvalidRequest(
            "a parameter was sent more than once",
        )));
    }
    match params.get("response_type") {
        Some("code") => {}
        None => {
            return Err(refuse(OAuthError::InvalidRequest(
                "response_type is required",
            )));
        }
        Some(_) => {
            return Err(refuse(OAuthError::UnsupportedResponseType(
                "only response_type=code is supported",
            )));
        }
    }
    let code_challenge = params.get("code_challenge").ok_or_else(|| {
        refuse(OAuthError::InvalidRequest(
            "code_challenge is required (PKCE S256)",
        ))
    })?;
    match params.get("code_challenge_method") {
        Some("S256") => {}
        // OAuth 2.1 reads a missing method as "plain", which is refused.
        _ => {
            return Err(refuse(OAuthError::InvalidRequest(
                "code_challenge_method must be S256",
            )));
        }
    }
    if !is_valid_code_challenge(code_challenge) {
        return Err(refuse(OAuthError::InvalidRequest(
            "code_challenge is not an S256 challenge",
        )));
    }
    match params.resources.as_slice() {
        [] => {
            return Err(refuse(OAuthError::InvalidTarget(
                "resource is required (RFC 8707)",
            )));
        }
        [one] if resource.matches(one) => {}
        _ => {
            return Err(refuse(OAuthError::InvalidTarget(
                "resource must be this server's MCP endpoint",
            )));
        }
    }
    Ok(AuthorizationRequest {
        client_id: client.client_id.clone(),
        client_name: client.client_name.clone(),
        redirect_uri,
        redirect_uri_given,
        code_challenge: code_challenge.to_owned(),
        state,
        scope: grantable_scope(params.get("scope")),
        resource: resource.as_str().to_owned(),
    })
}

/// Appends parameters to a redirect URI, keeping its own query.
fn with_params(redirect_uri: &str, params: &[(&str, &str)]) -> String {
    match url::Url::parse(redirect_uri) {
        Ok(mut url) => {
            {
                let mut pairs = url.query_pairs_mut();
                for (k, v) in params {
                    pairs.append_pair(k, v);
                }
            }
            url.into()
        }
        // Validated redirect URIs always parse; this keeps the function total.
        Err(_) => {
            let query: String = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(params)
                .finish();
            let sep = if redirect_uri.contains('?') { '&' } else { '?' };
            format!("{redirect_uri}{sep}{query}")
        }
    }
}

/// The success redirect: `code`, `state` (when sent) and `iss`.
pub fn success_redirect_url(request: &AuthorizationRequest, code: &str, issuer: &Issuer) -> String {
    let mut params = vec![("code", code)];
    if let Some(state) = &request.state {
        params.push(("state", state));
    }
    params.push(("iss", issuer.as_str()));
    with_params(&request.redirect_uri, &params)
}

/// An error redirect: `error`, `error_description`, `state` (when sent)
/// and `iss`.
pub fn error_redirect_url(
    redirect_uri: &str,
    error: OAuthError,
    state: Option<&str>,
    issuer: &Issuer,
) -> String {
    let mut params = vec![
        ("error", error.code()),
        ("error_description", error.description()),
    ];
    if let Some(state) = state {
        params.push(("state", state));
    }
    params.push(("iss", issuer.as_str()));
    with_params(redirect_uri, &params)
}

/// The user said no on the consent page: `access_denied` back to the
/// client.
pub fn denied_redirect_url(request: &AuthorizationRequest, issuer: &Issuer) -> String {
    error_redirect_url(
        &request.redirect_uri,
        OAuthError::AccessDenied("the user denied access"),
        request.state.as_deref(),
        issuer,
    )
}

#[cfg(test)]
mod tests {
    use super::super::clients::{ApplicationType, ClientKind};
    use super::*;

    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    fn client(uris: &[&str]) -> Client {
        Client {
            client_id: "pmjb_client_1".into(),
            client_name: "Claude".into(),
            redirect_uris: uris.iter().map(|s| s.to_string()).collect(),
            application_type: ApplicationType::Native,
            kind: ClientKind::Registered,
        }
    }

    fn resource() -> McpResource {
        McpResource::parse("https://mcp.example/mcp").unwrap()
    }

    fn issuer() -> Issuer {
        Issuer::parse("https://portal.example").unwrap()
    }

    fn query(extra: &[(&str, &str)], drop: &[&str]) -> AuthorizeParams {
        let mut pairs: Vec<(&str, &str)> = vec![
            ("response_type", "code"),
            ("client_id", "pmjb_client_1"),
            ("redirect_uri", "https://claude.ai/api/mcp/auth_callback"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
            ("state", "st&=1"),
            ("scope", "claudeai"),
            ("resource", "https://mcp.example/mcp/"),
        ];
        pairs.retain(|(k, _)| !drop.contains(k));
        pairs.extend_from_slice(extra);
        let q = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        AuthorizeParams::from_query(&q)
    }

    fn claude() -> Client {
        client(&[
            "https://claude.ai/api/mcp/auth_callback",
            "https://claude.com/api/mcp/auth_callback",
        ])
    }

    #[test]
    fn a_good_request_is_accepted_with_scope_and_resource_normalised() {
        let req = validate(&query(&[], &[]), &claude(), &resource()).unwrap();
        assert_eq!(req.scope, "books:read", "unknown scope dropped");
        assert_eq!(
            req.resource, "https://mcp.example/mcp",
            "trailing slash tolerated"
        );
        assert_eq!(req.state.as_deref(), Some("st&=1"));
        assert_eq!(req.redirect_host(), "claude.ai");
        let url = success_redirect_url(&req, "pmjb_c_abc", &issuer());
        assert_eq!(
            url,
            "https://claude.ai/api/mcp/auth_callback?code=pmjb_c_abc&state=st%26%3D1&iss=https%3A%2F%2Fportal.example"
        );
        let denied = denied_redirect_url(&req, &issuer());
        assert!(
            denied.contains("error=access_denied")
                && denied.contains("state=st%26%3D1")
                && denied.contains("iss="),
            "{denied}"
        );
    }

    #[test]
    fn client_and_redirect_problems_show_a_page_and_never_redirect() {
        for (params, c) in [
            (query(&[], &["client_id"]), claude()),
            (query(&[("client_id", "x")], &[]), claude()),
            (
                query(
                    &[("redirect_uri", "https://evil.example/cb")],
                    &["redirect_uri"],
                ),
                claude(),
            ),
            (query(&[], &["redirect_uri"]), claude()),
            (
                query(
                    &[("redirect_uri", "https://claude.ai/api/mcp/auth_callback")],
                    &[],
                ),
                claude(),
            ),
        ] {
            let err = validate(&params, &c, &resource()).unwrap_err();
            assert!(matches!(err, AuthorizeError::Page(_)), "{err:?}");
            assert_eq!(err.redirect_url(&issuer()), None);
        }
        // With exactly one registered URI, it may be left out.
        let one = client(&["https://claude.ai/api/mcp/auth_callback"]);
        let req = validate(&query(&[], &["redirect_uri"]), &one, &resource()).unwrap();
        assert!(!req.redirect_uri_given);
        // A loopback client keeps the port it asked for.
        let loopback = client(&["http://127.0.0.1/callback"]);
        let req = validate(
            &query(
                &[("redirect_uri", "http://127.0.0.1:49152/callback")],
                &["redirect_uri"],
            ),
            &loopback,
            &resource(),
        )
        .unwrap();
        assert_eq!(req.redirect_uri, "http://127.0.0.1:49152/callback");
    }

    #[test]
    fn other_problems_redirect_with_error_state_and_iss() {
        let cases: Vec<(AuthorizeParams, &str)> = vec![
            (query(&[], &["code_challenge"]), "invalid_request"),
            (
                query(
                    &[("code_challenge_method", "plain")],
                    &["code_challenge_method"],
                ),
                "invalid_request",
            ),
            (query(&[], &["code_challenge_method"]), "invalid_request"),
            (
                query(&[("code_challenge", "tooshort")], &["code_challenge"]),
                "invalid_request",
            ),
            (
                query(&[("response_type", "token")], &["response_type"]),
                "unsupported_response_type",
            ),
            (query(&[], &["resource"]), "invalid_target"),
            (
                query(&[("resource", "https://other.example/mcp")], &["resource"]),
                "invalid_target",
            ),
            (
                query(&[("resource", "https://other.example/mcp")], &[]),
                "invalid_target",
            ),
            (query(&[("state", "again")], &[]), "invalid_request"),
        ];
        for (params, code) in cases {
            let err = validate(&params, &claude(), &resource()).unwrap_err();
            let AuthorizeError::Redirect { error, .. } = &err else {
                panic!("{err:?} should redirect");
            };
            assert_eq!(error.code(), code, "{err:?}");
            let url = err.redirect_url(&issuer()).unwrap();
            assert!(
                url.starts_with("https://claude.ai/api/mcp/auth_callback?error="),
                "{url}"
            );
            assert!(url.contains("&iss=https%3A%2F%2Fportal.example"), "{url}");
        }
    }

    #[test]
    fn redirect_urls_keep_the_clients_own_query() {
        let url = error_redirect_url(
            "com.example.app:/cb?x=1",
            OAuthError::AccessDenied("no"),
            None,
            &issuer(),
        );
        assert_eq!(
            url,
            "com.example.app:/cb?x=1&error=access_denied&error_description=no&iss=https%3A%2F%2Fportal.example"
        );
    }
}
