"""Tailed files end to end against a real ``loglens serve --config cfg.toml``: globs, filters,
multiline, .gz, rotation (rename and copytruncate), deleted files, grok, start_at, restart after
kill -9, and configuration errors."""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loglens.ingest.files import (
    ConfigError,
    DefaultJoiner,
    FilebeatJoiner,
    FilesConfig,
    FileTailer,
    Multiline,
    SourceConfig,
    _Tail,
    load_config,
)
from loglens.model import LogRecord
from tests.conftest import Server, count, run_cli, search, start_server, stop_server
from tests.conftest import wait_count as wait_for_count

SOURCES: dict[str, dict[str, Any]] = {
    "glob": {"paths": ["{d}/*.log"], "exclude_files": ["\\.skip\\.log$"]},
    "filter": {"paths": ["{d}/*.log"], "include_lines": ["ERROR", "WARN"], "exclude_lines": ["healthcheck"]},
    "java": {"paths": ["{d}/*.log"],
             "multiline": {"pattern": "^\\d{4}-\\d{2}-\\d{2}", "negate": True, "match": "after", "timeout": "1s"}},
    "before": {"paths": ["{d}/*.log"], "multiline": {"pattern": "\\\\$", "negate": False, "match": "before"}},
    "gz": {"paths": ["{d}/*.gz"]},
    "rotate": {"paths": ["{d}/app.log"], "close_inactive": 1},
    "trunc": {"paths": ["{d}/app.log"]},
    "deleted": {"paths": ["{d}/*.log"], "close_inactive": 0.5, "clean_removed": 1},
    "nginx": {"paths": ["{d}/access.log"], "grok": "NGINXACCESS"},
    "atend": {"paths": ["{d}/*.log"], "start_at": "end"},
}


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return "'" + value + "'"  # literal string: backslashes as they are
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(value)


def write_config(path: Path, sources: dict[str, dict[str, Any]], root: Path) -> None:
    out = []
    for name, src in sources.items():
        d = root / name
        d.mkdir(parents=True, exist_ok=True)
        out.append("[[sources]]")
        out.append(f"service = '{name}'")
        out.append("scan_frequency = 0.3")
        for key, value in src.items():
            if key == "paths":
                value = [p.format(d=d) for p in value]
            out.append(f"{key} = {_toml_value(value)}")
        out.append("")
    path.write_text("\n".join(out))


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    root = tmp_path_factory.mktemp("files")
    logs = root / "logs"
    cfg = root / "cfg.toml"
    write_config(cfg, SOURCES, logs)
    (logs / "atend" / "old.log").write_text("".join(f"atend-old {i}\n" for i in range(10)))
    srv = start_server(root / "data", "--config", str(cfg))
    yield srv, logs
    stop_server(srv)






def messages(server: Server, q: str) -> list[str]:
    out: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"q": q, "limit": 10000}
        if cursor:
            params["cursor"] = cursor
        r = httpx.get(server.url + "/api/v1/search", params=params, timeout=60)
        assert r.status_code == 200, r.text
        body = r.json()
        out.extend(rec["message"] for rec in body["records"])
        cursor = body["next_cursor"]
        if not cursor:
            return out


def wait_count(server: Server, q: str, expected: int, timeout: float = 20) -> int:
    return wait_for_count(server, q, expected, timeout, settle=0.5)  # a duplicate would show by then


def append(path: Path, lines: list[str]) -> None:
    with open(path, "a") as f:
        f.write("".join(line + "\n" for line in lines))


# ------------------------------------------------------------------------------------ end to end
def test_glob_two_files_and_new_file(env: tuple[Server, Path]) -> None:
    srv, logs = env
    d = logs / "glob"
    append(d / "a.log", [f"glob-a line {i}" for i in range(30)])
    append(d / "b.log", [f"glob-b line {i}" for i in range(20)])
    append(d / "c.skip.log", ["glob-skipped line"])
    assert wait_count(srv, "service:glob", 50) == 50
    append(d / "late.log", [f"glob-late line {i}" for i in range(5)])  # found by a later scan
    append(d / "a.log", ["glob-a appended"])
    assert wait_count(srv, "service:glob", 56) == 56
    assert count(srv, "service:glob AND glob-skipped") == 0
    rec = search(srv, "service:glob AND appended")[0]
    assert rec["attributes"]["log.file.path"] == str(d / "a.log") and rec["source"] == "file"


