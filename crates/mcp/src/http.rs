//! Streamable HTTP rules for `POST /mcp`, answered with JSON: methods,
//! `Origin`/`Host` validation, body size, `Content-Type` and `Accept`
//! checks, JSON-RPC framing errors, 202 for notifications and responses.

use serde_json::{Value, json};

use crate::engine::{Engine, MirroredHeaders, RpcError, ToolHost, code};

/// What arrived.
#[derive(Debug, Clone, Copy)]
pub struct HttpCall<'a> {
    pub method: &'a str,
    /// Header names in any case.
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

impl HttpCall<'_> {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What to answer.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Option<Value>,
}

impl HttpReply {
    fn json(status: u16, body: Value) -> Self {
        HttpReply {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: Some(body),
        }
    }

    fn rpc_error(err: &RpcError, id: &Value) -> Self {
        Self::json(err.http_status, err.to_json(id))
    }
}

/// Deployment-specific transport rules.
#[derive(Debug, Clone)]
pub struct TransportPolicy {
    pub max_body_bytes: usize,
    /// Origins browsers may call from; any other present `Origin` is 403.
    pub allowed_origins: Vec<String>,
    /// Accepted `Host` values (DNS-rebinding guard); empty accepts any.
    pub allowed_hosts: Vec<String>,
    /// A server on loopback (local development): loopback origins are
    /// allowed and only loopback `Host` values accepted, which is what
    /// protects a local server from DNS rebinding.
    pub loopback: bool,
}

impl Default for TransportPolicy {
    fn default() -> Self {
        TransportPolicy {
            max_body_bytes: 256 * 1024,
            allowed_origins: Vec::new(),
            allowed_hosts: Vec::new(),
            loopback: false,
        }
    }
}

/// `localhost`, `127.0.0.1` or `[::1]`, with an optional port.
fn is_loopback_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']')
            .next()
            .map(|h| format!("[{h}]"))
            .unwrap_or_default()
    } else {
        host.rsplit_once(':')
            .map_or(host, |(h, port)| {
                if port.bytes().all(|b| b.is_ascii_digit()) {
                    h
                } else {
                    host
                }
            })
            .to_owned()
    };
    matches!(
        name.to_ascii_lowercase().as_str(),
        "localhost" | "127.0.0.1" | "[::1]"
    )
}

fn is_loopback_origin(origin: &str) -> bool {
    origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .is_some_and(is_loopback_host)
}

fn unreadable(code: i64, message: &str, status: u16) -> HttpReply {
    HttpReply::rpc_error(&RpcError::new(code, message, status), &Value::Null)
}

fn valid_id(id: &Value) -> bool {
    id.is_string() || id.as_i64().is_some() || id.as_u64().is_some()
}

/// The 413 answer for a body over `limit` bytes; the Worker sends it too
/// when it stops reading a body at the limit.
pub fn body_too_large(limit: usize) -> HttpReply {
    unreadable(
        code::INVALID_REQUEST,
        &format!("Request body too large (limit {limit} bytes)"),
        413,
    )
}

/// The session id for a legacy client that negotiated MCP Apps: the
/// marker the engine reads back, and a SHA-256 of the `initialize` body,
/// so ids differ between clients without the server keeping anything.
fn ui_session_id(body: &[u8]) -> String {
    format!(
        "{}{}",
        crate::apps::UI_SESSION_PREFIX,
        boekhouding_core::crypto::hash_credential(&String::from_utf8_lossy(body))
    )
}

