"""The web UI: a static app (HTML, CSS, ES modules) served by ``loglens serve``.

``/`` answers the UI's page to browsers (``Accept: text/html``) and the Elasticsearch handshake to
everyone else; the app's files are under ``/ui/``. Every UI answer carries a Content-Security-Policy
that forbids inline script. The files hold no data: the app asks the API for everything (with the
API key the user gives it when the API answers 401), so they are public when auth is on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send

STATIC = Path(__file__).parent / "static"

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
       "frame-ancestors 'none'; form-action 'self'")

SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}


def wants_html(accept: str) -> bool:
    """A browser navigating (``text/html`` accepted); shippers and API clients get JSON."""
    return "text/html" in accept.lower()


def index_html() -> bytes:
    return (STATIC / "index.html").read_bytes()


def _with_headers(send: Send) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [(k, v) for k, v in message.get("headers", [])
                       if k.decode("latin-1").lower() not in SECURITY_HEADERS]
            headers += [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
            message = {**message, "headers": headers}
        await send(message)

    return wrapped


class UIFiles(StaticFiles):
    """The app's static files, with the security headers."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await super().__call__(scope, receive, send if scope["type"] != "http" else _with_headers(send))


class UIPageMiddleware:
    """Answers ``GET /`` (and ``HEAD /``) from a browser with the UI page, before authentication
    (the page is a static shell) and before the Elasticsearch handshake route that shares ``/``."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] == "http" and scope.get("path") == "/" and scope.get("method") in ("GET", "HEAD")
                and wants_html(_header(scope, b"accept"))):
            body = index_html()
            headers = [(b"content-type", b"text/html; charset=utf-8"), (b"cache-control", b"no-cache"),
                       (b"content-length", str(len(body)).encode()), (b"vary", b"Accept")]
            headers += [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": body if scope["method"] == "GET" else b""})
            return
        await self.app(scope, receive, send)


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return ""


def mount(app: Any) -> None:
    """Serve the UI: the app's files under ``/ui`` and the page at ``/`` for browsers. Call it last
    in ``create_app`` so the page middleware runs first."""
    app.mount("/ui", UIFiles(directory=STATIC), name="ui")
    app.add_middleware(UIPageMiddleware)
