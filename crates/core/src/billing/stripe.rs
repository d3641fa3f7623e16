//! The few Stripe API calls the product makes, form-encoded through the
//! platform's HTTP port (Stripe's Rust clients are built on hyper and do
//! not run on Workers). Every create carries an `Idempotency-Key`, so a
//! retried request never makes a second customer or session.

use serde_json::Value;

use super::entitlement::{PriceBook, Subscription};
use crate::crypto::Secret;
use crate::ports::{HttpMethod, HttpRequest, HttpTransport};

/// Stripe's API origin in production.
pub const DEFAULT_API_BASE: &str = "https://api.stripe.com";

/// The product's Stripe account and prices.
#[derive(Debug, Clone)]
pub struct StripeConfig {
    /// `STRIPE_API_BASE` (a local imitation in development).
    pub api_base: String,
    /// `STRIPE_SECRET_KEY`.
    pub secret_key: Secret,
    pub prices: PriceBook,
    /// `STRIPE_WEBHOOK_SECRET`: one or more (comma-separated) while a
    /// secret is rolled.
    pub webhook_secrets: Vec<String>,
}

/// Why a Stripe call failed; the message is Stripe's own type and code,
/// never a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StripeError {
    #[error("Stripe could not be reached: {0}")]
    Transport(String),
    #[error("Stripe answered {status}: {kind}")]
    Refused { status: u16, kind: String },
    #[error("Stripe's answer could not be read")]
    Unreadable,
}

fn form(pairs: &[(&str, &str)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

async fn call(
    http: &impl HttpTransport,
    cfg: &StripeConfig,
    method: HttpMethod,
    path: &str,
    body: Option<String>,
    idempotency_key: Option<&str>,
) -> Result<Value, StripeError> {
    let mut headers = vec![(
        "Authorization".to_owned(),
        format!("Bearer {}", cfg.secret_key.expose()),
    )];
    if body.is_some() {
        headers.push((
            "Content-Type".into(),
            "application/x-www-form-urlencoded".into(),
        ));
    }
    if let Some(key) = idempotency_key {
        headers.push(("Idempotency-Key".into(), key.to_owned()));
    }
    let response = http
        .send(HttpRequest {
            method,
            url: format!("{}{path}", cfg.api_base.trim_end_matches('/')),
            headers,
            body,
        })
        .await
        .map_err(|e| StripeError::Transport(e.to_string()))?;
    let value: Value = serde_json::from_str(&response.body).map_err(|_| StripeError::Unreadable)?;
    if !(200..300).contains(&response.status) {
        let kind = value
            .pointer("/error/code")
            .or_else(|| value.pointer("/error/type"))
            .and_then(Value::as_str)
            .unwrap_or("unknown")
            .to_owned();
        return Err(StripeError::Refused {
            status: response.status,
            kind,
        });
    }
    Ok(value)
}

fn string_field(v: &Value, name: &str) -> Result<String, StripeError> {
    v.get(name)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or(StripeError::Unreadable)
}

/// Creates the user's Stripe customer (once: the key is the user's id).
pub async fn create_customer(
    http: &impl HttpTransport,
    cfg: &StripeConfig,
    user_id: &str,
    email: &str,
) -> Result<String, StripeError> {
    let body = form(&[("email", email), ("metadata[user_id]", user_id)]);
    let v = call(
        http,
        cfg,
        HttpMethod::Post,
        "/v1/customers",
        Some(body),
        Some(&format!("customer-{user_id}")),
    )
    .await?;
    string_field(&v, "id")
}

/// A Checkout Session for a subscription to `price_id`; returns its URL.
#[allow(clippy::too_many_arguments)]
pub async fn create_checkout_session(
    http: &impl HttpTransport,
    cfg: &StripeConfig,
    customer: &str,
    user_id: &str,
    price_id: &str,
    success_url: &str,
    cancel_url: &str,
    idempotency_key: &str,
) -> Result<String, StripeError> {
    let body = form(&[
        ("mode", "subscription"),
        ("customer", customer),
        ("client_reference_id", user_id),
        ("line_items[0][price]", price_id),
        ("line_items[0][quantity]", "1"),
        ("success_url", success_url),
        ("cancel_url", cancel_url),
        ("metadata[user_id]", user_id),
    ]);
    let v = call(
        http,
        cfg,
        HttpMethod::Post,
        "/v1/checkout/sessions",
        Some(body),
        Some(idempotency_key),
    )
    .await?;
    string_field(&v, "url")
}

/// A Billing Portal session (change plan, card, cancel, invoices).
pub async fn create_portal_session(
    http: &impl HttpTransport,
    cfg: &StripeConfig,
    customer: &str,
    return_url: &str,
    idempotency_key: &str,
) -> Result<String, StripeError> {
    let body = form(&[("customer", customer), ("return_url", return_url)]);
    let v = call(
        http,
        cfg,
        HttpMethod::Post,
        "/v1/billing_portal/sessions",
        Some(body),
        Some(idempotency_key),
    )
    .await?;
    string_field(&v, "url")
}

/// A subscription's current state (what every webhook is decided by).
pub async fn get_subscription(
    http: &impl HttpTransport,
    cfg: &StripeConfig,
    id: &str,
) -> Result<Subscription, StripeError> {
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(StripeError::Unreadable);
    }
    let v = call(
        http,
        cfg,
        HttpMethod::Get,
        &format!("/v1/subscriptions/{id}"),
        None,
        None,
    )
    .await?;
    Subscription::from_json(&v).ok_or(StripeError::Unreadable)
}
