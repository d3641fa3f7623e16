"""What the OAuth end-to-end scripts share: the HTTPS server of Client ID
Metadata Documents, the loopback redirect listener of a desktop client,
the line protocol with the browser driver (`tests/browser/oauth.mjs`),
PKCE, and check lines the suite asserts on.

The line protocol: a script that needs a browser prints one line
`BROWSER <action> <url>` on stdout (action `allow`, `deny` or `look`) and
reads one JSON line from stdin, written by the driver once the browser has
finished: `{"url": <where the browser ended>, "status": <its HTTP status>,
"consent": <whether a consent page was shown>, "checked": <administrations
left checked when allowing>, "error": <a driver failure, or null>}`.
Every check prints `CHECK <id> ok` or `CHECK <id> FAILED <reason>`; the
driver collects them. Secrets are never printed whole: tokens and codes
appear as their first characters only.
"""

import base64
import hashlib
import http.server
import json
import os
import secrets
import ssl
import sys
import threading
from urllib.parse import parse_qs, urlparse


def say(line: str) -> None:
    print(line, flush=True)


def short(secret: str | None) -> str:
    """A token or code as its prefix only, for logs."""
    if not secret:
        return repr(secret)
    return f"{secret[:12]}…({len(secret)} chars)"


class Checks:
    """Named checks, printed as they finish; `failed` counts the failures."""

    def __init__(self) -> None:
        self.failed = 0

    def ok(self, check_id: str, detail: str = "") -> None:
        say(f"CHECK {check_id} ok{(' ' + detail) if detail else ''}")

    def fail(self, check_id: str, reason: str) -> None:
        self.failed += 1
        say(f"CHECK {check_id} FAILED {reason}".replace("\n", " "))

    def run(self, check_id: str, fn) -> bool:
        """Runs `fn`; an AssertionError or any other exception fails the check."""
        try:
            detail = fn()
            self.ok(check_id, detail if isinstance(detail, str) else "")
            return True
        except Exception as e:  # a check reports every failure as its own line
            self.fail(check_id, f"{type(e).__name__}: {e}")
            return False


def pkce() -> tuple[str, str]:
    """A fresh (verifier, S256 challenge) pair."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    return verifier, challenge


def browser(action: str, url: str) -> dict:
    """Asks the driver to open `url` in the signed-in browser and waits for
    what it saw (see the module's line protocol)."""
    say(f"BROWSER {action} {url}")
    line = sys.stdin.readline()
    if not line:
        raise RuntimeError("the browser driver went away")
    return json.loads(line)


class Listener:
    """A desktop client's loopback redirect listener
    (`http://127.0.0.1:<port>/callback`): it records the query of every
    request and answers a small page, so the browser lands somewhere."""

    def __init__(self) -> None:
        self.hits: list[dict[str, str]] = []
        self.event = threading.Event()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
                parsed = urlparse(self.path)
                if parsed.path == "/favicon.ico":
                    # Browsers ask for it; a 404 would be a console error.
                    self.send_response(204)
                    self.end_headers()
                    return
                if parsed.path == "/callback":
                    owner.hits.append({k: v[0] for k, v in parse_qs(parsed.query).items()})
                    owner.event.set()
                body = (
                    b'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Back in the app</title>'
                    b"</head><body><main><h1>Back in the app</h1><p>You can close this window.</p></main></body></html>"
                )
                self.send_response(200 if parsed.path == "/callback" else 404)
                self.send_header("content-type", "text/html; charset=utf-8")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.redirect_uri = f"http://127.0.0.1:{self.port}/callback"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def take(self) -> dict[str, str] | None:
        """The query of the last redirect since the previous call, if any."""
        hit = self.hits[-1] if self.hits else None
        self.hits.clear()
        self.event.clear()
        return hit

    def close(self) -> None:
        self.server.shutdown()


class DocumentServer:
    """Client ID Metadata Documents over HTTPS on a loopback port, with the
    certificate of the run's throw-away CA (see `test_ca.py`). `documents`
    maps a path to a JSON value or to raw bytes; it may be changed while
    the server runs. Every request is recorded as (method, path)."""

    def __init__(self, tls_dir: str, port: int = 0) -> None:
        self.documents: dict[str, object] = {}
        self.requests: list[tuple[str, str]] = []
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                path = urlparse(self.path).path
                owner.requests.append(("GET", path))
                doc = owner.documents.get(path)
                if doc is None:
                    self.send_response(404)
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                # Short, so a changed document is fetched again within a run.
                self.send_header("cache-control", "max-age=1")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(os.path.join(tls_dir, "server.pem"), os.path.join(tls_dir, "server-key.pem"))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.origin = f"https://127.0.0.1:{self.port}"
        self.ca = os.path.join(tls_dir, "ca.pem")
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"{self.origin}{path}"

    def add_client(self, path: str, redirect_uri: str, name: str, **extra) -> str:
        """Serves a valid document for a public client at `path`; returns its
        URL, which is its client_id."""
        client_id = self.url(path)
        self.documents[path] = {
            "client_id": client_id,
            "client_name": name,
            "client_uri": self.origin,
            "redirect_uris": [redirect_uri],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
            **extra,
        }
        return client_id

    def close(self) -> None:
        self.server.shutdown()


if __name__ == "__main__":
    # `oauth_support.py serve <tls dir> <port>`: serves one test document
    # at /client.json until killed (the suite's check that workerd trusts
    # the throw-away CA fetches it).
    if len(sys.argv) == 4 and sys.argv[1] == "serve":
        server = DocumentServer(sys.argv[2], int(sys.argv[3]))
        server.add_client("/client.json", "http://127.0.0.1/callback", "TLS probe")
        say(f"SERVING {server.url('/client.json')}")
        threading.Event().wait()
    else:
        print("usage: oauth_support.py serve <tls dir> <port>", file=sys.stderr)
        sys.exit(2)
