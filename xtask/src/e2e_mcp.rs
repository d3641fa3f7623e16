//! End-to-end checks of the MCP endpoint in workerd: authentication and
//! its challenge, protected resource metadata, the protocol over HTTP,
//! `list_divisions` answering from D1 for the key's own user only, and
//! metering of every `tools/call`.

use std::path::Path;

use anyhow::{Context, Result, bail};
use boekhouding_core::crypto::{CredentialKind, issue_credential};
use serde_json::{Value, json};

use crate::bench::OsRandom;
use crate::process::{HttpReply, d1_query, http_get, http_request};
use crate::tools::Tools;

/// Two users with keys; the first has two administrations.
pub struct Seeded {
    pub key: String,
    pub stranger_key: String,
}

pub fn seed(tools: &Tools, state: &Path) -> Result<Seeded> {
    let key =
        issue_credential(&OsRandom, CredentialKind::ApiKey).map_err(|e| anyhow::anyhow!("{e}"))?;
    let other =
        issue_credential(&OsRandom, CredentialKind::ApiKey).map_err(|e| anyhow::anyhow!("{e}"))?;
    let sql = format!(
        "INSERT INTO users (id, email, name, plan, created_at, updated_at) VALUES
           ('e2e-user', 'e2e@example.nl', 'E2E', 'free', 0, 0), ('e2e-stranger', 'stranger@example.nl', NULL, 'free', 0, 0);
         INSERT INTO api_keys (id, user_id, name, key_hash, key_prefix, created_at) VALUES
           ('e2e-key', 'e2e-user', 'e2e', '{}', '{}', 0), ('e2e-key-2', 'e2e-stranger', 'e2e', '{}', '{}', 0);
         INSERT INTO connections (id, user_id, region, access_token_sealed, refresh_token_sealed,
           access_expires_at, refresh_expires_at, created_at, updated_at)
           VALUES ('e2e-conn', 'e2e-user', 'nl', 'v1.1.unused', 'v1.1.unused', 0, 4102444800, 0, 0);
         INSERT INTO administrations (id, connection_id, division_code, name, is_active, is_default, created_at, updated_at) VALUES
           ('e2e-a1', 'e2e-conn', 1000001, 'Bakkerij De Gouden Croissant B.V.', 1, 1, 0, 0),
           ('e2e-a2', 'e2e-conn', 1000002, 'TechVision Consultancy B.V.', 1, 0, 0, 0),
           ('e2e-a3', 'e2e-conn', 1000003, 'Switched off', 0, 0, 0, 0);",
        key.hash, key.display_prefix, other.hash, other.display_prefix
    );
    d1_query(tools, state, &sql)?;
    Ok(Seeded {
        key: key.secret.expose().to_owned(),
        stranger_key: other.secret.expose().to_owned(),
    })
}

fn expect(cond: bool, msg: impl FnOnce() -> String) -> Result<()> {
    if cond { Ok(()) } else { bail!(msg()) }
}

fn rpc(port: u16, key: Option<&str>, body: Value) -> Result<HttpReply> {
    let auth = key.map(|k| format!("Bearer {k}"));
    let mut headers = vec![
        ("Accept", "application/json, text/event-stream"),
        ("Content-Type", "application/json"),
        ("MCP-Protocol-Version", "2025-11-25"),
    ];
    if let Some(a) = &auth {
        headers.push(("Authorization", a.as_str()));
    }
    http_request(port, "POST", "/mcp", &headers, &body.to_string())
}

fn call(port: u16, key: &str, id: i64, method: &str, params: Value) -> Result<Value> {
    let r = rpc(
        port,
        Some(key),
        json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}),
    )?;
    expect(r.status == 200, || {
        format!("{method}: status {} body {}", r.status, r.body)
    })?;
    let v = r.json()?;
    v.get("result")
        .cloned()
        .with_context(|| format!("{method}: no result in {v}"))
}

