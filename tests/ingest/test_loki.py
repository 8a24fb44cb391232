"""Loki push receiver: protobuf+snappy (messages compiled here from Loki's push.proto) and JSON."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from typing import Any

import cramjam
import orjson
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, timestamp_pb2
from hypothesis import given, settings
from hypothesis import strategies as st

from loglens.ingest.bodies import BodyError
from loglens.ingest.loki import PushError, decode_push, parse_labels, records_of
from tests.conftest import Server
from tests.ingest._receivers import count, module_server, search

_F = descriptor_pb2.FieldDescriptorProto

@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from module_server(tmp_path_factory)


def _compile_push_proto() -> Any:
    """Loki's ``pkg/push/push.proto`` as it is (string fields, google.protobuf.Timestamp), built with
    the descriptor API: independent of the receiver's own definitions."""
    pool = descriptor_pool.DescriptorPool()
    ts = descriptor_pb2.FileDescriptorProto()
    timestamp_pb2.DESCRIPTOR.CopyToProto(ts)
    pool.Add(ts)
    fd = descriptor_pb2.FileDescriptorProto(name="pkg/push/push.proto", package="logproto", syntax="proto3",
                                            dependency=["google/protobuf/timestamp.proto"])
    specs: dict[str, list[tuple[str, int, Any, Any, str]]] = {
        "PushRequest": [("streams", 1, _F.TYPE_MESSAGE, _F.LABEL_REPEATED, ".logproto.StreamAdapter")],
        "StreamAdapter": [("labels", 1, _F.TYPE_STRING, _F.LABEL_OPTIONAL, ""),
                          ("entries", 2, _F.TYPE_MESSAGE, _F.LABEL_REPEATED, ".logproto.EntryAdapter"),
                          ("hash", 3, _F.TYPE_UINT64, _F.LABEL_OPTIONAL, "")],
        "LabelPairAdapter": [("name", 1, _F.TYPE_STRING, _F.LABEL_OPTIONAL, ""),
                             ("value", 2, _F.TYPE_STRING, _F.LABEL_OPTIONAL, "")],
        "EntryAdapter": [("timestamp", 1, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, ".google.protobuf.Timestamp"),
                         ("line", 2, _F.TYPE_STRING, _F.LABEL_OPTIONAL, ""),
                         ("structuredMetadata", 3, _F.TYPE_MESSAGE, _F.LABEL_REPEATED, ".logproto.LabelPairAdapter")],
    }
    for name, fields in specs.items():
        msg = fd.message_type.add(name=name)
        for fname, number, ftype, label, type_name in fields:
            f = msg.field.add(name=fname, number=number, type=ftype, label=label)
            if type_name:
                f.type_name = type_name
    pool.Add(fd)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("logproto.PushRequest"))


PushRequest = _compile_push_proto()
BASE_NS = 1_763_881_200_000_000_000  # 2025-11-23T07:00:00Z


def protobuf_push(streams: list[tuple[str, list[tuple[int, str, dict[str, str]]]]]) -> bytes:
    req = PushRequest()
    for labels, entries in streams:
        s = req.streams.add(labels=labels)
        for ts, line, metadata in entries:
            e = s.entries.add(line=line)
            e.timestamp.seconds, e.timestamp.nanos = divmod(ts, 1_000_000_000)
            for k, v in metadata.items():
                e.structuredMetadata.add(name=k, value=v)
    return bytes(cramjam.snappy.compress_raw(req.SerializeToString()))


PB = {"Content-Type": "application/x-protobuf"}


def test_protobuf_snappy_push(server: Server) -> None:
    api = [(BASE_NS + i * 1_000_000, f"GET /orders/{i} 200 {i}ms", {"trace_id": f"t{i}"} if i % 2 else {})
           for i in range(300)]
    worker: list[tuple[int, str, dict[str, str]]] = [
        (BASE_NS + 5, '{"level":"error","msg":"job failed","job_id":42}', {}),
        (BASE_NS + 6, "2026-11-20 10:05:00,123 WARN [main] com.shop.Worker: slow", {})]
    body = protobuf_push([
        ('{job="pb-api", instance="web-1:9100", env="prod", quoted="a \\"b\\" \\u00e9"}', api),
        ('{service_name="pb-worker", job="ignored", hostname="worker-1"}', worker),
    ])
    with server.client() as c:
        r = c.post("/loki/api/v1/push", content=body, headers=PB)
        assert r.status_code == 204, r.text
        assert count(c, "service:pb-api") == 300
        assert count(c, "service:pb-api env:prod") == 300
        (rec,) = search(c, '"GET /orders/7 200"')
        assert rec["host"] == "web-1:9100" and rec["source"] == "loki"
        assert rec["timestamp"] == "2025-11-23T07:00:00.007000000Z"
        assert rec["attributes"] == {"job": "pb-api", "instance": "web-1:9100", "env": "prod",
                                     "quoted": 'a "b" é', "trace_id": "t7"}
        (job,) = search(c, '"job failed"')
        assert job["service"] == "pb-worker" and job["host"] == "worker-1" and job["level"] == "ERROR"
        assert job["attributes"]["job_id"] == 42
        assert job["timestamp"] == "2025-11-23T07:00:00.000000005Z"  # the entry's time, not the line's
        (slow,) = search(c, "com.shop.Worker")
        assert slow["level"] == "WARN" and slow["message"].endswith("slow")


