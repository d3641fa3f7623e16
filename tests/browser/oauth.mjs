// One-click connect for assistants, proven with real clients: the official
// MCP Python SDK's OAuth client (`tests/sdk/oauth_flow.py`) and the hostile
// HTTP checks (`tests/sdk/oauth_hostile.py`) run as child processes; each
// time one needs a browser it prints `BROWSER <allow|deny|look> <url>` and
// this scenario does it in one signed-in Chromium and answers with a JSON
// line on the child's stdin (the protocol is described in
// `tests/sdk/oauth_support.py`). The first authorization request signs in
// through the portal's sign-in with Exact (the sandbox's login page); the
// consent page gets the harness's checks (strict axe, screenshots at
// desktop and phone width).
//
// The official MCP conformance suite's authorization-server scenarios run
// the same way: it prints the authorization URL, this browser completes it.
//
// The children print `CHECK <id> ok|FAILED <reason>` lines; this scenario
// adds its own (`browser.*`) and writes them all to `--results` as JSON
// (`{id: {ok, detail}}`) for `cargo xtask test`, which turns each into a
// named line of the e2e summary.
//
// Options:
//   --base-url       the portal (issuer)
//   --strict-portal  a second portal without OAUTH_ALLOW_PRIVATE_CLIENT_HOSTS
//   --sandbox-url    the Exact sandbox (its sign-in page must be allowed)
//   --mcp-url        the MCP endpoint (…/mcp)
//   --python         the SDK's Python
//   --tls            the run's throw-away CA folder (tests/sdk/test_ca.py)
//   --d1             the local D1 file
//   --username       the sandbox login (and password)
//   --divisions      that login's Exact administrations, comma-separated
//   --results        where to write the results
//   --only           comma-separated runs to do (cimd,dcr,conformance,deny,hostile); all by default
import { spawn } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { createInterface } from "node:readline";

import { ROOT, expect, note } from "./harness.mjs";

export const name = "oauth";

const CHILD_TIMEOUT_MS = 300_000;

