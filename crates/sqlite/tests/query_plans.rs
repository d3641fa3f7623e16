//! Every query the token cron runs on a schedule is an index search, never
//! a table scan: proven with SQLite's `EXPLAIN QUERY PLAN` on the real
//! migrations and the very statement text the cron sends to D1.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use boekhouding_core::cron::{CronConfig, housekeeping_statements};
use boekhouding_core::region::Region;
use boekhouding_core::storage::connections::{self, Notice, NoticeKind};
use boekhouding_core::storage::{Statement, email_queue};
use boekhouding_sqlite::SqliteDb;
use chrono::{DateTime, Duration, TimeZone, Utc};

const TABLES: &[&str] = &[
    "connections",
    "users",
    "email_queue",
    "sessions",
    "oauth_auth_codes",
    "oauth_tokens",
    "oauth_grants",
    "oauth_clients",
    "api_keys",
    "api_usage",
    "cron_runs",
    "error_log",
    "security_events",
    "audit_log",
    "incidents",
    "billing_accounts",
    "c",
    "u",
    "b",
];

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, 0).unwrap()
}

/// Partial indexes hold exactly the rows a query wants, so walking one
/// whole is the intended plan.
const PARTIAL_INDEXES: &[&str] = &["idx_connections_unnotified", "idx_incidents_open"];

/// The plan, after checking that no step scans a table (or a full index).
fn plan_without_scans(db: &SqliteDb, stmt: &Statement) -> Vec<String> {
    let plan = db.query_plan(stmt).unwrap();
    for step in &plan {
        let partial = PARTIAL_INDEXES
            .iter()
            .any(|i| step.ends_with(&format!("USING INDEX {i}")));
        for t in TABLES {
            assert!(
                partial
                    || !(step == &format!("SCAN {t}") || step.starts_with(&format!("SCAN {t} "))),
                "table scan in\n{}\nplan: {plan:#?}",
                stmt.sql
            );
        }
    }
    assert!(!plan.is_empty());
    plan
}

fn uses(plan: &[String], index: &str) -> bool {
    plan.iter().any(|s| s.contains(index))
}

#[test]
fn due_selection_searches_one_index_per_reason() {
    let db = SqliteDb::migrated().unwrap();
    let cfg = CronConfig::default();
    let plan = plan_without_scans(&db, &connections::due_statement(now(), &cfg.windows, 20));
    for index in [
        "idx_connections_status_retry (status=? AND next_retry_at<?)",
        "idx_connections_status_access (status=? AND access_expires_at>? AND access_expires_at<?)",
        "idx_connections_status_refresh (status=? AND refresh_expires_at<?)",
    ] {
        assert!(uses(&plan, index), "{index} missing from {plan:#?}");
    }
}

#[test]
fn notice_selection_uses_the_partial_and_status_indexes() {
    let db = SqliteDb::migrated().unwrap();
    let plan = plan_without_scans(
        &db,
        &connections::notice_statement(now(), Duration::days(3), 20),
    );
    assert!(uses(&plan, "idx_connections_unnotified"), "{plan:#?}");
    assert!(uses(&plan, "idx_connections_status_refresh"), "{plan:#?}");
}

#[test]
fn lease_mail_claim_and_marks_address_rows_by_key() {
    let db = SqliteDb::migrated().unwrap();
    let claim = Statement::new(
        email_queue::CLAIM_SQL,
        vec![now().into(), now().into(), 5u32.into()],
    );
    let plan = plan_without_scans(&db, &claim);
    assert!(uses(&plan, "idx_email_queue_due"), "{plan:#?}");
    let notice = Notice {
        kind: NoticeKind::ReconnectNeeded,
        connection_id: "c".into(),
        user_id: "u".into(),
        email: "a@b.nl".into(),
        name: None,
        locale: "nl".into(),
        region: Region::Nl,
        last_error: None,
        refresh_expires_at: now(),
        token_generation: 1,
    };
    for stmt in [
        connections::mark_noticed_statement(&notice, now()),
        connections::mark_noticed_statement(
            &Notice {
                kind: NoticeKind::LapsingSoon,
                ..notice.clone()
            },
            now(),
        ),
        email_queue::mark_sent_statement(1, "p", now()),
        email_queue::mark_retry_statement(1, now(), "x"),
        email_queue::mark_failed_statement(1, "x", now()),
        connections::take_lease_statement("c", "o", now(), Duration::seconds(30)),
    ] {
        plan_without_scans(&db, &stmt);
    }
}

#[test]
fn every_housekeeping_purge_is_an_index_range() {
    let db = SqliteDb::migrated().unwrap();
    for stmt in housekeeping_statements(now(), &CronConfig::default()) {
        let plan = plan_without_scans(&db, &stmt);
        assert!(
            plan.iter()
                .any(|s| s.contains("USING INDEX") || s.contains("USING COVERING INDEX")),
            "{}\n{plan:#?}",
            stmt.sql
        );
    }
}

/// The OAuth server's per-request statements (the resource server's token
/// lookup on every MCP call, the token endpoint's counting updates, the
/// dashboard's list) find their rows by key or index.
#[test]
fn oauth_lookups_and_counting_updates_search_by_key() {
    use boekhouding_core::storage::{oauth_codes, oauth_grants, oauth_tokens};
    let db = SqliteDb::migrated().unwrap();
    for stmt in [
        oauth_tokens::find_access_statement("h"),
        oauth_tokens::rotate_statement("h", "c", now()),
        oauth_tokens::grant_of_statement("h"),
        oauth_codes::redeem_statement("h"),
        oauth_grants::list_for_user_statement("u"),
    ] {
        let plan = plan_without_scans(&db, &stmt);
        assert!(
            plan.iter()
                .any(|s| s.contains("USING") && s.contains("INDEX")),
            "{}\n{plan:#?}",
            stmt.sql
        );
    }
}

/// The alert check's one round trip of reads, every scheduled run.
#[test]
fn the_alert_checks_reads_search_by_index() {
    use boekhouding_core::storage::error_log::{self, Service};
    use boekhouding_core::storage::{cron_runs, incidents, usage};
    let db = SqliteDb::migrated().unwrap();
    for (stmt, index) in [
        (incidents::open_statement(), "idx_incidents_open"),
        (
            usage::window_outcomes_statement(now()),
            "idx_api_usage_at (at>?)",
        ),
        (
            error_log::count_since_statement(Service::McpServer, now()),
            "idx_error_log_service_at (service=? AND at>?)",
        ),
    ] {
        let plan = plan_without_scans(&db, &stmt);
        assert!(uses(&plan, index), "{}\n{plan:#?}", stmt.sql);
    }
    for before in [Some(10), None] {
        let stmt = cron_runs::before_statement(before, 50);
        let plan = plan_without_scans(&db, &stmt);
        assert!(
            plan.iter().any(|s| s.contains("INTEGER PRIMARY KEY")),
            "{plan:#?}"
        );
    }
}
