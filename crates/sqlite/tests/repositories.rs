//! Repository tests: core's SQL against a real SQLite with the real
//! migrations applied, exactly as it runs on D1.

// Test helpers outside #[test] functions may unwrap too: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use boekhouding_core::crypto::{Secret, TokenKeyring};
use boekhouding_core::lifecycle::{ConnectionStatus, TokenState};
use boekhouding_core::plan::{Limit, Plan};
use boekhouding_core::region::Region;
use boekhouding_core::storage::administrations::{self, DivisionInfo, Toggle};
use boekhouding_core::storage::api_keys::{self, CreateKeyError};
use boekhouding_core::storage::connections::{self, ExactIdentity, ExactTokens, NewConnection};
use boekhouding_core::storage::cron_runs::{self, RunOutcome, RunSummary};
use boekhouding_core::storage::usage::{self, AuthKind, CallRecord, Metered, Outcome, UsageMonth};
use boekhouding_core::storage::{SqlExecutor, StorageError, applied_migrations, users};
use boekhouding_core::testing::SeededRandomness;
use boekhouding_sqlite::{SqliteDb, migrations_dir, read_migrations};
use chrono::{DateTime, Duration, TimeZone, Utc};
use futures::executor::block_on;

const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, 0).unwrap()
}

struct Fixture {
    db: SqliteDb,
    rng: SeededRandomness,
    keyring: TokenKeyring,
}

fn fixture() -> Fixture {
    Fixture {
        db: SqliteDb::migrated().unwrap(),
        rng: SeededRandomness::new(42),
        keyring: TokenKeyring::from_config(KEY).unwrap(),
    }
}

fn tokens(tag: &str) -> ExactTokens {
    ExactTokens {
        access_token: Secret::new(format!("access-{tag}")),
        refresh_token: Secret::new(format!("refresh-{tag}")),
        access_expires_at: now() + Duration::minutes(10),
        refresh_expires_at: now() + Duration::days(30),
    }
}

impl Fixture {
    fn user(&self, email: &str) -> users::User {
        block_on(users::upsert_by_email(
            &self.db,
            &self.rng,
            email,
            Some("Jan"),
            now(),
        ))
        .unwrap()
    }

    fn connection(&self, user: &users::User) -> connections::Connection {
        block_on(connections::connect(
            &self.db,
            &self.rng,
            &self.keyring,
            &NewConnection {
                user_id: &user.id,
                region: Region::Nl,
                identity: &ExactIdentity::default(),
                tokens: &tokens("1"),
            },
            now(),
        ))
        .unwrap()
    }

    fn count(&self, sql: &str) -> i64 {
        self.db.raw().query_row(sql, [], |r| r.get(0)).unwrap()
    }
}

#[test]
fn every_migration_is_applied_once_and_recorded_like_wrangler_does() {
    let f = fixture();
    let files = read_migrations(&migrations_dir()).unwrap();
    assert!(files.len() >= 12);
    assert_eq!(
        block_on(applied_migrations(&f.db)).unwrap() as usize,
        files.len()
    );
    assert!(
        f.db.apply(&files).unwrap().is_empty(),
        "second apply is a no-op"
    );
}

#[test]
fn check_constraints_follow_the_domain_enums() {
    let f = fixture();
    let insert_user = |id: &str, plan: &str| {
        f.db.raw().execute(
            "INSERT INTO users (id, email, plan, created_at, updated_at) VALUES (?1, ?1 || '@x.nl', ?2, 0, 0)",
            [id, plan],
        )
    };
    for plan in Plan::ALL {
        insert_user(plan.as_str(), plan.as_str()).unwrap();
    }
    assert!(
        insert_user("p", "premium").is_err(),
        "unknown plan rejected"
    );

    let insert_conn = |id: &str, region: &str, status: &str, next: Option<i64>| {
        f.db.raw().execute(
            "INSERT INTO connections (id, user_id, region, access_token_sealed, refresh_token_sealed,
                access_expires_at, refresh_expires_at, status, next_retry_at, created_at, updated_at)
             VALUES (?1, 'free', ?2, 'x', 'x', 0, 0, ?3, ?4, 0, 0)",
            rusqlite::params![id, region, status, next],
        )
    };
    for (i, region) in Region::ALL.iter().enumerate() {
        let status = ConnectionStatus::ALL[i % 3];
        let next = (status == ConnectionStatus::RetryPending).then_some(1);
        insert_conn(&format!("c{i}"), region.code(), status.as_str(), next).unwrap();
    }
    assert!(insert_conn("bad-region", "gb", "active", None).is_err());
    assert!(insert_conn("bad-status", "gb", "paused", None).is_err());
    assert!(
        insert_conn("retry-without-time", "nl", "retry_pending", None).is_err(),
        "retry_pending needs next_retry_at"
    );
}

