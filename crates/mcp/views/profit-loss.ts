// The profit and loss view (get_profit_loss): the totals, the months of
// the year as bars beside last year's, the result as a line, the amounts
// per general ledger account, and a month's transactions on a click.
// Changing the administration, the year or the periods calls the tool
// again through the host.

import {
  type Json,
  administrations,
  callTool,
  failure,
  h,
  money,
  monthName,
  s,
  select,
  start,
  t,
} from "./lib/app";

interface State {
  division: string;
  year: number;
  from: number;
  to: number;
}

let state: State;
let data: Json;
let months: Json = null;
let admins: Array<[string, string]> | null = null;
let drill: { period: number; rows: Json[] | null; error?: string } | null = null;

const main = document.getElementById("app") as HTMLElement;

function title(): string {
  return t("Winst- en verliesrekening", "Profit and loss");
}

async function reload(changedYearOrDivision: boolean): Promise<void> {
  main.setAttribute("aria-busy", "true");
  try {
    data = await callTool("get_profit_loss", {
      division: state.division,
      year: state.year,
      period_from: state.from,
      period_to: state.to,
    });
    if (changedYearOrDivision) {
      months = null;
      drill = null;
    }
    render();
    if (changedYearOrDivision) await loadMonths();
  } catch (e) {
    failure(main, e);
  } finally {
    main.removeAttribute("aria-busy");
  }
}

async function loadMonths(): Promise<void> {
  try {
    months = await callTool("get_profit_loss_by_month", { division: state.division, year: state.year });
  } catch (e) {
    months = { error: String((e as Error).message ?? e) };
  }
  render();
}

async function loadAdmins(): Promise<void> {
  try {
    admins = await administrations();
    render();
  } catch {
    // Without the list the choice keeps the current administration only.
  }
}

async function drillDown(period: number): Promise<void> {
  drill = { period, rows: null };
  render();
  try {
    const r = await callTool("get_transactions", {
      division: state.division,
      year: state.year,
      period,
      limit: 200,
    });
    drill = { period, rows: r.transactions ?? [] };
  } catch (e) {
    drill = { period, rows: [], error: String((e as Error).message ?? e) };
  }
  render();
  document.getElementById("drill")?.scrollIntoView({ block: "nearest" });
}

function controls(): HTMLElement {
  const adminOptions: Array<[string, string]> = admins ?? [[state.division, state.division]];
  const years: Array<[string, string]> = [];
  for (let y = data.year + 1; y >= data.year - 4; y--) years.push([String(y), String(y)]);
  const periods: Array<[string, string]> = [];
  for (let p = 1; p <= 12; p++) periods.push([String(p), monthName(p)]);
  return h(
    "div",
    { class: "controls" },
    select(t("Administratie", "Administration"), "division", adminOptions, state.division, (v) => {
      state.division = v;
      void reload(true);
    }),
    select(t("Jaar", "Year"), "year", years, String(state.year), (v) => {
      state.year = Number(v);
      void reload(true);
    }),
    select(t("Van", "From"), "period-from", periods, String(state.from), (v) => {
      state.from = Number(v);
      if (state.to < state.from) state.to = state.from;
      void reload(false);
    }),
    select(t("Tot en met", "To"), "period-to", periods, String(state.to), (v) => {
      state.to = Number(v);
      if (state.from > state.to) state.from = state.to;
      void reload(false);
    }),
  );
}

function kpi(label: string, value: number, field: string): HTMLElement {
  return h("div", { class: "kpi" }, h("span", { class: "label" }, label), money(value, field));
}

