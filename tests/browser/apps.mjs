// The MCP Apps views in a real browser: a test host page using the
// official host-side bridge (`apps-host.js`) loads each view, as the
// running mcp-server serves it to a client that negotiated the extension,
// in a sandboxed iframe, feeds it a real tool result from the demo books,
// and checks what a person would see: the numbers shown equal the tool's
// `structuredContent`, the view's interactions call the right tools
// through the host, nothing leaves the iframe, no console error, axe finds
// nothing; screenshots of every view in both themes and both languages.
//
// Options: --mcp-url http://127.0.0.1:PORT/mcp --demo-key pmjb_demo_…
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";

import { AXE_TAGS, ROOT, WIDTHS, expect, fail, localServer, note, summarizeViolations } from "./harness.mjs";
import { VIEWS, parseEuro } from "./apps-views.mjs";

export const name = "apps";

const NODE_MODULES = process.env.PMJB_NODE_MODULES ?? path.join(ROOT, "wrangler/node_modules");
const requireFromTools = createRequire(path.join(NODE_MODULES, "_harness.cjs"));
const AXE_SOURCE = fs.readFileSync(requireFromTools.resolve("axe-core/axe.min.js"), "utf8");

// The MCP Apps specification's restrictive default for a view (no
// `ui.csp` origins declared), applied to the host page so the srcdoc
// iframe inherits it.
const VIEW_CSP =
  "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; " +
  "img-src 'self' data:; media-src 'self' data:; connect-src 'none'; frame-src 'self'; base-uri 'self'";

const HOST_PAGE = `<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1"><link rel="icon" href="data:,"><title>MCP Apps test host</title>
<style>html,body{margin:0;background:#fff}html[data-theme=dark],html[data-theme=dark] body{background:#0b1220}
iframe{display:block;width:100%;border:0;height:200px}</style></head>
<body><main><h1 style="position:absolute;left:-9999px">MCP Apps test host</h1><div id="view"></div></main>
<script src="/host.js"></script></body></html>`;

/// An MCP client over Streamable HTTP that negotiates the extension in
/// `initialize` and keeps the session id the server hands out.
function mcpClient(url, key) {
  let id = 0;
  let session = null;
  const call = async (method, params) => {
    const headers = {
      "content-type": "application/json",
      accept: "application/json, text/event-stream",
      authorization: `Bearer ${key}`,
      "mcp-protocol-version": "2025-11-25",
      // A bucket of its own in the demo limiter.
      "cf-connecting-ip": "203.0.113.77",
    };
    if (session) headers["mcp-session-id"] = session;
    const r = await fetch(url, { method: "POST", headers, body: JSON.stringify({ jsonrpc: "2.0", id: ++id, method, params }) });
    const body = await r.json();
    if (method === "initialize") session = r.headers.get("mcp-session-id");
    if (body.error) fail(`${method}: ${JSON.stringify(body.error)}`);
    return body.result;
  };
  return {
    call,
    session: () => session,
    async initialize() {
      return call("initialize", {
        protocolVersion: "2025-11-25",
        capabilities: { extensions: { "io.modelcontextprotocol/ui": { mimeTypes: ["text/html;profile=mcp-app"] } } },
        clientInfo: { name: "pmjb-apps-test", version: "1.0.0" },
      });
    },
  };
}

async function bundleHost() {
  const esbuild = requireFromTools("esbuild");
  const out = await esbuild.build({
    entryPoints: [path.join(ROOT, "tests/browser/apps-host.js")],
    bundle: true,
    format: "iife",
    target: "es2020",
    write: false,
    nodePaths: [NODE_MODULES],
    logLevel: "warning",
  });
  return out.outputFiles[0].text;
}

/// The view's frame: the one child of the host page.
function viewFrame(page) {
  const frame = page.raw.mainFrame().childFrames()[0];
  expect(frame, "the host page has no view frame");
  return frame;
}

/// Waits until the iframe is as tall as the view says it is (the view
/// reports its size to the host, which resizes the iframe).
async function settle(page) {
  for (let i = 0; i < 100; i++) {
    const frame = viewFrame(page);
    const want = await frame.evaluate(() => Math.ceil(document.documentElement.scrollHeight));
    const have = await page.raw.evaluate(() => document.querySelector("iframe").clientHeight);
    if (want === have) return;
    await page.raw.waitForTimeout(50);
  }
}

