"""normalize_level, normalize_otel_severity and detect_level."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loglens.model import Level
from loglens.parse import detect_level, normalize_level, normalize_otel_severity

T, D, I, W, E, F, U = Level.TRACE, Level.DEBUG, Level.INFO, Level.WARN, Level.ERROR, Level.FATAL, Level.UNKNOWN  # noqa: E741


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("trace", T), ("TRACE", T), ("finest", T), ("FINER", T), ("verbose", T), ("T", T), ("t", T),
        ("debug", D), ("Debug", D), ("dbg", D), ("DBG", D), ("fine", D), ("CONFIG", D), ("D", D),
        ("info", I), ("INFO", I), ("inf", I), ("Information", I), ("notice", I), ("NOTICE", I),
        ("I", I),
        ("warn", W), ("WARN", W), ("warning", W), ("WARNING", W), ("wrn", W), ("W", W),
        ("error", E), ("ERROR", E), ("err", E), ("ERR", E), ("severe", E), ("SEVERE", E), ("E", E),
        ("fatal", F), ("FATAL", F), ("crit", F), ("critical", F), ("CRITICAL", F), ("alert", F),
        ("emerg", F), ("emergency", F), ("panic", F), ("F", F), ("ftl", F),
        (" Warn ", W), ("[error]", E), ("INFO2", I), ("WARN4", W),
        ("", U), ("nonsense", U), ("x1", U), ("info level", U), ("OFF", U),
    ],
)  # fmt: skip
def test_names(value: str, expected: Level) -> None:
    assert normalize_level(value) is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # syslog severities 0..7
        (0, F), (1, F), (2, F), (3, E), (4, W), (5, I), (6, I), (7, D),
        ("3", E), (4.0, W),
        # OpenTelemetry numbers above 7
        (8, D), (9, I), (12, I), (13, W), (16, W), (17, E), (20, E), (21, F), (24, F),
        # pino / bunyan
        (30, I), (40, W), (50, E), (60, F),
        # log4j2 intLevel, java.util.logging, log4j 1 / logback level_value
        (100, F), (200, E), (300, W), (400, I), (500, D), (600, T),
        (700, D), (800, I), (900, W), (1000, E),
        (5000, T), (10000, D), (20000, I), (30000, W), (40000, E), (50000, F), ("20000", I),
        # unknown numbers
        (-1, U), (25, U), (12345, U), (3.5, U), (float("nan"), U), (True, U),
    ],
)  # fmt: skip
def test_numbers(value: int | float | str, expected: Level) -> None:
    assert normalize_level(value) is expected


def test_normalize_level_never_guesses_info() -> None:
    assert normalize_level("whatever") is U
    assert normalize_level(99) is U


def test_normalize_level_type_error() -> None:
    with pytest.raises(TypeError):
        normalize_level(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("n", "expected"),
    [(0, U), (1, T), (4, T), (5, D), (8, D), (9, I), (12, I), (13, W), (16, W), (17, E), (20, E),
     (21, F), (24, F), (25, U), (-3, U), (9.0, I), (True, U)],
)  # fmt: skip
def test_otel(n: int, expected: Level) -> None:
    assert normalize_otel_severity(n) is expected


@pytest.mark.parametrize(
    ("text", "expected", "span"),
    [
        ("2024-01-15 10:00:00 ERROR db down", E, (20, 25)),
        ("something WARN happened", W, (10, 14)),
        ("WARNING: disk almost full", W, (0, 7)),
        ("[INFO] started", I, (0, 6)),  # bracketed forms span their brackets
        ("job DEBUG x", D, (4, 9)),
        ("TRACE enter f()", T, (0, 5)),
        ("FATAL: out of memory", F, (0, 5)),
        ("CRITICAL temperature", F, (0, 8)),
        ("SEVERE: boom", E, (0, 6)),
        ("[Sun Dec 04 04:47:44 2005] [warn] child exited", W, (27, 33)),
        ("[Sun Dec 04 04:47:44 2005] [error] mod_jk broke", E, (27, 34)),
        ("[Wed Oct 11 14:32:52 2000] [core:error] [pid 1] x", E, (27, 39)),
        ("ts=1 level=error msg=boom", E, (5, 16)),
        ("lvl=warn msg=slow", W, (0, 8)),
        ('level="debug" msg=x', D, (0, 13)),
        ("severity=CRITICAL x", F, (0, 17)),
        ('{"level":"error","msg":"x"}', E, (1, 16)),
        ('{"level": "warn", "msg": "x"}', W, (1, 16)),
        ('{"log.level":"info"}', I, (1, 19)),
        ("E1122 10:00:00.123456 1 main.go:10] boom", E, (0, 1)),
        ("I0605 08:00:00.000001    7 server.go:99] listening", I, (0, 1)),
        ("W0605 08:00:00.000001 7 x.go:1] careful", W, (0, 1)),
        ("F0605 08:00:00.000001 7 x.go:1] dead", F, (0, 1)),
        ("<E> something broke", E, (0, 3)),
        ("Error: connection refused", E, (0, 5)),
        ("a WARNING then an ERROR", W, (2, 9)),
        ("x" * 150 + " level=warn", W, (151, 161)),
    ],
)
def test_detect_positive(text: str, expected: Level, span: tuple[int, int]) -> None:
    assert detect_level(text) == (expected, *span)


@pytest.mark.parametrize(
    "text",
    [
        "no error found",
        "the warning light is off",
        "retrying after failure, info to follow",
        "NO_ERROR returned",
        "ERRORS: 0",
        "INFORMATION_SCHEMA query",
        "TypeError: x is None",
        "java.lang.Error: boom",
        "sublevel=error",
        "List<T> list",
        "x" * 130 + " ERROR late in the line",
        "[client 1.2.3.4] File does not exist",
        "level=purple",
        "",
    ],
)
def test_detect_negative(text: str) -> None:
    assert detect_level(text) == (U, -1, -1)


def test_detect_type_error() -> None:
    with pytest.raises(TypeError):
        detect_level(None)  # type: ignore[arg-type]


@given(st.text())
def test_detect_never_raises(text: str) -> None:
    level, start, end = detect_level(text)
    if level is U:
        assert (start, end) == (-1, -1)
    else:
        assert 0 <= start < end <= len(text)


@given(st.one_of(st.text(), st.integers(), st.floats()))
def test_normalize_never_raises(value: str | int | float) -> None:
    assert isinstance(normalize_level(value), Level)
