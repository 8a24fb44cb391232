"""Loki push receiver: ``POST /loki/api/v1/push``, as Promtail, Grafana Alloy, Fluent Bit's loki
output and Vector's loki sink send it.

Two encodings, as Loki accepts them: JSON (``{"streams": [{"stream": {labels}, "values": [["<ns>",
"line", {structured metadata}?]]}]}``, optionally gzip) and protobuf (``logproto.PushRequest``,
snappy block compressed, ``Content-Type: application/x-protobuf``).

Each line is parsed like a line sent to ``/api/v1/logs`` (:func:`loglens.parse.parse_line`: a JSON
line keeps its fields, a text line has its header split off and its level found) with:

- the entry's timestamp as the record time (the time received when it is zero);
- the stream labels and the entry's structured metadata as attributes (metadata wins a clash);
- ``service_name``, ``job`` or ``app`` (the first present) as the service, unless a JSON line names
  its own; ``host``, ``hostname`` or ``instance`` as the host.

Answers like Loki: 204 once every entry is committed; 400 with a plain-text reason for a push that
cannot be read at all, or for entries that were refused (bad timestamp or labels: the others are
stored); 413 for a body over the limit; 429 with ``Retry-After`` when the write queue is full.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response

from loglens.ingest._http import commit, count_rejected, decompress, read_body, runtime_of, unsnappy
from loglens.ingest.bodies import BodyError
from loglens.model import LogRecord
from loglens.parse import parse_line
from loglens.pipeline import QueueFullError

log = logging.getLogger(__name__)

router = APIRouter(tags=["loki"])

SERVICE_LABELS = ("service_name", "job", "app")
HOST_LABELS = ("host", "hostname", "instance")
_MAX_REASONS = 10


class PushError(ValueError):
    """The push as a whole cannot be read."""


@dataclass(slots=True)
class Entry:
    timestamp: int  # ns since the epoch; 0 = not given
    line: str
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Stream:
    labels: dict[str, str]
    entries: list[Entry] = field(default_factory=list)


@dataclass(slots=True)
class Push:
    streams: list[Stream] = field(default_factory=list)
    rejected: int = 0
    reasons: list[str] = field(default_factory=list)

    def reject(self, n: int, reason: str) -> None:
        self.rejected += n
        if len(self.reasons) < _MAX_REASONS:
            self.reasons.append(reason)

    @property
    def entries(self) -> int:
        return sum(len(s.entries) for s in self.streams)


# ------------------------------------------------------------------------------------------ labels
_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\",
            "'": "'", '"': '"', "`": "`"}


def _is_name_char(c: str, first: bool) -> bool:
    return c == "_" or ("a" <= c <= "z") or ("A" <= c <= "Z") or (not first and ("0" <= c <= "9" or c in ".:-"))


def parse_labels(text: str) -> dict[str, str]:
    """A label set in Prometheus's notation, ``{job="api", host="web-1"}``, as Loki's protobuf
    push carries it. Values are Go-quoted strings; raises ``ValueError`` naming what is wrong."""
    pos = 0
    n = len(text)

    def skip() -> None:
        nonlocal pos
        while pos < n and text[pos] in " \t\r\n":
            pos += 1

    def fail(expected: str) -> ValueError:
        got = repr(text[pos]) if pos < n else "the end"
        return ValueError(f"invalid labels {text[:200]!r}: expected {expected} at position {pos}, got {got}")

    labels: dict[str, str] = {}
    skip()
    if pos >= n or text[pos] != "{":
        raise fail("'{'")
    pos += 1
    while True:
        skip()
        if pos < n and text[pos] == "}":
            pos += 1
            break
        start = pos
        while pos < n and _is_name_char(text[pos], pos == start):
            pos += 1
        if pos == start:
            raise fail("a label name")
        name = text[start:pos]
        skip()
        if pos >= n or text[pos] != "=":
            raise fail("'='")
        pos += 1
        skip()
        if pos >= n or text[pos] not in "\"'`":
            raise fail("a quoted value")
        quote = text[pos]
        pos += 1
        out: list[str] = []
        while True:
            if pos >= n:
                raise fail(f"a closing {quote}")
            c = text[pos]
            if c == quote:
                pos += 1
                break
            if c == "\\" and quote != "`":
                pos += 1
                if pos >= n:
                    raise fail("an escape")
                e = text[pos]
                if e in _ESCAPES:
                    out.append(_ESCAPES[e])
                    pos += 1
                    continue
                width = {"x": 2, "u": 4, "U": 8}.get(e)
                if width is None:
                    raise fail("a valid escape")
                digits = text[pos + 1 : pos + 1 + width]
                try:
                    if len(digits) != width:
                        raise ValueError
                    out.append(chr(int(digits, 16)))
                except ValueError:
                    raise fail(f"{width} hex digits") from None
                pos += 1 + width
                continue
            out.append(c)
            pos += 1
        labels[name] = "".join(out)
        skip()
        if pos < n and text[pos] == ",":
            pos += 1
            continue
        if pos < n and text[pos] == "}":
            pos += 1
            break
        raise fail("',' or '}'")
    skip()
    if pos != n:
        raise fail("nothing after '}'")
    return labels


# ------------------------------------------------------------------------------------------ decode
def _str_map(value: Any, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if type(value) is not dict:
        raise ValueError(f"{what} must be an object of strings, not {type(value).__name__}")
    return {str(k): v if type(v) is str else orjson.dumps(v).decode() for k, v in value.items()}


def _json_timestamp(value: Any) -> int:
    if type(value) is int and value >= 0:
        return int(value)
    if type(value) is str and value.isascii() and value.isdigit() and len(value) <= 19:
        return int(value)
    raise ValueError(f"invalid timestamp {str(value)[:40]!r}: expected nanoseconds since the epoch as a string")


def decode_json(body: bytes) -> Push:
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise PushError(f"body is not valid JSON: {exc}") from exc
    if type(obj) is not dict or type(obj.get("streams")) is not list:
        raise PushError('expected a JSON object with a "streams" array')
    push = Push()
    for number, raw in enumerate(obj["streams"], start=1):
        if type(raw) is not dict:
            push.reject(0, f"stream {number}: expected an object, got {type(raw).__name__}")
            continue
        values = raw.get("values")
        legacy = values is None and "entries" in raw
        if legacy:  # the old {"labels": "{...}", "entries": [{"ts": RFC 3339, "line": ...}]} form
            values = raw.get("entries")
        if type(values) is not list:
            push.reject(0, f'stream {number}: "values" must be an array')
            continue
        try:
            if legacy or ("labels" in raw and "stream" not in raw):
                text = raw.get("labels")
                labels = parse_labels(text if isinstance(text, str) else "{}")
            else:
                labels = _str_map(raw.get("stream"), '"stream"')
        except ValueError as exc:
            push.reject(len(values), f"stream {number}: {exc}")
            continue
        stream = Stream(labels)
        for index, value in enumerate(values):
            try:
                stream.entries.append(_legacy_entry(value) if legacy else _json_entry(value))
            except ValueError as exc:
                push.reject(1, f"stream {number}, entry {index + 1}: {exc}")
        if stream.entries:
            push.streams.append(stream)
    return push


def _json_entry(value: Any) -> Entry:
    if type(value) is not list or len(value) not in (2, 3):
        raise ValueError('expected ["<ns timestamp>", "line"] or ["<ns timestamp>", "line", {metadata}]')
    line = value[1]
    if type(line) is not str:
        raise ValueError(f"the line must be a string, not {type(line).__name__}")
    metadata = _str_map(value[2], "structured metadata") if len(value) == 3 else {}
    return Entry(_json_timestamp(value[0]), line, metadata)


def _legacy_entry(value: Any) -> Entry:
    from loglens.parse import parse_timestamp

    if type(value) is not dict or type(value.get("line")) is not str:
        raise ValueError('expected {"ts": "<RFC 3339>", "line": "..."}')
    ts = value.get("ts", value.get("timestamp"))
    ns = parse_timestamp(ts) if type(ts) is str else None
    if ns is None:
        raise ValueError(f"invalid timestamp {str(ts)[:40]!r}")
    return Entry(ns, value["line"])


def decode_protobuf(body: bytes) -> Push:
    from loglens.ingest._loki_pb import PushRequest

    try:
        request = PushRequest.FromString(body)
    except Exception as exc:  # DecodeError, or a recursion limit deep inside the parser
        raise PushError(f"body is not a valid logproto.PushRequest: {exc}") from exc
    push = Push()
    for number, raw in enumerate(request.streams, start=1):
        try:
            labels = parse_labels(raw.labels.decode("utf-8", "replace"))
        except ValueError as exc:
            push.reject(len(raw.entries), f"stream {number}: {exc}")
            continue
        stream = Stream(labels)
        for e in raw.entries:
            ts = e.timestamp.seconds * 1_000_000_000 + e.timestamp.nanos
            if ts < 0 or ts >= 1 << 63:
                push.reject(1, f"stream {number}: invalid timestamp {e.timestamp.seconds}s {e.timestamp.nanos}ns")
                continue
            metadata = {m.name.decode("utf-8", "replace"): m.value.decode("utf-8", "replace")
                        for m in e.structuredMetadata}
            stream.entries.append(Entry(ts, e.line.decode("utf-8", "replace"), metadata))
        if stream.entries:
            push.streams.append(stream)
    return push


def decode_push(body: bytes, content_type: str = "", content_encoding: str = "",
                max_bytes: int = 64 << 20) -> Push:
    """A push body (after transport) to streams of entries. Raises ``PushError`` (400) when it
    cannot be read at all, ``BodyError`` for compression and size problems."""
    kind = content_type.split(";")[0].strip().lower()
    encoding = content_encoding.strip().lower()
    is_json = kind == "application/json" or (kind != "application/x-protobuf" and body.lstrip()[:1] == b"{")
    if encoding != "snappy" or is_json:
        body = decompress(body, encoding, max_bytes)
    if not body.strip():
        raise PushError("empty body: send a JSON or protobuf push request")
    if is_json:
        return decode_json(body)
    return decode_protobuf(unsnappy(body, max_bytes))


# ----------------------------------------------------------------------------------------- records
def _first(labels: dict[str, str], names: tuple[str, ...]) -> str:
    for name in names:
        value = labels.get(name)
        if value:
            return value
    return ""


def records_of(push: Push, received_ns: int) -> list[LogRecord]:
    out: list[LogRecord] = []
    for stream in push.streams:
        labels = stream.labels
        service = _first(labels, SERVICE_LABELS)
        host = _first(labels, HOST_LABELS)
        for entry in stream.entries:
            rec = parse_line(entry.line, received_ns=received_ns, service=service, host=host, source="loki")
            if entry.timestamp:
                rec.timestamp = entry.timestamp
            if rec.attributes:
                rec.attributes.update(labels)
            else:
                rec.attributes = dict(labels)
            if entry.metadata:
                rec.attributes.update(entry.metadata)
            out.append(rec)
    return out


def _decode(body: bytes, content_type: str, content_encoding: str, limit: int) -> tuple[Push, list[LogRecord]]:
    push = decode_push(body, content_type, content_encoding, limit)
    return push, records_of(push, time.time_ns())


def _text(message: str, status: int, headers: dict[str, str] | None = None) -> Response:
    return PlainTextResponse(message + "\n", status_code=status, headers=headers)


@router.post("/loki/api/v1/push", status_code=204, summary="Loki push API (JSON or protobuf+snappy)")
async def push(request: Request) -> Response:
    limit = runtime_of(request).settings.max_body_bytes
    try:
        body = await read_body(request, limit)
        decoded, records = await asyncio.to_thread(
            _decode, body, request.headers.get("content-type", ""), request.headers.get("content-encoding", ""),
            limit,
        )
    except BodyError as exc:
        return _text(str(exc), exc.status)
    except PushError as exc:
        return _text(str(exc), 400)
    try:
        await commit(request, records, source="loki")
    except QueueFullError as exc:
        return _text(f"rate limited: {exc}", 429, {"Retry-After": "1"})
    except Exception as exc:
        log.exception("loki push: commit failed")
        return _text(f"could not store the entries: {exc}", 503)
    count_rejected(request, "loki", "malformed", decoded.rejected)
    if decoded.rejected or decoded.reasons:
        return _text(f"{decoded.rejected} entries rejected, {len(records)} stored: " + "; ".join(decoded.reasons), 400)
    return Response(status_code=204)


@router.get("/loki/api/v1/status/buildinfo", include_in_schema=False)
async def buildinfo() -> dict[str, str]:
    """Some clients ask which Loki they talk to."""
    return {"version": "3.0.0", "revision": "loglens", "branch": "loglens", "goVersion": ""}


@router.get("/ready", include_in_schema=False)
async def ready() -> Response:
    """Loki's readiness probe, which Alloy and some dashboards call."""
    return _text("ready", 200)
