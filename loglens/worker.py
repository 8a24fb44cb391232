"""Parsing and template mining, the pipeline's pure-Python stages, in a process of their own.

Together they are most of ingest's Python work; in the server's process they would compete for the
GIL with the store's row building. In a child process they get a core of their own, and the
pipeline threads that feed it wait on a pipe (without the GIL) meanwhile.

The child is ``python -m loglens.worker`` talking length-prefixed messages over its stdin/stdout
(``marshal`` where the message holds only plain values, else ``pickle``):
unlike ``multiprocessing`` it never re-imports the parent's main module, so it works the same under
a console script, ``python -m``, a test runner or a user's script. It ends when its stdin closes
(the parent ended, however it ended).

:class:`Worker` does the same work in the calling process (``LOGLENS_WORKER_PROCESS=0``).
"""

from __future__ import annotations

import contextlib
import logging
import marshal
import os
import pickle
import struct
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable
from typing import IO, Any

from loglens.gc_tuning import tune_gc
from loglens.model import LogRecord, RecordBatch, Template
from loglens.parse import json_object, parse_line, record_from_json
from loglens.patterns.miner import TemplateMiner

#: A JSON object with the service it belongs to and attributes set after it is mapped (a receiver
#: that reads per-document metadata, like the Elasticsearch bulk API's index and id).
MappedObject = tuple[dict[str, Any], str, dict[str, Any]]
RawItem = str | dict[str, Any] | LogRecord | MappedObject
#: One submission's share of a batch: items, service, host, source, time received (ns), and
#: whether its items are NDJSON lines (each must be a JSON object; others are rejected).
Job = tuple[list[RawItem], str, str, str, int, bool]
#: Items of a job refused, as (index in the job's items, reason).
Rejected = list[tuple[int, str]]
#: Parsed records with their template ids, templates created or changed, merges (old id, new id),
#: and for each job the items it refused.
Result = tuple[RecordBatch, list[Template], list[tuple[int, int]], list[Rejected]]

#: Record times accepted as given: 1970 to 2200. Others are replaced by the arrival time.
EARLIEST_NS = 0
LATEST_NS = 7_258_118_400 * 1_000_000_000

_HEADER = struct.Struct("!Q")
log = logging.getLogger(__name__)
_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_job(items: list[RawItem], service: str, host: str, source: str, received_ns: int,
              json_lines: bool = False, rejected: Rejected | None = None) -> list[LogRecord]:
    """Records for one submission's items: text lines and JSON objects parsed, records a receiver
    built itself (OTLP...) taken as they are. Items left out are reported in ``rejected`` as
    (index, reason): with ``json_lines`` (the items are NDJSON lines) those that are not JSON
    objects, and a :data:`MappedObject` that could not be mapped."""
    if rejected is None:
        rejected = []
    if json_lines:
        items = _json_objects(items, rejected)
    out = _parse_items(items, service, host, source, received_ns, rejected)
    # Times out of range are rare: look for them over the columns (min and max run in C) first.
    timestamps = [rec.timestamp for rec in out]
    observed = [rec.observed_at for rec in out]
    if out and (min(timestamps) < EARLIEST_NS or max(timestamps) > LATEST_NS
                or min(observed) < EARLIEST_NS or max(observed) > LATEST_NS):
        _arrival_time_for_bogus_times(out, received_ns)
    return out


def _parse_items(items: list[RawItem], service: str, host: str, source: str, received_ns: int,
                 rejected: Rejected) -> list[LogRecord]:
    """Each item's record, by its kind (see :func:`parse_job`)."""
    out = []
    for index, item in enumerate(items):
        if isinstance(item, tuple):
            try:
                out.append(record_from_mapped(item, received_ns, host, source))
            except Exception as exc:  # the mapper never should; a bug must not fail the other items
                log.exception("could not map a document")
                rejected.append((index, f"failed to map the document: {exc}"))
        elif isinstance(item, dict):
            out.append(record_from_json(item, received_ns=received_ns, service=service, host=host, source=source))
        elif isinstance(item, LogRecord):
            if not item.source:
                item.source = source
            out.append(item)
        else:
            out.append(parse_line(item, received_ns=received_ns, service=service, host=host, source=source))
    return out


