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

mod carry;
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
mod months;
mod prompts;
mod relations;
mod reports;
pub mod views;
mod weeks;

pub use exact::ExactSettings;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use boekhouding_core::access::{AccessError, FreshAccess, RefreshJob};
use boekhouding_core::caller::LoadedCaller;
use boekhouding_core::lifecycle::TokenState;
use boekhouding_core::mail::{self, UsageThreshold};
use boekhouding_core::plan::Plan;
use boekhouding_core::ports::{Clock, HttpTransport, KvCache, Randomness, Sleep};
use boekhouding_core::region::Region;
use boekhouding_core::storage::administrations::{self, Administration};
use boekhouding_core::storage::connections::{self, Connection};
use boekhouding_core::storage::usage::{self, AuthKind, CallRecord, Metered, Outcome, UsageMonth};
use boekhouding_core::storage::{SqlExecutor, Statement, StorageError};

use crate::apps::AppView;
use crate::engine::{HostError, ToolCallOutcome, ToolHost};

/// Who is calling, as resolved from their credential.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user_id: String,
    pub plan: Plan,
    pub caller: Caller,
    pub client_name: Option<String>,
    pub request_id: Option<String>,
    /// The administrations an OAuth grant lets this client read (the user
    /// chose them on the consent page); `None`: every administration of
    /// the account (API keys, demo keys).
    pub granted: Option<Vec<String>>,
}

impl Principal {
    /// Whether the credential may read this administration at all.
    pub fn may_read(&self, administration_id: &str) -> bool {
        self.granted
            .as_ref()
            .is_none_or(|ids| ids.iter().any(|id| id == administration_id))
    }
}

impl Principal {
    /// A demo key's caller: every tool of the highest plan, unmetered.
    pub fn demo(key: &str, tenant: DemoTenant) -> Principal {
        Principal {
            user_id: format!("demo:{key}"),
            plan: Plan::Enterprise,
            caller: Caller::Demo(Box::new(tenant)),
            client_name: None,
            request_id: None,
            granted: None,
        }
    }
}

/// Whose books a request reads.
#[derive(Debug, Clone)]
pub enum Caller {
    /// A customer: connections and administrations in the database, every
    /// tool call metered, Exact reached with the connection's tokens.
    Customer(AuthKind),
    /// A public demo key: generated books behind the platform's HTTP
    /// transport; no database, no metering, no tokens.
    Demo(Box<DemoTenant>),
}

/// What a demo key sees: one Exact login and its administrations.
#[derive(Debug, Clone)]
pub struct DemoTenant {
    /// Shown as the connection (id `demo`, region `nl`, always active).
    pub connection: Connection,
    pub administrations: Vec<Administration>,
    /// The Exact site the demo transport answers for.
    pub base_url: String,
}

impl DemoTenant {
    /// A demo login with `divisions` (code, name), `current` the default.
    pub fn new(
        base_url: &str,
        user_name: &str,
        email: &str,
        divisions: &[(i64, String)],
        current: i64,
        now: DateTime<Utc>,
    ) -> DemoTenant {
        let connection = Connection {
            id: "demo".into(),
            user_id: "demo".into(),
            region: Region::Nl,
            exact_user_id: None,
            exact_user_name: Some(user_name.into()),
            exact_email: Some(email.into()),
            access_token_sealed: String::new(),
            refresh_token_sealed: String::new(),
            access_expires_at: now + chrono::Duration::minutes(10),
            refresh_expires_at: now + chrono::Duration::days(30),
            token_generation: 0,
            state: TokenState::active(),
            lease_owner: None,
            lease_expires_at: None,
            last_refreshed_at: None,
            last_used_at: None,
        };
        let administrations = divisions
            .iter()
            .map(|(code, name)| Administration {
                id: format!("demo-{code}"),
                connection_id: "demo".into(),
                region: Region::Nl,
                division_code: *code,
                name: name.clone(),
                is_active: true,
                is_default: *code == current,
            })
            .collect();
        DemoTenant {
            connection,
            administrations,
            base_url: base_url.into(),
        }
    }
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
#[allow(async_fn_in_trait)]
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
    /// Runs an on-demand refresh of Exact tokens so that it finishes even
    /// when the client goes away: Exact rotates the refresh token as it
    /// answers, so the store must not be cancelled with the request. On
    /// Workers inside `ctx.wait_until`, the request awaiting the result.
    /// The default runs it in the request, which is right where requests
    /// are never cancelled (native tests).
    async fn refresh_detached(&self, job: RefreshJob) -> Result<FreshAccess, AccessError> {
        job.run(self.db(), self.http(), self.rng(), self.sleep())
            .await
    }
    /// The caller as loaded with the request's one database round trip
    /// (`core::caller::load_caller`): its connections, administrations
    /// and the meter already taken. `None`: the tools read what they need
    /// themselves (native tests, and any host that did not preload).
    fn loaded(&self) -> Option<&LoadedCaller> {
        None
    }
    /// Writes that need not delay the answer (the call log, last-used
    /// touches): on Workers they are collected and sent in one batch in
    /// `ctx.wait_until` after the response; a failure is logged, never
    /// shown to the client. The default writes them now, in one batch.
    async fn after_answer(&self, stmts: Vec<Statement>) {
        if stmts.is_empty() {
            return;
        }
        if let Err(e) = self.db().batch(stmts).await {
            self.report(&format!("writing after the answer: {e}"));
        }
    }
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
    /// The caller's Exact connections.
    pub(crate) async fn connections(&self) -> Result<Vec<Connection>, StorageError> {
        match &self.principal.caller {
            Caller::Demo(t) => Ok(vec![t.connection.clone()]),
            Caller::Customer(_) => {
                let loaded = self.platform.loaded();
                let all = match loaded {
                    Some(l) => l.connections.clone(),
                    None => {
                        connections::list_for_user(self.platform.db(), &self.principal.user_id)
                            .await?
                    }
                };
                if self.principal.granted.is_none() {
                    return Ok(all);
                }
                // A grant narrower than the account shows only the
                // connections it reads an administration through.
                let account = match loaded {
                    Some(l) => l.administrations.clone(),
                    None => {
                        administrations::all_for_user(self.platform.db(), &self.principal.user_id)
                            .await?
                    }
                };
                Ok(all
                    .into_iter()
                    .filter(|c| {
                        account
                            .iter()
                            .any(|a| a.connection_id == c.id && self.principal.may_read(&a.id))
                    })
                    .collect())
            }
        }
    }

