//! The `error_log` table: internal errors an operator must be able to
//! find later, one row each (every answer the edge turns into a 5xx, a
//! failed cron run), with the service, a stable kind, a scrubbed message,
//! the request id and the user when known.
//!
//! Messages are cause chains, which may quote URLs carrying an OAuth
//! `code`, tokens or keys; [`scrub`] takes those out before a row is
//! built, so no caller can store one by mistake.

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{SqlExecutor, Statement, StorageError, query_all};

/// Which Worker logged the error (the table's CHECK).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    McpServer,
    AuthPortal,
    TokenCron,
}

impl Service {
    pub const fn as_str(self) -> &'static str {
        match self {
            Service::McpServer => "mcp-server",
            Service::AuthPortal => "auth-portal",
            Service::TokenCron => "token-cron",
        }
    }
}

/// Longest message kept.
pub const MAX_MESSAGE: usize = 500;

/// Query parameters and `key=value` pairs whose value is never kept.
const SECRET_NAMES: [&str; 11] = [
    "code",
    "token",
    "access_token",
    "refresh_token",
    "id_token",
    "client_secret",
    "secret",
    "password",
    "key",
    "api_key",
    "state",
];

/// Prefixes of credentials this product issues or holds.
const CREDENTIAL_PREFIXES: [&str; 5] = ["pmjb_", "sk_", "rk_", "whsec_", "v1."];

/// A message with every secret-looking part replaced by `[redacted]`: URL
/// query strings, `name=value` pairs of secret names, bearer credentials
/// and words that start like a credential; capped at [`MAX_MESSAGE`].
pub fn scrub(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(MAX_MESSAGE));
    let mut redact_next = false;
    for (i, word) in message.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        if redact_next {
            out.push_str("[redacted]");
            redact_next = false;
            continue;
        }
        if word.eq_ignore_ascii_case("bearer") || word.eq_ignore_ascii_case("basic") {
            out.push_str(word);
            redact_next = true;
            continue;
        }
        out.push_str(&scrub_word(word));
    }
    out.chars().take(MAX_MESSAGE).collect()
}

fn scrub_word(word: &str) -> String {
    let bare = word.trim_start_matches(['"', '\'', '(', '<', '[']);
    if CREDENTIAL_PREFIXES.iter().any(|p| bare.starts_with(p)) && bare.len() > 12 {
        return "[redacted]".to_owned();
    }
    // A URL keeps its origin and path, never its query or fragment.
    if bare.starts_with("http://") || bare.starts_with("https://") {
        if let Some(q) = word.find(['?', '#']) {
            return format!("{}?[redacted]", &word[..q]);
        }
        return word.to_owned();
    }
    // `name=value` (and `a=1&b=2` runs) of secret names.
    if word.contains('=') {
        return word
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _)) if is_secret_name(name) => format!("{name}=[redacted]"),
                _ => pair.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("&");
    }
    word.to_owned()
}

fn is_secret_name(name: &str) -> bool {
    let name = name
        .trim_start_matches(['"', '\'', '(', '{', '?'])
        .to_ascii_lowercase();
    SECRET_NAMES.contains(&name.as_str())
}

/// One error row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorRecord<'a> {
    pub service: Service,
    /// A stable kind: the error enum's variant or code (`unavailable`,
    /// `run_failed`, ...).
    pub kind: &'a str,
    /// The cause chain; scrubbed when the row is built.
    pub message: &'a str,
    pub request_id: Option<&'a str>,
    pub user_id: Option<&'a str>,
}

/// The insert of one error row (message scrubbed).
pub fn insert_statement(record: &ErrorRecord<'_>, now: DateTime<Utc>) -> Statement {
    Statement::new(
        "INSERT INTO error_log (service, kind, message, request_id, user_id, at)
         VALUES (?, ?, ?, ?, ?, ?)",
        vec![
            record.service.as_str().into(),
            record.kind.chars().take(64).collect::<String>().into(),
            scrub(record.message).into(),
            record.request_id.into(),
            record.user_id.into(),
            now.into(),
        ],
    )
}

/// Errors older than `before`.
pub fn purge_statement(before: DateTime<Utc>) -> Statement {
    Statement::new("DELETE FROM error_log WHERE at < ?", vec![before.into()])
}

/// A service's error rows since `since`, as `n`: for the alert check, the
/// mcp-server's 5xx that never reached a tool (D1 failing before the
/// caller was loaded) and the token cron's runs that could not start or
/// be recorded.
pub fn count_since_statement(service: Service, since: DateTime<Utc>) -> Statement {
    Statement::new(
        "SELECT COUNT(*) AS n FROM error_log WHERE service = ? AND at >= ?",
        vec![service.as_str().into(), since.into()],
    )
}

/// A stored row.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct StoredError {
    pub service: String,
    pub kind: String,
    pub message: String,
    pub request_id: Option<String>,
    pub user_id: Option<String>,
    pub at: i64,
}

/// The newest rows first, for operators and tests.
pub async fn recent(db: &impl SqlExecutor, limit: u32) -> Result<Vec<StoredError>, StorageError> {
    query_all(
        db,
        Statement::new(
            "SELECT service, kind, message, request_id, user_id, at
               FROM error_log ORDER BY id DESC LIMIT ?",
            vec![limit.into()],
        ),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_in_a_cause_chain_are_scrubbed() {
        let chain = "exchange failed: POST https://start.exactonline.nl/api/oauth2/token?code=abc123&state=xyz: \
            body grant_type=authorization_code&code=SECRETCODE&client_secret=shh refresh_token=rt-1 \
            Authorization: Bearer eyJhbGciOi key pmjb_0123456789abcdef0123456789 sk_test_51abcdefghijkl";
        let clean = scrub(chain);
        for secret in [
            "abc123",
            "xyz",
            "SECRETCODE",
            "shh",
            "rt-1",
            "eyJhbGciOi",
            "pmjb_0123456789abcdef0123456789",
            "sk_test_51abcdefghijkl",
        ] {
            assert!(!clean.contains(secret), "{secret} left in {clean}");
        }
        assert!(clean.contains("https://start.exactonline.nl/api/oauth2/token?[redacted]"));
        assert!(clean.contains("grant_type=authorization_code"), "{clean}");
        assert!(clean.starts_with("exchange failed:"));
    }

    #[test]
    fn plain_messages_pass_unchanged_and_long_ones_are_capped() {
        let plain = "database unavailable: D1_ERROR: network connection lost";
        assert_eq!(scrub(plain), plain);
        assert_eq!(scrub(&"x ".repeat(1_000)).chars().count(), MAX_MESSAGE);
    }
}
