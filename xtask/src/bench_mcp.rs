//! `cargo xtask bench`, MCP part: tools/call latency and throughput in
//! workerd against the sandbox at 1, 8 and 32 concurrent clients: the demo's
//! first-call cost, a tool reading two Exact lists and the same on a demo
//! key, Exact calls per tool call, and our mcp-server side by side with a
//! peer written with the official TypeScript MCP SDK (see `bench_peer.rs`)
//! serving the same tools against the same sandbox, once as is and once
//! with a fixed delay per D1 round trip (`D1_DELAY_MS`, local only), to show
//! what a database far away does to each design. Figures, never assertions.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use serde::Serialize;
use serde_json::json;

use crate::bench_peer::{PeerBundle, Upstream};
use crate::build::BundleSize;
use crate::process::{DevOptions, DevServer, apply_migrations_local, free_port, http_request};
use crate::tools::Tools;

/// The delay per D1 round trip of the second run, in milliseconds: about
/// what a Worker pays to reach a database primary on another continent.
pub const D1_DELAY_MS: u32 = 20;

#[derive(Debug, Clone, Serialize)]
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
    /// From the `X-D1-Round-Trips` response header (local only); `None`
    /// when the server sent none.
    pub d1_round_trips_per_call: Option<f64>,
    /// From the `X-D1-Statements` response header (local only).
    pub d1_statements_per_call: Option<f64>,
}

pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// What one tools/call answered.
#[derive(Debug, Clone, Copy, Default)]
struct Call {
    ok: bool,
    round_trips: Option<u32>,
    statements: Option<u32>,
}

/// One tools/call; `key` is empty for the peer (it has no authentication).
fn one_call(port: u16, key: &str, tool: &str, args: &serde_json::Value, id: u64) -> Result<Call> {
    let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": args}});
    let auth = format!("Bearer {key}");
    let mut headers = vec![
        ("Accept", "application/json, text/event-stream"),
        ("Content-Type", "application/json"),
    ];
    if !key.is_empty() {
        headers.push(("Authorization", &auth));
    }
    let r = http_request(port, "POST", "/mcp", &headers, &body.to_string())?;
    let count = |name: &str| r.header(name).and_then(|v| v.parse().ok());
    Ok(Call {
        ok: r.status == 200 && answered(&r.json()?),
        round_trips: count("X-D1-Round-Trips"),
        statements: count("X-D1-Statements"),
    })
}

/// A tools/call answer that is a result and not a tool error (the SDK
/// leaves `isError` out on success; ours says `false`).
fn answered(reply: &serde_json::Value) -> bool {
    reply["result"].is_object() && reply["result"]["isError"] != true
}

/// Says so when a server's first answer to a compared tool is not a
/// result, with the start of its body, so a broken peer or server is
/// visible instead of showing up only as an error count.
fn probe(name: &str, port: u16, key: &str, tool: &str, args: &serde_json::Value) {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool, "arguments": args}});
    let auth = format!("Bearer {key}");
    let mut headers = vec![
        ("Accept", "application/json, text/event-stream"),
        ("Content-Type", "application/json"),
    ];
    if !key.is_empty() {
        headers.push(("Authorization", &auth));
    }
    match http_request(port, "POST", "/mcp", &headers, &body.to_string()) {
        Ok(r) if r.status == 200 && r.json().is_ok_and(|v| answered(&v)) => {}
        Ok(r) => println!(
            "WARNING: {name}'s {tool} answered {}: {}",
            r.status,
            r.body.chars().take(300).collect::<String>()
        ),
        Err(e) => println!("WARNING: {name}'s {tool} failed: {e:#}"),
    }
}

/// The mean of the counts the answers carried, `None` when none did.
fn mean_of(counts: impl Iterator<Item = Option<u32>>) -> Option<f64> {
    let seen: Vec<u32> = counts.flatten().collect();
    (!seen.is_empty()).then(|| f64::from(seen.iter().sum::<u32>()) / seen.len() as f64)
}

/// Calls per client at each level of concurrency: enough for a stable p50
/// and p95, few enough that the whole bench stays within minutes.
fn calls_per_client(clients: usize) -> usize {
    match clients {
        1 => 50,
        8 => 20,
        _ => 8,
    }
}

/// Where the calls go: the server's port and its key (empty for the peer).
#[derive(Debug, Clone, Copy)]
struct Target<'a> {
    port: u16,
    key: &'a str,
}

/// What is called: the row's label, the tool and its arguments.
#[derive(Debug, Clone, Copy)]
struct Case<'a> {
    label: &'static str,
    tool: &'a str,
    args: &'a serde_json::Value,
}

