//! The MCP Apps views of the catalogue: which tools each renders, and the
//! HTML `build.rs` bundled from `views/` (a client that did not negotiate
//! the extension never sees them).

use crate::apps::AppView;

/// A view's document, as `build.rs` wrote it.
macro_rules! view_html {
    ($name:literal) => {
        include_str!(concat!(env!("OUT_DIR"), "/views/", $name, ".html"))
    };
}

/// The `ui://` address of a view.
macro_rules! view_uri {
    ($name:literal) => {
        concat!("ui://praat-met-je-boekhouding/", $name)
    };
}

pub const PROFIT_LOSS: &str = view_uri!("profit-loss");
pub const BALANCE_SHEET: &str = view_uri!("balance-sheet");
pub const AGING: &str = view_uri!("aging");
pub const CASHFLOW: &str = view_uri!("cashflow");
pub const CONSOLIDATED: &str = view_uri!("consolidated");
pub const PERIOD_CLOSE: &str = view_uri!("period-close");
pub const SNAPSHOT: &str = view_uri!("snapshot");

/// Every view, in a fixed order; none when they were not built (the build
/// script found no esbuild and left them empty).
pub fn all() -> Vec<AppView> {
    let views = vec![
        AppView {
            uri: PROFIT_LOSS,
            name: "profit-loss-view",
            title: "Profit and loss (winst- en verliesrekening)",
            description: "Interactive profit and loss: the months as bars beside last year's, the result as a line, the amounts per account; the year, periods and administration can be changed and a month's transactions opened.",
            html: view_html!("profit-loss"),
            tools: &["get_profit_loss"],
        },
        AppView {
            uri: BALANCE_SHEET,
            name: "balance-sheet-view",
            title: "Balance sheet (balans)",
            description: "Assets against liabilities and equity per account at the end of a month, with the totals; another month or administration can be chosen.",
            html: view_html!("balance-sheet"),
            tools: &["get_balance_sheet"],
        },
        AppView {
            uri: AGING,
            name: "aging-view",
            title: "Aging (ouderdomsanalyse)",
            description: "Open receivables and payables by days past due as bars, the relations owing the most, and the net position.",
            html: view_html!("aging"),
            tools: &[
                "get_aging_receivables",
                "get_aging_payables",
                "get_aging_analysis",
            ],
        },
        AppView {
            uri: CASHFLOW,
            name: "cashflow-view",
            title: "Cash flow forecast (liquiditeitsprognose)",
            description: "Expected receipts and payments per week and the bank balance after each week, up to a horizon of 30, 60 or 90 days.",
            html: view_html!("cashflow"),
            tools: &["get_cashflow_forecast"],
        },
        AppView {
            uri: CONSOLIDATED,
            name: "consolidated-view",
            title: "Consolidated report (geconsolideerd)",
            description: "The profit and loss or balance sheet of several administrations side by side, one column each, and the total; likely intercompany relations flagged.",
            html: view_html!("consolidated"),
            tools: &["get_consolidated_report"],
        },
        AppView {
            uri: PERIOD_CLOSE,
            name: "period-close-view",
            title: "Period close check (periode-afsluiting)",
            description: "A checklist of what blocks closing a month, with counts, amounts and the details of each item.",
            html: view_html!("period-close"),
            tools: &["get_period_close_check"],
        },
        AppView {
            uri: SNAPSHOT,
            name: "snapshot-view",
            title: "Financial snapshot (financieel overzicht)",
            description: "The year's revenue and result so far, cash, receivables with the overdue part, and payables as key figures.",
            html: view_html!("snapshot"),
            tools: &["get_financial_snapshot"],
        },
    ];
    views.into_iter().filter(|v| !v.html.is_empty()).collect()
}
