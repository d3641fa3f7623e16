//! The browser group of the end-to-end suite (`PMJB_E2E_ONLY=portal`):
//! scenarios in `tests/browser/` run by its runner with the pinned Node 22,
//! driving Debian's Chromium through the pinned playwright-core.

use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::project_root;
use crate::tools::Tools;

/// Runs one scenario file of `tests/browser/` with `--name value` options.
/// Its lines (one per check, then `N passed, N failed`) go straight to the
/// terminal; a failed check makes the whole scenario fail.
pub fn run_scenario(tools: &Tools, scenario: &str, args: &[(&str, &str)]) -> Result<()> {
    let root = project_root();
    let dir = root.join("tests/browser");
    let mut cmd: Command = tools.node();
    cmd.arg(dir.join("run.mjs"))
        .arg(dir.join(scenario))
        .arg("--screenshots")
        .arg(root.join(".state/screenshots"))
        .env("PMJB_NODE_MODULES", &tools.node_modules)
        .env("PMJB_CHROMIUM", crate::tools::CHROMIUM)
        .current_dir(&root);
    for (name, value) in args {
        cmd.arg(format!("--{name}")).arg(value);
    }
    let status = cmd.status()?;
    if !status.success() {
        bail!("browser scenario {scenario} failed ({status}); its failed checks are printed above");
    }
    Ok(())
}

/// The browser scenarios, each as one check of the suite.
pub fn checks(tools: &Tools, sandbox: &exact_sandbox::Sandbox) -> Vec<(&'static str, Result<()>)> {
    vec![
        (
            "browser: the harness's strict checks pass a clean page and fail one with an axe violation, a console error, a page error and an outside request",
            run_scenario(tools, "harness-self-test.mjs", &[]),
        ),
        (
            "browser: sign-in on the Exact sandbox's login page (wrong password, demo/demo to a code and the echoed state, denied consent), screenshots at 1280 and 390 pixels",
            run_scenario(
                tools,
                "exact-sandbox-sign-in.mjs",
                &[
                    ("base-url", sandbox.base_url()),
                    ("client-id", sandbox.client_id()),
                ],
            ),
        ),
        (
            "browser: the local Stripe's hosted pages (checkout declines 4000…0002 on the page, pays with 4242… back to the success URL with the session id; the billing portal switches plan, cancels at period end and returns), accessible",
            stripe_checkout(tools, sandbox),
        ),
    ]
}

fn stripe_checkout(tools: &Tools, sandbox: &exact_sandbox::Sandbox) -> Result<()> {
    let stripe = sandbox.stripe_config();
    let price = |i: usize| stripe.prices.get(i).map_or("", |p| p.id.as_str());
    run_scenario(
        tools,
        "stripe-sandbox-checkout.mjs",
        &[
            ("base-url", sandbox.base_url()),
            ("secret-key", stripe.secret_key.as_str()),
            ("price", price(0)),
            ("other-price", price(1)),
        ],
    )
}

