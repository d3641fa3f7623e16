//! The `sessions` table: portal sign-ins, stored only as the SHA-256 hash
//! of the session token the browser holds in its cookie. Sessions slide:
//! each use within the lifetime extends it (written at most once per
//! [`TOUCH_EVERY`], so a busy dashboard is not a write per page).

use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;

use super::{SqlExecutor, Statement, StorageError, from_unix, query_one};
use crate::crypto::{CredentialKind, Secret, hash_credential, is_well_formed, issue_credential};
use crate::ports::Randomness;

/// A session lives this long after its last use.
pub const LIFETIME: Duration = Duration::days(30);
/// A session's expiry is pushed forward at most this often.
pub const TOUCH_EVERY: Duration = Duration::hours(1);

/// A signed-in browser, as a request sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The hash the row is keyed by (the CSRF token is bound to it).
    pub token_hash: String,
    pub user_id: String,
    pub expires_at: DateTime<Utc>,
    pub last_seen_at: Option<DateTime<Utc>>,
}

#[derive(Deserialize)]
struct Row {
    token_hash: String,
    user_id: String,
    expires_at: i64,
    last_seen_at: Option<i64>,
}

/// Starts a session for `user_id`: a new random token (never one the
/// browser brought: no fixation). Returns the token for the cookie.
pub async fn create(
    db: &impl SqlExecutor,
    rng: &impl Randomness,
    user_id: &str,
    user_agent: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(Secret, Session), StorageError> {
    let issued = issue_credential(rng, CredentialKind::Session)?;
    let agent: Option<String> = user_agent.map(|a| a.chars().take(200).collect());
    db.execute(Statement::new(
        "INSERT INTO sessions (token_hash, user_id, created_at, expires_at, last_seen_at, user_agent)
         VALUES (?, ?, ?, ?, ?, ?)",
        vec![
            issued.hash.clone().into(),
            user_id.into(),
            now.into(),
            (now + LIFETIME).into(),
            now.into(),
            agent.into(),
        ],
    ))
    .await?;
    Ok((
        issued.secret,
        Session {
            token_hash: issued.hash,
            user_id: user_id.to_owned(),
            expires_at: now + LIFETIME,
            last_seen_at: Some(now),
        },
    ))
}

/// The live session of a cookie value, extending it if its last touch is
/// older than [`TOUCH_EVERY`]. `None` for anything else (malformed,
/// unknown, expired, revoked): the caller treats the browser as signed
/// out.
pub async fn find_live(
    db: &impl SqlExecutor,
    token: &str,
    now: DateTime<Utc>,
) -> Result<Option<Session>, StorageError> {
    if !is_well_formed(CredentialKind::Session, token) {
        return Ok(None);
    }
    let hash = hash_credential(token);
    let row: Option<Row> = query_one(
        db,
        Statement::new(
            "SELECT token_hash, user_id, expires_at, last_seen_at FROM sessions
             WHERE token_hash = ? AND expires_at > ?",
            vec![hash.clone().into(), now.into()],
        ),
    )
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let mut session = Session {
        token_hash: row.token_hash,
        user_id: row.user_id,
        expires_at: from_unix(row.expires_at)?,
        last_seen_at: row.last_seen_at.map(from_unix).transpose()?,
    };
    if session.last_seen_at.is_none_or(|t| now - t >= TOUCH_EVERY) {
        db.execute(Statement::new(
            "UPDATE sessions SET last_seen_at = ?, expires_at = ? WHERE token_hash = ?",
            vec![now.into(), (now + LIFETIME).into(), hash.into()],
        ))
        .await?;
        session.last_seen_at = Some(now);
        session.expires_at = now + LIFETIME;
    }
    Ok(Some(session))
}

/// Ends one session (sign out).
pub async fn revoke(db: &impl SqlExecutor, token_hash: &str) -> Result<(), StorageError> {
    db.execute(Statement::new(
        "DELETE FROM sessions WHERE token_hash = ?",
        vec![token_hash.into()],
    ))
    .await?;
    Ok(())
}

/// Ends every session of a user (account deletion, "sign out everywhere").
pub fn revoke_all_statement(user_id: &str) -> Statement {
    Statement::new(
        "DELETE FROM sessions WHERE user_id = ?",
        vec![user_id.into()],
    )
}

/// Deletes sessions that expired before `now`.
pub fn purge_expired_statement(now: DateTime<Utc>) -> Statement {
    Statement::new(
        "DELETE FROM sessions WHERE expires_at < ?",
        vec![now.into()],
    )
}
