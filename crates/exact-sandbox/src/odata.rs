//! The OData v2 query engine the sandbox applies to its rows, with Exact's
//! own rules and error messages: `$filter` (eq ne gt ge lt le, and or not,
//! substringof, startswith, typed `guid'…'` and `datetime'…'` literals, no
//! field-vs-field comparisons), `$select`, `$orderby`, `$top`, `$skip`,
//! `$skiptoken` and `$inlinecount`.
//!
//! String comparisons are case-insensitive, as on Exact's SQL Server
//! collation.

use std::cmp::Ordering;

use serde_json::Value;

use crate::data::Row;

/// A 400 with Exact's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, QueryError> {
    Err(QueryError(msg.into()))
}

#[derive(Debug, Clone, PartialEq)]
pub enum Lit {
    Str(String),
    Guid(String),
    /// Milliseconds, as in `/Date(ms)/`.
    DateTime(i64),
    Num(f64),
    Bool(bool),
    Null,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Field(String),
    Lit(Lit),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Cmp(Operand, Op, Operand),
    SubstringOf(String, String),
    StartsWith(String, String),
    EndsWith(String, String),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Lit(Lit),
    LParen,
    RParen,
    Comma,
}

fn parse_datetime(s: &str) -> Option<i64> {
    use chrono::{NaiveDate, NaiveDateTime};
    if let Ok(d) = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S") {
        return Some(d.and_utc().timestamp_millis());
    }
    if let Ok(d) = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M") {
        return Some(d.and_utc().timestamp_millis());
    }
    if let Ok(d) = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f") {
        return Some(d.and_utc().timestamp_millis());
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc().timestamp_millis())
}

