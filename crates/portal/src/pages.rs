//! The public pages: what the product does, how it keeps data safe, the
//! plans, the tool catalogue, set-up per assistant, the demo keys and the
//! status of the three Workers. Every figure on them comes from the code
//! that enforces it (plans from `core::plan`, tools from the MCP
//! catalogue, retention from the cron's configuration), so a page cannot
//! promise what the product does not do.

use askama::Template;
use boekhouding_core::cron::CronConfig;
use boekhouding_core::plan::{Limit, Plan, Price};
use boekhouding_core::ports::{HttpMethod, HttpRequest, HttpTransport};
use boekhouding_core::setup::{self, Place};
use boekhouding_core::storage::{login_states, sessions};
use serde_json::Value;

use crate::PortalConfig;
use crate::i18n::{Lang, Page, Texts};
use crate::web::WebResponse;

/// A link in the navigation.
#[derive(Debug)]
pub struct NavItem {
    pub href: &'static str,
    pub label: &'static str,
    pub current: bool,
}

/// What the layout needs on every page.
#[derive(Debug)]
pub struct Chrome {
    pub lang: Lang,
    pub t: &'static Texts,
    pub title: String,
    pub home: &'static str,
    pub nav: Vec<NavItem>,
    /// The language switch as a link to the same page in the other
    /// language (public pages, the region choice before signing in).
    pub switch_link: Option<String>,
    /// The language switch as a form that changes the signed-in user's
    /// stored preference (it changes state, so a POST with the CSRF
    /// token). Neither is shown on pages that cannot be shown again (a
    /// key shown once, a message about one request).
    pub switch_form: Option<SwitchForm>,
    /// Where signing in starts, in this language.
    pub connect_href: &'static str,
    /// Busts browser caches of the stylesheet and script on a new build.
    pub asset_version: &'static str,
    /// The browser holds a session cookie: the header offers the
    /// dashboard instead of signing in (the dashboard itself checks it).
    pub signed_in: bool,
}

impl Chrome {
    pub fn new(page: Option<Page>, lang: Lang, title: String) -> Self {
        Chrome {
            lang,
            t: lang.texts(),
            title,
            home: Page::Home.path(lang),
            nav: Page::ALL
                .into_iter()
                .filter(|p| *p != Page::Home)
                .map(|p| NavItem {
                    href: p.path(lang),
                    label: p.nav(lang),
                    current: Some(p) == page,
                })
                .collect(),
            switch_link: Some(page.unwrap_or(Page::Home).path(lang.other()).to_owned()),
            switch_form: None,
            connect_href: connect_path(lang),
            asset_version: crate::ASSET_VERSION,
            signed_in: false,
        }
    }

    /// The same chrome for a browser that holds a session.
    pub fn signed_in(mut self, yes: bool) -> Self {
        self.signed_in = yes;
        self
    }

    /// The language switch as a link to `href`, or none.
    pub fn switch_link(mut self, href: Option<String>) -> Self {
        self.switch_link = href;
        self.switch_form = None;
        self
    }

    /// The language switch as the preference form, returning to `back`.
    pub fn switch_form(mut self, csrf: String, back: &str) -> Self {
        self.switch_link = None;
        self.switch_form = Some(SwitchForm {
            csrf,
            back: back.to_owned(),
        });
        self
    }
}

/// The signed-in header's language switch: `POST /language`.
#[derive(Debug)]
pub struct SwitchForm {
    pub csrf: String,
    pub back: String,
}

/// Where signing in starts from a page in `lang`: the language travels
/// along through Exact and back (see `account::connect`).
pub const fn connect_path(lang: Lang) -> &'static str {
    match lang {
        Lang::Nl => "/connect",
        Lang::En => "/connect?lang=en",
    }
}

#[derive(Template)]
#[template(path = "home.html")]
struct Home {
    c: Chrome,
    facts: Vec<String>,
    demo_href: &'static str,
    security_href: &'static str,
    security_link: &'static str,
}

#[derive(Template)]
#[template(path = "security.html")]
struct Security {
    c: Chrome,
    facts: Vec<String>,
    retention_title: &'static str,
    what_label: &'static str,
    how_long_label: &'static str,
    retention: Vec<(String, String)>,
}

/// One plan as the pricing page shows it.
#[derive(Debug)]
pub struct PlanView {
    pub id: &'static str,
    pub name: &'static str,
    pub price: String,
    pub calls: String,
    pub administrations: String,
    pub keys: String,
}

