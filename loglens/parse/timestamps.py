"""Timestamps: field values and line prefixes to integer UTC nanoseconds.

Accepted shapes (a missing zone means UTC):

* RFC 3339 / ISO 8601: ``2024-01-15T10:00:00.123456789+01:00``, ``T`` or space, any fraction
  (``.`` or ``,``), zone ``Z`` / ``+hh:mm`` / ``+hhmm`` / ``+hh`` / `` UTC``; basic form
  ``20240115T100000Z``; a bare date ``2024-01-15`` (field values only) is midnight UTC.
* ``2024/01/15 10:00:00`` (Go, nginx), BGL ``2005-06-03-15.42.50.675872``, HDFS ``081109 203615``
  (yyMMdd HHmmss), Spark/Hadoop ``17/06/09 20:10:40`` (yy/MM/dd).
* syslog ``Jan 12 10:00:01`` (no year: the current year, or the previous one when that would put
  the time more than a day in the future), ctime ``Sun Dec 04 04:47:44 2005`` (Apache error log),
  Apache access ``10/Oct/2000:13:55:36 -0700``; the bracketed forms of all of the above.
* epoch seconds / milliseconds / microseconds / nanoseconds, chosen by magnitude: below 1e11 is
  seconds, below 1e14 milliseconds, below 1e17 microseconds, else nanoseconds (ints, floats and
  numeric strings; numeric strings keep their full decimal precision). As a *line prefix* only a
  10-digit (optionally fractional) or 13-digit number counts, to avoid reading counters as times.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable

__all__ = ["find_leading_timestamp", "parse_timestamp"]

_NS = 1_000_000_000
_MONTHS = {
    "jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6,
    "jul": 7, "aug": 8, "sep": 9, "oct": 10, "nov": 11, "dec": 12,
}  # fmt: skip
_MON_RE = r"(?i:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)"
_DAY_RE = r"(?i:mon|tue|wed|thu|fri|sat|sun)"
_PAD = (1, 10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000, 1_000_000_000)

# Timestamp kinds, used by the header splitter to decide whether a host may follow.
KIND_OTHER = 0
KIND_HOSTY = 1  # syslog (RFC 3164) and RFC 3339 with T and zone (rsyslog): a host may follow

# Every line-prefix format regex has exactly three groups: (key, fraction, zone). ``key`` is the
# text up to whole seconds; its conversion to epoch seconds is cached per format, so a run of lines
# from the same second costs one regex match and a dict lookup.
_FRAC = r"(?:[.,](\d{1,12}))?"
_ZONE = r"(?:(Z|z|[ ]?[+-]\d\d(?::?\d\d)?|[ ](?:UTC|GMT))(?![\w:]))?"
_ISO = re.compile(r"(\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d(?::\d\d)?)" + _FRAC + _ZONE)
_BGL = re.compile(r"(\d{4}-\d\d-\d\d-\d\d\.\d\d\.\d\d)(?:\.(\d{1,12}))?()")
_SLASH_YMD = re.compile(r"(\d{4}/\d\d/\d\d[ T]\d\d:\d\d:\d\d)" + _FRAC + _ZONE)
_SLASH_YY = re.compile(r"(\d\d/\d\d/\d\d \d\d:\d\d:\d\d)" + _FRAC + "()")
_HDFS = re.compile(r"(\d{6} \d{6})" + _FRAC + r"()(?![\d:])")
_ISO_BASIC = re.compile(r"(\d{8}T\d{6})" + _FRAC + _ZONE)
_CLF = re.compile(r"(\d\d/" + _MON_RE + r"/\d{4}:\d\d:\d\d:\d\d)" + _FRAC + r"(?: ([+-]\d{4}))?")
_SYSLOG = re.compile(r"(" + _MON_RE + r" {1,2}\d{1,2} \d\d:\d\d:\d\d)" + _FRAC + "()")
_CTIME = re.compile(
    r"(" + _DAY_RE + r",? " + _MON_RE + r" {1,2}\d{1,2} \d\d:\d\d:\d\d)" + _FRAC + r"(?: (?:UTC|GMT))? (\d{4})"
)
_EPOCH_PREFIX = re.compile(r"(\d{10}|\d{13})(?:\.(\d{1,9}))?()(?=[\s\]]|$)")
_NUMBER = re.compile(r"\s*(?P<neg>-)?(?P<i>\d+)(?:\.(?P<f>\d*))?\s*")
_ISO_DATE = re.compile(r"(\d{4})-(\d\d)-(\d\d)")

# days since 1970-01-01 for (y, m, d); None for an invalid date. Bounded: cleared when large.
_DAYS_CACHE: dict[tuple[int, int, int], int | None] = {}
_MDAYS = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _days(y: int, m: int, d: int) -> int | None:
    key = (y, m, d)
    days = _DAYS_CACHE.get(key, -1)
    if days != -1:
        return days
    if not (1 <= m <= 12 and 1 <= d <= _MDAYS[m]) or (
        m == 2 and d == 29 and not (y % 4 == 0 and (y % 100 != 0 or y % 400 == 0))
    ):
        result: int | None = None
    else:
        # days from civil (proleptic Gregorian)
        yy = y - (m <= 2)
        era = yy // 400
        yoe = yy - era * 400
        doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
        doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
        result = era * 146097 + doe - 719468
    if len(_DAYS_CACHE) > 4096:
        _DAYS_CACHE.clear()
    _DAYS_CACHE[key] = result
    return result


def _frac_ns(f: str | None) -> int:
    if not f:
        return 0
    if len(f) >= 9:
        return int(f[:9])
    return int(f) * _PAD[9 - len(f)]


def _zone_s(z: str) -> int | None:
    """Zone suffix to an offset in seconds east of UTC; None when malformed."""
    if z == "Z" or z == "z":
        return 0
    z = z.strip()
    if z == "UTC" or z == "GMT":
        return 0
    sign = -1 if z[0] == "-" else 1
    digits = z[1:].replace(":", "")
    hh = int(digits[:2])
    mm = int(digits[2:4]) if len(digits) >= 4 else 0
    if hh > 23 or mm > 59:
        return None
    return sign * (hh * 3600 + mm * 60)


def _secs(y: int, mo: int, d: int, h: int, mi: int, s: int) -> int | None:
    if h > 23 or mi > 59 or s > 60:
        return None
    days = _days(y, mo, d)
    if days is None:
        return None
    return days * 86400 + h * 3600 + mi * 60 + s


_DATE_CACHE: dict[str, int | None] = {}  # "2024-01-15" (any separators) -> days since the epoch


def _key_iso(k: str) -> int | None:  # 2024-01-15T10:00[:00] (also BGL and 2024/01/15 layouts)
    date = k[:10]
    days = _DATE_CACHE.get(date, -1)
    if days == -1:
        days = _days(int(k[0:4]), int(k[5:7]), int(k[8:10]))
        if len(_DATE_CACHE) > 4096:
            _DATE_CACHE.clear()
        _DATE_CACHE[date] = days
    if days is None:
        return None
    h = int(k[11:13])
    mi = int(k[14:16])
    s = int(k[17:19]) if len(k) > 16 else 0
    if h > 23 or mi > 59 or s > 60:
        return None
    return days * 86400 + h * 3600 + mi * 60 + s


def _key_yy(k: str) -> int | None:  # 17/06/09 20:10:40
    return _secs(2000 + int(k[0:2]), int(k[3:5]), int(k[6:8]), int(k[9:11]), int(k[12:14]), int(k[15:17]))


def _key_hdfs(k: str) -> int | None:  # 081109 203615
    return _secs(2000 + int(k[0:2]), int(k[2:4]), int(k[4:6]), int(k[7:9]), int(k[9:11]), int(k[11:13]))


def _key_basic(k: str) -> int | None:  # 20240115T100000
    return _secs(int(k[0:4]), int(k[4:6]), int(k[6:8]), int(k[9:11]), int(k[11:13]), int(k[13:15]))


def _key_clf(k: str) -> int | None:  # 10/Oct/2000:13:55:36
    return _secs(int(k[7:11]), _MONTHS[k[3:6].lower()], int(k[0:2]), int(k[12:14]), int(k[15:17]),
                 int(k[18:20]))  # fmt: skip


def _key_ctime(k: str) -> int | None:  # "Sun Dec 04 04:47:44 2005" (the year group appended to the key)
    parts = k.replace(",", "").split()
    h, mi, s = parts[3].split(":")
    return _secs(int(parts[4]), _MONTHS[parts[1].lower()], int(parts[2]), int(h), int(mi), int(s))


def _key_syslog(k: str) -> int | None:  # Jan 12 10:00:01 -> this year (see _yearless)
    parts = k.split()
    h, mi, s = parts[2].split(":")
    return _yearless(_MONTHS[parts[0].lower()], int(parts[1]), int(h), int(mi), int(s))


_year_cache: list[float] = [0.0, -1.0, 0.0]  # [current UTC year, epoch second when it ends, start]


def _current_year(now: float) -> int:
    if not (_year_cache[2] <= now < _year_cache[1]):
        year = time.gmtime(now).tm_year
        _year_cache[0] = year
        _year_cache[1] = float((_days(year + 1, 1, 1) or 0) * 86400)
        _year_cache[2] = float((_days(year, 1, 1) or 0) * 86400)
        _SYSLOG_CACHE.clear()
    return int(_year_cache[0])


_SYSLOG_CACHE: dict[str, tuple[int | None, float]] = {}  # key -> (seconds, valid until)


def _yearless(mo: int, d: int, h: int, mi: int, s: int) -> int | None:
    """Seconds for a time without a year: this year, or the previous one if this year's would be
    more than a day in the future (Feb 29 goes back to the last leap year)."""
    if h > 23 or mi > 59 or s > 60 or not (1 <= mo <= 12 and 1 <= d <= _MDAYS[mo]):
        return None
    now = time.time()
    year = _current_year(now)
    tod = h * 3600 + mi * 60 + s
    for y in range(year, year - 8, -1):
        days = _days(y, mo, d)
        if days is None:
            continue
        secs = days * 86400 + tod
        if y == year and secs > now + 86400:
            continue
        return secs
    return None


def _syslog_secs(key: str) -> int | None:
    now = time.time()
    hit = _SYSLOG_CACHE.get(key)
    if hit is not None and now < hit[1]:
        return hit[0]
    secs = _key_syslog(key)
    # the choice of year can change when "now" moves past this year's candidate minus a day
    year = _current_year(now)
    valid = _year_cache[1]
    if secs is not None and secs < (_days(year, 1, 1) or 0) * 86400:
        valid = min(valid, float(secs + _year_seconds(year - 1) - 86400))
    if len(_SYSLOG_CACHE) > 4096:
        _SYSLOG_CACHE.clear()
    _SYSLOG_CACHE[key] = (secs, valid)
    return secs


def _year_seconds(y: int) -> int:
    return ((_days(y + 1, 1, 1) or 0) - (_days(y, 1, 1) or 0)) * 86400


# Format table: (regex, key -> epoch seconds, cache of key -> seconds, kind, special).
# "special" formats (syslog: year depends on now; ctime: the year is a separate group; epoch: no
# calendar) are converted by _special instead of the cached path.
TsFormat = tuple[re.Pattern[str], Callable[[str], "int | None"], dict[str, int], int, bool]
_F_ISO: TsFormat = (_ISO, _key_iso, {}, KIND_OTHER, False)
_F_BGL: TsFormat = (_BGL, _key_iso, {}, KIND_OTHER, False)
_F_SLASH_YMD: TsFormat = (_SLASH_YMD, _key_iso, {}, KIND_OTHER, False)
_F_SLASH_YY: TsFormat = (_SLASH_YY, _key_yy, {}, KIND_OTHER, False)
_F_HDFS: TsFormat = (_HDFS, _key_hdfs, {}, KIND_OTHER, False)
_F_BASIC: TsFormat = (_ISO_BASIC, _key_basic, {}, KIND_OTHER, False)
_F_CLF: TsFormat = (_CLF, _key_clf, {}, KIND_OTHER, False)
_F_CTIME: TsFormat = (_CTIME, _key_ctime, {}, KIND_OTHER, True)
_F_SYSLOG: TsFormat = (_SYSLOG, _key_syslog, {}, KIND_HOSTY, True)
_F_EPOCH: TsFormat = (_EPOCH_PREFIX, int, {}, KIND_OTHER, True)
_INVALID = -(1 << 80)  # cached marker for a key that is not a valid date/time
_ZONE_CACHE: dict[str, int] = {"Z": 0, "z": 0}
_VALUE_CACHE: dict[str, int] = {}  # recent parse_timestamp string values (digit-first, not yearless)
#: ISO 8601 values with a fraction (``2024-01-15T10:00:00.123Z``, ``...123+01:00``) by their second
#: and zone: the ns of that second, learnt from a value parsed in full. A stream of them is read
#: with a slice and an int() instead of a regex match (a sixth of mapping a JSON record).
_SECOND_CACHE: dict[str, int] = {}


def _zone(z: str) -> int:
    off = _ZONE_CACHE.get(z)
    if off is None:
        parsed = _zone_s(z)
        off = _INVALID if parsed is None else parsed
        if len(_ZONE_CACHE) < 1024:
            _ZONE_CACHE[z] = off
    return off


def _special(fmt: TsFormat, key: str, f: str | None, z: str | None) -> tuple[int, int] | None:
    if fmt is _F_EPOCH:
        if len(key) == 13:  # milliseconds
            return int(key) * 1_000_000 + (_frac_ns(f) // 1000 if f else 0), KIND_OTHER
        return int(key) * _NS + _frac_ns(f), KIND_OTHER
    if fmt is _F_SYSLOG:
        secs = _syslog_secs(key)
    else:  # ctime: z holds the year
        key = key + " " + (z or "")
        cache = fmt[2]
        cached = cache.get(key)
        if cached is None:
            secs = _key_ctime(key)
            if len(cache) > 4096:
                cache.clear()
            cache[key] = _INVALID if secs is None else secs
        else:
            secs = None if cached == _INVALID else cached
    if secs is None:
        return None
    return secs * _NS + _frac_ns(f), fmt[3]


def ts_from_groups(fmt: TsFormat, key: str, f: str | None, z: str | None) -> tuple[int, int] | None:
    """(ns, kind) from a format regex's three groups (key, fraction, zone)."""
    if fmt[4]:
        return _special(fmt, key, f, z)
    cache = fmt[2]
    secs = cache.get(key)
    if secs is None:
        conv = fmt[1](key)
        secs = _INVALID if conv is None else conv
        if len(cache) > 4096:
            cache.clear()
        cache[key] = secs
    if secs == _INVALID:
        return None
    kind = fmt[3]
    if z:
        off = _ZONE_CACHE.get(z)
        if off is None:
            off = _zone(z)
        if off == _INVALID:
            return None
        secs -= off
        if fmt is _F_ISO and key[10] != " ":
            kind = KIND_HOSTY
    if f:
        n = len(f)
        if n < 9:
            return secs * _NS + int(f) * _PAD[9 - n], kind
        return secs * _NS + int(f[:9]), kind
    return secs * _NS, kind


