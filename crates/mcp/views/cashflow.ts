// The cash-flow forecast view (get_cashflow_forecast): today's bank
// balance, what is expected in and out up to the horizon and the balance
// there; week by week (the app-only get_cashflow_by_week) as bars in and
// out with the balance as a line. Another horizon or administration
// through the host.

import { type Json, withAdministrations, busy, callTool, day, h, header, kpi, money, s, select, start, t } from "./lib/app";

const main = document.getElementById("app") as HTMLElement;
let data: Json;
let weeks: Json = null;
let division = "";
let days = 30;
let admins: Array<[string, string]> | null = null;

async function loadWeeks(): Promise<void> {
  try {
    weeks = await callTool("get_cashflow_by_week", { division, forecast_days: days });
  } catch (e) {
    weeks = { error: String((e as Error).message ?? e) };
  }
  render();
}

function reload(): void {
  weeks = null;
  void busy(main, async () => {
    data = await callTool("get_cashflow_forecast", { division, forecast_days: days });
    render();
    await loadWeeks();
  });
}

function chart(): HTMLElement {
  if (!weeks) return h("p", { class: "sub" }, t("Weken laden…", "Loading weeks…"));
  if (weeks.error) return h("p", { class: "error", role: "alert" }, weeks.error);
  const rows: Json[] = weeks.weeks ?? [];
  const W = 640;
  const H = 220;
  const top = 10;
  const bottom = 26;
  // Two scales: the bars (in above the axis, out below) fill the chart,
  // and the balance line gets the whole height for its own range, so a
  // large balance does not flatten the weeks' movements.
  const flows = rows.flatMap((w) => [w.expected_in, -w.expected_out]).concat([0]);
  const max = Math.max(...flows);
  const min = Math.min(...flows);
  const y = (v: number) => top + ((max - v) / (max - min || 1)) * (H - top - bottom);
  const balances = rows.map((w) => w.balance).concat([weeks.bank_balance]);
  const bmax = Math.max(...balances);
  const bmin = Math.min(...balances);
  const yb = (v: number) => top + 8 + ((bmax - v) / (bmax - bmin || 1)) * (H - top - bottom - 16);
  const slot = W / Math.max(1, rows.length);
  const bw = slot * 0.35;
  const svg = s("svg", {
    class: "chart",
    viewBox: `0 0 ${W} ${H}`,
    role: "img",
    "aria-label": t("Verwacht in en uit per week, met het saldo als lijn", "Expected in and out per week, with the balance as a line"),
  });
  svg.append(s("line", { class: "axis", x1: 0, x2: W, y1: y(0), y2: y(0) }));
  const points: string[] = [];
  rows.forEach((w, i) => {
    const x = i * slot + slot * 0.15;
    svg.append(
      s("rect", { class: "bar", x, width: bw, y: y(w.expected_in), height: Math.max(0, y(0) - y(w.expected_in)) }),
      s("rect", { class: "bar out", x: x + bw, width: bw, y: y(0), height: Math.max(0, y(-w.expected_out) - y(0)) }),
      s("text", { x: x + bw, y: H - 8, "text-anchor": "middle" }, `${t("wk", "wk")} ${i + 1}`),
    );
    points.push(`${x + bw},${yb(w.balance)}`);
  });
  svg.append(s("polyline", { class: "line", points: points.join(" ") }));
  points.forEach((p) => {
    const [cx, cy] = p.split(",");
    svg.append(s("circle", { class: "dot", cx, cy, r: 3 }));
  });
  const legend = h(
    "div",
    { class: "legend", "aria-hidden": "true" },
    h("span", {}, h("i", { style: "background:var(--accent)" }), t("In", "In")),
    h("span", {}, h("i", { style: "background:var(--bad)" }), t("Uit", "Out")),
    h("span", {}, h("i", { style: "background:var(--good)" }), t("Saldo", "Balance")),
  );
  const table = h(
    "table",
    { id: "weeks" },
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, t("Week", "Week")), h("th", { scope: "col", class: "r" }, t("In", "In")), h("th", { scope: "col", class: "r" }, t("Uit", "Out")), h("th", { scope: "col", class: "r" }, t("Saldo", "Balance")))),
    h("tbody", {}, ...rows.map((w, i) =>
      h(
        "tr",
        { "data-period": i + 1 },
        h("td", {}, `${day(w.week_start)} – ${day(w.week_end)}`),
        h("td", { class: "r" }, money(w.expected_in, "expected_in")),
        h("td", { class: "r" }, money(w.expected_out, "expected_out")),
        h("td", { class: "r" }, money(w.balance, "balance")),
      ),
    )),
  );
  return h("div", {}, svg, legend, h("div", { class: "table-wrap" }, table));
}

function render(): void {
  document.title = t("Liquiditeitsprognose", "Cash flow forecast");
  main.replaceChildren(
    ...header(
      t("Liquiditeitsprognose", "Cash flow forecast"),
      `${t("Administratie", "Administration")} ${data.division} · ${day(data.as_of)} – ${day(data.horizon)}`,
      division,
      admins,
      (v) => {
        division = v;
        reload();
      },
      select(
        t("Horizon", "Horizon"),
        "forecast-days",
        [30, 60, 90].map((d) => [String(d), t(`${d} dagen`, `${d} days`)] as [string, string]),
        String(days),
        (v) => {
          days = Number(v);
          reload();
        },
      ),
    ),
    h(
      "div",
      { class: "kpis", id: "figures" },
      kpi(t("Bank en kas nu", "Bank and cash now"), data.bank_balance, "bank_balance"),
      kpi(t("Verwacht in", "Expected in"), data.expected_in, "expected_in"),
      kpi(t("Verwacht uit", "Expected out"), data.expected_out, "expected_out"),
      kpi(t("Saldo op de horizon", "Balance at the horizon"), data.forecast_balance, "forecast_balance"),
    ),
    data.forecast_balance < 0 ? h("p", { class: "error", role: "alert" }, t("Het verwachte saldo wordt negatief.", "The expected balance turns negative.")) : "",
    h("h2", {}, t("Per week", "By week")),
    chart(),
  );
}

void start(
  "cashflow",
  ({ args, data: d }) => {
    const first = !division;
    data = d;
    division = String(args.division ?? d.division);
    days = Number(args.forecast_days ?? 30);
    render();
    if (first) {
      void loadWeeks();
      withAdministrations((a) => {
        admins = a;
        render();
      });
    }
  },
  render,
);