#[derive(Template)]
#[template(path = "pricing.html")]
struct Pricing {
    c: Chrome,
    plans: Vec<PlanView>,
}

/// One tool of the catalogue.
#[derive(Debug)]
pub struct ToolView {
    pub name: String,
    pub title: String,
    pub summary: String,
}

#[derive(Template)]
#[template(path = "tools.html")]
struct Tools {
    c: Chrome,
    tools: Vec<ToolView>,
}

/// One assistant's set-up.
#[derive(Debug)]
pub struct SnippetView {
    pub slug: &'static str,
    pub name: &'static str,
    pub place: String,
    pub text: String,
}

#[derive(Template)]
#[template(path = "setup.html")]
struct Setup {
    c: Chrome,
    snippets: Vec<SnippetView>,
    copy_label: &'static str,
}

/// One demo company.
#[derive(Debug)]
pub struct DemoView {
    pub company: &'static str,
    pub key: &'static str,
    pub url: String,
}

#[derive(Template)]
#[template(path = "demo.html")]
struct Demo {
    c: Chrome,
    demos: Vec<DemoView>,
    claude_code: String,
    copy_label: &'static str,
}

/// One Worker's health on the status page.
#[derive(Debug)]
pub struct ServiceView {
    pub name: String,
    pub ok: bool,
    pub version: String,
}

#[derive(Template)]
#[template(path = "status.html")]
struct Status {
    c: Chrome,
    services: Vec<ServiceView>,
}

#[derive(Template)]
#[template(path = "not_found.html")]
struct NotFound {
    c: Chrome,
}

fn page_html(result: askama::Result<String>) -> WebResponse {
    match result {
        Ok(html) => WebResponse::html(200, html),
        // Templates are checked at compile time; rendering fails only on
        // a formatting error, which is ours, not the visitor's.
        Err(_) => WebResponse::html(
            500,
            "<!doctype html><title>Error</title><p>Error</p>".into(),
        ),
    }
}

fn copy_label(lang: Lang) -> &'static str {
    lang.texts().copy
}

/// What the product promises about data, each fact from the code.
fn safety_facts(lang: Lang) -> Vec<String> {
    let cfg = CronConfig::default();
    let days = |d: chrono::Duration| d.num_days();
    match lang {
        Lang::Nl => vec![
            "Alleen lezen: geen enkele tool kan iets in Exact Online wijzigen.".into(),
            "Je Exact Online-tokens worden versleuteld bewaard (AES-256-GCM, gebonden aan hun eigen rij).".into(),
            "API-sleutels, sessies en OAuth-tokens bewaren we alleen als SHA-256-hash; een sleutel zie je één keer.".into(),
            format!(
                "Gebruiksgegevens per vraag bewaren we {} dagen, daarna alleen als dagtotaal.",
                days(cfg.usage_retention)
            ),
            "Je kunt je account op elk moment verwijderen; dan verdwijnt alles van je, tokens eerst.".into(),
        ],
        Lang::En => vec![
            "Read-only: no tool can change anything in Exact Online.".into(),
            "Your Exact Online tokens are stored encrypted (AES-256-GCM, bound to their own row).".into(),
            "API keys, sessions and OAuth tokens are stored only as SHA-256 hashes; you see a key once.".into(),
            format!(
                "Per-question usage records are kept {} days, then only as daily totals.",
                days(cfg.usage_retention)
            ),
            "You can delete your account at any time; everything of yours goes, tokens first.".into(),
        ],
    }
}

fn retention(lang: Lang) -> Vec<(String, String)> {
    let cfg = CronConfig::default();
    let days = |d: chrono::Duration, nl: bool| {
        if nl {
            format!("{} dagen", d.num_days())
        } else {
            format!("{} days", d.num_days())
        }
    };
    let nl = lang == Lang::Nl;
    let minutes = login_states::LIFETIME.num_minutes();
    if nl {
        vec![
            (
                "Sessie in de browser (na laatste gebruik)".into(),
                days(sessions::LIFETIME, nl),
            ),
            (
                "Inlogpoging bij Exact die niet is afgerond".into(),
                format!("{minutes} minuten"),
            ),
            (
                "Gebruik per vraag (tijd, tool, uitkomst)".into(),
                days(cfg.usage_retention, nl),
            ),
            (
                "Ingetrokken API-sleutel (hash)".into(),
                days(cfg.revoked_key_retention, nl),
            ),
            (
                "Verstuurde e-mails en cronverslagen".into(),
                days(cfg.log_retention, nl),
            ),
            (
                "Exact-tokens en administraties".into(),
                "tot je de koppeling of je account verwijdert".into(),
            ),
        ]
    } else {
        vec![
            (
                "Browser session (after last use)".into(),
                days(sessions::LIFETIME, nl),
            ),
            (
                "Unfinished sign-in at Exact".into(),
                format!("{minutes} minutes"),
            ),
            (
                "Usage per question (time, tool, outcome)".into(),
                days(cfg.usage_retention, nl),
            ),
            (
                "Revoked API key (hash)".into(),
                days(cfg.revoked_key_retention, nl),
            ),
            (
                "Sent e-mails and cron reports".into(),
                days(cfg.log_retention, nl),
            ),
            (
                "Exact tokens and administrations".into(),
                "until you remove the connection or your account".into(),
            ),
        ]
    }
}

