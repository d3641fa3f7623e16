//! The `login_states` table: the portal's pending "sign in with Exact"
//! attempts. The `state` sent to Exact and the browser cookie that binds
//! the attempt to the browser that started it are random credentials;
//! only their hashes are stored. An attempt is taken once (`DELETE …
//! RETURNING`), by the same browser, within [`LIFETIME`]: a replayed or
//! forwarded callback finds nothing.

use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;

use super::{SqlExecutor, Statement, StorageError, from_unix, query_one};
use crate::crypto::{CredentialKind, Secret, hash_credential, issue_credential};
use crate::ports::Randomness;
use crate::region::Region;

/// How long a sign-in attempt may take at Exact.
pub const LIFETIME: Duration = Duration::minutes(10);

/// A new attempt: `state` goes to Exact, `browser` into a cookie.
#[derive(Debug, Clone)]
pub struct Started {
    pub state: Secret,
    pub browser: Secret,
}

/// A taken attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginState {
    pub region: Region,
    pub return_to: Option<String>,
    pub user_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Deserialize)]
struct Row {
    region: String,
    return_to: Option<String>,
    user_id: Option<String>,
    created_at: i64,
}

/// Records a new attempt. `return_to` must already be a checked
/// same-origin path (`None` otherwise).
pub async fn begin(
    db: &impl SqlExecutor,
    rng: &impl Randomness,
    region: Region,
    return_to: Option<&str>,
    user_id: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Started, StorageError> {
    // Session-kind credentials: 256 random bits with a recognisable prefix.
    let state = issue_credential(rng, CredentialKind::Session)?;
    let browser = issue_credential(rng, CredentialKind::Session)?;
    db.execute(Statement::new(
        "INSERT INTO login_states (state_hash, browser_hash, region, return_to, user_id,
            created_at, expires_at)
         VALUES (?, ?, ?, ?, ?, ?, ?)",
        vec![
            state.hash.into(),
            browser.hash.into(),
            region.code().into(),
            return_to.map(str::to_owned).into(),
            user_id.map(str::to_owned).into(),
            now.into(),
            (now + LIFETIME).into(),
        ],
    ))
    .await?;
    Ok(Started {
        state: state.secret,
        browser: browser.secret,
    })
}

/// Takes the attempt named by `state` if it was started by the browser
/// holding `browser` and has not expired; it can never be taken again.
pub async fn take(
    db: &impl SqlExecutor,
    state: &str,
    browser: &str,
    now: DateTime<Utc>,
) -> Result<Option<LoginState>, StorageError> {
    if state.is_empty() || browser.is_empty() || state.len() > 200 || browser.len() > 200 {
        return Ok(None);
    }
    let row: Option<Row> = query_one(
        db,
        Statement::new(
            "DELETE FROM login_states
              WHERE state_hash = ? AND browser_hash = ? AND expires_at > ?
              RETURNING region, return_to, user_id, created_at",
            vec![
                hash_credential(state).into(),
                hash_credential(browser).into(),
                now.into(),
            ],
        ),
    )
    .await?;
    row.map(|r| {
        Ok(LoginState {
            region: r
                .region
                .parse()
                .map_err(|e: crate::region::UnknownRegion| StorageError::Decode(e.to_string()))?,
            return_to: r.return_to,
            user_id: r.user_id,
            created_at: from_unix(r.created_at)?,
        })
    })
    .transpose()
}

/// Attempts that expired before `now`.
pub fn purge_expired_statement(now: DateTime<Utc>) -> Statement {
    Statement::new(
        "DELETE FROM login_states WHERE expires_at < ?",
        vec![now.into()],
    )
}

/// A same-origin path to return to after signing in, or `None` for
/// anything that could leave the site (`//host`, `/\host`, a scheme, a
/// control character) or is too long.
/// The longest path returned to after signing in: long enough for an
/// OAuth authorization request (a metadata-document client id, a redirect
/// URI, `state`, the PKCE challenge and `resource`, all percent-encoded).
pub const MAX_RETURN_TO: usize = 4096;

pub fn safe_return_to(candidate: &str) -> Option<&str> {
    let ok = candidate.starts_with('/')
        && !candidate.starts_with("//")
        && !candidate.starts_with("/\\")
        && candidate.len() <= MAX_RETURN_TO
        && !candidate.chars().any(|c| c.is_control() || c == '\\');
    ok.then_some(candidate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_same_origin_paths_are_returned_to() {
        for good in [
            "/dashboard",
            "/en/",
            "/oauth/authorize?client_id=a&x=%2F%2F",
        ] {
            assert_eq!(safe_return_to(good), Some(good));
        }
        for bad in [
            "https://evil.example/",
            "//evil.example/",
            "/\\evil.example",
            "evil",
            "",
            "/a\r\nSet-Cookie: x=1",
            "/\u{7f}",
        ] {
            assert_eq!(safe_return_to(bad), None, "{bad:?}");
        }
        let longest = format!("/{}", "a".repeat(MAX_RETURN_TO - 1));
        assert_eq!(safe_return_to(&longest), Some(longest.as_str()));
        assert_eq!(safe_return_to(&format!("{longest}a")), None);
    }
}
