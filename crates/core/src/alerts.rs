//! What an operator must hear about at once, decided purely: the token
//! cron gathers [`Observations`] each run (one database round trip),
//! [`detect`] says which conditions hold, [`reconcile`] compares them with
//! the open incidents, and [`change_batches`] turns the changes into
//! writes: an incident row and its "opened" mail in one batch, its
//! "resolved" mail with the row's resolution in another.
//!
//! One incident per condition, however many runs see it: a kind has at
//! most one open incident (the table's unique index), and it stays open
//! while the condition returns within [`AlertConfig::quiet_before_resolve`]
//! of when it was last seen, so a flapping condition is one incident and
//! one pair of mails, not one per flap.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};

use crate::mail;
use crate::storage::cron_runs::RunFacts;
use crate::storage::incidents::{self, OpenIncident};
use crate::storage::{Statement, email_queue};

/// Minutes between scheduled runs (the Worker's cron trigger).
pub const DEFAULT_INTERVAL_MINUTES: u32 = 5;
/// A refresh failure rate at or above this percentage opens an incident.
pub const DEFAULT_REFRESH_FAILURE_PERCENT: u32 = 50;
/// ... but only over at least this many refresh attempts in the interval,
/// so one user's revoked consent is no incident.
pub const REFRESH_MIN_ATTEMPTS: u32 = 5;
/// A server error rate at or above this percentage opens an incident.
pub const DEFAULT_SERVER_ERROR_PERCENT: u32 = 10;
/// ... but only over at least this many requests in the interval.
pub const SERVER_ERROR_MIN_CALLS: u32 = 10;
/// A gap of more than this many intervals since the last scheduled run is
/// a skipped run.
pub const SKIPPED_AFTER_INTERVALS: i32 = 2;
/// An incident resolves once its condition has been absent this many
/// intervals (two runs in a row at the default schedule).
pub const RESOLVE_AFTER_INTERVALS: i32 = 2;

/// The conditions an operator hears about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IncidentKind {
    /// The previous scheduled run ended in error (other than the breaker)
    /// or did not finish, or a run could not start or be recorded.
    CronRunFailed,
    /// No scheduled run for more than [`SKIPPED_AFTER_INTERVALS`] intervals.
    CronRunSkipped,
    /// The refresh breaker stopped a run's refreshing.
    RefreshBreaker,
    /// Too many refreshes failed in the last interval.
    RefreshFailureRate,
    /// Too many MCP requests ended in an internal error in the last interval.
    ServerErrorRate,
    /// The database's applied migrations are not the ones this build
    /// expects (a migration missing, or code older than the schema).
    HealthRegression,
}

impl IncidentKind {
    pub const ALL: [IncidentKind; 6] = [
        IncidentKind::CronRunFailed,
        IncidentKind::CronRunSkipped,
        IncidentKind::RefreshBreaker,
        IncidentKind::RefreshFailureRate,
        IncidentKind::ServerErrorRate,
        IncidentKind::HealthRegression,
    ];

    /// The stored `kind` (the table's CHECK lists these).
    pub const fn as_str(self) -> &'static str {
        match self {
            IncidentKind::CronRunFailed => "cron_run_failed",
            IncidentKind::CronRunSkipped => "cron_run_skipped",
            IncidentKind::RefreshBreaker => "refresh_breaker",
            IncidentKind::RefreshFailureRate => "refresh_failure_rate",
            IncidentKind::ServerErrorRate => "server_error_rate",
            IncidentKind::HealthRegression => "health_regression",
        }
    }

    pub fn parse(s: &str) -> Option<IncidentKind> {
        IncidentKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// A short title for mail subjects.
    pub const fn title(self) -> &'static str {
        match self {
            IncidentKind::CronRunFailed => "a token-cron run failed",
            IncidentKind::CronRunSkipped => "token-cron runs were skipped",
            IncidentKind::RefreshBreaker => "token refresh stopped by the breaker",
            IncidentKind::RefreshFailureRate => "token refreshes are failing",
            IncidentKind::ServerErrorRate => "the MCP server answers with server errors",
            IncidentKind::HealthRegression => "the database schema is not the deployed code's",
        }
    }

    /// Where to look first.
    pub const fn advice(self) -> &'static str {
        match self {
            IncidentKind::CronRunFailed => {
                "Look at the notes of the newest cron_runs rows and the token-cron logs (wrangler tail token-cron)."
            }
            IncidentKind::CronRunSkipped => {
                "Check the token-cron Worker's cron trigger and deployment in the Cloudflare dashboard, and its logs."
            }
            IncidentKind::RefreshBreaker => {
                "If Exact refused the client, check EXACT_CLIENT_ID and EXACT_CLIENT_SECRET of token-cron and mcp-server. Otherwise look at the cron_runs notes and the logs. The next run tries again by itself; connections refresh as soon as the cause is gone."
            }
            IncidentKind::RefreshFailureRate => {
                "Look at last_error of the connections in retry_pending and the cron_runs notes; Exact's status page may explain it."
            }
            IncidentKind::ServerErrorRate => {
                "Look at the newest error_log rows and the mcp-server logs (wrangler tail mcp-server); /health/deep says whether D1 answers."
            }
            IncidentKind::HealthRegression => {
                "Compare the deployed commit with the applied migrations (d1_migrations); apply the missing migrations or deploy the code that matches them."
            }
        }
    }
}

