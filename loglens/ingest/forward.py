"""Fluentd forward protocol (v1) receiver: what Fluentd's ``out_forward``, Fluent Bit's ``forward``
output, the Docker ``fluentd`` logging driver and the fluent-logger libraries send.

All four event modes are read: Message ``[tag, time, record, option?]``, Forward
``[tag, [[time, record], ...], option?]``, PackedForward ``[tag, <msgpack stream as bin/str>,
option?]`` and CompressedPackedForward (the same, ``option.compressed == "gzip"``, one or more gzip
members). Times are EventTime (ext type 0), msgpack timestamps, integer or float seconds; Fluent
Bit's ``[[time, metadata], record]`` entries are read too.

When an entry carries ``option.chunk``, the reply ``{"ack": chunk}`` is sent only after the
pipeline has committed the records, so a sender with ``require_ack_response`` resends whatever was
not acknowledged and loses nothing. Without ``chunk`` the connection only waits for room in the
write queue (backpressure through TCP flow control), never for the commit.

With a shared key the server opens each connection with ``HELO`` (a random nonce), expects
``PING`` with ``sha512_hex(salt + client_hostname + nonce + shared_key)``, answers ``PONG`` (with
its own digest) and closes connections that fail. Username/password authentication is not
supported. UDP heartbeats on the same port are answered with one NUL byte, as Fluentd does.

Each record becomes a JSON-like item (``log``/``message`` is the message, etc., see
:mod:`loglens.parse.jsonmap`), with the tag as ``fluent.tag``. The event time is the record's
``@timestamp`` unless the record has one of its own. Service: the record's own
(``service``, ``service.name``, ``app``...), else Kubernetes metadata (``app.kubernetes.io/name``
or ``app`` label, then the container name), else the tag. Host: the record's, else the client's
hostname from the handshake, else the peer address.

Malformed msgpack, or msgpack that is not a forward message, closes that connection (counted in
``stats["malformed"]``); an entry whose record is not a map is skipped and counted in
``stats["rejected_entries"]``, as is one nested more than 64 levels deep. Other connections are never
affected.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import socket
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgpack

from loglens.ingest._net import MAX_NS, LoopThread, admit, guard_timestamps, in_range, peer_host

if TYPE_CHECKING:
    from loglens.config import Settings
    from loglens.pipeline import Pipeline, RawItem

log = logging.getLogger(__name__)

SOURCE = "fluentd"
#: Default limit on one message (and on a decompressed PackedForward stream).
MAX_MESSAGE = 64 << 20


class ForwardError(ValueError):
    """Bytes or objects that are not the forward protocol."""


class EventTime(int):
    """Fluentd's EventTime (ext type 0) as nanoseconds since the epoch."""


def _ext_hook(code: int, data: bytes) -> Any:
    if code == 0:
        if len(data) != 8:
            raise ForwardError("EventTime must be 8 bytes")
        secs = int.from_bytes(data[:4], "big")
        nanos = int.from_bytes(data[4:], "big")
        return EventTime(secs * 1_000_000_000 + nanos)
    return msgpack.ExtType(code, data)


def _unpacker(max_size: int) -> msgpack.Unpacker:
    # raw=True: strings stay bytes, because a PackedForward stream may come as a msgpack str; the
    # text is decoded (invalid UTF-8 replaced) when records are cleaned
    return msgpack.Unpacker(raw=True, strict_map_key=False, ext_hook=_ext_hook, max_buffer_size=max_size,
                            timestamp=0)


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, str):
        return value
    raise ForwardError(f"expected a string, got {type(value).__name__}")


#: Deepest nesting kept in a record: deeper records are rejected (the mapper flattens recursively).
MAX_DEPTH = 64


