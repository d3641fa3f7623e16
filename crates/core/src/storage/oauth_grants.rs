//! The `oauth_grants` table: what a user approved for an MCP client (the
//! client, the resource, the scope and the administrations it may read).
//! Codes and tokens hang off a grant; revoking one deletes them in the
//! same batch, and deleting the user cascades to all of it.

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{SqlExecutor, Statement, StorageError, from_unix, query_all};

/// A new grant, written on consent (not yet activated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewGrant<'a> {
    pub id: &'a str,
    pub client_id: &'a str,
    pub user_id: &'a str,
    pub resource: &'a str,
    pub scope: &'a str,
    pub administration_ids: &'a [String],
}

pub fn insert_statement(grant: &NewGrant<'_>, now: DateTime<Utc>) -> Statement {
    Statement::new(
        "INSERT INTO oauth_grants (id, client_id, user_id, resource, scope, administration_ids,
            created_at, activated_at, last_used_at, revoked_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?, NULL)",
        vec![
            grant.id.into(),
            grant.client_id.into(),
            grant.user_id.into(),
            grant.resource.into(),
            grant.scope.into(),
            serde_json::Value::from(grant.administration_ids.to_vec())
                .to_string()
                .into(),
            now.into(),
            now.into(),
        ],
    )
}

/// The first code exchange activates a grant (only a live one).
pub fn activate_statement(grant_id: &str, now: DateTime<Utc>) -> Statement {
    Statement::new(
        "UPDATE oauth_grants SET activated_at = COALESCE(activated_at, ?), last_used_at = ?
         WHERE id = ? AND revoked_at IS NULL",
        vec![now.into(), now.into(), grant_id.into()],
    )
}

/// Marks a grant used (tokens issued or an access token presented).
pub fn touch_statement(grant_id: &str, now: DateTime<Utc>) -> Statement {
    Statement::new(
        "UPDATE oauth_grants SET last_used_at = ? WHERE id = ? AND last_used_at < ?",
        vec![now.into(), grant_id.into(), now.into()],
    )
}

/// Revokes a grant: marks it and deletes its codes and tokens, as one
/// batch. Revoking twice changes nothing.
pub fn revoke_statements(grant_id: &str, now: DateTime<Utc>) -> Vec<Statement> {
    vec![
        Statement::new(
            "UPDATE oauth_grants SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
            vec![now.into(), grant_id.into()],
        ),
        Statement::new(
            "DELETE FROM oauth_tokens WHERE grant_id = ?",
            vec![grant_id.into()],
        ),
        Statement::new(
            "DELETE FROM oauth_auth_codes WHERE grant_id = ?",
            vec![grant_id.into()],
        ),
    ]
}

/// Revokes a grant and everything issued under it.
pub async fn revoke(
    db: &impl SqlExecutor,
    grant_id: &str,
    now: DateTime<Utc>,
) -> Result<(), StorageError> {
    db.batch(revoke_statements(grant_id, now)).await?;
    Ok(())
}

/// The dashboard's revoke button: revokes the grant only if it belongs to
/// `user_id` (another user's id changes nothing). True if one was revoked.
pub async fn revoke_for_owner(
    db: &impl SqlExecutor,
    grant_id: &str,
    user_id: &str,
    now: DateTime<Utc>,
) -> Result<bool, StorageError> {
    let done = db
        .batch(vec![
            Statement::new(
                "UPDATE oauth_grants SET revoked_at = ?
                 WHERE id = ? AND user_id = ? AND revoked_at IS NULL",
                vec![now.into(), grant_id.into(), user_id.into()],
            ),
            Statement::new(
                "DELETE FROM oauth_tokens WHERE grant_id IN (SELECT id FROM oauth_grants WHERE id = ? AND user_id = ?)",
                vec![grant_id.into(), user_id.into()],
            ),
            Statement::new(
                "DELETE FROM oauth_auth_codes WHERE grant_id IN (SELECT id FROM oauth_grants WHERE id = ? AND user_id = ?)",
                vec![grant_id.into(), user_id.into()],
            ),
        ])
        .await?;
    Ok(done.first().is_some_and(|d| d.changes == 1))
}

