//! The way from a tool call to Exact: argument checking, the
//! administration the call may use (validated against the user's active
//! administrations and plan), a fresh access token under the connection's
//! lease, and Exact errors turned into messages an assistant can act on.

use std::cell::RefCell;

use boekhouding_core::access::{
    self, AccessContext, AccessError, FreshAccess, RefreshJob, RefreshKind,
};
use boekhouding_core::crypto::Secret;
use boekhouding_core::exact::oauth::ExactApp;
use boekhouding_core::exact::{Division, ExactClient, ExactError, Guid, Listed, Query};
use boekhouding_core::lifecycle::ConnectionStatus;
use boekhouding_core::ports::{Clock, KvCache, Sleep};
use boekhouding_core::storage::administrations::{
    self, Administration, DivisionError, DivisionRef,
};
use boekhouding_core::storage::connections::{self, Connection};
use boekhouding_core::storage::usage::Outcome;
use boekhouding_core::token_cache::TokenCache;
use serde_json::{Map, Value};

use super::{Bookkeeping, Caller, Platform, ToolResult};

pub use boekhouding_core::access::ExactSettings;

/// How stale `connections.last_used_at` may get before a tool call
/// rewrites it.
const LAST_USED_GRANULARITY_MINUTES: i64 = 5;

thread_local! {
    /// This isolate's opened Exact access tokens, by connection and token
    /// generation (bounds: `core::token_cache`).
    static ACCESS_TOKENS: RefCell<TokenCache> = RefCell::new(TokenCache::default());
}

/// The usable access token of a connection row just loaded: from this
/// isolate's cache when it holds this generation's token and it is not yet
/// due for refresh, else opened from the row (and then cached). `Ok(None)`:
/// a refresh is due, or the connection failed.
async fn usable_token<P: Platform>(
    access: &AccessContext<'_, P::Db, P::Http, P::Rng, P::Sleep>,
    conn: &Connection,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Option<FreshAccess>, AccessError> {
    // A row sealed with a retired key goes through `handout`, which
    // reseals it; a failed connection never reads the cache.
    let cacheable = conn.state.status != ConnectionStatus::RefreshFailed
        && !connections::needs_reseal(access.keyring, conn);
    if cacheable {
        let hit = ACCESS_TOKENS.with(|c| {
            c.borrow()
                .get(&conn.id, conn.token_generation, conn.access_expires_at, now)
        });
        if let Some(token) = hit {
            return Ok(Some(FreshAccess {
                access_token: token,
                expires_at: conn.access_expires_at,
                refreshed: false,
            }));
        }
    }
    let handed = access::handout(access, conn, now).await;
    if let (true, Ok(Some(fresh))) = (cacheable, &handed) {
        ACCESS_TOKENS.with(|c| {
            c.borrow_mut().put(
                &conn.id,
                conn.token_generation,
                fresh.access_token.clone(),
                fresh.expires_at,
            );
        });
    }
    handed
}

pub(super) fn failed(message: impl Into<String>, outcome: Outcome) -> ToolResult {
    ToolResult::Failed {
        message: message.into(),
        outcome,
    }
}

fn invalid(message: impl Into<String>) -> ToolResult {
    failed(message, Outcome::InvalidArguments)
}

/// Checked tool arguments: unknown names and wrong types are refused with
/// a message naming what is allowed.
pub(super) struct Args<'v>(&'v Map<String, Value>);

