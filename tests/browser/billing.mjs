// Paying for a plan in a real browser, as a customer does it: from the
// usage-limit message's link to the local Stripe's checkout (a declined
// card first, which changes nothing; then a paying one), back to the
// portal, the plan changed by Stripe's signed webhook; then the billing
// portal: up to pro at once, a cancellation that waits for the period's
// end, and the end itself (the sandbox's clock moved past it).
//
// Options:
//   --base-url    the portal
//   --sandbox-url the Exact sandbox (with the local Stripe)
//   --mode        signup | upgrade | manage
//   --username    the sandbox login (and password)
//   --out         where signup writes the key it was shown
//   --d1, --email the local D1 file and the customer (manage reads Stripe's
//                 cancellation there and ends the paid period)
//   --cron-url    the token cron (manage runs it once)
import { writeFileSync } from "node:fs";

import { expect, note } from "./harness.mjs";

export const name = "billing";

async function signIn(page, base, username) {
  await page.goto(`${base}/`);
  await page.clickAndNavigate("header a.button");
  await page.clickAndNavigate("form button[type=submit]");
  expect((await page.title()).includes("Inloggen"), `not at the Exact sign-in page: ${page.url()}`);
  await page.fill({ "#username": username, "#password": username });
  await page.clickAndNavigate("#allow");
}

/// The plan the dashboard shows (its first `strong` in the plan section).
async function planShown(page, base) {
  await page.goto(`${base}/dashboard`);
  return (await page.text("section[aria-labelledby=plan] p strong")).trim();
}

/// Stripe's webhooks arrive a moment after the browser is back: the
/// dashboard is read until it shows `want` (or the time is up).
async function waitForPlan(page, base, want) {
  let shown = "";
  for (let i = 0; i < 40; i++) {
    shown = await planShown(page, base);
    if (shown === want) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`the dashboard shows ${JSON.stringify(shown)}, not ${want}`);
}