def _arrival_time_for_bogus_times(out: list[LogRecord], received_ns: int) -> None:
    """Put the records whose times the store cannot order at their arrival time."""
    for rec in out:
        if not EARLIEST_NS <= rec.timestamp <= LATEST_NS:
            # A time the store cannot order (a bogus epoch, year 9999) must not fail the batch
            # for every sender in it: keep the record at its arrival time, like an unparsed one.
            rec.attributes.setdefault("timestamp_original", str(rec.timestamp))
            rec.timestamp = received_ns
        if not EARLIEST_NS <= rec.observed_at <= LATEST_NS:
            rec.observed_at = received_ns


def record_from_mapped(item: MappedObject, received_ns: int, host: str = "", source: str = "") -> LogRecord:
    """The record of a :data:`MappedObject`."""
    obj, service, attributes = item
    rec = record_from_json(obj, received_ns=received_ns, service=service, host=host, source=source)
    rec.attributes.update(attributes)
    return rec


def _json_objects(lines: list[RawItem], rejected: Rejected) -> list[RawItem]:
    """The JSON objects of NDJSON lines, with the reasons for the others (as HTTP reports them)."""
    objects: list[RawItem] = []
    for index, line in enumerate(lines):
        obj = json_object(line) if isinstance(line, str) else line
        if type(obj) is str:
            rejected.append((index, obj))
        else:
            objects.append(obj)
    return objects


def _parse_and_mine(miner: TemplateMiner, jobs: list[Job]) -> tuple[list[LogRecord], list[Rejected]]:
    records: list[LogRecord] = []
    rejected: list[Rejected] = []
    for items, service, host, source, received_ns, json_lines in jobs:
        refused: Rejected = []
        records.extend(parse_job(items, service, host, source, received_ns, json_lines, refused))
        rejected.append(refused)
    ids = miner.add_many([r.message for r in records], [r.timestamp for r in records])
    for rec, tid in zip(records, ids, strict=True):
        rec.template_id = tid
    return records, rejected


class Worker:
    """Parses and mines in the calling process; ``send`` then ``receive``, in order."""

    def __init__(self, max_templates: int = 20_000) -> None:
        self.miner = TemplateMiner(max_templates=max_templates)
        self._sent: deque[list[Job]] = deque()

    def load(self, templates: Iterable[Template], *,
             reload: Callable[[], Iterable[Template]] | None = None) -> None:
        self.miner.load(templates)

    def send(self, jobs: list[Job]) -> object:
        self._sent.append(jobs)
        return None

    def receive(self, sent_to: object = None) -> Result:
        records, rejected = _parse_and_mine(self.miner, self._sent.popleft())
        return RecordBatch.of(records), self.miner.drain_changes(), self.miner.drain_merges(), rejected

    def close(self) -> None:
        self._sent.clear()


# --------------------------------------------------------------------------------------------------
# The child process


def _write(stream: IO[bytes], obj: Any) -> None:
    # marshal writes lists of strings, numbers and dicts about twice as fast as pickle (and reads
    # them a little faster); records a receiver built itself (OTLP...) need pickle.
    try:
        kind, data = b"m", marshal.dumps(obj)
    except ValueError:
        kind, data = b"p", pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data) + 1) + kind)
    stream.write(data)
    stream.flush()


def _read(stream: IO[bytes]) -> Any:
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        raise EOFError("the ingest worker process ended")
    (size,) = _HEADER.unpack(header)
    data = stream.read(size)
    if len(data) < size:
        raise EOFError("the ingest worker process ended mid-answer")
    # our own child process (the same interpreter), over its private pipe
    return marshal.loads(memoryview(data)[1:]) if data[:1] == b"m" else pickle.loads(memoryview(data)[1:])


def serve(inp: IO[bytes], out: IO[bytes]) -> None:
    """The child's loop: a ``(templates, max_templates, next_id)`` start, then one answer per list
    of jobs: ``("ok", columns, changes, merges, rejected)`` or ``("error", reason, [], [], [])``.
    The columns are lists of the records' fields in :class:`LogRecord`'s order, and the templates
    are tuples of :class:`Template`'s fields (plain values are much cheaper to send than objects,
    and columns cheaper than a tuple per record). ``None`` or EOF ends it."""
    templates, max_templates, next_id = _read(inp)
    miner = TemplateMiner(max_templates=max_templates)
    miner.load(templates)
    miner.reserve_ids(next_id)
    tune_gc()
    while True:
        try:
            jobs = _read(inp)
        except EOFError:
            return
        if jobs is None:
            return
        try:
            records, rejected = _parse_and_mine(miner, jobs)
            columns = RecordBatch.of(records).columns()
            changes = [(t.id, t.text, t.count, t.first_seen, t.last_seen, t.aliases) for t in miner.drain_changes()]
            _write(out, ("ok", columns, changes, miner.drain_merges(), rejected))
        except Exception as exc:  # report it and keep serving
            _write(out, ("error", repr(exc), [], [], []))