impl<'v> Args<'v> {
    pub fn parse(v: &'v Value, allowed: &[&str]) -> Result<Self, ToolResult> {
        let obj = v
            .as_object()
            .ok_or_else(|| invalid("Arguments must be an object."))?;
        if let Some(bad) = obj.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(invalid(format!(
                "Unknown argument `{bad}`. Allowed: {}.",
                allowed.join(", ")
            )));
        }
        Ok(Args(obj))
    }

    pub fn int(&self, name: &str, min: i64, max: i64) -> Result<Option<i64>, ToolResult> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => match v.as_i64() {
                Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
                _ => Err(invalid(format!(
                    "`{name}` must be a whole number from {min} to {max}."
                ))),
            },
        }
    }

    pub fn boolean(&self, name: &str) -> Result<Option<bool>, ToolResult> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(invalid(format!("`{name}` must be true or false."))),
        }
    }

    pub fn choice(
        &self,
        name: &str,
        options: &[&'static str],
    ) -> Result<Option<&'static str>, ToolResult> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => options
                .iter()
                .find(|o| **o == s.as_str())
                .map(|o| Some(*o))
                .ok_or_else(|| {
                    invalid(format!("`{name}` must be one of: {}.", options.join(", ")))
                }),
            Some(_) => Err(invalid(format!(
                "`{name}` must be one of: {}.",
                options.join(", ")
            ))),
        }
    }

    /// The `division` argument: a code (`123456`, as a number or text) or
    /// a code with its region (`"nl:123456"`) for a code that exists at two
    /// Exact sites.
    pub fn division(&self) -> Result<Option<DivisionRef>, ToolResult> {
        let refused = || {
            invalid(
                "`division` must be a division code from list_divisions: a number such as 123456, or with its region such as \"nl:123456\" when the same code exists at two Exact sites.",
            )
        };
        match self.0.get("division") {
            None | Some(Value::Null) => Ok(None),
            Some(v) => division_ref(v).map(Some).ok_or_else(refused),
        }
    }

    /// A date argument as `YYYY-MM-DD`.
    pub fn date(&self, name: &str) -> Result<Option<chrono::NaiveDate>, ToolResult> {
        match self.text(name, 10)? {
            Some(d) => chrono::NaiveDate::parse_from_str(&d, "%Y-%m-%d")
                .map(Some)
                .map_err(|_| invalid(format!("`{name}` must be a date as YYYY-MM-DD."))),
            None => Ok(None),
        }
    }

    /// A list argument of `min_items..=max_items` elements. Its length is
    /// checked before any element is looked at, so a hostile list costs
    /// one comparison, never work proportional to its size.
    pub fn list(
        &self,
        name: &str,
        noun: &str,
        min_items: usize,
        max_items: usize,
    ) -> Result<Option<&'v [Value]>, ToolResult> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(items)) if (min_items..=max_items).contains(&items.len()) => {
                Ok(Some(items.as_slice()))
            }
            Some(_) => Err(invalid(format!(
                "`{name}` must be a list of {noun}, {min_items} to {max_items} of them."
            ))),
        }
    }

    pub fn text(&self, name: &str, max_len: usize) -> Result<Option<String>, ToolResult> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            // The byte length bounds the character count from above, so a
            // huge string is refused without counting its characters.
            Some(Value::String(s)) if s.len() <= max_len * 4 && s.chars().count() <= max_len => {
                Ok(Some(s.trim().to_owned()).filter(|s| !s.is_empty()))
            }
            Some(_) => Err(invalid(format!(
                "`{name}` must be text of at most {max_len} characters."
            ))),
        }
    }
}

/// A division reference as a tool argument: a code as a number or text,
/// or `"nl:123456"`; `None` when it is neither.
pub(super) fn division_ref(v: &Value) -> Option<DivisionRef> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .filter(|c| (1..=DivisionRef::MAX_CODE).contains(c))
            .map(DivisionRef::code),
        // Checked on its byte length before it is parsed at all.
        Value::String(s) if s.len() <= DivisionRef::MAX_LEN => DivisionRef::parse(s),
        _ => None,
    }
}

/// The longest id argument accepted: a GUID with braces and dashes (38)
/// and some room. The schemas of id arguments declare the same bound.
pub(super) const ID_MAX_LEN: usize = 40;

/// The JSON Schema of an id (GUID) argument.
pub(super) fn id_schema(description: &str) -> Value {
    serde_json::json!({"type": "string", "maxLength": ID_MAX_LEN, "description": description})
}

/// A relation or document id argument (a GUID).
pub(super) fn guid_arg(a: &Args<'_>, name: &str) -> Result<Option<Guid>, ToolResult> {
    match a.text(name, ID_MAX_LEN)? {
        Some(g) => Guid::parse(&g).map(Some).map_err(|_| {
            invalid(format!(
                "`{name}` must be a relation id (GUID) as returned by get_relations or search_relations."
            ))
        }),
        None => Ok(None),
    }
}

/// The JSON Schema of the common `division` argument; its bounds are
/// those [`Args::division`] enforces.
pub(super) fn division_schema() -> Value {
    serde_json::json!({
        "type": ["integer", "string"],
        "minimum": 1,
        "maximum": DivisionRef::MAX_CODE,
        "maxLength": DivisionRef::MAX_LEN,
        "pattern": "^((nl|be|de|uk|us|es|fr):)?[0-9]{1,9}$",
        "description": "Exact division code (administratie) from list_divisions, e.g. 123456; the default administration when omitted. \
    Division codes are unique per Exact site only: when list_divisions shows the same code in two regions, pass it with its region as text, e.g. \"be:123456\"."
    })
}

