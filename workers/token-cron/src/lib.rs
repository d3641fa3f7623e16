//! The token-cron Worker: every five minutes it keeps Exact connections
//! alive (refresh in use and quiet connections, retry with backoff), tells
//! users what they must know, delivers the mail queue and does
//! housekeeping. With `REFRESH_MODE=queue` the scheduled run only hands due
//! connections to `REFRESH_QUEUE` and this Worker's queue consumer
//! refreshes them. All decisions live in `boekhouding_core::cron`; this
//! file reads configuration and wires the platform in. Also answers
//! `/health`.

use boekhouding_cf::bindings::{self, ExactSettingsError};
use boekhouding_cf::d1::D1Executor;
use boekhouding_cf::fetch::FetchTransport;
use boekhouding_cf::platform::{ScheduledClock, WorkerClock, WorkerRandomness, WorkerSleep};
use boekhouding_cf::{edge, health, observe};
use boekhouding_core::access::ExactSettings;
use boekhouding_core::cron::{
    self, CronConfig, CronEnv, QueueError, RefreshQueue, Refreshing, RunReport,
};
use boekhouding_core::crypto::Secret;
use boekhouding_core::mail::MailSettings;
use boekhouding_core::observe::{RequestLog, RunLog, UNMATCHED_ROUTE};
use boekhouding_core::ports::{Clock, NoMetrics};
use boekhouding_core::storage::connections::DueConnection;
use boekhouding_core::storage::cron_runs::{self, RunMode};
use boekhouding_core::storage::error_log::{self, ErrorRecord, Service};
use boekhouding_core::storage::{SqlExecutor, StorageError};
use worker::{
    Context, Env, MessageBatch, MessageExt, Method, Queue, Request, Response, ScheduleContext,
    ScheduledEvent, console_error, console_log, console_warn, event,
};

const SERVICE: &str = "token-cron";
/// The queue binding used in fan-out mode.
const REFRESH_QUEUE: &str = "REFRESH_QUEUE";
/// Exact's token endpoint and the mail API get this long per request.
const DEFAULT_HTTP_TIMEOUT_MS: u64 = 15_000;

#[event(fetch)]
pub async fn fetch(req: Request, env: Env, _ctx: Context) -> worker::Result<Response> {
    let started = observe::started();
    let request_id = edge::request_id(&req);
    let route = match (req.method(), req.path().as_str()) {
        (Method::Get, "/health") => "/health",
        (Method::Get, "/health/deep") => "/health/deep",
        _ => UNMATCHED_ROUTE,
    };
    let mut log = RequestLog::begin(&request_id, SERVICE, route, req.method().as_ref());
    let result = match route {
        "/health" => health::respond(SERVICE, &env).await,
        "/health/deep" => health::respond_deep(SERVICE, &req, &env, &mut log).await,
        _ => edge::json_response(
            404,
            &serde_json::json!({ "error": "not_found", "message": "no such route" }),
        ),
    };
    observe::finish(result, log, started, &env, &NoMetrics)
}

/// Everything a run reads from the environment.
struct Setup {
    db: D1Executor,
    http: FetchTransport,
    exact: Option<ExactSettings>,
    mail: Option<MailSettings>,
    portal_url: String,
    config: CronConfig,
    queue_mode: bool,
}

fn setup(env: &Env) -> Result<Setup, String> {
    let db = D1Executor::from_env(env).map_err(|e| e.to_string())?;
    let exact = match bindings::exact_settings(env) {
        Ok(s) => Some(s),
        Err(ExactSettingsError::NoApp) => None,
        Err(e) => return Err(e.to_string()),
    };
    let config = CronConfig::from_lookup(|name| env.var(name).ok().map(|v| v.to_string()))
        .map_err(|e| e.to_string())?;
    let timeout_ms = bindings::var_or(env, "HTTP_TIMEOUT_MS", "")
        .parse::<u64>()
        .unwrap_or(DEFAULT_HTTP_TIMEOUT_MS);
    let mail = bindings::secret(env, "MAIL_API_KEY")
        .filter(|k| !k.is_empty())
        .map(|key| MailSettings {
            api_url: bindings::var_or(env, "MAIL_API_URL", "https://api.resend.com"),
            api_key: Secret::new(key),
            from: bindings::var_or(
                env,
                "MAIL_FROM",
                "Praat met je Boekhouding <noreply@praatmetjeboekhouding.nl>",
            ),
        });
    let queue_mode = match bindings::var_or(env, "REFRESH_MODE", "inline").as_str() {
        "inline" => false,
        "queue" => true,
        other => {
            return Err(format!(
                "REFRESH_MODE must be inline or queue, got {other:?}"
            ));
        }
    };
    Ok(Setup {
        db,
        http: FetchTransport::new(std::time::Duration::from_millis(timeout_ms)),
        exact,
        mail,
        portal_url: bindings::var_or(env, "AUTH_PORTAL_URL", "http://127.0.0.1:8788"),
        config,
        queue_mode,
    })
}

