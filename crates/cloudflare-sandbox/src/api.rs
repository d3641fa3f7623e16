//! The `/client/v4` API in Cloudflare's envelope, and the admin API.
//!
//! Every answer is `{success, errors, messages, result}` (lists add
//! `result_info`); failures carry Cloudflare's codes where wrangler acts
//! on them (10000 authentication, 10007 script not found, 10090 service
//! not found, 7003 no route, 7500 D1 SQL error).

use std::collections::BTreeMap;

use exact_sandbox::server::{Reply, WireRequest};
use serde_json::{Value, json};

use crate::Shared;
use crate::d1;
use crate::multipart;
use crate::state::{
    Binding, Bookmark, Deployment, Domain, Import, Module, Queue, Route, Script, State,
    StatementLog, Version, now, random_hex, uuid,
};

/// A failure as Cloudflare reports it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{status} {code} {message}")]
pub struct ApiError {
    pub status: u16,
    pub code: u32,
    pub message: String,
}

impl ApiError {
    fn new(status: u16, code: u32, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    fn no_route() -> ApiError {
        ApiError::new(
            404,
            7003,
            "Could not route to /client/v4, perhaps your object identifier is invalid?",
        )
    }

    fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, 10001, message)
    }

    fn script_not_found() -> ApiError {
        ApiError::new(404, 10007, "This Worker does not exist on your account.")
    }
}

type ApiResult = Result<Answer, ApiError>;

/// A successful result, with `result_info` for lists.
struct Answer {
    result: Value,
    info: Option<Value>,
}

fn ok(result: Value) -> ApiResult {
    Ok(Answer { result, info: None })
}

fn ok_list(items: Vec<Value>) -> ApiResult {
    let n = items.len();
    Ok(Answer {
        result: Value::Array(items),
        info: Some(
            json!({"page": 1, "per_page": n.max(20), "count": n, "total_count": n, "total_pages": 1}),
        ),
    })
}

fn envelope(answer: ApiResult) -> Reply {
    match answer {
        Ok(a) => {
            let mut body =
                json!({"success": true, "errors": [], "messages": [], "result": a.result});
            if let Some(info) = a.info {
                body["result_info"] = info;
            }
            Reply::json(200, &body)
        }
        Err(e) => Reply::json(
            e.status,
            &json!({
                "success": false,
                "errors": [{"code": e.code, "message": e.message}],
                "messages": [],
                "result": null,
            }),
        ),
    }
}

/// A request with its path split and its query parsed.
struct Call<'a> {
    req: &'a WireRequest,
    method: &'a str,
    query: BTreeMap<String, String>,
}

impl Call<'_> {
    fn json_body(&self) -> Result<Value, ApiError> {
        serde_json::from_slice(&self.req.body)
            .map_err(|_| ApiError::bad_request("The request body is not valid JSON."))
    }
}

fn pct_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(hexpair) = std::str::from_utf8(&b[i + 1..i + 3])
            && let Ok(v) = u8::from_str_radix(hexpair, 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_query(qs: &str) -> BTreeMap<String, String> {
    qs.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (pct_decode(k), pct_decode(v))
        })
        .collect()
}

/// `/client/v4/…`.
pub fn handle(shared: &Shared, req: &WireRequest) -> Reply {
    let (path, qs) = req.target.split_once('?').unwrap_or((&req.target, ""));
    let call = Call {
        req,
        method: req.method.as_str(),
        query: parse_query(qs),
    };
    let token = req
        .header("authorization")
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .map(str::trim);
    if token != Some(shared.config.token.as_str()) {
        // The token check answers in its own words; everything else
        // answers Cloudflare's generic authentication error.
        if path == "/client/v4/user/tokens/verify" {
            return envelope(Err(ApiError::new(401, 1000, "Invalid API Token")));
        }
        if path == "/client/v4/user" {
            return envelope(Err(ApiError::new(
                403,
                9109,
                "Unauthorized to access requested resource",
            )));
        }
        return envelope(Err(ApiError::new(403, 10000, "Authentication error")));
    }
    let segs: Vec<String> = path
        .trim_start_matches("/client/v4/")
        .split('/')
        .filter(|s| !s.is_empty())
        .map(pct_decode)
        .collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let answer = route(shared, &call, &segs);
    if let Err(e) = &answer
        && e.code == 7003
    {
        eprintln!("cloudflare-sandbox: no route for {} {path}", req.method);
    }
    envelope(answer)
}

fn route(shared: &Shared, call: &Call<'_>, segs: &[&str]) -> ApiResult {
    let account = shared.config.account_id.as_str();
    match (call.method, segs) {
        ("GET", ["user"]) => ok(json!({
            "id": "7c5dae5552338874e5053f2534d2767a",
            "email": "operator@example.nl",
            "first_name": null, "last_name": null, "username": "operator",
            "suspended": false, "two_factor_authentication_enabled": false,
        })),
        ("GET", ["user", "tokens", "verify"]) => ok(json!({
            "id": "ed17574386854bf78a67040be0a770b0", "status": "active",
        })),
        ("GET", ["memberships"]) => ok_list(vec![json!({
            "id": "m-1", "status": "accepted",
            "account": {"id": account, "name": "Praat met je Boekhouding"},
            "roles": ["Administrator"],
        })]),
        ("GET", ["accounts"]) => ok_list(vec![
            json!({"id": account, "name": "Praat met je Boekhouding", "type": "standard"}),
        ]),
        (_, ["accounts", a, rest @ ..]) => {
            if *a != account {
                return Err(ApiError::new(403, 10000, "Authentication error"));
            }
            match rest {
                ["workers", rest @ ..] => workers(shared, call, rest),
                ["d1", "database", rest @ ..] => d1_route(shared, call, rest),
                ["queues", rest @ ..] => queues(shared, call, rest),
                _ => Err(ApiError::no_route()),
            }
        }
        _ => Err(ApiError::no_route()),
    }
}

/// The secrets' names as `secret list` shows them.
fn secret_list(s: &Script) -> ApiResult {
    ok_list(
        s.secrets
            .keys()
            .map(|n| json!({"name": n, "type": "secret_text"}))
            .collect(),
    )
}

fn script_ref<'a>(st: &'a State, name: &str) -> Result<&'a Script, ApiError> {
    st.scripts.get(name).ok_or_else(ApiError::script_not_found)
}

fn script_mut<'a>(st: &'a mut State, name: &str) -> Result<&'a mut Script, ApiError> {
    st.scripts
        .get_mut(name)
        .ok_or_else(ApiError::script_not_found)
}

