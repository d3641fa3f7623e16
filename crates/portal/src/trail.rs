//! The portal's trail for operators: an `audit_log` row for every
//! account-level action (who, what, which resource, from which address,
//! secret-free metadata) and a `security_events` row for every refused
//! authentication (a session cookie that names no live session, a form
//! without this origin's CSRF token, a webhook whose signature fails, a
//! hostile OAuth request). The SQL is core's (`storage::audit_log`,
//! `storage::security_events`).
//!
//! Each is written after the action it records, as its own statement: the
//! user has had their answer decided by then, and a trail write that fails
//! must not turn a done action into an error page. Account deletion is the
//! exception: its row is in the deleting batch (`core::account`).

use boekhouding_core::ports::Clock;
use boekhouding_core::storage::SqlExecutor;
use boekhouding_core::storage::audit_log::{self, AuditAction, AuditEntry};
use boekhouding_core::storage::security_events::{self, SecurityEvent, SecurityRecord};
use serde_json::Value;

use crate::PortalPlatform;
use crate::web::WebRequest;

/// The client's address as Cloudflare saw it.
pub fn client_ip(req: &WebRequest) -> Option<&str> {
    req.header("cf-connecting-ip")
}

/// Records a signed-in user's action on one of their resources.
pub async fn action<P: PortalPlatform>(
    p: &P,
    req: &WebRequest,
    user_id: &str,
    action: AuditAction,
    resource: (&str, Option<&str>),
    metadata: Option<Value>,
) {
    let entry = AuditEntry {
        metadata,
        ..AuditEntry::by_user(user_id, action, resource.0, resource.1, client_ip(req))
    };
    // Best effort, see the module's documentation.
    let _ = p
        .db()
        .execute(audit_log::insert_statement(&entry, p.clock().now()))
        .await;
}

/// Records a refused authentication or a hostile request.
pub async fn security<P: PortalPlatform>(
    p: &P,
    req: &WebRequest,
    event: SecurityEvent,
    user_id: Option<&str>,
) {
    let record = SecurityRecord::new(event, client_ip(req))
        .user_agent(req.header("user-agent"))
        .user(user_id)
        .detail(&req.path);
    let _ = p
        .db()
        .execute(security_events::insert_statement(&record, p.clock().now()))
        .await;
}
