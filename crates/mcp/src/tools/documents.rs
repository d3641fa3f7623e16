//! `get_document_content`: the content of one document attachment
//! (bijlage), as text when it is text and as base64 otherwise, within a
//! size cap that is checked before anything is downloaded (the listed
//! size) and while downloading (the stream stops at the cap).

use base64::Engine as _;
use boekhouding_core::exact::{Filter, Guid, Query};
use boekhouding_core::storage::StorageError;
use boekhouding_core::storage::usage::Outcome;
use serde_json::{Value, json};

use super::exact::{Args, ID_MAX_LEN, connect, division_schema, exact_failure, failed, id_schema};
use super::{Bookkeeping, Platform, ToolResult, read_only};

/// Largest file the tool downloads.
pub const MAX_BYTES: u64 = 1_048_576;

pub fn definition() -> Value {
    json!({
        "name": "get_document_content",
        "title": "Document content (bijlage openen)",
        "description": format!("Returns the content of one document attachment (bijlage) by its id from get_document_attachments: as text when the file is text (XML, CSV, plain text, UBL invoices), otherwise base64 with its content type. Files over {} KiB are not downloaded; the answer says so and gives the file's size and name.", MAX_BYTES / 1024),
        "inputSchema": {"type": "object", "properties": {
            "division": division_schema(),
            "attachment_id": id_schema("The attachment's id (a GUID) from get_document_attachments."),
            "max_bytes": {"type": "integer", "minimum": 1, "maximum": MAX_BYTES, "default": MAX_BYTES, "description": "Refuse files larger than this."}
        }, "required": ["attachment_id"], "additionalProperties": false},
        "outputSchema": {"type": "object", "properties": {
            "division": {"type": "integer"}, "file_name": {"type": "string"}, "size_bytes": {"type": "integer"},
            "content_type": {"type": ["string", "null"]}, "encoding": {"type": "string", "enum": ["text", "base64"]},
            "content": {"type": "string"}
        }, "required": ["division", "file_name", "size_bytes", "encoding", "content"]},
        "annotations": read_only(),
    })
}

pub(super) async fn get_document_content<P: Platform>(
    ctx: &Bookkeeping<'_, P>,
    args: &Value,
) -> Result<ToolResult, StorageError> {
    let parsed = (|| {
        let a = Args::parse(args, &["division", "attachment_id", "max_bytes"])?;
        let raw = a.text("attachment_id", ID_MAX_LEN)?.ok_or_else(|| {
            failed(
                "`attachment_id` is required (from get_document_attachments).",
                Outcome::InvalidArguments,
            )
        })?;
        let id = Guid::parse(&raw).map_err(|_| {
            failed(
                "`attachment_id` must be an attachment id (GUID) from get_document_attachments.",
                Outcome::InvalidArguments,
            )
        })?;
        let cap = a
            .int("max_bytes", 1, MAX_BYTES as i64)?
            .unwrap_or(MAX_BYTES as i64) as u64;
        Ok::<_, ToolResult>((a.division()?, id, cap))
    })();
    let (division, id, cap) = tool_try!(parsed);
    let mut conn = tool_try!(connect(ctx, division).await);
    let found = tool_try!(
        conn.list(
            ctx,
            &Query::new(
                "documents/DocumentAttachments",
                &["ID", "FileName", "FileSize", "Url"]
            )
            .filter(Some(Filter::eq("ID", id))),
            1,
        )
        .await
    );
    let Some(row) = found.rows.first() else {
        return Ok(failed(
            "No attachment with that id in this administration; list them with get_document_attachments.",
            Outcome::ToolError,
        ));
    };
    let name = row
        .get("FileName")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let size = row.get("FileSize").and_then(Value::as_u64).unwrap_or(0);
    if size > cap {
        return Ok(failed(
            format!(
                "{name} is {size} bytes, over the limit of {cap} bytes for reading through the assistant; open it in Exact Online instead."
            ),
            Outcome::ToolError,
        ));
    }
    let url = row
        .get("Url")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    // The listed size may be missing or stale: the download itself stops
    // at the caller's cap, so no file costs more than `max_bytes`.
    let file = match conn.client.download(&url, cap as usize).await {
        Ok(f) => f,
        Err(e) => return Ok(exact_failure(&e)),
    };
    if file.truncated {
        return Ok(failed(
            format!(
                "{name} turned out larger than the limit of {cap} bytes for reading through the assistant; open it in Exact Online instead."
            ),
            Outcome::ToolError,
        ));
    }
    let text = std::str::from_utf8(&file.bytes)
        .ok()
        .filter(|t| !t.contains('\0'))
        .map(str::to_owned);
    let (encoding, content) = match &text {
        Some(t) => ("text", t.clone()),
        None => (
            "base64",
            base64::engine::general_purpose::STANDARD.encode(&file.bytes),
        ),
    };
    let summary = match &text {
        Some(t) => format!(
            "{name} ({} bytes):\n{}",
            file.bytes.len(),
            t.chars().take(20_000).collect::<String>()
        ),
        None => format!(
            "{name} ({} bytes, {}) is binary; its base64 content is in the structured result.",
            file.bytes.len(),
            file.content_type.as_deref().unwrap_or("unknown type")
        ),
    };
    Ok(ToolResult::Ok {
        structured: json!({
            "division": conn.admin.division_code, "file_name": name, "size_bytes": file.bytes.len(),
            "content_type": file.content_type, "encoding": encoding, "content": content,
        }),
        text: summary,
        division: Some(conn.admin.division_code),
        exact_calls: conn.client.calls_made(),
    })
}