def test_json_push_gzip_and_metadata(server: Server) -> None:
    push = {"streams": [
        {"stream": {"app": "js-app", "host": "h1", "region": "eu"},
         "values": [[str(BASE_NS + i), f"json line {i}"] for i in range(50)]
                   + [[str(BASE_NS + 99), "with metadata", {"user": "ann", "n": 1}]]},
        {"stream": {"job": "js-job"}, "values": [[str(BASE_NS), "ERROR something broke"]]},
    ]}
    with server.client() as c:
        r = c.post("/loki/api/v1/push", content=gzip.compress(orjson.dumps(push)),
                   headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
        assert r.status_code == 204, r.text
        assert count(c, "service:js-app") == 51
        (meta,) = search(c, '"with metadata"')
        assert meta["attributes"] == {"app": "js-app", "host": "h1", "region": "eu", "user": "ann", "n": "1"}
        assert meta["host"] == "h1"
        (err,) = search(c, "service:js-job")
        assert err["level"] == "ERROR"


def test_malformed_pushes_are_400_and_lose_nothing(server: Server) -> None:
    with server.client() as c:
        before = count(c, "")
        cases: list[tuple[bytes, dict[str, str], str]] = [
            (b'{"streams": [', {"Content-Type": "application/json"}, "not valid JSON"),
            (b'{"nope": 1}', {"Content-Type": "application/json"}, '"streams"'),
            (b"", {"Content-Type": "application/json"}, "empty body"),
            (b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", PB, "snappy"),
            (bytes(cramjam.snappy.compress_raw(b"\x0a\xff\xff\xff\x0f")), PB, "PushRequest"),
            (b"x" * 10, {"Content-Type": "application/json", "Content-Encoding": "gzip"}, "gzip"),
        ]
        for body, headers, reason in cases:
            r = c.post("/loki/api/v1/push", content=body, headers=headers)
            assert r.status_code == 400, (body, r.text)
            assert reason in r.text
        # a bad entry is refused by name; the good ones in the same push are stored
        push = {"streams": [
            {"stream": {"job": "partial"}, "values": [[str(BASE_NS), "good one"], ["yesterday", "bad ts"],
                                                      [str(BASE_NS), 42]]},
            {"stream": {"job": 7}, "values": [[str(BASE_NS), "bad labels"]]},
        ]}
        r = c.post("/loki/api/v1/push", content=orjson.dumps(push), headers={"Content-Type": "application/json"})
        assert r.status_code == 400
        assert "2 entries rejected, 2 stored" in r.text
        assert "invalid timestamp 'yesterday'" in r.text
        body = protobuf_push([("{job=partial-pb", [(BASE_NS, "lost", {})]),
                              ('{job="partial-pb"}', [(BASE_NS, "kept", {})])])
        r = c.post("/loki/api/v1/push", content=body, headers=PB)
        assert r.status_code == 400 and "invalid labels" in r.text
        assert count(c, '"good one"') == 1 and count(c, "kept") == 1 and count(c, "lost") == 0
        assert count(c, "") == before + 3  # "good one", "bad labels" (labels as strings) and "kept"


def test_parse_labels() -> None:
    assert parse_labels("{}") == {}
    assert parse_labels(' { a = "1" , b="x\\ny\\\\" , c=`raw\\n` } ') == {"a": "1", "b": "x\ny\\", "c": "raw\\n"}
    assert parse_labels('{a="\\x41\\u00e9\\U0001F600"}') == {"a": "Aé😀"}
    for bad in ("", "a=1", '{a="1"', '{a=1}', '{="1"}', '{a="1"} x', '{a="\\q"}', '{a="1" b="2"}'):
        with pytest.raises(ValueError):
            parse_labels(bad)


def test_legacy_json_form() -> None:
    body = {"streams": [{"labels": '{job="old"}', "entries": [{"ts": "2026-11-23T07:00:00Z", "line": "old form"}]}]}
    (rec,) = records_of(decode_push(orjson.dumps(body), "application/json"), received_ns=1)
    assert (rec.service, rec.message, rec.timestamp) == ("old", "old form", 1_795_417_200_000_000_000)


def test_records_keep_labels_and_time() -> None:
    push = decode_push(orjson.dumps({"streams": [{"stream": {"job": "j", "instance": "i"},
                                                  "values": [["5", "hello"]]}]}), "application/json")
    (rec,) = records_of(push, received_ns=10)
    assert (rec.timestamp, rec.observed_at, rec.service, rec.host) == (5, 10, "j", "i")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=1000), st.sampled_from(["application/json", "application/x-protobuf", ""]))
def test_fuzz_push_bytes(body: bytes, content_type: str) -> None:
    for data in (body, bytes(cramjam.snappy.compress_raw(body))):
        try:
            push = decode_push(data, content_type)
        except (PushError, BodyError):
            continue
        records_of(push, received_ns=1)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_fuzz_labels(text: str) -> None:
    try:
        labels = parse_labels(text)
    except ValueError:
        return
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items())


json_scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=10)
json_values = st.recursive(json_scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c,
                                                                                         max_size=3), max_leaves=10)
entries = st.lists(st.tuples(st.text("0123456789x", max_size=20), st.text(max_size=20)).map(list) | json_values,
                   max_size=4)
streams = st.lists(st.fixed_dictionaries({"stream": st.dictionaries(st.text(max_size=5), json_scalars, max_size=3)
                                          | json_values, "values": entries}) | json_values, max_size=3)


@settings(max_examples=300, deadline=None)
@given(streams)
def test_fuzz_push_json(value: list[object]) -> None:
    try:
        push = decode_push(orjson.dumps({"streams": value}), "application/json")
    except PushError:
        return
    records_of(push, received_ns=1)
