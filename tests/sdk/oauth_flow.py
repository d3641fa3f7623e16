"""The official MCP Python SDK's OAuth client connecting from nothing, as a
desktop assistant does: 401 → protected resource metadata → authorization
server metadata → a client (a Client ID Metadata Document served by this
script over HTTPS, or Dynamic Client Registration) → the consent page in
the browser (driven by `tests/browser/oauth.mjs`, see the line protocol in
`oauth_support.py`) → token → tools/call → refresh → revoke → 401.

Usage:
  oauth_flow.py --mcp-url URL --mode cimd|dcr|deny [--tls DIR] [--divisions 1,2,3]

  cimd  the client_id is the URL of a metadata document this script serves
        (needs --tls: the folder of `test_ca.py`); also checks the 401
        challenge and both discovery documents.
  dcr   the SDK registers at the registration endpoint.
  deny  the browser refuses on the consent page; the SDK must fail with
        access_denied and hold no token.

`--divisions` are the Exact administrations of the signed-in login: the
tool's answer must come from them, narrowed to what the consent allowed.

Prints `CHECK <id> ok|FAILED <reason>` lines (ids prefixed with the mode)
and exits 0 when every check passed, 1 otherwise.
"""

import argparse
import asyncio
import json
import re
import time
from urllib.parse import parse_qs, urlparse

import httpx
from mcp import ClientSession
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamablehttp_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

from oauth_support import Checks, DocumentServer, Listener, browser, say, short

PRM_PATH = "/.well-known/oauth-protected-resource"
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "oauth-e2e", "version": "1"},
    },
}
MCP_HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


