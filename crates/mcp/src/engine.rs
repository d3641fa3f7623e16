//! JSON-RPC dispatch for both protocol eras: version negotiation, the
//! lifecycle methods, and tools, prompts, resources and completions
//! delegated to a [`ToolHost`].

use serde_json::{Map, Value, json};

use crate::apps::{self, AppView, Negotiated};

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
    pub const RESOURCE_NOT_FOUND: i64 = -32002;
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

/// Why a prompt, resource or completion request was not answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostError {
    /// Unknown prompt, missing or invalid argument (-32602).
    InvalidParams(String),
    /// No resource at that URI (-32002).
    ResourceNotFound(String),
    /// Our own failure (database); the message never reaches the client.
    Unavailable,
}

impl HostError {
    fn into_rpc(self) -> RpcError {
        match self {
            HostError::InvalidParams(m) => RpcError::new(code::INVALID_PARAMS, m, 200),
            HostError::ResourceNotFound(uri) => {
                RpcError::new(code::RESOURCE_NOT_FOUND, "Resource not found", 200)
                    .with_data(json!({"uri": uri}))
            }
            HostError::Unavailable => RpcError::new(
                code::INTERNAL_ERROR,
                "The service is temporarily unavailable; try again shortly.",
                200,
            ),
        }
    }
}

/// What serves the tools, prompts and resources. Single-threaded like the
/// Workers runtime. Prompts, resources and completions default to none.
#[allow(async_fn_in_trait)]
pub trait ToolHost {
    /// Tool definitions (`name`, `description`, `inputSchema`, …) in a
    /// deterministic order.
    fn tools(&self) -> Vec<Value>;
    async fn call(&self, name: &str, arguments: Value) -> ToolCallOutcome;

    /// Prompt definitions (`name`, `title`, `description`, `arguments`).
    fn prompts(&self) -> Vec<Value> {
        Vec::new()
    }
    /// A prompt's `{description, messages}` for string arguments.
    async fn get_prompt(
        &self,
        name: &str,
        _arguments: &Map<String, Value>,
    ) -> Result<Value, HostError> {
        Err(HostError::InvalidParams(format!("Unknown prompt: {name}")))
    }
    /// Concrete resources (`uri`, `name`, `title`, `description`, `mimeType`).
    fn resources(&self) -> Vec<Value> {
        Vec::new()
    }
    /// Resource templates (`uriTemplate`, `name`, …).
    fn resource_templates(&self) -> Vec<Value> {
        Vec::new()
    }
    /// The `contents` of a resource.
    async fn read_resource(&self, uri: &str) -> Result<Vec<Value>, HostError> {
        Err(HostError::ResourceNotFound(uri.to_owned()))
    }
    /// Completion values for an argument of a prompt (`ref/prompt`) or a
    /// resource template (`ref/resource`), given what is typed so far and
    /// the arguments already chosen.
    async fn complete(
        &self,
        _reference: &Value,
        _argument: &str,
        _typed: &str,
        _context: &Map<String, Value>,
    ) -> Result<Vec<String>, HostError> {
        Ok(Vec::new())
    }

    /// MCP Apps views (shown only to clients that negotiated the
    /// extension), with the tools each renders.
    fn app_views(&self) -> Vec<AppView> {
        Vec::new()
    }
    /// Helper tools only views call (`_meta.ui.visibility: ["app"]`);
    /// listed and callable only for clients that negotiated the extension.
    fn app_tools(&self) -> Vec<Value> {
        Vec::new()
    }
    /// Runs one of [`ToolHost::app_tools`].
    async fn call_app_tool(&self, _name: &str, _arguments: Value) -> ToolCallOutcome {
        ToolCallOutcome::UnknownTool
    }
}

/// Completion answers carry at most this many values.
const MAX_COMPLETIONS: usize = 100;

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

fn capabilities(negotiated: Negotiated) -> Value {
    let mut caps = json!({
        "tools": {"listChanged": false},
        "prompts": {"listChanged": false},
        "resources": {"listChanged": false, "subscribe": false},
        "completions": {},
    });
    // Declared only to a client that declared it too, so every other
    // client's answer stays as it was.
    if negotiated.ui {
        caps["extensions"] = apps::server_extension();
    }
    caps
}

/// Every revision we speak, the stateless one first: `server/discover`
/// lists them, and an unsupported-version error names the same.
fn supported_versions() -> Vec<&'static str> {
    let mut versions = vec![MODERN_VERSION];
    versions.extend(LEGACY_VERSIONS);
    versions
}

