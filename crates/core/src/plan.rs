//! Subscription plans and their limits: the one source of truth that the
//! database CHECK constraint, the portal and the metering all follow.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A customer's subscription plan, ordered from the cheapest up (an
/// upgrade is a greater plan).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Plan {
    Free,
    Starter,
    Pro,
    Enterprise,
}

/// A limit that is either a number or absent (enterprise).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Limit {
    Capped(u32),
    Unlimited,
}

impl Limit {
    /// Whether `used` has reached the limit, so one more would exceed it.
    pub fn is_reached(self, used: u64) -> bool {
        match self {
            Limit::Capped(cap) => used >= u64::from(cap),
            Limit::Unlimited => false,
        }
    }

    /// What is left after `used`, or `None` when unlimited.
    pub fn remaining(self, used: u64) -> Option<u64> {
        match self {
            Limit::Capped(cap) => Some(u64::from(cap).saturating_sub(used)),
            Limit::Unlimited => None,
        }
    }
}

impl Limit {
    /// The cap as an SQL integer for conditional statements ("count < ?");
    /// unlimited becomes 2^52, beyond any real count and inside D1's exact
    /// integer range.
    pub fn cap_for_sql(self) -> i64 {
        match self {
            Limit::Capped(n) => i64::from(n),
            Limit::Unlimited => 1 << 52,
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Limit::Capped(n) => write!(f, "{n}"),
            Limit::Unlimited => f.write_str("unlimited"),
        }
    }
}

/// Price of a plan. Enterprise is priced per customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Price {
    /// Euro cents per month, VAT excluded.
    MonthlyEuroCents(u32),
    OnRequest,
}

/// Everything a plan allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PlanLimits {
    /// MCP `tools/call` requests per calendar month (UTC).
    pub monthly_tool_calls: Limit,
    /// Active Exact administrations (divisions) the user may query.
    pub administrations: Limit,
    /// Active (non-revoked) API keys.
    pub api_keys: Limit,
    pub price: Price,
}

impl Plan {
    /// Every plan, cheapest first. The migrations' CHECK constraint on
    /// `users.plan` lists exactly these names (a tidy test enforces it).
    pub const ALL: [Plan; 4] = [Plan::Free, Plan::Starter, Plan::Pro, Plan::Enterprise];

    pub const fn as_str(self) -> &'static str {
        match self {
            Plan::Free => "free",
            Plan::Starter => "starter",
            Plan::Pro => "pro",
            Plan::Enterprise => "enterprise",
        }
    }

    pub const fn limits(self) -> PlanLimits {
        match self {
            Plan::Free => PlanLimits {
                monthly_tool_calls: Limit::Capped(200),
                administrations: Limit::Capped(2),
                api_keys: Limit::Capped(3),
                price: Price::MonthlyEuroCents(0),
            },
            Plan::Starter => PlanLimits {
                monthly_tool_calls: Limit::Capped(750),
                administrations: Limit::Capped(3),
                api_keys: Limit::Capped(5),
                price: Price::MonthlyEuroCents(900),
            },
            Plan::Pro => PlanLimits {
                monthly_tool_calls: Limit::Capped(2_500),
                administrations: Limit::Capped(10),
                api_keys: Limit::Capped(10),
                price: Price::MonthlyEuroCents(2_500),
            },
            Plan::Enterprise => PlanLimits {
                monthly_tool_calls: Limit::Unlimited,
                administrations: Limit::Unlimited,
                api_keys: Limit::Unlimited,
                price: Price::OnRequest,
            },
        }
    }

    /// The next plan up, for "upgrade to …" hints; `None` for enterprise.
    pub const fn upgrade(self) -> Option<Plan> {
        match self {
            Plan::Free => Some(Plan::Starter),
            Plan::Starter => Some(Plan::Pro),
            Plan::Pro => Some(Plan::Enterprise),
            Plan::Enterprise => None,
        }
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A plan name that is not one of [`Plan::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown plan {0:?}; expected one of free, starter, pro, enterprise")]
pub struct UnknownPlan(pub String);

impl FromStr for Plan {
    type Err = UnknownPlan;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Plan::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| UnknownPlan(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_match_the_published_price_list() {
        let free = Plan::Free.limits();
        assert_eq!(free.monthly_tool_calls, Limit::Capped(200));
        assert_eq!(free.administrations, Limit::Capped(2));
        assert_eq!(free.api_keys, Limit::Capped(3));
        assert_eq!(free.price, Price::MonthlyEuroCents(0));

        let starter = Plan::Starter.limits();
        assert_eq!(starter.monthly_tool_calls, Limit::Capped(750));
        assert_eq!(starter.administrations, Limit::Capped(3));
        assert_eq!(starter.api_keys, Limit::Capped(5));
        assert_eq!(starter.price, Price::MonthlyEuroCents(900));

        let pro = Plan::Pro.limits();
        assert_eq!(pro.monthly_tool_calls, Limit::Capped(2_500));
        assert_eq!(pro.administrations, Limit::Capped(10));
        assert_eq!(pro.api_keys, Limit::Capped(10));
        assert_eq!(pro.price, Price::MonthlyEuroCents(2_500));

        let enterprise = Plan::Enterprise.limits();
        assert_eq!(enterprise.monthly_tool_calls, Limit::Unlimited);
        assert_eq!(enterprise.price, Price::OnRequest);
    }

    #[test]
    fn names_round_trip_and_unknown_names_are_rejected() {
        for plan in Plan::ALL {
            assert_eq!(plan.as_str().parse::<Plan>(), Ok(plan));
        }
        assert_eq!(
            "premium".parse::<Plan>(),
            Err(UnknownPlan("premium".into()))
        );
        assert!("Free".parse::<Plan>().is_err(), "names are lower case");
    }

    #[test]
    fn limit_reached_at_the_cap_not_before() {
        let cap = Limit::Capped(200);
        assert!(!cap.is_reached(199));
        assert!(cap.is_reached(200));
        assert_eq!(cap.remaining(150), Some(50));
        assert_eq!(cap.remaining(250), Some(0));
        assert!(!Limit::Unlimited.is_reached(u64::MAX));
        assert_eq!(Limit::Unlimited.remaining(5), None);
    }

    #[test]
    fn every_plan_but_enterprise_has_an_upgrade_that_allows_more() {
        for plan in Plan::ALL {
            match plan.upgrade() {
                Some(next) => {
                    let (a, b) = (plan.limits(), next.limits());
                    let calls = |l: Limit| match l {
                        Limit::Capped(n) => u64::from(n),
                        Limit::Unlimited => u64::MAX,
                    };
                    assert!(calls(b.monthly_tool_calls) > calls(a.monthly_tool_calls));
                }
                None => assert_eq!(plan, Plan::Enterprise),
            }
        }
    }
}
