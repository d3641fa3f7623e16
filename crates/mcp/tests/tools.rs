//! The bookkeeping tools end to end natively: the real migrations on
//! SQLite, a user connected to the Exact sandbox through its OAuth flow,
//! and every answer compared with the sandbox's own data.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::RefCell;

use boekhouding_core::authorization::metadata::McpResource;
use boekhouding_core::caller::LoadedCaller;
use boekhouding_core::counting::Counting;
use boekhouding_core::crypto::{Secret, TokenKeyring};
use boekhouding_core::exact::oauth::{self, ExactApp};
use boekhouding_core::plan::Plan;
use boekhouding_core::ports::{
    BinaryResponse, HttpRequest, HttpResponse, HttpTransport, Sleep, TransportError,
};
use boekhouding_core::region::Region;
use boekhouding_core::storage::administrations::{self, DivisionInfo};
use boekhouding_core::storage::connections::{self, ExactIdentity, NewConnection};
use boekhouding_core::storage::usage::AuthKind;
use boekhouding_core::storage::users;
use boekhouding_core::storage::{NoDatabase, SqlExecutor, Statement, api_keys};
use boekhouding_core::testing::{FakeClock, MemoryCache, SeededRandomness};
use boekhouding_mcp::auth;
use boekhouding_mcp::engine::{Engine, Era, RpcError, ServerIdentity, ToolCallOutcome, ToolHost};
use boekhouding_mcp::tools::{Bookkeeping, Caller, DemoTenant, ExactSettings, Platform, Principal};
use boekhouding_sqlite::SqliteDb;
use exact_sandbox::books::Books;
use exact_sandbox::demo::DemoTransport;
use exact_sandbox::transport::BlockingTransport;
use exact_sandbox::{Sandbox, SandboxConfig};
use futures::executor::block_on;
use serde_json::{Value, json};

const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

struct ThreadSleep;
impl Sleep for ThreadSleep {
    async fn sleep_ms(&self, ms: u64) {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}

struct Native {
    db: SqliteDb,
    clock: FakeClock,
    http: BlockingTransport,
    rng: SeededRandomness,
    sleep: ThreadSleep,
    cache: MemoryCache,
}

impl Platform for Native {
    type Db = SqliteDb;
    type Clock = FakeClock;
    type Http = BlockingTransport;
    type Rng = SeededRandomness;
    type Sleep = ThreadSleep;
    type Cache = MemoryCache;
    fn db(&self) -> &SqliteDb {
        &self.db
    }
    fn clock(&self) -> &FakeClock {
        &self.clock
    }
    fn http(&self) -> &BlockingTransport {
        &self.http
    }
    fn rng(&self) -> &SeededRandomness {
        &self.rng
    }
    fn sleep(&self) -> &ThreadSleep {
        &self.sleep
    }
    fn cache(&self) -> &MemoryCache {
        &self.cache
    }
    fn report(&self, what: &str) {
        eprintln!("report: {what}");
    }
}

struct World {
    sandbox: Sandbox,
    platform: Native,
    settings: ExactSettings,
    principal: Principal,
}

/// Logs in on the sandbox page and returns the code.
fn login(http: &BlockingTransport, app: &ExactApp) -> String {
    exact_sandbox::login::sign_in(http, app, "demo", "demo", "s").unwrap()
}

fn world(plan: Plan) -> World {
    let sandbox = Sandbox::start(SandboxConfig::default()).unwrap();
    let platform = Native {
        db: SqliteDb::migrated().unwrap(),
        clock: FakeClock::at(chrono::Utc::now()),
        http: BlockingTransport::default(),
        rng: SeededRandomness::new(9),
        sleep: ThreadSleep,
        cache: MemoryCache::default(),
    };
    let settings = ExactSettings {
        keyring: TokenKeyring::from_config(KEY).unwrap(),
        client_id: sandbox.client_id().into(),
        client_secret: Secret::new(sandbox.client_secret()),
        redirect_uri: "http://127.0.0.1:9/callback".into(),
        base_url_override: Some(sandbox.base_url().into()),
    };
    let app = settings.app_for(Region::Nl);
    let code = login(&platform.http, &app);
    let now = boekhouding_core::ports::Clock::now(&platform.clock);
    let tokens = block_on(oauth::exchange_code(&platform.http, &app, &code, now))
        .unwrap()
        .into_exact_tokens();
    let user = block_on(users::upsert_by_email(
        &platform.db,
        &platform.rng,
        "jan@example.nl",
        None,
        now,
    ))
    .unwrap();
    block_on(users::set_plan(&platform.db, &user.id, plan, now)).unwrap();
    let conn = block_on(connections::connect(
        &platform.db,
        &platform.rng,
        &settings.keyring,
        &NewConnection {
            user_id: &user.id,
            region: Region::Nl,
            identity: &ExactIdentity::default(),
            tokens: &tokens,
        },
        now,
    ))
    .unwrap();
    let demo = sandbox.dataset().login("demo").unwrap().clone();
    let divisions: Vec<DivisionInfo> = sandbox
        .dataset()
        .companies
        .iter()
        .filter(|c| demo.divisions.contains(&c.division))
        .map(|c| DivisionInfo {
            code: c.division,
            name: c.name.clone(),
        })
        .collect();
    block_on(administrations::sync_for_connection(
        &platform.db,
        &platform.rng,
        &conn.id,
        Plan::Enterprise,
        &divisions,
        Some(demo.current_division),
        now,
    ))
    .unwrap();
    let principal = Principal {
        user_id: user.id,
        plan,
        caller: Caller::Customer(AuthKind::ApiKey { key_id: "k".into() }),
        client_name: None,
        request_id: Some("test".into()),
        granted: None,
    };
    World {
        sandbox,
        platform,
        settings,
        principal,
    }
}

impl World {
    fn call(&self, tool: &str, args: Value) -> ToolCallOutcome {
        let host = Bookkeeping {
            platform: &self.platform,
            principal: &self.principal,
            portal_url: "https://portal.example",
            exact: Some(&self.settings),
        };
        block_on(host.call(tool, args))
    }

    fn ok(&self, tool: &str, args: Value) -> Value {
        match self.call(tool, args) {
            ToolCallOutcome::Ok { structured, .. } => structured,
            other => panic!("{tool}: {other:?}"),
        }
    }

