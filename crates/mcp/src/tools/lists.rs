//! Plain list tools, declared rather than hand-written: each is an Exact
//! entity, the fields it returns (with their types, so the output schema
//! and the conversion come from one place), its filters and its sort.
//! One generic implementation pages through Exact with a cap and says
//! `truncated`, exactly like the hand-written tools.

use boekhouding_core::exact::dates::parse_odata_day;
use boekhouding_core::exact::{Filter, Query};
use boekhouding_core::storage::StorageError;
use serde_json::{Map, Value, json};

use super::exact::{Args, connect, division_schema};
use super::money::round_cents;
use super::{Bookkeeping, Platform, ToolResult, read_only};

/// How a field is converted and described.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    Int,
    /// Euros, rounded to cents.
    Money,
    Number,
    Bool,
    /// `/Date(ms)/` → `YYYY-MM-DD` (or null).
    Date,
}

#[derive(Debug)]
pub struct Field {
    pub exact: &'static str,
    pub out: &'static str,
    pub kind: Kind,
}

const fn f(exact: &'static str, out: &'static str, kind: Kind) -> Field {
    Field { exact, out, kind }
}

/// A filter argument.
#[derive(Debug)]
pub enum ArgSpec {
    /// `from_date` / `to_date` on a date field.
    DateRange { field: &'static str },
    /// An enum argument mapped to an integer code of a field.
    Choice {
        arg: &'static str,
        field: &'static str,
        options: &'static [(&'static str, i64)],
        description: &'static str,
    },
    /// A whole number compared for equality.
    IntEq {
        arg: &'static str,
        field: &'static str,
        min: i64,
        max: i64,
        description: &'static str,
    },
    /// A short code compared for equality (e.g. a currency).
    CodeEq {
        arg: &'static str,
        field: &'static str,
        max_len: usize,
        description: &'static str,
    },
    /// Free text matched inside a field.
    Contains {
        arg: &'static str,
        field: &'static str,
        description: &'static str,
    },
}

