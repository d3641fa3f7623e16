//! `get_purchase_contracts`: the supplier contracts (inkoopcontracten) a
//! business pays for. Exact Online's API has no purchase-contract register
//! (contracts exist only on the sales side, as subscriptions), so the tool
//! finds them where they show: in the booked purchase invoices, as a
//! supplier billing the same amount on a regular cadence (rent, leases,
//! licences, insurance). A price change (indexation) continues the
//! contract rather than starting a new one.

use std::collections::BTreeMap;

use boekhouding_core::exact::dates::parse_odata_day;
use boekhouding_core::exact::{Filter, Query};
use boekhouding_core::ports::Clock;
use boekhouding_core::storage::StorageError;
use chrono::{Months, NaiveDate};
use serde_json::{Value, json};

use super::exact::{Args, connect, division_schema, guid_arg, id_schema};
use super::money::{cents, euros};
use super::{Bookkeeping, Platform, ToolResult, read_only};

/// At most this many purchase invoices are read.
const CAP: usize = 10_000;

/// One booked purchase invoice as the detection sees it.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Invoice {
    pub supplier_id: String,
    pub supplier_name: String,
    pub date: NaiveDate,
    /// Including VAT.
    pub amount_cents: i64,
    pub vat_cents: i64,
    pub description: String,
}

/// A contract found in the invoices.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Contract {
    pub supplier_id: String,
    pub supplier_name: String,
    pub description: String,
    pub every_months: u32,
    /// The latest invoice's amounts.
    pub amount_cents: i64,
    pub net_cents: i64,
    /// The amount before the latest price change, if there was one.
    pub previous_amount_cents: Option<i64>,
    pub invoices: usize,
    pub first: NaiveDate,
    pub last: NaiveDate,
    pub next_expected: NaiveDate,
    pub active: bool,
}

/// The cadences recognised, with the gaps (in days) that count as one.
const CADENCES: &[(u32, i64, i64)] = &[(1, 26, 35), (3, 84, 98), (6, 174, 192), (12, 355, 376)];

fn cadence_name(every_months: u32) -> &'static str {
    match every_months {
        1 => "monthly",
        3 => "quarterly",
        6 => "half-yearly",
        _ => "yearly",
    }
}

/// A run of same-amount invoices of one supplier on one cadence.
struct Run {
    invoices: Vec<Invoice>,
    every_months: u32,
}

/// The cadence of a run of invoices (sorted by date), if at least 80 % of
/// its gaps fit one.
fn cadence_of(dates: &[NaiveDate]) -> Option<u32> {
    let gaps: Vec<i64> = dates.windows(2).map(|w| (w[1] - w[0]).num_days()).collect();
    if gaps.is_empty() {
        return None;
    }
    CADENCES.iter().find_map(|&(months, lo, hi)| {
        let fitting = gaps.iter().filter(|g| (lo..=hi).contains(*g)).count();
        (fitting * 5 >= gaps.len() * 4).then_some(months)
    })
}

