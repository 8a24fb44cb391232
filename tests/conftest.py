"""Shared fixtures: a real ``loglens serve`` subprocess on a free port, and small data helpers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    data: Path
    proc: subprocess.Popen[bytes]
    log: Path

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        self.proc.send_signal(sig)
        self.proc.wait(timeout=30)


def start_server(data: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 30) -> Server:
    port = free_port()
    log = data.parent / f"server-{port}.log"
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.Popen(
        [sys.executable, "-m", "loglens.cli", "serve", "--data", str(data), "--port", str(port), *args],
        stdout=open(log, "wb"), stderr=subprocess.STDOUT, env=full_env,  # noqa: SIM115
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {log.read_text()}")
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                return Server(url, data, proc, log)
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"server did not become ready: {log.read_text()}")


def stop_server(server: Server) -> None:
    if server.proc.poll() is None:
        server.proc.terminate()
        try:
            server.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = start_server(tmp_path / "data")
    yield srv
    stop_server(srv)


def run_cli(*args: str, input: bytes | None = None, env: dict[str, str] | None = None,
            check: bool = True) -> subprocess.CompletedProcess[bytes]:
    result = subprocess.run([sys.executable, "-m", "loglens.cli", *args], input=input, capture_output=True,
                            env={**os.environ, **(env or {})}, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"loglens {' '.join(args)} failed ({result.returncode}): "
                             f"{result.stderr.decode()}{result.stdout.decode()}")
    return result


# ------------------------------------------------------------------------------ asking a server
def count(server: Server, q: str) -> int:
    r = httpx.get(server.url + "/api/v1/count", params={"q": q}, timeout=30)
    assert r.status_code == 200, r.text
    return int(r.json()["count"])


def wait_count(server: Server, q: str, expected: int, timeout: float = 60, settle: float = 0.0) -> int:
    """Poll until ``expected`` records match (or ``timeout``), wait ``settle`` seconds for anything
    extra (a duplicate) to show, then return the count."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = httpx.get(server.url + "/api/v1/count", params={"q": q}, timeout=30)
        if r.status_code == 200 and int(r.json()["count"]) >= expected:
            break
        time.sleep(0.1)
    time.sleep(settle)
    return count(server, q)


def search(server: Server, q: str, limit: int = 1000) -> list[dict[str, Any]]:
    r = httpx.get(server.url + "/api/v1/search", params={"q": q, "limit": limit}, timeout=30)
    assert r.status_code == 200, r.text
    return list(r.json()["records"])


def search_all(server: Server, q: str) -> list[dict[str, Any]]:
    """Every matching record, following the cursor."""
    out: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"q": q, "limit": 10000, **({"cursor": cursor} if cursor else {})}
        r = httpx.get(server.url + "/api/v1/search", params=params, timeout=60)
        assert r.status_code == 200, r.text
        body = r.json()
        out.extend(body["records"])
        cursor = body.get("next_cursor")
        if not cursor or not body["records"]:
            return out


def gate_writes(store: Any, timeout: float = 20) -> threading.Event:
    """Hold every write of ``store`` until the returned event is set (or ``timeout``), so that a
    test can fill the write queue and watch backpressure."""
    gate = threading.Event()
    real_write = store.write

    def gated_write(*args: object, **kwargs: object) -> None:
        gate.wait(timeout)
        real_write(*args, **kwargs)

    store.write = gated_write
    return gate
