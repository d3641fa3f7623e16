//! One Stripe webhook delivery, end to end: the signature over the raw
//! body, the event seen once, the subscription re-read from Stripe (its
//! current state decides, not the event's type or order), the customer
//! checked against the user it belongs to, and the decision stored in one
//! batch with the event id.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::entitlement::{self, EntitlementError};
use super::signature::{self, SignatureError};
use super::stripe::{self, StripeConfig, StripeError};
use crate::plan::Plan;
use crate::ports::HttpTransport;
use crate::storage::audit_log::{self, AuditAction, AuditEntry};
use crate::storage::{SqlExecutor, StorageError, billing_accounts, billing_events, users};

/// The event types that can change a plan.
pub const HANDLED: &[&str] = &[
    "checkout.session.completed",
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "invoice.paid",
    "invoice.payment_failed",
];

/// What became of a delivery (all answered 200: Stripe must not retry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The user's plan is now `plan` (it may be unchanged).
    Applied { user_id: String, plan: Plan },
    /// Seen before: nothing done again.
    Duplicate,
    /// Nothing to do, and why (an unknown type, an unknown customer,
    /// another customer's subscription, an enterprise user, an unknown
    /// price): recorded and logged.
    Ignored(&'static str),
}

/// Why a delivery is refused (answered 400, or 503 to make Stripe retry).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("signature: {0}")]
    Signature(#[from] SignatureError),
    #[error("the body is not a Stripe event")]
    NotAnEvent,
    /// Stripe could not be asked for the subscription: retry later.
    #[error(transparent)]
    Stripe(#[from] StripeError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl WebhookError {
    /// 400 for what a retry cannot fix, 503 so that Stripe retries.
    pub fn http_status(&self) -> u16 {
        match self {
            WebhookError::Signature(_) | WebhookError::NotAnEvent => 400,
            WebhookError::Stripe(_) | WebhookError::Storage(_) => 503,
        }
    }
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

/// The subscription and customer an event is about.
fn subject(event_type: &str, object: &Value) -> (Option<String>, Option<String>) {
    let customer = str_at(object, "/customer")
        .or_else(|| str_at(object, "/customer/id"))
        .map(str::to_owned);
    let subscription = match event_type {
        t if t.starts_with("customer.subscription.") => str_at(object, "/id"),
        "checkout.session.completed" => str_at(object, "/subscription"),
        // Invoices name it at the top (older API versions) or under
        // `parent.subscription_details` (2025-03-31 and later).
        _ => str_at(object, "/subscription")
            .or_else(|| str_at(object, "/parent/subscription_details/subscription")),
    };
    (subscription.map(str::to_owned), customer)
}

/// Handles one delivery.
pub async fn handle(
    db: &impl SqlExecutor,
    http: &impl HttpTransport,
    cfg: &StripeConfig,
    signature_header: Option<&str>,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<Outcome, WebhookError> {
    signature::verify(signature_header, body, &cfg.webhook_secrets, now)?;
    let event: Value = serde_json::from_slice(body).map_err(|_| WebhookError::NotAnEvent)?;
    let id = str_at(&event, "/id").ok_or(WebhookError::NotAnEvent)?;
    let event_type = str_at(&event, "/type").ok_or(WebhookError::NotAnEvent)?;
    let object = event
        .pointer("/data/object")
        .ok_or(WebhookError::NotAnEvent)?;
    if billing_events::seen(db, id).await? {
        return Ok(Outcome::Duplicate);
    }
    let ignore = |why: &'static str, user: Option<&str>| {
        let stmt = billing_events::insert_statement(id, event_type, user, None, why, now);
        async move {
            match db.execute(stmt).await {
                Ok(_) | Err(StorageError::Constraint(_)) => Ok(Outcome::Ignored(why)),
                Err(e) => Err(WebhookError::Storage(e)),
            }
        }
    };
    if !HANDLED.contains(&event_type) {
        return ignore("event type not handled", None).await;
    }
    let (Some(subscription_id), Some(customer)) = subject(event_type, object) else {
        return ignore("no subscription in the event", None).await;
    };
    let Some(account) = billing_accounts::find_by_customer(db, &customer).await? else {
        return ignore("unknown customer", None).await;
    };
    let user = users::find_by_id(db, &account.user_id)
        .await?
        .ok_or(WebhookError::NotAnEvent)?;
    let sub = stripe::get_subscription(http, cfg, &subscription_id).await?;
    if sub.customer != account.customer_id {
        return ignore("another customer's subscription", Some(&user.id)).await;
    }
    // A subscription the account has moved on from must not undo the
    // current one (the old one's deletion arriving after a new checkout).
    if account
        .subscription_id
        .as_deref()
        .is_some_and(|current| current != sub.id)
        && !sub.status.is_paying()
    {
        return ignore("a superseded subscription", Some(&user.id)).await;
    }
    if user.plan == Plan::Enterprise {
        return ignore("enterprise is set by an operator", Some(&user.id)).await;
    }
    let decision = match entitlement::decide(&sub, &cfg.prices, &account.held, now) {
        Ok(d) => d,
        Err(EntitlementError::UnknownPrice(_)) => {
            return ignore("a price that is not one of our plans", Some(&user.id)).await;
        }
        Err(EntitlementError::NoPrice) => {
            return ignore("a subscription without a price", Some(&user.id)).await;
        }
    };
    let mut batch = billing_accounts::apply_statements(&user.id, &sub, &decision, now);
    batch.push(billing_events::insert_statement(
        id,
        event_type,
        Some(&user.id),
        Some(decision.plan.as_str()),
        "applied",
        now,
    ));
    // A plan that changes is an account-level action, recorded with it.
    if decision.plan != user.plan {
        batch.push(audit_log::insert_statement(
            &AuditEntry {
                actor_id: None,
                actor_email: Some("stripe"),
                action: AuditAction::PlanChanged,
                resource_type: "user",
                resource_id: Some(&user.id),
                metadata: Some(serde_json::json!({
                    "from": user.plan.as_str(),
                    "to": decision.plan.as_str(),
                    "event": id,
                    "event_type": event_type,
                })),
                client_ip: None,
            },
            now,
        ));
    }
    match db.batch(batch).await {
        Ok(_) => Ok(Outcome::Applied {
            user_id: user.id,
            plan: decision.plan,
        }),
        // The same event processed concurrently: its twin applied it.
        Err(StorageError::Constraint(_)) => Ok(Outcome::Duplicate),
        Err(e) => Err(e.into()),
    }
}
