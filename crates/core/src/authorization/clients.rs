//! MCP clients: redirect URI rules, Dynamic Client Registration (RFC 7591)
//! and Client ID Metadata Documents (CIMD), and [`resolve`], which finds
//! the client of a `client_id` either way.
//!
//! Only public clients exist here (`token_endpoint_auth_method: none`,
//! PKCE): every MCP client this product meets is one, and a secret in a
//! desktop app or a browser protects nothing.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

use super::{OAuthError, SCOPES_SUPPORTED};
use crate::ports::Randomness;
use crate::ports::{HttpMethod, HttpRequest, HttpTransport, Sleep, within};
use crate::storage::{SqlExecutor, new_id, oauth_clients};

/// Most redirect URIs a client may list.
pub const MAX_REDIRECT_URIS: usize = 10;
/// Longest redirect URI accepted.
pub const MAX_REDIRECT_URI_LEN: usize = 2000;
/// Longest client name kept (longer names are cut, not refused).
pub const MAX_CLIENT_NAME_CHARS: usize = 80;
/// A metadata document larger than this is refused (5 KB).
pub const MAX_METADATA_DOCUMENT_BYTES: usize = 5 * 1024;
/// The metadata document fetch must finish within this (5 s).
pub const METADATA_FETCH_DEADLINE_MS: u64 = 5_000;
/// How long a metadata document is cached without `Cache-Control`.
pub const DEFAULT_DOCUMENT_LIFETIME: Duration = Duration::hours(1);
/// The least a cacheable document is kept, so a tiny `max-age` does not
/// turn every authorization into a fetch.
pub const MIN_DOCUMENT_LIFETIME: Duration = Duration::minutes(5);
/// The most a document is kept, so a changed redirect list takes effect.
pub const MAX_DOCUMENT_LIFETIME: Duration = Duration::days(1);

/// How a client became known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientKind {
    /// Through the registration endpoint (RFC 7591).
    Registered,
    /// Its `client_id` is the URL of its metadata document.
    MetadataDocument,
}

/// OIDC Dynamic Registration's `application_type`: a `web` client
/// redirects to https only; a `native` one also to loopback and
/// private-use schemes (RFC 8252).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplicationType {
    Web,
    Native,
}

impl ApplicationType {
    pub fn as_str(self) -> &'static str {
        match self {
            ApplicationType::Web => "web",
            ApplicationType::Native => "native",
        }
    }
}

/// A client as the authorization endpoint needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    pub client_id: String,
    /// Untrusted text from the client: show it escaped, next to the
    /// redirect host (which is what the user can actually verify).
    pub client_name: String,
    pub redirect_uris: Vec<String>,
    pub application_type: ApplicationType,
    pub kind: ClientKind,
}

impl Client {
    /// The registered redirect URI that `presented` selects, if any
    /// (exact, or loopback with any port).
    pub fn matching_redirect_uri(&self, presented: &str) -> Option<&str> {
        self.redirect_uris
            .iter()
            .map(String::as_str)
            .find(|r| redirect_uri_matches(r, presented))
    }
}

// ---------------------------------------------------------------------------
// Redirect URIs

/// What kind of redirect URI a string is, if acceptable at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedirectKind {
    Https,
    /// `http://127.0.0.1`, `http://[::1]` or `http://localhost`, any port.
    Loopback,
    /// A private-use scheme (`com.example.app:/callback`, RFC 8252 §7.1).
    PrivateUse,
}

/// Classifies a redirect URI: absolute, no fragment, no credentials;
/// https with a host, loopback http, or a reverse-domain private-use
/// scheme. Anything else (plain http elsewhere, `javascript:`, `data:`,
/// `file:`) is `None`.
pub fn redirect_kind(raw: &str) -> Option<RedirectKind> {
    if raw.len() > MAX_REDIRECT_URI_LEN {
        return None;
    }
    let url = url::Url::parse(raw).ok()?;
    if url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() {
        return None;
    }
    match url.scheme() {
        "https" => url.host().is_some().then_some(RedirectKind::Https),
        "http" => is_loopback_host(&url).then_some(RedirectKind::Loopback),
        scheme => {
            // RFC 8252 §7.1: a private-use scheme is a reverse domain
            // name, so it has a period; that rules out every scheme a
            // browser would run (javascript, data, file, …).
            scheme.contains('.').then_some(RedirectKind::PrivateUse)
        }
    }
}

