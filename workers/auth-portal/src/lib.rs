//! The auth portal Worker: the customer portal (`boekhouding-portal`), and
//! `/health`. Thin: it reads the request into the portal's `WebRequest`
//! (body capped at the edge), builds the configuration and the outbound
//! transport, and writes the portal's `WebResponse` back.

use std::time::Duration;

use boekhouding_cf::d1::{D1Executor, RequestDb};
use boekhouding_cf::fetch::FetchTransport;
use boekhouding_cf::platform::{WorkerClock, WorkerRandomness, WorkerSleep};
use boekhouding_cf::{bindings, edge, health, observe};
use boekhouding_core::authorization::clients::DocumentPolicy;
use boekhouding_core::authorization::metadata::{Issuer, McpResource};
use boekhouding_core::billing::entitlement::PriceBook;
use boekhouding_core::billing::stripe::{self, StripeConfig};
use boekhouding_core::counting::Counting;
use boekhouding_core::crypto::Secret;
use boekhouding_core::csrf::PortalSecret;
use boekhouding_core::observe::{AuthTag, RequestLog};
use boekhouding_core::ports::{Clock, NoMetrics};
use boekhouding_core::storage::error_log::{self, ErrorRecord, Service};
use boekhouding_core::storage::{NoDatabase, SqlExecutor};
use boekhouding_portal::oauth::OAuthSettings;
use boekhouding_portal::web::{WebRequest, WebResponse};
use boekhouding_portal::{DEMO_COMPANIES, PortalConfig, PortalPlatform, handle};
use worker::{Context, Env, Method, Request, Response, console_error, event};

const SERVICE: &str = "auth-portal";

/// Forms are small; anything larger is refused before it is read.
const MAX_BODY_BYTES: usize = 64 * 1024;
/// A Stripe event carries a whole object (an invoice with its lines).
const MAX_WEBHOOK_BYTES: usize = 512 * 1024;

#[event(fetch)]
pub async fn fetch(req: Request, env: Env, ctx: Context) -> worker::Result<Response> {
    let started = observe::started();
    // One id per request: the response header, the log line and every
    // error line carry it.
    let request_id = edge::request_id(&req);
    let path = req.path();
    let route = match (req.method(), path.as_str()) {
        (Method::Get, "/health") => "/health",
        (Method::Get, "/health/deep") => "/health/deep",
        (_, p) => boekhouding_portal::route_name(p),
    };
    let mut log = RequestLog::begin(&request_id, SERVICE, route, req.method().as_ref());
    let result = serve(req, route, &env, &ctx, &mut log).await;
    observe::finish(result, log, started, &env, &NoMetrics)
}

async fn serve(
    mut req: Request,
    route: &str,
    env: &Env,
    ctx: &Context,
    log: &mut RequestLog,
) -> worker::Result<Response> {
    match route {
        "/health" => return health::respond(SERVICE, env).await,
        "/health/deep" => return health::respond_deep(SERVICE, &req, env, log).await,
        _ => {}
    }
    let web = match read(&mut req).await {
        Ok(w) => w,
        Err(status) => return to_response(WebResponse::html(status, String::new()), env),
    };
    let cfg = config(env, &web);
    let platform = WorkerPortal {
        db: Counting::new(match D1Executor::from_env(env) {
            Ok(d1) => RequestDb::D1(d1),
            Err(e) => {
                console_error!("{SERVICE}: {e}");
                RequestDb::None(NoDatabase)
            }
        }),
        // Exact's token endpoint and the Workers' health: a stuck one must
        // not hold the page long.
        http: Counting::new(FetchTransport::new(Duration::from_secs(10))),
    };
    if web
        .cookie(boekhouding_portal::account::SESSION_COOKIE)
        .is_some()
    {
        log.auth = AuthTag::Session;
    }
    if boekhouding_portal::is_rate_limited(&web) && !admitted(env, &req).await {
        // A client registering gets JSON; a person, a page in their
        // language (their preference, or the page's).
        let page = if boekhouding_portal::oauth::is_registration(&web) {
            boekhouding_portal::oauth::too_many_registrations()
        } else {
            boekhouding_portal::account::too_many_requests(&web, &platform).await
        };
        return to_response(page, env);
    }
    let answer = handle(&web, &cfg, &platform).await;
    // The portal's outbound calls (Exact sign-in, Stripe, client metadata
    // documents, the Workers' health) share the `exact_calls` count.
    log.costs.exact_calls = platform.http.calls();
    log.costs.d1_round_trips = platform.db.calls();
    log.costs.d1_statements = platform.db.statements();
    if answer.status >= 500 {
        record_server_error(ctx, env, &log.request_id, &web, &answer);
    }
    to_response(answer, env)
}