def _match_fmt(fmt: TsFormat, line: str, pos: int) -> tuple[int, int, int] | None:
    m = fmt[0].match(line, pos)
    if m is None:
        return None
    key, f, z = m.groups()
    found = ts_from_groups(fmt, key, f, z)
    if found is None:
        return None
    return found[0], m.end(), found[1]


def _pick(line: str, pos: int, epoch: bool) -> TsFormat | None:
    """The only format that can match at ``pos``, from a few character checks."""
    try:
        c = line[pos]
        if "0" <= c <= "9":
            c4 = line[pos + 4]
            if c4 == "-":
                return _F_BGL if line[pos + 10] == "-" else _F_ISO
            if c4 == "/":
                return _F_SLASH_YMD
            if line[pos + 2] == "/":
                c3 = line[pos + 3]
                return _F_SLASH_YY if "0" <= c3 <= "9" else _F_CLF
            if line[pos + 6] == " ":
                return _F_HDFS
            if line[pos + 8] == "T":
                return _F_BASIC
            return _F_EPOCH if epoch else None
        if c.isalpha():
            return (
                _F_CTIME
                if line[pos + 3 : pos + 4] in (" ", ",")
                and c.upper() in "MTWFS"
                and (line[pos : pos + 3].lower() in ("mon", "tue", "wed", "thu", "fri", "sat", "sun"))
                else _F_SYSLOG
            )
    except IndexError:
        return None
    return None


