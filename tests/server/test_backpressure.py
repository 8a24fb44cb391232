"""A full write queue is answered with 429 and Retry-After, not with unbounded memory."""

from __future__ import annotations

import threading
from pathlib import Path

from fastapi.testclient import TestClient

from loglens.config import Settings
from loglens.server import create_app
from tests.conftest import gate_writes


def test_full_queue_answers_429_with_retry_after(tmp_path: Path) -> None:
    app = create_app(Settings(data=str(tmp_path / "d"), max_queued=5))
    with TestClient(app) as client:
        runtime = app.state.runtime
        gate = gate_writes(runtime.store, timeout=10)
        first: dict[str, int] = {}
        t = threading.Thread(target=lambda: first.update(
            status=client.post("/api/v1/logs", content=b"a\nb\nc\nd\n").status_code))
        t.start()
        while runtime.pipeline.queued == 0:
            pass
        r = client.post("/api/v1/logs", content=b"e\nf\n")
        assert r.status_code == 429
        assert r.headers["Retry-After"] == "1"
        assert "queue full" in r.json()["error"]
        gate.set()
        t.join(10)
        assert first["status"] == 200
        assert client.post("/api/v1/logs", content=b"e\nf\n").status_code == 200
        assert client.get("/api/v1/count").json() == {"count": 6}
