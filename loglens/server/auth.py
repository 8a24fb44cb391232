"""API-key authentication for every HTTP route, as one ASGI middleware.

Which scope a request needs is decided from the route it reaches (see :func:`required_scope`):
receivers on the API port (``/api/v1/logs``, ``/_bulk``, Loki push, OTLP) need ``ingest``, reading
routes (``GET``, including ``/metrics`` and the OpenAPI pages) need ``read``, anything else needs
``admin``. ``admin`` includes the other two. ``/healthz`` and ``/readyz`` are public (a load
balancer probes them; they say nothing about the data). A handler can ask for another scope with
:func:`requires`.

Credentials are read from ``Authorization``: ``Bearer KEY``, ``ApiKey KEY`` or
``ApiKey base64(id:KEY)`` (what Elasticsearch clients send), or ``Basic`` with the key as the
password and any user name. Failures answer 401 with ``WWW-Authenticate`` (missing, unknown or
revoked key) or 403 (a valid key without the scope). An address with too many failures in a
minute is answered 429 for a while, whatever it sends. Keys are never logged.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableMapping
from typing import Any, TypeVar

import orjson
from starlette.routing import BaseRoute, Match, Mount
from starlette.staticfiles import StaticFiles

from loglens.config import Settings
from loglens.keys import SCOPES, ApiKey, KeyStore

log = logging.getLogger("loglens.server.auth")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
F = TypeVar("F", bound=Callable[..., Any])

#: Reachable without a key.
PUBLIC_PATHS = frozenset({"/healthz", "/readyz"})
#: Any valid key will do (a path no route serves: the 404 is only shown to key holders).
ANY = "any"
CHALLENGE = 'Bearer realm="loglens", Basic realm="loglens", ApiKey'


def is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def auth_enabled(settings: Settings) -> bool:
    """``on``/``off`` as given; ``auto`` is on unless the server binds a loopback address only."""
    mode = settings.auth.strip().lower()
    if mode in ("on", "true", "1", "yes"):
        return True
    if mode in ("off", "false", "0", "no"):
        return False
    return not is_loopback(settings.host)


def requires(scope: str) -> Callable[[F], F]:
    """Mark a route handler as needing ``scope`` (``read``, ``ingest`` or ``admin``)."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}")

    def mark(handler: F) -> F:
        handler.__loglens_scope__ = scope  # type: ignore[attr-defined]
        return handler

    return mark