def test_include_and_exclude_lines(env: tuple[Server, Path]) -> None:
    srv, logs = env
    append(logs / "filter" / "app.log", ["INFO fine", "ERROR broken 1", "WARN slow 2", "ERROR healthcheck failed",
                                         "DEBUG noise", "ERROR broken 3"])
    assert wait_count(srv, "service:filter", 3) == 3
    assert count(srv, "service:filter AND healthcheck") == 0


def test_java_stack_trace_joined(env: tuple[Server, Path]) -> None:
    srv, logs = env
    append(logs / "java" / "app.log", [
        "2024-01-15 10:00:00,001 INFO [main] c.e.App - starting",
        "2024-01-15 10:00:01,002 ERROR [main] c.e.App - request failed",
        "java.lang.IllegalStateException: boom",
        "\tat com.example.App.handle(App.java:42)",
        "\tat com.example.App.main(App.java:7)",
        "Caused by: java.io.IOException: disk full",
        "\t... 2 more",
        "continuation without indentation",
        "2024-01-15 10:00:02,003 INFO [main] c.e.App - done",
    ])
    assert wait_count(srv, "service:java", 3) == 3  # the last one after the multiline timeout
    rec = search(srv, "service:java AND level:ERROR")
    assert len(rec) == 1
    assert "Caused by: java.io.IOException" in rec[0]["line"] and "continuation without" in rec[0]["line"]


def test_multiline_before(env: tuple[Server, Path]) -> None:
    srv, logs = env
    append(logs / "before" / "app.log", ["before-one part \\", "  and more \\", "  end", "before-two single"])
    assert wait_count(srv, "service:before", 2) == 2
    assert count(srv, "service:before AND end AND before-one") == 1


def test_gz_read_once(env: tuple[Server, Path]) -> None:
    srv, logs = env
    with gzip.open(logs / "gz" / "old-1.log.gz", "wt") as f:
        f.writelines(f"gz archived line {i}\n" for i in range(200))
    assert wait_count(srv, "service:gz", 200) == 200
    time.sleep(1.0)  # several scans later: never read again
    assert count(srv, "service:gz") == 200


def test_rotation_by_rename_while_appending(env: tuple[Server, Path]) -> None:
    srv, logs = env
    d = logs / "rotate"
    n = 3000
    f = open(d / "app.log", "a")  # noqa: SIM115
    for i in range(n):
        f.write(f"rot-{i:06d} payload\n")
        if i % 100 == 0:
            f.flush()
            time.sleep(0.05)
        if i == 1200:  # logrotate: rename; the application still writes to the old file a while
            f.flush()
            deadline = time.monotonic() + 10  # (a file renamed before any scan saw it is not ours)
            while count(srv, "service:rotate") == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
            os.rename(d / "app.log", d / "app.log.1")
        if i == 1500:
            f.close()
            f = open(d / "app.log", "a")  # noqa: SIM115
    f.close()
    assert wait_count(srv, "service:rotate", n, timeout=30) == n
    got = Counter(m.split()[0] for m in messages(srv, "service:rotate"))
    assert set(got) == {f"rot-{i:06d}" for i in range(n)} and max(got.values()) == 1


def test_copytruncate(env: tuple[Server, Path]) -> None:
    srv, logs = env
    path = logs / "trunc" / "app.log"
    append(path, [f"trunc-first {i} with some padding to make it long" for i in range(100)])
    assert wait_count(srv, "service:trunc", 100) == 100
    shutil.copy(path, path.with_suffix(".log.1"))
    with open(path, "r+") as f:
        f.truncate(0)
    time.sleep(0.6)
    append(path, [f"trunc-second {i}" for i in range(30)])
    assert wait_count(srv, "service:trunc", 130) == 130
    assert count(srv, "service:trunc AND trunc-second") == 30