_last: list[TsFormat | None] = [None]  # the format that matched the previous line


def _match_at(line: str, pos: int, epoch: bool) -> tuple[int, int, int] | None:
    """A timestamp starting exactly at ``pos``: (ns, end, kind) or None. The formats are mutually
    exclusive, so trying the previous line's format first is only a shortcut."""
    last = _last[0]
    if last is not None and (epoch or last is not _F_EPOCH):
        found = _match_fmt(last, line, pos)
        if found is not None:
            return found
    fmt = _pick(line, pos, epoch)
    if fmt is None or fmt is last:
        return None
    found = _match_fmt(fmt, line, pos)
    if found is not None:
        _last[0] = fmt
    return found


def leading_ex(line: str) -> tuple[int, int, int, TsFormat, bool] | None:
    """(ns, end, kind, format, bracketed) of a timestamp at the start of ``line`` (after blanks
    and an optional ``[``); a bracketed timestamp must be closed right after it and ``end``
    includes the ``]``."""
    if not line:
        return None
    c = line[0]
    pos = 0
    if c == " " or c == "\t":
        n = len(line)
        while pos < n and line[pos] in " \t":
            pos += 1
        if pos >= n:
            return None
        c = line[pos]
    if c == "[":
        found = _match_at(line, pos + 1, True)
        if found is None:
            return None
        end = found[1]
        if line[end : end + 1] != "]":
            return None
        return found[0], end + 1, found[2], _last[0] or _F_ISO, True
    found = _match_at(line, pos, True)
    if found is None:
        return None
    return found[0], found[1], found[2], _last[0] or _F_ISO, False


