//! The operator's tables over SQLite with the real migrations: error
//! rows, security events and audit rows are accepted as built (their
//! CHECKs, JSON details) and purged by the cron's housekeeping at their
//! retention; the alert check records one incident per condition with one
//! "opened" and one "resolved" mail.

// Test helpers outside #[test] functions may unwrap too: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use boekhouding_core::cron::{
    self, CronConfig, CronEnv, QueueError, RefreshQueue, Refreshing, housekeeping_statements,
};
use boekhouding_core::ports::{
    BinaryResponse, HttpRequest, HttpResponse, HttpTransport, TransportError,
};
use boekhouding_core::storage::audit_log::{self, AuditAction, AuditEntry};
use boekhouding_core::storage::connections::DueConnection;
use boekhouding_core::storage::error_log::{self, ErrorRecord, Service};
use boekhouding_core::storage::security_events::{self, SecurityEvent, SecurityRecord};
use boekhouding_core::storage::usage::{self, AuthKind, CallRecord, Outcome};
use boekhouding_core::storage::{
    SqlExecutor, Statement, StorageError, expected_migrations, incidents, users,
};
use boekhouding_core::testing::{FakeClock, RecordingSleep, SeededRandomness};
use boekhouding_sqlite::SqliteDb;
use chrono::{DateTime, Duration, TimeZone, Utc};
use futures::executor::block_on;
use serde_json::{Value, json};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap()
}

fn rows(db: &SqliteDb, sql: &'static str) -> Vec<Value> {
    block_on(db.query(Statement::new(sql, vec![])))
        .unwrap()
        .into_iter()
        .map(Value::Object)
        .collect()
}

fn user(db: &SqliteDb, rng: &SeededRandomness, email: &str) -> String {
    block_on(users::upsert_by_email(db, rng, email, None, now()))
        .unwrap()
        .id
}

