//! What the imitation records: scripts with their versions, deployments,
//! secrets, custom domains, routes and schedules; D1 databases with the
//! statements run on them and their bookmarks; the injected faults.

use std::collections::BTreeMap;

use serde_json::Value;

/// One uploaded module of a version (its bytes are on disk).
#[derive(Debug, Clone)]
pub struct Module {
    pub name: String,
    pub content_type: String,
    pub size: usize,
}

/// A binding as the upload metadata carried it (`{type, name, …}`).
pub type Binding = serde_json::Map<String, Value>;

#[derive(Debug, Clone)]
pub struct Version {
    pub id: String,
    pub number: u64,
    pub created_on: String,
    pub annotations: BTreeMap<String, String>,
    /// `"wrangler"`, `"api"`, …
    pub source: String,
    pub main_module: String,
    pub compatibility_date: String,
    pub compatibility_flags: Vec<String>,
    /// Without secret values: a `secret_text` binding keeps its name only.
    pub bindings: Vec<Binding>,
    pub modules: Vec<Module>,
    /// Where the modules are stored.
    pub dir: std::path::PathBuf,
}

impl Version {
    /// Its `plain_text` bindings (the Worker's vars).
    pub fn plain_text(&self) -> BTreeMap<String, String> {
        self.bindings
            .iter()
            .filter(|b| b.get("type").and_then(Value::as_str) == Some("plain_text"))
            .filter_map(|b| {
                Some((
                    b.get("name")?.as_str()?.to_owned(),
                    b.get("text")?.as_str()?.to_owned(),
                ))
            })
            .collect()
    }
}

#[derive(Debug, Clone)]
pub struct Deployment {
    pub id: String,
    pub created_on: String,
    pub source: String,
    /// `(version id, percentage)`; percentages add up to 100.
    pub versions: Vec<(String, f64)>,
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct Domain {
    pub id: String,
    pub hostname: String,
    pub zone_name: String,
    pub environment: String,
}

#[derive(Debug, Clone)]
pub struct Route {
    pub id: String,
    pub pattern: String,
    pub zone_name: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Script {
    pub name: String,
    pub tag: String,
    pub etag: String,
    pub created_on: String,
    pub modified_on: String,
    pub versions: Vec<Version>,
    /// Oldest first; the last is the current one.
    pub deployments: Vec<Deployment>,
    /// Name → value. Values never leave through the API or the admin API.
    pub secrets: BTreeMap<String, String>,
    pub domains: Vec<Domain>,
    pub routes: Vec<Route>,
    pub schedules: Vec<String>,
    pub subdomain_enabled: bool,
    pub previews_enabled: bool,
    pub logpush: bool,
    pub observability: Value,
    pub tail_consumers: Value,
}

impl Script {
    pub fn new(name: &str) -> Script {
        let now = now();
        Script {
            name: name.into(),
            tag: random_hex(16),
            etag: random_hex(32),
            created_on: now.clone(),
            modified_on: now,
            versions: Vec::new(),
            deployments: Vec::new(),
            secrets: BTreeMap::new(),
            domains: Vec::new(),
            routes: Vec::new(),
            schedules: Vec::new(),
            subdomain_enabled: false,
            previews_enabled: false,
            logpush: false,
            observability: Value::Null,
            tail_consumers: Value::Null,
        }
    }

    pub fn version(&self, id: &str) -> Option<&Version> {
        self.versions.iter().find(|v| v.id == id)
    }

    pub fn latest_version(&self) -> Option<&Version> {
        self.versions.last()
    }

    pub fn current_deployment(&self) -> Option<&Deployment> {
        self.deployments.last()
    }
}

/// One statement run through the D1 API.
#[derive(Debug, Clone)]
pub struct StatementLog {
    pub sql: String,
    pub success: bool,
    pub error: Option<String>,
    pub at: String,
}

#[derive(Debug, Clone)]
pub struct Bookmark {
    pub id: String,
    pub created_on: String,
    /// The snapshot of the database when the bookmark was asked for.
    pub snapshot: std::path::PathBuf,
}

#[derive(Debug, Clone)]
pub struct D1Database {
    pub uuid: String,
    pub name: String,
    pub created_at: String,
    pub statements: Vec<StatementLog>,
    pub bookmarks: Vec<Bookmark>,
}

/// A pending import of `wrangler d1 execute --remote --file`.
#[derive(Debug, Clone)]
pub struct Import {
    pub database: String,
    pub sql: Option<String>,
    pub result: Option<Value>,
}

#[derive(Debug, Clone)]
pub struct Queue {
    pub id: String,
    pub name: String,
    pub created_on: String,
    /// As the API lists them (`{consumer_id, type, script, settings}`).
    pub consumers: Vec<Value>,
}

/// Faults injected through the admin API.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Script → plain_text values its next upload gets instead.
    pub next_upload_plain_text: BTreeMap<String, BTreeMap<String, String>>,
}

#[derive(Debug, Default)]
pub struct State {
    pub scripts: BTreeMap<String, Script>,
    pub d1: BTreeMap<String, D1Database>,
    pub imports: BTreeMap<String, Import>,
    pub queues: BTreeMap<String, Queue>,
    pub faults: Faults,
}

impl State {
    /// The queue of that name, recorded on first use.
    pub fn queue_entry(&mut self, name: &str) -> &mut Queue {
        self.queues.entry(name.to_owned()).or_insert_with(|| Queue {
            id: random_hex(16),
            name: name.to_owned(),
            created_on: now(),
            consumers: Vec::new(),
        })
    }

    /// The database with that id or name, if known.
    pub fn d1_lookup(&self, id_or_name: &str) -> Option<&D1Database> {
        self.d1
            .get(id_or_name)
            .or_else(|| self.d1.values().find(|d| d.name == id_or_name))
    }

    /// The database with that id, recorded on first use: wrangler names
    /// databases by the `database_id` of its configuration, which the
    /// operator created beforehand, so a well-formed id is taken as
    /// existing.
    pub fn d1_entry(&mut self, id_or_name: &str) -> Option<&mut D1Database> {
        let key = match self.d1_lookup(id_or_name) {
            Some(d) => d.uuid.clone(),
            None if exact_sandbox::odata::is_guid(id_or_name) => {
                self.d1.insert(
                    id_or_name.to_owned(),
                    D1Database {
                        uuid: id_or_name.to_owned(),
                        name: id_or_name.to_owned(),
                        created_at: now(),
                        statements: Vec::new(),
                        bookmarks: Vec::new(),
                    },
                );
                id_or_name.to_owned()
            }
            None => return None,
        };
        self.d1.get_mut(&key)
    }
}

/// Cloudflare's timestamps: RFC 3339 with microseconds, UTC.
pub fn now() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    // The OS source does not fail on Linux; a zero id would still be
    // unique enough for one test run's bookkeeping.
    let _ = getrandom::fill(&mut b);
    b
}

pub fn random_hex(bytes: usize) -> String {
    let mut out = String::new();
    while out.len() < bytes * 2 {
        out.push_str(&hex::encode(random_bytes::<16>()));
    }
    out.truncate(bytes * 2);
    out
}

/// A version 4 UUID.
pub fn uuid() -> String {
    let mut b = random_bytes::<16>();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A uniform number in `[0, 1)`.
pub fn random_unit() -> f64 {
    let b = random_bytes::<8>();
    (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
}
