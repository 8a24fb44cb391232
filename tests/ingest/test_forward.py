"""Fluentd forward protocol receiver: end to end against a real ``loglens serve`` with
fluent-logger's FluentSender and hand-written Forward/PackedForward/CompressedPackedForward
senders, ack after commit, the shared-key handshake, malformed input; the decoder fuzzed."""

from __future__ import annotations

import gzip
import hashlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import orjson
import pytest
from fastapi.testclient import TestClient
from fluent import sender as fluent_sender
from hypothesis import given, settings
from hypothesis import strategies as st

from loglens.config import Settings
from loglens.ingest.forward import ForwardError, decode_stream, to_items
from loglens.parse import record_from_json
from loglens.server import create_app
from tests.conftest import Server, count, free_port, gate_writes, search, start_server, stop_server, wait_count


@pytest.fixture(scope="module")
def forward_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, int]]:
    port = free_port()
    srv = start_server(tmp_path_factory.mktemp("forward") / "data", "--forward-port", str(port))
    yield srv, port
    stop_server(srv)








def pack(obj: Any) -> bytes:
    return bytes(msgpack.packb(obj, use_bin_type=True))


def event_time(t: float, nanos: int | None = None) -> msgpack.ExtType:
    secs = int(t)
    if nanos is None:
        nanos = min(round((t - secs) * 1e9), 999_999_999)
    return msgpack.ExtType(0, secs.to_bytes(4, "big") + nanos.to_bytes(4, "big"))


