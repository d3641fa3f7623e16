//! Request dispatch: faults and logging around every request, the admin
//! API, OAuth, and the REST API with Exact's access checks, rate limits,
//! query rules, envelopes and paging.

use chrono::{Duration, Timelike};
use serde_json::{Value, json};

use crate::Shared;
use crate::data::Row;
use crate::http::{Reply, Req};
use crate::odata::{self, QueryError};
use crate::state::{Fault, LogEntry};

/// Rows per page on regular endpoints, and on bulk/sync ones.
const PAGE: usize = 60;
const BULK_PAGE: usize = 1_000;

/// Entities that need a `$filter` (they have a sync counterpart).
const MANDATORY_FILTER: &[&str] = &["crm/Accounts", "logistics/Items"];
/// Entities that answer 400 without `$select` (or `$top=1`).
const NEEDS_SELECT: &[&str] = &[
    "generaljournalentry/GeneralJournalEntries",
    "logistics/SalesItemPrices",
];

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
        (_, p) if p.starts_with("/__admin/") => (admin(shared, req), None, None),
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
    let user_of = |name: &str| {
        shared
            .data
            .users
            .iter()
            .find(|u| u.username == name)
            .map(|u| u.user_id.clone())
    };
    match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/__admin/health") => Reply::json(200, &json!({"ok": true})),
        ("POST", "/__admin/faults") => match serde_json::from_value::<Fault>(body) {
            Ok(f) if matches!(f.kind.as_str(), "status" | "timeout" | "rate_limit") => {
                st.faults.push_back(f);
                Reply::json(200, &json!({"queued": st.faults.len()}))
            }
            _ => Reply::json(
                400,
                &json!({"error": "expected {kind: status|timeout|rate_limit, status?, count?, path?, delay_ms?}"}),
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
            Reply::json(200, &json!({"now": st.now().to_rfc3339()}))
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
    if let Err(r) = authenticate(shared, req) {
        return r;
    }
    let Some(id) = req.query.get("ID") else {
        return Reply::exact_error(404, "Not found");
    };
    for table in shared.tables.values() {
        if let Some(row) = table.get("documents/DocumentAttachments").and_then(|rows| {
            rows.iter()
                .find(|r| r.get("ID").and_then(Value::as_str) == Some(id))
        }) {
            let bytes = row
                .get("__content_base64")
                .and_then(Value::as_str)
                .and_then(base64_decode)
                .unwrap_or_default();
            return Reply::new(200, "application/octet-stream", bytes);
        }
    }
    Reply::exact_error(404, "Not found")
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).ok()
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

fn metadata(
    shared: &Shared,
    division: i64,
    path: &str,
    key: Option<(&str, &Value)>,
    row: Row,
) -> Value {
    let mut row = row;
    row.retain(|k, _| !k.starts_with("__"));
    let uri = match key {
        Some((_, Value::String(s))) => {
            format!("{}/api/v1/{division}/{path}(guid'{s}')", shared.base_url)
        }
        Some((_, v)) => format!("{}/api/v1/{division}/{path}({v})", shared.base_url),
        None => format!("{}/api/v1/{division}/{path}", shared.base_url),
    };
    let entity = path
        .rsplit('/')
        .next()
        .unwrap_or(path)
        .trim_end_matches('s');
    let mut out = serde_json::Map::new();
    out.insert(
        "__metadata".into(),
        json!({"uri": uri, "type": format!("Exact.Web.Api.Models.{entity}")}),
    );
    out.extend(row);
    // Attachments point at the download URL on this host.
    if let Some(Value::String(u)) = out.get("Url")
        && u.starts_with('/')
    {
        let abs = format!("{}{u}", shared.base_url);
        out.insert("Url".into(), Value::String(abs));
    }
    Value::Object(out)
}

fn key_field(rows: &[Row]) -> Option<&'static str> {
    let first = rows.first()?;
    [
        "ID",
        "EntryID",
        "InvoiceID",
        "HID",
        "Hid",
        "AccountId",
        "Code",
    ]
    .into_iter()
    .find(|k| first.contains_key(*k))
}

fn render_key(v: &Value) -> String {
    match v {
        Value::String(s) if s.len() == 36 && s.matches('-').count() == 4 => format!("guid'{s}'"),
        Value::String(s) => format!("'{}'", s.replace('\'', "''")),
        other => other.to_string(),
    }
}

fn parse_key(s: &str) -> Value {
    if let Some(g) = s.strip_prefix("guid'").and_then(|r| r.strip_suffix('\'')) {
        return Value::String(g.to_ascii_lowercase());
    }
    if let Some(q) = s.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) {
        return Value::String(q.replace("''", "'"));
    }
    s.trim_end_matches('L')
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map_or(Value::Null, Value::Number)
}

fn bad(e: QueryError) -> Reply {
    Reply::exact_error(400, &e.0)
}

