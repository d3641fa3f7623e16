//! Paying for a plan: the dashboard's upgrade buttons open a Stripe
//! Checkout Session, "manage subscription" a Billing Portal session, and
//! Stripe's signed webhooks change the plan (`core::billing` decides how).
//! This module only routes, calls core and renders.

use askama::Template;
use boekhouding_core::billing::stripe::{self, StripeConfig};
use boekhouding_core::billing::webhook;
use boekhouding_core::plan::Plan;
use boekhouding_core::ports::{Clock, Randomness};
use boekhouding_core::storage::billing_accounts;
use serde_json::json;

use crate::account::{self, SignedIn};
use crate::i18n::{Lang, Page, fill};
use crate::pages::Chrome;
use crate::web::{WebRequest, WebResponse};
use crate::{PortalConfig, PortalPlatform};

/// The origins a form may lead to when its answer redirects to Stripe's
/// hosted pages (the browser holds the redirect to `form-action`).
pub fn hosted_origins(cfg: &StripeConfig) -> Vec<String> {
    if cfg.api_base.trim_end_matches('/') == stripe::DEFAULT_API_BASE {
        vec![
            "https://checkout.stripe.com".into(),
            "https://billing.stripe.com".into(),
        ]
    } else {
        // A local imitation serves its pages from its own origin.
        url::Url::parse(&cfg.api_base)
            .map(|u| vec![u.origin().ascii_serialization()])
            .unwrap_or_default()
    }
}

/// The plans a customer can buy, as the form names them.
fn buyable(name: &str) -> Option<Plan> {
    match name {
        "starter" => Some(Plan::Starter),
        "pro" => Some(Plan::Pro),
        _ => None,
    }
}

fn portal_origin(req: &WebRequest, cfg: &PortalConfig) -> String {
    cfg.oauth
        .as_ref()
        .map(|o| o.issuer.as_str().to_owned())
        .unwrap_or_else(|| req.origin.clone())
}

fn random_key<P: PortalPlatform>(p: &P, what: &str) -> Option<String> {
    let mut raw = [0u8; 16];
    p.rng().fill(&mut raw).ok()?;
    Some(format!("{what}-{}", hex::encode(raw)))
}

fn billing_unavailable(lang: Lang) -> WebResponse {
    let t = lang.texts();
    account::message(
        503,
        lang,
        t.billing_unavailable_title,
        t.billing_unavailable_text,
        "/dashboard",
        t.back_to_dashboard,
    )
}

/// The Stripe customer of a user, created the first time (Stripe's
/// idempotency key is the user's id, so a retry makes no second one).
async fn customer<P: PortalPlatform>(signed: &SignedIn, s: &StripeConfig, p: &P) -> Option<String> {
    let now = p.clock().now();
    if let Ok(Some(account)) = billing_accounts::find_for_user(p.db(), &signed.user.id).await {
        return Some(account.customer_id);
    }
    let id = stripe::create_customer(p.http(), s, &signed.user.id, &signed.user.email)
        .await
        .ok()?;
    billing_accounts::insert_customer(p.db(), &signed.user.id, &id, now)
        .await
        .ok()?;
    // Another request may have stored its (identical) customer first.
    billing_accounts::find_for_user(p.db(), &signed.user.id)
        .await
        .ok()
        .flatten()
        .map(|a| a.customer_id)
}

/// `POST /billing/checkout` (`plan`): to Stripe Checkout, or to the
/// Billing Portal for a customer who already has a subscription (a plan
/// change is made there).
pub async fn checkout<P: PortalPlatform>(
    req: &WebRequest,
    cfg: &PortalConfig,
    p: &P,
) -> WebResponse {
    let signed = match account::genuine(req, cfg, p).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Some(s) = cfg.stripe.as_ref() else {
        return billing_unavailable(signed.lang);
    };
    let Some(plan) = req.form_field("plan").as_deref().and_then(buyable) else {
        return account::refused(signed.lang);
    };
    if signed.user.plan == Plan::Enterprise {
        return WebResponse::redirect(303, "/dashboard");
    }
    let paying = matches!(
        billing_accounts::find_for_user(p.db(), &signed.user.id).await,
        Ok(Some(a)) if a.is_paying()
    );
    if paying {
        return manage(req, cfg, p).await;
    }
    let Some(customer) = customer(&signed, s, p).await else {
        return billing_unavailable(signed.lang);
    };
    let Some(price) = s.prices.price_of(plan) else {
        return account::refused(signed.lang);
    };
    let origin = portal_origin(req, cfg);
    let Some(key) = random_key(p, "checkout") else {
        return billing_unavailable(signed.lang);
    };
    match stripe::create_checkout_session(
        p.http(),
        s,
        &customer,
        &signed.user.id,
        price,
        &format!("{origin}/billing/success?session_id={{CHECKOUT_SESSION_ID}}"),
        &format!("{origin}/dashboard?done=checkout_cancelled"),
        &key,
    )
    .await
    {
        Ok(url) => WebResponse::redirect(303, &url),
        Err(e) => billing_unavailable(signed.lang).because(&e),
    }
}