    fn error(&self, tool: &str, args: Value) -> String {
        match self.call(tool, args) {
            ToolCallOutcome::ToolError(m) => m,
            other => panic!("{tool} should fail: {other:?}"),
        }
    }
}

fn cents(v: &Value) -> i64 {
    (v.as_f64().unwrap() * 100.0).round() as i64
}

#[test]
fn gl_accounts_match_the_chart_of_accounts() {
    let w = world(Plan::Pro);
    let default = 1_000_001;
    let all = w.ok("get_gl_accounts", json!({}));
    let source = w.sandbox.rows(default, "financial/GLAccounts");
    assert_eq!(all["division"], default);
    assert_eq!(all["count"].as_u64().unwrap() as usize, source.len());
    assert_eq!(all["truncated"], false);
    let mut codes: Vec<&str> = source.iter().map(|r| r["Code"].as_str().unwrap()).collect();
    codes.sort_unstable();
    let got: Vec<&str> = all["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["code"].as_str().unwrap())
        .collect();
    assert_eq!(got, codes, "ordered by code");

    let pl = w.ok("get_gl_accounts", json!({"type": "profitloss"}));
    assert!(
        pl["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["balance_type"] == "profit_loss")
    );
    let omzet = w.ok("get_gl_accounts", json!({"search": "omzet"}));
    let found: Vec<&str> = omzet["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["code"].as_str().unwrap())
        .collect();
    assert_eq!(
        found,
        vec!["7000", "8000", "8100"],
        "case-insensitive search in descriptions"
    );
    let capped = w.ok("get_gl_accounts", json!({"limit": 5}));
    assert_eq!(
        (capped["count"].as_u64(), capped["truncated"].as_bool()),
        (Some(5), Some(true))
    );
    let other = w.ok(
        "get_gl_accounts",
        json!({"division": 1_000_002, "search": "8000"}),
    );
    assert_eq!(other["division"], 1_000_002);
    // Hostile text is just text.
    let hostile = w.ok("get_gl_accounts", json!({"search": "x' or Code ne '"}));
    assert_eq!(hostile["count"], 0);
}

#[test]
fn outstanding_invoices_tie_out_with_the_open_items() {
    let w = world(Plan::Pro);
    let r = w.ok("get_outstanding_invoices", json!({}));
    for (key, path) in [
        ("receivables", "read/financial/ReceivablesList"),
        ("payables", "read/financial/PayablesList"),
    ] {
        let source = w.sandbox.rows(1_000_001, path);
        let expected: i64 = source.iter().map(|s| cents(&s["Amount"])).sum();
        assert_eq!(cents(&r[key]["total"]), expected, "{key}");
        assert_eq!(r[key]["count"].as_u64().unwrap() as usize, source.len());
        let items = r[key]["items"].as_array().unwrap();
        let overdue: i64 = items
            .iter()
            .filter(|i| i["days_overdue"].as_i64().unwrap() > 0)
            .map(|i| cents(&i["amount"]))
            .sum();
        assert_eq!(cents(&r[key]["overdue_total"]), overdue);
        assert!(
            items
                .windows(2)
                .all(|p| p[0]["days_overdue"].as_i64() >= p[1]["days_overdue"].as_i64()),
            "most overdue first"
        );
    }
    let dunning = w.ok(
        "get_outstanding_invoices",
        json!({"type": "receivable", "min_days_overdue": 30}),
    );
    assert!(dunning.get("payables").is_none());
    assert!(
        dunning["receivables"]["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["days_overdue"].as_i64().unwrap() >= 30)
    );
}

#[test]
fn divisions_are_checked_and_arguments_validated() {
    let w = world(Plan::Pro);
    let foreign = w.error("get_gl_accounts", json!({"division": 1_000_004}));
    assert!(foreign.contains("not one of this account's"), "{foreign}");
    for (args, needle) in [
        (
            json!({"division": "1000001 or 1=1"}),
            "`division` must be a division code",
        ),
        (
            json!({"division": 1.5}),
            "`division` must be a division code",
        ),
        (
            json!({"division": "gb:1000001"}),
            "`division` must be a division code",
        ),
        (json!({"type": "everything"}), "`type` must be one of"),
        (
            json!({"limit": 0}),
            "`limit` must be a whole number from 1 to 1000",
        ),
        (json!({"search": 5}), "`search` must be text"),
        (json!({"sql": "DROP"}), "Unknown argument `sql`"),
    ] {
        let m = w.error("get_gl_accounts", args);
        assert!(m.contains(needle), "{m}");
    }
    let listed = w.ok("list_divisions", json!({}));
    assert_eq!(listed["count"], 3);
    assert_eq!(listed["administrations"][0]["is_default"], true);
}

#[test]
fn the_free_plan_stops_at_its_monthly_limit_with_the_reset_date_and_the_upgrade() {
    let w = world(Plan::Free);
    // The free plan allows two administrations: the third is refused.
    let third = w.error("get_gl_accounts", json!({"division": 1_000_003}));
    assert!(third.contains("not one of this account's"), "{third}");
    let month = boekhouding_core::storage::usage::UsageMonth::of(
        boekhouding_core::ports::Clock::now(&w.platform.clock),
    );
    w.platform
        .db
        .raw()
        .execute(
            "INSERT INTO usage_counters (user_id, month, tool_calls) VALUES (?1, ?2, 198)
             ON CONFLICT (user_id, month) DO UPDATE SET tool_calls = 198",
            [&w.principal.user_id, &month.key()],
        )
        .unwrap();
    let requests_before = w.sandbox.requests().len();
    w.ok("list_divisions", json!({}));
    w.ok("list_divisions", json!({}));
    let over = w.error("get_gl_accounts", json!({}));
    assert!(over.contains("Monthly limit reached: 200 of 200"), "{over}");
    assert!(over.contains(&month.resets_at().format("%Y-%m-%d").to_string()));
    assert!(over.contains("Upgrade to starter"));
    assert!(
        over.contains("https://portal.example/billing/upgrade?plan=starter"),
        "the link goes straight to paying: {over}"
    );
    assert_eq!(
        w.sandbox.requests().len(),
        requests_before,
        "no Exact call after the limit"
    );
}

/// The call that reaches 80 % of the month's calls, and the one that
/// reaches all of them, each queue one mail (with the call log, after the
/// answer); the calls around them and the refused ones queue none.
#[test]
fn the_calls_that_reach_80_and_100_percent_queue_one_usage_mail_each() {
    let mut w = world(Plan::Free);
    // A real key: the call log the mail rides with references it.
    let key = block_on(boekhouding_core::storage::api_keys::create(
        &w.platform.db,
        &w.platform.rng,
        &w.principal.user_id,
        Plan::Free,
        "laptop",
        boekhouding_core::ports::Clock::now(&w.platform.clock),
    ))
    .unwrap();
    w.principal.caller = Caller::Customer(AuthKind::ApiKey {
        key_id: key.record.id,
    });
    let month = boekhouding_core::storage::usage::UsageMonth::of(
        boekhouding_core::ports::Clock::now(&w.platform.clock),
    );
    let set = |n: i64| {
        w.platform
            .db
            .raw()
            .execute(
                &format!(
                    "INSERT INTO usage_counters (user_id, month, tool_calls) VALUES (?1, ?2, {n})
                     ON CONFLICT (user_id, month) DO UPDATE SET tool_calls = {n}"
                ),
                [&w.principal.user_id, &month.key()],
            )
            .unwrap();
    };
    let mails = || -> Vec<String> {
        let db = w.platform.db.raw();
        let mut q = db
            .prepare("SELECT template FROM email_queue ORDER BY id")
            .unwrap();
        q.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    set(158);
    w.ok("list_divisions", json!({}));
    assert!(mails().is_empty(), "159 of 200 is below 80 %");
    w.ok("list_divisions", json!({}));
    assert_eq!(mails(), vec!["usage_80"], "160 of 200");
    w.ok("list_divisions", json!({}));
    assert_eq!(mails().len(), 1, "once");
    set(199);
    w.ok("list_divisions", json!({}));
    assert_eq!(mails(), vec!["usage_80", "usage_100"]);
    w.error("list_divisions", json!({}));
    assert_eq!(mails().len(), 2, "a refused call sends nothing more");
}

#[test]
fn trial_balance_sums_to_zero_and_matches_the_transaction_lines() {
    let w = world(Plan::Pro);
    let tb = w.ok("get_trial_balance", json!({"year": 2025}));
    assert_eq!(cents(&tb["total_balance"]), 0, "every entry balances");
    assert_eq!(cents(&tb["total_debit"]), cents(&tb["total_credit"]));
    let lines = w
        .sandbox
        .rows(1_000_001, "financialtransaction/TransactionLines");
    let mut per: std::collections::BTreeMap<String, i64> = Default::default();
    for l in lines.iter().filter(|l| l["FinancialYear"] == 2025) {
        *per.entry(l["GLAccountCode"].as_str().unwrap().to_owned())
            .or_default() += cents(&l["AmountDC"]);
    }
    for a in tb["accounts"].as_array().unwrap() {
        assert_eq!(
            cents(&a["balance"]),
            per[a["code"].as_str().unwrap()],
            "{a}"
        );
    }
    let h1 = w.ok("get_trial_balance", json!({"year": 2025, "period": 6}));
    assert_eq!(cents(&h1["total_balance"]), 0);
    assert!(cents(&h1["total_debit"]) < cents(&tb["total_debit"]));
}

#[test]
fn profit_and_loss_result_equals_the_balance_sheets_current_year_result() {
    let w = world(Plan::Pro);
    let pl = w.ok(
        "get_profit_loss",
        json!({"year": 2026, "period_from": 1, "period_to": 11}),
    );
    let bs = w.ok("get_balance_sheet", json!({"date": "2026-11-30"}));
    assert_eq!(cents(&pl["result"]), cents(&bs["current_year_result"]));
    assert_eq!(
        cents(&bs["total_assets"]),
        cents(&bs["total_liabilities_and_equity"]),
        "the balance sheet balances"
    );
    assert!(cents(&pl["revenue"]) > 0);
    assert_eq!(
        cents(&pl["result"]),
        cents(&pl["revenue"]) - cents(&pl["cost_of_sales"]) - cents(&pl["other_costs"])
    );
    // Carry-forward: the bank balance at the end of 2026-01 includes 2025.
    let bank = |date: &str| {
        let b = w.ok("get_balance_sheet", json!({"date": date}));
        b["assets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["code"] == "1100")
            .map(|a| cents(&a["amount"]))
            .unwrap_or(0)
    };
    let lines = w
        .sandbox
        .rows(1_000_001, "financialtransaction/TransactionLines");
    let expected: i64 = lines
        .iter()
        .filter(|l| {
            l["GLAccountCode"] == "1100"
                && (l["FinancialYear"] == 2025
                    || (l["FinancialYear"] == 2026 && l["FinancialPeriod"] == 1))
        })
        .map(|l| cents(&l["AmountDC"]))
        .sum();
    assert_eq!(bank("2026-01-15"), expected);
    let prior = w.ok("get_balance_sheet", json!({"date": "2026-01-15"}));
    let pl2025 = w.ok("get_profit_loss", json!({"year": 2025}));
    assert_eq!(
        cents(&prior["prior_years_result"]),
        cents(&pl2025["result"]),
        "2025's result is carried into equity"
    );
    assert!(
        w.error("get_balance_sheet", json!({"date": "30-11-2026"}))
            .contains("YYYY-MM-DD")
    );
    assert!(
        w.error("get_profit_loss", json!({"period_from": 9, "period_to": 3}))
            .contains("period_from")
    );
}

#[test]
fn aging_buckets_add_up_to_the_outstanding_totals() {
    let w = world(Plan::Pro);
    let open = w.ok("get_outstanding_invoices", json!({}));
    for (tool, key) in [
        ("get_aging_receivables", "receivables"),
        ("get_aging_payables", "payables"),
    ] {
        let a = w.ok(tool, json!({}));
        let b = &a["buckets"];
        let sum: i64 = [
            "not_due",
            "days_1_30",
            "days_31_60",
            "days_61_90",
            "days_over_90",
        ]
        .iter()
        .map(|k| cents(&b[*k]))
        .sum();
        assert_eq!(sum, cents(&a["total"]));
        assert_eq!(cents(&a["total"]), cents(&open[key]["total"]), "{tool}");
        let per: i64 = a["relations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| cents(&r["total"]))
            .sum();
        assert_eq!(per, cents(&a["total"]));
    }
}

#[test]
fn relations_revenue_and_transactions_match_the_books() {
    let w = world(Plan::Pro);
    let accounts = w.sandbox.rows(1_000_001, "crm/Accounts");
    let customers = accounts
        .iter()
        .filter(|a| a["IsSales"] == true && a["Blocked"] == false)
        .count();
    let r = w.ok("get_relations", json!({"type": "customer", "limit": 1000}));
    assert_eq!(r["count"].as_u64().unwrap() as usize, customers);
    assert!(
        r["relations"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["is_customer"] == true && x["blocked"] == false)
    );
    let all = w.ok(
        "get_relations",
        json!({"active_only": false, "limit": 1000}),
    );
    assert_eq!(all["count"].as_u64().unwrap() as usize, accounts.len());
    let capped = w.ok("get_relations", json!({"limit": 10}));
    assert_eq!(
        (capped["count"].as_u64(), capped["truncated"].as_bool()),
        (Some(10), Some(true))
    );

    let found = w.ok("search_relations", json!({"query": "o'brien"}));
    assert_eq!(found["count"], 1);
    assert_eq!(found["relations"][0]["name"], "O'Brien Bouw & Zn.");
    let kvk = accounts[5]["ChamberOfCommerce"].as_str().unwrap();
    let by_kvk = w.ok(
        "search_relations",
        json!({"query": kvk, "search_field": "kvk"}),
    );
    assert_eq!(by_kvk["relations"][0]["kvk"], kvk);
    assert!(
        w.error("search_relations", json!({}))
            .contains("`query` is required")
    );

    let rev = w.ok(
        "get_revenue",
        json!({"year": 2026, "compare_previous_year": true}),
    );
    let lines = w
        .sandbox
        .rows(1_000_001, "financialtransaction/TransactionLines");
    let booked = |y: i64| -> i64 {
        lines
            .iter()
            .filter(|l| {
                l["FinancialYear"] == y
                    && ["8000", "8100"].contains(&l["GLAccountCode"].as_str().unwrap())
            })
            .map(|l| -cents(&l["AmountDC"]))
            .sum()
    };
    assert_eq!(cents(&rev["total"]), booked(2026));
    assert_eq!(cents(&rev["previous_year_total"]), booked(2025));
    let pl = w.ok("get_profit_loss", json!({"year": 2026}));
    assert_eq!(
        cents(&pl["revenue"]),
        cents(&rev["total"]),
        "revenue agrees across tools"
    );

    let tx = w.ok(
        "get_transactions",
        json!({"gl_account": "1100", "year": 2025, "limit": 5000}),
    );
    let bank: Vec<_> = lines
        .iter()
        .filter(|l| l["GLAccountCode"] == "1100" && l["FinancialYear"] == 2025)
        .collect();
    assert_eq!(tx["count"].as_u64().unwrap() as usize, bank.len());
    assert_eq!(
        cents(&tx["total"]),
        bank.iter().map(|l| cents(&l["AmountDC"])).sum::<i64>()
    );
    assert_eq!(tx["truncated"], false);
    let january = w.ok(
        "get_transactions",
        json!({"from_date": "2026-01-01", "to_date": "2026-01-31", "limit": 5000}),
    );
    assert!(
        january["transactions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["date"].as_str().unwrap().starts_with("2026-01"))
    );
    assert_eq!(cents(&january["total"]), 0, "whole entries balance");
    assert!(
        w.error("get_transactions", json!({"from_date": "1 januari"}))
            .contains("YYYY-MM-DD")
    );
}

#[test]
fn invoices_and_bank_lines_tie_out() {
    let w = world(Plan::Pro);
    let receivables: i64 = w
        .sandbox
        .rows(1_000_001, "read/financial/ReceivablesList")
        .iter()
        .map(|r| cents(&r["Amount"]))
        .sum();
    let all = w.ok("get_sales_invoices", json!({"limit": 1000}));
    let source = w.sandbox.rows(1_000_001, "salesinvoice/SalesInvoices");
    assert_eq!(all["count"].as_u64().unwrap() as usize, source.len());
    assert_eq!(
        cents(&all["total"]),
        source.iter().map(|r| cents(&r["AmountDC"])).sum::<i64>()
    );
    assert_eq!(
        cents(&all["open_total"]),
        receivables,
        "what is open equals the open items"
    );
    let open = w.ok(
        "get_sales_invoices",
        json!({"status": "open", "limit": 1000}),
    );
    let paid = w.ok(
        "get_sales_invoices",
        json!({"status": "paid", "limit": 1000}),
    );
    assert_eq!(
        open["count"].as_u64().unwrap() + paid["count"].as_u64().unwrap(),
        all["count"].as_u64().unwrap()
    );
    assert!(
        open["invoices"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["paid"] == false && cents(&i["open_amount"]) != 0)
    );
    let customer = source[0]["InvoiceTo"].as_str().unwrap();
    let theirs = w.ok(
        "get_sales_invoices",
        json!({"customer_id": customer.to_uppercase(), "limit": 1000}),
    );
    assert!(
        theirs["invoices"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["relation_id"] == customer)
    );
    assert!(
        w.error("get_sales_invoices", json!({"customer_id": "' or 1 eq 1"}))
            .contains("GUID")
    );

    let payables: i64 = w
        .sandbox
        .rows(1_000_001, "read/financial/PayablesList")
        .iter()
        .map(|r| cents(&r["Amount"]))
        .sum();
    let purchases = w.ok("get_purchase_invoices", json!({"limit": 1000}));
    assert_eq!(cents(&purchases["open_total"]), payables);

    let bank = w.ok(
        "get_bank_transactions",
        json!({"from_date": "2025-01-01", "to_date": "2025-12-31", "limit": 5000}),
    );
    let lines = w
        .sandbox
        .rows(1_000_001, "financialtransaction/TransactionLines");
    let bank_2025: i64 = lines
        .iter()
        .filter(|l| {
            l["GLAccountCode"] == "1100" && l["FinancialYear"] == 2025 && l["JournalCode"] == "20"
        })
        .map(|l| cents(&l["AmountDC"]))
        .sum();
    assert_eq!(
        cents(&bank["net"]),
        bank_2025,
        "bank lines equal the bank account's movements"
    );
    assert_eq!(
        cents(&bank["received"]) - cents(&bank["paid"]),
        cents(&bank["net"])
    );
    assert!(
        w.error(
            "get_bank_transactions",
            json!({"from_date": "2025-12-31", "to_date": "2025-01-01"})
        )
        .contains("from_date")
    );
}

#[test]
fn vat_cashflow_and_snapshot_agree_with_the_books_and_each_other() {
    let w = world(Plan::Pro);
    let lines = w
        .sandbox
        .rows(1_000_001, "financialtransaction/TransactionLines");
    let vat = w.ok("get_vat_summary", json!({"year": 2025, "quarter": 2}));
    assert_eq!(
        (vat["period_from"].as_i64(), vat["period_to"].as_i64()),
        (Some(4), Some(6))
    );
    let q2: Vec<_> = lines
        .iter()
        .filter(|l| {
            l["FinancialYear"] == 2025
                && (4..=6).contains(&l["FinancialPeriod"].as_i64().unwrap())
                && l["GLAccountCode"].as_str().unwrap().starts_with("15")
        })
        .collect();
    let credit: i64 = q2
        .iter()
        .map(|l| cents(&l["AmountDC"]))
        .filter(|c| *c < 0)
        .map(|c| -c)
        .sum();
    let debit: i64 = q2
        .iter()
        .map(|l| cents(&l["AmountDC"]))
        .filter(|c| *c > 0)
        .sum();
    assert_eq!(
        (cents(&vat["vat_to_pay"]), cents(&vat["vat_to_claim"])),
        (credit, debit)
    );
    assert_eq!(cents(&vat["balance"]), credit - debit);
    assert!(
        w.error("get_vat_summary", json!({"quarter": 1, "period": 2}))
            .contains("either")
    );

    let cf = w.ok("get_cashflow_forecast", json!({"forecast_days": 90}));
    let bank: i64 = lines
        .iter()
        .filter(|l| l["GLAccountCode"] == "1100")
        .map(|l| cents(&l["AmountDC"]))
        .sum();
    assert_eq!(
        cents(&cf["bank_balance"]),
        bank,
        "every year carried forward"
    );
    assert_eq!(
        cents(&cf["forecast_balance"]),
        cents(&cf["bank_balance"]) + cents(&cf["expected_in"]) - cents(&cf["expected_out"])
    );
    let open = w.ok("get_outstanding_invoices", json!({}));
    assert!(cents(&cf["expected_in"]) <= cents(&open["receivables"]["total"]));
    assert!(
        w.error("get_cashflow_forecast", json!({"forecast_days": 45}))
            .contains("30, 60 or 90")
    );

    let snap = w.ok("get_financial_snapshot", json!({}));
    assert_eq!(cents(&snap["cash"]), bank);
    assert_eq!(
        cents(&snap["receivables"]),
        cents(&open["receivables"]["total"])
    );
    assert_eq!(cents(&snap["payables"]), cents(&open["payables"]["total"]));
    assert_eq!(
        cents(&snap["receivables_overdue"]),
        cents(&open["receivables"]["overdue_total"])
    );
    let year = snap["year"].as_i64().unwrap();
    let month =
        chrono::Datelike::month(&boekhouding_core::ports::Clock::now(&w.platform.clock)) as i64;
    let pl = w.ok(
        "get_profit_loss",
        json!({"year": year, "period_from": 1, "period_to": month}),
    );
    assert_eq!(
        (cents(&snap["revenue_ytd"]), cents(&snap["result_ytd"])),
        (cents(&pl["revenue"]), cents(&pl["result"]))
    );
}

/// What clients see in `tools/list`, pinned: a renamed field or a changed
/// schema fails here loudly. Regenerate with `UPDATE_SNAPSHOTS=1`.
#[test]
fn tools_list_snapshot() {
    let w = world(Plan::Pro);
    let host = Bookkeeping {
        platform: &w.platform,
        principal: &w.principal,
        portal_url: "https://portal.example",
        exact: Some(&w.settings),
    };
    let tools = host.tools();
    let names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), names.len(), "unique names");
    assert_eq!(names.len(), 31 + LIST_TOOLS.len());
    for (tool, ..) in LIST_TOOLS {
        assert!(names.contains(tool), "{tool} missing");
    }
    // The original product's catalogue, beyond the plain lists.
    for tool in [
        "get_aging_analysis",
        "get_budget_comparison",
        "get_wip_overview",
        "get_cost_center_report",
        "get_document_content",
        "get_sales_funnel",
        "get_purchase_contracts",
        "get_recurring_revenue",
        "get_margin_analysis",
        "get_customer_360",
        "get_consolidated_report",
        "get_period_close_check",
        "explain_change",
    ] {
        assert!(names.contains(&tool), "{tool} missing");
    }
    for t in &tools {
        assert_eq!(t["inputSchema"]["type"], "object", "{}", t["name"]);
        assert_eq!(t["outputSchema"]["type"], "object", "{}", t["name"]);
        assert_eq!(t["annotations"]["readOnlyHint"], true);
        let d = t["description"].as_str().unwrap();
        assert!(d.len() > 80, "{} needs a real description", t["name"]);
    }
    let rendered = serde_json::to_string_pretty(&Value::Array(tools)).unwrap() + "\n";
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/tools_list.json");
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, &rendered).unwrap();
    }
    let pinned = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        pinned == rendered,
        "tools/list changed; review and run with UPDATE_SNAPSHOTS=1 to accept"
    );
}

#[test]
fn reference_data_is_cached_per_connection_and_division() {
    let w = world(Plan::Pro);
    let before = w.sandbox.requests().len();
    let first = w.ok("get_profit_loss", json!({"year": 2025}));
    let cold = w.sandbox.requests().len() - before;
    let second = w.ok("get_profit_loss", json!({"year": 2025}));
    let warm = w.sandbox.requests().len() - before - cold;
    assert_eq!(first, second, "the cache does not change answers");
    assert_eq!(warm + 1, cold, "the chart of accounts came from the cache");
    assert_eq!(w.platform.cache.len(), 1);
    w.ok(
        "get_profit_loss",
        json!({"year": 2025, "division": 1_000_002}),
    );
    assert_eq!(w.platform.cache.len(), 2, "one entry per administration");
}

/// Every string argument of every tool gets hostile text: the answer is an
/// ordinary result or an actionable tool error, never a crash, never
/// another tenant's data, never an internal detail.
#[test]
fn hostile_text_in_every_string_argument_is_harmless() {
    let w = world(Plan::Pro);
    let host = Bookkeeping {
        platform: &w.platform,
        principal: &w.principal,
        portal_url: "https://portal.example",
        exact: Some(&w.settings),
    };
    let hostile = [
        "' or 1 eq 1 or Name eq '",
        "x') or substringof('', Name) or ('",
        "&$top=1&$filter=Name ne ''",
        "'; DROP TABLE users; --",
        "guid'00000000-0000-0000-0000-000000000000'",
        "../../../etc/passwd",
        "\u{0000}\u{202e}\u{feff}",
        "%27%20or%20true",
    ];
    let mut calls = 0;
    for tool in host.tools() {
        let name = tool["name"].as_str().unwrap();
        let props = tool["inputSchema"]["properties"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        for (arg, schema) in props.iter().filter(|(_, s)| s["type"] == "string") {
            for text in hostile {
                let mut args = json!({arg.clone(): text});
                if name == "search_relations" && arg != "query" {
                    args["query"] = json!("bakker");
                }
                calls += 1;
                match block_on(host.call(name, args.clone())) {
                    ToolCallOutcome::Ok {
                        structured,
                        text: rendered,
                    } => {
                        // A filter that matched nothing, never widened to
                        // everything.
                        let shown = structured.to_string() + &rendered;
                        assert!(
                            !shown.contains("1000004"),
                            "{name}({args}) leaked another administration"
                        );
                        if let Some(n) = structured["count"].as_u64() {
                            assert_eq!(n, 0, "{name}({args}) widened the query");
                        }
                    }
                    ToolCallOutcome::ToolError(message) => {
                        for leak in ["StorageError", "SQLITE", "panicked", "sealed", "stampNL"] {
                            assert!(
                                !message.contains(leak),
                                "{name}({args}) leaked {leak}: {message}"
                            );
                        }
                    }
                    ToolCallOutcome::UnknownTool => panic!("{name} vanished"),
                }
                let _ = schema;
            }
        }
    }
    assert!(calls > 40, "{calls} hostile calls");
}

/// The bound a string argument's schema declares: `maxLength`, the
/// longest `enum` value, or the 10 characters of an ISO `date`.
fn declared_string_bound(schema: &Value) -> Option<usize> {
    if let Some(n) = schema["maxLength"].as_u64() {
        return Some(n as usize);
    }
    if let Some(options) = schema["enum"].as_array() {
        return options.iter().filter_map(Value::as_str).map(str::len).max();
    }
    (schema["format"] == "date").then_some(10)
}

fn schema_types(schema: &Value) -> Vec<String> {
    match &schema["type"] {
        Value::String(t) => vec![t.clone()],
        Value::Array(ts) => ts
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

#[test]
fn every_array_and_string_argument_is_bounded_by_its_schema_and_refused_past_it_before_any_work() {
    let w = world(Plan::Enterprise);
    let host = Bookkeeping {
        platform: &w.platform,
        principal: &w.principal,
        portal_url: "https://portal.example",
        exact: Some(&w.settings),
    };
    let guid = "00000000-0000-0000-0000-000000000001";
    let mut refused = 0;
    for tool in host.tools() {
        let name = tool["name"].as_str().unwrap();
        let props = tool["inputSchema"]["properties"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        for (arg, schema) in &props {
            let types = schema_types(schema);
            let mut hostile: Vec<Value> = Vec::new();
            if types.iter().any(|t| t == "array") {
                let max = schema["maxItems"]
                    .as_u64()
                    .unwrap_or_else(|| panic!("{name}.{arg}: an array argument declares maxItems"));
                // Distinct valid-looking elements: the list's size alone must
                // be refused, before any per-element work.
                hostile.push(json!((1..=45_000).collect::<Vec<i64>>()));
                hostile.push(json!((1..=max as i64 + 1).collect::<Vec<i64>>()));
            }
            if types.iter().any(|t| t == "string") {
                let bound = declared_string_bound(schema).unwrap_or_else(|| {
                    panic!(
                        "{name}.{arg}: a string argument declares maxLength, enum or a date format"
                    )
                });
                hostile.push(json!("9".repeat(bound + 1)));
                hostile.push(json!("9".repeat(200_000)));
            }
            for value in hostile {
                let mut args = realistic_arguments(name);
                for id in ["customer_id", "attachment_id"] {
                    if props.contains_key(id) && schema_types(&props[id]) == ["string"] {
                        args[id] = json!(guid);
                    }
                }
                if name == "search_relations" {
                    args["query"] = json!("bakker");
                }
                args[arg.as_str()] = value.clone();
                let before = w.sandbox.requests().len();
                let outcome = block_on(host.call(name, args));
                let size = value
                    .as_array()
                    .map_or_else(|| value.as_str().map_or(0, str::len), Vec::len);
                match outcome {
                    ToolCallOutcome::ToolError(m) => assert!(
                        m.contains(&format!("`{arg}`")),
                        "{name}.{arg} ({size}): the error does not name the argument: {m}"
                    ),
                    other => panic!("{name}.{arg} ({size}) past its bound was accepted: {other:?}"),
                }
                assert_eq!(
                    w.sandbox.requests().len(),
                    before,
                    "{name}.{arg} ({size}): Exact was called before the argument was refused"
                );
                refused += 1;
            }
        }
    }
    assert!(refused > 100, "{refused} hostile calls refused");
}

impl World {
    fn rpc(&self, method: &str, params: Value, era: Era) -> Result<Value, RpcError> {
        let host = Bookkeeping {
            platform: &self.platform,
            principal: &self.principal,
            portal_url: "https://portal.example",
            exact: Some(&self.settings),
        };
        let engine = Engine::new(ServerIdentity {
            name: "t".into(),
            title: "T".into(),
            version: "0".into(),
            instructions: String::new(),
        });
        block_on(engine.dispatch(&host, method, &params, era))
    }

    fn prompt_text(&self, name: &str, args: Value) -> String {
        let r = self
            .rpc(
                "prompts/get",
                json!({"name": name, "arguments": args}),
                Era::Legacy,
            )
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(r["messages"][0]["role"], "user");
        r["messages"][0]["content"]["text"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

/// Adds a second Exact connection for the world's user, in Belgium, whose
/// one administration has the same division code as the Dutch 1000001
/// (codes are unique per Exact site only). Returns both connection ids.
fn belgian_twin(w: &World) -> (String, String) {
    let app = w.settings.app_for(Region::Be);
    let code = login(&w.platform.http, &app);
    let now = boekhouding_core::ports::Clock::now(&w.platform.clock);
    let tokens = block_on(oauth::exchange_code(&w.platform.http, &app, &code, now))
        .unwrap()
        .into_exact_tokens();
    let be = block_on(connections::connect(
        &w.platform.db,
        &w.platform.rng,
        &w.settings.keyring,
        &NewConnection {
            user_id: &w.principal.user_id,
            region: Region::Be,
            identity: &ExactIdentity::default(),
            tokens: &tokens,
        },
        now,
    ))
    .unwrap();
    block_on(administrations::sync_for_connection(
        &w.platform.db,
        &w.platform.rng,
        &be.id,
        Plan::Enterprise,
        &[DivisionInfo {
            code: 1_000_001,
            name: "Filiaal België BV".into(),
        }],
        None,
        now,
    ))
    .unwrap();
    let nl = block_on(connections::list_for_user(
        &w.platform.db,
        &w.principal.user_id,
    ))
    .unwrap()
    .into_iter()
    .find(|c| c.region == Region::Nl)
    .unwrap();
    (nl.id, be.id)
}

#[test]
fn a_division_code_at_two_exact_sites_is_never_guessed_and_the_region_picks_the_right_one() {
    let w = world(Plan::Enterprise);
    let (nl, be) = belgian_twin(&w);
    let last_used = |id: &str| {
        block_on(connections::find_by_id(&w.platform.db, id))
            .unwrap()
            .unwrap()
            .last_used_at
    };
    assert!(last_used(&nl).is_none() && last_used(&be).is_none());

    // The bare code is refused with the candidates an assistant can use.
    for args in [
        json!({"division": 1_000_001}),
        json!({"division": "1000001"}),
    ] {
        let m = w.error("get_gl_accounts", args);
        assert!(
            m.contains("\"be:1000001\"")
                && m.contains("be:1000001 (Filiaal België BV)")
                && m.contains("nl:1000001 (Bakkerij"),
            "{m}"
        );
    }
    assert!(
        last_used(&nl).is_none() && last_used(&be).is_none(),
        "no connection was used"
    );

    // With its region each reaches its own connection.
    let r = w.ok("get_gl_accounts", json!({"division": "be:1000001"}));
    assert_eq!(r["division"], 1_000_001);
    assert!(
        last_used(&be).is_some() && last_used(&nl).is_none(),
        "the Belgian connection served it"
    );
    w.ok("get_gl_accounts", json!({"division": "nl:1000001"}));
    assert!(last_used(&nl).is_some(), "the Dutch connection served it");
    // A code at one site only still needs no region; a wrong region is refused.
    w.ok("get_gl_accounts", json!({"division": 1_000_002}));
    assert!(
        w.error("get_gl_accounts", json!({"division": "be:1000002"}))
            .contains("not one of")
    );

    // list_divisions says how to name each administration.
    let listed = w.ok("list_divisions", json!({}));
    let refs: Vec<&str> = listed["administrations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["division_ref"].as_str().unwrap())
        .collect();
    for expected in ["nl:1000001", "be:1000001", "1000002"] {
        assert!(refs.contains(&expected), "{refs:?}");
    }

    // The consolidated report never guesses either, and takes both sites.
    let m = w.error(
        "get_consolidated_report",
        json!({"divisions": [1_000_001, 1_000_002]}),
    );
    assert!(m.contains("\"be:1000001\""), "{m}");
    let both = w.ok(
        "get_consolidated_report",
        json!({"divisions": ["nl:1000001", "be:1000001"], "year": 2025}),
    );
    let regions: Vec<&str> = both["administrations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["region"].as_str().unwrap())
        .collect();
    assert_eq!(regions, ["nl", "be"]);

    // Prompts name the administration as the tools need it.
    let text = w.prompt_text(
        "financial_analysis",
        json!({"division": "be:1000001", "language": "en"}),
    );
    assert!(text.contains("division be:1000001"), "{text}");
    let refused = w.rpc(
        "prompts/get",
        json!({"name": "financial_analysis", "arguments": {"division": "1000001"}}),
        Era::Legacy,
    );
    assert!(
        refused.is_err_and(|e| e.message.contains("be:1000001")),
        "an ambiguous prompt division was accepted"
    );
}

#[test]
fn every_prompt_is_served_in_dutch_and_english_for_the_callers_administrations() {
    let w = world(Plan::Enterprise);
    let listed = w.rpc("prompts/list", json!({}), Era::Legacy).unwrap();
    let names: Vec<&str> = listed["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "financial_analysis",
            "invoice_summary",
            "cash_flow_overview",
            "financial_health_check",
            "debtor_collection",
            "vat_preparation"
        ]
    );
    let company = |code: i64| {
        w.sandbox
            .dataset()
            .companies
            .iter()
            .find(|c| c.division == code)
            .unwrap()
            .name
            .clone()
    };
    let default = w.sandbox.dataset().login("demo").unwrap().current_division;
    for name in names {
        let nl = w.prompt_text(name, json!({}));
        let en = w.prompt_text(name, json!({"language": "en", "division": "1000002"}));
        assert!(nl.contains(&company(default)), "{name}: {nl}");
        assert!(
            en.contains(&company(1_000_002)) && en.contains("division 1000002"),
            "{name}: {en}"
        );
        assert_ne!(nl, en);
        // Every tool a prompt names exists.
        let tools = w.rpc("tools/list", json!({}), Era::Legacy).unwrap();
        for word in en.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if word.starts_with("get_") {
                assert!(
                    tools["tools"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|t| t["name"] == word),
                    "{name} names unknown tool {word}"
                );
            }
        }
    }
    let vat = w.prompt_text(
        "vat_preparation",
        json!({"period": "2026-q3", "language": "en"}),
    );
    assert!(vat.contains("2026-Q3 (2026-07-01 to 2026-09-30)"), "{vat}");

    // Wrong input is refused with the reason, nothing else.
    for (name, args, says) in [
        (
            "financial_analysis",
            json!({"division": "1000004"}),
            "not one of your administrations",
        ),
        (
            "financial_analysis",
            json!({"division": "x'; DROP TABLE users"}),
            "division code",
        ),
        (
            "vat_preparation",
            json!({"period": "2026-Q5"}),
            "quarter like 2026-Q3",
        ),
        (
            "invoice_summary",
            json!({"type": "credit"}),
            "sales or purchase",
        ),
        ("cash_flow_overview", json!({"months": "48"}), "1 to 12"),
        ("debtor_collection", json!({"language": "de"}), "nl or en"),
        (
            "financial_health_check",
            json!({"year": "2026"}),
            "Unknown argument",
        ),
        ("no_such_prompt", json!({}), "Unknown prompt"),
    ] {
        let e = w
            .rpc(
                "prompts/get",
                json!({"name": name, "arguments": args}),
                Era::Legacy,
            )
            .unwrap_err();
        assert_eq!(e.code, -32602, "{name}");
        assert!(e.message.contains(says), "{name}: {}", e.message);
    }
    let e = w
        .rpc(
            "prompts/get",
            json!({"name": "invoice_summary", "arguments": {"type": 1}}),
            Era::Legacy,
        )
        .unwrap_err();
    assert_eq!(e.code, -32602);
}

#[test]
fn resources_show_the_account_and_never_another_tenant_or_a_token() {
    let w = world(Plan::Starter);
    let listed = w.rpc("resources/list", json!({}), Era::Legacy).unwrap();
    let uris: Vec<&str> = listed["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["uri"].as_str().unwrap())
        .collect();
    assert_eq!(uris, ["exact://divisions", "exact://connections"]);
    let templates = w
        .rpc("resources/templates/list", json!({}), Era::Legacy)
        .unwrap();
    assert_eq!(
        templates["resourceTemplates"][0]["uriTemplate"],
        "exact://divisions/{division}"
    );

    let read = |uri: &str| -> Value {
        let r = w
            .rpc("resources/read", json!({"uri": uri}), Era::Legacy)
            .unwrap();
        assert_eq!(r["contents"][0]["uri"], uri);
        assert_eq!(r["contents"][0]["mimeType"], "application/json");
        serde_json::from_str(r["contents"][0]["text"].as_str().unwrap()).unwrap()
    };
    let divisions = read("exact://divisions");
    assert_eq!(divisions["count"], 3, "{divisions}");
    // The starter plan allows fewer administrations than the user has.
    let usable = divisions["administrations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["usable"] == true)
        .count() as u64;
    assert_eq!(
        usable as i64,
        Plan::Starter.limits().administrations.cap_for_sql().min(3)
    );

    let conns = read("exact://connections");
    assert_eq!(conns["connections"][0]["status"], "active");
    assert_eq!(conns["connections"][0]["needs_reconnect"], false);
    let conn = block_on(connections::list_for_user(
        &w.platform.db,
        &w.principal.user_id,
    ))
    .unwrap()
    .remove(0);
    let (access, refresh) = connections::open_tokens(&w.settings.keyring, &conn).unwrap();
    let text = conns.to_string();
    for secret in [
        access.expose(),
        refresh.expose(),
        conn.access_token_sealed.as_str(),
    ] {
        assert!(!text.contains(secret));
    }

    let one = read("exact://divisions/1000002");
    assert_eq!(one["division"], 1_000_002);
    assert_eq!(one["connection"]["status"], "active");
    // Another tenant's administration and nonsense are simply not found.
    for uri in [
        "exact://divisions/1000004",
        "exact://divisions/abc",
        "exact://nope",
        "file:///etc/passwd",
    ] {
        let e = w
            .rpc("resources/read", json!({"uri": uri}), Era::Legacy)
            .unwrap_err();
        assert_eq!(e.code, -32002, "{uri}");
        assert_eq!(e.data.unwrap()["uri"], uri);
    }
}

#[test]
fn completions_offer_the_callers_administrations_periods_and_choices() {
    let w = world(Plan::Enterprise);
    let complete = |reference: Value, arg: &str, typed: &str| -> Vec<String> {
        let r = w
            .rpc(
                "completion/complete",
                json!({"ref": reference, "argument": {"name": arg, "value": typed}}),
                Era::Legacy,
            )
            .unwrap();
        assert!(
            r["completion"]["total"].as_u64().unwrap() <= 100 || r["completion"]["hasMore"] == true
        );
        serde_json::from_value(r["completion"]["values"].clone()).unwrap()
    };
    let prompt = json!({"type": "ref/prompt", "name": "vat_preparation"});
    assert_eq!(
        complete(prompt.clone(), "division", ""),
        ["1000001", "1000002", "1000003"]
    );
    let bakery = w
        .sandbox
        .dataset()
        .companies
        .iter()
        .find(|c| c.division == 1_000_001)
        .unwrap()
        .name
        .to_lowercase();
    let word = bakery.split_whitespace().next().unwrap();
    assert_eq!(
        complete(prompt.clone(), "division", word),
        ["1000001"],
        "{word}"
    );
    assert!(complete(prompt.clone(), "division", "1000004").is_empty());
    let year = chrono::Utc::now().format("%Y").to_string();
    let quarters = complete(prompt.clone(), "period", &format!("{year}-Q"));
    assert!(!quarters.is_empty() && quarters.iter().all(|q| q.starts_with(&format!("{year}-Q"))));
    assert_eq!(complete(prompt.clone(), "language", "E"), ["en"]);
    let template = json!({"type": "ref/resource", "uri": "exact://divisions/{division}"});
    assert_eq!(complete(template, "division", "100000").len(), 3);
    let e = w
        .rpc(
            "completion/complete",
            json!({"ref": prompt, "argument": {"name": "nonsense", "value": ""}}),
            Era::Legacy,
        )
        .unwrap_err();
    assert_eq!(e.code, -32602);
}

#[test]
fn prompts_and_resources_are_served_in_the_stateless_revision_too() {
    let w = world(Plan::Enterprise);
    for (method, params) in [
        ("prompts/list", json!({})),
        ("resources/list", json!({})),
        ("resources/templates/list", json!({})),
    ] {
        let r = w.rpc(method, params, Era::Modern).unwrap();
        assert_eq!(r["resultType"], "complete", "{method}");
        assert_eq!(r["ttlMs"], 60_000, "{method}");
    }
    let r = w
        .rpc(
            "prompts/get",
            json!({"name": "financial_health_check"}),
            Era::Modern,
        )
        .unwrap();
    assert_eq!(r["resultType"], "complete");
    assert!(
        r["messages"][0]["content"]["text"]
            .as_str()
            .unwrap()
            .contains("get_aging_receivables")
    );
    let r = w
        .rpc(
            "resources/read",
            json!({"uri": "exact://divisions"}),
            Era::Modern,
        )
        .unwrap();
    assert_eq!(r["resultType"], "complete");
    // A resource shows live connection health: cacheable by this caller
    // only, and stale at once.
    assert_eq!(r["ttlMs"], 0);
    assert_eq!(r["cacheScope"], "private");
    let caps = w
        .rpc(
            "initialize",
            json!({"protocolVersion": "2025-11-25"}),
            Era::Legacy,
        )
        .unwrap()["capabilities"]
        .clone();
    for c in ["tools", "prompts", "resources", "completions"] {
        assert!(caps.get(c).is_some(), "{c} missing from {caps}");
    }
}

/// Each declared list tool: (tool, Exact entity, result key, amount field
/// of the sandbox rows summed into `total`).
const LIST_TOOLS: &[(&str, &str, &str, Option<&str>)] = &[
    (
        "get_sales_orders",
        "salesorder/SalesOrders",
        "orders",
        Some("AmountDC"),
    ),
    (
        "get_purchase_orders",
        "purchaseorder/PurchaseOrders",
        "orders",
        Some("AmountDC"),
    ),
    (
        "get_quotations",
        "crm/Quotations",
        "quotations",
        Some("AmountDC"),
    ),
    ("get_items", "logistics/Items", "items", None),
    (
        "get_stock_positions",
        "inventory/StockPositions",
        "positions",
        None,
    ),
    (
        "get_projects",
        "project/Projects",
        "projects",
        Some("BudgetedAmount"),
    ),
    (
        "get_time_transactions",
        "project/TimeTransactions",
        "entries",
        Some("AmountFC"),
    ),
    (
        "get_project_invoices",
        "project/InvoiceTerms",
        "terms",
        Some("Amount"),
    ),
    ("get_currencies", "general/Currencies", "currencies", None),
    (
        "get_currency_rates",
        "financial/ExchangeRates",
        "rates",
        None,
    ),
    ("get_cost_centers", "hrm/Costcenters", "cost_centers", None),
    (
        "get_fixed_assets",
        "assets/Assets",
        "assets",
        Some("PurchasePrice"),
    ),
    (
        "get_depreciation_schedule",
        "assets/DepreciationSchedules",
        "lines",
        Some("Amount"),
    ),
    (
        "get_opportunities",
        "crm/Opportunities",
        "opportunities",
        Some("AmountDC"),
    ),
    (
        "get_sales_contracts",
        "subscription/Subscriptions",
        "contracts",
        None,
    ),
    (
        "get_sales_prices",
        "logistics/SalesItemPrices",
        "prices",
        None,
    ),
    (
        "get_journal_entries",
        "generaljournalentry/GeneralJournalEntries",
        "entries",
        None,
    ),
    (
        "get_document_attachments",
        "documents/DocumentAttachments",
        "attachments",
        None,
    ),
    (
        "get_purchase_prices",
        "logistics/SupplierItem",
        "prices",
        None,
    ),
    (
        "search_transactions",
        "financialtransaction/TransactionLines",
        "lines",
        Some("AmountDC"),
    ),
];

fn sum_cents(rows: &[serde_json::Map<String, Value>], field: &str) -> i64 {
    rows.iter().map(|r| cents(&r[field])).sum()
}

#[test]
fn every_list_tool_ties_out_with_the_sandbox_in_every_administration() {
    let w = world(Plan::Enterprise);
    for (tool, entity, key, amount) in LIST_TOOLS {
        for division in [1_000_001i64, 1_000_002, 1_000_003] {
            let source = w.sandbox.rows(division, entity);
            let r = w.ok(tool, json!({"division": division}));
            let listed = r[*key].as_array().unwrap();
            let expected = source.len().min(250);
            assert_eq!(listed.len(), expected, "{tool} in {division}");
            assert_eq!(r["count"], expected as u64, "{tool}");
            assert_eq!(r["truncated"], source.len() > 250, "{tool}");
            if let (Some(field), false) = (amount, source.len() > 250) {
                assert_eq!(
                    cents(&r["total"]),
                    sum_cents(&source, field),
                    "{tool} total in {division}"
                );
            }
        }
    }
    // A small limit truncates and says so.
    let busiest = [1_000_001i64, 1_000_002, 1_000_003]
        .into_iter()
        .max_by_key(|d| w.sandbox.rows(*d, "project/TimeTransactions").len())
        .unwrap();
    assert!(w.sandbox.rows(busiest, "project/TimeTransactions").len() > 3);
    let r = w.ok(
        "get_time_transactions",
        json!({"division": busiest, "limit": 3}),
    );
    assert_eq!(
        (r["count"].as_u64(), r["truncated"].as_bool()),
        (Some(3), Some(true))
    );
}

#[test]
fn list_tool_filters_select_exactly_the_matching_rows() {
    let w = world(Plan::Enterprise);
    let d = 1_000_002;
    let day =
        |v: &Value| boekhouding_core::exact::dates::parse_odata_day(v.as_str().unwrap_or("")).ok();
    let orders = w.sandbox.rows(d, "salesorder/SalesOrders");
    let open = orders.iter().filter(|o| o["Status"] == 12).count();
    let r = w.ok("get_sales_orders", json!({"division": d, "status": "open"}));
    assert_eq!(r["count"], open as u64);
    let from = chrono::NaiveDate::from_ymd_opt(2026, 3, 1).unwrap();
    let to = chrono::NaiveDate::from_ymd_opt(2026, 6, 30).unwrap();
    let in_range: Vec<_> = orders
        .iter()
        .filter(|o| day(&o["OrderDate"]).is_some_and(|x| x >= from && x <= to))
        .collect();
    let r = w.ok(
        "get_sales_orders",
        json!({"division": d, "from_date": "2026-03-01", "to_date": "2026-06-30"}),
    );
    assert_eq!(r["count"], in_range.len() as u64);
    assert!(r["orders"].as_array().unwrap().iter().all(|o| {
        let x = o["date"].as_str().unwrap();
        ("2026-03-01"..="2026-06-30").contains(&x)
    }));

    let hours = w.sandbox.rows(d, "project/TimeTransactions");
    if let Some(p) = hours
        .first()
        .map(|h| h["ProjectCode"].as_str().unwrap().to_owned())
    {
        let expected = hours
            .iter()
            .filter(|h| h["ProjectCode"] == p.as_str())
            .count()
            .min(250);
        let r = w.ok(
            "get_time_transactions",
            json!({"division": d, "project": p}),
        );
        assert_eq!(r["count"], expected as u64);
    }
    let rates = w.sandbox.rows(d, "financial/ExchangeRates");
    let usd = rates
        .iter()
        .filter(|r| r["TargetCurrency"] == "USD")
        .count();
    let r = w.ok(
        "get_currency_rates",
        json!({"division": d, "currency": "USD"}),
    );
    assert_eq!(r["count"], usd as u64);
    let dep = w.sandbox.rows(d, "assets/DepreciationSchedules");
    let y2026 = dep.iter().filter(|r| r["Year"] == 2026).count();
    let r = w.ok(
        "get_depreciation_schedule",
        json!({"division": d, "year": 2026}),
    );
    assert_eq!(r["count"], y2026 as u64);

    // Hostile and invalid arguments are refused or harmless, never injected.
    for (tool, args, says) in [
        (
            "get_sales_orders",
            json!({"status": "shipped"}),
            "must be one of",
        ),
        (
            "get_sales_orders",
            json!({"from_date": "2026-07-01", "to_date": "2026-01-01"}),
            "must not be after",
        ),
        (
            "get_sales_orders",
            json!({"from_date": "01-07-2026"}),
            "YYYY-MM-DD",
        ),
        (
            "get_depreciation_schedule",
            json!({"year": 1999}),
            "2000 to 2100",
        ),
        (
            "get_currencies",
            json!({"currency": "USD"}),
            "Unknown argument",
        ),
        ("get_journal_entries", json!({"period": 13}), "1 to 12"),
    ] {
        let m = w.error(tool, args);
        assert!(m.contains(says), "{tool}: {m}");
    }
    let r = w.ok(
        "get_currency_rates",
        json!({"division": d, "currency": "X'Y"}),
    );
    assert_eq!(r["count"], 0);
    let r = w.ok(
        "get_items",
        json!({"division": d, "search": "' or 1 eq 1 or '"}),
    );
    assert_eq!(r["count"], 0);
}

#[test]
fn the_sales_funnel_and_recurring_revenue_tie_out_with_the_opportunities_and_subscriptions() {
    let w = world(Plan::Enterprise);
    for d in [1_000_001i64, 1_000_002, 1_000_003] {
        let opps = w.sandbox.rows(d, "crm/Opportunities");
        let open: Vec<_> = opps
            .iter()
            .filter(|o| o["OpportunityStatus"] == 1)
            .collect();
        let r = w.ok("get_sales_funnel", json!({"division": d}));
        assert_eq!(r["count"], open.len() as u64, "{d}");
        let amount: i64 = open.iter().map(|o| cents(&o["AmountDC"])).sum();
        assert!((cents(&r["amount"]) - amount).abs() <= 1, "{d}");
        let weighted: f64 = open
            .iter()
            .map(|o| o["AmountDC"].as_f64().unwrap() * o["Probability"].as_f64().unwrap())
            .sum();
        assert!(
            (r["weighted_amount"].as_f64().unwrap() - weighted).abs()
                < 0.05 * open.len().max(1) as f64
        );
        let stage_total: u64 = r["stages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["count"].as_u64().unwrap())
            .sum();
        assert_eq!(stage_total, open.len() as u64);
        let all = w.ok(
            "get_sales_funnel",
            json!({"division": d, "include_closed": true}),
        );
        let won = opps.iter().filter(|o| o["OpportunityStatus"] == 2).count() as u64;
        let lost = opps.iter().filter(|o| o["OpportunityStatus"] == 3).count() as u64;
        assert_eq!(
            (all["won"].as_u64(), all["lost"].as_u64()),
            (Some(won), Some(lost))
        );
        if won + lost > 0 {
            let rate = won as f64 / (won + lost) as f64;
            assert!((all["win_rate"].as_f64().unwrap() - rate).abs() < 1e-9);
        }

        // MRR on a fixed date from the subscriptions and their lines.
        let as_of = chrono::NaiveDate::from_ymd_opt(2026, 6, 30).unwrap();
        let day = |v: &Value| {
            boekhouding_core::exact::dates::parse_odata_day(v.as_str().unwrap_or("")).ok()
        };
        let subs = w.sandbox.rows(d, "subscription/Subscriptions");
        let lines = w.sandbox.rows(d, "subscription/SubscriptionLines");
        let active: Vec<_> = subs
            .iter()
            .filter(|s| {
                day(&s["StartDate"]).is_some_and(|x| x <= as_of)
                    && day(&s["EndDate"]).is_none_or(|x| x >= as_of)
            })
            .collect();
        let mrr: i64 = active
            .iter()
            .map(|s| {
                lines
                    .iter()
                    .filter(|l| l["EntryID"] == s["EntryID"])
                    .map(|l| cents(&l["AmountDC"]))
                    .sum::<i64>()
            })
            .sum();
        let r = w.ok(
            "get_recurring_revenue",
            json!({"division": d, "as_of": "2026-06-30"}),
        );
        assert_eq!(r["active_contracts"], active.len() as u64, "{d}");
        assert_eq!(cents(&r["mrr"]), mrr, "{d}");
        assert_eq!(cents(&r["arr"]), mrr * 12, "{d}");
    }
}

#[test]
fn the_aging_analysis_is_both_aging_tools_in_one_with_the_net_position() {
    let w = world(Plan::Enterprise);
    let both = w.ok("get_aging_analysis", json!({"division": 1_000_002}));
    let rec = w.ok("get_aging_receivables", json!({"division": 1_000_002}));
    let pay = w.ok("get_aging_payables", json!({"division": 1_000_002}));
    assert_eq!(both["receivables"], rec);
    assert_eq!(both["payables"], pay);
    assert_eq!(
        cents(&both["net_position"]),
        cents(&rec["total"]) - cents(&pay["total"])
    );
    assert!(
        w.error("get_aging_analysis", json!({"division": 1_000_004}))
            .contains("not one of")
    );
}

#[test]
fn the_budget_comparison_ties_out_with_the_budgets_and_the_profit_and_loss() {
    let w = world(Plan::Enterprise);
    for d in [1_000_001i64, 1_000_002] {
        let r = w.ok(
            "get_budget_comparison",
            json!({"division": d, "year": 2025, "period_from": 1, "period_to": 6}),
        );
        let budgets: i64 = w
            .sandbox
            .rows(d, "budget/Budgets")
            .iter()
            .filter(|b| {
                b["ReportingYear"] == 2025 && b["ReportingPeriod"].as_i64().is_some_and(|p| p <= 6)
            })
            .map(|b| cents(&b["AmountDC"]))
            .sum();
        assert_eq!(cents(&r["budget_result"]), -budgets, "{d}");
        let pl = w.ok(
            "get_profit_loss",
            json!({"division": d, "year": 2025, "period_from": 1, "period_to": 6}),
        );
        assert_eq!(cents(&r["actual_result"]), cents(&pl["result"]), "{d}");
        for l in r["lines"].as_array().unwrap() {
            assert_eq!(
                cents(&l["variance"]),
                cents(&l["actual"]) - cents(&l["budget"]),
                "{l}"
            );
        }
    }
    let m = w.error(
        "get_budget_comparison",
        json!({"period_from": 9, "period_to": 3}),
    );
    assert!(m.contains("must not be after"), "{m}");
}

#[test]
fn the_consolidated_report_totals_each_administrations_own_answer() {
    let w = world(Plan::Enterprise);
    let divisions = [1_000_001i64, 1_000_002, 1_000_003];
    let r = w.ok("get_consolidated_report", json!({"year": 2025}));
    assert_eq!(r["administrations"].as_array().unwrap().len(), 3);
    for field in ["revenue", "cost_of_sales", "other_costs", "result"] {
        let sum: i64 = divisions
            .iter()
            .map(|d| cents(&w.ok("get_profit_loss", json!({"division": d, "year": 2025}))[field]))
            .sum();
        assert!((cents(&r["totals"][field]) - sum).abs() <= 1, "{field}");
    }
    let bs = w.ok(
        "get_consolidated_report",
        json!({"report": "balance_sheet", "year": 2025, "divisions": [1_000_001, 1_000_002]}),
    );
    let assets: i64 = [1_000_001i64, 1_000_002]
        .iter()
        .map(|d| {
            cents(
                &w.ok(
                    "get_balance_sheet",
                    json!({"division": d, "date": "2025-12-31"}),
                )["total_assets"],
            )
        })
        .sum();
    assert!((cents(&bs["totals"]["total_assets"]) - assets).abs() <= 1);
    assert!(bs["intercompany"].is_array());
    for (args, says) in [
        (json!({"divisions": [1_000_001, 1_000_004]}), "not one of"),
        (json!({"divisions": [1_000_001]}), "2 to 20"),
        (json!({"divisions": [1_000_001, 1_000_001]}), "distinct"),
        (json!({"divisions": "all"}), "list of division codes"),
    ] {
        let m = w.error("get_consolidated_report", args);
        assert!(m.contains(says), "{m}");
    }
}

#[test]
fn explain_change_accounts_for_the_whole_change_with_its_drivers() {
    let w = world(Plan::Enterprise);
    let d = 1_000_002;
    let r = w.ok(
        "explain_change",
        json!({"division": d, "from_period": "2025-Q1", "to_period": "2026-Q1", "top": 50}),
    );
    let pl = |year: i64| {
        w.ok(
            "get_profit_loss",
            json!({"division": d, "year": year, "period_from": 1, "period_to": 3}),
        )
    };
    let (a, b) = (cents(&pl(2025)["result"]), cents(&pl(2026)["result"]));
    assert_eq!(cents(&r["from"]["value"]), a);
    assert_eq!(cents(&r["to"]["value"]), b);
    assert_eq!(cents(&r["change"]), b - a);
    let drivers = r["drivers"].as_array().unwrap();
    if drivers.len() < 50 {
        let sum: i64 = drivers.iter().map(|x| cents(&x["change"])).sum();
        assert!(
            (sum - (b - a)).abs() <= drivers.len() as i64,
            "{sum} vs {}",
            b - a
        );
    }
    // Ranked by size.
    assert!(
        drivers
            .windows(2)
            .all(|p| p[0]["change"].as_f64().unwrap().abs()
                >= p[1]["change"].as_f64().unwrap().abs())
    );
    let rev = w.ok(
        "explain_change",
        json!({"division": d, "metric": "revenue", "from_period": "2025", "to_period": "2025-06"}),
    );
    assert!(
        rev["drivers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["category"] == "revenue")
    );
    for (args, says) in [
        (
            json!({"from_period": "2025-Q5", "to_period": "2026"}),
            "quarter (2025-Q3)",
        ),
        (json!({"to_period": "2026"}), "is required"),
        (
            json!({"from_period": "2025", "to_period": "2026", "metric": "ebitda"}),
            "must be one of",
        ),
    ] {
        let m = w.error("explain_change", args);
        assert!(m.contains(says), "{m}");
    }
}

#[test]
fn the_customer_overview_ties_out_with_every_source() {
    let w = world(Plan::Enterprise);
    let d = 1_000_002;
    let invoices = w.sandbox.rows(d, "salesinvoice/SalesInvoices");
    // The customer with the most invoices.
    let mut counts = std::collections::BTreeMap::new();
    for i in &invoices {
        *counts
            .entry(i["InvoiceTo"].as_str().unwrap().to_owned())
            .or_insert(0) += 1;
    }
    let (id, n) = counts.into_iter().max_by_key(|(_, n)| *n).unwrap();
    let r = w.ok(
        "get_customer_360",
        json!({"division": d, "customer_id": id}),
    );
    assert_eq!(r["revenue"]["invoices"], n);
    let day =
        |v: &Value| boekhouding_core::exact::dates::parse_odata_day(v.as_str().unwrap_or("")).ok();
    let year = chrono::Datelike::year(&chrono::Utc::now().date_naive());
    let revenue = |y: i32| -> i64 {
        invoices
            .iter()
            .filter(|i| {
                i["InvoiceTo"] == id.as_str()
                    && day(&i["InvoiceDate"]).is_some_and(|x| chrono::Datelike::year(&x) == y)
            })
            .map(|i| cents(&i["AmountDC"]))
            .sum()
    };
    assert_eq!(cents(&r["revenue"]["this_year"]), revenue(year));
    assert_eq!(cents(&r["revenue"]["last_year"]), revenue(year - 1));
    let open: Vec<_> = w
        .sandbox
        .rows(d, "read/financial/ReceivablesList")
        .into_iter()
        .filter(|o| {
            o["AccountId"]
                .as_str()
                .is_some_and(|a| a.eq_ignore_ascii_case(&id))
        })
        .collect();
    assert_eq!(r["open_invoices"]["count"], open.len() as u64);
    assert_eq!(
        cents(&r["open_invoices"]["amount"]),
        open.iter().map(|o| cents(&o["Amount"])).sum::<i64>()
    );
    let count = |path: &str, field: &str, status_field: &str, status: i64| {
        w.sandbox
            .rows(d, path)
            .iter()
            .filter(|o| o[field] == id.as_str() && o[status_field] == status)
            .count() as u64
    };
    assert_eq!(
        r["pipeline"]["open_orders"],
        count("salesorder/SalesOrders", "OrderedBy", "Status", 12)
    );
    assert_eq!(
        r["pipeline"]["open_quotations"],
        count("crm/Quotations", "OrderAccount", "Status", 20)
    );
    assert_eq!(
        r["pipeline"]["open_opportunities"],
        count("crm/Opportunities", "Account", "OpportunityStatus", 1)
    );
    // Bad ids are refused; an unknown or another tenant's id is not found.
    assert!(
        w.error("get_customer_360", json!({"customer_id": "x' or 1 eq 1"}))
            .contains("GUID")
    );
    assert!(w.error("get_customer_360", json!({})).contains("required"));
    let m = w.error(
        "get_customer_360",
        json!({"division": d, "customer_id": "00000000-0000-0000-0000-000000000001"}),
    );
    assert!(m.contains("No relation"), "{m}");
}

#[test]
fn the_margin_analysis_adds_up_to_the_profit_and_loss() {
    let w = world(Plan::Enterprise);
    for d in [1_000_001i64, 1_000_002] {
        let r = w.ok("get_margin_analysis", json!({"division": d, "year": 2025}));
        let pl = w.ok("get_profit_loss", json!({"division": d, "year": 2025}));
        assert_eq!(cents(&r["revenue"]), cents(&pl["revenue"]), "{d}");
        assert_eq!(
            cents(&r["cost_of_sales"]),
            cents(&pl["cost_of_sales"]),
            "{d}"
        );
        assert_eq!(cents(&r["gross_margin"]), cents(&pl["gross_margin"]), "{d}");
        let months = r["months"].as_array().unwrap();
        assert_eq!(
            months.iter().map(|m| cents(&m["revenue"])).sum::<i64>(),
            cents(&r["revenue"])
        );
        let items = w
            .sandbox
            .rows(d, "logistics/Items")
            .iter()
            .filter(|i| i["IsSalesItem"] == true)
            .count();
        assert_eq!(r["items"].as_array().unwrap().len(), items);
    }
}

#[test]
fn work_in_progress_ties_out_with_hours_and_invoice_terms() {
    let w = world(Plan::Enterprise);
    let d = [1_000_001i64, 1_000_002, 1_000_003]
        .into_iter()
        .max_by_key(|d| w.sandbox.rows(*d, "project/Projects").len())
        .unwrap();
    let r = w.ok(
        "get_wip_overview",
        json!({"division": d, "as_of": "2026-06-30"}),
    );
    let cutoff = chrono::NaiveDate::from_ymd_opt(2026, 6, 30).unwrap();
    let day =
        |v: &Value| boekhouding_core::exact::dates::parse_odata_day(v.as_str().unwrap_or("")).ok();
    let value: i64 = w
        .sandbox
        .rows(d, "project/TimeTransactions")
        .iter()
        .filter(|t| day(&t["Date"]).is_some_and(|x| x <= cutoff))
        .map(|t| cents(&t["AmountFC"]))
        .sum();
    let terms: i64 = w
        .sandbox
        .rows(d, "project/InvoiceTerms")
        .iter()
        .filter(|t| day(&t["ExecutionFromDate"]).is_some_and(|x| x <= cutoff))
        .map(|t| cents(&t["Amount"]))
        .sum();
    assert!(value > 0, "the busiest administration has hours");
    assert!((cents(&r["hours_value"]) - value).abs() <= 1);
    assert!((cents(&r["terms_scheduled"]) - terms).abs() <= 1);
    assert!((cents(&r["wip"]) - (value - terms)).abs() <= 1);
    assert_eq!(
        r["projects"].as_array().unwrap().len(),
        w.sandbox.rows(d, "project/Projects").len()
    );
}

#[test]
fn the_period_close_check_finds_drafts_suspense_balances_and_unmatched_bank_lines() {
    let w = world(Plan::Enterprise);
    let d = 1_000_001;
    let lines = w.sandbox.rows(d, "financialtransaction/TransactionLines");
    let today = w.sandbox.dataset().config.today;
    let (y, m) = (
        chrono::Datelike::year(&today),
        chrono::Datelike::month(&today),
    );
    let r = w.ok(
        "get_period_close_check",
        json!({"division": d, "year": y, "period": m}),
    );
    assert_eq!(r["ready"], false);
    let by = |name: &str| {
        r["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["check"] == name)
            .unwrap()
            .clone()
    };
    let drafts: std::collections::BTreeSet<i64> = lines
        .iter()
        .filter(|l| l["Status"] == 20 && l["FinancialYear"] == y && l["FinancialPeriod"] == m)
        .map(|l| l["EntryNumber"].as_i64().unwrap())
        .collect();
    assert_eq!(by("draft_entries_in_period")["count"], drafts.len() as u64);
    assert!(!drafts.is_empty());
    let day =
        |v: &Value| boekhouding_core::exact::dates::parse_odata_day(v.as_str().unwrap_or("")).ok();
    let suspense: i64 = lines
        .iter()
        .filter(|l| {
            l["GLAccountCode"] == "1800"
                && day(&l["Date"]).is_some_and(|x| x <= today + chrono::Duration::days(31))
        })
        .map(|l| cents(&l["AmountDC"]))
        .sum();
    let s = by("suspense_and_clearing_balances");
    assert_eq!(s["count"], 1);
    assert_eq!(cents(&s["details"][0]["balance"]), suspense);
    let bank = lines
        .iter()
        .filter(|l| {
            l["GLAccountCode"] == "1800"
                && l["JournalCode"] == "20"
                && l["FinancialPeriod"] == m
                && l["FinancialYear"] == y
        })
        .count();
    assert_eq!(by("unmatched_bank_lines")["count"], bank as u64);
    assert!(bank > 0);
    // A month long closed: nothing blocks it.
    let old = w.ok(
        "get_period_close_check",
        json!({"division": d, "year": y - 1, "period": 6}),
    );
    assert_eq!(old["ready"], true, "{old}");
    assert!(
        w.error("get_period_close_check", json!({"year": y}))
            .contains("`period` is required")
    );
}

#[test]
fn the_cost_centre_report_adds_up_to_the_profit_and_loss_of_the_same_periods() {
    let w = world(Plan::Enterprise);
    for d in [1_000_001i64, 1_000_002] {
        let r = w.ok(
            "get_cost_center_report",
            json!({"division": d, "year": 2025, "period_from": 3, "period_to": 4}),
        );
        let pl = w.ok(
            "get_profit_loss",
            json!({"division": d, "year": 2025, "period_from": 3, "period_to": 4}),
        );
        let centres = r["cost_centers"].as_array().unwrap();
        let revenue: i64 = centres.iter().map(|c| cents(&c["revenue"])).sum();
        let result: i64 = centres.iter().map(|c| cents(&c["result"])).sum();
        assert_eq!(revenue, cents(&pl["revenue"]), "{d}");
        assert_eq!(result, cents(&pl["result"]), "{d}");
        assert!(
            centres
                .iter()
                .all(|c| cents(&c["result"]) == cents(&c["revenue"]) - cents(&c["costs"]))
        );
    }
    assert!(
        w.error("get_cost_center_report", json!({"year": 2025}))
            .contains("required")
    );
}

#[test]
fn a_document_attachment_is_read_whole_within_the_size_cap() {
    use base64::Engine as _;
    let w = world(Plan::Enterprise);
    let (d, att) = [1_000_001i64, 1_000_002, 1_000_003]
        .into_iter()
        .find_map(|d| {
            w.sandbox
                .rows(d, "documents/DocumentAttachments")
                .first()
                .cloned()
                .map(|a| (d, a))
        })
        .expect("the sandbox has attachments");
    let id = att["ID"].as_str().unwrap();
    let expected = base64::engine::general_purpose::STANDARD
        .decode(att["__content_base64"].as_str().unwrap())
        .unwrap();
    let r = w.ok(
        "get_document_content",
        json!({"division": d, "attachment_id": id}),
    );
    assert_eq!(r["file_name"], att["FileName"]);
    assert_eq!(r["size_bytes"], expected.len() as u64);
    let got = match r["encoding"].as_str().unwrap() {
        "text" => r["content"].as_str().unwrap().as_bytes().to_vec(),
        _ => base64::engine::general_purpose::STANDARD
            .decode(r["content"].as_str().unwrap())
            .unwrap(),
    };
    assert_eq!(got, expected);
    // Past the cap: a clear message and nothing downloaded.
    let before = w
        .sandbox
        .requests()
        .iter()
        .filter(|q| q.path.starts_with("/docs/"))
        .count();
    let m = w.error(
        "get_document_content",
        json!({"division": d, "attachment_id": id, "max_bytes": 10}),
    );
    assert!(m.contains("over the limit of 10 bytes"), "{m}");
    let after = w
        .sandbox
        .requests()
        .iter()
        .filter(|q| q.path.starts_with("/docs/"))
        .count();
    assert_eq!(before, after);
    assert!(
        w.error(
            "get_document_content",
            json!({"attachment_id": "../etc/passwd"})
        )
        .contains("GUID")
    );
}

#[test]
fn purchase_contracts_are_exactly_the_suppliers_billing_a_fixed_amount_on_a_cadence() {
    let w = world(Plan::Enterprise);
    for d in [1_000_001i64, 1_000_002, 1_000_003] {
        let company = w
            .sandbox
            .dataset()
            .companies
            .iter()
            .find(|c| c.division == d)
            .unwrap();
        let planted = &company.recurring_purchases;
        let entries = w.sandbox.rows(d, "purchaseentry/PurchaseEntries");
        let all = w.ok(
            "get_purchase_contracts",
            json!({"division": d, "active_only": false}),
        );
        let found = all["contracts"].as_array().unwrap();
        assert_eq!(found.len(), planted.len(), "{d}: {found:?}");
        let last_month = planted.iter().map(|p| p.to_month).max().unwrap();
        let mut annual_active = 0;
        for p in planted {
            let c = found
                .iter()
                .find(|c| c["supplier_id"] == p.supplier_id.as_str())
                .unwrap_or_else(|| panic!("{d}: {} not found", p.description));
            let gross = p.net_cents * 121 / 100;
            let invoices = entries
                .iter()
                .filter(|e| {
                    e["Supplier"] == p.supplier_id.as_str() && cents(&e["AmountDC"]) == gross
                })
                .count();
            assert_eq!(c["invoices"], invoices as u64, "{d} {}", p.description);
            assert_eq!(c["every_months"], p.every_months);
            assert_eq!(cents(&c["amount_excl_vat"]), p.net_cents);
            assert_eq!(cents(&c["amount"]), gross);
            assert_eq!(c["supplier_name"], p.supplier_name.as_str());
            assert!(
                c["description"]
                    .as_str()
                    .unwrap()
                    .starts_with(p.description)
            );
            let active = p.to_month == last_month;
            assert_eq!(c["active"], active, "{d} {}", p.description);
            if active {
                annual_active += p.net_cents * 12 / i64::from(p.every_months);
            }
        }
        let running = w.ok("get_purchase_contracts", json!({"division": d}));
        assert_eq!(
            running["contracts"].as_array().unwrap().len(),
            planted.iter().filter(|p| p.to_month == last_month).count()
        );
        assert_eq!(cents(&running["annual_cost_excl_vat"]), annual_active);
        assert_eq!(running["active_contracts"], all["active_contracts"]);
        let one = w.ok(
            "get_purchase_contracts",
            json!({"division": d, "supplier_id": planted[0].supplier_id, "active_only": false}),
        );
        assert_eq!(one["contracts"].as_array().unwrap().len(), 1);
    }
    assert!(
        w.error(
            "get_purchase_contracts",
            json!({"division": 1_000_001, "supplier_id": "x' or 1 eq 1"})
        )
        .contains("GUID")
    );
    assert!(
        w.error(
            "get_purchase_contracts",
            json!({"division": 1_000_001, "min_invoices": 1})
        )
        .contains("min_invoices")
    );
}

/// The platform of a demo request: the sandbox's books in-process, no
/// database.
struct DemoPlatform<H = DemoTransport<std::sync::Arc<Books>>> {
    db: NoDatabase,
    clock: FakeClock,
    http: H,
    rng: SeededRandomness,
    sleep: ThreadSleep,
    cache: MemoryCache,
}

impl<H: HttpTransport> Platform for DemoPlatform<H> {
    type Db = NoDatabase;
    type Clock = FakeClock;
    type Http = H;
    type Rng = SeededRandomness;
    type Sleep = ThreadSleep;
    type Cache = MemoryCache;
    fn db(&self) -> &NoDatabase {
        &self.db
    }
    fn clock(&self) -> &FakeClock {
        &self.clock
    }
    fn http(&self) -> &Self::Http {
        &self.http
    }
    fn rng(&self) -> &SeededRandomness {
        &self.rng
    }
    fn sleep(&self) -> &ThreadSleep {
        &self.sleep
    }
    fn cache(&self) -> &MemoryCache {
        &self.cache
    }
    fn report(&self, what: &str) {
        panic!("a demo request reported an internal failure: {what}");
    }
}

/// Exact as it also answers: attachments listed without a `FileSize`.
/// Records the cap of every binary download.
struct WithoutFileSize<T> {
    inner: T,
    caps: std::cell::RefCell<Vec<usize>>,
}

fn strip_file_size(v: &mut Value) {
    match v {
        Value::Object(o) => {
            o.remove("FileSize");
            o.values_mut().for_each(strip_file_size);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_file_size),
        _ => {}
    }
}

impl<T: HttpTransport> HttpTransport for WithoutFileSize<T> {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        let mut response = self.inner.send(request).await?;
        if let Ok(mut v) = serde_json::from_str::<Value>(&response.body) {
            strip_file_size(&mut v);
            response.body = v.to_string();
        }
        Ok(response)
    }
    async fn send_binary(
        &self,
        request: HttpRequest,
        max_bytes: usize,
    ) -> Result<BinaryResponse, TransportError> {
        self.caps.borrow_mut().push(max_bytes);
        self.inner.send_binary(request, max_bytes).await
    }
}

#[test]
fn a_document_without_a_listed_size_is_downloaded_only_up_to_the_callers_cap() {
    use base64::Engine as _;
    let now = chrono::Utc::now();
    let (demo, principal) = demo_host("pmjb_demo_bakkerij", now);
    let platform = DemoPlatform {
        db: NoDatabase,
        clock: demo.clock,
        http: WithoutFileSize {
            inner: demo.http,
            caps: Default::default(),
        },
        rng: demo.rng,
        sleep: ThreadSleep,
        cache: MemoryCache::default(),
    };
    let host = Bookkeeping {
        platform: &platform,
        principal: &principal,
        portal_url: "https://portal.example",
        exact: None,
    };
    let call = |args: Value| block_on(host.call("get_document_content", args));
    let listed = match block_on(host.call("get_document_attachments", json!({"limit": 1}))) {
        ToolCallOutcome::Ok { structured, .. } => structured,
        other => panic!("{other:?}"),
    };
    let first = &listed["attachments"][0];
    let id = first["id"].as_str().expect("the demo has attachments");
    assert!(
        first.get("size_bytes").is_none_or(Value::is_null),
        "the listing carries no size: {first}"
    );
    // Whole within the default cap, although no size was listed.
    let whole = match call(json!({"attachment_id": id})) {
        ToolCallOutcome::Ok { structured, .. } => structured,
        other => panic!("{other:?}"),
    };
    let size = whole["size_bytes"].as_u64().unwrap() as usize;
    let content = match whole["encoding"].as_str().unwrap() {
        "text" => whole["content"].as_str().unwrap().as_bytes().to_vec(),
        _ => base64::engine::general_purpose::STANDARD
            .decode(whole["content"].as_str().unwrap())
            .unwrap(),
    };
    assert_eq!(content.len(), size);
    // One byte under its size: refused, and the download itself was
    // capped at the caller's limit, not at the global maximum.
    let cap = size - 1;
    match call(json!({"attachment_id": id, "max_bytes": cap})) {
        ToolCallOutcome::ToolError(m) => {
            assert!(m.contains(&format!("limit of {cap} bytes")), "{m}")
        }
        other => panic!("over the caller's cap yet answered: {other:?}"),
    }
    assert_eq!(
        platform.http.caps.borrow().as_slice(),
        [1_048_576, cap],
        "the default cap (1 MiB), then the caller's"
    );
}

fn demo_host(key: &str, now: chrono::DateTime<chrono::Utc>) -> (DemoPlatform, Principal) {
    let books = std::sync::Arc::new(Books::lazy(
        exact_sandbox::default_data(),
        exact_sandbox::demo::BASE_URL,
    ));
    let user = exact_sandbox::demo::login_for(&books, key).unwrap();
    let tenant = DemoTenant::new(
        exact_sandbox::demo::BASE_URL,
        &user.full_name,
        &user.email,
        &exact_sandbox::demo::administrations(&user),
        user.current_division,
        now,
    );
    let platform = DemoPlatform {
        db: NoDatabase,
        clock: FakeClock::at(now),
        http: DemoTransport::new(books, user),
        rng: SeededRandomness::new(9),
        sleep: ThreadSleep,
        cache: MemoryCache::default(),
    };
    (platform, Principal::demo(key, tenant))
}

/// Realistic arguments for every tool (the division is added per call).
fn realistic_arguments(tool: &str) -> Value {
    match tool {
        "get_gl_accounts" => json!({"type": "profitloss"}),
        "get_outstanding_invoices" => json!({"type": "both", "min_days_overdue": 0}),
        "get_trial_balance" => json!({"year": 2025}),
        "get_profit_loss" => json!({"year": 2025, "period_from": 1, "period_to": 12}),
        "get_balance_sheet" => json!({"date": "2026-06-30"}),
        "get_relations" => json!({"type": "customer"}),
        "search_relations" => json!({"query": "bakker"}),
        "get_revenue" => json!({"year": 2025, "compare_previous_year": true}),
        "get_transactions" => json!({"year": 2026, "period": 1, "limit": 100}),
        "get_sales_invoices" => json!({"status": "open"}),
        "get_purchase_invoices" => json!({"status": "all", "limit": 50}),
        "get_bank_transactions" => json!({"from_date": "2026-01-01", "to_date": "2026-03-31"}),
        "get_vat_summary" => json!({"year": 2025, "quarter": 4}),
        "get_cashflow_forecast" => json!({"forecast_days": 60}),
        "explain_change" => {
            json!({"from_period": "2025-Q1", "to_period": "2026-Q1", "metric": "result"})
        }
        "get_consolidated_report" => json!({"year": 2025}),
        "get_budget_comparison" => json!({"year": 2025, "period_from": 1, "period_to": 6}),
        "search_transactions" => {
            json!({"from_date": "2025-01-01", "to_date": "2025-12-31", "limit": 50})
        }
        "get_recurring_revenue" | "get_wip_overview" => json!({"as_of": "2026-06-30"}),
        "get_sales_funnel" => json!({"include_closed": true}),
        "get_period_close_check" => json!({"year": 2026, "period": 10}),
        "get_margin_analysis" => json!({"year": 2025}),
        "get_cost_center_report" => json!({"year": 2025, "period_from": 3, "period_to": 3}),
        "get_purchase_contracts" => json!({"active_only": false}),
        _ => json!({}),
    }
}

#[test]
fn a_demo_key_answers_every_tool_prompt_and_resource_as_the_sandbox_does_without_a_database() {
    let w = world(Plan::Enterprise);
    let now = boekhouding_core::ports::Clock::now(&w.platform.clock);
    let (platform, principal) = demo_host("pmjb_demo_bakkerij", now);
    let demo = Bookkeeping {
        platform: &platform,
        principal: &principal,
        portal_url: "https://portal.example",
        exact: None,
    };
    let demo_ok = |tool: &str, args: Value| match block_on(demo.call(tool, args)) {
        ToolCallOutcome::Ok { structured, .. } => structured,
        other => panic!("demo {tool}: {other:?}"),
    };
    let tools = demo.tools();
    assert_eq!(tools.len(), 31 + LIST_TOOLS.len());
    let divisions = [1_000_001i64, 1_000_002, 1_000_003];
    for (i, t) in tools.iter().enumerate() {
        let name = t["name"].as_str().unwrap();
        let mut args = realistic_arguments(name);
        let division = divisions[i % divisions.len()];
        if t["inputSchema"]["properties"].get("division").is_some() {
            args["division"] = json!(division);
        }
        match name {
            "get_customer_360" => {
                let found = w.ok(
                    "get_relations",
                    json!({"division": division, "type": "customer", "limit": 1}),
                );
                args["customer_id"] = found["relations"][0]["id"].clone();
            }
            "get_document_content" => {
                let found = w.ok(
                    "get_document_attachments",
                    json!({"division": division, "limit": 1}),
                );
                args["attachment_id"] = found["attachments"][0]["id"].clone();
            }
            _ => {}
        }
        // The same answer, with links to the demo's Exact site.
        let expected: Value = serde_json::from_str(
            &w.ok(name, args.clone())
                .to_string()
                .replace(w.sandbox.base_url(), exact_sandbox::demo::BASE_URL),
        )
        .unwrap();
        let got = demo_ok(name, args);
        assert_eq!(got, expected, "{name} differs on the demo key");
    }
    // The other demo companies open their own administration by default.
    for (key, division) in exact_sandbox::demo::KEYS {
        let (platform, principal) = demo_host(key, now);
        let host = Bookkeeping {
            platform: &platform,
            principal: &principal,
            portal_url: "https://portal.example",
            exact: None,
        };
        let ToolCallOutcome::Ok { structured, .. } =
            block_on(host.call("get_financial_snapshot", json!({})))
        else {
            panic!("{key}");
        };
        assert_eq!(structured["division"], division, "{key}");
    }
    // Prompts and resources, from the demo tenant.
    let prompt = block_on(
        demo.get_prompt(
            "vat_preparation",
            &json!({"division": "1000002", "language": "nl"})
                .as_object()
                .unwrap()
                .clone(),
        ),
    )
    .unwrap();
    assert!(prompt.to_string().contains("1000002"));
    let listed = block_on(demo.read_resource("exact://divisions")).unwrap();
    let listed: Value = serde_json::from_str(listed[0]["text"].as_str().unwrap()).unwrap();
    let codes: Vec<i64> = listed["administrations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["division"].as_i64().unwrap())
        .collect();
    assert_eq!(codes, divisions);
    let conns = block_on(demo.read_resource("exact://connections")).unwrap();
    assert!(conns[0]["text"].as_str().unwrap().contains("\"active\""));
    // Another company's division is refused like any foreign division.
    let ToolCallOutcome::ToolError(refused) =
        block_on(demo.call("get_gl_accounts", json!({"division": 1_000_004})))
    else {
        panic!("a division outside the demo login was served");
    };
    assert!(refused.contains("not one of"), "{refused}");
}

/// Positions at the end of (`year`, `period`) from books in which no year
/// was ever closed, so every line up to then counts: per balance-sheet
/// account (debit positive, zeros left out), and the results of the
/// earlier years and of the year itself (a profit positive).
fn positions_from_lines(
    lines: &[serde_json::Map<String, Value>],
    chart: &[serde_json::Map<String, Value>],
    year: i64,
    period: i64,
) -> (std::collections::BTreeMap<String, i64>, i64, i64) {
    let profit_loss: std::collections::BTreeSet<&str> = chart
        .iter()
        .filter(|g| g["BalanceType"] == "W")
        .map(|g| g["Code"].as_str().unwrap())
        .collect();
    let mut sheet: std::collections::BTreeMap<String, i64> = Default::default();
    let (mut prior, mut current) = (0, 0);
    for l in lines {
        let at = (
            l["FinancialYear"].as_i64().unwrap(),
            l["FinancialPeriod"].as_i64().unwrap(),
        );
        if at > (year, period) {
            continue;
        }
        let code = l["GLAccountCode"].as_str().unwrap();
        let amount = cents(&l["AmountDC"]);
        match (profit_loss.contains(code), at.0 < year) {
            (true, true) => prior -= amount,
            (true, false) => current -= amount,
            (false, _) => *sheet.entry(code.to_owned()).or_default() += amount,
        }
    }
    sheet.retain(|_, v| *v != 0);
    (sheet, prior, current)
}

/// A balance sheet's accounts by code, debit positive (assets positive,
/// liabilities and equity negative), without the result lines.
fn sheet_accounts(bs: &Value) -> std::collections::BTreeMap<String, i64> {
    let mut out: std::collections::BTreeMap<String, i64> = Default::default();
    for (side, sign) in [("assets", 1), ("liabilities_and_equity", -1)] {
        for a in bs[side].as_array().unwrap() {
            let code = a["code"].as_str().unwrap();
            if !code.is_empty() {
                *out.entry(code.to_owned()).or_default() += sign * cents(&a["amount"]);
            }
        }
    }
    out
}

/// The IT consultancy closed 2025 into an opening entry in 2026; the bakery
/// did not. At dates after, at the end of and inside the closed year, the
/// balance sheet balances, shows every account once (as the same books
/// generated without a closed year do), and the trial balance and the
/// consolidated report agree with it.
#[test]
fn a_closed_year_counts_once_in_every_balance_carried_forward() {
    use exact_sandbox::{ClosedYears, DataConfig};
    const LINES: &str = "financialtransaction/TransactionLines";
    let w = world(Plan::Enterprise);
    let (open, closed) = (1_000_001i64, ClosedYears::DEMO_DIVISION);
    // The sandbox's books: the IT consultancy closed 2025 into an opening
    // entry in 2026, the bakery did not.
    let opening_2026 = |d: i64| {
        w.sandbox
            .rows(d, LINES)
            .iter()
            .filter(|l| l["Type"] == 10 && l["FinancialYear"] == 2026)
            .count()
    };
    assert!(opening_2026(closed) > 0);
    assert_eq!(opening_2026(open), 0);
    for d in [closed, open] {
        // The independent reference: the same company generated without
        // any closed year, every line up to a date summed.
        let unclosed = exact_sandbox::data::generate_company(
            &DataConfig {
                closed_years: ClosedYears::None,
                ..exact_sandbox::default_data()
            },
            d,
        )
        .unwrap();
        let lines = &unclosed.entities[LINES];
        let chart = w.sandbox.rows(d, "financial/GLAccounts");
        // After the closed year, inside it, and at its end.
        for (date, y, m) in [
            ("2026-10-31", 2026, 10),
            ("2026-01-15", 2026, 1),
            ("2025-06-30", 2025, 6),
            ("2025-12-31", 2025, 12),
        ] {
            let (sheet, prior, current) = positions_from_lines(lines, &chart, y, m);
            let bs = w.ok("get_balance_sheet", json!({"division": d, "date": date}));
            let at = format!("{d} {date}");
            assert_eq!(
                cents(&bs["total_assets"]),
                cents(&bs["total_liabilities_and_equity"]),
                "{at}: the balance sheet balances"
            );
            let mut shown = sheet_accounts(&bs);
            // A closed year's result sits in 0510 Onverdeelde winst; an
            // open year's is the balance sheet's prior-years line.
            let retained = shown.remove("0510").unwrap_or(0);
            assert_eq!(shown, sheet, "{at}: every account, counted once");
            assert_eq!(
                cents(&bs["prior_years_result"]) - retained,
                prior,
                "{at}: earlier results"
            );
            assert_eq!(cents(&bs["current_year_result"]), current, "{at}");
            if d == closed && y == 2026 {
                assert_eq!(
                    cents(&bs["prior_years_result"]),
                    0,
                    "{at}: closed into equity"
                );
                assert_eq!(-retained, prior, "{at}");
                // From the sandbox's own lines: 2026 alone, its opening
                // entry included.
                let mut own: std::collections::BTreeMap<String, i64> = Default::default();
                for l in w.sandbox.rows(d, LINES).iter().filter(|l| {
                    l["FinancialYear"] == 2026 && l["FinancialPeriod"].as_i64().unwrap() <= m
                }) {
                    let code = l["GLAccountCode"].as_str().unwrap();
                    if chart
                        .iter()
                        .any(|g| g["Code"] == code && g["BalanceType"] == "B")
                    {
                        *own.entry(code.to_owned()).or_default() += cents(&l["AmountDC"]);
                    }
                }
                own.retain(|_, v| *v != 0);
                assert_eq!(sheet_accounts(&bs), own, "{at}");
            }

            // The trial balance carries the same positions forward.
            let tb = w.ok(
                "get_trial_balance",
                json!({"division": d, "year": y, "period": m}),
            );
            assert_eq!(cents(&tb["total_balance"]), 0, "{at}");
            assert_eq!(cents(&tb["total_opening"]), 0, "{at}");
            assert_eq!(
                cents(&tb["total_debit"]),
                cents(&tb["total_credit"]),
                "{at}"
            );
            let mut tb_sheet: std::collections::BTreeMap<String, i64> = Default::default();
            let mut tb_result = 0;
            for a in tb["accounts"].as_array().unwrap() {
                let (code, balance) = (a["code"].as_str().unwrap(), cents(&a["balance"]));
                assert_eq!(
                    balance,
                    cents(&a["opening"]) + cents(&a["debit"]) - cents(&a["credit"]),
                    "{at} {a}"
                );
                match (a["balance_type"].as_str().unwrap(), code) {
                    ("profit_loss", _) => tb_result -= balance,
                    (_, "") => assert_eq!(-balance, cents(&bs["prior_years_result"]), "{at}"),
                    _ if balance != 0 => {
                        tb_sheet.insert(code.to_owned(), balance);
                    }
                    _ => {}
                }
            }
            assert_eq!(tb_sheet, sheet_accounts(&bs), "{at}: trial balance");
            assert_eq!(tb_result, current, "{at}");
        }
    }

    // The consolidated balance sheet is each administration's, summed.
    let both = w.ok(
        "get_consolidated_report",
        json!({"report": "balance_sheet", "year": 2026, "divisions": [open, closed]}),
    );
    let mut assets = 0;
    for a in both["administrations"].as_array().unwrap() {
        let d = a["division"].as_i64().unwrap();
        let one = w.ok(
            "get_balance_sheet",
            json!({"division": d, "date": "2026-12-31"}),
        );
        assert_eq!(a["figures"]["total_assets"], one["total_assets"], "{d}");
        assert_eq!(
            cents(&one["total_assets"]),
            cents(&one["total_liabilities_and_equity"])
        );
        assets += cents(&one["total_assets"]);
    }
    assert_eq!(cents(&both["totals"]["total_assets"]), assets);
    assert_eq!(
        cents(&both["totals"]["total_assets"]),
        cents(&both["totals"]["total_liabilities_and_equity"])
    );
}

/// The IT consultancy closed 2025; the bakery did not. Cash and the
/// period-close check's suspense balance, both carried across the year
/// end, against the same books generated without a closed year.
#[test]
fn cash_and_suspense_balances_count_a_closed_year_once() {
    use exact_sandbox::{ClosedYears, DataConfig};
    const LINES: &str = "financialtransaction/TransactionLines";
    let w = world(Plan::Enterprise);
    let now = boekhouding_core::ports::Clock::now(&w.platform.clock);
    let (now_y, now_m) = (
        i64::from(chrono::Datelike::year(&now)),
        i64::from(chrono::Datelike::month(&now)),
    );
    for d in [1_000_001i64, ClosedYears::DEMO_DIVISION] {
        let unclosed = exact_sandbox::data::generate_company(
            &DataConfig {
                closed_years: ClosedYears::None,
                ..exact_sandbox::default_data()
            },
            d,
        )
        .unwrap();
        let lines = &unclosed.entities[LINES];
        let chart = w.sandbox.rows(d, "financial/GLAccounts");
        // Cash now, in the snapshot and the forecast.
        let (sheet, _, _) = positions_from_lines(lines, &chart, now_y, now_m);
        let cash =
            sheet.get("1000").copied().unwrap_or(0) + sheet.get("1100").copied().unwrap_or(0);
        let snap = w.ok("get_financial_snapshot", json!({"division": d}));
        assert_eq!(cents(&snap["cash"]), cash, "{d}: snapshot cash");
        let cf = w.ok("get_cashflow_forecast", json!({"division": d}));
        assert_eq!(cents(&cf["bank_balance"]), cash, "{d}: forecast cash");

        // The suspense balance of the period-close check, which crosses the
        // year end.
        let (sheet, _, _) = positions_from_lines(lines, &chart, 2026, 10);
        let check = w.ok(
            "get_period_close_check",
            json!({"division": d, "year": 2026, "period": 10}),
        );
        let suspense = check["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["check"] == "suspense_and_clearing_balances")
            .unwrap()
            .clone();
        assert_eq!(
            cents(&suspense["details"][0]["balance"]),
            sheet["1800"],
            "{d}: suspense balance"
        );
    }
}

/// The bakery's books open with last quarter's VAT still to pay, entered by
/// hand in period 1: the VAT summary of the first quarter is that
/// quarter's VAT, not the opening balance.
#[test]
fn an_opening_balance_on_a_vat_account_is_not_this_quarters_vat() {
    let w = world(Plan::Pro);
    let lines = w
        .sandbox
        .rows(1_000_001, "financialtransaction/TransactionLines");
    let q1: Vec<_> = lines
        .iter()
        .filter(|l| {
            l["FinancialYear"] == 2025
                && (1..=3).contains(&l["FinancialPeriod"].as_i64().unwrap())
                && l["GLAccountCode"].as_str().unwrap().starts_with("15")
        })
        .collect();
    assert!(
        q1.iter()
            .any(|l| l["Type"] == 10 && l["GLAccountCode"] == "1500"),
        "the opening entry holds VAT to pay"
    );
    let movements = q1
        .iter()
        .filter(|l| l["Type"] != 10)
        .map(|l| cents(&l["AmountDC"]));
    let (to_pay, to_claim) = movements.fold(
        (0, 0),
        |(p, c), a| {
            if a < 0 { (p - a, c) } else { (p, c + a) }
        },
    );
    let vat = w.ok("get_vat_summary", json!({"year": 2025, "quarter": 1}));
    assert_eq!(
        (cents(&vat["vat_to_pay"]), cents(&vat["vat_to_claim"])),
        (to_pay, to_claim)
    );
}

/// An OAuth grant may be narrower than the account: the client sees and
/// reads only the administrations the user chose on the consent page, as
/// if the others did not exist (no default falls back to one outside it).
#[test]
fn a_grant_reads_only_the_administrations_chosen_for_it() {
    let mut w = world(Plan::Pro);
    let account = block_on(administrations::active_for_user(
        &w.platform.db,
        &w.principal.user_id,
    ))
    .unwrap();
    let chosen = account
        .iter()
        .find(|a| a.division_code == 1_000_002)
        .expect("the account has 1000002 active");
    assert!(account.len() > 1, "the account reads more than the grant");
    w.principal.granted = Some(vec![chosen.id.clone()]);

    let listed = w.ok("list_divisions", json!({}));
    assert_eq!(listed["count"], 1, "{listed}");
    assert_eq!(listed["administrations"][0]["division_ref"], "1000002");
    // Without `division` the call goes to the granted one, not the
    // account's default (1000001).
    assert_eq!(w.ok("get_gl_accounts", json!({}))["division"], 1_000_002);
    let refused = w.error("get_gl_accounts", json!({"division": 1_000_001}));
    assert!(refused.contains("not one of this account's"), "{refused}");

    // A grant whose administrations are all gone reads nothing.
    w.principal.granted = Some(vec![]);
    let none = w.error("get_gl_accounts", json!({}));
    assert!(none.contains("no Exact administration"), "{none}");
}

/// A customer's request as the mcp-server Worker runs it: the caller
/// loaded in one counted database round trip (`auth::load`), the writes
/// after the answer collected and written in one batch afterwards
/// (`flush`), or at once when `write_now` (then a failure is reported,
/// as the Worker logs it).
struct Preloaded<'w> {
    base: &'w Native,
    db: Counting<&'w SqliteDb>,
    loaded: Option<LoadedCaller>,
    after: RefCell<Vec<Statement>>,
    write_now: bool,
    reports: RefCell<Vec<String>>,
}

impl<'w> Platform for Preloaded<'w> {
    type Db = Counting<&'w SqliteDb>;
    type Clock = FakeClock;
    type Http = BlockingTransport;
    type Rng = SeededRandomness;
    type Sleep = ThreadSleep;
    type Cache = MemoryCache;
    fn db(&self) -> &Self::Db {
        &self.db
    }
    fn clock(&self) -> &FakeClock {
        &self.base.clock
    }
    fn http(&self) -> &BlockingTransport {
        &self.base.http
    }
    fn rng(&self) -> &SeededRandomness {
        &self.base.rng
    }
    fn sleep(&self) -> &ThreadSleep {
        &self.base.sleep
    }
    fn cache(&self) -> &MemoryCache {
        &self.base.cache
    }
    fn report(&self, what: &str) {
        self.reports.borrow_mut().push(what.to_owned());
    }
    fn loaded(&self) -> Option<&LoadedCaller> {
        self.loaded.as_ref()
    }
    async fn after_answer(&self, stmts: Vec<Statement>) {
        if self.write_now {
            if let Err(e) = self.db.inner().batch(stmts).await {
                self.report(&format!("writing after the answer: {e}"));
            }
        } else {
            self.after.borrow_mut().extend(stmts);
        }
    }
}

impl Preloaded<'_> {
    /// The writes after the answer, in one batch, as the Worker sends
    /// them in `ctx.wait_until`.
    fn flush(&self) -> Result<usize, boekhouding_core::storage::StorageError> {
        let stmts = self.after.take();
        let n = stmts.len();
        block_on(self.db.inner().batch(stmts)).map(|_| n)
    }
}

impl World {
    /// A new API key of this world's user.
    fn api_key(&self) -> String {
        let created = block_on(api_keys::create(
            &self.platform.db,
            &self.platform.rng,
            &self.principal.user_id,
            self.principal.plan,
            "bench",
            boekhouding_core::ports::Clock::now(&self.platform.clock),
        ))
        .unwrap();
        created.issued.secret.expose().to_owned()
    }

    /// The request of `credential`, loaded as the Worker loads it (`meter`:
    /// a tools/call), or not loaded at all (`None`: the tools read for
    /// themselves, as before the one-batch load).
    fn request(
        &self,
        credential: Option<&str>,
        resource: Option<&McpResource>,
        meter: bool,
    ) -> (Preloaded<'_>, Principal) {
        let db = Counting::new(&self.platform.db);
        let (loaded, principal) = match credential {
            Some(c) => {
                let (mut principal, loaded) = block_on(auth::load(
                    &db,
                    Some(&format!("Bearer {c}")),
                    resource,
                    boekhouding_core::ports::Clock::now(&self.platform.clock),
                    meter,
                ))
                .unwrap();
                principal.request_id = Some("test".into());
                (Some(loaded), principal)
            }
            None => (None, self.principal.clone()),
        };
        let preloaded = Preloaded {
            base: &self.platform,
            db,
            loaded,
            after: RefCell::new(Vec::new()),
            write_now: false,
            reports: RefCell::new(Vec::new()),
        };
        (preloaded, principal)
    }

    fn call_on(
        &self,
        p: &Preloaded<'_>,
        principal: &Principal,
        tool: &str,
        args: Value,
    ) -> ToolCallOutcome {
        let host = Bookkeeping {
            platform: p,
            principal,
            portal_url: "https://portal.example",
            exact: Some(&self.settings),
        };
        block_on(host.call(tool, args))
    }

    fn api_usage(&self, outcome: &str) -> i64 {
        self.platform
            .db
            .raw()
            .query_row(
                "SELECT COUNT(*) FROM api_usage WHERE outcome = ?1",
                [outcome],
                |r| r.get(0),
            )
            .unwrap()
    }
}

#[test]
fn a_customer_tool_call_makes_one_round_trip_before_exact_and_none_after_the_answer() {
    let w = world(Plan::Pro);
    let key = w.api_key();
    // Before the one-batch load, the same call read and wrote for itself.
    let (unloaded, principal) = w.request(None, None, true);
    assert!(matches!(
        w.call_on(&unloaded, &principal, "get_outstanding_invoices", json!({})),
        ToolCallOutcome::Ok { .. }
    ));
    assert!(
        unloaded.db.calls() >= 3,
        "meter, administrations, connection: {}",
        unloaded.db.calls()
    );
    // (Its log row names a key the world never stored: not written.)
    let _ = unloaded.flush();

    let exact_before = w.sandbox.requests().len();
    let (p, principal) = w.request(Some(&key), None, true);
    assert_eq!((p.db.calls(), p.db.statements()), (1, 5), "the load");
    let answer = w.call_on(&p, &principal, "get_outstanding_invoices", json!({}));
    assert!(matches!(answer, ToolCallOutcome::Ok { .. }), "{answer:?}");
    assert!(w.sandbox.requests().len() > exact_before, "Exact was asked");
    assert_eq!(p.db.calls(), 1, "nothing but the load on the latency path");
    // After the answer: the call log (and any last-used touch), one batch.
    let logged = w.api_usage("ok");
    assert!(p.flush().unwrap() >= 1);
    assert_eq!(w.api_usage("ok"), logged + 1);
    assert!(p.reports.borrow().is_empty(), "{:?}", p.reports.borrow());
    // A request that is not a tool call is not metered and reads the count.
    let (listing, _) = w.request(Some(&key), None, false);
    assert_eq!(listing.loaded.as_ref().unwrap().used, 2);
}

#[test]
fn a_call_over_the_limit_is_refused_in_the_load_and_never_reaches_exact() {
    let w = world(Plan::Free);
    let key = w.api_key();
    let month = boekhouding_core::storage::usage::UsageMonth::of(
        boekhouding_core::ports::Clock::now(&w.platform.clock),
    );
    w.platform
        .db
        .raw()
        .execute(
            "INSERT INTO usage_counters (user_id, month, tool_calls) VALUES (?1, ?2, 200)
             ON CONFLICT (user_id, month) DO UPDATE SET tool_calls = 200",
            [&w.principal.user_id, &month.key()],
        )
        .unwrap();
    let exact_before = w.sandbox.requests().len();
    let (p, principal) = w.request(Some(&key), None, true);
    let over = match w.call_on(&p, &principal, "get_gl_accounts", json!({})) {
        ToolCallOutcome::ToolError(m) => m,
        other => panic!("{other:?}"),
    };
    assert!(over.contains("Monthly limit reached: 200 of 200"), "{over}");
    assert_eq!(w.sandbox.requests().len(), exact_before, "no Exact call");
    assert_eq!(p.db.calls(), 1);
    p.flush().unwrap();
    assert_eq!(w.api_usage("limit_exceeded"), 1, "logged as before");
    let count: i64 = w
        .platform
        .db
        .raw()
        .query_row("SELECT tool_calls FROM usage_counters", [], |r| r.get(0))
        .unwrap();
    assert_eq!(count, 200, "and not counted");
}

/// The query string of an authorization request.
fn form_query(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            let encoded: String = v
                .bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                        char::from(b).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect();
            format!("{k}={encoded}")
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[test]
fn an_oauth_token_with_a_narrowed_grant_reads_only_its_administrations_from_the_load() {
    use boekhouding_core::authorization::authorize::{self, AuthorizeParams};
    use boekhouding_core::authorization::clients;
    use boekhouding_core::authorization::metadata::Issuer;
    use boekhouding_core::authorization::s256_challenge;
    use boekhouding_core::authorization::tokens::{self, CodeExchange};

    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CALLBACK: &str = "https://claude.ai/api/mcp/auth_callback";
    let w = world(Plan::Pro);
    let db = &w.platform.db;
    let now = boekhouding_core::ports::Clock::now(&w.platform.clock);
    let resource = McpResource::parse("https://mcp.example/mcp").unwrap();
    let account = block_on(administrations::active_for_user(db, &w.principal.user_id)).unwrap();
    let chosen = account
        .iter()
        .find(|a| a.division_code == 1_000_002)
        .unwrap();
    let registration = clients::validate_registration(
        &json!({"client_name": "Claude", "redirect_uris": [CALLBACK]}),
    )
    .unwrap();
    let client = block_on(clients::register(db, &w.platform.rng, registration, now)).unwrap();
    let query = form_query(&[
        ("response_type", "code"),
        ("client_id", &client.client_id),
        ("redirect_uri", CALLBACK),
        ("code_challenge", &s256_challenge(VERIFIER)),
        ("code_challenge_method", "S256"),
        ("state", "s"),
        ("resource", resource.as_str()),
    ]);
    let request =
        authorize::validate(&AuthorizeParams::from_query(&query), &client, &resource).unwrap();
    let ids: Vec<String> = account.iter().map(|a| a.id.clone()).collect();
    let admins = tokens::choose_administrations(std::slice::from_ref(&chosen.id), &ids).unwrap();
    let url = block_on(tokens::approve(
        db,
        &w.platform.rng,
        &request,
        &w.principal.user_id,
        &admins,
        &Issuer::parse("https://portal.example").unwrap(),
        now,
    ))
    .unwrap();
    let code = url
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("code="))
        .unwrap()
        .to_owned();
    let pair = block_on(tokens::redeem_code(
        db,
        &w.platform.rng,
        &code,
        &CodeExchange {
            client_id: &client.client_id,
            redirect_uri: Some(CALLBACK),
            code_verifier: Some(VERIFIER),
            resource: Some(resource.as_str()),
        },
        &resource,
        now,
    ))
    .unwrap();
    let token = pair.access_token.expose().to_owned();

    let (p, principal) = w.request(Some(&token), Some(&resource), true);
    let listed = match w.call_on(&p, &principal, "list_divisions", json!({})) {
        ToolCallOutcome::Ok { structured, .. } => structured,
        other => panic!("{other:?}"),
    };
    assert_eq!(listed["count"], 1, "{listed}");
    assert_eq!(listed["administrations"][0]["division_ref"], "1000002");
    let (p, principal) = w.request(Some(&token), Some(&resource), true);
    match w.call_on(&p, &principal, "get_gl_accounts", json!({})) {
        ToolCallOutcome::Ok { structured, .. } => assert_eq!(structured["division"], 1_000_002),
        other => panic!("{other:?}"),
    }
    assert_eq!(p.db.calls(), 1, "one round trip for an OAuth caller too");
    let (p, principal) = w.request(Some(&token), Some(&resource), true);
    match w.call_on(
        &p,
        &principal,
        "get_gl_accounts",
        json!({"division": 1_000_001}),
    ) {
        ToolCallOutcome::ToolError(m) => assert!(m.contains("not one of this account's"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_failing_write_after_the_answer_does_not_change_the_answer() {
    let w = world(Plan::Pro);
    let key = w.api_key();
    let (p, principal) = w.request(Some(&key), None, true);
    let expected = w.call_on(&p, &principal, "list_divisions", json!({}));
    p.flush().unwrap();
    let logged = w.api_usage("ok");

    let (mut p, principal) = w.request(Some(&key), None, true);
    p.write_now = true;
    // The load is done; the next statement, the write after the answer,
    // fails.
    w.platform.db.fail_next(1);
    let answer = w.call_on(&p, &principal, "list_divisions", json!({}));
    assert_eq!(format!("{answer:?}"), format!("{expected:?}"));
    assert_eq!(p.reports.borrow().len(), 1, "the failure is reported");
    assert!(p.reports.borrow()[0].contains("after the answer"));
    assert_eq!(w.api_usage("ok"), logged, "the lost row is the only effect");
}

#[test]
fn only_a_single_tools_call_of_a_catalogue_tool_is_metered_in_the_load() {
    use boekhouding_mcp::tools::{catalogue, is_metered_tool, rpc_summary};
    for t in catalogue() {
        assert!(
            is_metered_tool(t["name"].as_str().unwrap()),
            "{}",
            t["name"]
        );
    }
    assert!(!is_metered_tool("drop_everything"));
    let call = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_divisions","arguments":{}}}"#;
    assert_eq!(
        rpc_summary(call),
        (Some("tools/call".into()), Some("list_divisions".into()))
    );
    let list =
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"name":"list_divisions"}}"#;
    assert_eq!(rpc_summary(list), (Some("tools/list".into()), None));
    // A JSON-RPC batch or garbage is not metered in advance (the engine
    // refuses a batch; a tool call would meter itself).
    let batch = format!("[{}]", std::str::from_utf8(call).unwrap());
    assert_eq!(rpc_summary(batch.as_bytes()), (None, None));
    assert_eq!(rpc_summary(b"{oops"), (None, None));
}

/// One `tools/call` through the HTTP rules and the engine, described as
/// the mcp-server describes it (`boekhouding_mcp::observe`) and finished
/// into a recording Analytics Engine port.
fn observed_tools_call<P: Platform>(
    host: &Bookkeeping<'_, P>,
    body: &str,
    metrics: &boekhouding_core::testing::RecordingMetrics,
) -> Value {
    use boekhouding_core::observe::{self, RequestLog};
    use boekhouding_mcp::http::{HttpCall, TransportPolicy, handle};
    let headers: Vec<(String, String)> = vec![
        (
            "Accept".into(),
            "application/json, text/event-stream".into(),
        ),
        ("Content-Type".into(), "application/json".into()),
    ];
    let engine = Engine::new(ServerIdentity {
        name: "praat-met-je-boekhouding".into(),
        title: "Praat met je Boekhouding".into(),
        version: "0.1.0".into(),
        instructions: String::new(),
    });
    let reply = block_on(handle(
        &engine,
        host,
        HttpCall {
            method: "POST",
            headers: &headers,
            body: body.as_bytes(),
        },
        &TransportPolicy::default(),
    ));
    let mut log = RequestLog::begin("req-1", "mcp-server", "/mcp", "POST");
    let (method, tool) = boekhouding_mcp::tools::rpc_summary(body.as_bytes());
    boekhouding_mcp::observe::describe_request(&mut log, method.as_deref(), tool.as_deref());
    boekhouding_mcp::observe::describe_principal(&mut log, host.principal);
    boekhouding_mcp::observe::describe_reply(&mut log, &reply);
    log.costs.exact_calls = 2;
    log.costs.d1_round_trips = 1;
    log.answered(reply.status, 17);
    serde_json::from_str(&observe::finish(&log, "production", metrics)).unwrap()
}

#[test]
fn a_demo_and_a_customer_tools_call_each_write_one_data_point_with_their_fields() {
    use boekhouding_core::observe::UserTag;
    use boekhouding_core::testing::RecordingMetrics;
    let w = world(Plan::Pro);
    let now = boekhouding_core::ports::Clock::now(&w.platform.clock);
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "list_divisions", "arguments": {}}})
    .to_string();

    let (platform, principal) = demo_host("pmjb_demo_bakkerij", now);
    let demo = Bookkeeping {
        platform: &platform,
        principal: &principal,
        portal_url: "https://portal.example",
        exact: None,
    };
    let metrics = RecordingMetrics::default();
    let line = observed_tools_call(&demo, &call, &metrics);
    let points = metrics.points();
    assert_eq!(points.len(), 1, "one point per demo tool call");
    assert_eq!(points[0].index, "demo");
    assert_eq!(
        points[0].blobs(),
        ["list_divisions", "ok", "demo", "production"]
    );
    assert_eq!(points[0].doubles(), [17.0, 2.0, 1.0]);
    assert_eq!(
        (line["user"].as_str(), line["auth"].as_str()),
        (Some("demo"), Some("demo"))
    );
    // A list is no tool call: no point.
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}).to_string();
    observed_tools_call(&demo, &list, &metrics);
    assert_eq!(metrics.points().len(), 1);

    let customer = Bookkeeping {
        platform: &w.platform,
        principal: &w.principal,
        portal_url: "https://portal.example",
        exact: Some(&w.settings),
    };
    let metrics = RecordingMetrics::default();
    let line = observed_tools_call(&customer, &call, &metrics);
    let points = metrics.points();
    assert_eq!(points.len(), 1, "one point per customer tool call");
    assert_eq!(points[0].index, UserTag::of(&w.principal.user_id).as_str());
    assert_eq!(
        points[0].blobs(),
        ["list_divisions", "ok", "api_key", "production"]
    );
    assert!(!line.to_string().contains(&w.principal.user_id), "{line}");
    // A tool the catalogue does not hold is named `other`, and a tool's
    // own refusal is a tool error, not ok.
    let unknown = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": {"name": "jan@example.nl", "arguments": {}}})
    .to_string();
    let line = observed_tools_call(&customer, &unknown, &metrics);
    assert_eq!(line["tool"], "other", "{line}");
    let refused = json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call",
        "params": {"name": "get_trial_balance", "arguments": {"division": 9}}})
    .to_string();
    observed_tools_call(&customer, &refused, &metrics);
    let points = metrics.points();
    assert_eq!(points.len(), 3);
    assert_eq!(points[2].blobs()[..2], ["get_trial_balance", "tool_error"]);
}

// ----- MCP Apps (the `io.modelcontextprotocol/ui` extension) -----

const UI_CAPS: &str = r#"{"extensions": {"io.modelcontextprotocol/ui": {"mimeTypes": ["text/html;profile=mcp-app"]}}}"#;

impl World {
    /// One request through the whole Streamable HTTP handling, as a
    /// client sends it: `(status, headers, body)`.
    fn http(&self, body: &Value, headers: &[(&str, &str)]) -> (u16, Vec<(String, String)>, Value) {
        let host = Bookkeeping {
            platform: &self.platform,
            principal: &self.principal,
            portal_url: "https://portal.example",
            exact: Some(&self.settings),
        };
        let engine = Engine::new(ServerIdentity {
            name: "t".into(),
            title: "T".into(),
            version: "0".into(),
            instructions: "i".into(),
        });
        let mut all: Vec<(String, String)> = vec![
            ("content-type".into(), "application/json".into()),
            (
                "accept".into(),
                "application/json, text/event-stream".into(),
            ),
        ];
        all.extend(
            headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned())),
        );
        let bytes = serde_json::to_vec(body).unwrap();
        let reply = block_on(boekhouding_mcp::handle(
            &engine,
            &host,
            boekhouding_mcp::HttpCall {
                method: "POST",
                headers: &all,
                body: &bytes,
            },
            &boekhouding_mcp::TransportPolicy::default(),
        ));
        (
            reply.status,
            reply.headers,
            reply.body.unwrap_or(Value::Null),
        )
    }

    /// A legacy request, in a session when `session` is given.
    fn legacy(&self, method: &str, params: Value, session: Option<&str>) -> Value {
        let mut headers = vec![("mcp-protocol-version", "2025-11-25")];
        if let Some(s) = session {
            headers.push(("mcp-session-id", s));
        }
        let (status, _, body) = self.http(
            &json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}),
            &headers,
        );
        assert_eq!(status, 200, "{method}: {body}");
        body
    }

    /// A stateless (2026-07-28) request with these client capabilities.
    fn modern(&self, method: &str, mut params: Value, caps: Value) -> Value {
        params["_meta"] = json!({
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": caps,
        });
        let name = params
            .get("name")
            .or_else(|| params.get("uri"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let mut headers = vec![
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", method),
        ];
        if let Some(n) = &name {
            headers.push(("mcp-name", n.as_str()));
        }
        let (status, _, body) = self.http(
            &json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}),
            &headers,
        );
        assert_eq!(status, 200, "{method}: {body}");
        body
    }

    /// `initialize` with these capabilities: the result and the session id
    /// the answer handed out, if any.
    fn initialize(&self, caps: Value) -> (Value, Option<String>) {
        let (status, headers, body) = self.http(
            &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-11-25", "capabilities": caps,
                "clientInfo": {"name": "host", "version": "1"}}}),
            &[],
        );
        assert_eq!(status, 200);
        let session = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("mcp-session-id"))
            .map(|(_, v)| v.clone());
        (body["result"].clone(), session)
    }
}

/// A negotiated `tools/list` with everything the extension added taken
/// away: each tool's `_meta.ui` (and a `_meta` left empty) and the
/// app-only tools.
fn without_ui(tools: &Value) -> Value {
    let kept: Vec<Value> = tools
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["_meta"]["ui"]["visibility"] != json!(["app"]))
        .map(|t| {
            let mut t = t.clone();
            let obj = t.as_object_mut().unwrap();
            if let Some(meta) = obj.get_mut("_meta").and_then(Value::as_object_mut) {
                meta.remove("ui");
                if meta.is_empty() {
                    obj.remove("_meta");
                }
            }
            t
        })
        .collect();
    Value::Array(kept)
}

#[test]
fn a_client_without_the_apps_extension_sees_exactly_the_answers_of_before() {
    let w = world(Plan::Pro);
    // The catalogue as the engine served it before the extension existed,
    // pinned by `tools_list_snapshot`.
    let pinned: Value = serde_json::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/snapshots/tools_list.json"),
        )
        .unwrap(),
    )
    .unwrap();
    // Legacy: no extension in `initialize`, no session id handed out.
    let (init, session) = w.initialize(json!({"roots": {}}));
    assert_eq!(session, None);
    assert_eq!(
        init["capabilities"],
        json!({"tools": {"listChanged": false}, "prompts": {"listChanged": false},
            "resources": {"listChanged": false, "subscribe": false}, "completions": {}})
    );
    let plain = w.legacy("tools/list", json!({}), None);
    assert_eq!(
        serde_json::to_string(&plain["result"]["tools"]).unwrap(),
        serde_json::to_string(&pinned).unwrap(),
        "tools/list of a client without the extension differs from the pinned catalogue"
    );
    // A session id that is not ours changes nothing either.
    let foreign = w.legacy("tools/list", json!({}), Some("some-other-session"));
    assert_eq!(foreign, plain);
    let modern_plain = w.modern("tools/list", json!({}), json!({}));
    assert_eq!(modern_plain["result"]["tools"], plain["result"]["tools"]);
    let discover = w.modern("server/discover", json!({}), json!({}));
    assert!(
        discover["result"]["capabilities"]
            .get("extensions")
            .is_none()
    );
    // No view among the resources, none readable, no helper tool callable.
    let resources = w.legacy("resources/list", json!({}), None);
    assert!(!resources.to_string().contains("ui://"));
    let read = w.legacy(
        "resources/read",
        json!({"uri": boekhouding_mcp::tools::views::PROFIT_LOSS}),
        None,
    );
    assert_eq!(read["error"]["code"], -32002, "{read}");
    let helper = w.legacy(
        "tools/call",
        json!({"name": "get_profit_loss_by_month", "arguments": {}}),
        None,
    );
    assert_eq!(helper["error"]["code"], -32602, "{helper}");

    // The negotiated answers differ only by what the extension adds.
    let (_, session) = w.initialize(serde_json::from_str(UI_CAPS).unwrap());
    let session = session.expect("a session id for the negotiated extension");
    let rich = w.legacy("tools/list", json!({}), Some(&session));
    assert_ne!(rich, plain);
    assert_eq!(without_ui(&rich["result"]["tools"]), pinned);
    let modern_rich = w.modern(
        "tools/list",
        json!({}),
        serde_json::from_str(UI_CAPS).unwrap(),
    );
    assert_eq!(modern_rich["result"]["tools"], rich["result"]["tools"]);
    let rich_resources = w.legacy("resources/list", json!({}), Some(&session));
    let kept: Vec<Value> = rich_resources["result"]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| !r["uri"].as_str().unwrap().starts_with("ui://"))
        .cloned()
        .collect();
    assert_eq!(Value::Array(kept), resources["result"]["resources"]);

    // Tool results are the same bytes with or without the extension, and
    // the same as the engine rendered a tool's outcome before.
    for (tool, args) in [
        ("get_profit_loss", json!({})),
        ("get_financial_snapshot", json!({})),
        ("get_outstanding_invoices", json!({"type": "receivable"})),
        ("get_profit_loss", json!({"year": 1999})),
    ] {
        let params = json!({"name": tool, "arguments": args});
        let without = w.legacy("tools/call", params.clone(), None);
        let with = w.legacy("tools/call", params.clone(), Some(&session));
        assert_eq!(
            serde_json::to_string(&without).unwrap(),
            serde_json::to_string(&with).unwrap(),
            "{tool}"
        );
        let before = match w.call(tool, args.clone()) {
            ToolCallOutcome::Ok { structured, text } => json!({
                "content": [{"type": "text", "text": text}],
                "structuredContent": structured,
                "isError": false,
            }),
            ToolCallOutcome::ToolError(message) => json!({
                "content": [{"type": "text", "text": message}],
                "isError": true,
            }),
            ToolCallOutcome::UnknownTool => panic!("{tool} unknown"),
        };
        assert_eq!(
            serde_json::to_string(&without["result"]).unwrap(),
            serde_json::to_string(&before).unwrap(),
            "{tool}"
        );
    }
}

