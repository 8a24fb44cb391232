"""The write path every receiver shares: bounded queue → batch → parse → templates → commit → ack.

Receivers turn bytes into raw items (a text record, already joined across continuation lines, a
decoded JSON object, or a :class:`LogRecord` a receiver built itself from a structured wire format
such as OTLP, taken as it is) and ``submit`` them. One worker thread drains the queue, merging small
submissions into batches, parses them, assigns templates, writes and commits, and only then
resolves each submission's future: what a receiver acknowledges is durable.

A full queue refuses new work (``QueueFullError``) instead of growing memory without bound;
HTTP turns that into 429, file readers wait.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from loglens.gc_tuning import tune_gc
from loglens.model import LogRecord, Template
from loglens.parse import parse_line, record_from_json
from loglens.patterns.miner import TemplateMiner
from loglens.patterns.process import MinerProcess
from loglens.store.base import Store

log = logging.getLogger(__name__)

RawItem = str | dict[str, Any] | LogRecord
Subscriber = Callable[[list[LogRecord]], None]


#: Record times accepted as given: 1970 to 2200. Others are replaced by the arrival time.
EARLIEST_NS = 0
LATEST_NS = 7_258_118_400 * 1_000_000_000


class QueueFullError(RuntimeError):
    """The write queue is at capacity; try again shortly."""


@dataclass(slots=True)
class Submission:
    items: list[RawItem]
    service: str
    host: str
    source: str
    received_ns: int
    future: Future[int] = field(default_factory=Future)


@dataclass(slots=True)
class _Parsed:
    batch: list[Submission]
    size: int
    records: list[LogRecord]
    templates: list[Template]
    merges: list[tuple[int, int]]


@dataclass(slots=True)
class PipelineStats:
    records: int = 0
    batches: int = 0
    commit_seconds: float = 0.0
    queued: int = 0


class Pipeline:
    def __init__(self, store: Store, *, miner: TemplateMiner | MinerProcess | None = None,
                 max_queued: int = 200_000, batch_records: int = 10_000) -> None:
        self.store = store
        if miner is None:
            # By default the miner gets a process (and so a core) of its own; LOGLENS_MINER_PROCESS=0
            # keeps it in this process.
            miner = MinerProcess() if os.environ.get("LOGLENS_MINER_PROCESS", "1") != "0" else TemplateMiner()
        self.miner = miner
        self.miner.load(store.load_templates())
        self.max_queued = max_queued
        self.batch_records = batch_records
        self.stats = PipelineStats()
        self._queue: queue.Queue[Submission | None] = queue.Queue()
        self._queued = 0
        self._queued_lock = threading.Lock()
        self._space = threading.Condition(self._queued_lock)
        self._subscribers: list[Subscriber] = []
        #: Called with each batch's commit time in seconds (metrics).
        self.commit_observers: list[Callable[[float], None]] = []
        #: Parsed batches waiting for templates, then for the writer; two each keep every stage busy
        #: without hoarding memory.
        self._unmined: queue.Queue[_Parsed | None] = queue.Queue(maxsize=2)
        self._parsed: queue.Queue[_Parsed | None] = queue.Queue(maxsize=2)
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> Pipeline:
        if not self._threads:
            tune_gc()
            # Three stages on three threads: parsing, template mining (waiting on the miner's own
            # process) and the store's commit (SQLite releases the GIL) overlap batch by batch.
            self._threads = [
                threading.Thread(target=self._run_parse, name="loglens-parse", daemon=True),
                threading.Thread(target=self._run_mine, name="loglens-mine", daemon=True),
                threading.Thread(target=self._run_write, name="loglens-write", daemon=True),
            ]
            for t in self._threads:
                t.start()
        return self

    def close(self) -> None:
        """Finish what was accepted, then stop."""
        if self._threads:
            self._queue.put(None)
            for t in self._threads:
                t.join()
            self._threads = []
        if isinstance(self.miner, MinerProcess):
            self.miner.close()

    def __enter__(self) -> Pipeline:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ producers
    @property
    def queued(self) -> int:
        return self._queued

    def submit(self, items: Sequence[RawItem], *, service: str = "", host: str = "", source: str = "",
               received_ns: int | None = None, block: bool = False,
               timeout: float | None = None) -> Future[int]:
        """Queue raw items; the future resolves to the count stored once they are committed."""
        n = len(items)
        with self._space:
            if self._queued + n > self.max_queued and self._queued > 0:
                if not block:
                    raise QueueFullError(f"write queue full ({self._queued} records waiting)")
                deadline = None if timeout is None else time.monotonic() + timeout
                while self._queued + n > self.max_queued and self._queued > 0:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        raise QueueFullError(f"write queue full ({self._queued} records waiting)")
                    self._space.wait(remaining)
            self._queued += n
        sub = Submission(list(items), service, host, source, received_ns or time.time_ns())
        if n == 0:
            sub.future.set_result(0)
            self._release(0)
            return sub.future
        self._queue.put(sub)
        return sub.future

    def write(self, items: list[RawItem], **kwargs: Any) -> int:
        """Submit and wait for the commit (blocking while the queue is full)."""
        return self.submit(items, block=True, **kwargs).result()

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback) if callback in self._subscribers else None

    # ------------------------------------------------------------------ the worker
    def _release(self, n: int) -> None:
        with self._space:
            self._queued -= n
            self._space.notify_all()

    def _run_parse(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                self._unmined.put(None)
                return
            batch = [first]
            size = len(first.items)
            stop = False
            while size < self.batch_records:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                batch.append(nxt)
                size += len(nxt.items)
            try:
                records: list[LogRecord] = []
                for sub in batch:
                    records.extend(self.parse(sub))
                self._unmined.put(_Parsed(batch, size, records, [], []))
            except BaseException as exc:
                log.exception("parsing failed")
                self._fail(batch, size, exc)
            if stop:
                self._unmined.put(None)
                return

    def _run_mine(self) -> None:
        while True:
            parsed = self._unmined.get()
            if parsed is None:
                self._parsed.put(None)
                return
            try:
                records = parsed.records
                template_ids = self.miner.add_many([r.message for r in records], [r.timestamp for r in records])
                for rec, tid in zip(records, template_ids, strict=True):
                    rec.template_id = tid
                parsed.templates = self.miner.drain_changes()
                parsed.merges = self.miner.drain_merges()
                self._parsed.put(parsed)
            except BaseException as exc:
                log.exception("template mining failed")
                self._fail(parsed.batch, parsed.size, exc)

    def _fail(self, batch: list[Submission], size: int, exc: BaseException) -> None:
        for sub in batch:
            if not sub.future.done():
                sub.future.set_exception(exc)
        self._release(size)

    def _run_write(self) -> None:
        while True:
            parsed = self._parsed.get()
            if parsed is None:
                return
            started = time.perf_counter()
            try:
                self.store.write(parsed.records, parsed.templates, parsed.merges)
            except BaseException as exc:  # the batch failed as a whole: tell every sender
                log.exception("write failed")
                self._fail(parsed.batch, parsed.size, exc)
                continue
            elapsed = time.perf_counter() - started
            self.stats.records += len(parsed.records)
            self.stats.batches += 1
            self.stats.commit_seconds += elapsed
            for observe in self.commit_observers:
                observe(elapsed)
            self._release(parsed.size)
            for sub in parsed.batch:
                sub.future.set_result(len(sub.items))
            for callback in list(self._subscribers):
                try:
                    callback(parsed.records)
                except Exception:  # a broken subscriber must not stop ingest
                    log.exception("subscriber failed")

    @staticmethod
    def parse(sub: Submission) -> list[LogRecord]:
        out = []
        for item in sub.items:
            if isinstance(item, dict):
                out.append(record_from_json(item, received_ns=sub.received_ns, service=sub.service,
                                            host=sub.host, source=sub.source))
            elif isinstance(item, LogRecord):  # already parsed by its receiver: only templates remain
                if not item.source:
                    item.source = sub.source
                out.append(item)
            else:
                out.append(parse_line(item, received_ns=sub.received_ns, service=sub.service,
                                      host=sub.host, source=sub.source))
        for rec in out:
            if not EARLIEST_NS <= rec.timestamp <= LATEST_NS:
                # A time the store cannot order (a bogus epoch, year 9999) must not fail the batch
                # for every sender in it: keep the record at its arrival time, like an unparsed one.
                rec.attributes.setdefault("timestamp_original", str(rec.timestamp))
                rec.timestamp = sub.received_ns
            if not EARLIEST_NS <= rec.observed_at <= LATEST_NS:
                rec.observed_at = sub.received_ns
        return out
