//! Grants, codes and tokens: the token endpoint's decisions as pure
//! functions ([`exchange_code`], [`decide_refresh`],
//! [`AccessRecord::check`]) and the flows that run them over storage
//! ([`approve`], [`redeem_code`], [`refresh`], [`revoke`],
//! [`lookup_access`]).
//!
//! Single use is decided by the database, not by a read followed by a
//! write: redeeming a code or a refresh token is one statement that
//! counts the attempt and returns the count (`storage::oauth_codes::
//! redeem`, `storage::oauth_tokens::rotate`); the pure functions here
//! only interpret that count, so concurrent requests cannot both win.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::authorize::{AuthorizationRequest, success_redirect_url};
use super::metadata::{Challenge, Issuer, McpResource};
use super::{
    ACCESS_TOKEN_LIFETIME, CODE_LIFETIME, OAuthError, REFRESH_GRACE, REFRESH_TOKEN_IDLE,
    pkce_matches, scope_includes,
};
use crate::crypto::{CredentialKind, Secret, hash_credential, is_well_formed, issue_credential};
use crate::ports::Randomness;
use crate::storage::{
    SqlExecutor, StorageError, new_id, oauth_clients, oauth_codes, oauth_grants, oauth_tokens,
};

// ---------------------------------------------------------------------------
// Pure decisions

/// A code as it is after one redemption attempt was counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeRecord {
    pub grant_id: String,
    pub client_id: String,
    /// The `redirect_uri` of the authorization request, if it had one.
    pub redirect_uri: Option<String>,
    pub resource: String,
    pub scope: String,
    pub code_challenge: String,
    pub expires_at: DateTime<Utc>,
    /// Attempts so far, this one included (1 = the first).
    pub uses: i64,
}

/// The token request of the authorization code grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodeExchange<'a> {
    pub client_id: &'a str,
    pub redirect_uri: Option<&'a str>,
    pub code_verifier: Option<&'a str>,
    pub resource: Option<&'a str>,
}

/// What a code redemption must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeDecision {
    /// Activate the grant and issue a token pair.
    Issue,
    /// The code was used before: revoke the grant it produced and answer
    /// `invalid_grant` (RFC 6749 §4.1.2, OAuth 2.1 §4.1.3).
    Replay,
    /// Answer with this error; nothing is issued or revoked.
    Refuse(OAuthError),
}

/// Decides a code redemption: first use only, not expired, the same
/// client, the same redirect URI as the authorization request (when it
/// named one), a verifier that answers the S256 challenge, and (if
/// named) the same resource.
pub fn exchange_code(
    record: &CodeRecord,
    request: &CodeExchange<'_>,
    resource: &McpResource,
    now: DateTime<Utc>,
) -> CodeDecision {
    if record.uses != 1 {
        return CodeDecision::Replay;
    }
    if now >= record.expires_at {
        return CodeDecision::Refuse(OAuthError::InvalidGrant("the code has expired"));
    }
    if request.client_id != record.client_id {
        return CodeDecision::Refuse(OAuthError::InvalidGrant(
            "the code was issued to another client",
        ));
    }
    // RFC 6749 §4.1.3: required and identical if the authorization request
    // carried one. If it did not, the code went to the client's only
    // registered URI, and whatever the token request repeats is harmless.
    if record.redirect_uri.is_some() && request.redirect_uri != record.redirect_uri.as_deref() {
        return CodeDecision::Refuse(OAuthError::InvalidGrant(
            "redirect_uri differs from the authorization request",
        ));
    }
    let Some(verifier) = request.code_verifier else {
        return CodeDecision::Refuse(OAuthError::InvalidRequest("code_verifier is required"));
    };
    if !pkce_matches(verifier, &record.code_challenge) {
        return CodeDecision::Refuse(OAuthError::InvalidGrant(
            "code_verifier does not match the code_challenge",
        ));
    }
    if let Some(asked) = request.resource
        && !(resource.matches(asked) && resource.as_str() == record.resource)
    {
        return CodeDecision::Refuse(OAuthError::InvalidTarget(
            "resource differs from the one authorized",
        ));
    }
    CodeDecision::Issue
}

