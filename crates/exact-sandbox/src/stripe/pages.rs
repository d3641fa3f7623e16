//! The hosted pages: Checkout (`/stripe/checkout/{cs_id}`, pays with a
//! test card) and the Billing Portal (`/stripe/portal/{bps_id}`: switch
//! plan, cancel or renew, return). Plain HTML forms, no script.

use super::{CARD_DECLINED, CARD_FAILS_LATER, CARD_OK, StripeConfig};
use crate::Shared;
use crate::http::{Reply, Req, esc};

fn page(status: u16, title: &str, body: &str) -> Reply {
    Reply::html(
        status,
        format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{t} · Stripe sandbox</title>\
             <style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:2rem auto;padding:0 1rem;line-height:1.5}}\
             label{{display:block;margin:.5rem 0 .25rem}}input{{font-size:1rem;padding:.4rem;width:100%;box-sizing:border-box}}\
             button{{font-size:1rem;padding:.5rem 1rem;margin:.5rem .5rem .5rem 0}}.error{{color:#a00;font-weight:bold}}\
             .test{{background:#fff3cd;padding:.25rem .5rem}}</style></head>\
             <body><p class=\"test\">Test mode: a local Stripe sandbox.</p><main><h1>{t}</h1>{body}</main></body></html>",
            t = esc(title),
        ),
    )
}

fn not_found(what: &str) -> Reply {
    page(
        404,
        "Not found",
        &format!("<p>This {what} does not exist.</p>"),
    )
}

fn money(config: &StripeConfig, price: &str) -> (String, String) {
    match config.prices.iter().find(|p| p.id == price) {
        Some(p) => (
            p.product_name.clone(),
            format!(
                "{} {}.{:02} per month",
                p.currency.to_ascii_uppercase(),
                p.unit_amount / 100,
                p.unit_amount % 100
            ),
        ),
        None => (price.to_owned(), String::new()),
    }
}

fn session_id(req: &Req) -> &str {
    req.path
        .trim_start_matches("/stripe/checkout/")
        .trim_end_matches('/')
}

fn checkout_form(shared: &Shared, id: &str, message: Option<&str>) -> Option<Reply> {
    let st = shared.state.lock().ok()?;
    let s = st.stripe.sessions.get(id)?;
    let (name, amount) = money(&shared.config.stripe, &s.price);
    if s.complete {
        let target = s.success_url.replace("{CHECKOUT_SESSION_ID}", &s.id);
        return Some(page(
            200,
            "Already paid",
            &format!(
                "<p>This checkout is complete.</p><p><a href=\"{}\">Continue</a></p>",
                esc(&target)
            ),
        ));
    }
    if s.expires_at <= st.now().timestamp() {
        return Some(page(
            410,
            "Checkout expired",
            "<p>This checkout session has expired.</p>",
        ));
    }
    let error = message.map_or_else(String::new, |m| {
        format!(
            "<p class=\"error\" role=\"alert\" id=\"card-error\">{}</p>",
            esc(m)
        )
    });
    let cancel = s.cancel_url.as_ref().map_or_else(String::new, |u| {
        format!(
            "<p><a id=\"cancel-checkout\" href=\"{}\">Cancel and go back</a></p>",
            esc(u)
        )
    });
    let described = if message.is_some() {
        " aria-describedby=\"card-error\" aria-invalid=\"true\""
    } else {
        ""
    };
    Some(page(
        if message.is_some() { 402 } else { 200 },
        &format!("Subscribe to {name}"),
        &format!(
            "<p><strong>{name}</strong>: <span id=\"amount\">{amount}</span></p>{error}\
             <form method=\"post\" action=\"/stripe/checkout/{id}\">\
             <label for=\"cardnumber\">Card number</label>\
             <input id=\"cardnumber\" name=\"cardnumber\" inputmode=\"numeric\" autocomplete=\"cc-number\" required{described}>\
             <label for=\"exp\">Expiry (MM/YY)</label><input id=\"exp\" name=\"exp\" value=\"12/34\">\
             <label for=\"cvc\">CVC</label><input id=\"cvc\" name=\"cvc\" value=\"123\">\
             <button type=\"submit\" id=\"pay\">Subscribe</button></form>{cancel}\
             <p>Test cards: {CARD_OK} pays; {CARD_DECLINED} is declined; {CARD_FAILS_LATER} pays now and fails at renewal.</p>",
            name = esc(&name),
            amount = esc(&amount),
            id = esc(id),
        ),
    ))
}

/// `GET /stripe/checkout/{id}`.
pub(crate) fn checkout_page(shared: &Shared, req: &Req) -> Reply {
    checkout_form(shared, session_id(req), None).unwrap_or_else(|| not_found("checkout session"))
}

/// `POST /stripe/checkout/{id}`: pays with the card typed in.
pub(crate) fn checkout_submit(shared: &Shared, req: &Req) -> Reply {
    let id = session_id(req).to_owned();
    let card: String = req
        .form()
        .get("cardnumber")
        .map(|c| c.chars().filter(char::is_ascii_digit).collect())
        .unwrap_or_default();
    let card_fails = match card.as_str() {
        CARD_OK => false,
        CARD_FAILS_LATER => true,
        CARD_DECLINED => {
            return checkout_form(shared, &id, Some("Your card was declined."))
                .unwrap_or_else(|| not_found("checkout session"));
        }
        _ => {
            return checkout_form(shared, &id, Some("Your card number is invalid."))
                .unwrap_or_else(|| not_found("checkout session"));
        }
    };
    let Ok(mut st) = shared.state.lock() else {
        return Reply::empty(500);
    };
    let now = st.now().timestamp();
    let ctx = shared.stripe_ctx();
    st.stripe.tick(&ctx, now);
    let open = st
        .stripe
        .sessions
        .get(&id)
        .map(|s| !s.complete && s.expires_at > now);
    match open {
        None => return not_found("checkout session"),
        Some(false) => {
            drop(st);
            return checkout_page(shared, req);
        }
        Some(true) => {}
    }
    st.stripe.complete_checkout(&ctx, &id, card_fails, now);
    let target = st
        .stripe
        .sessions
        .get(&id)
        .map(|s| s.success_url.replace("{CHECKOUT_SESSION_ID}", &s.id))
        .unwrap_or_default();
    Reply::redirect(&target).with_header("Cache-Control", "no-store")
}

fn portal_id(req: &Req) -> &str {
    let rest = req.path.trim_start_matches("/stripe/portal/");
    rest.split('/').next().unwrap_or_default()
}

/// The customer's subscription the portal manages: the newest not yet
/// canceled, else the newest.
fn portal_subscription(st: &super::State, customer: &str) -> Option<String> {
    let mine: Vec<&super::Subscription> = st
        .subscriptions
        .values()
        .filter(|s| s.customer == customer)
        .collect();
    mine.iter()
        .filter(|s| s.status != "canceled")
        .max_by_key(|s| (s.created, s.id.clone()))
        .or_else(|| mine.iter().max_by_key(|s| (s.created, s.id.clone())))
        .map(|s| s.id.clone())
}

fn date(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map_or_else(String::new, |d| d.format("%-d %B %Y").to_string())
}

/// `GET /stripe/portal/{id}`.
pub(crate) fn portal_page(shared: &Shared, req: &Req) -> Reply {
    let Ok(mut st) = shared.state.lock() else {
        return Reply::empty(500);
    };
    let now = st.now().timestamp();
    let ctx = shared.stripe_ctx();
    st.stripe.tick(&ctx, now);
    let id = portal_id(req).to_owned();
    let Some(p) = st.stripe.portals.get(&id).cloned() else {
        return not_found("billing portal session");
    };
    let config = &shared.config.stripe;
    let back = p.return_url.as_ref().map_or_else(String::new, |u| {
        format!("<p><a id=\"return\" href=\"{}\">Return</a></p>", esc(u))
    });
    let sub = portal_subscription(&st.stripe, &p.customer)
        .and_then(|s| st.stripe.subscriptions.get(&s).cloned());
    let body = match sub {
        None => "<p>You have no subscription.</p>".to_owned(),
        Some(s) if s.status == "canceled" => format!(
            "<p>Your subscription to <strong>{}</strong> ended on {}.</p>",
            esc(&money(config, &s.price).0),
            date(s.ended_at.unwrap_or(s.period_end))
        ),
        Some(s) => {
            let (name, amount) = money(config, &s.price);
            let mut html = format!(
                "<h2>Current plan</h2><p><strong id=\"plan\">{}</strong>: {}. Status: <span id=\"status\">{}</span>.</p>",
                esc(&name),
                esc(&amount),
                s.status
            );
            if s.cancel_at_period_end {
                html.push_str(&format!(
                    "<p id=\"notice\">Your plan will be canceled on {}.</p>\
                     <form method=\"post\" action=\"/stripe/portal/{id}/renew\"><button type=\"submit\" id=\"renew\">Renew plan</button></form>",
                    date(s.period_end),
                    id = esc(&id)
                ));
            } else {
                if let Some((_, next)) = &s.schedule {
                    html.push_str(&format!(
                        "<p id=\"notice\">Your plan changes to {} on {}.</p>",
                        esc(&money(config, next).0),
                        date(s.period_end)
                    ));
                } else {
                    html.push_str(&format!(
                        "<p>Your plan renews on {}.</p>",
                        date(s.period_end)
                    ));
                }
                for other in config.prices.iter().filter(|x| x.id != s.price) {
                    let (n, a) = money(config, &other.id);
                    html.push_str(&format!(
                        "<form method=\"post\" action=\"/stripe/portal/{id}/switch\">\
                         <input type=\"hidden\" name=\"price\" value=\"{pid}\">\
                         <button type=\"submit\" id=\"switch-{pid}\">Switch to {n} ({a})</button></form>",
                        id = esc(&id),
                        pid = esc(&other.id),
                        n = esc(&n),
                        a = esc(&a)
                    ));
                }
                html.push_str(&format!(
                    "<form method=\"post\" action=\"/stripe/portal/{id}/cancel\"><button type=\"submit\" id=\"cancel\">Cancel plan</button></form>",
                    id = esc(&id)
                ));
            }
            html
        }
    };
    page(200, "Manage your subscription", &format!("{body}{back}"))
}

/// `POST /stripe/portal/{id}/switch|cancel|renew`, then back to the page.
pub(crate) fn portal_action(shared: &Shared, req: &Req) -> Reply {
    let id = portal_id(req).to_owned();
    let action = req.path.rsplit('/').next().unwrap_or_default().to_owned();
    let Ok(mut st) = shared.state.lock() else {
        return Reply::empty(500);
    };
    let now = st.now().timestamp();
    let ctx = shared.stripe_ctx();
    st.stripe.tick(&ctx, now);
    let Some(p) = st.stripe.portals.get(&id).cloned() else {
        return not_found("billing portal session");
    };
    let Some(sub) = portal_subscription(&st.stripe, &p.customer) else {
        return not_found("subscription");
    };
    match action.as_str() {
        "switch" => {
            let price = req.form().get("price").cloned().unwrap_or_default();
            if !shared.config.stripe.prices.iter().any(|x| x.id == price) {
                return page(400, "Unknown plan", "<p>That plan does not exist.</p>");
            }
            st.stripe.switch_price(&ctx, &sub, &price, now);
        }
        "cancel" => st.stripe.set_cancel(&ctx, &sub, true, now),
        "renew" => st.stripe.set_cancel(&ctx, &sub, false, now),
        _ => return not_found("page"),
    }
    let mut r = Reply::redirect(&format!("/stripe/portal/{id}"));
    r.status = 303;
    r
}
