"""Deterministic generator of realistic application logs for the LogLens benches.

    python bench/gen_logs.py 1000000 --seed 42 --format text -o /tmp/logs.txt
    python bench/gen_logs.py 1000000 --format ndjson -o /tmp/logs.ndjson

N is the number of log *events*. In text mode some ERROR events carry a multi-line Java stack trace
(continuation lines start with a tab or ``Caused by:``), so the file has a few more physical lines
than events; in NDJSON mode the trace is the ``stack_trace`` field. Both formats produce the same
events for the same seed, so their sizes and contents are directly comparable.

What the data looks like (the bench queries rely on it):

* 8 services, 20 hosts, levels INFO/DEBUG/WARN/ERROR about 80/10/7/3;
* about 1,200 message shapes, built combinatorially from per-service templates, with ids,
  IPv4:port, UUIDs, durations, HTTP methods/paths/status codes, user ids and SQL statements;
* timestamps increase over ``--hours`` from ``--start`` (non-decreasing, millisecond precision);
* the word ``timeout`` is in about 3% of events and only ever as a whole word on the first line;
* the phrase ``connection refused`` is in about 1% of events;
* the term ``kerfuffle`` is in exactly 10 events (or N if N < 10).

Text lines look like::

    2026-11-20T00:00:01.123Z INFO  api-gateway host-07 [http-nio-8080-exec-3] [req-5c0f3a9e1b2d4c6f] \
GET /api/v1/orders/123 completed status=200 duration=12ms user=4711

(service and host are plain header words there; NDJSON carries them as fields). Output is written
in chunks of 20,000 events, each from its own seeded random stream, so ``--jobs 2`` (the default)
generates in two processes and still writes the same bytes as ``--jobs 1``.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import itertools
import os
import random
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any

try:  # orjson ships with LogLens; plain json keeps the generator usable on its own
    import orjson

    def _dumps(obj: dict[str, Any]) -> str:
        return orjson.dumps(obj).decode()

except ImportError:  # pragma: no cover - exercised only outside the venv
    import json

    def _dumps(obj: dict[str, Any]) -> str:
        return json.dumps(obj, separators=(",", ":"))


SERVICES: tuple[str, ...] = (
    "api-gateway",
    "auth",
    "billing",
    "payments",
    "inventory",
    "search",
    "notifications",
    "db-proxy",
)
SERVICE_WEIGHTS: tuple[float, ...] = (0.22, 0.12, 0.10, 0.10, 0.13, 0.13, 0.10, 0.10)
HOSTS: tuple[str, ...] = tuple(f"host-{i:02d}" for i in range(1, 21))
THREADS: tuple[str, ...] = (
    *(f"http-nio-8080-exec-{i}" for i in range(1, 25)),
    *(f"scheduling-{i}" for i in range(1, 5)),
    *(f"kafka-consumer-{i}" for i in range(1, 7)),
    "main",
    "HikariPool-1-housekeeper",
)
LEVELS: tuple[str, ...] = ("INFO", "DEBUG", "WARN", "ERROR")

TIMEOUT_SHARE = 0.03
REFUSED_SHARE = 0.01
RARE_TERM = "kerfuffle"
RARE_COUNT = 10
# Level mix of the special events; the ordinary events make up the rest of the 80/10/7/3 skew.
TIMEOUT_LEVELS = {"WARN": 0.5, "ERROR": 0.4, "INFO": 0.1}
REFUSED_LEVELS = {"ERROR": 0.7, "WARN": 0.3}
TARGET_LEVELS = {"INFO": 0.80, "DEBUG": 0.10, "WARN": 0.07, "ERROR": 0.03}

POOL_BITS = 16
POOL_SIZE = 1 << POOL_BITS
MASK = POOL_SIZE - 1

# --------------------------------------------------------------------------------------------------
# Variable parts: each kind is a pool of POOL_SIZE pre-rendered strings, picked by 16 random bits.


def _pools(rng: random.Random) -> dict[str, list[str]]:
    rnd = rng.random
    bits = rng.getrandbits

    def ri(lo: int, hi: int) -> int:  # lo <= x < hi; faster than randrange
        return lo + int(rnd() * (hi - lo))

    def pool(fn: Callable[[], str], distinct: int = POOL_SIZE) -> list[str]:
        """POOL_SIZE entries with ``distinct`` different values (low-cardinality kinds repeat)."""
        base = [fn() for _ in range(distinct)]
        return (base * (POOL_SIZE // distinct + 1))[:POOL_SIZE]

    def duration() -> str:
        # log-normal-ish: mostly tens of ms, a long tail into seconds
        return str(int(rng.lognormvariate(3.2, 1.1)) + 1)

    firsts = (10, 10, 10, 172, 192, 34, 52, 81, 185, 203)

    def ip() -> str:
        return f"{firsts[ri(0, 10)]}.{bits(8)}.{bits(8)}.{ri(1, 255)}"

    words = (
        "red shoes",
        "wireless headphones",
        "usb-c cable",
        "standing desk",
        "coffee grinder",
        "garden hose",
        "winter jacket",
        "laptop stand",
        "yoga mat",
        "led strip",
        "office chair",
        "phone case",
        "running socks",
        "espresso cups",
        "hdmi adapter",
        "kids bike",
    )
    domains = ("gmail.com", "example.org", "corp.io", "mail.de", "outlook.com")
    return {
        "ip": pool(ip),
        "port": pool(lambda: str(ri(1024, 65536))),
        "ms": pool(duration, 4096),
        "uid": pool(lambda: str(ri(10_000, 9_999_999))),
        "id": pool(lambda: str(ri(100_000, 999_999_999))),
        "uuid": pool(lambda: f"{bits(32):08x}-{bits(16):04x}-4{bits(12):03x}-{0x8000 | bits(14):04x}-"
                             f"{bits(48):012x}"),
        "hex": pool(lambda: f"{bits(32):08x}"),
        "n": pool(lambda: str(ri(1, 500)), 4096),
        "amount": pool(lambda: f"{int(rng.expovariate(1 / 60))}.{ri(0, 100):02d}", 8192),
        "sku": pool(lambda: f"SKU-{ri(0, 1_000_000):06d}", 16384),
        "pct": pool(lambda: f"{rnd() * 100:.1f}", 4096),
        "bytes": pool(lambda: str(int(rng.expovariate(1 / 8000)) + 64), 4096),
        "query": pool(lambda: words[ri(0, len(words))], 256),
        "email": pool(lambda: f"{chr(97 + ri(0, 26))}***@{domains[ri(0, len(domains))]}", 256),
        "line": pool(lambda: str(ri(20, 900)), 4096),
        "shard": pool(lambda: str(ri(0, 64)), 4096),
        "ver": pool(lambda: str(ri(1, 40)), 4096),
    }


# --------------------------------------------------------------------------------------------------
# Templates. ``{kind}`` marks a variable part; everything else is literal.


@dataclass(slots=True)
class Tmpl:
    render: Callable[[int], str]
    bits: int
    status: int | None
    stack: bool


def _compile(text: str, pools: dict[str, list[str]], status: int | None, stack: bool) -> Tmpl:
    parts = text.split("{")
    fmt = parts[0].replace("%", "%%")
    kinds: list[list[str]] = []
    for part in parts[1:]:
        kind, _, rest = part.partition("}")
        kinds.append(pools[kind])
        fmt += "%s" + rest.replace("%", "%%")
    n = len(kinds)
    m = MASK
    if n == 0:
        const = fmt % ()

        def render(r: int) -> str:
            return const
    elif n == 1:
        (a,) = kinds

        def render(r: int) -> str:
            return fmt % a[r & m]
    elif n == 2:
        a, b = kinds

        def render(r: int) -> str:
            return fmt % (a[r & m], b[(r >> 16) & m])
    elif n == 3:
        a, b, c = kinds

        def render(r: int) -> str:
            return fmt % (a[r & m], b[(r >> 16) & m], c[(r >> 32) & m])
    elif n == 4:
        a, b, c, d = kinds

        def render(r: int) -> str:
            return fmt % (a[r & m], b[(r >> 16) & m], c[(r >> 32) & m], d[(r >> 48) & m])
    else:  # five or more parts: 12 bits each (64 bits are all a template gets)
        shifts = [(k, 12 * i) for i, k in enumerate(kinds)]

        def render(r: int) -> str:
            return fmt % tuple([k[(r >> s) & 0xFFF] for k, s in shifts])

    return Tmpl(render, max(1, POOL_BITS * n), status, stack)


_STATUS_TEXT = {
    200: "OK",
    201: "Created",
    204: "No Content",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}
_OK, _CLIENT_ERR, _SERVER_ERR = (200, 201, 204), (400, 401, 403, 404, 409, 422, 429), (500, 502, 503)

_ENDPOINTS: dict[str, tuple[tuple[str, str], ...]] = {
    "api-gateway": (
        ("GET", "/api/v1/orders/{id}"),
        ("POST", "/api/v1/orders"),
        ("GET", "/api/v1/users/{uid}/profile"),
        ("PUT", "/api/v1/users/{uid}/settings"),
        ("GET", "/api/v1/products/{sku}"),
        ("GET", "/api/v1/cart"),
        ("POST", "/api/v1/cart/items"),
        ("DELETE", "/api/v1/cart/items/{sku}"),
        ("POST", "/api/v1/checkout"),
        ("GET", "/api/v2/search"),
        ("GET", "/api/v1/notifications"),
        ("PATCH", "/api/v1/orders/{id}/shipping"),
    ),
    "auth": (
        ("POST", "/oauth/token"),
        ("POST", "/login"),
        ("POST", "/logout"),
        ("GET", "/.well-known/jwks.json"),
        ("POST", "/mfa/verify"),
    ),
    "billing": (
        ("GET", "/invoices/{id}"),
        ("POST", "/invoices/{id}/finalize"),
        ("GET", "/accounts/{uid}/balance"),
    ),
    "payments": (
        ("POST", "/payments"),
        ("POST", "/payments/{uuid}/capture"),
        ("POST", "/payments/{uuid}/refund"),
    ),
    "inventory": (
        ("GET", "/stock/{sku}"),
        ("POST", "/reservations"),
        ("DELETE", "/reservations/{uuid}"),
    ),
    "search": (("GET", "/search"), ("GET", "/suggest")),
    "notifications": (("POST", "/send/email"), ("POST", "/send/push")),
    "db-proxy": (),
}

_HTTP_SHAPES = (
    '{ip}:{port} - "{method} {path} HTTP/1.1" {status} {bytes} {ms}ms',
    "{method} {path} completed status={status} duration={ms}ms user={uid}",
)

_TABLES = ("orders", "order_items", "users", "sessions", "invoices", "payments", "stock_levels",
           "reservations", "notifications_outbox")

_SQL = (
    "SELECT * FROM {table} WHERE id = $1",
    "SELECT id, status, updated_at FROM {table} WHERE user_id = $1 ORDER BY updated_at DESC LIMIT 50",
    "UPDATE {table} SET status = $1, updated_at = now() WHERE id = $2",
    "INSERT INTO {table} (id, payload, created_at) VALUES ($1, $2, now())",
    "DELETE FROM {table} WHERE created_at < now() - interval '30 days'",
)

_EXCEPTIONS = (
    ("java.lang.NullPointerException", "Cannot invoke \"String.length()\" because \"value\" is null"),
    ("java.lang.IllegalStateException", "Expected state ACTIVE but was SUSPENDED"),
    ("java.lang.IllegalArgumentException", "amount must be positive"),
    ("org.springframework.dao.DataIntegrityViolationException", "duplicate key value violates "
                                                                "unique constraint"),
    ("com.fasterxml.jackson.core.JsonParseException", "Unexpected character ('<' (code 60))"),
    ("java.util.ConcurrentModificationException", "null"),
)


def _service_templates(svc: str) -> dict[str, list[tuple[str, int | None, bool]]]:
    """(text, http status, may carry a stack trace) per level for one service."""
    out: dict[str, list[tuple[str, int | None, bool]]] = {lv: [] for lv in LEVELS}
    for method, path in _ENDPOINTS[svc]:
        for shape in _HTTP_SHAPES:
            for status in _OK + _CLIENT_ERR + _SERVER_ERR:
                text = (shape.replace("{method}", method).replace("{path}", path)
                        .replace("{status}", str(status)))
                level = "INFO" if status < 400 else ("WARN" if status < 500 else "ERROR")
                if status < 400 or shape is _HTTP_SHAPES[0] or status in (404, 429, 500, 503):
                    out[level].append((text, status, False))
        out["DEBUG"].append((f"routing {method} {path} to upstream {svc}-{{shard}} via {{ip}}:{{port}}",
                             None, False))
    generic_info = [
        "Started {svc} in {ver}.{n} seconds (JVM running for {n}.{shard})",
        "health check passed: db=UP cache=UP queue depth={n}",
        "config reloaded from /etc/{svc}/application.yaml (revision {hex})",
        "scheduled job cleanup-expired finished: removed {n} rows in {ms}ms",
        "connection pool stats: active={shard} idle={n} waiting=0 max=64",
        "cache hit ratio {pct}% over the last 60s ({n} gets)",
        "consumer group {svc}-workers rebalanced: partitions assigned [{shard}, {n}]",
    ]
    generic_debug = [
        "cache miss for key {svc}:{hex}, loading from origin",
        "span {hex} finished in {ms}ms",
        "acquired lock {svc}-lock-{shard} after {ms}ms",
        "request headers: user-agent=okhttp/4.{ver}.0 x-request-id={uuid}",
        "feature flag new-checkout-flow evaluated to true for user {uid}",
    ]
    generic_warn = [
        "slow request: {ms}ms exceeds threshold of 500ms",
        "retrying call to downstream (attempt {ver} of 5) after {ms}ms backoff",
        "connection pool nearly exhausted: {shard} of 64 connections in use",
        "GC pause of {ms}ms (G1 Evacuation Pause), heap after {pct}%",
        "deprecated API version v1 used by client {ip}",
        "message {uuid} redelivered {ver} times, moving to dead letter queue",
    ]
    generic_error = [
        "failed to publish event {uuid} to topic {svc}.events: broker not available",
        "unhandled error while processing request {uuid}: {exc}: {excmsg}",
        "circuit breaker {svc}-downstream OPEN after {n} failures in 30s",
        "disk usage at {pct}% on /var/lib/{svc}",
    ]
    for t in generic_info:
        out["INFO"].append((t.replace("{svc}", svc), None, False))
    for t in generic_debug:
        out["DEBUG"].append((t.replace("{svc}", svc), None, False))
    for t in generic_warn:
        out["WARN"].append((t.replace("{svc}", svc), None, False))
    for t in generic_error:
        t = t.replace("{svc}", svc)
        if "{exc}" in t:
            for exc, msg in _EXCEPTIONS:
                out["ERROR"].append((t.replace("{exc}", exc).replace("{excmsg}", msg), None, True))
        else:
            out["ERROR"].append((t, None, False))

    specific: dict[str, dict[str, list[str]]] = {
        "api-gateway": {
            "INFO": ["rate limit bucket for client {ip} refilled ({n} tokens)",
                     "upstream inventory-{shard} marked healthy after {ms}ms"],
            "WARN": ["rate limit exceeded for client {ip}: {n} requests in 10s",
                     "upstream response for request {uuid} had no content-type header"],
            "ERROR": ["upstream payments-{shard} returned malformed response for {uuid}"],
        },
        "auth": {
            "INFO": ["user {uid} logged in from {ip} (mfa=true)",
                     "user {uid} logged in from {ip} (mfa=false)",
                     "issued access token for client web-app, user {uid}, expires in 3600s",
                     "refresh token rotated for user {uid}",
                     "password reset email queued for {email}"],
            "DEBUG": ["validating JWT kid={hex} alg=RS256 for user {uid}"],
            "WARN": ["failed login for user {uid} from {ip}: invalid password (attempt {ver})",
                     "account {uid} locked after 5 failed attempts",
                     "token signature verification failed for kid={hex}"],
            "ERROR": ["LDAP bind failed for cn=svc-auth,ou=services: invalid credentials"],
        },
        "billing": {
            "INFO": ["invoice {id} generated for account {uid}: total {amount} EUR",
                     "invoice {id} sent to {email}",
                     "monthly usage aggregated for account {uid}: {n} units",
                     "dunning run finished: {n} reminders sent"],
            "DEBUG": ["tax rate for country DE resolved to 19.0% (invoice {id})"],
            "WARN": ["invoice {id} overdue by {n} days for account {uid}",
                     "currency conversion rate for GBP is stale ({n} minutes old)"],
            "ERROR": ["failed to finalize invoice {id}: ledger entry missing for account {uid}"],
        },
        "payments": {
            "INFO": ["payment {uuid} authorized: {amount} EUR card ****{line}",
                     "payment {uuid} captured: {amount} EUR",
                     "refund {uuid} processed: {amount} EUR for order {id}",
                     "webhook payment_intent.succeeded delivered for {uuid}"],
            "DEBUG": ["3DS challenge required for payment {uuid}"],
            "WARN": ["payment {uuid} declined: insufficient_funds",
                     "payment {uuid} declined: card_expired",
                     "fraud score {pct} above review threshold for order {id}"],
            "ERROR": ["payment provider returned 502 for {uuid}, will retry",
                      "double capture prevented for payment {uuid}"],
        },
        "inventory": {
            "INFO": ["reserved {n} units of {sku} for order {id}",
                     "released reservation {uuid} ({n} units of {sku})",
                     "stock level for {sku} updated to {n} in warehouse FRA-{shard}",
                     "replenishment order {id} created for {sku}"],
            "DEBUG": ["stock snapshot for {sku}: available={n} reserved={shard}"],
            "WARN": ["stock for {sku} below safety level: {n} units left",
                     "reservation {uuid} expired before checkout"],
            "ERROR": ["negative stock detected for {sku} in warehouse FRA-{shard}"],
        },
        "search": {
            "INFO": ["query \"{query}\" returned {n} hits in {ms}ms",
                     "index products-v{ver} refreshed: {n} documents",
                     "suggest \"{query}\" served from cache"],
            "DEBUG": ["rewritten query \"{query}\" with {shard} synonyms"],
            "WARN": ["query \"{query}\" hit the result window limit",
                     "shard {shard} of index products-v{ver} is relocating"],
            "ERROR": ["index products-v{ver} shard {shard} failed: corrupted segment {hex}"],
        },
        "notifications": {
            "INFO": ["email template order-confirmation rendered for {email} in {ms}ms",
                     "push notification {uuid} delivered to device {hex}",
                     "sms to +49***{line} queued (provider=twilio)"],
            "DEBUG": ["outbox poll fetched {n} messages"],
            "WARN": ["email to {email} bounced: mailbox full",
                     "push token {hex} unregistered, removing device"],
            "ERROR": ["SMTP server rejected message {uuid}: 554 5.7.1 spam detected"],
        },
        "db-proxy": {
            "INFO": ["new client connection from {ip}:{port} to database app (pool={shard})",
                     "client {ip}:{port} disconnected after {ms}ms ({n} queries)"],
            "DEBUG": ["server connection {hex} reset (DISCARD ALL)"],
            "WARN": ["client {ip}:{port} waited {ms}ms for a server connection",
                     "replica lag on db-replica-{shard} is {ms}ms"],
            "ERROR": ["server connection {hex} closed unexpectedly: SSL SYSCALL error: EOF detected",
                      "deadlock detected while executing statement on {table} (pid {id})"],
        },
    }
    for level, texts in specific[svc].items():
        for t in texts:
            if "{table}" in t:
                for table in _TABLES:
                    out[level].append((t.replace("{table}", table), None, False))
            else:
                out[level].append((t, None, False))

    # SQL-ish statements, mostly from the db-proxy, a few from the services' own repositories
    tables = _TABLES if svc == "db-proxy" else _TABLES[:3]
    for table in tables:
        for sql in _SQL:
            stmt = sql.replace("{table}", table)
            out["DEBUG" if svc != "db-proxy" else "INFO"].append(
                (f"query took {{ms}}ms: {stmt}", None, False))
            if svc == "db-proxy":
                out["WARN"].append((f"slow query ({{ms}}ms, rows={{n}}): {stmt}", None, False))
    return out


def _timeout_templates(svc: str) -> list[str]:
    return [
        f"upstream timeout after {{ms}}ms calling {svc}-{{shard}}:8080 for request {{uuid}}",
        "read timeout on connection to {ip}:{port} after 3000ms",
        f"request {{uuid}} failed: timeout waiting for {svc} worker (queue={{n}})",
        "timeout acquiring connection from pool after {ms}ms (active=64 max=64)",
        "gRPC call Inventory/Reserve exceeded deadline: timeout after {ms}ms",
        "redis GET session:{hex} failed with timeout, falling back to database",
        "HTTP client timeout (5000ms) exceeded for POST https://api.partner.example/v2/notify",
        "lock wait timeout exceeded; try restarting transaction (order {id})",
    ]


def _refused_templates(svc: str) -> list[str]:
    return [
        "dial tcp {ip}:{port}: connect: connection refused",
        f"failed to reach {svc}-db at {{ip}}:5432: Connection refused (attempt {{ver}})",
        "redis connection refused at {ip}:6379, retrying in {ms}ms",
        "kafka broker {ip}:9092 connection refused, metadata refresh failed",
    ]


_STACK_FRAMES = (
    "com.loglens.demo.{pkg}.web.{cls}Controller.handle({cls}Controller.java:{line})",
    "com.loglens.demo.{pkg}.service.{cls}Service.process({cls}Service.java:{line})",
    "com.loglens.demo.{pkg}.repo.{cls}Repository.save({cls}Repository.java:{line})",
    "org.springframework.web.servlet.FrameworkServlet.service(FrameworkServlet.java:897)",
    "org.springframework.transaction.interceptor.TransactionInterceptor.invoke("
    "TransactionInterceptor.java:119)",
    "jdk.internal.reflect.GeneratedMethodAccessor{shard}.invoke(Unknown Source)",
    "java.base/java.lang.Thread.run(Thread.java:1583)",
)


def _stack_traces(rng: random.Random) -> list[str]:
    """A fixed set of multi-line stack traces (continuation lines only, each starting '\\n')."""
    out = []
    classes = ("Order", "Invoice", "Payment", "Reservation", "User", "Token", "Query", "Message")
    for i in range(64):
        cls = classes[i % len(classes)]
        pkg = SERVICES[i % len(SERVICES)].replace("-", "")
        frames = []
        for f in rng.sample(_STACK_FRAMES, rng.randint(3, 6)):
            frames.append("\tat " + f.replace("{pkg}", pkg).replace("{cls}", cls)
                          .replace("{line}", str(rng.randint(20, 900)))
                          .replace("{shard}", str(rng.randint(1, 40))))
        if i % 3 == 0:
            exc, msg = _EXCEPTIONS[i % len(_EXCEPTIONS)]
            frames.append(f"Caused by: {exc}: {msg}")
            frames.append(f"\tat com.loglens.demo.{pkg}.core.Validator.check(Validator.java:"
                          f"{rng.randint(10, 200)})")
            frames.append(f"\t... {rng.randint(5, 40)} more")
        out.append("".join("\n" + f for f in frames))
    return out


# --------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Catalog:
    cum: list[float]  # cumulative weights of the buckets
    buckets: list[tuple[str, str, list[Tmpl]]]  # (service, level, templates)
    rare: list[Tmpl]
    stacks: list[str]
    hexes: list[str]  # 8192 random 8-hex-digit strings (two make a trace id)

    @property
    def shapes(self) -> int:
        return len({id(t) for b in self.buckets for t in b[2]}) + len(self.rare)


def build_catalog(seed: int) -> Catalog:
    rng = random.Random(seed * 7919 + 1)
    pools = _pools(rng)
    pools["table"] = [_TABLES[i % len(_TABLES)] for i in range(POOL_SIZE)]
    special_level = {lv: TIMEOUT_SHARE * TIMEOUT_LEVELS.get(lv, 0) + REFUSED_SHARE * REFUSED_LEVELS.get(lv, 0)
                     for lv in LEVELS}
    rest = 1 - TIMEOUT_SHARE - REFUSED_SHARE
    plain_level = {lv: TARGET_LEVELS[lv] - special_level[lv] for lv in LEVELS}
    buckets: list[tuple[str, str, list[Tmpl]]] = []
    weights: list[float] = []
    for svc, sw in zip(SERVICES, SERVICE_WEIGHTS, strict=True):
        by_level = _service_templates(svc)
        for lv in LEVELS:
            tm = [_compile(t, pools, st, sk) for t, st, sk in by_level[lv]]
            buckets.append((svc, lv, tm))
            weights.append(sw * plain_level[lv])
        tmo = [_compile(t, pools, None, False) for t in _timeout_templates(svc)]
        for lv, share in TIMEOUT_LEVELS.items():
            buckets.append((svc, lv, tmo))
            weights.append(sw * TIMEOUT_SHARE * share)
        ref = [_compile(t, pools, None, False) for t in _refused_templates(svc)]
        for lv, share in REFUSED_LEVELS.items():
            buckets.append((svc, lv, ref))
            weights.append(sw * REFUSED_SHARE * share)
    assert abs(sum(weights) - 1) < 1e-9 and rest > 0
    cum = list(itertools.accumulate(weights))
    cum[-1] = 1.0
    rare = [
        _compile(f"unexpected {RARE_TERM} in cache warmup for shard {{shard}}, rebuilding", pools, None,
                 False),
        _compile(f"reconciler hit a {RARE_TERM}: ledger {{id}} and order {{id}} disagree", pools, None,
                 False),
    ]
    hexes = [f"{rng.getrandbits(32):08x}" for _ in range(8192)]
    return Catalog(cum, buckets, rare, _stack_traces(rng), hexes)


@dataclass(slots=True)
class Event:
    ts_ms: int
    level: str
    service: str
    host: str
    trace: str
    message: str
    status: int | None
    stack: str


def _parse_start(s: str) -> int:
    dt = datetime.fromisoformat(s.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)


CHUNK = 20_000


@dataclass(slots=True)
class _Tables:
    """Per-process lookup tables derived from the catalog (built once per seed)."""

    by_slot: list[tuple[str, str, str, list[tuple[Callable[[int], str], int | None, bool]]]]
    rare: list[tuple[Callable[[int], str], int | None, bool]]
    stacks: list[str]
    where: list[tuple[str, str]]
    hexes: list[str]


_TABLES_CACHE: dict[int, _Tables] = {}


def _tables(seed: int) -> _Tables:
    cached = _TABLES_CACHE.get(seed)
    if cached is not None:
        return cached
    cat = build_catalog(seed)
    # bucket choice by 16 random bits through a lookup table instead of a bisect per event
    scale = 1 << 16
    pick = [bisect.bisect(cat.cum, (k + 0.5) / scale) for k in range(scale)]
    # each bucket's templates spread over 1024 slots, picked by 10 random bits
    entries = [(svc, f"{lv:<5}", lv, [(t.render, t.status, t.stack) for t in tm] * (1024 // len(tm) + 1))
               for svc, lv, tm in cat.buckets]
    where = [(h, t) for h in HOSTS for t in THREADS]
    tables = _Tables(
        by_slot=[entries[b] for b in pick],
        rare=[(t.render, t.status, t.stack) for t in cat.rare],
        stacks=(cat.stacks * 4)[:256],
        where=(where * (1024 // len(where) + 1))[:1024],
        hexes=cat.hexes,
    )
    _TABLES_CACHE[seed] = tables
    return tables


def _rare_positions(n: int, seed: int) -> list[int]:
    return sorted(random.Random(seed ^ 0x5EED).sample(range(n), min(RARE_COUNT, n)))


def _chunk(job: tuple[int, str, int, int, int, int, tuple[int, ...]]) -> str:
    """Events [c0, c0 + CHUNK) of n; depends only on its arguments, so chunks can run anywhere."""
    seed, fmt, n, start_ms, span_ms, c0, rare_here = job
    tb = _tables(seed)
    by_slot, rare, stacks, where, hexes = tb.by_slot, tb.rare, tb.stacks, tb.where, tb.hexes
    bits = random.Random(seed * 1_000_003 + c0 // CHUNK).getrandbits
    rare_at = set(rare_here)
    ms_suffix = _MS_SUFFIX
    sec_cache = -1
    sec_prefix = ""
    text = fmt == "text"
    out: list[str] = []
    append = out.append
    for i in range(c0, min(n, c0 + CHUNK)):
        ts = start_ms + (i * span_ms) // n
        sec = ts // 1000
        if sec != sec_cache:
            sec_cache = sec
            sec_prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
        h = bits(64)
        svc, lvpad, level, tmpls = by_slot[h & 0xFFFF]
        render, status, has_stack = rare[h & 1] if i in rare_at else tmpls[h >> 16 & 0x3FF]
        msg = render(bits(64))
        stack = stacks[h >> 32 & 0xFF] if has_stack and h >> 40 & 1 else ""
        host, thread = where[h >> 41 & 0x3FF]
        trace = hexes[h >> 51] + hexes[(ts ^ (h >> 26)) & 0x1FFF]
        stamp = sec_prefix + ms_suffix[ts - sec * 1000]
        if text:
            append(f"{stamp} {lvpad} {svc} {host} [{thread}] [req-{trace}] {msg}{stack}\n")
        else:
            rec: dict[str, Any] = {"@timestamp": stamp, "level": level, "service": svc, "host": host,
                                   "thread": thread, "message": msg, "trace_id": trace}
            if status is not None:
                rec["http"] = {"status": status}
            if stack:
                rec["stack_trace"] = stack[1:]
            append(_dumps(rec) + "\n")
    return "".join(out)


_MS_SUFFIX = [f".{i:03d}Z" for i in range(1000)]


def iter_chunks(n: int, seed: int = 42, fmt: str = "text", hours: float = 24,
                start: str = "2026-11-20T00:00:00Z", jobs: int = 1) -> Iterator[str]:
    """Yield the output in chunks of CHUNK events (strings ending with a newline).

    Every chunk has its own random stream, so the output is the same for any ``jobs``.
    """
    start_ms = _parse_start(start)
    span_ms = int(hours * 3600_000)
    rare = _rare_positions(n, seed)
    work = [(seed, fmt, n, start_ms, span_ms, c0, tuple(r for r in rare if c0 <= r < c0 + CHUNK))
            for c0 in range(0, n, CHUNK)]
    if jobs <= 1 or len(work) < 4:
        for job in work:
            yield _chunk(job)
        return
    import multiprocessing

    with multiprocessing.get_context("fork").Pool(jobs) as pool:
        yield from pool.imap(_chunk, work, chunksize=1)


def write_logs(path: str, n: int, seed: int = 42, fmt: str = "text", hours: float = 24,
               start: str = "2026-11-20T00:00:00Z", jobs: int = 1) -> int:
    """Write ``n`` events to ``path`` ('-' for stdout, '.gz' for gzip); returns bytes written."""
    total = 0
    with contextlib.ExitStack() as stack:
        f: IO[str]
        if path == "-":
            f = sys.stdout
        elif path.endswith(".gz"):
            import gzip

            f = stack.enter_context(gzip.open(path, "wt", encoding="utf-8", compresslevel=1))
        else:
            f = stack.enter_context(open(path, "w", encoding="utf-8"))
        for block in iter_chunks(n, seed, fmt, hours, start, jobs):
            f.write(block)
            total += len(block) if block.isascii() else len(block.encode())
        f.flush()
    return total


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("n", type=int, help="number of log events")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--format", choices=("text", "ndjson"), default="text")
    ap.add_argument("--hours", type=float, default=24.0, help="time span covered (default 24)")
    ap.add_argument("--start", default="2026-11-20T00:00:00Z", help="first timestamp (RFC 3339)")
    ap.add_argument("-o", "--output", default="-", help="output file ('-' = stdout, *.gz = gzip)")
    ap.add_argument("-j", "--jobs", type=int, default=min(2, os.cpu_count() or 1),
                    help="worker processes (the output does not depend on it; default 2)")
    ap.add_argument("--stats", action="store_true", help="print shape count and speed to stderr")
    a = ap.parse_args(argv)
    if a.n < 0:
        ap.error("n must be >= 0")
    t0 = time.perf_counter()
    size = write_logs(a.output, a.n, a.seed, a.format, a.hours, a.start, a.jobs)
    dt = time.perf_counter() - t0
    if a.stats:
        shapes = build_catalog(a.seed).shapes
        print(f"{a.n:,} events, {size:,} bytes ({size / max(a.n, 1):.0f} B/event), {shapes} message "
              f"shapes, {dt:.2f}s ({a.n / dt:,.0f} events/s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
