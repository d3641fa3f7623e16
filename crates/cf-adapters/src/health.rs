//! `GET /health` for every Worker: service, version, commit, environment
//! and whether D1 answers (with the number of applied migrations). 200
//! when healthy, 503 when the database cannot be reached.

use boekhouding_core::storage::applied_migrations;
use serde::Serialize;
use worker::{Env, Response, console_error};

use crate::bindings::{self, var_or};
use crate::d1::D1Executor;
use crate::edge::json_response;

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
