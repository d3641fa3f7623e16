//! The MCP server Worker: `/mcp` (Streamable HTTP), the OAuth protected
//! resource metadata (RFC 9728, path and root forms) and `/health`. Thin:
//! it authenticates, builds the adapters and hands the exchange to the
//! protocol engine in `boekhouding-mcp`.
//!
//! Demo keys (`pmjb_demo_…`, one per demo company, as a bearer credential
//! or in the URL `/demo/{key}`) are answered from the sandbox's books
//! generated inside this isolate: no database, no KV, no
//! Exact, no metering. `DEMO_MODE=off` turns them away; `DEMO_TODAY` pins
//! the books' "today" (default: the current date).

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use boekhouding_cf::d1::{D1Executor, RequestDb};
use boekhouding_cf::fetch::FetchTransport;
use boekhouding_cf::kv::OptionalCache;
use boekhouding_cf::observe::AnalyticsMetrics;
use boekhouding_cf::platform::{WorkerClock, WorkerRandomness, WorkerSleep, run_to_completion};
use boekhouding_cf::{bindings, edge, health, observe};
use boekhouding_core::VERSION;
use boekhouding_core::access::{AccessError, FreshAccess, RefreshJob};
use boekhouding_core::caller::LoadedCaller;
use boekhouding_core::counting::Counting;
use boekhouding_core::observe::RequestLog;

use boekhouding_core::authorization::metadata::{
    Issuer, McpResource, paths, protected_resource_metadata,
};
use boekhouding_core::ports::{
    BinaryResponse, Clock, HttpRequest, HttpResponse, HttpTransport, TransportError,
};
use boekhouding_core::storage::error_log::Service;
use boekhouding_core::storage::security_events::{self, SecurityEvent, SecurityRecord};
use boekhouding_core::storage::usage::{self, UsageMonth};
use boekhouding_core::storage::{NoDatabase, SqlExecutor, Statement, StorageError};
use boekhouding_mcp::auth::{self, AuthError, challenge};
use boekhouding_mcp::engine::{Engine, ServerIdentity};
use boekhouding_mcp::http::{
    HttpCall, HttpReply, TransportPolicy, body_too_large, handle, refused_origin,
};
use boekhouding_mcp::tools::{
    Bookkeeping, DemoTenant, ExactSettings, Platform, Principal, is_metered_tool, rpc_summary,
};
use exact_sandbox::books::Books;
use exact_sandbox::demo::{self, DemoTransport};
use serde_json::json;
use worker::{Context, Env, Method, Request, Response, console_error, event};

const SERVICE: &str = "mcp-server";
const PRM_PATH: &str = "/.well-known/oauth-protected-resource";

const INSTRUCTIONS: &str = "Praat met je Boekhouding answers questions about the user's Exact Online books. \
Start with list_divisions to see the administrations (administraties) this account may use and which is the default. \
Every other tool takes an optional `division` code; without it the default administration is used. \
All tools only read; amounts are in euros, dates ISO 8601.";

/// A request's way to Exact: `fetch` for customers, the in-isolate books
/// for a demo.
enum RequestHttp {
    Fetch(FetchTransport),
    Demo(DemoTransport<Arc<Books>>),
}

impl HttpTransport for RequestHttp {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        match self {
            RequestHttp::Fetch(f) => f.send(request).await,
            RequestHttp::Demo(d) => d.send(request).await,
        }
    }
    async fn send_binary(
        &self,
        request: HttpRequest,
        max_bytes: usize,
    ) -> Result<BinaryResponse, TransportError> {
        match self {
            RequestHttp::Fetch(f) => f.send_binary(request, max_bytes).await,
            RequestHttp::Demo(d) => d.send_binary(request, max_bytes).await,
        }
    }
}

/// A request's database: counted (round trips and statements, for the log
/// line and, locally, the response headers) and, locally, slowed by
/// `D1_DELAY_MS` per round trip to imitate a distant D1.
type CountedDb = Counting<RequestDb, WorkerSleep>;

