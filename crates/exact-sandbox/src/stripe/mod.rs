//! A local Stripe: the parts of Stripe's API the product uses (customers,
//! Checkout Sessions in subscription mode with a hosted payment page, Billing
//! Portal sessions with a hosted portal, subscriptions, invoices and events),
//! shaped as Stripe's API reference (version `2025-03-31.basil`) documents
//! them, with signed webhook deliveries that tests can hold, reorder, replay
//! and back-date through the loopback admin API (`/__admin/stripe/…`).
//!
//! Time is the sandbox's clock (`/__admin/clock` moves it, like a Stripe
//! test clock): renewals, scheduled downgrades, cancellations at period end
//! and the failing card's retries happen when the clock passes them.

mod api;
mod deliver;
mod pages;

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Months, TimeZone, Utc};
use serde::Serialize;
use serde_json::{Map, Value, json};

pub(crate) use api::{admin, serve};
pub use deliver::signature_header;
pub(crate) use deliver::{Deliverer, spawn as spawn_delivery};
pub(crate) use pages::{checkout_page, checkout_submit, portal_action, portal_page};

/// The API version the objects follow (subscription periods live on the
/// subscription items; an invoice names its subscription under `parent`).
pub const API_VERSION: &str = "2025-03-31.basil";

/// Stripe's test cards the hosted checkout page knows.
pub const CARD_OK: &str = "4242424242424242";
pub const CARD_DECLINED: &str = "4000000000000002";
pub const CARD_FAILS_LATER: &str = "4000000000000341";

/// One recurring monthly price.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StripePrice {
    pub id: String,
    /// The product's name, shown on the hosted pages.
    pub product_name: String,
    /// In cents of `currency`.
    pub unit_amount: u32,
    pub currency: String,
}

/// How the local Stripe behaves.
#[derive(Debug, Clone)]
pub struct StripeConfig {
    /// The only API key accepted (`Authorization: Bearer …`).
    pub secret_key: String,
    /// Where events are POSTed; `None` keeps them undelivered.
    pub webhook_url: Option<String>,
    /// The endpoint's signing secrets; with two (a rotation), every delivery
    /// carries one `v1` signature per secret.
    pub webhook_secrets: Vec<String>,
    pub prices: Vec<StripePrice>,
    /// Seconds between a failed renewal payment and each retry; when the
    /// last retry fails the subscription is canceled.
    pub payment_retries: Vec<i64>,
    /// Milliseconds before each redelivery of an event whose endpoint
    /// answered other than 2xx (Stripe's three days, shortened).
    pub delivery_retries_ms: Vec<u64>,
}

