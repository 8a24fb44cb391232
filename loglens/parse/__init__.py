"""Parsing: raw input (a text line or a decoded JSON object) to a :class:`LogRecord`.

The pipeline calls :func:`parse_line` per received line (or :func:`parse_text` for a record joined by
:class:`MultilineJoiner`); :func:`record_from_json` for objects it decoded itself. None of these raise
on odd input (only ``TypeError`` for arguments of the wrong type): anything unreadable degrades to
the safe default, i.e. the text as the message, ``received_ns`` as the time and ``UNKNOWN`` level.
"""

from __future__ import annotations

import orjson

from loglens.model import Level, LogRecord
from loglens.parse.header import Header, split_fields, split_header
from loglens.parse.jsonmap import record_from_json
from loglens.parse.levels import detect_level, normalize_level, normalize_otel_severity
from loglens.parse.multiline import MultilineJoiner, is_continuation
from loglens.parse.timestamps import find_leading_timestamp, parse_timestamp

__all__ = [
    "Header",
    "MultilineJoiner",
    "detect_level",
    "find_leading_timestamp",
    "is_continuation",
    "json_object",
    "normalize_level",
    "normalize_otel_severity",
    "parse_line",
    "parse_text",
    "parse_timestamp",
    "record_from_json",
    "split_header",
]

_UNKNOWN = Level.UNKNOWN


def json_object(line: str) -> dict[str, object] | str:
    """An NDJSON line's object, or why it is not one (the reason a receiver answers with)."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return f"invalid JSON: {exc}"
    if type(obj) is dict:
        return obj
    return f"expected a JSON object, got {type(obj).__name__}"


def parse_text(text: str, *, received_ns: int, service: str = "", host: str = "", source: str = "") -> LogRecord:
    """A plain-text record (possibly several lines joined with ``"\\n"``) to a :class:`LogRecord`.

    The header of the first line is split off (:func:`split_header`): ``header`` is the text before
    ``message_offset`` and ``message`` the rest, so ``record.line == text``. The timestamp comes from
    the header, else ``received_ns``. The level comes from the header, else from
    :func:`detect_level` on the message. Header fields ``pid``/``component``/``thread``/``node``
    become attributes. A ``host`` found in the header is the record's host when the batch gave
    none; when the batch named a different host, the header's is kept as attribute
    ``host.reported`` (the batch host is the one that sent the data and stays authoritative).
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be str, not {type(text).__name__}")
    try:
        ts, level, off, fields = split_fields(text)
        if off:
            header = text[:off]
            message = text[off:]
        else:
            header = ""
            message = text
        if level is _UNKNOWN:
            level = detect_level(message)[0]
        if fields:
            reported = fields.pop("host", None)
            if reported:
                if not host:
                    host = reported
                elif reported != host:
                    fields["host.reported"] = reported
        # positional for speed: timestamp, message, level, service, host, header, attributes,
        # trace_id, observed_at, source
        return LogRecord(
            received_ns if ts is None else ts, message, level, service, host, header, fields, "",
            received_ns, source,
        )  # fmt: skip
    except Exception:  # a bug must not drop a line: keep it whole
        return LogRecord(received_ns, text, _UNKNOWN, service, host, "", {}, "", received_ns, source)


def parse_line(text: str, *, received_ns: int, service: str = "", host: str = "", source: str = "") -> LogRecord:
    """One received line: a JSON object line goes to :func:`record_from_json`, anything else to
    :func:`parse_text`. A trailing ``\\r``/``\\n`` is removed first."""
    if not isinstance(text, str):
        raise TypeError(f"text must be str, not {type(text).__name__}")
    if text and text[-1] in "\r\n":
        text = text.rstrip("\r\n")
    c = text[:1]
    if c == "{" or ((c == " " or c == "\t") and text.lstrip()[:1] == "{"):
        stripped = text.strip()
        if stripped[-1:] == "}":
            try:
                obj = orjson.loads(stripped)
            except orjson.JSONDecodeError:
                obj = None
            if type(obj) is dict:
                try:
                    return record_from_json(obj, received_ns=received_ns, service=service, host=host, source=source)
                except Exception:  # a bug must not drop a line: fall back to plain text
                    pass
    return parse_text(text, received_ns=received_ns, service=service, host=host, source=source)