def _leading(line: str) -> tuple[int, int, int] | None:
    found = leading_ex(line)
    return None if found is None else (found[0], found[1], found[2])


def find_leading_timestamp(line: str) -> tuple[int, int] | None:
    """If ``line`` starts (after blanks and an optional ``[``) with a timestamp, return
    ``(ns, end)`` where ``end`` is the offset just after it (after the ``]`` when bracketed)."""
    if not isinstance(line, str):
        raise TypeError(f"line must be str, not {type(line).__name__}")
    try:
        found = _leading(line)
    except (ValueError, OverflowError, IndexError):
        return None
    return None if found is None else (found[0], found[1])


def _from_decimal(neg: bool, i: str, f: str | None) -> int | None:
    """An exact decimal number of seconds/ms/µs/ns (unit chosen by magnitude) to ns."""
    whole = int(i)
    if whole < 100_000_000_000:
        scale, digits = _NS, 9
    elif whole < 100_000_000_000_000:
        scale, digits = 1_000_000, 6
    elif whole < 100_000_000_000_000_000:
        scale, digits = 1_000, 3
    else:
        scale, digits = 1, 0
    ns = whole * scale
    if f and digits:
        f = f[:digits]
        ns += int(f) * _PAD[digits - len(f)]
    return -ns if neg else ns


