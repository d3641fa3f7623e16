//! Exact's OData v2 JSON envelopes, as a client must accept all of them:
//! `{"d":{"results":[…],"__next":"…","__count":"…"}}`, a bare
//! `{"d":[…]}`, a single record `{"d":{…}}`, the numeric-keyed
//! `{"d":{"0":{…},"1":{…}}}` some endpoints produce, and error bodies
//! `{"error":{"code":"","message":{"lang":"","value":"…"}}}`.

use serde_json::{Map, Value};

use super::error::ExactError;

pub type Row = Map<String, Value>;

/// One page of a collection.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Page {
    pub rows: Vec<Row>,
    /// Absolute URL of the next page, if any.
    pub next: Option<String>,
    /// `$inlinecount=allpages` total (Exact may send it as a string).
    pub count: Option<u64>,
}

fn malformed(what: &str) -> ExactError {
    ExactError::Malformed(what.to_owned())
}

fn strip_metadata(mut row: Row) -> Row {
    row.remove("__metadata");
    row
}

fn rows_of(values: Vec<Value>) -> Result<Vec<Row>, ExactError> {
    values
        .into_iter()
        .map(|v| match v {
            Value::Object(o) => Ok(strip_metadata(o)),
            _ => Err(malformed("a result is not an object")),
        })
        .collect()
}

/// Parses any of Exact's collection or single-record shapes into a page.
pub fn parse_page(body: &str) -> Result<Page, ExactError> {
    let v: Value = serde_json::from_str(body).map_err(|_| malformed("body is not JSON"))?;
    let Value::Object(mut top) = v else {
        return Err(malformed("body is not an object"));
    };
    let d = top
        .remove("d")
        .ok_or_else(|| malformed("no `d` envelope"))?;
    match d {
        Value::Array(items) => Ok(Page {
            rows: rows_of(items)?,
            ..Page::default()
        }),
        Value::Object(mut obj) => {
            if let Some(results) = obj.remove("results") {
                let Value::Array(items) = results else {
                    return Err(malformed("`results` is not an array"));
                };
                let next = match obj.remove("__next") {
                    Some(Value::String(s)) if !s.is_empty() => Some(s),
                    Some(Value::Null) | None => None,
                    Some(_) => return Err(malformed("`__next` is not a string")),
                };
                let count = match obj.remove("__count") {
                    Some(Value::String(s)) => s.parse().ok(),
                    Some(Value::Number(n)) => n.as_u64(),
                    _ => None,
                };
                return Ok(Page {
                    rows: rows_of(items)?,
                    next,
                    count,
                });
            }
            let numeric = !obj.is_empty() && obj.keys().all(|k| k.parse::<u64>().is_ok());
            if numeric {
                let mut items: Vec<(u64, Value)> = obj
                    .into_iter()
                    .filter_map(|(k, v)| k.parse().ok().map(|n| (n, v)))
                    .collect();
                items.sort_by_key(|(n, _)| *n);
                return Ok(Page {
                    rows: rows_of(items.into_iter().map(|(_, v)| v).collect())?,
                    ..Page::default()
                });
            }
            Ok(Page {
                rows: vec![strip_metadata(obj)],
                ..Page::default()
            })
        }
        _ => Err(malformed("`d` is neither an object nor an array")),
    }
}

/// The human message of an Exact error body, if it has one.
pub fn error_message(body: &str) -> Option<String> {
    let v: Value = serde_json::from_str(body).ok()?;
    let msg = &v["error"]["message"];
    msg.get("value")
        .and_then(Value::as_str)
        .or_else(|| msg.as_str())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_every_shape_exact_sends() {
        let paged = parse_page(
            r#"{"d":{"results":[{"__metadata":{"uri":"x"},"ID":1}],"__next":"https://h/api/v1/1/crm/Accounts?$skiptoken=guid'a'","__count":"120"}}"#,
        )
        .unwrap();
        assert_eq!(paged.rows.len(), 1);
        assert!(!paged.rows[0].contains_key("__metadata"));
        assert_eq!(paged.count, Some(120));
        assert!(paged.next.unwrap().contains("$skiptoken"));

        assert_eq!(
            parse_page(r#"{"d":[{"A":1},{"A":2}]}"#).unwrap().rows.len(),
            2
        );
        let single = parse_page(r#"{"d":{"ID":"x","Name":"Bakkerij"}}"#).unwrap();
        assert_eq!(single.rows[0]["Name"], "Bakkerij");
        let numeric = parse_page(r#"{"d":{"1":{"A":2},"0":{"A":1}}}"#).unwrap();
        assert_eq!(numeric.rows[0]["A"], 1);
        assert_eq!(
            parse_page(r#"{"d":{"results":[]}}"#).unwrap(),
            Page::default()
        );
    }

    #[test]
    fn rejects_what_is_not_an_envelope() {
        for body in [
            "",
            "[]",
            "{}",
            r#"{"d":1}"#,
            r#"{"d":{"results":{}}}"#,
            "<feed/>",
        ] {
            assert!(parse_page(body).is_err(), "{body}");
        }
    }

    #[test]
    fn reads_error_messages() {
        assert_eq!(
            error_message(
                r#"{"error":{"code":"","message":{"lang":"","value":"Please add a $select"}}}"#
            )
            .as_deref(),
            Some("Please add a $select")
        );
        assert_eq!(error_message(""), None);
    }
}
