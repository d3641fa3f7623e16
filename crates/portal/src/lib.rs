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

pub mod i18n;
pub mod pages;
pub mod web;

use boekhouding_core::ports::HttpTransport;

use crate::i18n::Page;
use crate::web::{WebRequest, WebResponse};

/// Changes with every build of the assets, so browsers fetch new ones.
pub const ASSET_VERSION: &str = env!("CARGO_PKG_VERSION");

const SITE_CSS: &str = include_str!("../static/site.css");
const SITE_JS: &str = include_str!("../static/site.js");

/// What the portal needs to know about its deployment.
#[derive(Debug, Clone)]
pub struct PortalConfig {
    /// The MCP server's public origin (no trailing slash).
    pub mcp_origin: String,
    /// `(name, /health URL)` of each Worker, for the status page.
    pub health_urls: Vec<(String, String)>,
    /// The public demo keys and the company each opens.
    pub demo_keys: Vec<(&'static str, &'static str)>,
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

/// Answers one request.
pub async fn handle(
    req: &WebRequest,
    cfg: &PortalConfig,
    http: &impl HttpTransport,
) -> WebResponse {
    let get = matches!(req.method.as_str(), "GET" | "HEAD");
    if get {
        match req.path.as_str() {
            "/static/site.css" => return WebResponse::asset("text/css; charset=utf-8", SITE_CSS),
            "/static/site.js" => {
                return WebResponse::asset("text/javascript; charset=utf-8", SITE_JS);
            }
            _ => {}
        }
        if let Some((page, lang)) = Page::from_path(&req.path) {
            return pages::public(page, lang, cfg, http).await;
        }
        return pages::not_found(&req.path);
    }
    if Page::from_path(&req.path).is_some() {
        return WebResponse::html(405, String::new()).with_header("Allow", "GET, HEAD");
    }
    pages::not_found(&req.path)
}