fn api(shared: &Shared, req: &Req, rest: &str) -> (Reply, Option<i64>) {
    let user_id = match authenticate(shared, req) {
        Ok(u) => u,
        Err(r) => return (r, None),
    };
    let Some(user) = shared.data.users.iter().find(|u| u.user_id == user_id) else {
        return (Reply::exact_error(401, "Unauthorized"), None);
    };
    let json_wanted = req
        .header("accept")
        .is_some_and(|a| a.contains("application/json"));
    let (first, path) = rest.split_once('/').unwrap_or((rest, ""));
    if first == "current" {
        if path != "Me" {
            return (Reply::exact_error(404, "Not found"), None);
        }
        let company = shared
            .data
            .companies
            .iter()
            .find(|c| c.division == user.current_division);
        let me = json!({
            "__metadata": {"uri": format!("{}/api/v1/current/Me(guid'{}')", shared.base_url, user.user_id), "type": "Exact.Web.Api.System.Me"},
            "UserID": user.user_id, "UserName": user.username, "FullName": user.full_name,
            "Email": user.email, "CurrentDivision": user.current_division,
            "DivisionCustomerName": company.map(|c| c.name.clone()), "LanguageCode": "nl-NL",
            "Legislation": 1, "ServerUtcOffset": 3600.0,
        });
        return (Reply::json(200, &json!({"d": {"results": [me]}})), None);
    }
    let Ok(division) = first.parse::<i64>() else {
        return (Reply::exact_error(404, "Not found"), None);
    };
    if !user.divisions.contains(&division) {
        return (
            Reply::exact_error(403, "Forbidden").with_header("Reason", "NoDivisionAccess"),
            Some(division),
        );
    }
    let headers = match rate_limit(shared, division) {
        Ok(h) => h,
        Err(r) => return (r, Some(division)),
    };
    let mut reply = entity(shared, req, division, path, json_wanted, &user.divisions);
    reply.headers.extend(headers);
    (reply, Some(division))
}

