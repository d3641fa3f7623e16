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
    SqlExecutor, administrations, api_keys, connections, login_states, sessions, users,
};

use crate::i18n::{Lang, Page};
use crate::pages::{Chrome, SnippetView, snippet_views};
use crate::web::{WebRequest, WebResponse};
use crate::{PortalConfig, PortalPlatform};

/// The session cookie.
pub const SESSION_COOKIE: &str = "__Host-session";
/// The cookie binding a sign-in attempt to this browser.
pub const LOGIN_COOKIE: &str = "__Host-login";

fn cookie(name: &str, value: &str, max_age_s: i64) -> String {
    format!("{name}={value}; Path=/; HttpOnly; Secure; SameSite=Lax; Max-Age={max_age_s}")
}

/// A page in Dutch (the portal's language for signed-in pages until the
/// user's locale is read).
fn chrome(title: &str) -> Chrome {
    Chrome::new(None, Lang::Nl, title.to_owned()).signed_in(true)
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
    title: &str,
    text: &str,
    href: &str,
    label: &'static str,
) -> WebResponse {
    let page = Message {
        c: chrome(title),
        message: text.to_owned(),
        action_href: href.to_owned(),
        action_label: label,
    };
    match page.render() {
        Ok(html) => WebResponse::html(status, html),
        Err(_) => WebResponse::html(500, String::new()),
    }
}

