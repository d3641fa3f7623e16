//! The deep health check (`/health/deep`), pure: who may ask (the
//! operator's bearer token, compared in constant time through hashes) and
//! the verdict on what a Worker found (migrations expected by this bundle
//! versus applied in D1, the settings it needs, KV, the last cron run):
//! healthy or not, and every reason why not. The Workers gather the facts
//! (`boekhouding-cf::health`); every rule about them lives here.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// The migration files this build was made with, in the order wrangler
/// applies them (compiled in from `migrations/` by `build.rs`).
pub const EXPECTED_MIGRATIONS: &[&str] = include!(concat!(env!("OUT_DIR"), "/migrations.rs"));

/// The cron runs every five minutes; three missed ticks in a row are a
/// problem, not a delay.
pub const CRON_STALE_AFTER_S: i64 = 15 * 60;

/// An operator token shorter than this is treated as unset: a guessable
/// token must not open the deep check.
pub const MIN_OPERATOR_TOKEN_LEN: usize = 32;

/// What the deep check answers a caller, before it looks at anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperatorAccess {
    /// No (usable) `OPERATOR_TOKEN` is configured: the route does not
    /// exist (404), it is never open.
    NotConfigured,
    /// No token, or a wrong one: 401 without details.
    Refused,
    Granted,
}

/// Whether `authorization` (the request's header) carries the configured
/// operator token. Both sides are hashed first, so the comparison runs
/// over equal lengths and its time says nothing about the token.
pub fn operator_access(authorization: Option<&str>, configured: Option<&str>) -> OperatorAccess {
    let Some(expected) = configured
        .map(str::trim)
        .filter(|t| t.len() >= MIN_OPERATOR_TOKEN_LEN)
    else {
        return OperatorAccess::NotConfigured;
    };
    let given = authorization
        .map(str::trim)
        .and_then(|h| h.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    let Some(given) = given else {
        return OperatorAccess::Refused;
    };
    let (a, b) = (
        Sha256::digest(given.as_bytes()),
        Sha256::digest(expected.as_bytes()),
    );
    let differ = a
        .iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y));
    if differ == 0 {
        OperatorAccess::Granted
    } else {
        OperatorAccess::Refused
    }
}

/// One setting this Worker needs, as found in its environment. Names only:
/// a value never reaches the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SettingFound {
    pub name: &'static str,
    pub present: bool,
    /// A deployed environment must carry it.
    pub required: bool,
}

/// The last cron run as `cron_runs` records it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct LastCronRun {
    pub id: i64,
    pub mode: String,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    /// `running`, `ok`, `partial` or `error`.
    pub outcome: String,
    pub breaker: Option<String>,
}

/// What a Worker found, for [`assess`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Findings {
    pub service: &'static str,
    /// `local`, `staging` or `production`.
    pub environment: String,
    pub now: DateTime<Utc>,
    /// The names in `d1_migrations`, or `None` when D1 did not answer.
    pub applied_migrations: Option<Vec<String>>,
    pub settings: Vec<SettingFound>,
    /// `None`: this Worker has no KV namespace to probe.
    pub kv_reachable: Option<bool>,
    /// The newest run (`None` inside: none recorded yet); `None` outside:
    /// it could not be read (a reason, unless D1 is down, which is one).
    pub last_cron_run: Option<Option<LastCronRun>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MigrationsReport {
    pub expected: Vec<String>,
    pub applied: Vec<String>,
    /// Expected by this code, not applied in D1: the code may read a
    /// column or table that is not there. Unhealthy.
    pub not_applied: Vec<String>,
    /// Applied in D1, unknown to this code: a newer schema than the code
    /// (right after a migration, or after a code rollback). Reported, not
    /// unhealthy: migrations must stay compatible with the code before
    /// them (`docs/runbooks/DEPLOY.md`), and a rollback must be able to
    /// pass this check.
    pub unknown: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SettingsReport {
    pub present: Vec<&'static str>,
    /// Missing and required in a deployed environment.
    pub missing_required: Vec<&'static str>,
    /// Missing and optional (or required only when deployed, locally).
    pub missing_optional: Vec<&'static str>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CronReport {
    pub id: i64,
    pub mode: String,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    /// Seconds since the run started (never negative: a local trigger may
    /// name a future time).
    pub age_s: i64,
    pub outcome: String,
    pub breaker: Option<String>,
}

/// The parts of the deep check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    Database,
    Migrations,
    Settings,
    Kv,
    Cron,
}

