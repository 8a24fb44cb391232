"""The worker process parses and mines exactly as the in-process worker does."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

import pytest

from loglens.model import Level, LogRecord
from loglens.pipeline import Pipeline
from loglens.store.embedded.store import EmbeddedStore
from loglens.worker import Job, Worker, WorkerProcess

MESSAGES = [f"connection from 10.0.0.{i % 7} closed after {i} ms" for i in range(50)] + \
    [f"user u{i} logged in" for i in range(20)] + ["disk almost full"] * 3
RECEIVED = 1_700_000_000_000_000_000


def _jobs() -> list[Job]:
    text = [f"2024-01-15T10:00:{i % 60:02d}Z ERROR {m}" for i, m in enumerate(MESSAGES)]
    objects = [{"ts": 1_705_312_800 + i, "level": "warning", "msg": m, "user": {"id": i}}
               for i, m in enumerate(MESSAGES[:10])]
    built = [LogRecord(timestamp=RECEIVED, message="built by a receiver", level=Level.INFO)]
    bogus = ['{"time": 99999999999999999, "message": "year 5000"}']
    return [(list(text), "api", "h1", "http", RECEIVED, False), (list(objects), "", "", "", RECEIVED, False),
            (list(built), "otel", "", "otlp", RECEIVED, False), (list(bogus), "", "", "", RECEIVED, False)]


def test_same_records_templates_and_restart_as_in_process() -> None:
    local = Worker()
    local.load([])
    remote = WorkerProcess()
    remote.load([])
    try:
        local.send(_jobs())
        remote.send(_jobs())
        remote.send(_jobs())  # a second request may be sent before the first answer is read
        records, changes, merges, rejected = remote.receive()
        expected, expected_changes, expected_merges, expected_rejected = local.receive()
        assert list(records) == list(expected)
        assert sorted(changes, key=lambda t: t.id) == sorted(expected_changes, key=lambda t: t.id)
        assert merges == expected_merges
        assert rejected == expected_rejected == [[], [], [], []]
        assert records[0].level is Level.ERROR and records[0].service == "api"
        assert records[len(MESSAGES)].attributes == {"user.id": 0}
        assert records[-2].source == "otlp"
        assert records[-1].timestamp == RECEIVED  # out of range: the arrival time
        again, _, _, _ = remote.receive()
        assert [r.template_id for r in again] == [r.template_id for r in records]
    finally:
        remote.close()
    # a new child loaded with the saved templates gives the same ids (a server restart)
    restarted = WorkerProcess()
    restarted.load(changes)
    try:
        restarted.send(_jobs()[:1])
        assert [r.template_id for r in restarted.receive()[0]] == [r.template_id for r in records[:len(MESSAGES)]]
    finally:
        restarted.close()
    restarted.close()  # closing twice is harmless


def test_texts_and_attributes_of_any_type_cross_the_pipe_exactly() -> None:
    """Texts with a lone surrogate (a str a receiver or a library caller built) and attributes
    of types JSON does not have (bytes, tuples, big integers, an enum member, which marshal cannot
    write and pickle can) come back from the child as they went."""
    attributes = {"raw": b"\x00\xff", "pair": (1, 2), "big": 1 << 70, "ratio": 0.1, "none": None,
                  "level": Level.WARN}
    jobs: list[Job] = [
        (["2024-01-15T10:00:00Z ERROR undecodable \udcff byte"], "svc", "", "file", RECEIVED, False),
        ([LogRecord(timestamp=RECEIVED, message="from a receiver", attributes=dict(attributes))], "", "", "x",
         RECEIVED, False),
    ]
    local = Worker()
    local.load([])
    remote = WorkerProcess()
    remote.load([])
    try:
        local.send(jobs)
        remote.send(jobs)
        records = remote.receive()[0]
        assert list(records) == list(local.receive()[0])
        assert records[0].message == "undecodable \udcff byte" and records[0].level is Level.ERROR
        assert records[1].attributes == attributes and type(records[1].attributes["pair"]) is tuple
        assert records[1].attributes["level"] is Level.WARN
    finally:
        remote.close()


def test_a_bad_item_fails_its_batch_and_the_worker_goes_on() -> None:
    remote = WorkerProcess()
    remote.load([])
    try:
        remote.send([([object()], "", "", "", RECEIVED, False)])  # type: ignore[list-item]
        try:
            remote.receive()
        except RuntimeError as exc:
            assert "ingest worker failed" in str(exc)
        else:
            raise AssertionError("expected the batch to fail")
        remote.send(_jobs()[:1])
        assert len(remote.receive()[0]) == len(MESSAGES)
    finally:
        remote.close()


def test_the_child_ends_when_its_pipe_closes() -> None:
    remote = WorkerProcess()
    remote.load([])
    proc = remote._proc
    assert proc is not None and proc.stdin is not None
    proc.stdin.close()  # as when the parent is killed
    assert proc.wait(10) == 0
    remote._proc = None


def test_a_dead_child_fails_its_batches_and_a_new_one_takes_over(tmp_path: Path) -> None:
    """Killed mid-ingest (out of memory, by hand), the worker process is replaced on the next
    batch: ingest goes on, and the new child's templates never reuse an id the old one gave."""
    store = EmbeddedStore(tmp_path / "data", writable=True)
    worker = WorkerProcess()
    with Pipeline(store, worker=worker) as pipeline:
        assert pipeline.write([f"2024-01-15T10:00:00Z INFO job {i} done" for i in range(5)]) == 5
        old = worker._proc
        assert old is not None
        os.kill(old.pid, signal.SIGKILL)
        old.wait()
        # The batch that finds the child dead may fail (a 5xx or a retry for a client); the next
        # ones are parsed by a new child.
        with contextlib.suppress(EOFError, BrokenPipeError, OSError):
            pipeline.write(["2024-01-15T10:00:01Z WARN lost with the old child"])
        assert pipeline.write([f"2024-01-15T10:00:02Z ERROR disk {d} failed" for d in "abc"]) == 3
        assert worker.starts == 2 and worker._proc is not old
    templates = store.templates()
    assert len({t.id for t in templates}) == len(templates)
    texts = {t.text for t in templates}
    assert "job <*> done" in texts and any(t.startswith("disk") for t in texts)
    store.close()


