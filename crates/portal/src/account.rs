//! Signing in with Exact Online and what a signed-in customer does: the
//! region choice and the start of Exact's authorization-code flow
//! (`/connect`), its end (`/callback`: a new session, the first-run page
//! with a key shown once), the dashboard, API keys and signing out.
//!
//! Every state-changing request is a POST from this origin (checked by
//! `Sec-Fetch-Site`/`Origin`) carrying the CSRF token bound to the
//! session. Cookies are `__Host-` prefixed: Secure, HttpOnly, Path=/,
//! SameSite=Lax, no Domain.

use askama::Template;
use boekhouding_core::lifecycle::ConnectionStatus;
use boekhouding_core::onboarding;
use boekhouding_core::plan::{Limit, Plan};
use boekhouding_core::ports::Clock;
use boekhouding_core::region::Region;
use boekhouding_core::storage::usage::{self, UsageMonth};
use boekhouding_core::storage::{
    SqlExecutor, administrations, api_keys, billing_accounts, connections, login_states,
    oauth_grants, sessions, users,
};

use crate::i18n::{Lang, Page, fill};
use crate::pages::{Chrome, SnippetView, snippet_views, thousands};
use crate::web::{WebRequest, WebResponse};
use crate::{PortalConfig, PortalPlatform, trail};
use boekhouding_core::storage::audit_log::AuditAction;
use boekhouding_core::storage::security_events::SecurityEvent;
use serde_json::json;

/// The session cookie.
pub const SESSION_COOKIE: &str = "__Host-session";
/// The cookie binding a sign-in attempt to this browser.
pub const LOGIN_COOKIE: &str = "__Host-login";

fn cookie(name: &str, value: &str, max_age_s: i64) -> String {
    format!("{name}={value}; Path=/; HttpOnly; Secure; SameSite=Lax; Max-Age={max_age_s}")
}

/// A signed-in page (or one on the way to signing in) in `lang`, without
/// a language switch until the page adds the one it can offer.
fn chrome(lang: Lang, title: &str) -> Chrome {
    Chrome::new(None, lang, title.to_owned())
        .signed_in(true)
        .switch_link(None)
}

/// The language a user chose on the dashboard (Dutch when unknown).
pub async fn user_lang<P: PortalPlatform>(p: &P, user_id: &str) -> Lang {
    match users::preferences(p.db(), user_id).await {
        Ok(Some(prefs)) if prefs.english => Lang::En,
        _ => Lang::Nl,
    }
}

/// The language of a page before signing in: `?lang=en` from the English
/// pages, Dutch otherwise.
pub fn query_lang(req: &WebRequest) -> Lang {
    if req.query_param("lang").as_deref() == Some("en") {
        Lang::En
    } else {
        Lang::Nl
    }
}