def _clean(value: Any, depth: int = 0) -> Any:
    """msgpack values as JSON-like ones: text decoded, times as nanoseconds, ext types as text."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, dict | list | tuple):
        if depth >= MAX_DEPTH:
            raise ForwardError(f"record nested deeper than {MAX_DEPTH} levels")
        if isinstance(value, dict):
            return {(k.decode("utf-8", errors="replace") if isinstance(k, bytes) else str(k)): _clean(v, depth + 1)
                    for k, v in value.items()}
        return [_clean(v, depth + 1) for v in value]
    if isinstance(value, EventTime):
        return int(value)
    if isinstance(value, msgpack.Timestamp):
        return value.to_unix_nano()
    if isinstance(value, msgpack.ExtType):
        return f"ext({value.code}):{value.data.hex()}"
    return value


def event_time_ns(value: Any) -> int | None:
    """An event time (EventTime, msgpack timestamp, int or float seconds) in nanoseconds; None when
    it is none of these or out of range, before 1973 or after 2116 (the record then gets the time
    it was received)."""
    ns: int | None
    if isinstance(value, EventTime):
        ns = int(value)
    elif isinstance(value, msgpack.Timestamp):
        ns = int(value.to_unix_nano())
    elif isinstance(value, bool):
        ns = None
    elif isinstance(value, int):
        ns = value * 1_000_000_000 if value < MAX_NS // 1_000_000_000 else None
    elif isinstance(value, float):
        ns = int(value * 1e9) if 0 <= value < MAX_NS / 1e9 else None
    elif isinstance(value, list) and value:  # Fluent Bit 2.x: [time, metadata]
        ns = event_time_ns(value[0])
    else:
        ns = None
    return ns if ns is not None and in_range(ns) else None


@dataclass(slots=True)
class Message:
    tag: str
    #: (event time in ns or None, record) per valid entry
    events: list[tuple[int | None, dict[str, Any]]] = field(default_factory=list)
    option: dict[str, Any] = field(default_factory=dict)
    #: entries skipped because they were not [time, map]
    rejected: int = 0

    @property
    def chunk(self) -> str | None:
        chunk = self.option.get("chunk")
        return chunk if isinstance(chunk, str) and chunk else None


def gunzip(data: bytes, limit: int) -> bytes:
    """Decompress one or more concatenated gzip members, refusing more than ``limit`` bytes."""
    out = bytearray()
    while data:
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            out += d.decompress(data, limit - len(out) + 1)
        except zlib.error as exc:
            raise ForwardError(f"bad gzip data: {exc}") from None
        if len(out) > limit:
            raise ForwardError(f"compressed entries expand beyond {limit} bytes")
        if not d.eof:
            raise ForwardError("truncated gzip data")
        data = d.unused_data.lstrip(b"\x00")
    return bytes(out)


def _entry(entry: Any, msg: Message) -> None:
    if isinstance(entry, list) and len(entry) >= 2 and isinstance(entry[1], dict):
        try:
            msg.events.append((event_time_ns(entry[0]), _clean(entry[1])))
            return
        except ForwardError:
            pass
    msg.rejected += 1


def decode_message(obj: Any, *, max_size: int = MAX_MESSAGE) -> Message:
    """One top-level msgpack object of the event stream as a :class:`Message`."""
    if not isinstance(obj, list) or len(obj) < 2:
        raise ForwardError("a forward message is an array of 2 to 4 elements")
    if len(obj) > 4:
        raise ForwardError("a forward message has at most 4 elements")
    msg = Message(_text(obj[0]))
    second = obj[1]
    if isinstance(second, list):  # Forward mode
        option = obj[2] if len(obj) > 2 else None
        entries: list[Any] = second
    elif isinstance(second, bytes):  # PackedForward, maybe compressed
        option = obj[2] if len(obj) > 2 else None
        entries = []
    else:  # Message mode
        if len(obj) < 3:
            raise ForwardError("Message mode needs [tag, time, record]")
        option = obj[3] if len(obj) > 3 else None
        entries = [[second, obj[2]]]
    if option is not None:
        if not isinstance(option, dict):
            raise ForwardError("option must be a map")
        msg.option = _clean(option)
    if isinstance(second, bytes):
        stream = second
        compressed = msg.option.get("compressed")
        if compressed == "gzip":
            stream = gunzip(stream, max_size)
        elif compressed not in (None, "text"):
            raise ForwardError(f"unknown compression {compressed!r}")
        unpacker = _unpacker(max(max_size, len(stream)))
        try:
            unpacker.feed(stream)
            entries = list(unpacker)
        except ForwardError:
            raise
        except Exception as exc:
            raise ForwardError(f"bad PackedForward entries: {exc}") from None
    for entry in entries:
        _entry(entry, msg)
    return msg


class ForwardDecoder:
    """Splits a TCP byte stream into top-level msgpack objects."""

    def __init__(self, max_size: int = MAX_MESSAGE) -> None:
        self.max_size = max_size
        self._unpacker = _unpacker(max_size)

    def feed(self, data: bytes) -> list[Any]:
        try:
            self._unpacker.feed(data)
            return list(self._unpacker)
        except ForwardError:
            raise
        except Exception as exc:  # msgpack's errors: ExtraData, FormatError, StackError, BufferFull...
            raise ForwardError(f"bad msgpack: {type(exc).__name__}: {exc}") from None


def decode_stream(data: bytes, *, max_size: int = MAX_MESSAGE) -> list[Message]:
    """Every message in ``data`` (complete objects only); :class:`ForwardError` otherwise."""
    return [decode_message(obj, max_size=max_size) for obj in ForwardDecoder(max_size).feed(data)]


# ---------------------------------------------------------------------------------------- mapping
_SERVICE_KEYS = ("service", "service.name", "app", "application")
_K8S_LABELS = ("app.kubernetes.io/name", "app")


def _has_service(record: dict[str, Any]) -> bool:
    if any(isinstance(record.get(k), str | int | float) and record.get(k) != "" for k in _SERVICE_KEYS):
        return True
    service = record.get("service")
    return isinstance(service, dict) and bool(service.get("name"))


def _k8s_service(record: dict[str, Any]) -> str | None:
    k8s = record.get("kubernetes")
    if not isinstance(k8s, dict):
        return None
    labels = k8s.get("labels")
    if isinstance(labels, dict):
        for key in _K8S_LABELS:
            if isinstance(labels.get(key), str) and labels[key]:
                return str(labels[key])
    name = k8s.get("container_name")
    return name if isinstance(name, str) and name else None


def to_items(msg: Message) -> list[RawItem]:
    items: list[RawItem] = []
    for ns, record in msg.events:
        item = record
        guard_timestamps(item)
        if ns is not None and "@timestamp" not in item:
            item["@timestamp"] = ns
        item.setdefault("fluent.tag", msg.tag)
        if not _has_service(item):
            service = _k8s_service(item)
            if service:
                item["service"] = service
        items.append(item)
    return items


# ---------------------------------------------------------------------------------------- handshake
def digest(salt: bytes, hostname: bytes, nonce: bytes, shared_key: bytes) -> str:
    return hashlib.sha512(salt + hostname + nonce + shared_key).hexdigest()


def _bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    raise ForwardError("expected a string")


def _pack(obj: Any) -> bytes:
    return bytes(msgpack.packb(obj, use_bin_type=True))


# ---------------------------------------------------------------------------------------- server
class _Heartbeat(asyncio.DatagramProtocol):
    def __init__(self, receiver: ForwardReceiver) -> None:
        self.receiver = receiver
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.receiver.stats["heartbeats"] += 1
        if self.transport is not None:
            self.transport.sendto(b"\x00", addr)


class ForwardReceiver:
    def __init__(self, pipeline: Pipeline, host: str, port: int, *, shared_key: str = "",
                 max_size: int = MAX_MESSAGE) -> None:
        self.pipeline = pipeline
        self.shared_key = shared_key.encode()
        self.max_size = max_size
        self.hostname = socket.gethostname()
        self.stats: dict[str, int] = {
            "connections": 0, "messages": 0, "received": 0, "malformed": 0, "rejected_entries": 0,
            "acks": 0, "auth_failures": 0, "heartbeats": 0, "bytes": 0,
        }
        self._loop = LoopThread("loglens-forward")
        try:
            self.addresses = self._loop.call(self._start(host, port))
        except BaseException:
            self._loop.close()
            raise

    async def _start(self, host: str, port: int) -> list[Any]:
        loop = asyncio.get_running_loop()
        server = await asyncio.start_server(self._connection, host, port)

        async def close_server() -> None:
            server.close()
            await server.wait_closed()

        self._loop.on_close(close_server)
        try:
            transport, _ = await loop.create_datagram_endpoint(lambda: _Heartbeat(self), local_addr=(host, port))
            self._loop.on_close(transport.close)
        except OSError as exc:  # heartbeats are optional; the TCP side is what matters
            log.warning("forward: no UDP heartbeat listener on port %d: %s", port, exc)
        return [s.getsockname() for s in server.sockets]

    async def _handshake(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                         decoder: ForwardDecoder, pending: list[Any]) -> str | None:
        """HELO → PING → PONG. Returns the client's hostname, or None when it failed."""
        nonce = os.urandom(16)
        # no "auth" key: its presence (even empty) asks the client for a username/password digest
        writer.write(_pack(["HELO", {"nonce": nonce, "keepalive": True}]))
        await writer.drain()
        while not pending:
            data = await reader.read(65536)
            if not data:
                return None
            pending.extend(decoder.feed(data))
        ping = pending.pop(0)
        if not (isinstance(ping, list) and len(ping) >= 4 and ping[0] == b"PING"):
            raise ForwardError("expected PING after HELO")
        client_host, salt, client_digest = _bytes(ping[1]), _bytes(ping[2]), _bytes(ping[3])
        expected = digest(salt, client_host, nonce, self.shared_key)
        if not hmac.compare_digest(client_digest, expected.encode()):
            self.stats["auth_failures"] += 1
            writer.write(_pack(["PONG", False, "shared_key mismatch", self.hostname, ""]))
            await writer.drain()
            return None
        writer.write(_pack(["PONG", True, "", self.hostname,
                            digest(salt, self.hostname.encode(), nonce, self.shared_key)]))
        await writer.drain()
        return client_host.decode("utf-8", errors="replace")

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.stats["connections"] += 1
        peer = peer_host(writer.get_extra_info("peername"))
        decoder = ForwardDecoder(self.max_size)
        pending: list[Any] = []
        try:
            host = peer
            if self.shared_key:
                client = await self._handshake(reader, writer, decoder, pending)
                if client is None:
                    log.warning("forward: refused %s (handshake failed)", peer)
                    return
                host = client or peer
            while True:
                while pending:
                    await self._message(decode_message(pending.pop(0), max_size=self.max_size), host, writer)
                data = await reader.read(65536)
                if not data:
                    return
                self.stats["bytes"] += len(data)
                pending.extend(decoder.feed(data))
        except ForwardError as exc:
            self.stats["malformed"] += 1
            log.warning("forward: closing the connection from %s: %s", peer, exc)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:  # the receiver is closing; ending normally keeps asyncio quiet
            pass
        except Exception:  # the pipeline failed to commit: no ack, the sender will resend
            log.exception("forward: connection from %s failed", peer)
        finally:
            writer.close()

    async def _message(self, msg: Message, host: str, writer: asyncio.StreamWriter) -> None:
        self.stats["messages"] += 1
        self.stats["received"] += len(msg.events)
        self.stats["rejected_entries"] += msg.rejected
        items = to_items(msg)
        future = await admit(self.pipeline, items, service=msg.tag, host=host, source=SOURCE)
        chunk = msg.chunk
        if chunk is not None:
            await asyncio.wrap_future(future)  # committed: now it may be acknowledged
            writer.write(_pack({"ack": chunk}))
            await writer.drain()
            self.stats["acks"] += 1

    def close(self) -> None:
        self._loop.close()


def start(settings: Settings, pipeline: Pipeline) -> ForwardReceiver:
    receiver = ForwardReceiver(pipeline, settings.host, settings.forward_port,
                               shared_key=settings.forward_shared_key, max_size=settings.max_body_bytes)
    log.info("forward protocol listening on %s%s", receiver.addresses,
             " (shared key required)" if settings.forward_shared_key else "")
    return receiver
