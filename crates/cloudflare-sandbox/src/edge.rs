//! The edge: requests outside `/client/v4` and `/__admin` reach the
//! deployed Workers. The `Host` header picks the script (custom domain,
//! route pattern, or `<script>.<subdomain>.workers.dev`), the
//! `Cloudflare-Workers-Version-Overrides` header or the current
//! deployment's percentages pick the version, and the request is proxied
//! to a `wrangler dev` (workerd) running that version's stored modules,
//! started on first use and kept running.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use exact_sandbox::server::{Reply, WireRequest};
use serde_json::{Value, json};

use crate::process::{signal_group, stop_group};
use crate::state::{Script, Version, random_unit};
use crate::{Config, Shared, d1};

/// How long a version's `wrangler dev` may take to say it is ready.
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a proxied request may take.
const PROXY_TIMEOUT: Duration = Duration::from_secs(120);

/// `sh -c WATCHDOG sh <parent pid> <command…>`: the leader of a version's
/// process group. It runs the command in the background (before its TERM
/// trap, so the command keeps the default TERM action), passes a TERM on
/// to it, and once a second checks that the parent and the command are
/// alive; when either is gone it sends TERM to the whole group, gives the
/// command 2 s (wrangler does not end on TERM by itself), and kills what
/// is left of the group, itself included.
/// (dash's `kill` takes `-PGID` right after the signal; a `--` there is
/// read as a number and the signal silently goes nowhere.)
const WATCHDOG: &str = r#"parent=$1; shift
"$@" & child=$!
trap 'kill -TERM "$child" 2>/dev/null' TERM
while kill -0 "$parent" 2>/dev/null && kill -0 "$child" 2>/dev/null; do sleep 1; done
kill -TERM -$$ 2>/dev/null
n=0; while kill -0 "$child" 2>/dev/null && [ $n -lt 4 ]; do sleep 0.5; n=$((n+1)); done
kill -KILL -$$ 2>/dev/null"#;

/// Why a request could not reach a version.
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    #[error("no Worker serves this host")]
    NoScript,
    #[error("the Worker has no deployment")]
    NotDeployed,
    #[error("the edge is off (no wrangler configured)")]
    Off,
    #[error("the version could not be started: {0}")]
    Start(String),
    #[error("the version did not answer: {0}")]
    Proxy(String),
}

/// One running version.
#[derive(Debug)]
struct Instance {
    script: String,
    version: String,
    port: u16,
    child: Mutex<Child>,
    log: PathBuf,
}

#[derive(Debug)]
pub struct Edge {
    wrangler: Option<PathBuf>,
    node_dir: Option<PathBuf>,
    state_dir: PathBuf,
    instances: Mutex<HashMap<String, Arc<Instance>>>,
    /// One start at a time: two `wrangler dev` starting together on one
    /// persist directory can trip over each other's SQLite files.
    starting: Mutex<()>,
}