/// The customer portal in the browser, as one customer's life: sign up
/// through the sandbox's page and call a tool with the key through the
/// official Python SDK; the plan's administration limit; rename and revoke
/// the key (the SDK then gets 401); reconnect after Exact revoked consent;
/// sign out; the portal in English; delete the account (then no row of the user is left, table by
/// table).
pub fn portal_checks(
    tools: &Tools,
    state: &std::path::Path,
    sandbox: &exact_sandbox::Sandbox,
    portal_port: u16,
    mcp_port: u16,
) -> Vec<(&'static str, Result<()>)> {
    let base = format!("http://127.0.0.1:{portal_port}");
    let mcp_url = format!("http://127.0.0.1:{mcp_port}/mcp");
    let key_file = state.join("portal-first-run-key");
    let d1 = crate::demo::local_d1_file(state)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let scenario = |mode: &str| {
        let folder = format!("portal-{mode}");
        run_scenario(
            tools,
            "portal.mjs",
            &[
                ("scenario-name", folder.as_str()),
                ("base-url", base.as_str()),
                ("sandbox-url", sandbox.base_url()),
                ("mode", mode),
                ("username", "nieuw"),
                ("email", NEW_CUSTOMER),
                ("d1", &d1),
                ("out", &key_file.to_string_lossy()),
            ],
        )
    };
    let sdk = |key: &str| -> Result<i32> {
        let out = std::process::Command::new(&tools.python)
            .arg(tools.root.join("tests/sdk/one_call.py"))
            .arg(&mcp_url)
            .arg(key)
            .arg("get_outstanding_invoices")
            .arg(r#"{"type": "receivable"}"#)
            .output()?;
        println!("    sdk: {}", String::from_utf8_lossy(&out.stdout).trim());
        Ok(out.status.code().unwrap_or(-1))
    };
    let mut out = Vec::new();
    out.push((
        "portal browser: public pages pass axe at both widths; a new customer signs in with Exact, gets a key once and the official Python SDK answers a tool with it",
        scenario("first-run").and_then(|()| {
            let key = std::fs::read_to_string(&key_file)?;
            let code = sdk(key.trim())?;
            if code != 0 {
                bail!("the SDK's tool call with the portal's key failed (exit {code})");
            }
            Ok(())
        }),
    ));
    out.push((
        "portal browser: switching an administration on past the free plan's limit shows why",
        scenario("limit"),
    ));
    out.push((
        "portal browser: rename and revoke the key (the SDK then gets 401); a cross-site form and a foreign return_to are harmless",
        scenario("manage").and_then(|()| {
            let key = std::fs::read_to_string(&key_file)?;
            let code = sdk(key.trim())?;
            if code != 2 {
                bail!("a revoked key was not refused with 401 (SDK exit {code})");
            }
            Ok(())
        }),
    ));
    out.push((
        "portal browser: after Exact revoked consent the dashboard says so and one click reconnects",
        scenario("reconnect"),
    ));
    out.push((
        "portal browser: signing out ends the session",
        scenario("signout"),
    ));
    out.push((
        "portal browser: from the English pages the sign-in, the header's language switch and the dashboard speak English (axe at both widths); the preferences form switches back",
        scenario("english"),
    ));
    out.push((
        "portal browser: deleting the account leaves no row of the customer in any table",
        scenario("delete").and_then(|()| nothing_left(state)),
    ));
    out
}

/// Paying for a plan in the browser, one customer's way: sign up on free,
/// reach the monthly limit (the official Python SDK is told so, with the
/// upgrade link), pay at the local Stripe's checkout (a declined card
/// first), call the tool again under the new limit; then the billing
/// portal: up to pro, a cancellation that waits for the period's end, and
/// free after it.
pub fn billing_checks(
    tools: &Tools,
    state: &std::path::Path,
    sandbox: &exact_sandbox::Sandbox,
    portal_port: u16,
    mcp_port: u16,
    cron_port: u16,
) -> Vec<(&'static str, Result<()>)> {
    // The portal group deleted this customer's account at its end (and a
    // billing-only run never made it): a new customer again.
    const LOGIN: &str = "nieuw";
    const EMAIL: &str = NEW_CUSTOMER;
    let base = format!("http://127.0.0.1:{portal_port}");
    let mcp_url = format!("http://127.0.0.1:{mcp_port}/mcp");
    let key_file = state.join("billing-key");
    let newest_file = state.join("billing-newest-key");
    let d1 = crate::demo::local_d1_file(state)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let cron_url = format!("http://127.0.0.1:{cron_port}");
    let scenario = |mode: &str| {
        run_scenario(
            tools,
            "billing.mjs",
            &[
                ("scenario-name", &format!("billing-{mode}")),
                ("base-url", base.as_str()),
                ("sandbox-url", sandbox.base_url()),
                ("mode", mode),
                ("username", LOGIN),
                ("email", EMAIL),
                ("d1", &d1),
                ("cron-url", &cron_url),
                ("out", &key_file.to_string_lossy()),
                ("newest-out", &newest_file.to_string_lossy()),
            ],
        )
    };
    let sdk = |key: &str| -> Result<(i32, String)> {
        let out = std::process::Command::new(&tools.python)
            .arg(tools.root.join("tests/sdk/one_call.py"))
            .arg(&mcp_url)
            .arg(key)
            .arg("list_divisions")
            .output()?;
        let line = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        println!("    sdk: {line}");
        Ok((out.status.code().unwrap_or(-1), line))
    };
    let at_the_limit = || -> Result<()> {
        let db = rusqlite::Connection::open(crate::demo::local_d1_file(state)?)?;
        let month = chrono::Utc::now().format("%Y-%m").to_string();
        let changed = db.execute(
            "INSERT INTO usage_counters (user_id, month, tool_calls)
             SELECT id, ?2, 200 FROM users WHERE email = ?1
             ON CONFLICT (user_id, month) DO UPDATE SET tool_calls = 200",
            rusqlite::params![EMAIL, month],
        )?;
        if changed != 1 {
            bail!("no free customer {EMAIL} to bring to the limit");
        }
        Ok(())
    };
    let mut out = Vec::new();
    out.push((
        "billing browser: a free customer at the monthly limit is told so by the SDK, with a link straight to paying",
        scenario("signup").and_then(|()| {
            at_the_limit()?;
            let key = std::fs::read_to_string(&key_file)?;
            let (code, line) = sdk(key.trim())?;
            if code == 0 || !line.contains("Monthly limit reached") || !line.contains("/billing/upgrade?plan=starter") {
                bail!("expected the limit message with the upgrade link, got exit {code}: {line}");
            }
            Ok(())
        }),
    ));
    out.push((
        "billing browser: the local Stripe declines a card (plan unchanged), takes a paying one, the signed webhook makes the plan Starter, and the SDK's next call is answered",
        scenario("upgrade").and_then(|()| {
            let key = std::fs::read_to_string(&key_file)?;
            let (code, line) = sdk(key.trim())?;
            if code != 0 {
                bail!("the call after paying failed (exit {code}): {line}");
            }
            Ok(())
        }),
    ));
    out.push((
        "billing browser: the billing portal moves to Pro at once (four keys, three administrations); a cancellation keeps Pro until the period's end (shown on the dashboard), then Free: the newest key is refused saying why, the oldest reads the two administrations free serves",
        scenario("manage").and_then(|()| {
            let newest = std::fs::read_to_string(&newest_file)?;
            let (code, line) = sdk(newest.trim())?;
            if code == 0 || !line.contains("403") {
                bail!("the newest key beyond free's three still works (exit {code}): {line}");
            }
            // The oldest key still works, and free's monthly limit
            // applies again at once (the month already holds 201 calls).
            let oldest = std::fs::read_to_string(&key_file)?;
            let (code, line) = sdk(oldest.trim())?;
            if code == 0 || !line.contains("Monthly limit reached: 201 of 200") {
                bail!("free's call limit should apply again (exit {code}): {line}");
            }
            // A new month: the oldest key reads the two administrations
            // free serves (the default first), not the third.
            let db = rusqlite::Connection::open(crate::demo::local_d1_file(state)?)?;
            db.execute(
                "UPDATE usage_counters SET tool_calls = 0
                 WHERE user_id = (SELECT id FROM users WHERE email = ?1)",
                [EMAIL],
            )?;
            let (code, line) = sdk(oldest.trim())?;
            let listed = line.matches("(active)").count();
            if code != 0 || listed != 2 {
                bail!("the oldest key should read two administrations on free (exit {code}): {line}");
            }
            Ok(())
        }),
    ));
    out.push((
        "billing webhook: Stripe's replay of an applied event is answered 200 and applied once; a replay signed 10 minutes ago and a forged signature get 400; the plan stays as paid",
        webhook_check(state, sandbox, portal_port, EMAIL),
    ));
    out
}

/// Hostile deliveries at the real endpoint, through the local Stripe's
/// admin API (replays as Stripe makes them) and by hand (a forgery).
fn webhook_check(
    state: &std::path::Path,
    sandbox: &exact_sandbox::Sandbox,
    portal_port: u16,
    email: &str,
) -> Result<()> {
    use crate::process::http_request;
    let port: u16 = sandbox
        .base_url()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .context("the sandbox's port")?;
    let events = |()| -> Result<Vec<serde_json::Value>> {
        let r = http_request(port, "GET", "/__admin/stripe/events", &[], "")?;
        Ok(r.json()?.as_array().cloned().unwrap_or_default())
    };
    let db = rusqlite::Connection::open(crate::demo::local_d1_file(state)?)?;
    let plan = || -> Result<String> {
        Ok(
            db.query_row("SELECT plan FROM users WHERE email = ?1", [email], |r| {
                r.get(0)
            })?,
        )
    };
    let before = plan()?;
    // The cancellation this customer's subscription ended with.
    let deleted = events(())?
        .into_iter()
        .rev()
        .find(|e| e["type"] == "customer.subscription.deleted")
        .context("no customer.subscription.deleted event to replay")?;
    let id = deleted["id"].as_str().context("event id")?.to_owned();
    let last_status = |id: &str| -> Result<Option<i64>> {
        Ok(events(())?
            .into_iter()
            .find(|e| e["id"] == id)
            .and_then(|e| e["deliveries"].as_array().and_then(|d| d.last().cloned()))
            .and_then(|d| d["status"].as_i64()))
    };
    let replay = |age: i64| -> Result<Option<i64>> {
        let attempts_before = events(())?
            .into_iter()
            .find(|e| e["id"] == id.as_str())
            .and_then(|e| e["deliveries"].as_array().map(Vec::len))
            .unwrap_or(0);
        http_request(
            port,
            "POST",
            &format!("/__admin/stripe/events/{id}/replay"),
            &[("Content-Type", "application/json")],
            &format!("{{\"age_seconds\":{age}}}"),
        )?;
        for _ in 0..40 {
            let now = events(())?
                .into_iter()
                .find(|e| e["id"] == id.as_str())
                .and_then(|e| e["deliveries"].as_array().map(Vec::len))
                .unwrap_or(0);
            if now > attempts_before {
                return last_status(&id);
            }
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
        bail!("the replay of {id} was not delivered");
    };
    let fresh = replay(0)?;
    if fresh != Some(200) {
        bail!("a fresh replay was answered {fresh:?}, not 200");
    }
    let applied: i64 = db.query_row(
        "SELECT COUNT(*) FROM billing_events WHERE event_id = ?1",
        [&id],
        |r| r.get(0),
    )?;
    if applied != 1 {
        bail!("event {id} recorded {applied} times");
    }
    let stale = replay(600)?;
    if stale != Some(400) {
        bail!("a replay signed 10 minutes ago was answered {stale:?}, not 400");
    }
    let forged = http_request(
        portal_port,
        "POST",
        "/stripe/webhook",
        &[
            ("Content-Type", "application/json"),
            (
                "Stripe-Signature",
                &format!(
                    "t={},v1={}",
                    chrono::Utc::now().timestamp(),
                    "ab".repeat(32)
                ),
            ),
        ],
        r#"{"id":"evt_forged","type":"customer.subscription.updated","data":{"object":{"id":"sub_x","customer":"cus_x"}}}"#,
    )?;
    if forged.status != 400 {
        bail!("a forged signature was answered {}", forged.status);
    }
    let after = plan()?;
    if after != before {
        bail!("the plan changed from {before} to {after}");
    }
    Ok(())
}

const NEW_CUSTOMER: &str = "sanne@administratiekantoor.example";

/// After deletion: no row of the customer anywhere, table by table.
fn nothing_left(state: &std::path::Path) -> Result<()> {
    let db = rusqlite::Connection::open(crate::demo::local_d1_file(state)?)?;
    let users: i64 = db.query_row(
        "SELECT COUNT(*) FROM users WHERE email = ?1",
        [NEW_CUSTOMER],
        |r| r.get(0),
    )?;
    if users != 0 {
        bail!("the user row is still there");
    }
    // Rows that point at no user any more would be the customer's
    // leftovers: every user-owned table, checked for orphans.
    for (table, column) in [
        ("connections", "user_id"),
        ("api_keys", "user_id"),
        ("sessions", "user_id"),
        ("login_states", "user_id"),
        ("usage_counters", "user_id"),
        ("api_usage", "user_id"),
        ("usage_rollups", "user_id"),
        ("email_queue", "user_id"),
        ("tos_acceptances", "user_id"),
        ("oauth_grants", "user_id"),
    ] {
        let orphans: i64 = db.query_row(
            &format!(
                "SELECT COUNT(*) FROM {table} WHERE {column} IS NOT NULL AND {column} NOT IN (SELECT id FROM users)"
            ),
            [],
            |r| r.get(0),
        )?;
        if orphans != 0 {
            bail!("{orphans} row(s) of a deleted user left in {table}");
        }
    }
    // OAuth codes and tokens belong to a user through their grant.
    for table in ["oauth_auth_codes", "oauth_tokens"] {
        let orphans: i64 = db.query_row(
            &format!(
                "SELECT COUNT(*) FROM {table} WHERE grant_id NOT IN (SELECT id FROM oauth_grants)"
            ),
            [],
            |r| r.get(0),
        )?;
        if orphans != 0 {
            bail!("{orphans} row(s) left in {table} without their grant");
        }
    }
    let administrations: i64 = db.query_row(
        "SELECT COUNT(*) FROM administrations WHERE connection_id NOT IN (SELECT id FROM connections)",
        [],
        |r| r.get(0),
    )?;
    if administrations != 0 {
        bail!("{administrations} administration(s) left without a connection");
    }
    let audit: i64 = db.query_row(
        "SELECT COUNT(*) FROM audit_log WHERE action = 'account_deleted' AND actor_email IS NULL",
        [],
        |r| r.get(0),
    )?;
    if audit != 1 {
        bail!("expected one anonymous audit line of the deletion, found {audit}");
    }
    Ok(())
}
