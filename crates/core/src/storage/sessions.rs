//! The `sessions` table (portal sign-ins, stored as token hashes). The
//! portal's reads and writes join this module with its issue; the token
//! cron only purges.

use chrono::{DateTime, Utc};

use super::Statement;

/// Deletes sessions that expired before `now`.
pub fn purge_expired_statement(now: DateTime<Utc>) -> Statement {
    Statement::new(
        "DELETE FROM sessions WHERE expires_at < ?",
        vec![now.into()],
    )
}
