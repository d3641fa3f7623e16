//! Exact's OData v2 dates: `/Date(1641034800000)/`, milliseconds since the
//! epoch of Exact's local (Dutch) wall-clock time, sometimes with an offset
//! suffix (`/Date(1641034800000+0100)/`). Date-only fields come as midnight.
//! They are parsed into naive local date-times, never into UTC instants.

use chrono::{DateTime, NaiveDate, NaiveDateTime};

/// A value that is not a `/Date(ms)/` literal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an OData date: {0:?}")]
pub struct BadDate(pub String);

/// Parses `/Date(ms)/` or `/Date(ms±hhmm)/` (the offset is informational:
/// the milliseconds already are the local wall clock).
pub fn parse_odata_date(s: &str) -> Result<NaiveDateTime, BadDate> {
    let bad = || BadDate(s.chars().take(60).collect());
    let inner = s
        .strip_prefix("/Date(")
        .and_then(|r| r.strip_suffix(")/"))
        .ok_or_else(bad)?;
    // The sign of an offset is never the first character (that would be a
    // negative timestamp).
    let split = inner
        .char_indices()
        .skip(1)
        .find(|(_, c)| *c == '+' || *c == '-')
        .map_or(inner.len(), |(i, _)| i);
    let (ms, offset) = inner.split_at(split);
    let offset_ok =
        offset.is_empty() || (offset.len() == 5 && offset[1..].bytes().all(|b| b.is_ascii_digit()));
    if !offset_ok {
        return Err(bad());
    }
    let ms: i64 = ms.parse().map_err(|_| bad())?;
    DateTime::from_timestamp_millis(ms)
        .map(|d| d.naive_utc())
        .ok_or_else(bad)
}

/// Formats a local date-time as Exact does.
pub fn format_odata_date(dt: NaiveDateTime) -> String {
    format!("/Date({})/", dt.and_utc().timestamp_millis())
}

/// The date part of an Exact date value, for date-only fields.
pub fn parse_odata_day(s: &str) -> Result<NaiveDate, BadDate> {
    parse_odata_date(s).map(|d| d.date())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_the_shapes_exact_sends() {
        let d = parse_odata_date("/Date(1641034800000)/").unwrap();
        assert_eq!(d.to_string(), "2022-01-01 11:00:00");
        let with_offset = parse_odata_date("/Date(1641034800000+0100)/").unwrap();
        assert_eq!(with_offset, d);
        assert_eq!(
            parse_odata_date("/Date(-86400000)/").unwrap().to_string(),
            "1969-12-31 00:00:00"
        );
        assert_eq!(
            parse_odata_day("/Date(1735689600000)/")
                .unwrap()
                .to_string(),
            "2025-01-01"
        );
    }

    #[test]
    fn rejects_everything_else() {
        for s in [
            "",
            "2025-01-01",
            "/Date()/",
            "/Date(abc)/",
            "/Date(1641034800000",
            "Date(1641034800000)/",
            "/Date(1641034800000+01)/",
            "/Date(99999999999999999999)/",
        ] {
            assert!(parse_odata_date(s).is_err(), "{s:?}");
        }
    }

    proptest! {
        #[test]
        fn format_and_parse_round_trip(ms in -62_135_596_800_000i64..253_402_300_799_000) {
            let dt = DateTime::from_timestamp_millis(ms).unwrap().naive_utc();
            prop_assert_eq!(parse_odata_date(&format_odata_date(dt)).unwrap(), dt);
        }

        #[test]
        fn never_panics_on_arbitrary_input(s in ".{0,40}") {
            let _ = parse_odata_date(&s);
        }

        #[test]
        fn offsets_do_not_change_the_wall_clock(ms in 0i64..4_000_000_000_000, h in 0u32..14, plus in any::<bool>()) {
            let sign = if plus { '+' } else { '-' };
            let a = parse_odata_date(&format!("/Date({ms})/")).unwrap();
            let b = parse_odata_date(&format!("/Date({ms}{sign}{h:02}00)/")).unwrap();
            prop_assert_eq!(a, b);
        }
    }
}
