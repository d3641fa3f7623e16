//! The `api_keys` table. Only hashes and display prefixes are stored; the
//! key itself is shown to the user once, at creation.

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{SqlExecutor, Statement, StorageError, from_unix, new_id, query_all, query_one};
use crate::crypto::{
    CredentialKind, IssuedCredential, hash_credential, is_well_formed, issue_credential,
};
use crate::plan::Plan;
use crate::ports::Randomness;

#[derive(Debug, Clone, PartialEq)]
pub struct ApiKeyRecord {
    pub id: String,
    pub user_id: String,
    pub name: String,
    pub key_prefix: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Deserialize)]
struct Row {
    id: String,
    user_id: String,
    name: String,
    key_prefix: String,
    created_at: i64,
    last_used_at: Option<i64>,
    revoked_at: Option<i64>,
}

impl TryFrom<Row> for ApiKeyRecord {
    type Error = StorageError;
    fn try_from(r: Row) -> Result<Self, StorageError> {
        Ok(ApiKeyRecord {
            created_at: from_unix(r.created_at)?,
            last_used_at: r.last_used_at.map(from_unix).transpose()?,
            revoked_at: r.revoked_at.map(from_unix).transpose()?,
            id: r.id,
            user_id: r.user_id,
            name: r.name,
            key_prefix: r.key_prefix,
        })
    }
}

/// Why a key could not be created.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CreateKeyError {
    #[error("the {plan} plan allows {limit} active API keys; revoke one or upgrade")]
    LimitReached { plan: Plan, limit: u32 },
    #[error("a key name must be 1 to 100 characters")]
    InvalidName,
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// A created key: the record and the secret to show exactly once.
#[derive(Debug)]
pub struct CreatedKey {
    pub record: ApiKeyRecord,
    pub issued: IssuedCredential,
}

/// Creates a key for the user if their plan allows another active one.
/// The count and the insert run as one conditional statement, so two
/// concurrent creations cannot both slip under the limit.
pub async fn create(
    db: &impl SqlExecutor,
    rng: &impl Randomness,
    user_id: &str,
    plan: Plan,
    name: &str,
    now: DateTime<Utc>,
) -> Result<CreatedKey, CreateKeyError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(CreateKeyError::InvalidName);
    }
    let issued = issue_credential(rng, CredentialKind::ApiKey).map_err(StorageError::from)?;
    let id = new_id(rng).map_err(StorageError::from)?;
    let cap = plan.limits().api_keys.cap_for_sql();
    let done = db
        .execute(Statement::new(
            "INSERT INTO api_keys (id, user_id, name, key_hash, key_prefix, created_at)
             SELECT ?, ?, ?, ?, ?, ?
             WHERE (SELECT COUNT(*) FROM api_keys WHERE user_id = ? AND revoked_at IS NULL) < ?",
            vec![
                id.clone().into(),
                user_id.into(),
                name.into(),
                issued.hash.clone().into(),
                issued.display_prefix.clone().into(),
                now.into(),
                user_id.into(),
                cap.into(),
            ],
        ))
        .await?;
    if done.changes == 0 {
        let limit = match plan.limits().api_keys {
            crate::plan::Limit::Capped(n) => n,
            crate::plan::Limit::Unlimited => u32::MAX,
        };
        return Err(CreateKeyError::LimitReached { plan, limit });
    }
    let record = ApiKeyRecord {
        id,
        user_id: user_id.to_owned(),
        name: name.to_owned(),
        key_prefix: issued.display_prefix.clone(),
        created_at: now,
        last_used_at: None,
        revoked_at: None,
    };
    Ok(CreatedKey { record, issued })
}

/// Finds the active key matching a presented secret. Malformed input is
/// rejected without touching the database.
pub async fn find_active_by_secret(
    db: &impl SqlExecutor,
    presented: &str,
) -> Result<Option<ApiKeyRecord>, StorageError> {
    if !is_well_formed(CredentialKind::ApiKey, presented) {
        return Ok(None);
    }
    query_one::<Row>(
        db,
        Statement::new(
            "SELECT id, user_id, name, key_prefix, created_at, last_used_at, revoked_at
             FROM api_keys WHERE key_hash = ? AND revoked_at IS NULL",
            vec![hash_credential(presented).into()],
        ),
    )
    .await?
    .map(ApiKeyRecord::try_from)
    .transpose()
}

