//! Stripe webhooks over SQLite with the real migrations: a delivery is
//! verified, applied once, decided by the subscription's current state
//! (re-read from Stripe), and nothing out of order, repeated, foreign or
//! unknown ever stores a plan nobody paid for.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::RefCell;
use std::collections::HashMap;

use boekhouding_core::billing::entitlement::PriceBook;
use boekhouding_core::billing::signature::sign;
use boekhouding_core::billing::stripe::StripeConfig;
use boekhouding_core::billing::webhook::{Outcome, WebhookError, handle};
use boekhouding_core::crypto::Secret;
use boekhouding_core::plan::Plan;
use boekhouding_core::ports::{HttpRequest, HttpResponse, HttpTransport, TransportError};
use boekhouding_core::storage::{billing_accounts, users};
use boekhouding_core::testing::SeededRandomness;
use boekhouding_sqlite::SqliteDb;
use chrono::{DateTime, Duration, TimeZone, Utc};
use futures::executor::block_on;
use serde_json::{Value, json};

const SECRET: &str = "whsec_test";

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap()
}

/// Stripe's `GET /v1/subscriptions/{id}`: the subscriptions' current
/// states, which a test changes as Stripe would.
#[derive(Default)]
struct FakeStripe {
    subscriptions: RefCell<HashMap<String, Value>>,
    asked: RefCell<Vec<String>>,
}

impl HttpTransport for FakeStripe {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        self.asked.borrow_mut().push(request.url.clone());
        assert!(
            request
                .headers
                .iter()
                .any(|(k, v)| k == "Authorization" && v == "Bearer sk_test_x")
        );
        let id = request.url.rsplit('/').next().unwrap_or_default();
        Ok(match self.subscriptions.borrow().get(id) {
            Some(sub) => HttpResponse {
                status: 200,
                headers: vec![],
                body: sub.to_string(),
            },
            None => HttpResponse {
                status: 404,
                headers: vec![],
                body:
                    json!({"error": {"type": "invalid_request_error", "code": "resource_missing"}})
                        .to_string(),
            },
        })
    }
    async fn send_binary(
        &self,
        _request: HttpRequest,
        _max_bytes: usize,
    ) -> Result<boekhouding_core::ports::BinaryResponse, TransportError> {
        Err(TransportError::Network("not used".into()))
    }
}

fn config() -> StripeConfig {
    StripeConfig {
        api_base: "https://stripe.test".into(),
        secret_key: Secret::new("sk_test_x"),
        prices: PriceBook {
            starter: "price_starter".into(),
            pro: "price_pro".into(),
        },
        webhook_secrets: vec![SECRET.into()],
    }
}

fn subscription(
    id: &str,
    customer: &str,
    status: &str,
    price: &str,
    end: DateTime<Utc>,
    cancel: bool,
) -> Value {
    json!({
        "id": id, "object": "subscription", "customer": customer, "status": status,
        "cancel_at_period_end": cancel,
        "items": {"object": "list", "data": [{
            "object": "subscription_item", "price": {"id": price, "object": "price"},
            "current_period_end": end.timestamp()
        }]}
    })
}

fn event(id: &str, kind: &str, object: Value) -> Vec<u8> {
    json!({"id": id, "object": "event", "type": kind, "livemode": false, "data": {"object": object}})
        .to_string()
        .into_bytes()
}

struct World {
    db: SqliteDb,
    stripe: FakeStripe,
    user: users::User,
}

impl World {
    fn new() -> World {
        let db = SqliteDb::migrated().unwrap();
        let user = block_on(users::upsert_by_email(
            &db,
            &SeededRandomness::new(3),
            "jan@bakkerij.example",
            None,
            t0(),
        ))
        .unwrap();
        block_on(billing_accounts::insert_customer(
            &db,
            &user.id,
            "cus_jan",
            t0(),
        ))
        .unwrap();
        World {
            db,
            stripe: FakeStripe::default(),
            user,
        }
    }

