//! Prompts (ready-made analyses in Dutch or English that tell the
//! assistant which tools to call for which administration and period),
//! resources (the user's administrations and Exact connections, and one
//! administration's profile by template) and argument completions for
//! both. Everything here reads D1 only: no Exact call, no metering.

use chrono::{Datelike, NaiveDate};
use serde_json::{Map, Value, json};

use boekhouding_core::ports::Clock;
use boekhouding_core::storage::administrations::{
    self, Administration, DivisionError, DivisionRef,
};
use boekhouding_core::storage::connections::Connection;

use super::{Bookkeeping, Platform};
use crate::engine::HostError;

/// One prompt argument.
struct Arg {
    name: &'static str,
    description: &'static str,
    required: bool,
}

const DIVISION: Arg = Arg {
    name: "division",
    description: "Division code of the administration (from list_divisions), or region:code (e.g. be:123456) when the code exists at two Exact sites; the default administration when left out.",
    required: false,
};
const LANGUAGE: Arg = Arg {
    name: "language",
    description: "nl (default) or en: the language of the analysis.",
    required: false,
};

/// One prompt: its definition and the two texts.
struct PromptDef {
    name: &'static str,
    title: &'static str,
    description: &'static str,
    args: &'static [Arg],
}

const PROMPTS: &[PromptDef] = &[
    PromptDef {
        name: "financial_analysis",
        title: "Financial analysis (financiële analyse)",
        description: "A full analysis of results and position for a year: profit and loss, balance sheet, trends and ratios, with recommendations.",
        args: &[
            DIVISION,
            Arg {
                name: "year",
                description: "Financial year, e.g. 2026; the current year when left out.",
                required: false,
            },
            LANGUAGE,
        ],
    },
    PromptDef {
        name: "invoice_summary",
        title: "Invoice summary (factuuroverzicht)",
        description: "Recent sales or purchase invoices, what is still open and the largest relations.",
        args: &[
            DIVISION,
            Arg {
                name: "type",
                description: "sales (verkoop, default) or purchase (inkoop).",
                required: false,
            },
            LANGUAGE,
        ],
    },
    PromptDef {
        name: "cash_flow_overview",
        title: "Cash flow overview (kasstroomoverzicht)",
        description: "Bank balances and movements, expected receipts and payments, and the liquidity outlook.",
        args: &[
            DIVISION,
            Arg {
                name: "months",
                description: "How many months ahead to look: 1 to 12 (default 3).",
                required: false,
            },
            LANGUAGE,
        ],
    },
    PromptDef {
        name: "financial_health_check",
        title: "Financial health check (financiële gezondheidscheck)",
        description: "Liquidity, solvency and working capital, overdue debtors and creditors, and warning signs.",
        args: &[DIVISION, LANGUAGE],
    },
    PromptDef {
        name: "debtor_collection",
        title: "Debtor collection (debiteurenbeheer)",
        description: "Overdue receivables by customer and age, a collection priority list and draft reminders.",
        args: &[
            DIVISION,
            Arg {
                name: "min_days_overdue",
                description: "Only invoices at least this many days past due (default 30).",
                required: false,
            },
            LANGUAGE,
        ],
    },
    PromptDef {
        name: "vat_preparation",
        title: "VAT return preparation (btw-aangifte voorbereiden)",
        description: "Prepares the VAT return of a quarter or month: the VAT summary, checks, and what to correct first.",
        args: &[
            DIVISION,
            Arg {
                name: "period",
                description: "Quarter (2026-Q3) or month (2026-09); the previous quarter when left out.",
                required: false,
            },
            LANGUAGE,
        ],
    },
];

pub fn definitions() -> Vec<Value> {
    PROMPTS
        .iter()
        .map(|p| {
            json!({
                "name": p.name,
                "title": p.title,
                "description": p.description,
                "arguments": p.args.iter().map(|a| json!({
                    "name": a.name, "description": a.description, "required": a.required
                })).collect::<Vec<_>>(),
            })
        })
        .collect()
}

