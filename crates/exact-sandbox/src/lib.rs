//! A local Exact Online for development and tests.
//!
//! [`Sandbox::start`] serves, on loopback, Exact's OAuth 2.0 flow (login
//! and consent page, single-use codes, 600 s access tokens, rotating
//! single-use refresh tokens with a 30-day life and the too-early-refresh
//! rule), the REST API `/api/v1/…` with OData v2 envelopes, paging,
//! filters and Exact's error bodies, per-app-per-division rate limits with
//! Exact's headers, and a loopback-only admin API (`/__admin/…`) to inject
//! faults, revoke grants, expire tokens, move the clock and read the
//! request log. The books come from [`data::generate`], and the reports
//! are computed from their transaction lines ([`reports`]).

pub mod books;
pub mod data;
pub mod demo;
#[cfg(feature = "server")]
mod dispatch;
// Parts of the request model only the server uses.
#[cfg_attr(not(feature = "server"), allow(dead_code))]
mod http;
#[cfg(feature = "server")]
pub mod login;
#[cfg(feature = "server")]
pub mod mail;
#[cfg(feature = "server")]
mod oauth;
pub mod odata;
pub mod reports;
mod rest;
#[cfg(feature = "server")]
pub mod server;
#[cfg(feature = "server")]
mod state;
#[cfg(feature = "server")]
pub mod stripe;
#[cfg(feature = "server")]
pub mod transport;

#[cfg(feature = "server")]
use std::sync::{Arc, Mutex};

use chrono::NaiveDate;

pub use data::{ClosedYears, DataConfig, Dataset, Size};
#[cfg(feature = "server")]
pub use state::{Fault, LogEntry};

/// The data configuration every sandbox and the demo start from: the seed,
/// the small size, "today" = 20 November 2026, and the IT consultancy's
/// previous year closed (the others' open).
pub fn default_data() -> DataConfig {
    DataConfig {
        seed: 20_261_123,
        size: Size::Small,
        today: NaiveDate::from_ymd_opt(2026, 11, 20).unwrap_or_default(),
        closed_years: ClosedYears::Demo,
    }
}

/// How to run a sandbox.
#[cfg(feature = "server")]
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    pub data: DataConfig,
    /// `127.0.0.1:0` picks a free port.
    pub bind: String,
    /// The registered app.
    pub client_id: String,
    pub client_secret: String,
    /// Redirect URIs the app registered; an authorize request must match
    /// one exactly. Empty accepts any loopback `http://127.0.0.1:…` or
    /// `http://localhost:…` URI (development convenience).
    pub redirect_uris: Vec<String>,
    pub minutely_limit: u32,
    pub daily_limit: u32,
    /// The API key the mail catcher (`POST /emails`) accepts.
    pub mail_api_key: String,
    /// The local Stripe (`/v1/…`, `/stripe/…`, `/__admin/stripe/…`).
    pub stripe: stripe::StripeConfig,
}

#[cfg(feature = "server")]
impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            data: default_data(),
            bind: "127.0.0.1:0".into(),
            client_id: "b81cc4de-d192-400e-bcb4-09254394c52a".into(),
            client_secret: "sandbox-secret".into(),
            redirect_uris: Vec::new(),
            minutely_limit: 60,
            daily_limit: 5_000,
            mail_api_key: "re_sandbox_local".into(),
            stripe: stripe::StripeConfig::default(),
        }
    }
}

/// Everything the request handlers share.
#[cfg(feature = "server")]
pub(crate) struct Shared {
    pub config: SandboxConfig,
    /// The companies (their entities live in `books`) and logins.
    pub data: Dataset,
    pub books: books::Books,
    pub state: Mutex<state::Inner>,
    /// Hands the local Stripe's events to its delivery thread.
    pub stripe_deliverer: stripe::Deliverer,
}

#[cfg(feature = "server")]
impl Shared {
    /// What the local Stripe's handlers need besides its state.
    pub(crate) fn stripe_ctx(&self) -> stripe::Ctx<'_> {
        stripe::Ctx {
            config: &self.config.stripe,
            base: &self.books.base_url,
            deliverer: &self.stripe_deliverer,
        }
    }
}

