// The financial snapshot view (get_financial_snapshot): the year's
// revenue and result so far, cash, receivables with the overdue part and
// payables, as key figures; another administration through the host.

import { type Json, withAdministrations, busy, callTool, day, h, header, kpi, start, t } from "./lib/app";

const main = document.getElementById("app") as HTMLElement;
let data: Json;
let division = "";
let admins: Array<[string, string]> | null = null;

function render(): void {
  document.title = t("Financieel overzicht", "Financial snapshot");
  const overdueShare = data.receivables > 0 ? Math.round((data.receivables_overdue / data.receivables) * 100) : 0;
  main.replaceChildren(
    ...header(
      `${t("Financieel overzicht", "Financial snapshot")} ${data.year}`,
      `${t("Administratie", "Administration")} ${data.division} · ${t("stand", "as of")} ${day(data.as_of)}`,
      division,
      admins,
      (v) => {
        division = v;
        void busy(main, async () => {
          data = await callTool("get_financial_snapshot", { division });
          render();
        });
      },
    ),
    h(
      "div",
      { class: "kpis", id: "figures" },
      kpi(t("Omzet dit jaar", "Revenue this year"), data.revenue_ytd, "revenue_ytd"),
      kpi(t("Resultaat dit jaar", "Result this year"), data.result_ytd, "result_ytd"),
      kpi(t("Liquide middelen", "Cash"), data.cash, "cash"),
      kpi(t("Debiteuren", "Receivables"), data.receivables, "receivables"),
      kpi(t("Waarvan vervallen", "Of which overdue"), data.receivables_overdue, "receivables_overdue"),
      kpi(t("Crediteuren", "Payables"), data.payables, "payables"),
    ),
    h("h2", {}, t("Vervallen debiteuren", "Overdue receivables")),
    h(
      "div",
      {
        role: "meter",
        "aria-valuemin": 0,
        "aria-valuemax": 100,
        "aria-valuenow": overdueShare,
        "aria-label": t("Deel van de debiteuren dat vervallen is", "Share of receivables overdue"),
        style: "background:var(--bg2);border:1px solid var(--line);border-radius:6px;height:14px;overflow:hidden",
      },
      h("span", { class: "bar-h", style: `width:${overdueShare}%;height:100%;background:var(--bad);border-radius:0` }),
    ),
    h("p", { class: "sub" }, t(`${overdueShare}% van de openstaande debiteuren is vervallen.`, `${overdueShare}% of open receivables is overdue.`)),
  );
}

void start(
  "snapshot",
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
