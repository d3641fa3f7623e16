//! `cargo xtask bench`, token-cron part: 10,000 connections in local D1
//! (refresh tokens spread over their 30 days, some in use, some waiting
//! for a retry), the token-cron Worker in workerd against the sandbox,
//! triggered tick after tick with the scheduled time moving 5 minutes per
//! tick. Reported per mode: ticks until nothing is due, Exact calls and D1
//! round trips per tick, and the longest any connection waited after it
//! became due. Figures, never assertions.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use boekhouding_core::crypto::{SealBinding, Secret, TokenKeyring};
use boekhouding_core::storage::connections::{self, DueWindows};
use boekhouding_core::storage::{SqlExecutor, Statement};
use boekhouding_sqlite::SqliteDb;
use chrono::{DateTime, Utc};
use futures::executor::block_on;
use serde::Serialize;
use serde_json::json;

use crate::bench::OsRandom;
use crate::process::{DevOptions, DevServer, apply_migrations_local, free_port, http_get};
use crate::tools::Tools;

const CONNECTIONS: usize = 10_000;
const TICK: i64 = 300;

#[derive(Debug, Serialize)]
pub struct CronRow {
    pub mode: String,
    pub connections: usize,
    pub due_at_start: usize,
    pub ticks_until_clear: u32,
    pub refreshed: u64,
    pub exact_calls_per_tick_mean: f64,
    pub exact_calls_per_tick_max: i64,
    pub d1_queries_per_tick_mean: f64,
    pub d1_queries_per_tick_max: i64,
    pub longest_wait_minutes: f64,
    pub mean_wait_minutes: f64,
    pub wall_ms_per_tick_mean: f64,
    pub wall_secs: f64,
}

/// A small deterministic generator for the data set.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn windows() -> DueWindows {
    boekhouding_core::cron::CronConfig::default().windows
}

