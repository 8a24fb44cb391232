"""Browser fixtures: a real ``loglens serve`` with data posted over HTTP, and headless Chromium
(Debian's ``/usr/bin/chromium``) driven by Playwright. Skipped when either is missing, unless
``LOGLENS_REQUIRE_SERVICES=1``."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.conftest import Server, start_server, stop_server

CHROMIUM = os.environ.get("LOGLENS_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-gpu"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
HOSTILE = ["<script>alert(1)</script> in the message", "<img src=x onerror=alert(1)> bad image"]


def _missing(reason: str) -> None:
    if os.environ.get("LOGLENS_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason} (LOGLENS_REQUIRE_SERVICES=1): apt-get install -y chromium; pip install playwright")
    pytest.skip(reason)


def sample_records(now: datetime) -> list[dict[str, Any]]:
    """About 400 records over the last 50 minutes: three services, several patterns and levels."""
    records: list[dict[str, Any]] = []
    services = ["checkout", "payments", "search"]
    for i in range(400):
        ts = now - timedelta(seconds=3000 - i * 7.4)
        svc = services[i % 3]
        host = f"web-{i % 4 + 1}"
        if i % 17 == 0:
            rec = {"level": "ERROR", "message": f"Payment failed for order {1000 + i}: connection refused",
                   "http": {"status": 502}, "order_id": str(1000 + i)}
        elif i % 7 == 0:
            rec = {"level": "WARN", "message": f"Slow query took {200 + i} ms on table orders", "duration_ms": 200 + i}
        elif i % 5 == 0:
            rec = {"level": "DEBUG", "message": f"Cache miss for key user:{i}"}
        elif i % 3 == 1:
            rec = {"level": "INFO", "message": f"User u-{i % 23} logged in from 10.0.{i % 9}.{i % 250}",
                   "user": {"id": f"u-{i % 23}"}}
        elif i % 11 == 2:
            rec = {"level": "WARN", "message": f"Retrying request to inventory (attempt {i % 4 + 1} of 5)"}
        elif i % 4 == 0:
            rec = {"level": "INFO", "message": f"Order {5000 + i} shipped to warehouse {i % 6}"}
        else:
            rec = {"level": "INFO", "message": f"GET /api/v1/items/{i} answered 200 in {i % 50} ms",
                   "http": {"status": 200, "method": "GET"}}
        rec.update({"@timestamp": ts.isoformat().replace("+00:00", "Z"), "service": svc, "host": host})
        records.append(rec)
    for j, text in enumerate(HOSTILE):
        records.append({"@timestamp": (now - timedelta(seconds=30 - j)).isoformat().replace("+00:00", "Z"),
                        "level": "WARN", "service": "hostile", "host": "evil-1", "message": text})
    return records


def post(server: Server, records: list[dict[str, Any]]) -> None:
    body = b"\n".join(orjson.dumps(r) for r in records)
    with server.client() as client:
        answer = client.post("/api/v1/logs", content=body, headers={"Content-Type": "application/x-ndjson"})
        assert answer.status_code == 200, answer.text
        assert answer.json()["accepted"] == len(records)


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("ui") / "data")
    try:
        post(srv, sample_records(datetime.now(UTC)))
        yield srv
    finally:
        stop_server(srv)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        _missing(f"no Chromium at {CHROMIUM}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the playwright package is not installed")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


class Page:
    """A browser tab with what it saw: dialogs (alert() must never fire) and page errors."""

    def __init__(self, page: Any, base: str) -> None:
        self.page = page
        self.base = base
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        page.on("pageerror", lambda e: self.errors.append(str(e)))

    def open(self, path: str = "/") -> Any:
        self.page.goto(self.base + path)
        return self.page


def open_tab(browser: Any, server: Server) -> Iterator[Page]:
    """A fresh browser context on ``server``; afterwards, no dialog may have fired and no script failed."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    wrapped = Page(page, server.url)
    try:
        yield wrapped
    finally:
        context.close()
    assert not wrapped.dialogs, f"a dialog fired: {wrapped.dialogs}"
    assert not wrapped.errors, f"script errors: {wrapped.errors}"


@pytest.fixture
def tab(browser: Any, ui_server: Server) -> Iterator[Page]:
    yield from open_tab(browser, ui_server)


def screenshot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    time.sleep(0.3)  # let the row highlight animation finish
    page.screenshot(path=str(SCREENSHOTS / name))


def incident_records(now: datetime) -> list[dict[str, Any]]:
    """Three hours of a steady baseline in two services, then, in the last ten minutes, a burst of a
    new ERROR pattern in ``billing`` (an anomaly the detector finds: ``new_pattern``, error share)."""
    records: list[dict[str, Any]] = []
    start = now - timedelta(hours=3)
    for i in range(1080):  # one record every 10 s
        ts = start + timedelta(seconds=i * 10)
        svc = "billing" if i % 2 else "catalog"
        records.append({"@timestamp": ts.isoformat().replace("+00:00", "Z"), "service": svc, "host": f"node-{i % 3}",
                        "level": "INFO", "message": f"Invoice {7000 + i} rendered in {i % 40} ms"})
    records.append({"@timestamp": (now - timedelta(hours=2)).isoformat().replace("+00:00", "Z"), "service": "catalog",
                    "level": "WARN", "message": "<img src=x onerror=alert(1)> ledger write preview failed"})
    for i in range(120):
        ts = now - timedelta(seconds=600 - i * 4.5)
        records.append({"@timestamp": ts.isoformat().replace("+00:00", "Z"), "service": "billing", "host": "node-1",
                        "level": "ERROR", "trace_id": f"tr-{i % 5}",
                        "message": f"Ledger write failed for account {300 + i % 9}: deadlock detected"})
    return records


@pytest.fixture(scope="module")
def ai_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server whose data holds an incident; semantic search by BM25 (no model to load)."""
    srv = start_server(tmp_path_factory.mktemp("ui-ai") / "data", env={"LOGLENS_SEMANTIC": "bm25"})
    try:
        post(srv, incident_records(datetime.now(UTC)))
        yield srv
    finally:
        stop_server(srv)


@pytest.fixture
def ai_tab(browser: Any, ai_server: Server) -> Iterator[Page]:
    yield from open_tab(browser, ai_server)