/// A refresh token's row as it is after one use was counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshRecord {
    pub token_id: String,
    pub grant_id: String,
    /// Uses so far, this one included (1 = the first).
    pub uses: i64,
    /// When it was first used (set by the first use).
    pub first_used_at: Option<DateTime<Utc>>,
    pub expires_at: DateTime<Utc>,
}

/// What a refresh must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshDecision {
    /// First use: issue a new pair (the token is now spent).
    Rotate,
    /// The one tolerated replay of a just-rotated token, within
    /// [`REFRESH_GRACE`] of its first use: issue another valid pair.
    GraceReplay,
    /// Lapsed: `invalid_grant`, nothing revoked.
    Expired,
    /// Reuse beyond the grace (or a second replay): revoke the grant and
    /// answer `invalid_grant`.
    Reuse,
}

impl RefreshDecision {
    pub fn issues_tokens(self) -> bool {
        matches!(self, RefreshDecision::Rotate | RefreshDecision::GraceReplay)
    }
}

/// Decides a refresh from the counted row. A token yields tokens at most
/// twice: its first use, and one replay within the grace.
pub fn decide_refresh(record: &RefreshRecord, now: DateTime<Utc>) -> RefreshDecision {
    if now >= record.expires_at {
        return RefreshDecision::Expired;
    }
    match (record.uses, record.first_used_at) {
        (1, _) => RefreshDecision::Rotate,
        (2, Some(first)) if now >= first && now - first <= REFRESH_GRACE => {
            RefreshDecision::GraceReplay
        }
        _ => RefreshDecision::Reuse,
    }
}

/// What the resource server knows about an access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRecord {
    pub grant_id: String,
    pub user_id: String,
    pub client_id: String,
    /// Untrusted text from the client.
    pub client_name: String,
    pub scope: String,
    pub resource: String,
    /// The administrations the user chose for this client; intersect with
    /// the user's active administrations on every call.
    pub administration_ids: Vec<String>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: DateTime<Utc>,
}

/// How often a grant's `last_used_at` is written from the resource
/// server (not on every call).
pub const TOUCH_EVERY: chrono::Duration = chrono::Duration::minutes(5);

impl AccessRecord {
    /// Whether the token may be used on `resource` for `needed_scope`:
    /// expired, revoked or another audience → 401 `invalid_token`; a
    /// missing scope → 403 `insufficient_scope`.
    pub fn check<'a>(
        &self,
        resource: &McpResource,
        needed_scope: &'a str,
        now: DateTime<Utc>,
    ) -> Result<(), Challenge<'a>> {
        if self.revoked_at.is_some() || now >= self.expires_at || self.resource != resource.as_str()
        {
            return Err(Challenge::InvalidToken);
        }
        if !scope_includes(&self.scope, needed_scope) {
            return Err(Challenge::InsufficientScope(needed_scope));
        }
        Ok(())
    }

    /// Whether the resource server should record a use now
    /// (`storage::oauth_grants::touch_statement`).
    pub fn needs_touch(&self, now: DateTime<Utc>) -> bool {
        now - self.last_used_at >= TOUCH_EVERY
    }
}

// ---------------------------------------------------------------------------
// Flows over storage

/// A token endpoint answer (RFC 6749 §5.1). Serve it with
/// `Cache-Control: no-store`.
#[derive(Debug)]
pub struct TokenResponse {
    pub access_token: Secret,
    pub refresh_token: Secret,
    pub expires_in: i64,
    pub scope: String,
}

impl TokenResponse {
    pub fn to_json(&self) -> Value {
        json!({
            "access_token": self.access_token.expose(),
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "refresh_token": self.refresh_token.expose(),
            "scope": self.scope,
        })
    }
}

fn no_randomness<E>(_: E) -> OAuthError {
    OAuthError::ServerError("the server could not complete the request")
}