/// The elements of an array field (none when absent).
fn items<'a>(v: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    v.get(key).and_then(Value::as_array).into_iter().flatten()
}

/// A string-valued object field as a map (`annotations`).
fn string_map(v: &Value, key: &str) -> BTreeMap<String, String> {
    v.get(key)
        .and_then(Value::as_object)
        .map(|a| {
            a.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, State> {
    // A panic in one handler must not take the imitation down for the
    // next; the state stays usable.
    shared
        .state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn workers(shared: &Shared, call: &Call<'_>, segs: &[&str]) -> ApiResult {
    match (call.method, segs) {
        ("GET", ["subdomain"]) => ok(json!({"subdomain": shared.config.subdomain})),
        ("PUT", ["subdomain"]) => ok(json!({"subdomain": shared.config.subdomain})),
        ("GET", ["services", name]) => {
            let st = lock(shared);
            let s = st
                .scripts
                .get(*name)
                .ok_or_else(|| ApiError::new(404, 10090, "workers.api.error.service_not_found"))?;
            ok(service_json(s))
        }
        ("GET", ["domains", "records"]) => {
            let st = lock(shared);
            let service = call.query.get("service");
            let items: Vec<Value> = st
                .scripts
                .values()
                .filter(|s| service.is_none_or(|n| *n == s.name))
                .flat_map(|s| s.domains.iter().map(|d| domain_json(s, d)))
                .collect();
            ok_list(items)
        }
        ("GET", ["domains", "records", id]) => {
            let st = lock(shared);
            st.scripts
                .values()
                .find_map(|s| {
                    s.domains
                        .iter()
                        .find(|d| d.id == *id)
                        .map(|d| domain_json(s, d))
                })
                .map_or_else(|| Err(ApiError::new(404, 100_000, "Domain not found")), ok)
        }
        ("GET", ["workers", name]) => {
            let st = lock(shared);
            let s = st
                .scripts
                .get(*name)
                .ok_or_else(ApiError::script_not_found)?;
            ok(json!({
                "id": s.tag,
                "name": s.name,
                "created_on": s.created_on,
                "updated_on": s.modified_on,
                "logpush": s.logpush,
                "observability": s.observability,
                "tags": [],
                "tail_consumers": [],
                "subdomain": {"enabled": s.subdomain_enabled, "previews_enabled": s.previews_enabled},
            }))
        }
        (_, ["scripts", name, rest @ ..]) => script(shared, call, name, rest),
        _ => Err(ApiError::no_route()),
    }
}

fn service_json(s: &Script) -> Value {
    json!({
        "id": s.name,
        "default_environment": {
            "environment": "production",
            "created_on": s.created_on,
            "modified_on": s.modified_on,
            "script": script_json(s),
        },
        "created_on": s.created_on,
        "modified_on": s.modified_on,
    })
}

fn script_json(s: &Script) -> Value {
    let v = s.latest_version();
    json!({
        "id": s.name,
        "tag": s.tag,
        "tags": [],
        "etag": s.etag,
        "handlers": ["fetch", "scheduled"],
        "created_on": s.created_on,
        "modified_on": s.modified_on,
        "usage_model": "standard",
        "compatibility_date": v.map(|v| v.compatibility_date.clone()),
        "compatibility_flags": v.map(|v| v.compatibility_flags.clone()).unwrap_or_default(),
        "last_deployed_from": "wrangler",
        "has_modules": true,
        "has_assets": false,
        "logpush": s.logpush,
        "placement_mode": null,
        "tail_consumers": s.tail_consumers,
        "observability": s.observability,
    })
}

fn domain_json(s: &Script, d: &Domain) -> Value {
    json!({
        "id": d.id,
        "zone_id": zone_id(&d.zone_name),
        "zone_name": d.zone_name,
        "hostname": d.hostname,
        "service": s.name,
        "environment": d.environment,
        "enabled": true,
        "previews_enabled": false,
        "cert_id": null,
    })
}

fn zone_id(zone: &str) -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(zone.as_bytes())[..16])
}

/// The zone of a host name: its last two labels.
fn zone_of(host: &str) -> String {
    let labels: Vec<&str> = host.split('.').collect();
    labels[labels.len().saturating_sub(2)..].join(".")
}

fn script(shared: &Shared, call: &Call<'_>, name: &str, segs: &[&str]) -> ApiResult {
    match (call.method, segs) {
        ("PUT", []) => upload(shared, call, name, true),
        ("DELETE", []) => {
            let mut st = lock(shared);
            st.scripts
                .remove(name)
                .ok_or_else(ApiError::script_not_found)?;
            ok(Value::Null)
        }
        ("POST", ["versions"]) => upload(shared, call, name, false),
        ("GET", ["versions"]) => {
            let st = lock(shared);
            let s = script_ref(&st, name)?;
            // Newest first, as Cloudflare lists them.
            let items: Vec<Value> = s
                .versions
                .iter()
                .rev()
                .map(|v| version_json(s, v))
                .collect();
            let n = items.len();
            Ok(Answer {
                result: json!({"items": items}),
                info: Some(
                    json!({"page": 1, "per_page": n.max(20), "count": n, "total_count": n, "total_pages": 1}),
                ),
            })
        }
        ("GET", ["versions", id]) => {
            let st = lock(shared);
            let s = script_ref(&st, name)?;
            let v = s
                .version(id)
                .ok_or_else(|| ApiError::new(404, 10220, "The version was not found."))?;
            ok(version_json(s, v))
        }
        ("GET", ["deployments"]) => {
            let st = lock(shared);
            let s = script_ref(&st, name)?;
            let items: Vec<Value> = s.deployments.iter().rev().map(deployment_json).collect();
            ok(json!({"deployments": items}))
        }
        ("POST", ["deployments"]) => deploy(shared, call, name),
        ("GET", ["secrets"]) => {
            let st = lock(shared);
            let s = script_ref(&st, name)?;
            secret_list(s)
        }
        ("PUT", ["secrets"]) => {
            let body = call.json_body()?;
            let (Some(sname), Some(text)) = (
                body.get("name").and_then(Value::as_str),
                body.get("text").and_then(Value::as_str),
            ) else {
                return Err(ApiError::bad_request("A secret needs a name and a text."));
            };
            let mut secrets = BTreeMap::new();
            secrets.insert(sname.to_owned(), Some(text.to_owned()));
            put_secrets(shared, name, secrets)?;
            ok(json!({"name": sname, "type": "secret_text"}))
        }
        ("PATCH", ["secrets-bulk"]) => {
            // A merge patch: a secret object sets, `null` deletes.
            let body = call.json_body()?;
            let mut changes = BTreeMap::new();
            for (k, v) in body
                .get("secrets")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                let text = match v {
                    Value::Null => None,
                    v => Some(
                        v.get("text")
                            .and_then(Value::as_str)
                            .ok_or_else(|| ApiError::bad_request("A secret needs a text."))?
                            .to_owned(),
                    ),
                };
                changes.insert(k.clone(), text);
            }
            put_secrets(shared, name, changes)?;
            let st = lock(shared);
            let s = script_ref(&st, name)?;
            secret_list(s)
        }
        ("GET", ["secrets", sname]) => {
            let st = lock(shared);
            let s = script_ref(&st, name)?;
            if s.secrets.contains_key(*sname) {
                ok(json!({"name": sname, "type": "secret_text"}))
            } else {
                Err(ApiError::new(404, 10056, "The secret was not found."))
            }
        }
        ("DELETE", ["secrets", sname]) => {
            let mut st = lock(shared);
            let s = script_mut(&mut st, name)?;
            s.secrets
                .remove(*sname)
                .ok_or_else(|| ApiError::new(404, 10056, "The secret was not found."))?;
            ok(Value::Null)
        }
        ("GET", ["settings"]) => {
            let st = lock(shared);
            let s = script_ref(&st, name)?;
            ok(settings_json(s))
        }
        ("PATCH", ["settings"]) => patch_settings(shared, call, name),
        ("GET", ["script-settings"]) => {
            let st = lock(shared);
            let s = script_ref(&st, name)?;
            ok(
                json!({"logpush": s.logpush, "tail_consumers": s.tail_consumers, "observability": s.observability, "tags": []}),
            )
        }
        ("PATCH", ["script-settings"]) => {
            let body = if call.req.body.is_empty() {
                json!({})
            } else {
                call.json_body()?
            };
            let mut st = lock(shared);
            let s = script_mut(&mut st, name)?;
            if let Some(v) = body.get("logpush").and_then(Value::as_bool) {
                s.logpush = v;
            }
            if let Some(v) = body.get("observability") {
                s.observability = v.clone();
            }
            if let Some(v) = body.get("tail_consumers") {
                s.tail_consumers = v.clone();
            }
            ok(
                json!({"logpush": s.logpush, "tail_consumers": s.tail_consumers, "observability": s.observability, "tags": body.get("tags").cloned().unwrap_or(json!([]))}),
            )
        }
        ("GET", ["schedules"]) => {
            let st = lock(shared);
            let s = script_ref(&st, name)?;
            ok(schedules_json(s))
        }
        ("PUT", ["schedules"]) => {
            let body = call.json_body()?;
            let crons: Vec<String> = body
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|c| c.get("cron").and_then(Value::as_str).map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            let mut st = lock(shared);
            let s = script_mut(&mut st, name)?;
            s.schedules = crons;
            ok(schedules_json(s))
        }
        ("GET", ["subdomain"]) => {
            let st = lock(shared);
            let s = script_ref(&st, name)?;
            ok(json!({"enabled": s.subdomain_enabled, "previews_enabled": s.previews_enabled}))
        }
        ("POST", ["subdomain"]) => {
            let body = call.json_body()?;
            let mut st = lock(shared);
            let s = script_mut(&mut st, name)?;
            s.subdomain_enabled = body
                .get("enabled")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            s.previews_enabled = body
                .get("previews_enabled")
                .and_then(Value::as_bool)
                .unwrap_or(s.subdomain_enabled);
            ok(json!({"enabled": s.subdomain_enabled, "previews_enabled": s.previews_enabled}))
        }
        ("POST", ["domains", "changeset"]) => {
            let body = call.json_body()?;
            let st = lock(shared);
            let s = script_ref(&st, name)?;
            let mut added = Vec::new();
            let mut updated = Vec::new();
            for o in body.as_array().into_iter().flatten() {
                let Some(host) = o.get("hostname").and_then(Value::as_str) else {
                    continue;
                };
                match s.domains.iter().find(|d| d.hostname == host) {
                    Some(d) => updated.push(json!({"id": d.id, "hostname": host, "zone_name": d.zone_name, "zone_id": zone_id(&d.zone_name), "modified": false})),
                    None => added.push(json!({"hostname": host, "zone_name": zone_of(host), "zone_id": zone_id(&zone_of(host))})),
                }
            }
            ok(json!({"added": added, "removed": [], "updated": updated, "conflicting": []}))
        }
        ("PUT", ["domains", "records"]) => {
            let body = call.json_body()?;
            let mut st = lock(shared);
            let s = script_mut(&mut st, name)?;
            let mut kept = Vec::new();
            for o in items(&body, "origins") {
                let Some(host) = o.get("hostname").and_then(Value::as_str) else {
                    continue;
                };
                let existing = s.domains.iter().find(|d| d.hostname == host).cloned();
                kept.push(existing.unwrap_or_else(|| {
                    Domain {
                        id: random_hex(16),
                        hostname: host.to_owned(),
                        zone_name: o
                            .get("zone_name")
                            .and_then(Value::as_str)
                            .map_or_else(|| zone_of(host), str::to_owned),
                        environment: "production".into(),
                    }
                }));
            }
            // `override_scope` makes the list the script's whole set.
            s.domains = kept;
            let out: Vec<Value> = s.domains.iter().map(|d| domain_json(s, d)).collect();
            ok(Value::Array(out))
        }
        ("GET", ["routes"]) => {
            let st = lock(shared);
            let s = script_ref(&st, name)?;
            ok_list(s.routes.iter().map(|r| route_json(s, r)).collect())
        }
        ("PUT", ["routes"]) => {
            let body = call.json_body()?;
            let mut st = lock(shared);
            let s = script_mut(&mut st, name)?;
            s.routes = body
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| {
                    Some(Route {
                        id: random_hex(16),
                        pattern: r.get("pattern")?.as_str()?.to_owned(),
                        zone_name: r
                            .get("zone_name")
                            .and_then(Value::as_str)
                            .map(str::to_owned),
                    })
                })
                .collect();
            ok(Value::Array(
                s.routes.iter().map(|r| route_json(s, r)).collect(),
            ))
        }
        _ => Err(ApiError::no_route()),
    }
}

