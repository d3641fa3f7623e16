//! The sandbox's mutable state: OAuth grants, rate-limit windows, injected
//! faults, the request log and its clock offset. One mutex; the server is
//! a test fixture, not a throughput target.

use std::collections::{HashMap, HashSet, VecDeque};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone)]
pub struct CodeGrant {
    pub user_id: String,
    pub client_id: String,
    pub redirect_uri: String,
    pub expires_at: DateTime<Utc>,
    pub used: bool,
}

#[derive(Debug, Clone)]
pub struct AccessGrant {
    pub user_id: String,
    pub client_id: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct RefreshGrant {
    pub user_id: String,
    pub client_id: String,
    pub expires_at: DateTime<Utc>,
    /// When the access token issued with this refresh token expires; Exact
    /// refuses a refresh before its last 30 s.
    pub access_expires_at: DateTime<Utc>,
    pub used: bool,
}

/// A fault to inject into the next matching requests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    /// `status` (answer `status`), `timeout` (hold the request for
    /// `delay_ms`, then answer 504), `delay` (hold it for `delay_ms`, then
    /// answer it normally) or `rate_limit` (429 like Exact).
    pub kind: String,
    #[serde(default)]
    pub status: Option<u16>,
    #[serde(default = "one")]
    pub count: u32,
    /// Only requests whose path starts with this (e.g. `/api/oauth2/token`).
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub delay_ms: Option<u64>,
}

fn one() -> u32 {
    1
}

/// One handled request, for tests to assert on (no secrets).
#[derive(Debug, Clone, Serialize)]
pub struct LogEntry {
    pub at: String,
    pub method: String,
    pub path: String,
    pub status: u16,
    /// For token requests: `authorization_code` or `refresh_token`.
    pub grant_type: Option<String>,
    pub division: Option<i64>,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Windows {
    pub minute_start: i64,
    pub minute_count: u32,
    pub day_start: i64,
    pub day_count: u32,
}

#[derive(Debug, Default)]
pub struct Inner {
    pub offset: Duration,
    pub codes: HashMap<String, CodeGrant>,
    pub access: HashMap<String, AccessGrant>,
    pub refresh: HashMap<String, RefreshGrant>,
    /// (user id, client id) pairs whose consent was revoked.
    pub revoked: HashSet<(String, String)>,
    pub windows: HashMap<(String, i64), Windows>,
    pub faults: VecDeque<Fault>,
    pub log: Vec<LogEntry>,
    pub counter: u64,
    /// Mails accepted by the Resend-compatible catcher.
    pub mails: Vec<crate::mail::CaughtMail>,
    /// The local Stripe's objects, events and deliveries.
    pub stripe: crate::stripe::State,
}

impl Inner {
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.offset
    }

    /// A fresh opaque token: unique, unguessable enough for a local fixture.
    pub fn token(&mut self, prefix: &str, seed: u64) -> String {
        self.counter += 1;
        let digest = Sha256::digest(format!(
            "{seed}:{}:{}",
            self.counter,
            Utc::now().timestamp_nanos_opt().unwrap_or(0)
        ));
        format!("{prefix}{}", hex::encode(digest))
    }

    /// Takes one matching fault, if any. A fault without a path applies
    /// to Exact's paths only: the local Stripe's (`/v1/`, `/stripe/`) are
    /// faulted only by naming them, so Exact fault tests stay unaffected
    /// by billing calls in between.
    pub fn take_fault(&mut self, path: &str) -> Option<Fault> {
        let stripe = path.starts_with("/v1/") || path.starts_with("/stripe/");
        let idx = self
            .faults
            .iter()
            .position(|f| f.path.as_deref().map_or(!stripe, |p| path.starts_with(p)))?;
        let fault = self.faults.get_mut(idx)?;
        let taken = fault.clone();
        fault.count = fault.count.saturating_sub(1);
        if fault.count == 0 {
            self.faults.remove(idx);
        }
        Some(taken)
    }
}
