"""Syslog receiver: RFC 5424 and RFC 3164 messages over UDP and TCP on one port number.

TCP framing (RFC 6587) is detected frame by frame: a frame starting with a digit is octet-counted
(``LEN SP MSG``); one starting with anything else runs to the connection's delimiter, LF or NUL,
whichever the connection's first delimited frame ended with (Python's ``SysLogHandler`` ends its
messages with NUL, so a traceback's newlines stay inside its record; rsyslog and syslog-ng end
theirs with LF). A trailing CR is removed.

Each message becomes a JSON-like item for the pipeline: severity → ``level``, app-name or tag →
``service``, hostname → ``host`` (the peer's address when the message names none), facility →
``syslog.facility``, procid → ``pid``, msgid → ``syslog.msgid``, structured data → one attribute per
parameter named ``SD-ID.PARAM`` (``[origin ip="10.0.0.1"]`` → ``origin.ip``). RFC 3164 timestamps
carry no year and no zone: they are read in the server's local time zone, in the current year (the
previous one when that would put them more than a day ahead).

A UDP datagram cannot be acknowledged or slowed down: when the write queue is full it is dropped
and counted (``stats["dropped_backpressure"]``). A TCP connection stops reading until there is room,
which pushes back on the sender. Frames without a valid ``<PRI>`` are counted in
``stats["malformed"]`` and dropped; a broken octet count closes that connection only.
"""

from __future__ import annotations

import asyncio
import calendar
import contextlib
import logging
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from loglens.ingest._net import LoopThread, admit, in_range, peer_host

if TYPE_CHECKING:
    from loglens.config import Settings
    from loglens.pipeline import Pipeline, RawItem

log = logging.getLogger(__name__)

SOURCE = "syslog"
#: Largest frame accepted over TCP (an octet count above this closes the connection).
MAX_FRAME = 1 << 20
#: Receive buffer asked for the UDP socket.
UDP_RECEIVE_BUFFER = 8 << 20

FACILITIES = (
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv",
    "ftp", "ntp", "security", "console", "solaris-cron",
    "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
)  # fmt: skip
SEVERITIES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")
#: Severity → LogLens level.
LEVELS = ("FATAL", "FATAL", "FATAL", "ERROR", "WARN", "INFO", "INFO", "DEBUG")

_BOM = "\ufeff"
_PRI = re.compile(r"<(\d{1,3})>")
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:[.,](\d{1,9}))?\d*(?:([Zz])|([+-])(\d{2}):?(\d{2}))?"
)
_MONTHS = {m: i for i, m in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}
_BSD_TS = re.compile(r"([A-Z][a-z]{2}) ([ \d]\d) (\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?= |$)")
_TAG = re.compile(r"([^\s\[\]:]{1,128})(?:\[([^\]\s]{0,64})\])?:(?: |$)")
_LEVEL_WORDS = frozenset(
    ("trace", "debug", "info", "notice", "warn", "warning", "error", "err", "crit", "critical", "fatal",
     "alert", "emerg", "severe"))  # fmt: skip
_SD_NAME = re.compile(r'[^ =\]"]{1,32}')


class SyslogError(ValueError):
    """A frame that is not a syslog message."""


# ---------------------------------------------------------------------------------------- parsing
def _int_or_str(value: str) -> int | str:
    return int(value) if value.isdigit() and len(value) < 19 else value


_MINUTES: dict[str, int] = {}  # "YYYY-MM-DDTHH:MM" → its UTC epoch seconds (busy streams repeat it)
_DIGITS = frozenset("0123456789")