fn route_json(s: &Script, r: &Route) -> Value {
    json!({"id": r.id, "pattern": r.pattern, "script": s.name, "zone_name": r.zone_name})
}

fn schedules_json(s: &Script) -> Value {
    let now = now();
    json!({"schedules": s.schedules.iter().map(|c| json!({"cron": c, "created_on": now, "modified_on": now})).collect::<Vec<_>>()})
}

fn settings_json(s: &Script) -> Value {
    let v = s.current_deployment().and_then(|d| {
        d.versions
            .iter()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .and_then(|(id, _)| s.version(id))
    });
    let mut bindings: Vec<Value> = v
        .map(|v| {
            v.bindings
                .iter()
                .filter(|b| b.get("type").and_then(Value::as_str) != Some("secret_text"))
                .cloned()
                .map(Value::Object)
                .collect()
        })
        .unwrap_or_default();
    bindings.extend(
        s.secrets
            .keys()
            .map(|n| json!({"type": "secret_text", "name": n})),
    );
    json!({
        "bindings": bindings,
        "compatibility_date": v.map(|v| v.compatibility_date.clone()),
        "compatibility_flags": v.map(|v| v.compatibility_flags.clone()).unwrap_or_default(),
        "usage_model": "standard",
        "logpush": s.logpush,
        "tail_consumers": s.tail_consumers,
        "observability": s.observability,
        "placement": {},
        "limits": {},
    })
}

