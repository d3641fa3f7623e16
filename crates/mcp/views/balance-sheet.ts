// The balance sheet view (get_balance_sheet): assets against liabilities
// and equity per account at the end of a month, with the totals and
// whether they balance; another month or administration through the host.

import { type Json, withAdministrations, busy, callTool, h, header, money, monthName, select, start, t } from "./lib/app";

const main = document.getElementById("app") as HTMLElement;
let data: Json;
let division = "";
let admins: Array<[string, string]> | null = null;

function period(): [number, number] {
  const [y, m] = String(data.as_of_period ?? "").split("-").map(Number);
  return [y || new Date().getFullYear(), m || 12];
}

function reload(year: number, month: number): void {
  void busy(main, async () => {
    data = await callTool("get_balance_sheet", { division, date: `${year}-${String(month).padStart(2, "0")}-01` });
    render();
  });
}

function side(id: string, title: string, rows: Json[], total: number, totalField: string): HTMLElement {
  return h(
    "section",
    { class: "table-wrap" },
    h(
      "table",
      { id },
      h("caption", { style: "text-align:left;font-weight:700;padding:6px 0" }, title),
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, t("Rekening", "Account")), h("th", { scope: "col", class: "r" }, t("Bedrag", "Amount")))),
      h(
        "tbody",
        {},
        ...rows.map((r, i) =>
          h("tr", { "data-code": `${i}` }, h("td", {}, `${r.code} ${r.description ?? ""}`.trim()), h("td", { class: "r" }, money(r.amount, "amount"))),
        ),
      ),
      h("tfoot", {}, h("tr", {}, h("td", {}, t("Totaal", "Total")), h("td", { class: "r" }, money(total, totalField)))),
    ),
  );
}

function render(): void {
  document.title = t("Balans", "Balance sheet");
  const [year, month] = period();
  const years: Array<[string, string]> = [];
  for (let y = year + 1; y >= year - 4; y--) years.push([String(y), String(y)]);
  const months: Array<[string, string]> = [];
  for (let m = 1; m <= 12; m++) months.push([String(m), monthName(m)]);
  const balanced = Math.abs(data.total_assets - data.total_liabilities_and_equity) < 0.005;
  main.replaceChildren(
    ...header(
      `${t("Balans", "Balance sheet")} ${t("eind", "end of")} ${monthName(month)} ${year}`,
      `${t("Administratie", "Administration")} ${data.division}`,
      division,
      admins,
      (v) => {
        division = v;
        reload(year, month);
      },
      select(t("Jaar", "Year"), "year", years, String(year), (v) => reload(Number(v), month)),
      select(t("Maand", "Month"), "month", months, String(month), (v) => reload(year, Number(v))),
    ),
    h(
      "p",
      { class: balanced ? "ok" : "error", id: "balanced" },
      balanced ? t("De balans is in evenwicht.", "The balance sheet balances.") : t("De balans is niet in evenwicht.", "The balance sheet does not balance."),
    ),
    h(
      "div",
      { class: "kpis" },
      h("div", { class: "kpi" }, h("span", { class: "label" }, t("Resultaat lopend jaar", "Current year result")), money(data.current_year_result, "current_year_result")),
      h("div", { class: "kpi" }, h("span", { class: "label" }, t("Resultaat voorgaande jaren", "Prior years' result")), money(data.prior_years_result ?? 0, "prior_years_result")),
    ),
    side("assets", t("Activa", "Assets"), data.assets ?? [], data.total_assets, "total_assets"),
    side("liabilities", t("Passiva", "Liabilities and equity"), data.liabilities_and_equity ?? [], data.total_liabilities_and_equity, "total_liabilities_and_equity"),
    data.truncated ? h("p", { class: "warn" }, t("Niet alle regels zijn opgehaald.", "Not every line was fetched.")) : "",
  );
}

void start(
  "balance-sheet",
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
