//! The `oauth_tokens` table: one row per issued token pair (opaque access
//! and refresh tokens, stored only as hashes). A refresh attempt is one
//! conditional statement that counts uses of the presented refresh token
//! and returns the row as it is after it ([`rotate`]); the pure
//! `authorization::tokens::decide_refresh` then says what that count
//! means, so two concurrent refreshes can never both be "the first".

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{SqlExecutor, Statement, StorageError, from_unix, query_one};
use crate::authorization::tokens::{AccessRecord, RefreshRecord};

/// A token pair about to be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTokens<'a> {
    pub id: &'a str,
    pub grant_id: &'a str,
    pub access_hash: &'a str,
    pub access_expires_at: DateTime<Utc>,
    pub refresh_hash: &'a str,
    pub refresh_expires_at: DateTime<Utc>,
}

/// Stores a token pair, only while its grant is live and activated: a
/// grant revoked between the decision and this write gets no tokens
/// (the caller checks that one row changed).
pub fn insert_statement(tokens: &NewTokens<'_>, now: DateTime<Utc>) -> Statement {
    Statement::new(
        "INSERT INTO oauth_tokens (id, grant_id, access_hash, access_expires_at, refresh_hash,
            refresh_expires_at, refresh_uses, refreshed_at, created_at)
         SELECT ?, ?, ?, ?, ?, ?, 0, NULL, ?
         WHERE EXISTS (SELECT 1 FROM oauth_grants
                       WHERE id = ? AND revoked_at IS NULL AND activated_at IS NOT NULL)",
        vec![
            tokens.id.into(),
            tokens.grant_id.into(),
            tokens.access_hash.into(),
            tokens.access_expires_at.into(),
            tokens.refresh_hash.into(),
            tokens.refresh_expires_at.into(),
            now.into(),
            tokens.grant_id.into(),
        ],
    )
}

#[derive(Deserialize)]
struct RefreshRow {
    id: String,
    grant_id: String,
    refresh_uses: i64,
    refreshed_at: Option<i64>,
    refresh_expires_at: i64,
}

/// The one conditional statement of [`rotate`].
pub fn rotate_statement(refresh_hash: &str, client_id: &str, now: DateTime<Utc>) -> Statement {
    Statement::new(
        "UPDATE oauth_tokens
         SET refresh_uses = refresh_uses + 1, refreshed_at = COALESCE(refreshed_at, ?)
         WHERE refresh_hash = ?
           AND grant_id IN (SELECT id FROM oauth_grants WHERE client_id = ? AND revoked_at IS NULL)
         RETURNING id, grant_id, refresh_uses, refreshed_at, refresh_expires_at",
        vec![now.into(), refresh_hash.into(), client_id.into()],
    )
}

/// Counts one use of a refresh token presented by `client_id`, in one
/// statement, and returns the row after it. Only a token of a live grant
/// of that client counts: another client presenting it (or a revoked
/// grant's token) finds nothing and cannot burn the real client's token.
pub async fn rotate(
    db: &impl SqlExecutor,
    refresh_hash: &str,
    client_id: &str,
    now: DateTime<Utc>,
) -> Result<Option<RefreshRecord>, StorageError> {
    let row: Option<RefreshRow> =
        query_one(db, rotate_statement(refresh_hash, client_id, now)).await?;
    row.map(|r| {
        Ok(RefreshRecord {
            token_id: r.id,
            grant_id: r.grant_id,
            uses: r.refresh_uses,
            first_used_at: r.refreshed_at.map(from_unix).transpose()?,
            expires_at: from_unix(r.refresh_expires_at)?,
        })
    })
    .transpose()
}

#[derive(Deserialize)]
struct GrantOfToken {
    grant_id: String,
    client_id: String,
}

/// The lookup of [`grant_of`].
pub fn grant_of_statement(token_hash: &str) -> Statement {
    Statement::new(
        "SELECT t.grant_id, g.client_id FROM oauth_tokens t
         JOIN oauth_grants g ON g.id = t.grant_id
         WHERE t.access_hash = ?1 OR t.refresh_hash = ?1
         LIMIT 1",
        vec![token_hash.into()],
    )
}

/// The grant a token (access or refresh, by hash) belongs to, with its
/// client: for revocation (RFC 7009).
pub async fn grant_of(
    db: &impl SqlExecutor,
    token_hash: &str,
) -> Result<Option<(String, String)>, StorageError> {
    let row: Option<GrantOfToken> = query_one(db, grant_of_statement(token_hash)).await?;
    Ok(row.map(|r| (r.grant_id, r.client_id)))
}

#[derive(Deserialize)]
struct AccessRow {
    grant_id: String,
    user_id: String,
    client_id: String,
    client_name: String,
    scope: String,
    resource: String,
    administration_ids: String,
    access_expires_at: i64,
    revoked_at: Option<i64>,
    last_used_at: i64,
}

/// The one query of [`find_access`].
pub fn find_access_statement(access_hash: &str) -> Statement {
    Statement::new(
        "SELECT t.grant_id, g.user_id, g.client_id, c.client_name, g.scope, g.resource,
            g.administration_ids, t.access_expires_at, g.revoked_at, g.last_used_at
         FROM oauth_tokens t
         JOIN oauth_grants g ON g.id = t.grant_id
         JOIN oauth_clients c ON c.client_id = g.client_id
         WHERE t.access_hash = ?",
        vec![access_hash.into()],
    )
}

/// What the resource server needs about an access token (by hash), in
/// one query: its grant, user, client, scope, resource, administrations,
/// expiry and revocation. `None`: unknown (or its grant was purged).
pub async fn find_access(
    db: &impl SqlExecutor,
    access_hash: &str,
) -> Result<Option<AccessRecord>, StorageError> {
    let row: Option<AccessRow> = query_one(db, find_access_statement(access_hash)).await?;
    access_record(row)
}

/// The rows of [`find_access_statement`] run in a batch.
pub fn decode_access(rows: Vec<super::Row>) -> Result<Option<AccessRecord>, StorageError> {
    let row: Option<AccessRow> = rows.into_iter().next().map(super::decode).transpose()?;
    access_record(row)
}

fn access_record(row: Option<AccessRow>) -> Result<Option<AccessRecord>, StorageError> {
    row.map(|r| {
        Ok(AccessRecord {
            administration_ids: super::oauth_grants::decode_ids(&r.administration_ids)?,
            expires_at: from_unix(r.access_expires_at)?,
            revoked_at: r.revoked_at.map(from_unix).transpose()?,
            last_used_at: from_unix(r.last_used_at)?,
            grant_id: r.grant_id,
            user_id: r.user_id,
            client_id: r.client_id,
            client_name: r.client_name,
            scope: r.scope,
            resource: r.resource,
        })
    })
    .transpose()
}

/// Housekeeping: token pairs whose refresh token has lapsed (the access
/// token, shorter-lived, has then lapsed too). Spent refresh tokens stay
/// until then so that their reuse is recognised and revokes the grant.
pub fn purge_expired_statement(now: DateTime<Utc>) -> Statement {
    Statement::new(
        "DELETE FROM oauth_tokens WHERE refresh_expires_at < ?",
        vec![now.into()],
    )
}
