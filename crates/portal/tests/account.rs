//! Signing in with Exact and the signed-in pages, natively: the real
//! migrations on SQLite, the Exact sandbox's OAuth flow over HTTP, and the
//! portal's `handle` as the Worker calls it. Hostile requests (a replayed
//! or foreign `state`, a cross-site or token-less POST, a foreign
//! `return_to`, another tenant's key id) are all harmless.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use boekhouding_core::access::ExactSettings;
use boekhouding_core::crypto::{Secret, TokenKeyring};
use boekhouding_core::csrf::PortalSecret;
use boekhouding_core::ports::Clock;
use boekhouding_core::region::Region;
use boekhouding_core::storage::{SqlExecutor, Statement, api_keys};
use boekhouding_core::testing::{FakeClock, RecordingSleep, SeededRandomness};
use boekhouding_portal::web::{WebRequest, WebResponse};
use boekhouding_portal::{DEMO_COMPANIES, PortalConfig, PortalPlatform, handle};
use boekhouding_sqlite::SqliteDb;
use exact_sandbox::transport::BlockingTransport;
use exact_sandbox::{Sandbox, SandboxConfig};
use futures::executor::block_on;

const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const SECRET: &str = "1f1e1d1c1b1a191817161514131211100f0e0d0c0b0a09080706050403020100";
const ORIGIN: &str = "https://portal.example.nl";
const REDIRECT: &str = "https://portal.example.nl/callback";
/// The address every test browser comes from (as Cloudflare reports it).
const CLIENT_IP: &str = "203.0.113.5";

struct Native {
    db: SqliteDb,
    http: BlockingTransport,
    clock: FakeClock,
    rng: SeededRandomness,
    sleep: RecordingSleep,
}

/// The portal as the authorization server of the MCP endpoint.
fn oauth_settings() -> boekhouding_portal::oauth::OAuthSettings {
    use boekhouding_core::authorization::clients::DocumentPolicy;
    use boekhouding_core::authorization::metadata::{Issuer, McpResource};
    boekhouding_portal::oauth::OAuthSettings {
        issuer: Issuer::parse(ORIGIN).unwrap(),
        resource: McpResource::parse("https://api.example.nl/mcp").unwrap(),
        policy: DocumentPolicy::default(),
    }
}

impl PortalPlatform for Native {
    type Db = SqliteDb;
    type Http = BlockingTransport;
    type Clock = FakeClock;
    type Rng = SeededRandomness;
    type Sleep = RecordingSleep;
    fn sleep(&self) -> &RecordingSleep {
        &self.sleep
    }
    fn db(&self) -> &SqliteDb {
        &self.db
    }
    fn http(&self) -> &BlockingTransport {
        &self.http
    }
    fn clock(&self) -> &FakeClock {
        &self.clock
    }
    fn rng(&self) -> &SeededRandomness {
        &self.rng
    }
}

struct World {
    sandbox: Sandbox,
    p: Native,
    cfg: PortalConfig,
}

fn world() -> World {
    let sandbox = Sandbox::start(SandboxConfig {
        redirect_uris: vec![REDIRECT.into()],
        ..SandboxConfig::default()
    })
    .unwrap();
    let cfg = PortalConfig {
        mcp_origin: "https://api.example.nl".into(),
        health_urls: vec![],
        demo_keys: DEMO_COMPANIES.to_vec(),
        exact: Some(ExactSettings {
            keyring: TokenKeyring::from_config(KEY).unwrap(),
            client_id: sandbox.client_id().into(),
            client_secret: Secret::new(sandbox.client_secret()),
            redirect_uri: REDIRECT.into(),
            base_url_override: Some(sandbox.base_url().into()),
        }),
        secret: Some(PortalSecret::from_hex(SECRET).unwrap()),
        oauth: Some(oauth_settings()),
        stripe: None,
    };
    World {
        p: Native {
            db: SqliteDb::migrated().unwrap(),
            http: BlockingTransport::default(),
            clock: FakeClock::at(chrono::Utc::now()),
            rng: SeededRandomness::new(5),
            sleep: RecordingSleep::default(),
        },
        sandbox,
        cfg,
    }
}

/// A browser's cookie jar, enough for these flows.
#[derive(Default)]
struct Browser {
    cookies: Vec<(String, String)>,
}

impl Browser {
    fn absorb(&mut self, r: &WebResponse) {
        for (name, value) in &r.headers {
            if !name.eq_ignore_ascii_case("set-cookie") {
                continue;
            }
            let pair = value.split(';').next().unwrap_or_default();
            let (k, v) = pair.split_once('=').unwrap();
            self.cookies.retain(|(n, _)| n != k);
            if !value.contains("Max-Age=0") {
                self.cookies.push((k.to_owned(), v.to_owned()));
            }
            assert!(
                value.contains("HttpOnly") && value.contains("Secure"),
                "{value}"
            );
            assert!(
                value.contains("SameSite=Lax") && value.contains("Path=/"),
                "{value}"
            );
            assert!(k.starts_with("__Host-"), "{k}");
        }
    }

    fn request(&self, method: &str, path: &str) -> WebRequest {
        let mut r = WebRequest::get(path);
        r.method = method.into();
        r.origin = ORIGIN.into();
        let jar: Vec<String> = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if !jar.is_empty() {
            r.headers.push(("cookie".into(), jar.join("; ")));
        }
        r.headers
            .push(("cf-connecting-ip".into(), CLIENT_IP.into()));
        r
    }

    fn get(&mut self, w: &World, path: &str) -> WebResponse {
        let r = block_on(handle(&self.request("GET", path), &w.cfg, &w.p));
        self.absorb(&r);
        r
    }

    /// A form posted from a page of this site.
    fn post(&mut self, w: &World, path: &str, form: &[(&str, &str)]) -> WebResponse {
        let mut r = self.request("POST", path);
        r.headers
            .push(("sec-fetch-site".into(), "same-origin".into()));
        r.body = form_body(form);
        let resp = block_on(handle(&r, &w.cfg, &w.p));
        self.absorb(&resp);
        resp
    }
}

fn form_body(form: &[(&str, &str)]) -> Vec<u8> {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in form {
        s.append_pair(k, v);
    }
    s.finish().into_bytes()
}

