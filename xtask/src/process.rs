//! Running wrangler: local D1 migrations, `wrangler dev` in workerd with a
//! guard that stops the whole process group, a tiny loopback HTTP client
//! for health checks, and remote D1 access for operators (the deploy
//! itself lives in `deploy.rs`).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::build::WORKERS;
use crate::run_cmd;
use crate::tools::Tools;

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

pub fn apply_migrations_local(tools: &Tools, state: &Path) -> Result<()> {
    std::fs::create_dir_all(state)?;
    run_cmd(
        tools
            .wrangler()
            .args(["d1", "migrations", "apply", "boekhouding", "--local", "-c"])
            .arg(WORKERS[0].config(&tools.root))
            .arg("--persist-to")
            .arg(state)
            .stdout(Stdio::null()),
    )
    .context("applying migrations to the local D1")
}

/// Runs SQL against the local D1 and returns wrangler's JSON rows.
pub fn d1_query(tools: &Tools, state: &Path, sql: &str) -> Result<Vec<serde_json::Value>> {
    let mut cmd = tools.wrangler();
    cmd.args(["d1", "execute", "boekhouding", "--local", "--json", "-c"])
        .arg(WORKERS[0].config(&tools.root))
        .arg("--persist-to")
        .arg(state);
    d1_rows(cmd, sql)
}

/// Runs one read-only SQL statement on a deployed environment's D1.
pub fn d1_query_remote(tools: &Tools, env: &str, sql: &str) -> Result<Vec<serde_json::Value>> {
    ensure_configured(tools, env)?;
    let mut cmd = tools.wrangler();
    cmd.args([
        "d1",
        "execute",
        &format!("boekhouding-{env}"),
        "--remote",
        "--json",
        "-e",
        env,
        "-c",
    ])
    .arg(WORKERS[0].config(&tools.root));
    d1_rows(cmd, sql)
}

/// Runs a prepared `wrangler d1 execute` with `sql` and returns the rows
/// of its JSON answer.
fn d1_rows(mut cmd: Command, sql: &str) -> Result<Vec<serde_json::Value>> {
    let out = cmd.args(["--command", sql]).output()?;
    if !out.status.success() {
        bail!(
            "wrangler d1 execute failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let parsed: serde_json::Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("parsing: {}", String::from_utf8_lossy(&out.stdout)))?;
    Ok(parsed
        .get(0)
        .and_then(|r| r.get("results"))
        .and_then(|r| r.as_array())
        .cloned()
        .unwrap_or_default())
}

/// How to start a `wrangler dev`.
#[derive(Debug, Clone, Copy, Default)]
pub struct DevOptions<'a> {
    /// Plain variables (`--var`); never secrets, wrangler prints them.
    pub vars: &'a [(&'a str, &'a str)],
    /// Secrets, loaded with `--env-file`.
    pub env_file: Option<&'a Path>,
    /// Environment variables of the wrangler process itself (not of the
    /// Worker), such as `NODE_EXTRA_CA_CERTS`: miniflare adds the
    /// certificates of that file to what workerd trusts for outbound
    /// fetches.
    pub env: &'a [(&'a str, &'a str)],
    /// Its own process group, stopped as a whole on drop (tests); `dev`
    /// shares xtask's group so Ctrl-C reaches it.
    pub own_group: bool,
}

/// One `wrangler dev` process (and its workerd) in its own process group;
/// dropping it stops them all.
#[derive(Debug)]
pub struct DevServer {
    pub name: String,
    pub port: u16,
    child: Child,
    pub log: PathBuf,
}

impl DevServer {
    pub fn start(
        tools: &Tools,
        name: &str,
        config: &Path,
        state: &Path,
        port: u16,
        opts: &DevOptions<'_>,
    ) -> Result<Self> {
        std::fs::create_dir_all(state)?;
        let log = state.join(format!("{name}.log"));
        let file = std::fs::File::create(&log)?;
        let mut cmd = tools.wrangler();
        cmd.args(["dev", "--ip", "127.0.0.1", "--port", &port.to_string()])
            .args(["--inspector-port", &free_port()?.to_string()])
            .arg("-c")
            .arg(config)
            .arg("--persist-to")
            .arg(state)
            // `log`, not `info`: wrangler shows a Worker's console.log
            // (the JSON request lines) only from this level on.
            .args(["--log-level", "log"])
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file);
        for (k, v) in opts.vars {
            cmd.args(["--var", &format!("{k}:{v}")]);
        }
        if let Some(f) = opts.env_file {
            cmd.arg("--env-file").arg(f);
        }
        cmd.envs(opts.env.iter().copied());
        if opts.own_group {
            cmd.process_group(0);
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("starting wrangler dev for {name}"))?;
        Ok(DevServer {
            name: name.to_owned(),
            port,
            child,
            log,
        })
    }

    /// Starts and waits until `/health` answers; if the process dies
    /// while starting (workerd can hit `SQLITE_BUSY` on a shared state
    /// directory under load), it is started once more.
    pub fn start_ready(
        tools: &Tools,
        name: &str,
        config: &Path,
        state: &Path,
        port: u16,
        opts: &DevOptions<'_>,
        timeout: Duration,
    ) -> Result<Self> {
        let mut server = Self::start(tools, name, config, state, port, opts)?;
        match server.wait_ready("/health", timeout) {
            Ok(()) => Ok(server),
            Err(first) if server.has_exited() => {
                println!("{name} died while starting; starting it once more ({first:#})");
                drop(server);
                let mut again = Self::start(tools, name, config, state, port, opts)?;
                again.wait_ready("/health", timeout)?;
                Ok(again)
            }
            Err(e) => Err(e),
        }
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Waits until `path` answers at all (any status).
    pub fn wait_ready(&mut self, path: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{} exited early ({status}); log:\n{}",
                    self.name,
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            if http_get(self.port, path).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        bail!(
            "{} did not answer within {timeout:?}; log:\n{}",
            self.name,
            std::fs::read_to_string(&self.log).unwrap_or_default()
        )
    }

    pub fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }
}

