//! Who is calling: `Authorization: Bearer <credential>` resolved to a
//! [`Principal`]. An API key (`pmjb_…`) reads the whole account; an OAuth
//! access token (`pmjb_at_…`, issued by the portal's authorization
//! server) reads only the administrations its grant names, and only when
//! it was issued for this resource with the scope tools need.

use boekhouding_core::authorization::metadata::{Challenge, McpResource, www_authenticate};
use boekhouding_core::caller::{self, Credential, LoadError, LoadRequest, LoadedCaller};
use boekhouding_core::storage::usage::AuthKind;
use boekhouding_core::storage::{SqlExecutor, StorageError, api_keys};
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
    /// A live API key beyond the plan's key cap (a smaller plan stops the
    /// newest keys): 403, saying why.
    #[error("this API key is beyond the plan's {0} keys")]
    KeyBeyondPlan(u32),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl AuthError {
    /// 401, or 403 for a missing scope.
    pub fn http_status(&self) -> u16 {
        match self {
            AuthError::InsufficientScope(_) | AuthError::KeyBeyondPlan(_) => 403,
            _ => 401,
        }
    }
}

/// Resolves the `Authorization` header and loads the caller in the one
/// database round trip of a customer request (`core::caller`): the
/// credential checked, the plan, connections and administrations read and,
/// when `meter` (a `tools/call` of a catalogue tool), the month's meter
/// taken. Nothing about a credential is cached: a revoked one is refused
/// on the next request.
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
    let loaded = match caller::load_caller(
        db,
        LoadRequest {
            credential: credential.trim(),
            resource,
            now,
            meter,
        },
    )
    .await
    {
        Ok(loaded) => loaded,
        // A refused key costs one more statement to say why, when the
        // reason is the plan (never for an unknown or revoked key).
        Err(LoadError::Invalid) => {
            return Err(
                match api_keys::beyond_plan_cap(db, credential.trim()).await? {
                    Some(cap) => AuthError::KeyBeyondPlan(cap),
                    None => AuthError::Invalid,
                },
            );
        }
        Err(LoadError::InsufficientScope(s)) => return Err(AuthError::InsufficientScope(s)),
        Err(LoadError::Storage(s)) => return Err(AuthError::Storage(s)),
    };
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
            // A key beyond the plan is not a token problem: the plain
            // challenge (the body says why).
            AuthError::Missing | AuthError::Storage(_) | AuthError::KeyBeyondPlan(_) => {
                Challenge::Missing
            }
            AuthError::Invalid => Challenge::InvalidToken,
            AuthError::InsufficientScope(s) => Challenge::InsufficientScope(s),
        },
    )
}
