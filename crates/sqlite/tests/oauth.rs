//! The OAuth authorization server's storage and flows against a real
//! SQLite with the real migrations: registration, metadata documents,
//! consent, code exchange, refresh rotation (also from two connections at
//! once), revocation, the resource server's lookup and housekeeping.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::RefCell;
use std::sync::{Arc, Barrier};

use boekhouding_core::authorization::authorize::{self, AuthorizeParams};
use boekhouding_core::authorization::clients::{
    self, ApplicationType, Client, DocumentError, DocumentPolicy, ResolveError,
};
use boekhouding_core::authorization::metadata::{Challenge, Issuer, McpResource};
use boekhouding_core::authorization::tokens::{self, CodeExchange, TokenResponse};
use boekhouding_core::authorization::{
    ACCESS_TOKEN_LIFETIME, CODE_LIFETIME, OAuthError, REFRESH_GRACE, SCOPE_BOOKS_READ,
    s256_challenge,
};
use boekhouding_core::cron::{CronConfig, housekeeping_statements};
use boekhouding_core::ports::{
    BinaryResponse, HttpRequest, HttpResponse, HttpTransport, TransportError,
};
use boekhouding_core::storage::{SqlExecutor, oauth_grants, oauth_tokens, users};
use boekhouding_core::testing::{RecordingSleep, SeededRandomness};
use boekhouding_sqlite::SqliteDb;
use chrono::{DateTime, Duration, TimeZone, Utc};
use futures::executor::block_on;
use serde_json::json;

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CALLBACK: &str = "https://claude.ai/api/mcp/auth_callback";

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).unwrap()
}

fn issuer() -> Issuer {
    Issuer::parse("https://portal.example").unwrap()
}

fn resource() -> McpResource {
    McpResource::parse("https://mcp.example/mcp").unwrap()
}

fn count(db: &SqliteDb, sql: &str) -> i64 {
    db.raw().query_row(sql, [], |r| r.get(0)).unwrap()
}

/// A transport that answers every request with one scripted response (or
/// never answers), recording the URLs asked.
struct ScriptedTransport {
    answer: Option<BinaryResponse>,
    asked: RefCell<Vec<(String, usize)>>,
}

impl ScriptedTransport {
    fn json(body: &serde_json::Value, cache_control: Option<&str>) -> Self {
        Self::bytes(body.to_string().into_bytes(), cache_control, false)
    }

    fn bytes(body: Vec<u8>, cache_control: Option<&str>, truncated: bool) -> Self {
        let mut headers = vec![("content-type".to_owned(), "application/json".to_owned())];
        if let Some(c) = cache_control {
            headers.push(("cache-control".to_owned(), c.to_owned()));
        }
        ScriptedTransport {
            answer: Some(BinaryResponse {
                status: 200,
                headers,
                body,
                truncated,
            }),
            asked: RefCell::new(Vec::new()),
        }
    }

    fn silent() -> Self {
        ScriptedTransport {
            answer: None,
            asked: RefCell::new(Vec::new()),
        }
    }
}

impl HttpTransport for ScriptedTransport {
    async fn send(&self, _request: HttpRequest) -> Result<HttpResponse, TransportError> {
        Err(TransportError::Network(
            "text requests are not scripted".into(),
        ))
    }

    async fn send_binary(
        &self,
        request: HttpRequest,
        max_bytes: usize,
    ) -> Result<BinaryResponse, TransportError> {
        self.asked.borrow_mut().push((request.url, max_bytes));
        match &self.answer {
            Some(a) => Ok(a.clone()),
            None => std::future::pending().await,
        }
    }
}

struct Fixture {
    db: SqliteDb,
    rng: SeededRandomness,
    user: String,
    other_user: String,
}

fn fixture_on(db: SqliteDb) -> Fixture {
    let rng = SeededRandomness::new(7);
    let user = block_on(users::upsert_by_email(&db, &rng, "jan@x.nl", None, now()))
        .unwrap()
        .id;
    let other_user = block_on(users::upsert_by_email(&db, &rng, "piet@x.nl", None, now()))
        .unwrap()
        .id;
    Fixture {
        db,
        rng,
        user,
        other_user,
    }
}

