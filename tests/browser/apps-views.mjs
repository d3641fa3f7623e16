// What `apps.mjs` checks in each MCP Apps view: the tool and its
// arguments, and how the numbers a person sees are read back from the
// view's DOM and compared with the tool's `structuredContent`; for some
// views an interaction and the `tools/call` the host must see.
import { expect, fail } from "./harness.mjs";

/// A euro amount as a view shows it, the Dutch way (`€ 1.234,56`,
/// `€ -1.234,56`), back to a number.
export function parseEuro(text) {
  const negative = /[-\u2212]/.test(text);
  const n = Number(text.replace(/[^0-9,]/g, "").replace(",", "."));
  expect(Number.isFinite(n) && /[0-9]/.test(text), `not an amount: ${JSON.stringify(text)}`);
  return negative ? -n : n;
}

function same(shown, want, what) {
  expect(Math.abs(shown - want) < 0.005, `${what}: the view shows ${shown}, the tool says ${want}`);
}

/// The amounts shown for `selector`, as `[{ field, row, value }]`.
async function amounts(frame, selector) {
  const found = await frame.$$eval(selector, (els) =>
    els.map((e) => ({
      field: e.dataset.field,
      row: e.closest("tr")?.dataset.code ?? e.closest("tr")?.dataset.period ?? null,
      text: e.textContent,
    })),
  );
  return found.map((f) => ({ ...f, value: parseEuro(f.text) }));
}

/// Waits until the host has seen a `tools/call` matching `test`.
async function observed(frame, calls, from, test, what) {
  for (let i = 0; i < 200; i++) {
    const found = calls.slice(from).find(test);
    if (found) return found;
    await frame.page().waitForTimeout(50);
  }
  fail(`the host saw no ${what}; it saw ${JSON.stringify(calls.slice(from).map((c) => [c.name, c.arguments]))}`);
}

function sameArgs(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}

const profitLoss = {
  name: "profit-loss",
  tool: "get_profit_loss",
  args: {},
  ready: "#months",
  async verify({ frame, data, calls }) {
    const totals = await amounts(frame, "#totals [data-field]");
    for (const field of ["revenue", "cost_of_sales", "gross_margin", "other_costs", "result"]) {
      const shown = totals.find((x) => x.field === field);
      expect(shown, `no ${field} shown`);
      same(shown.value, data[field], field);
    }
    const lines = await amounts(frame, "#lines tr[data-code] [data-field=amount]");
    expect(lines.length === data.lines.length, `${lines.length} lines shown, ${data.lines.length} in the result`);
    for (const line of data.lines) {
      const shown = lines.find((x) => x.row === line.code);
      expect(shown, `line ${line.code} not shown`);
      same(shown.value, line.amount, `line ${line.code}`);
    }
    const monthly = calls.find((c) => c.name === "get_profit_loss_by_month");
    expect(monthly, "the view asked no monthly figures");
    expect(
      sameArgs(monthly.arguments, { division: String(data.division), year: data.year }),
      `monthly figures asked with ${JSON.stringify(monthly.arguments)}`,
    );
    const months = await amounts(frame, "#months tr[data-period] [data-field]");
    for (const m of monthly.result.structuredContent.months) {
      for (const field of ["revenue", "previous_year_revenue", "result"]) {
        const shown = months.find((x) => x.row === String(m.period) && x.field === field);
        expect(shown, `month ${m.period} ${field} not shown`);
        same(shown.value, m[field], `month ${m.period} ${field}`);
      }
    }
    const bars = await frame.$$eval("svg.chart rect.hit", (els) => els.length);
    expect(bars === 12, `${bars} month targets in the chart`);
  },
  interactName:
    "changing the periods and the year calls get_profit_loss (and the monthly figures) through the host and shows the new numbers; a month opens its transactions",
  async interact({ frame, data, calls }) {
    const division = String(data.division);
    const start = calls.length;
    await frame.selectOption("#period-to", "6");
    const half = await observed(
      frame,
      calls,
      start,
      (c) => c.name === "get_profit_loss" && sameArgs(c.arguments, { division, year: data.year, period_from: 1, period_to: 6 }),
      "get_profit_loss for periods 1-6",
    );
    await frame.waitForFunction(
      (want) => Number(document.querySelector("#totals [data-field=revenue]")?.dataset.value) === want,
      half.result.structuredContent.revenue,
    );
    const atYear = calls.length;
    await frame.selectOption("#year", String(data.year - 1));
    await observed(
      frame,
      calls,
      atYear,
      (c) => c.name === "get_profit_loss" && sameArgs(c.arguments, { division, year: data.year - 1, period_from: 1, period_to: 6 }),
      "get_profit_loss for the year before",
    );
    await observed(
      frame,
      calls,
      atYear,
      (c) => c.name === "get_profit_loss_by_month" && sameArgs(c.arguments, { division, year: data.year - 1 }),
      "the monthly figures of the year before",
    );
    await frame.waitForSelector("#months");
    const atClick = calls.length;
    await frame.click("#months tr[data-period='3'] button");
    const drill = await observed(
      frame,
      calls,
      atClick,
      (c) => c.name === "get_transactions" && sameArgs(c.arguments, { division, year: data.year - 1, period: 3, limit: 200 }),
      "get_transactions for March of the year before",
    );
    await frame.waitForSelector("#drill table");
    const rows = await frame.$$eval("#drill tbody tr", (els) => els.length);
    const want = drill.result.structuredContent.transactions.length;
    expect(rows === want, `${rows} transactions shown, ${want} in the result`);
  },
};