/// What an Exact error means for the assistant.
pub(super) fn exact_failure(e: &ExactError) -> ToolResult {
    match e {
        ExactError::RateLimited { reset_at, .. } => failed(
            format!(
                "Exact Online's rate limit for this administration is used up until {} UTC; try again after that.",
                reset_at.format("%H:%M")
            ),
            Outcome::UpstreamError,
        ),
        ExactError::Forbidden { .. } => failed(
            "Exact Online refused access to this data for this administration (a module or user right is missing in Exact).",
            Outcome::Forbidden,
        ),
        ExactError::Unauthorized | ExactError::InvalidGrant(_) => failed(
            "The Exact Online connection is no longer authorised; reconnect Exact in the portal.",
            Outcome::UpstreamError,
        ),
        _ => failed(
            "Exact Online is temporarily unavailable; try again in a minute.",
            Outcome::UpstreamError,
        ),
    }
}

/// The administration a call asks for, or the message that says why it
/// cannot be used (a code shared by two Exact sites lists the candidates).
pub(super) fn choose(
    active: &[Administration],
    plan: boekhouding_core::plan::Plan,
    division: Option<DivisionRef>,
) -> Result<Administration, ToolResult> {
    administrations::resolve(active, plan, division).map_err(|e| match e {
        DivisionError::NotAllowed(_) => failed(e.to_string(), Outcome::Forbidden),
        DivisionError::Ambiguous { .. } => failed(e.to_string(), Outcome::InvalidArguments),
        DivisionError::NoneActive => failed(e.to_string(), Outcome::ToolError),
    })
}

/// An administration and a client for it.
pub(super) struct Connected<'c, P: Platform> {
    pub admin: Administration,
    pub client: ExactClient<'c, P::Http, P::Clock>,
    connection_id: String,
    /// The Exact app the tokens belong to (`None` for a demo).
    app: Option<ExactApp>,
}

/// Resolves the administration and a usable Exact client for a call.
pub(super) async fn connect<'c, P: Platform>(
    ctx: &'c Bookkeeping<'_, P>,
    division: Option<DivisionRef>,
) -> Result<Connected<'c, P>, ToolResult> {
    let p = ctx.platform;
    let internal = |_| {
        failed(
            "The service is temporarily unavailable; try again shortly.",
            Outcome::InternalError,
        )
    };
    let active = ctx.active_administrations().await.map_err(internal)?;
    let admin = choose(&active, ctx.principal.plan, division)?;
    if let Caller::Demo(tenant) = &ctx.principal.caller {
        // The platform's transport serves the demo books; no token.
        return Ok(Connected {
            admin,
            client: ExactClient::new(p.http(), p.clock(), &tenant.base_url, Secret::new("demo")),
            connection_id: tenant.connection.id.clone(),
            app: None,
        });
    }
    let settings = ctx.exact.ok_or_else(|| {
        failed(
            "Exact Online is not configured on this server.",
            Outcome::InternalError,
        )
    })?;
    // The connection row (sealed tokens included) usually came with the
    // caller's one round trip.
    let loaded = p.loaded().and_then(|l| {
        l.connections
            .iter()
            .find(|c| c.id == admin.connection_id)
            .cloned()
    });
    let conn = match loaded {
        Some(conn) => Some(conn),
        None => connections::find_by_id(p.db(), &admin.connection_id)
            .await
            .map_err(internal)?,
    }
    .ok_or_else(|| {
        failed(
            "The Exact connection of this administration is gone; reconnect Exact in the portal.",
            Outcome::ToolError,
        )
    })?;
    // Tells the token cron this connection is in use (at most one write
    // per few minutes), after the answer: a failure there must not fail
    // the tool call.
    if let Some(touch) = connections::touch_if_stale_statement(
        &conn,
        p.clock().now(),
        chrono::Duration::minutes(LAST_USED_GRANULARITY_MINUTES),
    ) {
        p.after_answer(vec![touch]).await;
    }
    let app = settings.app_for(conn.region);
    let access = AccessContext {
        db: p.db(),
        http: p.http(),
        rng: p.rng(),
        sleep: p.sleep(),
        keyring: &settings.keyring,
        app: &app,
    };
    let owner = ctx
        .principal
        .request_id
        .clone()
        .unwrap_or_else(|| "mcp".into());
    // The row just read usually holds a usable token: no lease, no
    // refresh, no further read.
    let handed = usable_token::<P>(&access, &conn, p.clock().now()).await;
    let mut attempt = 0;
    let token = loop {
        let result = match &handed {
            Ok(Some(fresh)) if attempt == 0 => Ok(fresh.clone()),
            _ => {
                let job = RefreshJob {
                    keyring: settings.keyring.clone(),
                    app: app.clone(),
                    connection_id: conn.id.clone(),
                    owner: owner.clone(),
                    now: p.clock().now(),
                    kind: RefreshKind::IfDue,
                };
                p.refresh_detached(job).await
            }
        };
        match result {
            Ok(a) => break a.access_token,
            // Another request is refreshing this connection right now.
            Err(AccessError::LeaseBusy) if attempt < 25 => {
                attempt += 1;
                p.sleep().sleep_ms(200).await;
            }
            Err(AccessError::ReconnectNeeded)
            | Err(AccessError::Refresh {
                reconnect_needed: true,
                ..
            }) => {
                return Err(failed(
                    format!(
                        "The Exact Online connection needs to be renewed: sign in with Exact again at {}/connect.",
                        ctx.portal_url
                    ),
                    Outcome::UpstreamError,
                ));
            }
            Err(AccessError::Refresh { error, .. }) => {
                if error.needs_operator() {
                    p.report(&format!(
                        "exact token refresh refused on our side: {} (check EXACT_CLIENT_ID / EXACT_CLIENT_SECRET)",
                        error.short_reason()
                    ));
                }
                return Err(exact_failure(&error));
            }
            // A transient database fault: the lease statement is re-entrant
            // for this request, so asking again is safe.
            Err(AccessError::Storage(e)) if e.is_retryable() && attempt < 25 => {
                p.report(&format!("exact access, retrying: {e}"));
                attempt += 1;
                p.sleep().sleep_ms(200).await;
            }
            Err(e) => {
                p.report(&format!("exact access failed: {e}"));
                return Err(failed(
                    "The service is temporarily unavailable; try again shortly.",
                    Outcome::InternalError,
                ));
            }
        }
    };
    let client = ExactClient::new(p.http(), p.clock(), &app.base_url, token);
    Ok(Connected {
        admin,
        client,
        connection_id: conn.id,
        app: Some(app),
    })
}