fn plan_name(plan: Plan) -> &'static str {
    match plan {
        Plan::Free => "Free",
        Plan::Starter => "Starter",
        Plan::Pro => "Pro",
        Plan::Enterprise => "Enterprise",
    }
}

/// The pricing table from `core::plan`, the one definition.
pub fn plan_views(lang: Lang) -> Vec<PlanView> {
    let t = lang.texts();
    let limit = |l: Limit| match l {
        Limit::Capped(n) => thousands(u64::from(n), lang),
        Limit::Unlimited => t.unlimited.to_owned(),
    };
    Plan::ALL
        .into_iter()
        .map(|plan| {
            let l = plan.limits();
            PlanView {
                id: plan.as_str(),
                name: plan_name(plan),
                price: match l.price {
                    Price::MonthlyEuroCents(c) => {
                        format!("€ {} {}", euros(c, lang), t.per_month)
                    }
                    Price::OnRequest => t.on_request.to_owned(),
                },
                calls: limit(l.monthly_tool_calls),
                administrations: limit(l.administrations),
                keys: limit(l.api_keys),
            }
        })
        .collect()
}

pub fn thousands(n: u64, lang: Lang) -> String {
    let sep = if lang == Lang::Nl { '.' } else { ',' };
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(sep);
        }
        out.push(ch);
    }
    out
}

fn euros(cents: u32, lang: Lang) -> String {
    let (whole, rest) = (cents / 100, cents % 100);
    // Dutch prices read "€ 9,-"; English ones "€ 9.00".
    match lang {
        Lang::Nl if rest == 0 => format!("{whole},-"),
        Lang::Nl => format!("{whole},{rest:02}"),
        Lang::En => format!("{whole}.{rest:02}"),
    }
}

/// The tool catalogue from the MCP server's own definitions.
pub fn tool_views() -> Vec<ToolView> {
    boekhouding_mcp::tools::catalogue()
        .into_iter()
        .filter_map(|def| {
            let name = def.get("name")?.as_str()?.to_owned();
            let title = def
                .get("title")
                .and_then(Value::as_str)
                .unwrap_or(&name)
                .to_owned();
            let description = def.get("description").and_then(Value::as_str).unwrap_or("");
            Some(ToolView {
                summary: first_sentence(description),
                name,
                title,
            })
        })
        .collect()
}

fn first_sentence(text: &str) -> String {
    match text.find(". ") {
        Some(i) => text[..=i].to_owned(),
        None => text.to_owned(),
    }
}

/// The sample key the public set-up page shows.
pub const SAMPLE_KEY: &str = "pmjb_JOUW_SLEUTEL";

pub fn snippet_views(mcp_url: &str, key: &str, lang: Lang) -> Vec<SnippetView> {
    let t = lang.texts();
    setup::snippets(mcp_url, key)
        .into_iter()
        .map(|s| SnippetView {
            slug: s.assistant.slug(),
            name: s.assistant.name(),
            place: match s.place {
                Place::Terminal => t.setup_terminal.to_owned(),
                Place::ConfigFile(path) => format!("{} {path}:", t.setup_file),
                Place::ConnectorUrl => t.setup_connector.to_owned(),
            },
            text: s.text,
        })
        .collect()
}

