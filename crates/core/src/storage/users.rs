//! The `users` table.

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{SqlExecutor, Statement, StorageError, from_unix, new_id, query_one};
use crate::plan::Plan;
use crate::ports::Randomness;

#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: String,
    pub email: String,
    pub name: Option<String>,
    pub plan: Plan,
    pub created_at: DateTime<Utc>,
}

#[derive(Deserialize)]
struct UserRow {
    id: String,
    email: String,
    name: Option<String>,
    plan: String,
    created_at: i64,
}

impl TryFrom<UserRow> for User {
    type Error = StorageError;

    fn try_from(r: UserRow) -> Result<Self, StorageError> {
        Ok(User {
            plan: r
                .plan
                .parse()
                .map_err(|e: crate::plan::UnknownPlan| StorageError::Decode(e.to_string()))?,
            created_at: from_unix(r.created_at)?,
            id: r.id,
            email: r.email,
            name: r.name,
        })
    }
}

/// Creates the user for `email`, or returns the existing one (e-mail is
/// case-insensitive). The name is refreshed when one is given.
pub async fn upsert_by_email(
    db: &impl SqlExecutor,
    rng: &impl Randomness,
    email: &str,
    name: Option<&str>,
    now: DateTime<Utc>,
) -> Result<User, StorageError> {
    let id = new_id(rng)?;
    db.execute(Statement::new(
        "INSERT INTO users (id, email, name, created_at, updated_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (email) DO UPDATE SET name = COALESCE(excluded.name, users.name),
                                           updated_at = excluded.updated_at",
        vec![id.into(), email.into(), name.into(), now.into(), now.into()],
    ))
    .await?;
    find_by_email(db, email)
        .await?
        .ok_or_else(|| StorageError::Query("user vanished after upsert".into()))
}

pub async fn find_by_id(db: &impl SqlExecutor, id: &str) -> Result<Option<User>, StorageError> {
    query_one::<UserRow>(
        db,
        Statement::new(
            "SELECT id, email, name, plan, created_at FROM users WHERE id = ? AND status = 'active'",
            vec![id.into()],
        ),
    )
    .await?
    .map(User::try_from)
    .transpose()
}

pub async fn find_by_email(
    db: &impl SqlExecutor,
    email: &str,
) -> Result<Option<User>, StorageError> {
    query_one::<UserRow>(
        db,
        Statement::new(
            "SELECT id, email, name, plan, created_at FROM users WHERE email = ? AND status = 'active'",
            vec![email.into()],
        ),
    )
    .await?
    .map(User::try_from)
    .transpose()
}

/// Changes a user's plan; returns whether the user exists.
pub async fn set_plan(
    db: &impl SqlExecutor,
    id: &str,
    plan: Plan,
    now: DateTime<Utc>,
) -> Result<bool, StorageError> {
    let done = db
        .execute(Statement::new(
            "UPDATE users SET plan = ?, updated_at = ? WHERE id = ?",
            vec![plan.as_str().into(), now.into(), id.into()],
        ))
        .await?;
    Ok(done.changes == 1)
}

/// A user's portal language and mail choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preferences {
    /// `nl` or `en` (the CHECK of `users.locale`).
    pub english: bool,
    pub usage_warnings: bool,
    pub product_updates: bool,
}

pub async fn preferences(
    db: &impl SqlExecutor,
    id: &str,
) -> Result<Option<Preferences>, StorageError> {
    #[derive(serde::Deserialize)]
    struct Row {
        locale: String,
        email_usage_warnings: i64,
        email_product_updates: i64,
    }
    Ok(query_one::<Row>(
        db,
        Statement::new(
            "SELECT locale, email_usage_warnings, email_product_updates FROM users WHERE id = ?",
            vec![id.into()],
        ),
    )
    .await?
    .map(|r| Preferences {
        english: r.locale == "en",
        usage_warnings: r.email_usage_warnings != 0,
        product_updates: r.email_product_updates != 0,
    }))
}

pub async fn set_preferences(
    db: &impl SqlExecutor,
    id: &str,
    prefs: Preferences,
    now: DateTime<Utc>,
) -> Result<bool, StorageError> {
    let done = db
        .execute(Statement::new(
            "UPDATE users SET locale = ?, email_usage_warnings = ?, email_product_updates = ?,
                updated_at = ?
             WHERE id = ?",
            vec![
                (if prefs.english { "en" } else { "nl" }).into(),
                i64::from(prefs.usage_warnings).into(),
                i64::from(prefs.product_updates).into(),
                now.into(),
                id.into(),
            ],
        ))
        .await?;
    Ok(done.changes == 1)
}