/// Finds the contracts in purchase invoices: per supplier, invoices of
/// exactly the same amount on a regular cadence, at least `min_invoices`
/// of them; a later run at a changed price (within 25 %) that continues
/// on time is the same contract. Active: the next invoice is not more
/// than half a cadence overdue on `today`.
pub(super) fn detect(invoices: &[Invoice], today: NaiveDate, min_invoices: usize) -> Vec<Contract> {
    let mut by_supplier: BTreeMap<&str, Vec<&Invoice>> = BTreeMap::new();
    for i in invoices {
        by_supplier.entry(&i.supplier_id).or_default().push(i);
    }
    let mut found = Vec::new();
    for list in by_supplier.values() {
        let mut by_amount: BTreeMap<i64, Vec<Invoice>> = BTreeMap::new();
        for i in list {
            by_amount
                .entry(i.amount_cents)
                .or_default()
                .push((*i).clone());
        }
        let mut runs: Vec<Run> = by_amount
            .into_values()
            .filter_map(|mut inv| {
                inv.sort_by_key(|i| i.date);
                let dates: Vec<NaiveDate> = inv.iter().map(|i| i.date).collect();
                cadence_of(&dates).map(|every_months| Run {
                    invoices: inv,
                    every_months,
                })
            })
            .collect();
        runs.sort_by_key(|r| r.invoices.first().map(|i| i.date));
        // Join a run to the one before it when it continues it on time at
        // a changed price.
        let mut joined: Vec<(Run, Option<i64>)> = Vec::new();
        for run in runs {
            if let Some((prev, previous_amount)) = joined.last_mut()
                && prev.every_months == run.every_months
                && let (Some(a), Some(b)) = (prev.invoices.last(), run.invoices.first())
            {
                let gap = (b.date - a.date).num_days();
                let expected = i64::from(run.every_months) * 30;
                let change = (b.amount_cents - a.amount_cents).abs() * 4;
                if gap >= expected / 2 && gap <= expected * 3 / 2 && change <= a.amount_cents.abs()
                {
                    *previous_amount = Some(a.amount_cents);
                    prev.invoices.extend(run.invoices);
                    continue;
                }
            }
            joined.push((run, None));
        }
        for (run, previous_amount_cents) in joined {
            let (Some(first), Some(last)) = (run.invoices.first(), run.invoices.last()) else {
                continue;
            };
            if run.invoices.len() < min_invoices {
                continue;
            }
            let next_expected = last
                .date
                .checked_add_months(Months::new(run.every_months))
                .unwrap_or(last.date);
            let grace = i64::from(run.every_months) * 15;
            found.push(Contract {
                supplier_id: last.supplier_id.clone(),
                supplier_name: last.supplier_name.clone(),
                description: last.description.clone(),
                every_months: run.every_months,
                amount_cents: last.amount_cents,
                net_cents: last.amount_cents - last.vat_cents,
                previous_amount_cents,
                invoices: run.invoices.len(),
                first: first.date,
                last: last.date,
                next_expected,
                active: (today - next_expected).num_days() <= grace,
            });
        }
    }
    found.sort_by(|a, b| {
        annual(b)
            .cmp(&annual(a))
            .then_with(|| a.supplier_name.cmp(&b.supplier_name))
    });
    found
}

/// A contract's cost per year, excluding VAT, in cents.
fn annual(c: &Contract) -> i64 {
    c.net_cents * 12 / i64::from(c.every_months.max(1))
}

pub fn definition() -> Value {
    json!({
        "name": "get_purchase_contracts",
        "title": "Supplier contracts (inkoopcontracten)",
        "description": "The recurring supplier contracts the business pays for (inkoopcontracten, vaste lasten: rent/huur, leases, licences, insurance), with cadence, amount, yearly cost and the next expected invoice. Exact Online keeps no purchase-contract register, so they are found in the booked purchase invoices: a supplier billing the same amount monthly, quarterly, half-yearly or yearly, at least `min_invoices` times; a price change (indexation) continues the contract. Ended contracts (the next invoice is overdue by more than half a period) are shown with active_only=false.",
        "inputSchema": {"type": "object", "properties": {
            "division": division_schema(),
            "supplier_id": id_schema("Only this supplier's contracts (relation id, a GUID, from get_relations or search_relations)."),
            "active_only": {"type": "boolean", "default": true, "description": "Only contracts still running."},
            "months": {"type": "integer", "minimum": 6, "maximum": 36, "default": 24, "description": "How many months of purchase invoices to look at."},
            "min_invoices": {"type": "integer", "minimum": 3, "maximum": 12, "default": 3, "description": "Invoices of the same amount needed before a supplier counts as a contract."}
        }, "additionalProperties": false},
        "outputSchema": {"type": "object", "properties": {
            "division": {"type": "integer"}, "from_date": {"type": "string", "format": "date"},
            "contracts": {"type": "array", "items": {"type": "object", "properties": {
                "supplier_id": {"type": "string"}, "supplier_name": {"type": "string"}, "description": {"type": "string"},
                "cadence": {"type": "string", "enum": ["monthly", "quarterly", "half-yearly", "yearly"]},
                "every_months": {"type": "integer"},
                "amount": {"type": "number", "description": "Latest invoice, including VAT."},
                "amount_excl_vat": {"type": "number"},
                "previous_amount": {"type": ["number", "null"], "description": "Invoice amount before the latest price change."},
                "annual_cost_excl_vat": {"type": "number"},
                "invoices": {"type": "integer"},
                "first_invoice": {"type": "string", "format": "date"}, "last_invoice": {"type": "string", "format": "date"},
                "next_expected": {"type": "string", "format": "date"}, "active": {"type": "boolean"}
            }, "required": ["supplier_id", "supplier_name", "cadence", "every_months", "amount", "amount_excl_vat", "annual_cost_excl_vat", "invoices", "first_invoice", "last_invoice", "next_expected", "active"]}},
            "active_contracts": {"type": "integer"},
            "monthly_cost_excl_vat": {"type": "number", "description": "Of the active contracts."},
            "annual_cost_excl_vat": {"type": "number", "description": "Of the active contracts."},
            "truncated": {"type": "boolean"}
        }, "required": ["division", "from_date", "contracts", "active_contracts", "monthly_cost_excl_vat", "annual_cost_excl_vat", "truncated"]},
        "annotations": read_only(),
    })
}