/// A user's keys, newest first, revoked ones included.
pub async fn list_for_user(
    db: &impl SqlExecutor,
    user_id: &str,
) -> Result<Vec<ApiKeyRecord>, StorageError> {
    query_all::<Row>(
        db,
        Statement::new(
            "SELECT id, user_id, name, key_prefix, created_at, last_used_at, revoked_at
             FROM api_keys WHERE user_id = ? ORDER BY created_at DESC, id",
            vec![user_id.into()],
        ),
    )
    .await?
    .into_iter()
    .map(ApiKeyRecord::try_from)
    .collect()
}

/// Revokes one of the user's own keys. Another user's key id changes
/// nothing and reports `false`.
/// Renames one of the user's active keys; `Ok(false)`: not theirs, or
/// revoked. Names follow the same rule as at creation.
pub async fn rename(
    db: &impl SqlExecutor,
    user_id: &str,
    key_id: &str,
    name: &str,
) -> Result<bool, CreateKeyError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(CreateKeyError::InvalidName);
    }
    let done = db
        .execute(Statement::new(
            "UPDATE api_keys SET name = ? WHERE id = ? AND user_id = ? AND revoked_at IS NULL",
            vec![name.into(), key_id.into(), user_id.into()],
        ))
        .await?;
    Ok(done.changes == 1)
}

pub async fn revoke(
    db: &impl SqlExecutor,
    user_id: &str,
    key_id: &str,
    now: DateTime<Utc>,
) -> Result<bool, StorageError> {
    let done = db
        .execute(Statement::new(
            "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND user_id = ? AND revoked_at IS NULL",
            vec![now.into(), key_id.into(), user_id.into()],
        ))
        .await?;
    Ok(done.changes == 1)
}

/// The write of [`touch_last_used`], for the batch after the answer.
pub fn touch_statement(key_id: &str, now: DateTime<Utc>) -> Statement {
    Statement::new(
        "UPDATE api_keys SET last_used_at = ? WHERE id = ?",
        vec![now.into(), key_id.into()],
    )
}

pub async fn touch_last_used(
    db: &impl SqlExecutor,
    key_id: &str,
    now: DateTime<Utc>,
) -> Result<(), StorageError> {
    db.execute(Statement::new(
        "UPDATE api_keys SET last_used_at = ? WHERE id = ?",
        vec![now.into(), key_id.into()],
    ))
    .await?;
    Ok(())
}

/// Deletes keys revoked before `cutoff` (housekeeping batches it).
pub fn purge_revoked_statement(cutoff: DateTime<Utc>) -> Statement {
    Statement::new(
        "DELETE FROM api_keys WHERE revoked_at IS NOT NULL AND revoked_at < ?",
        vec![cutoff.into()],
    )
}

/// Deletes keys revoked before `cutoff`; returns how many.
pub async fn purge_revoked_before(
    db: &impl SqlExecutor,
    cutoff: DateTime<Utc>,
) -> Result<u64, StorageError> {
    Ok(db.execute(purge_revoked_statement(cutoff)).await?.changes)
}

/// The plan's key cap when a live key of an active user is refused only
/// because it is beyond that cap (a smaller plan stops the newest keys):
/// the refusal then says why. `None` for any other key.
pub async fn beyond_plan_cap(
    db: &impl SqlExecutor,
    presented: &str,
) -> Result<Option<u32>, StorageError> {
    if !is_well_formed(CredentialKind::ApiKey, presented) {
        return Ok(None);
    }
    #[derive(Deserialize)]
    struct Rank {
        older: i64,
        plan: String,
    }
    let Some(rank) = query_one::<Rank>(
        db,
        Statement::new(
            "SELECT (SELECT COUNT(*) FROM api_keys o WHERE o.user_id = k.user_id
                       AND o.revoked_at IS NULL
                       AND (o.created_at < k.created_at OR (o.created_at = k.created_at AND o.id < k.id))) AS older,
                    u.plan AS plan
             FROM api_keys k JOIN users u ON u.id = k.user_id AND u.status = 'active'
             WHERE k.key_hash = ? AND k.revoked_at IS NULL",
            vec![hash_credential(presented).into()],
        ),
    )
    .await?
    else {
        return Ok(None);
    };
    let plan: crate::plan::Plan = rank
        .plan
        .parse()
        .map_err(|_| StorageError::Decode(format!("plan {}", rank.plan)))?;
    let older = u64::try_from(rank.older).unwrap_or(0);
    Ok(match plan.limits().api_keys {
        crate::plan::Limit::Capped(cap)
            if !crate::billing::limits::key_within_plan(older, plan) =>
        {
            Some(cap)
        }
        _ => None,
    })
}
