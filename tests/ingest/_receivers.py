"""Helpers of the HTTP receiver tests (Elasticsearch, Loki, OTLP): one ``loglens serve`` per test
module (the receivers are on by default on its HTTP port) and search shortcuts."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import Server, start_server, stop_server


def module_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("receivers") / "data")
    yield srv
    stop_server(srv)


def count(client: httpx.Client, q: str) -> int:
    resp = client.get("/api/v1/count", params={"q": q})
    assert resp.status_code == 200, resp.text
    return int(resp.json()["count"])


def search(client: httpx.Client, q: str, limit: int = 100) -> list[dict[str, Any]]:
    resp = client.get("/api/v1/search", params={"q": q, "limit": limit})
    assert resp.status_code == 200, resp.text
    return list(resp.json()["records"])


def need(module: str, reason: str) -> None:
    """Skip when a client library is missing, unless LOGLENS_REQUIRE_SERVICES=1 (then fail)."""
    try:
        __import__(module)
    except ImportError:
        if os.environ.get("LOGLENS_REQUIRE_SERVICES") == "1":
            raise
        pytest.skip(f"{module} is not installed: {reason}", allow_module_level=True)