/// The administrations a grant may read: the ones the user ticked, which
/// must be among their active administrations, at least one.
pub fn choose_administrations(
    chosen: &[String],
    active: &[String],
) -> Result<Vec<String>, OAuthError> {
    let mut picked: Vec<String> = Vec::new();
    for id in chosen {
        if !active.contains(id) {
            return Err(OAuthError::InvalidRequest(
                "an administration that is not active was chosen",
            ));
        }
        if !picked.contains(id) {
            picked.push(id.clone());
        }
    }
    if picked.is_empty() {
        return Err(OAuthError::InvalidRequest(
            "choose at least one administration",
        ));
    }
    Ok(picked)
}

/// The user approved on the consent page: stores the grant (not yet
/// activated) and a code for it in one batch, and returns the success
/// redirect URL (`code`, `state`, `iss`). `administration_ids` must come
/// from [`choose_administrations`].
pub async fn approve(
    db: &impl SqlExecutor,
    rng: &impl Randomness,
    request: &AuthorizationRequest,
    user_id: &str,
    administration_ids: &[String],
    issuer: &Issuer,
    now: DateTime<Utc>,
) -> Result<String, OAuthError> {
    let grant_id = new_id(rng).map_err(no_randomness)?;
    let code = issue_credential(rng, CredentialKind::OAuthCode).map_err(no_randomness)?;
    db.batch(vec![
        oauth_grants::insert_statement(
            &oauth_grants::NewGrant {
                id: &grant_id,
                client_id: &request.client_id,
                user_id,
                resource: &request.resource,
                scope: &request.scope,
                administration_ids,
            },
            now,
        ),
        oauth_codes::insert_statement(
            &oauth_codes::NewCode {
                code_hash: &code.hash,
                grant_id: &grant_id,
                client_id: &request.client_id,
                redirect_uri: request
                    .redirect_uri_given
                    .then_some(request.redirect_uri.as_str()),
                resource: &request.resource,
                scope: &request.scope,
                code_challenge: &request.code_challenge,
                expires_at: now + CODE_LIFETIME,
            },
            now,
        ),
        oauth_clients::touch_statement(&request.client_id, now),
    ])
    .await?;
    Ok(success_redirect_url(request, code.secret.expose(), issuer))
}

/// Issues a token pair under a grant (which must be live and activated;
/// otherwise `invalid_grant`), marking grant and client used.
async fn issue_pair(
    db: &impl SqlExecutor,
    rng: &impl Randomness,
    grant_id: &str,
    client_id: &str,
    scope: &str,
    activate: bool,
    now: DateTime<Utc>,
) -> Result<TokenResponse, OAuthError> {
    let id = new_id(rng).map_err(no_randomness)?;
    let access = issue_credential(rng, CredentialKind::OAuthAccessToken).map_err(no_randomness)?;
    let refresh =
        issue_credential(rng, CredentialKind::OAuthRefreshToken).map_err(no_randomness)?;
    let mut statements = Vec::new();
    if activate {
        statements.push(oauth_grants::activate_statement(grant_id, now));
    } else {
        statements.push(oauth_grants::touch_statement(grant_id, now));
    }
    statements.push(oauth_tokens::insert_statement(
        &oauth_tokens::NewTokens {
            id: &id,
            grant_id,
            access_hash: &access.hash,
            access_expires_at: now + ACCESS_TOKEN_LIFETIME,
            refresh_hash: &refresh.hash,
            refresh_expires_at: now + REFRESH_TOKEN_IDLE,
        },
        now,
    ));
    statements.push(oauth_clients::touch_statement(client_id, now));
    let done = db.batch(statements).await?;
    if done.get(1).is_none_or(|d| d.changes != 1) {
        // The grant was revoked (a replay, the user) before the write.
        return Err(OAuthError::InvalidGrant("the grant has been revoked"));
    }
    Ok(TokenResponse {
        access_token: access.secret,
        refresh_token: refresh.secret,
        expires_in: ACCESS_TOKEN_LIFETIME.num_seconds(),
        scope: scope.to_owned(),
    })
}

