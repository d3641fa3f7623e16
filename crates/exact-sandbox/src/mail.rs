//! A catcher for outgoing mail that speaks the Resend API (`POST /emails`
//! with a bearer key, JSON body, optional `Idempotency-Key`), so the token
//! cron's delivery runs unchanged against it locally and tests can read
//! what a user would have received (`GET /__admin/mails`).

use serde::Serialize;
use serde_json::{Value, json};

use crate::Shared;
use crate::http::{Reply, Req};

/// One accepted mail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CaughtMail {
    pub id: String,
    pub from: String,
    pub to: Vec<String>,
    pub subject: String,
    pub html: String,
    pub text: String,
    pub idempotency_key: Option<String>,
    pub at: String,
}

fn error(status: u16, name: &str, message: &str) -> Reply {
    Reply::json(
        status,
        &json!({"statusCode": status, "name": name, "message": message}),
    )
}

/// `POST /emails`.
pub(crate) fn send(shared: &Shared, req: &Req) -> Reply {
    if req.bearer() != Some(shared.config.mail_api_key.as_str()) {
        return error(401, "missing_api_key", "Missing or invalid API key");
    }
    let Ok(body) = serde_json::from_str::<Value>(&req.body) else {
        return error(422, "validation_error", "Body must be JSON");
    };
    let text_of = |k: &str| body[k].as_str().unwrap_or_default().to_owned();
    let to: Vec<String> = match &body["to"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    };
    if to.is_empty() || to.iter().any(|t| !t.contains('@')) {
        return error(422, "validation_error", "Invalid `to` field");
    }
    if text_of("from").is_empty() || text_of("subject").is_empty() {
        return error(422, "validation_error", "Missing `from` or `subject` field");
    }
    if text_of("html").is_empty() && text_of("text").is_empty() {
        return error(422, "validation_error", "Missing `html` or `text` field");
    }
    let Ok(mut st) = shared.state.lock() else {
        return Reply::empty(500);
    };
    let key = req.header("idempotency-key").map(str::to_owned);
    // Same key: the same mail, accepted once.
    if let Some(k) = &key
        && let Some(prior) = st
            .mails
            .iter()
            .find(|m| m.idempotency_key.as_ref() == Some(k))
    {
        return Reply::json(200, &json!({"id": prior.id}));
    }
    let id = format!("mail_{:06}", st.mails.len() + 1);
    let at = st.now().to_rfc3339();
    st.mails.push(CaughtMail {
        id: id.clone(),
        from: text_of("from"),
        to,
        subject: text_of("subject"),
        html: text_of("html"),
        text: text_of("text"),
        idempotency_key: key,
        at,
    });
    Reply::json(200, &json!({"id": id}))
}
