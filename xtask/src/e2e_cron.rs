//! End-to-end checks of the token cron in workerd against the sandbox:
//! the scheduled handler is triggered through wrangler's local trigger
//! route with a chosen scheduled time (`time=`), which is how these checks
//! move the cron through minutes and days without sleeping. The local D1
//! file is read and prepared directly; the sandbox's request log and mail
//! catcher say what reached Exact and what users received.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use boekhouding_core::storage::{SqlExecutor, Statement};
use boekhouding_sqlite::SqliteDb;
use futures::executor::block_on;
use serde_json::{Value, json};

use crate::demo::Account;
use crate::process::{DevOptions, DevServer, http_get, http_request};
use crate::tools::Tools;

const CRON: &str = "*/5+*+*+*+*";

fn expect(cond: bool, msg: impl FnOnce() -> String) -> Result<()> {
    if cond { Ok(()) } else { bail!(msg()) }
}

fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// What the cron checks work with.
pub struct CronWorld<'a> {
    pub d1: PathBuf,
    pub sandbox: &'a exact_sandbox::Sandbox,
    pub cron_port: u16,
    pub mcp_port: u16,
    pub demo: &'a Account,
    pub other: &'a Account,
}

impl CronWorld<'_> {
    fn db(&self) -> Result<SqliteDb> {
        SqliteDb::open(&self.d1).map_err(|e| anyhow::anyhow!("{e}"))
    }

    fn exec(&self, sql: &str) -> Result<()> {
        self.db()?
            .raw()
            .execute_batch(sql)
            .with_context(|| format!("running {sql}"))
    }

    fn rows(
        &self,
        sql: &'static str,
        params: Vec<boekhouding_core::storage::SqlValue>,
    ) -> Result<Vec<Value>> {
        let db = self.db()?;
        let rows =
            block_on(db.query(Statement::new(sql, params))).map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(rows.into_iter().map(Value::Object).collect())
    }

    /// The connection row of an account.
    fn conn(&self, account: &Account) -> Result<Value> {
        self.rows(
            "SELECT c.id, c.status, c.retry_count, c.next_retry_at, c.last_error,
                    c.token_generation, c.access_expires_at, c.refresh_expires_at,
                    c.lease_owner, c.reconnect_notified_at
               FROM connections c JOIN users u ON u.id = c.user_id WHERE u.email = ?",
            vec![account.email.as_str().into()],
        )?
        .into_iter()
        .next()
        .with_context(|| format!("no connection for {}", account.email))
    }

    fn set_conn(&self, account: &Account, assignments: &str) -> Result<()> {
        let id = self.conn(account)?["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        self.exec(&format!(
            "UPDATE connections SET {assignments} WHERE id = '{id}'"
        ))
    }

    /// Triggers a scheduled run (at `at` Unix seconds, or now) and returns
    /// its `cron_runs` row.
    fn tick(&self, at: Option<i64>) -> Result<Value> {
        let path = match at {
            Some(s) => format!("/cdn-cgi/handler/scheduled?cron={CRON}&time={}", s * 1000),
            None => format!("/cdn-cgi/handler/scheduled?cron={CRON}"),
        };
        let r = http_get(self.cron_port, &path)?;
        expect(r.status == 200, || {
            format!("trigger: {} {}", r.status, r.body)
        })?;
        self.rows(
            "SELECT * FROM cron_runs WHERE mode <> 'consume' ORDER BY id DESC LIMIT 1",
            vec![],
        )?
        .into_iter()
        .next()
        .context("no cron run recorded")
    }

    fn admin(&self, path: &str, body: Value) -> Result<Value> {
        let port = sandbox_port(self.sandbox)?;
        let r = http_request(
            port,
            "POST",
            path,
            &[("Content-Type", "application/json")],
            &body.to_string(),
        )?;
        expect(r.status == 200, || {
            format!("{path}: {} {}", r.status, r.body)
        })?;
        r.json()
    }

    fn token_requests(&self) -> Vec<exact_sandbox::LogEntry> {
        self.sandbox
            .requests()
            .into_iter()
            .filter(|r| r.path == "/api/oauth2/token")
            .collect()
    }

    /// Makes an account's connection need a refresh now, as if it had just
    /// been used: its access token expired here and at Exact.
    fn expire(&self, account: &Account, username: &str) -> Result<()> {
        self.admin("/__admin/expire-tokens", json!({"username": username}))?;
        let now = unix_now();
        self.set_conn(
            account,
            &format!("access_expires_at = {}, last_used_at = {now}", now - 60),
        )
    }
}

