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

pub mod data;
mod http;
pub mod login;
pub mod mail;
mod oauth;
pub mod odata;
pub mod reports;
mod rest;
mod server;
mod state;
pub mod transport;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use chrono::NaiveDate;

pub use data::{DataConfig, Dataset, Size};
pub use state::{Fault, LogEntry};

/// How to run a sandbox.
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
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            data: DataConfig {
                seed: 20_261_123,
                size: Size::Small,
                today: NaiveDate::from_ymd_opt(2026, 11, 20).unwrap_or_default(),
            },
            bind: "127.0.0.1:0".into(),
            client_id: "b81cc4de-d192-400e-bcb4-09254394c52a".into(),
            client_secret: "sandbox-secret".into(),
            redirect_uris: Vec::new(),
            minutely_limit: 60,
            daily_limit: 5_000,
            mail_api_key: "re_sandbox_local".into(),
        }
    }
}

/// Everything the request handlers share.
pub(crate) struct Shared {
    pub config: SandboxConfig,
    pub data: Dataset,
    /// Per division: entity path → rows (generated plus computed reports).
    pub tables: BTreeMap<i64, BTreeMap<String, Vec<data::Row>>>,
    pub state: Mutex<state::Inner>,
    pub base_url: String,
}

/// A running sandbox; dropping it stops the server.
pub struct Sandbox {
    shared: Arc<Shared>,
    server: Option<server::Server>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("base_url", &self.shared.base_url)
            .finish()
    }
}

/// The sandbox could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot start the Exact sandbox on {bind}: {reason}")]
pub struct StartError {
    pub bind: String,
    pub reason: String,
}

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
        let data = data::generate(&config.data);
        let tables = reports::build_tables(&data);
        let shared = Arc::new(Shared {
            config,
            data,
            tables,
            state: Mutex::new(state::Inner::default()),
            base_url,
        });
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
        &self.shared.base_url
    }

    pub fn client_id(&self) -> &str {
        &self.shared.config.client_id
    }

    pub fn client_secret(&self) -> &str {
        &self.shared.config.client_secret
    }

    /// The generated books.
    pub fn dataset(&self) -> &Dataset {
        &self.shared.data
    }

    /// Rows the sandbox serves for a division and entity path (generated or
    /// computed), for tests that compare answers with the source.
    pub fn rows(&self, division: i64, path: &str) -> Vec<data::Row> {
        self.shared
            .tables
            .get(&division)
            .and_then(|t| t.get(path))
            .cloned()
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

    /// Blocks until the server stops (the binary's main loop).
    pub fn wait(mut self) {
        if let Some(server) = self.server.take() {
            server.wait();
        }
    }
}