fn entity(
    shared: &Shared,
    req: &Req,
    division: i64,
    path: &str,
    json_wanted: bool,
    user_divisions: &[i64],
) -> Reply {
    let Some(table) = shared.tables.get(&division) else {
        return Reply::exact_error(404, "Not found");
    };
    // `Entity(guid'…')`, `Entity/$count` or the collection.
    let (entity_path, key, count_only) =
        if let Some(open) = path.find('(').filter(|_| path.ends_with(')')) {
            (&path[..open], Some(&path[open + 1..path.len() - 1]), false)
        } else if let Some(p) = path.strip_suffix("/$count") {
            (p, None, true)
        } else {
            (path, None, false)
        };
    let is_function = entity_path == "read/financial/RevenueListByYear";
    let rows: Vec<Row> = if entity_path == "system/Divisions" {
        // Exact lists every division the user can access, whichever
        // division the URL names.
        user_divisions
            .iter()
            .filter_map(|d| shared.tables.get(d))
            .filter_map(|t| t.get("system/Divisions"))
            .flatten()
            .cloned()
            .collect()
    } else if is_function {
        let Some(year) = req.query.get("year").and_then(|y| y.parse::<i32>().ok()) else {
            return Reply::exact_error(400, "The parameter 'year' is required.");
        };
        crate::reports::revenue_by_year(table, year)
    } else {
        match table.get(entity_path) {
            Some(rows) => rows.clone(),
            // An endpoint exists for every administration, even one with
            // no such records (no stock at a law firm): empty, not 404.
            None if shared.tables.values().any(|t| t.contains_key(entity_path)) => Vec::new(),
            None => return Reply::exact_error(404, "Not found"),
        }
    };
    if !json_wanted {
        return Reply::new(
            200,
            "application/atom+xml;type=feed;charset=utf-8",
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><feed xmlns=\"http://www.w3.org/2005/Atom\"/>",
        );
    }
    let kf = key_field(&rows);
    if let Some(k) = key {
        let want = parse_key(k);
        let found = kf.and_then(|f| {
            rows.iter().find(|r| {
                r.get(f)
                    .is_some_and(|v| odata::compare_json(Some(v), Some(&want)).is_eq())
            })
        });
        return match (found, kf) {
            (Some(r), Some(f)) => {
                let kv = r.get(f).cloned().unwrap_or(Value::Null);
                Reply::json(
                    200,
                    &json!({"d": metadata(shared, division, entity_path, Some((f, &kv)), r.clone())}),
                )
            }
            _ => Reply::exact_error(404, "Not found"),
        };
    }
    let q = &req.query;
    let bulk = entity_path.starts_with("bulk/") || entity_path.starts_with("sync/");
    let top: Option<usize> = match q.get("$top").map(|t| t.parse::<usize>()) {
        Some(Ok(t)) => Some(t),
        Some(Err(_)) => return Reply::exact_error(400, "Invalid $top value"),
        None => None,
    };
    if (NEEDS_SELECT.contains(&entity_path) || bulk) && !q.contains_key("$select") && top != Some(1)
    {
        return Reply::exact_error(
            400,
            "Please add a $select or a $top=1 statement to the query string.",
        );
    }
    if MANDATORY_FILTER.contains(&entity_path) && !q.contains_key("$filter") && !count_only {
        return Reply::exact_error(
            400,
            "This endpoint has mandatory filtering applied. A GET request for this endpoint must have a $filter parameter with one of the following fields in the url: ID, Code, Name, Blocked, IsSales, IsSupplier, Modified.",
        );
    }
    let sample = |f: &str| -> Option<Value> {
        let mut seen = None;
        for r in &rows {
            match r.get(f) {
                Some(Value::Null) => seen = Some(Value::Null),
                Some(v) => return Some(v.clone()),
                None => {}
            }
        }
        seen
    };
    let known = |f: &str| rows.is_empty() || rows.iter().take(5).any(|r| r.contains_key(f));
    let mut rows = rows.clone();
    if let Some(f) = q.get("$filter") {
        let expr = match odata::parse_filter(f) {
            Ok(e) => e,
            Err(e) => return bad(e),
        };
        if !rows.is_empty()
            && let Err(e) = odata::check_types(&expr, &sample)
        {
            return bad(e);
        }
        rows.retain(|r| odata::eval(&expr, r));
    }
    if count_only {
        return Reply::new(200, "text/plain", rows.len().to_string());
    }
    let ordered = q.get("$orderby").cloned();
    match (&ordered, kf) {
        (Some(o), _) => {
            if let Err(e) = odata::order(&mut rows, o, &known) {
                return bad(e);
            }
        }
        (None, Some(k)) => rows.sort_by(|a, b| odata::compare_json(a.get(k), b.get(k))),
        (None, None) => {}
    }
    let total = rows.len();
    // Key-based $skiptoken without $orderby (as Exact does), offset-based
    // otherwise.
    let mut start = 0usize;
    if let Some(tok) = q.get("$skiptoken") {
        if let Some(offset) = tok
            .strip_prefix("offset:")
            .and_then(|s| s.parse::<usize>().ok())
        {
            start = offset;
        } else if let Some(k) = kf {
            let last = parse_key(tok);
            start = rows
                .iter()
                .position(|r| odata::compare_json(r.get(k), Some(&last)).is_gt())
                .unwrap_or(rows.len());
        }
    }
    if let Some(s) = q.get("$skip") {
        match s.parse::<usize>() {
            Ok(n) => start += n,
            Err(_) => return Reply::exact_error(400, "Invalid $skip value"),
        }
    }
    let remaining_top = top.unwrap_or(usize::MAX);
    let page = if bulk { BULK_PAGE } else { PAGE };
    let take = page.min(remaining_top);
    let end = (start + take).min(rows.len());
    let slice: Vec<Row> = rows
        .get(start.min(rows.len())..end)
        .map(<[Row]>::to_vec)
        .unwrap_or_default();
    let more = end < rows.len() && remaining_top > take;
    let mut d = serde_json::Map::new();
    let results: Vec<Value> = {
        let selected = match q.get("$select") {
            Some(s) => match odata::select(slice.clone(), s, &known) {
                Ok(r) => r,
                Err(e) => return bad(e),
            },
            None => slice.clone(),
        };
        selected
            .into_iter()
            .zip(slice.iter())
            .map(|(sel, full)| {
                let kv = kf.and_then(|f| full.get(f)).cloned();
                metadata(shared, division, entity_path, kf.zip(kv.as_ref()), sel)
            })
            .collect()
    };
    d.insert("results".into(), Value::Array(results));
    if q.get("$inlinecount").map(String::as_str) == Some("allpages") {
        d.insert("__count".into(), Value::String(total.to_string()));
    }
    if more {
        let mut pairs: Vec<(String, String)> = q
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "$skiptoken" | "$skip" | "$top"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let token = match (&ordered, kf, slice.last()) {
            (None, Some(k), Some(last)) => render_key(last.get(k).unwrap_or(&Value::Null)),
            _ => format!("offset:{end}"),
        };
        pairs.push(("$skiptoken".into(), token));
        if let Some(t) = top {
            pairs.push(("$top".into(), (t - take).to_string()));
        }
        let qs: Vec<String> = pairs
            .iter()
            .map(|(k, v)| format!("{}={}", k, boekhouding_core::exact::query::encode(v)))
            .collect();
        d.insert(
            "__next".into(),
            Value::String(format!(
                "{}/api/v1/{division}/{entity_path}?{}",
                shared.base_url,
                qs.join("&")
            )),
        );
    }
    Reply::json(200, &json!({"d": d}))
}
