//! JSON-RPC dispatch for both protocol eras: version negotiation, the
//! lifecycle methods, and `tools/list` / `tools/call` delegated to a
//! [`ToolHost`].

use serde_json::{Map, Value, json};

/// Legacy revisions served with the `initialize` handshake (statelessly).
pub const LEGACY_VERSIONS: [&str; 2] = ["2025-06-18", "2025-11-25"];
/// The stateless revision.
pub const MODERN_VERSION: &str = "2026-07-28";
/// Offered to an `initialize` naming a revision we do not speak.
pub const LATEST_LEGACY: &str = "2025-11-25";

const META_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
const META_CAPS: &str = "io.modelcontextprotocol/clientCapabilities";
const META_SERVER: &str = "io.modelcontextprotocol/serverInfo";

/// JSON-RPC and MCP error codes used here.
pub mod code {
    pub const PARSE_ERROR: i64 = -32700;
    pub const INVALID_REQUEST: i64 = -32600;
    pub const METHOD_NOT_FOUND: i64 = -32601;
    pub const INVALID_PARAMS: i64 = -32602;
    pub const INTERNAL_ERROR: i64 = -32603;
    pub const HEADER_MISMATCH: i64 = -32020;
    pub const UNSUPPORTED_VERSION: i64 = -32022;
}

/// Who the server is, and what it tells an assistant up front.
#[derive(Debug, Clone)]
pub struct ServerIdentity {
    pub name: String,
    pub title: String,
    pub version: String,
    pub instructions: String,
}

/// The result of running a tool.
#[derive(Debug, Clone, PartialEq)]
pub enum ToolCallOutcome {
    /// Structured result (matching the tool's `outputSchema`) and its text
    /// rendering.
    Ok { structured: Value, text: String },
    /// A tool execution error the assistant can act on (`isError: true`),
    /// including invalid arguments.
    ToolError(String),
    /// No tool of that name: a protocol error (-32602).
    UnknownTool,
}

/// What serves the tools. Single-threaded like the Workers runtime.
#[allow(async_fn_in_trait)]
pub trait ToolHost {
    /// Tool definitions (`name`, `description`, `inputSchema`, …) in a
    /// deterministic order.
    fn tools(&self) -> Vec<Value>;
    async fn call(&self, name: &str, arguments: Value) -> ToolCallOutcome;
}

/// A JSON-RPC error with the HTTP status it is answered with.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
    pub data: Option<Value>,
    pub http_status: u16,
}

impl RpcError {
    pub fn new(code: i64, message: impl Into<String>, http_status: u16) -> Self {
        RpcError {
            code,
            message: message.into(),
            data: None,
            http_status,
        }
    }
    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }
    pub fn to_json(&self, id: &Value) -> Value {
        let mut err = json!({"code": self.code, "message": self.message});
        if let Some(d) = &self.data {
            err["data"] = d.clone();
        }
        json!({"jsonrpc": "2.0", "id": id, "error": err})
    }
}

/// Which era a request belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Era {
    Legacy,
    Modern,
}

/// Headers the modern revision mirrors from the body.
#[derive(Debug, Clone, Default)]
pub struct MirroredHeaders {
    pub protocol_version: Option<String>,
    pub method: Option<String>,
    pub name: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Engine {
    pub identity: ServerIdentity,
}

fn capabilities() -> Value {
    json!({"tools": {"listChanged": false}})
}

impl Engine {
    pub fn new(identity: ServerIdentity) -> Self {
        Engine { identity }
    }

    fn server_info(&self) -> Value {
        json!({"name": self.identity.name, "title": self.identity.title, "version": self.identity.version})
    }