fn sandbox_port(sandbox: &exact_sandbox::Sandbox) -> Result<u16> {
    sandbox
        .base_url()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .context("sandbox port")
}

pub fn race_check(w: &CronWorld<'_>) -> Result<()> {
    w.admin("/__admin/reset", json!({}))?;
    w.expire(w.demo, "demo")?;
    let generation = w.conn(w.demo)?["token_generation"].as_i64().unwrap_or(0);
    let key = w.demo.api_key.as_str();
    let divisions = w.demo.divisions.clone();
    let barrier = std::sync::Barrier::new(51);
    let (calls, tick) = std::thread::scope(|s| {
        let calls: Vec<_> = (0..50)
            .map(|i| {
                let (barrier, divisions) = (&barrier, &divisions);
                s.spawn(move || {
                    barrier.wait();
                    crate::e2e_mcp::tool(
                        w.mcp_port,
                        key,
                        1000 + i,
                        "get_outstanding_invoices",
                        json!({"division": divisions[i as usize % divisions.len()], "type": "receivable"}),
                    )
                })
            })
            .collect();
        let tick = s.spawn(|| {
            barrier.wait();
            w.tick(None)
        });
        (
            calls
                .into_iter()
                .map(|h| {
                    h.join()
                        .map_err(|_| anyhow::anyhow!("call thread panicked"))?
                })
                .collect::<Vec<_>>(),
            tick.join()
                .map_err(|_| anyhow::anyhow!("tick thread panicked")),
        )
    });
    let failed: Vec<String> = calls
        .iter()
        .filter_map(|c| c.as_ref().err().map(|e| format!("{e:#}")))
        .collect();
    expect(failed.is_empty(), || {
        let mut seen = std::collections::BTreeMap::new();
        for r in w.sandbox.requests() {
            let p = r.path.split('/').take(5).collect::<Vec<_>>().join("/");
            *seen
                .entry(format!("{p} {} {:?}", r.status, r.grant_type))
                .or_insert(0) += 1;
        }
        format!(
            "{} of 50 calls failed: {:?}; Exact saw {seen:?}",
            failed.len(),
            failed.first()
        )
    })?;
    let run = tick??;
    let refreshes: Vec<_> = w
        .token_requests()
        .into_iter()
        .filter(|r| r.grant_type.as_deref() == Some("refresh_token"))
        .collect();
    expect(refreshes.len() == 1, || {
        format!("{} refreshes reached Exact: {refreshes:?}", refreshes.len())
    })?;
    expect(refreshes[0].status == 200, || format!("{refreshes:?}"))?;
    let unauthorized = w
        .sandbox
        .requests()
        .iter()
        .filter(|r| r.status == 401)
        .count();
    expect(unauthorized == 0, || {
        format!("{unauthorized} requests got 401")
    })?;
    let after = w.conn(w.demo)?;
    expect(
        after["token_generation"].as_i64() == Some(generation + 1)
            && after["status"] == "active"
            && after["lease_owner"].is_null(),
        || format!("connection after: {after}"),
    )?;
    expect(
        run["refreshed"].as_i64().unwrap_or(0) + run["skipped"].as_i64().unwrap_or(0) <= 1
            && run["failed"] == 0,
        || format!("cron run: {run}"),
    )
}

/// A tool call that must refresh, whose client goes away while Exact is
/// still answering the token request: the refresh-and-store runs in
/// `ctx.wait_until`, so the rotated tokens are stored anyway and the next
/// call works without Exact ever seeing the old refresh token again.
pub fn disconnect_check(w: &CronWorld<'_>) -> Result<()> {
    use std::io::Write;
    w.admin("/__admin/reset", json!({}))?;
    w.expire(w.demo, "demo")?;
    let generation = w.conn(w.demo)?["token_generation"].as_i64().unwrap_or(0);
    w.admin(
        "/__admin/faults",
        json!({"kind": "delay", "delay_ms": 2000, "path": "/api/oauth2/token"}),
    )?;
    // A tool that reads Exact (list_divisions answers from D1 alone).
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": {"name": "get_outstanding_invoices", "arguments": {"type": "receivable"}}})
    .to_string();
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", w.mcp_port))?;
    write!(
        stream,
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
         Authorization: Bearer {key}\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2025-11-25\r\n\
         Content-Length: {len}\r\n\r\n{body}",
        port = w.mcp_port,
        key = w.demo.api_key,
        len = body.len()
    )?;
    stream.flush()?;
    std::thread::sleep(Duration::from_millis(500));
    // The client goes away while Exact holds the token response.
    stream.shutdown(std::net::Shutdown::Both)?;
    drop(stream);
    // The delayed token answer arrives after 2 s; give the store a moment.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let c = w.conn(w.demo)?;
        if c["token_generation"].as_i64() == Some(generation + 1) && c["lease_owner"].is_null() {
            break;
        }
        expect(Instant::now() < deadline, || {
            format!("the rotated tokens were never stored: {c}")
        })?;
        std::thread::sleep(Duration::from_millis(200));
    }
    crate::e2e_mcp::tool(
        w.mcp_port,
        &w.demo.api_key,
        8,
        "get_outstanding_invoices",
        json!({"type": "payable"}),
    )?;
    let refreshes: Vec<_> = w
        .token_requests()
        .into_iter()
        .filter(|r| r.grant_type.as_deref() == Some("refresh_token"))
        .collect();
    expect(refreshes.len() == 1 && refreshes[0].status == 200, || {
        format!("Exact saw these refreshes: {refreshes:?}")
    })?;
    let reuse = w
        .sandbox
        .requests()
        .iter()
        .filter(|r| r.status == 401)
        .count();
    expect(reuse == 0, || {
        format!("{reuse} requests were refused with 401")
    })?;
    let c = w.conn(w.demo)?;
    expect(c["status"] == "active", || format!("connection after: {c}"))
}

