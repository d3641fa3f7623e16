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

/// Every view, in a fixed order.
pub fn all() -> Vec<AppView> {
    vec![AppView {
        uri: PROFIT_LOSS,
        name: "profit-loss-view",
        title: "Profit and loss (winst- en verliesrekening)",
        description: "Interactive profit and loss: the months as bars beside last year's, the result as a line, the amounts per account; the year, periods and administration can be changed and a month's transactions opened.",
        html: view_html!("profit-loss"),
        tools: &["get_profit_loss"],
    }]
}