    /// The caller's active administrations (the plan decides which are
    /// usable: [`administrations::allowed`]).
    pub(crate) async fn active_administrations(&self) -> Result<Vec<Administration>, StorageError> {
        match &self.principal.caller {
            Caller::Demo(t) => Ok(t.administrations.clone()),
            Caller::Customer(_) => {
                let active = match self.platform.loaded() {
                    // Loaded in `active_for_user`'s order minus the
                    // inactive ones: the same list.
                    Some(l) => administrations::only_active(&l.administrations),
                    None => {
                        administrations::active_for_user(
                            self.platform.db(),
                            &self.principal.user_id,
                        )
                        .await?
                    }
                };
                Ok(active
                    .into_iter()
                    .filter(|a| self.principal.may_read(&a.id))
                    .collect())
            }
        }
    }

    /// Every administration of one of the caller's connections, active or
    /// not.
    pub(crate) async fn administrations_of(
        &self,
        connection: &Connection,
    ) -> Result<Vec<Administration>, StorageError> {
        match &self.principal.caller {
            Caller::Demo(t) => Ok(t.administrations.clone()),
            Caller::Customer(_) => {
                let of = match self.platform.loaded() {
                    Some(l) => administrations::of_connection(&l.administrations, &connection.id),
                    None => {
                        administrations::list_for_connection(self.platform.db(), &connection.id)
                            .await?
                    }
                };
                Ok(of
                    .into_iter()
                    .filter(|a| self.principal.may_read(&a.id))
                    .collect())
            }
        }
    }

