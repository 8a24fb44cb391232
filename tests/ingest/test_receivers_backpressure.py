"""The HTTP receivers answer a full write queue with their protocol's backpressure, and the pipeline
takes the records they build themselves."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import cramjam
import httpx
import orjson
import pytest
from fastapi.testclient import TestClient

from loglens.config import Settings
from loglens.ingest._loki_pb import PushRequest
from loglens.model import Level, LogRecord
from loglens.pipeline import Pipeline
from loglens.query.planning import plan_query
from loglens.server import create_app
from loglens.store import TimeRange, open_store
from tests.conftest import gate_writes


@pytest.fixture
def gated(tmp_path: Path) -> Iterator[tuple[TestClient, threading.Event]]:
    app = create_app(Settings(data=str(tmp_path / "d"), max_queued=5))
    with TestClient(app) as client:
        runtime = app.state.runtime
        gate = gate_writes(runtime.store, timeout=10)
        yield client, gate
        gate.set()


def _hold_queue(client: TestClient, send: Callable[[int], httpx.Response]) -> tuple[threading.Thread, dict[str, int]]:
    """Send 4 records that wait at the gate, filling most of the queue of 5."""
    first: dict[str, int] = {}
    t = threading.Thread(target=lambda: first.update(status=send(4).status_code))
    t.start()
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    while runtime.pipeline.queued == 0:
        pass
    return t, first


def _bulk(client: TestClient, n: int) -> httpx.Response:
    lines = b"".join(b'{"index":{}}\n' + orjson.dumps({"message": f"doc {i}"}) + b"\n" for i in range(n))
    return client.post("/bp/_bulk", content=lines, headers={"Content-Type": "application/x-ndjson"})


def _loki(client: TestClient, n: int) -> httpx.Response:
    req = PushRequest()
    s = req.streams.add(labels=b'{job="bp"}')
    for i in range(n):
        e = s.entries.add(line=f"line {i}".encode())
        e.timestamp.seconds = 1_700_000_000 + i
    return client.post("/loki/api/v1/push", content=bytes(cramjam.snappy.compress_raw(req.SerializeToString())),
                       headers={"Content-Type": "application/x-protobuf"})


def _otlp(client: TestClient, n: int) -> httpx.Response:
    records = [{"body": {"stringValue": f"otlp {i}"}, "severityNumber": 9} for i in range(n)]
    body = {"resourceLogs": [{"scopeLogs": [{"logRecords": records}]}]}
    return client.post("/v1/logs", content=orjson.dumps(body), headers={"Content-Type": "application/json"})


def test_elastic_429_is_es_rejected_execution(gated: tuple[TestClient, threading.Event]) -> None:
    client, gate = gated
    t, first = _hold_queue(client, lambda n: _bulk(client, n))
    r = _bulk(client, 2)
    assert r.status_code == 429
    assert r.json()["error"]["type"] == "es_rejected_execution_exception" and r.json()["status"] == 429
    assert r.headers["X-Elastic-Product"] == "Elasticsearch"
    gate.set()
    t.join(10)
    assert first["status"] == 200
    assert _bulk(client, 2).json()["errors"] is False
    assert client.get("/api/v1/count").json() == {"count": 6}  # the refused bulk stored nothing


@pytest.mark.parametrize("send", [_loki, _otlp], ids=["loki", "otlp"])
def test_loki_and_otlp_429_with_retry_after(gated: tuple[TestClient, threading.Event],
                                             send: Callable[[TestClient, int], httpx.Response]) -> None:
    client, gate = gated
    t, first = _hold_queue(client, lambda n: send(client, n))
    r = send(client, 2)
    assert r.status_code == 429 and r.headers["Retry-After"] == "1"
    gate.set()
    t.join(10)
    assert first["status"] in (200, 204)
    assert send(client, 2).status_code in (200, 204)
    assert client.get("/api/v1/count").json() == {"count": 6}


def test_pipeline_takes_records_built_by_a_receiver(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "d"), writable=True)
    rec = LogRecord(1_700_000_000_000_000_000, "user 42 logged in", Level.INFO, "auth", "h1",
                    attributes={"span_id": "ab"})
    try:
        with Pipeline(store) as pipeline:
            assert pipeline.write([rec, "plain text line", {"msg": "json item"}], source="test") == 3
        assert store.count(plan_query(""), TimeRange()) == 3
        [stored] = store.search(plan_query("service:auth"), TimeRange(), 10).records
        assert stored.message == rec.message and stored.attributes == {"span_id": "ab"}
        assert stored.template_id != 0 and stored.source == "test"  # templates assigned, source filled in
    finally:
        store.close()