fn is_loopback_host(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip == Ipv4Addr::LOCALHOST,
        Some(url::Host::Ipv6(ip)) => ip == Ipv6Addr::LOCALHOST,
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// Whether a presented redirect URI selects a registered one: the exact
/// string, except that a loopback http URI matches with any port
/// (RFC 8252 §7.3: native apps get an ephemeral port; VS Code falls back
/// to a random one). Host, path and query must still be equal.
pub fn redirect_uri_matches(registered: &str, presented: &str) -> bool {
    if registered == presented {
        return true;
    }
    let (Ok(mut r), Ok(mut p)) = (url::Url::parse(registered), url::Url::parse(presented)) else {
        return false;
    };
    if r.scheme() != "http"
        || p.scheme() != "http"
        || !is_loopback_host(&r)
        || !is_loopback_host(&p)
    {
        return false;
    }
    if p.fragment().is_some() || !p.username().is_empty() || p.password().is_some() {
        return false;
    }
    // Setting the port cannot fail on an http URL with a host.
    let _ = r.set_port(None);
    let _ = p.set_port(None);
    r.as_str() == p.as_str()
}

/// Checks a client's redirect URI list for its application type.
pub fn validate_redirect_uris(
    uris: &[String],
    application_type: ApplicationType,
) -> Result<(), OAuthError> {
    if uris.is_empty() {
        return Err(OAuthError::InvalidRedirectUri(
            "at least one redirect_uri is required",
        ));
    }
    if uris.len() > MAX_REDIRECT_URIS {
        return Err(OAuthError::InvalidRedirectUri("too many redirect_uris"));
    }
    for uri in uris {
        match (redirect_kind(uri), application_type) {
            (Some(RedirectKind::Https), _) => {}
            (Some(RedirectKind::Loopback | RedirectKind::PrivateUse), ApplicationType::Native) => {}
            (Some(RedirectKind::Loopback | RedirectKind::PrivateUse), ApplicationType::Web) => {
                return Err(OAuthError::InvalidRedirectUri(
                    "a web client's redirect_uris must be https; loopback and custom schemes need application_type native",
                ));
            }
            (None, _) => {
                return Err(OAuthError::InvalidRedirectUri(
                    "redirect_uris must be https, loopback http or a private-use scheme, without a fragment",
                ));
            }
        }
    }
    Ok(())
}

/// The application type of a client that did not say: native if it lists
/// a loopback or private-use redirect (older DCR clients such as VS Code
/// and Claude Code send loopback URIs without `application_type`), else
/// web. An explicit value is always respected.
fn infer_application_type(
    declared: Option<&str>,
    uris: &[String],
) -> Result<ApplicationType, OAuthError> {
    match declared {
        Some("web") => Ok(ApplicationType::Web),
        Some("native") => Ok(ApplicationType::Native),
        Some(_) => Err(OAuthError::InvalidClientMetadata(
            "application_type must be web or native",
        )),
        None => Ok(
            if uris.iter().any(|u| {
                matches!(
                    redirect_kind(u),
                    Some(RedirectKind::Loopback | RedirectKind::PrivateUse)
                )
            }) {
                ApplicationType::Native
            } else {
                ApplicationType::Web
            },
        ),
    }
}

/// A client name as shown on the consent page: control characters
/// removed, whitespace collapsed, cut to [`MAX_CLIENT_NAME_CHARS`]. It is
/// still untrusted text: templates escape it.
pub fn clean_client_name(raw: Option<&str>, fallback: &str) -> String {
    let cleaned: String = raw
        .unwrap_or("")
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(MAX_CLIENT_NAME_CHARS)
        .collect();
    if cleaned.is_empty() {
        fallback.to_owned()
    } else {
        cleaned
    }
}

fn string_list(
    value: Option<&Value>,
    field: &'static str,
) -> Result<Option<Vec<String>>, OAuthError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .map(Some)
            .ok_or(OAuthError::InvalidClientMetadata(field)),
        Some(_) => Err(OAuthError::InvalidClientMetadata(field)),
    }
}

