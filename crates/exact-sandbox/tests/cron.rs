//! The token cron (`boekhouding_core::cron`) against the sandbox (Exact's
//! token endpoint and a Resend-compatible mail catcher) and a real SQLite
//! with the real migrations: the call budget and oldest-due-first order,
//! the backoff schedule in virtual time, `invalid_grant` and one mail per
//! incident, no lost token when the database fails after rotation, a
//! crashed lease holder, keep-alive across 60 days, lapse warnings, mail
//! retries, housekeeping and the queue fan-out.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::cell::{Cell, RefCell};

use boekhouding_core::access::{AccessContext, ExactSettings, fresh_access};
use boekhouding_core::cron::{
    self, CronConfig, CronEnv, QueueError, RefreshQueue, Refreshing, RunReport,
};
use boekhouding_core::crypto::{Secret, TokenKeyring};
use boekhouding_core::exact::ExactClient;
use boekhouding_core::lifecycle::ConnectionStatus;
use boekhouding_core::mail::MailSettings;
use boekhouding_core::region::Region;
use boekhouding_core::storage::connections::{
    self, Connection, DueConnection, ExactIdentity, ExactTokens, NewConnection,
};
use boekhouding_core::storage::cron_runs::RunOutcome;
use boekhouding_core::storage::email_queue::{self, NewEmail};
use boekhouding_core::storage::usage::{self, UsageMonth};
use boekhouding_core::storage::{SqlExecutor, users};
use boekhouding_core::testing::{RecordingSleep, SeededRandomness};
use boekhouding_sqlite::SqliteDb;
use chrono::{DateTime, Duration, Utc};
use common::{Env, FlakyStore};
use exact_sandbox::SandboxConfig;
use exact_sandbox::transport::BlockingTransport;
use futures::executor::block_on;
use serde_json::json;

const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const PORTAL: &str = "https://portal.example";

struct World {
    env: Env,
    db: SqliteDb,
    rng: SeededRandomness,
    exact: ExactSettings,
    mail: MailSettings,
    sleep: RecordingSleep,
}

/// Never used: the inline mode's queue type.
struct NoQueue;

impl RefreshQueue for NoQueue {
    async fn send_batch(&self, _: &[DueConnection]) -> Result<(), QueueError> {
        Err(QueueError("inline mode has no queue".into()))
    }
}

#[derive(Default)]
struct VecQueue(RefCell<Vec<DueConnection>>);

impl RefreshQueue for VecQueue {
    async fn send_batch(&self, batch: &[DueConnection]) -> Result<(), QueueError> {
        assert!(batch.len() <= cron::QUEUE_BATCH);
        self.0.borrow_mut().extend_from_slice(batch);
        Ok(())
    }
}

impl World {
    fn new() -> World {
        let mut env = common::start(SandboxConfig::default());
        // Whole seconds, as the database stores them.
        env.clock.set(
            chrono::TimeZone::timestamp_opt(&Utc, Utc::now().timestamp(), 0)
                .single()
                .unwrap(),
        );
        // Short, so an injected timeout costs little test time.
        env.http = BlockingTransport::new(std::time::Duration::from_millis(700));
        let exact = ExactSettings {
            keyring: TokenKeyring::from_config(KEY).unwrap(),
            client_id: env.sandbox.client_id().to_owned(),
            client_secret: Secret::new(env.sandbox.client_secret()),
            redirect_uri: common::REDIRECT.into(),
            base_url_override: Some(env.sandbox.base_url().to_owned()),
        };
        let mail = MailSettings {
            api_url: env.sandbox.base_url().to_owned(),
            api_key: Secret::new(env.sandbox.mail_api_key()),
            from: "Praat met je Boekhouding <noreply@example.nl>".into(),
        };
        World {
            env,
            db: SqliteDb::migrated().unwrap(),
            rng: SeededRandomness::new(9),
            exact,
            mail,
            sleep: RecordingSleep::default(),
        }
    }

    fn now(&self) -> DateTime<Utc> {
        self.env.clock_now()
    }

    /// `n` connections of users `u0..`, each with a live refresh grant at
    /// the sandbox whose access token just expired; `refresh_in(i)` is how
    /// long connection i's refresh token has left.
    fn connections(&self, n: usize, refresh_in: impl Fn(usize) -> Duration) -> Vec<String> {
        let grants = self
            .env
            .admin("/__admin/grants", json!({"username": "demo", "count": n}));
        let now = self.now();
        (0..n)
            .map(|i| {
                let g = &grants["grants"][i];
                let user = block_on(users::upsert_by_email(
                    &self.db,
                    &self.rng,
                    &format!("u{i}@example.nl"),
                    Some(&format!("User {i}")),
                    now,
                ))
                .unwrap();
                let tokens = ExactTokens {
                    access_token: Secret::new(g["access_token"].as_str().unwrap()),
                    refresh_token: Secret::new(g["refresh_token"].as_str().unwrap()),
                    access_expires_at: now,
                    refresh_expires_at: now + refresh_in(i),
                };
                block_on(connections::connect(
                    &self.db,
                    &self.rng,
                    &self.exact.keyring,
                    &NewConnection {
                        user_id: &user.id,
                        region: Region::Nl,
                        identity: &ExactIdentity::default(),
                        tokens: &tokens,
                    },
                    now,
                ))
                .unwrap()
                .id
            })
            .collect()
    }

