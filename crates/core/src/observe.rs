//! What an operator sees of each request and each cron run, pure: the one
//! JSON log line per request (and per scheduled run or queue batch), the
//! Workers Analytics Engine data point per tool call, and the hashed user
//! tag both carry. The Workers fill these in from what they already know
//! and print or write them; nothing here can hold a raw path, a query
//! string, a credential, an e-mail address or an IP address, because every
//! field is either a fixed name, a number, the request id, or a hash.

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::storage::cron_runs::{RunMode, RunOutcome, RunSummary};

/// A user as logs and metrics name them: the first 16 hex digits of
/// SHA-256 over a fixed label and the user id. It groups one user's lines
/// without the id itself (user ids are keys to rows, and with the label a
/// tag cannot be looked up in a table of plain id hashes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct UserTag(String);

impl UserTag {
    /// The tag of a user id.
    pub fn of(user_id: &str) -> UserTag {
        let digest = Sha256::digest(format!("pmjb-user:{user_id}").as_bytes());
        UserTag(hex::encode(&digest[..8]))
    }

    /// The tag every demo request shares (demo keys are public and belong
    /// to no one).
    pub fn demo() -> UserTag {
        UserTag("demo".to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// How a request proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthTag {
    /// No credential (public pages, health, metadata) or a refused one.
    None,
    Demo,
    ApiKey,
    OAuth,
    /// The operator's bearer token (`/health/deep`).
    Operator,
    /// A portal session cookie.
    Session,
}

impl AuthTag {
    pub const fn as_str(self) -> &'static str {
        match self {
            AuthTag::None => "none",
            AuthTag::Demo => "demo",
            AuthTag::ApiKey => "api_key",
            AuthTag::OAuth => "oauth",
            AuthTag::Operator => "operator",
            AuthTag::Session => "session",
        }
    }
}

/// How a request ended, in words an operator filters on. The HTTP status
/// says most of it; an MCP answer can also be a 200 carrying a JSON-RPC
/// error or a tool's own error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    /// A `tools/call` answered with `isError: true` (the tool ran and said
    /// why it could not answer, e.g. the plan's limit or Exact refusing).
    ToolError,
    /// A JSON-RPC error in a 2xx answer.
    RpcError,
    Unauthenticated,
    Forbidden,
    NotFound,
    RateLimited,
    ClientError,
    Unavailable,
    ServerError,
}

impl Outcome {
    /// The outcome an HTTP status alone says.
    pub const fn from_status(status: u16) -> Outcome {
        match status {
            401 => Outcome::Unauthenticated,
            403 => Outcome::Forbidden,
            404 => Outcome::NotFound,
            429 => Outcome::RateLimited,
            503 => Outcome::Unavailable,
            400..=499 => Outcome::ClientError,
            500..=599 => Outcome::ServerError,
            _ => Outcome::Ok,
        }
    }

    /// The outcome of a JSON(-RPC) answer: a 2xx whose body is a JSON-RPC
    /// error, or a tool result flagged `isError`, is not plainly ok.
    pub fn of_answer(status: u16, body: Option<&serde_json::Value>) -> Outcome {
        let by_status = Outcome::from_status(status);
        if by_status != Outcome::Ok {
            return by_status;
        }
        match body {
            Some(b)
                if b.get("error").is_some_and(|e| !e.is_null()) && b.get("jsonrpc").is_some() =>
            {
                Outcome::RpcError
            }
            Some(b)
                if b.pointer("/result/isError")
                    .and_then(serde_json::Value::as_bool)
                    == Some(true) =>
            {
                Outcome::ToolError
            }
            _ => Outcome::Ok,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::ToolError => "tool_error",
            Outcome::RpcError => "rpc_error",
            Outcome::Unauthenticated => "unauthenticated",
            Outcome::Forbidden => "forbidden",
            Outcome::NotFound => "not_found",
            Outcome::RateLimited => "rate_limited",
            Outcome::ClientError => "client_error",
            Outcome::Unavailable => "unavailable",
            Outcome::ServerError => "server_error",
        }
    }
}

/// The route of a request that matched none: logged under this name, never
/// with the path it asked for (a path can hold a code or a key).
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// The HTTP method as a fixed name (`OTHER` for anything unusual), so a
/// crafted method cannot carry text into the log.
pub fn method_name(method: &str) -> &'static str {
    const KNOWN: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"];
    KNOWN
        .into_iter()
        .find(|m| m.eq_ignore_ascii_case(method))
        .unwrap_or("OTHER")
}

