//! Effects core needs but does not perform: time and randomness. Workers
//! implement them over the platform (`boekhouding-cf`); tests use the fakes
//! in [`crate::testing`].

use chrono::{DateTime, Utc};

/// Where "now" comes from. Core never reads a clock itself.
pub trait Clock {
    fn now(&self) -> DateTime<Utc>;
}

/// A cryptographically secure random source.
pub trait Randomness {
    /// Fills `buf` with random bytes.
    ///
    /// # Errors
    /// [`RandomnessUnavailable`] when the platform cannot provide entropy;
    /// callers map it to an internal error (HTTP 500), never to a weaker
    /// source.
    fn fill(&self, buf: &mut [u8]) -> Result<(), RandomnessUnavailable>;
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no secure randomness available")]
pub struct RandomnessUnavailable;

/// An outbound HTTP request, as core describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: HttpMethod,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpMethod {
    Get,
    Post,
}

/// An HTTP response; headers keep their names lower-cased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    /// The first header of that (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// An HTTP response whose body may be binary (file downloads).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinaryResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl BinaryResponse {
    /// The same response with the body read as text (lossy), for status
    /// and error handling shared with text responses.
    pub fn to_text(&self) -> HttpResponse {
        HttpResponse {
            status: self.status,
            headers: self.headers.clone(),
            body: String::from_utf8_lossy(&self.body).into_owned(),
        }
    }
}

/// Transport failures before any HTTP status was received.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// The request did not finish in time; safe to retry if idempotent.
    #[error("request timed out")]
    Timeout,
    /// Connection refused, DNS, TLS or similar.
    #[error("network failure: {0}")]
    Network(String),
}

/// The port for outbound HTTP (Exact, e-mail provider). Single-threaded,
/// like the Workers runtime, so no `Send` bound.
#[allow(async_fn_in_trait)]
pub trait HttpTransport {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError>;
    /// Like `send`, keeping the body's bytes as they came.
    async fn send_binary(&self, request: HttpRequest) -> Result<BinaryResponse, TransportError>;
}

/// The port for a small, eventually consistent cache (Workers KV). Only
/// for data where a stale read is harmless: never for locks or revocation.
#[allow(async_fn_in_trait)]
pub trait KvCache {
    async fn get(&self, key: &str) -> Result<Option<String>, CacheError>;
    /// Stores a JSON string for `ttl_seconds` (the platform minimum is 60).
    async fn put(&self, key: &str, value: &str, ttl_seconds: u32) -> Result<(), CacheError>;
    async fn delete(&self, key: &str) -> Result<(), CacheError>;
}

/// A cache failure; callers treat it as a miss and carry on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cache unavailable: {0}")]
pub struct CacheError(pub String);

/// Waiting without blocking the runtime (a lease held by another request).
#[allow(async_fn_in_trait)]
pub trait Sleep {
    async fn sleep_ms(&self, ms: u64);
}

/// Runs `work` until it finishes or `ms` milliseconds pass, whichever is
/// first; `None` when the time ran out (the work is then dropped). The
/// work is polled first, so work that is ready at once never starts the
/// timer.
pub async fn within<T>(
    sleep: &impl Sleep,
    ms: u64,
    work: impl std::future::Future<Output = T>,
) -> Option<T> {
    use std::task::Poll;
    let mut work = std::pin::pin!(work);
    let mut timer = std::pin::pin!(sleep.sleep_ms(ms));
    std::future::poll_fn(|cx| {
        if let Poll::Ready(done) = work.as_mut().poll(cx) {
            return Poll::Ready(Some(done));
        }
        if timer.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        Poll::Pending
    })
    .await
}