/// Whether `s` is a GUID/UUID in its `8-4-4-4-12` hex form.
pub fn is_guid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn tokenize(s: &str) -> Result<Vec<Tok>, QueryError> {
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    let quoted = |i: &mut usize| -> Result<String, QueryError> {
        // chars[*i] is the opening quote.
        let mut v = String::new();
        *i += 1;
        loop {
            match chars.get(*i) {
                None => return err("Unterminated string literal in $filter"),
                Some('\'') if chars.get(*i + 1) == Some(&'\'') => {
                    v.push('\'');
                    *i += 2;
                }
                Some('\'') => {
                    *i += 1;
                    return Ok(v);
                }
                Some(c) => {
                    v.push(*c);
                    *i += 1;
                }
            }
        }
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' => i += 1,
            '(' => {
                out.push(Tok::LParen);
                i += 1;
            }
            ')' => {
                out.push(Tok::RParen);
                i += 1;
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1;
            }
            '\'' => out.push(Tok::Lit(Lit::Str(quoted(&mut i)?))),
            c if c.is_ascii_digit() || c == '-' => {
                let start = i;
                i += 1;
                while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                    i += 1;
                }
                let text: String = chars[start..i].iter().collect();
                if matches!(chars.get(i), Some('L' | 'M' | 'D' | 'd' | 'm' | 'l')) {
                    i += 1;
                }
                match text.parse::<f64>() {
                    Ok(n) => out.push(Tok::Lit(Lit::Num(n))),
                    Err(_) => return err(format!("Syntax error at position {start} in $filter")),
                }
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == '/')
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                if chars.get(i) == Some(&'\'') {
                    let body = quoted(&mut i)?;
                    match word.as_str() {
                        "guid" => {
                            if !is_guid(&body) {
                                return err(format!(
                                    "Unrecognized 'Edm.Guid' literal 'guid'{body}''"
                                ));
                            }
                            out.push(Tok::Lit(Lit::Guid(body.to_ascii_lowercase())));
                        }
                        "datetime" => match parse_datetime(&body) {
                            Some(ms) => out.push(Tok::Lit(Lit::DateTime(ms))),
                            None => {
                                return err(format!(
                                    "Unrecognized 'Edm.DateTime' literal 'datetime'{body}''"
                                ));
                            }
                        },
                        _ => return err(format!("Syntax error at position {start} in $filter")),
                    }
                    continue;
                }
                match word.as_str() {
                    "true" => out.push(Tok::Lit(Lit::Bool(true))),
                    "false" => out.push(Tok::Lit(Lit::Bool(false))),
                    "null" => out.push(Tok::Lit(Lit::Null)),
                    _ => out.push(Tok::Ident(word)),
                }
            }
            _ => {
                return err(format!(
                    "Syntax error: character '{c}' is not valid at position {i} in $filter"
                ));
            }
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }
    fn keyword(&self, k: &str) -> bool {
        matches!(self.peek(), Some(Tok::Ident(w)) if w == k)
    }
    fn expect(&mut self, t: Tok) -> Result<(), QueryError> {
        if self.next() == Some(t.clone()) {
            Ok(())
        } else {
            err(format!("Syntax error in $filter: expected {t:?}"))
        }
    }

    fn or(&mut self) -> Result<Expr, QueryError> {
        let mut left = self.and()?;
        while self.keyword("or") {
            self.pos += 1;
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }
    fn and(&mut self) -> Result<Expr, QueryError> {
        let mut left = self.unary()?;
        while self.keyword("and") {
            self.pos += 1;
            left = Expr::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }
    fn unary(&mut self) -> Result<Expr, QueryError> {
        if self.keyword("not") {
            self.pos += 1;
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        if self.peek() == Some(&Tok::LParen) {
            self.pos += 1;
            let e = self.or()?;
            self.expect(Tok::RParen)?;
            return Ok(e);
        }
        self.comparison()
    }
    fn operand(&mut self) -> Result<Operand, QueryError> {
        match self.next() {
            Some(Tok::Ident(w)) => Ok(Operand::Field(w)),
            Some(Tok::Lit(l)) => Ok(Operand::Lit(l)),
            _ => err("Syntax error in $filter: expected a property or a literal"),
        }
    }
    fn function(&mut self, name: &str) -> Result<Expr, QueryError> {
        self.expect(Tok::LParen)?;
        let a = self.operand()?;
        self.expect(Tok::Comma)?;
        let b = self.operand()?;
        self.expect(Tok::RParen)?;
        let e = match (name, a, b) {
            ("substringof", Operand::Lit(Lit::Str(s)), Operand::Field(f)) => {
                Expr::SubstringOf(s, f)
            }
            ("startswith", Operand::Field(f), Operand::Lit(Lit::Str(s))) => Expr::StartsWith(f, s),
            ("endswith", Operand::Field(f), Operand::Lit(Lit::Str(s))) => Expr::EndsWith(f, s),
            _ => {
                return err(format!(
                    "No applicable function found for '{name}' with the given arguments"
                ));
            }
        };
        // `substringof(…) eq true` / `eq false` / bare.
        if self.keyword("eq") || self.keyword("ne") {
            let ne = self.keyword("ne");
            self.pos += 1;
            return match self.next() {
                Some(Tok::Lit(Lit::Bool(b))) => {
                    Ok(if b != ne { e } else { Expr::Not(Box::new(e)) })
                }
                _ => err(
                    "Operator 'eq' incompatible with operand types 'System.Boolean' and another type",
                ),
            };
        }
        Ok(e)
    }
    fn comparison(&mut self) -> Result<Expr, QueryError> {
        if let Some(Tok::Ident(w)) = self.peek().cloned()
            && matches!(w.as_str(), "substringof" | "startswith" | "endswith")
            && self.toks.get(self.pos + 1) == Some(&Tok::LParen)
        {
            self.pos += 1;
            return self.function(&w);
        }
        let left = self.operand()?;
        let op = match self.next() {
            Some(Tok::Ident(w)) => match w.as_str() {
                "eq" => Op::Eq,
                "ne" => Op::Ne,
                "gt" => Op::Gt,
                "ge" => Op::Ge,
                "lt" => Op::Lt,
                "le" => Op::Le,
                other => {
                    return err(format!(
                        "Syntax error in $filter: unknown operator '{other}'"
                    ));
                }
            },
            _ => return err("Syntax error in $filter: expected an operator"),
        };
        let right = self.operand()?;
        if matches!((&left, &right), (Operand::Field(_), Operand::Field(_))) {
            return err("Comparing two properties is not supported in $filter");
        }
        Ok(Expr::Cmp(left, op, right))
    }
}

/// Parses a `$filter` value (already percent-decoded).
pub fn parse_filter(s: &str) -> Result<Expr, QueryError> {
    if s.trim().is_empty() {
        return err("This $filter parameter is not supported for this resource");
    }
    let toks = tokenize(s)?;
    let mut p = Parser { toks, pos: 0 };
    let e = p.or()?;
    if p.pos != p.toks.len() {
        return err("Syntax error in $filter: unexpected text after the expression");
    }
    Ok(e)
}

/// The fields a filter mentions.
pub fn fields(e: &Expr, out: &mut Vec<String>) {
    match e {
        Expr::Cmp(a, _, b) => {
            for o in [a, b] {
                if let Operand::Field(f) = o {
                    out.push(f.clone());
                }
            }
        }
        Expr::SubstringOf(_, f) | Expr::StartsWith(f, _) | Expr::EndsWith(f, _) => {
            out.push(f.clone())
        }
        Expr::And(a, b) | Expr::Or(a, b) => {
            fields(a, out);
            fields(b, out);
        }
        Expr::Not(a) => fields(a, out),
    }
}

/// Milliseconds of a `/Date(ms)/` value.
pub fn date_ms(v: &Value) -> Option<i64> {
    let s = v.as_str()?;
    s.strip_prefix("/Date(")?.strip_suffix(")/")?.parse().ok()
}

/// The Edm type of a field, judged from a sample value.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::String(s) if s.starts_with("/Date(") => "Edm.DateTime",
        Value::String(s) if is_guid(s) => "Edm.Guid",
        Value::String(_) => "Edm.String",
        Value::Number(_) => "Edm.Double",
        Value::Bool(_) => "Edm.Boolean",
        _ => "null",
    }
}