/// `grant_type=authorization_code`: redeems a code (counted in one
/// statement), decides with [`exchange_code`], and activates the grant
/// with a first token pair, or revokes the grant on a replay.
pub async fn redeem_code(
    db: &impl SqlExecutor,
    rng: &impl Randomness,
    code: &str,
    request: &CodeExchange<'_>,
    resource: &McpResource,
    now: DateTime<Utc>,
) -> Result<TokenResponse, OAuthError> {
    const UNKNOWN: OAuthError = OAuthError::InvalidGrant("the code is invalid, expired or used");
    if !is_well_formed(CredentialKind::OAuthCode, code) {
        return Err(UNKNOWN);
    }
    let Some(record) = oauth_codes::redeem(db, &hash_credential(code)).await? else {
        return Err(UNKNOWN);
    };
    match exchange_code(&record, request, resource, now) {
        CodeDecision::Issue => {
            issue_pair(
                db,
                rng,
                &record.grant_id,
                &record.client_id,
                &record.scope,
                true,
                now,
            )
            .await
        }
        CodeDecision::Replay => {
            oauth_grants::revoke(db, &record.grant_id, now).await?;
            Err(UNKNOWN)
        }
        CodeDecision::Refuse(e) => Err(e),
    }
}

/// `grant_type=refresh_token`: counts the use in one statement
/// ([`oauth_tokens::rotate`]), decides with [`decide_refresh`], and issues
/// a new pair, or revokes the grant on reuse. A `resource`, when named,
/// must be this server's.
pub async fn refresh(
    db: &impl SqlExecutor,
    rng: &impl Randomness,
    refresh_token: &str,
    client_id: &str,
    requested_resource: Option<&str>,
    resource: &McpResource,
    now: DateTime<Utc>,
) -> Result<TokenResponse, OAuthError> {
    const UNKNOWN: OAuthError =
        OAuthError::InvalidGrant("the refresh token is invalid, expired or revoked");
    if requested_resource.is_some_and(|r| !resource.matches(r)) {
        return Err(OAuthError::InvalidTarget("resource is not this server"));
    }
    if !is_well_formed(CredentialKind::OAuthRefreshToken, refresh_token) {
        return Err(UNKNOWN);
    }
    let Some(record) =
        oauth_tokens::rotate(db, &hash_credential(refresh_token), client_id, now).await?
    else {
        return Err(UNKNOWN);
    };
    match decide_refresh(&record, now) {
        RefreshDecision::Rotate | RefreshDecision::GraceReplay => {
            let grant = oauth_grants::find(db, &record.grant_id)
                .await?
                .filter(|g| g.revoked_at.is_none())
                .ok_or(UNKNOWN)?;
            issue_pair(
                db,
                rng,
                &grant.id,
                &grant.client_id,
                &grant.scope,
                false,
                now,
            )
            .await
        }
        RefreshDecision::Expired => Err(UNKNOWN),
        RefreshDecision::Reuse => {
            oauth_grants::revoke(db, &record.grant_id, now).await?;
            Err(UNKNOWN)
        }
    }
}

/// RFC 7009 revocation of an access or refresh token: revokes the whole
/// grant (both kinds of token, every pair). Unknown or malformed tokens,
/// and tokens of another client, change nothing and still succeed, as
/// the RFC asks (nothing is learnt by probing).
pub async fn revoke(
    db: &impl SqlExecutor,
    token: &str,
    client_id: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), StorageError> {
    let shaped = is_well_formed(CredentialKind::OAuthAccessToken, token)
        || is_well_formed(CredentialKind::OAuthRefreshToken, token);
    if !shaped {
        return Ok(());
    }
    if let Some((grant_id, owner)) = oauth_tokens::grant_of(db, &hash_credential(token)).await?
        && client_id.is_none_or(|c| c == owner)
    {
        oauth_grants::revoke(db, &grant_id, now).await?;
    }
    Ok(())
}

/// The resource server's lookup of a presented bearer token. `None` for
/// anything that is not a known access token (an API key is checked by
/// its own prefix first). Check the record with [`AccessRecord::check`].
pub async fn lookup_access(
    db: &impl SqlExecutor,
    presented: &str,
) -> Result<Option<AccessRecord>, StorageError> {
    if !is_well_formed(CredentialKind::OAuthAccessToken, presented) {
        return Ok(None);
    }
    oauth_tokens::find_access(db, &hash_credential(presented)).await
}

