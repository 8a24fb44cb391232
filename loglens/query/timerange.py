"""Time-range parameters: absolute times, epoch numbers, ``now``, ``now-15m`` and bare durations.

Every result is an integer count of nanoseconds since the Unix epoch, UTC.
"""

from __future__ import annotations

import math
import re
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Final

__all__ = ["UNITS_NS", "now_ns", "parse_duration", "parse_time"]

_NS: Final = 1_000_000_000

#: Duration units and their length in nanoseconds.
UNITS_NS: Final[dict[str, int]] = {
    "ms": 1_000_000,
    "s": _NS,
    "m": 60 * _NS,
    "h": 3_600 * _NS,
    "d": 86_400 * _NS,
    "w": 7 * 86_400 * _NS,
}

_INT64_MAX: Final = 2**63 - 1
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)

_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d|w)")
_DURATION = re.compile(r"(?:[0-9]+(?:\.[0-9]+)?(?:ms|s|m|h|d|w))+")
_RELATIVE = re.compile(r"(?i:now)(?:\s*([+-])\s*(\S+))?")
_SIGNED_DURATION = re.compile(r"([+-]?)\s*(\S+)")
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_RFC3339 = re.compile(
    r"(?P<y>[0-9]{4})-(?P<mo>[0-9]{2})-(?P<d>[0-9]{2})"
    r"(?:[Tt ](?P<h>[0-9]{2}):(?P<mi>[0-9]{2})(?::(?P<s>[0-9]{2})(?:[.,](?P<f>[0-9]+))?)?"
    r"\s*(?P<z>[Zz]|[+-][0-9]{2}(?::?[0-9]{2})?)?)?"
)

_DURATION_FORMS: Final = (
    "a number with a unit, such as 500ms, 30s, 15m, 1h30m, 7d or 2w (units: ms, s, m, h, d, w)"
)
_TIME_FORMS: Final = (
    "an RFC 3339 / ISO 8601 time (2024-01-15T10:30:00Z, 2024-01-15 10:30:00+02:00, or a date "
    "2024-01-15 meaning midnight UTC; no zone means UTC), epoch seconds, milliseconds, "
    "microseconds or nanoseconds (1705314600, 1705314600123), 'now', 'now-15m', 'now+5m', "
    "or a duration meaning that long ago (15m, 1h, 7d; units: ms, s, m, h, d, w)"
)


def now_ns() -> int:
    """The current time in nanoseconds since the epoch."""
    return time.time_ns()


def parse_duration(value: str) -> int:
    """``30s``, ``15m``, ``1h30m``, ``1.5h``, ``7d``, ``2w``, ``500ms`` to nanoseconds.

    Components may repeat in any order and add up; fractions are allowed. Raises ``ValueError``.
    """
    text = value.strip() if isinstance(value, str) else ""
    if not text or _DURATION.fullmatch(text) is None:
        raise ValueError(f"cannot parse duration {value!r}: expected {_DURATION_FORMS}")
    total = Decimal(0)
    for number, unit in _DURATION_PART.findall(text):
        total += Decimal(number) * UNITS_NS[unit]
    return int(total.to_integral_value())


def _epoch_ns(number: Decimal) -> int:
    """Epoch seconds, ms, µs or ns, told apart by magnitude, to nanoseconds."""
    magnitude = abs(number)
    if magnitude < Decimal("1e11"):  # seconds up to the year 5138
        scale = _NS
    elif magnitude < Decimal("1e14"):  # milliseconds from 1973 on
        scale = 1_000_000
    elif magnitude < Decimal("1e17"):  # microseconds from 1973 on
        scale = 1_000
    elif magnitude < Decimal("1e19"):  # nanoseconds
        scale = 1
    else:  # beyond any int64 nanosecond time: report it as out of range without building a huge int
        return 2**63 if number > 0 else -(2**63)
    return int((number * scale).to_integral_value())


def _rfc3339_ns(m: re.Match[str]) -> int:
    hour = int(m.group("h") or 0)
    minute = int(m.group("mi") or 0)
    second = int(m.group("s") or 0)
    leap = second == 60  # RFC 3339 allows a leap second; count it as the next second
    start = datetime(
        int(m.group("y")), int(m.group("mo")), int(m.group("d")), hour, minute,
        59 if leap else second, tzinfo=UTC,
    )
    delta = start - _EPOCH
    seconds = delta.days * 86_400 + delta.seconds + (1 if leap else 0)
    fraction = m.group("f") or ""
    nanos = int(fraction[:9].ljust(9, "0")) if fraction else 0
    zone = m.group("z")
    if zone and zone not in "Zz":
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        hours, minutes = int(digits[:2]), int(digits[2:] or 0)
        if hours > 23 or minutes > 59:
            raise ValueError("bad zone offset")
        seconds -= sign * (hours * 3_600 + minutes * 60)
    return seconds * _NS + nanos


def _iso_ns(text: str) -> int:
    m = _RFC3339.fullmatch(text)
    if m is not None:
        return _rfc3339_ns(m)
    parsed = datetime.fromisoformat(text)  # other ISO 8601 spellings (basic format, week dates...)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    delta = parsed - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * _NS + delta.microseconds * 1_000


def parse_time(value: str | int | float | None, *, now_ns: int | None = None) -> int | None:
    """A time parameter (``from``/``to``, ``--since``) to UTC nanoseconds; None for None or "".

    Accepted: RFC 3339 / ISO 8601 (no zone means UTC, a date alone is midnight UTC), epoch
    seconds/ms/µs/ns told apart by magnitude (numbers or numeric strings), ``now``,
    ``now-1h``/``now+5m``/``now-1h30m``, and a bare duration ``1h`` (or ``-1h``) meaning that long
    before now. ``now_ns`` fixes "now" (for tests and for one consistent now across parameters).
    Raises ``ValueError`` naming the value and the accepted forms.
    """
    if value is None:
        return None
    if isinstance(value, str) and not value.strip():
        return None
    try:
        ns = _parse_time(value, now_ns)
    except (ValueError, ArithmeticError, TypeError):
        ns = None
    if ns is None:
        raise ValueError(f"cannot parse time {value!r}: expected {_TIME_FORMS}")
    if not -_INT64_MAX <= ns <= _INT64_MAX:
        raise ValueError(f"time {value!r} is out of range (years 1677 to 2262)")
    return ns


def _parse_time(value: object, now: int | None) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return _epoch_ns(Decimal(value))
    if isinstance(value, float):
        return _epoch_ns(Decimal(repr(value))) if math.isfinite(value) else None
    if not isinstance(value, str):
        return None
    text = value.strip()
    if _NUMBER.fullmatch(text):
        return _epoch_ns(Decimal(text))
    current = now if now is not None else time.time_ns()
    relative = _RELATIVE.fullmatch(text)
    if relative is not None:
        sign, duration = relative.groups()
        if sign is None:
            return current
        offset = parse_duration(duration)
        return current + offset if sign == "+" else current - offset
    signed = _SIGNED_DURATION.fullmatch(text)
    if signed is not None and _DURATION.fullmatch(signed.group(2)):
        offset = parse_duration(signed.group(2))
        return current + offset if signed.group(1) == "+" else current - offset
    return _iso_ns(text)
