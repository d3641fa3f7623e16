//! The sandbox's books tie out, read over HTTP through the core client
//! (so paging is part of what is proven): per GL account the transaction
//! lines sum to the reporting balance (per transaction type too, so a
//! closed year's opening entry stays apart), every year's balance sums to zero,
//! open receivables equal booked sales invoices minus their payments, aging
//! buckets add up to the open items, and revenue per year matches the
//! revenue accounts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use boekhouding_core::exact::{Division, ExactClient, Query};
use common::default_env;
use futures::executor::block_on;
use serde_json::Value;

fn cents(x: f64) -> i64 {
    (x * 100.0).round() as i64
}

fn s(r: &serde_json::Map<String, Value>, k: &str) -> String {
    r.get(k).and_then(Value::as_str).unwrap_or("").to_owned()
}

fn f(r: &serde_json::Map<String, Value>, k: &str) -> f64 {
    r.get(k).and_then(Value::as_f64).unwrap_or(0.0)
}

#[test]
fn every_demo_company_ties_out() {
    let env = default_env();
    // Each company once, read by the first login that sees it (several
    // logins share companies; reading one twice would only spend Exact's
    // per-division minute budget).
    let mut seen = std::collections::BTreeSet::new();
    let companies: Vec<(String, i64)> = env
        .sandbox
        .dataset()
        .users
        .iter()
        .map(|u| (u.username.clone(), u.divisions.clone()))
        .flat_map(|(u, ds)| ds.into_iter().map(move |d| (u.clone(), d)))
        .filter(|(_, d)| seen.insert(*d))
        .collect();
    assert!(companies.len() >= 4, "four demo companies");
    let mut tokens = BTreeMap::new();
    for (user, division) in companies {
        let token = tokens
            .entry(user.clone())
            .or_insert_with(|| env.connect(&user).access_token)
            .clone();
        let client = ExactClient::new(&env.http, &env.clock, env.sandbox.base_url(), token);
        let d = Division(division);
        let all = |path: &'static str| {
            block_on(client.list(d, &Query::new(path, &[]), usize::MAX))
                .unwrap()
                .rows
        };

        let lines = all("financialtransaction/TransactionLines");
        let balance = all("financial/ReportingBalance");
        let gl = all("financial/GLAccounts");
        assert!(lines.len() > 100, "{division}: {} lines", lines.len());

        // Transaction lines per account/year/period/type/status = reporting
        // balance.
        type Key = (String, i64, i64, i64, i64);
        let mut from_lines: BTreeMap<Key, i64> = BTreeMap::new();
        for l in &lines {
            let k = (
                s(l, "GLAccount"),
                l["FinancialYear"].as_i64().unwrap(),
                l["FinancialPeriod"].as_i64().unwrap(),
                l["Type"].as_i64().unwrap(),
                l["Status"].as_i64().unwrap_or(50),
            );
            *from_lines.entry(k).or_default() += cents(f(l, "AmountDC"));
        }
        let from_report: BTreeMap<Key, i64> = balance
            .iter()
            .map(|b| {
                (
                    (
                        s(b, "GLAccount"),
                        b["ReportingYear"].as_i64().unwrap(),
                        b["ReportingPeriod"].as_i64().unwrap(),
                        b["Type"].as_i64().unwrap(),
                        b["Status"].as_i64().unwrap_or(50),
                    ),
                    cents(f(b, "Amount")),
                )
            })
            .collect();
        assert_eq!(from_lines, from_report, "division {division}");

        // Double entry: every entry and every year balances.
        let mut per_entry: BTreeMap<String, i64> = BTreeMap::new();
        for l in &lines {
            *per_entry.entry(s(l, "EntryID")).or_default() += cents(f(l, "AmountDC"));
        }
        assert!(
            per_entry.values().all(|v| *v == 0),
            "division {division}: unbalanced entries"
        );

        // Open receivables = booked sales invoices minus the payments on them.
        let type_of: BTreeMap<String, i64> = gl
            .iter()
            .map(|g| (s(g, "ID"), g["Type"].as_i64().unwrap_or(0)))
            .collect();
        let sales = all("salesentry/SalesEntries");
        assert!(!sales.is_empty());
        let mut expected: BTreeMap<(String, i64), i64> = BTreeMap::new();
        for e in &sales {
            let inv = e["InvoiceNumber"].as_i64().unwrap();
            *expected.entry((s(e, "Customer"), inv)).or_default() += cents(f(e, "AmountDC"));
        }
        for l in &lines {
            let is_payment =
                l["Type"].as_i64() == Some(40) && type_of.get(&s(l, "GLAccount")) == Some(&20);
            if let (true, Some(inv)) = (is_payment, l.get("InvoiceNumber").and_then(Value::as_i64))
            {
                *expected.entry((s(l, "Account"), inv)).or_default() += cents(f(l, "AmountDC"));
            }
        }
        expected.retain(|_, v| *v != 0);
        let receivables = all("read/financial/ReceivablesList");
        let open: BTreeMap<(String, i64), i64> = receivables
            .iter()
            .map(|r| {
                (
                    (s(r, "AccountId"), r["InvoiceNumber"].as_i64().unwrap()),
                    cents(f(r, "Amount")),
                )
            })
            .collect();
        assert_eq!(open, expected, "division {division}: receivables");
        assert!(!open.is_empty(), "some invoices are open");

        // Aging adds up per relation.
        let aging = all("read/financial/AgingReceivablesList");
        let total_aging: i64 = aging.iter().map(|a| cents(f(a, "TotalAmount"))).sum();
        assert_eq!(total_aging, open.values().sum::<i64>());
        for a in &aging {
            let parts: i64 = (1..=4)
                .map(|g| cents(f(a, &format!("AgeGroup{g}Amount"))))
                .sum();
            assert_eq!(parts, cents(f(a, "TotalAmount")));
        }

        // Revenue per year = credit on revenue accounts.
        for year in [2025, 2026] {
            let q =
                Query::new("read/financial/RevenueListByYear", &[]).param("year", year.to_string());
            let rev = block_on(client.list(d, &q, 100)).unwrap().rows;
            let reported: i64 = rev.iter().map(|r| cents(f(r, "Amount"))).sum();
            let booked: i64 = lines
                .iter()
                .filter(|l| {
                    l["FinancialYear"].as_i64() == Some(year)
                        && type_of.get(&s(l, "GLAccount")) == Some(&110)
                })
                .map(|l| -cents(f(l, "AmountDC")))
                .sum();
            assert_eq!(reported, booked, "division {division} revenue {year}");
            if year == 2025 {
                assert!(reported > 0, "a year of sales");
            }
        }
    }
}
