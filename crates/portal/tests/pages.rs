//! The public pages rendered natively: both languages, the security
//! headers, figures taken from the code that enforces them, the status
//! page over a scripted transport, and escaping of whatever a Worker's
//! `/health` might say.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::RefCell;

use boekhouding_core::plan::{Limit, Plan};
use boekhouding_core::ports::{
    BinaryResponse, HttpRequest, HttpResponse, HttpTransport, TransportError,
};
use boekhouding_core::storage::NoDatabase;
use boekhouding_core::testing::{FakeClock, RecordingSleep, SeededRandomness};
use boekhouding_portal::i18n::{Lang, Page};
use boekhouding_portal::web::{CSP, WebRequest, WebResponse};
use boekhouding_portal::{DEMO_COMPANIES, PortalConfig, PortalPlatform, handle};
use futures::executor::block_on;

/// Public pages need no database: every statement is refused.
struct Public {
    http: Script,
    clock: FakeClock,
    rng: SeededRandomness,
    sleep: RecordingSleep,
}

impl PortalPlatform for Public {
    type Db = NoDatabase;
    type Http = Script;
    type Clock = FakeClock;
    type Rng = SeededRandomness;
    type Sleep = RecordingSleep;
    fn sleep(&self) -> &RecordingSleep {
        &self.sleep
    }
    fn db(&self) -> &NoDatabase {
        &NoDatabase
    }
    fn http(&self) -> &Script {
        &self.http
    }
    fn clock(&self) -> &FakeClock {
        &self.clock
    }
    fn rng(&self) -> &SeededRandomness {
        &self.rng
    }
}

fn public(http: Script) -> Public {
    Public {
        http,
        clock: FakeClock::at(chrono::Utc::now()),
        rng: SeededRandomness::new(1),
        sleep: RecordingSleep::default(),
    }
}

/// Answers `/health` requests from a script: URL → (status, body).
#[derive(Default)]
struct Script(RefCell<Vec<(String, u16, String)>>);

impl HttpTransport for Script {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        let found = self
            .0
            .borrow()
            .iter()
            .find(|(url, _, _)| *url == request.url)
            .cloned();
        match found {
            Some((_, status, body)) => Ok(HttpResponse {
                status,
                headers: vec![],
                body,
            }),
            None => Err(TransportError::Network("connection refused".into())),
        }
    }
    async fn send_binary(
        &self,
        _: HttpRequest,
        _: usize,
    ) -> Result<BinaryResponse, TransportError> {
        Err(TransportError::Network("not used".into()))
    }
}

fn config() -> PortalConfig {
    PortalConfig {
        mcp_origin: "https://api.example.nl".into(),
        health_urls: vec![
            ("mcp-server".into(), "http://mcp/health".into()),
            ("auth-portal".into(), "http://portal/health".into()),
            ("token-cron".into(), "http://cron/health".into()),
        ],
        demo_keys: DEMO_COMPANIES.to_vec(),
        exact: None,
        secret: None,
        oauth: None,
        stripe: None,
    }
}

fn get(path: &str) -> WebResponse {
    block_on(handle(
        &WebRequest::get(path),
        &config(),
        &public(Script::default()),
    ))
}

#[test]
fn every_public_page_answers_in_both_languages_with_the_security_headers() {
    for page in Page::ALL {
        for lang in [Lang::Nl, Lang::En] {
            let path = page.path(lang);
            let r = get(path);
            assert_eq!(r.status, 200, "{path}");
            let html = r.body_text();
            assert!(
                html.contains(&format!("<html lang=\"{}\">", lang.code())),
                "{path}"
            );
            assert!(html.contains(page.title(lang)), "{path}");
            // The language switch leads to the same page.
            assert!(
                html.contains(&format!("href=\"{}\"", page.path(lang.other()))),
                "{path}"
            );
            assert_eq!(r.header("content-security-policy"), Some(CSP));
            assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
            assert_eq!(r.header("referrer-policy"), Some("same-origin"));
            assert!(!html.contains("<script>"), "no inline script: {path}");
            assert!(!html.contains("style="), "no inline style: {path}");
        }
    }
}

#[test]
fn pricing_shows_every_plan_as_core_defines_it() {
    let html = get("/en/pricing").body_text();
    for plan in Plan::ALL {
        assert!(html.contains(&format!("id=\"plan-{}\"", plan.as_str())));
        if let Limit::Capped(n) = plan.limits().monthly_tool_calls {
            let shown = if n >= 1000 {
                format!("{},{:03}", n / 1000, n % 1000)
            } else {
                n.to_string()
            };
            assert!(
                html.contains(&format!("<strong>{shown}</strong>")),
                "{plan:?}"
            );
        }
    }
    let nl = get("/prijzen").body_text();
    assert!(nl.contains("<strong>2.500</strong>"), "Dutch thousands");
}