/// A request's way to Exact, counted for the log line and the tool call's
/// data point.
type CountedHttp = Counting<RequestHttp>;

/// The platform adapters behind the tools.
struct WorkerPlatform {
    db: CountedDb,
    clock: WorkerClock,
    http: CountedHttp,
    rng: WorkerRandomness,
    sleep: WorkerSleep,
    cache: OptionalCache,
    /// For work that must outlive a disconnecting client (`None`: demo).
    detach: Option<(Rc<Context>, Env)>,
    /// The customer loaded in the request's one round trip (`None`: demo).
    loaded: Option<LoadedCaller>,
    /// Writes collected for the batch after the answer.
    after: RefCell<Vec<Statement>>,
    /// The request's id, on every line it logs.
    request_id: String,
}

impl Platform for WorkerPlatform {
    type Db = CountedDb;
    type Clock = WorkerClock;
    type Http = CountedHttp;
    type Rng = WorkerRandomness;
    type Sleep = WorkerSleep;
    type Cache = OptionalCache;
    fn db(&self) -> &CountedDb {
        &self.db
    }
    fn clock(&self) -> &WorkerClock {
        &self.clock
    }
    fn http(&self) -> &CountedHttp {
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
        console_error!("{SERVICE} request {}: {what}", self.request_id);
    }
    fn loaded(&self) -> Option<&LoadedCaller> {
        self.loaded.as_ref()
    }
    /// Collected, and sent in one batch in `ctx.wait_until` once the
    /// response is built (`write_after_answer`).
    async fn after_answer(&self, stmts: Vec<Statement>) {
        self.after.borrow_mut().extend(stmts);
    }

    /// The refresh runs in `ctx.wait_until` over its own adapters, so a
    /// client that disconnects cannot cut it between Exact's rotation and
    /// the store.
    async fn refresh_detached(&self, job: RefreshJob) -> Result<FreshAccess, AccessError> {
        let Some((ctx, env)) = &self.detach else {
            return job.run(&self.db, &self.http, &self.rng, &self.sleep).await;
        };
        let env = env.clone();
        let timeout = self.fetch_timeout();
        let work = async move {
            let db = D1Executor::from_env(&env)?;
            job.run(
                &db,
                &FetchTransport::new(timeout),
                &WorkerRandomness,
                &WorkerSleep,
            )
            .await
        };
        run_to_completion(ctx, work)
            .await
            .unwrap_or(Err(AccessError::LeaseBusy))
    }
}

impl WorkerPlatform {
    fn fetch_timeout(&self) -> std::time::Duration {
        match self.http.inner() {
            RequestHttp::Fetch(f) => f.timeout(),
            RequestHttp::Demo(_) => std::time::Duration::from_secs(20),
        }
    }
}

thread_local! {
    /// The demo books of this isolate, built once per "today" and shared by
    /// its requests; each company is generated the first time it is read.
    static DEMO_BOOKS: RefCell<Option<Arc<Books>>> = const { RefCell::new(None) };
}

/// This isolate's demo books for `today`.
fn demo_books(today: chrono::NaiveDate) -> Arc<Books> {
    DEMO_BOOKS.with(|cell| {
        let mut slot = cell.borrow_mut();
        match slot.as_ref() {
            Some(b) if b.config.today == today => Arc::clone(b),
            _ => {
                let config = exact_sandbox::DataConfig {
                    today,
                    ..exact_sandbox::default_data()
                };
                let books = Arc::new(Books::lazy(config, demo::BASE_URL));
                *slot = Some(Arc::clone(&books));
                books
            }
        }
    })
}