/// Checks each `[data-field]` under `selector` against `data[field]`.
async function fields(frame, selector, data, names) {
  const shown = await amounts(frame, `${selector} [data-field]`);
  for (const field of names) {
    const found = shown.find((x) => x.field === field);
    expect(found, `no ${field} shown`);
    same(found.value, data[field], field);
  }
}

/// Picks the first administration other than the one shown, once the view
/// has the list (from its own list_divisions call through the host).
async function otherAdministration(frame, current) {
  await frame.waitForSelector("#division option:nth-child(2)", { state: "attached" });
  const values = await frame.$$eval("#division option", (els) => els.map((e) => e.value));
  const other = values.find((v) => v !== current);
  expect(other, `only ${JSON.stringify(values)} to choose from`);
  await frame.selectOption("#division", other);
  return other;
}

const snapshot = {
  name: "snapshot",
  tool: "get_financial_snapshot",
  args: {},
  async verify({ frame, data }) {
    await fields(frame, "#figures", data, ["revenue_ytd", "result_ytd", "cash", "receivables", "receivables_overdue", "payables"]);
  },
  interactName: "choosing another administration calls get_financial_snapshot for it through the host and shows its figures",
  async interact({ frame, data, calls }) {
    const from = calls.length;
    const other = await otherAdministration(frame, String(data.division));
    const c = await observed(frame, calls, from, (c) => c.name === "get_financial_snapshot" && sameArgs(c.arguments, { division: other }), `get_financial_snapshot for ${other}`);
    await frame.waitForFunction((want) => Number(document.querySelector("#figures [data-field=cash]")?.dataset.value) === want, c.result.structuredContent.cash);
    await fields(frame, "#figures", c.result.structuredContent, ["revenue_ytd", "result_ytd", "cash", "payables"]);
  },
};

const balanceSheet = {
  name: "balance-sheet",
  tool: "get_balance_sheet",
  args: {},
  async verify({ frame, data }) {
    for (const [id, rows, total] of [["assets", data.assets, "total_assets"], ["liabilities", data.liabilities_and_equity, "total_liabilities_and_equity"]]) {
      const shown = await amounts(frame, `#${id} tbody [data-field=amount]`);
      expect(shown.length === rows.length, `${id}: ${shown.length} rows shown, ${rows.length} in the result`);
      rows.forEach((r, i) => same(shown[i].value, r.amount, `${id} ${r.code} ${r.description}`));
      const foot = await amounts(frame, `#${id} tfoot [data-field=${total}]`);
      same(foot[0].value, data[total], total);
    }
    await fields(frame, ".kpis", data, ["current_year_result"]);
  },
  interactName: "choosing another month calls get_balance_sheet for its end through the host",
  async interact({ frame, data, calls }) {
    const [y, m] = data.as_of_period.split("-").map(Number);
    const month = m === 1 ? 2 : m - 1;
    const from = calls.length;
    await frame.selectOption("#month", String(month));
    const c = await observed(frame, calls, from, (c) => c.name === "get_balance_sheet" && sameArgs(c.arguments, { division: String(data.division), date: `${y}-${String(month).padStart(2, "0")}-01` }), `get_balance_sheet for month ${month}`);
    await frame.waitForFunction((want) => Number(document.querySelector("#assets tfoot [data-field]")?.dataset.value) === want, c.result.structuredContent.total_assets);
  },
};

