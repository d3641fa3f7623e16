//! Core's [`HttpTransport`] over the runtime's `fetch`, with a timeout
//! (the platform has none of its own) enforced by aborting the request,
//! and binary downloads read only up to the caller's cap.

use std::time::Duration;

use boekhouding_core::ports::{
    BinaryResponse, HttpMethod, HttpRequest, HttpResponse, HttpTransport, TransportError,
};
use futures::future::{Either, select};

use crate::edge::read_limited;
use worker::{AbortController, Delay, Fetch, Headers, Method, Request, RequestInit};

#[derive(Debug, Clone, Copy)]
pub struct FetchTransport {
    timeout: Duration,
}

impl FetchTransport {
    pub fn new(timeout: Duration) -> Self {
        FetchTransport { timeout }
    }

    /// The deadline of one whole request (headers and body).
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

impl Default for FetchTransport {
    fn default() -> Self {
        Self::new(Duration::from_secs(20))
    }
}

fn network(e: impl std::fmt::Display) -> TransportError {
    TransportError::Network(e.to_string())
}

impl FetchTransport {
    /// Sends and returns the status, lower-cased headers and the response
    /// whose body is still unread.
    async fn start(
        &self,
        request: &HttpRequest,
    ) -> Result<(u16, Vec<(String, String)>, worker::Response), TransportError> {
        let headers = Headers::new();
        for (name, value) in &request.headers {
            headers.set(name, value).map_err(network)?;
        }
        let mut init = RequestInit::new();
        init.with_method(match request.method {
            HttpMethod::Get => Method::Get,
            HttpMethod::Post => Method::Post,
        })
        .with_headers(headers);
        if let Some(body) = &request.body {
            init.with_body(Some(body.as_str().into()));
        }
        let req = Request::new_with_init(&request.url, &init).map_err(network)?;
        let controller = AbortController::default();
        let signal = controller.signal();
        let fetch = Fetch::Request(req);
        let sending = Box::pin(fetch.send_with_signal(&signal));
        let timer = Box::pin(Delay::from(self.timeout));
        let response = match select(sending, timer).await {
            Either::Left((result, _)) => result.map_err(network)?,
            Either::Right(((), _)) => {
                controller.abort();
                return Err(TransportError::Timeout);
            }
        };
        let status = response.status_code();
        let headers = response
            .headers()
            .entries()
            .map(|(n, v)| (n.to_ascii_lowercase(), v))
            .collect();
        Ok((status, headers, response))
    }
}

impl HttpTransport for FetchTransport {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        // One deadline for the whole exchange: a server that sends its
        // headers and then stalls the body must not outlast it.
        let started = js_sys::Date::now();
        let (status, headers, mut response) = self.start(&request).await?;
        let spent = Duration::from_millis((js_sys::Date::now() - started).max(0.0) as u64);
        let left = self.timeout.saturating_sub(spent);
        let reading = Box::pin(response.text());
        let body = match select(reading, Box::pin(Delay::from(left))).await {
            Either::Left((text, _)) => text.map_err(network)?,
            Either::Right(((), _)) => return Err(TransportError::Timeout),
        };
        Ok(HttpResponse {
            status,
            headers,
            body,
        })
    }

    async fn send_binary(
        &self,
        request: HttpRequest,
        max_bytes: usize,
    ) -> Result<BinaryResponse, TransportError> {
        let (status, headers, mut response) = self.start(&request).await?;
        let declared = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .map(|(_, v): &(String, String)| v.clone());
        // A fetched response with a body is a stream; without one there is
        // nothing to read. Dropping the stream early cancels the download.
        let (body, truncated) = match response.stream() {
            Ok(stream) => read_limited(declared.as_deref(), stream, max_bytes)
                .await
                .map_err(network)?,
            Err(_) => (Vec::new(), false),
        };
        Ok(BinaryResponse {
            status,
            headers,
            body,
            truncated,
        })
    }
}