pub(super) async fn get_purchase_contracts<P: Platform>(
    ctx: &Bookkeeping<'_, P>,
    args: &Value,
) -> Result<ToolResult, StorageError> {
    let parsed = (|| {
        let a = Args::parse(
            args,
            &[
                "division",
                "supplier_id",
                "active_only",
                "months",
                "min_invoices",
            ],
        )?;
        Ok::<_, ToolResult>((
            a.division()?,
            guid_arg(&a, "supplier_id")?,
            a.boolean("active_only")?.unwrap_or(true),
            a.int("months", 6, 36)?.unwrap_or(24),
            a.int("min_invoices", 3, 12)?.unwrap_or(3),
        ))
    })();
    let (division, supplier, active_only, months, min_invoices) = tool_try!(parsed);
    let today = ctx.platform.clock().now().date_naive();
    let from = today
        .checked_sub_months(Months::new(months as u32))
        .unwrap_or(today);
    let mut conn = tool_try!(connect(ctx, division).await);
    let mut filter = Filter::ge("EntryDate", from).and(Filter::eq("Type", 30i64));
    if let Some(s) = supplier {
        filter = filter.and(Filter::eq("Supplier", s));
    }
    let listed = tool_try!(
        conn.list(
            ctx,
            &Query::new(
                "purchaseentry/PurchaseEntries",
                &[
                    "EntryID",
                    "Supplier",
                    "SupplierName",
                    "EntryDate",
                    "AmountDC",
                    "VATAmountDC",
                    "Description",
                ],
            )
            .filter(Some(filter)),
            CAP,
        )
        .await
    );
    let text_of = |r: &serde_json::Map<String, Value>, k: &str| {
        r.get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .trim()
            .to_owned()
    };
    let invoices: Vec<Invoice> = listed
        .rows
        .iter()
        .filter_map(|r| {
            Some(Invoice {
                supplier_id: text_of(r, "Supplier").to_ascii_lowercase(),
                supplier_name: text_of(r, "SupplierName"),
                date: parse_odata_day(r.get("EntryDate")?.as_str()?).ok()?,
                amount_cents: cents(r.get("AmountDC")),
                vat_cents: cents(r.get("VATAmountDC")),
                description: text_of(r, "Description"),
            })
        })
        .filter(|i| !i.supplier_id.is_empty())
        .collect();
    let all = detect(&invoices, today, min_invoices as usize);
    let active: Vec<&Contract> = all.iter().filter(|c| c.active).collect();
    let annual_total: i64 = active.iter().map(|c| annual(c)).sum();
    let shown: Vec<&Contract> = all.iter().filter(|c| c.active || !active_only).collect();
    let contracts: Vec<Value> = shown
        .iter()
        .map(|c| {
            json!({
                "supplier_id": c.supplier_id, "supplier_name": c.supplier_name, "description": c.description,
                "cadence": cadence_name(c.every_months), "every_months": c.every_months,
                "amount": euros(c.amount_cents), "amount_excl_vat": euros(c.net_cents),
                "previous_amount": c.previous_amount_cents.map(euros),
                "annual_cost_excl_vat": euros(annual(c)), "invoices": c.invoices,
                "first_invoice": c.first.to_string(), "last_invoice": c.last.to_string(),
                "next_expected": c.next_expected.to_string(), "active": c.active,
            })
        })
        .collect();
    let mut text = format!(
        "{} running supplier contracts since {from}: € {:.2} a month, € {:.2} a year excluding VAT{}.",
        active.len(),
        annual_total as f64 / 1200.0,
        annual_total as f64 / 100.0,
        if listed.truncated {
            " (purchase invoices truncated)"
        } else {
            ""
        }
    );
    for c in &shown {
        text.push_str(&format!(
            "\n{}: {} € {:.2} ({}; {} invoices, last {}, next {}){}",
            c.supplier_name,
            cadence_name(c.every_months),
            c.amount_cents as f64 / 100.0,
            c.description,
            c.invoices,
            c.last,
            c.next_expected,
            if c.active { "" } else { " ended" }
        ));
    }
    Ok(ToolResult::Ok {
        structured: json!({
            "division": conn.admin.division_code, "from_date": from.to_string(), "contracts": contracts,
            "active_contracts": active.len(), "monthly_cost_excl_vat": json!(((annual_total as f64) / 12.0).round() / 100.0),
            "annual_cost_excl_vat": euros(annual_total), "truncated": listed.truncated,
        }),
        text,
        division: Some(conn.admin.division_code),
        exact_calls: conn.client.calls_made(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inv(supplier: &str, date: &str, euros: i64) -> Invoice {
        Invoice {
            supplier_id: supplier.into(),
            supplier_name: supplier.to_uppercase(),
            date: date.parse().unwrap(),
            amount_cents: euros * 121,
            vat_cents: euros * 21,
            description: format!("{supplier} {date}"),
        }
    }

    fn today() -> NaiveDate {
        "2026-11-20".parse().unwrap()
    }

    #[test]
    fn finds_monthly_and_quarterly_contracts_and_ignores_one_off_invoices() {
        let mut list = Vec::new();
        for m in 1..=11 {
            list.push(inv("rent", &format!("2026-{m:02}-01"), 2_000));
            list.push(inv("rent", &format!("2026-{m:02}-17"), 37 * m));
        }
        for m in [2, 5, 8, 11] {
            list.push(inv("insure", &format!("2026-{m:02}-15"), 300));
        }
        let found = detect(&list, today(), 3);
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(
            (found[0].supplier_id.as_str(), found[0].every_months),
            ("rent", 1)
        );
        assert_eq!(found[0].invoices, 11);
        assert_eq!(found[0].net_cents, 200_000);
        assert_eq!(found[0].next_expected.to_string(), "2026-12-01");
        assert!(found[0].active);
        assert_eq!(
            (found[1].supplier_id.as_str(), found[1].every_months),
            ("insure", 3)
        );
        assert_eq!(annual(&found[1]), 120_000);
    }

    #[test]
    fn a_price_change_continues_the_contract_and_a_stopped_one_is_ended() {
        let mut list = Vec::new();
        for m in 1..=6 {
            list.push(inv("rent", &format!("2026-{m:02}-01"), 2_000));
        }
        for m in 7..=11 {
            list.push(inv("rent", &format!("2026-{m:02}-01"), 2_060));
        }
        for m in 1..=5 {
            list.push(inv("lease", &format!("2026-{m:02}-10"), 500));
        }
        let found = detect(&list, today(), 3);
        let rent = found.iter().find(|c| c.supplier_id == "rent").unwrap();
        assert_eq!(rent.invoices, 11);
        assert_eq!(rent.amount_cents, 2_060 * 121);
        assert_eq!(rent.previous_amount_cents, Some(2_000 * 121));
        assert!(rent.active);
        let lease = found.iter().find(|c| c.supplier_id == "lease").unwrap();
        assert!(!lease.active, "last invoice in May, next due in June");
        assert_eq!(lease.last.to_string(), "2026-05-10");
    }

    #[test]
    fn too_few_or_irregular_invoices_are_no_contract() {
        let list = vec![
            inv("a", "2026-01-01", 100),
            inv("a", "2026-02-01", 100),
            inv("b", "2026-01-01", 100),
            inv("b", "2026-01-09", 100),
            inv("b", "2026-04-20", 100),
            inv("b", "2026-05-02", 100),
        ];
        assert!(detect(&list, today(), 3).is_empty());
        assert_eq!(detect(&list[..2], today(), 2).len(), 1);
    }
}
