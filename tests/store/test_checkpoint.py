"""Checkpoints run beside the writer: the log starts over, nothing committed is lost, and a shard
removed by retention is never brought back."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from loglens.model import Level, LogRecord
from loglens.query.planning import plan_query
from loglens.store import TimeRange
from loglens.store.embedded.checkpoint import Checkpointer
from loglens.store.embedded.store import DAY_MS, MS, EmbeddedStore

DAY = 20_000


def _batch(start: int, n: int) -> list[LogRecord]:
    base = DAY * DAY_MS * MS
    return [LogRecord(timestamp=base + (start + i) * MS, message=f"request {start + i} served in {i % 90} ms",
                      level=Level.INFO, service="api", template_id=1) for i in range(n)]


def _wait_for(condition: object, seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return False


def test_the_log_is_checkpointed_beside_the_writer_and_starts_over(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path, writable=True)
    shard = tmp_path / "shards" / f"{DAY:08d}.db"
    wal = Path(f"{shard}-wal")
    sizes = []
    for b in range(30):
        store.write(_batch(b * 2000, 2000))
        sizes.append(wal.stat().st_size)
        # a pipeline's next batch takes a while to arrive; the checkpoint runs meanwhile
        assert _wait_for(store._checkpointer.idle)
    # Each batch's pages are copied into the shard, so the log starts over instead of growing
    # with every batch: 30 batches of ~0.26 MB would make it 8 MB (the largest single commit is
    # an index merge, about 2.5 MB).
    assert max(sizes) < 4_000_000
    assert shard.stat().st_size > 1_000_000  # the pages are in the shard file
    assert store.count(plan_query(""), TimeRange()) == 60_000
    store.close()
    reopened = EmbeddedStore(tmp_path)
    assert reopened.count(plan_query("request"), TimeRange()) == 60_000
    reopened.close()


def test_a_checkpoint_asked_for_a_removed_shard_does_not_recreate_it(tmp_path: Path) -> None:
    checkpointer = Checkpointer()
    gone = tmp_path / "00020000.db"
    checkpointer.request(gone)
    checkpointer.close()
    assert not gone.exists()
    assert not os.listdir(tmp_path)


def test_when_checkpoints_fall_behind_the_writer_bounds_the_log(tmp_path: Path, monkeypatch: Any) -> None:
    import loglens.store.embedded.store as store_module

    monkeypatch.setattr(store_module, "WAL_LIMIT_BYTES", 1 << 20)
    monkeypatch.setattr(Checkpointer, "request", lambda self, path: None)  # never keeps up
    store = EmbeddedStore(tmp_path, writable=True)
    wal = tmp_path / "shards" / f"{DAY:08d}.db-wal"
    sizes = []
    for b in range(40):
        store.write(_batch(b * 2000, 2000))
        sizes.append(wal.stat().st_size)
    assert max(sizes) < 3 << 20
    assert store.count(plan_query(""), TimeRange()) == 80_000
    store.close()