def _fast_rfc3339_ns(text: str) -> int | None:
    """The common ``YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`` without a regex; None otherwise."""
    if len(text) < 20 or text[13] != ":" or text[16] != ":":
        return None
    base = _MINUTES.get(text[:16])
    if base is None:
        m = _RFC3339.fullmatch(text[:16] + ":00Z")
        if not m:
            return None
        y, mo, d, h, mi = (int(g) for g in m.groups()[:5])
        if not (1 <= mo <= 12 and 1 <= d <= 31 and h < 24 and mi < 60):
            return None
        base = calendar.timegm((y, mo, d, h, mi, 0, 0, 0, 0))
        if len(_MINUTES) > 4096:
            _MINUTES.clear()
        _MINUTES[text[:16]] = base
    sec = text[17:19]
    if not (sec[0] in _DIGITS and sec[1] in _DIGITS and sec < "61"):
        return None
    pos, n, nanos = 19, len(text), 0
    if text[pos] in ".,":
        end = pos + 1
        while end < n and text[end] in _DIGITS:
            end += 1
        if end == pos + 1:
            return None
        nanos = int(text[pos + 1:min(end, pos + 10)].ljust(9, "0"))
        pos = end
    zone = text[pos:]
    if zone in ("Z", "z"):
        offset = 0
    elif (len(zone) == 6 and zone[0] in "+-" and zone[3] == ":" and zone[1] in _DIGITS and zone[2] in _DIGITS
          and zone[4] in _DIGITS and zone[5] in _DIGITS):
        offset = int(zone[1:3]) * 3600 + int(zone[4:6]) * 60
        if zone[0] == "-":
            offset = -offset
    else:
        return None
    ns = (base + int(sec) - offset) * 1_000_000_000 + nanos
    return ns if in_range(ns) else None


def _rfc3339_ns(text: str) -> int | None:
    ns = _fast_rfc3339_ns(text)
    if ns is not None:
        return ns
    m = _RFC3339.fullmatch(text)
    if not m:
        return None
    y, mo, d, h, mi, s, frac, z, sign, oh, om = m.groups()
    try:
        secs = calendar.timegm((int(y), int(mo), int(d), int(h), int(mi), int(s), 0, 0, 0))
    except (ValueError, OverflowError):
        return None
    if not (1 <= int(mo) <= 12 and 1 <= int(d) <= 31 and int(h) < 24 and int(mi) < 60 and int(s) < 61):
        return None
    if sign:
        offset = int(oh) * 3600 + int(om) * 60
        secs -= offset if sign == "+" else -offset
    elif not z:  # no zone: local time
        secs = int(time.mktime((int(y), int(mo), int(d), int(h), int(mi), int(s), 0, 0, -1)))
    ns = secs * 1_000_000_000 + (int(frac.ljust(9, "0")) if frac else 0)
    return ns if in_range(ns) else None


def _bsd_ns(m: re.Match[str], now: float) -> int | None:
    mon, day, h, mi, s, frac = m.groups()
    month = _MONTHS.get(mon)
    if month is None or not (1 <= int(day) <= 31 and int(h) < 24 and int(mi) < 60 and int(s) < 61):
        return None
    year = time.localtime(now).tm_year
    try:
        secs = time.mktime((year, month, int(day), int(h), int(mi), int(s), 0, 0, -1))
        if secs > now + 86400:  # December's messages read in January
            secs = time.mktime((year - 1, month, int(day), int(h), int(mi), int(s), 0, 0, -1))
    except (ValueError, OverflowError):
        return None
    return int(secs) * 1_000_000_000 + (int(frac.ljust(9, "0")) if frac else 0)