impl DevServer {
    /// Stops the process group now (dropping does the same).
    pub fn stop(&mut self) {
        stop_group(&mut self.child);
    }
}

impl Drop for DevServer {
    fn drop(&mut self) {
        stop_group(&mut self.child);
    }
}

/// Stops a `wrangler dev` started in its own process group, with everything
/// in the group (TERM, then KILL): the local Cloudflare imitation's one.
pub use cloudflare_sandbox::process::stop_group;

/// A response from [`http_get`].
#[derive(Debug, Clone)]
pub struct HttpReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpReply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Result<serde_json::Value> {
        serde_json::from_str(&self.body).with_context(|| format!("not JSON: {}", self.body))
    }
}

/// A minimal HTTP/1.1 GET on loopback (no client dependency needed for
/// health checks; chunked bodies are decoded).
pub fn http_get(port: u16, path: &str) -> Result<HttpReply> {
    http_request(port, "GET", path, &[("Accept", "application/json")], "")
}

/// A minimal HTTP/1.1 request on loopback.
pub fn http_request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<HttpReply> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    // A caller's own Host (a deployed Worker's name at the local edge)
    // replaces the loopback one: the first Host header is the one read.
    let host = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("host"))
        .map_or_else(|| format!("127.0.0.1:{port}"), |(_, v)| (*v).to_owned());
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (k, v) in headers
        .iter()
        .filter(|(k, _)| !k.eq_ignore_ascii_case("host"))
    {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").context("no header end")?;
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .context("no status line")?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Ok(HttpReply {
        status,
        headers,
        body,
    })
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

fn git_commit(root: &Path) -> String {
    Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(root)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".into())
}

pub fn commit_var(root: &Path) -> String {
    git_commit(root)
}

/// Refuses an environment whose configuration still holds placeholders
/// (the full check is the deploy's preflight).
fn ensure_configured(tools: &Tools, env: &str) -> Result<()> {
    for c in crate::config::load_all(&tools.root.join("wrangler"))? {
        let e = c
            .environment(env)
            .with_context(|| format!("{}: no env.{env}", c.path.display()))?;
        let left = e.placeholders();
        if !left.is_empty() {
            bail!(
                "{} is not filled in for {env}: {}; see docs/runbooks/DEPLOY.md (or run `cargo xtask deploy --dry-run --env {env}`)",
                c.path.display(),
                left.join(", ")
            );
        }
    }
    Ok(())
}

pub fn apply_migrations_remote(tools: &Tools, env: &str) -> Result<()> {
    ensure_configured(tools, env)?;
    run_cmd(
        tools
            .wrangler()
            .args([
                "d1",
                "migrations",
                "apply",
                &format!("boekhouding-{env}"),
                "--remote",
                "-e",
                env,
                "-c",
            ])
            .arg(WORKERS[0].config(&tools.root)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Processes of a group that are not zombies (a zombie waits for its
    /// reaper but runs nothing).
    fn live_members(pgid: u32) -> usize {
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("stat")).ok())
            .filter(|stat| {
                // pid (comm) state ppid pgrp …; comm may hold spaces.
                let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
                let fields: Vec<&str> = after.split_whitespace().collect();
                fields.len() > 2 && fields[2] == pgid.to_string() && fields[0] != "Z"
            })
            .count()
    }

    #[test]
    fn stopping_a_group_ends_the_leader_and_its_children() {
        let mut child = Command::new("sh")
            .args(["-c", "sleep 300 & exec sleep 300"])
            .process_group(0)
            .spawn()
            .unwrap();
        let pgid = child.id();
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(live_members(pgid), 2, "sh's child and the exec'd sleep");
        stop_group(&mut child);
        assert!(matches!(child.try_wait(), Ok(Some(_))));
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(live_members(pgid), 0, "no member of the group survives");
    }

    #[test]
    fn chunked_bodies_are_reassembled() {
        assert_eq!(
            dechunk("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
            "hello world"
        );
    }
}
