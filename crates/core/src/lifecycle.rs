//! The token lifecycle of an Exact connection as a pure state machine.
//!
//! `transition(state, event, now)` returns the next state, the effects the
//! caller must carry out (store tokens, queue an e-mail) and the next
//! deadline, which the caller stores (`next_retry_at`) so a later cron tick
//! acts on it. Nothing here sleeps or reads a clock.
//!
//! ```text
//! active ──fail(transient)──▶ retry_pending ──success──▶ active
//!   │                              │ fail(transient), retries left: stays, later deadline
//!   │                              │ fail(transient), retries exhausted
//!   └──fail(permanent)──▶ refresh_failed ◀──fail(permanent)──┘
//!                              │ reconnect (user signs in with Exact again)
//!                              ▼
//!                            active
//! ```
//!
//! Retry counting: the first failure schedules retry 1 after 5 minutes,
//! then 15 min, 1 h, 6 h and 24 h. When the fifth retry fails too, the
//! connection is `refresh_failed`. Every backoff step is therefore used
//! exactly once before giving up.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// Minutes to wait before retry 1, 2, 3, 4 and 5.
pub const BACKOFF_MINUTES: [i64; 5] = [5, 15, 60, 360, 1440];

/// Retries after the first failure before the connection is given up.
pub const MAX_RETRIES: u32 = BACKOFF_MINUTES.len() as u32;

/// Status column of `connections`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionStatus {
    Active,
    RetryPending,
    /// Terminal until the user reconnects.
    RefreshFailed,
}

impl ConnectionStatus {
    pub const ALL: [ConnectionStatus; 3] = [
        ConnectionStatus::Active,
        ConnectionStatus::RetryPending,
        ConnectionStatus::RefreshFailed,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            ConnectionStatus::Active => "active",
            ConnectionStatus::RetryPending => "retry_pending",
            ConnectionStatus::RefreshFailed => "refresh_failed",
        }
    }
}

impl fmt::Display for ConnectionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown connection status {0:?}")]
pub struct UnknownStatus(pub String);

impl FromStr for ConnectionStatus {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ConnectionStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

/// The lifecycle part of a connection row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenState {
    pub status: ConnectionStatus,
    /// Failed attempts since the last success (0 when active).
    pub retry_count: u32,
    /// When the next retry is due (`retry_pending` only).
    pub next_retry_at: Option<DateTime<Utc>>,
    /// Short, secret-free reason of the last failure.
    pub last_error: Option<String>,
}

impl TokenState {
    pub fn active() -> Self {
        TokenState {
            status: ConnectionStatus::Active,
            retry_count: 0,
            next_retry_at: None,
            last_error: None,
        }
    }
}

/// Why a refresh failed, as far as the lifecycle cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshFailure {
    /// Worth retrying: network fault, timeout, 5xx, 429, a lost lease race.
    Transient(String),
    /// Retrying cannot help: `invalid_grant`, revoked consent, expired
    /// refresh token. The user must reconnect.
    Permanent(String),
}

/// Something that happened to a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenEvent {
    /// Exact returned fresh tokens.
    Refreshed,
    RefreshFailed(RefreshFailure),
    /// The user completed the Exact OAuth flow again.
    Reconnected,
}

/// What the caller must do after a transition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Seal and store the new tokens atomically with the new state.
    StoreTokens,
    /// Tell the user (once per incident) that they must reconnect.
    NotifyReconnectNeeded { reason: String },
}

/// Result of [`transition`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub state: TokenState,
    pub effects: Vec<Effect>,
    /// When the cron should look at this connection again for a retry.
    pub next_deadline: Option<DateTime<Utc>>,
}

/// The wait before retry number `retry` (1-based), if there is one.
pub fn backoff(retry: u32) -> Option<Duration> {
    let idx = usize::try_from(retry).ok()?.checked_sub(1)?;
    BACKOFF_MINUTES.get(idx).map(|m| Duration::minutes(*m))
}

