//! The MCP Apps extension (`io.modelcontextprotocol/ui`, SEP-1865, stable
//! 2026-01-26): whether a request's client negotiated it, and what a
//! negotiated client sees in addition: tools naming their view in
//! `_meta.ui.resourceUri`, app-only helper tools, and the views as
//! `ui://` resources of type `text/html;profile=mcp-app`. A client that
//! did not negotiate the extension sees none of it.

use serde_json::{Value, json};

/// The extension's identifier in `capabilities.extensions`.
pub const UI_EXTENSION: &str = "io.modelcontextprotocol/ui";
/// The one content type of a view.
pub const UI_MIME: &str = "text/html;profile=mcp-app";
/// How long a host may cache a view's HTML: views change only with a
/// deployment, and the same HTML serves every caller.
pub const VIEW_TTL_MS: u64 = 3_600_000;

/// The `Mcp-Session-Id` the server hands a legacy client that negotiated
/// the extension in `initialize` starts with this. The legacy era is
/// served statelessly, so the session id itself carries what was
/// negotiated: the client sends it back on every request, and the server
/// reads the extension from it. It grants nothing (every request is still
/// authenticated by its bearer credential), so a client that forges it
/// only gets views it could have negotiated anyway.
pub const UI_SESSION_PREFIX: &str = "mcp-apps.v1.";

/// What a request's client negotiated beyond the base protocol.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Negotiated {
    /// The client renders MCP Apps views (`text/html;profile=mcp-app`).
    pub ui: bool,
}

/// Whether client capabilities (`initialize`'s `capabilities`, or the
/// stateless revision's `_meta` client capabilities) declare the extension
/// with the HTML content type among its `mimeTypes`, as the specification
/// requires of a client that can render views.
pub fn declares_ui(capabilities: Option<&Value>) -> bool {
    capabilities
        .and_then(|c| c.get("extensions"))
        .and_then(|e| e.get(UI_EXTENSION))
        .and_then(|u| u.get("mimeTypes"))
        .and_then(Value::as_array)
        .is_some_and(|types| types.iter().any(|t| t.as_str() == Some(UI_MIME)))
}

/// What the server declares in its own capabilities to a client that
/// negotiated the extension.
pub fn server_extension() -> Value {
    json!({UI_EXTENSION: {"mimeTypes": [UI_MIME]}})
}

/// One view: an HTML document rendering the results of some tools.
#[derive(Debug, Clone)]
pub struct AppView {
    /// `ui://…`
    pub uri: &'static str,
    pub name: &'static str,
    pub title: &'static str,
    pub description: &'static str,
    /// The whole self-contained document (scripts and styles inline).
    pub html: &'static str,
    /// The tools whose results this view renders.
    pub tools: &'static [&'static str],
}

/// The `_meta.ui` of a view's resource: it reaches no origin at all (every
/// CSP list empty, the specification's restrictive default) and asks for a
/// border.
fn resource_meta() -> Value {
    json!({"ui": {
        "csp": {"connectDomains": [], "resourceDomains": [], "frameDomains": [], "baseUriDomains": []},
        "prefersBorder": true,
    }})
}

impl AppView {
    /// The view as `resources/list` shows it.
    pub fn listing(&self) -> Value {
        json!({
            "uri": self.uri,
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "mimeType": UI_MIME,
            "size": self.html.len(),
            "_meta": resource_meta(),
        })
    }

    /// The view as `resources/read` returns it.
    pub fn contents(&self) -> Vec<Value> {
        vec![json!({
            "uri": self.uri,
            "mimeType": UI_MIME,
            "text": self.html,
            "_meta": resource_meta(),
        })]
    }
}

/// Adds `_meta.ui.resourceUri` to every tool a view renders.
pub fn link_tools(tools: &mut [Value], views: &[AppView]) {
    for tool in tools.iter_mut() {
        let Some(name) = tool.get("name").and_then(Value::as_str) else {
            continue;
        };
        let Some(view) = views.iter().find(|v| v.tools.contains(&name)) else {
            continue;
        };
        if let Some(obj) = tool.as_object_mut() {
            let meta = obj.entry("_meta").or_insert_with(|| json!({}));
            meta["ui"] = json!({"resourceUri": view.uri});
        }
    }
}

/// Marks a helper tool as callable by views only (`visibility: ["app"]`):
/// hosts keep it out of the model's tool list.
pub fn app_only(mut tool: Value, view_uri: &str) -> Value {
    tool["_meta"] = json!({"ui": {"resourceUri": view_uri, "visibility": ["app"]}});
    tool
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_declared_html_mime_type_counts_as_the_extension() {
        let caps =
            |ext: Value| json!({"extensions": {UI_EXTENSION: ext}, "roots": {"listChanged": true}});
        assert!(declares_ui(Some(&caps(json!({"mimeTypes": [UI_MIME]})))));
        assert!(declares_ui(Some(&caps(
            json!({"mimeTypes": ["text/uri-list", UI_MIME]})
        ))));
        assert!(!declares_ui(Some(&caps(json!({})))));
        assert!(!declares_ui(Some(&caps(
            json!({"mimeTypes": ["text/html"]})
        ))));
        assert!(!declares_ui(Some(&caps(json!({"mimeTypes": UI_MIME})))));
        assert!(!declares_ui(Some(
            &json!({"experimental": {UI_EXTENSION: {"mimeTypes": [UI_MIME]}}})
        )));
        assert!(!declares_ui(Some(&json!({}))));
        assert!(!declares_ui(None));
    }
}