/// The checks, each returned with its name for the suite's report.
pub fn checks(
    tools: &Tools,
    state: &Path,
    port: u16,
    seeded: &Seeded,
) -> Vec<(&'static str, Result<()>)> {
    let mut out = Vec::new();
    out.push((
        "mcp: no credential answers 401 with a resource_metadata challenge",
        (|| {
            let r = rpc(
                port,
                None,
                json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}),
            )?;
            expect(r.status == 401, || format!("status {}", r.status))?;
            let www = r.header("www-authenticate").unwrap_or("");
            expect(
                www.contains("resource_metadata=\"")
                    && www.contains("/.well-known/oauth-protected-resource/mcp"),
                || www.to_owned(),
            )?;
            let bad = rpc(
                port,
                Some("pmjb_0000000000000000000000000000000000000000000000000000000000000000"),
                json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}),
            )?;
            expect(
                bad.status == 401
                    && bad
                        .header("www-authenticate")
                        .unwrap_or("")
                        .contains("invalid_token"),
                || format!("{} {:?}", bad.status, bad.headers),
            )?;
            let garbage = rpc(
                port,
                Some("' OR 1=1 --"),
                json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}),
            )?;
            expect(garbage.status == 401, || {
                format!("garbage key: {}", garbage.status)
            })
        })(),
    ));
    out.push((
        "mcp: a refused key and a refused browser origin are security events (no secret kept)",
        (|| {
            let key = "pmjb_1111111111111111111111111111111111111111111111111111111111111111";
            let bad = rpc(
                port,
                Some(key),
                json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}),
            )?;
            expect(bad.status == 401, || format!("status {}", bad.status))?;
            let evil = http_request(
                port,
                "POST",
                "/mcp",
                &[
                    ("Accept", "application/json, text/event-stream"),
                    ("Content-Type", "application/json"),
                    ("Authorization", &format!("Bearer {}", seeded.key)),
                    ("Origin", "https://evil.example"),
                ],
                &json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}).to_string(),
            )?;
            expect(evil.status == 403, || {
                format!("evil origin: {}", evil.status)
            })?;
            let hint = boekhouding_core::storage::security_events::credential_hint(key);
            // Written after the answer (ctx.wait_until): wait for it.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
            loop {
                let rows = d1_query(
                    tools,
                    state,
                    "SELECT event_type, user_id, details FROM security_events ORDER BY id",
                )?;
                let text = serde_json::to_string(&rows)?;
                let keyed = rows.iter().any(|r| {
                    r["event_type"] == "invalid_api_key"
                        && r["details"].as_str().is_some_and(|d| d.contains(&hint))
                });
                let origin = rows.iter().any(|r| {
                    r["event_type"] == "suspicious_activity"
                        && r["user_id"] == "e2e-user"
                        && r["details"].as_str().is_some_and(|d| {
                            d.contains("refused_origin") && d.contains("https://evil.example")
                        })
                });
                expect(!text.contains(key), || {
                    format!("the key was stored: {text}")
                })?;
                if keyed && origin {
                    return Ok(());
                }
                if std::time::Instant::now() > deadline {
                    bail!("security events not recorded: {text}");
                }
                std::thread::sleep(std::time::Duration::from_millis(300));
            }
        })(),
    ));
    out.push((
        "mcp: protected resource metadata at the path and the root form",
        (|| {
            for path in [
                "/.well-known/oauth-protected-resource/mcp",
                "/.well-known/oauth-protected-resource",
            ] {
                let r = http_get(port, path)?;
                expect(r.status == 200, || format!("{path}: {}", r.status))?;
                let v = r.json()?;
                expect(
                    v["resource"].as_str().is_some_and(|s| s.ends_with("/mcp")),
                    || v.to_string(),
                )?;
                expect(
                    v["authorization_servers"]
                        .as_array()
                        .is_some_and(|a| !a.is_empty()),
                    || v.to_string(),
                )?;
            }
            Ok(())
        })(),
    ));
    out.push(("mcp: initialize, tools/list with schemas and annotations, transport errors", (|| {
        let init = call(port, &seeded.key, 1, "initialize", json!({"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "e2e", "version": "1"}}))?;
        expect(init["protocolVersion"] == "2025-11-25" && init["instructions"].is_string(), || init.to_string())?;
        let list = call(port, &seeded.key, 2, "tools/list", json!({}))?;
        let tool = list["tools"].as_array().and_then(|t| t.iter().find(|t| t["name"] == "list_divisions")).cloned().context("list_divisions missing")?;
        expect(tool["outputSchema"]["type"] == "object" && tool["annotations"]["readOnlyHint"] == true, || tool.to_string())?;
        let auth = format!("Bearer {}", seeded.key);
        let get = http_request(port, "GET", "/mcp", &[("Authorization", &auth), ("Accept", "text/event-stream")], "")?;
        expect(get.status == 405, || format!("GET {}", get.status))?;
        let bad = http_request(port, "POST", "/mcp", &[("Authorization", &auth), ("Accept", "application/json, text/event-stream"), ("Content-Type", "application/json")], "{oops")?;
        expect(bad.status == 400 && bad.json()?["error"]["code"] == -32700, || bad.body.clone())
    })()));
    out.push(("mcp: list_divisions answers the key's own administrations and is metered", (|| {
        let r = call(port, &seeded.key, 3, "tools/call", json!({"name": "list_divisions", "arguments": {}}))?;
        expect(r["isError"] == false, || r.to_string())?;
        let admins = r["structuredContent"]["administrations"].as_array().cloned().unwrap_or_default();
        let codes: Vec<i64> = admins.iter().filter_map(|a| a["division"].as_i64()).collect();
        expect(codes == vec![1_000_001, 1_000_002], || format!("codes {codes:?}"))?;
        expect(admins[0]["is_default"] == true, || r.to_string())?;
        let theirs = call(port, &seeded.stranger_key, 4, "tools/call", json!({"name": "list_divisions", "arguments": {}}))?;
        expect(theirs["structuredContent"]["count"] == 0, || format!("another user's key saw {theirs}"))?;
        let invalid = call(port, &seeded.key, 5, "tools/call", json!({"name": "list_divisions", "arguments": {"division": "1 OR 1=1"}}))?;
        expect(invalid["isError"] == true, || invalid.to_string())?;
        let unknown = rpc(port, Some(&seeded.key), json!({"jsonrpc": "2.0", "id": 6, "method": "tools/call", "params": {"name": "drop_everything", "arguments": {}}}))?;
        expect(unknown.json()?["error"]["code"] == -32602, || unknown.body.clone())?;
        let limited = rpc(port, Some(&seeded.key), json!({"jsonrpc": "2.0", "id": 7, "method": "tools/list"}))?;
        expect(limited.header("x-ratelimit-limit") == Some("200") && limited.header("x-ratelimit-remaining") == Some("198"), || format!("{:?}", limited.headers))?;
        let counted = d1_query(tools, state, "SELECT user_id, tool_calls FROM usage_counters ORDER BY user_id")?;
        // Two calls of the seeded user (one ok, one invalid) and one of
        // the stranger; tools/list and initialize are not counted.
        expect(counted.len() == 2 && counted[0]["user_id"] == "e2e-stranger" && counted[0]["tool_calls"] == 1 && counted[1]["tool_calls"] == 2, || format!("{counted:?}"))?;
        let rows = d1_query(tools, state, "SELECT auth_kind, outcome FROM api_usage WHERE user_id = 'e2e-user' ORDER BY id")?;
        expect(rows.len() == 2 && rows[0]["auth_kind"] == "api_key" && rows[0]["outcome"] == "ok" && rows[1]["outcome"] == "invalid_arguments", || format!("{rows:?}"))
    })()));
    out
}

pub(crate) fn tool(port: u16, key: &str, id: i64, name: &str, args: Value) -> Result<Value> {
    let r = call(
        port,
        key,
        id,
        "tools/call",
        json!({"name": name, "arguments": args}),
    )?;
    expect(r["isError"] == false, || format!("{name}: {r}"))?;
    Ok(r["structuredContent"].clone())
}

fn cents(v: &Value) -> i64 {
    (v.as_f64().unwrap_or(0.0) * 100.0).round() as i64
}

/// The generic scenarios of the official conformance suite that apply to
/// a server with our own tools (the others call the suite's fixture tools,
/// prompts and resources; see docs/knowledge/CONFORMANCE.md).
pub const CONFORMANCE_SCENARIOS: [&str; 4] = [
    "server-initialize",
    "ping",
    "tools-list",
    "dns-rebinding-protection",
];

/// The suite's scenarios for the stateless 2026-07-28 revision, run with
/// `--spec-version 2026-07-28`.
pub const MODERN_CONFORMANCE_SCENARIOS: [&str; 2] = ["server-stateless", "caching"];

/// The protocol version the modern scenarios are run at.
const MODERN_SPEC_VERSION: &str = "2026-07-28";

/// Checks of the modern scenarios that call the suite's own diagnostic
/// tools, which a product does not have: the suite reports them as failed
/// and "Not testable" (`details.untestable`). Each must stay exactly that;
/// the reasons are in docs/knowledge/CONFORMANCE.md.
pub const NOT_APPLICABLE_CHECKS: [(&str, &str); 4] = [
    (
        "sep-2575-server-rejects-undeclared-capability",
        "needs the diagnostic tool test_missing_capability",
    ),
    (
        "sep-2575-missing-capability-http-400",
        "needs the diagnostic tool test_missing_capability",
    ),
    (
        "sep-2575-http-server-no-independent-requests-on-stream",
        "needs the diagnostic tool test_streaming_elicitation",
    ),
    (
        "sep-2575-server-no-log-without-loglevel",
        "needs the diagnostic tool test_logging_tool",
    ),
];

/// Checks that must pass in each modern scenario: the ones that found the
/// wrong answers once, so a run that silently drops them cannot pass.
/// (`server-stateless` sends raw requests, so only `caching` yields the
/// suite's wire-schema check.)
const REQUIRED_MODERN_CHECKS: [(&str, &[&str]); 2] = [
    (
        "server-stateless",
        &[
            "sep-2575-request-meta-invalid-missing-meta",
            "sep-2575-request-meta-invalid-missing-protocol-version",
            "sep-2575-request-meta-invalid-missing-client-capabilities",
            "sep-2575-http-server-meta-invalid-400",
            "sep-2575-http-server-header-mismatch-400",
            "sep-2575-server-unsupported-version-error",
            "sep-2575-http-server-method-not-found-404-initialize",
            "sep-2575-server-implements-discover",
        ],
    ),
    (
        "caching",
        &[
            "sep-2549-tools-list-caching-hints",
            "sep-2549-prompts-list-caching-hints",
            "sep-2549-resources-list-caching-hints",
            "sep-2549-resources-templates-list-caching-hints",
            "sep-2549-resources-read-caching-hints",
            "wire-schema-valid",
        ],
    ),
];

/// Judges one modern scenario's `checks.json`: every check passes or is
/// skipped by the suite itself (a capability we do not declare), except
/// the not-applicable ones, which must be reported as not testable; and
/// the scenario's required checks are present and pass. Returns a one-line
/// summary.
pub fn judge_modern_checks(scenario: &str, checks: &[Value]) -> Result<String> {
    let mut problems = Vec::new();
    let (mut passed, mut skipped, mut not_applicable) = (0, 0, 0);
    for check in checks {
        let id = check["id"].as_str().unwrap_or_default();
        let status = check["status"].as_str().unwrap_or_default();
        let untestable = check["details"]["untestable"] == true;
        match NOT_APPLICABLE_CHECKS.iter().find(|(na, _)| *na == id) {
            Some(_) if status == "FAILURE" && untestable => not_applicable += 1,
            Some((_, why)) => problems.push(format!(
                "{id}: listed as not applicable ({why}) but reported {status}: {check}"
            )),
            None if status == "SUCCESS" => passed += 1,
            None if status == "SKIPPED" => skipped += 1,
            None => problems.push(format!("{id}: {status}: {check}")),
        }
    }
    let required = REQUIRED_MODERN_CHECKS
        .iter()
        .find(|(s, _)| *s == scenario)
        .map_or(&[][..], |(_, ids)| *ids);
    for id in required {
        if !checks
            .iter()
            .any(|c| c["id"] == *id && c["status"] == "SUCCESS")
        {
            problems.push(format!("{id}: required, but did not pass"));
        }
    }
    expect(problems.is_empty(), || {
        format!("{scenario}:\n  {}", problems.join("\n  "))
    })?;
    Ok(format!(
        "{passed} passed, {skipped} skipped by the suite, {not_applicable} not applicable"
    ))
}

/// Runs one scenario of the suite against `url`; at the 2026-07-28
/// revision its checks are read from the suite's `checks.json` and judged
/// by [`judge_modern_checks`], otherwise every check must pass.
fn run_conformance_scenario(tools: &Tools, url: &str, scenario: &str, modern: bool) -> Result<()> {
    let out_dir = std::env::temp_dir().join(format!(
        "pmjb-conformance-{}-{scenario}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&out_dir);
    let mut cmd = std::process::Command::new(tools.node_modules.join(".bin/conformance"));
    tools.apply(&mut cmd);
    cmd.args(["server", "--url", url, "--scenario", scenario]);
    if modern {
        cmd.args(["--spec-version", MODERN_SPEC_VERSION])
            .arg("--output-dir")
            .arg(&out_dir);
    }
    let out = cmd.output()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let result = if modern {
        (|| {
            let run = std::fs::read_dir(&out_dir)
                .with_context(|| format!("no results for {scenario}: {text}"))?
                .filter_map(Result::ok)
                .find(|e| e.path().join("checks.json").exists())
                .with_context(|| format!("no checks.json for {scenario}: {text}"))?;
            let checks: Vec<Value> =
                serde_json::from_str(&std::fs::read_to_string(run.path().join("checks.json"))?)?;
            let summary = judge_modern_checks(scenario, &checks)?;
            println!("    conformance {scenario} ({MODERN_SPEC_VERSION}): {summary}");
            Ok(())
        })()
    } else {
        let passed = text
            .lines()
            .any(|l| l.starts_with("Passed:") && l.contains(" 0 failed"));
        println!(
            "    conformance {scenario}: {}",
            text.lines()
                .find(|l| l.starts_with("Passed:"))
                .unwrap_or("no result")
        );
        expect(out.status.success() && passed, || {
            format!("{scenario}: {text}")
        })
    };
    let _ = std::fs::remove_dir_all(&out_dir);
    result
}

/// Runs the official MCP conformance suite through a loopback proxy that
/// adds the API key (the suite cannot send one): the generic legacy
/// scenarios, then the 2026-07-28 ones.
pub fn conformance_check(tools: &Tools, port: u16, key: &str) -> Result<()> {
    let proxy_port = crate::process::free_port()?;
    let mut proxy = tools.node();
    proxy
        .arg(tools.root.join("tests/conformance/auth-proxy.mjs"))
        .arg(proxy_port.to_string())
        .arg(format!("http://127.0.0.1:{port}"))
        .arg(key)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    std::os::unix::process::CommandExt::process_group(&mut proxy, 0);
    let mut child = proxy.spawn()?;
    let result = (|| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", proxy_port)).is_err() {
            expect(std::time::Instant::now() < deadline, || {
                "the auth proxy did not start".into()
            })?;
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let url = format!("http://127.0.0.1:{proxy_port}/mcp");
        let failures: Vec<String> = CONFORMANCE_SCENARIOS
            .iter()
            .map(|s| (s, false))
            .chain(MODERN_CONFORMANCE_SCENARIOS.iter().map(|s| (s, true)))
            .filter_map(|(scenario, modern)| {
                run_conformance_scenario(tools, &url, scenario, modern)
                    .err()
                    .map(|e| format!("{e:#}"))
            })
            .collect();
        expect(failures.is_empty(), || failures.join("\n"))
    })();
    crate::process::stop_group(&mut child);
    result
}

/// The official MCP Python SDK lists and calls every tool over HTTP;
/// with `compare`, every answer must equal the one for that other key.
pub fn sdk_check(tools: &Tools, port: u16, key: &str, compare: Option<&str>) -> Result<()> {
    let mut cmd = std::process::Command::new(&tools.python);
    cmd.arg(tools.root.join("tests/sdk/mcp_client.py"))
        .arg(format!("http://127.0.0.1:{port}/mcp"))
        .arg(key);
    if let Some(other) = compare {
        cmd.arg("--compare-key").arg(other);
    }
    let out = cmd.output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    expect(out.status.success(), || {
        format!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr))
    })?;
    expect(
        stdout
            .lines()
            .filter(|l| l.contains("\"ok\": true"))
            .count()
            // 51 tools, 6 prompts in two languages, resources, completion.
            >= 65,
        || stdout.to_string(),
    )
}

/// Every demo key opens its own company without a database row, is not
/// metered, and a made-up demo key is refused like any unknown key; the
/// key also works in the URL (`/demo/{key}`).
pub fn demo_keys_check(port: u16) -> Result<()> {
    for (n, (key, division)) in exact_sandbox::demo::KEYS.iter().enumerate() {
        let r = rpc(
            port,
            Some(key),
            json!({"jsonrpc": "2.0", "id": n, "method": "tools/call",
                   "params": {"name": "get_financial_snapshot", "arguments": {}}}),
        )?;
        expect(r.status == 200, || {
            format!("{key}: {} {}", r.status, r.body)
        })?;
        let v = r.json()?;
        expect(
            v["result"]["structuredContent"]["division"] == *division,
            || format!("{key} should open {division}: {v}"),
        )?;
        expect(
            r.header("x-demo-mode") == Some("true") && r.header("x-ratelimit-limit").is_none(),
            || format!("{key}: a demo call is not metered: {:?}", r.headers),
        )?;
    }
    let r = rpc(
        port,
        Some("pmjb_demo_unknown"),
        json!({"jsonrpc": "2.0", "id": 9, "method": "tools/list"}),
    )?;
    expect(r.status == 401, || {
        format!("unknown demo key: {} {}", r.status, r.body)
    })?;
    // The key in the URL, for clients that take only a URL.
    let headers = [
        ("Accept", "application/json, text/event-stream"),
        ("Content-Type", "application/json"),
        ("MCP-Protocol-Version", "2025-11-25"),
    ];
    let body = json!({"jsonrpc": "2.0", "id": 10, "method": "tools/call",
                      "params": {"name": "get_financial_snapshot", "arguments": {}}})
    .to_string();
    let (key, division) = exact_sandbox::demo::KEYS[1];
    let r = http_request(port, "POST", &format!("/demo/{key}"), &headers, &body)?;
    expect(
        r.status == 200 && r.json()?["result"]["structuredContent"]["division"] == division,
        || format!("/demo/{key}: {} {}", r.status, r.body),
    )?;
    let r = http_request(port, "POST", "/demo/pmjb_demo_unknown", &headers, &body)?;
    expect(r.status == 404, || {
        format!("unknown demo path: {} {}", r.status, r.body)
    })
}

/// Demo keys are public, so one address gets a bounded number of demo
/// requests a minute (`DEMO_LIMITER`, 600 locally); past it a 429 with
/// `Retry-After`. Runs last: it spends the minute's budget.
pub fn demo_limit_check(port: u16) -> Result<()> {
    let auth = format!("Bearer {}", exact_sandbox::demo::KEYS[0].0);
    let headers = [
        ("Accept", "application/json, text/event-stream"),
        ("Content-Type", "application/json"),
        ("MCP-Protocol-Version", "2025-11-25"),
        ("Authorization", auth.as_str()),
        ("CF-Connecting-IP", "203.0.113.9"),
    ];
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}).to_string();
    let mut served = 0;
    for _ in 0..800 {
        let r = http_request(port, "POST", "/mcp", &headers, &body)?;
        match r.status {
            200 => served += 1,
            429 => {
                return expect(
                    served > 0
                        && r.header("retry-after") == Some("60")
                        && r.body.contains("Demo limit"),
                    || format!("after {served} requests: {:?} {}", r.headers, r.body),
                );
            }
            other => bail!("demo request answered {other}: {}", r.body),
        }
    }
    bail!("{served} demo requests in a row were served; the limiter never refused")
}

