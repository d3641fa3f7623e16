//! `list_divisions`: the user's Exact administrations and their health.

use serde_json::{Value, json};

use boekhouding_core::storage::StorageError;
use boekhouding_core::storage::administrations;
use boekhouding_core::storage::usage::Outcome;

use super::{Bookkeeping, Platform, ToolResult, read_only};

pub fn definition() -> Value {
    json!({
        "name": "list_divisions",
        "title": "List administrations",
        "description": "Lists the Exact Online administrations (administraties, divisions) this account may query, \
    with their division code, name, whether it is the default, and the health of the Exact connection. \
    Call this first: every other tool takes an optional `division` code from this list and uses the default administration otherwise. \
    Division codes are unique per Exact site only: when two administrations share a code (in different regions), `division_ref` is \"<region>:<code>\" (e.g. \"be:123456\") and the tools need that form.",
        "inputSchema": {"type": "object", "properties": {}, "additionalProperties": false},
        "outputSchema": {
            "type": "object",
            "properties": {
                "administrations": {"type": "array", "items": {"type": "object", "properties": {
                    "division": {"type": "integer"}, "division_ref": {"type": "string", "description": "What to pass as `division`: the code, or region:code when the code exists at two Exact sites."},
                    "name": {"type": "string"}, "is_default": {"type": "boolean"},
                    "region": {"type": "string"}, "connection_status": {"type": "string"}
                }, "required": ["division", "division_ref", "name", "is_default", "region", "connection_status"]}},
                "count": {"type": "integer"}
            },
            "required": ["administrations", "count"]
        },
        "annotations": read_only(),
    })
}

pub(super) async fn list_divisions<P: Platform>(
    ctx: &Bookkeeping<'_, P>,
    args: &Value,
) -> Result<ToolResult, StorageError> {
    if args.as_object().is_some_and(|o| !o.is_empty()) {
        return Ok(ToolResult::Failed {
            message: "list_divisions takes no arguments.".into(),
            outcome: Outcome::InvalidArguments,
        });
    }
    let conns = ctx.connections().await?;
    let active = ctx.active_administrations().await?;
    let admins = administrations::allowed(&active, ctx.principal.plan);
    let rows: Vec<Value> = admins
        .iter()
        .map(|a| {
            let conn = conns.iter().find(|c| c.id == a.connection_id);
            json!({
                "division": a.division_code,
                "division_ref": administrations::reference(&active, a),
                "name": a.name,
                "is_default": a.is_default,
                "region": a.region.code(),
                "connection_status": conn.map(|c| c.state.status.as_str()).unwrap_or("missing"),
            })
        })
        .collect();
    let text = if rows.is_empty() {
        "No administrations are connected yet. Connect Exact Online in the portal first.".to_owned()
    } else {
        rows.iter()
            .map(|r| {
                format!(
                    "{} {}{} ({})",
                    r["division_ref"].as_str().unwrap_or(""),
                    r["name"].as_str().unwrap_or(""),
                    if r["is_default"] == true {
                        " [default]"
                    } else {
                        ""
                    },
                    r["connection_status"].as_str().unwrap_or("")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    Ok(ToolResult::Ok {
        structured: json!({"count": rows.len(), "administrations": rows}),
        text,
        division: None,
        exact_calls: 0,
    })
}
