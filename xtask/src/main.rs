//! `cargo xtask <command>`: the project's only build, test, run and deploy
//! entry point. Each command first makes sure the pinned tools are present
//! (see `tools.rs`), so a fresh clone needs nothing installed by hand.

mod bench;
mod bench_cron;
mod bench_mcp;
mod bench_peer;
mod build;
mod config;
mod demo;
mod deploy;
mod docs;
mod e2e;
mod e2e_apps;
mod e2e_browser;
mod e2e_cron;
mod e2e_deploy;
mod e2e_mcp;
mod e2e_oauth;
mod e2e_obs;
mod keys;
mod migrations;
mod process;
mod tidy;
mod tools;

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use boekhouding_core::plan::{Plan, UnknownPlan};

const USAGE: &str = "\
usage: cargo xtask <command> [options]

commands:
  setup                 install the pinned toolchain into .tools/ and wrangler/node_modules/
  dev [--port N] [--sandbox-port N] [--plan free|starter|pro|enterprise] [--fresh]
                        build, migrate a local D1, start the Exact sandbox, connect a demo
                        user through its OAuth flow, and run the three Workers in workerd;
                        the demo user is on --plan (enterprise by default, so local use never
                        reaches a monthly limit); --fresh starts from an empty .state/dev;
                        --exact-url URL --exact-client-id ID --exact-client-secret S
                        [--exact-redirect-uri http://127.0.0.1:8790/callback] connects to
                        another Exact-compatible server (e.g. a real Exact test company) instead
  test                  fmt, clippy, native tests, wasm build, end-to-end tests in workerd
  e2e                   only the end-to-end tests, on the Workers `cargo xtask build` last built
                        (PMJB_E2E_ONLY=oauth etc. limits them to one group): to rerun a group
  build [--dev]         build the three Workers and print their bundle sizes
  check                 repository checks: migration numbering, DATABASE.md in sync
  migrate [--env E]     apply migrations (local D1 by default; E = staging|production)
  deploy --env E [--dry-run] [--allow-destructive M1,M2] [--allow-dirty] [--no-build]
                        preflight (clean tree, complete configuration, secrets, checks,
                        pending and destructive migrations), then build, bookmark and
                        migrate D1, and move each Worker through a checked canary; any
                        failure returns the moved Workers (docs/runbooks/DEPLOY.md);
                        --dry-run prints the plan and the problems and changes nothing
  rollback --env E [--worker W] [--version ID]
                        put the previous (or given) version of the Workers back on 100%
                        and check their health
  sandbox [args]        run the local Exact Online sandbox (see `cargo run -p exact-sandbox -- --help`)
  bench                 bundle sizes, start-up compile time, core throughput, and tools/call
                        latency/throughput at 1, 8 and 32 clients in workerd against the sandbox
  db-docs               regenerate the schema section of docs/knowledge/DATABASE.md
  keys status [--env E] how many connections each TOKEN_ENCRYPTION_KEY key id still seals
                        (local D1 by default); retire a key only when it seals none
";

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() {
        print!("{USAGE}");
        bail!("no command given");
    }
    let command = args.remove(0);
    if command == "sandbox" {
        // Arguments belong to the sandbox binary, not to xtask.
        return run_cmd(
            Command::new("cargo")
                .args(["run", "--quiet", "--release", "-p", "exact-sandbox", "--"])
                .args(&args)
                .current_dir(project_root()),
        );
    }
    let opts = Options::parse(&args)?;
    match command.as_str() {
        "setup" => tools::setup().map(|_| ()),
        "build" => {
            let t = tools::setup()?;
            let report = build::build_all(&t, opts.profile())?;
            build::print_report(&report);
            build::enforce_limits(&report)
        }
        "check" => {
            migrations::check_dir(&project_root().join("migrations"))?;
            docs::check_database_md()?;
            println!("checks passed");
            Ok(())
        }
        "db-docs" => docs::write_database_md(),
        "keys" => {
            let t = tools::setup()?;
            keys::run(&t, opts.sub.as_deref(), opts.env.as_deref())
        }
        "test" => test(&opts),
        "e2e" => e2e::run_suite(&tools::setup()?),
        "dev" => e2e::dev(&opts),
        "migrate" => {
            let t = tools::setup()?;
            match opts.env.as_deref() {
                None => {
                    let state = project_root().join(".state/dev");
                    process::apply_migrations_local(&t, &state)
                }
                Some(env) => process::apply_migrations_remote(&t, env),
            }
        }
        "deploy" => {
            let env = opts
                .env
                .as_deref()
                .context("deploy needs --env staging|production")?;
            let t = tools::setup()?;
            deploy::deploy(
                &t,
                &deploy::DeployArgs {
                    env: env.to_owned(),
                    dry_run: opts.dry_run,
                    allow_destructive: opts.allow_destructive.clone(),
                    allow_dirty: opts.allow_dirty,
                    no_build: opts.no_build,
                    config_dir: opts.config_dir.clone(),
                },
            )
        }
        "rollback" => {
            let env = opts
                .env
                .as_deref()
                .context("rollback needs --env staging|production")?;
            let t = tools::setup()?;
            deploy::rollback(
                &t,
                &deploy::RollbackArgs {
                    env: env.to_owned(),
                    worker: opts.worker.clone(),
                    version: opts.version.clone(),
                    config_dir: opts.config_dir.clone(),
                },
            )
        }
        "bench" => e2e::bench(),
        "help" | "--help" | "-h" => {
            print!("{USAGE}");
            Ok(())
        }
        other => {
            print!("{USAGE}");
            bail!("unknown command {other:?}")
        }
    }
}

