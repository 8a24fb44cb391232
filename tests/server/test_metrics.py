"""``GET /metrics``: counters move with ingest and queries; a real Prometheus scrapes them."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from loglens.keys import KeyStore
from loglens.model import LogRecord, RecordBatch
from loglens.server.metrics import Metrics
from loglens.store.base import StoreStats
from tests.conftest import Server, free_port, start_server, stop_server

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(client: httpx.Client, headers: dict[str, str] | None = None) -> Samples:
    resp = client.get("/metrics", headers=headers or {})
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/plain")
    out: Samples = {}
    for family in text_string_to_metric_families(resp.text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("metrics") / "data")
    yield srv
    stop_server(srv)


def test_counters_move_with_ingest_and_queries(server: Server) -> None:
    with server.client() as c:
        before = scrape(c)
        assert value(before, "loglens_records_ingested_total", receiver="http", service="checkout") == 0
        assert value(before, "loglens_build_info", version=__import__("loglens").__version__) == 1
        body = b"".join(orjson.dumps({"message": f"paid order {i}", "level": "INFO"}) + b"\n" for i in range(5))
        body += b"{not json\n"
        resp = c.post("/api/v1/logs", params={"service": "checkout"}, content=body,
                      headers={"Content-Type": "application/x-ndjson"})
        assert resp.json()["accepted"] == 5
        bulk = b'{"index": {"_index": "billing"}}\n{"message": "invoice sent"}\n'
        assert c.post("/_bulk", content=bulk, headers={"Content-Type": "application/x-ndjson"}).status_code == 200
        assert c.get("/api/v1/search", params={"q": "order"}).status_code == 200
        assert c.get("/api/v1/count", params={"q": "order"}).json()["count"] == 5
        assert c.get("/api/v1/count", params={"q": "(("}).status_code == 400
        after = scrape(c)
        assert value(after, "loglens_records_ingested_total", receiver="http", service="checkout") == 5
        assert value(after, "loglens_records_ingested_total", receiver="elastic", service="billing") == 1
        assert value(after, "loglens_ingest_bytes_total", receiver="http") == len(body)
        assert value(after, "loglens_ingest_bytes_total", receiver="elastic") == len(bulk)
        assert value(after, "loglens_records_rejected_total", receiver="http", reason="malformed") == 1
        assert value(after, "loglens_commit_seconds_count") >= 2
        assert value(after, "loglens_commit_seconds_sum") > 0
        assert value(after, "loglens_query_seconds_count", endpoint="/api/v1/search") == 1
        assert value(after, "loglens_query_seconds_count", endpoint="/api/v1/count") == 1  # the 400 is not timed
        assert value(after, "loglens_queue_depth") == 0
        assert value(after, "loglens_alert_evaluations_total") == 0
        assert value(after, "loglens_http_requests_total", code="4xx") >= 1
        deadline = time.monotonic() + 15  # store gauges are cached for a few seconds
        while value(after, "loglens_store_records") != 6 and time.monotonic() < deadline:
            time.sleep(0.5)
            after = scrape(c)
        assert value(after, "loglens_store_records") == 6
        assert value(after, "loglens_store_bytes") > 0
        assert value(after, "loglens_templates") >= 2


def test_service_label_cardinality_is_capped() -> None:
    metrics = Metrics(max_services=2)
    now = time.time_ns()
    records = [LogRecord(now, f"m {i}", source="http", service=f"svc{i % 4}") for i in range(8)]
    metrics.committed(RecordBatch.of(records))
    metrics.committed(RecordBatch.of([LogRecord(now, "x", source="fluentd", service="svc0")]))
    metrics.alert_evaluated()
    metrics.alert_delivered("slack", "ok")
    samples: Samples = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    assert value(samples, "loglens_records_ingested_total", receiver="http", service="svc0") == 2
    assert value(samples, "loglens_records_ingested_total", receiver="http", service="svc1") == 2
    assert value(samples, "loglens_records_ingested_total", receiver="http", service="other") == 4
    assert value(samples, "loglens_records_ingested_total", receiver="forward", service="svc0") == 1
    assert value(samples, "loglens_alert_evaluations_total") == 1
    assert value(samples, "loglens_alert_deliveries_total", target="slack", outcome="ok") == 1


DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana-dashboard.json"


def dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def test_grafana_dashboard_uses_the_exported_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["title"] == "LogLens" and dashboard["uid"] and dashboard["schemaVersion"] >= 30
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for p in dashboard["panels"]:
        assert {"x", "y", "w", "h"} <= set(p["gridPos"])
    metrics = Metrics()
    metrics.runtime = fake_runtime()  # type: ignore[assignment]
    exported = {f.name for f in text_string_to_metric_families(metrics.render().decode())}
    used = set()
    for expr in dashboard_queries():
        for name in re.findall(r"\bloglens_[a-z_]+", expr):
            used.add(re.sub(r"_(total|bucket|count|sum)$", "", name))
    assert used <= exported, used - exported
    titles = " ".join(p["title"].lower() for p in dashboard["panels"])
    for wanted in ("ingested", "rejected", "queue", "commit latency", "query latency", "store size", "templates"):
        assert wanted in titles


def test_prometheus_scrapes_a_running_server(tmp_path: Path) -> None:
    binary = shutil.which("prometheus")
    if binary is None:
        if os.environ.get("LOGLENS_REQUIRE_SERVICES") == "1":
            pytest.fail("prometheus is not installed (apt-get install prometheus)")
        pytest.skip("prometheus is not installed (apt-get install prometheus)")
    data = tmp_path / "data"
    store = KeyStore(data)
    _, key = store.create("read", "prometheus")
    store.close()
    srv = start_server(data, "--auth", "on")
    prom: subprocess.Popen[bytes] | None = None
    try:
        _, ingest_key = KeyStore(data).create("ingest")
        with httpx.Client(base_url=srv.url, headers={"Authorization": f"Bearer {ingest_key}"}, timeout=30) as c:
            for batch in range(3):
                lines = "".join(f"job {batch}-{i} done\n" for i in range(10))
                assert c.post("/api/v1/logs", params={"service": "batch"}, content=lines).json()["accepted"] == 10
        port = free_port()
        target = srv.url.removeprefix("http://")
        config = tmp_path / "prometheus.yml"
        # Prometheus reads YAML; JSON is YAML.
        config.write_text(json.dumps({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [{
                "job_name": "loglens", "scrape_interval": "1s", "scrape_timeout": "1s",
                "authorization": {"type": "Bearer", "credentials": key},
                "static_configs": [{"targets": [target]}],
            }],
        }))
        log = tmp_path / "prometheus.log"
        prom = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=open(log, "wb"), stderr=subprocess.STDOUT,  # noqa: SIM115
        )
        api = f"http://127.0.0.1:{port}/api/v1/query"
        deadline = time.monotonic() + 60
        found = None
        while time.monotonic() < deadline:
            assert prom.poll() is None, log.read_text()
            try:
                resp = httpx.get(api, params={"query": 'loglens_records_ingested_total{service="batch"}'}, timeout=5)
                result = resp.json()["data"]["result"] if resp.status_code == 200 else []
            except httpx.HTTPError:
                result = []
            if result:
                found = result
                break
            time.sleep(0.5)
        assert found, f"Prometheus scraped nothing: {log.read_text()[-2000:]}"
        (series,) = found
        assert series["metric"]["job"] == "loglens" and series["metric"]["receiver"] == "http"
        assert float(series["value"][1]) == 30
        up = httpx.get(api, params={"query": 'up{job="loglens"}'}, timeout=5).json()["data"]["result"]
        assert up and up[0]["value"][1] == "1"
        for expr in dashboard_queries():  # every query of the Grafana dashboard is valid PromQL
            concrete = expr.replace("$__rate_interval", "1m").replace("$instance", ".*")
            answer = httpx.get(api, params={"query": concrete}, timeout=5).json()
            assert answer["status"] == "success", (expr, answer)
        ingest_rate = 'sum by (receiver) (rate(loglens_records_ingested_total{instance=~".*"}[1m]))'
        deadline = time.monotonic() + 20  # a rate needs two scrapes
        while not httpx.get(api, params={"query": ingest_rate}, timeout=5).json()["data"]["result"]:
            assert time.monotonic() < deadline, "no ingest rate from two scrapes"
            time.sleep(0.5)
    finally:
        if prom is not None:
            prom.terminate()
            try:
                prom.wait(timeout=20)
            except subprocess.TimeoutExpired:
                prom.kill()
                prom.wait()
        stop_server(srv)


def fake_runtime() -> Any:
    """What the metrics collector reads of a server: queue, store stats, socket receivers' stats."""
    syslog = type("SyslogReceiver", (), {"__module__": "loglens.ingest.syslog"})()
    syslog.stats = {"received": 9, "bytes": 120, "malformed": 2, "dropped_backpressure": 5}
    forward = type("ForwardReceiver", (), {"__module__": "loglens.ingest.forward"})()
    forward.stats = {"bytes": 50, "malformed": 0, "rejected_entries": 1}
    stats = StoreStats(records=7, bytes_on_disk=1000, first_timestamp=None, last_timestamp=None, services={},
                       templates=3, shards=1)
    return SimpleNamespace(pipeline=SimpleNamespace(queued=4), store=SimpleNamespace(stats=lambda: stats),
                           receivers=[syslog, forward])


def test_socket_receivers_and_store_gauges() -> None:
    metrics = Metrics()
    metrics.runtime = fake_runtime()
    metrics.ingest_bytes("http", 10)
    samples: Samples = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    assert value(samples, "loglens_ingest_bytes_total", receiver="syslog") == 120
    assert value(samples, "loglens_ingest_bytes_total", receiver="forward") == 50
    assert value(samples, "loglens_ingest_bytes_total", receiver="http") == 10
    assert value(samples, "loglens_records_rejected_total", receiver="syslog", reason="malformed") == 2
    assert value(samples, "loglens_records_rejected_total", receiver="syslog", reason="backpressure") == 5
    assert value(samples, "loglens_records_rejected_total", receiver="forward", reason="invalid_entry") == 1
    assert ("loglens_records_rejected_total", (("reason", "malformed"), ("receiver", "forward"))) not in samples
    assert value(samples, "loglens_queue_depth") == 4
    assert value(samples, "loglens_store_records") == 7
    assert value(samples, "loglens_store_bytes") == 1000
    assert value(samples, "loglens_templates") == 3
