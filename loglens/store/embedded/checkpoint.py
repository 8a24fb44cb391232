"""Write-ahead-log checkpoints of the shards, in a thread of their own.

A commit appends the batch's pages to the shard's WAL file; a checkpoint copies them into the
database file so that the log can start over. SQLite does that inside the commit that crosses its
threshold (``wal_autocheckpoint``), on the writer's critical path: about a tenth of the write
time. Here the writer commits with automatic checkpoints off and asks this thread for one; it runs
on its own connection (SQLite lets a checkpoint run beside a writer, and it holds no GIL while it
copies). Durability is unchanged: a commit is in the WAL before it is acknowledged, checkpointed or
not.

Should the checkpoints fall behind (a reader holding an old snapshot keeps pages from being
copied), the writer checkpoints itself once the log passes :data:`WAL_LIMIT_BYTES`.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

log = logging.getLogger(__name__)

#: A log file larger than this is checkpointed by the writer itself. The log starts over only when
#: a checkpoint has copied all of it before the next commit; with commits back to back faster than
#: checkpoints, it would grow without end. (The file keeps its size when the log starts over, up to
#: the store's ``journal_size_limit``, which is the same.)
WAL_LIMIT_BYTES = 64 << 20


class Checkpointer:
    """Checkpoints shards on request, one at a time, newest request per shard first served."""

    def __init__(self) -> None:
        self._pending: dict[Path, None] = {}
        self._wake = threading.Condition()
        self._closed = False
        self._busy = False
        self._thread: threading.Thread | None = None

    def idle(self) -> bool:
        """Nothing asked for and nothing running."""
        with self._wake:
            return not self._pending and not self._busy

    def request(self, path: Path) -> None:
        with self._wake:
            if self._closed:
                return
            self._pending[path] = None
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="loglens-checkpoint", daemon=True)
                self._thread.start()
            self._wake.notify()

    def forget(self, path: Path) -> None:
        """Drop a pending request (the shard is being removed)."""
        with self._wake:
            self._pending.pop(path, None)

    def close(self) -> None:
        with self._wake:
            self._closed = True
            self._pending.clear()
            self._wake.notify()
            thread = self._thread
        if thread is not None:
            thread.join()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._pending and not self._closed:
                    self._wake.wait()
                if self._closed:
                    return
                path = next(iter(self._pending))
                del self._pending[path]
                self._busy = True
            try:
                # A short-lived connection: shards come and go (retention), and one checkpoint per
                # batch at most makes the open cheap beside the copy. ``mode=rw`` never creates a
                # shard that retention has just removed.
                conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True, isolation_level=None, timeout=30)
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                finally:
                    conn.close()
            except sqlite3.Error:  # gone, or busy: the next request tries again
                if path.exists():
                    log.warning("checkpoint of %s failed", path, exc_info=True)
            finally:
                with self._wake:
                    self._busy = False