class MemoryStorage:
    """The SDK's token storage, kept in memory and inspectable."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None
        self.token_writes = 0

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens
        self.token_writes += 1

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


def origin(url: str) -> str:
    p = urlparse(url)
    return f"{p.scheme}://{p.netloc}"


def discovery(mcp_url: str) -> dict:
    """The 401 challenge and both metadata documents, as a client sees them
    before it has anything. Returns the authorization server metadata."""
    with httpx.Client(timeout=30) as http:
        r = http.post(mcp_url, json=INITIALIZE, headers=MCP_HEADERS)
        assert r.status_code == 401, f"unauthenticated POST /mcp: {r.status_code}"
        challenge = r.headers.get("www-authenticate", "")
        prm_url = f"{origin(mcp_url)}{PRM_PATH}{urlparse(mcp_url).path}"
        assert challenge.startswith("Bearer "), f"challenge {challenge!r}"
        assert f'resource_metadata="{prm_url}"' in challenge, f"challenge {challenge!r} lacks {prm_url}"
        # The scope the challenge names (whatever its name) is the one the
        # metadata advertises: clients ask for exactly that.
        named = re.search(r'scope="([^"]+)"', challenge)
        assert named, f"challenge {challenge!r} names no scope"
        prm = http.get(prm_url).json()
        root_prm = http.get(f"{origin(mcp_url)}{PRM_PATH}").json()
        assert prm == root_prm, f"path-aware {prm} and root {root_prm} metadata differ"
        assert prm["resource"] == mcp_url, f"resource {prm['resource']!r} is not {mcp_url!r}"
        for scope in named.group(1).split():
            assert scope in prm.get("scopes_supported", []), f"challenge scope {scope!r} not in {prm.get('scopes_supported')}"
        issuer = prm["authorization_servers"][0]
        assert not issuer.endswith("/"), f"issuer {issuer!r} ends in a slash"
        asm = http.get(f"{issuer}/.well-known/oauth-authorization-server")
        assert asm.status_code == 200, f"RFC 8414 metadata: {asm.status_code}"
        meta = asm.json()
        oidc = http.get(f"{issuer}/.well-known/openid-configuration").json()
        for m, where in ((meta, "oauth-authorization-server"), (oidc, "openid-configuration")):
            assert m["issuer"] == issuer, f"{where}: issuer {m['issuer']!r} is not {issuer!r}"
            assert m.get("code_challenge_methods_supported") == ["S256"], f"{where}: PKCE {m.get('code_challenge_methods_supported')}"
            assert "none" in m.get("token_endpoint_auth_methods_supported", []), f"{where}: auth methods"
            assert m.get("client_id_metadata_document_supported") is True, f"{where}: no CIMD"
            assert m.get("authorization_response_iss_parameter_supported") is True, f"{where}: no RFC 9207"
            assert "jwks_uri" not in m, f"{where}: a jwks_uri for opaque tokens"
            for grant in ("authorization_code", "refresh_token"):
                assert grant in m.get("grant_types_supported", []), f"{where}: grant {grant}"
            for field in ("authorization_endpoint", "token_endpoint", "registration_endpoint", "revocation_endpoint"):
                assert str(m.get(field, "")).startswith(issuer + "/"), f"{where}: {field} {m.get(field)!r}"
        return meta


async def run(args: argparse.Namespace, checks: Checks) -> None:
    mode = args.mode
    divisions = [int(d) for d in args.divisions.split(",") if d]
    listener = Listener()
    docs: DocumentServer | None = None
    storage = MemoryStorage()
    seen: dict = {"authorize": [], "reply": None}

    meta: dict | None = None
    if mode == "cimd":
        # Its own line: a wrong detail in the metadata does not stop the
        # flow below, which shows what the SDK makes of it.
        checks.run("cimd.discovery", lambda: discovery(args.mcp_url) and None)
    try:
        with httpx.Client(timeout=30) as http:
            issuer = http.get(f"{origin(args.mcp_url)}{PRM_PATH}/mcp").json()["authorization_servers"][0]
            asm = http.get(f"{issuer}/.well-known/oauth-authorization-server")
            assert asm.status_code == 200, f"{issuer}/.well-known/oauth-authorization-server answered {asm.status_code}"
            meta = asm.json()
    except Exception as e:  # without metadata no step of the flow can run
        checks.fail(f"{mode}.metadata", f"{type(e).__name__}: {e}")
        return

    client_metadata_url = None
    if mode == "cimd":
        docs = DocumentServer(args.tls)
        client_metadata_url = docs.add_client("/oauth/client.json", listener.redirect_uri, "Testassistent (CIMD)")

    async def redirect_handler(url: str) -> None:
        seen["authorize"].append(url)
        q = {k: v[0] for k, v in parse_qs(urlparse(url).query).items()}
        say(f"SDK authorize client_id={q.get('client_id')} resource={q.get('resource')} scope={q.get('scope')}")
        action = "deny" if mode == "deny" else "allow"
        seen["reply"] = await asyncio.to_thread(browser, action, url)

    async def callback_handler() -> tuple[str, str | None]:
        hit = listener.take()
        reply = seen["reply"] or {}
        if hit is None:
            raise RuntimeError(
                f"the browser never came back to {listener.redirect_uri}: it ended on {reply.get('url')} "
                f"(status {reply.get('status')}, driver error {reply.get('error')})"
            )
        if hit.get("iss") != issuer:
            raise RuntimeError(f"the redirect's iss {hit.get('iss')!r} is not the issuer {issuer!r} (RFC 9207)")
        if "error" in hit:
            raise RuntimeError(f"authorization refused: {hit['error']} (state echoed: {'state' in hit})")
        say(f"SDK callback code={short(hit.get('code'))}")
        return hit.get("code", ""), hit.get("state")

    provider = OAuthClientProvider(
        server_url=args.mcp_url,
        client_metadata=OAuthClientMetadata(
            client_name=f"Testassistent ({mode.upper()})",
            redirect_uris=[listener.redirect_uri],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=redirect_handler,
        callback_handler=callback_handler,
        timeout=120,
        client_metadata_url=client_metadata_url,
    )

    async def call(session: ClientSession, tool: str, arguments: dict):
        result = await session.call_tool(tool, arguments)
        text = "".join(c.text for c in result.content if getattr(c, "type", "") == "text")
        return result, text

    try:
        async with streamablehttp_client(args.mcp_url, auth=provider) as (read, write, _):
            async with ClientSession(read, write) as session:
                await session.initialize()
                if mode == "deny":
                    checks.fail("deny", "the SDK connected although the consent was refused")
                    return

                def connected() -> str:
                    assert storage.tokens is not None, "no token stored"
                    assert storage.tokens.access_token.startswith("pmjb_at_"), f"access token {short(storage.tokens.access_token)}"
                    assert (storage.tokens.refresh_token or "").startswith("pmjb_rt_"), f"refresh token {short(storage.tokens.refresh_token)}"
                    assert len(seen["authorize"]) == 1, f"{len(seen['authorize'])} authorization requests"
                    q = {k: v[0] for k, v in parse_qs(urlparse(seen["authorize"][0]).query).items()}
                    assert q.get("resource") == args.mcp_url, f"resource {q.get('resource')!r}"
                    assert q.get("code_challenge_method") == "S256", "PKCE"
                    assert (seen["reply"] or {}).get("consent") is True, f"no consent page: {seen['reply']}"
                    client_id = storage.client.client_id if storage.client else None
                    if mode == "cimd":
                        assert client_id == client_metadata_url, f"client_id {client_id!r}"
                        fetched = [p for m, p in docs.requests if p == "/oauth/client.json"]
                        assert fetched, "the portal never fetched the metadata document over HTTPS"
                        return f"client_id is the document URL, fetched {len(fetched)}x by the portal over HTTPS"
                    assert client_id and not client_id.startswith("http"), f"registered client_id {client_id!r}"
                    assert q.get("client_id") == client_id, "authorized with another client_id"
                    return f"registered client {short(client_id)}"

                if not checks.run(f"{mode}.connect", connected):
                    return

                async def tool() -> str:
                    result, text = await call(session, "list_divisions", {})
                    assert not result.isError, f"list_divisions failed: {text[:300]}"
                    rows = (result.structuredContent or {}).get("administrations", [])
                    got = sorted(r["division"] for r in rows)
                    checked = (seen["reply"] or {}).get("checked")
                    assert got and set(got) <= set(divisions), f"divisions {got} are not the login's {divisions}"
                    assert checked is not None and len(got) == checked, f"{len(got)} administrations answered, {checked} allowed"
                    left_out = sorted(set(divisions) - set(got))
                    if left_out:
                        # The administration unchecked on the consent page is
                        # out of this grant's reach, also when named.
                        r2, t2 = await call(session, "get_outstanding_invoices", {"type": "receivable", "division": left_out[0]})
                        assert r2.isError, f"division {left_out[0]} (not granted) answered: {t2[:200]}"
                    ok_call, t3 = await call(session, "get_outstanding_invoices", {"type": "receivable", "division": got[0]})
                    assert not ok_call.isError, f"a granted division failed: {t3[:200]}"
                    return f"answered {got} of {divisions}; {left_out or 'none'} refused"

                if not await run_async(checks, f"{mode}.tool", tool):
                    return

                async def refresh() -> str:
                    before = storage.tokens
                    writes = storage.token_writes
                    # The SDK refreshes when its token looks expired; that is
                    # its own refresh path, as after an hour of use, without
                    # waiting an hour. (0 would mean "no expiry" to the SDK.)
                    provider.context.token_expiry_time = time.time() - 1
                    result, text = await call(session, "list_divisions", {})
                    assert not result.isError, f"after refresh: {text[:200]}"
                    after = storage.tokens
                    assert storage.token_writes == writes + 1, f"{storage.token_writes - writes} token writes"
                    assert len(seen["authorize"]) == 1, "the SDK authorized again instead of refreshing"
                    assert after.access_token != before.access_token, "same access token"
                    assert after.refresh_token and after.refresh_token != before.refresh_token, "refresh token not rotated"
                    assert after.access_token.startswith("pmjb_at_") and after.refresh_token.startswith("pmjb_rt_")
                    return f"{short(before.access_token)} -> {short(after.access_token)}"

                if not await run_async(checks, f"{mode}.refresh", refresh):
                    return

        def revoke() -> str:
            tokens = storage.tokens
            client_id = storage.client.client_id
            # CIMD revokes the access token, DCR the refresh token: either
            # ends the whole grant.
            which = "access_token" if mode == "cimd" else "refresh_token"
            token = getattr(tokens, which)
            with httpx.Client(timeout=30) as http:
                r = http.post(meta["revocation_endpoint"], data={"token": token, "token_type_hint": which, "client_id": client_id})
                assert r.status_code == 200, f"revocation: {r.status_code} {r.text[:200]}"
                r = http.post(args.mcp_url, json=INITIALIZE, headers={**MCP_HEADERS, "authorization": f"Bearer {tokens.access_token}"})
                assert r.status_code == 401, f"the revoked grant's access token got {r.status_code}"
                assert 'error="invalid_token"' in r.headers.get("www-authenticate", ""), r.headers.get("www-authenticate")
                r = http.post(
                    meta["token_endpoint"],
                    data={"grant_type": "refresh_token", "refresh_token": tokens.refresh_token, "client_id": client_id, "resource": args.mcp_url},
                )
                assert r.status_code == 400 and r.json().get("error") == "invalid_grant", f"refresh after revocation: {r.status_code} {r.text[:200]}"
            return f"revoked the {which}; the access token gets 401, the refresh token invalid_grant"

        checks.run(f"{mode}.revoke", revoke)
    except BaseException as e:  # the SDK wraps failures in exception groups
        message = describe(e)
        if mode == "deny":
            ok = "access_denied" in message and storage.tokens is None and len(seen["authorize"]) == 1
            if ok:
                checks.ok("deny", "the SDK failed with access_denied and holds no token")
            else:
                checks.fail("deny", f"expected access_denied and no token: {message[:400]}")
        else:
            checks.fail(f"{mode}.sdk", message[:600])
    finally:
        listener.close()
        if docs:
            docs.close()


async def run_async(checks: Checks, check_id: str, fn) -> bool:
    try:
        detail = await fn()
        checks.ok(check_id, detail or "")
        return True
    except Exception as e:  # every failure becomes its own check line
        checks.fail(check_id, f"{type(e).__name__}: {e}")
        return False


def describe(e: BaseException) -> str:
    """An exception group flattened to its leaves' messages."""
    if isinstance(e, BaseExceptionGroup):
        return "; ".join(describe(x) for x in e.exceptions)
    return f"{type(e).__name__}: {e}"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mcp-url", required=True)
    parser.add_argument("--mode", choices=["cimd", "dcr", "deny"], required=True)
    parser.add_argument("--tls")
    parser.add_argument("--divisions", default="")
    args = parser.parse_args()
    checks = Checks()
    asyncio.run(run(args, checks))
    say(json.dumps({"mode": args.mode, "failed": checks.failed}))
    return 0 if checks.failed == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
