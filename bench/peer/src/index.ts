// A benchmark fixture, not product code: the peer that `cargo xtask bench`
// runs beside our mcp-server. It is what a competent team would write with
// the official TypeScript MCP SDK on Cloudflare Workers: the web-standard
// Streamable HTTP transport, stateless (a fresh server and transport per
// request, as the SDK requires), JSON responses, and the same tools the
// bench calls, each making one Exact call with one fixed access token. It
// has no database, no authentication of its own and no metering, so the
// difference to our server is the price of those (and of the language).

import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { WebStandardStreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js";
import { z } from "zod";

interface Env {
  /** The Exact-compatible upstream (the local sandbox), without a trailing slash. */
  EXACT_BASE_URL: string;
  /** The administration the tools read (the account's default one). */
  EXACT_DIVISION: string;
  /** A valid Exact access token (a secret: passed with --env-file). */
  EXACT_ACCESS_TOKEN: string;
}

type Row = Record<string, unknown>;

/** One GET of an Exact list: the first page's rows (the bench's books fit one page). */
async function exactList(env: Env, path: string, select: string[]): Promise<Row[]> {
  const url = `${env.EXACT_BASE_URL}/api/v1/${env.EXACT_DIVISION}/${path}?$select=${encodeURIComponent(select.join(","))}`;
  const res = await fetch(url, {
    headers: { Authorization: `Bearer ${env.EXACT_ACCESS_TOKEN}`, Accept: "application/json" },
  });
  if (!res.ok) {
    throw new Error(`Exact answered ${res.status}`);
  }
  const body = (await res.json()) as { d?: { results?: Row[] } | Row[] };
  const d = body.d;
  return Array.isArray(d) ? d : (d?.results ?? []);
}

/** Exact's `/Date(ms)/` as `YYYY-MM-DD`. */
function isoDay(v: unknown): string | null {
  const m = typeof v === "string" ? /\/Date\((-?\d+)\)\//.exec(v) : null;
  return m ? new Date(Number(m[1])).toISOString().slice(0, 10) : null;
}

function cents(v: unknown): number {
  return typeof v === "number" ? Math.round(v * 100) : 0;
}

function server(env: Env): McpServer {
  const mcp = new McpServer({ name: "ts-sdk-peer", version: "1.0.0" });

  mcp.registerTool(
    "list_divisions",
    {
      title: "List administrations",
      description: "Lists the Exact Online administrations (divisions) this account may query.",
      inputSchema: {},
      annotations: { readOnlyHint: true },
    },
    async () => {
      const rows = await exactList(env, "system/Divisions", ["Code", "Description", "Status"]);
      const administrations = rows.map((r) => ({
        division: r.Code,
        name: r.Description,
        is_default: String(r.Code) === env.EXACT_DIVISION,
        status: r.Status,
      }));
      const text = administrations
        .map((a) => `${a.division} ${a.name}${a.is_default ? " [default]" : ""}`)
        .join("\n");
      return {
        content: [{ type: "text", text }],
        structuredContent: { administrations, count: administrations.length },
      };
    },
  );

  mcp.registerTool(
    "get_outstanding_invoices",
    {
      title: "Outstanding invoices",
      description: "Open invoices from Exact Online: what customers still owe (receivables) and what is still to be paid (payables).",
      inputSchema: {
        type: z.enum(["receivable", "payable", "both"]).default("both"),
        overdue_only: z.boolean().default(false),
      },
      annotations: { readOnlyHint: true },
    },
    async ({ type, overdue_only }) => {
      const today = new Date().toISOString().slice(0, 10);
      const out: Record<string, unknown> = { division: Number(env.EXACT_DIVISION), as_of: today };
      const text: string[] = [];
      const sides: [string, string, string][] = [
        ["receivables", "read/financial/ReceivablesList", "receivable"],
        ["payables", "read/financial/PayablesList", "payable"],
      ];
      for (const [key, path, label] of sides) {
        if (type !== "both" && type !== label) continue;
        const rows = await exactList(env, path, [
          "AccountName",
          "AccountCode",
          "InvoiceNumber",
          "InvoiceDate",
          "DueDate",
          "Amount",
        ]);
        const items = rows
          .map((r) => {
            const due = isoDay(r.DueDate);
            const days = due ? Math.floor((Date.parse(today) - Date.parse(due)) / 86_400_000) : 0;
            return {
              c: cents(r.Amount),
              relation: String(r.AccountName ?? ""),
              relation_code: String(r.AccountCode ?? "").trim(),
              invoice_number: r.InvoiceNumber ?? null,
              invoice_date: isoDay(r.InvoiceDate),
              due_date: due,
              amount: cents(r.Amount) / 100,
              days_overdue: Math.max(days, 0),
            };
          })
          .filter((i) => !overdue_only || i.days_overdue > 0)
          .sort((a, b) => b.days_overdue - a.days_overdue);
        const total = items.reduce((s, i) => s + i.c, 0);
        const overdue = items.filter((i) => i.days_overdue > 0).reduce((s, i) => s + i.c, 0);
        text.push(
          `${key}: ${items.length} open, total € ${(total / 100).toFixed(2)}, of which overdue € ${(overdue / 100).toFixed(2)}`,
        );
        out[key] = {
          count: items.length,
          total: total / 100,
          overdue_total: overdue / 100,
          items: items.map(({ c: _c, ...rest }) => rest),
        };
      }
      return { content: [{ type: "text", text: text.join("\n") }], structuredContent: out };
    },
  );

  // No upstream at all: the SDK's own cost per call, for the bench's
  // "added latency" of the peer.
  mcp.registerTool(
    "noop",
    { description: "Answers at once without calling Exact (benchmark baseline).", inputSchema: {} },
    async () => ({ content: [{ type: "text", text: "ok" }] }),
  );

  return mcp;
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname === "/health") {
      return Response.json({ ok: true });
    }
    if (url.pathname !== "/mcp") {
      return new Response("Not found", { status: 404 });
    }
    // Stateless: the SDK refuses to reuse a stateless transport, so each
    // request gets its own server and transport.
    const transport = new WebStandardStreamableHTTPServerTransport({
      sessionIdGenerator: undefined,
      enableJsonResponse: true,
    });
    await server(env).connect(transport);
    return transport.handleRequest(request);
  },
};