/// A name from a request (an MCP method, a tool) as it may be logged: one
/// of `known`, else `"other"`. What a client sends is never logged as sent.
pub fn vetted<'k>(value: &str, known: &[&'k str]) -> &'k str {
    known
        .iter()
        .copied()
        .find(|k| *k == value)
        .unwrap_or("other")
}

/// The costs a request (or run) counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Costs {
    /// Outbound HTTP requests: on the mcp-server every one goes to Exact
    /// (or, for a demo key, to the in-isolate demo books).
    pub exact_calls: u32,
    /// Database round trips (a batch is one).
    pub d1_round_trips: u32,
    /// Statements those round trips carried.
    pub d1_statements: u32,
}

/// One request as its log line records it. Every text field is a fixed
/// name, the request id or a [`UserTag`]: see the module docs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequestLog {
    pub request_id: String,
    pub worker: &'static str,
    /// The route's name (a template such as `/demo/{key}`), never the path.
    pub route: &'static str,
    pub method: &'static str,
    /// The MCP JSON-RPC method (mcp-server), vetted against the known
    /// ones: set it with [`Self::set_rpc_method`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rpc_method: Option<String>,
    /// The tool of a `tools/call`, vetted against the catalogue: set it
    /// with [`Self::set_tool`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    pub status: u16,
    pub outcome: Outcome,
    pub auth: AuthTag,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<UserTag>,
    pub latency_ms: u64,
    #[serde(flatten)]
    pub costs: Costs,
    /// What the answer's body said ([`Outcome::of_answer`]), when the
    /// status alone does not tell; [`Self::answered`] uses it for 2xx.
    #[serde(skip)]
    pub body_outcome: Option<Outcome>,
}

/// The log line's first field, so a line is recognisable and queries can
/// filter on it.
#[derive(Serialize)]
struct Line<'a, T: Serialize> {
    log: &'static str,
    #[serde(flatten)]
    record: &'a T,
}

impl RequestLog {
    /// A record for a request, to be completed once it is answered. The
    /// status is 0 and the outcome `server_error` until [`Self::answered`].
    pub fn begin(
        request_id: &str,
        worker: &'static str,
        route: &'static str,
        method: &str,
    ) -> Self {
        RequestLog {
            request_id: request_id.to_owned(),
            worker,
            route,
            method: method_name(method),
            rpc_method: None,
            tool: None,
            status: 0,
            outcome: Outcome::ServerError,
            auth: AuthTag::None,
            user: None,
            latency_ms: 0,
            costs: Costs::default(),
            body_outcome: None,
        }
    }

    /// The MCP method a client sent, logged only when it is one of `known`.
    pub fn set_rpc_method(&mut self, method: Option<&str>, known: &[&str]) {
        self.rpc_method = method.map(|m| vetted(m, known).to_owned());
    }

    /// The tool a `tools/call` named, logged only when `is_known` says it
    /// is in the catalogue (`"other"` otherwise).
    pub fn set_tool(&mut self, tool: Option<&str>, is_known: impl Fn(&str) -> bool) {
        self.tool = tool.map(|t| {
            if is_known(t) {
                t.to_owned()
            } else {
                "other".to_owned()
            }
        });
    }

    /// Records the answer's status and the time it took; the outcome is
    /// the status's, or for a 2xx what the body said ([`Self::body_outcome`]).
    pub fn answered(&mut self, status: u16, latency_ms: i64) {
        self.status = status;
        let by_status = Outcome::from_status(status);
        self.outcome = match self.body_outcome {
            Some(finer) if by_status == Outcome::Ok => finer,
            _ => by_status,
        };
        self.latency_ms = u64::try_from(latency_ms).unwrap_or(0);
    }

    /// The one JSON line this request prints.
    pub fn to_line(&self) -> String {
        serde_json::to_string(&Line {
            log: "request",
            record: self,
        })
        .unwrap_or_else(|_| {
            format!(
                "{{\"log\":\"request\",\"request_id\":{:?}}}",
                self.request_id
            )
        })
    }

