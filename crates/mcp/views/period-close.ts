// The period-close check view (get_period_close_check): what blocks
// closing a month, as a checklist with counts and amounts; each item opens
// its details, and a suspense account its transactions through the host.
// Another month or administration through the host.

import { type Json, withAdministrations, busy, callTool, day, h, header, money, monthName, select, start, t } from "./lib/app";

const main = document.getElementById("app") as HTMLElement;
let data: Json;
let division = "";
let admins: Array<[string, string]> | null = null;
const open = new Set<string>();
let account: { code: string; rows: Json[] | null; error?: string } | null = null;

const CHECKS: Record<string, [string, string]> = {
  draft_entries_in_period: ["Boekingen in concept in deze periode", "Draft entries in this period"],
  draft_entries_in_earlier_periods: ["Boekingen in concept in eerdere perioden", "Draft entries in earlier periods"],
  suspense_and_clearing_balances: ["Saldi op tussen- en vraagposten", "Balances on suspense and clearing accounts"],
  unmatched_bank_lines: ["Bankregels op een tussenrekening", "Bank lines booked to a suspense account"],
  lines_without_vat_code: ["Verkoop- en inkoopregels zonder btw-code", "Sales and purchase lines without a VAT code"],
};

function reload(year: number, period: number): void {
  account = null;
  void busy(main, async () => {
    data = await callTool("get_period_close_check", { division, year, period });
    render();
  });
}

async function transactions(code: string): Promise<void> {
  account = { code, rows: null };
  render();
  try {
    const r = await callTool("get_transactions", { division, gl_account: code, year: data.year, period: data.period, limit: 200 });
    account = { code, rows: r.transactions ?? [] };
  } catch (e) {
    account = { code, rows: [], error: String((e as Error).message ?? e) };
  }
  render();
}

function details(c: Json): HTMLElement {
  const rows: Json[] = c.details ?? [];
  return h(
    "div",
    { class: "table-wrap", id: `details-${c.check}` },
    h(
      "table",
      {},
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, t("Boeking of rekening", "Entry or account")), h("th", { scope: "col" }, t("Omschrijving", "Description")), h("th", { scope: "col", class: "r" }, t("Bedrag", "Amount")))),
      h("tbody", {}, ...rows.map((d) =>
        h(
          "tr",
          {},
          h(
            "td",
            {},
            d.gl_account
              ? h("button", { class: "linkish", type: "button", onclick: () => void transactions(String(d.gl_account)) }, `${t("Rekening", "Account")} ${d.gl_account}`)
              : `${d.entry ?? ""}`,
          ),
          h("td", {}, String(d.description ?? "")),
          h("td", { class: "r" }, typeof (d.amount ?? d.balance) === "number" ? money(d.amount ?? d.balance) : ""),
        ),
      )),
    ),
  );
}

function accountSection(): HTMLElement | string {
  if (!account) return "";
  const head = h("h2", {}, t(`Boekingen op rekening ${account.code}`, `Transactions on account ${account.code}`));
  if (account.error) return h("section", { id: "account" }, head, h("p", { class: "error", role: "alert" }, account.error));
  if (!account.rows) return h("section", { id: "account" }, head, h("p", { class: "sub" }, t("Laden…", "Loading…")));
  return h(
    "section",
    { id: "account" },
    head,
    h("div", { class: "table-wrap" }, h("table", {}, h("tbody", {}, ...account.rows.map((r) =>
      h("tr", {}, h("td", {}, day(r.date)), h("td", {}, r.description ?? ""), h("td", { class: "r" }, money(r.amount))),
    )))),
  );
}

function render(): void {
  document.title = t("Periode-afsluiting", "Period close");
  const years: Array<[string, string]> = [];
  for (let y = data.year + 1; y >= data.year - 4; y--) years.push([String(y), String(y)]);
  const periods: Array<[string, string]> = [];
  for (let p = 1; p <= 12; p++) periods.push([String(p), monthName(p)]);
  const checks: Json[] = data.checks ?? [];
  main.replaceChildren(
    ...header(
      `${t("Afsluiten van", "Closing")} ${monthName(data.period)} ${data.year}`,
      `${t("Administratie", "Administration")} ${data.division}`,
      division,
      admins,
      (v) => {
        division = v;
        reload(data.year, data.period);
      },
      select(t("Jaar", "Year"), "year", years, String(data.year), (v) => reload(Number(v), data.period)),
      select(t("Maand", "Month"), "period", periods, String(data.period), (v) => reload(data.year, Number(v))),
    ),
    h(
      "p",
      { class: data.ready ? "ok" : "warn", id: "ready", role: "status" },
      data.ready
        ? t("Niets houdt het afsluiten tegen.", "Nothing blocks closing.")
        : t(`${checks.filter((c) => !c.ok).length} van ${checks.length} punten vragen aandacht.`, `${checks.filter((c) => !c.ok).length} of ${checks.length} items need attention.`),
    ),
    h(
      "ul",
      { class: "checklist", id: "checks" },
      ...checks.map((c) => {
        const [nl, en] = CHECKS[c.check] ?? [c.check, c.check];
        const shown = open.has(c.check);
        return h(
          "li",
          { "data-code": c.check },
          h("span", { class: `badge ${c.ok ? "ok" : "warn"}` }, c.ok ? t("in orde", "done") : t("actie", "to do")),
          " ",
          h("strong", {}, t(nl, en)),
          h("br", {}),
          h("span", { "data-field": "count", "data-value": c.count }, t(`${c.count} ${c.count === 1 ? "post" : "posten"}`, `${c.count} ${c.count === 1 ? "item" : "items"}`)),
          " · ",
          money(c.amount, "amount"),
          c.count > 0
            ? h(
                "div",
                {},
                h(
                  "button",
                  {
                    class: "linkish",
                    type: "button",
                    "aria-expanded": shown ? "true" : "false",
                    "aria-controls": `details-${c.check}`,
                    onclick: () => {
                      if (shown) open.delete(c.check);
                      else open.add(c.check);
                      render();
                    },
                  },
                  shown ? t("Verberg details", "Hide details") : t("Toon details", "Show details"),
                ),
                shown ? details(c) : "",
              )
            : "",
        );
      }),
    ),
    accountSection(),
    data.truncated ? h("p", { class: "warn" }, t("Niet alles is opgehaald.", "Not everything was fetched.")) : "",
  );
}

void start(
  "period-close",
  ({ args, data: d }) => {
    const first = !division;
    data = d;
    division = String(args.division ?? d.division);
    render();
    if (first) {
      withAdministrations((a) => {
        admins = a;
        render();
      });
    }
  },
  render,
);
