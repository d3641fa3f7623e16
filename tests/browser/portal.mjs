// The customer portal in a real browser, step by step as a customer goes:
// the public pages (both languages, desktop and phone, strict axe), signing
// in with Exact through the sandbox's page, the first-run page with its key,
// the dashboard, and what a customer manages there. Hostile requests (a
// cross-site form, a replayed callback, a foreign return_to) are harmless.
//
// Options:
//   --base-url    the portal
//   --sandbox-url the Exact sandbox (its sign-in page must be allowed)
//   --mode        first-run | manage | limit | reconnect | signout | english | delete
//   --username    the sandbox login (and password)
//   --out         where first-run writes the key it was shown
//   --d1          the local D1 file (reconnect breaks the connection there)
//   --email       the customer's e-mail address at Exact
import { writeFileSync } from "node:fs";

import { cleanPage, expect, localServer, note } from "./harness.mjs";

export const name = "portal";

const PUBLIC = [
  ["home", "/"],
  ["home-en", "/en/"],
  ["security", "/veiligheid"],
  ["security-en", "/en/security"],
  ["pricing", "/prijzen"],
  ["pricing-en", "/en/pricing"],
  ["tools", "/tools"],
  ["tools-en", "/en/tools"],
  ["setup", "/installeren"],
  ["setup-en", "/en/setup"],
  ["demo", "/demo"],
  ["demo-en", "/en/demo"],
  ["status", "/status"],
  ["status-en", "/en/status"],
];

/// Signs in from a home page (Dutch `/` unless told): the button, the
/// region choice, the sandbox's login page, back at the portal.
async function signIn(page, base, username, home = "/") {
  await page.goto(`${base}${home}`);
  await page.clickAndNavigate("header a.button");
  expect(new URL(page.url()).pathname === "/connect", `not on /connect: ${page.url()}`);
  await page.clickAndNavigate("form button[type=submit]");
  expect((await page.title()).includes("Inloggen"), `not at the Exact sign-in page: ${page.url()}`);
  await page.fill({ "#username": username, "#password": username });
  await page.clickAndNavigate("#allow");
}