/// The lifecycle's only rule set.
pub fn transition(state: &TokenState, event: &TokenEvent, now: DateTime<Utc>) -> Transition {
    use ConnectionStatus::*;
    match (state.status, event) {
        // Nothing but a reconnect leaves the terminal state.
        (_, TokenEvent::Reconnected) => Transition {
            state: TokenState::active(),
            effects: vec![Effect::StoreTokens],
            next_deadline: None,
        },
        (RefreshFailed, _) => Transition {
            state: state.clone(),
            effects: Vec::new(),
            next_deadline: None,
        },
        (Active | RetryPending, TokenEvent::Refreshed) => Transition {
            state: TokenState::active(),
            effects: vec![Effect::StoreTokens],
            next_deadline: None,
        },
        (Active | RetryPending, TokenEvent::RefreshFailed(RefreshFailure::Permanent(reason))) => {
            give_up(state, reason)
        }
        (Active | RetryPending, TokenEvent::RefreshFailed(RefreshFailure::Transient(reason))) => {
            let failures = state.retry_count.saturating_add(1);
            match backoff(failures) {
                Some(wait) => {
                    let at = now + wait;
                    Transition {
                        state: TokenState {
                            status: RetryPending,
                            retry_count: failures,
                            next_retry_at: Some(at),
                            last_error: Some(reason.clone()),
                        },
                        effects: Vec::new(),
                        next_deadline: Some(at),
                    }
                }
                None => give_up(
                    &TokenState {
                        retry_count: failures,
                        ..state.clone()
                    },
                    reason,
                ),
            }
        }
    }
}

