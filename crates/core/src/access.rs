//! Exact access on demand: hands out a usable Exact access token for a
//! connection, refreshing it first when it is due, under the connection's
//! lease in the database (the same lease the token cron takes), so that of
//! all concurrent refreshers exactly one talks to Exact.
//!
//! The order matters because Exact's refresh tokens are single-use: take
//! the lease, re-read the row (another holder may just have refreshed),
//! refresh at Exact, and store the new tokens with the lifecycle state in
//! one statement, retrying that write so a transient database fault after
//! Exact has rotated cannot lose the only valid refresh token.

use chrono::{DateTime, Duration, Utc};

use crate::crypto::{Secret, TokenKeyring};
use crate::exact::ExactError;
use crate::exact::oauth::{self, ExactApp};
use crate::lifecycle::{ConnectionStatus, Effect, RefreshFailure, TokenEvent, transition};
use crate::ports::{HttpTransport, Randomness, Sleep};
use crate::region::Region;
use crate::storage::connections::{self, Connection, ConnectionError};
use crate::storage::{SqlExecutor, StorageError};

/// The Exact app registration and the token keyring, as every Worker that
/// talks to Exact configures them.
#[derive(Debug)]
pub struct ExactSettings {
    pub keyring: TokenKeyring,
    pub client_id: String,
    pub client_secret: Secret,
    pub redirect_uri: String,
    /// One base URL for every region (development against the sandbox or
    /// another Exact-compatible server); `None` uses each region's host.
    pub base_url_override: Option<String>,
}

impl ExactSettings {
    pub fn app_for(&self, region: Region) -> ExactApp {
        ExactApp {
            base_url: self
                .base_url_override
                .clone()
                .unwrap_or_else(|| region.default_base_url().to_owned()),
            client_id: self.client_id.clone(),
            client_secret: self.client_secret.clone(),
            redirect_uri: self.redirect_uri.clone(),
        }
    }
}

/// How long a refresher may hold the lease before others may take over.
pub const LEASE_TTL: Duration = Duration::seconds(30);
/// Attempts to store rotated tokens before giving up.
pub const STORE_ATTEMPTS: u32 = 4;
/// Waits before store attempt 2, 3 and 4: a database blip of a few
/// seconds must not cost the only live refresh token.
pub const STORE_BACKOFF_MS: [u64; 3] = [200, 1_000, 3_000];

/// A usable access token.
#[derive(Debug, Clone)]
pub struct FreshAccess {
    pub access_token: Secret,
    pub expires_at: DateTime<Utc>,
    /// Whether this call refreshed at Exact.
    pub refreshed: bool,
}

/// Why no access token could be handed out.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AccessError {
    #[error("no such Exact connection")]
    NoConnection,
    /// The connection is `refresh_failed`: only a new sign-in helps.
    #[error("the Exact connection must be reconnected")]
    ReconnectNeeded,
    /// Another refresher holds the lease; try again shortly.
    #[error("another refresh of this connection is in progress")]
    LeaseBusy,
    /// The refresh failed; the lifecycle has recorded it.
    /// `reconnect_needed` is set when this failure just made the connection
    /// `refresh_failed`: the caller tells the user (once per incident).
    #[error("refreshing the Exact token failed: {error}")]
    Refresh {
        error: ExactError,
        reconnect_needed: bool,
        /// When the cron retries (a transient failure that was counted).
        retry_at: Option<DateTime<Utc>>,
    },
    /// Exact rotated the tokens but they could not be stored: the
    /// connection is now `refresh_failed`, and the caller tells the user.
    #[error("new Exact tokens could not be stored")]
    TokensLost,
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("stored tokens cannot be opened")]
    Crypto,
}

impl From<ConnectionError> for AccessError {
    fn from(e: ConnectionError) -> Self {
        match e {
            ConnectionError::Storage(s) => AccessError::Storage(s),
            ConnectionError::Crypto(_) => AccessError::Crypto,
        }
    }
}

/// The effects of everything access needs.
#[derive(Debug)]
pub struct AccessContext<'a, D, H, R, S> {
    pub db: &'a D,
    pub http: &'a H,
    pub rng: &'a R,
    /// Waits between attempts to store rotated tokens.
    pub sleep: &'a S,
    pub keyring: &'a TokenKeyring,
    pub app: &'a ExactApp,
}