    fn sql(&self, sql: &str) {
        self.db.raw().execute_batch(sql).unwrap();
    }

    fn cenv<'a, D: SqlExecutor>(
        &'a self,
        db: &'a D,
    ) -> CronEnv<
        'a,
        D,
        BlockingTransport,
        SeededRandomness,
        boekhouding_core::testing::FakeClock,
        RecordingSleep,
    > {
        CronEnv {
            db,
            http: &self.env.http,
            rng: &self.rng,
            clock: &self.env.clock,
            sleep: &self.sleep,
            exact: Some(&self.exact),
            mail: Some(&self.mail),
            portal_url: PORTAL,
            owner: "cron-test",
            run_id: None,
        }
    }

    fn tick_with(&self, cfg: &CronConfig) -> RunReport {
        block_on(cron::run_tick(
            &self.cenv(&self.db),
            cfg,
            Refreshing::<NoQueue>::Inline,
        ))
    }

    fn tick(&self) -> RunReport {
        self.tick_with(&CronConfig::default())
    }

    fn conn(&self, id: &str) -> Connection {
        block_on(connections::find_by_id(&self.db, id))
            .unwrap()
            .unwrap()
    }

    fn refreshes(&self) -> usize {
        self.env.token_requests("refresh_token")
    }

    /// Moves the cron's clock only (the sandbox keeps real time).
    fn later(&self, by: Duration) {
        self.env.clock.advance(by);
    }

    fn fault(&self, fault: serde_json::Value) {
        self.env.admin("/__admin/faults", fault);
    }
}

#[test]
fn the_call_budget_is_kept_and_the_longest_due_go_first() {
    let w = World::new();
    // 25 quiet connections inside the keep-alive window, connection i
    // lapsing i hours from now: the earliest lapse is the longest due.
    let ids = w.connections(25, |i| Duration::hours(1 + i as i64));
    let cfg = CronConfig::default();
    assert_eq!(cfg.max_refreshes, 10);
    let mut order = Vec::new();
    for (tick, expected) in [(1, 10), (2, 10), (3, 5), (4, 0)] {
        let before: Vec<_> = ids.iter().map(|id| w.conn(id).token_generation).collect();
        let r = w.tick();
        assert_eq!(r.summary.refreshed, expected, "tick {tick}: {r:?}");
        assert_eq!(r.summary.exact_calls, expected, "tick {tick}");
        // The whole run fits the free plan's 50 subrequests.
        let subrequests = r.summary.d1_queries + 2 + r.summary.exact_calls + r.summary.emails_sent;
        assert!(subrequests <= 50, "tick {tick}: {subrequests} subrequests");
        for (i, id) in ids.iter().enumerate() {
            if w.conn(id).token_generation != before[i] {
                order.push(i);
            }
        }
        assert_eq!(
            r.outcome,
            if tick <= 2 {
                RunOutcome::Partial
            } else {
                RunOutcome::Ok
            },
            "tick {tick}: {:?}",
            r.notes
        );
    }
    assert_eq!(order, (0..25).collect::<Vec<_>>(), "oldest due first");
    assert_eq!(w.refreshes(), 25);
    // Every refreshed connection now has 30 fresh days and is active.
    for id in &ids {
        let c = w.conn(id);
        assert_eq!(c.state.status, ConnectionStatus::Active);
        assert!(c.refresh_expires_at > w.now() + Duration::days(29));
    }
}

