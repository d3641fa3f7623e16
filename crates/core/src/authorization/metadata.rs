//! Discovery: the canonical issuer and MCP resource, the RFC 8414
//! authorization server metadata (also served as OpenID discovery), the
//! RFC 9728 protected resource metadata and the `WWW-Authenticate`
//! challenge of the resource server.

use serde_json::{Value, json};

use super::SCOPES_SUPPORTED;

/// Why a configured issuer or resource URL is unusable (a deployment
/// mistake, caught at start-up).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataConfigError {
    #[error("not an absolute URL")]
    NotAUrl,
    #[error("must be https (http only for localhost in development)")]
    NotHttps,
    #[error("must not carry a query, fragment or credentials")]
    Extra,
    #[error("the MCP resource needs a path (like /mcp)")]
    NoPath,
}

fn parse_base(raw: &str) -> Result<url::Url, MetadataConfigError> {
    let url = url::Url::parse(raw).map_err(|_| MetadataConfigError::NotAUrl)?;
    let local = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    match url.scheme() {
        "https" => {}
        "http" if local => {}
        _ => return Err(MetadataConfigError::NotHttps),
    }
    if url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return Err(MetadataConfigError::Extra);
    }
    Ok(url)
}

/// The authorization server's issuer identifier: one canonical string, no
/// trailing slash. Strict clients compare it exactly (python-sdk#1919),
/// so the very same string appears in the AS metadata, in the resource
/// metadata's `authorization_servers` and in every `iss` parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issuer(String);