fn guard<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Edge {
    pub fn new(config: &Config) -> Edge {
        Edge {
            wrangler: config.wrangler.clone(),
            node_dir: config.node_dir.clone(),
            state_dir: config.state_dir.clone(),
            instances: Mutex::new(HashMap::new()),
            starting: Mutex::new(()),
        }
    }

    /// The running versions, for the admin state.
    pub fn running(&self) -> Value {
        let map = guard(&self.instances);
        let mut v: Vec<Value> = map
            .values()
            .map(|i| json!({"script": i.script, "version_id": i.version, "port": i.port}))
            .collect();
        v.sort_by_key(|x| x["version_id"].as_str().unwrap_or("").to_owned());
        Value::Array(v)
    }

    /// Stops every `wrangler dev` (and its workerd): TERM to every group
    /// first, so they shut down side by side, then each is awaited.
    pub fn stop_all(&self) {
        let all: Vec<Arc<Instance>> = guard(&self.instances).drain().map(|(_, i)| i).collect();
        for i in &all {
            signal_group(guard(&i.child).id(), "-TERM");
        }
        for i in &all {
            stop_group(&mut guard(&i.child));
        }
    }

    fn stop(&self, i: &Instance) {
        stop_group(&mut guard(&i.child));
    }

    /// Stops, in the background, the running versions of a script that
    /// its current deployment no longer serves (no request can reach
    /// them: an override must name a version of the current deployment).
    fn retire(&self, script: &str, current: &[String]) {
        let gone: Vec<Arc<Instance>> = {
            let mut map = guard(&self.instances);
            let ids: Vec<String> = map
                .values()
                .filter(|i| i.script == script && !current.contains(&i.version))
                .map(|i| i.version.clone())
                .collect();
            ids.iter().filter_map(|id| map.remove(id)).collect()
        };
        if !gone.is_empty() {
            std::thread::spawn(move || {
                for i in gone {
                    stop_group(&mut guard(&i.child));
                }
            });
        }
    }

    /// The instance of a version if it is still running.
    fn alive(&self, version: &str) -> Option<Arc<Instance>> {
        let i = guard(&self.instances).get(version).cloned()?;
        let running = matches!(guard(&i.child).try_wait(), Ok(None));
        running.then_some(i)
    }

    /// The running instance of a version, started if needed.
    fn instance(
        &self,
        script: &Script,
        version: &Version,
        secrets: &BTreeMap<String, String>,
    ) -> Result<Arc<Instance>, EdgeError> {
        let wrangler = self.wrangler.clone().ok_or(EdgeError::Off)?;
        // A running version answers without waiting for another's start.
        if let Some(i) = self.alive(&version.id) {
            return Ok(i);
        }
        let _one = guard(&self.starting);
        if let Some(i) = self.alive(&version.id) {
            return Ok(i);
        }
        guard(&self.instances).remove(&version.id);
        let dir = self.state_dir.join("edge").join(&version.id);
        std::fs::create_dir_all(&dir).map_err(|e| EdgeError::Start(e.to_string()))?;
        let config = dev_config(script, version);
        std::fs::write(dir.join("wrangler.jsonc"), config.to_string())
            .map_err(|e| EdgeError::Start(e.to_string()))?;
        std::fs::write(dir.join(".dev.vars"), dev_vars(secrets))
            .map_err(|e| EdgeError::Start(e.to_string()))?;
        let port = free_port().map_err(|e| EdgeError::Start(e.to_string()))?;
        let inspector = free_port().map_err(|e| EdgeError::Start(e.to_string()))?;
        let log = dir.join("wrangler-dev.log");
        let file = std::fs::File::create(&log).map_err(|e| EdgeError::Start(e.to_string()))?;
        let err_file = file
            .try_clone()
            .map_err(|e| EdgeError::Start(e.to_string()))?;
        // A watchdog shell leads the process group: it runs wrangler and,
        // when this process is gone (even killed outright) or wrangler
        // ended, stops the whole group, so no workerd outlives the
        // imitation.
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(WATCHDOG)
            .arg("sh")
            .arg(std::process::id().to_string());
        if wrangler.extension().is_some_and(|e| e == "js") {
            let node = self
                .node_dir
                .as_ref()
                .map_or_else(|| PathBuf::from("node"), |d| d.join("node"));
            cmd.arg(node);
        }
        cmd.arg(&wrangler);
        let path = std::env::var("PATH").unwrap_or_default();
        if let Some(d) = &self.node_dir {
            cmd.env("PATH", format!("{}:{path}", d.display()));
        }
        cmd.args(["dev", "--ip", "127.0.0.1", "--port", &port.to_string()])
            .args(["--inspector-port", &inspector.to_string()])
            .arg("-c")
            .arg(dir.join("wrangler.jsonc"))
            .arg("--persist-to")
            .arg(d1::persist_dir(&self.state_dir))
            .args(["--log-level", "info", "--test-scheduled"])
            .current_dir(&dir)
            // The version runs locally; it must not talk to this API.
            .env_remove("CLOUDFLARE_API_BASE_URL")
            .env_remove("CLOUDFLARE_API_TOKEN")
            .env_remove("CLOUDFLARE_ACCOUNT_ID")
            .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
            .env("WRANGLER_SEND_METRICS", "false")
            .env("CI", "true")
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err_file)
            .process_group(0);
        let child = cmd.spawn().map_err(|e| EdgeError::Start(e.to_string()))?;
        let instance = Arc::new(Instance {
            script: script.name.clone(),
            version: version.id.clone(),
            port,
            child: Mutex::new(child),
            log,
        });
        if let Err(e) = wait_ready(&instance) {
            self.stop(&instance);
            return Err(e);
        }
        guard(&self.instances).insert(version.id.clone(), Arc::clone(&instance));
        Ok(instance)
    }
}