/// Grant and response types, when a client names them, must include what
/// this server does (authorization code with refresh).
fn check_flows(doc: &serde_json::Map<String, Value>) -> Result<(), OAuthError> {
    let grants = string_list(
        doc.get("grant_types"),
        "grant_types must be a list of strings",
    )?;
    if grants.is_some_and(|g| !g.iter().any(|g| g == "authorization_code")) {
        return Err(OAuthError::InvalidClientMetadata(
            "grant_types must include authorization_code",
        ));
    }
    let types = string_list(
        doc.get("response_types"),
        "response_types must be a list of strings",
    )?;
    if types.is_some_and(|t| !t.iter().any(|t| t == "code")) {
        return Err(OAuthError::InvalidClientMetadata(
            "response_types must include code",
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Dynamic Client Registration (RFC 7591)

/// A validated registration request, before it has an id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub client_name: String,
    pub redirect_uris: Vec<String>,
    pub application_type: ApplicationType,
}

/// Validates an RFC 7591 registration request body. Redirect URIs follow
/// [`validate_redirect_uris`] for the (declared or inferred) application
/// type. A requested `token_endpoint_auth_method` other than `none` is
/// replaced by `none` (RFC 7591 §3.2.1 lets the server substitute values;
/// the response says what was registered): every MCP client this product
/// meets is public and uses PKCE, and a refusal would strand a client
/// that merely asked for a secret.
pub fn validate_registration(body: &Value) -> Result<Registration, OAuthError> {
    let doc = body.as_object().ok_or(OAuthError::InvalidClientMetadata(
        "the body must be a JSON object",
    ))?;
    let redirect_uris = string_list(
        doc.get("redirect_uris"),
        "redirect_uris must be a list of strings",
    )?
    .ok_or(OAuthError::InvalidRedirectUri("redirect_uris is required"))?;
    let application_type = infer_application_type(
        match doc.get("application_type") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.as_str()),
            Some(_) => {
                return Err(OAuthError::InvalidClientMetadata(
                    "application_type must be web or native",
                ));
            }
        },
        &redirect_uris,
    )?;
    validate_redirect_uris(&redirect_uris, application_type)?;
    check_flows(doc)?;
    let client_name = clean_client_name(
        doc.get("client_name").and_then(Value::as_str),
        "Unnamed app",
    );
    Ok(Registration {
        client_name,
        redirect_uris,
        application_type,
    })
}

/// Registers a validated client: a new random id (never URL-shaped, so it
/// cannot be mistaken for a metadata document) and the stored row.
pub async fn register(
    db: &impl SqlExecutor,
    rng: &impl Randomness,
    registration: Registration,
    now: DateTime<Utc>,
) -> Result<Client, OAuthError> {
    let id = new_id(rng).map_err(|_| OAuthError::ServerError("no randomness"))?;
    let client = Client {
        client_id: format!("pmjb_client_{id}"),
        client_name: registration.client_name,
        redirect_uris: registration.redirect_uris,
        application_type: registration.application_type,
        kind: ClientKind::Registered,
    };
    oauth_clients::insert_registered(db, &client, now).await?;
    Ok(client)
}

/// The registration endpoint: a JSON body in, the 201 answer out (or an
/// `invalid_client_metadata` / `invalid_redirect_uri` error, 400). The
/// per-address rate limit ([`super::REGISTRATIONS_PER_HOUR`]) is the
/// Worker's, before this is called.
pub async fn registration_endpoint(
    db: &impl SqlExecutor,
    rng: &impl Randomness,
    body: &str,
    now: DateTime<Utc>,
) -> Result<Value, OAuthError> {
    let value: Value = serde_json::from_str(body)
        .map_err(|_| OAuthError::InvalidClientMetadata("the body must be a JSON object"))?;
    let client = register(db, rng, validate_registration(&value)?, now).await?;
    Ok(registration_response(&client, now))
}

/// The RFC 7591 §3.2.1 response (HTTP 201) for a registered client.
pub fn registration_response(client: &Client, issued_at: DateTime<Utc>) -> Value {
    json!({
        "client_id": client.client_id,
        "client_id_issued_at": issued_at.timestamp(),
        "client_name": client.client_name,
        "redirect_uris": client.redirect_uris,
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
        "application_type": client.application_type.as_str(),
        "scope": SCOPES_SUPPORTED.join(" "),
    })
}

// ---------------------------------------------------------------------------
// Client ID Metadata Documents

/// Where metadata documents may be fetched from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DocumentPolicy {
    /// Development and tests only: also http, and loopback or private
    /// hosts (the end-to-end suite serves documents from 127.0.0.1).
    pub allow_local: bool,
}

/// Whether a `client_id` is meant as a metadata document URL (rather than
/// an id this server issued).
pub fn is_document_client_id(client_id: &str) -> bool {
    client_id.starts_with("https://") || client_id.starts_with("http://")
}

/// Checks a `client_id` URL before anything is fetched: https, a path, no
/// fragment or credentials, and a host that is not private.
///
/// Workers cannot resolve DNS, so only what the URL itself says can be
/// checked here: literal IP addresses outside public unicast space and
/// names that are local by convention (`localhost`, `*.localhost`,
/// `*.local`, `*.internal`, `*.home.arpa`, single-label names). A public
/// name that resolves to a private address is stopped by the platform:
/// the auth-portal runs with the `global_fetch_strictly_public`
/// compatibility flag, so its `fetch` never reaches private addresses.
pub fn validate_document_url(raw: &str, policy: DocumentPolicy) -> Result<url::Url, OAuthError> {
    const BAD: OAuthError =
        OAuthError::InvalidClient("client_id must be an https URL with a path on a public host");
    let url = url::Url::parse(raw).map_err(|_| BAD)?;
    let scheme_ok = url.scheme() == "https" || (policy.allow_local && url.scheme() == "http");
    if !scheme_ok
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
        || url.path().trim_matches('/').is_empty()
    {
        return Err(BAD);
    }
    if policy.allow_local {
        return Ok(url);
    }
    let public = match url.host() {
        Some(url::Host::Ipv4(ip)) => is_public_v4(ip),
        Some(url::Host::Ipv6(ip)) => is_public_v6(ip),
        Some(url::Host::Domain(d)) => is_public_name(d),
        None => false,
    };
    if public { Ok(url) } else { Err(BAD) }
}

