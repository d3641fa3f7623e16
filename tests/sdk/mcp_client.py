"""End-to-end check with the official MCP Python SDK: connect over
Streamable HTTP with an API key, list the tools, call every one of them
with realistic arguments, and validate what comes back; then list and get
every prompt (Dutch and English), read every resource and the division
template, and complete prompt arguments.

Usage: mcp_client.py <mcp url> <api key> [--compare-key <other key>]

With --compare-key every tool is also called with the other key (a demo
key against a sandbox-backed key): both answers must be the same, links to
the Exact site aside.
Prints one JSON object per tool call and exits non-zero on any failure.
"""

import asyncio
import json
import re
import sys
import time

from mcp import ClientSession
from mcp.client.streamable_http import streamablehttp_client

CALLS = {
    "list_divisions": {},
    "get_gl_accounts": {"type": "profitloss"},
    "get_outstanding_invoices": {"type": "both", "min_days_overdue": 0},
    "get_trial_balance": {"year": 2025},
    "get_profit_loss": {"year": 2025, "period_from": 1, "period_to": 12},
    "get_balance_sheet": {"date": "2026-06-30"},
    "get_aging_receivables": {},
    "get_aging_payables": {},
    "get_relations": {"type": "customer"},
    "search_relations": {"query": "bakker"},
    "get_revenue": {"year": 2025, "compare_previous_year": True},
    "get_transactions": {"year": 2026, "period": 1, "limit": 100},
    "get_sales_invoices": {"status": "open"},
    "get_purchase_invoices": {"status": "all", "limit": 50},
    "get_bank_transactions": {"from_date": "2026-01-01", "to_date": "2026-03-31"},
    "get_vat_summary": {"year": 2025, "quarter": 4},
    "get_cashflow_forecast": {"forecast_days": 60},
    "get_financial_snapshot": {},
    "explain_change": {"from_period": "2025-Q1", "to_period": "2026-Q1", "metric": "result"},
    "get_consolidated_report": {"year": 2025},
    "get_budget_comparison": {"year": 2025, "period_from": 1, "period_to": 6},
    "search_transactions": {"query": "a", "from_date": "2025-01-01", "to_date": "2025-12-31", "limit": 50},
    "get_sales_orders": {"status": "open"},
    "get_recurring_revenue": {"as_of": "2026-06-30"},
    "get_sales_funnel": {"include_closed": True},
    "get_period_close_check": {"year": 2026, "period": 10},
    "get_wip_overview": {"as_of": "2026-06-30"},
    "get_margin_analysis": {"year": 2025},
    "get_cost_center_report": {"year": 2025, "period_from": 3, "period_to": 3},
    "get_purchase_contracts": {"active_only": False},
}


def normalised(value) -> str:
    """An answer with its Exact site's origin replaced (the demo serves
    https://start.exactonline.demo.invalid, the sandbox a local port)."""
    text = json.dumps(value, sort_keys=True)
    return re.sub(r"https://start\.exactonline\.demo\.invalid|http://127\.0\.0\.1:\d+", "<exact>", text)


async def compared(other: ClientSession, tool: str, args: dict):
    """The other key's answer; waits out Exact's per-minute limit, as an
    assistant told "try again after" would."""
    for _ in range(3):
        result = await other.call_tool(tool, args)
        message = result.content[0].text if result.isError and result.content else ""
        if "rate limit" not in message:
            return result
        await asyncio.sleep(61 - time.gmtime().tm_sec)
    return result


async def main(url: str, key: str, compare_key: str | None = None) -> int:
    if compare_key:
        async with streamablehttp_client(url, headers={"Authorization": f"Bearer {compare_key}"}) as (r2, w2, _):
            async with ClientSession(r2, w2) as other:
                await other.initialize()
                return await run(url, key, other)
    return await run(url, key, None)


