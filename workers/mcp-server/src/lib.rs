//! The MCP server Worker: `/mcp` (Streamable HTTP), the OAuth protected
//! resource metadata (RFC 9728, path and root forms) and `/health`. Thin:
//! it authenticates, builds the adapters and hands the exchange to the
//! protocol engine in `boekhouding-mcp`.

use boekhouding_cf::d1::D1Executor;
use boekhouding_cf::fetch::FetchTransport;
use boekhouding_cf::kv::OptionalCache;
use boekhouding_cf::platform::{WorkerClock, WorkerRandomness, WorkerSleep};
use boekhouding_cf::{bindings, edge, health};
use boekhouding_core::VERSION;

use boekhouding_core::ports::Clock;
use boekhouding_core::storage::StorageError;
use boekhouding_core::storage::usage::{self, UsageMonth};
use boekhouding_mcp::auth::{AuthError, authenticate, challenge};
use boekhouding_mcp::engine::{Engine, ServerIdentity};
use boekhouding_mcp::http::{HttpCall, HttpReply, TransportPolicy, handle};
use boekhouding_mcp::tools::{Bookkeeping, ExactSettings, Platform};
use serde_json::json;
use worker::{Context, Env, Method, Request, Response, console_error, event};

const SERVICE: &str = "mcp-server";
const PRM_PATH: &str = "/.well-known/oauth-protected-resource";

const INSTRUCTIONS: &str = "Praat met je Boekhouding answers questions about the user's Exact Online books. \
Start with list_divisions to see the administrations (administraties) this account may use and which is the default. \
Every other tool takes an optional `division` code; without it the default administration is used. \
All tools only read; amounts are in euros, dates ISO 8601.";

/// The platform adapters behind the tools.
struct WorkerPlatform {
    db: D1Executor,
    clock: WorkerClock,
    http: FetchTransport,
    rng: WorkerRandomness,
    sleep: WorkerSleep,
    cache: OptionalCache,
}

impl Platform for WorkerPlatform {
    type Db = D1Executor;
    type Clock = WorkerClock;
    type Http = FetchTransport;
    type Rng = WorkerRandomness;
    type Sleep = WorkerSleep;
    type Cache = OptionalCache;
    fn db(&self) -> &D1Executor {
        &self.db
    }
    fn clock(&self) -> &WorkerClock {
        &self.clock
    }
    fn http(&self) -> &FetchTransport {
        &self.http
    }
    fn rng(&self) -> &WorkerRandomness {
        &self.rng
    }
    fn sleep(&self) -> &WorkerSleep {
        &self.sleep
    }
    fn cache(&self) -> &OptionalCache {
        &self.cache
    }
    fn report(&self, what: &str) {
        console_error!("{SERVICE}: {what}");
    }
}

/// Exact settings from the environment; `None` (Exact tools then say so)
/// when the keyring or the app registration is missing or malformed.
fn exact_settings(env: &Env) -> Option<ExactSettings> {
    match bindings::exact_settings(env) {
        Ok(s) => Some(s),
        // Not configured at all: the tools say so; misconfigured: logged.
        Err(bindings::ExactSettingsError::NoKey | bindings::ExactSettingsError::NoApp) => None,
        Err(e) => {
            console_error!("{SERVICE}: {e}");
            None
        }
    }
}

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

/// Failures of this Worker's own plumbing, answered through the edge once.
#[derive(Debug, thiserror::Error)]
enum ServerError {
    #[error("database unavailable")]
    Database(#[source] StorageError),
}

impl edge::EdgeError for ServerError {
    fn status(&self) -> u16 {
        match self {
            ServerError::Database(_) => 503,
        }
    }
    fn code(&self) -> &'static str {
        match self {
            ServerError::Database(_) => "unavailable",
        }
    }
    fn public_message(&self) -> String {
        match self {
            ServerError::Database(_) => {
                "Service temporarily unavailable; try again shortly.".into()
            }
        }
    }
}

async fn mcp(mut req: Request, env: &Env) -> worker::Result<Response> {
    let origin = public_origin(&req, env);
    let request_id = edge::request_id(&req);
    let db = match D1Executor::from_env(env) {
        Ok(db) => db,
        Err(e) => {
            return edge::error_response(SERVICE, &request_id, &ServerError::Database(e));
        }
    };
    let platform = WorkerPlatform {
        db,
        clock: WorkerClock,
        http: FetchTransport::default(),
        rng: WorkerRandomness,
        sleep: WorkerSleep,
        cache: OptionalCache::from_env(env),
    };
    let authorization = req.headers().get("authorization")?;
    let mut principal = match authenticate(platform.db(), authorization.as_deref()).await {
        Ok(p) => p,
        Err(AuthError::Storage(e)) => {
            return edge::error_response(SERVICE, &request_id, &ServerError::Database(e));
        }
        // The MCP authorization challenge (a JSON-RPC error body and
        // RFC 9728's WWW-Authenticate), not an internal failure.
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
    principal.request_id = Some(request_id);
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
    let settings = exact_settings(env);
    let host = Bookkeeping {
        platform: &platform,
        principal: &principal,
        portal_url: &portal,
        exact: settings.as_ref(),
    };
    let method = req.method().to_string();
    // Browsers may call from the configured origins and this server's own.
    let mut allowed_origins: Vec<String> = bindings::var_or(
        env,
        "ALLOWED_ORIGINS",
        "https://claude.ai,https://chatgpt.com",
    )
    .split(',')
    .map(|s| s.trim().to_owned())
    .filter(|s| !s.is_empty())
    .collect();
    allowed_origins.push(origin.clone());
    let policy = TransportPolicy {
        allowed_origins,
        loopback: bindings::var_or(env, bindings::ENVIRONMENT, "local") == "local",
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
    let mut response = to_response(reply)?;
    // The plan's monthly tool-call budget, as clients expect to see it.
    let now = platform.clock.now();
    let month = UsageMonth::of(now);
    if let Ok(used) = usage::monthly_calls(platform.db(), &principal.user_id, month).await {
        let limit = principal.plan.limits().monthly_tool_calls;
        let headers = response.headers_mut();
        headers.set("X-RateLimit-Limit", &limit.to_string())?;
        if let Some(left) = limit.remaining(used) {
            headers.set("X-RateLimit-Remaining", &left.to_string())?;
        }
        headers.set(
            "X-RateLimit-Reset",
            &month.resets_at().timestamp().to_string(),
        )?;
    }
    Ok(response)
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
