//! The token cron's work, over ports only: refresh the connections that
//! are due (inline, or handed to a queue and refreshed by its consumer),
//! tell users what they must know, deliver queued mail, and purge what
//! may no longer be kept. Each step is bounded, so one invocation stays
//! within the platform's subrequest budget, and each step's failure is
//! recorded without stopping the others.
//!
//! Due work is taken oldest-due first, so when there is more than one run
//! can do, what is left is the most recently due and nothing starves.

use chrono::{DateTime, Duration, Utc};

use crate::access::{AccessContext, CronRefresh, ExactSettings, refresh_for_cron};
use crate::alerts::{self, AlertConfig, Observations, ThisRun};
use crate::authorization::{REFRESH_TOKEN_IDLE, REVOKED_GRANT_RETENTION, UNUSED_CLIENT_RETENTION};
use crate::exact::oauth::REFRESH_WINDOW;
use crate::mail::{self, Delivery, MailSettings};
use crate::ports::{Clock, HttpTransport, Randomness, Sleep};
use crate::storage::audit_log::{self, AuditAction, AuditEntry};
use crate::storage::connections::{self, DueConnection, DueWindows};
use crate::storage::cron_runs::{RunFacts, RunOutcome, RunSummary};
use crate::storage::error_log::{self, Service};
use crate::storage::{
    Row, SqlExecutor, Statement, StorageError, api_keys, applied_migration_names_statement,
    billing_accounts, cron_runs, decode, email_queue, expected_migrations, incidents, login_states,
    oauth_clients, oauth_codes, oauth_grants, oauth_tokens, security_events, sessions, usage,
};

/// Messages per `sendBatch` (the Queues limit).
pub const QUEUE_BATCH: usize = 100;

/// How the cron behaves; every field has a production default and can be
/// set per deployment (see [`CronConfig::from_lookup`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronConfig {
    /// Exact token calls per invocation. The default keeps a whole run
    /// (3 subrequests per refresh plus about 13 for the rest) under the
    /// free plan's 50 subrequests.
    pub max_refreshes: u32,
    /// Mails delivered per invocation (one subrequest each).
    pub max_emails: u32,
    /// Notices (reconnect / lapse warnings) queued per invocation.
    pub max_notices: u32,
    /// Connections handed to the queue per invocation in fan-out mode.
    pub max_enqueue: u32,
    pub windows: DueWindows,
    /// Warn when a refresh token lapses within this span and has not been
    /// renewed yet.
    pub lapse_warning_before: Duration,
    /// Per-call usage rows older than this are rolled up and deleted.
    pub usage_retention: Duration,
    /// Revoked API keys are kept this long (for the audit trail).
    pub revoked_key_retention: Duration,
    /// Sent and failed mails, run rows, error rows, security events and
    /// resolved incidents are kept this long.
    pub log_retention: Duration,
    /// Audit rows are kept this long (a year: long enough to answer
    /// "who changed this" about any invoice period still open).
    pub audit_retention: Duration,
    /// Connections sealed with a retired key that one run reseals (one
    /// query and one batch, whatever the number).
    pub max_reseals: u32,
    /// Stop refreshing after this many connections in a row fail with the
    /// same non-grant error (a refused client stops at once).
    pub breaker_after: u32,
    /// Who hears about incidents (`OPERATOR_EMAILS`).
    pub operator_emails: Vec<String>,
    /// When an incident opens and resolves.
    pub alerts: AlertConfig,
}

impl Default for CronConfig {
    fn default() -> Self {
        CronConfig {
            max_refreshes: 10,
            max_emails: 5,
            max_notices: 20,
            max_enqueue: 1_000,
            windows: DueWindows {
                in_use: Duration::minutes(60),
                keep_alive_before: Duration::days(7),
                refresh_window: REFRESH_WINDOW,
            },
            lapse_warning_before: Duration::days(3),
            usage_retention: Duration::days(90),
            revoked_key_retention: Duration::days(30),
            log_retention: Duration::days(90),
            audit_retention: Duration::days(365),
            max_reseals: 50,
            breaker_after: 5,
            operator_emails: Vec::new(),
            alerts: AlertConfig::default(),
        }
    }
}

