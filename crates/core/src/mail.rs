//! Mail to users: the texts (Dutch and English, every interpolated value
//! HTML-escaped) and delivery through a Resend-compatible HTTP API with an
//! idempotency key, classified into sent / retry later / rejected.

use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use crate::crypto::Secret;
use crate::ports::{HttpMethod, HttpRequest, HttpTransport};
use crate::storage::connections::{Notice, NoticeKind};
use crate::storage::email_queue::{NewEmail, QueuedEmail};

/// Minutes before delivery attempt 2, 3, ... of one mail.
pub const RETRY_MINUTES: [i64; 5] = [1, 5, 30, 120, 720];
/// Attempts before a mail is given up as `failed`.
pub const MAX_ATTEMPTS: u32 = RETRY_MINUTES.len() as u32 + 1;

/// The e-mail provider (Resend, or anything speaking its `POST /emails`).
#[derive(Debug, Clone)]
pub struct MailSettings {
    /// API base, e.g. `https://api.resend.com` (no trailing slash).
    pub api_url: String,
    pub api_key: Secret,
    /// Sender, e.g. `Praat met je Boekhouding <noreply@example.nl>`.
    pub from: String,
}

/// What one delivery attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    Sent {
        provider_id: String,
    },
    /// Worth another attempt later (network, 429, 5xx, provider auth).
    RetryLater(String),
    /// The provider refused this mail (bad address, validation): final.
    Rejected(String),
}

/// Sends one claimed mail.
pub async fn deliver(
    http: &impl HttpTransport,
    settings: &MailSettings,
    mail: &QueuedEmail,
) -> Delivery {
    let body = json!({
        "from": settings.from,
        "to": [mail.to_email],
        "subject": mail.subject,
        "html": mail.html,
        "text": mail.text,
        "tags": [{"name": "template", "value": mail.template}],
    });
    let idempotency = mail
        .dedupe_key
        .clone()
        .unwrap_or_else(|| format!("email-{}", mail.id));
    let request = HttpRequest {
        method: HttpMethod::Post,
        url: format!("{}/emails", settings.api_url.trim_end_matches('/')),
        headers: vec![
            (
                "Authorization".into(),
                format!("Bearer {}", settings.api_key.expose()),
            ),
            ("Content-Type".into(), "application/json".into()),
            ("Idempotency-Key".into(), idempotency),
        ],
        body: Some(body.to_string()),
    };
    match http.send(request).await {
        Err(e) => Delivery::RetryLater(e.to_string()),
        Ok(r) if (200..300).contains(&r.status) => {
            let id = serde_json::from_str::<serde_json::Value>(&r.body)
                .ok()
                .and_then(|v| v["id"].as_str().map(str::to_owned))
                .unwrap_or_default();
            Delivery::Sent { provider_id: id }
        }
        // Throttled, provider trouble, or our key is wrong: not this
        // mail's fault, so it waits for a later attempt.
        Ok(r) if r.status == 429 || r.status >= 500 || r.status == 401 || r.status == 403 => {
            Delivery::RetryLater(format!("provider answered {}", r.status))
        }
        Ok(r) => Delivery::Rejected(format!(
            "provider refused the mail ({}): {}",
            r.status,
            provider_message(&r.body)
        )),
    }
}

/// The provider's error message, short and without echoing the request.
fn provider_message(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_owned))
        .unwrap_or_default()
        .chars()
        .take(200)
        .collect()
}

/// When the next attempt of a mail that has had `attempts` goes out;
/// `None`: give up.
pub fn next_attempt(attempts: u32, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let idx = usize::try_from(attempts).ok()?.checked_sub(1)?;
    RETRY_MINUTES.get(idx).map(|m| now + Duration::minutes(*m))
}

fn esc(s: &str) -> String {
    html_escape::encode_text(s).into_owned()
}

fn esc_attr(s: &str) -> String {
    html_escape::encode_double_quoted_attribute(s).into_owned()
}

fn dutch(locale: &str) -> bool {
    !locale.eq_ignore_ascii_case("en")
}

