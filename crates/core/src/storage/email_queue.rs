//! The `email_queue` table: mails waiting for delivery by the token cron,
//! with a dedupe key per incident and retry bookkeeping.

use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;

use super::{SqlExecutor, Statement, StorageError, query_all};

/// A mail to queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEmail {
    pub user_id: Option<String>,
    pub to: String,
    /// Template name, for statistics and tests (`reconnect_needed`, ...).
    pub template: &'static str,
    pub subject: String,
    pub html: String,
    pub text: String,
    /// At most one mail per key is ever queued (one per incident).
    pub dedupe_key: Option<String>,
}

/// Queues a mail; a second mail with the same dedupe key is dropped.
pub fn enqueue_statement(mail: &NewEmail, now: DateTime<Utc>) -> Statement {
    Statement::new(
        "INSERT INTO email_queue (user_id, to_email, template, subject, html, text, dedupe_key,
            next_attempt_at, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (dedupe_key) DO NOTHING",
        vec![
            mail.user_id.clone().into(),
            mail.to.clone().into(),
            mail.template.into(),
            mail.subject.clone().into(),
            mail.html.clone().into(),
            mail.text.clone().into(),
            mail.dedupe_key.clone().into(),
            now.into(),
            now.into(),
        ],
    )
}

/// A claimed mail, ready to send.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct QueuedEmail {
    pub id: i64,
    pub to_email: String,
    pub template: String,
    pub subject: String,
    pub html: String,
    pub text: String,
    pub dedupe_key: Option<String>,
    /// Attempts including the one just claimed.
    pub attempts: u32,
}

pub const CLAIM_SQL: &str = "UPDATE email_queue
        SET status = 'sending', attempts = attempts + 1, next_attempt_at = ?
      WHERE id IN (SELECT id FROM email_queue
                    WHERE status IN ('pending', 'sending') AND next_attempt_at <= ?
                    ORDER BY next_attempt_at, id LIMIT ?)
  RETURNING id, to_email, template, subject, html, text, dedupe_key, attempts";

/// Claims up to `limit` due mails in one statement. A claimed mail is not
/// due again for `claim_for`; if the sender dies before recording the
/// result, a later run picks it up again (and the provider's idempotency
/// key keeps it from going out twice).
pub async fn claim_due(
    db: &impl SqlExecutor,
    now: DateTime<Utc>,
    limit: u32,
    claim_for: Duration,
) -> Result<Vec<QueuedEmail>, StorageError> {
    let mut rows: Vec<QueuedEmail> = query_all(
        db,
        Statement::new(
            CLAIM_SQL,
            vec![(now + claim_for).into(), now.into(), limit.into()],
        ),
    )
    .await?;
    rows.sort_by_key(|m| m.id);
    Ok(rows)
}

pub fn mark_sent_statement(id: i64, provider_id: &str, now: DateTime<Utc>) -> Statement {
    Statement::new(
        "UPDATE email_queue SET status = 'sent', provider_id = ?, sent_at = ?, last_error = NULL,
            next_attempt_at = ?
         WHERE id = ?",
        vec![provider_id.into(), now.into(), now.into(), id.into()],
    )
}

pub fn mark_retry_statement(id: i64, at: DateTime<Utc>, error: &str) -> Statement {
    Statement::new(
        "UPDATE email_queue SET status = 'pending', next_attempt_at = ?, last_error = ?
         WHERE id = ?",
        vec![at.into(), error.into(), id.into()],
    )
}

pub fn mark_failed_statement(id: i64, error: &str, now: DateTime<Utc>) -> Statement {
    Statement::new(
        "UPDATE email_queue SET status = 'failed', last_error = ?, next_attempt_at = ?
         WHERE id = ?",
        vec![error.into(), now.into(), id.into()],
    )
}

/// Delivered and given-up mails older than `before` (their
/// `next_attempt_at` is the time they reached that state).
pub fn purge_statement(before: DateTime<Utc>) -> Statement {
    Statement::new(
        "DELETE FROM email_queue WHERE status IN ('sent', 'failed') AND next_attempt_at < ?",
        vec![before.into()],
    )
}