impl Default for StripeConfig {
    fn default() -> Self {
        let cents = |plan: boekhouding_core::plan::Plan| match plan.limits().price {
            boekhouding_core::plan::Price::MonthlyEuroCents(c) => c,
            boekhouding_core::plan::Price::OnRequest => 0,
        };
        StripeConfig {
            secret_key: "sk_test_local".into(),
            webhook_url: None,
            webhook_secrets: vec!["whsec_local".into()],
            prices: vec![
                StripePrice {
                    id: "price_starter_local".into(),
                    product_name: "Starter".into(),
                    unit_amount: cents(boekhouding_core::plan::Plan::Starter),
                    currency: "eur".into(),
                },
                StripePrice {
                    id: "price_pro_local".into(),
                    product_name: "Pro".into(),
                    unit_amount: cents(boekhouding_core::plan::Plan::Pro),
                    currency: "eur".into(),
                },
            ],
            payment_retries: vec![86_400, 2 * 86_400, 3 * 86_400],
            delivery_retries_ms: vec![300, 1_000, 3_000],
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Customer {
    pub id: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub metadata: Map<String, Value>,
    pub created: i64,
}

#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub id: String,
    pub customer: Option<String>,
    pub customer_email: Option<String>,
    pub client_reference_id: Option<String>,
    pub price: String,
    pub quantity: u64,
    pub success_url: String,
    pub cancel_url: Option<String>,
    pub metadata: Map<String, Value>,
    /// `subscription_data[metadata]`: copied onto the subscription.
    pub subscription_metadata: Map<String, Value>,
    pub created: i64,
    pub expires_at: i64,
    pub complete: bool,
    pub subscription: Option<String>,
    pub invoice: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct PortalSession {
    pub id: String,
    pub customer: String,
    pub return_url: Option<String>,
    pub created: i64,
}

#[derive(Debug, Clone)]
pub(crate) struct Subscription {
    pub id: String,
    pub item_id: String,
    pub customer: String,
    pub price: String,
    pub quantity: u64,
    pub status: &'static str,
    pub period_start: i64,
    pub period_end: i64,
    pub cancel_at_period_end: bool,
    pub canceled_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub created: i64,
    pub latest_invoice: Option<String>,
    pub metadata: Map<String, Value>,
    /// A downgrade scheduled for the period's end: the schedule's id and
    /// the price it moves to.
    pub schedule: Option<(String, String)>,
    /// Paid with the card that attaches but whose later charges fail.
    pub card_fails: bool,
    /// After a failed renewal: how many retries were made and when the next
    /// one is due.
    pub retries_done: usize,
    pub next_retry: Option<i64>,
}

#[derive(Debug, Clone)]
pub(crate) struct Invoice {
    pub id: String,
    pub customer: String,
    pub subscription: String,
    pub price: String,
    pub quantity: u64,
    pub amount: u64,
    pub currency: String,
    pub paid: bool,
    pub attempt_count: u32,
    pub billing_reason: &'static str,
    pub created: i64,
    pub period_start: i64,
    pub period_end: i64,
    pub next_payment_attempt: Option<i64>,
}

/// One event, its object as it was when it happened.
#[derive(Debug, Clone)]
pub(crate) struct Event {
    pub id: String,
    pub kind: String,
    pub created: i64,
    pub object: Value,
    pub previous_attributes: Option<Value>,
    pub idempotency_key: Option<String>,
}

/// One delivery attempt of an event to the webhook endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delivery {
    pub event_id: String,
    pub event_type: String,
    /// 1 for the first attempt, 2… for Stripe's retries; replays start again at 1.
    pub attempt: u32,
    pub url: String,
    /// The signature's `t` (wall-clock unix seconds, back-dated when asked).
    pub signed_at: i64,
    /// The endpoint's status, or `None` when it could not be reached.
    pub status: Option<u16>,
    pub ok: bool,
    /// Why no status: the connection error.
    pub error: Option<String>,
    /// Why it was sent: `event`, `retry`, `release`, `replay`.
    pub reason: String,
}

/// A stored answer for an `Idempotency-Key`.
#[derive(Debug, Clone)]
pub(crate) struct Idempotent {
    pub request: String,
    pub status: u16,
    pub body: String,
}

/// Everything the local Stripe remembers (in memory, as the rest of the
/// sandbox: nothing survives a restart).
#[derive(Debug, Default)]
pub(crate) struct State {
    pub counter: u64,
    pub customers: BTreeMap<String, Customer>,
    pub sessions: BTreeMap<String, Session>,
    pub portals: BTreeMap<String, PortalSession>,
    pub subscriptions: BTreeMap<String, Subscription>,
    pub invoices: BTreeMap<String, Invoice>,
    /// Oldest first.
    pub events: Vec<Event>,
    pub deliveries: Vec<Delivery>,
    /// While holding, new events queue here instead of being delivered.
    pub holding: bool,
    pub held: Vec<String>,
    pub idempotency: HashMap<String, Idempotent>,
    /// Overrides of the configured endpoint (admin API); `None`: the config's.
    pub webhook_url: Option<Option<String>>,
    pub webhook_secrets: Option<Vec<String>>,
    /// The sandbox clock as of the last `tick` (unix seconds).
    pub clock: i64,
}

impl State {
    /// A new object id: Stripe's prefix, a sequence and a random-looking tail.
    pub fn id(&mut self, prefix: &str) -> String {
        self.counter += 1;
        let tail = hex::encode(
            <sha2::Sha256 as sha2::Digest>::digest(format!(
                "{prefix}{}{}",
                self.counter,
                Utc::now().timestamp_nanos_opt().unwrap_or(0)
            ))
            .get(..6)
            .unwrap_or_default(),
        );
        format!("{prefix}{:06}{tail}", self.counter)
    }

    pub fn customer_json(&self, id: &str) -> Option<Value> {
        let c = self.customers.get(id)?;
        Some(json!({
            "id": c.id,
            "object": "customer",
            "address": null,
            "balance": 0,
            "created": c.created,
            "currency": null,
            "default_source": null,
            "delinquent": false,
            "description": null,
            "email": c.email,
            "invoice_prefix": c.id.trim_start_matches("cus_").to_ascii_uppercase().get(..8),
            "invoice_settings": {"custom_fields": null, "default_payment_method": null, "footer": null, "rendering_options": null},
            "livemode": false,
            "metadata": c.metadata,
            "name": c.name,
            "phone": null,
            "preferred_locales": [],
            "shipping": null,
            "tax_exempt": "none",
            "test_clock": null,
        }))
    }

    pub fn price_json(config: &StripeConfig, price: &str) -> Value {
        match config.prices.iter().find(|p| p.id == price) {
            Some(p) => json!({
                "id": p.id,
                "object": "price",
                "active": true,
                "billing_scheme": "per_unit",
                "created": 1_767_225_600,
                "currency": p.currency,
                "livemode": false,
                "lookup_key": null,
                "metadata": {},
                "nickname": p.product_name,
                "product": format!("prod_{}", p.id.trim_start_matches("price_")),
                "recurring": {"interval": "month", "interval_count": 1, "meter": null, "usage_type": "licensed"},
                "tax_behavior": "unspecified",
                "type": "recurring",
                "unit_amount": p.unit_amount,
                "unit_amount_decimal": p.unit_amount.to_string(),
            }),
            None => json!({"id": price, "object": "price"}),
        }
    }

    pub fn session_json(&self, config: &StripeConfig, base: &str, id: &str) -> Option<Value> {
        let s = self.sessions.get(id)?;
        let amount = config
            .prices
            .iter()
            .find(|p| p.id == s.price)
            .map(|p| (u64::from(p.unit_amount) * s.quantity, p.currency.clone()));
        let status = if s.complete {
            "complete"
        } else if s.expires_at <= self.now_hint() {
            "expired"
        } else {
            "open"
        };
        Some(json!({
            "id": s.id,
            "object": "checkout.session",
            "amount_subtotal": amount.as_ref().map(|a| a.0),
            "amount_total": amount.as_ref().map(|a| a.0),
            "cancel_url": s.cancel_url,
            "client_reference_id": s.client_reference_id,
            "created": s.created,
            "currency": amount.as_ref().map(|a| a.1.clone()),
            "customer": s.customer,
            "customer_email": s.customer_email,
            "expires_at": s.expires_at,
            "invoice": s.invoice,
            "livemode": false,
            "metadata": s.metadata,
            "mode": "subscription",
            "payment_status": if s.complete { "paid" } else { "unpaid" },
            "status": status,
            "subscription": s.subscription,
            "success_url": s.success_url,
            "ui_mode": "hosted",
            "url": (status == "open").then(|| format!("{base}/stripe/checkout/{}", s.id)),
        }))
    }

    /// The clock the session-expiry check reads (set by `tick`).
    fn now_hint(&self) -> i64 {
        self.clock
    }

    pub fn portal_json(&self, base: &str, id: &str) -> Option<Value> {
        let p = self.portals.get(id)?;
        Some(json!({
            "id": p.id,
            "object": "billing_portal.session",
            "configuration": "bpc_local",
            "created": p.created,
            "customer": p.customer,
            "flow": null,
            "livemode": false,
            "locale": null,
            "on_behalf_of": null,
            "return_url": p.return_url,
            "url": format!("{base}/stripe/portal/{}", p.id),
        }))
    }

    pub fn subscription_json(&self, config: &StripeConfig, id: &str) -> Option<Value> {
        let s = self.subscriptions.get(id)?;
        Some(json!({
            "id": s.id,
            "object": "subscription",
            "billing_cycle_anchor": s.created,
            "cancel_at": s.cancel_at_period_end.then_some(s.period_end),
            "cancel_at_period_end": s.cancel_at_period_end,
            "canceled_at": s.canceled_at,
            "collection_method": "charge_automatically",
            "created": s.created,
            "currency": config.prices.iter().find(|p| p.id == s.price).map(|p| p.currency.clone()),
            "customer": s.customer,
            "days_until_due": null,
            "default_payment_method": null,
            "ended_at": s.ended_at,
            "items": {
                "object": "list",
                "data": [{
                    "id": s.item_id,
                    "object": "subscription_item",
                    "created": s.created,
                    "current_period_end": s.period_end,
                    "current_period_start": s.period_start,
                    "metadata": {},
                    "price": Self::price_json(config, &s.price),
                    "quantity": s.quantity,
                    "subscription": s.id,
                }],
                "has_more": false,
                "total_count": 1,
                "url": format!("/v1/subscription_items?subscription={}", s.id),
            },
            "latest_invoice": s.latest_invoice,
            "livemode": false,
            "metadata": s.metadata,
            "schedule": s.schedule.as_ref().map(|(id, _)| id.clone()),
            "start_date": s.created,
            "status": s.status,
            "test_clock": null,
            "trial_end": null,
            "trial_start": null,
        }))
    }

    pub fn invoice_json(&self, config: &StripeConfig, id: &str) -> Option<Value> {
        let i = self.invoices.get(id)?;
        Some(json!({
            "id": i.id,
            "object": "invoice",
            "amount_due": i.amount,
            "amount_paid": if i.paid { i.amount } else { 0 },
            "amount_remaining": if i.paid { 0 } else { i.amount },
            "attempt_count": i.attempt_count,
            "attempted": i.attempt_count > 0,
            "billing_reason": i.billing_reason,
            "collection_method": "charge_automatically",
            "created": i.created,
            "currency": i.currency,
            "customer": i.customer,
            "lines": {
                "object": "list",
                "data": [{
                    "id": format!("il_{}", i.id.trim_start_matches("in_")),
                    "object": "line_item",
                    "amount": i.amount,
                    "currency": i.currency,
                    "period": {"start": i.period_start, "end": i.period_end},
                    "pricing": {"type": "price_details", "price_details": {"price": i.price, "product": Self::price_json(config, &i.price)["product"]}, "unit_amount_decimal": null},
                    "quantity": i.quantity,
                }],
                "has_more": false,
                "url": format!("/v1/invoices/{}/lines", i.id),
            },
            "livemode": false,
            "next_payment_attempt": i.next_payment_attempt,
            "parent": {
                "type": "subscription_details",
                "quote_details": null,
                "subscription_details": {"metadata": {}, "subscription": i.subscription},
            },
            "period_end": i.period_end,
            "period_start": i.period_start,
            "status": if i.paid { "paid" } else { "open" },
            "status_transitions": {"paid_at": i.paid.then_some(i.created)},
            "total": i.amount,
        }))
    }

    pub fn event_json(&self, event: &Event) -> Value {
        let mut data = json!({"object": event.object});
        if let Some(p) = &event.previous_attributes {
            data["previous_attributes"] = p.clone();
        }
        json!({
            "id": event.id,
            "object": "event",
            "api_version": API_VERSION,
            "created": event.created,
            "data": data,
            "livemode": false,
            "pending_webhooks": 1,
            "request": {
                "id": event.idempotency_key.as_ref().map(|_| format!("req_{}", event.id.trim_start_matches("evt_"))),
                "idempotency_key": event.idempotency_key,
            },
            "type": event.kind,
        })
    }
}

/// The state plus what it needs to speak: the config and the sandbox's base.
pub(crate) struct Ctx<'a> {
    pub config: &'a StripeConfig,
    pub base: &'a str,
    pub deliverer: &'a Deliverer,
}

impl State {
    /// Records an event and hands it to delivery (or the held queue).
    pub fn emit(
        &mut self,
        ctx: &Ctx<'_>,
        kind: &str,
        at: i64,
        object: Value,
        previous_attributes: Option<Value>,
        idempotency_key: Option<String>,
    ) {
        let id = self.id("evt_");
        self.events.push(Event {
            id: id.clone(),
            kind: kind.to_owned(),
            created: at,
            object,
            previous_attributes,
            idempotency_key,
        });
        if self.holding {
            self.held.push(id);
        } else {
            ctx.deliverer.send(&id, 0, "event");
        }
    }

