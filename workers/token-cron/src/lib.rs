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
use boekhouding_cf::{edge, health};
use boekhouding_core::access::ExactSettings;
use boekhouding_core::cron::{
    self, CronConfig, CronEnv, QueueError, RefreshQueue, Refreshing, RunReport,
};
use boekhouding_core::crypto::Secret;
use boekhouding_core::mail::MailSettings;
use boekhouding_core::ports::Clock;
use boekhouding_core::storage::connections::DueConnection;
use boekhouding_core::storage::cron_runs::{self, RunMode};
use boekhouding_core::storage::error_log::{self, ErrorRecord, Service};
use boekhouding_core::storage::{SqlExecutor, StorageError};
use worker::{
    Context, Env, MessageBatch, MessageExt, Method, Queue, Request, Response, ScheduleContext,
    ScheduledEvent, console_error, console_log, event,
};

const SERVICE: &str = "token-cron";
/// The queue binding used in fan-out mode.
const REFRESH_QUEUE: &str = "REFRESH_QUEUE";
/// Exact's token endpoint and the mail API get this long per request.
const DEFAULT_HTTP_TIMEOUT_MS: u64 = 15_000;

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
    match run(&cron, &env, &clock).await {
        Ok((id, report)) => console_log!(
            "{SERVICE}: run {id} ({cron}) {}: {:?}{}",
            report.outcome.as_str(),
            report.summary,
            notes(&report)
        ),
        Err(e) => {
            console_error!("{SERVICE}: run for cron {cron:?} failed: {e}");
            record_error(&env, "run_failed", &e, clock.now()).await;
        }
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

fn notes(report: &RunReport) -> String {
    report
        .notes_line()
        .map(|n| format!("; {n}"))
        .unwrap_or_default()
}

async fn run(cron: &str, env: &Env, clock: &ScheduledClock) -> Result<(i64, RunReport), String> {
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
    Ok((id, report))
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
    let messages = match batch.messages() {
        Ok(m) => m,
        Err(e) => {
            console_error!("{SERVICE}: undecodable queue batch, acknowledged: {e}");
            batch.ack_all();
            return Ok(());
        }
    };
    let s = match setup(&env) {
        Ok(s) => s,
        Err(e) => {
            console_error!("{SERVICE}: consumer cannot start: {e}");
            record_error(&env, "consumer_failed", &e, WorkerClock.now()).await;
            batch.retry_all();
            return Ok(());
        }
    };
    let clock = WorkerClock;
    let started = clock.now();
    let id = match cron_runs::start(&s.db, batch.queue().as_str(), RunMode::Consume, started).await
    {
        Ok(id) => id,
        Err(e) => {
            console_error!("{SERVICE}: consumer cannot record its run: {e}");
            record_error(&env, "consumer_failed", &e.to_string(), started).await;
            batch.retry_all();
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
    console_log!(
        "{SERVICE}: consumer run {id} {}: {:?}{}",
        report.outcome.as_str(),
        report.summary,
        notes(&report)
    );
    Ok(())
}