// ---------------------------------------------------------------------------
// Endpoints: form in, answer out

/// A token request, parsed from its `application/x-www-form-urlencoded`
/// body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenRequest {
    AuthorizationCode {
        code: String,
        client_id: String,
        redirect_uri: Option<String>,
        code_verifier: Option<String>,
        resource: Option<String>,
    },
    RefreshToken {
        refresh_token: String,
        client_id: String,
        resource: Option<String>,
    },
}

/// Reads a form body into its parameters, refusing a parameter sent twice
/// (RFC 6749 §3.2).
fn form_params(body: &str) -> Result<std::collections::BTreeMap<String, String>, OAuthError> {
    let mut params = std::collections::BTreeMap::new();
    for (k, v) in form_urlencoded::parse(body.as_bytes()) {
        if params.insert(k.into_owned(), v.into_owned()).is_some() {
            return Err(OAuthError::InvalidRequest(
                "a parameter was sent more than once",
            ));
        }
    }
    Ok(params)
}

impl TokenRequest {
    /// Parses a token endpoint body. Public clients identify themselves
    /// with `client_id` in the body (OAuth 2.1 §3.2.1).
    pub fn from_form(body: &str) -> Result<Self, OAuthError> {
        let mut p = form_params(body)?;
        let client_id = p
            .remove("client_id")
            .filter(|c| !c.is_empty())
            .ok_or(OAuthError::InvalidClient("client_id is required"))?;
        match p.remove("grant_type").as_deref() {
            Some("authorization_code") => Ok(TokenRequest::AuthorizationCode {
                code: p
                    .remove("code")
                    .ok_or(OAuthError::InvalidRequest("code is required"))?,
                client_id,
                redirect_uri: p.remove("redirect_uri"),
                code_verifier: p.remove("code_verifier"),
                resource: p.remove("resource"),
            }),
            Some("refresh_token") => Ok(TokenRequest::RefreshToken {
                refresh_token: p
                    .remove("refresh_token")
                    .ok_or(OAuthError::InvalidRequest("refresh_token is required"))?,
                client_id,
                resource: p.remove("resource"),
            }),
            None => Err(OAuthError::InvalidRequest("grant_type is required")),
            Some(_) => Err(OAuthError::UnsupportedGrantType(
                "only authorization_code and refresh_token are supported",
            )),
        }
    }

    pub fn client_id(&self) -> &str {
        match self {
            TokenRequest::AuthorizationCode { client_id, .. }
            | TokenRequest::RefreshToken { client_id, .. } => client_id,
        }
    }
}

/// The token endpoint: parse, check the client exists (an unknown one is
/// 401 `invalid_client`, on which claude.ai registers again), then redeem
/// or refresh. Answer `Ok` with 200 and [`TokenResponse::to_json`], `Err`
/// with [`OAuthError::http_status`] and [`OAuthError::to_json`], both with
/// `Cache-Control: no-store`.
pub async fn token_endpoint(
    db: &impl SqlExecutor,
    rng: &impl Randomness,
    body: &str,
    resource: &McpResource,
    now: DateTime<Utc>,
) -> Result<TokenResponse, OAuthError> {
    let request = TokenRequest::from_form(body)?;
    if oauth_clients::find(db, request.client_id())
        .await?
        .is_none()
    {
        return Err(OAuthError::InvalidClient("unknown client_id"));
    }
    match &request {
        TokenRequest::AuthorizationCode {
            code,
            client_id,
            redirect_uri,
            code_verifier,
            resource: asked,
        } => {
            let exchange = CodeExchange {
                client_id,
                redirect_uri: redirect_uri.as_deref(),
                code_verifier: code_verifier.as_deref(),
                resource: asked.as_deref(),
            };
            redeem_code(db, rng, code, &exchange, resource, now).await
        }
        TokenRequest::RefreshToken {
            refresh_token,
            client_id,
            resource: asked,
        } => {
            refresh(
                db,
                rng,
                refresh_token,
                client_id,
                asked.as_deref(),
                resource,
                now,
            )
            .await
        }
    }
}

