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

/// A transport that runs `before` once, just before the first token
/// request goes out: what another refresher (or a reconnect) does while
/// this one is on its way to Exact.
struct Interleaved<'a> {
    inner: &'a exact_sandbox::transport::BlockingTransport,
    before: std::cell::RefCell<Option<Box<dyn FnOnce() + 'a>>>,
}

impl boekhouding_core::ports::HttpTransport for Interleaved<'_> {
    async fn send(
        &self,
        request: boekhouding_core::ports::HttpRequest,
    ) -> Result<boekhouding_core::ports::HttpResponse, boekhouding_core::ports::TransportError>
    {
        if request.url.ends_with("/api/oauth2/token")
            && let Some(hook) = self.before.borrow_mut().take()
        {
            hook();
        }
        self.inner.send(request).await
    }
    async fn send_binary(
        &self,
        request: boekhouding_core::ports::HttpRequest,
        max_bytes: usize,
    ) -> Result<boekhouding_core::ports::BinaryResponse, boekhouding_core::ports::TransportError>
    {
        self.inner.send_binary(request, max_bytes).await
    }
}

#[test]
fn rotated_tokens_are_stored_even_when_the_lease_was_lost_meanwhile() {
    let env = default_env();
    let db = SqliteDb::migrated().unwrap();
    let id = connected(&env, &db);
    let (rng, ring, app) = (SeededRandomness::new(2), keyring(), env.app());
    env.advance(580);
    // While this refresher waits for Exact, its lease lapses and another
    // caller takes it.
    let http = Interleaved {
        inner: &env.http,
        before: std::cell::RefCell::new(Some(Box::new(|| {
            db.raw()
                .execute_batch("UPDATE connections SET lease_owner = 'other'")
                .unwrap();
        }))),
    };
    let ctx = AccessContext {
        db: &db,
        http: &http,
        rng: &rng,
        sleep: &RecordingSleep::default(),
        keyring: &ring,
        app: &app,
    };
    let fresh = block_on(fresh_access(&ctx, &id, "slow", env.clock_now())).unwrap();
    assert!(fresh.refreshed);
    let row = block_on(connections::find_by_id(&db, &id))
        .unwrap()
        .unwrap();
    assert_eq!(row.state.status, ConnectionStatus::Active);
    assert_eq!(row.token_generation, 2, "the rotated tokens were stored");
    assert_eq!(
        row.lease_owner.as_deref(),
        Some("other"),
        "not ours to free"
    );
    let (access, _) = connections::open_tokens(&ring, &row).unwrap();
    assert_eq!(access, fresh.access_token);
}

#[test]
fn a_reuse_refusal_after_someone_else_stored_new_tokens_is_no_failure() {
    let env = default_env();
    let db = SqliteDb::migrated().unwrap();
    let id = connected(&env, &db);
    let (rng, ring, app) = (SeededRandomness::new(2), keyring(), env.app());
    env.advance(580);
    let before = block_on(connections::find_by_id(&db, &id))
        .unwrap()
        .unwrap();
    // Another refresher (whose lease we had taken over after it lapsed)
    // finishes first: it refreshes with the same refresh token and stores
    // generation 2, so our request meets "Old refresh token used.".
    let http = Interleaved {
        inner: &env.http,
        before: std::cell::RefCell::new(Some(Box::new(|| {
            let (_, refresh) = connections::open_tokens(&ring, &before).unwrap();
            let now = env.clock_now();
            // Inside the transport's own poll: the blocking sandbox
            // transport and SQLite finish on the first poll.
            use futures::FutureExt;
            let tokens = boekhouding_core::exact::oauth::refresh(
                &env.http,
                &app,
                &refresh,
                before.access_expires_at,
                now,
            )
            .now_or_never()
            .unwrap()
            .unwrap()
            .into_exact_tokens();
            let slot = connections::TokenSlot::of(&before, "other");
            assert!(
                connections::store_refreshed(&db, &rng, &ring, &slot, &tokens, now)
                    .now_or_never()
                    .unwrap()
                    .unwrap()
            );
        }))),
    };
    let ctx = AccessContext {
        db: &db,
        http: &http,
        rng: &rng,
        sleep: &RecordingSleep::default(),
        keyring: &ring,
        app: &app,
    };
    let fresh = block_on(fresh_access(&ctx, &id, "slow", env.clock_now())).unwrap();
    let row = block_on(connections::find_by_id(&db, &id))
        .unwrap()
        .unwrap();
    assert_eq!(row.state.status, ConnectionStatus::Active, "{row:?}");
    assert_eq!(row.state.retry_count, 0);
    assert_eq!(row.token_generation, 2);
    let (access, _) = connections::open_tokens(&ring, &row).unwrap();
    assert_eq!(fresh.access_token, access, "the other refresher's token");
    assert!(row.lease_owner.is_none());
}

