//! Reports computed from the company's own transaction lines, so a report
//! and the sum of its parts always agree: `financial/ReportingBalance`,
//! `read/financial/ReceivablesList` and `PayablesList`, the aging lists and
//! `read/financial/RevenueListByYear`.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate};
use serde_json::{Value, json};

use crate::data::{Company, Row};
use crate::odata::date_ms;

/// Exact GL account types used here.
const TYPE_RECEIVABLE: i64 = 20;
const TYPE_PAYABLE: i64 = 22;
const TYPE_REVENUE: i64 = 110;

fn cents(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn s(r: &Row, k: &str) -> String {
    r.get(k).and_then(Value::as_str).unwrap_or("").to_owned()
}

fn f(r: &Row, k: &str) -> f64 {
    r.get(k).and_then(Value::as_f64).unwrap_or(0.0)
}

fn i(r: &Row, k: &str) -> i64 {
    r.get(k).and_then(Value::as_i64).unwrap_or(0)
}

fn obj(v: Value) -> Row {
    v.as_object().cloned().unwrap_or_default()
}

/// GL account id → (type, balance type, code, description).
fn gl_index(
    entities: &BTreeMap<&'static str, Vec<Row>>,
) -> BTreeMap<String, (i64, String, String, String)> {
    entities
        .get("financial/GLAccounts")
        .map(|rows| {
            rows.iter()
                .map(|r| {
                    (
                        s(r, "ID"),
                        (
                            i(r, "Type"),
                            s(r, "BalanceType"),
                            s(r, "Code"),
                            s(r, "Description"),
                        ),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Every table a company serves: its generated entities (moved out of
/// `company`) and the reports computed from them.
pub fn company_tables(company: &mut Company, today: NaiveDate) -> BTreeMap<String, Vec<Row>> {
    let entities = std::mem::take(&mut company.entities);
    let gl = gl_index(&entities);
    let mut t: BTreeMap<String, Vec<Row>> = entities
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    let lines = t
        .get("financialtransaction/TransactionLines")
        .map(Vec::as_slice)
        .unwrap_or_default();
    let balance = reporting_balance(lines, &gl, company.division);
    let (recv, pay) = (
        open_items(lines, &gl, TYPE_RECEIVABLE, 1.0),
        open_items(lines, &gl, TYPE_PAYABLE, -1.0),
    );
    t.insert("financial/ReportingBalance".into(), balance);
    t.insert(
        "read/financial/AgingReceivablesList".into(),
        aging(&recv, today),
    );
    t.insert(
        "read/financial/AgingPayablesList".into(),
        aging(&pay, today),
    );
    t.insert("read/financial/ReceivablesList".into(), recv);
    t.insert("read/financial/PayablesList".into(), pay);
    t
}

/// Balance per GL account, year, period, transaction type and status, as
/// Exact groups it. The type keeps an opening-balance entry (type 10,
/// booked in period 0 when a year is closed) apart from the year's
/// movements.
pub fn reporting_balance(
    lines: &[Row],
    gl: &BTreeMap<String, (i64, String, String, String)>,
    division: i64,
) -> Vec<Row> {
    /// (GL account, year, period, transaction type, status).
    type Key = (String, i64, i64, i64, i64);
    /// (amount, debit, credit, line count).
    type Sums = (f64, f64, f64, i64);
    let mut groups: BTreeMap<Key, Sums> = BTreeMap::new();
    for l in lines {
        let key = (
            s(l, "GLAccount"),
            i(l, "FinancialYear"),
            i(l, "FinancialPeriod"),
            i(l, "Type"),
            i(l, "Status"),
        );
        let e = groups.entry(key).or_default();
        let a = f(l, "AmountDC");
        e.0 += a;
        if a >= 0.0 {
            e.1 += a;
        } else {
            e.2 -= a;
        }
        e.3 += 1;
    }
    groups
        .into_iter()
        .enumerate()
        .map(|(n, ((acc, year, period, kind, status), (amount, debit, credit, count)))| {
            let (_, bt, code, desc) = gl.get(&acc).cloned().unwrap_or_default();
            obj(json!({
                "ID": n as i64 + 1, "Division": division, "GLAccount": acc, "GLAccountCode": code,
                "GLAccountDescription": desc, "BalanceType": bt, "ReportingYear": year,
                "ReportingPeriod": period, "Amount": cents(amount), "AmountDebit": cents(debit),
                "AmountCredit": cents(credit), "Count": count, "Status": status, "Type": kind,
            }))
        })
        .collect()
}

/// Open items on receivable (`sign` 1) or payable (`sign` -1) accounts:
/// lines grouped by relation and invoice number, kept when not settled.
pub fn open_items(
    lines: &[Row],
    gl: &BTreeMap<String, (i64, String, String, String)>,
    gl_type: i64,
    sign: f64,
) -> Vec<Row> {
    struct Item {
        amount: f64,
        first: Option<Row>,
    }
    let mut items: BTreeMap<(String, i64), Item> = BTreeMap::new();
    for l in lines {
        let is_type = gl.get(&s(l, "GLAccount")).is_some_and(|g| g.0 == gl_type);
        let Some(inv) = l.get("InvoiceNumber").and_then(Value::as_i64) else {
            continue;
        };
        if !is_type {
            continue;
        }
        let e = items.entry((s(l, "Account"), inv)).or_insert(Item {
            amount: 0.0,
            first: None,
        });
        e.amount += f(l, "AmountDC");
        // The invoice posting is the line in the item's own direction.
        if e.first.is_none() && f(l, "AmountDC") * sign > 0.0 {
            e.first = Some(l.clone());
        }
    }
    items
        .into_iter()
        .filter(|(_, it)| cents(it.amount) != 0.0)
        .enumerate()
        .map(|(n, ((account, inv), it))| {
            let first = it.first.unwrap_or_default();
            obj(json!({
                "HID": n as i64 + 1, "AccountId": account, "AccountCode": s(&first, "AccountCode"),
                "AccountName": s(&first, "AccountName"), "Amount": cents(it.amount * sign),
                "AmountInTransit": 0.0, "CurrencyCode": "EUR", "Description": s(&first, "Description"),
                "DueDate": first.get("DueDate").cloned().unwrap_or(Value::Null),
                "InvoiceDate": first.get("Date").cloned().unwrap_or(Value::Null),
                "InvoiceNumber": inv, "EntryNumber": first.get("EntryNumber").cloned().unwrap_or(Value::Null),
                "JournalCode": s(&first, "JournalCode"), "YourRef": first.get("YourRef").cloned().unwrap_or(Value::Null),
            }))
        })
        .collect()
}

fn days_overdue(due: &Value, today: NaiveDate) -> i64 {
    date_ms(due)
        .and_then(DateTime::from_timestamp_millis)
        .map_or(0, |d| (today - d.date_naive()).num_days())
}

/// Per relation: open amounts in age groups by days past due
/// (≤ 30 including not yet due, 31–60, 61–90, > 90).
pub fn aging(open: &[Row], today: NaiveDate) -> Vec<Row> {
    let mut per: BTreeMap<String, (Row, [f64; 4])> = BTreeMap::new();
    for item in open {
        let days = days_overdue(item.get("DueDate").unwrap_or(&Value::Null), today);
        let g = match days {
            ..=30 => 0,
            31..=60 => 1,
            61..=90 => 2,
            _ => 3,
        };
        let e = per
            .entry(s(item, "AccountId"))
            .or_insert((item.clone(), [0.0; 4]));
        e.1[g] += f(item, "Amount");
    }
    per.into_iter()
        .map(|(account, (sample, g))| {
            obj(json!({
                "AccountId": account, "AccountCode": s(&sample, "AccountCode"), "AccountName": s(&sample, "AccountName"),
                "AgeGroup1": 1, "AgeGroup1Amount": cents(g[0]), "AgeGroup1Description": "<= 30",
                "AgeGroup2": 2, "AgeGroup2Amount": cents(g[1]), "AgeGroup2Description": "31 - 60",
                "AgeGroup3": 3, "AgeGroup3Amount": cents(g[2]), "AgeGroup3Description": "61 - 90",
                "AgeGroup4": 4, "AgeGroup4Amount": cents(g[3]), "AgeGroup4Description": "> 90",
                "TotalAmount": cents(g.iter().sum()), "CurrencyCode": "EUR",
            }))
        })
        .collect()
}

/// `read/financial/RevenueListByYear?year=`: revenue (credit positive) per
/// period of the year, from revenue accounts.
pub fn revenue_by_year(table: &BTreeMap<String, Vec<Row>>, year: i32) -> Vec<Row> {
    let gl: BTreeMap<String, i64> = table
        .get("financial/GLAccounts")
        .map(|rows| rows.iter().map(|r| (s(r, "ID"), i(r, "Type"))).collect())
        .unwrap_or_default();
    let mut per = [0.0f64; 12];
    for l in table
        .get("financialtransaction/TransactionLines")
        .into_iter()
        .flatten()
    {
        if i(l, "FinancialYear") == i64::from(year)
            && gl.get(&s(l, "GLAccount")) == Some(&TYPE_REVENUE)
        {
            let p = (i(l, "FinancialPeriod") - 1).clamp(0, 11) as usize;
            per[p] -= f(l, "AmountDC");
        }
    }
    per.iter()
        .enumerate()
        .map(|(p, a)| obj(json!({"Year": year, "Period": p as i64 + 1, "Amount": cents(*a)})))
        .collect()
}
