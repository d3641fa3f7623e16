//! Account-level rules of the portal: what deleting an account removes and
//! in which order, and the audit record it leaves (without personal data).

use chrono::{DateTime, Utc};

use crate::crypto::hash_credential;
use crate::storage::audit_log::{self, AuditAction, AuditEntry};
use crate::storage::{Statement, security_events, sessions};

/// The statements that delete a user, in order, to run as one atomic
/// batch: the sealed Exact tokens are overwritten first (so no copy of
/// them survives in any row a later step might keep), every session and
/// key is revoked, then the user row goes and the foreign keys cascade to
/// everything of theirs (connections, administrations, keys, sessions,
/// usage, mails, OAuth grants, sign-in attempts). Last, the audit log
/// records that an account was deleted, naming it only by a hash, and
/// the user's earlier audit and security rows lose their addresses.
/// The client's address is personal data and is not recorded.
pub fn delete_statements(user_id: &str, now: DateTime<Utc>) -> Vec<Statement> {
    vec![
        Statement::new(
            "UPDATE connections SET access_token_sealed = '', refresh_token_sealed = '',
                lease_owner = NULL, lease_expires_at = NULL
             WHERE user_id = ?",
            vec![user_id.into()],
        ),
        Statement::new(
            "UPDATE api_keys SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL",
            vec![now.into(), user_id.into()],
        ),
        sessions::revoke_all_statement(user_id),
        // The user's earlier audit rows and security events keep what was
        // done, not from where: the foreign key forgets who, this the
        // address.
        audit_log::forget_addresses_statement(user_id),
        security_events::forget_addresses_statement(user_id),
        Statement::new("DELETE FROM users WHERE id = ?", vec![user_id.into()]),
        audit_log::insert_statement(
            &AuditEntry {
                actor_id: None,
                actor_email: None,
                action: AuditAction::AccountDeleted,
                resource_type: "user",
                resource_id: Some(&audit_subject(user_id)),
                metadata: None,
                client_ip: None,
            },
            now,
        ),
    ]
}

/// How the audit log names a deleted user: a hash that matches nothing
/// left in the database, but lets an operator confirm a deletion request
/// for an id the customer quotes.
pub fn audit_subject(user_id: &str) -> String {
    format!("sha256:{}", hash_credential(user_id))
}

/// The word a customer types to confirm deletion.
pub fn confirmation_word(dutch: bool) -> &'static str {
    if dutch { "VERWIJDEREN" } else { "DELETE" }
}

/// Whether the typed confirmation matches (case and spaces ignored).
pub fn confirmed(typed: &str, dutch: bool) -> bool {
    typed.trim().eq_ignore_ascii_case(confirmation_word(dutch))
}
