//! The core Exact client against the sandbox over real HTTP: OAuth with
//! rotation, reuse and the refresh window; paging across page boundaries;
//! hostile filter strings; division access; rate limits; injected faults.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use boekhouding_core::exact::oauth;
use boekhouding_core::exact::{Division, ExactClient, ExactError, Filter, Query, RateWindow};
use boekhouding_core::ports::{HttpMethod, TransportError};
use common::{default_env, start};
use exact_sandbox::SandboxConfig;
use futures::executor::block_on;
use serde_json::json;

fn first_division(env: &common::Env, user: &str) -> i64 {
    env.sandbox.dataset().login(user).unwrap().divisions[0]
}

#[test]
fn oauth_codes_are_single_use_and_refresh_tokens_rotate() {
    let env = default_env();
    let code = env.login("demo", "demo");
    assert!(code.contains('!'), "Exact codes carry a '!'");
    let tokens = block_on(oauth::exchange_code(
        &env.http,
        &env.app(),
        &code,
        env.clock_now(),
    ))
    .unwrap();
    assert_eq!(
        (tokens.access_expires_at - env.clock_now()).num_seconds(),
        600
    );
    let again = block_on(oauth::exchange_code(
        &env.http,
        &env.app(),
        &code,
        env.clock_now(),
    ));
    assert!(
        matches!(again, Err(ExactError::InvalidGrant(_))),
        "{again:?}"
    );

    // Too early: the client refuses without calling Exact.
    let early = block_on(oauth::refresh(
        &env.http,
        &env.app(),
        &tokens.refresh_token,
        tokens.access_expires_at,
        env.clock_now(),
    ));
    assert!(matches!(early, Err(ExactError::TooEarlyToRefresh { .. })));
    assert_eq!(env.token_requests("refresh_token"), 0);

    // Even a client that ignores the window is stopped by the sandbox with
    // Exact's error, which maps to the same typed error.
    let forced = block_on(oauth::refresh(
        &env.http,
        &env.app(),
        &tokens.refresh_token,
        env.clock_now() - chrono::Duration::seconds(1),
        env.clock_now(),
    ));
    assert!(
        matches!(forced, Err(ExactError::TooEarlyToRefresh { .. })),
        "{forced:?}"
    );

    env.advance(575);
    let fresh = block_on(oauth::refresh(
        &env.http,
        &env.app(),
        &tokens.refresh_token,
        tokens.access_expires_at,
        env.clock_now(),
    ))
    .unwrap();
    assert_ne!(fresh.refresh_token, tokens.refresh_token);
    // The old refresh token is dead now.
    env.advance(600);
    let reuse = block_on(oauth::refresh(
        &env.http,
        &env.app(),
        &tokens.refresh_token,
        fresh.access_expires_at,
        env.clock_now(),
    ));
    assert_eq!(reuse.unwrap_err(), ExactError::RefreshTokenReused);
    assert!(!ExactError::RefreshTokenReused.is_retryable());
    assert!(ExactError::RefreshTokenReused.is_dead_grant());
    assert_eq!(env.token_requests("refresh_token"), 3);
}

#[test]
fn a_wrong_client_secret_is_our_fault_not_the_grant() {
    let env = default_env();
    let t = env.connect("demo");
    env.advance(590);
    let mut app = env.app();
    app.client_secret = boekhouding_core::crypto::Secret::new("rotated-away");
    let refused = block_on(oauth::refresh(
        &env.http,
        &app,
        &t.refresh_token,
        t.access_expires_at,
        env.clock_now(),
    ));
    assert_eq!(refused.unwrap_err(), ExactError::ClientRejected);
    // The refresh token is still good with the right secret.
    block_on(oauth::refresh(
        &env.http,
        &env.app(),
        &t.refresh_token,
        t.access_expires_at,
        env.clock_now(),
    ))
    .unwrap();
}

