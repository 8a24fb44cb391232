"""The template miner in a process of its own.

Mining is pure Python and the most expensive step of ingest; in the server's process it competes
for the GIL with parsing and with the store's row building. In its own process it gets a core of
its own, and the pipeline thread that feeds it waits on a pipe (without the GIL) meanwhile. The
proxy has the batch-shaped part of :class:`TemplateMiner`'s interface that the pipeline uses.

The child is ``python -m loglens.patterns.process`` talking length-prefixed pickles over its
stdin/stdout: unlike ``multiprocessing`` it never re-imports the parent's main module, so it works
the same under a console script, ``python -m``, a test runner or a user's script.
"""

from __future__ import annotations

import contextlib
import pickle
import struct
import subprocess
import sys
import threading
from collections.abc import Iterable
from typing import IO, Any

from loglens.gc_tuning import tune_gc
from loglens.model import Template
from loglens.patterns.miner import TemplateMiner

_HEADER = struct.Struct("!Q")


def _send(stream: IO[bytes], obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def _receive(stream: IO[bytes]) -> Any:
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        raise EOFError("the template miner process ended")
    (size,) = _HEADER.unpack(header)
    data = stream.read(size)
    if len(data) < size:
        raise EOFError("the template miner process ended mid-answer")
    return pickle.loads(data)  # our own child process, over its private pipe


def serve(inp: IO[bytes], out: IO[bytes]) -> None:
    """The child's loop: a ``(templates, max_templates)`` start, then ``(messages, timestamps)``
    requests answered with ``(status, ids, changes, merges, evicted)``; ``None`` or EOF ends it."""
    templates, max_templates = _receive(inp)
    miner = TemplateMiner(max_templates=max_templates)
    miner.load(templates)
    tune_gc()
    while True:
        try:
            request = _receive(inp)
        except EOFError:
            return
        if request is None:
            return
        messages, timestamps = request
        try:
            ids = miner.add_many(messages, timestamps)
            _send(out, ("ok", ids, miner.drain_changes(), miner.drain_merges(), miner.evicted))
        except Exception as exc:  # report it and keep serving
            _send(out, ("error", repr(exc), [], [], miner.evicted))


class MinerProcess:
    """A :class:`TemplateMiner` running in a child process."""

    def __init__(self, max_templates: int = 20_000) -> None:
        self.max_templates = max_templates
        self.evicted = 0
        self._changes: list[Template] = []
        self._merges: list[tuple[int, int]] = []
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None

    def load(self, templates: Iterable[Template]) -> None:
        """Start the child with these templates (once, before mining)."""
        self._proc = subprocess.Popen([sys.executable, "-m", "loglens.patterns.process"],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert self._proc.stdin is not None
        _send(self._proc.stdin, (list(templates), self.max_templates))

    def add_many(self, messages: list[str], timestamps: list[int]) -> list[int]:
        if self._proc is None:
            self.load([])
        proc = self._proc
        assert proc is not None and proc.stdin is not None and proc.stdout is not None
        with self._lock:
            _send(proc.stdin, (messages, timestamps))
            status, ids, changes, merges, evicted = _receive(proc.stdout)
        if status != "ok":
            raise RuntimeError(f"template miner failed: {ids}")
        self._changes.extend(changes)
        self._merges.extend(merges)
        self.evicted = evicted
        return list(ids)

    def drain_changes(self) -> list[Template]:
        changes, self._changes = self._changes, []
        return changes

    def drain_merges(self) -> list[tuple[int, int]]:
        merges, self._merges = self._merges, []
        return merges

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with contextlib.suppress(BrokenPipeError, OSError, ValueError):
            assert proc.stdin is not None
            _send(proc.stdin, None)
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