/// Waits for wrangler's `Ready on http://…` line and an open port.
fn wait_ready(i: &Instance) -> Result<(), EdgeError> {
    let deadline = Instant::now() + START_TIMEOUT;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = guard(&i.child).try_wait() {
            return Err(EdgeError::Start(format!(
                "wrangler dev exited ({status}); see {}",
                i.log.display()
            )));
        }
        let said_ready = std::fs::File::open(&i.log).is_ok_and(|f| {
            BufReader::new(f)
                .lines()
                .map_while(Result::ok)
                .any(|l| l.contains("Ready on"))
        });
        if said_ready && TcpStream::connect(("127.0.0.1", i.port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Err(EdgeError::Start(format!(
        "wrangler dev was not ready within {START_TIMEOUT:?}; see {}",
        i.log.display()
    )))
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The `wrangler dev` configuration of a version: its stored modules as
/// they are (`no_bundle`), its plain bindings as vars, and its resource
/// bindings mapped to local ones.
fn dev_config(script: &Script, v: &Version) -> Value {
    let mut vars = serde_json::Map::new();
    let mut d1s = Vec::new();
    let mut kvs = Vec::new();
    let mut limits = Vec::new();
    let mut producers = Vec::new();
    let mut datasets = Vec::new();
    for b in &v.bindings {
        let s = |k: &str| b.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        let name = s("name");
        match b.get("type").and_then(Value::as_str).unwrap_or("") {
            "plain_text" => {
                vars.insert(name, json!(s("text")));
            }
            "json" => {
                vars.insert(name, b.get("json").cloned().unwrap_or(Value::Null));
            }
            "d1" => {
                let id = b
                    .get("id")
                    .or_else(|| b.get("database_id"))
                    .and_then(Value::as_str)
                    .unwrap_or("");
                d1s.push(json!({"binding": name, "database_id": id, "database_name": id}));
            }
            "kv_namespace" => kvs.push(json!({"binding": name, "id": s("namespace_id")})),
            "ratelimit" => limits.push(json!({
                "name": name,
                "namespace_id": s("namespace_id"),
                "simple": b.get("simple").cloned().unwrap_or(json!({"limit": 100, "period": 60})),
            })),
            "queue" => producers.push(json!({"binding": name, "queue": s("queue_name")})),
            "analytics_engine" => datasets.push(json!({"binding": name, "dataset": s("dataset")})),
            _ => {}
        }
    }
    json!({
        "name": script.name,
        "main": v.dir.join(&v.main_module),
        "compatibility_date": v.compatibility_date,
        "compatibility_flags": v.compatibility_flags,
        "no_bundle": true,
        "rules": [
            {"type": "CompiledWasm", "globs": ["**/*.wasm"], "fallthrough": true},
            {"type": "ESModule", "globs": ["**/*.js", "**/*.mjs"], "fallthrough": true},
        ],
        "vars": vars,
        "d1_databases": d1s,
        "kv_namespaces": kvs,
        "ratelimits": limits,
        "queues": {"producers": producers},
        "analytics_engine_datasets": datasets,
    })
}

/// Secrets as a `.dev.vars` file: `NAME="value"` with JSON escapes, which
/// dotenv reads back for double-quoted values.
fn dev_vars(secrets: &BTreeMap<String, String>) -> String {
    secrets
        .iter()
        .map(|(k, v)| format!("{k}={}\n", Value::String(v.clone())))
        .collect()
}

/// The script a host (and path) belongs to.
fn script_for<'a>(
    scripts: &'a BTreeMap<String, Script>,
    subdomain: &str,
    host: &str,
    path: &str,
) -> Option<&'a Script> {
    if let Some(s) = scripts.values().find(|s| {
        s.domains
            .iter()
            .any(|d| d.hostname.eq_ignore_ascii_case(host))
    }) {
        return Some(s);
    }
    let target = format!("{host}{path}");
    if let Some(s) = scripts.values().find(|s| {
        s.routes
            .iter()
            .any(|r| pattern_matches(&r.pattern, &target))
    }) {
        return Some(s);
    }
    let suffix = format!(".{subdomain}.workers.dev");
    let name = host.strip_suffix(&suffix)?;
    scripts.get(name).filter(|s| s.subdomain_enabled)
}

/// A route pattern (`example.com/*`, `*.example.com/api*`) against
/// `host/path`: `*` matches any run of characters.
fn pattern_matches(pattern: &str, target: &str) -> bool {
    let pattern = pattern
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    fn go(p: &[u8], t: &[u8]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some((b'*', rest)) => (0..=t.len()).any(|i| go(rest, &t[i..])),
            Some((c, rest)) => t
                .split_first()
                .is_some_and(|(d, trest)| c.eq_ignore_ascii_case(d) && go(rest, trest)),
        }
    }
    go(pattern.as_bytes(), target.as_bytes())
}

