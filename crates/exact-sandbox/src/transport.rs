//! A native, blocking implementation of core's `HttpTransport` for tests,
//! tools and benchmarks that talk to the sandbox over real HTTP, and for
//! `cargo xtask dev --exact-url` against a real Exact over HTTPS (rustls
//! with the bundled web PKI roots).

use std::io::Read;
use std::time::Duration;

use boekhouding_core::ports::{
    BinaryResponse, HttpMethod, HttpRequest, HttpResponse, HttpTransport, TransportError,
};

#[derive(Debug, Clone)]
pub struct BlockingTransport {
    agent: ureq::Agent,
}

impl BlockingTransport {
    pub fn new(timeout: Duration) -> Self {
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .max_redirects(0)
            .build();
        BlockingTransport {
            agent: ureq::Agent::new_with_config(config),
        }
    }
}

impl Default for BlockingTransport {
    fn default() -> Self {
        Self::new(Duration::from_secs(10))
    }
}

fn map_err(e: ureq::Error) -> TransportError {
    match e {
        ureq::Error::Timeout(_) => TransportError::Timeout,
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => TransportError::Timeout,
        other => TransportError::Network(other.to_string()),
    }
}

impl BlockingTransport {
    /// Sends; the response's body is still unread.
    fn start(
        &self,
        request: HttpRequest,
    ) -> Result<ureq::http::Response<ureq::Body>, TransportError> {
        let result = match request.method {
            HttpMethod::Get => {
                let mut r = self.agent.get(&request.url);
                for (k, v) in &request.headers {
                    r = r.header(k, v);
                }
                r.call()
            }
            HttpMethod::Post => {
                let mut r = self.agent.post(&request.url);
                for (k, v) in &request.headers {
                    r = r.header(k, v);
                }
                r.send(request.body.unwrap_or_default())
            }
        };
        result.map_err(map_err)
    }
}

/// The status and lower-cased headers of a response.
fn head(resp: &ureq::http::Response<ureq::Body>) -> (u16, Vec<(String, String)>) {
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                v.to_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    (resp.status().as_u16(), headers)
}

impl HttpTransport for BlockingTransport {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        let mut resp = self.start(request)?;
        let (status, headers) = head(&resp);
        // ureq's own ceiling for whole bodies (10 MB) stays in force here.
        let body = resp.body_mut().read_to_vec().map_err(map_err)?;
        Ok(BinaryResponse {
            status,
            headers,
            body,
            truncated: false,
        }
        .to_text())
    }

    async fn send_binary(
        &self,
        request: HttpRequest,
        max_bytes: usize,
    ) -> Result<BinaryResponse, TransportError> {
        let mut resp = self.start(request)?;
        let (status, headers) = head(&resp);
        // One byte more than the cap tells "exactly the cap" from "more".
        let mut body = Vec::new();
        resp.body_mut()
            .with_config()
            .reader()
            .take((max_bytes as u64).saturating_add(1))
            .read_to_end(&mut body)
            .map_err(|e| TransportError::Network(e.to_string()))?;
        let truncated = body.len() > max_bytes;
        body.truncate(max_bytes);
        Ok(BinaryResponse {
            status,
            headers,
            body,
            truncated,
        })
    }
}
