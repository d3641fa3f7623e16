//! What the mcp-server's one log line (and, for a `tools/call`, its
//! Analytics Engine data point) says about an MCP exchange: the JSON-RPC
//! method and tool (only names this server knows), who asked (a hashed
//! user tag, never the id or the credential) and how it ended (the status,
//! or for a 200 what the JSON-RPC answer said). The record itself is
//! `boekhouding_core::observe::RequestLog`.

use boekhouding_core::observe::{AuthTag, Outcome, RequestLog, UserTag};
use boekhouding_core::storage::usage::AuthKind;

use crate::http::HttpReply;
use crate::tools::{Caller, Principal, is_app_tool, is_metered_tool};

/// The JSON-RPC methods this server answers (both eras), the only ones a
/// log line names; anything else a client sends is logged as `other`.
pub const RPC_METHODS: &[&str] = &[
    "initialize",
    "notifications/initialized",
    "notifications/cancelled",
    "ping",
    "server/discover",
    "tools/list",
    "tools/call",
    "prompts/list",
    "prompts/get",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "completion/complete",
];

/// Fills in what the request asked, from its body's
/// [`rpc_summary`](crate::tools::rpc_summary) (read once per request): its
/// method and, for a `tools/call`, the tool (a catalogue or MCP Apps
/// helper name, or `other`).
pub fn describe_request(log: &mut RequestLog, method: Option<&str>, tool: Option<&str>) {
    log.set_rpc_method(method, RPC_METHODS);
    log.set_tool(tool, |t| is_metered_tool(t) || is_app_tool(t));
}

/// Fills in who asked: the kind of credential and the user's tag (`demo`
/// for the public demo keys).
pub fn describe_principal(log: &mut RequestLog, principal: &Principal) {
    let (auth, user) = match &principal.caller {
        Caller::Demo(_) => (AuthTag::Demo, UserTag::demo()),
        Caller::Customer(AuthKind::ApiKey { .. }) => {
            (AuthTag::ApiKey, UserTag::of(&principal.user_id))
        }
        Caller::Customer(AuthKind::OAuth { .. }) => {
            (AuthTag::OAuth, UserTag::of(&principal.user_id))
        }
    };
    log.auth = auth;
    log.user = Some(user);
}

/// Fills in what the engine answered, so a 200 carrying a JSON-RPC error
/// or a tool's `isError` is not logged as plainly ok.
pub fn describe_reply(log: &mut RequestLog, reply: &HttpReply) {
    log.body_outcome = Some(Outcome::of_answer(reply.status, reply.body.as_ref()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_and_app_tools_are_named_and_anything_else_is_other() {
        for (sent, logged) in [
            ("list_divisions", "list_divisions"),
            ("get_profit_loss_by_month", "get_profit_loss_by_month"),
            ("jan@example.nl", "other"),
        ] {
            let mut log = RequestLog::begin("r", "mcp-server", "/mcp", "POST");
            describe_request(&mut log, Some("tools/call"), Some(sent));
            assert_eq!(log.tool.as_deref(), Some(logged));
            assert_eq!(log.rpc_method.as_deref(), Some("tools/call"));
        }
        let mut log = RequestLog::begin("r", "mcp-server", "/mcp", "POST");
        describe_request(&mut log, Some("pmjb_0123456789abcdef"), None);
        assert_eq!((log.rpc_method.as_deref(), log.tool), (Some("other"), None));
    }
}
