"""Bodies of log lines as HTTP and files carry them: NDJSON, JSON arrays and plain text.

Decoding is where bad input is caught: each malformed line is reported with its number and
reason, and the good ones go on. Invalid UTF-8 is replaced, never fatal.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from loglens.parse import MultilineJoiner, json_object

RawItem = str | dict[str, Any]


class BodyError(ValueError):
    """The body as a whole cannot be read (bad gzip, not JSON at all, too large...)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(slots=True)
class Rejection:
    line: int  # 1-based line number (or array index + 1 for JSON arrays)
    reason: str


@dataclass(slots=True)
class DecodedBody:
    items: list[RawItem] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    #: With ``unchecked_lines``: the line number of each item; the items are NDJSON lines not yet
    #: checked (the ingest worker checks them as it parses them).
    line_numbers: list[int] | None = None


def gunzip(body: bytes, limit: int) -> bytes:
    """Decompress at most ``limit`` bytes, refusing zip bombs with 413."""
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = d.decompress(body, limit + 1)
    except zlib.error as exc:
        raise BodyError(f"body is not valid gzip: {exc}") from exc
    if len(out) > limit or d.unconsumed_tail:
        raise BodyError(f"decompressed body is larger than the limit of {limit} bytes", status=413)
    return out


def _json_line(line: str, number: int, decoded: DecodedBody, as_text: bool) -> None:
    obj = json_object(line)
    if type(obj) is str:
        decoded.rejected.append(Rejection(number, obj))
    else:
        decoded.items.append(line if as_text else obj)


def decode_ndjson(text: str, *, json_as_text: bool = False, unchecked_lines: bool = False) -> DecodedBody:
    """One JSON object per line. With ``json_as_text`` a good line is kept as its text (parsing
    reads it as JSON again), which is far cheaper to hand to the ingest worker process than the
    decoded object. With ``unchecked_lines`` every non-blank line is kept as its text, unread,
    with its number: the ingest worker reads each line once, and reports the bad ones."""
    decoded = DecodedBody(line_numbers=[] if unchecked_lines else None)
    numbers = decoded.line_numbers
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.strip()
        if not line:
            continue
        if numbers is not None:
            decoded.items.append(line)
            numbers.append(number)
        else:
            _json_line(line, number, decoded, json_as_text)
    return decoded


def decode_json(text: str, *, json_as_text: bool = False) -> DecodedBody:
    """A JSON array of objects, a single object, or NDJSON sent as application/json."""
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            value = orjson.loads(stripped)
        except orjson.JSONDecodeError as exc:
            raise BodyError(f"body is not a valid JSON array: {exc}") from exc
        decoded = DecodedBody()
        for index, obj in enumerate(value, start=1):
            if isinstance(obj, dict | str):  # strings are text lines
                decoded.items.append(obj)
            else:
                decoded.rejected.append(Rejection(index, f"expected a JSON object, got {type(obj).__name__}"))
        return decoded
    decoded = decode_ndjson(text, json_as_text=json_as_text)
    if decoded.rejected and not decoded.items:
        # One pretty-printed object spans several lines.
        try:
            obj = orjson.loads(stripped)
        except orjson.JSONDecodeError:
            return decoded
        if isinstance(obj, dict):
            return DecodedBody(items=[obj])
    return decoded


def join_text_lines(lines: Iterable[str]) -> list[str]:
    """Plain-text lines to records: continuation lines (stack traces) join the line before."""
    joiner = MultilineJoiner()
    return joiner.feed_many(lines) + joiner.flush()


def decode_text(text: str) -> DecodedBody:
    return DecodedBody(items=[*join_text_lines(text.split("\n"))])


def decode_body(body: bytes, *, content_type: str = "", content_encoding: str = "",
                max_bytes: int = 64 << 20, json_as_text: bool = False,
                unchecked_lines: bool = False) -> DecodedBody:
    """Items of a body by its content type. ``unchecked_lines``: NDJSON lines are left for the
    ingest worker to check (see :func:`decode_ndjson`)."""
    if content_encoding.lower() in ("gzip", "x-gzip") or body[:2] == b"\x1f\x8b":
        body = gunzip(body, max_bytes)
    if not body.strip():
        raise BodyError("empty body: send NDJSON, a JSON array, or text lines")
    text = body.decode("utf-8", errors="replace")
    kind = content_type.split(";")[0].strip().lower()
    if kind in ("application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines"):
        return decode_ndjson(text, json_as_text=json_as_text, unchecked_lines=unchecked_lines)
    if kind == "application/json":
        return decode_json(text, json_as_text=json_as_text)
    if kind.startswith("text/"):
        return decode_text(text)
    first = text.lstrip()[:1]
    return decode_json(text, json_as_text=json_as_text) if first in ("[", "{") else decode_text(text)


def open_text(path: str) -> Any:
    """A text stream for a path (``-`` = stdin, ``.gz`` decompressed), invalid UTF-8 replaced."""
    import sys

    if path == "-":
        return open(sys.stdin.fileno(), encoding="utf-8", errors="replace", closefd=False)
    if path.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace")