#[test]
fn refresh_tokens_lapse_after_30_days_and_revoked_consent_kills_the_grant() {
    let env = default_env();
    let t = env.connect("demo");
    env.advance(31 * 86_400);
    let lapsed = block_on(oauth::refresh(
        &env.http,
        &env.app(),
        &t.refresh_token,
        t.access_expires_at,
        env.clock_now(),
    ));
    assert!(
        matches!(lapsed, Err(ExactError::InvalidGrant(ref m)) if m.contains("expired")),
        "{lapsed:?}"
    );

    let t = env.connect("demo");
    let client = ExactClient::new(
        &env.http,
        &env.clock,
        env.sandbox.base_url(),
        t.access_token.clone(),
    );
    block_on(client.me()).unwrap();
    env.admin("/__admin/revoke", json!({"username": "demo"}));
    assert_eq!(block_on(client.me()).unwrap_err(), ExactError::Unauthorized);
    env.advance(590);
    let r = block_on(oauth::refresh(
        &env.http,
        &env.app(),
        &t.refresh_token,
        t.access_expires_at,
        env.clock_now(),
    ));
    let failure = r.unwrap_err().refresh_failure();
    assert!(matches!(
        failure,
        boekhouding_core::lifecycle::RefreshFailure::Permanent(_)
    ));
}

#[test]
fn me_and_divisions_are_scoped_to_the_user() {
    let env = default_env();
    let t = env.connect("demo");
    let client = ExactClient::new(
        &env.http,
        &env.clock,
        env.sandbox.base_url(),
        t.access_token,
    );
    let me = block_on(client.me()).unwrap();
    let demo = env.sandbox.dataset().login("demo").unwrap().clone();
    assert_eq!(me.current_division, demo.current_division);
    let other = first_division(&env, "other");
    assert!(!demo.divisions.contains(&other));
    let q = Query::new("financial/GLAccounts", &["ID", "Code"]);
    let denied = block_on(client.list(Division(other), &q, 10));
    assert_eq!(
        denied.unwrap_err(),
        ExactError::Forbidden {
            reason: Some("NoDivisionAccess".into())
        }
    );
    assert!(block_on(client.list(Division(demo.divisions[0]), &q, 10)).is_ok());
}

#[test]
fn paging_follows_next_links_across_page_boundaries_and_reports_truncation() {
    let env = default_env();
    let t = env.connect("demo");
    let division = first_division(&env, "demo");
    let client = ExactClient::new(
        &env.http,
        &env.clock,
        env.sandbox.base_url(),
        t.access_token,
    );
    // One journal keeps the page count within Exact's 60 calls a minute.
    let all_lines: Vec<_> = env
        .sandbox
        .rows(division, "financialtransaction/TransactionLines")
        .into_iter()
        .filter(|r| r["JournalCode"] == "70")
        .collect();
    let n = all_lines.len();
    assert!(n > 130, "need several pages, have {n}");
    let q = Query::new("financialtransaction/TransactionLines", &["ID", "AmountDC"])
        .filter(Some(Filter::eq("JournalCode", "70")));

    let everything = block_on(client.list(Division(division), &q, usize::MAX)).unwrap();
    assert_eq!(everything.rows.len(), n);
    assert!(!everything.truncated);
    assert_eq!(everything.pages as usize, n.div_ceil(60));
    let mut ids: Vec<&str> = everything
        .rows
        .iter()
        .map(|r| r["ID"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), n, "no duplicates, no gaps across pages");

    let capped = block_on(client.list(Division(division), &q, 61)).unwrap();
    assert_eq!(capped.rows.len(), 61);
    assert!(capped.truncated);
    let exact = block_on(client.list(Division(division), &q, n)).unwrap();
    assert!(
        !exact.truncated,
        "a cap equal to the total is not a truncation"
    );
    let one_page = block_on(client.list(Division(division), &q, 60)).unwrap();
    assert!(one_page.truncated);
    assert_eq!(one_page.pages, 1);

    // $top is honoured across pages too.
    let top = block_on(client.list(Division(division), &q.clone().top(75), usize::MAX)).unwrap();
    assert_eq!(top.rows.len(), 75);
}

