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
/// connection for this Exact login at this site, or revives the existing
/// one (new tokens, lifecycle reset to active, lease cleared). A user may
/// hold several logins at one site; each is its own connection.
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
        let existing =
            find_for_login(db, user_id, region, identity.exact_user_id.as_deref()).await?;
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
                return find_for_login(db, user_id, region, identity.exact_user_id.as_deref())
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

/// The user's connection of one Exact login at one site. A connection
/// stored before the login was known (no `exact_user_id`) is that login's
/// when the user has no connection recorded for it yet, so a reconnect
/// adopts it instead of leaving a second, dead one beside it.
pub async fn find_for_login(
    db: &impl SqlExecutor,
    user_id: &str,
    region: Region,
    exact_user_id: Option<&str>,
) -> Result<Option<Connection>, StorageError> {
    query_one::<Row>(
        db,
        Statement::new(
            select_connection!(
                "WHERE user_id = ? AND region = ?
                   AND (exact_user_id = ? OR exact_user_id IS NULL)
                 ORDER BY exact_user_id IS NULL, created_at LIMIT 1"
            ),
            vec![user_id.into(), region.code().into(), exact_user_id.into()],
        ),
    )
    .await?
    .map(Connection::try_from)
    .transpose()
}

/// The connection of an Exact login at one site, whoever's it is.
pub async fn find_by_exact_user(
    db: &impl SqlExecutor,
    region: Region,
    exact_user_id: &str,
) -> Result<Option<Connection>, StorageError> {
    query_one::<Row>(
        db,
        Statement::new(
            select_connection!(
                "WHERE region = ? AND exact_user_id = ? ORDER BY created_at LIMIT 1"
            ),
            vec![region.code().into(), exact_user_id.into()],
        ),
    )
    .await?
    .map(Connection::try_from)
    .transpose()
}

/// The connections of a credential's caller (as [`list_for_user`]), as
/// one statement of the caller's batch.
pub fn for_caller_statement(key: &super::caller::CallerKey) -> Statement {
    use super::caller::with_caller;
    key.statement(
        with_caller!(
            api_key,
            select_connection!(
                "WHERE user_id = (SELECT user_id FROM caller) ORDER BY created_at, id"
            )
        ),
        with_caller!(
            oauth,
            select_connection!(
                "WHERE user_id = (SELECT user_id FROM caller) ORDER BY created_at, id"
            )
        ),
        vec![],
    )
}

/// The rows of [`for_caller_statement`].
pub fn decode_all(rows: Vec<super::Row>) -> Result<Vec<Connection>, StorageError> {
    rows.into_iter()
        .map(|r| super::decode::<Row>(r).and_then(Connection::try_from))
        .collect()
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

/// Which tokens a refresher is replacing: the connection, who holds (or
/// held) its lease, and the token generation the refresh started from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenSlot<'a> {
    pub id: &'a str,
    pub owner: &'a str,
    pub generation: i64,
}

impl<'a> TokenSlot<'a> {
    /// The slot of a connection as read under `owner`'s lease.
    pub fn of(conn: &'a Connection, owner: &'a str) -> Self {
        TokenSlot {
            id: &conn.id,
            owner,
            generation: conn.token_generation,
        }
    }
}

/// Writes refreshed tokens and the `active` state in one statement, and
/// releases the lease if `owner` still holds it. The write is conditional
/// on the token generation the refresh started from, not on the lease:
/// Exact has already rotated, so these are the only live tokens and must
/// be stored even when the lease was lost meanwhile, unless a newer
/// generation (a reconnect, or another refresher's stored result) already
/// replaced that one. `false`: superseded, nothing written.
pub async fn store_refreshed(
    db: &impl SqlExecutor,
    rng: &impl Randomness,
    keyring: &TokenKeyring,
    slot: &TokenSlot<'_>,
    tokens: &ExactTokens,
    now: DateTime<Utc>,
) -> Result<bool, ConnectionError> {
    let (access, refresh) = seal_pair(keyring, rng, slot.id, tokens)?;
    let done = db
        .execute(Statement::new(
            "UPDATE connections SET access_token_sealed = ?, refresh_token_sealed = ?,
                access_expires_at = ?, refresh_expires_at = ?,
                token_generation = token_generation + 1, status = 'active', retry_count = 0,
                next_retry_at = NULL, last_error = NULL, reconnect_notified_at = NULL,
                lease_owner = CASE WHEN lease_owner = ? THEN NULL ELSE lease_owner END,
                lease_expires_at = CASE WHEN lease_owner = ? THEN NULL ELSE lease_expires_at END,
                last_refreshed_at = ?, updated_at = ?
             WHERE id = ? AND token_generation = ?",
            vec![
                access.into(),
                refresh.into(),
                tokens.access_expires_at.into(),
                tokens.refresh_expires_at.into(),
                slot.owner.into(),
                slot.owner.into(),
                now.into(),
                now.into(),
                slot.id.into(),
                slot.generation.into(),
            ],
        ))
        .await?;
    Ok(done.changes == 1)
}

