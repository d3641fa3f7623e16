//! Answers no single Exact screen gives: a consolidated profit and loss or
//! balance sheet across the user's administrations (holding and operating
//! companies) with likely intercompany relations flagged, and why a figure
//! moved between two periods, ranked by the GL accounts that moved it.

use std::collections::BTreeMap;

use boekhouding_core::exact::{Cmp, Filter, Query};
use boekhouding_core::storage::StorageError;
use boekhouding_core::storage::administrations::{self, Administration, DivisionRef};
use boekhouding_core::storage::usage::Outcome;
use serde_json::{Map, Value, json};

use super::exact::{Args, choose, connect, division_ref, division_schema, failed};
use super::money::round_cents;
use super::{Bookkeeping, Platform, ToolResult, read_only};

/// How many administrations one consolidation takes (the schema's
/// `minItems`/`maxItems` of `divisions`).
const MIN_CONSOLIDATED: usize = 2;
const MAX_CONSOLIDATED: usize = 20;

/// Fields of a single-administration answer that are not amounts.
const NOT_AMOUNTS: &[&str] = &["division", "year", "period_from", "period_to"];

pub fn consolidated_definition() -> Value {
    json!({
        "name": "get_consolidated_report",
        "title": "Consolidated report (geconsolideerd overzicht)",
        "description": "Profit and loss or balance sheet across several of your administrations at once (holding and operating companies, werkmaatschappijen): every administration's figures side by side and totalled. Relations in one administration whose name is another administration in the set are flagged as likely intercompany (intercompany amounts are listed, not eliminated).",
        "inputSchema": {"type": "object", "properties": {
            "divisions": {"type": "array", "items": division_schema(), "minItems": MIN_CONSOLIDATED, "maxItems": MAX_CONSOLIDATED, "uniqueItems": true,
                "description": "Division codes to consolidate (\"be:123456\" with the region for a code that exists at two Exact sites); all usable administrations when left out."},
            "report": {"type": "string", "enum": ["profit_loss", "balance_sheet"], "default": "profit_loss"},
            "year": {"type": "integer", "minimum": 2000, "maximum": 2100, "description": "Financial year (profit and loss; the balance sheet is at its last day); the current year when left out."}
        }, "additionalProperties": false},
        "outputSchema": {"type": "object", "properties": {
            "report": {"type": "string"},
            "administrations": {"type": "array", "items": {"type": "object", "properties": {
                "division": {"type": "integer"}, "name": {"type": "string"}, "figures": {"type": "object"}
            }, "required": ["division", "name", "figures"]}},
            "totals": {"type": "object", "description": "Sum of every amount field over the administrations."},
            "intercompany": {"type": "array", "items": {"type": "object", "properties": {
                "division": {"type": "integer"}, "relation": {"type": "string"}, "is_administration": {"type": "integer"}
            }, "required": ["division", "relation", "is_administration"]}}
        }, "required": ["report", "administrations", "totals", "intercompany"]},
        "annotations": read_only(),
    })
}

