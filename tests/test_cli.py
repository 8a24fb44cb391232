"""The ``loglens`` command, run as a user runs it: a subprocess."""

from __future__ import annotations

import gzip
import subprocess
import sys
import time
from pathlib import Path

import orjson

from tests.conftest import run_cli, start_server, stop_server

APP_LOG = """\
2026-11-20 10:00:00,001 INFO [main] com.shop.Boot: Started ShopApplication in 3.2 seconds
2026-11-20 10:00:05,000 WARN [pool-1] com.shop.Cache: cache miss ratio 0.93 above 0.9
2026-11-20 10:00:07,250 ERROR [http-1] com.shop.Api: request failed with timeout after 30000ms
java.net.SocketTimeoutException: Read timed out
\tat java.net.SocketInputStream.read(SocketInputStream.java:150)
\tat com.shop.Api.call(Api.java:77)
Caused by: java.io.IOException: connection refused
\t... 12 more
2026-11-20 10:00:09,000 INFO [http-2] com.shop.Api: request served in 12ms
"""


def write_fixtures(tmp: Path) -> tuple[Path, Path, Path]:
    plain = tmp / "app.log"
    plain.write_text(APP_LOG)
    gz = tmp / "app2.log.gz"
    gz.write_bytes(gzip.compress(APP_LOG.replace("2026-11-20", "2026-11-21").encode()))
    nd = tmp / "events.ndjson"
    nd.write_text("\n".join(orjson.dumps(o).decode() for o in [
        {"ts": "2026-11-20T11:00:00Z", "level": "error", "msg": "disk full on /var", "host": "db-1",
         "disk": {"used_pct": 99}},
        {"ts": "2026-11-20T11:00:01Z", "level": "info", "msg": "backup done", "host": "db-1"},
    ]) + "\n")
    return plain, gz, nd


def test_ingest_search_count_stats(tmp_path: Path) -> None:
    plain, gz, nd = write_fixtures(tmp_path)
    data = str(tmp_path / "data")
    result = run_cli("ingest", str(plain), str(gz), "--service", "shop", "--data", data)
    summary = result.stderr.decode()
    assert "ingested 8 records, 0 rejected" in summary
    run_cli("ingest", str(nd), "--data", data)
    run_cli("ingest", "-", "--service", "stdin-svc", "--data", data,
            input=b"2026-11-20T12:00:00Z something from a pipe\n")

    out = run_cli("search", "timeout", "-o", "json", "--data", data).stdout.decode().splitlines()
    records = [orjson.loads(line) for line in out]
    assert len(records) == 2
    assert records[0]["timestamp"].startswith("2026-11-21T10:00:07.250")  # newest first
    assert "Caused by: java.io.IOException" in records[0]["message"]
    assert records[0]["level"] == "ERROR"

    assert run_cli("count", "level>=WARN", "--data", data).stdout.decode().strip() == "5"
    assert run_cli("count", "disk.used_pct>=90", "--data", data).stdout.decode().strip() == "1"
    assert run_cli("count", "service:stdin-svc", "--data", data).stdout.decode().strip() == "1"
    raw = run_cli("search", "served", "-o", "raw", "--data", data).stdout.decode().splitlines()
    assert raw[0] == "2026-11-21 10:00:09,000 INFO [http-2] com.shop.Api: request served in 12ms"
    table = run_cli("search", "level:ERROR", "--data", data, env={"COLUMNS": "200"}).stdout.decode()
    assert "disk full on /var" in table and "request failed" in table
    top = run_cli("top", "host", "--data", data, "-o", "json").stdout.decode().splitlines()
    assert orjson.loads(top[0]) == {"value": "db-1", "count": 2}
    stats = orjson.loads(run_cli("stats", "-o", "json", "--data", data).stdout)
    assert stats["records"] == 11
    assert stats["services"]["shop"] == 8
    assert stats["bytes_on_disk"] > 0