def _parse_sd(text: str, attrs: dict[str, Any]) -> str:
    """Structured data at the start of ``text`` into ``attrs``; returns what follows it."""
    if text.startswith("-"):
        return text[1:]
    pos = 0
    n = len(text)
    if not text.startswith("["):
        raise SyslogError("structured data must be '-' or start with '['")
    while pos < n and text[pos] == "[":
        m = _SD_NAME.match(text, pos + 1)
        if not m:
            raise SyslogError("missing SD-ID")
        sd_id = m.group()
        pos = m.end()
        while True:
            if pos >= n:
                raise SyslogError("unterminated structured data")
            if text[pos] == "]":
                pos += 1
                break
            if text[pos] != " ":
                raise SyslogError("expected a space or ']' in structured data")
            m = _SD_NAME.match(text, pos + 1)
            if not m or text[m.end():m.end() + 2] != '="':
                raise SyslogError("expected PARAM-NAME=\"VALUE\" in structured data")
            name = m.group()
            pos = m.end() + 2
            value: list[str] = []
            while True:
                if pos >= n:
                    raise SyslogError("unterminated PARAM-VALUE")
                c = text[pos]
                if c == "\\" and pos + 1 < n and text[pos + 1] in '"\\]':
                    value.append(text[pos + 1])
                    pos += 2
                elif c == '"':
                    pos += 1
                    break
                else:
                    value.append(c)
                    pos += 1
            key = f"{sd_id}.{name}"
            if key in attrs:  # a repeated parameter keeps every value
                prev = attrs[key]
                attrs[key] = [*prev, "".join(value)] if isinstance(prev, list) else [prev, "".join(value)]
            else:
                attrs[key] = "".join(value)
    return text[pos:]


def _nil(value: str) -> str:
    return "" if value == "-" else value


def _parse_5424(rest: str, item: dict[str, Any]) -> None:
    # rest: everything after "<PRI>1 "
    parts = rest.split(" ", 5)
    if len(parts) < 6:
        raise SyslogError("RFC 5424 header is incomplete")
    ts, hostname, app, procid, msgid, tail = parts
    if ts != "-":
        ns = _rfc3339_ns(ts)
        if ns is not None:
            item["timestamp"] = ns
        else:  # unreadable or out of range: the time received, the original kept
            item["timestamp_original"] = ts
    attrs: dict[str, Any] = {}
    tail = _parse_sd(tail, attrs)
    if tail.startswith(" "):
        tail = tail[1:]
    elif tail:
        raise SyslogError("expected a space after the structured data")
    if tail.startswith(_BOM):
        tail = tail[1:]
    if _nil(hostname):
        item["host"] = hostname
    if _nil(app):
        item["service"] = app
    if _nil(procid):
        item["pid"] = _int_or_str(procid)
    if _nil(msgid):
        item["syslog.msgid"] = msgid
    item["message"] = tail
    item.update((k, v) for k, v in attrs.items() if k not in item)


def _take_tag(text: str, item: dict[str, Any], *, level_words: bool) -> str:
    m = _TAG.match(text)
    if not m or (not level_words and m.group(1).lower() in _LEVEL_WORDS):
        return text
    item["service"] = m.group(1)
    if m.group(2):
        item["pid"] = _int_or_str(m.group(2))
    return text[m.end():]


def _parse_3164(rest: str, item: dict[str, Any], now: float) -> None:
    m = _BSD_TS.match(rest)
    stamped = False
    if m:
        ns = _bsd_ns(m, now)
        if ns is not None:
            item["timestamp"] = ns
        else:
            item["timestamp_original"] = m.group()
        rest = rest[m.end():]
        stamped = True
    else:
        word = rest.split(" ", 1)[0]
        if word[:1].isdigit():
            ns = _rfc3339_ns(word)
            if ns is not None:  # rsyslog's high-precision timestamp in the traditional layout
                item["timestamp"] = ns
                rest = rest[len(word):]
                stamped = True
    if stamped:
        rest = rest.removeprefix(" ")
        # HOST TAG: MSG, or TAG: MSG when the sender left the hostname out (logger to /dev/log)
        if not _TAG.match(rest):
            host, sep, after = rest.partition(" ")
            if host and sep:
                item["host"] = host
                rest = after
        rest = _take_tag(rest, item, level_words=True)
    else:  # Python's SysLogHandler: "<PRI>TAG: MSG" or "<PRI>MSG"; "ERROR: x" is not a tag
        rest = _take_tag(rest, item, level_words=False)
    if rest.startswith(_BOM):
        rest = rest[1:]
    item["message"] = rest