/// A configuration value that is not a number in range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name} must be a whole number from {min} to {max}, got {value:?}")]
pub struct CronConfigError {
    pub name: &'static str,
    pub value: String,
    pub min: u32,
    pub max: u32,
}

impl CronConfig {
    /// Reads `CRON_MAX_REFRESHES`, `CRON_MAX_EMAILS`, `CRON_MAX_ENQUEUE`,
    /// `CRON_KEEP_ALIVE_DAYS`, `CRON_IN_USE_MINUTES`, `CRON_BREAKER_AFTER`,
    /// `CRON_INTERVAL_MINUTES` (the trigger's schedule, for the alerts),
    /// `ALERT_REFRESH_FAILURE_PERCENT`, `ALERT_SERVER_ERROR_PERCENT` and
    /// `OPERATOR_EMAILS` (comma-separated) through `get`; absent ones keep
    /// their default.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, CronConfigError> {
        let mut cfg = CronConfig::default();
        let num =
            |name: &'static str, min: u32, max: u32| -> Result<Option<u32>, CronConfigError> {
                match get(name).filter(|v| !v.trim().is_empty()) {
                    None => Ok(None),
                    Some(v) => match v.trim().parse::<u32>() {
                        Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
                        _ => Err(CronConfigError {
                            name,
                            value: v,
                            min,
                            max,
                        }),
                    },
                }
            };
        if let Some(n) = num("CRON_MAX_REFRESHES", 0, 10_000)? {
            cfg.max_refreshes = n;
        }
        if let Some(n) = num("CRON_MAX_EMAILS", 0, 1_000)? {
            cfg.max_emails = n;
        }
        if let Some(n) = num("CRON_MAX_ENQUEUE", 1, 100_000)? {
            cfg.max_enqueue = n;
        }
        if let Some(n) = num("CRON_KEEP_ALIVE_DAYS", 1, 29)? {
            cfg.windows.keep_alive_before = Duration::days(i64::from(n));
        }
        if let Some(n) = num("CRON_IN_USE_MINUTES", 0, 1_440)? {
            cfg.windows.in_use = Duration::minutes(i64::from(n));
        }
        if let Some(n) = num("CRON_BREAKER_AFTER", 2, 1_000)? {
            cfg.breaker_after = n;
        }
        if let Some(n) = num("CRON_INTERVAL_MINUTES", 1, 60)? {
            cfg.alerts.interval = Duration::minutes(i64::from(n));
        }
        if let Some(n) = num("ALERT_REFRESH_FAILURE_PERCENT", 1, 100)? {
            cfg.alerts.refresh_failure_percent = n;
        }
        if let Some(n) = num("ALERT_SERVER_ERROR_PERCENT", 1, 100)? {
            cfg.alerts.server_error_percent = n;
        }
        cfg.operator_emails = get("OPERATOR_EMAILS")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|a| a.contains('@'))
            .map(str::to_owned)
            .collect();
        Ok(cfg)
    }
}

pub use crate::counting::Counting;

/// The port for fan-out: hand due connections to a queue whose consumer
/// calls [`consume`]. Cloudflare Queues in production; a vector in tests.
#[allow(async_fn_in_trait)]
pub trait RefreshQueue {
    /// Sends at most [`QUEUE_BATCH`] messages in one call.
    async fn send_batch(&self, batch: &[DueConnection]) -> Result<(), QueueError>;
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("queue unavailable: {0}")]
pub struct QueueError(pub String);

/// Everything a run uses.
#[derive(Debug)]
pub struct CronEnv<'a, D, H, R, C, S> {
    pub db: &'a D,
    pub http: &'a H,
    pub rng: &'a R,
    /// The run's clock: the scheduled time moving forward with the wall
    /// clock in production; a fake in tests.
    pub clock: &'a C,
    /// Waits between attempts to store rotated tokens.
    pub sleep: &'a S,
    /// `None` when the deployment has no Exact app configured.
    pub exact: Option<&'a ExactSettings>,
    /// `None` when no mail provider is configured: mails stay queued.
    pub mail: Option<&'a MailSettings>,
    /// Base URL of the customer portal, for links in mails.
    pub portal_url: &'a str,
    /// Names this run in leases and logs.
    pub owner: &'a str,
    /// This run's own `cron_runs` row, which the alert check must not
    /// count as a previous run (`None`: not recorded, as in tests).
    pub run_id: Option<i64>,
}

