//! The alert decisions: each condition opens, clears resolve after the
//! quiet period, a repeated condition sends no second mail, and a
//! flapping one stays one incident.

use super::*;
use chrono::TimeZone;
use proptest::prelude::*;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0)
        .single()
        .unwrap_or_default()
}

fn migrations() -> Vec<String> {
    vec!["0001_a.sql".into(), "0002_b.sql".into()]
}

/// Healthy: the previous scheduled run five minutes ago went well,
/// nothing failed, the schema is the code's.
fn healthy(now: DateTime<Utc>) -> Observations {
    Observations {
        previous_runs: vec![run(1, "inline", now - Duration::minutes(5), "ok")],
        calls: 100,
        applied_migrations: migrations(),
        expected_migrations: migrations(),
        ..Observations::default()
    }
}

fn run(id: i64, mode: &str, started: DateTime<Utc>, outcome: &str) -> RunFacts {
    RunFacts {
        id,
        mode: mode.into(),
        started_at: started.timestamp(),
        finished_at: (outcome != "running").then(|| started.timestamp() + 3),
        outcome: outcome.into(),
        breaker: None,
        refreshed: 0,
        retried: 0,
        failed: 0,
    }
}

fn kinds(found: &[Finding]) -> Vec<IncidentKind> {
    found.iter().map(|f| f.kind).collect()
}

/// Each condition, alone, on top of a healthy picture.
fn with_condition(kind: IncidentKind, now: DateTime<Utc>) -> Observations {
    let mut obs = healthy(now);
    match kind {
        IncidentKind::CronRunFailed => obs.previous_runs[0].outcome = "error".into(),
        IncidentKind::CronRunSkipped => {
            obs.previous_runs[0].started_at = (now - Duration::minutes(11)).timestamp();
        }
        IncidentKind::RefreshBreaker => obs.this_run.breaker = Some("invalid_client".into()),
        IncidentKind::RefreshFailureRate => {
            obs.this_run.refreshed = 2;
            obs.this_run.retried = 3;
        }
        IncidentKind::ServerErrorRate => {
            obs.calls = 9;
            obs.internal_errors = 0;
            obs.edge_errors = 1;
        }
        IncidentKind::HealthRegression => {
            obs.applied_migrations.pop();
        }
    }
    obs
}

#[test]
fn a_healthy_picture_finds_nothing() {
    assert_eq!(
        detect(&healthy(t0()), &AlertConfig::default(), t0()),
        vec![]
    );
}

#[test]
fn each_condition_alone_opens_its_own_kind() {
    let cfg = AlertConfig::default();
    for kind in IncidentKind::ALL {
        let found = detect(&with_condition(kind, t0()), &cfg, t0());
        assert_eq!(kinds(&found), vec![kind], "{found:?}");
        let changes = reconcile(&[], &found, &cfg, t0());
        assert!(matches!(&changes[..], [Change::Open(f)] if f.kind == kind));
    }
}

#[test]
fn thresholds_are_edges_not_approximations() {
    let cfg = AlertConfig::default();
    let now = t0();
    // Refreshes: 50 % of at least five attempts opens; 2 of 5 does not;
    // 4 of 4 is too few attempts to say anything.
    for (refreshed, retried, open) in [(2, 3, true), (3, 2, false), (0, 4, false), (5, 5, true)] {
        let mut obs = healthy(now);
        obs.this_run.refreshed = refreshed;
        obs.this_run.retried = retried;
        let found = detect(&obs, &cfg, now);
        assert_eq!(
            kinds(&found).contains(&IncidentKind::RefreshFailureRate),
            open,
            "{refreshed}/{retried}: {found:?}"
        );
    }
    // Server errors: 10 % of at least ten requests.
    for (calls, errors, open) in [
        (10, 1, true),
        (11, 1, false),
        (9, 9, false),
        (100, 10, true),
    ] {
        let mut obs = healthy(now);
        obs.calls = calls;
        obs.internal_errors = errors;
        let found = detect(&obs, &cfg, now);
        assert_eq!(
            kinds(&found).contains(&IncidentKind::ServerErrorRate),
            open,
            "{errors}/{calls}: {found:?}"
        );
    }
    // A gap of exactly two intervals is on time; a second more is not.
    for (gap_s, open) in [(600, false), (601, true)] {
        let mut obs = healthy(now);
        obs.previous_runs[0].started_at = now.timestamp() - gap_s;
        let found = detect(&obs, &cfg, now);
        assert_eq!(
            kinds(&found).contains(&IncidentKind::CronRunSkipped),
            open,
            "{gap_s}"
        );
    }
}