export default async function (t) {
  const base = t.args["base-url"];
  const sandbox = t.args["sandbox-url"];
  const mode = t.args.mode;
  expect(base && sandbox && mode, "needs --base-url, --sandbox-url and --mode");
  t.browser.allow(sandbox);
  const page = await t.browser.newPage();

  if (mode === "signup") {
    await t.check("a new customer signs up on the free plan and gets a key", async () => {
      await signIn(page, base, t.args.username);
      const key = (await page.text("#api-key")).trim();
      expect(/^pmjb_[0-9a-f]{64}$/.test(key), `key ${JSON.stringify(key)}`);
      writeFileSync(t.args.out, key);
      expect((await planShown(page, base)) === "Free", "not on free");
    });
  }

  if (mode === "upgrade") {
    await t.check("the limit message's link leads to checkout; a declined card changes nothing; a paid one makes the plan Starter", async () => {
      await signIn(page, base, t.args.username);
      await page.goto(`${base}/billing/upgrade?plan=starter`);
      await page.inspect("upgrade");
      await page.clickAndNavigate("form[action='/billing/checkout'] button");
      expect(page.url().startsWith(`${sandbox}/stripe/checkout/`), `not at checkout: ${page.url()}`);
      await page.fill({ "#cardnumber": "4000 0000 0000 0002" });
      await page.clickAndNavigate("#pay");
      expect((await page.text("[role=alert]")).includes("declined"), "no decline");
      const checkout = page.url();
      expect((await planShown(page, base)) === "Free", "a declined card changed the plan");
      await page.goto(checkout);
      await page.fill({ "#cardnumber": "4242 4242 4242 4242" });
      await page.clickAndNavigate("#pay");
      expect(new URL(page.url()).pathname === "/billing/success", `landed on ${page.url()}`);
      await page.inspect("paid");
      await waitForPlan(page, base, "Starter");
      await page.inspect("dashboard-starter");
    });
  }

  if (mode === "manage") {
    await t.check("the billing portal moves the plan up to Pro at once, a cancellation waits for the period's end, then Free", async () => {
      await signIn(page, base, t.args.username);
      await page.goto(`${base}/dashboard`);
      await page.clickAndNavigate("form[action='/billing/portal'] button");
      expect(page.url().startsWith(`${sandbox}/stripe/portal/`), `not at the billing portal: ${page.url()}`);
      await page.clickAndNavigate("#switch-price_pro_local");
      await page.clickAndNavigate("#return");
      await waitForPlan(page, base, "Pro");
      // On Pro: three more keys (four in all; free allows three) and a
      // third administration switched on (free serves two).
      let newest = "";
      for (const name of ["tweede", "derde", "vierde"]) {
        // Keys are ordered by their creation second (ties by id): a
        // second apart, "newest" is the one made last.
        await new Promise((r) => setTimeout(r, 1100));
        await page.fill({ "#key-name": name });
        await page.clickAndNavigate("form[action='/keys'] button");
        newest = (await page.text("#api-key")).trim();
        await page.goto(`${base}/dashboard`);
      }
      writeFileSync(t.args["newest-out"], newest);
      await page.clickAndNavigate("form[action='/administrations/toggle']:has(input[name=on][value='1']) button >> nth=0");
      const notes = await page.text("section[aria-labelledby=plan]");
      expect(notes.includes("vierde"), "the dashboard does not say which key a smaller plan stops");
      expect(notes.includes("Stap je over naar Free"), "what a smaller plan changes is not shown");
      await page.inspect("dashboard-pro");
      await page.clickAndNavigate("form[action='/billing/portal'] button");
      await page.clickAndNavigate("#cancel");
      await page.clickAndNavigate("#return");
      // Still Pro (paid for), and the coming change is shown.
      let text = "";
      for (let i = 0; i < 40; i++) {
        await page.goto(`${base}/dashboard`);
        text = await page.text("section[aria-labelledby=plan]");
        if (text.includes("Je abonnement wordt Free op")) break;
        await new Promise((r) => setTimeout(r, 250));
      }
      expect(text.includes("Je abonnement wordt Free op"), `no coming change: ${text.slice(0, 300)}`);
      expect((await planShown(page, base)) === "Pro", "the cancellation took effect before the period's end");
      await page.inspect("dashboard-cancelling");
      // The period ends (the sandbox's clock, as Stripe's test clocks).
      const shift = async (seconds) => {
        const moved = await fetch(`${sandbox}/__admin/clock`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ advance_seconds: seconds }),
        });
        expect(moved.ok, `moving the clock: ${moved.status}`);
      };
      const { DatabaseSync } = await import("node:sqlite");
      const db = new DatabaseSync(t.args.d1);
      const status = () =>
        db
          .prepare(
            `SELECT b.status AS status FROM billing_accounts b JOIN users u ON u.id = b.user_id WHERE u.email = ?`,
          )
          .get(t.args.email)?.status;
      try {
        await shift(32 * 24 * 3600);
        try {
          // Stripe ends the subscription at its period's end and says so.
          for (let i = 0; i < 40 && status() !== "canceled"; i++) {
            await new Promise((r) => setTimeout(r, 250));
          }
          expect(status() === "canceled", `Stripe's cancellation was not recorded (${status()})`);
        } finally {
          // Back to today: the suite's other logins live on the same clock
          // (Exact's tokens would look a month old).
          await shift(-32 * 24 * 3600);
        }
        // Our Workers' clock did not move with Stripe's test clock: the
        // period paid for still runs there, so the user is still on Pro
        // until it ends. Its end is moved into the past in D1 and the
        // cron, which applies changes whose time has come, runs.
        expect((await planShown(page, base)) === "Pro", "Pro ended before the period paid for");
        db.prepare(
          `UPDATE billing_accounts SET changes_at = unixepoch() - 1
           WHERE user_id = (SELECT id FROM users WHERE email = ?) AND changes_at IS NOT NULL`,
        ).run(t.args.email);
      } finally {
        db.close();
      }
      const ran = await fetch(`${t.args["cron-url"]}/cdn-cgi/handler/scheduled?cron=*/5+*+*+*+*`);
      expect(ran.ok, `running the cron: ${ran.status}`);
      await waitForPlan(page, base, "Free");
      await page.inspect("dashboard-free-again");
      note("free again after the period's end");
    });
  }
}