fn lit_kind(l: &Lit) -> &'static str {
    match l {
        Lit::Str(_) => "Edm.String",
        Lit::Guid(_) => "Edm.Guid",
        Lit::DateTime(_) => "Edm.DateTime",
        Lit::Num(_) => "Edm.Double",
        Lit::Bool(_) => "Edm.Boolean",
        Lit::Null => "null",
    }
}

/// Checks the filter against the entity's fields and types, as Exact does
/// before running it: unknown fields and mismatched literal types are 400s.
pub fn check_types(e: &Expr, sample: &dyn Fn(&str) -> Option<Value>) -> Result<(), QueryError> {
    let mut names = Vec::new();
    fields(e, &mut names);
    let unknown: Vec<&String> = names.iter().filter(|f| sample(f).is_none()).collect();
    if !unknown.is_empty() {
        let list: Vec<&str> = unknown.iter().map(|s| s.as_str()).collect();
        return err(format!(
            "Filtering on these fields is not supported: {}",
            list.join(", ")
        ));
    }
    fn walk(e: &Expr, sample: &dyn Fn(&str) -> Option<Value>) -> Result<(), QueryError> {
        match e {
            Expr::Cmp(a, op, b) => {
                let (field, lit) = match (a, b) {
                    (Operand::Field(f), Operand::Lit(l)) | (Operand::Lit(l), Operand::Field(f)) => {
                        (f, l)
                    }
                    _ => return Ok(()),
                };
                let fk = sample(field).map(|v| kind(&v)).unwrap_or("null");
                let lk = lit_kind(lit);
                let compatible = fk == "null"
                    || lk == "null"
                    || fk == lk
                    || (fk == "Edm.DateTime" && lk == "Edm.DateTime");
                if !compatible {
                    return err(format!(
                        "Operator '{}' incompatible with operand types '{}' and '{}'",
                        format!("{op:?}").to_lowercase(),
                        fk.replace("Edm.", "System."),
                        lk.replace("Edm.", "System.")
                    ));
                }
                Ok(())
            }
            Expr::And(a, b) | Expr::Or(a, b) => {
                walk(a, sample)?;
                walk(b, sample)
            }
            Expr::Not(a) => walk(a, sample),
            _ => Ok(()),
        }
    }
    walk(e, sample)
}