def flat_routes(routes: Iterable[BaseRoute], prefix: str = "") -> Iterator[tuple[str, BaseRoute]]:
    """Every route with the path prefix it is served under, looking into included routers
    (recent FastAPI keeps ``include_router``'s routers whole instead of copying their routes)."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            context = getattr(route, "include_context", None)
            yield from flat_routes(inner.routes, prefix + str(getattr(context, "prefix", "") or ""))
        else:
            yield prefix, route


def match_route(routes: Iterable[BaseRoute], scope: Scope) -> BaseRoute | None:
    """The route a request goes to (or the path's route when only the method differs)."""
    return _match_flat(list(flat_routes(routes)), scope)


def _match_flat(flat: list[tuple[str, BaseRoute]], scope: Scope) -> BaseRoute | None:
    partial = None
    path = scope.get("path", "")
    for prefix, route in flat:
        if prefix:
            if not path.startswith(prefix):
                continue
            match, _ = route.matches({**scope, "path": path[len(prefix):]})
        else:
            match, _ = route.matches(scope)
        if match == Match.FULL:
            return route
        if match == Match.PARTIAL and partial is None:
            partial = route
    return partial


class RouteResolver:
    """The route of a request, found once per request for both middlewares, with the flattened
    route table and the answers for recent paths cached."""

    SCOPE_KEY = "loglens.route"

    def __init__(self, routes: Callable[[], list[BaseRoute]], cache_size: int = 4096) -> None:
        self.routes = routes
        self.cache_size = cache_size
        self._flat: list[tuple[str, BaseRoute]] = []
        self._version: tuple[int, int] | None = None
        self._cache: OrderedDict[tuple[str, str, str], BaseRoute | None] = OrderedDict()

    def __call__(self, scope: Scope) -> BaseRoute | None:
        if self.SCOPE_KEY in scope:
            return scope[self.SCOPE_KEY]
        top = self.routes()
        version = (id(top), len(top))
        if version != self._version:  # a route was added: start over
            self._flat = list(flat_routes(top))
            self._cache.clear()
            self._version = version
        key = (scope["type"], scope.get("method", ""), scope.get("path", ""))
        if key in self._cache:
            route = self._cache[key]
            self._cache.move_to_end(key)
        else:
            route = self._cache[key] = _match_flat(self._flat, scope)
            if len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        scope[self.SCOPE_KEY] = route
        return route


def required_scope(route: BaseRoute | None, method: str, path: str) -> str | None:
    """The scope a request needs: ``read``, ``ingest``, ``admin``, ``ANY`` (valid key) or None (public)."""
    if path in PUBLIC_PATHS:
        return None
    if route is None:
        return ANY
    if isinstance(route, Mount) and isinstance(route.app, StaticFiles):
        return None  # the UI's static shell holds no data; it asks for a key itself
    endpoint = getattr(route, "endpoint", None)
    declared = getattr(endpoint, "__loglens_scope__", None)
    if declared is not None:
        return str(declared)
    if getattr(endpoint, "__module__", "").startswith("loglens.ingest"):
        return "ingest"  # every route of a receiver, its handshakes included (shippers call them first)
    if getattr(route, "path", None) == "/api/v1/logs":
        return "ingest"
    if method in ("GET", "HEAD"):
        return "read"
    return "admin"


def credentials(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The key a request presents in ``Authorization`` (Bearer, ApiKey or Basic), or None."""
    value = None
    for name, raw in headers:
        if name == b"authorization":
            value = raw.decode("latin-1").strip()
            break
    if not value:
        return None
    kind, _, rest = value.partition(" ")
    kind = kind.lower()
    rest = rest.strip()
    if not rest:
        return None
    if kind == "bearer":
        return rest
    if kind == "apikey":
        if rest.startswith("ll_"):
            return rest
        decoded = _b64(rest)
        if decoded is None:
            return rest
        return decoded.partition(":")[2] if ":" in decoded else decoded
    if kind == "basic":
        decoded = _b64(rest)
        if decoded is None or ":" not in decoded:
            return None
        return decoded.partition(":")[2]
    return None


def _b64(text: str) -> str | None:
    try:
        return base64.b64decode(text, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None


class FailureLimiter:
    """Failed attempts per client address; ``max_failures`` within ``window`` blocks it for ``block``."""

    def __init__(self, max_failures: int = 10, window: float = 60.0, block: float = 60.0,
                 max_clients: int = 10_000) -> None:
        self.max_failures = max_failures
        self.window = window
        self.block = block
        self.max_clients = max_clients
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._blocked: dict[str, float] = {}

    def blocked_for(self, client: str, now: float | None = None) -> float:
        """Seconds ``client`` stays blocked (0 when it may try)."""
        until = self._blocked.get(client)
        if until is None:
            return 0.0
        now = time.monotonic() if now is None else now
        if now >= until:
            del self._blocked[client]
            return 0.0
        return until - now

    def fail(self, client: str, now: float | None = None) -> bool:
        """Count a failure; True when it made ``client`` blocked."""
        if self.max_failures <= 0:
            return False
        now = time.monotonic() if now is None else now
        times = self._failures.pop(client, None) or deque()
        self._failures[client] = times  # most recent last: the oldest are forgotten first
        times.append(now)
        while times and times[0] <= now - self.window:
            times.popleft()
        while len(self._failures) > self.max_clients:
            self._failures.popitem(last=False)
        if len(times) >= self.max_failures:
            self._blocked[client] = now + self.block
            times.clear()
            if len(self._blocked) > self.max_clients:
                for stale in [c for c, t in self._blocked.items() if t <= now]:
                    del self._blocked[stale]
            return True
        return False


class AuthMiddleware:
    """Checks every HTTP (and WebSocket) request's key against the route's scope."""

    def __init__(self, app: ASGIApp, *, resolve: RouteResolver, keys: KeyStore,
                 limiter: FailureLimiter, on_failure: Callable[[str], None] | None = None) -> None:
        self.app = app
        self.resolve = resolve
        self.keys = keys
        self.limiter = limiter
        self.on_failure = on_failure

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        method = scope.get("method", "GET") if scope["type"] == "http" else "GET"
        needed = required_scope(self.resolve(scope), method, path)
        if needed is None:
            await self.app(scope, receive, send)
            return
        client = (scope.get("client") or ("?", 0))[0]
        wait = self.limiter.blocked_for(client)
        if wait:
            self._failed("rate_limited")
            await _deny(scope, send, 429, "too many failed authentication attempts; try again later",
                        {"retry-after": str(int(wait) + 1)})
            return
        presented = credentials(scope.get("headers") or [])
        key = self.keys.verify(presented) if presented else None
        if key is None:
            reason = "missing" if presented is None else "invalid"
            self._failed(reason)
            if self.limiter.fail(client):
                log.warning("authentication: %s blocked for %ds after repeated failures", client,
                            self.limiter.block)
            message = ("an API key is required: send Authorization: Bearer KEY" if presented is None
                       else "the API key is not valid (unknown or revoked)")
            await _deny(scope, send, 401, message, {"www-authenticate": CHALLENGE})
            return
        if needed != ANY and not key.allows(needed):
            self._failed("scope")
            await _deny(scope, send, 403, f"this key has the {key.scope!r} scope; {path} needs {needed!r}", {})
            return
        scope.setdefault("state", {})["api_key"] = _public(key)
        await self.app(scope, receive, send)

    def _failed(self, reason: str) -> None:
        if self.on_failure is not None:
            self.on_failure(reason)


def _public(key: ApiKey) -> dict[str, str]:
    """What handlers may know of the caller's key (never the hash)."""
    return {"id": key.id, "name": key.name, "scope": key.scope}


async def _deny(scope: Scope, send: Send, status: int, message: str, headers: dict[str, str]) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008, "reason": message[:120]})
        return
    body = orjson.dumps({"error": message})
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