    fn limit_message(&self, used: u64, now: DateTime<Utc>) -> String {
        let month = UsageMonth::of(now);
        let limits = self.principal.plan.limits();
        let upgrade = self
            .principal
            .plan
            .upgrade()
            .map(|p| {
                // Straight to paying for a plan that can be bought; the
                // price list for one that is arranged on request.
                let link = match p {
                    Plan::Starter | Plan::Pro => {
                        format!("{}/billing/upgrade?plan={p}", self.portal_url)
                    }
                    _ => format!("{}/en/pricing", self.portal_url),
                };
                format!(
                    " Upgrade to {p} ({} calls a month) at {link}.",
                    p.limits().monthly_tool_calls,
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
            months::NAME => months::get_profit_loss_by_month(self, args).await,
            weeks::NAME => weeks::get_cashflow_by_week(self, args).await,
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

/// Every tool's definition (name, title, description, schemas,
/// annotations) as `tools/list` shows it: the one list the MCP server
/// serves and the portal's public tool catalogue renders, so the two
/// cannot drift apart.
pub fn catalogue() -> Vec<Value> {
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

impl<P: Platform> ToolHost for Bookkeeping<'_, P> {
    fn tools(&self) -> Vec<Value> {
        catalogue()
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

    fn app_views(&self) -> Vec<AppView> {
        views::all()
    }

    fn app_tools(&self) -> Vec<Value> {
        app_tools()
    }

    async fn call_app_tool(&self, name: &str, arguments: Value) -> ToolCallOutcome {
        if !is_app_tool(name) {
            return ToolCallOutcome::UnknownTool;
        }
        self.metered_call(name, arguments).await
    }

    async fn call(&self, name: &str, arguments: Value) -> ToolCallOutcome {
        // The catalogue is the one list of tool names.
        if !is_metered_tool(name) {
            return ToolCallOutcome::UnknownTool;
        }
        self.metered_call(name, arguments).await
    }
}

impl<P: Platform> Bookkeeping<'_, P> {
    /// Runs a catalogue or app-only tool, metered like every tool call
    /// (demo keys excepted) and logged after the answer.
    async fn metered_call(&self, name: &str, arguments: Value) -> ToolCallOutcome {
        let auth = match &self.principal.caller {
            Caller::Customer(auth) => auth.clone(),
            // Demo keys are not metered and never touch the database.
            Caller::Demo(_) => {
                return match self.run(name, &arguments).await {
                    Ok(ToolResult::Ok {
                        structured, text, ..
                    }) => ToolCallOutcome::Ok { structured, text },
                    Ok(ToolResult::Failed { message, .. }) => ToolCallOutcome::ToolError(message),
                    Err(e) => {
                        self.platform.report(&format!("demo {name}: {e}"));
                        ToolCallOutcome::ToolError(
                            "The service is temporarily unavailable; try again shortly.".into(),
                        )
                    }
                };
            }
        };
        let started = self.platform.clock().now();
        let month = UsageMonth::of(started);
        // Count before any work: a call over the limit costs nothing. The
        // meter usually came with the caller's one round trip.
        let metered = match self.platform.loaded().and_then(LoadedCaller::take_meter) {
            Some(taken) => Ok(taken),
            None => {
                usage::try_count_call(
                    self.platform.db(),
                    &self.principal.user_id,
                    month,
                    self.principal.plan.limits().monthly_tool_calls,
                )
                .await
            }
        };
        let mut calls = 0;
        // The 80 % and 100 % mails: queued with the call log when this
        // call is the one that reached the threshold.
        let warning = match &metered {
            Ok(Metered::Allowed { used }) => {
                let limit = self.principal.plan.limits().monthly_tool_calls;
                UsageThreshold::crossed(used.saturating_sub(1), *used, limit).map(|threshold| {
                    let month = UsageMonth::of(started);
                    let link = match self.principal.plan.upgrade() {
                        Some(p @ (Plan::Starter | Plan::Pro)) => {
                            format!("{}/billing/upgrade?plan={p}", self.portal_url)
                        }
                        _ => format!("{}/dashboard", self.portal_url),
                    };
                    mail::usage_warning_statement(
                        &mail::UsageWarning {
                            user_id: &self.principal.user_id,
                            threshold,
                            used: *used,
                            cap: limit.cap_for_sql().unsigned_abs(),
                            month: &month.key(),
                            resets_at: month.resets_at(),
                            link: &link,
                        },
                        started,
                    )
                })
            }
            _ => None,
        };
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
        // The call is already counted; its log row is written after the
        // answer, and a failure there must not fail it.
        let log = usage::record_call_statement(&CallRecord {
            user_id: self.principal.user_id.clone(),
            auth,
            tool: name.to_owned(),
            division_code: division,
            outcome,
            latency_ms: latency,
            exact_calls: calls,
            request_id: self.principal.request_id.clone(),
            client_name: self.principal.client_name.clone(),
            at: started,
        });
        self.platform
            .after_answer(std::iter::once(log).chain(warning).collect())
            .await;
        result
    }
}

/// What a request body asks, for metering and the log line: the JSON-RPC
/// method of a single request and, for `tools/call`, the tool's name.
/// Neither is trusted for anything else: the engine parses the body again.
pub fn rpc_summary(body: &[u8]) -> (Option<String>, Option<String>) {
    let Ok(Value::Object(request)) = serde_json::from_slice::<Value>(body) else {
        return (None, None);
    };
    let method = request
        .get("method")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let tool = (method.as_deref() == Some("tools/call"))
        .then(|| {
            request
                .get("params")?
                .get("name")?
                .as_str()
                .map(str::to_owned)
        })
        .flatten();
    (method, tool)
}

thread_local! {
    /// The catalogue's tool names, built once per isolate (the catalogue
    /// is fixed at compile time; building every schema per request to
    /// find a name cost CPU on every call).
    static TOOL_NAMES: Vec<String> = catalogue()
        .iter()
        .filter_map(|t| t["name"].as_str().map(str::to_owned))
        .collect();
}

/// Whether `tool` is a catalogue tool: a `tools/call` of one is metered
/// (an unknown name is refused before metering).
pub fn is_metered_tool(tool: &str) -> bool {
    TOOL_NAMES.with(|names| names.iter().any(|n| n == tool))
}

/// The helper tools only MCP Apps views call (`_meta.ui.visibility:
/// ["app"]`): outside the catalogue, so the model, the portal's list and a
/// client without the extension never see them. A call of one is metered
/// like any tool call, after its caller was loaded.
pub fn app_tools() -> Vec<Value> {
    vec![months::definition(), weeks::definition()]
}

/// Whether `tool` is one of [`app_tools`].
pub fn is_app_tool(tool: &str) -> bool {
    tool == months::NAME || tool == weeks::NAME
}
