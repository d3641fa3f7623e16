//! A local imitation of the parts of Cloudflare's API that wrangler calls
//! to deploy Workers, and an edge that runs what is deployed.
//!
//! [`CloudflareSandbox::start`] serves, on one loopback port:
//!
//! - `/client/v4/…`: the v4 API in Cloudflare's envelope
//!   (`{success, errors:[{code,message}], messages, result, result_info}`)
//!   for the calls `wrangler deploy`, `triggers deploy`, `versions
//!   upload|list|view|deploy`, `deployments list|status`, `rollback`,
//!   `secret list|put|bulk` and `d1 migrations list|apply`, `d1 execute`,
//!   `d1 time-travel info|restore` make (point wrangler at it with
//!   `CLOUDFLARE_API_BASE_URL=<base>/client/v4`). One API token is
//!   accepted; any other is answered with Cloudflare's 403 authentication
//!   error. D1 SQL really runs in SQLite, a batch as one transaction.
//! - `/__admin/…` (loopback): `GET /__admin/health`, `GET /__admin/state`
//!   (everything recorded; secret names, never values), `POST` and
//!   `DELETE /__admin/faults` (the next upload of a script gets other
//!   `plain_text` values, as if built from another tree).
//! - every other path: the edge. The `Host` header picks the script (its
//!   custom domain or route, or `<script>.<subdomain>.workers.dev`), the
//!   `Cloudflare-Workers-Version-Overrides` header or the current
//!   deployment's percentages pick the version, and the request is proxied
//!   to a `wrangler dev` of that version's stored modules (started once per
//!   version, kept running). The versions and the D1 API share one SQLite
//!   file per `database_id`. Answers carry `Cf-Sandbox-Version-Id` (this
//!   imitation's own header, for tests: Cloudflare sends none).
//!
//! In a test:
//!
//! ```no_run
//! use cloudflare_sandbox::{CloudflareSandbox, Config};
//! let mut config = Config::new("/tmp/cf-state".into(), "token", "account-id");
//! config.wrangler = Some("wrangler/node_modules/.bin/wrangler".into());
//! config.node_dir = Some("wrangler/node_modules/node/bin".into());
//! let cf = CloudflareSandbox::start(config).expect("started");
//! // CLOUDFLARE_API_BASE_URL = cf.api_base_url(), CLOUDFLARE_API_TOKEN =
//! // "token", CLOUDFLARE_ACCOUNT_ID = "account-id"; then run wrangler and
//! // read cf.state_json() or GET {cf.base_url()}/__admin/state.
//! ```
//!
//! What the pinned wrangler (4.164) prints against it: `deploy` ends with
//! `Current Version ID: <uuid>`; `versions upload` prints
//! `Worker Version ID: <uuid>` and, with `WRANGLER_OUTPUT_FILE_PATH`, writes
//! an ND-JSON line `{"type":"version-upload","worker_name":…,
//! "version_id":…,…}`; `versions list --json`, `deployments list --json`
//! and `deployments status --json` print the API's objects
//! (`{id, number, annotations, metadata, resources}` and `{id,
//! created_on, annotations, versions: [{version_id, percentage}]}`).
//!
//! State lives in memory for the life of the process; modules, D1 files,
//! bookmark snapshots and the versions' `wrangler dev` directories live
//! under the state directory.

mod api;
mod d1;
mod edge;
mod multipart;
pub mod process;
mod state;

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use exact_sandbox::server::{Handler, Reply, Server, WireRequest};

/// How to run the imitation.
#[derive(Debug, Clone)]
pub struct Config {
    /// `127.0.0.1:0` picks a free port.
    pub bind: String,
    /// Where uploaded modules, D1 databases, bookmarks and the edge's
    /// `wrangler dev` configurations live.
    pub state_dir: PathBuf,
    /// The one API token accepted.
    pub token: String,
    /// The one account.
    pub account_id: String,
    /// The account's workers.dev subdomain (`<script>.<this>.workers.dev`).
    pub subdomain: String,
    /// wrangler (its `bin/wrangler.js` or the `.bin/wrangler` launcher),
    /// which runs the deployed versions; `None` turns the edge off.
    pub wrangler: Option<PathBuf>,
    /// A directory with `node` put first on wrangler's `PATH`.
    pub node_dir: Option<PathBuf>,
}

impl Config {
    /// A configuration with the defaults: a free port, the edge off.
    pub fn new(state_dir: PathBuf, token: &str, account_id: &str) -> Config {
        Config {
            bind: "127.0.0.1:0".into(),
            state_dir,
            token: token.into(),
            account_id: account_id.into(),
            subdomain: "pmjb-sandbox".into(),
            wrangler: None,
            node_dir: None,
        }
    }
}

/// Why the imitation did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot bind {bind}: {source}")]
    Bind {
        bind: String,
        source: std::io::Error,
    },
    #[error("cannot create the state directory {dir}: {source}")]
    StateDir { dir: String, source: std::io::Error },
}

/// What the handlers share.
pub(crate) struct Shared {
    pub config: Config,
    pub base_url: String,
    pub state: Mutex<state::State>,
    pub edge: edge::Edge,
}

impl Handler for Shared {
    fn handle(&self, req: WireRequest) -> Reply {
        let path = req.target.split('?').next().unwrap_or("");
        if path.starts_with("/client/v4/") {
            api::handle(self, &req)
        } else if path == "/__admin" || path.starts_with("/__admin/") {
            if !req.loopback {
                return Reply::empty(404);
            }
            api::admin(self, &req)
        } else {
            edge::handle(self, req)
        }
    }
}

/// A running imitation; dropping it stops the server and every
/// `wrangler dev` it started.
pub struct CloudflareSandbox {
    shared: Arc<Shared>,
    server: Option<Server>,
}

impl std::fmt::Debug for CloudflareSandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudflareSandbox")
            .field("base_url", &self.shared.base_url)
            .finish()
    }
}

impl CloudflareSandbox {
    pub fn start(config: Config) -> Result<CloudflareSandbox, StartError> {
        std::fs::create_dir_all(&config.state_dir).map_err(|source| StartError::StateDir {
            dir: config.state_dir.display().to_string(),
            source,
        })?;
        let listener = TcpListener::bind(&config.bind).map_err(|source| StartError::Bind {
            bind: config.bind.clone(),
            source,
        })?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind {
            bind: config.bind.clone(),
            source,
        })?;
        let base_url = format!("http://{addr}");
        let shared = Arc::new(Shared {
            edge: edge::Edge::new(&config),
            state: Mutex::new(state::State::default()),
            base_url,
            config,
        });
        let server =
            Server::start(listener, Arc::clone(&shared)).map_err(|source| StartError::Bind {
                bind: shared.config.bind.clone(),
                source,
            })?;
        Ok(CloudflareSandbox {
            shared,
            server: Some(server),
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> &str {
        &self.shared.base_url
    }

    /// What wrangler's `CLOUDFLARE_API_BASE_URL` must be.
    pub fn api_base_url(&self) -> String {
        format!("{}/client/v4", self.shared.base_url)
    }

    pub fn port(&self) -> u16 {
        self.server.as_ref().map_or(0, |s| s.addr().port())
    }

    /// Everything recorded, as `GET /__admin/state` answers it.
    pub fn state_json(&self) -> serde_json::Value {
        api::state_json(&self.shared)
    }

    /// Blocks until the server stops.
    pub fn wait(mut self) {
        if let Some(server) = self.server.take() {
            server.wait();
        }
    }
}

impl Drop for CloudflareSandbox {
    fn drop(&mut self) {
        self.server.take();
        self.shared.edge.stop_all();
    }
}
