"""Grok: named regular-expression patterns that turn text lines into fields.

A grok pattern is a regular expression (Python's ``re``) with references to library patterns:
``%{NAME}`` inserts the pattern, ``%{NAME:field}`` also captures what it matched as ``field``, and
``%{NAME:field:int}`` / ``%{NAME:field:float}`` converts the value. Oniguruma-style named groups
``(?<field>...)`` capture too. References expand recursively (a cycle is an error naming it); a
compiled pattern is cached.

The library is data: the files in ``loglens/parse/grok_patterns/`` (``base``, ``http``, ``aws``,
``syslog``, ``java``), one ``NAME regex`` a line. It covers the basic types (``INT``, ``NUMBER``,
``WORD``, ``NOTSPACE``, ``DATA``, ``GREEDYDATA``, ``QUOTEDSTRING``, ``UUID``, ``IP``, ``IPORHOST``,
``URI``, ``HTTPDATE``, ``TIMESTAMP_ISO8601``, ``LOGLEVEL``, ``SYSLOGTIMESTAMP``...), Apache
common/combined (``COMMONAPACHELOG``, ``COMBINEDAPACHELOG``), nginx (``NGINXACCESS``,
``NGINXERROR``), Apache error logs (``HTTPD20_ERRORLOG``, ``HTTPD24_ERRORLOG``, ``HTTPD_ERRORLOG``),
AWS ALB (``ALBACCESS``), syslog files (``SYSLOGLINE``, ``SYSLOG5424LINE``) and Java logging
(``LOG4J``, ``LOGBACK``, ``SPRINGBOOT``, ``JAVALOG``).

:func:`grok_record` turns a line into a :class:`LogRecord`: captured fields become attributes
(numbers typed when declared, or when the field is a well-known numeric one such as ``status`` or
``bytes``; ``-`` and empty values are left out); ``timestamp``, ``message``, ``level``, ``host``,
``service`` and ``trace_id`` fill the record's own fields. A line that does not match is parsed as
usual (:func:`loglens.parse.parse_line`) and tagged with the attribute ``grok_failure``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from importlib import resources
from typing import Any

from loglens.model import LogRecord
from loglens.parse.levels import normalize_level
from loglens.parse.timestamps import parse_timestamp

__all__ = [
    "NUMERIC_FIELDS",
    "Grok",
    "GrokError",
    "compile_grok",
    "grok_record",
    "library",
    "resolve",
]

PATTERN_FILES = ("base", "http", "aws", "syslog", "java")

#: Fields converted to numbers (int, else float) when their value is one, even when not declared.
NUMERIC_FIELDS = frozenset((
    "status", "bytes", "response", "body_bytes_sent", "bytes_sent", "received_bytes", "sent_bytes",
    "elb_status_code", "target_status_code", "request_processing_time", "target_processing_time",
    "response_processing_time", "request_time", "upstream_response_time", "duration", "duration_ms",
    "elapsed", "latency", "took", "pid", "tid", "port", "client_port", "target_port", "line",
    "connection_id", "size", "content_length", "os_error_code",
))  # fmt: skip

#: Captured fields that fill the record's own fields instead of attributes.
RECORD_FIELDS = frozenset(("timestamp", "message", "level", "host", "service", "trace_id"))

_REF = re.compile(r"%\{([^}:]*)(?::([^}:]*))?(?::([^}]*))?\}")
_ONIG_GROUP = re.compile(r"\(\?<([A-Za-z_][\w.@-]*)>")
_NAME = re.compile(r"[A-Z0-9_]+")
_FIELD = re.compile(r"[A-Za-z_@][\w.@-]*")
_TYPES = ("int", "float")
_LIBRARY_LINE = re.compile(r"([A-Za-z0-9_]+)\s+(.+)")


class GrokError(ValueError):
    """A grok pattern that cannot be compiled: unknown name, cycle, bad type or regex."""


@functools.cache
def library() -> Mapping[str, str]:
    """The pattern library, ``NAME -> pattern``, read once from the package data files."""
    patterns: dict[str, str] = {}
    folder = resources.files("loglens.parse").joinpath("grok_patterns")
    for name in PATTERN_FILES:
        text = folder.joinpath(name).read_text(encoding="utf-8")
        patterns.update(parse_library(text, name))
    return patterns


def parse_library(text: str, origin: str = "<patterns>") -> dict[str, str]:
    """Read ``NAME pattern`` lines (``#`` comments and blank lines skipped)."""
    out: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = _LIBRARY_LINE.fullmatch(line)
        if m is None:
            raise GrokError(f"{origin}:{number}: expected 'NAME pattern', got {line!r}")
        out[m.group(1)] = m.group(2)
    return out


class Grok:
    """One compiled grok pattern. ``match(line)`` returns the captured fields or None."""

    __slots__ = ("_fields", "pattern", "regex")

    def __init__(self, pattern: str, patterns: Mapping[str, str] | None = None) -> None:
        if not isinstance(pattern, str):
            raise TypeError(f"pattern must be str, not {type(pattern).__name__}")
        self.pattern = pattern
        lib = library() if patterns is None else {**library(), **patterns}
        #: group name -> (field, type or "")
        self._fields: dict[str, tuple[str, str]] = {}
        text = self._expand(pattern, lib, ())
        try:
            self.regex = re.compile(text, re.DOTALL)
        except re.error as exc:
            raise GrokError(f"invalid grok pattern {pattern!r}: {exc}") from None

    def _group(self, field: str, kind: str) -> str:
        if not _FIELD.fullmatch(field):
            raise GrokError(f"invalid field name {field!r} in grok pattern {self.pattern!r}")
        if kind and kind not in _TYPES:
            raise GrokError(f"unknown type {kind!r} for field {field!r} (use int or float)")
        name = f"g{len(self._fields)}"
        self._fields[name] = (field, kind)
        return name

    def _expand(self, text: str, lib: Mapping[str, str], stack: tuple[str, ...]) -> str:
        # Oniguruma named groups first (they are plain text of this level), then references.
        text = _ONIG_GROUP.sub(lambda m: f"(?P<{self._group(m.group(1), '')}>", text)
        out: list[str] = []
        pos = 0
        for m in _REF.finditer(text):
            out.append(text[pos:m.start()])
            pos = m.end()
            name, field, kind = m.group(1), m.group(2), m.group(3)
            if name not in lib:
                raise GrokError(f"unknown grok pattern %{{{name}}}"
                                + (f" (in {' -> '.join(stack)})" if stack else ""))
            if name in stack:
                raise GrokError(f"grok pattern cycle: {' -> '.join((*stack, name))}")
            inner = self._expand(lib[name], lib, (*stack, name))
            if field:
                out.append(f"(?P<{self._group(field, kind or '')}>{inner})")
            else:
                if kind:
                    raise GrokError(f"%{{{name}::{kind}}}: a type needs a field name")
                out.append(f"(?:{inner})")
        out.append(text[pos:])
        return "".join(out)

    @property
    def fields(self) -> list[str]:
        """The distinct field names this pattern captures, in order."""
        return list(dict.fromkeys(f for f, _ in self._fields.values()))

    def match(self, line: str) -> dict[str, Any] | None:
        """The fields captured from the first match in ``line`` (search semantics, like Logstash),
        or None. A field captured twice (in alternatives) keeps its first non-empty value."""
        if not isinstance(line, str):
            raise TypeError(f"line must be str, not {type(line).__name__}")
        m = self.regex.search(line)
        if m is None:
            return None
        return self._values(m)

    def match_span(self, line: str) -> tuple[dict[str, Any], dict[str, int]] | None:
        """Like :meth:`match`, also giving each field's start offset in ``line``."""
        m = self.regex.search(line)
        if m is None:
            return None
        starts: dict[str, int] = {}
        for group, (field, _) in self._fields.items():
            if field not in starts and m.group(group) is not None:
                starts[field] = m.start(group)
        return self._values(m), starts

    def _values(self, m: re.Match[str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for group, value in m.groupdict().items():
            if value is None or value == "" or value == "-":
                continue
            field, kind = self._fields[group]
            if field in out:
                continue
            out[field] = _convert(field, value, kind)
        return out


def _convert(field: str, value: str, kind: str) -> Any:
    if kind == "int":
        try:
            return int(value)
        except ValueError:
            try:
                return int(float(value))
            except (ValueError, OverflowError):
                return value
    if kind == "float" or field in NUMERIC_FIELDS:
        try:
            number = float(value)
        except ValueError:
            return value
        if kind != "float" and number.is_integer() and value.lstrip("+-").isdigit() and len(value) < 19:
            return int(value)
        return number if number == number and number not in (float("inf"), float("-inf")) else value
    return value


@functools.lru_cache(maxsize=256)
def compile_grok(pattern: str) -> Grok:
    """A compiled :class:`Grok`, cached by pattern text."""
    return Grok(pattern)


def resolve(name_or_pattern: str) -> Grok:
    """A library pattern by name (``COMBINEDAPACHELOG``, anchored at the start of the line) or a
    pattern string (``%{IP:client} %{GREEDYDATA:message}``). Raises :class:`GrokError`."""
    name = name_or_pattern.strip()
    if _NAME.fullmatch(name):
        if name not in library():
            raise GrokError(f"unknown grok pattern {name!r} (the library's names are listed in docs/ingest.md)")
        return compile_grok(f"^%{{{name}}}")
    return compile_grok(name_or_pattern)


def grok_record(line: str, name_or_pattern: str | Grok, *, received_ns: int, service: str = "", host: str = "",
                source: str = "") -> LogRecord:
    """A line to a :class:`LogRecord` through grok (see the module docstring)."""
    from loglens.parse import parse_line

    grok = name_or_pattern if isinstance(name_or_pattern, Grok) else resolve(name_or_pattern)
    if line and line[-1] in "\r\n":
        line = line.rstrip("\r\n")
    try:
        found = grok.match_span(line)
    except Exception:  # a bug must not drop a line
        found = None
    if found is None:
        rec = parse_line(line, received_ns=received_ns, service=service, host=host, source=source)
        rec.attributes["grok_failure"] = True
        return rec
    values, starts = found
    attributes: dict[str, Any] = {}
    timestamp = received_ns
    level = None
    header, message = "", line
    trace_id = ""
    for field, value in values.items():
        if field not in RECORD_FIELDS:
            attributes[field] = value
            continue
        text = str(value)
        if field == "timestamp":
            ts = parse_timestamp(text)
            if ts is None:
                attributes["timestamp_original"] = text
            else:
                timestamp = ts
        elif field == "message":
            start = starts["message"]
            header, message = line[:start], line[start:]
        elif field == "level":
            level = normalize_level(text)
        elif field == "trace_id":
            trace_id = text
        elif field == "host":
            if not host:
                host = text
            elif text != host:
                attributes["host.reported"] = text
        elif field == "service":
            if not service:
                service = text
            elif text != service:
                attributes["service.reported"] = text
    if level is None:
        from loglens.parse.levels import detect_level

        level = detect_level(message)[0]
    return LogRecord(timestamp, message, level, service, host, header, attributes, trace_id, received_ns, source)