    fn set(&self, sub: Value) {
        let id = sub["id"].as_str().unwrap().to_owned();
        self.stripe.subscriptions.borrow_mut().insert(id, sub);
    }

    fn deliver(&self, body: &[u8], now: DateTime<Utc>) -> Result<Outcome, WebhookError> {
        let header = sign(SECRET, now.timestamp(), body);
        block_on(handle(
            &self.db,
            &self.stripe,
            &config(),
            Some(&header),
            body,
            now,
        ))
    }

    fn plan(&self) -> Plan {
        block_on(users::find_by_id(&self.db, &self.user.id))
            .unwrap()
            .unwrap()
            .plan
    }
}

#[test]
fn a_paid_checkout_upgrades_once_and_a_bad_signature_changes_nothing() {
    let w = World::new();
    let end = t0() + Duration::days(30);
    w.set(subscription(
        "sub_1",
        "cus_jan",
        "active",
        "price_pro",
        end,
        false,
    ));
    let body = event(
        "evt_1",
        "checkout.session.completed",
        json!({"id": "cs_1", "object": "checkout.session", "customer": "cus_jan",
               "subscription": "sub_1", "client_reference_id": w.user.id}),
    );
    // Signed with another secret, or too old: refused, nothing stored.
    let forged = sign("whsec_other", t0().timestamp(), &body);
    assert!(matches!(
        block_on(handle(
            &w.db,
            &w.stripe,
            &config(),
            Some(&forged),
            &body,
            t0()
        )),
        Err(WebhookError::Signature(_))
    ));
    let old = sign(SECRET, (t0() - Duration::minutes(6)).timestamp(), &body);
    assert!(matches!(
        block_on(handle(&w.db, &w.stripe, &config(), Some(&old), &body, t0())),
        Err(WebhookError::Signature(_))
    ));
    assert_eq!(w.plan(), Plan::Free);

    assert_eq!(
        w.deliver(&body, t0()).unwrap(),
        Outcome::Applied {
            user_id: w.user.id.clone(),
            plan: Plan::Pro
        }
    );
    assert_eq!(w.plan(), Plan::Pro);
    // The same event again: recognised, not applied twice.
    assert_eq!(w.deliver(&body, t0()).unwrap(), Outcome::Duplicate);
    // The change is in the audit log once, with the event that made it.
    let audit = block_on(boekhouding_core::storage::audit_log::recent(&w.db, 10)).unwrap();
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0].action, "plan_changed");
    assert_eq!(audit[0].resource_id.as_deref(), Some(w.user.id.as_str()));
    let meta: Value = serde_json::from_str(audit[0].metadata.as_deref().unwrap()).unwrap();
    assert_eq!(
        (
            meta["from"].as_str(),
            meta["to"].as_str(),
            meta["event"].as_str()
        ),
        (Some("free"), Some("pro"), Some("evt_1"))
    );
}

#[test]
fn events_out_of_order_converge_on_the_subscriptions_current_state() {
    let w = World::new();
    let end = t0() + Duration::days(30);
    // The customer subscribed to pro and then cancelled at the period's
    // end; "updated" arrives before "created".
    w.set(subscription(
        "sub_1",
        "cus_jan",
        "active",
        "price_pro",
        end,
        true,
    ));
    let sub_now = subscription("sub_1", "cus_jan", "active", "price_pro", end, true);
    w.deliver(
        &event("evt_u", "customer.subscription.updated", sub_now.clone()),
        t0(),
    )
    .unwrap();
    w.deliver(
        &event("evt_c", "customer.subscription.created", sub_now),
        t0(),
    )
    .unwrap();
    assert_eq!(w.plan(), Plan::Pro, "paid until the period's end");
    let account = block_on(billing_accounts::find_for_user(&w.db, &w.user.id))
        .unwrap()
        .unwrap();
    assert_eq!(account.next, Some((Plan::Free, end)));

    // "deleted" at the period's end, delivered before a late "updated":
    // both read the canceled state; the user is on free from then on.
    let after = end + Duration::seconds(5);
    w.set(subscription(
        "sub_1",
        "cus_jan",
        "canceled",
        "price_pro",
        end,
        false,
    ));
    let gone = subscription("sub_1", "cus_jan", "canceled", "price_pro", end, false);
    w.deliver(
        &event("evt_d", "customer.subscription.deleted", gone),
        after,
    )
    .unwrap();
    w.deliver(
        &event(
            "evt_late",
            "customer.subscription.updated",
            subscription("sub_1", "cus_jan", "active", "price_pro", end, false),
        ),
        after,
    )
    .unwrap();
    assert_eq!(w.plan(), Plan::Free, "no late event brings pro back");
}

