//! The engine over its HTTP rules, with a small tool host: every transport
//! rule, both eras' negotiation and errors with their HTTP statuses.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use boekhouding_mcp::engine::{Engine, ServerIdentity, ToolCallOutcome, ToolHost};
use boekhouding_mcp::http::{HttpCall, HttpReply, TransportPolicy, handle};
use futures::executor::block_on;
use serde_json::{Value, json};

struct Echo;

impl ToolHost for Echo {
    fn tools(&self) -> Vec<Value> {
        vec![
            json!({"name": "echo", "description": "Echoes text", "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"], "additionalProperties": false}}),
        ]
    }
    async fn call(&self, name: &str, args: Value) -> ToolCallOutcome {
        match (name, args.get("text").and_then(Value::as_str)) {
            ("echo", Some(t)) => ToolCallOutcome::Ok {
                structured: json!({"text": t}),
                text: t.to_owned(),
            },
            ("echo", None) => {
                ToolCallOutcome::ToolError("Invalid arguments: `text` (string) is required".into())
            }
            _ => ToolCallOutcome::UnknownTool,
        }
    }
}

fn engine() -> Engine {
    Engine::new(ServerIdentity {
        name: "praat-met-je-boekhouding".into(),
        title: "Praat met je Boekhouding".into(),
        version: "0.1.0".into(),
        instructions: "Call list_divisions first.".into(),
    })
}

const ACCEPT: (&str, &str) = ("Accept", "application/json, text/event-stream");
const JSON: (&str, &str) = ("Content-Type", "application/json");

fn send(method: &str, headers: &[(&str, &str)], body: &str, policy: &TransportPolicy) -> HttpReply {
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    block_on(handle(
        &engine(),
        &Echo,
        HttpCall {
            method,
            headers: &headers,
            body: body.as_bytes(),
        },
        policy,
    ))
}

fn post(body: Value, extra: &[(&str, &str)]) -> HttpReply {
    let mut h = vec![ACCEPT, JSON];
    h.extend_from_slice(extra);
    send("POST", &h, &body.to_string(), &TransportPolicy::default())
}

fn error_code(r: &HttpReply) -> i64 {
    r.body.as_ref().unwrap()["error"]["code"].as_i64().unwrap()
}

fn modern(method: &str, params: Value) -> Value {
    let mut p = params;
    p["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "test", "version": "1"},
    });
    json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": p})
}

#[test]
fn transport_rules() {
    let p = TransportPolicy {
        allowed_origins: vec!["https://claude.ai".into()],
        ..TransportPolicy::default()
    };
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}).to_string();
    let r = send("GET", &[ACCEPT], "", &p);
    assert_eq!(r.status, 405);
    assert!(r.headers.contains(&("Allow".into(), "POST".into())));
    assert_eq!(send("DELETE", &[], "", &p).status, 405);
    assert_eq!(
        send(
            "POST",
            &[ACCEPT, JSON, ("Origin", "https://evil.example")],
            &ping,
            &p
        )
        .status,
        403
    );
    assert_eq!(
        send(
            "POST",
            &[ACCEPT, JSON, ("Origin", "https://claude.ai")],
            &ping,
            &p
        )
        .status,
        200
    );
    assert_eq!(
        send("POST", &[ACCEPT, JSON], &ping, &p).status,
        200,
        "no Origin: not a browser"
    );
    let big = format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":{{\"x\":\"{}\"}}}}",
        "a".repeat(300_000)
    );
    assert_eq!(send("POST", &[ACCEPT, JSON], &big, &p).status, 413);
    assert_eq!(
        send("POST", &[ACCEPT, ("Content-Type", "text/plain")], &ping, &p).status,
        415
    );
    assert_eq!(
        send("POST", &[("Accept", "application/json"), JSON], &ping, &p).status,
        406
    );
    let hosts = TransportPolicy {
        allowed_hosts: vec!["127.0.0.1:8787".into()],
        ..TransportPolicy::default()
    };
    assert_eq!(
        send(
            "POST",
            &[ACCEPT, JSON, ("Host", "evil.example")],
            &ping,
            &hosts
        )
        .status,
        403
    );
    assert_eq!(
        send(
            "POST",
            &[ACCEPT, JSON, ("Host", "127.0.0.1:8787")],
            &ping,
            &hosts
        )
        .status,
        200
    );
}