#[test]
fn the_breaker_is_one_incident_not_also_a_failed_run_or_a_failure_rate() {
    let now = t0();
    let mut obs = healthy(now);
    obs.this_run.breaker = Some("5 connections in a row failed".into());
    obs.this_run.retried = 5;
    obs.previous_runs[0].outcome = "error".into();
    obs.previous_runs[0].breaker = Some("invalid_client".into());
    let found = detect(&obs, &AlertConfig::default(), now);
    assert_eq!(kinds(&found), vec![IncidentKind::RefreshBreaker]);
}

#[test]
fn a_queue_consumers_breaker_and_failures_in_the_interval_count() {
    let now = t0();
    let mut obs = healthy(now);
    let mut consumer = run(2, "consume", now - Duration::minutes(2), "error");
    consumer.breaker = Some("invalid_client".into());
    obs.previous_runs.insert(0, consumer);
    assert_eq!(
        kinds(&detect(&obs, &AlertConfig::default(), now)),
        vec![IncidentKind::RefreshBreaker]
    );
    // An older consumer's breaker is history, not news.
    obs.previous_runs[0].started_at = (now - Duration::minutes(6)).timestamp();
    assert_eq!(detect(&obs, &AlertConfig::default(), now), vec![]);
}

#[test]
fn a_previous_run_that_never_finished_is_a_failed_run() {
    let now = t0();
    let mut obs = healthy(now);
    obs.previous_runs[0] = run(
        7,
        "inline",
        now - Duration::minutes(5) - Duration::seconds(1),
        "running",
    );
    let found = detect(&obs, &AlertConfig::default(), now);
    assert_eq!(kinds(&found), vec![IncidentKind::CronRunFailed]);
    assert!(found[0].details.contains("did not finish"), "{found:?}");
    // Still running but started within the interval: overlapping, not lost.
    obs.previous_runs[0] = run(7, "inline", now - Duration::minutes(4), "running");
    assert_eq!(detect(&obs, &AlertConfig::default(), now), vec![]);
}

#[test]
fn a_run_that_could_not_start_or_be_recorded_is_a_failed_run() {
    let now = t0();
    let mut obs = healthy(now);
    obs.cron_errors = 1;
    let found = detect(&obs, &AlertConfig::default(), now);
    assert_eq!(kinds(&found), vec![IncidentKind::CronRunFailed]);
    assert!(found[0].details.contains("error_log"), "{found:?}");
}

#[test]
fn a_schema_ahead_of_the_code_is_a_regression_too() {
    let now = t0();
    let mut obs = healthy(now);
    obs.applied_migrations.push("0003_newer.sql".into());
    let found = detect(&obs, &AlertConfig::default(), now);
    assert_eq!(kinds(&found), vec![IncidentKind::HealthRegression]);
    assert!(found[0].details.contains("0003_newer.sql"));
}

fn open_incident(
    id: i64,
    kind: IncidentKind,
    opened: DateTime<Utc>,
    seen: DateTime<Utc>,
) -> OpenIncident {
    OpenIncident {
        id,
        kind: kind.as_str().into(),
        opened_at: opened,
        last_seen: seen,
        details: "d".into(),
    }
}

#[test]
fn an_open_incident_seen_again_is_updated_not_reopened_and_mails_nobody() {
    let cfg = AlertConfig::default();
    let now = t0();
    let open = [open_incident(
        3,
        IncidentKind::ServerErrorRate,
        now - Duration::minutes(30),
        now - Duration::minutes(5),
    )];
    let found = detect(
        &with_condition(IncidentKind::ServerErrorRate, now),
        &cfg,
        now,
    );
    let changes = reconcile(&open, &found, &cfg, now);
    assert!(
        matches!(&changes[..], [Change::Seen { id: 3, .. }]),
        "{changes:?}"
    );
    let batches = change_batches(&changes, &["ops@example.nl".into()], now);
    assert_eq!(batches.len(), 1);
    assert!(batches[0].iter().all(|s| !s.sql.contains("email_queue")));
}