/// Where due connections go.
#[derive(Debug)]
pub enum Refreshing<'q, Q> {
    /// Refresh them in this run, up to `max_refreshes`.
    Inline,
    /// Hand them to the queue, up to `max_enqueue`.
    Enqueue(&'q Q),
}

/// A finished run: its counters, outcome and a secret-free note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunReport {
    pub summary: RunSummary,
    pub outcome: RunOutcome,
    pub notes: Vec<String>,
    /// Why connections were skipped, by reason.
    pub skips: std::collections::BTreeMap<&'static str, u32>,
    /// Why the run stopped refreshing early (the breaker), if it did.
    pub breaker: Option<String>,
}

impl RunReport {
    fn new(summary: RunSummary) -> Self {
        RunReport {
            summary,
            outcome: RunOutcome::Ok,
            notes: Vec::new(),
            skips: Default::default(),
            breaker: None,
        }
    }

    /// The notes and skip reasons as one secret-free line for the run row.
    pub fn notes_line(&self) -> Option<String> {
        let mut parts = self.notes.clone();
        if !self.skips.is_empty() {
            let skips: Vec<String> = self.skips.iter().map(|(k, n)| format!("{n} {k}")).collect();
            parts.push(format!("skipped: {}", skips.join(", ")));
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }

    fn problem(&mut self, what: impl Into<String>) {
        self.notes.push(what.into());
        if self.outcome == RunOutcome::Ok {
            self.outcome = RunOutcome::Partial;
        }
    }
}

/// One scheduled run: refresh (or enqueue) what is due, queue notices,
/// deliver mail, housekeeping.
pub async fn run_tick<D, H, R, C, S, Q>(
    env: &CronEnv<'_, D, H, R, C, S>,
    cfg: &CronConfig,
    refreshing: Refreshing<'_, Q>,
) -> RunReport
where
    D: SqlExecutor,
    H: HttpTransport,
    R: Randomness,
    C: Clock,
    S: Sleep,
    Q: RefreshQueue,
{
    let db = Counting::new(env.db);
    let http = Counting::new(env.http);
    let counted = CronEnv {
        db: &db,
        http: &http,
        rng: env.rng,
        clock: env.clock,
        sleep: env.sleep,
        exact: env.exact,
        mail: env.mail,
        portal_url: env.portal_url,
        owner: env.owner,
        run_id: env.run_id,
    };
    let mut report = RunReport::new(RunSummary::default());
    match refreshing {
        Refreshing::Inline => refresh_due(&counted, &http, cfg, &mut report).await,
        Refreshing::Enqueue(queue) => enqueue_due(&counted, cfg, queue, &mut report).await,
    }
    report.summary.exact_calls = http.calls();
    reseal_sweep(&counted, cfg, &mut report).await;
    queue_notices(&counted, cfg, &mut report).await;
    // Before delivery, so an incident's mail leaves in the run that saw it.
    check_alerts(&counted, cfg, &mut report).await;
    deliver_mail(&counted, cfg, &mut report).await;
    housekeeping(&counted, cfg, &mut report).await;
    report.summary.d1_queries = db.calls();
    report
}

/// A queue consumer invocation: refreshes the connections of one batch.
/// Returns the report and, per message, whether to acknowledge it
/// (`false`: the platform redelivers it later).
pub async fn consume<D, H, R, C, S>(
    env: &CronEnv<'_, D, H, R, C, S>,
    cfg: &CronConfig,
    messages: &[DueConnection],
) -> (RunReport, Vec<bool>)
where
    D: SqlExecutor,
    H: HttpTransport,
    R: Randomness,
    C: Clock,
    S: Sleep,
{
    let db = Counting::new(env.db);
    let http = Counting::new(env.http);
    let mut report = RunReport::new(RunSummary {
        due: u32::try_from(messages.len()).unwrap_or(u32::MAX),
        ..RunSummary::default()
    });
    let mut acks = Vec::with_capacity(messages.len());
    match env.exact {
        None => {
            report.outcome = RunOutcome::Error;
            report.notes.push("Exact is not configured".into());
            acks.resize(messages.len(), false);
        }
        Some(exact) => {
            let mut breaker = Breaker::new(cfg.breaker_after);
            for due in messages {
                if report.breaker.is_some() {
                    // Left untouched; the next scheduled run picks it
                    // again while it is due.
                    acks.push(true);
                    continue;
                }
                let outcome = refresh_one(&db, &http, env, exact, due, &mut report).await;
                acks.push(outcome.ack());
                if let Some(why) = breaker.observe(&outcome) {
                    let left = messages.len() - acks.len();
                    trip(&db, env.clock.now(), why, left, &mut report).await;
                }
            }
        }
    }
    report.summary.exact_calls = http.calls();
    report.summary.d1_queries = db.calls();
    (report, acks)
}

/// What happened to one due connection, as the run counts it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Handled {
    Refreshed,
    Skipped,
    /// A permanent grant failure: this connection's own fate.
    Failed,
    /// A transient failure with this short reason.
    Retry(String),
    /// Exact refused our app; nothing was recorded on the connection.
    ClientRejected,
    /// Our own plumbing failed (`retry`: the database; try again later).
    Error {
        retry: bool,
    },
}

