//! `cargo xtask keys status [--env E]`: how many Exact connections each
//! token encryption key still seals, so an operator retires a key from
//! `TOKEN_ENCRYPTION_KEY` only once nothing depends on it (the cron and
//! every read reseal rows with the current key; this shows the progress).

use anyhow::{Context, Result, bail};
use boekhouding_core::storage::connections::KEY_USAGE_SQL;

use crate::process;
use crate::tools::Tools;

/// Runs the report against the local D1 of `cargo xtask dev` or a
/// deployed environment's D1.
pub fn run(tools: &Tools, sub: Option<&str>, env: Option<&str>) -> Result<()> {
    match sub {
        Some("status") => {}
        other => bail!("usage: cargo xtask keys status [--env staging|production] (got {other:?})"),
    }
    let rows = match env {
        None => {
            let state = tools.root.join(".state/dev");
            process::d1_query(tools, &state, KEY_USAGE_SQL)?
        }
        Some(env) => process::d1_query_remote(tools, env, KEY_USAGE_SQL)?,
    };
    print!("{}", render(&rows)?);
    Ok(())
}

/// The report as text: one line per key id, then what it means.
pub fn render(rows: &[serde_json::Value]) -> Result<String> {
    let mut out = String::from("key id  connections sealed with it\n");
    if rows.is_empty() {
        out.push_str("(no connections)\n");
    }
    for row in rows {
        let key = row
            .get("key_id")
            .context("key usage row without key_id")?
            .as_i64()
            .map_or_else(|| "unreadable".to_owned(), |k| k.to_string());
        let n = row
            .get("connections")
            .and_then(serde_json::Value::as_u64)
            .context("key usage row without a count")?;
        out.push_str(&format!("{key:>6}  {n}\n"));
    }
    out.push_str(
        "A key may leave TOKEN_ENCRYPTION_KEY only when it seals 0 connections; \
         until then keep it after the current key (rows are resealed as they are \
         read, refreshed, or swept by the token cron).\n",
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_lists_each_key_and_its_count() {
        let rows = vec![
            serde_json::json!({"key_id": 1, "connections": 12}),
            serde_json::json!({"key_id": 2, "connections": 30}),
            serde_json::json!({"key_id": null, "connections": 1}),
        ];
        let text = render(&rows).unwrap_or_default();
        assert!(text.contains("     1  12\n"), "{text}");
        assert!(text.contains("     2  30\n"), "{text}");
        assert!(text.contains("unreadable  1\n"), "{text}");
        assert!(render(&[serde_json::json!({"connections": 1})]).is_err());
    }
}