def parse_message(data: bytes | str, *, peer: str = "", now: float | None = None) -> dict[str, Any]:
    """One syslog message as a JSON-like item for the pipeline; :class:`SyslogError` if it has
    no valid ``<PRI>``. Anything after a valid PRI is accepted: what does not fit RFC 5424 is
    read as RFC 3164, whose only requirement is the PRI."""
    text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
    text = text.rstrip("\r\n\x00")
    m = _PRI.match(text)
    if not m:
        raise SyslogError("no <PRI> at the start of the message")
    pri = int(m.group(1))
    if pri > 191 or (len(m.group(1)) > 1 and m.group(1)[0] == "0"):
        raise SyslogError(f"invalid PRI <{m.group(1)}>")
    facility, severity = divmod(pri, 8)
    rest = text[m.end():]
    item: dict[str, Any] = {
        "level": LEVELS[severity],
        "syslog.facility": FACILITIES[facility],
        "syslog.severity": SEVERITIES[severity],
    }
    if rest.startswith("1 "):
        try:
            _parse_5424(rest[2:], item)
        except SyslogError:
            for key in [k for k in item if k not in _BASE_KEYS]:  # undo a partial RFC 5424 read
                del item[key]
            _parse_3164(rest, item, time.time() if now is None else now)
    else:
        _parse_3164(rest, item, time.time() if now is None else now)
    if not item.get("host") and peer:
        item["host"] = peer
    return item


_BASE_KEYS = frozenset(("level", "syslog.facility", "syslog.severity"))


class FramingError(ValueError):
    """The TCP stream cannot be split into frames any more (a bad octet count)."""


@dataclass
class Framer:
    """Splits a TCP byte stream into syslog frames (RFC 6587), octet-counted or delimited."""

    max_frame: int = MAX_FRAME
    buf: bytearray = field(default_factory=bytearray)
    delimiter: int | None = None  # b"\n"[0] or 0, fixed by the first delimited frame

    def feed(self, data: bytes) -> list[bytes]:
        self.buf += data
        frames: list[bytes] = []
        buf = self.buf
        pos = 0
        n = len(buf)
        while pos < n:
            c = buf[pos]
            if c in (0x0A, 0x0D, 0x00, 0x20):  # stray delimiters and padding between frames
                pos += 1
                continue
            if 0x30 <= c <= 0x39:  # octet counting: LEN SP MSG
                sp = buf.find(b" ", pos, pos + 12)
                if sp < 0:
                    if n - pos >= 12 or not buf[pos:n].isdigit():
                        raise FramingError("octet count is not a number")
                    break
                digits = bytes(buf[pos:sp])
                if not digits.isdigit() or digits[0] == 0x30:
                    raise FramingError("octet count is not a number")
                length = int(digits)
                if length > self.max_frame:
                    raise FramingError(f"frame of {length} bytes is over the {self.max_frame} limit")
                if sp + 1 + length > n:
                    break
                frames.append(bytes(buf[sp + 1:sp + 1 + length]))
                pos = sp + 1 + length
                continue
            delim = self.delimiter
            if delim is None:
                end, delim = self._detect(pos)
                if end >= 0:
                    self.delimiter = delim
            else:
                end = buf.find(bytes((delim,)), pos)
            if end < 0:
                if n - pos > self.max_frame:
                    raise FramingError(f"no frame delimiter within {self.max_frame} bytes")
                break
            frames.append(bytes(buf[pos:end]).rstrip(b"\r"))
            pos = end + 1
        del buf[:pos]
        return frames

    def _detect(self, pos: int) -> tuple[int, int]:
        """End of the first delimited frame and the delimiter, NUL or LF. A NUL wins unless an
        LF before it is followed by what looks like the next message (``<``)."""
        buf = self.buf
        lf = buf.find(b"\n", pos)
        nul = buf.find(b"\x00", pos)
        if nul >= 0 and (lf < 0 or nul < lf or buf[lf + 1:lf + 2] != b"<"):
            return nul, 0
        return lf, 0x0A

    def flush(self) -> list[bytes]:
        """What is left when the connection ends: a last frame without its delimiter."""
        rest = bytes(self.buf).strip(b"\r\n\x00 ")
        self.buf.clear()
        if rest[:1].isdigit():
            raise FramingError("the connection ended inside an octet-counted frame")
        return [rest] if rest else []