fn invalid(m: impl Into<String>) -> HostError {
    HostError::InvalidParams(m.into())
}

/// The user's administrations that tools may use, or `Unavailable`.
async fn usable_administrations<P: Platform>(
    ctx: &Bookkeeping<'_, P>,
) -> Result<Vec<Administration>, HostError> {
    let active = ctx
        .active_administrations()
        .await
        .map_err(|_| HostError::Unavailable)?;
    Ok(administrations::allowed(&active, ctx.principal.plan)
        .into_iter()
        .cloned()
        .collect())
}

/// A quarter or month as (label, first day, last day).
fn parse_period(s: &str) -> Option<(String, NaiveDate, NaiveDate)> {
    let (y, rest) = s.split_once('-')?;
    let year: i32 = y.parse().ok().filter(|y| (2000..=2100).contains(y))?;
    let (from_month, months) = if let Some(q) = rest.strip_prefix('Q').or(rest.strip_prefix('q')) {
        let q: u32 = q.parse().ok().filter(|q| (1..=4).contains(q))?;
        (q * 3 - 2, 3)
    } else {
        let m: u32 = rest.parse().ok().filter(|m| (1..=12).contains(m))?;
        (m, 1)
    };
    let from = NaiveDate::from_ymd_opt(year, from_month, 1)?;
    let next = from.checked_add_months(chrono::Months::new(months))?;
    Some((s.to_uppercase(), from, next.pred_opt()?))
}

fn previous_quarter(today: NaiveDate) -> String {
    let q = (today.month() - 1) / 3 + 1;
    if q == 1 {
        format!("{}-Q4", today.year() - 1)
    } else {
        format!("{}-Q{}", today.year(), q - 1)
    }
}