/// The version named for this script in a
/// `Cloudflare-Workers-Version-Overrides` dictionary
/// (`name="uuid", other="uuid"`).
fn override_for(header: &str, script: &str) -> Option<String> {
    header.split(',').find_map(|item| {
        let (k, v) = item.trim().split_once('=')?;
        (k.trim() == script).then(|| v.trim().trim_matches('"').to_owned())
    })
}

/// The version a request runs: the override when it names a version of
/// the current deployment (Cloudflare ignores others), else a weighted
/// draw over the deployment's percentages.
fn pick_version(script: &Script, overrides: Option<&str>) -> Option<String> {
    let d = script.current_deployment()?;
    if let Some(id) = overrides.and_then(|h| override_for(h, &script.name))
        && d.versions.iter().any(|(v, _)| *v == id)
    {
        return Some(id);
    }
    let mut x = random_unit() * 100.0;
    for (id, p) in &d.versions {
        if x < *p {
            return Some(id.clone());
        }
        x -= p;
    }
    d.versions.last().map(|(id, _)| id.clone())
}

pub fn handle(shared: &Shared, req: WireRequest) -> Reply {
    match serve(shared, req) {
        Ok(r) => r,
        Err(e @ (EdgeError::NoScript | EdgeError::NotDeployed)) => {
            Reply::new(404, "text/plain; charset=utf-8", e.to_string())
        }
        Err(e) => {
            eprintln!("cloudflare-sandbox edge: {e}");
            Reply::new(502, "text/plain; charset=utf-8", e.to_string())
        }
    }
}

fn serve(shared: &Shared, req: WireRequest) -> Result<Reply, EdgeError> {
    let host = req
        .header("host")
        .unwrap_or("")
        .split(':')
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    let path = req.target.split('?').next().unwrap_or("/").to_owned();
    let (script, version, secrets) = {
        let st = shared
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let script = script_for(&st.scripts, &shared.config.subdomain, &host, &path)
            .ok_or(EdgeError::NoScript)?;
        let id = pick_version(script, req.header("cloudflare-workers-version-overrides"))
            .ok_or(EdgeError::NotDeployed)?;
        let version = script.version(&id).cloned().ok_or(EdgeError::NotDeployed)?;
        let current: Vec<String> = script
            .current_deployment()
            .map(|d| d.versions.iter().map(|(v, _)| v.clone()).collect())
            .unwrap_or_default();
        shared.edge.retire(&script.name, &current);
        (script.clone(), version, script.secrets.clone())
    };
    let instance = shared.edge.instance(&script, &version, &secrets)?;
    let mut reply = proxy(instance.port, &req)?;
    reply
        .headers
        .push(("Cf-Sandbox-Version-Id".into(), version.id.clone()));
    Ok(reply)
}