# ---------------------------------------------------------------------------------------- servers
class _Udp(asyncio.DatagramProtocol):
    def __init__(self, receiver: SyslogReceiver) -> None:
        self.receiver = receiver

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.receiver._datagram(data, peer_host(addr))

    def error_received(self, exc: Exception) -> None:  # ICMP errors and the like; nothing to do
        log.debug("syslog UDP error: %s", exc)


class SyslogReceiver:
    def __init__(self, pipeline: Pipeline, host: str, port: int) -> None:
        self.pipeline = pipeline
        self.stats: dict[str, int] = {
            "received": 0, "malformed": 0, "dropped_backpressure": 0, "connections": 0, "framing_errors": 0, "bytes": 0,
        }
        self._pending: list[RawItem] = []
        self._flush_scheduled = False
        self._loop = LoopThread("loglens-syslog")
        try:
            self.addresses = self._loop.call(self._start(host, port))
        except BaseException:
            self._loop.close()
            raise

    async def _start(self, host: str, port: int) -> list[Any]:
        loop = asyncio.get_running_loop()
        server = await asyncio.start_server(self._connection, host, port, limit=MAX_FRAME)
        self._loop.on_close(self._closer(server))
        transport, _ = await loop.create_datagram_endpoint(lambda: _Udp(self), local_addr=(host, port))
        self._loop.on_close(transport.close)
        sock = transport.get_extra_info("socket")
        if sock is not None:  # room for bursts while the loop is busy (the kernel caps it)
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RECEIVE_BUFFER)
        return [s.getsockname() for s in server.sockets]

    @staticmethod
    def _closer(server: asyncio.Server) -> Callable[[], Any]:
        async def close() -> None:
            server.close()
            await server.wait_closed()

        return close

    # UDP: one message per datagram, batched per loop iteration, dropped (counted) when full
    def _datagram(self, data: bytes, peer: str) -> None:
        self.stats["received"] += 1
        self.stats["bytes"] += len(data)
        try:
            self._pending.append(parse_message(data, peer=peer))
        except SyslogError:
            self.stats["malformed"] += 1
            return
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush_udp)

    def _flush_udp(self) -> None:
        from loglens.pipeline import QueueFullError

        self._flush_scheduled = False
        items, self._pending = self._pending, []
        if not items:
            return
        try:
            self.pipeline.submit(items, source=SOURCE)
        except QueueFullError:
            self.stats["dropped_backpressure"] += len(items)
            log.warning("syslog: write queue full, %d UDP messages dropped", len(items))

    # TCP: framed stream; waits for room in the queue instead of dropping
    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.stats["connections"] += 1
        peer = peer_host(writer.get_extra_info("peername"))
        framer = Framer()
        try:
            while True:
                data = await reader.read(65536)
                self.stats["bytes"] += len(data)
                try:
                    frames = framer.feed(data) if data else framer.flush()
                except FramingError as exc:
                    self.stats["framing_errors"] += 1
                    self.stats["malformed"] += 1
                    log.warning("syslog: closing the connection from %s: %s", peer, exc)
                    break
                if frames:
                    await self._submit_frames(frames, peer)
                if not data:
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:  # the receiver is closing; ending normally keeps asyncio quiet
            pass
        finally:
            writer.close()

    async def _submit_frames(self, frames: list[bytes], peer: str) -> None:
        items: list[RawItem] = []
        for frame in frames:
            self.stats["received"] += 1
            try:
                items.append(parse_message(frame, peer=peer))
            except SyslogError:
                self.stats["malformed"] += 1
        if items:
            await admit(self.pipeline, items, source=SOURCE)

    def close(self) -> None:
        self._loop.close()
        self._flush_udp()  # what arrived before the close is still submitted


def start(settings: Settings, pipeline: Pipeline) -> SyslogReceiver:
    receiver = SyslogReceiver(pipeline, settings.host, settings.syslog_port)
    log.info("syslog listening on %s (UDP and TCP)", receiver.addresses)
    return receiver