impl<P: Platform> Connected<'_, P> {
    pub fn division(&self) -> Division {
        Division(self.admin.division_code)
    }

    /// Like [`Connected::list`] for slow-changing reference data, through
    /// the cache. The key names the connection and the division, so one
    /// tenant's data is never served to another (division numbers are
    /// only unique within one Exact site).
    pub async fn cached_list(
        &mut self,
        ctx: &Bookkeeping<'_, P>,
        name: &str,
        query: &Query,
        cap: usize,
        ttl_seconds: u32,
    ) -> Result<Listed, ToolResult> {
        let key = format!(
            "exact:v1:{}:{}:{name}",
            self.connection_id, self.admin.division_code
        );
        let cache = ctx.platform.cache();
        if let Ok(Some(hit)) = cache.get(&key).await
            && let Ok(Value::Array(rows)) = serde_json::from_str::<Value>(&hit)
        {
            let rows: Vec<Map<String, Value>> = rows
                .into_iter()
                .filter_map(|r| match r {
                    Value::Object(o) => Some(o),
                    _ => None,
                })
                .collect();
            return Ok(Listed {
                rows,
                truncated: false,
                pages: 0,
            });
        }
        let listed = self.list(ctx, query, cap).await?;
        if !listed.truncated {
            let rows: Vec<Value> = listed.rows.iter().cloned().map(Value::Object).collect();
            // A cache failure only costs speed.
            let _ = cache
                .put(&key, &Value::Array(rows).to_string(), ttl_seconds)
                .await;
        }
        Ok(listed)
    }

    /// Lists with one retry after an Exact 401 (a token revoked or expired
    /// early), refreshing under the lease first.
    pub async fn list(
        &mut self,
        ctx: &Bookkeeping<'_, P>,
        query: &Query,
        cap: usize,
    ) -> Result<Listed, ToolResult> {
        match self.client.list(self.division(), query, cap).await {
            Err(ExactError::Unauthorized) => {
                let settings = ctx
                    .exact
                    .ok_or_else(|| exact_failure(&ExactError::Unauthorized))?;
                let app = self
                    .app
                    .as_ref()
                    .ok_or_else(|| exact_failure(&ExactError::Unauthorized))?;
                let p = ctx.platform;
                let owner = ctx
                    .principal
                    .request_id
                    .clone()
                    .unwrap_or_else(|| "mcp".into());
                let job = RefreshJob {
                    keyring: settings.keyring.clone(),
                    app: app.clone(),
                    connection_id: self.connection_id.clone(),
                    owner,
                    now: p.clock().now(),
                    kind: RefreshKind::Now,
                };
                match p.refresh_detached(job).await {
                    Ok(fresh) => self.client.set_token(fresh.access_token),
                    Err(_) => return Err(exact_failure(&ExactError::Unauthorized)),
                }
                self.client
                    .list(self.division(), query, cap)
                    .await
                    .map_err(|e| exact_failure(&e))
            }
            other => other.map_err(|e| exact_failure(&e)),
        }
    }
}
