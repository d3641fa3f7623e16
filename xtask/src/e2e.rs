//! End-to-end runs in workerd: the smoke suite of `cargo xtask test`,
//! `cargo xtask dev`, and `cargo xtask bench`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::build::{self, WORKERS};
use crate::process::{
    self, DevOptions, DevServer, apply_migrations_local, d1_query, free_port, http_get,
};
use crate::tools::{self, Tools};
use crate::{Options, project_root};

const READY_TIMEOUT: Duration = Duration::from_secs(90);

fn migration_count(root: &Path) -> Result<u64> {
    Ok(std::fs::read_dir(root.join("migrations"))?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".sql"))
        .count() as u64)
}

/// A fresh state directory (local D1, KV, logs) for one run.
fn fresh_state(root: &Path, name: &str) -> Result<PathBuf> {
    let dir = root.join(".state").join(name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Collects named checks and prints the closing "N passed, M failed" line.
#[derive(Default)]
struct Suite {
    passed: u32,
    failed: Vec<String>,
}

impl Suite {
    fn check(&mut self, name: &str, result: Result<()>) {
        match result {
            Ok(()) => {
                println!("e2e {name} ... ok");
                self.passed += 1;
            }
            Err(e) => {
                println!("e2e {name} ... FAILED\n    {e:#}");
                self.failed.push(name.to_owned());
            }
        }
    }

    fn finish(self) -> Result<()> {
        println!("\n{} passed, {} failed", self.passed, self.failed.len());
        if self.failed.is_empty() {
            Ok(())
        } else {
            bail!("end-to-end failures: {}", self.failed.join(", "))
        }
    }
}

fn expect(cond: bool, msg: impl FnOnce() -> String) -> Result<()> {
    if cond { Ok(()) } else { bail!(msg()) }
}

fn check_health(server: &DevServer, migrations: u64, commit: &str) -> Result<()> {
    let reply = http_get(server.port, "/health")?;
    expect(reply.status == 200, || {
        format!("status {} body {}", reply.status, reply.body)
    })?;
    let json = reply.json()?;
    expect(json["service"] == server.name.as_str(), || {
        format!("service in {json}")
    })?;
    expect(json["status"] == "ok", || format!("status in {json}"))?;
    expect(json["version"] == env!("CARGO_PKG_VERSION"), || {
        format!("version in {json}")
    })?;
    expect(json["commit"] == commit, || format!("commit in {json}"))?;
    expect(json["database"]["reachable"] == true, || {
        format!("database in {json}")
    })?;
    expect(json["database"]["migrations"] == migrations, || {
        format!("expected {migrations} migrations in {json}")
    })?;
    expect(reply.header("cache-control") == Some("no-store"), || {
        "no Cache-Control: no-store".into()
    })
}

/// A copy of a Worker's config without its D1 binding, to prove `/health`
/// answers 503 when the database is unreachable, and without the demo
/// limiter of its top level, to prove the demo then fails closed. It lives in the run's
/// state directory (a file beside the real configs would make running
/// `wrangler dev` sessions reload), with its paths made absolute.
fn config_without_db(tools: &Tools, state: &Path) -> Result<PathBuf> {
    let src = WORKERS[0].config(&tools.root);
    let text = std::fs::read_to_string(&src)?;
    let start = text
        .find("\"d1_databases\"")
        .context("no d1_databases in config")?;
    let end = start
        + text[start..]
            .find(']')
            .context("unterminated d1_databases")?
        + 1;
    let root = tools.root.display().to_string();
    let text = format!("{}\"d1_databases\": []{}", &text[..start], &text[end..]);
    // Without the demo limiter too: the demo must then refuse (503).
    let start = text
        .find("\"ratelimits\"")
        .context("no ratelimits in config")?;
    let end = start + text[start..].find(']').context("unterminated ratelimits")? + 1;
    let patched = format!("{}\"ratelimits\": []{}", &text[..start], &text[end..])
        .replace(
            "\"name\": \"pmjb-mcp-server\"",
            "\"name\": \"pmjb-mcp-server-nodb\"",
        )
        .replace("\"../../", &format!("\"{root}/"))
        .replace(
            "\"$schema\": \"../node_modules/wrangler/config-schema.json\",",
            "",
        );
    let dest = state.join("mcp-server-nodb.jsonc");
    std::fs::write(&dest, patched)?;
    Ok(dest)
}

pub fn run_suite(tools: &Tools) -> Result<()> {
    let root = project_root();
    let state = fresh_state(&root, &format!("e2e-{}", std::process::id()))?;
    let migrations = migration_count(&root)?;
    let commit = process::commit_var(&root);
    // The deploy group needs none of the local Workers: alone, it runs
    // without starting them.
    if std::env::var("PMJB_E2E_ONLY").is_ok_and(|g| g == "deploy") {
        let mut suite = Suite::default();
        for (name, result) in crate::e2e_deploy::checks(tools, &state) {
            suite.check(name, result);
        }
        return suite.finish();
    }

    let t = Instant::now();
    apply_migrations_local(tools, &state)?;
    println!(
        "migrations applied to a fresh local D1 in {:.1?}",
        t.elapsed()
    );
    let seeded = crate::e2e_mcp::seed(tools, &state)?;

    // A local Exact (the sandbox) and an account connected to it through
    // the real OAuth flow, written into the local D1 by core's onboarding.
    // Ports first: Exact must send the browser back to the portal's own.
    let ports = WORKERS
        .iter()
        .map(|_| free_port())
        .collect::<Result<Vec<u16>>>()?;
    let portal_port = WORKERS
        .iter()
        .position(|w| w.name == "auth-portal")
        .and_then(|i| ports.get(i))
        .copied()
        .unwrap_or(8788);
    let exact = crate::demo::LocalExact::start(
        &state,
        exact_sandbox::SandboxConfig {
            stripe: crate::demo::local_stripe(portal_port),
            ..exact_sandbox::SandboxConfig::default()
        },
        format!("http://127.0.0.1:{portal_port}/callback"),
        boekhouding_core::plan::Plan::Pro,
        None,
    )?;
    let (sandbox, account) = (&exact.sandbox, &exact.account);
    // A second customer (the sandbox's `other` login), whose connection the
    // token-cron checks break and mend without touching the first.
    let other = crate::demo::provision(
        &crate::demo::local_d1_file(&state)?,
        &exact.secrets.token_key,
        &exact.app(),
        &crate::demo::sandbox_login(
            &exact_sandbox::transport::BlockingTransport::default(),
            &exact.app(),
            "other",
            "other",
        )?,
        boekhouding_core::plan::Plan::Pro,
    )?;
    let mut exact_vars = vec![("GIT_COMMIT", commit.as_str())];
    exact_vars.extend(exact.vars());
    // Short, so the cron's timeout check does not wait long.
    exact_vars.push(("HTTP_TIMEOUT_MS", "1500"));
    // One at a time: three workerd processes opening the same state
    // directory at once can fail with SQLITE_BUSY.
    let t = Instant::now();
    let portal_vars = portal_vars(&ports);
    exact_vars.extend(portal_vars.iter().map(|(k, v)| (*k, v.as_str())));
    // The portal fetches Client ID Metadata Documents over HTTPS only; the
    // OAuth checks serve theirs with a certificate of this throw-away CA,
    // which the portal's workerd trusts through NODE_EXTRA_CA_CERTS.
    let tls = crate::e2e_oauth::make_ca(tools, &state.join("tls"))?;
    let ca = tls.join("ca.pem").to_string_lossy().into_owned();
    let portal_env = [("NODE_EXTRA_CA_CERTS", ca.as_str())];
    let mut servers = Vec::new();
    for (w, port) in WORKERS.iter().zip(&ports) {
        servers.push(DevServer::start_ready(
            tools,
            w.name,
            &w.config(&root),
            &state,
            *port,
            &DevOptions {
                vars: &exact_vars,
                env_file: Some(&exact.secrets.env_file),
                own_group: true,
                env: if w.name == "auth-portal" {
                    &portal_env
                } else {
                    &[]
                },
            },
            READY_TIMEOUT,
        )?);
    }
    println!("three Workers ready in workerd in {:.1?}", t.elapsed());
    let nodb_config = config_without_db(tools, &state)?;
    let mut nodb = DevServer::start(
        tools,
        "mcp-server",
        &nodb_config,
        &state.join("nodb"),
        free_port()?,
        &DevOptions {
            own_group: true,
            ..DevOptions::default()
        },
    );

    let mut suite = Suite::default();
    for s in &servers {
        suite.check(
            &format!(
                "{} /health answers 200 with its identity and the D1 schema",
                s.name
            ),
            check_health(s, migrations, &commit),
        );
        if s.name == "auth-portal" {
            suite.check(
                "auth-portal unknown route answers a 404 page",
                (|| {
                    let r = http_get(s.port, "/no/such/route")?;
                    expect(r.status == 404, || format!("status {}", r.status))?;
                    expect(
                        r.header("content-type")
                            .is_some_and(|c| c.starts_with("text/html")),
                        || format!("{:?}", r.headers),
                    )
                })(),
            );
            continue;
        }
        suite.check(
            &format!("{} unknown route answers 404 JSON", s.name),
            (|| {
                let r = http_get(s.port, "/no/such/route")?;
                expect(r.status == 404, || format!("status {}", r.status))?;
                expect(r.json()?["error"] == "not_found", || r.body.clone())
            })(),
        );
    }
    if let Some(portal) = servers.iter().find(|s| s.name == "auth-portal") {
        suite.check(
            "auth-portal: every public page in both languages, with its CSP; /status sees the three Workers working",
            public_pages_check(portal.port),
        );
    }
    suite.check(
        "health answers 503 when D1 is unreachable",
        (|| {
            let server = nodb.as_mut().map_err(|e| anyhow::anyhow!("{e:#}"))?;
            server.wait_ready("/health", READY_TIMEOUT)?;
            let r = http_get(server.port, "/health")?;
            expect(r.status == 503, || {
                format!("status {} body {}", r.status, r.body)
            })?;
            let json = r.json()?;
            expect(json["database"]["reachable"] == false, || json.to_string())?;
            expect(json["status"] == "unavailable", || json.to_string())
        })(),
    );
    suite.check(
        "mcp demo: without the demo limiter binding, demo requests are refused with 503",
        (|| {
            let server = nodb.as_mut().map_err(|e| anyhow::anyhow!("{e:#}"))?;
            crate::e2e_mcp::demo_without_limiter_check(server.port)
        })(),
    );
    suite.check(
        "token-cron scheduled handler runs and records its run in D1",
        (|| {
            let cron = servers
                .iter()
                .find(|s| s.name == "token-cron")
                .context("no token-cron")?;
            let before = d1_query(tools, &state, "SELECT COUNT(*) AS n FROM cron_runs")?;
            expect(before.first().map(|r| r["n"] == 0).unwrap_or(false), || {
                format!("before: {before:?}")
            })?;
            let r = http_get(cron.port, "/cdn-cgi/handler/scheduled?cron=*/5+*+*+*+*")?;
            expect(r.status == 200, || {
                format!("trigger status {} body {}", r.status, r.body)
            })?;
            let rows = d1_query(
                tools,
                &state,
                "SELECT cron, outcome, finished_at IS NOT NULL AS finished FROM cron_runs",
            )?;
            expect(rows.len() == 1, || format!("rows: {rows:?}"))?;
            expect(rows[0]["cron"] == "*/5 * * * *", || {
                format!("cron: {rows:?}")
            })?;
            expect(
                rows[0]["outcome"] == "ok" && rows[0]["finished"] == 1,
                || format!("run: {rows:?}"),
            )
        })(),
    );
    suite.check(
        "observability: every response of every Worker carries its own X-Request-Id, and workerd prints one JSON line per request with that id (route names, never raw paths)",
        crate::e2e_obs::request_id_check(&servers),
    );
    suite.check(
        "observability: the scheduled run printed one JSON line with its cron_runs id and counters",
        servers
            .iter()
            .find(|s| s.name == "token-cron")
            .context("no token-cron")
            .and_then(|cron| crate::e2e_obs::cron_run_log_check(tools, &state, cron)),
    );
    suite.check(
        "observability: /health/deep answers 401 without (or with a wrong) operator token and 200 with it on every Worker; its expected migrations are those applied",
        crate::e2e_obs::deep_health_check(tools, &state, &servers),
    );

    let only = std::env::var("PMJB_E2E_ONLY").unwrap_or_default();
    if let Some(mcp) = servers
        .iter()
        .find(|s| s.name == "mcp-server")
        .filter(|_| only.is_empty() || only.contains("mcp"))
    {
        for (name, result) in crate::e2e_mcp::checks(tools, &state, mcp.port, &seeded) {
            suite.check(name, result);
        }
        for (name, result) in crate::e2e_mcp::exact_checks(mcp.port, account, sandbox) {
            suite.check(name, result);
        }
        suite.check(
            "mcp: the stateless 2026-07-28 revision over HTTP (tools, prompts, resources)",
            crate::e2e_mcp::modern_era_check(mcp.port, &account.api_key),
        );
        suite.check(
            "mcp: the official conformance suite passes: its generic scenarios, and server-stateless and caching at 2026-07-28 (diagnostic-tool checks not applicable)",
            crate::e2e_mcp::conformance_check(tools, mcp.port, &account.api_key),
        );
        suite.check(
            "mcp: the official Python SDK calls every tool, gets every prompt in both languages, reads every resource and completes arguments",
            crate::e2e_mcp::sdk_check(tools, mcp.port, &account.api_key, None),
        );
        suite.check(
            "mcp demo: every demo key opens its own company (as a bearer key and in the URL), unmetered; an unknown one is refused",
            crate::e2e_mcp::demo_keys_check(mcp.port),
        );
        suite.check(
            "mcp demo: the stateless 2026-07-28 revision on a demo key",
            crate::e2e_mcp::modern_era_check(mcp.port, exact_sandbox::demo::KEYS[0].0),
        );
        suite.check(
            "mcp demo: the official Python SDK on a demo key gets every tool, prompt and resource, each tool answer equal to the sandbox's",
            crate::e2e_mcp::sdk_check(
                tools,
                mcp.port,
                exact_sandbox::demo::KEYS[0].0,
                Some(&account.api_key),
            ),
        );
        suite.check(
            "mcp: bodies are limited before they are read (a declared 50 MB and a chunked body without a length: 413; a 50 MB upload cut off), the isolate keeps answering, every answer says no-store and nosniff",
            crate::e2e_mcp::body_limit_check(mcp.port),
        );
        // Before the demo limit check, which spends this address's demo budget.
        suite.check(
            "observability: a demo and a customer tools/call each log one line with the response's request id, the tool, the caller kind and a user tag (never the key); the usage row carries the same id",
            crate::e2e_obs::tool_call_log_check(tools, &state, mcp, &account.api_key),
        );
        suite.check(
            "mcp demo: one address gets a bounded number of demo requests a minute, then 429 with Retry-After",
            crate::e2e_mcp::demo_limit_check(mcp.port),
        );
    }
    if only.is_empty() || only.contains("portal") {
        for (name, result) in crate::e2e_browser::checks(tools, sandbox) {
            suite.check(name, result);
        }
        let port_of = |name: &str| servers.iter().find(|s| s.name == name).map(|s| s.port);
        if let (Some(portal), Some(mcp)) = (port_of("auth-portal"), port_of("mcp-server")) {
            for (name, result) in
                crate::e2e_browser::portal_checks(tools, &state, sandbox, portal, mcp)
            {
                suite.check(name, result);
            }
        }
    }
    if only.is_empty() || only.contains("apps") {
        let port_of = |name: &str| servers.iter().find(|s| s.name == name).map(|s| s.port);
        if let Some(mcp) = port_of("mcp-server") {
            for (name, result) in crate::e2e_apps::checks(tools, mcp) {
                suite.check(name, result);
            }
        }
    }
    if only.is_empty() || only.contains("billing") {
        let port_of = |name: &str| servers.iter().find(|s| s.name == name).map(|s| s.port);
        if let (Some(portal), Some(mcp), Some(cron)) = (
            port_of("auth-portal"),
            port_of("mcp-server"),
            port_of("token-cron"),
        ) {
            for (name, result) in
                crate::e2e_browser::billing_checks(tools, &state, sandbox, portal, mcp, cron)
            {
                suite.check(name, result);
            }
        }
    }
    if only.is_empty() || only.contains("oauth") {
        let port_of = |name: &str| servers.iter().find(|s| s.name == name).map(|s| s.port);
        if let (Some(portal), Some(mcp)) = (port_of("auth-portal"), port_of("mcp-server")) {
            let world = crate::e2e_oauth::OauthWorld {
                state: &state,
                tls: &tls,
                sandbox,
                account,
                portal_port: portal,
                mcp_port: mcp,
                vars: &exact_vars,
                env_file: &exact.secrets.env_file,
            };
            for (name, result) in crate::e2e_oauth::checks(tools, &world) {
                suite.check(&name, result);
            }
        }
    }
    if only.is_empty() || only.contains("deploy") {
        for (name, result) in crate::e2e_deploy::checks(tools, &state) {
            suite.check(name, result);
        }
    }
    if only.is_empty() || only.contains("cron") {
        cron_checks(
            tools,
            &mut suite,
            &mut servers,
            &state,
            &exact,
            &other,
            &exact_vars,
        );
    }
    drop(servers);
    drop(nodb);
    let result = suite.finish();
    if result.is_ok() {
        let _ = std::fs::remove_dir_all(&state);
    } else {
        println!("logs kept in {}", state.display());
    }
    result
}

/// The token-cron checks, in an order where each leaves what the next
/// needs: the keep-alive check moves the sandbox's clock 40 days ahead, so
/// it runs last but for the alert check, which times its runs after it.
fn cron_checks(
    tools: &Tools,
    suite: &mut Suite,
    servers: &mut [DevServer],
    state: &Path,
    exact: &crate::demo::LocalExact,
    other: &crate::demo::Account,
    vars: &[(&str, &str)],
) {
    use crate::e2e_cron as c;
    let root = project_root();
    let Some(mcp_port) = servers
        .iter()
        .find(|s| s.name == "mcp-server")
        .map(|s| s.port)
    else {
        suite.check("token-cron checks", Err(anyhow::anyhow!("no mcp-server")));
        return;
    };
    let Some(cron) = servers.iter_mut().find(|s| s.name == "token-cron") else {
        suite.check("token-cron checks", Err(anyhow::anyhow!("no token-cron")));
        return;
    };
    let d1 = match crate::demo::local_d1_file(state) {
        Ok(d) => d,
        Err(e) => {
            suite.check("token-cron checks", Err(e));
            return;
        }
    };
    let config = WORKERS
        .iter()
        .find(|w| w.name == "token-cron")
        .map(|w| w.config(&root))
        .unwrap_or_default();
    let world = |port| c::CronWorld {
        d1: d1.clone(),
        sandbox: &exact.sandbox,
        cron_port: port,
        mcp_port,
        demo: &exact.account,
        other,
    };
    let w = world(cron.port);
    suite.check(
        "token-cron: a tick and 50 concurrent tool calls needing one refresh cause exactly one refresh at Exact",
        c::race_check(&w),
    );
    suite.check(
        "mcp-server: a refresh whose client disconnects while Exact answers is still stored (no reuse)",
        c::disconnect_check(&w),
    );
    suite.check(
        "token-cron: 503, timeout and 429 at Exact give retry_pending on the 5/15/60-minute schedule, then recovery",
        c::backoff_check(&w),
    );
    suite.check(
        "token-cron: D1 failing right after Exact rotated loses no refresh token",
        c::lost_store_check(&w),
    );
    suite.check(
        "token-cron: invalid_grant gives refresh_failed and exactly one mail with a reconnect link",
        c::invalid_grant_check(&w),
    );
    let env_file = exact.secrets.env_file.clone();
    let mut queue_vars = vars.to_vec();
    queue_vars.push(("REFRESH_MODE", "queue"));
    let opts = |v| DevOptions {
        vars: v,
        env_file: Some(&env_file),
        own_group: true,
        ..DevOptions::default()
    };
    suite.check(
        "token-cron: fan-out mode enqueues due connections and the queue consumer refreshes them",
        c::restart_cron(tools, cron, &config, state, &opts(&queue_vars))
            .and_then(|()| c::queue_check(&world(cron.port))),
    );
    suite.check(
        "token-cron: a quiet connection is kept alive past 30 days (40 simulated days)",
        c::restart_cron(tools, cron, &config, state, &opts(vars))
            .and_then(|()| c::keep_alive_check(&world(cron.port))),
    );
    suite.check(
        "token-cron: a server error rate opens one incident with one operator mail, and its resolution one more",
        c::alert_check(&world(cron.port)),
    );
}

/// Every public page of the portal over HTTP in workerd.
fn public_pages_check(port: u16) -> Result<()> {
    use boekhouding_portal::i18n::{Lang, Page};
    for page in Page::ALL {
        for lang in [Lang::Nl, Lang::En] {
            let path = page.path(lang);
            let r = http_get(port, path)?;
            expect(r.status == 200, || format!("{path}: {}", r.status))?;
            expect(
                r.header("content-security-policy").is_some_and(|c| {
                    c.contains("default-src 'none'") && !c.contains("unsafe-inline")
                }),
                || format!("{path}: {:?}", r.headers),
            )?;
            expect(
                r.body.contains(&format!("<html lang=\"{}\">", lang.code())),
                || format!("{path}: {}", r.body),
            )?;
            expect(
                r.header("content-type") == Some("text/html; charset=utf-8"),
                || format!("{path}: {:?}", r.headers),
            )?;
        }
    }
    let status = http_get(port, "/en/status")?;
    expect(
        status.body.matches("class=\"ok\"").count() == 3 && status.header("x-status").is_none(),
        || format!("status page: {}", status.body),
    )?;
    let css = http_get(port, "/static/site.css")?;
    expect(css.status == 200, || format!("css: {}", css.status))
}

/// What the portal needs to know of the other Workers when they run on
/// `ports` (in `WORKERS` order): the MCP origin for set-up snippets and
/// each Worker's `/health` for the status page.
fn portal_vars(ports: &[u16]) -> Vec<(&'static str, String)> {
    let url = |name: &str| {
        WORKERS
            .iter()
            .position(|w| w.name == name)
            .and_then(|i| ports.get(i))
            .map(|p| format!("http://127.0.0.1:{p}"))
            .unwrap_or_default()
    };
    let health = WORKERS
        .iter()
        .map(|w| format!("{}={}/health", w.name, url(w.name)))
        .collect::<Vec<_>>()
        .join(",");
    vec![
        ("MCP_URL", url("mcp-server")),
        ("HEALTH_URLS", health),
        // Links in tool errors and mails ("reconnect", "upgrade") lead to
        // the portal, not to the Worker that wrote them.
        ("AUTH_PORTAL_URL", url("auth-portal")),
        // Locally the OAuth clients' metadata documents are served from
        // loopback addresses, which the portal refuses in production.
        ("OAUTH_ALLOW_PRIVATE_CLIENT_HOSTS", "1".into()),
    ]
}

pub fn dev(opts: &Options) -> Result<()> {
    let tools = tools::setup()?;
    let root = project_root();
    let report = build::build_all(&tools, opts.profile())?;
    build::print_report(&report);
    let state = root.join(".state/dev");
    // A fresh start: no D1 rows, usage, keys or secrets from earlier runs.
    if opts.fresh && state.exists() {
        std::fs::remove_dir_all(&state)
            .with_context(|| format!("removing {} for --fresh", state.display()))?;
        println!("--fresh: removed {}", state.display());
    }
    std::fs::create_dir_all(&state)?;
    apply_migrations_local(&tools, &state)?;
    let base = opts.port.unwrap_or(8787);
    let plan = opts.dev_plan();

    // The bundled Exact Online sandbox, or another Exact-compatible server
    // with --exact-url; either way the demo user connects through the real
    // OAuth flow (tokens sealed as in production).
    let commit = process::commit_var(&root);
    let mut vars: Vec<(String, String)> = vec![("GIT_COMMIT".into(), commit)];
    let local;
    let (account, env_file, exact_base) = match &opts.exact_url {
        Some(url) => {
            let app = boekhouding_core::exact::oauth::ExactApp {
                base_url: url.trim_end_matches('/').to_owned(),
                client_id: opts
                    .exact_client_id
                    .clone()
                    .context("--exact-url needs --exact-client-id")?,
                client_secret: boekhouding_core::crypto::Secret::new(
                    opts.exact_client_secret
                        .clone()
                        .context("--exact-url needs --exact-client-secret")?,
                ),
                redirect_uri: opts
                    .exact_redirect_uri
                    .clone()
                    .unwrap_or_else(|| "http://127.0.0.1:8790/callback".into()),
            };
            let account = crate::demo::connect_external(&state, &app, plan)?;
            vars.push(("EXACT_CLIENT_ID".into(), app.client_id.clone()));
            vars.push(("EXACT_BASE_URL".into(), app.base_url.clone()));
            vars.push(("EXACT_REDIRECT_URI".into(), app.redirect_uri.clone()));
            local = None;
            (account, state.join("secrets.env"), app.base_url)
        }
        None => {
            let exact = crate::demo::LocalExact::start(
                &state,
                exact_sandbox::SandboxConfig {
                    bind: format!("127.0.0.1:{}", opts.sandbox_port.unwrap_or(9700)),
                    stripe: crate::demo::local_stripe(base + 1),
                    ..exact_sandbox::SandboxConfig::default()
                },
                format!("http://127.0.0.1:{}/callback", base + 1),
                plan,
                Some(&state.join("api-key")),
            )?;
            vars.extend(
                exact
                    .vars()
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
            );
            let out = (
                exact.account.clone(),
                exact.secrets.env_file.clone(),
                exact.sandbox.base_url().to_owned(),
            );
            local = Some(exact);
            out
        }
    };
    let ports: Vec<u16> = (0..WORKERS.len()).map(|i| base + i as u16).collect();
    vars.extend(
        portal_vars(&ports)
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v)),
    );
    let var_refs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    // As in the tests: a throw-away CA the portal trusts, for serving
    // Client ID Metadata Documents over HTTPS on loopback while developing.
    let tls = crate::e2e_oauth::make_ca(&tools, &state.join("tls"))?;
    let ca = tls.join("ca.pem").to_string_lossy().into_owned();
    let portal_env = [("NODE_EXTRA_CA_CERTS", ca.as_str())];
    let mut servers = Vec::new();
    for (i, w) in WORKERS.iter().enumerate() {
        // Same process group as xtask: Ctrl-C reaches every child.
        // One at a time (see run_suite).
        servers.push(DevServer::start_ready(
            &tools,
            w.name,
            &w.config(&root),
            &state,
            base + i as u16,
            &DevOptions {
                vars: &var_refs,
                env_file: Some(&env_file),
                own_group: false,
                env: if w.name == "auth-portal" {
                    &portal_env
                } else {
                    &[]
                },
            },
            READY_TIMEOUT,
        )?);
    }
    let mcp_url = format!("http://127.0.0.1:{base}/mcp");
    let key = &account.api_key;
    println!(
        "\nPraat met je Boekhouding runs locally (state in {}):",
        state.display()
    );
    for s in &servers {
        println!(
            "  {:<12} {}   (health: {}/health, log: {})",
            s.name,
            s.base_url(),
            s.base_url(),
            s.log.display()
        );
    }
    // The token stays in its file; the command reads it from there.
    println!(
        "  deep health: curl -H \"Authorization: Bearer $(cat {})\" {}/health/deep",
        state.join(crate::demo::OPERATOR_TOKEN_FILE).display(),
        servers.first().map(|s| s.base_url()).unwrap_or_default()
    );
    match &local {
        Some(_) => println!(
            "  {:<12} {exact_base}   (login demo/demo; admin API at /__admin/requests)",
            "exact-sandbox"
        ),
        None => println!("  {:<12} {exact_base}", "exact"),
    }
    if let Some(exact) = &local {
        print_stripe(&exact.sandbox);
    }
    println!(
        "\nDemo user {} is on the {} plan and connected to Exact (administrations {:?}).",
        account.email,
        plan.as_str(),
        account.divisions
    );
    println!("MCP endpoint: {mcp_url}");
    println!(
        "Test CA:      {}  (the portal trusts it: serve client metadata documents over HTTPS with {} and {})",
        tls.join("ca.pem").display(),
        tls.join("server.pem").display(),
        tls.join("server-key.pem").display()
    );
    println!("API key:      {key}");
    println!(
        "Portal:       http://127.0.0.1:{}/  (sign in with Exact: the sandbox login `nieuw`/`nieuw` (or `other`/`other`) starts as a new customer; `demo`/`demo` is the user above)",
        base + 1
    );
    let demo_keys: Vec<&str> = exact_sandbox::demo::KEYS.iter().map(|(k, _)| *k).collect();
    println!(
        "Demo keys (books generated in the Worker, no Exact, not metered): {}",
        demo_keys.join(", ")
    );
    for snippet in boekhouding_core::setup::snippets(&mcp_url, key) {
        let place = match snippet.place {
            boekhouding_core::setup::Place::Terminal => String::new(),
            boekhouding_core::setup::Place::ConfigFile(path) => format!(" ({path})"),
            boekhouding_core::setup::Place::ConnectorUrl => {
                " (connector URL; signs in with OAuth)".into()
            }
        };
        println!(
            "\n{}{place}:\n  {}",
            snippet.assistant.name(),
            snippet.text.replace('\n', "\n  ")
        );
    }
    println!("\nPress Ctrl-C to stop everything.");
    loop {
        std::thread::sleep(Duration::from_millis(500));
        if let Some(i) = servers.iter_mut().position(|s| s.has_exited()) {
            let name = servers[i].name.clone();
            drop(servers);
            bail!("{name} stopped; stopped the others too");
        }
    }
}

