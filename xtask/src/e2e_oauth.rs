//! The OAuth group of the end-to-end suite (`PMJB_E2E_ONLY=oauth`): the
//! portal as the authorization server of MCP clients, proven with the
//! official Python SDK's OAuth client and hostile HTTP requests, with one
//! Chromium completing the consent pages (`tests/browser/oauth.mjs`), plus
//! the throw-away CA that lets workerd trust the test's HTTPS servers.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::build::WORKERS;
use crate::process::{DevOptions, DevServer, free_port, http_get};
use crate::tools::Tools;

const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// Writes a fresh throw-away CA and a certificate for 127.0.0.1/localhost
/// into `dir` (`ca.pem`, `server.pem`, `server-key.pem`; the CA's key is
/// never written) with `tests/sdk/test_ca.py`. Python's `cryptography`
/// does it because the SDK's venv, which the OAuth checks need anyway,
/// already pins it (`tests/sdk/requirements.lock`), and the HTTPS server
/// that uses the certificate is Python too; a Rust generator (rcgen) would
/// be one more dependency of xtask to lock and audit for three files.
pub fn make_ca(tools: &Tools, dir: &Path) -> Result<PathBuf> {
    let out = Command::new(&tools.python)
        .arg(tools.root.join("tests/sdk/test_ca.py"))
        .arg(dir)
        .output()
        .context("running tests/sdk/test_ca.py (is the SDK's venv set up? `cargo xtask setup`)")?;
    if !out.status.success() {
        bail!(
            "tests/sdk/test_ca.py failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(dir.to_path_buf())
}

/// What the OAuth checks need of the running suite.
pub struct OauthWorld<'a> {
    pub state: &'a Path,
    /// The folder of [`make_ca`].
    pub tls: &'a Path,
    pub sandbox: &'a exact_sandbox::Sandbox,
    /// The `demo` login's account: the browser signs in as it.
    pub account: &'a crate::demo::Account,
    pub portal_port: u16,
    pub mcp_port: u16,
    /// The variables the portal runs with (a second, strict portal runs
    /// with the same minus OAUTH_ALLOW_PRIVATE_CLIENT_HOSTS).
    pub vars: &'a [(&'a str, &'a str)],
    pub env_file: &'a Path,
}

/// A child process killed when dropped (the test's HTTPS server).
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Serves a metadata document over HTTPS with the CA's certificate on
/// `port`, in the SDK's Python (as the OAuth scripts do), and waits until
/// it listens.
fn serve_document(tools: &Tools, tls: &Path, port: u16) -> Result<Killed> {
    let mut child = Command::new(&tools.python)
        .arg(tools.root.join("tests/sdk/oauth_support.py"))
        .arg("serve")
        .arg(tls)
        .arg(port.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let stdout = child.stdout.take().context("no stdout")?;
    let guard = Killed(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    if !line.starts_with("SERVING ") {
        bail!("the document server did not start: {line:?}");
    }
    Ok(guard)
}

/// workerd, started by wrangler dev with NODE_EXTRA_CA_CERTS naming the
/// run's CA, fetches the test's HTTPS server: the portal's CIMD fetches
/// depend on exactly this. A tiny Worker of the suite (`tests/tls/`)
/// does the fetch, so this holds before any OAuth endpoint exists.
fn ca_trusted_check(tools: &Tools, world: &OauthWorld<'_>) -> Result<()> {
    let doc_port = free_port()?;
    let _server = serve_document(tools, world.tls, doc_port)?;
    let config = world.state.join("tls-probe.jsonc");
    let main = tools.root.join("tests/tls/fetch-probe.mjs");
    std::fs::write(
        &config,
        serde_json::json!({
            "name": "pmjb-tls-probe",
            "main": main,
            "compatibility_date": "2026-11-01",
        })
        .to_string(),
    )?;
    let ca = world.tls.join("ca.pem").to_string_lossy().into_owned();
    let env = [("NODE_EXTRA_CA_CERTS", ca.as_str())];
    let probe = DevServer::start_ready(
        tools,
        "tls-probe",
        &config,
        &world.state.join("tls-probe"),
        free_port()?,
        &DevOptions {
            own_group: true,
            env: &env,
            ..DevOptions::default()
        },
        READY_TIMEOUT,
    )?;
    let url = format!("https%3A%2F%2F127.0.0.1%3A{doc_port}%2Fclient.json");
    let reply = http_get(probe.port, &format!("/probe?url={url}"))?;
    let json = reply.json()?;
    if json["ok"] != true || json["status"] != 200 {
        bail!("the Worker's HTTPS fetch failed: {json}");
    }
    let body = json["body"].as_str().unwrap_or_default();
    if !body.contains(&format!("https://127.0.0.1:{doc_port}/client.json")) {
        bail!("the Worker fetched something else: {body}");
    }
    Ok(())
}

/// The results' ids (written by `oauth.mjs`, most from the Python scripts)
/// and their lines in the e2e summary, in the order they run.
const CHECKS: &[(&str, &str)] = &[
    (
        "browser.signin",
        "oauth browser: sign-in with Exact through the portal (the region choice, the sandbox's login page) in the scenario's Chromium",
    ),
    (
        "cimd.discovery",
        "oauth discovery: the 401 names the resource metadata and scope; RFC 9728 (path-aware and root) and RFC 8414/OpenID metadata name one issuer without a trailing slash, S256 only, CIMD, RFC 9207, no jwks_uri",
    ),
    (
        "cimd.connect",
        "oauth CIMD: the official SDK connects from nothing with a Client ID Metadata Document the portal fetched over HTTPS, through sign-in with Exact and consent in Chromium (code with state and iss)",
    ),
    (
        "browser.consent",
        "oauth consent page: names the client and its redirect host, every active administration pre-checked, axe clean and screenshotted at 1280 and 390 px",
    ),
    (
        "cimd.tool",
        "oauth CIMD: tools/call answers from the books with only the administrations left checked; the unchecked one is refused",
    ),
    (
        "cimd.refresh",
        "oauth CIMD: the SDK refreshes an expired-looking token itself (rotated refresh token, no new consent) and the next tools/call works",
    ),
    (
        "cimd.revoke",
        "oauth CIMD: revoking the access token (RFC 7009) ends the grant: the MCP server answers 401 invalid_token, the refresh token invalid_grant",
    ),
    (
        "dcr.connect",
        "oauth DCR: the official SDK registers (RFC 7591) and connects from nothing through consent in Chromium",
    ),
    ("dcr.tool", "oauth DCR: tools/call answers from the books"),
    (
        "dcr.refresh",
        "oauth DCR: the SDK refreshes and the next tools/call works",
    ),
    (
        "dcr.revoke",
        "oauth DCR: revoking the refresh token ends the grant: its access token gets 401",
    ),
    (
        "conformance.authorization",
        "oauth: the official MCP conformance suite's authorization-server scenarios pass (metadata endpoint; authorization code grant, completed in Chromium)",
    ),
    (
        "deny",
        "oauth: denying on the consent page sends access_denied with the state; the SDK fails and holds no token",
    ),
    (
        "hostile.redirect_uri",
        "oauth hostile: an unregistered redirect URI gets an error page (no redirect); a code exchanged with another redirect URI gets invalid_grant",
    ),
    (
        "hostile.loopback_port",
        "oauth: a loopback redirect URI on another port is the same client (RFC 8252)",
    ),
    (
        "hostile.pkce_missing",
        "oauth hostile: an authorization request without PKCE gets invalid_request, no code",
    ),
    (
        "hostile.pkce_plain",
        "oauth hostile: code_challenge_method=plain gets invalid_request, no code",
    ),
    (
        "hostile.pkce_mismatch",
        "oauth hostile: a wrong PKCE verifier gets invalid_grant, no token",
    ),
    (
        "hostile.code_replay",
        "oauth hostile: a replayed code gets invalid_grant and revokes the tokens of its first use",
    ),
    (
        "hostile.expired_code",
        "oauth hostile: an expired code gets invalid_grant",
    ),
    (
        "hostile.refresh_grace",
        "oauth: the just-rotated refresh token is accepted once more within the grace (two refreshes at once); a second replay revokes the grant",
    ),
    (
        "hostile.refresh_reuse",
        "oauth hostile: a spent refresh token after the grace (its first use moved back in D1) gets invalid_grant and revokes the grant",
    ),
    (
        "hostile.other_resource",
        "oauth hostile: another resource gets invalid_target at authorize; a code or refresh token of this server cannot become a token for another audience",
    ),
    (
        "hostile.trailing_slash",
        "oauth: the resource with a trailing slash is this MCP server (tolerated, the token works)",
    ),
    (
        "hostile.cimd_mismatch",
        "oauth hostile: a metadata document whose client_id differs from its URL gets an error page, no redirect",
    ),
    (
        "hostile.cimd_big",
        "oauth hostile: a metadata document larger than 5 KB gets an error page, no redirect",
    ),
    (
        "hostile.cimd_unlisted_redirect",
        "oauth hostile: a redirect URI the metadata document does not list gets an error page, no redirect",
    ),
    (
        "hostile.cimd_private",
        "oauth hostile: without OAUTH_ALLOW_PRIVATE_CLIENT_HOSTS a metadata document on a loopback address is refused without being fetched",
    ),
    (
        "hostile.dcr_redirect",
        "oauth hostile: registering a plain-http, non-loopback redirect URI gets invalid_redirect_uri",
    ),
    (
        "hostile.dcr_flood",
        "oauth hostile: a registration flood from one address gets 429",
    ),
];

/// Runs the OAuth group: the CA check, then the browser scenario once
/// (one Chromium for every consent), its results one line each.
pub fn checks(tools: &Tools, world: &OauthWorld<'_>) -> Vec<(String, Result<()>)> {
    let mut out = vec![(
        "oauth: workerd trusts the run's throw-away CA (a Worker started with NODE_EXTRA_CA_CERTS fetches the test's HTTPS server)".to_owned(),
        ca_trusted_check(tools, world),
    )];
    let strict = strict_portal(tools, world);
    let strict_url = match &strict {
        Ok(s) => s.base_url(),
        Err(e) => {
            out.push((
                "oauth: a second portal without OAUTH_ALLOW_PRIVATE_CLIENT_HOSTS starts".to_owned(),
                Err(anyhow::anyhow!("{e:#}")),
            ));
            String::new()
        }
    };
    let results_file = world.state.join("oauth-results.json");
    let _ = std::fs::remove_file(&results_file);
    let d1 = crate::demo::local_d1_file(world.state)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let divisions = world
        .account
        .divisions
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let portal = format!("http://127.0.0.1:{}", world.portal_port);
    let mcp = format!("http://127.0.0.1:{}/mcp", world.mcp_port);
    let python = tools.python.to_string_lossy().into_owned();
    let tls = world.tls.to_string_lossy().into_owned();
    let results = results_file.to_string_lossy().into_owned();
    let mut args: Vec<(&str, &str)> = vec![
        ("base-url", &portal),
        ("sandbox-url", world.sandbox.base_url()),
        ("mcp-url", &mcp),
        ("python", &python),
        ("tls", &tls),
        ("d1", &d1),
        // The account the suite provisioned; the portal's own browser
        // group signs up as `nieuw`, so the two never share a customer.
        ("username", "demo"),
        ("divisions", &divisions),
        ("results", &results),
    ];
    if !strict_url.is_empty() {
        args.push(("strict-portal", &strict_url));
    }
    let only = std::env::var("PMJB_OAUTH_ONLY").unwrap_or_default();
    if !only.is_empty() {
        args.push(("only", &only));
    }
    let scenario = crate::e2e_browser::run_scenario(tools, "oauth.mjs", &args);
    drop(strict);
    let found: serde_json::Map<String, serde_json::Value> = std::fs::read_to_string(&results_file)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    let mut all_ok = true;
    for (id, name) in CHECKS {
        let result = match found.get(*id) {
            Some(r) if r["ok"] == true => Ok(()),
            Some(r) => {
                all_ok = false;
                Err(anyhow::anyhow!(
                    "{}",
                    r["detail"].as_str().unwrap_or("failed")
                ))
            }
            None => {
                all_ok = false;
                Err(anyhow::anyhow!(
                    "not run: an earlier step of its flow failed, or the group was limited with PMJB_OAUTH_ONLY (see the browser lines above)"
                ))
            }
        };
        out.push(((*name).to_owned(), result));
    }
    // Failures the scripts reported under ids of their own (an SDK error
    // before the first check of a flow).
    for (id, r) in &found {
        if !CHECKS.iter().any(|(known, _)| known == id) {
            all_ok &= r["ok"] == true;
            out.push((
                format!("oauth: {id}"),
                if r["ok"] == true {
                    Ok(())
                } else {
                    Err(anyhow::anyhow!(
                        "{}",
                        r["detail"].as_str().unwrap_or("failed")
                    ))
                },
            ));
        }
    }
    if let Err(e) = scenario
        && all_ok
    {
        out.push((
            "oauth browser: the scenario ran without console errors, page errors or outside requests".to_owned(),
            Err(e),
        ));
    }
    out
}

/// A second portal on the same D1 and with the same secrets, but without
/// OAUTH_ALLOW_PRIVATE_CLIENT_HOSTS, as in production: the refusal of a
/// metadata document on a private address can only be seen there, and the
/// registration flood's rate limit lands there instead of on the portal
/// the other checks use.
fn strict_portal(tools: &Tools, world: &OauthWorld<'_>) -> Result<DevServer> {
    let portal = WORKERS
        .iter()
        .find(|w| w.name == "auth-portal")
        .context("no auth-portal")?;
    let vars: Vec<(&str, &str)> = world
        .vars
        .iter()
        .copied()
        .filter(|(k, _)| *k != "OAUTH_ALLOW_PRIVATE_CLIENT_HOSTS")
        .collect();
    let ca = world.tls.join("ca.pem").to_string_lossy().into_owned();
    let env = [("NODE_EXTRA_CA_CERTS", ca.as_str())];
    DevServer::start_ready(
        tools,
        "auth-portal-strict",
        &portal.config(&tools.root),
        world.state,
        free_port()?,
        &DevOptions {
            vars: &vars,
            env_file: Some(world.env_file),
            own_group: true,
            env: &env,
        },
        READY_TIMEOUT,
    )
}

#[cfg(test)]
mod tests {
    use super::CHECKS;

    fn read(path: &str) -> String {
        std::fs::read_to_string(crate::project_root().join(path)).unwrap()
    }

    /// Every named line has a script that reports its id, and every hostile
    /// case the script runs has a line: a renamed check cannot turn into a
    /// line that always says "not run", nor a new case into one nobody
    /// sees.
    #[test]
    fn every_summary_line_has_a_check_that_reports_it_and_back() {
        let flow = read("tests/sdk/oauth_flow.py");
        let hostile = read("tests/sdk/oauth_hostile.py");
        let browser = read("tests/browser/oauth.mjs");
        for (id, _) in CHECKS {
            let reported = match id.split_once('.') {
                Some(("cimd" | "dcr", step)) => {
                    flow.contains(&format!("f\"{{mode}}.{step}\""))
                        || flow.contains(&format!("\"{id}\""))
                }
                Some(("hostile", case)) => hostile.contains(&format!("(\"{case}\", ")),
                Some(("browser" | "conformance", _)) => browser.contains(&format!("\"{id}\"")),
                None => flow.contains(&format!("\"{id}\"")),
                Some(_) => false,
            };
            assert!(reported, "no script reports the check {id}");
        }
        let listed = hostile
            .split("for name, fn in [")
            .nth(1)
            .and_then(|rest| rest.split("]:").next())
            .unwrap();
        for line in listed.lines() {
            let Some(case) = line.trim().strip_prefix("(\"") else {
                continue;
            };
            let case = case.split('"').next().unwrap();
            assert!(
                CHECKS
                    .iter()
                    .any(|(id, _)| *id == format!("hostile.{case}")),
                "the hostile case {case} has no line in the summary"
            );
        }
    }
}
