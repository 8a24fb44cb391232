"""Syslog receiver: end to end against a real ``loglens serve`` with Python's SysLogHandler, raw
RFC 5424 over TCP, malformed input; backpressure in process; the decoders fuzzed."""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from loglens.config import Settings
from loglens.ingest.syslog import Framer, FramingError, SyslogError, parse_message
from loglens.parse import record_from_json
from loglens.server import create_app
from tests.conftest import Server, count, free_port, gate_writes, search, start_server, stop_server, wait_count


@pytest.fixture(scope="module")
def syslog_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, int]]:
    port = free_port()
    srv = start_server(tmp_path_factory.mktemp("syslog") / "data", "--syslog-port", str(port))
    yield srv, port
    stop_server(srv)








LEVELS = [(logging.DEBUG, "DEBUG"), (logging.INFO, "INFO"), (logging.WARNING, "WARN"),
          (logging.ERROR, "ERROR"), (logging.CRITICAL, "FATAL")]


def _send_with_handler(port: int, service: str, n: int, socktype: socket.SocketKind) -> None:
    handler = logging.handlers.SysLogHandler(address=("127.0.0.1", port), socktype=socktype,
                                             facility=logging.handlers.SysLogHandler.LOG_LOCAL3)
    handler.ident = f"{service}[4242]: "
    logger = logging.getLogger(f"test.syslog.{service}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        for i in range(n):
            level = LEVELS[i % len(LEVELS)][0]
            logger.log(level, "order %d processed in %d ms", i, i % 97)
            if socktype == socket.SOCK_DGRAM and i % 50 == 49:
                time.sleep(0.01)  # a real app does not send 300 datagrams in one microsecond burst
    finally:
        logger.removeHandler(handler)
        handler.close()


@pytest.mark.parametrize("socktype", [socket.SOCK_DGRAM, socket.SOCK_STREAM], ids=["udp", "tcp"])
def test_python_syslog_handler(syslog_server: tuple[Server, int], socktype: socket.SocketKind) -> None:
    srv, port = syslog_server
    service = "pyudp" if socktype == socket.SOCK_DGRAM else "pytcp"
    n = 300
    _send_with_handler(port, service, n, socktype)
    assert wait_count(srv, f"service:{service}", n) == n
    time.sleep(0.3)  # nothing arrives twice
    assert count(srv, f"service:{service}") == n
    for _, level in LEVELS:
        assert count(srv, f"service:{service} level:{level}") == n // len(LEVELS), level
    assert count(srv, f'service:{service} host:"127.0.0.1" source:syslog') == n
    (rec,) = search(srv, f'service:{service} "order 9 processed"')
    assert rec["message"] == "order 9 processed in 9 ms"
    assert rec["attributes"] == {"syslog.facility": "local3", "syslog.severity": "crit", "pid": 4242}
    assert rec["level"] == "FATAL"


def test_tcp_traceback_stays_one_record(syslog_server: tuple[Server, int]) -> None:
    srv, port = syslog_server
    handler = logging.handlers.SysLogHandler(address=("127.0.0.1", port), socktype=socket.SOCK_STREAM)
    handler.ident = "tbapp: "
    logger = logging.getLogger("test.syslog.tb")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        try:
            raise ValueError("card declined")
        except ValueError:
            logger.exception("payment failed")
        logger.error("after the traceback")
    finally:
        logger.removeHandler(handler)
        handler.close()
    assert wait_count(srv, "service:tbapp", 2) == 2
    (rec,) = search(srv, "service:tbapp payment")
    assert "Traceback (most recent call last)" in str(rec["message"])
    assert "ValueError: card declined" in str(rec["message"])


def _octets(msg: bytes) -> bytes:
    return str(len(msg)).encode() + b" " + msg


def test_rfc5424_octet_counting_with_structured_data(syslog_server: tuple[Server, int]) -> None:
    srv, port = syslog_server
    msgs = [
        (b'<165>1 2026-11-20T10:00:00.123456Z web-7.example.com billing 811 INV42 '
         b'[exampleSDID@32473 iut="3" eventSource="App\\]lication"][origin ip="10.1.2.3"] '
         b'\xef\xbb\xbfinvoice 1 sent\nsecond line'),
        b"<11>1 2026-11-20T11:00:00+01:00 web-8 billing - - - invoice 2 failed",
        b"<15>1 - - billing - - [meta sequenceId=\"9\"]",
    ]
    stream = b"".join(_octets(m) for m in msgs)
    with socket.create_connection(("127.0.0.1", port)) as s:
        for i in range(0, len(stream), 7):  # frames split at awkward places
            s.sendall(stream[i:i + 7])
            time.sleep(0.001)
    assert wait_count(srv, "service:billing", 3) == 3
    (rec,) = search(srv, 'service:billing "invoice 1"')
    assert rec["host"] == "web-7.example.com"
    assert rec["level"] == "INFO"
    assert rec["timestamp"] == "2026-11-20T10:00:00.123456000Z"
    assert rec["message"] == "invoice 1 sent\nsecond line"  # BOM removed, newline kept
    assert rec["attributes"] == {
        "syslog.facility": "local4", "syslog.severity": "notice", "pid": 811, "syslog.msgid": "INV42",
        "exampleSDID@32473.iut": "3", "exampleSDID@32473.eventSource": "App]lication", "origin.ip": "10.1.2.3",
    }
    (rec,) = search(srv, 'service:billing "invoice 2"')
    assert rec["level"] == "ERROR" and rec["host"] == "web-8"
    assert rec["timestamp"] == "2026-11-20T10:00:00.000000000Z"
    (rec,) = search(srv, "service:billing meta.sequenceId:9")
    assert rec["level"] == "DEBUG" and rec["host"] == "127.0.0.1"


def test_lf_framing_rfc3164(syslog_server: tuple[Server, int]) -> None:
    srv, port = syslog_server
    lines = b"".join(b"<30>Nov 20 10:00:%02d gw-1 nginx[77]: GET /item/%d 200\r\n" % (i, i) for i in range(20))
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(lines + b"<27>Nov 20 10:01:00 gw-1 nginx[77]: last one without newline")
    assert wait_count(srv, "service:nginx", 21) == 21
    assert count(srv, "service:nginx host:gw-1 pid:77") == 21
    assert count(srv, "service:nginx level:ERROR") == 1
    (rec,) = search(srv, 'service:nginx "/item/3"')
    assert rec["message"] == "GET /item/3 200"
    assert rec["attributes"]["syslog.facility"] == "daemon"


def test_malformed_input_never_stops_the_receiver(syslog_server: tuple[Server, int]) -> None:
    srv, port = syslog_server
    # a broken octet count: that connection is closed by the server
    bad = socket.create_connection(("127.0.0.1", port))
    bad.sendall(b"99999999999999 <13>x\n")
    bad.settimeout(5)
    assert bad.recv(10) == b""
    bad.close()
    # frames without <PRI> are dropped and counted; the connection and the good frames go on
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"no priority here\n<13>goodtcp: one\n<999>goodtcp: bad pri\n\xff\xfe\x00\n<13>goodtcp: two\n")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.sendto(b"\x00\x01garbage", ("127.0.0.1", port))
        u.sendto(b"", ("127.0.0.1", port))
        u.sendto(b"<14>goodudp: three \xff invalid utf-8", ("127.0.0.1", port))
    # a connection left open in the middle of a frame does not hold back the others
    hanging = socket.create_connection(("127.0.0.1", port))
    hanging.sendall(b"120 <13>hang")
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(_octets(b"<13>1 - h goodtcp - - - four"))
    assert wait_count(srv, "service:goodtcp", 3) == 3
    assert wait_count(srv, "service:goodudp", 1) == 1
    (rec,) = search(srv, "service:goodudp")
    assert rec["message"] == "three \ufffd invalid utf-8"
    hanging.close()
    time.sleep(0.2)
    assert count(srv, "service:goodtcp") == 3