/// Thresholds and timing; every threshold is a variable of token-cron.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertConfig {
    /// Time between scheduled runs (`CRON_INTERVAL_MINUTES`).
    pub interval: Duration,
    /// `ALERT_REFRESH_FAILURE_PERCENT`.
    pub refresh_failure_percent: u32,
    /// `ALERT_SERVER_ERROR_PERCENT`.
    pub server_error_percent: u32,
}

impl Default for AlertConfig {
    fn default() -> Self {
        AlertConfig {
            interval: Duration::minutes(i64::from(DEFAULT_INTERVAL_MINUTES)),
            refresh_failure_percent: DEFAULT_REFRESH_FAILURE_PERCENT,
            server_error_percent: DEFAULT_SERVER_ERROR_PERCENT,
        }
    }
}

impl AlertConfig {
    /// How long a condition must be absent before its incident resolves.
    pub fn quiet_before_resolve(&self) -> Duration {
        self.interval * RESOLVE_AFTER_INTERVALS
    }
}

/// What the current run itself knows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ThisRun {
    pub breaker: Option<String>,
    pub refreshed: u32,
    pub retried: u32,
    pub failed: u32,
}

/// Everything the check looks at, read in one round trip.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observations {
    /// Runs recorded before this one, newest first.
    pub previous_runs: Vec<RunFacts>,
    pub this_run: ThisRun,
    /// MCP tool calls logged in the last interval, and how many ended in
    /// an internal error.
    pub calls: u64,
    pub internal_errors: u64,
    /// mcp-server `error_log` rows in the last interval: requests answered
    /// 5xx before any tool ran (no usage row of their own).
    pub edge_errors: u64,
    /// token-cron `error_log` rows in the last interval: runs (or queue
    /// batches) that could not start or not be recorded.
    pub cron_errors: u64,
    pub applied_migrations: Vec<String>,
    pub expected_migrations: Vec<String>,
}

/// A condition that holds now, with secret-free details for the mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub kind: IncidentKind,
    pub details: String,
}

fn when(secs: i64) -> String {
    DateTime::<Utc>::from_timestamp(secs, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| secs.to_string())
}

/// The conditions that hold at `now`.
pub fn detect(obs: &Observations, cfg: &AlertConfig, now: DateTime<Utc>) -> Vec<Finding> {
    let mut found = Vec::new();
    let now_s = now.timestamp();
    let interval_s = cfg.interval.num_seconds().max(1);
    let window_start = now_s - interval_s;
    let scheduled = obs.previous_runs.iter().find(|r| r.mode != "consume");
    let recent_consumers = obs
        .previous_runs
        .iter()
        .filter(|r| r.mode == "consume" && r.started_at >= window_start);

    // A failed or unfinished previous run (the breaker has its own kind).
    let mut failures = Vec::new();
    if let Some(run) = scheduled {
        if run.outcome == "error" && run.breaker.is_none() {
            failures.push(format!(
                "run {} started {} ended in error",
                run.id,
                when(run.started_at)
            ));
        } else if run.outcome == "running" && now_s - run.started_at > interval_s {
            failures.push(format!(
                "run {} started {} did not finish",
                run.id,
                when(run.started_at)
            ));
        }
    }
    for run in recent_consumers.clone() {
        if run.outcome == "error" && run.breaker.is_none() {
            failures.push(format!("queue consumer run {} ended in error", run.id));
        }
    }
    if obs.cron_errors > 0 {
        failures.push(format!(
            "{} run(s) could not start or be recorded in the last {} minutes (see error_log)",
            obs.cron_errors,
            interval_s / 60
        ));
    }
    if !failures.is_empty() {
        found.push(Finding {
            kind: IncidentKind::CronRunFailed,
            details: failures.join("; "),
        });
    }

    // A gap: the previous scheduled run is too long ago (a clock moved
    // back, as tests do, is no gap).
    if let Some(run) = scheduled {
        let gap = now_s - run.started_at;
        if gap > interval_s * i64::from(SKIPPED_AFTER_INTERVALS) {
            found.push(Finding {
                kind: IncidentKind::CronRunSkipped,
                details: format!(
                    "no scheduled run since {} ({} minutes; runs are due every {} minutes)",
                    when(run.started_at),
                    gap / 60,
                    interval_s / 60
                ),
            });
        }
    }

    // The breaker: this run's, or a queue consumer's in the interval.
    let breaker = obs
        .this_run
        .breaker
        .clone()
        .or_else(|| recent_consumers.clone().find_map(|r| r.breaker.clone()));
    if let Some(why) = &breaker {
        found.push(Finding {
            kind: IncidentKind::RefreshBreaker,
            details: why.clone(),
        });
    }

    // The refresh failure rate, unless the breaker already explains it.
    let mut attempts =
        u64::from(obs.this_run.refreshed + obs.this_run.retried + obs.this_run.failed);
    let mut failed = u64::from(obs.this_run.retried + obs.this_run.failed);
    for r in recent_consumers {
        attempts += u64::from(r.refreshed + r.retried + r.failed);
        failed += u64::from(r.retried + r.failed);
    }
    if breaker.is_none()
        && attempts >= u64::from(REFRESH_MIN_ATTEMPTS)
        && failed * 100 >= u64::from(cfg.refresh_failure_percent) * attempts
    {
        found.push(Finding {
            kind: IncidentKind::RefreshFailureRate,
            details: format!(
                "{failed} of {attempts} token refreshes in the last {} minutes failed (threshold {} %)",
                interval_s / 60,
                cfg.refresh_failure_percent
            ),
        });
    }

    // The server error rate.
    let requests = obs.calls + obs.edge_errors;
    let errors = obs.internal_errors + obs.edge_errors;
    if requests >= u64::from(SERVER_ERROR_MIN_CALLS)
        && errors * 100 >= u64::from(cfg.server_error_percent) * requests
    {
        found.push(Finding {
            kind: IncidentKind::ServerErrorRate,
            details: format!(
                "{errors} of {requests} MCP requests in the last {} minutes ended in a server error (threshold {} %)",
                interval_s / 60,
                cfg.server_error_percent
            ),
        });
    }

    // The schema against the code.
    let applied: BTreeSet<&str> = obs.applied_migrations.iter().map(String::as_str).collect();
    let expected: BTreeSet<&str> = obs.expected_migrations.iter().map(String::as_str).collect();
    if applied != expected {
        let missing: Vec<&str> = expected.difference(&applied).copied().collect();
        let unknown: Vec<&str> = applied.difference(&expected).copied().collect();
        let mut parts = Vec::new();
        if !missing.is_empty() {
            parts.push(format!("not applied: {}", missing.join(", ")));
        }
        if !unknown.is_empty() {
            parts.push(format!(
                "applied but unknown to this build: {}",
                unknown.join(", ")
            ));
        }
        found.push(Finding {
            kind: IncidentKind::HealthRegression,
            details: parts.join("; "),
        });
    }
    found
}