/// The deep check's answer (the JSON body of `/health/deep`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeepReport {
    pub service: &'static str,
    pub environment: String,
    pub healthy: bool,
    /// Why not healthy; empty when healthy.
    pub reasons: Vec<String>,
    /// Which checks the reasons belong to, so a caller can weigh them (a
    /// deploy may well be the fix for a failing cron, for instance).
    pub failed: Vec<Check>,
    /// Worth knowing, not a failure (no cron run yet, a newer schema).
    pub notes: Vec<String>,
    pub database_reachable: bool,
    /// `None` when D1 did not answer.
    pub migrations: Option<MigrationsReport>,
    pub settings: SettingsReport,
    /// `None`: this Worker has no KV namespace.
    pub kv_reachable: Option<bool>,
    /// `None`: no run recorded, or D1 did not answer.
    pub last_cron_run: Option<CronReport>,
}

impl DeepReport {
    /// 200 when healthy, 503 otherwise.
    pub fn status(&self) -> u16 {
        if self.healthy { 200 } else { 503 }
    }
}

/// The verdict on what a Worker found, with `expected` the migrations its
/// bundle was built with (normally [`EXPECTED_MIGRATIONS`]).
pub fn assess(found: Findings, expected: &[&str]) -> DeepReport {
    let mut reasons = Vec::new();
    let mut failed = Vec::new();
    let mut notes = Vec::new();
    let deployed = found.environment != "local";

    let database_reachable = found.applied_migrations.is_some();
    if !database_reachable {
        reasons.push("database unreachable".to_owned());
        failed.push(Check::Database);
    }
    let migrations = found.applied_migrations.map(|applied| {
        let not_applied: Vec<String> = expected
            .iter()
            .filter(|e| !applied.iter().any(|a| a == *e))
            .map(|e| (*e).to_owned())
            .collect();
        let unknown: Vec<String> = applied
            .iter()
            .filter(|a| !expected.contains(&a.as_str()))
            .cloned()
            .collect();
        if !not_applied.is_empty() {
            failed.push(Check::Migrations);
            reasons.push(format!(
                "migrations not applied: {}",
                not_applied.join(", ")
            ));
        }
        if !unknown.is_empty() {
            notes.push(format!(
                "migrations applied that this code does not know: {}",
                unknown.join(", ")
            ));
        }
        MigrationsReport {
            expected: expected.iter().map(|e| (*e).to_owned()).collect(),
            applied,
            not_applied,
            unknown,
        }
    });

    let mut settings = SettingsReport {
        present: Vec::new(),
        missing_required: Vec::new(),
        missing_optional: Vec::new(),
    };
    for s in &found.settings {
        match (s.present, s.required && deployed) {
            (true, _) => settings.present.push(s.name),
            (false, true) => settings.missing_required.push(s.name),
            (false, false) => settings.missing_optional.push(s.name),
        }
    }
    if !settings.missing_required.is_empty() {
        failed.push(Check::Settings);
        reasons.push(format!(
            "required settings missing: {}",
            settings.missing_required.join(", ")
        ));
    }

    if found.kv_reachable == Some(false) {
        reasons.push("KV unreachable".to_owned());
        failed.push(Check::Kv);
    }

    let now = found.now.timestamp();
    // Every reason pushed from here on is about the cron.
    let cron_reasons_from = reasons.len();
    let last_cron_run = match found.last_cron_run {
        // D1 down: already a reason.
        None if !database_reachable => None,
        None => {
            reasons.push("the last cron run could not be read".to_owned());
            None
        }
        Some(None) => {
            notes.push("no cron run recorded yet".to_owned());
            None
        }
        Some(Some(run)) => {
            let age_s = (now - run.started_at).max(0);
            let minutes = age_s / 60;
            match (run.outcome.as_str(), run.finished_at) {
                ("running", None) if age_s > CRON_STALE_AFTER_S => reasons.push(format!(
                    "the last cron run (id {}) started {minutes} minutes ago and never finished",
                    run.id
                )),
                ("running", None) => {}
                _ if age_s > CRON_STALE_AFTER_S => reasons.push(format!(
                    "the last cron run (id {}) started {minutes} minutes ago; it runs every 5 minutes",
                    run.id
                )),
                _ => {}
            }
            if run.outcome == "error" {
                reasons.push(format!("the last cron run (id {}) failed", run.id));
            }
            if run.breaker.is_some() {
                reasons.push(format!(
                    "the last cron run (id {}) stopped refreshing: its breaker tripped",
                    run.id
                ));
            }
            Some(CronReport {
                id: run.id,
                mode: run.mode,
                started_at: run.started_at,
                finished_at: run.finished_at,
                age_s,
                outcome: run.outcome,
                breaker: run.breaker,
            })
        }
    };

    let cron_reasons_from = cron_reasons_from.min(reasons.len());
    if reasons.len() > cron_reasons_from {
        failed.push(Check::Cron);
    }
    DeepReport {
        service: found.service,
        environment: found.environment,
        healthy: reasons.is_empty(),
        reasons,
        failed,
        notes,
        database_reachable,
        migrations,
        settings,
        kv_reachable: found.kv_reachable,
        last_cron_run,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const TOKEN: &str = "0123456789abcdef0123456789abcdef0123456789abcdef";
    const EXPECTED: &[&str] = &["0001_a.sql", "0002_b.sql"];

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 4, 0, 0).unwrap()
    }

    fn run(age_s: i64, outcome: &str) -> LastCronRun {
        LastCronRun {
            id: 7,
            mode: "inline".into(),
            started_at: now().timestamp() - age_s,
            finished_at: (outcome != "running").then(|| now().timestamp() - age_s + 2),
            outcome: outcome.into(),
            breaker: None,
        }
    }

    /// Everything in order, in a deployed environment.
    fn healthy() -> Findings {
        Findings {
            service: "mcp-server",
            environment: "production".into(),
            now: now(),
            applied_migrations: Some(vec!["0001_a.sql".into(), "0002_b.sql".into()]),
            settings: vec![
                SettingFound {
                    name: "EXACT_CLIENT_ID",
                    present: true,
                    required: true,
                },
                SettingFound {
                    name: "DEMO_MODE",
                    present: false,
                    required: false,
                },
            ],
            kv_reachable: Some(true),
            last_cron_run: Some(Some(run(120, "ok"))),
        }
    }

    #[test]
    fn the_operator_token_opens_the_check_and_nothing_else_does() {
        let bearer = format!("Bearer {TOKEN}");
        assert_eq!(
            operator_access(Some(&bearer), Some(TOKEN)),
            OperatorAccess::Granted
        );
        let lower = format!("bearer  {TOKEN} ");
        assert_eq!(
            operator_access(Some(&lower), Some(TOKEN)),
            OperatorAccess::Granted
        );
        for wrong in [
            None,
            Some(""),
            Some("Bearer"),
            Some("Bearer "),
            Some(TOKEN),
            Some("Basic MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="),
            Some("Bearer 0123456789abcdef0123456789abcdef0123456789abcdee"),
            Some("Bearer 0123456789abcdef0123456789abcdef0123456789abcdef0"),
        ] {
            assert_eq!(
                operator_access(wrong, Some(TOKEN)),
                OperatorAccess::Refused,
                "{wrong:?}"
            );
        }
    }

    #[test]
    fn without_a_usable_operator_token_the_check_is_never_open() {
        let bearer = format!("Bearer {TOKEN}");
        for configured in [None, Some(""), Some("   "), Some("short-token")] {
            assert_eq!(
                operator_access(Some(&bearer), configured),
                OperatorAccess::NotConfigured
            );
            assert_eq!(
                operator_access(None, configured),
                OperatorAccess::NotConfigured
            );
            // An empty header must not match an empty token.
            assert_eq!(
                operator_access(Some("Bearer "), configured),
                OperatorAccess::NotConfigured
            );
        }
    }

    #[test]
    fn everything_in_order_is_healthy_with_the_facts_reported() {
        let report = assess(healthy(), EXPECTED);
        assert!(report.healthy, "{:?}", report.reasons);
        assert_eq!(report.status(), 200);
        assert!(report.reasons.is_empty() && report.failed.is_empty());
        let m = report.migrations.as_ref().unwrap();
        assert_eq!(m.expected, ["0001_a.sql", "0002_b.sql"]);
        assert!(m.not_applied.is_empty() && m.unknown.is_empty());
        assert_eq!(report.settings.present, ["EXACT_CLIENT_ID"]);
        assert_eq!(report.settings.missing_optional, ["DEMO_MODE"]);
        let cron = report.last_cron_run.as_ref().unwrap();
        assert_eq!((cron.age_s, cron.outcome.as_str()), (120, "ok"));
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["healthy"], true);
        assert_eq!(json["kv_reachable"], true);
    }

    /// Each check alone fails the verdict, with a reason that names it.
    #[test]
    fn each_finding_alone_makes_the_check_unhealthy_and_says_why() {
        type Breaks = Box<dyn Fn(&mut Findings)>;
        let cases: Vec<(&str, Check, Breaks)> = vec![
            (
                "database unreachable",
                Check::Database,
                Box::new(|f| {
                    f.applied_migrations = None;
                    f.last_cron_run = None;
                }),
            ),
            (
                "migrations not applied: 0002_b.sql",
                Check::Migrations,
                Box::new(|f| {
                    f.applied_migrations = Some(vec!["0001_a.sql".into()]);
                }),
            ),
            (
                "required settings missing: EXACT_CLIENT_ID",
                Check::Settings,
                Box::new(|f| {
                    f.settings[0].present = false;
                }),
            ),
            (
                "KV unreachable",
                Check::Kv,
                Box::new(|f| f.kv_reachable = Some(false)),
            ),
            (
                "the last cron run could not be read",
                Check::Cron,
                Box::new(|f| {
                    f.last_cron_run = None;
                }),
            ),
            (
                "started 20 minutes ago; it runs every 5 minutes",
                Check::Cron,
                Box::new(|f| {
                    f.last_cron_run = Some(Some(run(20 * 60, "ok")));
                }),
            ),
            (
                "started 16 minutes ago and never finished",
                Check::Cron,
                Box::new(|f| {
                    f.last_cron_run = Some(Some(run(16 * 60, "running")));
                }),
            ),
            (
                "(id 7) failed",
                Check::Cron,
                Box::new(|f| {
                    f.last_cron_run = Some(Some(run(60, "error")));
                }),
            ),
            (
                "its breaker tripped",
                Check::Cron,
                Box::new(|f| {
                    let mut r = run(60, "partial");
                    r.breaker = Some("invalid_client".into());
                    f.last_cron_run = Some(Some(r));
                }),
            ),
        ];
        for (reason, check, break_it) in cases {
            let mut found = healthy();
            break_it(&mut found);
            let report = assess(found, EXPECTED);
            assert!(!report.healthy, "{reason}: still healthy");
            assert_eq!(report.status(), 503);
            assert_eq!(report.reasons.len(), 1, "{reason}: {:?}", report.reasons);
            assert_eq!(report.failed, [check], "{reason}");
            assert!(
                report.reasons[0].contains(reason),
                "{reason}: {:?}",
                report.reasons
            );
        }
    }

    #[test]
    fn what_is_worth_knowing_but_no_failure_stays_a_note() {
        let mut found = healthy();
        // A newer schema (after a migration, or a code rollback), no run
        // yet, a running run within its time, a partial run, no KV.
        found.applied_migrations = Some(vec![
            "0001_a.sql".into(),
            "0002_b.sql".into(),
            "0003_c.sql".into(),
        ]);
        found.last_cron_run = Some(None);
        found.kv_reachable = None;
        let report = assess(found, EXPECTED);
        assert!(report.healthy, "{:?}", report.reasons);
        assert_eq!(report.migrations.unwrap().unknown, ["0003_c.sql"]);
        assert_eq!(report.notes.len(), 2, "{:?}", report.notes);
        for outcome in ["running", "partial"] {
            let mut found = healthy();
            found.last_cron_run = Some(Some(run(4 * 60, outcome)));
            assert!(assess(found, EXPECTED).healthy, "{outcome}");
        }
        // A local trigger may name a future time: the age is never negative.
        let mut found = healthy();
        found.last_cron_run = Some(Some(run(-3600, "ok")));
        assert_eq!(assess(found, EXPECTED).last_cron_run.unwrap().age_s, 0);
    }

    #[test]
    fn a_setting_required_when_deployed_is_no_failure_locally() {
        let mut found = healthy();
        found.environment = "local".into();
        found.settings[0].present = false;
        let report = assess(found, EXPECTED);
        assert!(report.healthy, "{:?}", report.reasons);
        assert_eq!(
            report.settings.missing_optional,
            ["EXACT_CLIENT_ID", "DEMO_MODE"]
        );
    }

    #[test]
    fn the_bundle_knows_every_migration_file_in_order() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".sql"))
            .collect();
        files.sort();
        assert!(!files.is_empty());
        assert_eq!(EXPECTED_MIGRATIONS, files.as_slice());
    }
}