fn is_public_name(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let local_suffix = [
        ".localhost",
        ".local",
        ".internal",
        ".home.arpa",
        ".localdomain",
        ".lan",
    ]
    .iter()
    .any(|s| name.ends_with(s));
    name.contains('.') && name != "localhost" && !local_suffix
}

/// Public unicast IPv4 only: no private (10/8, 172.16/12, 192.168/16),
/// loopback, link-local (169.254/16, where cloud metadata lives),
/// shared (100.64/10), documentation, benchmarking, "this network",
/// multicast, reserved or broadcast addresses.
pub fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        || a == 0
        || (a == 100 && (64..128).contains(&b))
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (b == 18 || b == 19))
        || a >= 240)
}

/// Public unicast IPv6 only: global unicast (2000::/3) outside
/// documentation (2001:db8::/32), Teredo (2001::/32) and 6to4 (2002::/16),
/// which embed IPv4 addresses that may be private; IPv4-mapped addresses
/// are judged as IPv4. Unique-local (fc00::/7), link-local (fe80::/10),
/// loopback and multicast fall outside 2000::/3.
pub fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let s = ip.segments();
    (s[0] & 0xe000) == 0x2000
        && !(s[0] == 0x2001 && s[1] == 0x0db8)
        && !(s[0] == 0x2001 && s[1] == 0)
        && s[0] != 0x2002
}

/// Whether an address is public (for callers holding an `IpAddr`).
pub fn is_public_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

/// Why a metadata document could not be used. All map to
/// `invalid_client` on the error page (the client is unknown until its
/// document is good); the variants are for the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocumentError {
    #[error("the client_id URL is not allowed")]
    ForbiddenUrl,
    #[error("the document fetch timed out")]
    Timeout,
    #[error("the document could not be fetched: {0}")]
    Network(String),
    #[error("the document answered HTTP {0}")]
    Status(u16),
    #[error("the document is larger than {MAX_METADATA_DOCUMENT_BYTES} bytes")]
    TooLarge,
    #[error("the document is not a JSON object")]
    NotJson,
    #[error("the document's client_id differs from its URL")]
    ClientIdMismatch,
    #[error("the document is invalid: {0}")]
    Invalid(OAuthError),
}

impl DocumentError {
    /// The answer the client (or the error page) gets.
    pub fn to_oauth(&self) -> OAuthError {
        match self {
            DocumentError::ForbiddenUrl => OAuthError::InvalidClient(
                "client_id must be an https URL with a path on a public host",
            ),
            DocumentError::ClientIdMismatch => OAuthError::InvalidClient(
                "the client metadata document's client_id does not equal its URL",
            ),
            DocumentError::TooLarge => {
                OAuthError::InvalidClient("the client metadata document is larger than 5 KB")
            }
            DocumentError::Invalid(e) => OAuthError::InvalidClient(e.description()),
            _ => OAuthError::InvalidClient("the client metadata document could not be fetched"),
        }
    }
}

/// A fetched document: its body and `Cache-Control` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedDocument {
    pub body: Vec<u8>,
    pub cache_control: Option<String>,
}

/// Fetches a metadata document: GET, at most
/// [`MAX_METADATA_DOCUMENT_BYTES`] read, within
/// [`METADATA_FETCH_DEADLINE_MS`]. The URL must have passed
/// [`validate_document_url`].
pub async fn fetch_document(
    http: &impl HttpTransport,
    sleep: &impl Sleep,
    url: &url::Url,
) -> Result<FetchedDocument, DocumentError> {
    let request = HttpRequest {
        method: HttpMethod::Get,
        url: url.as_str().to_owned(),
        headers: vec![("Accept".into(), "application/json".into())],
        body: None,
    };
    let response = within(
        sleep,
        METADATA_FETCH_DEADLINE_MS,
        http.send_binary(request, MAX_METADATA_DOCUMENT_BYTES),
    )
    .await
    .ok_or(DocumentError::Timeout)?
    .map_err(|e| match e {
        crate::ports::TransportError::Timeout => DocumentError::Timeout,
        crate::ports::TransportError::Network(m) => DocumentError::Network(m),
    })?;
    if response.status != 200 {
        return Err(DocumentError::Status(response.status));
    }
    if response.truncated || response.body.len() > MAX_METADATA_DOCUMENT_BYTES {
        return Err(DocumentError::TooLarge);
    }
    Ok(FetchedDocument {
        cache_control: response
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("cache-control"))
            .map(|(_, v)| v.clone()),
        body: response.body,
    })
}

