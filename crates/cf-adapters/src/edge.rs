//! Errors become responses here, once, for every Worker: a status and a
//! sanitised JSON body for the client, the full cause chain for the log.

use std::error::Error as StdError;

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
