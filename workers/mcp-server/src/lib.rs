//! The MCP server Worker: `/mcp` (Streamable HTTP), the OAuth protected
//! resource metadata and `/health`. Thin: routing and edge mapping only.

use boekhouding_cf::{edge, health};
use worker::{Context, Env, Method, Request, Response, event};

const SERVICE: &str = "mcp-server";

#[event(fetch)]
pub async fn fetch(req: Request, env: Env, _ctx: Context) -> worker::Result<Response> {
    match (req.method(), req.path().as_str()) {
        (Method::Get, "/health") => health::respond(SERVICE, &env).await,
        _ => not_found(&req),
    }
}

fn not_found(req: &Request) -> worker::Result<Response> {
    edge::json_response(
        404,
        &serde_json::json!({
            "error": "not_found",
            "message": format!("no route for {} {}", req.method(), req.path()),
        }),
    )
}