#[test]
fn in_use_connections_are_refreshed_as_their_token_runs_out_and_idle_ones_are_left() {
    let w = World::new();
    let ids = w.connections(3, |_| Duration::days(25));
    let now = w.now();
    // 0: used ten minutes ago; 1: used three hours ago; 2: never used.
    w.sql(&format!(
        "UPDATE connections SET last_used_at = {} WHERE id = '{}';
         UPDATE connections SET last_used_at = {} WHERE id = '{}';",
        (now - Duration::minutes(10)).timestamp(),
        ids[0],
        (now - Duration::hours(3)).timestamp(),
        ids[1]
    ));
    let r = w.tick();
    assert_eq!((r.summary.due, r.summary.refreshed), (1, 1), "{r:?}");
    assert!(w.conn(&ids[0]).access_expires_at > now + Duration::minutes(9));
    assert_eq!(w.conn(&ids[1]).token_generation, 1);
    assert_eq!(w.conn(&ids[2]).token_generation, 1);
    // Its new token is not due for another ~9.5 minutes (both clocks
    // move: Exact itself refuses a refresh before the last 30 seconds).
    w.env.advance(300);
    assert_eq!(w.tick().summary.due, 0);
    w.env.advance(300);
    let r = w.tick();
    assert_eq!(r.summary.refreshed, 1, "{r:?}");
    assert_eq!(w.refreshes(), 2);
}

#[test]
fn transient_failures_follow_the_backoff_schedule_and_a_success_resets_it() {
    let w = World::new();
    let id = w.connections(1, |_| Duration::days(2))[0].clone();
    let t0 = w.now();
    // Exact's token endpoint answers 503, then times out, then throttles.
    w.fault(json!({"kind": "status", "status": 503, "path": "/api/oauth2/token"}));
    let r = w.tick();
    assert_eq!(r.summary.retried, 1, "{r:?}");
    let c = w.conn(&id);
    assert_eq!(c.state.status, ConnectionStatus::RetryPending);
    assert_eq!(c.state.retry_count, 1);
    assert_eq!(c.state.next_retry_at, Some(t0 + Duration::minutes(5)));
    assert!(c.lease_owner.is_none());

    // Before the retry is due nothing reaches Exact.
    w.later(Duration::minutes(4));
    let calls = w.refreshes();
    let r = w.tick();
    assert_eq!((r.summary.due, r.summary.exact_calls), (0, 0), "{r:?}");
    assert_eq!(w.refreshes(), calls);

    let mut at = t0 + Duration::minutes(5);
    for (retry, fault, wait) in [
        (
            2,
            json!({"kind": "timeout", "delay_ms": 1500, "path": "/api/oauth2/token"}),
            15,
        ),
        (
            3,
            json!({"kind": "rate_limit", "path": "/api/oauth2/token"}),
            60,
        ),
        (
            4,
            json!({"kind": "status", "status": 500, "path": "/api/oauth2/token"}),
            360,
        ),
    ] {
        w.env.clock.set(at);
        w.fault(fault);
        let r = w.tick();
        assert_eq!(r.summary.retried, 1, "retry {retry}: {r:?}");
        let c = w.conn(&id);
        assert_eq!(c.state.retry_count, retry);
        assert_eq!(c.state.next_retry_at, Some(at + Duration::minutes(wait)));
        at += Duration::minutes(wait);
    }
    // Exact is back: the due retry succeeds and the schedule is cleared.
    w.env.clock.set(at);
    let r = w.tick();
    assert_eq!(r.summary.refreshed, 1, "{r:?}");
    let c = w.conn(&id);
    assert_eq!(c.state.status, ConnectionStatus::Active);
    assert_eq!((c.state.retry_count, c.state.next_retry_at), (0, None));
    assert!(c.state.last_error.is_none());
}

#[test]
fn exhausted_retries_end_in_refresh_failed_and_one_mail() {
    let w = World::new();
    let id = w.connections(1, |_| Duration::days(3))[0].clone();
    w.fault(json!({"kind": "status", "status": 502, "count": 6, "path": "/api/oauth2/token"}));
    for _ in 0..6 {
        w.tick();
        if let Some(at) = w.conn(&id).state.next_retry_at {
            w.env.clock.set(at);
        }
    }
    let c = w.conn(&id);
    assert_eq!(c.state.status, ConnectionStatus::RefreshFailed);
    assert_eq!(c.state.retry_count, 6, "failures since the last success");
    let attempts = w
        .env
        .sandbox
        .requests()
        .iter()
        .filter(|r| r.path == "/api/oauth2/token")
        .count();
    assert_eq!(attempts, 6, "first attempt plus five retries");
    let mails = w.env.sandbox.mails();
    let reconnects: Vec<_> = mails
        .iter()
        .filter(|m| m.subject.contains("koppel Exact Online opnieuw"))
        .collect();
    assert_eq!(reconnects.len(), 1, "{mails:#?}");
}