#[test]
fn a_downgrade_waits_for_the_period_end_and_the_cron_applies_it_without_a_webhook() {
    let w = World::new();
    let end = t0() + Duration::days(30);
    w.set(subscription(
        "sub_1",
        "cus_jan",
        "active",
        "price_pro",
        end,
        false,
    ));
    w.deliver(
        &event(
            "evt_1",
            "customer.subscription.created",
            json!({"id": "sub_1", "customer": "cus_jan"}),
        ),
        t0(),
    )
    .unwrap();
    w.set(subscription(
        "sub_1",
        "cus_jan",
        "active",
        "price_starter",
        end,
        false,
    ));
    w.deliver(
        &event(
            "evt_2",
            "customer.subscription.updated",
            json!({"id": "sub_1", "customer": "cus_jan"}),
        ),
        t0() + Duration::days(2),
    )
    .unwrap();
    assert_eq!(w.plan(), Plan::Pro, "paid for until {end}");
    use boekhouding_core::storage::SqlExecutor;
    block_on(w.db.batch(billing_accounts::apply_due_statements(
        end - Duration::seconds(1),
    )))
    .unwrap();
    assert_eq!(w.plan(), Plan::Pro, "not yet");
    block_on(w.db.batch(billing_accounts::apply_due_statements(end))).unwrap();
    assert_eq!(w.plan(), Plan::Starter);
    // Audited as the cron's doing: the upgrade by the webhook, then this.
    let audit = block_on(boekhouding_core::storage::audit_log::recent(&w.db, 10)).unwrap();
    assert_eq!(audit.len(), 2, "{audit:?}");
    assert_eq!(audit[0].action, "plan_changed");
    assert_eq!(audit[0].actor_email.as_deref(), Some("token-cron"));
    let meta: Value = serde_json::from_str(audit[0].metadata.as_deref().unwrap()).unwrap();
    assert_eq!(
        (meta["from"].as_str(), meta["to"].as_str()),
        (Some("pro"), Some("starter"))
    );
}

#[test]
fn foreign_unknown_and_enterprise_cases_store_no_plan() {
    let w = World::new();
    let end = t0() + Duration::days(30);
    // Another customer's subscription named in an event for ours.
    w.set(subscription(
        "sub_x",
        "cus_other",
        "active",
        "price_pro",
        end,
        false,
    ));
    assert_eq!(
        w.deliver(
            &event(
                "evt_1",
                "invoice.paid",
                json!({"customer": "cus_jan", "subscription": "sub_x"})
            ),
            t0()
        )
        .unwrap(),
        Outcome::Ignored("another customer's subscription")
    );
    // A customer we never made.
    assert_eq!(
        w.deliver(
            &event(
                "evt_2",
                "invoice.paid",
                json!({"customer": "cus_nobody", "subscription": "sub_x"})
            ),
            t0()
        )
        .unwrap(),
        Outcome::Ignored("unknown customer")
    );
    // A price we do not sell.
    w.set(subscription(
        "sub_2",
        "cus_jan",
        "active",
        "price_enterprise",
        end,
        false,
    ));
    assert_eq!(
        w.deliver(
            &event(
                "evt_3",
                "customer.subscription.created",
                json!({"id": "sub_2", "customer": "cus_jan"})
            ),
            t0()
        )
        .unwrap(),
        Outcome::Ignored("a price that is not one of our plans")
    );
    // An event type we do not handle: 200, recorded.
    assert_eq!(
        w.deliver(
            &event("evt_4", "customer.created", json!({"id": "cus_jan"})),
            t0()
        )
        .unwrap(),
        Outcome::Ignored("event type not handled")
    );
    assert_eq!(w.plan(), Plan::Free);
    // Enterprise is an operator's: a webhook never changes it.
    block_on(users::set_plan(&w.db, &w.user.id, Plan::Enterprise, t0())).unwrap();
    w.set(subscription(
        "sub_3",
        "cus_jan",
        "canceled",
        "price_pro",
        end,
        false,
    ));
    w.deliver(
        &event(
            "evt_5",
            "customer.subscription.deleted",
            json!({"id": "sub_3", "customer": "cus_jan"}),
        ),
        t0(),
    )
    .unwrap();
    assert_eq!(w.plan(), Plan::Enterprise);
}

