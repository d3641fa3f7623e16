//! Errors become responses here, once, for every Worker: a status and a
//! sanitised JSON body for the client, the full cause chain for the log.
//! Request bodies are read here too, never beyond a cap.

use std::error::Error as StdError;
use std::fmt::Display;

use boekhouding_core::storage::Statement;
use boekhouding_core::storage::error_log::{self, ErrorRecord, Service};
use futures::{Stream, StreamExt};
use serde::Serialize;
use worker::{Response, console_error};

/// What every Worker's error enum tells the edge.
pub trait EdgeError: StdError {
    /// HTTP status to answer with.
    fn status(&self) -> u16;
    /// A stable machine-readable code, e.g. `database_unavailable`.
    fn code(&self) -> &'static str;
    /// A message safe to show a client. Internal details never go here.
    fn public_message(&self) -> String;
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    message: String,
    request_id: &'a str,
}

/// The full `source()` chain, for logs only.
pub fn cause_chain(err: &dyn StdError) -> String {
    let mut out = err.to_string();
    let mut next = err.source();
    while let Some(e) = next {
        out.push_str(": ");
        out.push_str(&e.to_string());
        next = e.source();
    }
    out
}

/// Logs `err` (5xx as errors) and builds the client's response.
pub fn error_response(
    service: &str,
    request_id: &str,
    err: &impl EdgeError,
) -> worker::Result<Response> {
    let status = err.status();
    if status >= 500 {
        console_error!(
            "{service} request {request_id}: {} ({})",
            err.code(),
            cause_chain(err)
        );
    }
    json_response(
        status,
        &Body {
            error: err.code(),
            message: err.public_message(),
            request_id,
        },
    )
}

/// The `error_log` row of an error the edge answers with a 5xx (`None`
/// for a 4xx, which is the client's doing): the code as its kind and the
/// cause chain, scrubbed of secrets by core, as its message. The Worker
/// writes it after the answer (`ctx.wait_until`), off the latency path.
pub fn error_log_statement(
    service: Service,
    request_id: &str,
    user_id: Option<&str>,
    err: &impl EdgeError,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<Statement> {
    (err.status() >= 500).then(|| {
        let message = cause_chain(err);
        error_log::insert_statement(
            &ErrorRecord {
                service,
                kind: err.code(),
                message: &message,
                request_id: Some(request_id),
                user_id,
            },
            now,
        )
    })
}

/// A JSON response with a status and the headers every API answer carries.
pub fn json_response(status: u16, body: &impl Serialize) -> worker::Result<Response> {
    let mut response = Response::from_json(body)?.with_status(status);
    let headers = response.headers_mut();
    headers.set("Cache-Control", "no-store")?;
    headers.set("X-Content-Type-Options", "nosniff")?;
    Ok(response)
}

/// A request id: the platform's `cf-ray` when present, else random hex.
pub fn request_id(req: &worker::Request) -> String {
    if let Ok(Some(ray)) = req.headers().get("cf-ray") {
        return ray;
    }
    let mut raw = [0u8; 8];
    if getrandom::fill(&mut raw).is_err() {
        return "unknown".to_owned();
    }
    raw.iter().map(|b| format!("{b:02x}")).collect()
}

/// Why a request body was not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// The body declared or turned out longer than the cap; reading
    /// stopped there.
    #[error("request body over {limit} bytes")]
    TooLarge { limit: usize },
    /// The client's stream failed mid-way (a disconnect, a malformed chunk).
    #[error("request body unreadable: {0}")]
    Unreadable(String),
}

impl EdgeError for BodyError {
    fn status(&self) -> u16 {
        match self {
            BodyError::TooLarge { .. } => 413,
            BodyError::Unreadable(_) => 400,
        }
    }
    fn code(&self) -> &'static str {
        match self {
            BodyError::TooLarge { .. } => "payload_too_large",
            BodyError::Unreadable(_) => "bad_request",
        }
    }
    fn public_message(&self) -> String {
        match self {
            BodyError::TooLarge { limit } => {
                format!("Request body too large (limit {limit} bytes).")
            }
            BodyError::Unreadable(_) => "The request body could not be read.".into(),
        }
    }
}

/// Reads at most `limit` bytes from a body's chunks, for requests coming
/// in and responses coming back alike. A declared `Content-Length` over
/// the limit is believed before a single chunk is read; otherwise
/// (chunked, or a length that lies) reading stops at the first chunk that
/// passes the limit, so a hostile or unexpectedly large body never makes
/// the isolate hold more than `limit` plus one chunk. Returns the bytes
/// kept (at most `limit`) and whether the body was longer.
pub async fn read_limited<S, E>(
    content_length: Option<&str>,
    mut chunks: S,
    limit: usize,
) -> Result<(Vec<u8>, bool), E>
where
    S: Stream<Item = Result<Vec<u8>, E>> + Unpin,
{
    if content_length
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_some_and(|declared| declared > limit as u64)
    {
        return Ok((Vec::new(), true));
    }
    let mut body = Vec::new();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk?;
        let room = limit - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            return Ok((body, true));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, false))
}

/// A request body of at most `limit` bytes ([`read_limited`]); a longer
/// one is [`BodyError::TooLarge`].
pub async fn read_capped<S, E>(
    content_length: Option<&str>,
    chunks: S,
    limit: usize,
) -> Result<Vec<u8>, BodyError>
where
    S: Stream<Item = Result<Vec<u8>, E>> + Unpin,
    E: Display,
{
    match read_limited(content_length, chunks, limit).await {
        Ok((body, false)) => Ok(body),
        Ok((_, true)) => Err(BodyError::TooLarge { limit }),
        Err(e) => Err(BodyError::Unreadable(e.to_string())),
    }
}

