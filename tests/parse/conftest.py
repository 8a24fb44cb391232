"""Shared helpers for the parse tests."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest

from loglens.parse import timestamps

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ns(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0, frac_ns: int = 0, offset_min: int = 0) -> int:
    """Expected UTC nanoseconds, computed independently with datetime."""
    dt = datetime(y, mo, d, h, mi, s, tzinfo=timezone(timedelta(minutes=offset_min)))
    return (dt - EPOCH) // timedelta(seconds=1) * 1_000_000_000 + frac_ns


def syslog_year(mo: int, d: int, h: int, mi: int, s: int, now: datetime | None = None) -> int:
    """The year the spec picks for a yearless time: this year unless that is > 1 day ahead."""
    now = now or datetime.now(UTC)
    year = now.year
    while True:
        try:
            candidate = datetime(year, mo, d, h, mi, s, tzinfo=UTC)
        except ValueError:  # Feb 29
            year -= 1
            continue
        if candidate - now > timedelta(days=1):
            year -= 1
            continue
        return year


def reset_time_caches() -> None:
    timestamps._SYSLOG_CACHE.clear()
    timestamps._year_cache[:] = [0.0, -1.0, 0.0]


@pytest.fixture
def frozen_now(monkeypatch: pytest.MonkeyPatch) -> Iterator[datetime]:
    """Freeze time.time() (as seen by the timestamp parser) at 2024-03-01 12:00 UTC."""
    now = datetime(2024, 3, 1, 12, 0, 0, tzinfo=UTC)
    monkeypatch.setattr(timestamps.time, "time", lambda: now.timestamp())
    reset_time_caches()
    yield now
    reset_time_caches()