#[test]
fn an_old_subscriptions_deletion_does_not_undo_the_new_one() {
    let w = World::new();
    let end = t0() + Duration::days(30);
    w.set(subscription(
        "sub_new",
        "cus_jan",
        "active",
        "price_starter",
        end,
        false,
    ));
    w.deliver(
        &event(
            "evt_1",
            "customer.subscription.created",
            json!({"id": "sub_new", "customer": "cus_jan"}),
        ),
        t0(),
    )
    .unwrap();
    w.set(subscription(
        "sub_old",
        "cus_jan",
        "canceled",
        "price_pro",
        end,
        false,
    ));
    assert_eq!(
        w.deliver(
            &event(
                "evt_2",
                "customer.subscription.deleted",
                json!({"id": "sub_old", "customer": "cus_jan"})
            ),
            t0()
        )
        .unwrap(),
        Outcome::Ignored("a superseded subscription")
    );
    assert_eq!(w.plan(), Plan::Starter);
}

/// The 80 % and 100 % mails: queued in the user's language, once per
/// threshold and month however often the statement runs, and not at all
/// for a user who turned usage mails off.
#[test]
fn usage_warnings_are_queued_once_in_the_users_language_and_only_if_wanted() {
    use boekhouding_core::mail::{UsageThreshold, UsageWarning, usage_warning_statement};
    use boekhouding_core::storage::SqlExecutor;
    let w = World::new();
    let warning = |threshold| UsageWarning {
        user_id: &w.user.id,
        threshold,
        used: 160,
        cap: 200,
        month: "2026-12",
        resets_at: Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap(),
        link: "https://portal.example/billing/upgrade?plan=starter",
    };
    for _ in 0..2 {
        block_on(w.db.execute(usage_warning_statement(
            &warning(UsageThreshold::Most),
            t0(),
        )))
        .unwrap();
    }
    let mails = |w: &World| -> Vec<(String, String)> {
        w.db.raw()
            .prepare("SELECT template, subject FROM email_queue ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert_eq!(
        mails(&w),
        vec![(
            "usage_80".to_owned(),
            "Je hebt 80 % van je vragen deze maand gebruikt".to_owned()
        )]
    );
    // English, and the 100 % one is its own mail.
    let prefs = users::Preferences {
        english: true,
        usage_warnings: true,
        product_updates: false,
    };
    block_on(users::set_preferences(&w.db, &w.user.id, prefs, t0())).unwrap();
    block_on(w.db.execute(usage_warning_statement(&warning(UsageThreshold::All), t0()))).unwrap();
    assert_eq!(
        mails(&w)[1],
        (
            "usage_100".to_owned(),
            "You have reached your monthly limit".to_owned()
        )
    );
    // Turned off: nothing more (next month's would otherwise be new).
    let off = users::Preferences {
        english: true,
        usage_warnings: false,
        product_updates: false,
    };
    block_on(users::set_preferences(&w.db, &w.user.id, off, t0())).unwrap();
    let next_month = UsageWarning {
        month: "2027-01",
        ..warning(UsageThreshold::Most)
    };
    block_on(w.db.execute(usage_warning_statement(&next_month, t0()))).unwrap();
    assert_eq!(mails(&w).len(), 2);
}