#[test]
fn the_tool_catalogue_lists_every_tool_the_mcp_server_serves() {
    let html = get("/tools").body_text();
    let tools = boekhouding_mcp::tools::catalogue();
    assert!(tools.len() >= 50);
    for t in tools {
        let name = t["name"].as_str().unwrap();
        assert!(html.contains(&format!("<code>{name}</code>")), "{name}");
    }
}

#[test]
fn set_up_covers_every_assistant_and_the_demo_page_every_demo_key() {
    let html = get("/en/setup").body_text();
    for a in boekhouding_core::setup::Assistant::ALL {
        assert!(
            html.contains(&format!("id=\"setup-{}\"", a.slug())),
            "{a:?}"
        );
    }
    assert!(html.contains("https://api.example.nl/mcp"));
    let demo = get("/demo").body_text();
    for (key, _) in DEMO_COMPANIES {
        assert!(
            demo.contains(&format!("https://api.example.nl/demo/{key}")),
            "{key}"
        );
    }
    assert!(demo.contains("Bakkerij De Gouden Croissant B.V."));
}

#[test]
fn the_demo_keys_are_the_mcp_servers_own() {
    let served: Vec<&str> = exact_sandbox::demo::KEYS.iter().map(|(k, _)| *k).collect();
    let shown: Vec<&str> = DEMO_COMPANIES.iter().map(|(k, _)| *k).collect();
    assert_eq!(served, shown);
}

#[test]
fn the_status_page_reads_each_health_and_escapes_what_it_says() {
    let script = Script::default();
    script.0.borrow_mut().extend([
        (
            "http://mcp/health".to_owned(),
            200,
            r#"{"status":"ok","version":"0.1.0","commit":"<script>alert(1)</script>"}"#.to_owned(),
        ),
        (
            "http://portal/health".to_owned(),
            200,
            r#"{"status":"ok","version":"0.1.0"}"#.to_owned(),
        ),
        ("http://cron/health".to_owned(), 503, "{}".to_owned()),
    ]);
    let r = block_on(handle(
        &WebRequest::get("/en/status"),
        &config(),
        &public(script),
    ));
    let html = r.body_text();
    assert_eq!(r.header("x-status"), Some("degraded"));
    assert!(!html.contains("<script>alert(1)</script>"));
    assert!(html.contains("alert(1)"), "shown: {html}");
    assert_eq!(html.matches("class=\"ok\"").count(), 2, "{html}");
    assert_eq!(html.matches("class=\"down\"").count(), 1);
}

#[test]
fn unknown_paths_are_404_pages_and_writes_to_pages_are_refused() {
    let r = get("/en/no-such-page");
    assert_eq!(r.status, 404);
    assert!(r.body_text().contains("<html lang=\"en\">"));
    assert_eq!(get("/nergens").status, 404);
    let mut post = WebRequest::get("/prijzen");
    post.method = "POST".into();
    let r = block_on(handle(&post, &config(), &public(Script::default())));
    assert_eq!(r.status, 405);
    let css = get("/static/site.css");
    assert_eq!(css.status, 200);
    assert!(css.header("content-type").unwrap().starts_with("text/css"));
}

#[test]
fn sign_ins_callbacks_and_new_keys_count_against_the_address_budget() {
    let limited = |method: &str, path: &str| {
        let mut r = WebRequest::get(path);
        r.method = method.into();
        boekhouding_portal::is_rate_limited(&r)
    };
    assert!(limited("GET", "/connect?region=nl"));
    assert!(limited("GET", "/callback?code=x&state=y"));
    assert!(limited("POST", "/keys"));
    assert!(!limited("GET", "/connect"), "the region choice is free");
    assert!(!limited("GET", "/"));
    assert!(!limited("GET", "/dashboard"));
}

#[test]
fn the_region_choice_may_send_its_form_on_to_exact_and_nowhere_else() {
    let mut cfg = config();
    cfg.exact = Some(boekhouding_core::access::ExactSettings {
        keyring: boekhouding_core::crypto::TokenKeyring::from_config(
            "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
        )
        .unwrap(),
        client_id: "c".into(),
        client_secret: boekhouding_core::crypto::Secret::new("s"),
        redirect_uri: "https://portal.example.nl/callback".into(),
        base_url_override: None,
    });
    let r = block_on(handle(
        &WebRequest::get("/connect"),
        &cfg,
        &public(Script::default()),
    ));
    let csp = r.header("content-security-policy").unwrap();
    assert!(
        csp.contains("form-action 'self' https://start.exactonline.nl"),
        "{csp}"
    );
    assert!(csp.contains("https://start.exactonline.be"), "{csp}");
    // Every other page keeps forms on this site.
    assert!(
        get("/")
            .header("content-security-policy")
            .unwrap()
            .contains("form-action 'self';")
    );
}