const BUCKETS = ["not_due", "days_1_30", "days_31_60", "days_61_90", "days_over_90"];

const aging = {
  name: "aging",
  tool: "get_aging_analysis",
  args: {},
  async verify({ frame, data }) {
    await fields(frame, ".kpis", data, ["net_position"]);
    for (const side of ["receivables", "payables"]) {
      const a = data[side];
      const total = await amounts(frame, `#${side} h2 [data-field=total]`);
      same(total[0].value, a.total, `${side} total`);
      const buckets = await amounts(frame, `#${side} table.buckets [data-field=bucket]`);
      for (const b of BUCKETS) {
        const shown = buckets.find((x) => x.row === b);
        expect(shown, `${side} ${b} not shown`);
        same(shown.value, a.buckets[b], `${side} ${b}`);
      }
      const top = [...a.relations].sort((x, y) => y.total - x.total).slice(0, 10);
      const rows = await amounts(frame, `#${side} table.relations [data-field=total]`);
      expect(rows.length === top.length, `${side}: ${rows.length} relations shown, ${top.length} expected`);
      top.forEach((r, i) => {
        expect(rows[i].row === r.relation, `${side} row ${i}: ${rows[i].row}, expected ${r.relation}`);
        same(rows[i].value, r.total, `${side} ${r.relation}`);
      });
    }
  },
  interactName: "choosing another administration calls get_aging_analysis for it through the host",
  async interact({ frame, data, calls }) {
    const from = calls.length;
    const other = await otherAdministration(frame, String(data.division));
    const c = await observed(frame, calls, from, (c) => c.name === "get_aging_analysis" && sameArgs(c.arguments, { division: other }), `get_aging_analysis for ${other}`);
    await frame.waitForFunction((want) => Number(document.querySelector(".kpis [data-field=net_position]")?.dataset.value) === want, c.result.structuredContent.net_position);
  },
};

const cashflow = {
  name: "cashflow",
  tool: "get_cashflow_forecast",
  args: { forecast_days: 30 },
  ready: "#weeks",
  async verify({ frame, data, calls }) {
    await fields(frame, "#figures", data, ["bank_balance", "expected_in", "expected_out", "forecast_balance"]);
    const weekly = calls.find((c) => c.name === "get_cashflow_by_week");
    expect(weekly, "the view asked no weekly figures");
    expect(sameArgs(weekly.arguments, { division: String(data.division), forecast_days: 30 }), `weeks asked with ${JSON.stringify(weekly.arguments)}`);
    const rows = await amounts(frame, "#weeks tr[data-period] [data-field]");
    weekly.result.structuredContent.weeks.forEach((w, i) => {
      for (const field of ["expected_in", "expected_out", "balance"]) {
        const shown = rows.find((x) => x.row === String(i + 1) && x.field === field);
        expect(shown, `week ${i + 1} ${field} not shown`);
        same(shown.value, w[field], `week ${i + 1} ${field}`);
      }
    });
  },
  interactName: "choosing a 60-day horizon calls get_cashflow_forecast and the weekly figures for it through the host",
  async interact({ frame, data, calls }) {
    const division = String(data.division);
    const from = calls.length;
    await frame.selectOption("#forecast-days", "60");
    const c = await observed(frame, calls, from, (c) => c.name === "get_cashflow_forecast" && sameArgs(c.arguments, { division, forecast_days: 60 }), "get_cashflow_forecast for 60 days");
    await observed(frame, calls, from, (c) => c.name === "get_cashflow_by_week" && sameArgs(c.arguments, { division, forecast_days: 60 }), "the weekly figures for 60 days");
    await frame.waitForFunction((want) => Number(document.querySelector("#figures [data-field=forecast_balance]")?.dataset.value) === want, c.result.structuredContent.forecast_balance);
  },
};

