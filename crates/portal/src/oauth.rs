//! The portal as the OAuth 2.1 authorization server of MCP clients: the
//! metadata, the authorization endpoint with its consent page, and the
//! token, registration and revocation endpoints. Every rule (which client,
//! which redirect, PKCE, codes, rotation) is `core::authorization`'s; this
//! module reads the request, asks core, and renders the page or the JSON.

use askama::Template;
use boekhouding_core::authorization::authorize::{self, AuthorizationRequest, AuthorizeParams};
use boekhouding_core::authorization::clients::{self, DocumentPolicy};
use boekhouding_core::authorization::metadata::{self, Issuer, McpResource, paths};
use boekhouding_core::authorization::{OAuthError, tokens};
use boekhouding_core::ports::Clock;
use boekhouding_core::storage::administrations;
use serde_json::json;

use crate::account::{self, SignedIn};
use crate::i18n::{Lang, fill};
use crate::pages::Chrome;
use crate::web::{WebRequest, WebResponse};
use crate::{PortalConfig, PortalPlatform, trail};
use boekhouding_core::storage::audit_log::AuditAction;
use boekhouding_core::storage::security_events::SecurityEvent;

/// Where the consent page lives (signing in returns here).
pub const AUTHORIZE_PATH: &str = paths::AUTHORIZE;

/// The authorization server's identity and what it guards.
#[derive(Debug, Clone)]
pub struct OAuthSettings {
    /// The portal's public origin: the one issuer string, everywhere.
    pub issuer: Issuer,
    /// The MCP endpoint, the only resource tokens are issued for.
    pub resource: McpResource,
    /// Where client metadata documents may be fetched from.
    pub policy: DocumentPolicy,
}

/// Whether a request belongs to the authorization server (its answers are
/// JSON or the consent page, and its rate limit is its own).
pub fn is_registration(req: &WebRequest) -> bool {
    req.method == "POST" && req.path == paths::REGISTER
}

/// The routes of the authorization server; `None` when the path is not
/// one of them.
pub async fn route<P: PortalPlatform>(
    req: &WebRequest,
    cfg: &PortalConfig,
    p: &P,
) -> Option<WebResponse> {
    let method = req.method.as_str();
    let path = req.path.as_str();
    let known = matches!(
        path,
        "/.well-known/oauth-authorization-server" | "/.well-known/openid-configuration"
    ) || [
        paths::AUTHORIZE,
        paths::TOKEN,
        paths::REGISTER,
        paths::REVOKE,
    ]
    .contains(&path);
    if !known {
        return None;
    }
    let Some(o) = cfg.oauth.as_ref() else {
        return Some(WebResponse::json(
            503,
            &OAuthError::TemporarilyUnavailable("the authorization server is not configured")
                .to_json(),
        ));
    };
    // Browser-based clients ask first whether they may POST JSON or forms.
    if method == "OPTIONS" {
        return Some(preflight());
    }
    Some(match (method, path) {
        ("GET" | "HEAD", "/.well-known/oauth-authorization-server")
        | ("GET" | "HEAD", "/.well-known/openid-configuration") => {
            WebResponse::json(200, &metadata::authorization_server_metadata(&o.issuer))
        }
        ("GET", p_) if p_ == paths::AUTHORIZE => authorize_page(req, cfg, o, p).await,
        ("POST", p_) if p_ == paths::AUTHORIZE => decide(req, cfg, o, p).await,
        ("POST", p_) if p_ == paths::TOKEN => token(req, o, p).await,
        ("POST", p_) if p_ == paths::REGISTER => register(req, p).await,
        ("POST", p_) if p_ == paths::REVOKE => revoke(req, p).await,
        _ => WebResponse::json(
            405,
            &OAuthError::InvalidRequest("this method is not allowed here").to_json(),
        ),
    })
}

fn preflight() -> WebResponse {
    let mut r = WebResponse::json(204, &serde_json::Value::Null);
    r.body.clear();
    r.with_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
        .with_header(
            "Access-Control-Allow-Headers",
            "Content-Type, Authorization, MCP-Protocol-Version",
        )
        .with_header("Access-Control-Max-Age", "86400")
}