impl Handled {
    /// Whether a queue message for this connection is done with.
    fn ack(&self) -> bool {
        !matches!(self, Handled::Error { retry: true })
    }
}

/// The blast-radius breaker: stops a run's refreshing when Exact refuses
/// our app, or when `limit` connections in a row fail with the same
/// non-grant error. Such failures are about our side or Exact's, not
/// about the connections, and going on would only move every due
/// connection of every tenant down its retry schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Breaker {
    limit: u32,
    streak: u32,
    reason: Option<String>,
}

impl Breaker {
    pub fn new(limit: u32) -> Self {
        Breaker {
            limit: limit.max(1),
            streak: 0,
            reason: None,
        }
    }

    /// Feeds one outcome; `Some(why)` when refreshing must stop now.
    fn observe(&mut self, handled: &Handled) -> Option<String> {
        match handled {
            Handled::ClientRejected => {
                Some("Exact refused the app's client credentials (invalid_client)".into())
            }
            Handled::Retry(reason) => {
                if self.reason.as_deref() == Some(reason.as_str()) {
                    self.streak += 1;
                } else {
                    self.reason = Some(reason.clone());
                    self.streak = 1;
                }
                (self.streak >= self.limit).then(|| {
                    format!(
                        "{} connections in a row failed with the same error ({reason})",
                        self.streak
                    )
                })
            }
            // Exact answered sensibly (or it was not about Exact): the
            // streak is broken.
            Handled::Refreshed | Handled::Failed | Handled::Error { .. } => {
                self.streak = 0;
                self.reason = None;
                None
            }
            Handled::Skipped => None,
        }
    }
}

/// Refreshes one due connection and counts the outcome.
async fn refresh_one<D, H, R, C, S>(
    db: &D,
    http: &H,
    env: &CronEnv<'_, impl SqlExecutor, impl HttpTransport, R, C, S>,
    exact: &ExactSettings,
    due: &DueConnection,
    report: &mut RunReport,
) -> Handled
where
    D: SqlExecutor,
    H: HttpTransport,
    R: Randomness,
    C: Clock,
    S: Sleep,
{
    let app = exact.app_for(due.region);
    let ctx = AccessContext {
        db,
        http,
        rng: env.rng,
        sleep: env.sleep,
        keyring: &exact.keyring,
        app: &app,
    };
    let now = env.clock.now();
    let s = &mut report.summary;
    match refresh_for_cron(&ctx, &due.id, env.owner, now).await {
        Ok(CronRefresh::Refreshed) => {
            s.refreshed += 1;
            let waited = (now - due.due_at).num_seconds().max(0);
            s.longest_wait_s = s
                .longest_wait_s
                .max(u32::try_from(waited).unwrap_or(u32::MAX));
            Handled::Refreshed
        }
        Ok(CronRefresh::Skipped(why)) => {
            s.skipped += 1;
            *report.skips.entry(why).or_insert(0) += 1;
            Handled::Skipped
        }
        Ok(CronRefresh::RetryScheduled { reason, .. }) => {
            s.retried += 1;
            Handled::Retry(reason)
        }
        Ok(CronRefresh::Failed) => {
            s.failed += 1;
            Handled::Failed
        }
        Ok(CronRefresh::ClientRejected) => Handled::ClientRejected,
        Err(e) => {
            s.failed += 1;
            let retry = matches!(e, crate::access::AccessError::Storage(_));
            report.problem(format!("connection {}: {e}", due.id));
            Handled::Error { retry }
        }
    }
}

