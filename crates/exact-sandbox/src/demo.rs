//! Demo mode: the sandbox's books served in-process, without a network,
//! a database or OAuth, for anyone trying the product with a public demo
//! key. One key per demo company; a key signs in as the sandbox login that
//! owns the company, with that company as its current administration.
//!
//! [`DemoTransport`] is an `HttpTransport` that answers Exact REST requests
//! from [`Books`] through the same code the sandbox server runs (access
//! check, `$filter`/`$select`/`$orderby`, paging with `__next`, envelopes,
//! attachment downloads), so a tool's answer on a demo key is the answer it
//! gives against the sandbox.

use std::ops::Deref;

use boekhouding_core::ports::{
    BinaryResponse, HttpMethod, HttpRequest, HttpResponse, HttpTransport, TransportError,
};

use crate::books::Books;
use crate::data::SandboxUser;
use crate::http::{Reply, Req};

/// What every demo key starts with; real API keys never do.
pub const KEY_PREFIX: &str = "pmjb_demo_";

/// The origin the demo's Exact answers are served from. `.invalid` never
/// resolves, so nothing leaves the Worker even by mistake.
pub const BASE_URL: &str = "https://start.exactonline.demo.invalid";

/// The public demo keys: key, division.
pub const KEYS: [(&str, i64); 4] = [
    ("pmjb_demo_bakkerij", 1_000_001),
    ("pmjb_demo_it", 1_000_002),
    ("pmjb_demo_advocaat", 1_000_003),
    ("pmjb_demo_aannemer", 1_000_004),
];

/// Whether a presented credential claims to be a demo key.
pub fn is_demo_key(credential: &str) -> bool {
    credential.starts_with(KEY_PREFIX)
}

/// The division a demo key opens, if it is one.
pub fn division_of(key: &str) -> Option<i64> {
    KEYS.iter().find(|(k, _)| *k == key).map(|(_, d)| *d)
}

/// The login a demo key signs in as: the sandbox user owning the key's
/// company, with that company current.
pub fn login_for(books: &Books, key: &str) -> Option<SandboxUser> {
    let division = division_of(key)?;
    let mut user = books
        .users
        .iter()
        .find(|u| u.divisions.contains(&division))?
        .clone();
    user.current_division = division;
    Some(user)
}

/// The administrations (division, name) a demo login reaches.
pub fn administrations(user: &SandboxUser) -> Vec<(i64, String)> {
    user.divisions
        .iter()
        .filter_map(|d| Books::company_name(*d).map(|n| (*d, n.to_owned())))
        .collect()
}

/// An in-process Exact Online for one demo login.
#[derive(Debug, Clone)]
pub struct DemoTransport<B> {
    books: B,
    user: SandboxUser,
}

impl<B: Deref<Target = Books>> DemoTransport<B> {
    pub fn new(books: B, user: SandboxUser) -> Self {
        DemoTransport { books, user }
    }

    pub fn user(&self) -> &SandboxUser {
        &self.user
    }

    fn answer(&self, request: &HttpRequest) -> Result<Reply, TransportError> {
        let books: &Books = &self.books;
        let target = request
            .url
            .strip_prefix(books.base_url.as_str())
            .filter(|t| t.starts_with('/'))
            .ok_or_else(|| {
                TransportError::Network("the demo serves only its own Exact site".into())
            })?;
        if request.method != HttpMethod::Get {
            return Ok(Reply::exact_error(405, "Method not allowed"));
        }
        let headers = request
            .headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
            .collect();
        let req = Req::new("GET".into(), target, headers, String::new(), false);
        Ok(if req.path == "/docs/SysAttachment.aspx" {
            crate::rest::attachment(books, &req, &self.user)
        } else if let Some(rest) = req.path.strip_prefix("/api/v1/") {
            crate::rest::serve(books, &req, &self.user, rest, &mut |_| Ok(Vec::new())).0
        } else {
            Reply::exact_error(404, "Not found")
        })
    }
}

impl<B: Deref<Target = Books>> HttpTransport for DemoTransport<B> {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        Ok(self.send_binary(request, usize::MAX).await?.to_text())
    }

    /// The answer is built in memory already; the cap still holds for what
    /// is handed on, so the tools behave as they do over `fetch`.
    async fn send_binary(
        &self,
        request: HttpRequest,
        max_bytes: usize,
    ) -> Result<BinaryResponse, TransportError> {
        let reply = self.answer(&request)?;
        let mut body = reply.body;
        let truncated = body.len() > max_bytes;
        body.truncate(max_bytes);
        Ok(BinaryResponse {
            status: reply.status,
            headers: reply
                .headers
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect(),
            body,
            truncated,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;

    fn books() -> Books {
        Books::lazy(crate::default_data(), BASE_URL)
    }

    fn get(t: &DemoTransport<&Books>, url: &str) -> BinaryResponse {
        block_on(t.send_binary(
            HttpRequest {
                method: HttpMethod::Get,
                url: url.into(),
                headers: vec![("Accept".into(), "application/json".into())],
                body: None,
            },
            usize::MAX,
        ))
        .unwrap()
    }

    #[test]
    fn every_key_signs_in_to_its_own_company() {
        let books = books();
        for (key, division) in KEYS {
            let user = login_for(&books, key).unwrap();
            assert_eq!(user.current_division, division);
            assert!(user.divisions.contains(&division));
        }
        assert!(login_for(&books, "pmjb_demo_unknown").is_none());
        assert!(is_demo_key("pmjb_demo_x") && !is_demo_key("pmjb_0123"));
    }

    #[test]
    fn serves_exacts_answers_for_the_logins_divisions_only() {
        let books = books();
        let user = login_for(&books, "pmjb_demo_aannemer").unwrap();
        let t = DemoTransport::new(&books, user);
        let ok = get(
            &t,
            &format!("{BASE_URL}/api/v1/1000004/financial/GLAccounts?$select=Code&$top=2"),
        );
        assert_eq!(ok.status, 200);
        let body: serde_json::Value = serde_json::from_slice(&ok.body).unwrap();
        assert_eq!(body["d"]["results"].as_array().unwrap().len(), 2);
        assert_eq!(
            books.built(),
            vec![1_000_004],
            "only the asked company is built"
        );
        let other = get(
            &t,
            &format!("{BASE_URL}/api/v1/1000001/crm/Accounts?$filter=IsSales eq true"),
        );
        assert_eq!(other.status, 403);
        assert!(
            block_on(t.send(HttpRequest {
                method: HttpMethod::Get,
                url: "https://elsewhere.example/api/v1/1000004/crm/Accounts".into(),
                headers: Vec::new(),
                body: None,
            }))
            .is_err()
        );
    }

    #[test]
    fn binary_answers_stop_at_the_callers_cap() {
        let books = books();
        let user = login_for(&books, "pmjb_demo_aannemer").unwrap();
        let t = DemoTransport::new(&books, user);
        let url = format!("{BASE_URL}/api/v1/1000004/financial/GLAccounts?$select=Code&$top=2");
        let whole = get(&t, &url);
        assert!(!whole.truncated && whole.body.len() > 10);
        let capped = block_on(t.send_binary(
            HttpRequest {
                method: HttpMethod::Get,
                url,
                headers: vec![("Accept".into(), "application/json".into())],
                body: None,
            },
            10,
        ))
        .unwrap();
        assert!(capped.truncated);
        assert_eq!(capped.body, whole.body[..10]);
    }
}