/// Validates a document fetched from `client_id`: a JSON object whose
/// `client_id` equals the URL exactly (as the client sent it, no
/// normalisation), with redirect URIs (https, loopback or private-use),
/// public-client auth, and a cleaned name (the host when it has none).
pub fn validate_document(client_id: &str, body: &[u8]) -> Result<Client, DocumentError> {
    if body.len() > MAX_METADATA_DOCUMENT_BYTES {
        return Err(DocumentError::TooLarge);
    }
    let value: Value = serde_json::from_slice(body).map_err(|_| DocumentError::NotJson)?;
    let doc = value.as_object().ok_or(DocumentError::NotJson)?;
    if doc.get("client_id").and_then(Value::as_str) != Some(client_id) {
        return Err(DocumentError::ClientIdMismatch);
    }
    let redirect_uris = string_list(
        doc.get("redirect_uris"),
        "redirect_uris must be a list of strings",
    )
    .map_err(DocumentError::Invalid)?
    .ok_or(DocumentError::Invalid(OAuthError::InvalidRedirectUri(
        "the client metadata document lists no redirect_uris",
    )))?;
    let declared = doc.get("application_type").and_then(Value::as_str);
    let application_type =
        infer_application_type(declared, &redirect_uris).map_err(DocumentError::Invalid)?;
    validate_redirect_uris(&redirect_uris, application_type).map_err(DocumentError::Invalid)?;
    match doc
        .get("token_endpoint_auth_method")
        .and_then(Value::as_str)
    {
        None | Some("none") => {}
        Some(_) => {
            return Err(DocumentError::Invalid(OAuthError::InvalidClientMetadata(
                "only public clients (token_endpoint_auth_method none) are supported",
            )));
        }
    }
    check_flows(doc).map_err(DocumentError::Invalid)?;
    let host = url::Url::parse(client_id)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default();
    Ok(Client {
        client_id: client_id.to_owned(),
        client_name: clean_client_name(doc.get("client_name").and_then(Value::as_str), &host),
        redirect_uris,
        application_type,
        kind: ClientKind::MetadataDocument,
    })
}

/// How long a document may be cached, from its `Cache-Control`:
/// `no-store`, `no-cache` or `max-age=0` → zero (fetch again next time);
/// `max-age=N` → N bounded to [[`MIN_DOCUMENT_LIFETIME`],
/// [`MAX_DOCUMENT_LIFETIME`]]; no usable directive →
/// [`DEFAULT_DOCUMENT_LIFETIME`].
pub fn document_lifetime(cache_control: Option<&str>) -> Duration {
    let Some(header) = cache_control else {
        return DEFAULT_DOCUMENT_LIFETIME;
    };
    let mut max_age: Option<i64> = None;
    for directive in header.split(',') {
        let directive = directive.trim().to_ascii_lowercase();
        if directive == "no-store" || directive == "no-cache" {
            return Duration::zero();
        }
        if let Some(v) = directive.strip_prefix("max-age=") {
            max_age = v.trim_matches('"').parse::<i64>().ok();
        }
    }
    match max_age {
        Some(0) => Duration::zero(),
        Some(n) if n > 0 => {
            Duration::seconds(n).clamp(MIN_DOCUMENT_LIFETIME, MAX_DOCUMENT_LIFETIME)
        }
        _ => DEFAULT_DOCUMENT_LIFETIME,
    }
}

/// Finds the client of a `client_id` for the authorization endpoint: a
/// registered client from storage, or a metadata document from its cache
/// (while fresh) or fetched, validated and cached now. Errors are
/// `invalid_client` and must be shown on an error page, never redirected
/// (the redirect URI cannot be trusted before the client is known).
pub async fn resolve(
    db: &impl SqlExecutor,
    http: &impl HttpTransport,
    sleep: &impl Sleep,
    client_id: &str,
    policy: DocumentPolicy,
    now: DateTime<Utc>,
) -> Result<Client, ResolveError> {
    let stored = oauth_clients::find(db, client_id).await?;
    if !is_document_client_id(client_id) {
        return stored
            .filter(|s| s.client.kind == ClientKind::Registered)
            .map(|s| s.client)
            .ok_or(ResolveError::Unknown);
    }
    if let Some(s) = stored
        && s.client.kind == ClientKind::MetadataDocument
        && s.refresh_after.is_some_and(|t| t > now)
    {
        return Ok(s.client);
    }
    let url = validate_document_url(client_id, policy).map_err(|_| DocumentError::ForbiddenUrl)?;
    let fetched = fetch_document(http, sleep, &url).await?;
    let client = validate_document(client_id, &fetched.body)?;
    let lifetime = document_lifetime(fetched.cache_control.as_deref());
    // The row is stored even when the document may not be cached: grants
    // and usage rows reference the client by id. A zero lifetime makes
    // the next authorization fetch it again.
    oauth_clients::upsert_metadata_document(db, &client, now + lifetime, now).await?;
    Ok(client)
}

/// Why [`resolve`] found no client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("unknown client")]
    Unknown,
    #[error(transparent)]
    Document(#[from] DocumentError),
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
}