/// The revocation endpoint (RFC 7009): 200 with an empty body for any
/// well-formed request, whether or not the token was known.
pub async fn revocation_endpoint(
    db: &impl SqlExecutor,
    body: &str,
    now: DateTime<Utc>,
) -> Result<(), OAuthError> {
    let mut p = form_params(body)?;
    let token = p
        .remove("token")
        .ok_or(OAuthError::InvalidRequest("token is required"))?;
    revoke(db, &token, p.get("client_id").map(String::as_str), now).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};
    use proptest::prelude::*;

    use super::*;
    use crate::authorization::s256_challenge;

    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).unwrap()
    }

    fn resource() -> McpResource {
        McpResource::parse("https://mcp.example/mcp").unwrap()
    }

    fn code(uses: i64) -> CodeRecord {
        CodeRecord {
            grant_id: "g".into(),
            client_id: "c".into(),
            redirect_uri: Some("https://claude.ai/api/mcp/auth_callback".into()),
            resource: "https://mcp.example/mcp".into(),
            scope: "books:read".into(),
            code_challenge: s256_challenge(VERIFIER),
            expires_at: t0() + CODE_LIFETIME,
            uses,
        }
    }

    fn exchange() -> CodeExchange<'static> {
        CodeExchange {
            client_id: "c",
            redirect_uri: Some("https://claude.ai/api/mcp/auth_callback"),
            code_verifier: Some(VERIFIER),
            resource: Some("https://mcp.example/mcp/"),
        }
    }

    #[test]
    fn a_code_is_exchanged_once_by_its_client_with_its_verifier() {
        assert_eq!(
            exchange_code(&code(1), &exchange(), &resource(), t0()),
            CodeDecision::Issue
        );
        assert_eq!(
            exchange_code(&code(2), &exchange(), &resource(), t0()),
            CodeDecision::Replay
        );
        let refused = |e: CodeExchange<'_>, now| match exchange_code(&code(1), &e, &resource(), now)
        {
            CodeDecision::Refuse(err) => err.code(),
            other => panic!("{other:?}"),
        };
        assert_eq!(refused(exchange(), t0() + CODE_LIFETIME), "invalid_grant");
        assert_eq!(
            refused(
                CodeExchange {
                    client_id: "d",
                    ..exchange()
                },
                t0()
            ),
            "invalid_grant"
        );
        assert_eq!(
            refused(
                CodeExchange {
                    redirect_uri: None,
                    ..exchange()
                },
                t0()
            ),
            "invalid_grant"
        );
        assert_eq!(
            refused(
                CodeExchange {
                    redirect_uri: Some("http://127.0.0.1:9/cb"),
                    ..exchange()
                },
                t0()
            ),
            "invalid_grant"
        );
        assert_eq!(
            refused(
                CodeExchange {
                    code_verifier: None,
                    ..exchange()
                },
                t0()
            ),
            "invalid_request"
        );
        let other = "a".repeat(43);
        assert_eq!(
            refused(
                CodeExchange {
                    code_verifier: Some(&other),
                    ..exchange()
                },
                t0()
            ),
            "invalid_grant"
        );
        let plain = code(1).code_challenge;
        assert_eq!(
            refused(
                CodeExchange {
                    code_verifier: Some(&plain),
                    ..exchange()
                },
                t0()
            ),
            "invalid_grant"
        );
        assert_eq!(
            refused(
                CodeExchange {
                    resource: Some("https://other.example/mcp"),
                    ..exchange()
                },
                t0()
            ),
            "invalid_target"
        );
        assert_eq!(
            exchange_code(
                &code(1),
                &CodeExchange {
                    resource: None,
                    ..exchange()
                },
                &resource(),
                t0()
            ),
            CodeDecision::Issue
        );
    }

    fn refresh_record(uses: i64, first_used_at: Option<DateTime<Utc>>) -> RefreshRecord {
        RefreshRecord {
            token_id: "t".into(),
            grant_id: "g".into(),
            uses,
            first_used_at,
            expires_at: t0() + REFRESH_TOKEN_IDLE,
        }
    }

    #[test]
    fn a_refresh_token_rotates_then_tolerates_one_replay_in_the_grace() {
        let first = Some(t0());
        assert_eq!(
            decide_refresh(&refresh_record(1, first), t0()),
            RefreshDecision::Rotate
        );
        assert_eq!(
            decide_refresh(&refresh_record(2, first), t0() + REFRESH_GRACE),
            RefreshDecision::GraceReplay
        );
        assert_eq!(
            decide_refresh(
                &refresh_record(2, first),
                t0() + REFRESH_GRACE + Duration::seconds(1)
            ),
            RefreshDecision::Reuse
        );
        assert_eq!(
            decide_refresh(&refresh_record(3, first), t0() + Duration::seconds(1)),
            RefreshDecision::Reuse
        );
        assert_eq!(
            decide_refresh(&refresh_record(1, first), t0() + REFRESH_TOKEN_IDLE),
            RefreshDecision::Expired
        );
    }

    #[test]
    fn access_is_checked_for_expiry_revocation_audience_and_scope() {
        let record = AccessRecord {
            grant_id: "g".into(),
            user_id: "u".into(),
            client_id: "c".into(),
            client_name: "Claude".into(),
            scope: "books:read".into(),
            resource: "https://mcp.example/mcp".into(),
            administration_ids: vec!["a".into()],
            expires_at: t0() + ACCESS_TOKEN_LIFETIME,
            revoked_at: None,
            last_used_at: t0(),
        };
        assert_eq!(record.check(&resource(), "books:read", t0()), Ok(()));
        assert_eq!(
            record.check(&resource(), "books:write", t0()),
            Err(Challenge::InsufficientScope("books:write"))
        );
        assert_eq!(
            record.check(&resource(), "books:read", t0() + ACCESS_TOKEN_LIFETIME),
            Err(Challenge::InvalidToken)
        );
        let other = McpResource::parse("https://other.example/mcp").unwrap();
        assert_eq!(
            record.check(&other, "books:read", t0()),
            Err(Challenge::InvalidToken)
        );
        let revoked = AccessRecord {
            revoked_at: Some(t0()),
            ..record.clone()
        };
        assert_eq!(
            revoked.check(&resource(), "books:read", t0()),
            Err(Challenge::InvalidToken)
        );
        assert!(!record.needs_touch(t0() + Duration::minutes(1)));
        assert!(record.needs_touch(t0() + TOUCH_EVERY));
    }

    #[test]
    fn token_requests_are_parsed_strictly() {
        let code = TokenRequest::from_form(
            "grant_type=authorization_code&code=pmjb_c_x&client_id=c&redirect_uri=https%3A%2F%2Fa.example%2Fcb&code_verifier=v&resource=https%3A%2F%2Fmcp.example%2Fmcp",
        )
        .unwrap();
        assert_eq!(
            code,
            TokenRequest::AuthorizationCode {
                code: "pmjb_c_x".into(),
                client_id: "c".into(),
                redirect_uri: Some("https://a.example/cb".into()),
                code_verifier: Some("v".into()),
                resource: Some("https://mcp.example/mcp".into()),
            }
        );
        let err = |body: &str| TokenRequest::from_form(body).unwrap_err().code();
        assert_eq!(
            err("grant_type=client_credentials&client_id=c"),
            "unsupported_grant_type"
        );
        assert_eq!(
            err("grant_type=password&client_id=c"),
            "unsupported_grant_type"
        );
        assert_eq!(
            err("grant_type=refresh_token&refresh_token=a"),
            "invalid_client"
        );
        assert_eq!(err("client_id=c"), "invalid_request");
        assert_eq!(
            err("grant_type=refresh_token&client_id=c"),
            "invalid_request"
        );
        assert_eq!(
            err("grant_type=refresh_token&client_id=c&refresh_token=a&refresh_token=b"),
            "invalid_request"
        );
    }

    #[test]
    fn administrations_must_be_active_and_at_least_one() {
        let active = vec!["a".to_string(), "b".to_string()];
        assert_eq!(
            choose_administrations(&["b".into(), "b".into()], &active),
            Ok(vec!["b".to_string()])
        );
        assert!(choose_administrations(&[], &active).is_err());
        assert!(choose_administrations(&["z".into()], &active).is_err());
    }

    /// One refresh token under attack: attempts at arbitrary offsets. The
    /// database counts each attempt (uses = 1, 2, …) and records the
    /// first; this replays exactly that.
    fn run_attempts(offsets: &[i64], expires_in: i64) -> Vec<RefreshDecision> {
        let expires_at = t0() + Duration::seconds(expires_in);
        let mut first: Option<DateTime<Utc>> = None;
        let mut now = t0();
        offsets
            .iter()
            .enumerate()
            .map(|(i, step)| {
                now += Duration::seconds(*step);
                first.get_or_insert(now);
                decide_refresh(
                    &RefreshRecord {
                        token_id: "t".into(),
                        grant_id: "g".into(),
                        uses: i64::try_from(i).unwrap_or(i64::MAX) + 1,
                        first_used_at: first,
                        expires_at,
                    },
                    now,
                )
            })
            .collect()
    }

    proptest! {
        #[test]
        fn a_refresh_token_yields_tokens_at_most_twice(
            offsets in proptest::collection::vec(0i64..200, 1..12),
            expires_in in 0i64..400,
        ) {
            let decisions = run_attempts(&offsets, expires_in);
            let issued = decisions.iter().filter(|d| d.issues_tokens()).count();
            prop_assert!(issued <= 2);
            // Only the first use rotates; the grace replay can only be second.
            for (i, d) in decisions.iter().enumerate() {
                prop_assert!(*d != RefreshDecision::Rotate || i == 0);
                prop_assert!(*d != RefreshDecision::GraceReplay || i == 1);
            }
        }

        #[test]
        fn an_expired_refresh_token_never_yields_tokens(
            uses in 1i64..5,
            since_first in 0i64..120,
            past_expiry in 0i64..1_000_000,
        ) {
            let expires_at = t0();
            let now = expires_at + Duration::seconds(past_expiry);
            let record = RefreshRecord {
                token_id: "t".into(),
                grant_id: "g".into(),
                uses,
                first_used_at: Some(now - Duration::seconds(since_first)),
                expires_at,
            };
            prop_assert_eq!(decide_refresh(&record, now), RefreshDecision::Expired);
        }

        #[test]
        fn a_code_never_works_twice_nor_after_expiry(
            uses in 1i64..6,
            at in 0i64..180,
            same_client in any::<bool>(),
            right_verifier in any::<bool>(),
        ) {
            let now = t0() + Duration::seconds(at);
            let wrong = "b".repeat(43);
            let request = CodeExchange {
                client_id: if same_client { "c" } else { "x" },
                code_verifier: Some(if right_verifier { VERIFIER } else { wrong.as_str() }),
                ..exchange()
            };
            let decision = exchange_code(&code(uses), &request, &resource(), now);
            if decision == CodeDecision::Issue {
                prop_assert_eq!(uses, 1);
                prop_assert!(now < t0() + CODE_LIFETIME);
                prop_assert!(same_client && right_verifier);
            }
            if uses > 1 {
                prop_assert_eq!(decision, CodeDecision::Replay);
            }
        }

        #[test]
        fn a_revoked_or_expired_grant_never_grants_access(
            revoked in any::<bool>(),
            at in 0i64..7_200,
        ) {
            let now = t0() + Duration::seconds(at);
            let record = AccessRecord {
                grant_id: "g".into(),
                user_id: "u".into(),
                client_id: "c".into(),
                client_name: "n".into(),
                scope: "books:read".into(),
                resource: "https://mcp.example/mcp".into(),
                administration_ids: vec![],
                expires_at: t0() + ACCESS_TOKEN_LIFETIME,
                revoked_at: revoked.then_some(t0()),
                last_used_at: t0(),
            };
            let ok = record.check(&resource(), "books:read", now).is_ok();
            prop_assert_eq!(ok, !revoked && now < record.expires_at);
        }
    }
}
