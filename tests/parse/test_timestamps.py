"""parse_timestamp / find_leading_timestamp: every accepted shape, with exact nanoseconds."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loglens.parse import find_leading_timestamp, parse_timestamp

from .conftest import ns, syslog_year


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # RFC 3339 / ISO 8601
        ("2024-01-15T10:00:00Z", ns(2024, 1, 15, 10)),
        ("2024-01-15T10:00:00.123456789Z", ns(2024, 1, 15, 10, frac_ns=123_456_789)),
        ("2024-01-15T10:00:00.1Z", ns(2024, 1, 15, 10, frac_ns=100_000_000)),
        ("2024-01-15T10:00:00.123456789123Z", ns(2024, 1, 15, 10, frac_ns=123_456_789)),
        ("2024-01-15T10:00:00+01:00", ns(2024, 1, 15, 10, offset_min=60)),
        ("2024-01-15T10:00:00.5-05:30", ns(2024, 1, 15, 10, frac_ns=500_000_000, offset_min=-330)),
        ("2024-01-15T10:00:00+0100", ns(2024, 1, 15, 10, offset_min=60)),
        ("2024-01-15T10:00:00+01", ns(2024, 1, 15, 10, offset_min=60)),
        ("2024-01-15T10:00:00", ns(2024, 1, 15, 10)),
        ("2024-01-15 10:00:00", ns(2024, 1, 15, 10)),
        ("2024-01-15 10:00:00 +0200", ns(2024, 1, 15, 10, offset_min=120)),
        ("2024-01-15 10:00:00 UTC", ns(2024, 1, 15, 10)),
        ("2024-01-15T10:00Z", ns(2024, 1, 15, 10)),
        ("  2024-01-15T10:00:00Z  ", ns(2024, 1, 15, 10)),
        ("2024-01-15 10:00:00,123", ns(2024, 1, 15, 10, frac_ns=123_000_000)),
        ("20240115T100000Z", ns(2024, 1, 15, 10)),
        ("2024-01-15", ns(2024, 1, 15)),
        ("2024-02-29T00:00:00Z", ns(2024, 2, 29)),
        # loghub header formats
        ("081109 203615", ns(2008, 11, 9, 20, 36, 15)),  # HDFS
        ("2005-06-03-15.42.50.675872", ns(2005, 6, 3, 15, 42, 50, frac_ns=675_872_000)),  # BGL
        ("17/06/09 20:10:40", ns(2017, 6, 9, 20, 10, 40)),  # Spark / Hadoop yy/MM/dd
        ("2015-07-29 17:41:44,747", ns(2015, 7, 29, 17, 41, 44, frac_ns=747_000_000)),  # Zookeeper
        ("[Sun Dec 04 04:47:44 2005]", ns(2005, 12, 4, 4, 47, 44)),  # Apache error log
        ("Sun Dec 04 04:47:44 2005", ns(2005, 12, 4, 4, 47, 44)),
        ("Wed Oct 11 14:32:52.123456 2000", ns(2000, 10, 11, 14, 32, 52, frac_ns=123_456_000)),
        ("[10/Oct/2000:13:55:36 -0700]", ns(2000, 10, 10, 13, 55, 36, offset_min=-420)),  # Apache access
        ("10/Oct/2000:13:55:36 -0700", ns(2000, 10, 10, 13, 55, 36, offset_min=-420)),
        ("2024/01/15 10:00:00.5", ns(2024, 1, 15, 10, frac_ns=500_000_000)),  # Go / nginx
        # epoch by magnitude
        (1700000000, ns(2023, 11, 14, 22, 13, 20)),
        (1700000000123, ns(2023, 11, 14, 22, 13, 20, frac_ns=123_000_000)),
        (1700000000123456, ns(2023, 11, 14, 22, 13, 20, frac_ns=123_456_000)),
        (1700000000123456789, ns(2023, 11, 14, 22, 13, 20, frac_ns=123_456_789)),
        (1700000000.5, ns(2023, 11, 14, 22, 13, 20, frac_ns=500_000_000)),
        (1700000000123.0, ns(2023, 11, 14, 22, 13, 20, frac_ns=123_000_000)),
        ("1700000000", ns(2023, 11, 14, 22, 13, 20)),
        ("1700000000.123456789", ns(2023, 11, 14, 22, 13, 20, frac_ns=123_456_789)),
        ("1700000000123", ns(2023, 11, 14, 22, 13, 20, frac_ns=123_000_000)),
        (0, 0),
    ],
)
def test_parse_timestamp(value: str | int | float, expected: int) -> None:
    assert parse_timestamp(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        "garbage",
        "2024-13-01T00:00:00Z",
        "2024-02-30 10:00:00",
        "2023-02-29T00:00:00Z",
        "2024-01-15T25:00:00Z",
        "2024-01-15T10:00:00+25:00",
        "2024-01-15T10:00:00Z trailing text",
        "Foo 12 10:00:00",
        "12:00",
        "-",
        "1.2.3",
        float("nan"),
        float("inf"),
        True,
    ],
)
def test_parse_timestamp_unparseable(value: str | int | float) -> None:
    assert parse_timestamp(value) is None


def test_parse_timestamp_wrong_type_is_none() -> None:
    assert parse_timestamp(None) is None  # type: ignore[arg-type]
    assert parse_timestamp([1]) is None  # type: ignore[arg-type]


def test_syslog_without_year_uses_current_year_rule() -> None:
    now = datetime.now().astimezone()
    got = parse_timestamp("Jan 12 10:00:01")
    assert got == ns(syslog_year(1, 12, 10, 0, 1), 1, 12, 10, 0, 1)
    assert got is not None and got <= (now.timestamp() + 86400) * 1e9


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Jan 12 10:00:01", ns(2024, 1, 12, 10, 0, 1)),
        ("Mar  2 11:00:00", ns(2024, 3, 2, 11)),  # less than a day ahead: still this year
        ("Mar  3 13:00:00", ns(2023, 3, 3, 13)),  # more than a day ahead: last year
        ("Dec 31 23:59:59", ns(2023, 12, 31, 23, 59, 59)),
        ("Feb 29 08:00:00", ns(2024, 2, 29, 8)),
        ("Jun 14 15:16:01.250", ns(2023, 6, 14, 15, 16, 1, frac_ns=250_000_000)),
    ],
)
def test_syslog_year_inference(frozen_now: datetime, value: str, expected: int) -> None:
    assert parse_timestamp(value) == expected
    assert syslog_year(*_mdhms(value), now=frozen_now) == datetime.fromtimestamp(expected / 1e9).year


def _mdhms(value: str) -> tuple[int, int, int, int, int]:
    mon, day, clock = value.split()
    months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    h, mi, s = clock.split(".")[0].split(":")
    return months.index(mon) + 1, int(day), int(h), int(mi), int(s)


@pytest.mark.parametrize(
    ("line", "expected_ns", "end"),
    [
        ("2024-01-15T10:00:00.5Z hello", ns(2024, 1, 15, 10, frac_ns=500_000_000), 22),
        ("2015-07-29 17:41:44,747 - INFO  [x] - y", ns(2015, 7, 29, 17, 41, 44, frac_ns=747_000_000), 23),
        ("081109 203615 148 INFO x", ns(2008, 11, 9, 20, 36, 15), 13),
        ("[Sun Dec 04 04:47:44 2005] [notice] ok", ns(2005, 12, 4, 4, 47, 44), 26),
        ("[2024-01-15 10:00:00,123] INFO x", ns(2024, 1, 15, 10, frac_ns=123_000_000), 25),
        ("  2024-01-15 10:00:00 x", ns(2024, 1, 15, 10), 21),
        ("2024-01-15 10:00:00 Zookeeper starting", ns(2024, 1, 15, 10), 19),  # "Z" is not a zone here
        ("17/06/09 20:10:40 INFO a.B: c", ns(2017, 6, 9, 20, 10, 40), 17),
        ("2005-06-03-15.42.50.675872 R02 x", ns(2005, 6, 3, 15, 42, 50, frac_ns=675_872_000), 26),
        ("1700000000.250 GET /", ns(2023, 11, 14, 22, 13, 20, frac_ns=250_000_000), 14),
        ("1700000000123 GET /", ns(2023, 11, 14, 22, 13, 20, frac_ns=123_000_000), 13),
    ],
)
def test_find_leading_timestamp(line: str, expected_ns: int, end: int) -> None:
    assert find_leading_timestamp(line) == (expected_ns, end)


@pytest.mark.parametrize(
    "line",
    ["", "hello world", "[main] INFO x", "12345 items", "[2024-01-15 10:00:00 unclosed", "2024-99-99 10:00:00 x"],
)
def test_find_leading_timestamp_none(line: str) -> None:
    assert find_leading_timestamp(line) is None


def test_find_leading_timestamp_syslog() -> None:
    found = find_leading_timestamp("Jun  4 01:02:03 host cron[1]: x")
    assert found is not None
    assert found == (ns(syslog_year(6, 4, 1, 2, 3), 6, 4, 1, 2, 3), 15)


def test_find_leading_timestamp_type_error() -> None:
    with pytest.raises(TypeError):
        find_leading_timestamp(b"2024-01-15")  # type: ignore[arg-type]


@given(st.one_of(st.text(), st.integers(), st.floats(), st.booleans()))
def test_parse_timestamp_never_raises(value: str | int | float) -> None:
    result = parse_timestamp(value)
    assert result is None or isinstance(result, int)


@given(st.text())
def test_find_leading_timestamp_never_raises(line: str) -> None:
    result = find_leading_timestamp(line)
    if result is not None:
        assert 0 < result[1] <= len(line)


@given(st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1)))
def test_iso_roundtrip(dt: datetime) -> None:
    expected = ns(dt.year, dt.month, dt.day, dt.hour, dt.minute, dt.second, frac_ns=dt.microsecond * 1000)
    assert parse_timestamp(dt.isoformat(timespec="microseconds") + "Z") == expected
    assert parse_timestamp(dt.strftime("%Y-%m-%d %H:%M:%S,") + f"{dt.microsecond // 1000:03d}") == (
        expected - (dt.microsecond % 1000) * 1000
    )


@given(
    st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1)),
    st.lists(st.text("0123456789", min_size=1, max_size=12), min_size=2, max_size=4),
    st.sampled_from(["Z", "+01:00", "-05:30", "+00:00", "z", ""]),
)
def test_values_of_a_known_second_read_alike(dt: datetime, fractions: list[str], zone: str) -> None:
    """After one value of a second is parsed in full, the others of that second are read from the
    second it gave (a fast path): every fraction length and zone must give what a full parse does."""
    second = dt.strftime("%Y-%m-%dT%H:%M:%S")
    offset = 0 if zone in ("Z", "z", "") else (1 if zone[0] == "+" else -1) * (int(zone[1:3]) * 60 + int(zone[4:6]))
    for frac in fractions:
        frac_ns = int(frac[:9].ljust(9, "0"))
        expected = ns(dt.year, dt.month, dt.day, dt.hour, dt.minute, dt.second, frac_ns=frac_ns, offset_min=offset)
        assert parse_timestamp(f"{second}.{frac}{zone}") == expected
    assert parse_timestamp(f"{second}.1x{zone}") is None