/// Cloudflare Queues as core's fan-out port.
struct WorkerQueue(Queue);

impl RefreshQueue for WorkerQueue {
    async fn send_batch(&self, batch: &[DueConnection]) -> Result<(), QueueError> {
        self.0
            .send_batch(batch.to_vec())
            .await
            .map_err(|e| QueueError(e.to_string()))
    }
}

#[event(scheduled)]
pub async fn scheduled(event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    // The runtime discards the handler's result, so every failure is
    // logged here rather than returned.
    let cron = event.cron();
    let clock = ScheduledClock::from_epoch_ms(event.schedule());
    let started = WorkerClock.now();
    // One JSON line per run, with the run's counters; its id is the
    // `cron_runs` row's, so the line and the row meet.
    let line = match run(&cron, &env, &clock).await {
        Ok((id, mode, report)) => {
            warn_notes(&format!("cron-{id}"), &report);
            RunLog::of_run(
                format!("cron-{id}"),
                SERVICE,
                mode,
                report.outcome,
                &report.summary,
                report.breaker.as_deref(),
                elapsed_ms(started),
            )
        }
        Err(e) => {
            console_error!("{SERVICE}: run for cron {cron:?} failed: {e}");
            record_error(&env, "run_failed", &e, clock.now()).await;
            RunLog::failed_to_start(
                format!("cron-{}", invocation_id()),
                SERVICE,
                RunMode::Inline,
                elapsed_ms(started),
            )
        }
    };
    console_log!("{}", line.to_line());
}

/// A run's problems (secret-free: ids and storage errors, as its
/// `cron_runs.notes`), one line beside the run's JSON line.
fn warn_notes(run_id: &str, report: &RunReport) {
    if let Some(notes) = report.notes_line() {
        console_warn!("{SERVICE}: {run_id}: {notes}");
    }
}

/// Records a run that could not run or be recorded in `error_log` (the
/// message scrubbed by core), when D1 answers at all; the next run's
/// alert check sees the gap or the failure.
async fn record_error(env: &Env, kind: &str, message: &str, now: chrono::DateTime<chrono::Utc>) {
    let row = error_log::insert_statement(
        &ErrorRecord {
            service: Service::TokenCron,
            kind,
            message,
            request_id: None,
            user_id: None,
        },
        now,
    );
    let written = match D1Executor::from_env(env) {
        Ok(db) => db.execute(row).await.map(drop),
        Err(e) => Err(e),
    };
    if let Err(e) = written {
        console_error!("{SERVICE}: the error could not be recorded: {e}");
    }
}

/// Milliseconds since `started` on the wall clock.
fn elapsed_ms(started: chrono::DateTime<chrono::Utc>) -> i64 {
    (WorkerClock.now() - started).num_milliseconds()
}

/// An id for an invocation that has no `cron_runs` row (it failed before
/// one was opened): random hex, so its lines can still be told apart.
fn invocation_id() -> String {
    let mut raw = [0u8; 8];
    match boekhouding_core::ports::Randomness::fill(&WorkerRandomness, &mut raw) {
        Ok(()) => raw.iter().map(|b| format!("{b:02x}")).collect(),
        Err(_) => "unknown".to_owned(),
    }
}

