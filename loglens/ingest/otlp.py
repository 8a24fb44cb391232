"""OTLP logs over HTTP: ``POST /v1/logs`` in protobuf (``application/x-protobuf``) and in OTLP's JSON
encoding (``application/json``), as the OpenTelemetry SDKs' OTLP/HTTP exporters and the Collector's
``otlphttp`` exporter send them (gzip, deflate or zstd ``Content-Encoding`` accepted).

Mapping of an OpenTelemetry log record to a LogLens record:

- service: resource attribute ``service.name`` (an SDK default ``unknown_service...`` gives way to
  a service named by a structured body); host: resource ``host.name``;
- time: ``timeUnixNano``, else ``observedTimeUnixNano``, else the time received;
- level: ``severityNumber`` (OpenTelemetry's 1-24 scale), else ``severityText``, else detected in
  the message text;
- ``traceId`` → the record's trace id (hex), ``spanId`` → attribute ``span_id`` (hex),
  ``eventName`` → attribute ``event.name``;
- attributes: the resource's (other than ``service.name``/``host.name``), the scope's name and
  version as ``otel.scope.name``/``otel.scope.version`` and its attributes, then the record's;
  names kept as they are, a later one winning a clash; map values flattened to dotted names
  (``http.request.header.x``), arrays kept as lists, bytes as base64;
- body: a string is the message; a map (kvlist) is read like a JSON log line
  (:func:`loglens.parse.record_from_json`: its ``message``/``msg`` is the message, its ``level``
  and ``timestamp`` apply when the record has none, its other fields become attributes); any other
  value is the message as compact JSON. A string body on a record with neither time nor severity
  is a raw line (what the Collector's filelog receiver sends without parsers) and is parsed like
  one (:func:`loglens.parse.parse_line`: header, timestamp, level).

Answers ``ExportLogsServiceResponse`` in the request's encoding once the records are committed,
with ``partialSuccess`` counting records refused (a trace or span id of the wrong length, an
unreadable timestamp); 400 with a ``google.rpc.Status`` for a body that cannot be decoded, 413
over the size limit, 415 for another content type, 429 with ``Retry-After`` when the write queue
is full, 503 when the store failed (both retried by exporters).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from loglens.ingest._http import commit, count_rejected, decompress, read_body, runtime_of
from loglens.ingest.bodies import BodyError
from loglens.model import Level, LogRecord
from loglens.parse import detect_level, normalize_level, normalize_otel_severity, parse_line, record_from_json
from loglens.pipeline import QueueFullError

log = logging.getLogger(__name__)

router = APIRouter(tags=["otlp"])

_MAX_DEPTH = 32
_MAX_REASONS = 5
_PROTOBUF = "application/x-protobuf"
_JSON = "application/json"

SEVERITY_NAMES: dict[str, int] = {"SEVERITY_NUMBER_UNSPECIFIED": 0}
for _rank, _base in enumerate(("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")):
    for _step, _suffix in enumerate(("", "2", "3", "4")):
        SEVERITY_NAMES[f"SEVERITY_NUMBER_{_base}{_suffix}"] = _rank * 4 + _step + 1


class OtlpError(ValueError):
    """The request as a whole cannot be decoded (400)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(slots=True)
class Decoded:
    records: list[LogRecord] = field(default_factory=list)
    rejected: int = 0
    reasons: list[str] = field(default_factory=list)

    def reject(self, reason: str) -> None:
        self.rejected += 1
        if len(self.reasons) < _MAX_REASONS:
            self.reasons.append(reason)


@dataclass(slots=True)
class _Resource:
    service: str
    host: str
    attributes: dict[str, Any]


# ----------------------------------------------------------------------------------- attributes
def _put(out: dict[str, Any], key: str, value: Any) -> None:
    """Set ``key``, flattening a map value to dotted keys like JSON objects are."""
    if type(value) is dict:
        if not value:
            out[key] = {}
        for k, v in value.items():
            _put(out, f"{key}.{k}", v)
    else:
        out[key] = value


def _bytes(value: bytes) -> str:
    return base64.b64encode(value).decode()