@pytest.mark.skipif(shutil.which("rsyslogd") is None, reason="rsyslogd is not installed (apt-get install rsyslog)")
def test_rsyslog_forwards_to_us(syslog_server: tuple[Server, int], tmp_path: Path) -> None:
    srv, port = syslog_server
    rsyslogd = shutil.which("rsyslogd")
    assert rsyslogd
    in_port = free_port()
    conf = tmp_path / "rsyslog.conf"
    conf.write_text(f"""
global(workDirectory="{tmp_path}")
module(load="imtcp")
input(type="imtcp" port="{in_port}" address="127.0.0.1")
action(type="omfwd" target="127.0.0.1" port="{port}" protocol="tcp"
       TCP_Framing="octet-counted" template="RSYSLOG_SyslogProtocol23Format")
action(type="omfwd" target="127.0.0.1" port="{port}" protocol="udp")
""")
    proc = subprocess.Popen([rsyslogd, "-n", "-f", str(conf), "-i", str(tmp_path / "rsyslog.pid")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                s = socket.create_connection(("127.0.0.1", in_port), timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail("rsyslogd did not start")
                time.sleep(0.1)
        with s:
            s.sendall(b"".join(b"<131>Nov 20 10:00:00 dbhost postgres[9]: slow query %d\n" % i for i in range(50)))
        # every message comes twice: once in RFC 5424 over TCP, once in RFC 3164 over UDP
        assert wait_count(srv, "service:postgres host:dbhost", 100, timeout=20) == 100
        assert count(srv, "service:postgres level:ERROR pid:9") == 100
    finally:
        proc.terminate()
        proc.wait(10)


# ---------------------------------------------------------------------------------------- backpressure
def test_backpressure_udp_drops_are_counted_tcp_waits(tmp_path: Path) -> None:
    port = free_port()
    app = create_app(Settings(data=str(tmp_path / "d"), syslog_port=port, max_queued=5))
    with TestClient(app) as client:
        runtime = app.state.runtime
        (receiver,) = runtime.receivers
        gate = gate_writes(runtime.store, timeout=20)
        tcp = socket.create_connection(("127.0.0.1", port))
        tcp.sendall(b"".join(b"<13>bp: tcp %d\n" % i for i in range(5)))
        deadline = time.monotonic() + 5
        while runtime.pipeline.queued < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert runtime.pipeline.queued == 5  # the queue is full and its writer is stuck
        tcp.sendall(b"".join(b"<13>bp: tcp %d\n" % i for i in range(5, 20)))  # has to wait
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            for i in range(10):
                u.sendto(b"<13>bp: udp %d" % i, ("127.0.0.1", port))
        deadline = time.monotonic() + 5
        while receiver.stats["dropped_backpressure"] < 10 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert receiver.stats["dropped_backpressure"] == 10
        gate.set()
        tcp.close()
        deadline = time.monotonic() + 10
        while client.get("/api/v1/count").json()["count"] < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.get("/api/v1/count").json() == {"count": 20}  # every TCP line, no UDP one
        assert receiver.stats["received"] == 30
    # closed: the port is free again
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


# ---------------------------------------------------------------------------------------- fuzzing
@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_parse_message(data: bytes) -> None:
    try:
        item = parse_message(data, peer="10.0.0.1")
    except SyslogError:
        return
    orjson.dumps(item)
    rec = record_from_json(item, received_ns=1, service="", host="", source="syslog")
    assert rec.host
    assert 0 <= rec.timestamp < 2**63  # the store's integers


def test_out_of_range_timestamp_is_kept_as_original() -> None:
    item = parse_message(b"<13>1 9999-12-31T23:59:59Z h app - - - far future")
    assert "timestamp" not in item and item["timestamp_original"] == "9999-12-31T23:59:59Z"
    item = parse_message(b"<13>1 2026-13-45T10:00:00Z h app - - - bad month")
    assert item["timestamp_original"] == "2026-13-45T10:00:00Z"


_PRI_MSG = st.builds(lambda pri, body: b"<%d>" % pri + body, st.integers(0, 200), st.binary(max_size=80))


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300) | st.lists(_PRI_MSG, max_size=5).map(lambda ms: b"".join(_octets(m) for m in ms)),
       st.lists(st.integers(1, 40), max_size=10))
def test_fuzz_framer(data: bytes, cuts: list[int]) -> None:
    framer = Framer(max_frame=1000)
    chunks, pos = [], 0
    for c in cuts:
        chunks.append(data[pos:pos + c])
        pos += c
    chunks.append(data[pos:])
    frames: list[bytes] = []
    try:
        for chunk in chunks:
            frames.extend(framer.feed(chunk))
        frames.extend(framer.flush())
    except FramingError:
        return
    for frame in frames:
        with contextlib.suppress(SyslogError):
            parse_message(frame)


@given(st.lists(_PRI_MSG, min_size=1, max_size=5), st.integers(1, 50))
@settings(max_examples=200, deadline=None)
def test_octet_counted_frames_survive_any_split(msgs: list[bytes], step: int) -> None:
    stream = b"".join(_octets(m) for m in msgs)
    framer = Framer()
    frames: list[bytes] = []
    for i in range(0, len(stream), step):
        frames.extend(framer.feed(stream[i:i + step]))
    assert frames == msgs