/// Options shared by the commands.
#[derive(Debug, Default)]
pub struct Options {
    pub dev_profile: bool,
    pub env: Option<String>,
    pub worker: Option<String>,
    pub version: Option<String>,
    pub port: Option<u16>,
    pub sandbox_port: Option<u16>,
    pub exact_url: Option<String>,
    pub exact_client_id: Option<String>,
    pub exact_client_secret: Option<String>,
    pub exact_redirect_uri: Option<String>,
    /// The demo user's plan in `dev` (enterprise when absent).
    pub plan: Option<Plan>,
    /// `dev` starts from an empty local D1 and state directory.
    pub fresh: bool,
    /// A bare word after the command (`keys status`).
    pub sub: Option<String>,
    /// `deploy`: run the preflight and print the plan, change nothing.
    pub dry_run: bool,
    /// `deploy`: pending migrations whose destructive statements were
    /// reviewed (`--allow-destructive 0018_x,0019_y`).
    pub allow_destructive: Vec<String>,
    /// `deploy`: deploy uncommitted changes.
    pub allow_dirty: bool,
    /// `deploy`: use the bundles of the last `cargo xtask build`.
    pub no_build: bool,
    /// `deploy`/`rollback`: `<dir>/<worker>/wrangler.jsonc` instead of `wrangler/`.
    pub config_dir: Option<PathBuf>,
}

impl Options {
    fn parse(args: &[String]) -> Result<Self> {
        let mut o = Options::default();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut value = |name: &str| {
                it.next()
                    .cloned()
                    .with_context(|| format!("{name} needs a value"))
            };
            match a.as_str() {
                "--dev" => o.dev_profile = true,
                "--dry-run" => o.dry_run = true,
                "--allow-dirty" => o.allow_dirty = true,
                "--no-build" => o.no_build = true,
                "--allow-destructive" => o.allow_destructive.extend(
                    value("--allow-destructive")?
                        .split(',')
                        .map(|s| s.trim().to_owned())
                        .filter(|s| !s.is_empty()),
                ),
                "--config-dir" => o.config_dir = Some(PathBuf::from(value("--config-dir")?)),
                "--env" | "-e" => o.env = Some(value("--env")?),
                "--worker" => o.worker = Some(value("--worker")?),
                "--version" => o.version = Some(value("--version")?),
                "--port" => {
                    o.port = Some(value("--port")?.parse().context("--port needs a number")?)
                }
                "--sandbox-port" => {
                    o.sandbox_port = Some(
                        value("--sandbox-port")?
                            .parse()
                            .context("--sandbox-port needs a number")?,
                    )
                }
                "--exact-url" => o.exact_url = Some(value("--exact-url")?),
                "--exact-client-id" => o.exact_client_id = Some(value("--exact-client-id")?),
                "--exact-client-secret" => {
                    o.exact_client_secret = Some(value("--exact-client-secret")?)
                }
                "--exact-redirect-uri" => {
                    o.exact_redirect_uri = Some(value("--exact-redirect-uri")?)
                }
                "--plan" => {
                    let name = value("--plan")?;
                    o.plan = Some(
                        name.parse()
                            .map_err(|e: UnknownPlan| anyhow::anyhow!("--plan: {e}"))?,
                    )
                }
                "--fresh" => o.fresh = true,
                word if !word.starts_with('-') && o.sub.is_none() => o.sub = Some(word.to_owned()),
                other => bail!("unknown option {other:?}\n\n{USAGE}"),
            }
        }
        if let Some(env) = &o.env
            && !matches!(env.as_str(), "staging" | "production")
        {
            bail!("--env must be staging or production, not {env:?}");
        }
        Ok(o)
    }

    /// The plan `dev` signs its demo user up on: enterprise unless
    /// `--plan` says otherwise, so a day of local use never ends in a
    /// monthly limit.
    pub fn dev_plan(&self) -> Plan {
        self.plan.unwrap_or(Plan::Enterprise)
    }

    fn profile(&self) -> build::Profile {
        if self.dev_profile {
            build::Profile::Dev
        } else {
            build::Profile::Release
        }
    }
}