def _pb_value(v: Any, depth: int = 0) -> Any:
    """A protobuf ``AnyValue`` as a Python value (None when unset)."""
    kind = v.WhichOneof("value")
    if kind == "string_value":
        return v.string_value
    if kind is None:
        return None
    if depth > _MAX_DEPTH:
        raise ValueError(f"value nested deeper than {_MAX_DEPTH} levels")
    if kind == "int_value":
        return v.int_value
    if kind == "bool_value":
        return v.bool_value
    if kind == "double_value":
        return _double(v.double_value)
    if kind == "bytes_value":
        return _bytes(v.bytes_value)
    if kind == "array_value":
        return [_pb_value(x, depth + 1) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _pb_value(kv.value, depth + 1) for kv in v.kvlist_value.values}
    return None


def _double(x: float) -> float | str:
    return x if math.isfinite(x) else str(x)  # JSON has no NaN or infinity


def _pb_attrs(kvs: Iterable[Any], out: dict[str, Any]) -> dict[str, Any]:
    for kv in kvs:
        _put(out, kv.key, _pb_value(kv.value))
    return out


def _j(obj: dict[str, Any], camel: str, snake: str) -> Any:
    v = obj.get(camel)
    return obj.get(snake) if v is None else v


def _jlist(obj: dict[str, Any], camel: str, snake: str) -> list[Any]:
    v = _j(obj, camel, snake)
    if v is None:
        return []
    if type(v) is not list:
        raise ValueError(f'"{camel}" must be an array, not {type(v).__name__}')
    return v


