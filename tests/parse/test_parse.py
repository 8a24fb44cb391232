"""parse_text / parse_line: the surface the pipeline calls."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

import loglens.parse as parse
from loglens.model import Level, LogRecord
from loglens.parse import MultilineJoiner, parse_line, parse_text

from .conftest import ns

RECEIVED = 1_700_000_000_000_000_000


def test_reexports() -> None:
    for name in ("parse_timestamp", "normalize_level", "detect_level", "MultilineJoiner", "record_from_json",
                 "split_header", "parse_text", "parse_line"):  # fmt: skip
        assert callable(getattr(parse, name))


def test_parse_text_with_header() -> None:
    line = "2015-10-19 14:21:32,113 WARN [main] org.apache.hadoop.Foo: lease not renewed"
    r = parse_text(line, received_ns=RECEIVED, service="hadoop", host="n1", source="file:/var/log/x")
    assert r == LogRecord(
        timestamp=ns(2015, 10, 19, 14, 21, 32, frac_ns=113_000_000),
        message="lease not renewed",
        level=Level.WARN,
        service="hadoop",
        host="n1",
        header="2015-10-19 14:21:32,113 WARN [main] org.apache.hadoop.Foo: ",
        attributes={"thread": "main", "component": "org.apache.hadoop.Foo"},
        observed_at=RECEIVED,
        source="file:/var/log/x",
    )
    assert r.line == line


def test_parse_text_without_header() -> None:
    r = parse_text("something happened", received_ns=RECEIVED)
    assert (r.timestamp, r.message, r.header, r.level, r.attributes) == (
        RECEIVED, "something happened", "", Level.UNKNOWN, {},
    )  # fmt: skip
    assert r.observed_at == RECEIVED


def test_level_detected_when_header_has_none() -> None:
    r = parse_text("Dec 11 08:00:01 gw app[1]: ERROR disk full", received_ns=RECEIVED)
    assert r.level is Level.ERROR
    assert r.message == "ERROR disk full"
    assert parse_text("Dec 11 08:00:01 gw app[1]: no error found", received_ns=RECEIVED).level is Level.UNKNOWN


def test_header_host() -> None:
    line = "Dec 11 08:00:01 gateway sshd[3012]: Accepted publickey for bob"
    r = parse_text(line, received_ns=RECEIVED)
    assert r.host == "gateway"
    assert r.attributes == {"pid": "3012", "component": "sshd"}
    r = parse_text(line, received_ns=RECEIVED, host="collector")
    assert r.host == "collector"
    assert r.attributes == {"pid": "3012", "component": "sshd", "host.reported": "gateway"}
    r = parse_text(line, received_ns=RECEIVED, host="gateway")
    assert r.attributes == {"pid": "3012", "component": "sshd"}


def test_bgl_node_attribute() -> None:
    line = ("- 1118000000 2005.06.05 R11-M0-N3-C:J05-U01 2005-06-05-12.33.20.100200 R11-M0-N3-C:J05-U01 "
            "RAS KERNEL INFO cache parity error corrected")  # fmt: skip
    r = parse_text(line, received_ns=RECEIVED)
    assert r.attributes == {"node": "R11-M0-N3-C:J05-U01", "component": "KERNEL"}
    assert r.level is Level.INFO  # from the header, not from "error" in the message
    assert r.message == "cache parity error corrected"


def test_multiline_record() -> None:
    j = MultilineJoiner()
    lines = [
        "2024-01-15 10:00:00,001 ERROR [main] c.e.App: request failed",
        "java.lang.IllegalStateException: outer",
        "\tat com.example.App.handle(App.java:42)",
        "Caused by: java.io.IOException: inner",
        "\t... 5 more",
        "2024-01-15 10:00:01,000 INFO [main] c.e.App: next",
    ]
    records = [rec for line in lines for rec in j.feed(line)] + j.flush()
    assert len(records) == 2
    r = parse_text(records[0], received_ns=RECEIVED)
    assert r.level is Level.ERROR
    assert r.timestamp == ns(2024, 1, 15, 10, frac_ns=1_000_000)
    assert r.message == "request failed\n" + "\n".join(lines[1:5])
    assert r.line == records[0]


def test_parse_line_json() -> None:
    line = orjson.dumps({"ts": "2024-01-15T10:00:00Z", "level": "error", "msg": "x", "k": {"a": 1}}).decode()
    r = parse_line(line + "\n", received_ns=RECEIVED, service="svc", host="h", source="s")
    assert (r.timestamp, r.level, r.message, r.service, r.host, r.source, r.header) == (
        ns(2024, 1, 15, 10), Level.ERROR, "x", "svc", "h", "s", "",
    )  # fmt: skip
    assert r.attributes == {"k.a": 1}


def test_parse_line_json_with_blanks() -> None:
    r = parse_line('  {"msg": "x", "level": "warn"}  ', received_ns=RECEIVED)
    assert (r.message, r.level) == ("x", Level.WARN)


@pytest.mark.parametrize(
    "line",
    ['{"msg": "x"', "{not json}", '["a", "b"]', "{}x", '{"a":1} trailing', "{", "}", '"{}"', "{1: 2}"],
)
def test_parse_line_not_json_object_falls_back_to_text(line: str) -> None:
    r = parse_line(line, received_ns=RECEIVED)
    assert r.message == line
    assert r.header == ""
    assert r.timestamp == RECEIVED


def test_parse_line_empty_object_and_text() -> None:
    assert parse_line("{}", received_ns=RECEIVED).message == "{}"
    r = parse_line("2024-01-15 10:00:00 INFO hi\r\n", received_ns=RECEIVED)
    assert (r.message, r.level) == ("hi", Level.INFO)
    assert parse_line("", received_ns=RECEIVED).message == ""


def test_type_errors() -> None:
    with pytest.raises(TypeError):
        parse_line(b"x", received_ns=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        parse_text(None, received_ns=1)  # type: ignore[arg-type]


@given(st.text())
def test_parse_line_never_raises(text: str) -> None:
    r = parse_line(text, received_ns=RECEIVED)
    assert isinstance(r, LogRecord)
    assert isinstance(r.timestamp, int)
    if not text.strip().startswith("{"):
        assert r.line == text.rstrip("\r\n")


@given(st.text())
def test_parse_text_line_roundtrip(text: str) -> None:
    r = parse_text(text, received_ns=RECEIVED)
    assert r.line == text
    assert r.observed_at == RECEIVED


json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_objects = st.dictionaries(
    st.sampled_from(["msg", "message", "level", "time", "ts", "host", "x", "log", "event"]) | st.text(max_size=5),
    st.recursive(json_scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
                 max_leaves=8),
    max_size=6,
)  # fmt: skip


@given(json_objects)
def test_parse_line_never_raises_on_json(obj: dict[str, object]) -> None:
    try:
        line = orjson.dumps(obj).decode()
    except (TypeError, orjson.JSONEncodeError):
        return
    r = parse_line(line, received_ns=RECEIVED)
    assert isinstance(r, LogRecord)
