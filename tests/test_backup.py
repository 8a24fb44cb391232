"""Backup while a real server ingests, restore into a new directory, and compare."""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson

from loglens.query.planning import plan_query
from loglens.store.base import TimeRange
from loglens.store.embedded import EmbeddedStore
from loglens.store.embedded.backup import sha256_file
from tests.conftest import run_cli, start_server, stop_server

BATCH = 50
#: All records fall on one fixed UTC day (one shard), whatever the clock says.
DAY = "2026-03-14T"


@dataclass
class Ack:
    batch: int
    sent: float
    acked: float


class Writer(threading.Thread):
    """Posts numbered batches one after another until stopped (bounded in count and time). Each batch
    uses a new service name, so meta.db gains dictionary entries all through the backup."""

    def __init__(self, url: str, max_batches: int = 2000, max_seconds: float = 60) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.max_batches = max_batches
        self.max_seconds = max_seconds
        self.stop = threading.Event()
        self.acks: list[Ack] = []
        self.sent: list[float] = []
        self.errors: list[str] = []

    def run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        with httpx.Client(base_url=self.url, timeout=30) as client:
            for n in range(self.max_batches):
                if self.stop.is_set() or time.monotonic() > deadline:
                    return
                lines = [orjson.dumps({
                    "@timestamp": f"{DAY}{(n // 60) % 24:02d}:{n % 60:02d}:{i % 60:02d}.{n % 1000:03d}Z",
                    "level": "error" if i % 7 == 0 else "info",
                    "message": f"batch {n} record {i} user u{i % 13} took {n * i % 997} ms",
                }) for i in range(BATCH)]
                sent = time.monotonic()
                self.sent.append(sent)
                resp = client.post("/api/v1/logs", params={"service": f"svc-{n}", "host": f"h{n % 3}"},
                                   content=b"\n".join(lines), headers={"Content-Type": "application/x-ndjson"})
                if resp.status_code != 200 or resp.json()["accepted"] != BATCH:
                    self.errors.append(f"batch {n}: {resp.status_code} {resp.text[:200]}")
                    return
                self.acks.append(Ack(n, sent, time.monotonic()))


def _all_records(store: EmbeddedStore) -> dict[int, tuple[str, str, str, int, str]]:
    out: dict[int, tuple[str, str, str, int, str]] = {}
    cursor = None
    plan = plan_query("")
    while True:
        page = store.search(plan, TimeRange(), 5000, cursor)
        for r in page.records:
            out[r.id] = (r.message, r.service, r.host, r.timestamp, r.level.name)
        if page.next_cursor is None:
            return out
        cursor = page.next_cursor