fn greeting(notice: &Notice) -> (String, String) {
    let nl = dutch(&notice.locale);
    match notice.name.as_deref().filter(|n| !n.trim().is_empty()) {
        Some(n) if nl => (format!("Beste {n},"), format!("Beste {},", esc(n))),
        Some(n) => (format!("Dear {n},"), format!("Dear {},", esc(n))),
        None if nl => ("Beste klant,".into(), "Beste klant,".into()),
        None => ("Hello,".into(), "Hello,".into()),
    }
}

fn page(greeting_html: &str, paragraphs: &[String], link: &str, button: &str) -> String {
    let mut html = String::from(
        "<!doctype html><html><body style=\"font-family:sans-serif;line-height:1.5\">",
    );
    html.push_str(&format!("<p>{greeting_html}</p>"));
    for p in paragraphs {
        html.push_str(&format!("<p>{}</p>", esc(p)));
    }
    html.push_str(&format!(
        "<p><a href=\"{}\" style=\"background:#1d4ed8;color:#fff;padding:10px 16px;border-radius:6px;text-decoration:none\">{}</a></p>",
        esc_attr(link),
        esc(button)
    ));
    html.push_str(
        "<p style=\"color:#666;font-size:12px\">Praat met je Boekhouding</p></body></html>",
    );
    html
}

/// The reconnect link for a connection's region.
pub fn reconnect_link(portal_url: &str, notice: &Notice) -> String {
    format!(
        "{}/connect?region={}",
        portal_url.trim_end_matches('/'),
        notice.region.code()
    )
}

/// The mail for a notice: what happened, what it means, the one link.
pub fn notice_mail(notice: &Notice, portal_url: &str) -> NewEmail {
    let nl = dutch(&notice.locale);
    let link = reconnect_link(portal_url, notice);
    let (greet_text, greet_html) = greeting(notice);
    let lapse = notice
        .refresh_expires_at
        .format("%Y-%m-%d %H:%M UTC")
        .to_string();
    let (template, subject, paragraphs, button, dedupe) = match notice.kind {
        NoticeKind::ReconnectNeeded => (
            "reconnect_needed",
            if nl {
                "Actie nodig: koppel Exact Online opnieuw".to_owned()
            } else {
                "Action needed: reconnect Exact Online".to_owned()
            },
            if nl {
                vec![
                    "De koppeling met Exact Online werkt niet meer, zodat je AI-assistent je boekhouding niet kan lezen.".to_owned(),
                    "Log opnieuw in bij Exact Online om de koppeling te herstellen. Je gekozen administraties en API-sleutels blijven behouden.".to_owned(),
                ]
            } else {
                vec![
                    "The connection to Exact Online has stopped working, so your AI assistant cannot read your books.".to_owned(),
                    "Sign in with Exact Online again to restore it. Your chosen administrations and API keys are kept.".to_owned(),
                ]
            },
            if nl { "Opnieuw koppelen" } else { "Reconnect" },
            format!(
                "reconnect:{}:{}",
                notice.connection_id, notice.token_generation
            ),
        ),
        NoticeKind::LapsingSoon => (
            "refresh_lapsing",
            if nl {
                "Je Exact Online-koppeling verloopt binnenkort".to_owned()
            } else {
                "Your Exact Online connection expires soon".to_owned()
            },
            if nl {
                vec![
                    format!("We konden je Exact Online-koppeling de laatste tijd niet vernieuwen. Lukt dat niet voor {lapse}, dan vervalt ze."),
                    "We blijven het automatisch proberen. Wil je zeker zijn, koppel dan nu opnieuw.".to_owned(),
                ]
            } else {
                vec![
                    format!(
                        "We have not been able to renew your Exact Online connection lately. Unless that succeeds before {lapse}, it will expire."
                    ),
                    "We keep trying automatically. To be sure, reconnect now.".to_owned(),
                ]
            },
            if nl {
                "Nu opnieuw koppelen"
            } else {
                "Reconnect now"
            },
            format!(
                "lapse:{}:{}",
                notice.connection_id,
                notice.refresh_expires_at.timestamp()
            ),
        ),
    };
    let mut text = format!("{greet_text}\n\n");
    for p in &paragraphs {
        text.push_str(p);
        text.push_str("\n\n");
    }
    text.push_str(&format!(
        "{button}: {link}\n\n-- \nPraat met je Boekhouding\n"
    ));
    NewEmail {
        user_id: Some(notice.user_id.clone()),
        to: notice.email.clone(),
        template,
        subject,
        html: page(&greet_html, &paragraphs, &link, button),
        text,
        dedupe_key: Some(dedupe),
    }
}