def test_deleted_file_is_let_go(env: tuple[Server, Path]) -> None:
    srv, logs = env
    path = logs / "deleted" / "gone.log"
    append(path, [f"deleted-line {i}" for i in range(20)])
    assert wait_count(srv, "service:deleted", 20) == 20
    append(path, [f"deleted-last {i}" for i in range(5)])
    path.unlink()  # still open: what was written is read to the end
    assert wait_count(srv, "service:deleted", 25) == 25
    registry = srv.data / "files-registry.json"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        entries = json.loads(registry.read_text())["files"]
        if all(e["path"] != str(path) for e in entries):
            break
        time.sleep(0.3)
    else:
        pytest.fail(f"registry still holds the deleted file: {entries}")


def test_nginx_grok_typed_fields(env: tuple[Server, Path]) -> None:
    srv, logs = env
    lines = []
    for i, status in enumerate([200, 200, 404, 500, 502, 503, 301]):
        lines.append(f'10.0.0.{i} - - [15/Jan/2024:10:00:0{i} +0000] "GET /item/{i} HTTP/1.1" {status} {100 + i} '
                     f'"-" "Mozilla/5.0 (test)"')
    append(logs / "nginx" / "access.log", [*lines, "not an access line"])
    assert wait_count(srv, "service:nginx", 8) == 8
    assert count(srv, "service:nginx AND status>=500") == 3
    assert count(srv, "service:nginx AND bytes>104") == 2
    assert count(srv, "service:nginx AND grok_failure:true") == 1
    rec = search(srv, "service:nginx AND status:404")[0]
    assert rec["attributes"]["status"] == 404 and rec["attributes"]["bytes"] == 102
    assert rec["attributes"]["method"] == "GET" and rec["timestamp"].startswith("2024-01-15T10:00:02")


def test_start_at_end(env: tuple[Server, Path]) -> None:
    srv, logs = env
    append(logs / "atend" / "old.log", ["atend-new 1", "atend-new 2"])
    append(logs / "atend" / "fresh.log", ["atend-fresh 1"])  # a file created later is read from its start
    assert wait_count(srv, "service:atend", 3) == 3
    assert count(srv, "service:atend AND atend-old") == 0