#[derive(Debug)]
pub struct ListTool {
    pub name: &'static str,
    pub title: &'static str,
    pub description: &'static str,
    pub entity: &'static str,
    /// The key of the array in the result.
    pub plural: &'static str,
    pub fields: &'static [Field],
    pub order: &'static str,
    pub args: &'static [ArgSpec],
    /// Output field summed into `total` (money).
    pub total: Option<&'static str>,
    /// An always-applied filter (entities where Exact demands `$filter`).
    pub base: Option<(&'static str, bool)>,
}

const ORDER_STATUS: &[(&str, i64)] = &[
    ("open", 12),
    ("partial", 20),
    ("complete", 21),
    ("cancelled", 45),
];
const QUOTE_STATUS: &[(&str, i64)] = &[
    ("draft", 10),
    ("open", 20),
    ("processed", 40),
    ("rejected", 45),
    ("accepted", 50),
];
const PURCHASE_STATUS: &[(&str, i64)] = &[("open", 10), ("partial", 20), ("complete", 30)];
const OPPORTUNITY_STATUS: &[(&str, i64)] = &[("open", 1), ("won", 2), ("lost", 3)];

pub const TOOLS: &[ListTool] = &[
    ListTool {
        name: "get_sales_orders",
        title: "Sales orders (verkooporders)",
        description: "Lists sales orders (verkooporders) from Exact Online with number, date, customer, amount in euros, status and delivery date; filter by order date and status.",
        entity: "salesorder/SalesOrders",
        plural: "orders",
        fields: &[
            f("OrderID", "id", Kind::Text),
            f("OrderNumber", "number", Kind::Int),
            f("OrderDate", "date", Kind::Date),
            f("OrderedByName", "customer", Kind::Text),
            f("AmountDC", "amount", Kind::Money),
            f("StatusDescription", "status", Kind::Text),
            f("DeliveryDate", "delivery_date", Kind::Date),
        ],
        order: "OrderDate desc",
        args: &[
            ArgSpec::DateRange { field: "OrderDate" },
            ArgSpec::Choice {
                arg: "status",
                field: "Status",
                options: ORDER_STATUS,
                description: "open, partial (gedeeltelijk geleverd), complete (afgehandeld) or cancelled.",
            },
        ],
        total: Some("amount"),
        base: None,
    },
    ListTool {
        name: "get_purchase_orders",
        title: "Purchase orders (inkooporders)",
        description: "Lists purchase orders (inkooporders) with number, date, supplier, amount in euros, status code and expected receipt date; filter by order date and status.",
        entity: "purchaseorder/PurchaseOrders",
        plural: "orders",
        fields: &[
            f("PurchaseOrderID", "id", Kind::Text),
            f("OrderNumber", "number", Kind::Int),
            f("OrderDate", "date", Kind::Date),
            f("SupplierName", "supplier", Kind::Text),
            f("AmountDC", "amount", Kind::Money),
            f("OrderStatus", "status_code", Kind::Int),
            f("ReceiptDate", "receipt_date", Kind::Date),
        ],
        order: "OrderDate desc",
        args: &[
            ArgSpec::DateRange { field: "OrderDate" },
            ArgSpec::Choice {
                arg: "status",
                field: "OrderStatus",
                options: PURCHASE_STATUS,
                description: "open, partial (gedeeltelijk ontvangen) or complete.",
            },
        ],
        total: Some("amount"),
        base: None,
    },
    ListTool {
        name: "get_quotations",
        title: "Quotations (offertes)",
        description: "Lists quotations (offertes) with number, date, customer, amount in euros, status and close date; filter by date and status.",
        entity: "crm/Quotations",
        plural: "quotations",
        fields: &[
            f("QuotationID", "id", Kind::Text),
            f("QuotationNumber", "number", Kind::Int),
            f("QuotationDate", "date", Kind::Date),
            f("OrderAccountName", "customer", Kind::Text),
            f("AmountDC", "amount", Kind::Money),
            f("StatusDescription", "status", Kind::Text),
            f("CloseDate", "close_date", Kind::Date),
        ],
        order: "QuotationDate desc",
        args: &[
            ArgSpec::DateRange {
                field: "QuotationDate",
            },
            ArgSpec::Choice {
                arg: "status",
                field: "Status",
                options: QUOTE_STATUS,
                description: "draft (concept), open, processed (verwerkt), rejected (geweigerd) or accepted (geaccepteerd).",
            },
        ],
        total: Some("amount"),
        base: None,
    },
    ListTool {
        name: "get_items",
        title: "Items (artikelen)",
        description: "Lists items (artikelen) with code, description, whether they are sold, bought and kept in stock, standard cost and sales price in euros, unit and item group. Only active items.",
        entity: "logistics/Items",
        plural: "items",
        fields: &[
            f("ID", "id", Kind::Text),
            f("Code", "code", Kind::Text),
            f("Description", "description", Kind::Text),
            f("IsSalesItem", "is_sales_item", Kind::Bool),
            f("IsStockItem", "is_stock_item", Kind::Bool),
            f("CostPriceStandard", "cost_price", Kind::Money),
            f("StandardSalesPrice", "sales_price", Kind::Money),
            f("Unit", "unit", Kind::Text),
            f("ItemGroupCode", "item_group", Kind::Text),
        ],
        order: "Code",
        args: &[ArgSpec::Contains {
            arg: "search",
            field: "Description",
            description: "Part of the item description.",
        }],
        total: None,
        base: Some(("IsActive", true)),
    },
    ListTool {
        name: "get_stock_positions",
        title: "Stock positions (voorraad)",
        description: "Lists stock per item (voorraadposities): in stock, planned in and out, the reorder point and warehouse.",
        entity: "inventory/StockPositions",
        plural: "positions",
        fields: &[
            f("ItemCode", "item_code", Kind::Text),
            f("ItemDescription", "item", Kind::Text),
            f("InStock", "in_stock", Kind::Number),
            f("PlanningIn", "planned_in", Kind::Number),
            f("PlanningOut", "planned_out", Kind::Number),
            f("ReorderPoint", "reorder_point", Kind::Number),
            f("Warehouse", "warehouse", Kind::Text),
        ],
        order: "ItemCode",
        args: &[],
        total: None,
        base: None,
    },
    ListTool {
        name: "get_projects",
        title: "Projects (projecten)",
        description: "Lists projects (projecten) with code, description, customer, start and end date and budget in euros.",
        entity: "project/Projects",
        plural: "projects",
        fields: &[
            f("ID", "id", Kind::Text),
            f("Code", "code", Kind::Text),
            f("Description", "description", Kind::Text),
            f("AccountName", "customer", Kind::Text),
            f("StartDate", "start_date", Kind::Date),
            f("EndDate", "end_date", Kind::Date),
            f("BudgetedAmount", "budget", Kind::Money),
        ],
        order: "Code",
        args: &[],
        total: Some("budget"),
        base: None,
    },
    ListTool {
        name: "get_time_transactions",
        title: "Hours (urenregistratie)",
        description: "Lists registered hours (uren) per employee and project with date, hours and amount in euros; filter by date and project code.",
        entity: "project/TimeTransactions",
        plural: "entries",
        fields: &[
            f("ID", "id", Kind::Text),
            f("Date", "date", Kind::Date),
            f("EmployeeFullName", "employee", Kind::Text),
            f("ProjectCode", "project", Kind::Text),
            f("Quantity", "hours", Kind::Number),
            f("AmountFC", "amount", Kind::Money),
            f("HourStatus", "status_code", Kind::Int),
        ],
        order: "Date desc",
        args: &[
            ArgSpec::DateRange { field: "Date" },
            ArgSpec::CodeEq {
                arg: "project",
                field: "ProjectCode",
                max_len: 30,
                description: "Project code, e.g. P0001.",
            },
        ],
        total: Some("amount"),
        base: None,
    },
    ListTool {
        name: "get_project_invoices",
        title: "Project invoice terms (projectfacturatie)",
        description: "Lists project invoice terms (termijnen) with project, description, amount in euros and the date from which they may be invoiced.",
        entity: "project/InvoiceTerms",
        plural: "terms",
        fields: &[
            f("ID", "id", Kind::Text),
            f("Project", "project_id", Kind::Text),
            f("Description", "description", Kind::Text),
            f("Amount", "amount", Kind::Money),
            f("ExecutionFromDate", "invoice_from", Kind::Date),
        ],
        order: "ExecutionFromDate",
        args: &[],
        total: Some("amount"),
        base: None,
    },
    ListTool {
        name: "get_currencies",
        title: "Currencies (valuta)",
        description: "Lists the currencies (valuta) set up in the administration with code, description and whether they are active.",
        entity: "general/Currencies",
        plural: "currencies",
        fields: &[
            f("Code", "code", Kind::Text),
            f("Description", "description", Kind::Text),
            f("Active", "active", Kind::Bool),
        ],
        order: "Code",
        args: &[],
        total: None,
        base: None,
    },
    ListTool {
        name: "get_currency_rates",
        title: "Exchange rates (wisselkoersen)",
        description: "Lists exchange rates (wisselkoersen) from the euro with the date they apply from; filter by target currency and date.",
        entity: "financial/ExchangeRates",
        plural: "rates",
        fields: &[
            f("SourceCurrency", "from", Kind::Text),
            f("TargetCurrency", "to", Kind::Text),
            f("Rate", "rate", Kind::Number),
            f("StartDate", "valid_from", Kind::Date),
        ],
        order: "StartDate desc",
        args: &[
            ArgSpec::CodeEq {
                arg: "currency",
                field: "TargetCurrency",
                max_len: 3,
                description: "Target currency code, e.g. USD.",
            },
            ArgSpec::DateRange { field: "StartDate" },
        ],
        total: None,
        base: None,
    },
    ListTool {
        name: "get_cost_centers",
        title: "Cost centres (kostenplaatsen)",
        description: "Lists cost centres (kostenplaatsen) with code, description and whether they are active.",
        entity: "hrm/Costcenters",
        plural: "cost_centers",
        fields: &[
            f("ID", "id", Kind::Text),
            f("Code", "code", Kind::Text),
            f("Description", "description", Kind::Text),
            f("Active", "active", Kind::Bool),
        ],
        order: "Code",
        args: &[],
        total: None,
        base: None,
    },
    ListTool {
        name: "get_fixed_assets",
        title: "Fixed assets (vaste activa)",
        description: "Lists fixed assets (vaste activa) with code, description, start date, purchase price and residual value in euros, depreciation method and period.",
        entity: "assets/Assets",
        plural: "assets",
        fields: &[
            f("ID", "id", Kind::Text),
            f("Code", "code", Kind::Text),
            f("Description", "description", Kind::Text),
            f("StartDate", "start_date", Kind::Date),
            f("PurchasePrice", "purchase_price", Kind::Money),
            f("ResidualValue", "residual_value", Kind::Money),
            f("DepreciationMethodCode", "method", Kind::Text),
            f("DepreciationPeriodMonths", "months", Kind::Int),
        ],
        order: "Code",
        args: &[],
        total: Some("purchase_price"),
        base: None,
    },
    ListTool {
        name: "get_depreciation_schedule",
        title: "Depreciation schedule (afschrijvingsschema)",
        description: "Lists depreciation per asset and period (afschrijvingen) with amount in euros, book value after it and status code (20 planned, 50 processed); filter by year and asset code.",
        entity: "assets/DepreciationSchedules",
        plural: "lines",
        fields: &[
            f("AssetCode", "asset", Kind::Text),
            f("Year", "year", Kind::Int),
            f("Period", "period", Kind::Int),
            f("Amount", "amount", Kind::Money),
            f("BookValueAfter", "book_value_after", Kind::Money),
            f("Status", "status_code", Kind::Int),
        ],
        order: "Year,Period",
        args: &[
            ArgSpec::IntEq {
                arg: "year",
                field: "Year",
                min: 2000,
                max: 2100,
                description: "Financial year.",
            },
            ArgSpec::CodeEq {
                arg: "asset",
                field: "AssetCode",
                max_len: 30,
                description: "Asset code.",
            },
        ],
        total: Some("amount"),
        base: None,
    },
    ListTool {
        name: "get_opportunities",
        title: "Sales opportunities (verkoopkansen)",
        description: "Lists sales opportunities (verkoopkansen) with customer, amount in euros, probability (0 to 1), stage, status code (1 open, 2 won, 3 lost) and close date; filter by status and close date.",
        entity: "crm/Opportunities",
        plural: "opportunities",
        fields: &[
            f("ID", "id", Kind::Text),
            f("Name", "name", Kind::Text),
            f("AccountName", "customer", Kind::Text),
            f("AmountDC", "amount", Kind::Money),
            f("Probability", "probability", Kind::Number),
            f("OpportunityStageDescription", "stage", Kind::Text),
            f("OpportunityStatus", "status_code", Kind::Int),
            f("CloseDate", "close_date", Kind::Date),
        ],
        order: "CloseDate",
        args: &[
            ArgSpec::Choice {
                arg: "status",
                field: "OpportunityStatus",
                options: OPPORTUNITY_STATUS,
                description: "open, won (gewonnen) or lost (verloren).",
            },
            ArgSpec::DateRange { field: "CloseDate" },
        ],
        total: Some("amount"),
        base: None,
    },
    ListTool {
        name: "get_sales_contracts",
        title: "Sales contracts and subscriptions (abonnementen)",
        description: "Lists subscriptions and sales contracts (abonnementen) with customer, description, type, start and end date (null: runs until cancelled).",
        entity: "subscription/Subscriptions",
        plural: "contracts",
        fields: &[
            f("EntryID", "id", Kind::Text),
            f("OrderedByName", "customer", Kind::Text),
            f("Description", "description", Kind::Text),
            f("SubscriptionType", "type", Kind::Text),
            f("StartDate", "start_date", Kind::Date),
            f("EndDate", "end_date", Kind::Date),
        ],
        order: "StartDate",
        args: &[],
        total: None,
        base: None,
    },
    ListTool {
        name: "get_sales_prices",
        title: "Sales prices (verkoopprijzen)",
        description: "Lists sales prices per item (verkoopprijzen) with price, currency and validity dates; a null customer means the general price.",
        entity: "logistics/SalesItemPrices",
        plural: "prices",
        fields: &[
            f("ItemCode", "item_code", Kind::Text),
            f("Account", "customer_id", Kind::Text),
            f("Price", "price", Kind::Money),
            f("Currency", "currency", Kind::Text),
            f("StartDate", "valid_from", Kind::Date),
            f("EndDate", "valid_until", Kind::Date),
        ],
        order: "ItemCode",
        args: &[ArgSpec::CodeEq {
            arg: "item",
            field: "ItemCode",
            max_len: 30,
            description: "Item code.",
        }],
        total: None,
        base: None,
    },
    ListTool {
        name: "search_transactions",
        title: "Search transactions (boekingen zoeken)",
        description: "Searches general ledger transaction lines (boekingsregels, mutaties) by words in the description, part of the relation name, GL account code and date range; newest first, with journal, entry number, GL account, relation, amount in euros (debit positive) and invoice number.",
        entity: "financialtransaction/TransactionLines",
        plural: "lines",
        fields: &[
            f("Date", "date", Kind::Date),
            f("EntryNumber", "entry", Kind::Int),
            f("JournalCode", "journal", Kind::Text),
            f("GLAccountCode", "gl_account", Kind::Text),
            f("GLAccountDescription", "gl_description", Kind::Text),
            f("AccountName", "relation", Kind::Text),
            f("Description", "description", Kind::Text),
            f("AmountDC", "amount", Kind::Money),
            f("InvoiceNumber", "invoice_number", Kind::Int),
        ],
        order: "Date desc",
        args: &[
            ArgSpec::Contains {
                arg: "query",
                field: "Description",
                description: "Words in the description, e.g. huur.",
            },
            ArgSpec::Contains {
                arg: "relation",
                field: "AccountName",
                description: "Part of the customer's or supplier's name.",
            },
            ArgSpec::CodeEq {
                arg: "gl_account",
                field: "GLAccountCode",
                max_len: 20,
                description: "GL account code (grootboekrekening), e.g. 4000.",
            },
            ArgSpec::DateRange { field: "Date" },
        ],
        total: Some("amount"),
        base: None,
    },
    ListTool {
        name: "get_document_attachments",
        title: "Document attachments (bijlagen)",
        description: "Lists the files attached to documents in Exact Online (bijlagen, e.g. invoice PDFs) with file name, size in bytes, the document they belong to and the download address.",
        entity: "documents/DocumentAttachments",
        plural: "attachments",
        fields: &[
            f("ID", "id", Kind::Text),
            f("Document", "document_id", Kind::Text),
            f("FileName", "file_name", Kind::Text),
            f("FileSize", "size_bytes", Kind::Int),
            f("Url", "url", Kind::Text),
        ],
        order: "FileName",
        args: &[ArgSpec::Contains {
            arg: "file_name",
            field: "FileName",
            description: "Part of the file name.",
        }],
        total: None,
        base: None,
    },
    ListTool {
        name: "get_purchase_prices",
        title: "Purchase prices (inkoopprijzen)",
        description: "Lists purchase prices per item and supplier (inkoopprijzen, leveranciersartikelen) with the price, currency, whether it is the main supplier and the minimum quantity; filter by item or supplier name.",
        entity: "logistics/SupplierItem",
        plural: "prices",
        fields: &[
            f("ItemCode", "item_code", Kind::Text),
            f("SupplierName", "supplier", Kind::Text),
            f("PurchasePrice", "price", Kind::Money),
            f("PurchaseCurrency", "currency", Kind::Text),
            f("MainSupplier", "main_supplier", Kind::Bool),
            f("MinimumQuantity", "minimum_quantity", Kind::Number),
        ],
        order: "ItemCode",
        args: &[
            ArgSpec::CodeEq {
                arg: "item",
                field: "ItemCode",
                max_len: 30,
                description: "Item code.",
            },
            ArgSpec::Contains {
                arg: "supplier",
                field: "SupplierName",
                description: "Part of the supplier's name.",
            },
        ],
        total: None,
        base: None,
    },
    ListTool {
        name: "get_journal_entries",
        title: "Journal entries (memoriaalboekingen)",
        description: "Lists general journal entries (memoriaalboekingen) with entry number, journal, financial year and period, description and status; filter by year and period.",
        entity: "generaljournalentry/GeneralJournalEntries",
        plural: "entries",
        fields: &[
            f("EntryID", "id", Kind::Text),
            f("EntryNumber", "number", Kind::Int),
            f("JournalCode", "journal", Kind::Text),
            f("FinancialYear", "year", Kind::Int),
            f("FinancialPeriod", "period", Kind::Int),
            f("Description", "description", Kind::Text),
            f("Status", "status_code", Kind::Int),
        ],
        order: "EntryNumber desc",
        args: &[
            ArgSpec::IntEq {
                arg: "year",
                field: "FinancialYear",
                min: 2000,
                max: 2100,
                description: "Financial year.",
            },
            ArgSpec::IntEq {
                arg: "period",
                field: "FinancialPeriod",
                min: 1,
                max: 12,
                description: "Financial period (month).",
            },
        ],
        total: None,
        base: None,
    },
];

const DEFAULT_LIMIT: i64 = 250;
const MAX_LIMIT: i64 = 1_000;

fn kind_schema(k: Kind) -> Value {
    match k {
        Kind::Text => json!({"type": ["string", "null"]}),
        Kind::Int => json!({"type": ["integer", "null"]}),
        Kind::Money | Kind::Number => json!({"type": ["number", "null"]}),
        Kind::Bool => json!({"type": ["boolean", "null"]}),
        Kind::Date => json!({"type": ["string", "null"], "format": "date"}),
    }
}

fn arg_names(t: &ListTool) -> Vec<&'static str> {
    let mut names = vec!["division", "limit"];
    for a in t.args {
        match a {
            ArgSpec::DateRange { .. } => names.extend(["from_date", "to_date"]),
            ArgSpec::Choice { arg, .. }
            | ArgSpec::IntEq { arg, .. }
            | ArgSpec::CodeEq { arg, .. }
            | ArgSpec::Contains { arg, .. } => names.push(arg),
        }
    }
    names
}