fn query_of(url: &str, name: &str) -> String {
    let q = url.split_once('?').map(|(_, q)| q).unwrap_or_default();
    form_urlencoded::parse(q.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// Signs in through `/connect`, the sandbox's login page and `/callback`;
/// returns the callback's response.
fn sign_in(w: &World, b: &mut Browser, username: &str, connect_path: &str) -> WebResponse {
    let start = b.get(w, connect_path);
    assert_eq!(start.status, 302, "{}", start.body_text());
    let to_exact = start.header("location").unwrap().to_owned();
    assert!(to_exact.starts_with(w.sandbox.base_url()), "{to_exact}");
    let state = query_of(&to_exact, "state");
    let app = w.cfg.exact.as_ref().unwrap().app_for(Region::Nl);
    let code = exact_sandbox::login::sign_in(&w.p.http, &app, username, username, &state).unwrap();
    let back: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("code", &code)
        .append_pair("state", &state)
        .finish();
    b.get(w, &format!("/callback?{back}"))
}

fn key_in(html: &str) -> String {
    let start = html.find("pmjb_").expect("a key on the page");
    html[start..start + 5 + 64].to_owned()
}

fn csrf_in(html: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = html.find(marker).expect("a csrf field") + marker.len();
    html[start..start + 64].to_owned()
}

#[test]
fn a_new_customer_signs_in_with_exact_gets_a_key_once_and_it_works() {
    let w = world();
    let mut b = Browser::default();
    let choice = b.get(&w, "/connect");
    assert_eq!(choice.status, 200);
    assert!(choice.body_text().contains("value=\"be\""), "region choice");

    let welcome = sign_in(&w, &mut b, "demo", "/connect?region=nl");
    assert_eq!(welcome.status, 200, "{}", welcome.body_text());
    let html = welcome.body_text();
    let key = key_in(&html);
    for want in [
        "Bakkerij De Gouden Croissant",
        "claude mcp add",
        "https://api.example.nl/mcp",
        "Welke facturen",
    ] {
        assert!(html.contains(want), "{want}");
    }
    assert!(b.cookies.iter().any(|(k, _)| k == "__Host-session"));
    assert!(
        !b.cookies.iter().any(|(k, _)| k == "__Host-login"),
        "cleared"
    );
    // The key is stored only as a hash and authenticates.
    let found = block_on(api_keys::find_active_by_secret(w.p.db(), &key)).unwrap();
    assert!(found.is_some());
    let rows = block_on(w.p.db().query(Statement::new(
        "SELECT COUNT(*) AS n FROM api_keys WHERE key_hash = ?",
        vec![key.clone().into()],
    )))
    .unwrap();
    assert_eq!(rows[0]["n"], 0, "the plain key is nowhere");

    // Signed in, the header offers the dashboard instead of signing in.
    let home = b.get(&w, "/").body_text();
    assert!(home.contains("href=\"/dashboard\">Dashboard</a>"), "{home}");
    assert!(
        !Browser::default()
            .get(&w, "/")
            .body_text()
            .contains(">Dashboard</a>")
    );

    // The dashboard, and the key list without the secret.
    let dash = b.get(&w, "/dashboard");
    assert_eq!(dash.status, 200);
    let html = dash.body_text();
    assert!(html.contains("Eerste sleutel") && !html.contains(&key));

    // The callback replayed: nothing happens.
    // (A second sign-in of the same login lands on the dashboard.)
    let again = sign_in(&w, &mut Browser::default(), "demo", "/connect?region=nl");
    assert_eq!(again.status, 303);
    assert_eq!(again.header("location"), Some("/dashboard"));
}

#[test]
fn a_replayed_or_foreign_state_and_a_denied_consent_land_on_clear_pages() {
    let w = world();
    let mut b = Browser::default();
    let start = b.get(&w, "/connect?region=nl");
    let state = query_of(start.header("location").unwrap(), "state");
    let app = w.cfg.exact.as_ref().unwrap().app_for(Region::Nl);
    let code = exact_sandbox::login::sign_in(&w.p.http, &app, "demo", "demo", &state).unwrap();
    let back = format!("/callback?code={code}&state={state}");
    // Another browser (no login cookie) cannot use it.
    let foreign = Browser::default().get(&w, &back);
    assert_eq!(foreign.status, 400);
    assert!(foreign.body_text().contains("verlopen"));
    assert_eq!(b.get(&w, &back).status, 200, "the right browser can");
    let replay = b.get(&w, &back);
    assert_eq!(replay.status, 400, "single use");
    let denied = b.get(&w, "/callback?error=access_denied&state=x");
    assert_eq!(denied.status, 400);
    assert!(denied.body_text().contains("toestemming"));
    let junk = b.get(&w, "/callback?code=&state=");
    assert_eq!(junk.status, 400);
    for r in [foreign, replay, denied, junk] {
        assert!(
            !r.body_text().to_lowercase().contains("error:"),
            "no cause shown"
        );
    }
}

#[test]
fn forms_need_this_origin_and_the_sessions_token_and_touch_only_the_own_account() {
    let w = world();
    let mut b = Browser::default();
    sign_in(&w, &mut b, "demo", "/connect?region=nl");
    let dash = b.get(&w, "/dashboard").body_text();
    let csrf = csrf_in(&dash);
    // Without the token, with a wrong one, and cross-site: refused.
    assert_eq!(b.post(&w, "/keys", &[("name", "x")]).status, 403);
    assert_eq!(
        b.post(&w, "/keys", &[("name", "x"), ("csrf", &"0".repeat(64))])
            .status,
        403
    );
    let mut cross = b.request("POST", "/keys");
    cross
        .headers
        .push(("sec-fetch-site".into(), "cross-site".into()));
    cross.body = form_body(&[("name", "x"), ("csrf", &csrf)]);
    assert_eq!(block_on(handle(&cross, &w.cfg, &w.p)).status, 403);
    // The genuine form works and shows the new key once.
    let created = b.post(&w, "/keys", &[("name", "Laptop"), ("csrf", &csrf)]);
    assert_eq!(created.status, 200);
    let key = key_in(&created.body_text());
    assert!(
        block_on(api_keys::find_active_by_secret(w.p.db(), &key))
            .unwrap()
            .is_some()
    );

    // Another customer cannot revoke this one's keys.
    let mut other = Browser::default();
    sign_in(&w, &mut other, "other", "/connect?region=nl");
    let other_csrf = csrf_in(&other.get(&w, "/dashboard").body_text());
    let mine = block_on(api_keys::find_active_by_secret(w.p.db(), &key))
        .unwrap()
        .unwrap();
    let r = other.post(
        &w,
        "/keys/revoke",
        &[("key", &mine.id), ("csrf", &other_csrf)],
    );
    assert_eq!(r.status, 303);
    assert!(
        block_on(api_keys::find_active_by_secret(w.p.db(), &key))
            .unwrap()
            .is_some()
    );
    // Its owner can; the key stops working at once.
    let r = b.post(&w, "/keys/revoke", &[("key", &mine.id), ("csrf", &csrf)]);
    assert_eq!(r.status, 303);
    assert!(
        block_on(api_keys::find_active_by_secret(w.p.db(), &key))
            .unwrap()
            .is_none()
    );
    // A CSRF token is bound to its session: the other's does not work here.
    assert_eq!(
        b.post(&w, "/keys", &[("name", "y"), ("csrf", &other_csrf)])
            .status,
        403
    );

    // Signing out ends the session on the server.
    assert_eq!(b.post(&w, "/signout", &[("csrf", &csrf)]).status, 303);
    let after = b.get(&w, "/dashboard");
    assert_eq!(after.status, 303);
    assert_eq!(
        after.header("location"),
        Some("/connect?return_to=%2Fdashboard")
    );
}

#[test]
fn a_foreign_return_to_is_ignored_and_a_local_one_is_followed() {
    let w = world();
    // The first sign-in shows the first-run page; sign in again to test
    // where a returning customer lands.
    sign_in(&w, &mut Browser::default(), "demo", "/connect?region=nl");
    let r = sign_in(
        &w,
        &mut Browser::default(),
        "demo",
        "/connect?region=nl&return_to=https%3A%2F%2Fevil.example%2F",
    );
    assert_eq!(r.header("location"), Some("/dashboard"));
    let r = sign_in(
        &w,
        &mut Browser::default(),
        "demo",
        "/connect?region=nl&return_to=%2F%2Fevil.example",
    );
    assert_eq!(r.header("location"), Some("/dashboard"));
    let r = sign_in(
        &w,
        &mut Browser::default(),
        "demo",
        "/connect?region=nl&return_to=%2Fdashboard%3Ftab%3Dkeys",
    );
    assert_eq!(r.header("location"), Some("/dashboard?tab=keys"));
}

#[test]
fn the_dashboard_manages_administrations_keys_preferences_and_deletes_the_account() {
    let w = world();
    let mut b = Browser::default();
    sign_in(&w, &mut b, "demo", "/connect?region=nl");
    let dash = b.get(&w, "/dashboard").body_text();
    let csrf = csrf_in(&dash);
    assert!(
        dash.contains("<svg"),
        "the usage chart is drawn on the server"
    );
    let user_id = {
        let rows = block_on(w.p.db().query(Statement::new(
            "SELECT id FROM users WHERE email = ?",
            vec!["jan@goudencroissant.example".into()],
        )))
        .unwrap();
        rows[0]["id"].as_str().unwrap().to_owned()
    };
    let admins = block_on(boekhouding_core::storage::administrations::all_for_user(
        w.p.db(),
        &user_id,
    ))
    .unwrap();
    // The free plan allows two; the demo login has three.
    let active: Vec<_> = admins.iter().filter(|a| a.is_active).collect();
    let inactive: Vec<_> = admins.iter().filter(|a| !a.is_active).collect();
    assert_eq!((active.len(), inactive.len()), (2, 1), "{admins:?}");
    let refused = b.post(
        &w,
        "/administrations/toggle",
        &[
            ("administration", &inactive[0].id),
            ("on", "1"),
            ("csrf", &csrf),
        ],
    );
    assert_eq!(refused.status, 409);
    assert!(
        refused
            .body_text()
            .contains("staat 2 actieve administraties toe")
    );
    let off = b.post(
        &w,
        "/administrations/toggle",
        &[
            ("administration", &active[1].id),
            ("on", "0"),
            ("csrf", &csrf),
        ],
    );
    assert_eq!(off.status, 303);
    let on = b.post(
        &w,
        "/administrations/toggle",
        &[
            ("administration", &inactive[0].id),
            ("on", "1"),
            ("csrf", &csrf),
        ],
    );
    assert_eq!(on.status, 303);
    let back = b.post(
        &w,
        "/administrations/toggle",
        &[
            ("administration", &active[1].id),
            ("on", "1"),
            ("csrf", &csrf),
        ],
    );
    assert_eq!(back.status, 409, "the cooldown");
    let d = b.post(
        &w,
        "/administrations/default",
        &[("administration", &inactive[0].id), ("csrf", &csrf)],
    );
    assert_eq!(d.status, 303);
    let now_default = block_on(boekhouding_core::storage::administrations::all_for_user(
        w.p.db(),
        &user_id,
    ))
    .unwrap()
    .into_iter()
    .find(|a| a.is_default)
    .unwrap();
    assert_eq!(now_default.id, inactive[0].id);

    // Rename the first key; preferences.
    let key = block_on(api_keys::list_for_user(w.p.db(), &user_id)).unwrap()[0].clone();
    let r = b.post(
        &w,
        "/keys/rename",
        &[("key", &key.id), ("name", "<b>Werk</b>"), ("csrf", &csrf)],
    );
    assert_eq!(r.status, 303);
    let html = b.get(&w, "/dashboard?done=renamed").body_text();
    assert!(
        html.contains("&lt;b&gt;Werk&lt;/b&gt;") || html.contains("&#60;b&#62;Werk"),
        "escaped"
    );
    assert!(!html.contains("<b>Werk</b>"));
    let r = b.post(
        &w,
        "/preferences",
        &[("locale", "en"), ("usage_warnings", "1"), ("csrf", &csrf)],
    );
    assert_eq!(r.status, 303);
    let prefs = block_on(boekhouding_core::storage::users::preferences(
        w.p.db(),
        &user_id,
    ))
    .unwrap()
    .unwrap();
    assert!(prefs.english && prefs.usage_warnings && !prefs.product_updates);

    // Deleting needs the word; then nothing of the user is left.
    let wrong = b.post(&w, "/account/delete", &[("confirm", "ja"), ("csrf", &csrf)]);
    assert_eq!(wrong.status, 400);
    let gone = b.post(
        &w,
        "/account/delete",
        &[("confirm", "verwijderen"), ("csrf", &csrf)],
    );
    assert_eq!(gone.status, 200, "{}", gone.body_text());
    for table in [
        "users WHERE id",
        "connections WHERE user_id",
        "api_keys WHERE user_id",
        "sessions WHERE user_id",
    ] {
        let rows = block_on(w.p.db().query(Statement::new(
            match table {
                "users WHERE id" => "SELECT COUNT(*) AS n FROM users WHERE id = ?",
                "connections WHERE user_id" => {
                    "SELECT COUNT(*) AS n FROM connections WHERE user_id = ?"
                }
                "api_keys WHERE user_id" => "SELECT COUNT(*) AS n FROM api_keys WHERE user_id = ?",
                _ => "SELECT COUNT(*) AS n FROM sessions WHERE user_id = ?",
            },
            vec![user_id.clone().into()],
        )))
        .unwrap();
        assert_eq!(rows[0]["n"], 0, "{table}");
    }
    assert_eq!(b.get(&w, "/dashboard").status, 303, "signed out");
}

#[test]
fn a_signed_in_customer_adds_another_exact_login_to_the_same_account() {
    let w = world();
    let mut b = Browser::default();
    sign_in(&w, &mut b, "demo", "/connect?region=nl");
    // Signed in, connect the Belgian site with another Exact login.
    let start = b.get(&w, "/connect?region=be");
    let state = query_of(start.header("location").unwrap(), "state");
    let app = w.cfg.exact.as_ref().unwrap().app_for(Region::Be);
    let code = exact_sandbox::login::sign_in(&w.p.http, &app, "other", "other", &state).unwrap();
    let back = b.get(&w, &format!("/callback?code={code}&state={state}"));
    assert_eq!(back.status, 303, "{}", back.body_text());
    let users = block_on(
        w.p.db()
            .query(Statement::new("SELECT COUNT(*) AS n FROM users", vec![])),
    )
    .unwrap();
    assert_eq!(users[0]["n"], 1, "no second account for the other login");
    let conns = block_on(w.p.db().query(Statement::new(
        "SELECT region FROM connections ORDER BY region",
        vec![],
    )))
    .unwrap();
    let regions: Vec<&str> = conns
        .iter()
        .map(|r| r["region"].as_str().unwrap())
        .collect();
    assert_eq!(regions, vec!["be", "nl"]);
    // Signing in again with that login (not signed in) finds the same
    // account by its Exact user id.
    let again = sign_in_at(&w, &mut Browser::default(), "other", Region::Be);
    assert_eq!(again.status, 303);
    let users = block_on(
        w.p.db()
            .query(Statement::new("SELECT COUNT(*) AS n FROM users", vec![])),
    )
    .unwrap();
    assert_eq!(users[0]["n"], 1);
}

#[test]
fn a_second_exact_login_at_the_same_site_is_listed_beside_the_first_and_a_held_one_is_refused() {
    let w = world();
    let mut b = Browser::default();
    sign_in(&w, &mut b, "demo", "/connect?region=nl");
    // Signed in, the same Dutch site with the bookkeeping office's login.
    let back = sign_in_at(&w, &mut b, "nieuw", Region::Nl);
    assert_eq!(back.status, 303, "{}", back.body_text());
    let conns = block_on(w.p.db().query(Statement::new(
        "SELECT exact_email FROM connections ORDER BY exact_email",
        vec![],
    )))
    .unwrap();
    let emails: Vec<&str> = conns
        .iter()
        .map(|r| r["exact_email"].as_str().unwrap())
        .collect();
    assert_eq!(
        emails,
        vec![
            "jan@goudencroissant.example",
            "sanne@administratiekantoor.example"
        ]
    );
    // The dashboard lists both logins and says through which one each
    // administration is read (both see 1000002 and 1000003).
    let page = b.get(&w, "/dashboard").body_text();
    assert!(
        page.contains("jan@goudencroissant.example (Nederland (exactonline.nl))"),
        "{page}"
    );
    assert!(
        page.contains("via sanne@administratiekantoor.example"),
        "{page}"
    );

    // Someone else's login is not taken over by a signed-in account.
    sign_in_at(&w, &mut Browser::default(), "other", Region::Nl);
    let refused = sign_in_at(&w, &mut b, "other", Region::Nl);
    assert_eq!(refused.status, 409);
    assert!(
        refused.body_text().contains("ander account"),
        "{}",
        refused.body_text()
    );
    let mine = block_on(w.p.db().query(Statement::new(
        "SELECT COUNT(*) AS n FROM connections c JOIN users u ON u.id = c.user_id
         WHERE u.email = 'jan@goudencroissant.example'",
        vec![],
    )))
    .unwrap();
    assert_eq!(mine[0]["n"], 2, "nothing stored for the refused login");
}

fn sign_in_at(w: &World, b: &mut Browser, username: &str, region: Region) -> WebResponse {
    let start = b.get(w, &format!("/connect?region={}", region.code()));
    let state = query_of(start.header("location").unwrap(), "state");
    let app = w.cfg.exact.as_ref().unwrap().app_for(region);
    let code = exact_sandbox::login::sign_in(&w.p.http, &app, username, username, &state).unwrap();
    b.get(w, &format!("/callback?code={code}&state={state}"))
}

/// Texts of the Dutch signed-in pages that must not appear on an English
/// one (a leftover would mean a text outside `i18n.rs`).
const DUTCH_LEFTOVERS: [&str; 24] = [
    "Ingelogd als",
    "Abonnement en gebruik",
    "vragen deze maand",
    "Koppelingen met Exact",
    "Opnieuw koppelen",
    "Administraties",
    "Aanzetten",
    "Uitzetten",
    "Maak standaard",
    "Begint met",
    "Laatst gebruikt",
    "nog niet gebruikt",
    "Hernoemen",
    "Intrekken",
    "Sleutel maken",
    "Recente vragen",
    "Voorkeuren",
    "Opslaan",
    "Uitloggen",
    "Account verwijderen",
    "Kopieer",
    "Kopiëren",
    "Inloggen",
    "Naar het dashboard",
];

fn assert_english(html: &str) {
    assert!(html.contains("<html lang=\"en\">"), "{html}");
    for dutch in DUTCH_LEFTOVERS {
        assert!(!html.contains(dutch), "Dutch {dutch:?} on an English page");
    }
}

fn user_id_of(w: &World, email: &str) -> String {
    let rows = block_on(w.p.db().query(Statement::new(
        "SELECT id FROM users WHERE email = ?",
        vec![email.into()],
    )))
    .unwrap();
    rows[0]["id"].as_str().unwrap().to_owned()
}

fn prefers_english(w: &World, user_id: &str) -> bool {
    block_on(boekhouding_core::storage::users::preferences(
        w.p.db(),
        user_id,
    ))
    .unwrap()
    .unwrap()
    .english
}

#[test]
fn an_english_sign_up_starts_in_english_and_every_signed_in_page_speaks_it() {
    let w = world();
    let mut b = Browser::default();
    // The English pages start signing in in English.
    let home = b.get(&w, "/en/").body_text();
    assert!(home.contains("href=\"/connect?lang=en\""), "{home}");
    assert!(!home.contains("href=\"/connect\""), "{home}");
    assert!(b.get(&w, "/").body_text().contains("href=\"/connect\""));
    let choice = b.get(&w, "/connect?lang=en").body_text();
    assert_english(&choice);
    assert!(choice.contains("Exact Online site"), "{choice}");
    assert!(
        choice.contains("<input type=\"hidden\" name=\"lang\" value=\"en\">"),
        "the region form carries the language"
    );
    assert!(
        choice.contains("href=\"/connect\" hreflang=\"nl\""),
        "{choice}"
    );

    // The first-run page, and the new user's preference.
    let welcome = sign_in(&w, &mut b, "demo", "/connect?region=nl&lang=en");
    assert_eq!(welcome.status, 200, "{}", welcome.body_text());
    let html = welcome.body_text();
    assert_english(&html);
    for want in [
        "Welcome",
        "Administrations found",
        "Your API key",
        "Copy it now",
        "Which invoices are still open",
        "Go to the dashboard",
    ] {
        assert!(html.contains(want), "{want}");
    }
    let user_id = user_id_of(&w, "jan@goudencroissant.example");
    assert!(prefers_english(&w, &user_id), "signed up in English");

    // The dashboard.
    let dash = b.get(&w, "/dashboard").body_text();
    assert_english(&dash);
    let resets = boekhouding_core::storage::usage::UsageMonth::of(w.p.clock.now()).resets_at();
    for want in [
        "Signed in as jan@goudencroissant.example",
        "Plan and usage",
        &format!(
            "0 of 200 questions this month; the count starts again on {}",
            resets.format("%-d %B %Y")
        ),
        "Connections with Exact Online",
        "Administrations",
        "Switch on",
        "First key",
        "not used yet",
        "Create key",
        "Recent questions",
        "Language of the portal and the e-mails",
        "type DELETE to confirm",
        "href=\"/en/pricing\"",
        // The header's switch changes the stored preference.
        "<form method=\"post\" action=\"/language\"",
    ] {
        assert!(dash.contains(want), "{want}\n{dash}");
    }
    let csrf = csrf_in(&dash);

    // A new key, a refused action and a refused form.
    let created = b.post(&w, "/keys", &[("name", "Laptop"), ("csrf", &csrf)]);
    assert_eq!(created.status, 200);
    let html = created.body_text();
    assert_english(&html);
    assert!(html.contains("New API key") && html.contains("Back to the dashboard"));
    let bad = b.post(&w, "/keys", &[("name", ""), ("csrf", &csrf)]);
    assert_eq!(bad.status, 400);
    assert!(
        bad.body_text()
            .contains("Give the key a name of 1 to 100 characters.")
    );
    assert_english(&bad.body_text());
    let forged = b.post(&w, "/keys", &[("name", "x")]);
    assert_eq!(forged.status, 403);
    assert_english(&forged.body_text());
    assert!(forged.body_text().contains("Request refused"));
    let unconfirmed = b.post(&w, "/account/delete", &[("confirm", "ja"), ("csrf", &csrf)]);
    assert_eq!(unconfirmed.status, 400);
    assert!(
        unconfirmed
            .body_text()
            .contains("Type DELETE to confirm the deletion")
    );
    let notice = b.get(&w, "/dashboard?done=renamed").body_text();
    assert!(notice.contains("The key has a new name."));

    // The rate limit's page follows the preference too.
    let limited = block_on(boekhouding_portal::account::too_many_requests(
        &b.request("POST", "/keys"),
        &w.p,
    ));
    assert_eq!(limited.status, 429);
    assert_english(&limited.body_text());
    assert!(limited.body_text().contains("Too many requests"));

    // Signing out lands on the English home page; deleting speaks English.
    let gone = b.post(
        &w,
        "/account/delete",
        &[("confirm", "DELETE"), ("csrf", &csrf)],
    );
    assert_eq!(gone.status, 200);
    assert_english(&gone.body_text());
    assert!(gone.body_text().contains("Account deleted"));
}

#[test]
fn the_preference_and_the_header_switch_change_the_language_of_the_next_page() {
    let w = world();
    let mut b = Browser::default();
    let welcome = sign_in(&w, &mut b, "demo", "/connect?region=nl");
    assert!(welcome.body_text().contains("<html lang=\"nl\">"));
    let user_id = user_id_of(&w, "jan@goudencroissant.example");
    assert!(!prefers_english(&w, &user_id), "signed up in Dutch");
    let dash = b.get(&w, "/dashboard").body_text();
    assert!(dash.contains("<html lang=\"nl\">") && dash.contains("Ingelogd als"));
    let csrf = csrf_in(&dash);

    // The preferences form: the dashboard it returns to is English.
    let saved = b.post(
        &w,
        "/preferences",
        &[("locale", "en"), ("usage_warnings", "1"), ("csrf", &csrf)],
    );
    assert_eq!(saved.header("location"), Some("/dashboard?done=saved"));
    let dash = b.get(&w, "/dashboard?done=saved").body_text();
    assert_english(&dash);
    assert!(dash.contains("Your preferences have been saved."));

    // The header's switch: a genuine POST, back to the page, in Dutch; the
    // mail choices stay as they were.
    assert_eq!(
        b.post(&w, "/language", &[("lang", "nl"), ("back", "/dashboard")])
            .status,
        403,
        "without the token nothing changes"
    );
    assert!(prefers_english(&w, &user_id));
    let switched = b.post(
        &w,
        "/language",
        &[("lang", "nl"), ("back", "/dashboard"), ("csrf", &csrf)],
    );
    assert_eq!(switched.status, 303);
    assert_eq!(switched.header("location"), Some("/dashboard"));
    let prefs = block_on(boekhouding_core::storage::users::preferences(
        w.p.db(),
        &user_id,
    ))
    .unwrap()
    .unwrap();
    assert!(!prefs.english && prefs.usage_warnings && !prefs.product_updates);
    let dash = b.get(&w, "/dashboard").body_text();
    assert!(dash.contains("<html lang=\"nl\">") && dash.contains("Abonnement en gebruik"));
    // A foreign place to return to is not followed.
    let r = b.post(
        &w,
        "/language",
        &[("lang", "en"), ("back", "//evil.example/"), ("csrf", &csrf)],
    );
    assert_eq!(r.header("location"), Some("/dashboard"));
    // Signed in, the region choice follows the preference, not the URL.
    let choice = b.get(&w, "/connect").body_text();
    assert!(choice.contains("<html lang=\"en\">"), "{choice}");
    assert!(choice.contains("action=\"/language\""));
    // Signing out lands on the home page of the user's language.
    let out = b.post(&w, "/signout", &[("csrf", &csrf)]);
    assert_eq!(out.header("location"), Some("/en/"));
}

#[test]
fn the_callback_pages_follow_the_language_the_sign_in_started_in() {
    let w = world();
    // A refusal at Exact, started from the English pages.
    let mut b = Browser::default();
    let start = b.get(&w, "/connect?region=nl&lang=en");
    let state = query_of(start.header("location").unwrap(), "state");
    let denied = b.get(&w, &format!("/callback?error=access_denied&state={state}"));
    assert_eq!(denied.status, 400);
    let html = denied.body_text();
    assert_english(&html);
    assert!(html.contains("You did not give permission"), "{html}");
    assert!(
        html.contains("href=\"/connect?lang=en\""),
        "retry in English"
    );
    // The refusal used the attempt up.
    let again = b.get(&w, &format!("/callback?code=x&state={state}"));
    assert_eq!(again.status, 400);
    assert!(
        again.body_text().contains("verlopen"),
        "no attempt, no language"
    );

    // A code Exact refuses, in English.
    let start = b.get(&w, "/connect?region=nl&lang=en");
    let state = query_of(start.header("location").unwrap(), "state");
    let refused = b.get(&w, &format!("/callback?code=bogus&state={state}"));
    assert_eq!(refused.status, 400);
    assert_english(&refused.body_text());
    assert!(
        refused
            .body_text()
            .contains("Exact Online refused the sign-in code")
    );

    // An attempt that is gone: the browser's own language decides.
    let mut r = Browser::default().request("GET", "/callback?code=x&state=y");
    r.headers
        .push(("accept-language".into(), "en-GB,en;q=0.9,nl;q=0.8".into()));
    let expired = block_on(handle(&r, &w.cfg, &w.p));
    assert_english(&expired.body_text());
    assert!(
        expired
            .body_text()
            .contains("This sign-in link has expired")
    );
    let unknown_region = b.get(&w, "/connect?region=xx&lang=en");
    assert_eq!(unknown_region.status, 400);
    assert_english(&unknown_region.body_text());
    assert!(unknown_region.body_text().contains("Unknown Exact site"));

    // A returning Dutch user signing in from the English pages keeps their
    // preference, and the place to return to arrives without the mark.
    sign_in(&w, &mut Browser::default(), "demo", "/connect?region=nl");
    let user_id = user_id_of(&w, "jan@goudencroissant.example");
    let back = sign_in(
        &w,
        &mut Browser::default(),
        "demo",
        "/connect?region=nl&lang=en&return_to=%2Foauth%2Fauthorize%3Fclient_id%3Da",
    );
    assert_eq!(back.status, 303);
    assert_eq!(
        back.header("location"),
        Some("/oauth/authorize?client_id=a")
    );
    let back = sign_in(
        &w,
        &mut Browser::default(),
        "demo",
        "/connect?region=nl&lang=en",
    );
    assert_eq!(back.header("location"), Some("/dashboard"));
    assert!(!prefers_english(&w, &user_id), "the stored choice stays");
}

/// A client's request to an OAuth endpoint (no cookies: clients are not
/// browsers).
fn client_post(w: &World, path: &str, content_type: &str, body: &str) -> WebResponse {
    let mut r = WebRequest::get(path);
    r.method = "POST".into();
    r.origin = ORIGIN.into();
    r.headers.push(("content-type".into(), content_type.into()));
    r.body = body.as_bytes().to_vec();
    block_on(handle(&r, &w.cfg, &w.p))
}

fn json_of(r: &WebResponse) -> serde_json::Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|_| panic!("{}", r.body_text()))
}