/// Renders a public page.
pub async fn public(
    page: Page,
    lang: Lang,
    cfg: &PortalConfig,
    http: &impl HttpTransport,
    signed_in: bool,
) -> WebResponse {
    let c = Chrome::new(Some(page), lang, page.title(lang).to_owned()).signed_in(signed_in);
    let t = lang.texts();
    match page {
        Page::Home => page_html(
            Home {
                c,
                facts: safety_facts(lang).into_iter().take(3).collect(),
                demo_href: Page::Demo.path(lang),
                security_href: Page::Security.path(lang),
                security_link: match lang {
                    Lang::Nl => "Alles over veiligheid en bewaartermijnen",
                    Lang::En => "All about security and retention",
                },
            }
            .render(),
        ),
        Page::Security => page_html(
            Security {
                c,
                facts: safety_facts(lang),
                retention_title: match lang {
                    Lang::Nl => "Wat we bewaren, en hoe lang",
                    Lang::En => "What we keep, and for how long",
                },
                what_label: match lang {
                    Lang::Nl => "Gegeven",
                    Lang::En => "Data",
                },
                how_long_label: match lang {
                    Lang::Nl => "Bewaartermijn",
                    Lang::En => "Kept for",
                },
                retention: retention(lang),
            }
            .render(),
        ),
        Page::Pricing => page_html(
            Pricing {
                c,
                plans: plan_views(lang),
            }
            .render(),
        ),
        Page::Tools => page_html(
            Tools {
                c,
                tools: tool_views(),
            }
            .render(),
        ),
        Page::Setup => page_html(
            Setup {
                c,
                snippets: snippet_views(&cfg.mcp_url(), SAMPLE_KEY, lang),
                copy_label: copy_label(lang),
            }
            .render(),
        ),
        Page::Demo => {
            let demos = cfg
                .demo_keys
                .iter()
                .map(|(key, company)| DemoView {
                    company,
                    key,
                    url: format!("{}/demo/{key}", cfg.mcp_origin),
                })
                .collect::<Vec<_>>();
            let first = demos.first().map(|d| d.key).unwrap_or("pmjb_demo_bakkerij");
            let claude_code = setup::snippets(&cfg.mcp_url(), first)
                .into_iter()
                .next()
                .map(|s| s.text)
                .unwrap_or_default();
            page_html(
                Demo {
                    c,
                    demos,
                    claude_code,
                    copy_label: copy_label(lang),
                }
                .render(),
            )
        }
        Page::Status => {
            let mut services = Vec::with_capacity(cfg.health_urls.len());
            for (name, url) in &cfg.health_urls {
                services.push(health_of(http, name, url).await);
            }
            let ok = services.iter().all(|s| s.ok);
            let _ = t;
            let mut r = page_html(Status { c, services }.render());
            if !ok {
                r = r.with_header("X-Status", "degraded");
            }
            r
        }
    }
}

/// One Worker's `/health`, read server-side (the page needs no script).
async fn health_of(http: &impl HttpTransport, name: &str, url: &str) -> ServiceView {
    let answer = http
        .send(HttpRequest {
            method: HttpMethod::Get,
            url: url.to_owned(),
            headers: vec![("Accept".into(), "application/json".into())],
            body: None,
        })
        .await;
    let (ok, version) = match answer {
        Ok(r) if r.status == 200 => {
            let v: Value = serde_json::from_str(&r.body).unwrap_or(Value::Null);
            let version = [v.get("version"), v.get("commit")]
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(" · ");
            (true, version)
        }
        _ => (false, String::new()),
    };
    ServiceView {
        name: name.to_owned(),
        ok,
        version,
    }
}

/// The 404 page, in the language the path suggests.
pub fn not_found(path: &str) -> WebResponse {
    let lang = if path.starts_with("/en/") {
        Lang::En
    } else {
        Lang::Nl
    };
    let title = match lang {
        Lang::Nl => "Niet gevonden",
        Lang::En => "Not found",
    };
    let mut r = page_html(
        NotFound {
            c: Chrome::new(None, lang, title.into()),
        }
        .render(),
    );
    r.status = 404;
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_and_counts_are_written_the_local_way() {
        assert_eq!(thousands(2_500, Lang::Nl), "2.500");
        assert_eq!(thousands(2_500, Lang::En), "2,500");
        assert_eq!(thousands(750, Lang::Nl), "750");
        assert_eq!(thousands(1_000_000, Lang::Nl), "1.000.000");
        assert_eq!(euros(900, Lang::Nl), "9,-");
        assert_eq!(euros(2_550, Lang::En), "25.50");
        assert_eq!(euros(900, Lang::En), "9.00");
        assert_eq!(euros(0, Lang::En), "0.00");
    }
}