/// Records a tripped breaker in the report and in the audit log. The
/// operators hear of it through the alert check's `refresh_breaker`
/// incident (this run's, or for a queue consumer the next scheduled
/// run's), once per incident.
async fn trip(
    db: &impl SqlExecutor,
    now: DateTime<Utc>,
    why: String,
    left: usize,
    report: &mut RunReport,
) {
    report.outcome = RunOutcome::Error;
    report.notes.push(format!(
        "breaker: {why}; stopped refreshing, {left} due connection(s) left untouched"
    ));
    let audit = AuditEntry {
        actor_id: None,
        actor_email: Some(Service::TokenCron.as_str()),
        action: AuditAction::BreakerTripped,
        resource_type: "token_refresh",
        resource_id: None,
        metadata: Some(serde_json::json!({ "reason": why, "left_untouched": left })),
        client_ip: None,
    };
    if let Err(e) = db.execute(audit_log::insert_statement(&audit, now)).await {
        report.problem(format!("recording the breaker in the audit log: {e}"));
    }
    report.breaker = Some(why);
}

/// `calls` is the run's counted transport (the same one `env.http` is),
/// read to stop when the Exact call budget is spent.
async fn refresh_due<D, H, R, C, S, T>(
    env: &CronEnv<'_, D, H, R, C, S>,
    calls: &Counting<&T>,
    cfg: &CronConfig,
    report: &mut RunReport,
) where
    D: SqlExecutor,
    H: HttpTransport,
    R: Randomness,
    C: Clock,
    S: Sleep,
{
    let Some(exact) = env.exact else {
        report.outcome = RunOutcome::Error;
        report
            .notes
            .push("Exact is not configured: no refreshes".into());
        return;
    };
    if cfg.max_refreshes == 0 {
        return;
    }
    // Some picked connections may be skipped (lease busy, already fresh),
    // so pick a little more than the call budget.
    let pick = cfg
        .max_refreshes
        .saturating_add(cfg.max_refreshes / 2)
        .saturating_add(5);
    let due = match connections::due_for_refresh(env.db, env.clock.now(), &cfg.windows, pick).await
    {
        Ok(d) => d,
        Err(e) => {
            report.outcome = RunOutcome::Error;
            report.notes.push(format!("selecting due connections: {e}"));
            return;
        }
    };
    report.summary.due = u32::try_from(due.len()).unwrap_or(u32::MAX);
    let calls_at_start = calls.calls();
    let mut handled = 0usize;
    let mut breaker = Breaker::new(cfg.breaker_after);
    for d in &due {
        if calls.calls().saturating_sub(calls_at_start) >= cfg.max_refreshes {
            break;
        }
        let outcome = refresh_one(env.db, env.http, env, exact, d, report).await;
        handled += 1;
        if let Some(why) = breaker.observe(&outcome) {
            let left = due.len() - handled;
            trip(env.db, env.clock.now(), why, left, report).await;
            return;
        }
    }
    if handled < due.len() {
        report.problem(format!(
            "call budget of {} spent: {} due connection(s) left for the next run",
            cfg.max_refreshes,
            due.len() - handled
        ));
    }
}

async fn enqueue_due<D, H, R, C, S, Q>(
    env: &CronEnv<'_, D, H, R, C, S>,
    cfg: &CronConfig,
    queue: &Q,
    report: &mut RunReport,
) where
    D: SqlExecutor,
    C: Clock,
    Q: RefreshQueue,
{
    let due =
        match connections::due_for_refresh(env.db, env.clock.now(), &cfg.windows, cfg.max_enqueue)
            .await
        {
            Ok(d) => d,
            Err(e) => {
                report.outcome = RunOutcome::Error;
                report.notes.push(format!("selecting due connections: {e}"));
                return;
            }
        };
    report.summary.due = u32::try_from(due.len()).unwrap_or(u32::MAX);
    for chunk in due.chunks(QUEUE_BATCH) {
        match queue.send_batch(chunk).await {
            Ok(()) => {
                report.summary.enqueued += u32::try_from(chunk.len()).unwrap_or(u32::MAX);
            }
            Err(e) => {
                report.problem(format!("enqueueing: {e}"));
                break;
            }
        }
    }
}