/// What to do about one kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A new incident: its row and its "opened" mail.
    Open(Finding),
    /// Still there: when it was last seen, and its details now.
    Seen { id: i64, details: String },
    /// Absent for the quiet period: resolved, with its "resolved" mail.
    Resolve(OpenIncident),
}

/// Compares what holds now with what is open.
pub fn reconcile(
    open: &[OpenIncident],
    findings: &[Finding],
    cfg: &AlertConfig,
    now: DateTime<Utc>,
) -> Vec<Change> {
    let mut changes = Vec::new();
    for f in findings {
        match open.iter().find(|o| o.kind == f.kind.as_str()) {
            Some(o) => changes.push(Change::Seen {
                id: o.id,
                details: f.details.clone(),
            }),
            None => changes.push(Change::Open(f.clone())),
        }
    }
    for o in open {
        let still = findings.iter().any(|f| f.kind.as_str() == o.kind);
        if !still && now - o.last_seen >= cfg.quiet_before_resolve() {
            changes.push(Change::Resolve(o.clone()));
        }
    }
    changes
}

/// The writes for `changes`: one batch per opened or resolved incident
/// (the row's change with its mails, so a conflict or a failure costs
/// only that incident's batch and never sends a mail twice), and one for
/// all the "still seen" updates.
pub fn change_batches(
    changes: &[Change],
    operators: &[String],
    now: DateTime<Utc>,
) -> Vec<Vec<Statement>> {
    let mut batches = Vec::new();
    let mut seen = Vec::new();
    for change in changes {
        match change {
            Change::Open(f) => {
                let mut batch = vec![incidents::open_insert_statement(
                    f.kind.as_str(),
                    &f.details,
                    now,
                )];
                batch.extend(operators.iter().map(|to| {
                    email_queue::enqueue_statement(
                        &mail::incident_opened(to, f.kind, &f.details, now),
                        now,
                    )
                }));
                batches.push(batch);
            }
            Change::Seen { id, details } => {
                seen.push(incidents::seen_statement(*id, details, now));
            }
            Change::Resolve(o) => {
                let mut batch = vec![incidents::resolve_statement(o.id, now)];
                if let Some(kind) = IncidentKind::parse(&o.kind) {
                    batch.extend(operators.iter().map(|to| {
                        email_queue::enqueue_statement(
                            &mail::incident_resolved(to, kind, &o.details, o.opened_at, now),
                            now,
                        )
                    }));
                }
                batches.push(batch);
            }
        }
    }
    if !seen.is_empty() {
        batches.push(seen);
    }
    batches
}

#[cfg(test)]
mod tests;
