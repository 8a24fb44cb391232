"""Prometheus metrics, one registry per app, served at ``GET /metrics``.

Counters that events move (records committed, HTTP body bytes, query latency, commit latency,
alert evaluations and deliveries) live here; what a scrape can read from the running process
(queue depth, store size, templates, the socket receivers' own ``stats``) is read at scrape time
by a collector. No label ever carries a key, a query or a message.

The alerts feature reports through :meth:`Metrics.alert_evaluated` and :meth:`Metrics.alert_delivered`
(or the module functions of the same names, which accept ``None`` for "no metrics here").
"""

from __future__ import annotations

import threading
import time
from collections import Counter as Tally
from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableMapping
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.routing import BaseRoute

from loglens import __version__
from loglens.server.auth import RouteResolver

if TYPE_CHECKING:
    from loglens.model import RecordBatch
    from loglens.server.app import Runtime

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Distinct ``service`` label values; later services are counted under ``other``.
MAX_SERVICES = 100
OTHER = "other"
#: A record's ``source`` -> the receiver label.
RECEIVERS = {"http": "http", "elastic": "elastic", "loki": "loki", "otlp": "otlp", "syslog": "syslog",
             "fluentd": "forward", "kafka": "kafka", "file": "file"}
#: The routes whose request bodies are ingest bytes, by route path; the receivers' modules are added.
_INGEST_PATHS = {"/api/v1/logs": "http"}
_MODULE_RECEIVERS = {"loglens.ingest.elastic": "elastic", "loglens.ingest.loki": "loki",
                     "loglens.ingest.otlp": "otlp"}
#: Query routes timed in ``loglens_query_seconds``: the API's GET routes.
QUERY_PREFIX = "/api/v1/"
#: How long the store's size and counts are reused between scrapes (they walk the shards).
STORE_STATS_TTL = 2.0

COMMIT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
QUERY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    def __init__(self, max_services: int = MAX_SERVICES) -> None:
        self.registry = CollectorRegistry()
        self.max_services = max_services
        self._services: set[str] = set()
        self._lock = threading.Lock()
        #: Bytes and rejected records counted here (HTTP receivers); the socket receivers' come from their stats.
        self._bytes: Tally[str] = Tally()
        self._rejected: Tally[tuple[str, str]] = Tally()
        self.runtime: Runtime | None = None
        r = self.registry
        self.records_ingested = Counter(
            "loglens_records_ingested", "Records committed to the store, by receiver and service "
            f"(services beyond the first {max_services} are counted as 'other').",
            ["receiver", "service"], registry=r)
        self.commit_seconds = Histogram(
            "loglens_commit_seconds", "Time to write and commit one batch to the store.",
            buckets=COMMIT_BUCKETS, registry=r)
        self.query_seconds = Histogram(
            "loglens_query_seconds", "Time to answer a query API request, by endpoint (route path).",
            ["endpoint"], buckets=QUERY_BUCKETS, registry=r)
        self.http_requests = Counter(
            "loglens_http_requests", "HTTP requests answered, by status class.", ["code"], registry=r)
        self.auth_failures = Counter(
            "loglens_auth_failures", "Requests refused by authentication, by reason "
            "(missing, invalid, scope, rate_limited).", ["reason"], registry=r)
        self.alert_evaluations = Counter(
            "loglens_alert_evaluations", "Alert rule evaluations.", registry=r)
        self.alert_deliveries = Counter(
            "loglens_alert_deliveries", "Alert notification deliveries, by target kind and outcome.",
            ["target", "outcome"], registry=r)
        info = Gauge("loglens_build_info", "LogLens version.", ["version"], registry=r)
        info.labels(__version__).set(1)
        self._store_cache: tuple[float, Any] | None = None
        r.register(_RuntimeCollector(self))

    # ------------------------------------------------------------------ recording
    def attach(self, runtime: Runtime) -> None:
        """Follow ``runtime``: count its commits and read its state at scrape time."""
        self.runtime = runtime
        runtime.pipeline.subscribe(self.committed)
        runtime.pipeline.commit_observers.append(self.commit_seconds.observe)

    def service_label(self, service: str) -> str:
        if service in self._services:
            return service
        with self._lock:
            if len(self._services) < self.max_services:
                self._services.add(service)
                return service
        return OTHER

    def committed(self, batch: RecordBatch) -> None:
        """Pipeline subscriber: count a committed batch by receiver and service."""
        counts = Tally(zip(batch.sources, batch.services, strict=True))
        for (source, service), n in counts.items():
            self.records_ingested.labels(RECEIVERS.get(source, OTHER), self.service_label(service)).inc(n)

    def ingest_bytes(self, receiver: str, n: int) -> None:
        with self._lock:
            self._bytes[receiver] += n

    def rejected(self, receiver: str, reason: str, n: int = 1) -> None:
        """Records a receiver refused; ``reason`` is a short fixed word (malformed, backpressure...)."""
        if n > 0:
            with self._lock:
                self._rejected[(receiver, reason)] += n

    def alert_evaluated(self, n: int = 1) -> None:
        self.alert_evaluations.inc(n)

    def alert_delivered(self, target: str, outcome: str) -> None:
        """One delivery attempt to a target kind (slack, discord, webhook, email): ``ok`` or ``failed``..."""
        self.alert_deliveries.labels(target, outcome).inc()

    # ------------------------------------------------------------------ reading
    def store_stats(self) -> Any:
        runtime = self.runtime
        if runtime is None:
            return None
        now = time.monotonic()
        cached = self._store_cache
        if cached is None or now - cached[0] > STORE_STATS_TTL:
            cached = self._store_cache = (now, runtime.store.stats())
        return cached[1]

    def socket_receiver_stats(self) -> Iterator[tuple[str, dict[str, int]]]:
        runtime = self.runtime
        for receiver in getattr(runtime, "receivers", []):
            stats = getattr(receiver, "stats", None)
            if isinstance(stats, dict):
                module = type(receiver).__module__.rsplit(".", 1)[-1]
                yield {"files": "file"}.get(module, module), stats

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)


