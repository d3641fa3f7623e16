//! `GET /health` for every Worker: service, version, commit, environment
//! and whether D1 answers (with the number of applied migrations). 200
//! when healthy, 503 when the database cannot be reached. It stays cheap
//! (one query) and public.
//!
//! `GET /health/deep`, for operators only (`Authorization: Bearer
//! <OPERATOR_TOKEN>`): the facts `boekhouding_core::health::assess` judges
//! (applied migrations by name, the settings this Worker reads, KV, the
//! last cron run). Without a configured token it is 404, with a wrong one
//! 401, never open.

use boekhouding_core::health::{
    self, EXPECTED_MIGRATIONS, Findings, OperatorAccess, SettingFound, operator_access,
};
use boekhouding_core::observe::{AuthTag, RequestLog};
use boekhouding_core::ports::{Clock, KvCache};
use boekhouding_core::settings::{self, BindingKind, Kind, Need};
use boekhouding_core::storage::{applied_migration_names, applied_migrations, cron_runs};
use serde::Serialize;
use worker::{Env, Request, Response, console_error};

use crate::bindings::{self, var_or};
use crate::d1::D1Executor;
use crate::edge::json_response;
use crate::kv::KvStoreCache;
use crate::platform::WorkerClock;

/// The key the KV probe reads: never written, so the answer is a miss.
const KV_PROBE_KEY: &str = "health:probe";

#[derive(Serialize)]
struct Database {
    reachable: bool,
    migrations: Option<u32>,
}

#[derive(Serialize)]
struct Health<'a> {
    service: &'a str,
    status: &'a str,
    version: &'a str,
    commit: String,
    environment: String,
    database: Database,
}

pub async fn respond(service: &str, env: &Env) -> worker::Result<Response> {
    let probe = match D1Executor::from_env(env) {
        Ok(db) => applied_migrations(&db).await,
        Err(e) => Err(e),
    };
    let database = match probe {
        Ok(n) => Database {
            reachable: true,
            migrations: Some(n),
        },
        Err(e) => {
            console_error!("{service} health: database check failed: {e}");
            Database {
                reachable: false,
                migrations: None,
            }
        }
    };
    let healthy = database.reachable;
    json_response(
        if healthy { 200 } else { 503 },
        &Health {
            service,
            status: if healthy { "ok" } else { "unavailable" },
            version: boekhouding_core::VERSION,
            commit: var_or(env, bindings::GIT_COMMIT, "unknown"),
            environment: var_or(env, bindings::ENVIRONMENT, "local"),
            database,
        },
    )
}

/// `GET /health/deep`: see the module docs. `log` learns that the operator
/// asked (never the token).
pub async fn respond_deep(
    service: &'static str,
    req: &Request,
    env: &Env,
    log: &mut RequestLog,
) -> worker::Result<Response> {
    let authorization = req.headers().get("authorization").ok().flatten();
    let configured = bindings::secret(env, bindings::OPERATOR_TOKEN);
    match operator_access(authorization.as_deref(), configured.as_deref()) {
        OperatorAccess::NotConfigured => {
            return json_response(
                404,
                &serde_json::json!({"error": "not_found", "message": "no such route"}),
            );
        }
        OperatorAccess::Refused => {
            let mut r = json_response(
                401,
                &serde_json::json!({"error": "unauthorized", "message": "operator token required"}),
            )?;
            r.headers_mut().set("WWW-Authenticate", "Bearer")?;
            return Ok(r);
        }
        OperatorAccess::Granted => log.auth = AuthTag::Operator,
    }
    let worker = settings::Worker::from_dir(service);
    let (applied, last_cron_run) = match D1Executor::from_env(env) {
        Ok(db) => {
            let applied = applied_migration_names(&db).await;
            let last = cron_runs::last(&db).await;
            if let Err(e) = &applied {
                console_error!("{service} deep health: reading d1_migrations: {e}");
            }
            if let Err(e) = &last {
                console_error!("{service} deep health: reading cron_runs: {e}");
            }
            (applied.ok(), last.ok())
        }
        Err(e) => {
            console_error!("{service} deep health: no database: {e}");
            (None, None)
        }
    };
    let reads_kv =
        worker.is_some_and(|w| settings::of(w).any(|s| s.kind == Kind::Binding(BindingKind::Kv)));
    let kv_reachable = if reads_kv {
        Some(match KvStoreCache::from_env(env) {
            Ok(kv) => kv.get(KV_PROBE_KEY).await.is_ok(),
            Err(_) => false,
        })
    } else {
        None
    };
    let report = health::assess(
        Findings {
            service,
            environment: var_or(env, bindings::ENVIRONMENT, "local"),
            now: WorkerClock.now(),
            applied_migrations: applied,
            settings: worker.map(|w| settings_found(env, w)).unwrap_or_default(),
            kv_reachable,
            last_cron_run,
        },
        EXPECTED_MIGRATIONS,
    );
    json_response(report.status(), &report)
}

/// Which of the settings `worker` reads are set: names only, the values
/// are never read into the report. Settings `cargo xtask deploy` sets are
/// required too (the deploy checks `/health`'s commit); local-only ones
/// are skipped.
fn settings_found(env: &Env, worker: settings::Worker) -> Vec<SettingFound> {
    settings::of(worker)
        .filter(|s| s.need != Need::LocalOnly)
        .map(|s| SettingFound {
            name: s.name,
            present: is_set(env, s.name, s.kind),
            required: matches!(s.need, Need::Required | Need::SetByDeploy),
        })
        .collect()
}

fn is_set(env: &Env, name: &str, kind: Kind) -> bool {
    match kind {
        Kind::Var => env.var(name).is_ok_and(|v| !v.to_string().is_empty()),
        Kind::Secret => bindings::secret(env, name).is_some_and(|v| !v.is_empty()),
        Kind::Binding(BindingKind::D1) => env.d1(name).is_ok(),
        Kind::Binding(BindingKind::Kv) => env.kv(name).is_ok(),
        Kind::Binding(BindingKind::RateLimit) => env.rate_limiter(name).is_ok(),
        // Without the `queue` feature here: present is "defined".
        Kind::Binding(BindingKind::QueueProducer) => {
            js_sys::Reflect::get(env, &wasm_bindgen::JsValue::from(name))
                .is_ok_and(|b| !b.is_undefined() && !b.is_null())
        }
        Kind::Binding(BindingKind::AnalyticsEngine) => env.analytics_engine(name).is_ok(),
    }
}