def test_errors_are_clear(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    r = run_cli("search", "x", "--data", data, check=False)
    assert r.returncode == 2 and "no LogLens data" in r.stderr.decode()
    run_cli("ingest", "-", "--data", data, input=b"hello\n")
    r = run_cli("search", "level:ERROR AND (", "--data", data, check=False)
    assert r.returncode == 2 and "position" in r.stderr.decode()
    assert "Traceback" not in r.stderr.decode()
    r = run_cli("ingest", str(tmp_path / "missing.log"), "--data", data, check=False)
    assert r.returncode == 2 and "no such file" in r.stderr.decode()


def test_env_data_dir_and_since(tmp_path: Path) -> None:
    data = str(tmp_path / "envdata")
    run_cli("ingest", "-", env={"LOGLENS_DATA": data}, input=b"first line without a time\n")
    assert run_cli("count", env={"LOGLENS_DATA": data}).stdout.decode().strip() == "1"
    assert run_cli("count", "--since", "1h", env={"LOGLENS_DATA": data}).stdout.decode().strip() == "1"
    assert run_cli("count", "--from", "now-2h", "--to", "now-1h",
                   env={"LOGLENS_DATA": data}).stdout.decode().strip() == "0"


def test_cli_against_a_server_and_locked_data_dir(tmp_path: Path) -> None:
    plain, _, _ = write_fixtures(tmp_path)
    data = tmp_path / "data"
    srv = start_server(data)
    try:
        r = run_cli("ingest", str(plain), "--data", str(data), check=False)
        assert r.returncode == 2 and "--url" in r.stderr.decode()
        run_cli("ingest", str(plain), "--service", "shop", "--url", srv.url)
        assert run_cli("count", "--url", srv.url).stdout.decode().strip() == "4"
        # a reader beside the running server sees the same data
        assert run_cli("count", "service:shop", "--data", str(data)).stdout.decode().strip() == "4"
        out = run_cli("search", "timeout", "-o", "json", "--url", srv.url).stdout.decode().splitlines()
        assert orjson.loads(out[0])["service"] == "shop"
    finally:
        stop_server(srv)


def test_ingest_follow_picks_up_appended_lines(tmp_path: Path) -> None:
    log = tmp_path / "live.log"
    log.write_text("2026-11-20T10:00:00Z INFO boot\n")
    data = str(tmp_path / "data")
    proc = subprocess.Popen([sys.executable, "-m", "loglens.cli", "ingest", str(log), "--follow", "--data", data],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(2)
        with log.open("a") as f:
            f.write("2026-11-20T10:00:01Z ERROR appended later\n")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            r = run_cli("count", "appended", "--data", data, check=False)
            if r.returncode == 0 and r.stdout.decode().strip() == "1":
                break
            time.sleep(0.3)
        else:
            raise AssertionError("appended line was not ingested")
    finally:
        proc.terminate()
        proc.wait(10)


def test_second_server_on_same_data_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    srv = start_server(data)
    try:
        r = run_cli("serve", "--data", str(data), "--port", "1", check=False)
        assert r.returncode == 2 and "in use by another LogLens process" in r.stderr.decode()
    finally:
        stop_server(srv)


def test_patterns_list_and_mine(tmp_path: Path) -> None:
    plain, _, _ = write_fixtures(tmp_path)
    data = str(tmp_path / "data")
    run_cli("ingest", str(plain), "--service", "shop", "--data", data)
    out = [orjson.loads(line) for line in
           run_cli("patterns", "--data", data, "-o", "json").stdout.decode().splitlines()]
    assert sum(p["count"] for p in out) == 4
    assert all(p["example"]["service"] == "shop" for p in out)
    table = run_cli("patterns", "level:ERROR", "--data", data, env={"COLUMNS": "200"}).stdout.decode()
    assert "request failed with timeout" in table
    mined = run_cli("patterns", "mine", "-", input=b"block 1 sent to 10.0.0.1\nblock 2 sent to 10.0.0.2\n")
    lines = mined.stdout.decode().splitlines()
    assert lines[0] == "LineId,EventTemplate"
    assert [line.split(",", 1)[0] for line in lines[1:]] == ["1", "2"]
    assert lines[1].split(",", 1)[1] == lines[2].split(",", 1)[1]
    assert not (tmp_path / "loglens-data").exists()


def test_tail_local_and_remote_print_new_records(tmp_path: Path) -> None:
    data = tmp_path / "data"
    srv = start_server(data)
    procs = []
    try:
        import httpx

        httpx.post(srv.url + "/api/v1/logs", content=b'{"message": "before tail", "level": "error"}\n')
        for where in (["--data", str(data)], ["--url", srv.url]):
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "loglens.cli", "tail", "level:ERROR", "-o", "raw", "-n", "1", *where],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE))
        time.sleep(2.5)
        httpx.post(srv.url + "/api/v1/logs",
                   content=b'{"message": "quiet", "level": "info"}\n{"message": "after tail", "level": "error"}\n')
        time.sleep(2.5)
    finally:
        for p in procs:
            p.terminate()
        stop_server(srv)
    for p in procs:
        out, _ = p.communicate(timeout=10)
        assert out.decode().splitlines() == ["before tail", "after tail"]


def test_chat_answers_one_question_with_citations(tmp_path: Path) -> None:
    plain, _, _ = write_fixtures(tmp_path)
    data = str(tmp_path / "data")
    run_cli("ingest", str(plain), "--service", "shop", "--data", data)
    r = run_cli("chat", "how many timeouts", "--data", data, env={"LOGLENS_SEMANTIC": "bm25"})
    out = r.stdout.decode()
    assert "[record:" in out and "timeout" in out
    assert "query:" in r.stderr.decode()