#[test]
fn users_are_found_by_email_case_insensitively_and_plans_change() {
    let f = fixture();
    let a = f.user("Jan@Bakkerij.nl");
    let b = block_on(users::upsert_by_email(
        &f.db,
        &f.rng,
        "jan@bakkerij.nl",
        None,
        now(),
    ))
    .unwrap();
    assert_eq!(a.id, b.id);
    assert_eq!(
        b.name.as_deref(),
        Some("Jan"),
        "a missing name keeps the old one"
    );
    assert_eq!(b.plan, Plan::Free);
    assert!(block_on(users::set_plan(&f.db, &a.id, Plan::Starter, now())).unwrap());
    assert_eq!(
        block_on(users::find_by_id(&f.db, &a.id))
            .unwrap()
            .unwrap()
            .plan,
        Plan::Starter
    );
    assert!(!block_on(users::set_plan(&f.db, "nobody", Plan::Pro, now())).unwrap());
}

#[test]
fn connection_tokens_are_stored_sealed_and_bound_to_their_row() {
    let f = fixture();
    let user = f.user("a@x.nl");
    let conn = f.connection(&user);
    let raw: String =
        f.db.raw()
            .query_row(
                "SELECT access_token_sealed || refresh_token_sealed FROM connections",
                [],
                |r| r.get(0),
            )
            .unwrap();
    assert!(!raw.contains("access-1") && !raw.contains("refresh-1"));
    let (access, refresh) = connections::open_tokens(&f.keyring, &conn).unwrap();
    assert_eq!(
        (access.expose(), refresh.expose()),
        ("access-1", "refresh-1")
    );

    // A ciphertext copied into another user's row does not open there.
    let other = f.connection(&f.user("b@x.nl"));
    f.db.raw()
        .execute(
            "UPDATE connections SET refresh_token_sealed = ?1 WHERE id = ?2",
            [&conn.refresh_token_sealed, &other.id],
        )
        .unwrap();
    let tampered = block_on(connections::find_by_id(&f.db, &other.id))
        .unwrap()
        .unwrap();
    assert!(connections::open_tokens(&f.keyring, &tampered).is_err());
}

#[test]
fn reconnect_revives_a_failed_connection_in_place() {
    let f = fixture();
    let user = f.user("a@x.nl");
    let conn = f.connection(&user);
    assert!(
        block_on(connections::try_take_lease(
            &f.db,
            &conn.id,
            "cron",
            now(),
            Duration::seconds(60)
        ))
        .unwrap()
    );
    let failed = TokenState {
        status: ConnectionStatus::RefreshFailed,
        retry_count: 5,
        next_retry_at: None,
        last_error: Some("invalid_grant".into()),
    };
    assert!(
        block_on(connections::store_state(
            &f.db,
            &connections::TokenSlot::of(&conn, "cron"),
            &failed,
            now()
        ))
        .unwrap()
    );
    let again = block_on(connections::connect(
        &f.db,
        &f.rng,
        &f.keyring,
        &NewConnection {
            user_id: &user.id,
            region: Region::Nl,
            identity: &ExactIdentity::default(),
            tokens: &tokens("2"),
        },
        now(),
    ))
    .unwrap();
    assert_eq!(again.id, conn.id);
    assert_eq!(again.state, TokenState::active());
    assert_eq!(again.token_generation, conn.token_generation + 1);
    assert_eq!(
        connections::open_tokens(&f.keyring, &again)
            .unwrap()
            .1
            .expose(),
        "refresh-2"
    );
    assert_eq!(f.count("SELECT COUNT(*) FROM connections"), 1);
}

#[test]
fn the_refresh_lease_admits_one_holder_until_it_expires() {
    let f = fixture();
    let conn = f.connection(&f.user("a@x.nl"));
    let ttl = Duration::seconds(60);
    let take = |who: &str, at| {
        block_on(connections::try_take_lease(&f.db, &conn.id, who, at, ttl)).unwrap()
    };
    assert!(take("cron", now()));
    assert!(!take("mcp", now()), "held");
    assert!(!take("mcp", now() + Duration::seconds(59)), "still held");

    // A store is conditional on the generation it refreshed from, not on
    // the lease: a stale generation's write changes nothing, the current
    // one's is stored even by a refresher that lost the lease (and leaves
    // the holder's lease alone), and the holder's own store releases it.
    let stored = |who: &str, generation: i64| {
        block_on(connections::store_refreshed(
            &f.db,
            &f.rng,
            &f.keyring,
            &connections::TokenSlot {
                id: &conn.id,
                owner: who,
                generation,
            },
            &tokens("x"),
            now(),
        ))
        .unwrap()
    };
    let g = conn.token_generation;
    assert!(!stored("cron", g - 1), "stale generation");
    assert!(stored("mcp", g), "rotated tokens are never thrown away");
    assert!(
        !take("other", now()),
        "another's store leaves the lease held"
    );
    assert!(!stored("cron", g), "superseded by the stored generation");
    assert!(stored("cron", g + 1));
    assert!(take("mcp", now()), "the holder's store released the lease");

    // A crashed holder's lease lapses.
    assert!(
        take("crashed", now() + Duration::seconds(100)),
        "the mcp lease lapsed"
    );
    assert!(!take("next", now() + Duration::seconds(159)));
    assert!(take("next", now() + Duration::seconds(200)));
    assert!(block_on(connections::release_lease(&f.db, &conn.id, "next")).unwrap());
    assert!(!block_on(connections::release_lease(&f.db, &conn.id, "next")).unwrap());
}

