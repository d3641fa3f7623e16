//! What a smaller plan does to what the user has: the administrations
//! that stay readable (the default first, then by code: what
//! `administrations::allowed` serves on every call) and the API keys that
//! keep working (the oldest ones: keys made last stop first, so the key
//! an assistant has used longest keeps working). Shown before a downgrade
//! and enforced after it, from this one place.

use crate::plan::{Limit, Plan};
use crate::storage::administrations::{self, Administration};
use crate::storage::api_keys::ApiKeyRecord;

/// The consequences of being on `plan` with what the user has now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effects {
    /// Active administrations the plan no longer serves.
    pub paused_administrations: Vec<String>,
    /// Active keys past the plan's cap (newest first).
    pub stopped_keys: Vec<String>,
}

impl Effects {
    pub fn is_empty(&self) -> bool {
        self.paused_administrations.is_empty() && self.stopped_keys.is_empty()
    }
}

/// Whether a key still works on `plan`, given how many of the user's live
/// keys are older than it (made before it; ties by id).
pub fn key_within_plan(older_live_keys: u64, plan: Plan) -> bool {
    match plan.limits().api_keys {
        Limit::Capped(cap) => older_live_keys < u64::from(cap),
        Limit::Unlimited => true,
    }
}

/// What `plan` would pause and stop of these administrations and keys.
pub fn effects_of(plan: Plan, active: &[Administration], keys: &[ApiKeyRecord]) -> Effects {
    let kept: Vec<&str> = administrations::allowed(active, plan)
        .into_iter()
        .map(|a| a.id.as_str())
        .collect();
    let paused_administrations = active
        .iter()
        .filter(|a| a.is_active && !kept.contains(&a.id.as_str()))
        .map(|a| a.name.clone())
        .collect();
    let mut live: Vec<&ApiKeyRecord> = keys.iter().filter(|k| k.revoked_at.is_none()).collect();
    live.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    let mut stopped_keys: Vec<String> = live
        .iter()
        .enumerate()
        .filter(|(older, _)| !key_within_plan(*older as u64, plan))
        .map(|(_, k)| k.name.clone())
        .collect();
    stopped_keys.reverse();
    Effects {
        paused_administrations,
        stopped_keys,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::region::Region;
    use chrono::{Duration, TimeZone, Utc};

    fn admin(code: i64, default: bool) -> Administration {
        Administration {
            id: format!("a{code}"),
            connection_id: "c".into(),
            region: Region::Nl,
            division_code: code,
            name: format!("Bedrijf {code}"),
            is_active: true,
            is_default: default,
        }
    }

    fn key(n: i64) -> ApiKeyRecord {
        let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        ApiKeyRecord {
            id: format!("k{n}"),
            user_id: "u".into(),
            name: format!("sleutel {n}"),
            key_prefix: "pmjb_abcd".into(),
            created_at: t0 + Duration::days(n),
            last_used_at: None,
            revoked_at: None,
        }
    }

    #[test]
    fn a_smaller_plan_keeps_the_default_and_the_oldest_keys() {
        let admins = vec![
            admin(5, false),
            admin(3, false),
            admin(9, true),
            admin(1, false),
        ];
        let keys: Vec<ApiKeyRecord> = (1..=7).map(key).collect();
        let e = effects_of(Plan::Free, &admins, &keys);
        // Free serves two: the default (9) and the lowest code (1).
        assert_eq!(e.paused_administrations, vec!["Bedrijf 5", "Bedrijf 3"]);
        // Free allows three keys: the four newest stop, newest first.
        assert_eq!(
            e.stopped_keys,
            vec!["sleutel 7", "sleutel 6", "sleutel 5", "sleutel 4"]
        );
        assert!(effects_of(Plan::Enterprise, &admins, &keys).is_empty());
        // A revoked key does not count.
        let mut some_revoked = keys.clone();
        some_revoked[0].revoked_at = Some(Utc.with_ymd_and_hms(2026, 2, 1, 0, 0, 0).unwrap());
        assert_eq!(
            effects_of(Plan::Free, &admins, &some_revoked)
                .stopped_keys
                .len(),
            3
        );
    }

    #[test]
    fn the_key_check_at_sign_in_agrees_with_what_was_shown() {
        let keys: Vec<ApiKeyRecord> = (1..=5).map(key).collect();
        let stopped = effects_of(Plan::Free, &[], &keys).stopped_keys;
        for (older, k) in keys.iter().enumerate() {
            assert_eq!(
                key_within_plan(older as u64, Plan::Free),
                !stopped.contains(&k.name),
                "{}",
                k.name
            );
        }
    }
}
