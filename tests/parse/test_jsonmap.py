"""record_from_json: common field names, Spring Boot layouts, flattening, defaults."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from loglens.model import Level, LogRecord
from loglens.parse import record_from_json

from .conftest import ns

RECEIVED = 1_700_000_000_000_000_000
STACK = "java.lang.IllegalStateException: boom\n\tat com.example.orders.OrderService.place(OrderService.java:42)"


def rec(obj: dict[str, Any], **kw: str) -> LogRecord:
    return record_from_json(obj, received_ns=RECEIVED, **kw)


def test_spring_boot_logstash_encoder() -> None:
    obj = {
        "@timestamp": "2024-01-15T10:00:00.123+01:00",
        "@version": "1",
        "message": "Order 42 failed",
        "logger_name": "com.example.orders.OrderService",
        "thread_name": "http-nio-8080-exec-3",
        "level": "ERROR",
        "level_value": 40000,
        "stack_trace": STACK,
    }
    r = rec(obj, service="orders-svc", host="node-1", source="tcp")
    assert r.timestamp == ns(2024, 1, 15, 10, 0, 0, frac_ns=123_000_000, offset_min=60)
    assert r.level is Level.ERROR
    assert r.message == "Order 42 failed\n" + STACK
    assert r.service == "orders-svc"  # the batch names the service; the logger never overrides it
    assert r.host == "node-1"
    assert r.source == "tcp"
    assert r.header == ""
    assert r.observed_at == RECEIVED
    assert r.trace_id == ""
    assert r.attributes == {
        "@version": "1",
        "logger_name": "com.example.orders.OrderService",
        "thread_name": "http-nio-8080-exec-3",
        "level_value": 40000,
        "stack_trace": STACK,
    }


def test_spring_boot_ecs_structured_logging() -> None:
    raw = (
        b'{"@timestamp":"2024-11-02T09:15:30.123456Z","log.level":"WARN","process.pid":4242,'
        b'"process.thread.name":"main","service.name":"billing","service.version":"1.2.0",'
        b'"log.logger":"com.example.billing.Invoices","message":"Invoice overdue",'
        b'"error.type":"java.io.IOException","error.message":"disk",'
        b'"error.stack_trace":"java.io.IOException: disk\\n\\tat x.Y.z(Y.java:1)",'
        b'"ecs.version":"8.11","trace.id":"4bf92f3577b34da6a3ce929d0e0e4736"}'
    )
    r = rec(orjson.loads(raw), service="default-svc")
    assert r.timestamp == ns(2024, 11, 2, 9, 15, 30, frac_ns=123_456_000)
    assert r.level is Level.WARN
    assert r.service == "billing"
    assert r.message == "Invoice overdue\njava.io.IOException: disk\n\tat x.Y.z(Y.java:1)"
    assert r.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert r.attributes == {
        "process.pid": 4242,
        "process.thread.name": "main",
        "service.version": "1.2.0",
        "log.logger": "com.example.billing.Invoices",
        "error.type": "java.io.IOException",
        "error.message": "disk",
        "error.stack_trace": "java.io.IOException: disk\n\tat x.Y.z(Y.java:1)",
        "ecs.version": "8.11",
    }


def test_nested_ecs_objects_match_dotted_names() -> None:
    obj = {
        "@timestamp": "2024-01-15T10:00:00Z",
        "log": {"level": "error", "logger": "a.b.C", "origin": {"file": {"line": 12}}},
        "service": {"name": "api", "environment": "prod"},
        "host": {"name": "web-3", "ip": ["10.0.0.3", "fe80::1"]},
        "trace": {"id": "t-1"},
        "message": "x",
        "tags": ["a", "b"],
        "empty": {},
    }
    r = rec(obj)
    assert (r.level, r.service, r.host, r.trace_id, r.message) == (Level.ERROR, "api", "web-3", "t-1", "x")
    assert r.attributes == {
        "log.logger": "a.b.C",
        "log.origin.file.line": 12,
        "service.environment": "prod",
        "host.ip": ["10.0.0.3", "fe80::1"],
        "tags": ["a", "b"],
        "empty": {},
    }


def test_flat_dotted_and_nested_are_equivalent() -> None:
    a = rec({"log.level": "warn", "msg": "m", "ts": 1700000000})
    b = rec({"log": {"level": "warn"}, "msg": "m", "ts": 1700000000})
    assert a == b
    assert a.level is Level.WARN and a.timestamp == ns(2023, 11, 14, 22, 13, 20)


def test_first_present_wins() -> None:
    r = rec({"time": "2024-01-15T10:00:00Z", "@timestamp": "2020-01-01T00:00:00Z", "message": "m", "msg": "n"})
    assert r.timestamp == ns(2020, 1, 1)
    assert r.attributes == {"time": "2024-01-15T10:00:00Z", "msg": "n"}
    assert r.message == "m"


def test_attributes_keep_types() -> None:
    r = rec({"msg": "m", "n": 1, "f": 1.5, "b": True, "z": None, "l": [1, {"a": 2}], "o": {"p": {"q": "r"}}})
    assert r.attributes == {"n": 1, "f": 1.5, "b": True, "z": None, "l": [1, {"a": 2}], "o.p.q": "r"}


def test_missing_timestamp_uses_received() -> None:
    r = rec({"msg": "m"})
    assert r.timestamp == RECEIVED
    assert "timestamp_original" not in r.attributes


@pytest.mark.parametrize("bad", ["yesterday", "", [1, 2], True, "2024-13-45T99:00:00Z"])
def test_unparseable_timestamp_kept(bad: Any) -> None:
    r = rec({"timestamp": bad, "msg": "m"})
    assert r.timestamp == RECEIVED
    assert r.attributes == {"timestamp_original": bad}


def test_numeric_timestamps() -> None:
    assert rec({"ts": 1700000000123, "msg": "m"}).timestamp == ns(2023, 11, 14, 22, 13, 20, frac_ns=123_000_000)
    assert rec({"time": 1700000000.25, "msg": "m"}).timestamp == ns(2023, 11, 14, 22, 13, 20, frac_ns=250_000_000)
    assert rec({"timeUnixNano": "1700000000123456789", "body": "m"}).timestamp == 1700000000123456789


def test_non_string_message_is_compact_json() -> None:
    assert rec({"message": {"a": 1, "b": [1, 2]}}).message == '{"a":1,"b":[1,2]}'
    assert rec({"msg": 42}).message == "42"
    r = rec({"message": {"a": {"b": 1}}, "x": 1})
    assert r.attributes == {"x": 1}


def test_no_message_field_uses_whole_object() -> None:
    obj = {"user": "bob", "action": "login", "ok": True}
    r = rec(obj)
    assert r.message == '{"user":"bob","action":"login","ok":true}'
    assert r.attributes == obj


def test_log_and_event_objects_are_namespaces() -> None:
    r = rec({"event": {"dataset": "nginx.access"}, "log": {"level": "info"}, "message": "GET /"})
    assert r.message == "GET /"
    assert r.level is Level.INFO
    assert r.attributes == {"event.dataset": "nginx.access"}


def test_docker_json_file_line() -> None:
    r = rec({"log": "WARN: low disk\n", "stream": "stderr", "time": "2024-01-15T10:00:00.123456789Z"})
    assert r.message == "WARN: low disk"
    assert r.timestamp == ns(2024, 1, 15, 10, frac_ns=123_456_789)
    assert r.level is Level.WARN  # detected in the message
    assert r.attributes == {"stream": "stderr"}


def test_structlog_event() -> None:
    r = rec({"event": "user logged in", "level": "info", "timestamp": "2024-01-15T10:00:00Z", "user": 7})
    assert (r.message, r.level, r.attributes) == ("user logged in", Level.INFO, {"user": 7})


def test_level_absent_is_detected_in_message() -> None:
    assert rec({"msg": "ERROR cannot connect"}).level is Level.ERROR
    assert rec({"msg": "no error found"}).level is Level.UNKNOWN


def test_otel_severity() -> None:
    r = rec({"severity_number": 13, "severity_text": "", "body": "x"})
    assert r.level is Level.WARN
    assert r.attributes == {"severity_text": ""}
    assert rec({"severityNumber": 17, "body": "x"}).level is Level.ERROR
    assert rec({"severity_text": "INFO3", "severity_number": 11, "body": "x"}).level is Level.INFO


def test_numeric_and_odd_levels() -> None:
    assert rec({"level": 30, "msg": "pino"}).level is Level.INFO
    assert rec({"level": 50, "msg": "pino"}).level is Level.ERROR
    assert rec({"levelname": "WARNING", "msg": "python"}).level is Level.WARN
    assert rec({"severity": "CRITICAL", "msg": "gcp"}).level is Level.FATAL
    r = rec({"level": "purple", "msg": "m"})  # not a level: kept, and the message has none
    assert r.level is Level.UNKNOWN and r.attributes == {"level": "purple"}
    r = rec({"level": "purple", "level_value": 20000, "msg": "m"})
    assert r.level is Level.INFO and r.attributes == {"level": "purple"}


def test_service_precedence() -> None:
    assert rec({"msg": "m", "app": "a1"}, service="batch").service == "a1"
    assert rec({"msg": "m", "logger": "x.Y"}, service="batch").service == "batch"
    r = rec({"msg": "m", "logger_name": "x.Y"})
    assert r.service == "x.Y"  # last resort only
    assert r.attributes == {"logger_name": "x.Y"}
    assert rec({"msg": "m", "service": {"name": "s"}, "application": "a"}).service == "s"


def test_host_and_trace() -> None:
    r = rec({"msg": "m", "hostname": "h2", "traceId": "abc"}, host="batch-host")
    assert (r.host, r.trace_id, r.attributes) == ("h2", "abc", {})
    assert rec({"msg": "m"}, host="batch-host").host == "batch-host"
    assert rec({"msg": "m", "host": 12}).host == "12"


def test_stack_trace_not_duplicated_when_already_in_message() -> None:
    r = rec({"message": "boom\njava.lang.X: y", "stack_trace": "java.lang.X: y"})
    assert r.message == "boom\njava.lang.X: y"


def test_type_error() -> None:
    with pytest.raises(TypeError):
        record_from_json([1], received_ns=1)  # type: ignore[arg-type]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
keys = st.sampled_from(
    ["message", "msg", "log", "event", "level", "severity", "time", "ts", "@timestamp", "host", "service",
     "logger_name", "trace_id", "stack_trace", "severity_number", "level_value", "x", "a.b"]
)  # fmt: skip


@given(st.dictionaries(st.one_of(keys, st.text(max_size=6)), json_values, max_size=8))
def test_record_from_json_never_raises(obj: dict[str, Any]) -> None:
    r = rec(obj)
    assert isinstance(r.message, str)
    assert isinstance(r.timestamp, int)
    assert isinstance(r.level, Level)


def test_objects_with_the_same_keys_map_by_their_own_values() -> None:
    """The best key of each role is remembered per key set; values that cannot fill a role still
    fall through to the next candidate, object by object."""
    keys = ("level", "severity", "service", "app", "host", "hostname", "trace_id", "traceId", "msg")
    first = rec(dict(zip(keys, ("INFO", "error", "a", "b", "h", "h2", "t", "t2", "m"), strict=True)))
    assert (first.level, first.service, first.host, first.trace_id) == (Level.INFO, "a", "h", "t")
    second = rec(dict(zip(keys, ("purple", "error", "", "b", 12, "h2", None, "t2", "m"), strict=True)))
    assert (second.level, second.service, second.host, second.trace_id) == (Level.ERROR, "b", "12", "t2")
    assert second.attributes == {"level": "purple", "service": "", "hostname": "h2", "trace_id": None}


@given(st.lists(st.one_of(keys, st.text(max_size=6)), unique=True, max_size=8),
       st.lists(json_values, min_size=8, max_size=8), st.lists(json_values, min_size=8, max_size=8))
def test_mapping_does_not_depend_on_objects_seen_before(names: list[str], first: list[Any],
                                                       second: list[Any]) -> None:
    import loglens.parse.jsonmap as jsonmap

    a, b = dict(zip(names, first, strict=False)), dict(zip(names, second, strict=False))
    jsonmap._BEST_KEYS.clear()
    fresh = rec(b)
    rec(a)
    assert rec(b) == fresh