class WorkerProcess:
    """A :class:`Worker` in a child process. Requests may be sent ahead of the answers (the pipe
    holds them), so the child starts on the next batch while the parent takes the previous one.

    A child that died (killed, out of memory) fails the batches it held; the next ``send`` starts
    a new one with the templates ``reload`` gives (those the store has saved), and template ids
    above every id seen so far, so that ids from the old child still on their way to the store
    are never given to other templates."""

    def __init__(self, max_templates: int = 20_000) -> None:
        self.max_templates = max_templates
        self._send_lock = threading.Lock()
        self._receive_lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._reload: Callable[[], Iterable[Template]] | None = None
        self._next_id = 1
        # Requests sent to each child (by pid) and not yet answered.
        self._in_flight: dict[int, int] = {}
        self._answered = threading.Condition()
        #: Children started, the first included.
        self.starts = 0

    def load(self, templates: Iterable[Template], *,
             reload: Callable[[], Iterable[Template]] | None = None) -> None:
        """Start the child with these templates (once, before the first batch)."""
        self._reload = reload
        self._start(templates)

    def _start(self, templates: Iterable[Template]) -> subprocess.Popen[bytes]:
        templates = list(templates)
        self._next_id = max([self._next_id, *(t.id + 1 for t in templates)])
        # The child must run this very code: ``-P`` keeps the working directory (which may hold
        # another checkout's ``loglens/``) off its path, and the folder this package was
        # imported from goes first.
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [_PACKAGE_ROOT, env.get("PYTHONPATH")]))
        proc = subprocess.Popen([sys.executable, "-P", "-m", "loglens.worker"], env=env,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert proc.stdin is not None
        _write(proc.stdin, (templates, self.max_templates, self._next_id))
        self._proc = proc
        self.starts += 1
        return proc

    def _running(self) -> subprocess.Popen[bytes]:
        proc = self._proc
        if proc is None:
            return self._start([])
        if proc.poll() is None:
            return proc
        log.warning("the ingest worker process ended (exit code %s); starting a new one", proc.returncode)
        with contextlib.suppress(OSError):
            assert proc.stdin is not None
            proc.stdin.close()
        # Answers the old child wrote before it died may hold new template ids: read them before
        # choosing the new child's first id (or, if nobody reads them, leave room for them).
        with self._answered:
            if not self._answered.wait_for(lambda: not self._in_flight.get(proc.pid), timeout=10):
                self._next_id += 1 << 20
            self._in_flight.pop(proc.pid, None)
        return self._start(self._reload() if self._reload is not None else [])

    def send(self, jobs: list[Job]) -> object:
        """Send a request; returns the child it went to, for ``receive``."""
        with self._send_lock:
            proc = self._running()
            assert proc.stdin is not None
            _write(proc.stdin, jobs)
            with self._answered:
                self._in_flight[proc.pid] = self._in_flight.get(proc.pid, 0) + 1
            return proc

    def receive(self, sent_to: object = None) -> Result:
        """The answer to the oldest request sent to ``sent_to`` (by default the current child)."""
        proc = sent_to if isinstance(sent_to, subprocess.Popen) else self._proc
        if proc is None or proc.stdout is None:
            raise RuntimeError("nothing was sent to the ingest worker")
        try:
            with self._receive_lock:
                status, columns, changed, merges, rejected = _read(proc.stdout)
            changes = [Template(*fields) for fields in changed]
            if changes:
                self._next_id = max(self._next_id, max(t.id for t in changes) + 1)
        finally:
            with self._answered:
                self._in_flight[proc.pid] = self._in_flight.get(proc.pid, 0) - 1
                self._answered.notify_all()
        if status != "ok":
            raise RuntimeError(f"ingest worker failed: {columns}")
        return RecordBatch(*columns), changes, merges, rejected

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with contextlib.suppress(BrokenPipeError, OSError, ValueError):
            assert proc.stdin is not None
            _write(proc.stdin, None)
            proc.stdin.close()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


if __name__ == "__main__":
    serve(sys.stdin.buffer, sys.stdout.buffer)