    fn emit_subscription(
        &mut self,
        ctx: &Ctx<'_>,
        kind: &str,
        at: i64,
        id: &str,
        previous: Option<Value>,
    ) {
        if let Some(o) = self.subscription_json(ctx.config, id) {
            self.emit(ctx, kind, at, o, previous, None);
        }
    }

    fn emit_invoice(&mut self, ctx: &Ctx<'_>, kind: &str, at: i64, id: &str) {
        if let Some(o) = self.invoice_json(ctx.config, id) {
            self.emit(ctx, kind, at, o, None, None);
        }
    }

    /// A new invoice for the subscription's current period.
    fn invoice(&mut self, ctx: &Ctx<'_>, sub: &str, at: i64, reason: &'static str) -> String {
        let id = self.id("in_");
        let Some(s) = self.subscriptions.get(sub) else {
            return id;
        };
        let price = ctx.config.prices.iter().find(|p| p.id == s.price);
        let paid = !(s.card_fails && reason != "subscription_create");
        let invoice = Invoice {
            id: id.clone(),
            customer: s.customer.clone(),
            subscription: s.id.clone(),
            price: s.price.clone(),
            quantity: s.quantity,
            amount: price.map_or(0, |p| u64::from(p.unit_amount) * s.quantity),
            currency: price.map_or_else(|| "eur".into(), |p| p.currency.clone()),
            paid,
            attempt_count: 1,
            billing_reason: reason,
            created: at,
            period_start: s.period_start,
            period_end: s.period_end,
            next_payment_attempt: None,
        };
        self.invoices.insert(id.clone(), invoice);
        if let Some(s) = self.subscriptions.get_mut(sub) {
            s.latest_invoice = Some(id.clone());
        }
        id
    }