    /// Decides the era of a request and checks the modern rules.
    pub fn era(
        &self,
        method: &str,
        params: &Value,
        headers: &MirroredHeaders,
    ) -> Result<Era, RpcError> {
        let meta = params.get("_meta");
        let Some(requested) = meta.and_then(|m| m.get(META_VERSION)) else {
            return Ok(Era::Legacy);
        };
        if method == "initialize" {
            return Ok(Era::Legacy);
        }
        let requested = requested.as_str().unwrap_or_default();
        let mut supported: Vec<&str> = vec![MODERN_VERSION];
        supported.extend(LEGACY_VERSIONS);
        if requested != MODERN_VERSION {
            return Err(RpcError::new(
                code::UNSUPPORTED_VERSION,
                "Unsupported protocol version",
                400,
            )
            .with_data(json!({"supported": supported, "requested": requested})));
        }
        if meta.and_then(|m| m.get(META_CAPS)).is_none() {
            return Err(RpcError::new(
                code::INVALID_PARAMS,
                format!("_meta must carry {META_CAPS}"),
                400,
            ));
        }
        let mismatch = |what: &str| {
            RpcError::new(
                code::HEADER_MISMATCH,
                format!("Header mismatch: {what}"),
                400,
            )
        };
        if headers.protocol_version.as_deref() != Some(MODERN_VERSION) {
            return Err(mismatch(
                "MCP-Protocol-Version must equal the _meta protocol version",
            ));
        }
        if headers.method.as_deref() != Some(method) {
            return Err(mismatch("Mcp-Method must equal the request method"));
        }
        if matches!(method, "tools/call" | "resources/read" | "prompts/get") {
            let body_name = params
                .get("name")
                .or_else(|| params.get("uri"))
                .and_then(Value::as_str);
            if headers.name.as_deref() != body_name || body_name.is_none() {
                return Err(mismatch("Mcp-Name must equal params.name"));
            }
        }
        Ok(Era::Modern)
    }

    /// Answers one request. `Err` is a JSON-RPC error.
    pub async fn dispatch(
        &self,
        host: &impl ToolHost,
        method: &str,
        params: &Value,
        era: Era,
    ) -> Result<Value, RpcError> {
        let not_found = || {
            RpcError::new(
                code::METHOD_NOT_FOUND,
                format!("Method not found: {method}"),
                if era == Era::Modern { 404 } else { 200 },
            )
        };
        let mut result = match method {
            "initialize" => {
                let requested = params
                    .get("protocolVersion")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let version = if LEGACY_VERSIONS.contains(&requested) {
                    requested
                } else {
                    LATEST_LEGACY
                };
                json!({
                    "protocolVersion": version,
                    "capabilities": capabilities(),
                    "serverInfo": self.server_info(),
                    "instructions": self.identity.instructions,
                })
            }
            "ping" if era == Era::Legacy => json!({}),
            "server/discover" => {
                let mut versions = vec![MODERN_VERSION];
                versions.extend(LEGACY_VERSIONS);
                json!({
                    "supportedVersions": versions,
                    "capabilities": capabilities(),
                    "instructions": self.identity.instructions,
                    "serverInfo": self.server_info(),
                })
            }
            "tools/list" => {
                if let Some(c) = params.get("cursor").filter(|c| !c.is_null()) {
                    return Err(RpcError::new(
                        code::INVALID_PARAMS,
                        format!("Invalid cursor: {c}"),
                        200,
                    ));
                }
                json!({"tools": host.tools()})
            }
            "tools/call" => {
                let Some(name) = params.get("name").and_then(Value::as_str) else {
                    return Err(RpcError::new(
                        code::INVALID_PARAMS,
                        "tools/call needs params.name",
                        200,
                    ));
                };
                let args = params
                    .get("arguments")
                    .cloned()
                    .unwrap_or_else(|| json!({}));
                if !args.is_object() {
                    return Err(RpcError::new(
                        code::INVALID_PARAMS,
                        "arguments must be an object",
                        200,
                    ));
                }
                match host.call(name, args).await {
                    ToolCallOutcome::Ok { structured, text } => json!({
                        "content": [{"type": "text", "text": text}],
                        "structuredContent": structured,
                        "isError": false,
                    }),
                    ToolCallOutcome::ToolError(message) => json!({
                        "content": [{"type": "text", "text": message}],
                        "isError": true,
                    }),
                    ToolCallOutcome::UnknownTool => {
                        return Err(RpcError::new(
                            code::INVALID_PARAMS,
                            format!("Unknown tool: {name}"),
                            200,
                        ));
                    }
                }
            }
            _ => return Err(not_found()),
        };
        if era == Era::Modern
            && let Some(obj) = result.as_object_mut()
        {
            obj.insert("resultType".into(), json!("complete"));
            let mut meta = Map::new();
            meta.insert(META_SERVER.into(), self.server_info());
            obj.insert("_meta".into(), Value::Object(meta));
            if method.ends_with("/list") {
                obj.insert("ttlMs".into(), json!(60_000));
                obj.insert("cacheScope".into(), json!("private"));
            }
        }
        Ok(result)
    }
}
