//! Balances carried forward to the end of a period: the one place every
//! tool that reports a position (balance sheet, trial balance, cash in the
//! snapshot and the cash-flow forecast, suspense balances in the
//! period-close check, and through the balance sheet the consolidated
//! report) gets its figures, so they cannot disagree.
//!
//! A balance-sheet account's position is not the sum of every year booked:
//! when a financial year is closed, Exact books that year's closing
//! balances (its result moved into equity) as an opening-balance entry,
//! transaction type 10, in the next year, and summing across that boundary
//! counts them twice. The position at the end of period P of year Y is
//! therefore the reporting balance from the latest year at or before Y
//! that holds an opening-balance entry on a balance-sheet account (from the
//! first year booked when none does) up to and including (Y, P). The
//! opening entry's period (0 after a year-end closing, 1 when entered by
//! hand on the first day) does not matter: every period up to P counts.

use std::collections::BTreeMap;

use boekhouding_core::exact::{Cmp, Filter, Query};
use serde_json::{Map, Value};

use super::exact::Connected;
use super::money::cents;
use super::{Bookkeeping, Platform, ToolResult};

/// Exact's transaction type of an opening-balance entry.
pub(super) const OPENING_BALANCE: i64 = 10;

/// Enough for many years of a large chart of accounts per period.
const CAP: usize = 50_000;

/// One row of `financial/ReportingBalance`, the fields used here.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct BalanceRow {
    pub gl_account: String,
    pub code: String,
    pub description: String,
    /// `B` balance sheet, `W` profit and loss.
    pub balance_type: String,
    pub year: i64,
    pub period: i64,
    /// The transaction type of the grouped lines (10 opening balance).
    pub kind: i64,
    pub amount: i64,
    pub debit: i64,
    pub credit: i64,
}

impl BalanceRow {
    fn from_exact(r: &Map<String, Value>) -> BalanceRow {
        let text = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        let int = |k: &str| r.get(k).and_then(Value::as_i64).unwrap_or(0);
        BalanceRow {
            gl_account: text("GLAccount").to_ascii_lowercase(),
            code: text("GLAccountCode").trim().to_owned(),
            description: text("GLAccountDescription"),
            balance_type: text("BalanceType"),
            year: int("ReportingYear"),
            period: int("ReportingPeriod"),
            kind: int("Type"),
            amount: cents(r.get("Amount")),
            debit: cents(r.get("AmountDebit")),
            credit: cents(r.get("AmountCredit")),
        }
    }

    fn opens(&self) -> bool {
        self.kind == OPENING_BALANCE && self.balance_type == "B"
    }
}

/// One account at the end of the period, in cents (debit positive).
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Carried {
    pub description: String,
    /// `B` balance sheet, `W` profit and loss.
    pub balance_type: String,
    /// Exact's GL account type (10 cash, 12 bank, …), when the caller
    /// passed the chart's types.
    pub gl_type: i64,
    /// The balance at the start of the year: the years carried forward
    /// plus the year's own opening-balance entry. Zero for profit-and-loss
    /// accounts, which start every year at zero.
    pub opening: i64,
    /// The year's other movements up to the period.
    pub debit: i64,
    pub credit: i64,
}

impl Carried {
    /// The balance at the end of the period.
    pub fn balance(&self) -> i64 {
        self.opening + self.debit - self.credit
    }

    pub fn is_balance_sheet(&self) -> bool {
        self.balance_type != "W"
    }
}

/// The books at the end of period `period` of `year`.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Position {
    pub year: i64,
    pub period: i64,
    /// The first year summed: the latest year at or before `year` with an
    /// opening-balance entry, or `None` when no year has one (every year
    /// booked is summed).
    pub from_year: Option<i64>,
    /// Per GL account code: balance-sheet accounts carried forward, and
    /// profit-and-loss accounts for `year` up to `period`.
    pub accounts: BTreeMap<String, Carried>,
    /// Profit-and-loss amounts (debit positive, so a profit is negative)
    /// of the years from `from_year` before `year`: results no opening
    /// entry has moved into equity yet.
    pub prior_pl: i64,
    pub truncated: bool,
}

impl Position {
    /// The result of the earlier years not yet moved into equity (a
    /// profit positive).
    pub fn prior_result(&self) -> i64 {
        -self.prior_pl
    }