pub fn backoff_check(w: &CronWorld<'_>) -> Result<()> {
    w.admin("/__admin/reset", json!({}))?;
    // Only `other` is due in this check.
    w.set_conn(w.demo, "last_used_at = NULL")?;
    w.expire(w.other, "other")?;
    let t0 = unix_now();
    let retry_state = |w: &CronWorld<'_>| -> Result<(String, i64, Option<i64>)> {
        let c = w.conn(w.other)?;
        Ok((
            c["status"].as_str().unwrap_or_default().to_owned(),
            c["retry_count"].as_i64().unwrap_or(-1),
            c["next_retry_at"].as_i64(),
        ))
    };
    w.admin(
        "/__admin/faults",
        json!({"kind": "status", "status": 503, "path": "/api/oauth2/token"}),
    )?;
    let run = w.tick(Some(t0))?;
    let got = retry_state(w)?;
    expect(got == ("retry_pending".into(), 1, Some(t0 + 300)), || {
        format!("after a 503: {got:?}; run {run}")
    })?;
    // Four minutes later nothing is due and Exact hears nothing.
    let before = w.token_requests().len();
    let run = w.tick(Some(t0 + 240))?;
    expect(
        w.token_requests().len() == before && run["due"] == 0,
        || format!("early tick: {run}"),
    )?;
    let mut at = t0 + 300;
    for (retry, fault, wait) in [
        (
            2,
            json!({"kind": "timeout", "delay_ms": 2500, "path": "/api/oauth2/token"}),
            900,
        ),
        (
            3,
            json!({"kind": "rate_limit", "path": "/api/oauth2/token"}),
            3600,
        ),
    ] {
        w.admin("/__admin/faults", fault.clone())?;
        let run = w.tick(Some(at))?;
        let got = retry_state(w)?;
        expect(
            got == ("retry_pending".into(), retry, Some(at + wait)),
            || format!("after {fault}: {got:?}; run {run}"),
        )?;
        at += wait;
    }
    // Exact answers again: the due retry succeeds and resets everything.
    let run = w.tick(Some(at))?;
    let c = w.conn(w.other)?;
    expect(
        c["status"] == "active" && c["retry_count"] == 0 && c["next_retry_at"].is_null(),
        || format!("after recovery: {c}; run {run}"),
    )?;
    expect(run["refreshed"] == 1, || format!("run {run}"))
}

