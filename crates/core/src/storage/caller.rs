//! The `caller` expression: a presented credential's hash turned into its
//! user, in SQL, so that every statement of a request's one batch
//! (`crate::caller::load_caller`) can find the user without a round trip
//! of its own. This is the one place that reads `api_keys`, `oauth_tokens`
//! and `oauth_grants` for that purpose; the tables' other SQL stays in
//! their modules.
//!
//! The expression is a common table expression `caller (key_id,
//! key_last_used_at, user_id, plan)` with at most one row: an API key that
//! is not revoked and within its plan's key cap (the oldest keys work; a
//! smaller plan stops the newest), or an
//! OAuth access token that is unexpired, of an unrevoked grant, for this
//! resource and with the scope tools need (the very conditions of
//! `AccessRecord::check`), in both cases of an active user.

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{Row, SqlValue, Statement, StorageError, decode};
use crate::plan::Plan;

/// Prefixes `$tail` (a literal, or a macro expanding to one) with the
/// `caller` expression of a credential kind.
macro_rules! with_caller {
    (api_key, $($tail:tt)+) => {
        concat!(
            "WITH caller AS (SELECT k.id AS key_id, k.last_used_at AS key_last_used_at, u.id AS user_id, u.plan AS plan ",
            "FROM api_keys k JOIN users u ON u.id = k.user_id AND u.status = 'active' ",
            "WHERE k.key_hash = ? AND k.revoked_at IS NULL ",
            // Within the plan's key cap: fewer older live keys than the
            // cap (`billing::limits::key_within_plan`; caps as parameters).
            "AND (SELECT COUNT(*) FROM api_keys o WHERE o.user_id = k.user_id AND o.revoked_at IS NULL ",
            "AND (o.created_at < k.created_at OR (o.created_at = k.created_at AND o.id < k.id))) ",
            "< CASE u.plan WHEN 'free' THEN ? WHEN 'starter' THEN ? WHEN 'pro' THEN ? ELSE ? END) ",
            $($tail)+
        )
    };
    (oauth, $($tail:tt)+) => {
        concat!(
            "WITH caller AS (SELECT NULL AS key_id, NULL AS key_last_used_at, u.id AS user_id, u.plan AS plan ",
            "FROM oauth_tokens t JOIN oauth_grants g ON g.id = t.grant_id ",
            "JOIN users u ON u.id = g.user_id AND u.status = 'active' ",
            "WHERE t.access_hash = ? AND t.access_expires_at > ? AND g.revoked_at IS NULL ",
            "AND g.resource = ? AND instr(' ' || g.scope || ' ', ?) > 0) ",
            $($tail)+
        )
    };
}
pub(crate) use with_caller;

/// A credential as the `caller` expression binds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallerKey {
    ApiKey {
        hash: String,
    },
    OAuth {
        hash: String,
        now: DateTime<Utc>,
        /// This server's MCP URL.
        resource: String,
        /// The scope every tool needs.
        scope: &'static str,
    },
}

impl CallerKey {
    /// The parameters of the `caller` expression, which comes first in
    /// every statement, so these are its first parameters.
    pub(crate) fn params(&self) -> Vec<SqlValue> {
        match self {
            CallerKey::ApiKey { hash } => {
                let mut params = vec![hash.into()];
                params.extend(Plan::ALL.map(|p| p.limits().api_keys.cap_for_sql().into()));
                params
            }
            CallerKey::OAuth {
                hash,
                now,
                resource,
                scope,
            } => vec![
                hash.into(),
                (*now).into(),
                resource.into(),
                format!(" {scope} ").into(),
            ],
        }
    }

    /// A statement of one SQL text per credential kind, the caller's
    /// parameters followed by `rest`.
    pub(crate) fn statement(
        &self,
        api_key: &'static str,
        oauth: &'static str,
        rest: Vec<SqlValue>,
    ) -> Statement {
        let mut params = self.params();
        params.extend(rest);
        let sql = match self {
            CallerKey::ApiKey { .. } => api_key,
            CallerKey::OAuth { .. } => oauth,
        };
        Statement::new(sql, params)
    }
}

/// The caller's row: the key (for an API key), the user and the plan.
pub fn caller_statement(key: &CallerKey) -> Statement {
    key.statement(
        with_caller!(
            api_key,
            "SELECT key_id, key_last_used_at, user_id, plan FROM caller"
        ),
        with_caller!(
            oauth,
            "SELECT key_id, key_last_used_at, user_id, plan FROM caller"
        ),
        vec![],
    )
}

/// The caller found by [`caller_statement`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerRow {
    pub key_id: Option<String>,
    /// When the API key was last recorded as used.
    pub key_last_used_at: Option<DateTime<Utc>>,
    pub user_id: String,
    pub plan: Plan,
}

pub fn decode_caller(rows: Vec<Row>) -> Result<Option<CallerRow>, StorageError> {
    #[derive(Deserialize)]
    struct R {
        key_id: Option<String>,
        key_last_used_at: Option<i64>,
        user_id: String,
        plan: String,
    }
    rows.into_iter()
        .next()
        .map(|row| {
            let r: R = decode(row)?;
            Ok(CallerRow {
                plan: r
                    .plan
                    .parse()
                    .map_err(|e: crate::plan::UnknownPlan| StorageError::Decode(e.to_string()))?,
                key_last_used_at: r.key_last_used_at.map(super::from_unix).transpose()?,
                key_id: r.key_id,
                user_id: r.user_id,
            })
        })
        .transpose()
}

/// The plans' monthly tool-call caps as `CASE plan WHEN ? THEN ? …`
/// parameters, from `core::plan` (the one definition of the limits).
pub(crate) fn monthly_caps() -> Vec<SqlValue> {
    Plan::ALL
        .iter()
        .flat_map(|p| {
            [
                SqlValue::from(p.as_str()),
                SqlValue::from(p.limits().monthly_tool_calls.cap_for_sql()),
            ]
        })
        .collect()
}

/// `CASE plan WHEN ? THEN ? …` for every plan of [`Plan::ALL`] (four:
/// a fifth plan fails the length check in the tests of `usage`).
macro_rules! plan_cap_case {
    () => {
        "CASE plan WHEN ? THEN ? WHEN ? THEN ? WHEN ? THEN ? WHEN ? THEN ? ELSE 0 END"
    };
}
pub(crate) use plan_cap_case;