    /// The Analytics Engine data point of a tool call (`None` for any
    /// other request): demo calls included, so the demo's use is counted
    /// beside the customers'.
    pub fn tool_call_point(&self, environment: &str) -> Option<ToolCallPoint> {
        let tool = self.tool.as_deref()?;
        Some(ToolCallPoint {
            index: self
                .user
                .as_ref()
                .map_or_else(|| "anonymous".to_owned(), |u| u.as_str().to_owned()),
            tool: tool.to_owned(),
            outcome: self.outcome,
            auth: self.auth,
            environment: vetted(environment, &["local", "staging", "production"]).to_owned(),
            latency_ms: self.latency_ms,
            exact_calls: self.costs.exact_calls,
            d1_round_trips: self.costs.d1_round_trips,
        })
    }
}

/// One tool call as a Workers Analytics Engine data point. The column
/// order is the SQL API's: `index1`, `blob1`… `blob4`, `double1`…
/// `double3` (see `docs/runbooks/OBSERVABILITY.md`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolCallPoint {
    /// `index1`: the user's tag, or `demo`.
    pub index: String,
    /// `blob1`.
    pub tool: String,
    /// `blob2`.
    pub outcome: Outcome,
    /// `blob3`.
    pub auth: AuthTag,
    /// `blob4`: `local`, `staging` or `production`.
    pub environment: String,
    /// `double1`.
    pub latency_ms: u64,
    /// `double2`.
    pub exact_calls: u32,
    /// `double3`.
    pub d1_round_trips: u32,
}

impl ToolCallPoint {
    /// The blobs in column order.
    pub fn blobs(&self) -> [&str; 4] {
        [
            &self.tool,
            self.outcome.as_str(),
            self.auth.as_str(),
            &self.environment,
        ]
    }

    /// The doubles in column order.
    pub fn doubles(&self) -> [f64; 3] {
        // Latencies and counts are far below 2^53: exact as f64.
        [
            self.latency_ms as f64,
            f64::from(self.exact_calls),
            f64::from(self.d1_round_trips),
        ]
    }
}

/// Prints nothing itself: records the tool call's data point (if the
/// request was one) through `metrics` and returns the log line to print.
pub fn finish(log: &RequestLog, environment: &str, metrics: &impl crate::ports::Metrics) -> String {
    if let Some(point) = log.tool_call_point(environment) {
        metrics.record(&point);
    }
    log.to_line()
}

/// One scheduled run or queue batch of the token cron as its log line
/// records it: the same counters as its `cron_runs` row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunLog {
    /// `cron-{id}` or `queue-{id}` (the `cron_runs` row), or the
    /// invocation's own id when no row could be opened.
    pub request_id: String,
    pub worker: &'static str,
    /// `scheduled` or `queue`.
    pub route: &'static str,
    pub mode: &'static str,
    pub outcome: &'static str,
    pub latency_ms: u64,
    pub due: u32,
    pub refreshed: u32,
    pub retried: u32,
    pub failed: u32,
    pub skipped: u32,
    pub enqueued: u32,
    pub emails_sent: u32,
    pub emails_failed: u32,
    pub purged: u32,
    pub resealed: u32,
    pub exact_calls: u32,
    pub d1_round_trips: u32,
    /// Whether the breaker stopped refreshing; its reason is in the
    /// `cron_runs` row (the log holds no text an upstream answer shaped).
    pub breaker: bool,
}

impl RunLog {
    /// The line of a run that finished (well or not) with a report.
    pub fn of_run(
        request_id: String,
        worker: &'static str,
        mode: RunMode,
        outcome: RunOutcome,
        summary: &RunSummary,
        breaker: Option<&str>,
        latency_ms: i64,
    ) -> RunLog {
        RunLog {
            request_id,
            worker,
            route: if mode == RunMode::Consume {
                "queue"
            } else {
                "scheduled"
            },
            mode: mode.as_str(),
            outcome: outcome.as_str(),
            latency_ms: u64::try_from(latency_ms).unwrap_or(0),
            due: summary.due,
            refreshed: summary.refreshed,
            retried: summary.retried,
            failed: summary.failed,
            skipped: summary.skipped,
            enqueued: summary.enqueued,
            emails_sent: summary.emails_sent,
            emails_failed: summary.emails_failed,
            purged: summary.purged,
            resealed: summary.resealed,
            exact_calls: summary.exact_calls,
            d1_round_trips: summary.d1_queries,
            breaker: breaker.is_some(),
        }
    }

    /// The line of a run that could not start (configuration, database).
    pub fn failed_to_start(
        request_id: String,
        worker: &'static str,
        mode: RunMode,
        latency_ms: i64,
    ) -> RunLog {
        RunLog::of_run(
            request_id,
            worker,
            mode,
            RunOutcome::Error,
            &RunSummary::default(),
            None,
            latency_ms,
        )
    }

