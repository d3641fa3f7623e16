//! Exact's rate-limit headers: a daily and a per-minute window per app per
//! company, with resets in Unix epoch milliseconds. The client remembers
//! what remains and refuses to call once a window is exhausted, instead
//! of hammering Exact into blocking the app.

use chrono::{DateTime, Utc};

use super::error::{ExactError, RateWindow};
use crate::ports::HttpResponse;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub limit: u32,
    pub remaining: u32,
    pub reset_at: DateTime<Utc>,
}

/// The last known state of both windows (for one division).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RateLimitState {
    pub minutely: Option<Window>,
    pub daily: Option<Window>,
}

fn window(resp: &HttpResponse, prefix: &str) -> Option<Window> {
    let num = |name: &str| {
        resp.header(&format!("{prefix}{name}"))?
            .trim()
            .parse::<i64>()
            .ok()
    };
    Some(Window {
        limit: u32::try_from(num("Limit")?).ok()?,
        remaining: u32::try_from(num("Remaining")?).ok()?,
        reset_at: DateTime::from_timestamp_millis(num("Reset")?)?,
    })
}

impl RateLimitState {
    /// Updates from a response. Exact sends only the window concerned on a
    /// 429, so a missing window keeps its last known value.
    pub fn observe(&mut self, resp: &HttpResponse) {
        if let Some(w) = window(resp, "x-ratelimit-minutely-") {
            self.minutely = Some(w);
        }
        if let Some(w) = window(resp, "x-ratelimit-") {
            self.daily = Some(w);
        }
    }

    /// `Err(RateLimited)` when a window is known to be exhausted now.
    pub fn check(&self, now: DateTime<Utc>) -> Result<(), ExactError> {
        for (w, kind) in [
            (self.daily, RateWindow::Daily),
            (self.minutely, RateWindow::Minutely),
        ] {
            if let Some(w) = w
                && w.remaining == 0
                && w.reset_at > now
            {
                return Err(ExactError::RateLimited {
                    window: kind,
                    reset_at: w.reset_at,
                });
            }
        }
        Ok(())
    }

    /// The error for a 429: the exhausted window and when it resets.
    pub fn limited_error(&self, now: DateTime<Utc>) -> ExactError {
        self.check(now).err().unwrap_or(ExactError::RateLimited {
            window: RateWindow::Minutely,
            // Without headers, Exact's minute window is the best guess.
            reset_at: now + chrono::Duration::seconds(60),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn resp(headers: &[(&str, &str)]) -> HttpResponse {
        HttpResponse {
            status: 200,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: String::new(),
        }
    }

    #[test]
    fn reads_both_windows_and_blocks_only_while_exhausted() {
        let now = Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, 30).unwrap();
        let reset = Utc.with_ymd_and_hms(2026, 11, 23, 10, 1, 0).unwrap();
        let mut st = RateLimitState::default();
        st.observe(&resp(&[
            ("X-RateLimit-Limit", "5000"),
            ("X-RateLimit-Remaining", "4990"),
            ("X-RateLimit-Reset", "1795478400000"),
            ("X-RateLimit-Minutely-Limit", "60"),
            ("X-RateLimit-Minutely-Remaining", "0"),
            (
                "X-RateLimit-Minutely-Reset",
                &reset.timestamp_millis().to_string(),
            ),
        ]));
        assert_eq!(st.daily.unwrap().remaining, 4990);
        assert_eq!(
            st.check(now),
            Err(ExactError::RateLimited {
                window: RateWindow::Minutely,
                reset_at: reset
            })
        );
        assert_eq!(st.check(reset), Ok(()));
        // A 429 with only minutely headers keeps the daily window.
        st.observe(&resp(&[("x-ratelimit-minutely-remaining", "3")]));
        assert_eq!(st.daily.unwrap().limit, 5000);
    }
}
