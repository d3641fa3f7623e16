// Runs one browser scenario: `node run.mjs <scenario-file> [--base-url URL]
// [--screenshots DIR] [--name value ...]`. Prints one line per check and a closing
// `N passed, N failed`; exits non-zero when a check failed.
//
// A scenario file exports `name` (the screenshot folder) and a default
// async function receiving `t`: `t.args` (the options, `--base-url` as
// `t.args["base-url"]`), `t.browser` (the harness's Browser, launched with
// the base URL's origin allowed) and `t.check(name, fn)`, which runs `fn`
// and then fails it on any console error, page error or outside request
// that was not already reported by an inspection.
import path from "node:path";
import { pathToFileURL } from "node:url";

import { Browser, CheckFailure } from "./harness.mjs";

function parseArgs(argv) {
  const [file, ...rest] = argv;
  const args = {};
  for (let i = 0; i < rest.length; i++) {
    const key = rest[i];
    if (!key.startsWith("--") || i + 1 >= rest.length) {
      throw new Error(`expected --name value pairs, got ${JSON.stringify(key)}`);
    }
    args[key.slice(2)] = rest[++i];
  }
  return { file, args };
}

function reason(e) {
  // Harness failures are already readable; anything else (a playwright
  // timeout, a bug in the scenario) keeps its first stack lines.
  if (e instanceof CheckFailure) return e.message;
  return String(e?.stack ?? e).split("\n").slice(0, 6).join("\n");
}

async function main() {
  const { file, args } = parseArgs(process.argv.slice(2));
  if (!file) {
    console.error("usage: node run.mjs <scenario-file> [--base-url URL] [--name value ...]");
    process.exit(2);
  }
  const scenario = await import(pathToFileURL(path.resolve(file)).href);
  // `--scenario-name` keeps the screenshots of one scenario file run in
  // several modes apart (each run starts its folder afresh).
  const name = args["scenario-name"] ?? scenario.name ?? path.basename(file, ".mjs");
  const started = Date.now();
  let passed = 0;
  let failed = 0;
  let browser;
  try {
    browser = await Browser.launch({
      scenario: name,
      allowedOrigins: args["base-url"] ? [args["base-url"]] : [],
      screenshots: args.screenshots,
    });
  } catch (e) {
    console.log(`browser ${name}: launch Chromium ... FAILED\n    ${reason(e).replaceAll("\n", "\n    ")}`);
    console.log(`\n0 passed, 1 failed`);
    process.exit(1);
  }
  const t = {
    args,
    browser,
    async check(checkName, fn) {
      const t0 = Date.now();
      try {
        await fn();
        const left = browser.takeProblems();
        if (left.length > 0) throw new CheckFailure(left.join("\n"));
        console.log(`browser ${name}: ${checkName} ... ok (${Date.now() - t0} ms)`);
        passed++;
      } catch (e) {
        browser.takeProblems();
        console.log(`browser ${name}: ${checkName} ... FAILED\n    ${reason(e).replaceAll("\n", "\n    ")}`);
        failed++;
      }
    },
  };
  try {
    await scenario.default(t);
  } catch (e) {
    console.log(`browser ${name}: scenario aborted ... FAILED\n    ${reason(e).replaceAll("\n", "\n    ")}`);
    failed++;
  } finally {
    await browser.close();
  }
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  console.log(`browser ${name}: ${browser.screenshots.length} screenshots in ${browser.screenshotDir} (${seconds} s)`);
  console.log(`\n${passed} passed, ${failed} failed`);
  process.exit(failed > 0 ? 1 : 0);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
