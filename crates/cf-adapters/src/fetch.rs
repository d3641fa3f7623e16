//! Core's [`HttpTransport`] over the runtime's `fetch`, with a timeout
//! (the platform has none of its own) enforced by aborting the request.

use std::time::Duration;

use boekhouding_core::ports::{
    HttpMethod, HttpRequest, HttpResponse, HttpTransport, TransportError,
};
use futures::future::{Either, select};
use worker::{AbortController, Delay, Fetch, Headers, Method, Request, RequestInit};

#[derive(Debug, Clone, Copy)]
pub struct FetchTransport {
    timeout: Duration,
}

impl FetchTransport {
    pub fn new(timeout: Duration) -> Self {
        FetchTransport { timeout }
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

impl HttpTransport for FetchTransport {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
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
        let mut response = match select(sending, timer).await {
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
        let body = response.text().await.map_err(network)?;
        Ok(HttpResponse {
            status,
            headers,
            body,
        })
    }
}
