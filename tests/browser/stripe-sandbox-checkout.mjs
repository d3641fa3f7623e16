// The local Stripe's hosted pages in a real browser: a Checkout Session
// created through the API (form-encoded, with the secret key), its page
// declining one test card and paying with another, back to the success URL
// with the session id filled in; then the Billing Portal switching plan,
// cancelling and returning. The return pages are a tiny local listener of
// this scenario. The sandbox is not the product, but its pages are held to
// the same accessibility checks.
//
// Options: --base-url (the sandbox) --secret-key --price (starter) --other-price (pro).
import { cleanPage, expect, localServer } from "./harness.mjs";

export const name = "stripe-sandbox-checkout";

async function stripe(base, key, path, form) {
  const reply = await fetch(`${base}${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams(form).toString(),
  });
  const json = await reply.json();
  expect(reply.status === 200, () => `${path}: ${reply.status} ${JSON.stringify(json)}`);
  return json;
}

export default async function (t) {
  const base = t.args["base-url"];
  const key = t.args["secret-key"];
  const price = t.args["price"];
  const other = t.args["other-price"];
  expect(base && key && price && other, "needs --base-url --secret-key --price --other-price");
  const back = await localServer({
    "/done": cleanPage("Paid", "<p>Thank you.</p>"),
    "/cancel": cleanPage("Not paid", "<p>Maybe later.</p>"),
    "/dashboard": cleanPage("Dashboard", "<p>Back home.</p>"),
  });
  t.browser.allow(back.origin);
  try {
    const customer = await stripe(base, key, "/v1/customers", { email: "browser@example.nl", "metadata[user_id]": "u-browser" });
    const session = await stripe(base, key, "/v1/checkout/sessions", {
      mode: "subscription",
      customer: customer.id,
      client_reference_id: "u-browser",
      "line_items[0][price]": price,
      "line_items[0][quantity]": "1",
      success_url: `${back.origin}/done?session={CHECKOUT_SESSION_ID}`,
      cancel_url: `${back.origin}/cancel`,
    });
    const page = await t.browser.newPage();

    await t.check("the checkout page shows the plan, its amount and a labelled card field", async () => {
      const reply = await page.goto(session.url);
      expect(reply?.status() === 200, () => `status ${reply?.status()}`);
      expect((await page.text("#amount")).includes("per month"), "no amount");
      expect((await page.locate("label[for=cardnumber]").count()) === 1, "no label for the card number");
      await page.inspect("checkout");
    });

    await t.check("the declining test card is refused on the page, nothing is paid", async () => {
      await page.fill({ "#cardnumber": "4000 0000 0000 0002" });
      await page.clickAndNavigate("#pay");
      const error = await page.text("[role=alert]");
      expect(error.includes("declined"), `error ${JSON.stringify(error)}`);
      expect(back.requests.length === 0, "the browser left the checkout after a decline");
      await page.inspect("checkout-declined");
    });

    await t.check("the paying test card lands on the success URL with the session id", async () => {
      await page.fill({ "#cardnumber": "4242 4242 4242 4242" });
      await page.clickAndNavigate("#pay");
      const landed = new URL(page.url());
      expect(landed.origin === back.origin && landed.pathname === "/done", `landed on ${page.url()}`);
      expect(landed.searchParams.get("session") === session.id, `session ${landed.searchParams.get("session")}`);
    });

    await t.check("the billing portal switches plan, cancels at the period's end and returns", async () => {
      const portal = await stripe(base, key, "/v1/billing_portal/sessions", {
        customer: customer.id,
        return_url: `${back.origin}/dashboard`,
      });
      await page.goto(portal.url);
      const before = await page.text("#plan");
      await page.inspect("portal");
      await page.clickAndNavigate(`#switch-${other}`);
      const after = await page.text("#plan");
      expect(after !== before, `still on ${after}`);
      await page.clickAndNavigate("#cancel");
      expect((await page.text("#notice")).includes("will be canceled"), "no cancellation notice");
      await page.inspect("portal-canceling");
      await page.clickAndNavigate("#return");
      expect(new URL(page.url()).pathname === "/dashboard", `landed on ${page.url()}`);
    });
  } finally {
    await back.close();
  }
}
