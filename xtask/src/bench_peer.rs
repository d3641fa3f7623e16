//! `cargo xtask bench`, the peer: a Worker written with the official
//! TypeScript MCP SDK (`bench/peer/`, a benchmark fixture), bundled with the
//! pinned esbuild and run in workerd beside our mcp-server against the same
//! sandbox, with an Exact access token from the sandbox's bulk `grants`
//! admin API. Also the upstream alone: the sandbox's answer time for the
//! Exact requests the tools make, to subtract from both.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use flate2::Compression;
use flate2::write::GzEncoder;
use serde::Serialize;

use crate::process::{DevOptions, DevServer, free_port, http_request};
use crate::run_cmd;
use crate::tools::Tools;

/// The peer's folder in the repository.
pub fn dir(root: &Path) -> PathBuf {
    root.join("bench/peer")
}

/// The peer's bundle: one minified ES module (no wasm).
#[derive(Debug, Clone, Serialize)]
pub struct PeerBundle {
    pub sdk_version: String,
    pub js_raw: u64,
    pub js_gzip: u64,
}

/// Bundles `bench/peer/src/index.ts` with the pinned esbuild into
/// `bench/peer/build/index.js` (minified, as a deployment would be), and
/// returns its size and the SDK version it was built with.
pub fn build(tools: &Tools) -> Result<PeerBundle> {
    let dir = dir(&tools.root);
    let out = dir.join("build/index.js");
    let sdk = tools
        .node_modules
        .join("@modelcontextprotocol/sdk/package.json");
    let sdk: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&sdk).context(
        "the TypeScript MCP SDK is missing from wrangler/node_modules; run `cargo xtask setup`",
    )?)?;
    let mut cmd = Command::new(&tools.esbuild);
    tools.apply(&mut cmd);
    // The fixture lives outside wrangler/, so its packages are found
    // through NODE_PATH (esbuild honours it like Node).
    cmd.env("NODE_PATH", &tools.node_modules)
        .arg(dir.join("src/index.ts"))
        .args([
            "--bundle",
            "--format=esm",
            "--platform=browser",
            "--conditions=workerd,worker,browser",
            "--target=es2022",
            "--minify",
            "--log-level=warning",
        ])
        .arg(format!("--outfile={}", out.display()));
    run_cmd(&mut cmd).context("bundling the TypeScript SDK peer")?;
    let js = std::fs::read(&out)?;
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(&js)?;
    Ok(PeerBundle {
        sdk_version: sdk["version"].as_str().unwrap_or("?").to_owned(),
        js_raw: js.len() as u64,
        js_gzip: enc.finish()?.len() as u64,
    })
}

/// The loopback port of a `http://127.0.0.1:<port>` base URL.
pub fn port_of(base_url: &str) -> Result<u16> {
    base_url
        .rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .with_context(|| format!("no port in {base_url}"))
}

/// `application/x-www-form-urlencoded` encoding of one value.
fn form_encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A valid access token for the sandbox's `demo` user: a token pair from
/// the bulk `grants` admin API (its access token already expired), then a
/// refresh at the token endpoint, as any Exact client does. It lives ten
/// minutes, longer than the bench needs.
pub fn exact_access_token(sandbox: &exact_sandbox::Sandbox) -> Result<String> {
    let port = port_of(sandbox.base_url())?;
    let grants = http_request(
        port,
        "POST",
        "/__admin/grants",
        &[("Content-Type", "application/json")],
        r#"{"username":"demo","count":1}"#,
    )?
    .json()?;
    let refresh = grants["grants"][0]["refresh_token"]
        .as_str()
        .context("the sandbox handed out no grant")?;
    let form = format!(
        "grant_type=refresh_token&refresh_token={}&client_id={}&client_secret={}",
        form_encode(refresh),
        form_encode(sandbox.client_id()),
        form_encode(sandbox.client_secret())
    );
    let reply = http_request(
        port,
        "POST",
        "/api/oauth2/token",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        &form,
    )?;
    if reply.status != 200 {
        bail!("the sandbox refused the refresh ({})", reply.status);
    }
    reply.json()?["access_token"]
        .as_str()
        .map(str::to_owned)
        .context("no access token in the sandbox's answer")
}

/// Starts the peer in workerd (wrangler dev) against the sandbox; the
/// token goes through an env file, like our secrets.
pub fn start(
    tools: &Tools,
    state: &Path,
    sandbox: &exact_sandbox::Sandbox,
    division: i64,
) -> Result<DevServer> {
    let state = state.join("peer");
    std::fs::create_dir_all(&state)?;
    let env_file = state.join("secrets.env");
    std::fs::write(
        &env_file,
        format!("EXACT_ACCESS_TOKEN={}\n", exact_access_token(sandbox)?),
    )?;
    let division = division.to_string();
    let vars = [
        ("EXACT_BASE_URL", sandbox.base_url()),
        ("EXACT_DIVISION", division.as_str()),
    ];
    let mut server = DevServer::start(
        tools,
        "ts-sdk-peer",
        &dir(&tools.root).join("wrangler.jsonc"),
        &state,
        free_port()?,
        &DevOptions {
            vars: &vars,
            env_file: Some(&env_file),
            own_group: true,
            ..DevOptions::default()
        },
    )?;
    server.wait_ready("/health", Duration::from_secs(90))?;
    Ok(server)
}

/// The sandbox's answer times for one Exact request, asked directly (no
/// Worker in between): what both designs wait for on each Exact call.
#[derive(Debug, Clone, Serialize)]
pub struct Upstream {
    pub request: &'static str,
    pub calls: usize,
    pub p50_ms: f64,
    pub p95_ms: f64,
}

/// Times `calls` sequential GETs of `path` (below `/api/v1/<division>/`).
pub fn measure_upstream(
    sandbox: &exact_sandbox::Sandbox,
    token: &str,
    division: i64,
    request: &'static str,
    path: &str,
    calls: usize,
) -> Result<Upstream> {
    let port = port_of(sandbox.base_url())?;
    let auth = format!("Bearer {token}");
    let target = format!("/api/v1/{division}/{path}");
    let mut lat = Vec::with_capacity(calls);
    for _ in 0..calls {
        let t = Instant::now();
        let r = http_request(
            port,
            "GET",
            &target,
            &[("Authorization", &auth), ("Accept", "application/json")],
            "",
        )?;
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
        if r.status != 200 {
            bail!("the sandbox answered {} to {target}", r.status);
        }
    }
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    Ok(Upstream {
        request,
        calls,
        p50_ms: crate::bench_mcp::percentile(&lat, 0.50),
        p95_ms: crate::bench_mcp::percentile(&lat, 0.95),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_values_are_percent_encoded() {
        assert_eq!(form_encode("a+b/c=d e"), "a%2Bb%2Fc%3Dd%20e");
        assert_eq!(form_encode("AZaz09-_.~"), "AZaz09-_.~");
    }

    #[test]
    fn the_port_comes_from_the_base_url() {
        assert_eq!(port_of("http://127.0.0.1:9700").unwrap(), 9700);
        assert_eq!(port_of("http://127.0.0.1:9700/").unwrap(), 9700);
        assert!(port_of("http://127.0.0.1").is_err());
    }
}