pub fn lost_store_check(w: &CronWorld<'_>) -> Result<()> {
    w.admin("/__admin/reset", json!({}))?;
    w.set_conn(w.demo, "last_used_at = NULL")?;
    w.expire(w.other, "other")?;
    // D1 refuses every token write for the next two seconds, i.e. right
    // after Exact has rotated. (A trigger's own writes are rolled back with
    // the failing statement on D1, so the window is timed, not counted.)
    let until_ms = chrono::Utc::now().timestamp_millis() + 2_000;
    let julian = until_ms as f64 / 86_400_000.0 + 2_440_587.5;
    w.exec(&format!(
        "CREATE TRIGGER e2e_fail_token_store
           BEFORE UPDATE OF refresh_token_sealed ON connections
           WHEN julianday('now') < {julian}
         BEGIN
           SELECT RAISE(ABORT, 'injected: token write failed');
         END;"
    ))?;
    let generation = w.conn(w.other)?["token_generation"].as_i64().unwrap_or(0);
    let run = w.tick(None);
    w.exec("DROP TRIGGER e2e_fail_token_store;")?;
    let run = run?;
    let c = w.conn(w.other)?;
    expect(
        c["status"] == "active" && c["token_generation"].as_i64() == Some(generation + 1),
        || format!("after the failed writes: {c}; run {run}"),
    )?;
    // The write succeeded only after backing off past the window.
    expect(run["duration_ms"].as_i64().unwrap_or(0) >= 1_200, || {
        format!("the writes did not fail first: {run}")
    })?;
    // The stored refresh token is the rotated one: it refreshes again.
    w.expire(w.other, "other")?;
    let run = w.tick(None)?;
    let c = w.conn(w.other)?;
    expect(run["refreshed"] == 1 && c["status"] == "active", || {
        format!("second refresh: {run} / {c}")
    })
}

pub fn invalid_grant_check(w: &CronWorld<'_>) -> Result<()> {
    w.admin("/__admin/reset", json!({}))?;
    w.set_conn(w.demo, "last_used_at = NULL")?;
    w.admin("/__admin/revoke", json!({"username": "other"}))?;
    w.expire(w.other, "other")?;
    let run = w.tick(None)?;
    let c = w.conn(w.other)?;
    expect(
        c["status"] == "refresh_failed" && c["retry_count"] == 0,
        || format!("after invalid_grant: {c}; run {run}"),
    )?;
    expect(run["emails_sent"] == 1, || format!("run {run}"))?;
    for _ in 0..2 {
        w.tick(None)?;
    }
    let mails: Vec<_> = w
        .sandbox
        .mails()
        .into_iter()
        .filter(|m| m.to.contains(&w.other.email))
        .collect();
    expect(mails.len() == 1, || {
        format!("{} mails: {mails:#?}", mails.len())
    })?;
    expect(
        mails[0].subject.contains("Exact Online") && mails[0].text.contains("/connect?region=nl"),
        || format!("{:#?}", mails[0]),
    )?;
    let queued = w.rows(
        "SELECT status, template FROM email_queue WHERE to_email = ?",
        vec![w.other.email.as_str().into()],
    )?;
    expect(
        queued.len() == 1
            && queued[0]["status"] == "sent"
            && queued[0]["template"] == "reconnect_needed",
        || format!("{queued:?}"),
    )
}

/// Restarts the token-cron Worker with other variables.
pub fn restart_cron(
    tools: &Tools,
    server: &mut DevServer,
    config: &Path,
    state: &Path,
    opts: &DevOptions<'_>,
) -> Result<()> {
    let (port, name) = (server.port, server.name.clone());
    server.stop();
    *server = DevServer::start_ready(
        tools,
        &name,
        config,
        state,
        port,
        opts,
        Duration::from_secs(90),
    )?;
    Ok(())
}

