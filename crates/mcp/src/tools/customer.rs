//! `get_customer_360`: one customer on one page (klantbeeld): who they
//! are, what they owe and how late, what they bought this year and last,
//! and what is in the pipeline (open orders, quotations, opportunities,
//! running contracts).

use boekhouding_core::exact::dates::parse_odata_day;
use boekhouding_core::exact::{Filter, Guid, Query};
use boekhouding_core::ports::Clock;
use boekhouding_core::storage::StorageError;
use boekhouding_core::storage::usage::Outcome;
use chrono::Datelike;
use serde_json::{Map, Value, json};

use super::exact::{Args, ID_MAX_LEN, connect, division_schema, failed, id_schema};
use super::money::{cents, euros};
use super::{Bookkeeping, Platform, ToolResult, read_only};

const CAP: usize = 5_000;

fn text<'a>(r: &'a Map<String, Value>, k: &str) -> &'a str {
    r.get(k).and_then(Value::as_str).unwrap_or("").trim()
}

pub fn definition() -> Value {
    json!({
        "name": "get_customer_360",
        "title": "Customer overview (klantbeeld)",
        "description": "Everything about one customer (klant, debiteur) in one answer: relation details (code, city, e-mail, VAT and KvK number), open and overdue invoices with the oldest days overdue, revenue this year and last year from sales invoices, open sales orders, open quotations (offertes), open opportunities and running contracts. Find the id with search_relations or get_relations.",
        "inputSchema": {"type": "object", "properties": {
            "division": division_schema(),
            "customer_id": id_schema("The relation's id (a GUID) from search_relations or get_relations.")
        }, "required": ["customer_id"], "additionalProperties": false},
        "outputSchema": {"type": "object", "properties": {
            "division": {"type": "integer"},
            "customer": {"type": "object", "properties": {
                "id": {"type": "string"}, "code": {"type": "string"}, "name": {"type": "string"}, "city": {"type": "string"},
                "email": {"type": "string"}, "vat_number": {"type": "string"}, "kvk": {"type": "string"}, "blocked": {"type": "boolean"}
            }, "required": ["id", "name"]},
            "open_invoices": {"type": "object", "properties": {
                "count": {"type": "integer"}, "amount": {"type": "number"}, "overdue_amount": {"type": "number"},
                "oldest_days_overdue": {"type": "integer"}
            }, "required": ["count", "amount", "overdue_amount", "oldest_days_overdue"]},
            "revenue": {"type": "object", "properties": {
                "this_year": {"type": "number"}, "last_year": {"type": "number"},
                "invoices": {"type": "integer"}, "last_invoice_date": {"type": ["string", "null"], "format": "date"}
            }, "required": ["this_year", "last_year", "invoices"]},
            "pipeline": {"type": "object", "properties": {
                "open_orders": {"type": "integer"}, "open_orders_amount": {"type": "number"},
                "open_quotations": {"type": "integer"}, "open_quotations_amount": {"type": "number"},
                "open_opportunities": {"type": "integer"}, "weighted_opportunities": {"type": "number"},
                "running_contracts": {"type": "integer"}
            }},
            "truncated": {"type": "boolean"}
        }, "required": ["division", "customer", "open_invoices", "revenue", "pipeline", "truncated"]},
        "annotations": read_only(),
    })
}

