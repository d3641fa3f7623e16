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
use crate::ports::{HttpTransport, Randomness, Sleep, TransportError, within};
use crate::region::Region;
use crate::storage::connections::{self, Connection, ConnectionError, TokenSlot};
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
/// The whole token exchange with Exact (request, headers, body) must end
/// within this; with the store attempts and their pauses a refresh stays
/// well inside [`LEASE_TTL`] (tested).
pub const TOKEN_EXCHANGE_DEADLINE_MS: u64 = 10_000;

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
        reseal_if_retired(ctx, &conn).await;
        return Ok(ok);
    }
    refresh_now(ctx, connection_id, owner, now).await
}

/// Reseals a connection read with a retired key, so a key rotation
/// finishes for every connection in use. Best effort: a failure only
/// leaves it for the next read or the cron's sweep.
async fn reseal_if_retired<D: SqlExecutor, H, R: Randomness, S>(
    ctx: &AccessContext<'_, D, H, R, S>,
    conn: &Connection,
) {
    if connections::needs_reseal(ctx.keyring, conn) {
        let _ = connections::reseal(ctx.db, ctx.rng, ctx.keyring, conn).await;
    }
}

/// The access token of a connection row just read, when it is usable
/// as it is (the common case: no lease, no refresh, no further read);
/// reseals the row first if it was sealed with a retired key. `None`:
/// a refresh is due (or the connection failed): go through
/// [`RefreshJob`].
pub async fn handout<D: SqlExecutor, H, R: Randomness, S>(
    ctx: &AccessContext<'_, D, H, R, S>,
    conn: &Connection,
    now: DateTime<Utc>,
) -> Result<Option<FreshAccess>, AccessError> {
    if conn.state.status == ConnectionStatus::RefreshFailed {
        return Ok(None);
    }
    let fresh = usable(conn, ctx.keyring, now)?;
    if fresh.is_some() {
        reseal_if_retired(ctx, conn).await;
    }
    Ok(fresh)
}

/// Which entry point a [`RefreshJob`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshKind {
    /// [`fresh_access`]: refresh only if due.
    IfDue,
    /// [`refresh_now`]: Exact refused the access token early (a 401).
    Now,
}

/// An on-demand refresh described by owned values, so the platform can
/// run it detached from the request that needs it (on Workers inside
/// `ctx.wait_until`, the request awaiting the result): Exact rotates the
/// refresh token the moment it answers, so a refresh cancelled between
/// that answer and the store (the client went away) would lose the only
/// live refresh token.
#[derive(Debug, Clone)]
pub struct RefreshJob {
    pub keyring: TokenKeyring,
    pub app: ExactApp,
    pub connection_id: String,
    /// Names the caller in the lease (the request id).
    pub owner: String,
    pub now: DateTime<Utc>,
    pub kind: RefreshKind,
}

impl RefreshJob {
    /// Runs the refresh over the given effects.
    pub async fn run<D: SqlExecutor, H: HttpTransport, R: Randomness, S: Sleep>(
        &self,
        db: &D,
        http: &H,
        rng: &R,
        sleep: &S,
    ) -> Result<FreshAccess, AccessError> {
        let ctx = AccessContext {
            db,
            http,
            rng,
            sleep,
            keyring: &self.keyring,
            app: &self.app,
        };
        match self.kind {
            RefreshKind::IfDue => {
                fresh_access(&ctx, &self.connection_id, &self.owner, self.now).await
            }
            RefreshKind::Now => refresh_now(&ctx, &self.connection_id, &self.owner, self.now).await,
        }
    }
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
    /// A transient failure: retry scheduled by the lifecycle. `reason` is
    /// the secret-free short reason (the cron's breaker compares them).
    RetryScheduled {
        at: Option<DateTime<Utc>>,
        reason: String,
    },
    /// Exact refused our app (`invalid_client`): nothing was recorded on
    /// the connection, and no other refresh can succeed either.
    ClientRejected,
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
        Err(AccessError::Refresh {
            error: ExactError::ClientRejected,
            ..
        }) => Ok(CronRefresh::ClientRejected),
        Err(AccessError::Refresh {
            retry_at, error, ..
        }) => Ok(CronRefresh::RetryScheduled {
            at: retry_at,
            reason: error.short_reason(),
        }),
        // Someone else's newer tokens replaced the ones we refreshed from.
        Err(AccessError::LeaseBusy) => Ok(CronRefresh::Skipped("superseded")),
        Err(e) => Err(e),
    }
}

