//! The caller of a customer request, loaded in one database round trip:
//! the credential (an API key or an OAuth access token) checked, the
//! user's plan, connections (with their sealed tokens) and
//! administrations read, and, for a tool call, the monthly meter taken
//! (refused past the plan's limit). One D1 batch, so a tool call reaches
//! Exact after a single round trip however far the database is.
//!
//! Every statement finds the user through the same `caller` expression
//! (`storage::caller`), so the credential is checked by each of them in
//! the batch's one transaction: a key revoked a moment earlier reads
//! nothing and meters nothing. Metering is a conditional upsert whose
//! empty result means "refused", so a refusal never fails the batch.
//! Nothing here is cached: a revoked key or token is refused on the very
//! next request.

use std::cell::Cell;

use chrono::{DateTime, Utc};

use crate::authorization::SCOPE_BOOKS_READ;
use crate::authorization::metadata::{Challenge, McpResource};
use crate::authorization::tokens::AccessRecord;
use crate::crypto::{CredentialKind, hash_credential, is_well_formed};
use crate::plan::Plan;
use crate::storage::administrations::{self, Administration};
use crate::storage::caller::{self as caller_sql, CallerKey};
use crate::storage::connections::{self, Connection};
use crate::storage::usage::{self, Metered, UsageMonth};
use crate::storage::{SqlExecutor, Statement, StorageError, api_keys, oauth_grants, oauth_tokens};

/// How stale an API key's `last_used_at` may get before a call rewrites
/// it (the dashboard shows it to the minute at best).
pub const KEY_TOUCH_EVERY: chrono::Duration = chrono::Duration::minutes(5);

/// What was presented, once it is known to be a well-formed credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    ApiKey {
        key_id: String,
        last_used_at: Option<DateTime<Utc>>,
    },
    OAuth(Box<AccessRecord>),
}

/// The caller and everything a tool call needs from the database.
#[derive(Debug)]
pub struct LoadedCaller {
    pub user_id: String,
    pub plan: Plan,
    pub credential: Credential,
    /// The user's Exact connections, sealed tokens included.
    pub connections: Vec<Connection>,
    /// Every administration of the user, active or not (a grant's
    /// narrowing is applied by the caller of this module).
    pub administrations: Vec<Administration>,
    /// Calls counted this month, this request's included.
    pub used: u64,
    /// The meter's decision, when one was asked for; taken once by the
    /// tool call that consumes it.
    meter: Cell<Option<Metered>>,
}

impl LoadedCaller {
    /// The meter taken in the batch, if any and not yet used.
    pub fn take_meter(&self) -> Option<Metered> {
        self.meter.take()
    }

    /// Whether a meter was taken and is still unused (the request did not
    /// run the tool it was counted for: it is then refunded).
    pub fn meter_unused(&self) -> bool {
        matches!(self.meter.get(), Some(Metered::Allowed { .. }))
    }
}

/// Why a credential is not let in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// Malformed, unknown, revoked, expired, for another resource, or of
    /// an inactive user.
    #[error("invalid credential")]
    Invalid,
    /// A valid OAuth token without the scope tools need.
    #[error("the token lacks the scope {0}")]
    InsufficientScope(&'static str),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// What the request asks of the load.
#[derive(Debug, Clone, Copy)]
pub struct LoadRequest<'a> {
    /// The bearer credential as presented.
    pub credential: &'a str,
    /// This server's MCP URL (OAuth tokens are accepted only for it;
    /// `None`: no OAuth token is).
    pub resource: Option<&'a McpResource>,
    pub now: DateTime<Utc>,
    /// Take the month's meter (a `tools/call` of a known tool).
    pub meter: bool,
}

