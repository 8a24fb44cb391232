"""What the HTTP receivers share: reading a bounded body, undoing its Content-Encoding, committing.

Each receiver renders the errors raised here in its own protocol's way.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from loglens.ingest.bodies import BodyError, gunzip
from loglens.pipeline import QueueFullError

if TYPE_CHECKING:
    from fastapi import Request

    from loglens.pipeline import RawItem


def runtime_of(request: Request) -> Any:
    return request.app.state.runtime


async def read_body(request: Request, limit: int) -> bytes:
    """The raw request body, refusing more than ``limit`` bytes with a 413 ``BodyError``."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise BodyError(f"body of {declared} bytes is over the limit of {limit} bytes", status=413)
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyError(f"body is over the limit of {limit} bytes", status=413)
        chunks.append(chunk)
    return b"".join(chunks)


def _varint(data: bytes) -> tuple[int, int]:
    """A protobuf-style varint at the start of ``data``: (value, bytes used)."""
    value = shift = 0
    for i, b in enumerate(data[:10]):
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, i + 1
        shift += 7
    raise BodyError("body is not valid snappy: bad length header")


def unsnappy(body: bytes, limit: int) -> bytes:
    """Snappy block format (what Loki and Prometheus remote write use), bounded by ``limit``."""
    import cramjam

    size, _ = _varint(body)
    if size > limit:
        raise BodyError(f"decompressed body is larger than the limit of {limit} bytes", status=413)
    try:
        return bytes(cramjam.snappy.decompress_raw(body))
    except Exception as exc:  # cramjam raises its own DecompressionError
        raise BodyError(f"body is not valid snappy: {exc}") from exc


_SNAPPY_FRAMED = b"\xff\x06\x00\x00sNaPpY"


def _unsnappy_framed(body: bytes, limit: int) -> bytes:
    """Snappy's framing format (what some HTTP clients mean by ``Content-Encoding: snappy``)."""
    import cramjam

    try:
        out = bytes(cramjam.snappy.decompress(body))
    except Exception as exc:
        raise BodyError(f"body is not valid framed snappy: {exc}") from exc
    if len(out) > limit:
        raise BodyError(f"decompressed body is larger than the limit of {limit} bytes", status=413)
    return out


def _inflate(body: bytes, limit: int) -> bytes:
    for wbits in (zlib.MAX_WBITS, -zlib.MAX_WBITS):  # zlib-wrapped (the standard) or raw deflate
        d = zlib.decompressobj(wbits)
        try:
            out = d.decompress(body, limit + 1)
        except zlib.error:
            continue
        if len(out) > limit or d.unconsumed_tail:
            raise BodyError(f"decompressed body is larger than the limit of {limit} bytes", status=413)
        return out
    raise BodyError("body is not valid deflate data")


def _unzstd(body: bytes, limit: int) -> bytes:
    import zstandard

    try:
        reader = zstandard.ZstdDecompressor().stream_reader(body)
        out = reader.read(limit + 1)
    except zstandard.ZstdError as exc:
        raise BodyError(f"body is not valid zstd: {exc}") from exc
    if len(out) > limit:
        raise BodyError(f"decompressed body is larger than the limit of {limit} bytes", status=413)
    return out


def decompress(body: bytes, encoding: str, limit: int) -> bytes:
    """Undo a ``Content-Encoding`` (gzip, deflate, zstd, snappy), never past ``limit`` bytes."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding in ("gzip", "x-gzip"):
        return gunzip(body, limit)
    if encoding == "deflate":
        return _inflate(body, limit)
    if encoding == "zstd":
        return _unzstd(body, limit)
    if encoding == "snappy":
        try:
            return unsnappy(body, limit)
        except BodyError as exc:
            if exc.status == 413 or not body.startswith(_SNAPPY_FRAMED):
                raise
        return _unsnappy_framed(body, limit)
    if encoding == "x-snappy-framed":
        return _unsnappy_framed(body, limit)
    raise BodyError(f"unsupported Content-Encoding {encoding!r}: use gzip, deflate, zstd or snappy", status=415)


async def commit(request: Request, items: Sequence[RawItem], *, source: str, service: str = "",
                 host: str = "", rejected: list[tuple[int, str]] | None = None) -> int:
    """Hand items to the pipeline and wait until they are committed; items the worker refused
    are added to ``rejected`` as (index, reason).

    Raises ``QueueFullError`` when the write queue is full (nothing was queued then) and whatever
    the store raised when the commit failed.
    """
    if not items:
        return 0
    try:
        future = runtime_of(request).pipeline.submit(list(items), service=service, host=host, source=source,
                                                     rejected=rejected)
    except QueueFullError:
        count_rejected(request, source, "backpressure", len(items))
        raise
    return int(await asyncio.wrap_future(future))


def count_rejected(request: Request, receiver: str, reason: str, n: int) -> None:
    """Count records a receiver refused in the server's metrics (``loglens_records_rejected_total``)."""
    metrics = getattr(request.app.state, "metrics", None)
    if metrics is not None and n > 0:
        metrics.rejected(receiver, reason, n)
