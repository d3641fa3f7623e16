// The browser harness of the end-to-end suite: Debian's Chromium driven by
// playwright-core (both pinned by the project, no browser download), with
// the checks every page of the product must pass built in:
//
// - every inspected page is screenshotted at desktop and phone width into
//   `.state/screenshots/<scenario>/<page>-<width>.png`;
// - axe-core runs on it at both widths with the WCAG 2.0/2.1 A and AA tags;
//   any violation fails (strict, the default) or is only printed
//   (`a11y: "report"`, for pages that are not the product's, such as the
//   Exact sandbox's sign-in page);
// - a console error, an uncaught page error, or a request to an origin that
//   is not allowed fails the check that caused it. Requests to other origins
//   are blocked, so a test never reaches outside the machine.
//
// Plain Node ESM, no test framework: `run.mjs` loads a scenario file and
// prints one line per check.
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.resolve(here, "../..");

// The pinned npm packages live in wrangler/node_modules, which is not an
// ancestor of this folder, so they are loaded through a require rooted there.
const NODE_MODULES = process.env.PMJB_NODE_MODULES ?? path.join(ROOT, "wrangler/node_modules");
const requireFromTools = createRequire(path.join(NODE_MODULES, "_harness.cjs"));
const { chromium } = requireFromTools("playwright-core");
const AXE_SOURCE = fs.readFileSync(requireFromTools.resolve("axe-core/axe.min.js"), "utf8");

export const CHROMIUM = process.env.PMJB_CHROMIUM ?? "/usr/bin/chromium";

/// The flags that make Chromium work on a machine with a closed network:
/// without the background-networking ones it keeps trying to reach Google.
/// Playwright adds `--headless` and a fresh temporary `--user-data-dir` of
/// its own on every launch (it refuses one passed here).
export const CHROMIUM_FLAGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  // Debian's launcher adds this only when its /dev/shm check works, and that
  // check misreads machines with two /dev/shm mounts; a small /dev/shm (as in
  // containers) otherwise crashes the renderer.
  "--disable-dev-shm-usage",
];

export const WIDTHS = {
  desktop: { width: 1280, height: 800 },
  phone: { width: 390, height: 844 },
};

export const AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"];

/// A failed check's reason, kept readable (no stack trace of the harness).
export class CheckFailure extends Error {}

export function fail(message) {
  throw new CheckFailure(message);
}

export function expect(condition, message) {
  if (!condition) fail(typeof message === "function" ? message() : message);
}

/// `"report"`-mode findings and other notes go through this, indented under
/// the check that produced them.
export function note(line) {
  console.log(`    ${line}`);
}

/// Formats axe violations: one line per rule, with its impact, help text and
/// the CSS selectors of (at most five of) the offending elements.
export function summarizeViolations(violations) {
  return violations
    .map((v) => {
      const targets = v.nodes.map((n) => n.target.join(" ")).slice(0, 5);
      const more = v.nodes.length > 5 ? ` (+${v.nodes.length - 5} more)` : "";
      return `${v.id} [${v.impact ?? "n/a"}] ${v.help}: ${targets.join(", ")}${more}`;
    })
    .join("\n");
}

function originOf(url) {
  try {
    return new URL(url).origin;
  } catch {
    return null;
  }
}