    /// Completes a checkout session paid with `card_fails` telling whether
    /// later charges will fail: the customer (if none), the subscription,
    /// its first invoice, and their events.
    pub fn complete_checkout(&mut self, ctx: &Ctx<'_>, session: &str, card_fails: bool, now: i64) {
        let Some(s) = self.sessions.get(session).cloned() else {
            return;
        };
        let customer = match s.customer.clone() {
            Some(c) => c,
            None => {
                let id = self.id("cus_");
                self.customers.insert(
                    id.clone(),
                    Customer {
                        id: id.clone(),
                        email: s.customer_email.clone(),
                        name: None,
                        metadata: Map::new(),
                        created: now,
                    },
                );
                if let Some(o) = self.customer_json(&id) {
                    self.emit(ctx, "customer.created", now, o, None, None);
                }
                id
            }
        };
        let sub = self.id("sub_");
        let item = self.id("si_");
        self.subscriptions.insert(
            sub.clone(),
            Subscription {
                id: sub.clone(),
                item_id: item,
                customer: customer.clone(),
                price: s.price.clone(),
                quantity: s.quantity,
                status: "active",
                period_start: now,
                period_end: add_month(now),
                cancel_at_period_end: false,
                canceled_at: None,
                ended_at: None,
                created: now,
                latest_invoice: None,
                metadata: s.subscription_metadata.clone(),
                schedule: None,
                card_fails,
                retries_done: 0,
                next_retry: None,
            },
        );
        let invoice = self.invoice(ctx, &sub, now, "subscription_create");
        if let Some(x) = self.sessions.get_mut(session) {
            x.complete = true;
            x.customer = Some(customer);
            x.subscription = Some(sub.clone());
            x.invoice = Some(invoice.clone());
        }
        self.emit_subscription(ctx, "customer.subscription.created", now, &sub, None);
        self.emit_invoice(ctx, "invoice.paid", now, &invoice);
        if let Some(o) = self.session_json(ctx.config, ctx.base, session) {
            self.emit(ctx, "checkout.session.completed", now, o, None, None);
        }
    }