/// Writes a lifecycle state after a failed refresh and releases the lease
/// if `owner` holds it; only while the tokens are still of `generation`
/// (a failure of a refresh that was meanwhile superseded by stored new
/// tokens must not mark the connection failed). `false`: superseded.
pub async fn store_state(
    db: &impl SqlExecutor,
    slot: &TokenSlot<'_>,
    state: &TokenState,
    now: DateTime<Utc>,
) -> Result<bool, StorageError> {
    let done = db
        .execute(Statement::new(
            "UPDATE connections SET status = ?, retry_count = ?, next_retry_at = ?,
                last_error = ?,
                lease_owner = CASE WHEN lease_owner = ? THEN NULL ELSE lease_owner END,
                lease_expires_at = CASE WHEN lease_owner = ? THEN NULL ELSE lease_expires_at END,
                updated_at = ?
             WHERE id = ? AND token_generation = ?",
            vec![
                state.status.as_str().into(),
                state.retry_count.into(),
                state.next_retry_at.into(),
                state.last_error.clone().into(),
                slot.owner.into(),
                slot.owner.into(),
                now.into(),
                slot.id.into(),
                slot.generation.into(),
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

/// Takes the refresh lease if nobody holds a live one and returns the row
/// as it is under the lease, in one statement (one database round trip:
/// the cron's per-invocation subrequest budget is small). `None`: someone
/// else holds the lease, or there is no such connection. Re-entrant for
/// the same owner, so a retry after an ambiguous database error is safe.
pub async fn take_lease(
    db: &impl SqlExecutor,
    id: &str,
    owner: &str,
    now: DateTime<Utc>,
    ttl: Duration,
) -> Result<Option<Connection>, StorageError> {
    query_one::<Row>(db, take_lease_statement(id, owner, now, ttl))
        .await?
        .map(Connection::try_from)
        .transpose()
}

/// The statement of [`take_lease`] (its query plan is tested).
pub fn take_lease_statement(id: &str, owner: &str, now: DateTime<Utc>, ttl: Duration) -> Statement {
    Statement::new(
        concat!(
            "UPDATE connections SET lease_owner = ?, lease_expires_at = ?
             WHERE id = ? AND (lease_owner IS NULL OR lease_expires_at <= ? OR lease_owner = ?)
             RETURNING ",
            "id, user_id, region, exact_user_id, exact_user_name, exact_email, ",
            "access_token_sealed, refresh_token_sealed, access_expires_at, refresh_expires_at, ",
            "token_generation, status, retry_count, next_retry_at, last_error, lease_owner, ",
            "lease_expires_at, last_refreshed_at, last_used_at"
        ),
        vec![
            owner.into(),
            (now + ttl).into(),
            id.into(),
            now.into(),
            owner.into(),
        ],
    )
}

/// The write of [`touch_last_used_if_stale`], or `None` when the last
/// touch is recent enough: for the batch after the answer.
pub fn touch_if_stale_statement(
    conn: &Connection,
    now: DateTime<Utc>,
    granularity: Duration,
) -> Option<Statement> {
    if conn.last_used_at.is_some_and(|t| now - t < granularity) {
        return None;
    }
    Some(Statement::new(
        "UPDATE connections SET last_used_at = ? WHERE id = ?",
        vec![now.into(), conn.id.clone().into()],
    ))
}

/// Records that the connection served a request, at most once per
/// `granularity` (a write per tool call would double the database load
/// for a value the cron only needs to the minute).
pub async fn touch_last_used_if_stale(
    db: &impl SqlExecutor,
    conn: &Connection,
    now: DateTime<Utc>,
    granularity: Duration,
) -> Result<(), StorageError> {
    if conn.last_used_at.is_some_and(|t| now - t < granularity) {
        return Ok(());
    }
    touch_last_used(db, &conn.id, now).await
}

/// Why the token cron should refresh a connection now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DueReason {
    /// `retry_pending` and its next retry time has come.
    Retry,
    /// Recently used and its access token is (about to be) expired, so the
    /// next tool call does not wait for a refresh.
    InUse,
    /// Quiet, and its refresh token nears the end of its 30 days.
    KeepAlive,
}

impl DueReason {
    pub const fn as_str(self) -> &'static str {
        match self {
            DueReason::Retry => "retry",
            DueReason::InUse => "in_use",
            DueReason::KeepAlive => "keep_alive",
        }
    }
}

/// A connection the cron should refresh, and since when it has been due.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct DueConnection {
    pub id: String,
    pub region: Region,
    pub reason: DueReason,
    pub due_at: DateTime<Utc>,
}

/// Which connections count as due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DueWindows {
    /// Connections used within this span are "in use".
    pub in_use: Duration,
    /// Refresh a quiet connection when its refresh token has this little
    /// life left.
    pub keep_alive_before: Duration,
    /// Exact's refresh window before access-token expiry.
    pub refresh_window: Duration,
}