export default async function (t) {
  const a = t.args;
  for (const option of ["base-url", "sandbox-url", "mcp-url", "python", "tls", "d1", "username", "results"]) {
    expect(a[option], `needs --${option}`);
  }
  t.browser.allow(a["sandbox-url"]);
  if (a["strict-portal"]) t.browser.allow(a["strict-portal"]);
  const page = await t.browser.newPage();
  const results = {};
  mkdirSync(path.dirname(a.results), { recursive: true });
  const record = (id, ok, detail = "") => {
    results[id] = { ok, detail };
    writeFileSync(a.results, JSON.stringify(results, null, 2));
  };
  const state = { consentInspected: false, signInInspected: false };
  const portals = [a["base-url"], a["strict-portal"]].filter(Boolean).map((u) => new URL(u).origin);

  /// Follows the portal's sign-in with Exact (the region choice, the
  /// sandbox's login page) on `p` until the consent page, or gives up
  /// where the browser is. Returns whether the consent page is shown.
  async function reachConsent(p = page) {
    for (let step = 0; step < 6; step++) {
      if ((await p.locate("button[name=decision][value=allow]").count()) > 0) return true;
      const here = new URL(p.url());
      if (portals.includes(here.origin) && here.pathname === "/connect") {
        await p.clickAndNavigate("form button[type=submit]");
        continue;
      }
      if (here.origin === new URL(a["sandbox-url"]).origin && (await p.title()).includes("Inloggen")) {
        if (!state.signInInspected) {
          state.signInInspected = true;
          await p.inspect("exact-sign-in", { a11y: "report" });
        }
        await p.fill({ "#username": a.username, "#password": a.username });
        await p.clickAndNavigate("#allow");
        continue;
      }
      return false;
    }
    return false;
  }

  // The status of the last document the main frame loaded (after any
  // redirects): what a look at an authorization request saw.
  let lastStatus = null;
  page.raw.on("response", (r) => {
    if (r.request().isNavigationRequest() && r.frame() === page.raw.mainFrame()) lastStatus = r.status();
  });

  /// Does what a child asked in the browser and says what happened. Every
  /// action signs in first when the portal asks for it.
  async function act(action, url, run) {
    const reply = { url: null, status: null, consent: false, checked: null, error: null };
    try {
      // The client's loopback listener must be reachable from the page.
      const redirect = new URL(url).searchParams.get("redirect_uri");
      if (redirect) t.browser.allow(redirect);
      lastStatus = null;
      await page.goto(url);
      reply.consent = await reachConsent();
      if (action !== "look") {
        if (!reply.consent) {
          reply.url = page.url();
          reply.status = lastStatus;
          reply.error = `no consent page at ${page.url()}: ${(await page.text("h1").catch(() => "")) || "(no heading)"}`;
          return reply;
        }
        const boxes = page.locate("input[type=checkbox][name=administration]");
        const total = await boxes.count();
        if (!state.consentInspected) {
          state.consentInspected = true;
          try {
            expect(total >= 1, "no administration to choose on the consent page");
            const text = await page.text("main");
            expect(text.includes(run.clientName), `the consent page does not name the client ${JSON.stringify(run.clientName)}`);
            expect(text.includes("127.0.0.1"), "the consent page does not show the redirect host");
            const unchecked = await page.locate("input[type=checkbox][name=administration]:not(:checked)").count();
            expect(unchecked === 0, `${unchecked} administration(s) not pre-checked`);
            await page.inspect("consent");
            record("browser.consent", true, `${total} administrations, client and redirect host shown; axe clean at 1280 and 390 px`);
          } catch (e) {
            record("browser.consent", false, String(e.message ?? e));
          }
        }
        if (action === "allow" && run.uncheck && total >= 2) {
          await boxes.nth(total - 1).uncheck();
        }
        reply.checked = await page.locate("input[type=checkbox][name=administration]:checked").count();
        await page.clickAndNavigate(`button[name=decision][value=${action}]`);
      }
      reply.url = page.url();
      reply.status = lastStatus;
    } catch (e) {
      reply.url = page.url();
      reply.status = lastStatus;
      reply.error = String(e.message ?? e).split("\n")[0];
    }
    return reply;
  }

  /// Runs one child to its end, answering its browser requests; its
  /// checks go into the results. Fails when the child did.
  async function runChild(run) {
    const child = spawn(a.python, [path.join(ROOT, "tests/sdk", run.script), ...run.args], {
      cwd: path.join(ROOT, "tests/sdk"),
      env: { ...process.env, PYTHONUNBUFFERED: "1", PYTHONDONTWRITEBYTECODE: "1" },
      stdio: ["pipe", "pipe", "pipe"],
    });
    const stderr = [];
    createInterface({ input: child.stderr }).on("line", (l) => {
      stderr.push(l);
      if (stderr.length > 40) stderr.shift();
    });
    const exited = new Promise((resolve) => child.on("exit", (code) => resolve(code)));
    const timer = setTimeout(() => child.kill("SIGKILL"), CHILD_TIMEOUT_MS);
    const failures = [];
    try {
      for await (const line of createInterface({ input: child.stdout })) {
        const browserAsk = /^BROWSER (allow|deny|look) (\S+)$/.exec(line);
        if (browserAsk) {
          const reply = await act(browserAsk[1], browserAsk[2], run);
          note(`browser ${browserAsk[1]}: ended on ${reply.url} (${reply.status})${reply.error ? ` error ${reply.error}` : ""}`);
          child.stdin.write(`${JSON.stringify(reply)}\n`);
          continue;
        }
        const check = /^CHECK (\S+) (ok|FAILED)\s*(.*)$/.exec(line);
        if (check) {
          record(check[1], check[2] === "ok", check[3]);
          if (check[2] !== "ok") failures.push(`${check[1]}: ${check[3]}`);
        }
        note(line);
      }
    } finally {
      clearTimeout(timer);
    }
    const code = await exited;
    if (code !== 0 || failures.length > 0) {
      const tail = stderr.slice(-15).map((l) => `  ${l}`).join("\n");
      expect(false, `${run.script} ${run.args.join(" ")} exited ${code}:\n${failures.join("\n")}${tail ? `\nstderr:\n${tail}` : ""}`);
    }
  }

  /// The official MCP conformance suite's authorization-server scenarios
  /// (`conformance authorization`): it checks the metadata, then prints an
  /// authorization URL for a human to complete; this browser completes it.
  /// Its client is registered here through the portal's registration
  /// endpoint with the suite's loopback callback.
  async function conformance() {
    const issuer = a["base-url"];
    const port = await new Promise((resolve) => {
      const probe = net.createServer().listen(0, "127.0.0.1", () => {
        const { port: free } = probe.address();
        probe.close(() => resolve(free));
      });
    });
    try {
      const metadata = await fetch(`${issuer}/.well-known/oauth-authorization-server`);
      expect(metadata.ok, `${issuer}/.well-known/oauth-authorization-server answered ${metadata.status}`);
      const meta = await metadata.json();
      const registered = await fetch(meta.registration_endpoint, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          client_name: "MCP conformance suite",
          redirect_uris: [`http://127.0.0.1:${port}/callback`],
          token_endpoint_auth_method: "none",
        }),
      });
      expect(registered.status === 201, `registration: ${registered.status}`);
      const { client_id: clientId } = await registered.json();
      const modules = process.env.PMJB_NODE_MODULES ?? path.join(ROOT, "wrangler/node_modules");
      const out = path.join(path.dirname(a.results), "conformance-authorization");
      mkdirSync(out, { recursive: true });
      const child = spawn(
        process.execPath,
        [
          path.join(modules, "@modelcontextprotocol/conformance/dist/index.js"),
          "authorization",
          "--url", issuer,
          "--client-id", clientId,
          "--resource", a["mcp-url"],
          "--port", String(port),
          "--output-dir", out,
        ],
        { stdio: ["ignore", "pipe", "pipe"] },
      );
      const exited = new Promise((resolve) => child.on("exit", (code) => resolve(code)));
      const timer = setTimeout(() => child.kill("SIGKILL"), CHILD_TIMEOUT_MS);
      const lines = [];
      try {
        for await (const line of createInterface({ input: child.stdout })) {
          lines.push(line);
          if (/^https?:\/\/\S+\/authorize\?\S+$/.test(line.trim())) {
            const reply = await act("allow", line.trim(), { clientName: "MCP conformance suite" });
            note(`browser allow: ended on ${reply.url} (${reply.status})${reply.error ? ` error ${reply.error}` : ""}`);
          }
        }
      } finally {
        clearTimeout(timer);
      }
      const code = await exited;
      const summary = lines.filter((l) => /passed, \d+ failed|FAILURE|✗/.test(l)).join("; ");
      note(`conformance: ${summary}`);
      expect(code === 0, `conformance authorization exited ${code}: ${summary || lines.slice(-10).join(" | ")}`);
      record("conformance.authorization", true, summary);
    } catch (e) {
      record("conformance.authorization", false, String(e.message ?? e));
      throw e;
    }
  }

  const divisions = a.divisions ?? "";
  const runs = [
    {
      id: "cimd",
      title: "the SDK connects from nothing with a Client ID Metadata Document served over HTTPS: consent (one administration unchecked), tool call, refresh, revoke",
      script: "oauth_flow.py",
      args: ["--mcp-url", a["mcp-url"], "--mode", "cimd", "--tls", a.tls, "--divisions", divisions],
      clientName: "Testassistent (CIMD)",
      uncheck: true,
    },
    {
      id: "dcr",
      title: "the SDK connects from nothing with Dynamic Client Registration: consent, tool call, refresh, revoke",
      script: "oauth_flow.py",
      args: ["--mcp-url", a["mcp-url"], "--mode", "dcr", "--divisions", divisions],
      clientName: "Testassistent (DCR)",
    },
    {
      id: "deny",
      title: "refusing on the consent page makes the SDK fail with access_denied",
      script: "oauth_flow.py",
      args: ["--mcp-url", a["mcp-url"], "--mode", "deny", "--divisions", divisions],
      clientName: "Testassistent (DENY)",
    },
    {
      id: "hostile",
      title: "hostile authorization, token and registration requests get clear OAuth errors and nothing is issued",
      script: "oauth_hostile.py",
      args: [
        "--mcp-url", a["mcp-url"],
        "--tls", a.tls,
        "--d1", a.d1,
        "--strict-portal", a["strict-portal"] ?? a["base-url"],
      ],
      clientName: "Hostile test client",
    },
  ];
  // The sign-in the authorization requests go through, on its own first
  // (in a separate browser context, so the first authorization request
  // still meets a signed-out browser): it works before any OAuth endpoint
  // exists, and a failure here is not an OAuth failure.
  await t.check("sign-in with Exact through the portal's /connect lands on the dashboard", async () => {
    const probe = await t.browser.newPage();
    try {
      await probe.goto(`${a["base-url"]}/connect?return_to=%2Fdashboard`);
      await reachConsent(probe);
      const landed = new URL(probe.url());
      expect(landed.pathname === "/dashboard", `landed on ${probe.url()}`);
      record("browser.signin", true, `signed in as ${a.username}`);
    } catch (e) {
      record("browser.signin", false, String(e.message ?? e));
      throw e;
    } finally {
      await probe.context.close();
    }
  });
  const only = (a.only ?? "").split(",").filter(Boolean);
  for (const run of runs) {
    if (only.length > 0 && !only.includes(run.id)) continue;
    await t.check(run.title, () => runChild(run));
    if (run.id === "dcr" && (only.length === 0 || only.includes("conformance"))) {
      await t.check("the MCP conformance suite's authorization-server scenarios pass", conformance);
    }
  }
  if (only.includes("conformance") && !only.includes("dcr")) {
    await t.check("the MCP conformance suite's authorization-server scenarios pass", conformance);
  }
  writeFileSync(a.results, JSON.stringify(results, null, 2));
}