    /// Changes the subscription's price now (an upgrade, prorated on the
    /// next invoice as `proration_behavior=create_prorations` does), or at
    /// the period's end through a subscription schedule (a downgrade).
    pub fn switch_price(&mut self, ctx: &Ctx<'_>, sub: &str, price: &str, now: i64) {
        let amount = |p: &str| {
            ctx.config
                .prices
                .iter()
                .find(|x| x.id == p)
                .map_or(0, |x| x.unit_amount)
        };
        let schedule_id = self.id("sub_sched_");
        let Some(before) = self.subscription_json(ctx.config, sub) else {
            return;
        };
        let Some(s) = self.subscriptions.get_mut(sub) else {
            return;
        };
        if s.price == price {
            // Back to the current plan: a pending downgrade is dropped.
            if s.schedule.take().is_some() {
                self.emit_subscription(
                    ctx,
                    "customer.subscription.updated",
                    now,
                    sub,
                    Some(json!({"schedule": before["schedule"]})),
                );
            }
            return;
        }
        if amount(price) >= amount(&s.price) {
            s.price = price.to_owned();
            s.schedule = None;
            s.cancel_at_period_end = false;
            s.canceled_at = None;
            let previous = json!({
                "items": before["items"],
                "schedule": before["schedule"],
                "cancel_at_period_end": before["cancel_at_period_end"],
                "canceled_at": before["canceled_at"],
            });
            self.emit_subscription(
                ctx,
                "customer.subscription.updated",
                now,
                sub,
                Some(previous),
            );
        } else {
            s.schedule = Some((schedule_id, price.to_owned()));
            self.emit_subscription(
                ctx,
                "customer.subscription.updated",
                now,
                sub,
                Some(json!({"schedule": null})),
            );
        }
    }

