//! Exact access on demand (`boekhouding_core::access`) against the sandbox
//! and a real SQLite: refresh only when due, one refresher at a time under
//! the lease (proven with real threads), the lifecycle on transient and
//! permanent failures, and no lost refresh token when the database fails
//! right after Exact rotated.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::cell::Cell;

use boekhouding_core::access::{AccessContext, AccessError, fresh_access};
use boekhouding_core::crypto::TokenKeyring;
use boekhouding_core::exact::ExactClient;
use boekhouding_core::lifecycle::ConnectionStatus;
use boekhouding_core::region::Region;
use boekhouding_core::storage::connections::{self, ExactIdentity, NewConnection};
use boekhouding_core::storage::{SqlExecutor, users};
use boekhouding_core::testing::{RecordingSleep, SeededRandomness};
use boekhouding_sqlite::SqliteDb;
use common::{Env, FlakyStore, default_env};
use futures::executor::block_on;
use serde_json::json;

const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

fn keyring() -> TokenKeyring {
    TokenKeyring::from_config(KEY).unwrap()
}

/// Connects the demo user for real and stores the connection.
fn connected(env: &Env, db: &impl SqlExecutor) -> String {
    let rng = SeededRandomness::new(1);
    let user = block_on(users::upsert_by_email(
        db,
        &rng,
        "jan@example.nl",
        None,
        env.clock_now(),
    ))
    .unwrap();
    let tokens = env.connect("demo").into_exact_tokens();
    let conn = block_on(connections::connect(
        db,
        &rng,
        &keyring(),
        &NewConnection {
            user_id: &user.id,
            region: Region::Nl,
            identity: &ExactIdentity::default(),
            tokens: &tokens,
        },
        env.clock_now(),
    ))
    .unwrap();
    conn.id
}

#[test]
fn a_fresh_token_is_used_as_is_and_a_due_one_is_refreshed_once() {
    let env = default_env();
    let db = SqliteDb::migrated().unwrap();
    let id = connected(&env, &db);
    let (rng, ring, app) = (SeededRandomness::new(2), keyring(), env.app());
    let ctx = AccessContext {
        db: &db,
        http: &env.http,
        rng: &rng,
        sleep: &RecordingSleep::default(),
        keyring: &ring,
        app: &app,
    };

    let a = block_on(fresh_access(&ctx, &id, "req-1", env.clock_now())).unwrap();
    assert!(!a.refreshed);
    assert_eq!(env.token_requests("refresh_token"), 0);

    env.advance(580);
    let b = block_on(fresh_access(&ctx, &id, "req-2", env.clock_now())).unwrap();
    assert!(b.refreshed);
    assert_ne!(a.access_token, b.access_token);
    let c = block_on(fresh_access(&ctx, &id, "req-3", env.clock_now())).unwrap();
    assert!(!c.refreshed, "the stored token is reused");
    assert_eq!(c.access_token, b.access_token);
    assert_eq!(env.token_requests("refresh_token"), 1);

    // The new access token works at Exact; the lease is free again.
    let client = ExactClient::new(
        &env.http,
        &env.clock,
        env.sandbox.base_url(),
        c.access_token,
    );
    block_on(client.me()).unwrap();
    let row = block_on(connections::find_by_id(&db, &id))
        .unwrap()
        .unwrap();
    assert!(row.lease_owner.is_none());
    assert_eq!(row.state.status, ConnectionStatus::Active);
}