def alert_evaluated(metrics: Metrics | None, n: int = 1) -> None:
    if metrics is not None:
        metrics.alert_evaluated(n)


def alert_delivered(metrics: Metrics | None, target: str, outcome: str) -> None:
    if metrics is not None:
        metrics.alert_delivered(target, outcome)


def rejected(app_state: Any, receiver: str, reason: str, n: int = 1) -> None:
    """For receivers: count refused records through ``request.app.state`` when it has metrics."""
    metrics = getattr(app_state, "metrics", None)
    if isinstance(metrics, Metrics):
        metrics.rejected(receiver, reason, n)


#: What the socket receivers' ``stats`` hold that maps to bytes and rejected records.
_SOCKET_BYTES = ("bytes",)
_SOCKET_REJECTED = {
    "syslog": {"malformed": "malformed", "dropped_backpressure": "backpressure"},
    "forward": {"malformed": "malformed", "rejected_entries": "invalid_entry"},
}


class _RuntimeCollector(Collector):
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterable[Metric]:
        m = self.metrics
        with m._lock:
            byte_counts = dict(m._bytes)
            rejected = dict(m._rejected)
        for receiver, stats in m.socket_receiver_stats():
            for field in _SOCKET_BYTES:
                if field in stats:
                    byte_counts[receiver] = byte_counts.get(receiver, 0) + stats[field]
            for field, reason in _SOCKET_REJECTED.get(receiver, {}).items():
                if stats.get(field):
                    rejected[(receiver, reason)] = rejected.get((receiver, reason), 0) + stats[field]
        bytes_family = CounterMetricFamily("loglens_ingest_bytes", "Bytes received by ingest receivers "
                                           "(HTTP bodies as sent, before decompression).", labels=["receiver"])
        for receiver, n in sorted(byte_counts.items()):
            bytes_family.add_metric([receiver], n)
        yield bytes_family
        rejected_family = CounterMetricFamily("loglens_records_rejected", "Records refused by a receiver, by reason.",
                                              labels=["receiver", "reason"])
        for (receiver, reason), n in sorted(rejected.items()):
            rejected_family.add_metric([receiver, reason], n)
        yield rejected_family
        runtime = m.runtime
        if runtime is None:
            return
        yield GaugeMetricFamily("loglens_queue_depth", "Records waiting in the write queue.",
                                value=runtime.pipeline.queued)
        stats = m.store_stats()
        if stats is not None:
            yield GaugeMetricFamily("loglens_store_bytes", "Bytes the data directory takes on disk.",
                                    value=stats.bytes_on_disk)
            yield GaugeMetricFamily("loglens_store_records", "Records in the store.", value=stats.records)
            yield GaugeMetricFamily("loglens_templates", "Log templates (patterns) known.", value=stats.templates)


def _receiver_of(route: BaseRoute | None) -> str | None:
    if route is None:
        return None
    path = getattr(route, "path", None)
    if path in _INGEST_PATHS:
        return _INGEST_PATHS[path]
    module = getattr(getattr(route, "endpoint", None), "__module__", "")
    return _MODULE_RECEIVERS.get(module)


class MetricsMiddleware:
    """Counts ingest body bytes per receiver, times query routes, counts answers by status class."""

    def __init__(self, app: ASGIApp, *, resolve: RouteResolver, metrics: Metrics) -> None:
        self.app = app
        self.resolve = resolve
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        m = self.metrics
        route = self.resolve(scope)
        receiver = _receiver_of(route)
        endpoint = None
        route_path = getattr(route, "path", "")
        if receiver is None and scope.get("method") == "GET" and route_path.startswith(QUERY_PREFIX):
            endpoint = route_path
        status = 500

        async def counting_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request" and receiver is not None:
                size = len(message.get("body", b""))
                if size:
                    m.ingest_bytes(receiver, size)
            return message

        started = time.perf_counter()

        async def watching_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                if endpoint is not None and status < 400:  # a streamed answer (tail) is timed to its start
                    m.query_seconds.labels(endpoint).observe(time.perf_counter() - started)
            await send(message)

        try:
            await self.app(scope, counting_receive if receiver else receive, watching_send)
        finally:
            m.http_requests.labels(f"{status // 100}xx").inc()