    /// The portal's cancel (`true`, at the period's end) and renew (`false`).
    pub fn set_cancel(&mut self, ctx: &Ctx<'_>, sub: &str, cancel: bool, now: i64) {
        let Some(s) = self.subscriptions.get_mut(sub) else {
            return;
        };
        if s.cancel_at_period_end == cancel || s.status == "canceled" {
            return;
        }
        let previous = json!({
            "cancel_at_period_end": s.cancel_at_period_end,
            "canceled_at": s.canceled_at,
            "cancel_at": s.cancel_at_period_end.then_some(s.period_end),
        });
        s.cancel_at_period_end = cancel;
        s.canceled_at = cancel.then_some(now);
        self.emit_subscription(
            ctx,
            "customer.subscription.updated",
            now,
            sub,
            Some(previous),
        );
    }

    /// Lets everything due up to `now` happen, earliest first: period ends
    /// (cancellation, scheduled downgrade, renewal and its payment) and the
    /// retries of a failed payment.
    pub fn tick(&mut self, ctx: &Ctx<'_>, now: i64) {
        self.clock = now;
        loop {
            let due = self
                .subscriptions
                .values()
                .filter(|s| s.status != "canceled")
                .filter_map(|s| {
                    let at = match s.next_retry {
                        Some(r) => r.min(s.period_end),
                        None => s.period_end,
                    };
                    (at <= now).then(|| (at, s.id.clone()))
                })
                .min();
            let Some((at, sub)) = due else { return };
            self.step(ctx, &sub, at);
        }
    }