/// The browser's own choice between the two languages (the first of
/// `nl`/`en` its `Accept-Language` lists), Dutch when it names neither:
/// for the one page that knows nothing else, a callback whose sign-in
/// attempt is gone.
pub fn browser_lang(req: &WebRequest) -> Lang {
    let header = req.header("accept-language").unwrap_or_default();
    header
        .split(',')
        .map(|tag| {
            tag.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
        .find_map(|tag| {
            if tag == "nl" || tag.starts_with("nl-") {
                Some(Lang::Nl)
            } else if tag == "en" || tag.starts_with("en-") {
                Some(Lang::En)
            } else {
                None
            }
        })
        .unwrap_or(Lang::Nl)
}

/// The language to answer a request in: the signed-in user's preference,
/// else the language the page came from.
pub async fn request_lang<P: PortalPlatform>(req: &WebRequest, p: &P) -> Lang {
    match current_session(req, p).await {
        Ok(Some(session)) => user_lang(p, &session.user_id).await,
        _ => query_lang(req),
    }
}

/// The mark a sign-in in English leaves on the login state's `return_to`
/// (the stored attempt has no column of its own for the language, and a
/// schema change for one flag is not worth it): the callback strips it
/// again before following `return_to`.
const ENGLISH_MARK: &str = "lang=en";

/// The `return_to` to store for an attempt in `lang`.
fn carry_lang(return_to: Option<String>, lang: Lang) -> Option<String> {
    if lang == Lang::Nl {
        return return_to;
    }
    let base = return_to.unwrap_or_else(|| "/dashboard".to_owned());
    let sep = if base.contains('?') { '&' } else { '?' };
    let marked = format!("{base}{sep}{ENGLISH_MARK}");
    // Too long to mark: the path matters more than the language.
    Some(if login_states::safe_return_to(&marked).is_some() {
        marked
    } else {
        base
    })
}

/// A stored `return_to` split into the path to follow and the language.
fn split_lang(stored: Option<String>) -> (Option<String>, Lang) {
    let Some(stored) = stored else {
        return (None, Lang::Nl);
    };
    for sep in ['?', '&'] {
        if let Some(path) = stored.strip_suffix(&format!("{sep}{ENGLISH_MARK}")) {
            return (Some(path.to_owned()), Lang::En);
        }
    }
    (Some(stored), Lang::Nl)
}

#[derive(Template)]
#[template(path = "message.html")]
struct Message {
    c: Chrome,
    message: String,
    action_href: String,
    action_label: &'static str,
}

/// A clear page for anything that went wrong on the way (never a cause).
pub fn message(
    status: u16,
    lang: Lang,
    title: &str,
    text: &str,
    href: &str,
    label: &'static str,
) -> WebResponse {
    let page = Message {
        c: chrome(lang, title),
        message: text.to_owned(),
        action_href: href.to_owned(),
        action_label: label,
    };
    match page.render() {
        Ok(html) => WebResponse::html(status, html),
        Err(_) => WebResponse::html(500, String::new()),
    }
}

pub fn unavailable(lang: Lang) -> WebResponse {
    let t = lang.texts();
    message(
        503,
        lang,
        t.unavailable_title,
        t.unavailable_text,
        Page::Home.path(lang),
        t.back_home,
    )
}

/// The page for a client that asked too often (the Worker's rate limit).
pub async fn too_many_requests<P: PortalPlatform>(req: &WebRequest, p: &P) -> WebResponse {
    let lang = request_lang(req, p).await;
    let t = lang.texts();
    message(
        429,
        lang,
        t.too_many_title,
        t.too_many_text,
        Page::Home.path(lang),
        t.back_home,
    )
    .with_header("Retry-After", "60")
}

#[derive(Template)]
#[template(path = "connect.html")]
struct Connect {
    c: Chrome,
    intro: &'static str,
    region_label: &'static str,
    no_password: &'static str,
    regions: Vec<(&'static str, &'static str)>,
    return_to: Option<String>,
    english: bool,
}

/// The Exact sites a customer can sign in at.
fn region_choices() -> Vec<(&'static str, &'static str)> {
    Region::ALL
        .into_iter()
        .map(|r| (r.code(), r.site_name()))
        .collect()
}

/// `GET /connect`: the region choice, or with `region` the start of
/// Exact's flow (one click from the reconnect mail).
pub async fn connect<P: PortalPlatform>(
    req: &WebRequest,
    cfg: &PortalConfig,
    p: &P,
) -> WebResponse {
    let return_to = req
        .query_param("return_to")
        .filter(|r| login_states::safe_return_to(r).is_some());
    let signed_in = current_session(req, p).await.ok().flatten();
    // Signed in (adding or renewing a connection): the user's preference;
    // otherwise the language of the page the visitor came from.
    let lang = match &signed_in {
        Some(s) => user_lang(p, &s.user_id).await,
        None => query_lang(req),
    };
    let t = lang.texts();
    let Some(region) = req.query_param("region") else {
        let c = chrome(lang, t.sign_in).signed_in(signed_in.is_some());
        let c = match (&signed_in, cfg.secret.as_ref()) {
            (Some(s), Some(secret)) => c.switch_form(secret.csrf_token(&s.token_hash), "/connect"),
            _ => {
                let mut q = form_urlencoded::Serializer::new(String::new());
                if lang.other() == Lang::En {
                    q.append_pair("lang", "en");
                }
                if let Some(to) = &return_to {
                    q.append_pair("return_to", to);
                }
                let q = q.finish();
                let href = if q.is_empty() {
                    "/connect".to_owned()
                } else {
                    format!("/connect?{q}")
                };
                c.switch_link(Some(href))
            }
        };
        let page = Connect {
            c,
            intro: t.connect_intro,
            region_label: t.region_label,
            no_password: t.connect_after,
            regions: region_choices(),
            return_to,
            english: lang == Lang::En,
        };
        return match page.render() {
            Ok(html) => WebResponse::html(200, html).allow_form_targets(&exact_origins(cfg)),
            Err(e) => unavailable(lang).because(&e),
        };
    };
    let Ok(region) = region.parse::<Region>() else {
        return message(
            400,
            lang,
            t.unknown_region_title,
            t.unknown_region_text,
            crate::pages::connect_path(lang),
            t.choose_again,
        );
    };
    let Some(exact) = cfg.exact.as_ref() else {
        return unavailable(lang).because(&"Exact is not configured");
    };
    let now = p.clock().now();
    let started = match login_states::begin(
        p.db(),
        p.rng(),
        region,
        carry_lang(return_to, lang).as_deref(),
        signed_in.as_ref().map(|s| s.user_id.as_str()),
        now,
    )
    .await
    {
        Ok(s) => s,
        Err(e) => return unavailable(lang).because(&e),
    };
    let app = exact.app_for(region);
    let url = boekhouding_core::exact::oauth::authorize_url(&app, started.state.expose());
    WebResponse::redirect(302, &url).with_header(
        "Set-Cookie",
        &cookie(
            LOGIN_COOKIE,
            started.browser.expose(),
            login_states::LIFETIME.num_seconds(),
        ),
    )
}

/// The Exact sites the region choice may send the browser to.
fn exact_origins(cfg: &PortalConfig) -> Vec<String> {
    let origin = |url: &str| url.split('/').take(3).collect::<Vec<_>>().join("/");
    match cfg
        .exact
        .as_ref()
        .and_then(|e| e.base_url_override.as_deref())
    {
        Some(one) => vec![origin(one)],
        None => Region::ALL
            .into_iter()
            .map(|r| origin(r.default_base_url()))
            .collect(),
    }
}

/// The signed-in session of a request, if any.
pub async fn current_session<P: PortalPlatform>(
    req: &WebRequest,
    p: &P,
) -> Result<Option<sessions::Session>, boekhouding_core::storage::StorageError> {
    match req.cookie(SESSION_COOKIE) {
        Some(token) => sessions::find_live(p.db(), token, p.clock().now()).await,
        None => Ok(None),
    }
}

#[derive(Debug)]
pub struct AdminView {
    pub name: String,
    pub code: i64,
    pub active: bool,
    pub default: bool,
}

#[derive(Template)]
#[template(path = "welcome.html")]
struct Welcome {
    c: Chrome,
    found_title: &'static str,
    administrations: Vec<AdminView>,
    active_label: &'static str,
    plan_note: String,
    key_title: &'static str,
    key_once: &'static str,
    key: String,
    copy_label: &'static str,
    setup_title: &'static str,
    snippets: Vec<SnippetView>,
    ask_title: &'static str,
    first_question: &'static str,
    to_dashboard: &'static str,
}

fn limit_text(l: Limit, lang: Lang) -> String {
    match l {
        Limit::Capped(n) => thousands(u64::from(n), lang),
        Limit::Unlimited => lang.texts().unlimited.into(),
    }
}

/// `GET /callback`: the end of Exact's flow. Its pages speak the language
/// the sign-in started in (carried in the login state); a new user's
/// preference starts there too.
pub async fn callback<P: PortalPlatform>(
    req: &WebRequest,
    cfg: &PortalConfig,
    p: &P,
) -> WebResponse {
    let retry = |lang: Lang, title: &str, text: &str, status: u16| {
        let t = lang.texts();
        message(
            status,
            lang,
            title,
            text,
            crate::pages::connect_path(lang),
            t.sign_in_again,
        )
    };
    let browser = req.cookie(LOGIN_COOKIE).unwrap_or_default();
    let now = p.clock().now();
    if let Some(error) = req.query_param("error") {
        // Exact sends the state back with a refusal too: the attempt is
        // used up, and its language is the page's.
        let lang = match req.query_param("state") {
            Some(state) => match login_states::take(p.db(), &state, browser, now).await {
                Ok(Some(a)) => split_lang(a.return_to).1,
                _ => browser_lang(req),
            },
            None => browser_lang(req),
        };
        let t = lang.texts();
        let text = if error == "access_denied" {
            t.consent_denied
        } else {
            t.exact_aborted
        };
        return retry(lang, t.login_failed_title, text, 400);
    }
    let (Some(code), Some(state)) = (req.query_param("code"), req.query_param("state")) else {
        let lang = browser_lang(req);
        let t = lang.texts();
        return retry(lang, t.login_failed_title, t.callback_incomplete, 400);
    };
    let attempt = match login_states::take(p.db(), &state, browser, now).await {
        Ok(Some(a)) => a,
        Ok(None) => {
            // The attempt and its language are gone (expired, used, or
            // another browser's): the browser's own choice decides.
            let lang = browser_lang(req);
            let t = lang.texts();
            return retry(lang, t.expired_title, t.expired_text, 400);
        }
        Err(e) => return unavailable(browser_lang(req)).because(&e),
    };
    let (return_to, lang) = split_lang(attempt.return_to.clone());
    let t = lang.texts();
    let Some(exact) = cfg.exact.as_ref() else {
        return unavailable(lang).because(&"Exact is not configured");
    };
    let app = exact.app_for(attempt.region);
    let connected = match onboarding::complete_for(
        p.db(),
        p.http(),
        p.rng(),
        p.clock(),
        &exact.keyring,
        &app,
        attempt.region,
        &code,
        attempt.user_id.as_deref(),
    )
    .await
    {
        Ok(c) => c,
        Err(onboarding::ConnectError::Exact(_)) => {
            return retry(lang, t.code_refused_title, t.code_refused_text, 400);
        }
        Err(onboarding::ConnectError::LoginHeldElsewhere) => {
            return message(
                409,
                lang,
                t.login_held_title,
                t.login_held_text,
                "/dashboard",
                t.back_to_dashboard,
            );
        }
        Err(onboarding::ConnectError::NoEmail) => {
            return retry(lang, t.no_email_title, t.no_email_text, 400);
        }
        Err(e) => return unavailable(lang).because(&e),
    };
    let user_id = connected.user.id.clone();
    let keys = match api_keys::list_for_user(p.db(), &user_id).await {
        Ok(k) => k,
        Err(e) => return unavailable(lang).because(&e),
    };
    let first_sign_in = keys.is_empty();
    // The first sign-in (no key ever) starts the user in the language
    // they signed up in; a returning user keeps the preference they chose.
    if first_sign_in && lang == Lang::En {
        let prefs = users::preferences(p.db(), &user_id).await.ok().flatten();
        let prefs = users::Preferences {
            english: true,
            ..prefs.unwrap_or(users::Preferences {
                english: true,
                usage_warnings: true,
                product_updates: true,
            })
        };
        if users::set_preferences(p.db(), &user_id, prefs, now)
            .await
            .is_err()
        {
            return unavailable(lang);
        }
    }
    let lang = user_lang(p, &user_id).await;
    let t = lang.texts();
    let (token, _) =
        match sessions::create(p.db(), p.rng(), &user_id, req.header("user-agent"), now).await {
            Ok(s) => s,
            Err(e) => return unavailable(lang).because(&e),
        };
    if attempt.user_id.is_some() {
        trail::action(
            p,
            req,
            &user_id,
            AuditAction::ConnectionAdded,
            ("connection", Some(&connected.connection.id)),
            Some(json!({ "region": attempt.region.code() })),
        )
        .await;
    }
    trail::action(
        p,
        req,
        &user_id,
        AuditAction::SignedIn,
        ("session", None),
        Some(json!({ "connection": connected.connection.id, "first": first_sign_in })),
    )
    .await;
    let session_cookie = cookie(
        SESSION_COOKIE,
        token.expose(),
        sessions::LIFETIME.num_seconds(),
    );
    let clear_login = cookie(LOGIN_COOKIE, "", 0);
    // The first sign-in (no key yet): the first-run page with a key,
    // unless an assistant is connecting through OAuth: then the consent
    // page it came from is the first run, and no key is needed.
    let to_consent = return_to
        .as_deref()
        .is_some_and(|r| r.starts_with(crate::oauth::AUTHORIZE_PATH));
    if first_sign_in && !to_consent {
        let created = match api_keys::create(
            p.db(),
            p.rng(),
            &user_id,
            connected.user.plan,
            t.first_key_name,
            now,
        )
        .await
        {
            Ok(k) => k,
            Err(e) => return unavailable(lang).because(&e),
        };
        trail::action(
            p,
            req,
            &user_id,
            AuditAction::KeyCreated,
            ("api_key", Some(&created.record.id)),
            Some(json!({ "name": t.first_key_name })),
        )
        .await;
        let key = created.issued.secret.expose().to_owned();
        let limits = connected.user.plan.limits();
        let page = Welcome {
            c: chrome(lang, t.welcome_title),
            found_title: t.found_title,
            administrations: connected
                .administrations
                .iter()
                .map(|a| AdminView {
                    name: a.name.clone(),
                    code: a.division_code,
                    active: a.is_active,
                    default: a.is_default,
                })
                .collect(),
            active_label: t.active,
            plan_note: fill(
                t.plan_note,
                &[
                    plan_label(connected.user.plan),
                    &limit_text(limits.administrations, lang),
                    &limit_text(limits.monthly_tool_calls, lang),
                ],
            ),
            key_title: t.key_title,
            key_once: t.key_once,
            key: key.clone(),
            copy_label: t.copy,
            setup_title: t.setup_title,
            snippets: snippet_views(&cfg.mcp_url(), &key, lang),
            ask_title: t.ask_title,
            first_question: boekhouding_core::setup::first_question(lang == Lang::Nl),
            to_dashboard: t.to_dashboard,
        };
        return match page.render() {
            Ok(html) => WebResponse::html(200, html)
                .with_header("Set-Cookie", &session_cookie)
                .with_header("Set-Cookie", &clear_login),
            Err(e) => unavailable(lang).because(&e),
        };
    }
    let to = return_to
        .filter(|r| login_states::safe_return_to(r).is_some())
        .unwrap_or_else(|| "/dashboard".into());
    WebResponse::redirect(303, &to)
        .with_header("Set-Cookie", &session_cookie)
        .with_header("Set-Cookie", &clear_login)
}

pub fn plan_label(plan: Plan) -> &'static str {
    match plan {
        Plan::Free => "Free",
        Plan::Starter => "Starter",
        Plan::Pro => "Pro",
        Plan::Enterprise => "Enterprise",
    }
}

/// A signed-in request: its session and user.
#[derive(Debug)]
pub struct SignedIn {
    pub session: sessions::Session,
    pub user: users::User,
    /// The user's chosen language: every page they see speaks it.
    pub lang: Lang,
}

/// The signed-in user, or the response that sends the browser to sign in.
pub async fn require_user<P: PortalPlatform>(
    req: &WebRequest,
    p: &P,
) -> Result<SignedIn, WebResponse> {
    let session = match current_session(req, p).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            // A cookie that names no live session: forged, or expired.
            if req.cookie(SESSION_COOKIE).is_some() {
                trail::security(p, req, SecurityEvent::InvalidSession, None).await;
            }
            // After signing in the browser GETs this; a form's target is no
            // page, so a POST returns to the dashboard.
            let back = if req.method != "GET" {
                "/dashboard".to_owned()
            } else if req.query.is_empty() {
                req.path.clone()
            } else {
                format!("{}?{}", req.path, req.query)
            };
            let to: String = form_urlencoded::Serializer::new(String::new())
                .append_pair("return_to", &back)
                .finish();
            return Err(WebResponse::redirect(303, &format!("/connect?{to}")));
        }
        Err(e) => return Err(unavailable(Lang::Nl).because(&e)),
    };
    match users::find_by_id(p.db(), &session.user_id).await {
        Ok(Some(user)) => {
            let lang = user_lang(p, &user.id).await;
            Ok(SignedIn {
                session,
                user,
                lang,
            })
        }
        Ok(None) => Err(WebResponse::redirect(303, "/connect")),
        Err(e) => Err(unavailable(Lang::Nl).because(&e)),
    }
}