fn cmp_values(v: &Value, l: &Lit) -> Option<Ordering> {
    match (v, l) {
        (Value::Null, Lit::Null) => Some(Ordering::Equal),
        (Value::Null, _) | (_, Lit::Null) => None,
        (Value::String(s), Lit::Str(t)) => Some(s.to_lowercase().cmp(&t.to_lowercase())),
        (Value::String(s), Lit::Guid(g)) => Some(s.to_lowercase().cmp(g)),
        (v, Lit::DateTime(ms)) => date_ms(v).map(|d| d.cmp(ms)),
        (Value::Number(n), Lit::Num(x)) => n.as_f64().and_then(|a| a.partial_cmp(x)),
        (Value::Bool(b), Lit::Bool(x)) => Some(b.cmp(x)),
        _ => None,
    }
}

/// Whether a row matches.
pub fn eval(e: &Expr, row: &Row) -> bool {
    let get = |f: &str| row.get(f).cloned().unwrap_or(Value::Null);
    let text = |f: &str| get(f).as_str().map(str::to_lowercase).unwrap_or_default();
    match e {
        Expr::Cmp(a, op, b) => {
            let (v, l, flipped) = match (a, b) {
                (Operand::Field(f), Operand::Lit(l)) => (get(f), l, false),
                (Operand::Lit(l), Operand::Field(f)) => (get(f), l, true),
                _ => return false,
            };
            let Some(mut ord) = cmp_values(&v, l) else {
                // NULL compares unequal to everything but null.
                return *op == Op::Ne && !(v.is_null() && *l == Lit::Null);
            };
            if flipped {
                ord = ord.reverse();
            }
            match op {
                Op::Eq => ord == Ordering::Equal,
                Op::Ne => ord != Ordering::Equal,
                Op::Gt => ord == Ordering::Greater,
                Op::Ge => ord != Ordering::Less,
                Op::Lt => ord == Ordering::Less,
                Op::Le => ord != Ordering::Greater,
            }
        }
        Expr::SubstringOf(needle, f) => text(f).contains(&needle.to_lowercase()),
        Expr::StartsWith(f, p) => text(f).starts_with(&p.to_lowercase()),
        Expr::EndsWith(f, p) => text(f).ends_with(&p.to_lowercase()),
        Expr::And(a, b) => eval(a, row) && eval(b, row),
        Expr::Or(a, b) => eval(a, row) || eval(b, row),
        Expr::Not(a) => !eval(a, row),
    }
}

/// Orders rows by `$orderby` (`Field [asc|desc], …`).
pub fn order(
    rows: &mut [&Row],
    orderby: &str,
    known: &dyn Fn(&str) -> bool,
) -> Result<(), QueryError> {
    let mut keys = Vec::new();
    for part in orderby.split(',') {
        let mut it = part.split_whitespace();
        let Some(field) = it.next() else { continue };
        if !known(field) {
            return err(format!("No property '{field}' exists in type for $orderby"));
        }
        let desc = match it.next() {
            None | Some("asc") => false,
            Some("desc") => true,
            Some(other) => return err(format!("Syntax error in $orderby at '{other}'")),
        };
        keys.push((field.to_owned(), desc));
    }
    rows.sort_by(|a, b| {
        for (f, desc) in &keys {
            let ord = compare_json(a.get(f), b.get(f));
            let ord = if *desc { ord.reverse() } else { ord };
            if ord != Ordering::Equal {
                return ord;
            }
        }
        Ordering::Equal
    });
    Ok(())
}

