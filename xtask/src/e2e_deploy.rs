//! The deploy proven offline (group `deploy`): `cargo xtask deploy` and
//! `cargo xtask rollback` run as an operator runs them, with the pinned
//! wrangler talking to the local imitation of the Cloudflare API
//! (`cloudflare-sandbox`), which runs every uploaded version in workerd and
//! records versions, deployments, secrets and D1 statements.
//!
//! The checks run in order on one imitated account, each leaving what the
//! next needs: the example configuration's dry run; a destructive
//! migration refused; a clean first deploy; a placeholder and a missing
//! secret refused; a second clean deploy; a canary that reports the wrong
//! commit (every Worker back where it was); a failing migration (nothing
//! uploaded); a rollback on demand.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use boekhouding_core::settings::{self, Kind, Need, Worker};
use cloudflare_sandbox::{CloudflareSandbox, Config};
use serde_json::{Value, json};

use crate::config::load_all;
use crate::process::http_request;
use crate::tools::Tools;

const ENV: &str = "staging";
const TOKEN: &str = "local-cloudflare-token";
const ACCOUNT: &str = "0123456789abcdef0123456789abcdef";
/// The pending migrations of a fresh database that rebuild tables
/// (reviewed: each copies every row).
const REVIEWED: &str =
    "0018_connections_per_exact_login,0019_oauth_grants,0020_login_return_to_length";

fn expect(cond: bool, msg: impl FnOnce() -> String) -> Result<()> {
    if cond { Ok(()) } else { bail!(msg()) }
}

fn random_hex(bytes: usize) -> String {
    let mut raw = vec![0u8; bytes];
    getrandom::fill(&mut raw).unwrap_or_default();
    hex::encode(raw)
}

/// The imitated account and a complete configuration for it.
struct World<'a> {
    tools: &'a Tools,
    cf: CloudflareSandbox,
    dir: PathBuf,
    configs: PathBuf,
    operator_token: String,
}

/// What a command printed, and whether it succeeded.
struct Run {
    ok: bool,
    output: String,
}

