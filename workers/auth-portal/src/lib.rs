//! The auth portal Worker: the customer portal (`boekhouding-portal`), and
//! `/health`. Thin: it reads the request into the portal's `WebRequest`
//! (body capped at the edge), builds the configuration and the outbound
//! transport, and writes the portal's `WebResponse` back.

use std::time::Duration;

use boekhouding_cf::fetch::FetchTransport;
use boekhouding_cf::{bindings, edge, health};
use boekhouding_portal::web::{WebRequest, WebResponse};
use boekhouding_portal::{DEMO_COMPANIES, PortalConfig, handle};
use worker::{Context, Env, Method, Request, Response, event};

const SERVICE: &str = "auth-portal";

/// Forms are small; anything larger is refused before it is read.
const MAX_BODY_BYTES: usize = 64 * 1024;

#[event(fetch)]
pub async fn fetch(mut req: Request, env: Env, _ctx: Context) -> worker::Result<Response> {
    if req.method() == Method::Get && req.path() == "/health" {
        return health::respond(SERVICE, &env).await;
    }
    let web = match read(&mut req).await {
        Ok(w) => w,
        Err(status) => return to_response(WebResponse::html(status, String::new())),
    };
    let cfg = config(&env, &web);
    // The status page reads the Workers' health: a stuck one must not
    // hold the page.
    let http = FetchTransport::new(Duration::from_secs(3));
    to_response(handle(&web, &cfg, &http).await)
}

async fn read(req: &mut Request) -> Result<WebRequest, u16> {
    let url = req.url().map_err(|_| 400u16)?;
    let body = if matches!(req.method(), Method::Post) {
        edge::read_body(req, MAX_BODY_BYTES)
            .await
            .map_err(|_| 413u16)?
    } else {
        Vec::new()
    };
    Ok(WebRequest {
        method: req.method().to_string(),
        path: url.path().to_owned(),
        query: url.query().unwrap_or_default().to_owned(),
        headers: req
            .headers()
            .entries()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect(),
        body,
    })
}

/// The deployment's settings: `MCP_URL` (the MCP server's public origin;
/// default: this origin with port 8787 locally) and `HEALTH_URLS`
/// (`name=url` pairs, comma-separated) for the status page.
fn config(env: &Env, req: &WebRequest) -> PortalConfig {
    let own = req
        .header("host")
        .map(|h| format!("http://{h}"))
        .unwrap_or_default();
    let mcp_origin = bindings::var_or(env, "MCP_URL", &own);
    let health_urls = bindings::var_or(env, "HEALTH_URLS", "")
        .split(',')
        .filter_map(|pair| pair.trim().split_once('='))
        .map(|(name, url)| (name.trim().to_owned(), url.trim().to_owned()))
        .collect();
    PortalConfig {
        mcp_origin: mcp_origin.trim_end_matches('/').to_owned(),
        health_urls,
        demo_keys: DEMO_COMPANIES.to_vec(),
    }
}

fn to_response(web: WebResponse) -> worker::Result<Response> {
    let status = web.status;
    let mut response = Response::from_bytes(web.body)?.with_status(status);
    let headers = response.headers_mut();
    for (name, value) in &web.headers {
        headers.append(name, value)?;
    }
    Ok(response)
}