/// The stateless 2026-07-28 revision through the Worker: discovery, a
/// tool call with `_meta` and mirrored headers, and its errors.
pub fn modern_era_check(port: u16, key: &str) -> Result<()> {
    let meta = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "e2e", "version": "1"},
    });
    let auth = format!("Bearer {key}");
    let post = |method: &str, name: Option<&str>, params: Value| {
        let mut headers = vec![
            ("Authorization", auth.as_str()),
            ("Accept", "application/json, text/event-stream"),
            ("Content-Type", "application/json"),
            ("MCP-Protocol-Version", "2026-07-28"),
            ("Mcp-Method", method),
        ];
        if let Some(n) = name {
            headers.push(("Mcp-Name", n));
        }
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        http_request(port, "POST", "/mcp", &headers, &body.to_string())
    };
    let d = post("server/discover", None, json!({"_meta": meta}))?;
    let dv = d.json()?;
    expect(
        d.status == 200
            && dv["result"]["supportedVersions"][0] == "2026-07-28"
            && dv["result"]["resultType"] == "complete",
        || d.body.clone(),
    )?;
    let c = post(
        "tools/call",
        Some("list_divisions"),
        json!({"name": "list_divisions", "arguments": {}, "_meta": meta}),
    )?;
    let cv = c.json()?;
    expect(
        c.status == 200
            && cv["result"]["isError"] == false
            && cv["result"]["structuredContent"]["count"]
                .as_u64()
                .unwrap_or(0)
                > 0,
        || c.body.clone(),
    )?;
    let l = post("tools/list", None, json!({"_meta": meta}))?;
    let lv = l.json()?;
    expect(
        lv["result"]["ttlMs"].is_number() && lv["result"]["cacheScope"] == "private",
        || l.body.clone(),
    )?;
    let mismatch = post(
        "tools/call",
        Some("get_gl_accounts"),
        json!({"name": "list_divisions", "arguments": {}, "_meta": meta}),
    )?;
    expect(
        mismatch.status == 400 && mismatch.json()?["error"]["code"] == -32020,
        || mismatch.body.clone(),
    )?;
    let pl = post("prompts/list", None, json!({"_meta": meta}))?;
    let plv = pl.json()?;
    expect(
        plv["result"]["prompts"].as_array().map(Vec::len) == Some(6)
            && plv["result"]["resultType"] == "complete",
        || pl.body.clone(),
    )?;
    let pg = post(
        "prompts/get",
        Some("vat_preparation"),
        json!({"name": "vat_preparation", "arguments": {"period": "2026-Q3", "language": "en"}, "_meta": meta}),
    )?;
    expect(
        pg.json()?["result"]["messages"][0]["content"]["text"]
            .as_str()
            .is_some_and(|t| t.contains("2026-Q3") && t.contains("get_vat_summary")),
        || pg.body.clone(),
    )?;
    let rr = post(
        "resources/read",
        Some("exact://connections"),
        json!({"uri": "exact://connections", "_meta": meta}),
    )?;
    let rrv = rr.json()?;
    expect(
        rrv["result"]["contents"][0]["uri"] == "exact://connections"
            && rrv["result"]["contents"][0]["text"]
                .as_str()
                .is_some_and(|t| t.contains("\"status\":\"active\"")),
        || rr.body.clone(),
    )?;
    let ping = post("ping", None, json!({"_meta": meta}))?;
    expect(
        ping.status == 404 && ping.json()?["error"]["code"] == -32601,
        || ping.body.clone(),
    )
}

