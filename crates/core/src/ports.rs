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

/// An outbound HTTP request, as core describes it. Its `Debug` never shows
/// a credential: see [`redacted_headers`].
#[derive(Clone, PartialEq, Eq)]
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

/// An HTTP response; headers keep their names lower-cased. Its `Debug`
/// shows the body's length only (a token endpoint's answer holds tokens).
#[derive(Clone, PartialEq, Eq)]
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

/// An HTTP response whose body may be binary (file downloads). Its `Debug`
/// shows the body's length only.
#[derive(Clone, PartialEq, Eq)]
pub struct BinaryResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// At most the `max_bytes` the caller allowed.
    pub body: Vec<u8>,
    /// The body was longer than `max_bytes`: reading stopped there, so
    /// `body` is not the whole file (it may be empty).
    pub truncated: bool,
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

/// Header names whose values are credentials (bearer tokens, API keys,
/// cookies): never printed.
const SECRET_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
];

/// Headers for `Debug`: a credential's value is replaced by `<redacted>`.
pub fn redacted_headers(headers: &[(String, String)]) -> Vec<(&str, &str)> {
    headers
        .iter()
        .map(|(name, value)| {
            let secret = SECRET_HEADERS
                .iter()
                .any(|s| s.eq_ignore_ascii_case(name.as_str()));
            (
                name.as_str(),
                if secret { "<redacted>" } else { value.as_str() },
            )
        })
        .collect()
}

/// A body for `Debug`: its length only. Request bodies are token-endpoint
/// forms (client secret, refresh token, authorization code) or mail
/// payloads; response bodies are token answers or books: none of them
/// belongs in a log line.
struct BodyLength(usize);

impl std::fmt::Debug for BodyLength {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<{} bytes>", self.0)
    }
}

impl std::fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpRequest")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("headers", &redacted_headers(&self.headers))
            .field("body", &self.body.as_ref().map(|b| BodyLength(b.len())))
            .finish()
    }
}

impl std::fmt::Debug for HttpResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpResponse")
            .field("status", &self.status)
            .field("headers", &redacted_headers(&self.headers))
            .field("body", &BodyLength(self.body.len()))
            .finish()
    }
}

impl std::fmt::Debug for BinaryResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BinaryResponse")
            .field("status", &self.status)
            .field("headers", &redacted_headers(&self.headers))
            .field("body", &BodyLength(self.body.len()))
            .field("truncated", &self.truncated)
            .finish()
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
    /// Like `send`, keeping the body's bytes as they came, but never more
    /// than `max_bytes` of them: a transport stops reading there (refusing
    /// on a declared `Content-Length` first) and says `truncated`, so a
    /// file of unknown size cannot make the isolate hold more than the
    /// caller's cap.
    async fn send_binary(
        &self,
        request: HttpRequest,
        max_bytes: usize,
    ) -> Result<BinaryResponse, TransportError>;
}

/// A borrowed transport is a transport, so wrappers (`counting::Counting`)
/// can hold either.
impl<T: HttpTransport + ?Sized> HttpTransport for &T {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        (**self).send(request).await
    }
    async fn send_binary(
        &self,
        request: HttpRequest,
        max_bytes: usize,
    ) -> Result<BinaryResponse, TransportError> {
        (**self).send_binary(request, max_bytes).await
    }
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

/// Where per-call measurements go (Workers Analytics Engine in
/// production). Writing is fire-and-forget: a failure is the adapter's to
/// log, never the request's, so the port cannot fail.
pub trait Metrics {
    fn record(&self, point: &crate::observe::ToolCallPoint);
}

/// Metrics nowhere: locally, where no dataset is bound, and in code that
/// measures nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoMetrics;

impl Metrics for NoMetrics {
    fn record(&self, _point: &crate::observe::ToolCallPoint) {}
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_a_credential() {
        let request = HttpRequest {
            method: HttpMethod::Post,
            url: "https://start.exactonline.nl/api/oauth2/token".into(),
            headers: vec![
                ("Authorization".into(), "Bearer access-SECRET-1".into()),
                (
                    "Content-Type".into(),
                    "application/x-www-form-urlencoded".into(),
                ),
            ],
            body: Some(
                "grant_type=refresh_token&refresh_token=refresh-SECRET-2&client_secret=client-SECRET-3"
                    .into(),
            ),
        };
        let response = HttpResponse {
            status: 200,
            headers: vec![("set-cookie".into(), "session=cookie-SECRET-4".into())],
            body: r#"{"access_token":"access-SECRET-5","refresh_token":"refresh-SECRET-6"}"#.into(),
        };
        let binary = BinaryResponse {
            status: 200,
            headers: vec![("content-type".into(), "text/plain".into())],
            body: b"file-SECRET-7".to_vec(),
            truncated: false,
        };
        let printed = format!("{request:?} {request:#?} {response:?} {response:#?} {binary:?}");
        assert!(!printed.contains("SECRET"), "{printed}");
        // What helps debugging stays: method, URL, harmless headers, sizes.
        assert!(printed.contains("oauth2/token"), "{printed}");
        assert!(
            printed.contains("application/x-www-form-urlencoded"),
            "{printed}"
        );
        assert!(printed.contains("<redacted>"), "{printed}");
        assert!(printed.contains("<13 bytes>"), "{printed}");
    }
}
