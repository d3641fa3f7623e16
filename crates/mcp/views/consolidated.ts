// The consolidated report view (get_consolidated_report): one column per
// administration and the total, for the profit and loss or the balance
// sheet, with likely intercompany relations flagged. Another report or
// year through the host.

import { type Json, busy, callTool, h, money, select, start, t } from "./lib/app";

const main = document.getElementById("app") as HTMLElement;
let data: Json;
let args: Json = {};

const LABELS: Record<string, [string, string]> = {
  revenue: ["Omzet", "Revenue"],
  cost_of_sales: ["Kostprijs omzet", "Cost of sales"],
  gross_margin: ["Brutomarge", "Gross margin"],
  other_costs: ["Overige kosten", "Other costs"],
  result: ["Resultaat", "Result"],
  total_assets: ["Totaal activa", "Total assets"],
  total_liabilities_and_equity: ["Totaal passiva", "Total liabilities and equity"],
  current_year_result: ["Resultaat lopend jaar", "Current year result"],
  prior_years_result: ["Resultaat voorgaande jaren", "Prior years' result"],
};

function label(key: string): string {
  const known = LABELS[key];
  return known ? t(known[0], known[1]) : key.replaceAll("_", " ");
}

function reload(): void {
  void busy(main, async () => {
    data = await callTool("get_consolidated_report", args);
    render();
  });
}

function render(): void {
  const pl = data.report !== "balance_sheet";
  const title = pl ? t("Geconsolideerde winst- en verliesrekening", "Consolidated profit and loss") : t("Geconsolideerde balans", "Consolidated balance sheet");
  document.title = title;
  const admins: Json[] = data.administrations ?? [];
  // The figures in the order a statement reads (revenue first), any
  // figure we have no label for after them.
  const order = Object.keys(LABELS);
  const rank = (k: string) => (order.includes(k) ? order.indexOf(k) : order.length);
  const keys = Object.keys(data.totals ?? {})
    .filter((k) => typeof data.totals[k] === "number")
    .sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
  const year = Number(data.year ?? args.year ?? new Date().getFullYear());
  const years: Array<[string, string]> = [];
  for (let y = year + 1; y >= year - 4; y--) years.push([String(y), String(y)]);
  main.replaceChildren(
    h("h1", {}, `${title} ${data.year ?? ""}`.trim()),
    h("p", { class: "sub" }, t(`${admins.length} administraties naast elkaar`, `${admins.length} administrations side by side`)),
    h(
      "div",
      { class: "controls" },
      select(
        t("Rapport", "Report"),
        "report",
        [
          ["profit_loss", t("Winst en verlies", "Profit and loss")],
          ["balance_sheet", t("Balans", "Balance sheet")],
        ],
        pl ? "profit_loss" : "balance_sheet",
        (v) => {
          args = { ...args, report: v };
          reload();
        },
      ),
      select(t("Jaar", "Year"), "year", years, String(year), (v) => {
        args = { ...args, year: Number(v) };
        reload();
      }),
    ),
    h(
      "div",
      // One column per administration can be wider than a phone: the
      // region scrolls, so it can be focused and scrolled by keyboard.
      { class: "table-wrap", tabindex: 0, role: "region", "aria-label": title },
      h(
        "table",
        { id: "consolidated" },
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            h("th", { scope: "col" }, ""),
            ...admins.map((a) => h("th", { scope: "col", class: "r" }, a.name, h("br", {}), h("span", { class: "sub" }, String(a.division)))),
            h("th", { scope: "col", class: "r" }, t("Totaal", "Total")),
          ),
        ),
        h(
          "tbody",
          {},
          ...keys.map((k) =>
            h(
              "tr",
              { "data-code": k },
              h("th", { scope: "row" }, label(k)),
              ...admins.map((a) => h("td", { class: "r", "data-division": a.division }, money(a.figures?.[k] ?? 0, String(a.division)))),
              h("td", { class: "r" }, money(data.totals[k], "total")),
            ),
          ),
        ),
      ),
    ),
    h("h2", {}, t("Intercompany", "Intercompany")),
    (data.intercompany ?? []).length === 0
      ? h("p", { class: "sub" }, t("Geen intercompany-relaties gevonden.", "No intercompany relations found."))
      : h(
          "ul",
          { id: "intercompany" },
          ...(data.intercompany as Json[]).map((r) =>
            h("li", {}, t(`${r.relation} in administratie ${r.division} is administratie ${r.is_administration}`, `${r.relation} in administration ${r.division} is administration ${r.is_administration}`)),
          ),
        ),
  );
}

void start(
  "consolidated",
  ({ args: a, data: d }) => {
    data = d;
    args = { ...a };
    render();
  },
  render,
);