/// Exact-backed tools through the Worker: D1, sealed tokens opened in wasm,
/// outbound fetch to the sandbox, answers equal to the sandbox's data.
pub fn exact_checks(
    port: u16,
    account: &crate::demo::Account,
    sandbox: &exact_sandbox::Sandbox,
) -> Vec<(&'static str, Result<()>)> {
    let key = account.api_key.as_str();
    let division = account.divisions.first().copied().unwrap_or(0);
    vec![
        (
            "mcp: get_gl_accounts from Exact equals the sandbox's chart of accounts",
            (|| {
                let r = tool(
                    port,
                    key,
                    10,
                    "get_gl_accounts",
                    json!({"division": division}),
                )?;
                let source = sandbox.rows(division, "financial/GLAccounts");
                expect(
                    r["count"].as_u64() == Some(source.len() as u64) && r["truncated"] == false,
                    || format!("{} vs {}", r["count"], source.len()),
                )
            })(),
        ),
        (
            "mcp: get_outstanding_invoices ties out with the open items",
            (|| {
                let r = tool(
                    port,
                    key,
                    11,
                    "get_outstanding_invoices",
                    json!({"type": "receivable"}),
                )?;
                let expected: i64 = sandbox
                    .rows(division, "read/financial/ReceivablesList")
                    .iter()
                    .map(|x| cents(&x["Amount"]))
                    .sum();
                expect(cents(&r["receivables"]["total"]) == expected, || {
                    format!("{} vs {expected}", r["receivables"]["total"])
                })
            })(),
        ),
        (
            "mcp: another tenant's administration is refused",
            (|| {
                let r = call(
                    port,
                    key,
                    12,
                    "tools/call",
                    json!({"name": "get_gl_accounts", "arguments": {"division": 1_000_004}}),
                )?;
                expect(
                    r["isError"] == true
                        && r["content"][0]["text"]
                            .as_str()
                            .unwrap_or("")
                            .contains("not one of"),
                    || r.to_string(),
                )
            })(),
        ),
    ]
}

