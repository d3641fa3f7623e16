// The aging view (get_aging_receivables, get_aging_payables,
// get_aging_analysis): open amounts by how long past due, as bars, and
// the relations owing (or owed) the most; both sides and the net position
// for the analysis. Another administration through the host.

import { type Json, withAdministrations, busy, callTool, day, h, header, hostTool, money, start, t } from "./lib/app";

const main = document.getElementById("app") as HTMLElement;
let data: Json;
let tool = "get_aging_analysis";
let division = "";
let admins: Array<[string, string]> | null = null;

const BUCKETS: Array<[string, string, string]> = [
  ["not_due", "Nog niet vervallen", "Not yet due"],
  ["days_1_30", "1–30 dagen", "1–30 days"],
  ["days_31_60", "31–60 dagen", "31–60 days"],
  ["days_61_90", "61–90 dagen", "61–90 days"],
  ["days_over_90", "Meer dan 90 dagen", "Over 90 days"],
];

function side(id: string, title: string, who: string, a: Json): HTMLElement {
  const max = Math.max(1, ...BUCKETS.map(([k]) => Math.abs(a.buckets?.[k] ?? 0)));
  const top = [...(a.relations ?? [])].sort((x: Json, y: Json) => y.total - x.total).slice(0, 10);
  return h(
    "section",
    { id, "data-side": id },
    h("h2", {}, `${title}: `, money(a.total, "total")),
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { class: "buckets" },
        h("caption", { class: "sub", style: "text-align:left" }, t("Naar dagen over de vervaldatum", "By days past due")),
        h("tbody", {}, ...BUCKETS.map(([k, nl, en]) => {
          const v = a.buckets?.[k] ?? 0;
          const width = Math.round((Math.abs(v) / max) * 100);
          return h(
            "tr",
            { "data-code": k },
            h("th", { scope: "row", style: "font-weight:400;color:var(--fg)" }, t(nl, en)),
            h("td", { style: "width:45%", "aria-hidden": "true" }, h("span", { class: "bar-h", style: `width:${width}%;${k === "days_over_90" ? "background:var(--bad)" : ""}` })),
            h("td", { class: "r" }, money(v, "bucket")),
          );
        })),
      ),
    ),
    h("h3", { style: "font-size:.95rem;margin:14px 0 6px" }, who),
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { class: "relations" },
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, t("Relatie", "Relation")), h("th", { scope: "col", class: "r" }, t("Open", "Open")), h("th", { scope: "col", class: "r" }, t("> 90 dagen", "> 90 days")))),
        h("tbody", {}, ...top.map((r: Json) =>
          h("tr", { "data-code": r.relation }, h("td", {}, r.relation), h("td", { class: "r" }, money(r.total, "total")), h("td", { class: "r" }, money(r.over_90 ?? 0, "over_90"))),
        )),
      ),
    ),
    a.truncated ? h("p", { class: "warn" }, t("Niet alle posten zijn opgehaald.", "Not every item was fetched.")) : "",
  );
}

function render(): void {
  document.title = t("Ouderdomsanalyse", "Aging");
  const analysis = !!data.receivables;
  const payables = !analysis && tool === "get_aging_payables";
  const asOf = (analysis ? data.receivables.as_of : data.as_of) ?? "";
  const sections: Array<HTMLElement | string> = [];
  if (analysis) {
    sections.push(
      h("div", { class: "kpis" }, h("div", { class: "kpi" }, h("span", { class: "label" }, t("Netto positie (debiteuren − crediteuren)", "Net position (receivables − payables)")), money(data.net_position, "net_position"))),
      side("receivables", t("Debiteuren", "Receivables"), t("Grootste debiteuren", "Top debtors"), data.receivables),
      side("payables", t("Crediteuren", "Payables"), t("Grootste crediteuren", "Top creditors"), data.payables),
    );
  } else if (payables) {
    sections.push(side("payables", t("Crediteuren", "Payables"), t("Grootste crediteuren", "Top creditors"), data));
  } else {
    sections.push(side("receivables", t("Debiteuren", "Receivables"), t("Grootste debiteuren", "Top debtors"), data));
  }
  main.replaceChildren(
    ...header(
      t("Ouderdomsanalyse", "Aging analysis"),
      `${t("Administratie", "Administration")} ${data.division} · ${t("stand", "as of")} ${day(asOf)}`,
      division,
      admins,
      (v) => {
        division = v;
        void busy(main, async () => {
          data = await callTool(tool, { division });
          render();
        });
      },
    ),
    ...sections,
  );
}

void start(
  "aging",
  ({ args, data: d }) => {
    const first = !division;
    data = d;
    division = String(args.division ?? d.division);
    tool = d.receivables ? "get_aging_analysis" : hostTool ?? "get_aging_receivables";
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