/// The workspace root (xtask lives one level below it).
pub fn project_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

/// Runs a command to completion, failing with its name if it fails.
pub fn run_cmd(cmd: &mut Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    let status = cmd.status().with_context(|| format!("starting {shown}"))?;
    if !status.success() {
        bail!("{shown} failed with {status}");
    }
    Ok(())
}

fn step(n: usize, of: usize, what: &str) -> Instant {
    println!("\n==> [{n}/{of}] {what}");
    Instant::now()
}

fn test(opts: &Options) -> Result<()> {
    let started = Instant::now();
    let root = project_root();
    let total = 6;

    let t = step(1, total, "setup (pinned toolchain)");
    let tools = tools::setup()?;
    println!("    {:.1?}", t.elapsed());

    let t = step(2, total, "cargo fmt --check");
    run_cmd(
        Command::new("cargo")
            .args(["fmt", "--all", "--", "--check"])
            .current_dir(&root),
    )?;
    println!("    {:.1?}", t.elapsed());

    let t = step(3, total, "cargo clippy -D warnings (native and wasm32)");
    run_cmd(
        Command::new("cargo")
            .args([
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ])
            .current_dir(&root),
    )?;
    run_cmd(
        Command::new("cargo")
            .args(["clippy", "--target", "wasm32-unknown-unknown"])
            .args(build::WORKERS.iter().flat_map(|w| ["-p", w.name]))
            .args(["--", "-D", "warnings"])
            .current_dir(&root),
    )?;
    println!("    {:.1?}", t.elapsed());

    let t = step(4, total, "native tests and repository checks");
    migrations::check_dir(&root.join("migrations"))?;
    docs::check_database_md()?;
    run_cmd(
        Command::new("cargo")
            .args(["test", "--workspace"])
            .current_dir(&root),
    )?;
    println!("    {:.1?}", t.elapsed());

    let t = step(5, total, "wasm build of the three Workers");
    let report = build::build_all(&tools, opts.profile())?;
    build::print_report(&report);
    build::enforce_limits(&report)?;
    println!("    {:.1?}", t.elapsed());

    let t = step(6, total, "end to end in workerd");
    e2e::run_suite(&tools)?;
    println!("    {:.1?}", t.elapsed());

    println!(
        "\ncargo xtask test: all steps passed in {:.1?}",
        started.elapsed()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Options> {
        Options::parse(&args.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn dev_defaults_to_enterprise_and_keeps_its_state() {
        let o = parse(&[]).unwrap();
        assert_eq!(o.dev_plan(), Plan::Enterprise);
        assert!(!o.fresh);
    }

    #[test]
    fn dev_takes_every_plan_and_a_fresh_start() {
        for plan in Plan::ALL {
            let o = parse(&["--plan", plan.as_str(), "--port", "9000"]).unwrap();
            assert_eq!(o.dev_plan(), plan);
            assert_eq!(o.port, Some(9000));
        }
        let o = parse(&["--fresh", "--plan", "free"]).unwrap();
        assert!(o.fresh);
        assert_eq!(o.dev_plan(), Plan::Free);
    }

    #[test]
    fn an_unknown_or_missing_plan_is_refused_with_the_choices() {
        let err = parse(&["--plan", "gold"]).unwrap_err().to_string();
        assert!(err.contains("free, starter, pro, enterprise"), "{err}");
        let err = parse(&["--plan"]).unwrap_err().to_string();
        assert!(err.contains("--plan needs a value"), "{err}");
    }
}