/// The selection query: three index range scans (one per reason, each
/// ordered by its own due time and limited), merged by due time. Kept as
/// a constant so the `EXPLAIN QUERY PLAN` test checks the very text.
pub const DUE_SQL: &str = "SELECT id, region, reason, due_at FROM (
        SELECT id, region, 'retry' AS reason, next_retry_at AS due_at FROM connections
         WHERE status = 'retry_pending' AND next_retry_at <= ?
         ORDER BY next_retry_at LIMIT ?)
    UNION ALL SELECT id, region, reason, due_at FROM (
        SELECT id, region, 'in_use' AS reason, access_expires_at - ? AS due_at FROM connections
         WHERE status = 'active' AND access_expires_at > ? AND access_expires_at <= ?
           AND last_used_at >= ?
         ORDER BY access_expires_at LIMIT ?)
    UNION ALL SELECT id, region, reason, due_at FROM (
        SELECT id, region, 'keep_alive' AS reason, refresh_expires_at - ? AS due_at FROM connections
         WHERE status = 'active' AND refresh_expires_at <= ? AND access_expires_at <= ?
         ORDER BY refresh_expires_at LIMIT ?)
    ORDER BY due_at, id LIMIT ?";

/// Parameters of [`DUE_SQL`].
pub fn due_statement(now: DateTime<Utc>, w: &DueWindows, limit: u32) -> Statement {
    let window = w.refresh_window.num_seconds();
    let keep = w.keep_alive_before.num_seconds();
    Statement::new(
        DUE_SQL,
        vec![
            now.into(),
            limit.into(),
            window.into(),
            // An access token that expired before the in-use span began
            // belongs to a connection nobody is using.
            (now - w.in_use).into(),
            (now + w.refresh_window).into(),
            (now - w.in_use).into(),
            limit.into(),
            keep.into(),
            (now + w.keep_alive_before).into(),
            // Exact refuses a refresh while the access token is valid; a
            // connection in use is renewed once its token runs out.
            (now + w.refresh_window).into(),
            limit.into(),
            limit.into(),
        ],
    )
}

/// Up to `limit` connections due for a refresh, the longest-due first; a
/// connection due for two reasons appears once, under its earliest.
pub async fn due_for_refresh(
    db: &impl SqlExecutor,
    now: DateTime<Utc>,
    windows: &DueWindows,
    limit: u32,
) -> Result<Vec<DueConnection>, StorageError> {
    #[derive(Deserialize)]
    struct DueRow {
        id: String,
        region: String,
        reason: String,
        due_at: i64,
    }
    let rows: Vec<DueRow> = query_all(db, due_statement(now, windows, limit)).await?;
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        if !seen.insert(r.id.clone()) {
            continue;
        }
        let reason = match r.reason.as_str() {
            "retry" => DueReason::Retry,
            "in_use" => DueReason::InUse,
            "keep_alive" => DueReason::KeepAlive,
            other => return Err(StorageError::Decode(format!("due reason {other:?}"))),
        };
        out.push(DueConnection {
            region: r
                .region
                .parse()
                .map_err(|e: crate::region::UnknownRegion| StorageError::Decode(e.to_string()))?,
            id: r.id,
            reason,
            due_at: from_unix(r.due_at)?,
        });
    }
    Ok(out)
}

