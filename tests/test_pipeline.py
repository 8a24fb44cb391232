"""The write pipeline: acknowledgement after commit, backpressure, subscribers."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path

import pytest

from loglens.model import LogRecord, Template
from loglens.pipeline import Pipeline, QueueFullError
from loglens.query.planning import plan_query
from loglens.store import TimeRange, open_store
from loglens.store.embedded import EmbeddedStore


class GatedStore(EmbeddedStore):
    """A real store whose writes wait for a gate, to hold the queue full."""

    def __init__(self, path: str) -> None:
        super().__init__(path, writable=True)
        self.gate = threading.Event()

    def write(self, records: list[LogRecord], templates: Iterable[Template] = (),
              merges: Iterable[tuple[int, int]] = ()) -> None:
        self.gate.wait(10)
        super().write(records, templates, merges)


def test_full_queue_refuses_then_accepts(tmp_path: Path) -> None:
    store = GatedStore(str(tmp_path / "d"))
    with Pipeline(store, max_queued=10) as pipeline:
        first = pipeline.submit(["one", "two"] * 4)
        with pytest.raises(QueueFullError, match="queue full"):
            pipeline.submit(["three"] * 5)
        assert not first.done()  # nothing is acknowledged before it is committed
        store.gate.set()
        assert first.result(10) == 8
        assert pipeline.write(["three"] * 5) == 5
    assert store.count(plan_query(""), TimeRange()) == 13
    store.close()


def test_subscribers_see_committed_records_with_ids_and_templates(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "d"), writable=True)
    seen: list[LogRecord] = []
    with Pipeline(store) as pipeline:
        pipeline.subscribe(seen.extend)
        pipeline.write(["connection from 10.0.0.1 closed after 5 ms", "connection from 10.0.0.2 closed after 7 ms",
                        '{"message": "json line", "level": "warn"}'])
    assert len(seen) == 3
    assert all(r.id > 0 for r in seen)
    assert seen[0].template_id == seen[1].template_id != seen[2].template_id
    assert seen[2].level.name == "WARN"
    store.close()


def test_templates_survive_restart_with_same_ids(tmp_path: Path) -> None:
    data = str(tmp_path / "d")
    store = open_store(data, writable=True)
    with Pipeline(store) as pipeline:
        pipeline.write(["disk full on volume 10.0.0.1:/vol/7 after 5 ms", "connection from 10.0.0.1 closed"])
    store.close()
    store = open_store(data, writable=True)
    seen: list[LogRecord] = []
    with Pipeline(store) as pipeline:
        pipeline.subscribe(seen.extend)
        pipeline.write(["connection from 10.0.0.1 closed", "disk full on volume 10.0.0.1:/vol/7 after 5 ms"])
    before = store.search(plan_query("connection"), TimeRange(), 2).records
    assert [r.template_id for r in before] == [seen[0].template_id] * 2
    assert seen[0].template_id != seen[1].template_id
    store.close()