export default async function (t) {
  const mcp = mcpClient(t.args["mcp-url"], t.args["demo-key"]);
  const server = await localServer({
    "/": { body: HOST_PAGE, headers: { "content-security-policy": VIEW_CSP } },
    "/host.js": { body: await bundleHost(), headers: { "content-type": "text/javascript" } },
  });
  t.browser.allow(server.origin);
  let tools;
  let htmlOf = {};
  const calls = [];
  const cache = new Map();
  // The host's answer to a view's tools/call: recorded, then asked of the
  // real server (an identical call is answered from the first answer, to
  // spare the demo limiter).
  const hostCallTool = async (params) => {
    const key = JSON.stringify(params);
    if (!cache.has(key)) cache.set(key, await mcp.call("tools/call", params));
    const result = cache.get(key);
    calls.push({ name: params.name, arguments: params.arguments, result });
    return result;
  };

  await t.check("the server negotiates MCP Apps: a session id, tools naming their views, the views listed and readable", async () => {
    const init = await mcp.initialize();
    expect(init.capabilities?.extensions?.["io.modelcontextprotocol/ui"], `no extension in ${JSON.stringify(init.capabilities)}`);
    expect(mcp.session()?.startsWith("mcp-apps.v1."), `session id ${mcp.session()}`);
    tools = (await mcp.call("tools/list", {})).tools;
    const resources = (await mcp.call("resources/list", {})).resources;
    for (const view of VIEWS) {
      const tool = tools.find((x) => x.name === view.tool);
      expect(tool?._meta?.ui?.resourceUri, `${view.tool} names no view`);
      const uri = tool._meta.ui.resourceUri;
      expect(resources.some((r) => r.uri === uri && r.mimeType === "text/html;profile=mcp-app"), `${uri} not listed`);
      const read = await mcp.call("resources/read", { uri });
      const content = read.contents[0];
      expect(content.mimeType === "text/html;profile=mcp-app", `${uri}: ${content.mimeType}`);
      htmlOf[view.tool] = content.text;
      note(`${uri}: ${content.text.length} bytes`);
    }
  });

  for (const view of VIEWS) {
    const result = await mcp.call("tools/call", { name: view.tool, arguments: view.args });
    expect(!result.isError, `${view.tool}: ${JSON.stringify(result.content)}`);
    for (const theme of ["light", "dark"]) {
      for (const locale of ["nl-NL", "en-US"]) {
        const lang = locale.slice(0, 2);
        await t.check(`${view.name} (${theme}, ${lang}): the numbers shown equal the tool's structuredContent; accessible; nothing leaves the frame`, async () => {
          const page = await t.browser.newPage();
          await page.raw.exposeFunction("hostCallTool", hostCallTool);
          await page.goto(`${server.origin}/`);
          const before = calls.length;
          await page.raw.evaluate(
            (a) => window.showView(a),
            { html: htmlOf[view.tool], toolName: view.tool, args: view.args, result, theme, locale },
          );
          const frame = viewFrame(page);
          await frame.waitForSelector("main[data-ready]");
          if (view.ready) await frame.waitForSelector(view.ready);
          const shown = await frame.evaluate(() => document.documentElement.lang);
          expect(shown === lang, `the view speaks ${shown}, the host ${lang}`);
          await view.verify({ frame, data: result.structuredContent, calls: calls.slice(before), parseEuro });
          await settle(page);
          // Screenshots at both widths, and axe inside the view's frame.
          for (const [width, size] of Object.entries(WIDTHS)) {
            await page.raw.setViewportSize(size);
            await settle(page);
            // The viewport as tall as the page: a full-page screenshot
            // leaves an out-of-process frame unpainted below the first
            // screen.
            const tall = await page.raw.evaluate(() => document.documentElement.scrollHeight);
            await page.raw.setViewportSize({ width: size.width, height: Math.max(size.height, tall) });
            await settle(page);
            const file = path.join(t.browser.screenshotDir, `${view.name}-${theme}-${lang}-${size.width}.png`);
            await page.raw.screenshot({ path: file });
            t.browser.screenshots.push(file);
            const loaded = await frame.evaluate(() => typeof window.axe !== "undefined");
            if (!loaded) await frame.evaluate(`${AXE_SOURCE}\n;true`);
            const axe = await frame.evaluate(
              (tags) => window.axe.run(document, { runOnly: { type: "tag", values: tags }, resultTypes: ["violations"] }),
              AXE_TAGS,
            );
            if (axe.violations.length > 0) {
              fail(`axe in ${view.name} (${theme}, ${lang}) at ${width}:\n${summarizeViolations(axe.violations)}`);
            }
          }
          const problems = page.takeProblems();
          if (problems.length > 0) fail(problems.join("\n"));
          await page.context.close();
        });
      }
    }
    if (view.interact) {
      await t.check(`${view.name}: ${view.interactName}`, async () => {
        const page = await t.browser.newPage();
        await page.raw.exposeFunction("hostCallTool", hostCallTool);
        await page.goto(`${server.origin}/`);
        await page.raw.evaluate(
          (a) => window.showView(a),
          { html: htmlOf[view.tool], toolName: view.tool, args: view.args, result, theme: "light", locale: "nl-NL" },
        );
        const frame = viewFrame(page);
        await frame.waitForSelector("main[data-ready]");
        if (view.ready) await frame.waitForSelector(view.ready);
        await view.interact({ frame, data: result.structuredContent, calls, parseEuro });
        const problems = page.takeProblems();
        if (problems.length > 0) fail(problems.join("\n"));
        await page.context.close();
      });
    }
  }

  await t.check("no view requested anything: the host page's server saw only the page and its script", async () => {
    const paths = [...new Set(server.requests.map((r) => `${r.method} ${r.url}`))].sort();
    expect(
      JSON.stringify(paths) === JSON.stringify(["GET /", "GET /host.js"]),
      `requests seen: ${JSON.stringify(paths)}`,
    );
  });
  await server.close();
}