fn oauth_error(e: &OAuthError) -> WebResponse {
    WebResponse::json(e.http_status(), &e.to_json())
}

/// A form-encoded body is what the token and revocation endpoints take
/// (RFC 6749 §3.2); anything else is refused before it is parsed.
fn form_body(req: &WebRequest) -> Result<&str, OAuthError> {
    let form = req
        .header("content-type")
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    if form {
        Ok(req.body_str())
    } else {
        Err(OAuthError::InvalidRequest(
            "the body must be application/x-www-form-urlencoded",
        ))
    }
}

/// An authorization request that cannot go back to its client: a page.
fn error_page(lang: Lang, e: &OAuthError) -> WebResponse {
    let t = lang.texts();
    account::message(
        400,
        lang,
        t.oauth_error_title,
        &fill(t.oauth_error_text, &[e.description()]),
        crate::i18n::Page::Home.path(lang),
        t.back_home,
    )
}

/// The client and the checked request of an authorization query, or the
/// answer that refuses it (a page, or a redirect back to the client).
async fn checked_request<P: PortalPlatform>(
    req: &WebRequest,
    query: &str,
    o: &OAuthSettings,
    p: &P,
    lang: Lang,
) -> Result<AuthorizationRequest, WebResponse> {
    let params = AuthorizeParams::from_query(query);
    let client_id = params.client_id().map_err(|e| error_page(lang, &e))?;
    let now = p.clock().now();
    let client = clients::resolve(p.db(), p.http(), p.sleep(), client_id, o.policy, now)
        .await
        .map_err(|e| error_page(lang, &e.to_oauth()))?;
    let checked = authorize::validate(&params, &client, &o.resource);
    if let Err(authorize::AuthorizeError::Page(e)) = &checked
        && e.description() == authorize::UNREGISTERED_REDIRECT_URI
    {
        trail::security(p, req, SecurityEvent::OAuthRedirectMismatch, None).await;
    }
    checked.map_err(|e| match e.redirect_url(&o.issuer) {
        Some(url) => WebResponse::redirect(302, &url),
        None => match e {
            authorize::AuthorizeError::Page(err) => error_page(lang, &err),
            authorize::AuthorizeError::Redirect { error, .. } => error_page(lang, &error),
        },
    })
}

/// One administration on the consent page.
#[derive(Debug)]
pub struct ConsentChoice {
    pub id: String,
    pub name: String,
    pub code: i64,
    pub checked: bool,
}

#[derive(Template)]
#[template(path = "consent.html")]
struct Consent {
    c: Chrome,
    /// The intro around the client's name, which is shown in bold.
    intro_before: &'static str,
    client_name: String,
    intro_after: String,
    error: Option<&'static str>,
    read_only: &'static str,
    action: &'static str,
    csrf: String,
    request: String,
    administrations: Vec<ConsentChoice>,
    admins_label: &'static str,
    none_active: &'static str,
    allow: &'static str,
    deny: &'static str,
}

/// The administrations a grant may be given: the ones the plan lets the
/// user read now.
async fn grantable<P: PortalPlatform>(
    signed: &SignedIn,
    p: &P,
) -> Result<Vec<administrations::Administration>, WebResponse> {
    let active = administrations::active_for_user(p.db(), &signed.user.id)
        .await
        .map_err(|e| account::unavailable(signed.lang).because(&e))?;
    Ok(administrations::allowed(&active, signed.user.plan)
        .into_iter()
        .cloned()
        .collect())
}

/// The origin a redirect URI leads to, which the consent form's
/// `form-action` must allow (the browser holds a form's redirects to it).
fn redirect_origin(redirect_uri: &str) -> Option<String> {
    let url = url::Url::parse(redirect_uri).ok()?;
    match url.origin() {
        url::Origin::Tuple(..) => Some(url.origin().ascii_serialization()),
        // A private-use scheme (`cursor://…`): allow the scheme.
        url::Origin::Opaque(_) => Some(format!("{}:", url.scheme())),
    }
}