export default async function (t) {
  const base = t.args["base-url"];
  const mode = t.args.mode ?? "first-run";
  const username = t.args.username ?? "other";
  expect(base && t.args["sandbox-url"], "needs --base-url and --sandbox-url");
  t.browser.allow(t.args["sandbox-url"]);
  const page = await t.browser.newPage();

  if (mode === "first-run") {
    await t.check("every public page, in both languages, passes axe at desktop and phone width", async () => {
      for (const [shot, path] of PUBLIC) {
        const reply = await page.goto(`${base}${path}`);
        expect(reply?.status() === 200, () => `${path}: status ${reply?.status()}`);
        // Screenshots and axe at desktop and phone width.
        await page.inspect(shot);
      }
    });

    await t.check("a new customer signs in with Exact and sees administrations, a key once, set-up and a first question", async () => {
      await signIn(page, base, username);
      const url = new URL(page.url());
      expect(url.pathname === "/callback", `landed on ${page.url()}`);
      const h1 = await page.text("h1");
      expect(h1 === "Welkom", `h1 ${JSON.stringify(h1)}`);
      const key = (await page.text("#api-key")).trim();
      expect(/^pmjb_[0-9a-f]{64}$/.test(key), `key ${JSON.stringify(key)}`);
      const sections = await page.texts("main h2");
      expect(
        JSON.stringify(sections) ===
          JSON.stringify(["Gevonden administraties", "Je API-sleutel", "Koppel je assistent", "Stel je eerste vraag"]),
        `sections in this order: ${JSON.stringify(sections)}`,
      );
      const setup = await page.text("main");
      for (const assistant of ["Claude Code", "Claude Desktop", "claude.ai", "ChatGPT", "Cursor", "VS Code"]) {
        expect(setup.includes(assistant), `no set-up for ${assistant}`);
      }
      expect((await page.text("#wsnippet-claude-code")).includes(key), "the snippet lacks the key");
      // An administration named `<script>alert(1)</script> Holding B.V.`
      // at Exact is shown as that text, and nothing runs.
      const found = await page.text("main");
      expect(found.includes("<script>alert(1)</script> Holding B.V."), "the hostile name is not shown as text");
      expect((await page.locate("main script").count()) === 0, "a script element came from a name");
      await page.inspect("first-run");
      if (t.args.out) writeFileSync(t.args.out, key);
      note(`key written for the SDK check`);
    });

    await t.check("the callback replayed lands on a clear page and creates nothing", async () => {
      const replay = page.url();
      const reply = await page.goto(replay);
      expect(reply?.status() === 400, `status ${reply?.status()}`);
      expect((await page.text("h1")).includes("verlopen"), "no clear page");
      await page.inspect("callback-replayed");
    });

    await t.check("the dashboard shows plan, usage chart, connection, administrations and the key", async () => {
      await page.goto(`${base}/dashboard`);
      const text = await page.text("main");
      for (const want of ["Free", "Koppelingen met Exact Online", "werkt", "Eerste sleutel"]) {
        expect(text.includes(want), `dashboard lacks ${want}`);
      }
      expect((await page.locate("svg.chart").count()) >= 1, "no chart");
      expect(text.includes("<script>alert(1)</script> Holding B.V."), "the hostile name is not shown as text");
      expect((await page.locate("main script").count()) === 0, "a script element came from a name");
      await page.inspect("dashboard");
      const phone = await t.browser.newPage({ width: "phone" });
      // The phone has no session: it is sent to sign in, with the way back.
      await phone.goto(`${base}/dashboard`);
      expect(phone.url().includes("/connect?return_to=%2Fdashboard"), `phone at ${phone.url()}`);
    });
  }

  if (mode === "manage") {
    await t.check("a returning customer lands on the dashboard, renames and revokes the key", async () => {
      await signIn(page, base, username);
      expect(new URL(page.url()).pathname === "/dashboard", `landed on ${page.url()}`);
      await page.fill({ "form[action='/keys/rename'] input[name=name]": "Laptop <b>werk</b>" });
      await page.clickAndNavigate("form[action='/keys/rename'] button");
      const renamed = await page.text("main");
      expect(renamed.includes("Laptop <b>werk</b>"), "the new name is shown as text");
      expect((await page.locate("main b").count()) === 0, "the name was not escaped");
      await page.clickAndNavigate("form[action='/keys/revoke'] button");
      expect((await page.text("[role=status]")).includes("ingetrokken"), "no confirmation");
      await page.inspect("dashboard-revoked");
    });

    await t.check("a cross-site form post and a foreign return_to are harmless", async () => {
      // Another site's page posting a form to the portal with the browser
      // that is signed in there.
      const evil = await localServer({
        "/": cleanPage(
          "Win a prize",
          `<form method="post" action="${base}/keys"><input type="hidden" name="name" value="forged"><input type="hidden" name="csrf" value="${"0".repeat(64)}"><button id="go" type="submit">Claim</button></form>`,
        ),
      });
      t.browser.allow(evil.origin);
      try {
        await page.goto(`${evil.origin}/`);
        await page.clickAndNavigate("#go");
        note(`the forged post ended on ${page.url()}`);
      } finally {
        await evil.close();
      }
      await page.goto(`${base}/dashboard`);
      expect(!(await page.text("main")).includes("forged"), "the forged post created a key");
      const foreign = await page.goto(`${base}/connect?return_to=https%3A%2F%2Fevil.example%2F`);
      expect(foreign?.status() === 200, "connect page");
      expect((await page.locate("input[name=return_to]").count()) === 0, "a foreign return_to was kept");
    });
  }

  if (mode === "limit") {
    await t.check("administrations go on up to the plan's limit, past it the reason is shown", async () => {
      await signIn(page, base, username);
      await page.goto(`${base}/dashboard`);
      const offButtons = page.locate("form[action='/administrations/toggle'] input[name=on][value='1']");
      expect((await offButtons.count()) >= 1, "no administration to switch on");
      // The first administration that is off (the free plan leaves two on).
      await page.clickAndNavigate("form[action='/administrations/toggle']:has(input[name=on][value='1']) button >> nth=0");
      const alert = await page.text("[role=alert]");
      expect(alert.includes("actieve administraties toe"), `reason ${JSON.stringify(alert)}`);
      await page.inspect("dashboard-limit");
    });
  }

  if (mode === "reconnect") {
    await t.check("a connection whose consent was revoked says so and reconnects in one click", async () => {
      await signIn(page, base, username);
      // What the token cron records when Exact says the consent is gone:
      // revoked at the (sandbox's) Exact, `refresh_failed` in D1.
      const revoked = await fetch(`${t.args["sandbox-url"]}/__admin/revoke`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ username }),
      });
      expect(revoked.ok, `revoking at the sandbox: ${revoked.status}`);
      const { DatabaseSync } = await import("node:sqlite");
      const db = new DatabaseSync(t.args.d1);
      const changed = db
        .prepare(
          `UPDATE connections SET status = 'refresh_failed', retry_count = 0, next_retry_at = NULL,
             last_error = 'invalid_grant: consent revoked'
           WHERE user_id = (SELECT id FROM users WHERE email = ?)`,
        )
        .run(t.args.email).changes;
      db.close();
      expect(changed === 1, `changed ${changed} connections`);
      await page.goto(`${base}/dashboard`);
      expect((await page.text("main")).includes("verlopen"), "the broken connection is not shown");
      await page.inspect("dashboard-reconnect");
      await page.clickAndNavigate("a[href^='/connect?region=']");
      await page.fill({ "#username": username, "#password": username });
      await page.clickAndNavigate("#allow");
      expect(new URL(page.url()).pathname === "/dashboard", `landed on ${page.url()}`);
      expect(!(await page.text("main")).includes("verlopen"), "still broken after reconnecting");
    });
  }

  if (mode === "delete") {
    await t.check("deleting the account needs the word, then signs out and says what happened", async () => {
      await signIn(page, base, username);
      await page.goto(`${base}/dashboard`);
      await page.fill({ "#confirm": "VERWIJDEREN" });
      await page.clickAndNavigate("form[action='/account/delete'] button");
      expect((await page.text("h1")) === "Account verwijderd", "no confirmation page");
      await page.inspect("account-deleted");
      await page.goto(`${base}/dashboard`);
      expect(page.url().includes("/connect"), "still signed in after deleting");
    });
  }

  if (mode === "english") {
    // Texts of the Dutch signed-in pages an English page must not show.
    const DUTCH = ["Ingelogd als", "Abonnement en gebruik", "Koppelingen", "Administraties", "Sleutel maken", "Voorkeuren", "Uitloggen", "Kopieer"];
    const english = async (what) => {
      expect((await page.raw.getAttribute("html", "lang")) === "en", `${what}: <html lang> is not en`);
      const text = await page.text("body");
      for (const dutch of DUTCH) expect(!text.includes(dutch), `${what} shows the Dutch ${JSON.stringify(dutch)}`);
    };
    await t.check("from the English pages, signing in and the dashboard speak English (the header switch sets the preference)", async () => {
      await page.goto(`${base}/en/`);
      await page.clickAndNavigate("header a.button");
      const url = new URL(page.url());
      expect(url.pathname === "/connect" && url.searchParams.get("lang") === "en", `not on the English /connect: ${page.url()}`);
      await english("the region choice");
      await page.inspect("connect-en");
      await page.clickAndNavigate("form button[type=submit]");
      await page.fill({ "#username": username, "#password": username });
      await page.clickAndNavigate("#allow");
      // A returning customer keeps the language they chose: Dutch.
      expect(new URL(page.url()).pathname === "/dashboard", `landed on ${page.url()}`);
      expect((await page.raw.getAttribute("html", "lang")) === "nl", "the stored preference is Dutch");
      // The header's switch is a form: no script needed, and it changes the preference.
      await page.clickAndNavigate("header form[action='/language'] button");
      expect(new URL(page.url()).pathname === "/dashboard", `after the switch on ${page.url()}`);
      await english("the dashboard");
      const text = await page.text("main");
      for (const want of ["Signed in as", "Plan and usage", "Connections with Exact Online", "Create key", "Preferences", "type DELETE to confirm"]) {
        expect(text.includes(want), `the English dashboard lacks ${want}`);
      }
      await page.inspect("dashboard-en");
      await page.fill({ "#key-name": "Laptop" });
      await page.clickAndNavigate("form[action='/keys'] button");
      await english("the new key's page");
      expect((await page.text("h1")) === "New API key", "not the new key's page");
      await page.inspect("key-created-en");
    });

    await t.check("the preferences form switches back to Dutch on the next page", async () => {
      await page.goto(`${base}/dashboard`);
      await page.raw.selectOption("#locale", "nl");
      await page.clickAndNavigate("form[action='/preferences'] button");
      expect((await page.raw.getAttribute("html", "lang")) === "nl", "still English after choosing Dutch");
      expect((await page.text("[role=status]")).includes("opgeslagen"), "no Dutch confirmation");
    });
  }

  if (mode === "signout") {
    await t.check("signing out ends the session", async () => {
      await signIn(page, base, username);
      await page.clickAndNavigate("form[action='/signout'] button");
      await page.goto(`${base}/dashboard`);
      expect(page.url().includes("/connect"), "still signed in after signing out");
    });
  }
}
