//! The caller of a customer request loaded in one batch
//! (`core::caller::load_caller`) against SQLite with the real migrations:
//! one round trip, the meter exact at the plan's limit (also from many
//! connections at once), a revoked key refused on the very next request
//! and never metered.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Barrier};

use boekhouding_core::caller::{Credential, LoadError, LoadRequest, load_caller};
use boekhouding_core::counting::Counting;
use boekhouding_core::crypto::{Secret, TokenKeyring};
use boekhouding_core::plan::Plan;
use boekhouding_core::region::Region;
use boekhouding_core::storage::administrations::{self, DivisionInfo};
use boekhouding_core::storage::api_keys;
use boekhouding_core::storage::connections::{self, ExactIdentity, ExactTokens, NewConnection};
use boekhouding_core::storage::usage::{self, Metered, UsageMonth};
use boekhouding_core::storage::users;
use boekhouding_core::testing::SeededRandomness;
use boekhouding_sqlite::SqliteDb;
use chrono::{DateTime, Duration, TimeZone, Utc};
use futures::executor::block_on;

const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).unwrap()
}

struct Account {
    user_id: String,
    key: String,
    key_id: String,
}

/// A user on `plan` with one Exact connection, two administrations and
/// an API key.
fn account(db: &SqliteDb, plan: Plan) -> Account {
    account_of(db, plan, "jan@x.nl")
}

fn account_of(db: &SqliteDb, plan: Plan, email: &str) -> Account {
    let rng = SeededRandomness::new(email.len() as u64);
    let user = block_on(users::upsert_by_email(db, &rng, email, None, now())).unwrap();
    block_on(users::set_plan(db, &user.id, plan, now())).unwrap();
    let keyring = TokenKeyring::from_config(KEY).unwrap();
    let tokens = ExactTokens {
        access_token: Secret::new("access-1"),
        refresh_token: Secret::new("refresh-1"),
        access_expires_at: now() + Duration::minutes(10),
        refresh_expires_at: now() + Duration::days(30),
    };
    let conn = block_on(connections::connect(
        db,
        &rng,
        &keyring,
        &NewConnection {
            user_id: &user.id,
            region: Region::Nl,
            identity: &ExactIdentity::default(),
            tokens: &tokens,
        },
        now(),
    ))
    .unwrap();
    block_on(administrations::sync_for_connection(
        db,
        &rng,
        &conn.id,
        Plan::Enterprise,
        &[
            DivisionInfo {
                code: 11,
                name: "Eerste BV".into(),
            },
            DivisionInfo {
                code: 22,
                name: "Tweede BV".into(),
            },
        ],
        Some(11),
        now(),
    ))
    .unwrap();
    let created = block_on(api_keys::create(db, &rng, &user.id, plan, "laptop", now())).unwrap();
    Account {
        user_id: user.id,
        key: created.issued.secret.expose().to_owned(),
        key_id: created.record.id,
    }
}

fn request(key: &str, meter: bool) -> LoadRequest<'_> {
    LoadRequest {
        credential: key,
        resource: None,
        now: now(),
        meter,
    }
}

fn set_counter(db: &SqliteDb, user_id: &str, calls: i64) {
    db.raw()
        .execute(
            "INSERT INTO usage_counters (user_id, month, tool_calls) VALUES (?1, ?2, ?3)
             ON CONFLICT (user_id, month) DO UPDATE SET tool_calls = ?3",
            rusqlite::params![user_id, UsageMonth::of(now()).key(), calls],
        )
        .unwrap();
}

fn counter(db: &SqliteDb, user_id: &str) -> u64 {
    block_on(usage::monthly_calls(db, user_id, UsageMonth::of(now()))).unwrap()
}

