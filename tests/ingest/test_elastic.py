"""Elasticsearch ``_bulk`` receiver, end to end with the official Python client, plus its decoder."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loglens.ingest.elastic import parse_bulk, service_of_index
from tests.conftest import Server
from tests.ingest._receivers import count, module_server, need, search

need("elasticsearch", "the Elasticsearch receiver is tested with the official client")

from elasticsearch import Elasticsearch, helpers  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from module_server(tmp_path_factory)


def ndjson(*objs: object) -> bytes:
    return b"".join(orjson.dumps(o) + b"\n" for o in objs)


def test_client_handshake_and_bulk(server: Server) -> None:
    es = Elasticsearch(server.url, request_timeout=30)
    info = es.info()
    assert info["version"]["number"].startswith("8.")
    assert info["tagline"] == "You Know, for Search"
    assert es.cluster.health()["status"] == "green"
    assert es.indices.exists(index="orders-2026.11.23")

    actions: list[dict[str, object]] = []
    for i in range(600):
        doc = {"@timestamp": f"2026-11-23T07:{i // 60:02d}:{i % 60:02d}Z", "message": f"order {i} shipped",
               "log": {"level": "WARN" if i % 10 == 0 else "INFO"}, "order": {"id": i}}
        action: dict[str, object] = {"_index": "orders-2026.11.23", "_source": doc}
        if i % 2:
            action["_id"] = f"order-{i}"
        if i % 3 == 0:
            action["_op_type"] = "create"
        actions.append(action)
    actions.insert(250, {"_index": "orders-2026.11.23", "_id": "bad", "_source": [1, 2, 3]})  # not an object
    actions.insert(400, {"_op_type": "delete", "_index": "orders-2026.11.23", "_id": "order-1"})
    ok, errors = helpers.bulk(es, actions, chunk_size=250, raise_on_error=False)
    assert ok == 600
    assert isinstance(errors, list) and len(errors) == 2
    kinds = sorted((next(iter(e)), next(iter(e.values()))["status"]) for e in errors)
    assert kinds == [("delete", 400), ("index", 400)]

    with server.client() as c:
        assert count(c, "service:orders") == 600
        assert count(c, 'index:"orders-2026.11.23"') == 600
        assert count(c, "service:orders level:WARN") == 60
        for i in (1, 3, 599):  # given ids are kept, each record once
            (rec,) = search(c, f"_id:order-{i}")
            assert rec["message"] == f"order {i} shipped"
            attrs = rec["attributes"]
            assert isinstance(attrs, dict)
            assert attrs["order.id"] == i and attrs["index"] == "orders-2026.11.23"
            assert rec["source"] == "elastic" and rec["level"] == "INFO"
        (rec,) = search(c, '"order 598 shipped"')
        assert rec["timestamp"] == "2026-11-23T07:09:58.000000000Z"
        attrs = rec["attributes"]
        assert isinstance(attrs, dict) and len(str(attrs["_id"])) == 20  # generated like Elasticsearch's


def test_single_document_index_api(server: Server) -> None:
    es = Elasticsearch(server.url, request_timeout=30)
    resp = es.index(index="single", id="one", document={"message": "single document", "service": "svc-single"})
    assert resp["result"] == "created" and resp["_id"] == "one"
    gz = Elasticsearch(server.url, request_timeout=30, http_compress=True)  # gzip request bodies
    resp = gz.bulk(operations=[{"create": {"_index": "gz-2026.11.23"}}, {"message": "compressed bulk"}])
    assert resp["errors"] is False and resp["items"][0]["create"]["status"] == 201
    with server.client() as c:
        (rec,) = search(c, "service:svc-single")
        assert rec["attributes"] == {"index": "single", "_id": "one"}
        (gzrec,) = search(c, "service:gz")
        assert gzrec["message"] == "compressed bulk"


def test_raw_bulk_items_in_order_gzip_and_handshake(server: Server) -> None:
    body = ndjson(
        {"index": {"_id": "r1"}}, {"message": "raw one", "service": "raw-svc", "index": 7},
        {"update": {"_id": "r1"}}, {"doc": {"message": "x"}},
        "not an action", {"message": "orphan source"},
        {"create": {}}, {"message": "raw two", "service": "raw-svc"},
        {"index": {}},
    ) + b'{"message": broken json\n'
    with server.client() as c:
        r = c.post("/logs-nginx.access-default/_bulk", content=gzip.compress(body),
                   headers={"Content-Type": "application/x-ndjson", "Content-Encoding": "gzip"})
        assert r.status_code == 200, r.text
        assert r.headers["X-Elastic-Product"] == "Elasticsearch"
        out = r.json()
        assert out["errors"] is True
        items = out["items"]
        assert [next(iter(i)) for i in items] == ["index", "update", "index", "create", "index"]
        statuses = [next(iter(i.values()))["status"] for i in items]
        assert statuses == [201, 400, 400, 201, 400]
        assert items[4]["index"]["error"]["type"] == "mapper_parsing_exception"
        assert items[0]["index"]["_id"] == "r1" and items[0]["index"]["result"] == "created"
        assert count(c, "service:raw-svc") == 2
        (one,) = search(c, '"raw one"')
        assert one["attributes"] == {"index": 7, "_index": "logs-nginx.access-default", "_id": "r1"}
        assert count(c, '"orphan source"') == 0

        # bulk without any index: an item error, not a crash
        r = c.post("/_bulk", content=ndjson({"index": {}}, {"message": "nowhere"}))
        assert r.json()["items"][0]["index"]["error"]["type"] == "action_request_validation_exception"
        r = c.post("/_bulk", content=b"")
        assert r.status_code == 400 and r.json()["error"]["type"] == "action_request_validation_exception"
        r = c.post("/_bulk", content=b"\x1f\x8bnot gzip", headers={"Content-Encoding": "gzip"})
        assert r.status_code == 400 and r.json()["status"] == 400

        # what Filebeat, Logstash and Vector ask before their first bulk
        assert c.get("/_license").json()["license"]["status"] == "active"
        assert c.get("/_xpack").json()["features"]["ilm"]["available"] is True
        assert c.head("/filebeat-8.11.0").status_code == 200
        assert c.get("/_index_template/filebeat-8.11.0").status_code == 200
        assert c.put("/_index_template/filebeat-8.11.0", json={"index_patterns": ["x-*"]}).json()["acknowledged"]
        assert c.put("/_template/logstash", json={}).json()["acknowledged"]
        assert c.put("/_ilm/policy/filebeat", json={"policy": {}}).json()["acknowledged"]
        assert c.get("/_ilm/policy/filebeat").status_code == 200
        assert c.get("/_data_stream/logs-generic-default").json()["data_streams"][0]["name"]
        nodes = c.get("/_nodes/http").json()
        assert next(iter(nodes["nodes"].values()))["http"]["publish_address"]
        assert c.get("/_cat/indices").json() == []
        r = c.post("/orders/_search", json={})
        assert r.status_code == 400 and "/api/v1/search" in r.json()["error"]["reason"]
        for path in ("/", "/_license", "/_cluster/health"):
            assert c.get(path).headers["X-Elastic-Product"] == "Elasticsearch"
        # LogLens's own endpoints are untouched by the Elasticsearch routes
        assert c.get("/healthz").json() == {"status": "ok"}
        assert c.get("/openapi.json").status_code == 200


def test_service_of_index() -> None:
    assert service_of_index("filebeat-8.11.0-2026.11.23") == "filebeat"
    assert service_of_index("filebeat-8.11.0") == "filebeat"
    assert service_of_index("logstash-2026.11.23-000001") == "logstash"
    assert service_of_index("vector-2026.11.23") == "vector"
    assert service_of_index("logs-nginx.access-default") == "nginx.access"
    assert service_of_index("fluent-bit") == "fluent-bit"
    assert service_of_index("2026.11.23") == "2026.11.23"


def test_parse_bulk_one_item_per_action() -> None:
    body = ndjson({"index": {"_index": "a"}}, {"msg": "x"}, {"delete": {"_index": "a", "_id": "1"}},
                  {"create": {"_index": "b", "_id": "2"}}, {"msg": "y"})
    bulk = parse_bulk(body, received_ns=1)
    assert [(i.action, i.index, i.error is None) for i in bulk.items] == [
        ("index", "a", True), ("delete", "a", False), ("create", "b", True)]
    assert [r.message for r in bulk.records] == ["x", "y"]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_fuzz_bulk_bytes(body: bytes) -> None:
    bulk = parse_bulk(body, "idx", received_ns=1)
    for item in bulk.items:
        assert (item.document is None) != (item.error is None)


json_scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=20)
json_values = st.recursive(json_scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c,
                                                                                         max_size=4), max_leaves=12)
actions = st.sampled_from(["index", "create", "delete", "update", "other"]).flatmap(
    lambda a: st.fixed_dictionaries({a: st.dictionaries(st.sampled_from(["_index", "_id", "x"]), json_scalars,
                                                        max_size=3)}))


@settings(max_examples=300, deadline=None)
@given(st.lists(actions | json_values, max_size=10))
def test_fuzz_bulk_json_lines(lines: list[object]) -> None:
    body = b"\n".join(orjson.dumps(x, option=orjson.OPT_NON_STR_KEYS) for x in lines)
    bulk = parse_bulk(body, "idx", received_ns=1)
    assert len(bulk.items) <= len(lines)
    for item in bulk.items:
        assert item.status in (201, 400)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["index", "message", "index.x", "msg", "a", "log"]), json_values, max_size=4))
def test_index_attribute_named_as_the_mapped_document_requires(doc: dict[str, Any]) -> None:
    """The index attribute is chosen before the worker maps the document: ``_index`` exactly when
    the mapped record has an ``index`` attribute of its own (which it keeps)."""
    from loglens.ingest.elastic import _document
    from loglens.parse import record_from_json
    from loglens.worker import record_from_mapped

    own = record_from_json(dict(doc), received_ns=1).attributes
    expected = "_index" if "index" in own else "index"
    rec = record_from_mapped(_document(dict(doc), "logs-app", "id1"), 1)
    assert rec.attributes[expected] == "logs-app" and rec.attributes["_id"] == "id1"
    if expected == "_index":
        assert rec.attributes["index"] == own["index"]