/// The statements of one load, in batch order, and where each result is.
fn statements(key: &CallerKey, month: UsageMonth, meter: bool) -> Vec<Statement> {
    let mut stmts = Vec::with_capacity(6);
    if meter {
        stmts.push(usage::meter_for_caller_statement(key, month));
    }
    stmts.push(caller_sql::caller_statement(key));
    stmts.push(usage::count_for_caller_statement(key, month));
    stmts.push(connections::for_caller_statement(key));
    stmts.push(administrations::for_caller_statement(key));
    if let CallerKey::OAuth { hash, .. } = key {
        stmts.push(oauth_tokens::find_access_statement(hash));
    }
    stmts
}

/// Authenticates `request.credential` and loads its caller in one batch.
pub async fn load_caller(
    db: &impl SqlExecutor,
    request: LoadRequest<'_>,
) -> Result<LoadedCaller, LoadError> {
    let presented = request.credential;
    let key = if is_well_formed(CredentialKind::OAuthAccessToken, presented) {
        let resource = request.resource.ok_or(LoadError::Invalid)?;
        CallerKey::OAuth {
            hash: hash_credential(presented),
            now: request.now,
            resource: resource.as_str().to_owned(),
            scope: SCOPE_BOOKS_READ,
        }
    } else if is_well_formed(CredentialKind::ApiKey, presented) {
        CallerKey::ApiKey {
            hash: hash_credential(presented),
        }
    } else {
        return Err(LoadError::Invalid);
    };
    let month = UsageMonth::of(request.now);
    let mut results = db
        .batch_query(statements(&key, month, request.meter))
        .await?
        .into_iter();
    let mut next = || results.next().unwrap_or_default();
    let meter_rows = if request.meter { Some(next()) } else { None };
    let found = caller_sql::decode_caller(next())?;
    let used = usage::decode_count(next())?;
    let connections = connections::decode_all(next())?;
    let administrations = administrations::decode_all(next())?;
    let credential = match &key {
        CallerKey::OAuth { .. } => {
            // The token's own record says why it is refused (a missing
            // scope is a 403, anything else a 401), exactly as before.
            let record = oauth_tokens::decode_access(next())?.ok_or(LoadError::Invalid)?;
            let resource = request.resource.ok_or(LoadError::Invalid)?;
            record
                .check(resource, SCOPE_BOOKS_READ, request.now)
                .map_err(|c| match c {
                    Challenge::InsufficientScope(_) => {
                        LoadError::InsufficientScope(SCOPE_BOOKS_READ)
                    }
                    Challenge::Missing | Challenge::InvalidToken => LoadError::Invalid,
                })?;
            Some(Credential::OAuth(Box::new(record)))
        }
        CallerKey::ApiKey { .. } => None,
    };
    let found = found.ok_or(LoadError::Invalid)?;
    let credential = match credential {
        Some(c) => c,
        None => Credential::ApiKey {
            key_id: found.key_id.ok_or(LoadError::Invalid)?,
            last_used_at: found.key_last_used_at,
        },
    };
    let meter = meter_rows
        .map(|rows| usage::decode_meter(rows, used))
        .transpose()?;
    Ok(LoadedCaller {
        user_id: found.user_id,
        plan: found.plan,
        credential,
        connections,
        administrations,
        used,
        meter: Cell::new(meter),
    })
}

impl LoadedCaller {
    /// The write that records the credential's use, when it is due: a
    /// grant's every few minutes (`AccessRecord::needs_touch`), an API
    /// key's at most every [`KEY_TOUCH_EVERY`]. For the batch after the
    /// answer.
    pub fn credential_touch(&self, now: DateTime<Utc>) -> Option<Statement> {
        match &self.credential {
            Credential::OAuth(record) => record
                .needs_touch(now)
                .then(|| oauth_grants::touch_statement(&record.grant_id, now)),
            Credential::ApiKey {
                key_id,
                last_used_at,
            } => (!last_used_at.is_some_and(|t| now - t < KEY_TOUCH_EVERY))
                .then(|| api_keys::touch_statement(key_id, now)),
        }
    }
}