/// Reseals idle connections whose tokens are sealed with a retired key
/// (connections in use are resealed as they are read, refreshed ones by
/// the refresh), so an operator can retire the key once
/// `cargo xtask keys status` shows no row needs it. Costs nothing while
/// the keyring holds one key.
async fn reseal_sweep<D, H, R, C, S>(
    env: &CronEnv<'_, D, H, R, C, S>,
    cfg: &CronConfig,
    report: &mut RunReport,
) where
    D: SqlExecutor,
    R: Randomness,
{
    let Some(exact) = env.exact else {
        return;
    };
    if !exact.keyring.has_retired_keys() || cfg.max_reseals == 0 {
        return;
    }
    let stale = match connections::sealed_with_old_keys(
        env.db,
        exact.keyring.current_key_id(),
        cfg.max_reseals,
    )
    .await
    {
        Ok(rows) => rows,
        Err(e) => {
            report.problem(format!("selecting rows to reseal: {e}"));
            return;
        }
    };
    let mut stmts = Vec::with_capacity(stale.len());
    for conn in &stale {
        match connections::reseal_statement(env.rng, &exact.keyring, conn) {
            Ok(stmt) => stmts.push(stmt),
            // A key missing from the keyring: the operator must hear it.
            Err(e) => report.problem(format!("connection {} cannot be resealed: {e}", conn.id)),
        }
    }
    if stmts.is_empty() {
        return;
    }
    match env.db.batch(stmts).await {
        Ok(done) => {
            let n: u64 = done.iter().map(|e| e.changes).sum();
            report.summary.resealed = u32::try_from(n).unwrap_or(u32::MAX);
        }
        Err(e) => report.problem(format!("resealing: {e}")),
    }
}

async fn queue_notices<D, H, R, C, S>(
    env: &CronEnv<'_, D, H, R, C, S>,
    cfg: &CronConfig,
    report: &mut RunReport,
) where
    D: SqlExecutor,
    C: Clock,
{
    let now = env.clock.now();
    let notices =
        match connections::needing_notice(env.db, now, cfg.lapse_warning_before, cfg.max_notices)
            .await
        {
            Ok(n) => n,
            Err(e) => {
                report.problem(format!("selecting notices: {e}"));
                return;
            }
        };
    if notices.is_empty() {
        return;
    }
    // The mail and the "told" mark land together: either the user gets
    // exactly one mail for the incident or the next run tries again.
    let mut stmts = Vec::with_capacity(notices.len() * 2);
    for n in &notices {
        stmts.push(email_queue::enqueue_statement(
            &mail::notice_mail(n, env.portal_url),
            now,
        ));
        stmts.push(connections::mark_noticed_statement(n, now));
    }
    if let Err(e) = env.db.batch(stmts).await {
        report.problem(format!("queueing notices: {e}"));
    }
}