# ---------------------------------------------------------------------------- restart safety
def test_kill_9_while_appending_stores_every_line_once(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    cfg = tmp_path / "cfg.toml"
    write_config(cfg, {"seq": {"paths": ["{d}/*.log"]}}, logs)
    path = logs / "seq" / "app.log"
    n = 12000
    done = threading.Event()

    def writer() -> None:
        with open(path, "a") as f:
            for i in range(n):
                f.write(f"seq-{i:06d} order processed\n")
                if i % 200 == 0:
                    f.flush()
                    time.sleep(0.02)
        done.set()

    srv = start_server(tmp_path / "data", "--config", str(cfg))
    thread = threading.Thread(target=writer)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while count(srv, "service:seq") < 3000 and time.monotonic() < deadline:
            time.sleep(0.05)
        srv.kill()  # SIGKILL in the middle of the tail
        time.sleep(0.5)
        srv = start_server(tmp_path / "data", "--config", str(cfg), timeout=90)  # recovery on a busy machine
        thread.join(timeout=60)
        assert done.is_set()
        assert wait_count(srv, "service:seq", n, timeout=60) == n
        got = Counter(m.split()[0] for m in messages(srv, "service:seq"))
        missing = {f"seq-{i:06d}" for i in range(n)} - set(got)
        assert not missing, sorted(missing)[:10]
        assert max(got.values()) == 1, [k for k, v in got.items() if v > 1][:10]
        for lo in range(0, n, 3000):  # and by number ranges through the query language
            q = " OR ".join(f"seq-{i:06d}" for i in range(lo, lo + 30))
            assert count(srv, f"service:seq AND ({q})") == 30
    finally:
        stop_server(srv)
        thread.join(timeout=60)


def test_crash_between_commit_and_registry_update(tmp_path: Path) -> None:
    """The window kill -9 can hit: records committed, registry not yet advanced past them."""
    logs = tmp_path / "logs"
    cfg = tmp_path / "cfg.toml"
    write_config(cfg, {"win": {"paths": ["{d}/*.log"]}}, logs)
    path = logs / "win" / "app.log"
    append(path, [f"win-{i:04d} event" for i in range(100)])
    srv = start_server(tmp_path / "data", "--config", str(cfg))
    try:
        assert wait_count(srv, "service:win", 100) == 100
    finally:
        stop_server(srv)
    registry = tmp_path / "data" / "files-registry.json"
    data = json.loads(registry.read_text())
    (entry,) = data["files"]
    end = entry["offset"]
    assert end == path.stat().st_size
    entry["offset"] = 0  # as if the process died after the store's commit, before the registry's update
    entry["inflight"] = end
    registry.write_text(json.dumps(data))
    append(path, [f"win-{i:04d} event" for i in range(100, 110)])
    srv = start_server(tmp_path / "data", "--config", str(cfg))
    try:
        assert wait_count(srv, "service:win", 110) == 110
        got = Counter(m.split()[0] for m in messages(srv, "service:win"))
        assert len(got) == 110 and max(got.values()) == 1
    finally:
        stop_server(srv)


# ------------------------------------------------------------------------------- configuration
def test_config_errors(tmp_path: Path) -> None:
    cases = {
        "unknown key": ("[[sources]]\npaths = ['/x/*.log']\nmultline = { pattern = 'x' }\n", "'multline'"),
        "bad regex": ("[[sources]]\npaths = ['/x/*.log']\nexclude_lines = ['(unclosed']\n", "exclude_lines"),
        "unknown grok": ("[[sources]]\npaths = ['/x/*.log']\ngrok = 'NO_SUCH_GROK'\n", "NO_SUCH_GROK"),
        "bad multiline": ("[[sources]]\npaths = ['/x/*.log']\nmultiline = { pattern = 'x', match = 'later' }\n",
                          "match"),
        "missing paths": ("[[sources]]\nservice = 'x'\n", "'paths'"),
        "bad start_at": ("[[sources]]\npaths = ['/x/*.log']\nstart_at = 'middle'\n", "start_at"),
        "not toml": ("[[sources]\n", "not valid TOML"),
    }
    for name, (text, needle) in cases.items():
        path = tmp_path / f"{name.replace(' ', '_')}.toml"
        path.write_text(text)
        with pytest.raises(ConfigError) as info:
            load_config(str(path))
        message = str(info.value)
        assert str(path) in message and needle in message, (name, message)
        if name != "not toml":
            assert "[[sources]] #1" in message, message
    good = tmp_path / "good.toml"
    good.write_text("[[sources]]\npaths = ['/x/*.log']\ngrok = '%{IP:client} %{GREEDYDATA:message}'\n"
                    "[grok_patterns]\nMYAPP = '%{WORD:verb}'\n[[sources]]\npaths = '/y/*.log'\ngrok = 'MYAPP'\n")
    assert len(load_config(str(good)).sources) == 2


def test_serve_refuses_a_bad_config(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[[sources]]\npaths = ['/var/log/app/*.log']\nexclude_lines = ['(unclosed']\n")
    result = run_cli("serve", "--data", str(tmp_path / "data"), "--port", "0", "--config", str(cfg), check=False)
    out = result.stdout.decode() + result.stderr.decode()
    assert result.returncode != 0
    assert str(cfg) in out and "[[sources]] #1 (/var/log/app/*.log)" in out and "exclude_lines" in out


def test_filebeat_joiner_rules() -> None:
    def run(negate: bool, match: str, lines: list[str]) -> list[str]:
        j = FilebeatJoiner(Multiline(re.compile(r"^\s"), negate=negate, match=match))
        out: list[str] = []
        for line in lines:
            out.extend(j.feed(line)[0])
        return out + j.flush()

    lines = ["a", " b", " c", "d", " e"]
    assert run(False, "after", lines) == ["a\n b\n c", "d\n e"]
    assert run(True, "after", ["x", " y", " z"]) == ["x", " y", " z"]
    assert run(False, "before", [" a", " b", "c", "d"]) == [" a\n b\nc", "d"]
    assert run(True, "before", ["a", "b", " c", " d"]) == ["a\nb\n c", " d"]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(["2024-01-15 10:00:00 INFO start", "\tat a.B.c(B.java:1)", "", "plain line",
                                 "Caused by: x.Y: z", "é ünïcode", "x" * 40]), max_size=30),
       st.lists(st.integers(min_value=1, max_value=64), min_size=1, max_size=10), st.booleans())