impl ResolveError {
    pub fn to_oauth(&self) -> OAuthError {
        match self {
            ResolveError::Unknown => OAuthError::InvalidClient("unknown client_id"),
            ResolveError::Document(d) => d.to_oauth(),
            ResolveError::Storage(e) => e.clone().into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLAUDE_AI: &str = "https://claude.ai/api/mcp/auth_callback";
    const CLAUDE_COM: &str = "https://claude.com/api/mcp/auth_callback";
    const CHATGPT: &str = "https://chatgpt.com/connector/oauth/abc123XYZ";
    const CHATGPT_OLD: &str = "https://chatgpt.com/connector_platform_oauth_redirect";
    const VSCODE: &str = "https://vscode.dev/redirect";

    fn client(uris: &[&str]) -> Client {
        Client {
            client_id: "c".into(),
            client_name: "C".into(),
            redirect_uris: uris.iter().map(|s| s.to_string()).collect(),
            application_type: ApplicationType::Native,
            kind: ClientKind::Registered,
        }
    }

    #[test]
    fn the_known_callbacks_match_when_registered() {
        let all = client(&[
            CLAUDE_AI,
            CLAUDE_COM,
            CHATGPT,
            CHATGPT_OLD,
            VSCODE,
            "http://127.0.0.1/",
            "http://127.0.0.1:33418/",
        ]);
        validate_redirect_uris(&all.redirect_uris, ApplicationType::Native).unwrap();
        for uri in [CLAUDE_AI, CLAUDE_COM, CHATGPT, CHATGPT_OLD, VSCODE] {
            assert_eq!(all.matching_redirect_uri(uri), Some(uri), "{uri}");
            assert_eq!(redirect_kind(uri), Some(RedirectKind::Https));
        }
        // VS Code: registered on 127.0.0.1 (no port or 33418), redirected to any port.
        assert!(
            all.matching_redirect_uri("http://127.0.0.1:33418/")
                .is_some()
        );
        assert!(
            all.matching_redirect_uri("http://127.0.0.1:51234/")
                .is_some()
        );
        // Near misses are refused: exact match for everything else.
        for near in [
            "https://claude.ai/api/mcp/auth_callback/",
            "https://claude.ai/api/mcp/auth_callback?x=1",
            "https://claude.ai.evil.example/api/mcp/auth_callback",
            "https://chatgpt.com/connector/oauth/other",
            "https://vscode.dev/redirect#x",
            "http://vscode.dev/redirect",
            "http://127.0.0.1:4000/other",
            "http://localhost:33418/",
        ] {
            assert_eq!(all.matching_redirect_uri(near), None, "{near}");
        }
    }

    #[test]
    fn loopback_redirects_match_on_any_port_but_same_host_path_and_query() {
        assert!(redirect_uri_matches(
            "http://127.0.0.1/callback",
            "http://127.0.0.1:5000/callback"
        ));
        assert!(redirect_uri_matches(
            "http://[::1]:1/cb",
            "http://[::1]:65000/cb"
        ));
        assert!(redirect_uri_matches(
            "http://localhost:3030/callback",
            "http://localhost:4040/callback"
        ));
        assert!(!redirect_uri_matches(
            "http://127.0.0.1/callback",
            "http://[::1]:5000/callback"
        ));
        assert!(!redirect_uri_matches(
            "http://127.0.0.1/callback",
            "http://127.0.0.1:5000/callbacK"
        ));
        assert!(!redirect_uri_matches(
            "http://127.0.0.1/cb?a=1",
            "http://127.0.0.1:5/cb?a=2"
        ));
        assert!(!redirect_uri_matches(
            "https://example.com:443/cb",
            "https://example.com:8443/cb"
        ));
        assert!(!redirect_uri_matches(
            "http://127.0.0.1/cb",
            "http://127.0.0.2:80/cb"
        ));
    }

    #[test]
    fn redirect_uris_follow_the_application_type() {
        let uris = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(validate_redirect_uris(&uris(&[VSCODE]), ApplicationType::Web).is_ok());
        assert!(
            validate_redirect_uris(&uris(&["http://127.0.0.1/"]), ApplicationType::Web).is_err()
        );
        assert!(
            validate_redirect_uris(&uris(&["http://127.0.0.1/"]), ApplicationType::Native).is_ok()
        );
        assert!(
            validate_redirect_uris(&uris(&["com.example.app:/cb"]), ApplicationType::Native)
                .is_ok()
        );
        assert!(
            validate_redirect_uris(&uris(&["com.example.app:/cb"]), ApplicationType::Web).is_err()
        );
        for bad in [
            "http://example.com/cb",
            "javascript:alert(1)",
            "data:text/html,x",
            "file:///etc/passwd",
            "https://x.example/cb#f",
            "https://u:p@x.example/cb",
            "/relative",
            "myapp:/cb",
        ] {
            assert!(
                validate_redirect_uris(&uris(&[bad]), ApplicationType::Native).is_err(),
                "{bad}"
            );
        }
        assert!(validate_redirect_uris(&[], ApplicationType::Native).is_err());
    }

    #[test]
    fn registration_respects_and_infers_the_application_type() {
        let web = validate_registration(&json!({
            "client_name": "Claude", "redirect_uris": [CLAUDE_AI], "application_type": "web",
            "token_endpoint_auth_method": "none", "grant_types": ["authorization_code", "refresh_token"]
        }))
        .unwrap();
        assert_eq!(web.application_type, ApplicationType::Web);
        assert_eq!(
            validate_registration(
                &json!({"redirect_uris": ["http://127.0.0.1:3000/cb"], "application_type": "web"})
            ),
            Err(OAuthError::InvalidRedirectUri(
                "a web client's redirect_uris must be https; loopback and custom schemes need application_type native"
            ))
        );
        // VS Code's registration without application_type: loopback makes it native.
        let vscode = validate_registration(&json!({
            "client_name": "Visual Studio Code",
            "redirect_uris": [VSCODE, "https://insiders.vscode.dev/redirect", "http://127.0.0.1/", "http://127.0.0.1:33418/"],
            "token_endpoint_auth_method": "client_secret_post"
        }))
        .unwrap();
        assert_eq!(vscode.application_type, ApplicationType::Native);
        assert!(
            validate_registration(
                &json!({"redirect_uris": [CLAUDE_AI], "grant_types": ["client_credentials"]})
            )
            .is_err()
        );
        assert!(validate_registration(&json!({"client_name": "x"})).is_err());
        assert!(
            validate_registration(&json!({"redirect_uris": [CLAUDE_AI], "application_type": "tv"}))
                .is_err()
        );
        let named = validate_registration(
            &json!({"redirect_uris": [CLAUDE_AI], "client_name": "  Evil\u{0}\n  <b>App</b>  "}),
        )
        .unwrap();
        assert_eq!(
            named.client_name, "Evil <b>App</b>",
            "cleaned, still escaped by templates"
        );
        let response = registration_response(
            &Client {
                client_id: "pmjb_client_1".into(),
                client_name: vscode.client_name,
                redirect_uris: vscode.redirect_uris,
                application_type: vscode.application_type,
                kind: ClientKind::Registered,
            },
            chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
        );
        assert_eq!(
            response["token_endpoint_auth_method"], "none",
            "a secret method is replaced by none"
        );
        assert_eq!(response["client_id_issued_at"], 1_700_000_000);
        assert!(response.get("client_secret").is_none());
    }

    #[test]
    fn document_urls_must_be_public_https_with_a_path() {
        let prod = DocumentPolicy::default();
        for ok in [
            "https://claude.ai/oauth/mcp-oauth-client-metadata",
            "https://vscode.dev/oauth/client-metadata.json",
            "https://93.184.216.34/client.json",
            "https://[2606:4700::1111]/client.json",
        ] {
            assert!(validate_document_url(ok, prod).is_ok(), "{ok}");
        }
        for bad in [
            "http://claude.ai/oauth/x",
            "https://claude.ai",
            "https://claude.ai/",
            "https://claude.ai/x#frag",
            "https://user:pw@claude.ai/x",
            "https://localhost/x",
            "https://app.localhost/x",
            "https://printer.local/x",
            "https://metadata.google.internal/x",
            "https://router.home.arpa/x",
            "https://intranet/x",
            "https://127.0.0.1/x",
            "https://0x7f.1/x",
            "https://2130706433/x",
            "https://10.0.0.1/x",
            "https://172.16.5.4/x",
            "https://192.168.1.1/x",
            "https://169.254.169.254/latest/meta-data",
            "https://100.64.0.1/x",
            "https://0.0.0.0/x",
            "https://[::1]/x",
            "https://[fd00::1]/x",
            "https://[fe80::1]/x",
            "https://[::ffff:10.0.0.1]/x",
            "https://[2001:db8::1]/x",
            "https://[2002:a00:1::]/x",
            "ftp://claude.ai/x",
        ] {
            assert!(validate_document_url(bad, prod).is_err(), "{bad}");
        }
        let dev = DocumentPolicy { allow_local: true };
        assert!(validate_document_url("http://127.0.0.1:8123/client.json", dev).is_ok());
        assert!(
            validate_document_url("http://127.0.0.1:8123/", dev).is_err(),
            "still needs a path"
        );
    }

    #[test]
    fn documents_must_name_their_own_url_and_list_redirects() {
        let id = "https://claude.ai/oauth/mcp-oauth-client-metadata";
        let good = json!({"client_id": id, "client_name": "Claude", "redirect_uris": [CLAUDE_AI, CLAUDE_COM], "token_endpoint_auth_method": "none"});
        let c = validate_document(id, good.to_string().as_bytes()).unwrap();
        assert_eq!(c.client_name, "Claude");
        assert_eq!(c.kind, ClientKind::MetadataDocument);
        assert_eq!(c.application_type, ApplicationType::Web);
        // The client_id must be the URL exactly: no trailing slash, no case folding.
        for other in [
            format!("{id}/"),
            id.replace("claude.ai", "Claude.ai"),
            "https://evil.example/x".into(),
        ] {
            let doc = json!({"client_id": other, "redirect_uris": [CLAUDE_AI]});
            assert_eq!(
                validate_document(id, doc.to_string().as_bytes()),
                Err(DocumentError::ClientIdMismatch)
            );
        }
        assert!(matches!(
            validate_document(id, json!({"client_id": id}).to_string().as_bytes()),
            Err(DocumentError::Invalid(_))
        ));
        assert!(matches!(
            validate_document(
                id,
                json!({"client_id": id, "redirect_uris": ["http://evil.example/cb"]})
                    .to_string()
                    .as_bytes()
            ),
            Err(DocumentError::Invalid(_))
        ));
        assert!(matches!(validate_document(id, json!({"client_id": id, "redirect_uris": [CLAUDE_AI], "token_endpoint_auth_method": "private_key_jwt"}).to_string().as_bytes()), Err(DocumentError::Invalid(_))));
        assert_eq!(validate_document(id, b"[1]"), Err(DocumentError::NotJson));
        assert_eq!(
            validate_document(id, &vec![b' '; MAX_METADATA_DOCUMENT_BYTES + 1]),
            Err(DocumentError::TooLarge)
        );
        let unnamed = validate_document(
            id,
            json!({"client_id": id, "redirect_uris": [CLAUDE_AI]})
                .to_string()
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(
            unnamed.client_name, "claude.ai",
            "the host stands in for a missing name"
        );
        let long = validate_document(
            id,
            json!({"client_id": id, "client_name": "x".repeat(500), "redirect_uris": [CLAUDE_AI]})
                .to_string()
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(long.client_name.chars().count(), MAX_CLIENT_NAME_CHARS);
    }

    proptest::proptest! {
        /// However a private, loopback or link-local IPv4 address is
        /// written (dotted, one decimal number, hex), the URL is refused.
        #[test]
        fn a_non_public_ipv4_is_refused_in_every_notation(
            net in proptest::sample::select(vec![0x0a00_0000u32, 0x7f00_0000, 0xc0a8_0000, 0xa9fe_0000, 0xac10_0000, 0x6440_0000]),
            host_bits in 0u32..0x1_0000,
        ) {
            let ip = Ipv4Addr::from(net | host_bits);
            proptest::prop_assert!(!is_public_v4(ip));
            for written in [ip.to_string(), u32::from(ip).to_string(), format!("0x{:x}", u32::from(ip))] {
                let url = format!("https://{written}/client.json");
                proptest::prop_assert!(validate_document_url(&url, DocumentPolicy::default()).is_err(), "{}", url);
            }
        }

        /// Outside loopback, a redirect URI matches only itself.
        #[test]
        fn non_loopback_redirects_match_only_exactly(
            a in "https://[a-c]{1,3}\\.example(:[0-9]{1,4})?/[a-c/]{0,6}(\\?[a-c=&]{0,4})?",
            b in "https://[a-c]{1,3}\\.example(:[0-9]{1,4})?/[a-c/]{0,6}(\\?[a-c=&]{0,4})?",
        ) {
            proptest::prop_assert_eq!(redirect_uri_matches(&a, &b), a == b);
            proptest::prop_assert!(redirect_uri_matches(&a, &a));
        }

        /// A loopback redirect matches on every port, and never another path.
        #[test]
        fn loopback_redirects_match_every_port(
            host in proptest::sample::select(vec!["127.0.0.1", "[::1]", "localhost"]),
            p1 in 1u16.., p2 in 1u16..,
            path in "/[a-c]{0,5}",
        ) {
            let registered = format!("http://{host}:{p1}{path}");
            let presented = format!("http://{host}:{p2}{path}");
            proptest::prop_assert!(redirect_uri_matches(&registered, &presented));
            let other = format!("http://{host}:{p2}{path}x");
            proptest::prop_assert!(!redirect_uri_matches(&registered, &other));
        }
    }

    #[test]
    fn cache_lifetime_follows_cache_control_within_bounds() {
        assert_eq!(document_lifetime(None), DEFAULT_DOCUMENT_LIFETIME);
        assert_eq!(document_lifetime(Some("no-store")), Duration::zero());
        assert_eq!(
            document_lifetime(Some("public, no-cache")),
            Duration::zero()
        );
        assert_eq!(document_lifetime(Some("max-age=0")), Duration::zero());
        assert_eq!(
            document_lifetime(Some("public, max-age=3600")),
            Duration::hours(1)
        );
        assert_eq!(document_lifetime(Some("max-age=5")), MIN_DOCUMENT_LIFETIME);
        assert_eq!(
            document_lifetime(Some("max-age=99999999")),
            MAX_DOCUMENT_LIFETIME
        );
        assert_eq!(
            document_lifetime(Some("max-age=abc")),
            DEFAULT_DOCUMENT_LIFETIME
        );
        assert_eq!(
            document_lifetime(Some("Max-Age=600")),
            Duration::minutes(10)
        );
    }
}