/// A reply read from a raw socket: the head and as much body as the
/// `Content-Length` promised (the server may keep the connection open
/// after refusing a body it did not read).
fn read_reply(stream: &mut std::net::TcpStream) -> Result<HttpReply> {
    use std::io::Read;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(20)))?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 16_384];
    loop {
        let text = String::from_utf8_lossy(&raw).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let mut lines = head.lines();
            let status: u16 = lines
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|s| s.parse().ok())
                .context("no status line")?;
            let headers: Vec<(String, String)> = lines
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                .collect();
            let reply = HttpReply {
                status,
                headers,
                body: body.to_owned(),
            };
            let want = reply
                .header("content-length")
                .and_then(|l| l.parse::<usize>().ok());
            if want.is_some_and(|n| body.len() >= n) {
                return Ok(reply);
            }
        }
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) => {
                return Err(e).context(
                    "no answer while the body was still unsent: the server waits to read it all",
                );
            }
        }
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").context("no header end")?;
    let status = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .context("no status line")?;
    Ok(HttpReply {
        status,
        headers: Vec::new(),
        body: body.to_owned(),
    })
}

/// The head of a POST to a demo URL, with `framing` (a length or chunked).
fn demo_post_head(port: u16, framing: &str) -> String {
    format!(
        "POST /demo/{} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
         Accept: application/json, text/event-stream\r\nContent-Type: application/json\r\n\
         MCP-Protocol-Version: 2025-11-25\r\n{framing}\r\n\r\n",
        exact_sandbox::demo::KEYS[0].0
    )
}