/// Whether a state-changing request comes from this origin with the
/// session's CSRF token.
pub fn genuine_post(req: &WebRequest, cfg: &PortalConfig, session_hash: &str) -> bool {
    let same_origin = match req.header("sec-fetch-site") {
        Some(site) => site == "same-origin",
        None => req.header("origin") == Some(req.origin.as_str()),
    };
    let token = req.form_field("csrf").unwrap_or_default();
    same_origin
        && cfg
            .secret
            .as_ref()
            .is_some_and(|s| s.verify_csrf(session_hash, &token))
}

/// A state-changing request without this origin or the session's CSRF
/// token: recorded as a security event, then refused.
pub async fn refused_forged<P: PortalPlatform>(
    req: &WebRequest,
    p: &P,
    user_id: &str,
    lang: Lang,
) -> WebResponse {
    trail::security(p, req, SecurityEvent::CsrfFailure, Some(user_id)).await;
    refused(lang)
}

pub fn refused(lang: Lang) -> WebResponse {
    let t = lang.texts();
    message(
        403,
        lang,
        t.refused_title,
        t.refused_text,
        "/dashboard",
        t.to_dashboard,
    )
}

/// One key in the dashboard's list.
#[derive(Debug)]
pub struct KeyView {
    pub id: String,
    pub name: String,
    pub prefix: String,
    pub last_used: String,
}