pub(super) async fn get_customer_360<P: Platform>(
    ctx: &Bookkeeping<'_, P>,
    args: &Value,
) -> Result<ToolResult, StorageError> {
    let parsed = (|| {
        let a = Args::parse(args, &["division", "customer_id"])?;
        let raw = a.text("customer_id", ID_MAX_LEN)?.ok_or_else(|| {
            failed(
                "`customer_id` is required (a GUID from search_relations).",
                Outcome::InvalidArguments,
            )
        })?;
        let id = Guid::parse(&raw).map_err(|_| {
            failed(
                "`customer_id` must be a relation id (GUID) from search_relations or get_relations.",
                Outcome::InvalidArguments,
            )
        })?;
        Ok::<_, ToolResult>((a.division()?, id))
    })();
    let (division, id) = tool_try!(parsed);
    let mut conn = tool_try!(connect(ctx, division).await);
    let today = ctx.platform.clock().now().date_naive();
    let accounts = tool_try!(
        conn.list(
            ctx,
            &Query::new(
                "crm/Accounts",
                &[
                    "ID",
                    "Code",
                    "Name",
                    "City",
                    "Email",
                    "VATNumber",
                    "ChamberOfCommerce",
                    "Blocked"
                ],
            )
            .filter(Some(Filter::eq("ID", id.clone()))),
            1,
        )
        .await
    );
    let Some(acc) = accounts.rows.first() else {
        return Ok(failed(
            "No relation with that id in this administration; find it with search_relations.",
            Outcome::ToolError,
        ));
    };
    let customer = json!({
        "id": text(acc, "ID"), "code": text(acc, "Code"), "name": text(acc, "Name"), "city": text(acc, "City"),
        "email": text(acc, "Email"), "vat_number": text(acc, "VATNumber"), "kvk": text(acc, "ChamberOfCommerce"),
        "blocked": acc.get("Blocked").and_then(Value::as_bool).unwrap_or(false),
    });
    let id_text = text(acc, "ID").to_owned();

    // Open items: the list is read whole and matched on the account id.
    let open = tool_try!(
        conn.list(
            ctx,
            &Query::new(
                "read/financial/ReceivablesList",
                &["AccountId", "DueDate", "Amount"]
            ),
            CAP,
        )
        .await
    );
    let (mut open_n, mut open_c, mut overdue_c, mut oldest) = (0u64, 0i64, 0i64, 0i64);
    for r in open
        .rows
        .iter()
        .filter(|r| text(r, "AccountId").eq_ignore_ascii_case(&id_text))
    {
        let c = cents(r.get("Amount"));
        open_n += 1;
        open_c += c;
        if let Some(due) = r
            .get("DueDate")
            .and_then(Value::as_str)
            .and_then(|s| parse_odata_day(s).ok())
        {
            let days = (today - due).num_days();
            if days > 0 {
                overdue_c += c;
                oldest = oldest.max(days);
            }
        }
    }

    let invoices = tool_try!(
        conn.list(
            ctx,
            &Query::new("salesinvoice/SalesInvoices", &["InvoiceDate", "AmountDC"])
                .filter(Some(Filter::eq("InvoiceTo", id.clone()))),
            CAP,
        )
        .await
    );
    let (mut this_year, mut last_year, mut last_date) = (0i64, 0i64, None);
    for r in &invoices.rows {
        let Some(d) = r
            .get("InvoiceDate")
            .and_then(Value::as_str)
            .and_then(|s| parse_odata_day(s).ok())
        else {
            continue;
        };
        if d.year() == today.year() {
            this_year += cents(r.get("AmountDC"));
        } else if d.year() == today.year() - 1 {
            last_year += cents(r.get("AmountDC"));
        }
        last_date = last_date.max(Some(d));
    }

    let orders = tool_try!(
        conn.list(
            ctx,
            &Query::new("salesorder/SalesOrders", &["AmountDC"]).filter(Some(
                Filter::eq("OrderedBy", id.clone()).and(Filter::eq("Status", 12i64)),
            )),
            CAP,
        )
        .await
    );
    let quotes = tool_try!(
        conn.list(
            ctx,
            &Query::new("crm/Quotations", &["AmountDC"]).filter(Some(
                Filter::eq("OrderAccount", id.clone()).and(Filter::eq("Status", 20i64)),
            )),
            CAP,
        )
        .await
    );
    let opps = tool_try!(
        conn.list(
            ctx,
            &Query::new("crm/Opportunities", &["AmountDC", "Probability"]).filter(Some(
                Filter::eq("Account", id.clone()).and(Filter::eq("OpportunityStatus", 1i64)),
            )),
            CAP,
        )
        .await
    );
    let contracts = tool_try!(
        conn.list(
            ctx,
            &Query::new("subscription/Subscriptions", &["StartDate", "EndDate"])
                .filter(Some(Filter::eq("OrderedBy", id))),
            CAP,
        )
        .await
    );
    let day = |r: &Map<String, Value>, k: &str| {
        r.get(k)
            .and_then(Value::as_str)
            .and_then(|s| parse_odata_day(s).ok())
    };
    let running = contracts
        .rows
        .iter()
        .filter(|r| {
            day(r, "StartDate").is_some_and(|d| d <= today)
                && day(r, "EndDate").is_none_or(|d| d >= today)
        })
        .count();
    let sum =
        |rows: &[Map<String, Value>]| rows.iter().map(|r| cents(r.get("AmountDC"))).sum::<i64>();
    let weighted: f64 = opps
        .rows
        .iter()
        .map(|r| {
            r.get("AmountDC").and_then(Value::as_f64).unwrap_or(0.0)
                * r.get("Probability").and_then(Value::as_f64).unwrap_or(0.0)
        })
        .sum();
    let truncated = [&open, &invoices, &orders, &quotes, &opps, &contracts]
        .iter()
        .any(|l| l.truncated);
    let name = customer["name"].as_str().unwrap_or("").to_owned();
    let text = format!(
        "{name}: {open_n} open invoices € {:.2} (overdue € {:.2}, oldest {oldest} days); revenue {} € {:.2}, {} € {:.2}; \
         {} open orders € {:.2}, {} open quotations € {:.2}, {} open opportunities (weighted € {:.2}), {running} running contracts.",
        open_c as f64 / 100.0,
        overdue_c as f64 / 100.0,
        today.year(),
        this_year as f64 / 100.0,
        today.year() - 1,
        last_year as f64 / 100.0,
        orders.rows.len(),
        sum(&orders.rows) as f64 / 100.0,
        quotes.rows.len(),
        sum(&quotes.rows) as f64 / 100.0,
        opps.rows.len(),
        weighted,
    );
    Ok(ToolResult::Ok {
        structured: json!({
            "division": conn.admin.division_code,
            "customer": customer,
            "open_invoices": {"count": open_n, "amount": euros(open_c), "overdue_amount": euros(overdue_c), "oldest_days_overdue": oldest},
            "revenue": {"this_year": euros(this_year), "last_year": euros(last_year), "invoices": invoices.rows.len(),
                "last_invoice_date": last_date.map(|d| d.to_string())},
            "pipeline": {"open_orders": orders.rows.len(), "open_orders_amount": euros(sum(&orders.rows)),
                "open_quotations": quotes.rows.len(), "open_quotations_amount": euros(sum(&quotes.rows)),
                "open_opportunities": opps.rows.len(), "weighted_opportunities": (weighted * 100.0).round() / 100.0,
                "running_contracts": running},
            "truncated": truncated,
        }),
        text,
        division: Some(conn.admin.division_code),
        exact_calls: conn.client.calls_made(),
    })
}