pub fn bench() -> Result<()> {
    let tools = tools::setup()?;
    let root = project_root();
    let report = build::build_all(&tools, build::Profile::Release)?;
    build::print_report(&report);
    let core = crate::bench::core_throughput()?;
    crate::bench::print(&core);
    let mcp = crate::bench_mcp::run(&tools, &root, &report)?;
    crate::bench_mcp::print(&mcp);
    let cron = crate::bench_cron::run(&tools, &root)?;
    crate::bench_cron::print(&cron);
    let out = root.join("bench-results");
    std::fs::create_dir_all(&out)?;
    let json = serde_json::json!({
        "bundles": report,
        "core": core,
        "mcp_tools_call": mcp,
        "token_cron": cron,
    });
    std::fs::write(out.join("bench.json"), serde_json::to_string_pretty(&json)?)?;
    println!("written to bench-results/bench.json");
    Ok(())
}

/// How to use the local Stripe that `dev` runs inside the sandbox.
fn print_stripe(sandbox: &exact_sandbox::Sandbox) {
    let stripe = sandbox.stripe_config();
    let base = sandbox.base_url();
    println!(
        "  {:<12} {base}/v1/…   (key {}; webhooks to {} signed with {})",
        "stripe",
        stripe.secret_key,
        stripe.webhook_url.as_deref().unwrap_or("nowhere"),
        stripe.webhook_secrets.join(" and ")
    );
    for p in &stripe.prices {
        println!(
            "  {:<12} price {} = {} {}.{:02} {} a month",
            "",
            p.id,
            p.product_name,
            p.unit_amount / 100,
            p.unit_amount % 100,
            p.currency.to_ascii_uppercase()
        );
    }
    println!(
        "  {:<12} test cards: {} pays, {} is declined, {} pays now and fails at renewal (past_due, then canceled)",
        "",
        exact_sandbox::stripe::CARD_OK,
        exact_sandbox::stripe::CARD_DECLINED,
        exact_sandbox::stripe::CARD_FAILS_LATER
    );
    println!(
        "  {:<12} events: curl {base}/__admin/stripe/events; pass period ends: curl -d '{{\"advance_seconds\":2678400}}' {base}/__admin/clock",
        ""
    );
}