    /// The result of `year` up to `period` (a profit positive).
    pub fn current_result(&self) -> i64 {
        -self
            .accounts
            .values()
            .filter(|a| !a.is_balance_sheet())
            .map(Carried::balance)
            .sum::<i64>()
    }

    /// The summed balance of the balance-sheet accounts of these GL types.
    pub fn of_types(&self, types: &[i64]) -> i64 {
        self.accounts
            .values()
            .filter(|a| a.is_balance_sheet() && types.contains(&a.gl_type))
            .map(Carried::balance)
            .sum()
    }

    /// Folds reporting-balance rows into the position at the end of
    /// (`year`, `period`); rows outside the carried window are ignored, so
    /// any superset of it may be passed.
    pub fn fold(
        rows: &[BalanceRow],
        year: i64,
        period: i64,
        types: &BTreeMap<String, i64>,
    ) -> Position {
        let in_range = |r: &BalanceRow| r.year < year || (r.year == year && r.period <= period);
        let from_year = rows
            .iter()
            .filter(|r| r.opens() && in_range(r))
            .map(|r| r.year)
            .max();
        let mut p = Position {
            year,
            period,
            from_year,
            ..Position::default()
        };
        for r in rows
            .iter()
            .filter(|r| in_range(r) && from_year.is_none_or(|f| r.year >= f))
        {
            let pl = r.balance_type == "W";
            if pl && r.year < year {
                p.prior_pl += r.amount;
                continue;
            }
            let a = p.accounts.entry(r.code.clone()).or_default();
            a.description.clone_from(&r.description);
            a.balance_type.clone_from(&r.balance_type);
            a.gl_type = types.get(&r.gl_account).copied().unwrap_or(a.gl_type);
            if !pl && (r.year < year || r.kind == OPENING_BALANCE) {
                a.opening += r.amount;
            } else {
                a.debit += r.debit;
                a.credit += r.credit;
            }
        }
        p
    }
}

/// The latest year at or before `year` whose books hold an opening-balance
/// entry on a balance-sheet account, if any: one row from Exact. It only
/// narrows the second call: [`Position::fold`] finds the boundary again in
/// the rows it gets, so an earlier year here would cost pages, never a
/// wrong figure.
async fn opening_year<P: Platform>(
    ctx: &Bookkeeping<'_, P>,
    conn: &mut Connected<'_, P>,
    year: i64,
) -> Result<Option<i64>, ToolResult> {
    let q = Query::new("financial/ReportingBalance", &["ReportingYear"])
        .filter(Some(
            Filter::eq("Type", OPENING_BALANCE)
                .and(Filter::eq("BalanceType", "B"))
                .and(Filter::cmp("ReportingYear", Cmp::Le, year)),
        ))
        .orderby("ReportingYear desc")
        .top(1);
    let listed = conn.list(ctx, &q, 1).await?;
    Ok(listed
        .rows
        .first()
        .and_then(|r| r.get("ReportingYear"))
        .and_then(Value::as_i64))
}