    fn step(&mut self, ctx: &Ctx<'_>, sub: &str, at: i64) {
        let Some(before) = self.subscription_json(ctx.config, sub) else {
            return;
        };
        let Some(s) = self.subscriptions.get_mut(sub) else {
            return;
        };
        if s.next_retry == Some(at) {
            // A retry of the failed renewal: the card fails again.
            let invoice = s.latest_invoice.clone().unwrap_or_default();
            s.retries_done += 1;
            let exhausted = s.retries_done >= ctx.config.payment_retries.len();
            s.next_retry = if exhausted {
                None
            } else {
                ctx.config
                    .payment_retries
                    .get(s.retries_done)
                    .map(|d| at + d)
            };
            let next = s.next_retry;
            if exhausted {
                s.status = "canceled";
                s.canceled_at = Some(at);
                s.ended_at = Some(at);
            }
            if let Some(i) = self.invoices.get_mut(&invoice) {
                i.attempt_count += 1;
                i.next_payment_attempt = next;
            }
            self.emit_invoice(ctx, "invoice.payment_failed", at, &invoice);
            if exhausted {
                self.emit_subscription(ctx, "customer.subscription.deleted", at, sub, None);
            }
            return;
        }
        if s.cancel_at_period_end || s.status == "past_due" {
            // Canceled at the period's end, or still unpaid when the next
            // period would start: the subscription ends.
            s.status = "canceled";
            s.ended_at = Some(at);
            s.canceled_at.get_or_insert(at);
            s.next_retry = None;
            self.emit_subscription(ctx, "customer.subscription.deleted", at, sub, None);
            return;
        }
        // A renewal: the scheduled price (if any), a new period, its invoice.
        if let Some((_, price)) = s.schedule.take() {
            s.price = price;
        }
        s.period_start = s.period_end;
        s.period_end = add_month(s.period_end);
        let fails = s.card_fails;
        let invoice = self.invoice(ctx, sub, at, "subscription_cycle");
        let mut previous =
            json!({"items": before["items"], "latest_invoice": before["latest_invoice"]});
        if !before["schedule"].is_null() {
            previous["schedule"] = before["schedule"].clone();
        }
        if fails {
            let first = ctx.config.payment_retries.first().map(|d| at + d);
            if let Some(s) = self.subscriptions.get_mut(sub) {
                s.status = "past_due";
                s.retries_done = 0;
                s.next_retry = first;
                // Without retries configured the subscription ends at once.
                if first.is_none() {
                    s.status = "canceled";
                    s.canceled_at = Some(at);
                    s.ended_at = Some(at);
                }
            }
            if let Some(i) = self.invoices.get_mut(&invoice) {
                i.next_payment_attempt = first;
            }
            previous["status"] = before["status"].clone();
            self.emit_subscription(
                ctx,
                "customer.subscription.updated",
                at,
                sub,
                Some(previous),
            );
            self.emit_invoice(ctx, "invoice.payment_failed", at, &invoice);
            if first.is_none() {
                self.emit_subscription(ctx, "customer.subscription.deleted", at, sub, None);
            }
        } else {
            self.emit_subscription(
                ctx,
                "customer.subscription.updated",
                at,
                sub,
                Some(previous),
            );
            self.emit_invoice(ctx, "invoice.paid", at, &invoice);
        }
    }
}

/// One calendar month later, as Stripe's monthly billing periods (the 31st
/// falls back to the month's last day).
pub fn add_month(t: i64) -> i64 {
    Utc.timestamp_opt(t, 0)
        .single()
        .and_then(|d: DateTime<Utc>| d.checked_add_months(Months::new(1)))
        .map_or(t + 30 * 86_400, |d| d.timestamp())
}
