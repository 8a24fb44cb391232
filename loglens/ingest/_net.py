"""Shared plumbing of the socket receivers: an asyncio loop on a thread of its own, and admission
into the pipeline that waits (without reading more from the socket) while the queue is full."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

from loglens.parse.jsonmap import TIMESTAMP_KEYS
from loglens.parse.timestamps import parse_timestamp
from loglens.pipeline import Pipeline, QueueFullError, RawItem

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Times kept as given: from 1973 to 2116. Beyond 2116 a value is garbage and may not fit the
#: store's signed 64-bit integers (one such record would fail its whole batch); before 1973 it is
#: a device without a clock, and as an integer it would be read as seconds or milliseconds.
MIN_NS = 10**17
MAX_NS = 1 << 62

#: How long a stream connection sleeps between two tries when the write queue is full.
RETRY_SECONDS = 0.05


class LoopThread:
    """An event loop running on a daemon thread, owned by one receiver."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._closers: list[Callable[[], Awaitable[None] | None]] = []
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            self.loop.close()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float | None = 30) -> T:
        """Run a coroutine on the loop and wait for its result (errors are raised here)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def on_close(self, closer: Callable[[], Awaitable[None] | None]) -> None:
        self._closers.append(closer)

    async def _shutdown(self) -> None:
        for closer in reversed(self._closers):
            try:
                result = closer()
                if result is not None:
                    await result
            except Exception:
                log.exception("closing a listener failed")
        current = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not current]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def close(self, timeout: float = 10) -> None:
        if not self._thread.is_alive():
            return
        try:
            self.call(self._shutdown(), timeout)
        except Exception:
            log.exception("receiver shutdown failed")
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)


async def admit(pipeline: Pipeline, items: list[RawItem], *, service: str = "", host: str = "",
                source: str = "") -> Future[int]:
    """Submit, waiting while the write queue is full. The caller reads nothing from its socket
    meanwhile, so the sender is slowed down by TCP flow control instead of data being dropped."""
    while True:
        try:
            return pipeline.submit(items, service=service, host=host, source=source)
        except QueueFullError:
            await asyncio.sleep(RETRY_SECONDS)


def peer_host(peername: Any) -> str:
    """The address part of a socket peer name ('' when unknown)."""
    if isinstance(peername, tuple) and peername:
        return str(peername[0])
    return ""


def in_range(ns: int) -> bool:
    return MIN_NS <= ns < MAX_NS


def guard_timestamps(item: dict[str, Any]) -> None:
    """Move timestamp fields whose value reads as a time out of range (``9999-12-31``, ``2**64-1``,
    ``0``) to ``timestamp_original``, so the record gets the time it was received instead
    of failing the batch it is written with."""
    for key in TIMESTAMP_KEYS:
        value = item.get(key)
        t = type(value)
        if t is str or t is int or t is float:
            ns = parse_timestamp(value)  # type: ignore[arg-type]
            if ns is not None and not in_range(ns):
                item.setdefault("timestamp_original", value)
                del item[key]