/// Sends the request to the version and reads its whole answer.
fn proxy(port: u16, req: &WireRequest) -> Result<Reply, EdgeError> {
    let err = |e: std::io::Error| EdgeError::Proxy(e.to_string());
    let mut stream = TcpStream::connect(("127.0.0.1", port)).map_err(err)?;
    stream.set_read_timeout(Some(PROXY_TIMEOUT)).map_err(err)?;
    let mut head = format!("{} {} HTTP/1.1\r\n", req.method, req.target);
    for (k, v) in &req.headers {
        if matches!(
            k.as_str(),
            "connection" | "keep-alive" | "content-length" | "transfer-encoding" | "upgrade"
        ) {
            continue;
        }
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        req.body.len()
    ));
    stream.write_all(head.as_bytes()).map_err(err)?;
    stream.write_all(&req.body).map_err(err)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).map_err(err)?;
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut resp = httparse::Response::new(&mut headers);
    let body_start = match resp.parse(&raw) {
        Ok(httparse::Status::Complete(n)) => n,
        _ => return Err(EdgeError::Proxy("a malformed response".into())),
    };
    let status = resp.code.unwrap_or(502);
    let mut chunked = false;
    let mut out_headers = Vec::new();
    for h in resp.headers.iter() {
        let name = h.name.to_ascii_lowercase();
        let value = String::from_utf8_lossy(h.value).into_owned();
        match name.as_str() {
            "transfer-encoding" => chunked = value.to_ascii_lowercase().contains("chunked"),
            "content-length" | "connection" | "keep-alive" => {}
            _ => out_headers.push((h.name.to_owned(), value)),
        }
    }
    let rest = &raw[body_start..];
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_vec()
    };
    Ok(Reply {
        status,
        headers: out_headers,
        body,
    })
}

fn dechunk(mut s: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = s.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size_text = String::from_utf8_lossy(&s[..eol]);
        let size_hex = size_text.split(';').next().unwrap_or("").trim();
        let Ok(size) = usize::from_str_radix(size_hex, 16) else {
            return out;
        };
        if size == 0 || s.len() < eol + 2 + size {
            return out;
        }
        out.extend_from_slice(&s[eol + 2..eol + 2 + size]);
        s = s.get(eol + 2 + size + 2..).unwrap_or(&[]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_patterns_match_host_and_path_with_wildcards() {
        assert!(pattern_matches("example.nl/*", "example.nl/health"));
        assert!(pattern_matches("*.example.nl/api*", "mcp.example.nl/api/x"));
        assert!(!pattern_matches("example.nl/*", "other.nl/health"));
        assert!(!pattern_matches("example.nl/api*", "example.nl/health"));
    }

    #[test]
    fn the_override_header_names_a_version_per_script() {
        let h = r#"pmjb-mcp-server="aa-1", pmjb-token-cron="bb-2""#;
        assert_eq!(override_for(h, "pmjb-token-cron").as_deref(), Some("bb-2"));
        assert_eq!(override_for(h, "pmjb-auth-portal"), None);
    }

    #[test]
    fn chunked_bodies_are_reassembled() {
        assert_eq!(dechunk(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"), b"abcde");
    }

    #[test]
    fn secrets_are_written_as_quoted_dotenv_values() {
        let s = BTreeMap::from([("K".to_owned(), "a \"b\"\nc".to_owned())]);
        assert_eq!(dev_vars(&s), "K=\"a \\\"b\\\"\\nc\"\n");
    }
}