async fn run(
    cron: &str,
    env: &Env,
    clock: &ScheduledClock,
) -> Result<(i64, RunMode, RunReport), String> {
    let s = setup(env)?;
    let started = clock.now();
    let mode = if s.queue_mode {
        RunMode::Enqueue
    } else {
        RunMode::Inline
    };
    let id = cron_runs::start(&s.db, cron, mode, started)
        .await
        .map_err(|e| e.to_string())?;
    let owner = format!("cron-{id}");
    let rng = WorkerRandomness;
    let cenv = CronEnv {
        db: &s.db,
        http: &s.http,
        rng: &rng,
        clock,
        sleep: &WorkerSleep,
        exact: s.exact.as_ref(),
        mail: s.mail.as_ref(),
        portal_url: &s.portal_url,
        owner: &owner,
        run_id: Some(id),
    };
    let mut report = if s.queue_mode {
        match env.queue(REFRESH_QUEUE) {
            Ok(q) => cron::run_tick(&cenv, &s.config, Refreshing::Enqueue(&WorkerQueue(q))).await,
            Err(e) => return Err(format!("queue mode without a {REFRESH_QUEUE} binding: {e}")),
        }
    } else {
        cron::run_tick::<_, _, _, _, _, WorkerQueue>(&cenv, &s.config, Refreshing::Inline).await
    };
    if s.mail.is_none() {
        report
            .notes
            .push("no MAIL_API_KEY: mail stays queued".into());
    }
    finish(&s.db, id, &report, started, clock.now()).await?;
    Ok((id, mode, report))
}

async fn finish(
    db: &D1Executor,
    id: i64,
    report: &RunReport,
    started: chrono::DateTime<chrono::Utc>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), String> {
    let mut summary = report.summary;
    // This write is a round trip too.
    summary.d1_queries = summary.d1_queries.saturating_add(2);
    let notes = report.notes_line();
    let end = cron_runs::RunEnd {
        summary: &summary,
        outcome: report.outcome,
        notes: notes.as_deref(),
        breaker: report.breaker.as_deref(),
    };
    cron_runs::finish(db, id, &end, started, now)
        .await
        .map_err(|e: StorageError| e.to_string())
}

/// Fan-out consumer: refreshes each due connection of the batch. Never
/// returns an error (that would make the runtime retry the whole batch);
/// messages are acknowledged or retried one by one instead.
#[event(queue)]
pub async fn queue(
    batch: MessageBatch<DueConnection>,
    env: Env,
    _ctx: Context,
) -> worker::Result<()> {
    let clock = WorkerClock;
    let started = clock.now();
    let not_started = || {
        RunLog::failed_to_start(
            format!("queue-{}", invocation_id()),
            SERVICE,
            RunMode::Consume,
            elapsed_ms(started),
        )
        .to_line()
    };
    let messages = match batch.messages() {
        Ok(m) => m,
        Err(e) => {
            console_error!("{SERVICE}: undecodable queue batch, acknowledged: {e}");
            batch.ack_all();
            console_log!("{}", not_started());
            return Ok(());
        }
    };
    let s = match setup(&env) {
        Ok(s) => s,
        Err(e) => {
            console_error!("{SERVICE}: consumer cannot start: {e}");
            record_error(&env, "consumer_failed", &e, WorkerClock.now()).await;
            batch.retry_all();
            console_log!("{}", not_started());
            return Ok(());
        }
    };
    let id = match cron_runs::start(&s.db, batch.queue().as_str(), RunMode::Consume, started).await
    {
        Ok(id) => id,
        Err(e) => {
            console_error!("{SERVICE}: consumer cannot record its run: {e}");
            record_error(&env, "consumer_failed", &e.to_string(), started).await;
            batch.retry_all();
            console_log!("{}", not_started());
            return Ok(());
        }
    };
    let owner = format!("queue-{id}");
    let rng = WorkerRandomness;
    let cenv = CronEnv {
        db: &s.db,
        http: &s.http,
        rng: &rng,
        clock: &clock,
        sleep: &WorkerSleep,
        exact: s.exact.as_ref(),
        mail: s.mail.as_ref(),
        portal_url: &s.portal_url,
        owner: &owner,
        run_id: Some(id),
    };
    let due: Vec<DueConnection> = messages.iter().map(|m| m.body().clone()).collect();
    let (report, acks) = cron::consume(&cenv, &s.config, &due).await;
    for (m, ack) in messages.iter().zip(acks) {
        if ack {
            m.ack();
        } else {
            m.retry();
        }
    }
    if let Err(e) = finish(&s.db, id, &report, started, clock.now()).await {
        console_error!("{SERVICE}: consumer run {id} not recorded: {e}");
        record_error(&env, "consumer_failed", &e, clock.now()).await;
    }
    warn_notes(&format!("queue-{id}"), &report);
    let line = RunLog::of_run(
        format!("queue-{id}"),
        SERVICE,
        RunMode::Consume,
        report.outcome,
        &report.summary,
        report.breaker.as_deref(),
        elapsed_ms(started),
    );
    console_log!("{}", line.to_line());
    Ok(())
}