export class Browser {
  /// Launches Chromium for one scenario. `allowedOrigins` are the origins
  /// the pages may load from; everything else is blocked and recorded.
  static async launch({ scenario, allowedOrigins = [], screenshots } = {}) {
    if (!fs.existsSync(CHROMIUM)) {
      fail(
        `${CHROMIUM} is missing: run \`cargo xtask setup\` as root, or ` +
          "`sudo apt-get install -y --no-install-recommends chromium fonts-dejavu-core`",
      );
    }
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_FLAGS,
    });
    const dir = path.join(screenshots ?? path.join(ROOT, ".state/screenshots"), scenario);
    // A fresh set per run: a screenshot left from an older run would show
    // a page that no longer looks like that.
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(dir, { recursive: true });
    return new Browser(browser, dir, allowedOrigins);
  }

  constructor(browser, screenshotDir, allowedOrigins) {
    this.browser = browser;
    this.screenshotDir = screenshotDir;
    this.allowed = new Set(allowedOrigins.map(originOf).filter(Boolean));
    this.pages = [];
    this.screenshots = [];
  }

  allow(origin) {
    this.allowed.add(originOf(origin));
  }

  /// A new page in its own browser context (its own cookies), at the given
  /// width (`"desktop"` or `"phone"`).
  async newPage({ width = "desktop" } = {}) {
    const context = await this.browser.newContext({ viewport: WIDTHS[width], locale: "nl-NL" });
    const page = new Page(this, context, await context.newPage(), width);
    this.pages.push(page);
    return page;
  }

  /// Fails with every console error, page error and outside request seen
  /// since the last call, on any page; the runner calls it after each check.
  takeProblems() {
    return this.pages.flatMap((p) => p.takeProblems());
  }

  async close() {
    await this.browser.close();
  }
}

export class Page {
  constructor(browser, context, page, width) {
    this.owner = browser;
    this.context = context;
    this.raw = page;
    this.width = width;
    this.consoleErrors = [];
    this.pageErrors = [];
    this.outside = [];
    page.on("console", (m) => {
      if (m.type() !== "error") return;
      // A page answered with a 4xx status on purpose (a refused form, an
      // expired link) makes Chromium log its status as an error; that is
      // the page's own status, which the check asserts. A failing
      // subresource (a stylesheet, a script) is still an error.
      const where = m.location().url || page.url();
      if (m.text().startsWith("Failed to load resource: the server responded with a status of 4") && where === page.url()) return;
      this.consoleErrors.push(`${m.text()} (${where})`);
    });
    page.on("pageerror", (e) => this.pageErrors.push(String(e.message ?? e)));
    // Every request passes here: the allowed origins continue, everything
    // else is recorded and blocked, so nothing leaves the machine.
    context.route("**/*", (route) => {
      const url = route.request().url();
      if (this.owner.allowed.has(originOf(url))) return route.continue();
      this.outside.push(`${route.request().method()} ${url}`);
      return route.abort("blockedbyclient");
    });
  }

  /// The problems seen since the last call, as readable lines; clears them.
  takeProblems() {
    const out = [
      ...this.consoleErrors.map((e) => `console error: ${e}`),
      ...this.pageErrors.map((e) => `page error: ${e}`),
      ...this.outside.map((r) => `request outside the allowed origins: ${r}`),
    ];
    this.consoleErrors = [];
    this.pageErrors = [];
    this.outside = [];
    return out;
  }

  url() {
    return this.raw.url();
  }

  async goto(url) {
    const reply = await this.raw.goto(url, { waitUntil: "load" });
    return reply;
  }

  /// Fills form fields: `{ selector: value }`; a selector may also be a
  /// label's text as `label=Text`.
  async fill(fields) {
    for (const [selector, value] of Object.entries(fields)) {
      await this.locate(selector).fill(String(value));
    }
  }

  async click(selector) {
    await this.locate(selector).click();
  }

  /// Clicks and waits until the browser has loaded the page the click led to
  /// (a form submit or a link, through any redirects).
  async clickAndNavigate(selector) {
    await Promise.all([this.raw.waitForNavigation({ waitUntil: "load" }), this.locate(selector).click()]);
  }

  /// The visible text of the first element matching `selector`.
  async text(selector = "body") {
    return (await this.locate(selector).first().innerText()).trim();
  }

  /// The visible texts of every element matching `selector`.
  async texts(selector) {
    return (await this.locate(selector).allInnerTexts()).map((t) => t.trim());
  }

  async title() {
    return this.raw.title();
  }

  locate(selector) {
    if (selector.startsWith("label=")) return this.raw.getByLabel(selector.slice(6));
    return this.raw.locator(selector);
  }

