"""One tool call with the official MCP Python SDK, as an assistant given a
key from the portal would make it.

Usage: one_call.py <mcp url> <api key> <tool> [json arguments]
Prints one JSON line. Exit 0: the tool answered; 2: the server refused the
key (HTTP 401); 1: anything else.
"""

import asyncio
import json
import sys

from mcp import ClientSession
from mcp.client.streamable_http import streamablehttp_client


async def main(url: str, key: str, tool: str, args: dict) -> int:
    try:
        async with streamablehttp_client(url, headers={"Authorization": f"Bearer {key}"}) as (read, write, _):
            async with ClientSession(read, write) as session:
                await session.initialize()
                result = await session.call_tool(tool, args)
                text = "".join(c.text for c in result.content if getattr(c, "type", "") == "text")
                print(json.dumps({"ok": not result.isError, "text": text[:300]}))
                return 0 if not result.isError else 1
    except BaseException as e:  # the SDK wraps HTTP errors in exception groups
        message = repr(e)
        unauthorized = "401" in message or "Unauthorized" in message
        print(json.dumps({"ok": False, "unauthorized": unauthorized, "error": message[:300]}))
        return 2 if unauthorized else 1


if __name__ == "__main__":
    arguments = json.loads(sys.argv[4]) if len(sys.argv) > 4 else {}
    sys.exit(asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], arguments)))