/// Records a 5xx page in `error_log`, after the answer (`ctx.wait_until`):
/// where, with which status, and the cause the portal kept
/// (`WebResponse::cause`; core scrubs it); the request id ties it to the
/// log line.
fn record_server_error(
    ctx: &Context,
    env: &Env,
    request_id: &str,
    web: &WebRequest,
    answer: &WebResponse,
) {
    let status = answer.status;
    let request_id = request_id.to_owned();
    let message = match &answer.cause {
        Some(cause) => format!("{} {} answered {status}: {cause}", web.method, web.path),
        None => format!("{} {} answered {status}", web.method, web.path),
    };
    let row = error_log::insert_statement(
        &ErrorRecord {
            service: Service::AuthPortal,
            kind: if status == 503 {
                "unavailable"
            } else {
                "server_error"
            },
            message: &message,
            request_id: Some(&request_id),
            user_id: None,
        },
        WorkerClock.now(),
    );
    let env = env.clone();
    ctx.wait_until(async move {
        let written = match D1Executor::from_env(&env) {
            Ok(db) => db.execute(row).await.map(drop),
            Err(e) => Err(e),
        };
        if let Err(e) = written {
            console_error!("{SERVICE}: request {request_id}: recording the error: {e}");
        }
    });
}

/// Whether the client address may make one more costly request. Fails
/// closed: without the `PORTAL_LIMITER` binding, or when it errs, the
/// request is refused (logged), so a misconfigured deploy cannot be
/// flooded with sign-ins.
async fn admitted(env: &Env, req: &Request) -> bool {
    let Ok(limiter) = env.rate_limiter("PORTAL_LIMITER") else {
        console_error!("{SERVICE}: no PORTAL_LIMITER binding; refusing");
        return false;
    };
    let address = req
        .headers()
        .get("cf-connecting-ip")
        .ok()
        .flatten()
        .unwrap_or_else(|| "unknown".into());
    // Registrations have their own budget per address, so a client's
    // registration flood does not lock its user out of signing in.
    let bucket = if req.path() == boekhouding_core::authorization::metadata::paths::REGISTER {
        "register"
    } else {
        "portal"
    };
    match limiter.limit(format!("{bucket}:{address}")).await {
        Ok(outcome) => outcome.success,
        Err(e) => {
            console_error!("{SERVICE}: portal rate limiter: {e}");
            false
        }
    }
}

struct WorkerPortal {
    db: Counting<RequestDb>,
    http: Counting<FetchTransport>,
}

impl PortalPlatform for WorkerPortal {
    type Db = Counting<RequestDb>;
    type Http = Counting<FetchTransport>;
    type Clock = WorkerClock;
    type Rng = WorkerRandomness;
    type Sleep = WorkerSleep;
    fn db(&self) -> &Counting<RequestDb> {
        &self.db
    }
    fn http(&self) -> &Counting<FetchTransport> {
        &self.http
    }
    fn clock(&self) -> &WorkerClock {
        &WorkerClock
    }
    fn rng(&self) -> &WorkerRandomness {
        &WorkerRandomness
    }
    fn sleep(&self) -> &WorkerSleep {
        &WorkerSleep
    }
}

