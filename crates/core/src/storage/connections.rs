//! The `connections` table: a user's Exact Online connection per region,
//! its sealed tokens, its lifecycle state and its refresh lease.

use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;

use super::{SqlExecutor, Statement, StorageError, from_unix, new_id, query_all, query_one};
use crate::crypto::{CryptoError, SealBinding, Secret, TokenKeyring};
use crate::lifecycle::{ConnectionStatus, TokenState};
use crate::ports::Randomness;
use crate::region::Region;

const TABLE: &str = "connections";

/// A connection as stored; tokens stay sealed until [`open_tokens`].
#[derive(Debug, Clone, PartialEq)]
pub struct Connection {
    pub id: String,
    pub user_id: String,
    pub region: Region,
    pub exact_user_id: Option<String>,
    pub exact_user_name: Option<String>,
    pub exact_email: Option<String>,
    pub access_token_sealed: String,
    pub refresh_token_sealed: String,
    pub access_expires_at: DateTime<Utc>,
    pub refresh_expires_at: DateTime<Utc>,
    /// Bumped by every token write; a refresher compares it to notice that
    /// someone else already refreshed.
    pub token_generation: i64,
    pub state: TokenState,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<DateTime<Utc>>,
    pub last_refreshed_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

#[derive(Deserialize)]
struct Row {
    id: String,
    user_id: String,
    region: String,
    exact_user_id: Option<String>,
    exact_user_name: Option<String>,
    exact_email: Option<String>,
    access_token_sealed: String,
    refresh_token_sealed: String,
    access_expires_at: i64,
    refresh_expires_at: i64,
    token_generation: i64,
    status: String,
    retry_count: u32,
    next_retry_at: Option<i64>,
    last_error: Option<String>,
    lease_owner: Option<String>,
    lease_expires_at: Option<i64>,
    last_refreshed_at: Option<i64>,
    last_used_at: Option<i64>,
}

impl TryFrom<Row> for Connection {
    type Error = StorageError;
    fn try_from(r: Row) -> Result<Self, StorageError> {
        let bad = |e: &dyn std::fmt::Display| StorageError::Decode(e.to_string());
        Ok(Connection {
            region: r.region.parse().map_err(|e| bad(&e))?,
            access_expires_at: from_unix(r.access_expires_at)?,
            refresh_expires_at: from_unix(r.refresh_expires_at)?,
            state: TokenState {
                status: r.status.parse::<ConnectionStatus>().map_err(|e| bad(&e))?,
                retry_count: r.retry_count,
                next_retry_at: r.next_retry_at.map(from_unix).transpose()?,
                last_error: r.last_error,
            },
            lease_expires_at: r.lease_expires_at.map(from_unix).transpose()?,
            last_refreshed_at: r.last_refreshed_at.map(from_unix).transpose()?,
            last_used_at: r.last_used_at.map(from_unix).transpose()?,
            id: r.id,
            user_id: r.user_id,
            exact_user_id: r.exact_user_id,
            exact_user_name: r.exact_user_name,
            exact_email: r.exact_email,
            access_token_sealed: r.access_token_sealed,
            refresh_token_sealed: r.refresh_token_sealed,
            token_generation: r.token_generation,
            lease_owner: r.lease_owner,
        })
    }
}

/// Every read of a connection selects the same columns; the macro keeps the
/// list in one place while the SQL stays a `&'static str`.
macro_rules! select_connection {
    ($tail:literal) => {
        concat!(
            "SELECT id, user_id, region, exact_user_id, exact_user_name, exact_email, ",
            "access_token_sealed, refresh_token_sealed, access_expires_at, refresh_expires_at, ",
            "token_generation, status, retry_count, next_retry_at, last_error, lease_owner, ",
            "lease_expires_at, last_refreshed_at, last_used_at FROM connections ",
            $tail
        )
    };
}

/// Fresh tokens from an Exact code exchange or refresh.
#[derive(Debug, Clone)]
pub struct ExactTokens {
    pub access_token: Secret,
    pub refresh_token: Secret,
    pub access_expires_at: DateTime<Utc>,
    pub refresh_expires_at: DateTime<Utc>,
}

/// Who the tokens belong to at Exact.
#[derive(Debug, Clone, Default)]
pub struct ExactIdentity {
    pub exact_user_id: Option<String>,
    pub exact_user_name: Option<String>,
    pub exact_email: Option<String>,
}

/// Errors of operations that seal or open tokens.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("stored Exact tokens cannot be opened: {0}")]
    Crypto(#[from] CryptoError),
}

fn binding(id: &str, column: &str) -> SealBinding {
    SealBinding::new(TABLE, id, column)
}

fn seal_pair(
    keyring: &TokenKeyring,
    rng: &impl Randomness,
    id: &str,
    tokens: &ExactTokens,
) -> Result<(String, String), CryptoError> {
    Ok((
        keyring.seal(rng, &tokens.access_token, &binding(id, "access_token"))?,
        keyring.seal(rng, &tokens.refresh_token, &binding(id, "refresh_token"))?,
    ))
}

/// The result of a completed Exact OAuth flow for one user and region.
#[derive(Debug, Clone)]
pub struct NewConnection<'a> {
    pub user_id: &'a str,
    pub region: Region,
    pub identity: &'a ExactIdentity,
    pub tokens: &'a ExactTokens,
}