/// `POST /billing/portal`: Stripe's Billing Portal (plan, card, cancel,
/// invoices), back to the dashboard afterwards.
pub async fn manage<P: PortalPlatform>(req: &WebRequest, cfg: &PortalConfig, p: &P) -> WebResponse {
    let signed = match account::genuine(req, cfg, p).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Some(s) = cfg.stripe.as_ref() else {
        return billing_unavailable(signed.lang);
    };
    let Some(customer) = customer(&signed, s, p).await else {
        return billing_unavailable(signed.lang);
    };
    let Some(key) = random_key(p, "portal") else {
        return billing_unavailable(signed.lang);
    };
    let back = format!("{}/dashboard", portal_origin(req, cfg));
    match stripe::create_portal_session(p.http(), s, &customer, &back, &key).await {
        Ok(url) => WebResponse::redirect(303, &url),
        Err(e) => billing_unavailable(signed.lang).because(&e),
    }
}

#[derive(Template)]
#[template(path = "upgrade.html")]
struct Upgrade {
    c: Chrome,
    text: String,
    csrf: String,
    plan: &'static str,
    pay: &'static str,
    compare_href: &'static str,
    compare: &'static str,
}

/// `GET /billing/upgrade?plan=…`: where the usage-limit message sends a
/// user: one button to Stripe Checkout (a GET must not create anything).
pub async fn upgrade_page<P: PortalPlatform>(
    req: &WebRequest,
    cfg: &PortalConfig,
    p: &P,
) -> WebResponse {
    let signed = match account::require_user(req, p).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let lang = signed.lang;
    let t = lang.texts();
    let plan = req
        .query_param("plan")
        .as_deref()
        .and_then(buyable)
        .unwrap_or(Plan::Starter);
    let limits = plan.limits();
    let calls = match limits.monthly_tool_calls {
        boekhouding_core::plan::Limit::Capped(n) => crate::pages::thousands(u64::from(n), lang),
        boekhouding_core::plan::Limit::Unlimited => "∞".into(),
    };
    let page = Upgrade {
        c: Chrome::new(None, lang, t.upgrade_title.to_owned())
            .signed_in(true)
            .switch_link(None),
        text: fill(t.upgrade_text, &[account::plan_label(plan), &calls]),
        csrf: cfg
            .secret
            .as_ref()
            .map(|s| s.csrf_token(&signed.session.token_hash))
            .unwrap_or_default(),
        plan: plan.as_str(),
        pay: t.upgrade_pay,
        compare_href: Page::Pricing.path(lang),
        compare: t.upgrade_label,
    };
    match page.render() {
        Ok(html) => {
            let targets = cfg.stripe.as_ref().map(hosted_origins).unwrap_or_default();
            WebResponse::html(200, html).allow_form_targets(&targets)
        }
        Err(e) => account::unavailable(lang).because(&e),
    }
}

/// `GET /billing/success`: back from a paid checkout. The plan changes
/// when Stripe's webhook arrives (seconds); the page says so.
pub async fn success<P: PortalPlatform>(req: &WebRequest, p: &P) -> WebResponse {
    let signed = match account::require_user(req, p).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let t = signed.lang.texts();
    account::message(
        200,
        signed.lang,
        t.paid_title,
        t.paid_text,
        "/dashboard",
        t.to_dashboard,
    )
}

/// `POST /stripe/webhook`: Stripe's deliveries, verified over the raw
/// body. 200 for everything handled or deliberately ignored, 400 for what
/// is not Stripe's, 503 so that Stripe retries when we could not finish.
pub async fn webhook_endpoint<P: PortalPlatform>(
    req: &WebRequest,
    cfg: &PortalConfig,
    p: &P,
) -> WebResponse {
    let Some(s) = cfg.stripe.as_ref() else {
        return WebResponse::json(503, &json!({"error": "billing is not configured"}));
    };
    let now = p.clock().now();
    match webhook::handle(
        p.db(),
        p.http(),
        s,
        req.header("stripe-signature"),
        &req.body,
        now,
    )
    .await
    {
        Ok(outcome) => {
            let note = match &outcome {
                webhook::Outcome::Applied { plan, .. } => format!("applied: {plan}"),
                webhook::Outcome::Duplicate => "duplicate".to_owned(),
                webhook::Outcome::Ignored(why) => format!("ignored: {why}"),
            };
            WebResponse::json(200, &json!({"received": true, "outcome": note}))
        }
        // A refused signature or body says why (it is the sender's
        // problem); a failure of ours says only "try again".
        Err(e) => {
            if matches!(e, webhook::WebhookError::Signature(_)) {
                crate::trail::security(
                    p,
                    req,
                    boekhouding_core::storage::security_events::SecurityEvent::WebhookSignature,
                    None,
                )
                .await;
            }
            let message = match e.http_status() {
                400 => e.to_string(),
                _ => "temporarily unavailable; retry later".to_owned(),
            };
            WebResponse::json(e.http_status(), &json!({"error": message}))
        }
    }
}
