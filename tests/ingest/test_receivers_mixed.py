"""Several clients at once on the three HTTP receivers, with garbage sent in between: every good
record is stored exactly once and the server keeps answering."""

from __future__ import annotations

import os
import random
import threading
from collections.abc import Callable, Iterator

import cramjam
import httpx
import orjson
import pytest

from tests.conftest import Server
from tests.ingest._receivers import count, module_server, need

need("elasticsearch", "the Elasticsearch receiver is tested with the official client")

from elasticsearch import Elasticsearch, helpers  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from module_server(tmp_path_factory)


def test_concurrent_clients_and_garbage(server: Server) -> None:
    errors: list[BaseException] = []

    def elastic(worker: int) -> None:
        es = Elasticsearch(server.url, request_timeout=60)
        docs = ({"_index": f"mixed-es-{worker}", "_source": {"message": f"es {worker} doc {i}"}} for i in range(300))
        ok, failed = helpers.bulk(es, docs, chunk_size=100, raise_on_error=False)
        assert ok == 300 and not failed

    def loki(worker: int) -> None:
        with httpx.Client(base_url=server.url, timeout=60) as c:
            for batch in range(3):
                values = [[str(1_700_000_000_000_000_000 + i), f"loki {worker} line {batch}-{i}"] for i in range(100)]
                push = {"streams": [{"stream": {"job": f"mixed-loki-{worker}"}, "values": values}]}
                r = c.post("/loki/api/v1/push", content=orjson.dumps(push),
                           headers={"Content-Type": "application/json"})
                assert r.status_code == 204, r.text

    def otlp(worker: int) -> None:
        with httpx.Client(base_url=server.url, timeout=60) as c:
            for batch in range(3):
                records = [{"body": {"stringValue": f"otlp {worker} rec {batch}-{i}"}} for i in range(100)]
                body = {"resourceLogs": [{"resource": {"attributes": [
                    {"key": "service.name", "value": {"stringValue": f"mixed-otlp-{worker}"}}]},
                    "scopeLogs": [{"logRecords": records}]}]}
                r = c.post("/v1/logs", content=orjson.dumps(body), headers={"Content-Type": "application/json"})
                assert r.status_code == 200 and r.json() == {}, r.text

    def garbage(worker: int) -> None:
        rng = random.Random(worker)
        with httpx.Client(base_url=server.url, timeout=60) as c:
            for _ in range(30):
                junk = os.urandom(rng.randrange(1, 400))
                for path, ctype in (("/_bulk", "application/x-ndjson"), ("/loki/api/v1/push", "application/x-protobuf"),
                                    ("/loki/api/v1/push", "application/json"), ("/v1/logs", "application/x-protobuf"),
                                    ("/v1/logs", "application/json")):
                    data = bytes(cramjam.snappy.compress_raw(junk)) if "loki" in path and rng.random() < 0.5 else junk
                    r = c.post(path, content=data, headers={"Content-Type": ctype})
                    assert r.status_code in (200, 204, 400, 413), (path, r.status_code, r.text)

    def run(target: Callable[[int], None], worker: int) -> None:
        try:
            target(worker)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(fn, w)) for fn in (elastic, loki, otlp, garbage) for w in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    with server.client() as c:
        for w in range(2):
            assert count(c, f"service:mixed-es-{w}") == 300
            assert count(c, f"service:mixed-loki-{w}") == 300
            assert count(c, f"service:mixed-otlp-{w}") == 300
        assert c.get("/readyz").status_code == 200