def test_fuzz_chunking_keeps_records_and_offsets(lines: list[str], cuts: list[int], filebeat: bool) -> None:
    """However the bytes arrive, the records and their offsets are those of the whole file."""
    data = "".join(line + "\n" for line in lines).encode()
    src = SourceConfig(name="fuzz", paths=[], max_line_bytes=32)
    if filebeat:
        src.multiline = Multiline(re.compile(r"^\d{4}-"), negate=True, match="after")

    def run(chunks: list[bytes]) -> list[tuple[str, int]]:
        joiner = FilebeatJoiner(src.multiline) if src.multiline else DefaultJoiner()
        tail = _Tail((0, 1), "/fuzz.log", src, io.BytesIO(data), False, 0, 0, joiner)
        records: list[LogRecord] = []
        for chunk in chunks:
            TAILER._feed_bytes(tail, chunk, records)
        TAILER._emit(tail, tail.joiner.flush(), tail.consumed, records)
        assert tail.consumed == len(data) and not tail.buffer
        return [(r.line, r.attributes["log.offset"]) for r in records]

    whole = run([data])
    pieces, pos, i = [], 0, 0
    while pos < len(data):
        n = cuts[i % len(cuts)]
        pieces.append(data[pos:pos + n])
        pos += n
        i += 1
    assert run(pieces) == whole
    for text, offset in whole:  # each record starts where its first line starts in the file
        first = text.split("\n")[0].encode()[:32]
        assert data[offset:offset + len(first)] == first


class _NoPipeline:
    store = None


TAILER = FileTailer(FilesConfig("fuzz.toml", []), _NoPipeline(), tempfile.mkdtemp())  # type: ignore[arg-type]
TAILER.close()


class _FlakyPipeline:
    """Fails the first submission (as a failed store write would), stores the others."""

    store = None

    def __init__(self) -> None:
        self.records: list[LogRecord] = []
        self.calls = 0

    def submit(self, items: list[LogRecord], **_: Any) -> Future[int]:
        self.calls += 1
        future: Future[int] = Future()
        if self.calls == 1:
            future.set_exception(OSError("disk full"))
        else:
            self.records.extend(items)
            future.set_result(len(items))
        return future


def test_failed_write_is_read_again(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    cfg = tmp_path / "cfg.toml"
    write_config(cfg, {"flaky": {"paths": ["{d}/*.log"]}}, logs)
    append(logs / "flaky" / "app.log", [f"flaky-{i:03d}" for i in range(100)])
    pipeline = _FlakyPipeline()
    tailer = FileTailer(load_config(str(cfg)), pipeline, str(tmp_path), poll=0.05)  # type: ignore[arg-type]
    try:
        deadline = time.monotonic() + 15
        while len(pipeline.records) < 100 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
    finally:
        tailer.close()
    assert pipeline.calls >= 2 and tailer.stats["errors"] >= 1
    assert sorted(r.message for r in pipeline.records) == [f"flaky-{i:03d}" for i in range(100)]
    (entry,) = json.loads((tmp_path / "files-registry.json").read_text())["files"]
    assert entry["offset"] == (logs / "flaky" / "app.log").stat().st_size