fn render_consent(
    signed: &SignedIn,
    cfg: &PortalConfig,
    request: &AuthorizationRequest,
    query: &str,
    choices: Vec<ConsentChoice>,
    error: Option<&'static str>,
) -> WebResponse {
    let lang = signed.lang;
    let t = lang.texts();
    let csrf = cfg
        .secret
        .as_ref()
        .map(|s| s.csrf_token(&signed.session.token_hash))
        .unwrap_or_default();
    let (intro_before, intro_after) = t
        .consent_intro
        .split_once("{0}")
        .unwrap_or(("", t.consent_intro));
    let page = Consent {
        c: Chrome::new(None, lang, t.consent_title.to_owned())
            .signed_in(true)
            .switch_link(None),
        intro_before,
        client_name: request.client_name.clone(),
        intro_after: fill(intro_after, &["", &request.redirect_host()]),
        error,
        read_only: t.consent_read_only,
        action: AUTHORIZE_PATH,
        csrf,
        request: query.to_owned(),
        administrations: choices,
        admins_label: t.consent_admins,
        none_active: t.consent_none_active,
        allow: t.consent_allow,
        deny: t.consent_deny,
    };
    let status = if error.is_some() { 400 } else { 200 };
    match page.render() {
        Ok(html) => {
            let targets: Vec<String> = redirect_origin(&request.redirect_uri).into_iter().collect();
            WebResponse::html(status, html).allow_form_targets(&targets)
        }
        Err(e) => account::unavailable(lang).because(&e),
    }
}

/// `GET /oauth/authorize`: check the request (before anything else, so a
/// bad client never sees a sign-in), make sure the user is signed in
/// (signing in returns here), then ask for consent.
async fn authorize_page<P: PortalPlatform>(
    req: &WebRequest,
    cfg: &PortalConfig,
    o: &OAuthSettings,
    p: &P,
) -> WebResponse {
    let lang = account::request_lang(req, p).await;
    let request = match checked_request(req, &req.query, o, p, lang).await {
        Ok(r) => r,
        Err(answer) => return answer,
    };
    let signed = match account::require_user(req, p).await {
        Ok(s) => s,
        Err(to_sign_in) => return to_sign_in,
    };
    let choices = match grantable(&signed, p).await {
        Ok(list) => list
            .into_iter()
            .map(|a| ConsentChoice {
                id: a.id,
                name: a.name,
                code: a.division_code,
                checked: true,
            })
            .collect(),
        Err(r) => return r,
    };
    render_consent(&signed, cfg, &request, &req.query, choices, None)
}

/// `POST /oauth/authorize`: the consent form. The request travels in the
/// form and is checked again (nothing from the form is trusted); the
/// administrations must be among those the user may read.
async fn decide<P: PortalPlatform>(
    req: &WebRequest,
    cfg: &PortalConfig,
    o: &OAuthSettings,
    p: &P,
) -> WebResponse {
    let signed = match account::genuine(req, cfg, p).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let query = req.form_field("request").unwrap_or_default();
    let request = match checked_request(req, &query, o, p, signed.lang).await {
        Ok(r) => r,
        Err(answer) => return answer,
    };
    if req.form_field("decision").as_deref() != Some("allow") {
        return WebResponse::redirect(303, &authorize::denied_redirect_url(&request, &o.issuer));
    }
    let grantable = match grantable(&signed, p).await {
        Ok(list) => list,
        Err(r) => return r,
    };
    let ticked = req.form_fields("administration");
    let active: Vec<String> = grantable.iter().map(|a| a.id.clone()).collect();
    let chosen = match tokens::choose_administrations(&ticked, &active) {
        Ok(c) => c,
        Err(_) => {
            let choices = grantable
                .into_iter()
                .map(|a| ConsentChoice {
                    checked: ticked.contains(&a.id),
                    id: a.id,
                    name: a.name,
                    code: a.division_code,
                })
                .collect();
            let t = signed.lang.texts();
            return render_consent(
                &signed,
                cfg,
                &request,
                &query,
                choices,
                Some(t.consent_choose_one),
            );
        }
    };
    let now = p.clock().now();
    match tokens::approve(
        p.db(),
        p.rng(),
        &request,
        &signed.user.id,
        &chosen,
        &o.issuer,
        now,
    )
    .await
    {
        Ok(url) => {
            trail::action(
                p,
                req,
                &signed.user.id,
                AuditAction::OAuthGrantApproved,
                ("oauth_client", Some(&request.client_id)),
                Some(json!({
                    "client_name": request.client_name,
                    "administrations": chosen.len(),
                })),
            )
            .await;
            WebResponse::redirect(303, &url)
        }
        Err(e) => account::unavailable(signed.lang).because(&e),
    }
}