fn version_json(s: &Script, v: &Version) -> Value {
    let bindings: Vec<Value> = v.bindings.iter().cloned().map(Value::Object).collect();
    json!({
        "id": v.id,
        "number": v.number,
        "metadata": {
            "author_email": "operator@example.nl",
            "author_id": "7c5dae5552338874e5053f2534d2767a",
            "created_on": v.created_on,
            "modified_on": v.created_on,
            "source": v.source,
            "hasPreview": false,
            "has_preview": false,
        },
        "annotations": v.annotations,
        "resources": {
            "bindings": bindings,
            "script": {
                "etag": s.etag,
                "handlers": ["fetch", "scheduled"],
                "last_deployed_from": "wrangler",
            },
            "script_runtime": {
                "compatibility_date": v.compatibility_date,
                "compatibility_flags": v.compatibility_flags,
                "usage_model": "standard",
                "limits": {},
            },
        },
        "startup_time_ms": 12,
    })
}

fn deployment_json(d: &Deployment) -> Value {
    json!({
        "id": d.id,
        "created_on": d.created_on,
        "source": d.source,
        "strategy": "percentage",
        "author_email": "operator@example.nl",
        "annotations": d.annotations,
        "versions": d.versions.iter().map(|(id, p)| json!({"version_id": id, "percentage": p})).collect::<Vec<_>>(),
    })
}

/// The bindings of an upload, after `inherit`, `keep_bindings` and the
/// injected faults; secret values go to the script's secrets.
fn resolve_bindings(
    st: &mut State,
    name: &str,
    metadata: &Value,
) -> Result<(Vec<Binding>, BTreeMap<String, String>), ApiError> {
    let previous = st
        .scripts
        .get(name)
        .and_then(Script::latest_version)
        .map(|v| v.bindings.clone())
        .unwrap_or_default();
    let keep: Vec<&str> = metadata
        .get("keep_bindings")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut out: Vec<Binding> = Vec::new();
    let mut secrets = BTreeMap::new();
    for b in items(metadata, "bindings") {
        let Some(b) = b.as_object() else {
            return Err(ApiError::bad_request("A binding must be an object."));
        };
        let (Some(kind), Some(bname)) = (
            b.get("type").and_then(Value::as_str),
            b.get("name").and_then(Value::as_str),
        ) else {
            return Err(ApiError::bad_request("A binding needs a type and a name."));
        };
        match kind {
            "inherit" => {
                let old = previous
                    .iter()
                    .find(|p| p.get("name").and_then(Value::as_str) == Some(bname));
                match old {
                    Some(old) => out.push(old.clone()),
                    None => {
                        return Err(ApiError::new(
                            400,
                            10021,
                            format!("binding {bname} of type inherit has nothing to inherit"),
                        ));
                    }
                }
            }
            "secret_text" => {
                if let Some(text) = b.get("text").and_then(Value::as_str) {
                    secrets.insert(bname.to_owned(), text.to_owned());
                }
                let mut kept = Binding::new();
                kept.insert("type".into(), json!("secret_text"));
                kept.insert("name".into(), json!(bname));
                out.push(kept);
            }
            _ => out.push(b.clone()),
        }
    }
    for old in &previous {
        let kind = old.get("type").and_then(Value::as_str).unwrap_or("");
        let oname = old.get("name").and_then(Value::as_str).unwrap_or("");
        if keep.contains(&kind)
            && !out
                .iter()
                .any(|b| b.get("name").and_then(Value::as_str) == Some(oname))
        {
            out.push(old.clone());
        }
    }
    // Secrets set through the secrets API are bindings of the script too.
    if keep.contains(&"secret_text")
        && let Some(s) = st.scripts.get(name)
    {
        for sname in s.secrets.keys() {
            if !out
                .iter()
                .any(|b| b.get("name").and_then(Value::as_str) == Some(sname))
            {
                let mut kept = Binding::new();
                kept.insert("type".into(), json!("secret_text"));
                kept.insert("name".into(), json!(sname));
                out.push(kept);
            }
        }
    }
    if let Some(fault) = st.faults.next_upload_plain_text.remove(name) {
        for (k, v) in fault {
            match out
                .iter_mut()
                .find(|b| b.get("name").and_then(Value::as_str) == Some(k.as_str()))
            {
                Some(b) => {
                    b.insert("type".into(), json!("plain_text"));
                    b.insert("text".into(), json!(v));
                }
                None => {
                    let mut nb = Binding::new();
                    nb.insert("type".into(), json!("plain_text"));
                    nb.insert("name".into(), json!(k));
                    nb.insert("text".into(), json!(v));
                    out.push(nb);
                }
            }
        }
    }
    Ok((out, secrets))
}