def _jobj(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if type(value) is not dict:
        raise ValueError(f'"{what}" must be an object, not {type(value).__name__}')
    return value


def _jint(value: Any, what: str) -> int:
    """An OTLP JSON integer: a number or a decimal string (64-bit values are strings)."""
    if value is None:
        return 0
    if type(value) is int:
        return int(value)
    if type(value) is str:
        try:
            return int(value)
        except ValueError:
            pass
    if type(value) is float and value.is_integer():
        return int(value)
    raise ValueError(f"{what} must be an integer, got {str(value)[:40]!r}")


def _json_value(v: Any, depth: int = 0) -> Any:
    """An OTLP JSON ``AnyValue`` as a Python value."""
    if v is None:
        return None
    if type(v) is not dict:
        raise ValueError(f"an AnyValue must be an object, not {type(v).__name__}")
    if depth > _MAX_DEPTH:
        raise ValueError(f"value nested deeper than {_MAX_DEPTH} levels")
    for key, value in v.items():
        if key in ("stringValue", "string_value"):
            if type(value) is not str:
                raise ValueError("stringValue must be a string")
            return value
        if key in ("intValue", "int_value"):
            return _jint(value, "intValue")
        if key in ("boolValue", "bool_value"):
            if type(value) is not bool:
                raise ValueError("boolValue must be true or false")
            return value
        if key in ("doubleValue", "double_value"):
            if type(value) in (int, float):
                return _double(float(value))
            if type(value) is str:
                try:
                    return _double(float(value))
                except ValueError:
                    pass
            raise ValueError(f"doubleValue must be a number, got {str(value)[:40]!r}")
        if key in ("bytesValue", "bytes_value"):
            if type(value) is not str:
                raise ValueError("bytesValue must be a base64 string")
            return value
        if key in ("arrayValue", "array_value"):
            return [_json_value(x, depth + 1) for x in _jlist(_jobj(value, "arrayValue"), "values", "values")]
        if key in ("kvlistValue", "kvlist_value"):
            out: dict[str, Any] = {}
            for kv in _jlist(_jobj(value, "kvlistValue"), "values", "values"):
                kv = _jobj(kv, "values")
                out[_key(kv)] = _json_value(kv.get("value"), depth + 1)
            return out
    return None  # an empty AnyValue, or only unknown fields (ignored, as OTLP/JSON asks)


def _key(kv: dict[str, Any]) -> str:
    key = kv.get("key", "")
    if type(key) is not str:
        raise ValueError(f"an attribute key must be a string, not {type(key).__name__}")
    return key


def _json_attrs(kvs: list[Any], out: dict[str, Any]) -> dict[str, Any]:
    for kv in kvs:
        kv = _jobj(kv, "attributes")
        _put(out, _key(kv), _json_value(kv.get("value")))
    return out


def _resource(attrs: dict[str, Any]) -> _Resource:
    service = attrs.pop("service.name", "")
    host = attrs.pop("host.name", "")
    return _Resource(service if type(service) is str else str(service), host if type(host) is str else str(host),
                     attrs)


def _scope_attrs(name: str, version: str, attrs: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if name:
        out["otel.scope.name"] = name
    if version:
        out["otel.scope.version"] = version
    out.update(attrs)
    return out


# ----------------------------------------------------------------------------------------- record
_NO_BODY: Any = object()


def build_record(res: _Resource, scope: dict[str, Any], *, time_ns: int, observed_ns: int, severity: int,
                 severity_text: str, body: Any, attributes: dict[str, Any], trace_id: str, span_id: str,
                 event_name: str, received_ns: int) -> LogRecord:
    """One OpenTelemetry log record, already decoded, to a :class:`LogRecord` (see the module doc)."""
    fallback_ns = observed_ns or received_ns
    otel_service = "" if res.service.startswith("unknown_service") else res.service
    if type(body) is dict:
        rec = record_from_json(body, received_ns=fallback_ns, service=otel_service or res.service,
                               host=res.host, source="otlp")
    elif type(body) is str and not time_ns and not severity and not severity_text:
        rec = parse_line(body, received_ns=fallback_ns, service=res.service, host=res.host, source="otlp")
    else:
        message = body if type(body) is str else "" if body is None else orjson.dumps(body).decode()
        rec = LogRecord(fallback_ns, message, Level.UNKNOWN, res.service, res.host, "", {}, "", received_ns, "otlp")
    if time_ns:
        rec.timestamp = time_ns
    rec.observed_at = received_ns
    level = Level.UNKNOWN
    if severity:
        level = normalize_otel_severity(severity)
    if level is Level.UNKNOWN and severity_text:
        level = normalize_level(severity_text)
    if level is not Level.UNKNOWN:
        rec.level = level
    elif rec.level is Level.UNKNOWN and type(body) is not dict:
        rec.level = detect_level(rec.message)[0]
    if otel_service:
        rec.service = otel_service
    if res.host:
        rec.host = res.host
    if trace_id:
        rec.trace_id = trace_id
    attrs = rec.attributes
    attrs.update(res.attributes)
    attrs.update(scope)
    attrs.update(attributes)
    if span_id:
        attrs["span_id"] = span_id
    if event_name:
        attrs["event.name"] = event_name
    return rec


def _pb_id(raw: bytes, size: int, what: str) -> str:
    if not raw or raw == bytes(size):
        return ""
    if len(raw) != size:
        raise ValueError(f"{what} must be {size} bytes, got {len(raw)}")
    return raw.hex()


def _json_id(value: Any, size: int, what: str) -> str:
    if value is None or value == "":
        return ""
    if type(value) is not str:
        raise ValueError(f"{what} must be a hex string")
    try:
        raw = binascii.unhexlify(value)
    except (binascii.Error, ValueError):
        raise ValueError(f"{what} {value[:40]!r} is not hex") from None
    return _pb_id(raw, size, what)


# ----------------------------------------------------------------------------------------- decode
def decode_protobuf(body: bytes, received_ns: int) -> Decoded:
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    try:
        request = ExportLogsServiceRequest.FromString(body)
    except Exception as exc:  # DecodeError, or a recursion limit inside the parser
        raise OtlpError(f"body is not a valid ExportLogsServiceRequest: {exc}") from exc
    out = Decoded()
    for rl in request.resource_logs:
        try:
            res = _resource(_pb_attrs(rl.resource.attributes, {}))
        except ValueError as exc:
            raise OtlpError(f"resource attributes: {exc}") from exc
        for sl in rl.scope_logs:
            try:
                scope = _scope_attrs(sl.scope.name, sl.scope.version, _pb_attrs(sl.scope.attributes, {}))
            except ValueError as exc:
                raise OtlpError(f"scope attributes: {exc}") from exc
            for number, lr in enumerate(sl.log_records, start=1):
                try:
                    rec = build_record(
                        res, scope, time_ns=lr.time_unix_nano, observed_ns=lr.observed_time_unix_nano,
                        severity=lr.severity_number, severity_text=lr.severity_text,
                        body=_pb_value(lr.body) if lr.HasField("body") else None,
                        attributes=_pb_attrs(lr.attributes, {}),
                        trace_id=_pb_id(lr.trace_id, 16, "traceId"), span_id=_pb_id(lr.span_id, 8, "spanId"),
                        event_name=lr.event_name, received_ns=received_ns,
                    )
                except ValueError as exc:
                    out.reject(f"log record {number} of scope {sl.scope.name!r}: {exc}")
                    continue
                out.records.append(rec)
    return out


def _json_severity(value: Any) -> int:
    if value is None:
        return 0
    if type(value) is str and value in SEVERITY_NAMES:
        return SEVERITY_NAMES[value]
    n = _jint(value, "severityNumber")
    if not 0 <= n <= 24:
        raise ValueError(f"severityNumber {n} is out of range 0-24")
    return n


def _json_record(lr: Any, res: _Resource, scope: dict[str, Any], received_ns: int) -> LogRecord:
    lr = _jobj(lr, "logRecords")
    text = _j(lr, "severityText", "severity_text") or ""
    if type(text) is not str:
        raise ValueError("severityText must be a string")
    event = _j(lr, "eventName", "event_name") or ""
    if type(event) is not str:
        raise ValueError("eventName must be a string")
    time_ns = _jint(_j(lr, "timeUnixNano", "time_unix_nano"), "timeUnixNano")
    observed_ns = _jint(_j(lr, "observedTimeUnixNano", "observed_time_unix_nano"), "observedTimeUnixNano")
    if not (0 <= time_ns < 1 << 63 and 0 <= observed_ns < 1 << 63):
        raise ValueError("timeUnixNano and observedTimeUnixNano must be within 0 and 2^63")
    return build_record(
        res, scope, time_ns=time_ns, observed_ns=observed_ns,
        severity=_json_severity(_j(lr, "severityNumber", "severity_number")), severity_text=text,
        body=_json_value(lr.get("body")), attributes=_json_attrs(_jlist(lr, "attributes", "attributes"), {}),
        trace_id=_json_id(_j(lr, "traceId", "trace_id"), 16, "traceId"),
        span_id=_json_id(_j(lr, "spanId", "span_id"), 8, "spanId"), event_name=event, received_ns=received_ns,
    )


def decode_json(body: bytes, received_ns: int) -> Decoded:
    try:
        request = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise OtlpError(f"body is not valid JSON: {exc}") from exc
    if type(request) is not dict:
        raise OtlpError("expected an ExportLogsServiceRequest object")
    out = Decoded()
    try:
        resource_logs = _jlist(request, "resourceLogs", "resource_logs")
    except ValueError as exc:
        raise OtlpError(str(exc)) from exc
    for rl in resource_logs:
        try:
            rl = _jobj(rl, "resourceLogs")
            resource = _jobj(rl.get("resource"), "resource")
            res = _resource(_json_attrs(_jlist(resource, "attributes", "attributes"), {}))
            scope_logs = _jlist(rl, "scopeLogs", "scope_logs")
        except ValueError as exc:
            raise OtlpError(f"resourceLogs: {exc}") from exc
        for sl in scope_logs:
            try:
                sl = _jobj(sl, "scopeLogs")
                sc = _jobj(sl.get("scope"), "scope")
                name, version = sc.get("name") or "", sc.get("version") or ""
                if type(name) is not str or type(version) is not str:
                    raise ValueError("scope name and version must be strings")
                scope = _scope_attrs(name, version, _json_attrs(_jlist(sc, "attributes", "attributes"), {}))
                records = _jlist(sl, "logRecords", "log_records")
            except ValueError as exc:
                raise OtlpError(f"scopeLogs: {exc}") from exc
            for number, lr in enumerate(records, start=1):
                try:
                    out.records.append(_json_record(lr, res, scope, received_ns))
                except ValueError as exc:
                    out.reject(f"log record {number} of scope {scope.get('otel.scope.name', '')!r}: {exc}")
    return out


def content_kind(content_type: str, body: bytes) -> str:
    """``json`` or ``protobuf`` for a Content-Type; raises ``OtlpError`` (415) for anything else."""
    kind = content_type.split(";")[0].strip().lower()
    if kind in (_PROTOBUF, "application/protobuf", "application/vnd.google.protobuf"):
        return "protobuf"
    if kind == _JSON or kind.endswith("+json"):
        return "json"
    if not kind or kind in ("application/octet-stream",):
        return "json" if body.lstrip()[:1] == b"{" else "protobuf"
    raise OtlpError(f"unsupported Content-Type {kind!r}: send {_PROTOBUF} or {_JSON}", status=415)


def decode_logs(body: bytes, kind: str, received_ns: int | None = None) -> Decoded:
    """An ExportLogsServiceRequest body (after transport compression) to records. Raises
    ``OtlpError`` when it cannot be decoded; refused records are counted in ``rejected``."""
    received_ns = received_ns or time.time_ns()
    if kind == "json":
        return decode_json(body, received_ns)
    return decode_protobuf(body, received_ns)


# ------------------------------------------------------------------------------------------- HTTP
def _status_protobuf(code: int, message: str) -> bytes:
    """A ``google.rpc.Status`` (code = 1, message = 2), encoded by hand."""

    def varint(n: int) -> bytes:
        out = bytearray()
        while True:
            b = n & 0x7F
            n >>= 7
            if n:
                out.append(b | 0x80)
            else:
                out.append(b)
                return bytes(out)

    text = message.encode()
    return b"\x08" + varint(code) + b"\x12" + varint(len(text)) + text


def _answer(kind: str, status: int, *, code: int = 0, message: str = "", rejected: int = 0,
            headers: dict[str, str] | None = None) -> Response:
    if kind == "json":
        if status >= 400:
            content = orjson.dumps({"code": code, "message": message})
        elif rejected:
            content = orjson.dumps({"partialSuccess": {"rejectedLogRecords": str(rejected), "errorMessage": message}})
        else:
            content = b"{}"
        return Response(content, status_code=status, media_type=_JSON, headers=headers)
    if status >= 400:
        content = _status_protobuf(code, message)
    else:
        from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse

        response = ExportLogsServiceResponse()
        if rejected:
            response.partial_success.rejected_log_records = rejected
            response.partial_success.error_message = message
        content = response.SerializeToString()
    return Response(content, status_code=status, media_type=_PROTOBUF, headers=headers)


_INVALID_ARGUMENT, _RESOURCE_EXHAUSTED, _UNAVAILABLE = 3, 8, 14


def _decode(body: bytes, kind: str, encoding: str, limit: int) -> Decoded:
    return decode_logs(decompress(body, encoding, limit), kind)


@router.post("/v1/logs", summary="OTLP/HTTP logs (protobuf or JSON)")
async def export_logs(request: Request) -> Response:
    limit = runtime_of(request).settings.max_body_bytes
    content_type = request.headers.get("content-type", "")
    kind = "json" if "json" in content_type.lower() else "protobuf"
    try:
        body = await read_body(request, limit)
        kind = content_kind(content_type, body)
        decoded = await asyncio.to_thread(_decode, body, kind, request.headers.get("content-encoding", ""), limit)
    except (BodyError, OtlpError) as exc:
        return _answer(kind, exc.status, code=_INVALID_ARGUMENT, message=str(exc))
    try:
        await commit(request, decoded.records, source="otlp")
    except QueueFullError as exc:
        return _answer(kind, 429, code=_RESOURCE_EXHAUSTED, message=str(exc), headers={"Retry-After": "1"})
    except Exception as exc:
        log.exception("otlp: commit failed")
        return _answer(kind, 503, code=_UNAVAILABLE, message=f"could not store the records: {exc}")
    count_rejected(request, "otlp", "malformed", decoded.rejected)
    return _answer(kind, 200, rejected=decoded.rejected, message="; ".join(decoded.reasons))