/// Handles one HTTP exchange on the MCP endpoint.
pub async fn handle(
    engine: &Engine,
    host: &impl ToolHost,
    call: HttpCall<'_>,
    policy: &TransportPolicy,
) -> HttpReply {
    if call.method != "POST" {
        let mut r = unreadable(
            code::INVALID_REQUEST,
            "Method not allowed: this server offers no SSE stream; use POST",
            405,
        );
        r.headers.push(("Allow".into(), "POST".into()));
        return r;
    }
    if let Some(origin) = call.header("origin")
        && !policy.allowed_origins.iter().any(|o| o == origin)
        && !(policy.loopback && is_loopback_origin(origin))
    {
        return unreadable(-32000, "Origin not allowed", 403);
    }
    if policy.loopback && !call.header("host").is_some_and(is_loopback_host) {
        return unreadable(-32000, "Host not allowed", 403);
    }
    if !policy.allowed_hosts.is_empty() {
        let host_ok = call.header("host").is_some_and(|h| {
            policy
                .allowed_hosts
                .iter()
                .any(|a| a.eq_ignore_ascii_case(h))
        });
        if !host_ok {
            return unreadable(-32000, "Host not allowed", 403);
        }
    }
    if call.body.len() > policy.max_body_bytes {
        return body_too_large(policy.max_body_bytes);
    }
    let json_body = call.header("content-type").is_some_and(|c| {
        c.split(';')
            .next()
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
    });
    if !json_body {
        return unreadable(
            code::INVALID_REQUEST,
            "Content-Type must be application/json",
            415,
        );
    }
    let accept = call.header("accept").unwrap_or("").to_ascii_lowercase();
    if !(accept.contains("application/json") && accept.contains("text/event-stream")) {
        return unreadable(
            -32000,
            "Not Acceptable: Accept must list application/json and text/event-stream",
            406,
        );
    }
    let Ok(message) = serde_json::from_slice::<Value>(call.body) else {
        return unreadable(code::PARSE_ERROR, "Parse error: the body is not JSON", 400);
    };
    if message.is_array() {
        return unreadable(
            code::INVALID_REQUEST,
            "Batches are not supported by this protocol revision",
            400,
        );
    }
    let Some(obj) = message.as_object() else {
        return unreadable(
            code::INVALID_REQUEST,
            "Invalid Request: expected a JSON-RPC object",
            400,
        );
    };
    if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return unreadable(
            code::INVALID_REQUEST,
            "Invalid Request: jsonrpc must be \"2.0\"",
            400,
        );
    }
    let id = obj.get("id").cloned();
    let Some(method) = obj.get("method").and_then(Value::as_str) else {
        // A response from the client (legacy) is accepted and ignored.
        if id.as_ref().is_some_and(valid_id)
            && (obj.contains_key("result") || obj.contains_key("error"))
        {
            return HttpReply {
                status: 202,
                headers: Vec::new(),
                body: None,
            };
        }
        return unreadable(code::INVALID_REQUEST, "Invalid Request: no method", 400);
    };
    let params = obj.get("params").cloned().unwrap_or_else(|| json!({}));
    if !params.is_object() {
        let reply_id = id.clone().filter(valid_id).unwrap_or(Value::Null);
        return HttpReply::rpc_error(
            &RpcError::new(code::INVALID_PARAMS, "params must be an object", 400),
            &reply_id,
        );
    }
    let mirrored = MirroredHeaders {
        protocol_version: call.header("mcp-protocol-version").map(str::to_owned),
        method: call.header("mcp-method").map(str::to_owned),
        name: call.header("mcp-name").map(str::to_owned),
    };
    let era = engine.era(method, &params, &mirrored);
    let Some(id) = id else {
        // A notification: accepted unless its era checks fail.
        return match era {
            Ok(_) => HttpReply {
                status: 202,
                headers: Vec::new(),
                body: None,
            },
            Err(e) => HttpReply::rpc_error(&e, &Value::Null),
        };
    };
    if !valid_id(&id) {
        return unreadable(
            code::INVALID_REQUEST,
            "Invalid Request: id must be a string or an integer",
            400,
        );
    }
    let era = match era {
        Ok(e) => e,
        Err(e) => return HttpReply::rpc_error(&e, &id),
    };
    // Legacy clients send the negotiated version after initialize; an
    // unknown one is refused.
    if era == crate::engine::Era::Legacy
        && method != "initialize"
        && let Some(v) = call.header("mcp-protocol-version")
        && !crate::engine::LEGACY_VERSIONS.contains(&v)
        && v != "2025-03-26"
    {
        return HttpReply::rpc_error(
            &RpcError::new(
                code::INVALID_REQUEST,
                format!("Unsupported MCP-Protocol-Version: {v}"),
                400,
            ),
            &id,
        );
    }
    let negotiated = engine.negotiated(method, &params, era, call.header("mcp-session-id"));
    match engine
        .dispatch_negotiated(host, method, &params, era, negotiated)
        .await
    {
        Ok(result) => {
            let mut reply =
                HttpReply::json(200, json!({"jsonrpc": "2.0", "id": id, "result": result}));
            // A legacy client that negotiated MCP Apps gets a session id
            // that says so, since its later requests carry no capabilities
            // (the server keeps no session state).
            if era == crate::engine::Era::Legacy && method == "initialize" && negotiated.ui {
                reply
                    .headers
                    .push(("Mcp-Session-Id".into(), ui_session_id(call.body)));
            }
            reply
        }
        Err(e) => HttpReply::rpc_error(&e, &id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_and_origins() {
        for ok in [
            "localhost",
            "localhost:8787",
            "127.0.0.1",
            "127.0.0.1:1",
            "[::1]",
            "[::1]:8787",
            "LOCALHOST:1",
        ] {
            assert!(is_loopback_host(ok), "{ok}");
        }
        for bad in [
            "evil.example.com",
            "127.0.0.1.evil.com",
            "localhost.evil",
            "[::2]:80",
            "10.0.0.1",
            "",
        ] {
            assert!(!is_loopback_host(bad), "{bad}");
        }
        assert!(is_loopback_origin("http://127.0.0.1:18800"));
        assert!(!is_loopback_origin("http://evil.example.com"));
        assert!(!is_loopback_origin("http://localhost.evil.example.com"));
    }
}