/// `PUT /scripts/:name` (deploy: a version deployed at 100 %) and
/// `POST /scripts/:name/versions` (a version, not deployed).
fn upload(shared: &Shared, call: &Call<'_>, name: &str, deploy_it: bool) -> ApiResult {
    let ct = call.req.header("content-type").unwrap_or("");
    let parts = multipart::boundary(ct)
        .and_then(|b| multipart::parse(&call.req.body, &b))
        .ok_or_else(|| ApiError::bad_request("Expected a multipart/form-data upload."))?;
    let metadata: Value = parts
        .iter()
        .find(|p| p.name == "metadata")
        .and_then(|p| serde_json::from_slice(&p.body).ok())
        .ok_or_else(|| ApiError::bad_request("The upload has no metadata part."))?;
    let main_module = metadata
        .get("main_module")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_request("The upload names no main_module."))?
        .to_owned();
    let modules: Vec<&multipart::Part> = parts.iter().filter(|p| p.name != "metadata").collect();
    if !modules.iter().any(|p| p.name == main_module) {
        return Err(ApiError::new(
            400,
            10021,
            format!("No such module \"{main_module}\"."),
        ));
    }
    let mut st = lock(shared);
    if !deploy_it && !st.scripts.contains_key(name) {
        return Err(ApiError::script_not_found());
    }
    let (bindings, new_secrets) = resolve_bindings(&mut st, name, &metadata)?;
    let script = st
        .scripts
        .entry(name.to_owned())
        .or_insert_with(|| Script::new(name));
    let id = uuid();
    let dir = shared.config.state_dir.join("scripts").join(name).join(&id);
    let mut stored = Vec::new();
    for p in &modules {
        // A module name is a relative path; nothing may climb out.
        if p.name.split('/').any(|c| c == ".." || c.is_empty()) {
            return Err(ApiError::bad_request("Invalid module name."));
        }
        let file = dir.join(&p.name);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|_| ApiError::new(500, 10013, "An unknown error has occurred."))?;
        }
        std::fs::write(&file, &p.body)
            .map_err(|_| ApiError::new(500, 10013, "An unknown error has occurred."))?;
        stored.push(Module {
            name: p.name.clone(),
            content_type: p.content_type.clone().unwrap_or_default(),
            size: p.body.len(),
        });
    }
    let mut annotations: BTreeMap<String, String> = string_map(&metadata, "annotations");
    annotations.insert(
        "workers/triggered_by".into(),
        if deploy_it {
            "upload"
        } else {
            "version_upload"
        }
        .into(),
    );
    let number = script.versions.len() as u64 + 1;
    let version = Version {
        id: id.clone(),
        number,
        created_on: now(),
        annotations,
        source: "wrangler".into(),
        main_module,
        compatibility_date: metadata
            .get("compatibility_date")
            .and_then(Value::as_str)
            .unwrap_or("2024-01-01")
            .to_owned(),
        compatibility_flags: metadata
            .get("compatibility_flags")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default(),
        bindings,
        modules: stored,
        dir,
    };
    script.secrets.extend(new_secrets);
    script.versions.push(version);
    script.modified_on = now();
    script.etag = random_hex(32);
    if let Some(v) = metadata.get("observability") {
        script.observability = v.clone();
    }
    if let Some(v) = metadata.get("logpush").and_then(Value::as_bool) {
        script.logpush = v;
    }
    if deploy_it {
        let mut ann = BTreeMap::new();
        ann.insert("workers/triggered_by".to_owned(), "upload".to_owned());
        script.deployments.push(Deployment {
            id: uuid(),
            created_on: now(),
            source: "wrangler".into(),
            versions: vec![(id.clone(), 100.0)],
            annotations: ann,
        });
        let mut result = script_json(script);
        result["deployment_id"] = json!(id);
        result["startup_time_ms"] = json!(12);
        ok(result)
    } else {
        let v = script.versions.last().map(|v| version_json(script, v));
        let mut result = v.unwrap_or(Value::Null);
        result["metadata"]["has_preview"] = json!(false);
        ok(result)
    }
}

/// `POST /scripts/:name/deployments`: versions with percentages adding up
/// to 100.
fn deploy(shared: &Shared, call: &Call<'_>, name: &str) -> ApiResult {
    let body = call.json_body()?;
    let mut st = lock(shared);
    let s = script_mut(&mut st, name)?;
    let mut versions = Vec::new();
    for v in items(&body, "versions") {
        let (Some(id), Some(p)) = (
            v.get("version_id").and_then(Value::as_str),
            v.get("percentage").and_then(Value::as_f64),
        ) else {
            return Err(ApiError::bad_request(
                "Each version needs a version_id and a percentage.",
            ));
        };
        if s.version(id).is_none() {
            return Err(ApiError::new(
                404,
                10220,
                format!("Version {id} was not found."),
            ));
        }
        versions.push((id.to_owned(), p));
    }
    let total: f64 = versions.iter().map(|(_, p)| p).sum();
    if versions.is_empty() || versions.len() > 2 || (total - 100.0).abs() > 1e-6 {
        return Err(ApiError::new(
            400,
            10160,
            "A deployment needs one or two versions whose percentages add up to 100.",
        ));
    }
    let mut annotations: BTreeMap<String, String> = string_map(&body, "annotations");
    annotations
        .entry("workers/triggered_by".into())
        .or_insert_with(|| "deployment".into());
    let d = Deployment {
        id: uuid(),
        created_on: now(),
        source: "wrangler".into(),
        versions,
        annotations,
    };
    let out = deployment_json(&d);
    s.deployments.push(d);
    s.modified_on = now();
    ok(out)
}

/// Secrets set on a deployed script create a version (the latest one's
/// content with the new secrets) deployed at 100 %, as Cloudflare does;
/// on a script that does not exist yet they fail like Cloudflare's.
fn put_secrets(
    shared: &Shared,
    name: &str,
    secrets: BTreeMap<String, Option<String>>,
) -> Result<(), ApiError> {
    let mut st = lock(shared);
    let s = script_mut(&mut st, name)?;
    if let Some(dep) = s.current_deployment()
        && dep.versions.len() > 1
    {
        return Err(ApiError::new(
            400,
            10215,
            "Secret edit failed. You attempted to modify a secret, but the latest version of your Worker isn't currently deployed. Please ensure that the latest version of your Worker is fully deployed (wrangler versions deploy) before modifying secrets.",
        ));
    }
    for (k, v) in secrets {
        match v {
            Some(v) => {
                s.secrets.insert(k, v);
            }
            None => {
                s.secrets.remove(&k);
            }
        }
    }
    let Some(base) = s
        .current_deployment()
        .and_then(|d| d.versions.first())
        .and_then(|(id, _)| s.version(id))
        .cloned()
    else {
        return Ok(());
    };
    let mut v = base;
    v.id = uuid();
    v.number = s.versions.len() as u64 + 1;
    v.created_on = now();
    v.annotations = BTreeMap::from([("workers/triggered_by".to_owned(), "secret".to_owned())]);
    v.bindings.retain(|b| {
        b.get("type").and_then(Value::as_str) != Some("secret_text")
            || b.get("name")
                .and_then(Value::as_str)
                .is_some_and(|n| s.secrets.contains_key(n))
    });
    for sname in s.secrets.keys() {
        if !v
            .bindings
            .iter()
            .any(|b| b.get("name").and_then(Value::as_str) == Some(sname))
        {
            let mut b = Binding::new();
            b.insert("type".into(), json!("secret_text"));
            b.insert("name".into(), json!(sname));
            v.bindings.push(b);
        }
    }
    let id = v.id.clone();
    s.versions.push(v);
    s.deployments.push(Deployment {
        id: uuid(),
        created_on: now(),
        source: "wrangler".into(),
        versions: vec![(id, 100.0)],
        annotations: BTreeMap::from([("workers/triggered_by".to_owned(), "secret".to_owned())]),
    });
    Ok(())
}