/// Total order on JSON values of one field (nulls first, as SQL Server).
pub fn compare_json(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    let a = a.unwrap_or(&Value::Null);
    let b = b.unwrap_or(&Value::Null);
    match (a, b) {
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Less,
        (_, Value::Null) => Ordering::Greater,
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .unwrap_or(0.0)
            .partial_cmp(&y.as_f64().unwrap_or(0.0))
            .unwrap_or(Ordering::Equal),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (x, y) => match (date_ms(x), date_ms(y)) {
            (Some(p), Some(q)) => p.cmp(&q),
            _ => x
                .as_str()
                .unwrap_or("")
                .to_lowercase()
                .cmp(&y.as_str().unwrap_or("").to_lowercase()),
        },
    }
}

/// Keeps only the `$select`ed fields; unknown ones are a 400.
pub fn select(
    rows: Vec<Row>,
    select: &str,
    known: &dyn Fn(&str) -> bool,
) -> Result<Vec<Row>, QueryError> {
    let wanted: Vec<&str> = select
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if wanted.contains(&"*") {
        return Ok(rows);
    }
    if let Some(bad) = wanted.iter().find(|f| !known(f)) {
        return err(format!("No property '{bad}' exists in type for $select"));
    }
    Ok(rows
        .into_iter()
        .map(|r| {
            wanted
                .iter()
                .map(|f| ((*f).to_owned(), r.get(*f).cloned().unwrap_or(Value::Null)))
                .collect()
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(v: Value) -> Row {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn evaluates_exact_style_filters() {
        let r = row(json!({
            "Name": "O'Brien Bouw", "Blocked": false, "AmountDC": 150.5,
            "ID": "5e9ec63d-1e6e-4920-b799-bd636a6055c9", "Date": "/Date(1735689600000)/", "Code": null
        }));
        let yes = [
            "Name eq 'o''brien bouw'",
            "Blocked eq false and AmountDC gt 100",
            "ID eq guid'5E9EC63D-1E6E-4920-B799-BD636A6055C9'",
            "Date ge datetime'2025-01-01' and Date lt datetime'2025-01-02T00:00:00'",
            "substringof('bouw', Name) eq true",
            "startswith(Name, 'O''B')",
            "not (AmountDC le 150) or Name eq 'x'",
            "Code eq null",
            "AmountDC ge 150.5M",
        ];
        for f in yes {
            assert!(eval(&parse_filter(f).unwrap(), &r), "{f}");
        }
        let no = [
            "Blocked eq true",
            "substringof('bakker', Name) eq true",
            "Code ne null",
            "Date gt datetime'2025-01-01'",
        ];
        for f in no {
            assert!(!eval(&parse_filter(f).unwrap(), &r), "{f}");
        }
    }

    #[test]
    fn rejects_what_exact_rejects() {
        for f in [
            "",
            "Name eq",
            "Name eq 'unterminated",
            "AmountDC gt VATAmountDC",
            "ID eq guid'not-a-guid'",
            "Date ge datetime'2025-13-45'",
            "Name eq 'a' ; DROP TABLE",
            "Name like 'a'",
            "(Name eq 'a'",
        ] {
            assert!(parse_filter(f).is_err(), "{f}");
        }
    }

    #[test]
    fn type_checks_literals_against_fields() {
        let sample = |f: &str| match f {
            "ID" => Some(json!("5e9ec63d-1e6e-4920-b799-bd636a6055c9")),
            "Name" => Some(json!("x")),
            _ => None,
        };
        let bare_guid = parse_filter("ID eq '5e9ec63d-1e6e-4920-b799-bd636a6055c9'").unwrap();
        assert!(
            check_types(&bare_guid, &sample)
                .unwrap_err()
                .0
                .contains("incompatible")
        );
        let unknown = parse_filter("Nope eq 1").unwrap();
        assert!(
            check_types(&unknown, &sample)
                .unwrap_err()
                .0
                .contains("Filtering on these fields is not supported: Nope")
        );
        assert!(check_types(&parse_filter("Name eq 'x'").unwrap(), &sample).is_ok());
    }
}
