// Signing in on the Exact sandbox's own login page in a real browser: the
// first step of every portal flow (`/connect` sends the browser there). The
// redirect URI is a tiny local listener of this scenario, so the check sees
// exactly what a portal callback would receive. The sandbox is not the
// product, so axe only reports on its pages; the landing page is ours and
// gets the strict checks.
//
// Options: --base-url (the sandbox) --client-id (its registered app).
import { randomBytes } from "node:crypto";

import { cleanPage, expect, localServer } from "./harness.mjs";

export const name = "exact-sandbox-sign-in";

export default async function (t) {
  const sandbox = t.args["base-url"];
  const clientId = t.args["client-id"];
  expect(sandbox && clientId, "needs --base-url and --client-id");
  const callback = await localServer({ "/callback": cleanPage("Back from Exact", "<p>Signed in.</p>") });
  t.browser.allow(callback.origin);
  const redirectUri = `${callback.origin}/callback`;
  // Characters that must survive the round trip encoded, not only hex.
  const state = `${randomBytes(12).toString("hex")} &=/?`;
  const authorizeUrl =
    `${sandbox}/api/oauth2/auth?client_id=${encodeURIComponent(clientId)}` +
    `&redirect_uri=${encodeURIComponent(redirectUri)}&response_type=code&state=${encodeURIComponent(state)}`;

  const page = await t.browser.newPage();
  try {
    await t.check("the sign-in page shows its login form (axe: report only, not the product)", async () => {
      const reply = await page.goto(authorizeUrl);
      expect(reply?.status() === 200, () => `status ${reply?.status()}`);
      const title = await page.title();
      expect(title.includes("Inloggen"), `title ${JSON.stringify(title)}`);
      for (const field of ["#username", "#password", "#allow", "#deny"]) {
        expect((await page.locate(field).count()) === 1, `no ${field} on the sign-in page`);
      }
      await page.inspect("sign-in", { a11y: "report" });
    });

    await t.check("a wrong password shows the error and the form again, without redirecting", async () => {
      await page.fill({ "#username": "demo", "#password": "wrong" });
      await page.clickAndNavigate("#allow");
      const error = await page.text("[role=alert]");
      expect(error.includes("Onjuiste gebruikersnaam of wachtwoord"), `error text ${JSON.stringify(error)}`);
      expect(callback.requests.length === 0, "the redirect URI was called after a wrong password");
      await page.inspect("sign-in-error", { a11y: "report" });
    });

    await t.check("demo/demo and Toestaan redirect the browser to the redirect URI with a code and the state echoed", async () => {
      await page.fill({ "#username": "demo", "#password": "demo" });
      await page.clickAndNavigate("#allow");
      const landed = new URL(page.url());
      expect(`${landed.origin}${landed.pathname}` === redirectUri, `landed on ${page.url()}`);
      const code = landed.searchParams.get("code") ?? "";
      // Exact's codes contain `!`; the sandbox's imitate them.
      expect(code.startsWith("XTzM!") && code.length > 10, `code ${JSON.stringify(code)}`);
      expect(landed.searchParams.get("state") === state, `state ${JSON.stringify(landed.searchParams.get("state"))} is not ${JSON.stringify(state)}`);
      const seen = callback.requests.filter((r) => r.url.startsWith("/callback"));
      expect(seen.length === 1, () => `the listener saw ${JSON.stringify(callback.requests)}`);
      expect(new URL(seen[0].url, callback.origin).searchParams.get("code") === code, "the listener got another code");
      expect((await page.text("h1")) === "Back from Exact", "the landing page did not render");
      await page.inspect("callback");
    });

    await t.check("Weigeren redirects with error=access_denied and the state, no code (phone width)", async () => {
      const phone = await t.browser.newPage({ width: "phone" });
      await phone.goto(authorizeUrl);
      await phone.fill({ "#username": "demo", "#password": "demo" });
      await phone.clickAndNavigate("#deny");
      const landed = new URL(phone.url());
      expect(landed.searchParams.get("error") === "access_denied", `landed on ${phone.url()}`);
      expect(landed.searchParams.get("state") === state, "the state was not echoed");
      expect(!landed.searchParams.has("code"), "a code came with a denied consent");
    });
  } finally {
    await callback.close();
  }
}
