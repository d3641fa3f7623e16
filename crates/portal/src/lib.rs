//! The customer portal without the Workers runtime: routing, pages
//! (askama templates, compiled and auto-escaped), the web's security rules
//! (headers, cookies, same-origin checks) over core's ports. The
//! auth-portal Worker reads a request into a [`web::WebRequest`], calls
//! [`handle`] and writes the [`web::WebResponse`] back; native tests call
//! [`handle`] directly.
//!
//! Layout: `web` (request and response), `i18n` (the two languages and
//! their texts), `pages` (the public pages). Business rules (plans, keys,
//! administrations, sessions) live in `boekhouding-core`.

pub mod account;
pub mod billing;
pub mod chart;
pub mod i18n;
pub mod oauth;
pub mod pages;
pub mod trail;
pub mod web;

use boekhouding_core::access::ExactSettings;
use boekhouding_core::csrf::PortalSecret;
use boekhouding_core::ports::{Clock, HttpTransport, Randomness, Sleep};
use boekhouding_core::storage::SqlExecutor;

use crate::i18n::Page;
use crate::web::{WebRequest, WebResponse};

/// Changes with every build of the assets, so browsers fetch new ones.
pub const ASSET_VERSION: &str = env!("CARGO_PKG_VERSION");

const SITE_CSS: &str = include_str!("../static/site.css");
const SITE_JS: &str = include_str!("../static/site.js");

/// The effects the portal uses, as one bundle of ports.
pub trait PortalPlatform {
    type Db: SqlExecutor;
    type Http: HttpTransport;
    type Clock: Clock;
    type Rng: Randomness;
    type Sleep: Sleep;
    fn db(&self) -> &Self::Db;
    fn http(&self) -> &Self::Http;
    fn clock(&self) -> &Self::Clock;
    fn rng(&self) -> &Self::Rng;
    /// Deadlines (a client metadata document's fetch).
    fn sleep(&self) -> &Self::Sleep;
}

/// What the portal needs to know about its deployment.
#[derive(Debug)]
pub struct PortalConfig {
    /// The MCP server's public origin (no trailing slash).
    pub mcp_origin: String,
    /// `(name, /health URL)` of each Worker, for the status page.
    pub health_urls: Vec<(String, String)>,
    /// The public demo keys and the company each opens.
    pub demo_keys: Vec<(&'static str, &'static str)>,
    /// Exact's app registration and the token keyring (`None`: signing in
    /// is unavailable and says so).
    pub exact: Option<ExactSettings>,
    /// `PORTAL_SECRET`, the key of CSRF tokens (`None`: forms refused).
    pub secret: Option<PortalSecret>,
    /// The OAuth authorization server's issuer and resource (`None`: its
    /// endpoints answer 503).
    pub oauth: Option<oauth::OAuthSettings>,
    /// Stripe (`None`: paying is unavailable and says so).
    pub stripe: Option<boekhouding_core::billing::stripe::StripeConfig>,
}

impl PortalConfig {
    /// The MCP endpoint assistants connect to.
    pub fn mcp_url(&self) -> String {
        format!("{}/mcp", self.mcp_origin.trim_end_matches('/'))
    }
}

/// The four public demo companies (the MCP server's demo keys).
pub const DEMO_COMPANIES: [(&str, &str); 4] = [
    ("pmjb_demo_bakkerij", "Bakkerij De Gouden Croissant B.V."),
    ("pmjb_demo_it", "TechVision Consultancy B.V."),
    ("pmjb_demo_advocaat", "Van der Berg & Partners Advocaten"),
    ("pmjb_demo_aannemer", "Bouwbedrijf De Fundatie B.V."),
];

/// Whether a request costs enough (a sign-in at Exact, a new key) to be
/// counted against the client address's budget before it is answered.
pub fn is_rate_limited(req: &WebRequest) -> bool {
    match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/connect") => req.query_param("region").is_some(),
        ("GET", "/callback" | "/connect/callback") => true,
        ("POST", "/keys") => true,
        ("POST", _) if oauth::is_registration(req) => true,
        _ => false,
    }
}

