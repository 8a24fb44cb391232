"""The write path every receiver shares: bounded queue → batch → parse → templates → commit → ack.

Receivers turn bytes into raw items (a text record, already joined across continuation lines, a
decoded JSON object, or a :class:`LogRecord` a receiver built itself from a structured wire format
such as OTLP, taken as it is) and ``submit`` them. Submissions are merged into batches; each batch
is parsed and given its templates by the worker (:mod:`loglens.worker`, a process of its own by
default), then written and committed, and only then is each submission's future resolved: what a
receiver acknowledges is durable.

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
from loglens.model import RecordBatch, Template
from loglens.store.base import Store
from loglens.worker import Job, RawItem, Rejected, Worker, WorkerProcess

log = logging.getLogger(__name__)

#: Called with each committed batch (ids filled); a batch is a sequence of records, built on first use.
Subscriber = Callable[[RecordBatch], None]


class QueueFullError(RuntimeError):
    """The write queue is at capacity; try again shortly."""


@dataclass(slots=True)
class Submission:
    items: list[RawItem]
    service: str
    host: str
    source: str
    received_ns: int
    json_lines: bool = False
    #: Filled before the future resolves: items the worker refused (index, reason).
    rejected: Rejected = field(default_factory=list)
    future: Future[int] = field(default_factory=Future)


@dataclass(slots=True)
class _Parsed:
    batch: list[Submission]
    size: int
    records: RecordBatch = field(default_factory=lambda: RecordBatch.of([]))
    templates: list[Template] = field(default_factory=list)
    merges: list[tuple[int, int]] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    #: Why the batch could not be handed to the worker, if it could not.
    error: BaseException | None = None
    #: Where it was sent (the worker process that will answer).
    sent_to: object = None


@dataclass(slots=True)
class PipelineStats:
    records: int = 0
    batches: int = 0
    commit_seconds: float = 0.0
    queued: int = 0


class Pipeline:
    def __init__(self, store: Store, *, worker: Worker | WorkerProcess | None = None,
                 max_queued: int = 200_000, batch_records: int = 10_000) -> None:
        self.store = store
        if worker is None:
            # By default parsing and mining get a process (and so a core) of their own;
            # LOGLENS_WORKER_PROCESS=0 keeps them in this process.
            in_process = os.environ.get("LOGLENS_WORKER_PROCESS", "1") == "0"
            worker = Worker() if in_process else WorkerProcess()
        self.worker = worker
        self.worker.load(store.load_templates(), reload=store.load_templates)
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
        #: Batches sent to the worker, then parsed batches waiting for the writer; two each keep
        #: every stage busy without hoarding memory.
        self._sent: queue.Queue[_Parsed | None] = queue.Queue(maxsize=2)
        self._parsed: queue.Queue[_Parsed | None] = queue.Queue(maxsize=2)
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> Pipeline:
        if not self._threads:
            tune_gc()
            # Three threads: one sends batches to the worker, one takes its answers, one writes
            # (SQLite releases the GIL); the worker parses and mines meanwhile.
            self._threads = [
                threading.Thread(target=self._run_send, name="loglens-send", daemon=True),
                threading.Thread(target=self._run_receive, name="loglens-receive", daemon=True),
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
        self.worker.close()

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
               timeout: float | None = None, json_lines: bool = False,
               rejected: Rejected | None = None) -> Future[int]:
        """Queue raw items; the future resolves to the count stored once they are committed.

        Items the worker refuses are not stored; they are added to ``rejected`` as (index, reason)
        before the future resolves. With ``json_lines`` the items are NDJSON lines, checked by the
        worker (where they are parsed anyway) instead of by the receiver: lines that are not JSON
        objects are refused."""
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
        sub = Submission(list(items), service, host, source, received_ns or time.time_ns(), json_lines)
        if rejected is not None:
            sub.rejected = rejected
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

    def _run_send(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                self._sent.put(None)
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
            jobs: list[Job] = [(sub.items, sub.service, sub.host, sub.source, sub.received_ns, sub.json_lines)
                               for sub in batch]
            sent = _Parsed(batch, size)
            try:
                sent.sent_to = self.worker.send(jobs)
            except BaseException as exc:
                sent.error = exc
            self._sent.put(sent)
            if stop:
                self._sent.put(None)
                return

    def _run_receive(self) -> None:
        while True:
            parsed = self._sent.get()
            if parsed is None:
                self._parsed.put(None)
                return
            try:
                if parsed.error is not None:
                    raise parsed.error
                parsed.records, parsed.templates, parsed.merges, parsed.rejected = self.worker.receive(
                    parsed.sent_to)
            except BaseException as exc:
                log.exception("parsing or template mining failed")
                self._fail(parsed.batch, parsed.size, exc)
                continue
            self._parsed.put(parsed)

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
            for sub, refused in zip(parsed.batch, parsed.rejected, strict=True):
                sub.rejected.extend(refused)
                sub.future.set_result(len(sub.items) - len(refused))
            for callback in list(self._subscribers):
                try:
                    callback(parsed.records)
                except Exception:  # a broken subscriber must not stop ingest
                    log.exception("subscriber failed")
