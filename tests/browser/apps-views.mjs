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

export const VIEWS = [profitLoss];