#[test]
fn a_client_that_negotiates_mcp_apps_gets_tools_linked_to_listed_readable_views() {
    let w = world(Plan::Pro);
    let caps: Value = serde_json::from_str(UI_CAPS).unwrap();
    let (init, session) = w.initialize(caps.clone());
    let session = session.unwrap();
    assert!(session.starts_with(boekhouding_mcp::apps::UI_SESSION_PREFIX));
    assert_eq!(
        init["capabilities"]["extensions"]["io.modelcontextprotocol/ui"]["mimeTypes"],
        json!(["text/html;profile=mcp-app"])
    );
    let tools = w.legacy("tools/list", json!({}), Some(&session))["result"]["tools"].clone();
    let resources =
        w.legacy("resources/list", json!({}), Some(&session))["result"]["resources"].clone();
    let views = boekhouding_mcp::tools::views::all();
    // All seven: a build without esbuild leaves them out, which must not
    // pass.
    assert_eq!(views.len(), 7, "every view built");
    for view in &views {
        // Every tool a view renders names it; the view is listed with the
        // MCP Apps type and no origin in its policy.
        for tool in view.tools {
            let t = tools
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["name"] == *tool)
                .unwrap_or_else(|| panic!("{tool} listed"));
            assert_eq!(t["_meta"]["ui"]["resourceUri"], view.uri, "{tool}");
            assert!(
                t["_meta"]["ui"].get("visibility").is_none(),
                "{tool} is for the model too"
            );
        }
        let listed = resources
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["uri"] == view.uri)
            .unwrap_or_else(|| panic!("{} listed", view.uri));
        assert_eq!(listed["mimeType"], "text/html;profile=mcp-app");
        let read = w.legacy("resources/read", json!({"uri": view.uri}), Some(&session));
        let content = &read["result"]["contents"][0];
        assert_eq!(content["uri"], view.uri);
        assert_eq!(content["mimeType"], "text/html;profile=mcp-app");
        let html = content["text"].as_str().unwrap();
        assert!(html.starts_with("<!doctype html>"), "{}", view.uri);
        assert!(html.contains("connect-src 'none'"), "{}", view.uri);
        // Small: a view is one document of its own code, no framework.
        assert!(
            html.len() < 64 * 1024,
            "{} is {} bytes",
            view.uri,
            html.len()
        );
        assert_eq!(listed["size"], html.len());
        for csp in [
            &listed["_meta"]["ui"]["csp"],
            &content["_meta"]["ui"]["csp"],
        ] {
            for list in [
                "connectDomains",
                "resourceDomains",
                "frameDomains",
                "baseUriDomains",
            ] {
                assert_eq!(csp[list], json!([]), "{} {list}", view.uri);
            }
        }
        // The stateless revision: listed and readable too, cacheable by
        // anyone for an hour (the same document for every caller).
        let modern = w.modern("resources/read", json!({"uri": view.uri}), caps.clone());
        assert_eq!(modern["result"]["contents"], read["result"]["contents"]);
        assert_eq!(modern["result"]["ttlMs"], 3_600_000);
        assert_eq!(modern["result"]["cacheScope"], "public");
    }
    // Every resourceUri a tool names exists; helper tools are app-only.
    for t in tools.as_array().unwrap() {
        if let Some(uri) = t["_meta"]["ui"]["resourceUri"].as_str() {
            assert!(views.iter().any(|v| v.uri == uri), "{uri}");
        }
    }
    let helper = tools
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "get_profit_loss_by_month")
        .unwrap();
    assert_eq!(helper["_meta"]["ui"]["visibility"], json!(["app"]));
    let discover = w.modern("server/discover", json!({}), caps);
    assert_eq!(
        discover["result"]["capabilities"]["extensions"],
        init["capabilities"]["extensions"]
    );
}