fn usable(
    conn: &Connection,
    keyring: &TokenKeyring,
    now: DateTime<Utc>,
) -> Result<Option<FreshAccess>, AccessError> {
    if oauth::refresh_due(conn.access_expires_at, now) {
        return Ok(None);
    }
    let (access, _) = connections::open_tokens(keyring, conn).map_err(|_| AccessError::Crypto)?;
    Ok(Some(FreshAccess {
        access_token: access,
        expires_at: conn.access_expires_at,
        refreshed: false,
    }))
}

/// A usable access token for the connection, refreshed if due.
/// `owner` names this caller in the lease (request id, cron run).
pub async fn fresh_access<D: SqlExecutor, H: HttpTransport, R: Randomness, S: Sleep>(
    ctx: &AccessContext<'_, D, H, R, S>,
    connection_id: &str,
    owner: &str,
    now: DateTime<Utc>,
) -> Result<FreshAccess, AccessError> {
    let conn = connections::find_by_id(ctx.db, connection_id)
        .await?
        .ok_or(AccessError::NoConnection)?;
    if conn.state.status == ConnectionStatus::RefreshFailed {
        return Err(AccessError::ReconnectNeeded);
    }
    if let Some(ok) = usable(&conn, ctx.keyring, now)? {
        return Ok(ok);
    }
    refresh_now(ctx, connection_id, owner, now).await
}

/// Takes the lease (reading the row under it in the same round trip);
/// `LeaseBusy` when someone else holds it.
async fn lease<D: SqlExecutor, H, R, S>(
    ctx: &AccessContext<'_, D, H, R, S>,
    connection_id: &str,
    owner: &str,
    now: DateTime<Utc>,
) -> Result<Connection, AccessError> {
    match connections::take_lease(ctx.db, connection_id, owner, now, LEASE_TTL).await? {
        Some(conn) => Ok(conn),
        None => match connections::find_by_id(ctx.db, connection_id).await? {
            Some(_) => Err(AccessError::LeaseBusy),
            None => Err(AccessError::NoConnection),
        },
    }
}

/// Refreshes under the lease if the token's age allows it (on-demand
/// entry point; `fresh_access` calls it when a refresh is due). A refresh
/// before a scheduled retry is allowed (a user is waiting), but its
/// transient failure does not spend a retry.
pub async fn refresh_now<D: SqlExecutor, H: HttpTransport, R: Randomness, S: Sleep>(
    ctx: &AccessContext<'_, D, H, R, S>,
    connection_id: &str,
    owner: &str,
    now: DateTime<Utc>,
) -> Result<FreshAccess, AccessError> {
    let conn = lease(ctx, connection_id, owner, now).await?;
    refresh_locked(ctx, conn, owner, now).await
}