#[test]
fn a_real_reuse_refusal_is_permanent() {
    let env = default_env();
    let db = SqliteDb::migrated().unwrap();
    let id = connected(&env, &db);
    let (rng, ring, app) = (SeededRandomness::new(2), keyring(), env.app());
    env.advance(580);
    // Someone refreshed with our token behind our back and kept the
    // result: the stored generation is still ours, so the grant is dead.
    let before = block_on(connections::find_by_id(&db, &id))
        .unwrap()
        .unwrap();
    let (_, refresh) = connections::open_tokens(&ring, &before).unwrap();
    block_on(boekhouding_core::exact::oauth::refresh(
        &env.http,
        &app,
        &refresh,
        before.access_expires_at,
        env.clock_now(),
    ))
    .unwrap();
    let ctx = AccessContext {
        db: &db,
        http: &env.http,
        rng: &rng,
        sleep: &RecordingSleep::default(),
        keyring: &ring,
        app: &app,
    };
    let err = block_on(fresh_access(&ctx, &id, "req", env.clock_now())).unwrap_err();
    assert!(
        matches!(
            err,
            AccessError::Refresh {
                reconnect_needed: true,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn a_refused_client_leaves_the_connection_as_it_was() {
    let env = default_env();
    let db = SqliteDb::migrated().unwrap();
    let id = connected(&env, &db);
    let (rng, ring) = (SeededRandomness::new(2), keyring());
    let mut app = env.app();
    app.client_secret = boekhouding_core::crypto::Secret::new("wrong");
    env.advance(580);
    let ctx = AccessContext {
        db: &db,
        http: &env.http,
        rng: &rng,
        sleep: &RecordingSleep::default(),
        keyring: &ring,
        app: &app,
    };
    let err = block_on(fresh_access(&ctx, &id, "req", env.clock_now())).unwrap_err();
    assert!(
        matches!(
            &err,
            AccessError::Refresh {
                error: boekhouding_core::exact::ExactError::ClientRejected,
                reconnect_needed: false,
                ..
            }
        ),
        "{err:?}"
    );
    let row = block_on(connections::find_by_id(&db, &id))
        .unwrap()
        .unwrap();
    assert_eq!(row.state.status, ConnectionStatus::Active);
    assert_eq!((row.state.retry_count, row.token_generation), (0, 1));
    assert!(row.lease_owner.is_none());
}

#[test]
fn the_token_exchange_deadline_and_the_store_retries_fit_well_inside_the_lease() {
    use boekhouding_core::access::{LEASE_TTL, STORE_BACKOFF_MS, TOKEN_EXCHANGE_DEADLINE_MS};
    let worst_ms = TOKEN_EXCHANGE_DEADLINE_MS + STORE_BACKOFF_MS.iter().sum::<u64>();
    let lease_ms = u64::try_from(LEASE_TTL.num_milliseconds()).unwrap();
    assert!(
        worst_ms * 3 <= lease_ms * 2,
        "{worst_ms} ms of {lease_ms} ms: keep a third of the lease for the database"
    );
}

#[test]
fn a_token_exchange_past_its_deadline_is_a_transient_timeout() {
    // A sleep that ends at once: the transport below never answers.
    struct Never;
    impl boekhouding_core::ports::HttpTransport for Never {
        async fn send(
            &self,
            _: boekhouding_core::ports::HttpRequest,
        ) -> Result<boekhouding_core::ports::HttpResponse, boekhouding_core::ports::TransportError>
        {
            std::future::pending().await
        }
        async fn send_binary(
            &self,
            _: boekhouding_core::ports::HttpRequest,
            _: usize,
        ) -> Result<boekhouding_core::ports::BinaryResponse, boekhouding_core::ports::TransportError>
        {
            std::future::pending().await
        }
    }
    let env = default_env();
    let db = SqliteDb::migrated().unwrap();
    let id = connected(&env, &db);
    let (rng, ring, app) = (SeededRandomness::new(2), keyring(), env.app());
    env.advance(580);
    let sleep = RecordingSleep::default();
    let ctx = AccessContext {
        db: &db,
        http: &Never,
        rng: &rng,
        sleep: &sleep,
        keyring: &ring,
        app: &app,
    };
    let err = block_on(fresh_access(&ctx, &id, "req", env.clock_now())).unwrap_err();
    assert!(
        matches!(
            &err,
            AccessError::Refresh {
                reconnect_needed: false,
                retry_at: Some(_),
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        sleep.waits(),
        vec![boekhouding_core::access::TOKEN_EXCHANGE_DEADLINE_MS]
    );
    let row = block_on(connections::find_by_id(&db, &id))
        .unwrap()
        .unwrap();
    assert_eq!(row.state.status, ConnectionStatus::RetryPending);
    assert_eq!(row.state.last_error.as_deref(), Some("timeout"));
}

/// Answers like the sandbox, but yields once after Exact has answered a
/// token request, as a real network read does: a request cancelled at
/// that moment has had its tokens rotated at Exact and not yet stored.
struct YieldAfterToken<'a> {
    inner: &'a exact_sandbox::transport::BlockingTransport,
}

impl boekhouding_core::ports::HttpTransport for YieldAfterToken<'_> {
    async fn send(
        &self,
        request: boekhouding_core::ports::HttpRequest,
    ) -> Result<boekhouding_core::ports::HttpResponse, boekhouding_core::ports::TransportError>
    {
        let token = request.url.ends_with("/api/oauth2/token");
        let answer = self.inner.send(request).await;
        if token {
            let mut yielded = false;
            std::future::poll_fn(|cx| {
                if yielded {
                    std::task::Poll::Ready(())
                } else {
                    yielded = true;
                    cx.waker().wake_by_ref();
                    std::task::Poll::Pending
                }
            })
            .await;
        }
        answer
    }
    async fn send_binary(
        &self,
        request: boekhouding_core::ports::HttpRequest,
        max_bytes: usize,
    ) -> Result<boekhouding_core::ports::BinaryResponse, boekhouding_core::ports::TransportError>
    {
        self.inner.send_binary(request, max_bytes).await
    }
}

/// A timer that never fires: the token exchange's deadline never passes.
struct NoDeadline;

impl boekhouding_core::ports::Sleep for NoDeadline {
    async fn sleep_ms(&self, _: u64) {
        std::future::pending::<()>().await;
    }
}

#[test]
fn a_refresh_job_survives_its_request_being_cancelled_and_an_inline_one_does_not() {
    use boekhouding_core::access::{RefreshJob, RefreshKind};
    use futures::FutureExt;
    use futures::task::LocalSpawnExt;
    use std::rc::Rc;

    let env = default_env();
    let db = Rc::new(SqliteDb::migrated().unwrap());
    let id = connected(&env, db.as_ref());
    env.advance(580);
    let job = RefreshJob {
        keyring: keyring(),
        app: env.app(),
        connection_id: id.clone(),
        owner: "req-1".into(),
        now: env.clock_now(),
        kind: RefreshKind::IfDue,
    };
    let generation = |db: &SqliteDb| {
        block_on(connections::find_by_id(db, &id))
            .unwrap()
            .unwrap()
            .token_generation
    };

    // Inline, as without `wait_until`: the request is cancelled (its
    // future dropped) right after Exact rotated. The new tokens are gone.
    {
        let http = YieldAfterToken { inner: &env.http };
        let rng = SeededRandomness::new(3);
        let request = job.run(db.as_ref(), &http, &rng, &NoDeadline);
        assert!(request.now_or_never().is_none(), "cancelled mid-way");
    }
    assert_eq!(generation(&db), 1, "nothing was stored");
    assert_eq!(env.token_requests("refresh_token"), 1, "yet Exact rotated");

    // Reconnect to get a live grant again, then the detached way: the job
    // runs beside the request (the platform's `wait_until`), the request
    // only awaits its result and is cancelled at the same moment.
    let id2 = connected(&env, db.as_ref());
    assert_eq!(id2, id);
    env.advance(580);
    let mut pool = futures::executor::LocalPool::new();
    let (tx, rx) = futures::channel::oneshot::channel();
    let detached = {
        let (db, job, http) = (Rc::clone(&db), job.clone(), env.http.clone());
        let now = env.clock_now();
        async move {
            let job = RefreshJob { now, ..job };
            let transport = YieldAfterToken { inner: &http };
            let rng = SeededRandomness::new(4);
            let _ = tx.send(job.run(db.as_ref(), &transport, &rng, &NoDeadline).await);
        }
    };
    pool.spawner().spawn_local(detached).unwrap();
    pool.run_until_stalled();
    drop(rx); // the client went away before the answer
    pool.run();
    assert_eq!(generation(&db), 3, "the rotated tokens were stored");
    let row = block_on(connections::find_by_id(db.as_ref(), &id))
        .unwrap()
        .unwrap();
    assert_eq!(row.state.status, ConnectionStatus::Active);
    assert!(row.lease_owner.is_none());
}

/// An account may hold a second Exact login at the same site (the owner's
/// and the bookkeeping office's, say): connecting it while signed in adds
/// a second connection, a company both logins see is switched on once
/// only, the account keeps one default, and signing in with the second
/// login later opens the same account. A login another account holds is
/// refused.
#[test]
fn a_second_exact_login_at_the_same_site_is_a_second_connection_of_the_same_account() {
    use boekhouding_core::onboarding::{self, ConnectError};
    use boekhouding_core::plan::Plan;
    use boekhouding_core::storage::{administrations, users};
    let env = default_env();
    let db = SqliteDb::migrated().unwrap();
    let (rng, ring, app) = (SeededRandomness::new(7), keyring(), env.app());
    let complete = |login: &str, owner: Option<&str>| {
        block_on(onboarding::complete_for(
            &db,
            &env.http,
            &rng,
            &env.clock,
            &ring,
            &app,
            Region::Nl,
            &env.login(login, login),
            owner,
        ))
    };
    let first = complete("demo", None).unwrap();
    let user = first.user.id.clone();
    // Pro: room for ten, so only the overlap decides what starts active.
    block_on(users::set_plan(&db, &user, Plan::Pro, env.clock_now())).unwrap();

    let second = complete("nieuw", Some(&user)).unwrap();
    assert_eq!(second.user.id, user, "the signed-in account");
    assert_ne!(second.connection.id, first.connection.id);
    let mut connections = block_on(connections::list_for_user(&db, &user)).unwrap();
    connections.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(connections.len(), 2, "two logins, two connections");
    assert!(connections.iter().all(|c| c.region == Region::Nl));

    // `demo` sees 1000001–3 (two active on the free plan at sign-up),
    // `nieuw` 1000002–5. What `demo` has active is not switched on twice.
    let all = block_on(administrations::all_for_user(&db, &user)).unwrap();
    let active: Vec<(i64, &str)> = {
        let mut v: Vec<(i64, &str)> = all
            .iter()
            .filter(|a| a.is_active)
            .map(|a| (a.division_code, a.connection_id.as_str()))
            .collect();
        v.sort_unstable();
        v
    };
    let codes: Vec<i64> = active.iter().map(|(c, _)| *c).collect();
    let mut unique = codes.clone();
    unique.dedup();
    assert_eq!(codes, unique, "no company active twice: {active:?}");
    for code in [1_000_004, 1_000_005] {
        assert!(
            active.contains(&(code, second.connection.id.as_str())),
            "{code} is only nieuw's, so it starts active"
        );
    }
    let defaults: Vec<&administrations::Administration> =
        all.iter().filter(|a| a.is_default).collect();
    assert_eq!(defaults.len(), 1, "one default for the account");
    assert_eq!(defaults[0].connection_id, first.connection.id);

    // Switching on nieuw's copy of a company demo has active is refused
    // with the reason; after demo's copy is off it may be switched on.
    let twin_code = active
        .iter()
        .find(|(c, conn)| *conn == first.connection.id && nieuw_sees(*c))
        .map(|(c, _)| *c)
        .expect("demo has a company nieuw also sees active");
    let copy = |conn: &str| {
        all.iter()
            .find(|a| a.connection_id == conn && a.division_code == twin_code)
            .unwrap()
            .id
            .clone()
    };
    let now = env.clock_now();
    assert_eq!(
        block_on(administrations::set_active(
            &db,
            &user,
            &copy(&second.connection.id),
            true,
            Plan::Pro,
            now
        ))
        .unwrap(),
        administrations::Toggle::ActiveElsewhere
    );
    block_on(administrations::set_active(
        &db,
        &user,
        &copy(&first.connection.id),
        false,
        Plan::Pro,
        now,
    ))
    .unwrap();
    assert_eq!(
        block_on(administrations::set_active(
            &db,
            &user,
            &copy(&second.connection.id),
            true,
            Plan::Pro,
            now
        ))
        .unwrap(),
        administrations::Toggle::Changed
    );

    // Reconnecting either login revives its own connection only.
    let again = complete("nieuw", None).unwrap();
    assert_eq!(
        again.user.id, user,
        "the login opens the account holding it"
    );
    assert_eq!(again.connection.id, second.connection.id);
    assert_eq!(
        block_on(connections::list_for_user(&db, &user))
            .unwrap()
            .len(),
        2
    );

    // A login held by another account is not taken over.
    let stranger = complete("other", None).unwrap();
    assert_ne!(stranger.user.id, user);
    assert!(matches!(
        complete("other", Some(&user)),
        Err(ConnectError::LoginHeldElsewhere)
    ));
    assert_eq!(
        block_on(connections::list_for_user(&db, &user))
            .unwrap()
            .len(),
        2,
        "nothing stored for the refused login"
    );
    assert_eq!(
        block_on(connections::list_for_user(&db, &stranger.user.id))
            .unwrap()
            .len(),
        1
    );
}

fn nieuw_sees(code: i64) -> bool {
    (1_000_002..=1_000_005).contains(&code)
}