fn unavailable() -> WebResponse {
    message(
        503,
        "Even niet beschikbaar",
        "De dienst is tijdelijk niet beschikbaar. Probeer het over een minuut opnieuw.",
        "/",
        "Naar de startpagina",
    )
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
    let Some(region) = req.query_param("region") else {
        let page = Connect {
            c: chrome("Inloggen met Exact Online"),
            intro: "Je logt in met je eigen Exact Online-account; wij krijgen nooit je wachtwoord. Kies waar je administratie staat.",
            region_label: "Exact Online-site",
            no_password: "Na het inloggen kies je welke administraties je assistent mag lezen.",
            regions: region_choices(),
            return_to,
        };
        return match page.render() {
            Ok(html) => WebResponse::html(200, html).allow_form_targets(&exact_origins(cfg)),
            Err(_) => unavailable(),
        };
    };
    let Ok(region) = region.parse::<Region>() else {
        return message(
            400,
            "Onbekende Exact-site",
            "Deze Exact Online-site kennen we niet. Kies er een uit de lijst.",
            "/connect",
            "Opnieuw kiezen",
        );
    };
    let Some(exact) = cfg.exact.as_ref() else {
        return unavailable();
    };
    let now = p.clock().now();
    let signed_in = current_session(req, p).await.ok().flatten();
    let started = match login_states::begin(
        p.db(),
        p.rng(),
        region,
        return_to.as_deref(),
        signed_in.as_ref().map(|s| s.user_id.as_str()),
        now,
    )
    .await
    {
        Ok(s) => s,
        Err(_) => return unavailable(),
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

fn limit_text(l: Limit) -> String {
    match l {
        Limit::Capped(n) => n.to_string(),
        Limit::Unlimited => "onbeperkt".into(),
    }
}

/// `GET /callback`: the end of Exact's flow.
pub async fn callback<P: PortalPlatform>(
    req: &WebRequest,
    cfg: &PortalConfig,
    p: &P,
) -> WebResponse {
    let retry = |title: &str, text: &str, status: u16| {
        message(status, title, text, "/connect", "Opnieuw inloggen")
    };
    if let Some(error) = req.query_param("error") {
        let text = if error == "access_denied" {
            "Je hebt in Exact Online geen toestemming gegeven. Zonder toestemming kunnen we je boekhouding niet lezen; je kunt het altijd opnieuw proberen."
        } else {
            "Exact Online heeft het inloggen afgebroken. Probeer het opnieuw."
        };
        return retry("Inloggen niet gelukt", text, 400);
    }
    let (Some(code), Some(state)) = (req.query_param("code"), req.query_param("state")) else {
        return retry(
            "Inloggen niet gelukt",
            "Deze pagina hoort bij het inloggen met Exact Online en mist gegevens. Begin opnieuw.",
            400,
        );
    };
    let browser = req.cookie(LOGIN_COOKIE).unwrap_or_default();
    let now = p.clock().now();
    let attempt = match login_states::take(p.db(), &state, browser, now).await {
        Ok(Some(a)) => a,
        Ok(None) => {
            return retry(
                "Deze inloglink is verlopen",
                "Deze inlogpoging is verlopen, al gebruikt, of in een andere browser begonnen. Begin opnieuw; het duurt maar een minuut.",
                400,
            );
        }
        Err(_) => return unavailable(),
    };
    let Some(exact) = cfg.exact.as_ref() else {
        return unavailable();
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
            return retry(
                "Exact Online weigerde de inlogcode",
                "De inlogcode van Exact Online is verlopen of al gebruikt. Begin opnieuw.",
                400,
            );
        }
        Err(onboarding::ConnectError::LoginHeldElsewhere) => {
            return message(
                409,
                "Deze Exact-login hoort bij een ander account",
                "Je bent ingelogd bij Exact Online met een login die al aan een ander account van Praat met je Boekhouding gekoppeld is. Log uit en log in met die Exact-login om dat account te gebruiken, of kies bij Exact Online een andere login.",
                "/dashboard",
                "Terug naar het dashboard",
            );
        }
        Err(onboarding::ConnectError::NoEmail) => {
            return retry(
                "Geen e-mailadres",
                "Exact Online gaf geen e-mailadres voor dit account; dat hebben we nodig om je te kunnen bereiken.",
                400,
            );
        }
        Err(_) => return unavailable(),
    };
    let user_id = connected.user.id.clone();
    let (token, _) =
        match sessions::create(p.db(), p.rng(), &user_id, req.header("user-agent"), now).await {
            Ok(s) => s,
            Err(_) => return unavailable(),
        };
    let session_cookie = cookie(
        SESSION_COOKIE,
        token.expose(),
        sessions::LIFETIME.num_seconds(),
    );
    let clear_login = cookie(LOGIN_COOKIE, "", 0);
    // The first sign-in (no key yet): the first-run page with a key.
    let keys = api_keys::list_for_user(p.db(), &user_id)
        .await
        .unwrap_or_default();
    if keys.is_empty() {
        let created = match api_keys::create(
            p.db(),
            p.rng(),
            &user_id,
            connected.user.plan,
            "Eerste sleutel",
            now,
        )
        .await
        {
            Ok(k) => k,
            Err(_) => return unavailable(),
        };
        let key = created.issued.secret.expose().to_owned();
        let limits = connected.user.plan.limits();
        let page = Welcome {
            c: chrome("Welkom"),
            found_title: "Gevonden administraties",
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
            active_label: "actief",
            plan_note: format!(
                "Je gebruikt het {}-abonnement: {} administraties tegelijk actief, {} vragen per maand. Je kiest de administraties in het dashboard.",
                plan_label(connected.user.plan),
                limit_text(limits.administrations),
                limit_text(limits.monthly_tool_calls)
            ),
            key_title: "Je API-sleutel",
            key_once: "Kopieer hem nu: we bewaren alleen een hash en kunnen hem je niet nog eens laten zien.",
            key: key.clone(),
            copy_label: "Kopiëren",
            setup_title: "Koppel je assistent",
            snippets: snippet_views(&cfg.mcp_url(), &key, Lang::Nl),
            ask_title: "Stel je eerste vraag",
            first_question: boekhouding_core::setup::first_question(true),
            to_dashboard: "Naar het dashboard",
        };
        return match page.render() {
            Ok(html) => WebResponse::html(200, html)
                .with_header("Set-Cookie", &session_cookie)
                .with_header("Set-Cookie", &clear_login),
            Err(_) => unavailable(),
        };
    }
    let to = attempt
        .return_to
        .filter(|r| login_states::safe_return_to(r).is_some())
        .unwrap_or_else(|| "/dashboard".into());
    WebResponse::redirect(303, &to)
        .with_header("Set-Cookie", &session_cookie)
        .with_header("Set-Cookie", &clear_login)
}

fn plan_label(plan: Plan) -> &'static str {
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
}

