//! Stripe's REST API under `/v1/…` (form-encoded requests, a secret key as
//! bearer, JSON objects, Stripe's error envelope, `Idempotency-Key`
//! replays) and the local Stripe's loopback admin API under
//! `/__admin/stripe/…`.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::{Ctx, Customer, PortalSession, Session, State};
use crate::Shared;
use crate::http::{Reply, Req};

/// Stripe's error envelope.
fn error(status: u16, kind: &str, code: Option<&str>, message: &str, param: Option<&str>) -> Reply {
    let mut e = json!({"type": kind, "message": message});
    if let Some(c) = code {
        e["code"] = json!(c);
        e["doc_url"] = json!(format!(
            "https://stripe.com/docs/error-codes/{}",
            c.replace('_', "-")
        ));
    }
    if let Some(p) = param {
        e["param"] = json!(p);
    }
    Reply::json(status, &json!({"error": e}))
}

fn missing(param: &str) -> Reply {
    error(
        400,
        "invalid_request_error",
        Some("parameter_missing"),
        &format!("Missing required param: {param}."),
        Some(param),
    )
}

fn no_such(what: &str, id: &str, param: &str) -> Reply {
    error(
        if param == "id" { 404 } else { 400 },
        "invalid_request_error",
        Some("resource_missing"),
        &format!("No such {what}: '{id}'"),
        Some(param),
    )
}

/// `metadata[key]=value` pairs under `prefix` as a JSON object.
fn metadata(form: &BTreeMap<String, String>, prefix: &str) -> Map<String, Value> {
    form.iter()
        .filter_map(|(k, v)| {
            let key = k
                .strip_prefix(prefix)?
                .strip_prefix('[')?
                .strip_suffix(']')?;
            Some((key.to_owned(), json!(v)))
        })
        .collect()
}

/// Every `/v1/…` request.
pub(crate) fn serve(shared: &Shared, req: &Req) -> Reply {
    let config = &shared.config.stripe;
    match req.bearer() {
        None => {
            return error(
                401,
                "invalid_request_error",
                None,
                "You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').",
                None,
            );
        }
        Some(k) if k != config.secret_key => {
            let shown: String = k.chars().take(8).collect();
            return error(
                401,
                "invalid_request_error",
                None,
                &format!("Invalid API Key provided: {shown}****"),
                None,
            );
        }
        Some(_) => {}
    }
    let Ok(mut st) = shared.state.lock() else {
        return Reply::empty(500);
    };
    let now = st.now().timestamp();
    let ctx = shared.stripe_ctx();
    st.stripe.tick(&ctx, now);
    // Stripe replays POSTs only; the stored request is the parameters, so
    // the same key with other parameters is refused.
    let key = (req.method == "POST")
        .then(|| req.header("idempotency-key"))
        .flatten()
        .map(str::to_owned);
    let request = format!("{} {} {:?}", req.method, req.path, req.form());
    if let Some(k) = &key
        && let Some(prior) = st.stripe.idempotency.get(k)
    {
        if prior.request != request {
            return error(
                400,
                "idempotency_error",
                None,
                &format!(
                    "Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '{k}' if you meant to execute a different request."
                ),
                None,
            );
        }
        return Reply::new(prior.status, "application/json", prior.body.clone())
            .with_header("Idempotent-Replayed", "true")
            .with_header("Idempotency-Key", k);
    }
    let reply = route(&mut st.stripe, &ctx, req, now, key.clone());
    // Results are saved once the endpoint ran; refused parameters are not
    // (Stripe: "if incoming parameters failed validation … no idempotent
    // result is saved").
    if let Some(k) = key
        && reply.status == 200
    {
        st.stripe.idempotency.insert(
            k.clone(),
            super::Idempotent {
                request,
                status: reply.status,
                body: String::from_utf8_lossy(&reply.body).into_owned(),
            },
        );
        return reply.with_header("Idempotency-Key", &k);
    }
    reply
}