impl World<'_> {
    fn envs(&self) -> Vec<(&'static str, String)> {
        vec![
            ("CLOUDFLARE_API_BASE_URL", self.cf.api_base_url()),
            ("CLOUDFLARE_API_TOKEN", TOKEN.to_owned()),
            ("CLOUDFLARE_ACCOUNT_ID", ACCOUNT.to_owned()),
            ("PMJB_OPERATOR_TOKEN", self.operator_token.clone()),
            ("PMJB_EDGE", format!("127.0.0.1:{}", self.cf.port())),
            ("PMJB_DEPLOY_CHECK_SECS", "60".to_owned()),
        ]
    }

    fn config(&self, w: Worker) -> PathBuf {
        self.configs.join(w.dir()).join("wrangler.jsonc")
    }

    /// `cargo xtask <args>` as an operator runs it (the same binary).
    fn xtask(&self, args: &[&str]) -> Result<Run> {
        let mut cmd = Command::new(std::env::current_exe()?);
        cmd.args(args).envs(self.envs()).stdin(Stdio::null());
        let out = cmd.output()?;
        let output = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(Run {
            ok: out.status.success(),
            output,
        })
    }

    fn deploy(&self, extra: &[&str]) -> Result<Run> {
        let dir = self.configs.to_string_lossy().into_owned();
        let mut args = vec![
            "deploy",
            "--env",
            ENV,
            "--config-dir",
            &dir,
            "--no-build",
            "--allow-dirty",
        ];
        args.extend_from_slice(extra);
        self.xtask(&args)
    }

    fn wrangler(&self, w: Worker, args: &[&str], stdin: Option<&str>) -> Result<String> {
        let mut cmd = self.tools.wrangler();
        cmd.args(args)
            .args(["-e", ENV, "-c"])
            .arg(self.config(w))
            .envs(self.envs())
            .env("CI", "1");
        let out = match stdin {
            Some(input) => {
                use std::io::Write;
                let mut child = cmd
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()?;
                child
                    .stdin
                    .take()
                    .context("stdin")?
                    .write_all(input.as_bytes())?;
                child.wait_with_output()?
            }
            None => cmd.output()?,
        };
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if !out.status.success() {
            bail!("wrangler {} failed: {text}", args.join(" "));
        }
        Ok(text)
    }

    fn state(&self) -> Value {
        self.cf.state_json()
    }

    fn script(&self, w: Worker) -> String {
        format!("pmjb-{}-{ENV}", w.dir())
    }

    /// The live deployment's `(version, percentage)` of `w`.
    fn live(&self, w: Worker) -> Vec<(String, u64)> {
        let st = self.state();
        st["scripts"][self.script(w)]["deployments"]
            .as_array()
            .and_then(|d| d.last())
            .and_then(|d| d["versions"].as_array())
            .map(|vs| {
                vs.iter()
                    .map(|v| {
                        (
                            v["version_id"].as_str().unwrap_or_default().to_owned(),
                            v["percentage"].as_f64().unwrap_or(0.0).round() as u64,
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    fn versions(&self, w: Worker) -> Vec<Value> {
        self.state()["scripts"][self.script(w)]["versions"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// `GIT_COMMIT` of a stored version.
    fn commit_of(&self, w: Worker, version: &str) -> Option<String> {
        self.versions(w)
            .iter()
            .find(|v| v["id"] == version)
            .and_then(|v| v["plain_text"]["GIT_COMMIT"].as_str().map(str::to_owned))
    }

    fn live_everywhere(&self) -> Vec<Vec<(String, u64)>> {
        Worker::ALL.iter().map(|w| self.live(*w)).collect()
    }

    /// `GET /health` of `host` through the imitation's edge.
    fn health(&self, host: &str) -> Result<Value> {
        let r = http_request(
            self.cf.port(),
            "GET",
            "/health",
            &[("Host", host), ("Accept", "application/json")],
            "",
        )?;
        expect(r.status == 200, || {
            format!("{host}/health: {} {}", r.status, r.body)
        })?;
        r.json()
    }

    /// `(resource_id, metadata)` of the audit rows of `action`, read from
    /// the remote D1 as an operator reads them.
    fn audit_rows(&self, action: &str) -> Result<Vec<(String, Value)>> {
        let out = self.wrangler(
            Worker::McpServer,
            &[
                "d1",
                "execute",
                "boekhouding-staging",
                "--remote",
                "--json",
                "--command",
                &format!(
                    "SELECT resource_id, metadata FROM audit_log WHERE action = '{action}' ORDER BY id"
                ),
            ],
            None,
        )?;
        // The JSON answer comes first; wrangler's stderr follows it.
        let start = out.find('[').context("no JSON")?;
        let v: Value = serde_json::Deserializer::from_str(&out[start..])
            .into_iter::<Value>()
            .next()
            .context("no JSON")?
            .context("d1 execute JSON")?;
        Ok(v[0]["results"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                (
                    r["resource_id"].as_str().unwrap_or_default().to_owned(),
                    r["metadata"]
                        .as_str()
                        .and_then(|m| serde_json::from_str(m).ok())
                        .unwrap_or_default(),
                )
            })
            .collect())
    }

    fn migration_statements(&self) -> Vec<Value> {
        let st = self.state();
        st["d1"]
            .as_object()
            .and_then(|m| m.values().next())
            .and_then(|d| d["statements"].as_array().cloned())
            .unwrap_or_default()
    }
}

/// The three hosts of staging, from the repository's configuration.
fn host_of(w: Worker) -> &'static str {
    match w {
        Worker::McpServer => "api.staging.praatmetjeboekhouding.nl",
        Worker::AuthPortal => "staging.praatmetjeboekhouding.nl",
        Worker::TokenCron => "cron.staging.praatmetjeboekhouding.nl",
    }
}

/// Writes a complete staging configuration for the imitated account into
/// `world.configs`: the repository's files with the placeholders filled,
/// paths made absolute and the migrations read from a copy (so a test can
/// add a broken one).
fn write_configs(tools: &Tools, dir: &Path, database_id: &str) -> Result<PathBuf> {
    let root = &tools.root;
    let configs = dir.join("wrangler");
    let migrations = dir.join("migrations");
    std::fs::create_dir_all(&migrations)?;
    for e in std::fs::read_dir(root.join("migrations"))? {
        let e = e?;
        std::fs::copy(e.path(), migrations.join(e.file_name()))?;
    }
    for c in load_all(&root.join("wrangler"))? {
        let mut v = c.root.clone();
        let obj = v.as_object_mut().context("config is an object")?;
        obj.remove("$schema");
        let main = c
            .path
            .parent()
            .context("config dir")?
            .join(obj["main"].as_str().context("main")?);
        obj.insert("main".into(), json!(main.canonicalize()?.to_string_lossy()));
        let block = &mut v["env"][ENV];
        // `get_mut`, not indexing: a mutable index inserts a null that
        // wrangler then refuses.
        let array = |block: &mut Value, key: &str| {
            block
                .get_mut(key)
                .and_then(Value::as_array_mut)
                .map(std::mem::take)
                .unwrap_or_default()
        };
        let mut dbs = array(block, "d1_databases");
        for db in &mut dbs {
            db["database_id"] = json!(database_id);
            db["migrations_dir"] = json!(migrations.to_string_lossy());
        }
        block["d1_databases"] = json!(dbs);
        let mut kvs = array(block, "kv_namespaces");
        if !kvs.is_empty() {
            for kv in &mut kvs {
                kv["id"] = json!("5f3c2d1e0a9b8c7d6e5f4a3b2c1d0e9f");
            }
            block["kv_namespaces"] = json!(kvs);
        }
        let vars = block["vars"].as_object_mut().context("vars")?;
        for (k, val) in vars.iter_mut() {
            if val.as_str().is_some_and(|s| s.contains("REPLACE_WITH_")) {
                *val = json!(match k.as_str() {
                    "EXACT_CLIENT_ID" => "deploy-test-client".to_owned(),
                    "OPERATOR_EMAILS" => "operator@example.nl".to_owned(),
                    other => format!("price_{}", other.to_ascii_lowercase()),
                });
            }
        }
        let path = configs.join(c.worker.dir()).join("wrangler.jsonc");
        std::fs::create_dir_all(path.parent().context("dir")?)?;
        std::fs::write(&path, serde_json::to_string_pretty(&v)?)?;
    }
    Ok(configs)
}

/// Starts the imitation, creates the database and queue, writes the
/// configuration and sets every secret, as DEPLOY.md's first-time steps do.
fn world<'a>(tools: &'a Tools, state: &Path) -> Result<World<'a>> {
    let dir = state.join("deploy");
    std::fs::create_dir_all(&dir)?;
    let mut config = Config::new(dir.join("cloudflare"), TOKEN, ACCOUNT);
    config.wrangler = Some(tools.node_modules.join(".bin/wrangler"));
    config.node_dir = Some(tools.node_dir.clone());
    let cf = CloudflareSandbox::start(config)?;
    let mut w = World {
        tools,
        cf,
        dir: dir.clone(),
        configs: PathBuf::new(),
        operator_token: random_hex(32),
    };
    // The database first: its id goes into the configuration.
    w.configs = write_configs(tools, &dir, "00000000-0000-4000-8000-00000000d1d1")?;
    let created = w.wrangler(
        Worker::McpServer,
        &["d1", "create", "boekhouding-staging"],
        None,
    )?;
    let id = created
        .split('"')
        .find(|s| s.len() == 36 && s.matches('-').count() == 4)
        .with_context(|| format!("no database id in: {created}"))?
        .to_owned();
    w.configs = write_configs(tools, &dir, &id)?;
    w.wrangler(
        Worker::TokenCron,
        &["queues", "create", "pmjb-token-refresh-staging"],
        None,
    )?;
    let token_key = format!("1:{}", random_hex(32));
    for worker in Worker::ALL {
        let mut secrets = serde_json::Map::new();
        for s in settings::of(worker).filter(|s| s.kind == Kind::Secret && s.need == Need::Required)
        {
            let value = match s.name {
                "TOKEN_ENCRYPTION_KEY" => token_key.clone(),
                "OPERATOR_TOKEN" => w.operator_token.clone(),
                "PORTAL_SECRET" => random_hex(32),
                other => format!("deploy-test-{}", other.to_ascii_lowercase()),
            };
            secrets.insert(s.name.to_owned(), json!(value));
        }
        let file = dir.join(format!("secrets-{}.json", worker.dir()));
        std::fs::write(&file, Value::Object(secrets).to_string())?;
        w.wrangler(worker, &["secret", "bulk", &file.to_string_lossy()], None)?;
        std::fs::remove_file(&file)?;
    }
    Ok(w)
}

/// One check on the shared account.
type Step = fn(&World<'_>) -> Result<()>;

pub fn checks(tools: &Tools, state: &Path) -> Vec<(&'static str, Result<()>)> {
    let mut out: Vec<(&'static str, Result<()>)> = Vec::new();
    out.push((
        "deploy: the dry run of the example configuration names every placeholder, the missing token and the secrets needed, and changes nothing",
        example_dry_run(tools),
    ));
    let w = match world(tools, state) {
        Ok(w) => w,
        Err(e) => {
            out.push((
                "deploy: a local Cloudflare account set up with wrangler",
                Err(e),
            ));
            return out;
        }
    };
    let steps: [(&'static str, Step); 8] = [
        (
            "deploy: a destructive migration is refused unless named, before anything changes",
            destructive_refused,
        ),
        (
            "deploy: a clean first deploy applies every migration after a bookmark and puts each Worker's checked version at 100%",
            clean_deploy,
        ),
        (
            "deploy: a placeholder id is refused by its path, nothing uploaded",
            placeholder_refused,
        ),
        (
            "deploy: a missing secret is refused by name with the command that sets it, nothing uploaded",
            missing_secret_refused,
        ),
        (
            "deploy: a second deploy moves each Worker through a 10% canary to the new version",
            second_deploy,
        ),
        (
            "deploy: a canary reporting the wrong commit returns every moved Worker to its previous version at 100%",
            canary_wrong_commit,
        ),
        (
            "deploy: a failing migration stops the deploy with the bookmark, nothing uploaded",
            failing_migration,
        ),
        (
            "rollback: on demand each Worker returns to the version before its live one, healthy",
            rollback_on_demand,
        ),
    ];
    for (name, step) in steps {
        out.push((name, step(&w)));
    }
    out
}

fn example_dry_run(tools: &Tools) -> Result<()> {
    let out = Command::new(std::env::current_exe()?)
        .args(["deploy", "--dry-run", "--env", ENV, "--allow-dirty"])
        .env_remove("CLOUDFLARE_API_TOKEN")
        .env_remove("PMJB_OPERATOR_TOKEN")
        .stdin(Stdio::null())
        .output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    expect(!out.status.success(), || {
        format!("the dry run passed: {text}")
    })?;
    for c in load_all(&tools.root.join("wrangler"))? {
        let e = c.environment(ENV).context("staging")?;
        let left = e.placeholders();
        expect(!left.is_empty(), || {
            format!("{}: no placeholder", c.path.display())
        })?;
        for p in left {
            expect(text.contains(&p), || format!("not named: {p}\n{text}"))?;
        }
    }
    for needle in [
        "CLOUDFLARE_API_TOKEN is not set",
        "PMJB_OPERATOR_TOKEN is not set",
        "STRIPE_WEBHOOK_SECRET",
        "MAIL_API_KEY",
        "Deploy plan for staging",
        "nothing was changed",
    ] {
        expect(text.contains(needle), || {
            format!("{needle:?} missing from:\n{text}")
        })?;
    }
    Ok(())
}

fn destructive_refused(w: &World<'_>) -> Result<()> {
    let before = w.live_everywhere();
    let r = w.deploy(&[])?;
    expect(!r.ok, || format!("deployed: {}", r.output))?;
    for m in REVIEWED.split(',') {
        expect(
            r.output
                .contains(&format!("migration {m}.sql is destructive")),
            || format!("{m} not named:\n{}", r.output),
        )?;
    }
    expect(r.output.contains("--allow-destructive"), || {
        r.output.clone()
    })?;
    expect(w.live_everywhere() == before, || "a Worker moved".into())?;
    let applied = w
        .migration_statements()
        .iter()
        .filter(|s| {
            s["sql"]
                .as_str()
                .is_some_and(|q| q.contains("CREATE TABLE users"))
        })
        .count();
    expect(applied == 0, || "a migration ran".into())
}

fn clean_deploy(w: &World<'_>) -> Result<()> {
    let r = w.deploy(&["--allow-destructive", REVIEWED])?;
    expect(r.ok, || format!("deploy failed:\n{}", r.output))?;
    let commit = crate::process::commit_var(&w.tools.root);
    let st = w.state();
    let db = st["d1"]
        .as_object()
        .and_then(|m| m.values().next())
        .cloned()
        .unwrap_or_default();
    expect(
        db["bookmarks"].as_array().is_some_and(|b| !b.is_empty()),
        || format!("no bookmark was taken: {db}"),
    )?;
    let bookmark = db["bookmarks"][0]["bookmark"].as_str().unwrap_or_default();
    expect(r.output.contains(bookmark), || {
        "the bookmark is not printed".into()
    })?;
    for worker in Worker::ALL {
        let live = w.live(worker);
        expect(live.len() == 1 && live[0].1 == 100, || {
            format!("{worker}: {live:?}")
        })?;
        expect(
            w.commit_of(worker, &live[0].0).as_deref() == Some(commit.as_str()),
            || format!("{worker}: live version is not of {commit}"),
        )?;
        let h = w.health(host_of(worker))?;
        expect(
            h["commit"] == commit.as_str() && h["environment"] == ENV,
            || format!("{worker}: {h}"),
        )?;
        let deployments = &st["scripts"][w.script(worker)]["deployments"];
        expect(
            deployments.as_array().is_some_and(|d| {
                d.iter()
                    .any(|x| x["versions"].as_array().is_some_and(|v| v.len() == 2))
            }),
            || format!("{worker}: no canary deployment: {deployments}"),
        )?;
    }
    let migrations = std::fs::read_dir(w.tools.root.join("migrations"))?
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".sql"))
        })
        .count();
    let h = w.health(host_of(Worker::McpServer))?;
    expect(h["database"]["migrations"] == migrations, || format!("{h}"))?;
    let rows = w.audit_rows("deployed")?;
    for worker in Worker::ALL {
        expect(
            rows.iter()
                .any(|(id, m)| *id == w.script(worker) && m["commit"] == commit.as_str()),
            || format!("no audit row of {worker}'s deploy: {rows:?}"),
        )?;
    }
    Ok(())
}

fn placeholder_refused(w: &World<'_>) -> Result<()> {
    let path = w.config(Worker::McpServer);
    let original = std::fs::read_to_string(&path)?;
    let mut v: Value = serde_json::from_str(&original)?;
    v["env"][ENV]["kv_namespaces"][0]["id"] = json!("REPLACE_WITH_STAGING_KV_ID");
    std::fs::write(&path, v.to_string())?;
    let versions = w.versions(Worker::McpServer).len();
    let r = w.deploy(&[]);
    std::fs::write(&path, original)?;
    let r = r?;
    expect(!r.ok, || format!("deployed: {}", r.output))?;
    expect(
        r.output
            .contains("env.staging.kv_namespaces[0].id = \"REPLACE_WITH_STAGING_KV_ID\""),
        || r.output.clone(),
    )?;
    expect(w.versions(Worker::McpServer).len() == versions, || {
        "uploaded".into()
    })
}

fn missing_secret_refused(w: &World<'_>) -> Result<()> {
    w.wrangler(
        Worker::TokenCron,
        &["secret", "delete", "MAIL_API_KEY"],
        None,
    )?;
    let versions = w.versions(Worker::TokenCron).len();
    let r = w.deploy(&[]);
    w.wrangler(
        Worker::TokenCron,
        &["secret", "put", "MAIL_API_KEY"],
        Some("deploy-test-mail_api_key"),
    )?;
    let r = r?;
    expect(!r.ok, || format!("deployed: {}", r.output))?;
    expect(
        r.output.contains("secret MAIL_API_KEY is missing")
            && r.output
                .contains("wrangler secret put MAIL_API_KEY -e staging"),
        || r.output.clone(),
    )?;
    // `secret delete` and `put` each make a version; the deploy none.
    let now = w.versions(Worker::TokenCron).len();
    expect(now <= versions + 1, || {
        format!("{versions} → {now} versions")
    })
}

fn second_deploy(w: &World<'_>) -> Result<()> {
    let before = w.live_everywhere();
    let r = w.deploy(&[])?;
    expect(r.ok, || format!("deploy failed:\n{}", r.output))?;
    for (worker, was) in Worker::ALL.iter().zip(before) {
        let live = w.live(*worker);
        expect(
            live.len() == 1 && live[0].1 == 100 && live[0].0 != was[0].0,
            || format!("{worker}: {was:?} → {live:?}"),
        )?;
        let deployments = w.state()["scripts"][w.script(*worker)]["deployments"].clone();
        let canary = deployments
            .as_array()
            .and_then(|d| d.iter().rev().nth(1))
            .cloned()
            .unwrap_or_default();
        let split: Vec<(String, u64)> = canary["versions"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| {
                (
                    v["version_id"].as_str().unwrap_or_default().to_owned(),
                    v["percentage"].as_f64().unwrap_or(0.0).round() as u64,
                )
            })
            .collect();
        expect(
            split.contains(&(was[0].0.clone(), 90)) && split.contains(&(live[0].0.clone(), 10)),
            || format!("{worker}: the canary was {split:?}"),
        )?;
    }
    Ok(())
}

fn canary_wrong_commit(w: &World<'_>) -> Result<()> {
    let before = w.live_everywhere();
    let fault = json!({"script": w.script(Worker::AuthPortal),
                       "next_upload_plain_text": {"GIT_COMMIT": "0000000"}})
    .to_string();
    let r = http_request(
        w.cf.port(),
        "POST",
        "/__admin/faults",
        &[("Content-Type", "application/json")],
        &fault,
    )?;
    expect(r.status == 200, || {
        format!("fault: {} {}", r.status, r.body)
    })?;
    let r = w.deploy(&[])?;
    let _ = http_request(w.cf.port(), "DELETE", "/__admin/faults", &[], "");
    expect(!r.ok, || format!("deployed: {}", r.output))?;
    expect(r.output.contains("reports commit 0000000"), || {
        r.output.clone()
    })?;
    // The mcp-server had already moved: it went back too.
    expect(w.live_everywhere() == before, || {
        format!("{before:?} → {:?}\n{}", w.live_everywhere(), r.output)
    })?;
    expect(r.output.contains("returned to"), || r.output.clone())?;
    let commit = crate::process::commit_var(&w.tools.root);
    let h = w.health(host_of(Worker::AuthPortal))?;
    expect(h["commit"] == commit.as_str(), || format!("{h}"))?;
    let rows = w.audit_rows("rolled_back")?;
    for worker in [Worker::McpServer, Worker::AuthPortal] {
        expect(
            rows.iter()
                .any(|(id, m)| *id == w.script(worker) && m["automatic"] == true),
            || format!("no audit row of {worker}'s return: {rows:?}"),
        )?;
    }
    Ok(())
}

fn failing_migration(w: &World<'_>) -> Result<()> {
    let dir = w.dir.join("migrations");
    let next = std::fs::read_dir(&dir)?
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".sql"))
        })
        .count()
        + 1;
    let name = format!("{next:04}_broken.sql");
    std::fs::write(
        dir.join(&name),
        "CREATE TABLE deploy_probe (id INTEGER PRIMARY KEY);\nINSERT INTO no_such_table VALUES (1);\n",
    )?;
    crate::migrations::pin_checksums(&dir)?;
    let before = w.live_everywhere();
    let counts: Vec<usize> = Worker::ALL.iter().map(|x| w.versions(*x).len()).collect();
    let r = w.deploy(&[]);
    std::fs::remove_file(dir.join(&name))?;
    crate::migrations::pin_checksums(&dir)?;
    let r = r?;
    expect(!r.ok, || format!("deployed: {}", r.output))?;
    expect(
        r.output.contains("DEPLOY FAILED while applying migrations")
            && r.output.contains("time-travel restore"),
        || r.output.clone(),
    )?;
    expect(w.live_everywhere() == before, || "a Worker moved".into())?;
    let now: Vec<usize> = Worker::ALL.iter().map(|x| w.versions(*x).len()).collect();
    expect(now == counts, || format!("uploaded: {counts:?} → {now:?}"))?;
    // The failed file left nothing behind.
    let st = w.state();
    let probe = st["d1"]
        .as_object()
        .and_then(|m| m.values().next())
        .map(|d| d["statements"].to_string())
        .unwrap_or_default();
    expect(probe.contains("no_such_table"), || {
        "the migration never ran".into()
    })
}

fn rollback_on_demand(w: &World<'_>) -> Result<()> {
    let live = w.live_everywhere();
    let dir = w.configs.to_string_lossy().into_owned();
    let r = w.xtask(&["rollback", "--env", ENV, "--config-dir", &dir])?;
    expect(r.ok, || format!("rollback failed:\n{}", r.output))?;
    for (worker, was) in Worker::ALL.iter().zip(live) {
        let now = w.live(*worker);
        expect(
            now.len() == 1 && now[0].1 == 100 && now[0].0 != was[0].0,
            || format!("{worker}: {was:?} → {now:?}"),
        )?;
        let versions = w.versions(*worker);
        let pos = |id: &str| versions.iter().position(|v| v["id"] == id);
        expect(pos(&now[0].0) < pos(&was[0].0), || {
            format!("{worker}: not an earlier version")
        })?;
        w.health(host_of(*worker))?;
    }
    let rows = w.audit_rows("rolled_back")?;
    expect(
        rows.iter().filter(|(_, m)| m["automatic"] == false).count() == 3,
        || format!("the rollback's audit rows: {rows:?}"),
    )
}