function chart(): HTMLElement {
  if (!months) return h("p", { class: "sub" }, t("Maanden laden…", "Loading months…"));
  if (months.error) return h("p", { class: "error", role: "alert" }, months.error);
  const rows: Json[] = months.months ?? [];
  const W = 640;
  const H = 240;
  const top = 12;
  const bottom = 28;
  const left = 8;
  const values = rows.flatMap((m) => [m.revenue, m.previous_year_revenue ?? 0, m.result]);
  const max = Math.max(1, ...values);
  const min = Math.min(0, ...values);
  const y = (v: number) => top + ((max - v) / (max - min)) * (H - top - bottom);
  const slot = (W - left * 2) / 12;
  const bw = slot * 0.36;
  const svg = s("svg", {
    class: "chart",
    viewBox: `0 0 ${W} ${H}`,
    role: "img",
    "aria-label": t(
      `Omzet per maand in ${months.year} en ${months.previous_year}, met het resultaat als lijn`,
      `Revenue per month in ${months.year} and ${months.previous_year}, with the result as a line`,
    ),
  });
  svg.append(s("line", { class: "axis", x1: 0, x2: W, y1: y(0), y2: y(0) }));
  const points: string[] = [];
  rows.forEach((m, i) => {
    const x0 = left + i * slot + slot * 0.14;
    const prev = m.previous_year_revenue ?? 0;
    svg.append(
      s("rect", { class: "bar prev", x: x0, width: bw, y: Math.min(y(prev), y(0)), height: Math.abs(y(0) - y(prev)) }),
      s("rect", {
        class: "bar",
        x: x0 + bw,
        width: bw,
        y: Math.min(y(m.revenue), y(0)),
        height: Math.abs(y(0) - y(m.revenue)),
      }),
      s("text", { x: x0 + bw, y: H - 10, "text-anchor": "middle" }, monthName(m.period, true)),
    );
    const cx = x0 + bw;
    points.push(`${cx},${y(m.result)}`);
  });
  svg.append(s("polyline", { class: "line", points: points.join(" ") }));
  rows.forEach((m, i) => {
    const [cx, cy] = points[i].split(",");
    svg.append(s("circle", { class: "dot", cx, cy, r: 3 }));
    // An invisible target over the whole month: a click shows its
    // transactions (the table below offers the same as buttons).
    const hit = s("rect", {
      class: "hit",
      x: left + i * slot,
      y: 0,
      width: slot,
      height: H,
      "data-period": m.period,
    });
    hit.addEventListener("click", () => void drillDown(m.period));
    svg.append(hit);
  });
  const legend = h(
    "div",
    { class: "legend", "aria-hidden": "true" },
    h("span", {}, h("i", { style: "background:var(--accent2)" }), String(months.previous_year)),
    h("span", {}, h("i", { style: "background:var(--accent)" }), String(months.year)),
    h("span", {}, h("i", { style: "background:var(--good)" }), t("Resultaat", "Result")),
  );
  const table = h(
    "table",
    { id: "months" },
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        h("th", { scope: "col" }, t("Maand", "Month")),
        h("th", { scope: "col", class: "r" }, t("Omzet", "Revenue")),
        h("th", { scope: "col", class: "r hide-narrow" }, t(`Omzet ${months.previous_year}`, `Revenue ${months.previous_year}`)),
        h("th", { scope: "col", class: "r" }, t("Resultaat", "Result")),
      ),
    ),
    h(
      "tbody",
      {},
      ...rows.map((m) =>
        h(
          "tr",
          { "data-period": m.period },
          h(
            "td",
            {},
            h(
              "button",
              {
                class: "linkish",
                type: "button",
                onclick: () => void drillDown(m.period),
                "aria-label": t(`Boekingen van ${monthName(m.period)}`, `Transactions of ${monthName(m.period)}`),
              },
              monthName(m.period),
            ),
          ),
          h("td", { class: "r" }, money(m.revenue, "revenue")),
          h("td", { class: "r hide-narrow" }, money(m.previous_year_revenue ?? 0, "previous_year_revenue")),
          h("td", { class: "r" }, money(m.result, "result")),
        ),
      ),
    ),
  );
  return h("div", {}, svg, legend, h("div", { class: "table-wrap" }, table));
}