fn found(v: Option<Value>, what: &str, id: &str) -> Reply {
    match v {
        Some(v) => Reply::json(200, &v),
        None => no_such(what, id, "id"),
    }
}

fn route(st: &mut State, ctx: &Ctx<'_>, req: &Req, now: i64, key: Option<String>) -> Reply {
    let form = req.form();
    let path = req.path.trim_end_matches('/');
    let get = |name: &str| form.get(name).filter(|v| !v.is_empty()).cloned();
    let tail = |prefix: &str| path.strip_prefix(prefix).filter(|t| !t.contains('/'));
    match (req.method.as_str(), path) {
        ("POST", "/v1/customers") => {
            let id = st.id("cus_");
            st.customers.insert(
                id.clone(),
                Customer {
                    id: id.clone(),
                    email: get("email"),
                    name: get("name"),
                    metadata: metadata(&form, "metadata"),
                    created: now,
                },
            );
            let object = st.customer_json(&id).unwrap_or_default();
            st.emit(ctx, "customer.created", now, object.clone(), None, key);
            Reply::json(200, &object)
        }
        ("POST", "/v1/checkout/sessions") => create_session(st, ctx, &form, now),
        ("POST", "/v1/billing_portal/sessions") => {
            let Some(customer) = get("customer") else {
                return missing("customer");
            };
            if !st.customers.contains_key(&customer) {
                return no_such("customer", &customer, "customer");
            }
            let id = st.id("bps_");
            st.portals.insert(
                id.clone(),
                PortalSession {
                    id: id.clone(),
                    customer,
                    return_url: get("return_url"),
                    created: now,
                },
            );
            Reply::json(200, &st.portal_json(ctx.base, &id).unwrap_or_default())
        }
        ("GET", "/v1/events") => list_events(st, &req.query),
        ("GET", _) => {
            if let Some(id) = tail("/v1/customers/") {
                found(st.customer_json(id), "customer", id)
            } else if let Some(id) = tail("/v1/checkout/sessions/") {
                found(
                    st.session_json(ctx.config, ctx.base, id),
                    "checkout.session",
                    id,
                )
            } else if let Some(id) = tail("/v1/subscriptions/") {
                found(st.subscription_json(ctx.config, id), "subscription", id)
            } else if let Some(id) = tail("/v1/invoices/") {
                found(st.invoice_json(ctx.config, id), "invoice", id)
            } else if let Some(id) = tail("/v1/prices/") {
                let known = ctx.config.prices.iter().any(|p| p.id == id);
                found(
                    known.then(|| State::price_json(ctx.config, id)),
                    "price",
                    id,
                )
            } else if let Some(id) = tail("/v1/events/") {
                let event = st.events.iter().find(|e| e.id == id);
                found(event.map(|e| st.event_json(e)), "event", id)
            } else {
                unrecognized(req)
            }
        }
        _ => unrecognized(req),
    }
}

fn unrecognized(req: &Req) -> Reply {
    error(
        404,
        "invalid_request_error",
        None,
        &format!(
            "Unrecognized request URL ({}: {}). Please see https://stripe.com/docs or we can help at https://support.stripe.com/.",
            req.method, req.path
        ),
        None,
    )
}

