//! Which plan a user has, derived from the current state of their Stripe
//! subscription (never from an event's type), so repeated and
//! out-of-order deliveries converge on the same answer. Upgrades apply at
//! once; downgrades and cancellations at the end of the period already
//! paid for; `past_due` keeps the plan while Stripe retries; enterprise is
//! an operator's decision and never a subscription's.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::plan::Plan;

/// The price ids of the paid plans (configuration: `STRIPE_PRICE_STARTER`,
/// `STRIPE_PRICE_PRO`): the one mapping between prices and plans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceBook {
    pub starter: String,
    pub pro: String,
}

impl PriceBook {
    /// The plan a price buys; `None` for a price this product does not
    /// sell (never guessed).
    pub fn plan_of(&self, price_id: &str) -> Option<Plan> {
        if price_id == self.starter {
            Some(Plan::Starter)
        } else if price_id == self.pro {
            Some(Plan::Pro)
        } else {
            None
        }
    }

    /// The price of a plan that can be bought; `None` for free and
    /// enterprise.
    pub fn price_of(&self, plan: Plan) -> Option<&str> {
        match plan {
            Plan::Starter => Some(&self.starter),
            Plan::Pro => Some(&self.pro),
            Plan::Free | Plan::Enterprise => None,
        }
    }
}

/// A subscription's status as Stripe names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionStatus {
    Incomplete,
    IncompleteExpired,
    Trialing,
    Active,
    PastDue,
    Canceled,
    Unpaid,
    Paused,
}

impl SubscriptionStatus {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "incomplete" => Self::Incomplete,
            "incomplete_expired" => Self::IncompleteExpired,
            "trialing" => Self::Trialing,
            "active" => Self::Active,
            "past_due" => Self::PastDue,
            "canceled" => Self::Canceled,
            "unpaid" => Self::Unpaid,
            "paused" => Self::Paused,
            _ => return None,
        })
    }

    /// Stripe's name of the status.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Incomplete => "incomplete",
            Self::IncompleteExpired => "incomplete_expired",
            Self::Trialing => "trialing",
            Self::Active => "active",
            Self::PastDue => "past_due",
            Self::Canceled => "canceled",
            Self::Unpaid => "unpaid",
            Self::Paused => "paused",
        }
    }

    /// Whether the subscription currently pays for its price (`past_due`
    /// does while Stripe retries the payment).
    pub fn is_paying(self) -> bool {
        matches!(self, Self::Active | Self::Trialing | Self::PastDue)
    }
}

/// The parts of a Stripe subscription object the plan depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub id: String,
    pub customer: String,
    pub status: SubscriptionStatus,
    pub price_id: Option<String>,
    pub current_period_end: Option<DateTime<Utc>>,
    pub cancel_at_period_end: bool,
}

impl Subscription {
    /// Reads a subscription object. The period end is read from the first
    /// item (where Stripe's API has it since 2025-03-31) or, for older API
    /// versions, from the subscription itself.
    pub fn from_json(v: &Value) -> Option<Self> {
        let item = v.pointer("/items/data/0");
        let customer = match v.get("customer") {
            Some(Value::String(c)) => c.clone(),
            Some(Value::Object(o)) => o.get("id")?.as_str()?.to_owned(),
            _ => return None,
        };
        let period_end = item
            .and_then(|i| i.get("current_period_end"))
            .or_else(|| v.get("current_period_end"))
            .and_then(Value::as_i64)
            .and_then(|s| DateTime::from_timestamp(s, 0));
        Some(Subscription {
            id: v.get("id")?.as_str()?.to_owned(),
            customer,
            status: SubscriptionStatus::parse(v.get("status")?.as_str()?)?,
            price_id: item
                .and_then(|i| i.pointer("/price/id"))
                .and_then(Value::as_str)
                .map(str::to_owned),
            current_period_end: period_end,
            cancel_at_period_end: v
                .get("cancel_at_period_end")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        })
    }
}

/// What the product holds for a user's billing: the plan paid for in the
/// current period and until when.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Held {
    pub paid_plan: Option<Plan>,
    pub paid_until: Option<DateTime<Utc>>,
}

impl Held {
    /// The plan already paid for that is still in force at `now`.
    pub fn in_force(&self, now: DateTime<Utc>) -> Plan {
        match (self.paid_plan, self.paid_until) {
            (Some(p), Some(until)) if until > now => p,
            _ => Plan::Free,
        }
    }
}