/// The refresh itself, with the lease held and `conn` read under it.
/// Every path releases the lease. Every write is conditional on the token
/// generation read under the lease, so a refresher that turns out to be
/// slow never overwrites what a newer one stored, and never throws away
/// tokens Exact has just rotated.
async fn refresh_locked<D: SqlExecutor, H: HttpTransport, R: Randomness, S: Sleep>(
    ctx: &AccessContext<'_, D, H, R, S>,
    conn: Connection,
    owner: &str,
    now: DateTime<Utc>,
) -> Result<FreshAccess, AccessError> {
    let connection_id = conn.id.as_str();
    let slot = TokenSlot::of(&conn, owner);
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
    // One deadline for the whole exchange (request, headers and body), so
    // that with the store retries the refresh ends well inside the lease.
    let exchange = within(
        ctx.sleep,
        TOKEN_EXCHANGE_DEADLINE_MS,
        oauth::refresh(
            ctx.http,
            ctx.app,
            &refresh_token,
            conn.access_expires_at,
            now,
        ),
    )
    .await
    .unwrap_or(Err(ExactError::Transport(TransportError::Timeout)));
    match exchange {
        Ok(tokens) => store_rotated(ctx, &conn, &slot, tokens, now).await,
        // The refresh token was rotated away. If someone else stored the
        // tokens that replaced it, this is no failure at all.
        Err(ExactError::RefreshTokenReused) => match superseded(ctx, &slot, now).await? {
            Some(outcome) => outcome,
            None => {
                record_failure(
                    ctx,
                    &conn,
                    &slot,
                    ExactError::RefreshTokenReused,
                    false,
                    now,
                )
                .await
            }
        },
        // Our app registration is refused: no connection is at fault, so
        // none is charged with it (state, retries, mails untouched).
        Err(ExactError::ClientRejected) => {
            connections::release_lease(ctx.db, connection_id, owner).await?;
            Err(AccessError::Refresh {
                error: ExactError::ClientRejected,
                reconnect_needed: false,
                retry_at: conn.state.next_retry_at,
            })
        }
        Err(e) => record_failure(ctx, &conn, &slot, e, early, now).await,
    }
}

/// After a reuse refusal: `Some` when the tokens were replaced by a newer
/// generation (their access token, or `LeaseBusy` so the caller asks
/// again when that one is already due too), `None` when ours is still the
/// stored generation, so the reuse is real.
async fn superseded<D: SqlExecutor, H, R, S>(
    ctx: &AccessContext<'_, D, H, R, S>,
    slot: &TokenSlot<'_>,
    now: DateTime<Utc>,
) -> Result<Option<Result<FreshAccess, AccessError>>, AccessError> {
    let Some(current) = connections::find_by_id(ctx.db, slot.id).await? else {
        return Ok(Some(Err(AccessError::NoConnection)));
    };
    if current.token_generation == slot.generation {
        return Ok(None);
    }
    let _ = connections::release_lease(ctx.db, slot.id, slot.owner).await;
    Ok(Some(match usable(&current, ctx.keyring, now)? {
        Some(fresh) => Ok(fresh),
        None => Err(AccessError::LeaseBusy),
    }))
}

/// Stores tokens Exact has just rotated (the stored refresh token is dead
/// from this moment), retrying through database blips.
async fn store_rotated<D: SqlExecutor, H, R: Randomness, S: Sleep>(
    ctx: &AccessContext<'_, D, H, R, S>,
    conn: &Connection,
    slot: &TokenSlot<'_>,
    tokens: oauth::TokenSet,
    now: DateTime<Utc>,
) -> Result<FreshAccess, AccessError> {
    let exact = tokens.into_exact_tokens();
    let fresh = FreshAccess {
        access_token: exact.access_token.clone(),
        expires_at: exact.access_expires_at,
        refreshed: true,
    };
    for attempt in 1..=STORE_ATTEMPTS {
        match connections::store_refreshed(ctx.db, ctx.rng, ctx.keyring, slot, &exact, now).await {
            Ok(true) => return Ok(fresh),
            // A newer generation is stored (the user reconnected while we
            // refreshed): those tokens are live; ours still serve this
            // request.
            Ok(false) => return Ok(fresh),
            // Any storage failure is retried: Exact has already rotated,
            // so the stored refresh token is dead and these tokens are the
            // only live ones.
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
    // Exact has rotated: the stored refresh token is dead. Record that
    // plainly instead of failing silently later.
    let failed = transition(
        &conn.state,
        &TokenEvent::RefreshFailed(RefreshFailure::Permanent(
            "new tokens could not be stored".into(),
        )),
        now,
    );
    let _ = connections::store_state(ctx.db, slot, &failed.state, now).await;
    Err(AccessError::TokensLost)
}

/// Records a failed refresh in the lifecycle (unless a newer generation
/// made it moot) and releases the lease.
async fn record_failure<D: SqlExecutor, H, R, S>(
    ctx: &AccessContext<'_, D, H, R, S>,
    conn: &Connection,
    slot: &TokenSlot<'_>,
    error: ExactError,
    early: bool,
    now: DateTime<Utc>,
) -> Result<FreshAccess, AccessError> {
    let failure = error.refresh_failure();
    if early && matches!(failure, RefreshFailure::Transient(_)) {
        // An on-demand attempt ahead of the schedule: the schedule stands,
        // no retry is spent.
        connections::release_lease(ctx.db, slot.id, slot.owner).await?;
        return Err(AccessError::Refresh {
            error,
            reconnect_needed: false,
            retry_at: conn.state.next_retry_at,
        });
    }
    let tr = transition(&conn.state, &TokenEvent::RefreshFailed(failure), now);
    let recorded = connections::store_state(ctx.db, slot, &tr.state, now).await?;
    let reconnect_needed = recorded
        && tr
            .effects
            .iter()
            .any(|f| matches!(f, Effect::NotifyReconnectNeeded { .. }));
    Err(AccessError::Refresh {
        error,
        reconnect_needed,
        retry_at: tr.state.next_retry_at,
    })
}