    pub fn to_line(&self) -> String {
        serde_json::to_string(&Line {
            log: "run",
            record: self,
        })
        .unwrap_or_else(|_| format!("{{\"log\":\"run\",\"request_id\":{:?}}}", self.request_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::RecordingMetrics;

    const API_KEY: &str = "pmjb_0123456789abcdef0123456789abcdef0123456789abcdef";
    const BEARER: &str = "pmjb_at_fedcba9876543210fedcba9876543210fedcba98";
    const EMAIL: &str = "jan@bakkerij.example";
    const CODE: &str = "oauthcode_5f2e9c";
    const ADDRESS: &str = "203.0.113.77";
    const USER_ID: &str = "user-0b7e3c1a";

    /// Everything a hostile or careless request could carry, placed where
    /// a Worker gets its log fields from.
    fn hostile_request_line() -> String {
        let path = format!("/demo/{API_KEY}/{CODE}?email={EMAIL}&key={API_KEY}");
        let method = format!("GET {BEARER}");
        let rpc_method = format!("tools/call{EMAIL}");
        let tool = format!("list_divisions {ADDRESS}");
        let mut log = RequestLog::begin("ray-123", "mcp-server", "/demo/{key}", &method);
        // A Worker vets what the client sent; the raw path is never a field.
        assert!(!path.is_empty());
        log.set_rpc_method(Some(&rpc_method), &["tools/call", "tools/list"]);
        log.set_tool(Some(&tool), |t| t == "list_divisions");
        log.auth = AuthTag::ApiKey;
        log.user = Some(UserTag::of(USER_ID));
        log.answered(200, 12);
        log.costs = Costs {
            exact_calls: 2,
            d1_round_trips: 1,
            d1_statements: 7,
        };
        log.to_line()
    }

    #[test]
    fn a_request_line_carries_no_key_token_email_code_address_or_user_id() {
        let line = hostile_request_line();
        for secret in [
            API_KEY, BEARER, EMAIL, CODE, ADDRESS, USER_ID, "?", "email=",
        ] {
            assert!(!line.contains(secret), "{secret} leaked into {line}");
        }
        let json: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(json["log"], "request");
        assert_eq!(json["request_id"], "ray-123");
        assert_eq!(json["route"], "/demo/{key}");
        assert_eq!(json["method"], "OTHER");
        assert_eq!(json["rpc_method"], "other");
        assert_eq!(json["tool"], "other");
        assert_eq!(json["user"], UserTag::of(USER_ID).as_str());
        assert_eq!(json["user"].as_str().unwrap().len(), 16);
    }

    #[test]
    fn a_request_line_has_every_field_an_operator_filters_on() {
        let mut log = RequestLog::begin("abc", "mcp-server", "/mcp", "post");
        log.set_rpc_method(Some("tools/call"), &["tools/call"]);
        log.set_tool(Some("get_trial_balance"), |_| true);
        log.auth = AuthTag::OAuth;
        log.user = Some(UserTag::of("u1"));
        log.costs = Costs {
            exact_calls: 3,
            d1_round_trips: 1,
            d1_statements: 9,
        };
        log.body_outcome = Some(Outcome::ToolError);
        log.answered(200, 41);
        let json: serde_json::Value = serde_json::from_str(&log.to_line()).unwrap();
        let keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        for key in [
            "log",
            "request_id",
            "worker",
            "route",
            "method",
            "rpc_method",
            "tool",
            "status",
            "outcome",
            "auth",
            "user",
            "latency_ms",
            "exact_calls",
            "d1_round_trips",
            "d1_statements",
        ] {
            assert!(keys.contains(&key), "{key} missing from {json}");
        }
        assert_eq!(json["method"], "POST");
        assert_eq!(json["outcome"], "tool_error");
        assert_eq!(json["status"], 200);
        assert_eq!(json["latency_ms"], 41);
    }

    #[test]
    fn the_user_tag_is_stable_distinct_and_not_the_plain_hash_of_the_id() {
        assert_eq!(UserTag::of("a"), UserTag::of("a"));
        assert_ne!(UserTag::of("a"), UserTag::of("b"));
        let plain = hex::encode(Sha256::digest(b"a"));
        assert!(!plain.starts_with(UserTag::of("a").as_str()));
    }

    #[test]
    fn outcomes_follow_the_status_and_the_json_rpc_answer() {
        use serde_json::json;
        assert_eq!(Outcome::from_status(200), Outcome::Ok);
        assert_eq!(Outcome::from_status(302), Outcome::Ok);
        assert_eq!(Outcome::from_status(401), Outcome::Unauthenticated);
        assert_eq!(Outcome::from_status(413), Outcome::ClientError);
        assert_eq!(Outcome::from_status(429), Outcome::RateLimited);
        assert_eq!(Outcome::from_status(503), Outcome::Unavailable);
        assert_eq!(Outcome::from_status(500), Outcome::ServerError);
        let rpc_error = json!({"jsonrpc": "2.0", "id": 1, "error": {"code": -32602}});
        assert_eq!(Outcome::of_answer(200, Some(&rpc_error)), Outcome::RpcError);
        let tool_error = json!({"jsonrpc": "2.0", "id": 1, "result": {"isError": true}});
        assert_eq!(
            Outcome::of_answer(200, Some(&tool_error)),
            Outcome::ToolError
        );
        let ok = json!({"jsonrpc": "2.0", "id": 1, "result": {"isError": false}});
        assert_eq!(Outcome::of_answer(200, Some(&ok)), Outcome::Ok);
        assert_eq!(
            Outcome::of_answer(401, Some(&rpc_error)),
            Outcome::Unauthenticated
        );
        assert_eq!(Outcome::of_answer(202, None), Outcome::Ok);
    }

    #[test]
    fn only_a_tool_call_writes_a_data_point_and_it_has_the_columns_in_order() {
        let metrics = RecordingMetrics::default();
        let mut list = RequestLog::begin("1", "mcp-server", "/mcp", "POST");
        list.set_rpc_method(Some("tools/list"), &["tools/list"]);
        list.answered(200, 5);
        let line = finish(&list, "production", &metrics);
        assert!(line.contains("\"tools/list\""));
        assert!(metrics.points().is_empty(), "tools/list is no tool call");

        let mut call = RequestLog::begin("2", "mcp-server", "/mcp", "POST");
        call.set_rpc_method(Some("tools/call"), &["tools/call"]);
        call.set_tool(Some("list_divisions"), |_| true);
        call.auth = AuthTag::ApiKey;
        call.user = Some(UserTag::of("u9"));
        call.costs.exact_calls = 1;
        call.costs.d1_round_trips = 1;
        call.body_outcome = Some(Outcome::ToolError);
        call.answered(429, 1);
        assert_eq!(
            call.outcome,
            Outcome::RateLimited,
            "the status wins over the body"
        );
        call.body_outcome = None;
        call.answered(200, 33);
        finish(&call, "staging", &metrics);
        let points = metrics.points();
        assert_eq!(points.len(), 1);
        assert_eq!(points[0].index, UserTag::of("u9").as_str());
        assert_eq!(
            points[0].blobs(),
            ["list_divisions", "ok", "api_key", "staging"]
        );
        assert_eq!(points[0].doubles(), [33.0, 1.0, 1.0]);
        // An environment name outside the three is not written as given.
        let odd = call.tool_call_point("prod\nuction").unwrap();
        assert_eq!(odd.environment, "other");
    }

    #[test]
    fn a_run_line_carries_the_runs_counters_and_no_upstream_text() {
        let summary = RunSummary {
            due: 4,
            refreshed: 3,
            failed: 1,
            exact_calls: 4,
            d1_queries: 6,
            ..RunSummary::default()
        };
        let line = RunLog::of_run(
            "cron-17".into(),
            "token-cron",
            RunMode::Inline,
            RunOutcome::Partial,
            &summary,
            Some(&format!("invalid_client: Exact said {EMAIL}")),
            250,
        )
        .to_line();
        assert!(!line.contains(EMAIL), "{line}");
        let json: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(json["log"], "run");
        assert_eq!(json["request_id"], "cron-17");
        assert_eq!(json["route"], "scheduled");
        assert_eq!(json["outcome"], "partial");
        assert_eq!(json["refreshed"], 3);
        assert_eq!(json["exact_calls"], 4);
        assert_eq!(json["d1_round_trips"], 6);
        assert_eq!(json["breaker"], true);
        let queue = RunLog::failed_to_start("queue-x".into(), "token-cron", RunMode::Consume, 3);
        let json: serde_json::Value = serde_json::from_str(&queue.to_line()).unwrap();
        assert_eq!(
            (json["route"].as_str(), json["outcome"].as_str()),
            (Some("queue"), Some("error"))
        );
    }
}