/// An operator mail: plain paragraphs, every value escaped.
fn operator_mail(
    to: &str,
    template: &'static str,
    subject: String,
    paragraphs: &[String],
    dedupe_key: String,
) -> NewEmail {
    let mut text = String::new();
    for p in paragraphs {
        text.push_str(p);
        text.push_str("\n\n");
    }
    let mut html = String::from("<!doctype html><html><body style=\"font-family:sans-serif\">");
    for p in paragraphs {
        html.push_str(&format!("<p>{}</p>", esc(p)));
    }
    html.push_str("</body></html>");
    NewEmail {
        user_id: None,
        to: to.to_owned(),
        template,
        subject,
        html,
        text,
        dedupe_key: Some(dedupe_key),
    }
}

/// The one mail that says an incident opened (to one operator). The
/// dedupe key names the incident (kind and opening time) and the address.
pub fn incident_opened(
    to: &str,
    kind: crate::alerts::IncidentKind,
    details: &str,
    opened_at: DateTime<Utc>,
) -> NewEmail {
    operator_mail(
        to,
        "operator_incident_opened",
        format!(
            "[Praat met je Boekhouding] Incident: {}: {}",
            kind.title(),
            details.chars().take(120).collect::<String>()
        ),
        &[
            format!(
                "At {} the token cron opened an incident ({}): {}.",
                opened_at.format("%Y-%m-%d %H:%M UTC"),
                kind.as_str(),
                kind.title()
            ),
            format!("Details: {details}."),
            kind.advice().to_owned(),
            "You get one more mail when it resolves; the incidents table holds its history."
                .to_owned(),
        ],
        format!(
            "incident:{}:{}:opened:{to}",
            kind.as_str(),
            opened_at.timestamp()
        ),
    )
}