/// What the user must be told about a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeKind {
    /// The connection is `refresh_failed`: sign in with Exact again.
    ReconnectNeeded,
    /// The refresh token lapses soon and the cron has not managed to
    /// refresh it yet.
    LapsingSoon,
}

/// A connection whose user must hear from us, with what the mail needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub kind: NoticeKind,
    pub connection_id: String,
    pub user_id: String,
    pub email: String,
    pub name: Option<String>,
    pub locale: String,
    pub region: Region,
    pub last_error: Option<String>,
    pub refresh_expires_at: DateTime<Utc>,
    pub token_generation: i64,
}

pub const NOTICE_SQL: &str = "SELECT * FROM (
        SELECT c.id, 'reconnect' AS kind, c.user_id, u.email, u.name, u.locale, c.region,
               c.last_error, c.refresh_expires_at, c.token_generation
          FROM connections c INDEXED BY idx_connections_unnotified
          JOIN users u ON u.id = c.user_id
         WHERE c.status = 'refresh_failed' AND c.reconnect_notified_at IS NULL
         ORDER BY c.updated_at LIMIT ?)
    UNION ALL SELECT * FROM (
        SELECT c.id, 'lapse' AS kind, c.user_id, u.email, u.name, u.locale, c.region,
               c.last_error, c.refresh_expires_at, c.token_generation
          FROM connections c JOIN users u ON u.id = c.user_id
         WHERE c.status IN ('active', 'retry_pending')
           AND c.refresh_expires_at > ? AND c.refresh_expires_at <= ?
           AND (c.lapse_warned_for IS NULL OR c.lapse_warned_for <> c.refresh_expires_at)
         ORDER BY c.refresh_expires_at LIMIT ?)";

pub fn notice_statement(
    now: DateTime<Utc>,
    lapse_warning_before: Duration,
    limit: u32,
) -> Statement {
    Statement::new(
        NOTICE_SQL,
        vec![
            limit.into(),
            now.into(),
            (now + lapse_warning_before).into(),
            limit.into(),
        ],
    )
}

/// Connections whose user has not yet been told what they must know.
pub async fn needing_notice(
    db: &impl SqlExecutor,
    now: DateTime<Utc>,
    lapse_warning_before: Duration,
    limit: u32,
) -> Result<Vec<Notice>, StorageError> {
    #[derive(Deserialize)]
    struct NoticeRow {
        id: String,
        kind: String,
        user_id: String,
        email: String,
        name: Option<String>,
        locale: String,
        region: String,
        last_error: Option<String>,
        refresh_expires_at: i64,
        token_generation: i64,
    }
    let rows: Vec<NoticeRow> =
        query_all(db, notice_statement(now, lapse_warning_before, limit)).await?;
    rows.into_iter()
        .map(|r| {
            Ok(Notice {
                kind: if r.kind == "reconnect" {
                    NoticeKind::ReconnectNeeded
                } else {
                    NoticeKind::LapsingSoon
                },
                region: r
                    .region
                    .parse()
                    .map_err(|e: crate::region::UnknownRegion| {
                        StorageError::Decode(e.to_string())
                    })?,
                refresh_expires_at: from_unix(r.refresh_expires_at)?,
                connection_id: r.id,
                user_id: r.user_id,
                email: r.email,
                name: r.name,
                locale: r.locale,
                last_error: r.last_error,
                token_generation: r.token_generation,
            })
        })
        .collect()
}

/// Marks a notice as given; runs in the same batch as the queued mail, so
/// the mail and the mark land together or not at all.
pub fn mark_noticed_statement(notice: &Notice, now: DateTime<Utc>) -> Statement {
    match notice.kind {
        NoticeKind::ReconnectNeeded => Statement::new(
            "UPDATE connections SET reconnect_notified_at = ?
             WHERE id = ? AND status = 'refresh_failed'",
            vec![now.into(), notice.connection_id.clone().into()],
        ),
        NoticeKind::LapsingSoon => Statement::new(
            "UPDATE connections SET lapse_warned_for = ? WHERE id = ?",
            vec![
                notice.refresh_expires_at.into(),
                notice.connection_id.clone().into(),
            ],
        ),
    }
}