#[test]
fn each_kind_of_row_is_accepted_as_built_and_keeps_no_secret() {
    let db = SqliteDb::migrated().unwrap();
    let rng = SeededRandomness::new(1);
    let jan = user(&db, &rng, "jan@example.nl");
    let key = "pmjb_00112233445566778899aabbccddeeff00112233445566778899aabbccdd";
    block_on(db.batch(vec![
        error_log::insert_statement(
            &ErrorRecord {
                service: Service::McpServer,
                kind: "unavailable",
                message: "database unavailable: https://x.example/cb?code=SECRET1",
                request_id: Some("req-1"),
                user_id: Some(&jan),
            },
            now(),
        ),
        security_events::insert_statement(
            &SecurityRecord::new(SecurityEvent::InvalidApiKey, Some("203.0.113.7"))
                .user_agent(Some("curl/8"))
                .presented(Some(key)),
            now(),
        ),
        security_events::insert_statement(
            &SecurityRecord::new(SecurityEvent::RefusedOrigin, Some("203.0.113.8"))
                .detail("https://evil.example"),
            now(),
        ),
        audit_log::insert_statement(
            &AuditEntry::by_user(
                &jan,
                AuditAction::KeyCreated,
                "api_key",
                Some("k1"),
                Some("203.0.113.7"),
            )
            .with_metadata(json!({"name": "Laptop"})),
            now(),
        ),
    ]))
    .unwrap();
    let errors = block_on(error_log::recent(&db, 5)).unwrap();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].user_id.as_deref(), Some(jan.as_str()));
    assert!(!errors[0].message.contains("SECRET1"), "{errors:?}");
    let events = block_on(security_events::recent(&db, 5)).unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].event_type, "invalid_api_key");
    assert!(!format!("{events:?}").contains(key));
    assert_eq!(events[0].event_type, "suspicious_activity");
    assert!(
        events[0]
            .details
            .as_deref()
            .is_some_and(|d| d.contains("refused_origin"))
    );
    let audit = block_on(audit_log::recent(&db, 5)).unwrap();
    assert_eq!(audit[0].action, "key_created");
    assert_eq!(audit[0].metadata.as_deref(), Some(r#"{"name":"Laptop"}"#));
}

#[test]
fn housekeeping_purges_each_log_at_its_retention_and_keeps_open_incidents() {
    let db = SqliteDb::migrated().unwrap();
    let cfg = CronConfig::default();
    let old = now() - cfg.log_retention - Duration::days(1);
    let recent = now() - Duration::days(1);
    let audit_old = now() - cfg.audit_retention - Duration::days(1);
    let mut stmts = Vec::new();
    for at in [old, recent] {
        stmts.push(error_log::insert_statement(
            &ErrorRecord {
                service: Service::TokenCron,
                kind: "run_failed",
                message: "m",
                request_id: None,
                user_id: None,
            },
            at,
        ));
        stmts.push(security_events::insert_statement(
            &SecurityRecord::new(SecurityEvent::CsrfFailure, Some("198.51.100.1")),
            at,
        ));
    }
    // An audit row past the log retention but within its own year stays.
    for at in [audit_old, old] {
        stmts.push(audit_log::insert_statement(
            &AuditEntry {
                actor_id: None,
                actor_email: Some("token-cron"),
                action: AuditAction::BreakerTripped,
                resource_type: "token_refresh",
                resource_id: None,
                metadata: None,
                client_ip: None,
            },
            at,
        ));
    }
    // A resolved old incident goes; an open one as old stays.
    stmts.push(incidents::open_insert_statement(
        "cron_run_skipped",
        "d",
        old,
    ));
    stmts.push(incidents::resolve_statement(1, old));
    stmts.push(incidents::open_insert_statement(
        "cron_run_skipped",
        "d",
        old,
    ));
    block_on(db.batch(stmts)).unwrap();
    block_on(db.batch(housekeeping_statements(now(), &cfg))).unwrap();
    let count = |sql| rows(&db, sql)[0]["n"].as_i64().unwrap();
    assert_eq!(count("SELECT COUNT(*) AS n FROM error_log"), 1);
    assert_eq!(count("SELECT COUNT(*) AS n FROM security_events"), 1);
    assert_eq!(count("SELECT COUNT(*) AS n FROM audit_log"), 1);
    assert_eq!(
        rows(&db, "SELECT id, resolved_at FROM incidents"),
        vec![json!({"id": 2, "resolved_at": null})]
    );
}

#[test]
fn deleting_an_account_keeps_its_trail_without_addresses() {
    let db = SqliteDb::migrated().unwrap();
    let rng = SeededRandomness::new(2);
    let jan = user(&db, &rng, "jan@example.nl");
    block_on(db.batch(vec![
        audit_log::insert_statement(
            &AuditEntry::by_user(&jan, AuditAction::SignedIn, "session", None, Some("203.0.113.9")),
            now(),
        ),
        security_events::insert_statement(
            &SecurityRecord::new(SecurityEvent::CsrfFailure, Some("203.0.113.9"))
                .user(Some(&jan))
                .user_agent(Some("Firefox")),
            now(),
        ),
    ]))
    .unwrap();
    block_on(db.batch(boekhouding_core::account::delete_statements(&jan, now()))).unwrap();
    let audit = rows(
        &db,
        "SELECT actor_id, client_ip, action FROM audit_log ORDER BY id",
    );
    assert_eq!(
        audit,
        vec![
            json!({"actor_id": null, "client_ip": null, "action": "signed_in"}),
            json!({"actor_id": null, "client_ip": null, "action": "account_deleted"}),
        ]
    );
    assert_eq!(
        rows(
            &db,
            "SELECT user_id, client_ip, user_agent FROM security_events"
        ),
        vec![json!({"user_id": null, "client_ip": null, "user_agent": null})]
    );
}

/// No outbound HTTP: these runs have neither Exact nor a mail provider.
struct NoHttp;

impl HttpTransport for NoHttp {
    async fn send(&self, _: HttpRequest) -> Result<HttpResponse, TransportError> {
        Err(TransportError::Network("no network in this test".into()))
    }
    async fn send_binary(
        &self,
        _: HttpRequest,
        _: usize,
    ) -> Result<BinaryResponse, TransportError> {
        Err(TransportError::Network("no network in this test".into()))
    }
}

struct NoQueue;

impl RefreshQueue for NoQueue {
    async fn send_batch(&self, _: &[DueConnection]) -> Result<(), QueueError> {
        Ok(())
    }
}

fn tick(db: &SqliteDb, clock: &FakeClock, cfg: &CronConfig) -> cron::RunReport {
    let rng = SeededRandomness::new(3);
    let env = CronEnv {
        db,
        http: &NoHttp,
        rng: &rng,
        clock,
        sleep: &RecordingSleep::default(),
        exact: None,
        mail: None,
        portal_url: "http://portal.test",
        owner: "cron-test",
        run_id: None,
    };
    block_on(cron::run_tick(&env, cfg, Refreshing::<NoQueue>::Inline))
}

fn operator_mails(db: &SqliteDb) -> Vec<Value> {
    rows(
        db,
        "SELECT template, subject, dedupe_key FROM email_queue
          WHERE template LIKE 'operator_%' ORDER BY id",
    )
}

fn failing_calls(db: &SqliteDb, user_id: &str, n: usize, at: DateTime<Utc>) {
    let rng = SeededRandomness::new(9);
    let key = block_on(boekhouding_core::storage::api_keys::create(
        db,
        &rng,
        user_id,
        boekhouding_core::plan::Plan::Free,
        "Laptop",
        at,
    ))
    .unwrap();
    let stmts = (0..n)
        .map(|i| {
            usage::record_call_statement(&CallRecord {
                user_id: user_id.to_owned(),
                auth: AuthKind::ApiKey {
                    key_id: key.record.id.clone(),
                },
                tool: "list_divisions".into(),
                division_code: None,
                outcome: if i % 2 == 0 {
                    Outcome::InternalError
                } else {
                    Outcome::Ok
                },
                latency_ms: 5,
                exact_calls: 0,
                request_id: None,
                client_name: None,
                at,
            })
        })
        .collect();
    block_on(db.batch(stmts)).unwrap();
}

#[test]
fn a_server_error_rate_opens_one_incident_one_mail_and_resolves_once() {
    let db = SqliteDb::migrated().unwrap();
    let rng = SeededRandomness::new(4);
    let jan = user(&db, &rng, "jan@example.nl");
    let clock = FakeClock::at(now());
    let cfg = CronConfig {
        operator_emails: vec!["ops@example.nl".into()],
        ..CronConfig::default()
    };
    // Healthy: nothing opens.
    tick(&db, &clock, &cfg);
    assert_eq!(operator_mails(&db), Vec::<Value>::new());

    failing_calls(&db, &jan, 20, now() + Duration::seconds(30));
    clock.set(now() + Duration::minutes(1));
    let r = tick(&db, &clock, &cfg);
    assert!(
        r.notes
            .iter()
            .any(|n| n == "incident opened: server_error_rate"),
        "{r:?}"
    );
    let mails = operator_mails(&db);
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert_eq!(mails[0]["template"], "operator_incident_opened");
    assert!(
        mails[0]["subject"]
            .as_str()
            .unwrap()
            .contains("10 of 20 MCP requests"),
        "{mails:?}"
    );

    // Seen again: the incident's last_seen moves, no second mail.
    clock.set(now() + Duration::minutes(3));
    tick(&db, &clock, &cfg);
    assert_eq!(operator_mails(&db).len(), 1);

    // Gone (the calls left the interval), but not yet for the quiet period.
    clock.set(now() + Duration::minutes(9));
    tick(&db, &clock, &cfg);
    assert_eq!(operator_mails(&db).len(), 1);
    clock.set(now() + Duration::minutes(13));
    let r = tick(&db, &clock, &cfg);
    assert!(
        r.notes
            .iter()
            .any(|n| n == "incident resolved: server_error_rate"),
        "{r:?}"
    );
    let mails = operator_mails(&db);
    assert_eq!(mails.len(), 2, "{mails:?}");
    assert_eq!(mails[1]["template"], "operator_incident_resolved");
    let stored = rows(&db, "SELECT kind, resolved_at FROM incidents");
    assert_eq!(
        stored,
        vec![
            json!({"kind": "server_error_rate", "resolved_at": (now() + Duration::minutes(13)).timestamp()})
        ]
    );
    clock.set(now() + Duration::minutes(20));
    tick(&db, &clock, &cfg);
    assert_eq!(operator_mails(&db).len(), 2, "no mail after resolution");
}

#[test]
fn a_skipped_run_and_a_schema_the_code_does_not_know_are_incidents() {
    let db = SqliteDb::migrated().unwrap();
    let clock = FakeClock::at(now());
    let cfg = CronConfig::default();
    let applied = rows(&db, "SELECT name FROM d1_migrations ORDER BY id");
    let expected: Vec<Value> = expected_migrations()
        .into_iter()
        .map(|n| json!({ "name": n }))
        .collect();
    assert_eq!(applied, expected, "the compiled-in list is the migrations'");
    block_on(db.batch(vec![
        Statement::new(
            "INSERT INTO cron_runs (cron, mode, started_at, finished_at, outcome)
             VALUES ('*/5 * * * *', 'inline', ?, ?, 'ok')",
            vec![
                (now() - Duration::minutes(30)).into(),
                (now() - Duration::minutes(30)).into(),
            ],
        ),
        Statement::new(
            "INSERT INTO d1_migrations (name) VALUES ('9999_from_a_newer_build.sql')",
            vec![],
        ),
    ]))
    .unwrap();
    tick(&db, &clock, &cfg);
    let kinds = rows(&db, "SELECT kind, details FROM incidents ORDER BY kind");
    assert_eq!(kinds.len(), 2, "{kinds:?}");
    assert_eq!(kinds[0]["kind"], "cron_run_skipped");
    assert_eq!(kinds[1]["kind"], "health_regression");
    assert!(
        kinds[1]["details"]
            .as_str()
            .unwrap()
            .contains("9999_from_a_newer_build.sql")
    );
}

#[test]
fn a_second_open_incident_of_one_kind_is_refused_with_its_mail() {
    let db = SqliteDb::migrated().unwrap();
    block_on(db.execute(incidents::open_insert_statement(
        "refresh_breaker",
        "a",
        now(),
    )))
    .unwrap();
    let again = block_on(db.batch(vec![
        incidents::open_insert_statement("refresh_breaker", "b", now()),
        boekhouding_core::storage::email_queue::enqueue_statement(
            &boekhouding_core::mail::incident_opened(
                "ops@example.nl",
                boekhouding_core::alerts::IncidentKind::RefreshBreaker,
                "b",
                now(),
            ),
            now(),
        ),
    ]));
    assert!(
        matches!(again, Err(StorageError::Constraint(_))),
        "{again:?}"
    );
    assert_eq!(operator_mails(&db), Vec::<Value>::new());
}

#[test]
fn a_deploy_audit_row_sent_as_text_lands_as_built() {
    let db = SqliteDb::migrated().unwrap();
    let entry = AuditEntry {
        actor_id: None,
        actor_email: Some("ops@example.nl"),
        action: AuditAction::RolledBack,
        resource_type: "worker",
        resource_id: Some("token-cron"),
        metadata: Some(json!({"to_version": "v-1", "why": "canary's /health said 'abc'"})),
        client_ip: None,
    };
    let sql = audit_log::insert_statement(&entry, now())
        .inline_sql()
        .unwrap();
    db.raw().execute_batch(&sql).unwrap();
    let rows = block_on(audit_log::recent(&db, 1)).unwrap();
    assert_eq!(rows[0].action, "rolled_back");
    assert_eq!(rows[0].at, now().timestamp());
    let meta: Value = serde_json::from_str(rows[0].metadata.as_deref().unwrap()).unwrap();
    assert_eq!(meta["why"], "canary's /health said 'abc'");
}