fn expect_413(what: &str, r: &HttpReply) -> Result<()> {
    expect(r.status == 413, || {
        format!("{what}: status {} body {}", r.status, r.body)
    })?;
    expect_safe_headers(what, r)
}

/// Every MCP answer is neither cached nor content-sniffed.
fn expect_safe_headers(what: &str, r: &HttpReply) -> Result<()> {
    expect(
        r.header("cache-control") == Some("no-store")
            && r.header("x-content-type-options") == Some("nosniff"),
        || format!("{what}: headers {:?}", r.headers),
    )
}

/// Bodies are limited before they are read: a declared 50 MB body is
/// refused on its `Content-Length` before it is sent, a 50 MB body that is
/// sent is cut off long before its end, a chunked body without a length is
/// refused once it passes the limit (without its end ever being sent), and
/// the isolate answers a normal request right after.
pub fn body_limit_check(port: u16) -> Result<()> {
    use std::io::Write;
    use std::net::{Shutdown, TcpStream};
    const FIFTY_MB: usize = 50 * 1024 * 1024;
    let chunk = vec![b' '; 64 * 1024];

    // Declared 50 MB, none of it sent: the answer must come without the
    // body (nothing unread is left behind, so no reset can swallow it).
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.write_all(demo_post_head(port, &format!("Content-Length: {FIFTY_MB}")).as_bytes())?;
    let r = read_reply(&mut s).context("declared 50 MB, body withheld");
    let _ = s.shutdown(Shutdown::Both);
    expect_413("declared 50 MB, body withheld", &r?)?;

    // 50 MB actually sent, by a writer that stops when the server closes,
    // while the answer is read. A server that answers before reading
    // closes a connection with unread bytes, which resets it, and a reset
    // may discard the 413 before the client reads it (the usual fate of an
    // upload refused early; locally, wrangler's proxy may also turn the
    // cut-off into a 500). What must hold: the server never took the whole
    // body (reading it first would have accepted all 50 MB; kernel buffers
    // hold far less), and a 413 that arrives carries the usual headers.
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.write_all(demo_post_head(port, &format!("Content-Length: {FIFTY_MB}")).as_bytes())?;
    let mut writer = s.try_clone()?;
    let sent = chunk.clone();
    let feeding = std::thread::spawn(move || {
        let mut accepted = 0usize;
        for _ in 0..FIFTY_MB / sent.len() {
            if writer.write_all(&sent).is_err() {
                break;
            }
            accepted += sent.len();
        }
        accepted
    });
    let r = read_reply(&mut s);
    let _ = s.shutdown(Shutdown::Both);
    let accepted = feeding.join().unwrap_or(FIFTY_MB);
    expect(accepted < FIFTY_MB, || {
        format!(
            "50 MB sent: the whole body was accepted before the answer {:?}",
            r.as_ref().map(|r| r.status).map_err(|e| e.to_string())
        )
    })?;
    if let Ok(reply) = &r
        && reply.status == 413
    {
        expect_413("50 MB sent", reply)?;
    }
    // Chunked without a length: five 64 KiB chunks (the fifth passes the
    // 256 KiB limit), never the final empty chunk; the answer must come
    // once the limit is passed.
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.write_all(demo_post_head(port, "Transfer-Encoding: chunked").as_bytes())?;
    for _ in 0..5 {
        let mut framed = format!("{:x}\r\n", chunk.len()).into_bytes();
        framed.extend_from_slice(&chunk);
        framed.extend_from_slice(b"\r\n");
        if s.write_all(&framed).is_err() {
            break;
        }
    }
    let r = read_reply(&mut s).context("chunked, no length, never ended");
    let _ = s.shutdown(Shutdown::Both);
    expect_413("chunked, no length, never ended", &r?)?;

    // The isolate still answers, with the headers every answer carries.
    let headers = [
        ("Accept", "application/json, text/event-stream"),
        ("Content-Type", "application/json"),
        ("MCP-Protocol-Version", "2025-11-25"),
    ];
    let path = format!("/demo/{}", exact_sandbox::demo::KEYS[0].0);
    let ok = http_request(
        port,
        "POST",
        &path,
        &headers,
        &json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}).to_string(),
    )?;
    expect(ok.status == 200, || {
        format!("ping after the large bodies: {} {}", ok.status, ok.body)
    })?;
    expect_safe_headers("ping", &ok)?;
    let get = http_request(port, "GET", &path, &headers, "")?;
    expect(get.status == 405, || format!("GET: {}", get.status))?;
    expect_safe_headers("GET", &get)
}

