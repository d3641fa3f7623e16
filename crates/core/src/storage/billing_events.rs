//! The `billing_events` table: every Stripe event id seen, inserted in
//! the same batch as its effect, so an event is applied once however
//! often Stripe delivers it.

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{SqlExecutor, Statement, StorageError, query_all};

/// Whether an event was already processed.
pub async fn seen(db: &impl SqlExecutor, event_id: &str) -> Result<bool, StorageError> {
    #[derive(Deserialize)]
    struct Seen {
        n: i64,
    }
    let rows: Vec<Seen> = query_all(
        db,
        Statement::new(
            "SELECT COUNT(*) AS n FROM billing_events WHERE event_id = ?",
            vec![event_id.into()],
        ),
    )
    .await?;
    Ok(rows.first().is_some_and(|r| r.n > 0))
}

/// An event as processed: its outcome in words, the user and plan when it
/// changed one. A second insert of the same id fails the batch it is in
/// (its primary key), so the effect beside it is not applied twice.
pub fn insert_statement(
    event_id: &str,
    event_type: &str,
    user_id: Option<&str>,
    plan_after: Option<&str>,
    outcome: &str,
    now: DateTime<Utc>,
) -> Statement {
    Statement::new(
        "INSERT INTO billing_events (event_id, provider, event_type, user_id, plan_after,
            received_at, processed_at, outcome)
         VALUES (?, 'stripe', ?, ?, ?, ?, ?, ?)",
        vec![
            event_id.into(),
            event_type.into(),
            user_id.into(),
            plan_after.into(),
            now.into(),
            now.into(),
            outcome.into(),
        ],
    )
}