/// `PATCH /scripts/:name/settings` (multipart `settings` part): wrangler's
/// `secret bulk` sends the new secrets and inherits the rest.
fn patch_settings(shared: &Shared, call: &Call<'_>, name: &str) -> ApiResult {
    let ct = call.req.header("content-type").unwrap_or("");
    let settings: Value = match multipart::boundary(ct) {
        Some(b) => multipart::parse(&call.req.body, &b)
            .and_then(|parts| {
                parts
                    .into_iter()
                    .find(|p| p.name == "settings" || p.name == "metadata")
            })
            .and_then(|p| serde_json::from_slice(&p.body).ok())
            .ok_or_else(|| ApiError::bad_request("The settings part is missing."))?,
        None => call.json_body()?,
    };
    let mut secrets = BTreeMap::new();
    for b in items(&settings, "bindings") {
        if b.get("type").and_then(Value::as_str) == Some("secret_text")
            && let (Some(n), Some(t)) = (
                b.get("name").and_then(Value::as_str),
                b.get("text").and_then(Value::as_str),
            )
        {
            secrets.insert(n.to_owned(), Some(t.to_owned()));
        }
    }
    if !secrets.is_empty() {
        put_secrets(shared, name, secrets)?;
    }
    let mut st = lock(shared);
    let s = script_mut(&mut st, name)?;
    if let Some(v) = settings.get("logpush").and_then(Value::as_bool) {
        s.logpush = v;
    }
    if let Some(v) = settings.get("observability") {
        s.observability = v.clone();
    }
    ok(settings_json(s))
}

fn d1_json(d: &crate::state::D1Database, file: &std::path::Path) -> Value {
    json!({
        "uuid": d.uuid,
        "name": d.name,
        "version": "production",
        "created_at": d.created_at,
        "num_tables": 0,
        "file_size": d1::size(file),
        "running_in_region": "WEUR",
        "read_replication": {"mode": "disabled"},
    })
}

fn d1_route(shared: &Shared, call: &Call<'_>, segs: &[&str]) -> ApiResult {
    let state_dir = shared.config.state_dir.clone();
    match (call.method, segs) {
        ("GET", []) => {
            let st = lock(shared);
            let name = call.query.get("name");
            ok_list(
                st.d1
                    .values()
                    .filter(|d| name.is_none_or(|n| *n == d.name))
                    .map(|d| d1_json(d, &d1::database_file(&state_dir, &d.uuid)))
                    .collect(),
            )
        }
        ("POST", []) => {
            let body = call.json_body()?;
            let name = body
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::bad_request("A database needs a name."))?;
            let mut st = lock(shared);
            if st.d1.values().any(|d| d.name == name) {
                return Err(ApiError::new(
                    400,
                    7502,
                    "A database with that name already exists",
                ));
            }
            let id = uuid();
            let db = st.d1_entry(&id).ok_or_else(ApiError::no_route)?;
            db.name = name.to_owned();
            let out = d1_json(db, &d1::database_file(&state_dir, &id));
            ok(out)
        }
        ("GET", [id]) => {
            let mut st = lock(shared);
            let db = st.d1_entry(id).ok_or_else(d1_not_found)?;
            let file = d1::database_file(&state_dir, &db.uuid);
            ok(d1_json(db, &file))
        }
        ("PATCH", [id]) => {
            let mut st = lock(shared);
            let db = st.d1_entry(id).ok_or_else(d1_not_found)?;
            let file = d1::database_file(&state_dir, &db.uuid);
            ok(d1_json(db, &file))
        }
        ("POST", [id, kind @ ("query" | "raw")]) => {
            let body = call.json_body()?;
            let raw = *kind == "raw";
            // One statement object, or `{"batch": [...]}`.
            let items: Vec<Value> = match body.get("batch").and_then(Value::as_array) {
                Some(b) => b.clone(),
                None => vec![body],
            };
            let uuid = {
                let mut st = lock(shared);
                st.d1_entry(id).ok_or_else(d1_not_found)?.uuid.clone()
            };
            let file = d1::database_file(&state_dir, &uuid);
            let mut results = Vec::new();
            for item in items {
                let sql = item
                    .get("sql")
                    .and_then(Value::as_str)
                    .ok_or_else(|| ApiError::bad_request("A query needs sql."))?
                    .to_owned();
                let params: Vec<Value> = item
                    .get("params")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                match run_sql(shared, &uuid, &file, &sql, &params) {
                    Ok(outcomes) => {
                        let size = d1::size(&file);
                        results.extend(outcomes.iter().map(|o| {
                            if raw {
                                o.raw_result(size)
                            } else {
                                o.object_result(size)
                            }
                        }));
                    }
                    Err(e) => return Err(e),
                }
            }
            ok(Value::Array(results))
        }
        ("GET", [id, "time_travel", "bookmark"]) => {
            let uuid = {
                let mut st = lock(shared);
                st.d1_entry(id).ok_or_else(d1_not_found)?.uuid.clone()
            };
            let bookmark = take_bookmark(shared, &uuid)?;
            ok(json!({"bookmark": bookmark}))
        }
        ("POST", [id, "time_travel", "restore"]) => {
            let uuid = {
                let mut st = lock(shared);
                st.d1_entry(id).ok_or_else(d1_not_found)?.uuid.clone()
            };
            let wanted = call.query.get("bookmark").cloned().ok_or_else(|| {
                ApiError::bad_request("A restore needs a bookmark (timestamps are not kept here).")
            })?;
            let snapshot = {
                let st = lock(shared);
                st.d1
                    .get(&uuid)
                    .and_then(|d| d.bookmarks.iter().find(|b| b.id == wanted))
                    .map(|b| b.snapshot.clone())
                    .ok_or_else(|| ApiError::new(400, 7500, "Invalid bookmark"))?
            };
            let previous = take_bookmark(shared, &uuid)?;
            let file = d1::database_file(&state_dir, &uuid);
            d1::restore(&file, &snapshot).map_err(|e| ApiError::new(500, 7500, e.to_string()))?;
            ok(json!({
                "bookmark": wanted,
                "previous_bookmark": previous,
                "message": format!("Database restored to bookmark {wanted}"),
            }))
        }
        ("POST", [id, "import"]) => import(shared, call, id),
        _ => Err(ApiError::no_route()),
    }
}