/// The alert check: one read round trip (open incidents, the runs before
/// this one, the last interval's usage and error counts, the applied
/// migrations), the pure decision of `core::alerts`, and a write batch per
/// incident that opens or resolves (with its mails) plus one for those
/// still seen. A failure is a problem of the run, never a stop.
async fn check_alerts<D, H, R, C, S>(
    env: &CronEnv<'_, D, H, R, C, S>,
    cfg: &CronConfig,
    report: &mut RunReport,
) where
    D: SqlExecutor,
    C: Clock,
{
    let now = env.clock.now();
    let since = now - cfg.alerts.interval;
    let reads = vec![
        incidents::open_statement(),
        cron_runs::before_statement(env.run_id, 50),
        usage::window_outcomes_statement(since),
        error_log::count_since_statement(Service::McpServer, since),
        error_log::count_since_statement(Service::TokenCron, since),
        applied_migration_names_statement(),
    ];
    let observed = match env.db.batch_query(reads).await {
        Ok(rows) => observations(rows, report),
        Err(e) => Err(e),
    };
    let (open, obs) = match observed {
        Ok(o) => o,
        Err(e) => {
            report.problem(format!("alert check: {e}"));
            return;
        }
    };
    let findings = alerts::detect(&obs, &cfg.alerts, now);
    let changes = alerts::reconcile(&open, &findings, &cfg.alerts, now);
    for change in &changes {
        match change {
            alerts::Change::Open(f) => report
                .notes
                .push(format!("incident opened: {}", f.kind.as_str())),
            alerts::Change::Resolve(o) => {
                report.notes.push(format!("incident resolved: {}", o.kind))
            }
            alerts::Change::Seen { .. } => {}
        }
    }
    for batch in alerts::change_batches(&changes, &cfg.operator_emails, now) {
        if let Err(e) = env.db.batch(batch).await {
            report.problem(format!("recording an incident: {e}"));
        }
    }
}

/// The alert check's reads, decoded.
fn observations(
    mut rows: Vec<Vec<Row>>,
    report: &RunReport,
) -> Result<(Vec<incidents::OpenIncident>, Observations), StorageError> {
    #[derive(serde::Deserialize)]
    struct Outcomes {
        calls: u64,
        errors: u64,
    }
    #[derive(serde::Deserialize)]
    struct Count {
        n: u64,
    }
    #[derive(serde::Deserialize)]
    struct Name {
        name: String,
    }
    if rows.len() != 6 {
        return Err(StorageError::Decode("alert check: six result sets".into()));
    }
    let names = rows.pop().unwrap_or_default();
    let cron_errors = rows.pop().unwrap_or_default();
    let errors = rows.pop().unwrap_or_default();
    let outcomes = rows.pop().unwrap_or_default();
    let runs = rows.pop().unwrap_or_default();
    let open = rows.pop().unwrap_or_default();
    let first = |set: Vec<Row>| set.into_iter().next().unwrap_or_default();
    let outcomes: Outcomes = decode(first(outcomes))?;
    let edge: Count = decode(first(errors))?;
    let cron: Count = decode(first(cron_errors))?;
    let obs = Observations {
        previous_runs: runs
            .into_iter()
            .map(decode::<RunFacts>)
            .collect::<Result<_, _>>()?,
        this_run: ThisRun {
            breaker: report.breaker.clone(),
            refreshed: report.summary.refreshed,
            retried: report.summary.retried,
            failed: report.summary.failed,
        },
        calls: outcomes.calls,
        internal_errors: outcomes.errors,
        edge_errors: edge.n,
        cron_errors: cron.n,
        applied_migrations: names
            .into_iter()
            .map(|r| decode::<Name>(r).map(|n| n.name))
            .collect::<Result<_, _>>()?,
        expected_migrations: expected_migrations()
            .into_iter()
            .map(str::to_owned)
            .collect(),
    };
    Ok((incidents::decode_open(open)?, obs))
}

/// How long a claimed mail is reserved for this run.
const MAIL_CLAIM: Duration = Duration::minutes(10);

async fn deliver_mail<D, H, R, C, S>(
    env: &CronEnv<'_, D, H, R, C, S>,
    cfg: &CronConfig,
    report: &mut RunReport,
) where
    D: SqlExecutor,
    H: HttpTransport,
    C: Clock,
{
    let Some(settings) = env.mail else {
        return;
    };
    if cfg.max_emails == 0 {
        return;
    }
    let now = env.clock.now();
    let claimed = match email_queue::claim_due(env.db, now, cfg.max_emails, MAIL_CLAIM).await {
        Ok(c) => c,
        Err(e) => {
            report.problem(format!("claiming mail: {e}"));
            return;
        }
    };
    if claimed.is_empty() {
        return;
    }
    let mut marks = Vec::with_capacity(claimed.len());
    for m in &claimed {
        let now = env.clock.now();
        match mail::deliver(env.http, settings, m).await {
            Delivery::Sent { provider_id } => {
                report.summary.emails_sent += 1;
                marks.push(email_queue::mark_sent_statement(m.id, &provider_id, now));
            }
            Delivery::RetryLater(why) => match mail::next_attempt(m.attempts, now) {
                Some(at) => marks.push(email_queue::mark_retry_statement(m.id, at, &why)),
                None => {
                    report.summary.emails_failed += 1;
                    marks.push(email_queue::mark_failed_statement(m.id, &why, now));
                }
            },
            Delivery::Rejected(why) => {
                report.summary.emails_failed += 1;
                marks.push(email_queue::mark_failed_statement(m.id, &why, now));
            }
        }
    }
    if let Err(e) = env.db.batch(marks).await {
        // The claim expires and a later run sends again; the provider's
        // idempotency key keeps the user from getting it twice.
        report.problem(format!("recording mail results: {e}"));
    }
}