#[test]
fn framing_errors() {
    let p = TransportPolicy::default();
    let r = send("POST", &[ACCEPT, JSON], "{not json", &p);
    assert_eq!((r.status, error_code(&r)), (400, -32700));
    assert_eq!(r.body.as_ref().unwrap()["id"], Value::Null);
    let r = post(json!([{"jsonrpc": "2.0", "id": 1, "method": "ping"}]), &[]);
    assert_eq!((r.status, error_code(&r)), (400, -32600));
    let r = post(json!({"id": 1, "method": "ping"}), &[]);
    assert_eq!((r.status, error_code(&r)), (400, -32600));
    let r = post(json!({"jsonrpc": "2.0", "id": null, "method": "ping"}), &[]);
    assert_eq!((r.status, error_code(&r)), (400, -32600));
    let r = post(
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": [1]}),
        &[],
    );
    assert_eq!((r.status, error_code(&r)), (400, -32602));
    let r = post(
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        &[],
    );
    assert_eq!((r.status, r.body.clone()), (202, None));
    let r = post(json!({"jsonrpc": "2.0", "id": 3, "result": {}}), &[]);
    assert_eq!(r.status, 202, "a client's response is accepted");
    let r = post(json!({"jsonrpc": "2.0", "id": 1, "method": "nope"}), &[]);
    assert_eq!((r.status, error_code(&r)), (200, -32601));
}

#[test]
fn legacy_negotiation_and_tools() {
    for (asked, got) in [
        ("2025-06-18", "2025-06-18"),
        ("2025-11-25", "2025-11-25"),
        ("1999-01-01", "2025-11-25"),
    ] {
        let r = post(
            json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": asked, "capabilities": {}, "clientInfo": {"name": "c", "version": "1"}}}),
            &[],
        );
        let result = &r.body.as_ref().unwrap()["result"];
        assert_eq!(result["protocolVersion"], got);
        assert_eq!(result["serverInfo"]["name"], "praat-met-je-boekhouding");
        assert!(
            result["instructions"]
                .as_str()
                .unwrap()
                .contains("list_divisions")
        );
        assert!(result["capabilities"]["tools"].is_object());
        assert!(
            result.get("resultType").is_none(),
            "legacy results carry no resultType"
        );
    }
    let r = post(
        json!({"jsonrpc": "2.0", "id": "a", "method": "tools/list"}),
        &[("MCP-Protocol-Version", "2025-11-25")],
    );
    assert_eq!(r.body.as_ref().unwrap()["id"], "a");
    assert_eq!(
        r.body.as_ref().unwrap()["result"]["tools"][0]["name"],
        "echo"
    );
    let r = post(
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
        &[("MCP-Protocol-Version", "2024-01-01")],
    );
    assert_eq!((r.status, error_code(&r)), (400, -32600));

    let call = |args: Value, name: &str| {
        post(
            json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": name, "arguments": args}}),
            &[],
        )
    };
    let ok = call(json!({"text": "hallo"}), "echo");
    let res = &ok.body.as_ref().unwrap()["result"];
    assert_eq!(res["structuredContent"]["text"], "hallo");
    assert_eq!(res["content"][0]["text"], "hallo");
    assert_eq!(res["isError"], false);
    let bad = call(json!({}), "echo");
    assert_eq!(
        bad.body.as_ref().unwrap()["result"]["isError"],
        true,
        "invalid arguments are a tool error"
    );
    let unknown = call(json!({}), "drop_tables");
    assert_eq!(error_code(&unknown), -32602);
    let not_obj = post(
        json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "echo", "arguments": "x"}}),
        &[],
    );
    assert_eq!(error_code(&not_obj), -32602);
}