fn pkce() -> (&'static str, String) {
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    (
        verifier,
        boekhouding_core::authorization::s256_challenge(verifier),
    )
}

fn authorize_path(client_id: &str, redirect: &str, challenge: &str, state: &str) -> String {
    let q: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", redirect)
        .append_pair("code_challenge", challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("state", state)
        .append_pair("scope", "books:read claudeai")
        .append_pair("resource", "https://api.example.nl/mcp/")
        .finish();
    format!("/oauth/authorize?{q}")
}

/// An assistant connects through OAuth: it registers, a signed-out user
/// is sent to sign in and comes back to the consent page (a first sign-in
/// gets no API key page in between), chooses one administration, and the
/// code becomes tokens; the dashboard lists the assistant and revokes it.
/// A denied consent, a forged consent POST and an unknown client are
/// harmless.
#[test]
fn an_assistant_connects_through_oauth_with_the_administrations_the_user_chose() {
    let w = world();
    let redirect = "http://127.0.0.1:33418/callback";
    let registered = client_post(
        &w,
        "/oauth/register",
        "application/json",
        &serde_json::json!({
            "client_name": "<b>Assistent</b>",
            "redirect_uris": ["http://127.0.0.1/callback"],
            "token_endpoint_auth_method": "none",
        })
        .to_string(),
    );
    assert_eq!(registered.status, 201, "{}", registered.body_text());
    let client_id = json_of(&registered)["client_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (verifier, challenge) = pkce();
    let path = authorize_path(&client_id, redirect, &challenge, "st4te");

    // Signed out: to sign in, and back here (not to the first-run page).
    let mut b = Browser::default();
    let first = b.get(&w, &path);
    assert_eq!(first.status, 303, "{}", first.body_text());
    let to_connect = first.header("location").unwrap().to_owned();
    assert!(
        to_connect.starts_with("/connect?return_to="),
        "{to_connect}"
    );
    let back = sign_in(&w, &mut b, "nieuw", &format!("{to_connect}&region=nl"));
    assert_eq!(back.status, 303, "{}", back.body_text());
    assert_eq!(back.header("location"), Some(path.as_str()));

    let consent = b.get(&w, &path);
    assert_eq!(consent.status, 200, "{}", consent.body_text());
    let html = consent.body_text();
    assert!(
        html.contains("&#60;b&#62;Assistent&#60;/b&#62;"),
        "escaped name: {html}"
    );
    assert!(!html.contains("<b>Assistent"));
    assert!(html.contains("127.0.0.1"), "the redirect host is shown");
    assert!(
        consent
            .header("content-security-policy")
            .unwrap()
            .contains("form-action 'self' http://127.0.0.1:33418"),
        "the form may lead back to the client"
    );
    let choices: Vec<String> = html
        .match_indices("name=\"administration\" value=\"")
        .map(|(i, m)| html[i + m.len()..i + m.len() + 32].to_owned())
        .collect();
    assert!(choices.len() >= 2, "{html}");
    let csrf = csrf_in(&html);
    let request = path.trim_start_matches("/oauth/authorize?");

    // A consent POST without the session's token changes nothing.
    let forged = b.post(
        &w,
        "/oauth/authorize",
        &[("request", request), ("decision", "allow")],
    );
    assert_eq!(forged.status, 403);

    let allowed = b.post(
        &w,
        "/oauth/authorize",
        &[
            ("csrf", &csrf),
            ("request", request),
            ("administration", &choices[0]),
            ("decision", "allow"),
        ],
    );
    assert_eq!(allowed.status, 303, "{}", allowed.body_text());
    let location = allowed.header("location").unwrap().to_owned();
    assert!(location.starts_with(redirect), "{location}");
    assert_eq!(query_of(&location, "state"), "st4te");
    assert_eq!(query_of(&location, "iss"), ORIGIN);
    let code = query_of(&location, "code");

    let exchange = |code: &str| {
        let body: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "authorization_code")
            .append_pair("code", code)
            .append_pair("client_id", &client_id)
            .append_pair("redirect_uri", redirect)
            .append_pair("code_verifier", verifier)
            .append_pair("resource", "https://api.example.nl/mcp")
            .finish();
        client_post(
            &w,
            "/oauth/token",
            "application/x-www-form-urlencoded",
            &body,
        )
    };
    let tokens = exchange(&code);
    assert_eq!(tokens.status, 200, "{}", tokens.body_text());
    assert_eq!(tokens.header("cache-control"), Some("no-store"));
    let t = json_of(&tokens);
    assert!(t["access_token"].as_str().unwrap().starts_with("pmjb_at_"));
    assert_eq!(t["scope"], "books:read", "unknown scopes dropped");
    let access = t["access_token"].as_str().unwrap().to_owned();
    let record = block_on(boekhouding_core::authorization::tokens::lookup_access(
        w.p.db(),
        &access,
    ))
    .unwrap()
    .unwrap();
    assert_eq!(record.administration_ids, vec![choices[0].clone()]);

    // The dashboard lists the assistant (escaped) and revokes it.
    let dash = b.get(&w, "/dashboard").body_text();
    assert!(dash.contains("&#60;b&#62;Assistent&#60;/b&#62;"), "{dash}");
    assert!(!dash.contains("<b>Assistent"));
    let grant = record.grant_id.clone();
    let revoked = b.post(
        &w,
        "/apps/revoke",
        &[("csrf", &csrf_in(&dash)), ("grant", &grant)],
    );
    assert_eq!(revoked.status, 303);
    let after = block_on(boekhouding_core::authorization::tokens::lookup_access(
        w.p.db(),
        &access,
    ))
    .unwrap();
    assert!(after.is_none_or(|r| r.revoked_at.is_some()), "revoked");

    // Deny: access_denied back to the client, nothing issued.
    let path2 = authorize_path(&client_id, redirect, &challenge, "again");
    let csrf = csrf_in(&b.get(&w, &path2).body_text());
    let denied = b.post(
        &w,
        "/oauth/authorize",
        &[
            ("csrf", &csrf),
            ("request", path2.trim_start_matches("/oauth/authorize?")),
            ("decision", "deny"),
        ],
    );
    let location = denied.header("location").unwrap();
    assert_eq!(query_of(location, "error"), "access_denied");
    assert_eq!(query_of(location, "state"), "again");

    // An unknown client gets a page, never a redirect.
    let unknown = b.get(
        &w,
        &authorize_path("pmjb_client_nope", redirect, &challenge, "x"),
    );
    assert_eq!(unknown.status, 400);
    assert!(unknown.header("location").is_none());
    // And the metadata names this issuer exactly.
    let meta = b.get(&w, "/.well-known/oauth-authorization-server");
    assert_eq!(json_of(&meta)["issuer"], ORIGIN);
    // The code replayed: refused, and recorded as a hostile request.
    assert_eq!(exchange(&code).status, 400);
    // A redirect URI the client never registered: a page, and an event.
    let elsewhere = b.get(
        &w,
        &authorize_path(&client_id, "https://evil.example/cb", &challenge, "x"),
    );
    assert_eq!(elsewhere.status, 400);

    let audit: Vec<String> = trail(&w, "SELECT action FROM audit_log ORDER BY id")
        .iter()
        .map(|r| r["action"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        audit.ends_with(&[
            "oauth_grant_approved".to_owned(),
            "oauth_grant_revoked".to_owned()
        ]),
        "{audit:?}"
    );
    let reasons: Vec<String> = trail(&w, "SELECT details FROM security_events ORDER BY id")
        .iter()
        .map(|r| r["details"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(reasons[0].contains("csrf_failure"), "the forged consent");
    assert!(
        reasons[1].contains("oauth_invalid_grant"),
        "the replayed code"
    );
    assert!(reasons[2].contains("oauth_redirect_mismatch"));
}

/// After a downgrade the dashboard says which switched-on administration
/// the plan no longer serves (the one the tools stop reading), instead of
/// calling it simply "on".
#[test]
fn an_administration_beyond_a_smaller_plan_is_shown_as_not_served() {
    let w = world();
    let mut b = Browser::default();
    sign_in(&w, &mut b, "demo", "/connect?region=nl");
    let user_id: String = block_on(w.p.db().query(Statement::new(
        "SELECT id FROM users WHERE email = 'jan@goudencroissant.example'",
        vec![],
    )))
    .unwrap()[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let now = w.p.clock.now();
    use boekhouding_core::plan::Plan;
    use boekhouding_core::storage::{administrations, users};
    block_on(users::set_plan(w.p.db(), &user_id, Plan::Pro, now)).unwrap();
    for a in block_on(administrations::all_for_user(w.p.db(), &user_id)).unwrap() {
        block_on(administrations::set_active(
            w.p.db(),
            &user_id,
            &a.id,
            true,
            Plan::Pro,
            now,
        ))
        .unwrap();
    }
    let on_pro = b.get(&w, "/dashboard").body_text();
    assert!(
        !on_pro.contains("niet in je abonnement"),
        "pro serves all three"
    );
    block_on(users::set_plan(w.p.db(), &user_id, Plan::Free, now)).unwrap();
    let on_free = b.get(&w, "/dashboard").body_text();
    assert_eq!(
        on_free.matches("aan, maar niet in je abonnement").count(),
        1,
        "free serves two of the three"
    );
}

fn trail(w: &World, sql: &'static str) -> Vec<serde_json::Value> {
    block_on(w.p.db().query(Statement::new(sql, vec![])))
        .unwrap()
        .into_iter()
        .map(serde_json::Value::Object)
        .collect()
}

#[test]
fn account_actions_are_audited_and_refused_authentications_recorded() {
    let w = world();
    let mut b = Browser::default();
    let welcome = sign_in(&w, &mut b, "demo", "/connect?region=nl");
    let first_key = key_in(&welcome.body_text());
    let csrf = csrf_in(&b.get(&w, "/dashboard").body_text());
    let user = user_id_of(&w, "jan@goudencroissant.example");

    // A form without its token, and a cookie naming no session.
    assert_eq!(b.post(&w, "/keys", &[("name", "x")]).status, 403);
    let mut forged = Browser::default();
    forged
        .cookies
        .push(("__Host-session".into(), "f".repeat(43)));
    assert_eq!(forged.get(&w, "/dashboard").status, 303);

    let created = b.post(&w, "/keys", &[("name", "Laptop"), ("csrf", &csrf)]);
    let key = key_in(&created.body_text());
    let id = block_on(api_keys::find_active_by_secret(w.p.db(), &key))
        .unwrap()
        .unwrap()
        .id;
    b.post(
        &w,
        "/keys/rename",
        &[("key", &id), ("name", "Werkplek"), ("csrf", &csrf)],
    );
    b.post(&w, "/keys/revoke", &[("key", &id), ("csrf", &csrf)]);
    b.post(&w, "/signout", &[("csrf", &csrf)]);

    let audit = trail(
        &w,
        "SELECT actor_id, action, resource_type, resource_id, metadata, client_ip
           FROM audit_log ORDER BY id",
    );
    let actions: Vec<&str> = audit
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        vec![
            "signed_in",
            "key_created",
            "key_created",
            "key_renamed",
            "key_revoked",
            "signed_out"
        ],
        "{audit:#?}"
    );
    for row in &audit {
        assert_eq!(row["actor_id"], user.as_str());
        assert_eq!(row["client_ip"], CLIENT_IP);
    }
    assert_eq!(audit[2]["resource_id"], id.as_str());
    assert_eq!(audit[3]["metadata"], r#"{"name":"Werkplek"}"#);
    let all = format!("{audit:?}");
    assert!(
        !all.contains(&key) && !all.contains(&first_key),
        "no secret"
    );

    let events = trail(
        &w,
        "SELECT event_type, user_id, client_ip, details FROM security_events ORDER BY id",
    );
    assert_eq!(events.len(), 2, "{events:#?}");
    assert_eq!(events[0]["event_type"], "csrf_failure");
    assert_eq!(events[0]["user_id"], user.as_str());
    assert_eq!(events[1]["event_type"], "auth_failure");
    assert!(
        events[1]["details"]
            .as_str()
            .unwrap()
            .contains("invalid_session")
    );
    assert!(events.iter().all(|e| e["client_ip"] == CLIENT_IP));
}

#[test]
fn a_503_page_keeps_its_cause_for_the_operator_and_shows_none() {
    let w = world();
    let mut b = Browser::default();
    sign_in(&w, &mut b, "demo", "/connect?region=nl");
    w.p.db.fail_next(1);
    let page = b.get(&w, "/dashboard");
    assert_eq!(page.status, 503);
    let cause = page.cause.clone().unwrap_or_default();
    assert!(cause.contains("database unavailable"), "{cause:?}");
    assert!(!page.body_text().contains(&cause), "the cause is not shown");
    // A page that went well keeps none.
    assert_eq!(b.get(&w, "/dashboard").cause, None);
}