/// The signed-in user, or the response that sends the browser to sign in.
pub async fn require_user<P: PortalPlatform>(
    req: &WebRequest,
    p: &P,
) -> Result<SignedIn, WebResponse> {
    let session = match current_session(req, p).await {
        Ok(Some(s)) => s,
        Ok(None) => {
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
        Err(_) => return Err(unavailable()),
    };
    match users::find_by_id(p.db(), &session.user_id).await {
        Ok(Some(user)) => Ok(SignedIn { session, user }),
        Ok(None) => Err(WebResponse::redirect(303, "/connect")),
        Err(_) => Err(unavailable()),
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

fn refused() -> WebResponse {
    message(
        403,
        "Verzoek geweigerd",
        "Dit formulier kwam niet van deze site of is verlopen. Open het dashboard opnieuw en probeer het nog eens.",
        "/dashboard",
        "Naar het dashboard",
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
    default_label: &'static str,
    switch_on: &'static str,
    switch_off: &'static str,
    make_default: &'static str,
    keys_title: &'static str,
    keys: Vec<KeyView>,
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
    let notice = req.query_param("done").and_then(|d| notice_text(&d));
    render_dashboard(&signed, cfg, p, notice, None, 200).await
}

/// What a finished action tells the user on the dashboard it returns to.
fn notice_text(done: &str) -> Option<String> {
    Some(
        match done {
            "revoked" => "De sleutel is ingetrokken; hij werkt vanaf nu niet meer.",
            "renamed" => "De sleutel heeft een nieuwe naam.",
            "toggled" => "De administratie is bijgewerkt.",
            "default" => "Dit is nu je standaardadministratie.",
            "saved" => "Je voorkeuren zijn opgeslagen.",
            _ => return None,
        }
        .to_owned(),
    )
}

fn outcome_words(outcome: &str) -> &'static str {
    match outcome {
        "ok" => "gelukt",
        "tool_error" => "fout in de vraag",
        "invalid_arguments" => "ongeldige invoer",
        "limit_exceeded" => "limiet bereikt",
        "forbidden" => "geen toegang",
        "upstream_error" => "Exact-storing",
        _ => "storing",
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
    let now = p.clock().now();
    let month = UsageMonth::of(now);
    let db = p.db();
    let (used, conns, admins, keys, usage_month, recent, prefs) = match (
        usage::monthly_calls(db, &user.id, month).await,
        connections::list_for_user(db, &user.id).await,
        administrations::all_for_user(db, &user.id).await,
        api_keys::list_for_user(db, &user.id).await,
        usage::month_usage(db, &user.id, month).await,
        usage::recent_calls(db, &user.id, 20).await,
        users::preferences(db, &user.id).await,
    ) {
        (Ok(u), Ok(c), Ok(a), Ok(k), Ok(m), Ok(r), Ok(pr)) => (u, c, a, k, m, r, pr),
        _ => return unavailable(),
    };
    let prefs = prefs.unwrap_or(users::Preferences {
        english: false,
        usage_warnings: true,
        product_updates: true,
    });
    let limits = user.plan.limits();
    let usage_line = match limits.monthly_tool_calls {
        Limit::Capped(n) => format!(
            "{used} van {n} vragen deze maand; de teller begint opnieuw op {}",
            month.resets_at().format("%d-%m-%Y")
        ),
        Limit::Unlimited => format!("{used} vragen deze maand"),
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
    let page = Dashboard {
        c: chrome("Dashboard"),
        signed_in_as: format!("Ingelogd als {}", user.email),
        notice,
        error,
        plan_title: "Abonnement en gebruik",
        plan_name: plan_label(user.plan),
        usage_line,
        pricing_href: Page::Pricing.path(Lang::Nl),
        upgrade_label: "Abonnementen vergelijken",
        per_day_title: "Vragen per dag deze maand",
        per_tool_title: "Vragen per tool deze maand",
        chart_days: crate::chart::per_day(
            &per_day,
            u32::try_from(days_in_month).unwrap_or(31),
            "Vragen per dag deze maand",
            &format!("{used} vragen in totaal deze maand"),
        ),
        chart_tools: crate::chart::per_tool(
            &usage_month.per_tool,
            "Vragen per tool deze maand",
            "De meest gebruikte tools, met het aantal vragen",
        ),
        has_usage: !usage_month.per_tool.is_empty(),
        no_usage: "Nog geen vragen deze maand.",
        connections_title: "Koppelingen met Exact Online",
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
                        ConnectionStatus::Active => "werkt".into(),
                        ConnectionStatus::RetryPending => {
                            "tijdelijke storing, we proberen het automatisch opnieuw".into()
                        }
                        ConnectionStatus::RefreshFailed => {
                            "verlopen: log opnieuw in bij Exact Online".into()
                        }
                    },
                    detail: c
                        .last_refreshed_at
                        .map(|t| format!("laatst vernieuwd {}", t.format("%d-%m-%Y %H:%M UTC"))),
                    reconnect: format!("/connect?region={}", c.region.code()),
                }
            })
            .collect(),
        reconnect_label: "Opnieuw koppelen",
        add_connection: "Nog een Exact Online-site koppelen",
        admins_title: "Administraties",
        admins_limit: format!(
            "Je abonnement staat {} actieve administraties toe. Een uitgezette administratie kan na een uur weer aan.",
            limit_text(limits.administrations)
        ),
        administrations: admins
            .iter()
            .map(|a| AdminRow {
                id: a.id.clone(),
                name: a.name.clone(),
                code: a.division_code,
                active: a.is_active,
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
        admin_label: "Administratie",
        via_label: "via",
        state_label: "Toestand",
        actions_label: "Acties",
        active_label: "aan",
        inactive_label: "uit",
        default_label: "standaard",
        switch_on: "Aanzetten",
        switch_off: "Uitzetten",
        make_default: "Maak standaard",
        keys_title: "API-sleutels",
        keys: keys
            .iter()
            .filter(|k| k.revoked_at.is_none())
            .map(|k| KeyView {
                id: k.id.clone(),
                name: k.name.clone(),
                prefix: k.key_prefix.clone(),
                last_used: k
                    .last_used_at
                    .map(|t| t.format("%d-%m-%Y %H:%M").to_string())
                    .unwrap_or_else(|| "nog niet gebruikt".into()),
            })
            .collect(),
        key_name_label: "Naam",
        key_start_label: "Begint met",
        key_used_label: "Laatst gebruikt",
        rename_label: "Hernoemen",
        revoke_label: "Intrekken",
        new_key_label: "Naam van een nieuwe sleutel",
        create_label: "Sleutel maken",
        activity_title: "Recente vragen",
        calls: recent
            .iter()
            .map(|r| CallView {
                at: chrono::DateTime::from_timestamp(r.at, 0)
                    .map(|t| t.format("%d-%m %H:%M").to_string())
                    .unwrap_or_default(),
                tool: r.tool.chars().take(60).collect(),
                division: r.division_code.map(|d| d.to_string()).unwrap_or_default(),
                outcome: outcome_words(&r.outcome),
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
        time_label: "Tijd (UTC)",
        outcome_label: "Uitkomst",
        client_label: "Assistent",
        prefs_title: "Voorkeuren",
        language_label: "Taal van e-mails",
        english: prefs.english,
        usage_warnings: prefs.usage_warnings,
        product_updates: prefs.product_updates,
        usage_mails_label: "Mail me bij 80 % en 100 % van mijn maandlimiet",
        product_mails_label: "Mail me over nieuwe functies",
        save_label: "Opslaan",
        account_title: "Account",
        signout_label: "Uitloggen",
        delete_label: format!(
            "Account verwijderen: typ {} om te bevestigen",
            boekhouding_core::account::confirmation_word(true)
        ),
        delete_button: "Account definitief verwijderen",
        csrf: cfg
            .secret
            .as_ref()
            .map(|s| s.csrf_token(&signed.session.token_hash))
            .unwrap_or_default(),
    };
    match page.render() {
        Ok(html) => WebResponse::html(status, html),
        Err(_) => unavailable(),
    }
}

/// A signed-in, genuine POST: the user, or the response refusing it.
async fn genuine<P: PortalPlatform>(
    req: &WebRequest,
    cfg: &PortalConfig,
    p: &P,
) -> Result<SignedIn, WebResponse> {
    let signed = require_user(req, p).await?;
    if genuine_post(req, cfg, &signed.session.token_hash) {
        Ok(signed)
    } else {
        Err(refused())
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
    let why = match administrations::set_active(
        p.db(),
        &signed.user.id,
        &id,
        on,
        signed.user.plan,
        now,
    )
    .await
    {
        Ok(administrations::Toggle::Changed) => {
            return WebResponse::redirect(303, "/dashboard?done=toggled");
        }
        Ok(administrations::Toggle::NotFound) => {
            "Deze administratie hoort niet bij je account.".to_owned()
        }
        Ok(administrations::Toggle::LimitReached { limit }) => format!(
            "Je abonnement staat {limit} actieve administraties toe. Zet er eerst een uit, of kies een groter abonnement."
        ),
        Ok(administrations::Toggle::CoolingDown { until }) => format!(
            "Deze administratie is net uitgezet; ze kan weer aan vanaf {}.",
            until.format("%H:%M UTC")
        ),
        Ok(administrations::Toggle::ActiveElsewhere) => {
            "Deze administratie staat al aan via een andere Exact-login. Zet die eerst uit als je haar via deze login wilt lezen.".to_owned()
        }
        Err(_) => return unavailable(),
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
        Ok(true) => WebResponse::redirect(303, "/dashboard?done=default"),
        Ok(false) => {
            let why = "Alleen een administratie die aan staat kan de standaard zijn.".to_owned();
            render_dashboard(&signed, cfg, p, None, Some(why), 409).await
        }
        Err(_) => unavailable(),
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
        Ok(_) => WebResponse::redirect(303, "/dashboard?done=renamed"),
        Err(api_keys::CreateKeyError::InvalidName) => {
            let why = "Geef de sleutel een naam van 1 tot 100 tekens.".to_owned();
            render_dashboard(&signed, cfg, p, None, Some(why), 400).await
        }
        Err(_) => unavailable(),
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
    match users::set_preferences(p.db(), &signed.user.id, prefs, p.clock().now()).await {
        Ok(_) => WebResponse::redirect(303, "/dashboard?done=saved"),
        Err(_) => unavailable(),
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
    let typed = req.form_field("confirm").unwrap_or_default();
    if !boekhouding_core::account::confirmed(&typed, true) {
        let why = format!(
            "Typ {} om het verwijderen te bevestigen; er is niets verwijderd.",
            boekhouding_core::account::confirmation_word(true)
        );
        return render_dashboard(&signed, cfg, p, None, Some(why), 400).await;
    }
    let stmts = boekhouding_core::account::delete_statements(&signed.user.id, p.clock().now());
    if p.db().batch(stmts).await.is_err() {
        return unavailable();
    }
    message(
        200,
        "Account verwijderd",
        "Je account en alles wat we van je bewaarden zijn verwijderd, je Exact-tokens eerst. Je API-sleutels en sessies werken niet meer.",
        "/",
        "Naar de startpagina",
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
        return refused();
    }
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
            let page = KeyCreated {
                c: chrome("Nieuwe API-sleutel"),
                key_once: "Kopieer hem nu: we bewaren alleen een hash en kunnen hem je niet nog eens laten zien.",
                key: created.issued.secret.expose().to_owned(),
                copy_label: "Kopiëren",
                back_label: "Terug naar het dashboard",
            };
            match page.render() {
                Ok(html) => WebResponse::html(200, html),
                Err(_) => unavailable(),
            }
        }
        Err(api_keys::CreateKeyError::LimitReached { limit, .. }) => {
            let text = format!(
                "Je abonnement staat {limit} actieve sleutels toe. Trek er eerst een in, of kies een groter abonnement."
            );
            render_dashboard(&signed, cfg, p, None, Some(text), 409).await
        }
        Err(api_keys::CreateKeyError::InvalidName) => {
            render_dashboard(
                &signed,
                cfg,
                p,
                None,
                Some("Geef de sleutel een naam van 1 tot 100 tekens.".into()),
                400,
            )
            .await
        }
        Err(_) => unavailable(),
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
        return refused();
    }
    let key_id = req.form_field("key").unwrap_or_default();
    // Scoped to the user: another tenant's key id changes nothing.
    match api_keys::revoke(p.db(), &signed.user.id, &key_id, p.clock().now()).await {
        Ok(_) => WebResponse::redirect(303, "/dashboard?done=revoked"),
        Err(_) => unavailable(),
    }
}

/// `POST /signout`: ends the session on the server and in the browser.
pub async fn sign_out<P: PortalPlatform>(
    req: &WebRequest,
    cfg: &PortalConfig,
    p: &P,
) -> WebResponse {
    let Ok(Some(session)) = current_session(req, p).await else {
        return WebResponse::redirect(303, "/")
            .with_header("Set-Cookie", &cookie(SESSION_COOKIE, "", 0));
    };
    if !genuine_post(req, cfg, &session.token_hash) {
        return refused();
    }
    if sessions::revoke(p.db(), &session.token_hash).await.is_err() {
        return unavailable();
    }
    WebResponse::redirect(303, "/").with_header("Set-Cookie", &cookie(SESSION_COOKIE, "", 0))
}