fn fixture() -> Fixture {
    fixture_on(SqliteDb::migrated().unwrap())
}

impl Fixture {
    fn register(&self, redirect_uris: &[&str]) -> Client {
        let registration = clients::validate_registration(&json!({
            "client_name": "Claude",
            "redirect_uris": redirect_uris,
        }))
        .unwrap();
        block_on(clients::register(&self.db, &self.rng, registration, now())).unwrap()
    }

    fn resolve(&self, client_id: &str) -> Result<Client, ResolveError> {
        block_on(clients::resolve(
            &self.db,
            &ScriptedTransport::silent(),
            &RecordingSleep::default(),
            client_id,
            DocumentPolicy::default(),
            now(),
        ))
    }

    /// The authorization request of `client`, validated, approved by
    /// `user` for administration "adm-1": the code from the redirect.
    fn authorize(&self, client: &Client, user: &str, at: DateTime<Utc>) -> String {
        let query = form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("response_type", "code"),
                ("client_id", client.client_id.as_str()),
                ("redirect_uri", CALLBACK),
                ("code_challenge", &s256_challenge(VERIFIER)),
                ("code_challenge_method", "S256"),
                ("state", "xyz"),
                ("resource", "https://mcp.example/mcp"),
            ])
            .finish();
        let resolved = self.resolve(&client.client_id).unwrap();
        let request =
            authorize::validate(&AuthorizeParams::from_query(&query), &resolved, &resource())
                .unwrap();
        let admins =
            tokens::choose_administrations(&["adm-1".into()], &["adm-1".into(), "adm-2".into()])
                .unwrap();
        let url = block_on(tokens::approve(
            &self.db,
            &self.rng,
            &request,
            user,
            &admins,
            &issuer(),
            at,
        ))
        .unwrap();
        let parsed = url::Url::parse(&url).unwrap();
        assert!(url.starts_with(CALLBACK), "{url}");
        let params: std::collections::HashMap<String, String> =
            parsed.query_pairs().into_owned().collect();
        assert_eq!(params["state"], "xyz");
        assert_eq!(params["iss"], "https://portal.example");
        params["code"].clone()
    }

    fn redeem(
        &self,
        client: &Client,
        code: &str,
        at: DateTime<Utc>,
    ) -> Result<TokenResponse, OAuthError> {
        block_on(tokens::redeem_code(
            &self.db,
            &self.rng,
            code,
            &CodeExchange {
                client_id: &client.client_id,
                redirect_uri: Some(CALLBACK),
                code_verifier: Some(VERIFIER),
                resource: Some("https://mcp.example/mcp"),
            },
            &resource(),
            at,
        ))
    }

    fn refresh(
        &self,
        client: &Client,
        token: &str,
        at: DateTime<Utc>,
    ) -> Result<TokenResponse, OAuthError> {
        block_on(tokens::refresh(
            &self.db,
            &self.rng,
            token,
            &client.client_id,
            Some("https://mcp.example/mcp/"),
            &resource(),
            at,
        ))
    }

    fn access_ok(&self, token: &TokenResponse, at: DateTime<Utc>) -> bool {
        block_on(tokens::lookup_access(&self.db, token.access_token.expose()))
            .unwrap()
            .is_some_and(|r| r.check(&resource(), SCOPE_BOOKS_READ, at).is_ok())
    }

    fn live_grants(&self) -> i64 {
        count(
            &self.db,
            "SELECT COUNT(*) FROM oauth_grants WHERE revoked_at IS NULL AND activated_at IS NOT NULL",
        )
    }
}

