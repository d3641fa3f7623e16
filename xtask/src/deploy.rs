//! `cargo xtask deploy` and `cargo xtask rollback`: a deploy that checks
//! before it changes anything, moves each Worker through a canary, and
//! returns every Worker it moved when a check fails.
//!
//! The sequence (docs/runbooks/DEPLOY.md explains it for operators):
//! 1. preflight: clean work tree, complete configuration (parsed, not
//!    searched), every secret present remotely, repository checks, the
//!    pending migrations listed and none destructive unless named;
//! 2. build;
//! 3. a D1 Time Travel bookmark, then the pending migrations;
//! 4. per Worker: upload a new version, route a small share of traffic to
//!    it, check its `/health` (commit), `/health/deep` (healthy) and, for
//!    the mcp-server, one MCP call with a demo key, all pinned to the new
//!    version with `Cloudflare-Workers-Version-Overrides`; then 100 %;
//! 5. on any failure after the migrations: every Worker already moved goes
//!    back to the versions it had, and the bookmark to restore D1 to is
//!    printed.
//!
//! Everything remote goes through the pinned wrangler, so the same code
//! runs against Cloudflare and, in the end-to-end suite, against the local
//! imitation of its API (`CLOUDFLARE_API_BASE_URL`).

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use boekhouding_core::settings::{self, Worker};
use boekhouding_core::storage::audit_log::{self, AuditAction, AuditEntry};
use serde_json::{Value, json};

use crate::config::{Environment, WorkerConfig, load_all};
use crate::tools::Tools;

/// Share of traffic the new version gets while it is checked.
pub const CANARY_PERCENT: u8 = 10;
/// How long a check may take to pass (new versions take seconds to reach
/// every location).
const CHECK_WITHIN: Duration = Duration::from_secs(90);
const CHECK_EVERY: Duration = Duration::from_secs(2);
/// The environment variable holding the operator token of `/health/deep`.
pub const OPERATOR_TOKEN_ENV: &str = "PMJB_OPERATOR_TOKEN";
/// Tests only: send the checks' requests to this `host:port` in plain HTTP
/// (keeping the public host in `Host`), where the local imitation of
/// Cloudflare serves the deployed Workers.
pub const EDGE_ENV: &str = "PMJB_EDGE";
/// The demo key of the smoke call (public: see the demo books).
const SMOKE_KEY: &str = "pmjb_demo_bakkerij";

/// What `deploy` was asked to do.
#[derive(Debug, Clone, Default)]
pub struct DeployArgs {
    pub env: String,
    pub dry_run: bool,
    /// Pending migrations whose destructive statements were reviewed.
    pub allow_destructive: Vec<String>,
    /// Deploy a work tree with uncommitted changes (the version message
    /// says so). For the end-to-end suite and emergencies.
    pub allow_dirty: bool,
    /// Use the bundles `cargo xtask build` made instead of building.
    pub no_build: bool,
    /// A folder with `<worker>/wrangler.jsonc` instead of `wrangler/`.
    pub config_dir: Option<PathBuf>,
}

/// A Worker's live deployment: which versions take which share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Traffic(pub Vec<(String, u8)>);

impl Traffic {
    fn args(&self) -> Vec<String> {
        self.0.iter().map(|(v, p)| format!("{v}@{p}%")).collect()
    }
    fn describe(&self) -> String {
        self.0
            .iter()
            .map(|(v, p)| format!("{v} at {p}%"))
            .collect::<Vec<_>>()
            .join(" + ")
    }
}

/// One Worker in the plan.
#[derive(Debug, Clone)]
struct Target {
    worker: Worker,
    config: PathBuf,
    script: String,
    origin: Option<String>,
    /// What runs now; `None` before the first deploy.
    live: Option<Traffic>,
    smoke: bool,
}

/// What preflight found: the plan, or the problems that stop it.
#[derive(Debug, Default)]
struct Preflight {
    problems: Vec<String>,
    notes: Vec<String>,
    commit: String,
    dirty: bool,
    targets: Vec<Target>,
    database: Option<(String, String)>,
    pending: Vec<String>,
    /// The migrations folder the configuration names.
    migrations: PathBuf,
    remote_checked: bool,
}

/// Runs wrangler for one environment.
struct Remote<'a> {
    tools: &'a Tools,
    env: &'a str,
}