/// The purges, in one atomic batch.
pub fn housekeeping_statements(now: DateTime<Utc>, cfg: &CronConfig) -> Vec<Statement> {
    let [rollup, purge_usage] = usage::roll_up_and_purge_statements(now - cfg.usage_retention);
    vec![
        sessions::purge_expired_statement(now),
        oauth_codes::purge_expired_statement(now),
        oauth_tokens::purge_expired_statement(now),
        oauth_grants::purge_idle_statement(now - REFRESH_TOKEN_IDLE),
        api_keys::purge_revoked_statement(now - cfg.revoked_key_retention),
        rollup,
        purge_usage,
        email_queue::purge_statement(now - cfg.log_retention),
        cron_runs::purge_statement(now - cfg.log_retention),
        error_log::purge_statement(now - cfg.log_retention),
        security_events::purge_statement(now - cfg.log_retention),
        audit_log::purge_statement(now - cfg.audit_retention),
        incidents::purge_statement(now - cfg.log_retention),
        login_states::purge_expired_statement(now),
        oauth_grants::purge_revoked_statement(now - REVOKED_GRANT_RETENTION),
        // After the grant purges, so a client whose last grant went this
        // run goes too.
        oauth_clients::purge_unused_statement(now - UNUSED_CLIENT_RETENTION),
    ]
    .into_iter()
    // Plan changes whose time has come (a downgrade or cancellation at a
    // period's end that no webhook brought yet): counted with the purges.
    .chain(billing_accounts::apply_due_statements(now))
    .collect()
}

/// Index of the roll-up insert in [`housekeeping_statements`]: its change
/// count is rows written, not purged.
const ROLLUP_INDEX: usize = 5;

async fn housekeeping<D, H, R, C, S>(
    env: &CronEnv<'_, D, H, R, C, S>,
    cfg: &CronConfig,
    report: &mut RunReport,
) where
    D: SqlExecutor,
    C: Clock,
{
    match env
        .db
        .batch(housekeeping_statements(env.clock.now(), cfg))
        .await
    {
        Ok(done) => {
            let purged: u64 = done
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != ROLLUP_INDEX)
                .map(|(_, e)| e.changes)
                .sum();
            report.summary.purged = u32::try_from(purged).unwrap_or(u32::MAX);
        }
        Err(e) => report.problem(format!("housekeeping: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_reads_numbers_in_range_and_refuses_the_rest() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let defaults = CronConfig::from_lookup(|_| None).unwrap_or_default();
        assert_eq!(defaults, CronConfig::default());
        let cfg = CronConfig::from_lookup(vars(&[
            ("CRON_MAX_REFRESHES", "500"),
            ("CRON_KEEP_ALIVE_DAYS", " 10 "),
            ("CRON_MAX_EMAILS", ""),
        ]))
        .unwrap_or_default();
        assert_eq!(cfg.max_refreshes, 500);
        assert_eq!(cfg.windows.keep_alive_before, Duration::days(10));
        assert_eq!(cfg.max_emails, CronConfig::default().max_emails);
        for (name, value) in [
            ("CRON_MAX_REFRESHES", "-1"),
            ("CRON_KEEP_ALIVE_DAYS", "30"),
            ("CRON_MAX_ENQUEUE", "0"),
            ("CRON_IN_USE_MINUTES", "ten"),
        ] {
            let err = CronConfig::from_lookup(|k| (k == name).then(|| value.to_owned()));
            assert_eq!(err.map_err(|e| e.name), Err(name), "{name}={value}");
        }
    }
}