fn queue_json(q: &Queue) -> Value {
    json!({
        "queue_id": q.id,
        "queue_name": q.name,
        "created_on": q.created_on,
        "modified_on": q.created_on,
        "producers": [],
        "producers_total_count": 0,
        "consumers": q.consumers,
        "consumers_total_count": q.consumers.len(),
        "settings": {"delivery_delay": 0, "message_retention_period": 345_600},
    })
}

/// Queues: every queue a configuration names is taken to exist (the
/// operator created it with `wrangler queues create`); consumers are
/// recorded per queue.
fn queues(shared: &Shared, call: &Call<'_>, segs: &[&str]) -> ApiResult {
    let mut st = lock(shared);
    match (call.method, segs) {
        ("GET", []) => {
            let items: Vec<Value> = match call.query.get("name") {
                Some(n) => vec![queue_json(st.queue_entry(n))],
                None => st.queues.values().map(queue_json).collect(),
            };
            ok_list(items)
        }
        ("POST", []) => {
            let body = call.json_body()?;
            let n = body
                .get("queue_name")
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::bad_request("A queue needs a queue_name."))?;
            ok(queue_json(st.queue_entry(n)))
        }
        (_, [id, rest @ ..]) => {
            let q = st
                .queues
                .values_mut()
                .find(|q| q.id == *id || q.name == *id)
                .ok_or_else(|| ApiError::new(404, 11000, "Queue does not exist"))?;
            match (call.method, rest) {
                ("GET", []) => ok(queue_json(q)),
                ("GET", ["consumers"]) => ok_list(q.consumers.clone()),
                ("POST", ["consumers"]) => {
                    let body = call.json_body()?;
                    let script = body
                        .get("script_name")
                        .or_else(|| body.get("script"))
                        .cloned()
                        .unwrap_or(Value::Null);
                    let c = json!({
                        "consumer_id": random_hex(16),
                        "type": body.get("type").cloned().unwrap_or(json!("worker")),
                        "script": script,
                        "settings": body.get("settings").cloned().unwrap_or(json!({})),
                        "dead_letter_queue": body.get("dead_letter_queue").cloned(),
                        "created_on": now(),
                    });
                    q.consumers.push(c.clone());
                    ok(c)
                }
                ("PUT", ["consumers", cid]) => {
                    let body = call.json_body()?;
                    let c = q
                        .consumers
                        .iter_mut()
                        .find(|c| c["consumer_id"] == *cid)
                        .ok_or_else(|| ApiError::new(404, 11001, "Consumer does not exist"))?;
                    if let Some(s) = body.get("settings") {
                        c["settings"] = s.clone();
                    }
                    ok(c.clone())
                }
                ("DELETE", ["consumers", cid]) => {
                    q.consumers.retain(|c| c["consumer_id"] != *cid);
                    ok(Value::Null)
                }
                _ => Err(ApiError::no_route()),
            }
        }
        _ => Err(ApiError::no_route()),
    }
}

fn d1_not_found() -> ApiError {
    ApiError::new(404, 7404, "The database could not be found")
}

/// Runs SQL and logs each statement (and a failure) on the database.
fn run_sql(
    shared: &Shared,
    uuid: &str,
    file: &std::path::Path,
    sql: &str,
    params: &[Value],
) -> Result<Vec<d1::Outcome>, ApiError> {
    let result = d1::execute(file, sql, params);
    let mut st = lock(shared);
    let Some(db) = st.d1.get_mut(uuid) else {
        return Err(d1_not_found());
    };
    let at = now();
    match result {
        Ok(outcomes) => {
            db.statements.extend(outcomes.iter().map(|o| StatementLog {
                sql: o.sql.clone(),
                success: true,
                error: None,
                at: at.clone(),
            }));
            Ok(outcomes)
        }
        Err(d1::Failure {
            done,
            failed,
            error,
        }) => {
            // What ran before the failure was rolled back with it.
            db.statements
                .extend(done.into_iter().map(|sql| StatementLog {
                    sql,
                    success: false,
                    error: Some("rolled back".into()),
                    at: at.clone(),
                }));
            db.statements.push(StatementLog {
                sql: failed.unwrap_or_else(|| sql.to_owned()),
                success: false,
                error: Some(error.to_string()),
                at,
            });
            Err(ApiError::new(400, 7500, error.to_string()))
        }
    }
}

/// Snapshots the database and names the snapshot with a bookmark
/// (`<hex>-<hex>-…` as D1's look).
fn take_bookmark(shared: &Shared, uuid: &str) -> Result<String, ApiError> {
    let dir = &shared.config.state_dir;
    let file = d1::database_file(dir, uuid);
    let id = format!(
        "{:08x}-{}-{}-{}",
        lock(shared)
            .d1
            .get(uuid)
            .map_or(0, |d| d.bookmarks.len() + 1),
        random_hex(4),
        random_hex(4),
        random_hex(16)
    );
    let snapshot = dir
        .join("bookmarks")
        .join(uuid)
        .join(format!("{id}.sqlite"));
    d1::snapshot(&file, &snapshot).map_err(|e| ApiError::new(500, 7500, e.to_string()))?;
    let mut st = lock(shared);
    let db = st.d1.get_mut(uuid).ok_or_else(d1_not_found)?;
    db.bookmarks.push(Bookmark {
        id: id.clone(),
        created_on: now(),
        snapshot,
    });
    Ok(id)
}