/// The plan to apply now, what is held afterwards, and a change already
/// known for later (a downgrade or cancellation at the period's end).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub plan: Plan,
    pub held: Held,
    pub next: Option<(Plan, DateTime<Utc>)>,
}

/// Why a subscription's state cannot decide a plan.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntitlementError {
    /// A price this product does not sell: nothing is granted or taken.
    #[error("the subscription's price {0} is not one of this product's plans")]
    UnknownPrice(String),
    #[error("the subscription has no price")]
    NoPrice,
}

/// Decides the plan from the subscription's current state, what was held
/// before, and the time.
pub fn decide(
    sub: &Subscription,
    prices: &PriceBook,
    held: &Held,
    now: DateTime<Utc>,
) -> Result<Decision, EntitlementError> {
    let bought = if sub.status.is_paying() {
        let price = sub.price_id.as_deref().ok_or(EntitlementError::NoPrice)?;
        prices
            .plan_of(price)
            .ok_or_else(|| EntitlementError::UnknownPrice(price.to_owned()))?
    } else {
        Plan::Free
    };
    let in_force = held.in_force(now);
    // What this subscription pays for, and until when.
    let paying = sub
        .status
        .is_paying()
        .then_some(())
        .and(sub.current_period_end);
    if bought >= in_force {
        // Same or up: at once, paid until the period's end.
        let held = match paying {
            Some(until) => Held {
                paid_plan: Some(bought),
                paid_until: Some(until),
            },
            None => Held::default(),
        };
        let next = match paying {
            Some(until) if sub.cancel_at_period_end => Some((Plan::Free, until)),
            _ => None,
        };
        return Ok(Decision {
            plan: bought,
            held,
            next,
        });
    }
    // Down (a cheaper price, a cancellation, a lapsed payment): what was
    // paid for holds until its period ends, then the lower plan.
    let until = held.paid_until.unwrap_or(now);
    let after = if sub.cancel_at_period_end {
        Plan::Free
    } else {
        bought
    };
    Ok(Decision {
        plan: in_force,
        held: *held,
        next: Some((after, until)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};
    use proptest::prelude::*;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap()
    }

    fn prices() -> PriceBook {
        PriceBook {
            starter: "price_starter".into(),
            pro: "price_pro".into(),
        }
    }

    fn sub(
        status: SubscriptionStatus,
        price: &str,
        end: DateTime<Utc>,
        cancel: bool,
    ) -> Subscription {
        Subscription {
            id: "sub_1".into(),
            customer: "cus_1".into(),
            status,
            price_id: Some(price.into()),
            current_period_end: Some(end),
            cancel_at_period_end: cancel,
        }
    }

    use SubscriptionStatus::*;

    #[test]
    fn an_upgrade_applies_at_once_and_a_downgrade_at_the_period_end() {
        let end = t0() + Duration::days(30);
        let first = decide(
            &sub(Active, "price_starter", end, false),
            &prices(),
            &Held::default(),
            t0(),
        )
        .unwrap();
        assert_eq!(first.plan, Plan::Starter);
        assert_eq!(first.next, None);
        let up = decide(
            &sub(Active, "price_pro", end, false),
            &prices(),
            &first.held,
            t0(),
        )
        .unwrap();
        assert_eq!(up.plan, Plan::Pro, "upgrade at once");
        let down = decide(
            &sub(Active, "price_starter", end, false),
            &prices(),
            &up.held,
            t0() + Duration::days(3),
        )
        .unwrap();
        assert_eq!(down.plan, Plan::Pro, "the paid period holds");
        assert_eq!(down.next, Some((Plan::Starter, end)));
        // The renewal: a new period at the lower price.
        let renewed = decide(
            &sub(Active, "price_starter", end + Duration::days(31), false),
            &prices(),
            &down.held,
            end + Duration::seconds(1),
        )
        .unwrap();
        assert_eq!(renewed.plan, Plan::Starter);
    }

    #[test]
    fn a_cancellation_holds_until_the_period_end_and_past_due_holds_while_stripe_retries() {
        let end = t0() + Duration::days(30);
        let paid = decide(
            &sub(Active, "price_pro", end, false),
            &prices(),
            &Held::default(),
            t0(),
        )
        .unwrap();
        let cancelling = decide(
            &sub(Active, "price_pro", end, true),
            &prices(),
            &paid.held,
            t0(),
        )
        .unwrap();
        assert_eq!(cancelling.plan, Plan::Pro);
        assert_eq!(cancelling.next, Some((Plan::Free, end)));
        let ended = decide(
            &sub(Canceled, "price_pro", end, false),
            &prices(),
            &cancelling.held,
            end + Duration::seconds(1),
        )
        .unwrap();
        assert_eq!(ended.plan, Plan::Free);
        let past_due = decide(
            &sub(PastDue, "price_pro", end, false),
            &prices(),
            &paid.held,
            t0(),
        )
        .unwrap();
        assert_eq!(past_due.plan, Plan::Pro);
        let gave_up = decide(
            &sub(Canceled, "price_pro", end, false),
            &prices(),
            &past_due.held,
            end + Duration::days(5),
        )
        .unwrap();
        assert_eq!(gave_up.plan, Plan::Free);
    }

    #[test]
    fn an_unknown_price_grants_nothing() {
        let end = t0() + Duration::days(30);
        assert_eq!(
            decide(
                &sub(Active, "price_enterprise_hack", end, false),
                &prices(),
                &Held::default(),
                t0()
            ),
            Err(EntitlementError::UnknownPrice(
                "price_enterprise_hack".into()
            ))
        );
        assert!(prices().price_of(Plan::Enterprise).is_none());
    }

    #[test]
    fn the_period_end_is_read_from_the_item_or_the_subscription() {
        let v = serde_json::json!({
            "id": "sub_1", "object": "subscription", "customer": "cus_1", "status": "active",
            "cancel_at_period_end": false,
            "items": {"data": [{"price": {"id": "price_pro"}, "current_period_end": 1_800_000_000}]}
        });
        let s = Subscription::from_json(&v).unwrap();
        assert_eq!(s.current_period_end.unwrap().timestamp(), 1_800_000_000);
        assert_eq!(s.price_id.as_deref(), Some("price_pro"));
        let old = serde_json::json!({
            "id": "sub_1", "customer": {"id": "cus_1"}, "status": "past_due",
            "current_period_end": 1_700_000_000,
            "items": {"data": [{"price": {"id": "price_pro"}}]}
        });
        let s = Subscription::from_json(&old).unwrap();
        assert_eq!(s.current_period_end.unwrap().timestamp(), 1_700_000_000);
        assert_eq!(s.customer, "cus_1");
    }

    fn arb_status() -> impl Strategy<Value = SubscriptionStatus> {
        prop_oneof![
            Just(Incomplete),
            Just(IncompleteExpired),
            Just(Trialing),
            Just(Active),
            Just(PastDue),
            Just(Canceled),
            Just(Unpaid),
            Just(Paused)
        ]
    }

    fn arb_sub() -> impl Strategy<Value = Subscription> {
        (
            arb_status(),
            prop_oneof![Just("price_starter"), Just("price_pro")],
            0i64..90,
            any::<bool>(),
        )
            .prop_map(|(status, price, days, cancel)| {
                sub(status, price, t0() + Duration::days(days), cancel)
            })
    }

    proptest! {
        /// Whatever order the states arrive in (events are re-read as the
        /// subscription's current state), the same final state at the same
        /// time gives the same plan, and a plan above free is only ever one
        /// a paying state bought or a period already paid for.
        #[test]
        fn the_last_state_decides_whatever_came_before(
            history in proptest::collection::vec(arb_sub(), 0..6),
            last in arb_sub(),
            offset in 0i64..60,
        ) {
            let now = t0() + Duration::days(offset);
            let mut held = Held::default();
            let mut paid_plans = vec![Plan::Free];
            for s in &history {
                if let Ok(d) = decide(s, &prices(), &held, now) {
                    held = d.held;
                }
                if s.status.is_paying() {
                    paid_plans.push(prices().plan_of(s.price_id.as_deref().unwrap()).unwrap());
                }
            }
            let d = decide(&last, &prices(), &held, now).unwrap();
            if last.status.is_paying() {
                paid_plans.push(prices().plan_of(last.price_id.as_deref().unwrap()).unwrap());
            }
            prop_assert!(paid_plans.contains(&d.plan), "{:?} never paid for", d.plan);
            prop_assert!(d.plan != Plan::Enterprise);
            // Never less than what the last state pays for.
            if last.status.is_paying() {
                let bought = prices().plan_of(last.price_id.as_deref().unwrap()).unwrap();
                prop_assert!(d.plan >= bought);
            }
        }
    }
}