/// Without the `DEMO_LIMITER` binding a demo key is refused (503), as a
/// bearer key and in the URL: the public demo fails closed.
pub fn demo_without_limiter_check(port: u16) -> Result<()> {
    let (key, _) = exact_sandbox::demo::KEYS[0];
    let auth = format!("Bearer {key}");
    let headers = [
        ("Accept", "application/json, text/event-stream"),
        ("Content-Type", "application/json"),
        ("MCP-Protocol-Version", "2025-11-25"),
        ("Authorization", auth.as_str()),
    ];
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}).to_string();
    for path in ["/mcp".to_owned(), format!("/demo/{key}")] {
        let r = http_request(port, "POST", &path, &headers, &body)?;
        expect(r.status == 503 && r.header("retry-after").is_some(), || {
            format!("{path}: {} {:?} {}", r.status, r.headers, r.body)
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(id: &str, status: &str, untestable: bool) -> Value {
        json!({"id": id, "status": status, "details": {"untestable": untestable}})
    }

    fn caching(extra: Vec<Value>) -> Vec<Value> {
        let mut checks: Vec<Value> = REQUIRED_MODERN_CHECKS[1]
            .1
            .iter()
            .map(|id| check(id, "SUCCESS", false))
            .collect();
        checks.extend(extra);
        checks
    }

    #[test]
    fn a_modern_scenario_passes_only_when_every_applicable_check_does() {
        assert!(judge_modern_checks("caching", &caching(vec![])).is_ok());
        // The suite's own skips (an undeclared capability) are fine.
        assert!(
            judge_modern_checks("caching", &caching(vec![check("x", "SKIPPED", false)])).is_ok()
        );
        // A not-applicable check must be reported as not testable.
        let na = NOT_APPLICABLE_CHECKS[0].0;
        assert!(judge_modern_checks("caching", &caching(vec![check(na, "FAILURE", true)])).is_ok());
        assert!(
            judge_modern_checks("caching", &caching(vec![check(na, "FAILURE", false)])).is_err()
        );
        assert!(
            judge_modern_checks("caching", &caching(vec![check(na, "SUCCESS", false)])).is_err(),
            "a check that starts passing leaves the not-applicable list"
        );
        for bad in ["FAILURE", "WARNING"] {
            assert!(
                judge_modern_checks("caching", &caching(vec![check("x", bad, false)])).is_err(),
                "{bad}"
            );
        }
        // A required check that is missing or failed.
        let mut missing = caching(vec![]);
        missing.remove(0);
        assert!(judge_modern_checks("caching", &missing).is_err());
        assert!(judge_modern_checks("server-stateless", &[]).is_err());
    }
}
