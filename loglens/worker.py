"""Parsing and template mining, the pipeline's pure-Python stages, in a process of their own.

Together they are most of ingest's Python work; in the server's process they would compete for the
GIL with the store's row building. In a child process they get a core of their own, and the
pipeline threads that feed it wait on a pipe (without the GIL) meanwhile.

The child is ``python -m loglens.worker`` talking length-prefixed pickles over its stdin/stdout:
unlike ``multiprocessing`` it never re-imports the parent's main module, so it works the same under
a console script, ``python -m``, a test runner or a user's script. It ends when its stdin closes
(the parent ended, however it ended).

:class:`Worker` does the same work in the calling process (``LOGLENS_WORKER_PROCESS=0``).
"""

from __future__ import annotations

import contextlib
import pickle
import struct
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Iterable
from typing import IO, Any

from loglens.gc_tuning import tune_gc
from loglens.model import Level, LogRecord, Template
from loglens.parse import parse_line, record_from_json
from loglens.patterns.miner import TemplateMiner

RawItem = str | dict[str, Any] | LogRecord
#: One submission's share of a batch: items, service, host, source, time received (ns).
Job = tuple[list[RawItem], str, str, str, int]
#: Parsed records with their template ids, templates created or changed, merges (old id, new id).
Result = tuple[list[LogRecord], list[Template], list[tuple[int, int]]]

#: Record times accepted as given: 1970 to 2200. Others are replaced by the arrival time.
EARLIEST_NS = 0
LATEST_NS = 7_258_118_400 * 1_000_000_000

_LEVELS = tuple(Level)
_HEADER = struct.Struct("!Q")


def parse_job(items: list[RawItem], service: str, host: str, source: str, received_ns: int) -> list[LogRecord]:
    """Records for one submission's items: text lines and JSON objects parsed, records a receiver
    built itself (OTLP...) taken as they are."""
    out = []
    for item in items:
        if isinstance(item, dict):
            out.append(record_from_json(item, received_ns=received_ns, service=service, host=host, source=source))
        elif isinstance(item, LogRecord):
            if not item.source:
                item.source = source
            out.append(item)
        else:
            out.append(parse_line(item, received_ns=received_ns, service=service, host=host, source=source))
    for rec in out:
        if not EARLIEST_NS <= rec.timestamp <= LATEST_NS:
            # A time the store cannot order (a bogus epoch, year 9999) must not fail the batch
            # for every sender in it: keep the record at its arrival time, like an unparsed one.
            rec.attributes.setdefault("timestamp_original", str(rec.timestamp))
            rec.timestamp = received_ns
        if not EARLIEST_NS <= rec.observed_at <= LATEST_NS:
            rec.observed_at = received_ns
    return out


def _parse_and_mine(miner: TemplateMiner, jobs: list[Job]) -> list[LogRecord]:
    records: list[LogRecord] = []
    for job in jobs:
        records.extend(parse_job(*job))
    ids = miner.add_many([r.message for r in records], [r.timestamp for r in records])
    for rec, tid in zip(records, ids, strict=True):
        rec.template_id = tid
    return records


class Worker:
    """Parses and mines in the calling process; ``send`` then ``receive``, in order."""

    def __init__(self, max_templates: int = 20_000) -> None:
        self.miner = TemplateMiner(max_templates=max_templates)
        self._sent: deque[list[Job]] = deque()

    def load(self, templates: Iterable[Template]) -> None:
        self.miner.load(templates)

    def send(self, jobs: list[Job]) -> None:
        self._sent.append(jobs)

    def receive(self) -> Result:
        records = _parse_and_mine(self.miner, self._sent.popleft())
        return records, self.miner.drain_changes(), self.miner.drain_merges()

    def close(self) -> None:
        self._sent.clear()


# --------------------------------------------------------------------------------------------------
# The child process


def _write(stream: IO[bytes], obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def _read(stream: IO[bytes]) -> Any:
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        raise EOFError("the ingest worker process ended")
    (size,) = _HEADER.unpack(header)
    data = stream.read(size)
    if len(data) < size:
        raise EOFError("the ingest worker process ended mid-answer")
    return pickle.loads(data)  # our own child process, over its private pipe


def serve(inp: IO[bytes], out: IO[bytes]) -> None:
    """The child's loop: a ``(templates, max_templates)`` start, then one answer per list of jobs:
    ``("ok", rows, changes, merges)`` or ``("error", reason, [], [])``, where a row is a record's
    fields as a tuple (much cheaper to pickle than the object). ``None`` or EOF ends it."""
    templates, max_templates = _read(inp)
    miner = TemplateMiner(max_templates=max_templates)
    miner.load(templates)
    tune_gc()
    while True:
        try:
            jobs = _read(inp)
        except EOFError:
            return
        if jobs is None:
            return
        try:
            rows = [
                (r.timestamp, r.message, int(r.level), r.service, r.host, r.header, r.attributes, r.trace_id,
                 r.observed_at, r.source, r.template_id)
                for r in _parse_and_mine(miner, jobs)
            ]
            _write(out, ("ok", rows, miner.drain_changes(), miner.drain_merges()))
        except Exception as exc:  # report it and keep serving
            _write(out, ("error", repr(exc), [], []))


class WorkerProcess:
    """A :class:`Worker` in a child process. Requests may be sent ahead of the answers (the pipe
    holds them), so the child starts on the next batch while the parent takes the previous one."""

    def __init__(self, max_templates: int = 20_000) -> None:
        self.max_templates = max_templates
        self._send_lock = threading.Lock()
        self._receive_lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None

    def load(self, templates: Iterable[Template]) -> None:
        """Start the child with these templates (once, before the first batch)."""
        self._proc = subprocess.Popen([sys.executable, "-m", "loglens.worker"],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert self._proc.stdin is not None
        _write(self._proc.stdin, (list(templates), self.max_templates))

    def _pipes(self) -> tuple[IO[bytes], IO[bytes]]:
        if self._proc is None:
            self.load([])
        proc = self._proc
        assert proc is not None and proc.stdin is not None and proc.stdout is not None
        return proc.stdin, proc.stdout

    def send(self, jobs: list[Job]) -> None:
        with self._send_lock:
            _write(self._pipes()[0], jobs)

    def receive(self) -> Result:
        with self._receive_lock:
            status, rows, changes, merges = _read(self._pipes()[1])
        if status != "ok":
            raise RuntimeError(f"ingest worker failed: {rows}")
        levels = _LEVELS
        records = [
            LogRecord(ts, message, levels[level], service, host, header, attributes, trace_id, observed, source,
                      template_id)
            for ts, message, level, service, host, header, attributes, trace_id, observed, source, template_id
            in rows
        ]
        return records, changes, merges

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