/// `POST /oauth/token`.
async fn token<P: PortalPlatform>(req: &WebRequest, o: &OAuthSettings, p: &P) -> WebResponse {
    let body = match form_body(req) {
        Ok(b) => b,
        Err(e) => return oauth_error(&e),
    };
    let now = p.clock().now();
    match tokens::token_endpoint(p.db(), p.rng(), body, &o.resource, now).await {
        Ok(answer) => WebResponse::json(200, &answer.to_json()),
        Err(e) => {
            // A code or refresh token refused: replayed, expired, or
            // presented with the wrong verifier.
            if matches!(e, OAuthError::InvalidGrant(_)) {
                trail::security(p, req, SecurityEvent::OAuthInvalidGrant, None).await;
            }
            oauth_error(&e)
        }
    }
}

/// `POST /oauth/register` (RFC 7591). The per-address limit is the
/// Worker's, before this runs.
async fn register<P: PortalPlatform>(req: &WebRequest, p: &P) -> WebResponse {
    let now = p.clock().now();
    match clients::registration_endpoint(p.db(), p.rng(), req.body_str(), now).await {
        Ok(answer) => WebResponse::json(201, &answer),
        Err(e) => oauth_error(&e),
    }
}

/// `POST /oauth/revoke` (RFC 7009): 200 for any well-formed request.
async fn revoke<P: PortalPlatform>(req: &WebRequest, p: &P) -> WebResponse {
    let body = match form_body(req) {
        Ok(b) => b,
        Err(e) => return oauth_error(&e),
    };
    match tokens::revocation_endpoint(p.db(), body, p.clock().now()).await {
        Ok(()) => WebResponse::json(200, &json!({})),
        Err(e) => oauth_error(&e),
    }
}

/// The answer to a registration past the address's limit.
pub fn too_many_registrations() -> WebResponse {
    WebResponse::json(
        429,
        &OAuthError::TemporarilyUnavailable(
            "too many registrations from this address; try again later",
        )
        .to_json(),
    )
    .with_header("Retry-After", "60")
}

/// `POST /apps/revoke`: the dashboard's button that ends one connected
/// assistant's grant (only the user's own).
pub async fn revoke_app<P: PortalPlatform>(
    req: &WebRequest,
    cfg: &PortalConfig,
    p: &P,
) -> WebResponse {
    let signed = match account::genuine(req, cfg, p).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let grant = req.form_field("grant").unwrap_or_default();
    match boekhouding_core::storage::oauth_grants::revoke_for_owner(
        p.db(),
        &grant,
        &signed.user.id,
        p.clock().now(),
    )
    .await
    {
        Ok(revoked) => {
            if revoked {
                trail::action(
                    p,
                    req,
                    &signed.user.id,
                    AuditAction::OAuthGrantRevoked,
                    ("oauth_grant", Some(&grant)),
                    None,
                )
                .await;
            }
            WebResponse::redirect(303, "/dashboard?done=app_revoked")
        }
        Err(e) => account::unavailable(signed.lang).because(&e),
    }
}
