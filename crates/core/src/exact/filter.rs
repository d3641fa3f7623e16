//! A `$filter` builder that cannot be injected into: field names are
//! checked identifiers, and every literal is typed and rendered by us
//! (strings quoted with `'` doubled, GUIDs validated, dates formatted).
//! Nothing a user types ever reaches the query text unescaped.

use chrono::{NaiveDate, NaiveDateTime};

/// A typed OData v2 literal.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// `'text'` with quotes doubled.
    Str(String),
    /// `guid'…'`, only for a valid GUID (see [`Guid`]).
    Guid(Guid),
    /// `datetime'YYYY-MM-DDTHH:MM:SS'`.
    DateTime(NaiveDateTime),
    Int(i64),
    /// `123L`, for Int64 fields such as `Timestamp`.
    Int64(i64),
    /// Finite numbers only; rendered with a decimal point.
    Double(f64),
    Bool(bool),
}

/// A validated GUID, stored lower-case with dashes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Guid(String);

/// A string that is not a GUID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a GUID (expected 8-4-4-4-12 hex digits): {0:?}")]
pub struct BadGuid(pub String);

impl Guid {
    /// Accepts `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` in any case, optionally
    /// wrapped in braces.
    pub fn parse(s: &str) -> Result<Guid, BadGuid> {
        let t = s.trim();
        let t = t
            .strip_prefix('{')
            .and_then(|x| x.strip_suffix('}'))
            .unwrap_or(t);
        let groups: Vec<&str> = t.split('-').collect();
        let lens = [8, 4, 4, 4, 12];
        let ok = groups.len() == 5
            && groups
                .iter()
                .zip(lens)
                .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()));
        if ok {
            Ok(Guid(t.to_ascii_lowercase()))
        } else {
            Err(BadGuid(s.chars().take(60).collect()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Guid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<NaiveDate> for Literal {
    fn from(d: NaiveDate) -> Self {
        Literal::DateTime(d.and_hms_opt(0, 0, 0).unwrap_or_default())
    }
}
impl From<Guid> for Literal {
    fn from(g: Guid) -> Self {
        Literal::Guid(g)
    }
}
impl From<&str> for Literal {
    fn from(s: &str) -> Self {
        Literal::Str(s.to_owned())
    }
}
impl From<String> for Literal {
    fn from(s: String) -> Self {
        Literal::Str(s)
    }
}
impl From<i64> for Literal {
    fn from(n: i64) -> Self {
        Literal::Int(n)
    }
}
impl From<i32> for Literal {
    fn from(n: i32) -> Self {
        Literal::Int(i64::from(n))
    }
}
impl From<bool> for Literal {
    fn from(b: bool) -> Self {
        Literal::Bool(b)
    }
}

impl Literal {
    fn render(&self, out: &mut String) {
        match self {
            Literal::Str(s) => {
                out.push('\'');
                for c in s.chars() {
                    if c == '\'' {
                        out.push('\'');
                    }
                    out.push(c);
                }
                out.push('\'');
            }
            Literal::Guid(g) => {
                out.push_str("guid'");
                out.push_str(g.as_str());
                out.push('\'');
            }
            Literal::DateTime(d) => {
                out.push_str(&format!("datetime'{}'", d.format("%Y-%m-%dT%H:%M:%S")));
            }
            Literal::Int(n) => out.push_str(&n.to_string()),
            Literal::Int64(n) => out.push_str(&format!("{n}L")),
            Literal::Double(f) => {
                let f = if f.is_finite() { *f } else { 0.0 };
                let s = format!("{f}");
                out.push_str(&s);
                if !s.contains('.') && !s.contains('e') {
                    out.push_str(".0");
                }
            }
            Literal::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        }
    }
}

/// A field name: ASCII letters, digits and `_`, starting with a letter
/// (Exact's property names). Anything else is refused at build time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field(&'static str);

impl Field {
    /// Field names are compile-time constants in our code; a bad one is a
    /// programming error caught by the tests, so it renders as a filter
    /// that matches nothing rather than panicking on a request path.
    pub const fn new(name: &'static str) -> Field {
        Field(name)
    }

    fn is_valid(&self) -> bool {
        let mut bytes = self.0.bytes();
        bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
            && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

impl Cmp {
    fn as_str(self) -> &'static str {
        match self {
            Cmp::Eq => "eq",
            Cmp::Ne => "ne",
            Cmp::Gt => "gt",
            Cmp::Ge => "ge",
            Cmp::Lt => "lt",
            Cmp::Le => "le",
        }
    }
}

/// A `$filter` expression tree.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    Compare(Field, Cmp, Literal),
    /// `substringof('needle', Field) eq true`.
    Contains(Field, String),
    /// `startswith(Field, 'prefix') eq true`.
    StartsWith(Field, String),
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Not(Box<Filter>),
}

impl Filter {
    pub fn cmp(field: &'static str, op: Cmp, value: impl Into<Literal>) -> Filter {
        Filter::Compare(Field::new(field), op, value.into())
    }
    pub fn eq(field: &'static str, value: impl Into<Literal>) -> Filter {
        Self::cmp(field, Cmp::Eq, value)
    }
    pub fn ge(field: &'static str, value: impl Into<Literal>) -> Filter {
        Self::cmp(field, Cmp::Ge, value)
    }
    pub fn le(field: &'static str, value: impl Into<Literal>) -> Filter {
        Self::cmp(field, Cmp::Le, value)
    }
    pub fn lt(field: &'static str, value: impl Into<Literal>) -> Filter {
        Self::cmp(field, Cmp::Lt, value)
    }
    pub fn contains(field: &'static str, needle: impl Into<String>) -> Filter {
        Filter::Contains(Field::new(field), needle.into())
    }
    pub fn starts_with(field: &'static str, prefix: impl Into<String>) -> Filter {
        Filter::StartsWith(Field::new(field), prefix.into())
    }
    pub fn and(self, other: Filter) -> Filter {
        match self {
            Filter::And(mut v) => {
                v.push(other);
                Filter::And(v)
            }
            f => Filter::And(vec![f, other]),
        }
    }
    pub fn or(self, other: Filter) -> Filter {
        match self {
            Filter::Or(mut v) => {
                v.push(other);
                Filter::Or(v)
            }
            f => Filter::Or(vec![f, other]),
        }
    }
    #[allow(clippy::should_implement_trait)]
    pub fn not(self) -> Filter {
        Filter::Not(Box::new(self))
    }

    /// Combines optional parts with `and`; `None` when there are none.
    pub fn all(parts: impl IntoIterator<Item = Filter>) -> Option<Filter> {
        parts.into_iter().reduce(Filter::and)
    }

    /// The `$filter` text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut String) {
        let field = |f: &Field, out: &mut String| {
            if f.is_valid() {
                out.push_str(f.0);
            } else {
                // Unreachable with our constant names; keep the output a
                // harmless, always-false expression.
                out.push_str("1 eq 0");
            }
        };
        match self {
            Filter::Compare(f, op, lit) => {
                field(f, out);
                out.push(' ');
                out.push_str(op.as_str());
                out.push(' ');
                lit.render(out);
            }
            Filter::Contains(f, needle) => {
                out.push_str("substringof(");
                Literal::Str(needle.clone()).render(out);
                out.push_str(", ");
                field(f, out);
                out.push_str(") eq true");
            }
            Filter::StartsWith(f, prefix) => {
                out.push_str("startswith(");
                field(f, out);
                out.push_str(", ");
                Literal::Str(prefix.clone()).render(out);
                out.push_str(") eq true");
            }
            Filter::And(parts) | Filter::Or(parts) => {
                let sep = if matches!(self, Filter::And(_)) {
                    " and "
                } else {
                    " or "
                };
                for (i, p) in parts.iter().enumerate() {
                    if i > 0 {
                        out.push_str(sep);
                    }
                    let wrap = matches!(p, Filter::And(_) | Filter::Or(_));
                    if wrap {
                        out.push('(');
                    }
                    p.write(out);
                    if wrap {
                        out.push(')');
                    }
                }
            }
            Filter::Not(inner) => {
                out.push_str("not (");
                inner.write(out);
                out.push(')');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn renders_exacts_literal_syntax() {
        let g = Guid::parse("{5E9EC63D-1E6E-4920-B799-BD636A6055C9}").unwrap();
        let d = NaiveDate::from_ymd_opt(2025, 1, 31).unwrap();
        let f = Filter::eq("Account", g)
            .and(Filter::ge("Date", d))
            .and(Filter::eq("Blocked", false))
            .and(Filter::cmp("Timestamp", Cmp::Gt, Literal::Int64(42)))
            .and(Filter::cmp("AmountDC", Cmp::Gt, Literal::Double(100.0)))
            .and(Filter::eq("Name", "O'Brien"));
        assert_eq!(
            f.render(),
            "Account eq guid'5e9ec63d-1e6e-4920-b799-bd636a6055c9' and Date ge datetime'2025-01-31T00:00:00' \
             and Blocked eq false and Timestamp gt 42L and AmountDC gt 100.0 and Name eq 'O''Brien'"
        );
    }

    #[test]
    fn nests_with_parentheses() {
        let f = Filter::eq("A", 1)
            .or(Filter::eq("B", 2))
            .and(Filter::contains("Name", "bakker").not());
        assert_eq!(
            f.render(),
            "(A eq 1 or B eq 2) and not (substringof('bakker', Name) eq true)"
        );
    }

    #[test]
    fn guids_are_validated() {
        for bad in [
            "",
            "123",
            "5e9ec63d1e6e4920b799bd636a6055c9",
            "5e9ec63d-1e6e-4920-b799-bd636a6055cz",
            "' or 1 eq 1",
        ] {
            assert!(Guid::parse(bad).is_err(), "{bad:?}");
        }
    }

    /// Splits rendered text into quoted literals and the rest, the way an
    /// OData parser would (a doubled quote stays inside a literal).
    fn outside_literals(s: &str) -> String {
        let mut out = String::new();
        let mut chars = s.chars().peekable();
        let mut inside = false;
        while let Some(c) = chars.next() {
            if c == '\'' {
                if inside && chars.peek() == Some(&'\'') {
                    chars.next();
                    continue;
                }
                inside = !inside;
                out.push('\'');
                continue;
            }
            if !inside {
                out.push(c);
            }
        }
        out
    }

    proptest! {
        #[test]
        fn hostile_strings_stay_inside_their_literal(s in ".{0,60}") {
            let f = Filter::eq("Name", s.clone()).and(Filter::contains("Description", s.clone()));
            let text = f.render();
            // Outside the literals only our own syntax remains.
            prop_assert_eq!(
                outside_literals(&text),
                "Name eq '' and substringof('', Description) eq true"
            );
        }

        #[test]
        fn any_valid_guid_round_trips(bytes in proptest::array::uniform16(any::<u8>())) {
            let h = hex::encode(bytes);
            let s = format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32]);
            let g = Guid::parse(&s.to_uppercase()).unwrap();
            prop_assert_eq!(g.as_str(), s.as_str());
        }
    }
}