/// A request's body, read with [`read_capped`]: every Worker reads bodies
/// through this, never with `bytes()`/`text()`, which buffer whatever the
/// client sends. A request without a body reads as empty.
pub async fn read_body(req: &mut worker::Request, limit: usize) -> Result<Vec<u8>, BodyError> {
    let declared = req.headers().get("content-length").ok().flatten();
    if req.inner().body().is_none() {
        return Ok(Vec::new());
    }
    let stream = req
        .stream()
        .map_err(|e| BodyError::Unreadable(e.to_string()))?;
    read_capped(declared.as_deref(), stream, limit).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;
    use futures::stream;

    type Chunk = Result<Vec<u8>, String>;

    #[derive(Debug, thiserror::Error)]
    #[error("token exchange failed")]
    struct Broken(#[source] Cause);

    #[derive(Debug, thiserror::Error)]
    #[error("POST https://start.exactonline.nl/api/oauth2/token?code=SECRETCODE failed")]
    struct Cause;

    impl EdgeError for Broken {
        fn status(&self) -> u16 {
            502
        }
        fn code(&self) -> &'static str {
            "upstream_unavailable"
        }
        fn public_message(&self) -> String {
            "try again".into()
        }
    }

    #[test]
    fn a_5xx_gets_an_error_row_with_its_chain_scrubbed_and_a_4xx_none() {
        let now = chrono::DateTime::<chrono::Utc>::MIN_UTC;
        let row = error_log_statement(Service::McpServer, "req-9", Some("u1"), &Broken(Cause), now);
        let text = format!("{row:?}");
        assert!(row.is_some());
        assert!(
            text.contains("upstream_unavailable") && text.contains("req-9"),
            "{text}"
        );
        assert!(text.contains("token exchange failed: POST https://start.exactonline.nl/api/oauth2/token?[redacted]"), "{text}");
        assert!(!text.contains("SECRETCODE"), "{text}");
        let client = BodyError::TooLarge { limit: 1 };
        assert_eq!(
            error_log_statement(Service::McpServer, "r", None, &client, now),
            None
        );
    }

    #[test]
    fn a_declared_length_over_the_limit_is_refused_before_reading() {
        // A stream that fails when polled: a refusal on the header alone
        // never touches it.
        let untouchable = stream::poll_fn(|_| -> std::task::Poll<Option<Chunk>> {
            panic!("the body was read although its declared length was over the limit")
        });
        assert_eq!(
            block_on(read_capped(Some("52428800"), untouchable, 262_144)),
            Err(BodyError::TooLarge { limit: 262_144 })
        );
    }

    #[test]
    fn an_endless_chunked_body_stops_at_the_limit() {
        // An endless stream (chunked, no length): reading must stop by
        // itself once the limit is passed.
        let mut pulled = 0usize;
        let endless = stream::poll_fn(|_| {
            pulled += 1;
            std::task::Poll::Ready(Some(Chunk::Ok(vec![b'x'; 65_536])))
        });
        assert_eq!(
            block_on(read_capped(None, endless, 262_144)),
            Err(BodyError::TooLarge { limit: 262_144 })
        );
        assert_eq!(pulled, 5, "four chunks fit, the fifth passes the limit");
    }

    #[test]
    fn a_length_that_lies_is_caught_by_the_count() {
        let chunks = stream::iter(vec![Chunk::Ok(vec![0; 200]), Chunk::Ok(vec![0; 200])]);
        assert_eq!(
            block_on(read_capped(Some("10"), chunks, 300)),
            Err(BodyError::TooLarge { limit: 300 })
        );
    }

    #[test]
    fn a_response_is_kept_up_to_the_limit_and_marked_truncated() {
        let chunks = stream::iter(vec![Chunk::Ok(vec![1; 6]), Chunk::Ok(vec![2; 6])]);
        assert_eq!(
            block_on(read_limited(None, chunks, 8)),
            Ok((vec![1, 1, 1, 1, 1, 1, 2, 2], true))
        );
        let exact = stream::iter(vec![Chunk::Ok(vec![1; 4]), Chunk::Ok(vec![2; 4])]);
        assert_eq!(
            block_on(read_limited(Some("8"), exact, 8)),
            Ok((vec![1, 1, 1, 1, 2, 2, 2, 2], false))
        );
        let declared = stream::poll_fn(|_| -> std::task::Poll<Option<Chunk>> {
            panic!("read although the declared length was over the limit")
        });
        assert_eq!(
            block_on(read_limited(Some("9"), declared, 8)),
            Ok((Vec::new(), true))
        );
    }

    #[test]
    fn bodies_within_the_limit_arrive_whole() {
        let chunks = stream::iter(vec![
            Chunk::Ok(b"{\"a\":".to_vec()),
            Chunk::Ok(b"1}".to_vec()),
        ]);
        assert_eq!(
            block_on(read_capped(Some("7"), chunks, 7)),
            Ok(b"{\"a\":1}".to_vec())
        );
        let empty = stream::iter(Vec::<Chunk>::new());
        assert_eq!(block_on(read_capped(None, empty, 7)), Ok(Vec::new()));
        let broken = stream::iter(vec![Chunk::Err("reset".into())]);
        assert!(matches!(
            block_on(read_capped(None, broken, 7)),
            Err(BodyError::Unreadable(_))
        ));
    }
}