const consolidated = {
  name: "consolidated",
  tool: "get_consolidated_report",
  args: {},
  async verify({ frame, data }) {
    const shown = await amounts(frame, "#consolidated tbody [data-field]");
    const keys = Object.keys(data.totals);
    expect(keys.length > 0, "no figures in the result");
    for (const k of keys) {
      for (const a of data.administrations) {
        const cell = shown.find((x) => x.row === k && x.field === String(a.division));
        expect(cell, `${k} of ${a.division} not shown`);
        same(cell.value, a.figures[k] ?? 0, `${k} of ${a.division}`);
      }
      const total = shown.find((x) => x.row === k && x.field === "total");
      same(total.value, data.totals[k], `${k} total`);
    }
    const columns = await frame.$$eval("#consolidated thead th", (els) => els.length);
    expect(columns === data.administrations.length + 2, `${columns} columns for ${data.administrations.length} administrations`);
  },
  interactName: "switching to the balance sheet calls get_consolidated_report for it through the host",
  async interact({ frame, calls }) {
    const from = calls.length;
    await frame.selectOption("#report", "balance_sheet");
    const c = await observed(frame, calls, from, (c) => c.name === "get_consolidated_report" && sameArgs(c.arguments, { report: "balance_sheet" }), "get_consolidated_report for the balance sheet");
    const key = Object.keys(c.result.structuredContent.totals)[0];
    await frame.waitForSelector(`#consolidated tr[data-code='${key}']`);
  },
};

function lastMonth() {
  const now = new Date();
  const y = now.getUTCFullYear();
  const m = now.getUTCMonth() + 1;
  return m === 1 ? { year: y - 1, period: 12 } : { year: y, period: m - 1 };
}

const periodClose = {
  name: "period-close",
  tool: "get_period_close_check",
  args: lastMonth(),
  async verify({ frame, data }) {
    for (const c of data.checks) {
      const count = await frame.$eval(`#checks li[data-code='${c.check}'] [data-field=count]`, (e) => Number(e.dataset.value));
      expect(count === c.count, `${c.check}: ${count} shown, ${c.count} in the result`);
      const amount = await amounts(frame, `#checks li[data-code='${c.check}'] [data-field=amount]`);
      same(amount[0].value, c.amount, `${c.check} amount`);
    }
  },
  interactName: "an item opens its details, a suspense account its transactions, and another month calls get_period_close_check, all through the host",
  async interact({ frame, data, calls }) {
    const division = String(data.division);
    const open = data.checks.find((c) => c.count > 0);
    expect(open, "the demo books have nothing to close: no check has items");
    await frame.click(`#checks li[data-code='${open.check}'] button`);
    const rows = await frame.$$eval(`#details-${open.check} tbody tr`, (els) => els.length);
    expect(rows === open.details.length, `${rows} details shown, ${open.details.length} in the result`);
    const suspense = data.checks.find((c) => c.check === "suspense_and_clearing_balances" && c.count > 0);
    if (suspense) {
      if (suspense !== open) await frame.click(`#checks li[data-code='${suspense.check}'] button`);
      const code = String(suspense.details[0].gl_account);
      const from = calls.length;
      await frame.click(`#details-${suspense.check} tbody tr:first-child button`);
      await observed(frame, calls, from, (c) => c.name === "get_transactions" && sameArgs(c.arguments, { division, gl_account: code, year: data.year, period: data.period, limit: 200 }), `get_transactions on ${code}`);
      await frame.waitForSelector("#account table");
    }
    const period = data.period === 1 ? 2 : data.period - 1;
    const from = calls.length;
    await frame.selectOption("#period", String(period));
    await observed(frame, calls, from, (c) => c.name === "get_period_close_check" && sameArgs(c.arguments, { division, year: data.year, period }), `get_period_close_check for period ${period}`);
  },
};

export const VIEWS = [profitLoss, balanceSheet, aging, cashflow, consolidated, periodClose, snapshot];
