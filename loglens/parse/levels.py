"""Severity levels: normalising a level field, and finding a level in free text.

Mapping rules (a level we cannot map is ``Level.UNKNOWN``; nothing is ever guessed as INFO):

Names (case-insensitive, surrounding whitespace/brackets ignored):

* ``trace``, ``finest``, ``finer``, ``verbose``/``vrb``, ``all``, ``T``, ``V`` → TRACE
* ``debug``, ``dbg``, ``fine``, ``config``, ``D`` → DEBUG
* ``info``, ``inf``, ``information(al)``, ``notice``, ``I`` → INFO
* ``warn``, ``warning``, ``wrn``, ``W`` → WARN
* ``error``, ``err``, ``erro``, ``eror``, ``severe``, ``dpanic`` (zap), ``E`` → ERROR
* ``fatal``, ``ftl``, ``crit``, ``critical``, ``alert``, ``emerg``, ``emergency``, ``panic``, ``F`` → FATAL

  ``crit``/``critical``/``alert``/``emerg``/``panic`` are "the process or system is in trouble"
  (syslog severities 0-2), hence FATAL; Java's ``SEVERE`` is an ordinary error, hence ERROR.
  OpenTelemetry short names with a digit suffix (``INFO2``, ``WARN4``) map like their base name.

Numbers (ints, integral floats and numeric strings):

* 0..7 → syslog severity: 0-2 FATAL, 3 ERROR, 4 WARN, 5-6 INFO, 7 DEBUG.
* 8..24 → OpenTelemetry severity number (see :func:`normalize_otel_severity`). The 1..7 range is
  ambiguous between syslog and OTel; a plain number there is read as syslog. A field *named* like
  ``severity_number``/``severityNumber`` must be given to :func:`normalize_otel_severity` instead
  (the JSON mapper does that).
* 30/40/50/60 (and the decades up to 69) → pino/bunyan: INFO/WARN/ERROR/FATAL (Node's de-facto JSON
  logger; ``"level": 30`` is far more common in JSON logs than Python's numeric levels).
* 100/200/300/400/500/600 → log4j2 ``intLevel``: FATAL/ERROR/WARN/INFO/DEBUG/TRACE.
* 700/800/900/1000 → java.util.logging CONFIG/INFO/WARNING/SEVERE → DEBUG/INFO/WARN/ERROR.
* 5000/10000/20000/30000/40000/50000 → log4j 1 / logback ``level_value``: TRACE/DEBUG/INFO/WARN/
  ERROR/FATAL.
* anything else → UNKNOWN.
"""

from __future__ import annotations

import math
import re

from loglens.model import Level

__all__ = ["detect_level", "normalize_level", "normalize_otel_severity"]

_T, _D, _I, _W, _E, _F = Level.TRACE, Level.DEBUG, Level.INFO, Level.WARN, Level.ERROR, Level.FATAL

_NAMES: dict[str, Level] = {
    "trace": _T, "finest": _T, "finer": _T, "verbose": _T, "vrb": _T, "all": _T, "t": _T, "v": _T,
    "trc": _T, "trce": _T,
    "debug": _D, "dbg": _D, "debu": _D, "fine": _D, "config": _D, "d": _D,
    "info": _I, "inf": _I, "information": _I, "informational": _I, "notice": _I, "i": _I, "not": _I,
    "warn": _W, "warning": _W, "wrn": _W, "warnings": _W, "w": _W,
    "error": _E, "err": _E, "erro": _E, "eror": _E, "errors": _E, "severe": _E, "dpanic": _E, "e": _E,
    "fatal": _F, "ftl": _F, "crit": _F, "critical": _F, "alert": _F, "emerg": _F, "emergency": _F,
    "panic": _F, "f": _F, "crt": _F, "fata": _F,
}  # fmt: skip

_FAST_NAMES: dict[str, Level] = {
    variant: lv for name, lv in _NAMES.items() for variant in (name, name.upper(), name.title())
}
_UNKNOWN = Level.UNKNOWN
_SYSLOG: tuple[Level, ...] = (_F, _F, _F, _E, _W, _I, _I, _D)
_LOG4J2 = {100: _F, 200: _E, 300: _W, 400: _I, 500: _D, 600: _T}
_JUL = {700: _D, 800: _I, 900: _W, 1000: _E}
_LOG4J1 = {5000: _T, 10000: _D, 20000: _I, 30000: _W, 40000: _E, 50000: _F}
_PINO = {3: _I, 4: _W, 5: _E, 6: _F}