#[test]
fn invalid_grant_fails_at_once_and_the_user_gets_exactly_one_mail_per_incident() {
    let w = World::new();
    let id = w.connections(1, |_| Duration::days(3))[0].clone();
    w.env.admin("/__admin/revoke", json!({"username": "demo"}));
    let r = w.tick();
    assert_eq!((r.summary.failed, r.summary.emails_sent), (1, 1), "{r:?}");
    let c = w.conn(&id);
    assert_eq!(c.state.status, ConnectionStatus::RefreshFailed);
    assert_eq!(c.state.retry_count, 0, "no retries for a revoked consent");

    let mails = w.env.sandbox.mails();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].to, vec!["u0@example.nl".to_owned()]);
    assert_eq!(mails[0].subject, "Actie nodig: koppel Exact Online opnieuw");
    assert!(
        mails[0]
            .html
            .contains("https://portal.example/connect?region=nl")
    );
    assert!(mails[0].text.contains("Beste User 0,"));
    assert!(!mails[0].html.contains(c.refresh_token_sealed.as_str()));

    // Later ticks neither call Exact for it nor mail again.
    for _ in 0..3 {
        w.later(Duration::hours(1));
        let r = w.tick();
        assert_eq!((r.summary.exact_calls, r.summary.emails_sent), (0, 0));
    }
    assert_eq!(w.env.sandbox.mails().len(), 1);

    // The user reconnects; a new incident brings a new mail.
    let fresh = w.env.connect("other").into_exact_tokens();
    let user = block_on(users::find_by_id(&w.db, &c.user_id))
        .unwrap()
        .unwrap();
    block_on(connections::connect(
        &w.db,
        &w.rng,
        &w.exact.keyring,
        &NewConnection {
            user_id: &user.id,
            region: Region::Nl,
            identity: &ExactIdentity::default(),
            tokens: &ExactTokens {
                access_expires_at: w.now(),
                ..fresh
            },
        },
        w.now(),
    ))
    .unwrap();
    assert_eq!(w.conn(&id).state.status, ConnectionStatus::Active);
    w.env.admin("/__admin/revoke", json!({"username": "other"}));
    w.sql(&format!(
        "UPDATE connections SET last_used_at = {} WHERE id = '{id}'",
        w.now().timestamp()
    ));
    let r = w.tick();
    assert_eq!((r.summary.failed, r.summary.emails_sent), (1, 1), "{r:?}");
    assert_eq!(w.env.sandbox.mails().len(), 2);
}

#[test]
fn a_database_failure_after_rotation_keeps_the_new_token_or_says_so() {
    let w = World::new();
    let id = w.connections(1, |_| Duration::days(3))[0].clone();
    let flaky = FlakyStore {
        inner: &w.db,
        failures_left: Cell::new(2),
    };
    let r = block_on(cron::run_tick(
        &w.cenv(&flaky),
        &CronConfig::default(),
        Refreshing::<NoQueue>::Inline,
    ));
    assert_eq!(r.summary.refreshed, 1, "{r:?}");
    assert_eq!(
        w.sleep.waits(),
        vec![200, 1_000],
        "backed off between writes"
    );
    // What was stored is the rotated token: it refreshes again later.
    w.env.advance(600);
    w.sql(&format!(
        "UPDATE connections SET refresh_expires_at = {} WHERE id = '{id}'",
        (w.now() + Duration::days(1)).timestamp()
    ));
    assert_eq!(w.tick().summary.refreshed, 1);
    assert_eq!(w.conn(&id).state.status, ConnectionStatus::Active);

    // A store that keeps failing ends in a clear state and a mail.
    w.env.advance(600);
    w.sql(&format!(
        "UPDATE connections SET refresh_expires_at = {} WHERE id = '{id}'",
        (w.now() + Duration::days(1)).timestamp()
    ));
    let broken = FlakyStore {
        inner: &w.db,
        failures_left: Cell::new(100),
    };
    let r = block_on(cron::run_tick(
        &w.cenv(&broken),
        &CronConfig::default(),
        Refreshing::<NoQueue>::Inline,
    ));
    assert_eq!((r.summary.failed, r.summary.emails_sent), (1, 1), "{r:?}");
    let c = w.conn(&id);
    assert_eq!(c.state.status, ConnectionStatus::RefreshFailed);
    assert!(c.state.last_error.unwrap().contains("could not be stored"));
    assert_eq!(w.env.sandbox.mails().len(), 1);
}

#[test]
fn a_crashed_holders_lease_expires_and_the_cron_takes_over() {
    let w = World::new();
    let id = w.connections(1, |_| Duration::days(3))[0].clone();
    w.sql(&format!(
        "UPDATE connections SET lease_owner = 'crashed-run', lease_expires_at = {} WHERE id = '{id}'",
        (w.now() + Duration::seconds(20)).timestamp()
    ));
    let r = w.tick();
    assert_eq!((r.summary.skipped, r.summary.exact_calls), (1, 0), "{r:?}");
    assert_eq!(w.conn(&id).lease_owner.as_deref(), Some("crashed-run"));
    w.later(Duration::seconds(21));
    let r = w.tick();
    assert_eq!(r.summary.refreshed, 1, "{r:?}");
    assert!(w.conn(&id).lease_owner.is_none());
}