/// `prompts/get`.
pub async fn get<P: Platform>(
    ctx: &Bookkeeping<'_, P>,
    name: &str,
    args: &Map<String, Value>,
) -> Result<Value, HostError> {
    let def = PROMPTS
        .iter()
        .find(|p| p.name == name)
        .ok_or_else(|| invalid(format!("Unknown prompt: {name}")))?;
    if let Some(unknown) = args.keys().find(|k| !def.args.iter().any(|a| a.name == *k)) {
        let allowed: Vec<&str> = def.args.iter().map(|a| a.name).collect();
        return Err(invalid(format!(
            "Unknown argument {unknown:?} for {name}; allowed: {}",
            allowed.join(", ")
        )));
    }
    let arg = |k: &str| {
        args.get(k)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let nl = match arg("language").map(str::to_ascii_lowercase).as_deref() {
        None | Some("nl") => true,
        Some("en") => false,
        Some(other) => return Err(invalid(format!("language must be nl or en, got {other:?}"))),
    };
    let admins = usable_administrations(ctx).await?;
    let admin = match arg("division") {
        Some(d) => {
            let wanted = DivisionRef::parse(d).ok_or_else(|| {
                invalid(format!(
                    "division must be a division code (or region:code, e.g. nl:123456), got {d:?}"
                ))
            })?;
            &administrations::resolve(&admins, ctx.principal.plan, Some(wanted)).map_err(
                |e| match e {
                    DivisionError::Ambiguous { .. } => invalid(e.to_string()),
                    _ => {
                        let codes: Vec<String> = admins
                            .iter()
                            .map(|a| administrations::reference(&admins, a))
                            .collect();
                        invalid(format!(
                            "division {wanted} is not one of your administrations ({})",
                            codes.join(", ")
                        ))
                    }
                },
            )?
        }
        None => admins
            .iter()
            .find(|a| a.is_default)
            .or_else(|| admins.first())
            .ok_or_else(|| {
                invalid("No administrations are connected yet; connect Exact Online in the portal first.")
            })?,
    };
    let today = ctx.platform.clock().now().date_naive();
    // The reference the tools need: `be:123456` when the code alone would
    // be ambiguous.
    let d = administrations::reference(&admins, admin);
    let who = format!("{} (division {d})", admin.name);
    let text = match def.name {
        "financial_analysis" => {
            let year: i32 = match arg("year") {
                Some(y) => y
                    .parse()
                    .ok()
                    .filter(|y| (2000..=today.year()).contains(y))
                    .ok_or_else(|| {
                        invalid(format!("year must be 2000 to {}, got {y:?}", today.year()))
                    })?,
                None => today.year(),
            };
            if nl {
                format!(
                    "Maak een financiële analyse van {who} over {year}. Roep get_profit_loss aan voor {year} en {prev} (division {d}), \
                     get_balance_sheet per einde {year} en get_financial_snapshot. Beschrijf omzet, brutomarge, kosten en resultaat, \
                     vergelijk met {prev}, bereken liquiditeit (current ratio), solvabiliteit en rentabiliteit, en sluit af met drie \
                     concrete aanbevelingen. Noem bedragen in euro's en zeg het als gegevens ontbreken.",
                    prev = year - 1
                )
            } else {
                format!(
                    "Write a financial analysis of {who} for {year}. Call get_profit_loss for {year} and {prev} (division {d}), \
                     get_balance_sheet at the end of {year} and get_financial_snapshot. Describe revenue, gross margin, costs and \
                     result, compare with {prev}, compute liquidity (current ratio), solvency and profitability, and end with three \
                     concrete recommendations. State amounts in euros and say so when data is missing.",
                    prev = year - 1
                )
            }
        }
        "invoice_summary" => {
            let purchase = match arg("type").map(str::to_ascii_lowercase).as_deref() {
                None | Some("sales") | Some("verkoop") => false,
                Some("purchase") | Some("inkoop") => true,
                Some(other) => {
                    return Err(invalid(format!(
                        "type must be sales or purchase, got {other:?}"
                    )));
                }
            };
            let (tool, open) = if purchase {
                ("get_purchase_invoices", "payable")
            } else {
                ("get_sales_invoices", "receivable")
            };
            if nl {
                format!(
                    "Geef een overzicht van de {} van {who}. Roep {tool} aan (division {d}) voor de laatste drie maanden en \
                     get_outstanding_invoices met type {open}. Vat samen: aantal en totaal per maand, de vijf grootste relaties, \
                     wat nog openstaat en wat over de vervaldatum is. Sluit af met wat opvalt.",
                    if purchase {
                        "inkoopfacturen"
                    } else {
                        "verkoopfacturen"
                    }
                )
            } else {
                format!(
                    "Summarise the {} of {who}. Call {tool} (division {d}) for the last three months and get_outstanding_invoices \
                     with type {open}. Summarise count and total per month, the five largest relations, what is still open and \
                     what is past due. End with what stands out.",
                    if purchase {
                        "purchase invoices"
                    } else {
                        "sales invoices"
                    }
                )
            }
        }
        "cash_flow_overview" => {
            let months: u32 = match arg("months") {
                Some(m) => m
                    .parse()
                    .ok()
                    .filter(|m| (1..=12).contains(m))
                    .ok_or_else(|| invalid(format!("months must be 1 to 12, got {m:?}")))?,
                None => 3,
            };
            if nl {
                format!(
                    "Maak een kasstroomoverzicht van {who} voor de komende {months} maanden. Roep get_bank_transactions aan \
                     (division {d}) voor de laatste maand, get_cashflow_forecast en get_outstanding_invoices (debiteuren en \
                     crediteuren). Toon het huidige banksaldo, verwachte ontvangsten en betalingen per maand en het verwachte \
                     saldo, en waarschuw als het saldo onder nul dreigt te komen."
                )
            } else {
                format!(
                    "Give a cash flow overview of {who} for the next {months} months. Call get_bank_transactions (division {d}) \
                     for the last month, get_cashflow_forecast and get_outstanding_invoices (receivables and payables). Show the \
                     current bank balance, expected receipts and payments per month and the expected balance, and warn if the \
                     balance may drop below zero."
                )
            }
        }
        "financial_health_check" => {
            if nl {
                format!(
                    "Voer een financiële gezondheidscheck uit voor {who}. Roep get_financial_snapshot, get_balance_sheet, \
                     get_aging_receivables en get_aging_payables aan (division {d}). Beoordeel liquiditeit, solvabiliteit en \
                     werkkapitaal met een stoplichtkleur per onderdeel, noem achterstallige debiteuren en crediteuren boven 60 \
                     dagen, en geef de drie belangrijkste aandachtspunten."
                )
            } else {
                format!(
                    "Run a financial health check of {who}. Call get_financial_snapshot, get_balance_sheet, get_aging_receivables \
                     and get_aging_payables (division {d}). Rate liquidity, solvency and working capital with a traffic-light \
                     colour each, name debtors and creditors more than 60 days overdue, and give the three most important points \
                     of attention."
                )
            }
        }
        "debtor_collection" => {
            let days: u32 = match arg("min_days_overdue") {
                Some(m) => m.parse().ok().filter(|m| *m <= 365).ok_or_else(|| {
                    invalid(format!("min_days_overdue must be 0 to 365, got {m:?}"))
                })?,
                None => 30,
            };
            if nl {
                format!(
                    "Help met debiteurenbeheer voor {who}. Roep get_aging_receivables en get_outstanding_invoices met type \
                     receivable aan (division {d}) en, voor de grootste posten, get_relations. Maak een prioriteitenlijst van \
                     klanten met facturen die minstens {days} dagen over de vervaldatum zijn (bedrag, ouderdom, contact), en \
                     schrijf per klant een korte, vriendelijke betalingsherinnering in het Nederlands."
                )
            } else {
                format!(
                    "Help with debtor collection for {who}. Call get_aging_receivables and get_outstanding_invoices with type \
                     receivable (division {d}) and, for the largest items, get_relations. Make a priority list of customers \
                     with invoices at least {days} days past due (amount, age, contact), and write a short, friendly payment \
                     reminder per customer in English."
                )
            }
        }
        "vat_preparation" => {
            let raw = arg("period").map_or_else(|| previous_quarter(today), str::to_owned);
            let (label, from, to) = parse_period(&raw).ok_or_else(|| {
                invalid(format!(
                    "period must be a quarter like 2026-Q3 or a month like 2026-09, got {raw:?}"
                ))
            })?;
            if nl {
                format!(
                    "Bereid de btw-aangifte van {who} voor over {label} ({from} t/m {to}). Roep get_vat_summary aan voor die \
                     periode (division {d}) en get_transactions voor de btw-rekeningen als iets afwijkt. Toon per rubriek \
                     (1a, 1b, 2a, 4a, 4b, 5b) omzet en btw, het te betalen of terug te vragen bedrag, en controleer op \
                     opvallende afwijkingen ten opzichte van het vorige tijdvak."
                )
            } else {
                format!(
                    "Prepare the VAT return of {who} for {label} ({from} to {to}). Call get_vat_summary for that period \
                     (division {d}) and get_transactions for the VAT accounts where something looks off. Show turnover and \
                     VAT per box (1a, 1b, 2a, 4a, 4b, 5b), the amount to pay or reclaim, and check for notable differences \
                     from the previous period."
                )
            }
        }
        _ => return Err(invalid(format!("Unknown prompt: {name}"))),
    };
    Ok(json!({
        "description": def.description,
        "messages": [{"role": "user", "content": {"type": "text", "text": text}}],
    }))
}

/// The resources every account has.
pub fn resources() -> Vec<Value> {
    vec![
        json!({
            "uri": "exact://divisions",
            "name": "divisions",
            "title": "Administrations",
            "description": "Every Exact Online administration of this account: division code, name, whether tools may use it (active and within the plan) and which is the default.",
            "mimeType": "application/json",
        }),
        json!({
            "uri": "exact://connections",
            "name": "connections",
            "title": "Exact Online connections",
            "description": "The account's Exact Online connections per region and their health: status, last refresh, when the sign-in lapses, retries and the last error. Never any token.",
            "mimeType": "application/json",
        }),
    ]
}

pub fn templates() -> Vec<Value> {
    vec![json!({
        "uriTemplate": "exact://divisions/{division}",
        "name": "division",
        "title": "One administration",
        "description": "The profile of one administration of this account by division code: name, status in this account and its Exact connection's health.",
        "mimeType": "application/json",
    })]
}

fn connection_json(c: &Connection) -> Value {
    json!({
        "region": c.region.code(),
        "status": c.state.status.as_str(),
        "exact_user": c.exact_user_name,
        "last_refreshed_at": c.last_refreshed_at.map(|t| t.to_rfc3339()),
        "sign_in_lapses_at": c.refresh_expires_at.to_rfc3339(),
        "retry_count": c.state.retry_count,
        "next_retry_at": c.state.next_retry_at.map(|t| t.to_rfc3339()),
        "last_error": c.state.last_error,
        "needs_reconnect": c.state.status == boekhouding_core::lifecycle::ConnectionStatus::RefreshFailed,
    })
}

/// Everything the resources show: connections and all administrations.
async fn account<P: Platform>(
    ctx: &Bookkeeping<'_, P>,
) -> Result<(Vec<Connection>, Vec<Administration>, Vec<Administration>), HostError> {
    let conns = ctx
        .connections()
        .await
        .map_err(|_| HostError::Unavailable)?;
    let mut all = Vec::new();
    for c in &conns {
        all.extend(
            ctx.administrations_of(c)
                .await
                .map_err(|_| HostError::Unavailable)?,
        );
    }
    let usable = usable_administrations(ctx).await?;
    Ok((conns, all, usable))
}

fn admin_json(a: &Administration, usable: &[Administration], conns: &[Connection]) -> Value {
    let conn = conns.iter().find(|c| c.id == a.connection_id);
    json!({
        "division": a.division_code,
        "name": a.name,
        "active": a.is_active,
        "usable": usable.iter().any(|u| u.id == a.id),
        "is_default": a.is_default,
        "region": conn.map(|c| c.region.code()),
        "connection_status": conn.map(|c| c.state.status.as_str()),
    })
}

fn contents(uri: &str, v: &Value) -> Vec<Value> {
    vec![json!({"uri": uri, "mimeType": "application/json", "text": v.to_string()})]
}

/// `resources/read`.
pub async fn read<P: Platform>(
    ctx: &Bookkeeping<'_, P>,
    uri: &str,
) -> Result<Vec<Value>, HostError> {
    match uri {
        "exact://divisions" => {
            let (conns, all, usable) = account(ctx).await?;
            let list: Vec<Value> = all.iter().map(|a| admin_json(a, &usable, &conns)).collect();
            Ok(contents(
                uri,
                &json!({"administrations": list, "count": list.len()}),
            ))
        }
        "exact://connections" => {
            let (conns, _, _) = account(ctx).await?;
            let list: Vec<Value> = conns.iter().map(connection_json).collect();
            Ok(contents(
                uri,
                &json!({"connections": list, "count": list.len()}),
            ))
        }
        _ => {
            // exact://divisions/{division}: only the caller's own; another
            // tenant's code is "not found", never "forbidden".
            let wanted = uri
                .strip_prefix("exact://divisions/")
                .and_then(DivisionRef::parse)
                .ok_or_else(|| HostError::ResourceNotFound(uri.to_owned()))?;
            let (conns, all, usable) = account(ctx).await?;
            // Exactly one administration, or none: a code shared by two
            // Exact sites needs its region (`be:123456`).
            let mut found = all.iter().filter(|a| {
                a.division_code == wanted.code && wanted.region.is_none_or(|r| r == a.region)
            });
            let admin = match (found.next(), found.next()) {
                (Some(one), None) => one,
                _ => return Err(HostError::ResourceNotFound(uri.to_owned())),
            };
            let mut profile = admin_json(admin, &usable, &conns);
            if let Some(c) = conns.iter().find(|c| c.id == admin.connection_id) {
                profile["connection"] = connection_json(c);
            }
            Ok(contents(uri, &profile))
        }
    }
}

/// Periods to offer: the last 24 months, the last 8 quarters, the last 3
/// years, newest first.
fn periods(today: NaiveDate, kind: &str) -> Vec<String> {
    let mut out = Vec::new();
    if kind == "year" {
        for y in 0..3 {
            out.push((today.year() - y).to_string());
        }
        return out;
    }
    let mut q = ((today.month() - 1) / 3 + 1) as i32;
    let mut y = today.year();
    for _ in 0..8 {
        out.push(format!("{y}-Q{q}"));
        q -= 1;
        if q == 0 {
            q = 4;
            y -= 1;
        }
    }
    let mut m = today.with_day(1).unwrap_or(today);
    for _ in 0..24 {
        out.push(m.format("%Y-%m").to_string());
        m = m.checked_sub_months(chrono::Months::new(1)).unwrap_or(m);
    }
    out
}

/// `completion/complete`.
pub async fn complete<P: Platform>(
    ctx: &Bookkeeping<'_, P>,
    reference: &Value,
    argument: &str,
    typed: &str,
) -> Result<Vec<String>, HostError> {
    let known = match reference["type"].as_str() {
        Some("ref/prompt") => {
            let name = reference["name"].as_str().unwrap_or("");
            PROMPTS
                .iter()
                .find(|p| p.name == name)
                .is_some_and(|p| p.args.iter().any(|a| a.name == argument))
        }
        Some("ref/resource") => {
            reference["uri"].as_str() == Some("exact://divisions/{division}")
                && argument == "division"
        }
        _ => false,
    };
    if !known {
        return Err(invalid(format!(
            "No argument {argument:?} for this reference"
        )));
    }
    let typed_lower = typed.to_lowercase();
    let prefix = |values: Vec<String>| -> Vec<String> {
        values
            .into_iter()
            .filter(|v| v.to_lowercase().starts_with(&typed_lower))
            .collect()
    };
    let today = ctx.platform.clock().now().date_naive();
    Ok(match argument {
        "division" => {
            let usable = usable_administrations(ctx).await?;
            usable
                .iter()
                .map(|a| (a, administrations::reference(&usable, a)))
                .filter(|(a, reference)| {
                    reference.starts_with(&typed_lower)
                        || a.division_code.to_string().starts_with(typed)
                        || a.name.to_lowercase().contains(&typed_lower)
                })
                .map(|(_, reference)| reference)
                .collect()
        }
        "language" => prefix(vec!["nl".into(), "en".into()]),
        "type" => prefix(vec!["sales".into(), "purchase".into()]),
        "year" => prefix(periods(today, "year")),
        "period" => prefix(periods(today, "period")),
        "months" => prefix(["3", "6", "12", "1"].map(String::from).to_vec()),
        "min_days_overdue" => prefix(["30", "60", "90", "0"].map(String::from).to_vec()),
        _ => Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_parse_to_their_first_and_last_day() {
        let (label, from, to) = parse_period("2026-q3").unwrap_or_default();
        assert_eq!(label, "2026-Q3");
        assert_eq!(
            (from.to_string(), to.to_string()),
            ("2026-07-01".into(), "2026-09-30".into())
        );
        let (_, from, to) = parse_period("2028-02").unwrap_or_default();
        assert_eq!(
            (from.to_string(), to.to_string()),
            ("2028-02-01".into(), "2028-02-29".into())
        );
        for bad in [
            "2026", "2026-Q5", "2026-13", "20x6-01", "2026-Q0", "'; DROP",
        ] {
            assert!(parse_period(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn offered_periods_are_newest_first_and_cross_year_ends() {
        let today = NaiveDate::from_ymd_opt(2026, 2, 10).unwrap_or_default();
        let p = periods(today, "period");
        assert_eq!(&p[..3], ["2026-Q1", "2025-Q4", "2025-Q3"]);
        assert!(p.contains(&"2026-02".to_owned()) && p.contains(&"2024-03".to_owned()));
        assert_eq!(periods(today, "year"), ["2026", "2025", "2024"]);
        assert_eq!(previous_quarter(today), "2025-Q4");
        assert!(p.iter().all(|x| parse_period(x).is_some()));
    }
}