fn create_session(
    st: &mut State,
    ctx: &Ctx<'_>,
    form: &BTreeMap<String, String>,
    now: i64,
) -> Reply {
    let get = |name: &str| form.get(name).filter(|v| !v.is_empty()).cloned();
    let Some(mode) = get("mode") else {
        return missing("mode");
    };
    if mode != "subscription" {
        return error(
            400,
            "invalid_request_error",
            Some("parameter_invalid_string"),
            "This local Stripe only creates Checkout Sessions with mode=subscription.",
            Some("mode"),
        );
    }
    let Some(success_url) = get("success_url") else {
        return missing("success_url");
    };
    let Some(price) = get("line_items[0][price]") else {
        return missing("line_items[0][price]");
    };
    if !ctx.config.prices.iter().any(|p| p.id == price) {
        return no_such("price", &price, "line_items[0][price]");
    }
    let quantity = match get("line_items[0][quantity]").map(|q| q.parse::<u64>()) {
        None => 1,
        Some(Ok(q)) if q >= 1 => q,
        Some(_) => {
            return error(
                400,
                "invalid_request_error",
                Some("parameter_invalid_integer"),
                "Invalid integer: line_items[0][quantity]",
                Some("line_items[0][quantity]"),
            );
        }
    };
    let customer = get("customer");
    if let Some(c) = &customer
        && !st.customers.contains_key(c)
    {
        return no_such("customer", c, "customer");
    }
    if customer.is_some() && get("customer_email").is_some() {
        return error(
            400,
            "invalid_request_error",
            None,
            "You may only specify one of these parameters: customer, customer_email.",
            Some("customer_email"),
        );
    }
    let id = st.id("cs_test_");
    st.sessions.insert(
        id.clone(),
        Session {
            id: id.clone(),
            customer,
            customer_email: get("customer_email"),
            client_reference_id: get("client_reference_id"),
            price,
            quantity,
            success_url,
            cancel_url: get("cancel_url"),
            metadata: metadata(form, "metadata"),
            subscription_metadata: metadata(form, "subscription_data[metadata]"),
            created: now,
            expires_at: now + 24 * 3600,
            complete: false,
            subscription: None,
            invoice: None,
        },
    );
    Reply::json(
        200,
        &st.session_json(ctx.config, ctx.base, &id)
            .unwrap_or_default(),
    )
}

/// `GET /v1/events`: newest first, `limit` (1–100, default 10), `type`
/// (a `*` wildcard at the end allowed), `starting_after`, `ending_before`.
fn list_events(st: &State, query: &BTreeMap<String, String>) -> Reply {
    let limit = match query.get("limit").map(|l| l.parse::<usize>()) {
        None => 10,
        Some(Ok(l)) if (1..=100).contains(&l) => l,
        Some(_) => {
            return error(
                400,
                "invalid_request_error",
                Some("parameter_invalid_integer"),
                "Invalid integer: limit; must be between 1 and 100",
                Some("limit"),
            );
        }
    };
    let kind = query.get("type");
    let matches = |t: &str| {
        kind.is_none_or(|k| match k.strip_suffix('*') {
            Some(prefix) => t.starts_with(prefix),
            None => t == k,
        })
    };
    let newest_first: Vec<&super::Event> = st
        .events
        .iter()
        .rev()
        .filter(|e| matches(&e.kind))
        .collect();
    // The page is `newest_first[start..end]`: after a cursor, or the
    // `limit` events just newer than an `ending_before` cursor.
    let (start, end) = match (query.get("starting_after"), query.get("ending_before")) {
        (Some(after), _) => {
            let start = newest_first
                .iter()
                .position(|e| &e.id == after)
                .map_or(newest_first.len(), |i| i + 1);
            (start, newest_first.len().min(start + limit))
        }
        (None, Some(before)) => {
            let end = newest_first
                .iter()
                .position(|e| &e.id == before)
                .unwrap_or(0);
            (end.saturating_sub(limit), end)
        }
        (None, None) => (0, newest_first.len().min(limit)),
    };
    let page: Vec<Value> = newest_first
        .iter()
        .skip(start)
        .take(end - start)
        .map(|e| st.event_json(e))
        .collect();
    let has_more = if query.contains_key("ending_before") && !query.contains_key("starting_after") {
        start > 0
    } else {
        newest_first.len() > end
    };
    Reply::json(
        200,
        &json!({"object": "list", "data": page, "has_more": has_more, "url": "/v1/events"}),
    )
}