#[test]
fn modern_requests_are_stateless_checked_and_annotated() {
    let headers = |method: &'static str, name: Option<&'static str>| {
        let mut h = vec![
            ("MCP-Protocol-Version", "2026-07-28"),
            ("Mcp-Method", method),
        ];
        if let Some(n) = name {
            h.push(("Mcp-Name", n));
        }
        h
    };
    let r = post(
        modern("tools/list", json!({})),
        &headers("tools/list", None),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    let res = &r.body.as_ref().unwrap()["result"];
    assert_eq!(res["resultType"], "complete");
    assert!(res["ttlMs"].as_u64().is_some());
    assert_eq!(res["cacheScope"], "private");
    assert_eq!(
        res["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
        "praat-met-je-boekhouding"
    );

    let r = post(
        modern("server/discover", json!({})),
        &headers("server/discover", None),
    );
    let res = &r.body.as_ref().unwrap()["result"];
    assert_eq!(res["supportedVersions"][0], "2026-07-28");
    assert!(res["instructions"].is_string());

    let call = modern(
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "x"}}),
    );
    assert_eq!(
        post(call.clone(), &headers("tools/call", Some("echo"))).status,
        200
    );
    let r = post(call.clone(), &headers("tools/call", Some("other")));
    assert_eq!((r.status, error_code(&r)), (400, -32020));
    let r = post(call.clone(), &headers("tools/list", Some("echo")));
    assert_eq!((r.status, error_code(&r)), (400, -32020));
    let r = post(call, &[]);
    assert_eq!(
        (r.status, error_code(&r)),
        (400, -32020),
        "missing mirrored headers"
    );

    let mut wrong = modern("tools/list", json!({}));
    wrong["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] = json!("2030-01-01");
    let r = post(
        wrong,
        &[
            ("MCP-Protocol-Version", "2030-01-01"),
            ("Mcp-Method", "tools/list"),
        ],
    );
    assert_eq!((r.status, error_code(&r)), (400, -32022));
    assert_eq!(
        r.body.as_ref().unwrap()["error"]["data"]["requested"],
        "2030-01-01"
    );
    assert!(
        r.body.as_ref().unwrap()["error"]["data"]["supported"]
            .as_array()
            .unwrap()
            .contains(&json!("2025-11-25"))
    );

    let mut no_caps = modern("tools/list", json!({}));
    no_caps["params"]["_meta"]
        .as_object_mut()
        .unwrap()
        .remove("io.modelcontextprotocol/clientCapabilities");
    let r = post(no_caps, &headers("tools/list", None));
    assert_eq!((r.status, error_code(&r)), (400, -32602));

    let r = post(modern("ping", json!({})), &headers("ping", None));
    assert_eq!(
        (r.status, error_code(&r)),
        (404, -32601),
        "ping is gone in 2026-07-28"
    );
}

/// What the official conformance suite's `server-stateless` and `caching`
/// scenarios (spec version 2026-07-28) probe: a request that names the
/// stateless revision in its header but carries no protocol version in
/// `_meta` is invalid params, a header that disagrees with `_meta` is a
/// header mismatch (checked before the version is judged), `initialize`
/// and the other removed methods are 404 + -32601, and every cacheable
/// result carries `ttlMs` and `cacheScope`.
#[test]
fn modern_era_errors_and_caching_hints_match_the_conformance_suite() {
    let headers = |version: &'static str, method: &'static str| {
        vec![("MCP-Protocol-Version", version), ("Mcp-Method", method)]
    };
    // A 2026-07-28 header with no `_meta`, or `_meta` without the version.
    for params in [
        json!({}),
        json!({"_meta": {
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "test", "version": "1"},
        }}),
    ] {
        for method in ["server/discover", "tools/list", "initialize"] {
            let r = post(
                json!({"jsonrpc": "2.0", "id": 101, "method": method, "params": params}),
                &headers("2026-07-28", method),
            );
            assert_eq!(
                (r.status, error_code(&r)),
                (400, -32602),
                "{method} {params}: {:?}",
                r.body
            );
            assert_eq!(r.body.as_ref().unwrap()["id"], 101, "the id is echoed");
        }
    }
    // The header says 2026-07-28, `_meta` another version: a mismatch.
    let mut other = modern("server/discover", json!({}));
    other["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] = json!("v999.0.0");
    let r = post(other.clone(), &headers("2026-07-28", "server/discover"));
    assert_eq!((r.status, error_code(&r)), (400, -32020), "{:?}", r.body);
    // Both name an unknown version: unsupported, with what we do support.
    let r = post(other, &headers("v999.0.0", "server/discover"));
    assert_eq!((r.status, error_code(&r)), (400, -32022), "{:?}", r.body);
    let data = &r.body.as_ref().unwrap()["error"]["data"];
    assert_eq!(data["requested"], "v999.0.0");
    let discover = post(
        modern("server/discover", json!({})),
        &headers("2026-07-28", "server/discover"),
    );
    let discovered = &discover.body.as_ref().unwrap()["result"];
    assert_eq!(data["supported"], discovered["supportedVersions"]);
    // `server/discover` is cacheable too.
    assert!(discovered["ttlMs"].as_u64().is_some(), "{discovered}");
    assert_eq!(discovered["cacheScope"], "private");

    // Methods the stateless revision removed, and unknown ones.
    for method in [
        "initialize",
        "ping",
        "logging/setLevel",
        "resources/subscribe",
        "resources/unsubscribe",
        "unknown/method",
    ] {
        let r = post(modern(method, json!({})), &headers("2026-07-28", method));
        assert_eq!(
            (r.status, error_code(&r)),
            (404, -32601),
            "{method}: {:?}",
            r.body
        );
        assert_eq!(r.body.as_ref().unwrap()["id"], 7);
    }

    // The legacy era is unchanged: `initialize` without `_meta` or header.
    let r = post(
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "c", "version": "1"}}}),
        &[],
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        r.body.as_ref().unwrap()["result"]["protocolVersion"],
        "2025-11-25"
    );
}