class Client:
    """A minimal forward client: send msgpack, read msgpack replies."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.unpacker = msgpack.Unpacker(raw=False)

    def send(self, obj: Any) -> None:
        self.sock.sendall(pack(obj))

    def reply(self) -> Any:
        while True:
            for obj in self.unpacker:
                return obj
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("closed by the server")
            self.unpacker.feed(data)

    def closed_by_server(self) -> bool:
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.sock.close()


def test_fluent_logger_message_mode(forward_server: tuple[Server, int]) -> None:
    srv, port = forward_server
    n = 200
    for nano in (False, True):
        logger = fluent_sender.FluentSender("shop", host="127.0.0.1", port=port, nanosecond_precision=nano)
        for i in range(n):
            assert logger.emit("orders" if not nano else "orders.ns", {
                "message": f"order {i} placed", "level": "ERROR" if i % 10 == 0 else "INFO", "order_id": i,
            }), logger.last_error
        logger.close()
    assert wait_count(srv, "service:shop.orders", n) == n
    assert wait_count(srv, "service:shop.orders.ns", n) == n
    time.sleep(0.2)
    assert count(srv, "service:shop.orders") == n
    assert count(srv, "service:shop.orders level:ERROR") == n // 10
    assert count(srv, 'fluent.tag:shop.orders.ns host:"127.0.0.1" source:fluentd') == n
    (rec,) = search(srv, 'service:shop.orders "order 42 placed"')
    assert rec["attributes"]["order_id"] == 42
    assert rec["attributes"]["fluent.tag"] == "shop.orders"
    assert abs(time.time() - _epoch(rec["timestamp"])) < 120


def _epoch(ts: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(ts[:26] + "+00:00").timestamp()


def _entries(word: str, n: int, t0: int) -> list[list[Any]]:
    return [[event_time(t0, 500_000_000 + i * 1_000_000), {"log": f"{word} line {i}\n", "stream": "stdout"}]
            for i in range(n)]


@pytest.mark.parametrize("mode", ["forward", "packed", "compressed"])
def test_modes_with_ack_after_commit(forward_server: tuple[Server, int], mode: str) -> None:
    srv, port = forward_server
    tag = f"k8s.{mode}"
    t0 = 1763632800  # 2025-11-20T10:00:00Z
    client = Client(port)
    total = 0
    try:
        for chunk_no in range(3):
            entries = _entries(f"{mode}{chunk_no}", 100, t0 + chunk_no)
            chunk = f"{mode}-chunk-{chunk_no}"
            if mode == "forward":
                msg: list[Any] = [tag, entries, {"chunk": chunk, "size": len(entries)}]
            else:
                stream = b"".join(pack(e) for e in entries)
                option: dict[str, Any] = {"chunk": chunk, "size": len(entries)}
                if mode == "compressed":  # two gzip members, as Fluentd appends them
                    half = len(b"".join(pack(e) for e in entries[:50]))
                    stream = gzip.compress(stream[:half]) + gzip.compress(stream[half:])
                    option["compressed"] = "gzip"
                msg = [tag, stream, option]
            client.send(msg)
            assert client.reply() == {"ack": chunk}
            total += len(entries)
            # the ack means committed: the records are searchable the moment it arrives
            assert count(srv, f"fluent.tag:{tag}") == total
    finally:
        client.close()
    (rec,) = search(srv, f'fluent.tag:{tag} "{mode}0 line 7"')
    assert rec["message"] == f"{mode}0 line 7"  # Docker's trailing newline removed
    assert rec["service"] == tag
    assert rec["attributes"]["stream"] == "stdout"
    assert rec["timestamp"] == "2025-11-20T10:00:00.507000000Z"


def test_record_fields_win_and_kubernetes_service(forward_server: tuple[Server, int]) -> None:
    srv, port = forward_server
    client = Client(port)
    try:
        client.send(["kube.var.log.containers.x", [
            [1763632800, {"log": "from k8s", "kubernetes": {"labels": {"app": "cart"}, "container_name": "c"}}],
            [1763632800.25, {"message": "own service", "service": "billing", "host": "node-3",
                             "@timestamp": "2025-11-20T11:00:00Z"}],
            [[event_time(1763632801), {"meta": 1}], {"log": "fluent-bit v2 entry", "level": "warn"}],
            ["not", "a record"],
        ], {"chunk": "k"}])
        assert client.reply() == {"ack": "k"}
    finally:
        client.close()
    (rec,) = search(srv, '"from k8s"')
    assert rec["service"] == "cart" and rec["timestamp"] == "2025-11-20T10:00:00.000000000Z"
    (rec,) = search(srv, '"own service"')
    assert rec["service"] == "billing" and rec["host"] == "node-3"
    assert rec["timestamp"] == "2025-11-20T11:00:00.000000000Z"
    (rec,) = search(srv, '"fluent-bit v2 entry"')
    assert rec["level"] == "WARN" and rec["timestamp"] == "2025-11-20T10:00:01.000000000Z"


def test_malformed_input_closes_only_that_connection(forward_server: tuple[Server, int]) -> None:
    srv, port = forward_server
    good = Client(port)  # opened before the bad ones, used after them
    try:
        for garbage in (b"\xc1\xc1\xc1 not msgpack", pack({"not": "an array"}), pack(["t", 1]),
                        pack(["t", b"\x93\x01", {"compressed": "gzip"}])):
            bad = Client(port)
            bad.sock.sendall(garbage)
            assert bad.closed_by_server(), garbage
            bad.close()
        half = Client(port)  # a message cut in the middle holds back nothing else
        half.sock.sendall(pack(["half", [[1, {"log": "never complete"}]], {"chunk": "h"}])[:-5])
        good.send(["survivor", 1763632800, {"message": "still here"}, {"chunk": "s"}])
        assert good.reply() == {"ack": "s"}
        half.close()
    finally:
        good.close()
    assert count(srv, "service:survivor") == 1
    assert count(srv, "service:half") == 0


def test_udp_heartbeat_answered(forward_server: tuple[Server, int]) -> None:
    _, port = forward_server
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.settimeout(5)
        u.sendto(b"\x00", ("127.0.0.1", port))
        assert u.recvfrom(16)[0] == b"\x00"


def _digest(*parts: bytes) -> str:
    return hashlib.sha512(b"".join(parts)).hexdigest()


def test_shared_key_handshake(tmp_path_factory: pytest.TempPathFactory) -> None:
    port = free_port()
    srv = start_server(tmp_path_factory.mktemp("fwdkey") / "data", "--forward-port", str(port),
                       "--forward-shared-key", "s3cret")
    try:
        # good key: HELO → PING → PONG, then events
        c = Client(port)
        helo = c.reply()
        assert helo[0] == "HELO"
        nonce = helo[1]["nonce"]
        salt = b"0123456789abcdef"
        c.send(["PING", "client-host", salt, _digest(salt, b"client-host", nonce, b"s3cret"), "", ""])
        pong = c.reply()
        assert pong[:3] == ["PONG", True, ""]
        assert pong[4] == _digest(salt, pong[3].encode(), nonce, b"s3cret")  # the server knows the key too
        c.send(["authed", [[1763632800, {"log": "with the key"}]], {"chunk": "a1"}])
        assert c.reply() == {"ack": "a1"}
        c.close()
        assert count(srv, "service:authed host:client-host") == 1

        # bad key: PONG false, then the connection is closed and nothing sent is stored
        c = Client(port)
        nonce = c.reply()[1]["nonce"]
        c.send(["PING", "intruder", salt, _digest(salt, b"intruder", nonce, b"wrong"), "", ""])
        c.send(["intruder", [[1763632800, {"log": "without the key"}]], {"chunk": "x"}])
        pong = c.reply()
        assert pong[0] == "PONG" and pong[1] is False and "shared_key" in pong[2]
        assert c.closed_by_server()
        c.close()

        # no PING at all: events before the handshake are refused
        c = Client(port)
        c.reply()
        c.send(["rude", [[1763632800, {"log": "no handshake"}]], {"chunk": "r"}])
        assert c.closed_by_server()
        c.close()

        # fluent-logger (which has no handshake) cannot get in either
        logger = fluent_sender.FluentSender("plain", host="127.0.0.1", port=port)
        logger.emit("x", {"log": "unauthenticated"})
        logger.close()
        time.sleep(0.3)
        assert count(srv, "") == 1
    finally:
        stop_server(srv)


# ---------------------------------------------------------------------------------------- fuzzing
def _check(data: bytes) -> None:
    try:
        messages = decode_stream(data)
    except ForwardError:
        return
    for msg in messages:
        for item in to_items(msg):
            assert isinstance(item, dict)
            orjson.dumps(item)
            rec = record_from_json(item, received_ns=1, service=msg.tag, host="h", source="fluentd")
            assert 0 <= rec.timestamp < 2**63  # the store's integers


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=400))
def test_fuzz_decoder_bytes(data: bytes) -> None:
    _check(data)


_scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats() | st.text(max_size=20) \
    | st.binary(max_size=20)
_keys = st.text(max_size=8) | st.integers(-(2**63), 2**63 - 1)
_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4)
                       | st.dictionaries(_keys, inner, max_size=4), max_leaves=12)
_times = st.integers(-5, 2**41) | st.floats(allow_nan=True) | st.builds(event_time, st.floats(0, 2**31))
_entries_st = st.lists(st.tuples(_times, _values).map(list), max_size=4)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=10), _entries_st, _values, st.sampled_from(["message", "forward", "packed", "gzip"]))
def test_fuzz_decoder_structured(tag: str, entries: list[list[Any]], option: Any, mode: str) -> None:
    if mode == "message":
        objs: list[Any] = [[tag, *e, option] for e in entries]
    elif mode == "forward":
        objs = [[tag, entries, option]]
    else:
        stream = b"".join(pack(e) for e in entries)
        opt = {"compressed": "gzip"} if mode == "gzip" else option
        objs = [[tag, gzip.compress(stream) if mode == "gzip" else stream, opt]]
    _check(b"".join(pack(o) for o in objs))


# ---------------------------------------------------------------------------------------- backpressure
def test_backpressure_waits_and_acks_after_commit(tmp_path: Path) -> None:
    port = free_port()
    app = create_app(Settings(data=str(tmp_path / "d"), forward_port=port, max_queued=5))
    with TestClient(app) as client:
        runtime = app.state.runtime
        (receiver,) = runtime.receivers
        gate = gate_writes(runtime.store, timeout=20)
        c = Client(port)
        try:
            for i in range(4):
                c.send(["bp", [[1763632800, {"log": f"chunk {i} line {j}"}] for j in range(5)], {"chunk": f"c{i}"}])
            c.sock.settimeout(0.5)
            with pytest.raises(TimeoutError):  # nothing is committed, so nothing is acknowledged
                c.reply()
            assert runtime.pipeline.queued <= 5 + 5  # the queue holds what it admitted, no more
            c.sock.settimeout(10)
            gate.set()
            assert [c.reply() for _ in range(4)] == [{"ack": f"c{i}"} for i in range(4)]
            assert client.get("/api/v1/count").json() == {"count": 20}
        finally:
            c.close()
        assert receiver.stats["acks"] == 4 and receiver.stats["received"] == 20
    with socket.socket() as s:  # closed: the port is free again
        s.bind(("127.0.0.1", port))


def test_deeply_nested_record_is_rejected_not_fatal() -> None:
    deep: Any = {"log": "x"}
    for _ in range(500):
        deep = {"a": deep}
    (msg,) = decode_stream(pack(["t", [[1, deep], [2, {"log": "fine"}]]]))
    assert msg.rejected == 1
    assert [r["log"] for _, r in msg.events] == ["fine"]


def test_out_of_range_times_fall_back_to_received() -> None:
    entries = [[2**40, {"log": "a", "@timestamp": 2**64 - 1}],
               [1763632800, {"log": "b", "time": "9999-12-31T23:59:59Z"}],
               [float("inf"), {"log": "c", "ts": 1e300}], [0, {"log": "d"}]]
    (msg,) = decode_stream(pack(["t", entries]))
    recs = [record_from_json(item, received_ns=7, service="", host="", source="")  # type: ignore[arg-type]
            for item in to_items(msg)]
    assert [r.timestamp for r in recs] == [7, 1763632800 * 10**9, 7, 7]
    assert [r.attributes.get("timestamp_original") for r in recs] == [2**64 - 1, "9999-12-31T23:59:59Z", 1e300, None]
