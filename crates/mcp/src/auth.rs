//! Who is calling: `Authorization: Bearer <credential>` resolved to a
//! [`Principal`]. An API key (`pmjb_…`) reads the whole account; an OAuth
//! access token (`pmjb_at_…`, issued by the portal's authorization
//! server) reads only the administrations its grant names, and only when
//! it was issued for this resource with the scope tools need.

use boekhouding_core::authorization::metadata::{Challenge, McpResource, www_authenticate};
use boekhouding_core::authorization::{SCOPE_BOOKS_READ, tokens};
use boekhouding_core::caller::{self, Credential, LoadError, LoadRequest, LoadedCaller};
use boekhouding_core::crypto::{CredentialKind, is_well_formed};
use boekhouding_core::storage::usage::AuthKind;
use boekhouding_core::storage::{
    SqlExecutor, Statement, StorageError, api_keys, oauth_grants, users,
};
use chrono::{DateTime, Utc};

use crate::tools::{Caller, Principal};

/// Why a request is not let in; each is answered with a
/// `WWW-Authenticate` challenge naming the protected resource metadata.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no bearer credential")]
    Missing,
    /// Malformed, unknown, revoked, expired, issued for another resource,
    /// or belonging to an inactive user: 401.
    #[error("invalid bearer credential")]
    Invalid,
    /// A valid token without the scope this request needs: 403.
    #[error("the token lacks the scope {0}")]
    InsufficientScope(&'static str),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl AuthError {
    /// 401, or 403 for a missing scope.
    pub fn http_status(&self) -> u16 {
        match self {
            AuthError::InsufficientScope(_) => 403,
            _ => 401,
        }
    }
}

/// A let-in caller, and the write that records a grant's use (run after
/// the answer, off the latency path; `None` when it was recorded lately).
#[derive(Debug)]
pub struct Authenticated {
    pub principal: Principal,
    pub touch: Option<Statement>,
}

/// Resolves the `Authorization` header. `resource` is this server's MCP
/// URL: OAuth tokens are accepted only when issued for it (`None`: the
/// server is not configured as a resource server, and no OAuth token is).
pub async fn authenticate(
    db: &impl SqlExecutor,
    authorization: Option<&str>,
    resource: Option<&McpResource>,
    now: DateTime<Utc>,
) -> Result<Authenticated, AuthError> {
    let header = authorization.ok_or(AuthError::Missing)?.trim();
    let (scheme, credential) = header.split_once(' ').ok_or(AuthError::Invalid)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::Invalid);
    }
    let credential = credential.trim();
    if is_well_formed(CredentialKind::OAuthAccessToken, credential) {
        let record = tokens::lookup_access(db, credential)
            .await?
            .ok_or(AuthError::Invalid)?;
        let resource = resource.ok_or(AuthError::Invalid)?;
        record
            .check(resource, SCOPE_BOOKS_READ, now)
            .map_err(|c| match c {
                Challenge::InsufficientScope(_) => AuthError::InsufficientScope(SCOPE_BOOKS_READ),
                Challenge::Missing | Challenge::InvalidToken => AuthError::Invalid,
            })?;
        let user = users::find_by_id(db, &record.user_id)
            .await?
            .ok_or(AuthError::Invalid)?;
        let touch = record
            .needs_touch(now)
            .then(|| oauth_grants::touch_statement(&record.grant_id, now));
        return Ok(Authenticated {
            principal: Principal {
                user_id: user.id,
                plan: user.plan,
                caller: Caller::Customer(AuthKind::OAuth {
                    client_id: record.client_id,
                }),
                client_name: Some(record.client_name),
                request_id: None,
                granted: Some(record.administration_ids),
            },
            touch,
        });
    }
    if is_well_formed(CredentialKind::ApiKey, credential) {
        let key = api_keys::find_active_by_secret(db, credential)
            .await?
            .ok_or(AuthError::Invalid)?;
        let user = users::find_by_id(db, &key.user_id)
            .await?
            .ok_or(AuthError::Invalid)?;
        return Ok(Authenticated {
            principal: Principal {
                user_id: user.id,
                plan: user.plan,
                caller: Caller::Customer(AuthKind::ApiKey { key_id: key.id }),
                client_name: None,
                request_id: None,
                granted: None,
            },
            touch: None,
        });
    }
    Err(AuthError::Invalid)
}

/// Resolves the `Authorization` header and loads the caller in the one
/// database round trip of a customer request (`core::caller`): the
/// credential checked, the plan, connections and administrations read and,
/// when `meter` (a `tools/call` of a catalogue tool), the month's meter
/// taken. The answers are those of [`authenticate`].
pub async fn load(
    db: &impl SqlExecutor,
    authorization: Option<&str>,
    resource: Option<&McpResource>,
    now: DateTime<Utc>,
    meter: bool,
) -> Result<(Principal, LoadedCaller), AuthError> {
    let header = authorization.ok_or(AuthError::Missing)?.trim();
    let (scheme, credential) = header.split_once(' ').ok_or(AuthError::Invalid)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::Invalid);
    }
    let loaded = caller::load_caller(
        db,
        LoadRequest {
            credential: credential.trim(),
            resource,
            now,
            meter,
        },
    )
    .await
    .map_err(|e| match e {
        LoadError::Invalid => AuthError::Invalid,
        LoadError::InsufficientScope(s) => AuthError::InsufficientScope(s),
        LoadError::Storage(s) => AuthError::Storage(s),
    })?;
    let (auth, client_name, granted) = match &loaded.credential {
        Credential::ApiKey { key_id, .. } => (
            AuthKind::ApiKey {
                key_id: key_id.clone(),
            },
            None,
            None,
        ),
        Credential::OAuth(record) => (
            AuthKind::OAuth {
                client_id: record.client_id.clone(),
            },
            Some(record.client_name.clone()),
            Some(record.administration_ids.clone()),
        ),
    };
    let principal = Principal {
        user_id: loaded.user_id.clone(),
        plan: loaded.plan,
        caller: Caller::Customer(auth),
        client_name,
        request_id: None,
        granted,
    };
    Ok((principal, loaded))
}

/// The `WWW-Authenticate` value for a refusal (RFC 6750 §3, with RFC
/// 9728's `resource_metadata` and the scope needed).
pub fn challenge(resource: &McpResource, error: &AuthError) -> String {
    www_authenticate(
        resource,
        match error {
            AuthError::Missing | AuthError::Storage(_) => Challenge::Missing,
            AuthError::Invalid => Challenge::InvalidToken,
            AuthError::InsufficientScope(s) => Challenge::InsufficientScope(s),
        },
    )
}