/// The platform and principal of a demo key, or `None` when it is not a
/// known demo key or demo mode is off.
fn demo_request(env: &Env, key: &str, request_id: &str) -> Option<(WorkerPlatform, Principal)> {
    if bindings::var_or(env, "DEMO_MODE", "on") == "off" {
        return None;
    }
    let now = WorkerClock.now();
    let today = bindings::var_or(env, "DEMO_TODAY", "")
        .parse::<chrono::NaiveDate>()
        .unwrap_or_else(|_| now.date_naive());
    let books = demo_books(today);
    let user = demo::login_for(&books, key)?;
    let tenant = DemoTenant::new(
        demo::BASE_URL,
        &user.full_name,
        &user.email,
        &demo::administrations(&user),
        user.current_division,
        now,
    );
    let platform = WorkerPlatform {
        db: Counting::with_delay(RequestDb::None(NoDatabase), WorkerSleep, 0),
        clock: WorkerClock,
        http: Counting::new(RequestHttp::Demo(DemoTransport::new(books, user))),
        rng: WorkerRandomness,
        sleep: WorkerSleep,
        cache: OptionalCache(None),
        detach: None,
        loaded: None,
        after: RefCell::new(Vec::new()),
        request_id: request_id.to_owned(),
    };
    Some((platform, Principal::demo(key, tenant)))
}

/// What the demo limiter says about one request.
enum DemoAdmission {
    Admitted,
    /// This address used its budget: 429.
    Limited,
    /// No limiter to ask (binding missing or failing): 503. Demo keys are
    /// public, so without a limiter the demo is closed, never unbounded.
    Unavailable,
}

/// Demo keys are public, so each client address gets the `DEMO_LIMITER`
/// binding's budget (requests per period).
async fn demo_admission(env: &Env, req: &Request) -> DemoAdmission {
    let limiter = match env.rate_limiter(bindings::DEMO_LIMITER) {
        Ok(limiter) => limiter,
        Err(e) => {
            console_error!("{SERVICE}: demo rate limiter binding missing: {e}");
            return DemoAdmission::Unavailable;
        }
    };
    let address = req
        .headers()
        .get("cf-connecting-ip")
        .ok()
        .flatten()
        .unwrap_or_else(|| "unknown".into());
    match limiter.limit(format!("demo:{address}")).await {
        Ok(outcome) if outcome.success => DemoAdmission::Admitted,
        Ok(_) => DemoAdmission::Limited,
        Err(e) => {
            console_error!("{SERVICE}: demo rate limiter: {e}");
            DemoAdmission::Unavailable
        }
    }
}

/// The bearer credential of an `Authorization` header.
fn bearer(authorization: Option<&str>) -> Option<&str> {
    let (scheme, credential) = authorization?.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| credential.trim())
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
    match (mcp_resource(&origin), Issuer::parse(&portal)) {
        (Some(resource), Ok(issuer)) => {
            let mut r = edge::json_response(200, &protected_resource_metadata(&resource, &issuer))?;
            r.headers_mut().set("Access-Control-Allow-Origin", "*")?;
            Ok(r)
        }
        _ => {
            console_error!("{SERVICE}: PUBLIC_URL or AUTH_PORTAL_URL is not a valid https URL");
            edge::json_response(
                503,
                &json!({"error": "unavailable", "message": "the authorization metadata is not configured"}),
            )
        }
    }
}

/// This server's MCP endpoint as the OAuth resource (`None` when the
/// configured origin is not a usable URL: then no OAuth token is taken).
fn mcp_resource(origin: &str) -> Option<McpResource> {
    McpResource::parse(&format!("{origin}/mcp")).ok()
}

/// 401 (no or a bad credential) or 403 (a missing scope), with the
/// challenge that tells a client where to get a token and for what.
fn refuse(
    error: &AuthError,
    resource: Option<&McpResource>,
    origin: &str,
) -> worker::Result<Response> {
    let message = match error {
        AuthError::InsufficientScope(_) => {
            "Forbidden: the access token lacks the scope this server needs".to_owned()
        }
        AuthError::KeyBeyondPlan(cap) => format!(
            "Forbidden: your plan allows {cap} API keys and this one is newer than those; the newest keys stop first when a plan gets smaller. Revoke a key or upgrade in the portal's dashboard."
        ),
        _ => {
            "Authentication required: sign in through OAuth or send Authorization: Bearer <API key>"
                .to_owned()
        }
    };
    let mut r = edge::json_response(
        error.http_status(),
        &json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32001, "message": message}}),
    )?;
    let value = match resource {
        Some(resource) => challenge(resource, error),
        None => format!("Bearer resource_metadata=\"{origin}{PRM_PATH}/mcp\""),
    };
    r.headers_mut().set("WWW-Authenticate", &value)?;
    // Browser-based clients must be able to read the challenge.
    r.headers_mut()
        .set("Access-Control-Expose-Headers", "WWW-Authenticate")?;
    Ok(r)
}