#[test]
fn a_registered_client_goes_from_consent_to_tools_and_back() {
    let f = fixture();
    let client = f.register(&[CALLBACK]);
    assert!(client.client_id.starts_with("pmjb_client_"));
    let code = f.authorize(&client, &f.user, now());
    assert!(code.starts_with("pmjb_c_"));
    // Only hashes are stored.
    assert_eq!(
        count(
            &f.db,
            &format!("SELECT COUNT(*) FROM oauth_auth_codes WHERE code_hash = '{code}'")
        ),
        0
    );
    let pair = f
        .redeem(&client, &code, now() + Duration::seconds(5))
        .unwrap();
    let body = pair.to_json();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], ACCESS_TOKEN_LIFETIME.num_seconds());
    assert_eq!(body["scope"], "books:read");
    assert!(pair.access_token.expose().starts_with("pmjb_at_"));
    assert!(pair.refresh_token.expose().starts_with("pmjb_rt_"));

    // The resource server's view.
    let access = block_on(tokens::lookup_access(&f.db, pair.access_token.expose()))
        .unwrap()
        .unwrap();
    assert_eq!(access.user_id, f.user);
    assert_eq!(access.client_id, client.client_id);
    assert_eq!(access.client_name, "Claude");
    assert_eq!(access.administration_ids, vec!["adm-1".to_string()]);
    assert_eq!(access.resource, "https://mcp.example/mcp");
    assert_eq!(access.check(&resource(), SCOPE_BOOKS_READ, now()), Ok(()));
    assert_eq!(
        access.check(
            &resource(),
            SCOPE_BOOKS_READ,
            now() + Duration::seconds(5) + ACCESS_TOKEN_LIFETIME
        ),
        Err(Challenge::InvalidToken),
        "expired"
    );
    let elsewhere = McpResource::parse("https://elsewhere.example/mcp").unwrap();
    assert_eq!(
        access.check(&elsewhere, SCOPE_BOOKS_READ, now()),
        Err(Challenge::InvalidToken)
    );
    assert!(
        block_on(tokens::lookup_access(&f.db, "pmjb_at_unknown"))
            .unwrap()
            .is_none()
    );
    assert!(
        block_on(tokens::lookup_access(&f.db, pair.refresh_token.expose()))
            .unwrap()
            .is_none()
    );

    // The dashboard lists the app; another user cannot revoke it.
    let apps = block_on(oauth_grants::list_for_user(&f.db, &f.user)).unwrap();
    assert_eq!(apps.len(), 1);
    assert_eq!(apps[0].client_name, "Claude");
    assert_eq!(apps[0].administration_ids, vec!["adm-1".to_string()]);
    assert!(
        block_on(oauth_grants::list_for_user(&f.db, &f.other_user))
            .unwrap()
            .is_empty()
    );
    assert!(
        !block_on(oauth_grants::revoke_for_owner(
            &f.db,
            &apps[0].grant_id,
            &f.other_user,
            now()
        ))
        .unwrap()
    );
    assert!(
        f.access_ok(&pair, now()),
        "another user's revoke did nothing"
    );

    // Refresh rotates: a new pair works, and so does the old access token
    // until it expires.
    let next = f
        .refresh(
            &client,
            pair.refresh_token.expose(),
            now() + Duration::minutes(50),
        )
        .unwrap();
    assert!(f.access_ok(&next, now() + Duration::minutes(50)));

    // The owner revokes: every token of the grant stops working.
    assert!(
        block_on(oauth_grants::revoke_for_owner(
            &f.db,
            &apps[0].grant_id,
            &f.user,
            now()
        ))
        .unwrap()
    );
    assert!(!f.access_ok(&pair, now()));
    assert!(!f.access_ok(&next, now()));
    assert!(
        f.refresh(
            &client,
            next.refresh_token.expose(),
            now() + Duration::minutes(51)
        )
        .is_err()
    );
    assert!(
        block_on(oauth_grants::list_for_user(&f.db, &f.user))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_replayed_code_revokes_the_grant_it_produced() {
    let f = fixture();
    let client = f.register(&[CALLBACK]);
    let code = f.authorize(&client, &f.user, now());
    let pair = f.redeem(&client, &code, now()).unwrap();
    assert!(f.access_ok(&pair, now()));
    assert_eq!(
        f.redeem(&client, &code, now()).unwrap_err().code(),
        "invalid_grant"
    );
    assert!(!f.access_ok(&pair, now()), "the replay revoked the grant");
    assert!(
        f.refresh(&client, pair.refresh_token.expose(), now())
            .is_err()
    );
    assert_eq!(f.live_grants(), 0);
}

#[test]
fn failed_exchanges_issue_nothing() {
    let f = fixture();
    let client = f.register(&[CALLBACK]);
    let other = f.register(&[CALLBACK]);
    // Expired.
    let code = f.authorize(&client, &f.user, now());
    assert_eq!(
        f.redeem(&client, &code, now() + CODE_LIFETIME)
            .unwrap_err()
            .code(),
        "invalid_grant"
    );
    // Another client.
    let code = f.authorize(&client, &f.user, now());
    assert_eq!(
        f.redeem(&other, &code, now()).unwrap_err().code(),
        "invalid_grant"
    );
    // A wrong verifier, and a plain one.
    for verifier in ["a".repeat(43), s256_challenge(VERIFIER)] {
        let code = f.authorize(&client, &f.user, now());
        let e = block_on(tokens::redeem_code(
            &f.db,
            &f.rng,
            &code,
            &CodeExchange {
                client_id: &client.client_id,
                redirect_uri: Some(CALLBACK),
                code_verifier: Some(&verifier),
                resource: None,
            },
            &resource(),
            now(),
        ))
        .unwrap_err();
        assert_eq!(e.code(), "invalid_grant");
    }
    // Another resource.
    let code = f.authorize(&client, &f.user, now());
    let e = block_on(tokens::redeem_code(
        &f.db,
        &f.rng,
        &code,
        &CodeExchange {
            client_id: &client.client_id,
            redirect_uri: Some(CALLBACK),
            code_verifier: Some(VERIFIER),
            resource: Some("https://other.example/mcp"),
        },
        &resource(),
        now(),
    ))
    .unwrap_err();
    assert_eq!(e.code(), "invalid_target");
    assert_eq!(
        f.redeem(&client, "pmjb_c_nonsense", now())
            .unwrap_err()
            .code(),
        "invalid_grant"
    );
    assert_eq!(count(&f.db, "SELECT COUNT(*) FROM oauth_tokens"), 0);
    assert_eq!(f.live_grants(), 0);
}

#[test]
fn a_rotated_refresh_token_may_be_replayed_once_within_the_grace() {
    let f = fixture();
    let client = f.register(&[CALLBACK]);
    let code = f.authorize(&client, &f.user, now());
    let pair = f.redeem(&client, &code, now()).unwrap();
    let t = now() + Duration::minutes(55);
    let first = f.refresh(&client, pair.refresh_token.expose(), t).unwrap();
    let replay = f
        .refresh(&client, pair.refresh_token.expose(), t + REFRESH_GRACE)
        .unwrap();
    assert!(
        f.access_ok(&first, t) && f.access_ok(&replay, t),
        "both pairs valid"
    );
    // Whichever pair the client kept goes on working.
    let later = f
        .refresh(
            &client,
            replay.refresh_token.expose(),
            t + Duration::minutes(50),
        )
        .unwrap();
    assert!(f.access_ok(&later, t + Duration::minutes(50)));
    // A third use of the original token revokes the grant.
    assert_eq!(
        f.refresh(
            &client,
            pair.refresh_token.expose(),
            t + Duration::seconds(1)
        )
        .unwrap_err()
        .code(),
        "invalid_grant"
    );
    assert!(!f.access_ok(&later, t + Duration::minutes(50)));
    assert!(f.refresh(&client, first.refresh_token.expose(), t).is_err());
    assert_eq!(f.live_grants(), 0);
}

#[test]
fn reuse_after_the_grace_revokes_the_grant() {
    let f = fixture();
    let client = f.register(&[CALLBACK]);
    let pair = f
        .redeem(&client, &f.authorize(&client, &f.user, now()), now())
        .unwrap();
    let next = f
        .refresh(&client, pair.refresh_token.expose(), now())
        .unwrap();
    assert!(
        f.refresh(
            &client,
            pair.refresh_token.expose(),
            now() + REFRESH_GRACE + Duration::seconds(1)
        )
        .is_err()
    );
    assert!(!f.access_ok(&next, now()));
    assert_eq!(f.live_grants(), 0);
}

#[test]
fn another_client_cannot_burn_a_refresh_token() {
    let f = fixture();
    let client = f.register(&[CALLBACK]);
    let thief = f.register(&[CALLBACK]);
    let pair = f
        .redeem(&client, &f.authorize(&client, &f.user, now()), now())
        .unwrap();
    for _ in 0..3 {
        assert!(
            f.refresh(&thief, pair.refresh_token.expose(), now())
                .is_err()
        );
    }
    assert!(
        f.refresh(&client, pair.refresh_token.expose(), now())
            .is_ok()
    );
    assert_eq!(f.live_grants(), 1);
}

/// Two refreshes of one token from two database connections at the same
/// moment (claude.ai's two addresses): the conditional statement lets one
/// rotate and the other take the grace pair; a third attempt revokes.
#[test]
fn concurrent_refreshes_rotate_once_and_replay_once() {
    let path = std::env::temp_dir().join(format!(
        "pmjb-oauth-race-{}-{}.sqlite",
        std::process::id(),
        now().timestamp()
    ));
    let _ = std::fs::remove_file(&path);
    let f = fixture_on(SqliteDb::migrated_file(&path).unwrap());
    let client = f.register(&[CALLBACK]);
    let pair = f
        .redeem(&client, &f.authorize(&client, &f.user, now()), now())
        .unwrap();
    let token = pair.refresh_token.expose().to_owned();
    let barrier = Arc::new(Barrier::new(2));
    let handles: Vec<_> = (0..2u64)
        .map(|i| {
            let (path, token, client_id, barrier) = (
                path.clone(),
                token.clone(),
                client.client_id.clone(),
                barrier.clone(),
            );
            std::thread::spawn(move || {
                let db = SqliteDb::open(&path).unwrap();
                let rng = SeededRandomness::new(100 + i);
                barrier.wait();
                block_on(tokens::refresh(
                    &db,
                    &rng,
                    &token,
                    &client_id,
                    None,
                    &resource(),
                    now(),
                ))
                .map(|p| p.access_token.expose().to_owned())
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let uses: i64 = f
        .db
        .raw()
        .query_row(
            "SELECT refresh_uses FROM oauth_tokens ORDER BY created_at, refresh_uses DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(uses, 2, "each attempt was counted exactly once");
    assert_eq!(f.live_grants(), 1);
    assert!(f.refresh(&client, &token, now()).is_err());
    assert_eq!(f.live_grants(), 0, "the third use revoked the grant");
    let _ = std::fs::remove_file(&path);
}

#[test]
fn revocation_takes_either_token_and_always_succeeds() {
    let f = fixture();
    let client = f.register(&[CALLBACK]);
    let other = f.register(&[CALLBACK]);
    let a = f
        .redeem(&client, &f.authorize(&client, &f.user, now()), now())
        .unwrap();
    let b = f
        .redeem(&client, &f.authorize(&client, &f.user, now()), now())
        .unwrap();
    // Unknown, malformed, or another client's: success, no effect.
    for token in ["pmjb_at_nothing", "garbage", ""] {
        block_on(tokens::revoke(&f.db, token, Some(&client.client_id), now())).unwrap();
    }
    block_on(tokens::revoke(
        &f.db,
        a.access_token.expose(),
        Some(&other.client_id),
        now(),
    ))
    .unwrap();
    assert!(f.access_ok(&a, now()));
    // By access token, then by refresh token: each revokes its own grant.
    block_on(tokens::revoke(
        &f.db,
        a.access_token.expose(),
        Some(&client.client_id),
        now(),
    ))
    .unwrap();
    assert!(!f.access_ok(&a, now()));
    assert!(f.access_ok(&b, now()));
    block_on(tokens::revoke(&f.db, b.refresh_token.expose(), None, now())).unwrap();
    assert!(!f.access_ok(&b, now()));
    assert_eq!(f.live_grants(), 0);
}

fn document(id: &str) -> serde_json::Value {
    json!({"client_id": id, "client_name": "Claude", "redirect_uris": [CALLBACK],
           "token_endpoint_auth_method": "none"})
}

fn resolve_with(
    f: &Fixture,
    http: &ScriptedTransport,
    id: &str,
    at: DateTime<Utc>,
) -> Result<Client, ResolveError> {
    block_on(clients::resolve(
        &f.db,
        http,
        &RecordingSleep::default(),
        id,
        DocumentPolicy::default(),
        at,
    ))
}

#[test]
fn metadata_documents_are_fetched_capped_checked_and_cached() {
    let f = fixture();
    let id = "https://claude.ai/oauth/mcp-oauth-client-metadata";
    let http = ScriptedTransport::json(&document(id), Some("max-age=600"));
    let client = resolve_with(&f, &http, id, now()).unwrap();
    assert_eq!(client.client_name, "Claude");
    assert_eq!(client.application_type, ApplicationType::Web);
    assert_eq!(http.asked.borrow().as_slice(), &[(id.to_owned(), 5 * 1024)]);
    // Cached for its max-age, fetched again after.
    resolve_with(&f, &http, id, now() + Duration::minutes(9)).unwrap();
    assert_eq!(http.asked.borrow().len(), 1);
    resolve_with(&f, &http, id, now() + Duration::minutes(10)).unwrap();
    assert_eq!(http.asked.borrow().len(), 2);
    // no-store: fetched every time.
    let other = "https://vscode.dev/oauth/client-metadata.json";
    let nostore = ScriptedTransport::json(&document(other), Some("no-store"));
    resolve_with(&f, &nostore, other, now()).unwrap();
    resolve_with(&f, &nostore, other, now()).unwrap();
    assert_eq!(nostore.asked.borrow().len(), 2);

    // A document client goes through the whole flow like a registered one.
    let code = f.authorize(&client, &f.user, now() + Duration::minutes(1));
    assert!(
        f.redeem(&client, &code, now() + Duration::minutes(1))
            .is_ok()
    );
}

#[test]
fn bad_metadata_documents_are_refused_and_nothing_is_stored() {
    let f = fixture();
    let id = "https://app.example/client.json";
    let cases: Vec<(ScriptedTransport, &str, DocumentError)> = vec![
        (
            ScriptedTransport::json(&document("https://app.example/other.json"), None),
            id,
            DocumentError::ClientIdMismatch,
        ),
        (
            ScriptedTransport::bytes(vec![b'{'; 5 * 1024], None, true),
            id,
            DocumentError::TooLarge,
        ),
        (ScriptedTransport::silent(), id, DocumentError::Timeout),
        (
            ScriptedTransport::json(&document("https://10.0.0.8/c.json"), None),
            "https://10.0.0.8/c.json",
            DocumentError::ForbiddenUrl,
        ),
        (
            ScriptedTransport::json(&document("https://localhost/c.json"), None),
            "https://localhost/c.json",
            DocumentError::ForbiddenUrl,
        ),
    ];
    for (http, client_id, expected) in cases {
        let got = resolve_with(&f, &http, client_id, now()).unwrap_err();
        assert_eq!(got, ResolveError::Document(expected.clone()), "{client_id}");
        assert_eq!(got.to_oauth().code(), "invalid_client");
        if expected == DocumentError::ForbiddenUrl {
            assert!(
                http.asked.borrow().is_empty(),
                "a private host is never fetched"
            );
        }
    }
    assert_eq!(count(&f.db, "SELECT COUNT(*) FROM oauth_clients"), 0);
    // An unknown registered id.
    assert_eq!(f.resolve("pmjb_client_nobody"), Err(ResolveError::Unknown));
}

#[test]
fn housekeeping_collects_unused_clients_idle_and_revoked_grants_and_old_tokens() {
    let f = fixture();
    let abandoned = f.register(&[CALLBACK]);
    let used = f.register(&[CALLBACK]);
    let pair = f
        .redeem(&used, &f.authorize(&used, &f.user, now()), now())
        .unwrap();
    let revoked = f
        .redeem(&used, &f.authorize(&used, &f.user, now()), now())
        .unwrap();
    block_on(tokens::revoke(
        &f.db,
        revoked.access_token.expose(),
        None,
        now(),
    ))
    .unwrap();
    let _ = pair;
    let run = |at: DateTime<Utc>| {
        block_on(f.db.batch(housekeeping_statements(at, &CronConfig::default()))).unwrap();
    };
    run(now() + Duration::days(8));
    assert_eq!(
        count(
            &f.db,
            &format!(
                "SELECT COUNT(*) FROM oauth_clients WHERE client_id = '{}'",
                abandoned.client_id
            )
        ),
        0,
        "a registration without grants is collected"
    );
    assert_eq!(
        count(
            &f.db,
            &format!(
                "SELECT COUNT(*) FROM oauth_clients WHERE client_id = '{}'",
                used.client_id
            )
        ),
        1,
        "a client with a grant stays"
    );
    assert_eq!(
        count(&f.db, "SELECT COUNT(*) FROM oauth_grants"),
        1,
        "the revoked grant is purged"
    );
    assert_eq!(count(&f.db, "SELECT COUNT(*) FROM oauth_tokens"), 1);
    run(now() + Duration::days(31));
    assert_eq!(count(&f.db, "SELECT COUNT(*) FROM oauth_tokens"), 0);
    assert_eq!(
        count(&f.db, "SELECT COUNT(*) FROM oauth_grants"),
        0,
        "an idle grant lapses"
    );
    run(now() + Duration::days(39));
    assert_eq!(count(&f.db, "SELECT COUNT(*) FROM oauth_clients"), 0);
    // The lookup of the lapsed token finds nothing.
    assert!(
        block_on(oauth_tokens::find_access(&f.db, "x"))
            .unwrap()
            .is_none()
    );
}

#[test]
fn deleting_a_user_deletes_their_grants_codes_and_tokens() {
    let f = fixture();
    let client = f.register(&[CALLBACK]);
    let mine = f
        .redeem(&client, &f.authorize(&client, &f.user, now()), now())
        .unwrap();
    let _pending_code = f.authorize(&client, &f.user, now());
    let theirs = f
        .redeem(&client, &f.authorize(&client, &f.other_user, now()), now())
        .unwrap();
    block_on(f.db.batch(boekhouding_core::account::delete_statements(&f.user, now()))).unwrap();
    assert!(!f.access_ok(&mine, now()));
    assert!(f.access_ok(&theirs, now()));
    assert_eq!(
        count(
            &f.db,
            &format!(
                "SELECT COUNT(*) FROM oauth_grants WHERE user_id = '{}'",
                f.user
            )
        ),
        0
    );
    assert_eq!(
        count(&f.db, "SELECT COUNT(*) FROM oauth_auth_codes"),
        1,
        "only the other user's code is left"
    );
    assert_eq!(
        count(
            &f.db,
            "SELECT COUNT(*) FROM oauth_tokens t JOIN oauth_grants g ON g.id = t.grant_id WHERE g.user_id = (SELECT id FROM users WHERE email = 'piet@x.nl')"
        ),
        count(&f.db, "SELECT COUNT(*) FROM oauth_tokens"),
        "every token left is the other user's"
    );
}

#[test]
fn the_endpoints_take_forms_and_json_and_answer_in_rfc_shapes() {
    let f = fixture();
    let registered = block_on(clients::registration_endpoint(
        &f.db,
        &f.rng,
        &json!({"client_name": "Claude", "redirect_uris": [CALLBACK],
                "application_type": "web"})
        .to_string(),
        now(),
    ))
    .unwrap();
    assert_eq!(registered["token_endpoint_auth_method"], "none");
    let client = f
        .resolve(registered["client_id"].as_str().unwrap())
        .unwrap();
    assert_eq!(
        block_on(clients::registration_endpoint(
            &f.db,
            &f.rng,
            "not json",
            now()
        ))
        .unwrap_err()
        .code(),
        "invalid_client_metadata"
    );

    let code = f.authorize(&client, &f.user, now());
    let form = |pairs: &[(&str, &str)]| {
        form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish()
    };
    let token = |body: String| {
        block_on(tokens::token_endpoint(
            &f.db,
            &f.rng,
            &body,
            &resource(),
            now(),
        ))
    };
    let pair = token(form(&[
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("client_id", &client.client_id),
        ("redirect_uri", CALLBACK),
        ("code_verifier", VERIFIER),
        ("resource", "https://mcp.example/mcp"),
    ]))
    .unwrap();
    let next = token(form(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", pair.refresh_token.expose()),
        ("client_id", &client.client_id),
    ]))
    .unwrap();
    assert!(f.access_ok(&next, now()));
    // A client the server no longer knows: 401 invalid_client, so the
    // client registers again.
    let unknown = token(form(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", next.refresh_token.expose()),
        ("client_id", "pmjb_client_gone"),
    ]))
    .unwrap_err();
    assert_eq!(
        (unknown.code(), unknown.http_status()),
        ("invalid_client", 401)
    );
    assert!(f.access_ok(&next, now()), "nothing was spent");

    assert_eq!(
        block_on(tokens::revocation_endpoint(
            &f.db,
            "token_type_hint=access_token",
            now()
        ))
        .unwrap_err()
        .code(),
        "invalid_request"
    );
    block_on(tokens::revocation_endpoint(
        &f.db,
        &form(&[
            ("token", next.access_token.expose()),
            ("client_id", &client.client_id),
        ]),
        now(),
    ))
    .unwrap();
    assert!(!f.access_ok(&next, now()));
    block_on(tokens::revocation_endpoint(
        &f.db,
        "token=pmjb_rt_unknown",
        now(),
    ))
    .unwrap();
}

/// The resource server's one-batch load (`core::caller::load_caller`) of
/// an OAuth access token: the grant's administrations come along, and
/// every refusal of `AccessRecord::check` (other resource, expired,
/// revoked, missing scope) is a refusal that meters nothing.
#[test]
fn an_access_token_is_loaded_in_one_round_trip_and_refused_as_the_check_says() {
    use boekhouding_core::caller::{Credential, LoadError, LoadRequest, load_caller};
    use boekhouding_core::counting::Counting;
    use boekhouding_core::storage::usage::{self, Metered, UsageMonth};

    let f = fixture();
    let client = f.register(&[CALLBACK]);
    let pair = f
        .redeem(&client, &f.authorize(&client, &f.user, now()), now())
        .unwrap();
    let token = pair.access_token.expose().to_owned();
    let load = |resource: &McpResource, at: DateTime<Utc>| {
        let counted = Counting::new(&f.db);
        let loaded = block_on(load_caller(
            &counted,
            LoadRequest {
                credential: &token,
                resource: Some(resource),
                now: at,
                meter: true,
            },
        ));
        assert_eq!(counted.calls(), 1, "one round trip, refused or not");
        loaded
    };
    let metered = || block_on(usage::monthly_calls(&f.db, &f.user, UsageMonth::of(now()))).unwrap();
    let loaded = load(&resource(), now()).unwrap();
    assert_eq!(loaded.user_id, f.user);
    match &loaded.credential {
        Credential::OAuth(record) => {
            assert_eq!(record.administration_ids, vec!["adm-1".to_owned()]);
            assert_eq!(record.client_id, client.client_id);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(loaded.take_meter(), Some(Metered::Allowed { used: 1 }));

    let other = McpResource::parse("https://other.example/mcp").unwrap();
    assert_eq!(load(&other, now()).unwrap_err(), LoadError::Invalid);
    let expired = now() + ACCESS_TOKEN_LIFETIME + Duration::seconds(1);
    assert_eq!(load(&resource(), expired).unwrap_err(), LoadError::Invalid);
    f.db.raw()
        .execute("UPDATE oauth_grants SET scope = 'profile'", [])
        .unwrap();
    assert_eq!(
        load(&resource(), now()).unwrap_err(),
        LoadError::InsufficientScope(SCOPE_BOOKS_READ)
    );
    f.db.raw()
        .execute("UPDATE oauth_grants SET scope = 'books:read'", [])
        .unwrap();
    assert!(load(&resource(), now()).is_ok());
    // Revoked: refused on the very next request (nothing is cached).
    block_on(tokens::revoke(
        &f.db,
        &token,
        Some(&client.client_id),
        now(),
    ))
    .unwrap();
    assert_eq!(load(&resource(), now()).unwrap_err(), LoadError::Invalid);
    assert_eq!(metered(), 2, "only the two accepted loads were counted");
}
