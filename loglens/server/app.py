"""The HTTP API. Thin: parse the request, call one function below, render JSON."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from loglens import __version__
from loglens.alerts.api import alerts_router
from loglens.alerts.evaluator import start_alerts
from loglens.analysis.ask import ask as ask_question
from loglens.analysis.cache import QACache
from loglens.analysis.chat import ChatError, chat_events, sse
from loglens.analysis.chat import chat as chat_answer
from loglens.config import Settings
from loglens.ingest import http_routers, start_receivers
from loglens.ingest.bodies import BodyError, decode_body
from loglens.keys import KeyStore
from loglens.llm import client_from_settings
from loglens.model import LogRecord, RecordBatch
from loglens.pipeline import Pipeline, QueueFullError
from loglens.query.engine import (
    ParameterError,
    PatternQueries,
    QueryEngine,
    format_ts,
    parse_record_id,
    record_dict,
)
from loglens.query.errors import QueryError
from loglens.query.planning import BUILTIN_FIELDS
from loglens.query.timerange import now_ns, parse_duration, parse_time
from loglens.server.auth import AuthMiddleware, FailureLimiter, RouteResolver, auth_enabled, requires
from loglens.server.metrics import Metrics, MetricsMiddleware
from loglens.store import open_store
from loglens.ui import mount as mount_ui

log = logging.getLogger("loglens.server")


class ORJSONResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)


def _error(status: int, message: str, **extra: Any) -> ORJSONResponse:
    return ORJSONResponse({"error": message, **extra}, status_code=status)


class Runtime:
    """What one server process holds: the store, the pipeline, receivers, the retention timer."""

    def __init__(self, settings: Settings, metrics: Metrics | None = None) -> None:
        self.settings = settings
        self.store = open_store(settings.data, writable=True, durability=settings.durability)
        self.pipeline = Pipeline(self.store, max_queued=settings.max_queued).start()
        self.engine = QueryEngine(self.store)
        self.metrics = metrics or Metrics()
        self.metrics.attach(self)
        self.receivers = start_receivers(settings, self.pipeline)
        self.alerts = start_alerts(settings, self.engine, self.metrics)  # [[alerts]] and /api/v1/alerts
        self.ready = True
        self._stop = threading.Event()
        self._retention_thread: threading.Thread | None = None
        if settings.retention:
            self.retention_ns = parse_duration(settings.retention)
            self._retention_thread = threading.Thread(target=self._retention_loop, daemon=True,
                                                      name="loglens-retention")
            self._retention_thread.start()

    def _retention_loop(self) -> None:
        while not self._stop.is_set():
            try:
                removed = self.store.apply_retention(now_ns() - self.retention_ns)
                if removed:
                    log.info("retention removed %d records", removed)
            except Exception:
                log.exception("retention failed")
            self._stop.wait(600)

    def close(self) -> None:
        self._stop.set()
        self.ready = False
        self.alerts.close()
        for receiver in self.receivers:
            receiver.close()
        self.pipeline.close()
        self.store.close()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    holder: dict[str, Runtime] = {}
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        holder["rt"] = app.state.runtime = Runtime(settings, metrics)
        try:
            yield
        finally:
            holder.pop("rt").close()

    app = FastAPI(title="LogLens", version=__version__, lifespan=lifespan,
                  default_response_class=ORJSONResponse)
    app.state.metrics = metrics

    def rt() -> Runtime:
        return holder["rt"]

    for router in http_routers(settings):
        app.include_router(router)
    app.include_router(alerts_router(lambda: rt().alerts))

    @app.exception_handler(QueryError)
    async def query_error(_: Request, exc: QueryError) -> ORJSONResponse:
        return _error(400, exc.headline, position=exc.position, query=exc.query, caret=exc.caret_lines())

    @app.exception_handler(ParameterError)
    async def parameter_error(_: Request, exc: ParameterError) -> ORJSONResponse:
        return _error(400, str(exc))

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz() -> ORJSONResponse:
        runtime = holder.get("rt")
        if runtime is None or not runtime.ready:
            return _error(503, "starting")
        return ORJSONResponse({"status": "ready", "queued": runtime.pipeline.queued})

    @app.post("/api/v1/logs")
    async def ingest(request: Request, service: str = "", host: str = "", grok: str = "") -> ORJSONResponse:
        runtime = rt()
        grok_pattern = None
        if grok:  # ?grok=NAME (a library pattern) or a URL-encoded grok pattern for the text lines
            from loglens.parse.grok import GrokError, resolve

            try:
                grok_pattern = resolve(grok)
            except GrokError as exc:
                return _error(400, f"grok: {exc}")
        limit = runtime.settings.max_body_bytes
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            return _error(413, f"body of {declared} bytes is over the limit of {limit} bytes")
        chunks = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                return _error(413, f"body is over the limit of {limit} bytes")
            chunks.append(chunk)
        body = b"".join(chunks)
        try:
            decoded = await asyncio.to_thread(
                decode_body, body, content_type=request.headers.get("content-type", ""),
                content_encoding=request.headers.get("content-encoding", ""), max_bytes=limit,
                json_as_text=grok_pattern is None,  # grok reads text lines: keep objects apart
                unchecked_lines=grok_pattern is None,  # the worker checks NDJSON lines as it reads them
            )
        except BodyError as exc:
            return _error(exc.status, str(exc))
        rejected = [{"line": r.line, "reason": r.reason} for r in decoded.rejected]
        service = service or request.headers.get("x-loglens-service", "")
        host = host or request.headers.get("x-loglens-host", "")
        items: list[Any] = decoded.items
        if grok_pattern is not None:
            from loglens.parse.grok import grok_record

            received, pattern = time.time_ns(), grok_pattern
            items = await asyncio.to_thread(lambda: [
                grok_record(i, pattern, received_ns=received, service=service, host=host, source="http")
                if isinstance(i, str) else i for i in decoded.items])
        numbers = decoded.line_numbers
        refused: list[tuple[int, str]] = []
        try:
            future = runtime.pipeline.submit(items, service=service, host=host, source="http",
                                             json_lines=numbers is not None, rejected=refused)
        except QueueFullError as exc:
            metrics.rejected("http", "backpressure", len(items))
            return ORJSONResponse({"error": str(exc)}, status_code=429, headers={"Retry-After": "1"})
        try:
            accepted = await asyncio.wrap_future(future)
        except Exception as exc:
            log.exception("ingest failed")
            return _error(503, f"could not store the batch: {exc}")
        if numbers is not None and refused:
            rejected += [{"line": numbers[index], "reason": reason} for index, reason in refused]
        metrics.rejected("http", "malformed", len(rejected))
        status = 400 if rejected and not accepted else 200
        return ORJSONResponse({"accepted": accepted, "rejected": rejected}, status_code=status)

    @app.get("/api/v1/search")
    def search(q: str = "", from_: str | None = Query(None, alias="from"), to: str | None = None,
               limit: int = 100, cursor: str | None = None) -> ORJSONResponse:
        page = rt().engine.search(q, from_, to, limit, cursor)
        return ORJSONResponse({
            "records": [record_dict(r) for r in page.records],
            "next_cursor": str(page.next_cursor) if page.next_cursor is not None else None,
        })

    @app.get("/api/v1/count")
    def count(q: str = "", from_: str | None = Query(None, alias="from"), to: str | None = None) -> dict[str, int]:
        return {"count": rt().engine.count(q, from_, to)}

    @app.get("/api/v1/histogram")
    def histogram(q: str = "", from_: str | None = Query(None, alias="from"), to: str | None = None,
                  interval: str = "auto") -> ORJSONResponse:
        hist = rt().engine.histogram(q, from_, to, interval)
        return ORJSONResponse({
            "interval_ms": hist.interval_ns // 1_000_000,
            "buckets": [
                {"start": format_ts(b.start), "start_ms": b.start // 1_000_000, "total": b.total, "counts": b.counts}
                for b in hist.buckets
            ],
        })

    @app.get("/api/v1/top")
    def top(field: str = "service", q: str = "", from_: str | None = Query(None, alias="from"),
            to: str | None = None, limit: int = 10) -> ORJSONResponse:
        values = rt().engine.top(field, q, from_, to, limit)
        return ORJSONResponse({"field": field, "values": [{"value": v.value, "count": v.count} for v in values]})

    @app.get("/api/v1/patterns")
    def patterns(q: str = "", from_: str | None = Query(None, alias="from"), to: str | None = None,
                 limit: int = 50, service: str | None = None, new: bool = False) -> ORJSONResponse:
        return ORJSONResponse(PatternQueries(rt().engine).list(q, from_, to, limit, service, new))

    @app.get("/api/v1/patterns/similar")
    def similar_patterns(text: str, limit: int = 10, threshold: float | None = None) -> ORJSONResponse:
        if not 1 <= limit <= 100:
            raise ParameterError("limit must be between 1 and 100")
        index = rt().engine.pattern_index()
        matches = index.similar(text, limit, threshold)
        return ORJSONResponse({"text": text, "scorer": index.scorer.name, "threshold": index.threshold if threshold
                               is None else threshold, "patterns": [
            {"id": m.template_id, "template": m.template, "score": m.score, "count": m.count,
             "first_seen": format_ts(m.first_seen) if m.first_seen else None,
             "last_seen": format_ts(m.last_seen) if m.last_seen else None} for m in matches]})

    @app.get("/api/v1/anomalies")
    def anomalies(from_: str | None = Query(None, alias="from"), to: str | None = None, service: str | None = None,
                  interval: str | None = None, min_score: float = 0.0) -> ORJSONResponse:
        from loglens.analysis.anomalies import AnomalyDetector

        window = rt().engine.time_range(from_, to)
        try:
            step = parse_duration(interval) if interval else None
            report = AnomalyDetector(rt().store).detect(window.start, window.end, service or None, step,
                                                        min_score=min_score)
        except ValueError as exc:
            raise ParameterError(str(exc)) from None
        return ORJSONResponse(report.to_dict())

    def explainer() -> Any:
        runtime = rt()
        found = getattr(runtime, "explainer", None)
        if found is None:
            from loglens.analysis.explain import Explainer

            found = Explainer(runtime.engine, llm=client_from_settings(runtime.settings))
            runtime.explainer = found  # type: ignore[attr-defined]
        return found

    @app.get("/api/v1/records/{record_id}/explain")
    def explain_record(record_id: str) -> ORJSONResponse:
        ident = parse_record_id(record_id)
        try:
            return ORJSONResponse(explainer().explain_record(ident))
        except KeyError:
            return _error(404, f"no record {record_id}")

    @app.post("/api/v1/explain")
    @requires("read")
    async def explain_query(request: Request) -> ORJSONResponse:
        try:
            body = orjson.loads(await request.body() or b"{}")
        except orjson.JSONDecodeError as exc:
            return _error(400, f"body is not JSON: {exc}")
        if not isinstance(body, dict):
            return _error(400, 'body is a JSON object: {"q": ..., "from": ..., "to": ...}')
        q, start, end = body.get("q") or "", body.get("from"), body.get("to")
        if not all(v is None or isinstance(v, str) for v in (q, start, end)):
            return _error(400, "q, from and to are strings")
        try:
            facts = await asyncio.to_thread(explainer().explain_query, q, start, end)
        except LookupError as exc:
            return _error(404, str(exc.args[0]) if exc.args else "nothing to explain")
        return ORJSONResponse(facts)

    @app.get("/api/v1/patterns/{template_id}")
    def pattern(template_id: int, from_: str | None = Query(None, alias="from"), to: str | None = None,
                interval: str = "auto") -> ORJSONResponse:
        try:
            return ORJSONResponse(PatternQueries(rt().engine).get(template_id, from_, to, interval))
        except KeyError:
            return _error(404, f"no pattern {template_id}")

    @app.get("/api/v1/records/{record_id}")
    def record(record_id: str) -> ORJSONResponse:
        rec = rt().store.get(parse_record_id(record_id))
        if rec is None:
            return _error(404, f"no record {record_id}")
        return ORJSONResponse(record_dict(rec))

    @app.get("/api/v1/records/{record_id}/context")
    def context(record_id: str, before: int = 20, after: int = 20) -> ORJSONResponse:
        try:
            return ORJSONResponse(rt().engine.context(record_id, before, after))
        except KeyError:
            return _error(404, f"no record {record_id}")

    @app.get("/api/v1/fields")
    def fields() -> dict[str, Any]:
        return {"builtin": list(BUILTIN_FIELDS), "attributes": sorted(rt().store.known_attributes())}

    @app.get("/api/v1/tail")
    async def tail(request: Request, q: str = "") -> StreamingResponse:
        runtime = rt()
        plan = runtime.engine.plan(q)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[list[LogRecord]] = asyncio.Queue(maxsize=1000)

        def on_commit(batch: RecordBatch) -> None:
            matched = [r for r in batch if plan.predicate(r)]
            if matched:
                loop.call_soon_threadsafe(_offer, queue, matched)

        unsubscribe = runtime.pipeline.subscribe(on_commit)

        async def events() -> AsyncIterator[bytes]:
            try:
                yield b": tailing\n\n"
                while True:
                    try:
                        batch = await asyncio.wait_for(queue.get(), timeout=15)
                    except TimeoutError:
                        if await request.is_disconnected():
                            return
                        yield b": keep-alive\n\n"
                        continue
                    for rec in batch:
                        yield b"event: record\ndata: " + orjson.dumps(record_dict(rec)) + b"\n\n"
            finally:
                unsubscribe()

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    # Ask and chat (docs/ai.md): read-only questions, so a read key is enough.
    llm = client_from_settings(settings)
    qa_cache = QACache()

    def _now_param(value: Any) -> int | None:
        if value in (None, ""):
            return None
        try:
            return parse_time(value)
        except ValueError as exc:
            raise ParameterError(f"now: {exc}") from None

    @app.post("/api/v1/ask")
    @requires("read")
    def ask(body: dict[str, Any]) -> ORJSONResponse:
        question = body.get("question")
        if not isinstance(question, str) or not question.strip():
            return _error(400, "give a question: {\"question\": \"how many errors in the last hour\"}")
        return ORJSONResponse(ask_question(rt().engine, question, now=_now_param(body.get("now")), llm=llm))

    @app.post("/api/v1/chat")
    @requires("read")
    def chat(body: dict[str, Any]) -> Response:
        messages = body.get("messages")
        now = _now_param(body.get("now"))
        filters = orjson.dumps(body.get("filters") or {}, option=orjson.OPT_SORT_KEYS).decode()
        kwargs: dict[str, Any] = {"now": now, "llm": llm, "cache": qa_cache, "filters": filters}
        try:
            if not body.get("stream"):
                return ORJSONResponse(chat_answer(rt().engine, messages or [], **kwargs))
            events = chat_events(rt().engine, messages or [], **kwargs)
            first = next(events)  # a malformed request fails here, before the stream starts
        except ChatError as exc:
            return _error(400, str(exc))

        def stream() -> Any:
            yield from sse(iter([first]))
            yield from sse(events)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @app.get("/api/v1/stats")
    def stats() -> dict[str, Any]:
        s = rt().store.stats()
        return {
            "records": s.records, "bytes_on_disk": s.bytes_on_disk,
            "first_timestamp": format_ts(s.first_timestamp) if s.first_timestamp else None,
            "last_timestamp": format_ts(s.last_timestamp) if s.last_timestamp else None,
            "services": s.services, "templates": s.templates, "shards": s.shards,
            "queued": rt().pipeline.queued,
        }

    @app.get("/metrics", summary="Prometheus metrics (needs a read key when auth is on)")
    def prometheus_metrics() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST

        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    resolve = RouteResolver(lambda: app.router.routes)
    if auth_enabled(settings):
        keys = KeyStore(settings.data)
        active = len(keys.active())
        if not active:
            log.warning("authentication is on and there is no API key yet: create one with "
                        "`loglens keys create --scope admin --data %s`", settings.data)
        limiter = FailureLimiter(settings.auth_max_failures, block=settings.auth_block_seconds)
        app.add_middleware(AuthMiddleware, resolve=resolve, keys=keys, limiter=limiter,
                           on_failure=lambda reason: metrics.auth_failures.labels(reason).inc())
    app.add_middleware(MetricsMiddleware, resolve=resolve, metrics=metrics)

    @app.middleware("http")
    async def timing(request: Request, call_next: Any) -> Response:
        started = time.perf_counter()
        response: Response = await call_next(request)
        response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.1f}"
        return response

    # the web UI: its files under /ui (public, with a Content-Security-Policy) and its page at / for
    # browsers (Accept: text/html; others get the Elasticsearch handshake). Last, so it runs first.
    mount_ui(app)
    return app


def _offer(queue: asyncio.Queue[list[LogRecord]], batch: list[LogRecord]) -> None:
    """Hand a batch to a tail client; a client too slow to keep up loses the oldest batch."""
    if queue.full():
        queue.get_nowait()
    queue.put_nowait(batch)

