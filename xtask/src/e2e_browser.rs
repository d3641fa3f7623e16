//! The browser group of the end-to-end suite (`PMJB_E2E_ONLY=portal`):
//! scenarios in `tests/browser/` run by its runner with the pinned Node 22,
//! driving Debian's Chromium through the pinned playwright-core.

use std::process::Command;

use anyhow::{Result, bail};

use crate::project_root;
use crate::tools::Tools;

/// Runs one scenario file of `tests/browser/` with `--name value` options.
/// Its lines (one per check, then `N passed, N failed`) go straight to the
/// terminal; a failed check makes the whole scenario fail.
pub fn run_scenario(tools: &Tools, scenario: &str, args: &[(&str, &str)]) -> Result<()> {
    let root = project_root();
    let dir = root.join("tests/browser");
    let mut cmd: Command = tools.node();
    cmd.arg(dir.join("run.mjs"))
        .arg(dir.join(scenario))
        .arg("--screenshots")
        .arg(root.join(".state/screenshots"))
        .env("PMJB_NODE_MODULES", &tools.node_modules)
        .env("PMJB_CHROMIUM", crate::tools::CHROMIUM)
        .current_dir(&root);
    for (name, value) in args {
        cmd.arg(format!("--{name}")).arg(value);
    }
    let status = cmd.status()?;
    if !status.success() {
        bail!("browser scenario {scenario} failed ({status}); its failed checks are printed above");
    }
    Ok(())
}

/// The browser scenarios, each as one check of the suite.
pub fn checks(tools: &Tools, sandbox: &exact_sandbox::Sandbox) -> Vec<(&'static str, Result<()>)> {
    vec![
        (
            "browser: the harness's strict checks pass a clean page and fail one with an axe violation, a console error, a page error and an outside request",
            run_scenario(tools, "harness-self-test.mjs", &[]),
        ),
        (
            "browser: sign-in on the Exact sandbox's login page (wrong password, demo/demo to a code and the echoed state, denied consent), screenshots at 1280 and 390 pixels",
            run_scenario(
                tools,
                "exact-sandbox-sign-in.mjs",
                &[
                    ("base-url", sandbox.base_url()),
                    ("client-id", sandbox.client_id()),
                ],
            ),
        ),
    ]
}
