//! `cargo xtask bench`, MCP part: tools/call latency and throughput in
//! workerd against the sandbox at 1, 8 and 32 concurrent clients, for a
//! cheap tool (answered from D1), an expensive one (two Exact lists) and
//! the same on a demo key (books generated in the isolate), the demo's
//! first-call cost, and Exact calls per tool call. Figures, never
//! assertions.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use serde::Serialize;
use serde_json::json;

use crate::process::{DevOptions, DevServer, apply_migrations_local, free_port, http_request};
use crate::tools::Tools;

#[derive(Debug, Serialize)]
pub struct LatencyRow {
    pub tool: &'static str,
    pub clients: usize,
    pub calls: usize,
    pub errors: usize,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub wall_secs: f64,
    pub calls_per_sec: f64,
    pub exact_calls_per_call: f64,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn one_call(port: u16, key: &str, tool: &str, args: &serde_json::Value, id: u64) -> Result<bool> {
    let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": args}});
    let auth = format!("Bearer {key}");
    let r = http_request(
        port,
        "POST",
        "/mcp",
        &[
            ("Authorization", &auth),
            ("Accept", "application/json, text/event-stream"),
            ("Content-Type", "application/json"),
        ],
        &body.to_string(),
    )?;
    Ok(r.status == 200 && r.json()?["result"]["isError"] == false)
}

/// Prints the D1 round trips and statements of one call, as the local
/// mcp-server reports them in `X-D1-Round-Trips` / `X-D1-Statements`.
fn d1_cost(port: u16, label: &str, key: &str, tool: &str, args: &serde_json::Value) {
    let body = json!({"jsonrpc": "2.0", "id": 700_000, "method": "tools/call", "params": {"name": tool, "arguments": args}});
    let auth = format!("Bearer {key}");
    let reply = http_request(
        port,
        "POST",
        "/mcp",
        &[
            ("Authorization", &auth),
            ("Accept", "application/json, text/event-stream"),
            ("Content-Type", "application/json"),
        ],
        &body.to_string(),
    );
    if let Ok(r) = reply {
        println!(
            "D1 per tools/call, {label}: {} round trips, {} statements",
            r.header("X-D1-Round-Trips").unwrap_or("?"),
            r.header("X-D1-Statements").unwrap_or("?")
        );
    }
}

pub fn run(tools: &Tools, root: &Path) -> Result<Vec<LatencyRow>> {
    let state = root.join(".state/bench");
    if state.exists() {
        std::fs::remove_dir_all(&state)?;
    }
    std::fs::create_dir_all(&state)?;
    apply_migrations_local(tools, &state)?;
    // Exact's limits would dominate a load test; the bench measures us.
    let exact = crate::demo::LocalExact::start(
        &state,
        exact_sandbox::SandboxConfig {
            minutely_limit: 1_000_000,
            daily_limit: 10_000_000,
            ..exact_sandbox::SandboxConfig::default()
        },
        "http://127.0.0.1:8788/connect/callback".into(),
        boekhouding_core::plan::Plan::Enterprise,
        None,
    )?;
    let (sandbox, account, vars) = (&exact.sandbox, &exact.account, exact.vars());
    let port = free_port()?;
    let mcp = crate::build::WORKERS[0];
    let mut server = DevServer::start(
        tools,
        mcp.name,
        &mcp.config(root),
        &state,
        port,
        &DevOptions {
            vars: &vars,
            env_file: Some(&exact.secrets.env_file),
            own_group: true,
            ..DevOptions::default()
        },
    )?;
    server.wait_ready("/health", Duration::from_secs(90))?;
    let mut rows = Vec::new();
    // A demo key's first call builds its company's books in the isolate
    // (CPU, no I/O); later calls read them.
    let demo_key = exact_sandbox::demo::KEYS[3].0;
    for (label, id) in [
        (
            "demo get_profit_loss (first call, books generated)",
            800_001u64,
        ),
        ("demo get_profit_loss (books built)", 800_002),
    ] {
        let t = Instant::now();
        let ok = one_call(
            port,
            demo_key,
            "get_profit_loss",
            &json!({"year": 2025}),
            id,
        )
        .unwrap_or(false);
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        rows.push(single(label, ok, ms, 0.0));
    }
    let key = account.api_key.clone();
    let cases: [(&'static str, &str, &'static str, serde_json::Value); 3] = [
        ("list_divisions", &key, "list_divisions", json!({})),
        (
            "get_outstanding_invoices",
            &key,
            "get_outstanding_invoices",
            json!({"type": "both"}),
        ),
        (
            "demo get_outstanding_invoices",
            demo_key,
            "get_outstanding_invoices",
            json!({"type": "both"}),
        ),
    ];
    for (label, key, tool, args) in &cases {
        // Warm up (and get a first token refresh out of the way).
        let _ = one_call(port, key, tool, args, 0);
        d1_cost(port, label, key, tool, args);
        for clients in [1usize, 8, 32] {
            let per_client = match clients {
                1 => 40,
                8 => 15,
                _ => 6,
            };
            let before = sandbox.requests().len();
            let ids = AtomicU64::new(1);
            let started = Instant::now();
            let results: Vec<(f64, bool)> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..clients)
                    .map(|_| {
                        let (key, ids) = (&key, &ids);
                        s.spawn(move || {
                            (0..per_client)
                                .map(|_| {
                                    let t = Instant::now();
                                    let ok = one_call(
                                        port,
                                        key,
                                        tool,
                                        args,
                                        ids.fetch_add(1, Ordering::Relaxed),
                                    )
                                    .unwrap_or(false);
                                    (t.elapsed().as_secs_f64() * 1000.0, ok)
                                })
                                .collect::<Vec<_>>()
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .flat_map(|h| h.join().unwrap_or_default())
                    .collect()
            });
            let elapsed = started.elapsed().as_secs_f64();
            let mut lat: Vec<f64> = results.iter().map(|(l, _)| *l).collect();
            lat.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
            let exact_calls = sandbox.requests().len() - before;
            rows.push(LatencyRow {
                tool: label,
                clients,
                calls: results.len(),
                errors: results.iter().filter(|(_, ok)| !ok).count(),
                p50_ms: percentile(&lat, 0.50),
                p95_ms: percentile(&lat, 0.95),
                p99_ms: percentile(&lat, 0.99),
                max_ms: lat.last().copied().unwrap_or(0.0),
                wall_secs: elapsed,
                calls_per_sec: results.len() as f64 / elapsed,
                exact_calls_per_call: exact_calls as f64 / results.len().max(1) as f64,
            });
        }
    }
    // Exact calls of a tool that reads cached reference data, cold and warm.
    let pl = json!({"year": 2025});
    for (label, id) in [
        ("get_profit_loss (cold cache)", 900_001u64),
        ("get_profit_loss (warm cache)", 900_002),
    ] {
        let before = sandbox.requests().len();
        let t = Instant::now();
        let ok = one_call(port, &key, "get_profit_loss", &pl, id).unwrap_or(false);
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        let calls = (sandbox.requests().len() - before) as f64;
        rows.push(single(label, ok, ms, calls));
    }
    drop(server);
    Ok(rows)
}

/// The row of one timed call.
fn single(label: &'static str, ok: bool, ms: f64, exact_calls: f64) -> LatencyRow {
    LatencyRow {
        tool: label,
        clients: 1,
        calls: 1,
        errors: usize::from(!ok),
        p50_ms: ms,
        p95_ms: ms,
        p99_ms: ms,
        max_ms: ms,
        wall_secs: ms / 1000.0,
        calls_per_sec: 1000.0 / ms,
        exact_calls_per_call: exact_calls,
    }
}

pub fn print(rows: &[LatencyRow]) {
    println!(
        "| tool | clients | calls | errors | p50 | p95 | p99 | max | wall | calls/s | Exact calls per call |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | {:.2} s | {:.1} | {:.2} |",
            r.tool,
            r.clients,
            r.calls,
            r.errors,
            r.p50_ms,
            r.p95_ms,
            r.p99_ms,
            r.max_ms,
            r.wall_secs,
            r.calls_per_sec,
            r.exact_calls_per_call
        );
    }
    println!();
}
