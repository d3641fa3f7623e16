//! Euro amounts in tool results: Exact's decimal numbers are summed as
//! whole cents (no float drift in totals) and shown as euros.

use serde_json::{Value, json};

/// An Exact amount as whole cents (missing or non-numeric: 0).
pub(crate) fn cents(v: Option<&Value>) -> i64 {
    (v.and_then(Value::as_f64).unwrap_or(0.0) * 100.0).round() as i64
}

/// Whole cents as a euro number.
pub(crate) fn euros(c: i64) -> Value {
    json!(c as f64 / 100.0)
}

/// A euro amount rounded to cents.
pub(crate) fn round_cents(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}
