//! The bookkeeping tool catalogue behind the MCP engine: every tool's
//! definition (input and output schema, annotations, descriptions with the
//! Dutch words users say) and its implementation over core's ports, plus
//! the metering every `tools/call` goes through.

/// Inside a tool function: the value of an `Ok`, or return the failed
/// tool result (an actionable message for the assistant) right away.
macro_rules! tool_try {
    ($e:expr) => {
        match $e {
            Ok(value) => value,
            Err(failed) => return Ok(failed),
        }
    };
}

mod contracts;
mod crm;
mod customer;
mod divisions;
mod documents;
mod exact;
mod insight;
mod invoices;
mod ledger;
mod lists;
mod money;
mod prompts;
mod relations;
mod reports;

pub use exact::ExactSettings;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use boekhouding_core::plan::Plan;
use boekhouding_core::ports::{Clock, HttpTransport, KvCache, Randomness, Sleep};
use boekhouding_core::storage::usage::{self, AuthKind, CallRecord, Metered, Outcome, UsageMonth};
use boekhouding_core::storage::{SqlExecutor, StorageError};

use crate::engine::{HostError, ToolCallOutcome, ToolHost};

/// Who is calling, as resolved from their credential.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user_id: String,
    pub plan: Plan,
    pub auth: AuthKind,
    pub client_name: Option<String>,
    pub request_id: Option<String>,
}

/// Annotations every tool of this server carries: they only read.
pub(crate) fn read_only() -> Value {
    json!({"readOnlyHint": true, "destructiveHint": false, "idempotentHint": true, "openWorldHint": true})
}

/// A tool's result or its failure.
pub(crate) enum ToolResult {
    Ok {
        structured: Value,
        text: String,
        division: Option<i64>,
        exact_calls: u32,
    },
    Failed {
        message: String,
        outcome: Outcome,
    },
}

/// The effects a request's tools use, as one bundle of ports.
pub trait Platform {
    type Db: SqlExecutor;
    type Clock: Clock;
    type Http: HttpTransport;
    type Rng: Randomness;
    type Sleep: Sleep;
    type Cache: KvCache;
    fn db(&self) -> &Self::Db;
    fn clock(&self) -> &Self::Clock;
    fn http(&self) -> &Self::Http;
    fn rng(&self) -> &Self::Rng;
    fn sleep(&self) -> &Self::Sleep;
    /// Slow-changing Exact reference data (eventually consistent; never
    /// for anything that must be exact now).
    fn cache(&self) -> &Self::Cache;
    /// Records an internal failure for operators (the platform's log).
    /// The text must be secret-free; it never reaches the client.
    fn report(&self, what: &str);
}

/// The catalogue for one authenticated request.
#[derive(Debug)]
pub struct Bookkeeping<'a, P> {
    pub platform: &'a P,
    pub principal: &'a Principal,
    /// Where users manage their plan (for "upgrade" hints).
    pub portal_url: &'a str,
    /// Exact app registration and token keyring; `None` where Exact is not
    /// configured (then Exact-backed tools say so).
    pub exact: Option<&'a ExactSettings>,
}

impl<P: Platform> Bookkeeping<'_, P> {
    fn limit_message(&self, used: u64, now: DateTime<Utc>) -> String {
        let month = UsageMonth::of(now);
        let limits = self.principal.plan.limits();
        let upgrade = self
            .principal
            .plan
            .upgrade()
            .map(|p| {
                format!(
                    " Upgrade to {p} ({} calls a month) at {}/dashboard.",
                    p.limits().monthly_tool_calls,
                    self.portal_url
                )
            })
            .unwrap_or_default();
        format!(
            "Monthly limit reached: {used} of {} tool calls used on the {} plan. The counter resets on {}.{upgrade}",
            limits.monthly_tool_calls,
            self.principal.plan,
            month.resets_at().format("%Y-%m-%d")
        )
    }

    async fn run(&self, name: &str, args: &Value) -> Result<ToolResult, StorageError> {
        match name {
            "list_divisions" => divisions::list_divisions(self, args).await,
            "get_gl_accounts" => ledger::get_gl_accounts(self, args).await,
            "get_outstanding_invoices" => ledger::get_outstanding_invoices(self, args).await,
            "get_trial_balance" => reports::get_trial_balance(self, args).await,
            "get_vat_summary" => reports::get_vat_summary(self, args).await,
            "get_cashflow_forecast" => reports::get_cashflow_forecast(self, args).await,
            "get_financial_snapshot" => reports::get_financial_snapshot(self, args).await,
            "get_sales_invoices" => invoices::get_invoices(self, args, false).await,
            "get_purchase_invoices" => invoices::get_invoices(self, args, true).await,
            "get_bank_transactions" => invoices::get_bank_transactions(self, args).await,
            "get_relations" => relations::get_relations(self, args).await,
            "search_relations" => relations::search_relations(self, args).await,
            "get_revenue" => relations::get_revenue(self, args).await,
            "get_transactions" => relations::get_transactions(self, args).await,
            "get_profit_loss" => reports::get_profit_loss(self, args).await,
            "get_balance_sheet" => reports::get_balance_sheet(self, args).await,
            "get_aging_receivables" => reports::get_aging(self, args, false).await,
            "get_aging_payables" => reports::get_aging(self, args, true).await,
            "get_aging_analysis" => reports::get_aging_analysis(self, args).await,
            "get_consolidated_report" => insight::get_consolidated_report(self, args).await,
            "explain_change" => insight::explain_change(self, args).await,
            "get_period_close_check" => insight::get_period_close_check(self, args).await,
            "get_budget_comparison" => reports::get_budget_comparison(self, args).await,
            "get_margin_analysis" => reports::get_margin_analysis(self, args).await,
            "get_sales_funnel" => crm::get_sales_funnel(self, args).await,
            "get_wip_overview" => crm::get_wip_overview(self, args).await,
            "get_cost_center_report" => crm::get_cost_center_report(self, args).await,
            "get_customer_360" => customer::get_customer_360(self, args).await,
            "get_document_content" => documents::get_document_content(self, args).await,
            "get_recurring_revenue" => crm::get_recurring_revenue(self, args).await,
            "get_purchase_contracts" => contracts::get_purchase_contracts(self, args).await,
            other => match lists::TOOLS.iter().find(|t| t.name == other) {
                Some(t) => lists::run(self, t, args).await,
                None => Ok(ToolResult::Failed {
                    message: format!("Unknown tool {name}"),
                    outcome: Outcome::InvalidArguments,
                }),
            },
        }
    }
}

