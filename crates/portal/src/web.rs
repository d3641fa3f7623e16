//! The portal's view of HTTP, independent of the Workers runtime: a
//! request as the Worker read it (method, path, query, headers, a capped
//! body) and a response with the security headers every page carries.

use std::fmt;

/// A request as the Worker read it. Header names are lower-case.
#[derive(Clone, Default)]
pub struct WebRequest {
    pub method: String,
    /// This site's origin as the browser sees it (`https://host`), for
    /// the same-origin check of forms.
    pub origin: String,
    pub path: String,
    /// The raw query string, without `?`.
    pub query: String,
    pub headers: Vec<(String, String)>,
    /// The body, already capped by the edge.
    pub body: Vec<u8>,
}

impl fmt::Debug for WebRequest {
    /// Never prints cookies or the body (session tokens, CSRF tokens).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebRequest")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("body_bytes", &self.body.len())
            .finish_non_exhaustive()
    }
}

impl WebRequest {
    pub fn get(path: &str) -> Self {
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        WebRequest {
            method: "GET".into(),
            path: path.into(),
            query: query.into(),
            ..WebRequest::default()
        }
    }

    /// The first header of that (lower-case) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// A query parameter (percent-decoded), the first if repeated.
    pub fn query_param(&self, name: &str) -> Option<String> {
        form_urlencoded::parse(self.query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    /// A form field of an `application/x-www-form-urlencoded` body.
    pub fn form_field(&self, name: &str) -> Option<String> {
        form_urlencoded::parse(&self.body)
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    /// Every value of a repeated form field (checkboxes), in order.
    pub fn form_fields(&self, name: &str) -> Vec<String> {
        form_urlencoded::parse(&self.body)
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
            .collect()
    }

    /// The body as text (form and JSON bodies are UTF-8; anything else
    /// reads as empty and is refused by whoever parses it).
    pub fn body_str(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap_or_default()
    }

    /// A cookie's value. Cookie names are case-sensitive.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("cookie"))
            .flat_map(|(_, v)| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.trim())
    }
}

/// A response the Worker sends as it is.
#[derive(Clone, PartialEq, Eq)]
pub struct WebResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Why a 5xx answer was given, for the operator's `error_log` row
    /// (the Worker scrubs and stores it); never sent to the browser.
    pub cause: Option<String>,
}

impl fmt::Debug for WebResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebResponse")
            .field("status", &self.status)
            .field("body_bytes", &self.body.len())
            .finish_non_exhaustive()
    }
}

/// The content security policy of every page: nothing inline, nothing
/// from elsewhere, no framing.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

impl WebResponse {
    /// An HTML page with the portal's security headers.
    pub fn html(status: u16, body: String) -> Self {
        let mut r = WebResponse {
            status,
            headers: vec![("Content-Type".into(), "text/html; charset=utf-8".into())],
            body: body.into_bytes(),
            cause: None,
        };
        r.secure();
        r
    }

    /// A static asset, cacheable for a day (the page links it by its
    /// content hash, so a new build is fetched at once).
    pub fn asset(content_type: &str, body: &'static str) -> Self {
        let mut r = WebResponse {
            status: 200,
            headers: vec![
                ("Content-Type".into(), content_type.into()),
                (
                    "Cache-Control".into(),
                    "public, max-age=86400, immutable".into(),
                ),
            ],
            body: body.as_bytes().to_vec(),
            cause: None,
        };
        r.secure_headers_only();
        r
    }

    /// A JSON answer of the OAuth endpoints: never cached (RFC 6749
    /// §5.1), readable by browser-based MCP clients from any origin (no
    /// cookie is ever read by these endpoints, so this opens nothing).
    pub fn json(status: u16, body: &serde_json::Value) -> Self {
        let mut r = WebResponse {
            status,
            headers: vec![
                ("Content-Type".into(), "application/json".into()),
                ("Access-Control-Allow-Origin".into(), "*".into()),
            ],
            body: body.to_string().into_bytes(),
            cause: None,
        };
        r.secure_headers_only();
        r.headers.push(("Cache-Control".into(), "no-store".into()));
        r.headers.push(("Pragma".into(), "no-cache".into()));
        r
    }

    /// A redirect (303 after a form, so the browser GETs the target).
    pub fn redirect(status: u16, location: &str) -> Self {
        let mut r = WebResponse {
            status,
            headers: vec![("Location".into(), location.into())],
            body: Vec::new(),
            cause: None,
        };
        r.secure();
        r
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Keeps why this answer is a failure, for the operator (see `cause`).
    pub fn because(mut self, cause: &dyn fmt::Display) -> Self {
        self.cause = Some(cause.to_string());
        self
    }

    /// Lets this page's forms lead to `origins` too: a form whose answer
    /// redirects elsewhere (the region choice, which sends the browser on
    /// to Exact) is held to `form-action` all the way.
    pub fn allow_form_targets(mut self, origins: &[String]) -> Self {
        let extra: String = origins.iter().map(|o| format!(" {o}")).collect();
        for (name, value) in &mut self.headers {
            if name.eq_ignore_ascii_case("content-security-policy") {
                *value = value.replace("form-action 'self'", &format!("form-action 'self'{extra}"));
            }
        }
        self
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn secure_headers_only(&mut self) {
        for (k, v) in [
            ("Content-Security-Policy", CSP),
            ("X-Content-Type-Options", "nosniff"),
            ("Referrer-Policy", "same-origin"),
            ("X-Frame-Options", "DENY"),
            (
                "Permissions-Policy",
                "camera=(), microphone=(), geolocation=(), payment=()",
            ),
        ] {
            self.headers.push((k.into(), v.into()));
        }
    }

    /// Pages are personal or change: never stored by caches.
    fn secure(&mut self) {
        self.secure_headers_only();
        self.headers
            .push(("Cache-Control".into(), "no-store".into()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_queries_and_forms_are_read_exactly() {
        let mut r = WebRequest::get("/connect?region=be&return_to=%2Fdashboard");
        r.headers.push((
            "Cookie".into(),
            "a=1; __Host-session=pmjb_s_x; session=other".into(),
        ));
        r.body = b"name=Mijn+sleutel&csrf=ab%2Bc".to_vec();
        assert_eq!(r.cookie("__Host-session"), Some("pmjb_s_x"));
        assert_eq!(r.cookie("session"), Some("other"));
        assert_eq!(r.cookie("Session"), None);
        assert_eq!(r.query_param("return_to").as_deref(), Some("/dashboard"));
        assert_eq!(r.form_field("name").as_deref(), Some("Mijn sleutel"));
        assert_eq!(r.form_field("csrf").as_deref(), Some("ab+c"));
        assert!(!format!("{r:?}").contains("pmjb_s_x"));
    }

    #[test]
    fn every_page_carries_the_security_headers() {
        let r = WebResponse::html(200, "<p>x</p>".into());
        assert_eq!(r.header("content-security-policy"), Some(CSP));
        assert!(!CSP.contains("unsafe"), "no unsafe source of any kind");
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(r.header("cache-control"), Some("no-store"));
    }
}