fn give_up(state: &TokenState, reason: &str) -> Transition {
    Transition {
        state: TokenState {
            status: ConnectionStatus::RefreshFailed,
            retry_count: state.retry_count,
            next_retry_at: None,
            last_error: Some(reason.to_owned()),
        },
        effects: vec![Effect::NotifyReconnectNeeded {
            reason: reason.to_owned(),
        }],
        next_deadline: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, 9, 0, 0)
            .single()
            .unwrap_or_default()
    }

    fn transient() -> TokenEvent {
        TokenEvent::RefreshFailed(RefreshFailure::Transient("exact 503".into()))
    }

    fn permanent() -> TokenEvent {
        TokenEvent::RefreshFailed(RefreshFailure::Permanent("invalid_grant".into()))
    }

    #[test]
    fn backoff_schedule_is_exactly_5_15_60_360_1440_minutes_then_gives_up() {
        let mut state = TokenState::active();
        let mut now = t0();
        let mut waits = Vec::new();
        loop {
            let tr = transition(&state, &transient(), now);
            if tr.state.status == ConnectionStatus::RefreshFailed {
                assert_eq!(
                    tr.effects,
                    vec![Effect::NotifyReconnectNeeded {
                        reason: "exact 503".into()
                    }]
                );
                break;
            }
            let at = tr.next_deadline.unwrap_or(now);
            assert_eq!(tr.state.next_retry_at, Some(at));
            waits.push((at - now).num_minutes());
            now = at;
            state = tr.state;
        }
        assert_eq!(waits, vec![5, 15, 60, 360, 1440]);
        assert_eq!(state.retry_count, MAX_RETRIES);
    }

    #[test]
    fn success_during_retries_resets_everything() {
        let tr = transition(&TokenState::active(), &transient(), t0());
        let tr = transition(&tr.state, &transient(), t0());
        assert_eq!(tr.state.retry_count, 2);
        let ok = transition(&tr.state, &TokenEvent::Refreshed, t0());
        assert_eq!(ok.state, TokenState::active());
        assert_eq!(ok.effects, vec![Effect::StoreTokens]);
        assert_eq!(ok.next_deadline, None);
    }

    #[test]
    fn permanent_error_skips_retries_and_notifies_once() {
        let tr = transition(&TokenState::active(), &permanent(), t0());
        assert_eq!(tr.state.status, ConnectionStatus::RefreshFailed);
        assert_eq!(tr.state.retry_count, 0);
        assert_eq!(tr.effects.len(), 1);
        // Further events do nothing, so no second e-mail either.
        let again = transition(&tr.state, &permanent(), t0());
        assert!(again.effects.is_empty());
        assert_eq!(again.state, tr.state);
    }

    #[test]
    fn reconnect_revives_a_failed_connection() {
        let failed = transition(&TokenState::active(), &permanent(), t0()).state;
        let tr = transition(&failed, &TokenEvent::Reconnected, t0());
        assert_eq!(tr.state, TokenState::active());
    }

    fn any_event() -> impl Strategy<Value = TokenEvent> {
        prop_oneof![
            Just(TokenEvent::Refreshed),
            Just(TokenEvent::Reconnected),
            "[a-z ]{0,12}".prop_map(|r| TokenEvent::RefreshFailed(RefreshFailure::Transient(r))),
            "[a-z ]{0,12}".prop_map(|r| TokenEvent::RefreshFailed(RefreshFailure::Permanent(r))),
        ]
    }

    proptest! {
        #[test]
        fn refresh_failed_is_left_only_by_reconnect(
            events in proptest::collection::vec(any_event(), 1..40),
            minutes in proptest::collection::vec(0i64..3000, 40),
        ) {
            let mut state = TokenState::active();
            let mut now = t0();
            for (event, dt) in events.iter().zip(minutes) {
                now += Duration::minutes(dt);
                let tr = transition(&state, event, now);
                if state.status == ConnectionStatus::RefreshFailed
                    && tr.state.status != ConnectionStatus::RefreshFailed
                {
                    prop_assert_eq!(event, &TokenEvent::Reconnected);
                }
                state = tr.state;
            }
        }

        #[test]
        fn retry_pending_always_has_a_future_deadline_within_the_schedule(
            events in proptest::collection::vec(any_event(), 1..40),
        ) {
            let mut state = TokenState::active();
            let now = t0();
            for event in &events {
                let tr = transition(&state, event, now);
                match tr.state.status {
                    ConnectionStatus::RetryPending => {
                        let at = tr.state.next_retry_at;
                        prop_assert!(at.is_some());
                        prop_assert_eq!(at, tr.next_deadline);
                        let wait = (at.unwrap_or(now) - now).num_minutes();
                        prop_assert!(BACKOFF_MINUTES.contains(&wait));
                        prop_assert!(tr.state.retry_count >= 1 && tr.state.retry_count <= MAX_RETRIES);
                        prop_assert_eq!(backoff(tr.state.retry_count).map(|d| d.num_minutes()), Some(wait));
                    }
                    ConnectionStatus::Active => {
                        prop_assert_eq!(tr.state.retry_count, 0);
                        prop_assert!(tr.state.next_retry_at.is_none());
                    }
                    ConnectionStatus::RefreshFailed => {
                        prop_assert!(tr.state.next_retry_at.is_none());
                        prop_assert!(tr.next_deadline.is_none());
                    }
                }
                state = tr.state;
            }
        }

        #[test]
        fn a_permanent_error_from_a_live_state_is_terminal_at_once(
            retries in 0u32..=MAX_RETRIES,
            reason in "[a-z_]{1,20}",
        ) {
            let status = if retries == 0 { ConnectionStatus::Active } else { ConnectionStatus::RetryPending };
            let state = TokenState { status, retry_count: retries, next_retry_at: None, last_error: None };
            let tr = transition(&state, &TokenEvent::RefreshFailed(RefreshFailure::Permanent(reason.clone())), t0());
            prop_assert_eq!(tr.state.status, ConnectionStatus::RefreshFailed);
            prop_assert_eq!(tr.state.retry_count, retries, "no retry is spent");
            prop_assert_eq!(tr.effects, vec![Effect::NotifyReconnectNeeded { reason }]);
        }

        #[test]
        fn enters_refresh_failed_with_exactly_one_notification(
            events in proptest::collection::vec(any_event(), 1..60),
        ) {
            let mut state = TokenState::active();
            for event in &events {
                let tr = transition(&state, event, t0());
                let notes = tr.effects.iter().filter(|e| matches!(e, Effect::NotifyReconnectNeeded { .. })).count();
                let entered = state.status != ConnectionStatus::RefreshFailed
                    && tr.state.status == ConnectionStatus::RefreshFailed;
                prop_assert_eq!(notes, usize::from(entered));
                state = tr.state;
            }
        }
    }
}