/// The paths of the route table below (besides the public pages and the
/// authorization server's), for [`route_name`].
const ROUTES: &[&str] = &[
    "/static/site.css",
    "/static/site.js",
    "/connect",
    "/callback",
    "/connect/callback",
    "/dashboard",
    "/keys",
    "/keys/revoke",
    "/signout",
    "/keys/rename",
    "/administrations/toggle",
    "/administrations/default",
    "/preferences",
    "/language",
    "/account/delete",
    "/apps/revoke",
    "/billing/checkout",
    "/billing/portal",
    "/stripe/webhook",
    "/billing/upgrade",
    "/billing/success",
    "/.well-known/oauth-authorization-server",
    "/.well-known/openid-configuration",
    boekhouding_core::authorization::metadata::paths::AUTHORIZE,
    boekhouding_core::authorization::metadata::paths::TOKEN,
    boekhouding_core::authorization::metadata::paths::REGISTER,
    boekhouding_core::authorization::metadata::paths::REVOKE,
];

/// The name a request's log line gives its route: the path when it is one
/// of the portal's own (none holds an id or a code), else
/// `boekhouding_core::observe::UNMATCHED_ROUTE`, so what a client puts in
/// an unknown path never reaches the log.
pub fn route_name(path: &str) -> &'static str {
    if let Some(known) = ROUTES.iter().find(|r| **r == path) {
        return known;
    }
    match Page::from_path(path) {
        Some((page, lang)) => page.path(lang),
        None => boekhouding_core::observe::UNMATCHED_ROUTE,
    }
}

/// Answers one request: the route table.
pub async fn handle<P: PortalPlatform>(req: &WebRequest, cfg: &PortalConfig, p: &P) -> WebResponse {
    if let Some(answer) = oauth::route(req, cfg, p).await {
        return answer;
    }
    let get = matches!(req.method.as_str(), "GET" | "HEAD");
    let post = req.method == "POST";
    match (get, req.path.as_str()) {
        (true, "/static/site.css") => WebResponse::asset("text/css; charset=utf-8", SITE_CSS),
        (true, "/static/site.js") => WebResponse::asset("text/javascript; charset=utf-8", SITE_JS),
        (true, "/connect") => account::connect(req, cfg, p).await,
        (true, "/callback" | "/connect/callback") => account::callback(req, cfg, p).await,
        (true, "/dashboard") => account::dashboard(req, cfg, p).await,
        (false, "/keys") if post => account::create_key(req, cfg, p).await,
        (false, "/keys/revoke") if post => account::revoke_key(req, cfg, p).await,
        (false, "/signout") if post => account::sign_out(req, cfg, p).await,
        (false, "/keys/rename") if post => account::rename_key(req, cfg, p).await,
        (false, "/administrations/toggle") if post => {
            account::toggle_administration(req, cfg, p).await
        }
        (false, "/administrations/default") if post => {
            account::default_administration(req, cfg, p).await
        }
        (false, "/preferences") if post => account::save_preferences(req, cfg, p).await,
        (false, "/language") if post => account::set_language(req, cfg, p).await,
        (false, "/account/delete") if post => account::delete_account(req, cfg, p).await,
        (false, "/apps/revoke") if post => oauth::revoke_app(req, cfg, p).await,
        (false, "/billing/checkout") if post => billing::checkout(req, cfg, p).await,
        (false, "/billing/portal") if post => billing::manage(req, cfg, p).await,
        (false, "/stripe/webhook") if post => billing::webhook_endpoint(req, cfg, p).await,
        (true, "/billing/upgrade") => billing::upgrade_page(req, cfg, p).await,
        (true, "/billing/success") => billing::success(req, p).await,
        (true, path) => match Page::from_path(path) {
            Some((page, lang)) => {
                let session = req.cookie(account::SESSION_COOKIE).is_some();
                pages::public(page, lang, cfg, p.http(), session).await
            }
            None => pages::not_found(path),
        },
        (false, path) => {
            if Page::from_path(path).is_some() || matches!(path, "/dashboard" | "/connect") {
                WebResponse::html(405, String::new()).with_header("Allow", "GET, HEAD")
            } else {
                pages::not_found(path)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_is_named_by_its_own_path_and_an_unknown_path_never_appears() {
        assert_eq!(route_name("/keys/revoke"), "/keys/revoke");
        assert_eq!(route_name("/oauth/token"), "/oauth/token");
        assert_eq!(route_name("/en/"), "/en/");
        assert_eq!(route_name("/en"), "/en/");
        for hostile in [
            "/keys/pmjb_0123456789abcdef",
            "/callback/code-5f2e9c",
            "/jan@example.nl",
        ] {
            assert_eq!(
                route_name(hostile),
                boekhouding_core::observe::UNMATCHED_ROUTE
            );
        }
        for page in Page::ALL {
            for lang in [i18n::Lang::Nl, i18n::Lang::En] {
                assert_eq!(route_name(page.path(lang)), page.path(lang));
            }
        }
    }
}
