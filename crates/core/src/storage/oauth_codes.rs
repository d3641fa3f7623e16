//! The `oauth_auth_codes` table: authorization codes, stored only as
//! hashes, bound to their grant, the redirect URI, the resource and the
//! PKCE challenge. Redemption is one statement that counts attempts
//! (`uses = uses + 1 … RETURNING`), so of two concurrent redemptions
//! exactly one sees the first use.

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{SqlExecutor, Statement, StorageError, from_unix, query_one};
use crate::authorization::tokens::CodeRecord;

/// A code about to be stored (with its grant, in the consent batch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCode<'a> {
    pub code_hash: &'a str,
    pub grant_id: &'a str,
    pub client_id: &'a str,
    pub redirect_uri: Option<&'a str>,
    pub resource: &'a str,
    pub scope: &'a str,
    pub code_challenge: &'a str,
    pub expires_at: DateTime<Utc>,
}

pub fn insert_statement(code: &NewCode<'_>, now: DateTime<Utc>) -> Statement {
    Statement::new(
        "INSERT INTO oauth_auth_codes (code_hash, grant_id, client_id, redirect_uri, resource,
            scope, code_challenge, created_at, expires_at, uses)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0)",
        vec![
            code.code_hash.into(),
            code.grant_id.into(),
            code.client_id.into(),
            code.redirect_uri.into(),
            code.resource.into(),
            code.scope.into(),
            code.code_challenge.into(),
            now.into(),
            code.expires_at.into(),
        ],
    )
}

#[derive(Deserialize)]
struct Row {
    grant_id: String,
    client_id: String,
    redirect_uri: Option<String>,
    resource: String,
    scope: String,
    code_challenge: String,
    expires_at: i64,
    uses: i64,
}

/// The counting statement of [`redeem`].
pub fn redeem_statement(code_hash: &str) -> Statement {
    Statement::new(
        "UPDATE oauth_auth_codes SET uses = uses + 1 WHERE code_hash = ?
         RETURNING grant_id, client_id, redirect_uri, resource, scope, code_challenge,
            expires_at, uses",
        vec![code_hash.into()],
    )
}

/// Counts one redemption attempt of a code and returns the code as it is
/// after it (`uses` 1 for the first attempt). `None`: no such code.
pub async fn redeem(
    db: &impl SqlExecutor,
    code_hash: &str,
) -> Result<Option<CodeRecord>, StorageError> {
    let row: Option<Row> = query_one(db, redeem_statement(code_hash)).await?;
    row.map(|r| {
        Ok(CodeRecord {
            grant_id: r.grant_id,
            client_id: r.client_id,
            redirect_uri: r.redirect_uri,
            resource: r.resource,
            scope: r.scope,
            code_challenge: r.code_challenge,
            expires_at: from_unix(r.expires_at)?,
            uses: r.uses,
        })
    })
    .transpose()
}

/// Housekeeping: codes past their expiry (used or not).
pub fn purge_expired_statement(now: DateTime<Utc>) -> Statement {
    Statement::new(
        "DELETE FROM oauth_auth_codes WHERE expires_at < ?",
        vec![now.into()],
    )
}