#[test]
fn hostile_strings_in_filters_match_literally_and_never_widen_the_result() {
    let env = default_env();
    let t = env.connect("demo");
    let division = first_division(&env, "demo");
    let client = ExactClient::new(
        &env.http,
        &env.clock,
        env.sandbox.base_url(),
        t.access_token,
    );
    let accounts = env.sandbox.rows(division, "crm/Accounts");
    let quoted = accounts
        .iter()
        .map(|r| r["Name"].as_str().unwrap().to_owned())
        .find(|n| n.contains('\''))
        .expect("the demo data has a relation with a quote in its name");
    let q = |f: Filter| Query::new("crm/Accounts", &["ID", "Name"]).filter(Some(f));
    let found = block_on(client.list(
        Division(division),
        &q(Filter::eq("Name", quoted.clone())),
        100,
    ))
    .unwrap();
    assert_eq!(found.rows.len(), 1);
    assert_eq!(found.rows[0]["Name"], quoted.as_str());

    for hostile in [
        "' or 1 eq 1 or Name eq '",
        "x' or Name ne 'zz",
        "x') or substringof('', Name) or ('",
        "x') or (Name ne '",
        "'; DROP TABLE Accounts; --",
        "%27 or true",
        "&$top=1&$filter=Name ne ''",
        "\u{202e}gnirts",
        "\\' or ''='",
        "",
    ] {
        for f in [
            Filter::eq("Name", hostile),
            Filter::contains("Name", hostile).and(Filter::eq("Name", hostile)),
        ] {
            let r = block_on(client.list(Division(division), &q(f), 1000));
            let rows = r.unwrap_or_else(|e| panic!("{hostile:?}: {e}"));
            assert!(
                rows.rows.is_empty(),
                "{hostile:?} matched {}",
                rows.rows.len()
            );
        }
    }
}