_NUMERIC = re.compile(r"[+-]?\d+(?:\.0*)?")


def normalize_otel_severity(n: int) -> Level:
    """OpenTelemetry ``SeverityNumber`` (1-24) to a level; 0 or out of range → UNKNOWN.

    1-4 TRACE, 5-8 DEBUG, 9-12 INFO, 13-16 WARN, 17-20 ERROR, 21-24 FATAL.
    """
    v: object = n
    if isinstance(v, bool):
        return Level.UNKNOWN
    if isinstance(v, float):
        if not (math.isfinite(v) and v.is_integer()):
            return Level.UNKNOWN
        v = int(v)
    if not isinstance(v, int):
        return Level.UNKNOWN
    if 1 <= v <= 24:
        return Level((v - 1) // 4 + 1)
    return Level.UNKNOWN


def _from_int(n: int) -> Level:
    if 0 <= n <= 7:
        return _SYSLOG[n]
    if n <= 24:
        return normalize_otel_severity(n)
    if 30 <= n < 70:
        return _PINO.get(n // 10, Level.UNKNOWN)
    return _LOG4J2.get(n) or _JUL.get(n) or _LOG4J1.get(n) or Level.UNKNOWN


def normalize_level(value: str | int | float) -> Level:
    """A level field value (name, abbreviation or number) to a :class:`Level`; see the module doc."""
    if isinstance(value, str):
        lv = _FAST_NAMES.get(value)  # fast path: lower, upper or title case, no blanks
        if lv is not None:
            return lv
        s = value.strip().strip("[]<>()").strip().lower()
        lv = _NAMES.get(s)
        if lv is not None:
            return lv
        if not s:
            return Level.UNKNOWN
        if s[-1].isdigit():
            if _NUMERIC.fullmatch(s):
                try:
                    return _from_int(int(float(s)))
                except (ValueError, OverflowError):
                    return Level.UNKNOWN
            base = s.rstrip("0123456789")
            if base in _NAMES and len(base) > 1:  # OTel "INFO2", "WARN4"
                return _NAMES[base]
        return Level.UNKNOWN
    if isinstance(value, bool):
        return Level.UNKNOWN
    if isinstance(value, int):
        return _from_int(value)
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            return _from_int(int(value))
        return Level.UNKNOWN
    raise TypeError(f"level must be str, int or float, not {type(value).__name__}")


# --- detection in free text --------------------------------------------------------------------

_UPPER_WORDS: dict[str, Level] = {
    "TRACE": _T, "DEBUG": _D, "INFO": _I, "WARN": _W, "WARNING": _W, "ERROR": _E, "FATAL": _F,
    "CRITICAL": _F, "SEVERE": _E,
}  # fmt: skip
_TITLE_WORDS: dict[str, Level] = {"Error": _E, "Warning": _W, "Fatal": _F, "Critical": _F}

_HEAD_WINDOW = 120
_KV_WINDOW = 2000

_KV = re.compile(
    r"""(?<![\w.])(")?(?:log[._]?level|level|lvl|severity|loglevel|levelname|severity_text)"""
    r"""(?(1)"\s*:\s*|=)(")?([A-Za-z]{1,13}\d?|\d{1,5})\b"""
)
_BRACKET = re.compile(
    r"\[(?:[\w\-]+:)?((?i:trace|debug|info|notice|warn|warning|error|err|crit|critical|alert"
    r"|emerg|fatal|severe))\]"
)
_LT = re.compile(r"<([TDIWEF])>")
_GLOG = re.compile(r"([IWEF])\d{4} \d\d:\d\d:\d\d")
_GLOG_LEVEL = {"I": _I, "W": _W, "E": _E, "F": _F}
_NOT_FOUND: tuple[Level, int, int] = (Level.UNKNOWN, -1, -1)
# Upper-case words and "Error:"-style words; the first character class lets the regex engine skip
# quickly through lower-case text. A hit is checked against the word tables and its boundaries.
_UP_CANDIDATE = re.compile(r"[EWIDTFCS](?:RROR|ARN|NFO|EBUG|RACE|ATAL|RITICAL|EVERE|rror:|arning:|atal:|ritical:)")
_BEFORE_BAD = frozenset("._-/$")
_AFTER_BAD = frozenset("_-/$")


def _word_char(c: str) -> bool:
    return c.isalnum() or c == "_"


def _upper(head: str) -> tuple[Level, int, int] | None:
    m = _UP_CANDIDATE.search(head)
    n = len(head)
    while m is not None:
        tok = m.group()
        start = m.start()
        found: tuple[Level, int, int] | None = None
        c = head[start - 1] if start > 0 else " "
        if tok[-1] == ":":
            lv = _TITLE_WORDS.get(tok[:-1])
            if lv is not None and not (_word_char(c) or c in "._-"):
                found = (lv, start, start + len(tok) - 1)
        elif not (_word_char(c) or c in _BEFORE_BAD):
            end = m.end()
            if tok == "WARN" and head.startswith("ING", end):
                end += 3
            lv = _UPPER_WORDS.get(head[start:end])
            if lv is not None:
                c = head[end] if end < n else " "
                dot_word = c == "." and _word_char(head[end + 1 : end + 2] or " ")
                if not (c in _AFTER_BAD or _word_char(c) or dot_word):
                    found = (lv, start, end)
        if found is not None:
            return found
        m = _UP_CANDIDATE.search(head, start + 1)
    return None


def _kv(text: str, pos: int, endpos: int, at_most: int) -> tuple[Level, int, int] | None:
    """The first key=value / "key":"value" level form starting in [pos, at_most]."""
    for m in _KV.finditer(text, pos, endpos):
        if m.start() > at_most:
            return None
        lv = normalize_level(m.group(3))
        if lv is not _UNKNOWN:
            end = m.end()
            if m.group(2) and text[end : end + 1] == '"':
                end += 1  # the closing quote
            return lv, m.start(), end
    return None


def detect_level(text: str) -> tuple[Level, int, int]:
    """Find a level token in free text: ``(level, start, end)`` or ``(UNKNOWN, -1, -1)``.

    Recognised: a glog/klog prefix at the start (``E1122 10:00:00.123 ...``); whole-token upper case
    ``ERROR WARN WARNING INFO DEBUG TRACE FATAL CRITICAL SEVERE`` (not inside identifiers such as
    ``NO_ERROR``); ``Error:``/``Warning:``/``Fatal:``/``Critical:``; bracketed names of any case
    (``[warn]``, ``[error]``, Apache 2.4 ``[core:error]``); ``<E>``; ``level=error``, ``lvl=warn``,
    ``severity=...``, ``"level":"error"``. These are looked for in the first 120 characters only, so
    a word deep inside a message does not count; key=value forms are also looked for further on
    (up to 2,000 characters). Lower-case bare words ("no error found") never count. The leftmost
    candidate wins.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be str, not {type(text).__name__}")
    c = text[:1]
    if c in _GLOG_LEVEL and _GLOG.match(text):
        return _GLOG_LEVEL[c], 0, 1
    head = text[:_HEAD_WINDOW]
    best = _upper(head) if _UP_CANDIDATE.search(head) is not None else None
    limit = len(head) if best is None else best[1]
    if head.find("[", 0, limit) >= 0:
        m = _BRACKET.search(head, 0, limit + 24)
        if m is not None and m.start() < limit:
            best, limit = (normalize_level(m.group(1)), m.start(), m.end()), m.start()
    if head.find("<", 0, limit) >= 0:
        m = _LT.search(head, 0, limit + 3)
        while m is not None and m.start() < limit:
            if m.start() == 0 or not _word_char(head[m.start() - 1]):
                best, limit = (_NAMES[m.group(1).lower()], m.start(), m.end()), m.start()
                break
            m = _LT.search(head, m.start() + 1, limit + 3)
    if "lev" in head or "lvl" in head or "sever" in head:
        found = _kv(text, 0, min(len(text), limit + 40), limit - 1)
        if found is not None:
            best = found
    if best is not None:
        return best
    if len(text) > _HEAD_WINDOW:
        tail = text[:_KV_WINDOW]
        if "lev" in tail or "lvl" in tail or "sever" in tail:
            found = _kv(tail, _HEAD_WINDOW - 24, len(tail), len(tail))
            if found is not None and found[1] >= _HEAD_WINDOW - 24:
                return found
    return _NOT_FOUND
