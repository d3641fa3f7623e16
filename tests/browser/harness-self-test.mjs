// The harness's own scenario: proves its strict checks pass a clean page
// and fail a broken one (an image without alt text, a console error, an
// uncaught page error and a request to another origin), naming each, so a
// passing product scenario means something. The pages are served by a tiny
// local server of this scenario.
import { cleanPage, expect, fail, localServer, pngWidth, CheckFailure, WIDTHS } from "./harness.mjs";

export const name = "harness-self-test";

const BROKEN = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Broken</title></head>
<body><main><h1>Broken on purpose</h1>
<img src="/pixel.svg">
<img src="https://outside.invalid/tracker.png" alt="tracker">
<script>console.error("self-test console error"); setTimeout(() => { throw new Error("self-test page error"); });</script>
</main></body></html>`;

const ALT_ONLY = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>No alt</title></head>
<body><main><h1>An image without alt text</h1><img src="/pixel.svg"></main></body></html>`;

// Served with a CSP like the portal's (no inline script): axe must still
// run, and the refused inline script must surface as a console error.
const STRICT_CSP = {
  body: `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Strict CSP</title></head>
<body><main><h1>Strict CSP</h1><img src="/pixel.svg"><script>document.title = "ran";</script></main></body></html>`,
  headers: { "content-security-policy": "default-src 'self'; script-src 'self'; frame-ancestors 'none'" },
};

const PIXEL = `<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>`;

export default async function (t) {
  const server = await localServer({
    "/clean": cleanPage("Clean", `<p>Everything in order.</p><form><label>Name <input name="n"></label><button>Send</button></form>`),
    "/broken": BROKEN,
    "/alt-only": ALT_ONLY,
    "/pixel.svg": PIXEL,
    "/strict-csp": STRICT_CSP,
  });
  t.browser.allow(server.origin);
  const page = await t.browser.newPage();
  try {
    await t.check("a clean page passes the strict checks and is screenshotted at 1280 and 390 pixels wide", async () => {
      await page.goto(`${server.origin}/clean`);
      await page.fill({ "label=Name": "Jan" });
      expect((await page.raw.inputValue("input[name=n]")) === "Jan", "the form helper did not fill the field");
      const violations = await page.inspect("clean");
      expect(violations.length === 0, "axe found violations on the clean page");
      const shots = t.browser.screenshots.filter((f) => f.includes("clean-"));
      expect(shots.length === 2, () => `expected 2 screenshots, got ${shots.join(", ")}`);
      for (const { width } of Object.values(WIDTHS)) {
        const file = shots.find((f) => f.endsWith(`clean-${width}.png`));
        expect(file && pngWidth(file) === width, () => `no ${width}px screenshot in ${shots.join(", ")}`);
      }
    });

    await t.check("a page with an image without alt, a console error, a page error and an outside request fails the strict checks, naming each", async () => {
      await page.goto(`${server.origin}/broken`);
      // The page error is thrown from a timer: let it fire.
      await page.raw.waitForTimeout(100);
      let message = null;
      try {
        await page.inspect("broken");
      } catch (e) {
        if (!(e instanceof CheckFailure)) throw e;
        message = e.message;
      }
      expect(message !== null, "the strict checks passed a broken page");
      for (const needle of [
        "image-alt [critical]",
        "console error: self-test console error",
        "page error: self-test page error",
        "request outside the allowed origins: GET https://outside.invalid/tracker.png",
      ]) {
        expect(message.includes(needle), () => `the failure does not name ${JSON.stringify(needle)}:\n${message}`);
      }
      // Nothing of it may leak into the next check.
      expect(t.browser.takeProblems().length === 0, "inspect did not clear what it reported");
    });

    await t.check("report-only mode prints axe violations without failing", async () => {
      await page.goto(`${server.origin}/alt-only`);
      const violations = await page.inspect("alt-only", { a11y: "report" });
      expect(
        violations.some((v) => v.id === "image-alt"),
        () => `report mode did not return the image-alt violation: ${violations.map((v) => v.id)}`,
      );
    });

    await t.check("axe runs on a page whose CSP forbids inline script, and the refused script is a console error", async () => {
      await page.goto(`${server.origin}/strict-csp`);
      let message = null;
      try {
        await page.inspect("strict-csp");
      } catch (e) {
        if (!(e instanceof CheckFailure)) throw e;
        message = e.message;
      }
      expect(message !== null, "the strict checks passed a page with a refused inline script");
      expect(message.includes("image-alt [critical]"), () => `axe did not run under the CSP:\n${message}`);
      expect(/console error: .*Content Security Policy/.test(message), () => `the CSP refusal was not reported:\n${message}`);
    });

    await t.check("a console error during a check fails that check, even without an inspection", async () => {
      await page.raw.evaluate(() => console.error("late error"));
      const left = t.browser.takeProblems();
      if (!left.some((l) => l.includes("late error"))) fail(`not recorded: ${JSON.stringify(left)}`);
    });
  } finally {
    await server.close();
  }
}