/// The mail that says an incident resolved.
pub fn incident_resolved(
    to: &str,
    kind: crate::alerts::IncidentKind,
    details: &str,
    opened_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> NewEmail {
    let minutes = (now - opened_at).num_minutes();
    operator_mail(
        to,
        "operator_incident_resolved",
        format!("[Praat met je Boekhouding] Resolved: {}", kind.title()),
        &[
            format!(
                "At {} the incident opened at {} ({}) resolved after {minutes} minutes: the condition has not been seen since.",
                now.format("%Y-%m-%d %H:%M UTC"),
                opened_at.format("%Y-%m-%d %H:%M UTC"),
                kind.as_str()
            ),
            format!("Last details: {details}."),
        ],
        format!(
            "incident:{}:{}:resolved:{to}",
            kind.as_str(),
            opened_at.timestamp()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::region::Region;
    use chrono::TimeZone;

    fn notice(kind: NoticeKind, name: &str, locale: &str) -> Notice {
        Notice {
            kind,
            connection_id: "c1".into(),
            user_id: "u1".into(),
            email: "jan@example.nl".into(),
            name: Some(name.into()),
            locale: locale.into(),
            region: Region::Be,
            last_error: Some("invalid_grant".into()),
            refresh_expires_at: Utc.with_ymd_and_hms(2026, 12, 1, 8, 0, 0).unwrap(),
            token_generation: 7,
        }
    }

    #[test]
    fn hostile_names_are_escaped_in_html_and_the_link_names_the_region() {
        let n = notice(
            NoticeKind::ReconnectNeeded,
            "<script>alert(1)</script>&",
            "nl",
        );
        let m = notice_mail(&n, "https://portal.example/");
        assert!(!m.html.contains("<script>"), "{}", m.html);
        assert!(m.html.contains("&lt;script&gt;"));
        assert!(
            m.html
                .contains("href=\"https://portal.example/connect?region=be\"")
        );
        assert!(m.text.contains("https://portal.example/connect?region=be"));
        assert_eq!(m.subject, "Actie nodig: koppel Exact Online opnieuw");
        assert_eq!(m.dedupe_key.as_deref(), Some("reconnect:c1:7"));
        assert_eq!(m.template, "reconnect_needed");
    }

    #[test]
    fn english_users_get_english_and_lapse_mails_name_the_date() {
        let m = notice_mail(&notice(NoticeKind::LapsingSoon, "Ann", "en"), "https://p");
        assert_eq!(m.subject, "Your Exact Online connection expires soon");
        assert!(m.text.starts_with("Dear Ann,"));
        assert!(m.text.contains("2026-12-01 08:00 UTC"));
        assert!(
            m.dedupe_key
                .as_deref()
                .is_some_and(|k| k.starts_with("lapse:c1:"))
        );
    }

    #[test]
    fn retries_follow_the_schedule_then_give_up() {
        let t = Utc.with_ymd_and_hms(2026, 11, 23, 0, 0, 0).unwrap();
        let waits: Vec<i64> = (1..MAX_ATTEMPTS)
            .filter_map(|a| next_attempt(a, t))
            .map(|at| (at - t).num_minutes())
            .collect();
        assert_eq!(waits, RETRY_MINUTES.to_vec());
        assert_eq!(next_attempt(MAX_ATTEMPTS, t), None);
    }
}

/// A usage warning: how many of the month's calls are used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageThreshold {
    /// 80 % of the plan's monthly calls.
    Most,
    /// All of them: calls are refused until the reset or an upgrade.
    All,
}

impl UsageThreshold {
    fn percent(self) -> u64 {
        match self {
            UsageThreshold::Most => 80,
            UsageThreshold::All => 100,
        }
    }

    /// The threshold a call that took the month's count from `before` to
    /// `after` crossed (the higher one if both), for a plan with a cap.
    pub fn crossed(before: u64, after: u64, limit: crate::plan::Limit) -> Option<UsageThreshold> {
        let crate::plan::Limit::Capped(cap) = limit else {
            return None;
        };
        let cap = u64::from(cap);
        // 80 % rounded up, so a cap of 3 warns at 3, not at 2.4.
        let most = (cap * 80).div_ceil(100);
        if before < cap && after >= cap {
            Some(UsageThreshold::All)
        } else if before < most && after >= most {
            Some(UsageThreshold::Most)
        } else {
            None
        }
    }
}

/// The facts a usage warning states.
#[derive(Debug, Clone)]
pub struct UsageWarning<'a> {
    pub user_id: &'a str,
    pub threshold: UsageThreshold,
    pub used: u64,
    pub cap: u64,
    /// `YYYY-MM`: one warning of each kind per user and month.
    pub month: &'a str,
    pub resets_at: DateTime<Utc>,
    /// Where to pay for more (the upgrade page), or the dashboard.
    pub link: &'a str,
}

/// Queues the warning for a user who wants usage mails, in their
/// language, once per threshold and month (the dedupe key): one
/// statement, so it can ride in the batch written after a tool call's
/// answer without reading the user first.
pub fn usage_warning_statement(
    w: &UsageWarning<'_>,
    now: DateTime<Utc>,
) -> crate::storage::Statement {
    let pct = w.threshold.percent();
    let resets = w.resets_at.format("%Y-%m-%d").to_string();
    let (nl_subject, en_subject) = match w.threshold {
        UsageThreshold::Most => (
            format!("Je hebt {pct} % van je vragen deze maand gebruikt"),
            format!("You have used {pct} % of this month's questions"),
        ),
        UsageThreshold::All => (
            "Je maandlimiet is bereikt".to_owned(),
            "You have reached your monthly limit".to_owned(),
        ),
    };
    let nl_paragraphs = vec![
        format!(
            "Je AI-assistent heeft deze maand {} van de {} vragen van je abonnement gesteld.",
            w.used, w.cap
        ),
        match w.threshold {
            UsageThreshold::Most => format!(
                "Op {resets} begint de teller opnieuw. Heb je meer nodig, dan kun je nu overstappen."
            ),
            UsageThreshold::All => format!(
                "Tot {resets} beantwoorden we geen nieuwe vragen, tenzij je overstapt naar een groter abonnement."
            ),
        },
    ];
    let en_paragraphs = vec![
        format!(
            "Your AI assistant has asked {} of your plan's {} questions this month.",
            w.used, w.cap
        ),
        match w.threshold {
            UsageThreshold::Most => format!(
                "The count starts again on {resets}. If you need more, you can upgrade now."
            ),
            UsageThreshold::All => format!(
                "Until {resets} no new questions are answered, unless you move to a larger plan."
            ),
        },
    ];
    let text = |greeting: &str, paragraphs: &[String], button: &str| {
        format!(
            "{greeting}\n\n{}\n\n{button}: {}\n\n-- \nPraat met je Boekhouding\n",
            paragraphs.join("\n\n"),
            w.link
        )
    };
    let nl_html = page("Hallo,", &nl_paragraphs, w.link, "Meer vragen per maand");
    let en_html = page("Hello,", &en_paragraphs, w.link, "More questions a month");
    let nl_text = text("Hallo,", &nl_paragraphs, "Meer vragen per maand");
    let en_text = text("Hello,", &en_paragraphs, "More questions a month");
    crate::storage::Statement::new(
        "INSERT INTO email_queue (user_id, to_email, template, subject, html, text, dedupe_key,
            next_attempt_at, created_at)
         SELECT id, email, ?,
                CASE locale WHEN 'en' THEN ? ELSE ? END,
                CASE locale WHEN 'en' THEN ? ELSE ? END,
                CASE locale WHEN 'en' THEN ? ELSE ? END,
                ?, ?, ?
         FROM users WHERE id = ? AND email_usage_warnings = 1
         ON CONFLICT (dedupe_key) DO NOTHING",
        vec![
            (match w.threshold {
                UsageThreshold::Most => "usage_80",
                UsageThreshold::All => "usage_100",
            })
            .into(),
            en_subject.into(),
            nl_subject.into(),
            en_html.into(),
            nl_html.into(),
            en_text.into(),
            nl_text.into(),
            format!("usage-{pct}:{}:{}", w.user_id, w.month).into(),
            now.into(),
            now.into(),
            w.user_id.into(),
        ],
    )
}

