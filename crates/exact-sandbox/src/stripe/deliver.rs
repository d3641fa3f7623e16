//! Webhook delivery: one thread POSTs events in the order they were handed
//! over, each signed as Stripe signs (`Stripe-Signature: t=…,v1=…[,v1=…]`,
//! HMAC-SHA256 over `"{t}.{body}"` with every endpoint secret), and an
//! endpoint answering other than 2xx gets the event again after the
//! configured (shortened) retry delays.

use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Weak};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::Delivery;
use crate::Shared;

/// One delivery to make.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub event_id: String,
    /// Seconds to back-date the signature's timestamp by.
    pub age: i64,
    pub attempt: u32,
    pub reason: &'static str,
}

/// The handle events are delivered through.
#[derive(Debug)]
pub(crate) struct Deliverer {
    tx: Sender<Job>,
}

impl Deliverer {
    pub fn new() -> (Deliverer, Receiver<Job>) {
        let (tx, rx) = channel();
        (Deliverer { tx }, rx)
    }

    /// Queues a first attempt (a new event, a release, a replay).
    pub fn send(&self, event_id: &str, age: i64, reason: &'static str) {
        let _ = self.tx.send(Job {
            event_id: event_id.to_owned(),
            age,
            attempt: 1,
            reason,
        });
    }

    fn resend(&self, job: Job) {
        let _ = self.tx.send(job);
    }
}

/// The `Stripe-Signature` header for `body` signed at `t`.
pub fn signature_header(t: i64, body: &str, secrets: &[String]) -> String {
    let mut header = format!("t={t}");
    for secret in secrets {
        // HMAC accepts keys of any length, so this cannot fail.
        if let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
            mac.update(format!("{t}.{body}").as_bytes());
            header.push_str(&format!(",v1={}", hex::encode(mac.finalize().into_bytes())));
        }
    }
    header
}

/// Runs the delivery loop until the sandbox is gone. It holds the sandbox
/// weakly, so dropping the sandbox ends it.
pub(crate) fn spawn(rx: Receiver<Job>, shared: Weak<Shared>) {
    std::thread::spawn(move || {
        let agent = ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .timeout_global(Some(std::time::Duration::from_secs(10)))
                .http_status_as_error(false)
                .max_redirects(0)
                .build(),
        );
        for job in rx {
            let Some(shared) = shared.upgrade() else {
                return;
            };
            deliver(&agent, &shared, job);
        }
    });
}

fn deliver(agent: &ureq::Agent, shared: &Arc<Shared>, job: Job) {
    let config = &shared.config.stripe;
    let prepared = shared.state.lock().ok().and_then(|st| {
        let s = &st.stripe;
        let event = s.events.iter().find(|e| e.id == job.event_id)?;
        let url = s
            .webhook_url
            .clone()
            .unwrap_or_else(|| config.webhook_url.clone());
        let secrets = s
            .webhook_secrets
            .clone()
            .unwrap_or_else(|| config.webhook_secrets.clone());
        Some((
            url,
            secrets,
            s.event_json(event).to_string(),
            event.kind.clone(),
        ))
    });
    let Some((url, secrets, body, kind)) = prepared else {
        return;
    };
    let Some(url) = url else {
        // No endpoint configured: the event stays listed, undelivered.
        return;
    };
    // The signature carries the wall clock, not the sandbox's (as with a
    // Stripe test clock): receivers check it against their own time.
    let t = chrono::Utc::now().timestamp() - job.age;
    let header = signature_header(t, &body, &secrets);
    let result = agent
        .post(&url)
        .header("Content-Type", "application/json; charset=utf-8")
        .header(
            "User-Agent",
            "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        )
        .header("Stripe-Signature", &header)
        .send(body.as_bytes());
    let (status, error) = match result {
        Ok(r) => (Some(r.status().as_u16()), None),
        Err(e) => (None, Some(e.to_string())),
    };
    let ok = status.is_some_and(|s| (200..300).contains(&s));
    if let Ok(mut st) = shared.state.lock() {
        st.stripe.deliveries.push(Delivery {
            event_id: job.event_id.clone(),
            event_type: kind,
            attempt: job.attempt,
            url,
            signed_at: t,
            status,
            ok,
            error,
            reason: job.reason.to_owned(),
        });
    }
    let delay = usize::try_from(job.attempt - 1)
        .ok()
        .and_then(|i| config.delivery_retries_ms.get(i).copied());
    if let (false, Some(ms)) = (ok, delay) {
        let weak = Arc::downgrade(shared);
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(ms));
            if let Some(shared) = weak.upgrade() {
                shared.stripe_deliverer.resend(Job {
                    attempt: job.attempt + 1,
                    age: 0,
                    reason: "retry",
                    ..job
                });
            }
        });
    }
}