impl Remote<'_> {
    fn cmd(&self, config: &Path) -> Command {
        let mut cmd = self.tools.wrangler();
        cmd.env("CI", "1").env("WRANGLER_SEND_METRICS", "false");
        cmd.args(["-e", self.env, "-c"]).arg(config);
        cmd
    }

    /// Runs `args` (after `-e env -c config`) and returns the output;
    /// a failure carries wrangler's own message.
    fn run(&self, config: &Path, args: &[&str]) -> Result<Output> {
        let mut cmd = self.cmd(config);
        cmd.args(args);
        let out = cmd
            .output()
            .with_context(|| format!("starting wrangler {}", args.join(" ")))?;
        if !out.status.success() {
            bail!(
                "wrangler {} failed: {}",
                args.join(" "),
                wrangler_error(&out)
            );
        }
        Ok(out)
    }

    /// Runs `args` with wrangler's machine-readable output file and returns
    /// the last entry of `kind`.
    fn run_for_output(&self, config: &Path, args: &[&str], kind: &str) -> Result<Value> {
        let file = std::env::temp_dir().join(format!(
            "pmjb-wrangler-{}-{}.ndjson",
            std::process::id(),
            rand_suffix()
        ));
        let mut cmd = self.cmd(config);
        cmd.args(args).env("WRANGLER_OUTPUT_FILE_PATH", &file);
        let out = cmd
            .output()
            .with_context(|| format!("starting wrangler {}", args.join(" ")))?;
        let entries = std::fs::read_to_string(&file).unwrap_or_default();
        let _ = std::fs::remove_file(&file);
        if !out.status.success() {
            bail!(
                "wrangler {} failed: {}",
                args.join(" "),
                wrangler_error(&out)
            );
        }
        entries
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .rfind(|e| e["type"] == kind)
            .with_context(|| format!("wrangler {} reported no {kind}", args.join(" ")))
    }

    fn secret_names(&self, config: &Path) -> Result<Vec<String>> {
        let out = self.run(config, &["secret", "list", "--format", "json"])?;
        let list: Value = serde_json::from_slice(&out.stdout).with_context(|| {
            format!(
                "wrangler secret list printed no JSON: {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })?;
        Ok(list
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["name"].as_str().map(str::to_owned))
            .collect())
    }

    fn d1(&self, config: &Path, database: &str, sql: &str) -> Result<Vec<Value>> {
        let out = self.run(
            config,
            &[
                "d1",
                "execute",
                database,
                "--remote",
                "--json",
                "--command",
                sql,
            ],
        )?;
        let v: Value = serde_json::from_slice(&out.stdout).with_context(|| {
            format!(
                "wrangler d1 execute printed no JSON: {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })?;
        Ok(v[0]["results"].as_array().cloned().unwrap_or_default())
    }

    /// Names in the remote `d1_migrations`; none when the table does not
    /// exist yet (a new database).
    fn applied_migrations(&self, config: &Path, database: &str) -> Result<Vec<String>> {
        let exists = self.d1(
            config,
            database,
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'd1_migrations'",
        )?;
        if exists.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self
            .d1(
                config,
                database,
                &boekhouding_core::storage::applied_migration_names_statement()
                    .inline_sql()
                    .context("the applied-migrations query as SQL text")?,
            )?
            .iter()
            .filter_map(|r| r["name"].as_str().map(str::to_owned))
            .collect())
    }

    /// The live deployment's traffic split; `None` when the Worker has
    /// never been deployed.
    fn live(&self, config: &Path) -> Result<Option<Traffic>> {
        let mut cmd = self.cmd(config);
        cmd.args(["deployments", "status", "--json"]);
        let out = cmd
            .output()
            .context("starting wrangler deployments status")?;
        if !out.status.success() {
            let err = wrangler_error(&out);
            // Cloudflare's "script not found" (10007) or no deployment yet.
            if err.contains("10007") || err.to_ascii_lowercase().contains("not found") {
                return Ok(None);
            }
            bail!("wrangler deployments status failed: {err}");
        }
        let v: Value = serde_json::from_slice(&out.stdout).with_context(|| {
            format!(
                "wrangler deployments status printed no JSON: {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })?;
        let versions: Vec<(String, u8)> = v["versions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|x| {
                let pct = x["percentage"].as_f64()?;
                Some((x["version_id"].as_str()?.to_owned(), pct.round() as u8))
            })
            .collect();
        Ok((!versions.is_empty()).then_some(Traffic(versions)))
    }

    fn bookmark(&self, config: &Path, database: &str) -> Result<String> {
        let out = self.run(config, &["d1", "time-travel", "info", database, "--json"])?;
        let v: Value = serde_json::from_slice(&out.stdout).with_context(|| {
            format!(
                "wrangler d1 time-travel info printed no JSON: {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })?;
        v["bookmark"]
            .as_str()
            .map(str::to_owned)
            .context("wrangler d1 time-travel info gave no bookmark")
    }

    fn apply_migrations(&self, config: &Path, database: &str) -> Result<()> {
        self.run(config, &["d1", "migrations", "apply", database, "--remote"])
            .map(|_| ())
    }

    /// Uploads the built bundle carrying `GIT_COMMIT`: as a new version
    /// (`versions upload`, no traffic yet) or, for a Worker's first deploy,
    /// straight to 100% (`deploy`). Returns the version id.
    fn upload(&self, config: &Path, commit: &str, message: &str, first: bool) -> Result<String> {
        let (command, kind): (&[&str], &str) = if first {
            (&["deploy"], "deploy")
        } else {
            (&["versions", "upload"], "version-upload")
        };
        let var = format!("GIT_COMMIT:{commit}");
        let mut args = command.to_vec();
        args.extend(["--var", &var, "--tag", commit, "--message", message]);
        let entry = self.run_for_output(config, &args, kind)?;
        entry["version_id"]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("wrangler {} reported no version id", command.join(" ")))
    }

    fn route(&self, config: &Path, traffic: &Traffic, message: &str) -> Result<()> {
        let mut args: Vec<String> = vec!["versions".into(), "deploy".into()];
        args.extend(traffic.args());
        args.extend(["--message".into(), message.into(), "--yes".into()]);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        self.run(config, &refs).map(|_| ())
    }

    fn triggers(&self, config: &Path) -> Result<()> {
        self.run(config, &["triggers", "deploy"]).map(|_| ())
    }
}

/// Who runs the command, for the audit rows: git's configured address,
/// else the login name.
fn operator_identity(root: &Path) -> String {
    git(root, &["config", "user.email"])
        .ok()
        .map(|e| e.trim().to_owned())
        .filter(|e| !e.is_empty())
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "operator".into())
}

/// Writes one operator action into the environment's `audit_log`. A row
/// that cannot be written is reported, never a reason to stop a deploy or
/// a return.
fn audit(
    remote: &Remote<'_>,
    target: &Target,
    database: &str,
    action: AuditAction,
    metadata: Value,
) {
    let actor = operator_identity(&remote.tools.root);
    let entry = AuditEntry {
        actor_id: None,
        actor_email: Some(&actor),
        action,
        resource_type: "worker",
        resource_id: Some(&target.script),
        metadata: Some(metadata),
        client_ip: None,
    };
    let written = audit_log::insert_statement(&entry, chrono::Utc::now())
        .inline_sql()
        .context("the audit row cannot be written as SQL text")
        .and_then(|sql| remote.d1(&target.config, database, &sql));
    if let Err(e) = written {
        println!("  warning: audit row not written: {e:#}");
    }
}

/// A check thread's answer; a panic becomes an error like any other.
fn joined<T>(r: std::thread::Result<Result<T>>) -> Result<T> {
    r.unwrap_or_else(|_| Err(anyhow::anyhow!("the check panicked")))
}

/// Wrangler's error text without its banner and log noise.
fn wrangler_error(out: &Output) -> String {
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("⛅️") && !l.starts_with('─'))
        .filter(|l| !l.contains("Logs were written to"))
        .collect();
    let errors: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.contains("ERROR") || l.starts_with('✘') || l.contains("[code:"))
        .collect();
    let chosen = if errors.is_empty() { lines } else { errors };
    chosen
        .iter()
        .take(4)
        .copied()
        .collect::<Vec<_>>()
        .join(" / ")
}

/// A name part that two deploys running at once do not share.
fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// Git's output, untrimmed (`status --porcelain` lines start with a space).
fn git(root: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new("git").args(args).current_dir(root).output()?;
    if !out.status.success() {
        bail!(
            "git {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The uncommitted paths `git status --porcelain` lists.
pub fn dirty_paths(porcelain: &str) -> Vec<String> {
    porcelain
        .lines()
        .filter(|l| l.len() > 3)
        .map(|l| l[3..].to_owned())
        .collect()
}

fn local_migrations(dir: &Path) -> Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".sql"))
        .collect();
    names.sort();
    Ok(names)
}

/// Compares the migrations of the checkout with those applied remotely:
/// the pending ones, or the problem of a remote that is ahead.
pub fn pending_migrations(local: &[String], applied: &[String]) -> Result<Vec<String>, String> {
    let known: BTreeSet<&String> = local.iter().collect();
    let unknown: Vec<&String> = applied.iter().filter(|a| !known.contains(a)).collect();
    if !unknown.is_empty() {
        return Err(format!(
            "the remote database has migrations this checkout does not have: {} (deploy from the commit that added them, or a later one)",
            unknown
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let done: BTreeSet<&String> = applied.iter().collect();
    Ok(local
        .iter()
        .filter(|l| !done.contains(l))
        .cloned()
        .collect())
}

fn preflight(tools: &Tools, args: &DeployArgs) -> Result<Preflight> {
    let root = &tools.root;
    let env = args.env.as_str();
    let mut pf = Preflight::default();

    // The work tree.
    match git(root, &["rev-parse", "--short=12", "HEAD"]) {
        Ok(c) => pf.commit = c.trim().to_owned(),
        Err(e) => pf.problems.push(format!("no commit to deploy: {e}")),
    }
    let dirty = dirty_paths(&git(root, &["status", "--porcelain"]).unwrap_or_default());
    if !dirty.is_empty() {
        pf.dirty = true;
        let shown = dirty.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
        if args.allow_dirty {
            pf.notes.push(format!(
                "the work tree has uncommitted changes ({shown}); deploying them because of --allow-dirty"
            ));
        } else {
            pf.problems.push(format!(
                "the work tree has uncommitted changes ({shown}{}): commit or stash them, so the deployed code is the commit /health reports",
                if dirty.len() > 5 { ", …" } else { "" }
            ));
        }
    }

    // The configuration.
    let dir = args
        .config_dir
        .clone()
        .unwrap_or_else(|| root.join("wrangler"));
    let configs = load_all(&dir)?;
    let shown = |p: &Path| p.strip_prefix(root).unwrap_or(p).display().to_string();
    let mut complete = true;
    let mut databases = BTreeSet::new();
    for c in &configs {
        let Some(e) = c.environment(env) else {
            pf.problems.push(format!(
                "{}: no env.{env} block (environments: {})",
                shown(&c.path),
                c.environment_names().join(", ")
            ));
            complete = false;
            continue;
        };
        for p in e.placeholders() {
            pf.problems.push(format!(
                "{}: {p} is a placeholder: fill it in",
                c.path.display()
            ));
            complete = false;
        }
        for g in e.gaps() {
            pf.problems
                .push(format!("{} env.{env}: {g}", c.path.display()));
            complete = false;
        }
        if let Some((id, name)) = e.database() {
            databases.insert((id.to_owned(), name.to_owned()));
        }
        pf.targets.push(target(c, &e));
    }
    if databases.len() > 1 {
        pf.problems.push(format!(
            "the Workers of env.{env} bind different D1 databases: {databases:?}"
        ));
        complete = false;
    }
    pf.database = databases.into_iter().next();
    pf.migrations = configs
        .iter()
        .find_map(|c| c.environment(env)?.migrations_dir())
        .unwrap_or_else(|| root.join("migrations"));

    // The repository.
    if let Err(e) = crate::migrations::check_dir(&pf.migrations) {
        pf.problems.push(format!("migrations: {e:#}"));
    }
    if let Err(e) = crate::docs::check_database_md() {
        pf.problems
            .push(format!("docs/knowledge/DATABASE.md: {e:#}"));
    }

    // The operator token for the deep checks.
    if std::env::var(OPERATOR_TOKEN_ENV).map_or(true, |t| t.is_empty()) {
        pf.problems.push(format!(
            "{OPERATOR_TOKEN_ENV} is not set: the deploy checks /health/deep of each new version with the OPERATOR_TOKEN secret's value"
        ));
    }

    // What only Cloudflare knows.
    let token = std::env::var("CLOUDFLARE_API_TOKEN").unwrap_or_default();
    if token.is_empty() {
        pf.problems.push(
            "CLOUDFLARE_API_TOKEN is not set (a token with Workers Scripts, D1 and Account Settings edit rights)".into(),
        );
    }
    if !complete || token.is_empty() {
        for t in &pf.targets {
            let needed: Vec<&str> = settings::of(t.worker)
                .filter(|s| s.kind == settings::Kind::Secret && s.need == settings::Need::Required)
                .map(|s| s.name)
                .collect();
            pf.notes.push(format!(
                "{} will need these secrets (checked once the rest is complete): {}",
                t.script,
                needed.join(", ")
            ));
        }
        pf.notes.push(
            "secrets, applied migrations and live versions were not checked: they need a complete configuration and CLOUDFLARE_API_TOKEN".into(),
        );
        return Ok(pf);
    }
    pf.remote_checked = true;
    let remote = Remote { tools, env };
    // Every question is one wrangler run (a Node start each): asked at
    // once, answered in the order the Workers are listed.
    let database = pf.database.clone();
    let first = pf.targets[0].config.clone();
    let (answers, applied) = std::thread::scope(|scope| {
        let per_worker: Vec<_> = pf
            .targets
            .iter()
            .map(|t| {
                let remote = &remote;
                let secrets = scope.spawn(move || remote.secret_names(&t.config));
                let live = scope.spawn(move || remote.live(&t.config));
                (secrets, live)
            })
            .collect();
        let applied = database
            .as_ref()
            .map(|(_, name)| scope.spawn(|| remote.applied_migrations(&first, name)));
        let answers: Vec<_> = per_worker
            .into_iter()
            .map(|(s, l)| (joined(s.join()), joined(l.join())))
            .collect();
        (answers, applied.map(|h| joined(h.join())))
    });
    for (t, (secrets, live)) in pf.targets.iter_mut().zip(answers) {
        match secrets {
            Ok(names) => {
                let present: Vec<&str> = names.iter().map(String::as_str).collect();
                for s in settings::missing_secrets(t.worker, &present) {
                    pf.problems.push(format!(
                        "{}: secret {} is missing ({}): wrangler secret put {} -e {env} -c {}",
                        t.script,
                        s.name,
                        s.about,
                        s.name,
                        shown(&t.config)
                    ));
                }
            }
            Err(e) => pf
                .problems
                .push(format!("{}: cannot list secrets: {e:#}", t.script)),
        }
        match live {
            Ok(Some(live)) if live.0.len() > 1 => pf.problems.push(format!(
                "{}: a gradual deployment is in progress ({}): finish it or run `cargo xtask rollback --env {env}` first",
                t.script,
                live.describe()
            )),
            Ok(live) => t.live = live,
            Err(e) => pf
                .problems
                .push(format!("{}: cannot read the live deployment: {e:#}", t.script)),
        }
    }
    match applied {
        Some(Ok(applied)) => match pending_migrations(&local_migrations(&pf.migrations)?, &applied)
        {
            Ok(p) => pf.pending = p,
            Err(e) => pf.problems.push(e),
        },
        Some(Err(e)) => pf
            .problems
            .push(format!("cannot read the applied migrations: {e:#}")),
        None => {}
    }
    for name in &pf.pending {
        let sql = std::fs::read_to_string(pf.migrations.join(name))?;
        let found = crate::migrations::destructive_statements(&sql);
        let stem = name.trim_end_matches(".sql");
        let allowed = args
            .allow_destructive
            .iter()
            .any(|a| a == name || a == stem);
        if !found.is_empty() && !allowed {
            pf.problems.push(format!(
                "migration {name} is destructive ({}): running code may still need what it drops or renames; after review pass --allow-destructive {stem}",
                found.join("; ")
            ));
        }
    }
    Ok(pf)
}

fn target(c: &WorkerConfig, e: &Environment<'_>) -> Target {
    Target {
        worker: c.worker,
        config: c.path.clone(),
        script: c.script_name(&e.name),
        origin: e.origin(),
        live: None,
        smoke: c.worker == Worker::McpServer && e.var("DEMO_MODE") != Some("off"),
    }
}

/// The plan in words: what will be applied, uploaded, checked, and rolled
/// back on failure.
fn describe_plan(pf: &Preflight, args: &DeployArgs) -> String {
    let env = &args.env;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Deploy plan for {env} at commit {}{}",
        if pf.commit.is_empty() {
            "?"
        } else {
            &pf.commit
        },
        if pf.dirty {
            " (with uncommitted changes)"
        } else {
            ""
        }
    );
    let db = pf
        .database
        .as_ref()
        .map(|(id, name)| format!("{name} ({id})"))
        .unwrap_or_else(|| "the D1 database".into());
    let mut n = 0;
    let mut step = |s: &mut String, text: String| {
        n += 1;
        let _ = writeln!(s, "  {n}. {text}");
    };
    step(
        &mut s,
        if args.no_build {
            "use the bundles of the last `cargo xtask build` (--no-build)".into()
        } else {
            "build the three Workers (release) and check their sizes".into()
        },
    );
    step(&mut s, format!("record a D1 Time Travel bookmark of {db}"));
    step(
        &mut s,
        if !pf.remote_checked {
            "apply the migrations not yet applied remotely (not known until the remote checks run)"
                .into()
        } else if pf.pending.is_empty() {
            "apply no migration (all applied already)".into()
        } else {
            format!(
                "apply {} migration(s): {}",
                pf.pending.len(),
                pf.pending.join(", ")
            )
        },
    );
    for t in &pf.targets {
        let origin = t.origin.clone().unwrap_or_else(|| "<no route>".into());
        let checks = format!(
            "{origin}/health (commit {}), {origin}/health/deep (healthy){}",
            pf.commit,
            if t.smoke {
                ", one MCP tools/call with a demo key"
            } else {
                ""
            }
        );
        let text = match &t.live {
            Some(live) => format!(
                "{} ({}): upload a version with GIT_COMMIT={}, apply its routes and schedules, send {CANARY_PERCENT}% of traffic to it beside {}, check {checks} on the new version, then 100%",
                t.worker,
                t.script,
                pf.commit,
                live.describe()
            ),
            None if pf.remote_checked => format!(
                "{} ({}): first deploy (nothing to canary beside or return to): deploy at 100%, then check {checks}",
                t.worker, t.script
            ),
            None => format!(
                "{} ({}): upload a version, canary at {CANARY_PERCENT}% beside the live one, check {checks}, then 100%",
                t.worker, t.script
            ),
        };
        step(&mut s, text);
    }
    let _ = writeln!(
        s,
        "  On a failure after step 3, every Worker already moved returns to the versions it had{}; the D1 bookmark is printed with the command that restores it (only needed when a migration must be undone).",
        {
            let back: Vec<String> = pf
                .targets
                .iter()
                .filter_map(|t| Some(format!("{}: {}", t.worker, t.live.as_ref()?.describe())))
                .collect();
            if back.is_empty() {
                String::new()
            } else {
                format!(" ({})", back.join("; "))
            }
        }
    );
    s
}

fn print_findings(pf: &Preflight) {
    for note in &pf.notes {
        println!("note: {note}");
    }
    if pf.problems.is_empty() {
        println!("preflight: passed");
    } else {
        println!("preflight: {} problem(s):", pf.problems.len());
        for p in &pf.problems {
            println!("  - {p}");
        }
    }
}

/// `cargo xtask deploy --env E [--dry-run]`.
pub fn deploy(tools: &Tools, args: &DeployArgs) -> Result<()> {
    let pf = preflight(tools, args)?;
    println!("{}", describe_plan(&pf, args));
    print_findings(&pf);
    if !pf.problems.is_empty() {
        bail!(
            "preflight found {} problem(s); nothing was changed",
            pf.problems.len()
        );
    }
    if args.dry_run {
        println!("dry run: nothing was changed");
        return Ok(());
    }
    if !args.no_build {
        let report = crate::build::build_all(tools, crate::build::Profile::Release)?;
        crate::build::print_report(&report);
        crate::build::enforce_limits(&report)?;
    }
    let remote = Remote {
        tools,
        env: &args.env,
    };
    let (_, db_name) = pf.database.clone().context("no database")?;
    let first = pf.targets[0].config.clone();
    let bookmark = remote.bookmark(&first, &db_name)?;
    println!("D1 bookmark before migrations: {bookmark}");
    let restore = format!(
        "wrangler d1 time-travel restore {db_name} --bookmark={bookmark} -e {} -c {}",
        args.env,
        first.display()
    );
    if !pf.pending.is_empty() {
        println!("applying {} migration(s)", pf.pending.len());
        if let Err(e) = remote.apply_migrations(&first, &db_name) {
            println!("\nDEPLOY FAILED while applying migrations: {e:#}");
            println!(
                "No Worker was changed. D1 Time Travel bookmark before the migrations: {bookmark}"
            );
            println!(
                "Each migration file is one transaction: the failing one was rolled back, earlier files of this run stay applied (they run beside the live code). To return D1 to the bookmark: {restore}"
            );
            bail!("deploy failed: migrations");
        }
    }
    let message = format!(
        "cargo xtask deploy {}{}",
        pf.commit,
        if pf.dirty {
            " (uncommitted changes)"
        } else {
            ""
        }
    );
    let checker = Checker::from_env()?;
    let mut moved: Vec<(&Target, Option<Traffic>)> = Vec::new();
    for t in &pf.targets {
        println!("\n{} ({})", t.worker, t.script);
        let outcome = move_worker(&remote, &checker, t, &pf.commit, &message);
        match outcome {
            Ok(version) => {
                audit(
                    &remote,
                    t,
                    &db_name,
                    AuditAction::Deployed,
                    json!({"environment": args.env, "commit": pf.commit, "version": version,
                           "uncommitted_changes": pf.dirty}),
                );
                moved.push((t, t.live.clone()));
            }
            Err(e) => {
                // This Worker may be half-moved (canary): return it too.
                moved.push((t, t.live.clone()));
                println!("\nDEPLOY FAILED at {}: {e:#}", t.worker);
                roll_back(
                    &remote,
                    &checker,
                    &moved,
                    &format!("automatic rollback: {e}"),
                );
                for (moved_target, before) in &moved {
                    if let Some(before) = before {
                        audit(
                            &remote,
                            moved_target,
                            &db_name,
                            AuditAction::RolledBack,
                            json!({"environment": args.env, "automatic": true,
                                   "reason": format!("{e:#}"), "to": before.describe()}),
                        );
                    }
                }
                println!("\nD1 Time Travel bookmark before the migrations: {bookmark}");
                println!(
                    "Migrations are made to run beside the previous code, so D1 normally stays; to undo them: {restore}"
                );
                bail!("deploy failed at {}: {e:#}", t.worker);
            }
        }
    }
    println!(
        "\ndeployed {} to {}: all three Workers at 100%, checked",
        pf.commit, args.env
    );
    Ok(())
}

/// Moves one Worker to the new version through the canary.
fn move_worker(
    remote: &Remote<'_>,
    checker: &Checker,
    t: &Target,
    commit: &str,
    message: &str,
) -> Result<String> {
    let origin = t.origin.as_deref().context("no custom domain to check")?;
    let Some(live) = &t.live else {
        let version = remote.upload(&t.config, commit, message, true)?;
        println!("  first deploy: version {version} at 100%");
        checker.check_version(t, origin, &version, commit)?;
        return Ok(version);
    };
    let version = remote.upload(&t.config, commit, message, false)?;
    println!("  uploaded version {version}");
    remote.triggers(&t.config)?;
    let mut split: Vec<(String, u8)> = live
        .0
        .iter()
        .map(|(v, p)| {
            (
                v.clone(),
                (u32::from(*p) * u32::from(100 - CANARY_PERCENT) / 100) as u8,
            )
        })
        .collect();
    let rest: u32 = split.iter().map(|(_, p)| u32::from(*p)).sum();
    if let Some(first) = split.first_mut() {
        first.1 += (100 - u32::from(CANARY_PERCENT) - rest) as u8;
    }
    split.push((version.clone(), CANARY_PERCENT));
    let canary = Traffic(split);
    remote.route(&t.config, &canary, &format!("{message}: canary"))?;
    println!("  canary: {}", canary.describe());
    checker.check_version(t, origin, &version, commit)?;
    remote.route(
        &t.config,
        &Traffic(vec![(version.clone(), 100)]),
        &format!("{message}: checked"),
    )?;
    println!("  {version} at 100%");
    Ok(version)
}

/// Returns every Worker in `moved` to the traffic it had; reports, never
/// stops half-way.
fn roll_back(
    remote: &Remote<'_>,
    checker: &Checker,
    moved: &[(&Target, Option<Traffic>)],
    message: &str,
) {
    for (t, before) in moved.iter().rev() {
        let Some(before) = before else {
            println!(
                "  {}: was deployed for the first time; nothing to return to (it stays on the failed version)",
                t.worker
            );
            continue;
        };
        match remote.route(&t.config, before, message) {
            Ok(()) => {
                println!("  {}: returned to {}", t.worker, before.describe());
                if let Some(origin) = &t.origin {
                    match checker.health(origin, None) {
                        Ok(h) => println!(
                            "    /health after the return: {} (commit {})",
                            h["status"].as_str().unwrap_or("?"),
                            h["commit"].as_str().unwrap_or("?")
                        ),
                        Err(e) => println!("    /health after the return: {e:#}"),
                    }
                }
            }
            Err(e) => println!(
                "  {}: RETURN FAILED ({e:#}); run `cargo xtask rollback --env {} --worker {}`",
                t.worker, remote.env, t.worker
            ),
        }
    }
}

/// The HTTP checks against the deployed Workers.
struct Checker {
    /// `host:port` of the local imitation, or `None` for the real edge.
    edge: Option<String>,
    operator_token: String,
    within: Duration,
}

/// An answer of a deployed Worker.
struct Answer {
    status: u16,
    body: String,
}

impl Checker {
    fn from_env() -> Result<Checker> {
        Ok(Checker {
            edge: std::env::var(EDGE_ENV).ok().filter(|e| !e.is_empty()),
            operator_token: std::env::var(OPERATOR_TOKEN_ENV).unwrap_or_default(),
            within: std::env::var("PMJB_DEPLOY_CHECK_SECS")
                .ok()
                .and_then(|s| s.parse().ok())
                .map_or(CHECK_WITHIN, Duration::from_secs),
        })
    }

    fn request(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, String)],
        body: &str,
    ) -> Result<Answer> {
        match &self.edge {
            Some(edge) => {
                let rest = url.strip_prefix("https://").context("origins are https")?;
                let (host, path) = rest
                    .split_once('/')
                    .map_or((rest, "/"), |(h, _)| (h, &rest[h.len()..]));
                let (ip, port) = edge.rsplit_once(':').context("PMJB_EDGE is host:port")?;
                if ip != "127.0.0.1" {
                    bail!("PMJB_EDGE must be on 127.0.0.1");
                }
                let mut hs: Vec<(&str, &str)> =
                    headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
                hs.push(("Host", host));
                let r = crate::process::http_request(port.parse()?, method, path, &hs, body)?;
                Ok(Answer {
                    status: r.status,
                    body: r.body,
                })
            }
            None => {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .timeout_global(Some(Duration::from_secs(20)))
                    .build()
                    .into();
                let mut resp = if method == "GET" {
                    let mut req = agent.get(url);
                    for (k, v) in headers {
                        req = req.header(*k, v.as_str());
                    }
                    req.call()?
                } else {
                    let mut req = agent.post(url);
                    for (k, v) in headers {
                        req = req.header(*k, v.as_str());
                    }
                    req.send(body.as_bytes())?
                };
                Ok(Answer {
                    status: resp.status().as_u16(),
                    body: resp.body_mut().read_to_string()?,
                })
            }
        }
    }

    fn pin(script: &str, version: &str) -> (&'static str, String) {
        (
            "Cloudflare-Workers-Version-Overrides",
            format!("{script}=\"{version}\""),
        )
    }

    /// `/health` (of `version` when given) as JSON, when it answers 200.
    fn health(&self, origin: &str, pinned: Option<(&str, &str)>) -> Result<Value> {
        let mut headers = vec![("Accept", "application/json".to_owned())];
        if let Some((script, version)) = pinned {
            headers.push(Self::pin(script, version));
        }
        let a = self.request("GET", &format!("{origin}/health"), &headers, "")?;
        if a.status != 200 {
            bail!("/health answered {}", a.status);
        }
        serde_json::from_str(&a.body).context("/health is not JSON")
    }

    /// Retries `check` until it passes or the time is up.
    fn until(&self, what: &str, mut check: impl FnMut() -> Result<()>) -> Result<()> {
        let start = Instant::now();
        loop {
            match check() {
                Ok(()) => {
                    println!("  ok: {what}");
                    return Ok(());
                }
                Err(e) if start.elapsed() >= self.within => {
                    bail!("{what}: {e:#}")
                }
                Err(_) => std::thread::sleep(CHECK_EVERY),
            }
        }
    }

    /// The checks of a new version, pinned to it.
    fn check_version(&self, t: &Target, origin: &str, version: &str, commit: &str) -> Result<()> {
        let pin = Some((t.script.as_str(), version));
        self.until(&format!("{origin}/health reports commit {commit}"), || {
            let h = self.health(origin, pin)?;
            match h["commit"].as_str() {
                Some(c) if c == commit => Ok(()),
                other => bail!("it reports commit {}", other.unwrap_or("none")),
            }
        })?;
        self.until(&format!("{origin}/health/deep is healthy"), || {
            let headers = [
                ("Accept", "application/json".to_owned()),
                ("Authorization", format!("Bearer {}", self.operator_token)),
                Self::pin(&t.script, version),
            ];
            let a = self.request("GET", &format!("{origin}/health/deep"), &headers, "")?;
            let v: Value = serde_json::from_str(&a.body).unwrap_or(Value::Null);
            let failed: Vec<&str> = v["failed"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            if a.status == 200 && v["healthy"] == true {
                Ok(())
            } else if !failed.is_empty() && failed.iter().all(|c| *c == "cron") {
                // A stale or failed cron run is not this version's doing,
                // and a deploy may be its fix: said, not blocking.
                println!(
                    "  warning: the cron check fails ({}); the deploy goes on",
                    v["reasons"]
                );
                Ok(())
            } else {
                bail!(
                    "it answered {} {}",
                    a.status,
                    v.get("reasons").map_or_else(String::new, Value::to_string)
                )
            }
        })?;
        if t.smoke {
            self.until(&format!("{origin}/mcp answers a demo tools/call"), || {
                let headers = [
                    ("Accept", "application/json, text/event-stream".to_owned()),
                    ("Content-Type", "application/json".to_owned()),
                    ("MCP-Protocol-Version", "2025-11-25".to_owned()),
                    ("Authorization", format!("Bearer {SMOKE_KEY}")),
                    Self::pin(&t.script, version),
                ];
                let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                    "params": {"name": "list_divisions", "arguments": {}}})
                .to_string();
                let a = self.request("POST", &format!("{origin}/mcp"), &headers, &body)?;
                let v: Value = serde_json::from_str(&a.body).unwrap_or(Value::Null);
                if a.status == 200 && v["result"]["isError"] != true && v["result"].is_object() {
                    Ok(())
                } else {
                    bail!(
                        "it answered {} {}",
                        a.status,
                        a.body.chars().take(200).collect::<String>()
                    )
                }
            })?;
        }
        Ok(())
    }
}

/// What `rollback` was asked to do.
#[derive(Debug, Clone, Default)]
pub struct RollbackArgs {
    pub env: String,
    pub worker: Option<String>,
    pub version: Option<String>,
    pub config_dir: Option<PathBuf>,
}

/// `cargo xtask rollback`: each Worker (or one) back to the version before
/// its live one (or a given one) at 100%, then its health checked.
pub fn rollback(tools: &Tools, args: &RollbackArgs) -> Result<()> {
    let dir = args
        .config_dir
        .clone()
        .unwrap_or_else(|| tools.root.join("wrangler"));
    let configs = load_all(&dir)?;
    let chosen: Vec<&WorkerConfig> = match &args.worker {
        Some(name) => {
            let w = Worker::from_dir(name).with_context(|| {
                format!("unknown worker {name:?} (mcp-server, auth-portal, token-cron)")
            })?;
            configs.iter().filter(|c| c.worker == w).collect()
        }
        None => configs.iter().collect(),
    };
    if args.version.is_some() && chosen.len() != 1 {
        bail!("--version needs --worker: a version id belongs to one Worker");
    }
    let remote = Remote {
        tools,
        env: &args.env,
    };
    let checker = Checker::from_env()?;
    let mut failed = Vec::new();
    for c in chosen {
        let e = c
            .environment(&args.env)
            .with_context(|| format!("{}: no env.{}", c.path.display(), args.env))?;
        let t = target(c, &e);
        let version = match &args.version {
            Some(v) => v.clone(),
            None => previous_version(&remote, &t)?,
        };
        remote.route(
            &t.config,
            &Traffic(vec![(version.clone(), 100)]),
            "rollback via cargo xtask",
        )?;
        println!("{}: {version} at 100%", t.worker);
        if let Some((_, database)) = e.database() {
            audit(
                &remote,
                &t,
                database,
                AuditAction::RolledBack,
                json!({"environment": args.env, "automatic": false, "to": version}),
            );
        }
        if let Some(origin) = &t.origin {
            let r = checker.until(&format!("{origin}/health answers ok"), || {
                let h = checker.health(origin, None)?;
                if h["status"] == "ok" {
                    println!("    commit {}", h["commit"].as_str().unwrap_or("?"));
                    Ok(())
                } else {
                    bail!("status {}", h["status"])
                }
            });
            if let Err(e) = r {
                failed.push(format!("{}: {e:#}", t.worker));
            }
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        bail!("rolled back, but not healthy: {}", failed.join("; "))
    }
}

/// The version that was live before the current one: of the versions that
/// some deployment put at 100%, the one that appeared last before the
/// live version first appeared (a version the deploy tried and returned
/// from is newer, so it is not chosen).
fn previous_version(remote: &Remote<'_>, t: &Target) -> Result<String> {
    let out = remote.run(&t.config, &["deployments", "list", "--json"])?;
    let list: Value = serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "wrangler deployments list printed no JSON: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })?;
    previous_in(&list).with_context(|| format!("{}: no earlier version to return to", t.script))
}

/// [`previous_version`] over `wrangler deployments list --json`.
fn previous_in(list: &Value) -> Option<String> {
    let mut deployments: Vec<&Value> = list.as_array()?.iter().collect();
    deployments.sort_by_key(|d| d["created_on"].as_str().unwrap_or_default().to_owned());
    let split = |d: &Value| -> Vec<(String, f64)> {
        d["versions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| {
                Some((
                    v["version_id"].as_str()?.to_owned(),
                    v["percentage"].as_f64()?,
                ))
            })
            .collect()
    };
    let first_seen = |id: &str| {
        deployments
            .iter()
            .position(|d| split(d).iter().any(|(v, _)| v == id))
    };
    let live = split(deployments.last()?)
        .into_iter()
        .max_by(|a, b| a.1.total_cmp(&b.1))?
        .0;
    let live_since = first_seen(&live)?;
    deployments
        .iter()
        .flat_map(|d| split(d))
        .filter(|(v, p)| *p >= 100.0 && *v != live)
        .filter_map(|(v, _)| Some((first_seen(&v)?, v)))
        .filter(|(seen, _)| *seen < live_since)
        .max_by_key(|(seen, _)| *seen)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dirty_paths_are_read_from_porcelain_output() {
        assert!(dirty_paths("").is_empty());
        assert_eq!(
            dirty_paths(" M Cargo.lock\nM  README.md\n?? new file.txt\n"),
            vec!["Cargo.lock", "README.md", "new file.txt"]
        );
    }

    #[test]
    fn pending_migrations_are_the_local_ones_not_applied_and_a_remote_ahead_is_refused() {
        let local: Vec<String> = ["0001_a.sql", "0002_b.sql", "0003_c.sql"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            pending_migrations(&local, &["0001_a.sql".into()]).unwrap(),
            vec!["0002_b.sql", "0003_c.sql"]
        );
        assert!(pending_migrations(&local, &local).unwrap().is_empty());
        let err = pending_migrations(&local[..1], &local[..2]).unwrap_err();
        assert!(err.contains("0002_b.sql"), "{err}");
    }

    #[test]
    fn the_previous_version_is_the_last_full_one_before_the_live_one_appeared() {
        let d = |at: &str, vs: &[(&str, f64)]| json!({"created_on": at, "versions": vs.iter().map(|(v, p)| json!({"version_id": v, "percentage": p})).collect::<Vec<_>>()});
        // v1 live, canary of v2, v2 live, canary of v3, v3 live, a
        // failed deploy's return to v2: the previous of v2 is v1, not v3.
        let list = json!([
            d("2026-12-01T10:00:00Z", &[("v1", 100.0)]),
            d("2026-12-01T11:00:00Z", &[("v1", 90.0), ("v2", 10.0)]),
            d("2026-12-01T11:01:00Z", &[("v2", 100.0)]),
            d("2026-12-01T12:00:00Z", &[("v2", 90.0), ("v3", 10.0)]),
            d("2026-12-01T12:01:00Z", &[("v3", 100.0)]),
            d("2026-12-01T12:02:00Z", &[("v2", 100.0)]),
        ]);
        assert_eq!(previous_in(&list).as_deref(), Some("v1"));
        let only = json!([d("2026-12-01T10:00:00Z", &[("v1", 100.0)])]);
        assert_eq!(previous_in(&only), None);
    }

    #[test]
    fn traffic_is_given_to_wrangler_as_version_at_percent() {
        let t = Traffic(vec![("a".into(), 90), ("b".into(), 10)]);
        assert_eq!(t.args(), vec!["a@90%", "b@10%"]);
        assert_eq!(t.describe(), "a at 90% + b at 10%");
    }
}
