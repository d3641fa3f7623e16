//! Who is calling: `Authorization: Bearer <credential>` resolved to a
//! [`Principal`]. API keys today; the portal's OAuth access tokens plug in
//! beside them (another prefix, another lookup) without touching callers.

use boekhouding_core::crypto::{CredentialKind, is_well_formed};
use boekhouding_core::storage::usage::AuthKind;
use boekhouding_core::storage::{SqlExecutor, StorageError, api_keys, users};

use crate::tools::{Caller, Principal};

/// Why a request is not authenticated; both are answered 401 with a
/// `WWW-Authenticate` challenge naming the protected resource metadata.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no bearer credential")]
    Missing,
    /// Malformed, unknown, revoked, or belonging to an inactive user.
    #[error("invalid bearer credential")]
    Invalid,
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Resolves the `Authorization` header.
pub async fn authenticate(
    db: &impl SqlExecutor,
    authorization: Option<&str>,
) -> Result<Principal, AuthError> {
    let header = authorization.ok_or(AuthError::Missing)?.trim();
    let (scheme, credential) = header.split_once(' ').ok_or(AuthError::Invalid)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::Invalid);
    }
    let credential = credential.trim();
    if is_well_formed(CredentialKind::ApiKey, credential) {
        let key = api_keys::find_active_by_secret(db, credential)
            .await?
            .ok_or(AuthError::Invalid)?;
        let user = users::find_by_id(db, &key.user_id)
            .await?
            .ok_or(AuthError::Invalid)?;
        return Ok(Principal {
            user_id: user.id,
            plan: user.plan,
            caller: Caller::Customer(AuthKind::ApiKey { key_id: key.id }),
            client_name: None,
            request_id: None,
            granted: None,
        });
    }
    Err(AuthError::Invalid)
}

/// The `WWW-Authenticate` value for a 401.
pub fn challenge(resource_metadata_url: &str, error: &AuthError) -> String {
    let mut v =
        format!("Bearer resource_metadata=\"{resource_metadata_url}\", scope=\"mcp:tools\"");
    if matches!(error, AuthError::Invalid) {
        v.push_str(", error=\"invalid_token\"");
    }
    v
}