/// Whether either of the connection's tokens is sealed with a key other
/// than the keyring's current one (a retired key the operator wants gone).
pub fn needs_reseal(keyring: &TokenKeyring, conn: &Connection) -> bool {
    keyring.needs_reseal(&conn.access_token_sealed)
        || keyring.needs_reseal(&conn.refresh_token_sealed)
}

/// Seals the connection's tokens again with the keyring's current key,
/// without changing them: only while the row still holds exactly the
/// ciphertexts that were read (a concurrent refresh wins), and without
/// bumping the token generation (the tokens are the same ones, so a
/// refresher that started from them stays valid). `false`: the row
/// changed meanwhile, nothing written.
pub async fn reseal(
    db: &impl SqlExecutor,
    rng: &impl Randomness,
    keyring: &TokenKeyring,
    conn: &Connection,
) -> Result<bool, ConnectionError> {
    let done = db.execute(reseal_statement(rng, keyring, conn)?).await?;
    Ok(done.changes == 1)
}

/// The statement of [`reseal`], for the cron's batched sweep.
pub fn reseal_statement(
    rng: &impl Randomness,
    keyring: &TokenKeyring,
    conn: &Connection,
) -> Result<Statement, ConnectionError> {
    let (access, refresh) = open_tokens(keyring, conn)?;
    let tokens = ExactTokens {
        access_token: access,
        refresh_token: refresh,
        access_expires_at: conn.access_expires_at,
        refresh_expires_at: conn.refresh_expires_at,
    };
    let (access, refresh) = seal_pair(keyring, rng, &conn.id, &tokens)?;
    Ok(Statement::new(
        "UPDATE connections SET access_token_sealed = ?, refresh_token_sealed = ?
         WHERE id = ? AND access_token_sealed = ? AND refresh_token_sealed = ?",
        vec![
            access.into(),
            refresh.into(),
            conn.id.clone().into(),
            conn.access_token_sealed.clone().into(),
            conn.refresh_token_sealed.clone().into(),
        ],
    ))
}

/// The key id of a sealed value (`v1.<key id>.<…>`) in SQL, so the same
/// expression serves the reseal sweep and the operator's key report.
macro_rules! sealed_key_id {
    ($column:literal) => {
        concat!(
            "CAST(substr(",
            $column,
            ", 4, instr(substr(",
            $column,
            ", 4), '.') - 1) AS INTEGER)"
        )
    };
}

/// Connections with a token sealed by a key other than the current one,
/// for the cron's idle-row sweep (rows in use are resealed as they are
/// read).
pub const STALE_SEAL_SQL: &str = concat!(
    select_connection!("WHERE "),
    sealed_key_id!("access_token_sealed"),
    " <> ? OR ",
    sealed_key_id!("refresh_token_sealed"),
    " <> ? LIMIT ?"
);

/// Up to `limit` connections sealed (partly) with a retired key.
pub async fn sealed_with_old_keys(
    db: &impl SqlExecutor,
    current_key_id: u32,
    limit: u32,
) -> Result<Vec<Connection>, StorageError> {
    query_all::<Row>(
        db,
        Statement::new(
            STALE_SEAL_SQL,
            vec![current_key_id.into(), current_key_id.into(), limit.into()],
        ),
    )
    .await?
    .into_iter()
    .map(Connection::try_from)
    .collect()
}

/// Per key id, how many connections still need it (a row counts for each
/// distinct key its two tokens are sealed with): a key may be retired
/// only when its count is zero. `cargo xtask keys status` runs this text.
pub const KEY_USAGE_SQL: &str = concat!(
    "SELECT key_id, COUNT(DISTINCT id) AS connections FROM (SELECT id, ",
    sealed_key_id!("access_token_sealed"),
    " AS key_id FROM connections UNION ALL SELECT id, ",
    sealed_key_id!("refresh_token_sealed"),
    " AS key_id FROM connections) GROUP BY key_id ORDER BY key_id"
);

/// One line of [`KEY_USAGE_SQL`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct KeyUsage {
    pub key_id: Option<i64>,
    pub connections: u32,
}

pub async fn key_usage(db: &impl SqlExecutor) -> Result<Vec<KeyUsage>, StorageError> {
    query_all(db, Statement::new(KEY_USAGE_SQL, vec![])).await
}