/// Fills the local D1 with `CONNECTIONS` users and connections whose
/// refresh tokens are live at the sandbox.
fn populate(
    d1: &Path,
    key: &str,
    sandbox: &exact_sandbox::Sandbox,
    t0: DateTime<Utc>,
) -> Result<()> {
    let grants = {
        let port: u16 = sandbox
            .base_url()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .context("sandbox port")?;
        let r = crate::process::http_request(
            port,
            "POST",
            "/__admin/grants",
            &[("Content-Type", "application/json")],
            &json!({"username": "demo", "count": CONNECTIONS}).to_string(),
        )?;
        r.json()?["grants"]
            .as_array()
            .cloned()
            .context("no grants")?
    };
    let ring = TokenKeyring::from_config(key).map_err(|e| anyhow::anyhow!("{e}"))?;
    let db = SqliteDb::open(d1).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut rng = Lcg(20_261_123);
    let t = t0.timestamp();
    let mut stmts = Vec::with_capacity(CONNECTIONS * 2);
    for (i, g) in grants.iter().enumerate() {
        let user = format!("bench-user-{i:05}");
        let id = format!("bench-conn-{i:05}");
        let seal = |value: &str, column: &str| {
            ring.seal(
                &OsRandom,
                &Secret::new(value),
                &SealBinding::new("connections", &id, column),
            )
            .map_err(|e| anyhow::anyhow!("{e}"))
        };
        let access = seal(
            g["access_token"].as_str().unwrap_or_default(),
            "access_token",
        )?;
        let refresh = seal(
            g["refresh_token"].as_str().unwrap_or_default(),
            "refresh_token",
        )?;
        // Refresh tokens spread evenly over their 30 days; 5 % used in the
        // last hour; 1 % waiting for a retry that is due.
        let refresh_expires = t + 60 + rng.below(30 * 86_400 - 60) as i64;
        let roll = rng.below(100);
        let (status, retry_count, next_retry, last_used, access_expires) = match roll {
            0 => (
                "retry_pending",
                1i64,
                Some(t - rng.below(600) as i64),
                None,
                t - 3_600,
            ),
            1..=5 => {
                let used = t - rng.below(3_000) as i64;
                (
                    "active",
                    0,
                    None,
                    Some(used),
                    used + rng.below(600) as i64 - 300,
                )
            }
            _ => ("active", 0, None, None, t - 86_400),
        };
        stmts.push(Statement::new(
            "INSERT INTO users (id, email, created_at, updated_at) VALUES (?, ?, ?, ?)",
            vec![
                user.clone().into(),
                format!("{user}@example.nl").into(),
                t.into(),
                t.into(),
            ],
        ));
        stmts.push(Statement::new(
            "INSERT INTO connections (id, user_id, region, access_token_sealed, refresh_token_sealed,
                access_expires_at, refresh_expires_at, status, retry_count, next_retry_at,
                last_used_at, created_at, updated_at)
             VALUES (?, ?, 'nl', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            vec![
                id.into(),
                user.into(),
                access.into(),
                refresh.into(),
                access_expires.into(),
                refresh_expires.into(),
                status.into(),
                retry_count.into(),
                next_retry.into(),
                last_used.into(),
                t.into(),
                t.into(),
            ],
        ));
    }
    block_on(db.batch(stmts)).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

/// Connections due at `at`, by the cron's own query: id → since when.
fn due_at(d1: &Path, at: DateTime<Utc>) -> Result<HashMap<String, i64>> {
    let db = SqliteDb::open(d1).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(
        block_on(connections::due_for_refresh(&db, at, &windows(), 100_000))
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .into_iter()
            .map(|d| (d.id, d.due_at.timestamp()))
            .collect(),
    )
}

/// Per connection of `initial` that was refreshed: how long after it
/// became due (or after the run started, if it was due before) that
/// happened, in minutes: (longest, mean).
fn waits(d1: &Path, initial: &HashMap<String, i64>, t0: i64) -> Result<(f64, f64)> {
    let db = SqliteDb::open(d1).map_err(|e| anyhow::anyhow!("{e}"))?;
    let rows = block_on(db.query(Statement::new(
        "SELECT id, last_refreshed_at FROM connections WHERE last_refreshed_at > ?",
        vec![t0.into()],
    )))
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let waits: Vec<f64> = rows
        .iter()
        .filter_map(|r| {
            let due = initial.get(r["id"].as_str()?)?;
            let at = r["last_refreshed_at"].as_i64()?;
            Some((at - (*due).max(t0)).max(0) as f64 / 60.0)
        })
        .collect();
    let longest = waits.iter().copied().fold(0.0, f64::max);
    let mean = waits.iter().sum::<f64>() / waits.len().max(1) as f64;
    Ok((longest, mean))
}

/// Waits until the queue consumer has handled every message enqueued so
/// far (or stops making progress for 30 s).
fn drain(d1: &Path) -> Result<()> {
    let mut last = (-1, Instant::now());
    loop {
        let db = SqliteDb::open(d1).map_err(|e| anyhow::anyhow!("{e}"))?;
        let rows = block_on(db.query(Statement::new(
            "SELECT (SELECT COALESCE(SUM(enqueued), 0) FROM cron_runs WHERE mode = 'enqueue') AS sent,
                    (SELECT COALESCE(SUM(due), 0) FROM cron_runs WHERE mode = 'consume'
                       AND finished_at IS NOT NULL) AS done",
            vec![],
        )))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        let (sent, done) = rows
            .first()
            .map(|r| {
                (
                    r["sent"].as_i64().unwrap_or(0),
                    r["done"].as_i64().unwrap_or(0),
                )
            })
            .unwrap_or((0, 0));
        if done >= sent {
            return Ok(());
        }
        if done != last.0 {
            last = (done, Instant::now());
        } else if last.1.elapsed() > Duration::from_secs(30) {
            anyhow::bail!("the queue consumer stalled at {done} of {sent} messages");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

struct Scenario {
    key: &'static str,
    name: &'static str,
    vars: Vec<(&'static str, String)>,
    queue: bool,
}

fn run_scenario(tools: &Tools, root: &Path, s: &Scenario) -> Result<CronRow> {
    let slug: String = s
        .name
        .split(' ')
        .next()
        .unwrap_or("run")
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    let state = root.join(format!(".state/bench-cron-{slug}-{}", s.key));
    if state.exists() {
        std::fs::remove_dir_all(&state)?;
    }
    std::fs::create_dir_all(&state)?;
    apply_migrations_local(tools, &state)?;
    let sandbox = exact_sandbox::Sandbox::start(exact_sandbox::SandboxConfig::default())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let secrets = crate::demo::local_secrets(
        &state,
        sandbox.client_secret(),
        Some(sandbox.mail_api_key()),
    )?;
    let d1 = crate::demo::local_d1_file(&state)?;
    let t0 = Utc::now();
    let t = Instant::now();
    populate(&d1, &secrets.token_key, &sandbox, t0)?;
    println!(
        "  {}: {CONNECTIONS} connections sealed and stored in {:.1?}",
        s.name,
        t.elapsed()
    );
    let initial = due_at(&d1, t0)?;
    let due_at_start = initial.len();
    let mut vars: Vec<(&str, &str)> = vec![
        ("EXACT_CLIENT_ID", sandbox.client_id()),
        ("EXACT_BASE_URL", sandbox.base_url()),
        ("MAIL_API_URL", sandbox.base_url()),
    ];
    vars.extend(s.vars.iter().map(|(k, v)| (*k, v.as_str())));
    let cron = crate::build::WORKERS
        .iter()
        .find(|w| w.name == "token-cron")
        .context("no token-cron")?;
    let server = DevServer::start_ready(
        tools,
        "token-cron",
        &cron.config(root),
        &state,
        free_port()?,
        &DevOptions {
            vars: &vars,
            env_file: Some(&secrets.env_file),
            own_group: true,
            ..DevOptions::default()
        },
        Duration::from_secs(90),
    )?;
    let started = Instant::now();
    let mut ticks = 0u32;
    let mut tick_ms = Vec::new();
    loop {
        // Queue mode runs in real time (the consumer's clock is the wall
        // clock); inline mode moves the scheduled time 5 minutes a tick.
        let at = if s.queue {
            Utc::now()
        } else {
            t0 + chrono::Duration::seconds(TICK * i64::from(ticks))
        };
        // Done when nothing that was due at the start is due any more
        // (refreshed, or no longer in use); newly due work is the next
        // run's ordinary load.
        let still = due_at(&d1, at)?
            .keys()
            .filter(|id| initial.contains_key(*id))
            .count();
        if still == 0 || ticks >= 2_000 {
            break;
        }
        if std::env::var("PMJB_BENCH_VERBOSE").is_ok() {
            println!("    tick {ticks}: {still} of the initial backlog still due");
        }
        let path = if s.queue {
            "/cdn-cgi/handler/scheduled?cron=*/5+*+*+*+*".to_owned()
        } else {
            format!(
                "/cdn-cgi/handler/scheduled?cron=*/5+*+*+*+*&time={}",
                at.timestamp_millis()
            )
        };
        let t = Instant::now();
        let r = http_get(server.port, &path)?;
        tick_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        anyhow::ensure!(r.status == 200, "tick: {} {}", r.status, r.body);
        ticks += 1;
        if s.queue {
            drain(&d1)?;
        }
    }
    let wall_secs = started.elapsed().as_secs_f64();
    let wait = waits(&d1, &initial, t0.timestamp())?;
    let db = SqliteDb::open(&d1).map_err(|e| anyhow::anyhow!("{e}"))?;
    let runs = block_on(db.query(Statement::new(
        "SELECT mode, exact_calls, d1_queries, refreshed FROM cron_runs",
        vec![],
    )))
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    drop(server);
    let per = |mode: &str, col: &str| -> Vec<i64> {
        runs.iter()
            .filter(|r| r["mode"] == mode)
            .map(|r| r[col].as_i64().unwrap_or(0))
            .collect()
    };
    let work_mode = if s.queue { "consume" } else { "inline" };
    let calls = per(work_mode, "exact_calls");
    let queries: Vec<i64> = if s.queue {
        per("enqueue", "d1_queries")
    } else {
        per("inline", "d1_queries")
    };
    let mean = |v: &[i64]| {
        if v.is_empty() {
            0.0
        } else {
            v.iter().sum::<i64>() as f64 / v.len() as f64
        }
    };
    Ok(CronRow {
        mode: s.name.to_owned(),
        connections: CONNECTIONS,
        due_at_start,
        ticks_until_clear: ticks,
        refreshed: per(work_mode, "refreshed").iter().sum::<i64>() as u64,
        exact_calls_per_tick_mean: mean(&calls),
        exact_calls_per_tick_max: calls.iter().copied().max().unwrap_or(0),
        d1_queries_per_tick_mean: mean(&queries),
        d1_queries_per_tick_max: queries.iter().copied().max().unwrap_or(0),
        longest_wait_minutes: wait.0,
        mean_wait_minutes: wait.1,
        wall_ms_per_tick_mean: tick_ms.iter().sum::<f64>() / tick_ms.len().max(1) as f64,
        wall_secs,
    })
    .inspect(|_| {
        let _ = std::fs::remove_dir_all(&state);
    })
}

pub fn run(tools: &Tools, root: &Path) -> Result<Vec<CronRow>> {
    let scenarios = [
        Scenario {
            key: "free",
            name: "inline, free plan (10 refreshes/tick)",
            vars: vec![],
            queue: false,
        },
        Scenario {
            key: "paid",
            name: "inline, paid plan (500 refreshes/tick)",
            vars: vec![("CRON_MAX_REFRESHES", "500".into())],
            queue: false,
        },
        Scenario {
            key: "queue",
            name: "queue fan-out (1,000 enqueued/tick, batches of 10)",
            vars: vec![("REFRESH_MODE", "queue".into())],
            queue: true,
        },
    ];
    // `PMJB_BENCH_CRON=queue` (or `free`, `paid`) runs one scenario.
    let only = std::env::var("PMJB_BENCH_CRON").unwrap_or_default();
    let mut rows = Vec::new();
    for s in scenarios
        .iter()
        .filter(|s| only.is_empty() || s.key == only)
    {
        rows.push(run_scenario(tools, root, s)?);
    }
    Ok(rows)
}

pub fn print(rows: &[CronRow]) {
    println!("\ntoken-cron with {CONNECTIONS} connections (workerd + local D1 + sandbox):");
    println!(
        "  {:<52} {:>6} {:>6} {:>9} {:>14} {:>14} {:>18} {:>9} {:>8}",
        "mode",
        "due",
        "ticks",
        "refreshed",
        "Exact/tick",
        "D1/tick",
        "wait max (mean)",
        "ms/tick",
        "wall s"
    );
    for r in rows {
        println!(
            "  {:<52} {:>6} {:>6} {:>9} {:>6.1} (max {:>3}) {:>6.1} (max {:>3}) {:>6.0} ({:>4.0}) min {:>9.0} {:>8.1}",
            r.mode,
            r.due_at_start,
            r.ticks_until_clear,
            r.refreshed,
            r.exact_calls_per_tick_mean,
            r.exact_calls_per_tick_max,
            r.d1_queries_per_tick_mean,
            r.d1_queries_per_tick_max,
            r.longest_wait_minutes,
            r.mean_wait_minutes,
            r.wall_ms_per_tick_mean,
            r.wall_secs
        );
    }
}