def test_ndjson_lines_are_checked_where_they_are_parsed() -> None:
    """Lines sent as NDJSON are read once, in the worker: a line that is not a JSON object is
    refused with its index and the reason the HTTP answer gives; the others are stored."""
    lines = ['{"msg": "ok 1", "level": "info"}', '{"msg": broken', "[1, 2]", '"text"', '{"msg": "ok 2"}']
    for worker in (Worker(), WorkerProcess()):
        worker.load([])
        try:
            worker.send([(list(lines), "svc", "", "http", RECEIVED, True),
                         (["plain text line"], "", "", "", RECEIVED, False)])
            records, _, _, rejected = worker.receive()
        finally:
            worker.close()
        assert [r.message for r in records] == ["ok 1", "ok 2", "plain text line"]
        assert [index for index, _ in rejected[0]] == [1, 2, 3]
        assert rejected[0][0][1].startswith("invalid JSON: ")
        assert rejected[0][1][1] == "expected a JSON object, got list"
        assert rejected[0][2][1] == "expected a JSON object, got str"
        assert rejected[1] == []


def test_the_child_runs_the_parents_code_whatever_the_working_directory(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A ``loglens/`` folder in the working directory (another checkout) is not what the child
    imports: it runs the same code as its parent."""
    impostor = tmp_path / "loglens"
    impostor.mkdir()
    (impostor / "__init__.py").write_text("")
    (impostor / "worker.py").write_text("raise SystemExit(3)\n")
    monkeypatch.chdir(tmp_path)
    remote = WorkerProcess()
    remote.load([])
    try:
        remote.send(_jobs()[:1])
        assert len(remote.receive()[0]) == len(MESSAGES)
    finally:
        remote.close()


def test_loglens_ingest_sends_a_batch_lost_with_its_worker_again(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """``loglens ingest`` (local) neither loses a batch nor stops when the worker's pipe breaks
    under it: the batch is sent once more (to the new worker the pipeline starts)."""
    from loglens.cli import _LocalSender
    from loglens.query.planning import plan_query
    from loglens.store import TimeRange

    sender = _LocalSender(str(tmp_path / "data"), "svc", "")
    worker = sender.pipeline.worker
    assert isinstance(worker, WorkerProcess)
    real_send = worker.send
    broken = []

    def send_breaking_once(jobs: list[Job]) -> object:
        if not broken:
            broken.append(True)
            raise BrokenPipeError("the worker process died")
        return real_send(jobs)

    monkeypatch.setattr(worker, "send", send_breaking_once)
    try:
        for b in range(3):
            sender.send([f"2024-01-15T10:00:01Z INFO batch {b} line {i}" for i in range(100)])
    finally:
        sender.close()
    assert broken
    store = EmbeddedStore(tmp_path / "data")
    assert store.count(plan_query(""), TimeRange()) == 300
    store.close()