pub fn queue_check(w: &CronWorld<'_>) -> Result<()> {
    w.admin("/__admin/reset", json!({}))?;
    w.expire(w.demo, "demo")?;
    let generation = w.conn(w.demo)?["token_generation"].as_i64().unwrap_or(0);
    let run = w.tick(None)?;
    expect(
        run["mode"] == "enqueue" && run["enqueued"] == 1 && run["exact_calls"] == 0,
        || format!("scheduled run: {run}"),
    )?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let consumed = w.rows(
            "SELECT refreshed, outcome FROM cron_runs WHERE mode = 'consume' AND id > ?",
            vec![run["id"].as_i64().unwrap_or(0).into()],
        )?;
        if consumed.iter().any(|r| r["refreshed"] == 1) {
            break;
        }
        if Instant::now() > deadline {
            bail!("the queue consumer did not refresh within 30 s: {consumed:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let c = w.conn(w.demo)?;
    expect(
        c["token_generation"].as_i64() == Some(generation + 1) && c["status"] == "active",
        || format!("{c}"),
    )
}

pub fn keep_alive_check(w: &CronWorld<'_>) -> Result<()> {
    w.admin("/__admin/reset", json!({}))?;
    // Quiet from now on: nobody uses the demo connection for 40 days.
    w.set_conn(w.demo, "last_used_at = NULL")?;
    let start = unix_now();
    let original_expiry = w.conn(w.demo)?["refresh_expires_at"].as_i64().unwrap_or(0);
    let day = 86_400;
    let mut refreshed_on = Vec::new();
    for d in 1..=40 {
        // Exact's clock and the cron's move a day at a time.
        w.admin("/__admin/clock", json!({"advance_seconds": day}))?;
        let run = w.tick(Some(start + d * day))?;
        expect(run["failed"] == 0, || format!("day {d}: {run}"))?;
        if run["refreshed"].as_i64().unwrap_or(0) > 0 {
            refreshed_on.push(d);
        }
    }
    let c = w.conn(w.demo)?;
    let expiry = c["refresh_expires_at"].as_i64().unwrap_or(0);
    expect(c["status"] == "active", || format!("{c}"))?;
    expect(expiry > start + 40 * day, || {
        format!(
            "refresh token lapses at {expiry}, day 40 is {}",
            start + 40 * day
        )
    })?;
    expect(original_expiry < start + 31 * day, || {
        format!("{original_expiry}")
    })?;
    expect(!refreshed_on.is_empty(), || "never refreshed".into())?;
    let ok = w
        .token_requests()
        .iter()
        .filter(|r| r.grant_type.as_deref() == Some("refresh_token") && r.status == 200)
        .count();
    expect(ok >= 1, || format!("{ok} accepted refreshes"))?;
    println!("    keep-alive refreshes on days {refreshed_on:?}");
    Ok(())
}

/// The alert check for real: failing tool calls in the last interval open
/// a `server_error_rate` incident whose mail reaches the operator through
/// the mail catcher in the run that saw it; once the calls are out of the
/// interval for the quiet period, the resolved mail follows, and repeated
/// runs send neither twice. Runs after the keep-alive check, so its ticks
/// are timed after the last recorded run (which may lie days ahead).
pub fn alert_check(w: &CronWorld<'_>) -> Result<()> {
    w.admin("/__admin/reset", json!({}))?;
    let last = w.rows("SELECT MAX(started_at) AS t FROM cron_runs", vec![])?;
    let t = last
        .first()
        .and_then(|r| r["t"].as_i64())
        .unwrap_or_else(unix_now)
        .max(unix_now())
        + 300;
    let user = w.rows(
        "SELECT id FROM users WHERE email = ?",
        vec![w.demo.email.as_str().into()],
    )?;
    let user = user
        .first()
        .and_then(|r| r["id"].as_str())
        .context("the demo user")?
        .to_owned();
    let mut rows = Vec::new();
    for i in 0..20 {
        rows.push(format!(
            "('{user}', 'api_key', 'list_divisions', '{}', 5, {})",
            if i % 4 == 0 { "ok" } else { "internal_error" },
            t - 10
        ));
    }
    w.exec(&format!(
        "INSERT INTO api_usage (user_id, auth_kind, tool, outcome, latency_ms, at) VALUES {}",
        rows.join(", ")
    ))?;
    let incident_mails = |w: &CronWorld<'_>| -> Vec<exact_sandbox::mail::CaughtMail> {
        w.sandbox
            .mails()
            .into_iter()
            .filter(|m| m.subject.contains("server errors"))
            .collect()
    };
    let run = w.tick(Some(t))?;
    let mails = incident_mails(w);
    expect(mails.len() == 1, || {
        format!("opened: {mails:#?}; run {run}")
    })?;
    expect(
        mails[0].subject.contains("Incident")
            && mails[0].subject.contains("15 of 20 MCP requests")
            && mails[0].to.iter().any(|to| to == "operator@example.nl"),
        || format!("{:#?}", mails[0]),
    )?;
    // Still failing within the quiet period: no second mail.
    w.tick(Some(t + 301))?;
    expect(incident_mails(w).len() == 1, || {
        format!("{:#?}", incident_mails(w))
    })?;
    let run = w.tick(Some(t + 602))?;
    let mails = incident_mails(w);
    expect(
        mails.len() == 2 && mails[1].subject.contains("Resolved"),
        || format!("resolved: {mails:#?}; run {run}"),
    )?;
    w.tick(Some(t + 903))?;
    expect(incident_mails(w).len() == 2, || {
        "a mail after resolving".into()
    })?;
    let incidents = w.rows(
        "SELECT kind, opened_at, resolved_at FROM incidents ORDER BY id",
        vec![],
    )?;
    expect(
        incidents.iter().any(|i| {
            i["kind"] == "server_error_rate"
                && i["opened_at"].as_i64().is_some_and(|o| o >= t)
                && i["resolved_at"].as_i64().is_some_and(|r| r >= t + 602)
        }),
        || format!("{incidents:?}"),
    )?;
    // The compiled-in migrations are the ones wrangler applied.
    expect(
        !incidents.iter().any(|i| i["kind"] == "health_regression"),
        || format!("{incidents:?}"),
    )
}
