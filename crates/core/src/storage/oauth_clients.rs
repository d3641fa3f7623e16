//! The `oauth_clients` table: MCP clients of the authorization server,
//! registered through RFC 7591 or known from their Client ID Metadata
//! Document (then the row is a cache of the document, refetched after
//! `refresh_after`). Only public clients: no secret is ever stored.

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{SqlExecutor, Statement, StorageError, from_unix, query_one};
use crate::authorization::SCOPES_SUPPORTED;
use crate::authorization::clients::{ApplicationType, Client, ClientKind};

#[derive(Deserialize)]
struct Row {
    client_id: String,
    client_name: String,
    redirect_uris: String,
    kind: String,
    application_type: String,
    refresh_after: Option<i64>,
    created_at: i64,
}

/// A stored client and, for a metadata document, when to fetch it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredClient {
    pub client: Client,
    pub refresh_after: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl TryFrom<Row> for StoredClient {
    type Error = StorageError;
    fn try_from(r: Row) -> Result<Self, StorageError> {
        let redirect_uris: Vec<String> = serde_json::from_str(&r.redirect_uris)
            .map_err(|e| StorageError::Decode(format!("redirect_uris: {e}")))?;
        let kind = match r.kind.as_str() {
            "registered" => ClientKind::Registered,
            "metadata_document" => ClientKind::MetadataDocument,
            other => return Err(StorageError::Decode(format!("client kind {other}"))),
        };
        let application_type = match r.application_type.as_str() {
            "web" => ApplicationType::Web,
            "native" => ApplicationType::Native,
            other => return Err(StorageError::Decode(format!("application type {other}"))),
        };
        Ok(StoredClient {
            client: Client {
                client_id: r.client_id,
                client_name: r.client_name,
                redirect_uris,
                application_type,
                kind,
            },
            refresh_after: r.refresh_after.map(from_unix).transpose()?,
            created_at: from_unix(r.created_at)?,
        })
    }
}

fn uris_json(client: &Client) -> String {
    serde_json::Value::from(client.redirect_uris.clone()).to_string()
}

/// Stores a client registered through RFC 7591.
pub async fn insert_registered(
    db: &impl SqlExecutor,
    client: &Client,
    now: DateTime<Utc>,
) -> Result<(), StorageError> {
    db.execute(Statement::new(
        "INSERT INTO oauth_clients (client_id, client_name, redirect_uris, token_endpoint_auth_method,
            scope, kind, application_type, refresh_after, created_at, last_used_at)
         VALUES (?, ?, ?, 'none', ?, 'registered', ?, NULL, ?, ?)",
        vec![
            client.client_id.clone().into(),
            client.client_name.clone().into(),
            uris_json(client).into(),
            SCOPES_SUPPORTED.join(" ").into(),
            client.application_type.as_str().into(),
            now.into(),
            now.into(),
        ],
    ))
    .await?;
    Ok(())
}

/// Stores (or refreshes) the cached copy of a metadata document. A
/// registered client's row is never overwritten by a document.
pub async fn upsert_metadata_document(
    db: &impl SqlExecutor,
    client: &Client,
    refresh_after: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), StorageError> {
    db.execute(Statement::new(
        "INSERT INTO oauth_clients (client_id, client_name, redirect_uris, token_endpoint_auth_method,
            scope, kind, application_type, refresh_after, created_at, last_used_at)
         VALUES (?, ?, ?, 'none', ?, 'metadata_document', ?, ?, ?, ?)
         ON CONFLICT (client_id) DO UPDATE SET
            client_name = excluded.client_name,
            redirect_uris = excluded.redirect_uris,
            application_type = excluded.application_type,
            refresh_after = excluded.refresh_after,
            last_used_at = excluded.last_used_at
         WHERE oauth_clients.kind = 'metadata_document'",
        vec![
            client.client_id.clone().into(),
            client.client_name.clone().into(),
            uris_json(client).into(),
            SCOPES_SUPPORTED.join(" ").into(),
            client.application_type.as_str().into(),
            refresh_after.into(),
            now.into(),
            now.into(),
        ],
    ))
    .await?;
    Ok(())
}

/// The client of that id, registered or cached.
pub async fn find(
    db: &impl SqlExecutor,
    client_id: &str,
) -> Result<Option<StoredClient>, StorageError> {
    let row: Option<Row> = query_one(
        db,
        Statement::new(
            "SELECT client_id, client_name, redirect_uris, kind, application_type, refresh_after,
                created_at
             FROM oauth_clients WHERE client_id = ?",
            vec![client_id.into()],
        ),
    )
    .await?;
    row.map(StoredClient::try_from).transpose()
}

/// Marks a client used (an authorization or token issued), which keeps it
/// from being collected.
pub fn touch_statement(client_id: &str, now: DateTime<Utc>) -> Statement {
    Statement::new(
        "UPDATE oauth_clients SET last_used_at = ? WHERE client_id = ?",
        vec![now.into(), client_id.into()],
    )
}

/// Housekeeping: clients without any grant that nobody has used since
/// `unused_since` (registrations left behind by clients that register on
/// every sign-in, stale document copies). Their usage rows keep the call
/// counts with the client reference set to NULL.
pub fn purge_unused_statement(unused_since: DateTime<Utc>) -> Statement {
    Statement::new(
        "DELETE FROM oauth_clients WHERE last_used_at < ?
            AND NOT EXISTS (SELECT 1 FROM oauth_grants g WHERE g.client_id = oauth_clients.client_id)",
        vec![unused_since.into()],
    )
}