impl<P: Platform> ToolHost for Bookkeeping<'_, P> {
    fn tools(&self) -> Vec<Value> {
        vec![
            divisions::definition(),
            ledger::gl_accounts_definition(),
            ledger::outstanding_definition(),
            relations::relations_definition(),
            invoices::sales_definition(),
            invoices::purchase_definition(),
            invoices::bank_definition(),
            relations::search_relations_definition(),
            relations::revenue_definition(),
            relations::transactions_definition(),
            reports::trial_balance_definition(),
            reports::vat_definition(),
            reports::cashflow_definition(),
            reports::snapshot_definition(),
            reports::profit_loss_definition(),
            reports::balance_sheet_definition(),
            reports::aging_definition("receivables"),
            reports::aging_definition("payables"),
            reports::aging_analysis_definition(),
            reports::budget_comparison_definition(),
            reports::margin_analysis_definition(),
            insight::consolidated_definition(),
            insight::explain_change_definition(),
            insight::period_close_definition(),
            crm::funnel_definition(),
            crm::wip_definition(),
            crm::cost_center_definition(),
            customer::definition(),
            documents::definition(),
            crm::recurring_definition(),
            contracts::definition(),
        ]
        .into_iter()
        .chain(lists::TOOLS.iter().map(lists::definition))
        .collect()
    }

    fn prompts(&self) -> Vec<Value> {
        prompts::definitions()
    }

    async fn get_prompt(
        &self,
        name: &str,
        arguments: &Map<String, Value>,
    ) -> Result<Value, HostError> {
        prompts::get(self, name, arguments).await
    }

    fn resources(&self) -> Vec<Value> {
        prompts::resources()
    }

    fn resource_templates(&self) -> Vec<Value> {
        prompts::templates()
    }

    async fn read_resource(&self, uri: &str) -> Result<Vec<Value>, HostError> {
        prompts::read(self, uri).await
    }

    async fn complete(
        &self,
        reference: &Value,
        argument: &str,
        typed: &str,
        _context: &Map<String, Value>,
    ) -> Result<Vec<String>, HostError> {
        prompts::complete(self, reference, argument, typed).await
    }

    async fn call(&self, name: &str, arguments: Value) -> ToolCallOutcome {
        // The catalogue is the one list of tool names.
        if !self.tools().iter().any(|t| t["name"] == name) {
            return ToolCallOutcome::UnknownTool;
        }
        let started = self.platform.clock().now();
        let month = UsageMonth::of(started);
        // Count before any work: a call over the limit costs nothing.
        let metered = usage::try_count_call(
            self.platform.db(),
            &self.principal.user_id,
            month,
            self.principal.plan.limits().monthly_tool_calls,
        )
        .await;
        let mut calls = 0;
        let (outcome, division, result) = match metered {
            Err(e) => {
                self.platform.report(&format!("metering {name}: {e}"));
                return ToolCallOutcome::ToolError(
                    "The service is temporarily unavailable; try again shortly.".into(),
                );
            }
            Ok(Metered::LimitReached { used }) => (
                Outcome::LimitExceeded,
                None,
                ToolCallOutcome::ToolError(self.limit_message(used, started)),
            ),
            Ok(Metered::Allowed { .. }) => match self.run(name, &arguments).await {
                Ok(ToolResult::Ok {
                    structured,
                    text,
                    division,
                    exact_calls,
                }) => {
                    calls = exact_calls;
                    (
                        Outcome::Ok,
                        division,
                        ToolCallOutcome::Ok { structured, text },
                    )
                }
                Ok(ToolResult::Failed { message, outcome }) => {
                    (outcome, None, ToolCallOutcome::ToolError(message))
                }
                Err(e) => {
                    self.platform.report(&format!("{name}: {e}"));
                    (
                        Outcome::InternalError,
                        None,
                        ToolCallOutcome::ToolError(
                            "The service is temporarily unavailable; try again shortly.".into(),
                        ),
                    )
                }
            },
        };
        let latency = (self.platform.clock().now() - started)
            .num_milliseconds()
            .clamp(0, i64::from(u32::MAX)) as u32;
        // The call is already counted; a failed log row must not fail it.
        let _ = usage::record_call(
            self.platform.db(),
            &CallRecord {
                user_id: self.principal.user_id.clone(),
                auth: self.principal.auth.clone(),
                tool: name.to_owned(),
                division_code: division,
                outcome,
                latency_ms: latency,
                exact_calls: calls,
                request_id: self.principal.request_id.clone(),
                client_name: self.principal.client_name.clone(),
                at: started,
            },
        )
        .await;
        result
    }
}