/// How long a stateless result may be cached (`ttlMs`), for the methods
/// whose results the 2026-07-28 revision requires caching hints on.
/// Catalogues (lists, discovery) change only with a deployment; a
/// resource shows live connection health, so it is stale at once.
fn cache_ttl_ms(method: &str) -> Option<u64> {
    match method {
        "server/discover"
        | "tools/list"
        | "prompts/list"
        | "resources/list"
        | "resources/templates/list" => Some(60_000),
        "resources/read" => Some(0),
        _ => None,
    }
}

/// A list method's `cursor`: we never page, so any cursor is invalid.
fn no_cursor(params: &Value) -> Result<(), RpcError> {
    match params.get("cursor").filter(|c| !c.is_null()) {
        Some(c) => Err(RpcError::new(
            code::INVALID_PARAMS,
            format!("Invalid cursor: {c}"),
            200,
        )),
        None => Ok(()),
    }
}

impl Engine {
    pub fn new(identity: ServerIdentity) -> Self {
        Engine { identity }
    }

    fn server_info(&self) -> Value {
        json!({"name": self.identity.name, "title": self.identity.title, "version": self.identity.version})
    }

    /// Decides the era of a request and checks the modern rules.
    ///
    /// A request is modern when its `_meta` names a protocol version, or
    /// when its `MCP-Protocol-Version` header names the stateless revision
    /// (then a missing `_meta` version is invalid params, not an unknown
    /// legacy version). `initialize` is no exception: in the stateless
    /// revision it is a removed method, answered 404 by [`Engine::dispatch`].
    /// The header is compared with `_meta` before the version is judged,
    /// so a header that disagrees with the body is a header mismatch even
    /// when the body names a version we do not speak.
    pub fn era(
        &self,
        method: &str,
        params: &Value,
        headers: &MirroredHeaders,
    ) -> Result<Era, RpcError> {
        let meta = params.get("_meta");
        let header_version = headers.protocol_version.as_deref();
        let Some(requested) = meta.and_then(|m| m.get(META_VERSION)) else {
            if header_version == Some(MODERN_VERSION) {
                return Err(RpcError::new(
                    code::INVALID_PARAMS,
                    format!("Invalid params: _meta must carry {META_VERSION}"),
                    400,
                ));
            }
            return Ok(Era::Legacy);
        };
        let mismatch = |what: &str| {
            RpcError::new(
                code::HEADER_MISMATCH,
                format!("Header mismatch: {what}"),
                400,
            )
        };
        let requested = requested.as_str().unwrap_or_default();
        if header_version != Some(requested) {
            return Err(mismatch(
                "MCP-Protocol-Version must equal the _meta protocol version",
            ));
        }
        if requested != MODERN_VERSION {
            return Err(RpcError::new(
                code::UNSUPPORTED_VERSION,
                "Unsupported protocol version",
                400,
            )
            .with_data(json!({"supported": supported_versions(), "requested": requested})));
        }
        if meta.and_then(|m| m.get(META_CAPS)).is_none() {
            return Err(RpcError::new(
                code::INVALID_PARAMS,
                format!("Invalid params: _meta must carry {META_CAPS}"),
                400,
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

    /// What the client of this request negotiated. The stateless revision
    /// carries the client's capabilities in every request's `_meta`; a
    /// legacy client declares them in `initialize` only, so its later
    /// requests are known by the session id that answer handed out
    /// ([`apps::UI_SESSION_PREFIX`]).
    pub fn negotiated(
        &self,
        method: &str,
        params: &Value,
        era: Era,
        session_id: Option<&str>,
    ) -> Negotiated {
        let ui = match era {
            Era::Modern => apps::declares_ui(params.get("_meta").and_then(|m| m.get(META_CAPS))),
            Era::Legacy if method == "initialize" => apps::declares_ui(params.get("capabilities")),
            Era::Legacy => session_id.is_some_and(|s| s.starts_with(apps::UI_SESSION_PREFIX)),
        };
        Negotiated { ui }
    }

    /// Answers one request of a client that negotiated no extension.
    /// `Err` is a JSON-RPC error.
    pub async fn dispatch(
        &self,
        host: &impl ToolHost,
        method: &str,
        params: &Value,
        era: Era,
    ) -> Result<Value, RpcError> {
        self.dispatch_negotiated(host, method, params, era, Negotiated::default())
            .await
    }

    /// Answers one request with what its client negotiated.
    pub async fn dispatch_negotiated(
        &self,
        host: &impl ToolHost,
        method: &str,
        params: &Value,
        era: Era,
        negotiated: Negotiated,
    ) -> Result<Value, RpcError> {
        let views = if negotiated.ui {
            host.app_views()
        } else {
            Vec::new()
        };
        let mut ui_uri = None;
        let not_found = || {
            RpcError::new(
                code::METHOD_NOT_FOUND,
                format!("Method not found: {method}"),
                if era == Era::Modern { 404 } else { 200 },
            )
        };
        let mut result = match method {
            "initialize" if era == Era::Legacy => {
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
                    "capabilities": capabilities(negotiated),
                    "serverInfo": self.server_info(),
                    "instructions": self.identity.instructions,
                })
            }
            "ping" if era == Era::Legacy => json!({}),
            "server/discover" => {
                json!({
                    "supportedVersions": supported_versions(),
                    "capabilities": capabilities(negotiated),
                    "instructions": self.identity.instructions,
                    "serverInfo": self.server_info(),
                })
            }
            "tools/list" => {
                no_cursor(params)?;
                let mut tools = host.tools();
                if negotiated.ui {
                    apps::link_tools(&mut tools, &views);
                    tools.extend(host.app_tools());
                }
                json!({"tools": tools})
            }
            "prompts/list" => {
                no_cursor(params)?;
                json!({"prompts": host.prompts()})
            }
            "prompts/get" => {
                let Some(name) = params.get("name").and_then(Value::as_str) else {
                    return Err(RpcError::new(
                        code::INVALID_PARAMS,
                        "prompts/get needs params.name",
                        200,
                    ));
                };
                let empty = Map::new();
                let args = match params.get("arguments") {
                    None | Some(Value::Null) => &empty,
                    Some(Value::Object(m)) if m.values().all(Value::is_string) => m,
                    Some(_) => {
                        return Err(RpcError::new(
                            code::INVALID_PARAMS,
                            "prompt arguments must be an object of strings",
                            200,
                        ));
                    }
                };
                host.get_prompt(name, args)
                    .await
                    .map_err(HostError::into_rpc)?
            }
            "resources/list" => {
                no_cursor(params)?;
                let mut resources = host.resources();
                resources.extend(views.iter().map(AppView::listing));
                json!({"resources": resources})
            }
            "resources/templates/list" => {
                no_cursor(params)?;
                json!({"resourceTemplates": host.resource_templates()})
            }
            "resources/read" => {
                let Some(uri) = params.get("uri").and_then(Value::as_str) else {
                    return Err(RpcError::new(
                        code::INVALID_PARAMS,
                        "resources/read needs params.uri",
                        200,
                    ));
                };
                let contents = match views.iter().find(|v| v.uri == uri) {
                    Some(view) => {
                        ui_uri = Some(view.uri);
                        view.contents()
                    }
                    None => host.read_resource(uri).await.map_err(HostError::into_rpc)?,
                };
                json!({"contents": contents})
            }
            "completion/complete" => {
                let reference = params.get("ref").cloned().unwrap_or(Value::Null);
                let kind = reference.get("type").and_then(Value::as_str);
                if !matches!(kind, Some("ref/prompt" | "ref/resource")) {
                    return Err(RpcError::new(
                        code::INVALID_PARAMS,
                        "completion/complete needs ref of type ref/prompt or ref/resource",
                        200,
                    ));
                }
                let Some(argument) = params
                    .get("argument")
                    .and_then(|a| a.get("name"))
                    .and_then(Value::as_str)
                else {
                    return Err(RpcError::new(
                        code::INVALID_PARAMS,
                        "completion/complete needs argument.name",
                        200,
                    ));
                };
                let typed = params
                    .get("argument")
                    .and_then(|a| a.get("value"))
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let empty = Map::new();
                let context = params
                    .get("context")
                    .and_then(|c| c.get("arguments"))
                    .and_then(Value::as_object)
                    .unwrap_or(&empty);
                let mut values = host
                    .complete(&reference, argument, typed, context)
                    .await
                    .map_err(HostError::into_rpc)?;
                let total = values.len();
                values.truncate(MAX_COMPLETIONS);
                json!({"completion": {"values": values, "total": total, "hasMore": total > MAX_COMPLETIONS}})
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
                let app_tool = negotiated.ui
                    && host
                        .app_tools()
                        .iter()
                        .any(|t| t.get("name").and_then(Value::as_str) == Some(name));
                let outcome = if app_tool {
                    host.call_app_tool(name, args).await
                } else {
                    host.call(name, args).await
                };
                match outcome {
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
            if ui_uri.is_some() {
                // A view is the same document for every caller and changes
                // only with a deployment.
                obj.insert("ttlMs".into(), json!(apps::VIEW_TTL_MS));
                obj.insert("cacheScope".into(), json!("public"));
            } else if let Some(ttl_ms) = cache_ttl_ms(method) {
                obj.insert("ttlMs".into(), json!(ttl_ms));
                // Lists may vary with the caller's plan and resources show
                // the caller's own books: never shared across callers.
                obj.insert("cacheScope".into(), json!("private"));
            }
        }
        Ok(result)
    }
}
