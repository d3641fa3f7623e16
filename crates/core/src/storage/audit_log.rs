//! The `audit_log` table: every account-level action in the portal and
//! every operator action (the cron's own, deploys and rollbacks), with
//! who did it, to what, from where, and secret-free metadata.
//!
//! A row is written in the same batch as the action where the action is
//! one batch, so an action and its trace land together or not at all.

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{SqlExecutor, Statement, StorageError, query_all};

/// What was done. The stored names are stable: operators query them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditAction {
    SignedIn,
    SignedOut,
    ConnectionAdded,
    KeyCreated,
    KeyRevoked,
    KeyRenamed,
    AdministrationActivated,
    AdministrationDeactivated,
    DefaultAdministrationSet,
    PreferencesChanged,
    LanguageChanged,
    OAuthGrantApproved,
    OAuthGrantRevoked,
    PlanChanged,
    AccountDeleted,
    /// The token cron's breaker stopped refreshing.
    BreakerTripped,
    /// An operator deployed a version (`cargo xtask deploy`).
    Deployed,
    /// An operator (or a failed canary) rolled a version back.
    RolledBack,
}

impl AuditAction {
    pub const fn as_str(self) -> &'static str {
        match self {
            AuditAction::SignedIn => "signed_in",
            AuditAction::SignedOut => "signed_out",
            AuditAction::ConnectionAdded => "connection_added",
            AuditAction::KeyCreated => "key_created",
            AuditAction::KeyRevoked => "key_revoked",
            AuditAction::KeyRenamed => "key_renamed",
            AuditAction::AdministrationActivated => "administration_activated",
            AuditAction::AdministrationDeactivated => "administration_deactivated",
            AuditAction::DefaultAdministrationSet => "default_administration_set",
            AuditAction::PreferencesChanged => "preferences_changed",
            AuditAction::LanguageChanged => "language_changed",
            AuditAction::OAuthGrantApproved => "oauth_grant_approved",
            AuditAction::OAuthGrantRevoked => "oauth_grant_revoked",
            AuditAction::PlanChanged => "plan_changed",
            AuditAction::AccountDeleted => "account_deleted",
            AuditAction::BreakerTripped => "breaker_tripped",
            AuditAction::Deployed => "deployed",
            AuditAction::RolledBack => "rolled_back",
        }
    }
}

/// One audit row. `metadata` must never hold a secret (a key's secret, a
/// token, a cookie); ids, names chosen by the user and plan names are fine.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry<'a> {
    /// The acting user; `None` for an operator or the system.
    pub actor_id: Option<&'a str>,
    /// Who acted when it is not a user row (an operator's address, `cron`).
    pub actor_email: Option<&'a str>,
    pub action: AuditAction,
    /// `user`, `api_key`, `administration`, `oauth_grant`, `connection`,
    /// `token_refresh`, `worker`, ...
    pub resource_type: &'a str,
    pub resource_id: Option<&'a str>,
    pub metadata: Option<serde_json::Value>,
    pub client_ip: Option<&'a str>,
}

impl<'a> AuditEntry<'a> {
    /// A user's action on one of their resources.
    pub fn by_user(
        user_id: &'a str,
        action: AuditAction,
        resource_type: &'a str,
        resource_id: Option<&'a str>,
        client_ip: Option<&'a str>,
    ) -> Self {
        AuditEntry {
            actor_id: Some(user_id),
            actor_email: None,
            action,
            resource_type,
            resource_id,
            metadata: None,
            client_ip,
        }
    }

    pub fn with_metadata(mut self, metadata: serde_json::Value) -> Self {
        self.metadata = Some(metadata);
        self
    }
}

/// The insert of one audit row, for the action's own batch (also what
/// the deploy tooling runs against remote D1 for deploys and rollbacks).
pub fn insert_statement(entry: &AuditEntry<'_>, now: DateTime<Utc>) -> Statement {
    Statement::new(
        "INSERT INTO audit_log (actor_id, actor_email, action, resource_type, resource_id,
            metadata, client_ip, at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        vec![
            entry.actor_id.into(),
            entry.actor_email.into(),
            entry.action.as_str().into(),
            entry.resource_type.into(),
            entry.resource_id.into(),
            entry.metadata.as_ref().map(|m| m.to_string()).into(),
            entry.client_ip.into(),
            now.into(),
        ],
    )
}