async def run(url: str, key: str, other: ClientSession | None) -> int:
    failures = 0
    async with streamablehttp_client(url, headers={"Authorization": f"Bearer {key}"}) as (read, write, _):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            print(json.dumps({"initialize": init.protocolVersion, "server": init.serverInfo.name}))
            listed = await session.list_tools()
            names = [t.name for t in listed.tools]
            missing = sorted(set(CALLS) - set(names))
            if missing:
                print(json.dumps({"error": "tools missing", "missing": missing}))
                return 1
            # Spread the calls over the administrations, as Exact allows 60
            # calls a minute per administration.
            divisions = json.loads((await session.read_resource("exact://divisions")).contents[0].text)
            usable = [a["division"] for a in divisions["administrations"] if a["usable"]]
            for i, tool in enumerate(listed.tools):
                if tool.outputSchema is None or not tool.annotations or not tool.annotations.readOnlyHint:
                    print(json.dumps({"tool": tool.name, "error": "no outputSchema or readOnlyHint"}))
                    failures += 1
                args = dict(CALLS.get(tool.name, {}))
                if tool.name == "get_document_content":
                    for d in usable:
                        found = await session.call_tool("get_document_attachments", {"limit": 1, "division": d})
                        attachments = found.structuredContent["attachments"]
                        if attachments:
                            args = {"division": d, "attachment_id": attachments[0]["id"]}
                            break
                if tool.name == "get_customer_360":
                    found = await session.call_tool("get_relations", {"type": "customer", "limit": 1, "division": usable[i % len(usable)]})
                    args["customer_id"] = found.structuredContent["relations"][0]["id"]
                schema_props = (tool.inputSchema or {}).get("properties", {})
                if "division" in schema_props and usable:
                    args.setdefault("division", usable[i % len(usable)])
                # The SDK validates structuredContent against outputSchema.
                result = await session.call_tool(tool.name, args)
                ok = not result.isError and result.structuredContent is not None and result.content
                detail = {} if ok else {"message": result.content[0].text if result.content else None}
                if ok and other is not None:
                    theirs = await compared(other, tool.name, args)
                    if normalised(theirs.structuredContent) != normalised(result.structuredContent):
                        ok = False
                        detail = {"differs": True, "this": result.structuredContent, "compared": theirs.structuredContent,
                                  "message": theirs.content[0].text if theirs.isError and theirs.content else None}
                print(json.dumps({"tool": tool.name, "ok": bool(ok), "keys": sorted((result.structuredContent or {}).keys()), **detail}))
                failures += 0 if ok else 1
            bad = await session.call_tool("get_gl_accounts", {"division": "not a number"})
            if not bad.isError:
                print(json.dumps({"error": "invalid arguments were accepted"}))
                failures += 1
            failures += await prompts_and_resources(session)
    return 1 if failures else 0


PROMPTS = ["financial_analysis", "invoice_summary", "cash_flow_overview",
           "financial_health_check", "debtor_collection", "vat_preparation"]


async def prompts_and_resources(session: ClientSession) -> int:
    failures = 0
    listed = await session.list_prompts()
    names = [p.name for p in listed.prompts]
    if names != PROMPTS:
        print(json.dumps({"error": "prompts", "listed": names}))
        return 1
    divisions = json.loads((await session.read_resource("exact://divisions")).contents[0].text)
    usable = [a["division"] for a in divisions["administrations"] if a["usable"]]
    for name in PROMPTS:
        for language in ("nl", "en"):
            got = await session.get_prompt(name, {"language": language, "division": str(usable[-1])})
            text = got.messages[0].content.text
            ok = got.messages[0].role == "user" and str(usable[-1]) in text and "get_" in text
            print(json.dumps({"prompt": name, "language": language, "ok": ok}))
            failures += 0 if ok else 1
    resources = await session.list_resources()
    uris = [str(r.uri) for r in resources.resources]
    templates = await session.list_resource_templates()
    template = templates.resourceTemplates[0].uriTemplate if templates.resourceTemplates else None
    connections = json.loads((await session.read_resource("exact://connections")).contents[0].text)
    one = json.loads((await session.read_resource(f"exact://divisions/{usable[0]}")).contents[0].text)
    ok = (uris == ["exact://divisions", "exact://connections"]
          and template == "exact://divisions/{division}"
          and connections["connections"][0]["status"] == "active"
          and one["division"] == usable[0])
    print(json.dumps({"resources": uris, "template": template, "ok": ok}))
    failures += 0 if ok else 1
    from mcp.types import PromptReference
    done = await session.complete(PromptReference(type="ref/prompt", name="vat_preparation"),
                                  {"name": "division", "value": ""})
    ok = sorted(done.completion.values) == sorted(str(d) for d in usable)
    print(json.dumps({"completion": done.completion.values, "ok": ok}))
    failures += 0 if ok else 1
    return failures


if __name__ == "__main__":
    compare = sys.argv[4] if len(sys.argv) > 4 and sys.argv[3] == "--compare-key" else None
    sys.exit(asyncio.run(main(sys.argv[1], sys.argv[2], compare)))