#[test]
fn taking_the_lease_returns_the_row_and_is_reentrant_for_its_owner_only() {
    let f = fixture();
    let conn = f.connection(&f.user("r@x.nl"));
    let ttl = Duration::seconds(30);
    let take =
        |who: &str| block_on(connections::take_lease(&f.db, &conn.id, who, now(), ttl)).unwrap();
    let row = take("req-1").expect("free lease");
    assert_eq!(row.id, conn.id);
    assert_eq!(row.lease_owner.as_deref(), Some("req-1"));
    // A retry by the same request after an ambiguous error gets it again;
    // nobody else does.
    assert!(take("req-1").is_some());
    assert!(take("req-2").is_none());
    assert!(
        block_on(connections::take_lease(
            &f.db,
            "no-such-id",
            "req-1",
            now(),
            ttl
        ))
        .unwrap()
        .is_none()
    );
}

#[test]
fn administrations_sync_within_the_plan_and_keep_the_users_choices() {
    let f = fixture();
    let user = f.user("a@x.nl");
    let conn = f.connection(&user);
    let divs = |codes: &[i64]| -> Vec<DivisionInfo> {
        codes
            .iter()
            .map(|c| DivisionInfo {
                code: *c,
                name: format!("Administratie {c}"),
            })
            .collect()
    };
    let synced = block_on(administrations::sync_for_connection(
        &f.db,
        &f.rng,
        &conn.id,
        Plan::Free,
        &divs(&[101, 102, 103]),
        Some(102),
        now(),
    ))
    .unwrap();
    let active: Vec<i64> = synced
        .iter()
        .filter(|a| a.is_active)
        .map(|a| a.division_code)
        .collect();
    assert_eq!(active, vec![101, 102], "free plan: two administrations");
    assert_eq!(
        synced
            .iter()
            .filter(|a| a.is_default)
            .map(|a| a.division_code)
            .collect::<Vec<_>>(),
        vec![102]
    );

    // Switching the third on is refused by the plan; switching one off
    // first makes room.
    let third = synced.iter().find(|a| a.division_code == 103).unwrap();
    let first = synced.iter().find(|a| a.division_code == 101).unwrap();
    let toggle = |id: &str, on: bool, uid: &str| {
        block_on(administrations::set_active(
            &f.db,
            uid,
            id,
            on,
            Plan::Free,
            now(),
        ))
        .unwrap()
    };
    assert_eq!(
        toggle(&third.id, true, &user.id),
        Toggle::LimitReached { limit: 2 }
    );
    assert_eq!(toggle(&first.id, false, &user.id), Toggle::Changed);
    assert_eq!(toggle(&third.id, true, &user.id), Toggle::Changed);

    // Another user cannot touch them.
    let stranger = f.user("b@x.nl");
    assert_eq!(toggle(&first.id, true, &stranger.id), Toggle::NotFound);

    // A reconnect keeps those choices; a division Exact no longer reports
    // is switched off.
    let resynced = block_on(administrations::sync_for_connection(
        &f.db,
        &f.rng,
        &conn.id,
        Plan::Free,
        &divs(&[101, 103]),
        Some(101),
        now(),
    ))
    .unwrap();
    let state: Vec<(i64, bool)> = resynced
        .iter()
        .map(|a| (a.division_code, a.is_active))
        .collect();
    assert_eq!(state, vec![(101, false), (102, false), (103, true)]);

    let mine = block_on(administrations::active_for_user(&f.db, &user.id)).unwrap();
    assert_eq!(
        mine.iter().map(|a| a.division_code).collect::<Vec<_>>(),
        vec![103]
    );
    assert!(
        block_on(administrations::active_for_user(&f.db, &stranger.id))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn api_keys_are_stored_as_hashes_limited_by_plan_and_revocable_only_by_their_owner() {
    let f = fixture();
    let user = f.user("a@x.nl");
    let created = block_on(api_keys::create(
        &f.db,
        &f.rng,
        &user.id,
        Plan::Free,
        "Claude",
        now(),
    ))
    .unwrap();
    let secret = created.issued.secret.expose().to_owned();
    let stored: String =
        f.db.raw()
            .query_row("SELECT key_hash || key_prefix FROM api_keys", [], |r| {
                r.get(0)
            })
            .unwrap();
    assert!(!stored.contains(&secret));

    let found = block_on(api_keys::find_active_by_secret(&f.db, &secret))
        .unwrap()
        .unwrap();
    assert_eq!(found.id, created.record.id);
    assert_eq!(found.user_id, user.id);
    for garbage in [
        "",
        "pmjb_",
        "Bearer x",
        "pmjb_' OR 1=1 --",
        &secret.to_uppercase(),
    ] {
        assert!(
            block_on(api_keys::find_active_by_secret(&f.db, garbage))
                .unwrap()
                .is_none()
        );
    }

    for n in 2..=3 {
        block_on(api_keys::create(
            &f.db,
            &f.rng,
            &user.id,
            Plan::Free,
            &format!("key {n}"),
            now(),
        ))
        .unwrap();
    }
    let fourth = block_on(api_keys::create(
        &f.db,
        &f.rng,
        &user.id,
        Plan::Free,
        "one too many",
        now(),
    ));
    assert!(matches!(
        fourth,
        Err(CreateKeyError::LimitReached {
            plan: Plan::Free,
            limit: 3
        })
    ));
    assert!(matches!(
        block_on(api_keys::create(
            &f.db,
            &f.rng,
            &user.id,
            Plan::Free,
            "  ",
            now()
        )),
        Err(CreateKeyError::InvalidName)
    ));

    let stranger = f.user("b@x.nl");
    assert!(
        !block_on(api_keys::revoke(
            &f.db,
            &stranger.id,
            &created.record.id,
            now()
        ))
        .unwrap()
    );
    assert!(block_on(api_keys::revoke(&f.db, &user.id, &created.record.id, now())).unwrap());
    assert!(
        block_on(api_keys::find_active_by_secret(&f.db, &secret))
            .unwrap()
            .is_none()
    );
    assert_eq!(
        block_on(api_keys::list_for_user(&f.db, &user.id))
            .unwrap()
            .len(),
        3
    );

    // Revoked keys are purged after 30 days, active ones never.
    let purged = block_on(api_keys::purge_revoked_before(
        &f.db,
        now() + Duration::days(31),
    ))
    .unwrap();
    assert_eq!(purged, 1);
    assert_eq!(
        block_on(api_keys::list_for_user(&f.db, &user.id))
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn the_monthly_counter_stops_exactly_at_the_plan_limit_and_resets_next_month() {
    let f = fixture();
    let user = f.user("a@x.nl");
    let month = UsageMonth::of(now());
    let limit = Limit::Capped(5);
    let mut seen = Vec::new();
    for _ in 0..7 {
        seen.push(block_on(usage::try_count_call(&f.db, &user.id, month, limit)).unwrap());
    }
    assert_eq!(
        seen,
        vec![
            Metered::Allowed { used: 1 },
            Metered::Allowed { used: 2 },
            Metered::Allowed { used: 3 },
            Metered::Allowed { used: 4 },
            Metered::Allowed { used: 5 },
            Metered::LimitReached { used: 5 },
            Metered::LimitReached { used: 5 },
        ]
    );
    let next = UsageMonth::of(now() + Duration::days(31));
    assert_eq!(
        block_on(usage::try_count_call(&f.db, &user.id, next, limit)).unwrap(),
        Metered::Allowed { used: 1 }
    );
    assert_eq!(
        block_on(usage::try_count_call(
            &f.db,
            &user.id,
            month,
            Limit::Capped(0)
        ))
        .unwrap(),
        Metered::LimitReached { used: 5 }
    );
    assert_eq!(
        block_on(usage::try_count_call(
            &f.db,
            &user.id,
            month,
            Limit::Unlimited
        ))
        .unwrap(),
        Metered::Allowed { used: 6 }
    );
}

#[test]
fn call_records_keep_the_auth_kind_and_aggregate_per_tool() {
    let f = fixture();
    let user = f.user("a@x.nl");
    let key = block_on(api_keys::create(
        &f.db,
        &f.rng,
        &user.id,
        Plan::Free,
        "k",
        now(),
    ))
    .unwrap();
    let record = |tool: &str, outcome, auth: AuthKind| CallRecord {
        user_id: user.id.clone(),
        auth,
        tool: tool.into(),
        division_code: Some(101),
        outcome,
        latency_ms: 40,
        exact_calls: 2,
        request_id: None,
        client_name: Some("claude-ai".into()),
        at: now(),
    };
    let by_key = AuthKind::ApiKey {
        key_id: key.record.id.clone(),
    };
    block_on(usage::record_call(
        &f.db,
        &record("get_revenue", Outcome::Ok, by_key.clone()),
    ))
    .unwrap();
    block_on(usage::record_call(
        &f.db,
        &record("get_revenue", Outcome::UpstreamError, by_key.clone()),
    ))
    .unwrap();
    block_on(usage::record_call(
        &f.db,
        &record("list_divisions", Outcome::Ok, by_key),
    ))
    .unwrap();
    // An OAuth client id that does not exist violates the foreign key: the
    // original product silently lost exactly these rows.
    let bad = block_on(usage::record_call(
        &f.db,
        &record(
            "x",
            Outcome::Ok,
            AuthKind::OAuth {
                client_id: "nope".into(),
            },
        ),
    ));
    assert!(matches!(bad, Err(StorageError::Constraint(_))));

    let per_tool = block_on(usage::tool_usage(&f.db, &user.id, UsageMonth::of(now()))).unwrap();
    let summary: Vec<(String, u64, u64)> = per_tool
        .into_iter()
        .map(|t| (t.tool, t.calls, t.errors))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("get_revenue".into(), 2, 1),
            ("list_divisions".into(), 1, 0)
        ]
    );
    assert_eq!(
        f.count("SELECT COUNT(*) FROM api_usage WHERE auth_kind = 'api_key'"),
        3
    );
}

#[test]
fn cron_runs_are_recorded_with_their_counters() {
    let f = fixture();
    let id = block_on(cron_runs::start(
        &f.db,
        "*/5 * * * *",
        cron_runs::RunMode::Inline,
        now(),
    ))
    .unwrap();
    let summary = RunSummary {
        due: 4,
        refreshed: 3,
        failed: 1,
        ..RunSummary::default()
    };
    let end = cron_runs::RunEnd {
        summary: &summary,
        outcome: RunOutcome::Partial,
        notes: None,
        breaker: Some("Exact refused the app's client credentials (invalid_client)"),
    };
    block_on(cron_runs::finish(
        &f.db,
        id,
        &end,
        now(),
        now() + Duration::seconds(2),
    ))
    .unwrap();
    let runs = block_on(cron_runs::recent(&f.db, 5)).unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!((runs[0].due, runs[0].refreshed, runs[0].failed), (4, 3, 1));
    assert_eq!(runs[0].outcome, "partial");
    assert_eq!(f.count("SELECT duration_ms FROM cron_runs"), 2000);
    assert_eq!(
        f.count("SELECT COUNT(*) FROM cron_runs WHERE breaker LIKE '%invalid_client%'"),
        1
    );
}

#[test]
fn an_unavailable_database_is_reported_as_retryable() {
    let f = fixture();
    f.db.fail_next(1);
    let err = block_on(applied_migrations(&f.db)).unwrap_err();
    assert!(err.is_retryable());
    assert!(
        block_on(applied_migrations(&f.db)).is_ok(),
        "the next call works again"
    );
}

#[test]
fn a_failure_of_a_superseded_refresh_is_not_recorded() {
    let f = fixture();
    let conn = f.connection(&f.user("a@x.nl"));
    let failed = TokenState {
        status: ConnectionStatus::RefreshFailed,
        retry_count: 0,
        next_retry_at: None,
        last_error: Some("refresh token already used".into()),
    };
    let stale = connections::TokenSlot {
        id: &conn.id,
        owner: "slow",
        generation: conn.token_generation - 1,
    };
    assert!(!block_on(connections::store_state(&f.db, &stale, &failed, now())).unwrap());
    let after = block_on(connections::find_by_id(&f.db, &conn.id))
        .unwrap()
        .unwrap();
    assert_eq!(after.state, TokenState::active());
}

#[test]
fn key_rotation_reseals_rows_without_changing_tokens_and_reports_what_each_key_still_seals() {
    const NEW: &str = "1f1e1d1c1b1a191817161514131211100f0e0d0c0b0a09080706050403020100";
    let f = fixture();
    let a = f.connection(&f.user("a@x.nl"));
    let b = f.connection(&f.user("b@x.nl"));
    let usage = |db| {
        block_on(connections::key_usage(db))
            .unwrap()
            .into_iter()
            .map(|u| (u.key_id, u.connections))
            .collect::<Vec<_>>()
    };
    assert_eq!(usage(&f.db), vec![(Some(1), 2)]);

    // Key 2 becomes current; key 1 stays to open the old rows.
    let rotated = TokenKeyring::from_config(&format!("2:{NEW},1:{KEY}")).unwrap();
    assert!(connections::needs_reseal(&rotated, &a));
    let stale = block_on(connections::sealed_with_old_keys(&f.db, 2, 10)).unwrap();
    assert_eq!(stale.len(), 2);
    assert!(block_on(connections::reseal(&f.db, &f.rng, &rotated, &a)).unwrap());
    assert_eq!(usage(&f.db), vec![(Some(1), 1), (Some(2), 1)]);
    // A row that changed since it was read is left alone.
    assert!(!block_on(connections::reseal(&f.db, &f.rng, &rotated, &a)).unwrap());

    let a2 = block_on(connections::find_by_id(&f.db, &a.id))
        .unwrap()
        .unwrap();
    assert_eq!(a2.token_generation, a.token_generation, "same tokens");
    assert!(!connections::needs_reseal(&rotated, &a2));
    let only_new = TokenKeyring::from_config(&format!("2:{NEW}")).unwrap();
    let (access, refresh) = connections::open_tokens(&only_new, &a2).unwrap();
    assert_eq!(
        (access.expose(), refresh.expose()),
        ("access-1", "refresh-1")
    );
    let left = block_on(connections::sealed_with_old_keys(&f.db, 2, 10)).unwrap();
    assert_eq!(
        left.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
        vec![b.id.as_str()]
    );
}

#[test]
fn a_sign_in_attempt_is_taken_once_by_the_browser_that_started_it_before_it_expires() {
    use boekhouding_core::storage::login_states;
    let f = fixture();
    let start = |return_to| {
        block_on(login_states::begin(
            &f.db,
            &f.rng,
            Region::Be,
            return_to,
            None,
            now(),
        ))
        .unwrap()
    };
    let take = |state: &str, browser: &str, at| {
        block_on(login_states::take(&f.db, state, browser, at)).unwrap()
    };
    let a = start(Some("/dashboard"));
    let b = start(None);
    assert!(
        take(a.state.expose(), b.browser.expose(), now()).is_none(),
        "another browser's cookie"
    );
    let got = take(a.state.expose(), a.browser.expose(), now()).unwrap();
    assert_eq!(got.region, Region::Be);
    assert_eq!(got.return_to.as_deref(), Some("/dashboard"));
    assert!(
        take(a.state.expose(), a.browser.expose(), now()).is_none(),
        "replayed"
    );
    let late = now() + login_states::LIFETIME + Duration::seconds(1);
    assert!(
        take(b.state.expose(), b.browser.expose(), late).is_none(),
        "expired"
    );
    assert!(take("", "", now()).is_none());
    // Only hashes are stored.
    assert_eq!(
        f.count(&format!(
            "SELECT COUNT(*) FROM login_states WHERE state_hash = '{}' OR browser_hash = '{}'",
            b.state.expose(),
            b.browser.expose()
        )),
        0
    );
    block_on(f.db.execute(login_states::purge_expired_statement(late))).unwrap();
    assert_eq!(f.count("SELECT COUNT(*) FROM login_states"), 0);
}

#[test]
fn sessions_slide_and_end_when_revoked() {
    use boekhouding_core::storage::sessions;
    let f = fixture();
    let user = f.user("a@x.nl");
    let (token, s) = block_on(sessions::create(
        &f.db,
        &f.rng,
        &user.id,
        Some("Firefox"),
        now(),
    ))
    .unwrap();
    assert_ne!(s.token_hash, token.expose(), "only the hash is stored");
    let found = |at| block_on(sessions::find_live(&f.db, token.expose(), at)).unwrap();
    assert_eq!(found(now()).map(|s| s.user_id), Some(user.id.clone()));
    // Used after 20 days: good for 30 more from then.
    let later = now() + Duration::days(20);
    assert_eq!(
        found(later).map(|s| s.expires_at),
        Some(later + sessions::LIFETIME)
    );
    assert!(
        found(later + Duration::days(31)).is_none(),
        "unused for 31 days: expired"
    );
    let (token2, _) = block_on(sessions::create(&f.db, &f.rng, &user.id, None, now())).unwrap();
    let live = |at| block_on(sessions::find_live(&f.db, token2.expose(), at)).unwrap();
    assert!(live(now() + Duration::days(29)).is_some(), "used on day 29");
    assert!(
        live(now() + Duration::days(58)).is_some(),
        "slid: good until day 59"
    );
    assert!(
        block_on(sessions::find_live(&f.db, "pmjb_s_forged", now()))
            .unwrap()
            .is_none()
    );
    block_on(sessions::revoke(&f.db, &s.token_hash)).unwrap();
    assert!(found(now()).is_none(), "signed out");
}

#[test]
fn deleting_an_account_leaves_nothing_of_the_user_but_an_anonymous_audit_line() {
    let f = fixture();
    let user = f.user("weg@x.nl");
    let keep = f.user("blijft@x.nl");
    for u in [&user, &keep] {
        let conn = f.connection(u);
        block_on(administrations::sync_for_connection(
            &f.db,
            &f.rng,
            &conn.id,
            Plan::Pro,
            &[DivisionInfo {
                code: 7,
                name: "Zeven".into(),
            }],
            None,
            now(),
        ))
        .unwrap();
        block_on(api_keys::create(
            &f.db,
            &f.rng,
            &u.id,
            Plan::Pro,
            "k",
            now(),
        ))
        .unwrap();
        block_on(boekhouding_core::storage::sessions::create(
            &f.db,
            &f.rng,
            &u.id,
            None,
            now(),
        ))
        .unwrap();
        block_on(boekhouding_core::storage::login_states::begin(
            &f.db,
            &f.rng,
            Region::Nl,
            None,
            Some(&u.id),
            now(),
        ))
        .unwrap();
    }
    block_on(f.db.batch(boekhouding_core::account::delete_statements(
        &user.id,
        now(),
    )))
    .unwrap();
    for table in [
        "users WHERE id = ?1",
        "connections WHERE user_id = ?1",
        "administrations WHERE connection_id IN (SELECT id FROM connections WHERE user_id = ?1)",
        "api_keys WHERE user_id = ?1",
        "sessions WHERE user_id = ?1",
        "login_states WHERE user_id = ?1",
        "usage_counters WHERE user_id = ?1",
        "api_usage WHERE user_id = ?1",
        "email_queue WHERE user_id = ?1",
    ] {
        let n: i64 =
            f.db.raw()
                .query_row(&format!("SELECT COUNT(*) FROM {table}"), [&user.id], |r| {
                    r.get(0)
                })
                .unwrap();
        assert_eq!(n, 0, "{table}");
    }
    assert_eq!(f.count("SELECT COUNT(*) FROM users"), 1, "the other stays");
    assert_eq!(f.count("SELECT COUNT(*) FROM connections"), 1);
    assert_eq!(f.count("SELECT COUNT(*) FROM administrations"), 1);
    let audit: (String, String, Option<String>) =
        f.db.raw()
            .query_row(
                "SELECT action, resource_id, actor_email FROM audit_log",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
    assert_eq!(audit.0, "account_deleted");
    assert_eq!(audit.1, boekhouding_core::account::audit_subject(&user.id));
    assert!(
        !audit.1.contains(&user.id) && audit.2.is_none(),
        "no personal data"
    );
}

#[test]
fn defaults_renames_preferences_and_the_month_of_usage() {
    let f = fixture();
    let user = f.user("a@x.nl");
    let conn = f.connection(&user);
    let admins = block_on(administrations::sync_for_connection(
        &f.db,
        &f.rng,
        &conn.id,
        Plan::Pro,
        &[
            DivisionInfo {
                code: 1,
                name: "Een".into(),
            },
            DivisionInfo {
                code: 2,
                name: "Twee".into(),
            },
        ],
        Some(1),
        now(),
    ))
    .unwrap();
    let two = admins.iter().find(|a| a.division_code == 2).unwrap();
    assert!(
        block_on(administrations::set_default(
            &f.db,
            &user.id,
            &two.id,
            now()
        ))
        .unwrap()
    );
    let defaults: Vec<i64> = block_on(administrations::all_for_user(&f.db, &user.id))
        .unwrap()
        .into_iter()
        .filter(|a| a.is_default)
        .map(|a| a.division_code)
        .collect();
    assert_eq!(defaults, vec![2]);
    let stranger = f.user("b@x.nl");
    assert!(
        !block_on(administrations::set_default(
            &f.db,
            &stranger.id,
            &two.id,
            now()
        ))
        .unwrap()
    );

    let key = block_on(api_keys::create(
        &f.db,
        &f.rng,
        &user.id,
        Plan::Pro,
        "oud",
        now(),
    ))
    .unwrap();
    assert!(block_on(api_keys::rename(&f.db, &user.id, &key.record.id, " nieuw ")).unwrap());
    assert!(!block_on(api_keys::rename(&f.db, &stranger.id, &key.record.id, "x")).unwrap());
    assert!(block_on(api_keys::rename(&f.db, &user.id, &key.record.id, "")).is_err());

    let prefs = users::Preferences {
        english: true,
        usage_warnings: false,
        product_updates: true,
    };
    assert!(block_on(users::set_preferences(&f.db, &user.id, prefs, now())).unwrap());
    assert_eq!(
        block_on(users::preferences(&f.db, &user.id)).unwrap(),
        Some(prefs)
    );

    for (at, tool) in [
        (0, "get_profit_loss"),
        (86_400, "get_profit_loss"),
        (86_400, "list_divisions"),
    ] {
        block_on(usage::record_call(
            &f.db,
            &CallRecord {
                user_id: user.id.clone(),
                auth: AuthKind::ApiKey {
                    key_id: key.record.id.clone(),
                },
                tool: tool.into(),
                division_code: Some(1),
                outcome: Outcome::Ok,
                latency_ms: 12,
                exact_calls: 1,
                request_id: None,
                client_name: Some("claude-code".into()),
                at: now() + Duration::seconds(at),
            },
        ))
        .unwrap();
    }
    let month = block_on(usage::month_usage(&f.db, &user.id, UsageMonth::of(now()))).unwrap();
    assert_eq!(
        month.per_day,
        vec![("2026-11-23".to_owned(), 1), ("2026-11-24".to_owned(), 2)]
    );
    assert_eq!(month.per_tool[0], ("get_profit_loss".to_owned(), 2));
    let recent = block_on(usage::recent_calls(&f.db, &user.id, 20)).unwrap();
    assert_eq!(recent.len(), 3);
    assert_eq!(
        recent[0].at,
        (now() + Duration::seconds(86_400)).timestamp()
    );
}

#[test]
fn an_administration_switched_off_waits_an_hour_before_it_is_switched_on_again() {
    let f = fixture();
    let user = f.user("a@x.nl");
    let conn = f.connection(&user);
    let synced = block_on(administrations::sync_for_connection(
        &f.db,
        &f.rng,
        &conn.id,
        Plan::Free,
        &[101, 102, 103].map(|code| DivisionInfo {
            code,
            name: format!("Administratie {code}"),
        }),
        None,
        now(),
    ))
    .unwrap();
    let first = synced.iter().find(|a| a.division_code == 101).unwrap();
    let third = synced.iter().find(|a| a.division_code == 103).unwrap();
    let toggle = |id: &str, on: bool, _uid: &str| {
        block_on(administrations::set_active(
            &f.db,
            &user.id,
            id,
            on,
            Plan::Free,
            now(),
        ))
        .unwrap()
    };
    assert_eq!(toggle(&first.id, false, &user.id), Toggle::Changed);
    assert_eq!(toggle(&third.id, true, &user.id), Toggle::Changed);
    // Swapping straight back is refused for an hour: switching between
    // administrations cannot stretch the plan's limit.
    assert_eq!(toggle(&third.id, false, &user.id), Toggle::Changed);
    assert_eq!(
        toggle(&first.id, true, &user.id),
        Toggle::CoolingDown {
            until: now() + administrations::TOGGLE_COOLDOWN
        }
    );
    let later = |id: &str, on: bool| {
        block_on(administrations::set_active(
            &f.db,
            &user.id,
            id,
            on,
            Plan::Free,
            now() + administrations::TOGGLE_COOLDOWN,
        ))
        .unwrap()
    };
    assert_eq!(later(&first.id, true), Toggle::Changed);
    assert_eq!(
        later(&third.id, true),
        Toggle::LimitReached { limit: 2 },
        "cooled down, but the plan is full"
    );
    assert_eq!(later(&first.id, false), Toggle::Changed);
    // An unlimited plan has no cooldown.
    let unlimited = block_on(administrations::set_active(
        &f.db,
        &user.id,
        &first.id,
        true,
        Plan::Enterprise,
        now() + administrations::TOGGLE_COOLDOWN,
    ))
    .unwrap();
    assert_eq!(unlimited, Toggle::Changed);
}

/// The deep health check's two queries over the real schema: the applied
/// migrations by name (all this build expects) and the newest cron run.
#[test]
fn the_deep_health_check_reads_the_applied_migrations_and_the_last_cron_run() {
    use boekhouding_core::health::{self, EXPECTED_MIGRATIONS, Findings};
    use boekhouding_core::storage::applied_migration_names;
    let f = fixture();
    let applied = block_on(applied_migration_names(&f.db)).unwrap();
    assert_eq!(applied, EXPECTED_MIGRATIONS);
    assert_eq!(block_on(cron_runs::last(&f.db)).unwrap(), None);
    let first = block_on(cron_runs::start(
        &f.db,
        "*/5 * * * *",
        cron_runs::RunMode::Inline,
        now(),
    ))
    .unwrap();
    let summary = RunSummary::default();
    let end = cron_runs::RunEnd {
        summary: &summary,
        outcome: RunOutcome::Ok,
        notes: None,
        breaker: None,
    };
    block_on(cron_runs::finish(&f.db, first, &end, now(), now())).unwrap();
    let later = now() + Duration::minutes(5);
    let second = block_on(cron_runs::start(
        &f.db,
        "*/5 * * * *",
        cron_runs::RunMode::Enqueue,
        later,
    ))
    .unwrap();
    let last = block_on(cron_runs::last(&f.db)).unwrap().unwrap();
    assert_eq!(
        (last.id, last.mode.as_str(), last.outcome.as_str()),
        (second, "enqueue", "running")
    );
    assert_eq!(last.finished_at, None);
    let report = health::assess(
        Findings {
            service: "token-cron",
            environment: "production".into(),
            now: later + Duration::minutes(1),
            applied_migrations: Some(applied),
            settings: vec![],
            kv_reachable: None,
            last_cron_run: Some(Some(last)),
        },
        EXPECTED_MIGRATIONS,
    );
    assert!(report.healthy, "{:?}", report.reasons);
    assert_eq!(report.last_cron_run.unwrap().age_s, 60);
}