/// The client's address as Cloudflare saw it.
fn client_ip(req: &Request) -> Option<String> {
    req.headers().get("cf-connecting-ip").ok().flatten()
}

/// The security event of a refused credential: an API key or an OAuth
/// access token (by its prefix), kept as a short hash prefix only.
fn failed_authentication(req: &Request, authorization: Option<&str>) -> Statement {
    let credential = bearer(authorization);
    let access_token = boekhouding_core::crypto::CredentialKind::OAuthAccessToken.prefix();
    let event = if credential.is_some_and(|c| c.starts_with(access_token)) {
        SecurityEvent::InvalidOAuthToken
    } else {
        SecurityEvent::InvalidApiKey
    };
    let ip = client_ip(req);
    let agent = req.headers().get("user-agent").ok().flatten();
    security_events::insert_statement(
        &SecurityRecord::new(event, ip.as_deref())
            .user_agent(agent.as_deref())
            .presented(credential),
        WorkerClock.now(),
    )
}

/// A failure of this Worker's own plumbing: answered through the edge
/// (5xx, no internal text), and recorded in `error_log` after the answer.
fn server_error(
    ctx: &Rc<Context>,
    env: &Env,
    request_id: &str,
    err: &ServerError,
) -> worker::Result<Response> {
    if let Some(row) =
        edge::error_log_statement(Service::McpServer, request_id, None, err, WorkerClock.now())
    {
        write_after_answer(ctx, env, request_id, vec![row]);
    }
    edge::error_response(SERVICE, request_id, err)
}

/// Writes the request's after-answer statements (the call log, last-used
/// touches, a refund) in one batch inside `ctx.wait_until`, after the
/// response is sent: off the latency path. A failure is logged with the
/// request id and never reaches the client (its answer is already sent).
fn write_after_answer(ctx: &Rc<Context>, env: &Env, request_id: &str, stmts: Vec<Statement>) {
    if stmts.is_empty() {
        return;
    }
    let env = env.clone();
    let request_id = request_id.to_owned();
    ctx.wait_until(async move {
        let written = match D1Executor::from_env(&env) {
            Ok(db) => db.batch(stmts).await.map(drop),
            Err(e) => Err(e),
        };
        if let Err(e) = written {
            console_error!("{SERVICE}: request {request_id}: writing after the answer: {e}");
        }
    });
}

/// `D1_DELAY_MS`, honoured only when `ENVIRONMENT` is `local`: a fixed
/// wait before each D1 round trip, so a local benchmark can imitate a
/// database far away.
fn d1_delay_ms(env: &Env, local: bool) -> u64 {
    if !local {
        return 0;
    }
    bindings::var_or(env, "D1_DELAY_MS", "0")
        .parse()
        .unwrap_or(0)
}