/// One connection's health in words.
#[derive(Debug)]
pub struct ConnectionView {
    pub label: String,
    pub ok: bool,
    pub state: String,
    pub detail: Option<String>,
    pub reconnect: String,
}

/// One row of the administrations table.
#[derive(Debug)]
pub struct AdminRow {
    pub id: String,
    pub name: String,
    pub code: i64,
    pub active: bool,
    /// Switched on but beyond what the plan serves now (after a
    /// downgrade): tools do not read it until one is switched off or the
    /// plan grows.
    pub unserved: bool,
    pub default: bool,
    /// The Exact login it is read through, when the account holds more
    /// than one (the same company may then be listed once per login).
    pub via: Option<String>,
}

/// One recent call.
#[derive(Debug)]
pub struct CallView {
    pub at: String,
    pub tool: String,
    pub division: String,
    pub outcome: &'static str,
    pub latency: i64,
    pub client: String,
}

/// One assistant connected through OAuth.
#[derive(Debug)]
pub struct AppView {
    pub grant_id: String,
    /// Untrusted (the client chose it): escaped by the template.
    pub name: String,
    /// "last used …, reads A, B".
    pub detail: String,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct Dashboard {
    c: Chrome,
    signed_in_as: String,
    notice: Option<String>,
    error: Option<String>,
    plan_title: &'static str,
    plan_name: &'static str,
    usage_line: String,
    pricing_href: &'static str,
    upgrade_label: &'static str,
    /// `(plan, label)` of each plan that can be bought from here.
    upgrades: Vec<(&'static str, String)>,
    manage_subscription: Option<&'static str>,
    plan_change: Option<String>,
    /// What each smaller plan would pause and stop (before a downgrade).
    downgrade_notes: Vec<String>,
    per_day_title: &'static str,
    per_tool_title: &'static str,
    chart_days: String,
    chart_tools: String,
    has_usage: bool,
    no_usage: &'static str,
    connections_title: &'static str,
    connections: Vec<ConnectionView>,
    reconnect_label: &'static str,
    add_connection: &'static str,
    admins_title: &'static str,
    admins_limit: String,
    administrations: Vec<AdminRow>,
    admin_label: &'static str,
    via_label: &'static str,
    state_label: &'static str,
    actions_label: &'static str,
    active_label: &'static str,
    inactive_label: &'static str,
    unserved_label: &'static str,
    default_label: &'static str,
    switch_on: &'static str,
    switch_off: &'static str,
    make_default: &'static str,
    keys_title: &'static str,
    keys: Vec<KeyView>,
    apps_title: &'static str,
    apps: Vec<AppView>,
    apps_none: &'static str,
    app_revoke: &'static str,
    key_name_label: &'static str,
    key_start_label: &'static str,
    key_used_label: &'static str,
    rename_label: &'static str,
    revoke_label: &'static str,
    new_key_label: &'static str,
    create_label: &'static str,
    activity_title: &'static str,
    calls: Vec<CallView>,
    time_label: &'static str,
    outcome_label: &'static str,
    client_label: &'static str,
    prefs_title: &'static str,
    language_label: &'static str,
    english: bool,
    usage_warnings: bool,
    product_updates: bool,
    usage_mails_label: &'static str,
    product_mails_label: &'static str,
    save_label: &'static str,
    account_title: &'static str,
    signout_label: &'static str,
    delete_label: String,
    delete_button: &'static str,
    csrf: String,
}

/// `GET /dashboard`.
pub async fn dashboard<P: PortalPlatform>(
    req: &WebRequest,
    cfg: &PortalConfig,
    p: &P,
) -> WebResponse {
    let signed = match require_user(req, p).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let notice = req
        .query_param("done")
        .and_then(|d| notice_text(&d, signed.lang));
    render_dashboard(&signed, cfg, p, notice, None, 200).await
}

/// What a finished action tells the user on the dashboard it returns to.
fn notice_text(done: &str, lang: Lang) -> Option<String> {
    let t = lang.texts();
    Some(
        match done {
            "revoked" => t.notice_revoked,
            "renamed" => t.notice_renamed,
            "toggled" => t.notice_toggled,
            "default" => t.notice_default,
            "saved" => t.notice_saved,
            "app_revoked" => t.notice_app_revoked,
            "checkout_cancelled" => t.notice_checkout_cancelled,
            _ => return None,
        }
        .to_owned(),
    )
}

fn outcome_words(outcome: &str, lang: Lang) -> &'static str {
    let t = lang.texts();
    match outcome {
        "ok" => t.outcome_ok,
        "tool_error" => t.outcome_tool_error,
        "invalid_arguments" => t.outcome_invalid,
        "limit_exceeded" => t.outcome_limit,
        "forbidden" => t.outcome_forbidden,
        "upstream_error" => t.outcome_upstream,
        _ => t.outcome_other,
    }
}

async fn render_dashboard<P: PortalPlatform>(
    signed: &SignedIn,
    cfg: &PortalConfig,
    p: &P,
    notice: Option<String>,
    error: Option<String>,
    status: u16,
) -> WebResponse {
    use chrono::Datelike;
    let user = &signed.user;
    let lang = signed.lang;
    let t = lang.texts();
    let now = p.clock().now();
    let month = UsageMonth::of(now);
    let db = p.db();
    let (used, conns, admins, keys, usage_month, recent, prefs, apps) = match (
        usage::monthly_calls(db, &user.id, month).await,
        connections::list_for_user(db, &user.id).await,
        administrations::all_for_user(db, &user.id).await,
        api_keys::list_for_user(db, &user.id).await,
        usage::month_usage(db, &user.id, month).await,
        usage::recent_calls(db, &user.id, 20).await,
        users::preferences(db, &user.id).await,
        oauth_grants::list_for_user(db, &user.id).await,
    ) {
        (Ok(u), Ok(c), Ok(a), Ok(k), Ok(m), Ok(r), Ok(pr), Ok(ap)) => (u, c, a, k, m, r, pr, ap),
        _ => return unavailable(lang),
    };
    let prefs = prefs.unwrap_or(users::Preferences {
        english: false,
        usage_warnings: true,
        product_updates: true,
    });
    let limits = user.plan.limits();
    let used_text = thousands(used, lang);
    let usage_line = match limits.monthly_tool_calls {
        Limit::Capped(n) => fill(
            t.usage_capped,
            &[
                &used_text,
                &thousands(u64::from(n), lang),
                &month.resets_at().format(t.date_format).to_string(),
            ],
        ),
        Limit::Unlimited => fill(t.usage_unlimited, &[&used_text]),
    };
    let days_in_month = (month.resets_at() - month.starts_at()).num_days();
    let per_day: Vec<(u32, u32)> = usage_month
        .per_day
        .iter()
        .filter_map(|(day, n)| {
            chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d")
                .ok()
                .map(|d| (d.day(), *n))
        })
        .collect();
    let csrf = cfg
        .secret
        .as_ref()
        .map(|s| s.csrf_token(&signed.session.token_hash))
        .unwrap_or_default();
    let billing = billing_accounts::find_for_user(db, &user.id)
        .await
        .ok()
        .flatten();
    let subscribed = billing
        .as_ref()
        .is_some_and(billing_accounts::BillingAccount::is_paying);
    let upgrades: Vec<(&'static str, String)> = match (&cfg.stripe, subscribed) {
        (Some(_), false) => [Plan::Starter, Plan::Pro]
            .into_iter()
            .filter(|p| *p > user.plan)
            .map(|p| (p.as_str(), fill(t.upgrade_to, &[plan_label(p)])))
            .collect(),
        _ => Vec::new(),
    };
    // What the plan serves now: the same rule the tools apply.
    let served: Vec<&str> = administrations::allowed(&admins, user.plan)
        .into_iter()
        .map(|a| a.id.as_str())
        .collect();
    let downgrade_notes: Vec<String> = if subscribed {
        let active: Vec<_> = admins.iter().filter(|a| a.is_active).cloned().collect();
        [Plan::Free, Plan::Starter]
            .into_iter()
            .filter(|lower| *lower < user.plan)
            .map(|lower| {
                let e = boekhouding_core::billing::limits::effects_of(lower, &active, &keys);
                let mut parts = Vec::new();
                if !e.paused_administrations.is_empty() {
                    parts.push(fill(t.would_pause, &[&e.paused_administrations.join(", ")]));
                }
                if !e.stopped_keys.is_empty() {
                    parts.push(fill(t.would_stop, &[&e.stopped_keys.join(", ")]));
                }
                if parts.is_empty() {
                    parts.push(t.nothing_changes.to_owned());
                }
                fill(t.downgrade_note, &[plan_label(lower), &parts.join("; ")])
            })
            .collect()
    } else {
        Vec::new()
    };
    let page = Dashboard {
        c: chrome(lang, t.dashboard).switch_form(csrf.clone(), "/dashboard"),
        signed_in_as: fill(t.signed_in_as, &[&user.email]),
        notice,
        error,
        plan_title: t.plan_title,
        plan_name: plan_label(user.plan),
        usage_line,
        pricing_href: Page::Pricing.path(lang),
        upgrade_label: t.upgrade_label,
        upgrades,
        manage_subscription: billing
            .as_ref()
            .and_then(|b| b.subscription_id.as_ref())
            .and(cfg.stripe.as_ref())
            .map(|_| t.manage_subscription),
        downgrade_notes,
        plan_change: billing.as_ref().and_then(|b| b.next).map(|(plan, at)| {
            fill(
                t.plan_changes,
                &[plan_label(plan), &at.format(t.date_format).to_string()],
            )
        }),
        per_day_title: t.per_day_title,
        per_tool_title: t.per_tool_title,
        chart_days: crate::chart::per_day(
            &per_day,
            u32::try_from(days_in_month).unwrap_or(31),
            t.per_day_title,
            &fill(t.per_day_desc, &[&used_text]),
        ),
        chart_tools: crate::chart::per_tool(
            &usage_month.per_tool,
            t.per_tool_title,
            t.per_tool_desc,
        ),
        has_usage: !usage_month.per_tool.is_empty(),
        no_usage: t.no_usage,
        connections_title: t.connections_title,
        connections: conns
            .iter()
            .map(|c| {
                let ok = c.state.status != ConnectionStatus::RefreshFailed;
                ConnectionView {
                    label: format!(
                        "{} ({})",
                        c.exact_email
                            .clone()
                            .unwrap_or_else(|| "Exact Online".into()),
                        c.region.site_name()
                    ),
                    ok,
                    state: match c.state.status {
                        ConnectionStatus::Active => t.connection_active.into(),
                        ConnectionStatus::RetryPending => t.connection_retrying.into(),
                        ConnectionStatus::RefreshFailed => t.connection_expired.into(),
                    },
                    detail: c.last_refreshed_at.map(|at| {
                        let when = format!("{} UTC", at.format(t.date_time_format));
                        fill(t.last_refreshed, &[&when])
                    }),
                    reconnect: format!("/connect?region={}", c.region.code()),
                }
            })
            .collect(),
        reconnect_label: t.reconnect_label,
        add_connection: t.add_connection,
        admins_title: t.admins_title,
        admins_limit: fill(t.admins_limit, &[&limit_text(limits.administrations, lang)]),
        administrations: admins
            .iter()
            .map(|a| AdminRow {
                id: a.id.clone(),
                name: a.name.clone(),
                code: a.division_code,
                active: a.is_active,
                unserved: a.is_active && !served.contains(&a.id.as_str()),
                default: a.is_default,
                via: (conns.len() > 1)
                    .then(|| conns.iter().find(|c| c.id == a.connection_id))
                    .flatten()
                    .map(|c| {
                        format!(
                            "{} ({})",
                            c.exact_email.as_deref().unwrap_or("Exact Online"),
                            c.region.site_name()
                        )
                    }),
            })
            .collect(),
        admin_label: t.admin_label,
        via_label: t.via,
        state_label: t.state_label,
        actions_label: t.actions_label,
        active_label: t.admin_on,
        inactive_label: t.admin_off,
        unserved_label: t.admin_unserved,
        default_label: t.default_label,
        switch_on: t.switch_on,
        switch_off: t.switch_off,
        make_default: t.make_default,
        keys_title: t.api_keys,
        apps_title: t.apps_title,
        apps: apps
            .iter()
            .map(|app| {
                let names: Vec<&str> = app
                    .administration_ids
                    .iter()
                    .filter_map(|id| admins.iter().find(|a| &a.id == id))
                    .map(|a| a.name.as_str())
                    .collect();
                AppView {
                    grant_id: app.grant_id.clone(),
                    name: app.client_name.clone(),
                    detail: format!(
                        "{}; {} {}",
                        fill(
                            t.app_last_used,
                            &[&app.last_used_at.format(t.date_time_format).to_string()]
                        ),
                        t.app_reads,
                        names.join(", ")
                    ),
                }
            })
            .collect(),
        apps_none: t.apps_none,
        app_revoke: t.app_revoke,
        keys: keys
            .iter()
            .filter(|k| k.revoked_at.is_none())
            .map(|k| KeyView {
                id: k.id.clone(),
                name: k.name.clone(),
                prefix: k.key_prefix.clone(),
                last_used: k
                    .last_used_at
                    .map(|at| at.format(t.date_time_format).to_string())
                    .unwrap_or_else(|| t.key_never_used.into()),
            })
            .collect(),
        key_name_label: t.key_name_label,
        key_start_label: t.key_start_label,
        key_used_label: t.key_used_label,
        rename_label: t.rename_label,
        revoke_label: t.revoke_label,
        new_key_label: t.new_key_label,
        create_label: t.create_label,
        activity_title: t.activity_title,
        calls: recent
            .iter()
            .map(|r| CallView {
                at: chrono::DateTime::from_timestamp(r.at, 0)
                    .map(|at| at.format(t.short_date_time_format).to_string())
                    .unwrap_or_default(),
                tool: r.tool.chars().take(60).collect(),
                division: r.division_code.map(|d| d.to_string()).unwrap_or_default(),
                outcome: outcome_words(&r.outcome, lang),
                latency: r.latency_ms,
                client: r
                    .client_name
                    .clone()
                    .unwrap_or_default()
                    .chars()
                    .take(40)
                    .collect(),
            })
            .collect(),
        time_label: t.time_label,
        outcome_label: t.outcome_label,
        client_label: t.client_label,
        prefs_title: t.prefs_title,
        language_label: t.language_label,
        english: prefs.english,
        usage_warnings: prefs.usage_warnings,
        product_updates: prefs.product_updates,
        usage_mails_label: t.usage_mails_label,
        product_mails_label: t.product_mails_label,
        save_label: t.save_label,
        account_title: t.account_title,
        signout_label: t.signout_label,
        delete_label: fill(
            t.delete_label,
            &[boekhouding_core::account::confirmation_word(
                lang == Lang::Nl,
            )],
        ),
        delete_button: t.delete_button,
        csrf,
    };
    match page.render() {
        // Its billing forms' answers redirect to Stripe's hosted pages.
        Ok(html) => WebResponse::html(status, html).allow_form_targets(
            &cfg.stripe
                .as_ref()
                .map(crate::billing::hosted_origins)
                .unwrap_or_default(),
        ),
        Err(e) => unavailable(lang).because(&e),
    }
}

/// A signed-in, genuine POST: the user, or the response refusing it.
pub async fn genuine<P: PortalPlatform>(
    req: &WebRequest,
    cfg: &PortalConfig,
    p: &P,
) -> Result<SignedIn, WebResponse> {
    let signed = require_user(req, p).await?;
    if genuine_post(req, cfg, &signed.session.token_hash) {
        Ok(signed)
    } else {
        Err(refused_forged(req, p, &signed.user.id, signed.lang).await)
    }
}

/// `POST /administrations/toggle`.
pub async fn toggle_administration<P: PortalPlatform>(
    req: &WebRequest,
    cfg: &PortalConfig,
    p: &P,
) -> WebResponse {
    let signed = match genuine(req, cfg, p).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let id = req.form_field("administration").unwrap_or_default();
    let on = req.form_field("on").as_deref() == Some("1");
    let now = p.clock().now();
    let t = signed.lang.texts();
    let why =
        match administrations::set_active(p.db(), &signed.user.id, &id, on, signed.user.plan, now)
            .await
        {
            Ok(administrations::Toggle::Changed) => {
                let action = if on {
                    AuditAction::AdministrationActivated
                } else {
                    AuditAction::AdministrationDeactivated
                };
                trail::action(
                    p,
                    req,
                    &signed.user.id,
                    action,
                    ("administration", Some(&id)),
                    None,
                )
                .await;
                return WebResponse::redirect(303, "/dashboard?done=toggled");
            }
            Ok(administrations::Toggle::NotFound) => t.not_your_administration.to_owned(),
            Ok(administrations::Toggle::LimitReached { limit }) => fill(
                t.administration_limit,
                &[&thousands(u64::from(limit), signed.lang)],
            ),
            Ok(administrations::Toggle::CoolingDown { until }) => {
                fill(t.cooling_down, &[&until.format("%H:%M UTC").to_string()])
            }
            Ok(administrations::Toggle::ActiveElsewhere) => t.active_elsewhere.to_owned(),
            Err(e) => return unavailable(signed.lang).because(&e),
        };
    render_dashboard(&signed, cfg, p, None, Some(why), 409).await
}

/// `POST /administrations/default`.
pub async fn default_administration<P: PortalPlatform>(
    req: &WebRequest,
    cfg: &PortalConfig,
    p: &P,
) -> WebResponse {
    let signed = match genuine(req, cfg, p).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let id = req.form_field("administration").unwrap_or_default();
    match administrations::set_default(p.db(), &signed.user.id, &id, p.clock().now()).await {
        Ok(true) => {
            trail::action(
                p,
                req,
                &signed.user.id,
                AuditAction::DefaultAdministrationSet,
                ("administration", Some(&id)),
                None,
            )
            .await;
            WebResponse::redirect(303, "/dashboard?done=default")
        }
        Ok(false) => {
            let why = signed.lang.texts().default_needs_active.to_owned();
            render_dashboard(&signed, cfg, p, None, Some(why), 409).await
        }
        Err(e) => unavailable(signed.lang).because(&e),
    }
}

/// `POST /keys/rename`.
pub async fn rename_key<P: PortalPlatform>(
    req: &WebRequest,
    cfg: &PortalConfig,
    p: &P,
) -> WebResponse {
    let signed = match genuine(req, cfg, p).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let id = req.form_field("key").unwrap_or_default();
    let name = req.form_field("name").unwrap_or_default();
    match api_keys::rename(p.db(), &signed.user.id, &id, &name).await {
        Ok(renamed) => {
            if renamed {
                trail::action(
                    p,
                    req,
                    &signed.user.id,
                    AuditAction::KeyRenamed,
                    ("api_key", Some(&id)),
                    Some(json!({ "name": name.trim() })),
                )
                .await;
            }
            WebResponse::redirect(303, "/dashboard?done=renamed")
        }
        Err(api_keys::CreateKeyError::InvalidName) => {
            let why = signed.lang.texts().key_name_invalid.to_owned();
            render_dashboard(&signed, cfg, p, None, Some(why), 400).await
        }
        Err(e) => unavailable(signed.lang).because(&e),
    }
}

/// `POST /preferences`.
pub async fn save_preferences<P: PortalPlatform>(
    req: &WebRequest,
    cfg: &PortalConfig,
    p: &P,
) -> WebResponse {
    let signed = match genuine(req, cfg, p).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let prefs = users::Preferences {
        english: req.form_field("locale").as_deref() == Some("en"),
        usage_warnings: req.form_field("usage_warnings").is_some(),
        product_updates: req.form_field("product_updates").is_some(),
    };
    // The dashboard it returns to already speaks the language just chosen.
    match users::set_preferences(p.db(), &signed.user.id, prefs, p.clock().now()).await {
        Ok(_) => {
            trail::action(
                p,
                req,
                &signed.user.id,
                AuditAction::PreferencesChanged,
                ("user", Some(&signed.user.id)),
                Some(json!({
                    "locale": if prefs.english { "en" } else { "nl" },
                    "usage_warnings": prefs.usage_warnings,
                    "product_updates": prefs.product_updates,
                })),
            )
            .await;
            WebResponse::redirect(303, "/dashboard?done=saved")
        }
        Err(e) => unavailable(signed.lang).because(&e),
    }
}

/// `POST /language`: the header's language switch on signed-in pages. It
/// changes the stored preference (and nothing else) and returns to the
/// page it was pressed on, now in the other language.
pub async fn set_language<P: PortalPlatform>(
    req: &WebRequest,
    cfg: &PortalConfig,
    p: &P,
) -> WebResponse {
    let signed = match genuine(req, cfg, p).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let current = match users::preferences(p.db(), &signed.user.id).await {
        Ok(Some(prefs)) => prefs,
        _ => return unavailable(signed.lang),
    };
    let prefs = users::Preferences {
        english: req.form_field("lang").as_deref() == Some("en"),
        ..current
    };
    let back = req
        .form_field("back")
        .filter(|b| login_states::safe_return_to(b).is_some())
        .unwrap_or_else(|| "/dashboard".to_owned());
    match users::set_preferences(p.db(), &signed.user.id, prefs, p.clock().now()).await {
        Ok(_) => {
            trail::action(
                p,
                req,
                &signed.user.id,
                AuditAction::LanguageChanged,
                ("user", Some(&signed.user.id)),
                Some(json!({ "locale": if prefs.english { "en" } else { "nl" } })),
            )
            .await;
            WebResponse::redirect(303, &back)
        }
        Err(e) => unavailable(signed.lang).because(&e),
    }
}

/// `POST /account/delete`: everything of the user, in core's order, once
/// the confirmation word is typed; the session cookie goes too.
pub async fn delete_account<P: PortalPlatform>(
    req: &WebRequest,
    cfg: &PortalConfig,
    p: &P,
) -> WebResponse {
    let signed = match genuine(req, cfg, p).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let lang = signed.lang;
    let t = lang.texts();
    let typed = req.form_field("confirm").unwrap_or_default();
    // The page asks for the word in the user's language; either word is
    // taken, so a page left open across a language switch still works.
    let confirmed = boekhouding_core::account::confirmed(&typed, true)
        || boekhouding_core::account::confirmed(&typed, false);
    if !confirmed {
        let why = fill(
            t.delete_unconfirmed,
            &[boekhouding_core::account::confirmation_word(
                lang == Lang::Nl,
            )],
        );
        return render_dashboard(&signed, cfg, p, None, Some(why), 400).await;
    }
    let stmts = boekhouding_core::account::delete_statements(&signed.user.id, p.clock().now());
    if let Err(e) = p.db().batch(stmts).await {
        return unavailable(lang).because(&e);
    }
    message(
        200,
        lang,
        t.account_deleted_title,
        t.account_deleted_text,
        Page::Home.path(lang),
        t.back_home,
    )
    .with_header("Set-Cookie", &cookie(SESSION_COOKIE, "", 0))
}

#[derive(Template)]
#[template(path = "key_created.html")]
struct KeyCreated {
    c: Chrome,
    key_once: &'static str,
    key: String,
    copy_label: &'static str,
    back_label: &'static str,
}

/// `POST /keys`: a new key, shown once.
pub async fn create_key<P: PortalPlatform>(
    req: &WebRequest,
    cfg: &PortalConfig,
    p: &P,
) -> WebResponse {
    let signed = match require_user(req, p).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if !genuine_post(req, cfg, &signed.session.token_hash) {
        return refused_forged(req, p, &signed.user.id, signed.lang).await;
    }
    let lang = signed.lang;
    let t = lang.texts();
    let name = req.form_field("name").unwrap_or_default();
    match api_keys::create(
        p.db(),
        p.rng(),
        &signed.user.id,
        signed.user.plan,
        &name,
        p.clock().now(),
    )
    .await
    {
        Ok(created) => {
            trail::action(
                p,
                req,
                &signed.user.id,
                AuditAction::KeyCreated,
                ("api_key", Some(&created.record.id)),
                Some(json!({ "name": name.trim() })),
            )
            .await;
            let page = KeyCreated {
                c: chrome(lang, t.key_created_title),
                key_once: t.key_once,
                key: created.issued.secret.expose().to_owned(),
                copy_label: t.copy,
                back_label: t.back_to_dashboard,
            };
            match page.render() {
                Ok(html) => WebResponse::html(200, html),
                Err(e) => unavailable(lang).because(&e),
            }
        }
        Err(api_keys::CreateKeyError::LimitReached { limit, .. }) => {
            let text = fill(t.key_limit, &[&thousands(u64::from(limit), lang)]);
            render_dashboard(&signed, cfg, p, None, Some(text), 409).await
        }
        Err(api_keys::CreateKeyError::InvalidName) => {
            render_dashboard(&signed, cfg, p, None, Some(t.key_name_invalid.into()), 400).await
        }
        Err(e) => unavailable(lang).because(&e),
    }
}

/// `POST /keys/revoke`: stops a key at once (the MCP server checks keys on
/// every request).
pub async fn revoke_key<P: PortalPlatform>(
    req: &WebRequest,
    cfg: &PortalConfig,
    p: &P,
) -> WebResponse {
    let signed = match require_user(req, p).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if !genuine_post(req, cfg, &signed.session.token_hash) {
        return refused_forged(req, p, &signed.user.id, signed.lang).await;
    }
    let key_id = req.form_field("key").unwrap_or_default();
    // Scoped to the user: another tenant's key id changes nothing.
    match api_keys::revoke(p.db(), &signed.user.id, &key_id, p.clock().now()).await {
        Ok(revoked) => {
            if revoked {
                trail::action(
                    p,
                    req,
                    &signed.user.id,
                    AuditAction::KeyRevoked,
                    ("api_key", Some(&key_id)),
                    None,
                )
                .await;
            }
            WebResponse::redirect(303, "/dashboard?done=revoked")
        }
        Err(e) => unavailable(signed.lang).because(&e),
    }
}

/// `POST /signout`: ends the session on the server and in the browser.
pub async fn sign_out<P: PortalPlatform>(
    req: &WebRequest,
    cfg: &PortalConfig,
    p: &P,
) -> WebResponse {
    let Ok(Some(session)) = current_session(req, p).await else {
        if req.cookie(SESSION_COOKIE).is_some() {
            trail::security(p, req, SecurityEvent::InvalidSession, None).await;
        }
        return WebResponse::redirect(303, "/")
            .with_header("Set-Cookie", &cookie(SESSION_COOKIE, "", 0));
    };
    let lang = user_lang(p, &session.user_id).await;
    if !genuine_post(req, cfg, &session.token_hash) {
        return refused_forged(req, p, &session.user_id, lang).await;
    }
    if let Err(e) = sessions::revoke(p.db(), &session.token_hash).await {
        return unavailable(lang).because(&e);
    }
    trail::action(
        p,
        req,
        &session.user_id,
        AuditAction::SignedOut,
        ("session", None),
        None,
    )
    .await;
    // Signed out, the visitor lands on the home page in their language.
    WebResponse::redirect(303, Page::Home.path(lang))
        .with_header("Set-Cookie", &cookie(SESSION_COOKIE, "", 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_language_travels_in_return_to_and_comes_off_again() {
        for to in [
            None,
            Some("/dashboard"),
            Some("/oauth/authorize?client_id=a"),
        ] {
            let to = to.map(str::to_owned);
            assert_eq!(
                split_lang(carry_lang(to.clone(), Lang::Nl)),
                (to.clone(), Lang::Nl)
            );
            let (back, lang) = split_lang(carry_lang(to.clone(), Lang::En));
            assert_eq!(lang, Lang::En);
            assert_eq!(back, Some(to.unwrap_or_else(|| "/dashboard".into())));
        }
        // Marked, every stored path is still a safe one.
        let marked = carry_lang(Some("/oauth/authorize?x=1".into()), Lang::En).unwrap();
        assert_eq!(marked, "/oauth/authorize?x=1&lang=en");
        assert!(login_states::safe_return_to(&marked).is_some());
        // Too long to mark: the path wins.
        let long = format!("/{}", "a".repeat(login_states::MAX_RETURN_TO - 4));
        assert_eq!(carry_lang(Some(long.clone()), Lang::En), Some(long));
    }

    #[test]
    fn the_browser_language_is_the_first_of_dutch_and_english_it_names() {
        let with = |value: &str| {
            let mut r = WebRequest::get("/callback");
            r.headers.push(("accept-language".into(), value.into()));
            browser_lang(&r)
        };
        assert_eq!(with("en-GB,en;q=0.9,nl;q=0.8"), Lang::En);
        assert_eq!(with("de-DE,nl;q=0.9,en;q=0.8"), Lang::Nl);
        assert_eq!(with("fr-FR"), Lang::Nl);
        assert_eq!(browser_lang(&WebRequest::get("/callback")), Lang::Nl);
    }
}