#[test]
fn an_api_key_caller_is_loaded_and_metered_in_one_round_trip() {
    let db = SqliteDb::migrated().unwrap();
    let a = account(&db, Plan::Pro);
    let counted = Counting::new(&db);
    let loaded = block_on(load_caller(&counted, request(&a.key, true))).unwrap();
    assert_eq!(counted.calls(), 1, "one round trip");
    assert_eq!(
        counted.statements(),
        5,
        "meter, caller, count, connections, administrations"
    );
    assert_eq!(loaded.user_id, a.user_id);
    assert_eq!(loaded.plan, Plan::Pro);
    assert!(matches!(&loaded.credential, Credential::ApiKey { key_id, .. } if *key_id == a.key_id));
    assert_eq!(loaded.connections.len(), 1);
    assert!(
        !loaded.connections[0].access_token_sealed.is_empty(),
        "sealed tokens come along"
    );
    let codes: Vec<i64> = loaded
        .administrations
        .iter()
        .map(|x| x.division_code)
        .collect();
    assert_eq!(codes, vec![11, 22], "the default first");
    assert_eq!(loaded.used, 1);
    assert_eq!(loaded.take_meter(), Some(Metered::Allowed { used: 1 }));
    assert_eq!(loaded.take_meter(), None, "a meter is used once");
    // Without a tool call nothing is counted, and the count is read.
    let listed = block_on(load_caller(&counted, request(&a.key, false))).unwrap();
    assert_eq!((listed.used, listed.take_meter()), (1, None));
    assert_eq!(counter(&db, &a.user_id), 1);
    assert_eq!(counted.calls(), 2);
}

#[test]
fn the_meter_in_the_batch_stops_exactly_at_the_plan_limit_without_failing_the_batch() {
    let db = SqliteDb::migrated().unwrap();
    let a = account(&db, Plan::Free);
    set_counter(&db, &a.user_id, 198);
    let mut seen = Vec::new();
    for _ in 0..4 {
        let loaded = block_on(load_caller(&db, request(&a.key, true))).unwrap();
        // Refused or not, the caller is loaded (the refusal is an answer).
        assert_eq!(loaded.connections.len(), 1);
        seen.push(loaded.take_meter().unwrap());
    }
    assert_eq!(
        seen,
        vec![
            Metered::Allowed { used: 199 },
            Metered::Allowed { used: 200 },
            Metered::LimitReached { used: 200 },
            Metered::LimitReached { used: 200 },
        ]
    );
    assert_eq!(
        counter(&db, &a.user_id),
        200,
        "a refused call is not counted"
    );
}

#[test]
fn concurrent_calls_from_many_connections_never_pass_the_limit() {
    let path = std::env::temp_dir().join(format!(
        "pmjb-caller-meter-{}-{}.sqlite",
        std::process::id(),
        now().timestamp()
    ));
    let _ = std::fs::remove_file(&path);
    let db = SqliteDb::migrated_file(&path).unwrap();
    let a = account(&db, Plan::Free);
    set_counter(&db, &a.user_id, 190);
    let threads = 24;
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (path, key, barrier) = (path.clone(), a.key.clone(), barrier.clone());
            std::thread::spawn(move || {
                let db = SqliteDb::open(&path).unwrap();
                barrier.wait();
                let loaded = block_on(load_caller(&db, request(&key, true))).unwrap();
                loaded.take_meter().unwrap()
            })
        })
        .collect();
    let results: Vec<Metered> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let allowed = results
        .iter()
        .filter(|m| matches!(m, Metered::Allowed { .. }))
        .count();
    assert_eq!(allowed, 10, "exactly the room left: {results:?}");
    assert_eq!(counter(&db, &a.user_id), 200);
    drop(db);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn a_revoked_key_is_refused_on_the_next_request_and_never_metered() {
    let db = SqliteDb::migrated().unwrap();
    let a = account(&db, Plan::Pro);
    assert!(block_on(load_caller(&db, request(&a.key, true))).is_ok());
    assert!(block_on(api_keys::revoke(&db, &a.user_id, &a.key_id, now())).unwrap());
    // Nothing is cached: the very next request is refused.
    assert_eq!(
        block_on(load_caller(&db, request(&a.key, true))).unwrap_err(),
        LoadError::Invalid
    );
    assert_eq!(
        counter(&db, &a.user_id),
        1,
        "the refused request counted nothing"
    );
    // An unknown or malformed key costs no round trip at all.
    let counted = Counting::new(&db);
    assert_eq!(
        block_on(load_caller(&counted, request("not-a-key", true))).unwrap_err(),
        LoadError::Invalid
    );
    assert_eq!(counted.calls(), 0);
    // An inactive user's key is refused too.
    let b = account_of(&db, Plan::Pro, "piet@x.nl");
    db.raw()
        .execute(
            "UPDATE users SET status = 'deleted' WHERE id = ?1",
            [&b.user_id],
        )
        .unwrap();
    assert_eq!(
        block_on(load_caller(&db, request(&b.key, true))).unwrap_err(),
        LoadError::Invalid
    );
}