/// `clients` threads each making [`calls_per_client`] sequential calls.
fn load(
    sandbox: &exact_sandbox::Sandbox,
    Target { port, key }: Target<'_>,
    Case { label, tool, args }: Case<'_>,
    clients: usize,
) -> LatencyRow {
    let per_client = calls_per_client(clients);
    let before = sandbox.requests().len();
    let ids = AtomicU64::new(1);
    let started = Instant::now();
    let results: Vec<(f64, Call)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|_| {
                let ids = &ids;
                s.spawn(move || {
                    (0..per_client)
                        .map(|_| {
                            let t = Instant::now();
                            let call = one_call(
                                port,
                                key,
                                tool,
                                args,
                                ids.fetch_add(1, Ordering::Relaxed),
                            )
                            .unwrap_or_default();
                            (t.elapsed().as_secs_f64() * 1000.0, call)
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
    LatencyRow {
        tool: label,
        clients,
        calls: results.len(),
        errors: results.iter().filter(|(_, c)| !c.ok).count(),
        p50_ms: percentile(&lat, 0.50),
        p95_ms: percentile(&lat, 0.95),
        p99_ms: percentile(&lat, 0.99),
        max_ms: lat.last().copied().unwrap_or(0.0),
        wall_secs: elapsed,
        calls_per_sec: results.len() as f64 / elapsed,
        exact_calls_per_call: exact_calls as f64 / results.len().max(1) as f64,
        d1_round_trips_per_call: mean_of(results.iter().map(|(_, c)| c.round_trips)),
        d1_statements_per_call: mean_of(results.iter().map(|(_, c)| c.statements)),
    }
}

/// One tool at one level of concurrency, ours beside the peer.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// The injected delay per D1 round trip of this run (0: none).
    pub d1_delay_ms: u32,
    pub clients: usize,
    pub peer: LatencyRow,
    pub ours: LatencyRow,
    /// The sandbox's own p50 for the Exact request this tool makes.
    pub upstream_p50_ms: f64,
}

impl Comparison {
    /// p50 minus the upstream's time for the Exact calls it made: what the
    /// server itself adds.
    fn added(row: &LatencyRow, upstream_p50_ms: f64) -> f64 {
        row.p50_ms - row.exact_calls_per_call * upstream_p50_ms
    }
    pub fn peer_added_p50_ms(&self) -> f64 {
        Self::added(&self.peer, self.upstream_p50_ms)
    }
    pub fn ours_added_p50_ms(&self) -> f64 {
        Self::added(&self.ours, self.upstream_p50_ms)
    }
}

/// Everything the MCP part measured.
#[derive(Debug, Serialize)]
pub struct McpBench {
    pub rows: Vec<LatencyRow>,
    pub peer_bundle: PeerBundle,
    /// The mcp-server's wasm + JS, gzip, from the build of this run.
    pub ours_bundle_gzip: Option<u64>,
    pub upstream: Vec<Upstream>,
    /// The peer's tool that calls nothing: the SDK's own cost per call.
    pub peer_noop: LatencyRow,
    pub comparisons: Vec<Comparison>,
}

/// The tools compared with the peer, each making one Exact request there
/// (ours answers `list_divisions` from D1 without calling Exact): label,
/// tool, arguments, and the Exact request (below `/api/v1/<division>/`).
const COMPARED: [(&str, &str, &str); 2] = [
    (
        "list_divisions",
        "{}",
        "system/Divisions?$select=Code%2CDescription%2CStatus",
    ),
    (
        "get_outstanding_invoices",
        r#"{"type":"receivable"}"#,
        "read/financial/ReceivablesList?$select=AccountName%2CAccountCode%2CInvoiceNumber%2CInvoiceDate%2CDueDate%2CAmount",
    ),
];

fn start_ours(
    tools: &Tools,
    root: &Path,
    state: &Path,
    vars: &[(&str, &str)],
    env_file: &Path,
) -> Result<DevServer> {
    let mcp = crate::build::WORKERS[0];
    let mut server = DevServer::start(
        tools,
        mcp.name,
        &mcp.config(root),
        state,
        free_port()?,
        &DevOptions {
            vars,
            env_file: Some(env_file),
            own_group: true,
            ..DevOptions::default()
        },
    )?;
    server.wait_ready("/health", Duration::from_secs(90))?;
    Ok(server)
}

/// The account's default administration, as our list_divisions reports it.
fn default_division(port: u16, key: &str) -> Result<i64> {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "list_divisions", "arguments": {}}});
    let r = http_request(
        port,
        "POST",
        "/mcp",
        &[
            ("Authorization", &format!("Bearer {key}")),
            ("Accept", "application/json, text/event-stream"),
            ("Content-Type", "application/json"),
        ],
        &body.to_string(),
    )?
    .json()?;
    let admins = r["result"]["structuredContent"]["administrations"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    admins
        .iter()
        .find(|a| a["is_default"] == true)
        .or(admins.first())
        .and_then(|a| a["division"].as_i64())
        .ok_or_else(|| anyhow::anyhow!("list_divisions named no administration: {r}"))
}

pub fn run(tools: &Tools, root: &Path, bundles: &[BundleSize]) -> Result<McpBench> {
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
    let (sandbox, account) = (&exact.sandbox, &exact.account);
    let vars = exact.vars();
    let env_file = exact.secrets.env_file.clone();
    let server = start_ours(tools, root, &state, &vars, &env_file)?;
    let port = server.port;
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
        .is_ok_and(|c| c.ok);
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        rows.push(single(label, ok, ms, 0.0));
    }
    let key = account.api_key.clone();
    let cases: [(&'static str, &str, &'static str, serde_json::Value); 2] = [
        (
            "get_outstanding_invoices (both)",
            &key,
            "get_outstanding_invoices",
            json!({"type": "both"}),
        ),
        (
            "demo get_outstanding_invoices (both)",
            demo_key,
            "get_outstanding_invoices",
            json!({"type": "both"}),
        ),
    ];
    for (label, key, tool, args) in &cases {
        // Warm up (and get a first token refresh out of the way).
        let _ = one_call(port, key, tool, args, 0);
        for clients in [1usize, 8, 32] {
            rows.push(load(
                sandbox,
                Target { port, key },
                Case { label, tool, args },
                clients,
            ));
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
        let ok = one_call(port, &key, "get_profit_loss", &pl, id).is_ok_and(|c| c.ok);
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        let calls = (sandbox.requests().len() - before) as f64;
        rows.push(single(label, ok, ms, calls));
    }

    // The peer, and the upstream alone.
    let peer_bundle = crate::bench_peer::build(tools)?;
    let division = default_division(port, &key)?;
    let peer = crate::bench_peer::start(tools, &state, sandbox, division)?;
    let token = crate::bench_peer::exact_access_token(sandbox)?;
    let upstream: Vec<Upstream> = COMPARED
        .iter()
        .map(|(tool, _, path)| {
            crate::bench_peer::measure_upstream(sandbox, &token, division, tool, path, 50)
        })
        .collect::<Result<_>>()?;
    let _ = one_call(peer.port, "", "noop", &json!({}), 0);
    let peer_noop = load(
        sandbox,
        Target {
            port: peer.port,
            key: "",
        },
        Case {
            label: "noop",
            tool: "noop",
            args: &json!({}),
        },
        1,
    );

    let mut comparisons = Vec::new();
    let mut compare = |ours_port: u16, d1_delay_ms: u32| {
        for ((tool, args, _), up) in COMPARED.iter().zip(&upstream) {
            let args: serde_json::Value = serde_json::from_str(args).unwrap_or_default();
            for (name, p) in [("ours", ours_port), ("the peer", peer.port)] {
                let k = if p == peer.port { "" } else { key.as_str() };
                probe(name, p, k, tool, &args);
                for _ in 0..5 {
                    let _ = one_call(p, k, tool, &args, 0);
                }
            }
            for clients in [1usize, 8, 32] {
                let case = Case {
                    label: tool,
                    tool,
                    args: &args,
                };
                let ours = load(
                    sandbox,
                    Target {
                        port: ours_port,
                        key: &key,
                    },
                    case,
                    clients,
                );
                let theirs = load(
                    sandbox,
                    Target {
                        port: peer.port,
                        key: "",
                    },
                    case,
                    clients,
                );
                comparisons.push(Comparison {
                    d1_delay_ms,
                    clients,
                    peer: theirs,
                    ours,
                    upstream_p50_ms: up.p50_ms,
                });
            }
        }
    };
    compare(port, 0);
    // The second run: the same, with a fixed delay per D1 round trip
    // (ignored by a server that does not know the variable).
    drop(server);
    let delay = D1_DELAY_MS.to_string();
    let mut delayed_vars = vars.to_vec();
    delayed_vars.push(("D1_DELAY_MS", delay.as_str()));
    let delayed = start_ours(tools, root, &state, &delayed_vars, &env_file)?;
    compare(delayed.port, D1_DELAY_MS);
    drop(delayed);
    drop(peer);
    Ok(McpBench {
        rows,
        peer_bundle,
        ours_bundle_gzip: bundles
            .iter()
            .find(|b| b.worker == crate::build::WORKERS[0].name)
            .map(|b| b.total_gzip),
        upstream,
        peer_noop,
        comparisons,
    })
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
        d1_round_trips_per_call: None,
        d1_statements_per_call: None,
    }
}

/// A count per call from the headers, or "n/a" when the server sent none.
fn per_call(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".to_owned(), |n| format!("{n:.1}"))
}

fn kib(n: u64) -> String {
    format!("{:.1} KiB", n as f64 / 1024.0)
}

pub fn print(b: &McpBench) {
    println!(
        "| tool | clients | calls | errors | p50 | p95 | p99 | max | wall | calls/s | Exact calls per call | D1 round trips per call |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in &b.rows {
        println!(
            "| {} | {} | {} | {} | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | {:.2} s | {:.1} | {:.2} | {} |",
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
            r.exact_calls_per_call,
            per_call(r.d1_round_trips_per_call),
        );
    }
    println!();
    println!(
        "Ours (mcp-server, API key, D1) beside the TypeScript MCP SDK {} peer (bench/peer: stateless, JSON responses, no database, no authentication, no metering), same workerd, same sandbox.",
        b.peer_bundle.sdk_version
    );
    println!(
        "Bundles: ours {} gzip (wasm + JS); peer {} gzip ({} raw, minified JS).",
        b.ours_bundle_gzip.map_or_else(|| "n/a".to_owned(), kib),
        kib(b.peer_bundle.js_gzip),
        kib(b.peer_bundle.js_raw)
    );
    for u in &b.upstream {
        println!(
            "Upstream alone ({} calls asked directly): {} p50 {:.1} ms, p95 {:.1} ms.",
            u.calls, u.request, u.p50_ms, u.p95_ms
        );
    }
    println!(
        "Peer's noop tool (no upstream): p50 {:.1} ms, p95 {:.1} ms, {:.0} calls/s.",
        b.peer_noop.p50_ms, b.peer_noop.p95_ms, b.peer_noop.calls_per_sec
    );
    println!(
        "Added latency = p50 minus the upstream's p50 times the Exact calls the server made per call (ours answers list_divisions from D1)."
    );
    println!();
    println!(
        "| D1 delay | tool | clients | peer calls/s | ours calls/s | ours / peer | peer p50 / p95 | ours p50 / p95 | peer added p50 | ours added p50 | Exact calls per call (peer, ours) | ours D1 round trips / statements per call | errors (peer, ours) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for c in &b.comparisons {
        println!(
            "| {} ms | {} | {} | {:.1} | {:.1} | {:.2}× | {:.1} / {:.1} ms | {:.1} / {:.1} ms | {:.1} ms | {:.1} ms | {:.2}, {:.2} | {} / {} | {}, {} |",
            c.d1_delay_ms,
            c.ours.tool,
            c.clients,
            c.peer.calls_per_sec,
            c.ours.calls_per_sec,
            c.ours.calls_per_sec / c.peer.calls_per_sec.max(f64::MIN_POSITIVE),
            c.peer.p50_ms,
            c.peer.p95_ms,
            c.ours.p50_ms,
            c.ours.p95_ms,
            c.peer_added_p50_ms(),
            c.ours_added_p50_ms(),
            c.peer.exact_calls_per_call,
            c.ours.exact_calls_per_call,
            per_call(c.ours.d1_round_trips_per_call),
            per_call(c.ours.d1_statements_per_call),
            c.peer.errors,
            c.ours.errors,
        );
    }
    println!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_result_without_is_error_counts_as_answered() {
        assert!(answered(&json!({"result": {"content": []}})));
        assert!(answered(
            &json!({"result": {"content": [], "isError": false}})
        ));
        assert!(!answered(
            &json!({"result": {"content": [], "isError": true}})
        ));
        assert!(!answered(&json!({"error": {"code": -32602}})));
    }

    #[test]
    fn counts_are_averaged_over_the_answers_that_carried_them() {
        assert_eq!(mean_of([Some(1), None, Some(3)].into_iter()), Some(2.0));
        assert_eq!(mean_of([None, None].into_iter()), None);
        assert_eq!(per_call(None), "n/a");
        assert_eq!(per_call(Some(1.0)), "1.0");
    }

    #[test]
    fn added_latency_subtracts_the_upstream_once_per_exact_call() {
        let mut row = single("t", true, 10.0, 1.0);
        let c = Comparison {
            d1_delay_ms: 0,
            clients: 1,
            peer: row.clone(),
            ours: {
                row.exact_calls_per_call = 0.0;
                row
            },
            upstream_p50_ms: 4.0,
        };
        assert_eq!(c.peer_added_p50_ms(), 6.0);
        assert_eq!(c.ours_added_p50_ms(), 10.0);
    }
}
