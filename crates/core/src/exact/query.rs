//! A typed description of one Exact REST request, rendered to a URL with
//! every value percent-encoded.

use super::filter::Filter;

/// An Exact division (administration) code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Division(pub i64);

impl std::fmt::Display for Division {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// `GET /api/v1/{division}/{path}?…`.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub path: &'static str,
    pub select: Vec<&'static str>,
    pub filter: Option<Filter>,
    pub orderby: Option<&'static str>,
    pub top: Option<u32>,
    /// Function parameters of read services (`year=2025`), already in
    /// OData literal form.
    pub params: Vec<(&'static str, String)>,
    pub inline_count: bool,
}

impl Query {
    pub fn new(path: &'static str, select: &[&'static str]) -> Self {
        Query {
            path,
            select: select.to_vec(),
            filter: None,
            orderby: None,
            top: None,
            params: Vec::new(),
            inline_count: false,
        }
    }

    pub fn filter(mut self, f: Option<Filter>) -> Self {
        self.filter = f;
        self
    }

    pub fn orderby(mut self, o: &'static str) -> Self {
        self.orderby = Some(o);
        self
    }

    pub fn top(mut self, n: u32) -> Self {
        self.top = Some(n);
        self
    }

    pub fn param(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.params.push((name, value.into()));
        self
    }

    pub fn url(&self, base_url: &str, division: Division) -> String {
        let mut url = format!(
            "{}/api/v1/{division}/{}",
            base_url.trim_end_matches('/'),
            self.path
        );
        let mut parts: Vec<String> = Vec::new();
        for (k, v) in &self.params {
            parts.push(format!("{k}={}", encode(v)));
        }
        if !self.select.is_empty() {
            parts.push(format!("$select={}", encode(&self.select.join(","))));
        }
        if let Some(f) = &self.filter {
            parts.push(format!("$filter={}", encode(&f.render())));
        }
        if let Some(o) = self.orderby {
            parts.push(format!("$orderby={}", encode(o)));
        }
        if let Some(t) = self.top {
            parts.push(format!("$top={t}"));
        }
        if self.inline_count {
            parts.push("$inlinecount=allpages".into());
        }
        if !parts.is_empty() {
            url.push('?');
            url.push_str(&parts.join("&"));
        }
        url
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes `%XX` sequences (and `+` as a space, as form bodies use it).
pub fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn renders_a_full_query() {
        let q = Query::new("crm/Accounts", &["ID", "Name"])
            .filter(Some(Filter::eq("Name", "A&B 'x'")))
            .orderby("Name")
            .top(5);
        assert_eq!(
            q.url("https://start.exactonline.nl/", Division(12)),
            "https://start.exactonline.nl/api/v1/12/crm/Accounts?$select=ID%2CName&$filter=Name%20eq%20%27A%26B%20%27%27x%27%27%27&$orderby=Name&$top=5"
        );
    }

    proptest! {
        #[test]
        fn encode_then_decode_round_trips(s in ".{0,80}") {
            prop_assert_eq!(decode(&encode(&s)), s);
        }

        #[test]
        fn encoded_text_has_no_separator_characters(s in ".{0,80}") {
            let e = encode(&s);
            prop_assert!(!e.contains('&') && !e.contains('=') && !e.contains('?') && !e.contains('#') && !e.contains(' '));
        }
    }
}