/// Sends an authorization-server request that reached the MCP origin to
/// the same path at the portal, query included.
fn to_portal(req: &Request, env: &Env) -> worker::Result<Response> {
    let portal = bindings::var_or(env, "AUTH_PORTAL_URL", "");
    if portal.is_empty() {
        return edge::json_response(
            404,
            &json!({"error": "not_found", "message": "no authorization server is configured"}),
        );
    }
    let url = req.url()?;
    // The guessed paths are the 2025-03-26 defaults; the portal serves
    // them under its own paths (the ones its metadata names).
    let path = match url.path() {
        "/authorize" => paths::AUTHORIZE,
        "/token" => paths::TOKEN,
        "/register" => paths::REGISTER,
        "/revoke" => paths::REVOKE,
        other => other,
    };
    let mut target = format!("{}{path}", portal.trim_end_matches('/'));
    if let Some(q) = url.query() {
        target.push('?');
        target.push_str(q);
    }
    let status = if req.method() == Method::Get {
        302
    } else {
        307
    };
    let mut r = Response::empty()?.with_status(status);
    r.headers_mut().set("Location", &target)?;
    r.headers_mut().set("Cache-Control", "no-store")?;
    Ok(r)
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
    // Every MCP answer: never cached, never content-sniffed.
    headers.set("Cache-Control", "no-store")?;
    headers.set("X-Content-Type-Options", "nosniff")?;
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

/// `/mcp`, or `/demo/{key}` (`path_key`): the demo key in the URL, for
/// clients that take only a URL (no headers, no OAuth). What the request
/// asked, who asked and what it cost go into `log` (the one line the
/// fetch handler prints: no credential, no arguments, no books).
async fn mcp(
    mut req: Request,
    env: &Env,
    ctx: &Rc<Context>,
    path_key: Option<&str>,
    log: &mut RequestLog,
) -> worker::Result<Response> {
    let request_id = log.request_id.clone();
    // Read with a cap, never whole: a public demo URL must not let a
    // 100 MB body exhaust the isolate that serves everyone else. Read
    // first, so a customer's one database round trip can take the meter
    // of the tool call it carries.
    let max_body_bytes = TransportPolicy::default().max_body_bytes;
    let body = if req.method() == Method::Post {
        match edge::read_body(&mut req, max_body_bytes).await {
            Ok(body) => body,
            Err(edge::BodyError::TooLarge { limit }) => {
                return to_response(body_too_large(limit));
            }
            Err(e) => return edge::error_response(SERVICE, &request_id, &e),
        }
    } else {
        Vec::new()
    };
    let (rpc_method, tool) = rpc_summary(&body);
    boekhouding_mcp::observe::describe_request(log, rpc_method.as_deref(), tool.as_deref());
    let local = bindings::var_or(env, bindings::ENVIRONMENT, "local") == "local";
    let mut response = answer(
        req,
        env,
        ctx,
        path_key,
        Answering {
            request_id: &request_id,
            body: &body,
            tool: tool.as_deref(),
            local,
            max_body_bytes,
        },
        log,
    )
    .await?;
    if local {
        let headers = response.headers_mut();
        headers.set("X-D1-Round-Trips", &log.costs.d1_round_trips.to_string())?;
        headers.set("X-D1-Statements", &log.costs.d1_statements.to_string())?;
    }
    Ok(response)
}

/// What [`answer`] needs of the request besides the request itself.
struct Answering<'a> {
    request_id: &'a str,
    body: &'a [u8],
    /// The tool of a `tools/call`, if the body is one.
    tool: Option<&'a str>,
    local: bool,
    max_body_bytes: usize,
}