#[test]
fn concurrent_callers_cause_exactly_one_refresh_at_exact() {
    let env = default_env();
    let dir = std::env::temp_dir().join(format!("pmjb-access-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("race.sqlite");
    let _ = std::fs::remove_file(&path);
    let id = connected(&env, &SqliteDb::migrated_file(&path).unwrap());
    env.advance(580);
    let now = env.clock_now();
    let app = env.app();
    let tokens: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..24)
            .map(|n| {
                let (path, id, app, http) =
                    (path.clone(), id.clone(), app.clone(), env.http.clone());
                s.spawn(move || {
                    let db = SqliteDb::open(&path).unwrap();
                    let (rng, ring) = (SeededRandomness::new(100 + n), keyring());
                    let ctx = AccessContext {
                        db: &db,
                        http: &http,
                        rng: &rng,
                        sleep: &RecordingSleep::default(),
                        keyring: &ring,
                        app: &app,
                    };
                    // A caller that finds the lease busy waits and asks again,
                    // as the MCP server does.
                    for _ in 0..200 {
                        match block_on(fresh_access(&ctx, &id, &format!("req-{n}"), now)) {
                            Ok(a) => return a.access_token.expose().to_owned(),
                            Err(AccessError::LeaseBusy) => {
                                std::thread::sleep(std::time::Duration::from_millis(20))
                            }
                            Err(e) => panic!("caller {n}: {e}"),
                        }
                    }
                    panic!("caller {n} never got a token");
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        env.token_requests("refresh_token"),
        1,
        "exactly one refresh reached Exact"
    );
    assert!(
        tokens.windows(2).all(|w| w[0] == w[1]),
        "everyone got the same new token"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn transient_failures_schedule_a_retry_and_permanent_ones_need_a_reconnect() {
    let env = default_env();
    let db = SqliteDb::migrated().unwrap();
    let id = connected(&env, &db);
    let (rng, ring, app) = (SeededRandomness::new(3), keyring(), env.app());
    let ctx = AccessContext {
        db: &db,
        http: &env.http,
        rng: &rng,
        sleep: &RecordingSleep::default(),
        keyring: &ring,
        app: &app,
    };
    env.advance(580);

    env.admin(
        "/__admin/faults",
        json!({"kind": "status", "status": 503, "path": "/api/oauth2/token"}),
    );
    let e = block_on(fresh_access(&ctx, &id, "req", env.clock_now())).unwrap_err();
    assert!(
        matches!(
            e,
            AccessError::Refresh {
                reconnect_needed: false,
                ..
            }
        ),
        "{e:?}"
    );
    let row = block_on(connections::find_by_id(&db, &id))
        .unwrap()
        .unwrap();
    assert_eq!(row.state.status, ConnectionStatus::RetryPending);
    assert_eq!(row.state.retry_count, 1);
    // Stored with second precision.
    assert_eq!(
        row.state.next_retry_at.map(|t| t.timestamp()),
        Some((env.clock_now() + chrono::Duration::minutes(5)).timestamp())
    );
    assert!(
        row.lease_owner.is_none(),
        "the lease is released on failure"
    );

    // The refresh token survived; the next attempt succeeds and resets.
    let ok = block_on(fresh_access(&ctx, &id, "req", env.clock_now())).unwrap();
    assert!(ok.refreshed);
    let row = block_on(connections::find_by_id(&db, &id))
        .unwrap()
        .unwrap();
    assert_eq!(
        (row.state.status, row.state.retry_count),
        (ConnectionStatus::Active, 0)
    );

    // Revoked consent is permanent: refresh_failed at once, then no more
    // calls to Exact until the user reconnects.
    env.admin("/__admin/revoke", json!({"username": "demo"}));
    env.advance(580);
    let e = block_on(fresh_access(&ctx, &id, "req", env.clock_now())).unwrap_err();
    assert!(
        matches!(
            e,
            AccessError::Refresh {
                reconnect_needed: true,
                ..
            }
        ),
        "{e:?}"
    );
    let before = env.token_requests("refresh_token");
    assert_eq!(
        block_on(fresh_access(&ctx, &id, "req", env.clock_now())).unwrap_err(),
        AccessError::ReconnectNeeded
    );
    assert_eq!(env.token_requests("refresh_token"), before);
}

#[test]
fn a_database_fault_after_exact_rotated_does_not_lose_the_refresh_token() {
    let env = default_env();
    let db = SqliteDb::migrated().unwrap();
    let id = connected(&env, &db);
    let (rng, ring, app) = (SeededRandomness::new(4), keyring(), env.app());
    env.advance(580);
    let flaky = FlakyStore {
        inner: &db,
        failures_left: Cell::new(2),
    };
    let ctx = AccessContext {
        db: &flaky,
        http: &env.http,
        rng: &rng,
        sleep: &RecordingSleep::default(),
        keyring: &ring,
        app: &app,
    };
    let got = block_on(fresh_access(&ctx, &id, "req", env.clock_now())).unwrap();
    assert!(got.refreshed);
    // What was stored is the rotated refresh token: the next refresh works.
    env.advance(580);
    let plain = AccessContext {
        db: &db,
        http: &env.http,
        rng: &rng,
        sleep: &RecordingSleep::default(),
        keyring: &ring,
        app: &app,
    };
    assert!(
        block_on(fresh_access(&plain, &id, "req", env.clock_now()))
            .unwrap()
            .refreshed
    );

    // If the write keeps failing, the connection says so instead of
    // pretending to be healthy.
    env.advance(580);
    let broken = FlakyStore {
        inner: &db,
        failures_left: Cell::new(100),
    };
    let ctx = AccessContext {
        db: &broken,
        http: &env.http,
        rng: &rng,
        sleep: &RecordingSleep::default(),
        keyring: &ring,
        app: &app,
    };
    assert_eq!(
        block_on(fresh_access(&ctx, &id, "req", env.clock_now())).unwrap_err(),
        AccessError::TokensLost
    );
    let row = block_on(connections::find_by_id(&db, &id))
        .unwrap()
        .unwrap();
    assert_eq!(row.state.status, ConnectionStatus::RefreshFailed);
    assert!(
        row.state
            .last_error
            .unwrap()
            .contains("could not be stored")
    );
}

#[test]
fn onboarding_creates_the_user_connection_and_administrations_and_a_reconnect_keeps_choices() {
    use boekhouding_core::onboarding;
    use boekhouding_core::plan::Plan;
    use boekhouding_core::storage::administrations;
    let env = default_env();
    let db = SqliteDb::migrated().unwrap();
    let (rng, ring, app) = (SeededRandomness::new(5), keyring(), env.app());
    let code = env.login("demo", "demo");
    let done = block_on(onboarding::complete(
        &db,
        &env.http,
        &rng,
        &env.clock,
        &ring,
        &app,
        Region::Nl,
        &code,
    ))
    .unwrap();
    let demo = env.sandbox.dataset().login("demo").unwrap().clone();
    assert_eq!(done.user.email, demo.email);
    assert_eq!(done.user.plan, Plan::Free);
    let mut codes: Vec<i64> = done
        .administrations
        .iter()
        .map(|a| a.division_code)
        .collect();
    codes.sort_unstable();
    assert_eq!(codes, demo.divisions, "every division the consent allows");
    let active: Vec<i64> = done
        .administrations
        .iter()
        .filter(|a| a.is_active)
        .map(|a| a.division_code)
        .collect();
    assert_eq!(active.len(), 2, "the free plan switches on two");
    let default: Vec<i64> = done
        .administrations
        .iter()
        .filter(|a| a.is_default)
        .map(|a| a.division_code)
        .collect();
    assert_eq!(default, vec![demo.current_division]);

    // The user switches one off; a reconnect keeps that and revives tokens.
    let off = done
        .administrations
        .iter()
        .find(|a| a.is_active && !a.is_default)
        .unwrap();
    block_on(administrations::set_active(
        &db,
        &done.user.id,
        &off.id,
        false,
        Plan::Free,
        env.clock_now(),
    ))
    .unwrap();
    let again = block_on(onboarding::complete(
        &db,
        &env.http,
        &rng,
        &env.clock,
        &ring,
        &app,
        Region::Nl,
        &env.login("demo", "demo"),
    ))
    .unwrap();
    assert_eq!(again.connection.id, done.connection.id);
    assert_eq!(again.user.id, done.user.id);
    assert!(
        !again
            .administrations
            .iter()
            .find(|a| a.id == off.id)
            .unwrap()
            .is_active
    );
    // A code can be used once only.
    assert!(
        block_on(onboarding::complete(
            &db,
            &env.http,
            &rng,
            &env.clock,
            &ring,
            &app,
            Region::Nl,
            &code
        ))
        .is_err()
    );
}