/// What the cron did with one due connection.
#[derive(Debug, Clone, PartialEq)]
pub enum CronRefresh {
    /// Exact handed out new tokens and they are stored.
    Refreshed,
    /// Nothing to do any more: someone else refreshed, holds the lease, or
    /// the retry is not due yet (a duplicate queue message).
    Skipped(&'static str),
    /// A transient failure: retry scheduled by the lifecycle.
    RetryScheduled { at: Option<DateTime<Utc>> },
    /// The connection is now `refresh_failed`; the user is told by the
    /// notice sweep.
    Failed,
}

/// The cron's entry point: refreshes a connection the due query picked,
/// re-checking under the lease that it is still due.
pub async fn refresh_for_cron<D: SqlExecutor, H: HttpTransport, R: Randomness, S: Sleep>(
    ctx: &AccessContext<'_, D, H, R, S>,
    connection_id: &str,
    owner: &str,
    now: DateTime<Utc>,
) -> Result<CronRefresh, AccessError> {
    let conn = match lease(ctx, connection_id, owner, now).await {
        Ok(c) => c,
        Err(AccessError::LeaseBusy) => return Ok(CronRefresh::Skipped("lease busy")),
        Err(AccessError::NoConnection) => return Ok(CronRefresh::Skipped("connection gone")),
        Err(e) => return Err(e),
    };
    let not_yet = conn.state.status == ConnectionStatus::RetryPending
        && conn.state.next_retry_at.is_some_and(|at| at > now);
    if not_yet || conn.state.status == ConnectionStatus::RefreshFailed {
        connections::release_lease(ctx.db, connection_id, owner).await?;
        return Ok(CronRefresh::Skipped(if not_yet {
            "retry not due"
        } else {
            "refresh failed"
        }));
    }
    match refresh_locked(ctx, conn, owner, now).await {
        Ok(a) if a.refreshed => Ok(CronRefresh::Refreshed),
        Ok(_) => Ok(CronRefresh::Skipped("already fresh")),
        Err(AccessError::Refresh {
            reconnect_needed: true,
            ..
        })
        | Err(AccessError::TokensLost) => Ok(CronRefresh::Failed),
        Err(AccessError::Refresh { retry_at, .. }) => {
            Ok(CronRefresh::RetryScheduled { at: retry_at })
        }
        Err(e) => Err(e),
    }
}

/// The refresh itself, with the lease held and `conn` read under it.
/// Every path releases the lease.
async fn refresh_locked<D: SqlExecutor, H: HttpTransport, R: Randomness, S: Sleep>(
    ctx: &AccessContext<'_, D, H, R, S>,
    conn: Connection,
    owner: &str,
    now: DateTime<Utc>,
) -> Result<FreshAccess, AccessError> {
    let connection_id = conn.id.as_str();
    if conn.state.status == ConnectionStatus::RefreshFailed {
        connections::release_lease(ctx.db, connection_id, owner).await?;
        return Err(AccessError::ReconnectNeeded);
    }
    if let Some(ok) = usable(&conn, ctx.keyring, now)? {
        connections::release_lease(ctx.db, connection_id, owner).await?;
        return Ok(ok);
    }
    let (_, refresh_token) = match connections::open_tokens(ctx.keyring, &conn) {
        Ok(t) => t,
        Err(_) => {
            connections::release_lease(ctx.db, connection_id, owner).await?;
            return Err(AccessError::Crypto);
        }
    };
    let early = conn.state.status == ConnectionStatus::RetryPending
        && conn.state.next_retry_at.is_some_and(|at| at > now);
    match oauth::refresh(
        ctx.http,
        ctx.app,
        &refresh_token,
        conn.access_expires_at,
        now,
    )
    .await
    {
        Ok(tokens) => {
            let exact = tokens.into_exact_tokens();
            for attempt in 1..=STORE_ATTEMPTS {
                match connections::store_refreshed(
                    ctx.db,
                    ctx.rng,
                    ctx.keyring,
                    connection_id,
                    owner,
                    &exact,
                    now,
                )
                .await
                {
                    Ok(true) => {
                        return Ok(FreshAccess {
                            access_token: exact.access_token.clone(),
                            expires_at: exact.access_expires_at,
                            refreshed: true,
                        });
                    }
                    // The lease was lost while we refreshed (we were too
                    // slow); the tokens are still ours to store, so retake.
                    Ok(false) => {
                        let _ = connections::try_take_lease(
                            ctx.db,
                            connection_id,
                            owner,
                            now,
                            LEASE_TTL,
                        )
                        .await;
                    }
                    // Any storage failure is retried: Exact has already
                    // rotated, so the stored refresh token is dead and
                    // these tokens are the only live ones.
                    Err(ConnectionError::Storage(_)) if attempt < STORE_ATTEMPTS => {
                        let wait = STORE_BACKOFF_MS
                            .get(attempt as usize - 1)
                            .copied()
                            .unwrap_or(1_000);
                        ctx.sleep.sleep_ms(wait).await;
                    }
                    Err(_) => break,
                }
            }
            // Exact has rotated: the stored refresh token is dead. Record
            // that plainly instead of failing silently later.
            let failed = transition(
                &conn.state,
                &TokenEvent::RefreshFailed(RefreshFailure::Permanent(
                    "new tokens could not be stored".into(),
                )),
                now,
            );
            let _ =
                connections::store_state(ctx.db, connection_id, owner, &failed.state, now).await;
            Err(AccessError::TokensLost)
        }
        Err(e) => {
            let failure = e.refresh_failure();
            if early && matches!(failure, RefreshFailure::Transient(_)) {
                // An on-demand attempt ahead of the schedule: the
                // schedule stands, no retry is spent.
                connections::release_lease(ctx.db, connection_id, owner).await?;
                return Err(AccessError::Refresh {
                    error: e,
                    reconnect_needed: false,
                    retry_at: conn.state.next_retry_at,
                });
            }
            let tr = transition(&conn.state, &TokenEvent::RefreshFailed(failure), now);
            connections::store_state(ctx.db, connection_id, owner, &tr.state, now).await?;
            let reconnect_needed = tr
                .effects
                .iter()
                .any(|f| matches!(f, Effect::NotifyReconnectNeeded { .. }));
            Err(AccessError::Refresh {
                error: e,
                reconnect_needed,
                retry_at: tr.state.next_retry_at,
            })
        }
    }
}
