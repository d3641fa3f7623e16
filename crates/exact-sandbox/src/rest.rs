//! The REST API's answers, after authentication: `current/Me`, Exact's
//! division access check, the entity endpoints with their query rules,
//! envelopes and paging, and attachment downloads. Pure: no clock, no
//! state; the server puts its bearer check and rate limits around it, the
//! in-process demo transport calls it directly.

use serde_json::{Value, json};

use crate::books::Books;
use crate::data::{Row, SandboxUser};
use crate::http::{Reply, Req};
use crate::odata::{self, QueryError};

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

/// Extra headers for an admitted division call, or the refusal.
pub(crate) type Admit<'a> = dyn FnMut(i64) -> Result<Vec<(String, String)>, Reply> + 'a;

/// Answers `GET /api/v1/{rest}` for an authenticated `user`; `admit` runs
/// once the division is known and allowed (the server's rate limits).
/// Returns the reply and the division it named.
pub(crate) fn serve(
    books: &Books,
    req: &Req,
    user: &SandboxUser,
    rest: &str,
    admit: &mut Admit<'_>,
) -> (Reply, Option<i64>) {
    let json_wanted = req
        .header("accept")
        .is_some_and(|a| a.contains("application/json"));
    let (first, path) = rest.split_once('/').unwrap_or((rest, ""));
    if first == "current" {
        if path != "Me" {
            return (Reply::exact_error(404, "Not found"), None);
        }
        let me = json!({
            "__metadata": {"uri": format!("{}/api/v1/current/Me(guid'{}')", books.base_url, user.user_id), "type": "Exact.Web.Api.System.Me"},
            "UserID": user.user_id, "UserName": user.username, "FullName": user.full_name,
            "Email": user.email, "CurrentDivision": user.current_division,
            "DivisionCustomerName": Books::company_name(user.current_division), "LanguageCode": "nl-NL",
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
    let headers = match admit(division) {
        Ok(h) => h,
        Err(r) => return (r, Some(division)),
    };
    let mut reply = entity(books, req, division, path, json_wanted, &user.divisions);
    reply.headers.extend(headers);
    (reply, Some(division))
}

/// `GET /docs/SysAttachment.aspx?ID=…`: an attachment's bytes, from a
/// division the user may access.
pub(crate) fn attachment(books: &Books, req: &Req, user: &SandboxUser) -> Reply {
    let Some(id) = req.query.get("ID") else {
        return Reply::exact_error(404, "Not found");
    };
    for division in &user.divisions {
        if let Some(row) = books
            .rows(*division, "documents/DocumentAttachments")
            .and_then(|rows| {
                rows.iter()
                    .find(|r| r.get("ID").and_then(Value::as_str) == Some(id))
            })
        {
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

fn metadata(
    books: &Books,
    division: i64,
    path: &str,
    key: Option<(&str, &Value)>,
    row: Row,
) -> Value {
    let mut row = row;
    row.retain(|k, _| !k.starts_with("__"));
    let uri = match key {
        Some((_, Value::String(s))) => {
            format!("{}/api/v1/{division}/{path}(guid'{s}')", books.base_url)
        }
        Some((_, v)) => format!("{}/api/v1/{division}/{path}({v})", books.base_url),
        None => format!("{}/api/v1/{division}/{path}", books.base_url),
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
        let abs = format!("{}{u}", books.base_url);
        out.insert("Url".into(), Value::String(abs));
    }
    Value::Object(out)
}

fn key_field(rows: &[&Row]) -> Option<&'static str> {
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

fn entity(
    books: &Books,
    req: &Req,
    division: i64,
    path: &str,
    json_wanted: bool,
    user_divisions: &[i64],
) -> Reply {
    if books.tables(division).is_none() {
        return Reply::exact_error(404, "Not found");
    }
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
    let computed: Vec<Row>;
    let rows: Vec<&Row> = if entity_path == "system/Divisions" {
        // Exact lists every division the user can access, whichever
        // division the URL names.
        user_divisions
            .iter()
            .filter_map(|d| books.rows(*d, "system/Divisions"))
            .flatten()
            .collect()
    } else if is_function {
        let Some(year) = req.query.get("year").and_then(|y| y.parse::<i32>().ok()) else {
            return Reply::exact_error(400, "The parameter 'year' is required.");
        };
        computed = books
            .tables(division)
            .map(|t| crate::reports::revenue_by_year(t, year))
            .unwrap_or_default();
        computed.iter().collect()
    } else {
        match books.rows(division, entity_path) {
            Some(rows) => rows.iter().collect(),
            // An endpoint exists for every administration, even one with
            // no such records (no stock at a law firm): empty, not 404.
            None if Books::is_entity(entity_path) => Vec::new(),
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
                    &json!({"d": metadata(books, division, entity_path, Some((f, &kv)), (**r).clone())}),
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
        .map(|page| page.iter().map(|r| (*r).clone()).collect())
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
                metadata(books, division, entity_path, kf.zip(kv.as_ref()), sel)
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
                books.base_url,
                qs.join("&")
            )),
        );
    }
    Reply::json(200, &json!({"d": d}))
}