async fn read(req: &mut Request) -> Result<WebRequest, u16> {
    let url = req.url().map_err(|_| 400u16)?;
    let limit = if url.path() == "/stripe/webhook" {
        MAX_WEBHOOK_BYTES
    } else {
        MAX_BODY_BYTES
    };
    let body = if matches!(req.method(), Method::Post) {
        edge::read_body(req, limit).await.map_err(|_| 413u16)?
    } else {
        Vec::new()
    };
    Ok(WebRequest {
        method: req.method().to_string(),
        origin: url.origin().ascii_serialization(),
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
    let exact = match bindings::exact_settings(env) {
        Ok(s) => Some(s),
        Err(e) => {
            console_error!("{SERVICE}: signing in is unavailable: {e}");
            None
        }
    };
    let secret = match bindings::secret(env, "PORTAL_SECRET").map(|s| PortalSecret::from_hex(&s)) {
        Some(Ok(s)) => Some(s),
        Some(Err(e)) => {
            console_error!("{SERVICE}: {e}");
            None
        }
        None => {
            console_error!("{SERVICE}: PORTAL_SECRET is not set; forms are refused");
            None
        }
    };
    let oauth = oauth_settings(env, &own, &mcp_origin);
    PortalConfig {
        oauth,
        stripe: stripe_settings(env),
        mcp_origin: mcp_origin.trim_end_matches('/').to_owned(),
        health_urls,
        demo_keys: DEMO_COMPANIES.to_vec(),
        exact,
        secret,
    }
}

/// The authorization server's issuer (`AUTH_PORTAL_URL`, else this
/// origin), the MCP resource it issues tokens for (`MCP_URL` + `/mcp`),
/// and whether client metadata documents may come from private hosts
/// (`OAUTH_ALLOW_PRIVATE_CLIENT_HOSTS=1`, honoured only in the local
/// environment: a deployed portal never fetches from them).
fn oauth_settings(env: &Env, own: &str, mcp_origin: &str) -> Option<OAuthSettings> {
    let issuer = bindings::var_or(env, "AUTH_PORTAL_URL", own);
    let resource = format!("{}/mcp", mcp_origin.trim_end_matches('/'));
    let local = bindings::var_or(env, bindings::ENVIRONMENT, "local") == "local";
    let allow_local = local && bindings::var_or(env, "OAUTH_ALLOW_PRIVATE_CLIENT_HOSTS", "") == "1";
    match (Issuer::parse(&issuer), McpResource::parse(&resource)) {
        (Ok(issuer), Ok(resource)) => Some(OAuthSettings {
            issuer,
            resource,
            policy: DocumentPolicy { allow_local },
        }),
        (i, r) => {
            console_error!(
                "{SERVICE}: the OAuth server is off: issuer {:?}, resource {:?}",
                i.err(),
                r.err()
            );
            None
        }
    }
}

/// Stripe: `STRIPE_SECRET_KEY` and `STRIPE_WEBHOOK_SECRET` (secrets; the
/// latter may list several, comma-separated, while one is rolled),
/// `STRIPE_PRICE_STARTER`, `STRIPE_PRICE_PRO` and `STRIPE_API_BASE`
/// (default Stripe's own). Without the key or the prices paying is
/// unavailable and the dashboard offers no button.
fn stripe_settings(env: &Env) -> Option<StripeConfig> {
    let key = bindings::secret(env, "STRIPE_SECRET_KEY")?;
    let starter = bindings::var_or(env, "STRIPE_PRICE_STARTER", "");
    let pro = bindings::var_or(env, "STRIPE_PRICE_PRO", "");
    if starter.is_empty() || pro.is_empty() {
        console_error!(
            "{SERVICE}: STRIPE_PRICE_STARTER or STRIPE_PRICE_PRO is not set; paying is off"
        );
        return None;
    }
    let webhook_secrets = bindings::secret(env, "STRIPE_WEBHOOK_SECRET")
        .unwrap_or_default()
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    Some(StripeConfig {
        api_base: bindings::var_or(env, "STRIPE_API_BASE", stripe::DEFAULT_API_BASE),
        secret_key: Secret::new(key),
        prices: PriceBook { starter, pro },
        webhook_secrets,
    })
}

fn to_response(web: WebResponse, env: &Env) -> worker::Result<Response> {
    let status = web.status;
    let mut response = Response::from_bytes(web.body)?.with_status(status);
    let headers = response.headers_mut();
    // `from_bytes` sets `application/octet-stream`: every header replaces
    // what is there, except cookies, of which there may be several.
    for (name, value) in &web.headers {
        if name.eq_ignore_ascii_case("set-cookie") {
            headers.append(name, value)?;
        } else {
            headers.set(name, value)?;
        }
    }
    // Deployed hosts are HTTPS only; locally the Workers speak plain HTTP.
    if bindings::var_or(env, bindings::ENVIRONMENT, "local") != "local" {
        headers.set(
            "Strict-Transport-Security",
            "max-age=31536000; includeSubDomains",
        )?;
    }
    Ok(response)
}