/// The answer to an MCP request; who asked, what the engine answered and
/// the D1 round trips, statements and Exact calls it took go into `log`.
async fn answer(
    req: Request,
    env: &Env,
    ctx: &Rc<Context>,
    path_key: Option<&str>,
    a: Answering<'_>,
    log: &mut RequestLog,
) -> worker::Result<Response> {
    let origin = public_origin(&req, env);
    let request_id = a.request_id.to_owned();
    let authorization = req.headers().get("authorization")?;
    let demo = match path_key {
        Some(key) => match demo_request(env, key, &request_id) {
            Some(found) => Some(found),
            None => {
                return edge::json_response(
                    404,
                    &json!({"error": "not_found", "message": "No such demo key; the demo keys are listed in the README."}),
                );
            }
        },
        None => bearer(authorization.as_deref())
            .filter(|k| demo::is_demo_key(k))
            .and_then(|k| demo_request(env, k, &request_id)),
    };
    let (platform, mut principal) = match demo {
        Some(found) => {
            let refused = match demo_admission(env, &req).await {
                DemoAdmission::Admitted => None,
                DemoAdmission::Limited => Some((
                    429,
                    "Demo limit reached for your address; try again in a minute, or connect your own Exact Online administration for full use.",
                )),
                DemoAdmission::Unavailable => Some((
                    503,
                    "The demo is temporarily unavailable; try again in a minute, or connect your own Exact Online administration.",
                )),
            };
            if let Some((status, message)) = refused {
                let mut r = edge::json_response(
                    status,
                    &json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32000, "message": message}}),
                )?;
                r.headers_mut().set("Retry-After", "60")?;
                return Ok(r);
            }
            found
        }
        None => {
            let db = match D1Executor::from_env(env) {
                Ok(db) => {
                    Counting::with_delay(RequestDb::D1(db), WorkerSleep, d1_delay_ms(env, a.local))
                }
                Err(e) => {
                    return server_error(ctx, env, &request_id, &ServerError::Database(e));
                }
            };
            let resource = mcp_resource(&origin);
            let now = WorkerClock.now();
            // A tools/call of a catalogue tool is metered in the same
            // round trip that authenticates it.
            let meter = a.tool.is_some_and(is_metered_tool);
            let loaded =
                auth::load(&db, authorization.as_deref(), resource.as_ref(), now, meter).await;
            log.costs.d1_round_trips = db.calls();
            log.costs.d1_statements = db.statements();
            let (principal, loaded) = match loaded {
                Ok(found) => found,
                Err(AuthError::Storage(e)) => {
                    return server_error(ctx, env, &request_id, &ServerError::Database(e));
                }
                // The MCP authorization challenge (a JSON-RPC error body and
                // RFC 9728's WWW-Authenticate), not an internal failure.
                Err(e) => {
                    if e == AuthError::Invalid {
                        let event = failed_authentication(&req, authorization.as_deref());
                        write_after_answer(ctx, env, &request_id, vec![event]);
                    }
                    return refuse(&e, resource.as_ref(), &origin);
                }
            };
            let platform = WorkerPlatform {
                db,
                clock: WorkerClock,
                http: Counting::new(RequestHttp::Fetch(FetchTransport::default())),
                rng: WorkerRandomness,
                sleep: WorkerSleep,
                cache: OptionalCache::from_env(env),
                detach: Some((Rc::clone(ctx), env.clone())),
                loaded: Some(loaded),
                after: RefCell::new(Vec::new()),
                request_id: request_id.clone(),
            };
            (platform, principal)
        }
    };
    // An OAuth client is known by the name it registered; any other
    // caller by its user agent.
    if principal.client_name.is_none() {
        principal.client_name = req.headers().get("user-agent")?;
    }
    principal.request_id = Some(request_id.clone());
    boekhouding_mcp::observe::describe_principal(log, &principal);
    let headers: Vec<(String, String)> = req.headers().entries().collect();
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
        max_body_bytes: a.max_body_bytes,
        allowed_origins,
        loopback: a.local,
        ..TransportPolicy::default()
    };
    let call = HttpCall {
        method: &method,
        headers: &headers,
        body: a.body,
    };
    // A browser page of another site: refused by the engine, recorded here.
    let mut trail = Vec::new();
    if let Some(refused) = refused_origin(&call, &policy) {
        let user = platform.loaded.as_ref().map(|l| l.user_id.as_str());
        trail.push(security_events::insert_statement(
            &SecurityRecord::new(SecurityEvent::RefusedOrigin, client_ip(&req).as_deref())
                .user_agent(req.headers().get("user-agent")?.as_deref())
                .user(user)
                .detail(refused),
            WorkerClock.now(),
        ));
    }
    let reply = handle(&engine, &host, call, &policy).await;
    boekhouding_mcp::observe::describe_reply(log, &reply);
    log.costs.d1_round_trips = platform.db.calls();
    log.costs.d1_statements = platform.db.statements();
    log.costs.exact_calls = platform.http.calls();
    let mut response = to_response(reply)?;
    let now = platform.clock.now();
    let month = UsageMonth::of(now);
    match &platform.loaded {
        None => {
            write_after_answer(ctx, env, &request_id, trail);
            response.headers_mut().set("X-Demo-Mode", "true")?;
        }
        Some(loaded) => {
            let mut after = platform.after.take();
            after.extend(trail);
            after.extend(loaded.credential_touch(now));
            let mut used = loaded.used;
            // Counted in advance for a tool call the engine did not run
            // (the transport refused the request first): given back.
            if loaded.meter_unused() {
                after.push(usage::refund_statement(&loaded.user_id, month));
                used = used.saturating_sub(1);
            }
            write_after_answer(ctx, env, &request_id, after);
            // The plan's monthly tool-call budget, as clients expect to see
            // it, from the count the one round trip read.
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
    }
    Ok(response)
}