#[test]
fn a_cleared_condition_resolves_only_after_the_quiet_period() {
    let cfg = AlertConfig::default();
    let seen = t0();
    let open = [open_incident(
        4,
        IncidentKind::CronRunSkipped,
        seen - Duration::hours(1),
        seen,
    )];
    assert_eq!(
        reconcile(&open, &[], &cfg, seen + Duration::minutes(5)),
        vec![]
    );
    let changes = reconcile(&open, &[], &cfg, seen + Duration::minutes(10));
    assert!(matches!(&changes[..], [Change::Resolve(o)] if o.id == 4));
    let batches = change_batches(
        &changes,
        &["a@example.nl".into(), "b@example.nl".into()],
        seen,
    );
    assert_eq!(batches.len(), 1);
    assert!(batches[0][0].sql.contains("resolved_at"));
    assert_eq!(
        batches[0].len(),
        3,
        "the resolution and one mail per operator"
    );
}

#[test]
fn an_opened_incident_and_its_mails_are_one_batch_with_stable_dedupe_keys() {
    let now = t0();
    let changes = vec![Change::Open(Finding {
        kind: IncidentKind::RefreshBreaker,
        details: "invalid_client".into(),
    })];
    let ops = ["a@example.nl".to_owned(), "b@example.nl".to_owned()];
    let first = change_batches(&changes, &ops, now);
    let again = change_batches(&changes, &ops, now);
    assert_eq!(first, again, "the same incident builds the same keys");
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].len(), 3);
    assert!(first[0][0].sql.starts_with("INSERT INTO incidents"));
    let keys: Vec<String> = first[0][1..]
        .iter()
        .filter_map(|s| match s.params.get(6) {
            Some(crate::storage::SqlValue::Text(k)) => Some(k.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        keys,
        vec![
            format!(
                "incident:refresh_breaker:{}:opened:a@example.nl",
                now.timestamp()
            ),
            format!(
                "incident:refresh_breaker:{}:opened:b@example.nl",
                now.timestamp()
            ),
        ]
    );
}

#[test]
fn without_operators_incidents_are_still_recorded() {
    let changes = vec![Change::Open(Finding {
        kind: IncidentKind::HealthRegression,
        details: "x".into(),
    })];
    let batches = change_batches(&changes, &[], t0());
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].len(), 1);
}

/// Simulates the check run after run over a sequence of "condition holds"
/// flags, five minutes apart, as the table and the mail queue would see it.
fn simulate(flags: &[bool]) -> (u32, u32) {
    let cfg = AlertConfig::default();
    let kind = IncidentKind::ServerErrorRate;
    let mut open: Vec<OpenIncident> = Vec::new();
    let (mut opened, mut resolved) = (0, 0);
    let mut next_id = 1;
    for (i, holds) in flags.iter().enumerate() {
        let now = t0() + Duration::minutes(5 * i as i64);
        let obs = if *holds {
            with_condition(kind, now)
        } else {
            healthy(now)
        };
        let found = detect(&obs, &cfg, now);
        for change in reconcile(&open, &found, &cfg, now) {
            match change {
                Change::Open(f) => {
                    opened += 1;
                    open.push(OpenIncident {
                        id: next_id,
                        kind: f.kind.as_str().into(),
                        opened_at: now,
                        last_seen: now,
                        details: f.details,
                    });
                    next_id += 1;
                }
                Change::Seen { id, .. } => {
                    if let Some(o) = open.iter_mut().find(|o| o.id == id) {
                        o.last_seen = now;
                    }
                }
                Change::Resolve(o) => {
                    resolved += 1;
                    open.retain(|x| x.id != o.id);
                }
            }
        }
    }
    (opened, resolved)
}

#[test]
fn flapping_every_other_run_is_one_incident() {
    assert_eq!(
        simulate(&[true, false, true, false, true, false, false]),
        (1, 1)
    );
    // Gone for two runs, then back: a new incident.
    assert_eq!(simulate(&[true, false, false, true, false, false]), (2, 2));
}

proptest! {
    /// Whatever the sequence: never more resolutions than openings, at
    /// most one more opening than resolutions (one open at a time), and
    /// no opening while one is open (each opening follows a resolution or
    /// the start).
    #[test]
    fn any_sequence_keeps_one_incident_at_a_time(flags in proptest::collection::vec(any::<bool>(), 0..40)) {
        let (opened, resolved) = simulate(&flags);
        prop_assert!(resolved <= opened);
        prop_assert!(opened <= resolved + 1);
        let runs_of_trues = flags.iter().filter(|f| **f).count() as u32;
        prop_assert!(opened <= runs_of_trues);
        // Ending with two clear runs always leaves nothing open.
        let mut ended = flags.clone();
        ended.extend([false, false, false]);
        let (o, r) = simulate(&ended);
        prop_assert_eq!(o, r);
    }
}