fn normalise(name: &str) -> String {
    name.to_lowercase()
        .replace("b.v.", "")
        .replace("bv", "")
        .replace("holding", "")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

pub(super) async fn get_consolidated_report<P: Platform>(
    ctx: &Bookkeeping<'_, P>,
    args: &Value,
) -> Result<ToolResult, StorageError> {
    let parsed = (|| {
        let a = Args::parse(args, &["divisions", "report", "year"])?;
        // The list's size first, then its elements: a hostile list is
        // refused before any work proportional to its length.
        let listed = match a.list(
            "divisions",
            "division codes",
            MIN_CONSOLIDATED,
            MAX_CONSOLIDATED,
        )? {
            Some(items) => {
                let mut refs = Vec::with_capacity(items.len());
                let mut seen = std::collections::HashSet::new();
                for v in items {
                    match division_ref(v) {
                        Some(r) if seen.insert(r) => refs.push(r),
                        _ => {
                            return Err(failed(
                                "`divisions` must be distinct division codes (whole numbers, or \"nl:123456\" with the region for a code that exists at two Exact sites).",
                                Outcome::InvalidArguments,
                            ));
                        }
                    }
                }
                Some(refs)
            }
            None => None,
        };
        Ok::<_, ToolResult>((
            listed,
            a.choice("report", &["profit_loss", "balance_sheet"])?
                .unwrap_or("profit_loss"),
            a.int("year", 2000, 2100)?,
        ))
    })();
    let (listed, report, year) = tool_try!(parsed);
    let active = ctx.active_administrations().await?;
    let plan = ctx.principal.plan;
    let wanted: Vec<Administration> = match listed {
        Some(refs) => {
            let mut chosen: Vec<Administration> = Vec::with_capacity(refs.len());
            for r in refs {
                let admin = tool_try!(choose(&active, plan, Some(r)));
                if chosen.iter().any(|c| c.id == admin.id) {
                    return Ok(failed(
                        "`divisions` names the same administration twice.",
                        Outcome::InvalidArguments,
                    ));
                }
                chosen.push(admin);
            }
            chosen
        }
        None => administrations::allowed(&active, plan)
            .into_iter()
            .cloned()
            .collect(),
    };
    if !(MIN_CONSOLIDATED..=MAX_CONSOLIDATED).contains(&wanted.len()) {
        return Ok(failed(
            format!(
                "A consolidation needs {MIN_CONSOLIDATED} to {MAX_CONSOLIDATED} administrations; list_divisions shows yours."
            ),
            Outcome::InvalidArguments,
        ));
    }
    let year = year.unwrap_or_else(|| {
        i64::from(chrono::Datelike::year(
            &boekhouding_core::ports::Clock::now(ctx.platform.clock()),
        ))
    });
    let mut rows = Vec::new();
    let mut totals: Map<String, Value> = Map::new();
    let mut calls = 0;
    let mut names: Vec<(DivisionRef, String)> = Vec::new();
    for admin in &wanted {
        let code = admin.division_code;
        // The inner tools get the reference that names exactly this
        // administration, also when its code exists at two Exact sites.
        let exact_ref = DivisionRef::of(admin);
        let division = exact_ref.to_string();
        let one = match report {
            "balance_sheet" => {
                super::reports::get_balance_sheet(
                    ctx,
                    &json!({"division": division, "date": format!("{year}-12-31")}),
                )
                .await?
            }
            _ => {
                super::reports::get_profit_loss(ctx, &json!({"division": division, "year": year}))
                    .await?
            }
        };
        let structured = match one {
            ToolResult::Ok {
                structured,
                exact_calls,
                ..
            } => {
                calls += exact_calls;
                structured
            }
            failed => return Ok(failed),
        };
        let name = admin.name.clone();
        let mut figures = Map::new();
        if let Some(obj) = structured.as_object() {
            for (k, v) in obj {
                if let (Some(x), false) = (v.as_f64(), NOT_AMOUNTS.contains(&k.as_str())) {
                    figures.insert(k.clone(), v.clone());
                    let sum = totals.get(k).and_then(Value::as_f64).unwrap_or(0.0) + x;
                    totals.insert(k.clone(), json!(round_cents(sum)));
                }
            }
        }
        names.push((exact_ref, name.clone()));
        rows.push(json!({"division": code, "region": admin.region.code(), "name": name, "figures": figures}));
    }
    // Likely intercompany: a relation in one administration named like
    // another administration of the set.
    let mut intercompany = Vec::new();
    for (exact_ref, _) in &names {
        let code = exact_ref.code;
        let mut conn = tool_try!(connect(ctx, Some(*exact_ref)).await);
        let q = Query::new("crm/Accounts", &["Name"]).filter(Some(
            Filter::eq("IsSales", true).or(Filter::eq("IsSupplier", true)),
        ));
        let listed = tool_try!(conn.list(ctx, &q, 5_000).await);
        calls += conn.client.calls_made();
        for r in &listed.rows {
            let relation = r.get("Name").and_then(Value::as_str).unwrap_or("");
            let rn = normalise(relation);
            if rn.is_empty() {
                continue;
            }
            if let Some((other, _)) = names
                .iter()
                .find(|(r, n)| r != exact_ref && !normalise(n).is_empty() && normalise(n) == rn)
            {
                intercompany.push(
                    json!({"division": code, "relation": relation, "is_administration": other.code}),
                );
            }
        }
    }
    let label = if report == "balance_sheet" {
        format!("balance sheet at {year}-12-31")
    } else {
        format!("profit and loss {year}")
    };
    let mut text = format!("Consolidated {label} of {} administrations:", rows.len());
    for (k, v) in &totals {
        text.push_str(&format!("\n{k}: € {v}"));
    }
    text.push_str(&if intercompany.is_empty() {
        "\nNo intercompany relations found between these administrations.".to_owned()
    } else {
        format!(
            "\n{} likely intercompany relation(s) flagged; their amounts are included, not eliminated.",
            intercompany.len()
        )
    });
    Ok(ToolResult::Ok {
        structured: json!({"report": report, "year": year, "administrations": rows, "totals": totals, "intercompany": intercompany}),
        text,
        division: None,
        exact_calls: calls,
    })
}

pub fn explain_change_definition() -> Value {
    json!({
        "name": "explain_change",
        "title": "Explain a change (waarom veranderde dit?)",
        "description": "Explains why revenue, costs or the result moved between two periods: the change and the GL accounts (grootboekrekeningen) that contributed most, ranked by size, each with both periods' amounts and its share of the change. Periods are a year (2025), quarter (2025-Q3) or month (2025-07).",
        "inputSchema": {"type": "object", "properties": {
            "division": division_schema(),
            "metric": {"type": "string", "enum": ["result", "revenue", "costs"], "default": "result"},
            "from_period": {"type": "string", "maxLength": 10, "description": "The earlier period: 2025, 2025-Q3 or 2025-07."},
            "to_period": {"type": "string", "maxLength": 10, "description": "The later period, in the same form."},
            "top": {"type": "integer", "minimum": 1, "maximum": 50, "default": 10}
        }, "required": ["from_period", "to_period"], "additionalProperties": false},
        "outputSchema": {"type": "object", "properties": {
            "division": {"type": "integer"}, "metric": {"type": "string"},
            "from": {"type": "object", "properties": {"period": {"type": "string"}, "value": {"type": "number"}}, "required": ["period", "value"]},
            "to": {"type": "object", "properties": {"period": {"type": "string"}, "value": {"type": "number"}}, "required": ["period", "value"]},
            "change": {"type": "number"}, "change_pct": {"type": ["number", "null"]},
            "drivers": {"type": "array", "items": {"type": "object", "properties": {
                "code": {"type": "string"}, "description": {"type": "string"}, "category": {"type": "string"},
                "from": {"type": "number"}, "to": {"type": "number"}, "change": {"type": "number"}, "share": {"type": ["number", "null"]}
            }, "required": ["code", "category", "from", "to", "change"]}},
            "truncated": {"type": "boolean"}
        }, "required": ["division", "metric", "from", "to", "change", "drivers", "truncated"]},
        "annotations": read_only(),
    })
}

/// `2025` → (2025, 1, 12); `2025-Q3` → (2025, 7, 9); `2025-07` → (2025, 7, 7).
pub(super) fn parse_span(s: &str) -> Option<(i64, i64, i64)> {
    let s = s.trim();
    let (y, rest) = match s.split_once('-') {
        Some((y, r)) => (y, Some(r)),
        None => (s, None),
    };
    let year: i64 = y.parse().ok().filter(|y| (2000..=2100).contains(y))?;
    match rest {
        None => Some((year, 1, 12)),
        Some(r) => {
            if let Some(q) = r.strip_prefix(['Q', 'q']) {
                let q: i64 = q.parse().ok().filter(|q| (1..=4).contains(q))?;
                Some((year, q * 3 - 2, q * 3))
            } else {
                let m: i64 = r.parse().ok().filter(|m| (1..=12).contains(m))?;
                (r.len() == 2).then_some((year, m, m))
            }
        }
    }
}

pub(super) async fn explain_change<P: Platform>(
    ctx: &Bookkeeping<'_, P>,
    args: &Value,
) -> Result<ToolResult, StorageError> {
    let parsed = (|| {
        let a = Args::parse(
            args,
            &["division", "metric", "from_period", "to_period", "top"],
        )?;
        let span = |k: &str| -> Result<(String, (i64, i64, i64)), ToolResult> {
            let raw = a.text(k, 10)?.ok_or_else(|| {
                failed(
                    format!("`{k}` is required: 2025, 2025-Q3 or 2025-07."),
                    Outcome::InvalidArguments,
                )
            })?;
            let span = parse_span(&raw).ok_or_else(|| {
                failed(
                    format!("`{k}` must be a year (2025), quarter (2025-Q3) or month (2025-07), got {raw:?}."),
                    Outcome::InvalidArguments,
                )
            })?;
            Ok((raw.to_uppercase(), span))
        };
        Ok::<_, ToolResult>((
            a.division()?,
            a.choice("metric", &["result", "revenue", "costs"])?
                .unwrap_or("result"),
            span("from_period")?,
            span("to_period")?,
            a.int("top", 1, 50)?.unwrap_or(10) as usize,
        ))
    })();
    let (division, metric, (from_label, from), (to_label, to), top) = tool_try!(parsed);
    let mut conn = tool_try!(connect(ctx, division).await);
    let types = tool_try!(super::reports::gl_types(ctx, &mut conn).await);
    let span = |(year, f, t): (i64, i64, i64)| super::reports::pl_filter(year, f, t);
    let (a, ta) = tool_try!(super::reports::balances(ctx, &mut conn, span(from), &types).await);
    let (b, tb) = tool_try!(super::reports::balances(ctx, &mut conn, span(to), &types).await);
    // In the metric's own sign: revenue positive, costs positive, result
    // = revenue − costs (= −booked amount).
    let value = |gl_type: i64, booked: i64| -> Option<i64> {
        match (metric, gl_type) {
            ("revenue", 110) => Some(-booked),
            ("revenue", _) => None,
            ("costs", 110) => None,
            ("costs", _) => Some(booked),
            _ => Some(-booked),
        }
    };
    let codes: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    let mut drivers = Vec::new();
    let (mut total_a, mut total_b) = (0i64, 0i64);
    for code in codes {
        let ea = a.get(code);
        let eb = b.get(code);
        let gl_type = eb.or(ea).map_or(0, |e| e.gl_type);
        let (Some(va), Some(vb)) = (
            value(gl_type, ea.map_or(0, |e| e.amount)),
            value(gl_type, eb.map_or(0, |e| e.amount)),
        ) else {
            continue;
        };
        total_a += va;
        total_b += vb;
        if va != vb {
            let description = eb.or(ea).map(|e| e.description.clone()).unwrap_or_default();
            drivers.push((code.clone(), description, gl_type, va, vb));
        }
    }
    let change = total_b - total_a;
    drivers.sort_by_key(|d| std::cmp::Reverse((d.4 - d.3).abs()));
    let ranked: Vec<Value> = drivers
        .iter()
        .take(top)
        .map(|(code, description, gl_type, va, vb)| {
            let category = match gl_type {
                110 => "revenue",
                111 => "cost_of_sales",
                _ => "other_costs",
            };
            let c = vb - va;
            json!({
                "code": code, "description": description, "category": category,
                "from": round_cents(*va as f64 / 100.0), "to": round_cents(*vb as f64 / 100.0),
                "change": round_cents(c as f64 / 100.0),
                "share": (change != 0).then(|| ((c as f64 / change as f64) * 1000.0).round() / 10.0),
            })
        })
        .collect();
    let pct =
        (total_a != 0).then(|| ((change as f64 / total_a.abs() as f64) * 1000.0).round() / 10.0);
    let mut text = format!(
        "{metric} went from € {:.2} ({from_label}) to € {:.2} ({to_label}): {}€ {:.2}{}. Largest contributors:",
        total_a as f64 / 100.0,
        total_b as f64 / 100.0,
        if change >= 0 { "+" } else { "−" },
        (change.abs()) as f64 / 100.0,
        pct.map(|p| format!(" ({p:+.1} %)")).unwrap_or_default()
    );
    for d in &ranked {
        text.push_str(&format!(
            "\n{} {}: € {} → € {} ({:+})",
            d["code"].as_str().unwrap_or(""),
            d["description"].as_str().unwrap_or(""),
            d["from"],
            d["to"],
            d["change"].as_f64().unwrap_or(0.0)
        ));
    }
    Ok(ToolResult::Ok {
        structured: json!({
            "division": conn.admin.division_code, "metric": metric,
            "from": {"period": from_label, "value": round_cents(total_a as f64 / 100.0)},
            "to": {"period": to_label, "value": round_cents(total_b as f64 / 100.0)},
            "change": round_cents(change as f64 / 100.0), "change_pct": pct,
            "drivers": ranked, "truncated": ta || tb,
        }),
        text,
        division: Some(conn.admin.division_code),
        exact_calls: conn.client.calls_made(),
    })
}

/// Words that mark a suspense or clearing account (kruisposten,
/// tussenrekening, vraagposten) in a chart of accounts.
const SUSPENSE_WORDS: &[&str] = &[
    "kruispost",
    "tussenrekening",
    "vraagpost",
    "suspense",
    "clearing",
    "nog te verdelen",
];

pub fn period_close_definition() -> Value {
    json!({
        "name": "get_period_close_check",
        "title": "Period close check (periode afsluiten)",
        "description": "One answer listing what blocks closing a period (maand of kwartaal afsluiten): entries still in draft in the period and in earlier periods of the year, non-zero balances on suspense and clearing accounts (kruisposten, tussenrekeningen, vraagposten), bank lines booked to such an account instead of being matched, and revenue or cost lines without a VAT code. `ready` is true when nothing needs attention.",
        "inputSchema": {"type": "object", "properties": {
            "division": division_schema(),
            "year": {"type": "integer", "minimum": 2000, "maximum": 2100},
            "period": {"type": "integer", "minimum": 1, "maximum": 12, "description": "Month (financial period)."}
        }, "required": ["year", "period"], "additionalProperties": false},
        "outputSchema": {"type": "object", "properties": {
            "division": {"type": "integer"}, "year": {"type": "integer"}, "period": {"type": "integer"},
            "ready": {"type": "boolean"},
            "checks": {"type": "array", "items": {"type": "object", "properties": {
                "check": {"type": "string"}, "ok": {"type": "boolean"}, "count": {"type": "integer"},
                "amount": {"type": "number"}, "details": {"type": "array"}
            }, "required": ["check", "ok", "count", "amount", "details"]}},
            "truncated": {"type": "boolean"}
        }, "required": ["division", "year", "period", "ready", "checks", "truncated"]},
        "annotations": read_only(),
    })
}

fn check(name: &str, count: usize, amount_cents: i64, details: Vec<Value>) -> Value {
    json!({"check": name, "ok": count == 0, "count": count, "amount": round_cents(amount_cents as f64 / 100.0),
        "details": details.into_iter().take(25).collect::<Vec<_>>()})
}

pub(super) async fn get_period_close_check<P: Platform>(
    ctx: &Bookkeeping<'_, P>,
    args: &Value,
) -> Result<ToolResult, StorageError> {
    let parsed = (|| {
        let a = Args::parse(args, &["division", "year", "period"])?;
        let required = |k: &str, v: Option<i64>| {
            v.ok_or_else(|| failed(format!("`{k}` is required."), Outcome::InvalidArguments))
        };
        Ok::<_, ToolResult>((
            a.division()?,
            required("year", a.int("year", 2000, 2100)?)?,
            required("period", a.int("period", 1, 12)?)?,
        ))
    })();
    let (division, year, period) = tool_try!(parsed);
    let mut conn = tool_try!(connect(ctx, division).await);
    let cents = |r: &Map<String, Value>, k: &str| {
        (r.get(k).and_then(Value::as_f64).unwrap_or(0.0) * 100.0).round() as i64
    };
    let text_of = |r: &Map<String, Value>, k: &str| {
        r.get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .trim()
            .to_owned()
    };
    // The chart: suspense accounts by name, revenue/cost accounts by type.
    let chart = tool_try!(
        conn.list(
            ctx,
            &Query::new(
                "financial/GLAccounts",
                &["Code", "Description", "Type", "BalanceType"]
            ),
            10_000,
        )
        .await
    );
    let suspense: Vec<(String, String)> = chart
        .rows
        .iter()
        .filter(|r| {
            let d = text_of(r, "Description").to_lowercase();
            SUSPENSE_WORDS.iter().any(|w| d.contains(w))
        })
        .map(|r| (text_of(r, "Code"), text_of(r, "Description")))
        .collect();
    let pl_codes: std::collections::BTreeSet<String> = chart
        .rows
        .iter()
        .filter(|r| text_of(r, "BalanceType") == "W")
        .map(|r| text_of(r, "Code"))
        .collect();
    let fields = [
        "EntryNumber",
        "Date",
        "FinancialPeriod",
        "JournalCode",
        "GLAccountCode",
        "Description",
        "AmountDC",
        "VATCode",
        "Status",
    ];
    // Every line of the year up to the period: drafts, VAT codes.
    let lines = tool_try!(
        conn.list(
            ctx,
            &Query::new("financialtransaction/TransactionLines", &fields).filter(Some(
                Filter::eq("FinancialYear", year).and(Filter::cmp(
                    "FinancialPeriod",
                    Cmp::Le,
                    period
                )),
            )),
            50_000,
        )
        .await
    );
    let mut drafts_now: BTreeMap<i64, (String, i64)> = BTreeMap::new();
    let mut drafts_before: BTreeMap<i64, (i64, String)> = BTreeMap::new();
    let mut no_vat = Vec::new();
    let mut no_vat_cents = 0i64;
    for l in &lines.rows {
        let entry = l.get("EntryNumber").and_then(Value::as_i64).unwrap_or(0);
        let p = l
            .get("FinancialPeriod")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if l.get("Status").and_then(Value::as_i64) == Some(20) {
            if p == period {
                let e = drafts_now
                    .entry(entry)
                    .or_insert_with(|| (text_of(l, "Description"), 0));
                e.1 += cents(l, "AmountDC").max(0);
            } else {
                drafts_before.insert(entry, (p, text_of(l, "Description")));
            }
        }
        let code = text_of(l, "GLAccountCode");
        let vat_missing = l
            .get("VATCode")
            .is_none_or(|v| v.is_null() || v.as_str() == Some(""));
        // Sales and purchase journals carry VAT; wages, depreciation and
        // memorial corrections do not need a code.
        let journal = text_of(l, "JournalCode");
        if p == period
            && pl_codes.contains(&code)
            && vat_missing
            && (journal == "70" || journal == "60")
        {
            no_vat_cents += cents(l, "AmountDC").abs();
            no_vat.push(json!({"entry": entry, "gl_account": code, "description": text_of(l, "Description"), "amount": round_cents(cents(l, "AmountDC") as f64 / 100.0)}));
        }
    }
    // Suspense balances at the period end, carried forward as the balance
    // sheet carries them; the bank lines booked on them in the period.
    let position =
        tool_try!(super::carry::position_at(ctx, &mut conn, year, period, &BTreeMap::new()).await);
    let mut suspense_details = Vec::new();
    let mut suspense_total = 0i64;
    let mut bank_details = Vec::new();
    let mut bank_cents = 0i64;
    let mut bank_truncated = false;
    for (code, description) in &suspense {
        let balance = position
            .accounts
            .get(code)
            .map_or(0, super::carry::Carried::balance);
        if balance != 0 {
            suspense_total += balance.abs();
            suspense_details.push(json!({"gl_account": code, "description": description, "balance": round_cents(balance as f64 / 100.0)}));
        }
        let booked = tool_try!(
            conn.list(
                ctx,
                &Query::new(
                    "financialtransaction/TransactionLines",
                    &["JournalCode", "Description", "AmountDC", "EntryNumber"],
                )
                .filter(Some(
                    Filter::eq("GLAccountCode", code.clone())
                        .and(Filter::eq("FinancialYear", year))
                        .and(Filter::eq("FinancialPeriod", period)),
                )),
                50_000,
            )
            .await
        );
        bank_truncated |= booked.truncated;
        for r in booked
            .rows
            .iter()
            .filter(|r| text_of(r, "JournalCode") == "20")
        {
            bank_cents += cents(r, "AmountDC").abs();
            bank_details.push(
                json!({"entry": r.get("EntryNumber"), "description": text_of(r, "Description"),
                "amount": round_cents(-cents(r, "AmountDC") as f64 / 100.0), "suspense_account": code}),
            );
        }
    }
    let draft_details: Vec<Value> = drafts_now
        .iter()
        .map(
            |(n, (d, c))| json!({"entry": n, "description": d, "amount": round_cents(*c as f64 / 100.0)}),
        )
        .collect();
    let draft_cents: i64 = drafts_now.values().map(|(_, c)| c).sum();
    let before_details: Vec<Value> = drafts_before
        .iter()
        .map(|(n, (p, d))| json!({"entry": n, "period": p, "description": d}))
        .collect();
    let checks = vec![
        check(
            "draft_entries_in_period",
            draft_details.len(),
            draft_cents,
            draft_details,
        ),
        check(
            "draft_entries_in_earlier_periods",
            before_details.len(),
            0,
            before_details,
        ),
        check(
            "suspense_and_clearing_balances",
            suspense_details.len(),
            suspense_total,
            suspense_details,
        ),
        check(
            "unmatched_bank_lines",
            bank_details.len(),
            bank_cents,
            bank_details,
        ),
        check("lines_without_vat_code", no_vat.len(), no_vat_cents, no_vat),
    ];
    let ready = checks.iter().all(|c| c["ok"] == true);
    let mut text = format!(
        "Closing {year}-{period:02}: {}",
        if ready {
            "nothing blocks it."
        } else {
            "needs attention:"
        }
    );
    for c in checks.iter().filter(|c| c["ok"] == false) {
        text.push_str(&format!(
            "\n- {}: {} (€ {})",
            c["check"].as_str().unwrap_or("").replace('_', " "),
            c["count"],
            c["amount"]
        ));
    }
    if suspense.is_empty() {
        text.push_str("\n(no suspense or clearing account found in the chart of accounts)");
    }
    Ok(ToolResult::Ok {
        structured: json!({
            "division": conn.admin.division_code, "year": year, "period": period, "ready": ready,
            "checks": checks, "truncated": chart.truncated || lines.truncated || position.truncated || bank_truncated,
        }),
        text,
        division: Some(conn.admin.division_code),
        exact_calls: conn.client.calls_made(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_parse_years_quarters_and_months_only() {
        assert_eq!(parse_span("2025"), Some((2025, 1, 12)));
        assert_eq!(parse_span("2025-q3"), Some((2025, 7, 9)));
        assert_eq!(parse_span("2025-07"), Some((2025, 7, 7)));
        for bad in [
            "25",
            "2025-7",
            "2025-Q0",
            "2025-13",
            "2025-Q3x",
            "1999",
            "' or 1 eq 1",
        ] {
            assert_eq!(parse_span(bad), None, "{bad}");
        }
    }
}
