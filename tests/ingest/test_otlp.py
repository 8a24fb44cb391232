"""OTLP logs over HTTP, end to end with the OpenTelemetry SDK's exporter, raw JSON, and fuzzing."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loglens.ingest.otlp import OtlpError, decode_logs
from tests.conftest import Server
from tests.ingest._receivers import count, module_server, need, search

need("opentelemetry.sdk", "the OTLP receiver is tested with the OpenTelemetry SDK")
need("opentelemetry.exporter.otlp.proto.http", "the OTLP receiver is tested with the SDK's OTLP/HTTP exporter")

from opentelemetry import trace  # noqa: E402
from opentelemetry._logs import SeverityNumber  # noqa: E402
from opentelemetry.exporter.otlp.proto.http import Compression  # noqa: E402
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter  # noqa: E402
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (  # noqa: E402
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler  # noqa: E402
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor  # noqa: E402
from opentelemetry.sdk.resources import Resource  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from module_server(tmp_path_factory)


TS = 1_763_881_200_123_000_000  # 2025-11-23T07:00:00.123Z
TRACE_ID = 0x5B8EFFF798038103D269B633813FC60C
SPAN_ID = 0xEEE19B7EC3C1B174


def _span_context() -> Any:
    ctx = trace.SpanContext(trace_id=TRACE_ID, span_id=SPAN_ID, is_remote=False,
                            trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED))
    return trace.set_span_in_context(trace.NonRecordingSpan(ctx))


@pytest.mark.filterwarnings("ignore:.*LoggingHandler.*:DeprecationWarning")
@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip])
def test_sdk_exporter(server: Server, compression: Compression) -> None:
    service = f"checkout-{compression.value}"
    provider = LoggerProvider(resource=Resource.create(
        {"service.name": service, "host.name": "pod-7", "deployment.environment": "prod"}))
    exporter = OTLPLogExporter(endpoint=server.url + "/v1/logs", compression=compression, timeout=30)
    provider.add_log_record_processor(BatchLogRecordProcessor(exporter, max_export_batch_size=128))
    otel = provider.get_logger("shop.checkout", "1.2.3")
    for i in range(300):
        otel.emit(timestamp=TS + i, severity_number=SeverityNumber.INFO if i % 3 else SeverityNumber.WARN,
                  severity_text="INFO" if i % 3 else "WARN", body=f"cart {i} checked out",
                  attributes={"cart.id": i, "user": {"tier": "gold"}, "tags": ["a", "b"]})
    otel.emit(timestamp=TS, severity_number=SeverityNumber.ERROR, context=_span_context(),
              body={"message": "payment declined", "code": 402, "card": {"brand": "visa"}},
              event_name="payment.failed")
    handler = LoggingHandler(level=logging.DEBUG, logger_provider=provider)
    std = logging.getLogger(f"loglens.test.{service}")
    std.propagate = False
    std.addHandler(handler)
    std.error("stdlib says %s", "boom")
    assert provider.force_flush(30_000)
    provider.shutdown()

    with server.client() as c:
        assert count(c, f"service:{service}") == 302
        assert count(c, f"service:{service} level:WARN") == 100
        (rec,) = search(c, f'service:{service} "cart 7 checked"')
        assert rec["host"] == "pod-7" and rec["level"] == "INFO" and rec["source"] == "otlp"
        assert rec["timestamp"] == "2025-11-23T07:00:00.123000007Z"
        attrs = rec["attributes"]
        assert isinstance(attrs, dict)
        assert attrs["cart.id"] == 7 and attrs["user.tier"] == "gold" and attrs["tags"] == ["a", "b"]
        assert attrs["deployment.environment"] == "prod" and attrs["otel.scope.name"] == "shop.checkout"
        assert attrs["otel.scope.version"] == "1.2.3" and attrs["telemetry.sdk.language"] == "python"
        assert "service.name" not in attrs and "host.name" not in attrs
        (pay,) = search(c, f'service:{service} "payment declined"')
        assert pay["level"] == "ERROR" and pay["trace_id"] == f"{TRACE_ID:032x}"
        attrs = pay["attributes"]
        assert isinstance(attrs, dict)
        assert attrs["span_id"] == f"{SPAN_ID:016x}" and attrs["code"] == 402 and attrs["card.brand"] == "visa"
        assert attrs["event.name"] == "payment.failed"
        (std_rec,) = search(c, f'service:{service} "stdlib says boom"')
        assert std_rec["level"] == "ERROR"


def otlp_json(records: list[dict[str, Any]], service: str = "json-svc") -> dict[str, Any]:
    return {"resourceLogs": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}},
                                    {"key": "k8s.pod.uid", "value": {"stringValue": "uid-1"}}]},
        "scopeLogs": [{"scope": {"name": "raw.scope"}, "logRecords": records}],
    }]}


def test_raw_json_and_partial_success(server: Server) -> None:
    records: list[dict[str, Any]] = [
        {"timeUnixNano": str(TS), "severityNumber": 17, "body": {"stringValue": "json error one"},
         "traceId": f"{TRACE_ID:032x}", "spanId": f"{SPAN_ID:016x}",
         "attributes": [{"key": "n", "value": {"intValue": "12"}}, {"key": "ok", "value": {"boolValue": True}},
                        {"key": "ratio", "value": {"doubleValue": 0.5}},
                        {"key": "raw", "value": {"bytesValue": "AQI="}},
                        {"key": "list", "value": {"arrayValue": {"values": [{"intValue": 1}, {"stringValue": "x"}]}}},
                        {"key": "map",
                         "value": {"kvlistValue": {"values": [{"key": "a", "value": {"intValue": 2}}]}}}]},
        {"observedTimeUnixNano": TS + 5, "severityNumber": "SEVERITY_NUMBER_WARN", "severityText": "Warning",
         "body": {"kvlistValue": {"values": [{"key": "msg", "value": {"stringValue": "json structured two"}},
                                            {"key": "user", "value": {"stringValue": "ann"}}]}}},
        {"body": {"stringValue": "2026-11-20 10:05:00,123 ERROR [main] com.shop.Api: json raw line three"}},
        {"body": {"intValue": "99"}, "severityText": "debug"},
        {"timeUnixNano": str(TS), "body": {"stringValue": "bad trace"}, "traceId": "abc"},
        {"timeUnixNano": "soon", "body": {"stringValue": "bad time"}},
    ]
    with server.client() as c:
        r = c.post("/v1/logs", content=orjson.dumps(otlp_json(records)), headers={"Content-Type": "application/json"})
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/json"
        partial = r.json()["partialSuccess"]
        assert partial["rejectedLogRecords"] == "2"
        assert "traceId" in partial["errorMessage"] and "timeUnixNano" in partial["errorMessage"]
        assert count(c, "service:json-svc") == 4
        (one,) = search(c, '"json error one"')
        assert one["level"] == "ERROR" and one["trace_id"] == f"{TRACE_ID:032x}"
        assert one["timestamp"] == "2025-11-23T07:00:00.123000000Z"
        assert one["attributes"] == {"k8s.pod.uid": "uid-1", "otel.scope.name": "raw.scope", "n": 12, "ok": True,
                                     "ratio": 0.5, "raw": "AQI=", "list": [1, "x"], "map.a": 2,
                                     "span_id": f"{SPAN_ID:016x}"}
        (two,) = search(c, '"json structured two"')
        assert two["level"] == "WARN" and two["timestamp"] == "2025-11-23T07:00:00.123000005Z"
        assert two["attributes"]["user"] == "ann"
        (three,) = search(c, '"json raw line three"')
        assert three["level"] == "ERROR" and three["timestamp"].startswith("2026-11-20T10:05:00.123")
        (four,) = search(c, "service:json-svc level:DEBUG")
        assert four["message"] == "99"


def test_protobuf_partial_success_and_errors(server: Server) -> None:
    req = ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    rl.resource.attributes.add(key="service.name").value.string_value = "pb-svc"
    sl = rl.scope_logs.add()
    good = sl.log_records.add(time_unix_nano=TS, severity_number=9)
    good.body.string_value = "protobuf good"
    bad = sl.log_records.add(time_unix_nano=TS, trace_id=b"\x01\x02")
    bad.body.string_value = "protobuf bad"
    with server.client() as c:
        before = count(c, "")
        r = c.post("/v1/logs", content=req.SerializeToString(), headers={"Content-Type": "application/x-protobuf"})
        assert r.status_code == 200
        resp = ExportLogsServiceResponse.FromString(r.content)
        assert resp.partial_success.rejected_log_records == 1
        assert "traceId must be 16 bytes" in resp.partial_success.error_message
        assert count(c, "service:pb-svc") == 1

        from google.rpc import status_pb2

        r = c.post("/v1/logs", content=b"\x0a\xff\xff\xff\x0f", headers={"Content-Type": "application/x-protobuf"})
        assert r.status_code == 400
        status = status_pb2.Status.FromString(r.content)
        assert status.code == 3 and "ExportLogsServiceRequest" in status.message
        r = c.post("/v1/logs", content=b'{"resourceLogs": [', headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and "not valid JSON" in r.json()["message"]
        r = c.post("/v1/logs", content=b'{"resourceLogs": {}}', headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and "must be an array" in r.json()["message"]
        r = c.post("/v1/logs", content=b"x", headers={"Content-Type": "text/plain"})
        assert r.status_code == 415
        r = c.post("/v1/logs", content=b"garbage", headers={"Content-Type": "application/json",
                                                            "Content-Encoding": "gzip"})
        assert r.status_code == 400 and "gzip" in r.json()["message"]
        import zstandard

        r = c.post("/v1/logs", content=zstandard.ZstdCompressor().compress(req.SerializeToString()),
                   headers={"Content-Type": "application/x-protobuf", "Content-Encoding": "zstd"})
        assert r.status_code == 200
        assert c.post("/v1/traces", content=b"", headers={"Content-Type": "application/x-protobuf"}).status_code == 404
        assert count(c, "") == before + 2


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=1000), st.sampled_from(["json", "protobuf"]))
def test_fuzz_decode_bytes(body: bytes, kind: str) -> None:
    with contextlib.suppress(OtlpError):
        decode_logs(body, kind, received_ns=1)


scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=8) | st.floats()
any_values = st.recursive(
    st.fixed_dictionaries({}, optional={"stringValue": scalars, "intValue": scalars, "boolValue": scalars,
                                        "doubleValue": scalars, "bytesValue": scalars}),
    lambda c: st.fixed_dictionaries({"arrayValue": st.fixed_dictionaries({"values": st.lists(c, max_size=3)})})
    | st.fixed_dictionaries({"kvlistValue": st.fixed_dictionaries({"values": st.lists(
        st.fixed_dictionaries({"key": st.text(max_size=5) | scalars, "value": c}), max_size=3)})}),
    max_leaves=8,
)
log_records = st.fixed_dictionaries({}, optional={
    "timeUnixNano": scalars, "observedTimeUnixNano": scalars,
    "severityNumber": scalars | st.just("SEVERITY_NUMBER_INFO"), "severityText": scalars,
    "body": any_values | scalars, "traceId": st.text("0123456789abcdef", max_size=34),
    "spanId": scalars, "eventName": scalars,
    "attributes": st.lists(st.fixed_dictionaries({"key": st.text(max_size=5), "value": any_values}), max_size=3),
})


@settings(max_examples=300, deadline=None)
@given(st.lists(log_records, max_size=5), st.text(max_size=5) | scalars)
def test_fuzz_decode_json(records: list[dict[str, Any]], service: Any) -> None:
    body = otlp_json(records, "svc")
    body["resourceLogs"][0]["resource"]["attributes"][0]["value"] = {"stringValue": service}
    try:
        decoded = decode_logs(orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), "json", received_ns=1)
    except OtlpError:
        return
    assert len(decoded.records) + decoded.rejected == len(records)