#[test]
fn every_plan_has_its_cap_in_the_meter() {
    // The meter's SQL has one `WHEN ? THEN ?` per plan: a new plan must
    // extend it (this fails first).
    assert_eq!(Plan::ALL.len(), 4);
    for plan in Plan::ALL {
        let db = SqliteDb::migrated().unwrap();
        let a = account(&db, plan);
        let cap = plan.limits().monthly_tool_calls.cap_for_sql();
        set_counter(&db, &a.user_id, (cap - 1).min(1 << 40));
        let loaded = block_on(load_caller(&db, request(&a.key, true))).unwrap();
        assert!(
            matches!(loaded.take_meter(), Some(Metered::Allowed { .. })),
            "{plan}: the last call fits"
        );
        if cap < 1 << 40 {
            let over = block_on(load_caller(&db, request(&a.key, true))).unwrap();
            assert!(
                matches!(over.take_meter(), Some(Metered::LimitReached { .. })),
                "{plan}: then the limit"
            );
        }
    }
}

/// After a downgrade the newest keys beyond the smaller plan's cap stop
/// working (refused in the load, never metered) and the refusal can say
/// why; the oldest keep working, and an upgrade brings the others back.
#[test]
fn keys_beyond_a_smaller_plans_cap_stop_newest_first_and_say_why() {
    let db = SqliteDb::migrated().unwrap();
    let a = account(&db, Plan::Pro);
    let rng = SeededRandomness::new(99);
    let mut keys = vec![a.key.clone()];
    for (i, name) in ["tweede", "derde", "vierde", "vijfde"].iter().enumerate() {
        let later = now() + Duration::minutes(i as i64 + 1);
        let k = block_on(api_keys::create(
            &db,
            &rng,
            &a.user_id,
            Plan::Pro,
            name,
            later,
        ))
        .unwrap();
        keys.push(k.issued.secret.expose().to_owned());
    }
    block_on(users::set_plan(&db, &a.user_id, Plan::Free, now())).unwrap();
    // Free allows three keys: the two newest stop.
    for (i, key) in keys.iter().enumerate() {
        let loaded = block_on(load_caller(&db, request(key, true)));
        let beyond = block_on(api_keys::beyond_plan_cap(&db, key)).unwrap();
        if i < 3 {
            assert!(loaded.is_ok(), "key {i} should still work");
            assert_eq!(beyond, None);
        } else {
            assert!(
                matches!(loaded, Err(LoadError::Invalid)),
                "key {i} should stop"
            );
            assert_eq!(beyond, Some(3), "and say the cap");
        }
    }
    // Only the three that worked were metered.
    let counted: i64 = db
        .raw()
        .query_row(
            "SELECT tool_calls FROM usage_counters WHERE user_id = ?1",
            [&a.user_id],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(counted, 3);
    // A revoked or unknown key is not explained as a plan matter.
    assert_eq!(
        block_on(api_keys::beyond_plan_cap(
            &db,
            &format!("pmjb_{}", "0".repeat(64))
        ))
        .unwrap(),
        None
    );
    // Upgrading brings them back.
    block_on(users::set_plan(&db, &a.user_id, Plan::Pro, now())).unwrap();
    assert!(block_on(load_caller(&db, request(&keys[4], false))).is_ok());
}