/// The audit rows of the plan changes whose time has come (a downgrade or
/// cancellation at a period's end), to run in the same batch just before
/// `billing_accounts::apply_due_statements` applies them: the token cron
/// is the actor.
pub fn plan_changes_due_statement(now: DateTime<Utc>) -> Statement {
    Statement::new(
        "INSERT INTO audit_log (actor_id, actor_email, action, resource_type, resource_id,
            metadata, client_ip, at)
         SELECT NULL, 'token-cron', 'plan_changed', 'user', u.id,
                json_object('from', u.plan, 'to', b.next_plan, 'reason', 'period_end'), NULL, ?
           FROM billing_accounts b JOIN users u ON u.id = b.user_id
          WHERE b.changes_at <= ? AND b.next_plan IS NOT NULL AND b.next_plan <> u.plan
            AND u.plan <> 'enterprise'",
        vec![now.into(), now.into()],
    )
}

/// A deleted user's rows keep what happened but not from where (part of
/// deleting an account, before the user row goes).
pub fn forget_addresses_statement(user_id: &str) -> Statement {
    Statement::new(
        "UPDATE audit_log SET client_ip = NULL, actor_email = NULL WHERE actor_id = ?",
        vec![user_id.into()],
    )
}

/// Audit rows older than `before`.
pub fn purge_statement(before: DateTime<Utc>) -> Statement {
    Statement::new("DELETE FROM audit_log WHERE at < ?", vec![before.into()])
}

/// A stored audit row.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AuditRow {
    pub actor_id: Option<String>,
    pub actor_email: Option<String>,
    pub action: String,
    pub resource_type: String,
    pub resource_id: Option<String>,
    pub metadata: Option<String>,
    pub client_ip: Option<String>,
    pub at: i64,
}

/// The newest rows first, for operators and tests.
pub async fn recent(db: &impl SqlExecutor, limit: u32) -> Result<Vec<AuditRow>, StorageError> {
    query_all(
        db,
        Statement::new(
            "SELECT actor_id, actor_email, action, resource_type, resource_id, metadata,
                    client_ip, at
               FROM audit_log ORDER BY id DESC LIMIT ?",
            vec![limit.into()],
        ),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_deploy_row_renders_as_one_sql_text_with_quotes_doubled() {
        let now = Utc
            .with_ymd_and_hms(2026, 12, 1, 5, 0, 0)
            .single()
            .unwrap_or_default();
        let entry = AuditEntry {
            actor_id: None,
            actor_email: Some("ops@example.nl"),
            action: AuditAction::Deployed,
            resource_type: "worker",
            resource_id: Some("mcp-server"),
            metadata: Some(serde_json::json!({"commit": "abc123", "note": "it's live"})),
            client_ip: None,
        };
        let sql = insert_statement(&entry, now)
            .inline_sql()
            .unwrap_or_default();
        assert!(sql.starts_with("INSERT INTO audit_log"), "{sql}");
        assert!(
            sql.contains(&format!(
                "VALUES (NULL, 'ops@example.nl', 'deployed', 'worker', 'mcp-server', '{{\"commit\":\"abc123\",\"note\":\"it''s live\"}}', NULL, {})",
                now.timestamp()
            )),
            "{sql}"
        );
        assert!(!sql.contains('?'));
    }

    #[test]
    fn a_statement_whose_parameters_do_not_match_does_not_render() {
        let short = Statement::new("SELECT ? + ?", vec![1i64.into()]);
        assert_eq!(short.inline_sql(), None);
        let long = Statement::new("SELECT ?", vec![1i64.into(), 2i64.into()]);
        assert_eq!(long.inline_sql(), None);
        let nul = Statement::new("SELECT ?", vec!["a\0b".into()]);
        assert_eq!(nul.inline_sql(), None);
    }
}