impl Issuer {
    /// From configuration (`https://portal.example`, with or without a
    /// trailing slash or a path).
    pub fn parse(raw: &str) -> Result<Self, MetadataConfigError> {
        let url = parse_base(raw.trim())?;
        Ok(Issuer(url.as_str().trim_end_matches('/').to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// An endpoint of this server (`path` starts with `/`).
    pub fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.0)
    }

    /// Where RFC 8414 metadata lives: the well-known segment goes between
    /// the host and the issuer's path (§3.1), which for a path-less issuer
    /// is plain `/.well-known/oauth-authorization-server`.
    pub fn metadata_url(&self) -> String {
        well_known(&self.0, "oauth-authorization-server")
    }
}

/// The MCP endpoint as an RFC 8707 resource and RFC 9728 protected
/// resource: `https://mcp.example/mcp`, with its path and no trailing
/// slash. A path keeps clients from sending `https://host/` for a
/// path-less resource (vercel/ai#13988).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpResource(String);

impl McpResource {
    pub fn parse(raw: &str) -> Result<Self, MetadataConfigError> {
        let url = parse_base(raw.trim())?;
        let text = url.as_str().trim_end_matches('/').to_owned();
        if url.path().trim_matches('/').is_empty() {
            return Err(MetadataConfigError::NoPath);
        }
        Ok(McpResource(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether a client's `resource` parameter names this resource:
    /// exactly, or with one trailing slash (clients add one).
    pub fn matches(&self, candidate: &str) -> bool {
        candidate == self.0 || candidate.strip_suffix('/') == Some(self.0.as_str())
    }

    /// The path-aware RFC 9728 metadata URL
    /// (`https://mcp.example/.well-known/oauth-protected-resource/mcp`),
    /// the one the challenge names. The mcp-server also serves the same
    /// document at the root well-known path for clients that look there.
    pub fn metadata_url(&self) -> String {
        well_known(&self.0, "oauth-protected-resource")
    }
}

/// `https://host/.well-known/{name}{path}` for a URL `https://host{path}`.
fn well_known(base: &str, name: &str) -> String {
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[after_scheme..]
        .find('/')
        .map_or(base.len(), |i| after_scheme + i);
    let (origin, path) = base.split_at(path_start);
    format!("{origin}/.well-known/{name}{}", path.trim_end_matches('/'))
}

/// The paths of the authorization server's endpoints, relative to the
/// issuer. The auth-portal routes these (and the MCP origin may route
/// them too: claude.ai once guessed `/authorize` on the MCP origin).
pub mod paths {
    pub const AUTHORIZE: &str = "/oauth/authorize";
    pub const TOKEN: &str = "/oauth/token";
    pub const REGISTER: &str = "/oauth/register";
    pub const REVOKE: &str = "/oauth/revoke";
}

/// RFC 8414 metadata; serve the same JSON at
/// `/.well-known/openid-configuration` for clients that only look there
/// (MCP clients read it as OAuth metadata; no ID tokens are issued, so no
/// OpenID-only fields). No `jwks_uri`: tokens are opaque.
pub fn authorization_server_metadata(issuer: &Issuer) -> Value {
    json!({
        "issuer": issuer.as_str(),
        "authorization_endpoint": issuer.endpoint(paths::AUTHORIZE),
        "token_endpoint": issuer.endpoint(paths::TOKEN),
        "registration_endpoint": issuer.endpoint(paths::REGISTER),
        "revocation_endpoint": issuer.endpoint(paths::REVOKE),
        "scopes_supported": SCOPES_SUPPORTED,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_methods_supported": ["none"],
        "revocation_endpoint_auth_methods_supported": ["none"],
        "code_challenge_methods_supported": ["S256"],
        "client_id_metadata_document_supported": true,
        "authorization_response_iss_parameter_supported": true,
    })
}

/// RFC 9728 protected resource metadata of the MCP endpoint. No
/// `offline_access` in `scopes_supported` (2026-07-28 revision).
pub fn protected_resource_metadata(resource: &McpResource, issuer: &Issuer) -> Value {
    json!({
        "resource": resource.as_str(),
        "authorization_servers": [issuer.as_str()],
        "scopes_supported": SCOPES_SUPPORTED,
        "bearer_methods_supported": ["header"],
        "resource_name": "Praat met je Boekhouding",
    })
}

/// Why the resource server refuses a request, for its challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Challenge<'a> {
    /// No credential: 401 naming the metadata and the scope.
    Missing,
    /// Unknown, expired, revoked or for another resource: 401.
    InvalidToken,
    /// A valid token without the scope needed: 403.
    InsufficientScope(&'a str),
}

impl Challenge<'_> {
    pub fn http_status(&self) -> u16 {
        match self {
            Challenge::InsufficientScope(_) => 403,
            _ => 401,
        }
    }
}

/// The `WWW-Authenticate` value: `Bearer resource_metadata="…",
/// scope="…"`, plus `error=` for a refused token (RFC 6750 §3). The scope
/// is named so that clients do not ask for everything advertised.
pub fn www_authenticate(resource: &McpResource, challenge: Challenge<'_>) -> String {
    let base = format!("Bearer resource_metadata=\"{}\"", resource.metadata_url());
    match challenge {
        Challenge::Missing => format!("{base}, scope=\"{}\"", SCOPES_SUPPORTED.join(" ")),
        Challenge::InvalidToken => format!(
            "{base}, scope=\"{}\", error=\"invalid_token\", error_description=\"The access token is expired, revoked or not for this resource\"",
            SCOPES_SUPPORTED.join(" ")
        ),
        Challenge::InsufficientScope(needed) => format!(
            "{base}, scope=\"{needed}\", error=\"insufficient_scope\", error_description=\"The access token lacks the scope this request needs\""
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issuer() -> Issuer {
        Issuer::parse("https://portal.example/").unwrap()
    }

    fn resource() -> McpResource {
        McpResource::parse("https://mcp.example/mcp").unwrap()
    }

    #[test]
    fn the_issuer_is_canonical_without_a_trailing_slash() {
        assert_eq!(issuer().as_str(), "https://portal.example");
        assert_eq!(
            Issuer::parse("https://portal.example").unwrap(),
            issuer(),
            "one string either way"
        );
        assert_eq!(
            issuer().metadata_url(),
            "https://portal.example/.well-known/oauth-authorization-server"
        );
        let pathed = Issuer::parse("https://x.example/auth/").unwrap();
        assert_eq!(pathed.as_str(), "https://x.example/auth");
        assert_eq!(
            pathed.metadata_url(),
            "https://x.example/.well-known/oauth-authorization-server/auth"
        );
        assert!(Issuer::parse("http://portal.example").is_err());
        assert!(Issuer::parse("http://localhost:8788").is_ok());
        assert!(Issuer::parse("https://portal.example/?x=1").is_err());
        assert!(Issuer::parse("portal.example").is_err());
    }

    #[test]
    fn the_resource_has_a_path_and_tolerates_a_trailing_slash() {
        let r = resource();
        assert!(r.matches("https://mcp.example/mcp"));
        assert!(r.matches("https://mcp.example/mcp/"));
        assert!(!r.matches("https://mcp.example/"));
        assert!(!r.matches("https://mcp.example/mcp//"));
        assert!(!r.matches("https://other.example/mcp"));
        assert_eq!(
            r.metadata_url(),
            "https://mcp.example/.well-known/oauth-protected-resource/mcp"
        );
        assert_eq!(
            McpResource::parse("https://mcp.example"),
            Err(MetadataConfigError::NoPath)
        );
    }

    #[test]
    fn the_metadata_documents_say_what_clients_check() {
        let asm = authorization_server_metadata(&issuer());
        let prm = protected_resource_metadata(&resource(), &issuer());
        // The issuer string is identical in both documents.
        assert_eq!(asm["issuer"], prm["authorization_servers"][0]);
        assert_eq!(asm["code_challenge_methods_supported"], json!(["S256"]));
        assert_eq!(asm["client_id_metadata_document_supported"], json!(true));
        assert_eq!(
            asm["authorization_response_iss_parameter_supported"],
            json!(true)
        );
        assert!(
            asm["token_endpoint_auth_methods_supported"]
                .as_array()
                .unwrap()
                .contains(&json!("none"))
        );
        assert!(asm.get("jwks_uri").is_none());
        assert_eq!(
            asm["token_endpoint"],
            json!("https://portal.example/oauth/token")
        );
        assert_eq!(prm["resource"], json!("https://mcp.example/mcp"));
        assert!(!prm.to_string().contains("offline_access"));
        assert!(!asm.to_string().contains("offline_access"));
    }

    /// What clients see, whole: a renamed or dropped field fails here.
    #[test]
    fn metadata_documents_snapshot() {
        assert_eq!(
            authorization_server_metadata(&issuer()),
            json!({
                "issuer": "https://portal.example",
                "authorization_endpoint": "https://portal.example/oauth/authorize",
                "token_endpoint": "https://portal.example/oauth/token",
                "registration_endpoint": "https://portal.example/oauth/register",
                "revocation_endpoint": "https://portal.example/oauth/revoke",
                "scopes_supported": ["books:read"],
                "response_types_supported": ["code"],
                "response_modes_supported": ["query"],
                "grant_types_supported": ["authorization_code", "refresh_token"],
                "token_endpoint_auth_methods_supported": ["none"],
                "revocation_endpoint_auth_methods_supported": ["none"],
                "code_challenge_methods_supported": ["S256"],
                "client_id_metadata_document_supported": true,
                "authorization_response_iss_parameter_supported": true,
            })
        );
        assert_eq!(
            protected_resource_metadata(&resource(), &issuer()),
            json!({
                "resource": "https://mcp.example/mcp",
                "authorization_servers": ["https://portal.example"],
                "scopes_supported": ["books:read"],
                "bearer_methods_supported": ["header"],
                "resource_name": "Praat met je Boekhouding",
            })
        );
    }

    #[test]
    fn challenges_name_the_metadata_and_the_scope() {
        let r = resource();
        assert_eq!(
            www_authenticate(&r, Challenge::Missing),
            "Bearer resource_metadata=\"https://mcp.example/.well-known/oauth-protected-resource/mcp\", scope=\"books:read\""
        );
        let invalid = www_authenticate(&r, Challenge::InvalidToken);
        assert!(invalid.contains("error=\"invalid_token\""), "{invalid}");
        let scope = www_authenticate(&r, Challenge::InsufficientScope("books:read"));
        assert!(scope.contains("error=\"insufficient_scope\""), "{scope}");
        assert_eq!(Challenge::InsufficientScope("x").http_status(), 403);
        assert_eq!(Challenge::InvalidToken.http_status(), 401);
    }
}
