"""Map a decoded JSON log object to a :class:`LogRecord` by common field names, with no configuration.

Each role is filled by the first of its candidate names that is present, where a dotted name matches
both the flat key (``{"log.level": "x"}``) and the nested path (``{"log": {"level": "x"}}``):

=========  =======================================================================================
timestamp  ``@timestamp timestamp time ts date time_unix_nano timeUnixNano``
level      ``level severity log.level levelname loglevel severity_text severityText lvl``, then
           ``severity_number``/``severityNumber`` (OpenTelemetry numbers), then ``level_value``
           (logback's numeric level). A value that does not name a level is left as an attribute
           and the next candidate is tried; with no usable level field the level is detected in the
           message text.
message    ``message msg log event body``. ``log``/``event`` holding an object are ECS namespaces
           (``log.level``, ``event.dataset``), not messages. A string message loses a trailing
           newline (Docker's ``log`` field); any other value is rendered as compact JSON. Without a
           message field the message is the compact JSON of the whole object.
service    ``service service.name app application``; else the batch ``service`` argument; else, as
           a last resort, the logger name (``logger logger_name log.logger``). Logger names are class
           names with thousands of distinct values, so they never override a real service name, and
           they are always kept as attributes as well.
host       ``host hostname host.name host.hostname``; else the batch ``host`` argument.
trace_id   ``trace_id traceId traceID trace.id``.
=========  =======================================================================================

Stack traces (``stack_trace`` from logstash-logback-encoder, ``error.stack_trace`` from ECS,
``stacktrace``, ``exc_info``, ``exception``) stay attributes, and the text of the first one present
is also appended to the message after a newline (unless the message already contains it), so a
full-text search for an exception class or frame finds the record. This duplicates the text on
purpose: the message is what search and pattern mining read.

Everything not consumed becomes ``attributes``: nested objects flattened to dotted keys (``a.b.c``),
lists kept as lists, scalars with their JSON types. When a flat and a nested key collide, the first
one in the object wins. A missing or unreadable timestamp becomes ``received_ns``, with the original
value kept in the ``timestamp_original`` attribute. ``observed_at`` is always ``received_ns``.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from loglens.model import Level, LogRecord
from loglens.parse.levels import detect_level, normalize_level, normalize_otel_severity
from loglens.parse.timestamps import parse_timestamp

__all__ = ["record_from_json"]

_MISSING: Any = object()
_UNKNOWN = Level.UNKNOWN

TIMESTAMP_KEYS = ("@timestamp", "timestamp", "time", "ts", "date", "time_unix_nano", "timeUnixNano")
LEVEL_KEYS = (
    "level", "severity", "log.level", "levelname", "loglevel", "severity_text", "severityText", "lvl",
)  # fmt: skip
OTEL_NUMBER_KEYS = ("severity_number", "severityNumber")
LEVEL_FALLBACK_KEYS = ("level_value",)
MESSAGE_KEYS = ("message", "msg", "log", "event", "body")
_NAMESPACE_KEYS = frozenset(("log", "event", "body"))
SERVICE_KEYS = ("service", "service.name", "app", "application")
LOGGER_KEYS = ("logger", "logger_name", "log.logger")
HOST_KEYS = ("host", "hostname", "host.name", "host.hostname")
TRACE_KEYS = ("trace_id", "traceId", "traceID", "trace.id")
STACK_KEYS = ("stack_trace", "error.stack_trace", "stacktrace", "exc_info", "exception")


def _flatten(obj: dict[Any, Any], prefix: str, out: dict[str, Any], skip: object) -> None:
    for k, v in obj.items():
        if k == skip:
            continue
        key = prefix + (k if type(k) is str else str(k))
        if type(v) is dict and v:
            _flatten(v, key + ".", out, _MISSING)
        elif key not in out:
            out[key] = v


def _dumps(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except (TypeError, orjson.JSONEncodeError):  # e.g. ints beyond 64 bits, non-str keys
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str, skipkeys=True)


def _text(value: Any) -> str | None:
    """A scalar as a string for service/host/trace; None for objects, lists, bools and null."""
    t = type(value)
    if t is str:
        return str(value)
    if t is int or t is float:
        return str(value)
    return None


def _level_of(value: Any) -> Level:
    t = type(value)
    if t is str or t is int or t is float:
        return normalize_level(value)
    return _UNKNOWN


# role of every candidate key: (role, priority); lower priority wins
_N_ROLES = 9
_R_TS, _R_LEVEL, _R_OTEL, _R_LEVEL2, _R_SERVICE, _R_LOGGER, _R_HOST, _R_TRACE, _R_STACK = range(_N_ROLES)
_ROLE_OF: dict[str, tuple[int, int]] = {}
for _role, _keys in (
    (_R_TS, TIMESTAMP_KEYS),
    (_R_LEVEL, LEVEL_KEYS),
    (_R_OTEL, OTEL_NUMBER_KEYS),
    (_R_LEVEL2, LEVEL_FALLBACK_KEYS),
    (_R_SERVICE, SERVICE_KEYS),
    (_R_LOGGER, LOGGER_KEYS),
    (_R_HOST, HOST_KEYS),
    (_R_TRACE, TRACE_KEYS),
    (_R_STACK, STACK_KEYS),
):
    for _prio, _key in enumerate(_keys):
        _ROLE_OF[_key] = (_role, _prio)
_KNOWN = frozenset(_ROLE_OF)
_MESSAGE_SET = frozenset(MESSAGE_KEYS)


#: The best key for each role (see :func:`_best_keys`) by the keys of a flattened object: objects
#: of one source share a few key sets. Bounded: cleared when full.
_BEST_KEYS: dict[tuple[str, ...], list[str | None]] = {}
_BEST_KEYS_LIMIT = 4_096


def _best_keys(keys: tuple[str, ...]) -> list[str | None]:
    """The best (first in priority order) of ``keys`` for each role, None where none is present;
    remembered in :data:`_BEST_KEYS`."""
    best: list[str | None] = [None] * _N_ROLES
    for k in _KNOWN.intersection(keys):
        role, prio = _ROLE_OF[k]
        cur = best[role]
        if cur is None or prio < _ROLE_OF[cur][1]:
            best[role] = k
    if len(_BEST_KEYS) >= _BEST_KEYS_LIMIT:
        _BEST_KEYS.clear()
    _BEST_KEYS[keys] = best
    return best


def _scalar_role(flat: dict[str, Any], first: str | None, keys: tuple[str, ...]) -> tuple[str, str] | None:
    """The first key of ``keys`` (starting with ``first``, the best one present) whose value is a
    usable scalar, as (key, text)."""
    if first is None:
        return None
    s = _text(flat[first])
    if s:
        return first, s
    for k in keys[keys.index(first) + 1 :]:
        v = flat.get(k)
        s = _text(v) if v is not None else None
        if s:
            return k, s
    return None


def _take_scalar(flat: dict[str, Any], first: str | None, keys: tuple[str, ...]) -> str | None:
    """Remove and return the text of the first of ``keys`` (from ``first``) holding a usable scalar."""
    if first is None:
        return None
    value = flat[first]
    if type(value) is str and value:  # the usual case, without the search
        del flat[first]
        return value
    hit = _scalar_role(flat, first, keys)
    if hit is None:
        return None
    del flat[hit[0]]
    return hit[1]


def _level_role(flat: dict[str, Any], first: str | None, keys: tuple[str, ...], otel: bool) -> Level:
    """Level from the first key of ``keys`` (from ``first``) that names one; consumes that key."""
    if first is None:
        return _UNKNOWN
    for k in keys[keys.index(first) :]:
        v = flat.get(k, _MISSING)
        if v is _MISSING:
            continue
        if otel:
            t = type(v)
            if t is int or t is float:
                level = normalize_otel_severity(v)
            elif t is str and v.isdigit():
                level = normalize_otel_severity(int(v))
            else:
                level = _UNKNOWN
        else:
            level = _level_of(v)
        if level is not _UNKNOWN:
            del flat[k]
            return level
    return _UNKNOWN


def record_from_json(
    obj: dict[str, Any], *, received_ns: int, service: str = "", host: str = "", source: str = ""
) -> LogRecord:
    """Map a decoded JSON object to a :class:`LogRecord` (see the module docstring)."""
    if not isinstance(obj, dict):
        raise TypeError(f"obj must be a dict, not {type(obj).__name__}")
    # the message field first: an object there is the message, not attributes
    msg_key: Any = _MISSING
    msg_val: Any = None
    if not _MESSAGE_SET.isdisjoint(obj):
        for k in MESSAGE_KEYS:
            v = obj.get(k, _MISSING)
            if v is _MISSING or v is None or (k in _NAMESPACE_KEYS and type(v) is dict):
                continue
            msg_key, msg_val = k, v
            break

    if dict in map(type, obj.values()):
        flat: dict[str, Any] = {}
        _flatten(obj, "", flat, msg_key)
    else:
        flat = dict(obj)
        if msg_key is not _MISSING:
            del flat[msg_key]

    keys = tuple(flat)
    best = _BEST_KEYS.get(keys)
    if best is None:
        best = _best_keys(keys)

    # message
    if msg_key is _MISSING:
        message = _dumps(obj)
    elif type(msg_val) is str:
        message = msg_val
        if message and message[-1] == "\n":
            message = message.rstrip("\r\n")
    else:
        message = _dumps(msg_val)
    sk = best[_R_STACK]
    if sk is not None:
        st = flat[sk]
        if type(st) is str and st.strip() and st not in message:
            message = message + "\n" + st if message else st

    # timestamp
    timestamp = received_ns
    tk = best[_R_TS]
    if tk is not None:
        v = flat.pop(tk)
        t = type(v)
        ns = parse_timestamp(v) if t is str or t is int or t is float else None
        if ns is None:
            flat["timestamp_original"] = v
        else:
            timestamp = ns

    # level; the usual case first: the best key holds a level name
    key = best[_R_LEVEL]
    if key is not None and type(v := flat[key]) is str and (level := normalize_level(v)) is not _UNKNOWN:
        del flat[key]
    else:
        level = _level_role(flat, key, LEVEL_KEYS, False)
    if level is _UNKNOWN:
        level = _level_role(flat, best[_R_OTEL], OTEL_NUMBER_KEYS, True)
        if level is _UNKNOWN:
            level = _level_role(flat, best[_R_LEVEL2], LEVEL_FALLBACK_KEYS, False)
            if level is _UNKNOWN:
                level = detect_level(message)[0]

    # service, host, trace
    svc = _take_scalar(flat, best[_R_SERVICE], SERVICE_KEYS)
    if svc is None:
        svc = service
        if not svc:
            hit = _scalar_role(flat, best[_R_LOGGER], LOGGER_KEYS)
            if hit is not None:
                svc = hit[1]  # last resort; the logger stays an attribute too
    hst = _take_scalar(flat, best[_R_HOST], HOST_KEYS)
    if hst is None:
        hst = host
    trace = _take_scalar(flat, best[_R_TRACE], TRACE_KEYS) or ""

    # positional for speed: timestamp, message, level, service, host, header, attributes,
    # trace_id, observed_at, source
    return LogRecord(timestamp, message, level, svc, hst, "", flat, trace, received_ns, source)