  /// The checks every page gets, at desktop and phone width: a full-page
  /// screenshot, axe-core with the WCAG A/AA tags, and no console error,
  /// page error or outside request so far. `a11y: "report"` prints axe's
  /// findings instead of failing on them (pages that are not the product's).
  /// Throws a readable summary of everything wrong; returns the violations.
  async inspect(name, { a11y = "strict" } = {}) {
    const found = [];
    const violations = [];
    for (const [width, size] of Object.entries(WIDTHS)) {
      await this.raw.setViewportSize(size);
      const file = path.join(this.owner.screenshotDir, `${name}-${size.width}.png`);
      await this.raw.screenshot({ path: file, fullPage: true });
      this.owner.screenshots.push(file);
      const result = await this.axe();
      if (result.length === 0 && a11y === "report") {
        note(`axe (report only) on ${name} at ${width} ${size.width}px: no violations`);
      }
      if (result.length > 0) {
        violations.push(...result);
        const summary = summarizeViolations(result).split("\n");
        if (a11y === "report") {
          note(`axe (report only) on ${name} at ${width} ${size.width}px: ${result.length} rule(s) violated`);
          summary.forEach((l) => note(`  ${l}`));
        } else {
          found.push(`axe on ${name} at ${width} ${size.width}px:`, ...summary.map((l) => `  ${l}`));
        }
      }
    }
    await this.raw.setViewportSize(WIDTHS[this.width]);
    found.push(...this.takeProblems());
    if (found.length > 0) fail(`${name} (${this.url()}):\n${found.join("\n")}`);
    return violations;
  }

  /// Runs axe-core in the page. It is evaluated through the DevTools
  /// protocol rather than added as a script tag, so a page's strict
  /// Content-Security-Policy (no inline script) does not block it.
  async axe() {
    const loaded = await this.raw.evaluate(() => typeof window.axe !== "undefined");
    // The trailing `true` keeps the evaluation's value serializable.
    if (!loaded) await this.raw.evaluate(`${AXE_SOURCE}\n;true`);
    const result = await this.raw.evaluate(
      (tags) => window.axe.run(document, { runOnly: { type: "tag", values: tags }, resultTypes: ["violations"] }),
      AXE_TAGS,
    );
    return result.violations;
  }
}

/// A tiny HTTP server on a free loopback port for a scenario's own pages
/// (`routes`: path → HTML or `{ body, headers }`) and for redirect targets; it records every
/// request it receives. Its origin must be allowed by the caller.
export async function localServer(routes = {}) {
  const http = await import("node:http");
  const requests = [];
  const server = http.createServer((req, res) => {
    requests.push({ method: req.method, url: req.url });
    const { pathname } = new URL(req.url, "http://127.0.0.1");
    const route = routes[pathname];
    if (route === undefined) {
      res.writeHead(404, { "content-type": "text/plain" });
      res.end("not found");
      return;
    }
    // A route is its HTML, or `{ body, headers }` for other headers.
    const { body, headers = {} } = typeof route === "string" ? { body: route } : route;
    const type = pathname.endsWith(".svg") ? "image/svg+xml" : "text/html; charset=utf-8";
    res.writeHead(200, { "content-type": type, ...headers });
    res.end(body);
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const origin = `http://127.0.0.1:${server.address().port}`;
  return {
    origin,
    requests,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

/// A minimal page that passes every strict check, for a scenario's own
/// landing pages (a redirect target, a self-test).
export function cleanPage(title, body) {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${title}</title></head><body><main><h1>${title}</h1>${body}</main></body></html>`;
}

/// The pixel width of a PNG file (its IHDR chunk), to check screenshots.
export function pngWidth(file) {
  const bytes = fs.readFileSync(file);
  expect(bytes.subarray(1, 4).toString() === "PNG", `${file} is not a PNG`);
  return bytes.readUInt32BE(16);
}