function drillSection(): HTMLElement | null {
  if (!drill) return null;
  const head = h(
    "h2",
    {},
    t(`Boekingen in ${monthName(drill.period)} ${state.year}`, `Transactions in ${monthName(drill.period)} ${state.year}`),
  );
  if (drill.error) return h("section", { id: "drill" }, head, h("p", { class: "error", role: "alert" }, drill.error));
  if (!drill.rows) return h("section", { id: "drill" }, head, h("p", { class: "sub" }, t("Laden…", "Loading…")));
  const rows = drill.rows;
  return h(
    "section",
    { id: "drill" },
    head,
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        {},
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            h("th", { scope: "col" }, t("Datum", "Date")),
            h("th", { scope: "col" }, t("Omschrijving", "Description")),
            h("th", { scope: "col", class: "hide-narrow" }, t("Rekening", "Account")),
            h("th", { scope: "col", class: "r" }, t("Bedrag", "Amount")),
          ),
        ),
        h(
          "tbody",
          {},
          ...rows.map((r) =>
            h(
              "tr",
              {},
              h("td", {}, r.date ? String(r.date).slice(0, 10) : ""),
              h("td", {}, r.description || r.relation || ""),
              h("td", { class: "hide-narrow" }, `${r.gl_account} ${r.gl_description ?? ""}`),
              h("td", { class: "r" }, money(r.amount)),
            ),
          ),
        ),
      ),
    ),
    rows.length === 0 ? h("p", { class: "sub" }, t("Geen boekingen.", "No transactions.")) : null,
  );
}

function linesTable(): HTMLElement {
  const groups: Array<[string, string]> = [
    ["revenue", t("Omzet", "Revenue")],
    ["cost_of_sales", t("Kostprijs omzet", "Cost of sales")],
    ["other_costs", t("Overige kosten", "Other costs")],
  ];
  const body = h("tbody", {});
  for (const [cat, label] of groups) {
    const lines = (data.lines ?? []).filter((l: Json) => l.category === cat);
    if (lines.length === 0) continue;
    body.append(h("tr", {}, h("th", { colspan: 2, scope: "rowgroup" }, label)));
    for (const l of lines) {
      body.append(
        h(
          "tr",
          { "data-code": l.code },
          h("td", {}, `${l.code} ${l.description ?? ""}`),
          h("td", { class: "r" }, money(l.amount, "amount")),
        ),
      );
    }
  }
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { id: "lines" },
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, t("Grootboekrekening", "Account")), h("th", { scope: "col", class: "r" }, t("Bedrag", "Amount")))),
      body,
    ),
  );
}

function render(): void {
  document.title = title();
  const periods =
    data.period_from === 1 && data.period_to === 12
      ? t("heel het jaar", "the whole year")
      : `${monthName(data.period_from)} – ${monthName(data.period_to)}`;
  main.replaceChildren(
    h("h1", {}, `${title()} ${data.year}`),
    h("p", { class: "sub" }, `${t("Administratie", "Administration")} ${data.division} · ${periods}`),
    controls(),
    h(
      "div",
      { class: "kpis", id: "totals" },
      kpi(t("Omzet", "Revenue"), data.revenue, "revenue"),
      kpi(t("Kostprijs omzet", "Cost of sales"), data.cost_of_sales, "cost_of_sales"),
      kpi(t("Brutomarge", "Gross margin"), data.gross_margin, "gross_margin"),
      kpi(t("Overige kosten", "Other costs"), data.other_costs, "other_costs"),
      kpi(t("Resultaat", "Result"), data.result, "result"),
    ),
    h("h2", {}, t(`Per maand, ${data.year} tegen ${data.year - 1}`, `By month, ${data.year} against ${data.year - 1}`)),
    chart(),
    drillSection() ?? "",
    h("h2", {}, t("Per grootboekrekening", "By account")),
    linesTable(),
    data.truncated ? h("p", { class: "warn" }, t("Niet alle regels zijn opgehaald.", "Not every line was fetched.")) : "",
  );
}

void start("profit-loss", ({ args, data: d }) => {
  const first = !state;
  data = d;
  state = {
    division: String(args.division ?? d.division),
    year: d.year,
    from: d.period_from ?? 1,
    to: d.period_to ?? 12,
  };
  render();
  if (first) {
    void loadMonths();
    void loadAdmins();
  }
}, render);
