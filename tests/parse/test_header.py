"""split_header on one handwritten line per loghub system style, and other common layouts."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loglens.model import Level
from loglens.parse import Header, split_header
from loglens.parse import header as header_module

from .conftest import ns, syslog_year

# (line, timestamp, level, message, fields)
CASES: list[tuple[str, int | None, Level, str, dict[str, str]]] = [
    (  # HDFS
        "081110 101520 2231 INFO dfs.DataNode$DataXceiver: Receiving block blk_123 src: /10.0.0.1:5000",
        ns(2008, 11, 10, 10, 15, 20), Level.INFO, "Receiving block blk_123 src: /10.0.0.1:5000",
        {"pid": "2231", "component": "dfs.DataNode$DataXceiver"},
    ),
    (  # Hadoop
        "2015-10-19 14:21:32,113 WARN [LeaseRenewer:user@host:9000] org.apache.hadoop.hdfs.LeaseRenewer: "
        "Failed to renew lease for [DFSClient_1] for 30 seconds.",
        ns(2015, 10, 19, 14, 21, 32, frac_ns=113_000_000), Level.WARN,
        "Failed to renew lease for [DFSClient_1] for 30 seconds.",
        {"thread": "LeaseRenewer:user@host:9000", "component": "org.apache.hadoop.hdfs.LeaseRenewer"},
    ),
    (  # Spark
        "17/06/10 09:11:02 ERROR executor.Executor: Exception in task 1.0 in stage 2.0 (TID 7)",
        ns(2017, 6, 10, 9, 11, 2), Level.ERROR, "Exception in task 1.0 in stage 2.0 (TID 7)",
        {"component": "executor.Executor"},
    ),
    (  # Zookeeper
        "2015-07-30 08:12:09,501 - WARN  [RecvWorker:2:QuorumCnxManager$RecvWorker@780] - Connection "
        "broken for id 2, my id = 1",
        ns(2015, 7, 30, 8, 12, 9, frac_ns=501_000_000), Level.WARN, "Connection broken for id 2, my id = 1",
        {"thread": "RecvWorker:2", "component": "QuorumCnxManager$RecvWorker"},
    ),
    (  # Zookeeper, nested brackets in the thread
        "2015-07-30 08:12:10,002 - INFO  [QuorumPeer[myid=3]/0:0:0:0:0:0:0:0:2181:Follower@61] - FOLLOWING",
        ns(2015, 7, 30, 8, 12, 10, frac_ns=2_000_000), Level.INFO, "FOLLOWING",
        {"thread": "QuorumPeer[myid=3]/0:0:0:0:0:0:0:0:2181", "component": "Follower"},
    ),
    (  # BGL: the epoch column is the UTC time, the textual time gives the fraction
        "- 1118000000 2005.06.05 R11-M0-N3-C:J05-U01 2005-06-05-12.33.20.100200 R11-M0-N3-C:J05-U01 "
        "RAS KERNEL FATAL data storage interrupt",
        1118000000_100200000, Level.FATAL, "data storage interrupt",
        {"node": "R11-M0-N3-C:J05-U01", "component": "KERNEL"},
    ),
    (  # BGL with an alert label and a NULL location
        "APPSEV 1118000005 2005.06.05 NULL 2005-06-05-12.33.25.000001 NULL RAS MMCS ERROR idoproxy exited",
        1118000005_000001000, Level.ERROR, "idoproxy exited", {"node": "NULL", "component": "MMCS"},
    ),
    (  # Apache error log: [client ...] is message, not a thread
        "[Mon Dec 05 10:11:12 2005] [error] [client 10.0.0.9] Directory index forbidden by rule: /var/www/",
        ns(2005, 12, 5, 10, 11, 12), Level.ERROR, "[client 10.0.0.9] Directory index forbidden by rule: /var/www/",
        {},
    ),
    (
        "[Mon Dec 05 10:11:13 2005] [notice] jk2_init() Found child 1234 in scoreboard slot 7",
        ns(2005, 12, 5, 10, 11, 13), Level.INFO, "jk2_init() Found child 1234 in scoreboard slot 7", {},
    ),
    (  # Apache 2.4
        "[Wed Oct 11 14:32:52.123456 2000] [core:error] [pid 35708:tid 4328636416] [client 1.2.3.4] "
        "File does not exist: /favicon.ico",
        ns(2000, 10, 11, 14, 32, 52, frac_ns=123_456_000), Level.ERROR,
        "[client 1.2.3.4] File does not exist: /favicon.ico", {"pid": "35708", "thread": "4328636416"},
    ),
    (  # Spring Boot 2/3 default console layout
        "2024-01-15T10:00:00.123+01:00  INFO 12345 --- [           main] o.s.b.StartupInfoLogger     "
        "             : Starting App using Java 21",
        ns(2024, 1, 15, 10, 0, 0, frac_ns=123_000_000, offset_min=60), Level.INFO, "Starting App using Java 21",
        {"pid": "12345", "thread": "main", "component": "o.s.b.StartupInfoLogger"},
    ),
    (  # Spring Boot 3.2+ with an application name
        "2024-01-15T10:00:00.123Z  WARN 12345 --- [myapp] [nio-8080-exec-1] o.s.web.servlet.PageNotFound "
        "            : No mapping for GET /x",
        ns(2024, 1, 15, 10, 0, 0, frac_ns=123_000_000), Level.WARN, "No mapping for GET /x",
        {"pid": "12345", "thread": "nio-8080-exec-1", "component": "o.s.web.servlet.PageNotFound"},
    ),
    (  # log4j "%d [%t] %-5p %c - %m"
        "2024-01-15 10:00:00,123 [main] INFO  com.example.Foo - Started in 2s",
        ns(2024, 1, 15, 10, frac_ns=123_000_000), Level.INFO, "Started in 2s",
        {"thread": "main", "component": "com.example.Foo"},
    ),
    (  # Python logging "%(asctime)s - %(name)s - %(levelname)s - %(message)s"
        "2024-01-15 10:00:00,123 - myapp.db - ERROR - Connection failed: timeout",
        ns(2024, 1, 15, 10, frac_ns=123_000_000), Level.ERROR, "Connection failed: timeout",
        {"component": "myapp.db"},
    ),
    (  # nginx error log
        "2024/01/15 10:00:00 [error] 1234#0: *5 open() failed",
        ns(2024, 1, 15, 10), Level.ERROR, "*5 open() failed", {"pid": "1234", "thread": "0"},
    ),
    (  # RFC 5424 with PRI 34 = auth.crit
        "<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - 'su root' failed for lonvick",
        ns(2003, 10, 11, 22, 14, 15, frac_ns=3_000_000), Level.FATAL, "'su root' failed for lonvick",
        {"host": "mymachine.example.com", "component": "su"},
    ),
    (  # rsyslog RFC 3339 timestamps are followed by a host
        "2024-01-15T10:00:00.5Z myhost app[1]: hi",
        ns(2024, 1, 15, 10, frac_ns=500_000_000), Level.UNKNOWN, "hi",
        {"host": "myhost", "pid": "1", "component": "app"},
    ),
    ("2024-01-15 10:00:00.123 INFO: hello", ns(2024, 1, 15, 10, frac_ns=123_000_000), Level.INFO, "hello", {}),
    ("2024-01-15 10:00:00 INFO 42 items processed", ns(2024, 1, 15, 10), Level.INFO, "42 items processed", {}),
    ("2024-01-15 10:00:00 Server started: ok", ns(2024, 1, 15, 10), Level.UNKNOWN, "Server started: ok", {}),
    ("2024-01-15 10:00:00 ERROR Failed: x", ns(2024, 1, 15, 10), Level.ERROR, "Failed: x", {}),
    ("[2024-01-15 10:00:00] [INFO] x", ns(2024, 1, 15, 10), Level.INFO, "x", {}),
    ("INFO 2024-01-15 10:00:00 late", ns(2024, 1, 15, 10), Level.INFO, "late", {}),
    ("[ERROR] something bad", None, Level.ERROR, "something bad", {}),
    ("WARN  [main] com.x.Y - low disk", None, Level.WARN, "low disk", {"thread": "main", "component": "com.x.Y"}),
    ("error reading config", None, Level.UNKNOWN, "error reading config", {}),
    ("just some words: here", None, Level.UNKNOWN, "just some words: here", {}),
    ("", None, Level.UNKNOWN, "", {}),
    ("2024-01-15 10:00:00", ns(2024, 1, 15, 10), Level.UNKNOWN, "", {}),
]  # fmt: skip


def _check(line: str, ts: int | None, level: Level, message: str, fields: dict[str, str]) -> None:
    h = split_header(line)
    assert isinstance(h, Header)
    assert line[h.message_offset :] == message
    assert h.timestamp == ts
    assert h.level is level
    assert h.fields == fields


@pytest.mark.parametrize(("line", "ts", "level", "message", "fields"), CASES)
def test_split_header(line: str, ts: int | None, level: Level, message: str, fields: dict[str, str]) -> None:
    _check(line, ts, level, message, fields)


# syslog lines have no year: the expected year follows the documented rule
SYSLOG_CASES = [
    (  # Linux
        "Jul  3 09:12:44 myhost su(pam_unix)[2310]: session opened for user news by (uid=0)",
        (7, 3, 9, 12, 44), "session opened for user news by (uid=0)",
        {"host": "myhost", "pid": "2310", "component": "su(pam_unix)"},
    ),
    (
        "Jul  3 09:12:45 myhost kernel: usb 1-1: new device",
        (7, 3, 9, 12, 45), "usb 1-1: new device", {"host": "myhost", "component": "kernel"},
    ),
    (
        "Jul  3 09:12:46 myhost syslogd 1.4.1: restart.",
        (7, 3, 9, 12, 46), "restart.", {"host": "myhost", "component": "syslogd 1.4.1"},
    ),
    (  # OpenSSH
        "Dec 11 08:00:01 gateway sshd[3012]: Failed password for root from 10.1.2.3 port 4022 ssh2",
        (12, 11, 8, 0, 1), "Failed password for root from 10.1.2.3 port 4022 ssh2",
        {"host": "gateway", "pid": "3012", "component": "sshd"},
    ),
    (  # BSD syslog with PRI 13 = user.notice
        "<13>Feb  5 17:32:18 10.0.0.99 myapp[99]: Use the BFG!",
        (2, 5, 17, 32, 18), "Use the BFG!", {"host": "10.0.0.99", "pid": "99", "component": "myapp"},
    ),
]  # fmt: skip


@pytest.mark.parametrize(("line", "mdhms", "message", "fields"), SYSLOG_CASES)
def test_split_header_syslog(
    line: str, mdhms: tuple[int, int, int, int, int], message: str, fields: dict[str, str]
) -> None:
    level = Level.INFO if line.startswith("<13>") else Level.UNKNOWN
    _check(line, ns(syslog_year(*mdhms), *mdhms), level, message, fields)


def test_glog() -> None:
    line = "E1122 10:00:00.123456   42 main.go:10] boom"
    year = syslog_year(11, 22, 10, 0, 0)
    _check(line, ns(year, 11, 22, 10, 0, 0, frac_ns=123_456_000), Level.ERROR, "boom",
           {"thread": "42", "component": "main.go:10"})  # fmt: skip


def test_only_first_line_is_read() -> None:
    text = "2024-01-15 10:00:00,001 ERROR [main] c.e.Foo: failed\njava.lang.IllegalStateException: x"
    h = split_header(text)
    assert text[h.message_offset :] == "failed\njava.lang.IllegalStateException: x"
    assert h.level is Level.ERROR


@pytest.fixture
def no_fast_paths() -> Iterator[None]:
    header_module.FAST_PATHS[0] = False
    yield
    header_module.FAST_PATHS[0] = True


def _slow(line: str) -> Header:
    header_module.FAST_PATHS[0] = False
    try:
        return split_header(line)
    finally:
        header_module.FAST_PATHS[0] = True


EXTRA = [
    "2024-01-15 10:00:00 INFO a.B: c",
    "2024-01-15 10:00:00 INFO INFO: c",
    "2024-01-15 10:00:00 INFO Remoting: c",
    "2024-01-15 10:00:00 INFO 1234#0: c",
    "2024-01-15 10:00:00 INFO [pid 1] a.B: c",
    "2024-01-15 10:00:00 12 INFO [t] a.B: c",
    "2024-01-15 10:00:00 - INFO [pid 3] - c",
    "2024-01-15 10:00:00 - BOGUS [t] - c",
    "2024-01-15 10:00:00 [warn] 42 x",
    "2024-01-15 10:00:00 [warn] a.b - x",
    "2024-01-15 10:00:00 [warn] x -- y",
    "2024-01-15 10:00:00 [bogus] x",
    "2024-01-15 10:00:00 WARN ² foo: bar",
    "Jan  1 00:00:00 INFO x: y",
    "Jan  1 00:00:00 host INFO: y",
    "Jan  1 00:00:00 123 x: y",
    "Jan  1 00:00:00 - x: y",
    "Jan  1 00:00:00 host Failed: y",
    "2024-01-15T10:00:00Z host app: y",
    "2024-01-15T10:00:00 host app: y",
    "2024-01-15T10:00:00.1Z  INFO 1 --- [a] [b] [c] x.Y : z",
    "2024-01-15T10:00:00.1Z  INFO 1 --- [pid 2] x.Y : z",
    "2024-01-15T10:00:00.1Z  INFO 1 --- [main] Foo : z",
]


@pytest.mark.parametrize("line", [c[0] for c in CASES] + [c[0] for c in SYSLOG_CASES] + EXTRA)
def test_fast_paths_agree_with_scanner(line: str) -> None:
    # run twice so the second call can go through the learned layout
    assert split_header(line) == _slow(line)
    assert split_header(line) == _slow(line)


def test_fast_paths_agree_in_any_order() -> None:
    lines = [c[0] for c in CASES] + [c[0] for c in SYSLOG_CASES] + EXTRA
    expected = [_slow(line) for line in lines]
    for order in (lines, lines[::-1], lines[::2] + lines[1::2]):
        for line in order:
            assert split_header(line) == expected[lines.index(line)]


def test_type_error() -> None:
    with pytest.raises(TypeError):
        split_header(None)  # type: ignore[arg-type]


@given(st.text())
def test_split_header_never_raises(line: str) -> None:
    h = split_header(line)
    assert 0 <= h.message_offset <= len(line)
    assert h == _slow(line)


@given(
    st.sampled_from([c[0] for c in CASES] + EXTRA),
    st.integers(min_value=0, max_value=80),
    st.text(max_size=5),
)
def test_mutated_lines_agree(line: str, cut: int, junk: str) -> None:
    mutated = line[:cut] + junk + line[cut:]
    h = split_header(mutated)
    assert 0 <= h.message_offset <= len(mutated)
    assert h == _slow(mutated)