#[test]
fn a_quiet_connection_is_kept_alive_for_sixty_days() {
    let w = World::new();
    let id = w.connections(1, |_| Duration::days(30))[0].clone();
    let mut refreshed_on = Vec::new();
    for day in 1..=60 {
        // Both clocks move a day: the sandbox lapses refresh tokens after
        // 30 days of its own time.
        w.env.advance(86_400);
        let r = w.tick();
        assert_eq!(r.summary.failed, 0, "day {day}: {r:?}");
        if r.summary.refreshed == 1 {
            refreshed_on.push(day);
        }
    }
    // Refreshed once the token had 7 days left, i.e. every 23 days.
    assert_eq!(refreshed_on, vec![23, 46], "{refreshed_on:?}");
    let c = w.conn(&id);
    assert_eq!(c.state.status, ConnectionStatus::Active);
    // On day 60 the connection still reaches Exact.
    let app = w.exact.app_for(Region::Nl);
    let ctx = AccessContext {
        db: &w.db,
        http: &w.env.http,
        rng: &w.rng,
        sleep: &RecordingSleep::default(),
        keyring: &w.exact.keyring,
        app: &app,
    };
    let access = block_on(fresh_access(&ctx, &id, "req", w.now())).unwrap();
    let client = ExactClient::new(
        &w.env.http,
        &w.env.clock,
        w.env.sandbox.base_url(),
        access.access_token,
    );
    block_on(client.me()).unwrap();
    assert!(w.env.sandbox.mails().is_empty(), "no warnings were needed");
}

#[test]
fn a_refresh_token_close_to_lapsing_warns_once() {
    let w = World::new();
    let id = w.connections(1, |_| Duration::days(2))[0].clone();
    // Exact keeps failing, so the keep-alive cannot renew it.
    w.sql(&format!(
        "UPDATE connections SET status = 'retry_pending', retry_count = 3, next_retry_at = {}
         WHERE id = '{id}'",
        (w.now() + Duration::hours(6)).timestamp()
    ));
    let r = w.tick();
    assert_eq!(r.summary.emails_sent, 1, "{r:?}");
    let mails = w.env.sandbox.mails();
    assert_eq!(
        mails[0].subject,
        "Je Exact Online-koppeling verloopt binnenkort"
    );
    w.later(Duration::hours(1));
    assert_eq!(w.tick().summary.emails_sent, 0);
    assert_eq!(w.env.sandbox.mails().len(), 1);
}

#[test]
fn mail_delivery_retries_provider_errors_and_gives_up_on_rejection() {
    let w = World::new();
    let now = w.now();
    let mail = |to: &str, key: &str| NewEmail {
        user_id: None,
        to: to.into(),
        template: "test",
        subject: "Hallo".into(),
        html: "<p>Hallo</p>".into(),
        text: "Hallo".into(),
        dedupe_key: Some(key.into()),
    };
    block_on(w.db.batch(vec![
        email_queue::enqueue_statement(&mail("jan@example.nl", "k1"), now),
        email_queue::enqueue_statement(&mail("jan@example.nl", "k1"), now),
        email_queue::enqueue_statement(&mail("not-an-address", "k2"), now),
    ]))
    .unwrap();
    w.fault(json!({"kind": "status", "status": 503, "path": "/emails"}));
    let r = w.tick();
    assert_eq!(
        (r.summary.emails_sent, r.summary.emails_failed),
        (0, 1),
        "{r:?}"
    );
    let rows: Vec<(String, String, i64, i64)> =
        w.db.raw()
            .prepare(
                "SELECT dedupe_key, status, attempts, next_attempt_at FROM email_queue ORDER BY id",
            )
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
    assert_eq!(rows.len(), 2, "the duplicate was dropped: {rows:?}");
    assert_eq!(
        (rows[0].1.as_str(), rows[0].2, rows[0].3),
        ("pending", 1, (now + Duration::minutes(1)).timestamp())
    );
    assert_eq!((rows[1].1.as_str(), rows[1].2), ("failed", 1));
    w.later(Duration::minutes(1));
    let r = w.tick();
    assert_eq!(r.summary.emails_sent, 1, "{r:?}");
    let mails = w.env.sandbox.mails();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].idempotency_key.as_deref(), Some("k1"));
}

