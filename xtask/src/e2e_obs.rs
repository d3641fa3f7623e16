//! The observability checks in workerd: every response of every Worker
//! carries its own `X-Request-Id`, workerd prints one JSON line per
//! request with that id (and one per cron run), and `/health/deep` opens
//! only for the operator's token and reports the migrations this bundle
//! expects as applied.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::process::{DevServer, HttpReply, d1_query, http_get, http_request};
use crate::tools::Tools;

fn expect(cond: bool, msg: impl FnOnce() -> String) -> Result<()> {
    if cond { Ok(()) } else { bail!(msg()) }
}

/// The local operator token `cargo xtask` wrote beside the run's secrets.
pub fn operator_token(state: &Path) -> Result<String> {
    let file = state.join(crate::demo::OPERATOR_TOKEN_FILE);
    Ok(std::fs::read_to_string(&file)
        .with_context(|| format!("reading {}", file.display()))?
        .trim()
        .to_owned())
}

fn request_id(what: &str, r: &HttpReply) -> Result<String> {
    r.header("x-request-id")
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
        .with_context(|| format!("{what}: no X-Request-Id in {:?}", r.headers))
}

/// The JSON log line (`"log":"request"` or `"run"`) with this request id
/// in a Worker's output. workerd writes a Worker's console output as it
/// comes, so the line may trail the answer: read again for a while.
pub fn log_line(log: &Path, kind: &str, request_id: &str) -> Result<Value> {
    let marker = format!("{{\"log\":\"{kind}\"");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let found = text.lines().find_map(|l| {
            let start = l.find(&marker)?;
            let v: Value = serde_json::from_str(l[start..].trim_end()).ok()?;
            (v["request_id"] == request_id).then_some(v)
        });
        if let Some(v) = found {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!(
                "no {kind} log line with request id {request_id} in {}",
                log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Every Worker: `/health`, a 404 and `/health/deep` (refused) each carry
/// a request id, all distinct, and each has its one JSON log line.
pub fn request_id_check(servers: &[DevServer]) -> Result<()> {
    let mut seen = std::collections::BTreeSet::new();
    for s in servers {
        for (path, status) in [
            ("/health", 200),
            ("/health", 200),
            ("/no/such/route?email=jan@example.nl", 404),
            ("/health/deep", 401),
        ] {
            let r = http_get(s.port, path)?;
            let what = format!("{} {path}", s.name);
            expect(r.status == status, || {
                format!("{what}: status {} body {}", r.status, r.body)
            })?;
            let id = request_id(&what, &r)?;
            expect(seen.insert(id.clone()), || {
                format!("{what}: request id {id} seen before")
            })?;
            let line = log_line(&s.log, "request", &id)?;
            expect(line["worker"] == s.name.as_str(), || {
                format!("{what}: {line}")
            })?;
            expect(line["status"] == status, || format!("{what}: {line}"))?;
            let text = line.to_string();
            expect(
                !text.contains("jan@example.nl") && !text.contains("/no/such/route"),
                || format!("{what}: the raw path reached the log: {text}"),
            )?;
            expect(line["latency_ms"].is_u64(), || format!("{what}: {line}"))?;
        }
    }
    Ok(())
}

/// `/health/deep` on every Worker: 401 without the token or with a wrong
/// one (no details), 200 with it; the migrations this bundle was built
/// with are exactly those applied to the local D1, and the last cron run
/// is reported.
pub fn deep_health_check(tools: &Tools, state: &Path, servers: &[DevServer]) -> Result<()> {
    let token = operator_token(state)?;
    let files: Vec<String> = {
        let mut names: Vec<String> = std::fs::read_dir(tools.root.join("migrations"))?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".sql"))
            .collect();
        names.sort();
        names
    };
    let applied: Vec<String> =
        d1_query(tools, state, "SELECT name FROM d1_migrations ORDER BY id")?
            .iter()
            .filter_map(|r| r["name"].as_str().map(str::to_owned))
            .collect();
    expect(applied == files, || {
        format!("local D1 has {applied:?}, the repository {files:?}")
    })?;
    for s in servers {
        let what = format!("{} /health/deep", s.name);
        let wrong = format!("Bearer {}", "0".repeat(token.len()));
        for auth in [None, Some(wrong.as_str())] {
            let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", *a)).collect();
            let r = http_request(s.port, "GET", "/health/deep", &headers, "")?;
            expect(r.status == 401, || {
                format!("{what} with {auth:?}: status {} body {}", r.status, r.body)
            })?;
            expect(!r.body.contains("migrations"), || {
                format!("{what}: details without the token: {}", r.body)
            })?;
        }
        let bearer = format!("Bearer {token}");
        let r = http_request(
            s.port,
            "GET",
            "/health/deep",
            &[("Authorization", bearer.as_str())],
            "",
        )?;
        expect(!r.body.contains(&token), || {
            format!("{what}: the token is in the body")
        })?;
        let json = r.json()?;
        expect(r.status == 200 && json["healthy"] == true, || {
            format!("{what}: status {} body {json}", r.status)
        })?;
        expect(json["migrations"]["expected"] == json!(files), || {
            format!(
                "{what}: expected migrations {}",
                json["migrations"]["expected"]
            )
        })?;
        expect(json["migrations"]["applied"] == json!(files), || {
            format!(
                "{what}: applied migrations {}",
                json["migrations"]["applied"]
            )
        })?;
        expect(
            json["migrations"]["not_applied"] == json!([])
                && json["migrations"]["unknown"] == json!([]),
            || format!("{what}: {}", json["migrations"]),
        )?;
        expect(json["last_cron_run"]["outcome"].is_string(), || {
            format!("{what}: no last cron run in {json}")
        })?;
        expect(
            json["settings"]["present"]
                .as_array()
                .is_some_and(|p| p.iter().any(|n| n == "OPERATOR_TOKEN")),
            || format!("{what}: settings {}", json["settings"]),
        )?;
        let kv = &json["kv_reachable"];
        if s.name == "mcp-server" {
            expect(*kv == true, || format!("{what}: KV {kv}"))?;
            // The local dataset is bound, so tool calls write through it.
            expect(
                json["settings"]["present"]
                    .as_array()
                    .is_some_and(|p| p.iter().any(|n| n == "ANALYTICS")),
                || format!("{what}: no ANALYTICS binding in {}", json["settings"]),
            )?;
        }
        let line = log_line(&s.log, "request", &request_id(&what, &r)?)?;
        expect(
            line["auth"] == "operator" && line["route"] == "/health/deep",
            || format!("{what}: {line}"),
        )?;
    }
    Ok(())
}

/// A demo and a customer `tools/call`: the response's request id is the
/// log line's, the line names the tool, the caller kind and a user tag
/// (never the key), and the customer's usage row carries the same id.
pub fn tool_call_log_check(
    tools: &Tools,
    state: &Path,
    mcp: &DevServer,
    api_key: &str,
) -> Result<()> {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "list_divisions", "arguments": {}}})
    .to_string();
    let headers = [
        ("Accept", "application/json, text/event-stream"),
        ("Content-Type", "application/json"),
        ("MCP-Protocol-Version", "2025-11-25"),
    ];
    let demo_key = exact_sandbox::demo::KEYS[0].0;
    // A tool that reads the (demo) books, so the line counts its calls.
    let relations = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "get_relations", "arguments": {"type": "customer"}}})
    .to_string();
    let r = http_request(
        mcp.port,
        "POST",
        &format!("/demo/{demo_key}"),
        &headers,
        &relations,
    )?;
    expect(r.status == 200, || {
        format!("demo: status {} body {}", r.status, r.body)
    })?;
    let id = request_id("demo tools/call", &r)?;
    let line = log_line(&mcp.log, "request", &id)?;
    expect(
        line["route"] == "/demo/{key}"
            && line["rpc_method"] == "tools/call"
            && line["tool"] == "get_relations"
            && line["auth"] == "demo"
            && line["user"] == "demo"
            && line["outcome"] == "ok",
        || format!("demo line: {line}"),
    )?;
    expect(!line.to_string().contains(demo_key), || {
        format!("the demo key reached the log: {line}")
    })?;
    expect(line["exact_calls"].as_u64().is_some_and(|n| n >= 1), || {
        format!("demo line counts no Exact call: {line}")
    })?;

    let bearer = format!("Bearer {api_key}");
    let mut with_key = headers.to_vec();
    with_key.push(("Authorization", bearer.as_str()));
    let r = http_request(mcp.port, "POST", "/mcp", &with_key, &body)?;
    expect(r.status == 200, || {
        format!("customer: status {} body {}", r.status, r.body)
    })?;
    let id = request_id("customer tools/call", &r)?;
    let line = log_line(&mcp.log, "request", &id)?;
    expect(
        line["route"] == "/mcp"
            && line["tool"] == "list_divisions"
            && line["auth"] == "api_key"
            && line["user"].as_str().is_some_and(|u| u.len() == 16)
            && line["d1_round_trips"].as_u64().is_some_and(|n| n >= 1),
        || format!("customer line: {line}"),
    )?;
    expect(!line.to_string().contains(api_key), || {
        format!("the API key reached the log: {line}")
    })?;
    // The local `ANALYTICS` dataset took both data points without a
    // complaint (workerd's local Analytics Engine keeps them nowhere, but
    // the call crosses the same binding as in production).
    let output = std::fs::read_to_string(&mcp.log)?;
    expect(!output.contains("analytics engine write failed"), || {
        "a data point was refused; see the mcp-server log".into()
    })?;
    // The usage row is written after the answer (in `waitUntil`).
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let rows = d1_query(
            tools,
            state,
            &format!("SELECT COUNT(*) AS n FROM api_usage WHERE request_id = '{id}'"),
        )?;
        if rows.first().is_some_and(|r| r["n"] == 1) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("no api_usage row with request id {id}: {rows:?}");
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// The scheduled run the suite triggered first printed one JSON line with
/// its `cron_runs` row's id and counters. (No run of its own: the
/// token-cron checks count on the runs they make.)
pub fn cron_run_log_check(tools: &Tools, state: &Path, cron: &DevServer) -> Result<()> {
    let rows = d1_query(
        tools,
        state,
        "SELECT id, outcome FROM cron_runs ORDER BY id DESC LIMIT 1",
    )?;
    let id = rows
        .first()
        .and_then(|r| r["id"].as_i64())
        .with_context(|| format!("no cron run: {rows:?}"))?;
    let line = log_line(&cron.log, "run", &format!("cron-{id}"))?;
    expect(
        line["worker"] == "token-cron"
            && line["route"] == "scheduled"
            && line["outcome"] == rows[0]["outcome"]
            && line["d1_round_trips"].as_u64().is_some_and(|n| n >= 1),
        || format!("run line: {line} for {rows:?}"),
    )
}
