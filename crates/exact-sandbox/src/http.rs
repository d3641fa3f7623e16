//! The parsed request the handlers see and the responses they build
//! (JSON, Exact error bodies, HTML, redirects); `server` does the wire.

use std::collections::BTreeMap;

use boekhouding_core::exact::query::decode;

/// A request as the handlers see it.
#[derive(Debug, Clone)]
pub struct Req {
    pub method: String,
    /// Path without the query string, percent-decoded.
    pub path: String,
    /// Raw path segment text, for exact-case matching of `(guid'…')`.
    pub query: BTreeMap<String, String>,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub loopback: bool,
}

impl Req {
    /// From a request target (`/path?query`), lower-cased headers and
    /// the body.
    pub fn new(
        method: String,
        target: &str,
        headers: Vec<(String, String)>,
        body: String,
        loopback: bool,
    ) -> Req {
        let (path, qs) = target.split_once('?').unwrap_or((target, ""));
        Req {
            method,
            path: decode_path(path),
            query: parse_pairs(qs),
            headers,
            body,
            loopback,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn form(&self) -> BTreeMap<String, String> {
        parse_pairs(&self.body)
    }

    pub fn bearer(&self) -> Option<&str> {
        let h = self.header("authorization")?;
        let (scheme, token) = h.split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then_some(token.trim())
    }
}

fn decode_path(p: &str) -> String {
    // `+` is literal in paths; only %XX is decoded.
    decode(&p.replace('+', "%2B"))
}

pub fn parse_pairs(s: &str) -> BTreeMap<String, String> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// A response under construction.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body: body.into(),
        }
    }

    pub fn json(status: u16, v: &serde_json::Value) -> Reply {
        Reply::new(status, "application/json; charset=utf-8", v.to_string())
    }

    /// Exact's error body: `{"error":{"code":"","message":{"lang":"","value":…}}}`.
    pub fn exact_error(status: u16, message: &str) -> Reply {
        Reply::json(
            status,
            &serde_json::json!({"error": {"code": "", "message": {"lang": "", "value": message}}}),
        )
    }

    pub fn html(status: u16, body: String) -> Reply {
        Reply::new(status, "text/html; charset=utf-8", body)
    }

    pub fn redirect(location: &str) -> Reply {
        let mut r = Reply::new(302, "text/plain", "");
        r.headers.push(("Location".into(), location.into()));
        r
    }

    pub fn empty(status: u16) -> Reply {
        Reply::new(status, "text/plain", "")
    }

    pub fn with_header(mut self, k: &str, v: &str) -> Reply {
        self.headers.push((k.into(), v.into()));
        self
    }
}

/// Escapes text for HTML.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}
