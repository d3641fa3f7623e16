//! The MCP Apps group of the end-to-end suite (`PMJB_E2E_ONLY=apps`, part
//! of the full suite): every view, as the mcp-server in workerd serves it,
//! rendered by a test host page with the official host-side bridge in
//! headless Chromium, fed real tool results of a demo key
//! (`tests/browser/apps.mjs`).

use anyhow::Result;

use crate::tools::Tools;

/// The views in the browser, as one check of the suite.
pub fn checks(tools: &Tools, mcp_port: u16) -> Vec<(&'static str, Result<()>)> {
    let url = format!("http://127.0.0.1:{mcp_port}/mcp");
    vec![(
        "apps: every view renders a demo key's real tool result in a sandboxed iframe of a test host (the official bridge): numbers equal the structuredContent, interactions call the tools through the host, nothing leaves the frame, no console error, axe clean; screenshots in both themes and languages",
        crate::e2e_browser::run_scenario(
            tools,
            "apps.mjs",
            &[
                ("mcp-url", url.as_str()),
                ("demo-key", exact_sandbox::demo::KEYS[0].0),
            ],
        ),
    )]
}