/// `/__admin/stripe/…`, loopback only.
pub(crate) fn admin(shared: &Shared, req: &Req) -> Reply {
    if !req.loopback {
        return Reply::json(
            403,
            &json!({"error": "the admin API is available on loopback only"}),
        );
    }
    let Ok(mut st) = shared.state.lock() else {
        return Reply::empty(500);
    };
    let ctx = shared.stripe_ctx();
    let now = st.now().timestamp();
    st.stripe.tick(&ctx, now);
    let body: Value = serde_json::from_str(&req.body).unwrap_or(Value::Null);
    let s = &mut st.stripe;
    let path = req.path.trim_end_matches('/');
    match (req.method.as_str(), path) {
        ("GET", "/__admin/stripe/events") => {
            let events: Vec<Value> = s
                .events
                .iter()
                .map(|e| {
                    let deliveries: Vec<&super::Delivery> =
                        s.deliveries.iter().filter(|d| d.event_id == e.id).collect();
                    json!({
                        "id": e.id,
                        "type": e.kind,
                        "created": e.created,
                        "object_id": e.object["id"],
                        "held": s.held.contains(&e.id),
                        "deliveries": deliveries,
                    })
                })
                .collect();
            Reply::json(200, &json!(events))
        }
        ("GET", "/__admin/stripe/deliveries") => Reply::json(200, &json!(s.deliveries)),
        ("POST", "/__admin/stripe/hold") => {
            s.holding = true;
            Reply::json(200, &json!({"holding": true, "held": s.held}))
        }
        ("GET", "/__admin/stripe/held") => {
            let held: Vec<Value> = s
                .held
                .iter()
                .filter_map(|id| s.events.iter().find(|e| &e.id == id))
                .map(|e| json!({"id": e.id, "type": e.kind, "object_id": e.object["id"]}))
                .collect();
            Reply::json(200, &json!({"holding": s.holding, "held": held}))
        }
        ("POST", "/__admin/stripe/release") => {
            let order: Vec<String> = body["order"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            if let Some(unknown) = order.iter().find(|id| !s.held.contains(id)) {
                return Reply::json(400, &json!({"error": format!("{unknown} is not held")}));
            }
            let only = body["only"].as_bool().unwrap_or(false);
            let mut released = order.clone();
            if !only {
                released.extend(s.held.iter().filter(|id| !order.contains(id)).cloned());
                s.holding = false;
            }
            s.held.retain(|id| !released.contains(id));
            for id in &released {
                ctx.deliverer.send(id, 0, "release");
            }
            Reply::json(
                200,
                &json!({"released": released, "held": s.held, "holding": s.holding}),
            )
        }
        ("POST", "/__admin/stripe/webhook") => {
            if let Some(url) = body.get("url") {
                s.webhook_url = Some(url.as_str().map(str::to_owned));
            }
            if let Some(secrets) = body["secrets"].as_array() {
                s.webhook_secrets = Some(
                    secrets
                        .iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect(),
                );
            }
            Reply::json(
                200,
                &json!({
                    "url": s.webhook_url.clone().unwrap_or_else(|| ctx.config.webhook_url.clone()),
                    "secrets": s.webhook_secrets.as_ref().map_or(ctx.config.webhook_secrets.len(), Vec::len),
                }),
            )
        }
        ("POST", p) if p.starts_with("/__admin/stripe/events/") && p.ends_with("/replay") => {
            let id = &p["/__admin/stripe/events/".len()..p.len() - "/replay".len()];
            if !s.events.iter().any(|e| e.id == id) {
                return Reply::json(404, &json!({"error": "unknown event"}));
            }
            let age = body["age_seconds"].as_i64().unwrap_or(0);
            ctx.deliverer.send(id, age, "replay");
            Reply::json(200, &json!({"replayed": id, "age_seconds": age}))
        }
        _ => Reply::json(404, &json!({"error": "unknown admin endpoint"})),
    }
}