/// The position at the end of period `period` of `year`: two Exact calls,
/// one for the year to start from and one for the reporting balance from
/// then on. `types` (GL account id → type, lower case ids) fills
/// [`Carried::gl_type`]; pass an empty map when the type is not needed.
pub(super) async fn position_at<P: Platform>(
    ctx: &Bookkeeping<'_, P>,
    conn: &mut Connected<'_, P>,
    year: i64,
    period: i64,
    types: &BTreeMap<String, i64>,
) -> Result<Position, ToolResult> {
    let from = opening_year(ctx, conn, year).await?;
    let up_to =
        Filter::eq("ReportingYear", year).and(Filter::cmp("ReportingPeriod", Cmp::Le, period));
    let earlier = match from {
        Some(f) if f == year => None,
        Some(f) => Some(Filter::cmp("ReportingYear", Cmp::Ge, f).and(Filter::cmp(
            "ReportingYear",
            Cmp::Lt,
            year,
        ))),
        None => Some(Filter::cmp("ReportingYear", Cmp::Lt, year)),
    };
    let filter = match earlier {
        Some(e) => e.or(up_to),
        None => up_to,
    };
    let q = Query::new(
        "financial/ReportingBalance",
        &[
            "GLAccount",
            "GLAccountCode",
            "GLAccountDescription",
            "BalanceType",
            "ReportingYear",
            "ReportingPeriod",
            "Type",
            "Amount",
            "AmountDebit",
            "AmountCredit",
        ],
    )
    .filter(Some(filter));
    let listed = conn.list(ctx, &q, CAP).await?;
    let rows: Vec<BalanceRow> = listed.rows.iter().map(BalanceRow::from_exact).collect();
    let types: BTreeMap<String, i64> = types
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), *v))
        .collect();
    let mut p = Position::fold(&rows, year, period, &types);
    p.truncated = listed.truncated;
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(code: &str, bt: &str, year: i64, period: i64, kind: i64, amount: i64) -> BalanceRow {
        BalanceRow {
            gl_account: format!("id-{code}"),
            code: code.into(),
            description: code.into(),
            balance_type: bt.into(),
            year,
            period,
            kind,
            amount,
            debit: amount.max(0),
            credit: (-amount).max(0),
        }
    }

    /// Three years: 2024 opened by hand, 2024 closed into 2025's opening
    /// entry (period 0), 2025 not closed.
    fn books() -> Vec<BalanceRow> {
        vec![
            // 2024: opening 1,000 bank against equity, then a sale of 300.
            row("1100", "B", 2024, 1, 10, 1_000),
            row("0500", "B", 2024, 1, 10, -1_000),
            row("1100", "B", 2024, 5, 40, 300),
            row("8000", "W", 2024, 5, 20, -300),
            // 2025's opening entry: bank 1,300, equity 1,000, result 300.
            row("1100", "B", 2025, 0, 10, 1_300),
            row("0500", "B", 2025, 0, 10, -1_000),
            row("0510", "B", 2025, 0, 10, -300),
            // 2025: costs of 100; 2026: a sale of 50.
            row("4000", "W", 2025, 3, 90, 100),
            row("1100", "B", 2025, 3, 40, -100),
            row("1100", "B", 2026, 2, 40, 50),
            row("8000", "W", 2026, 2, 20, -50),
        ]
    }

    #[test]
    fn a_closed_year_is_counted_once() {
        let p = Position::fold(&books(), 2025, 12, &BTreeMap::new());
        assert_eq!(p.from_year, Some(2025));
        assert_eq!(p.accounts["1100"].balance(), 1_200);
        assert_eq!(p.accounts["1100"].opening, 1_300);
        assert_eq!(p.accounts["0510"].balance(), -300);
        assert_eq!((p.prior_result(), p.current_result()), (0, -100));
    }

    #[test]
    fn a_date_inside_the_closed_year_sums_that_year_alone() {
        let p = Position::fold(&books(), 2024, 6, &BTreeMap::new());
        assert_eq!(p.from_year, Some(2024));
        assert_eq!(p.accounts["1100"].balance(), 1_300);
        assert_eq!(
            (p.accounts["1100"].opening, p.accounts["1100"].debit),
            (1_000, 300)
        );
        assert_eq!(p.current_result(), 300);
        assert!(!p.accounts.contains_key("0510"));
    }

    #[test]
    fn a_year_after_an_open_year_carries_it_forward() {
        let p = Position::fold(&books(), 2026, 12, &BTreeMap::new());
        assert_eq!(p.from_year, Some(2025));
        assert_eq!(p.accounts["1100"].opening, 1_200);
        assert_eq!(p.accounts["1100"].balance(), 1_250);
        assert_eq!((p.prior_result(), p.current_result()), (-100, 50));
        // Assets equal liabilities, equity and both results.
        let sheet: i64 = p
            .accounts
            .values()
            .filter(|a| a.is_balance_sheet())
            .map(Carried::balance)
            .sum();
        assert_eq!(sheet, p.prior_result() + p.current_result());
    }

    #[test]
    fn books_without_any_opening_entry_sum_every_year() {
        let rows: Vec<BalanceRow> = books().into_iter().filter(|r| r.kind != 10).collect();
        let p = Position::fold(&rows, 2026, 12, &BTreeMap::new());
        assert_eq!(p.from_year, None);
        assert_eq!(p.accounts["1100"].balance(), 250);
        assert_eq!(p.prior_result(), 200);
    }

    #[test]
    fn gl_types_come_from_the_chart() {
        let types = BTreeMap::from([("id-1100".to_owned(), 12)]);
        let p = Position::fold(&books(), 2025, 12, &types);
        assert_eq!(p.of_types(&[10, 12]), 1_200);
    }
}