/// The routes of this Worker, named as the log line names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Health,
    DeepHealth,
    ResourceMetadata,
    Mcp,
    ToPortal,
    Demo,
    NotFound,
}

impl Route {
    fn of(method: &Method, path: &str) -> Route {
        match (method, path) {
            (Method::Get, "/health") => Route::Health,
            (Method::Get, "/health/deep") => Route::DeepHealth,
            (Method::Get, PRM_PATH)
            | (Method::Get, "/.well-known/oauth-protected-resource/mcp") => Route::ResourceMetadata,
            (_, "/mcp") => Route::Mcp,
            // Clients that guess the authorization server's endpoints on
            // the MCP origin (some did, ignoring the metadata) are sent to
            // the portal, which is the authorization server.
            (
                Method::Get,
                "/authorize"
                | "/.well-known/oauth-authorization-server"
                | "/.well-known/openid-configuration",
            )
            | (Method::Post, "/token" | "/register" | "/revoke") => Route::ToPortal,
            (_, p) if p.starts_with("/demo/") => Route::Demo,
            _ => Route::NotFound,
        }
    }

    /// The name in the log line: a template, never the path (a demo path
    /// holds a key).
    fn name(self) -> &'static str {
        match self {
            Route::Health => "/health",
            Route::DeepHealth => "/health/deep",
            Route::ResourceMetadata => PRM_PATH,
            Route::Mcp => "/mcp",
            Route::ToPortal => "to_portal",
            Route::Demo => "/demo/{key}",
            Route::NotFound => boekhouding_core::observe::UNMATCHED_ROUTE,
        }
    }
}

#[event(fetch)]
pub async fn fetch(req: Request, env: Env, ctx: Context) -> worker::Result<Response> {
    let started = observe::started();
    let ctx = Rc::new(ctx);
    // One id per request: the response header, the log line, the usage
    // row (`api_usage.request_id`) and every error line carry it.
    let request_id = edge::request_id(&req);
    let route = Route::of(&req.method(), &req.path());
    let mut log = RequestLog::begin(&request_id, SERVICE, route.name(), req.method().as_ref());
    let result = serve(req, route, &env, &ctx, &mut log).await;
    observe::finish(
        result,
        log,
        started,
        &env,
        &AnalyticsMetrics::from_env(&env),
    )
}

async fn serve(
    req: Request,
    route: Route,
    env: &Env,
    ctx: &Rc<Context>,
    log: &mut RequestLog,
) -> worker::Result<Response> {
    match route {
        Route::Health => health::respond(SERVICE, env).await,
        Route::DeepHealth => health::respond_deep(SERVICE, &req, env, log).await,
        Route::ResourceMetadata => prm(&req, env),
        Route::Mcp => mcp(req, env, ctx, None, log).await,
        Route::ToPortal => to_portal(&req, env),
        Route::Demo => {
            let key = req
                .path()
                .trim_start_matches("/demo/")
                .trim_end_matches('/')
                .to_owned();
            mcp(req, env, ctx, Some(&key), log).await
        }
        Route::NotFound => edge::json_response(
            404,
            &json!({"error": "not_found", "message": format!("no route for {} {}", req.method(), req.path())}),
        ),
    }
}