def test_backup_during_ingest_and_restore(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data")
    writer = Writer(server.url)
    try:
        writer.start()
        deadline = time.monotonic() + 30
        while len(writer.acks) < 20 and time.monotonic() < deadline and not writer.errors:
            time.sleep(0.05)
        assert len(writer.acks) >= 20, writer.errors
        before = time.monotonic()
        result = run_cli("backup", str(tmp_path / "bk"), "--data", str(server.data))
        after = time.monotonic()
        time.sleep(0.5)  # writes go on after the backup too
        writer.stop.set()
        writer.join(timeout=60)
        assert not writer.errors, writer.errors
        assert b"backed up" in result.stderr
        acked_at_start = sum(1 for a in writer.acks if a.acked < before) * BATCH
        sent_by_end = sum(1 for s in writer.sent if s < after) * BATCH
        assert len(writer.acks) * BATCH > sent_by_end, "the writer must outlast the backup"
    finally:
        stop_server(server)

    bk = tmp_path / "bk"
    manifest = orjson.loads((bk / "manifest.json").read_bytes())
    assert manifest["loglens_version"] and manifest["created"]
    assert [f["path"] for f in manifest["files"]][-1] == "meta.db"
    for f in manifest["files"]:
        assert sha256_file(bk / f["path"]) == f["sha256"]

    restored_dir = tmp_path / "restored"
    run_cli("restore", str(bk), "--data", str(restored_dir))
    for path in [restored_dir / "meta.db", *sorted((restored_dir / "shards").glob("*.db"))]:
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    restored = EmbeddedStore(restored_dir)
    source = EmbeddedStore(tmp_path / "data")
    try:
        got = _all_records(restored)
        # The count is what had been acknowledged at some instant while the backup ran: at least what
        # was acknowledged when it started, at most what had been sent when it ended, whole batches.
        assert acked_at_start <= len(got) <= sent_by_end, (acked_at_start, len(got), sent_by_end)
        assert len(got) == manifest["records"]
        assert len(got) % BATCH == 0
        batches = {int(msg.split()[1]) for msg, *_ in got.values()}
        assert batches == set(range(len(got) // BATCH)), "a batch committed before another is missing"
        # Every restored record is identical to the source's, services resolved through meta.db.
        original = _all_records(source)
        assert len(original) == len(writer.acks) * BATCH > len(got)
        for rid, rec in got.items():
            assert original[rid] == rec
            assert rec[1] == f"svc-{rec[0].split()[1]}"
        assert restored.stats().records == len(got)
    finally:
        restored.close()
        source.close()

    # Refusals: a non-empty target, and a backup whose file no longer matches its checksum.
    refused = run_cli("restore", str(bk), "--data", str(restored_dir), check=False)
    assert refused.returncode != 0 and b"not empty" in refused.stderr
    shard = next(p for p in manifest["files"] if p["path"].startswith("shards/"))["path"]
    with open(bk / shard, "r+b") as f:
        f.seek(5000)
        byte = f.read(1)
        f.seek(5000)
        f.write(bytes([byte[0] ^ 0xFF]))
    target = tmp_path / "fresh"
    refused = run_cli("restore", str(bk), "--data", str(target), check=False)
    assert refused.returncode != 0 and b"SHA-256" in refused.stderr, refused.stderr
    assert not target.exists() or not any(target.iterdir())


def test_backup_refuses_existing_destination_and_missing_data(tmp_path: Path) -> None:
    (tmp_path / "dest").mkdir()
    (tmp_path / "dest" / "x").write_text("x")
    result = run_cli("backup", str(tmp_path / "dest"), "--data", str(tmp_path / "nodata"), check=False)
    assert result.returncode != 0 and b"no LogLens data" in result.stderr
    run_cli("ingest", "-", "--data", str(tmp_path / "d"), input=b"hello world\n")
    result = run_cli("backup", str(tmp_path / "dest"), "--data", str(tmp_path / "d"), check=False)
    assert result.returncode != 0 and b"not empty" in result.stderr
    result = run_cli("restore", str(tmp_path / "dest"), "--data", str(tmp_path / "r"), check=False)
    assert result.returncode != 0 and b"not a LogLens backup" in result.stderr


def test_restore_refuses_a_file_failing_integrity_check(tmp_path: Path) -> None:
    """A backup whose manifest was rewritten to match a damaged file still fails integrity_check."""
    run_cli("ingest", "-", "--data", str(tmp_path / "d"),
            input=b"".join(b"line %d with some words\n" % i for i in range(3000)))
    run_cli("backup", str(tmp_path / "bk"), "--data", str(tmp_path / "d"))
    bk = tmp_path / "bk"
    manifest = orjson.loads((bk / "manifest.json").read_bytes())
    entry = next(f for f in manifest["files"] if f["path"].startswith("shards/"))
    path = bk / entry["path"]
    data = bytearray(path.read_bytes())
    page = 4096
    for offset in range(page * 2, len(data), page):  # wipe interior pages' headers: b-trees break
        data[offset:offset + 12] = b"\xff" * 12
    path.write_bytes(bytes(data))
    entry["sha256"] = sha256_file(path)
    (bk / "manifest.json").write_bytes(orjson.dumps(manifest))
    result = run_cli("restore", str(bk), "--data", str(tmp_path / "r"), check=False)
    assert result.returncode != 0 and b"integrity" in result.stderr, result.stderr
    assert not any((tmp_path / "r").iterdir())


def test_backup_carries_api_keys_and_restores_into_a_new_directory(tmp_path: Path) -> None:
    run_cli("ingest", "-", "--data", str(tmp_path / "d"), input=b"first line\nsecond line\n")
    with sqlite3.connect(tmp_path / "d" / "keys.db") as conn:  # what loglens/keys.py keeps: hashes only
        conn.execute("CREATE TABLE keys (id TEXT PRIMARY KEY, hash TEXT)")
        conn.execute("INSERT INTO keys VALUES ('k1', 'abc')")
    conn.close()
    run_cli("backup", str(tmp_path / "bk"), "--data", str(tmp_path / "d"))
    names = [f["path"] for f in orjson.loads((tmp_path / "bk" / "manifest.json").read_bytes())["files"]]
    assert "keys.db" in names and names[-1] == "meta.db"
    run_cli("restore", str(tmp_path / "bk"), "--data", str(tmp_path / "new" / "nested"))
    with sqlite3.connect(tmp_path / "new" / "nested" / "keys.db") as conn:
        assert conn.execute("SELECT hash FROM keys").fetchall() == [("abc",)]
    conn.close()
    assert run_cli("count", "line", "--data", str(tmp_path / "new" / "nested")).stdout.strip() == b"2"