#[test]
fn rate_limits_are_read_from_headers_and_respected_without_calling() {
    let env = start(SandboxConfig {
        minutely_limit: 5,
        ..SandboxConfig::default()
    });
    let t = env.connect("demo");
    let division = Division(first_division(&env, "demo"));
    let q = Query::new("financial/GLAccounts", &["ID"]).top(1);
    let client = ExactClient::new(
        &env.http,
        &env.clock,
        env.sandbox.base_url(),
        t.access_token.clone(),
    );
    for _ in 0..5 {
        block_on(client.list(division, &q, 1)).unwrap();
    }
    let limits = client.rate_limits();
    assert_eq!(limits.minutely.unwrap().remaining, 0);
    assert_eq!(limits.daily.unwrap().remaining, 4995);
    let before = env.sandbox.requests().len();
    let err = block_on(client.list(division, &q, 1)).unwrap_err();
    assert!(
        matches!(
            err,
            ExactError::RateLimited {
                window: RateWindow::Minutely,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_retryable());
    assert_eq!(env.sandbox.requests().len(), before, "no request was sent");

    // A client that does not know yet gets Exact's 429 and reads the reset.
    let naive = ExactClient::new(
        &env.http,
        &env.clock,
        env.sandbox.base_url(),
        t.access_token,
    );
    match block_on(naive.list(division, &q, 1)) {
        Err(ExactError::RateLimited {
            window: RateWindow::Minutely,
            reset_at,
        }) => {
            assert!(reset_at > chrono::Utc::now() - chrono::Duration::seconds(1));
            assert!(reset_at <= chrono::Utc::now() + chrono::Duration::seconds(61));
        }
        other => panic!("{other:?}"),
    }
    let raw = env.sandbox.requests().last().cloned().unwrap();
    assert_eq!(raw.status, 429);
}

#[test]
fn injected_faults_become_typed_retryable_errors() {
    let env = default_env();
    let t = env.connect("demo");
    let division = Division(first_division(&env, "demo"));
    let q = Query::new("financial/GLAccounts", &["ID"]).top(1);
    let client = ExactClient::new(
        &env.http,
        &env.clock,
        env.sandbox.base_url(),
        t.access_token.clone(),
    );

    env.admin(
        "/__admin/faults",
        json!({"kind": "status", "status": 503, "count": 2}),
    );
    for _ in 0..2 {
        let e = block_on(client.list(division, &q, 1)).unwrap_err();
        assert_eq!(e, ExactError::Upstream { status: 503 });
        assert!(e.is_retryable());
    }
    assert!(
        block_on(client.list(division, &q, 1)).is_ok(),
        "faults are used up"
    );

    env.admin("/__admin/faults", json!({"kind": "status", "status": 500}));
    assert_eq!(
        block_on(client.list(division, &q, 1)).unwrap_err(),
        ExactError::Upstream { status: 500 }
    );

    env.admin("/__admin/faults", json!({"kind": "rate_limit"}));
    assert!(matches!(
        block_on(client.list(division, &q, 1)).unwrap_err(),
        ExactError::RateLimited { .. }
    ));

    let impatient =
        exact_sandbox::transport::BlockingTransport::new(std::time::Duration::from_millis(300));
    let slow_client = ExactClient::new(
        &impatient,
        &env.clock,
        env.sandbox.base_url(),
        t.access_token.clone(),
    );
    env.admin(
        "/__admin/faults",
        json!({"kind": "timeout", "delay_ms": 1500}),
    );
    let e = block_on(slow_client.list(division, &q, 1)).unwrap_err();
    assert_eq!(e, ExactError::Transport(TransportError::Timeout));
    assert!(e.is_retryable());

    // A fault aimed at the token endpoint only affects refreshes.
    env.admin(
        "/__admin/faults",
        json!({"kind": "status", "status": 503, "path": "/api/oauth2/token"}),
    );
    assert!(block_on(client.list(division, &q, 1)).is_ok());
    env.advance(590);
    let r = block_on(oauth::refresh(
        &env.http,
        &env.app(),
        &t.refresh_token,
        t.access_expires_at,
        env.clock_now(),
    ));
    let e = r.unwrap_err();
    assert_eq!(e, ExactError::Upstream { status: 503 });
    assert!(matches!(
        e.refresh_failure(),
        boekhouding_core::lifecycle::RefreshFailure::Transient(_)
    ));
    // The refresh token survived the failed attempt.
    assert!(
        block_on(oauth::refresh(
            &env.http,
            &env.app(),
            &t.refresh_token,
            t.access_expires_at,
            env.clock_now()
        ))
        .is_ok()
    );
}

#[test]
fn the_client_never_sends_its_token_to_another_host() {
    let env = default_env();
    let t = env.connect("demo");
    let client = ExactClient::new(
        &env.http,
        &env.clock,
        env.sandbox.base_url(),
        t.access_token,
    );
    let e = block_on(client.page("http://127.0.0.2:1/api/v1/1/crm/Accounts")).unwrap_err();
    assert_eq!(e, ExactError::ForeignNextLink);
    let sneaky = format!("{}.evil.example/api/v1/1/x", env.sandbox.base_url());
    assert_eq!(
        block_on(client.page(&sneaky)).unwrap_err(),
        ExactError::ForeignNextLink
    );
}

#[test]
fn odata_rules_and_error_bodies_match_exact() {
    let env = default_env();
    let t = env.connect("demo");
    let d = first_division(&env, "demo");
    let bearer = format!("Bearer {}", t.access_token.expose());
    let get = |path: &str, accept: bool| {
        let mut h = vec![("Authorization", bearer.as_str())];
        if accept {
            h.push(("Accept", "application/json"));
        }
        env.send(HttpMethod::Get, &format!("/api/v1/{d}/{path}"), &h, None)
    };
    let msg = |r: &boekhouding_core::ports::HttpResponse| {
        boekhouding_core::exact::wire::error_message(&r.body).unwrap_or_default()
    };

    assert!(
        get("financial/GLAccounts?$top=1", false)
            .body
            .contains("<feed"),
        "Atom XML without Accept: application/json"
    );
    let r = get("crm/Accounts", true);
    assert_eq!(r.status, 400);
    assert!(msg(&r).contains("mandatory filtering"));
    let r = get("generaljournalentry/GeneralJournalEntries", true);
    assert_eq!(r.status, 400);
    assert!(msg(&r).contains("Please add a $select or a $top=1"));
    let r = get("financial/GLAccounts?$filter=", true);
    assert!(msg(&r).contains("This $filter parameter is not supported"));
    let r = get("financial/GLAccounts?$filter=Nope%20eq%201", true);
    assert!(msg(&r).contains("Filtering on these fields is not supported: Nope"));
    let r = get(
        "financial/GLAccounts?$filter=ID%20eq%20%2700000000-0000-0000-0000-000000000000%27",
        true,
    );
    assert_eq!(r.status, 400, "a bare GUID string is a type error");
    assert_eq!(
        get("hrm/CostCenters?$top=1", true).status,
        404,
        "paths are case-sensitive"
    );
    assert_eq!(get("hrm/Costcenters?$top=1", true).status, 200);

    let gl = env.sandbox.rows(d, "financial/GLAccounts");
    let id = gl[3]["ID"].as_str().unwrap();
    let one = get(&format!("financial/GLAccounts(guid'{id}')"), true);
    let v: serde_json::Value = serde_json::from_str(&one.body).unwrap();
    assert_eq!(v["d"]["ID"], id);
    assert!(v["d"]["__metadata"]["uri"].as_str().unwrap().contains(id));
    assert_eq!(
        get("financial/GLAccounts/$count", true).body,
        gl.len().to_string()
    );

    let counted: serde_json::Value = serde_json::from_str(
        &get(
            "financial/GLAccounts?$select=Code&$top=2&$inlinecount=allpages&$orderby=Code%20desc",
            true,
        )
        .body,
    )
    .unwrap();
    assert_eq!(counted["d"]["__count"], gl.len().to_string());
    let codes: Vec<&str> = counted["d"]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["Code"].as_str().unwrap())
        .collect();
    let mut expected: Vec<String> = gl
        .iter()
        .map(|r| r["Code"].as_str().unwrap().to_owned())
        .collect();
    expected.sort_by_key(|c| std::cmp::Reverse(c.to_lowercase()));
    assert_eq!(
        codes,
        expected[..2].iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert_eq!(
        counted["d"]["results"][0].as_object().unwrap().len(),
        2,
        "only __metadata and the selected field"
    );

    let unauth = env.send(
        HttpMethod::Get,
        &format!("/api/v1/{d}/financial/GLAccounts"),
        &[("Accept", "application/json")],
        None,
    );
    assert_eq!(unauth.status, 401);
}

#[test]
fn revenue_function_requires_its_year_parameter() {
    let env = default_env();
    let t = env.connect("demo");
    let d = Division(first_division(&env, "demo"));
    let client = ExactClient::new(
        &env.http,
        &env.clock,
        env.sandbox.base_url(),
        t.access_token,
    );
    let missing =
        block_on(client.list(d, &Query::new("read/financial/RevenueListByYear", &[]), 100));
    assert!(matches!(missing, Err(ExactError::BadRequest(_))));
    let year = Query::new("read/financial/RevenueListByYear", &[]).param("year", "2025");
    let rows = block_on(client.list(d, &year, 100)).unwrap();
    assert_eq!(rows.rows.len(), 12);
}

#[test]
fn every_entity_the_tools_use_is_served_with_rows() {
    let env = default_env();
    let t = env.connect("demo");
    let client = ExactClient::new(
        &env.http,
        &env.clock,
        env.sandbox.base_url(),
        t.access_token.clone(),
    );
    let divisions = env
        .sandbox
        .dataset()
        .login("demo")
        .unwrap()
        .divisions
        .clone();
    let paths = [
        "system/Divisions",
        "hrm/Divisions",
        "crm/Accounts",
        "salesinvoice/SalesInvoices",
        "salesinvoice/SalesInvoiceLines",
        "salesentry/SalesEntries",
        "purchaseentry/PurchaseEntries",
        "financial/GLAccounts",
        "financial/Journals",
        "financialtransaction/TransactionLines",
        "financialtransaction/BankEntries",
        "financialtransaction/BankEntryLines",
        "generaljournalentry/GeneralJournalEntries",
        "read/financial/ReceivablesList",
        "read/financial/PayablesList",
        "read/financial/AgingReceivablesList",
        "read/financial/AgingPayablesList",
        "financial/ReportingBalance",
        "vat/VATCodes",
        "budget/Budgets",
        "salesorder/SalesOrders",
        "purchaseorder/PurchaseOrders",
        "crm/Quotations",
        "logistics/Items",
        "inventory/StockPositions",
        "logistics/SalesItemPrices",
        "project/Projects",
        "project/TimeTransactions",
        "project/InvoiceTerms",
        "subscription/Subscriptions",
        "subscription/SubscriptionLines",
        "hrm/Costcenters",
        "assets/Assets",
        "assets/DepreciationSchedules",
        "general/Currencies",
        "financial/ExchangeRates",
        "documents/Documents",
        "documents/DocumentAttachments",
        "crm/Opportunities",
        "bulk/Financial/TransactionLines",
        "sync/Financial/TransactionLines",
    ];
    for path in paths {
        let mut total = 0;
        for d in &divisions {
            // Entities with mandatory filtering get one, as a client must send.
            let filter = match path {
                "crm/Accounts" => {
                    Some(Filter::eq("Blocked", false).or(Filter::eq("Blocked", true)))
                }
                "logistics/Items" => Some(Filter::eq("IsSalesItem", true)),
                _ => None,
            };
            // Bulk, sync and some regular endpoints insist on `$select`.
            let select: &[&str] = match path {
                p if p.starts_with("bulk/") || p.starts_with("sync/") => &["ID"],
                "generaljournalentry/GeneralJournalEntries" => &["EntryID"],
                "logistics/SalesItemPrices" => &["ID", "Price"],
                _ => &[],
            };
            let q = Query::new(path, select).filter(filter);
            let listed = block_on(client.list(Division(*d), &q, 5))
                .unwrap_or_else(|e| panic!("{path}: {e}"));
            total += listed.rows.len();
        }
        assert!(total > 0, "{path} served no rows for the demo user");
    }

    // An endpoint a company has no records for answers an empty list, as
    // Exact does, not a 404 (the law firm keeps no stock).
    let law_firm = Division(divisions[2]);
    let none =
        block_on(client.list(law_firm, &Query::new("inventory/StockPositions", &[]), 5)).unwrap();
    assert!(none.rows.is_empty() && !none.truncated);

    // Bulk endpoints page by 1,000 rows.
    let d = Division(divisions[0]);
    let mut pager = client.pages(d, &Query::new("bulk/Financial/TransactionLines", &["ID"]));
    let first = block_on(pager.next_page()).unwrap().unwrap();
    let n = env
        .sandbox
        .rows(divisions[0], "financialtransaction/TransactionLines")
        .len();
    assert_eq!(first.rows.len(), n.min(1000));

    // An attachment's Url downloads its content with the bearer token.
    let att = env
        .sandbox
        .rows(divisions[0], "documents/DocumentAttachments")[0]
        .clone();
    let q = Query::new("documents/DocumentAttachments", &["ID", "Url", "FileName"]).top(1);
    let listed = block_on(client.list(d, &q, 1)).unwrap();
    let url = listed.rows[0]["Url"].as_str().unwrap().to_owned();
    assert!(
        url.starts_with(env.sandbox.base_url()),
        "absolute download URL"
    );
    let body = block_on(client.get(&url)).unwrap();
    assert!(body.starts_with("%PDF"), "{body}");
    assert!(att.contains_key("FileName"));
    let anonymous = env.send(HttpMethod::Get, &url, &[], None);
    assert_eq!(anonymous.status, 401, "downloads need the token");

    // A download stops at the caller's cap and says so; at or above the
    // file's size it is whole.
    let whole = block_on(client.download(&url, usize::MAX)).unwrap();
    assert!(!whole.truncated && whole.bytes.starts_with(b"%PDF"));
    let size = whole.bytes.len();
    let capped = block_on(client.download(&url, 10)).unwrap();
    assert!(capped.truncated, "a 10-byte cap on {size} bytes");
    assert_eq!(capped.bytes, whole.bytes[..10]);
    let exact = block_on(client.download(&url, size)).unwrap();
    assert!(!exact.truncated && exact.bytes == whole.bytes);
    let one_short = block_on(client.download(&url, size - 1)).unwrap();
    assert!(one_short.truncated && one_short.bytes.len() == size - 1);
}
