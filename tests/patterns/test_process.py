"""The miner in its own process gives the same templates as in this one."""

from __future__ import annotations

from loglens.patterns.miner import TemplateMiner
from loglens.patterns.process import MinerProcess

MESSAGES = [f"connection from 10.0.0.{i % 7} closed after {i} ms" for i in range(50)] + \
    [f"user u{i} logged in" for i in range(20)] + ["disk almost full"] * 3


def test_same_ids_changes_and_restart_as_in_process() -> None:
    local = TemplateMiner()
    remote = MinerProcess()
    remote.load([])
    try:
        stamps = list(range(len(MESSAGES)))
        assert remote.add_many(MESSAGES, stamps) == local.add_many(MESSAGES, stamps)
        changes = remote.drain_changes()
        assert {t.id: t.text for t in changes} == {t.id: t.text for t in local.drain_changes()}
        assert remote.drain_changes() == []
        assert remote.drain_merges() == local.drain_merges()
    finally:
        remote.close()
    # a new child loaded with the saved templates gives the same ids (a server restart)
    again = MinerProcess()
    again.load(changes)
    try:
        assert again.add_many(MESSAGES[:5], [0] * 5) == local.add_many(MESSAGES[:5], [0] * 5)
    finally:
        again.close()
    again.close()  # closing twice is harmless


def test_the_child_ends_when_its_pipe_closes() -> None:
    remote = MinerProcess()
    remote.load([])
    proc = remote._proc
    assert proc is not None and proc.stdin is not None
    proc.stdin.close()  # as when the parent is killed
    assert proc.wait(10) == 0
    remote._proc = None
