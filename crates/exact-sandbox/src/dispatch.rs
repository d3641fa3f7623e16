//! The server's request dispatch: faults and logging around every
//! request, the loopback admin API, OAuth, the mail catcher, and the REST
//! API behind Exact's bearer check and per-app-per-division rate limits
//! (the REST answers themselves come from `rest`).

use chrono::{Duration, Timelike};
use serde_json::{Value, json};

use crate::Shared;
use crate::http::{Reply, Req};
use crate::state::{Fault, LogEntry};

pub fn handle(shared: &Shared, req: &Req) -> Reply {
    let fault = if req.path.starts_with("/__admin") {
        None
    } else {
        shared
            .state
            .lock()
            .ok()
            .and_then(|mut s| s.take_fault(&req.path))
    };
    let (reply, grant, division) = match fault {
        // A slow Exact: the request is held, then answered for real.
        Some(f) if f.kind == "delay" => {
            std::thread::sleep(std::time::Duration::from_millis(
                f.delay_ms.unwrap_or(2_000),
            ));
            route(shared, req)
        }
        Some(f) => (fault_reply(&f), None, None),
        None => route(shared, req),
    };
    if !req.path.starts_with("/__admin")
        && let Ok(mut st) = shared.state.lock()
    {
        let at = st.now().to_rfc3339();
        st.log.push(LogEntry {
            at,
            method: req.method.clone(),
            path: req.path.clone(),
            status: reply.status,
            grant_type: grant,
            division,
        });
    }
    reply
}

fn fault_reply(f: &Fault) -> Reply {
    match f.kind.as_str() {
        "timeout" => {
            std::thread::sleep(std::time::Duration::from_millis(
                f.delay_ms.unwrap_or(30_000),
            ));
            Reply::exact_error(504, "Gateway Timeout")
        }
        "rate_limit" => Reply::empty(429),
        _ => {
            let status = f.status.unwrap_or(500);
            Reply::exact_error(status, "An error occurred while processing this request.")
        }
    }
}

fn route(shared: &Shared, req: &Req) -> (Reply, Option<String>, Option<i64>) {
    let p = req.path.as_str();
    match (req.method.as_str(), p) {
        (_, p) if p.starts_with("/__admin/stripe/") => {
            (crate::stripe::admin(shared, req), None, None)
        }
        (_, p) if p.starts_with("/__admin/") => (admin(shared, req), None, None),
        (_, p) if p.starts_with("/v1/") => (crate::stripe::serve(shared, req), None, None),
        ("GET", p) if p.starts_with("/stripe/checkout/") => {
            (crate::stripe::checkout_page(shared, req), None, None)
        }
        ("POST", p) if p.starts_with("/stripe/checkout/") => {
            (crate::stripe::checkout_submit(shared, req), None, None)
        }
        ("GET", p) if p.starts_with("/stripe/portal/") => {
            (crate::stripe::portal_page(shared, req), None, None)
        }
        ("POST", p) if p.starts_with("/stripe/portal/") => {
            (crate::stripe::portal_action(shared, req), None, None)
        }
        ("GET", "/api/oauth2/auth") => (crate::oauth::authorize_page(shared, req), None, None),
        ("POST", "/api/oauth2/auth") => (crate::oauth::authorize_submit(shared, req), None, None),
        ("POST", "/api/oauth2/token") => {
            let (r, g) = crate::oauth::token(shared, req);
            (r, g, None)
        }
        ("GET", "/docs/SysAttachment.aspx") => (attachment(shared, req), None, None),
        ("POST", "/emails") => (crate::mail::send(shared, req), None, None),
        ("GET", p) if p.starts_with("/api/v1/") => {
            let (r, d) = api(shared, req, &p["/api/v1/".len()..]);
            (r, None, d)
        }
        _ => (Reply::exact_error(404, "Not found"), None, None),
    }
}

