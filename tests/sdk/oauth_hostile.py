"""Hostile requests to the portal's authorization server, as plain HTTP
(httpx), each expecting a clear OAuth error and nothing issued. Codes that
need a consent come from the signed-in browser of `tests/browser/oauth.mjs`
(the `BROWSER` line protocol of `oauth_support.py`): one browser approves
the authorization requests one after another.

Usage:
  oauth_hostile.py --mcp-url URL --tls DIR --d1 FILE --strict-portal URL

`--strict-portal` is a second portal on the same D1 without
OAUTH_ALLOW_PRIVATE_CLIENT_HOSTS (as in production): it must refuse a
metadata document on a loopback address without fetching it, and it takes
the registration flood (so the flood's rate limit does not touch the
portal the other checks use).

Prints `CHECK hostile.<case> ok|FAILED <reason>` lines; exits 0 when all
passed.
"""

import argparse
import hashlib
import json
import secrets
import sqlite3
from urllib.parse import parse_qs, urlencode, urlparse

import httpx

from oauth_support import Checks, DocumentServer, Listener, browser, pkce, say, short

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "hostile", "version": "1"}},
}
MCP_HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
ELSEWHERE = "https://elsewhere.example/mcp"


class World:
    def __init__(self, args: argparse.Namespace) -> None:
        self.mcp_url = args.mcp_url
        self.http = httpx.Client(timeout=30)
        mcp = urlparse(args.mcp_url)
        prm = self.http.get(f"{mcp.scheme}://{mcp.netloc}/.well-known/oauth-protected-resource/mcp").json()
        self.issuer = prm["authorization_servers"][0]
        # What clients ask for: the resource's advertised scopes.
        self.scope = " ".join(prm.get("scopes_supported", []))
        asm = self.http.get(f"{self.issuer}/.well-known/oauth-authorization-server")
        assert asm.status_code == 200, f"{self.issuer}/.well-known/oauth-authorization-server answered {asm.status_code}"
        self.meta = asm.json()
        self.listener = Listener()
        self.docs = DocumentServer(args.tls)
        self.d1 = args.d1
        self.strict = args.strict_portal.rstrip("/")
        self.client_id = self.register(self.listener.redirect_uri, "Hostile test client")

    def register(self, redirect_uri: str, name: str, base: str | None = None) -> str:
        endpoint = (
            self.meta["registration_endpoint"]
            if base is None
            else f"{base}{urlparse(self.meta['registration_endpoint']).path}"
        )
        r = self.http.post(
            endpoint,
            json={
                "client_name": name,
                "redirect_uris": [redirect_uri],
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
                "token_endpoint_auth_method": "none",
                "application_type": "native",
            },
        )
        assert r.status_code == 201, f"registration: {r.status_code} {r.text[:200]}"
        return r.json()["client_id"]

    def authorize_url(self, **overrides) -> str:
        """An authorization request of the test client; `overrides` replace
        or (with None) drop parameters."""
        params = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self.listener.redirect_uri,
            "state": secrets.token_urlsafe(16),
            "code_challenge": "",
            "code_challenge_method": "S256",
            "scope": self.scope,
            "resource": self.mcp_url,
        }
        params.update(overrides)
        return f"{self.meta['authorization_endpoint']}?{urlencode({k: v for k, v in params.items() if v is not None})}"

    def code(self, **overrides) -> tuple[str, str]:
        """A fresh code through the browser's consent; returns (code, verifier)."""
        verifier, challenge = pkce()
        reply = browser("allow", self.authorize_url(code_challenge=challenge, **overrides))
        hit = self.listener.take()
        assert hit and "code" in hit, f"no code: the browser ended on {reply.get('url')} ({reply.get('status')}), listener got {hit}"
        assert hit.get("iss") == self.issuer, f"iss {hit.get('iss')!r}"
        return hit["code"], verifier

    def exchange(self, code: str, verifier: str, **overrides) -> httpx.Response:
        data = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.listener.redirect_uri,
            "client_id": self.client_id,
            "code_verifier": verifier,
            "resource": self.mcp_url,
        }
        data.update(overrides)
        return self.http.post(self.meta["token_endpoint"], data={k: v for k, v in data.items() if v is not None})

    def refresh(self, refresh_token: str, **overrides) -> httpx.Response:
        data = {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": self.client_id, "resource": self.mcp_url}
        data.update(overrides)
        return self.http.post(self.meta["token_endpoint"], data=data)

    def tokens(self, code: str, verifier: str) -> dict:
        r = self.exchange(code, verifier)
        assert r.status_code == 200, f"a good exchange failed: {r.status_code} {r.text[:200]}"
        body = r.json()
        assert body["access_token"].startswith("pmjb_at_") and body.get("refresh_token", "").startswith("pmjb_rt_")
        return body

    def sql(self, statement: str) -> int:
        """Changes the local D1 the Workers run on (as the token cron's
        checks do); returns the changed row count."""
        db = sqlite3.connect(self.d1)
        try:
            changed = db.execute(statement).rowcount
            db.commit()
            return changed
        finally:
            db.close()

    def mcp_status(self, access_token: str) -> int:
        r = self.http.post(self.mcp_url, json=INITIALIZE, headers={**MCP_HEADERS, "authorization": f"Bearer {access_token}"})
        return r.status_code


def refused(r: httpx.Response, *errors: str) -> str:
    """A token endpoint answer must be an OAuth error (400/401 JSON with one
    of `errors`) and carry no token."""
    try:
        body = r.json()
    except ValueError:
        raise AssertionError(f"not JSON: {r.status_code} {r.text[:200]}")
    assert r.status_code in (400, 401), f"status {r.status_code}: {json.dumps(body)[:200]}"
    assert body.get("error") in errors, f"error {body.get('error')!r}, expected one of {errors}"
    assert "access_token" not in body and "refresh_token" not in body, "a token came with the error"
    return body["error"]


def no_code(w: World, reply: dict, *errors: str) -> str:
    """An authorization request that must not produce a code: either an
    error page at the portal (no redirect), or, once the client and its
    redirect URI are known good, a redirect back with one of `errors`."""
    hit = w.listener.take()
    if hit is None:
        assert reply.get("error") is None, f"driver: {reply.get('error')}"
        assert reply.get("status") == 400, f"the portal answered {reply.get('status')} at {reply.get('url')}, expected a 400 error page"
        assert not reply.get("consent"), "a consent page was shown"
        return f"error page {reply.get('status')}"
    assert "code" not in hit, f"a code was issued: {short(hit.get('code'))}"
    assert hit.get("error") in errors, f"redirected with error {hit.get('error')!r}, expected one of {errors}"
    assert hit.get("state"), "the state was not echoed"
    return f"redirected back with error={hit['error']}"


def no_redirect(w: World, reply: dict) -> str:
    """An authorization request whose client or redirect URI is not
    trustworthy: an error page, never a redirect (RFC 6749 4.1.2.1)."""
    hit = w.listener.take()
    assert hit is None, f"redirected to the client: {hit}"
    assert reply.get("error") is None, f"the browser could not load the page: {reply.get('error')}"
    assert reply.get("status") == 400, f"the portal answered {reply.get('status')} at {reply.get('url')}"
    assert not reply.get("consent"), "a consent page was shown"
    return "error page 400, no redirect"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mcp-url", required=True)
    parser.add_argument("--tls", required=True)
    parser.add_argument("--d1", required=True)
    parser.add_argument("--strict-portal", required=True)
    args = parser.parse_args()
    checks = Checks()
    try:
        w = World(args)
    except Exception as e:  # without a client no case can run
        checks.fail("hostile.setup", f"{type(e).__name__}: {e}")
        return 1
    say(f"hostile client {short(w.client_id)} with redirect {w.listener.redirect_uri}")

    def wrong_redirect() -> str:
        # Another path on the registered loopback host: not registered
        # (loopback ports may differ, paths may not).
        bad = w.listener.redirect_uri.replace("/callback", "/elsewhere")
        _, challenge = pkce()
        first = no_redirect(w, browser("look", w.authorize_url(redirect_uri=bad, code_challenge=challenge)))
        # A code issued for the registered URI, exchanged naming another.
        code, verifier = w.code()
        second = refused(w.exchange(code, verifier, redirect_uri=bad), "invalid_grant")
        return f"authorize: {first}; token: {second}"

    def loopback_port() -> str:
        # RFC 8252: the same loopback redirect on another port is the same
        # client (desktop clients pick a free port each time).
        other = Listener()
        try:
            verifier, challenge = pkce()
            reply = browser("allow", w.authorize_url(redirect_uri=other.redirect_uri, code_challenge=challenge))
            hit = other.take()
            assert hit and "code" in hit, f"no code on another port: {reply}"
            r = w.exchange(hit["code"], verifier, redirect_uri=other.redirect_uri)
            assert r.status_code == 200, f"exchange: {r.status_code} {r.text[:200]}"
            return "another loopback port is the same client"
        finally:
            other.close()

    def pkce_missing() -> str:
        return no_code(w, browser("look", w.authorize_url(code_challenge=None, code_challenge_method=None)), "invalid_request")

    def pkce_plain() -> str:
        verifier = secrets.token_urlsafe(48)
        return no_code(w, browser("look", w.authorize_url(code_challenge=verifier, code_challenge_method="plain")), "invalid_request")

    def pkce_mismatch() -> str:
        code, _ = w.code()
        other, _ = pkce()
        return refused(w.exchange(code, other), "invalid_grant")

    def code_replay() -> str:
        code, verifier = w.code()
        first = w.tokens(code, verifier)
        assert w.mcp_status(first["access_token"]) == 200, "the first exchange's token does not work"
        second = refused(w.exchange(code, verifier), "invalid_grant")
        assert w.mcp_status(first["access_token"]) == 401, "the first exchange's access token still works after the replay"
        refused(w.refresh(first["refresh_token"]), "invalid_grant")
        return f"replay: {second}; the grant's tokens are revoked"

    def expired_code() -> str:
        code, verifier = w.code()
        # Waiting out the 60 s would cost a minute: this code's expiry is
        # moved into the past in the local D1 instead (the Worker then reads
        # it as any expired code). Codes are stored as the SHA-256 of the
        # code; several share a creation second, so the row is found by it.
        changed = w.sql(
            "UPDATE oauth_auth_codes SET expires_at = 0 WHERE code_hash = "
            f"'{hashlib.sha256(code.encode()).hexdigest()}'"
        )
        assert changed == 1, f"no code row in oauth_auth_codes ({changed})"
        return refused(w.exchange(code, verifier), "invalid_grant")

    def refresh_grace() -> str:
        code, verifier = w.code()
        t1 = w.tokens(code, verifier)
        r = w.refresh(t1["refresh_token"])
        assert r.status_code == 200, f"refresh: {r.status_code} {r.text[:200]}"
        # The claude.ai connector refreshes from two places at once: the
        # just-rotated token works once more within the grace.
        again = w.refresh(t1["refresh_token"])
        assert again.status_code == 200, f"the just-rotated token was refused within the grace: {again.status_code} {again.text[:200]}"
        replayed = again.json()
        assert w.mcp_status(replayed["access_token"]) == 200, "the grace's access token does not work"
        # Only once: a second replay is reuse, and ends the grant.
        error = refused(w.refresh(t1["refresh_token"]), "invalid_grant")
        assert w.mcp_status(replayed["access_token"]) == 401, "the grant survived a second replay"
        return f"one replay accepted; the second: {error}, grant revoked"

    def refresh_reuse() -> str:
        code, verifier = w.code()
        t1 = w.tokens(code, verifier)
        r = w.refresh(t1["refresh_token"])
        assert r.status_code == 200, f"refresh: {r.status_code} {r.text[:200]}"
        t2 = r.json()
        # The grace (a minute) is over: the spent token's first use is moved
        # into the past in the local D1 rather than waited for.
        changed = w.sql("UPDATE oauth_tokens SET refreshed_at = 0 WHERE refreshed_at IS NOT NULL")
        assert changed >= 1, "no refreshed token row in oauth_tokens"
        error = refused(w.refresh(t1["refresh_token"]), "invalid_grant")
        assert w.mcp_status(t2["access_token"]) == 401, "the newest access token still works after the reuse"
        refused(w.refresh(t2["refresh_token"]), "invalid_grant")
        return f"reuse after the grace: {error}; the whole grant is revoked"

    def other_resource() -> str:
        _, challenge = pkce()
        first = no_code(w, browser("look", w.authorize_url(resource=ELSEWHERE, code_challenge=challenge)), "invalid_target")
        # A code bound to this MCP server cannot be turned into a token for
        # another audience, nor can a refresh.
        code, verifier = w.code()
        second = refused(w.exchange(code, verifier, resource=ELSEWHERE), "invalid_target", "invalid_grant")
        code, verifier = w.code()
        tokens = w.tokens(code, verifier)
        third = refused(w.refresh(tokens["refresh_token"], resource=ELSEWHERE), "invalid_target", "invalid_grant")
        return f"authorize: {first}; token: {second}; refresh: {third}"

    def trailing_slash() -> str:
        code, verifier = w.code(resource=w.mcp_url + "/")
        r = w.exchange(code, verifier, resource=w.mcp_url + "/")
        assert r.status_code == 200, f"exchange: {r.status_code} {r.text[:200]}"
        assert w.mcp_status(r.json()["access_token"]) == 200, "its token does not work at the MCP server"
        return "resource with a trailing slash is the same resource"

    def cimd_document(path: str, doc: object) -> str:
        w.docs.documents[path] = doc
        _, challenge = pkce()
        reply = browser("look", w.authorize_url(client_id=w.docs.url(path), code_challenge=challenge))
        return no_redirect(w, reply)

    def cimd_mismatch() -> str:
        path = "/oauth/mismatch.json"
        return cimd_document(
            path,
            {
                "client_id": w.docs.url("/oauth/someone-else.json"),
                "client_name": "Mismatch",
                "redirect_uris": [w.listener.redirect_uri],
                "token_endpoint_auth_method": "none",
            },
        )

    def cimd_big() -> str:
        path = "/oauth/big.json"
        doc = {
            "client_id": w.docs.url(path),
            "client_name": "Big",
            "redirect_uris": [w.listener.redirect_uri],
            "token_endpoint_auth_method": "none",
            "description": "x" * 6000,
        }
        assert len(json.dumps(doc)) > 5 * 1024
        return cimd_document(path, doc)

    def cimd_unlisted_redirect() -> str:
        path = "/oauth/unlisted.json"
        return cimd_document(
            path,
            {
                "client_id": w.docs.url(path),
                "client_name": "Unlisted",
                "redirect_uris": ["http://127.0.0.1:1/other"],
                "token_endpoint_auth_method": "none",
            },
        )

    def cimd_private() -> str:
        # The strict portal (no OAUTH_ALLOW_PRIVATE_CLIENT_HOSTS) must refuse
        # the loopback document before fetching it.
        path = "/oauth/private.json"
        client_id = w.docs.add_client(path, w.listener.redirect_uri, "Private")
        before = len(w.docs.requests)
        _, challenge = pkce()
        params = urlencode(
            {
                "response_type": "code",
                "client_id": client_id,
                "redirect_uri": w.listener.redirect_uri,
                "state": "s",
                "code_challenge": challenge,
                "code_challenge_method": "S256",
                "scope": w.scope,
                "resource": w.mcp_url,
            }
        )
        reply = browser("look", f"{w.strict}{urlparse(w.meta['authorization_endpoint']).path}?{params}")
        result = no_redirect(w, reply)
        fetched = [p for _, p in w.docs.requests[before:] if p == path]
        assert not fetched, "the portal fetched a document on a loopback address"
        return f"{result}, never fetched"

    def dcr_redirect() -> str:
        r = w.http.post(
            w.meta["registration_endpoint"],
            json={"client_name": "Plain http", "redirect_uris": ["http://evil.example/callback"], "token_endpoint_auth_method": "none"},
        )
        body = r.json()
        assert r.status_code == 400, f"status {r.status_code}"
        assert body.get("error") == "invalid_redirect_uri", f"error {body.get('error')!r}"
        assert "client_id" not in body, "a client_id came with the error"
        return "invalid_redirect_uri"

    def dcr_flood() -> str:
        statuses = []
        for _ in range(200):
            r = w.http.post(
                f"{w.strict}{urlparse(w.meta['registration_endpoint']).path}",
                json={"client_name": "Flood", "redirect_uris": ["http://127.0.0.1/callback"], "token_endpoint_auth_method": "none"},
            )
            statuses.append(r.status_code)
            if r.status_code == 429:
                assert "client_id" not in r.text, "a client_id came with the 429"
                break
        assert statuses[-1] == 429, f"no 429 after {len(statuses)} registrations ({sorted(set(statuses))})"
        assert statuses[0] == 201, f"the first registration got {statuses[0]}"
        return f"429 after {statuses.count(201)} registrations"

    for name, fn in [
        ("redirect_uri", wrong_redirect),
        ("loopback_port", loopback_port),
        ("pkce_missing", pkce_missing),
        ("pkce_plain", pkce_plain),
        ("pkce_mismatch", pkce_mismatch),
        ("code_replay", code_replay),
        ("expired_code", expired_code),
        ("refresh_grace", refresh_grace),
        ("refresh_reuse", refresh_reuse),
        ("other_resource", other_resource),
        ("trailing_slash", trailing_slash),
        ("cimd_mismatch", cimd_mismatch),
        ("cimd_big", cimd_big),
        ("cimd_unlisted_redirect", cimd_unlisted_redirect),
        ("cimd_private", cimd_private),
        ("dcr_redirect", dcr_redirect),
        # Last: it exhausts the strict portal's registration limit.
        ("dcr_flood", dcr_flood),
    ]:
        checks.run(f"hostile.{name}", fn)
        # A redirect a failed check left behind must not reach the next.
        w.listener.take()
    w.listener.close()
    w.docs.close()
    say(json.dumps({"mode": "hostile", "failed": checks.failed}))
    return 0 if checks.failed == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
