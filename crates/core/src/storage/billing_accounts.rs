//! The `billing_accounts` table: a user's Stripe customer and what their
//! subscription pays for (the plan in force stays in `users.plan`).

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{SqlExecutor, Statement, StorageError, from_unix, query_all};
use crate::billing::entitlement::{Decision, Held, Subscription};
use crate::plan::Plan;

/// A user's billing row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillingAccount {
    pub user_id: String,
    pub customer_id: String,
    pub subscription_id: Option<String>,
    pub status: Option<String>,
    pub held: Held,
    pub next: Option<(Plan, DateTime<Utc>)>,
}

impl BillingAccount {
    /// Whether the stored subscription currently pays (a plan change is
    /// then made in Stripe's billing portal, not by a new checkout).
    pub fn is_paying(&self) -> bool {
        self.status
            .as_deref()
            .and_then(crate::billing::entitlement::SubscriptionStatus::parse)
            .is_some_and(crate::billing::entitlement::SubscriptionStatus::is_paying)
    }
}

#[derive(Deserialize)]
struct Row {
    user_id: String,
    customer_id: String,
    subscription_id: Option<String>,
    status: Option<String>,
    paid_plan: Option<String>,
    paid_until: Option<i64>,
    next_plan: Option<String>,
    changes_at: Option<i64>,
}

impl TryFrom<Row> for BillingAccount {
    type Error = StorageError;
    fn try_from(r: Row) -> Result<Self, StorageError> {
        let plan = |s: &str| {
            s.parse::<Plan>()
                .map_err(|_| StorageError::Decode(format!("plan {s}")))
        };
        Ok(BillingAccount {
            held: Held {
                paid_plan: r.paid_plan.as_deref().map(plan).transpose()?,
                paid_until: r.paid_until.map(from_unix).transpose()?,
            },
            next: match (r.next_plan, r.changes_at) {
                (Some(p), Some(at)) => Some((plan(&p)?, from_unix(at)?)),
                _ => None,
            },
            user_id: r.user_id,
            customer_id: r.customer_id,
            subscription_id: r.subscription_id,
            status: r.status,
        })
    }
}

async fn one(
    db: &impl SqlExecutor,
    stmt: Statement,
) -> Result<Option<BillingAccount>, StorageError> {
    query_all::<Row>(db, stmt)
        .await?
        .into_iter()
        .next()
        .map(BillingAccount::try_from)
        .transpose()
}

/// Every read of the table selects the same columns.
macro_rules! select_account {
    ($where:literal) => {
        concat!(
            "SELECT user_id, customer_id, subscription_id, status, paid_plan, paid_until, ",
            "next_plan, changes_at FROM billing_accounts WHERE ",
            $where
        )
    };
}

pub async fn find_for_user(
    db: &impl SqlExecutor,
    user_id: &str,
) -> Result<Option<BillingAccount>, StorageError> {
    one(
        db,
        Statement::new(select_account!("user_id = ?"), vec![user_id.into()]),
    )
    .await
}

pub async fn find_by_customer(
    db: &impl SqlExecutor,
    customer_id: &str,
) -> Result<Option<BillingAccount>, StorageError> {
    one(
        db,
        Statement::new(select_account!("customer_id = ?"), vec![customer_id.into()]),
    )
    .await
}

/// Records the customer made for a user (once; a second call keeps the
/// first customer).
pub async fn insert_customer(
    db: &impl SqlExecutor,
    user_id: &str,
    customer_id: &str,
    now: DateTime<Utc>,
) -> Result<(), StorageError> {
    db.execute(Statement::new(
        "INSERT INTO billing_accounts (user_id, customer_id, created_at, updated_at)
         VALUES (?, ?, ?, ?) ON CONFLICT (user_id) DO NOTHING",
        vec![user_id.into(), customer_id.into(), now.into(), now.into()],
    ))
    .await?;
    Ok(())
}

/// The statements that apply a decision: the subscription's state on the
/// account and the plan in force on the user (never an enterprise user's:
/// that plan is an operator's).
pub fn apply_statements(
    user_id: &str,
    sub: &Subscription,
    decision: &Decision,
    now: DateTime<Utc>,
) -> Vec<Statement> {
    vec![
        Statement::new(
            "UPDATE billing_accounts SET subscription_id = ?, status = ?, price_id = ?,
                paid_plan = ?, paid_until = ?, next_plan = ?, changes_at = ?, updated_at = ?
             WHERE user_id = ?",
            vec![
                sub.id.clone().into(),
                sub.status.as_str().into(),
                sub.price_id.clone().into(),
                decision.held.paid_plan.map(|p| p.as_str()).into(),
                decision.held.paid_until.into(),
                decision.next.map(|(p, _)| p.as_str()).into(),
                decision.next.map(|(_, at)| at).into(),
                now.into(),
                user_id.into(),
            ],
        ),
        Statement::new(
            "UPDATE users SET plan = ?, updated_at = ? WHERE id = ? AND plan <> 'enterprise'",
            vec![decision.plan.as_str().into(), now.into(), user_id.into()],
        ),
    ]
}

/// The cron's sweep: changes whose time has come (a downgrade or
/// cancellation at a period's end that no webhook has brought yet).
pub fn apply_due_statements(now: DateTime<Utc>) -> Vec<Statement> {
    vec![
        // Audited first, while the old plan is still there to name.
        super::audit_log::plan_changes_due_statement(now),
        Statement::new(
            "UPDATE users SET plan = (SELECT b.next_plan FROM billing_accounts b WHERE b.user_id = users.id),
                updated_at = ?
             WHERE plan <> 'enterprise'
               AND id IN (SELECT user_id FROM billing_accounts WHERE changes_at <= ?)",
            vec![now.into(), now.into()],
        ),
        Statement::new(
            "UPDATE billing_accounts SET next_plan = NULL, changes_at = NULL, updated_at = ?
             WHERE changes_at <= ?",
            vec![now.into(), now.into()],
        ),
    ]
}
