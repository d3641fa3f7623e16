//! Deterministic demo data: four Dutch companies with more than a year of
//! books that tie out. Everything the sandbox serves comes from here or is
//! computed from it (see `reports.rs`).
//!
//! Rows are JSON objects with Exact Online's own field names, dates as
//! `/Date(ms)/` strings (Exact's local wall-clock time, midnight for
//! date-only fields) and amounts as JSON numbers.

use std::collections::BTreeMap;

use chrono::NaiveDate;

/// One entity row, exactly as Exact would serialise it (minus
/// `__metadata`, which the server adds).
pub type Row = serde_json::Map<String, serde_json::Value>;

/// How much data to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    /// For tests: enough rows to cross page boundaries (> 60 per list).
    Small,
    /// For benchmarks: several thousand documents per company.
    Large,
}

#[derive(Debug, Clone)]
pub struct DataConfig {
    pub seed: u64,
    pub size: Size,
    /// The sandbox's "today": books run from 1 January of the previous year
    /// up to this date; aging and "open" are relative to it.
    pub today: NaiveDate,
    /// Which companies have closed their financial years before today's.
    pub closed_years: ClosedYears,
}

/// Which companies have closed (year-end processed) every financial year
/// before today's. Closing a year books its balance-sheet balances, with
/// the year's result moved into equity (`0510 Onverdeelde winst`), as an
/// opening-balance entry (transaction type 10) in period 0 of the next
/// year, as Exact does; profit-and-loss accounts start the new year at
/// zero. Closing adds only that entry: every other row of a company is the
/// same whichever option is chosen, so the same books can be compared
/// with and without a closed year.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClosedYears {
    /// No company has closed a year: each has one opening entry, on the
    /// first day of its books.
    None,
    /// The default: the IT consultancy (1 000 002) has closed the previous
    /// year, the other companies have not.
    Demo,
    /// Every company has closed every year before today's.
    All,
}

impl ClosedYears {
    /// The company whose years [`ClosedYears::Demo`] closes.
    pub const DEMO_DIVISION: i64 = 1_000_002;

    /// Whether `division` has closed its years before today's.
    pub fn closes(self, division: i64) -> bool {
        match self {
            ClosedYears::None => false,
            ClosedYears::Demo => division == Self::DEMO_DIVISION,
            ClosedYears::All => true,
        }
    }
}

impl std::str::FromStr for ClosedYears {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(ClosedYears::None),
            "demo" => Ok(ClosedYears::Demo),
            "all" => Ok(ClosedYears::All),
            other => Err(format!(
                "closed years: expected none, demo or all, not {other:?}"
            )),
        }
    }
}

/// A login of the sandbox's OAuth page, and the divisions it may reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxUser {
    /// Exact `UserID` (lower-case GUID).
    pub user_id: String,
    pub username: String,
    pub password: String,
    pub full_name: String,
    pub email: String,
    /// Divisions (company codes) this user may access.
    pub divisions: Vec<i64>,
    pub current_division: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Industry {
    Bakery,
    ItConsultancy,
    LawFirm,
    Construction,
}

/// One Exact administration (division) and all its entities.
#[derive(Debug, Clone)]
pub struct Company {
    pub division: i64,
    pub name: String,
    pub industry: Industry,
    /// Entity path after `/api/v1/{division}/` (e.g. `crm/Accounts`,
    /// `financialtransaction/TransactionLines`) → rows. A running sandbox
    /// moves them into its served books: read them with `Sandbox::rows`.
    pub entities: BTreeMap<&'static str, Vec<Row>>,
    /// The supplier contracts planted in the purchase invoices (Exact has
    /// no purchase-contract entity; tools find them in the invoices).
    pub recurring_purchases: Vec<RecurringPurchase>,
}

/// A supplier that bills the same amount on a fixed day every
/// `every_months` months, from `from_month` to `to_month` (both as
/// `year * 12 + month`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecurringPurchase {
    pub supplier_id: String,
    pub supplier_name: String,
    pub description: &'static str,
    pub gl: &'static str,
    /// Per invoice, excluding 21 % VAT.
    pub net_cents: i64,
    pub every_months: u32,
    pub day: u32,
    pub from_month: i32,
    pub to_month: i32,
}

#[derive(Debug, Clone)]
pub struct Dataset {
    pub users: Vec<SandboxUser>,
    pub companies: Vec<Company>,
    pub config: DataConfig,
}

impl Dataset {
    /// The login with this username.
    pub fn login(&self, username: &str) -> Option<&SandboxUser> {
        self.users.iter().find(|u| u.username == username)
    }
}

mod books;

pub use books::{COMPANIES, generate, generate_company, users};
