//! The request scope every Worker's fetch handler ends in: the
//! `X-Request-Id` header on every response (errors and 404s included), an
//! unhandled error turned into a sanitised 500, the one JSON log line
//! (`boekhouding_core::observe::RequestLog`) and, for a tool call, its
//! Workers Analytics Engine data point through [`AnalyticsMetrics`].

use boekhouding_core::observe::{self, RequestLog, ToolCallPoint};
use boekhouding_core::ports::{Clock, Metrics};
use chrono::{DateTime, Utc};
use worker::{
    AnalyticsEngineDataPointBuilder, AnalyticsEngineDataset, Env, Response, console_error,
    console_log,
};

use crate::bindings::{self, var_or};
use crate::edge::json_response;
use crate::platform::WorkerClock;

/// The header every response carries, so a customer's report and the
/// operator's log line meet on one id.
pub const REQUEST_ID_HEADER: &str = "X-Request-Id";

/// core's [`Metrics`] over the `ANALYTICS` dataset; without the binding
/// (locally, unless configured) every write is dropped.
#[derive(Debug)]
pub struct AnalyticsMetrics(Option<AnalyticsEngineDataset>);

impl AnalyticsMetrics {
    pub fn from_env(env: &Env) -> Self {
        AnalyticsMetrics(env.analytics_engine(bindings::ANALYTICS).ok())
    }
}

impl Metrics for AnalyticsMetrics {
    fn record(&self, point: &ToolCallPoint) {
        let Some(dataset) = &self.0 else {
            return;
        };
        let data = AnalyticsEngineDataPointBuilder::new()
            .indexes([point.index.as_str()])
            .blobs(point.blobs())
            .doubles(point.doubles())
            .build();
        // Fire and forget: a lost data point must not fail the request.
        if let Err(e) = dataset.write_data_point(&data) {
            console_error!("analytics engine write failed: {e}");
        }
    }
}

/// When a request started, for its latency.
pub fn started() -> DateTime<Utc> {
    WorkerClock.now()
}

/// Ends a request: an unhandled error becomes a 500 without its text, the
/// response gets `X-Request-Id`, the log line is printed and a tool call's
/// data point written.
pub fn finish(
    result: worker::Result<Response>,
    mut log: RequestLog,
    started: DateTime<Utc>,
    env: &Env,
    metrics: &impl Metrics,
) -> worker::Result<Response> {
    let mut response = match result {
        Ok(r) => r,
        Err(e) => {
            console_error!(
                "{} request {}: unhandled error: {e}",
                log.worker,
                log.request_id
            );
            internal_error(&log.request_id)?
        }
    };
    // Responses the Workers build have mutable headers; if one ever does
    // not, the request still answers (and the log line still has the id).
    if let Err(e) = response
        .headers_mut()
        .set(REQUEST_ID_HEADER, &log.request_id)
    {
        console_error!(
            "{} request {}: X-Request-Id not set: {e}",
            log.worker,
            log.request_id
        );
    }
    log.answered(
        response.status_code(),
        (WorkerClock.now() - started).num_milliseconds(),
    );
    let environment = var_or(env, bindings::ENVIRONMENT, "local");
    console_log!("{}", observe::finish(&log, &environment, metrics));
    Ok(response)
}

fn internal_error(request_id: &str) -> worker::Result<Response> {
    json_response(
        500,
        &serde_json::json!({
            "error": "internal_error",
            "message": "Something went wrong on our side; try again shortly.",
            "request_id": request_id,
        }),
    )
    .or_else(|_| Response::error("internal error", 500))
}
