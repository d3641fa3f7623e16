//! The books the REST API serves: per division, every entity table and
//! the reports computed from them. The server builds all companies when it
//! starts; the demo inside the MCP Worker builds a company the first time
//! a request names it (each company is generated independently).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use crate::data::{self, COMPANIES, Company, DataConfig, Row, SandboxUser};
use crate::reports;

/// Entity path → rows, for one division.
pub type Tables = BTreeMap<String, Vec<Row>>;

/// Every entity path the API serves (in any administration); an
/// administration without such records answers an empty list, any other
/// path 404, as on Exact.
pub const ENTITIES: &[&str] = &[
    "assets/Assets",
    "assets/DepreciationSchedules",
    "budget/Budgets",
    "crm/Accounts",
    "crm/Opportunities",
    "crm/Quotations",
    "documents/DocumentAttachments",
    "documents/Documents",
    "financial/ExchangeRates",
    "financial/GLAccounts",
    "financial/Journals",
    "financial/ReportingBalance",
    "financialtransaction/BankEntries",
    "financialtransaction/BankEntryLines",
    "financialtransaction/TransactionLines",
    "general/Currencies",
    "generaljournalentry/GeneralJournalEntries",
    "hrm/Costcenters",
    "hrm/Divisions",
    "inventory/StockPositions",
    "logistics/Items",
    "logistics/SalesItemPrices",
    "logistics/SupplierItem",
    "project/InvoiceTerms",
    "project/Projects",
    "project/TimeTransactions",
    "purchaseentry/PurchaseEntries",
    "purchaseorder/PurchaseOrders",
    "read/financial/AgingPayablesList",
    "read/financial/AgingReceivablesList",
    "read/financial/PayablesList",
    "read/financial/ReceivablesList",
    "salesentry/SalesEntries",
    "salesinvoice/SalesInvoiceLines",
    "salesinvoice/SalesInvoices",
    "salesorder/SalesOrders",
    "subscription/SubscriptionLines",
    "subscription/Subscriptions",
    "system/Divisions",
    "vat/VATCodes",
];

/// Bulk and sync endpoints serve the same rows as their regular one.
const ALIASES: &[(&str, &str)] = &[
    (
        "bulk/Financial/TransactionLines",
        "financialtransaction/TransactionLines",
    ),
    (
        "sync/Financial/TransactionLines",
        "financialtransaction/TransactionLines",
    ),
    ("bulk/Financial/GLAccounts", "financial/GLAccounts"),
    ("bulk/CRM/Accounts", "crm/Accounts"),
];

/// The data behind one Exact site.
pub struct Books {
    /// The site's origin; envelopes' `__metadata.uri`, `__next` and
    /// attachment URLs point here.
    pub base_url: String,
    pub config: DataConfig,
    pub users: Vec<SandboxUser>,
    tables: BTreeMap<i64, OnceLock<Tables>>,
}

impl std::fmt::Debug for Books {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Books")
            .field("base_url", &self.base_url)
            .field("built", &self.built())
            .finish()
    }
}

impl Books {
    /// Books whose companies are generated on first use.
    pub fn lazy(config: DataConfig, base_url: impl Into<String>) -> Books {
        Books {
            base_url: base_url.into(),
            config,
            users: data::users(),
            tables: COMPANIES.iter().map(|c| (c.0, OnceLock::new())).collect(),
        }
    }

    /// Books over companies generated already; their entities move here.
    #[cfg_attr(not(feature = "server"), allow(dead_code))]
    pub(crate) fn from_companies(
        config: DataConfig,
        base_url: impl Into<String>,
        users: Vec<SandboxUser>,
        companies: &mut [Company],
    ) -> Books {
        let today = config.today;
        Books {
            base_url: base_url.into(),
            config,
            users,
            tables: companies
                .iter_mut()
                .map(|c| {
                    (
                        c.division,
                        OnceLock::from(reports::company_tables(c, today)),
                    )
                })
                .collect(),
        }
    }

    /// A division's tables, generated now if this is the first request for
    /// it; `None` for a division this site does not have.
    pub fn tables(&self, division: i64) -> Option<&Tables> {
        let cell = self.tables.get(&division)?;
        Some(cell.get_or_init(|| {
            data::generate_company(&self.config, division)
                .map(|mut c| reports::company_tables(&mut c, self.config.today))
                .unwrap_or_default()
        }))
    }

    /// The rows of an entity path in a division (bulk/sync paths resolve
    /// to their regular entity).
    pub fn rows(&self, division: i64, path: &str) -> Option<&[Row]> {
        let path = ALIASES
            .iter()
            .find(|(alias, _)| *alias == path)
            .map_or(path, |(_, source)| source);
        self.tables(division)?.get(path).map(Vec::as_slice)
    }

    /// Whether the API serves this path at all.
    pub fn is_entity(path: &str) -> bool {
        ENTITIES.contains(&path) || ALIASES.iter().any(|(alias, _)| *alias == path)
    }

    pub fn divisions(&self) -> impl Iterator<Item = i64> + '_ {
        self.tables.keys().copied()
    }

    /// Divisions generated so far.
    pub fn built(&self) -> Vec<i64> {
        self.tables
            .iter()
            .filter(|(_, t)| t.get().is_some())
            .map(|(d, _)| *d)
            .collect()
    }

    pub fn company_name(division: i64) -> Option<&'static str> {
        COMPANIES.iter().find(|c| c.0 == division).map(|c| c.1)
    }

    pub fn user(&self, user_id: &str) -> Option<&SandboxUser> {
        self.users.iter().find(|u| u.user_id == user_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> DataConfig {
        crate::data::DataConfig {
            seed: 7,
            size: crate::data::Size::Small,
            today: chrono::NaiveDate::from_ymd_opt(2026, 11, 20).unwrap(),
            closed_years: crate::data::ClosedYears::All,
        }
    }

    #[test]
    fn the_entity_list_is_exactly_what_the_companies_serve() {
        let books = Books::lazy(config(), "http://x");
        let mut served: Vec<&str> = COMPANIES
            .iter()
            .flat_map(|c| books.tables(c.0).unwrap().keys().map(String::as_str))
            .collect();
        served.sort_unstable();
        served.dedup();
        assert_eq!(served, ENTITIES);
    }

    #[test]
    fn lazy_books_build_one_company_at_a_time_and_equal_eager_ones() {
        let books = Books::lazy(config(), "http://x");
        assert!(books.built().is_empty());
        let lines = books
            .rows(1_000_002, "bulk/Financial/TransactionLines")
            .unwrap()
            .to_vec();
        assert_eq!(books.built(), vec![1_000_002]);
        let mut all = crate::data::generate(&config());
        let eager =
            Books::from_companies(config(), "http://x", all.users.clone(), &mut all.companies);
        assert_eq!(
            eager
                .rows(1_000_002, "financialtransaction/TransactionLines")
                .unwrap(),
            lines.as_slice()
        );
        assert!(books.rows(42, "crm/Accounts").is_none());
    }
}