/// `POST /d1/database/:id/import`: `init` (answers an upload URL on this
/// server), `ingest` (runs the uploaded SQL as one transaction) and
/// `poll` (the result).
fn import(shared: &Shared, call: &Call<'_>, id: &str) -> ApiResult {
    let body = call.json_body()?;
    let action = body.get("action").and_then(Value::as_str).unwrap_or("");
    let uuid = {
        let mut st = lock(shared);
        st.d1_entry(id).ok_or_else(d1_not_found)?.uuid.clone()
    };
    match action {
        "init" => {
            let etag = body
                .get("etag")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            let mut st = lock(shared);
            st.imports.insert(
                etag.clone(),
                Import {
                    database: uuid,
                    sql: None,
                    result: None,
                },
            );
            ok(json!({
                "success": true,
                "upload_url": format!("{}/__admin/d1-upload/{}", shared.base_url, etag),
                "filename": format!("{etag}.sql"),
            }))
        }
        "ingest" => {
            let etag = body
                .get("etag")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            let sql = lock(shared)
                .imports
                .get(&etag)
                .and_then(|i| i.sql.clone())
                .ok_or_else(|| ApiError::bad_request("Nothing was uploaded for this import."))?;
            let file = d1::database_file(&shared.config.state_dir, &uuid);
            let status = match run_sql(shared, &uuid, &file, &sql, &[]) {
                Ok(outcomes) => {
                    let changes: u64 = outcomes.iter().map(|o| o.changes).sum();
                    json!({
                        "success": true, "type": "import", "status": "complete", "at_bookmark": random_hex(8),
                        "result": {"num_queries": outcomes.len(), "final_bookmark": random_hex(8),
                            "meta": {"served_by": "cloudflare-sandbox", "duration": 1.0, "changes": changes, "last_row_id": 0, "changed_db": changes > 0, "size_after": d1::size(&file), "rows_read": 0, "rows_written": changes}},
                        "messages": [], "errors": [],
                    })
                }
                // D1 answers a failed import inside a successful envelope;
                // wrangler shows `error`.
                Err(e) => {
                    json!({"success": false, "type": "import", "status": "error", "error": e.message, "messages": [], "errors": [e.message]})
                }
            };
            if let Some(i) = lock(shared).imports.get_mut(&etag) {
                i.result = Some(status.clone());
            }
            ok(status)
        }
        "poll" => {
            let bookmark = body.get("current_bookmark").and_then(Value::as_str);
            let st = lock(shared);
            let done = st
                .imports
                .values()
                .filter(|i| i.database == uuid)
                .filter_map(|i| i.result.clone())
                .next_back();
            let _ = bookmark;
            done.map_or_else(|| Err(ApiError::bad_request("No import is running.")), ok)
        }
        _ => Err(ApiError::bad_request("Unknown import action.")),
    }
}

/// `/__admin/…`.
pub fn admin(shared: &Shared, req: &WireRequest) -> Reply {
    let path = req.target.split('?').next().unwrap_or("");
    match (req.method.as_str(), path) {
        ("GET", "/__admin/health") => Reply::json(200, &json!({"ok": true})),
        ("GET", "/__admin/state") => Reply::json(200, &state_json(shared)),
        ("POST", "/__admin/faults") => {
            let Ok(body) = serde_json::from_slice::<Value>(&req.body) else {
                return Reply::json(400, &json!({"error": "expected JSON"}));
            };
            let Some(script) = body.get("script").and_then(Value::as_str) else {
                return Reply::json(400, &json!({"error": "expected a script"}));
            };
            let values: BTreeMap<String, String> = body
                .get("next_upload_plain_text")
                .and_then(Value::as_object)
                .map(|o| {
                    o.iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                        .collect()
                })
                .unwrap_or_default();
            lock(shared)
                .faults
                .next_upload_plain_text
                .insert(script.to_owned(), values);
            Reply::json(200, &json!({"ok": true}))
        }
        ("DELETE", "/__admin/faults") => {
            lock(shared).faults = Default::default();
            Reply::json(200, &json!({"ok": true}))
        }
        ("PUT", p) if p.starts_with("/__admin/d1-upload/") => {
            let etag = p.trim_start_matches("/__admin/d1-upload/");
            let mut st = lock(shared);
            match st.imports.get_mut(etag) {
                Some(i) => {
                    i.sql = Some(String::from_utf8_lossy(&req.body).into_owned());
                    // R2 answers the MD5 of what it received; wrangler
                    // compares it with the file's.
                    use md5::Digest;
                    let md5 = hex::encode(md5::Md5::digest(&req.body));
                    Reply::empty(200).with_header("ETag", &format!("\"{md5}\""))
                }
                None => Reply::empty(404),
            }
        }
        _ => Reply::json(404, &json!({"error": "no such admin route"})),
    }
}

/// Everything recorded, without secret values.
pub fn state_json(shared: &Shared) -> Value {
    let st = lock(shared);
    let scripts: serde_json::Map<String, Value> = st
        .scripts
        .values()
        .map(|s| {
            let versions: Vec<Value> = s
                .versions
                .iter()
                .map(|v| {
                    json!({
                        "id": v.id,
                        "number": v.number,
                        "created_on": v.created_on,
                        "annotations": v.annotations,
                        "main_module": v.main_module,
                        "bindings": v.bindings.iter().map(|b| json!({
                            "name": b.get("name"), "type": b.get("type"),
                        })).collect::<Vec<_>>(),
                        "plain_text": v.plain_text(),
                        "modules": v.modules.iter().map(|m| json!({
                            "name": m.name, "content_type": m.content_type, "size": m.size,
                        })).collect::<Vec<_>>(),
                    })
                })
                .collect();
            (
                s.name.clone(),
                json!({
                    "versions": versions,
                    "deployments": s.deployments.iter().map(|d| json!({
                        "id": d.id,
                        "created_on": d.created_on,
                        "message": d.annotations.get("workers/message"),
                        "annotations": d.annotations,
                        "versions": d.versions.iter().map(|(id, p)| json!({"version_id": id, "percentage": p})).collect::<Vec<_>>(),
                    })).collect::<Vec<_>>(),
                    "secrets": s.secrets.keys().collect::<Vec<_>>(),
                    "custom_domains": s.domains.iter().map(|d| d.hostname.clone()).collect::<Vec<_>>(),
                    "routes": s.routes.iter().map(|r| r.pattern.clone()).collect::<Vec<_>>(),
                    "schedules": s.schedules,
                    "workers_dev": s.subdomain_enabled,
                }),
            )
        })
        .collect();
    let d1: serde_json::Map<String, Value> = st
        .d1
        .values()
        .map(|d| {
            (
                d.uuid.clone(),
                json!({
                    "name": d.name,
                    "statements": d.statements.iter().map(|s| json!({
                        "sql": s.sql, "success": s.success, "error": s.error, "at": s.at,
                    })).collect::<Vec<_>>(),
                    "bookmarks": d.bookmarks.iter().map(|b| json!({
                        "bookmark": b.id, "created_on": b.created_on,
                    })).collect::<Vec<_>>(),
                }),
            )
        })
        .collect();
    json!({
        "account_id": shared.config.account_id,
        "subdomain": shared.config.subdomain,
        "scripts": scripts,
        "d1": d1,
        "queues": st.queues.values().map(queue_json).collect::<Vec<_>>(),
        "edge": shared.edge.running(),
    })
}