/// A grant as the token endpoint needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub id: String,
    pub client_id: String,
    pub user_id: String,
    pub resource: String,
    pub scope: String,
    pub administration_ids: Vec<String>,
    pub activated_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Deserialize)]
struct GrantRow {
    id: String,
    client_id: String,
    user_id: String,
    resource: String,
    scope: String,
    administration_ids: String,
    activated_at: Option<i64>,
    revoked_at: Option<i64>,
}

/// The grant of that id, live or revoked.
pub async fn find(db: &impl SqlExecutor, grant_id: &str) -> Result<Option<Grant>, StorageError> {
    let row: Option<GrantRow> = super::query_one(
        db,
        Statement::new(
            "SELECT id, client_id, user_id, resource, scope, administration_ids, activated_at,
                revoked_at
             FROM oauth_grants WHERE id = ?",
            vec![grant_id.into()],
        ),
    )
    .await?;
    row.map(|r| {
        Ok(Grant {
            administration_ids: decode_ids(&r.administration_ids)?,
            activated_at: r.activated_at.map(from_unix).transpose()?,
            revoked_at: r.revoked_at.map(from_unix).transpose()?,
            id: r.id,
            client_id: r.client_id,
            user_id: r.user_id,
            resource: r.resource,
            scope: r.scope,
        })
    })
    .transpose()
}

/// A connected app on the dashboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectedApp {
    pub grant_id: String,
    pub client_id: String,
    /// Untrusted text from the client: escape it.
    pub client_name: String,
    pub scope: String,
    pub administration_ids: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: DateTime<Utc>,
}

#[derive(Deserialize)]
struct AppRow {
    id: String,
    client_id: String,
    client_name: String,
    scope: String,
    administration_ids: String,
    created_at: i64,
    last_used_at: i64,
}

/// The query of [`list_for_user`].
pub fn list_for_user_statement(user_id: &str) -> Statement {
    Statement::new(
        "SELECT g.id, g.client_id, c.client_name, g.scope, g.administration_ids,
            g.created_at, g.last_used_at
         FROM oauth_grants g JOIN oauth_clients c ON c.client_id = g.client_id
         WHERE g.user_id = ? AND g.revoked_at IS NULL AND g.activated_at IS NOT NULL
         ORDER BY g.last_used_at DESC, g.id",
        vec![user_id.into()],
    )
}

/// The user's live, activated grants, most recently used first.
pub async fn list_for_user(
    db: &impl SqlExecutor,
    user_id: &str,
) -> Result<Vec<ConnectedApp>, StorageError> {
    let rows: Vec<AppRow> = query_all(db, list_for_user_statement(user_id)).await?;
    rows.into_iter()
        .map(|r| {
            Ok(ConnectedApp {
                administration_ids: decode_ids(&r.administration_ids)?,
                created_at: from_unix(r.created_at)?,
                last_used_at: from_unix(r.last_used_at)?,
                grant_id: r.id,
                client_id: r.client_id,
                client_name: r.client_name,
                scope: r.scope,
            })
        })
        .collect()
}

pub(crate) fn decode_ids(json: &str) -> Result<Vec<String>, StorageError> {
    serde_json::from_str(json).map_err(|e| StorageError::Decode(format!("administration_ids: {e}")))
}

/// Housekeeping: revoked grants kept past their retention.
pub fn purge_revoked_statement(revoked_before: DateTime<Utc>) -> Statement {
    Statement::new(
        "DELETE FROM oauth_grants WHERE revoked_at IS NOT NULL AND revoked_at < ?",
        vec![revoked_before.into()],
    )
}

/// Housekeeping: grants unused since `idle_since` (every refresh token
/// they had has lapsed by then), and consents whose code was never
/// redeemed.
pub fn purge_idle_statement(idle_since: DateTime<Utc>) -> Statement {
    Statement::new(
        "DELETE FROM oauth_grants WHERE last_used_at < ?",
        vec![idle_since.into()],
    )
}