pub fn definition(t: &ListTool) -> Value {
    let mut props = Map::new();
    props.insert("division".into(), division_schema());
    for a in t.args {
        match a {
            ArgSpec::DateRange { .. } => {
                props.insert("from_date".into(), json!({"type": "string", "format": "date", "description": "First date to include (YYYY-MM-DD)."}));
                props.insert("to_date".into(), json!({"type": "string", "format": "date", "description": "Last date to include (YYYY-MM-DD)."}));
            }
            ArgSpec::Choice {
                arg,
                options,
                description,
                ..
            } => {
                let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
                props.insert(
                    (*arg).into(),
                    json!({"type": "string", "enum": names, "description": description}),
                );
            }
            ArgSpec::IntEq {
                arg,
                min,
                max,
                description,
                ..
            } => {
                props.insert(
                    (*arg).into(),
                    json!({"type": "integer", "minimum": min, "maximum": max, "description": description}),
                );
            }
            ArgSpec::CodeEq {
                arg,
                max_len,
                description,
                ..
            } => {
                props.insert(
                    (*arg).into(),
                    json!({"type": "string", "minLength": 1, "maxLength": max_len, "description": description}),
                );
            }
            ArgSpec::Contains {
                arg, description, ..
            } => {
                props.insert(
                    (*arg).into(),
                    json!({"type": "string", "minLength": 1, "maxLength": 100, "description": description}),
                );
            }
        }
    }
    props.insert(
        "limit".into(),
        json!({"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT}),
    );
    let mut item = Map::new();
    for fl in t.fields {
        item.insert(fl.out.into(), kind_schema(fl.kind));
    }
    let mut out_props = json!({
        "division": {"type": "integer"},
        t.plural: {"type": "array", "items": {"type": "object", "properties": item}},
        "count": {"type": "integer"},
        "truncated": {"type": "boolean"},
    });
    let mut required = vec!["division", t.plural, "count", "truncated"];
    if t.total.is_some() {
        out_props["total"] =
            json!({"type": "number", "description": "Sum in euros of the listed rows."});
        required.push("total");
    }
    json!({
        "name": t.name,
        "title": t.title,
        "description": format!("{} Returns at most `limit` rows (default {DEFAULT_LIMIT}) and says `truncated` when there are more.", t.description),
        "inputSchema": {"type": "object", "properties": props, "additionalProperties": false},
        "outputSchema": {"type": "object", "properties": out_props, "required": required},
        "annotations": read_only(),
    })
}

fn convert(row: &Map<String, Value>, fl: &Field) -> Value {
    let v = row.get(fl.exact).unwrap_or(&Value::Null);
    match fl.kind {
        Kind::Text => match v {
            Value::String(s) => Value::String(s.trim().to_owned()),
            Value::Null => Value::Null,
            other => Value::String(other.to_string()),
        },
        Kind::Int => v.as_i64().map_or(Value::Null, Value::from),
        Kind::Money => v.as_f64().map_or(Value::Null, |x| json!(round_cents(x))),
        Kind::Number => v.as_f64().map_or(Value::Null, |x| json!(x)),
        Kind::Bool => v.as_bool().map_or(Value::Null, Value::from),
        Kind::Date => v
            .as_str()
            .and_then(|s| parse_odata_day(s).ok())
            .map_or(Value::Null, |d| Value::String(d.to_string())),
    }
}

/// Runs one declared list tool.
pub(super) async fn run<P: Platform>(
    ctx: &Bookkeeping<'_, P>,
    t: &ListTool,
    args: &Value,
) -> Result<ToolResult, StorageError> {
    let names = arg_names(t);
    let a = tool_try!(Args::parse(args, &names));
    let parsed = (|| {
        let division = a.division()?;
        let limit = a.int("limit", 1, MAX_LIMIT)?.unwrap_or(DEFAULT_LIMIT) as usize;
        let mut filter: Option<Filter> = t.base.map(|(field, v)| Filter::eq(field, v));
        let mut add = |f: Filter| {
            filter = Some(match filter.take() {
                Some(prev) => prev.and(f),
                None => f,
            });
        };
        for spec in t.args {
            match spec {
                ArgSpec::DateRange { field } => {
                    let (from, to) = (a.date("from_date")?, a.date("to_date")?);
                    if let (Some(x), Some(y)) = (from, to)
                        && x > y
                    {
                        return Err(super::exact::failed(
                            "`from_date` must not be after `to_date`.",
                            boekhouding_core::storage::usage::Outcome::InvalidArguments,
                        ));
                    }
                    if let Some(x) = from {
                        add(Filter::ge(field, x));
                    }
                    if let Some(y) = to {
                        add(Filter::le(field, y));
                    }
                }
                ArgSpec::Choice {
                    arg,
                    field,
                    options,
                    ..
                } => {
                    let names: Vec<&'static str> = options.iter().map(|(n, _)| *n).collect();
                    if let Some(choice) = a.choice(arg, &names)? {
                        let code = options
                            .iter()
                            .find(|(n, _)| *n == choice)
                            .map_or(0, |(_, c)| *c);
                        add(Filter::eq(field, code));
                    }
                }
                ArgSpec::IntEq {
                    arg,
                    field,
                    min,
                    max,
                    ..
                } => {
                    if let Some(n) = a.int(arg, *min, *max)? {
                        add(Filter::eq(field, n));
                    }
                }
                ArgSpec::CodeEq {
                    arg,
                    field,
                    max_len,
                    ..
                } => {
                    if let Some(code) = a.text(arg, *max_len)? {
                        add(Filter::eq(field, code));
                    }
                }
                ArgSpec::Contains { arg, field, .. } => {
                    if let Some(text) = a.text(arg, 100)? {
                        add(Filter::contains(field, text));
                    }
                }
            }
        }
        Ok::<_, ToolResult>((division, limit, filter))
    })();
    let (division, limit, filter) = tool_try!(parsed);
    let mut conn = tool_try!(connect(ctx, division).await);
    let select: Vec<&'static str> = t.fields.iter().map(|fl| fl.exact).collect();
    let q = Query::new(t.entity, &select)
        .filter(filter)
        .orderby(t.order);
    let listed = tool_try!(conn.list(ctx, &q, limit).await);
    let rows: Vec<Value> = listed
        .rows
        .iter()
        .map(|r| {
            Value::Object(
                t.fields
                    .iter()
                    .map(|fl| (fl.out.to_owned(), convert(r, fl)))
                    .collect(),
            )
        })
        .collect();
    let mut structured = json!({
        "division": conn.admin.division_code,
        t.plural: rows,
        "count": rows.len(),
        "truncated": listed.truncated,
    });
    let mut text = format!(
        "{} {}{}",
        rows.len(),
        t.plural.replace('_', " "),
        if listed.truncated {
            " (more exist; raise `limit` or filter)"
        } else {
            ""
        }
    );
    if let Some(field) = t.total {
        let total = round_cents(rows.iter().filter_map(|r| r[field].as_f64()).sum());
        structured["total"] = json!(total);
        text.push_str(&format!(", total € {total:.2}"));
    }
    text.push(':');
    for r in rows.iter().take(50) {
        let line: Vec<String> = t
            .fields
            .iter()
            .filter(|fl| fl.out != "id" && !fl.out.ends_with("_id"))
            .take(5)
            .map(|fl| match &r[fl.out] {
                Value::String(s) => s.clone(),
                Value::Null => "-".into(),
                other => other.to_string(),
            })
            .collect();
        text.push('\n');
        text.push_str(&line.join(" | "));
    }
    if rows.len() > 50 {
        text.push_str(&format!(
            "\n… and {} more in the structured result",
            rows.len() - 50
        ));
    }
    Ok(ToolResult::Ok {
        structured,
        text,
        division: Some(conn.admin.division_code),
        exact_calls: conn.client.calls_made(),
    })
}