def _from_number(value: int | float) -> int | None:
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        text = repr(value)
        if "e" in text or "E" in text:
            if abs(value) >= 1e17:
                return int(value)
            text = f"{value:.9f}"
        m = _NUMBER.fullmatch(text)
        if m is None:
            return None
        return _from_decimal(bool(m.group("neg")), m.group("i"), m.group("f"))
    neg = value < 0
    return _from_decimal(neg, str(-value if neg else value), None)


def _from_string(value: str) -> int | None:
    s = value.strip()
    if not s:
        return None
    c = s[0]
    if c == "[" and s[-1] == "]":
        s = s[1:-1].strip()
    found = _match_at(s, 0, False)
    if found is not None:
        return found[0] if found[1] == len(s) else None
    c = s[:1]
    if ("0" <= c <= "9" or c == "-") and s[-1].isdigit():
        neg = c == "-"
        digits = s[1:] if neg else s
        if digits.isdigit():
            return _from_decimal(neg, digits, None)
        i, dot, frac = digits.partition(".")
        if dot and i.isdigit() and frac.isdigit():
            return _from_decimal(neg, i, frac)
    m = _ISO_DATE.fullmatch(s)
    if m is not None:
        days = _days(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        return None if days is None else days * 86400 * _NS
    return None


def parse_timestamp(value: str | int | float) -> int | None:
    """A timestamp field value to UTC nanoseconds since the epoch; None when it cannot be read.

    Never raises for str/int/float input (bools and other types give None)."""
    try:
        if type(value) is str:
            second: str | None = None
            frac = ""
            if len(value) > 20 and value[19] == "." and value[10] == "T":
                if value[-1] == "Z":
                    second, frac = value[:19], value[20:-1]
                elif value[-3] == ":" and value[-6] in "+-":
                    second, frac = value[:19] + value[-6:], value[20:-6]
                if second is not None and 0 < len(frac) <= 9 and frac.isascii() and frac.isdigit():
                    known = _SECOND_CACHE.get(second)
                    if known is not None:
                        return known + int(frac) * _PAD[9 - len(frac)]
                else:
                    second = None
            # A busy stream repeats a millisecond-precision value many times: remember recent ones.
            # (Syslog-style values have no year and are not remembered.)
            hit = _VALUE_CACHE.get(value)
            if hit is not None:
                return hit
            # shortcut: the whole value in the format that matched last (what _from_string would
            # try first anyway, as the formats are mutually exclusive)
            fmt = _last[0]
            result: int | None = None
            if fmt is not None and not fmt[4]:
                m = fmt[0].match(value)
                if m is not None and m.end() == len(value):
                    g = m.groups()
                    found = ts_from_groups(fmt, g[0], g[1], g[2])
                    if found is not None:
                        result = found[0]
            if result is None:
                result = _from_string(value)
                if result is None or not value[:1].isdigit():
                    return result
            if second is not None:
                if len(_SECOND_CACHE) >= 2048:
                    _SECOND_CACHE.clear()
                _SECOND_CACHE[second] = result - int(frac) * _PAD[9 - len(frac)]
            if len(_VALUE_CACHE) >= 2048:
                _VALUE_CACHE.clear()
            _VALUE_CACHE[value] = result
            return result
        if isinstance(value, str):
            return _from_string(value)
        if isinstance(value, bool):
            return None
        if isinstance(value, int | float):
            return _from_number(value)
    except (ValueError, OverflowError, IndexError, KeyError):
        return None
    return None