#[cfg(feature = "server")]
impl server::Handler for Shared {
    fn handle(&self, req: server::WireRequest) -> http::Reply {
        // Exact's and Stripe's bodies are text (JSON, forms).
        let req = http::Req::new(
            req.method,
            &req.target,
            req.headers,
            String::from_utf8_lossy(&req.body).into_owned(),
            req.loopback,
        );
        dispatch::handle(self, &req)
    }
}

/// A running sandbox; dropping it stops the server.
#[cfg(feature = "server")]
pub struct Sandbox {
    shared: Arc<Shared>,
    server: Option<server::Server>,
}

#[cfg(feature = "server")]
impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("base_url", &self.shared.books.base_url)
            .finish()
    }
}

/// The sandbox could not start.
#[cfg(feature = "server")]
#[derive(Debug, thiserror::Error)]
#[error("cannot start the Exact sandbox on {bind}: {reason}")]
pub struct StartError {
    pub bind: String,
    pub reason: String,
}

#[cfg(feature = "server")]
impl Sandbox {
    pub fn start(config: SandboxConfig) -> Result<Sandbox, StartError> {
        let start_error = |reason: String| StartError {
            bind: config.bind.clone(),
            reason,
        };
        let listener =
            std::net::TcpListener::bind(&config.bind).map_err(|e| start_error(e.to_string()))?;
        let addr = listener
            .local_addr()
            .map_err(|e| start_error(e.to_string()))?;
        let base_url = format!("http://{addr}");
        let mut data = data::generate(&config.data);
        let books = books::Books::from_companies(
            config.data.clone(),
            base_url,
            data.users.clone(),
            &mut data.companies,
        );
        let (stripe_deliverer, deliveries) = stripe::Deliverer::new();
        let shared = Arc::new(Shared {
            config,
            data,
            books,
            state: Mutex::new(state::Inner::default()),
            stripe_deliverer,
        });
        stripe::spawn_delivery(deliveries, Arc::downgrade(&shared));
        let server =
            server::Server::start(listener, Arc::clone(&shared)).map_err(|e| StartError {
                bind: shared.config.bind.clone(),
                reason: e.to_string(),
            })?;
        Ok(Sandbox {
            shared,
            server: Some(server),
        })
    }

    /// `http://127.0.0.1:<port>`; OAuth and REST share it, as on Exact.
    pub fn base_url(&self) -> &str {
        &self.shared.books.base_url
    }

    pub fn client_id(&self) -> &str {
        &self.shared.config.client_id
    }

    pub fn client_secret(&self) -> &str {
        &self.shared.config.client_secret
    }

    /// The generated companies (their rows: [`Sandbox::rows`]) and logins.
    pub fn dataset(&self) -> &Dataset {
        &self.shared.data
    }

    /// Rows the sandbox serves for a division and entity path (generated or
    /// computed), for tests that compare answers with the source.
    pub fn rows(&self, division: i64, path: &str) -> Vec<data::Row> {
        self.shared
            .books
            .rows(division, path)
            .map(<[data::Row]>::to_vec)
            .unwrap_or_default()
    }

    /// The request log (also at `GET /__admin/requests`).
    pub fn requests(&self) -> Vec<LogEntry> {
        self.shared
            .state
            .lock()
            .map(|s| s.log.clone())
            .unwrap_or_default()
    }

    /// Mails the catcher accepted, oldest first.
    pub fn mails(&self) -> Vec<mail::CaughtMail> {
        self.shared
            .state
            .lock()
            .map(|s| s.mails.clone())
            .unwrap_or_default()
    }

    /// The API key the mail catcher accepts.
    pub fn mail_api_key(&self) -> &str {
        &self.shared.config.mail_api_key
    }

    /// The secret key the local Stripe accepts (`sk_test_…`).
    pub fn stripe_secret_key(&self) -> &str {
        &self.shared.config.stripe.secret_key
    }

    /// The local Stripe's configuration (prices, webhook endpoint, secrets).
    pub fn stripe_config(&self) -> &stripe::StripeConfig {
        &self.shared.config.stripe
    }

    /// Every webhook delivery attempt so far, oldest first (also at
    /// `GET /__admin/stripe/deliveries`).
    pub fn stripe_deliveries(&self) -> Vec<stripe::Delivery> {
        self.shared
            .state
            .lock()
            .map(|s| s.stripe.deliveries.clone())
            .unwrap_or_default()
    }

    /// Blocks until the server stops (the binary's main loop).
    pub fn wait(mut self) {
        if let Some(server) = self.server.take() {
            server.wait();
        }
    }
}