#[test]
fn housekeeping_purges_what_expired_and_rolls_usage_up_first() {
    let w = World::new();
    let now = w.now();
    let user = block_on(users::upsert_by_email(
        &w.db,
        &w.rng,
        "h@example.nl",
        None,
        now,
    ))
    .unwrap();
    let (u, t) = (user.id.clone(), now.timestamp());
    let day = 86_400;
    w.sql(&format!(
        "INSERT INTO sessions (token_hash, user_id, created_at, expires_at) VALUES
            ('old', '{u}', {t0}, {t1}), ('live', '{u}', {t0}, {t2});
         INSERT INTO oauth_clients (client_id, client_name, redirect_uris, created_at, last_used_at)
            VALUES ('cl', 'Client', '[]', {t0}, {t0});
         INSERT INTO oauth_grants (id, client_id, user_id, resource, scope, administration_ids,
            created_at, activated_at, last_used_at)
            VALUES ('g', 'cl', '{u}', 'r', 's', '[]', {t0}, {t0}, {t1});
         INSERT INTO oauth_auth_codes (code_hash, grant_id, client_id, redirect_uri, resource,
            scope, code_challenge, created_at, expires_at) VALUES
            ('c-old', 'g', 'cl', 'x', 'r', 's', 'ch', {t0}, {t1}),
            ('c-live', 'g', 'cl', 'x', 'r', 's', 'ch', {t0}, {t2});
         INSERT INTO api_keys (id, user_id, key_hash, key_prefix, created_at, revoked_at) VALUES
            ('k-old', '{u}', '{h1}', 'p', {t0}, {r31}),
            ('k-recent', '{u}', '{h2}', 'p', {t0}, {r29}),
            ('k-live', '{u}', '{h3}', 'p', {t0}, NULL);",
        t0 = t - 40 * day,
        t1 = t - 1,
        t2 = t + 3600,
        h1 = "a".repeat(64),
        h2 = "b".repeat(64),
        h3 = "c".repeat(64),
        r31 = t - 31 * day,
        r29 = t - 29 * day,
    ));
    // Usage 100 days ago (three calls, one failed, two tools) and today.
    let old = t - 100 * day;
    w.sql(&format!(
        "INSERT INTO api_usage (user_id, auth_kind, api_key_id, tool, outcome, latency_ms, at) VALUES
            ('{u}', 'api_key', 'k-old', 'list_divisions', 'ok', 10, {old}),
            ('{u}', 'api_key', 'k-old', 'list_divisions', 'upstream_error', 30, {old}),
            ('{u}', 'api_key', 'k-live', 'get_profit_loss', 'ok', 20, {old}),
            ('{u}', 'api_key', 'k-live', 'get_profit_loss', 'ok', 20, {t});"
    ));
    let month = UsageMonth::of(now - Duration::days(100));
    let before = block_on(usage::tool_usage(&w.db, &u, month)).unwrap();
    let r = w.tick();
    // sessions 1, codes 1, keys 1, usage rows 3.
    assert_eq!(r.summary.purged, 6, "{r:?}");
    let count = |sql: &str| -> i64 { w.db.raw().query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(count("SELECT COUNT(*) FROM sessions"), 1);
    assert_eq!(count("SELECT COUNT(*) FROM oauth_auth_codes"), 1);
    assert_eq!(count("SELECT COUNT(*) FROM api_keys WHERE id = 'k-old'"), 0);
    assert_eq!(count("SELECT COUNT(*) FROM api_keys"), 2);
    assert_eq!(count("SELECT COUNT(*) FROM api_usage"), 1);
    // The dashboard shows the same month as before the purge.
    assert_eq!(
        block_on(usage::tool_usage(&w.db, &u, month)).unwrap(),
        before
    );
    assert_eq!(before.iter().map(|t| t.calls).sum::<u64>(), 3);
    assert_eq!(before.iter().map(|t| t.errors).sum::<u64>(), 1);
    // A second run finds nothing more and counts nothing twice.
    assert_eq!(w.tick().summary.purged, 0);
    assert_eq!(
        block_on(usage::tool_usage(&w.db, &u, month)).unwrap(),
        before
    );
}

#[test]
fn fan_out_mode_enqueues_and_the_consumer_refreshes_each_connection_once() {
    let w = World::new();
    let ids = w.connections(150, |i| Duration::hours(1 + i as i64));
    let queue = VecQueue::default();
    let r = block_on(cron::run_tick(
        &w.cenv(&w.db),
        &CronConfig::default(),
        Refreshing::Enqueue(&queue),
    ));
    assert_eq!(
        (r.summary.enqueued, r.summary.exact_calls),
        (150, 0),
        "{r:?}"
    );
    let messages = queue.0.borrow().clone();
    assert_eq!(messages.len(), 150);
    assert_eq!(messages[0].id, ids[0], "oldest due first");
    // Messages travel as JSON through the queue.
    let wire = serde_json::to_string(&messages).unwrap();
    let messages: Vec<DueConnection> = serde_json::from_str(&wire).unwrap();
    let mut refreshed = 0;
    for batch in messages.chunks(10) {
        let (r, acks) = block_on(cron::consume(&w.cenv(&w.db), &CronConfig::default(), batch));
        assert!(acks.iter().all(|a| *a));
        refreshed += r.summary.refreshed;
    }
    assert_eq!(refreshed, 150);
    // A duplicate delivery changes nothing and calls nobody.
    let (r, acks) = block_on(cron::consume(
        &w.cenv(&w.db),
        &CronConfig::default(),
        &messages[..10],
    ));
    assert_eq!((r.summary.skipped, r.summary.exact_calls), (10, 0), "{r:?}");
    assert!(acks.iter().all(|a| *a));
    assert_eq!(w.refreshes(), 150);
}

#[test]
fn a_keep_alive_waits_for_a_valid_access_token_to_run_out_instead_of_skipping_every_tick() {
    let w = World::new();
    let id = w.connections(1, |_| Duration::days(2))[0].clone();
    // In use a minute ago with a token valid for five more minutes.
    w.sql(&format!(
        "UPDATE connections SET access_expires_at = {}, last_used_at = {} WHERE id = '{id}'",
        (w.now() + Duration::minutes(5)).timestamp(),
        (w.now() - Duration::minutes(1)).timestamp()
    ));
    let r = w.tick();
    assert_eq!(
        (r.summary.due, r.summary.skipped, r.summary.exact_calls),
        (0, 0, 0),
        "{r:?}"
    );
    w.later(Duration::minutes(5));
    let r = w.tick();
    assert_eq!(r.summary.refreshed, 1, "{r:?}");
    assert!(w.conn(&id).refresh_expires_at > w.now() + Duration::days(29));
}

/// The state of every connection, to prove a run left them untouched.
fn snapshot(w: &World, ids: &[String]) -> Vec<(ConnectionStatus, u32, i64, Option<DateTime<Utc>>)> {
    ids.iter()
        .map(|id| {
            let c = w.conn(id);
            (
                c.state.status,
                c.state.retry_count,
                c.token_generation,
                c.state.next_retry_at,
            )
        })
        .collect()
}

#[test]
fn a_refused_client_trips_the_breaker_and_no_connection_changes() {
    let w = World::new();
    // 50 quiet connections in the keep-alive window, none near its lapse.
    let ids = w.connections(50, |i| Duration::days(5) + Duration::minutes(i as i64));
    let before = snapshot(&w, &ids);
    let wrong = ExactSettings {
        keyring: w.exact.keyring.clone(),
        client_id: w.exact.client_id.clone(),
        client_secret: Secret::new("rotated-away"),
        redirect_uri: w.exact.redirect_uri.clone(),
        base_url_override: w.exact.base_url_override.clone(),
    };
    let cfg = CronConfig {
        max_refreshes: 100,
        operator_emails: vec!["ops@example.nl".into()],
        ..CronConfig::default()
    };
    let tick = |exact: &ExactSettings| {
        let env = CronEnv {
            exact: Some(exact),
            ..w.cenv(&w.db)
        };
        block_on(cron::run_tick(&env, &cfg, Refreshing::<NoQueue>::Inline))
    };
    let r = tick(&wrong);
    assert_eq!(r.outcome, RunOutcome::Error);
    assert!(
        r.breaker
            .as_deref()
            .is_some_and(|b| b.contains("invalid_client")),
        "{r:?}"
    );
    assert_eq!(r.summary.exact_calls, 1, "stopped at the first refusal");
    assert_eq!(snapshot(&w, &ids), before, "no connection changed");
    let mails = w.env.sandbox.mails();
    assert_eq!(mails.len(), 1, "{mails:#?}");
    assert_eq!(mails[0].to, vec!["ops@example.nl".to_owned()]);
    assert!(mails[0].subject.contains("invalid_client"));

    assert!(
        mails[0].subject.contains("Incident"),
        "{:?}",
        mails[0].subject
    );

    // The next tick with the same fault: still one alert for the incident,
    // and each trip is in the audit log.
    let r = tick(&wrong);
    assert!(r.breaker.is_some());
    assert_eq!(w.env.sandbox.mails().len(), 1);
    let audit = block_on(boekhouding_core::storage::audit_log::recent(&w.db, 10)).unwrap();
    assert_eq!(audit.len(), 2, "{audit:?}");
    assert!(audit.iter().all(|a| {
        a.action == "breaker_tripped"
            && a.actor_email.as_deref() == Some("token-cron")
            && a.metadata
                .as_deref()
                .is_some_and(|m| m.contains("invalid_client"))
    }));
    assert_eq!(snapshot(&w, &ids), before);

    // The secret is fixed: every connection refreshes.
    let r = tick(&w.exact);
    assert_eq!(r.breaker, None);
    assert_eq!(r.summary.refreshed, 50, "{r:?}");
    for id in &ids {
        assert_eq!(w.conn(id).state.status, ConnectionStatus::Active);
        assert_eq!(w.conn(id).token_generation, 2);
    }
    assert!(
        w.env
            .sandbox
            .mails()
            .iter()
            .all(|m| m.to == vec!["ops@example.nl".to_owned()]),
        "no customer was mailed"
    );
}

#[test]
fn a_streak_of_the_same_upstream_failure_trips_the_breaker_and_leaves_the_rest() {
    let w = World::new();
    let ids = w.connections(20, |i| Duration::days(5) + Duration::minutes(i as i64));
    let before = snapshot(&w, &ids);
    w.fault(json!({"kind": "status", "status": 503, "count": 100, "path": "/api/oauth2/token"}));
    let cfg = CronConfig {
        max_refreshes: 100,
        operator_emails: vec!["ops@example.nl".into()],
        ..CronConfig::default()
    };
    let r = w.tick_with(&cfg);
    assert_eq!(r.summary.retried, 5, "{r:?}");
    assert!(
        r.breaker
            .as_deref()
            .is_some_and(|b| b.contains("5 connections in a row") && b.contains("upstream 503")),
        "{r:?}"
    );
    let after = snapshot(&w, &ids);
    // The five that failed wait for their retry; the other fifteen are
    // exactly as they were.
    assert_eq!(
        after
            .iter()
            .filter(|s| s.0 == ConnectionStatus::RetryPending)
            .count(),
        5
    );
    assert_eq!(after[5..], before[5..]);
    assert_eq!(w.env.sandbox.mails().len(), 1, "one operator alert only");
}

#[test]
fn failures_of_different_kinds_do_not_trip_the_breaker() {
    let w = World::new();
    let ids = w.connections(8, |i| Duration::days(5) + Duration::minutes(i as i64));
    // Alternating causes: no streak of one cause reaches five.
    for status in [503, 502, 503, 502, 503, 502] {
        w.fault(json!({"kind": "status", "status": status, "path": "/api/oauth2/token"}));
    }
    let r = w.tick_with(&CronConfig {
        max_refreshes: 100,
        ..CronConfig::default()
    });
    assert_eq!(r.breaker, None, "{r:?}");
    assert_eq!((r.summary.retried, r.summary.refreshed), (6, 2));
    assert_eq!(ids.len(), 8);
}

#[test]
fn the_cron_reseals_idle_rows_sealed_with_a_retired_key() {
    const NEW: &str = "1f1e1d1c1b1a191817161514131211100f0e0d0c0b0a09080706050403020100";
    let mut w = World::new();
    // Quiet connections, not due for anything.
    let ids = w.connections(3, |_| Duration::days(25));
    w.sql(&format!(
        "UPDATE connections SET access_expires_at = {}",
        (w.now() + Duration::minutes(9)).timestamp()
    ));
    w.exact.keyring = TokenKeyring::from_config(&format!("2:{NEW},1:{KEY}")).unwrap();
    let r = w.tick();
    assert_eq!(r.summary.resealed, 3, "{r:?}");
    assert_eq!(r.summary.exact_calls, 0);
    let only_new = TokenKeyring::from_config(&format!("2:{NEW}")).unwrap();
    for id in &ids {
        let c = w.conn(id);
        assert!(connections::open_tokens(&only_new, &c).is_ok());
        assert_eq!(c.token_generation, 1, "the tokens themselves are unchanged");
    }
    assert_eq!(w.tick().summary.resealed, 0, "nothing left to reseal");
}

#[test]
fn a_connection_in_use_is_resealed_when_read() {
    const NEW: &str = "1f1e1d1c1b1a191817161514131211100f0e0d0c0b0a09080706050403020100";
    let w = World::new();
    let id = w.connections(1, |_| Duration::days(25))[0].clone();
    w.sql(&format!(
        "UPDATE connections SET access_expires_at = {}",
        (w.now() + Duration::minutes(9)).timestamp()
    ));
    let rotated = TokenKeyring::from_config(&format!("2:{NEW},1:{KEY}")).unwrap();
    let app = w.exact.app_for(Region::Nl);
    let ctx = AccessContext {
        db: &w.db,
        http: &w.env.http,
        rng: &w.rng,
        sleep: &w.sleep,
        keyring: &rotated,
        app: &app,
    };
    block_on(fresh_access(&ctx, &id, "mcp-1", w.now())).unwrap();
    assert!(!connections::needs_reseal(&rotated, &w.conn(&id)));
    assert_eq!(w.refreshes(), 0, "reading is not refreshing");
}