#[cfg(test)]
mod usage_tests {
    use super::*;
    use crate::plan::Limit;

    #[test]
    fn each_threshold_is_crossed_once_by_the_call_that_reaches_it() {
        let cap = Limit::Capped(200);
        assert_eq!(UsageThreshold::crossed(158, 159, cap), None);
        assert_eq!(
            UsageThreshold::crossed(159, 160, cap),
            Some(UsageThreshold::Most)
        );
        assert_eq!(UsageThreshold::crossed(160, 161, cap), None);
        assert_eq!(
            UsageThreshold::crossed(199, 200, cap),
            Some(UsageThreshold::All)
        );
        assert_eq!(
            UsageThreshold::crossed(200, 200, cap),
            None,
            "refused calls"
        );
        assert_eq!(
            UsageThreshold::crossed(150, 200, cap),
            Some(UsageThreshold::All)
        );
        assert_eq!(
            UsageThreshold::crossed(0, 3, Limit::Capped(3)),
            Some(UsageThreshold::All)
        );
        assert_eq!(
            UsageThreshold::crossed(1, 2, Limit::Capped(3)),
            None,
            "80 % of 3 rounds up to 3"
        );
        assert_eq!(
            UsageThreshold::crossed(0, 1_000_000, Limit::Unlimited),
            None
        );
    }
}