/// Stores the result of a completed Exact OAuth flow: creates the user's
/// connection for the region, or revives the existing one (new tokens,
/// lifecycle reset to active, lease cleared).
pub async fn connect(
    db: &impl SqlExecutor,
    rng: &impl Randomness,
    keyring: &TokenKeyring,
    new: &NewConnection<'_>,
    now: DateTime<Utc>,
) -> Result<Connection, ConnectionError> {
    let NewConnection {
        user_id,
        region,
        identity,
        tokens,
    } = *new;
    // Two tries: a concurrent first connect may create the row between our
    // lookup and our insert; the second pass then updates it.
    for _ in 0..2 {
        let existing = find_for_user_region(db, user_id, region).await?;
        let done = match &existing {
            Some(conn) => {
                let (access, refresh) = seal_pair(keyring, rng, &conn.id, tokens)?;
                db.execute(Statement::new(
                    "UPDATE connections SET access_token_sealed = ?, refresh_token_sealed = ?,
                        access_expires_at = ?, refresh_expires_at = ?,
                        token_generation = token_generation + 1, status = 'active',
                        retry_count = 0, next_retry_at = NULL, last_error = NULL,
                        lease_owner = NULL, lease_expires_at = NULL, reconnect_notified_at = NULL,
                        exact_user_id = ?, exact_user_name = ?, exact_email = ?,
                        last_refreshed_at = ?, updated_at = ?
                     WHERE id = ?",
                    vec![
                        access.into(),
                        refresh.into(),
                        tokens.access_expires_at.into(),
                        tokens.refresh_expires_at.into(),
                        identity.exact_user_id.clone().into(),
                        identity.exact_user_name.clone().into(),
                        identity.exact_email.clone().into(),
                        now.into(),
                        now.into(),
                        conn.id.clone().into(),
                    ],
                ))
                .await
            }
            None => {
                let id = new_id(rng).map_err(StorageError::from)?;
                let (access, refresh) = seal_pair(keyring, rng, &id, tokens)?;
                db.execute(Statement::new(
                    "INSERT INTO connections (id, user_id, region, exact_user_id, exact_user_name,
                        exact_email, access_token_sealed, refresh_token_sealed, access_expires_at,
                        refresh_expires_at, last_refreshed_at, created_at, updated_at)
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    vec![
                        id.into(),
                        user_id.into(),
                        region.code().into(),
                        identity.exact_user_id.clone().into(),
                        identity.exact_user_name.clone().into(),
                        identity.exact_email.clone().into(),
                        access.into(),
                        refresh.into(),
                        tokens.access_expires_at.into(),
                        tokens.refresh_expires_at.into(),
                        now.into(),
                        now.into(),
                        now.into(),
                    ],
                ))
                .await
            }
        };
        match done {
            Ok(_) => {
                return find_for_user_region(db, user_id, region)
                    .await?
                    .ok_or_else(|| {
                        StorageError::Query("connection vanished after write".into()).into()
                    });
            }
            Err(StorageError::Constraint(_)) if existing.is_none() => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(StorageError::Constraint("concurrent connect kept conflicting".into()).into())
}

pub async fn find_by_id(
    db: &impl SqlExecutor,
    id: &str,
) -> Result<Option<Connection>, StorageError> {
    query_one::<Row>(
        db,
        Statement::new(select_connection!("WHERE id = ?"), vec![id.into()]),
    )
    .await?
    .map(Connection::try_from)
    .transpose()
}

pub async fn find_for_user_region(
    db: &impl SqlExecutor,
    user_id: &str,
    region: Region,
) -> Result<Option<Connection>, StorageError> {
    query_one::<Row>(
        db,
        Statement::new(
            select_connection!("WHERE user_id = ? AND region = ?"),
            vec![user_id.into(), region.code().into()],
        ),
    )
    .await?
    .map(Connection::try_from)
    .transpose()
}

pub async fn list_for_user(
    db: &impl SqlExecutor,
    user_id: &str,
) -> Result<Vec<Connection>, StorageError> {
    query_all::<Row>(
        db,
        Statement::new(
            select_connection!("WHERE user_id = ? ORDER BY created_at, id"),
            vec![user_id.into()],
        ),
    )
    .await?
    .into_iter()
    .map(Connection::try_from)
    .collect()
}

/// Opens a connection's tokens with the row-bound associated data.
pub fn open_tokens(
    keyring: &TokenKeyring,
    conn: &Connection,
) -> Result<(Secret, Secret), CryptoError> {
    Ok((
        keyring.open(
            &conn.access_token_sealed,
            &binding(&conn.id, "access_token"),
        )?,
        keyring.open(
            &conn.refresh_token_sealed,
            &binding(&conn.id, "refresh_token"),
        )?,
    ))
}

/// Takes the refresh lease if nobody holds a live one. The conditional
/// update is the lock: of concurrent callers exactly one sees `true`.
pub async fn try_take_lease(
    db: &impl SqlExecutor,
    id: &str,
    owner: &str,
    now: DateTime<Utc>,
    ttl: Duration,
) -> Result<bool, StorageError> {
    let done = db
        .execute(Statement::new(
            "UPDATE connections SET lease_owner = ?, lease_expires_at = ?
             WHERE id = ? AND (lease_owner IS NULL OR lease_expires_at <= ?)",
            vec![owner.into(), (now + ttl).into(), id.into(), now.into()],
        ))
        .await?;
    Ok(done.changes == 1)
}

/// Gives the lease back without changing anything else.
pub async fn release_lease(
    db: &impl SqlExecutor,
    id: &str,
    owner: &str,
) -> Result<bool, StorageError> {
    let done = db
        .execute(Statement::new(
            "UPDATE connections SET lease_owner = NULL, lease_expires_at = NULL
             WHERE id = ? AND lease_owner = ?",
            vec![id.into(), owner.into()],
        ))
        .await?;
    Ok(done.changes == 1)
}

/// Writes refreshed tokens and the `active` state in one statement, and
/// releases the lease. Succeeds only while `owner` still holds the lease;
/// `false` means it was lost and nothing was written.
pub async fn store_refreshed(
    db: &impl SqlExecutor,
    rng: &impl Randomness,
    keyring: &TokenKeyring,
    id: &str,
    owner: &str,
    tokens: &ExactTokens,
    now: DateTime<Utc>,
) -> Result<bool, ConnectionError> {
    let (access, refresh) = seal_pair(keyring, rng, id, tokens)?;
    let done = db
        .execute(Statement::new(
            "UPDATE connections SET access_token_sealed = ?, refresh_token_sealed = ?,
                access_expires_at = ?, refresh_expires_at = ?,
                token_generation = token_generation + 1, status = 'active', retry_count = 0,
                next_retry_at = NULL, last_error = NULL, lease_owner = NULL,
                lease_expires_at = NULL, last_refreshed_at = ?, updated_at = ?
             WHERE id = ? AND lease_owner = ?",
            vec![
                access.into(),
                refresh.into(),
                tokens.access_expires_at.into(),
                tokens.refresh_expires_at.into(),
                now.into(),
                now.into(),
                id.into(),
                owner.into(),
            ],
        ))
        .await?;
    Ok(done.changes == 1)
}

/// Writes a lifecycle state after a failed refresh and releases the lease.
pub async fn store_state(
    db: &impl SqlExecutor,
    id: &str,
    owner: &str,
    state: &TokenState,
    now: DateTime<Utc>,
) -> Result<bool, StorageError> {
    let done = db
        .execute(Statement::new(
            "UPDATE connections SET status = ?, retry_count = ?, next_retry_at = ?,
                last_error = ?, lease_owner = NULL, lease_expires_at = NULL, updated_at = ?
             WHERE id = ? AND lease_owner = ?",
            vec![
                state.status.as_str().into(),
                state.retry_count.into(),
                state.next_retry_at.into(),
                state.last_error.clone().into(),
                now.into(),
                id.into(),
                owner.into(),
            ],
        ))
        .await?;
    Ok(done.changes == 1)
}

pub async fn touch_last_used(
    db: &impl SqlExecutor,
    id: &str,
    now: DateTime<Utc>,
) -> Result<(), StorageError> {
    db.execute(Statement::new(
        "UPDATE connections SET last_used_at = ? WHERE id = ?",
        vec![now.into(), id.into()],
    ))
    .await?;
    Ok(())
}
