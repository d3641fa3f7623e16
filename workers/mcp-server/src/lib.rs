//! The MCP server Worker: `/mcp` (Streamable HTTP), the OAuth protected
//! resource metadata (RFC 9728, path and root forms) and `/health`. Thin:
//! it authenticates, builds the adapters and hands the exchange to the
//! protocol engine in `boekhouding-mcp`.

use boekhouding_cf::d1::D1Executor;
use boekhouding_cf::platform::WorkerClock;
use boekhouding_cf::{bindings, edge, health};
use boekhouding_core::VERSION;
use boekhouding_mcp::auth::{AuthError, authenticate, challenge};
use boekhouding_mcp::engine::{Engine, ServerIdentity};
use boekhouding_mcp::http::{HttpCall, HttpReply, TransportPolicy, handle};
use boekhouding_mcp::tools::Bookkeeping;
use serde_json::json;
use worker::{Context, Env, Method, Request, Response, console_error, event};

const SERVICE: &str = "mcp-server";
const PRM_PATH: &str = "/.well-known/oauth-protected-resource";

const INSTRUCTIONS: &str = "Praat met je Boekhouding answers questions about the user's Exact Online books. \
Start with list_divisions to see the administrations (administraties) this account may use and which is the default. \
Every other tool takes an optional `division` code; without it the default administration is used. \
All tools only read; amounts are in euros, dates ISO 8601.";

/// The public origin of this Worker (configurable, else the request's).
fn public_origin(req: &Request, env: &Env) -> String {
    let configured = bindings::var_or(env, "PUBLIC_URL", "");
    if !configured.is_empty() {
        return configured.trim_end_matches('/').to_owned();
    }
    req.url()
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default()
}

fn prm(req: &Request, env: &Env) -> worker::Result<Response> {
    let origin = public_origin(req, env);
    let portal = bindings::var_or(env, "AUTH_PORTAL_URL", &origin);
    edge::json_response(
        200,
        &json!({
            "resource": format!("{origin}/mcp"),
            "authorization_servers": [portal],
            "scopes_supported": ["mcp:tools"],
            "bearer_methods_supported": ["header"],
            "resource_name": "Praat met je Boekhouding",
        }),
    )
}

fn to_response(reply: HttpReply) -> worker::Result<Response> {
    let mut response = match reply.body {
        Some(body) => Response::from_json(&body)?.with_status(reply.status),
        None => Response::empty()?.with_status(reply.status),
    };
    let headers = response.headers_mut();
    for (k, v) in reply.headers {
        headers.set(&k, &v)?;
    }
    headers.set("Cache-Control", "no-store")?;
    Ok(response)
}

async fn mcp(mut req: Request, env: &Env) -> worker::Result<Response> {
    let origin = public_origin(&req, env);
    let db = match D1Executor::from_env(env) {
        Ok(db) => db,
        Err(e) => {
            console_error!("{SERVICE}: {e}");
            return edge::json_response(
                503,
                &json!({"error": "unavailable", "message": "Service temporarily unavailable"}),
            );
        }
    };
    let authorization = req.headers().get("authorization")?;
    let mut principal = match authenticate(&db, authorization.as_deref()).await {
        Ok(p) => p,
        Err(AuthError::Storage(e)) => {
            console_error!("{SERVICE}: authentication lookup failed: {e}");
            return edge::json_response(
                503,
                &json!({"error": "unavailable", "message": "Service temporarily unavailable"}),
            );
        }
        Err(e) => {
            let mut r = edge::json_response(
                401,
                &json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32001, "message": "Authentication required: send Authorization: Bearer <API key>"}}),
            )?;
            r.headers_mut().set(
                "WWW-Authenticate",
                &challenge(&format!("{origin}{PRM_PATH}/mcp"), &e),
            )?;
            return Ok(r);
        }
    };
    principal.client_name = req.headers().get("user-agent")?;
    principal.request_id = Some(edge::request_id(&req));
    let headers: Vec<(String, String)> = req.headers().entries().collect();
    let body = if req.method() == Method::Post {
        req.bytes().await?
    } else {
        Vec::new()
    };
    let engine = Engine::new(ServerIdentity {
        name: "praat-met-je-boekhouding".into(),
        title: "Praat met je Boekhouding".into(),
        version: VERSION.into(),
        instructions: INSTRUCTIONS.into(),
    });
    let portal = bindings::var_or(env, "AUTH_PORTAL_URL", &origin);
    let clock = WorkerClock;
    let host = Bookkeeping {
        db: &db,
        clock: &clock,
        principal: &principal,
        portal_url: &portal,
    };
    let method = req.method().to_string();
    let policy = TransportPolicy {
        allowed_origins: bindings::var_or(
            env,
            "ALLOWED_ORIGINS",
            "https://claude.ai,https://chatgpt.com",
        )
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect(),
        ..TransportPolicy::default()
    };
    let reply = handle(
        &engine,
        &host,
        HttpCall {
            method: &method,
            headers: &headers,
            body: &body,
        },
        &policy,
    )
    .await;
    to_response(reply)
}

#[event(fetch)]
pub async fn fetch(req: Request, env: Env, _ctx: Context) -> worker::Result<Response> {
    let path = req.path();
    match (req.method(), path.as_str()) {
        (Method::Get, "/health") => health::respond(SERVICE, &env).await,
        (Method::Get, PRM_PATH) | (Method::Get, "/.well-known/oauth-protected-resource/mcp") => {
            prm(&req, &env)
        }
        (_, "/mcp") => mcp(req, &env).await,
        _ => edge::json_response(
            404,
            &json!({"error": "not_found", "message": format!("no route for {} {}", req.method(), path)}),
        ),
    }
}