#[test]
fn the_profit_and_loss_by_month_adds_up_to_the_profit_and_loss() {
    let w = world(Plan::Pro);
    let (_, session) = w.initialize(serde_json::from_str(UI_CAPS).unwrap());
    let session = session.unwrap();
    let year = i64::from(chrono::Datelike::year(&chrono::Utc::now()));
    let r = w.legacy(
        "tools/call",
        json!({"name": "get_profit_loss_by_month", "arguments": {"year": year}}),
        Some(&session),
    );
    let months = r["result"]["structuredContent"]["months"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(months.len(), 12);
    let whole = w.ok("get_profit_loss", json!({"year": year}));
    for field in ["revenue", "cost_of_sales", "other_costs", "result"] {
        let sum: i64 = months.iter().map(|m| cents(&m[field])).sum();
        assert_eq!(sum, cents(&whole[field]), "{field}");
    }
    let mut booked = 0;
    for m in &months {
        let p = m["period"].as_i64().unwrap();
        let one = w.ok(
            "get_profit_loss",
            json!({"year": year, "period_from": p, "period_to": p}),
        );
        let prev = w.ok(
            "get_profit_loss",
            json!({"year": year - 1, "period_from": p, "period_to": p}),
        );
        assert_eq!(cents(&m["revenue"]), cents(&one["revenue"]), "{p}");
        assert_eq!(cents(&m["result"]), cents(&one["result"]), "{p}");
        assert_eq!(
            cents(&m["previous_year_revenue"]),
            cents(&prev["revenue"]),
            "{p}"
        );
        assert_eq!(
            cents(&m["previous_year_result"]),
            cents(&prev["result"]),
            "{p}"
        );
        booked += cents(&prev["revenue"]).abs();
    }
    assert!(booked > 0, "the previous year has revenue to compare with");
}

#[test]
fn the_cash_flow_by_week_adds_up_to_the_forecast() {
    let w = world(Plan::Pro);
    let (_, session) = w.initialize(serde_json::from_str(UI_CAPS).unwrap());
    let session = session.unwrap();
    // Two horizons: each pair of calls costs a handful of the sandbox's
    // per-minute Exact requests.
    for days in [30, 90] {
        let r = w.legacy(
            "tools/call",
            json!({"name": "get_cashflow_by_week", "arguments": {"forecast_days": days}}),
            Some(&session),
        );
        let weekly = &r["result"]["structuredContent"];
        let forecast = w.ok("get_cashflow_forecast", json!({"forecast_days": days}));
        let weeks = weekly["weeks"].as_array().unwrap();
        assert!(
            weeks.len() >= days as usize / 7,
            "{days}: {} weeks",
            weeks.len()
        );
        let sum = |f: &str| weeks.iter().map(|x| cents(&x[f])).sum::<i64>();
        assert_eq!(
            sum("expected_in"),
            cents(&forecast["expected_in"]),
            "{days}"
        );
        assert_eq!(
            sum("expected_out"),
            cents(&forecast["expected_out"]),
            "{days}"
        );
        assert_eq!(
            cents(&weekly["bank_balance"]),
            cents(&forecast["bank_balance"])
        );
        assert_eq!(
            cents(&weeks.last().unwrap()["balance"]),
            cents(&forecast["forecast_balance"]),
            "{days}"
        );
        assert_eq!(weekly["horizon"], forecast["horizon"]);
        // Each week's balance follows from the one before.
        let mut balance = cents(&weekly["bank_balance"]);
        for x in weeks {
            balance += cents(&x["expected_in"]) - cents(&x["expected_out"]);
            assert_eq!(cents(&x["balance"]), balance);
        }
    }
}