fn admin(shared: &Shared, req: &Req) -> Reply {
    if !req.loopback {
        return Reply::exact_error(403, "The admin API is available on loopback only");
    }
    let Ok(mut st) = shared.state.lock() else {
        return Reply::empty(500);
    };
    let body: Value = serde_json::from_str(&req.body).unwrap_or(Value::Null);
    let user_of = |name: &str| shared.data.login(name).map(|u| u.user_id.clone());
    match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/__admin/health") => Reply::json(200, &json!({"ok": true})),
        ("POST", "/__admin/faults") => match serde_json::from_value::<Fault>(body) {
            Ok(f)
                if matches!(
                    f.kind.as_str(),
                    "status" | "timeout" | "delay" | "rate_limit"
                ) =>
            {
                st.faults.push_back(f);
                Reply::json(200, &json!({"queued": st.faults.len()}))
            }
            _ => Reply::json(
                400,
                &json!({"error": "expected {kind: status|timeout|delay|rate_limit, status?, count?, path?, delay_ms?}"}),
            ),
        },
        ("POST", "/__admin/revoke") => match body["username"].as_str().and_then(user_of) {
            Some(uid) => {
                st.revoked
                    .insert((uid.clone(), shared.config.client_id.clone()));
                st.access.retain(|_, g| g.user_id != uid);
                Reply::json(200, &json!({"revoked": true}))
            }
            None => Reply::json(404, &json!({"error": "unknown username"})),
        },
        ("POST", "/__admin/expire-tokens") => {
            let now = st.now();
            let who = body["username"].as_str().and_then(user_of);
            let mut n = 0;
            for g in st.access.values_mut() {
                if who.as_ref().is_none_or(|u| *u == g.user_id) {
                    g.expires_at = now;
                    n += 1;
                }
            }
            // As after a real expiry, the refresh is allowed at once.
            for g in st.refresh.values_mut() {
                if who.as_ref().is_none_or(|u| *u == g.user_id) {
                    g.access_expires_at = g.access_expires_at.min(now);
                }
            }
            Reply::json(200, &json!({"expired": n}))
        }
        ("POST", "/__admin/clock") => {
            let secs = body["advance_seconds"].as_i64().unwrap_or(0);
            st.offset += Duration::seconds(secs);
            // The local Stripe lives on the same clock: renewals, period
            // ends and payment retries that are now due happen at once.
            let now = st.now();
            st.stripe.tick(&shared.stripe_ctx(), now.timestamp());
            Reply::json(200, &json!({"now": now.to_rfc3339()}))
        }
        ("GET", "/__admin/requests") => Reply::json(200, &json!(st.log)),
        ("GET", "/__admin/mails") => Reply::json(200, &json!(st.mails)),
        ("POST", "/__admin/grants") => match body["username"].as_str().and_then(user_of) {
            Some(uid) => {
                let count = body["count"].as_u64().unwrap_or(1).min(100_000);
                let grants: Vec<Value> = (0..count)
                    .map(|_| crate::oauth::mint_expired_grant(shared, &mut st, &uid))
                    .collect();
                Reply::json(200, &json!({"grants": grants}))
            }
            None => Reply::json(404, &json!({"error": "unknown username"})),
        },
        ("DELETE", "/__admin/requests") => {
            st.log.clear();
            Reply::json(200, &json!({"cleared": true}))
        }
        ("POST", "/__admin/reset") => {
            st.faults.clear();
            st.log.clear();
            st.windows.clear();
            st.mails.clear();
            Reply::json(200, &json!({"reset": true}))
        }
        _ => Reply::json(404, &json!({"error": "unknown admin endpoint"})),
    }
}

/// Resolves the bearer token to a user id; `Err` is the 401.
fn authenticate(shared: &Shared, req: &Req) -> Result<String, Reply> {
    let unauthorized =
        || Reply::exact_error(401, "Unauthorized").with_header("WWW-Authenticate", "Bearer");
    let token = req.bearer().ok_or_else(unauthorized)?;
    let st = shared.state.lock().map_err(|_| Reply::empty(500))?;
    let g = st.access.get(token).ok_or_else(unauthorized)?;
    if g.expires_at <= st.now()
        || st
            .revoked
            .contains(&(g.user_id.clone(), g.client_id.clone()))
    {
        return Err(unauthorized());
    }
    Ok(g.user_id.clone())
}

fn attachment(shared: &Shared, req: &Req) -> Reply {
    let user = match authenticate(shared, req) {
        Ok(u) => u,
        Err(r) => return r,
    };
    match shared.books.user(&user) {
        Some(user) => crate::rest::attachment(&shared.books, req, user),
        None => Reply::exact_error(401, "Unauthorized"),
    }
}

/// Counts a call against the (client, division) windows; `Some(429)` when
/// a window is exhausted. Returns the headers to send.
fn rate_limit(shared: &Shared, division: i64) -> Result<Vec<(String, String)>, Reply> {
    let mut st = shared.state.lock().map_err(|_| Reply::empty(500))?;
    let now = st.now();
    let minute_start = now.timestamp() - i64::from(now.second());
    let day_start = now
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .map_or(0, |d| d.and_utc().timestamp());
    let key = (shared.config.client_id.clone(), division);
    let w = st.windows.entry(key).or_default();
    if w.minute_start != minute_start {
        w.minute_start = minute_start;
        w.minute_count = 0;
    }
    if w.day_start != day_start {
        w.day_start = day_start;
        w.day_count = 0;
    }
    let minute_reset = (minute_start + 60) * 1000;
    let day_reset = (day_start + 86_400) * 1000;
    let (ml, dl) = (shared.config.minutely_limit, shared.config.daily_limit);
    let minutely = |remaining: u32| {
        vec![
            ("X-RateLimit-Minutely-Limit".to_owned(), ml.to_string()),
            (
                "X-RateLimit-Minutely-Remaining".to_owned(),
                remaining.to_string(),
            ),
            (
                "X-RateLimit-Minutely-Reset".to_owned(),
                minute_reset.to_string(),
            ),
        ]
    };
    let daily = |remaining: u32| {
        vec![
            ("X-RateLimit-Limit".to_owned(), dl.to_string()),
            ("X-RateLimit-Remaining".to_owned(), remaining.to_string()),
            ("X-RateLimit-Reset".to_owned(), day_reset.to_string()),
        ]
    };
    if w.day_count >= dl {
        let mut r = Reply::empty(429);
        r.headers.extend(daily(0));
        return Err(r);
    }
    if w.minute_count >= ml {
        let mut r = Reply::empty(429);
        r.headers.extend(minutely(0));
        return Err(r);
    }
    w.minute_count += 1;
    w.day_count += 1;
    let mut headers = daily(dl - w.day_count);
    headers.extend(minutely(ml - w.minute_count));
    Ok(headers)
}

fn api(shared: &Shared, req: &Req, rest: &str) -> (Reply, Option<i64>) {
    let user_id = match authenticate(shared, req) {
        Ok(u) => u,
        Err(r) => return (r, None),
    };
    let Some(user) = shared.books.user(&user_id) else {
        return (Reply::exact_error(401, "Unauthorized"), None);
    };
    crate::rest::serve(&shared.books, req, user, rest, &mut |division| {
        rate_limit(shared, division)
    })
}
